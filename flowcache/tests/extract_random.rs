//! Key extraction and the packet editor over millions of random and mutated frames, in a
//! normal (stable, non-fuzz) test, checked against an independent reference parser.
//!
//! # The reference
//!
//! [`reference_parse`] below is a second parser written from the rules in the module doc
//! of `flowcache/src/extract.rs` (which are OVS 3.1's), with its own byte offsets, VLAN,
//! LLC/SNAP, IPv4, IPv6 extension-header, ARP and L4 logic. It calls nothing of
//! flowcache's parsing: it reads bytes with `slice::get`, keeps its result in a plain
//! struct of named fields ([`RefKey`]), and is compared with `extract` field by field
//! through the key's getters, and word by word against a key built from those fields. It
//! also computes the layer offsets, which are compared with `extract::layers` (the
//! editor's view of the frame), and the neighbour-discovery fields, which are compared
//! with `extract::nd_fields` (they are not in the key).
//!
//! # Inputs
//!
//! Real frames (TCP/UDP/ICMP/SCTP over IPv4, IPv6 with extension headers and fragments,
//! ND solicitations and advertisements with options, ARP, VLAN/QinQ, LLC/SNAP), mutated by bit flips, byte overwrites at header offsets,
//! truncation, extension and swaps, plus fully random bytes.
//!
//! # Properties, for every frame
//! - `extract` equals the reference (every field, and no stray bit in the key), and
//!   `layers` equals the reference's offsets;
//! - a prefix never gains L4 fields: for every cut `f[..n]`, if the prefix's key has a
//!   non-zero L4 field, the prefix's key is the whole frame's key (a cut inside the IP
//!   packet must fail the length checks, a cut in the Ethernet padding changes nothing);
//! - every packet edit is panic-free; an edit that is not `Applied` leaves the bytes
//!   alone; an `Applied` one changes exactly its field of the key (the rest of the key,
//!   including everything the parser derived from the frame's structure, stays); and an
//!   edit of a frame whose checksums verify leaves checksums that verify.
//!
//! Default 1,000,000 frames; `FERROVS_FUZZ_FRAMES=N` changes it.

use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::edit::{EditOutcome, execute_edit};
use ferrovs_flowcache::extract::{Layers, extract, layers, nd_fields};
use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::testpkt::*;
use std::net::{Ipv4Addr, Ipv6Addr};

// ---------------------------------------------------------------------------------------
// The reference parser.
// ---------------------------------------------------------------------------------------

/// Every key field, by name, as the reference sees it. Addresses are kept per protocol
/// (IPv4, IPv6, ARP) rather than in shared words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct RefKey {
    in_port: u32,
    dl_dst: [u8; 6],
    dl_src: [u8; 6],
    /// Outer, inner; 0 = no tag, else the wire TCI with 0x1000 set.
    vlan: [u16; 2],
    dl_type: u16,
    nw_proto: u8,
    nw_tos: u8,
    /// IPv6 only: the 20-bit flow label.
    ipv6_label: u32,
    nw_ttl: u8,
    /// bit 0: a fragment; bit 1: a later fragment.
    nw_frag: u8,
    ip4_src: [u8; 4],
    ip4_dst: [u8; 4],
    ip6_src: [u8; 16],
    ip6_dst: [u8; 16],
    arp_sha: [u8; 6],
    arp_tha: [u8; 6],
    /// MPLS: the first label stack entry's four bytes.
    mpls_lse: [u8; 4],
    tp_src: u16,
    tp_dst: u16,
    tcp_flags: u16,
    /// Neighbour discovery (not in the flow key: compared with `extract::nd_fields`).
    nd_target: [u8; 16],
    nd_sll: [u8; 6],
    nd_tll: [u8; 6],
}

/// Where the reference found the layers (same meaning as `extract::Layers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct RefLayers {
    vlan: Option<usize>,
    /// EtherType after every tag.
    dl_type: u16,
    l3: Option<usize>,
    mpls: Option<usize>,
    l4: Option<(u8, usize)>,
    l3_end: usize,
}

fn get<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    get::<2>(b, at).map(u16::from_be_bytes)
}

