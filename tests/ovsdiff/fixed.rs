//! Fixed cases that once differed from OVS 3.1 and must now forward exactly as it does:
//! each runs one rule on one frame through both switches and compares every port's
//! frames byte for byte, and with the frames OVS 3.1 was seen to send (so a case also
//! fails if OVS's side is not what the case is about).

use ferrovs_e2e::ovs::Ovs;
use libtest_mimic::{Failed, Trial};

use crate::ferrovs_side;
use crate::gen_rules::N_PORTS;
use crate::known::{
    MAC_A, MAC_B, PerPort, hex, ipv4_frame, ll_option, nd_frame, through_both_all, through_both_frames,
    udp_frame_of_len, vlan_udp_frame,
};

/// One fixed case.
type Case = fn() -> Result<(), Failed>;

/// Every fixed case, as a trial named `fixed_<function>`.
pub fn trials() -> Vec<Trial> {
    let cases: [(&str, Case); 27] = [
        ("normal_puts_a_vid_0_tag_back_with_its_tpid", normal_puts_a_vid_0_tag_back_with_its_tpid),
        ("vlan_set_and_set_back_keeps_the_dei_bit", vlan_set_and_set_back_keeps_the_dei_bit),
        ("normal_leaves_out_an_inner_vid_0_pcp_0_tag", normal_leaves_out_an_inner_vid_0_pcp_0_tag),
        (
            "a_tag_stripped_and_pushed_back_equal_keeps_its_dei_bit",
            a_tag_stripped_and_pushed_back_equal_keeps_its_dei_bit,
        ),
        ("a_tag_a_clone_popped_comes_back_with_its_tpid", a_tag_a_clone_popped_comes_back_with_its_tpid),
        ("a_loaded_in_port_is_the_one_outputs_and_flood_see", a_loaded_in_port_is_the_one_outputs_and_flood_see),
        (
            "move_reads_the_packet_s_in_port_after_a_resubmit_to_another",
            move_reads_the_packet_s_in_port_after_a_resubmit_to_another,
        ),
        ("a_loaded_vlan_tci_sets_pushes_or_removes_the_tag", a_loaded_vlan_tci_sets_pushes_or_removes_the_tag),
        ("a_chained_frame_sent_twice_frees_each_segment_once", a_chained_frame_sent_twice_frees_each_segment_once),
        ("normal_sees_what_an_earlier_normal_learned", normal_sees_what_an_earlier_normal_learned),
        ("normal_does_not_see_what_a_later_normal_learns", normal_does_not_see_what_a_later_normal_learns),
        (
            "a_pushed_tag_a_clone_replaced_comes_back_with_its_tpid",
            a_pushed_tag_a_clone_replaced_comes_back_with_its_tpid,
        ),
        ("the_arp_responder_answers_a_request", the_arp_responder_answers_a_request),
        ("oxm_in_port_holds_openflow_11_numbers", oxm_in_port_holds_openflow_11_numbers),
        ("output_trunc_cuts_only_its_own_copy", output_trunc_cuts_only_its_own_copy),
        ("mpls_entries_match_and_rewrite_part_by_part", mpls_entries_match_and_rewrite_part_by_part),
        (
            "nd_writes_rewrite_a_solicitation_and_its_source_address",
            nd_writes_rewrite_a_solicitation_and_its_source_address,
        ),
        ("nd_writes_rewrite_an_advertisement_and_its_flags", nd_writes_rewrite_an_advertisement_and_its_flags),
        ("nd_writes_to_a_solicitation_without_options", nd_writes_to_a_solicitation_without_options),
        ("nd_writes_find_the_address_behind_another_option", nd_writes_find_the_address_behind_another_option),
        (
            "a_tag_a_vlan_tci_write_removed_comes_back_with_its_tpid",
            a_tag_a_vlan_tci_write_removed_comes_back_with_its_tpid,
        ),
        (
            "a_vlan_tci_write_removes_both_tags_and_brings_both_back",
            a_vlan_tci_write_removes_both_tags_and_brings_both_back,
        ),
        ("tags_pushed_beyond_two_lose_the_frame_s_own_tag", tags_pushed_beyond_two_lose_the_frame_s_own_tag),
        ("a_move_of_tcp_flags_skips_a_later_fragment", a_move_of_tcp_flags_skips_a_later_fragment),
        ("the_action_set_s_vid_write_tags_a_stripped_frame", the_action_set_s_vid_write_tags_a_stripped_frame),
        ("normal_from_no_port_floods_to_every_port", normal_from_no_port_floods_to_every_port),
        (
            "a_pushed_tag_equal_to_the_received_one_keeps_it_under_another",
            a_pushed_tag_equal_to_the_received_one_keeps_it_under_another,
        ),
    ];
    cases.into_iter().map(|(name, f)| Trial::test(format!("fixed_{name}"), f)).collect()
}

