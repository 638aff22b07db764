//! The tuple-space megaflow classifier.
//!
//! # Design
//!
//! Tuple-space search (Srinivasan et al., as in Open vSwitch's `dpcls`): megaflows are
//! grouped by mask into *subtables*; a subtable is a hash table from masked key to
//! megaflow. Looking up a packet means, for each subtable, masking the packet's key with
//! the subtable's mask and probing that subtable's hash table. The first hit is the
//! answer and the search stops: with [`Classifier::insert`] megaflows never overlap, so
//! at most one matches; with [`Classifier::insert_unchecked`] the caller may install
//! partially overlapping megaflows that carry the same decision for the packets they
//! share (the slow path's translator does), and any one of them is a right answer.
//!
//! - **Partitions by in_port.** Megaflows whose mask covers all of `in_port` live in the
//!   partition of that port; each partition has its own subtables, so a port's packets
//!   never probe masks that only other ports use (OVS keeps one `dpcls` per in_port for
//!   the same reason). Megaflows with a partial `in_port` mask live in one extra
//!   "any port" partition, probed only if it is non-empty and the packet missed its
//!   port's partition.
//! - **Batches.** A lookup takes up to 32 keys and a bitmap of the ones still unmatched.
//!   Keys are grouped by in_port (a burst usually comes from one port); for each
//!   subtable, in rank order, every still-unmatched key of the group is hashed and
//!   probed in one pass, by an instance of the probe loop for the subtable's mask shape
//!   (its hash, and for common shapes a compare of only the covered words, which reuses
//!   the masked words the hash loaded); hits clear their bit and the loop ends when the
//!   bitmap is empty. A PMD's burst comes from one port:
//!   `lookup_batch_port` skips the grouping. In a subtable's probe loop, a key whose
//!   hash equals the last hit's is first compared with that megaflow (a train of one
//!   flow then skips the bucket probes).
//! - **Ranking.** Each subtable counts its hits. Every [`RERANK_INTERVAL`] lookups of a
//!   partition its subtables are re-sorted by hit count (most hits first) and the counts
//!   halved, so the order follows recent traffic, deterministically.
//! - **Hash tables.** Buckets of one cache line: 8 (tag byte, slab index) pairs and an
//!   overflow count; a tag is the top byte of the entry's 32-bit hash. A probe compares
//!   the 8 tags at once as the bytes of one word, without branches, and reads a
//!   megaflow only on a tag match; it moves to the next bucket only if entries
//!   spilled past this one (tables grow at 3/4 full, so that is rare). A first version
//!   used one-slot linear probing; its "is this slot empty / equal" branches were
//!   mispredicted on most probes of a missing subtable. The subtable hash only mixes
//!   the key words its mask covers.
//! - **Overlap check.** Inserting (k1, m1) must find any (k2, m2) with
//!   `(k1 ^ k2) & m1 & m2 == 0`. For a subtable whose mask m2 is a subset of m1 that is
//!   one probe for `k1 & m2`; other subtables are scanned, so the check costs up to
//!   O(flows): measured 6.4-6.6 µs per insert at 1,000 flows and 0.63-0.85 ms at 100,000 flows
//!   (360 masks), against ~0.15 µs for [`Classifier::insert_unchecked`], which only
//!   refuses an identical key and mask. A PMD should use the unchecked form and leave
//!   overlap policy to the slow path (off the forwarding thread).
//!
//! - **Storage without allocation.** Everything on the lookup path is allocation-free.
//!   So is inserting and removing, within the sizes reserved at creation: the slab
//!   holds `max_flows` slots; subtable, partition and mask tables are reserved for
//!   [`PREALLOC_SUBTABLES`] subtables and [`PREALLOC_PORTS`] ports; and subtable hash
//!   tables come from a pool (`BucketPool`) of spare bucket arrays, filled at creation with
//!   one array of every power-of-two size up to what `max_flows` megaflows in one
//!   subtable need (about twice that table: 8 MiB at 200,000 flows) plus
//!   [`PREALLOC_SUBTABLES`] one-bucket arrays. A table that grows or dies gives its
//!   array back to the pool, so the arrays circulate; only a shape of use beyond that
//!   (more subtables, several huge subtables at once) allocates, counted in
//!   [`Classifier::heap_tables`].

use std::collections::HashMap;

use crate::actions::DpActions;
use crate::key::{FlowKey, KEY_WORDS, Mask};
use crate::megaflow::{Megaflow, MegaflowId, MegaflowRef, MegaflowStats, Record, Slab, masks_overlap};

/// Largest batch a lookup takes.
pub const MAX_BATCH: usize = ferrovs_config::BURST_SIZE;
/// Lookups of a partition between two re-rankings of its subtables.
pub const RERANK_INTERVAL: u32 = 1024;

const EMPTY: u32 = u32::MAX;
/// Odd 64-bit constants (from a seeded generator), one per key word, for the subtable hash.
const WORD_MULTIPLIERS: [u64; KEY_WORDS] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0xd6e8_feb8_6659_fd93,
    0xa076_1d64_78bd_642f,
    0xe703_7ed1_a0b4_28db,
    0x8ebc_6af0_9c88_c6e3,
    0x5899_65cc_7537_4cc3,
];
/// Subtables (distinct masks) whose bookkeeping is reserved at creation (more allocate).
pub const PREALLOC_SUBTABLES: usize = 256;
/// In_port partitions reserved at creation (more allocate).
pub const PREALLOC_PORTS: usize = 64;
/// Partition of megaflows that do not match all of `in_port`.
const ANY_PORT: u32 = 0;

/// Why an insertion was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("megaflow overlaps installed megaflow {0:?}")]
    Overlap(MegaflowId),
    #[error("megaflow table is full ({0} megaflows)")]
    Full(usize),
}

/// Slots per bucket: 8 tag bytes, an overflow count and 8 indices fit one cache line.
const WAYS: usize = 8;

/// One cache line of a subtable's hash table.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    /// Byte `w`: the tag ([`tag`]) of the entry in way `w`, 0 for an empty way.
    tags: u64,
    /// Entries stored past this bucket because it was full when they were inserted (a
    /// lookup continues to the next bucket only if this is non-zero).
    overflow: u32,
    index: [u32; WAYS],
}

/// One in every byte lane of a `u64`.
const LANES_01: u64 = 0x0101_0101_0101_0101;
const LANES_7F: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const LANES_80: u64 = 0x8080_8080_8080_8080;

/// An entry's tag in its bucket: the hash's top byte, never 0 ([`HASH_SET_BIT`]). The
/// bucket index takes the hash's low bits, so the tag's other 7 bits are independent
/// of the bucket (up to 2^24 buckets).
#[inline(always)]
fn tag(hash: u32) -> u8 {
    (hash >> 24) as u8
}

