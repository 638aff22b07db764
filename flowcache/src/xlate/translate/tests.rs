//! Translation of neighbour-discovery packets: a table with ND rules sends an ND message
//! to the slow path (the key lacks its ND fields), which decides with them; every other
//! packet translates as if those rules matched on their key fields only.
//!
//! VLAN slots as OVS's flow holds them: a `vlan_tci` write changes only the outer slot's
//! TCI (its TPID and the inner slot stay), and the commit pushes a tag brought back with
//! its slot's TPID (the frames each translation makes are checked too).

use std::time::Duration;

use ferrovs_config::rules::Rule;

use super::{Lookup, translate};
use crate::actions::{DpAction, REASON_SLOW_PATH};
use crate::extract::{extract, nd_fields};
use crate::key::FlowKey;
use crate::testpkt::{
    ExtHdr, TCP4, arp_frame, icmp4_frame, ipv6_frame, ipv6_frame_ext, nd_message, tcp4_frame, udp4_frame,
};
use crate::xlate::mac::MacTable;
use crate::xlate::tables::RuleTables;

const NS: u8 = 135;
const NA: u8 = 136;

fn target(last: u8) -> [u8; 16] {
    let mut t = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    t[15] = last;
    t
}

/// An ND message for fd00::`last` with a link-layer option of type `opt` (0: none).
fn nd_frame(ty: u8, code: u8, last: u8, opt: u8) -> Vec<u8> {
    let opts: Vec<u8> = if opt == 0 { Vec::new() } else { vec![opt, 1, 2, 0, 0, 0, 0, last] };
    ipv6_frame(58, 0, &[], &nd_message(ty, code, target(last), &opts))
}

fn tables(rules: &[&str]) -> RuleTables {
    let rules: Vec<Rule> = rules.iter().map(|r| ferrovs_config::parse_flow(r).unwrap()).collect();
    RuleTables::new(rules, vec![1, 2, 3]).unwrap()
}

const ND_RULES: [&str; 4] = [
    "priority=100,icmp6,icmp_type=135,nd_target=fd00::1,actions=drop",
    "priority=90,icmp6,icmp_type=136,nd_tll=02:00:00:00:00:07,actions=output:3",
    "priority=80,icmp6,icmp_type=135,nd_sll=02:00:00:00:00:00/ff:ff:ff:ff:ff:00,actions=mod_dl_src:02:00:00:00:00:09,output:3",
    "priority=0,actions=output:2",
];

/// The same rules without their ND fields (their key fields kept).
const KEY_PARTS: [&str; 4] = [
    "priority=100,icmp6,icmp_type=135,actions=drop",
    "priority=90,icmp6,icmp_type=136,actions=output:3",
    "priority=80,icmp6,icmp_type=135,actions=mod_dl_src:02:00:00:00:00:09,output:3",
    "priority=0,actions=output:2",
];

fn key(frame: &[u8]) -> FlowKey {
    extract(frame, 1)
}

fn slow_path_action() -> Vec<DpAction> {
    vec![DpAction::Controller { in_port: 1, max_len: u16::MAX, reason: REASON_SLOW_PATH, table: 0, cookie: 0 }]
}

#[test]
fn other_packets_translate_as_if_nd_rules_matched_their_key_fields_only() {
    let (nd, plain) = (tables(&ND_RULES), tables(&KEY_PARTS));
    let macs = MacTable::default();
    let frag = ipv6_frame_ext(&[ExtHdr::Frag { offset: 8, more: false }], 58, &nd_message(NS, 0, target(1), &[]));
    let frames = [
        tcp4_frame(&TCP4),
        udp4_frame(53, 53, b"x"),
        icmp4_frame(8, 0),
        arp_frame(1),
        ipv6_frame(58, 0, &[], &[128, 0, 0, 0, 0, 1, 0, 1]),
        ipv6_frame(17, 0, &[], &[0, 53, 0, 53, 0, 8, 0, 0]),
        frag,
    ];
    for f in &frames {
        for lookup in [Lookup::Index, Lookup::LinearScan] {
            let a = translate(&nd, &macs, &key(f), None, Duration::ZERO, lookup);
            let b = translate(&plain, &macs, &key(f), None, Duration::ZERO, lookup);
            assert_eq!((a.actions, a.mask), (b.actions, b.mask), "{f:02x?} {lookup:?}");
        }
    }
}

