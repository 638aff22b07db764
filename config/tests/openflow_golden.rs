//! Golden tests: the bytes `ovs-ofctl` 3.1 sent for each captured subcommand
//! (`openflow_golden/*.hex`, made by `openflow_golden/capture-all.sh`) must decode, and
//! encoding the decoded message must reproduce them exactly.

use std::path::PathBuf;

use ferrovs_config::openflow::{self, Body, Message};

struct Capture {
    name: String,
    command: String,
    /// Messages per connection, in order.
    connections: Vec<Vec<Vec<u8>>>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn captures() -> Vec<Capture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openflow_golden");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("hex") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let mut cap = Capture {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            command: String::new(),
            connections: Vec::new(),
        };
        for line in text.lines() {
            if let Some(c) = line.strip_prefix("# command: ") {
                cap.command = c.to_owned();
            } else if line.starts_with("# connection") {
                cap.connections.push(Vec::new());
            } else if let Some(status) = line.strip_prefix("# exit: ") {
                // `monitor` runs until its --timeout alarm (SIGALRM, 14).
                let expected = if cap.command.contains("--timeout") { "-14" } else { "0" };
                assert_eq!(status, expected, "{}: ovs-ofctl failed during capture", cap.name);
            } else if !line.starts_with('#') && !line.is_empty() {
                cap.connections.last_mut().expect("connection line first").push(hex(line));
            }
        }
        out.push(cap);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() >= 40, "captures missing: {}", out.len());
    out
}

fn decode_exact(name: &str, bytes: &[u8]) -> Message {
    let (m, len) = openflow::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e:?} decoding {bytes:02x?}"));
    assert_eq!(len, bytes.len(), "{name}: length");
    m
}

