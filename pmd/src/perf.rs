//! Iteration histograms of a PMD (`ovs-appctl dpif-netdev/pmd-perf-show`): how many TSC
//! cycles a loop iteration takes, how many packets it handles, how many cycles each of
//! those packets cost, and how full each rx burst is.
//!
//! Buckets are powers of two, fixed at compile time: bucket 0 counts the value 0, bucket
//! `i > 0` the values in `[2^(i-1), 2^i)`, and the last bucket everything above. Adding a
//! sample is a `leading_zeros` and an increment of the PMD's own plain counter; nothing
//! allocates. As with the other counters (`stats`), the PMD copies its histograms into an
//! atomic mirror with relaxed stores, single writer, many readers; to keep that cheap it
//! does so every [`PUBLISH_EVERY`] iterations (and when it stops), not every iteration, so a
//! reader's view may be that many iterations behind the PMD's other counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// Iterations between two publications of the histograms.
pub const PUBLISH_EVERY: u64 = 64;

/// Buckets of each histogram: cycles up to 2^30 and beyond, packets per iteration up to
/// 2^14 and beyond, a burst of at most 32 packets.
pub const CYCLES_BUCKETS: usize = 32;
pub const PACKETS_BUCKETS: usize = 16;
pub const BATCH_BUCKETS: usize = 7;

/// A histogram with `N` log2 buckets (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Log2Histogram<const N: usize> {
    pub counts: [u64; N],
}

impl<const N: usize> Default for Log2Histogram<N> {
    fn default() -> Self {
        Log2Histogram { counts: [0; N] }
    }
}

/// The bucket of `v`: 0 for 0, else one more than the index of its highest set bit,
/// capped at the last bucket.
#[inline(always)]
pub const fn bucket<const N: usize>(v: u64) -> usize {
    let b = (u64::BITS - v.leading_zeros()) as usize;
    if b < N { b } else { N - 1 }
}

/// The smallest value bucket `i` counts.
pub const fn bucket_floor(i: usize) -> u64 {
    if i == 0 { 0 } else { 1u64 << (i - 1) }
}

impl<const N: usize> Log2Histogram<N> {
    #[inline(always)]
    pub fn add(&mut self, v: u64) {
        self.counts[bucket::<N>(v)] += 1;
    }

    /// Samples in all buckets.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `self - earlier`, bucket by bucket (for counts since a baseline).
    pub fn since(&self, earlier: &Self) -> Self {
        let mut out = *self;
        for (o, e) in out.counts.iter_mut().zip(&earlier.counts) {
            *o = o.saturating_sub(*e);
        }
        out
    }
}

/// The published mirror of a [`Log2Histogram`].
#[derive(Debug)]
struct AtomicLog2Histogram<const N: usize> {
    counts: [AtomicU64; N],
}