/// Runs `rule` (OpenFlow 1.0) on `frame` received on port 1; both switches must send
/// exactly `want` (index 0: port 1).
fn same_as_ovs(rule: &str, frame: &[u8], want: &PerPort) -> Result<(), Failed> {
    same_as_ovs_in(false, rule, frame, want)
}

/// [`same_as_ovs`], the rule loaded as OpenFlow 1.3 if `openflow13`.
fn same_as_ovs_in(openflow13: bool, rule: &str, frame: &[u8], want: &PerPort) -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let (ovs, fer) = through_both_all(rule, openflow13, frame)?;
    if ovs != *want {
        return Err(format!("OVS's side is not what this case is about: {ovs:?}").into());
    }
    if fer != *want {
        let got: Vec<Vec<String>> = fer.iter().map(|p| p.iter().map(|f| hex(f)).collect()).collect();
        return Err(format!("ferrovs sent {got:?}").into());
    }
    Ok(())
}

/// Runs the rule set `rules` (OpenFlow 1.0) on `frame` received on port 1 through both
/// switches; both must send exactly `want`.
fn rules_same_as_ovs(rules: &[&str], frame: &[u8], want: &PerPort) -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
    ferrovs_side::accepts(&rules, false)?;
    let mut ovs = Ovs::start(N_PORTS);
    ovs.replace_rules(&rules, false)?;
    let from_ovs = ovs.send(1, frame)?;
    let ovs: PerPort =
        (1..=N_PORTS).map(|p| from_ovs.iter().filter(|(q, _)| *q == p).map(|(_, f)| f.clone()).collect()).collect();
    if ovs != *want {
        return Err(format!("OVS's side is not what this case is about: {ovs:?}").into());
    }
    let fer = ferrovs_side::run(&rules, false, 1, &[frame.to_vec()], None)?;
    if fer != *want {
        let got: Vec<Vec<String>> = fer.iter().map(|p| p.iter().map(|f| hex(f)).collect()).collect();
        return Err(format!("ferrovs sent {got:?}").into());
    }
    Ok(())
}

/// `normal` sends a VID 0, PCP 0 tag untagged and puts it back, for the actions after it,
/// with its own TPID (OVS keeps the TPID in the flow): an 0x88a8 tag in front of an 0x8100
/// one leaves `output:3` as 0x88a8.
pub fn normal_puts_a_vid_0_tag_back_with_its_tpid() -> Result<(), Failed> {
    let inner = vlan_udp_frame(&[(0x8100, 20)]);
    let frame = vlan_udp_frame(&[(0x88a8, 0), (0x8100, 20)]);
    // `normal` floods (no MAC learned yet) the frame without its outer tag; port 3 then
    // gets it once more, tag and all.
    let want = vec![vec![], vec![inner.clone()], vec![inner.clone(), frame.clone()], vec![inner]];
    same_as_ovs("in_port=1,actions=normal,output:3", &frame, &want)
}

/// VLAN writes are compared with the packet's tag at the output, as OVS's
/// `commit_vlan_action` does: a VID set to another value and back leaves the tag as it
/// is, DEI bit included.
pub fn vlan_set_and_set_back_keeps_the_dei_bit() -> Result<(), Failed> {
    let mut frame = vlan_udp_frame(&[(0x8100, 10)]);
    frame[14] |= 0x10; // DEI
    let want = vec![vec![], vec![frame.clone()], vec![], vec![]];
    same_as_ovs(
        "in_port=1,actions=mod_vlan_vid:20,mod_vlan_pcp:5,mod_vlan_vid:10,mod_vlan_pcp:0,output:2",
        &frame,
        &want,
    )
}

