//! Text rendering of control replies for people, one function per reply type. The
//! layouts follow the OVS tools they stand in for: `show` and `pmd-stats-show` are
//! indented blocks, `dump-flows` and `dump-dp-flows` one line per rule or megaflow in
//! ovs-ofctl / ovs-appctl style, `trace` in the shape of `ofproto/trace`, and the
//! small replies of rule changes `key: value` lines. [`pmd_perf`] renders a
//! `pmd-stats-show` reply as `ovs-appctl dpif-netdev/pmd-perf-show` does (`ferrovs-ctl
//! pmd-perf-show` and the appctl method both print it).
//!
//! Every value printed is a field of the typed reply (`protocol::reply`): there is no
//! lookup by name that could miss and print a default.

use std::fmt::Write;

use crate::protocol::{
    AddFlowsReply, ChangeReply, DelFlowsReply, DumpDpFlowsReply, DumpFlowsReply, IterationHistograms, LinkState,
    NamesReply, PmdStatsReply, PortInfo, Reply, ShowReply, TraceReply,
};

/// Renders `reply` as text ending in a newline (or as nothing).
pub fn render(reply: &Reply) -> String {
    let mut out = String::new();
    match reply {
        Reply::Show(r) => show(&mut out, r),
        Reply::PmdStatsShow(r) => pmd_stats(&mut out, r),
        Reply::PmdStatsClear => {}
        Reply::Stop => out.push_str("stopping\n"),
        Reply::AddFlow(r) | Reply::AddFlows(r) => added(&mut out, r),
        Reply::DelFlows(r) => deleted(&mut out, r),
        Reply::DumpFlows(r) => dump_flows(&mut out, r),
        Reply::DumpDpFlows(r) => dump_dp_flows(&mut out, r),
        Reply::Trace(r) => trace(&mut out, r),
        Reply::Reload(r)
        | Reply::AddBr(r)
        | Reply::DelBr(r)
        | Reply::AddPort(r)
        | Reply::DelPort(r)
        | Reply::SetPort(r) => changed(&mut out, r),
        Reply::ListBr(r) | Reply::ListPorts(r) => names(&mut out, r),
        Reply::PmdRxqRebalance(r) => {
            for m in &r.moves {
                let _ = writeln!(out, "port {} queue {}: pmd {} -> pmd {}", m.port, m.queue, m.from_pmd, m.to_pmd);
            }
        }
        Reply::SetController | Reply::DelController => {}
        Reply::GetController(r) => {
            for t in &r.targets {
                out.push_str(&format!("{t}\n"));
            }
            out.push_str(&format!(
                "connected: {}\npacket_ins_sent: {}\npacket_ins_rate_limited: {}\n",
                r.connected, r.packet_ins_sent, r.packet_ins_rate_limited
            ));
        }
        Reply::Capture(r) => {
            let _ = writeln!(out, "capturing port {} ({}), up to {} bytes a frame", r.port, r.number, r.snap_len);
        }
    }
    out
}

/// `ferrovs-ctl show`: one block per bridge, a few lines per port.
fn show(out: &mut String, r: &ShowReply) {
    for b in &r.bridges {
        let _ = writeln!(out, "{}: {} ports", b.name, b.ports.len());
        for p in &b.ports {
            port(out, p);
        }
    }
    let _ = writeln!(out, "mbufs: {} in use of {}", r.mbufs_in_use, r.mbufs_total);
}