/// The key parses at most this many VLAN tags, as OVS's default `vlan-limit`; the layers
/// an edit needs are found behind any number of tags.
const VLAN_LIMIT: usize = 1;

/// Parses `frame` by the documented rules, knowing nothing of flowcache's parser: the key
/// with at most [`VLAN_LIMIT`] tags, the layers behind every tag.
fn reference_parse(frame: &[u8], in_port: u32) -> (RefKey, RefLayers) {
    let (k, _) = reference_parse_tags(frame, in_port, VLAN_LIMIT);
    let (_, lay) = reference_parse_tags(frame, in_port, usize::MAX);
    (k, lay)
}

fn reference_parse_tags(frame: &[u8], in_port: u32, vlan_limit: usize) -> (RefKey, RefLayers) {
    let mut k = RefKey { in_port, ..RefKey::default() };
    let mut lay = RefLayers::default();
    if frame.len() < 14 {
        return (k, lay);
    }
    k.dl_dst = get(frame, 0).unwrap();
    k.dl_src = get(frame, 6).unwrap();

    // Up to `vlan_limit` tags; one is taken only if its TCI and the type after it are
    // present. The key has room for two.
    let mut type_at = 12;
    let mut ty = u16_at(frame, 12).unwrap();
    for tag in 0..vlan_limit {
        if ty != 0x8100 && ty != 0x88a8 {
            break;
        }
        let (Some(tci), Some(next)) = (u16_at(frame, type_at + 2), u16_at(frame, type_at + 4)) else { break };
        if tag == 0 {
            lay.vlan = Some(type_at);
        }
        if tag < 2 {
            k.vlan[tag] = tci | 0x1000;
        }
        type_at += 4;
        ty = next;
    }
    let mut l3 = type_at + 2;
    if ty < 0x600 {
        // 802.3: only LLC/SNAP with OUI 0 and a real EtherType names a protocol.
        ty = 0x05ff;
        if let Some(llc) = get::<8>(frame, l3) {
            let snap = u16::from_be_bytes([llc[6], llc[7]]);
            if llc[..6] == [0xaa, 0xaa, 0x03, 0, 0, 0] && snap >= 0x600 {
                ty = snap;
                l3 += 8;
            }
        }
    }
    k.dl_type = ty;
    lay.dl_type = ty;
    let p = &frame[l3..];
    match ty {
        0x0800 => ref_ipv4(p, l3, &mut k, &mut lay),
        0x86dd => ref_ipv6(p, l3, &mut k, &mut lay),
        0x0806 | 0x8035 => {
            if let Some(a) = get::<28>(p, 0)
                && a[..6] == [0, 1, 0x08, 0x00, 6, 4]
            {
                let op = u16::from_be_bytes([a[6], a[7]]);
                k.nw_proto = if op < 256 { op as u8 } else { 0 };
                k.arp_sha.copy_from_slice(&a[8..14]);
                k.ip4_src.copy_from_slice(&a[14..18]);
                k.arp_tha.copy_from_slice(&a[18..24]);
                k.ip4_dst.copy_from_slice(&a[24..28]);
                lay.l3 = Some(l3);
                lay.l3_end = l3 + 28;
            }
        }
        0x8847 | 0x8848 => {
            if let Some(lse) = get::<4>(p, 0) {
                k.mpls_lse = lse;
                lay.mpls = Some(l3);
            }
        }
        _ => {}
    }
    (k, lay)
}

fn ref_ipv4(p: &[u8], l3: usize, k: &mut RefKey, lay: &mut RefLayers) {
    let Some(h) = get::<20>(p, 0) else { return };
    let hlen = 4 * usize::from(h[0] & 15);
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if hlen < 20 || hlen > p.len() || total > p.len() || total < hlen {
        return;
    }
    k.ip4_src.copy_from_slice(&h[12..16]);
    k.ip4_dst.copy_from_slice(&h[16..20]);
    let more_fragments = h[6] & 0x20 != 0;
    let offset = u16::from_be_bytes([h[6] & 0x1f, h[7]]);
    let later = offset != 0;
    k.nw_frag = if more_fragments || later { 1 } else { 0 } | if later { 2 } else { 0 };
    k.nw_tos = h[1];
    k.nw_ttl = h[8];
    k.nw_proto = h[9];
    lay.l3 = Some(l3);
    lay.l3_end = l3 + total;
    if !later {
        ref_l4(&p[hlen..total], l3 + hlen, false, k, lay);
    }
}