/// A frame longer than one mbuf holds (net_pcap receives it as a chain of segments) sent
/// to two ports, then frames whose second output is edited (a private copy each): OVS
/// drops the long frame on both ports (MTU) and sends the others as they are and edited.
/// (ferrovs once shared a chained frame by counting one more reference on its first
/// segment only; freeing both references then freed the other segments twice, and two
/// later copies got the same buffer: ports sent one frame's edited copy twice.)
pub fn a_chained_frame_sent_twice_frees_each_segment_once() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let long = udp_frame_of_len(&[], 3000);
    let mut frames = vec![long.clone(), long];
    for i in 0..8u16 {
        frames.push(vlan_udp_frame(&[(0x8100, 10 + i)]));
    }
    let (ovs, fer) = through_both_frames("in_port=1,actions=output:2,mod_dl_dst:02:00:00:00:00:09,output:3", &frames)?;
    let edited = |f: &Vec<u8>| [&[2u8, 0, 0, 0, 0, 9][..], &f[6..]].concat();
    let want: PerPort = vec![vec![], frames[2..].to_vec(), frames[2..].iter().map(edited).collect(), vec![]];
    if ovs != want {
        return Err(format!("OVS's side is not what this case is about: {ovs:?}").into());
    }
    if fer != want {
        let got: Vec<Vec<String>> = fer.iter().map(|p| p.iter().map(|f| hex(f)).collect()).collect();
        return Err(format!("ferrovs sent {got:?}").into());
    }
    Ok(())
}

/// `normal` rebuilds every tag level and leaves out each whose TCI is 0 (OVS's
/// `xvlan_put`): a VID 0, PCP 0 tag behind a pushed 0x88a8 tag of VID 5 is not sent, and
/// both tags come back, each with its TPID, for `output:3` after `normal`.
pub fn normal_leaves_out_an_inner_vid_0_pcp_0_tag() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[(0x8100, 0)]);
    let sent = vlan_udp_frame(&[(0x88a8, 5)]);
    let both = vlan_udp_frame(&[(0x88a8, 5), (0x8100, 0)]);
    let want = vec![vec![], vec![sent.clone()], vec![sent.clone(), both], vec![sent]];
    same_as_ovs_in(true, "in_port=1,actions=push_vlan:0x88a8,set_field:4101->vlan_vid,normal,output:3", &frame, &want)
}

/// A tag popped and pushed back equal (TPID, VID, PCP) is left as it is, DEI bit
/// included, as OVS's commit compares the flow's tags with the packet's; with another
/// TPID it is replaced (DEI cleared).
pub fn a_tag_stripped_and_pushed_back_equal_keeps_its_dei_bit() -> Result<(), Failed> {
    let rule = "in_port=1,actions=strip_vlan,mod_vlan_vid:10,output:2";
    let mut frame = vlan_udp_frame(&[(0x8100, 10)]);
    frame[14] |= 0x10; // DEI
    same_as_ovs(rule, &frame, &vec![vec![], vec![frame.clone()], vec![], vec![]])?;
    let mut other_tpid = vlan_udp_frame(&[(0x88a8, 10)]);
    other_tpid[14] |= 0x10;
    let want = vec![vec![], vec![vlan_udp_frame(&[(0x8100, 10)])], vec![], vec![]];
    same_as_ovs(rule, &other_tpid, &want)
}

/// A tag a `clone` popped comes back for the later actions with its own TPID (0x88a8
/// here), as OVS restores the flow; also when the clone pushed another in its place.
pub fn a_tag_a_clone_popped_comes_back_with_its_tpid() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[(0x88a8, 10), (0x8100, 20)]);
    let want = vec![vec![], vec![vlan_udp_frame(&[(0x8100, 20)])], vec![frame.clone()], vec![]];
    same_as_ovs("in_port=1,actions=clone(strip_vlan,output:2),output:3", &frame, &want)?;
    let want = vec![vec![], vec![vlan_udp_frame(&[(0x8100, 10), (0x8100, 20)])], vec![frame.clone()], vec![]];
    same_as_ovs("in_port=1,actions=clone(strip_vlan,mod_vlan_vid:10,output:2),output:3", &frame, &want)
}

/// `load` into `in_port` (NXM_OF_IN_PORT): later outputs and `in_port` use the new one,
/// so `output:1` sends the frame back out of port 1 it came in on, `in_port` sends it to
/// port 3, and `flood` leaves out port 3 instead of port 1.
pub fn a_loaded_in_port_is_the_one_outputs_and_flood_see() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[]);
    let f = || vec![frame.clone()];
    same_as_ovs(
        "in_port=1,actions=load:3->NXM_OF_IN_PORT[],output:1,in_port",
        &frame,
        &vec![f(), vec![], f(), vec![]],
    )?;
    same_as_ovs("in_port=1,actions=load:3->NXM_OF_IN_PORT[],flood", &frame, &vec![f(), f(), vec![], f()])
}

