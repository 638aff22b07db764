//! The running switch as the daemon sees it: the PMDs and ports (`ferrovs_pmd::Switch`)
//! plus what the control commands need to describe them.
//!
//! Port counters are reported as the PMDs publish them (relaxed atomics, once per
//! burst), so reading them never stops forwarding.

use std::collections::HashMap;

use ferrovs_config::{Action, BridgeConfig, Config, Match};
use ferrovs_dpdk::Eal;
use ferrovs_flowcache::actions::{DpAction, DpActions};
use ferrovs_pmd::{Forwarder, ForwarderMessage, PmdStats, PortSpec, Switch, SwitchOptions, SwitchStats};
use serde_json::{Value, json};

use crate::protocol::Request;

/// The switch and the bookkeeping around it.
pub struct Datapath {
    switch: Switch<ForwarderMessage>,
    /// PMD counters at the last `pmd-stats-clear`, subtracted when showing.
    pmd_baseline: HashMap<usize, PmdStats>,
}

/// Checks that every bridge's rules can be served (before anything is started).
pub fn check(config: &Config) -> Result<(), String> {
    for b in &config.bridges {
        forwarding_table(b)?;
    }
    Ok(())
}

/// Per ingress port of a bridge, the actions of its highest-priority applicable rule.
fn forwarding_table(bridge: &BridgeConfig) -> Result<Vec<(u32, DpActions)>, String> {
    let ports: Vec<u32> = bridge.ports.iter().map(|p| p.number).collect();
    for r in &bridge.rules {
        let only_in_port = Match { in_port: r.matches.in_port, ..Match::default() };
        if r.table != 0 || r.matches != only_in_port {
            return Err(format!(
                "bridge {}: rule \"{r}\": this build forwards by in_port only (table 0, match on in_port)",
                bridge.name
            ));
        }
    }
    let mut out = Vec::new();
    for &p in &ports {
        let best = bridge
            .rules
            .iter()
            .filter(|r| r.matches.in_port.is_none_or(|i| i == p))
            .max_by_key(|r| r.priority);
        let Some(rule) = best else { continue };
        let mut acts = DpActions::new();
        for a in &rule.actions {
            match a {
                Action::Output(n) if *n != p && ports.contains(n) => acts.push(DpAction::Output(*n)),
                Action::Output(_) => {}
                Action::InPort => acts.push(DpAction::Output(p)),
                Action::Flood | Action::All => {
                    acts.extend(ports.iter().filter(|&&o| o != p).map(|&o| DpAction::Output(o)))
                }
                other => {
                    return Err(format!(
                        "bridge {}: action {other:?} is not supported by the in_port forwarder",
                        bridge.name
                    ));
                }
            }
        }
        out.push((p, acts));
    }
    Ok(out)
}

impl Datapath {
    pub fn start(
        eal: &Eal,
        config: &Config,
        ports: &[PortSpec],
        options: &SwitchOptions,
    ) -> Result<Datapath, crate::daemon::DaemonError> {
        // The PMDs start with their tables filled: a capture that replays the moment its
        // port starts must not meet an empty table.
        let mut table = Vec::new();
        for b in &config.bridges {
            table.extend(forwarding_table(b).map_err(crate::daemon::DaemonError::Datapath)?);
        }
        let fwd = Forwarder::from_actions(table);
        let switch = Switch::start(eal, ports, options, ferrovs_pmd::Hooks::default(), |_| fwd.clone())?;
        Ok(Datapath { switch, pmd_baseline: HashMap::new() })
    }

    /// Periodic work of the main thread (nothing yet in this mode).
    pub fn tick(&mut self) {}

