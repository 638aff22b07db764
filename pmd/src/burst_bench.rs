//! A harness for instruction-count benchmarks of the burst path (not used by the switch).
//!
//! Wall-clock throughput moves with the neighbours on a shared machine; the number of
//! instructions executed per packet does not. This module runs the PMD's real
//! per-burst code — `crate::pmd::process_burst`: the [`FlowPipeline`]'s classify (the
//! rx pass with key extraction, EMC / signature cache / classifier) and
//! the execution into the tx batches — on the caller's thread, on bursts of frames copied
//! into mbufs, so that a profiler can count exactly that code: every call of
//! [`BurstBench::measured_burst`] is one burst and nothing else (refilling the burst and
//! sending it on are outside it). `examples/burst_bench.rs` drives it; the script that
//! runs it under callgrind is `deploy/bench-instructions`.
//!
//! Setup goes through the real miss path: a warm-up pass over every flow parks the
//! misses, the harness answers each upcall with an `Install` of a megaflow for that
//! flow's 5-tuple (`five_tuple_mask`: every flow its own megaflow, as a slow path would
//! install for 5-tuple rules), and passes repeat until no packet misses.

use std::sync::Arc;

use crossbeam_channel::Receiver;
use ferrovs_dpdk::{Eal, MbufBatch, Mempool, Port, PortConfig, probe};
use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::testpkt::five_tuple_mask;
use ferrovs_flowcache::upcall::{PmdCommand, PmdReport, UpcallBatch};
use ferrovs_flowcache::{FlowCacheConfig, Megaflow};

use crate::capture::CaptureTaps;
use crate::exec::{TxPort, TxState};
use crate::pipeline::{Injector, Pipeline};
use crate::switch::max_frame;
use crate::{FlowMessage, FlowPipeline, PipelineClock, PipelineShared, pending_config_for_pool};

/// The ingress port's number (slot 0); output goes to [`OUT_PORT`] (slot 1).
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

/// One PMD's burst path on the calling thread: a flow pipeline, a tx side with two
/// `net_null` ports, and the pool the bursts are built from.
pub struct BurstBench {
    pipeline: FlowPipeline,
    tx: TxState,
    pool: Mempool,
    upcalls: Receiver<UpcallBatch>,
    reports: Receiver<PmdReport>,
    next_id: u64,
    actions: BenchActions,
    /// Bursts run through `unmeasured_burst`.
    unmeasured: u64,
    // The ports stay open while the tx queues are used.
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
        let pool = Mempool::new(eal, &format!("bb_pool_{tag}"), n_mbufs, 256, 2048 + 128, eal.socket_id())
            .map_err(|e| format!("mempool: {e}"))?;
        let mut ports = Vec::new();
        let mut tx_ports = Vec::new();
        for number in [IN_PORT, OUT_PORT] {
            let id = probe(eal, &format!("net_null_bb{tag}{number},no-rx=1")).map_err(|e| format!("probe: {e}"))?;
            let port = Port::configure(eal, id, &PortConfig::default(), &pool).map_err(|e| format!("port: {e}"))?;
            port.start().map_err(|e| format!("start: {e}"))?;
            let txq = port.tx_queue(0).map_err(|e| format!("tx queue: {e}"))?;
            tx_ports.push((number, TxPort::new(number, txq, max_frame(1500))));
            ports.push(port);
        }
        let tx = TxState::new(2, tx_ports, pool.clone(), Arc::new(CaptureTaps::default()));
        let (up_tx, upcalls) = crossbeam_channel::bounded(1 << 16);
        let (ev_tx, reports) = crossbeam_channel::bounded(1 << 16);
        let clock = PipelineClock::new(eal.tsc_hz(), ferrovs_dpdk::rdtsc());
        let shared = Arc::new(PipelineShared::new(&config));
        let pending = pending_config_for_pool(n_mbufs, 1);
        let pipeline = FlowPipeline::new(0, config, pending, up_tx, ev_tx, clock, shared);
        Ok(BurstBench { pipeline, tx, pool, upcalls, reports, next_id: 0, actions, unmeasured: 0, _ports: ports })
    }

    /// Fills `batch` (empty) with copies of `frames`, at most one burst.
    pub fn fill(&self, batch: &mut MbufBatch, frames: &[Vec<u8>]) -> Result<(), String> {
        for f in frames {
            let m = self.pool.alloc_frame(f).map_err(|e| format!("mbuf: {e}"))?;
            batch.push(m).map_err(|_| "more frames than a burst".to_string())?;
        }
        Ok(())
    }

    /// The measured code: one burst through the PMD's burst path. Leaves `batch` empty;
    /// the packets wait in the tx batches until [`BurstBench::after_burst`].
    #[inline(never)]
    pub fn measured_burst(&mut self, batch: &mut MbufBatch) {
        crate::pmd::process_burst(IN_PORT, 0, batch, &mut self.pipeline, &mut self.tx);
    }

    /// The same burst path for the bursts that must not be counted (warm-up). Its body
    /// must differ from `measured_burst`'s (it counts the bursts): identical functions
    /// are folded into one by the compiler, and the profiler would then count both.
    #[inline(never)]
    pub fn unmeasured_burst(&mut self, batch: &mut MbufBatch) {
        self.unmeasured += 1;
        crate::pmd::process_burst(IN_PORT, 0, batch, &mut self.pipeline, &mut self.tx);
    }

    /// Sends what the burst queued and answers the upcalls it raised: one megaflow per
    /// new 5-tuple, with the harness's actions. Returns how many upcalls were answered.
    pub fn after_burst(&mut self) -> usize {
        let mut answered = 0;
        while let Ok(batch) = self.upcalls.try_recv() {
            for u in batch.upcalls() {
                self.next_id += 1;
                let megaflow = Megaflow::new(u.key, five_tuple_mask(), self.actions.actions());
                let cmd = PmdCommand::Install { id: self.next_id, key: u.key, megaflow };
                self.pipeline.handle_message(FlowMessage::Command(cmd), &mut Injector { tx: &mut self.tx });
                answered += 1;
            }
        }
        while self.reports.try_recv().is_ok() {}
        self.tx.flush();
        answered
    }

    /// The pipeline's counters (where lookups were answered).
    pub fn stats(&self) -> crate::PipelineStats {
        self.pipeline.stats()
    }

    /// Packets sent on [`OUT_PORT`], dropped by the actions and dropped as no_rule on
    /// [`IN_PORT`], so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        let c = &self.tx.counters;
        (c[1].tx_packets, c[0].drop_action, c[0].drop_no_rule)
    }
}