fn port(out: &mut String, p: &PortInfo) {
    let link = match p.link_state {
        LinkState::Up => format!("up {} Mbps", p.speed_mbps),
        LinkState::Down => "down".to_string(),
        LinkState::Unknown => "unknown (its interface is in another network namespace)".to_string(),
        LinkState::Detached => "detached (its device is gone; reattached when it returns)".to_string(),
    };
    // As ovs-ofctl show's `config: PORT_DOWN`: the administrative state beside the link.
    let admin = if p.admin_down { ", admin down (PORT_DOWN)" } else { "" };
    let _ =
        writeln!(out, "  port {} {} ({}): link {link}{admin}", ferrovs_config::PortName(p.number), p.name, p.devargs);
    let _ = writeln!(
        out,
        "    rx {} pkts {} bytes, tx {} pkts {} bytes",
        p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes
    );
    let _ = writeln!(
        out,
        "    drops: tx_full {}, no_rule {}, action {}, malformed {}, unsupported {}, no_mbuf {}",
        p.drop_tx_full, p.drop_no_rule, p.drop_action, p.drop_malformed, p.drop_unsupported, p.drop_no_mbuf
    );
    if p.admin_down || p.drop_admin_down_rx + p.drop_admin_down_tx > 0 {
        let _ = writeln!(out, "    admin down drops: rx {}, tx {}", p.drop_admin_down_rx, p.drop_admin_down_tx);
    }
    if let Some(nic) = &p.nic {
        let _ = writeln!(
            out,
            "    nic: rx {} tx {}, rx_missed {}, rx_errors {}, tx_errors {}, rx_nombuf {}",
            nic.rx_packets, nic.tx_packets, nic.rx_missed, nic.rx_errors, nic.tx_errors, nic.rx_nombuf
        );
    }
}

/// `ferrovs-ctl pmd-stats-show`, in the spirit of `ovs-appctl dpif-netdev/pmd-stats-show`.
fn pmd_stats(out: &mut String, r: &PmdStatsReply) {
    for p in &r.pmds {
        let _ = writeln!(out, "pmd {} core {}: rx queues {}", p.pmd, p.core, p.rx_queues.join(" "));
        let _ = writeln!(out, "  packets received: {}", p.packets);
        let _ = writeln!(out, "  emc hits: {} ({:.1} %)", p.emc_hits, p.emc_hit_percent);
        let _ = writeln!(out, "  signature cache hits: {} ({:.1} %)", p.signature_hits, p.signature_hit_percent);
        let _ = writeln!(out, "  megaflow hits: {} ({:.1} %)", p.megaflow_hits, p.megaflow_hit_percent);
        let _ = writeln!(
            out,
            "  misses: {} ({:.1} %), upcalls sent {}, parked now {}, rx paused {}; dropped: upcall queue full {}, \
             park full {}, park timeout {}",
            p.misses,
            p.miss_percent,
            p.upcalls_sent,
            p.parked,
            p.rx_pauses,
            p.drop_upcall_queue_full,
            p.drop_park_full,
            p.drop_park_timeout
        );
        let _ = writeln!(
            out,
            "  megaflows: {} in {} masks, evicted {}, reports lost {}, frees on the PMD {}",
            p.megaflows, p.masks, p.evictions, p.reports_lost, p.frees_on_pmd
        );
        let _ = writeln!(
            out,
            "  busy cycles: {} ({:.1} %), idle cycles: {}, cycles per packet: {:.1}",
            p.busy_cycles, p.busy_percent, p.idle_cycles, p.cycles_per_packet
        );
    }
    let s = &r.slow_path;
    let st = &s.state;
    let _ = writeln!(
        out,
        "slow path: upcalls {} ({:.1} us avg, {:.1} us max), installs {}, executes {} (relearned {}, raced {}, flow limit {}), \
         removes {}, revalidated {}, rule changes {}, MACs learned {}, slow-path packets {}, undelivered commands {}",
        s.upcalls_handled,
        s.upcall_us_avg,
        s.upcall_us_max,
        st.installs,
        st.executes,
        st.executes_relearned,
        st.executes_raced,
        st.executes_flow_limit,
        st.removes,
        st.revalidated,
        st.rule_changes,
        st.mac_learned,
        st.slow_path_packets,
        s.commands_undelivered
    );
}

fn added(out: &mut String, r: &AddFlowsReply) {
    let _ = writeln!(out, "added: {}\nmegaflows_removed: {}", r.added, r.megaflows_removed);
}

fn deleted(out: &mut String, r: &DelFlowsReply) {
    let _ = writeln!(out, "deleted: {}\nmegaflows_removed: {}", r.deleted, r.megaflows_removed);
}

