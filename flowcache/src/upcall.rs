//! The messages between a PMD's fast path and the slow path.
//!
//! ```text
//!   PMD --- UpcallBatch (bounded queue; full = packets dropped, counted) --> slow path
//!   PMD <-- PmdCommand (the PMD's message queue, applied between bursts) -- slow path
//!   PMD --- PmdReport (bounded queue, fixed size: megaflows that left the cache with
//!           their final stats, and packet counts of Execute answers) --> slow path
//!   PMD ... per-slot live statistics (a table of atomics the slow path reads) ...
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
//! for that key, and the PMD then executes that key's parked packets, in arrival order,
//! with that answer's actions, before anything newer of the same flow can be classified
//! (commands are applied between bursts; a newer packet of a key still parked joins it
//! even if an installed megaflow covers it). So no first packet is lost, packets of one
//! flow stay in order, every packet gets its own key's decision, and only one upcall
//! per key is in flight.
//!
//! Megaflows are named by a [`FlowId`] that the slow path assigns, so that it can keep
//! a mirror of every PMD's cache (for revalidation, flow limits and dumps) without
//! asking the PMD. Commands to one PMD are applied in the order sent, which is what
//! makes an `Install` followed by a `Remove` after a rule change safe.
//!
//! Nothing a PMD sends allocates: upcalls and reports are fixed-size values copied into
//! the preallocated slots of bounded channels, and live statistics are relaxed stores
//! into a table allocated at start (the PMD crate's `flow_stats` module). The slow
//! path turns a [`PmdReport`] into [`PmdEvent`]s ([`PmdReport::gone_events`]) and
//! credits executed packets to the rules of their key's translation.
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
    /// Install `megaflow` as `id`, then execute its actions on the packets parked under
    /// exactly `key` (the upcall's key, which the megaflow covers), in arrival order.
    /// Other parked keys it covers wait for the answers to their own upcalls (see
    /// [`crate::pending`], "Each key waits for its own answer").
    Install { id: FlowId, key: FlowKey, megaflow: Megaflow },
    /// Execute `actions` on the packets parked under exactly `key`, without installing
    /// anything (flow limit reached, or the decision must not be cached).
    Execute { key: FlowKey, actions: DpActions },
    /// Remove these megaflows (unknown ids are ignored); reported gone (`Removed`).
    Remove { ids: Vec<FlowId> },
    /// From now on, remove megaflows unused for at least `idle_ms`; reported gone
    /// (`Expired`). The PMD does it incrementally (a few slots per loop iteration), so
    /// a megaflow goes within one sweep of the cache after it became idle; sending the
    /// same value again changes nothing.
    ExpireIdle { idle_ms: u64 },
}

/// Why megaflows left a PMD's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    Removed,
    Expired,
    /// The PMD could not install it (an identical key+mask is installed, or the table is
    /// full and nothing could be evicted): the mirror must forget it. Its statistics are
    /// the parked packets the PMD executed with its actions anyway.
    Refused,
    /// Removed by the PMD to make room for a new megaflow at its flow limit (the least
    /// recently used of a sample).
    Evicted,
}

/// Megaflows that are gone, with their final statistics (for per-rule counters), as the
/// slow-path state machine takes them; built from [`PmdReport`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmdEvent {
    pub pmd: usize,
    pub reason: GoneReason,
    pub flows: Vec<(FlowId, MegaflowStats)>,
}

/// One megaflow that left a PMD's cache, with its final statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoneFlow {
    pub id: FlowId,
    pub reason: GoneReason,
    pub stats: MegaflowStats,
}

/// The parked packets of one `Execute` answer: the slow path credits them to the rules
/// of `key`'s translation (no megaflow carries them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutedKey {
    pub key: FlowKey,
    pub packets: u64,
    pub bytes: u64,
    /// When they were executed.
    pub used: u64,
}

/// Most [`GoneFlow`]s in one [`PmdReport`].
pub const REPORT_GONE: usize = 32;
/// Most [`ExecutedKey`]s in one [`PmdReport`].
pub const REPORT_EXECUTED: usize = 16;

/// What a PMD tells the slow path, in fixed-size batches (about 3 KiB; copied into a
/// bounded channel's preallocated slot, so sending allocates nothing).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PmdReport {
    pub pmd: usize,
    n_gone: usize,
    gone: [GoneFlow; REPORT_GONE],
    n_executed: usize,
    executed: [ExecutedKey; REPORT_EXECUTED],
}

