#![forbid(unsafe_code)]
//! ferrovs-pmd: DPDK ports and the poll-mode forwarding loop.
//!
//! A [`Switch`] owns the ports of one bridge and a set of PMD threads, one per configured
//! core. Each PMD polls the rx queues assigned to it in bursts of 32, asks its own
//! [`Pipeline`] what to do with each packet, executes the resulting datapath actions
//! into per-port tx batches and sends them on its own tx queue of each port. Nothing on
//! that path is shared with another thread: the pipeline, the queues, the batches and
//! the counters all belong to the PMD. Other threads talk to a PMD through its message
//! queue (applied between bursts) and read its counters through relaxed atomics.
//!
//! Modules: [`spec`] (what to build, validation), [`switch`] (start/stats/messages/stop),
//! [`pmd`] (the poll loop), [`pipeline`] (the pipeline interface between the loop and
//! what decides), [`flow_pipeline`] (the flow-cache pipeline: lookups, parked misses,
//! upcalls and the slow path's commands), [`flow_stats`] (live megaflow statistics for
//! the slow path), `flow_reports` (gone megaflows and executed keys on their way to the
//! slow path, private), [`heap_return`] (the slow path's heap values on their way back
//! to be freed there), `flow_names` (slow-path
//! flow ids against cache ids, private), [`clock`] (the pipeline's millisecond time base),
//! [`exec`] (executing actions through flowcache's edits, per-port tx batching),
//! [`packet_in`] (frames copied for the OpenFlow controllers), [`stats`]
//! (counters and their published atomic mirrors), [`perf`] (iteration histograms),
//! [`capture`] (copies of a port's frames while a capture is armed), [`forwarder`] (a per-ingress-port
//! pipeline without packet parsing, used by the ring tests and as the benchmarks'
//! floor; the daemon does not use it), `burst_bench` (one PMD on the caller's thread:
//! its burst path and its whole loop iteration, for instruction-count benchmarks; hidden).

#[doc(hidden)]
pub mod burst_bench;
pub mod capture;
pub mod clock;
pub mod error;
pub mod exec;
mod flow_names;
pub mod flow_pipeline;
mod flow_reports;
pub mod flow_stats;
pub mod forwarder;
pub mod heap_return;
pub mod packet_in;
pub mod perf;
pub mod pipeline;
pub mod pmd;
pub mod port_change;
mod rxq_assign;
pub mod spec;
pub mod stats;
pub mod switch;

pub use clock::PipelineClock;
pub use error::SwitchError;
pub use flow_pipeline::{
    FlowMessage, FlowPipeline, PacketOut, PipelineCounters, PipelineShared, PipelineStats, pending_config_for_pool,
};
pub use flow_stats::FlowStatsTable;
pub use forwarder::{ForwardRule, Forwarder, ForwarderMessage};
pub use packet_in::{PacketInFrame, PacketInSink, PacketInSource, packet_in_channel};
pub use pipeline::{Classified, Injector, PacketView, Pipeline, RxBurst, Verdict};
pub use pmd::PmdMessage;
pub use spec::{IdleBackoff, MAX_PORT_NUMBER, PortSource, PortSpec, SwitchOptions, online_cpus, validate};
pub use stats::{AtomicPmdLocal, AtomicPortCounters, PmdLocal, PortCounters};
pub use switch::{PmdInfo, PmdSender, PmdStats, PortStats, RxqAssignment, Switch, SwitchStats};

// One burst size everywhere: the binding's batch, the flow cache's lookup batch and the
// config's fixed `burst` are the same fact (`ferrovs_config::BURST_SIZE`).
const _: () = assert!(ferrovs_dpdk::BURST == ferrovs_config::BURST_SIZE);
const _: () = assert!(ferrovs_flowcache::classifier::MAX_BATCH == ferrovs_config::BURST_SIZE);
