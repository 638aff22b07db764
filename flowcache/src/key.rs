//! The flow key: every header field the switch can match on, packed into one cache line.
//!
//! # Layout
//!
//! A [`FlowKey`] is eight `u64` words (64 bytes, one cache line). The same type serves as
//! a *mask* (a bit set means "this bit of the key matters"), so masking a key is eight
//! ANDs and hashing a masked key is eight multiply-mix steps, with no per-field code on
//! the hot path. Field values are stored in host byte order inside their word, at fixed
//! bit offsets; typed accessors below convert to and from the wire types.
//!
//! ```text
//! word  bits 63..48        bits 47..32        bits 31..16        bits 15..0
//!  0    vlan_tci[0]        dl_type            nw_ttl|nw_frag     in_port (16 bits)
//!  1    vlan_tci[1]        dl_dst (48 bits) .....................................
//!  2    nw_proto|nw_tos    dl_src (48 bits) .....................................
//!  3    tcp_flags (12 bits, 63..52)|ipv6_label (20 bits, 51..32)  tp_dst  tp_src
//!  4    src_hi: IPv6 source bits 127..64      | ARP: arp_sha (48 bits)
//!  5    src_lo: IPv6 source bits 63..0        | IPv4/ARP: nw_src in bits 31..0
//!                                            | MPLS: mpls_lse in bits 63..32
//!  6    dst_hi: IPv6 destination bits 127..64 | ARP: arp_tha (48 bits)
//!  7    dst_lo: IPv6 destination bits 63..0   | IPv4/ARP: nw_dst in bits 31..0
//! ```
//!
//! Words 4..8 are shared by IPv4, IPv6, ARP and MPLS (whose first label stack entry
//! sits where no IPv4 or ARP field is, so an `nw_src` write on an MPLS packet cannot
//! reach it), as OVS shares `nw_src` for IPv4 and ARP's `spa`. That is sound because every mask that covers one of those bits also
//! covers `dl_type` (the OpenFlow prerequisite of those fields), so two megaflows that
//! read the same bits with different meanings always differ in `dl_type`.
//!
//! Every bit is used. `in_port` is a datapath (or OpenFlow) port number, at most
//! `ferrovs_config::MAX_PORT_NUMBER` (0xfeff), so 16 bits hold it (a packet-out's
//! 32-bit reserved in_port travels beside the key, not in it); `tcp_flags` has the 12
//! bits TCP defines. That leaves room in word 3 for the 20-bit IPv6 flow label, which
//! is zero for every other packet; a mask covering it also covers `dl_type`.
//!
//! Conventions, as in Open vSwitch's `struct flow`:
//! - `vlan_tci[i]` holds the 802.1Q TCI with the CFI/DEI bit (0x1000) forced to 1 when a
//!   tag is present, so `0` means "no tag" and a tag with VID 0 is still distinguishable.
//!   `vlan_tci[0]` is the outer tag. `dl_type` is the type after the VLAN tags.
//! - ARP: `nw_proto` holds the low 8 bits of the ARP opcode; `nw_src`/`nw_dst` hold the
//!   sender/target protocol addresses.
//! - ICMP and ICMPv6: `tp_src` holds the type and `tp_dst` the code.
//! - `nw_tos` is the whole IPv4 TOS / IPv6 traffic class byte (DSCP in the upper six bits,
//!   ECN in the lower two).
//! - `nw_frag` is a set of [`FRAG_ANY`] and [`FRAG_LATER`].
//! - Fields of headers that were absent or truncated stay zero.

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Number of 64-bit words in a key.
pub const KEY_WORDS: usize = 8;

/// `in_port` of a mask that covers the whole port (the key's `in_port` is 16 bits).
pub const IN_PORT_EXACT: u32 = 0xffff;

/// The key word that holds `tcp_flags`. The PMD ORs this word of every packet that hits
/// a megaflow (one OR per packet) and reads the flags from the result with
/// [`tcp_flags_of_word`]; the word's other fields do not disturb them.
pub const TCP_FLAGS_WORD: usize = 3;

