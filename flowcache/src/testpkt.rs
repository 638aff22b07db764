//! Builders of real, well-formed frames (correct lengths and checksums) for unit tests,
//! property tests and benchmarks, here and in the PMD and end-to-end crates.
//!
//! Each builder writes the bytes a real stack would put on the wire; tests then corrupt
//! or truncate them. Nothing here is used on the data path.
//!
//! This is the one home of frame building in the workspace: the header builders
//! ([`eth_header`], [`ipv4_header`], [`ipv6_header`], [`udp_segment`], [`tcp_header`],
//! [`fill_l4_checksum`]) are what the ready-made frames below, the PMD tests and
//! examples, the end-to-end frames and the benchmark generator are made of. It lives in
//! the lowest crate that needs frames (flowcache's own unit tests, the fuzz targets)
//! and next to the checksum code it uses; every crate above depends on flowcache anyway.

use crate::checksum;
use crate::extract::layers;

/// Destination MAC of the ready-made frames here.
pub const DST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// Source MAC of the ready-made frames here.
pub const SRC_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];

/// An IPv4 TCP segment to build.
#[derive(Debug, Clone, Copy)]
pub struct Tcp4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub tos: u8,
    pub ttl: u8,
}

/// A SYN from 192.168.1.10:43210 to 10.0.0.1:80, TOS 0x10, TTL 64.
pub const TCP4: Tcp4 =
    Tcp4 { src: [192, 168, 1, 10], dst: [10, 0, 0, 1], sport: 43210, dport: 80, flags: 0x02, tos: 0x10, ttl: 64 };

/// An untagged Ethernet header from `src` to `dst`.
pub fn eth_header(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// The fields of an IPv4 header that tests vary. [`Ipv4Hdr::new`] gives the usual ones:
/// TOS 0, TTL 64, identification 0x1234, DF set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Hdr {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    pub tos: u8,
    pub ttl: u8,
    pub id: u16,
    pub dont_fragment: bool,
}

impl Ipv4Hdr {
    pub const fn new(src: [u8; 4], dst: [u8; 4], proto: u8) -> Ipv4Hdr {
        Ipv4Hdr { src, dst, proto, tos: 0, ttl: 64, id: 0x1234, dont_fragment: true }
    }
}

/// An IPv4 header with options `opts` (a multiple of 4 bytes) for `l4_len` bytes of
/// payload, its checksum filled.
pub fn ipv4_header(h: &Ipv4Hdr, opts: &[u8], l4_len: usize) -> Vec<u8> {
    let ihl = (20 + opts.len()) / 4;
    let mut v = vec![0x40 | ihl as u8, h.tos];
    v.extend_from_slice(&((ihl * 4 + l4_len) as u16).to_be_bytes());
    v.extend_from_slice(&h.id.to_be_bytes());
    v.extend_from_slice(&[if h.dont_fragment { 0x40 } else { 0 }, 0, h.ttl, h.proto, 0, 0]);
    v.extend_from_slice(&h.src);
    v.extend_from_slice(&h.dst);
    v.extend_from_slice(opts);
    let c = checksum::checksum(&v);
    v[10..12].copy_from_slice(&c.to_be_bytes());
    v
}

/// An IPv6 header: version 6, traffic class `tc`, flow label `flow_label` (20 bits),
/// next header `next`, hop limit 64, for `payload_len` bytes after it.
pub fn ipv6_header(src: &[u8; 16], dst: &[u8; 16], next: u8, tc: u8, flow_label: u32, payload_len: usize) -> Vec<u8> {
    let vtf: u32 = (6 << 28) | ((tc as u32) << 20) | (flow_label & 0xf_ffff);
    let mut v = Vec::with_capacity(40);
    v.extend_from_slice(&vtf.to_be_bytes());
    v.extend_from_slice(&(payload_len as u16).to_be_bytes());
    v.push(next);
    v.push(64);
    v.extend_from_slice(src);
    v.extend_from_slice(dst);
    v
}

