//! Rules survive the trip through the wire in every form that can express them, and
//! what the rule model cannot hold is refused with the error OVS would send.

use super::*;
use crate::openflow::{Body, FlowMod, FlowModCommand, Message, NO_BUFFER, OFPG_ANY, OFPP_ANY, decode, encode};
use crate::parse_flow;

/// Rules in `ovs-ofctl` syntax and whether OpenFlow 1.0's fixed match expresses them.
const RULES: &[(&str, bool)] = &[
    ("priority=10,in_port=1,actions=output:2", true),
    (
        "table=3,priority=200,cookie=0x1234,idle_timeout=30,hard_timeout=60,tcp,nw_dst=198.18.0.0/15,tp_dst=443,actions=mod_vlan_vid:20,output:3",
        true,
    ),
    ("dl_src=02:00:00:00:00:01,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=FLOOD", false),
    ("dl_vlan=5,actions=strip_vlan,NORMAL", true),
    ("dl_vlan=5,dl_vlan_pcp=3,actions=set_field:4102->vlan_vid,IN_PORT", true),
    ("vlan_tci=0x0000,actions=mod_vlan_pcp:4,ALL", true),
    ("arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/24,actions=NORMAL", true),
    ("arp,arp_sha=02:00:00:00:00:09,actions=NORMAL", false),
    ("udp,nw_src=10.1.2.3,tp_src=53,actions=mod_nw_src:10.9.9.9,mod_tp_dst:5353,output:1", true),
    ("icmp,icmp_type=8,icmp_code=0,actions=mod_dl_src:02:00:00:00:00:07,mod_dl_dst:02:00:00:00:00:08,output:2", true),
    ("ip,nw_tos=184,actions=mod_nw_tos:32,dec_ttl,output:2", true),
    ("ip,nw_ttl=64,nw_frag=no,actions=mod_nw_ttl:9,output:2", false),
    ("ipv6,ipv6_src=2001:db8::/32,actions=set_field:2001:db8::1->ipv6_dst,output:2", false),
    ("tcp,tcp_flags=+syn-ack,tp_dst=0x50/0xfff0,actions=resubmit(,2)", false),
    ("ipv6,ipv6_label=0x10000/0xf0000,actions=set_field:0x54321->ipv6_label,output:2", false),
    ("tcp6,ipv6_label=0x12345,tp_dst=80,actions=output:2", false),
    ("icmp6,icmp_type=135,nd_target=fd00::1,nd_sll=02:00:00:00:00:01,actions=drop", false),
    (
        "icmp6,icmp_type=136,icmp_code=0,nd_target=fe80::/64,nd_tll=02:00:00:00:00:00/ff:00:00:00:00:00,actions=NORMAL",
        false,
    ),
    (
        "icmp6,icmp_type=136,nd_reserved=1610612736,nd_options_type=2,actions=load:7->ERICOXM_OF_ICMPV6_ND_RESERVED[],\
         load:1->ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE[],move:NXM_NX_ND_TARGET[0..31]->ERICOXM_OF_ICMPV6_ND_RESERVED[],\
         load:0x020000000009->NXM_NX_ND_TLL[],output:2",
        false,
    ),
    ("icmp6,icmp_type=135,actions=load:0xfd00->NXM_NX_ND_TARGET[112..127],load:3->NXM_NX_ND_SLL[0..7],output:2", false),
    ("in_port=2,actions=resubmit:1,resubmit(3,4)", true),
    ("priority=0,actions=drop", true),
];

