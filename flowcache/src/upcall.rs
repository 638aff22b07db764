//! The messages between a PMD's fast path and the slow path.
//!
//! ```text
//!   PMD --- Upcall (bounded queue; full = packet dropped and counted) ---> slow path
//!   PMD <-- PmdCommand (the PMD's message queue, applied between bursts) -- slow path
//!   PMD --- PmdEvent (megaflows that left the cache, with final stats) ---> slow path
//! ```
//!
//! A missed packet stays with its PMD, parked under its flow key, while the upcall
//! travels; the slow path answers every upcall with exactly one `Install` or `Execute`
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