/// An MPLS frame (label 16, TC 5, bottom of stack, TTL 64, then IPv4): rules match the
/// first entry's parts, `set_field`/`load` rewrite just their bits, a `move` reads them,
/// and an IPv4 rewrite does nothing (nothing behind the label stack is parsed).
pub fn mpls_entries_match_and_rewrite_part_by_part() -> Result<(), Failed> {
    let ip = vlan_udp_frame(&[]);
    let mpls = |lse: u32| {
        let mut f = ip[..12].to_vec();
        f.extend_from_slice(&0x8847u16.to_be_bytes());
        f.extend_from_slice(&lse.to_be_bytes());
        f.extend_from_slice(&ip[14..]);
        f
    };
    let lse = 16 << 12 | 5 << 9 | 1 << 8 | 64;
    let mut moved = mpls(17 << 12 | 5 << 9 | 1 << 8 | 67);
    moved[5] = 5; // move:OXM_OF_MPLS_TC[]->NXM_OF_ETH_DST[0..2]
    rules_same_as_ovs(
        &[
            "table=0,in_port=1,mpls,mpls_label=16,mpls_tc=5,mpls_bos=1,mpls_ttl=64,actions=\
             mod_nw_src:10.9.9.9,set_field:17->mpls_label,load:3->NXM_NX_MPLS_TTL[0..1],output:2,resubmit(,1)",
            "table=1,mpls,mpls_label=17,actions=move:OXM_OF_MPLS_TC[]->NXM_OF_ETH_DST[0..2],output:3",
            "table=1,priority=0,actions=output:4",
        ],
        &mpls(lse),
        &vec![vec![], vec![mpls(17 << 12 | 5 << 9 | 1 << 8 | 67)], vec![moved], vec![]],
    )
}

/// `output(port=P,max_len=N)` sends the frame's first N bytes (all of a shorter frame) and
/// leaves the frame whole for what follows, edits included; to the ingress port and to
/// `IN_PORT` it sends nothing.
pub fn output_trunc_cuts_only_its_own_copy() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[]);
    assert!(frame.len() > 40, "the case needs a frame longer than 40 bytes");
    let mut edited = frame.clone();
    edited[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x09]);
    same_as_ovs(
        "in_port=1,actions=output(port=2,max_len=40),output(port=1,max_len=40),output(port=IN_PORT,max_len=40),\
         output(port=4,max_len=1500),mod_dl_dst:02:00:00:00:00:09,output(port=3,max_len=14)",
        &frame,
        &vec![vec![], vec![frame[..40].to_vec()], vec![edited[..14].to_vec()], vec![frame.clone()]],
    )
}

/// `OXM_OF_IN_PORT` is the flow's in_port as OpenFlow 1.1 numbers it: read as 1 on port 1,
/// 0xffff0000 (no 1.0 form) written as OFPP_NONE and read back as 0xffffffff, LOCAL
/// written as 0xfffffffe is 0xfffe in `NXM_OF_IN_PORT`; a later `load` of 2 makes `in_port`
/// send to port 2.
pub fn oxm_in_port_holds_openflow_11_numbers() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[]);
    rules_same_as_ovs(
        &[
            "table=0,in_port=1,actions=move:OXM_OF_IN_PORT[]->NXM_NX_REG0[],load:0xffff0000->OXM_OF_IN_PORT[],\
             move:OXM_OF_IN_PORT[]->NXM_NX_REG1[],load:0xfffffffe->OXM_OF_IN_PORT[],\
             move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15],load:2->OXM_OF_IN_PORT[],resubmit(,1)",
            "table=1,reg0=1,reg1=0xffffffff,reg2=0xfffe,actions=output:3,in_port",
            "table=1,priority=0,actions=output:4",
        ],
        &frame,
        &vec![vec![], vec![frame.clone()], vec![frame.clone()], vec![]],
    )
}

/// `resubmit(PORT,T)` looks table T up with in_port PORT, but the rule found there sees
/// the packet's own in_port (OVS restores it after the lookup): a `move` from `in_port`
/// reads 1, not 3.
pub fn move_reads_the_packet_s_in_port_after_a_resubmit_to_another() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[]);
    rules_same_as_ovs(
        &[
            "table=0,in_port=1,actions=resubmit(3,1)",
            "table=1,in_port=3,actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],resubmit(,2)",
            "table=2,reg0=1,actions=output:2",
            "table=2,reg0=3,actions=output:4",
        ],
        &frame,
        &vec![vec![], vec![frame.clone()], vec![], vec![]],
    )
}

