//! A match field's value text to a masked slot value and back, by [`ValueKind`].
//!
//! Parsing gives a value and mask in the coordinates of the field's [`MatchSlot`]
//! (`ip_dscp=46` is `0xb8/0xfc` of the TOS byte), so the builder can store any field the
//! same way. Printing is the inverse for the forms `dump-flows` uses. VLAN fields are
//! folded into one TCI by the builder, so they only parse here.

use crate::display::Pieces;
use crate::field::{FIELDS, FieldDef, Masking, MatchSlot, ValueKind};
use crate::rules::Masked;
use crate::values::{
    TCP_FLAG_NAMES, ValueError, parse_masked_ipv4, parse_masked_ipv6, parse_masked_mac, parse_masked_uint,
    parse_port_number, parse_tcp_flags, parse_uint,
};
use std::fmt::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

/// A parsed value that is not an error but has an error message of its own, positioned
/// at the value's start (e.g. `nw_tos=185`).
pub(crate) enum ParseFailure {
    Value(ValueError),
    /// A message for the whole value.
    Whole(String),
}

impl From<ValueError> for ParseFailure {
    fn from(e: ValueError) -> Self {
        ParseFailure::Value(e)
    }
}

fn mac_bits(m: [u8; 6]) -> u128 {
    m.iter().fold(0, |acc, &b| acc << 8 | u128::from(b))
}

fn widen<T: Copy>(m: Masked<T>, f: impl Fn(T) -> u128) -> Masked<u128> {
    Masked { value: f(m.value), mask: f(m.mask) }
}

/// Parses the value of field `f`, given as `name` (for messages). `packet`: a packet description (`trace`), where
/// `nw_frag` takes the values that describe one packet. The mask of the result is within
/// `f.bits` (a zero mask means "not matched").
pub(crate) fn parse_field_value(
    f: &FieldDef,
    name: &str,
    text: &str,
    packet: bool,
) -> Result<Masked<u128>, ParseFailure> {
    let exact = |value: u128| Masked { value, mask: f.bits };
    Ok(match f.kind {
        ValueKind::PortNumber => exact(parse_port_number(text)?.into()),
        ValueKind::Decimal { max } | ValueKind::Hex { max } => match f.masking {
            Masking::None => exact(parse_uint(text, max)?.into()),
            _ => widen(parse_masked_uint(text, max)?, u128::from),
        },
        ValueKind::Ethernet => widen(parse_masked_mac(text)?, mac_bits),
        ValueKind::Ipv4 => widen(parse_masked_ipv4(text)?, |a: Ipv4Addr| u32::from(a).into()),
        ValueKind::Ipv6 => widen(parse_masked_ipv6(text)?, u128::from),
        ValueKind::Tos => {
            let v = parse_uint(text, 255)?;
            if v & 0x03 != 0 {
                return Err(ParseFailure::Whole(format!(
                    "invalid `{name}`: {text} is not a multiple of 4 (its low two bits are ECN: use nw_ecn)"
                )));
            }
            exact(v.into())
        }
        ValueKind::Dscp => exact(u128::from(parse_uint(text, 63)?) << 2),
        ValueKind::VlanVid => match parse_uint(text, 0xffff)? {
            // No tag: the whole TCI is zero.
            0xffff => Masked { value: 0, mask: 0xffff },
            v @ 0..=0x0fff => Masked { value: 0x1000 | u128::from(v), mask: 0x1fff },
            _ => {
                return Err(ParseFailure::Whole(format!(
                    "invalid `{name}`: {text} is not a VLAN ID (0..=4095, or 0xffff for no tag)"
                )));
            }
        },
        ValueKind::VlanPcp => Masked { value: 0x1000 | u128::from(parse_uint(text, 7)?) << 13, mask: 0xf000 },
        ValueKind::Frag => {
            let (value, mask) = parse_frag(name, text, packet)?;
            Masked { value, mask }
        }
        ValueKind::TcpFlags => widen(parse_tcp_flags(text)?, u128::from),
        ValueKind::Bits { max } => exact(u128::from(parse_uint(text, max)?) << f.bits.trailing_zeros()),
    })
}

/// `nw_frag`'s keywords as (value, mask) of the fragment bits (0x01 is a fragment, 0x02
/// a later one). A packet is one of `no`, `first` or `later`.
fn parse_frag(name: &str, text: &str, packet: bool) -> Result<(u128, u128), ParseFailure> {
    Ok(match (text, packet) {
        ("no", false) => (0, 1),
        ("yes", false) => (1, 1),
        ("first", false) => (1, 3),
        ("later", false) => (3, 3),
        ("not_later", false) => (0, 2),
        ("no", true) => (0, 3),
        ("first", true) => (1, 3),
        ("later", true) => (3, 3),
        ("yes" | "not_later", true) => {
            return Err(ParseFailure::Whole(format!(
                "`{name}={text}` does not describe one packet: use no, first or later"
            )));
        }
        _ => {
            return Err(ParseFailure::Whole(format!(
                "invalid `{name}`: `{text}` is not one of no, yes, first, later, not_later"
            )));
        }
    })
}