#[test]
fn nd_messages_get_a_slow_path_megaflow() {
    let t = tables(&ND_RULES);
    let macs = MacTable::default();
    // Any code: a rule may match the all-zero ND fields of a message OVS does not parse.
    for f in [nd_frame(NS, 0, 1, 1), nd_frame(NS, 0, 2, 0), nd_frame(NA, 0, 1, 2), nd_frame(NS, 1, 1, 0)] {
        let k = key(&f);
        for lookup in [Lookup::Index, Lookup::LinearScan] {
            let x = translate(&t, &macs, &k, None, Duration::ZERO, lookup);
            assert_eq!(x.actions, slow_path_action(), "{f:02x?}");
            assert!(x.rules.is_empty() && x.learns.is_empty() && x.error.is_none());
            // The megaflow holds only ND messages of this type and code.
            let m = &x.mask;
            assert_eq!((m.dl_type(), m.nw_proto(), m.tp_src(), m.tp_dst()), (0xffff, 0xff, 0xffff, 0xffff));
            assert_eq!(m.in_port(), 0xffff);
        }
    }
    // A table without ND rules forwards ND messages in the fast path.
    let x =
        translate(&tables(&KEY_PARTS[3..]), &macs, &key(&nd_frame(NS, 0, 1, 0)), None, Duration::ZERO, Lookup::Index);
    assert_eq!(x.actions, vec![DpAction::Output(2)]);
}

#[test]
fn the_slow_path_decides_with_the_nd_fields() {
    let t = tables(&ND_RULES);
    let macs = MacTable::default();
    let run = |f: &[u8]| {
        let nd = nd_fields(f);
        let x = translate(&t, &macs, &key(f), Some(&nd), Duration::ZERO, Lookup::Index);
        assert!(x.error.is_none());
        x.actions
    };
    let to3 = vec![DpAction::Output(3)];
    let rewritten = vec![DpAction::SetEthSrc([2, 0, 0, 0, 0, 9]), DpAction::Output(3)];
    assert_eq!(run(&nd_frame(NS, 0, 1, 0)), vec![], "NS for fd00::1: dropped");
    assert_eq!(run(&nd_frame(NS, 0, 2, 0)), vec![DpAction::Output(2)], "NS for fd00::2");
    assert_eq!(run(&nd_frame(NS, 0, 7, 1)), rewritten, "NS with sll 02:00:00:00:00:07");
    assert_eq!(run(&nd_frame(NS, 0, 7, 2)), vec![DpAction::Output(2)], "a tll option is no sll");
    assert_eq!(run(&nd_frame(NA, 0, 7, 2)), to3, "NA with tll 02:00:00:00:00:07");
    assert_eq!(run(&nd_frame(NA, 0, 8, 2)), vec![DpAction::Output(2)]);
    assert_eq!(run(&nd_frame(NA, 0, 1, 0)), vec![DpAction::Output(2)], "nd_target rule is for NS only");
    // Code 1: OVS parses no ND fields, so the target is :: and no target rule matches.
    assert_eq!(run(&nd_frame(NS, 1, 1, 0)), vec![DpAction::Output(2)], "code 1");
}

#[test]
fn a_slow_path_megaflow_redoes_earlier_tables() {
    let t = tables(&[
        "table=0,actions=mod_dl_dst:02:00:00:00:00:05,goto_table:1",
        "table=1,priority=10,icmp6,icmp_type=135,nd_target=fd00::1,actions=output:3",
        "table=1,priority=0,actions=output:2",
    ]);
    let macs = MacTable::default();
    let f = nd_frame(NS, 0, 1, 0);
    let x = translate(&t, &macs, &key(&f), None, Duration::ZERO, Lookup::Index);
    assert_eq!(x.actions, slow_path_action(), "the rewrite is redone by the slow path");
    let nd = nd_fields(&f);
    let x = translate(&t, &macs, &key(&f), Some(&nd), Duration::ZERO, Lookup::Index);
    assert_eq!(x.actions, vec![DpAction::SetEthDst([2, 0, 0, 0, 0, 5]), DpAction::Output(3)]);
    assert_eq!(x.rules.len(), 2);
}

