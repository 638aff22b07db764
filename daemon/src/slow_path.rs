//! The slow-path thread: drives the deterministic `ferrovs_flowcache::slowpath::SlowPath`
//! with real inputs — upcalls and events from the PMDs, control requests from the main
//! thread, the clock — and delivers its commands to the PMDs.
//!
//! Delivery never drops a command: a PMD's message queue that is full is waited on (the
//! PMD drains it between bursts), because a lost `Install` would strand parked packets
//! and a lost `Remove` would leave a stale megaflow. A rule change is answered only after
//! every PMD has applied the change's commands (a barrier on each PMD's queue), so when
//! `ferrovs-ctl add-flow` returns, no packet is forwarded by a stale megaflow.
//!
//! Every second or so the thread collects the PMDs' live megaflow statistics (for rule
//! counters, rule idle timeouts and refreshing MAC entries of cached flows) and runs the
//! state machine's tick (MAC aging, rule timeouts, megaflow idle expiry).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use ferrovs_config::{MatchSpec, Rule};
use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::megaflow::MegaflowStats;
use ferrovs_flowcache::slowpath::SlowPath;
use ferrovs_flowcache::upcall::{FlowId, PmdCommand, PmdEvent, UpcallBatch};
use ferrovs_pmd::PipelineClock;
use ferrovs_pmd::PmdSender;
use ferrovs_pmd::flow_pipeline::{DpFlowDump as PmdFlowDump, FlowMessage};
use serde_json::{Value, json};

use crate::flowfmt::{format_actions, format_match};

/// How long to wait for a PMD to take a command or pass a barrier before giving up on
/// it (it would have to be stuck; the PMD never waits for the slow path).
const PMD_TIMEOUT: Duration = Duration::from_secs(10);
/// How often live statistics are collected and the state machine ticks.
const TICK: Duration = Duration::from_secs(1);

/// A request from the main (control) thread.
pub enum SlowRequest {
    AddFlows { bridge: String, rules: Vec<Rule> },
    ReplaceRules { bridge: String, rules: Vec<Rule> },
    DelFlows { bridge: String, spec: MatchSpec },
    DumpFlows { bridge: String },
    DumpDpFlows,
    Trace { bridge: String, key: FlowKey },
}

/// Counters of the thread itself, readable from any thread.
#[derive(Default)]
pub struct SlowPathThreadStats {
    /// Nanoseconds spent handling upcalls (translation + delivery).
    pub upcall_ns: AtomicU64,
    pub upcalls: AtomicU64,
    /// Longest single upcall, in nanoseconds.
    pub upcall_max_ns: AtomicU64,
    /// Commands that could not be delivered (a PMD stuck for PMD_TIMEOUT).
    pub undelivered: AtomicU64,
    /// Snapshot of the state machine's counters, as JSON, refreshed every tick.
    pub counters_json: std::sync::Mutex<Value>,
}

type Reply = Sender<Result<Value, String>>;

/// The running thread.
pub struct SlowPathThread {
    requests: Sender<(SlowRequest, Reply)>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
    pub stats: Arc<SlowPathThreadStats>,
}

impl SlowPathThread {
    pub fn start(
        slow: SlowPath,
        pmds: Vec<PmdSender<FlowMessage>>,
        upcalls: Receiver<UpcallBatch>,
        events: Receiver<PmdEvent>,
        clock: PipelineClock,
    ) -> std::io::Result<SlowPathThread> {
        let (tx, rx) = crossbeam_channel::bounded(16);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SlowPathThreadStats::default());
        let mut worker = Worker { slow, pmds, clock, stats: stats.clone() };
        let stop2 = stop.clone();
        let join = std::thread::Builder::new()
            .name("ferrovs-slowpath".into())
            .spawn(move || worker.run(upcalls, events, rx, stop2))?;
        Ok(SlowPathThread { requests: tx, stop, join: Some(join), stats })
    }

    /// Sends a request and waits for the answer.
    pub fn request(&self, req: SlowRequest) -> Result<Value, String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.requests
            .send_timeout((req, tx), Duration::from_secs(5))
            .map_err(|_| "slow path is not answering".to_string())?;
        rx.recv_timeout(Duration::from_secs(60)).map_err(|_| "slow path did not answer in 60 s".to_string())?
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
    clock: PipelineClock,
    stats: Arc<SlowPathThreadStats>,
}