/// Writes `m` (a value of `f`'s slot) as `f`'s value: only the bits of `f`, masks only
/// for maskable fields, prefixes as `/LEN`. Written straight to `w`, as every rule of a
/// bridge is printed for the write-back after a change (a string per value cost an
/// allocation per field of a million rules).
pub(crate) fn write_field_value(w: &mut impl Write, f: &FieldDef, m: Masked<u128>) -> fmt::Result {
    let (value, mask) = (m.value & f.bits, m.mask & f.bits);
    let masked = f.masking != Masking::None && mask != f.bits;
    match f.kind {
        ValueKind::Ethernet if masked => {
            write_mac(w, value)?;
            w.write_char('/')?;
            write_mac(w, mask)
        }
        ValueKind::Ethernet => write_mac(w, value),
        ValueKind::Ipv4 => prefix_or_mask(w, value, mask, 32, |w, a| Dotted(Ipv4Addr::from(a as u32)).write_to(w)),
        ValueKind::Ipv6 => prefix_or_mask(w, value, mask, 128, |w, a| write!(w, "{}", Ipv6Addr::from(a))),
        // As many digits as the largest value has (`dl_type` 4, `ipv6_label` 5), as OVS.
        ValueKind::Hex { max } if masked => {
            let w_ = hex_digits(max);
            write!(w, "0x{value:0w_$x}/0x{mask:0w_$x}")
        }
        ValueKind::Hex { max } => write!(w, "0x{value:0w_$x}", w_ = hex_digits(max)),
        ValueKind::Decimal { .. } | ValueKind::PortNumber if masked => write!(w, "0x{value:x}/0x{mask:x}"),
        ValueKind::PortNumber => crate::display::PortName(crate::ports::port_from_16(value as u32)).write_to(w),
        ValueKind::Frag => frag(w, value, mask),
        ValueKind::TcpFlags => tcp_flags(w, value as u16, mask as u16),
        ValueKind::Dscp => write_decimal(w, (value >> 2) as u64),
        // (A u128 formats through 128-bit divisions; the values of these fields fit 64 bits
        // but for `xxreg`s.)
        ValueKind::Decimal { .. } | ValueKind::Tos => match u64::try_from(value) {
            Ok(v) => write_decimal(w, v),
            Err(_) => write!(w, "{value}"),
        },
        // Printed as part of the TCI by the caller.
        ValueKind::VlanVid => write_decimal(w, (value & 0x0fff) as u64),
        ValueKind::VlanPcp => write_decimal(w, (value >> 13) as u64),
        ValueKind::Bits { .. } => write_decimal(w, (value >> f.bits.trailing_zeros()) as u64),
    }
}

fn hex_digits(max: u64) -> usize {
    (64 - max.leading_zeros()).div_ceil(4) as usize
}

fn write_mac(w: &mut impl Write, v: u128) -> fmt::Result {
    let b = (v as u64).to_be_bytes();
    Mac([b[2], b[3], b[4], b[5], b[6], b[7]]).write_to(w)
}

/// `v` in decimal, written from a stack buffer: through `core::fmt` (its arguments, its
/// padding) a number cost several times its digits, for each number of every rule
/// printed for the write-back.
pub(crate) fn write_decimal(w: &mut impl Write, mut v: u64) -> fmt::Result {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    write_ascii(w, &buf[at..])
}

/// Bytes known to be ASCII (digits, separators), as a string.
fn write_ascii(w: &mut impl Write, ascii: &[u8]) -> fmt::Result {
    w.write_str(std::str::from_utf8(ascii).map_err(|_| fmt::Error)?)
}

/// An Ethernet address as `xx:xx:xx:xx:xx:xx` (matches and `mod_dl_src`/`mod_dl_dst`),
/// written from a stack buffer: six `{:02x}` through `core::fmt` cost several times more,
/// once per MAC of every rule printed. No padding or width is honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mac(pub [u8; 6]);