impl PmdReport {
    const NO_GONE: GoneFlow = GoneFlow {
        id: 0,
        reason: GoneReason::Removed,
        stats: MegaflowStats { packets: 0, bytes: 0, used: 0, tcp_flags: 0 },
    };
    const NO_EXECUTED: ExecutedKey = ExecutedKey { key: FlowKey::ZERO, packets: 0, bytes: 0, used: 0 };

    /// An empty report from PMD `pmd`.
    pub fn new(pmd: usize) -> PmdReport {
        PmdReport {
            pmd,
            n_gone: 0,
            gone: [Self::NO_GONE; REPORT_GONE],
            n_executed: 0,
            executed: [Self::NO_EXECUTED; REPORT_EXECUTED],
        }
    }

    /// Adds a gone megaflow; gives it back if the report has no room.
    pub fn push_gone(&mut self, g: GoneFlow) -> Result<(), GoneFlow> {
        if self.n_gone == REPORT_GONE {
            return Err(g);
        }
        self.gone[self.n_gone] = g;
        self.n_gone += 1;
        Ok(())
    }

    /// Adds an executed key; gives it back if the report has no room.
    // Given back by value: boxing it would allocate on the PMD thread.
    #[allow(clippy::result_large_err)]
    pub fn push_executed(&mut self, e: ExecutedKey) -> Result<(), ExecutedKey> {
        if self.n_executed == REPORT_EXECUTED {
            return Err(e);
        }
        self.executed[self.n_executed] = e;
        self.n_executed += 1;
        Ok(())
    }

    pub fn gone(&self) -> &[GoneFlow] {
        &self.gone[..self.n_gone]
    }

    pub fn executed(&self) -> &[ExecutedKey] {
        &self.executed[..self.n_executed]
    }

    pub fn is_empty(&self) -> bool {
        self.n_gone == 0 && self.n_executed == 0
    }

    pub fn clear(&mut self) {
        self.n_gone = 0;
        self.n_executed = 0;
    }

    /// The gone megaflows as [`PmdEvent`]s, one per run of the same reason, in order.
    pub fn gone_events(&self) -> Vec<PmdEvent> {
        let mut out: Vec<PmdEvent> = Vec::new();
        for g in self.gone() {
            match out.last_mut() {
                Some(ev) if ev.reason == g.reason => ev.flows.push((g.id, g.stats)),
                _ => out.push(PmdEvent { pmd: self.pmd, reason: g.reason, flows: vec![(g.id, g.stats)] }),
            }
        }
        out
    }
}

impl std::fmt::Debug for PmdReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PmdReport")
            .field("pmd", &self.pmd)
            .field("gone", &self.gone())
            .field("executed", &self.executed())
            .finish()
    }
}

#[cfg(test)]
mod report_tests {
    use super::*;

    #[test]
    fn report_fills_and_groups_runs_of_reasons() {
        let mut r = PmdReport::new(2);
        let g =
            |id: FlowId, reason| GoneFlow { id, reason, stats: MegaflowStats { packets: id, ..Default::default() } };
        let reasons = [GoneReason::Expired, GoneReason::Expired, GoneReason::Evicted, GoneReason::Expired];
        for (i, &reason) in reasons.iter().enumerate() {
            r.push_gone(g(i as FlowId + 1, reason)).unwrap();
        }
        let evs = r.gone_events();
        let shape: Vec<(GoneReason, Vec<FlowId>)> =
            evs.iter().map(|e| (e.reason, e.flows.iter().map(|f| f.0).collect())).collect();
        assert_eq!(
            shape,
            vec![(GoneReason::Expired, vec![1, 2]), (GoneReason::Evicted, vec![3]), (GoneReason::Expired, vec![4])]
        );
        assert!(evs.iter().all(|e| e.pmd == 2 && e.flows.iter().all(|f| f.1.packets == f.0)));
        for i in 4..REPORT_GONE as u64 {
            r.push_gone(g(i + 1, GoneReason::Removed)).unwrap();
        }
        assert!(r.push_gone(g(99, GoneReason::Removed)).is_err());
        let e = ExecutedKey { key: FlowKey::ZERO, packets: 1, bytes: 60, used: 5 };
        for _ in 0..REPORT_EXECUTED {
            r.push_executed(e).unwrap();
        }
        assert_eq!(r.push_executed(e), Err(e));
        assert_eq!((r.gone().len(), r.executed().len()), (REPORT_GONE, REPORT_EXECUTED));
        r.clear();
        assert!(r.is_empty() && r.gone_events().is_empty());
    }
}
