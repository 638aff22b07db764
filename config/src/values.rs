//! Parsers for the value syntaxes of `ovs-ofctl` fields: integers, masked integers, MAC
//! addresses, IPv4 and IPv6 addresses with prefixes or masks, and TCP flags.
//!
//! # Design
//!
//! Every parser takes the text of one value (no surrounding separators) and returns the
//! typed value or a [`ValueError`] that says *where inside the value* the problem is (a
//! byte offset) and why. The caller turns that offset into a line and column of its own
//! input (an ofctl line, a flows file, or a TOML string), so the same parsers serve every
//! input format with exact positions.
//!
//! Numbers are decimal, or hexadecimal with a `0x` prefix. Unlike `strtoull(.., 0)` in
//! Open vSwitch, a leading `0` does *not* mean octal: `010` is ten. Masked values are
//! `VALUE/MASK`; bits of the value outside the mask are cleared, as OVS does, so the
//! [`Masked`] invariant `value & !mask == 0` always holds.

use crate::ports::{LOCAL_PORT, MAX_PORT_NUMBER, check_port_number};
use crate::rules::Masked;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A value that failed to parse: `offset` is the byte offset inside the value text where
/// the problem starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueError {
    pub offset: usize,
    pub reason: String,
}

impl ValueError {
    pub(crate) fn new(offset: usize, reason: impl Into<String>) -> Self {
        ValueError { offset, reason: reason.into() }
    }
    fn shifted(mut self, by: usize) -> Self {
        self.offset += by;
        self
    }
}

pub(crate) type ValueResult<T> = Result<T, ValueError>;

/// An unsigned integer no greater than `max`: decimal or `0x` hexadecimal.
pub(crate) fn parse_uint(s: &str, max: u64) -> ValueResult<u64> {
    parse_wide_uint(s, u128::from(max)).map(|v| v as u64)
}

/// [`parse_uint`] up to 128 bits (registers viewed as `xxreg`, `load` values).
pub(crate) fn parse_wide_uint(s: &str, max: u128) -> ValueResult<u128> {
    if s.is_empty() {
        return Err(ValueError::new(0, "missing value"));
    }
    let (digits, radix, skip) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16, 2),
        None => (s, 10, 0),
    };
    if digits.is_empty() {
        return Err(ValueError::new(0, format!("`{s}` is not a number")));
    }
    // One pass checks the digits and sums them in 64 bits, which hold every value but
    // the widest registers' (128-bit arithmetic per digit was most of this function).
    let mut sum = 0u64;
    let mut wide = false;
    for (i, b) in digits.bytes().enumerate() {
        let Some(d) = char::from(b).to_digit(radix) else {
            return Err(ValueError::new(skip + i, format!("`{s}` is not a number")));
        };
        match sum.checked_mul(u64::from(radix)).and_then(|x| x.checked_add(u64::from(d))) {
            Some(x) => sum = x,
            None => wide = true,
        }
    }
    let value = if wide { u128::from_str_radix(digits, radix).ok() } else { Some(u128::from(sum)) };
    match value {
        Some(v) if v <= max => Ok(v),
        _ => Err(ValueError::new(0, format!("{s} is out of range (maximum {max})"))),
    }
}

/// [`parse_masked_uint`] up to 128 bits.
pub(crate) fn parse_masked_wide_uint(s: &str, max: u128) -> ValueResult<Masked<u128>> {
    match s.split_once('/') {
        None => Ok(Masked { value: parse_wide_uint(s, max)?, mask: max }),
        Some((v, m)) => {
            let value = parse_wide_uint(v, max)?;
            let mask = parse_wide_uint(m, max).map_err(|e| e.shifted(v.len() + 1))?;
            Ok(Masked { value: value & mask, mask })
        }
    }
}

/// An OpenFlow port number of a bridge port: `1..=MAX_PORT_NUMBER`, or `LOCAL` (the
/// bridge's internal port, [`LOCAL_PORT`]). Other reserved port names are refused here;
/// the action parser handles the ones it supports (`IN_PORT`, `FLOOD`...).
pub(crate) fn parse_port_number(s: &str) -> ValueResult<u32> {
    if s.eq_ignore_ascii_case("local") {
        return Ok(LOCAL_PORT);
    }
    if s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return Err(ValueError::new(
            0,
            format!("port `{s}` is not supported here (expected a port number 1..={MAX_PORT_NUMBER} or LOCAL)"),
        ));
    }
    let n = parse_uint(s, u64::from(u32::MAX))?;
    check_port_number(n as i64)
        .map_err(|_| ValueError::new(0, format!("port number {s} is out of range 1..={MAX_PORT_NUMBER}")))
}

