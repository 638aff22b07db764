//! Golden tests of translation, in the style of OVS's dpif-netdev tests: for a rule set
//! and a packet, the exact megaflow mask and datapath actions. Packets are parsed from
//! real frame bytes by a tiny parser at the bottom of this file, so the keys are what
//! the wire would produce.

use std::net::Ipv4Addr;
use std::time::Duration;

use ferrovs_config::rules::{Action, Masked, Match, Resubmit, Rule, SetField};
use ferrovs_flowcache::actions::{
    DpAction, REASON_ACTION, TPID_OF_LAST_POP, TPID_OF_RECEIVED_OUTER, TPID_OF_SECOND_LAST_POP,
};
use ferrovs_flowcache::key::{FRAG_ANY, FlowKey, Mask, VLAN_PRESENT, ethertype, ipproto};
use ferrovs_flowcache::xlate::{
    LearnOutcome, MacLearn, MacTable, RuleTables, Verdict, XlateError, revalidate, translate,
};

const PORTS: [u32; 3] = [1, 2, 3];
const NOW: Duration = Duration::from_secs(1000);

fn rule(table: u8, priority: u16, m: Match, actions: Vec<Action>) -> Rule {
    Rule { table, priority, cookie: 0, idle_timeout: 0, hard_timeout: 0, send_flow_rem: false, matches: m, actions }
}
fn ip() -> Match {
    Match { dl_type: Some(ethertype::IPV4), ..Match::default() }
}
fn udp() -> Match {
    Match { nw_proto: Some(ipproto::UDP), ..ip() }
}
fn tcp() -> Match {
    Match { nw_proto: Some(ipproto::TCP), ..ip() }
}
fn pfx(a: [u8; 4], len: u32) -> Masked<Ipv4Addr> {
    let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Masked { value: Ipv4Addr::from(u32::from(Ipv4Addr::from(a)) & m), mask: Ipv4Addr::from(m) }
}
fn exact16(v: u16) -> Masked<u16> {
    Masked { value: v, mask: 0xffff }
}

/// The mask every translation has: in_port.
fn base_mask() -> Mask {
    let mut m = Mask::ZERO;
    m.set_in_port(u32::MAX);
    m
}
/// in_port + dl_type.
fn l3_mask() -> Mask {
    let mut m = base_mask();
    m.set_dl_type(0xffff);
    m
}

fn tables(rules: Vec<Rule>) -> RuleTables {
    RuleTables::new(rules, PORTS.to_vec()).unwrap()
}

#[test]
fn route_miss_needs_only_one_prefix_bit() {
    // priority=100,ip,nw_dst=10.0.0.0/8,actions=output:2 ; priority=0,actions=output:3
    let t = tables(vec![
        rule(0, 100, Match { nw_dst: Some(pfx([10, 0, 0, 0], 8)), ..ip() }, vec![Action::Output(2)]),
        rule(0, 0, Match::default(), vec![Action::Output(3)]),
    ]);
    let p = key(1, &udp_frame([192, 168, 1, 1], 1234, 80, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let mut want = l3_mask();
    want.set_nw_dst_u32(0x8000_0000); // 192 = 1..., 10 = 0...: one bit proves the miss
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(3)]);

    // 11.0.0.1 differs from 10/8 only in the last bit of the first octet: /8.
    let p = key(1, &udp_frame([11, 0, 0, 1], 1234, 80, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    want.set_nw_dst_u32(0xff00_0000);
    assert_eq!(x.mask, want);

    // A hit needs exactly the rule's bits.
    let p = key(1, &udp_frame([10, 9, 8, 7], 1234, 80, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(2)]);
    assert_eq!(x.rules.len(), 1);
    assert_eq!(t.source_index(x.rules[0]), 0);

    // An ARP packet fails `ip` on dl_type alone.
    let p = key(2, &arp_frame());
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.mask, l3_mask());
    assert_eq!(x.actions, vec![DpAction::Output(3)]);
}

#[test]
fn longest_prefix_routes_unwildcard_up_to_the_longer_prefix() {
    let t = tables(vec![
        rule(0, 108, Match { nw_dst: Some(pfx([20, 0, 0, 0], 8)), ..ip() }, vec![Action::Output(1)]),
        rule(0, 116, Match { nw_dst: Some(pfx([20, 1, 0, 0], 16)), ..ip() }, vec![Action::Output(2)]),
        rule(0, 0, Match::default(), vec![]),
    ]);
    // 20.3.0.1 is in the /8 but not in 20.1/16: 20.3 vs 20.1 first differ at bit 14
    // (the 0x02 bit of the second octet), so the mask is /15.
    let p = key(3, &udp_frame([20, 3, 0, 1], 1, 2, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let mut want = l3_mask();
    want.set_nw_dst_u32(0xfffe_0000);
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(1)]);
}

#[test]
fn other_protocol_rule_is_disproved_by_nw_proto_not_by_ports() {
    // tcp,tp_dst=22 must not put port bits into a UDP packet's megaflow.
    let t = tables(vec![
        rule(0, 200, Match { tp_dst: Some(exact16(22)), ..tcp() }, vec![Action::Output(2)]),
        rule(0, 0, Match::default(), vec![Action::Output(3)]),
    ]);
    let p = key(1, &udp_frame([10, 0, 0, 1], 1000, 22, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let mut want = l3_mask();
    want.set_nw_proto(0xff);
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(3)]);
}

#[test]
fn port_miss_unwildcards_a_port_prefix_and_the_fragment_bit() {
    // udp,tp_dst=53 vs a packet to port 80: 0x0035 vs 0x0050 first differ in bit 6.
    let t = tables(vec![
        rule(0, 200, Match { tp_dst: Some(exact16(53)), ..udp() }, vec![Action::Output(2)]),
        rule(0, 0, Match::default(), vec![Action::Output(3)]),
    ]);
    let p = key(1, &udp_frame([10, 0, 0, 1], 1000, 80, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let mut want = l3_mask();
    want.set_nw_proto(0xff);
    want.set_tp_dst(0xffc0);
    want.set_nw_frag(FRAG_ANY);
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(3)]);

    // A first fragment carrying port 53 reads as port 0 (frag handling "normal"): no
    // port bits in the mask, only "is a fragment". Not even nw_proto: whatever the
    // protocol, a fragment's port reads as 0 and cannot be 53.
    let p = key(1, &udp_frame([10, 0, 0, 1], 1000, 53, 0x2000 /* MF */));
    assert_eq!(p.nw_frag(), FRAG_ANY);
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let mut want = l3_mask();
    want.set_nw_frag(FRAG_ANY);
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(3)]);
}

#[test]
fn masked_port_range_hit_needs_only_the_range_bits() {
    // priority=2500,udp,tp_dst=0x1000/0xf000 above a udp,tp_dst=4789 rule it contains.
    let t = tables(vec![
        rule(0, 3000, Match { tp_dst: Some(exact16(4789)), ..udp() }, vec![Action::Output(1)]),
        rule(0, 2500, Match { tp_dst: Some(Masked { value: 0x1000, mask: 0xf000 }), ..udp() }, vec![Action::Output(2)]),
    ]);
    // 0x1001 vs 4789 = 0x12b5: first difference at bit 9 (0x0200) -> mask 0xfe00.
    let p = key(1, &udp_frame([10, 0, 0, 1], 1000, 0x1001, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let mut want = l3_mask();
    want.set_nw_proto(0xff);
    want.set_tp_dst(0xfe00);
    want.set_nw_frag(FRAG_ANY);
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(2)]);
}