/// A UDP header and `payload`, checksum zero (fill it with [`fill_l4_checksum`]).
pub fn udp_segment(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A TCP header with `data_offset_words` * 4 bytes (NOP options fill the rest), window
/// 64240, sequence 1, checksum zero (filled by the frame builders).
pub fn tcp_header(sport: u16, dport: u16, flags: u8, data_offset_words: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.push(data_offset_words << 4);
    t.push(flags);
    t.extend_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    while t.len() < data_offset_words as usize * 4 {
        t.push(1);
    }
    t
}

/// Fills the L4 checksum of a TCP, UDP or ICMPv6 (or ICMP) frame in place.
pub fn fill_l4_checksum(frame: &mut [u8]) {
    let l = layers(frame);
    let (Some(l3), Some((proto, l4))) = (l.l3, l.l4) else { return };
    let field = match proto {
        6 => 16,
        17 => 6,
        1 | 58 => 2,
        _ => return,
    };
    frame[l4 + field] = 0;
    frame[l4 + field + 1] = 0;
    let seg = &frame[l4..l.l3_end];
    let pseudo = if proto == 1 {
        0
    } else if l.dl_type == 0x0800 {
        let src: [u8; 4] = frame[l3 + 12..l3 + 16].try_into().unwrap();
        let dst: [u8; 4] = frame[l3 + 16..l3 + 20].try_into().unwrap();
        checksum::ipv4_pseudo_sum(src, dst, proto, seg.len())
    } else {
        let src: [u8; 16] = frame[l3 + 8..l3 + 24].try_into().unwrap();
        let dst: [u8; 16] = frame[l3 + 24..l3 + 40].try_into().unwrap();
        checksum::ipv6_pseudo_sum(&src, &dst, proto, seg.len())
    };
    let mut c = !checksum::fold(checksum::sum_words(seg, pseudo));
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    frame[l4 + field..l4 + field + 2].copy_from_slice(&c.to_be_bytes());
}

/// True if the frame's IPv4 header checksum (if IPv4) and L4 checksum (TCP, UDP unless
/// zero over IPv4, ICMP, ICMPv6) verify. False if the frame has no parsable L3.
pub fn checksums_ok(frame: &[u8]) -> bool {
    let l = layers(frame);
    let Some(l3) = l.l3 else { return false };
    let is_v4 = l.dl_type == 0x0800;
    if is_v4 {
        let ihl = (frame[l3] & 0xf) as usize * 4;
        if !ipv4_header_checksum_ok(&frame[l3..l3 + ihl]) {
            return false;
        }
    }
    let Some((proto, l4)) = l.l4 else { return true };
    let seg = &frame[l4..l.l3_end];
    let pseudo = match (proto, is_v4) {
        (1, _) => 0,
        (6 | 17, true) => {
            if proto == 17 && seg[6] == 0 && seg[7] == 0 {
                return true; // no checksum
            }
            let src: [u8; 4] = frame[l3 + 12..l3 + 16].try_into().unwrap();
            let dst: [u8; 4] = frame[l3 + 16..l3 + 20].try_into().unwrap();
            checksum::ipv4_pseudo_sum(src, dst, proto, seg.len())
        }
        (6 | 17 | 58, false) => {
            let src: [u8; 16] = frame[l3 + 8..l3 + 24].try_into().unwrap();
            let dst: [u8; 16] = frame[l3 + 24..l3 + 40].try_into().unwrap();
            checksum::ipv6_pseudo_sum(&src, &dst, proto, seg.len())
        }
        _ => return true,
    };
    checksum::fold(checksum::sum_words(seg, pseudo)) == 0xffff
}

/// True if an IPv4 header (with options) has a correct checksum.
pub fn ipv4_header_checksum_ok(hdr: &[u8]) -> bool {
    checksum::checksum(hdr) == 0
}

/// An IPv4 frame carrying `l4` as protocol `proto` (checksum of L4 filled for TCP/UDP/ICMP).
pub fn ipv4_frame(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth_header(DST_MAC, SRC_MAC, 0x0800);
    f.extend_from_slice(&ipv4_header(&Ipv4Hdr::new([192, 168, 1, 10], [10, 0, 0, 1], proto), &[], l4.len()));
    f.extend_from_slice(l4);
    fill_l4_checksum(&mut f);
    f
}

/// An IPv4 TCP frame.
pub fn tcp4_frame(t: &Tcp4) -> Vec<u8> {
    tcp4_frame_with_options(t, &[])
}

/// An IPv4 TCP frame whose IP header carries `ip_opts` (a multiple of 4 bytes).
pub fn tcp4_frame_with_options(t: &Tcp4, ip_opts: &[u8]) -> Vec<u8> {
    let tcp = tcp_header(t.sport, t.dport, t.flags, 5);
    let mut f = eth_header(DST_MAC, SRC_MAC, 0x0800);
    let h = Ipv4Hdr { tos: t.tos, ttl: t.ttl, ..Ipv4Hdr::new(t.src, t.dst, 6) };
    f.extend_from_slice(&ipv4_header(&h, ip_opts, tcp.len()));
    f.extend_from_slice(&tcp);
    fill_l4_checksum(&mut f);
    f
}

/// An IPv4 UDP frame from 192.168.1.10 to 10.0.0.1.
pub fn udp4_frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    ipv4_frame(17, &udp_segment(sport, dport, payload))
}

