//! A harness for instruction-count benchmarks of the PMD (not used by the switch).
//!
//! Wall-clock throughput moves with the neighbours on a shared machine; the number of
//! instructions executed per packet does not. This module builds one PMD — a real
//! `PmdThread` with a [`FlowPipeline`], its rx queue on one side of a `net_ring` pair and
//! its outputs on that ring port and a `net_null` port — on the caller's thread, and
//! offers two measured functions a profiler can count exactly:
//!
//! - [`BurstBench::measured_burst`]: the PMD's per-burst code, `crate::pmd::process_burst`
//!   (the pipeline's classify with the rx pass and key extraction, EMC / signature cache /
//!   classifier, and the execution into the tx batches), on a burst of frames copied into
//!   mbufs. Refilling the burst and sending it on are outside.
//! - [`BurstBench::measured_iteration`]: one whole iteration of the PMD's run loop,
//!   `PmdThread::iteration`, the very function `PmdThread::run` loops over: the message
//!   queue poll, the rx burst from the ring, `process_burst`, housekeeping, the tx burst
//!   to the drivers, cycle accounting, histograms and the counter publication. Only
//!   putting the frames on the peer's side of the ring (the "wire") is outside.
//!
//! The difference between the two per packet is what the loop costs outside the burst
//! path, the drivers' rx and tx included (net_ring dequeues from a ring; net_null frees
//! each mbuf it is given, as a NIC's tx completion would).
//! `examples/burst_bench.rs` drives both; the script that runs it under callgrind is
//! `deploy/bench-instructions`.
//!
//! Setup goes through the real miss path: a warm-up pass over every flow parks the
//! misses, the harness answers each upcall with an `Install` of a megaflow for that
//! flow's 5-tuple (`five_tuple_mask`: every flow its own megaflow, as a slow path would
//! install for 5-tuple rules), and passes repeat until no packet misses. With
//! [`BenchMask::InPort`] the megaflow's mask covers `in_port` alone (what the slow path
//! installs for a table of `in_port` rules, deploy/bench's rule set "a"): the first
//! upcall's megaflow then answers every flow, and the others' installs are refused as
//! identical.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crossbeam_channel::{Receiver, Sender};
use ferrovs_dpdk::{
    Eal, MbufBatch, Mempool, Port, PortConfig, RxQueue, TxQueue, probe, ring_port_pair, rx_burst, tx_burst,
};
use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::testpkt::five_tuple_mask;
use ferrovs_flowcache::upcall::{PmdCommand, PmdReport, UpcallBatch};
use ferrovs_flowcache::{FlowCacheConfig, Megaflow};

use crate::capture::CaptureTaps;
use crate::exec::{TxPort, TxState};
use crate::pipeline::{Injector, Pipeline};
use crate::pmd::{AssignedRxq, LoopState, PmdMessage, PmdThread};
use crate::spec::SwitchOptions;
use crate::stats::{AtomicRxqCounters, PmdShared, RxqLocal};
use crate::switch::max_frame;
use crate::{FlowMessage, FlowPipeline, PipelineClock, PipelineShared, pending_config_for_pool};

/// The ingress port's number (slot 0, the ring port); output goes to [`OUT_PORT`] (slot 1,
/// `net_null`).
pub const IN_PORT: u32 = 1;
pub const OUT_PORT: u32 = 2;

/// What every installed megaflow does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchActions {
    /// `output(2)`: the common case, moved to the tx batch as a block.
    Output,
    /// No action: every packet is dropped (freed) on the PMD.
    Drop,
    /// `output(1), output(2)`: one extra reference per packet.
    OutputTwice,
}

impl BenchActions {
    pub fn parse(s: &str) -> Option<BenchActions> {
        match s {
            "output" => Some(BenchActions::Output),
            "drop" => Some(BenchActions::Drop),
            "output2" => Some(BenchActions::OutputTwice),
            _ => None,
        }
    }

    fn actions(self) -> Vec<DpAction> {
        match self {
            BenchActions::Output => vec![DpAction::Output(OUT_PORT)],
            BenchActions::Drop => vec![],
            BenchActions::OutputTwice => vec![DpAction::Output(IN_PORT), DpAction::Output(OUT_PORT)],
        }
    }
}

/// The mask of every installed megaflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchMask {
    /// The IPv4 5-tuple (with in_port and dl_type): one megaflow per flow.
    FiveTuple,
    /// `in_port` alone: one megaflow for every flow of the port.
    InPort,
}

impl BenchMask {
    pub fn parse(s: &str) -> Option<BenchMask> {
        match s {
            "5tuple" => Some(BenchMask::FiveTuple),
            "port" => Some(BenchMask::InPort),
            _ => None,
        }
    }

