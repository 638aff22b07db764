//! What ferrovsd answers: one typed reply per request, tagged with the command it
//! answers (`{"cmd":"show","bridges":[...],...}`).
//!
//! These structs are the contract between the daemon, which fills them, and
//! ferrovs-ctl, which renders them; both sides use these exact types, so a counter
//! renamed on one side does not compile on the other. Every struct refuses unknown
//! fields and requires every field, so a ferrovs-ctl and a ferrovsd of different
//! versions fail loudly ("unknown field", "missing field") instead of printing a
//! counter that is not there as 0.
//!
//! The types are plain data with no dependency on the switch's own structs: the daemon
//! maps the PMD's, the ports' and the slow path's counters into them (`datapath`,
//! `slow_path`), which keeps the wire format stable while those internals change.
//! Derived values that scripts read (hit percentages, cycles per packet) are computed
//! by the daemon once and shipped, so every reader sees the same numbers.

use serde::{Deserialize, Serialize};

use super::Request;

/// The result of a successful request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Reply {
    Show(ShowReply),
    /// Boxed: the largest reply by far.
    PmdStatsShow(Box<PmdStatsReply>),
    PmdStatsClear,
    PmdRxqRebalance(RebalanceReply),
    /// The daemon is stopping (it answers before it stops).
    Stop,
    AddFlow(AddFlowsReply),
    AddFlows(AddFlowsReply),
    DelFlows(DelFlowsReply),
    DumpFlows(DumpFlowsReply),
    DumpDpFlows(DumpDpFlowsReply),
    Trace(TraceReply),
    Reload(ChangeReply),
    AddBr(ChangeReply),
    DelBr(ChangeReply),
    ListBr(NamesReply),
    AddPort(ChangeReply),
    DelPort(ChangeReply),
    SetPort(ChangeReply),
    ListPorts(NamesReply),
    SetController,
    DelController,
    GetController(ControllersReply),
    /// A capture started; the capture stream follows (see `protocol::capture`).
    Capture(CaptureReply),
}

/// `get-controller`: the bridge's OpenFlow controllers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllersReply {
    pub targets: Vec<String>,
    /// Controllers connected right now.
    pub connected: u64,
    /// Packet-ins written to the controllers, and dropped by the rate limit.
    pub packet_ins_sent: u64,
    pub packet_ins_rate_limited: u64,
}

impl Reply {
    /// Whether this is the kind of reply `req` asks for.
    pub fn answers(&self, req: &Request) -> bool {
        match self {
            Reply::Show(_) => matches!(req, Request::Show),
            Reply::PmdStatsShow(_) => matches!(req, Request::PmdStatsShow),
            Reply::PmdStatsClear => matches!(req, Request::PmdStatsClear),
            Reply::PmdRxqRebalance(_) => matches!(req, Request::PmdRxqRebalance),
            Reply::Stop => matches!(req, Request::Stop),
            Reply::AddFlow(_) => matches!(req, Request::AddFlow { .. }),
            Reply::AddFlows(_) => matches!(req, Request::AddFlows { .. } | Request::AddFlowsStream { .. }),
            Reply::DelFlows(_) => matches!(req, Request::DelFlows { .. }),
            Reply::DumpFlows(_) => matches!(req, Request::DumpFlows { .. }),
            Reply::DumpDpFlows(_) => matches!(req, Request::DumpDpFlows),
            Reply::Trace(_) => matches!(req, Request::Trace { .. }),
            Reply::Reload(_) => matches!(req, Request::Reload),
            Reply::AddBr(_) => matches!(req, Request::AddBr { .. }),
            Reply::DelBr(_) => matches!(req, Request::DelBr { .. }),
            Reply::ListBr(_) => matches!(req, Request::ListBr),
            Reply::AddPort(_) => matches!(req, Request::AddPort { .. }),
            Reply::DelPort(_) => matches!(req, Request::DelPort { .. }),
            Reply::SetPort(_) => matches!(req, Request::SetPort { .. }),
            Reply::ListPorts(_) => matches!(req, Request::ListPorts { .. }),
            Reply::SetController => matches!(req, Request::SetController { .. }),
            Reply::DelController => matches!(req, Request::DelController { .. }),
            Reply::GetController(_) => matches!(req, Request::GetController { .. }),
            Reply::Capture(_) => matches!(req, Request::Capture { .. }),
        }
    }
}