#[test]
fn rewritten_field_seen_by_resubmit_adds_no_mask_bits() {
    // table 0: ip -> mod_nw_dst:10.0.0.1, resubmit(,1); table 1 routes on nw_dst.
    let t = tables(vec![
        rule(
            0,
            10,
            ip(),
            vec![
                Action::Set(SetField::NwDst(Ipv4Addr::new(10, 0, 0, 1))),
                Action::Resubmit(Resubmit { in_port: None, table: Some(1) }),
            ],
        ),
        rule(1, 20, Match { nw_dst: Some(pfx([10, 0, 0, 1], 32)), ..ip() }, vec![Action::Output(2)]),
        rule(1, 0, Match::default(), vec![Action::Output(3)]),
    ]);
    let p = key(1, &udp_frame([1, 2, 3, 4], 1, 2, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.mask, l3_mask());
    assert_eq!(x.actions, vec![DpAction::SetIpv4Dst(Ipv4Addr::new(10, 0, 0, 1)), DpAction::Output(2)]);
    assert_eq!(x.trace.len(), 2);
    assert_eq!(x.trace[1].table, 1);
}

#[test]
fn dec_ttl_reads_which_side_of_one_the_ttl_is_and_output_to_ingress_is_dropped() {
    let t =
        tables(vec![rule(0, 10, ip(), vec![Action::DecTtl, Action::Output(1), Action::Output(2), Action::Output(7)])]);
    let p = key(1, &udp_frame([1, 2, 3, 4], 1, 2, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    // TTL 64: the top two bits prove "TTL >= 2" for every TTL 64..=127.
    let mut want = l3_mask();
    want.set_nw_ttl(0xc0);
    assert_eq!(x.mask, want);
    // output:1 is the ingress port and port 7 is not on the bridge.
    assert_eq!(x.actions, vec![DpAction::DecTtl, DpAction::Output(2)]);
}

/// OVS's compose_dec_ttl (ofproto-dpif-xlate.c): at TTL 0 or 1 it returns "stop
/// processing for current table": the rest of that rule's actions do not run, but a
/// rule that resubmitted to the table continues with its next action. At top level
/// the actions before dec_ttl stay.
#[test]
fn dec_ttl_exception_stops_only_the_current_table() {
    let t = tables(vec![
        rule(
            0,
            10,
            ip(),
            vec![Action::Output(3), Action::Resubmit(Resubmit { in_port: None, table: Some(1) }), Action::Output(2)],
        ),
        rule(1, 10, ip(), vec![Action::DecTtl, Action::Output(1), Action::GotoTable(2)]),
        rule(2, 10, ip(), vec![Action::Output(1)]),
    ]);
    let mut f = udp_frame([1, 2, 3, 4], 1, 2, 0);
    for ttl in [0u8, 1] {
        f[22] = ttl;
        let x = translate(&t, &MacTable::default(), &key(9, &f), NOW);
        assert_eq!(x.actions, vec![DpAction::Output(3), DpAction::Output(2)], "TTL {ttl}");
        let mut want = l3_mask();
        want.set_nw_ttl(0xfe);
        assert_eq!(x.mask, want, "TTL {ttl}");
    }
    f[22] = 2;
    let x = translate(&t, &MacTable::default(), &key(9, &f), NOW);
    assert_eq!(
        x.actions,
        vec![DpAction::Output(3), DpAction::DecTtl, DpAction::Output(1), DpAction::Output(1), DpAction::Output(2)]
    );
    // Top level: the exception ends table 0's actions; the output before it stays.
    let t = tables(vec![rule(0, 10, ip(), vec![Action::Output(3), Action::DecTtl, Action::Output(2)])]);
    f[22] = 1;
    let x = translate(&t, &MacTable::default(), &key(9, &f), NOW);
    assert_eq!(x.actions, vec![DpAction::Output(3)]);
}

/// An IPv4 frame whose header the key cannot parse has TTL 0 in the key: OVS takes the
/// dec_ttl exception (drops), and so must ferrovs, rather than forward it.
#[test]
fn dec_ttl_on_an_unparsable_ip_header_is_the_exception() {
    let t = tables(vec![rule(0, 10, ip(), vec![Action::DecTtl, Action::Output(2)])]);
    let mut f = udp_frame([1, 2, 3, 4], 1, 2, 0);
    f[14] = 0x44; // IHL 4: not a valid IPv4 header
    let k = ferrovs_flowcache::extract::extract(&f, 1);
    assert_eq!((k.dl_type(), k.nw_ttl()), (ethertype::IPV4, 0));
    let x = translate(&t, &MacTable::default(), &k, NOW);
    assert_eq!(x.actions, vec![]);
    // A valid header with TTL 64 is forwarded.
    let k = ferrovs_flowcache::extract::extract(&udp_frame([1, 2, 3, 4], 1, 2, 0), 1);
    assert_eq!(translate(&t, &MacTable::default(), &k, NOW).actions, vec![DpAction::DecTtl, DpAction::Output(2)]);
}

#[test]
fn mod_vlan_vid_pushes_on_untagged_and_reads_only_the_tag_bit() {
    let t = tables(vec![rule(0, 10, Match::default(), vec![Action::ModVlanVid(10), Action::All])]);
    let p = key(2, &udp_frame([1, 2, 3, 4], 1, 2, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let mut want = base_mask();
    want.set_vlan_tci(0, VLAN_PRESENT);
    assert_eq!(x.mask, want);
    assert_eq!(
        x.actions,
        vec![
            DpAction::PushVlan { tpid: ethertype::VLAN, tci: VLAN_PRESENT | 10 },
            DpAction::Output(1),
            DpAction::Output(3)
        ]
    );
    let p = key(2, &vlan(20, &udp_frame([1, 2, 3, 4], 1, 2, 0)));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.actions[0], DpAction::SetVlanVid(10));
    // Already VID 10: OVS commits no change, so the tag (its DEI bit included) is left
    // as it is. The decision reads the VID.
    let p = key(2, &vlan(10, &udp_frame([1, 2, 3, 4], 1, 2, 0)));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.actions, vec![DpAction::Output(1), DpAction::Output(3)]);
    assert_eq!(x.mask.vlan_tci(0), VLAN_PRESENT | 0x0fff);
}

/// VID/PCP writes are committed at the next output, comparing only the final TCI with the
/// packet's (OVS's `commit_vlan_action`): a tag set to another value and back is not
/// rewritten (its DEI bit stays); one left changed is rewritten once, after the edits
/// that came before the output; after an output the packet's tag is the new base.
#[test]
fn vlan_writes_are_committed_at_the_output_against_the_final_tci() {
    let back = vec![Action::ModVlanVid(20), Action::ModVlanPcp(3), Action::ModVlanVid(10), Action::ModVlanPcp(0)];
    let t = tables(vec![rule(0, 10, Match::default(), [back, vec![Action::Output(2)]].concat())]);
    let p = key(1, &vlan(10, &udp_frame([1, 2, 3, 4], 1, 2, 0)));
    assert_eq!(translate(&t, &MacTable::default(), &p, NOW).actions, vec![DpAction::Output(2)]);
    // VID 11 goes to 20 and back to 10: rewritten once, to 10.
    let p11 = key(1, &vlan(11, &udp_frame([1, 2, 3, 4], 1, 2, 0)));
    let x = translate(&t, &MacTable::default(), &p11, NOW);
    assert_eq!(x.actions, vec![DpAction::SetVlanVid(10), DpAction::Output(2)]);

    let t = tables(vec![rule(
        0,
        10,
        Match::default(),
        vec![
            Action::ModVlanVid(20),
            Action::Set(SetField::DlSrc([2, 0, 0, 0, 0, 9])),
            Action::Output(2),
            Action::ModVlanVid(10),
            Action::Output(3),
        ],
    )]);
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(
        x.actions,
        vec![
            DpAction::SetEthSrc([2, 0, 0, 0, 0, 9]),
            DpAction::SetVlanVid(20),
            DpAction::Output(2),
            DpAction::SetVlanVid(10),
            DpAction::Output(3)
        ]
    );
}

#[test]
fn equal_priority_overlap_first_rule_wins_and_identical_rule_replaces() {
    let t = tables(vec![
        rule(0, 10, ip(), vec![Action::Output(2)]),
        rule(0, 10, udp(), vec![Action::Output(3)]),
        rule(0, 10, ip(), vec![Action::Output(1), Action::Output(2)]),
    ]);
    let p = key(3, &udp_frame([1, 2, 3, 4], 1, 2, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.actions, vec![DpAction::Output(1), DpAction::Output(2)]);
    assert_eq!(t.source_index(x.rules[0]), 2);
}

#[test]
fn normal_learns_floods_unknown_and_forwards_known() {
    let t = tables(vec![rule(0, 0, Match::default(), vec![Action::Normal])]);
    let mut macs = MacTable::default();
    let p = key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let x = translate(&t, &macs, &p, NOW);
    let mut want = base_mask();
    want.set_vlan_tci(0, VLAN_PRESENT | 0x0fff);
    want.set_dl_dst_u64(0xffff_ffff_ffff);
    want.set_dl_src_u64(0xffff_ffff_ffff);
    // Untagged: dl_type tells a frame with a partial tag (dropped) from a plain one.
    want.set_dl_type(0xffff);
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(2), DpAction::Output(3)], "unknown dst: flood but not to ingress");
    let learn = x.learns[0];
    assert_eq!(x.learns, vec![MacLearn { vlan: 0, mac: SRC, port: 1 }]);
    assert_eq!(x.mac_deps.len(), 1);

    // The reply, from DST on port 3, is forwarded to port 1 only.
    assert_eq!(macs.learn(&learn, NOW).outcome, LearnOutcome::New);
    let reply = key(3, &udp_frame_macs(SRC, DST, [10, 0, 0, 2], [10, 0, 0, 1]));
    let y = translate(&t, &macs, &reply, NOW);
    assert_eq!(y.actions, vec![DpAction::Output(1)]);

    // Revalidation after SRC moves to port 2: the reply's megaflow gets new actions.
    assert_eq!(macs.learn(&MacLearn { port: 2, ..learn }, NOW).outcome, LearnOutcome::Moved { from: 1 });
    let r = revalidate(&t, &macs, NOW, &reply, &y.mask, &y.actions);
    assert_eq!(r.verdict, Verdict::Replace(vec![DpAction::Output(2)]));
    // After aging out, it floods again.
    let later = NOW + MacTable::DEFAULT_AGING;
    let r = revalidate(&t, &macs, later, &reply, &y.mask, &y.actions);
    assert_eq!(r.verdict, Verdict::Replace(vec![DpAction::Output(1), DpAction::Output(2)]));

    // Broadcast floods; the VLAN is part of the decision.
    let b = key(2, &vlan(10, &udp_frame_macs([0xff; 6], SRC, [10, 0, 0, 1], [10, 0, 0, 255])));
    let z = translate(&t, &macs, &b, NOW);
    assert_eq!(z.actions, vec![DpAction::Output(1), DpAction::Output(3)]);
    assert_eq!(z.learns.iter().map(|l| l.vlan).collect::<Vec<_>>(), vec![10]);
}

/// OVS's `normal` writes the MAC table before it looks the destination up, so a frame
/// sent to its own source address goes nowhere, and a second `normal` of the same
/// translation (here in VLAN 0, behind a pushed tag) sees what the first (VLAN 10) learned
/// about it, even with an empty table. Both learnings are returned, in order.
#[test]
fn normal_sees_what_an_earlier_normal_of_the_same_packet_learned() {
    let t = flows("in_port=1,actions=output:2,mod_dl_dst:02:00:00:00:00:01,normal,push_vlan:0x8100,normal");
    let k = key(1, &vlan(10, &udp_frame([10, 0, 0, 2], 53, 53, 0)));
    let x = translate(&t, &MacTable::default(), &k, NOW);
    assert_eq!(x.actions, vec![DpAction::Output(2)], "{:?}", x.actions);
    let learned = |vlan| MacLearn { vlan, mac: SRC, port: 1 };
    assert_eq!(x.learns, vec![learned(10), learned(0)]);
}

#[test]
fn revalidation_keeps_replaces_or_deletes() {
    let old = tables(vec![
        rule(0, 100, Match { nw_dst: Some(pfx([10, 0, 0, 0], 8)), ..ip() }, vec![Action::Output(2)]),
        rule(0, 0, Match::default(), vec![Action::Output(3)]),
    ]);
    let macs = MacTable::default();
    let a = key(1, &udp_frame([192, 168, 1, 1], 1, 2, 0));
    let b = key(1, &udp_frame([10, 1, 1, 1], 1, 2, 0));
    let ta = translate(&old, &macs, &a, NOW);
    let tb = translate(&old, &macs, &b, NOW);

    // New version: a /16 inside 10/8 with another output, and the default now drops.
    let new = tables(vec![
        rule(0, 100, Match { nw_dst: Some(pfx([10, 0, 0, 0], 8)), ..ip() }, vec![Action::Output(2)]),
        rule(0, 116, Match { nw_dst: Some(pfx([10, 2, 0, 0], 16)), ..ip() }, vec![Action::Output(1)]),
        rule(0, 0, Match::default(), vec![]),
    ]);
    // 192.168.1.1's megaflow (nw_dst/1) is still precise enough: only the actions change.
    let ra = revalidate(&new, &macs, NOW, &a.masked(&ta.mask), &ta.mask, &ta.actions);
    assert_eq!(ra.verdict, Verdict::Replace(vec![]));
    // 10.1.1.1's megaflow (nw_dst/8) would cover 10.2/16 packets: delete it.
    let rb = revalidate(&new, &macs, NOW, &b.masked(&tb.mask), &tb.mask, &tb.actions);
    assert_eq!(rb.verdict, Verdict::Delete);
    // Unchanged rules: keep.
    let rk = revalidate(&old, &macs, NOW, &b, &tb.mask, &tb.actions);
    assert_eq!(rk.verdict, Verdict::Keep);
}

#[test]
fn resubmit_loop_is_cut_and_drops() {
    let t = tables(vec![rule(
        0,
        1,
        Match::default(),
        vec![Action::Output(2), Action::Resubmit(Resubmit { in_port: None, table: Some(0) })],
    )]);
    let p = key(1, &arp_frame());
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.error, Some(XlateError::TooDeep));
    assert!(x.actions.is_empty());
}

#[test]
fn table_miss_in_resubmit_continues_and_goto_runs_after_the_actions() {
    let t = tables(vec![
        rule(
            0,
            1,
            Match::default(),
            vec![Action::GotoTable(2), Action::Resubmit(Resubmit { in_port: None, table: Some(1) }), Action::Output(3)],
        ),
        rule(2, 1, Match::default(), vec![Action::Output(2)]),
    ]);
    let p = key(1, &arp_frame());
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.actions, vec![DpAction::Output(3), DpAction::Output(2)]);
    assert_eq!(
        x.trace.iter().map(|s| (s.table, s.rule.is_some())).collect::<Vec<_>>(),
        vec![(0, true), (1, false), (2, true)]
    );
}

