//! Fixed cases that once differed from OVS 3.1 and must now forward exactly as it does:
//! each runs one rule on one frame through both switches and compares every port's
//! frames byte for byte, and with the frames OVS 3.1 was seen to send (so a case also
//! fails if OVS's side is not what the case is about).

use libtest_mimic::Failed;

use crate::known::{PerPort, hex, through_both_all, through_both_frames, udp_frame_of_len, vlan_udp_frame};

/// Runs `rule` (OpenFlow 1.0) on `frame` received on port 1; both switches must send
/// exactly `want` (index 0: port 1).
fn same_as_ovs(rule: &str, frame: &[u8], want: &PerPort) -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let (ovs, fer) = through_both_all(rule, false, frame)?;
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
