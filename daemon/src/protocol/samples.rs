//! One filled-in value of every reply, for the protocol and render tests. Every number
//! is distinct, so a field read from the wrong place shows; every optional field is set
//! in one sample and unset in another.

use super::*;

pub(crate) fn port(name: &str, number: u32, base: u64, nic: bool) -> PortInfo {
    PortInfo {
        name: name.into(),
        number,
        devargs: format!("net_null{number},no-rx=1"),
        device: format!("net_null{number}"),
        link_up: nic,
        link_state: if nic { LinkState::Up } else { LinkState::Down },
        speed_mbps: if nic { 10000 } else { 0 },
        rx_packets: base + 1,
        rx_bytes: base + 2,
        tx_packets: base + 3,
        tx_bytes: base + 4,
        drop_tx_full: base + 5,
        drop_no_rule: base + 6,
        drop_action: base + 7,
        drop_malformed: base + 8,
        drop_unsupported: base + 9,
        drop_no_mbuf: base + 10,
        drop_oversize: base + 11,
        drop_admin_down_rx: base + 17,
        drop_admin_down_tx: base + 18,
        admin_down: !nic,
        mtu: 1500,
        nic: nic.then_some(NicCounters {
            rx_packets: base + 11,
            tx_packets: base + 12,
            rx_missed: base + 13,
            rx_errors: base + 14,
            tx_errors: base + 15,
            rx_nombuf: base + 16,
        }),
    }
}

pub(crate) fn show() -> ShowReply {
    ShowReply {
        bridges: vec![
            BridgeInfo { name: "br0".into(), ports: vec![port("a", 1, 100, true), port("b", 2, 200, false)] },
            BridgeInfo { name: "br1".into(), ports: vec![] },
        ],
        mbufs_in_use: 1023,
        mbufs_total: 16383,
    }
}

/// `counts` followed by zeros up to `n` buckets.
fn padded(counts: &[u64], n: usize) -> Vec<u64> {
    let mut v = counts.to_vec();
    v.resize(n, 0);
    v
}

pub(crate) fn pmd_stats() -> PmdStatsReply {
    PmdStatsReply {
        tsc_hz: 2_500_000_000,
        pmds: vec![PmdInfo {
            pmd: 0,
            core: 3,
            running: true,
            isolated: true,
            rx_queues: vec!["a:0".into(), "b:1".into()],
            rxq_usage: vec![
                RxqUsage {
                    port: "a".into(),
                    queue: 0,
                    packets: 900,
                    busy_cycles: 90_000,
                    pinned: true,
                    usage_percent: 30.0,
                },
                RxqUsage {
                    port: "b".into(),
                    queue: 1,
                    packets: 100,
                    busy_cycles: 3_000,
                    pinned: false,
                    usage_percent: 1.0,
                },
            ],
            packets: 1000,
            busy_cycles: 250_000,
            idle_cycles: 750_000,
            cycles_per_packet: 250.0,
            busy_percent: 25.0,
            rx_bursts: 40,
            iterations: 9000,
            messages: 7,
            drop_bad_output: 1,
            emc_hits: 500,
            signature_hits: 250,
            megaflow_hits: 125,
            misses: 125,
            emc_hit_percent: 50.0,
            signature_hit_percent: 25.0,
            megaflow_hit_percent: 12.5,
            miss_percent: 12.5,
            upcalls_sent: 120,
            drop_upcall_queue_full: 2,
            drop_park_full: 3,
            drop_park_timeout: 4,
            rx_pauses: 6,
            parked: 1,
            megaflows: 17,
            masks: 5,
            evictions: 7,
            reports_lost: 0,
            frees_on_pmd: 0,
            // As many buckets as the PMD keeps (32, 16, 32, 7).
            histograms: IterationHistograms {
                cycles_per_iteration: padded(&[0, 0, 0, 0, 0, 0, 0, 8000, 960, 0, 40], 32),
                packets_per_iteration: padded(&[8960, 0, 0, 0, 10, 20, 10], 16),
                cycles_per_packet: padded(&[0, 0, 0, 0, 0, 0, 0, 30, 10], 32),
                packets_per_batch: padded(&[0, 0, 0, 0, 10, 20, 10], 7),
            },
        }],
        slow_path: SlowPathInfo {
            upcalls_handled: 118,
            upcall_us_avg: 3.5,
            upcall_us_max: 41.5,
            upcall_latency: Box::new(LatencyHistogram {
                bounds_us: vec![5.0, 50.0],
                counts: vec![100, 17, 1],
                sum_us: 413.0,
            }),
            commands_undelivered: 6,
            state: SlowPathCounters {
                upcalls: 118,
                installs: 101,
                executes: 18,
                executes_relearned: 1,
                executes_raced: 11,
                executes_flow_limit: 5,
                no_bridge: 1,
                bad_upcalls: 8,
                xlate_errors: 9,
                removes: 30,
                revalidated: 31,
                mac_learned: 32,
                mac_moved: 33,
                mac_expired: 34,
                mac_evicted: 35,
                rule_changes: 36,
                rules_expired: 37,
                flows_gone: 38,
                flows_evicted: 39,
                executed_packets: 40,
                slow_path_packets: 41,
            },
        },
    }
}

