//! Automatic rx-queue rebalance (`[pmd] auto_rebalance_interval_s`), as OVS's
//! `pmd-auto-lb`: once per interval, each PMD's busy share over the interval is
//! computed from its cycle counters; when the busiest one was busy at least the threshold
//! and another had at least a quarter of the interval to spare, the queues are reassigned
//! by their load (`Switch::rebalance_rxqs`). One PMD, or none over the threshold: nothing.
//! The decision is a pure function of counters and time, tested below; the daemon's main
//! loop calls [`AutoRebalance::due`] and does the rebalance (pinned queues stay where
//! they are). End to end: `tests/e2e/runtime.rs`, `auto_rebalance_follows_load`.

use std::time::{Duration, Instant};

/// Whether PMDs with these busy shares (0..=100 %, one per PMD) should be rebalanced.
pub fn should_rebalance(busy_percent: &[f64], threshold: u8) -> bool {
    let (mut max, mut min) = (f64::MIN, f64::MAX);
    for &b in busy_percent {
        max = max.max(b);
        min = min.min(b);
    }
    busy_percent.len() >= 2 && max >= f64::from(threshold) && min <= max - 25.0
}

/// The state between two checks.
pub struct AutoRebalance {
    interval: Duration,
    threshold: u8,
    last: Instant,
    /// Each PMD's (busy, idle) cycles at the last check.
    cycles: Vec<(u64, u64)>,
}

impl AutoRebalance {
    /// `None` when off (interval 0).
    pub fn new(interval_s: u32, threshold: u8, now: Instant) -> Option<AutoRebalance> {
        (interval_s > 0).then(|| AutoRebalance {
            interval: Duration::from_secs(u64::from(interval_s)),
            threshold,
            last: now,
            cycles: Vec::new(),
        })
    }

    /// Given each PMD's (busy, idle) cycle counters now: whether to rebalance. Checks once
    /// per interval; the first check only records.
    pub fn due(&mut self, now: Instant, cycles: &[(u64, u64)]) -> bool {
        if now.duration_since(self.last) < self.interval {
            return false;
        }
        self.last = now;
        let previous = std::mem::replace(&mut self.cycles, cycles.to_vec());
        if previous.len() != cycles.len() {
            return false;
        }
        let busy: Vec<f64> = cycles
            .iter()
            .zip(&previous)
            .map(|(&(b, i), &(b0, i0))| {
                let (db, di) = (b.saturating_sub(b0), i.saturating_sub(i0));
                if db + di == 0 { 0.0 } else { 100.0 * db as f64 / (db + di) as f64 }
            })
            .collect();
        should_rebalance(&busy, self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebalances_only_a_busy_pmd_beside_one_with_room() {
        assert!(should_rebalance(&[97.0, 40.0], 95));
        assert!(!should_rebalance(&[97.0, 90.0], 95), "no PMD has room");
        assert!(!should_rebalance(&[80.0, 10.0], 95), "nobody over the threshold");
        assert!(!should_rebalance(&[100.0], 95), "one PMD");
        assert!(!should_rebalance(&[], 95));
    }

    #[test]
    fn checks_once_per_interval_on_the_interval_s_counters() {
        let t0 = Instant::now();
        let mut a = AutoRebalance::new(10, 95, t0).expect("on");
        assert!(AutoRebalance::new(0, 95, t0).is_none(), "0 is off");
        // The first check records; then PMD 0 is 98 % busy over 10 s, PMD 1 20 %.
        assert!(!a.due(t0 + Duration::from_secs(10), &[(1_000, 1_000), (1_000, 1_000)]));
        assert!(!a.due(t0 + Duration::from_secs(15), &[(99_000, 3_000), (21_000, 81_000)]), "too early");
        assert!(a.due(t0 + Duration::from_secs(20), &[(99_000, 3_000), (21_000, 81_000)]));
        // Over the next interval both were idle: nothing.
        assert!(!a.due(t0 + Duration::from_secs(30), &[(99_000, 103_000), (21_000, 181_000)]));
    }
}
