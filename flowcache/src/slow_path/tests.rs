//! Unit tests of the slow-path state machine, over real frames and rules.
use super::*;
use crate::actions::DpAction;
use crate::extract::extract;
use crate::testpkt::{TCP4, Tcp4, icmp4_frame, tcp4_frame, udp4_frame};
use ferrovs_config::{parse_flow, parse_match};

const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn rules(text: &[&str]) -> Vec<Rule> {
    text.iter().map(|l| parse_flow(l).unwrap()).collect()
}

fn slow_path(rule_text: &[&str], n_pmds: usize, cfg: SlowPathConfig) -> SlowPath {
    let br = BridgeSpec {
        groups: Default::default(),
        name: "br0".into(),
        ports: vec![1, 2, 3],
        datapath_ports: Vec::new(),
        rules: rules(rule_text),
    };
    SlowPath::new(vec![br], n_pmds, cfg, 0).unwrap()
}

/// The key of `frame` with its Ethernet addresses replaced, received on `port`.
fn key_of(mut frame: Vec<u8>, src: [u8; 6], dst: [u8; 6], port: u32) -> FlowKey {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    extract(&frame, port)
}

fn tcp(dport: u16, port: u32) -> FlowKey {
    extract(&tcp4_frame(&Tcp4 { dport, ..TCP4 }), port)
}

fn up(pmd: usize, key: FlowKey) -> Upcall {
    Upcall { pmd, key }
}

/// The single Install of `cmds` (asserted to be the last command, to `pmd`).
fn installed(cmds: &[(usize, PmdCommand)], pmd: usize) -> (FlowId, Megaflow) {
    match cmds.last() {
        Some((p, PmdCommand::Install { id, megaflow, .. })) if *p == pmd => (*id, megaflow.clone()),
        other => panic!("expected an Install to PMD {pmd}, got {other:?} in {cmds:?}"),
    }
}

fn stats(packets: u64, bytes: u64, used: u64) -> MegaflowStats {
    MegaflowStats { packets, bytes, used, tcp_flags: 0 }
}

#[test]
fn first_packet_installs_a_megaflow() {
    let mut sp = slow_path(
        &["priority=10,ip,nw_dst=10.0.0.0/8,actions=output:2", "priority=0,actions=drop"],
        2,
        Default::default(),
    );
    let k = tcp(80, 1);
    let cmds = sp.handle_upcall(&up(1, k), 5);
    assert_eq!(cmds.len(), 1);
    let (id, mf) = installed(&cmds, 1);
    assert_eq!(mf.actions, vec![DpAction::Output(2)]);
    assert!(mf.matches(&k));
    assert!(mf.matches(&tcp(22, 1)), "the port is not in the mask");
    assert!(!mf.matches(&tcp(80, 2)), "in_port always is");
    assert_eq!((sp.n_flows(0), sp.n_flows(1)), (0, 1));
    let dump = sp.dump_dp_flows();
    assert_eq!((dump[0].pmd, dump[0].id, dump[0].installed_at, dump[0].key), (1, id, 5, mf.key));
    let c = sp.counters();
    assert_eq!((c.upcalls, c.installs, c.executes), (1, 1, 0));
}

#[test]
fn racing_upcalls_are_answered_with_execute() {
    let mut sp = slow_path(&["priority=10,ip,nw_dst=10.0.0.0/8,actions=output:2"], 2, Default::default());
    let k = tcp(80, 1);
    installed(&sp.handle_upcall(&up(0, k), 0), 0);
    // Same key again (sent before the Install was applied): identical key+mask.
    let again = sp.handle_upcall(&up(0, k), 1);
    assert_eq!(again, vec![(0, PmdCommand::Execute { key: k, actions: vec![DpAction::Output(2)] })]);
    // Another key the first megaflow covers: its packets are executed by the Install.
    let k2 = tcp(443, 1);
    assert!(matches!(sp.handle_upcall(&up(0, k2), 2)[..], [(0, PmdCommand::Execute { .. })]));
    // The other PMD has its own cache: it gets an Install.
    installed(&sp.handle_upcall(&up(1, k), 3), 1);
    let c = sp.counters();
    assert_eq!((c.installs, c.executes, c.executes_raced), (2, 2, 2));
    assert_eq!(sp.n_flows(0), 1);
}

#[test]
fn flow_limit_turns_installs_into_executes() {
    let cfg = SlowPathConfig { flow_limit_per_pmd: 1, ..Default::default() };
    let mut sp =
        slow_path(&["priority=10,ip,nw_dst=10.0.0.0/8,actions=output:2", "priority=0,actions=output:3"], 1, cfg);
    installed(&sp.handle_upcall(&up(0, tcp(80, 1)), 0), 0);
    let other = extract(&tcp4_frame(&Tcp4 { dst: [192, 0, 2, 1], ..TCP4 }), 1);
    let cmds = sp.handle_upcall(&up(0, other), 1);
    assert_eq!(cmds, vec![(0, PmdCommand::Execute { key: other, actions: vec![DpAction::Output(3)] })]);
    assert_eq!(sp.counters().executes_flow_limit, 1);
    // Once the PMD reports the first flow gone, there is room again.
    let id = sp.dump_dp_flows()[0].id;
    sp.handle_event(&PmdEvent { pmd: 0, reason: GoneReason::Expired, flows: vec![(id, stats(0, 0, 0))] }, 2);
    installed(&sp.handle_upcall(&up(0, other), 3), 0);
}

#[test]
fn rule_change_removes_exactly_the_affected_megaflows() {
    let mut sp = slow_path(
        &["priority=10,tcp,tp_dst=80,actions=output:2", "priority=10,udp,actions=output:3", "priority=0,actions=drop"],
        2,
        Default::default(),
    );
    let k_tcp = tcp(80, 1);
    let k_udp = extract(&udp4_frame(5000, 53, b"query"), 1);
    let k_icmp = extract(&icmp4_frame(8, 0), 1);
    let (id_tcp, _) = installed(&sp.handle_upcall(&up(0, k_tcp), 0), 0);
    let (id_udp, _) = installed(&sp.handle_upcall(&up(0, k_udp), 0), 0);
    let (id_icmp, _) = installed(&sp.handle_upcall(&up(1, k_icmp), 0), 1);
    let (id_tcp1, _) = installed(&sp.handle_upcall(&up(1, k_tcp), 0), 1);
    let cmds = sp.add_flows("br0", rules(&["priority=20,tcp,tp_dst=80,actions=output:3"]), 10).unwrap();
    assert_eq!(
        cmds,
        vec![(0, PmdCommand::Remove { ids: vec![id_tcp] }), (1, PmdCommand::Remove { ids: vec![id_tcp1] })]
    );
    assert!(sp.mirror(0).unwrap().get(id_udp).is_some());
    assert!(sp.mirror(1).unwrap().get(id_icmp).is_some());
    let (_, mf) = installed(&sp.handle_upcall(&up(0, k_tcp), 11), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(3)]);
    // Deleting the udp rule (non-strict) removes the udp megaflow only.
    let (cmds, n) = sp.del_flows("br0", &parse_match("udp").unwrap(), 12).unwrap();
    assert_eq!((cmds, n), (vec![(0, PmdCommand::Remove { ids: vec![id_udp] })], 1));
    // A refused rule set changes nothing.
    let bad = vec![Rule {
        table: 2,
        actions: vec![ferrovs_config::Action::GotoTable(1)],
        ..rules(&["actions=drop"])[0].clone()
    }];
    assert!(matches!(sp.replace_rules("br0", bad, 13), Err(SlowPathError::Rules { .. })));
    assert_eq!(sp.rules("br0").unwrap().len(), 3);
    assert!(matches!(sp.replace_rules("nope", vec![], 13), Err(SlowPathError::UnknownBridge(_))));
}

