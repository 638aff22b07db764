//! The exact-match cache (EMC): full flow key -> megaflow, per PMD.
//!
//! # Design
//!
//! As in Open vSwitch's `emc_cache`: a small table (default 8192 entries) indexed by the
//! packet's hash (the NIC's RSS hash when there is one), two candidate positions per
//! hash (`hash` and `hash >> 16`), each entry holding the hash, the complete key and
//! a [`MegaflowId`]. A hit needs the hash and all 64 key bytes to be equal and the id's
//! generation to still be current in the slab, so entries of removed megaflows die
//! without any cache walk.
//!
//! Keys and tags live in separate arrays: the 12-byte tags of both candidates are
//! compared first, the 64-byte key only on a tag match.
//!
//! **The frame table.** Beside the key table, an EMC of the same size keyed by the
//! bytes of a frame its key is made of ([`crate::extract::frame_window`]: four words,
//! with in_port), for frames of the most common shape (untagged Ethernet, IPv4 without
//! options, not a fragment, UDP or TCP). A PMD probes it while it walks the burst, from
//! the frame's bytes ([`FrameProbe`]): a hit needs no key extraction, no key hash and no
//! 64-byte key compare, only the window, its hash and a 32-byte compare (equal windows
//! mean equal keys, and equal keys equal windows). Its entries are inserted as the key
//! table's are (after a signature cache or classifier hit, at the same probability), for
//! the packets whose window the walk kept ([`FramedBurst`]); frames of other shapes use
//! the key table. Every entry carries the megaflow's generation, so removals need no
//! walk of either table. An entry of the frame table holds its tag and window in one
//! cache line (64 bytes), so that a probe reads one line of the table, not a tag's and
//! a key's.
//!
//! Insertion is probabilistic (1 in `insert_inverse_prob`, from a seeded xorshift, so
//! runs are reproducible): with more active flows than entries, inserting every miss
//! makes flows evict each other before they are hit again. See flowcache/README.md
//! for the measurement that set the default.

use crate::classifier::MAX_BATCH;
use crate::extract::FrameWindow;
use crate::key::FlowKey;
use crate::megaflow::{MegaflowId, Record, Slab};

#[derive(Clone, Copy)]
struct Tag {
    hash: u32,
    index: u32,
    generation: u32,
}

const NO_TAG: Tag = Tag { hash: 0, index: u32::MAX, generation: 0 };

/// An entry of the frame table: its tag and window in one cache line (a probe reads one
/// line at the candidate position).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct FrameEntry {
    tag: Tag,
    window: FrameWindow,
}

const NO_FRAME: FrameEntry = FrameEntry { tag: NO_TAG, window: [0; 4] };

/// The exact-match cache. See the module doc.
pub struct Emc {
    keys: Vec<FlowKey>,
    tags: Vec<Tag>,
    /// The frame table (see the module doc), as many entries as the key table.
    frames: Vec<FrameEntry>,
    mask: usize,
    insert_inverse_prob: u32,
    rng: u32,
}

impl Emc {
    /// An EMC of `entries` entries (rounded up to a power of two, at least 2), inserting
    /// one miss in `insert_inverse_prob` (1 = always, 0 = never).
    pub fn new(entries: usize, insert_inverse_prob: u32) -> Self {
        let n = entries.max(2).next_power_of_two();
        Emc {
            keys: vec![FlowKey::ZERO; n],
            tags: vec![NO_TAG; n],
            frames: vec![NO_FRAME; n],
            mask: n - 1,
            insert_inverse_prob,
            rng: 0x2545_f491,
        }
    }

    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    #[inline(always)]
    fn positions(&self, hash: u32) -> [usize; 2] {
        [hash as usize & self.mask, (hash >> 16) as usize & self.mask]
    }

    /// The slab index of the megaflow cached for `key`, if the entry is live.
    #[inline(always)]
    pub(crate) fn lookup(&self, slab: &Slab, key: &FlowKey, hash: u32) -> Option<u32> {
        for pos in self.positions(hash) {
            let t = self.tags[pos];
            if t.hash == hash && t.index != u32::MAX && self.keys[pos] == *key {
                let r = &slab.records[t.index as usize];
                if r.live && r.generation == t.generation {
                    return Some(t.index);
                }
            }
        }
        None
    }

