//! The known intended differences (docs/OVS-DIFFERENCES.md), each checked on ferrovs's
//! side with a fixed frame: ferrovs must keep doing the right thing. OVS's output for
//! the same frame is printed for comparison but not judged (a later OVS may fix it).

use ferrovs_e2e::ovs::Ovs;
use libtest_mimic::Failed;

use crate::ferrovs_side;
use crate::frame_view::View;
use crate::gen_rules::N_PORTS;

/// An IPv4 frame (port 1's MACs) of protocol `proto`, flags and fragment offset `frag`.
pub fn ipv4_frame(proto: u8, frag: u16, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[ttl, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    let mut s: u32 = h.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    h[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    f
}

/// The frames a switch sent on each port (index 0: port 1), in order.
pub type PerPort = Vec<Vec<Vec<u8>>>;

/// A UDP/IPv4 frame (port 1's MACs) behind `tags`, (TPID, TCI) from the outside in.
pub fn vlan_udp_frame(tags: &[(u16, u16)]) -> Vec<u8> {
    let untagged = ipv4_frame(17, 0x4000, 64, &[0, 53, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
    let mut frame = untagged[..12].to_vec();
    for (tpid, tci) in tags {
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&tci.to_be_bytes());
    }
    frame.extend_from_slice(&untagged[12..]);
    frame
}

/// Runs `rule` (loaded into OVS as OpenFlow 1.3 if `openflow13`) on `frame`, received on
/// port 1, through both; returns what OVS and ferrovs sent on each port (index 0: port
/// 1), after printing both sides.
pub fn through_both_all(rule: &str, openflow13: bool, frame: &[u8]) -> Result<(PerPort, PerPort), Failed> {
    let rules = vec![rule.to_string()];
    ferrovs_side::accepts(&rules, openflow13)?;
    let mut ovs = Ovs::start(N_PORTS);
    ovs.replace_rules(&rules, openflow13)?;
    let from_ovs = ovs.send(1, frame)?;
    let fer = ferrovs_side::run(&rules, openflow13, 1, &[frame.to_vec()], None)?;
    println!("rule {rule}\n  input   {}", hex(frame));
    for (p, f) in &from_ovs {
        println!("  OVS     port {p}: {}", hex(f));
    }
    for (i, frames) in fer.iter().enumerate() {
        for f in frames {
            println!("  ferrovs port {}: {}", i + 1, hex(f));
        }
    }
    let ovs_ports =
        (1..=N_PORTS).map(|p| from_ovs.iter().filter(|(q, _)| *q == p).map(|(_, f)| f.clone()).collect()).collect();
    Ok((ovs_ports, fer))
}

/// Runs `rule` (OpenFlow 1.0) on `frames`, received in this order on port 1, through both
/// (ferrovs replays them from a capture); returns what each sent on each port (index 0:
/// port 1).
pub fn through_both_frames(rule: &str, frames: &[Vec<u8>]) -> Result<(PerPort, PerPort), Failed> {
    let rules = vec![rule.to_string()];
    ferrovs_side::accepts(&rules, false)?;
    let mut ovs = Ovs::start(N_PORTS);
    ovs.replace_rules(&rules, false)?;
    let mut from_ovs: PerPort = vec![Vec::new(); N_PORTS as usize];
    for f in frames {
        for (p, out) in ovs.send(1, f)? {
            from_ovs[p as usize - 1].push(out);
        }
    }
    let fer = ferrovs_side::run(&rules, false, 1, frames, None)?;
    Ok((from_ovs, fer))
}

/// Runs `rule` on `frame` (input port 1) through both; returns ferrovs's port-2 frame.
fn through_both(rule: &str, frame: &[u8]) -> Result<Vec<u8>, Failed> {
    let (_, fer) = through_both_all(rule, false, frame)?;
    match (fer[1].as_slice(), fer.iter().map(Vec::len).sum::<usize>()) {
        ([one], 1) => Ok(one.clone()),
        _ => Err(format!("ferrovs did not send exactly one frame on port 2: {fer:?}").into()),
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A later IPv4 fragment (offset 8 bytes): addresses rewritten, header checksum right,
/// the fragment's payload byte for byte as received (it holds no L4 header).
pub fn ipv4_later_fragment_payload_untouched() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let payload: Vec<u8> = (0u8..24).map(|i| i.wrapping_mul(37)).collect();
    let frame = ipv4_frame(17, 0x0001, 64, &payload);
    let out = through_both("in_port=1,udp,actions=mod_nw_dst:10.9.9.9,mod_nw_src:10.8.8.8,output:2", &frame)?;
    let v = View::parse(&out);
    if out[26..34] != [10, 8, 8, 8, 10, 9, 9, 9] || !v.ipv4_header_checksum_ok() {
        return Err(format!("addresses not rewritten or header checksum wrong: {}", hex(&out)).into());
    }
    if v.l4_bytes() != payload.as_slice() {
        return Err(format!("fragment payload changed: {} != {}", hex(v.l4_bytes()), hex(&payload)).into());
    }
    Ok(())
}

/// A first TCP fragment (offset 0, more fragments) whose source port is moved into its
/// destination port: ferrovs reads the port as 0, as the rule lookup does (OVS 3.1 moves
/// the real port, 53).
pub fn first_fragment_ports_read_as_zero() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    // TCP 53 -> 443, data offset 5, no checksum to keep (the fragment holds part of it).
    let mut tcp = vec![0, 53, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0x20, 0, 0, 0, 0, 0];
    tcp.extend_from_slice(&[0xa5; 4]);
    let frame = ipv4_frame(6, 0x2000, 64, &tcp);
    let out = through_both("in_port=1,tcp,actions=move:NXM_OF_TCP_SRC[]->NXM_OF_TCP_DST[],output:2", &frame)?;
    let l4 = View::parse(&out).l4_offset().ok_or("no L4 header")?;
    if out[l4..l4 + 4] != [0, 53, 0, 0] {
        return Err(format!("want ports 53 -> 0, got {}", hex(&out[l4..l4 + 4])).into());
    }
    Ok(())
}

/// IPv4 with protocol 0: rewritten and TTL decremented like any IPv4 packet.
pub fn ipv4_protocol_0_rewritten() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let payload = [0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];
    let frame = ipv4_frame(0, 0x4000, 64, &payload);
    let out = through_both("in_port=1,ip,actions=mod_nw_dst:10.9.9.9,dec_ttl,output:2", &frame)?;
    let v = View::parse(&out);
    if out[30..34] != [10, 9, 9, 9] || out[22] != 63 || !v.ipv4_header_checksum_ok() {
        return Err(format!("not rewritten (dst 10.9.9.9, TTL 63, checksum right): {}", hex(&out)).into());
    }
    if v.l4_bytes() != payload {
        return Err(format!("payload changed: {}", hex(v.l4_bytes())).into());
    }
    Ok(())
}

/// After an IPv4 packet of protocol 0 (which OVS 3.1 does not rewrite, see above), a UDP
/// packet its megaflow covers: OVS forwards it unchanged, as it forwarded the first (its
/// megaflow does not hold the protocol), where alone it rewrites it; ferrovs rewrites it
/// either way. (Frames and rule from a differential seed: a priority tag on both, the
/// rule's `in_port` load as it was.)
pub fn ovs_megaflow_of_ipv4_protocol_0() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let unhex = |s: &str| -> Result<Vec<u8>, std::num::ParseIntError> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16)).collect()
    };
    let proto0: Vec<u8> =
        unhex("0a00000000040200000000028100a00008004503001a3a6e4000ff0075c7c0a801010a0000024f29cdbae9f5")?;
    let udp: Vec<u8> =
        unhex("0200000000030200000000028100e00008004500001cc11340000011a1f20a0001c80a0102031f9000000008c882")?;
    let rule = "ip,actions=load:10->OXM_OF_IP_DSCP[],load:4294901760->OXM_OF_IN_PORT[],output:3";
    // The UDP packet with DSCP 10 and its header checksum patched.
    let mut rewritten = udp.clone();
    rewritten[19] = 0x28;
    rewritten[28..30].copy_from_slice(&[0xa1, 0xca]);
    let (alone_ovs, alone_fer) = through_both_frames(rule, std::slice::from_ref(&udp))?;
    if alone_ovs[2] != [rewritten.clone()] || alone_fer[2] != [rewritten.clone()] {
        return Err(format!("alone, not rewritten by both: OVS {alone_ovs:?}, ferrovs {alone_fer:?}").into());
    }
    let (ovs, fer) = through_both_frames(rule, &[proto0, udp.clone()])?;
    if ovs[2].last() != Some(&udp) {
        return Err(format!("OVS's side is not what this case is about: {ovs:?}").into());
    }
    if fer[2].last() != Some(&rewritten) {
        return Err(format!("ferrovs did not rewrite the UDP packet after the protocol-0 one: {fer:?}").into());
    }
    Ok(())
}