#[test]
fn mac_learning_and_moves_invalidate_dependants() {
    let mut sp = slow_path(&["actions=normal"], 2, Default::default());
    let frame = || tcp4_frame(&TCP4);
    // B (port 2) -> A: A unknown, flood; B learned on 2.
    let b_to_a = key_of(frame(), B, A, 2);
    let (f_ba, mf) = installed(&sp.handle_upcall(&up(0, b_to_a), 0), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(1), DpAction::Output(3)]);
    // A (port 1) -> B on PMD 1: unicast to 2; learning A makes PMD 0's flood stale.
    let a_to_b = key_of(frame(), A, B, 1);
    let cmds = sp.handle_upcall(&up(1, a_to_b), 1);
    assert_eq!(cmds[0], (0, PmdCommand::Remove { ids: vec![f_ba] }));
    let (f_ab, mf) = installed(&cmds, 1);
    assert_eq!(mf.actions, vec![DpAction::Output(2)]);
    // B -> A again: now unicast to 1.
    let (f_ba2, mf) = installed(&sp.handle_upcall(&up(0, b_to_a), 2), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(1)]);
    // A moves to port 3: the flow towards A is stale, the flow towards B is not
    // (but A's old flow from port 1 stays valid: it still says "to B: port 2").
    let a3_to_b = key_of(frame(), A, B, 3);
    let cmds = sp.handle_upcall(&up(1, a3_to_b), 3);
    assert_eq!(cmds[0], (0, PmdCommand::Remove { ids: vec![f_ba2] }));
    assert_eq!(cmds.len(), 2);
    assert!(sp.mirror(1).unwrap().get(f_ab).is_some());
    assert_eq!(sp.mac_table("br0").unwrap().lookup(0, A, ms(3)), Some(3));
    let c = sp.counters();
    assert_eq!((c.mac_learned, c.mac_moved, c.removes), (3, 1, 2));
}

#[test]
fn aged_mac_entries_invalidate_dependants_on_the_next_call() {
    let cfg = SlowPathConfig { mac_aging: Duration::from_secs(10), ..Default::default() };
    let mut sp = slow_path(&["actions=normal"], 1, cfg);
    sp.handle_upcall(&up(0, key_of(tcp4_frame(&TCP4), A, B, 1)), 0);
    let (f_ba, mf) = installed(&sp.handle_upcall(&up(0, key_of(tcp4_frame(&TCP4), B, A, 2)), 1), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(1)]);
    assert_eq!(sp.tick(9_999), vec![(0, PmdCommand::ExpireIdle { idle_ms: 10_000 })]);
    assert_eq!(
        sp.tick(10_000),
        vec![(0, PmdCommand::Remove { ids: vec![f_ba] }), (0, PmdCommand::ExpireIdle { idle_ms: 10_000 })]
    );
    assert_eq!(sp.counters().mac_expired, 1);
}

#[test]
fn live_traffic_refreshes_mac_entries() {
    let cfg = SlowPathConfig { mac_aging: Duration::from_secs(10), ..Default::default() };
    let mut sp = slow_path(&["actions=normal"], 1, cfg);
    let a_to_b = key_of(tcp4_frame(&TCP4), A, B, 1);
    let (f_ab, _) = installed(&sp.handle_upcall(&up(0, a_to_b), 0), 0);
    // Learning B makes A's flood towards B stale; A's next miss unicasts.
    let cmds = sp.handle_upcall(&up(0, key_of(tcp4_frame(&TCP4), B, A, 2)), 0);
    assert_eq!(cmds[0], (0, PmdCommand::Remove { ids: vec![f_ab] }));
    let (f_ab, _) = installed(&sp.handle_upcall(&up(0, a_to_b), 0), 0);
    // A keeps sending through its megaflow; the slow path never sees it again.
    assert!(sp.update_stats(&[(0, f_ab, stats(100, 6000, 9_000))], 9_000).is_empty());
    assert_eq!(sp.tick(15_000).len(), 1 + 1, "B aged out (Remove of the flow to B) but A did not");
    assert_eq!(sp.mac_table("br0").unwrap().lookup(0, A, ms(15_000)), Some(1));
    assert_eq!(sp.mac_table("br0").unwrap().lookup(0, B, ms(15_000)), None);
}

#[test]
fn rule_stats_survive_flow_expiry_and_rule_changes() {
    let mut sp =
        slow_path(&["priority=10,ip,actions=output:2", "priority=5,arp,actions=output:3"], 1, Default::default());
    let (f1, _) = installed(&sp.handle_upcall(&up(0, tcp(80, 1)), 0), 0);
    let (f2, _) = installed(&sp.handle_upcall(&up(0, tcp(80, 3)), 0), 0);
    sp.handle_event(&PmdEvent { pmd: 0, reason: GoneReason::Expired, flows: vec![(f1, stats(5, 300, 40))] }, 50);
    assert_eq!(sp.n_flows(0), 1);
    let dump = sp.dump_flows("br0", &[(0, f2, stats(2, 120, 45))], 50).unwrap();
    assert_eq!((dump[0].packets, dump[0].bytes, dump[1].packets), (7, 420, 0));
    // Crediting live stats, then the final stats: only the difference is added.
    sp.update_stats(&[(0, f2, stats(2, 120, 45))], 60);
    assert_eq!(sp.dump_flows("br0", &[], 60).unwrap()[0].packets, 7);
    // A rule change that keeps the rule's identity but changes its actions: f2 is
    // removed, its final stats arrive later and still count for the rule.
    let cmds = sp
        .replace_rules("br0", rules(&["priority=10,ip,actions=output:3", "priority=5,arp,actions=output:3"]), 70)
        .unwrap();
    assert_eq!(cmds, vec![(0, PmdCommand::Remove { ids: vec![f2] })]);
    assert_eq!(sp.n_removing(), 1);
    sp.handle_event(&PmdEvent { pmd: 0, reason: GoneReason::Removed, flows: vec![(f2, stats(3, 180, 65))] }, 80);
    assert_eq!(sp.n_removing(), 0);
    let dump = sp.dump_flows("br0", &[], 80).unwrap();
    assert_eq!((dump[0].packets, dump[0].bytes, dump[0].duration_ms, dump[0].idle_ms), (8, 480, 80, 15));
    // add-flows of the same identity restarts its counters.
    sp.add_flows("br0", rules(&["priority=10,ip,actions=output:2"]), 90).unwrap();
    assert_eq!(sp.dump_flows("br0", &[], 90).unwrap()[0].packets, 0);
}

#[test]
fn add_flows_replaces_identical_rules_in_place_and_appends_others() {
    let mut sp =
        slow_path(&["priority=5,ip,actions=output:1", "priority=6,ip,actions=output:2"], 1, Default::default());
    let (f, _) = installed(&sp.handle_upcall(&up(0, tcp(80, 1)), 0), 0);
    sp.update_stats(&[(0, f, stats(4, 240, 10))], 10);
    assert_eq!(sp.dump_flows("br0", &[], 10).unwrap()[1].packets, 4);
    // Two adds of one identity in one change: the last wins, in the old rule's place.
    let added =
        rules(&["priority=5,ip,actions=output:3", "priority=5,tcp,actions=output:3", "priority=5,ip,actions=output:2"]);
    sp.add_flows("br0", added, 20).unwrap();
    let text: Vec<String> = sp.rules("br0").unwrap().iter().map(|r| r.to_string()).collect();
    assert_eq!(
        text,
        ["priority=5,ip actions=output:2", "priority=6,ip actions=output:2", "priority=5,tcp actions=output:3"]
    );
    let dump = sp.dump_flows("br0", &[], 20).unwrap();
    assert_eq!((dump[0].packets, dump[0].duration_ms), (0, 0), "the replaced rule restarts");
    assert_eq!((dump[1].packets, dump[1].duration_ms), (4, 20), "the untouched rule keeps its counters");
}