    /// Looks the first `n` of `keys` (hashes `hashes`) up, at most [`MAX_BATCH`]: sets
    /// `idx[i]` to the slab index of each hit and returns the bitmap of the hits.
    ///
    /// One pass: each packet's candidate position (the first of its two positions whose
    /// tag has its hash, else the second), then, if that tag has the packet's hash, the key
    /// compare and the generation check. A failed candidate tries both positions again
    /// out of line ([`Emc::lookup`]: only when both tags carry the packet's hash). Two
    /// stages over the burst (all candidates and an early read of their records first,
    /// so that the burst's cache misses overlap, then the compares) cost 22.6 more
    /// instructions per packet (255.0 against 232.4 in `deploy/bench-instructions`'
    /// EMC point); in one pass the core still overlaps the misses of the packets its
    /// reorder window holds (a packet's lookup is about 35 instructions), and the
    /// entries of a few thousand hot flows stay in L2.
    ///
    /// Cheap where it runs per packet: both arrays are cut to `mask + 1` entries once, so
    /// that an index `& mask` needs no bounds check; an empty entry (index `u32::MAX`) is
    /// not tested for, its index finds no record; and a hit tests the generation alone,
    /// not `live`: freeing a slot bumps its generation (`Slab::free`), so an entry whose
    /// generation equals its record's was inserted while that megaflow lived.
    #[inline(always)]
    pub(crate) fn lookup_burst(
        &self,
        slab: &Slab,
        keys: &[FlowKey],
        hashes: &[u32],
        idx: &mut [u32; MAX_BATCH],
    ) -> u32 {
        let n = keys.len().min(hashes.len()).min(MAX_BATCH);
        let (keys, hashes) = (&keys[..n], &hashes[..n]);
        let mask = self.mask;
        let tags = &self.tags[..=mask];
        let entry_keys = &self.keys[..=mask];
        let records = &slab.records[..];
        let mut hits = 0u32;
        for (i, (&hash, key)) in hashes.iter().zip(keys).enumerate() {
            let [a, b] = self.positions(hash);
            let at = if tags[a].hash == hash { a } else { b };
            let t = tags[at];
            if t.hash == hash {
                let found = match records.get(t.index as usize) {
                    Some(r) if r.generation == t.generation && entry_keys[at] == *key => Some(t.index),
                    _ => self.lookup_again(slab, key, hash),
                };
                if let Some(x) = found {
                    idx[i] = x;
                    hits |= 1 << i;
                }
            }
        }
        hits
    }

    /// [`Emc::lookup`] of the keys of bitmap `which` (of at most [`MAX_BATCH`] keys):
    /// sets `idx[i]` of each hit and returns the bitmap of the hits. For the packets of a
    /// burst the frame table did not take (see [`FramedBurst`]).
    #[inline]
    pub(crate) fn lookup_some(
        &self,
        slab: &Slab,
        keys: &[FlowKey],
        hashes: &[u32],
        which: u32,
        idx: &mut [u32; MAX_BATCH],
    ) -> u32 {
        let mut hits = 0;
        let mut bits = which;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let (Some(key), Some(&hash)) = (keys.get(i), hashes.get(i))
                && let Some(x) = self.lookup(slab, key, hash)
            {
                idx[i] = x;
                hits |= 1 << i;
            }
        }
        hits
    }

    /// The frame table for lookups from a burst's walk (see [`FrameProbe`]).
    #[inline(always)]
    pub(crate) fn frame_probe<'a>(&'a self, slab: &'a Slab) -> FrameProbe<'a> {
        FrameProbe { entries: &self.frames[..=self.mask], records: &slab.records, mask: self.mask }
    }

    /// Caches the frame window `w` (hash `hash`) -> `id` in the frame table, as
    /// [`Emc::insert`] caches a key.
    #[inline]
    pub(crate) fn insert_window(&mut self, w: &FrameWindow, hash: u32, id: MegaflowId) {
        let [a, b] = self.positions(hash);
        let (ea, eb) = (&self.frames[a], &self.frames[b]);
        let pos = if ea.tag.hash == hash && ea.window == *w {
            a
        } else if eb.tag.hash == hash && eb.window == *w {
            b
        } else if ea.tag.index == u32::MAX {
            a
        } else if eb.tag.index == u32::MAX {
            b
        } else if self.next_random() & 1 == 0 {
            a
        } else {
            b
        };
        self.frames[pos] = FrameEntry { tag: Tag { hash, index: id.index, generation: id.generation }, window: *w };
    }

    /// [`Emc::lookup`] out of line, for a candidate that failed.
    #[cold]
    #[inline(never)]
    fn lookup_again(&self, slab: &Slab, key: &FlowKey, hash: u32) -> Option<u32> {
        self.lookup(slab, key, hash)
    }

    /// xorshift32: deterministic, no state beyond one word.
    #[inline(always)]
    fn next_random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    /// Draws whether this miss should be inserted.
    #[inline(always)]
    pub(crate) fn should_insert(&mut self) -> bool {
        match self.insert_inverse_prob {
            0 => false,
            1 => true,
            n => self.next_random().is_multiple_of(n),
        }
    }

    /// Caches `key` -> `id`. Replaces an entry of the same key, else an empty entry,
    /// else a pseudo-random one of the two candidates (a choice fixed by the hash would
    /// let a stale entry hold its position forever). It does not look at the megaflows of
    /// the current entries to prefer dead ones (OVS does): that costs two random
    /// memory reads per insertion, which measured slower than the evictions it saves.
    #[inline]
    pub(crate) fn insert(&mut self, key: &FlowKey, hash: u32, id: MegaflowId) {
        let [a, b] = self.positions(hash);
        let pos = if self.tags[a].hash == hash && self.keys[a] == *key {
            a
        } else if self.tags[b].hash == hash && self.keys[b] == *key {
            b
        } else if self.tags[a].index == u32::MAX {
            a
        } else if self.tags[b].index == u32::MAX {
            b
        } else if self.next_random() & 1 == 0 {
            a
        } else {
            b
        };
        self.keys[pos] = *key;
        self.tags[pos] = Tag { hash, index: id.index, generation: id.generation };
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.tags.fill(NO_TAG);
        self.frames.fill(NO_FRAME);
    }

    /// Bytes of memory the EMC uses.
    pub fn memory_bytes(&self) -> usize {
        self.keys.len()
            * (std::mem::size_of::<FlowKey>() + std::mem::size_of::<Tag>() + std::mem::size_of::<FrameEntry>())
    }
}

