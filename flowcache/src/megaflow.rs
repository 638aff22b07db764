//! Megaflows and the generation-checked slab that stores them.
//!
//! # Design
//!
//! A megaflow is a masked key, its mask, its datapath actions and its statistics. A
//! packet matches when `(packet & mask) == key`. The slab keeps them in three parallel
//! arrays indexed by a `u32` slot number, split by how hot the data is:
//!
//! - `records`: the masked key (one cache line) followed by the generation, the index of
//!   the flow's mask in a small shared mask table, and the statistics (second line):
//!   128 bytes that a cache hit reads and writes, adjacent so the hardware fetches
//!   them together. Masks are shared per subtable (a few hundred), so the mask table
//!   stays in L1/L2 instead of costing a third line per flow. A free slot holds a key
//!   of all ones and mask index 0 (the all-zero mask), which no packet can match
//!   (`(p & 0) != !0`), so a stale cache reference to a freed slot simply fails
//!   verification.
//! - `cold`: actions and classifier bookkeeping, read when a packet is executed or a
//!   flow is removed.
//!
//! A [`MegaflowId`] is (slot, generation). Removing a megaflow bumps the slot's
//! generation, so every id handed out for it stops resolving; caches that hold ids (the
//! EMC) check the generation on each hit, which never dangles and costs one compare.
//! Generations wrap after 2^32 reuses of one slot; a cache entry would have to survive
//! that many reuses to be confused, which the EMC's replacement makes impossible in
//! practice.

use crate::actions::{DpAction, DpActions};
use crate::key::{FlowKey, Mask};

/// Identifies one installed megaflow. Stays invalid forever after the megaflow is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MegaflowId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl MegaflowId {
    /// The slab slot; stable while the megaflow lives, reused after.
    pub fn index(&self) -> u32 {
        self.index
    }
    pub fn generation(&self) -> u32 {
        self.generation
    }
}

/// A megaflow to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Megaflow {
    /// Values of the matched bits. Bits outside `mask` are ignored (cleared on insert).
    pub key: FlowKey,
    pub mask: Mask,
    /// Executed in order; empty means drop.
    pub actions: DpActions,
}

impl Megaflow {
    pub fn new(key: FlowKey, mask: Mask, actions: DpActions) -> Self {
        Megaflow { key: key.masked(&mask), mask, actions }
    }
    /// True if `packet` matches this megaflow.
    pub fn matches(&self, packet: &FlowKey) -> bool {
        self.key.masked(&self.mask).matches(&self.mask, packet)
    }
    /// True if some packet matches both megaflows.
    pub fn overlaps(&self, other: &Megaflow) -> bool {
        masks_overlap(&self.key, &self.mask, &other.key, &other.mask)
    }
}

/// True if some packet matches both (k1, m1) and (k2, m2): they agree on every bit
/// that both masks cover.
#[inline]
pub fn masks_overlap(k1: &FlowKey, m1: &Mask, k2: &FlowKey, m2: &Mask) -> bool {
    (0..crate::key::KEY_WORDS).all(|i| (k1.w[i] ^ k2.w[i]) & m1.w[i] & m2.w[i] == 0)
}

/// Statistics of one megaflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MegaflowStats {
    pub packets: u64,
    pub bytes: u64,
    /// The `now` of the last hit (or of the insertion if never hit).
    pub used: u64,
    /// OR of the TCP flags of every packet that hit.
    pub tcp_flags: u16,
}

/// A view of an installed megaflow.
#[derive(Debug, Clone, Copy)]
pub struct MegaflowRef<'a> {
    pub id: MegaflowId,
    pub key: &'a FlowKey,
    pub mask: &'a Mask,
    pub actions: &'a [DpAction],
    pub stats: MegaflowStats,
}

/// The hot part of one slot: key, generation, mask and statistics, 128 bytes in two
/// adjacent cache lines. Lookups verify against `key` and the mask table entry
/// `mask_ix`, and write the statistics, all in this record.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Record {
    pub key: FlowKey,
    pub generation: u32,
    /// Index into [`Slab::masks`]; 0 (the all-zero mask) for a free slot.
    pub mask_ix: u32,
    /// OR of the hits' key word [`crate::key::TCP_FLAGS_WORD`] (the PMD ORs whole words,
    /// one instruction a packet; the flags are read from it in [`Record::stats`]).
    pub tcp_flags_word: u64,
    pub live: bool,
    // `used` between the two counters: adjacent, the two additions of a packet compiled
    // to one vector addition that takes six instructions to set up and store.
    pub packets: u64,
    pub used: u64,
    pub bytes: u64,
    /// When it was installed (the `now` of the insert): a hit on a megaflow installed
    /// before the oldest parked key cannot be a packet of a parked key (see
    /// `FlowCache::lookup_burst_holding`).
    pub installed: u64,
}