#[test]
fn timeouts_delete_rules_and_their_megaflows() {
    let mut sp = slow_path(
        &[
            "priority=10,tcp,hard_timeout=2,send_flow_rem,cookie=0x7,actions=output:2",
            "priority=10,udp,idle_timeout=1,actions=output:3",
            "priority=0,actions=drop",
        ],
        1,
        Default::default(),
    );
    let (f_tcp, _) = installed(&sp.handle_upcall(&up(0, tcp(80, 1)), 0), 0);
    let (f_udp, _) = installed(&sp.handle_upcall(&up(0, extract(&udp4_frame(1, 2, b""), 1)), 0), 0);
    // UDP traffic keeps the idle timeout away; TCP traffic does not stop the hard one.
    sp.update_stats(&[(0, f_udp, stats(1, 60, 900)), (0, f_tcp, stats(1, 60, 900))], 900);
    assert_eq!(sp.tick(1_500).len(), 1, "nothing expired yet");
    let cmds = sp.tick(2_000);
    assert_eq!(cmds[0], (0, PmdCommand::Remove { ids: vec![f_tcp, f_udp] }));
    assert_eq!(sp.rules("br0").unwrap().len(), 1);
    assert_eq!(sp.counters().rules_expired, 2);
    // Only the rule with send_flow_rem is reported, once, with its counters and reason.
    let expired = sp.take_expired();
    assert_eq!(expired.len(), 1);
    let e = &expired[0];
    assert_eq!((e.bridge.as_str(), e.reason, e.dump.rule.cookie), ("br0", crate::xlate::Expiry::Hard, 7));
    assert_eq!((e.dump.packets, e.dump.bytes, e.dump.duration_ms), (1, 60, 2_000));
    assert!(sp.take_expired().is_empty());
}

#[test]
fn looping_rules_install_a_drop_and_unknown_ports_execute_drop() {
    let mut sp = slow_path(&["actions=resubmit(,0)"], 1, Default::default());
    let (_, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 1)), 0), 0);
    assert!(mf.actions.is_empty());
    assert_eq!(sp.counters().xlate_errors, 1);
    let k = tcp(80, 99);
    assert_eq!(sp.handle_upcall(&up(0, k), 0), vec![(0, PmdCommand::Execute { key: k, actions: vec![] })]);
    assert!(sp.handle_upcall(&up(5, k), 0).is_empty(), "no such PMD");
    assert_eq!((sp.counters().no_bridge, sp.counters().bad_upcalls), (1, 1));
}

#[test]
fn refuses_bad_bridge_sets() {
    let br = |name: &str, ports: Vec<u32>| BridgeSpec {
        groups: Default::default(),
        name: name.into(),
        ports,
        datapath_ports: Vec::new(),
        rules: vec![],
    };
    let dup_port = SlowPath::new(vec![br("a", vec![1, 2]), br("b", vec![2])], 1, Default::default(), 0);
    assert!(matches!(dup_port, Err(SlowPathError::DuplicatePort { port: 2, .. })));
    let dup_name = SlowPath::new(vec![br("a", vec![1]), br("a", vec![2])], 1, Default::default(), 0);
    assert!(matches!(dup_name, Err(SlowPathError::DuplicateBridge(_))));
    let sp = SlowPath::new(vec![br("a", vec![1]), br("b", vec![2, 3])], 1, Default::default(), 0).unwrap();
    assert_eq!(
        (sp.bridge_names(), sp.bridge_of_port(3), sp.bridge_ports("b")),
        (vec!["a", "b"], Some("b"), Some(&[2, 3][..]))
    );
}

/// A rule change revalidates only the megaflows it can affect: an added rule whose
/// match is disjoint from a megaflow (on bits no action rewrites) leaves it alone, a
/// deleted rule only touches the megaflows that matched it.
#[test]
fn rule_changes_revalidate_only_what_they_can_affect() {
    let mut sp = slow_path(
        &["priority=10,tcp,tp_dst=80,actions=output:2", "priority=10,tcp,tp_dst=22,actions=output:3"],
        1,
        Default::default(),
    );
    let (id80, _) = installed(&sp.handle_upcall(&up(0, tcp(80, 1)), 0), 0);
    let (id22, _) = installed(&sp.handle_upcall(&up(0, tcp(22, 1)), 0), 0);
    let before = sp.counters().revalidated;
    // Disjoint: another destination port (the megaflows have tp_dst in their mask).
    let cmds = sp.add_flows("br0", rules(&["priority=20,tcp,tp_dst=443,actions=drop"]), 1).unwrap();
    assert!(cmds.is_empty());
    assert_eq!(sp.counters().revalidated, before, "no megaflow overlaps tp_dst=443");
    // Lower priority than both winners: cannot win.
    sp.add_flows("br0", rules(&["priority=5,tcp,actions=drop"]), 1).unwrap();
    assert_eq!(sp.counters().revalidated, before);
    // Overlaps the port-80 megaflow only, and wins: it is removed, the other stays.
    let cmds = sp.add_flows("br0", rules(&["priority=20,tcp,tp_dst=80,actions=output:3"]), 2).unwrap();
    assert_eq!(cmds, vec![(0, PmdCommand::Remove { ids: vec![id80] })]);
    assert_eq!(sp.counters().revalidated, before + 1);
    // Deleting the port-22 rule touches only its megaflow.
    let (cmds, n) = sp.del_flows("br0", &parse_match("tcp,tp_dst=22").unwrap(), 3).unwrap();
    assert_eq!(n, 1);
    assert_eq!(cmds, vec![(0, PmdCommand::Remove { ids: vec![id22] })]);
    assert_eq!(sp.counters().revalidated, before + 2);
}

/// A field rewritten before a later lookup is not compared: the rewritten value is what
/// the later table sees, so a new rule on it must revalidate the megaflow.
#[test]
fn rewritten_fields_are_not_used_to_skip_revalidation() {
    let mut sp = slow_path(
        &[
            "priority=10,ip,nw_dst=10.0.0.1,actions=mod_nw_dst:10.9.9.9,resubmit(,1)",
            "table=1,priority=1,actions=output:2",
        ],
        1,
        Default::default(),
    );
    let mut k1 = tcp(80, 1);
    k1.set_nw_dst(std::net::Ipv4Addr::new(10, 0, 0, 1));
    let (id, mf) = installed(&sp.handle_upcall(&up(0, k1), 0), 0);
    assert_eq!(mf.mask.nw_dst(), std::net::Ipv4Addr::BROADCAST, "nw_dst decided table 0");
    // Table 1 sees 10.9.9.9, not the packet's 10.0.0.1.
    let cmds = sp.add_flows("br0", rules(&["table=1,priority=5,ip,nw_dst=10.9.9.9,actions=output:3"]), 1).unwrap();
    assert_eq!(cmds, vec![(0, PmdCommand::Remove { ids: vec![id] })]);
    let again = sp.handle_upcall(&up(0, k1), 2);
    assert!(matches!(&again[..], [(0, PmdCommand::Install { megaflow, .. })]
        if megaflow.actions.last() == Some(&DpAction::Output(3))));
}

/// A tag edit waits for the next output to become a datapath action (as OVS commits it),
/// so one that no output follows leaves no action at all, yet the later lookups saw the
/// edited tag: a rule added on it must revalidate the megaflow (slow-path differential
/// seed 5309733: `strip_vlan,goto_table:2` into an empty table 2, then a rule on
/// `vlan_tci=0` in table 2). The same for a VID set and set back around a lookup (no
/// action either: the commit compares only the final TCI).
#[test]
fn uncommitted_tag_edits_are_not_used_to_skip_revalidation() {
    let tagged = extract(&crate::testpkt::with_vlan(&tcp4_frame(&TCP4), 0x8100, 10), 1);
    for (rules_text, added) in [
        (["priority=10,actions=strip_vlan,goto_table:2"], "table=2,priority=5,vlan_tci=0,actions=dec_ttl"),
        (
            ["priority=10,actions=mod_vlan_vid:20,resubmit(,2),mod_vlan_vid:10"],
            "table=2,priority=5,dl_vlan=20,actions=output:3",
        ),
    ] {
        let mut sp = slow_path(&rules_text, 1, Default::default());
        let (id, mf) = installed(&sp.handle_upcall(&up(0, tagged), 0), 0);
        assert_eq!(mf.actions, vec![], "{rules_text:?}: no output, no action");
        let cmds = sp.add_flows("br0", rules(&[added]), 1).unwrap();
        assert_eq!(cmds, vec![(0, PmdCommand::Remove { ids: vec![id] })], "{added}");
    }
}