impl Worker {
    fn run(
        &mut self,
        upcalls: Receiver<UpcallBatch>,
        events: Receiver<PmdEvent>,
        requests: Receiver<(SlowRequest, Reply)>,
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
                        }
                    }
                }
                recv(events) -> ev => {
                    if let Ok(ev) = ev {
                        self.slow.handle_event(&ev, self.clock.now_ms());
                    }
                }
                recv(requests) -> r => {
                    if let Ok((req, reply)) = r {
                        let answer = self.handle_request(req);
                        let _ = reply.send(answer);
                    }
                }
                default(Duration::from_millis(50)) => {}
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                let live = self.live_stats();
                let now = self.clock.now_ms();
                let cmds = self.slow.update_stats(&live, now);
                self.deliver(cmds);
                let cmds = self.slow.tick(now);
                self.deliver(cmds);
                self.publish_counters();
            }
        }
    }

    fn publish_counters(&self) {
        let c = self.slow.counters();
        let v = json!({
            "upcalls": c.upcalls,
            "installs": c.installs,
            "executes": c.executes,
            "executes_raced": c.executes_raced,
            "executes_flow_limit": c.executes_flow_limit,
            "xlate_errors": c.xlate_errors,
            "removes": c.removes,
            "revalidated": c.revalidated,
            "mac_learned": c.mac_learned,
            "mac_moved": c.mac_moved,
            "mac_expired": c.mac_expired,
            "rule_changes": c.rule_changes,
            "rules_expired": c.rules_expired,
            "flows_gone": c.flows_gone,
        });
        if let Ok(mut g) = self.stats.counters_json.lock() {
            *g = v;
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

    /// Every installed megaflow of every PMD, as the PMDs see them now.
    fn dump_pmds(&self) -> Vec<(usize, PmdFlowDump)> {
        let mut out = Vec::new();
        for s in &self.pmds {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if s.send_timeout(FlowMessage::Dump(tx), PMD_TIMEOUT).is_err() {
                continue;
            }
            if let Ok(flows) = rx.recv_timeout(PMD_TIMEOUT) {
                out.extend(flows.into_iter().map(|f| (s.pmd(), f)));
            }
        }
        out
    }

    fn live_stats(&self) -> Vec<(usize, FlowId, MegaflowStats)> {
        self.dump_pmds().into_iter().map(|(pmd, f)| (pmd, f.id, f.stats)).collect()
    }

    fn handle_request(&mut self, req: SlowRequest) -> Result<Value, String> {
        let now = self.clock.now_ms();
        match req {
            SlowRequest::AddFlows { bridge, rules } => {
                let n = rules.len();
                let cmds = self.slow.add_flows(&bridge, rules, now).map_err(|e| e.to_string())?;
                let removed = self.apply_rule_change(cmds)?;
                Ok(json!({ "added": n, "megaflows_removed": removed }))
            }
            SlowRequest::ReplaceRules { bridge, rules } => {
                let n = rules.len();
                let cmds = self.slow.replace_rules(&bridge, rules, now).map_err(|e| e.to_string())?;
                let removed = self.apply_rule_change(cmds)?;
                Ok(json!({ "bridge": bridge, "rules": n, "megaflows_removed": removed }))
            }
            SlowRequest::DelFlows { bridge, spec } => {
                let (cmds, deleted) = self.slow.del_flows(&bridge, &spec, now).map_err(|e| e.to_string())?;
                let removed = self.apply_rule_change(cmds)?;
                Ok(json!({ "deleted": deleted, "megaflows_removed": removed }))
            }
            SlowRequest::DumpFlows { bridge } => {
                let live = self.live_stats();
                let rules = self.slow.dump_flows(&bridge, &live, now).map_err(|e| e.to_string())?;
                Ok(Value::Array(
                    rules
                        .iter()
                        .map(|r| {
                            let text = r.rule.to_string();
                            json!(format!(
                                "duration={:.3}s, n_packets={}, n_bytes={}, idle_age={}, {}",
                                r.duration_ms as f64 / 1000.0,
                                r.packets,
                                r.bytes,
                                r.idle_ms / 1000,
                                text
                            ))
                        })
                        .collect(),
                ))
            }
            SlowRequest::DumpDpFlows => {
                let mut flows = self.dump_pmds();
                flows.sort_by_key(|(pmd, f)| (*pmd, f.id));
                Ok(Value::Array(
                    flows
                        .iter()
                        .map(|(pmd, f)| {
                            let age_ms = now.saturating_sub(f.stats.used);
                            json!(format!(
                                "pmd={pmd} {}, packets:{}, bytes:{}, used:{}, actions:{}",
                                format_match(&f.key, &f.mask),
                                f.stats.packets,
                                f.stats.bytes,
                                if f.stats.packets == 0 {
                                    "never".to_string()
                                } else {
                                    format!("{:.3}s", age_ms as f64 / 1000.0)
                                },
                                format_actions(&f.actions)
                            ))
                        })
                        .collect(),
                ))
            }
            SlowRequest::Trace { bridge, key } => {
                let t = self.slow.trace(&bridge, &key, now).map_err(|e| e.to_string())?;
                let steps: Vec<Value> = t
                    .translation
                    .trace
                    .iter()
                    .map(|s| {
                        json!({
                            "table": s.table,
                            "depth": s.depth,
                            "in_port": s.in_port,
                            "rule": match (s.rule, self.slow.tables(&bridge)) {
                                (Some(r), Some(t)) => t.rule(r).to_string(),
                                _ => "no match".to_string(),
                            },
                        })
                    })
                    .collect();
                Ok(json!({
                    "flow": format_match(&key, &ferrovs_flowcache::key::FlowKey::EXACT),
                    "steps": steps,
                    "datapath_actions": format_actions(&t.translation.actions),
                    "megaflow": format_match(&t.megaflow.key, &t.megaflow.mask),
                    "error": t.translation.error.map(|e| format!("{e:?}")),
                }))
            }
        }
    }
}

fn count_removes(cmds: &[(usize, PmdCommand)]) -> usize {
    cmds.iter().map(|(_, c)| if let PmdCommand::Remove { ids } = c { ids.len() } else { 0 }).sum()
}