/// The subtable hash of a multilinear sum (see `Subtable::hash`): one final mix, and
/// [`HASH_SET_BIT`] set.
#[inline(always)]
fn finish_hash(sum: u64) -> u32 {
    let h = (sum ^ (sum >> 32)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    (h >> 32) as u32 | HASH_SET_BIT
}

/// Mask shapes with their own hash instance (`Subtable::with_shape_hash`), as bitmaps of the
/// covered key words (see the key module's layout): in_port/dl_type and the IPv4
/// destination; the same and the source; the same, nw_proto and the L4 ports.
const COVER_IPV4_DST: u8 = 1 << 0 | 1 << 7;
const COVER_IPV4_SRC_DST: u8 = COVER_IPV4_DST | 1 << 5;
const COVER_5_TUPLE: u8 = COVER_IPV4_SRC_DST | 1 << 2 | 1 << 3;

/// Set in every subtable hash (the bucket index takes the low bits), so that no tag
/// equals an empty way's 0 and a probe needs no "is this way filled" test.
const HASH_SET_BIT: u32 = 1 << 31;

const EMPTY_BUCKET: Bucket = Bucket { tags: 0, overflow: 0, index: [EMPTY; WAYS] };

impl Bucket {
    /// The filled ways whose tag is `hash`'s, as bit `8 * w + 7` for way `w` (no
    /// branches, so a lookup that misses costs no mispredicted branch per slot). The
    /// eight tags are compared at once as the bytes of one word (SWAR): XOR with the
    /// tag in every byte leaves 0 in the matching bytes, and the exact zero-byte test
    /// (adding 0x7f to each byte's low 7 bits carries into its top bit unless they are
    /// 0; no carry crosses a byte) finds them. An empty way's tag is 0, which no
    /// entry's is ([`HASH_SET_BIT`]). About ten instructions; comparing 32-bit hashes
    /// as lanes cost about 25 (the compiler vectorised half of the lanes, with a
    /// horizontal OR), and a tag that matches a wrong entry (1 in 128 per filled way)
    /// costs a record compare that fails.
    #[inline(always)]
    fn matches(&self, hash: u32) -> u64 {
        debug_assert!(hash & HASH_SET_BIT != 0);
        let x = self.tags ^ (tag(hash) as u64).wrapping_mul(LANES_01);
        let nonzero = ((x & LANES_7F) + LANES_7F) | x;
        !nonzero & LANES_80
    }

    #[inline(always)]
    fn set_way(&mut self, w: usize, hash: u32, index: u32) {
        self.tags = self.tags & !(0xff << (8 * w)) | (tag(hash) as u64) << (8 * w);
        self.index[w] = index;
    }

    #[inline(always)]
    fn free_way(&self) -> Option<usize> {
        self.index.iter().position(|&i| i == EMPTY)
    }
}

/// [`Subtable::search`] over a subtable's `buckets` (`bucket_mask` = their number - 1).
#[inline(always)]
fn search_buckets(
    buckets: &[Bucket],
    bucket_mask: usize,
    hash: u32,
    mut is_it: impl FnMut(u32) -> bool,
) -> Option<u32> {
    let mut b = hash as usize & bucket_mask;
    loop {
        let bucket = &buckets[b];
        let mut hits = bucket.matches(hash);
        while hits != 0 {
            let w = (hits.trailing_zeros() / 8) as usize;
            if is_it(bucket.index[w]) {
                return Some(bucket.index[w]);
            }
            // Cleared only after a failed compare: clearing it before kept the old and
            // the new bitmap live across the compare's exits (a copy per compared word).
            hits &= hits - 1;
        }
        if bucket.overflow == 0 {
            return None;
        }
        b = (b + 1) & bucket_mask;
    }
}

/// Code generic over a subtable's hash instance ([`Subtable::with_shape_hash`]).
trait ShapeHashUser {
    type Out;
    /// `hash` is [`Subtable::hash`]; `matches(record, key)` is
    /// `record.matches(&subtable.mask, key)` for a record of the subtable (its key
    /// masked by the subtable's mask).
    fn run(self, hash: impl Fn(&FlowKey) -> u32, matches: impl Fn(&FlowKey, &FlowKey) -> bool) -> Self::Out;
}

/// One subtable's probe of the keys of bitmap `todo`: for each, its hash by the
/// subtable's instance, then its bucket; a hit sets `out[i]`. Returns the bitmap of hits.
///
/// Hash and probe in one pass over the keys: a pass that hashed every key first and
/// stored the hashes (so that the probes' loads would overlap) cost the bitmap walk,
/// the store and the reload twice per key, and gained no overlap the processor's
/// out-of-order window does not find in one pass (the probes of different keys are
/// independent either way).
struct ProbeSubtable<'a> {
    st: &'a Subtable,
    records: &'a [Record],
    keys: &'a [FlowKey],
    todo: u32,
    out: &'a mut [u32; MAX_BATCH],
}

impl ShapeHashUser for ProbeSubtable<'_> {
    type Out = u32;

    #[inline(always)]
    fn run(self, hash_of: impl Fn(&FlowKey) -> u32, matches: impl Fn(&FlowKey, &FlowKey) -> bool) -> u32 {
        let ProbeSubtable { st, records, keys, todo, out } = self;
        // The misses, set off the hit path (the hits are `todo` without them).
        let mut missed = 0u32;
        let mut bits = todo;
        // The last hit's hash and megaflow: a packet with the same hash (usually the
        // same flow: bursts come in trains) tries that megaflow first and skips the
        // bucket probe. 0 is no subtable hash (`HASH_SET_BIT`), so the first packet
        // never takes it.
        let (mut last_hash, mut last_index) = (0u32, 0u32);
        // The subtable's invariants as locals: the loop keeps them in registers
        // instead of reloading them through `st` around every probe.
        let (buckets, bucket_mask) = (&st.buckets[..], st.bucket_mask());
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let key = &keys[i];
            let hash = hash_of(key);
            if hash == last_hash && matches(&records[last_index as usize].key, key) {
                out[i] = last_index;
            } else if let Some(index) =
                search_buckets(buckets, bucket_mask, hash, |x| matches(&records[x as usize].key, key))
            {
                out[i] = index;
                (last_hash, last_index) = (hash, index);
            } else {
                missed |= 1 << i;
            }
        }
        todo & !missed
    }
}

/// Spare bucket arrays for subtable hash tables, so that creating and growing a
/// subtable takes memory allocated earlier (see the module doc).
struct BucketPool {
    spare: Vec<Vec<Bucket>>,
    /// Arrays that had to be allocated because no spare was big enough.
    heap: u64,
}

impl BucketPool {
    /// Spares for `subtables` new subtables and for one subtable growing to hold
    /// `max_flows` entries.
    fn new(subtables: usize, max_flows: usize) -> BucketPool {
        let mut sizes = vec![1usize; subtables];
        let mut n = 2usize;
        while n / 2 * WAYS * 3 < max_flows * 4 {
            sizes.push(n);
            n *= 2;
        }
        let mut spare = Vec::with_capacity(2 * sizes.len() + 8);
        spare.extend(sizes.into_iter().map(|n| vec![EMPTY_BUCKET; n]));
        BucketPool { spare, heap: 0 }
    }