/// The ovsdiff case "normal-keeps-flooding-after-learning" (seed 183), at the state
/// machine: a flood megaflow towards A, then a frame *from* A on the same port (A is
/// learned on port 1), then another frame towards A from port 1, which must be dropped
/// (destination on the input port). The state machine removes the flood megaflow when A
/// is learned and answers the later frame with a drop. (The divergence seen end to end
/// came from the PMD: an `Install` released every parked key its megaflow covered, so a
/// frame parked under its own key after the learning frame was flooded by the earlier
/// flood megaflow's `Install`. Now each key waits for its own answer: checked by the
/// slow-path differential test, whose oracle wants each parked packet to get its key's
/// decision at the answer to its own upcall, and by the PMD test
/// `each_parked_key_waits_for_its_own_answer_in_arrival_order`.)
#[test]
fn learning_the_destination_on_the_input_port_stops_the_flood() {
    let mut sp = slow_path(&["priority=0,in_port=1,actions=normal"], 1, Default::default());
    let to_a = key_of(tcp4_frame(&TCP4), B, A, 1);
    let (flood, mf) = installed(&sp.handle_upcall(&up(0, to_a), 0), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(2), DpAction::Output(3)], "A unknown: flood");
    let from_a = key_of(tcp4_frame(&TCP4), A, B, 1);
    let cmds = sp.handle_upcall(&up(0, from_a), 1);
    assert_eq!(cmds[0], (0, PmdCommand::Remove { ids: vec![flood] }), "learning A removes the flood: {cmds:?}");
    // Another frame towards A on port 1 (another TTL: a key the flood megaflow covered).
    let mut again = to_a;
    again.set_nw_ttl(to_a.nw_ttl() ^ 1);
    assert!(mf.matches(&again));
    let (_, mf2) = installed(&sp.handle_upcall(&up(0, again), 2), 0);
    assert_eq!(mf2.actions, vec![], "A is on the input port: drop");
}

/// The megaflow ids each `Remove` of `cmds` names, in order.
fn removed_ids(cmds: &[(usize, PmdCommand)]) -> Vec<FlowId> {
    cmds.iter()
        .flat_map(|(_, c)| match c {
            PmdCommand::Remove { ids } => ids.clone(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn port_changes_revalidate_floods_and_forget_removed_in_ports() {
    let mut sp =
        slow_path(&["priority=10,in_port=1,actions=output:3", "priority=0,actions=flood"], 1, Default::default());
    let (to3, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 1)), 0), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(3)]);
    let (flood, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 2)), 0), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(1), DpAction::Output(3)]);
    let (from3, _) = installed(&sp.handle_upcall(&up(0, tcp(80, 3)), 0), 0);
    // Port 4 joins: the flood's output set changes, the output:3 megaflow stays.
    let cmds = sp.set_bridge_ports("br0", vec![1, 2, 3, 4], vec![], 1).unwrap();
    assert_eq!(removed_ids(&cmds), vec![flood, from3]);
    assert_eq!(sp.bridge_of_port(4), Some("br0"));
    let (_, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 2)), 2), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(1), DpAction::Output(3), DpAction::Output(4)]);
    // Port 3 leaves: output:3 now translates to nothing, so that megaflow goes too, and
    // nothing left in the mirror outputs to 3 or comes from it.
    let cmds = sp.set_bridge_ports("br0", vec![1, 2, 4], vec![], 3).unwrap();
    assert!(removed_ids(&cmds).contains(&to3), "{cmds:?}");
    for (_, f) in sp.mirror(0).unwrap().iter() {
        assert!(!f.actions.contains(&DpAction::Output(3)) && f.key.in_port() != 3, "{f:?}");
    }
    assert_eq!(sp.bridge_of_port(3), None);
    // A miss from the removed port is answered without a megaflow.
    assert!(matches!(sp.handle_upcall(&up(0, tcp(80, 3)), 4)[..], [(0, PmdCommand::Execute { .. })]));
}

#[test]
fn bridges_come_and_go() {
    let mut sp = slow_path(&["actions=normal"], 2, Default::default());
    let br1 = BridgeSpec {
        groups: Default::default(),
        name: "br1".into(),
        ports: vec![3],
        datapath_ports: Vec::new(),
        rules: Vec::new(),
    };
    assert!(matches!(sp.add_bridge(br1.clone(), 0), Err(SlowPathError::DuplicatePort { port: 3, .. })));
    let br1 = BridgeSpec {
        groups: Default::default(),
        ports: vec![7, 8],
        datapath_ports: Vec::new(),
        rules: rules(&["actions=output:8"]),
        ..br1
    };
    sp.add_bridge(br1.clone(), 0).unwrap();
    assert!(matches!(sp.add_bridge(br1, 0), Err(SlowPathError::DuplicateBridge(_))));
    let (id, mf) = installed(&sp.handle_upcall(&up(1, tcp(80, 7)), 0), 1);
    assert_eq!(mf.actions, vec![DpAction::Output(8)]);
    installed(&sp.handle_upcall(&up(1, tcp(80, 1)), 0), 1);
    let cmds = sp.remove_bridge("br1", 1).unwrap();
    assert_eq!(cmds, vec![(1, PmdCommand::Remove { ids: vec![id] })]);
    assert_eq!(sp.bridge_names(), vec!["br0"]);
    assert_eq!(sp.n_flows(1), 1, "br0's megaflow stays");
    assert!(matches!(sp.remove_bridge("br1", 1), Err(SlowPathError::UnknownBridge(_))));
    // The retired slot is reused, and port 7 is free again.
    sp.add_bridge(
        BridgeSpec {
            groups: Default::default(),
            name: "br2".into(),
            ports: vec![7],
            datapath_ports: Vec::new(),
            rules: Vec::new(),
        },
        2,
    )
    .unwrap();
    assert_eq!(sp.bridge_of_port(7), Some("br2"));
}

#[test]
fn each_bridge_has_its_own_port_numbers() {
    // br0's ports 1 and 2 are datapath ports 1 and 2; br1's ports 1 and 2 are 3 and 4.
    let rule = rules(&["in_port=1,actions=output:2", "in_port=2,actions=flood"]);
    let br = |name: &str, dp: Vec<u32>| BridgeSpec {
        groups: Default::default(),
        name: name.into(),
        ports: vec![1, 2],
        datapath_ports: dp,
        rules: rule.clone(),
    };
    let mut sp = SlowPath::new(vec![br("br0", vec![1, 2]), br("br1", vec![3, 4])], 1, Default::default(), 0).unwrap();
    let (_, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 3)), 0), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(4)], "br1's port 2 is datapath port 4");
    assert_eq!(mf.key.in_port(), 3, "the PMD's key keeps the datapath's in_port");
    let (_, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 4)), 0), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(3)], "flood stays within br1");
    let (_, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 1)), 0), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(2)]);
    assert_eq!((sp.bridge_of_port(3), sp.bridge_of_port(1)), (Some("br1"), Some("br0")));
    // The same datapath port in two bridges is refused.
    assert!(SlowPath::new(vec![br("br0", vec![1, 2]), br("br1", vec![2, 4])], 1, Default::default(), 0).is_err());
    // br1's port 2 moves to datapath port 5: its megaflows go, br0's stay.
    let before = sp.n_flows(0);
    let cmds = sp.set_bridge_ports("br1", vec![1, 2], vec![3, 5], 1).unwrap();
    assert_eq!(removed_ids(&cmds).len(), 2, "{cmds:?}");
    assert_eq!(sp.n_flows(0), before - 2);
    let (_, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 3)), 2), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(5)]);
}