/// ND writes and reads: without the ND fields an ND message of the field's type ends in
/// a slow-path megaflow (and any other packet skips the write, as OVS's prerequisite
/// check does, reading only the bits that decide it); with them the flow's fields change
/// and every output commits what differs from the packet, in OVS's order.
#[test]
fn nd_writes_and_reads_go_through_the_slow_path() {
    let macs = MacTable::default();
    let t = tables(&[
        "priority=10,icmp6,icmp_type=135,actions=set_field:fd00::99->nd_target,set_field:02:00:00:00:00:aa->nd_sll,\
         set_field:7->nd_reserved,output:2",
        "priority=10,icmp6,icmp_type=136,actions=load:0xbb->NXM_NX_ND_TLL[0..7],output:2,load:0x1->nd_options_type[],\
         output:3",
        "priority=0,actions=output:3",
    ]);
    let run = |f: &[u8], with_nd: bool| {
        let nd = nd_fields(f);
        translate(&t, &macs, &key(f), with_nd.then_some(&nd), Duration::ZERO, Lookup::Index)
    };
    // Fast path: ND messages go to the slow path, their megaflow only ND messages.
    for f in [nd_frame(NS, 0, 1, 1), nd_frame(NA, 0, 1, 2)] {
        let x = run(&f, false);
        assert_eq!(x.actions, slow_path_action());
        assert_eq!((x.mask.tp_src(), x.mask.tp_dst()), (0xffff, 0xffff));
    }
    // Code 1: no ND message, the writes are skipped (OVS's prerequisite), fast path.
    let x = run(&nd_frame(NS, 1, 1, 1), false);
    assert_eq!(x.actions, vec![DpAction::Output(2)]);
    // Slow path: the changes, committed before the output that sends them.
    let ns = run(&nd_frame(NS, 0, 1, 1), true);
    assert_eq!(
        ns.actions,
        vec![
            DpAction::SetNdReserved(7),
            DpAction::SetNdTarget("fd00::99".parse().unwrap()),
            DpAction::SetNdSll([2, 0, 0, 0, 0, 0xaa]),
            DpAction::Output(2),
        ]
    );
    // NA with tll 02:00:00:00:00:01: the low byte, then the options type (already 2 is
    // the packet's; 1 differs) after the first output.
    let na = run(&nd_frame(NA, 0, 1, 2), true);
    assert_eq!(
        na.actions,
        vec![
            DpAction::SetNdTll([2, 0, 0, 0, 0, 0xbb]),
            DpAction::Output(2),
            DpAction::SetNdOptionsType(1),
            DpAction::Output(3)
        ]
    );
    // A write of the value the packet has commits nothing.
    let same = tables(&["icmp6,icmp_type=135,actions=set_field:fd00::1->nd_target,output:2"]);
    let f = nd_frame(NS, 0, 1, 0);
    let nd = nd_fields(&f);
    let x = translate(&same, &macs, &key(&f), Some(&nd), Duration::ZERO, Lookup::Index);
    assert_eq!(x.actions, vec![DpAction::Output(2)]);
}