    /// An array of `n` empty buckets: the smallest spare that holds `n`, else a new one.
    fn take(&mut self, n: usize) -> Vec<Bucket> {
        let best =
            (0..self.spare.len()).filter(|&i| self.spare[i].capacity() >= n).min_by_key(|&i| self.spare[i].capacity());
        match best {
            Some(i) => {
                let mut v = self.spare.swap_remove(i);
                v.clear();
                v.resize(n, EMPTY_BUCKET);
                v
            }
            None => {
                self.heap += 1;
                vec![EMPTY_BUCKET; n]
            }
        }
    }

    /// Keeps `v` for later (freed only if the pool is full).
    fn give(&mut self, v: Vec<Bucket>) {
        if self.spare.len() < self.spare.capacity() {
            self.spare.push(v);
        }
    }
}

struct Subtable {
    mask: Mask,
    /// Indices of the words of `mask` that are not zero; only they are hashed.
    words: [u8; KEY_WORDS],
    n_words: u8,
    /// The same as a bitmap (bit `i`: word `i` is covered), the mask's shape.
    cover: u8,
    buckets: Vec<Bucket>,
    len: usize,
    hits: u64,
    partition: u32,
    /// [`WORD_MULTIPLIERS`], read from here by the hash instances with constant word
    /// positions: a multiply by a value in memory is one instruction, by a 64-bit
    /// constant two (the compiler reloads the constant for every key).
    multipliers: [u64; KEY_WORDS],
}

impl Subtable {
    fn new(mask: Mask, partition: u32, buckets: Vec<Bucket>) -> Self {
        let mut words = [0u8; KEY_WORDS];
        let mut n = 0;
        let mut cover = 0u8;
        for (i, &w) in mask.w.iter().enumerate() {
            if w != 0 {
                words[n] = i as u8;
                n += 1;
                cover |= 1 << i;
            }
        }
        Subtable {
            mask,
            words,
            n_words: n as u8,
            cover,
            buckets,
            len: 0,
            hits: 0,
            partition,
            multipliers: WORD_MULTIPLIERS,
        }
    }

    /// Hash of `key & mask` (with [`HASH_SET_BIT`] set), over the covered words only.
    /// Each word is multiplied by its own odd constant and the products summed
    /// (multilinear hashing): the multiplications are independent, so they run in
    /// parallel instead of as a chain, and one final mix spreads the sum's high bits
    /// down. (Hashing all eight words unrolled, which needs no index loads, cost more:
    /// the compiler vectorises the eight 64-bit multiplies into SSE2's 32-bit ones,
    /// about twice the instructions.)
    ///
    /// Specialised by the number of covered words, as OVS's dpcls specialises its
    /// lookup by the mask's shape: each count has its own fully unrolled sum, with no
    /// loop counter or exit test per word (one predictable branch per hash picks it).
    #[inline(always)]
    fn hash(&self, key: &FlowKey) -> u32 {
        let sum = match self.n_words {
            1 => self.sum_words::<1>(key),
            2 => self.sum_words::<2>(key),
            3 => self.sum_words::<3>(key),
            4 => self.sum_words::<4>(key),
            5 => self.sum_words::<5>(key),
            6 => self.sum_words::<6>(key),
            7 => self.sum_words::<7>(key),
            8 => self.sum_words::<8>(key),
            _ => 0,
        };
        finish_hash(sum)
    }

    /// Runs `user` with this subtable's hash instance (a function equal to
    /// [`Subtable::hash`]), the choice by mask shape made once for a whole batch rather
    /// than once per key.
    ///
    /// A few common shapes (which words the mask covers) have their own instance with
    /// the word positions as constants: no per-word index load, and the mask words and
    /// multipliers stay in registers across the batch. They are the shapes of IPv4
    /// rules on the destination (routes), on both addresses, and on the 5-tuple (L4
    /// ACLs); any other shape takes the instance for its number of covered words.
    #[inline(always)]
    fn with_shape_hash<U: ShapeHashUser>(&self, user: U) -> U::Out {
        let mask = &self.mask;
        let any = |r: &FlowKey, k: &FlowKey| r.matches(mask, k);
        match self.cover {
            COVER_IPV4_DST => {
                return user
                    .run(|k| self.hash_cover::<COVER_IPV4_DST>(k), |r, k| self.matches_cover::<COVER_IPV4_DST>(r, k));
            }
            COVER_IPV4_SRC_DST => {
                return user.run(
                    |k| self.hash_cover::<COVER_IPV4_SRC_DST>(k),
                    |r, k| self.matches_cover::<COVER_IPV4_SRC_DST>(r, k),
                );
            }
            COVER_5_TUPLE => {
                return user
                    .run(|k| self.hash_cover::<COVER_5_TUPLE>(k), |r, k| self.matches_cover::<COVER_5_TUPLE>(r, k));
            }
            _ => {}
        }
        match self.n_words {
            1 => user.run(|k| finish_hash(self.sum_words::<1>(k)), any),
            2 => user.run(|k| finish_hash(self.sum_words::<2>(k)), any),
            3 => user.run(|k| finish_hash(self.sum_words::<3>(k)), any),
            4 => user.run(|k| finish_hash(self.sum_words::<4>(k)), any),
            5 => user.run(|k| finish_hash(self.sum_words::<5>(k)), any),
            6 => user.run(|k| finish_hash(self.sum_words::<6>(k)), any),
            7 => user.run(|k| finish_hash(self.sum_words::<7>(k)), any),
            8 => user.run(|k| finish_hash(self.sum_words::<8>(k)), any),
            _ => user.run(|k| finish_hash(self.sum_words::<0>(k)), any),
        }
    }

    /// `record.matches(&self.mask, key)` for a record of this subtable and a mask
    /// covering exactly the words of `COVER`: the record's other words are 0 (it is
    /// masked), and so is the key's masked, so only the covered words are compared.
    #[inline(always)]
    fn matches_cover<const COVER: u8>(&self, record: &FlowKey, key: &FlowKey) -> bool {
        debug_assert_eq!(self.cover, COVER);
        debug_assert!(record.masked(&self.mask) == *record, "record not masked by its subtable's mask");
        let mut diff = 0;
        for (wi, (&k, (&m, &r))) in key.w.iter().zip(self.mask.w.iter().zip(&record.w)).enumerate() {
            if COVER & (1 << wi) != 0 {
                diff |= (k & m) ^ r;
            }
        }
        diff == 0
    }

    /// [`Subtable::hash`] for a mask covering exactly the words of `COVER` (bit `i`:
    /// word `i`).
    #[inline(always)]
    fn hash_cover<const COVER: u8>(&self, key: &FlowKey) -> u32 {
        debug_assert_eq!(self.cover, COVER);
        let mut sum: u64 = 0;
        for (wi, (&k, (&m, &mul))) in key.w.iter().zip(self.mask.w.iter().zip(&self.multipliers)).enumerate() {
            if COVER & (1 << wi) != 0 {
                sum = sum.wrapping_add((k & m).wrapping_mul(mul));
            }
        }
        finish_hash(sum)
    }