/// An IPv4 ICMP frame (echo identifier 1, sequence 1, 4 payload bytes).
pub fn icmp4_frame(icmp_type: u8, code: u8) -> Vec<u8> {
    ipv4_frame(1, &[icmp_type, code, 0, 0, 0, 1, 0, 1, b'p', b'i', b'n', b'g'])
}

/// Rewrites the IPv4 total length (and header checksum) of the IPv4 header at `l3` to
/// cover the rest of the frame.
pub fn fix_ipv4_total_len(f: &mut [u8], l3: usize) {
    let len = (f.len() - l3) as u16;
    f[l3 + 2..l3 + 4].copy_from_slice(&len.to_be_bytes());
    f[l3 + 10] = 0;
    f[l3 + 11] = 0;
    let ihl = (f[l3] & 0xf) as usize * 4;
    let c = checksum::checksum(&f[l3..l3 + ihl]);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// `frame` padded with zeros to `len` bytes (Ethernet's 60-byte minimum, say); a longer
/// frame is left as it is.
pub fn pad_to(mut frame: Vec<u8>, len: usize) -> Vec<u8> {
    if frame.len() < len {
        frame.resize(len, 0);
    }
    frame
}

/// `frame` with a VLAN tag (`tpid`, `tci`) inserted as the new outer tag.
pub fn with_vlan(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// An Ethernet/IPv4 ARP frame with opcode `op`: 10.0.0.1 (SRC_MAC) asks for 10.0.0.2.
pub fn arp_frame(op: u16) -> Vec<u8> {
    let mut f = eth_header([0xff; 6], SRC_MAC, 0x0806);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[10, 0, 0, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 0, 0, 2]);
    f
}

/// IPv6 source of every IPv6 frame built here: 2001:db8::1.
pub const IPV6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// IPv6 destination: 2001:db8::2.
pub const IPV6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// An IPv6 frame with traffic class `tc`, next header `next`, raw extension bytes `ext`
/// (whose first next-header must be `next` if non-empty) and upper-layer bytes `l4`.
pub fn ipv6_frame(next: u8, tc: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
    let mut f = eth_header(DST_MAC, SRC_MAC, 0x86dd);
    f.extend_from_slice(&ipv6_header(&IPV6_SRC, &IPV6_DST, next, tc, 0x12345, ext.len() + l4.len()));
    f.extend_from_slice(ext);
    f.extend_from_slice(l4);
    fill_l4_checksum(&mut f);
    f
}

/// An ICMPv6 neighbour-discovery message (135: solicitation, 136: advertisement) for
/// `target`, followed by the raw option bytes `opts`; the checksum is left to
/// [`ipv6_frame`].
pub fn nd_message(ty: u8, code: u8, target: [u8; 16], opts: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0, 0x60, 0, 0, 0];
    m.extend_from_slice(&target);
    m.extend_from_slice(opts);
    m
}

/// An IPv6 extension header for [`ipv6_frame_ext`].
#[derive(Debug, Clone, Copy)]
pub enum ExtHdr {
    /// Hop-by-hop (0), routing (43) or destination options (60) with this length field
    /// ((len + 1) * 8 bytes).
    Opts(u8, u8),
    /// Authentication header with this length field ((len + 2) * 4 bytes).
    Ah(u8),
    /// Fragment header with the offset in 8-byte units and the M flag.
    Frag { offset: u16, more: bool },
}