/// Only what happened, one `what: names` line each; warnings on their own lines.
fn changed(out: &mut String, r: &ChangeReply) {
    let lists = [
        ("bridges added", &r.bridges_added),
        ("bridges removed", &r.bridges_removed),
        ("ports added", &r.ports_added),
        ("ports removed", &r.ports_removed),
        ("ports changed", &r.ports_changed),
        ("rules replaced", &r.rules_replaced),
    ];
    for (what, names) in lists {
        if !names.is_empty() {
            let _ = writeln!(out, "{what}: {}", names.join(" "));
        }
    }
    if r.megaflows_removed > 0 {
        let _ = writeln!(out, "megaflows removed: {}", r.megaflows_removed);
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
}

fn names(out: &mut String, r: &NamesReply) {
    for n in &r.names {
        let _ = writeln!(out, "{n}");
    }
}

/// Milliseconds as seconds with three decimals, as ovs-ofctl prints durations.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// `ferrovs-ctl dump-flows`, as `ovs-ofctl dump-flows` prints rules.
fn dump_flows(out: &mut String, r: &DumpFlowsReply) {
    for f in &r.flows {
        let _ = writeln!(
            out,
            "duration={}, n_packets={}, n_bytes={}, idle_age={}, {}",
            seconds(f.duration_ms),
            f.n_packets,
            f.n_bytes,
            f.idle_ms / 1000,
            f.rule
        );
    }
}

/// `ferrovs-ctl dump-dp-flows`, as `ovs-appctl dpctl/dump-flows` prints megaflows.
fn dump_dp_flows(out: &mut String, r: &DumpDpFlowsReply) {
    for f in &r.flows {
        let used = f.used_ms_ago.map(seconds).unwrap_or_else(|| "never".into());
        let _ = writeln!(
            out,
            "pmd={} {}, packets:{}, bytes:{}, used:{used}, actions:{}",
            f.pmd, f.flow, f.packets, f.bytes, f.actions
        );
    }
}

/// `ferrovs-ctl trace`, in the spirit of `ovs-appctl ofproto/trace`.
fn trace(out: &mut String, r: &TraceReply) {
    let _ = writeln!(out, "Flow: {}", r.flow);
    for s in &r.steps {
        let indent = "    ".repeat(s.depth as usize);
        let rule = s.rule.as_deref().unwrap_or("no match");
        let _ = writeln!(out, "{indent}table {} (in_port {}): {rule}", s.table, s.in_port);
    }
    if let Some(e) = &r.error {
        let _ = writeln!(out, "Translation abandoned: {e}");
    }
    let _ = writeln!(out, "Datapath actions: {}", r.datapath_actions);
    let _ = writeln!(out, "Megaflow: {}", r.megaflow);
}

/// `pmd-perf-show`: per PMD, the iteration figures and the iteration histograms, in the
/// spirit of `ovs-appctl dpif-netdev/pmd-perf-show` (OVS's buckets are its own; these
/// are powers of two, see `IterationHistograms`).
pub fn pmd_perf(r: &PmdStatsReply) -> String {
    let mut out = String::new();
    for p in &r.pmds {
        let total = p.busy_cycles + p.idle_cycles;
        let secs = if r.tsc_hz > 0 { total as f64 / r.tsc_hz as f64 } else { 0.0 };
        let per = |v: u64| if p.iterations > 0 { v as f64 / p.iterations as f64 } else { 0.0 };
        let _ = writeln!(out, "Time: {secs:.3} s, PMD {} on core {}", p.pmd, p.core);
        let _ = writeln!(
            out,
            "  Iterations:        {:>12}  ({:.2} us/it)",
            p.iterations,
            per(total) * 1e6 / r.tsc_hz.max(1) as f64
        );
        let _ = writeln!(out, "  - Used TSC cycles: {:>12}  ({:5.1} % of total cycles)", p.busy_cycles, p.busy_percent);
        let _ = writeln!(out, "  - idle iterations:{:>12}", p.histograms.packets_per_iteration.first().unwrap_or(&0));
        let _ = writeln!(
            out,
            "  Rx packets:        {:>12}  ({:.1} pkts/it, {:.0} cycles/pkt)",
            p.packets,
            per(p.packets),
            p.cycles_per_packet
        );
        let _ = writeln!(out, "  Rx batches:        {:>12}", p.rx_bursts);
        let _ = writeln!(out, "  Upcalls:           {:>12}", p.upcalls_sent);
        let _ = writeln!(out, "  Messages applied:  {:>12}", p.messages);
        histogram_table(&mut out, &p.histograms);
    }
    out
}

/// The four histograms side by side, one row per log2 bucket up to the highest bucket
/// any of them uses.
fn histogram_table(out: &mut String, h: &IterationHistograms) {
    let cols = [&h.cycles_per_iteration, &h.packets_per_iteration, &h.cycles_per_packet, &h.packets_per_batch];
    let rows = cols.iter().filter_map(|c| c.iter().rposition(|&n| n > 0)).max().map_or(0, |last| last + 1);
    let _ = writeln!(out, "  Histograms");
    let _ = writeln!(
        out,
        "    {:<24} {:>12} {:>12} {:>12} {:>12}",
        "values", "cycles/it", "packets/it", "cycles/pkt", "pkts/batch"
    );
    for i in 0..rows {
        let range = match i {
            0 => "0".to_string(),
            1 => "1".to_string(),
            _ => format!("{}-{}", 1u64 << (i - 1), (1u64 << i) - 1),
        };
        let _ = write!(out, "    {range:<24}");
        for c in cols {
            // A column shorter than the row: its last bucket took every larger value.
            match c.get(i) {
                Some(n) if i + 1 == c.len() => {
                    let _ = write!(out, " {:>11}+", n);
                }
                Some(n) => {
                    let _ = write!(out, " {n:>12}");
                }
                None => {
                    let _ = write!(out, " {:>12}", "");
                }
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::samples;

    #[test]
    fn renders_pmd_perf_with_histograms() {
        let text = pmd_perf(&samples::pmd_stats());
        assert!(text.starts_with("Time: 0.000 s, PMD 0 on core 3\n  Iterations:                9000"), "{text}");
        assert!(text.contains("  - idle iterations:        8960\n"), "{text}");
        assert!(text.contains("  Rx batches:                  40\n"), "{text}");
        let rows: Vec<&str> = text.lines().skip_while(|l| !l.contains("Histograms")).skip(2).collect();
        // Up to bucket 10 (512-1023 cycles), the highest one used (cycles per iteration).
        assert_eq!(rows.len(), 11, "{text}");
        let cells = |row: &str| row.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(cells(rows[0]), ["0", "0", "8960", "0", "0"]);
        assert_eq!(cells(rows[5]), ["16-31", "0", "20", "0", "20"]);
        // The batch histogram's last bucket (32 and up) is marked as open-ended.
        assert_eq!(cells(rows[6]), ["32-63", "0", "10", "0", "10+"]);
        assert_eq!(cells(rows[7]), ["64-127", "8000", "0", "30"]);
        assert_eq!(cells(rows[10]), ["512-1023", "40", "0", "0"]);
    }

    #[test]
    fn renders_show_as_blocks() {
        assert_eq!(
            render(&Reply::Show(samples::show())),
            "br0: 2 ports
  port 1 a (net_null1,no-rx=1): link up 10000 Mbps
    rx 101 pkts 102 bytes, tx 103 pkts 104 bytes
    drops: tx_full 105, no_rule 106, action 107, malformed 108, unsupported 109, no_mbuf 110
    admin down drops: rx 117, tx 118
    nic: rx 111 tx 112, rx_missed 113, rx_errors 114, tx_errors 115, rx_nombuf 116
  port 2 b (net_null2,no-rx=1): link down, admin down (PORT_DOWN)
    rx 201 pkts 202 bytes, tx 203 pkts 204 bytes
    drops: tx_full 205, no_rule 206, action 207, malformed 208, unsupported 209, no_mbuf 210
    admin down drops: rx 217, tx 218
br1: 0 ports
mbufs: 1023 in use of 16383
"
        );
    }

    #[test]
    fn renders_an_unknown_link_as_unknown() {
        let mut show = samples::show();
        let p = &mut show.bridges[0].ports[1];
        p.link_state = LinkState::Unknown;
        let text = render(&Reply::Show(show));
        assert!(
            text.contains(
                "  port 2 b (net_null2,no-rx=1): link unknown (its interface is in another network namespace), admin down (PORT_DOWN)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn renders_pmd_stats() {
        assert_eq!(
            render(&Reply::PmdStatsShow(Box::new(samples::pmd_stats()))),
            "pmd 0 core 3: rx queues a:0 b:1
  packets received: 1000
  emc hits: 500 (50.0 %)
  signature cache hits: 250 (25.0 %)
  megaflow hits: 125 (12.5 %)
  misses: 125 (12.5 %), upcalls sent 120, parked now 1, rx paused 6; dropped: upcall queue full 2, park full 3, park timeout 4
  megaflows: 17 in 5 masks, evicted 7, reports lost 0, frees on the PMD 0
  busy cycles: 250000 (25.0 %), idle cycles: 750000, cycles per packet: 250.0
slow path: upcalls 118 (3.5 us avg, 41.5 us max), installs 101, executes 18 (relearned 1, raced 11, flow limit 5), \
removes 30, revalidated 31, rule changes 36, MACs learned 32, slow-path packets 41, undelivered commands 6
"
        );
    }

    #[test]
    fn renders_trace_with_and_without_error() {
        assert_eq!(
            render(&Reply::Trace(samples::trace(false))),
            "Flow: in_port(1),eth_type(0x0800),ipv4(proto=6),l4(dst=80)
table 0 (in_port 1): tcp actions=resubmit(,1)
    table 1 (in_port 1): no match
Datapath actions: 3
Megaflow: in_port(1),eth_type(0x0800),ipv4(proto=6)
"
        );
        let s = render(&Reply::Trace(samples::trace(true)));
        assert!(
            s.contains("    table 1 (in_port 1): no match\nTranslation abandoned: TooDeep\nDatapath actions: drop\n"),
            "{s}"
        );
    }

    #[test]
    fn renders_flow_dumps_one_line_each() {
        let all = samples::all();
        let find = |f: fn(&Reply) -> bool| all.iter().find(|r| f(r)).expect("sample");
        assert_eq!(
            render(find(|r| matches!(r, Reply::DumpFlows(_)))),
            "duration=12.345s, n_packets=7, n_bytes=686, idle_age=2, priority=40000,icmp actions=drop
duration=0.005s, n_packets=0, n_bytes=0, idle_age=0, actions=normal
"
        );
        assert_eq!(
            render(find(|r| matches!(r, Reply::DumpDpFlows(_)))),
            "pmd=0 in_port(1),eth_type(0x0800), packets:10, bytes:980, used:1.250s, actions:set(vlan_vid=20),3
pmd=1 in_port(2), packets:0, bytes:0, used:never, actions:drop
"
        );
    }

    #[test]
    fn renders_rule_changes_and_the_rest() {
        let all = samples::all();
        let text: Vec<String> = all.iter().map(render).collect();
        let of = |f: fn(&Reply) -> bool| text[all.iter().position(f).expect("sample")].clone();
        assert_eq!(of(|r| matches!(r, Reply::AddFlow(_))), "added: 1\nmegaflows_removed: 4\n");
        assert_eq!(of(|r| matches!(r, Reply::AddFlows(_))), "added: 12\nmegaflows_removed: 0\n");
        assert_eq!(of(|r| matches!(r, Reply::DelFlows(_))), "deleted: 3\nmegaflows_removed: 9\n");
        assert_eq!(
            of(|r| matches!(r, Reply::Reload(_))),
            "bridges added: br1\nports added: p3\nports changed: p1\nrules replaced: br0\nmegaflows removed: 2\n"
        );
        assert_eq!(
            of(|r| matches!(r, Reply::AddPort(_))),
            "ports added: p3\nwarning: bridge br0's rules name port 9, which it does not have\n"
        );
        assert_eq!(of(|r| matches!(r, Reply::ListBr(_))), "br0\nbr1\n");
        assert_eq!(of(|r| matches!(r, Reply::ListPorts(_))), "");
        assert_eq!(of(|r| matches!(r, Reply::Stop)), "stopping\n");
        assert_eq!(of(|r| matches!(r, Reply::PmdStatsClear)), "");
    }
}