// Two cache lines, as the lookup's prefetch assumes.
const _: () = assert!(std::mem::size_of::<Record>() == 128);

impl Record {
    /// A free slot: key all ones under mask 0 (table entry 0) matches no packet.
    const FREE: Record = Record {
        key: FlowKey::EXACT,
        generation: 0,
        mask_ix: 0,
        tcp_flags_word: 0,
        live: false,
        packets: 0,
        bytes: 0,
        used: 0,
        installed: 0,
    };

    /// Adds one packet of `bytes` bytes, whose key's word [`crate::key::TCP_FLAGS_WORD`]
    /// is `flags_word`, seen at `now`.
    #[inline(always)]
    pub fn add_packet(&mut self, bytes: u32, flags_word: u64, now: u64) {
        self.packets += 1;
        self.bytes += bytes as u64;
        self.used = now;
        self.tcp_flags_word |= flags_word;
    }

    pub fn stats(&self) -> MegaflowStats {
        let tcp_flags = crate::key::tcp_flags_of_word(self.tcp_flags_word);
        MegaflowStats { packets: self.packets, bytes: self.bytes, used: self.used, tcp_flags }
    }
}

/// Actions and classifier bookkeeping of one slot.
pub(crate) struct Cold {
    pub actions: DpActions,
    /// Subtable holding this flow.
    pub subtable: u32,
    /// `port` if `actions` is the single action `output(port)`, else
    /// [`Cold::NOT_ONE_OUTPUT`] (see `BurstLookup::one_output`).
    pub one_output: u32,
}

impl Default for Cold {
    fn default() -> Cold {
        Cold::new(DpActions::default(), 0)
    }
}

impl Cold {
    /// [`Cold::one_output`] of any other action list (a port of this number is taken as
    /// not one output: only a burst's shortcut is lost).
    pub const NOT_ONE_OUTPUT: u32 = u32::MAX;

    fn new(actions: DpActions, subtable: u32) -> Cold {
        let one_output = match actions.as_slice() {
            [DpAction::Output(port)] => *port,
            _ => Cold::NOT_ONE_OUTPUT,
        };
        Cold { actions, subtable, one_output }
    }
}

/// The storage of megaflows. See the module doc.
pub(crate) struct Slab {
    pub records: Vec<Record>,
    pub cold: Vec<Cold>,
    /// Mask of each subtable, at index `subtable + 1`; entry 0 is the all-zero mask that
    /// free slots point at. Small (one entry per mask), so it stays in L1/L2.
    pub masks: Vec<Mask>,
    free: Vec<u32>,
    len: usize,
}