/// The TCP flags held in `word`, a key's word [`TCP_FLAGS_WORD`] (or an OR of several).
#[inline(always)]
pub fn tcp_flags_of_word(word: u64) -> u16 {
    let mut k = FlowKey::ZERO;
    k.w[TCP_FLAGS_WORD] = word;
    k.tcp_flags()
}

/// A word [`TCP_FLAGS_WORD`] holding `flags` and nothing else.
#[inline(always)]
pub fn word_of_tcp_flags(flags: u16) -> u64 {
    let mut k = FlowKey::ZERO;
    k.set_tcp_flags(flags);
    k.w[TCP_FLAGS_WORD]
}

/// `nw_frag` bit: the packet is a fragment (first or later).
pub const FRAG_ANY: u8 = 0x01;
/// `nw_frag` bit: the packet is a later fragment (offset != 0); it carries no L4 header.
pub const FRAG_LATER: u8 = 0x02;

/// The CFI/DEI bit, forced to 1 in `vlan_tci` when a tag is present.
pub const VLAN_PRESENT: u16 = 0x1000;
/// VID part of a TCI.
pub const VLAN_VID_MASK: u16 = 0x0fff;
/// PCP part of a TCI.
pub const VLAN_PCP_MASK: u16 = 0xe000;
/// PCP shift inside a TCI.
pub const VLAN_PCP_SHIFT: u16 = 13;

/// EtherTypes the switch parses.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// Reverse ARP: parsed like ARP, and the ARP fields apply to it.
    pub const RARP: u16 = 0x8035;
    /// MPLS unicast and multicast: the first label stack entry is in the key, nothing
    /// behind the label stack is parsed (as OVS).
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MCAST: u16 = 0x8848;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol numbers the switch parses.
pub mod ipproto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// A flow key or a mask over flow keys. See the module documentation for the layout.
#[derive(Clone, Copy, Eq, Default)]
#[repr(C, align(64))]
pub struct FlowKey {
    pub w: [u64; KEY_WORDS],
}

/// Word-wise and branch-free: the derived comparison of `[u64; 8]` calls `memcmp`
/// (measured at 4 % of a forwarding core with every packet hitting the EMC).
impl PartialEq for FlowKey {
    #[inline(always)]
    fn eq(&self, other: &FlowKey) -> bool {
        let mut diff = 0;
        for i in 0..KEY_WORDS {
            diff |= self.w[i] ^ other.w[i];
        }
        diff == 0
    }
}

/// Hashes exactly the words that `eq` compares, so equal keys hash alike.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.w.hash(state);
    }
}

/// A mask is a key whose set bits say which key bits matter.
pub type Mask = FlowKey;

// Field positions: (word, shift, width in bits).
macro_rules! field {
    ($get:ident, $set:ident, $ty:ty, $word:expr, $shift:expr, $bits:expr, $doc:expr) => {
        #[doc = $doc]
        #[inline(always)]
        pub fn $get(&self) -> $ty {
            ((self.w[$word] >> $shift) & ((1u64 << $bits) - 1)) as $ty
        }
        #[doc = concat!("Sets: ", $doc)]
        #[inline(always)]
        pub fn $set(&mut self, v: $ty) {
            let m = ((1u64 << $bits) - 1) << $shift;
            self.w[$word] = (self.w[$word] & !m) | (((v as u64) << $shift) & m);
        }
    };
}

impl FlowKey {
    /// The all-zero key (also the mask that matches everything).
    pub const ZERO: FlowKey = FlowKey { w: [0; KEY_WORDS] };
    /// The all-ones mask (exact match on every field).
    pub const EXACT: FlowKey = FlowKey { w: [u64::MAX; KEY_WORDS] };

