//! The messages between a PMD's fast path and the slow path.
//!
//! ```text
//!   PMD --- UpcallBatch (bounded queue; full = packets dropped, counted) --> slow path
//!   PMD <-- PmdCommand (the PMD's message queue, applied between bursts) -- slow path
//!   PMD --- PmdEvent (megaflows that left the cache, with final stats) ---> slow path
//! ```
//!
//! A missed packet stays with its PMD, parked under its flow key, while the upcall
//! travels. A PMD sends at most one message per burst: an [`UpcallBatch`] of the keys
//! that burst parked for the first time (a burst has at most [`UPCALL_BATCH_KEYS`]
//! packets, so the batch never overflows); the keys are held inline, so sending
//! allocates nothing (a bounded channel preallocates its slots, about 2 KiB each). If the
//! queue is full, none of the batch's keys is waiting for an answer: the PMD drops their
//! packets at once. The slow path handles a whole batch per wake-up, each key as one
//! [`Upcall`]; the slow path answers every upcall with exactly one `Install` or `Execute`
//! for that key, and the PMD then executes the parked packets in arrival order before
//! anything newer of the same flow can be classified (commands are applied between
//! bursts). So no first packet is lost, packets of one flow stay in order, and only one
//! upcall per key is in flight.
//!
//! Megaflows are named by a [`FlowId`] that the slow path assigns, so that it can keep
//! a mirror of every PMD's cache (for revalidation, flow limits and dumps) without
//! asking the PMD. Commands to one PMD are applied in the order sent, which is what
//! makes an `Install` followed by a `Remove` after a rule change safe.
//!
//! Time is milliseconds on a clock shared by the PMDs and the slow path.

use crate::actions::DpActions;
use crate::key::FlowKey;
use crate::megaflow::{Megaflow, MegaflowStats};

/// A megaflow's name, unique for the life of the switch; assigned by the slow path.
pub type FlowId = u64;

/// A miss, from PMD `pmd`: translate `key` and answer with `Install` or `Execute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upcall {
    pub pmd: usize,
    pub key: FlowKey,
}

/// Most keys in one [`UpcallBatch`]: a burst's worth of packets.
pub const UPCALL_BATCH_KEYS: usize = 32;

/// The new keys one burst of PMD `pmd` parked, in arrival order: one message per burst.
#[derive(Clone, PartialEq, Eq)]
pub struct UpcallBatch {
    pub pmd: usize,
    len: usize,
    keys: [FlowKey; UPCALL_BATCH_KEYS],
}

impl UpcallBatch {
    /// An empty batch from PMD `pmd`.
    pub fn new(pmd: usize) -> UpcallBatch {
        UpcallBatch { pmd, len: 0, keys: [FlowKey::ZERO; UPCALL_BATCH_KEYS] }
    }

    /// Adds `key`; gives it back if the batch is full.
    pub fn push(&mut self, key: FlowKey) -> Result<(), FlowKey> {
        if self.len == UPCALL_BATCH_KEYS {
            return Err(key);
        }
        self.keys[self.len] = key;
        self.len += 1;
        Ok(())
    }

    pub fn keys(&self) -> &[FlowKey] {
        &self.keys[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The batch as one [`Upcall`] per key, in order.
    pub fn upcalls(&self) -> impl Iterator<Item = Upcall> + '_ {
        self.keys().iter().map(|&key| Upcall { pmd: self.pmd, key })
    }
}

impl std::fmt::Debug for UpcallBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpcallBatch").field("pmd", &self.pmd).field("keys", &self.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_holds_a_burst_in_order() {
        let mut b = UpcallBatch::new(3);
        let key = |i: u32| {
            let mut k = FlowKey::ZERO;
            k.set_in_port(i + 1);
            k
        };
        for i in 0..UPCALL_BATCH_KEYS as u32 {
            b.push(key(i)).unwrap();
        }
        assert_eq!(b.push(key(99)), Err(key(99)));
        let ups: Vec<Upcall> = b.upcalls().collect();
        assert_eq!(ups.len(), UPCALL_BATCH_KEYS);
        assert!(ups.iter().enumerate().all(|(i, u)| u.pmd == 3 && u.key == key(i as u32)));
        b.clear();
        assert!(b.is_empty() && b.upcalls().next().is_none());
    }
}

/// What the slow path asks one PMD to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmdCommand {
    /// Install `megaflow` as `id`, then execute its actions on every parked packet it
    /// matches (the upcall's key and any other parked key it covers), in arrival order.
    Install { id: FlowId, megaflow: Megaflow },
    /// Execute `actions` on the packets parked under exactly `key`, without installing
    /// anything (flow limit reached, or the decision must not be cached).
    Execute { key: FlowKey, actions: DpActions },
    /// Remove these megaflows (unknown ids are ignored); reported as `PmdEvent::Gone`.
    Remove { ids: Vec<FlowId> },
    /// Remove megaflows unused for at least `idle_ms`; reported as `PmdEvent::Gone`.
    ExpireIdle { idle_ms: u64 },
}

/// Why megaflows left a PMD's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    Removed,
    Expired,
    /// The PMD could not install it (its table is full): the mirror must forget it.
    Refused,
}

/// From a PMD to the slow path: megaflows that are gone, with their final statistics
/// (for per-rule counters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmdEvent {
    pub pmd: usize,
    pub reason: GoneReason,
    pub flows: Vec<(FlowId, MegaflowStats)>,
}