/// `VALUE` or `VALUE/MASK`, both no greater than `max`; a bare value gets the full mask.
pub(crate) fn parse_masked_uint(s: &str, max: u64) -> ValueResult<Masked<u64>> {
    parse_masked_wide_uint(s, max.into()).map(|m| Masked { value: m.value as u64, mask: m.mask as u64 })
}

/// A MAC address `xx:xx:xx:xx:xx:xx` (one or two hex digits per octet).
pub(crate) fn parse_mac(s: &str) -> ValueResult<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut offset = 0;
    let mut parts = s.split(':');
    for octet in mac.iter_mut() {
        let part = parts.next().ok_or_else(|| {
            ValueError::new(s.len(), format!("`{s}` is not a MAC address (expected xx:xx:xx:xx:xx:xx)"))
        })?;
        if part.is_empty() || part.len() > 2 || !part.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ValueError::new(offset, format!("`{s}` is not a MAC address (expected xx:xx:xx:xx:xx:xx)")));
        }
        *octet = u8::from_str_radix(part, 16).expect("checked hex digits");
        offset += part.len() + 1;
    }
    if parts.next().is_some() {
        return Err(ValueError::new(offset - 1, format!("`{s}` is not a MAC address (expected xx:xx:xx:xx:xx:xx)")));
    }
    Ok(mac)
}

/// `MAC` or `MAC/MASK`.
pub(crate) fn parse_masked_mac(s: &str) -> ValueResult<Masked<[u8; 6]>> {
    match s.split_once('/') {
        None => Ok(Masked { value: parse_mac(s)?, mask: [0xff; 6] }),
        Some((v, m)) => {
            let value = parse_mac(v)?;
            let mask = parse_mac(m).map_err(|e| e.shifted(v.len() + 1))?;
            let mut masked = value;
            for (b, m) in masked.iter_mut().zip(mask) {
                *b &= m;
            }
            Ok(Masked { value: masked, mask })
        }
    }
}

pub(crate) fn parse_ipv4(s: &str) -> ValueResult<Ipv4Addr> {
    s.parse().map_err(|_| ValueError::new(0, format!("`{s}` is not an IPv4 address")))
}

/// `A.B.C.D`, `A.B.C.D/LEN` (0..=32) or `A.B.C.D/M.M.M.M` (any mask, as NXM allows).
pub(crate) fn parse_masked_ipv4(s: &str) -> ValueResult<Masked<Ipv4Addr>> {
    let (v, m) = match s.split_once('/') {
        None => {
            return Ok(Masked { value: parse_ipv4(s)?, mask: Ipv4Addr::BROADCAST });
        }
        Some(parts) => parts,
    };
    let value = parse_ipv4(v)?;
    let moff = v.len() + 1;
    let mask = if m.contains('.') {
        parse_ipv4(m).map_err(|e| e.shifted(moff))?
    } else {
        let len = parse_uint(m, 32).map_err(|e| {
            ValueError::new(moff + e.offset, format!("`{m}` is not a prefix length (0..=32) or a dotted mask"))
        })?;
        Ipv4Addr::from(if len == 0 { 0 } else { u32::MAX << (32 - len) })
    };
    Ok(Masked { value: Ipv4Addr::from(u32::from(value) & u32::from(mask)), mask })
}

pub(crate) fn parse_ipv6(s: &str) -> ValueResult<Ipv6Addr> {
    s.parse().map_err(|_| ValueError::new(0, format!("`{s}` is not an IPv6 address")))
}

/// `ADDR`, `ADDR/LEN` (0..=128) or `ADDR/MASK`.
pub(crate) fn parse_masked_ipv6(s: &str) -> ValueResult<Masked<Ipv6Addr>> {
    let (v, m) = match s.split_once('/') {
        None => {
            return Ok(Masked { value: parse_ipv6(s)?, mask: Ipv6Addr::from(u128::MAX) });
        }
        Some(parts) => parts,
    };
    let value = parse_ipv6(v)?;
    let moff = v.len() + 1;
    let mask = if m.contains(':') {
        parse_ipv6(m).map_err(|e| e.shifted(moff))?
    } else {
        let len = parse_uint(m, 128).map_err(|e| {
            ValueError::new(moff + e.offset, format!("`{m}` is not a prefix length (0..=128) or an IPv6 mask"))
        })?;
        Ipv6Addr::from(if len == 0 { 0 } else { u128::MAX << (128 - len) })
    };
    Ok(Masked { value: Ipv6Addr::from(u128::from(value) & u128::from(mask)), mask })
}