    field!(in_port, set_in_port, u32, 0, 0, 16, "Ingress (datapath or OpenFlow) port number, at most 0xffff.");
    field!(nw_frag, set_nw_frag, u8, 0, 16, 8, "Fragment state: FRAG_ANY | FRAG_LATER.");
    field!(nw_ttl, set_nw_ttl, u8, 0, 24, 8, "IPv4 TTL / IPv6 hop limit.");
    field!(dl_type, set_dl_type, u16, 0, 32, 16, "EtherType after any VLAN tags.");
    field!(dl_dst_u64, set_dl_dst_u64, u64, 1, 0, 48, "Destination MAC as a 48-bit integer.");
    field!(dl_src_u64, set_dl_src_u64, u64, 2, 0, 48, "Source MAC as a 48-bit integer.");
    field!(nw_tos, set_nw_tos, u8, 2, 48, 8, "IPv4 TOS / IPv6 traffic class.");
    field!(nw_proto, set_nw_proto, u8, 2, 56, 8, "IP protocol, or the low byte of the ARP opcode.");
    field!(tp_src, set_tp_src, u16, 3, 0, 16, "L4 source port, or ICMP type.");
    field!(tp_dst, set_tp_dst, u16, 3, 16, 16, "L4 destination port, or ICMP code.");
    // The flags at the top of the word, where reading them needs no mask.
    field!(tcp_flags, set_tcp_flags, u16, 3, 52, 12, "TCP flags (the 12 bits TCP defines).");
    field!(ipv6_label, set_ipv6_label, u32, 3, 32, 20, "IPv6 flow label (20 bits).");
    field!(nw_src_u32, set_nw_src_u32, u32, 5, 0, 32, "IPv4 source / ARP spa.");
    field!(mpls_lse, set_mpls_lse, u32, 5, 32, 32, "MPLS: the first label stack entry, as on the wire.");
    field!(nw_dst_u32, set_nw_dst_u32, u32, 7, 0, 32, "IPv4 destination / ARP tpa.");
    field!(arp_sha_u64, set_arp_sha_u64, u64, 4, 0, 48, "ARP sender hardware address.");
    field!(arp_tha_u64, set_arp_tha_u64, u64, 6, 0, 48, "ARP target hardware address.");

    /// VLAN TCI of tag `i` (0 = outer, 1 = inner), with [`VLAN_PRESENT`] set if present.
    #[inline(always)]
    pub fn vlan_tci(&self, i: usize) -> u16 {
        (self.w[i & 1] >> 48) as u16
    }
    /// Sets the VLAN TCI of tag `i` (0 = outer, 1 = inner).
    #[inline(always)]
    pub fn set_vlan_tci(&mut self, i: usize, tci: u16) {
        let i = i & 1;
        self.w[i] = (self.w[i] & !(0xffffu64 << 48)) | ((tci as u64) << 48);
    }