// ---- Frames and a minimal parser (Ethernet, 802.1Q, IPv4, UDP, ARP) ----

const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn udp_frame(dst_ip: [u8; 4], sport: u16, dport: u16, frag_field: u16) -> Vec<u8> {
    let mut f = udp_frame_macs(DST, SRC, [10, 0, 0, 1], dst_ip);
    f[20..22].copy_from_slice(&frag_field.to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f
}

fn udp_frame_macs(dst: [u8; 6], src: [u8; 6], src_ip: [u8; 4], dst_ip: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    // IPv4: version/IHL, TOS, total length 46, id, flags/frag, TTL 64, UDP, checksum 0.
    f.extend_from_slice(&[0x45, 0x00, 0x00, 0x2e, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00]);
    f.extend_from_slice(&src_ip);
    f.extend_from_slice(&dst_ip);
    // UDP: ports 1000 -> 2000, length 26, checksum 0, then 18 bytes of payload.
    f.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0x00, 0x1a, 0x00, 0x00]);
    f.extend_from_slice(&[0u8; 18]);
    f
}

fn arp_frame() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01]);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&[10, 0, 0, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 0, 0, 2]);
    f
}

fn vlan(vid: u16, frame: &[u8]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Parses the frames built above into a flow key (enough of OVS's flow extraction for
/// these tests; the real parser lives in the fast path).
fn key(in_port: u32, f: &[u8]) -> FlowKey {
    key_with_vlan_limit(in_port, f, 1)
}

/// [`key`] parsing up to `vlan_limit` tags.
fn key_with_vlan_limit(in_port: u32, f: &[u8], vlan_limit: usize) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_in_port(in_port);
    k.set_dl_dst(f[0..6].try_into().unwrap());
    k.set_dl_src(f[6..12].try_into().unwrap());
    let mut at = 12;
    let mut tags = 0;
    while be16(f, at) == ethertype::VLAN && tags < vlan_limit {
        k.set_vlan_tci(tags, be16(f, at + 2) | VLAN_PRESENT);
        tags += 1;
        at += 4;
    }
    let dl_type = be16(f, at);
    k.set_dl_type(dl_type);
    at += 2;
    match dl_type {
        ethertype::IPV4 => {
            let ihl = (f[at] & 0x0f) as usize * 4;
            k.set_nw_tos(f[at + 1]);
            let frag = be16(f, at + 6);
            if frag & 0x3fff != 0 {
                k.set_nw_frag(FRAG_ANY | if frag & 0x1fff != 0 { ferrovs_flowcache::key::FRAG_LATER } else { 0 });
            }
            k.set_nw_ttl(f[at + 8]);
            k.set_nw_proto(f[at + 9]);
            k.set_nw_src_u32(u32::from_be_bytes(f[at + 12..at + 16].try_into().unwrap()));
            k.set_nw_dst_u32(u32::from_be_bytes(f[at + 16..at + 20].try_into().unwrap()));
            if k.nw_proto() == ipproto::UDP && frag & 0x1fff == 0 {
                k.set_tp_src(be16(f, at + ihl));
                k.set_tp_dst(be16(f, at + ihl + 2));
            }
        }
        ethertype::ARP => {
            k.set_nw_proto(be16(f, at + 6) as u8);
            k.set_arp_sha(f[at + 8..at + 14].try_into().unwrap());
            k.set_nw_src_u32(u32::from_be_bytes(f[at + 14..at + 18].try_into().unwrap()));
            k.set_arp_tha(f[at + 18..at + 24].try_into().unwrap());
            k.set_nw_dst_u32(u32::from_be_bytes(f[at + 24..at + 28].try_into().unwrap()));
        }
        _ => {}
    }
    k
}

// ---- Rule sets written in ovs-ofctl syntax (parsed by ferrovs-config) ----

fn flows(text: &str) -> RuleTables {
    RuleTables::new(ferrovs_config::parse_flows(text).expect("valid flows"), PORTS.to_vec()).unwrap()
}

#[test]
fn acl_over_routes_in_ofctl_syntax() {
    let t = flows(
        "priority=3000,udp,nw_dst=20.1.0.0/16,tp_dst=53,actions=output:1
         priority=2000,udp,tp_dst=53,actions=output:2
         priority=108,ip,nw_dst=20.0.0.0/8,actions=output:3
         priority=0,actions=drop",
    );
    // UDP to 21.0.0.1:53 hits the priority-2000 rule. The priority-3000 rule is
    // disproved by nw_dst: 21 vs 20 first differ in the last bit of the first octet.
    let p = key(3, &udp_frame([21, 0, 0, 1], 999, 53, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let mut want = l3_mask();
    want.set_nw_proto(0xff);
    want.set_nw_frag(FRAG_ANY);
    want.set_tp_dst(0xffff);
    want.set_nw_dst_u32(0xff00_0000);
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(2)]);

    // UDP to 20.1.2.3:53 hits the ACL rule: exactly its bits.
    let p = key(3, &udp_frame([20, 1, 2, 3], 999, 53, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    want.set_nw_dst_u32(0xffff_0000);
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(1)]);

    // UDP to 20.9.9.9:80 falls through to the /8 route. Port 80 vs 53 first differ in
    // bit 6 (0x0040); 20.9 vs 20.1 at bit 19 (0x0008 of the second octet), but the
    // ACL rule is already disproved by the port prefix, which the priority-2000 rule
    // needed anyway; the route needs /8.
    let p = key(1, &udp_frame([20, 9, 9, 9], 999, 80, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    want.set_tp_dst(0xffc0);
    want.set_nw_dst_u32(0xff00_0000);
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(3)]);
}

#[test]
fn ipv6_prefix_miss_and_arp_target_match() {
    let t = flows(
        "priority=10,ipv6,ipv6_dst=2001:db8::/32,actions=output:2
         priority=10,arp,arp_tpa=10.0.0.2,actions=output:3
         priority=0,actions=drop",
    );
    let mut p = FlowKey::ZERO;
    p.set_in_port(1);
    p.set_dl_type(ethertype::IPV6);
    p.set_nw_proto(ipproto::UDP);
    p.set_ipv6_dst("3001::1".parse().unwrap());
    let x = translate(&t, &MacTable::default(), &p, NOW);
    // 0x2001 vs 0x3001: the first differing bit is the fourth; the ARP rule fails on
    // dl_type, which the IPv6 rule needed anyway.
    let mut want = l3_mask();
    want.set_ipv6_dst_u128(0xf000u128 << 112);
    assert_eq!(x.mask, want);
    assert!(x.actions.is_empty());

    let a = key(1, &arp_frame());
    let x = translate(&t, &MacTable::default(), &a, NOW);
    let mut want = l3_mask();
    want.set_nw_dst_u32(u32::MAX);
    assert_eq!(x.mask, want);
    assert_eq!(x.actions, vec![DpAction::Output(3)]);
}

#[test]
fn pop_then_match_on_the_inner_tag() {
    // table 0 strips the outer tag and resubmits; table 1 matches the VLAN, which is
    // now the packet's inner tag: the mask must cover the inner VID, not the outer.
    let t = flows(
        "table=0,priority=1,actions=strip_vlan,resubmit(,1)
         table=1,priority=5,dl_vlan=20,actions=output:2
         table=1,priority=0,actions=output:3",
    );
    let inner = vlan(20, &udp_frame([1, 2, 3, 4], 1, 2, 0));
    // With vlan-limit 2 the key holds both tags.
    let p = key_with_vlan_limit(1, &vlan(30, &inner), 2);
    assert_eq!(p.vlan_tci(1) & 0x0fff, 20);
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.actions, vec![DpAction::PopVlan, DpAction::Output(2)]);
    assert_eq!(x.mask.vlan_tci(0), VLAN_PRESENT, "outer tag: only 'is tagged' (for strip_vlan)");
    assert_eq!(x.mask.vlan_tci(1), VLAN_PRESENT | 0x0fff, "inner tag: present bit and VID");
    // With the default vlan-limit 1 (OVS's), the key never saw the inner tag: after the
    // pop it reads "no tag" and dl_type 0x8100, so dl_vlan=20 does not match.
    let p = key(1, &vlan(30, &inner));
    assert_eq!((p.vlan_tci(1), p.dl_type()), (0, ethertype::VLAN));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.actions, vec![DpAction::PopVlan, DpAction::Output(3)]);
}