/// Later tables and `move` see the written ND fields; a bucket's or a clone's write is
/// undone for what follows (set back at the next output); a `move` out of an ND field
/// into a register decides a later match.
#[test]
fn written_nd_fields_are_read_back() {
    let macs = MacTable::default();
    let t = tables(&[
        "table=0,icmp6,icmp_type=135,actions=clone(set_field:fd00::5->nd_target,output:3),\
         set_field:fd00::7->nd_target,goto_table:1",
        "table=1,priority=20,icmp6,icmp_type=135,nd_target=fd00::7,actions=move:nd_target[0..7]->reg0[0..7],resubmit(,2)",
        "table=1,priority=10,actions=output:1",
        "table=2,priority=10,reg0=7,actions=output:2",
    ]);
    let f = nd_frame(NS, 0, 1, 0);
    let nd = nd_fields(&f);
    let x = translate(&t, &macs, &key(&f), Some(&nd), Duration::ZERO, Lookup::Index);
    assert_eq!(
        x.actions,
        vec![
            DpAction::SetNdTarget("fd00::5".parse().unwrap()),
            DpAction::Output(3),
            DpAction::SetNdTarget("fd00::7".parse().unwrap()),
            DpAction::Output(2),
        ]
    );
    // Without the ND fields: the first lookup with an ND write ends it.
    let x = translate(&t, &macs, &key(&f), None, Duration::ZERO, Lookup::Index);
    assert_eq!(x.actions, slow_path_action());
    // A `move` out of `nd_sll` on an NA (its prerequisite fails): no copy at all.
    let t =
        tables(&["table=0,icmp6,icmp_type=135,actions=set_field:136->icmpv6_type,move:nd_sll[]->dl_src[],output:2"]);
    let f = nd_frame(NS, 0, 1, 1);
    let nd = nd_fields(&f);
    let x = translate(&t, &macs, &key(&f), Some(&nd), Duration::ZERO, Lookup::Index);
    assert_eq!(x.actions, vec![DpAction::SetTpSrc(136), DpAction::Output(2)]);
}

/// A read of an ND field gives what OVS parsed from the packet as received, also after a
/// rewrite of the ICMPv6 type: `output:NXM_NX_ND_SLL[0..15]` of an NS whose type became
/// 128 still sends to the port its SLL names (slow path); of an NS with code 1 (OVS
/// parses no ND fields), to port 0 (nothing), in the fast path.
#[test]
fn nd_reads_see_the_packet_s_parse() {
    let macs = MacTable::default();
    let t = tables(&["icmp6,icmp_type=135,actions=set_field:128->icmpv6_type,output:NXM_NX_ND_SLL[0..15]"]);
    let f = nd_frame(NS, 0, 2, 1);
    let x = translate(&t, &macs, &key(&f), None, Duration::ZERO, Lookup::Index);
    assert_eq!(x.actions, slow_path_action());
    let nd = nd_fields(&f);
    let x = translate(&t, &macs, &key(&f), Some(&nd), Duration::ZERO, Lookup::Index);
    assert_eq!(x.actions, vec![DpAction::SetTpSrc(128), DpAction::Output(2)]);
    let code_1 = nd_frame(NS, 1, 2, 1);
    let x = translate(&t, &macs, &key(&code_1), None, Duration::ZERO, Lookup::Index);
    assert!(x.actions.is_empty(), "no output, so no edit: {:?}", x.actions);
    assert_eq!((x.mask.tp_src(), x.mask.tp_dst()), (0xffff, 0xffff), "what decided it");
}

// ---- VLAN slots: TPIDs kept across `vlan_tci` writes, inner tags kept in the flow ----

use crate::actions::{PoppedTpids, TPID_OF_RECEIVED_INNER, TPID_OF_RECEIVED_OUTER};
use crate::edit::{execute_edit, outer_tpid, pop_vlan, push_vlan, vlans_kept};
use crate::extract::extract_with_vlan_limit;
use crate::key::VLAN_PRESENT;

/// `frame` with the tags `(tpid, tci)`, outer first, after its MAC addresses.
fn with_tags(tags: &[(u16, u16)], frame: &[u8]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&frame[12..]);
    f
}

