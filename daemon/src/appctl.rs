//! The `ovs-appctl` views: OVS's unixctl method names mapped onto ferrovs's own control
//! requests, so that an operator's `ovs-appctl -t /run/ferrovs/ferrovsd.ctl METHOD` shows
//! what `ferrovs-ctl` shows. The socket and its protocol are in `unixctl`; this module
//! only decides what each method means ([`parse`]) and renders the few views that have
//! no `ferrovs-ctl` counterpart.
//!
//! Every view that reads the switch goes through a [`Request`], so `ovs-appctl` and
//! `ferrovs-ctl` can never disagree about a number. Methods that change something
//! (`dpif-netdev/pmd-stats-clear`, `vlog/set`) are admin-only, as on the control socket.

use std::fmt::Write;

use crate::protocol::{PmdStatsReply, Request};

/// What an `ovs-appctl` method asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum AppctlCall {
    /// A control request, rendered as `ferrovs-ctl` renders it.
    Control(Request),
    /// `dpif-netdev/pmd-rxq-show`: rx queues per PMD (from `pmd-stats-show`).
    PmdRxqShow,
    /// `dpif-netdev/pmd-perf-show`: per-PMD iteration figures (from `pmd-stats-show`).
    PmdPerfShow,
    /// `coverage/show`: event counters (from `pmd-stats-show`).
    CoverageShow,
    VlogList,
    VlogSet(Vec<String>),
    ListCommands,
    Version,
    /// `ferrovs/stall-pmd PMD SECONDS`: a test hook (see [`parse_test_hook`]).
    StallPmd {
        pmd: usize,
        seconds: f64,
    },
}

impl AppctlCall {
    /// Whether the call changes the daemon (and so needs an administrator).
    pub fn is_mutating(&self) -> bool {
        match self {
            AppctlCall::Control(r) => r.is_mutating(),
            AppctlCall::VlogSet(_) | AppctlCall::StallPmd { .. } => true,
            _ => false,
        }
    }
}

/// Every method with its argument synopsis, as `list-commands` prints them.
pub const METHODS: &[(&str, &str)] = &[
    ("coverage/show", ""),
    ("dpctl/dump-flows", ""),
    ("dpctl/show", ""),
    ("dpif-netdev/pmd-perf-show", ""),
    ("dpif-netdev/pmd-rxq-rebalance", ""),
    ("dpif-netdev/pmd-rxq-show", ""),
    ("dpif-netdev/pmd-stats-clear", ""),
    ("dpif-netdev/pmd-stats-show", ""),
    ("bridge/dump-flows", "bridge"),
    ("list-commands", ""),
    ("ofproto/trace", "bridge flow"),
    ("version", ""),
    ("vlog/list", ""),
    ("vlog/set", "{spec | PATTERN:destination:pattern}"),
];

/// The call a method names, or an error text for `ovs-appctl` to print.
pub fn parse(method: &str, params: &[String]) -> Result<AppctlCall, String> {
    let no_args = |call: AppctlCall| {
        if params.is_empty() { Ok(call) } else { Err(format!("\"{method}\" command takes at most 0 arguments")) }
    };
    match method {
        "list-commands" => no_args(AppctlCall::ListCommands),
        "version" => no_args(AppctlCall::Version),
        "vlog/list" => no_args(AppctlCall::VlogList),
        "vlog/set" => {
            if params.is_empty() {
                Err("\"vlog/set\" command requires at least 1 arguments".into())
            } else {
                Ok(AppctlCall::VlogSet(params.to_vec()))
            }
        }
        "coverage/show" => no_args(AppctlCall::CoverageShow),
        "dpctl/show" => no_args(AppctlCall::Control(Request::Show)),
        "dpctl/dump-flows" => no_args(AppctlCall::Control(Request::DumpDpFlows)),
        "dpif-netdev/pmd-stats-show" => no_args(AppctlCall::Control(Request::PmdStatsShow)),
        "dpif-netdev/pmd-stats-clear" => no_args(AppctlCall::Control(Request::PmdStatsClear)),
        "dpif-netdev/pmd-rxq-show" => no_args(AppctlCall::PmdRxqShow),
        "dpif-netdev/pmd-rxq-rebalance" => no_args(AppctlCall::Control(Request::PmdRxqRebalance)),
        "dpif-netdev/pmd-perf-show" => no_args(AppctlCall::PmdPerfShow),
        "bridge/dump-flows" => match params {
            [bridge] => Ok(AppctlCall::Control(Request::DumpFlows { bridge: bridge.clone() })),
            _ => Err("\"bridge/dump-flows\" command requires 1 argument: bridge".into()),
        },
        "ofproto/trace" => match params {
            [bridge, flow] => Ok(AppctlCall::Control(Request::Trace { bridge: bridge.clone(), packet: flow.clone() })),
            _ => Err("\"ofproto/trace\" command requires 2 arguments: bridge flow".into()),
        },
        _ => Err(format!("\"{method}\" is not a valid command (use list-commands to see a list of valid commands)")),
    }
}