#[test]
fn the_internal_port_is_a_port_of_flood_all_normal_and_rules() {
    use ferrovs_config::LOCAL_PORT;
    // Ports 1, 2 and the internal port (OpenFlow LOCAL, datapath 0xfeff), as the daemon
    // gives them.
    let local_dp = 0xfeff;
    let spec = |rule: &[&str]| BridgeSpec {
        name: "br0".into(),
        ports: vec![LOCAL_PORT, 1, 2],
        datapath_ports: vec![local_dp, 1, 2],
        rules: rules(rule),
        groups: Default::default(),
    };
    let out = |ports: &[u32]| ports.iter().map(|&p| DpAction::Output(p)).collect::<Vec<_>>();
    for action in ["flood", "all"] {
        let mut sp = SlowPath::new(vec![spec(&[&format!("actions={action}")])], 1, Default::default(), 0).unwrap();
        let (_, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 1)), 0), 0);
        assert_eq!(mf.actions, out(&[local_dp, 2]), "{action} from port 1 includes LOCAL");
        let (_, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, local_dp)), 0), 0);
        assert_eq!(mf.actions, out(&[1, 2]), "{action} from LOCAL: every other port");
    }
    // normal: LOCAL floods like any port until a MAC is learned on it, then is the
    // destination of that MAC.
    let mut sp = SlowPath::new(vec![spec(&["actions=normal"])], 1, Default::default(), 0).unwrap();
    let (_, mf) = installed(&sp.handle_upcall(&up(0, key_of(tcp4_frame(&TCP4), A, B, local_dp)), 0), 0);
    assert_eq!(mf.actions, out(&[1, 2]), "B unknown: flood from LOCAL");
    let (_, mf) = installed(&sp.handle_upcall(&up(0, key_of(tcp4_frame(&TCP4), B, A, 1)), 1), 0);
    assert_eq!(mf.actions, out(&[local_dp]), "A was learned on LOCAL");
    // in_port=LOCAL and output:LOCAL.
    let mut sp = SlowPath::new(
        vec![spec(&["in_port=LOCAL,actions=output:2", "in_port=2,actions=LOCAL"])],
        1,
        Default::default(),
        0,
    )
    .unwrap();
    let (_, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, local_dp)), 0), 0);
    assert_eq!(mf.actions, out(&[2]));
    let (_, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 2)), 0), 0);
    assert_eq!(mf.actions, out(&[local_dp]));
}

#[test]
fn controller_actions_and_table_miss_modes() {
    use crate::actions::{REASON_ACTION, REASON_NO_MATCH};
    let mut sp =
        slow_path(&["table=0,priority=5,cookie=0x77,tcp,actions=output:2,controller:128"], 1, Default::default());
    let k = tcp(80, 1);
    // A rule's controller action: the megaflow itself sends every packet up, with the
    // rule's table and cookie and the packet's in_port.
    let (_, mf) = installed(&sp.handle_upcall(&up(0, k), 1), 0);
    let to_controller =
        |max_len, reason, cookie| DpAction::Controller { in_port: 1, max_len, reason, table: 0, cookie };
    assert_eq!(mf.actions, vec![DpAction::Output(2), to_controller(128, REASON_ACTION, 0x77)]);
    // A miss drops by default.
    let udp = extract(&udp4_frame(5000, 53, b"q"), 1);
    assert_eq!(installed(&sp.handle_upcall(&up(0, udp), 2), 0).1.actions, vec![]);
    // OpenFlow 1.0 controller connected: a miss is a packet-in; the drop megaflow goes.
    let cmds = sp.set_miss_mode("br0", MissMode::Controller, 3).unwrap();
    assert!(cmds.iter().any(|(_, c)| matches!(c, PmdCommand::Remove { .. })), "{cmds:?}");
    let (_, mf) = installed(&sp.handle_upcall(&up(0, udp), 4), 0);
    assert_eq!(mf.actions, vec![to_controller(u16::MAX, REASON_NO_MATCH, u64::MAX)]);
    // Fail-open: the rules are bypassed, the bridge floods like `normal`.
    sp.set_miss_mode("br0", MissMode::FailOpen, 5).unwrap();
    let (_, mf) = installed(&sp.handle_upcall(&up(0, k), 6), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(2), DpAction::Output(3)]);
    // Setting the same mode again changes nothing.
    assert_eq!(sp.set_miss_mode("br0", MissMode::FailOpen, 7).unwrap(), vec![]);
    assert_eq!(sp.rules("br0").unwrap().len(), 1, "the rules survive mode changes");
}

#[test]
fn packet_out_translates_actions_and_output_table() {
    let sp = slow_path(&["priority=5,in_port=1,tcp,actions=output:3"], 1, Default::default());
    let frame = tcp4_frame(&TCP4);
    let flood = [ferrovs_config::Action::Flood];
    assert_eq!(sp.packet_out("br0", &frame, 1, &flood, 0).unwrap(), vec![DpAction::Output(2), DpAction::Output(3)]);
    // From the controller (no ingress port of the bridge): every port.
    let all = sp.packet_out("br0", &frame, 0xffff_fffd, &flood, 0).unwrap();
    assert_eq!(all, vec![DpAction::Output(1), DpAction::Output(2), DpAction::Output(3)]);
    // output:TABLE: through the rules, as received on in_port.
    let table = [ferrovs_config::Action::Resubmit(ferrovs_config::rules::Resubmit { in_port: None, table: Some(0) })];
    assert_eq!(sp.packet_out("br0", &frame, 1, &table, 0).unwrap(), vec![DpAction::Output(3)]);
    assert!(matches!(sp.packet_out("nope", &frame, 1, &flood, 0), Err(SlowPathError::UnknownBridge(_))));
}

#[test]
fn group_changes_revalidate_and_group_deletes_take_their_rules() {
    use ferrovs_config::{Group, GroupKind};
    let mut sp = slow_path(&["priority=0,actions=drop"], 1, Default::default());
    let all = |ports: &[u32]| Group {
        kind: GroupKind::All,
        buckets: ports.iter().map(|p| vec![ferrovs_config::Action::Output(*p)]).collect(),
    };
    let uses_group = rules(&["priority=10,tcp,actions=group:1"]);
    // A rule naming a group that does not exist is refused, as OVS does.
    match sp.add_flows("br0", uses_group.clone(), 0) {
        Err(SlowPathError::Rules { error: BuildError::UnknownGroup { group: 1, .. }, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(sp.rules("br0").unwrap().len(), 1);
    sp.group_mod("br0", GroupChange::Add(1, all(&[2, 3])), 0).unwrap();
    sp.add_flows("br0", uses_group, 0).unwrap();
    let (id, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 1)), 1), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(2), DpAction::Output(3)]);
    // Modifying the group re-translates the megaflow that used it.
    let (cmds, deleted) = sp.group_mod("br0", GroupChange::Modify(1, all(&[3])), 2).unwrap();
    assert_eq!(deleted, 0);
    assert!(!cmds.is_empty(), "the megaflow is revalidated");
    let now_actions = sp.mirror(0).unwrap().get(id).map(|f| f.actions.clone());
    match now_actions {
        Some(a) => assert_eq!(a, vec![DpAction::Output(3)], "updated in place"),
        None => {
            let (_, mf) = installed(&sp.handle_upcall(&up(0, tcp(80, 1)), 3), 0);
            assert_eq!(mf.actions, vec![DpAction::Output(3)], "removed, then translated anew");
        }
    }
    // Refusals change nothing.
    let e = |r: Result<_, SlowPathError>| match r {
        Err(SlowPathError::Group { error, .. }) => error,
        other => panic!("{other:?}"),
    };
    assert_eq!(e(sp.group_mod("br0", GroupChange::Add(1, all(&[2])), 4)), GroupError::Exists);
    assert_eq!(e(sp.group_mod("br0", GroupChange::Modify(5, all(&[2])), 4)), GroupError::Unknown);
    let two = Group { kind: GroupKind::Indirect, ..all(&[2, 3]) };
    assert_eq!(e(sp.group_mod("br0", GroupChange::Add(2, two), 4)), GroupError::IndirectBuckets);
    assert_eq!(sp.groups("br0").unwrap().len(), 1);
    // Deleting the group deletes the rule that used it.
    let (_, deleted) = sp.group_mod("br0", GroupChange::Delete(1), 5).unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(sp.rules("br0").unwrap().len(), 1);
    assert!(sp.groups("br0").unwrap().is_empty());
    // A reload's groups replace them all; the rules of a group that goes go with it.
    let groups = |ids: &[u32]| ids.iter().map(|id| (*id, all(&[2]))).collect::<ferrovs_config::Groups>();
    sp.group_mod("br0", GroupChange::Replace(groups(&[1, 2])), 6).unwrap();
    sp.add_flows("br0", rules(&["priority=10,tcp,actions=group:1", "priority=11,udp,actions=group:2"]), 6).unwrap();
    let (_, deleted) = sp.group_mod("br0", GroupChange::Replace(groups(&[2, 3])), 7).unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(sp.groups("br0").unwrap().keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    let bad = Group { kind: GroupKind::Indirect, ..all(&[2, 3]) };
    let e2 = sp.group_mod("br0", GroupChange::Replace([(4, bad)].into_iter().collect()), 8);
    assert!(matches!(e2, Err(SlowPathError::Group { id: 4, error: GroupError::IndirectBuckets })), "{e2:?}");
}

