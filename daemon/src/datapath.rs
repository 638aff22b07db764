//! The running switch as the daemon sees it: the PMDs and ports (`ferrovs_pmd::Switch`)
//! running flow pipelines (EMC, signature cache, megaflow classifier), the slow-path
//! thread that answers their misses, and what the control commands need to describe
//! them.
//!
//! Port and PMD counters are read as the PMDs publish them (relaxed atomics, once per
//! burst), so reading them never stops forwarding.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferrovs_config::openflow::Version;
use ferrovs_config::openflow::convert::{as_loaded, load_in_place};
use ferrovs_config::{Config, PortConfig, Rule};
use ferrovs_dpdk::Eal;
use ferrovs_flowcache::flow_cache::FlowCacheConfig;
use ferrovs_flowcache::slow_path::{BridgeSpec, SlowPath, SlowPathConfig, SlowPathCounters as MachineCounters};
use ferrovs_pmd::PipelineClock;
use ferrovs_pmd::flow_pipeline::{FlowMessage, FlowPipeline, PipelineShared, PipelineStats, pending_config_for_pool};
use ferrovs_pmd::{PmdLocal, PmdStats, PortCounters, PortSpec, PortStats, Switch, SwitchOptions, SwitchStats};

use crate::daemon::DaemonError;
use crate::protocol::{
    BridgeInfo, IterationHistograms, LatencyHistogram, LinkState, NicCounters, PmdInfo, PmdStatsReply, PortInfo,
    RebalanceReply, Reply, Request, RxqMove, RxqUsage, ShowReply, SlowPathCounters, SlowPathInfo,
};
use crate::slow_path_thread::{SlowPathThread, TopologyChange, UPCALL_LATENCY_BOUNDS_US};

/// Report slots per PMD in the queue to the slow path (a PMD sends at most
/// `flow_reports::REPORTS_PER_ITERATION` per loop iteration).
const REPORT_QUEUE_PER_PMD: usize = 256;

/// The switch and the bookkeeping around it.
pub struct Datapath {
    switch: Switch<FlowMessage>,
    slow: SlowPathThread,
    pipelines: Vec<Arc<PipelineShared>>,
    /// PMD counters at the last `pmd-stats-clear`, subtracted when showing.
    pmd_baseline: HashMap<usize, (PmdStats, PipelineStats)>,
    /// The consumer end of the PMDs' packet-ins, until the OpenFlow side takes it.
    packet_in: Option<ferrovs_pmd::PacketInSource>,
    /// Timed-out `send_flow_rem` rules (taken once by the OpenFlow side).
    expired: Option<crossbeam_channel::Receiver<ferrovs_flowcache::slow_path::ExpiredRule>>,
    /// Each port's datapath number, by port name.
    dp_numbers: HashMap<String, u32>,
    /// Ports of the running config whose device went away (see `reconcile::detach_port`):
    /// not in the switch, shown as detached.
    detached: std::collections::BTreeSet<String>,
}

/// The datapath's port numbers (unique across the switch; what the PMDs use): each
/// port keeps its bridge's OpenFlow number unless a port of another bridge took it first,
/// then it gets the lowest free one. One bridge, or bridges with distinct numbers, see
/// the same numbers everywhere.
pub fn datapath_numbers(config: &Config) -> HashMap<String, u32> {
    let mut out: HashMap<String, u32> = HashMap::new();
    for p in config.bridges.iter().flat_map(|b| &b.ports) {
        let n = free_number(p.number, out.values());
        out.insert(p.name.clone(), n);
    }
    out
}

/// `wanted` if no number in `used` is it, else the lowest free number. An internal port
/// (OpenFlow number `LOCAL`, beyond the datapath's range) gets the highest free number, so
/// that the operator's ports keep their OpenFlow numbers in the datapath.
fn free_number<'a>(wanted: u32, used: impl Iterator<Item = &'a u32> + Clone) -> u32 {
    let taken = |n: u32| used.clone().any(|&u| u == n);
    if wanted > ferrovs_config::MAX_PORT_NUMBER {
        return (1..=ferrovs_config::MAX_PORT_NUMBER).rev().find(|&n| !taken(n)).unwrap_or(wanted);
    }
    if !taken(wanted) {
        return wanted;
    }
    (1..=ferrovs_config::MAX_PORT_NUMBER).find(|&n| !taken(n)).unwrap_or(wanted)
}