/// The EMC's frame table as a PMD's walk over a burst reads it (made by
/// `FlowCache::frame_probe`): each packet of the common shape is looked up from its
/// frame window ([`crate::extract::frame_window`]) as the walk reaches it, and only the
/// packets it does not answer have their key extracted.
pub struct FrameProbe<'a> {
    /// Cut to `mask + 1` entries: an index `& mask` needs no bounds check.
    entries: &'a [FrameEntry],
    records: &'a [Record],
    mask: usize,
}

impl FrameProbe<'_> {
    /// The slab index of the megaflow cached for the frame window `w` (hash `hash`), if
    /// the entry is live. As `Emc::lookup_burst` does for a key: the candidate
    /// position (the first whose tag has the hash, else the second), the generation and
    /// the window compared there; a failed candidate tries both positions again out of
    /// line.
    #[inline(always)]
    pub fn lookup(&self, w: &FrameWindow, hash: u32) -> Option<u32> {
        let mask = self.mask;
        let entries = &self.entries[..=mask];
        let (a, b) = (hash as usize & mask, (hash >> 16) as usize & mask);
        let e = if entries[a].tag.hash == hash { &entries[a] } else { &entries[b] };
        let t = e.tag;
        if t.hash != hash {
            return None;
        }
        match self.records.get(t.index as usize) {
            Some(r) if r.generation == t.generation && e.window == *w => Some(t.index),
            _ => self.lookup_again(w, hash),
        }
    }

    /// Both positions, for a candidate that failed.
    #[cold]
    #[inline(never)]
    fn lookup_again(&self, w: &FrameWindow, hash: u32) -> Option<u32> {
        let mask = self.mask;
        for pos in [hash as usize & mask, (hash >> 16) as usize & mask] {
            let Some(FrameEntry { tag: t, window }) = self.entries.get(pos) else { continue };
            if t.hash == hash
                && *window == *w
                && let Some(r) = self.records.get(t.index as usize)
                && r.live
                && r.generation == t.generation
            {
                return Some(t.index);
            }
        }
        None
    }
}

/// What a burst's walk found in the frame table ([`FrameProbe`]), for
/// `FlowCache::lookup_burst_framed`: the packets it answered and their megaflows, and
/// the windows of the packets of the common shape it did not answer (so that a hit of a
/// later level caches their window, not their key). Kept by the PMD from burst to burst
/// (no array is cleared: only the entries of the bitmaps' packets are read).
pub struct FramedBurst {
    /// Packets the frame table answered (their keys were not extracted: only their
    /// word [`crate::key::TCP_FLAGS_WORD`] is set, for the statistics).
    pub hits: u32,
    /// Packets of the common shape it did not answer (their keys were extracted).
    pub windowed: u32,
    /// Slab index of each hit's megaflow.
    pub idx: [u32; MAX_BATCH],
    /// Window and its hash of each packet of `windowed`.
    pub windows: [FrameWindow; MAX_BATCH],
    pub hashes: [u32; MAX_BATCH],
}