/// The frames `actions` send from `frame`, (port, frame) in order, executed as the PMD
/// does (the TPID placeholders resolved by `PoppedTpids`).
fn sent(frame: &[u8], actions: &[DpAction]) -> Vec<(u32, Vec<u8>)> {
    let mut f = frame.to_vec();
    let mut tpids = PoppedTpids::for_frame(frame);
    let mut out = Vec::new();
    let push = |f: &mut Vec<u8>, tpids: &mut PoppedTpids, tpid: u16, tci: u16| {
        let mut grown = vec![0; 4];
        grown.extend_from_slice(f);
        push_vlan(&mut grown, tpids.take(tpid), tci).unwrap();
        *f = grown;
    };
    let pop = |f: &mut Vec<u8>, tpids: &mut PoppedTpids| {
        let found = outer_tpid(f);
        if pop_vlan(f) {
            tpids.popped(found.unwrap());
            f.drain(..4);
        }
    };
    for a in actions {
        match *a {
            DpAction::Output(p) => out.push((p, f.clone())),
            DpAction::PushVlan { tpid, tci } => push(&mut f, &mut tpids, tpid, tci),
            DpAction::PopVlan => pop(&mut f, &mut tpids),
            DpAction::CommitVlans { pop: n_pop, push: n_push, tags } => {
                let kept = vlans_kept(&f, n_pop, n_push, &tags, &tpids);
                for _ in kept..n_pop {
                    pop(&mut f, &mut tpids);
                }
                for &(tpid, tci) in tags[..usize::from(n_push - kept)].iter().rev() {
                    push(&mut f, &mut tpids, tpid, tci);
                }
            }
            DpAction::ReplaceVlan { tpid, tci } => {
                let found = outer_tpid(&f);
                execute_edit(&mut f, &DpAction::ReplaceVlan { tpid: tpids.take(tpid), tci });
                if let Some(t) = found {
                    tpids.popped(t);
                }
            }
            _ => {
                execute_edit(&mut f, a);
            }
        }
    }
    out
}

/// Translates `frame` (received on port 1, the key parsing `vlan_limit` tags) with `rules`:
/// the actions and the frames they send.
fn vlan_run(rules: &[&str], frame: &[u8], vlan_limit: usize) -> (Vec<DpAction>, Vec<(u32, Vec<u8>)>) {
    let k = extract_with_vlan_limit(frame, 1, vlan_limit);
    let x = translate(&tables(rules), &MacTable::default(), &k, None, Duration::ZERO, Lookup::Index);
    assert!(x.error.is_none());
    let out = sent(frame, &x.actions);
    (x.actions, out)
}

/// A tag a `vlan_tci` write of 0 removed and a PCP, VID or TCI write brought back keeps
/// the TPID of the tag that was there: the received one's (the datapath reads it), or the
/// one a `push_vlan` gave; without an output in between the received tag is rewritten in
/// place, or left as it is if it is equal (DEI included).
#[test]
fn a_tag_a_vlan_tci_write_removed_comes_back_with_its_tpid() {
    let plain = udp4_frame(53, 53, b"x");
    let frame = with_tags(&[(0x88a8, 0x6014)], &plain);
    let pcp2 = with_tags(&[(0x88a8, 0x4000)], &plain);
    let (a, out) = vlan_run(&["actions=load:0->NXM_OF_VLAN_TCI[],mod_vlan_pcp:2,output:2"], &frame, 1);
    assert_eq!(a, [DpAction::SetVlanVid(0), DpAction::SetVlanPcp(2), DpAction::Output(2)]);
    assert_eq!(out, [(2, pcp2.clone())]);
    let (a, out) = vlan_run(&["actions=load:0->NXM_OF_VLAN_TCI[],output:2,mod_vlan_pcp:2,output:3"], &frame, 1);
    let push = DpAction::PushVlan { tpid: TPID_OF_RECEIVED_OUTER, tci: 0x5000 };
    assert_eq!(a, [DpAction::PopVlan, DpAction::Output(2), push, DpAction::Output(3)]);
    assert_eq!(out, [(2, plain.clone()), (3, pcp2)]);
    let (_, out) = vlan_run(&["actions=load:0->NXM_OF_VLAN_TCI[],output:2,mod_vlan_vid:7,output:3"], &frame, 1);
    assert_eq!(out, [(2, plain.clone()), (3, with_tags(&[(0x88a8, 7)], &plain))]);
    let (_, out) = vlan_run(&["actions=load:0->NXM_OF_VLAN_TCI[],mod_vlan_vid:7,output:2"], &frame, 1);
    assert_eq!(out, [(2, with_tags(&[(0x88a8, 7)], &plain))]);
    let rule = "actions=load:0->NXM_OF_VLAN_TCI[],output:2,load:0x3005->NXM_OF_VLAN_TCI[],output:3";
    let (_, out) = vlan_run(&[rule], &frame, 1);
    assert_eq!(out, [(2, plain.clone()), (3, with_tags(&[(0x88a8, 0x2005)], &plain))]);
    // Brought back equal: the frame is left as it is, DEI bit included.
    let dei = with_tags(&[(0x88a8, 0x5000)], &plain);
    let (_, out) = vlan_run(&["actions=load:0->NXM_OF_VLAN_TCI[],mod_vlan_pcp:2,output:2"], &dei, 1);
    assert_eq!(out, [(2, dei.clone())]);
    // A pushed tag's TPID is the push's; an untagged packet's slot gets 0x8100.
    let rule = "actions=push_vlan:0x88a8,output:2,load:0->NXM_OF_VLAN_TCI[],output:3,mod_vlan_pcp:2,in_port";
    let (_, out) = vlan_run(&[rule], &plain, 1);
    let want =
        [(2, with_tags(&[(0x88a8, 0)], &plain)), (3, plain.clone()), (1, with_tags(&[(0x88a8, 0x4000)], &plain))];
    assert_eq!(out, want);
    let (a, _) = vlan_run(&["actions=mod_vlan_pcp:2,output:2"], &plain, 1);
    assert_eq!(a, [DpAction::PushVlan { tpid: 0x8100, tci: 0x5000 }, DpAction::Output(2)]);
}