/// The environment variable that enables the test hooks.
pub const TEST_HOOKS_ENV: &str = "FERROVS_TEST_HOOKS";

/// Test hooks: methods that exist only when ferrovsd was started with
/// `FERROVS_TEST_HOOKS=1` (the caller checks), so that a production daemon cannot be
/// told to misbehave: nothing in a config, a request or a unit file turns them on, and a
/// daemon that has them logs a warning at start. An environment variable rather than a
/// build feature: the end-to-end tests run the binaries every build produces.
///
/// `ferrovs/stall-pmd PMD SECONDS` makes a PMD sleep in the middle of its loop, which the
/// watchdog must notice (`sd_notify`). `None`: not a test hook.
pub fn parse_test_hook(method: &str, params: &[String]) -> Option<Result<AppctlCall, String>> {
    if method != "ferrovs/stall-pmd" {
        return None;
    }
    let usage = || "\"ferrovs/stall-pmd\" command requires 2 arguments: pmd seconds (0 < seconds <= 60)".to_string();
    Some(match params {
        [pmd, secs] => match (pmd.parse::<usize>(), secs.parse::<f64>()) {
            (Ok(pmd), Ok(seconds)) if seconds > 0.0 && seconds <= 60.0 => Ok(AppctlCall::StallPmd { pmd, seconds }),
            _ => Err(usage()),
        },
        _ => Err(usage()),
    })
}

/// `list-commands`.
pub fn list_commands() -> String {
    let mut out = String::from("The available commands are:\n");
    for (m, args) in METHODS {
        let _ = writeln!(out, "  {m:<40}{args}");
    }
    out
}

/// `dpif-netdev/pmd-rxq-show`, in OVS's layout: each queue's share of its PMD's cycles
/// since the queue was first polled (OVS averages the last minute), and the PMD's busy
/// share. Overhead is not measured apart.
pub fn pmd_rxq_show(r: &PmdStatsReply) -> String {
    let mut out = String::new();
    for p in &r.pmds {
        let _ = writeln!(out, "pmd thread numa_id 0 core_id {}:", p.core);
        let _ = writeln!(out, "  isolated : {}", p.isolated);
        for q in &p.rxq_usage {
            let _ = writeln!(
                out,
                "  port: {:<16} queue-id: {:>2} (enabled)   pmd usage: {:>2.0} %",
                q.port, q.queue, q.usage_percent
            );
        }
        let _ = writeln!(out, "  overhead: NOT AVAIL");
        let _ = writeln!(out, "  busy: {:.0} %", p.busy_percent);
    }
    out
}