impl Mac {
    pub(crate) fn write_to(self, w: &mut impl Write) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [b':'; 17];
        for (i, &x) in self.0.iter().enumerate() {
            buf[3 * i] = HEX[usize::from(x >> 4)];
            buf[3 * i + 1] = HEX[usize::from(x & 15)];
        }
        write_ascii(w, &buf)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

/// An IPv4 address in dotted decimal, written from a stack buffer: `Ipv4Addr`'s own
/// `Display` formats each octet through `core::fmt`, which was the largest single cost of
/// printing a million rules for the write-back. No padding or width is honoured (rules
/// never ask for any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dotted(pub Ipv4Addr);

impl Dotted {
    pub(crate) fn write_to(self, w: &mut impl Write) -> fmt::Result {
        let mut buf = [0u8; 15];
        let mut n = 0;
        for (i, &o) in self.0.octets().iter().enumerate() {
            if i > 0 {
                buf[n] = b'.';
                n += 1;
            }
            if o >= 100 {
                buf[n] = b'0' + o / 100;
                n += 1;
            }
            if o >= 10 {
                buf[n] = b'0' + o / 10 % 10;
                n += 1;
            }
            buf[n] = b'0' + o % 10;
            n += 1;
        }
        write_ascii(w, &buf[..n])
    }
}

impl fmt::Display for Dotted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

/// An address `value` of `width` bits (written by `put`), with its mask as `/LEN` if a
/// prefix, else as an address, if not all ones.
fn prefix_or_mask<W: Write>(
    w: &mut W,
    value: u128,
    mask: u128,
    width: u32,
    put: impl Fn(&mut W, u128) -> fmt::Result,
) -> fmt::Result {
    let all = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
    let leading = (mask << (128 - width)).leading_ones();
    put(w, value)?;
    if mask == all {
        Ok(())
    } else if leading + mask.trailing_zeros().min(width) == width {
        w.write_char('/')?;
        write_decimal(w, leading.into())
    } else {
        w.write_char('/')?;
        put(w, mask)
    }
}

fn frag(w: &mut impl Write, value: u128, mask: u128) -> fmt::Result {
    match (value, mask) {
        (0, 1) | (0, 3) => w.write_str("no"),
        (1, 1) => w.write_str("yes"),
        (1, 3) => w.write_str("first"),
        (3, 3) => w.write_str("later"),
        (0, 2) => w.write_str("not_later"),
        (v, mask) => write!(w, "0x{v:x}/0x{mask:x}"),
    }
}

fn tcp_flags(w: &mut impl Write, value: u16, mask: u16) -> fmt::Result {
    let named: u16 = TCP_FLAG_NAMES.iter().map(|&(_, b)| b).sum();
    if mask & !named != 0 {
        return write!(w, "0x{value:03x}/0x{mask:03x}");
    }
    for &(name, bit) in &TCP_FLAG_NAMES {
        if mask & bit != 0 {
            w.write_char(if value & bit != 0 { '+' } else { '-' })?;
            w.write_str(name)?;
        }
    }
    Ok(())
}

/// Each slot's printed fields, in field-table order: gathered once (picking them out of
/// the whole field table, again for each field's group, was most of printing a rule).
static PRINTED_BY_SLOT: LazyLock<[Vec<&'static FieldDef>; MatchSlot::ALL.len()]> = LazyLock::new(|| {
    let mut by_slot: [Vec<&'static FieldDef>; MatchSlot::ALL.len()] = Default::default();
    for f in FIELDS.iter().filter(|f| f.printed) {
        by_slot[f.slot as usize].push(f);
    }
    by_slot
});

/// Writes a slot's value as `dump-flows` does, as `NAME=VALUE` pieces: for each group
/// of printed fields covering the same bits, the first field whose prerequisite holds
/// (else the group's last) names it. `dl_type` and VLAN slots are printed by the caller.
pub(crate) fn write_slot<W: Write>(
    out: &mut Pieces<'_, W>,
    slot: MatchSlot,
    m: Masked<u128>,
    dl_type: Option<u16>,
    nw_proto: Option<u8>,
) -> fmt::Result {
    let printed = &PRINTED_BY_SLOT[slot as usize];
    let mut done = 0u128;
    for (i, f) in printed.iter().enumerate() {
        if f.bits & m.mask == 0 || f.bits & done != 0 {
            continue;
        }
        let last_of_group = printed[i + 1..].iter().all(|g| g.bits != f.bits);
        if last_of_group || f.prereq.is_none_or(|p| p.holds(dl_type, nw_proto)) {
            let w = out.next()?;
            w.write_str(f.name)?;
            w.write_char('=')?;
            write_field_value(w, f, m)?;
            done |= f.bits;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `write_decimal` prints what `core::fmt` prints, at every number of digits.
    #[test]
    fn decimal_prints_as_core_fmt_does() {
        let mut values = vec![0, u64::MAX, u64::from(u16::MAX), u64::from(u32::MAX)];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            values.extend([p - 1, p, p + 1, next / 2]);
            p = next;
        }
        for v in values {
            let mut got = String::new();
            write_decimal(&mut got, v).unwrap();
            assert_eq!(got, v.to_string());
        }
    }

    /// The stack-buffer writers print what `core::fmt` prints: every octet value in every
    /// position of an address, and MACs of every byte value.
    #[test]
    fn dotted_and_mac_print_as_core_fmt_does() {
        for o in 0..=255u8 {
            for a in [[o, 0, 0, 0], [1, o, 2, 3], [255, 255, o, 9], [10, 0, 0, o], [o, o, o, o]] {
                let ip = Ipv4Addr::from(a);
                assert_eq!(Dotted(ip).to_string(), ip.to_string());
            }
            let mac = u128::from(u64::from_be_bytes([0, 0, o, o ^ 0x5a, 0, 0xff, o.wrapping_mul(7), 1]));
            let b = (mac as u64).to_be_bytes();
            let want = format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[2], b[3], b[4], b[5], b[6], b[7]);
            let mut got = String::new();
            write_mac(&mut got, mac).unwrap();
            assert_eq!(got, want);
        }
    }
}