/// An IPv6 frame with the extension headers `ext`, then `l4` as protocol `proto`.
pub fn ipv6_frame_ext(ext: &[ExtHdr], proto: u8, l4: &[u8]) -> Vec<u8> {
    let code = |e: &ExtHdr| match e {
        ExtHdr::Opts(t, _) => *t,
        ExtHdr::Ah(_) => 51,
        ExtHdr::Frag { .. } => 44,
    };
    let mut bytes = Vec::new();
    for (i, e) in ext.iter().enumerate() {
        let next = ext.get(i + 1).map(code).unwrap_or(proto);
        match *e {
            ExtHdr::Opts(_, len) => {
                let n = (len as usize + 1) * 8;
                bytes.push(next);
                bytes.push(len);
                // PadN option filling the rest.
                bytes.push(1);
                bytes.push((n - 4) as u8);
                bytes.resize(bytes.len() + n - 4, 0);
            }
            ExtHdr::Ah(len) => {
                let n = (len as usize + 2) * 4;
                bytes.push(next);
                bytes.push(len);
                bytes.resize(bytes.len() + n - 2, 0x5a);
            }
            ExtHdr::Frag { offset, more } => {
                bytes.push(next);
                bytes.push(0);
                bytes.extend_from_slice(&((offset << 3) | more as u16).to_be_bytes());
                bytes.extend_from_slice(&0xdead_beefu32.to_be_bytes());
            }
        }
    }
    let first = ext.first().map(code).unwrap_or(proto);
    ipv6_frame(first, 0, &bytes, l4)
}

/// splitmix64, the small deterministic PRNG of the randomized tests: a failing case is
/// reproducible from its seed.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// An index into a collection of length `n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.index(xs.len())]
    }
}

/// True if an IPv6 frame (behind any VLAN tags) has a routing header (type 43) with
/// segments left among its extension headers. [`checksums_ok`] takes the destination
/// field as the pseudo-header's destination, which is then not the final destination,
/// so it cannot judge such a frame's L4 checksum after a destination rewrite. Written
/// independently of the editor's own check.
pub fn routing_header_pending(f: &[u8]) -> bool {
    let mut at = 12;
    while at + 4 <= f.len() && matches!(u16::from_be_bytes([f[at], f[at + 1]]), 0x8100 | 0x88a8) {
        at += 4;
    }
    if at + 2 + 40 > f.len() || f[at..at + 2] != [0x86, 0xdd] {
        return false;
    }
    let mut next = f[at + 2 + 6];
    let mut h = at + 2 + 40;
    while h + 8 <= f.len() {
        match next {
            43 if f[h + 3] != 0 => return true,
            0 | 43 | 60 => {
                next = f[h];
                h += (f[h + 1] as usize + 1) * 8;
            }
            51 => {
                next = f[h];
                h += (f[h + 1] as usize + 2) * 4;
            }
            44 => {
                next = f[h];
                h += 8;
            }
            _ => return false,
        }
    }
    false
}

/// The megaflow mask of one IPv4 5-tuple (in_port, dl_type, protocol, addresses, ports):
/// one megaflow per flow, for tests and benchmarks that want every flow apart.
pub fn five_tuple_mask() -> crate::key::FlowKey {
    let mut m = crate::key::FlowKey::ZERO;
    m.set_in_port(u32::MAX);
    m.set_dl_type(0xffff);
    m.set_nw_proto(0xff);
    m.set_nw_src_u32(u32::MAX);
    m.set_nw_dst_u32(u32::MAX);
    m.set_tp_src(0xffff);
    m.set_tp_dst(0xffff);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_frames_verify() {
        assert!(checksums_ok(&tcp4_frame(&TCP4)));
        assert!(checksums_ok(&udp4_frame(1, 2, b"hello")));
        assert!(checksums_ok(&icmp4_frame(8, 0)));
        assert!(checksums_ok(&ipv6_frame(6, 0, &[], &tcp_header(1, 2, 0x10, 5))));
        assert!(checksums_ok(&ipv6_frame(58, 0, &[], &[128, 0, 0, 0, 0, 1, 0, 1])));
        let mut f = tcp4_frame(&TCP4);
        f[40] ^= 1;
        assert!(!checksums_ok(&f), "a flipped TCP byte must fail verification");
    }
}