fn ref_ipv6(p: &[u8], l3: usize, k: &mut RefKey, lay: &mut RefLayers) {
    let Some(h) = get::<40>(p, 0) else { return };
    let end = 40 + usize::from(u16::from_be_bytes([h[4], h[5]]));
    if end > p.len() {
        return;
    }
    k.ip6_src.copy_from_slice(&h[8..24]);
    k.ip6_dst.copy_from_slice(&h[24..40]);
    let payload = &p[..end];
    let mut next = h[6];
    let mut at = 40;
    let mut frag = 0;
    loop {
        let room = end - at;
        let ext_len = match next {
            0 | 43 | 60 => payload.get(at + 1).map(|&l| 8 + 8 * usize::from(l)),
            51 => payload.get(at + 1).map(|&l| 8 + 4 * usize::from(l)),
            44 => Some(8),
            _ => break,
        };
        // Every extension header is at least 8 bytes; a truncated one drops all but the
        // addresses.
        match ext_len {
            Some(n) if room >= 8 && room >= n => {}
            _ => return,
        }
        let n = ext_len.unwrap();
        let this = next;
        next = payload[at];
        if this == 44 {
            // Offset and flags all zero: an atomic fragment, a whole packet (RFC 6946).
            let word = u16::from_be_bytes([payload[at + 2], payload[at + 3]]);
            if word != 0 {
                frag |= 1;
            }
            at += n;
            if word >> 3 != 0 {
                // A later fragment carries no upper-layer header: its protocol reads as
                // the fragment header's own number, as OVS has it.
                frag |= 2;
                next = 44;
                break;
            }
        } else {
            at += n;
        }
    }
    k.nw_tos = (h[0] << 4) | (h[1] >> 4);
    k.ipv6_label = (u32::from(h[1] & 0x0f) << 16) | (u32::from(h[2]) << 8) | u32::from(h[3]);
    k.nw_ttl = h[7];
    k.nw_proto = next;
    k.nw_frag = frag;
    lay.l3 = Some(l3);
    lay.l3_end = l3 + end;
    if frag & 2 == 0 {
        ref_l4(&payload[at..], l3 + at, true, k, lay);
    }
}

fn ref_l4(seg: &[u8], at: usize, v6: bool, k: &mut RefKey, lay: &mut RefLayers) {
    let need = match (k.nw_proto, v6) {
        (6, _) => {
            let Some(&off_byte) = seg.get(12) else { return };
            (4 * usize::from(off_byte >> 4)).max(20)
        }
        (17, _) => 8,
        (132, _) => 12,
        (1, false) | (58, true) => 8,
        _ => return,
    };
    if seg.len() < need || (k.nw_proto == 6 && seg[12] >> 4 < 5) {
        return;
    }
    if k.nw_proto == 1 || k.nw_proto == 58 {
        k.tp_src = seg[0].into();
        k.tp_dst = seg[1].into();
    } else {
        k.tp_src = u16::from_be_bytes([seg[0], seg[1]]);
        k.tp_dst = u16::from_be_bytes([seg[2], seg[3]]);
    }
    if k.nw_proto == 6 {
        k.tcp_flags = u16::from_be_bytes([seg[12] & 0x0f, seg[13]]);
    }
    if k.nw_proto == 58 {
        ref_nd(seg, k);
    }
    lay.l4 = Some((k.nw_proto, at));
}

/// ND target and link-layer options of an ICMPv6 segment (OVS's `parse_icmpv6`).
fn ref_nd(seg: &[u8], k: &mut RefKey) {
    if !(seg[0] == 135 || seg[0] == 136) || seg[1] != 0 {
        return;
    }
    let Some(target) = get::<16>(seg, 8) else { return };
    let (mut sll, mut tll) = ([0u8; 6], [0u8; 6]);
    let mut at = 24;
    while seg.len() - at >= 8 {
        let (kind, units) = (seg[at], usize::from(seg[at + 1]));
        if units == 0 || at + units * 8 > seg.len() {
            break;
        }
        if units == 1 && (kind == 1 || kind == 2) {
            let held = if kind == 1 { &mut sll } else { &mut tll };
            if held.iter().any(|&b| b != 0) {
                return; // the same option twice: no ND fields at all
            }
            held.copy_from_slice(&seg[at + 2..at + 8]);
        }
        at += units * 8;
    }
    (k.nd_target, k.nd_sll, k.nd_tll) = (target, sll, tll);
}