/// Two received tags (vlan-limit 2): a `vlan_tci` write of 0 removes both at the commit
/// (OVS counts tags from the outside up to the first absent one) while the flow keeps
/// the inner one, so a PCP write brings both back, each with its own TPID; without an
/// output in between the inner tag is left where it is. A `strip_vlan` of the absent
/// outer slot does nothing (OVS pops only counted tags), a later table sees no tag.
#[test]
fn a_vlan_tci_write_of_0_over_two_tags_keeps_the_inner_one_in_the_flow() {
    let plain = udp4_frame(53, 53, b"x");
    let frame = with_tags(&[(0x88a8, 0x6014), (0x8100, 0x000a)], &plain);
    let both = with_tags(&[(0x88a8, 0x4000), (0x8100, 0x000a)], &plain);
    let rule = "actions=load:0->NXM_OF_VLAN_TCI[],output:2,mod_vlan_pcp:2,output:3";
    let (a, out) = vlan_run(&[rule], &frame, 2);
    assert_eq!(
        a,
        [
            DpAction::PopVlan,
            DpAction::PopVlan,
            DpAction::Output(2),
            DpAction::PushVlan { tpid: TPID_OF_RECEIVED_INNER, tci: VLAN_PRESENT | 0x000a },
            DpAction::PushVlan { tpid: TPID_OF_RECEIVED_OUTER, tci: 0x5000 },
            DpAction::Output(3),
        ]
    );
    assert_eq!(out, [(2, plain.clone()), (3, both.clone())]);
    let (a, out) = vlan_run(&["actions=load:0->NXM_OF_VLAN_TCI[],strip_vlan,mod_vlan_pcp:2,output:2"], &frame, 2);
    assert_eq!(a, [DpAction::SetVlanVid(0), DpAction::SetVlanPcp(2), DpAction::Output(2)]);
    assert_eq!(out, [(2, both)]);
    let rules = [
        "table=0,actions=load:0->NXM_OF_VLAN_TCI[],strip_vlan,resubmit(,1)",
        "table=1,priority=10,vlan_tci=0x0000/0x1000,actions=output:2",
        "table=1,priority=0,actions=output:3",
    ];
    let (_, out) = vlan_run(&rules, &frame, 2);
    assert_eq!(out, [(2, plain.clone())]);
    // One received tag and one pushed over it: the same, the pushed one's TPID its own.
    let one = with_tags(&[(0x88a8, 0x6014)], &plain);
    let rule = "actions=push_vlan:0x8100,load:0->NXM_OF_VLAN_TCI[],output:2,load:0x3005->NXM_OF_VLAN_TCI[],output:3";
    let (_, out) = vlan_run(&[rule], &one, 1);
    assert_eq!(out, [(2, plain.clone()), (3, with_tags(&[(0x8100, 0x2005), (0x88a8, 0x6014)], &plain))]);
}

