//! The signature cache: a large per-PMD exact cache, packet hash -> megaflow slot.
//!
//! # Design
//!
//! The EMC stores whole keys (76 bytes an entry), so it must stay small to stay in
//! cache. This cache stores only a 32-bit hash and a 32-bit slab index: 8 bytes an
//! entry, eight entries to a 64-byte bucket, so a million entries take 8 MB and a
//! lookup touches one bucket line. It is sized for the working set (hundreds of
//! thousands of flows), not for the L1.
//!
//! A hit is *verified against the megaflow*, not against a stored key: the packet
//! must match the slot's key under the slot's mask. Since installed megaflows never
//! overlap, a megaflow that matches the packet is *the* answer, whatever hash collision
//! or slot reuse led there; a freed slot matches nothing (see `megaflow`). So entries
//! never need invalidation and a stale entry costs one failed compare. This is the
//! idea of OVS's signature match cache (SMC), with a 32-bit instead of a 16-bit
//! signature and 8-way buckets.
//!
//! Every classifier hit is inserted (the table is meant to hold the whole working
//! set): into the way already holding the same signature, else an empty way or one
//! whose megaflow is dead, else a pseudo-random way (seeded xorshift, so runs are
//! reproducible). A first version picked the way from hash bits; once every bucket
//! was full of entries from an earlier traffic phase, each new flow could only ever
//! take one way of its bucket, and two hot flows sharing bucket and way evicted each
//! other forever (measured: 1.5% of a Zipf load falling to the classifier, 4x slower).
//! Insertions only follow classifier hits, which are rare once the cache is warm, so
//! the liveness reads there cost nothing measurable.

#[cfg(test)]
use crate::key::FlowKey;
use crate::megaflow::Slab;

const WAYS: usize = 8;
const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    sig: [u32; WAYS],
    index: [u32; WAYS],
}

const EMPTY_BUCKET: Bucket = Bucket { sig: [0; WAYS], index: [EMPTY; WAYS] };

/// The signature cache. See the module doc.
pub struct SigCache {
    buckets: Vec<Bucket>,
    mask: usize,
    rng: u32,
}

impl SigCache {
    /// A cache of at least `entries` entries (rounded up to a power of two, at least 8).
    pub fn new(entries: usize) -> Self {
        let n = (entries.max(WAYS) / WAYS).next_power_of_two();
        SigCache { buckets: vec![EMPTY_BUCKET; n], mask: n - 1, rng: 0x9e37_79b9 }
    }

    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    #[inline(always)]
    fn bucket_of(&self, hash: u32) -> usize {
        // Fold the high bits in so the bucket does not use only the bits the EMC uses.
        ((hash ^ (hash >> 15).rotate_left(7)) as usize) & self.mask
    }

    /// Reads the bucket of `hash` (a plain load: on a miss it starts the memory access
    /// early for a later [`SigCache::lookup`] of the same batch).
    #[inline(always)]
    pub(crate) fn touch(&self, hash: u32) -> u32 {
        self.buckets[self.bucket_of(hash)].sig[0]
    }

    /// The slab index stored under signature `hash`, unverified (insertion keeps at most
    /// one entry per signature in a bucket), or `u32::MAX`.
    #[inline(always)]
    pub(crate) fn candidate(&self, hash: u32) -> u32 {
        let b = &self.buckets[self.bucket_of(hash)];
        let mut found = EMPTY;
        for w in 0..WAYS {
            if b.sig[w] == hash {
                found = b.index[w];
            }
        }
        found
    }

    /// The slab index of the megaflow that matches `key`, if the cache knows it (the
    /// one-packet form of `candidate` + verification that `FlowCache` does per burst).
    #[cfg(test)]
    pub(crate) fn lookup(&self, slab: &Slab, key: &FlowKey, hash: u32) -> Option<u32> {
        let b = &self.buckets[self.bucket_of(hash)];
        for w in 0..WAYS {
            if b.sig[w] == hash && b.index[w] != EMPTY {
                let i = b.index[w] as usize;
                if i < slab.records.len() && slab.slot_matches(i, key) {
                    return Some(i as u32);
                }
            }
        }
        None
    }

    /// Caches `hash` -> `index`: overwrites the entry with the same signature, else an
    /// empty or dead entry, else one picked by the hash.
    #[inline]
    pub(crate) fn insert(&mut self, slab: &Slab, hash: u32, index: u32) {
        let bi = self.bucket_of(hash);
        let b = &mut self.buckets[bi];
        let mut victim = None;
        for w in 0..WAYS {
            if b.sig[w] == hash {
                victim = Some(w);
                break;
            }
        }
        if victim.is_none() {
            for w in 0..WAYS {
                let e = b.index[w];
                if e == EMPTY || !slab.records.get(e as usize).is_some_and(|r| r.live) {
                    victim = Some(w);
                    break;
                }
            }
        }
        let w = victim.unwrap_or_else(|| {
            let mut x = self.rng;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            self.rng = x;
            x as usize % WAYS
        });
        let b = &mut self.buckets[bi];
        b.sig[w] = hash;
        b.index[w] = index;
    }

    pub fn clear(&mut self) {
        self.buckets.fill(EMPTY_BUCKET);
    }

    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_by_match_not_by_hash() {
        let mut slab = Slab::with_capacity(4);
        let mut k = FlowKey::ZERO;
        k.set_in_port(1);
        k.set_tp_dst(80);
        let mut mask = FlowKey::ZERO;
        mask.set_tp_dst(0xffff);
        let id = slab.alloc_with_mask(k, mask, vec![], 0);
        let mut sc = SigCache::new(64);
        sc.insert(&slab, 1234, id.index);
        assert_eq!(sc.lookup(&slab, &k, 1234), Some(id.index));
        // Same hash, packet not matching the megaflow: miss.
        let mut other = k;
        other.set_tp_dst(81);
        assert_eq!(sc.lookup(&slab, &other, 1234), None);
        // Another packet of the megaflow under a colliding hash still verifies.
        let mut same_flow = k;
        same_flow.set_tp_src(999);
        assert_eq!(sc.lookup(&slab, &same_flow, 1234), Some(id.index));
        // Freed: miss.
        slab.free(id.index);
        assert_eq!(sc.lookup(&slab, &k, 1234), None);
    }

    #[test]
    fn full_bucket_replaces() {
        let mut slab = Slab::with_capacity(16);
        let ids: Vec<_> = (0..12u16)
            .map(|p| {
                let mut k = FlowKey::ZERO;
                k.set_tp_dst(p);
                slab.alloc_with_mask(k, FlowKey::EXACT, vec![], 0)
            })
            .collect();
        let mut sc = SigCache::new(8); // one bucket
        for (n, id) in ids.iter().enumerate() {
            sc.insert(&slab, n as u32 * 0x0800_0000, id.index);
        }
        let present = (0..12u16)
            .filter(|&p| {
                let mut k = FlowKey::ZERO;
                k.set_tp_dst(p);
                sc.lookup(&slab, &k, p as u32 * 0x0800_0000).is_some()
            })
            .count();
        assert_eq!(present, 8);
    }
}
