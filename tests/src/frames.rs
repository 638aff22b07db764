//! Builders for the test frames the end-to-end tests feed to ferrovsd: real wire bytes
//! with correct IPv4 header checksums, plus deliberately broken ones (runts, truncated
//! headers) that the switch must account for without forwarding garbage or crashing.

use ferrovs_flowcache::testpkt::{
    Ipv4Hdr, eth_header, fill_l4_checksum, ipv4_header, ipv6_header, pad_to, tcp_header, udp_segment, with_vlan,
};

pub const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];

/// An Ethernet/IPv4 frame from MAC_A to MAC_B carrying `l4` as `proto` (TTL 64), its L4
/// checksum filled unless it is UDP (zero is legal over IPv4), padded to 60 bytes.
fn ipv4_frame(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth_header(MAC_B, MAC_A, 0x0800);
    f.extend(ipv4_header(&Ipv4Hdr::new(src, dst, proto), &[], l4.len()));
    f.extend_from_slice(l4);
    let mut f = pad_to(f, 60);
    if proto != 17 {
        fill_l4_checksum(&mut f);
    }
    f
}

pub fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    ipv4_frame(src, dst, 17, &udp_segment(sport, dport, b"ferrovs"))
}

/// TCP with a checksum over the IPv4 pseudo-header (RFC 793), so rewrites can be checked.
pub fn ipv4_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    ipv4_frame(src, dst, 6, &tcp_header(sport, dport, flags, 5))
}

pub fn ipv4_icmp_echo(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(b"ping-payload");
    ipv4_frame(src, dst, 1, &icmp)
}

pub fn arp_request(spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = eth_header([0xff; 6], MAC_A, 0x0806);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    pad_to(f, 60)
}

/// IPv6/UDP between 2001:2::`src_last` and 2001:2::`dst_last` (2001:2::/48 is the IPv6
/// benchmarking range, RFC 5180), UDP checksum filled (it is mandatory over IPv6).
pub fn ipv6_udp(src_last: u8, dst_last: u8, sport: u16, dport: u16) -> Vec<u8> {
    let payload = udp_segment(sport, dport, b"v6");
    let mut src = [0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, src_last];
    let mut dst = src;
    dst[15] = dst_last;
    src[15] = src_last;
    let mut f = eth_header(MAC_B, MAC_A, 0x86dd);
    f.extend(ipv6_header(&src, &dst, 17, 0, 0, payload.len()));
    f.extend(payload);
    fill_l4_checksum(&mut f);
    f
}

/// An 802.1Q-tagged IPv4/UDP frame.
pub fn vlan_ipv4_udp(vid: u16, pcp: u8, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let inner = ipv4_frame(src, dst, 17, &udp_segment(1000, 2000, b"tagged"));
    with_vlan(&inner, 0x8100, ((pcp as u16) << 13) | vid)
}

/// A frame shorter than an Ethernet header: every switch must drop it.
pub fn runt() -> Vec<u8> {
    vec![0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0]
}

/// An IPv4/TCP frame cut in the middle of the IP header (claims 40 bytes, has 10).
pub fn truncated_ipv4() -> Vec<u8> {
    let mut f = ipv4_tcp([198, 18, 0, 1], [198, 18, 0, 2], 1, 2, 0x02);
    f.truncate(14 + 10);
    f
}

/// An IPv4 header whose IHL says 15 words but the frame ends first.
pub fn bad_ihl_ipv4() -> Vec<u8> {
    let mut f = ipv4_udp([198, 18, 0, 1], [198, 18, 0, 2], 7, 9);
    f[14] = 0x4f;
    f
}

/// The mixed capture of the pcap test: (frame, is_runt).
pub fn mixed_capture() -> Vec<(Vec<u8>, bool)> {
    let a = [198, 18, 0, 1];
    let b = [198, 18, 0, 2];
    let mut v = vec![
        (arp_request(a, b), false),
        (ipv4_udp(a, b, 1234, 53), false),
        (ipv4_tcp(a, b, 40000, 80, 0x02), false),
        (ipv4_icmp_echo(a, b), false),
        (ipv6_udp(1, 2, 5000, 6000), false),
        (vlan_ipv4_udp(20, 3, a, b), false),
        (runt(), true),
        (truncated_ipv4(), false),
        (bad_ihl_ipv4(), false),
    ];
    // A burst's worth more of distinct UDP flows so the switch sees more than one burst.
    for i in 0..40u16 {
        v.push((ipv4_udp(a, [198, 18, 1, (i % 250) as u8], 1000 + i, 2000 + i), false));
    }
    v.push((runt(), true));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_flowcache::checksum::checksum;

    #[test]
    fn ipv4_checksum_verifies() {
        let f = ipv4_udp([198, 18, 0, 1], [198, 18, 0, 2], 1, 2);
        assert_eq!(checksum(&f[14..34]), 0);
        assert_eq!(f.len(), 60);
    }
}

// ---------------------------------------------------------------------------------------
// Benchmark frames (used by the `ferrovs-gen` traffic generator).
//
// Unlike the builders above, which add recognisable payloads and IDs for the functional
// tests, these lay a frame out exactly as the reference workload generator
// (shared/bench/gen_pcap.py) does: IPv4 ID 0, no DF flag, TTL 64, DSCP 0, zero payload,
// UDP checksum 0 over IPv4, and the frame padded with zeros to the requested size. The
// same capture bytes then mean the same traffic for every switch measured.
// ---------------------------------------------------------------------------------------

/// The network layer of a benchmark frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchL3 {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