/// TCP flag names and bits, in the order `ovs-ofctl` prints them.
pub(crate) const TCP_FLAG_NAMES: [(&str, u16); 9] = [
    ("fin", 0x001),
    ("syn", 0x002),
    ("rst", 0x004),
    ("psh", 0x008),
    ("ack", 0x010),
    ("urg", 0x020),
    ("ece", 0x040),
    ("cwr", 0x080),
    ("ns", 0x100),
];

/// The 12 bits of the TCP header's flags field.
pub(crate) const TCP_FLAGS_ALL: u16 = 0x0fff;

/// `+syn-ack` form (each named flag must be set `+` or clear `-`; unnamed flags are
/// wildcarded), or `VALUE[/MASK]` over the 12 flag bits.
pub(crate) fn parse_tcp_flags(s: &str) -> ValueResult<Masked<u16>> {
    if !s.starts_with(['+', '-']) {
        let m = parse_masked_uint(s, TCP_FLAGS_ALL as u64)?;
        return Ok(Masked { value: m.value as u16, mask: m.mask as u16 });
    }
    let mut value = 0u16;
    let mut mask = 0u16;
    let mut pos = 0;
    while pos < s.len() {
        let sign = &s[pos..pos + 1];
        if sign != "+" && sign != "-" {
            return Err(ValueError::new(pos, "expected `+FLAG` or `-FLAG`"));
        }
        let rest = &s[pos + 1..];
        let name_len = rest.find(['+', '-']).unwrap_or(rest.len());
        let name = &rest[..name_len];
        let bit = TCP_FLAG_NAMES.iter().find(|(n, _)| *n == name).map(|&(_, b)| b).ok_or_else(|| {
            ValueError::new(pos + 1, format!("unknown TCP flag `{name}` (known: fin syn rst psh ack urg ece cwr ns)"))
        })?;
        if mask & bit != 0 {
            return Err(ValueError::new(pos + 1, format!("TCP flag `{name}` given twice")));
        }
        mask |= bit;
        if sign == "+" {
            value |= bit;
        }
        pos += 1 + name_len;
    }
    Ok(Masked { value, mask })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_uint("0", 255), Ok(0));
        assert_eq!(parse_uint("255", 255), Ok(255));
        assert_eq!(parse_uint("0xff", 255), Ok(255));
        assert_eq!(parse_uint("0XFF", 255), Ok(255));
        assert_eq!(parse_uint("010", 255), Ok(10));
        assert_eq!(parse_uint("256", 255).unwrap_err().offset, 0);
        assert_eq!(parse_uint("12a", 255).unwrap_err().offset, 2);
        assert_eq!(parse_uint("0x1g", 255).unwrap_err().offset, 3);
        assert!(parse_uint("", 255).is_err());
        assert!(parse_uint("0x", 255).is_err());
        assert!(parse_uint("-1", 255).is_err());
        assert!(parse_uint("99999999999999999999999", u64::MAX).is_err());
        assert_eq!(parse_uint("18446744073709551615", u64::MAX), Ok(u64::MAX));
    }

    /// The 64-bit sum with its 128-bit fallback answers as parsing in 128 bits does:
    /// around 2^64, 2^128, with bad digits after an overflow, in both radixes.
    #[test]
    fn wide_integers_answer_as_128_bit_parsing() {
        fn reference(s: &str, max: u128) -> ValueResult<u128> {
            let (digits, radix, skip) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => (hex, 16, 2),
                None => (s, 10, 0),
            };
            if s.is_empty() || digits.is_empty() {
                return parse_wide_uint(s, max);
            }
            if let Some(bad) = digits.find(|c: char| !c.is_digit(radix)) {
                return Err(ValueError::new(skip + bad, format!("`{s}` is not a number")));
            }
            match u128::from_str_radix(digits, radix) {
                Ok(v) if v <= max => Ok(v),
                _ => Err(ValueError::new(0, format!("{s} is out of range (maximum {max})"))),
            }
        }
        let texts = [
            "0",
            "18446744073709551615",
            "18446744073709551616",
            "0xffffffffffffffff",
            "0x10000000000000000",
            "0xffffffffffffffffffffffffffffffff",
            "0x100000000000000000000000000000000",
            "340282366920938463463374607431768211455",
            "340282366920938463463374607431768211456",
            "99999999999999999999999x",
            "0x1ffffffffffffffffz",
            "12\u{e9}",
        ];
        for s in texts {
            for max in [255, u128::from(u64::MAX), u128::MAX] {
                assert_eq!(parse_wide_uint(s, max), reference(s, max), "{s} {max}");
            }
        }
    }

    #[test]
    fn port_numbers() {
        assert_eq!(parse_port_number("1"), Ok(1));
        assert_eq!(parse_port_number("0xfeff"), Ok(0xfeff));
        assert!(parse_port_number("0").is_err());
        assert!(parse_port_number("65280").is_err());
        assert_eq!(parse_port_number("LOCAL"), Ok(LOCAL_PORT));
        assert_eq!(parse_port_number("local"), Ok(LOCAL_PORT));
        assert!(parse_port_number("NORMAL").unwrap_err().reason.contains("NORMAL"));
        assert_eq!(parse_port_number("1x").unwrap_err().offset, 1);
    }

    #[test]
    fn masked_integers_clear_bits_outside_the_mask() {
        assert_eq!(parse_masked_uint("0x1234/0xf000", 0xffff), Ok(Masked { value: 0x1000, mask: 0xf000 }));
        assert_eq!(parse_masked_uint("80", 0xffff), Ok(Masked { value: 80, mask: 0xffff }));
        assert_eq!(parse_masked_uint("1/0x10000", 0xffff).unwrap_err().offset, 2);
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("00:1b:21:0A:ff:1"), Ok([0, 0x1b, 0x21, 0x0a, 0xff, 1]));
        assert_eq!(parse_mac("00:1b:21:0a:ff").unwrap_err().offset, 14);
        assert_eq!(parse_mac("00:1b:21:0a:ff:01:02").unwrap_err().offset, 17);
        assert_eq!(parse_mac("00:1b:2x:0a:ff:01").unwrap_err().offset, 6);
        assert_eq!(parse_mac("00:1b:123:0a:ff:01").unwrap_err().offset, 6);
        assert_eq!(
            parse_masked_mac("01:02:03:04:05:06/ff:ff:ff:00:00:00"),
            Ok(Masked { value: [1, 2, 3, 0, 0, 0], mask: [0xff, 0xff, 0xff, 0, 0, 0] })
        );
        assert_eq!(parse_masked_mac("01:02:03:04:05:06/ff:ff:zz:00:00:00").unwrap_err().offset, 24);
    }

    #[test]
    fn ipv4_prefixes_and_masks() {
        let m = parse_masked_ipv4("10.1.2.3/8").unwrap();
        assert_eq!(m, Masked { value: Ipv4Addr::new(10, 0, 0, 0), mask: Ipv4Addr::new(255, 0, 0, 0) });
        let m = parse_masked_ipv4("10.1.2.3/255.0.255.0").unwrap();
        assert_eq!(m, Masked { value: Ipv4Addr::new(10, 0, 2, 0), mask: Ipv4Addr::new(255, 0, 255, 0) });
        assert_eq!(parse_masked_ipv4("10.1.2.3/0").unwrap().mask, Ipv4Addr::UNSPECIFIED);
        assert_eq!(parse_masked_ipv4("10.1.2.3").unwrap().mask, Ipv4Addr::BROADCAST);
        assert_eq!(parse_masked_ipv4("10.1.2.3/33").unwrap_err().offset, 9);
        assert_eq!(parse_masked_ipv4("10.1.2.256/8").unwrap_err().offset, 0);
        assert_eq!(parse_masked_ipv4("10.1.2.3/255.0.0").unwrap_err().offset, 9);
    }

    #[test]
    fn ipv6_prefixes_and_masks() {
        let m = parse_masked_ipv6("2001:db8::1/32").unwrap();
        assert_eq!(m.value, "2001:db8::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(m.mask, "ffff:ffff::".parse::<Ipv6Addr>().unwrap());
        let m = parse_masked_ipv6("2001:db8::1/ffff::ff").unwrap();
        assert_eq!(m.value, "2001::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(parse_masked_ipv6("2001:db8::1/129").unwrap_err().offset, 12);
        assert_eq!(parse_masked_ipv6("2001:db8:::1").unwrap_err().offset, 0);
        assert_eq!(parse_masked_ipv6("::1").unwrap().mask, Ipv6Addr::from(u128::MAX));
    }

    #[test]
    fn tcp_flags() {
        assert_eq!(parse_tcp_flags("+syn-ack"), Ok(Masked { value: 0x002, mask: 0x012 }));
        assert_eq!(parse_tcp_flags("-fin+ns"), Ok(Masked { value: 0x100, mask: 0x101 }));
        assert_eq!(parse_tcp_flags("0x02/0x12"), Ok(Masked { value: 0x002, mask: 0x012 }));
        assert_eq!(parse_tcp_flags("0x002"), Ok(Masked { value: 0x002, mask: 0xfff }));
        assert_eq!(parse_tcp_flags("+syn+foo").unwrap_err().offset, 5);
        assert_eq!(parse_tcp_flags("+syn-syn").unwrap_err().offset, 5);
        assert_eq!(parse_tcp_flags("+syn-").unwrap_err().offset, 5);
        assert_eq!(parse_tcp_flags("0x1000").unwrap_err().offset, 0);
    }
}