/// A received tag compared with a pushed one of the same TCI below the outer tag: the
/// translator does not know the received tag's TPID (the key does not hold it), so the
/// datapath compares the pair (`CommitVlans`) and keeps an equal tag as it is, DEI bit
/// included, as OVS 3.1 does (the rule under OpenFlow 1.3 with `dl_vlan=5` sends port
/// 2's frame to port 3 too, `8100 1005` included); a tag of another TPID is replaced.
#[test]
fn a_received_tag_compared_below_the_outer_one_is_compared_by_the_datapath() {
    let plain = udp4_frame(53, 53, b"x");
    let rule = "actions=push_vlan:0x88a8,output:2,strip_vlan,strip_vlan,push_vlan:0x8100,\
                load:0x1005->NXM_OF_VLAN_TCI[],push_vlan:0x88a8,output:3";
    let tags = [(0x88a8, VLAN_PRESENT), (0x8100, 0x1005)];
    for (tpid, kept) in [(0x8100, true), (0x88a8, false)] {
        let frame = with_tags(&[(tpid, 0x1005)], &plain);
        let (a, out) = vlan_run(&[rule], &frame, 1);
        assert_eq!(&a[a.len() - 2..], [DpAction::CommitVlans { pop: 2, push: 2, tags }, DpAction::Output(3)]);
        let inner = if kept { (tpid, 0x1005) } else { (0x8100, 0x0005) };
        assert_eq!(
            out,
            [(2, with_tags(&[(0x88a8, 0), (tpid, 0x1005)], &plain)), (3, with_tags(&[(0x88a8, 0), inner], &plain))],
            "received TPID {tpid:#x}"
        );
    }
}

/// The frame of OpenFlow 1.3's `mod_vlan_pcp` on a tagged frame without a VLAN match
/// (`push_vlan` then a PCP set-field, as `ovs-ofctl` encodes it) and another `push_vlan`:
/// the flow's inner slot is the first pushed tag, of the received tag's VID and PCP, so
/// the received tag stays as it is, DEI bit included, under the second pushed tag, as
/// OVS 3.1 sends it.
#[test]
fn a_pushed_tag_equal_to_the_received_one_keeps_it_under_another() {
    let plain = udp4_frame(53, 53, b"x");
    let frame = with_tags(&[(0x8100, 0xb000)], &plain);
    let rule = "actions=push_vlan:0x8100,set_field:5->vlan_pcp,push_vlan:0x8100,output:3";
    let (_, out) = vlan_run(&[rule], &frame, 1);
    assert_eq!(out, [(3, with_tags(&[(0x8100, 0), (0x8100, 0xb000)], &plain))]);
    // A received tag of another PCP is not the pushed one: popped, both pushed.
    let frame = with_tags(&[(0x8100, 0x9000)], &plain);
    let (_, out) = vlan_run(&[rule], &frame, 1);
    assert_eq!(out, [(3, with_tags(&[(0x8100, 0), (0x8100, 0xa000)], &plain))]);
}

