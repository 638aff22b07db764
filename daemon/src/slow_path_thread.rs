//! The slow-path thread: drives the deterministic `ferrovs_flowcache::slow_path::SlowPath`
//! with real inputs — upcalls and events from the PMDs, control requests from the main
//! thread, the clock — and delivers its commands to the PMDs.
//!
//! Delivery never drops a command: a PMD's message queue that is full is waited on (the
//! PMD drains it between bursts), because a lost `Install` would strand parked packets
//! and a lost `Remove` would leave a stale megaflow. A rule change is answered only after
//! every PMD has applied the change's commands (a barrier on each PMD's queue), so when
//! `ferrovs-ctl add-flow` returns, no packet is forwarded by a stale megaflow.
//!
//! The PMDs' reports (megaflows gone, packets executed without a megaflow) are applied as
//! they come. Every second or so the thread reads the PMDs' live megaflow statistics from
//! their tables of atomics (for rule counters, rule idle timeouts and refreshing MAC
//! entries of cached flows; the PMDs are not asked anything) and runs the state
//! machine's tick (MAC aging, rule idle/hard timeouts, the PMDs' idle timeout).
//! `dump-flows` reads the same tables; `dump-dp-flows` is the state machine's mirror
//! with the tables' statistics.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use ferrovs_config::Groups;
use ferrovs_config::{MatchSpec, Rule};
use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::megaflow::MegaflowStats;
use ferrovs_flowcache::slow_path::{
    BridgeSpec, DeletedRule, ExpiredRule, FlowChange, GroupChange, GroupError, SlowPath, SlowPathCounters,
    SlowPathError,
};
use ferrovs_flowcache::upcall::{FlowId, PmdCommand, PmdReport, UpcallBatch};
use ferrovs_flowcache::xlate::MissMode;
use ferrovs_pmd::flow_pipeline::{FlowMessage, PacketOut, PipelineShared};
use ferrovs_pmd::{PipelineClock, PmdSender};

use crate::flowfmt::{format_actions, format_match};
use crate::protocol::{
    ANSWER_TIMEOUT, AddFlowsReply, DelFlowsReply, DpFlow, DumpDpFlowsReply, DumpFlowsReply, LINE_TIMEOUT,
    ReloadedBridge, RuleCounters, TraceReply, TraceStep,
};

/// How long to wait for a PMD to take a command or pass a barrier before giving up on
/// it (it would have to be stuck; the PMD never waits for the slow path).
const PMD_TIMEOUT: Duration = Duration::from_secs(10);
/// How often live statistics are collected and the state machine ticks.
const TICK: Duration = Duration::from_secs(1);

/// Upper bounds of the upcall latency buckets, in microseconds: from a translation that
/// hits warm caches (a few µs) to one stuck behind a full PMD queue (tens of ms). Fixed,
/// so every reader (the typed reply, the metrics endpoint) sees the same buckets; the
/// last bucket counts everything above the last bound.
pub const UPCALL_LATENCY_BOUNDS_US: [u64; 12] = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000];

/// Upcall handling times counted into [`UPCALL_LATENCY_BOUNDS_US`]: one slot per bucket
/// plus one for the overflow, each bumped by the slow-path thread alone and read from
/// any thread. A histogram and not just the mean: one slow upcall in a thousand is what
/// makes a new connection's first packet late.
#[derive(Default)]
pub struct UpcallLatency {
    counts: [AtomicU64; UPCALL_LATENCY_BOUNDS_US.len() + 1],
}