/// `capture`: the port being captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureReply {
    pub port: String,
    /// OpenFlow port number.
    pub number: u32,
    /// Most bytes of a frame the capture keeps.
    pub snap_len: u32,
}

/// `show`: every bridge with its ports, and the packet buffer pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowReply {
    pub bridges: Vec<BridgeInfo>,
    /// Mbufs taken from the pool (in rx rings, in flight, held by replayed captures).
    pub mbufs_in_use: u32,
    pub mbufs_total: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeInfo {
    pub name: String,
    pub ports: Vec<PortInfo>,
}

/// One port: identity, link, and the switch's counters for it (flat, so scripts read
/// `port["rx_packets"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortInfo {
    pub name: String,
    /// OpenFlow port number.
    pub number: u32,
    pub devargs: String,
    /// DPDK device name.
    pub device: String,
    /// The link is known to be up (`link_state` is `up`).
    pub link_up: bool,
    /// `up`, `down`, or `unknown`: the port's kernel interface (a net_tap's) is in
    /// another network namespace, where ferrovsd cannot see its state.
    pub link_state: LinkState,
    /// 0 when unknown or down.
    pub speed_mbps: u32,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Output packets freed because this port's tx queue was full.
    pub drop_tx_full: u64,
    /// Packets received here that no rule took.
    pub drop_no_rule: u64,
    /// Packets received here that their actions dropped.
    pub drop_action: u64,
    /// Runts and malformed frames received here.
    pub drop_malformed: u64,
    /// Packets received here with an action this build cannot execute.
    pub drop_unsupported: u64,
    /// Packets received here dropped because a copy could not be allocated.
    pub drop_no_mbuf: u64,
    /// Frames longer than this port's MTU allows (MTU + 18), not sent.
    pub drop_oversize: u64,
    /// Frames received while the port was administratively down, dropped.
    pub drop_admin_down_rx: u64,
    /// Outputs to the port while it was administratively down, not sent.
    pub drop_admin_down_tx: u64,
    /// Administratively down (`admin = "down"`, `set-port PORT admin=down`, OpenFlow's
    /// `OFPPC_PORT_DOWN`).
    pub admin_down: bool,
    /// The port's MTU.
    pub mtu: u16,
    /// The driver's own counters; `null` when the driver did not report them.
    pub nic: Option<NicCounters>,
}

/// A port's link, as far as ferrovsd can know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Up,
    Down,
    /// The port is bound to a kernel interface that has left ferrovsd's network
    /// namespace (a net_tap moved into another one): its driver can only ask the kernel
    /// about the interface in ferrovsd's namespace, where it no longer is, so whatever
    /// it said ("down") would not be true. The port still forwards.
    Unknown,
    /// The port's device went away (a TAP deleted, a device unplugged): the port is out
    /// of the datapath until the device returns and it is reattached.
    Detached,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Unknown => "unknown",
            LinkState::Detached => "detached",
        }
    }
}