impl<const N: usize> Default for AtomicLog2Histogram<N> {
    fn default() -> Self {
        AtomicLog2Histogram { counts: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

impl<const N: usize> AtomicLog2Histogram<N> {
    fn publish(&self, h: &Log2Histogram<N>) {
        for (a, v) in self.counts.iter().zip(&h.counts) {
            a.store(*v, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> Log2Histogram<N> {
        Log2Histogram { counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)) }
    }
}

/// A PMD's histograms (its own copy, or a snapshot of the published one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PmdHistograms {
    /// TSC cycles of each loop iteration (idle ones included, their back-off sleeps not).
    pub cycles_per_iteration: Log2Histogram<CYCLES_BUCKETS>,
    /// Packets received in each loop iteration (0 for idle ones).
    pub packets_per_iteration: Log2Histogram<PACKETS_BUCKETS>,
    /// Cycles per packet of each iteration that received packets.
    pub cycles_per_packet: Log2Histogram<CYCLES_BUCKETS>,
    /// Packets of each non-empty rx burst.
    pub packets_per_batch: Log2Histogram<BATCH_BUCKETS>,
}

impl PmdHistograms {
    /// Counts since `earlier` (a snapshot taken before).
    pub fn since(&self, earlier: &PmdHistograms) -> PmdHistograms {
        PmdHistograms {
            cycles_per_iteration: self.cycles_per_iteration.since(&earlier.cycles_per_iteration),
            packets_per_iteration: self.packets_per_iteration.since(&earlier.packets_per_iteration),
            cycles_per_packet: self.cycles_per_packet.since(&earlier.cycles_per_packet),
            packets_per_batch: self.packets_per_batch.since(&earlier.packets_per_batch),
        }
    }
}

/// The published mirror of a PMD's [`PmdHistograms`].
#[derive(Debug, Default)]
pub struct AtomicPmdHistograms {
    cycles_per_iteration: AtomicLog2Histogram<CYCLES_BUCKETS>,
    packets_per_iteration: AtomicLog2Histogram<PACKETS_BUCKETS>,
    cycles_per_packet: AtomicLog2Histogram<CYCLES_BUCKETS>,
    packets_per_batch: AtomicLog2Histogram<BATCH_BUCKETS>,
}

impl AtomicPmdHistograms {
    /// Stores every bucket (relaxed). For the owning PMD only.
    pub(crate) fn publish(&self, h: &PmdHistograms) {
        self.cycles_per_iteration.publish(&h.cycles_per_iteration);
        self.packets_per_iteration.publish(&h.packets_per_iteration);
        self.cycles_per_packet.publish(&h.cycles_per_packet);
        self.packets_per_batch.publish(&h.packets_per_batch);
    }

    pub fn snapshot(&self) -> PmdHistograms {
        PmdHistograms {
            cycles_per_iteration: self.cycles_per_iteration.snapshot(),
            packets_per_iteration: self.packets_per_iteration.snapshot(),
            cycles_per_packet: self.cycles_per_packet.snapshot(),
            packets_per_batch: self.packets_per_batch.snapshot(),
        }
    }
}

/// What the PMD keeps: its histograms and when to publish them next.
#[derive(Debug, Default)]
pub(crate) struct PmdPerf {
    h: PmdHistograms,
    iterations: u64,
}

impl PmdPerf {
    /// One non-empty rx burst of `n` packets.
    #[inline(always)]
    pub(crate) fn batch(&mut self, n: usize) {
        self.h.packets_per_batch.add(n as u64);
    }

    /// The end of one loop iteration that took `cycles` and received `packets`; publishes
    /// into `out` every [`PUBLISH_EVERY`] iterations.
    #[inline(always)]
    pub(crate) fn iteration(&mut self, cycles: u64, packets: usize, out: &AtomicPmdHistograms) {
        self.h.cycles_per_iteration.add(cycles);
        self.h.packets_per_iteration.add(packets as u64);
        if packets > 0 {
            self.h.cycles_per_packet.add(cycles / packets as u64);
        }
        self.iterations += 1;
        if self.iterations.is_multiple_of(PUBLISH_EVERY) {
            self.publish(out);
        }
    }

    pub(crate) fn publish(&self, out: &AtomicPmdHistograms) {
        out.publish(&self.h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_and_the_last_takes_the_rest() {
        assert_eq!(bucket::<8>(0), 0);
        assert_eq!(bucket::<8>(1), 1);
        assert_eq!(bucket::<8>(2), 2);
        assert_eq!(bucket::<8>(3), 2);
        assert_eq!(bucket::<8>(4), 3);
        assert_eq!(bucket::<8>(63), 6);
        assert_eq!(bucket::<8>(64), 7);
        assert_eq!(bucket::<8>(u64::MAX), 7);
        assert_eq!(bucket::<BATCH_BUCKETS>(32), 6, "a full burst has a bucket of its own");
        for i in 1..20 {
            assert_eq!(bucket::<64>(bucket_floor(i)), i);
            assert_eq!(bucket::<64>(bucket_floor(i + 1) - 1), i);
        }
    }

    #[test]
    fn iterations_fill_the_histograms_and_publish_on_their_cadence() {
        let out = AtomicPmdHistograms::default();
        let mut p = PmdPerf::default();
        p.batch(32);
        p.batch(5);
        p.iteration(3200, 37, &out);
        for _ in 1..PUBLISH_EVERY - 1 {
            p.iteration(100, 0, &out);
        }
        assert_eq!(out.snapshot(), PmdHistograms::default(), "not published yet");
        p.iteration(100, 0, &out);
        let s = out.snapshot();
        assert_eq!(s.packets_per_batch.counts[bucket::<BATCH_BUCKETS>(32)], 1);
        assert_eq!(s.packets_per_batch.counts[bucket::<BATCH_BUCKETS>(5)], 1);
        assert_eq!(s.packets_per_iteration.counts[0], PUBLISH_EVERY - 1);
        assert_eq!(s.packets_per_iteration.counts[bucket::<PACKETS_BUCKETS>(37)], 1);
        assert_eq!(s.cycles_per_packet.total(), 1);
        assert_eq!(s.cycles_per_packet.counts[bucket::<CYCLES_BUCKETS>(3200 / 37)], 1);
        assert_eq!(s.cycles_per_iteration.total(), PUBLISH_EVERY);
        assert_eq!(s.since(&s), PmdHistograms::default());
        let zero = PmdHistograms::default();
        assert_eq!(s.since(&zero), s);
    }
}
