//! Internet checksums (RFC 1071) and their incremental update (RFC 1624).
//!
//! The full computation is for building and verifying frames in tests; the packet
//! editor uses only the incremental form `HC' = ~(~HC + ~m + m')`, so a header rewrite
//! costs a few additions no matter how long the packet is. Every function works on
//! byte slices in network order and never panics: odd lengths are padded with a zero
//! byte as the RFC says.

/// Adds the 16-bit big-endian words of `data` to `sum` (ones' complement, not folded).
#[inline]
pub fn sum_words(data: &[u8], mut sum: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
        // Fold early so that very long inputs cannot overflow.
        if sum & 0x8000_0000 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add((*last as u32) << 8);
    }
    sum
}

/// Folds a 32-bit ones' complement sum into 16 bits (not inverted).
#[inline]
pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `data` (the value to store in the checksum field when the
/// field itself was zero during the computation).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_words(data, 0))
}

/// Updates checksum `csum` for 16-bit-aligned bytes `old` replaced by `new` (same even
/// length), per RFC 1624 eqn. 3.
#[inline]
pub fn update(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut sum = (!csum) as u32;
    let mut o = old.chunks_exact(2);
    let mut n = new.chunks_exact(2);
    for (a, b) in (&mut o).zip(&mut n) {
        sum += (!u16::from_be_bytes([a[0], a[1]])) as u32;
        sum += u16::from_be_bytes([b[0], b[1]]) as u32;
    }
    !fold(sum)
}

/// Updates checksum `csum` for one 16-bit word changing from `old` to `new`.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let sum = (!csum) as u32 + (!old) as u32 + new as u32;
    !fold(sum)
}

/// Sum of the IPv4 pseudo-header (addresses, protocol, L4 length).
pub fn ipv4_pseudo_sum(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: usize) -> u32 {
    let s = sum_words(&src, 0);
    let s = sum_words(&dst, s);
    s + proto as u32 + (l4_len as u32 & 0xffff) + ((l4_len as u32) >> 16)
}

/// Sum of the IPv6 pseudo-header (addresses, upper-layer length, next header).
pub fn ipv6_pseudo_sum(src: &[u8; 16], dst: &[u8; 16], proto: u8, l4_len: usize) -> u32 {
    let s = sum_words(src, 0);
    let s = sum_words(dst, s);
    s + proto as u32 + (l4_len as u32 & 0xffff) + ((l4_len as u32) >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_words(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn real_ipv4_header() {
        // A captured IPv4 header (checksum 0xb861 at bytes 10..12).
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0, "a correct header sums to zero");
        let mut z = hdr;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0xb861);
    }

    #[test]
    fn incremental_equals_full() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        let old: [u8; 4] = hdr[12..16].try_into().unwrap();
        let new = [10, 1, 2, 3];
        hdr[12..16].copy_from_slice(&new);
        let c = update(0xb861, &old, &new);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&hdr), 0);
        let c2 = update16(c, 0x4011, 0x3f11);
        hdr[8] = 0x3f;
        hdr[10..12].copy_from_slice(&c2.to_be_bytes());
        assert_eq!(checksum(&hdr), 0);
    }

    #[test]
    fn odd_length_is_zero_padded() {
        assert_eq!(sum_words(&[0x12, 0x34, 0x56], 0), 0x1234 + 0x5600);
    }
}