#[test]
fn every_captured_message_decodes_and_reencodes_byte_for_byte() {
    let mut failures = Vec::new();
    let mut n = 0;
    for cap in captures() {
        for conn in &cap.connections {
            for bytes in conn {
                n += 1;
                match openflow::decode(bytes) {
                    Err(e) => failures.push(format!("{}: decode {:?} of {}", cap.name, e.error, hexs(bytes))),
                    Ok((m, _)) => match openflow::encode(&m) {
                        Err(e) => failures.push(format!("{}: encode {e} of {m:?}", cap.name)),
                        Ok(back) if back != *bytes => failures.push(format!(
                            "{} ({}): re-encoded differs\n  want {}\n  got  {}\n  {m:?}",
                            cap.name,
                            cap.command,
                            hexs(bytes),
                            hexs(&back)
                        )),
                        Ok(_) => {}
                    },
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {n} messages failed:\n{}", failures.len(), failures.join("\n"));
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The OVS name of a message's kind, to state each subcommand's sequence compactly.
fn kind(m: &Message) -> &'static str {
    use openflow::MpRequest as R;
    match &m.body {
        Body::Hello(_) => "HELLO",
        Body::FeaturesRequest => "FEATURES_REQUEST",
        Body::GetConfigRequest => "GET_CONFIG_REQUEST",
        Body::SetConfig(_) => "SET_CONFIG",
        Body::NxSetPacketInFormat(_) => "NXT_SET_PACKET_IN_FORMAT",
        Body::BarrierRequest => "BARRIER_REQUEST",
        Body::FlowMod(_) => "FLOW_MOD",
        Body::GroupMod(_) => "GROUP_MOD",
        Body::PortMod(_) => "PORT_MOD",
        Body::PacketOut(_) => "PACKET_OUT",
        Body::NxSetFlowFormat(_) => "NXT_SET_FLOW_FORMAT",
        Body::NxFlowModTableId(_) => "NXT_FLOW_MOD_TABLE_ID",
        Body::NxFlowMod(_) => "NXT_FLOW_MOD",
        Body::MultipartRequest(r) => match r.body {
            R::Desc => "ST_DESC",
            R::Flow(_) => "ST_FLOW",
            R::Aggregate(_) => "ST_AGGREGATE",
            R::Table => "ST_TABLE",
            R::Port(_) => "ST_PORT",
            R::PortDesc => "ST_PORT_DESC",
            R::Group(_) => "ST_GROUP",
            R::GroupDesc => "ST_GROUP_DESC",
            R::TableFeatures => "ST_TABLE_FEATURES",
            R::Meter(_) => "ST_METER",
            R::MeterConfig(_) => "ST_METER_CONFIG",
            R::MeterFeatures => "ST_METER_FEATURES",
            R::NxFlow(_) => "NXST_FLOW",
            R::NxAggregate(_) => "NXST_AGGREGATE",
        },
        _ => "OTHER",
    }
}

/// What each subcommand sent, connection by connection (`|`), as `ovs-ofctl ofp-print`
/// names the captured messages.
const SEQUENCES: &[(&str, &str)] = &[
    ("of10_add_flow_basic", "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO FLOW_MOD BARRIER_REQUEST"),
    (
        "of10_add_flow_ipv6",
        "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO NXT_SET_FLOW_FORMAT BARRIER_REQUEST NXT_FLOW_MOD BARRIER_REQUEST",
    ),
    (
        "of10_add_flow_l2",
        "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO NXT_SET_FLOW_FORMAT BARRIER_REQUEST NXT_FLOW_MOD_TABLE_ID \
         BARRIER_REQUEST NXT_FLOW_MOD BARRIER_REQUEST",
    ),
    ("of10_add_flow_l3", "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO FLOW_MOD BARRIER_REQUEST"),
    (
        "of10_add_flow_nicira",
        "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO NXT_SET_FLOW_FORMAT BARRIER_REQUEST NXT_FLOW_MOD BARRIER_REQUEST",
    ),
    (
        "of10_add_flow_table",
        "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO NXT_FLOW_MOD_TABLE_ID BARRIER_REQUEST FLOW_MOD BARRIER_REQUEST",
    ),
    ("of10_del_flows_all", "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of10_del_flows_match", "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of10_del_flows_strict", "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of10_dump_aggregate", "HELLO NXT_SET_FLOW_FORMAT BARRIER_REQUEST NXST_AGGREGATE"),
    ("of10_dump_flows", "HELLO NXT_SET_FLOW_FORMAT BARRIER_REQUEST NXST_FLOW"),
    (
        "of10_dump_flows_match",
        "HELLO FEATURES_REQUEST | HELLO ST_TABLE | HELLO NXT_SET_FLOW_FORMAT BARRIER_REQUEST NXST_FLOW",
    ),
    ("of10_dump_desc", "HELLO ST_DESC"),
    ("of10_dump_ports", "HELLO ST_PORT"),
    ("of10_dump_ports_desc", "HELLO ST_PORT_DESC"),
    ("of10_dump_tables", "HELLO ST_TABLE"),
    ("of10_monitor", "HELLO GET_CONFIG_REQUEST SET_CONFIG BARRIER_REQUEST NXT_SET_PACKET_IN_FORMAT BARRIER_REQUEST"),
    ("of10_mod_flows", "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of10_mod_flows_strict", "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of10_mod_port_down", "HELLO FEATURES_REQUEST | HELLO PORT_MOD BARRIER_REQUEST"),
    ("of10_packet_out", "HELLO ST_TABLE | HELLO FEATURES_REQUEST | HELLO PACKET_OUT BARRIER_REQUEST"),
    ("of10_show", "HELLO FEATURES_REQUEST | HELLO GET_CONFIG_REQUEST"),
    ("of13_add_flow_basic", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_add_flow_flags", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_add_flow_instructions", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_add_flow_ipv6", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_add_flow_l2", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_add_flow_l3", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_add_flow_nicira", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_add_flow_table", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_add_group_all", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO GROUP_MOD BARRIER_REQUEST"),
    ("of13_add_group_indirect", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO GROUP_MOD BARRIER_REQUEST"),
    ("of13_add_group_select", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO GROUP_MOD BARRIER_REQUEST"),
    ("of13_del_flows_all", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_del_flows_match", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_del_flows_strict", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_del_groups", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO GROUP_MOD BARRIER_REQUEST"),
    ("of13_dump_aggregate", "HELLO ST_AGGREGATE"),
    ("of13_dump_desc", "HELLO ST_DESC"),
    ("of13_dump_flows", "HELLO ST_FLOW"),
    ("of13_dump_flows_match", "HELLO ST_PORT_DESC | HELLO ST_TABLE_FEATURES | HELLO ST_FLOW"),
    ("of13_dump_group_stats", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO ST_GROUP"),
    ("of13_dump_groups", "HELLO ST_GROUP_DESC"),
    ("of13_dump_ports", "HELLO ST_PORT"),
    ("of13_dump_ports_desc", "HELLO ST_PORT_DESC"),
    ("of13_dump_tables", "HELLO ST_TABLE"),
    ("of13_mod_flows", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO FLOW_MOD BARRIER_REQUEST"),
    ("of13_monitor", "HELLO GET_CONFIG_REQUEST SET_CONFIG BARRIER_REQUEST NXT_SET_PACKET_IN_FORMAT BARRIER_REQUEST"),
    ("of13_mod_port_down", "HELLO ST_PORT_DESC | HELLO PORT_MOD BARRIER_REQUEST"),
    ("of13_packet_out", "HELLO ST_TABLE_FEATURES | HELLO ST_PORT_DESC | HELLO PACKET_OUT BARRIER_REQUEST"),
    ("of13_show", "HELLO FEATURES_REQUEST ST_PORT_DESC | HELLO GET_CONFIG_REQUEST"),
];

#[test]
fn each_subcommand_sends_the_expected_message_sequence() {
    let caps = captures();
    assert_eq!(caps.len(), SEQUENCES.len(), "a capture without an expected sequence, or the reverse");
    for cap in &caps {
        let (_, want) = SEQUENCES.iter().find(|(name, _)| *name == cap.name).expect("no expected sequence");
        let got: Vec<String> = cap
            .connections
            .iter()
            .map(|c| c.iter().map(|b| kind(&decode_exact(&cap.name, b))).collect::<Vec<_>>().join(" "))
            .collect();
        let want = want.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(got.join(" | "), want, "{}: {}", cap.name, cap.command);
    }
}

/// The `idx`-th message of the last connection of capture `name`.
fn message(name: &str, idx: usize) -> Message {
    let caps = captures();
    let cap = caps.iter().find(|c| c.name == name).expect("capture");
    decode_exact(name, &cap.connections.last().expect("connection")[idx])
}

use openflow::{
    Action, Bucket, Field, FieldSlice, FlowMod, FlowModCommand, FlowStatsRequest, GroupMod, GroupModCommand, GroupType,
    Hello, Instruction, Match, MatchField, MpRequest, MultipartRequest, NO_BUFFER, OFPG_ANY, OFPP_ANY, OFPP_IN_PORT,
    PortMod, Version,
};

fn ip(a: u8, b: u8, c: u8, d: u8) -> u128 {
    u128::from(u32::from_be_bytes([a, b, c, d]))
}

fn add(priority: u16, fields: Vec<MatchField>, actions: Vec<Action>) -> FlowMod {
    FlowMod {
        cookie: 0,
        cookie_mask: 0,
        table_id: 0,
        command: FlowModCommand::Add,
        idle_timeout: 0,
        hard_timeout: 0,
        priority,
        buffer_id: NO_BUFFER,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        flags: 0,
        matches: Match { fields },
        instructions: vec![Instruction::ApplyActions(actions)],
    }
}

#[test]
fn hellos_carry_the_offered_versions() {
    let of10 = message("of10_show", 0);
    assert_eq!(of10.body, Body::Hello(Hello { version: 1, bitmap: None }));
    let of13 = message("of13_show", 0);
    assert_eq!(of13.body, Body::Hello(Hello { version: 4, bitmap: Some(1 << 4) }));
    let Body::Hello(h13) = of13.body else { unreachable!() };
    assert_eq!(openflow::negotiate(&Hello::offering(&[Version::Of10, Version::Of13]), &h13), Some(Version::Of13));
    assert_eq!(openflow::negotiate(&Hello::offering(&[Version::Of10]), &h13), None);
}

#[test]
fn of10_add_flow_is_a_standard_flow_mod() {
    // priority=100,tcp,nw_dst=198.18.0.0/15,tp_dst=443,actions=mod_vlan_vid:20,output:3
    let m = message("of10_add_flow_basic", 1);
    assert_eq!((m.version, m.xid), (Version::Of10, 6));
    let want = add(
        100,
        vec![
            MatchField::exact(Field::EthType, 0x0800),
            MatchField::exact(Field::IpProto, 6),
            MatchField::masked(Field::Ipv4Dst, ip(198, 18, 0, 0), ip(255, 254, 0, 0)),
            MatchField::exact(Field::TcpDst, 443),
        ],
        vec![Action::SetVlanVid(20), Action::Output { port: 3, max_len: 0 }],
    );
    assert_eq!(m.body, Body::FlowMod(want));
}

#[test]
fn of13_add_flow_is_an_oxm_flow_mod() {
    // Same rule as above; 1.3 has no mod_vlan_vid, so push_vlan + set_field.
    let m = message("of13_add_flow_basic", 1);
    assert_eq!((m.version, m.xid), (Version::Of13, 6));
    let want = add(
        100,
        vec![
            MatchField::exact(Field::EthType, 0x0800),
            MatchField::masked(Field::Ipv4Dst, ip(198, 18, 0, 0), ip(255, 254, 0, 0)),
            MatchField::exact(Field::IpProto, 6),
            MatchField::exact(Field::TcpDst, 443),
        ],
        vec![
            Action::PushVlan(0x8100),
            Action::SetField { field: Field::VlanVid, value: 0x1000 | 20 },
            Action::Output { port: 3, max_len: 0 },
        ],
    );
    assert_eq!(m.body, Body::FlowMod(want));
}

#[test]
fn of10_nicira_rule_is_an_nxt_flow_mod_with_nicira_actions() {
    // priority=200,ip,reg0=5,nw_ttl=9,actions=dec_ttl,load:0x2a->NXM_NX_REG1[],
    // move:NXM_OF_IP_SRC[]->NXM_NX_REG2[],note:aa.bb,resubmit(,2),resubmit:3,output:NXM_NX_REG1[0..15]
    let m = message("of10_add_flow_nicira", 3);
    let whole = |field| FieldSlice { field, ofs: 0, n_bits: 32 };
    let want = add(
        200,
        vec![
            MatchField::exact(Field::EthType, 0x0800),
            MatchField::exact(Field::NwTtl, 9),
            MatchField::exact(Field::Reg(0), 5),
        ],
        vec![
            Action::NxDecTtl,
            Action::RegLoad { dst: whole(Field::Reg(1)), value: 0x2a },
            Action::RegMove { src: whole(Field::Ipv4Src), dst: whole(Field::Reg(2)) },
            Action::Note(vec![0xaa, 0xbb, 0, 0, 0, 0]),
            Action::Resubmit { in_port: OFPP_IN_PORT, table: Some(2) },
            // OVS 3.1 writes `resubmit:3` as NXAST_RESUBMIT_TABLE with table 255 (this table).
            Action::Resubmit { in_port: 3, table: Some(255) },
            Action::OutputReg { src: FieldSlice { field: Field::Reg(1), ofs: 0, n_bits: 16 }, max_len: 0xffff },
        ],
    );
    assert_eq!(m.body, Body::NxFlowMod(want));
    assert_eq!(message("of10_add_flow_nicira", 1).body, Body::NxSetFlowFormat(openflow::FlowFormat::Nxm));
}

#[test]
fn of10_table_id_rides_in_the_command_after_flow_mod_table_id() {
    // table=3,priority=1,arp,arp_op=1,arp_tpa=192.0.2.1,actions=drop
    assert_eq!(message("of10_add_flow_table", 1).body, Body::NxFlowModTableId(true));
    let mut want = add(
        1,
        vec![
            MatchField::exact(Field::EthType, 0x0806),
            MatchField::exact(Field::ArpOp, 1),
            MatchField::exact(Field::ArpTpa, ip(192, 0, 2, 1)),
        ],
        vec![],
    );
    want.table_id = 3;
    want.instructions.clear();
    assert_eq!(message("of10_add_flow_table", 3).body, Body::FlowMod(want));
}

#[test]
fn of13_del_flows_targets_all_tables() {
    let Body::FlowMod(f) = message("of13_del_flows_all", 1).body else { panic!("not a flow-mod") };
    assert_eq!((f.command, f.table_id, f.out_port, f.out_group), (FlowModCommand::Delete, 255, OFPP_ANY, OFPG_ANY));
    assert!(f.matches.fields.is_empty() && f.instructions.is_empty());
    let Body::FlowMod(f) = message("of13_del_flows_strict", 1).body else { panic!("not a flow-mod") };
    assert_eq!((f.command, f.priority), (FlowModCommand::DeleteStrict, 100));
}

#[test]
fn of13_flow_mod_flags_and_cookie_mask() {
    let Body::FlowMod(f) = message("of13_add_flow_flags", 1).body else { panic!("not a flow-mod") };
    let want = openflow::OFPFF_SEND_FLOW_REM | openflow::OFPFF_CHECK_OVERLAP | openflow::OFPFF13_RESET_COUNTS;
    assert_eq!((f.flags, f.cookie), (want, 0x99));
    let Body::FlowMod(f) = message("of13_mod_flows", 1).body else { panic!("not a flow-mod") };
    assert_eq!((f.command, f.cookie, f.cookie_mask), (FlowModCommand::Modify, 0x99, 0xff));
}

#[test]
fn of13_instructions_are_kept_apart() {
    let Body::FlowMod(f) = message("of13_add_flow_instructions", 1).body else { panic!("not a flow-mod") };
    assert_eq!(f.table_id, 1);
    assert_eq!(
        f.instructions,
        vec![
            Instruction::ApplyActions(vec![Action::PopVlan]),
            Instruction::WriteActions(vec![Action::SetField { field: Field::IpDscp, value: 3 }, Action::Group(7)]),
            Instruction::WriteMetadata { metadata: 0x20, mask: 0xff },
            Instruction::GotoTable(4),
        ]
    );
}

#[test]
fn of13_select_group() {
    let bucket = |weight, port| Bucket {
        weight,
        watch_port: OFPP_ANY,
        watch_group: OFPG_ANY,
        actions: vec![Action::Output { port, max_len: 0 }],
    };
    let want = GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::Select,
        group_id: 7,
        buckets: vec![bucket(10, 1), bucket(20, 2)],
    };
    assert_eq!(message("of13_add_group_select", 1).body, Body::GroupMod(want));
}

#[test]
fn mod_port_down_in_both_versions() {
    let want = PortMod { port_no: 1, hw_addr: [2, 0, 0, 0, 0, 1], config: 1, mask: 1, advertise: 0 };
    assert_eq!(message("of10_mod_port_down", 1).body, Body::PortMod(want.clone()));
    assert_eq!(message("of13_mod_port_down", 1).body, Body::PortMod(want));
}

#[test]
fn dump_flows_requests() {
    let all = FlowStatsRequest {
        table_id: 255,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        cookie: 0,
        cookie_mask: 0,
        matches: Match::default(),
    };
    let req = |body| Body::MultipartRequest(MultipartRequest { more: false, body });
    assert_eq!(message("of10_dump_flows", 3).body, req(MpRequest::NxFlow(all.clone())));
    assert_eq!(message("of13_dump_flows", 1).body, req(MpRequest::Flow(all.clone())));
    let udp = FlowStatsRequest {
        table_id: 0,
        matches: Match {
            fields: vec![MatchField::exact(Field::EthType, 0x0800), MatchField::exact(Field::IpProto, 17)],
        },
        ..all
    };
    assert_eq!(message("of13_dump_flows_match", 1).body, req(MpRequest::Flow(udp)));
}

#[test]
fn monitor_asks_for_all_packet_ins_in_nxt_packet_in2_format() {
    for name in ["of10_monitor", "of13_monitor"] {
        let config = openflow::SwitchConfig { flags: 0, miss_send_len: 65534 };
        assert_eq!(message(name, 2).body, Body::SetConfig(config), "{name}");
        assert_eq!(message(name, 4).body, Body::NxSetPacketInFormat(openflow::PacketInFormat::NxPacketIn2), "{name}");
    }
}