/// `load` into `vlan_tci` (NXM_OF_VLAN_TCI): a value with the 0x1000 bit set rewrites the
/// tag (or pushes one on an untagged frame), one without it removes the tag.
pub fn a_loaded_vlan_tci_sets_pushes_or_removes_the_tag() -> Result<(), Failed> {
    let untagged = vlan_udp_frame(&[]);
    let tagged = vlan_udp_frame(&[(0x88a8, 10)]);
    let only2 = |f: Vec<u8>| vec![vec![], vec![f], vec![], vec![]];
    let rule = "in_port=1,actions=load:0x3005->NXM_OF_VLAN_TCI[],output:2";
    same_as_ovs(rule, &untagged, &only2(vlan_udp_frame(&[(0x8100, 0x2005)])))?;
    same_as_ovs(rule, &tagged, &only2(vlan_udp_frame(&[(0x88a8, 0x2005)])))?;
    let strip = "in_port=1,actions=load:0->NXM_OF_VLAN_TCI[],output:2";
    same_as_ovs(strip, &tagged, &only2(untagged.clone()))?;
    // Bits without the present bit: no tag, and the VID bits come back with a PCP set.
    let partial = "in_port=1,actions=load:0x7->NXM_OF_VLAN_TCI[0..11],output:2,mod_vlan_pcp:1,output:3";
    let want = vec![vec![], vec![untagged.clone()], vec![vlan_udp_frame(&[(0x8100, 0x2007)])], vec![]];
    same_as_ovs(partial, &untagged, &want)
}

/// A tag a `load:0->NXM_OF_VLAN_TCI[]` removed and a `mod_vlan_pcp`, a `mod_vlan_vid` or a
/// `load` with the 0x1000 bit brought back has the TPID of the tag that was there (OVS's
/// flow keeps a slot's TPID apart from its TCI), also when an output sent the frame
/// without it in between; brought back equal (TPID, VID, PCP), it is left as it was, DEI
/// included. A second tag the key does not hold (vlan-limit 1) stays behind it. (ferrovs
/// brought it back as 0x8100.)
pub fn a_tag_a_vlan_tci_write_removed_comes_back_with_its_tpid() -> Result<(), Failed> {
    let tagged = vlan_udp_frame(&[(0x88a8, 0x6014)]);
    let untagged = vlan_udp_frame(&[]);
    let only2 = |f: Vec<u8>| vec![vec![], vec![f], vec![], vec![]];
    let on2_and_3 = |a: Vec<u8>, b: Vec<u8>| vec![vec![], vec![a], vec![b], vec![]];
    let pcp2 = vlan_udp_frame(&[(0x88a8, 0x4000)]);
    same_as_ovs("in_port=1,actions=load:0->NXM_OF_VLAN_TCI[],mod_vlan_pcp:2,output:2", &tagged, &only2(pcp2.clone()))?;
    same_as_ovs(
        "in_port=1,actions=load:0->NXM_OF_VLAN_TCI[],output:2,mod_vlan_pcp:2,output:3",
        &tagged,
        &on2_and_3(untagged.clone(), pcp2),
    )?;
    let vid7 = vlan_udp_frame(&[(0x88a8, 7)]);
    same_as_ovs("in_port=1,actions=load:0->NXM_OF_VLAN_TCI[],mod_vlan_vid:7,output:2", &tagged, &only2(vid7.clone()))?;
    same_as_ovs(
        "in_port=1,actions=load:0->NXM_OF_VLAN_TCI[],output:2,mod_vlan_vid:7,output:3",
        &tagged,
        &on2_and_3(untagged.clone(), vid7),
    )?;
    same_as_ovs(
        "in_port=1,actions=load:0->NXM_OF_VLAN_TCI[],output:2,load:0x3005->NXM_OF_VLAN_TCI[],output:3",
        &tagged,
        &on2_and_3(untagged, vlan_udp_frame(&[(0x88a8, 0x2005)])),
    )?;
    // PCP 2, DEI, VID 0: the same tag comes back, the frame is left as it is.
    let dei = vlan_udp_frame(&[(0x88a8, 0x5000)]);
    same_as_ovs("in_port=1,actions=load:0->NXM_OF_VLAN_TCI[],mod_vlan_pcp:2,output:2", &dei, &only2(dei.clone()))?;
    // The case a differential run found: the inner tag is payload to both switches.
    let two = vlan_udp_frame(&[(0x88a8, 0x6014), (0x8100, 0x0fff)]);
    same_as_ovs(
        "in_port=1,actions=load:0->NXM_OF_VLAN_TCI[],mod_vlan_pcp:2,output:2",
        &two,
        &only2(vlan_udp_frame(&[(0x88a8, 0x4000), (0x8100, 0x0fff)])),
    )
}