    fn mask(self) -> FlowKey {
        match self {
            BenchMask::FiveTuple => five_tuple_mask(),
            BenchMask::InPort => {
                let mut m = FlowKey::ZERO;
                m.set_in_port(u32::MAX);
                m
            }
        }
    }
}

/// One PMD on the calling thread, as the switch builds it (default options: slot count,
/// message queue), with [`IN_PORT`]'s rx queue assigned; the peer side of the ring is
/// the harness's "wire".
pub struct BurstBench {
    pmd: PmdThread<FlowPipeline>,
    state: LoopState,
    pool: Mempool,
    /// The peer's queues: what it sends, [`IN_PORT`] receives, and the other way round.
    wire_tx: TxQueue,
    wire_rx: RxQueue,
    upcalls: Receiver<UpcallBatch>,
    reports: Receiver<PmdReport>,
    next_id: u64,
    actions: BenchActions,
    mask: BenchMask,
    /// Bursts and iterations run through the unmeasured functions.
    unmeasured: u64,
    // The message queue stays open (its poll is part of each iteration), as do the ports
    // while their queues are used.
    _messages: Sender<PmdMessage<FlowMessage>>,
    _ports: Vec<Port>,
}

impl BurstBench {
    /// A harness whose mbufs and devices are named after `tag` (unique per process).
    pub fn new(
        eal: &Eal,
        tag: &str,
        n_mbufs: u32,
        config: FlowCacheConfig,
        actions: BenchActions,
    ) -> Result<BurstBench, String> {
        let options = SwitchOptions::default();
        let pool = Mempool::new(eal, &format!("bb_pool_{tag}"), n_mbufs, 256, 2048 + 128, eal.socket_id())
            .map_err(|e| format!("mempool: {e}"))?;
        let (ring_id, wire_id) =
            ring_port_pair(eal, &format!("bb_ring{tag}"), 1, 1024).map_err(|e| format!("ring pair: {e}"))?;
        let null_id = probe(eal, &format!("net_null_bb{tag},no-rx=1")).map_err(|e| format!("probe: {e}"))?;
        let mut ports = Vec::new();
        for id in [ring_id, wire_id, null_id] {
            let port = Port::configure(eal, id, &PortConfig::default(), &pool).map_err(|e| format!("port: {e}"))?;
            port.start().map_err(|e| format!("start: {e}"))?;
            ports.push(port);
        }
        let queue = |e: ferrovs_dpdk::DpdkError| format!("queue: {e}");
        let rxq = ports[0].rx_queue(0).map_err(queue)?;
        let wire_tx = ports[1].tx_queue(0).map_err(queue)?;
        let wire_rx = ports[1].rx_queue(0).map_err(queue)?;
        let tx_ports = vec![
            (IN_PORT, TxPort::new(IN_PORT, ports[0].tx_queue(0).map_err(queue)?, max_frame(1500))),
            (OUT_PORT, TxPort::new(OUT_PORT, ports[2].tx_queue(0).map_err(queue)?, max_frame(1500))),
        ];
        let capture = Arc::new(CaptureTaps::default());
        let mut tx = TxState::new(options.max_ports, tx_ports, pool.clone(), capture);
        let (up_tx, upcalls) = crossbeam_channel::bounded(1 << 16);
        let (ev_tx, reports) = crossbeam_channel::bounded(1 << 16);
        let clock = PipelineClock::new(eal.tsc_hz(), ferrovs_dpdk::rdtsc());
        let shared = Arc::new(PipelineShared::new(&config));
        let pending = pending_config_for_pool(n_mbufs, 1);
        let pipeline = FlowPipeline::new(0, config, pending, up_tx, ev_tx, clock, shared);
        tx.packet_in = pipeline.packet_in_sink();
        let (msg_tx, msg_rx) = crossbeam_channel::bounded(options.message_queue);
        let rxqs = vec![AssignedRxq {
            rxq,
            in_port: IN_PORT,
            in_idx: 0,
            counters: RxqLocal::default(),
            shared: Arc::new(AtomicRxqCounters::default()),
            misses: Default::default(),
        }];
        let pmd = PmdThread {
            index: 0,
            rxqs,
            tx,
            pipeline,
            messages: msg_rx,
            stop: Arc::new(AtomicBool::new(false)),
            shared: Arc::new(PmdShared::new(options.max_ports, options.message_queue)),
            backoff: options.idle_backoff,
            eal: eal.clone(),
        };
        Ok(BurstBench {
            state: LoopState::new(pmd.backoff),
            pmd,
            pool,
            wire_tx,
            wire_rx,
            upcalls,
            reports,
            next_id: 0,
            actions,
            mask: BenchMask::FiveTuple,
            unmeasured: 0,
            _messages: msg_tx,
            _ports: ports,
        })
    }