/// `coverage/show`: event totals since start (OVS also shows rates; ferrovs keeps totals).
pub fn coverage_show(r: &PmdStatsReply) -> String {
    let mut events: Vec<(&str, u64)> = Vec::new();
    let sum = |f: fn(&crate::protocol::PmdInfo) -> u64| r.pmds.iter().map(f).sum::<u64>();
    events.push(("pmd_rx_packets", sum(|p| p.packets)));
    events.push(("pmd_emc_hit", sum(|p| p.emc_hits)));
    events.push(("pmd_signature_hit", sum(|p| p.signature_hits)));
    events.push(("pmd_megaflow_hit", sum(|p| p.megaflow_hits)));
    events.push(("pmd_miss", sum(|p| p.misses)));
    events.push(("pmd_upcall", sum(|p| p.upcalls_sent)));
    events.push(("drop_upcall_queue_full", sum(|p| p.drop_upcall_queue_full)));
    events.push(("drop_park_full", sum(|p| p.drop_park_full)));
    events.push(("drop_park_timeout", sum(|p| p.drop_park_timeout)));
    events.push(("rx_pauses", sum(|p| p.rx_pauses)));
    events.push(("drop_bad_output", sum(|p| p.drop_bad_output)));
    let s = &r.slow_path.state;
    for (name, v) in [
        ("xlate_upcall", s.upcalls),
        ("xlate_install", s.installs),
        ("xlate_execute", s.executes),
        ("xlate_execute_relearned", s.executes_relearned),
        ("xlate_execute_raced", s.executes_raced),
        ("xlate_execute_flow_limit", s.executes_flow_limit),
        ("xlate_error", s.xlate_errors),
        ("revalidate", s.revalidated),
        ("flow_remove", s.removes),
        ("mac_learned", s.mac_learned),
        ("mac_moved", s.mac_moved),
        ("mac_expired", s.mac_expired),
        ("mac_evicted", s.mac_evicted),
        ("rule_change", s.rule_changes),
        ("rule_expired", s.rules_expired),
    ] {
        events.push((name, v));
    }
    let mut out = String::from("Event coverage, totals since start:\n");
    for (name, v) in events.iter().filter(|(_, v)| *v > 0) {
        let _ = writeln!(out, "{name:<32} total: {v}");
    }
    let zero = events.iter().filter(|(_, v)| *v == 0).count();
    let _ = writeln!(out, "{zero} events never hit");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn methods_map_to_requests_and_check_their_arguments() {
        assert_eq!(parse("dpctl/show", &[]), Ok(AppctlCall::Control(Request::Show)));
        assert_eq!(
            parse("ofproto/trace", &s(&["br0", "in_port=1,tcp"])),
            Ok(AppctlCall::Control(Request::Trace { bridge: "br0".into(), packet: "in_port=1,tcp".into() }))
        );
        assert!(parse("ofproto/trace", &s(&["br0"])).unwrap_err().contains("requires 2 arguments"));
        assert!(parse("dpctl/show", &s(&["x"])).unwrap_err().contains("at most 0"));
        assert!(parse("no/such", &[]).unwrap_err().contains("not a valid command"));
        assert!(parse("vlog/set", &[]).is_err());
        assert!(parse("vlog/set", &s(&["pmd:dbg"])).unwrap().is_mutating());
        assert!(parse("dpif-netdev/pmd-stats-clear", &[]).unwrap().is_mutating());
        assert!(!parse("dpif-netdev/pmd-stats-show", &[]).unwrap().is_mutating());
        // Every listed method parses (with enough arguments).
        for (m, args) in METHODS {
            let n = args.split_whitespace().count().min(2);
            let params: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
            let params = if *m == "vlog/set" { s(&["info"]) } else { params };
            assert!(parse(m, &params).is_ok(), "{m}");
        }
        assert!(list_commands().contains("  dpif-netdev/pmd-rxq-show"));
        assert!(parse("ferrovs/stall-pmd", &s(&["0", "1"])).is_err(), "the hook is not a method");
    }

    #[test]
    fn the_stall_hook_checks_its_arguments() {
        assert_eq!(parse_test_hook("dpctl/show", &[]), None);
        assert_eq!(
            parse_test_hook("ferrovs/stall-pmd", &s(&["1", "2.5"])),
            Some(Ok(AppctlCall::StallPmd { pmd: 1, seconds: 2.5 }))
        );
        assert!(parse_test_hook("ferrovs/stall-pmd", &s(&["1", "2.5"])).unwrap().unwrap().is_mutating());
        for bad in [&["1"][..], &["x", "1"], &["0", "0"], &["0", "61"], &["0", "NaN"]] {
            assert!(matches!(parse_test_hook("ferrovs/stall-pmd", &s(bad)), Some(Err(_))), "{bad:?}");
        }
    }
}