/// An IPv4 header that fails the sanity checks (total length beyond the frame, or the
/// frame cut inside the header): the key shows no IP field, the rule `ip,nw_tos=0`
/// matches, and ferrovs leaves the bytes as received. OVS 3.1 rewrites such a packet or
/// not depending on the megaflow an earlier packet installed (its commit of IPv4 edits
/// skips a flow with protocol 0 without putting the protocol in the mask): after a whole
/// TCP packet of the same megaflow it writes the TOS byte it finds. The case
/// sends the whole packet first, and fails if OVS stops rewriting the others. (Loaded as
/// OpenFlow 1.3; with the rule read as 1.0 OVS's megaflow here holds the protocol, and
/// the effect does not show.)
pub fn unparsable_ip_header_not_rewritten() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let tcp = [0, 80, 1, 187, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0x20, 0, 0, 0, 0, 0];
    let whole = ipv4_frame(6, 0x4000, 64, &tcp);
    let mut long_total = whole.clone();
    long_total[16..18].copy_from_slice(&200u16.to_be_bytes());
    let cut = whole[..30].to_vec();
    let rule = "in_port=1,ip,nw_tos=0,actions=mod_nw_tos:40,output:2";
    let frames = [whole, long_total.clone(), cut.clone()];
    let rules = vec![rule.to_string()];
    let mut o = Ovs::start(N_PORTS);
    o.replace_rules(&rules, true)?;
    let mut ovs: PerPort = vec![Vec::new(); N_PORTS as usize];
    for (i, f) in frames.iter().enumerate() {
        for (p, out) in o.send(1, f)? {
            ovs[p as usize - 1].push(out);
        }
        // The first frame's megaflow must be in the datapath before the others come (its
        // handler installs it after sending the frame).
        let start = std::time::Instant::now();
        while i == 0 && !o.appctl("dpctl/dump-flows", &[])?.contains("actions") {
            if start.elapsed() > std::time::Duration::from_secs(5) {
                return Err("OVS installed no megaflow for the first frame".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let fer = ferrovs_side::run(&rules, true, 1, &frames, None)?;
    println!(
        "rule {rule}\n  OVS     {:?}\n  ferrovs {:?}",
        ovs[1].iter().map(|f| hex(f)).collect::<Vec<_>>(),
        fer[1].iter().map(|f| hex(f)).collect::<Vec<_>>()
    );
    if fer[1].len() != 3 || fer[1][1] != long_total || fer[1][2] != cut {
        return Err("want the unparsable frames as received on port 2".into());
    }
    if ovs[1].len() != 3 || ovs[1][1] == long_total || ovs[1][2] == cut {
        return Err("OVS's side is not what this case is about (it no longer rewrites them)".into());
    }
    Ok(())
}

/// ARP opcodes 0 and 255 written into a request: ferrovs sends opcode 0 with the other
/// ARP change of the rule, and opcode 0x00ff; OVS 3.1 sends the request unchanged for the
/// first and opcode 0xffff for the second (the case fails if OVS stops doing so).
pub fn ovs_arp_opcode_0_and_255() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let mut request = vec![0xff; 6];
    request.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1]);
    request.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    let with = |op: u16, spa: Option<[u8; 4]>| {
        let mut f = request.clone();
        f[20..22].copy_from_slice(&op.to_be_bytes());
        if let Some(a) = spa {
            f[28..32].copy_from_slice(&a);
        }
        f
    };
    let cases = [
        (
            "in_port=1,arp,actions=load:0->NXM_OF_ARP_OP[],set_field:10.9.9.9->arp_spa,output:2",
            with(0, Some([10, 9, 9, 9])),
            request.clone(),
        ),
        ("in_port=1,arp,actions=load:0xff->NXM_OF_ARP_OP[],output:2", with(0x00ff, None), with(0xffff, None)),
    ];
    for (rule, ours, theirs) in cases {
        let (ovs, fer) = through_both_all(rule, false, &request)?;
        if fer[1] != [ours.clone()] {
            return Err(format!("{rule}: want {} on port 2, got {fer:?}", hex(&ours)).into());
        }
        if ovs[1] != [theirs.clone()] {
            return Err(format!("{rule}: OVS's side is not what this case is about: {ovs:?}").into());
        }
    }
    Ok(())
}