/// A `move` from or to a TCP, UDP or SCTP field does nothing on a later fragment (OVS's
/// `MFP_TCP`/`MFP_UDP`/`MFP_SCTP` prerequisite fails without an L4 header): the later
/// fragment's `tcp_flags` (0) are not copied over the destination, and a move into its
/// port reads nothing from the source; the megaflow holds the fragment bit it was decided
/// by. On a whole packet both copy.
#[test]
fn a_transport_move_skips_a_later_fragment() {
    let macs = MacTable::default();
    let whole = tcp4_frame(&TCP4);
    let mut later = whole.clone();
    later[20..22].copy_from_slice(&[0x00, 0x02]); // offset 16 bytes, no more fragments
    let from_flags = tables(&["tcp,actions=move:NXM_NX_TCP_FLAGS[]->NXM_OF_ETH_DST[0..11],output:2"]);
    let into_port = tables(&["tcp,actions=move:NXM_OF_ETH_SRC[0..15]->NXM_OF_TCP_DST[],output:2"]);
    for lookup in [Lookup::Index, Lookup::LinearScan] {
        let run = |t: &RuleTables, f: &[u8]| {
            let x = translate(t, &macs, &key(f), None, Duration::ZERO, lookup);
            assert!(x.error.is_none());
            x
        };
        let x = run(&from_flags, &later);
        assert_eq!(x.actions, vec![DpAction::Output(2)]);
        assert_ne!(x.mask.nw_frag() & crate::key::FRAG_LATER, 0);
        let mut dst: [u8; 6] = whole[..6].try_into().unwrap();
        dst[4] &= 0xf0;
        dst[5] = TCP4.flags;
        assert_eq!(run(&from_flags, &whole).actions, vec![DpAction::SetEthDst(dst), DpAction::Output(2)]);

        let x = run(&into_port, &later);
        assert_eq!(x.actions, vec![DpAction::Output(2)]);
        assert_eq!(x.mask.dl_src(), [0; 6], "the source is not read");
        let y = run(&into_port, &whole);
        let port = u16::from_be_bytes([whole[10], whole[11]]);
        assert_eq!(y.actions, vec![DpAction::SetTpDst(port), DpAction::Output(2)]);
        assert_ne!(y.mask.dl_src(), [0; 6]);
    }
}

/// The action set pops before it writes: a `vlan_vid` set-field it then runs on the
/// untagged packet makes a 0x8100 tag (OVS's field has no prerequisite), a `vlan_pcp` one
/// before it does nothing (its prerequisite is a VID).
#[test]
fn the_action_set_s_vid_write_tags_a_stripped_packet() {
    let plain = udp4_frame(53, 53, b"x");
    let rule = "actions=push_vlan:0x8100,set_field:20->vlan_vid,\
                write_actions(set_field:3->vlan_pcp,set_field:10->vlan_vid,strip_vlan,output:2)";
    let (a, out) = vlan_run(&[rule], &plain, 1);
    assert_eq!(a, [DpAction::PushVlan { tpid: 0x8100, tci: 0x100a }, DpAction::Output(2)]);
    assert_eq!(out, [(2, with_tags(&[(0x8100, 10)], &plain))]);
}

/// The greedy witness choice's price of a field's bits read from the key words is
/// `Ctx::cost` of the field's mask: for every key field, random bits, random masks read
/// so far and random fields written (the fields priced through the mask included).
#[test]
fn field_cost_is_the_cost_of_the_field_s_mask() {
    use crate::testpkt::SplitMix;
    use crate::xlate::fields::FieldSet;
    let t = tables(&["actions=output:2"]);
    let macs = MacTable::default();
    let mut r = SplitMix(23);
    let random = |r: &mut SplitMix| FlowKey { w: std::array::from_fn(|_| r.next_u64() & r.next_u64()) };
    for _ in 0..2000 {
        let k = random(&mut r);
        let mut c = super::Ctx::new(&t, &macs, &k, Duration::ZERO, Lookup::Index);
        c.mask = random(&mut r);
        c.st.written = random(&mut r);
        c.st.is_frag = r.chance(50);
        c.st.ttl_derived = r.chance(50);
        for f in FieldSet::ORDER {
            let bits = (u128::from(r.next_u64()) << 64 | u128::from(r.next_u64())) & f.all_ones();
            let bits = if r.chance(20) { 0 } else { bits };
            assert_eq!(c.field_cost(f, bits), c.cost(&f.mask_of(bits), f.is_categorical()), "{f:?} {bits:#x}");
        }
    }
}