    /// The multilinear sum over the first `N` covered words (`N == n_words`).
    #[inline(always)]
    fn sum_words<const N: usize>(&self, key: &FlowKey) -> u64 {
        let mut sum: u64 = 0;
        for &wi in &self.words[..N] {
            let wi = wi as usize & (KEY_WORDS - 1);
            sum = sum.wrapping_add((key.w[wi] & self.mask.w[wi]).wrapping_mul(WORD_MULTIPLIERS[wi]));
        }
        sum
    }

    #[inline(always)]
    fn bucket_mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// Finds the first entry with hash `hash` for which `is_it(slab index)` holds.
    #[inline(always)]
    fn search(&self, hash: u32, is_it: impl FnMut(u32) -> bool) -> Option<u32> {
        search_buckets(&self.buckets, self.bucket_mask(), hash, is_it)
    }

    /// Finds the slab index of the megaflow whose key equals `masked` (already masked).
    #[inline(always)]
    fn find(&self, slab: &Slab, masked: &FlowKey, hash: u32) -> Option<u32> {
        self.search(hash, |i| slab.records[i as usize].key == *masked)
    }

    /// Adds slab index `index` with hash `hash`. Buckets keep only a tag of each hash:
    /// growing the table takes every entry's hash again from `rehash(self, index)`.
    fn insert_slot(&mut self, hash: u32, index: u32, pool: &mut BucketPool, rehash: impl Fn(&Subtable, u32) -> u32) {
        // Grow at 3/4 full: overflow chains stay short.
        if (self.len + 1) * 4 > self.buckets.len() * WAYS * 3 {
            let doubled = pool.take(self.buckets.len() * 2);
            let old = std::mem::replace(&mut self.buckets, doubled);
            for b in &old {
                for &x in b.index.iter().filter(|&&x| x != EMPTY) {
                    self.place(rehash(self, x), x);
                }
            }
            pool.give(old);
        }
        self.place(hash, index);
        self.len += 1;
    }

    fn place(&mut self, hash: u32, index: u32) {
        let m = self.bucket_mask();
        let mut b = hash as usize & m;
        loop {
            if let Some(w) = self.buckets[b].free_way() {
                self.buckets[b].set_way(w, hash, index);
                return;
            }
            self.buckets[b].overflow += 1;
            b = (b + 1) & m;
        }
    }

    /// Removes slab index `index` (whose hash is `hash`), undoing the overflow counts
    /// its insertion added on the way.
    fn remove_slot(&mut self, index: u32, hash: u32) {
        let m = self.bucket_mask();
        let home = hash as usize & m;
        let mut b = home;
        loop {
            if let Some(w) = self.buckets[b].index.iter().position(|&i| i == index) {
                self.buckets[b].set_way(w, 0, EMPTY);
                break;
            }
            if self.buckets[b].overflow == 0 {
                debug_assert!(false, "removing a flow that is not in its subtable");
                return;
            }
            b = (b + 1) & m;
        }
        let mut p = home;
        while p != b {
            self.buckets[p].overflow -= 1;
            p = (p + 1) & m;
        }
        self.len -= 1;
    }

    fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.buckets.iter().flat_map(|b| b.index.iter().copied()).filter(|&i| i != EMPTY)
    }

    fn memory_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }
}

#[derive(Default)]
struct Partition {
    /// Subtable ids in probe order.
    order: Vec<u32>,
    lookups: u32,
    len: usize,
}

/// The tuple-space classifier of one PMD. See the module doc.
pub struct Classifier {
    pub(crate) slab: Slab,
    subtables: Vec<Option<Subtable>>,
    free_subtables: Vec<u32>,
    buckets: BucketPool,
    /// Empty probe-order lists for new partitions (reserved at creation).
    spare_orders: Vec<Vec<u32>>,
    by_mask: HashMap<(u32, Mask), u32>,
    partitions: Vec<Partition>,
    port_partition: HashMap<u32, u32>,
    /// The last (port, partition) found in `port_partition`: a burst comes from one
    /// port, so this saves a SipHash lookup per burst. Partitions are never removed or
    /// renumbered, so a remembered mapping stays right forever.
    last_port: Option<(u32, u32)>,
    max_flows: usize,
    /// Megaflows installed and removed so far (what `port_wide_memo` was found at).
    changes: u64,
    /// The last answer of [`Classifier::port_wide`]: (port, `changes` then, answer).
    port_wide_memo: (u32, u64, Option<(u32, MegaflowId)>),
}

/// The partition key of a mask/key pair: the port if the mask covers all of in_port.
#[inline(always)]
fn port_of(key: &FlowKey, mask: &Mask) -> Option<u32> {
    (mask.in_port() == crate::key::IN_PORT_EXACT).then(|| key.in_port())
}

impl Classifier {
    /// A classifier that holds at most `max_flows` megaflows.
    pub fn new(max_flows: usize) -> Self {
        Classifier {
            slab: Slab::with_capacity(max_flows.min(1 << 20)),
            subtables: Vec::with_capacity(PREALLOC_SUBTABLES),
            free_subtables: Vec::with_capacity(PREALLOC_SUBTABLES),
            buckets: BucketPool::new(PREALLOC_SUBTABLES, max_flows.min(1 << 20)),
            spare_orders: (0..PREALLOC_PORTS).map(|_| Vec::with_capacity(PREALLOC_SUBTABLES)).collect(),
            by_mask: HashMap::with_capacity(PREALLOC_SUBTABLES),
            partitions: {
                let mut v = Vec::with_capacity(PREALLOC_PORTS + 1);
                v.push(Partition { order: Vec::with_capacity(PREALLOC_SUBTABLES), ..Partition::default() });
                v
            },
            port_partition: HashMap::with_capacity(PREALLOC_PORTS),
            last_port: None,
            max_flows,
            changes: 0,
            // No port is 0xffff_ffff (ports are 16 bits): the first call finds.
            port_wide_memo: (u32::MAX, 0, None),
        }
    }

    /// Number of installed megaflows.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }
    /// Subtable hash tables that had to be allocated on insert (the pool had no spare).
    pub fn heap_tables(&self) -> u64 {
        self.buckets.heap
    }

    /// Number of subtables (distinct masks, counted per partition).
    pub fn n_masks(&self) -> usize {
        self.by_mask.len()
    }

    /// The partition of megaflows that match all of `in_port == port`, if there is one.
    #[inline(always)]
    fn partition_of_port(&mut self, port: u32) -> Option<u32> {
        if let Some((p, part)) = self.last_port
            && p == port
        {
            return Some(part);
        }
        let part = *self.port_partition.get(&port)?;
        self.last_port = Some((port, part));
        Some(part)
    }