/// A neighbour solicitation in a bridge with ND rules: its upcall installs a slow-path
/// megaflow; each packet it sends up is translated with its ND fields, forwarded by them
/// and counted for its rules.
#[test]
fn nd_packets_go_through_the_slow_path_one_by_one() {
    use crate::actions::REASON_SLOW_PATH;
    use crate::testpkt::{ipv6_frame, nd_message};
    let mut sp = slow_path(
        &["priority=100,icmp6,icmp_type=135,nd_target=fd00::1,actions=drop", "priority=0,actions=output:2"],
        1,
        Default::default(),
    );
    let ns = |last: u8| {
        let target = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last];
        ipv6_frame(58, 0, &[], &nd_message(135, 0, target, &[]))
    };
    let (_, mf) = installed(&sp.handle_upcall(&up(0, extract(&ns(1), 1)), 0), 0);
    assert!(
        matches!(mf.actions[..], [DpAction::Controller { reason: REASON_SLOW_PATH, max_len: u16::MAX, .. }]),
        "{:?}",
        mf.actions
    );
    let (drop, cmds) = sp.slow_path_packet(&ns(1), 1, 10).unwrap();
    assert!(drop.is_empty() && cmds.is_empty());
    let (fwd, _) = sp.slow_path_packet(&ns(2), 1, 20).unwrap();
    assert_eq!(fwd, vec![DpAction::Output(2)]);
    assert!(sp.slow_path_packet(&ns(2), 9, 30).is_none(), "a port on no bridge");
    assert_eq!(sp.counters().slow_path_packets, 3);
    let dump = sp.dump_flows("br0", &[], 40).unwrap();
    let len = ns(1).len() as u64;
    assert_eq!((dump[0].packets, dump[0].bytes, dump[1].packets), (1, len, 1));
}

/// A rule writing the ND fields: an NS's upcall installs a slow-path megaflow (the writes
/// are per packet), each packet comes back rewritten by its own ND fields' difference, a
/// packet-out's writes too; deleting the rule takes the megaflow away; other packets keep
/// the fast path.
#[test]
fn nd_writes_go_through_the_slow_path_one_by_one() {
    use crate::actions::REASON_SLOW_PATH;
    use crate::testpkt::{ipv6_frame, nd_message};
    let mut sp = slow_path(
        &[
            "priority=100,icmp6,icmp_type=135,actions=set_field:fd00::9->nd_target,output:2",
            "priority=0,actions=output:3",
        ],
        1,
        Default::default(),
    );
    let ns = |last: u8| {
        let target = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last];
        ipv6_frame(58, 0, &[], &nd_message(135, 0, target, &[]))
    };
    let (id, mf) = installed(&sp.handle_upcall(&up(0, extract(&ns(1), 1)), 0), 0);
    assert!(matches!(mf.actions[..], [DpAction::Controller { reason: REASON_SLOW_PATH, .. }]), "{:?}", mf.actions);
    let (rewritten, _) = sp.slow_path_packet(&ns(1), 1, 10).unwrap();
    assert_eq!(rewritten, vec![DpAction::SetNdTarget("fd00::9".parse().unwrap()), DpAction::Output(2)]);
    let (same, _) = sp.slow_path_packet(&ns(9), 1, 11).unwrap();
    assert_eq!(same, vec![DpAction::Output(2)], "already fd00::9: nothing to commit");
    let set = ferrovs_config::parse_flow("icmp6,icmp_type=135,actions=set_field:7->nd_reserved,output:2").unwrap();
    let out = sp.packet_out("br0", &ns(1), 1, &set.actions, 12).unwrap();
    assert_eq!(out, vec![DpAction::SetNdReserved(7), DpAction::Output(2)], "a packet-out's ND write");
    let (_, other) =
        installed(&sp.handle_upcall(&up(0, extract(&crate::testpkt::tcp4_frame(&crate::testpkt::TCP4), 1)), 13), 0);
    assert_eq!(other.actions, vec![DpAction::Output(3)]);
    let (cmds, _) = sp.del_flows("br0", &parse_match("icmp6").unwrap(), 14).unwrap();
    assert_eq!(cmds, vec![(0, PmdCommand::Remove { ids: vec![id] })]);
}

/// A slow-path megaflow depends on the ND rules of the table it stopped at and on the
/// rules its path matched before: deleting the last ND rule removes it (the messages are
/// decided in the fast path again), adding a higher-priority ND rule to that table
/// revalidates it (it stays: the table still has ND rules), and so does deleting a rule
/// of the path that led there.
#[test]
fn a_slow_path_megaflow_is_revalidated_when_the_nd_rules_change() {
    use crate::actions::REASON_SLOW_PATH;
    use crate::testpkt::{ipv6_frame, nd_message};
    let ns = ipv6_frame(58, 0, &[], &nd_message(135, 0, [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], &[]));
    let mut sp = slow_path(
        &[
            "priority=50,ipv6,actions=resubmit(,1)",
            "table=1,priority=100,icmp6,icmp_type=135,nd_target=fd00::1,actions=drop",
            "table=1,priority=0,actions=output:2",
        ],
        1,
        Default::default(),
    );
    let slow = |mf: &Megaflow| matches!(mf.actions[..], [DpAction::Controller { reason: REASON_SLOW_PATH, .. }]);
    let (id, mf) = installed(&sp.handle_upcall(&up(0, extract(&ns, 1)), 0), 0);
    assert!(slow(&mf), "{:?}", mf.actions);
    let before = sp.counters().revalidated;
    sp.add_flows("br0", rules(&["table=1,priority=200,icmp6,icmp_type=135,nd_target=fd00::2,actions=drop"]), 1)
        .unwrap();
    assert_eq!(sp.counters().revalidated, before + 1, "the added ND rule revalidated it");
    assert!(sp.mirror(0).unwrap().get(id).is_some(), "still a slow-path megaflow");
    let (cmds, n) = sp.del_flows("br0", &parse_match("table=1,icmp6,icmp_type=135").unwrap(), 2).unwrap();
    assert_eq!((cmds, n), (vec![(0, PmdCommand::Remove { ids: vec![id] })], 2), "no ND rule left");
    let (id, mf) = installed(&sp.handle_upcall(&up(0, extract(&ns, 1)), 3), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(2)]);
    // Back to the slow path with an ND rule, then the rule that led there deleted.
    let cmds =
        sp.add_flows("br0", rules(&["table=1,priority=100,icmp6,icmp_type=135,nd_target=fd00::1,actions=drop"]), 4);
    assert_eq!(cmds.unwrap(), vec![(0, PmdCommand::Remove { ids: vec![id] })], "the fast-path megaflow is taken over");
    let (id, mf) = installed(&sp.handle_upcall(&up(0, extract(&ns, 1)), 5), 0);
    assert!(slow(&mf), "{:?}", mf.actions);
    let (cmds, _) = sp.del_flows("br0", &parse_match("ipv6").unwrap(), 6).unwrap();
    assert_eq!(cmds, vec![(0, PmdCommand::Remove { ids: vec![id] })], "table 0 now drops it in the fast path");
}