/// vlan-limit 1: behind a second tag nothing is IP, so ip/udp rules do not match and IP
/// edits are not emitted (OVS 3.1 with its default `other_config:vlan-limit`).
#[test]
fn ip_rules_do_not_match_behind_a_second_tag() {
    let t = flows(
        "priority=5,udp,actions=mod_nw_tos:8,output:2
         priority=0,actions=output:3",
    );
    let one = vlan(30, &udp_frame([1, 2, 3, 4], 1, 2, 0));
    let x = translate(&t, &MacTable::default(), &key(1, &one), NOW);
    assert_eq!(x.actions, vec![DpAction::SetIpDscp(2), DpAction::Output(2)]);
    let two = vlan(40, &one);
    let x = translate(&t, &MacTable::default(), &key(1, &two), NOW);
    assert_eq!(x.actions, vec![DpAction::Output(3)]);
    // The real extraction agrees.
    assert_eq!(ferrovs_flowcache::extract::extract(&two, 1), key(1, &two));
}

/// ferrovs keeps this difference from OVS 3.1 (docs/OVS-DIFFERENCES.md): IPv4 with
/// protocol 0 is IPv4, so mod_nw_* and dec_ttl apply. OVS's commit_set_nw_action and
/// commit_set_port_action return early when `nw_proto` is 0, silently skipping them.
#[test]
fn ipv4_protocol_zero_is_still_rewritten() {
    let t = flows("priority=5,ip,actions=mod_nw_src:9.9.9.9,mod_nw_tos:4,dec_ttl,output:2");
    let mut f = udp_frame([1, 2, 3, 4], 1, 2, 0);
    f[23] = 0; // protocol 0 (IPv6 hop-by-hop's number, meaningless in IPv4)
    let k = ferrovs_flowcache::extract::extract(&f, 1);
    assert_eq!((k.dl_type(), k.nw_proto(), k.nw_ttl()), (ethertype::IPV4, 0, 64));
    let x = translate(&t, &MacTable::default(), &k, NOW);
    assert_eq!(
        x.actions,
        vec![
            DpAction::SetIpv4Src(Ipv4Addr::new(9, 9, 9, 9)),
            DpAction::SetIpDscp(1),
            DpAction::DecTtl,
            DpAction::Output(2)
        ]
    );
}

