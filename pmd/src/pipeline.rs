//! The interface between the poll loop and whatever decides what happens to a packet.
//!
//! Per burst, the loop hands a [`Pipeline`] the ingress port and a view of every packet
//! (frame bytes and the NIC's RSS hash), and gets back one [`Verdict`] per packet: the
//! datapath actions to execute, borrowed from the pipeline's own tables (so nothing is
//! copied or allocated per packet), or `Miss`. Missed packets are then handed over one by
//! one with ownership ([`Pipeline::miss`]), e.g. to queue an upcall to a slow path;
//! the pipeline may also decline, and the loop drops and counts them.
//!
//! Other threads talk to a pipeline through its PMD's message queue; the loop applies
//! messages between bursts ([`Pipeline::handle_message`]), with an [`Injector`] through
//! which a message may bring packets back for transmission (missed packets returning from
//! the slow path with their actions).
//!
//! Two pipelines implement it: [`crate::FlowPipeline`] (the flow cache with parked
//! misses and upcalls, what the daemon runs) and [`crate::Forwarder`] (one decision per
//! ingress port, for the ring tests and as the benchmarks' floor).

use ferrovs_dpdk::Mbuf;
use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::pending::RxHold;

use crate::exec::TxState;

/// One received packet, as the pipeline sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketView<'a> {
    /// The frame, from the Ethernet header on (first segment).
    pub frame: &'a [u8],
    /// RSS hash computed by the NIC, if it provides one.
    pub rss_hash: Option<u32>,
}

