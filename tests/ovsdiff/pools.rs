//! The small value pools rules and frames draw from: with a handful of addresses, ports
//! and VLAN IDs, a random rule matches a random frame often enough to exercise actions.

/// Unicast MACs (the first four are also frame sources) and a multicast one.
pub const MACS: &[[u8; 6]] = &[
    [0x02, 0, 0, 0, 0, 0x01],
    [0x02, 0, 0, 0, 0, 0x02],
    [0x02, 0, 0, 0, 0, 0x03],
    [0x0a, 0, 0, 0, 0, 0x04],
    [0x01, 0x00, 0x5e, 0, 0, 0x01],
];

pub const IPV4: &[[u8; 4]] = &[[10, 0, 0, 1], [10, 0, 0, 2], [10, 1, 2, 3], [192, 168, 1, 1], [10, 0, 1, 200]];

pub const IPV6: &[u16] = &[0x0001, 0x0002, 0x1234, 0xff02];

/// IPv6 address `i` of the pool: fd00::N, or ff02::1 for the multicast entry.
pub fn ipv6(i: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    if IPV6[i] == 0xff02 {
        a[0] = 0xff;
        a[1] = 0x02;
        a[15] = 1;
    } else {
        a[0] = 0xfd;
        a[14..16].copy_from_slice(&IPV6[i].to_be_bytes());
    }
    a
}

pub fn fmt_ipv6(i: usize) -> String {
    if IPV6[i] == 0xff02 { "ff02::1".to_string() } else { format!("fd00::{:x}", IPV6[i]) }
}

/// IPv6 flow labels (20 bits).
pub const LABELS: &[u32] = &[0, 1, 0x12345, 0x80000, 0xfffff];

pub const PORTS: &[u16] = &[80, 443, 53, 1234, 0, 65535, 8080];

pub const VIDS: &[u16] = &[0, 1, 10, 20, 4095];

pub fn fmt_mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

pub fn fmt_ipv4(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}