    pub fn show(&self, config: &Config) -> Value {
        let stats = self.switch.stats();
        let bridges: Vec<Value> = config
            .bridges
            .iter()
            .map(|b| {
                let ports: Vec<Value> = b
                    .ports
                    .iter()
                    .filter_map(|pc| stats.ports.iter().find(|s| s.name == pc.name).map(|s| (pc, s)))
                    .map(|(pc, s)| {
                        let c = &s.counters;
                        let mut v = json!({
                            "name": s.name,
                            "number": s.number,
                            "devargs": pc.devargs,
                            "device": s.device,
                            "link_up": s.link.up,
                            "speed_mbps": s.link.speed_mbps,
                            "rx_packets": c.rx_packets,
                            "rx_bytes": c.rx_bytes,
                            "tx_packets": c.tx_packets,
                            "tx_bytes": c.tx_bytes,
                            "drop_tx_full": c.drop_tx_full,
                            "drop_no_rule": c.drop_no_rule,
                            "drop_action": c.drop_action,
                            "drop_malformed": c.drop_malformed,
                            "drop_unsupported": c.drop_unsupported,
                            "drop_no_mbuf": c.drop_no_mbuf,
                        });
                        if let Some(e) = &s.eth {
                            v["nic"] = json!({
                                "rx_packets": e.rx_packets,
                                "tx_packets": e.tx_packets,
                                "rx_missed": e.rx_missed,
                                "rx_errors": e.rx_errors,
                                "tx_errors": e.tx_errors,
                                "rx_nombuf": e.rx_nombuf,
                            });
                        }
                        v
                    })
                    .collect();
                json!({ "name": b.name, "rules": b.rules.len(), "ports": ports })
            })
            .collect();
        json!({
            "bridges": bridges,
            "mbufs_in_use": stats.mbufs_in_use,
            "mbufs_total": stats.mbufs_total,
        })
    }

    pub fn pmd_stats(&self) -> Value {
        let stats = self.switch.stats();
        let pmds: Vec<Value> = stats
            .pmds
            .iter()
            .map(|p| {
                let base = self.pmd_baseline.get(&p.index);
                let sub = |f: fn(&PmdStats) -> u64| f(p) - base.map(f).unwrap_or(0);
                let busy = sub(|s| s.busy_cycles);
                let idle = sub(|s| s.idle_cycles);
                let packets = sub(|s| s.packets);
                json!({
                    "pmd": p.index,
                    "core": p.core,
                    "running": p.running,
                    "rx_queues": p.rx_queues.iter().map(|q| format!("{}:{}", q.port_name, q.queue)).collect::<Vec<_>>(),
                    "packets": packets,
                    "busy_cycles": busy,
                    "idle_cycles": idle,
                    "cycles_per_packet": if packets > 0 { busy as f64 / packets as f64 } else { 0.0 },
                    "busy_percent": if busy + idle > 0 { 100.0 * busy as f64 / (busy + idle) as f64 } else { 0.0 },
                    "rx_bursts": sub(|s| s.rx_bursts),
                    "iterations": sub(|s| s.iterations),
                    "messages": sub(|s| s.messages),
                    "drop_bad_output": sub(|s| s.drop_bad_output),
                })
            })
            .collect();
        json!({ "tsc_hz": stats.tsc_hz, "pmds": pmds })
    }

    pub fn pmd_stats_clear(&mut self) {
        self.pmd_baseline = self.switch.stats().pmds.into_iter().map(|p| (p.index, p)).collect();
    }

    pub fn flow_request(&mut self, req: &Request) -> Result<Value, String> {
        Err(format!("{req:?}: not supported by the in_port forwarder"))
    }

    pub fn stop(self) -> SwitchStats {
        self.switch.stop()
    }
}

/// The final counters, one line per port and per PMD.
pub fn stats_lines(s: &SwitchStats) -> Vec<String> {
    let mut out = Vec::new();
    for p in &s.ports {
        let c = &p.counters;
        out.push(format!(
            "port {} ({}): rx_packets={} rx_bytes={} tx_packets={} tx_bytes={} drop_tx_full={} drop_no_rule={} \
             drop_action={} drop_malformed={} drop_unsupported={} drop_no_mbuf={}",
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
            c.drop_no_mbuf
        ));
    }
    for p in &s.pmds {
        out.push(format!(
            "pmd {} (core {}): packets={} busy_cycles={} idle_cycles={} cycles_per_packet={:.1}",
            p.index,
            p.core,
            p.packets,
            p.busy_cycles,
            p.idle_cycles,
            p.cycles_per_packet().unwrap_or(0.0)
        ));
    }
    out
}