    /// Installs megaflows of `mask` from now on (the default: [`BenchMask::FiveTuple`]).
    pub fn with_mask(mut self, mask: BenchMask) -> BurstBench {
        self.mask = mask;
        self
    }

    /// Looks every burst up through the exact-match cache (the direct classifier path
    /// off, as for a port with many subtables: deploy/bench's rule set "b"). The
    /// caller's `FlowCacheConfig` should insert every hit into the EMC
    /// (`emc_insert_inverse_prob` 1), so that the warm-up fills it.
    pub fn through_emc(mut self) -> BurstBench {
        self.pmd.pipeline.set_direct_max_subtables(0);
        self
    }

    /// Fills `batch` (empty) with copies of `frames`, at most one burst.
    pub fn fill(&self, batch: &mut MbufBatch, frames: &[Vec<u8>]) -> Result<(), String> {
        for f in frames {
            let m = self.pool.alloc_frame(f).map_err(|e| format!("mbuf: {e}"))?;
            batch.push(m).map_err(|_| "more frames than a burst".to_string())?;
        }
        Ok(())
    }

    /// Puts `batch` (emptied) on the wire, for the next iteration to receive.
    pub fn send(&mut self, batch: &mut MbufBatch) -> Result<(), String> {
        let n = batch.len();
        let sent = tx_burst(&mut self.wire_tx, batch);
        batch.free_all();
        if sent == n { Ok(()) } else { Err(format!("the ring took {sent} of {n} frames")) }
    }

    /// The measured code: one burst through the PMD's burst path. Leaves `batch` empty;
    /// the packets wait in the tx batches until [`BurstBench::after_burst`].
    #[inline(never)]
    pub fn measured_burst(&mut self, batch: &mut MbufBatch) {
        let pmd = &mut self.pmd;
        crate::pmd::process_burst(IN_PORT, 0, batch, &mut self.state.scratch, &mut pmd.pipeline, &mut pmd.tx);
    }

    /// The same burst path for the bursts that must not be counted (warm-up). Its body
    /// must differ from `measured_burst`'s (it counts the bursts): identical functions
    /// are folded into one by the compiler, and the profiler would then count both.
    #[inline(never)]
    pub fn unmeasured_burst(&mut self, batch: &mut MbufBatch) {
        self.unmeasured += 1;
        let pmd = &mut self.pmd;
        crate::pmd::process_burst(IN_PORT, 0, batch, &mut self.state.scratch, &mut pmd.pipeline, &mut pmd.tx);
    }

    /// The measured code: one iteration of the PMD's run loop (what [`BurstBench::send`]
    /// put on the wire is received, processed and sent).
    #[inline(never)]
    pub fn measured_iteration(&mut self) {
        self.pmd.iteration(&mut self.state);
    }

    /// The same iteration, not counted (warm-up); a different body, as for the bursts.
    #[inline(never)]
    pub fn unmeasured_iteration(&mut self) {
        self.unmeasured += 1;
        self.pmd.iteration(&mut self.state);
    }

    /// Sends what a burst queued, frees what came back on the wire and answers the
    /// upcalls raised: one megaflow per new key, of the harness's mask and actions.
    /// Returns how many upcalls were answered.
    pub fn after_burst(&mut self) -> usize {
        let pmd = &mut self.pmd;
        let mut answered = 0;
        while let Ok(batch) = self.upcalls.try_recv() {
            for u in batch.upcalls() {
                self.next_id += 1;
                let megaflow = Megaflow::new(u.key, self.mask.mask(), self.actions.actions());
                let cmd = PmdCommand::Install { id: self.next_id, key: u.key, megaflow };
                pmd.pipeline.handle_message(FlowMessage::Command(cmd), &mut Injector { tx: &mut pmd.tx });
                answered += 1;
            }
        }
        while self.reports.try_recv().is_ok() {}
        pmd.tx.flush();
        let mut back = MbufBatch::new();
        while rx_burst(&mut self.wire_rx, &mut back) > 0 {
            back.free_all();
        }
        answered
    }

    /// The pipeline's counters (where lookups were answered).
    pub fn stats(&self) -> crate::PipelineStats {
        self.pmd.pipeline.stats()
    }

    /// Packets sent on [`OUT_PORT`], dropped by the actions and dropped as no_rule on
    /// [`IN_PORT`], so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        let c = &self.pmd.tx.counters;
        (c[1].tx_packets, c[0].drop_action, c[0].drop_no_rule)
    }
}