    pub fn dl_src(&self) -> [u8; 6] {
        mac_from_u64(self.dl_src_u64())
    }
    pub fn set_dl_src(&mut self, mac: [u8; 6]) {
        self.set_dl_src_u64(mac_to_u64(mac))
    }
    pub fn dl_dst(&self) -> [u8; 6] {
        mac_from_u64(self.dl_dst_u64())
    }
    pub fn set_dl_dst(&mut self, mac: [u8; 6]) {
        self.set_dl_dst_u64(mac_to_u64(mac))
    }
    pub fn arp_sha(&self) -> [u8; 6] {
        mac_from_u64(self.arp_sha_u64())
    }
    pub fn set_arp_sha(&mut self, mac: [u8; 6]) {
        self.set_arp_sha_u64(mac_to_u64(mac))
    }
    pub fn arp_tha(&self) -> [u8; 6] {
        mac_from_u64(self.arp_tha_u64())
    }
    pub fn set_arp_tha(&mut self, mac: [u8; 6]) {
        self.set_arp_tha_u64(mac_to_u64(mac))
    }
    pub fn nw_src(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.nw_src_u32())
    }
    pub fn set_nw_src(&mut self, a: Ipv4Addr) {
        self.set_nw_src_u32(u32::from(a))
    }
    pub fn nw_dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.nw_dst_u32())
    }
    pub fn set_nw_dst(&mut self, a: Ipv4Addr) {
        self.set_nw_dst_u32(u32::from(a))
    }
    /// IPv6 source as a 128-bit integer (words 4 and 5).
    pub fn ipv6_src_u128(&self) -> u128 {
        ((self.w[4] as u128) << 64) | self.w[5] as u128
    }
    pub fn set_ipv6_src_u128(&mut self, a: u128) {
        self.w[4] = (a >> 64) as u64;
        self.w[5] = a as u64;
    }
    /// IPv6 destination as a 128-bit integer (words 6 and 7).
    pub fn ipv6_dst_u128(&self) -> u128 {
        ((self.w[6] as u128) << 64) | self.w[7] as u128
    }
    pub fn set_ipv6_dst_u128(&mut self, a: u128) {
        self.w[6] = (a >> 64) as u64;
        self.w[7] = a as u64;
    }
    pub fn ipv6_src(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.ipv6_src_u128())
    }
    pub fn set_ipv6_src(&mut self, a: Ipv6Addr) {
        self.set_ipv6_src_u128(u128::from(a))
    }
    pub fn ipv6_dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.ipv6_dst_u128())
    }
    pub fn set_ipv6_dst(&mut self, a: Ipv6Addr) {
        self.set_ipv6_dst_u128(u128::from(a))
    }

    /// `self & mask`, word by word.
    #[inline(always)]
    pub fn masked(&self, mask: &Mask) -> FlowKey {
        let mut out = FlowKey::ZERO;
        for i in 0..KEY_WORDS {
            out.w[i] = self.w[i] & mask.w[i];
        }
        out
    }

    /// Union of two masks (`self | other`).
    #[inline(always)]
    pub fn union(&self, other: &Mask) -> Mask {
        let mut out = FlowKey::ZERO;
        for i in 0..KEY_WORDS {
            out.w[i] = self.w[i] | other.w[i];
        }
        out
    }

    /// True if every bit set in `self` is also set in `other` (as masks).
    #[inline]
    pub fn is_subset_of(&self, other: &Mask) -> bool {
        (0..KEY_WORDS).all(|i| self.w[i] & !other.w[i] == 0)
    }

    /// True if `packet` matches this key under `mask`: `(packet & mask) == self`.
    /// `self` must already be masked.
    #[inline(always)]
    pub fn matches(&self, mask: &Mask, packet: &FlowKey) -> bool {
        let mut diff = 0;
        for i in 0..KEY_WORDS {
            diff |= (packet.w[i] & mask.w[i]) ^ self.w[i];
        }
        diff == 0
    }

    /// True if no bit is set.
    #[inline]
    pub fn is_zero(&self) -> bool {
        self.w.iter().all(|&x| x == 0)
    }

    /// A 32-bit hash of the whole key (the exact-match cache, the signature cache and
    /// the parking table index by it when the NIC gives no hash). Fast and well mixed;
    /// not keyed, so not for adversarial inputs that an attacker controls *and*
    /// observes timing of.
    ///
    /// A multilinear sum (each word times its own odd constant, added) and one final
    /// mix, as the classifier's subtable hash: the eight multiplies are independent, so
    /// a key's hash is about 12 cycles of latency and ~25 instructions. The former form,
    /// one multiply-xorshift step per word chained through the previous word's result,
    /// was ~45 instructions and a dependency chain of eight multiplies per key, paid by
    /// every packet of a port whose bursts go through the caches. A difference in one
    /// word always changes the sum (the constants are odd, so invertible modulo 2^64).
    #[inline(always)]
    pub fn hash(&self) -> u32 {
        hash_key_words(&self.w)
    }

    /// Hash of `self & mask` without building the masked key.
    #[inline(always)]
    pub fn hash_masked(&self, mask: &Mask) -> u32 {
        let mut sum = 0u64;
        for ((&w, &m), k) in self.w.iter().zip(&mask.w).zip(KEY_HASH_MULTIPLIERS) {
            sum = sum.wrapping_add((w & m).wrapping_mul(k));
        }
        finish_key_hash(sum)
    }
}