    /// How many subtables a lookup of a packet from `port` probes at most (its port's
    /// partition plus the "any port" partition). Cheap: one remembered port compare.
    #[inline]
    pub fn subtables_for_port(&mut self, port: u32) -> usize {
        let own = self.partition_of_port(port).map_or(0, |p| self.partitions[p as usize].order.len());
        own + self.partitions[ANY_PORT as usize].order.len()
    }

    /// Installs a megaflow after checking that it overlaps no installed one.
    /// Cost: one probe per subtable whose mask is a subset of the new mask, plus a scan
    /// of the other subtables of the partitions it can share packets with.
    pub fn insert(&mut self, flow: Megaflow, now: u64) -> Result<MegaflowId, InsertError> {
        let key = flow.key.masked(&flow.mask);
        if let Some(id) = self.find_overlap(&key, &flow.mask) {
            return Err(InsertError::Overlap(id));
        }
        self.insert_unchecked(Megaflow { key, ..flow }, now)
    }

    /// Installs a megaflow checking only for one with an identical key and mask. The
    /// caller guarantees it overlaps no other installed megaflow (an overlap would make
    /// lookups return either of the two).
    pub fn insert_unchecked(&mut self, flow: Megaflow, now: u64) -> Result<MegaflowId, InsertError> {
        self.try_insert_unchecked(flow, now).map_err(|(e, _)| e)
    }

    /// [`Classifier::insert_unchecked`] that gives the megaflow back (key masked) when it
    /// refuses it, so that a caller can still use its actions without having copied them.
    // Given back by value: boxing it would allocate on the PMD thread.
    #[allow(clippy::result_large_err)]
    pub fn try_insert_unchecked(&mut self, flow: Megaflow, now: u64) -> Result<MegaflowId, (InsertError, Megaflow)> {
        if self.slab.len() >= self.max_flows {
            return Err((InsertError::Full(self.max_flows), flow));
        }
        let Megaflow { key, mask, actions } = flow;
        let key = key.masked(&mask);
        let partition = self.partition_for(port_of(&key, &mask));
        let st_id = self.subtable_for(partition, mask);
        let st = self.subtables[st_id as usize].as_ref().expect("live subtable");
        let hash = st.hash(&key);
        if let Some(index) = st.find(&self.slab, &key, hash) {
            return Err((InsertError::Overlap(self.slab.id_of(index)), Megaflow { key, mask, actions }));
        }
        let id = self.slab.alloc(key, actions, st_id, now);
        let st = self.subtables[st_id as usize].as_mut().expect("live subtable");
        let records = &self.slab.records;
        st.insert_slot(hash, id.index, &mut self.buckets, |st, x| st.hash(&records[x as usize].key));
        self.partitions[partition as usize].len += 1;
        self.changes += 1;
        Ok(id)
    }

    /// Most megaflows installed at once.
    pub fn max_flows(&self) -> usize {
        self.max_flows
    }

    /// One past the highest slot number ever used: every live megaflow's
    /// [`MegaflowId::index`] is below it (for walks that visit slots a few at a time).
    pub fn slots(&self) -> usize {
        self.slab.records.len()
    }

    /// The megaflow in slot `slot` and its statistics, if the slot is live. O(1).
    #[inline]
    pub fn slot_stats(&self, slot: usize) -> Option<(MegaflowId, MegaflowStats)> {
        let r = self.slab.records.get(slot)?;
        r.live.then(|| (MegaflowId { index: slot as u32, generation: r.generation }, r.stats()))
    }

    /// Adds `packets` and `bytes` handled by megaflow `id` outside a lookup (e.g. packets
    /// that waited for its installation) to its statistics, and marks it used at `now`.
    /// False if `id` is stale.
    pub fn add_stats(&mut self, id: MegaflowId, packets: u64, bytes: u64, tcp_flags: u16, now: u64) -> bool {
        let Some(i) = self.slab.resolve(id) else { return false };
        let r = &mut self.slab.records[i];
        r.packets += packets;
        r.bytes += bytes;
        r.tcp_flags_word |= crate::key::word_of_tcp_flags(tcp_flags);
        r.used = r.used.max(now);
        true
    }

    fn partition_for(&mut self, port: Option<u32>) -> u32 {
        match port {
            None => ANY_PORT,
            Some(p) => *self.port_partition.entry(p).or_insert_with(|| {
                let order = self.spare_orders.pop().unwrap_or_default();
                self.partitions.push(Partition { order, ..Partition::default() });
                (self.partitions.len() - 1) as u32
            }),
        }
    }

    fn subtable_for(&mut self, partition: u32, mask: Mask) -> u32 {
        if let Some(&id) = self.by_mask.get(&(partition, mask)) {
            return id;
        }
        let st = Subtable::new(mask, partition, self.buckets.take(1));
        let id = match self.free_subtables.pop() {
            Some(id) => {
                self.subtables[id as usize] = Some(st);
                id
            }
            None => {
                self.subtables.push(Some(st));
                (self.subtables.len() - 1) as u32
            }
        };
        self.by_mask.insert((partition, mask), id);
        self.slab.set_subtable_mask(id, mask);
        // New subtables go last; ranking moves them up once they get hits.
        self.partitions[partition as usize].order.push(id);
        id
    }

    /// An installed megaflow that some packet matching (key, mask) also matches.
    pub fn find_overlap(&self, key: &FlowKey, mask: &Mask) -> Option<MegaflowId> {
        let key = key.masked(mask);
        let check = |part: &Partition| -> Option<MegaflowId> {
            for &st_id in &part.order {
                let st = self.subtables[st_id as usize].as_ref()?;
                if st.mask.is_subset_of(mask) {
                    let probe_key = key.masked(&st.mask);
                    if let Some(i) = st.find(&self.slab, &probe_key, st.hash(&probe_key)) {
                        return Some(self.slab.id_of(i));
                    }
                } else {
                    for i in st.indices() {
                        if masks_overlap(&key, mask, &self.slab.records[i as usize].key, &st.mask) {
                            return Some(self.slab.id_of(i));
                        }
                    }
                }
            }
            None
        };
        match port_of(&key, mask) {
            Some(p) => {
                if let Some(&pi) = self.port_partition.get(&p)
                    && let Some(id) = check(&self.partitions[pi as usize])
                {
                    return Some(id);
                }
                check(&self.partitions[ANY_PORT as usize])
            }
            None => self.partitions.iter().find_map(check),
        }
    }

    /// Removes a megaflow; returns it and its final stats, or `None` if `id` is stale.
    pub fn remove(&mut self, id: MegaflowId) -> Option<(Megaflow, MegaflowStats)> {
        let i = self.slab.resolve(id)?;
        Some(self.remove_index(i as u32))
    }