impl UpcallLatency {
    /// Counts one upcall that took `ns` nanoseconds.
    pub fn record(&self, ns: u64) {
        let bucket =
            UPCALL_LATENCY_BOUNDS_US.iter().position(|&le| ns <= le * 1000).unwrap_or(UPCALL_LATENCY_BOUNDS_US.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Upcalls per bucket (not cumulative), the overflow last.
    pub fn counts(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

/// Where a request's answer goes.
type Answer<T> = Sender<Result<T, String>>;

/// A request from the main (control) thread, with where to send its typed answer.
enum SlowRequest {
    AddFlows {
        bridge: String,
        rules: Vec<Rule>,
        answer: Answer<AddFlowsReply>,
    },
    ReplaceRules {
        bridge: String,
        rules: Vec<Rule>,
        answer: Answer<ReloadedBridge>,
    },
    /// An OpenFlow flow-mod (see `SlowPath::flow_mod`).
    FlowMod {
        bridge: String,
        change: Box<FlowChange>,
        answer: Answer<FlowModReply>,
    },
    DelFlows {
        bridge: String,
        /// Boxed: a match is the largest member of any request.
        spec: Box<MatchSpec>,
        answer: Answer<DelFlowsReply>,
    },
    DumpFlows {
        bridge: String,
        answer: Answer<DumpFlowsReply>,
    },
    RulesPerTable {
        bridge: String,
        answer: Answer<Vec<u32>>,
    },
    /// The `send_flow_rem` rules change requests deleted since the last ask.
    TakeDeleted {
        answer: Answer<Vec<DeletedRule>>,
    },
    DumpDpFlows {
        answer: Answer<DumpDpFlowsReply>,
    },
    Trace {
        bridge: String,
        key: FlowKey,
        answer: Answer<TraceReply>,
    },
    SetMissMode {
        bridge: String,
        miss: MissMode,
        answer: Answer<u64>,
    },
    GroupMod {
        bridge: String,
        change: GroupChange,
        answer: Answer<Result<(), GroupError>>,
    },
    Groups {
        bridge: String,
        answer: Answer<Arc<Groups>>,
    },
    RunsRules {
        bridge: String,
        rules: Vec<Rule>,
        answer: Answer<bool>,
    },
    PacketOut {
        bridge: String,
        out: PacketOutRequest,
        answer: Answer<()>,
    },
    RuleTexts {
        bridge: String,
        /// Whether to take the changes since the last time (to write them back).
        take_edits: bool,
        answer: Answer<RulesToWrite>,
    },
    /// A bridge added or removed, or a bridge's port set changed; answered with the
    /// number of megaflows removed once every PMD has applied the change.
    Topology {
        change: TopologyChange,
        answer: Answer<u64>,
    },
}

/// A change of bridges or ports, as the slow path sees it.
pub enum TopologyChange {
    AddBridge(BridgeSpec),
    RemoveBridge(String),
    /// The bridge's ports (OpenFlow numbers, in flood order) and their datapath numbers.
    SetPorts {
        bridge: String,
        ports: Vec<u32>,
        datapath_ports: Vec<u32>,
    },
}

/// An OpenFlow packet-out in the rule model: `actions` on `frame` from `in_port`.
/// What an OpenFlow flow-mod did (see `SlowPath::flow_mod`).
#[derive(Debug, Default)]
pub struct FlowModReply {
    /// Whether a rule changed (else nothing is written back).
    pub changed: bool,
    /// The deleted rules with `send_flow_rem`, with their counters.
    pub removed: Vec<ferrovs_flowcache::slow_path::RuleDump>,
}

/// A bridge's rules as the write-back needs them (see `ferrovs_config::persist`).
#[derive(Debug)]
pub struct RulesToWrite {
    /// Every rule printed, in order.
    pub texts: Arc<Vec<String>>,
    /// The changes to `texts` since they were last taken, if known.
    pub edits: Option<Vec<ferrovs_config::persist::journal::RuleTextEdit>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PacketOutRequest {
    pub in_port: u32,
    pub frame: Vec<u8>,
    pub actions: Vec<ferrovs_config::Action>,
}

/// A packet a slow-path megaflow sent up through the packet-in pool (reason
/// `REASON_SLOW_PATH`): translated with its bytes, then executed through PMD 0 like a
/// packet-out.
#[derive(Debug)]
pub struct SlowPathFrame {
    /// The datapath port it arrived on.
    pub in_port: u32,
    pub frame: Vec<u8>,
}

/// Slow-path frames waiting for the thread, as many as the packet-in pool has buffers:
/// the packet-in thread waits for room, so a flood of them holds pool buffers and the
/// PMDs drop (and count) the excess copies.
pub const SLOW_PATH_FRAME_QUEUE: usize = ferrovs_pmd::packet_in::PACKET_IN_BUFFERS;

/// Counters of the thread itself, readable from any thread.
#[derive(Default)]
pub struct SlowPathThreadStats {
    /// Nanoseconds spent handling upcalls (translation + delivery).
    pub upcall_ns: AtomicU64,
    pub upcalls: AtomicU64,
    /// Longest single upcall, in nanoseconds.
    pub upcall_max_ns: AtomicU64,
    /// How long each upcall took, bucketed.
    pub upcall_latency: UpcallLatency,
    /// Commands that could not be delivered (a PMD stuck for PMD_TIMEOUT).
    pub undelivered: AtomicU64,
    /// Snapshot of the state machine's counters, refreshed every tick and after every
    /// rule change.
    pub machine: std::sync::Mutex<SlowPathCounters>,
}

/// The running thread.
pub struct SlowPathThread {
    requests: Sender<SlowRequest>,
    frames: Sender<SlowPathFrame>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
    pub stats: Arc<SlowPathThreadStats>,
}

impl SlowPathThread {
    pub fn start(
        slow: SlowPath,
        pmds: Vec<PmdSender<FlowMessage>>,
        shared: Vec<Arc<PipelineShared>>,
        upcalls: Receiver<UpcallBatch>,
        reports: Receiver<PmdReport>,
        clock: PipelineClock,
        expired: Sender<ExpiredRule>,
    ) -> std::io::Result<SlowPathThread> {
        let (tx, rx) = crossbeam_channel::bounded(16);
        let (frames, frames_rx) = crossbeam_channel::bounded(SLOW_PATH_FRAME_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SlowPathThreadStats::default());
        let mut worker = Worker { slow, pmds, shared, clock, stats: stats.clone(), expired };
        let stop2 = stop.clone();
        let join = std::thread::Builder::new()
            .name("ferrovs-slow_path".into())
            .spawn(move || worker.run(upcalls, reports, rx, frames_rx, stop2))?;
        Ok(SlowPathThread { requests: tx, frames, stop, join: Some(join), stats })
    }

    /// Where the packet-in thread sends [`SlowPathFrame`]s.
    pub fn frames(&self) -> Sender<SlowPathFrame> {
        self.frames.clone()
    }

    /// Sends the request `make` builds around its answer channel and waits for the
    /// answer (for less than the control socket's deadline, so the client hears why).
    fn ask<T>(&self, make: impl FnOnce(Answer<T>) -> SlowRequest) -> Result<T, String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.requests.send_timeout(make(tx), LINE_TIMEOUT).map_err(|_| "slow path is not answering".to_string())?;
        let wait = ANSWER_TIMEOUT - LINE_TIMEOUT;
        rx.recv_timeout(wait).map_err(|_| format!("slow path did not answer in {} s", wait.as_secs()))?
    }

    /// Like [`SlowPathThread::ask`] for a rule change, but waits for the answer without a
    /// deadline: once queued the change will be applied (the thread's PMD barrier is
    /// bounded), and a timeout here would report as failed a change that then applies.
    fn ask_change<T>(&self, make: impl FnOnce(Answer<T>) -> SlowRequest) -> Result<T, String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.requests.send_timeout(make(tx), LINE_TIMEOUT).map_err(|_| "slow path is not answering".to_string())?;
        rx.recv().map_err(|_| "the slow path stopped before answering".to_string())?
    }

    /// Adds rules to `bridge` as one change, applied by every PMD before this returns.
    pub fn add_flows(&self, bridge: String, rules: Vec<Rule>) -> Result<AddFlowsReply, String> {
        self.ask_change(|answer| SlowRequest::AddFlows { bridge, rules, answer })
    }

    /// Sets what a table miss does on `bridge`, applied everywhere before returning.
    pub fn set_miss_mode(&self, bridge: String, miss: MissMode) -> Result<u64, String> {
        self.ask_change(|answer| SlowRequest::SetMissMode { bridge, miss, answer })
    }

    /// Changes a group of `bridge` (every megaflow of the bridge revalidated), applied
    /// everywhere before returning; `Ok(Err)`: the change was refused, nothing changed.
    pub fn group_mod(&self, bridge: String, change: GroupChange) -> Result<Result<(), GroupError>, String> {
        self.ask_change(|answer| SlowRequest::GroupMod { bridge, change, answer })
    }

    /// The groups of `bridge`.
    pub fn groups(&self, bridge: String) -> Result<Arc<Groups>, String> {
        self.ask(|answer| SlowRequest::Groups { bridge, answer })
    }

    /// Translates a packet-out and hands it to a PMD (which sends it after the
    /// messages already queued to it).
    pub fn packet_out(&self, bridge: String, out: PacketOutRequest) -> Result<(), String> {
        self.ask(|answer| SlowRequest::PacketOut { bridge, out, answer })
    }

    /// Whether `bridge` runs exactly `rules` (in that order).
    pub fn runs_rules(&self, bridge: String, rules: Vec<Rule>) -> Result<bool, String> {
        self.ask(|answer| SlowRequest::RunsRules { bridge, rules, answer })
    }

    /// Replaces all rules of `bridge` (a reload), applied everywhere before returning.
    pub fn replace_rules(&self, bridge: String, rules: Vec<Rule>) -> Result<ReloadedBridge, String> {
        self.ask_change(|answer| SlowRequest::ReplaceRules { bridge, rules, answer })
    }

    /// Applies an OpenFlow flow-mod (see `SlowPath::flow_mod`), everywhere before
    /// returning: whether a rule changed, and the deleted rules that asked for a
    /// flow-removed.
    pub fn flow_mod(&self, bridge: String, change: FlowChange) -> Result<FlowModReply, String> {
        self.ask_change(|answer| SlowRequest::FlowMod { bridge, change: Box::new(change), answer })
    }

    /// Deletes the rules `spec` matches (non-strictly), applied everywhere before returning.
    pub fn del_flows(&self, bridge: String, spec: MatchSpec) -> Result<DelFlowsReply, String> {
        self.ask_change(|answer| SlowRequest::DelFlows { bridge, spec: Box::new(spec), answer })
    }

    /// Adds or removes a bridge or changes its ports, applied by every PMD before this
    /// returns (so no megaflow outputs to a removed port). Returns the megaflows removed.
    pub fn topology(&self, change: TopologyChange) -> Result<u64, String> {
        self.ask_change(|answer| SlowRequest::Topology { change, answer })
    }

    /// The `send_flow_rem` rules that change requests (not flow-mods, which return
    /// theirs) deleted since the last call, for the controllers' flow-removed messages.
    pub fn take_deleted(&self) -> Result<Vec<DeletedRule>, String> {
        self.ask(|answer| SlowRequest::TakeDeleted { answer })
    }

    /// How many rules each table of `bridge` has, by table number.
    pub fn rules_per_table(&self, bridge: String) -> Result<Vec<u32>, String> {
        self.ask(|answer| SlowRequest::RulesPerTable { bridge, answer })
    }

    pub fn dump_flows(&self, bridge: String) -> Result<DumpFlowsReply, String> {
        self.ask(|answer| SlowRequest::DumpFlows { bridge, answer })
    }

    /// The rules of `bridge` as text, in table order, without counters (for writing them
    /// back: no read of the PMDs' megaflow statistics, which is O(megaflows)).
    pub fn rule_texts(&self, bridge: String) -> Result<Arc<Vec<String>>, String> {
        self.ask(|answer| SlowRequest::RuleTexts { bridge, take_edits: false, answer }).map(|r| r.texts)
    }

    /// The rules of `bridge` as text (as [`SlowPathThread::rule_texts`]) and the changes
    /// made to them since the last call, if known: what the write-back writes.
    pub fn rules_to_write(&self, bridge: String) -> Result<RulesToWrite, String> {
        self.ask(|answer| SlowRequest::RuleTexts { bridge, take_edits: true, answer })
    }

    pub fn dump_dp_flows(&self) -> Result<DumpDpFlowsReply, String> {
        self.ask(|answer| SlowRequest::DumpDpFlows { answer })
    }

    pub fn trace(&self, bridge: String, key: FlowKey) -> Result<TraceReply, String> {
        self.ask(|answer| SlowRequest::Trace { bridge, key, answer })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl Drop for SlowPathThread {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    slow: SlowPath,
    pmds: Vec<PmdSender<FlowMessage>>,
    /// Each PMD's counters and live megaflow statistics, by PMD index.
    shared: Vec<Arc<PipelineShared>>,
    clock: PipelineClock,
    stats: Arc<SlowPathThreadStats>,
    /// Timed-out `send_flow_rem` rules, for the bridge's OpenFlow controllers.
    expired: Sender<ExpiredRule>,
}

/// Timed-out rules waiting for the OpenFlow side; beyond this they are dropped (and
/// counted in the log): a flow-removed is a notification, never worth stalling for.
pub const EXPIRED_QUEUE: usize = 1024;

impl Worker {
    fn run(
        &mut self,
        upcalls: Receiver<UpcallBatch>,
        reports: Receiver<PmdReport>,
        requests: Receiver<SlowRequest>,
        frames: Receiver<SlowPathFrame>,
        stop: Arc<AtomicBool>,
    ) {
        let mut last_tick = Instant::now();
        self.publish_counters();
        while !stop.load(Ordering::Relaxed) {
            select! {
                // One burst's new keys per message: the whole batch per wake-up.
                recv(upcalls) -> batch => {
                    if let Ok(batch) = batch {
                        for up in batch.upcalls() {
                            let t0 = Instant::now();
                            let cmds = self.slow.handle_upcall(&up, self.clock.now_ms());
                            self.deliver(cmds);
                            let ns = t0.elapsed().as_nanos() as u64;
                            self.stats.upcall_ns.fetch_add(ns, Ordering::Relaxed);
                            self.stats.upcalls.fetch_add(1, Ordering::Relaxed);
                            self.stats.upcall_max_ns.fetch_max(ns, Ordering::Relaxed);
                            self.stats.upcall_latency.record(ns);
                        }
                    }
                }
                recv(reports) -> r => {
                    if let Ok(r) = r {
                        self.slow.handle_report(&r, self.clock.now_ms());
                    }
                }
                recv(requests) -> r => {
                    if let Ok(req) = r {
                        self.handle_request(req);
                    }
                }
                recv(frames) -> f => {
                    if let Ok(f) = f {
                        self.slow_path_frame(f);
                    }
                }
                default(Duration::from_millis(50)) => {}
            }
            // What the PMDs handed back since the last wake-up is freed here, not on them
            // (see the pmd crate's heap_return module).
            for pmd in &self.shared {
                pmd.returned.free_returned();
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                let live = self.live_stats();
                let now = self.clock.now_ms();
                let cmds = self.slow.update_stats(&live, now);
                self.deliver(cmds);
                let cmds = self.slow.tick(now);
                self.deliver(cmds);
                for e in self.slow.take_expired() {
                    if self.expired.try_send(e).is_err() {
                        tracing::warn!("slow path: a flow-removed notification was dropped (queue full)");
                    }
                }
                self.publish_counters();
            }
        }
    }

    /// Translates a [`SlowPathFrame`] with its bytes and executes the result on it
    /// through PMD 0 (as a packet-out).
    fn slow_path_frame(&mut self, f: SlowPathFrame) {
        let Some((actions, cmds)) = self.slow.slow_path_packet(&f.frame, f.in_port, self.clock.now_ms()) else {
            return;
        };
        self.deliver(cmds);
        if actions.is_empty() {
            return;
        }
        let Some(pmd) = self.pmds.first() else { return };
        let msg = FlowMessage::PacketOut(PacketOut { in_port: f.in_port, frame: f.frame, actions });
        if let Err(e) = pmd.send_timeout(msg, PMD_TIMEOUT) {
            self.stats.undelivered.fetch_add(1, Ordering::Relaxed);
            tracing::error!("slow path: a slow-path packet not delivered to PMD 0: {e}");
        }
    }

    fn publish_counters(&self) {
        if let Ok(mut g) = self.stats.machine.lock() {
            *g = self.slow.counters();
        }
    }

    /// Puts each command on its PMD's queue, in order, waiting for room if needed.
    fn deliver(&self, cmds: Vec<(usize, PmdCommand)>) {
        for (pmd, cmd) in cmds {
            let Some(s) = self.pmds.get(pmd) else { continue };
            if let Err(e) = s.send_timeout(FlowMessage::Command(cmd), PMD_TIMEOUT) {
                self.stats.undelivered.fetch_add(1, Ordering::Relaxed);
                tracing::error!("slow path: command to PMD {pmd} not delivered: {e}");
            }
        }
    }

    /// Delivers a rule change's commands and waits until every PMD has applied them.
    fn deliver_and_sync(&self, cmds: Vec<(usize, PmdCommand)>) -> Result<(), String> {
        self.deliver(cmds);
        for s in &self.pmds {
            s.barrier(PMD_TIMEOUT).map_err(|e| format!("PMD {} did not confirm the change: {e}", s.pmd()))?;
        }
        Ok(())
    }

    /// Applies a rule change's commands everywhere before returning; returns how many
    /// megaflows it removed.
    fn apply_rule_change(&self, cmds: Vec<(usize, PmdCommand)>) -> Result<usize, String> {
        let removed = count_removes(&cmds);
        self.deliver_and_sync(cmds)?;
        self.publish_counters();
        Ok(removed)
    }

    /// Every named megaflow of every PMD with its statistics, as last published by the
    /// PMDs (read from their tables; O(slots), on this thread).
    fn live_stats(&self) -> Vec<(usize, FlowId, MegaflowStats)> {
        let mut out = Vec::new();
        for (pmd, s) in self.shared.iter().enumerate() {
            s.flows.snapshot(pmd, &mut out);
        }
        out
    }

    /// Answers one request; the answer channel's receiver may be gone (it timed out),
    /// which changes nothing.
    fn handle_request(&mut self, req: SlowRequest) {
        let now = self.clock.now_ms();
        match req {
            SlowRequest::AddFlows { bridge, rules, answer } => {
                let added = rules.len() as u64;
                let r = self.rule_change(|slow| slow.add_flows(&bridge, rules, now));
                let _ = answer.send(r.map(|megaflows_removed| AddFlowsReply { added, megaflows_removed }));
            }
            SlowRequest::ReplaceRules { bridge, rules, answer } => {
                let n = rules.len() as u64;
                let r = self.rule_change(|slow| slow.replace_rules(&bridge, rules, now));
                let _ = answer.send(r.map(|megaflows_removed| ReloadedBridge { bridge, rules: n, megaflows_removed }));
            }
            SlowRequest::FlowMod { bridge, change, answer } => {
                let mut reply = FlowModReply::default();
                let r = self.rule_change(|slow| {
                    slow.flow_mod(&bridge, &change, now).map(|done| {
                        reply = FlowModReply { changed: done.changed, removed: done.removed };
                        done.cmds
                    })
                });
                let _ = answer.send(r.map(|_| reply));
            }
            SlowRequest::SetMissMode { bridge, miss, answer } => {
                let _ = answer.send(self.rule_change(|slow| slow.set_miss_mode(&bridge, miss, now)));
            }
            SlowRequest::GroupMod { bridge, change, answer } => {
                let r = match self.slow.group_mod(&bridge, change, now) {
                    Ok((cmds, _)) => self.apply_rule_change(cmds).map(|_| Ok(())),
                    Err(SlowPathError::Group { error, .. }) => Ok(Err(error)),
                    Err(e) => Err(e.to_string()),
                };
                let _ = answer.send(r);
            }
            SlowRequest::RunsRules { bridge, rules, answer } => {
                let same = self.slow.tables(&bridge).map(|t| t.rules() == rules.as_slice());
                let _ = answer.send(same.ok_or_else(|| format!("no bridge `{bridge}`")));
            }
            SlowRequest::Groups { bridge, answer } => {
                let _ = answer.send(self.slow.groups(&bridge).ok_or_else(|| format!("no bridge `{bridge}`")));
            }
            SlowRequest::PacketOut { bridge, out, answer } => {
                let r = self.slow.packet_out(&bridge, &out.frame, out.in_port, &out.actions, now);
                let r = r.map_err(|e| e.to_string()).and_then(|actions| {
                    let msg = FlowMessage::PacketOut(PacketOut { in_port: out.in_port, frame: out.frame, actions });
                    let pmd = self.pmds.first().ok_or("no PMD")?;
                    pmd.send_timeout(msg, PMD_TIMEOUT).map_err(|e| format!("packet-out not delivered: {e}"))
                });
                let _ = answer.send(r);
            }
            SlowRequest::DelFlows { bridge, spec, answer } => {
                let mut deleted = 0;
                let r = self.rule_change(|slow| {
                    slow.del_flows(&bridge, &spec, now).map(|(cmds, n)| {
                        deleted = n as u64;
                        cmds
                    })
                });
                let _ = answer.send(r.map(|megaflows_removed| DelFlowsReply { deleted, megaflows_removed }));
            }
            SlowRequest::Topology { change, answer } => {
                let r = self.rule_change(|slow| match change {
                    TopologyChange::AddBridge(spec) => slow.add_bridge(spec, now).map(|()| Vec::new()),
                    TopologyChange::RemoveBridge(name) => slow.remove_bridge(&name, now),
                    TopologyChange::SetPorts { bridge, ports, datapath_ports } => {
                        slow.set_bridge_ports(&bridge, ports, datapath_ports, now)
                    }
                });
                let _ = answer.send(r);
            }
            SlowRequest::RulesPerTable { bridge, answer } => {
                let r = self.slow.rules(&bridge).ok_or_else(|| format!("no bridge named {bridge:?}")).map(|rules| {
                    let mut counts = vec![0u32; 256];
                    for r in rules {
                        counts[r.table as usize] += 1;
                    }
                    counts
                });
                let _ = answer.send(r);
            }
            SlowRequest::TakeDeleted { answer } => {
                let _ = answer.send(Ok(self.slow.take_deleted()));
            }
            SlowRequest::DumpFlows { bridge, answer } => {
                let live = self.live_stats();
                let r = self
                    .slow
                    .dump_flows(&bridge, &live, now)
                    .map_err(|e| e.to_string())
                    .map(|rules| DumpFlowsReply { flows: format_in_pieces(&rules, rule_counters) });
                let _ = answer.send(r);
            }
            SlowRequest::RuleTexts { bridge, take_edits, answer } => {
                // Printed by the last build (see `print_changed_rules`) or kept from the
                // last time, with the changes in place since printed alone.
                let texts = match self.slow.printed_rules(&bridge) {
                    Some(texts) => Ok(texts),
                    None => self
                        .slow
                        .rules(&bridge)
                        .map(|rules| format_in_pieces(rules, ferrovs_config::rule_text))
                        .and_then(|texts| self.slow.keep_printed_rules(&bridge, texts))
                        .ok_or_else(|| format!("no bridge named {bridge:?}")),
                };
                let edits = if take_edits { self.slow.take_rule_text_edits(&bridge) } else { None };
                let _ = answer.send(texts.map(|texts| RulesToWrite { texts, edits }));
            }
            SlowRequest::DumpDpFlows { answer } => {
                // The mirror (by PMD, then id) with the live statistics; a megaflow whose
                // install the PMD has not applied yet shows no traffic.
                let live: HashMap<(usize, FlowId), MegaflowStats> =
                    self.live_stats().into_iter().map(|(pmd, id, st)| ((pmd, id), st)).collect();
                let flows = self
                    .slow
                    .dump_dp_flows()
                    .iter()
                    .map(|f| {
                        let st = live.get(&(f.pmd, f.id)).copied().unwrap_or_default();
                        DpFlow {
                            pmd: f.pmd,
                            flow: format_match(&f.key, &f.mask),
                            packets: st.packets,
                            bytes: st.bytes,
                            used_ms_ago: (st.packets > 0).then(|| now.saturating_sub(st.used)),
                            actions: format_actions(&f.actions),
                        }
                    })
                    .collect();
                let _ = answer.send(Ok(DumpDpFlowsReply { flows }));
            }
            SlowRequest::Trace { bridge, key, answer } => {
                let _ = answer.send(self.trace(&bridge, &key, now));
            }
        }
    }

    /// Runs a rule change of the state machine and applies its commands everywhere;
    /// returns how many megaflows it removed.
    fn rule_change<E: std::fmt::Display>(
        &mut self,
        change: impl FnOnce(&mut SlowPath) -> Result<Vec<(usize, PmdCommand)>, E>,
    ) -> Result<u64, String> {
        let cmds = change(&mut self.slow).map_err(|e| e.to_string())?;
        self.apply_rule_change(cmds).map(|n| n as u64)
    }

    fn trace(&self, bridge: &str, key: &FlowKey, now: u64) -> Result<TraceReply, String> {
        let t = self.slow.trace(bridge, key, now).map_err(|e| e.to_string())?;
        let tables = self.slow.tables(bridge);
        let steps = t
            .translation
            .trace
            .iter()
            .map(|s| TraceStep {
                table: s.table,
                depth: s.depth as u32,
                in_port: s.in_port,
                rule: s.rule.zip(tables).map(|(r, t)| t.rule(r).to_string()),
            })
            .collect();
        Ok(TraceReply {
            flow: format_match(key, &FlowKey::EXACT),
            steps,
            datapath_actions: format_actions(&t.translation.actions),
            megaflow: format_match(&t.megaflow.key, &t.megaflow.mask),
            error: t.translation.error.map(|e| format!("{e:?}")),
        })
    }
}

fn count_removes(cmds: &[(usize, PmdCommand)]) -> usize {
    cmds.iter().map(|(_, c)| if let PmdCommand::Remove { ids } = c { ids.len() } else { 0 }).sum()
}

/// Smallest share of a dump worth a formatting thread of its own.
const MIN_FORMAT_PIECE: usize = 50_000;

/// The rules of a dump as text with their counters.
fn rule_counters(r: &ferrovs_flowcache::slow_path::RuleDump) -> RuleCounters {
    RuleCounters {
        rule: r.rule.to_string(),
        n_packets: r.packets,
        n_bytes: r.bytes,
        duration_ms: r.duration_ms,
        idle_ms: r.idle_ms,
    }
}

/// `items` mapped by `one` (formatting rules), in order. A large list (every `add-flows`
/// is written back from one) is done in pieces on scoped threads, one per CPU: a million
/// rules take most of a second on one, and no upcall is served meanwhile.
fn format_in_pieces<T: Sync, U: Send>(items: &[T], one: impl Fn(&T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len() / MIN_FORMAT_PIECE);
    if threads <= 1 {
        return items.iter().map(one).collect();
    }
    let piece = items.len().div_ceil(threads);
    let one = &one;
    std::thread::scope(|s| {
        let handles: Vec<_> =
            items.chunks(piece).skip(1).map(|c| s.spawn(move || c.iter().map(one).collect::<Vec<_>>())).collect();
        let mut out: Vec<U> = Vec::with_capacity(items.len());
        out.extend(items.chunks(piece).next().unwrap_or_default().iter().map(one));
        for h in handles {
            out.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upcall_latency_buckets_include_their_bound() {
        let h = UpcallLatency::default();
        for ns in [0, 5_000, 5_001, 10_000, 49_999_999, 50_000_000, 50_000_001, u64::MAX] {
            h.record(ns);
        }
        let c = h.counts();
        assert_eq!(c.len(), UPCALL_LATENCY_BOUNDS_US.len() + 1);
        // <= 5 us: 0 and 5000 ns; (5, 10]: 5001 and 10000; (10000, 50000] us: the two
        // just at or under 50 ms; above: the rest.
        assert_eq!((c[0], c[1]), (2, 2));
        assert_eq!(c[UPCALL_LATENCY_BOUNDS_US.len() - 1], 2);
        assert_eq!(c[UPCALL_LATENCY_BOUNDS_US.len()], 2);
        assert_eq!(c.iter().sum::<u64>(), 8);
    }
}
