#![forbid(unsafe_code)]
//! ferrovs-pmd: DPDK ports and the poll-mode forwarding loop.
//!
//! A [`Switch`] owns the ports of one bridge and a set of PMD threads, one per configured
//! core. Each PMD polls the rx queues assigned to it in bursts of 32, asks its own
//! [`Classifier`] what to do with each packet, executes the resulting datapath actions
//! into per-port tx batches and sends them on its own tx queue of each port. Nothing on
//! that path is shared with another thread: the classifier, the queues, the batches and
//! the counters all belong to the PMD. Other threads talk to a PMD through its message
//! queue (applied between bursts) and read its counters through relaxed atomics.
//!
//! Modules: [`spec`] (what to build, validation), [`classify`] (the classifier
//! interface), [`forwarder`] (the per-ingress-port classifier), [`flow_pipeline`] (the
//! flow-cache classifier with parked misses and upcalls), [`exec`] (executing
//! actions, per-port tx batching), [`edit`] (packet edits), [`stats`] (counters),
//! [`pmd`] (the poll loop), [`switch`] (start/stats/messages/stop).

pub mod classify;
pub mod edit;
pub mod error;
pub mod exec;
pub mod flow_pipeline;
pub mod forwarder;
pub mod pmd;
pub mod spec;
pub mod stats;
pub mod switch;

pub use classify::{Classifier, Injector, PacketView, Verdict};
pub use edit::{EditResult, FrameEditor};
pub use error::SwitchError;
pub use flow_pipeline::{
    DpFlowDump, FlowMessage, FlowPipeline, PipelineClock, PipelineCounters, PipelineStats, flowcache_editor,
    pipeline_hooks,
};
pub use forwarder::{ForwardRule, Forwarder, ForwarderMessage};
pub use pmd::PmdMessage;
pub use spec::{IdleBackoff, MAX_PORT_NUMBER, PortDevice, PortSpec, SwitchOptions, online_cpus, validate};
pub use stats::{PmdLocal, PortCounters};
pub use switch::{Hooks, PmdInfo, PmdSender, PmdStats, PortStats, RxqAssignment, Switch, SwitchStats};