/// An MPLS write on a frame whose first label stack entry is cut short (two bytes after
/// the EtherType) or all zero (before an IPv4 header): OVS 3.1 counts the entries of its
/// flow by the non-zero ones, so it finds one entry fewer than the packet has and
/// "pushes" a new one, which makes the frame 4 bytes longer (the zero entry followed by
/// IPv4 comes out with four IPv4 bytes twice). ferrovs rewrites the entry in place, or
/// sends a cut one as it came (docs/OVS-DIFFERENCES.md).
pub fn ovs_mpls_write_to_a_zero_or_cut_entry_pushes_one() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let rule = "in_port=1,mpls,actions=set_field:17->mpls_label,output:2";
    let cut = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0x47, 0, 0];
    let ip = vlan_udp_frame(&[]);
    let with_entry = |lse: [u8; 4]| [&cut[..14], &lse[..], &ip[14..]].concat();
    let (zero, rewritten) = (with_entry([0; 4]), with_entry([0, 0x01, 0x10, 0x00]));
    for (frame, ours) in [(&cut, &cut), (&zero, &rewritten)] {
        let (ovs, fer) = through_both_all(rule, false, frame)?;
        if fer[1] != [ours.clone()] {
            return Err(format!("want {} on port 2, got {fer:?}", hex(ours)).into());
        }
        if ovs[1].len() != 1 || ovs[1][0].len() != frame.len() + 4 {
            return Err(format!("OVS's side is not what this case is about: {ovs:?}").into());
        }
    }
    Ok(())
}