pub(crate) fn trace(error: bool) -> TraceReply {
    TraceReply {
        flow: "in_port(1),eth_type(0x0800),ipv4(proto=6),l4(dst=80)".into(),
        steps: vec![
            TraceStep { table: 0, depth: 0, in_port: 1, rule: Some("tcp actions=resubmit(,1)".into()) },
            TraceStep { table: 1, depth: 1, in_port: 1, rule: None },
        ],
        datapath_actions: if error { "drop".into() } else { "3".into() },
        megaflow: "in_port(1),eth_type(0x0800),ipv4(proto=6)".into(),
        error: error.then(|| "TooDeep".into()),
    }
}

/// Every kind of reply at least once (the test of this list checks that it is every kind).
pub(crate) fn all() -> Vec<Reply> {
    vec![
        Reply::Show(show()),
        Reply::PmdStatsShow(Box::new(pmd_stats())),
        Reply::PmdStatsClear,
        Reply::Stop,
        Reply::AddFlow(AddFlowsReply { added: 1, megaflows_removed: 4 }),
        Reply::AddFlows(AddFlowsReply { added: 12, megaflows_removed: 0 }),
        Reply::DelFlows(DelFlowsReply { deleted: 3, megaflows_removed: 9 }),
        Reply::DumpFlows(DumpFlowsReply {
            flows: vec![
                RuleCounters {
                    rule: "priority=40000,icmp actions=drop".into(),
                    n_packets: 7,
                    n_bytes: 686,
                    duration_ms: 12_345,
                    idle_ms: 2_999,
                },
                RuleCounters { rule: "actions=normal".into(), n_packets: 0, n_bytes: 0, duration_ms: 5, idle_ms: 5 },
            ],
        }),
        Reply::DumpDpFlows(DumpDpFlowsReply {
            flows: vec![
                DpFlow {
                    pmd: 0,
                    flow: "in_port(1),eth_type(0x0800)".into(),
                    packets: 10,
                    bytes: 980,
                    used_ms_ago: Some(1_250),
                    actions: "set(vlan_vid=20),3".into(),
                },
                DpFlow {
                    pmd: 1,
                    flow: "in_port(2)".into(),
                    packets: 0,
                    bytes: 0,
                    used_ms_ago: None,
                    actions: "drop".into(),
                },
            ],
        }),
        Reply::Trace(trace(false)),
        Reply::Trace(trace(true)),
        Reply::Reload(ChangeReply {
            bridges_added: vec!["br1".into()],
            ports_added: vec!["p3".into()],
            ports_changed: vec!["p1".into()],
            rules_replaced: vec!["br0".into()],
            megaflows_removed: 2,
            ..ChangeReply::default()
        }),
        Reply::AddBr(ChangeReply { bridges_added: vec!["br1".into()], ..ChangeReply::default() }),
        Reply::DelBr(ChangeReply {
            bridges_removed: vec!["br1".into()],
            ports_removed: vec!["p3".into()],
            megaflows_removed: 4,
            ..ChangeReply::default()
        }),
        Reply::ListBr(NamesReply { names: vec!["br0".into(), "br1".into()] }),
        Reply::AddPort(ChangeReply {
            ports_added: vec!["p3".into()],
            warnings: vec!["bridge br0's rules name port 9, which it does not have".into()],
            ..ChangeReply::default()
        }),
        Reply::DelPort(ChangeReply {
            ports_removed: vec!["p3".into()],
            megaflows_removed: 1,
            ..ChangeReply::default()
        }),
        Reply::SetPort(ChangeReply { ports_changed: vec!["p1".into()], ..ChangeReply::default() }),
        Reply::ListPorts(NamesReply { names: vec![] }),
        Reply::PmdRxqRebalance(RebalanceReply {
            moves: vec![RxqMove { port: "a".into(), queue: 1, from_pmd: 0, to_pmd: 1 }],
        }),
        Reply::SetController,
        Reply::DelController,
        Reply::GetController(ControllersReply {
            targets: vec!["tcp:127.0.0.1:6653".into()],
            connected: 1,
            packet_ins_sent: 12,
            packet_ins_rate_limited: 0,
        }),
        Reply::Capture(CaptureReply { port: "a".into(), number: 1, snap_len: 2048 }),
    ]
}