// ---------------------------------------------------------------------------------------
// Comparison.
// ---------------------------------------------------------------------------------------

fn mac(m: [u8; 6]) -> u64 {
    m.iter().fold(0, |a, &b| (a << 8) | u64::from(b))
}

/// The key the reference fields describe, built through the key's setters.
fn to_flow_key(r: &RefKey) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_in_port(r.in_port);
    k.set_dl_dst_u64(mac(r.dl_dst));
    k.set_dl_src_u64(mac(r.dl_src));
    k.set_vlan_tci(0, r.vlan[0]);
    k.set_vlan_tci(1, r.vlan[1]);
    k.set_dl_type(r.dl_type);
    k.set_nw_proto(r.nw_proto);
    k.set_nw_tos(r.nw_tos);
    k.set_ipv6_label(r.ipv6_label);
    k.set_nw_ttl(r.nw_ttl);
    k.set_nw_frag(r.nw_frag);
    k.set_tp_src(r.tp_src);
    k.set_tp_dst(r.tp_dst);
    k.set_tcp_flags(r.tcp_flags);
    if matches!(r.dl_type, 0x8847 | 0x8848) {
        k.set_mpls_lse(u32::from_be_bytes(r.mpls_lse));
    }
    if r.dl_type == 0x86dd {
        k.set_ipv6_src_u128(u128::from_be_bytes(r.ip6_src));
        k.set_ipv6_dst_u128(u128::from_be_bytes(r.ip6_dst));
    } else {
        k.set_arp_sha_u64(mac(r.arp_sha));
        k.set_arp_tha_u64(mac(r.arp_tha));
        k.set_nw_src_u32(u32::from_be_bytes(r.ip4_src));
        k.set_nw_dst_u32(u32::from_be_bytes(r.ip4_dst));
    }
    k
}

/// Panics with the frame and both answers unless `extract` and `layers` agree with the
/// reference on `frame`.
fn check_against_reference(frame: &[u8], in_port: u32) -> (FlowKey, RefKey) {
    let (r, rl) = reference_parse(frame, in_port);
    let k = extract(frame, in_port);
    let fail = |what: &str| -> ! { panic!("{what} differs\nframe {frame:02x?}\nreference {r:?} {rl:?}\nkey {k:?}") };
    let got = (k.in_port(), k.dl_dst(), k.dl_src(), [k.vlan_tci(0), k.vlan_tci(1)], k.dl_type());
    if got != (r.in_port, r.dl_dst, r.dl_src, r.vlan, r.dl_type) {
        fail("L2");
    }
    if (k.nw_proto(), k.nw_tos(), k.nw_ttl(), k.nw_frag()) != (r.nw_proto, r.nw_tos, r.nw_ttl, r.nw_frag) {
        fail("nw_proto/tos/ttl/frag");
    }
    if k.ipv6_label() != r.ipv6_label {
        fail("ipv6_label");
    }
    if (k.tp_src(), k.tp_dst(), k.tcp_flags()) != (r.tp_src, r.tp_dst, r.tcp_flags) {
        fail("L4");
    }
    let addrs_ok = match r.dl_type {
        0x86dd => (k.ipv6_src().octets(), k.ipv6_dst().octets()) == (r.ip6_src, r.ip6_dst),
        _ => {
            (k.nw_src().octets(), k.nw_dst().octets(), k.arp_sha(), k.arp_tha())
                == (r.ip4_src, r.ip4_dst, r.arp_sha, r.arp_tha)
        }
    };
    if !addrs_ok {
        fail("addresses");
    }
    // The entry shares its word with IPv6's source address.
    if matches!(r.dl_type, 0x8847 | 0x8848) && k.mpls_lse().to_be_bytes() != r.mpls_lse {
        fail("mpls_lse");
    }
    if k != to_flow_key(&r) {
        fail("a key bit outside the named fields");
    }
    let nd = nd_fields(frame);
    if (nd.target, nd.sll, nd.tll) != (r.nd_target, r.nd_sll, r.nd_tll) {
        panic!("ND fields differ\nframe {frame:02x?}\nreference {r:?}\nnd_fields {nd:?}");
    }
    let l: Layers = layers(frame);
    if (l.vlan, l.l3, l.mpls, l.l4) != (rl.vlan, rl.l3, rl.mpls, rl.l4) || (rl.l3.is_some() && l.l3_end != rl.l3_end) {
        panic!("layers differ\nframe {frame:02x?}\nreference {rl:?}\nlayers {l:?}");
    }
    if rl.l3.is_some() && l.dl_type != rl.dl_type {
        fail("layers.dl_type");
    }
    (k, r)
}