/// A `vlan_tci` write of 0 over two tags (a pushed 0x8100 one over the received 0x88a8
/// one) removes both (OVS's commit counts tags from the outside up to the first absent
/// one), while the flow keeps the inner one: a write of a present TCI then brings back
/// both, the inner one with its TPID, VID and PCP. Without an output in between only the
/// outer one is pushed. (ferrovs took the inner tag out of the flow: it came back alone,
/// as 0x8100.)
pub fn a_vlan_tci_write_removes_both_tags_and_brings_both_back() -> Result<(), Failed> {
    let tagged = vlan_udp_frame(&[(0x88a8, 0x6014)]);
    let both = vlan_udp_frame(&[(0x8100, 0x2005), (0x88a8, 0x6014)]);
    let rule = "in_port=1,actions=push_vlan:0x8100,load:0->NXM_OF_VLAN_TCI[],output:2,\
                load:0x3005->NXM_OF_VLAN_TCI[],output:3";
    same_as_ovs_in(true, rule, &tagged, &vec![vec![], vec![vlan_udp_frame(&[])], vec![both.clone()], vec![]])?;
    let rule = "in_port=1,actions=push_vlan:0x8100,load:0->NXM_OF_VLAN_TCI[],load:0x3005->NXM_OF_VLAN_TCI[],output:2";
    same_as_ovs_in(true, rule, &tagged, &vec![vec![], vec![both], vec![], vec![]])
}

/// Two `push_vlan` on a frame tagged VID 20 leave it with the two new tags only: the
/// flow holds two tags, the second push loses the frame's own one and the commit pops it
/// from the packet. (ferrovs used to push the tags at once, in front of it: an intended
/// difference until its commit became OVS's.)
pub fn tags_pushed_beyond_two_lose_the_frame_s_own_tag() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[(0x8100, 20)]);
    let want = vec![vec![], vec![vlan_udp_frame(&[(0x8100, 0), (0x8100, 0)])], vec![], vec![]];
    same_as_ovs_in(true, "in_port=1,actions=push_vlan:0x8100,push_vlan:0x8100,output:2", &frame, &want)
}

/// `normal` learns before it looks up, and a second `normal` of the same packet sees what
/// the first learned: a frame whose destination was set to its own source goes nowhere
/// from either `normal` (VLAN 10, then VLAN 0 behind a pushed tag), though both switches
/// start with empty MAC tables. (ferrovs kept only the last `normal`'s learning and let
/// the slow path apply it after the translation, so the first `normal` flooded.)
pub fn normal_sees_what_an_earlier_normal_learned() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[(0x8100, 10)]);
    let want = vec![vec![], vec![frame.clone()], vec![], vec![]];
    let rule = "in_port=1,actions=output:2,mod_dl_dst:02:00:00:00:00:01,normal,push_vlan:0x8100,normal";
    same_as_ovs_in(true, rule, &frame, &want)
}

/// A `normal` floods to a destination nothing has learned yet, though a later `normal`
/// of the same packet learns it (on the input port, as the packet's rewritten source)
/// and so sends nothing. (ferrovs once re-translated after applying every learning and
/// sent nothing at the first `normal` too; the seed that found it,
/// `FERROVS_OVSDIFF_SEED=22709243006683`, did this in an action set.)
pub fn normal_does_not_see_what_a_later_normal_learns() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[]);
    let want = vec![vec![], vec![frame.clone()], vec![frame.clone()], vec![frame.clone()]];
    let rule = "in_port=1,actions=normal,mod_dl_src:02:00:00:00:00:02,normal";
    same_as_ovs(rule, &frame, &want)
}

/// A tag pushed before a `clone` (0x88a8) and replaced inside it by one of another TPID
/// (0x8100) comes back for the actions after the clone with its own TPID. (ferrovs once
/// put back its VID and PCP but kept the copy's TPID.)
pub fn a_pushed_tag_a_clone_replaced_comes_back_with_its_tpid() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[]);
    let want = vec![vec![], vec![vlan_udp_frame(&[(0x8100, 7)])], vec![vlan_udp_frame(&[(0x88a8, 5)])], vec![]];
    let rule = "in_port=1,actions=push_vlan:0x88a8,mod_vlan_vid:5,\
                clone(strip_vlan,push_vlan:0x8100,mod_vlan_vid:7,output:2),output:3";
    same_as_ovs_in(true, rule, &frame, &want)
}

