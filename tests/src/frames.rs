//! Builders for the test frames the end-to-end tests feed to ferrovsd: real wire bytes
//! with correct IPv4 header checksums, plus deliberately broken ones (runts, truncated
//! headers) that the switch must account for without forwarding garbage or crashing.

pub const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { (c[0] as u16) << 8 };
        s += w as u32;
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IPv4 header (no options) followed by `l4`.
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut h = vec![0x45, 0x00];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, ttl, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]); // checksum 0: legal for IPv4
    u.extend_from_slice(payload);
    u
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn pad60(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

pub fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = eth(MAC_B, MAC_A, 0x0800);
    f.extend(ipv4(src, dst, 17, 64, &udp(sport, dport, b"ferrovs")));
    pad60(f)
}

pub fn ipv4_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut seg = tcp(sport, dport, flags);
    // TCP checksum over the IPv4 pseudo-header (RFC 793), so rewrites can be checked.
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&seg);
    let c = csum(&pseudo);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(MAC_B, MAC_A, 0x0800);
    f.extend(ipv4(src, dst, 6, 64, &seg));
    pad60(f)
}

pub fn ipv4_icmp_echo(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(b"ping-payload");
    let c = csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(MAC_B, MAC_A, 0x0800);
    f.extend(ipv4(src, dst, 1, 64, &icmp));
    pad60(f)
}

pub fn arp_request(spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = eth([0xff; 6], MAC_A, 0x0806);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    pad60(f)
}

pub fn ipv6_udp(src_last: u8, dst_last: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = eth(MAC_B, MAC_A, 0x86dd);
    let payload = udp(sport, dport, b"v6");
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    // 2001:2::/48 is the IPv6 benchmarking range (RFC 5180).
    let mut src = [0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, src_last];
    f.extend_from_slice(&src);
    src[15] = dst_last;
    f.extend_from_slice(&src);
    f.extend(payload);
    f
}

/// An 802.1Q-tagged IPv4/UDP frame.
pub fn vlan_ipv4_udp(vid: u16, pcp: u8, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut f = eth(MAC_B, MAC_A, 0x8100);
    f.extend_from_slice(&(((pcp as u16) << 13) | vid).to_be_bytes());
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend(ipv4(src, dst, 17, 64, &udp(1000, 2000, b"tagged")));
    pad60(f)
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

    #[test]
    fn ipv4_checksum_verifies() {
        let f = ipv4_udp([198, 18, 0, 1], [198, 18, 0, 2], 1, 2);
        assert_eq!(csum(&f[14..34]), 0);
        assert_eq!(f.len(), 60);
    }
}