/// Odd constants below 2^31 (bits 32..63 of a seeded generator's words), one per key
/// word, for [`FlowKey::hash`] (others than the classifier's, so that the two hashes of
/// one key are unrelated). A multiply by a constant that fits in a sign-extended 32-bit
/// immediate is one instruction; a 64-bit constant needs a `movabs` before it (six per
/// packet for the common shapes' six nonzero words). Only a word's bits below 32
/// spread less far up the product than with 64-bit constants (a difference in bit `p`
/// reaches bits `p..p + 32` of the sum, above them through carries); the final fold
/// and the 64-bit multiply of [`finish_key_hash`] mix the sum's halves
/// (`hash_spreads_keys_that_differ_in_one_field` checks the spread).
const KEY_HASH_MULTIPLIERS: [u64; KEY_WORDS] =
    [0x3a34_ce63, 0x405a_6779, 0x1e32_cdf7, 0x2776_5f79, 0x3bbb_23ff, 0x5bf0_c31d, 0x3e19_00a7, 0x2a16_cd9f];

/// [`FlowKey::hash`] of the key whose words are `w`. For a caller that has the words in
/// registers (key extraction builds them before it stores them): inlined there, the
/// multiplies of words known to be zero fold away and no word is read back from memory.
#[inline(always)]
pub fn hash_key_words(w: &[u64; KEY_WORDS]) -> u32 {
    let mut sum = 0u64;
    for (&w, m) in w.iter().zip(KEY_HASH_MULTIPLIERS) {
        sum = sum.wrapping_add(w.wrapping_mul(m));
    }
    finish_key_hash(sum)
}

/// The hash of a frame's key window (`extract::frame_window`, four words): the mix of
/// [`FlowKey::hash`] over them (four multiplies). The EMC's frame table is indexed by it.
#[inline(always)]
pub fn hash_window(w: &[u64; 4]) -> u32 {
    let mut sum = 0u64;
    for (&w, m) in w.iter().zip(KEY_HASH_MULTIPLIERS) {
        sum = sum.wrapping_add(w.wrapping_mul(m));
    }
    finish_key_hash(sum)
}

/// The final mix of [`FlowKey::hash`]: the sum's halves folded, one multiply, its top half.
#[inline(always)]
fn finish_key_hash(sum: u64) -> u32 {
    ((sum ^ (sum >> 32)).wrapping_mul(0xff51_afd7_ed55_8ccd) >> 32) as u32
}

#[inline]
pub fn mac_to_u64(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64)
}