/// The ARP responder of OVS-based clouds: a request for 10.0.0.2 comes back out of its
/// port as the reply from 02:00:00:00:00:99 (ferrovs refused ARP field writes before).
pub fn the_arp_responder_answers_a_request() -> Result<(), Failed> {
    let arp = |op: u8, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4], dst: [u8; 6], src: [u8; 6]| {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, op]);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&tha);
        f.extend_from_slice(&tpa);
        f
    };
    let (host, responder) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0x99]);
    let request = arp(1, host, [10, 0, 0, 1], [0; 6], [10, 0, 0, 2], [0xff; 6], host);
    let reply = arp(2, responder, [10, 0, 0, 2], host, [10, 0, 0, 1], host, responder);
    let want = vec![vec![reply], vec![], vec![], vec![]];
    let rule = "arp,arp_op=1,arp_tpa=10.0.0.2,actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],\
                mod_dl_src:02:00:00:00:00:99,load:0x2->NXM_OF_ARP_OP[],move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],\
                move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],load:0x020000000099->NXM_NX_ARP_SHA[],\
                load:0x0a000002->NXM_OF_ARP_SPA[],in_port";
    same_as_ovs(rule, &request, &want)
}

/// `set_field` of the target and the source link-layer address of a solicitation that
/// carries one: both rewritten, the ICMPv6 checksum kept right (ferrovs refused writes
/// to the ND fields before).
pub fn nd_writes_rewrite_a_solicitation_and_its_source_address() -> Result<(), Failed> {
    let frame = nd_frame(135, 0, 1, &ll_option(1, MAC_A));
    let want = vec![vec![], vec![nd_frame(135, 0, 9, &ll_option(1, MAC_B))], vec![], vec![]];
    let rule = "icmp6,icmp_type=135,actions=set_field:fd00::9->nd_target,set_field:02:00:00:00:00:0b->nd_sll,output:2";
    same_as_ovs(rule, &frame, &want)?;
    same_as_ovs_in(true, rule, &frame, &want)
}

/// An advertisement with its target link-layer address: a partial `load` of the TLL and
/// a `load` of the flags (`nd_reserved`: the R/S/O bits) before one output, then the
/// first option's type (`nd_options_type`) before another: the checksum is computed
/// again. (Partial writes of those two: `known_nd_extension_partial_writes`.)
pub fn nd_writes_rewrite_an_advertisement_and_its_flags() -> Result<(), Failed> {
    let frame = nd_frame(136, 0x6000_0000, 1, &ll_option(2, MAC_A));
    let tll = [2, 0, 0, 0, 0, 0xbb];
    let first = nd_frame(136, 0xe000_0000, 1, &ll_option(2, tll));
    let second = nd_frame(136, 0xe000_0000, 1, &ll_option(1, tll));
    let want = vec![vec![], vec![first], vec![second], vec![]];
    let rule = "icmp6,icmp_type=136,actions=load:0xbb->NXM_NX_ND_TLL[0..7],load:0xe0000000->ERICOXM_OF_ICMPV6_ND_RESERVED[],\
                output:2,set_field:1->nd_options_type,output:3";
    same_as_ovs(rule, &frame, &want)
}

/// A solicitation without options: no address to rewrite (the flow's changes, not the
/// packet), the target rewritten; the options type lands past the message (OVS writes the
/// byte after it, outside this frame) and only the checksum is computed again.
pub fn nd_writes_to_a_solicitation_without_options() -> Result<(), Failed> {
    let frame = nd_frame(135, 0, 1, &[]);
    let want = vec![vec![], vec![nd_frame(135, 7, 2, &[])], vec![], vec![]];
    let rule = "icmp6,icmp_type=135,actions=set_field:02:00:00:00:00:0b->nd_sll,set_field:fd00::2->nd_target,\
                set_field:7->nd_reserved,set_field:1->nd_options_type,output:2";
    same_as_ovs(rule, &frame, &want)
}

/// A solicitation whose source address follows an unknown option (type 14, a nonce):
/// OVS's option walk finds it there; a `move` reads the address before the rewrite into
/// the Ethernet source, and the written target into the flags.
pub fn nd_writes_find_the_address_behind_another_option() -> Result<(), Failed> {
    let nonce = [14, 1, 1, 2, 3, 4, 5, 6];
    let opts = |mac| [&nonce[..], &ll_option(1, mac)[..]].concat();
    let frame = nd_frame(135, 0, 1, &opts(MAC_A));
    let mut sent = nd_frame(135, 0x5, 5, &opts(MAC_B));
    sent[6..12].copy_from_slice(&MAC_A);
    let want = vec![vec![], vec![sent], vec![], vec![]];
    let rule = "icmp6,icmp_type=135,actions=move:NXM_NX_ND_SLL[]->NXM_OF_ETH_SRC[],\
                set_field:02:00:00:00:00:0b->nd_sll,set_field:fd00::5->nd_target,\
                move:NXM_NX_ND_TARGET[0..31]->ERICOXM_OF_ICMPV6_ND_RESERVED[],output:2";
    same_as_ovs(rule, &frame, &want)
}