impl FramedBurst {
    pub fn new() -> FramedBurst {
        FramedBurst {
            hits: 0,
            windowed: 0,
            idx: [u32::MAX; MAX_BATCH],
            windows: [[0; 4]; MAX_BATCH],
            hashes: [0; MAX_BATCH],
        }
    }
}

impl Default for FramedBurst {
    fn default() -> Self {
        FramedBurst::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_miss_and_stale() {
        let mut slab = Slab::with_capacity(4);
        let mut k = FlowKey::ZERO;
        k.set_in_port(1);
        k.set_tp_dst(80);
        let id = slab.alloc_with_mask(k, FlowKey::EXACT, vec![], 0);
        let mut emc = Emc::new(16, 1);
        let h = k.hash();
        assert_eq!(emc.lookup(&slab, &k, h), None);
        emc.insert(&k, h, id);
        assert_eq!(emc.lookup(&slab, &k, h), Some(id.index));
        // Same hash, different key: miss.
        let mut k2 = k;
        k2.set_tp_dst(81);
        assert_eq!(emc.lookup(&slab, &k2, h), None);
        // Removed megaflow: miss, even after the slot is reused.
        slab.free(id.index);
        assert_eq!(emc.lookup(&slab, &k, h), None);
        let id2 = slab.alloc_with_mask(k, FlowKey::EXACT, vec![], 0);
        assert_eq!(id2.index, id.index);
        assert_eq!(emc.lookup(&slab, &k, h), None);
    }

    #[test]
    fn frame_table_hit_miss_stale_and_clear() {
        let mut slab = Slab::with_capacity(4);
        let id = slab.alloc_with_mask(FlowKey::ZERO, FlowKey::EXACT, vec![], 0);
        let mut emc = Emc::new(16, 1);
        let w: FrameWindow = [1, 2, 3, 4];
        // A hash whose two positions differ (5 and 1 of 16), and one whose agree.
        let (h, h1) = (0x0001_0005, 0x0005_0005);
        assert_eq!(emc.frame_probe(&slab).lookup(&w, h), None);
        emc.insert_window(&w, h, id);
        assert_eq!(emc.frame_probe(&slab).lookup(&w, h), Some(id.index));
        // Another window or hash: miss; each word counts.
        for i in 0..4 {
            let mut v = w;
            v[i] ^= 1 << (7 * i);
            assert_eq!(emc.frame_probe(&slab).lookup(&v, h), None, "word {i}");
        }
        assert_eq!(emc.frame_probe(&slab).lookup(&w, h1), None);
        // The key table does not answer for it, nor the frame table for a key.
        assert_eq!(emc.lookup(&slab, &FlowKey::ZERO, h), None);
        // The second position: an entry with another window at the first.
        let other: FrameWindow = [9, 9, 9, 9];
        let h2 = 0x0002_0001;
        emc.insert_window(&other, 0x0003_0001, id);
        emc.insert_window(&w, h2, id);
        assert_eq!(emc.frame_probe(&slab).lookup(&w, h2), Some(id.index));
        // Removed megaflow: miss, even after the slot is reused.
        slab.free(id.index);
        assert_eq!(emc.frame_probe(&slab).lookup(&w, h), None);
        let id2 = slab.alloc_with_mask(FlowKey::ZERO, FlowKey::EXACT, vec![], 0);
        assert_eq!(id2.index, id.index);
        assert_eq!(emc.frame_probe(&slab).lookup(&w, h), None);
        emc.insert_window(&w, h, id2);
        assert_eq!(emc.frame_probe(&slab).lookup(&w, h), Some(id2.index));
        emc.clear();
        assert_eq!(emc.frame_probe(&slab).lookup(&w, h), None);
    }

    #[test]
    fn insertion_probability() {
        let mut emc = Emc::new(16, 100);
        let n = (0..100_000).filter(|_| emc.should_insert()).count();
        assert!((700..1300).contains(&n), "{n} insertions in 100000 draws at 1/100");
        let mut never = Emc::new(16, 0);
        assert!(!(0..1000).any(|_| never.should_insert()));
    }
}
