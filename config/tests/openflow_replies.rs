//! The switch side: replies and asynchronous messages the connection layer will send.
//! Their encodings are pinned in `openflow_golden/switch_replies.txt`, each line checked once
//! with `ovs-ofctl ofp-print` (its output is stored above the line), so what we send
//! is what OVS's own parser accepts.

use ferrovs_config::openflow::{
    self, Action, AggregateStats, Body, Bucket, Desc, ErrorMsg, FeaturesReply, Field, FlowRemoved, FlowRemovedReason,
    FlowStats, GroupDesc, GroupType, Instruction, Match, MatchField, Message, MpReply, MultipartReply, NO_BUFFER,
    OFPG_ANY, OFPP_ANY, OfpError, PacketIn, Port, PortReason, PortStats, PortStatus, Role, SwitchConfig, TableStats,
    Version,
};

fn port(v: Version) -> Port {
    Port {
        port_no: 1,
        hw_addr: [2, 0, 0, 0, 0, 1],
        name: "p1".into(),
        config: 0,
        state: 0,
        curr: 0x2040,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: if v == Version::Of13 { 10_000_000 } else { 0 },
        max_speed: if v == Version::Of13 { 10_000_000 } else { 0 },
    }
}

fn tcp443() -> Match {
    Match {
        fields: vec![
            MatchField::exact(Field::EthType, 0x0800),
            MatchField::exact(Field::IpProto, 6),
            MatchField::exact(Field::TcpDst, 443),
        ],
    }
}

fn flow(nicira: bool) -> FlowStats {
    FlowStats {
        table_id: 0,
        duration_sec: 5,
        duration_nsec: 1000,
        priority: 100,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        idle_age: if nicira { 2 } else { 0 },
        hard_age: if nicira { 5 } else { 0 },
        cookie: 0x1234,
        packet_count: 10,
        byte_count: 1000,
        matches: tcp443(),
        instructions: vec![Instruction::ApplyActions(vec![Action::Output { port: 2, max_len: 0 }])],
    }
}

fn reply(body: MpReply) -> Body {
    Body::MultipartReply(MultipartReply { more: false, body })
}

