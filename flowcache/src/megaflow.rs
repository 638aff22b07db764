//! Megaflows and the generation-checked slab that stores them.
//!
//! # Design
//!
//! A megaflow is a masked key, its mask, its datapath actions and its statistics. A
//! packet matches when `(packet & mask) == key`. The slab keeps them in three parallel
//! arrays indexed by a `u32` slot number, split by how hot the data is:
//!
//! - `matchers`: key and mask, 128 bytes, two cache lines, read by every classifier and
//!   signature-cache verification. A free slot holds a mask of zero and a key of all
//!   ones, which no packet can match (`(p & 0) != !0`), so a stale cache reference to a
//!   freed slot simply fails verification.
//! - `hot`: generation and statistics, 32 bytes, written once per packet hit.
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

/// Key and mask of one slot, for matching. See the module doc.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Matcher {
    pub key: FlowKey,
    pub mask: Mask,
}

impl Matcher {
    /// Matches nothing: a mask of zero makes `packet & mask` zero, never `!0`.
    pub const NEVER: Matcher = Matcher { key: FlowKey::EXACT, mask: FlowKey::ZERO };
}

/// Generation and statistics of one slot.
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
pub(crate) struct Hot {
    pub generation: u32,
    pub tcp_flags: u16,
    pub live: bool,
    pub packets: u64,
    pub bytes: u64,
    pub used: u64,
}

impl Hot {
    pub fn stats(&self) -> MegaflowStats {
        MegaflowStats { packets: self.packets, bytes: self.bytes, used: self.used, tcp_flags: self.tcp_flags }
    }
}

/// Actions and classifier bookkeeping of one slot.
#[derive(Default)]
pub(crate) struct Cold {
    pub actions: DpActions,
    /// Subtable holding this flow.
    pub subtable: u32,
}

/// The storage of megaflows. See the module doc.
pub(crate) struct Slab {
    pub matchers: Vec<Matcher>,
    pub hot: Vec<Hot>,
    pub cold: Vec<Cold>,
    free: Vec<u32>,
    len: usize,
}

impl Slab {
    pub fn with_capacity(n: usize) -> Self {
        Slab {
            matchers: Vec::with_capacity(n),
            hot: Vec::with_capacity(n),
            cold: Vec::with_capacity(n),
            free: Vec::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Stores a megaflow (key already masked) and returns its id.
    pub fn alloc(&mut self, key: FlowKey, mask: Mask, actions: DpActions, subtable: u32, now: u64) -> MegaflowId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.matchers.push(Matcher::NEVER);
                self.hot.push(Hot::default());
                self.cold.push(Cold::default());
                (self.matchers.len() - 1) as u32
            }
        };
        let i = index as usize;
        self.matchers[i] = Matcher { key, mask };
        let generation = self.hot[i].generation;
        self.hot[i] = Hot { generation, tcp_flags: 0, live: true, packets: 0, bytes: 0, used: now };
        self.cold[i] = Cold { actions, subtable };
        self.len += 1;
        MegaflowId { index, generation }
    }

    /// Frees a live slot, returning its megaflow and final stats.
    pub fn free(&mut self, index: u32) -> (Megaflow, MegaflowStats) {
        let i = index as usize;
        let m = std::mem::replace(&mut self.matchers[i], Matcher::NEVER);
        let stats = self.hot[i].stats();
        self.hot[i].live = false;
        self.hot[i].generation = self.hot[i].generation.wrapping_add(1);
        let actions = std::mem::take(&mut self.cold[i].actions);
        self.free.push(index);
        self.len -= 1;
        (Megaflow { key: m.key, mask: m.mask, actions }, stats)
    }

    /// The slot of `id` if it is live.
    #[inline(always)]
    pub fn resolve(&self, id: MegaflowId) -> Option<usize> {
        let i = id.index as usize;
        match self.hot.get(i) {
            Some(h) if h.live && h.generation == id.generation => Some(i),
            _ => None,
        }
    }

    #[inline(always)]
    pub fn id_of(&self, index: u32) -> MegaflowId {
        MegaflowId { index, generation: self.hot[index as usize].generation }
    }

    pub fn get(&self, i: usize) -> MegaflowRef<'_> {
        MegaflowRef {
            id: self.id_of(i as u32),
            key: &self.matchers[i].key,
            mask: &self.matchers[i].mask,
            actions: &self.cold[i].actions,
            stats: self.hot[i].stats(),
        }
    }

    pub fn live_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.hot.iter().enumerate().filter(|(_, h)| h.live).map(|(i, _)| i)
    }

    /// Bytes of memory per slot of the slab itself (not counting action lists).
    pub const BYTES_PER_SLOT: usize =
        std::mem::size_of::<Matcher>() + std::mem::size_of::<Hot>() + std::mem::size_of::<Cold>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_slot_matches_nothing_and_id_goes_stale() {
        let mut slab = Slab::with_capacity(4);
        let mut k = FlowKey::ZERO;
        k.set_in_port(1);
        let id = slab.alloc(k, FlowKey::EXACT, vec![DpAction::Output(2)], 0, 5);
        assert_eq!(slab.resolve(id), Some(0));
        assert!(slab.matchers[0].key.matches(&slab.matchers[0].mask, &k));
        let (mf, stats) = slab.free(id.index);
        assert_eq!(mf.actions, vec![DpAction::Output(2)]);
        assert_eq!(stats.used, 5);
        assert_eq!(slab.resolve(id), None);
        for p in [FlowKey::ZERO, FlowKey::EXACT, k] {
            assert!(!slab.matchers[0].key.matches(&slab.matchers[0].mask, &p));
        }
        let id2 = slab.alloc(k, FlowKey::EXACT, vec![], 0, 6);
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
