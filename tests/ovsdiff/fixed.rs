//! Fixed cases that once differed from OVS 3.1 and must now forward exactly as it does:
//! each runs one rule on one frame through both switches and compares every port's
//! frames byte for byte, and with the frames OVS 3.1 was seen to send (so a case also
//! fails if OVS's side is not what the case is about).

use libtest_mimic::{Failed, Trial};

use crate::known::{PerPort, hex, through_both_all, vlan_udp_frame};

/// One fixed case.
type Case = fn() -> Result<(), Failed>;

/// Every fixed case, as a trial named `fixed_<function>`.
pub fn trials() -> Vec<Trial> {
    let cases: [(&str, Case); 5] = [
        ("normal_puts_a_vid_0_tag_back_with_its_tpid", normal_puts_a_vid_0_tag_back_with_its_tpid),
        ("vlan_set_and_set_back_keeps_the_dei_bit", vlan_set_and_set_back_keeps_the_dei_bit),
        ("normal_leaves_out_an_inner_vid_0_pcp_0_tag", normal_leaves_out_an_inner_vid_0_pcp_0_tag),
        (
            "a_tag_stripped_and_pushed_back_equal_keeps_its_dei_bit",
            a_tag_stripped_and_pushed_back_equal_keeps_its_dei_bit,
        ),
        ("a_tag_a_clone_popped_comes_back_with_its_tpid", a_tag_a_clone_popped_comes_back_with_its_tpid),
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
/// here), as OVS restores the flow.
pub fn a_tag_a_clone_popped_comes_back_with_its_tpid() -> Result<(), Failed> {
    let frame = vlan_udp_frame(&[(0x88a8, 10), (0x8100, 20)]);
    let want = vec![vec![], vec![vlan_udp_frame(&[(0x8100, 20)])], vec![frame.clone()], vec![]];
    same_as_ovs("in_port=1,actions=clone(strip_vlan,output:2),output:3", &frame, &want)
}