fn roundtrip(text: &str, form: MatchForm, v: Version, nicira: bool) -> Rule {
    let rule = parse_flow(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    let fm = FlowMod {
        cookie: rule.cookie,
        cookie_mask: 0,
        table_id: rule.table,
        command: FlowModCommand::Add,
        idle_timeout: rule.idle_timeout,
        hard_timeout: rule.hard_timeout,
        priority: rule.priority,
        buffer_id: NO_BUFFER,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        flags: 0,
        matches: match_to_wire(&rule.matches, form).unwrap_or_else(|e| panic!("{text}: {e}")),
        instructions: actions_to_wire(&rule, v).unwrap_or_else(|e| panic!("{text}: {e}")),
    };
    let body = if nicira { Body::NxFlowMod(fm) } else { Body::FlowMod(fm) };
    let bytes = encode(&Message { version: v, xid: 1, body }).unwrap_or_else(|e| panic!("{text}: {e}"));
    let (back, _) = decode(&bytes).unwrap_or_else(|e| panic!("{text}: {e}"));
    let (Body::FlowMod(fm) | Body::NxFlowMod(fm)) = back.body else { panic!("{text}: not a flow-mod") };
    let got = rule_from_wire(&WireRule::of(&fm)).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    // What comes back is what `ovs-ofctl -O v` loads for 1.3 (push_vlan + set_field); 1.0
    // (Nicira extensions included) carries every action of the model as it is.
    let expected = match v {
        Version::Of13 => as_loaded(rule, v).unwrap_or_else(|e| panic!("{text}: {e}")),
        Version::Of10 => rule,
    };
    assert_eq!(got, expected, "{text} via {form:?} {v}");
    got
}

/// The ND fields' set-fields under OpenFlow 1.3: OXM set-fields, `nd_reserved` and
/// `nd_options_type` with OVS's `ERICOXM_OF` headers.
#[test]
fn nd_set_fields_travel_as_oxm_set_fields() {
    roundtrip(
        "icmp6,icmp_type=136,nd_reserved=7,actions=set_field:7->nd_reserved,set_field:1->nd_options_type,\
         set_field:fd00::9->nd_target,set_field:02:00:00:00:00:09->nd_tll,output:2",
        MatchForm::Tlv,
        Version::Of13,
        false,
    );
}

#[test]
fn rules_survive_every_form_that_expresses_them() {
    for &(text, of10) in RULES {
        roundtrip(text, MatchForm::Tlv, Version::Of13, false);
        roundtrip(text, MatchForm::Tlv, Version::Of10, true);
        if of10 {
            roundtrip(text, MatchForm::Of10, Version::Of10, false);
        }
    }
}

#[test]
fn of13_mod_vlan_vid_is_push_then_set_field() {
    let rule = parse_flow("ip,actions=mod_vlan_vid:20,output:3").unwrap();
    let ins = actions_to_wire(&rule, Version::Of13).unwrap();
    assert_eq!(
        ins,
        vec![Instruction::ApplyActions(vec![
            WireAction::PushVlan(0x8100),
            WireAction::SetField { field: Field::VlanVid, value: 0x1000 | 20 },
            WireAction::Output { port: 3, max_len: 0 },
        ])]
    );
    // With a tag in the match there is nothing to push.
    let rule = parse_flow("dl_vlan=7,actions=mod_vlan_vid:20").unwrap();
    let ins = actions_to_wire(&rule, Version::Of13).unwrap();
    assert_eq!(ins, vec![Instruction::ApplyActions(vec![WireAction::SetField { field: Field::VlanVid, value: 4116 }])]);
}

fn wire_rule<'a>(m: &'a WireMatch, ins: &'a [Instruction]) -> WireRule<'a> {
    WireRule {
        table: 0,
        priority: 1,
        cookie: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        matches: m,
        instructions: ins,
    }
}

#[test]
fn registers_metadata_and_their_actions_load_from_flow_mods() {
    use crate::openflow::action::FieldSlice;
    let m = WireMatch {
        fields: vec![MatchField::exact(Field::Reg(3), 7), MatchField::masked(Field::Metadata, 0x10, 0xf0)],
    };
    let ins = vec![
        Instruction::ApplyActions(vec![
            WireAction::RegLoad { dst: FieldSlice { field: Field::Reg(1), ofs: 4, n_bits: 8 }, value: 0xab },
            WireAction::RegMove {
                src: FieldSlice { field: Field::EthSrc, ofs: 0, n_bits: 32 },
                dst: FieldSlice { field: Field::Metadata, ofs: 32, n_bits: 32 },
            },
            WireAction::SetField { field: Field::Reg(2), value: 9 },
        ]),
        Instruction::WriteMetadata { metadata: 5, mask: 0xff },
        Instruction::GotoTable(3),
    ];
    let r = rule_from_wire(&wire_rule(&m, &ins)).unwrap();
    assert_eq!(
        r.to_string(),
        "priority=1,reg3=0x7,metadata=0x10/0xf0 actions=load:0xab->NXM_NX_REG1[4..11],\
         move:NXM_OF_ETH_SRC[0..31]->OXM_OF_METADATA[32..63],set_field:0x9->reg2,write_metadata:0x5/0xff,goto_table:3"
    );
    // And back: the same instructions, the same match fields.
    assert_eq!(actions_to_wire(&r, Version::Of13).unwrap(), ins);
    assert_eq!(super::match_to_wire(&r.matches, super::MatchForm::Tlv).unwrap(), m);
    assert!(super::match_to_wire(&r.matches, super::MatchForm::Of10).is_err());
    // OpenFlow 1.0 has no goto_table; without it write_metadata is Nicira's action.
    assert!(actions_to_wire(&r, Version::Of10).is_err());
    let md = parse_flow("actions=output:1,write_metadata:0x5/0xff").unwrap();
    let of10 = actions_to_wire(&md, Version::Of10).unwrap();
    assert_eq!(
        of10,
        vec![Instruction::ApplyActions(vec![
            WireAction::Output { port: 1, max_len: 0 },
            WireAction::NxWriteMetadata { metadata: 5, mask: 0xff }
        ])]
    );
    assert_eq!(instructions_from_wire(&of10).unwrap(), md.actions);
}

#[test]
fn what_the_model_lacks_is_refused_with_the_right_error() {
    let out = |port| vec![Instruction::ApplyActions(vec![WireAction::Output { port, max_len: 0 }])];
    let m = |fields: Vec<MatchField>| WireMatch { fields };
    let tunnel = m(vec![MatchField::exact(Field::TunId, 1)]);
    assert_eq!(rule_from_wire(&wire_rule(&tunnel, &out(1))), Err(OfpError::BadField));
    let empty = m(vec![]);
    // LOCAL is the bridge's internal port; TABLE only a packet-out may use.
    let local = rule_from_wire(&wire_rule(&empty, &out(0xffff_fffe))).unwrap();
    assert_eq!(local.actions, vec![crate::rules::Action::Output(crate::ports::LOCAL_PORT)]);
    assert_eq!(rule_from_wire(&wire_rule(&empty, &out(0xffff_fff9))), Err(OfpError::BadActionOutPort));
    // CONTROLLER with its max_len.
    let to_controller = vec![Instruction::ApplyActions(vec![WireAction::Output { port: 0xffff_fffd, max_len: 128 }])];
    let r = rule_from_wire(&wire_rule(&empty, &to_controller)).unwrap();
    assert_eq!(r.actions, vec![crate::rules::Action::Controller { max_len: 128 }]);
    let table = [WireAction::Output { port: 0xffff_fff9, max_len: 0 }];
    assert_eq!(
        super::packet_out_actions_from_wire(&table),
        Ok(vec![crate::rules::Action::Resubmit(crate::rules::Resubmit { in_port: None, table: Some(0) })])
    );
    // OpenFlow 1.0's set_field of the flow label, as ovs-ofctl sends it: a load of all of
    // its 20 bits, held as the load it is (`load:0x54321->NXM_NX_IPV6_LABEL[]`, as
    // `ovs-ofctl` prints it); a part of it is a load of those bits.
    let ipv6 = m(vec![MatchField::exact(Field::EthType, 0x86dd)]);
    let label = |n_bits| crate::rules::Subfield {
        field: crate::rules::SubfieldField::Packet(crate::rules::PacketField::Ipv6Label),
        ofs: 0,
        n_bits,
    };
    let load = |n_bits| {
        let dst = crate::openflow::action::FieldSlice { field: Field::Ipv6Label, ofs: 0, n_bits };
        let value = 0x54321 & ((1 << n_bits) - 1);
        vec![Instruction::ApplyActions(vec![WireAction::RegLoad { dst, value }])]
    };
    assert_eq!(
        rule_from_wire(&wire_rule(&ipv6, &load(20))).map(|r| r.actions),
        Ok(vec![crate::rules::Action::Load { dst: label(20), value: 0x54321, set_field: false }])
    );
    assert_eq!(
        rule_from_wire(&wire_rule(&ipv6, &load(16))).map(|r| r.actions),
        Ok(vec![crate::rules::Action::Load { dst: label(16), value: 0x4321, set_field: false }])
    );
    // A neighbour-discovery field is loaded only in a rule matching an ND message.
    let nd = vec![Instruction::ApplyActions(vec![WireAction::RegLoad {
        dst: crate::openflow::action::FieldSlice { field: Field::NdTarget, ofs: 0, n_bits: 16 },
        value: 1,
    }])];
    assert_eq!(rule_from_wire(&wire_rule(&ipv6, &nd)), Err(OfpError::BadActionArgument));
    let ns = m(vec![
        MatchField::exact(Field::EthType, 0x86dd),
        MatchField::exact(Field::IpProto, 58),
        MatchField::exact(Field::Icmpv6Type, 135),
    ]);
    let target = Subfield { field: SubfieldField::Packet(crate::rules::PacketField::NdTarget), ofs: 0, n_bits: 16 };
    assert_eq!(
        rule_from_wire(&wire_rule(&ns, &nd)).map(|r| r.actions),
        Ok(vec![crate::rules::Action::Load { dst: target, value: 1, set_field: false }])
    );
    // in_port is OVS's 16-bit port number: 32-bit numbers between the two ranges are none.
    for bad in [0xff00, 0x1_0000, 0xffff_feff] {
        let p = m(vec![MatchField::exact(Field::InPort, bad)]);
        assert_eq!(rule_from_wire(&wire_rule(&p, &out(1))), Err(OfpError::BadValue), "{bad:#x}");
    }
    let p = m(vec![MatchField::exact(Field::InPort, 0xfeff)]);
    assert_eq!(rule_from_wire(&wire_rule(&p, &out(1))).map(|r| r.matches.in_port), Ok(Some(0xfeff)));
    let no_proto = m(vec![MatchField::exact(Field::EthType, 0x0800), MatchField::exact(Field::TcpDst, 80)]);
    assert_eq!(rule_from_wire(&wire_rule(&no_proto, &out(1))), Err(OfpError::BadPrereq));
    let set_vid = vec![Instruction::ApplyActions(vec![WireAction::SetField { field: Field::VlanVid, value: 4100 }])];
    assert_eq!(rule_from_wire(&wire_rule(&empty, &set_vid)), Err(OfpError::BadActionArgument));
    let meter = vec![Instruction::Meter(1)];
    assert_eq!(rule_from_wire(&wire_rule(&empty, &meter)), Err(OfpError::UnsupportedInstruction));
    let group = vec![Instruction::ApplyActions(vec![WireAction::Group(1)])];
    assert_eq!(rule_from_wire(&wire_rule(&empty, &group)).map(|r| r.actions), Ok(vec![crate::rules::Action::Group(1)]));
    let set_queue = vec![Instruction::ApplyActions(vec![WireAction::SetQueue(1)])];
    assert_eq!(rule_from_wire(&wire_rule(&empty, &set_queue)), Err(OfpError::BadActionType));
    let set_tun = vec![Instruction::ApplyActions(vec![WireAction::SetField { field: Field::TunId, value: 1 }])];
    assert_eq!(rule_from_wire(&wire_rule(&empty, &set_tun)), Err(OfpError::BadSetType));
    // An MPLS set-field needs an MPLS match (OVS: OFPBAC_MATCH_INCONSISTENT).
    let set_mpls = vec![Instruction::ApplyActions(vec![WireAction::SetField { field: Field::MplsLabel, value: 1 }])];
    assert_eq!(rule_from_wire(&wire_rule(&empty, &set_mpls)), Err(OfpError::BadActionArgument));
    let mpls = m(vec![MatchField::exact(Field::EthType, 0x8847), MatchField::exact(Field::MplsLabel, 5)]);
    let label = |l: u32| crate::rules::Match {
        dl_type: Some(0x8847),
        mpls_lse: Some(crate::rules::Masked { value: l << 12, mask: 0xffff_f000 }),
        ..Default::default()
    };
    assert_eq!(rule_from_wire(&wire_rule(&mpls, &set_mpls)).map(|r| r.matches), Ok(label(5)));
    let back_goto = vec![Instruction::GotoTable(0)];
    assert_eq!(rule_from_wire(&wire_rule(&empty, &back_goto)), Err(OfpError::BadActionArgument));
}

#[test]
fn oxm_vlan_fields_fold_into_the_tci() {
    let m = |fields: Vec<MatchField>| match_from_wire(&WireMatch { fields }).unwrap();
    let tci = |value, mask| Some(Masked { value, mask });
    assert_eq!(m(vec![MatchField::exact(Field::VlanVid, 0)]).vlan_tci, tci(0, 0xffff));
    assert_eq!(m(vec![MatchField::exact(Field::VlanVid, 0x1005)]).vlan_tci, tci(0x1005, 0x1fff));
    assert_eq!(m(vec![MatchField::masked(Field::VlanVid, 0x1000, 0x1000)]).vlan_tci, tci(0x1000, 0x1000));
    assert_eq!(
        m(vec![MatchField::exact(Field::VlanVid, 0x1005), MatchField::exact(Field::VlanPcp, 3)]).vlan_tci,
        tci(0x7005, 0xffff)
    );
}

#[test]
fn a_version_list_is_its_highest_version_ferrovs_speaks() {
    assert_eq!(Version::from_ofctl_list("OpenFlow10"), Ok(Version::Of10));
    assert_eq!(Version::from_ofctl_list("OpenFlow13,OpenFlow10"), Ok(Version::Of13));
    assert_eq!(Version::from_ofctl_list(" openflow10 , OpenFlow11,OpenFlow15"), Ok(Version::Of10));
    assert!(Version::from_ofctl_list("OpenFlow14,OpenFlow15").unwrap_err().contains("no OpenFlow version"));
    assert!(Version::from_ofctl_list("OpenFlow10,bogus").unwrap_err().contains("bogus"));
    assert!(Version::from_ofctl_list("").is_err());
}

#[test]
fn dump_flows_prints_a_rule_as_the_version_encodes_it() {
    assert_eq!(
        printed_in("reg0=0x1 actions=set_field:0x7->reg4,output:2", Version::Of10),
        "reg0=0x1 actions=load:0x7->NXM_NX_REG4[],output:2"
    );
    assert_eq!(printed_in("actions=set_field:0x7->reg4", Version::Of13), "actions=set_field:0x7->reg4");
    assert_eq!(
        printed_in("priority=5 actions=mod_vlan_vid:5,output:2", Version::Of13),
        "priority=5 actions=push_vlan:0x8100,set_field:4101->vlan_vid,output:2"
    );
    // What the version cannot express stays as it is.
    assert_eq!(printed_in("actions=push_vlan:0x8100", Version::Of10), "actions=push_vlan:0x8100");
}

#[test]
fn the_version_that_reads_rules_back_is_found() {
    let texts = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let of10 = texts(&["actions=mod_vlan_vid:5", "ip,actions=output:1"]);
    let of13 = texts(&["actions=push_vlan:0x8100,set_field:4101->vlan_vid", "ip,actions=output:1"]);
    let both = texts(&["dl_vlan=3,actions=strip_vlan,output:2", "ip,actions=output:1"]);
    assert_eq!(version_reading_back(&of10, Version::Of13), Ok(Version::Of10));
    assert_eq!(version_reading_back(&of13, Version::Of10), Ok(Version::Of13));
    assert_eq!(version_reading_back(&both, Version::Of13), Ok(Version::Of13));
    assert_eq!(version_reading_back(&both, Version::Of10), Ok(Version::Of10));
    let mixed = [of10[0].clone(), of13[0].clone()];
    let e = version_reading_back(&mixed, Version::Of10).unwrap_err();
    assert!(e.contains("mod_vlan_vid:5") && e.contains("push_vlan"), "{e}");
    // A register's set_field reads back only under OpenFlow 1.3 (a load under 1.0), as
    // does write_metadata with goto_table; a load reads back under both.
    let regs = texts(&["actions=set_field:0x7->reg4", "actions=load:0x1->NXM_NX_REG0[]"]);
    assert_eq!(version_reading_back(&regs, Version::Of10), Ok(Version::Of13));
    let md = texts(&["actions=write_metadata:0x1/0xff,goto_table:1"]);
    assert_eq!(version_reading_back(&md, Version::Of10), Ok(Version::Of13));
    let mixed = [of10[0].clone(), regs[0].clone()];
    assert!(version_reading_back(&mixed, Version::Of10).is_err());
}

/// A controller's flow-mod with OFPIT_CLEAR_ACTIONS and OFPIT_WRITE_ACTIONS loads, and
/// encodes back (dump-flows) as it came, in the instruction order; OpenFlow 1.0 has no
/// instructions (`ovs-ofctl` drops them); the action set cannot hold a note or a clone.
#[test]
fn action_set_instructions_round_trip() {
    for text in [
        "ip,actions=output:1,clear_actions,write_actions(dec_ttl,mod_nw_dst:10.0.0.1,group:3)",
        "actions=write_actions(mod_vlan_vid:5,output:2),write_metadata:0x1/0xf",
        "actions=clear_actions",
    ] {
        let got = roundtrip(text, MatchForm::Tlv, Version::Of13, false);
        assert!(got.actions.iter().any(|a| matches!(a, Action::ClearActions | Action::WriteActions(_))), "{text}");
        let rule = parse_flow(text).unwrap();
        let ins = actions_to_wire(&rule, Version::Of10).unwrap();
        assert!(ins.iter().all(|i| matches!(i, Instruction::ApplyActions(_))), "{text}: {ins:?}");
    }
    let rule = parse_flow("actions=clear_actions,write_actions(output:2)").unwrap();
    assert_eq!(
        actions_to_wire(&rule, Version::Of13).unwrap(),
        vec![Instruction::ClearActions, Instruction::WriteActions(vec![WireAction::Output { port: 2, max_len: 0 }])]
    );
    assert_eq!(as_loaded(rule, Version::Of10).unwrap().actions, vec![]);
    let empty = WireMatch { fields: vec![] };
    let note = vec![Instruction::WriteActions(vec![WireAction::Note(vec![1, 0, 0, 0, 0, 0])])];
    assert_eq!(rule_from_wire(&wire_rule(&empty, &note)), Err(OfpError::BadActionType));
    // The instruction order of the wire does not matter; the model's is fixed.
    let reversed = vec![
        Instruction::WriteActions(vec![WireAction::Output { port: 2, max_len: 0 }]),
        Instruction::ClearActions,
        Instruction::ApplyActions(vec![WireAction::Output { port: 1, max_len: 0 }]),
    ];
    assert_eq!(
        rule_from_wire(&wire_rule(&empty, &reversed)).map(|r| r.to_string()),
        Ok("priority=1 actions=output:1,clear_actions,write_actions(output:2)".to_string())
    );
}

/// The daemon's check of an `add-flows` against the running rules: on typed rules, the
/// running ones reduced to those that depend on the version; a mixed set is refused
/// whichever side brings which kind, naming both rules.
#[test]
fn the_version_of_typed_rules_is_found_and_a_mix_refused() {
    let parse = |t: &[&str]| t.iter().map(|s| crate::parse_flow(s).unwrap()).collect::<Vec<_>>();
    let running: Vec<String> =
        ["ip,actions=output:1", "actions=mod_vlan_vid:5", "arp,actions=NORMAL"].iter().map(|s| s.to_string()).collect();
    let dependent = version_dependent_rules(&running).unwrap();
    assert_eq!(dependent, parse(&["actions=mod_vlan_vid:5"]));
    let plain = parse(&["priority=3,ip,actions=output:2", "dl_vlan=3,actions=output:1"]);
    assert!(!plain.iter().any(depends_on_version), "a VLAN match alone does not depend on the version");
    assert_eq!(version_reading_back_rules(dependent.iter().chain(&plain), Version::Of10), Ok(Version::Of10));
    let of13 = parse(&["actions=push_vlan:0x8100,set_field:4101->vlan_vid"]);
    assert!(of13.iter().all(depends_on_version));
    let e = version_reading_back_rules(dependent.iter().chain(&of13), Version::Of10).unwrap_err();
    assert!(e.contains("mod_vlan_vid:5") && e.contains("push_vlan"), "{e}");
    let e = version_reading_back_rules(of13.iter().chain(&dependent), Version::Of13).unwrap_err();
    assert!(e.contains("mod_vlan_vid:5") && e.contains("push_vlan"), "{e}");
}

/// `of10_rewrites`, which lets `of10_actions` keep a list as it is, says yes exactly for
/// the actions whose rebuild differs from them, alone and inside a `clone`.
#[test]
fn of10_rewrites_names_exactly_the_actions_the_rebuild_changes() {
    let actions = [
        "output:1",
        "mod_vlan_vid:5",
        "set_field:5->vlan_vid",
        "set_field:3->vlan_pcp",
        "strip_vlan",
        "set_field:0x5->reg0",
        "set_field:0x5->xxreg0",
        "load:5->NXM_NX_REG0[0..7]",
        "set_field:10.0.0.1->ip_dst",
        "mod_nw_dst:10.0.0.1",
        "set_field:1->metadata",
        "write_metadata:0x1",
        "dec_ttl",
        "clear_actions",
        "write_actions(output:1)",
        "goto_table:1",
    ];
    let mut rewritten = 0;
    for text in actions {
        let rule = parse_flow(&format!("dl_vlan=3,ip,actions={text}")).unwrap_or_else(|e| panic!("{text}: {e}"));
        for list in [rule.actions.clone(), vec![Action::Clone(rule.actions.clone())]] {
            let changes = of10_rebuild(list.clone()) != list;
            assert_eq!(list.iter().any(of10_rewrites), changes, "{list:?}");
            rewritten += usize::from(changes);
        }
    }
    assert!(rewritten >= 10, "the list holds actions of both kinds");
}