/// `push_vlan` (TCI 0) on a frame tagged VID 20, then `normal`: the VID 0 tag is not sent,
/// the VID 20 tag is (every port gets the frame as received). OVS 3.1 sends it with no
/// tag at all (see docs/OVS-DIFFERENCES.md).
pub fn normal_keeps_the_tag_behind_a_vid_0_tag() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let frame = vlan_udp_frame(&[(0x8100, 20)]);
    let (_, fer) = through_both_all("in_port=1,actions=push_vlan:0x8100,normal", true, &frame)?;
    let want: PerPort = (1..=N_PORTS).map(|p| if p == 1 { vec![] } else { vec![frame.clone()] }).collect();
    if fer != want {
        return Err(format!("want the frame as received on every other port, got {fer:?}").into());
    }
    Ok(())
}

/// A UDP/IPv4 frame exactly `len` bytes long behind `tags` ((TPID, TCI) from the outside
/// in), port 1's MACs, UDP checksum 0 (none).
pub fn udp_frame_of_len(tags: &[(u16, u16)], len: usize) -> Vec<u8> {
    let mut frame = vlan_udp_frame(tags);
    let l3 = 14 + 4 * tags.len();
    let grow = len.checked_sub(frame.len()).expect("no shorter than the frame without filler");
    frame.resize(len, 0xa5);
    let ip_len = u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]) as usize + grow;
    frame[l3 + 2..l3 + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    frame[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let mut sum: u32 = frame[l3..l3 + 20].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[l3 + 10..l3 + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = l3 + 20;
    frame[udp + 4..udp + 6].copy_from_slice(&((ip_len - 20) as u16).to_be_bytes());
    frame[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
    frame
}

/// Longest frame a port with the default MTU (1500) sends: Ethernet header and one tag's
/// room, whatever the frame's tags (OVS's netdev-dpdk: `MTU_TO_FRAME_LEN`, which counts
/// the 4-byte FCS that a frame in memory does not have).
const MAX_FRAME: usize = 1518;

/// A frame longer than one mbuf (2,100 bytes: net_pcap receives it in two segments) is
/// dropped on receive as malformed, as a NIC drops a frame longer than its buffers: the
/// parser sees the first segment only, so its key would lack the IPv4 header whose total
/// length runs past it. `normal` so learns nothing from it, and a frame to its source
/// that follows is flooded. (OVS's dummy port takes it whole: it learns the source and
/// sends the second frame nowhere, back to the port it came from.)
pub fn a_frame_longer_than_an_mbuf_is_dropped_on_receive() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let long = udp_frame_of_len(&[], 2100);
    let mut back = vlan_udp_frame(&[]);
    back[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 3]);
    let (_, fer) = through_both_frames("actions=normal", &[long, back.clone()])?;
    let want: PerPort = (1..=N_PORTS).map(|p| if p == 1 { vec![] } else { vec![back.clone()] }).collect();
    if fer != want {
        return Err(format!("want the second frame flooded (nothing learned from the first), got {fer:?}").into());
    }
    Ok(())
}

/// Frames around the default MTU's limits, untagged and with one or two tags of either
/// TPID, through `output:2`: ferrovs sends exactly those of at most 1518 bytes, as
/// OVS-DPDK does. (OVS's dummy ports, the harness's reference, send at most 1514 bytes,
/// or 1518 with an outer 0x8100 tag; see docs/OVS-DIFFERENCES.md.)
pub fn mtu_limit_is_netdev_dpdk_s() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let shapes: &[&[(u16, u16)]] =
        &[&[], &[(0x8100, 10)], &[(0x88a8, 10)], &[(0x88a8, 10), (0x8100, 20)], &[(0x8100, 10), (0x8100, 20)]];
    let frames: Vec<Vec<u8>> = shapes
        .iter()
        .flat_map(|tags| [1513, 1514, 1515, 1517, 1518, 1519, 1522, 1523].map(|len| udp_frame_of_len(tags, len)))
        .collect();
    let (from_ovs, fer) = through_both_frames("in_port=1,actions=output:2", &frames)?;
    let outer = |f: &[u8]| format!("{:02x}{:02x}", f[12], f[13]);
    let shown = |fs: &[Vec<u8>]| fs.iter().map(|f| format!("{}:{}", outer(f), f.len())).collect::<Vec<_>>().join(" ");
    println!(
        "frames (outer type:length) sent on port 2\n  OVS     {}\n  ferrovs {}",
        shown(&from_ovs[1]),
        shown(&fer[1])
    );
    let want: PerPort = (1..=N_PORTS)
        .map(|p| if p == 2 { frames.iter().filter(|f| f.len() <= MAX_FRAME).cloned().collect() } else { vec![] })
        .collect();
    if fer != want {
        return Err("ferrovs did not send exactly the frames of at most 1518 bytes (above)".into());
    }
    Ok(())
}