/// A random rule of a two-table ACL + routing set over a small address space, so that
/// rules and megaflows overlap often.
fn random_rule(r: &mut crate::testpkt::SplitMix) -> Rule {
    let table = r.below(2);
    let mut m: Vec<String> = vec![format!("table={table}"), format!("priority={}", r.below(40))];
    if r.chance(20) {
        m.push(format!("in_port={}", 1 + r.below(3)));
    }
    m.push(r.pick(&["ip", "tcp", "udp", "tcp", "ip"]).to_string());
    if r.chance(60) {
        let len = r.pick(&[8, 16, 24, 32]);
        m.push(format!("nw_dst=10.{}.{}.{}/{len}", r.below(3), r.below(3), 1 + r.below(3)));
    }
    if r.chance(30) {
        m.push(format!("nw_src=192.168.{}.0/24", r.below(2)));
    }
    if m.iter().any(|f| f == "tcp" || f == "udp") && r.chance(50) {
        m.push(format!("tp_dst={}", r.pick(&[22, 53, 80, 443])));
    }
    if r.chance(15) {
        m.push(format!("dl_src=02:00:00:00:00:0{}", r.below(3)));
    }
    let actions = match (table, r.below(5)) {
        (0, 0) => "drop".to_string(),
        (0, 1 | 2) => "resubmit(,1)".to_string(),
        (0, 3) => "mod_nw_dst:10.1.1.1,resubmit(,1)".to_string(),
        (_, x) => format!("output:{}", 1 + x % 3),
    };
    parse_flow(&format!("{},actions={actions}", m.join(","))).unwrap()
}

fn random_key(r: &mut crate::testpkt::SplitMix) -> FlowKey {
    let t = Tcp4 {
        src: [192, 168, r.below(2) as u8, 1 + r.below(3) as u8],
        dst: [10, r.below(3) as u8, r.below(3) as u8, 1 + r.below(3) as u8],
        dport: r.pick(&[22, 53, 80, 443, 8080]),
        ..TCP4
    };
    let frame = if r.chance(50) { tcp4_frame(&t) } else { udp4_frame(t.sport, t.dport, b"x") };
    let mac = [0x02, 0, 0, 0, 0, r.below(3) as u8];
    key_of(frame, mac, B, 1 + r.below(3) as u32)
}

fn removed_set(cmds: &[(usize, PmdCommand)]) -> BTreeSet<(usize, FlowId)> {
    let mut v = BTreeSet::new();
    for (p, c) in cmds {
        if let PmdCommand::Remove { ids } = c {
            v.extend(ids.iter().map(|id| (*p, *id)));
        }
    }
    v
}

/// The index (`flow_index`) against full revalidation of the bridge, on random rule
/// sets and megaflows, one single-rule or small change (add, modify, delete) each. Full
/// revalidation also removes megaflows whose decision did not change but whose fresh
/// translation would have another mask, so the check is: the indexed change removes a
/// subset of what full revalidation removes, and every megaflow it keeps still gives, for
/// packets it covers, the decision of the new rules. The index finds exactly the
/// megaflows a walk over the mirrors with the `rule_deps` test finds (checked inside
/// every rule change in unit tests: `check_index`), it holds exactly the mirrored
/// megaflows, and it revalidates less.
#[test]
fn indexed_rule_changes_agree_with_full_revalidation() {
    let mut r = crate::testpkt::SplitMix(0x5eed);
    let mut revalidated = (0, 0);
    // One change per case: after it the two mirrors differ, so later ids would too.
    for case in 0..300 {
        let base: Vec<String> = (0..30).map(|_| random_rule(&mut r).to_string()).collect();
        let base: Vec<&str> = base.iter().map(String::as_str).collect();
        let mut sps = [slow_path(&base, 2, Default::default()), slow_path(&base, 2, Default::default())];
        sps[1].full_revalidation = true;
        {
            let step = 1;
            for _ in 0..150 {
                let (pmd, key) = (r.index(2), random_key(&mut r));
                for sp in &mut sps {
                    sp.handle_upcall(&up(pmd, key), step);
                }
            }
            let rules_now = sps[0].rules("br0").unwrap().to_vec();
            let change = r.below(4);
            let apply = |sp: &mut SlowPath, r: &mut crate::testpkt::SplitMix| match change {
                0 => sp.add_flows("br0", vec![random_rule(r)], step).unwrap(),
                1 => sp.add_flows("br0", (0..1 + r.below(3)).map(|_| random_rule(r)).collect(), step).unwrap(),
                2 => {
                    // Modify: an existing rule with other actions.
                    let mut rule = rules_now[r.index(rules_now.len())].clone();
                    rule.actions = vec![ferrovs_config::rules::Action::Output(1 + r.below(3) as u32)];
                    sp.add_flows("br0", vec![rule], step).unwrap()
                }
                _ => {
                    let rule = &rules_now[r.index(rules_now.len())];
                    let spec = MatchSpec {
                        table: Some(rule.table),
                        priority: None,
                        matches: rule.matches.clone(),
                        cookie: None,
                    };
                    sp.del_flows("br0", &spec, step).unwrap().0
                }
            };
            let before = (sps[0].counters().revalidated, sps[1].counters().revalidated);
            // The same random choices for both.
            let seed = r.next_u64();
            let got = removed_set(&apply(&mut sps[0], &mut crate::testpkt::SplitMix(seed)));
            let full = removed_set(&apply(&mut sps[1], &mut crate::testpkt::SplitMix(seed)));
            let ctx = format!("case {case} change {change}");
            assert!(got.is_subset(&full), "{ctx}: removed {got:?}, full revalidation {full:?}");
            for pmd in 0..2 {
                for (id, f) in sps[0].mirror(pmd).unwrap().iter() {
                    for _ in 0..4 {
                        // A packet of the megaflow: its key, other bits random.
                        let mut k = random_key(&mut r);
                        for w in 0..k.w.len() {
                            k.w[w] = (k.w[w] & !f.mask.w[w]) | f.key.w[w];
                        }
                        let t = sps[0].trace("br0", &k, step).unwrap();
                        assert_eq!(t.translation.actions, f.actions, "{ctx}: megaflow {pmd}/{id} kept stale");
                    }
                }
            }
            let indexed = sps[0].counters().revalidated - before.0;
            let all = sps[1].counters().revalidated - before.1;
            assert!(indexed <= all, "{ctx}: {indexed} > {all}");
            revalidated = (revalidated.0 + indexed, revalidated.1 + all);
            let n: usize = (0..2).map(|p| sps[0].n_flows(p)).sum();
            assert_eq!(sps[0].bridges[0].flows.len(), n, "{ctx}: index and mirror");
        }
    }
    // The index must actually skip work, not just agree.
    assert!(revalidated.0 * 2 < revalidated.1, "revalidated {revalidated:?}");
}

