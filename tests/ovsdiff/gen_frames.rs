//! Random input frames: Ethernet II with 0-3 VLAN tags, ARP, IPv4 (options, fragments,
//! TTL 0/1/64, protocol 0), IPv6 (extension headers, fragments), TCP/UDP/ICMP/ICMPv6/SCTP,
//! other EtherTypes, and truncated or malformed ones. Addresses and ports come from small
//! pools shared with the rule generator (`pools`), so random rules actually match random
//! frames. Checksums are right unless a frame is deliberately broken; a switch that
//! rewrites a header must keep them right.
//!
//! Some frames are long: around the longest frame a port with the default MTU (1500)
//! sends, with and without tags, and well beyond it, so that both switches' MTU checks
//! on output are compared. Whether a frame is long, and how long, is drawn from a second
//! generator (`sizes`); the frame is then built with as much more payload as reaches
//! that length, drawing exactly what it would draw at its own length, so the sequence of
//! frames of a seed is the same as without long frames except for their lengths.

use crate::pools;
use crate::rng::Rng;

/// One generated frame and a short description of how it was built.
pub struct Frame {
    pub bytes: Vec<u8>,
    pub desc: String,
}

/// Internet checksum (RFC 1071) of `data`, seeded with `start` (a partial sum).
fn csum_with(start: u32, data: &[u8]) -> u16 {
    let mut s = start;
    for c in data.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { (c[0] as u16) << 8 };
        s += w as u32;
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn sum_words(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) as u32 } else { (c[0] as u32) << 8 })
        .sum()
}

/// CRC32c (Castagnoli), as SCTP's checksum.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

#[derive(Clone, Copy, PartialEq)]
enum L4 {
    Tcp,
    Udp,
    Icmp,
    Icmp6,
    Sctp,
    Other(u8),
}

impl L4 {
    fn proto(self) -> u8 {
        match self {
            L4::Tcp => 6,
            L4::Udp => 17,
            L4::Icmp => 1,
            L4::Icmp6 => 58,
            L4::Sctp => 132,
            L4::Other(p) => p,
        }
    }
}

/// `extra` bytes of filler payload (a long frame's; drawn from no generator).
fn filler(extra: usize) -> impl Iterator<Item = u8> {
    (0..extra).map(|i| (i as u8).wrapping_mul(7))
}

/// The L4 header and payload (`extra` bytes longer than drawn), checksum field zero
/// (filled in by `fill_l4_checksum`).
fn l4_bytes(rng: &mut Rng, l4: L4, desc: &mut String, extra: usize) -> Vec<u8> {
    let n = rng.below(12) as usize;
    let mut payload = rng.bytes(n);
    payload.extend(filler(extra));
    let mut h = Vec::new();
    match l4 {
        L4::Tcp => {
            let (sp, dp) = (*rng.pick(pools::PORTS), *rng.pick(pools::PORTS));
            // Data offset: usually 5, sometimes with options, rarely below 5 (malformed).
            let off = *rng.pick(&[5u8, 5, 5, 5, 6, 8, 4, 0]);
            h.extend_from_slice(&sp.to_be_bytes());
            h.extend_from_slice(&dp.to_be_bytes());
            h.extend_from_slice(&rng.bytes(8));
            h.push(off << 4);
            h.push(*rng.pick(&[0x02u8, 0x12, 0x10, 0x18, 0x01, 0x04, 0x00]));
            h.extend_from_slice(&[0x20, 0x00, 0, 0, 0, 0]);
            for _ in 5..off.max(5) {
                h.extend_from_slice(&[1, 1, 1, 1]);
            }
            *desc += &format!(" tcp {sp}->{dp} doff={off}");
        }
        L4::Udp | L4::Sctp => {
            let (sp, dp) = (*rng.pick(pools::PORTS), *rng.pick(pools::PORTS));
            h.extend_from_slice(&sp.to_be_bytes());
            h.extend_from_slice(&dp.to_be_bytes());
            if l4 == L4::Udp {
                h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                h.extend_from_slice(&[0, 0]);
                *desc += &format!(" udp {sp}->{dp}");
            } else {
                h.extend_from_slice(&rng.bytes(4)); // verification tag
                h.extend_from_slice(&[0, 0, 0, 0]);
                *desc += &format!(" sctp {sp}->{dp}");
            }
        }
        L4::Icmp | L4::Icmp6 => {
            let ty = *rng.pick(if l4 == L4::Icmp { &[0u8, 8, 3, 11][..] } else { &[128u8, 129, 1, 135, 136, 133][..] });
            let code = *rng.pick(&[0u8, 0, 1, 3]);
            h.extend_from_slice(&[ty, code, 0, 0]);
            h.extend_from_slice(&rng.bytes(4));
            if ty == 135 || ty == 136 {
                h.extend_from_slice(pools::ipv6(rng.below(pools::IPV6.len() as u64) as usize).as_slice());
                // Options: none, the link-layer address the message carries (SLL in a
                // solicitation, TLL in an advertisement), the other one, or malformed
                // ones (length 0, a length past the end, an unknown type first).
                let own = if ty == 135 { 1u8 } else { 2 };
                let m: [u8; 6] = *rng.pick(pools::MACS);
                let what = match rng.below(8) {
                    0 | 1 => "",
                    2..=4 => {
                        h.extend_from_slice(&[own, 1]);
                        h.extend_from_slice(&m);
                        " ll"
                    }
                    5 => {
                        h.extend_from_slice(&[3 - own, 1]);
                        h.extend_from_slice(&m);
                        " other-ll"
                    }
                    6 => {
                        h.extend_from_slice(&[own, *rng.pick(&[0u8, 2])]);
                        h.extend_from_slice(&m);
                        " bad-ll-len"
                    }
                    _ => {
                        h.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0, own, 1]);
                        h.extend_from_slice(&m);
                        " unknown+ll"
                    }
                };
                *desc += what;
            }
            *desc += &format!(" icmp type={ty} code={code}");
        }
        L4::Other(p) => *desc += &format!(" proto={p}"),
    }
    h.extend_from_slice(&payload);
    h
}

