//! What a PMD owes the slow path, waiting to be sent: megaflows that left the cache and
//! packet counts of `Execute` answers.
//!
//! # Design
//!
//! The PMD never waits for the slow path and never allocates, but it must not lose a
//! report either: a lost `Gone` would leave the slow path's mirror believing in a
//! megaflow the PMD no longer has (and lose its last statistics). So reports first go to
//! two backlogs allocated at start, then leave in fixed-size [`PmdReport`]s through a
//! bounded channel, at most [`REPORTS_PER_ITERATION`] per loop iteration, oldest first;
//! a full channel just leaves them for the next iteration.
//!
//! Sizes: the gone backlog holds as many entries as the cache has slots (40 bytes each),
//! so even a `Remove` of every megaflow while the slow path is busy elsewhere fits; the
//! PMD's own removals (idle expiry, eviction) only happen while the backlog has room
//! ([`ReportQueue::has_room`]). The executed backlog holds one entry per parkable key (an
//! `Execute` answers one parked key). If a backlog is full anyway (the slow path has
//! stopped reading for that long), the entry is dropped and counted (`reports_lost`).

use std::collections::VecDeque;

use crossbeam_channel::{Sender, TrySendError};
use ferrovs_flowcache::upcall::{ExecutedKey, GoneFlow, PmdReport, REPORT_EXECUTED, REPORT_GONE};

/// Most reports sent per loop iteration (each a copy of about 3 KiB).
pub const REPORTS_PER_ITERATION: usize = 4;

/// The backlogs and the channel. See the module doc.
pub(crate) struct ReportQueue {
    tx: Sender<PmdReport>,
    gone: VecDeque<GoneFlow>,
    gone_cap: usize,
    executed: VecDeque<ExecutedKey>,
    executed_cap: usize,
    /// The report being filled, reused (a 3 KiB value is not rebuilt per send).
    scratch: PmdReport,
    /// Entries dropped because a backlog was full or the slow path is gone.
    pub(crate) lost: u64,
}

impl ReportQueue {
    /// Backlogs of `gone_cap` gone megaflows and `executed_cap` executed keys, allocated
    /// here, once.
    pub(crate) fn new(pmd: usize, tx: Sender<PmdReport>, gone_cap: usize, executed_cap: usize) -> ReportQueue {
        let (gone_cap, executed_cap) = (gone_cap.max(REPORT_GONE), executed_cap.max(REPORT_EXECUTED));
        ReportQueue {
            tx,
            gone: VecDeque::with_capacity(gone_cap),
            gone_cap,
            executed: VecDeque::with_capacity(executed_cap),
            executed_cap,
            scratch: PmdReport::new(pmd),
            lost: 0,
        }
    }

    /// Whether `n` more gone megaflows fit in the backlog.
    #[inline]
    pub(crate) fn has_room(&self, n: usize) -> bool {
        self.gone.len() + n <= self.gone_cap
    }

    pub(crate) fn gone(&mut self, g: GoneFlow) {
        if self.gone.len() < self.gone_cap {
            self.gone.push_back(g);
        } else {
            self.lost += 1;
        }
    }

    pub(crate) fn executed(&mut self, e: ExecutedKey) {
        if self.executed.len() < self.executed_cap {
            self.executed.push_back(e);
        } else {
            self.lost += 1;
        }
    }

    /// Entries waiting.
    #[cfg(test)]
    pub(crate) fn backlog(&self) -> usize {
        self.gone.len() + self.executed.len()
    }

    /// Sends up to [`REPORTS_PER_ITERATION`] reports, oldest entries first. Returns true
    /// if it sent anything.
    pub(crate) fn flush(&mut self) -> bool {
        let mut sent = false;
        for _ in 0..REPORTS_PER_ITERATION {
            if self.gone.is_empty() && self.executed.is_empty() {
                break;
            }
            self.scratch.clear();
            let ng = self.gone.len().min(REPORT_GONE);
            let ne = self.executed.len().min(REPORT_EXECUTED);
            for g in self.gone.iter().take(ng) {
                let _ = self.scratch.push_gone(*g);
            }
            for e in self.executed.iter().take(ne) {
                let _ = self.scratch.push_executed(*e);
            }
            match self.tx.try_send(self.scratch) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => break,
                // Nobody will read them: forget them (counted) rather than keep them.
                Err(TrySendError::Disconnected(_)) => self.lost += (ng + ne) as u64,
            }
            self.gone.drain(..ng);
            self.executed.drain(..ne);
            sent = true;
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_flowcache::MegaflowStats;
    use ferrovs_flowcache::key::FlowKey;
    use ferrovs_flowcache::upcall::GoneReason;

    fn g(id: u64) -> GoneFlow {
        GoneFlow { id, reason: GoneReason::Expired, stats: MegaflowStats::default() }
    }

    #[test]
    fn backlog_leaves_in_order_when_the_channel_has_room() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let mut q = ReportQueue::new(1, tx, 100, 4);
        for id in 1..=100 {
            q.gone(g(id));
        }
        q.gone(g(101));
        assert_eq!(q.lost, 1, "beyond the backlog: counted");
        assert!(!q.has_room(1));
        let e = ExecutedKey { key: FlowKey::ZERO, packets: 2, bytes: 120, used: 3 };
        q.executed(e);
        assert!(q.flush());
        assert_eq!(rx.len(), 2, "two reports fit, the channel is then full");
        assert!(q.flush() || q.backlog() > 0);
        let mut ids = Vec::new();
        let mut executed = Vec::new();
        while q.backlog() > 0 || !rx.is_empty() {
            while let Ok(r) = rx.try_recv() {
                assert_eq!(r.pmd, 1);
                ids.extend(r.gone().iter().map(|g| g.id));
                executed.extend_from_slice(r.executed());
            }
            q.flush();
        }
        assert_eq!(ids, (1..=100).collect::<Vec<_>>());
        assert_eq!(executed, vec![e]);
        drop(rx);
        q.gone(g(7));
        q.flush();
        assert_eq!((q.lost, q.backlog()), (2, 0), "slow path gone: dropped and counted");
    }
}
