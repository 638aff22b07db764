//! Live megaflow statistics, from a PMD to whoever wants them, without asking the PMD.
//!
//! # Design
//!
//! A [`FlowStatsTable`] is one PMD's table of per-megaflow counters, indexed by the
//! megaflow's cache slot and allocated once (one entry per slot the cache can have). The
//! PMD is its only writer: its clock hand (see `flow_pipeline`) visits a few slots per
//! loop iteration and copies the statistics of each live megaflow there, with relaxed
//! atomic stores; installing a megaflow names its slot and removing it clears the slot.
//! Any other thread (the slow path, for rule counters, rule idle timeouts and
//! `dump-dp-flows`) reads the table whenever it wants ([`FlowStatsTable::snapshot`]),
//! so no one asks the PMD for a dump.
//!
//! Each entry is a sequence lock made of atomics: the writer makes the sequence odd,
//! writes the fields, makes it even again; a reader retries while the sequence is odd or
//! changed under it. So a reader never pairs one megaflow's id with the statistics of
//! the megaflow that reused its slot. The writer never waits.
//!
//! Costs: writing an entry is 6 relaxed stores and 2 fences (plain moves on x86) on one
//! 64-byte line per megaflow; the PMD writes an entry only when the clock hand finds its
//! statistics changed, on install and on removal. Reading the whole table is
//! O(slots), on the reader's thread. Memory: 64 bytes per slot (12.8 MB at the default
//! flow limit of 200,000 per PMD).
//!
//! Freshness: an entry lags the cache by at most one sweep of the clock hand (the number
//! of slots divided by the slots visited per iteration, see
//! `flow_pipeline::SWEEP_SLOTS_BUSY`), plus packets that waited for an install, which
//! are added when it happens.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use ferrovs_flowcache::MegaflowStats;
use ferrovs_flowcache::upcall::FlowId;

/// The id of an empty entry (the slow path numbers megaflows from 1).
const NO_FLOW: FlowId = 0;

/// One slot's counters, a cache line of its own (neighbouring slots are written by the
/// same PMD, but readers should not false-share with it more than needed).
#[derive(Default)]
#[repr(align(64))]
struct Entry {
    seq: AtomicU64,
    id: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    used: AtomicU64,
    tcp_flags: AtomicU64,
}

/// One PMD's live megaflow statistics. See the module doc.
pub struct FlowStatsTable {
    entries: Box<[Entry]>,
}

impl FlowStatsTable {
    /// A table for slots `0..slots`.
    pub fn new(slots: usize) -> FlowStatsTable {
        FlowStatsTable { entries: (0..slots).map(|_| Entry::default()).collect() }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The packet count last written for `slot` (the writer's own check, to skip
    /// unchanged entries).
    #[inline]
    pub(crate) fn packets_at(&self, slot: usize) -> Option<u64> {
        self.entries.get(slot).map(|e| e.packets.load(Ordering::Relaxed))
    }

    /// Writes the entry of `slot` (writer only). Out-of-range slots are ignored.
    #[inline]
    pub(crate) fn write(&self, slot: usize, id: FlowId, st: &MegaflowStats) {
        let Some(e) = self.entries.get(slot) else { return };
        let s = e.seq.load(Ordering::Relaxed);
        e.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        e.id.store(id, Ordering::Relaxed);
        e.packets.store(st.packets, Ordering::Relaxed);
        e.bytes.store(st.bytes, Ordering::Relaxed);
        e.used.store(st.used, Ordering::Relaxed);
        e.tcp_flags.store(st.tcp_flags as u64, Ordering::Relaxed);
        e.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Empties the entry of `slot` (writer only).
    #[inline]
    pub(crate) fn clear(&self, slot: usize) {
        self.write(slot, NO_FLOW, &MegaflowStats::default());
    }

    /// The megaflow of `slot` and its statistics as last written, if any.
    pub fn read(&self, slot: usize) -> Option<(FlowId, MegaflowStats)> {
        let e = self.entries.get(slot)?;
        // The writer holds an entry for a few stores; a reader that keeps losing the race
        // gives up on this slot rather than spin.
        for _ in 0..1000 {
            let s1 = e.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let id = e.id.load(Ordering::Relaxed);
            let st = MegaflowStats {
                packets: e.packets.load(Ordering::Relaxed),
                bytes: e.bytes.load(Ordering::Relaxed),
                used: e.used.load(Ordering::Relaxed),
                tcp_flags: e.tcp_flags.load(Ordering::Relaxed) as u16,
            };
            fence(Ordering::Acquire);
            if e.seq.load(Ordering::Relaxed) == s1 {
                return (id != NO_FLOW).then_some((id, st));
            }
        }
        None
    }

    /// Appends `(pmd, id, stats)` for every named slot to `out`. O(slots).
    pub fn snapshot(&self, pmd: usize, out: &mut Vec<(usize, FlowId, MegaflowStats)>) {
        out.extend((0..self.entries.len()).filter_map(|i| self.read(i)).map(|(id, st)| (pmd, id, st)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn write_read_clear() {
        let t = FlowStatsTable::new(4);
        assert_eq!(t.read(1), None);
        let st = MegaflowStats { packets: 3, bytes: 180, used: 7, tcp_flags: 0x12 };
        t.write(1, 42, &st);
        assert_eq!(t.read(1), Some((42, st)));
        assert_eq!(t.packets_at(1), Some(3));
        t.write(9, 1, &st);
        let mut v = Vec::new();
        t.snapshot(5, &mut v);
        assert_eq!(v, vec![(5, 42, st)]);
        t.clear(1);
        assert_eq!(t.read(1), None);
    }

    #[test]
    fn reader_never_mixes_two_writes() {
        // The writer alternates two megaflows in one slot whose stats encode their id;
        // every consistent read must pair them right.
        let t = Arc::new(FlowStatsTable::new(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (t2, stop2) = (t.clone(), stop.clone());
        let writer = std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let id = 1 + (n & 1);
                t2.write(0, id, &MegaflowStats { packets: (n << 2) | id, bytes: id, used: id, tcp_flags: id as u16 });
                n += 1;
                // A PMD rewrites a slot once per burst, not back to back: leave the reader
                // windows (without them a loaded 2-CPU machine may never give it one).
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
        });
        // The reads start once the slot holds a megaflow: on a loaded machine the writer
        // thread may start later than the 200,000 reads take, and an empty slot reads None.
        while t.read(0).is_none() {
            std::thread::yield_now();
        }
        let mut seen = 0;
        for _ in 0..200_000 {
            if let Some((id, st)) = t.read(0) {
                assert_eq!((st.bytes, st.used, st.tcp_flags as u64, st.packets & 3), (id, id, id, id));
                seen += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(seen > 0);
    }
}