/// With `print_changed_rules`, `add_flows` and `del_flows` leave the text of the new
/// version (a rule replaced in place included), and it stays; a large change is printed
/// on a thread of its own (`PRINT_ON_SIDE_RULES`), a small one inline, with the same
/// result; changes in place keep it current; without it, nothing is printed until texts
/// are kept (`keep_printed_rules`, which changes in place then keep current as well).
#[test]
fn changes_keep_their_rules_printed_when_asked() {
    use crate::xlate::tables::PRINT_ON_SIDE_RULES;
    let printed_as_rules =
        |sp: &SlowPath| -> Vec<String> { sp.rules("br0").unwrap().iter().map(ToString::to_string).collect() };
    let current = |sp: &SlowPath, what: &str| {
        assert_eq!(sp.printed_rules("br0").as_deref(), Some(&printed_as_rules(sp)), "{what}");
    };
    let cfg = SlowPathConfig { print_changed_rules: true, ..Default::default() };
    let mut sp = slow_path(&["priority=5,ip,actions=output:1", "priority=0,actions=drop"], 1, cfg);
    assert_eq!(sp.printed_rules("br0"), None, "the initial rules come from the config, not a change");
    sp.add_flows("br0", rules(&["priority=5,ip,actions=output:3", "priority=7,arp,actions=NORMAL"]), 1).unwrap();
    current(&sp, "printed by the change");
    assert_eq!(sp.printed_rules("br0").unwrap()[0], "priority=5,ip actions=output:3", "replaced in place");
    current(&sp, "kept");

    let many: Vec<Rule> = (0..PRINT_ON_SIDE_RULES as u32 + 10)
        .map(|i| parse_flow(&format!("priority=9,ip,nw_dst={},actions=output:2", std::net::Ipv4Addr::from(i))).unwrap())
        .collect();
    sp.add_flows("br0", many, 2).unwrap();
    assert_eq!(sp.printed_rules("br0").map(|t| t.len()), Some(PRINT_ON_SIDE_RULES + 13));
    current(&sp, "printed on the side");
    sp.del_flows("br0", &parse_match("ip,nw_dst=0.0.0.0/1").unwrap(), 3).unwrap();
    current(&sp, "printed by del_flows");

    let cfg = SlowPathConfig { add_in_place_from: 1, ..Default::default() };
    let mut quiet = slow_path(&["priority=0,actions=drop", "priority=3,arp,actions=drop"], 1, cfg);
    quiet.add_flows("br0", rules(&["priority=5,ip,actions=output:3"]), 1).unwrap();
    assert_eq!(quiet.printed_rules("br0"), None);
    let texts = quiet.rules("br0").unwrap().iter().map(ToString::to_string).collect();
    quiet.keep_printed_rules("br0", texts);
    quiet.add_flows("br0", rules(&["priority=5,ip,actions=output:4", "priority=6,ip,actions=drop"]), 2).unwrap();
    assert_eq!(quiet.tables("br0").unwrap().changed_in_place(), 2, "changed in place");
    current(&quiet, "added in place");
    quiet.del_flows("br0", &parse_match("arp").unwrap(), 3).unwrap();
    current(&quiet, "deleted in place");
}

/// Every change request that deletes rules (`del_flows`, a replacement of the rule set,
/// a group delete) names the deleted `send_flow_rem` rules for the controllers'
/// flow-removed messages, once each, in place and by a new version alike; a modify and a
/// rule without the flag name none, a timeout is an expiry, not a deletion.
#[test]
fn deletions_by_request_name_their_send_flow_rem_rules() {
    use ferrovs_config::{Group, GroupKind};
    for in_place_from in [1, usize::MAX] {
        let cfg = SlowPathConfig { add_in_place_from: in_place_from, ..Default::default() };
        let base = [
            "priority=5,udp,send_flow_rem,actions=drop",
            "priority=6,ip,send_flow_rem,actions=drop",
            "priority=7,icmp,actions=drop",
            "priority=8,tcp,send_flow_rem,hard_timeout=2,actions=drop",
            "priority=0,actions=drop",
        ];
        let mut sp = slow_path(&base, 1, cfg);
        let priorities = |d: Vec<DeletedRule>| d.iter().map(|d| d.dump.rule.priority).collect::<Vec<_>>();
        // del-flows of two flagged rules and one without the flag.
        sp.del_flows("br0", &parse_match("udp").unwrap(), 10).unwrap();
        sp.del_flows("br0", &parse_match("icmp").unwrap(), 10).unwrap();
        assert_eq!(priorities(sp.take_deleted()), vec![5], "in_place_from {in_place_from}");
        assert!(sp.take_deleted().is_empty(), "taken once");
        // A replacement that changes only actions deletes nothing; one without a flagged
        // rule's identity deletes it, in place (a deletion edit) or by a new version.
        let mut modified = sp.rules("br0").unwrap().to_vec();
        modified[0].actions = vec![ferrovs_config::Action::Normal];
        sp.replace_rules("br0", modified, 20).unwrap();
        assert!(sp.take_deleted().is_empty());
        let fewer: Vec<Rule> = sp.rules("br0").unwrap().iter().filter(|r| r.priority != 6).cloned().collect();
        sp.replace_rules("br0", fewer, 30).unwrap();
        assert_eq!(priorities(sp.take_deleted()), vec![6]);
        sp.add_flows("br0", rules(&["priority=6,ip,send_flow_rem,actions=drop"]), 40).unwrap();
        let reordered = rules(&["priority=0,actions=drop", "priority=9,udp,send_flow_rem,actions=drop"]);
        sp.replace_rules("br0", reordered, 50).unwrap();
        assert_eq!(priorities(sp.take_deleted()), vec![8, 6], "in rule order; the new rule is no deletion");
        // A group delete takes the flagged rule that used the group.
        let all = Group { kind: GroupKind::All, buckets: vec![vec![ferrovs_config::Action::Output(2)]] };
        sp.group_mod("br0", GroupChange::Add(1, all), 60).unwrap();
        sp.add_flows("br0", rules(&["priority=10,tcp,send_flow_rem,actions=group:1"]), 60).unwrap();
        sp.group_mod("br0", GroupChange::Delete(1), 70).unwrap();
        assert_eq!(priorities(sp.take_deleted()), vec![10]);
        // A timeout is reported as an expiry only.
        sp.add_flows("br0", rules(&["priority=11,tcp,send_flow_rem,hard_timeout=1,actions=drop"]), 80).unwrap();
        sp.tick(5_000);
        assert_eq!(sp.take_expired().iter().map(|e| e.dump.rule.priority).collect::<Vec<_>>(), vec![11]);
        assert!(sp.take_deleted().is_empty());
        // A failed change deletes nothing.
        let bad = rules(&["priority=12,actions=group:9"]);
        assert!(sp.replace_rules("br0", bad, 90).is_err());
        assert!(sp.take_deleted().is_empty());
    }
}

/// A MAC entry that ages out during a change made in place re-translates the megaflows
/// that read it over rules that all have ids: here the megaflow B -> A (`normal`'s
/// unicast to A) at the moment `add_flows` adds a rule that decides it the same way.
/// (Aging ran between the rules' change and their ids' renewal: the re-translation
/// reached the added rule, which had no id yet, and the slow path panicked.) Deleting
/// in place ages first as well.
#[test]
fn mac_aging_during_a_change_in_place_sees_rules_with_ids() {
    let cfg = SlowPathConfig { mac_aging: Duration::from_secs(10), add_in_place_from: 1, ..Default::default() };
    let mut sp = slow_path(&["priority=0,actions=normal"], 1, cfg);
    sp.handle_upcall(&up(0, key_of(tcp4_frame(&TCP4), A, B, 1)), 0);
    let b_to_a = key_of(tcp4_frame(&TCP4), B, A, 2);
    let (_, mf) = installed(&sp.handle_upcall(&up(0, b_to_a), 1), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(1)]);
    sp.add_flows("br0", rules(&["priority=10,in_port=2,actions=output:1"]), 10_000).unwrap();
    assert_eq!(sp.counters().mac_expired, 1);
    let (id, mf) = installed(&sp.handle_upcall(&up(0, b_to_a), 10_001), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(1)]);
    let dump = sp.dump_flows("br0", &[(0, id, stats(3, 180, 10_002))], 10_002).unwrap();
    let added = dump.iter().find(|d| d.rule.priority == 10).expect("the added rule");
    assert_eq!(added.packets, 3, "the megaflow's traffic is the added rule's");
    // The same at a deletion in place: B aged out too by now.
    sp.handle_upcall(&up(0, key_of(tcp4_frame(&TCP4), A, B, 1)), 10_003);
    let (_, mf) = installed(&sp.handle_upcall(&up(0, key_of(tcp4_frame(&TCP4), B, A, 3)), 10_004), 0);
    assert_eq!(mf.actions, vec![DpAction::Output(1)]);
    sp.del_flows("br0", &parse_match("in_port=2").unwrap(), 20_004).unwrap();
    assert!(sp.counters().mac_expired >= 2);
    assert_eq!(sp.rules("br0").unwrap().len(), 1);
}
