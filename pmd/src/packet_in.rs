//! Packets on their way to the OpenFlow controllers (packet-ins), from the PMDs to the
//! thread that sends them.
//!
//! A PMD that executes [`DpAction::Controller`] copies the frame (at most the action's
//! `max_len`, at most [`PACKET_IN_MAX_FRAME`] bytes) into a buffer it takes from a
//! bounded pool of preallocated buffers and puts it on a bounded queue; the consumer
//! sends the packet-in and gives the buffer back. Nothing is allocated on the PMD: the
//! buffers have their full capacity from the start and travel by move. No free buffer,
//! or a full queue, drops the copy and counts it (`dropped`): a packet-in storm costs
//! the PMD one copy per packet at most and the slow path a bounded amount of work; the
//! packet's other actions are unaffected. The original mbuf never leaves the PMD.
//!
//! [`DpAction::Controller`]: ferrovs_flowcache::actions::DpAction::Controller

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use ferrovs_flowcache::actions::{DpAction, PacketInFlow};

/// Buffers in the pool (shared by every PMD of the switch).
pub const PACKET_IN_BUFFERS: usize = 256;
/// The longest copy of a frame: a jumbo frame's worth. Longer frames are truncated
/// (`total_len` still says how long the frame was).
pub const PACKET_IN_MAX_FRAME: usize = 9216;

/// One packet for the controllers.
#[derive(Debug)]
pub struct PacketInFrame {
    pub in_port: u32,
    /// `OFPR_NO_MATCH` (0) or `OFPR_ACTION` (1).
    pub reason: u8,
    pub table: u8,
    pub cookie: u64,
    /// The registers, metadata and written in_port the packet-in reports.
    pub flow: PacketInFlow,
    /// What the action asked for (65535: the whole frame).
    pub max_len: u16,
    /// The frame's length on the wire.
    pub total_len: u32,
    /// The frame's first bytes (all of it if it fits).
    pub data: Vec<u8>,
}

/// Counters of the channel, readable from any thread.
#[derive(Debug, Default)]
pub struct PacketInCounters {
    /// Copies queued by the PMDs.
    pub queued: AtomicU64,
    /// Copies dropped on the PMD: no free buffer or the queue full.
    pub dropped: AtomicU64,
}

/// The PMDs' end: cheap to clone (one per PMD).
#[derive(Clone)]
pub struct PacketInSink {
    free: Receiver<Vec<u8>>,
    give_back: Sender<Vec<u8>>,
    full: Sender<PacketInFrame>,
    counters: Arc<PacketInCounters>,
}

/// The consumer's end.
pub struct PacketInSource {
    free: Sender<Vec<u8>>,
    full: Receiver<PacketInFrame>,
    pub counters: Arc<PacketInCounters>,
}

/// A channel with `buffers` preallocated buffers of [`PACKET_IN_MAX_FRAME`] bytes.
pub fn packet_in_channel(buffers: usize) -> (PacketInSink, PacketInSource) {
    let (free_tx, free_rx) = bounded(buffers);
    let (full_tx, full_rx) = bounded(buffers);
    for _ in 0..buffers {
        let _ = free_tx.send(Vec::with_capacity(PACKET_IN_MAX_FRAME));
    }
    let counters = Arc::new(PacketInCounters::default());
    (
        PacketInSink { free: free_rx, give_back: free_tx.clone(), full: full_tx, counters: counters.clone() },
        PacketInSource { free: free_tx, full: full_rx, counters },
    )
}

impl PacketInSink {
    /// Queues a copy of `frame` (the packet's first segment, `total_len` bytes on the
    /// wire); false if it was dropped (and counted). No allocation.
    pub fn send(&self, frame: &[u8], total_len: u32, meta: PacketInMeta) -> bool {
        let Ok(mut data) = self.free.try_recv() else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let n = frame.len().min(usize::from(meta.max_len)).min(data.capacity());
        data.clear();
        data.extend_from_slice(&frame[..n]);
        let pin = PacketInFrame {
            in_port: meta.in_port,
            reason: meta.reason,
            table: meta.table,
            cookie: meta.cookie,
            flow: meta.flow,
            max_len: meta.max_len,
            total_len,
            data,
        };
        match self.full.try_send(pin) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                // Give the buffer back; the free queue has room for every buffer.
                let _ = self.give_back.try_send(e.into_inner().data);
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// Executes a `DpAction::Controller` on `m` (on a PMD; nothing else is ever passed),
/// reporting `flow` (the notes before it).
pub(crate) fn execute(sink: Option<&PacketInSink>, m: &ferrovs_dpdk::Mbuf, action: &DpAction, flow: PacketInFlow) {
    let (Some(sink), &DpAction::Controller { in_port, max_len, reason, table, cookie }) = (sink, action) else {
        return;
    };
    sink.send(m.data(), m.pkt_len() as u32, PacketInMeta { in_port, reason, table, cookie, max_len, flow });
}

/// What a PMD knows about a packet-in besides the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInMeta {
    pub in_port: u32,
    pub reason: u8,
    pub table: u8,
    pub cookie: u64,
    pub max_len: u16,
    pub flow: PacketInFlow,
}

impl PacketInSource {
    /// The next packet-in, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<PacketInFrame> {
        self.full.recv_timeout(timeout).ok()
    }

    /// Gives a packet-in's buffer back to the pool.
    pub fn recycle(&self, data: Vec<u8>) {
        let _ = self.free.try_send(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(max_len: u16) -> PacketInMeta {
        PacketInMeta { in_port: 3, reason: 1, table: 2, cookie: 7, max_len, flow: PacketInFlow::default() }
    }

    #[test]
    fn frames_are_copied_truncated_and_buffers_come_back() {
        let (sink, source) = packet_in_channel(2);
        assert!(sink.send(&[1, 2, 3, 4], 4, meta(u16::MAX)));
        assert!(sink.send(&[1, 2, 3, 4], 60, meta(2)));
        // The pool is empty: the third copy is dropped and counted.
        assert!(!sink.send(&[9], 1, meta(u16::MAX)));
        assert_eq!(source.counters.dropped.load(Ordering::Relaxed), 1);
        let a = source.recv_timeout(Duration::ZERO).unwrap();
        assert_eq!((a.data.as_slice(), a.total_len, a.in_port, a.cookie), (&[1u8, 2, 3, 4][..], 4, 3, 7));
        let b = source.recv_timeout(Duration::ZERO).unwrap();
        assert_eq!((b.data.as_slice(), b.total_len), (&[1u8, 2][..], 60));
        source.recycle(a.data);
        assert!(sink.send(&[5; 20000], 20000, meta(u16::MAX)));
        let c = source.recv_timeout(Duration::ZERO).unwrap();
        assert_eq!(c.data.len(), PACKET_IN_MAX_FRAME);
        assert_eq!(source.counters.queued.load(Ordering::Relaxed), 3);
    }
}