/// The driver's counters of a port (`rte_eth_stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Dropped by the NIC for want of an rx descriptor.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// `pmd-stats-show`: every PMD, then the slow path. PMD counters are since the last
/// `pmd-stats-clear`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PmdStatsReply {
    /// TSC ticks per second, to turn cycles into time.
    pub tsc_hz: u64,
    pub pmds: Vec<PmdInfo>,
    pub slow_path: SlowPathInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PmdInfo {
    /// PMD index.
    pub pmd: usize,
    /// CPU the PMD runs on.
    pub core: usize,
    pub running: bool,
    /// It polls a pinned queue, so it gets no unpinned one (OVS's `isolated`).
    pub isolated: bool,
    /// `port:queue` of every rx queue the PMD polls.
    pub rx_queues: Vec<String>,
    /// The same queues with what each cost the PMD.
    pub rxq_usage: Vec<RxqUsage>,
    pub packets: u64,
    pub busy_cycles: u64,
    pub idle_cycles: u64,
    /// Busy cycles per packet (0 without packets).
    pub cycles_per_packet: f64,
    /// Busy share of all cycles, in percent.
    pub busy_percent: f64,
    pub rx_bursts: u64,
    pub iterations: u64,
    pub messages: u64,
    /// Outputs to a port number the switch does not have.
    pub drop_bad_output: u64,
    pub emc_hits: u64,
    pub signature_hits: u64,
    pub megaflow_hits: u64,
    pub misses: u64,
    /// The four shares of lookups, in percent (they add up to 100 with lookups).
    pub emc_hit_percent: f64,
    pub signature_hit_percent: f64,
    pub megaflow_hit_percent: f64,
    pub miss_percent: f64,
    pub upcalls_sent: u64,
    pub drop_upcall_queue_full: u64,
    pub drop_park_full: u64,
    pub drop_park_timeout: u64,
    /// Loop iterations that left rx queues whose packets miss alone because the parking
    /// table could not keep another burst's misses (the frames waited in the device's
    /// ring instead of being dropped; queues of cache hits alone are never left alone).
    pub rx_pauses: u64,
    /// Packets parked right now, waiting for the slow path's answer to their upcall
    /// (a gauge, not reset by `pmd-stats-clear`).
    pub parked: u64,
    /// Megaflows installed now, and their distinct masks.
    pub megaflows: u64,
    pub masks: u64,
    /// Megaflows evicted (least recently used) to make room at the flow limit.
    pub evictions: u64,
    /// Reports to the slow path (gone megaflows, executed keys) that were lost.
    pub reports_lost: u64,
    /// Heap values of the slow path's commands the PMD freed itself (their way back to
    /// the slow path was full; normally 0).
    pub frees_on_pmd: u64,
    /// Iteration histograms (`pmd-perf-show`).
    pub histograms: IterationHistograms,
}

/// A PMD's iteration histograms, with log2 buckets: `counts[0]` counts the value 0,
/// `counts[i]` the values in `[2^(i-1), 2^i)`, and the last bucket also every larger
/// value. Since the last `pmd-stats-clear`, like the other PMD counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IterationHistograms {
    /// TSC cycles per loop iteration (idle iterations included, back-off sleeps not).
    pub cycles_per_iteration: Vec<u64>,
    /// Packets received per loop iteration (idle iterations count as 0).
    pub packets_per_iteration: Vec<u64>,
    /// Cycles per packet of each iteration that received packets.
    pub cycles_per_packet: Vec<u64>,
    /// Packets per non-empty rx burst.
    pub packets_per_batch: Vec<u64>,
}

/// The slow-path thread: its upcall handling and its state machine's counters (both
/// since the daemon started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowPathInfo {
    pub upcalls_handled: u64,
    pub upcall_us_avg: f64,
    pub upcall_us_max: f64,
    /// How long upcalls took, bucketed. (Boxed: it keeps `Reply` small; the JSON is the
    /// same.)
    pub upcall_latency: Box<LatencyHistogram>,
    /// Commands a stuck PMD did not take.
    pub commands_undelivered: u64,
    pub state: SlowPathCounters,
}

/// A histogram of durations with fixed buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyHistogram {
    /// Upper bound of each bucket in microseconds, increasing.
    pub bounds_us: Vec<f64>,
    /// Events per bucket (not cumulative): `counts[i]` took more than `bounds_us[i-1]`
    /// and at most `bounds_us[i]`; the last entry, one past `bounds_us`, took longer
    /// than every bound.
    pub counts: Vec<u64>,
    /// All the durations added up, in microseconds.
    pub sum_us: f64,
}

/// The slow-path state machine's counters (refreshed about once a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowPathCounters {
    pub upcalls: u64,
    pub installs: u64,
    /// Every execute (packets sent without installing a megaflow).
    pub executes: u64,
    /// Executes because the translation's own MAC learning changed what it had read.
    pub executes_relearned: u64,
    /// Executes because the PMD already had a covering megaflow.
    pub executes_raced: u64,
    /// Executes because the PMD was at its flow limit.
    pub executes_flow_limit: u64,
    /// Upcalls whose in_port is on no bridge.
    pub no_bridge: u64,
    /// Upcalls from a PMD that does not exist.
    pub bad_upcalls: u64,
    /// Abandoned translations (installed as drop).
    pub xlate_errors: u64,
    pub removes: u64,
    /// Megaflows re-translated after a rule or MAC change.
    pub revalidated: u64,
    pub mac_learned: u64,
    pub mac_moved: u64,
    pub mac_expired: u64,
    pub mac_evicted: u64,
    pub rule_changes: u64,
    pub rules_expired: u64,
    /// Megaflows the PMDs reported gone.
    pub flows_gone: u64,
    /// Megaflows the PMDs evicted at their flow limit.
    pub flows_evicted: u64,
    /// Packets the PMDs executed without a megaflow, credited to their rules.
    pub executed_packets: u64,
    /// Packets a slow-path megaflow sent to the slow path one by one (neighbour-discovery
    /// messages that ND rules may match).
    pub slow_path_packets: u64,
}