    fn remove_index(&mut self, index: u32) -> (Megaflow, MegaflowStats) {
        self.changes += 1;
        let i = index as usize;
        let st_id = self.slab.cold[i].subtable;
        let st = self.subtables[st_id as usize].as_mut().expect("live subtable");
        let hash = st.hash(&self.slab.records[i].key);
        st.remove_slot(index, hash);
        let partition = st.partition;
        let now_empty = st.len == 0;
        self.partitions[partition as usize].len -= 1;
        if now_empty {
            let mask = st.mask;
            if let Some(dead) = self.subtables[st_id as usize].take() {
                self.buckets.give(dead.buckets);
            }
            self.free_subtables.push(st_id);
            self.by_mask.remove(&(partition, mask));
            self.partitions[partition as usize].order.retain(|&s| s != st_id);
        }
        self.slab.free(index)
    }

    /// Removes every megaflow for which `pred` returns true; returns their ids and stats.
    pub fn remove_where(&mut self, mut pred: impl FnMut(&MegaflowRef<'_>) -> bool) -> Vec<(MegaflowId, MegaflowStats)> {
        let doomed: Vec<usize> = self.slab.live_indices().filter(|&i| pred(&self.slab.get(i))).collect();
        doomed
            .into_iter()
            .map(|i| {
                let id = self.slab.id_of(i as u32);
                (id, self.remove_index(i as u32).1)
            })
            .collect()
    }

    /// Removes every megaflow not used since `now - idle` (`used + idle <= now`).
    pub fn expire_idle(&mut self, now: u64, idle: u64) -> Vec<(MegaflowId, MegaflowStats)> {
        self.remove_where(|m| m.stats.used.saturating_add(idle) <= now)
    }

    /// The megaflow `id`, if it is still installed.
    pub fn get(&self, id: MegaflowId) -> Option<MegaflowRef<'_>> {
        self.slab.resolve(id).map(|i| self.slab.get(i))
    }

