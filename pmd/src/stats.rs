//! Counters of the data path, kept per PMD thread and readable from other threads while
//! forwarding goes on.
//!
//! Each PMD counts into plain integers of its own ([`PortCounters`] per port, plus
//! [`PmdLocal`]) and, once per busy loop iteration (a burst or several), copies them into
//! relaxed atomics in `PmdShared` with plain stores: there is a single writer, so no
//! read-modify-write and no cache-line ping-pong per packet. A reader loads the atomics
//! and sums over PMDs; a snapshot may be a burst behind, never torn within a counter.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Counters of one port (as seen by one PMD, or summed over PMDs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Output packets freed because this port's tx queue was full (counted on the output port).
    pub drop_tx_full: u64,
    /// Packets that missed and that the classifier did not take (counted on the ingress port).
    pub drop_no_rule: u64,
    /// Packets whose actions dropped them: empty action list, or DecTtl at 0/1 (ingress port).
    pub drop_action: u64,
    /// Runts / malformed frames (ingress port).
    pub drop_malformed: u64,
    /// Packets with an action this build cannot execute, or an edit that did not fit (ingress port).
    pub drop_unsupported: u64,
    /// Packets dropped because a copy for a modified output could not be allocated (ingress port).
    pub drop_no_mbuf: u64,
}

const N_PORT: usize = 10;

impl PortCounters {
    fn to_array(self) -> [u64; N_PORT] {
        [
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.tx_bytes,
            self.drop_tx_full,
            self.drop_no_rule,
            self.drop_action,
            self.drop_malformed,
            self.drop_unsupported,
            self.drop_no_mbuf,
        ]
    }
    fn from_array(a: [u64; N_PORT]) -> Self {
        PortCounters {
            rx_packets: a[0],
            rx_bytes: a[1],
            tx_packets: a[2],
            tx_bytes: a[3],
            drop_tx_full: a[4],
            drop_no_rule: a[5],
            drop_action: a[6],
            drop_malformed: a[7],
            drop_unsupported: a[8],
            drop_no_mbuf: a[9],
        }
    }
    /// Adds `other` field by field.
    pub fn add(&mut self, other: &PortCounters) {
        let mut a = self.to_array();
        for (x, y) in a.iter_mut().zip(other.to_array()) {
            *x += y;
        }
        *self = Self::from_array(a);
    }
    /// All drops.
    pub fn drops(&self) -> u64 {
        self.drop_tx_full
            + self.drop_no_rule
            + self.drop_action
            + self.drop_malformed
            + self.drop_unsupported
            + self.drop_no_mbuf
    }
}

/// PMD-wide counters, owned by the PMD thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PmdLocal {
    /// TSC cycles spent in iterations that received packets.
    pub busy_cycles: u64,
    /// TSC cycles spent in iterations that received nothing (including back-off sleeps).
    pub idle_cycles: u64,
    /// Packets received and processed.
    pub packets: u64,
    /// Loop iterations.
    pub iterations: u64,
    /// Non-empty rx bursts.
    pub rx_bursts: u64,
    /// Outputs to a port number this switch does not have.
    pub drop_bad_output: u64,
    /// Messages applied.
    pub messages: u64,
}

/// The atomics a PMD publishes into; shared with readers through an `Arc`.
pub(crate) struct PmdShared {
    ports: Vec<[AtomicU64; N_PORT]>,
    pmd: [AtomicU64; 7],
    pub(crate) running: AtomicBool,
}

impl PmdShared {
    pub(crate) fn new(n_ports: usize) -> PmdShared {
        PmdShared {
            ports: (0..n_ports).map(|_| std::array::from_fn(|_| AtomicU64::new(0))).collect(),
            pmd: std::array::from_fn(|_| AtomicU64::new(0)),
            running: AtomicBool::new(false),
        }
    }

    /// Called by the owning PMD only (single writer): plain relaxed stores.
    pub(crate) fn publish(&self, ports: &[PortCounters], pmd: &PmdLocal) {
        for (dst, src) in self.ports.iter().zip(ports) {
            for (d, s) in dst.iter().zip(src.to_array()) {
                d.store(s, Relaxed);
            }
        }
        self.publish_pmd(pmd);
    }

    pub(crate) fn publish_pmd(&self, pmd: &PmdLocal) {
        let v = [
            pmd.busy_cycles,
            pmd.idle_cycles,
            pmd.packets,
            pmd.iterations,
            pmd.rx_bursts,
            pmd.drop_bad_output,
            pmd.messages,
        ];
        for (d, s) in self.pmd.iter().zip(v) {
            d.store(s, Relaxed);
        }
    }

    pub(crate) fn port(&self, i: usize) -> PortCounters {
        let a = &self.ports[i];
        PortCounters::from_array(std::array::from_fn(|k| a[k].load(Relaxed)))
    }

    pub(crate) fn pmd(&self) -> PmdLocal {
        let v: [u64; 7] = std::array::from_fn(|k| self.pmd[k].load(Relaxed));
        PmdLocal {
            busy_cycles: v[0],
            idle_cycles: v[1],
            packets: v[2],
            iterations: v[3],
            rx_bursts: v[4],
            drop_bad_output: v[5],
            messages: v[6],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_read_round_trips() {
        let s = PmdShared::new(2);
        let mut p = [PortCounters::default(); 2];
        p[1].rx_packets = 7;
        p[1].drop_no_mbuf = 3;
        p[0].tx_bytes = 99;
        let l = PmdLocal { busy_cycles: 5, messages: 2, ..Default::default() };
        s.publish(&p, &l);
        assert_eq!(s.port(0), p[0]);
        assert_eq!(s.port(1), p[1]);
        assert_eq!(s.pmd(), l);
        let mut sum = p[0];
        sum.add(&p[1]);
        assert_eq!(sum.rx_packets, 7);
        assert_eq!(sum.tx_bytes, 99);
        assert_eq!(sum.drops(), 3);
    }
}