/// The slow path's view of the bridges.
fn bridge_specs(config: &Config) -> Vec<BridgeSpec> {
    let dp = datapath_numbers(config);
    config
        .bridges
        .iter()
        .map(|b| BridgeSpec {
            name: b.name.clone(),
            ports: b.ports.iter().map(|p| p.number).collect(),
            datapath_ports: b.ports.iter().map(|p| dp[&p.name]).collect(),
            rules: b.rules.clone(),
            groups: b.groups.clone(),
        })
        .collect()
}

fn slow_path_config(config: &Config) -> SlowPathConfig {
    SlowPathConfig {
        // The PMDs enforce the flow limit by evicting their least recently used
        // megaflows (reported gone), so new flows are still cached there. The slow
        // path's mirror may run ahead of a PMD by the evictions in flight; its own limit
        // (answering `Execute`) is only a backstop at twice that.
        flow_limit_per_pmd: (config.flow.limit_per_pmd as usize).saturating_mul(2),
        idle_expiry_ms: config.flow.idle_expiry.as_millis() as u64,
        // Every add-flows and del-flows is written back to the config before it is
        // answered: a large one is printed while it is compiled (`rule_texts`).
        print_changed_rules: true,
        ..SlowPathConfig::default()
    }
}

/// Checks that every bridge's rules compile (before anything is started).
pub fn check(config: &Config) -> Result<(), String> {
    SlowPath::new(bridge_specs(config), config.pmd.cores.len(), slow_path_config(config), 0)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl Datapath {
    pub fn start(
        eal: &Eal,
        config: &Config,
        ports: &[PortSpec],
        options: &SwitchOptions,
    ) -> Result<Datapath, DaemonError> {
        let n_pmds = options.pmd_cores.len();
        let clock = PipelineClock::new(eal.tsc_hz(), ferrovs_dpdk::rdtsc());
        let slow = SlowPath::new(bridge_specs(config), n_pmds, slow_path_config(config), clock.now_ms())
            .map_err(|e| DaemonError::Datapath(e.to_string()))?;
        // One message per burst with new flows (an `UpcallBatch`, about 2 KiB, slots
        // preallocated by the channel).
        let queue = config.flow.upcall_queue_len as usize * n_pmds;
        let (upcall_tx, upcall_rx) = crossbeam_channel::bounded(queue.max(1));
        // Reports (gone megaflows, executed keys): fixed-size, about 3 KiB a slot; a
        // PMD keeps what does not fit in its own backlog.
        let (report_tx, report_rx) = crossbeam_channel::bounded(REPORT_QUEUE_PER_PMD * n_pmds.max(1));
        let cache = FlowCacheConfig::for_max_flows(config.flow.limit_per_pmd as usize);
        let pipelines: Vec<Arc<PipelineShared>> = (0..n_pmds).map(|_| Arc::new(PipelineShared::new(&cache))).collect();
        let pending = pending_config_for_pool(options.n_mbufs, n_pmds);
        let (packet_in_sink, packet_in) = ferrovs_pmd::packet_in_channel(ferrovs_pmd::packet_in::PACKET_IN_BUFFERS);
        let switch = Switch::start(eal, ports, options, |info| {
            FlowPipeline::new(
                info.index,
                cache,
                pending,
                upcall_tx.clone(),
                report_tx.clone(),
                clock,
                pipelines[info.index].clone(),
            )
            .with_packet_in(packet_in_sink.clone())
        })?;
        let senders = (0..n_pmds).map(|i| switch.sender(i)).collect::<Result<Vec<_>, _>>()?;
        let (expired_tx, expired) = crossbeam_channel::bounded(crate::slow_path_thread::EXPIRED_QUEUE);
        let slow = SlowPathThread::start(slow, senders, pipelines.clone(), upcall_rx, report_rx, clock, expired_tx)
            .map_err(|e| DaemonError::Datapath(format!("slow-path thread: {e}")))?;
        let dp_numbers = ports.iter().map(|p| (p.name.clone(), p.number)).collect();
        Ok(Datapath {
            switch,
            slow,
            pipelines,
            pmd_baseline: HashMap::new(),
            dp_numbers,
            packet_in: Some(packet_in),
            expired: Some(expired),
            detached: Default::default(),
        })
    }

    /// The packet-ins of every PMD (once; the OpenFlow side sends them), with where to
    /// send those that are slow-path packets.
    pub fn take_packet_in(
        &mut self,
    ) -> Option<(ferrovs_pmd::PacketInSource, crossbeam_channel::Sender<crate::slow_path_thread::SlowPathFrame>)> {
        Some((self.packet_in.take()?, self.slow.frames()))
    }

    /// The timed-out `send_flow_rem` rules (once; the OpenFlow side sends flow-removed).
    pub fn take_expired(&mut self) -> Option<crossbeam_channel::Receiver<ferrovs_flowcache::slow_path::ExpiredRule>> {
        self.expired.take()
    }

    /// Sets what a table miss does on `bridge` (controllers connected or not).
    pub fn set_miss_mode(&mut self, bridge: &str, miss: ferrovs_flowcache::xlate::MissMode) -> Result<(), String> {
        self.slow.set_miss_mode(bridge.to_string(), miss).map(|_| ())
    }

    /// Executes an OpenFlow packet-out on `bridge`.
    pub fn packet_out(&mut self, bridge: &str, out: crate::slow_path_thread::PacketOutRequest) -> Result<(), String> {
        self.slow.packet_out(bridge.to_string(), out)
    }

    /// The switch's packet captures (see `capture`).
    pub fn capture_taps(&self) -> &Arc<ferrovs_pmd::capture::CaptureTaps> {
        self.switch.capture()
    }

    /// Test hook (see `appctl::parse_test_hook`): makes PMD `pmd` sleep for `d` in the
    /// middle of its loop.
    pub fn stall_pmd(&self, pmd: usize, d: std::time::Duration) -> Result<(), String> {
        self.switch.send(pmd, FlowMessage::Stall(d)).map_err(|e| e.to_string())
    }

    /// Each PMD's (busy, idle) TSC cycles as last published.
    pub fn pmd_cycles(&self) -> Vec<(u64, u64)> {
        self.switch.stats().pmds.iter().map(|p| (p.counters.busy_cycles, p.counters.idle_cycles)).collect()
    }

    /// Each PMD's loop-iteration counter as last published (the watchdog's sign of life).
    pub fn pmd_iterations(&self) -> Vec<u64> {
        self.switch.stats().pmds.iter().map(|p| p.counters.iterations).collect()
    }

    pub fn show(&self, config: &Config) -> ShowReply {
        let stats = self.switch.stats();
        let bridges = config
            .bridges
            .iter()
            .map(|b| BridgeInfo {
                name: b.name.clone(),
                ports: b
                    .ports
                    .iter()
                    .filter_map(|pc| match stats.ports.iter().find(|s| s.name == pc.name) {
                        Some(s) => Some(port_info(s, pc)),
                        None if self.is_detached(&pc.name) => Some(detached_port_info(pc)),
                        None => None,
                    })
                    .collect(),
            })
            .collect();
        ShowReply { bridges, mbufs_in_use: stats.mbufs_in_use, mbufs_total: stats.mbufs_total }
    }

    pub fn pmd_stats(&self) -> PmdStatsReply {
        let stats = self.switch.stats();
        let pmds = stats
            .pmds
            .iter()
            .map(|p| {
                let base = self.pmd_baseline.get(&p.index).map(|(b, _)| b);
                let sub = |f: fn(&PmdLocal) -> u64| f(&p.counters) - base.map(|b| f(&b.counters)).unwrap_or(0);
                let pl = self.pipelines.get(p.index).map(|c| c.counters.snapshot()).unwrap_or_default();
                let plb = self.pmd_baseline.get(&p.index).map(|(_, b)| *b).unwrap_or_default();
                let (emc_hits, signature_hits, megaflow_hits, misses) = (
                    pl.emc_hits - plb.emc_hits,
                    pl.sig_hits - plb.sig_hits,
                    pl.classifier_hits - plb.classifier_hits,
                    pl.misses - plb.misses,
                );
                let lookups = emc_hits + signature_hits + megaflow_hits + misses;
                let busy_cycles = sub(|s| s.busy_cycles);
                let idle_cycles = sub(|s| s.idle_cycles);
                let packets = sub(|s| s.packets);
                PmdInfo {
                    pmd: p.index,
                    core: p.core,
                    running: p.running,
                    isolated: p.isolated,
                    rx_queues: p.rx_queues.iter().map(|q| format!("{}:{}", q.port_name, q.queue)).collect(),
                    rxq_usage: p
                        .rx_queues
                        .iter()
                        .map(|q| RxqUsage {
                            port: q.port_name.clone(),
                            queue: q.queue,
                            packets: q.packets,
                            busy_cycles: q.busy_cycles,
                            pinned: q.pinned,
                            usage_percent: 100.0
                                * ratio(q.busy_cycles, p.counters.busy_cycles + p.counters.idle_cycles),
                        })
                        .collect(),
                    packets,
                    busy_cycles,
                    idle_cycles,
                    cycles_per_packet: ratio(busy_cycles, packets),
                    busy_percent: 100.0 * ratio(busy_cycles, busy_cycles + idle_cycles),
                    rx_bursts: sub(|s| s.rx_bursts),
                    iterations: sub(|s| s.iterations),
                    messages: sub(|s| s.messages),
                    drop_bad_output: sub(|s| s.drop_bad_output),
                    emc_hits,
                    signature_hits,
                    megaflow_hits,
                    misses,
                    emc_hit_percent: 100.0 * ratio(emc_hits, lookups),
                    signature_hit_percent: 100.0 * ratio(signature_hits, lookups),
                    megaflow_hit_percent: 100.0 * ratio(megaflow_hits, lookups),
                    miss_percent: 100.0 * ratio(misses, lookups),
                    upcalls_sent: pl.upcalls_sent - plb.upcalls_sent,
                    drop_upcall_queue_full: pl.upcall_queue_full - plb.upcall_queue_full,
                    drop_park_full: pl.park_full - plb.park_full,
                    drop_park_timeout: pl.park_timeout - plb.park_timeout,
                    rx_pauses: pl.rx_pauses - plb.rx_pauses,
                    parked: pl.parked,
                    megaflows: pl.megaflows,
                    masks: pl.masks,
                    evictions: pl.evictions - plb.evictions,
                    reports_lost: pl.reports_lost - plb.reports_lost,
                    frees_on_pmd: pl.frees_on_pmd - plb.frees_on_pmd,
                    histograms: histograms(&base.map_or(p.histograms, |b| p.histograms.since(&b.histograms))),
                }
            })
            .collect();
        let st = &self.slow.stats;
        let upcalls = st.upcalls.load(Ordering::Relaxed);
        let slow_path = SlowPathInfo {
            upcalls_handled: upcalls,
            upcall_us_avg: ratio(st.upcall_ns.load(Ordering::Relaxed), upcalls) / 1000.0,
            upcall_us_max: st.upcall_max_ns.load(Ordering::Relaxed) as f64 / 1000.0,
            upcall_latency: Box::new(LatencyHistogram {
                bounds_us: UPCALL_LATENCY_BOUNDS_US.iter().map(|&b| b as f64).collect(),
                counts: st.upcall_latency.counts(),
                sum_us: st.upcall_ns.load(Ordering::Relaxed) as f64 / 1000.0,
            }),
            commands_undelivered: st.undelivered.load(Ordering::Relaxed),
            state: machine_counters(st.machine.lock().map(|g| *g).unwrap_or_default()),
        };
        PmdStatsReply { tsc_hz: stats.tsc_hz, pmds, slow_path }
    }

    pub fn pmd_stats_clear(&mut self) {
        self.pmd_baseline = self
            .switch
            .stats()
            .pmds
            .into_iter()
            .map(|p| {
                let pl = self.pipelines.get(p.index).map(|c| c.counters.snapshot()).unwrap_or_default();
                (p.index, (p, pl))
            })
            .collect();
    }

    /// Rule and megaflow commands, answered by the slow-path thread.
    pub fn flow_request(&mut self, req: &Request) -> Result<Reply, String> {
        let slow = &self.slow;
        Ok(match req {
            Request::AddFlow { bridge, flow, protocol } => {
                let version = request_version(protocol.as_deref())?;
                let rule = ferrovs_config::parse_flow(flow).map_err(|e| format!("{flow}: column {e}"))?;
                let rule = as_loaded(rule, version).map_err(|e| format!("{flow}: {e}"))?;
                let rules = vec![rule];
                self.check_one_version(bridge, &rules, version)?;
                Reply::AddFlow(self.slow.add_flows(bridge.clone(), rules)?)
            }
            Request::AddFlows { bridge, flows, protocol } => {
                let version = request_version(protocol.as_deref())?;
                // A streamed file is one element: parsed where it is, not copied by a join.
                let joined;
                let text = match flows.as_slice() {
                    [one] => one.as_str(),
                    many => {
                        joined = many.join("\n");
                        joined.as_str()
                    }
                };
                let mut rules = ferrovs_config::parse_flows(text).map_err(|e| format!("line {e}"))?;
                for (i, r) in rules.iter_mut().enumerate() {
                    load_in_place(r, version).map_err(|e| format!("rule {} of the set: {e}", i + 1))?;
                }
                self.check_one_version(bridge, &rules, version)?;
                Reply::AddFlows(self.slow.add_flows(bridge.clone(), rules)?)
            }
            Request::DelFlows { bridge, r#match } => {
                let spec = ferrovs_config::parse_match(r#match.as_deref().unwrap_or(""))
                    .map_err(|e| format!("match: column {e}"))?;
                Reply::DelFlows(slow.del_flows(bridge.clone(), spec)?)
            }
            Request::DumpFlows { bridge } => Reply::DumpFlows(slow.dump_flows(bridge.clone())?),
            Request::DumpDpFlows => Reply::DumpDpFlows(slow.dump_dp_flows()?),
            Request::Trace { bridge, packet } => {
                let m = ferrovs_config::parse_packet(packet).map_err(|e| format!("packet: column {e}"))?;
                let (key, _) = ferrovs_flowcache::xlate::match_key(&m);
                Reply::Trace(slow.trace(bridge.clone(), key)?)
            }
            other => return Err(format!("{other:?} is not a flow command")),
        })
    }

    /// The rules of `bridge` as text, in table order, without counters, and the changes
    /// to them since the last call (for the write-back).
    pub fn rules_to_write(&self, bridge: &str) -> Result<crate::slow_path_thread::RulesToWrite, String> {
        self.slow.rules_to_write(bridge.to_string())
    }

    /// The rules of `bridge` with their counters, in table order (OpenFlow statistics).
    pub fn rules(&mut self, bridge: &str) -> Result<Vec<crate::openflow::RuleStats>, String> {
        let dump = self.slow.dump_flows(bridge.to_string())?;
        dump.flows
            .into_iter()
            .map(|f| {
                let rule = ferrovs_config::parse_flow(&f.rule)
                    .map_err(|e| format!("internal error: dumped rule {:?} does not parse: {e:?}", f.rule))?;
                Ok(crate::openflow::RuleStats {
                    rule,
                    n_packets: f.n_packets,
                    n_bytes: f.n_bytes,
                    duration_ms: f.duration_ms,
                    idle_ms: f.idle_ms,
                })
            })
            .collect()
    }

    /// Adds typed rules to `bridge` (`add-flows` semantics), applied by every PMD before
    /// this returns.
    pub fn add_rules(&mut self, bridge: &str, rules: Vec<Rule>) -> Result<(), String> {
        self.slow.add_flows(bridge.to_string(), rules).map(|_| ())
    }

    /// Replaces the rules of `bridge` as one change (counters of unchanged rules kept),
    /// applied by every PMD before this returns.
    /// Changes a group of `bridge` (see `SlowPath::group_mod`); `Ok(Err)`: refused.
    pub fn group_mod(
        &mut self,
        bridge: &str,
        change: ferrovs_flowcache::slow_path::GroupChange,
    ) -> Result<Result<(), ferrovs_flowcache::slow_path::GroupError>, String> {
        self.slow.group_mod(bridge.to_string(), change)
    }

    /// The groups of `bridge`.
    pub fn groups(&mut self, bridge: &str) -> Result<Arc<ferrovs_config::Groups>, String> {
        self.slow.groups(bridge.to_string())
    }

    /// Whether `bridge` runs exactly `rules` (runtime changes included).
    pub fn runs_rules(&mut self, bridge: &str, rules: &[Rule]) -> Result<bool, String> {
        self.slow.runs_rules(bridge.to_string(), rules.to_vec())
    }

    /// How many rules each table of `bridge` has, by table number.
    pub fn rules_per_table(&self, bridge: &str) -> Result<Vec<u32>, String> {
        self.slow.rules_per_table(bridge.to_string())
    }

    /// The `send_flow_rem` rules change requests deleted since the last call (see
    /// `SlowPath::take_deleted`).
    pub fn take_deleted(&mut self) -> Result<Vec<ferrovs_flowcache::slow_path::DeletedRule>, String> {
        self.slow.take_deleted()
    }

    /// Applies an OpenFlow flow-mod to `bridge` (see `SlowPath::flow_mod`), applied by
    /// every PMD before this returns.
    pub fn flow_mod(
        &mut self,
        bridge: &str,
        change: ferrovs_flowcache::slow_path::FlowChange,
    ) -> Result<crate::slow_path_thread::FlowModReply, String> {
        self.slow.flow_mod(bridge.to_string(), change)
    }

    pub fn set_rules(&mut self, bridge: &str, rules: Vec<Rule>) -> Result<(), String> {
        self.slow.replace_rules(bridge.to_string(), rules).map(|_| ())
    }

    /// Adds a port to the switch: its device probed and started, every PMD given its tx
    /// queue; not yet polled, not yet on a bridge (see `reconcile`). Returns its datapath
    /// number (its OpenFlow number if free, see [`datapath_numbers`]).
    pub fn add_port(&mut self, p: &PortConfig) -> Result<u32, String> {
        let n = free_number(p.number, self.dp_numbers.values());
        self.switch.add_port(crate::reconcile::port_spec(p, n)).map_err(|e| e.to_string())?;
        self.dp_numbers.insert(p.name.clone(), n);
        Ok(n)
    }

    /// The ports whose driver reported their device removed since the last call.
    pub fn removed_ports(&self) -> Vec<String> {
        ferrovs_dpdk::take_removed_ports()
            .into_iter()
            .filter_map(|id| self.switch.port_name_of(id).map(str::to_string))
            .collect()
    }

    /// Whether port `name` is detached (its device went away).
    pub fn is_detached(&self, name: &str) -> bool {
        self.detached.contains(name)
    }

    /// The detached ports.
    pub fn detached(&self) -> impl Iterator<Item = &str> {
        self.detached.iter().map(String::as_str)
    }

    pub(crate) fn mark_detached(&mut self, name: &str) {
        self.detached.insert(name.to_string());
    }

    pub(crate) fn forget_detached(&mut self, name: &str) {
        self.detached.remove(name);
    }

    /// The datapath number of port `name`.
    pub fn datapath_number(&self, name: &str) -> Option<u32> {
        self.dp_numbers.get(name).copied()
    }

    /// Starts polling a port's rx queues.
    pub fn poll_port(&mut self, name: &str) -> Result<(), String> {
        self.switch.poll_port(name).map_err(|e| e.to_string())
    }

    /// Stops polling a port's rx queues.
    pub fn unpoll_port(&mut self, name: &str) -> Result<(), String> {
        self.switch.unpoll_port(name).map_err(|e| e.to_string())
    }

    /// Takes a port's tx queues back from the PMDs and closes its device.
    pub fn remove_port(&mut self, name: &str) -> Result<(), String> {
        self.switch.remove_port(name).map_err(|e| e.to_string())?;
        self.dp_numbers.remove(name);
        Ok(())
    }

    pub fn set_port_mtu(&mut self, name: &str, mtu: u16) -> Result<(), String> {
        self.switch.set_port_mtu(name, mtu).map_err(|e| e.to_string())
    }

    /// Sets port `name` administratively down or up, in place.
    pub fn set_port_admin(&mut self, name: &str, down: bool) -> Result<(), String> {
        self.switch.set_port_admin(name, down).map_err(|e| e.to_string())
    }

    /// Pins port `name`'s rx queues ((queue, core)) and reassigns the queues.
    pub fn set_rxq_affinity(&mut self, name: &str, pins: &[(u16, usize)]) -> Result<(), String> {
        self.switch.set_rxq_affinity(name, pins).map_err(|e| e.to_string())
    }

    /// Reassigns rx queues to PMDs by measured load.
    pub fn rebalance_rxqs(&mut self) -> Result<RebalanceReply, String> {
        let moves = self.switch.rebalance_rxqs().map_err(|e| e.to_string())?;
        for (port, queue, from, to) in &moves {
            tracing::info!("rx queue {port}:{queue} moved from PMD {from} to PMD {to}");
        }
        let moves = moves
            .into_iter()
            .map(|(port, queue, from_pmd, to_pmd)| RxqMove { port, queue, from_pmd, to_pmd })
            .collect();
        Ok(RebalanceReply { moves })
    }

    /// A bridge or port-set change in the slow path, applied by every PMD before this
    /// returns; the number of megaflows it removed.
    pub fn topology(&mut self, change: TopologyChange) -> Result<u64, String> {
        self.slow.topology(change)
    }

    /// Stops the slow path first (no more commands), then the PMDs and ports.
    pub fn stop(mut self) -> SwitchStats {
        self.slow.stop();
        self.switch.stop()
    }
}

/// A PMD's histograms as the reply carries them.
impl Datapath {
    /// Refuses adding `rules` (read in `version`) to `bridge` when the resulting set
    /// mixes rules only one OpenFlow version expresses with rules only the other does
    /// (`version_reading_back_rules`): such a set could not be written back to the config,
    /// or read again after a restart, as it runs. Only rules whose meaning depends on the
    /// version can make such a mix (`depends_on_version`, decided on the typed rules: a
    /// million-rule `add-flows` of others costs nothing here), so the running rules are
    /// read only when a new rule is one of them.
    fn check_one_version(&self, bridge: &str, rules: &[ferrovs_config::Rule], version: Version) -> Result<(), String> {
        use ferrovs_config::openflow::convert::{
            depends_on_version, version_dependent_rules, version_reading_back_rules,
        };
        if !rules.iter().any(depends_on_version) {
            return Ok(());
        }
        let running = version_dependent_rules(&self.slow.rule_texts(bridge.to_string())?)?;
        version_reading_back_rules(running.iter().chain(rules), version)
            .map(|_| ())
            .map_err(|e| format!("refused, the bridge's rules would need two OpenFlow versions: {e}"))
    }
}

/// The OpenFlow version an add-flow request's rules are read in (`ovs-ofctl -O`; absent:
/// OpenFlow10, its default).
fn request_version(protocol: Option<&str>) -> Result<Version, String> {
    protocol.map_or(Ok(Version::Of10), Version::from_ofctl_list)
}

fn histograms(h: &ferrovs_pmd::perf::PmdHistograms) -> IterationHistograms {
    IterationHistograms {
        cycles_per_iteration: h.cycles_per_iteration.counts.to_vec(),
        packets_per_iteration: h.packets_per_iteration.counts.to_vec(),
        cycles_per_packet: h.cycles_per_packet.counts.to_vec(),
        packets_per_batch: h.packets_per_batch.counts.to_vec(),
    }
}

/// `n / d`, 0 when `d` is 0 (so every ratio of a reply is finite).
fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// A port of `show`. The counters are taken apart field by field without `..`: a
/// counter added to or renamed in the PMD's structs does not compile here until the
/// reply has it too.
fn port_info(s: &PortStats, pc: &PortConfig) -> PortInfo {
    let PortCounters {
        rx_packets,
        rx_bytes,
        tx_packets,
        tx_bytes,
        drop_tx_full,
        drop_no_rule,
        drop_action,
        drop_malformed,
        drop_unsupported,
        drop_no_mbuf,
        drop_oversize,
        drop_admin_down_rx,
        drop_admin_down_tx,
    } = s.counters;
    PortInfo {
        name: s.name.clone(),
        // The bridge's OpenFlow number (the datapath's may differ).
        number: pc.number,
        devargs: pc.devargs.clone(),
        device: s.device.clone(),
        link_up: s.link.up,
        link_state: match s.link.state {
            ferrovs_dpdk::LinkState::Up => LinkState::Up,
            ferrovs_dpdk::LinkState::Down => LinkState::Down,
            ferrovs_dpdk::LinkState::Unknown => LinkState::Unknown,
        },
        speed_mbps: s.link.speed_mbps,
        rx_packets,
        rx_bytes,
        tx_packets,
        tx_bytes,
        drop_tx_full,
        drop_no_rule,
        drop_action,
        drop_malformed,
        drop_unsupported,
        drop_no_mbuf,
        drop_oversize,
        drop_admin_down_rx,
        drop_admin_down_tx,
        admin_down: pc.admin_down,
        mtu: pc.mtu,
        nic: s.eth.map(|e| NicCounters {
            rx_packets: e.rx_packets,
            tx_packets: e.tx_packets,
            rx_missed: e.rx_missed,
            rx_errors: e.rx_errors,
            tx_errors: e.tx_errors,
            rx_nombuf: e.rx_nombuf,
        }),
    }
}

/// A detached port in `show`: its settings, link `detached`, no counters (it has no
/// device; its counters went with it).
pub fn detached_port_info(pc: &PortConfig) -> PortInfo {
    PortInfo {
        name: pc.name.clone(),
        number: pc.number,
        devargs: pc.devargs.clone(),
        device: pc.device.name().to_string(),
        link_up: false,
        link_state: LinkState::Detached,
        speed_mbps: 0,
        rx_packets: 0,
        rx_bytes: 0,
        tx_packets: 0,
        tx_bytes: 0,
        drop_tx_full: 0,
        drop_no_rule: 0,
        drop_action: 0,
        drop_malformed: 0,
        drop_unsupported: 0,
        drop_no_mbuf: 0,
        drop_oversize: 0,
        drop_admin_down_rx: 0,
        drop_admin_down_tx: 0,
        admin_down: pc.admin_down,
        mtu: pc.mtu,
        nic: None,
    }
}

/// The slow-path state machine's counters, every one: the names are listed once, and
/// used both to take the state machine's struct apart (no `..`) and to build the
/// protocol's (no default), so a counter added to either side without the other does not
/// compile.
fn machine_counters(c: MachineCounters) -> SlowPathCounters {
    macro_rules! copy_counters {
        ($($name:ident),* $(,)?) => {{
            let MachineCounters { $($name),* } = c;
            SlowPathCounters { $($name),* }
        }};
    }
    copy_counters!(
        upcalls,
        installs,
        executes,
        executes_relearned,
        executes_raced,
        executes_flow_limit,
        no_bridge,
        bad_upcalls,
        xlate_errors,
        removes,
        revalidated,
        mac_learned,
        mac_moved,
        mac_expired,
        mac_evicted,
        rule_changes,
        rules_expired,
        flows_gone,
        flows_evicted,
        executed_packets,
        slow_path_packets,
    )
}

/// The final counters, one line per port and per PMD.
pub fn stats_lines(s: &SwitchStats) -> Vec<String> {
    let mut out = Vec::new();
    for p in &s.ports {
        let c = &p.counters;
        out.push(format!(
            "port {} ({}): rx_packets={} rx_bytes={} tx_packets={} tx_bytes={} drop_tx_full={} drop_no_rule={} \
             drop_action={} drop_malformed={} drop_unsupported={} drop_no_mbuf={} drop_oversize={}",
            p.number,
            p.name,
            c.rx_packets,
            c.rx_bytes,
            c.tx_packets,
            c.tx_bytes,
            c.drop_tx_full,
            c.drop_no_rule,
            c.drop_action,
            c.drop_malformed,
            c.drop_unsupported,
            c.drop_no_mbuf,
            c.drop_oversize
        ));
    }
    for p in &s.pmds {
        out.push(format!(
            "pmd {} (core {}): packets={} busy_cycles={} idle_cycles={} cycles_per_packet={:.1}",
            p.index,
            p.core,
            p.counters.packets,
            p.counters.busy_cycles,
            p.counters.idle_cycles,
            p.cycles_per_packet().unwrap_or(0.0)
        ));
    }
    out
}
