//! Shared by the forwarding benchmarks (`fwd_bench`, `flow_bench`).

/// Writes a capture of `n` (at least 1) 60-byte Ethernet/IPv4/UDP frames (64 on the wire),
/// 198.18.0.1:1024+i -> 198.18.0.2:53, one per flow, with a valid IPv4 checksum.
pub fn write_pcap(path: &str, n: usize) -> std::io::Result<()> {
    let mut out = Vec::new();
    // pcap global header: magic, v2.4, tz 0, sigfigs 0, snaplen 65535, linktype Ethernet.
    out.extend(0xa1b2c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0u8; 8]);
    out.extend(65535u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    for i in 0..n.max(1) {
        // 60-byte Ethernet/IPv4/UDP frame (64 on the wire with FCS), 198.18.0.1 -> 198.18.0.2.
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        let mut ip = vec![0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2];
        let mut sum: u32 = ip.chunks(2).map(|w| u16::from_be_bytes([w[0], w[1]]) as u32).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f.extend(ip);
        f.extend((1024 + i as u16).to_be_bytes());
        f.extend(53u16.to_be_bytes());
        f.extend(26u16.to_be_bytes());
        f.extend([0, 0]);
        f.resize(60, 0xab);
        out.extend(0u32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((f.len() as u32).to_le_bytes());
        out.extend((f.len() as u32).to_le_bytes());
        out.extend(f);
    }
    std::fs::write(path, out)
}