/// Every reply kind, named as in `switch_replies.txt`.
fn replies() -> Vec<(&'static str, Message)> {
    use Version::*;
    let m = |version, body| Message { version, xid: 7, body };
    let features = |v: Version| FeaturesReply {
        datapath_id: 0x1234,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        capabilities: if v == Of10 { 0xc7 } else { 0x4f },
        actions: if v == Of10 { 0xfff } else { 0 },
        ports: if v == Of10 { vec![port(v)] } else { vec![] },
    };
    let desc = Desc {
        mfr_desc: "ferrovs".into(),
        hw_desc: "userspace".into(),
        sw_desc: "0.1.0".into(),
        serial_num: "none".into(),
        dp_desc: "br0".into(),
    };
    let agg = AggregateStats { packet_count: 10, byte_count: 1000, flow_count: 1 };
    let table = |v: Version| TableStats {
        table_id: 0,
        name: if v == Of10 { "classifier".into() } else { String::new() },
        wildcards: if v == Of10 { 0x3fffff } else { 0 },
        max_entries: if v == Of10 { 1_000_000 } else { 0 },
        active_count: 1,
        lookup_count: 20,
        matched_count: 10,
    };
    let port_stats = |v: Version| PortStats {
        port_no: 1,
        counters: [1, 2, 100, 200, 0, 0, 0, 0, 0, 0, 0, 0],
        duration_sec: if v == Of13 { 3 } else { 0 },
        duration_nsec: 0,
    };
    let packet_in = |v: Version| PacketIn {
        buffer_id: NO_BUFFER,
        total_len: 60,
        reason: 0,
        table_id: 0,
        cookie: if v == Of13 { u64::MAX } else { 0 },
        matches: Match { fields: vec![MatchField::exact(Field::InPort, 1)] },
        data: vec![0xff; 60],
    };
    let removed = || FlowRemoved {
        cookie: 0x1234,
        priority: 100,
        reason: FlowRemovedReason::IdleTimeout,
        table_id: 0,
        duration_sec: 30,
        duration_nsec: 0,
        idle_timeout: 30,
        hard_timeout: 0,
        packet_count: 1,
        byte_count: 60,
        matches: tcp443(),
    };
    vec![
        ("of10_features_reply", m(Of10, Body::FeaturesReply(features(Of10)))),
        ("of13_features_reply", m(Of13, Body::FeaturesReply(features(Of13)))),
        ("of10_get_config_reply", m(Of10, Body::GetConfigReply(SwitchConfig { flags: 0, miss_send_len: 128 }))),
        ("of13_barrier_reply", m(Of13, Body::BarrierReply)),
        ("of10_echo_reply", m(Of10, Body::EchoReply(vec![1, 2, 3]))),
        ("of10_desc_reply", m(Of10, reply(MpReply::Desc(desc.clone())))),
        ("of13_desc_reply", m(Of13, reply(MpReply::Desc(desc)))),
        ("of10_nx_flow_reply", m(Of10, reply(MpReply::NxFlow(vec![flow(true)])))),
        ("of10_flow_reply", m(Of10, reply(MpReply::Flow(vec![flow(false)])))),
        ("of13_flow_reply", m(Of13, reply(MpReply::Flow(vec![flow(false)])))),
        ("of10_nx_aggregate_reply", m(Of10, reply(MpReply::NxAggregate(agg)))),
        ("of13_aggregate_reply", m(Of13, reply(MpReply::Aggregate(agg)))),
        ("of10_table_reply", m(Of10, reply(MpReply::Table(vec![table(Of10)])))),
        ("of13_table_reply", m(Of13, reply(MpReply::Table(vec![table(Of13)])))),
        ("of10_port_reply", m(Of10, reply(MpReply::Port(vec![port_stats(Of10)])))),
        ("of13_port_reply", m(Of13, reply(MpReply::Port(vec![port_stats(Of13)])))),
        ("of10_port_desc_reply", m(Of10, reply(MpReply::PortDesc(vec![port(Of10)])))),
        ("of13_port_desc_reply", m(Of13, reply(MpReply::PortDesc(vec![port(Of13)])))),
        (
            "of13_group_desc_reply",
            m(
                Of13,
                reply(MpReply::GroupDesc(vec![GroupDesc {
                    group_type: GroupType::Select,
                    group_id: 7,
                    buckets: vec![Bucket {
                        weight: 10,
                        watch_port: OFPP_ANY,
                        watch_group: OFPG_ANY,
                        actions: vec![Action::Output { port: 1, max_len: 0 }],
                    }],
                }])),
            ),
        ),
        ("of10_packet_in", m(Of10, Body::PacketIn(packet_in(Of10)))),
        ("of13_packet_in", m(Of13, Body::PacketIn(packet_in(Of13)))),
        ("of10_flow_removed", m(Of10, Body::FlowRemoved(removed()))),
        ("of13_flow_removed", m(Of13, Body::FlowRemoved(removed()))),
        ("of10_port_status", m(Of10, Body::PortStatus(PortStatus { reason: PortReason::Modify, desc: port(Of10) }))),
        ("of13_port_status", m(Of13, Body::PortStatus(PortStatus { reason: PortReason::Add, desc: port(Of13) }))),
        ("of13_role_reply", m(Of13, Body::RoleReply(Role { role: 2, generation_id: 1 }))),
        (
            "of13_error_bad_field",
            m(
                Of13,
                Body::Error(ErrorMsg {
                    err_type: OfpError::BadField.wire(Of13).0,
                    code: OfpError::BadField.wire(Of13).1,
                    data: vec![4, 14, 0, 8, 0, 0, 0, 7],
                }),
            ),
        ),
    ]
}

fn golden() -> Vec<(String, Vec<u8>)> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openflow_golden/switch_replies.txt");
    std::fs::read_to_string(path)
        .expect("switch_replies.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (name, hex) = l.split_once(' ').expect("NAME HEX");
            let bytes =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect();
            (name.to_owned(), bytes)
        })
        .collect()
}

#[test]
fn replies_encode_to_the_bytes_ovs_ofctl_accepted_and_decode_back() {
    let golden = golden();
    let replies = replies();
    assert_eq!(golden.len(), replies.len());
    for ((name, bytes), (want_name, m)) in golden.iter().zip(&replies) {
        assert_eq!(name, want_name);
        assert_eq!(&openflow::encode(m).expect("encode"), bytes, "{name}");
        assert_eq!(&openflow::decode(bytes).expect("decode").0, m, "{name}");
    }
}