impl Slab {
    pub fn with_capacity(n: usize) -> Self {
        Slab {
            records: Vec::with_capacity(n),
            cold: Vec::with_capacity(n),
            masks: {
                let mut m = Vec::with_capacity(crate::classifier::PREALLOC_SUBTABLES + 1);
                m.push(FlowKey::ZERO);
                m
            },
            // Every slot can be free at once: freeing never grows the list.
            free: Vec::with_capacity(n),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Records the mask of subtable `subtable` (called when the subtable is created).
    pub fn set_subtable_mask(&mut self, subtable: u32, mask: Mask) {
        let ix = subtable as usize + 1;
        if self.masks.len() <= ix {
            self.masks.resize(ix + 1, FlowKey::ZERO);
        }
        self.masks[ix] = mask;
    }

    /// The mask of slot `i` (all-zero for a free slot).
    #[inline(always)]
    pub fn mask(&self, i: usize) -> &Mask {
        &self.masks[self.records[i].mask_ix as usize]
    }

    /// True if the megaflow in slot `i` matches `packet` (false for a free slot).
    #[inline(always)]
    pub fn slot_matches(&self, i: usize, packet: &FlowKey) -> bool {
        let r = &self.records[i];
        r.key.matches(&self.masks[r.mask_ix as usize], packet)
    }

    /// Stores a megaflow (key already masked with its subtable's mask) and returns its id.
    pub fn alloc(&mut self, key: FlowKey, actions: DpActions, subtable: u32, now: u64) -> MegaflowId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.records.push(Record::FREE);
                self.cold.push(Cold::default());
                (self.records.len() - 1) as u32
            }
        };
        let i = index as usize;
        let generation = self.records[i].generation;
        self.records[i] = Record {
            key,
            generation,
            mask_ix: subtable + 1,
            tcp_flags_word: 0,
            live: true,
            packets: 0,
            bytes: 0,
            used: now,
            installed: now,
        };
        self.cold[i] = Cold::new(actions, subtable);
        self.len += 1;
        MegaflowId { index, generation }
    }

    /// Frees a live slot, returning its megaflow and final stats.
    pub fn free(&mut self, index: u32) -> (Megaflow, MegaflowStats) {
        let i = index as usize;
        let mask = *self.mask(i);
        let r = self.records[i];
        self.records[i] = Record { generation: r.generation.wrapping_add(1), ..Record::FREE };
        let actions = std::mem::take(&mut self.cold[i].actions);
        self.cold[i].one_output = Cold::NOT_ONE_OUTPUT;
        self.free.push(index);
        self.len -= 1;
        (Megaflow { key: r.key, mask, actions }, r.stats())
    }

    /// The slot of `id` if it is live.
    #[inline(always)]
    pub fn resolve(&self, id: MegaflowId) -> Option<usize> {
        let i = id.index as usize;
        match self.records.get(i) {
            Some(r) if r.live && r.generation == id.generation => Some(i),
            _ => None,
        }
    }

    #[inline(always)]
    pub fn id_of(&self, index: u32) -> MegaflowId {
        MegaflowId { index, generation: self.records[index as usize].generation }
    }

    pub fn get(&self, i: usize) -> MegaflowRef<'_> {
        MegaflowRef {
            id: self.id_of(i as u32),
            key: &self.records[i].key,
            mask: self.mask(i),
            actions: &self.cold[i].actions,
            stats: self.records[i].stats(),
        }
    }

    pub fn live_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.records.iter().enumerate().filter(|(_, r)| r.live).map(|(i, _)| i)
    }

    /// Bytes of memory per slot of the slab itself (not counting action lists).
    pub const BYTES_PER_SLOT: usize = std::mem::size_of::<Record>() + std::mem::size_of::<Cold>();

    /// Test helper: allocates with a fresh mask-table entry for `mask`.
    #[cfg(test)]
    pub fn alloc_with_mask(&mut self, key: FlowKey, mask: Mask, actions: DpActions, now: u64) -> MegaflowId {
        let subtable = (self.masks.len() - 1) as u32;
        self.set_subtable_mask(subtable, mask);
        self.alloc(key.masked(&mask), actions, subtable, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_slot_matches_nothing_and_id_goes_stale() {
        let mut slab = Slab::with_capacity(4);
        let mut k = FlowKey::ZERO;
        k.set_in_port(1);
        let id = slab.alloc_with_mask(k, FlowKey::EXACT, vec![DpAction::Output(2)], 5);
        assert_eq!(slab.resolve(id), Some(0));
        assert!(slab.slot_matches(0, &k));
        let (mf, stats) = slab.free(id.index);
        assert_eq!(mf.actions, vec![DpAction::Output(2)]);
        assert_eq!(stats.used, 5);
        assert_eq!(slab.resolve(id), None);
        for p in [FlowKey::ZERO, FlowKey::EXACT, k] {
            assert!(!slab.slot_matches(0, &p));
        }
        let id2 = slab.alloc_with_mask(k, FlowKey::EXACT, vec![], 6);
        assert_eq!(id2.index, id.index);
        assert_ne!(id2, id);
        assert_eq!(slab.resolve(id), None);
        assert_eq!(slab.resolve(id2), Some(0));
    }

    #[test]
    fn overlap_rule() {
        let mut k1 = FlowKey::ZERO;
        k1.set_nw_dst_u32(0x0a00_0000);
        let mut m1 = FlowKey::ZERO;
        m1.set_nw_dst_u32(0xff00_0000); // 10/8
        let mut k2 = FlowKey::ZERO;
        k2.set_nw_dst_u32(0x0a01_0000);
        let mut m2 = FlowKey::ZERO;
        m2.set_nw_dst_u32(0xffff_0000); // 10.1/16
        assert!(masks_overlap(&k1, &m1, &k2, &m2));
        k2.set_nw_dst_u32(0x0b01_0000); // 11.1/16
        assert!(!masks_overlap(&k1, &m1, &k2, &m2));
        // Different fields always overlap (some packet has both).
        let mut k3 = FlowKey::ZERO;
        k3.set_tp_dst(80);
        let mut m3 = FlowKey::ZERO;
        m3.set_tp_dst(0xffff);
        assert!(masks_overlap(&k1, &m1, &k3, &m3));
    }
}