/// The packets of one received burst, as a pipeline walks them.
///
/// The poll loop's own per-packet work on a burst (each packet's length, runts, the
/// port's byte count) happens inside the pipeline's loop over the packets, in
/// [`RxBurst::for_each`]: one pass over the burst, not a pass that builds an array of
/// views and a second one that reads it. A pipeline that does not look at the packets
/// need not walk them (the loop then walks them itself).
pub trait RxBurst<'a> {
    /// Number of packets.
    fn len(&self) -> usize;

    /// True if the burst has no packet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f(i, packet)` for every packet `i`, in order.
    fn for_each(self, f: impl FnMut(usize, PacketView<'a>));
}

/// Views built beforehand (tests, and pipelines called outside a PMD).
impl<'a> RxBurst<'a> for &[PacketView<'a>] {
    fn len(&self) -> usize {
        <[PacketView<'a>]>::len(self)
    }

    #[inline(always)]
    fn for_each(self, mut f: impl FnMut(usize, PacketView<'a>)) {
        for (i, &p) in self.iter().enumerate() {
            f(i, p)
        }
    }
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Execute these actions (empty = drop).
    Actions(&'a [DpAction]),
    /// No cached decision: hand the packet to [`Pipeline::miss`].
    Miss,
}

/// What [`Pipeline::classify`] tells of the verdicts it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    /// Every verdict of the burst is the same value (the first one's): the loop reads
    /// that one only, where it would otherwise test every verdict to find a burst of one
    /// output (11 instructions per packet for a burst of one flow).
    Uniform,
    /// Every verdict of the burst is the single action `output(port)`, from one
    /// megaflow's list or from several: the loop moves the burst to that port as one
    /// block without testing each verdict (16 instructions per packet through the EMC,
    /// where a burst of many flows has as many megaflows).
    OneOutput(u32),
    /// Anything else (or not known): the loop reads each verdict.
    Mixed,
}

/// A per-PMD packet pipeline. Owned and used by exactly one PMD thread.
pub trait Pipeline: Send + 'static {
    /// Messages other threads send to this pipeline.
    type Message: Send + 'static;

    /// Classifies one burst received on `in_port`: fill `out[i]` for each packet `i` of
    /// `pkts` (`out.len() == pkts.len()`, pre-filled with `Miss`), walking the packets
    /// at most once ([`RxBurst::for_each`]). Must not block, allocate or panic, whatever
    /// the frame bytes are (runts of < 14 bytes are dropped by the loop whatever the
    /// verdict). Returns [`Classified::Uniform`] only if every verdict of `out` is the
    /// same, [`Classified::OneOutput`] only if every one is that single output (debug
    /// builds check both).
    fn classify<'s, 'p, B: RxBurst<'p>>(&'s mut self, in_port: u32, pkts: B, out: &mut [Verdict<'s>]) -> Classified;

    /// Asked once per loop iteration before the rx queues are polled: which of them to
    /// leave alone this iteration (their frames wait in the device's ring), because the
    /// pipeline could not keep the misses of another burst. The loop keeps a
    /// [`MissShare`] per queue and skips those it names ([`MissShare::held_by`]); a queue
    /// of cache hits alone is always polled. Must be O(1).
    ///
    /// [`MissShare`]: ferrovs_flowcache::pending::MissShare
    /// [`MissShare::held_by`]: ferrovs_flowcache::pending::MissShare::held_by
    fn rx_hold(&mut self) -> RxHold {
        RxHold::None
    }

    /// Told when an iteration left rx queues alone after [`Pipeline::rx_hold`]
    /// (`queues` > 0 of them), for its counters.
    fn rxqs_held(&mut self, queues: usize) {
        let _ = queues;
    }

    /// Takes a packet that missed; `at` is its place in the burst the last
    /// [`Pipeline::classify`] saw (so that what classify learnt of it, such as its key,
    /// need not be worked out again). Return `None` when the packet was taken (e.g.
    /// queued as an upcall), or give it back to have it dropped and counted as `no_rule`.
    fn miss(&mut self, in_port: u32, at: usize, pkt: Mbuf) -> Option<Mbuf> {
        let _ = (in_port, at);
        Some(pkt)
    }

    /// Called once after the misses of a burst were handed over (only if there were
    /// some): e.g. to send the burst's upcalls as one message. Must not block.
    fn misses_done(&mut self, inject: &mut Injector<'_>) {
        let _ = inject;
    }

    /// Applies a message between bursts.
    fn handle_message(&mut self, msg: Self::Message, inject: &mut Injector<'_>);

    /// Called once per loop iteration, after the bursts and before the tx flush, whether
    /// packets arrived or not: a place for cheap periodic work (e.g. giving up on parked
    /// packets whose upcall was never answered, publishing counters). Must not block.
    /// Returns true if it executed or dropped packets (the loop then publishes the port
    /// counters even in an idle iteration).
    fn housekeeping(&mut self, inject: &mut Injector<'_>) -> bool {
        let _ = inject;
        false
    }

    /// Where this PMD sends the packets of `DpAction::Controller` (asked once, when the
    /// PMD starts); none by default, and then such copies are not made.
    fn packet_in_sink(&self) -> Option<crate::packet_in::PacketInSink> {
        None
    }
}

/// Lets a message handler transmit packets through the PMD's batched tx path.
pub struct Injector<'a> {
    pub(crate) tx: &'a mut TxState,
}

impl Injector<'_> {
    /// Executes `actions` on `pkt` as if it had been received on `in_port` (the ingress
    /// port only matters for counters). Outputs are batched with the next flush.
    pub fn execute(&mut self, in_port: u32, pkt: Mbuf, actions: &[DpAction]) {
        let idx = self.tx.port_index(in_port);
        self.tx.execute(idx, pkt, actions);
    }

    /// Executes `actions` on a copy of `frame` in a new mbuf from the pool, as if
    /// received on `in_port` (a packet-out; `in_port` may be a reserved port).
    pub fn execute_frame(&mut self, in_port: u32, frame: &[u8], actions: &[DpAction]) {
        let idx = self.tx.port_index(in_port);
        self.tx.execute_frame(idx, frame, actions);
    }

    /// Drops a packet received on `in_port` that [`Pipeline::miss`] had taken, counting
    /// it as `drop_no_rule` on that port (e.g. its upcall was never answered).
    pub fn drop_missed(&mut self, in_port: u32, pkt: Mbuf) {
        let idx = self.tx.port_index(in_port);
        self.tx.drop_counted(idx, pkt, |c| c.drop_no_rule += 1);
    }
}