/// A `move` out of `tcp_flags` does nothing on a later TCP fragment: OVS's prerequisite
/// of a TCP field fails without an L4 header, so the destination keeps its bits. (ferrovs
/// once copied the fragment's flags, read as 0, over them; the seed that found it:
/// `FERROVS_OVSDIFF_SEED=83580367895460`.)
pub fn a_move_of_tcp_flags_skips_a_later_fragment() -> Result<(), Failed> {
    // Offset 16 bytes, no more fragments; the payload would read as TCP flags PSH|ACK.
    let mut payload = vec![0, 53, 0x04, 0xd2, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0x20, 0, 0, 0, 0, 0];
    payload.extend_from_slice(&[0xa5; 4]);
    let frame = ipv4_frame(6, 0x0002, 64, &payload);
    let want = vec![vec![], vec![frame.clone()], vec![], vec![]];
    same_as_ovs("in_port=1,tcp,actions=move:NXM_NX_TCP_FLAGS[]->NXM_OF_ETH_DST[0..11],output:2", &frame, &want)
}

/// The action set runs `strip_vlan` before its writes; under OpenFlow 1.3 a `mod_vlan_vid`
/// written after a tag was pushed is a bare `vlan_vid` set-field, which OVS runs on the
/// now untagged frame too (the field has no prerequisite): the frame leaves with a new
/// 0x8100 tag of that VID. A `vlan_pcp` set-field before it is skipped (its prerequisite
/// is a VID). (ferrovs skipped both and sent the frame untagged; the seed that found it:
/// `FERROVS_OVSDIFF_SEED=95342991216845`.)
pub fn the_action_set_s_vid_write_tags_a_stripped_frame() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[]);
    let want = vec![vec![], vec![vlan_udp_frame(&[(0x8100, 10)])], vec![], vec![]];
    let rule = "in_port=1,actions=mod_vlan_vid:20,write_actions(mod_vlan_pcp:3,mod_vlan_vid:10,strip_vlan,output:2)";
    same_as_ovs_in(true, rule, &frame, &want)
}

/// `normal` with the flow's in_port written to OFPP_NONE (an `OXM_OF_IN_PORT` of no
/// OpenFlow 1.0 form) or OFPP_CONTROLLER is OVS's "none" bundle, a controller's own
/// traffic: it floods to every port, the packet's own included. (ferrovs treated it as
/// any in_port the bridge lacks and dropped the packet; the seed that found it:
/// `FERROVS_OVSDIFF_SEED=128652390451134`.)
pub fn normal_from_no_port_floods_to_every_port() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[]);
    let everywhere = vec![vec![frame.clone()]; 4];
    same_as_ovs("in_port=1,actions=load:0xffff0000->OXM_OF_IN_PORT[],normal", &frame, &everywhere)?;
    same_as_ovs("in_port=1,actions=load:0xfffd->NXM_OF_IN_PORT[],normal", &frame, &everywhere)
}

/// OpenFlow 1.3's `mod_vlan_pcp` without a VLAN match is `push_vlan` and a PCP set-field;
/// with another `push_vlan` after it the flow holds two pushed tags, the inner one of the
/// received tag's TPID, VID and PCP: OVS's commit keeps the received tag as it is, DEI
/// bit included, and pushes one tag over it; a received tag of another TPID is replaced
/// (DEI cleared). (ferrovs popped and pushed the equal pair, losing the DEI bit: the
/// datapath now compares the TPIDs the key does not hold; the seed that found it:
/// `FERROVS_OVSDIFF_SEED=148448247933141`.)
pub fn a_pushed_tag_equal_to_the_received_one_keeps_it_under_another() -> Result<(), Failed> {
    let rule = "in_port=1,actions=mod_vlan_pcp:5,push_vlan:0x8100,output:2";
    let mut frame = vlan_udp_frame(&[(0x8100, 0xa000)]);
    frame[14] |= 0x10; // DEI
    let mut kept = vlan_udp_frame(&[(0x8100, 0), (0x8100, 0xa000)]);
    kept[18] |= 0x10;
    same_as_ovs_in(true, rule, &frame, &vec![vec![], vec![kept], vec![], vec![]])?;
    let mut other_tpid = vlan_udp_frame(&[(0x88a8, 0xa000)]);
    other_tpid[14] |= 0x10;
    let replaced = vlan_udp_frame(&[(0x8100, 0), (0x8100, 0xa000)]);
    same_as_ovs_in(true, rule, &other_tpid, &vec![vec![], vec![replaced], vec![], vec![]])
}