/// Fills the L4 checksum of `l4` given the pseudo-header sum.
fn fill_l4_checksum(l4: L4, seg: &mut [u8], pseudo: u32) {
    let at = match l4 {
        L4::Tcp => 16,
        L4::Udp => 6,
        L4::Icmp | L4::Icmp6 => 2,
        L4::Sctp => {
            if seg.len() >= 12 {
                let c = crc32c(seg);
                seg[8..12].copy_from_slice(&c.to_le_bytes());
            }
            return;
        }
        L4::Other(_) => return,
    };
    if seg.len() < at + 2 {
        return;
    }
    let start = if l4 == L4::Icmp { 0 } else { pseudo };
    let mut c = csum_with(start, seg);
    if l4 == L4::Udp && c == 0 {
        c = 0xffff;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn pick_l4(rng: &mut Rng, v6: bool) -> L4 {
    match rng.below(10) {
        0..=2 => L4::Tcp,
        3..=5 => L4::Udp,
        6 | 7 => {
            if v6 {
                L4::Icmp6
            } else {
                L4::Icmp
            }
        }
        8 => L4::Sctp,
        _ => L4::Other(*rng.pick(&[0u8, 47, 89, 253])),
    }
}

fn ipv4_packet(rng: &mut Rng, desc: &mut String, extra: usize) -> Vec<u8> {
    let src = *rng.pick(pools::IPV4);
    let dst = *rng.pick(pools::IPV4);
    let l4 = pick_l4(rng, false);
    let ttl = *rng.pick(&[64u8, 64, 64, 1, 0, 2, 255]);
    let tos = *rng.pick(&[0u8, 0, 0x10, 0xb8, 0x03, 0xfc]);
    let opt_words = *rng.pick(&[0usize, 0, 0, 0, 1, 3]);
    // Fragments: none (DF or not), the first (MF, offset 0), or a later one.
    let (frag, fdesc) = match rng.below(10) {
        0 => (0x2000u16, "first-fragment"),
        1 => (0x2000 | (1 + rng.below(200) as u16), "later-fragment"),
        2 => (rng.below(200) as u16 + 1, "last-fragment"),
        3..=5 => (0, ""),
        _ => (0x4000, ""),
    };
    let mut seg = l4_bytes(rng, l4, desc, extra);
    let total = 20 + opt_words * 4 + seg.len();
    let mut h = vec![0x40 | (5 + opt_words as u8), tos];
    h.extend_from_slice(&(total as u16).to_be_bytes());
    h.extend_from_slice(&rng.u16().to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[ttl, l4.proto(), 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    for _ in 0..opt_words {
        h.extend_from_slice(&[1, 1, 1, 1]); // NOPs
    }
    if frag & 0x1fff == 0 {
        let mut pseudo = sum_words(&src) + sum_words(&dst) + l4.proto() as u32 + seg.len() as u32;
        pseudo = (pseudo & 0xffff) + (pseudo >> 16);
        fill_l4_checksum(l4, &mut seg, pseudo);
    }
    let c = csum_with(0, &h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    *desc = format!(
        " ipv4 {}->{} ttl={ttl} tos={tos:#x} opts={opt_words} {fdesc}{}",
        pools::fmt_ipv4(src),
        pools::fmt_ipv4(dst),
        desc
    );
    h.extend_from_slice(&seg);
    h
}

fn ipv6_packet(rng: &mut Rng, desc: &mut String, extra: usize) -> Vec<u8> {
    let src = pools::ipv6(rng.below(pools::IPV6.len() as u64) as usize);
    let dst = pools::ipv6(rng.below(pools::IPV6.len() as u64) as usize);
    let l4 = pick_l4(rng, true);
    let hlim = *rng.pick(&[64u8, 64, 1, 0, 255]);
    let tc = *rng.pick(&[0u8, 0, 0xb8, 0x01]);
    let label = match rng.below(10) {
        0..=3 => 0,
        4 => rng.below(0x100000) as u32,
        _ => *rng.pick(pools::LABELS),
    };
    // Extension headers: hop-by-hop (0), destination options (60), routing (43), fragment (44).
    let mut exts: Vec<u8> = Vec::new();
    for _ in 0..rng.below(3) {
        exts.push(*rng.pick(&[0u8, 60, 43, 44]));
    }
    if let Some(p) = exts.iter().position(|&e| e == 0) {
        exts.remove(p);
        exts.insert(0, 0);
    }
    let mut seg = l4_bytes(rng, l4, desc, extra);
    let mut frag_later = false;
    let mut ext_bytes = Vec::new();
    for (i, &e) in exts.iter().enumerate() {
        let next = exts.get(i + 1).copied().unwrap_or(l4.proto());
        match e {
            44 => {
                let (off_mf, what) = match rng.below(3) {
                    0 => (0x0001u16, "first"),
                    1 => ((1 + rng.below(100) as u16) << 3 | 1, "later"),
                    _ => (0, "atomic"),
                };
                frag_later |= off_mf >> 3 != 0;
                ext_bytes.extend_from_slice(&[next, 0]);
                ext_bytes.extend_from_slice(&off_mf.to_be_bytes());
                ext_bytes.extend_from_slice(&rng.bytes(4));
                *desc = format!(" frag({what}){desc}");
            }
            _ => {
                ext_bytes.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
                *desc = format!(" ext{e}{desc}");
            }
        }
    }
    let upper = seg.len() as u32;
    if !frag_later {
        let pseudo = sum_words(&src) + sum_words(&dst) + upper + l4.proto() as u32;
        fill_l4_checksum(l4, &mut seg, (pseudo & 0xffff) + (pseudo >> 16));
    }
    let first = exts.first().copied().unwrap_or(l4.proto());
    let vtf = 0x6000_0000u32 | (tc as u32) << 20 | label;
    let mut h = vtf.to_be_bytes().to_vec();
    h.extend_from_slice(&((ext_bytes.len() + seg.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[first, hlim]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&ext_bytes);
    h.extend_from_slice(&seg);
    *desc = format!(" ipv6 hlim={hlim} tc={tc:#x} label={label:#x}{desc}");
    h
}

fn arp_packet(rng: &mut Rng, src_mac: [u8; 6], desc: &mut String) -> Vec<u8> {
    let op = *rng.pick(&[1u16, 2, 1, 3]);
    let spa = *rng.pick(pools::IPV4);
    let tpa = *rng.pick(pools::IPV4);
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&src_mac);
    a.extend_from_slice(&spa);
    let tha: [u8; 6] = if op == 1 { [0; 6] } else { *rng.pick(pools::MACS) };
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa);
    *desc = format!(" arp op={op} {}->{}", pools::fmt_ipv4(spa), pools::fmt_ipv4(tpa));
    a
}

/// Mixed into a case's seed for its `sizes` generator.
pub const SIZES_SEED: u64 = 0x6c65_6e67_7468_7321;

/// Lengths of long frames: the default MTU's limits (1514 untagged, 1518 with one tag)
/// and a byte either side, with up to two tags more, and some far beyond, up to the
/// longest frame one mbuf holds (2,048 bytes). ferrovs drops a longer one on receive,
/// where OVS's dummy port takes it (`known_a_frame_longer_than_an_mbuf_is_dropped_on_receive`):
/// what OVS learns from it would differ in the outputs of later frames, which no class
/// can tell from those frames alone.
const LONG_LENGTHS: &[usize] = &[1513, 1514, 1515, 1517, 1518, 1519, 1521, 1522, 1523, 1526, 1527, 1600, 2047, 2048];

/// One random frame; one in 16 is made long (see the module doc).
pub fn frame(rng: &mut Rng, sizes: &mut Rng) -> Frame {
    if !sizes.chance(6) {
        return frame_with(rng, 0);
    }
    let want = *sizes.pick(LONG_LENGTHS);
    // The filler that reaches `want`: the frame without it may have been padded to 60
    // bytes, so a second probe makes up for that. (A truncated frame stays shorter.)
    let mut extra = 0;
    for _ in 0..2 {
        let len = frame_with(&mut rng.fork(), extra).bytes.len();
        if len >= want {
            break;
        }
        extra += want - len;
    }
    let f = frame_with(rng, extra);
    Frame { desc: format!("{} len={}", f.desc, f.bytes.len()), ..f }
}

/// One random frame, with `extra` bytes of filler in its payload.
fn frame_with(rng: &mut Rng, extra: usize) -> Frame {
    let dst = if rng.chance(15) { [0xff; 6] } else { *rng.pick(pools::MACS) };
    let src = *rng.pick(&pools::MACS[..4]);
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    let ntags = *rng.pick(&[0usize, 0, 0, 0, 0, 1, 1, 1, 2, 3]);
    let mut desc = String::new();
    for i in 0..ntags {
        let tpid: u16 = if i == 0 && ntags > 1 && rng.chance(50) { 0x88a8 } else { 0x8100 };
        let vid = *rng.pick(pools::VIDS);
        let pcp = rng.below(8) as u16;
        let dei = if rng.chance(10) { 0x1000 } else { 0 };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(pcp << 13 | dei | vid).to_be_bytes());
        desc += &format!(" vlan({tpid:#06x} vid={vid} pcp={pcp}{})", if dei != 0 { " dei" } else { "" });
    }
    let mut l3 = String::new();
    let (ethertype, body) = match rng.below(20) {
        0..=3 => {
            let mut a = arp_packet(rng, src, &mut l3);
            a.extend(filler(extra));
            (0x0806u16, a)
        }
        4..=11 => (0x0800, ipv4_packet(rng, &mut l3, extra)),
        12..=16 => (0x86dd, ipv6_packet(rng, &mut l3, extra)),
        _ => {
            let t = *rng.pick(&[0x88ccu16, 0x9000, 0x0842, 0x8847]);
            l3 = format!(" ethertype={t:#06x}");
            let mut body = Vec::new();
            // MPLS: a label stack entry the rules name, most of the time.
            if t == 0x8847 && rng.chance(70) {
                let label = *rng.pick(&[16u32, 17, 1000]);
                let lse = label << 12 | (rng.below(8) as u32) << 9 | (rng.below(2) as u32) << 8;
                let lse = lse | *rng.pick(&[0u32, 1, 64]);
                body.extend_from_slice(&lse.to_be_bytes());
                l3 += &format!(" lse={lse:#010x}");
            }
            let n = rng.range(0, 40) as usize;
            body.extend(rng.bytes(n));
            body.extend(filler(extra));
            (t, body)
        }
    };
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(&body);
    desc += &l3;
    // Ethernet padding to the 60-byte minimum, as a NIC would add, half of the time.
    if rng.chance(50) && f.len() < 60 {
        f.resize(60, 0);
        desc += " padded";
    }
    // Truncated or broken on purpose.
    match rng.below(20) {
        // (The guard looks at the length without filler, so that a long frame draws what
        // it would at its own length.)
        0 | 1 if f.len() - extra > 15 => {
            let keep = rng.range(14, f.len() as u64 - 1) as usize;
            f.truncate(keep);
            desc += &format!(" truncated-to={keep}");
        }
        2 => {
            let l3_at = 14 + 4 * ntags;
            if ethertype == 0x0800 && f.len() > l3_at {
                f[l3_at] = 0x40 | rng.below(5) as u8;
                desc += " bad-ihl";
            }
        }
        3 => {
            let l3_at = 14 + 4 * ntags;
            if ethertype == 0x0800 && f.len() > l3_at + 4 {
                f[l3_at + 2..l3_at + 4].copy_from_slice(&1500u16.to_be_bytes());
                desc += " ip-total-length-too-big";
            }
        }
        _ => {}
    }
    Frame { bytes: f, desc: format!("{}->{}{desc}", pools::fmt_mac(src), pools::fmt_mac(dst)) }
}