/// OVS's xlate_normal drops "a packet with partial VLAN tag": a VLAN EtherType with no
/// tag parsed (the tag was cut short, or a pop left the key's tag slot empty in front
/// of a tag beyond the vlan-limit). Nothing is learned.
#[test]
fn normal_drops_a_partial_vlan_tag() {
    let t = flows("priority=0,actions=normal");
    let tagged = vlan(10, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let cut = &tagged[..16];
    let k = ferrovs_flowcache::extract::extract(cut, 1);
    assert_eq!((k.dl_type(), k.vlan_tci(0)), (ethertype::VLAN, 0));
    let x = translate(&t, &MacTable::default(), &k, NOW);
    assert_eq!((x.actions.len(), x.learns.len()), (0, 0));
    // Two tags, strip_vlan, normal: with vlan-limit 1 the key is left with no tag and
    // dl_type 0x8100, which normal drops too.
    let t = flows("priority=0,actions=strip_vlan,normal");
    let two = vlan(20, &tagged);
    let x = translate(&t, &MacTable::default(), &key(1, &two), NOW);
    assert_eq!(x.actions, vec![], "dropped (the pop waits for an output that never comes)");
    // One tag: forwarded (flooded).
    let x = translate(&t, &MacTable::default(), &key(1, &tagged), NOW);
    assert_eq!(x.actions, vec![DpAction::PopVlan, DpAction::Output(2), DpAction::Output(3)]);
}

/// RARP (0x8035) carries the ARP header, and `rarp` rules match its fields (OVS's
/// `is_arp` covers both EtherTypes).
#[test]
fn rarp_rules_match_rarp_frames() {
    let t = flows(
        "priority=5,rarp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/24,actions=output:2
         priority=4,arp,actions=output:3
         priority=0,actions=drop",
    );
    let mut f = arp_frame();
    f[12..14].copy_from_slice(&ethertype::RARP.to_be_bytes());
    let k = ferrovs_flowcache::extract::extract(&f, 1);
    assert_eq!((k.dl_type(), k.nw_proto(), k.nw_src()), (ethertype::RARP, 1, Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(translate(&t, &MacTable::default(), &k, NOW).actions, vec![DpAction::Output(2)]);
    let k = ferrovs_flowcache::extract::extract(&arp_frame(), 1);
    assert_eq!(translate(&t, &MacTable::default(), &k, NOW).actions, vec![DpAction::Output(3)]);
    // Another opcode: the rarp rule misses and so does the arp one.
    f[21] = 3;
    let k = ferrovs_flowcache::extract::extract(&f, 1);
    assert_eq!(translate(&t, &MacTable::default(), &k, NOW).actions, vec![]);
}

/// OVS's `output_normal` rebuilds the outer tag from VID and PCP and does not send a tag
/// whose TCI is then 0 (`xvlan_put`): a VID 0, PCP 0 tag (received, pushed or set) leaves
/// `normal` untagged, and the actions after `normal` see it again (pushed back with TCI
/// 0). A VID 0 tag with a priority is kept. The megaflow reads the PCP only for VID 0.
#[test]
fn normal_sends_a_vid_0_pcp_0_tag_untagged() {
    let t = flows("priority=0,actions=normal");
    let mut f = vlan(0, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let x = translate(&t, &MacTable::default(), &key(1, &f), NOW);
    assert_eq!(x.actions, vec![DpAction::PopVlan, DpAction::Output(2), DpAction::Output(3)]);
    assert_eq!(x.mask.vlan_tci(0), 0xffff, "presence, VID and PCP");
    f[14] = 0x20; // PCP 1
    let x = translate(&t, &MacTable::default(), &key(1, &f), NOW);
    assert_eq!(x.actions, vec![DpAction::Output(2), DpAction::Output(3)]);
    let x = translate(&t, &MacTable::default(), &key(1, &vlan(10, &udp_frame([10, 0, 0, 1], 1, 2, 0))), NOW);
    assert_eq!((x.actions.len(), x.mask.vlan_tci(0)), (2, VLAN_PRESENT | 0x0fff), "VID 10: PCP not read");
    // Pushed by mod_vlan_vid:0, with an output after normal: the tag comes back for it.
    let t = flows("priority=0,actions=mod_vlan_vid:0,normal,output:1");
    let x = translate(&t, &MacTable::default(), &key(2, &udp_frame([10, 0, 0, 1], 1, 2, 0)), NOW);
    let tag0 = DpAction::PushVlan { tpid: ethertype::VLAN, tci: VLAN_PRESENT };
    // Put back with the TPID it had (OVS keeps it in the flow; ferrovs's datapath takes
    // it from the tag the pop removed: an 0x88a8 tag comes back as 0x88a8).
    let back = DpAction::PushVlan { tpid: TPID_OF_LAST_POP, tci: VLAN_PRESENT };
    assert_eq!(
        x.actions,
        vec![tag0, DpAction::PopVlan, DpAction::Output(1), DpAction::Output(3), back, DpAction::Output(1)]
    );
    // Learned on the input port: no output, no pop.
    let mut macs = MacTable::default();
    macs.learn(&MacLearn { vlan: 0, mac: DST, port: 1 }, NOW);
    let t = flows("priority=0,actions=normal");
    let k = key(1, &vlan(0, &udp_frame([10, 0, 0, 1], 1, 2, 0)));
    assert_eq!(translate(&t, &macs, &k, NOW).actions, vec![]);
}

/// OVS's `xvlan_put` rebuilds every tag level, not only the outer one, and leaves out
/// each whose TCI is 0: a VID 0, PCP 0 tag behind a pushed VID 5 tag is not sent by
/// `normal` (both tags popped, the outer one pushed back with its TPID and DEI cleared),
/// and both come back, each with its own TPID, for the actions after `normal`.
#[test]
fn normal_sends_an_inner_vid_0_pcp_0_tag_without_it() {
    let t = flows("priority=0,actions=push_vlan:0x88a8,mod_vlan_vid:5,normal,output:1");
    let f = vlan(0, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let x = translate(&t, &MacTable::default(), &key(2, &f), NOW);
    let outer = VLAN_PRESENT | 5;
    assert_eq!(
        x.actions,
        vec![
            DpAction::PushVlan { tpid: 0x88a8, tci: outer },
            DpAction::PopVlan,
            DpAction::PopVlan,
            DpAction::PushVlan { tpid: TPID_OF_SECOND_LAST_POP, tci: outer },
            DpAction::Output(1),
            DpAction::Output(3),
            DpAction::PopVlan,
            DpAction::PushVlan { tpid: TPID_OF_SECOND_LAST_POP, tci: VLAN_PRESENT },
            DpAction::PushVlan { tpid: TPID_OF_LAST_POP, tci: outer },
            DpAction::Output(1),
        ]
    );
    // The received tag decided it: its presence, VID and PCP are in the mask.
    assert_eq!(x.mask.vlan_tci(0), VLAN_PRESENT | 0xefff);
    // Nothing after normal: nothing put back.
    let t = flows("priority=0,actions=push_vlan:0x8100,mod_vlan_vid:5,normal");
    let x = translate(&t, &MacTable::default(), &key(2, &f), NOW);
    assert_eq!(x.actions.len(), 6, "{:?}", x.actions);
    // An inner tag with a priority is sent.
    let mut g = f.clone();
    g[14] = 0x20;
    let x = translate(&t, &MacTable::default(), &key(2, &g), NOW);
    let push = DpAction::PushVlan { tpid: 0x8100, tci: VLAN_PRESENT | 5 };
    assert_eq!(x.actions, [push, DpAction::Output(1), DpAction::Output(3)]);
}

/// A tag popped and another pushed in its place are compared at the commit, as OVS's
/// `commit_vlan_action` compares the flow's tags with the packet's: one pop and push
/// become a `ReplaceVlan`, which the datapath skips for a tag equal in TPID, VID and PCP
/// (DEI kept) and does otherwise (DEI cleared). A pop with nothing pushed back is a pop.
#[test]
fn a_tag_stripped_and_pushed_back_is_compared_at_the_commit() {
    let f = vlan(10, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let t = flows("priority=0,actions=strip_vlan,mod_vlan_vid:10,output:2");
    let x = translate(&t, &MacTable::default(), &key(1, &f), NOW);
    let same = DpAction::ReplaceVlan { tpid: 0x8100, tci: VLAN_PRESENT | 10 };
    assert_eq!(x.actions, vec![same, DpAction::Output(2)]);
    // Pushed, then its VID and PCP set: the final tag is the one compared.
    let t = flows("priority=0,actions=strip_vlan,push_vlan:0x88a8,mod_vlan_vid:7,mod_vlan_pcp:2,output:2");
    let x = translate(&t, &MacTable::default(), &key(1, &f), NOW);
    let tci = VLAN_PRESENT | 0x4007;
    assert_eq!(x.actions, vec![DpAction::ReplaceVlan { tpid: 0x88a8, tci }, DpAction::Output(2)]);
    // An output between the pop and the push sees the frame without the tag.
    let t = flows("priority=0,actions=strip_vlan,output:3,mod_vlan_vid:10,output:2");
    let x = translate(&t, &MacTable::default(), &key(1, &f), NOW);
    let push = DpAction::PushVlan { tpid: 0x8100, tci: VLAN_PRESENT | 10 };
    assert_eq!(x.actions, vec![DpAction::PopVlan, DpAction::Output(3), push, DpAction::Output(2)]);
}

/// A tag a group bucket popped comes back for the rule's later actions with the TPID it
/// had (the one the datapath read from the received frame), not 0x8100.
#[test]
fn a_tag_a_bucket_popped_comes_back_with_its_tpid() {
    use ferrovs_config::{Group, GroupKind};
    let g = Group { kind: GroupKind::Indirect, buckets: vec![vec![Action::StripVlan, Action::Output(2)]] };
    let t = with_groups(vec![rule(0, 1, Match::default(), vec![Action::Group(1), Action::Output(3)])], &[(1, g)]);
    let p = key(1, &vlan(10, &udp_frame([198, 18, 0, 2], 1, 2, 0)));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let back = DpAction::PushVlan { tpid: TPID_OF_RECEIVED_OUTER, tci: VLAN_PRESENT | 10 };
    assert_eq!(x.actions, vec![DpAction::PopVlan, DpAction::Output(2), back, DpAction::Output(3)]);
    // The same with `clone`.
    let t = tables(vec![rule(
        0,
        1,
        Match::default(),
        vec![Action::Clone(vec![Action::StripVlan, Action::Output(2)]), Action::Output(3)],
    )]);
    assert_eq!(translate(&t, &MacTable::default(), &p, NOW).actions, x.actions);
    // Popped and replaced by another tag in the copy: the received tag is put back over
    // it, with its TPID (`ReplaceVlan` of the received TPID).
    let t = tables(vec![rule(
        0,
        1,
        Match::default(),
        vec![Action::Clone(vec![Action::StripVlan, Action::ModVlanVid(10), Action::Output(2)]), Action::Output(3)],
    )]);
    let tci = VLAN_PRESENT | 10;
    let (replace, back) =
        (DpAction::ReplaceVlan { tpid: 0x8100, tci }, DpAction::ReplaceVlan { tpid: TPID_OF_RECEIVED_OUTER, tci });
    assert_eq!(
        translate(&t, &MacTable::default(), &p, NOW).actions,
        vec![replace, DpAction::Output(2), back, DpAction::Output(3)]
    );
    // A tag pushed before the copy and replaced in it by one of another TPID comes back
    // with the TPID of its push: the push waits for the output after the clone, the clone's
    // own tag is taken off again (OVS 3.1 runs the clone on a copy:
    // `clone(push_vlan(tpid=0x8100,vid=7,pcp=0),2),push_vlan(tpid=0x88a8,vid=5,pcp=0),3`).
    let t = flows(
        "in_port=1,actions=push_vlan:0x88a8,set_field:4101->vlan_vid,\
         clone(strip_vlan,push_vlan:0x8100,set_field:4103->vlan_vid,output:2),output:3",
    );
    let untagged = key(1, &udp_frame([198, 18, 0, 2], 1, 2, 0));
    let x = translate(&t, &MacTable::default(), &untagged, NOW);
    let (to2, to3) = (VLAN_PRESENT | 7, VLAN_PRESENT | 5);
    assert_eq!(
        x.actions,
        [
            DpAction::PushVlan { tpid: 0x8100, tci: to2 },
            DpAction::Output(2),
            DpAction::PopVlan,
            DpAction::PushVlan { tpid: 0x88a8, tci: to3 },
            DpAction::Output(3)
        ]
    );
}

fn with_groups(rules: Vec<Rule>, groups: &[(u32, ferrovs_config::Group)]) -> RuleTables {
    let mut t = tables(rules);
    t.groups = std::sync::Arc::new(groups.iter().cloned().collect());
    t
}

/// An `all` group runs every bucket on its own copy of the packet: a field a bucket
/// rewrote is set back before the next bucket (and the restore makes the mask read it).
#[test]
fn all_group_buckets_each_see_the_original_packet() {
    use ferrovs_config::{Group, GroupKind};
    let x_mac = [0x02, 0, 0, 0, 0, 0x99];
    let g = Group {
        kind: GroupKind::All,
        buckets: vec![vec![Action::Set(SetField::DlDst(x_mac)), Action::Output(2)], vec![Action::Output(3)]],
    };
    let t = with_groups(vec![rule(0, 1, Match::default(), vec![Action::Group(7)])], &[(7, g)]);
    let frame = udp_frame([198, 18, 0, 2], 1, 2, 0);
    let p = key(1, &frame);
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(
        x.actions,
        vec![DpAction::SetEthDst(x_mac), DpAction::Output(2), DpAction::SetEthDst(p.dl_dst()), DpAction::Output(3)]
    );
    let mut want = base_mask();
    want.set_dl_dst([0xff; 6]);
    assert_eq!(x.mask, want, "the restored dl_dst is the packet's");
    assert_eq!(x.error, None);
}

/// An `indirect` group runs its bucket; the rule's later actions see the packet as it
/// was before the group (a pushed tag is popped again). A group the bridge lacks does
/// nothing.
#[test]
fn indirect_group_runs_its_bucket_and_restores_the_tag() {
    use ferrovs_config::{Group, GroupKind};
    let g = Group { kind: GroupKind::Indirect, buckets: vec![vec![Action::ModVlanVid(10), Action::Output(2)]] };
    let t = with_groups(
        vec![
            rule(0, 2, udp(), vec![Action::Group(1), Action::Output(3)]),
            rule(0, 1, Match::default(), vec![Action::Group(99), Action::Output(2)]),
        ],
        &[(1, g)],
    );
    let p = key(1, &udp_frame([198, 18, 0, 2], 1, 2, 0));
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(
        x.actions,
        vec![
            DpAction::PushVlan { tpid: ethertype::VLAN, tci: VLAN_PRESENT | 10 },
            DpAction::Output(2),
            DpAction::PopVlan,
            DpAction::Output(3),
        ]
    );
    let p = key(1, &arp_frame());
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.actions, vec![DpAction::Output(2)], "group 99 does not exist");
}

/// Rules in `ovs-ofctl` syntax, as `ovs-ofctl -O OpenFlow13 add-flows` loads them.
fn of13_tables(lines: &[&str]) -> RuleTables {
    use ferrovs_config::openflow::{Version, convert::as_loaded};
    let rules = lines
        .iter()
        .map(|l| {
            as_loaded(ferrovs_config::parse_flow(l).unwrap_or_else(|e| panic!("{l}: {e}")), Version::Of13).unwrap()
        })
        .collect();
    tables(rules)
}

/// Both translators (classifier and linear scan) give `actions` with `mask`.
fn both_lookups(t: &RuleTables, p: &FlowKey, actions: &[DpAction], mask: &Mask) {
    use ferrovs_flowcache::xlate::{Lookup, translate_with};
    for lookup in [Lookup::Index, Lookup::LinearScan] {
        let x = translate_with(t, &MacTable::default(), p, NOW, lookup);
        assert_eq!(x.actions, actions, "{lookup:?}");
        assert_eq!(&x.mask, mask, "{lookup:?}");
    }
}

#[test]
fn a_register_loaded_by_an_earlier_table_selects_the_rule_and_costs_no_mask_bits() {
    let t = of13_tables(&[
        "actions=load:1->reg0[],resubmit(,1)",
        "table=1,priority=10,reg0=1,actions=output:2",
        "table=1,priority=5,reg0=2,actions=output:3",
        "table=1,priority=0,actions=drop",
    ]);
    let p = key(1, &udp_frame([192, 168, 1, 1], 1234, 80, 0));
    both_lookups(&t, &p, &[DpAction::Output(2)], &base_mask());
}

#[test]
fn a_rule_whose_registers_differ_needs_no_witness() {
    // The priority-100 rule matches the packet's nw_dst but not reg0: it fails for every
    // packet of the megaflow, so nw_dst stays out of the mask.
    let t = of13_tables(&[
        "actions=load:1->reg0[],resubmit(,1)",
        "table=1,priority=100,reg0=9,ip,nw_dst=10.0.0.0/8,actions=output:3",
        "table=1,priority=0,actions=output:2",
    ]);
    let p = key(1, &udp_frame([10, 1, 1, 1], 1234, 80, 0));
    both_lookups(&t, &p, &[DpAction::Output(2)], &base_mask());
    // Without the register condition the same rule costs nw_dst bits (and wins).
    let t = of13_tables(&["table=0,priority=100,ip,nw_dst=10.0.0.0/8,actions=output:3"]);
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(x.actions, vec![DpAction::Output(3)]);
    assert_ne!(x.mask, base_mask());
}

#[test]
fn a_register_moved_from_the_packet_puts_those_packet_bits_in_the_mask() {
    let t = of13_tables(&[
        "actions=move:NXM_OF_ETH_SRC[0..7]->NXM_NX_REG0[0..7],move:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15],resubmit(,1)",
        "table=1,priority=10,reg0=0x5/0xff,reg1=2,actions=output:3",
        "table=1,priority=5,reg1=1,actions=output:2",
    ]);
    let f = udp_frame_macs([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 5], [10, 0, 0, 1], [10, 0, 0, 2]);
    let mut mask = base_mask();
    mask.set_dl_src([0, 0, 0, 0, 0, 0xff]);
    both_lookups(&t, &key(2, &f), &[DpAction::Output(3)], &mask);
    both_lookups(&t, &key(1, &f), &[DpAction::Output(2)], &mask);
}

/// `resubmit(3,1)` looks table 1 up with in_port 3, but its rule's `move` reads the
/// packet's in_port: OVS restores the flow's in_port right after the lookup
/// (`rule_dpif_lookup_from_table`; against OVS:
/// `fixed_move_reads_the_packet_s_in_port_after_a_resubmit_to_another`).
#[test]
fn registers_survive_resubmit_and_in_port_reads_the_packet_s_after_a_resubmit_to_another() {
    let t = of13_tables(&[
        "actions=resubmit(3,1),resubmit(,2)",
        "table=1,in_port=3,actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG3[0..15]",
        "table=2,reg3=1,actions=output:2",
        "table=2,reg3=3,actions=output:3",
    ]);
    both_lookups(&t, &key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0)), &[DpAction::Output(2)], &base_mask());
}

/// A `load`/`move` into `in_port` changes the flow's in_port, as in OVS: an output to
/// the packet's own port is sent, one to the new in_port is skipped, `in_port` and
/// `flood` use the new one, and a group bucket's or `clone`'s change is undone after it.
#[test]
fn a_loaded_in_port_is_the_one_outputs_in_port_and_flood_see() {
    let p = key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let t = of13_tables(&["actions=load:3->NXM_OF_IN_PORT[],output:1,output:3,in_port"]);
    both_lookups(&t, &p, &[DpAction::Output(1), DpAction::Output(3)], &base_mask());
    let t = of13_tables(&["actions=move:NXM_NX_REG0[0..15]->NXM_OF_IN_PORT[],flood"]);
    both_lookups(&t, &p, &[DpAction::Output(1), DpAction::Output(2), DpAction::Output(3)], &base_mask());
    let t = of13_tables(&["actions=clone(load:2->NXM_OF_IN_PORT[],output:1),output:1,output:2"]);
    both_lookups(&t, &p, &[DpAction::Output(1), DpAction::Output(2)], &base_mask());
}

/// A packet-in reports the cookie of the rule whose action sent it (OVS's
/// `ctx->rule_cookie`): the caller's again after a `resubmit` returns, in a `clone`, from
/// `output:SRC` of CONTROLLER, the clone's rule's for the action set a `clone` runs (with
/// its table), the first rule's for the one the pipeline's end runs.
#[test]
fn a_packet_in_carries_the_cookie_of_the_rule_that_sent_it() {
    let p = key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let pin =
        |table, cookie| DpAction::Controller { in_port: 1, max_len: u16::MAX, reason: REASON_ACTION, table, cookie };
    let t = of13_tables(&[
        "cookie=0x1,actions=resubmit(,1),load:0xfffd->NXM_NX_REG0[0..15],output:NXM_NX_REG0[0..15],\
         clone(controller),write_actions(controller),goto_table:2",
        "table=1,cookie=0x2,actions=controller",
        "table=2,cookie=0x3,actions=clone(controller)",
    ]);
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let pins: Vec<DpAction> = x.actions.into_iter().filter(|a| !a.is_note()).collect();
    assert_eq!(pins, vec![pin(1, 2), pin(0, 1), pin(0, 1), pin(2, 3), pin(2, 3), pin(0, 1)]);
}

/// A packet-in's notes say what OVS's packet-in match reports of the flow: the registers
/// and the metadata that are not zero, and the in_port a `load` wrote (the action's own
/// in_port stays the ingress port, by which the daemon finds the bridge).
#[test]
fn a_packet_in_is_preceded_by_the_registers_metadata_and_in_port_it_reports() {
    use ferrovs_flowcache::actions::PacketInNote;
    let p = key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let t = of13_tables(&[
        "actions=load:5->NXM_NX_REG0[],load:3->NXM_OF_IN_PORT[],controller,write_metadata:0x10,goto_table:1",
        "table=1,actions=load:0->NXM_NX_REG0[],load:1->NXM_OF_IN_PORT[],controller",
    ]);
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let pin = |table| DpAction::Controller { in_port: 1, max_len: u16::MAX, reason: REASON_ACTION, table, cookie: 0 };
    assert_eq!(
        x.actions,
        vec![
            DpAction::PacketInNote(PacketInNote::Reg(0, 5)),
            DpAction::PacketInNote(PacketInNote::InPort(3)),
            pin(0),
            DpAction::PacketInNote(PacketInNote::Metadata(0x10)),
            pin(1),
        ]
    );
}

/// MPLS: a rule matches the first label stack entry's parts; writes rewrite just their
/// bits (no packet bit read for them), later tables see the written label, a `move` reads
/// the traffic class into the mask.
#[test]
fn mpls_entries_are_matched_and_rewritten_part_by_part() {
    let mut p = FlowKey::ZERO;
    p.set_in_port(1);
    p.set_dl_type(ethertype::MPLS);
    // Label 16, TC 5, bottom of stack, TTL 64.
    p.set_mpls_lse(16 << 12 | 5 << 9 | 1 << 8 | 64);
    let t = of13_tables(&[
        "mpls,mpls_label=16,actions=set_field:17->mpls_label,load:3->NXM_NX_MPLS_TTL[0..1],\
         move:OXM_OF_MPLS_TC[]->NXM_NX_REG0[0..2],resubmit(,1)",
        "table=1,mpls,mpls_label=17,reg0=5,actions=output:2",
        "table=1,priority=0,actions=drop",
    ]);
    let mut mask = l3_mask();
    mask.set_mpls_lse(0xffff_f000 | 0xe00);
    let actions = [
        DpAction::SetMplsLse { value: 17 << 12, mask: 0xffff_f000 },
        DpAction::SetMplsLse { value: 3, mask: 3 },
        DpAction::Output(2),
    ];
    both_lookups(&t, &p, &actions, &mask);
}

/// `output(port=P,max_len=N)` is an output of the first N bytes: none to the ingress port
/// or to `IN_PORT`, edits committed before it as before any output.
#[test]
fn output_trunc_is_an_output_of_the_head() {
    let p = key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let t = flows(
        "actions=output(port=2,max_len=100),output(port=1,max_len=64),output(port=IN_PORT,max_len=64),\
         mod_dl_dst:02:00:00:00:00:09,output(port=3,max_len=14)",
    );
    let x = translate(&t, &MacTable::default(), &p, NOW);
    assert_eq!(
        x.actions,
        vec![
            DpAction::OutputTrunc { port: 2, max_len: 100 },
            DpAction::SetEthDst([2, 0, 0, 0, 0, 9]),
            DpAction::OutputTrunc { port: 3, max_len: 14 },
        ]
    );
}

/// `OXM_OF_IN_PORT` holds the flow's in_port as an OpenFlow 1.1 number (LOCAL is
/// 0xfffffffe); a 32-bit value without an OpenFlow 1.0 form writes OFPP_NONE.
#[test]
fn the_oxm_in_port_is_the_in_port_in_openflow_11_numbers() {
    let p = key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let t = of13_tables(&[
        "actions=move:OXM_OF_IN_PORT[]->NXM_NX_REG0[],load:0xffff0000->OXM_OF_IN_PORT[],\
         move:OXM_OF_IN_PORT[]->NXM_NX_REG1[],load:0xfffffffe->OXM_OF_IN_PORT[],\
         move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15],load:3->OXM_OF_IN_PORT[],resubmit(,1)",
        "table=1,reg0=1,reg1=0xffffffff,reg2=0xfffe,actions=output:2,in_port",
        "table=1,priority=0,actions=drop",
    ]);
    both_lookups(&t, &p, &[DpAction::Output(2), DpAction::Output(3)], &base_mask());
}

/// A `load` into `vlan_tci` writes the whole outer TCI as OVS's flow holds it: with the
/// 0x1000 bit set it rewrites the VID and PCP (committed at the output) or pushes an
/// 0x8100 tag; without it the tag goes (and the bits stay for a later PCP write).
#[test]
fn a_loaded_vlan_tci_rewrites_pushes_or_removes_the_tag() {
    let untagged = key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let tagged = key(1, &vlan(10, &udp_frame([10, 0, 0, 1], 1, 2, 0)));
    let t = of13_tables(&["actions=load:0x3005->NXM_OF_VLAN_TCI[],output:2"]);
    let x = translate(&t, &MacTable::default(), &untagged, NOW);
    assert_eq!(x.actions, vec![DpAction::PushVlan { tpid: ethertype::VLAN, tci: 0x3005 }, DpAction::Output(2)]);
    let x = translate(&t, &MacTable::default(), &tagged, NOW);
    assert_eq!(x.actions, vec![DpAction::SetVlanVid(5), DpAction::SetVlanPcp(1), DpAction::Output(2)]);
    let t = of13_tables(&["actions=load:0->NXM_OF_VLAN_TCI[],output:2"]);
    let x = translate(&t, &MacTable::default(), &tagged, NOW);
    assert_eq!(x.actions, vec![DpAction::PopVlan, DpAction::Output(2)]);
    // The VID bits of the absent tag come back with an OpenFlow 1.0 `mod_vlan_pcp`, which
    // writes only the PCP into the flow's TCI (1.3's pushes a new tag with VID 0).
    let t = flows("actions=load:7->NXM_OF_VLAN_TCI[0..11],output:2,mod_vlan_pcp:1,output:3");
    let x = translate(&t, &MacTable::default(), &untagged, NOW);
    let pushed = DpAction::PushVlan { tpid: ethertype::VLAN, tci: 0x3007 };
    assert_eq!(x.actions, vec![DpAction::Output(2), pushed, DpAction::Output(3)]);
    let t = of13_tables(&["actions=load:7->NXM_OF_VLAN_TCI[0..11],output:2,mod_vlan_pcp:1,output:3"]);
    let x = translate(&t, &MacTable::default(), &untagged, NOW);
    let pushed = DpAction::PushVlan { tpid: ethertype::VLAN, tci: 0x3000 };
    assert_eq!(x.actions, vec![DpAction::Output(2), pushed, DpAction::Output(3)]);
}

#[test]
fn write_metadata_and_goto_table_under_openflow13() {
    let t = of13_tables(&[
        "ip,actions=write_metadata:0x5/0xff,goto_table:1",
        "table=1,ip,metadata=0x5/0xff,actions=load:0x0a000009->NXM_OF_IP_DST[],write_metadata:0x100/0x100,goto_table:2",
        "table=1,priority=0,actions=output:3",
        "table=2,metadata=0x105,actions=output:2",
    ]);
    let p = key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let dst = Ipv4Addr::new(10, 0, 0, 9);
    both_lookups(&t, &p, &[DpAction::SetIpv4Dst(dst), DpAction::Output(2)], &l3_mask());
}

#[test]
fn a_partial_load_into_a_packet_field_keeps_its_other_bits_and_reads_them() {
    let t = of13_tables(&["ip,actions=load:0x9->NXM_OF_IP_DST[0..7],output:2"]);
    let p = key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let mut mask = l3_mask();
    mask.set_nw_dst_u32(0xffff_ff00);
    both_lookups(&t, &p, &[DpAction::SetIpv4Dst(Ipv4Addr::new(10, 0, 0, 9)), DpAction::Output(2)], &mask);
}

#[test]
fn clone_runs_on_a_copy_of_the_packet_and_the_registers() {
    let t = of13_tables(&[
        "ip,actions=clone(mod_nw_dst:10.0.0.9,load:5->reg0[],output:2),note:01,resubmit(,1)",
        "table=1,reg0=5,actions=output:3",
        "table=1,priority=0,actions=output:1",
    ]);
    let p = key(3, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    // After the clone the destination is set back (so its bits are read) and reg0 is 0
    // again: the priority-0 rule outputs to port 1.
    let mut mask = l3_mask();
    mask.set_nw_dst_u32(u32::MAX);
    let want = [
        DpAction::SetIpv4Dst(Ipv4Addr::new(10, 0, 0, 9)),
        DpAction::Output(2),
        DpAction::SetIpv4Dst(Ipv4Addr::new(10, 0, 0, 1)),
        DpAction::Output(1),
    ];
    both_lookups(&t, &p, &want, &mask);
}

#[test]
fn xxreg_and_xreg_are_wider_views_of_the_registers() {
    // xxreg0 holds the IPv6 destination: its low 32 bits are reg3, its top 32 bits reg0;
    // xreg1 (reg2, reg3) then goes to the metadata.
    let t = of13_tables(&[
        "ipv6,actions=move:NXM_NX_IPV6_DST[]->NXM_NX_XXREG0[],move:xreg1[]->metadata[],resubmit(,1)",
        "table=1,priority=10,reg0=0x20010db8,reg3=0x1,metadata=0x1/0xffffffff,actions=output:2",
        "table=1,priority=0,actions=output:3",
    ]);
    let mut p = FlowKey::ZERO;
    p.set_in_port(1);
    p.set_dl_type(ethertype::IPV6);
    p.set_ipv6_dst_u128(0x2001_0db8_0000_0000_0000_0000_0000_0001);
    let mut mask = l3_mask();
    mask.set_ipv6_dst_u128(u128::MAX);
    both_lookups(&t, &p, &[DpAction::Output(2)], &mask);
    p.set_ipv6_dst_u128(0x2001_0db8_0000_0000_0000_0000_0000_0002);
    both_lookups(&t, &p, &[DpAction::Output(3)], &mask);
}

// ---- The action set (`write_actions`, `clear_actions`), as OVS 3.1's ofproto/trace runs it ----

/// One action set across resubmits: what a resubmitted table writes joins the caller's
/// set, `clear_actions` empties all of it, the last output wins over a resubmit, and the
/// set runs once, at the end, in OVS's order (pop, push, dec_ttl, writes, the final
/// action). OVS: `set(ipv4(ttl=8)),push_vlan(tpid=0x88a8,vid=0,pcp=0),2` (the push is
/// committed at the output, after the TTL).
#[test]
fn the_action_set_spans_resubmits_and_runs_once_at_the_end_in_ovs_order() {
    let t = of13_tables(&[
        "priority=1,actions=resubmit(,1),write_actions(output:2)",
        "table=1,actions=resubmit(,2),write_actions(output:3,dec_ttl,push_vlan:0x88a8)",
        "table=2,actions=clear_actions,write_actions(resubmit(,3),output:3)",
        "table=3,actions=output:3,write_actions(output:1)",
    ]);
    let mut p = key(1, &udp_frame([198, 18, 0, 2], 1, 2, 0));
    p.set_nw_ttl(9);
    let x = translate(&t, &MacTable::default(), &p, NOW);
    let push = DpAction::PushVlan { tpid: 0x88a8, tci: VLAN_PRESENT };
    assert_eq!(x.actions, vec![DpAction::DecTtl, push, DpAction::Output(2)]);
}

/// A resubmit in the set runs when no output or group is there; its table's own
/// `write_actions` is never run (OVS runs the set once). A `dec_ttl` exception ends the
/// set's actions.
#[test]
fn a_resubmit_in_the_action_set_and_the_ttl_exception() {
    let t = of13_tables(&[
        "priority=1,actions=write_actions(resubmit(,3),dec_ttl)",
        "table=3,actions=output:3,write_actions(output:2)",
    ]);
    let mut p = key(1, &udp_frame([198, 18, 0, 2], 1, 2, 0));
    p.set_nw_ttl(2);
    assert_eq!(translate(&t, &MacTable::default(), &p, NOW).actions, vec![DpAction::DecTtl, DpAction::Output(3)]);
    p.set_nw_ttl(1);
    assert_eq!(translate(&t, &MacTable::default(), &p, NOW).actions, vec![]);
    // Without a final action the set does nothing.
    let t = of13_tables(&["priority=1,ip,actions=write_actions(dec_ttl,mod_nw_dst:1.2.3.4)"]);
    assert_eq!(translate(&t, &MacTable::default(), &p, NOW).actions, vec![]);
}

/// A table miss after `goto_table` still runs the set; a `clone` runs a copy of it at its
/// own end, on its own packet. OVS: `set(eth(src=00:00:00:00:00:09)),3,2,
/// set(eth(src=<the packet's>)),2` and, on the miss, `2`.
#[test]
fn a_miss_runs_the_set_and_a_clone_runs_a_copy_of_it() {
    let t = of13_tables(&[
        "priority=1,actions=write_actions(output:2),goto_table:1",
        "table=1,tcp,actions=clone(mod_dl_src:00:00:00:00:00:09,output:3)",
    ]);
    let p = key(1, &udp_frame([198, 18, 0, 2], 1, 2, 0));
    assert_eq!(translate(&t, &MacTable::default(), &p, NOW).actions, vec![DpAction::Output(2)]);
    let mut p = p;
    p.set_nw_proto(ipproto::TCP);
    let mac9 = [0, 0, 0, 0, 0, 9];
    assert_eq!(
        translate(&t, &MacTable::default(), &p, NOW).actions,
        vec![
            DpAction::SetEthSrc(mac9),
            DpAction::Output(3),
            DpAction::Output(2),
            DpAction::SetEthSrc(p.dl_src()),
            DpAction::Output(2)
        ]
    );
}

/// A group's buckets are action sets: OVS runs `output:2,mod_dl_src:..07,output:3` as
/// `set(eth(src=00:00:00:00:00:07)),3` (the first output is not the last of its kind).
#[test]
fn group_buckets_run_as_action_sets() {
    use ferrovs_config::{Group, GroupKind};
    let mac7 = [0, 0, 0, 0, 0, 7];
    let g = Group {
        kind: GroupKind::All,
        buckets: vec![
            vec![Action::Output(2), Action::Set(SetField::DlSrc(mac7)), Action::Output(3)],
            vec![Action::Output(2)],
        ],
    };
    let t = with_groups(vec![rule(0, 1, Match::default(), vec![Action::Group(1)])], &[(1, g)]);
    let p = key(1, &udp_frame([198, 18, 0, 2], 1, 2, 0));
    assert_eq!(
        translate(&t, &MacTable::default(), &p, NOW).actions,
        vec![DpAction::SetEthSrc(mac7), DpAction::Output(3), DpAction::SetEthSrc(p.dl_src()), DpAction::Output(2)]
    );
}

/// `output:SRC` reads the port from the register when the action runs (a reserved port
/// acts as its action); `normal` with a written in_port the bridge lacks does nothing, as
/// OVS's xlate_normal without an input bundle.
#[test]
fn output_to_a_register_reads_the_port_at_run_time() {
    let p = key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    let t = of13_tables(&["actions=load:2->NXM_NX_REG0[16..31],output:NXM_NX_REG0[16..31],output:reg1"]);
    both_lookups(&t, &p, &[DpAction::Output(2)], &base_mask());
    let t = of13_tables(&["actions=load:0xfff8->NXM_NX_REG0[0..15],output:reg0,load:0xfffb->reg1[],output:reg1"]);
    let all_but_1 = [DpAction::Output(1), DpAction::Output(2), DpAction::Output(3)];
    both_lookups(&t, &p, &all_but_1, &base_mask());
    let t = of13_tables(&["actions=load:0->NXM_OF_IN_PORT[],NORMAL,output:NXM_OF_IN_PORT[],output:2"]);
    both_lookups(&t, &p, &[DpAction::Output(2)], &base_mask());
}

/// A `move` from part of the TOS byte reads exactly those bits (through the key state,
/// so a field written before costs none); a `load` of `NXM_OF_IP_TOS` drops the ECN bits
/// and one of `ip_ecn` leaves the DSCP alone.
#[test]
fn loads_and_moves_on_the_tos_byte_read_and_write_only_their_bits() {
    let mut p = key(1, &udp_frame([10, 0, 0, 1], 1, 2, 0));
    p.set_nw_tos(0xb9);
    let t = of13_tables(&["ip,actions=move:OXM_OF_IP_DSCP[0..3]->NXM_OF_ETH_DST[0..3],output:2"]);
    let mut dst = DST;
    dst[5] = (dst[5] & 0xf0) | ((0xb9 >> 2) & 0xf);
    // (and the other bits of eth_dst, which the set-field of the whole address writes)
    let mut mask = l3_mask();
    mask.set_nw_tos(0x3c);
    mask.set_dl_dst([0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]);
    both_lookups(&t, &p, &[DpAction::SetEthDst(dst), DpAction::Output(2)], &mask);
    let t = of13_tables(&["ip,actions=load:0xff->NXM_OF_IP_TOS[],load:2->ip_ecn[],output:2"]);
    both_lookups(&t, &p, &[DpAction::SetIpDscp(0x3f), DpAction::SetIpEcn(2), DpAction::Output(2)], &l3_mask());
}

/// The ARP responder of OVS-based pipelines (an OpenStack-style rule): a request for
/// 10.0.0.2 becomes the reply from 02:00:00:00:00:99 and goes back out of its port. The
/// datapath actions, run on the frame, give exactly that reply; a RARP frame of a rule
/// on `rarp` changes the flow (a later table sees it) but is not rewritten (OVS commits
/// ARP rewrites for EtherType 0x0806 only).
#[test]
fn arp_responder_turns_a_request_into_the_reply() {
    use ferrovs_flowcache::edit::{EditOutcome, execute_edit};
    let t = flows(
        "priority=10,arp,arp_op=1,arp_tpa=10.0.0.2,actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],\
         mod_dl_src:02:00:00:00:00:99,load:0x2->NXM_OF_ARP_OP[],move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],\
         move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:02:00:00:00:00:99->arp_sha,\
         set_field:10.0.0.2->arp_spa,in_port",
    );
    let request = arp_frame();
    let x = translate(&t, &MacTable::default(), &key(1, &request), NOW);
    assert_eq!(x.actions.last(), Some(&DpAction::Output(1)), "{:?}", x.actions);
    let mut reply = request.clone();
    for a in &x.actions {
        assert!(matches!(execute_edit(&mut reply, a), EditOutcome::Applied | EditOutcome::NotAnEdit), "{a:?}");
    }
    let responder = [2, 0, 0, 0, 0, 0x99];
    let mut want = SRC.to_vec();
    want.extend_from_slice(&responder);
    want.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02]);
    want.extend_from_slice(&responder);
    want.extend_from_slice(&[10, 0, 0, 2]);
    want.extend_from_slice(&SRC);
    want.extend_from_slice(&[10, 0, 0, 1]);
    assert_eq!(reply, want);

    // RARP: the flow's sender address changes (table 1 sees it), the packet does not.
    let t = flows(
        "rarp,actions=set_field:10.9.9.9->arp_spa,resubmit(,1)
         table=1,rarp,arp_spa=10.9.9.9,actions=output:2",
    );
    let mut rarp = arp_frame();
    rarp[12..14].copy_from_slice(&[0x80, 0x35]);
    let x = translate(&t, &MacTable::default(), &key(1, &rarp), NOW);
    assert_eq!(x.actions, vec![DpAction::Output(2)]);
}

/// A `load` into some bits of the VID of a tagged packet: the commit writes the whole VID,
/// so its other bits (the packet's) are in the mask; a packet that differs only there is
/// another megaflow. (The random differential test found a mask without them: the VID
/// written to a VID 22 packet was the one computed for VID 20.)
#[test]
fn a_partial_vid_write_puts_the_rest_of_the_vid_in_the_mask() {
    let t = flows("vlan_tci=0x1000/0x1000,actions=load:0x260->OXM_OF_VLAN_VID[2..11],output:2");
    let x = translate(&t, &MacTable::default(), &key(1, &vlan(20, &udp_frame([10, 0, 0, 2], 1, 2, 0))), NOW);
    assert_eq!(x.actions, vec![DpAction::SetVlanVid(0x260 << 2), DpAction::Output(2)]);
    assert_eq!(x.mask.vlan_tci(0) & 0x0fff, 0x0fff);
}