/// A prefix never gains L4 fields: a cut whose key has any L4 field is the full key.
fn check_prefix(frame: &[u8], full: &FlowKey, n: usize) {
    let k = extract(&frame[..n], 5);
    if (k.tp_src(), k.tp_dst(), k.tcp_flags()) != (0, 0, 0) && k != *full {
        panic!("prefix of {n} bytes gained L4 fields\nframe {frame:02x?}\nprefix key {k:?}\nfull key {full:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Edits.
// ---------------------------------------------------------------------------------------

const EDITS: [DpAction; 15] = [
    DpAction::SetEthSrc([2, 0, 0, 0, 0, 1]),
    DpAction::SetEthDst([2, 0, 0, 0, 0, 2]),
    DpAction::SetVlanVid(77),
    DpAction::SetVlanPcp(5),
    DpAction::SetIpv4Src(Ipv4Addr::new(172, 16, 0, 1)),
    DpAction::SetIpv4Dst(Ipv4Addr::new(198, 51, 100, 7)),
    DpAction::SetIpv6Src(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9)),
    DpAction::SetIpv6Dst(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 9)),
    DpAction::SetIpv6Label(0xabcde),
    DpAction::SetIpDscp(46),
    DpAction::SetIpEcn(2),
    DpAction::SetTtl(9),
    DpAction::DecTtl,
    DpAction::SetTpSrc(4242),
    DpAction::SetTpDst(8080),
];

fn icmp(r: &RefKey) -> bool {
    (r.dl_type == 0x0800 && r.nw_proto == 1) || (r.dl_type == 0x86dd && r.nw_proto == 58)
}

/// The reference key after an `Applied` edit: `before` with exactly the edited field
/// changed.
fn edited(before: &RefKey, a: &DpAction) -> RefKey {
    let mut r = *before;
    match *a {
        DpAction::SetEthSrc(m) => r.dl_src = m,
        DpAction::SetEthDst(m) => r.dl_dst = m,
        DpAction::SetVlanVid(v) => r.vlan[0] = (r.vlan[0] & 0xf000) | (v & 0x0fff),
        DpAction::SetVlanPcp(p) => r.vlan[0] = (r.vlan[0] & 0x1fff) | (u16::from(p & 7) << 13),
        DpAction::SetIpv4Src(ip) => r.ip4_src = ip.octets(),
        DpAction::SetIpv4Dst(ip) => r.ip4_dst = ip.octets(),
        DpAction::SetIpv6Src(ip) => r.ip6_src = ip.octets(),
        DpAction::SetIpv6Dst(ip) => r.ip6_dst = ip.octets(),
        DpAction::SetIpv6Label(l) => r.ipv6_label = l,
        DpAction::SetIpDscp(d) => r.nw_tos = (r.nw_tos & 3) | (d << 2),
        DpAction::SetIpEcn(e) => r.nw_tos = (r.nw_tos & 0xfc) | (e & 3),
        DpAction::SetTtl(t) => r.nw_ttl = t,
        DpAction::DecTtl => r.nw_ttl -= 1,
        // On ICMP/ICMPv6 the "ports" are the one-byte type and code: OVS writes the low
        // byte of the value there.
        DpAction::SetTpSrc(p) if icmp(&r) => r.tp_src = p & 0xff,
        DpAction::SetTpDst(p) if icmp(&r) => r.tp_dst = p & 0xff,
        DpAction::SetTpSrc(p) => r.tp_src = p,
        DpAction::SetTpDst(p) => r.tp_dst = p,
        _ => unreachable!("not in EDITS"),
    }
    // An ICMPv6 type or code rewritten away from neighbour discovery takes the ND fields
    // with it (EDITS writes no ND type with code 0).
    if icmp(&r) && !(matches!(r.tp_src, 135 | 136) && r.tp_dst == 0) {
        (r.nd_target, r.nd_sll, r.nd_tll) = Default::default();
    }
    r
}

/// Applies `a` to `frame` and checks the editing properties of the module doc. Returns
/// true if the frame's checksums verified before and were checked after.
fn check_edit(frame: &mut Vec<u8>, a: &DpAction) -> bool {
    // Edits act where `layers` finds the headers, behind any number of tags: judge them
    // on the reference's view without a tag limit.
    let (before, _) = reference_parse_tags(frame, 5, usize::MAX);
    let ok_before = checksums_ok(frame);
    let original = frame.clone();
    let outcome = execute_edit(frame, a);
    if outcome != EditOutcome::Applied {
        assert_eq!(*frame, original, "{a:?} answered {outcome:?} but changed the frame");
        return false;
    }
    check_against_reference(frame, 5);
    let (after, _) = reference_parse_tags(frame, 5, usize::MAX);
    assert_eq!(after, edited(&before, a), "{a:?} changed more than its field of {original:02x?}");
    // The checksum checker takes the IPv6 destination field as the pseudo-header's
    // destination; behind a routing header with segments left the final destination is
    // elsewhere and a destination rewrite rightly leaves the L4 checksum alone, so the
    // checker cannot judge that case.
    let judgeable = !(matches!(a, DpAction::SetIpv6Dst(_)) && routing_header_pending(&original));
    if ok_before && judgeable {
        assert!(checksums_ok(frame), "{a:?} broke the checksums of {original:02x?}");
    }
    ok_before && judgeable
}

// ---------------------------------------------------------------------------------------
// Inputs.
// ---------------------------------------------------------------------------------------

fn seeds() -> Vec<Vec<u8>> {
    let sctp = [0x0b, 0x59, 0x0b, 0x5a, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 4];
    let icmp6 = [128u8, 0, 0, 0, 0, 1, 0, 1];
    let udp = [0u8, 53, 0x30, 0x39, 0, 8, 0, 0];
    let mut s = vec![
        tcp4_frame(&TCP4),
        tcp4_frame_with_options(&TCP4, &[1, 1, 1, 0]),
        udp4_frame(5353, 53, b"abc"),
        icmp4_frame(8, 0),
        ipv4_frame(132, &sctp),
        arp_frame(1),
        ipv6_frame(6, 0x20, &[], &tcp_header(1, 2, 0x12, 6)),
        ipv6_frame(58, 0, &[], &icmp6),
        // Neighbour solicitation (target, source link-layer option) and advertisement
        // (target link-layer option, then an unknown 16-byte option).
        ipv6_frame(58, 0, &[], &[&[135u8, 0, 0, 0, 0, 0, 0, 0][..], &IPV6_DST, &[1, 1, 2, 0, 0, 0, 0, 7]].concat()),
        ipv6_frame(
            58,
            0,
            &[],
            &[&[136u8, 0, 0, 0, 0x60, 0, 0, 0][..], &IPV6_SRC, &[2, 1, 2, 0, 0, 0, 0, 8], &[14, 2], &[0; 14]].concat(),
        ),
        ipv6_frame_ext(&[ExtHdr::Opts(0, 0), ExtHdr::Opts(43, 1), ExtHdr::Ah(1)], 17, &udp),
        ipv6_frame_ext(&[ExtHdr::Frag { offset: 0, more: true }], 17, &udp),
        ipv6_frame_ext(&[ExtHdr::Frag { offset: 7, more: false }], 6, &tcp_header(1, 2, 2, 5)),
    ];
    // MPLS: two label stack entries (label 16, TC 5, TTL 64; label 17 with BOS) over IPv4.
    let mut mpls = udp4_frame(7, 9, b"x");
    mpls[12..14].copy_from_slice(&0x8847u16.to_be_bytes());
    mpls.splice(14..14, [0x00, 0x01, 0x0a, 0x40, 0x00, 0x01, 0x11, 0x40]);
    s.push(mpls);
    // Ethernet padding after an IPv4 packet.
    let mut padded = udp4_frame(7, 9, b"x");
    padded.resize(60, 0);
    s.push(padded);
    let tagged: Vec<Vec<u8>> = s.iter().map(|f| with_vlan(f, 0x8100, 0x2064)).collect();
    let qinq: Vec<Vec<u8>> = tagged.iter().take(4).map(|f| with_vlan(f, 0x88a8, 0x0005)).collect();
    s.extend(tagged);
    s.extend(qinq);
    s.push(llc_snap(&tcp4_frame(&TCP4)));
    s
}

/// `frame` (Ethernet II) re-encapsulated as 802.3 + LLC/SNAP with OUI 0.
fn llc_snap(frame: &[u8]) -> Vec<u8> {
    let mut snap = frame[..12].to_vec();
    snap.extend_from_slice(&((frame.len() - 14 + 8) as u16).to_be_bytes());
    snap.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0]);
    snap.extend_from_slice(&frame[12..]);
    snap
}