#[inline]
pub fn mac_from_u64(v: u64) -> [u8; 6] {
    let b = v.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn fmt_mac(f: &mut fmt::Formatter<'_>, m: [u8; 6]) -> fmt::Result {
    write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

impl fmt::Debug for FlowKey {
    /// Prints the fields by name, in the style of `ovs-appctl dpctl/dump-flows`, skipping zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in_port({})", self.in_port())?;
        for i in 0..2 {
            if self.vlan_tci(i) != 0 {
                write!(f, ",vlan{}(tci=0x{:04x})", i, self.vlan_tci(i))?;
            }
        }
        if self.dl_src_u64() != 0 || self.dl_dst_u64() != 0 {
            f.write_str(",eth(src=")?;
            fmt_mac(f, self.dl_src())?;
            f.write_str(",dst=")?;
            fmt_mac(f, self.dl_dst())?;
            f.write_str(")")?;
        }
        write!(f, ",eth_type(0x{:04x})", self.dl_type())?;
        match self.dl_type() {
            ethertype::IPV6 => {
                write!(f, ",ipv6(src={},dst={},label=0x{:05x}", self.ipv6_src(), self.ipv6_dst(), self.ipv6_label())?
            }
            ethertype::ARP => {
                write!(f, ",arp(sip={},tip={},op={},sha=", self.nw_src(), self.nw_dst(), self.nw_proto())?;
                fmt_mac(f, self.arp_sha())?;
                f.write_str(",tha=")?;
                fmt_mac(f, self.arp_tha())?;
                return f.write_str(")");
            }
            _ => write!(f, ",ipv4(src={},dst={}", self.nw_src(), self.nw_dst())?,
        }
        write!(
            f,
            ",proto={},tos=0x{:x},ttl={},frag={}),l4(src={},dst={},flags=0x{:03x})",
            self.nw_proto(),
            self.nw_tos(),
            self.nw_ttl(),
            self.nw_frag(),
            self.tp_src(),
            self.tp_dst(),
            self.tcp_flags()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap() {
        // Setting every field to all ones must set exactly the bits the layout promises,
        // and each field must read back what was written.
        let mut k = FlowKey::ZERO;
        k.set_in_port(u32::MAX);
        k.set_ipv6_label(u32::MAX);
        k.set_dl_type(0xffff);
        k.set_vlan_tci(0, 0xffff);
        k.set_vlan_tci(1, 0xffff);
        k.set_dl_dst_u64(u64::MAX);
        k.set_dl_src_u64(u64::MAX);
        k.set_nw_tos(0xff);
        k.set_nw_proto(0xff);
        k.set_nw_frag(0xff);
        k.set_nw_ttl(0xff);
        k.set_tp_src(0xffff);
        k.set_tp_dst(0xffff);
        k.set_tcp_flags(0xffff);
        k.set_ipv6_src_u128(u128::MAX);
        k.set_ipv6_dst_u128(u128::MAX);
        assert_eq!(k, FlowKey::EXACT);

        let mut k = FlowKey::ZERO;
        k.set_tp_dst(443);
        k.set_tp_src(1234);
        k.set_nw_ttl(64);
        assert_eq!((k.tp_dst(), k.tp_src(), k.nw_ttl(), k.nw_frag()), (443, 1234, 64, 0));
        k.set_dl_src([1, 2, 3, 4, 5, 6]);
        assert_eq!(k.dl_src(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(k.dl_dst(), [0; 6]);
        k.set_nw_dst(Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(k.w[6], 0);
    }

    #[test]
    fn hash_spreads_keys_that_differ_in_one_field() {
        let mut base = FlowKey::ZERO;
        base.set_in_port(1);
        base.set_dl_type(0x0800);
        base.set_nw_proto(6);
        base.set_nw_src(Ipv4Addr::new(10, 0, 0, 1));
        base.set_nw_dst(Ipv4Addr::new(10, 0, 0, 2));
        base.set_tp_src(1000);
        base.set_tp_dst(80);
        type SetField = fn(&mut FlowKey, u32);
        let fields: [(&str, SetField); 6] = [
            ("in_port", |k, v| k.set_in_port(v)),
            ("tp_src", |k, v| k.set_tp_src(v as u16)),
            ("nw_dst", |k, v| k.set_nw_dst_u32(0x0a00_0000 | v)),
            ("tcp_flags", |k, v| k.set_tcp_flags(v as u16)),
            ("ipv6_label", |k, v| k.set_ipv6_label(v << 8)),
            ("dl_src", |k, v| k.set_dl_src([2, 0, 0, (v >> 8) as u8, v as u8, 0])),
        ];
        for (name, set) in fields {
            let hashes: Vec<u32> = (0..4096u32)
                .map(|v| {
                    let mut k = base;
                    set(&mut k, v);
                    k.hash()
                })
                .collect();
            let distinct: std::collections::HashSet<u32> = hashes.iter().copied().collect();
            assert!(distinct.len() >= 4095, "{name}: {} distinct hashes of 4096 keys", distinct.len());
            // The exact-match cache takes its two positions from bits 0.. and 16..: each
            // must spread 4,096 keys over 4,096 slots as a random function would (~63 %
            // filled).
            for shift in [0, 16] {
                let slots: std::collections::HashSet<u32> = hashes.iter().map(|h| (h >> shift) & 4095).collect();
                assert!(slots.len() > 2400, "{name}: bits {shift}.. fill {} of 4096 slots", slots.len());
            }
        }
    }

    #[test]
    fn masked_hash_equals_hash_of_masked() {
        let mut k = FlowKey::ZERO;
        k.set_in_port(3);
        k.set_nw_dst(Ipv4Addr::new(10, 1, 2, 3));
        let mut m = FlowKey::ZERO;
        m.set_in_port(u32::MAX);
        m.set_nw_dst_u32(0xffff_0000);
        assert_eq!(k.hash_masked(&m), k.masked(&m).hash());
        assert!(k.masked(&m).matches(&m, &k));
    }
}