    /// Every installed megaflow, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = MegaflowRef<'_>> + '_ {
        self.slab.live_indices().map(|i| self.slab.get(i))
    }

    /// Actions of `id`, if it is still installed.
    #[inline]
    pub fn actions(&self, id: MegaflowId) -> Option<&DpActions> {
        self.slab.resolve(id).map(|i| &self.slab.cold[i].actions)
    }

    /// The megaflow that answers every key from `port` whatever its other fields, as
    /// (its subtable's id, its id): when a lookup of a key from `port` probes exactly
    /// one subtable (its port's partition has one, the "any port" partition none), that
    /// subtable's mask covers `in_port` and nothing else, and it holds `port`'s
    /// megaflow (what the slow path installs for a table of `in_port` rules). Every key
    /// of the port then hits it, so a caller can skip extracting the keys; it gets the
    /// megaflow the batch lookup would. The answer is remembered for the last port
    /// until a megaflow is installed or removed: a call costs two compares (a probe of
    /// the subtable after a change), so asking on every burst is cheap.
    #[inline]
    pub(crate) fn port_wide(&mut self, port: u32) -> Option<(u32, MegaflowId)> {
        let (memo_port, memo_changes, found) = self.port_wide_memo;
        if memo_port == port && memo_changes == self.changes {
            return found;
        }
        let found = self.find_port_wide(port);
        self.port_wide_memo = (port, self.changes, found);
        found
    }

    fn find_port_wide(&mut self, port: u32) -> Option<(u32, MegaflowId)> {
        if !self.partitions[ANY_PORT as usize].order.is_empty() {
            return None;
        }
        let p = self.partition_of_port(port)?;
        let &[st_id] = self.partitions[p as usize].order.as_slice() else { return None };
        let st = self.subtables[st_id as usize].as_ref()?;
        if st.cover != 1 || st.mask.w[0] != crate::key::IN_PORT_EXACT as u64 {
            return None;
        }
        // The masked key of every packet from `port`.
        let mut masked = FlowKey::ZERO;
        masked.set_in_port(port);
        let index = st.find(&self.slab, &masked, st.hash(&masked))?;
        Some((st_id, self.slab.id_of(index)))
    }

    /// Counts `hits` lookups answered through [`Classifier::port_wide`] by subtable
    /// `st_id` (its rank among the port's subtables).
    pub(crate) fn credit_subtable(&mut self, st_id: u32, hits: u32) {
        if let Some(Some(st)) = self.subtables.get_mut(st_id as usize) {
            st.hits += hits as u64;
        }
    }

    /// Looks up one key.
    pub fn lookup(&mut self, key: &FlowKey) -> Option<MegaflowId> {
        let mut out = [EMPTY; MAX_BATCH];
        let hits = self.lookup_batch(std::slice::from_ref(key), 1, &mut out);
        (hits & 1 != 0).then(|| self.slab.id_of(out[0]))
    }

    /// Looks up `keys[i]` for every bit `i` set in `todo` (`keys.len() <= 32`). For each
    /// hit, sets `out[i]` to the slab index of the megaflow; returns the bitmap of hits.
    #[inline]
    pub(crate) fn lookup_batch(&mut self, keys: &[FlowKey], todo: u32, out: &mut [u32; MAX_BATCH]) -> u32 {
        debug_assert!(keys.len() <= MAX_BATCH);
        let valid = if keys.len() >= 32 { u32::MAX } else { (1u32 << keys.len()) - 1 };
        let mut todo = todo & valid;
        let mut hits = 0;
        let any_port_used = self.partitions[ANY_PORT as usize].len != 0;
        while todo != 0 {
            let port = keys[todo.trailing_zeros() as usize].in_port();
            let mut group = 0u32;
            let mut bits = todo;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                // As 16-bit values (in_port's width), a compare with the key in memory.
                if keys[i].in_port() as u16 == port as u16 {
                    group |= 1 << i;
                }
            }
            todo &= !group;
            let mut left = group;
            if let Some(p) = self.partition_of_port(port) {
                left = self.lookup_partition(p, keys, left, out);
            }
            if left != 0 && any_port_used {
                left = self.lookup_partition(ANY_PORT, keys, left, out);
            }
            hits |= group & !left;
        }
        hits
    }

    /// [`Classifier::lookup_batch`] for keys (those of `todo`: the others may be unset)
    /// that all have `in_port == port` (a burst from one port): no grouping by port, one
    /// partition lookup.
    #[inline]
    pub(crate) fn lookup_batch_port(
        &mut self,
        port: u32,
        keys: &[FlowKey],
        todo: u32,
        out: &mut [u32; MAX_BATCH],
    ) -> u32 {
        debug_assert!(keys.len() <= MAX_BATCH);
        let valid = if keys.len() >= 32 { u32::MAX } else { (1u32 << keys.len()) - 1 };
        let todo = todo & valid;
        // Only the keys looked up (the others may be unset: see `FramedBurst`).
        debug_assert!(
            keys.iter().enumerate().all(|(i, k)| todo & (1 << i) == 0 || k.in_port() == port),
            "keys from another port than {port}"
        );
        let mut left = todo;
        if let Some(p) = self.partition_of_port(port) {
            left = self.lookup_partition(p, keys, left, out);
        }
        if left != 0 && self.partitions[ANY_PORT as usize].len != 0 {
            left = self.lookup_partition(ANY_PORT, keys, left, out);
        }
        todo & !left
    }

    /// Looks up the keys of bitmap `todo` in one partition; returns the bitmap still missing.
    #[inline]
    fn lookup_partition(&mut self, p: u32, keys: &[FlowKey], mut todo: u32, out: &mut [u32; MAX_BATCH]) -> u32 {
        let part = &mut self.partitions[p as usize];
        part.lookups += 1;
        if part.lookups >= RERANK_INTERVAL {
            part.lookups = 0;
            let subtables = &mut self.subtables;
            part.order
                .sort_unstable_by_key(|&s| std::cmp::Reverse(subtables[s as usize].as_ref().map_or(0, |t| t.hits)));
            for &s in &part.order {
                if let Some(t) = subtables[s as usize].as_mut() {
                    t.hits /= 2;
                }
            }
        }
        let part = &self.partitions[p as usize];
        for &st_id in &part.order {
            let Some(st) = self.subtables[st_id as usize].as_ref() else { continue };
            if st.buckets.is_empty() {
                continue;
            }
            let found = st.with_shape_hash(ProbeSubtable { st, records: &self.slab.records, keys, todo, out });
            if found != 0 {
                todo &= !found;
                // Counted once per burst and subtable: cheap, and enough to rank.
                let st = self.subtables[st_id as usize].as_mut().expect("live subtable");
                st.hits += found.count_ones() as u64;
                if todo == 0 {
                    break;
                }
            }
        }
        todo
    }

    /// Approximate bytes of memory used per installed megaflow by the classifier (slab +
    /// hash slots), not counting action lists.
    pub fn bytes_per_flow(&self) -> f64 {
        let slots: usize = self.subtables.iter().flatten().map(|s| s.memory_bytes()).sum();
        let slab = self.slab.records.len() * Slab::BYTES_PER_SLOT + self.slab.masks.len() * std::mem::size_of::<Mask>();
        (slots + slab) as f64 / self.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::DpAction;

    /// A deterministic pseudo-random sequence (xorshift64) from `seed` (not 0).
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn shape_hash_instances_equal_the_single_key_hash_for_every_mask_shape() {
        let mut next = xorshift(0x1234_5678_9abc_def1u64);
        for cover in 0..=u8::MAX {
            let mut mask = FlowKey::ZERO;
            for i in 0..KEY_WORDS {
                if cover & (1 << i) != 0 {
                    mask.w[i] = next() | 1;
                }
            }
            let st = Subtable::new(mask, 0, vec![EMPTY_BUCKET]);
            assert_eq!(st.cover, cover);
            let keys: Vec<FlowKey> = (0..MAX_BATCH).map(|_| FlowKey { w: std::array::from_fn(|_| next()) }).collect();
            struct HashAll<'a>(&'a [FlowKey]);
            impl ShapeHashUser for HashAll<'_> {
                type Out = Vec<u32>;
                fn run(self, hash: impl Fn(&FlowKey) -> u32, _: impl Fn(&FlowKey, &FlowKey) -> bool) -> Vec<u32> {
                    self.0.iter().map(hash).collect()
                }
            }
            let hashes = st.with_shape_hash(HashAll(&keys));
            for (i, k) in keys.iter().enumerate() {
                let want = st.hash(k);
                assert_eq!(hashes[i], want, "shape {cover:#04x}, key {i}");
            }
        }
    }

    #[test]
    fn bucket_tag_compare_finds_exactly_the_matching_ways() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        for _ in 0..200_000 {
            let hash = next() as u32 | HASH_SET_BIT;
            let mut b = EMPTY_BUCKET;
            for w in 0..WAYS {
                let r = next();
                // Empty, the same tag, a tag one bit away (a byte of XOR 1, 2, .. 64
                // next to a matching byte is where an inexact zero-byte test errs), any.
                let h = match r % 4 {
                    0 => continue,
                    1 => hash,
                    2 => hash ^ 1 << (24 + (r >> 8) % 7),
                    _ => (r >> 32) as u32 | HASH_SET_BIT,
                };
                b.set_way(w, h, w as u32);
            }
            let want: u64 =
                (0..WAYS).filter(|&w| (b.tags >> (8 * w)) as u8 == tag(hash)).map(|w| 1u64 << (8 * w + 7)).sum();
            assert_eq!(b.matches(hash), want, "tags {:#018x}, hash {hash:#010x}", b.tags);
        }
    }

    fn flow(port: u32, dst: u32, plen: u32, out: u32) -> Megaflow {
        let mut k = FlowKey::ZERO;
        k.set_in_port(port);
        k.set_dl_type(0x0800);
        k.set_nw_dst_u32(dst);
        let mut m = FlowKey::ZERO;
        m.set_in_port(u32::MAX);
        m.set_dl_type(0xffff);
        m.set_nw_dst_u32(if plen == 0 { 0 } else { u32::MAX << (32 - plen) });
        Megaflow::new(k, m, vec![DpAction::Output(out)])
    }

    fn pkt(port: u32, dst: u32) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.set_in_port(port);
        k.set_dl_type(0x0800);
        k.set_nw_dst_u32(dst);
        k.set_tp_dst(80);
        k
    }

    #[test]
    fn insert_lookup_remove() {
        let mut c = Classifier::new(100);
        let a = c.insert(flow(1, 0x0a00_0000, 8, 2), 0).unwrap();
        let b = c.insert(flow(1, 0x0b01_0000, 16, 3), 0).unwrap();
        let d = c.insert(flow(2, 0x0a00_0000, 8, 4), 0).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.n_masks(), 3);
        assert_eq!(c.lookup(&pkt(1, 0x0a63_0001)), Some(a));
        assert_eq!(c.lookup(&pkt(1, 0x0b01_0203)), Some(b));
        assert_eq!(c.lookup(&pkt(1, 0x0b02_0203)), None);
        assert_eq!(c.lookup(&pkt(2, 0x0a01_0203)), Some(d));
        assert_eq!(c.lookup(&pkt(3, 0x0a01_0203)), None);
        assert_eq!(c.actions(b).unwrap(), &vec![DpAction::Output(3)]);
        let (mf, _) = c.remove(b).unwrap();
        assert_eq!(mf.actions, vec![DpAction::Output(3)]);
        assert!(c.remove(b).is_none());
        assert!(c.actions(b).is_none());
        assert_eq!(c.lookup(&pkt(1, 0x0b01_0203)), None);
        assert_eq!(c.n_masks(), 2);
    }

    #[test]
    fn a_burst_with_equal_subtable_hashes_gets_each_packet_its_own_megaflow() {
        // Two /32 destinations whose subtable hashes collide (found by search: 31-bit
        // hashes, so a few ten thousand keys), and a third key.
        let mask = flow(1, 0, 32, 0).mask;
        let st = Subtable::new(mask, 0, vec![EMPTY_BUCKET]);
        let mut seen = HashMap::new();
        let (a, b) = (0u32..)
            .find_map(|dst| {
                let h = st.hash(&pkt(1, dst));
                seen.insert(h, dst).map(|other| (other, dst))
            })
            .unwrap();
        assert_ne!(a, b);
        let c_dst = (0u32..).find(|&d| d != a && d != b).unwrap();
        let mut cls = Classifier::new(100);
        let fa = cls.insert(flow(1, a, 32, 2), 0).unwrap();
        let fb = cls.insert(flow(1, b, 32, 3), 0).unwrap();
        let fc = cls.insert(flow(1, c_dst, 32, 4), 0).unwrap();
        let keys = [pkt(1, a), pkt(1, a), pkt(1, b), pkt(1, b), pkt(1, a), pkt(1, c_dst), pkt(1, b)];
        let mut out = [EMPTY; MAX_BATCH];
        assert_eq!(cls.lookup_batch_port(1, &keys, u32::MAX, &mut out), 0x7f);
        let got: Vec<MegaflowId> = out[..keys.len()].iter().map(|&i| cls.slab.id_of(i)).collect();
        assert_eq!(got, vec![fa, fa, fb, fb, fa, fc, fb]);
        // With b's megaflow gone, b's packets miss even right after a's (same hash).
        cls.remove(fb).unwrap();
        let mut out = [EMPTY; MAX_BATCH];
        assert_eq!(cls.lookup_batch_port(1, &keys, u32::MAX, &mut out), 0b011_0011);
    }

    #[test]
    fn overlap_is_rejected() {
        let mut c = Classifier::new(100);
        let a = c.insert(flow(1, 0x0a00_0000, 8, 2), 0).unwrap();
        // 10.1/16 is inside 10/8 (subset scan path).
        assert_eq!(c.insert(flow(1, 0x0a01_0000, 16, 3), 0), Err(InsertError::Overlap(a)));
        // 0/0 covers everything (probe path: existing mask /8 is not a subset of /0... it
        // is the other way round, so this goes through the scan).
        assert_eq!(c.insert(flow(1, 0, 0, 3), 0), Err(InsertError::Overlap(a)));
        // Same key and mask.
        assert_eq!(c.insert(flow(1, 0x0a00_0000, 8, 9), 0), Err(InsertError::Overlap(a)));
        // Other port: fine.
        assert!(c.insert(flow(2, 0x0a01_0000, 16, 3), 0).is_ok());
        // Wildcarded in_port overlaps the port-1 flow.
        let mut any = flow(0, 0x0a00_0000, 24, 1);
        any.mask.set_in_port(0);
        assert_eq!(c.insert(any.clone(), 0), Err(InsertError::Overlap(a)));
        any.key.set_nw_dst_u32(0x0c00_0000);
        let any_id = c.insert(any, 0).unwrap();
        assert_eq!(c.lookup(&pkt(7, 0x0c00_00ff)), Some(any_id));
        assert_eq!(c.lookup(&pkt(1, 0x0a00_00ff)), Some(a));
    }

    #[test]
    fn full_table_is_rejected() {
        let mut c = Classifier::new(2);
        c.insert(flow(1, 0x0a00_0000, 8, 2), 0).unwrap();
        c.insert(flow(1, 0x0b00_0000, 8, 2), 0).unwrap();
        assert_eq!(c.insert(flow(1, 0x0c00_0000, 8, 2), 0), Err(InsertError::Full(2)));
    }

    #[test]
    fn many_flows_survive_growth_and_deletion() {
        let mut c = Classifier::new(100_000);
        let ids: Vec<_> = (0..5000u32).map(|i| c.insert_unchecked(flow(1, i << 8, 24, i), 0).unwrap()).collect();
        for (i, &id) in ids.iter().enumerate() {
            if i % 3 == 0 {
                c.remove(id).unwrap();
            }
        }
        for (i, &id) in ids.iter().enumerate() {
            let got = c.lookup(&pkt(1, ((i as u32) << 8) | 7));
            assert_eq!(got, if i % 3 == 0 { None } else { Some(id) }, "flow {i}");
        }
    }

    #[test]
    fn remove_where_and_expire() {
        let mut c = Classifier::new(100);
        let a = c.insert(flow(1, 0x0a00_0000, 8, 2), 10).unwrap();
        let b = c.insert(flow(1, 0x0b00_0000, 8, 3), 20).unwrap();
        let gone = c.expire_idle(25, 10);
        assert_eq!(gone.iter().map(|g| g.0).collect::<Vec<_>>(), vec![a]);
        let gone = c.remove_where(|m| m.actions == [DpAction::Output(3)]);
        assert_eq!(gone.iter().map(|g| g.0).collect::<Vec<_>>(), vec![b]);
        assert!(c.is_empty());
        assert_eq!(c.n_masks(), 0);
    }

    #[test]
    fn bucket_overflow_chains() {
        // 40 entries whose hashes all pick bucket 0 (low bits zero), 20 more elsewhere:
        // chains spill through several buckets and must stay findable across removals.
        let mut pool = BucketPool::new(1, 64);
        let mut st = Subtable::new(FlowKey::EXACT, 0, pool.take(1));
        let hash_of = |i: u32| (if i < 40 { i << 20 } else { i }) | HASH_SET_BIT;
        for i in 0..60 {
            st.insert_slot(hash_of(i), i, &mut pool, |_, x| hash_of(x));
        }
        let present = |st: &Subtable, i: u32| st.search(hash_of(i), |x| x == i) == Some(i);
        assert!((0..60).all(|i| present(&st, i)));
        assert!(st.buckets.iter().any(|b| b.overflow > 0), "the test must create overflow");
        for i in (0..60).step_by(3) {
            st.remove_slot(i, hash_of(i));
        }
        for i in 0..60 {
            assert_eq!(present(&st, i), i % 3 != 0, "entry {i}");
        }
        for i in 0..60 {
            if i % 3 != 0 {
                st.remove_slot(i, hash_of(i));
            }
        }
        assert_eq!(st.len, 0);
        assert!(st.buckets.iter().all(|b| b.overflow == 0 && b.index.iter().all(|&x| x == EMPTY)));
    }

    #[test]
    fn reranking_puts_hot_subtable_first() {
        let mut c = Classifier::new(100);
        c.insert(flow(1, 0x0a00_0000, 8, 2), 0).unwrap();
        let hot = c.insert(flow(1, 0x0b01_0000, 16, 3), 0).unwrap();
        for _ in 0..RERANK_INTERVAL + 1 {
            assert_eq!(c.lookup(&pkt(1, 0x0b01_0001)), Some(hot));
        }
        let p = c.port_partition[&1] as usize;
        let first = c.partitions[p].order[0];
        assert_eq!(c.subtables[first as usize].as_ref().unwrap().mask.nw_dst_u32(), 0xffff_0000);
    }
}