fn mutate(rng: &mut SplitMix, seed: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if rng.index(10) == 0 {
        // Fully random bytes, sometimes with a plausible EtherType so deeper layers are
        // reached.
        let len = rng.index(128);
        out.extend((0..len).map(|_| rng.next_u64() as u8));
        if len >= 14 && rng.index(2) == 0 {
            let t = [0x0800u16, 0x86dd, 0x0806, 0x8035, 0x8100, 0x88a8, 0x0030, 0x8847, 0x8848];
            out[12..14].copy_from_slice(&t[rng.index(t.len())].to_be_bytes());
        }
        return;
    }
    out.extend_from_slice(seed);
    for _ in 0..1 + rng.index(4) {
        if out.is_empty() {
            break;
        }
        match rng.index(6) {
            0 => {
                let i = rng.index(out.len());
                out[i] ^= 1 << rng.index(8);
            }
            1 => {
                let i = rng.index(out.len());
                out[i] = rng.next_u64() as u8;
            }
            2 => {
                // Header bytes that steer parsing: type, IHL, lengths, next headers.
                let spots = [12usize, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 46, 54, 55, 56, 57];
                let i = spots[rng.index(spots.len())];
                if i < out.len() {
                    out[i] = rng.next_u64() as u8;
                }
            }
            3 => {
                let len = rng.index(out.len() + 1);
                out.truncate(len);
            }
            4 => {
                let extra = rng.index(16);
                out.extend((0..extra).map(|_| rng.next_u64() as u8));
            }
            _ => {
                let i = rng.index(out.len());
                let j = rng.index(out.len());
                out.swap(i, j);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------

/// The reference itself, on frames whose fields are known by construction (so that a
/// reference that agreed with a wrong parser would still be caught here).
#[test]
fn reference_reads_known_frames() {
    let (r, l) = reference_parse(&with_vlan(&tcp4_frame(&TCP4), 0x8100, 0xa064), 3);
    assert_eq!((r.vlan, r.dl_type, r.nw_proto, r.nw_tos, r.nw_ttl), ([0xb064, 0], 0x0800, 6, 0x10, 64));
    assert_eq!((r.ip4_src, r.ip4_dst, r.tp_src, r.tp_dst, r.tcp_flags), (TCP4.src, TCP4.dst, 43210, 80, 2));
    assert_eq!((l.vlan, l.l3, l.l4), (Some(12), Some(18), Some((6, 38))));
    let udp = [0u8, 53, 0x30, 0x39, 0, 8, 0, 0];
    let (r, _) = reference_parse(&ipv6_frame_ext(&[ExtHdr::Opts(0, 1), ExtHdr::Ah(1)], 17, &udp), 3);
    assert_eq!((r.ip6_src, r.nw_proto, r.tp_src, r.tp_dst, r.nw_frag), (IPV6_SRC, 17, 53, 12345, 0));
    assert_eq!(r.ipv6_label, 0x12345);
    // A later fragment reads protocol 44; an atomic fragment is no fragment at all.
    let (r, _) = reference_parse(&ipv6_frame_ext(&[ExtHdr::Frag { offset: 3, more: true }], 17, &udp), 3);
    assert_eq!((r.nw_proto, r.tp_src, r.nw_frag), (44, 0, 3));
    let (r, _) = reference_parse(&ipv6_frame_ext(&[ExtHdr::Frag { offset: 0, more: false }], 17, &udp), 3);
    assert_eq!((r.nw_proto, r.tp_src, r.nw_frag), (17, 53, 0));
    // Two tags: the key stops after the first (dl_type is the inner TPID), the layers do not.
    let two = with_vlan(&with_vlan(&tcp4_frame(&TCP4), 0x8100, 0x2064), 0x88a8, 0x0005);
    let (r, l) = reference_parse(&two, 3);
    assert_eq!((r.vlan, r.dl_type, r.nw_proto, r.tp_dst), ([0x1005, 0], 0x8100, 0, 0));
    assert_eq!((l.vlan, l.dl_type, l.l3, l.l4), (Some(12), 0x0800, Some(22), Some((6, 42))));
    let (r, _) = reference_parse(&arp_frame(2), 3);
    assert_eq!(
        (r.dl_type, r.nw_proto, r.ip4_src, r.ip4_dst, r.arp_sha),
        (0x0806, 2, [10, 0, 0, 1], [10, 0, 0, 2], SRC_MAC)
    );
    let (r, _) = reference_parse(&llc_snap(&icmp4_frame(3, 4)), 3);
    assert_eq!((r.dl_type, r.nw_proto, r.tp_src, r.tp_dst), (0x0800, 1, 3, 4));
    assert_eq!(reference_parse(&[0; 13], 3).0, RefKey { in_port: 3, ..RefKey::default() });
}

#[test]
fn millions_of_mutated_frames_match_the_reference() {
    let total: usize = std::env::var("FERROVS_FUZZ_FRAMES").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let seeds = seeds();
    let mut rng = SplitMix(0x5eed_f00d);
    let mut frame = Vec::with_capacity(256);
    let (mut with_l4, mut v6, mut tagged, mut applied, mut verified) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut nd_target, mut nd_ll) = (0usize, 0usize);
    for n in 0..total {
        let seed = &seeds[rng.index(seeds.len())];
        mutate(&mut rng, seed, &mut frame);
        let (k, r) = check_against_reference(&frame, 5);
        with_l4 += usize::from(r.tp_src != 0 || r.tp_dst != 0);
        v6 += usize::from(r.dl_type == 0x86dd && r.nw_proto != 0);
        tagged += usize::from(r.vlan[0] != 0);
        nd_target += usize::from(r.nd_target != [0; 16]);
        nd_ll += usize::from(r.nd_sll != [0; 6] || r.nd_tll != [0; 6]);
        // Two random cuts of every frame, and every cut of one frame in 64.
        if n % 64 == 0 {
            for cut in 0..frame.len() {
                check_prefix(&frame, &k, cut);
            }
        } else if !frame.is_empty() {
            check_prefix(&frame, &k, rng.index(frame.len()));
            check_prefix(&frame, &k, rng.index(frame.len()));
        }
        if n % 4 == 0 {
            let a = EDITS[rng.index(EDITS.len())];
            let before = frame.clone();
            verified += usize::from(check_edit(&mut frame, &a));
            applied += usize::from(frame != before);
        }
    }
    // The mutations must keep reaching deep layers, or the test proves little.
    assert!(with_l4 > total / 10, "only {with_l4} of {total} frames reached L4");
    assert!(v6 > total / 20, "only {v6} of {total} frames had an IPv6 protocol");
    assert!(tagged > total / 10, "only {tagged} of {total} frames had a VLAN tag");
    println!("ND: {nd_target} targets, {nd_ll} link-layer addresses in {total} frames");
    assert!(nd_target > total / 50, "only {nd_target} of {total} frames had an ND target");
    assert!(nd_ll > total / 100, "only {nd_ll} of {total} frames had an ND link-layer address");
    assert!(applied > total / 40, "only {applied} edits changed a frame");
    assert!(verified > total / 80, "only {verified} edits were checksum-verified");
}
