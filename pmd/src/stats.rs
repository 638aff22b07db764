//! Counters of the data path, kept per PMD thread and readable from other threads while
//! forwarding goes on.
//!
//! Each PMD counts into plain integers of its own ([`PortCounters`] per port,
//! [`PmdLocal`], and its flow pipeline's [`PipelineStats`](crate::PipelineStats)) and,
//! at most once per loop iteration, copies them into an atomic mirror with relaxed plain
//! stores: there is a single writer, so no read-modify-write and no cache-line ping-pong
//! per packet. A reader loads the atomics and sums over PMDs; a snapshot may be an
//! iteration behind, never torn within a counter.
//!
//! Every counter set is declared once, with the `counter_set!` macro: the macro generates the
//! plain struct, its atomic mirror, `publish` / `snapshot` between them, and `add`, so
//! that a new counter is one line and cannot be forgotten by one of them.

use std::sync::atomic::{AtomicBool, AtomicU64};

/// Declares a counter set: `$plain` (plain `u64` fields, `Copy`, `Default`, with `add`)
/// and `$atomic` (the same fields as `AtomicU64`, with `publish` from a `$plain` by its
/// single writer and `snapshot` for any reader). Doc comments on fields go to both.
macro_rules! counter_set {
    (
        $(#[$pdoc:meta])* pub struct $plain:ident;
        $(#[$adoc:meta])* pub struct $atomic:ident;
        { $($(#[$doc:meta])* $name:ident,)* }
    ) => {
        $(#[$pdoc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $plain {
            $($(#[$doc])* pub $name: u64,)*
        }

        $(#[$adoc])*
        #[derive(Debug, Default)]
        pub struct $atomic {
            $($(#[$doc])* pub $name: ::std::sync::atomic::AtomicU64,)*
        }

        impl $plain {
            /// Adds `other` field by field (e.g. to sum over PMDs).
            pub fn add(&mut self, other: &$plain) {
                $(self.$name += other.$name;)*
            }
        }

        impl $atomic {
            /// Stores every field of `s` (relaxed). For the single writer only.
            pub fn publish(&self, s: &$plain) {
                $(self.$name.store(s.$name, ::std::sync::atomic::Ordering::Relaxed);)*
            }

            /// Loads every field (relaxed).
            pub fn snapshot(&self) -> $plain {
                $plain { $($name: self.$name.load(::std::sync::atomic::Ordering::Relaxed),)* }
            }
        }
    };
}
pub(crate) use counter_set;

counter_set! {
    /// Counters of one port (as seen by one PMD, or summed over PMDs).
    pub struct PortCounters;
    /// The published mirror of a [`PortCounters`].
    pub struct AtomicPortCounters;
    {
        rx_packets,
        rx_bytes,
        tx_packets,
        tx_bytes,
        /// Output packets freed because this port's tx queue was full (counted on the output port).
        drop_tx_full,
        /// Packets that missed and that the classifier did not take (counted on the ingress port).
        drop_no_rule,
        /// Packets whose actions dropped them: empty action list, or DecTtl at 0/1 (ingress port).
        drop_action,
        /// Runts, and frames received in more than one segment (longer than an mbuf),
        /// which the parser would see cut short (ingress port).
        drop_malformed,
        /// Packets with an action this build cannot execute, or an edit that did not fit (ingress port).
        drop_unsupported,
        /// Packets dropped because a copy for a modified output could not be allocated (ingress port).
        drop_no_mbuf,
        /// Frames longer than the port's MTU allows, not sent (output port).
        drop_oversize,
        /// Frames received while the port was administratively down, freed unprocessed.
        drop_admin_down_rx,
        /// Outputs to a port that was administratively down, not sent.
        drop_admin_down_tx,
    }
}

impl PortCounters {
    /// All drops.
    pub fn drops(&self) -> u64 {
        self.drop_tx_full
            + self.drop_no_rule
            + self.drop_action
            + self.drop_malformed
            + self.drop_unsupported
            + self.drop_no_mbuf
            + self.drop_oversize
            + self.drop_admin_down_rx
            + self.drop_admin_down_tx
    }
}

counter_set! {
    /// PMD-wide counters, owned by the PMD thread.
    pub struct PmdLocal;
    /// The published mirror of a [`PmdLocal`].
    pub struct AtomicPmdLocal;
    {
        /// TSC cycles spent in iterations that received packets.
        busy_cycles,
        /// TSC cycles spent in iterations that received nothing (including back-off sleeps).
        idle_cycles,
        /// Packets received and processed.
        packets,
        /// Loop iterations.
        iterations,
        /// Non-empty rx bursts.
        rx_bursts,
        /// Outputs to a port number this switch does not have.
        drop_bad_output,
        /// Messages applied.
        messages,
    }
}

counter_set! {
    /// Counters of one rx queue, kept by the PMD polling it.
    pub struct RxqLocal;
    /// The published mirror of an [`RxqLocal`], shared with readers (and kept by the switch
    /// when the queue moves to another PMD, so its history moves with it).
    pub struct AtomicRxqCounters;
    {
        /// TSC cycles spent receiving and processing this queue's bursts.
        busy_cycles,
        /// Packets received.
        packets,
    }
}

/// The atomics a PMD publishes into; shared with readers through an `Arc`.
pub(crate) struct PmdShared {
    ports: Vec<AtomicPortCounters>,
    pmd: AtomicPmdLocal,
    pub(crate) running: AtomicBool,
    pub(crate) perf: crate::perf::AtomicPmdHistograms,
    /// The last barrier number handed out to a sender, and the highest the PMD has
    /// reached (see `PmdSender::barrier`).
    pub(crate) barrier_sent: AtomicU64,
    pub(crate) barrier_done: AtomicU64,
    /// The port changes the PMD applied, on their way back (see `crate::port_change`).
    pub(crate) port_changes: crate::port_change::PortChangeReturn,
}

impl PmdShared {
    /// For a PMD of `n_ports` port slots and a message queue of `message_queue`.
    pub(crate) fn new(n_ports: usize, message_queue: usize) -> PmdShared {
        PmdShared {
            ports: (0..n_ports).map(|_| AtomicPortCounters::default()).collect(),
            pmd: AtomicPmdLocal::default(),
            running: AtomicBool::new(false),
            perf: Default::default(),
            barrier_sent: AtomicU64::new(0),
            barrier_done: AtomicU64::new(0),
            port_changes: crate::port_change::PortChangeReturn::new(message_queue + 1),
        }
    }

    /// Called by the owning PMD only (single writer): plain relaxed stores.
    pub(crate) fn publish(&self, ports: &[PortCounters], pmd: &PmdLocal) {
        for (dst, src) in self.ports.iter().zip(ports) {
            dst.publish(src);
        }
        self.publish_pmd(pmd);
    }

    pub(crate) fn publish_pmd(&self, pmd: &PmdLocal) {
        self.pmd.publish(pmd);
    }

    pub(crate) fn port(&self, i: usize) -> PortCounters {
        self.ports[i].snapshot()
    }

    pub(crate) fn pmd(&self) -> PmdLocal {
        self.pmd.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_read_round_trips() {
        let s = PmdShared::new(2, 1);
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

    #[test]
    fn every_field_round_trips_and_adds() {
        // Distinct values in every field, so that a field mapped to another one shows.
        let p = PmdLocal {
            busy_cycles: 1,
            idle_cycles: 2,
            packets: 3,
            iterations: 4,
            rx_bursts: 5,
            drop_bad_output: 6,
            messages: 7,
        };
        let a = AtomicPmdLocal::default();
        a.publish(&p);
        assert_eq!(a.snapshot(), p);
        let mut twice = p;
        twice.add(&p);
        assert_eq!((twice.busy_cycles, twice.iterations, twice.messages), (2, 8, 14));
    }
}