/// `add-flow` and `add-flows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddFlowsReply {
    pub added: u64,
    /// Megaflows the change invalidated (removed from every PMD before the answer).
    pub megaflows_removed: u64,
}

/// `del-flows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelFlowsReply {
    pub deleted: u64,
    pub megaflows_removed: u64,
}

/// `pmd-rxq-rebalance`: the queues that moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebalanceReply {
    pub moves: Vec<RxqMove>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RxqMove {
    pub port: String,
    pub queue: u16,
    pub from_pmd: usize,
    pub to_pmd: usize,
}

/// One rx queue's share of its PMD (`pmd-rxq-show`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RxqUsage {
    pub port: String,
    pub queue: u16,
    pub packets: u64,
    /// TSC cycles the PMD spent on this queue's bursts since the queue was first polled.
    pub busy_cycles: u64,
    /// Pinned to this PMD (`rxq_affinity`).
    pub pinned: bool,
    /// `busy_cycles` over all the PMD's cycles (busy and idle) since it started, in %.
    pub usage_percent: f64,
}

/// What a change of the desired state did to the running switch (`reload`, `add-br`,
/// `del-br`, `add-port`, `del-port`, `set-port`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeReply {
    pub bridges_added: Vec<String>,
    pub bridges_removed: Vec<String>,
    pub ports_added: Vec<String>,
    pub ports_removed: Vec<String>,
    /// Ports changed in place (MTU).
    pub ports_changed: Vec<String>,
    /// Bridges whose rule set was replaced.
    pub rules_replaced: Vec<String>,
    /// Megaflows removed from the PMDs by the change.
    pub megaflows_removed: u64,
    /// Things the operator should know (e.g. rules that name a port the bridge lacks).
    pub warnings: Vec<String>,
}

/// `list-br`, `list-ports`: names, one per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamesReply {
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadedBridge {
    pub bridge: String,
    /// Rules the bridge has now.
    pub rules: u64,
    pub megaflows_removed: u64,
}

/// `dump-flows`: the rules of a bridge in table order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpFlowsReply {
    pub flows: Vec<RuleCounters>,
}

/// A rule with its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleCounters {
    /// The rule in ovs-ofctl syntax.
    pub rule: String,
    pub n_packets: u64,
    pub n_bytes: u64,
    /// Since the rule was added.
    pub duration_ms: u64,
    /// Since the rule last matched a packet (or was added).
    pub idle_ms: u64,
}

/// `dump-dp-flows`: every megaflow of every PMD, by PMD then flow id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpDpFlowsReply {
    pub flows: Vec<DpFlow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpFlow {
    pub pmd: usize,
    /// The covered fields of key and mask, `in_port(1),eth_type(0x0800),...`.
    pub flow: String,
    pub packets: u64,
    pub bytes: u64,
    /// Since the megaflow's last packet; `null` when it has had none.
    pub used_ms_ago: Option<u64>,
    /// Datapath actions, `drop` when none.
    pub actions: String,
}

/// `trace`: the tables the packet went through and what the datapath would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceReply {
    /// The packet's exact key.
    pub flow: String,
    pub steps: Vec<TraceStep>,
    pub datapath_actions: String,
    /// The megaflow an upcall would install.
    pub megaflow: String,
    /// Why translation was abandoned (the packet is then dropped).
    pub error: Option<String>,
}

/// One table lookup of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceStep {
    pub table: u8,
    /// Resubmit nesting depth (0 for table 0).
    pub depth: u32,
    /// The in_port the lookup used.
    pub in_port: u32,
    /// The matched rule, `null` for a table miss.
    pub rule: Option<String>,
}