/// An ICMPv6 neighbour solicitation (135) or advertisement (136) from port 1's host for
/// fd00::`last`, its 4 flag bytes `flags`, options `opts`, checksum right.
pub fn nd_frame(ty: u8, flags: u32, last: u8, opts: &[u8]) -> Vec<u8> {
    use ferrovs_flowcache::testpkt::{ipv6_frame, nd_message};
    let mut target = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    target[15] = last;
    let mut msg = nd_message(ty, 0, target, opts);
    msg[4..8].copy_from_slice(&flags.to_be_bytes());
    ipv6_frame(58, 0, &[], &msg)
}

/// A link-layer address option: type 1 (source) or 2 (target), 8 bytes.
pub fn ll_option(ty: u8, mac: [u8; 6]) -> Vec<u8> {
    [&[ty, 1][..], &mac[..]].concat()
}

pub const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
pub const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

/// A partial write of `nd_sll` on a solicitation that repeats its source link-layer
/// option: OVS's parse of such a message gives zero target and addresses, and it commits
/// the write as a masked set over the written bits alone, so the option keeps its other
/// bytes; ferrovs writes the flow's whole value (zero but the written byte). Both write
/// the first option only (docs/OVS-DIFFERENCES.md).
pub fn nd_partial_write_after_a_repeated_option() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let frame = nd_frame(135, 0, 1, &[ll_option(1, MAC_A), ll_option(1, MAC_B)].concat());
    let rule = "icmp6,icmp_type=135,icmp_code=0,actions=load:0xbb->NXM_NX_ND_SLL[0..7],output:2";
    let (ovs, fer) = through_both_all(rule, false, &frame)?;
    let ours = nd_frame(135, 0, 1, &[ll_option(1, [0, 0, 0, 0, 0, 0xbb]), ll_option(1, MAC_B)].concat());
    let theirs = nd_frame(135, 0, 1, &[ll_option(1, [2, 0, 0, 0, 0, 0xbb]), ll_option(1, MAC_B)].concat());
    if fer[1] != [ours.clone()] {
        return Err(format!("want {} on port 2, got {fer:?}", hex(&ours)).into());
    }
    if ovs[1] != [theirs] {
        return Err(format!("OVS's side is not what this case is about: {ovs:?}").into());
    }
    Ok(())
}

/// Partial writes of `nd_reserved` and `nd_options_type` keep the field's other bits,
/// and a `move` out of `nd_options_type` reads its value. OVS 3.1 commits them as a
/// masked `set(nd_ext(...))` whose key it stores with the unwritten bits cleared, and its
/// datapath writes that key whole, so the other bits become 0 (the flags 0x60000000
/// with bit 31 written become 0x80000000); and it reads `nd_options_type` as the high
/// byte of the 16-bit field it keeps it in, always 0.
pub fn nd_extension_partial_writes() -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let frame = nd_frame(136, 0x6000_0000, 1, &ll_option(2, MAC_A));
    let rule = "icmp6,icmp_type=136,actions=load:1->ERICOXM_OF_ICMPV6_ND_RESERVED[31],\
                load:1->ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE[0],\
                move:ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE[]->NXM_NX_ND_TARGET[0..7],output:2";
    let out = through_both(rule, &frame)?;
    let want = nd_frame(136, 0xe000_0000, 3, &ll_option(3, MAC_A));
    if out != want {
        return Err(
            format!("want flags 0xe0000000, options type 3, target fd00::3: {} != {}", hex(&out), hex(&want)).into()
        );
    }
    Ok(())
}