/// The transport protocol of a benchmark frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchL4 {
    Udp,
    /// A TCP segment with only ACK set (an established connection's data).
    Tcp,
}

/// Everything that distinguishes one benchmark frame from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchFrame {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub l3: BenchL3,
    pub l4: BenchL4,
    pub sport: u16,
    pub dport: u16,
}

/// The MACs of the reference workload: 02:00:00:00:00:01 -> 02:00:00:00:00:02.
pub const BENCH_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const BENCH_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

impl BenchFrame {
    /// Smallest frame (without FCS) that holds all of this frame's headers.
    pub fn min_size(&self) -> usize {
        let l3 = match self.l3 {
            BenchL3::V4 { .. } => 20,
            BenchL3::V6 { .. } => 40,
        };
        let l4 = match self.l4 {
            BenchL4::Udp => 8,
            BenchL4::Tcp => 20,
        };
        14 + l3 + l4
    }

    /// The frame's bytes, `size` long (without FCS), or `min_size()` long if `size` is
    /// smaller: the headers always fit. IPv4 and IPv6 header lengths and the UDP length
    /// cover the whole frame (no Ethernet padding), so a switch that checks lengths
    /// sees a well-formed packet of the asked size.
    pub fn bytes(&self, size: usize) -> Vec<u8> {
        let size = size.max(self.min_size());
        let (ethertype, l3_len) = match self.l3 {
            BenchL3::V4 { .. } => (0x0800, 20),
            BenchL3::V6 { .. } => (0x86dd, 40),
        };
        let l4_len = size - 14 - l3_len;
        let (proto, mut seg) = match self.l4 {
            BenchL4::Udp => (17, udp_segment(self.sport, self.dport, &[])),
            BenchL4::Tcp => {
                // seq 1, ack 0, data offset 5 words, ACK, window 65535, urgent 0.
                let mut t = tcp_header(self.sport, self.dport, 0x10, 5);
                t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
                (6, t)
            }
        };
        seg.resize(l4_len, 0);
        if proto == 17 {
            seg[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        let mut f = eth_header(self.dst_mac, self.src_mac, ethertype);
        match self.l3 {
            BenchL3::V4 { src, dst } => {
                let h = Ipv4Hdr { id: 0, dont_fragment: false, ..Ipv4Hdr::new(src, dst, proto) };
                f.extend(ipv4_header(&h, &[], l4_len));
            }
            BenchL3::V6 { src, dst } => f.extend(ipv6_header(&src, &dst, proto, 0, 0, l4_len)),
        }
        f.extend(seg);
        // Transport checksum: TCP always; UDP only over IPv6, where zero is not allowed
        // (RFC 8200 8.1). UDP over IPv4 keeps 0, as the reference generator writes it.
        if proto == 6 || matches!(self.l3, BenchL3::V6 { .. }) {
            fill_l4_checksum(&mut f);
        }
        f
    }
}

#[cfg(test)]
mod bench_frame_tests {
    use super::*;
    use ferrovs_flowcache::checksum::checksum;

    fn udp4() -> BenchFrame {
        BenchFrame {
            dst_mac: BENCH_DST_MAC,
            src_mac: BENCH_SRC_MAC,
            l3: BenchL3::V4 { src: [10, 0, 0, 0], dst: [28, 222, 234, 60] },
            l4: BenchL4::Udp,
            sport: 0x2665,
            dport: 0x13c4,
        }
    }

    #[test]
    fn udp4_matches_reference_generator_bytes() {
        // The first frame of `gen_pcap.py --flows 3` (seed 1), as written by Python.
        let want = "020000000002020000000001080045\
                    00002e00000000401169a50a0000001cdeea3c266513c4001a0000\
                    000000000000000000000000000000000000";
        let want: Vec<u8> =
            (0..want.len() / 2).map(|i| u8::from_str_radix(&want[2 * i..2 * i + 2], 16).unwrap()).collect();
        assert_eq!(udp4().bytes(60), want);
    }

    #[test]
    fn sizes_and_lengths() {
        let f = udp4().bytes(128);
        assert_eq!(f.len(), 128);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 114); // IPv4 total length
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 94); // UDP length
        assert_eq!(checksum(&f[14..34]), 0);
        // Too small a size is grown to the headers.
        let mut t = udp4();
        t.l4 = BenchL4::Tcp;
        assert_eq!(t.bytes(10).len(), 54);
    }

    #[test]
    fn tcp_and_v6_checksums_verify() {
        let mut t = udp4();
        t.l4 = BenchL4::Tcp;
        let f = t.bytes(64);
        let mut pseudo = f[26..34].to_vec();
        pseudo.extend_from_slice(&[0, 6, 0, (64 - 34) as u8]);
        pseudo.extend_from_slice(&f[34..]);
        assert_eq!(checksum(&pseudo), 0);
        assert_eq!(f[47], 0x10, "ACK only");

        let mut s = [0u8; 16];
        s[0] = 0x20;
        s[1] = 0x01;
        s[15] = 7;
        let mut d = s;
        d[15] = 9;
        let mut v6 = udp4();
        v6.l3 = BenchL3::V6 { src: s, dst: d };
        let f = v6.bytes(60);
        assert_eq!(f.len(), 62, "grown to hold the IPv6 and UDP headers");
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        let mut pseudo = f[22..54].to_vec();
        pseudo.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 17]);
        pseudo.extend_from_slice(&f[54..]);
        assert_eq!(checksum(&pseudo), 0);
        assert_ne!(&f[60..62], &[0, 0], "UDP over IPv6 carries a checksum");
    }
}
