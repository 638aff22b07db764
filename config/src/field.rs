//! The match fields: one table ([`FIELDS`]) that says, for every `ovs-ofctl` match field,
//! everything the rest of the crate needs to know about it.
//!
//! # Design
//!
//! Like Open vSwitch's `lib/meta-flow.h`, each field is described once, as data:
//!
//! - its names: the canonical one (`nw_src`) and aliases with the same meaning
//!   (`ip_src`). Names with a *different* meaning get their own row even when they share
//!   storage (`arp_spa` is stored where `nw_src` is, but needs `arp`);
//! - where its value lives: a [`MatchSlot`] (one member of [`Match`], and one range of
//!   the flow key in `ferrovs-flowcache`) and which bits of it (`nw_tos` and `nw_ecn`
//!   share the TOS byte; `dl_vlan` and `dl_vlan_pcp` share the TCI);
//! - its value syntax and width ([`ValueKind`]) and whether and how it can be masked
//!   ([`Masking`]);
//! - its prerequisite ([`Prereq`]) on `dl_type`/`nw_proto`;
//! - whether `dump-flows` prints the slot under this name.
//!
//! The table drives match parsing (`match_builder`: lookup by name, duplicate
//! detection by slot bits, prerequisite checks), printing (`display`: which name
//! and format a slot prints with) and, through [`MatchSlot`], the flow-key layout of
//! `ferrovs-flowcache`, which maps each slot to key bits ([`SlotStorage`]). Adding a field
//! means one row here, plus a slot and its key location if it needs new storage.
//!
//! Rule properties (`table`, `priority`, `cookie`, timeouts), the `dump-flows` counters
//! and the shorthands (`tcp`, `arp`...) are not match fields and are handled by the
//! builder directly.

use crate::rules::{Masked, Match, PacketField, SetField, SubfieldField};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use crate::name_index::NameIndex;

/// EtherTypes and IP protocols the shorthands and prerequisites refer to.
pub(crate) mod proto {
    pub const ETH_IPV4: u16 = 0x0800;
    pub const ETH_ARP: u16 = 0x0806;
    /// Reverse ARP: same header as ARP, so the ARP fields apply (as in OVS).
    pub const ETH_RARP: u16 = 0x8035;
    /// MPLS unicast and multicast (`mpls`, `mplsm`).
    pub const ETH_MPLS: u16 = 0x8847;
    pub const ETH_MPLS_MCAST: u16 = 0x8848;
    pub const ETH_IPV6: u16 = 0x86dd;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
    /// ICMPv6 neighbour solicitation and advertisement (RFC 4861).
    pub const ND_SOLICIT: u16 = 135;
    pub const ND_ADVERT: u16 = 136;
}
use proto::*;

/// A shorthand keyword: `tcp` means `dl_type=0x0800,nw_proto=6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shorthand {
    pub name: &'static str,
    pub dl_type: u16,
    pub nw_proto: Option<u8>,
}

const fn sh(name: &'static str, dl_type: u16, nw_proto: Option<u8>) -> Shorthand {
    Shorthand { name, dl_type, nw_proto }
}

/// The shorthands, in the order `ovs-ofctl` documents them.
pub(crate) static SHORTHANDS: [Shorthand; 14] = [
    sh("ip", ETH_IPV4, None),
    sh("ipv6", ETH_IPV6, None),
    sh("arp", ETH_ARP, None),
    sh("rarp", ETH_RARP, None),
    sh("tcp", ETH_IPV4, Some(TCP)),
    sh("udp", ETH_IPV4, Some(UDP)),
    sh("sctp", ETH_IPV4, Some(SCTP)),
    sh("icmp", ETH_IPV4, Some(ICMP)),
    sh("tcp6", ETH_IPV6, Some(TCP)),
    sh("udp6", ETH_IPV6, Some(UDP)),
    sh("sctp6", ETH_IPV6, Some(SCTP)),
    sh("icmp6", ETH_IPV6, Some(ICMPV6)),
    sh("mpls", ETH_MPLS, None),
    sh("mplsm", ETH_MPLS_MCAST, None),
];

/// The shorthand keywords (`ip`, `tcp6`...), for tests and generators.
pub fn shorthand_names() -> impl Iterator<Item = &'static str> {
    SHORTHANDS.iter().map(|s| s.name)
}

/// What a field needs `dl_type`/`nw_proto` to be (OpenFlow's prerequisites).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prereq {
    /// IPv4 or IPv6.
    IpAny,
    /// IPv4, IPv6 or ARP/RARP (`nw_proto` doubles as the ARP opcode in OpenFlow 1.0).
    IpAnyOrArp,
    /// IPv4 or ARP/RARP (`nw_src`/`nw_dst` double as ARP's protocol addresses).
    IpOrArp,
    /// IPv4 only.
    Ip,
    Ipv6,
    /// ARP or RARP (`dl_type` 0x0806 or 0x8035: OVS's `is_arp`).
    Arp,
    /// TCP, UDP or SCTP over IPv4 or IPv6.
    L4,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv6,
    /// ICMP over IPv4 or ICMPv6 over IPv6: OVS reads `icmp_type`/`icmp_code` in an
    /// `icmp6` rule as the ICMPv6 type/code.
    IcmpAny,
    /// MPLS unicast or multicast (`dl_type` 0x8847 or 0x8848).
    Mpls,
}

impl Prereq {
    pub fn holds(self, dl_type: Option<u16>, nw_proto: Option<u8>) -> bool {
        let ip_any = matches!(dl_type, Some(ETH_IPV4 | ETH_IPV6));
        let arp = matches!(dl_type, Some(ETH_ARP | ETH_RARP));
        match self {
            Prereq::IpAny => ip_any,
            Prereq::IpAnyOrArp => ip_any || arp,
            Prereq::IpOrArp => arp || dl_type == Some(ETH_IPV4),
            Prereq::Ip => dl_type == Some(ETH_IPV4),
            Prereq::Ipv6 => dl_type == Some(ETH_IPV6),
            Prereq::Arp => arp,
            Prereq::L4 => ip_any && matches!(nw_proto, Some(TCP | UDP | SCTP)),
            Prereq::Tcp => ip_any && nw_proto == Some(TCP),
            Prereq::Udp => ip_any && nw_proto == Some(UDP),
            Prereq::Sctp => ip_any && nw_proto == Some(SCTP),
            Prereq::Icmp => dl_type == Some(ETH_IPV4) && nw_proto == Some(ICMP),
            Prereq::Icmpv6 => dl_type == Some(ETH_IPV6) && nw_proto == Some(ICMPV6),
            Prereq::IcmpAny => Prereq::Icmp.holds(dl_type, nw_proto) || Prereq::Icmpv6.holds(dl_type, nw_proto),
            Prereq::Mpls => matches!(dl_type, Some(ETH_MPLS | ETH_MPLS_MCAST)),
        }
    }

    /// The shorthands that satisfy it, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Prereq::IpAny => "ip or ipv6",
            Prereq::IpAnyOrArp => "ip, ipv6, arp or rarp",
            Prereq::IpOrArp => "ip, arp or rarp",
            Prereq::Ip => "ip",
            Prereq::Ipv6 => "ipv6",
            Prereq::Arp => "arp or rarp",
            Prereq::L4 => "tcp, udp or sctp (or tcp6, udp6, sctp6)",
            Prereq::Tcp => "tcp or tcp6",
            Prereq::Udp => "udp or udp6",
            Prereq::Sctp => "sctp or sctp6",
            Prereq::Icmp => "icmp",
            Prereq::Icmpv6 => "icmp6",
            Prereq::IcmpAny => "icmp or icmp6",
            Prereq::Mpls => "mpls or mplsm",
        }
    }
}

/// Where a match field's value is stored: one member of [`Match`] (and, in
/// `ferrovs-flowcache`, one range of the flow key). Several fields may share a slot
/// (`nw_src` and `arp_spa`; `nw_tos`, `ip_dscp` and `nw_ecn`). Declared in the order
/// `dump-flows` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchSlot {
    DlType,
    InPort,
    /// Outer VLAN TCI, with the 0x1000 "present" bit.
    VlanTci,
    DlSrc,
    DlDst,
    /// The first MPLS label stack entry (label, traffic class, bottom of stack, TTL), as
    /// on the wire: OVS's `mpls_lse[0]`.
    MplsLse,
    /// IPv4 source / ARP spa.
    NwSrc,
    /// IPv4 destination / ARP tpa.
    NwDst,
    Ipv6Src,
    Ipv6Dst,
    /// The 20-bit IPv6 flow label.
    Ipv6Label,
    /// IP protocol / ARP opcode.
    NwProto,
    /// The TOS byte: DSCP (upper six bits) and ECN (lower two).
    NwTos,
    NwTtl,
    NwFrag,
    /// L4 source port / ICMP type.
    TpSrc,
    /// L4 destination port / ICMP code.
    TpDst,
    /// The IPv6 neighbour-discovery target (`nd_target`). The ND slots (this and the four
    /// after it) have no
    /// flow-key storage (the 64-byte key has no room): see [`MatchSlot::in_flow_key`].
    NdTarget,
    /// The source link-layer address option of a neighbour solicitation (`nd_sll`).
    NdSll,
    /// The target link-layer address option of a neighbour advertisement (`nd_tll`).
    NdTll,
    /// The 32 bits after an ND message's ICMPv6 header (`nd_reserved`: the advertisement's
    /// R/S/O flags and reserved bits).
    NdReserved,
    /// The type of the first link-layer address option OVS's parse finds (`nd_options_type`).
    NdOptionsType,
    TcpFlags,
    ArpSha,
    ArpTha,
}

impl MatchSlot {
    /// Every slot, in `dump-flows` order.
    #[rustfmt::skip]
    pub const ALL: [MatchSlot; 25] = {
        use MatchSlot::*;
        [
            DlType, InPort, VlanTci, DlSrc, DlDst, MplsLse, NwSrc, NwDst, Ipv6Src, Ipv6Dst, Ipv6Label, NwProto, NwTos,
            NwTtl, NwFrag, TpSrc, TpDst, NdTarget, NdSll, NdTll, NdReserved, NdOptionsType, TcpFlags, ArpSha, ArpTha,
        ]
    };

    /// Whether the flow key stores the slot. The neighbour-discovery slots are not in
    /// it: the translator reads them from the frame (see docs/OVS-DIFFERENCES.md).
    pub const fn in_flow_key(self) -> bool {
        !matches!(
            self,
            MatchSlot::NdTarget
                | MatchSlot::NdSll
                | MatchSlot::NdTll
                | MatchSlot::NdReserved
                | MatchSlot::NdOptionsType
        )
    }

    /// For a neighbour-discovery slot, the ICMPv6 types (`icmp_type`) under which OVS
    /// 3.1 matches it (with `icmp_code` absent or 0); `None` for every other slot. OVS
    /// silently drops the field otherwise; ferrovs refuses the rule (checked by the
    /// match builder, not by [`MatchSlot::prereq_holds`], which sees only
    /// `dl_type`/`nw_proto`).
    pub const fn nd_icmp_types(self) -> Option<&'static [u16]> {
        match self {
            MatchSlot::NdTarget | MatchSlot::NdReserved | MatchSlot::NdOptionsType => Some(&[ND_SOLICIT, ND_ADVERT]),
            MatchSlot::NdSll => Some(&[ND_SOLICIT]),
            MatchSlot::NdTll => Some(&[ND_ADVERT]),
            _ => None,
        }
    }

    /// Whether the match `m` meets the ICMPv6 part of the slot's prerequisite: for a
    /// neighbour-discovery slot, `icmp_type` one of [`MatchSlot::nd_icmp_types`] and
    /// `icmp_code` absent or 0 (OVS's `is_nd`, which both a match and an action on the
    /// field need); true for every other slot.
    pub fn nd_type_holds(self, m: &Match) -> bool {
        let Some(types) = self.nd_icmp_types() else { return true };
        let ty_ok = m.tp_src.is_some_and(|t| t.mask & 0xff == 0xff && types.contains(&t.value));
        ty_ok && m.tp_dst.is_none_or(|c| c.value == 0)
    }

    /// Width of the slot's value in bits. `in_port` is 16 bits (port numbers are at most
    /// [`crate::MAX_PORT_NUMBER`]) and `tcp_flags` 12 (the flags TCP defines), which
    /// leaves room in the flow key for the flow label.
    pub const fn width(self) -> u32 {
        use MatchSlot::*;
        match self {
            InPort | DlType | VlanTci | TpSrc | TpDst => 16,
            TcpFlags => 12,
            Ipv6Label => 20,
            DlSrc | DlDst | ArpSha | ArpTha | NdSll | NdTll => 48,
            NwSrc | NwDst | MplsLse | NdReserved => 32,
            Ipv6Src | Ipv6Dst | NdTarget => 128,
            NwProto | NwTos | NwTtl | NwFrag | NdOptionsType => 8,
        }
    }

    /// All bits of the slot, as a value of the slot.
    pub const fn all_ones(self) -> u128 {
        match self.width() {
            128 => u128::MAX,
            w => (1u128 << w) - 1,
        }
    }

    /// True for slots whose rule masks are (almost always) prefixes: addresses and L4
    /// ports. The flow cache proves a mismatch on them with the shortest prefix.
    pub const fn is_prefix(self) -> bool {
        use MatchSlot::*;
        matches!(self, NwSrc | NwDst | Ipv6Src | Ipv6Dst | TpSrc | TpDst)
    }

    /// True for small slots with few distinct values in real traffic, where adding the
    /// whole slot to a megaflow mask splits traffic into few megaflows.
    pub const fn is_categorical(self) -> bool {
        use MatchSlot::*;
        matches!(self, InPort | DlType | VlanTci | NwProto | NwFrag)
    }

    /// The fields stored in this slot, in table order.
    pub fn fields(self) -> impl Iterator<Item = &'static FieldDef> {
        FIELDS.iter().filter(move |f| f.slot == self)
    }

    /// Whether a rule with this `dl_type`/`nw_proto` can match on the slot at all: some
    /// field of the slot has its prerequisite met (e.g. `tp_src` needs TCP, UDP, SCTP,
    /// ICMP or ICMPv6). A compiler of matches leaves a slot out otherwise.
    pub fn prereq_holds(self, dl_type: Option<u16>, nw_proto: Option<u8>) -> bool {
        self.fields().any(|f| f.prereq.is_none_or(|p| p.holds(dl_type, nw_proto)))
    }

    /// The slot's value in `key`, for the flow key or any other [`SlotStorage`].
    #[inline]
    pub fn get<S: SlotStorage>(self, key: &S) -> u128 {
        key.get_slot(self)
    }

    /// Writes `value` into the slot of `key` (other slots untouched).
    #[inline]
    pub fn put<S: SlotStorage>(self, key: &mut S, value: u128) {
        key.put_slot(self, value)
    }

    /// A mask (a storage with every other bit zero) with exactly `bits` of this slot set.
    #[inline]
    pub fn mask_of<S: SlotStorage>(self, bits: u128) -> S {
        let mut m = S::zero();
        m.put_slot(self, bits);
        m
    }
}

/// A store of slot values laid out its own way: `ferrovs-flowcache`'s flow key
/// implements it with the key location of each slot.
pub trait SlotStorage {
    /// Every slot zero.
    fn zero() -> Self;
    fn get_slot(&self, slot: MatchSlot) -> u128;
    fn put_slot(&mut self, slot: MatchSlot, value: u128);
}

/// The syntax (and printed form) of a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A port number `1..=MAX_PORT_NUMBER`; reserved names refused.
    PortNumber,
    /// An unsigned integer up to `max`, printed in decimal (masked: `0xV/0xM`).
    Decimal {
        max: u64,
    },
    /// An unsigned integer up to `max`, printed as `0x` and as many hex digits as `max` has.
    Hex {
        max: u64,
    },
    Ethernet,
    Ipv4,
    Ipv6,
    /// The TOS byte's DSCP bits as a multiple of 4 (`nw_tos`).
    Tos,
    /// The DSCP as six bits (`ip_dscp`), stored shifted left by 2.
    Dscp,
    /// `dl_vlan`: a VID 0..=4095, or 0xffff for "no tag".
    VlanVid,
    /// `dl_vlan_pcp`: 0..=7.
    VlanPcp,
    /// `no`, `yes`, `first`, `later`, `not_later`.
    Frag,
    /// `+syn-ack` or `VALUE[/MASK]` over the 12 flag bits.
    TcpFlags,
    /// An unsigned integer up to `max` in the field's `bits` of its slot (shifted up to
    /// their lowest bit), printed in decimal: the parts of an MPLS label stack entry.
    Bits {
        max: u64,
    },
}

/// Whether and how a field can be masked (`FIELD=VALUE/MASK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masking {
    /// Exact values only.
    None,
    /// Any bit mask.
    Arbitrary,
    /// A prefix length (`/24`) or any bit mask; printed as a prefix length when the
    /// mask is one.
    Prefix,
}

/// One match field. See the module documentation.
#[derive(Debug)]
pub struct FieldDef {
    /// The name `dump-flows` prints.
    pub name: &'static str,
    /// Other names with the same meaning.
    pub aliases: &'static [&'static str],
    pub slot: MatchSlot,
    /// The bits of the slot the field covers, as a value of the slot.
    pub bits: u128,
    pub kind: ValueKind,
    pub masking: Masking,
    pub prereq: Option<Prereq>,
    /// Whether the slot prints under this name (of a slot's printed fields covering the
    /// same bits, the first whose prerequisite holds, else the last).
    pub printed: bool,
}

impl FieldDef {
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

const fn row(
    name: &'static str,
    aliases: &'static [&'static str],
    slot: MatchSlot,
    kind: ValueKind,
    masking: Masking,
    prereq: Option<Prereq>,
) -> FieldDef {
    FieldDef { name, aliases, slot, bits: slot.all_ones(), kind, masking, prereq, printed: true }
}

impl FieldDef {
    /// The same field covering only `bits` of its slot.
    const fn bits(mut self, bits: u128) -> Self {
        self.bits = bits;
        self
    }
    /// An input-only name: the slot never prints under it.
    const fn input_only(mut self) -> Self {
        self.printed = false;
        self
    }
}

/// Every match field. Within a slot, a field needing a narrower prerequisite comes
/// before the general one, which is what printing relies on.
pub static FIELDS: [FieldDef; 45] = {
    use Masking::{Arbitrary, Prefix};
    use MatchSlot::*;
    use Prereq::*;
    use ValueKind as K;
    const N: Masking = Masking::None;
    [
        row("in_port", &["in_port_oxm"], InPort, K::PortNumber, N, None),
        row("dl_type", &["eth_type"], DlType, K::Hex { max: 0xffff }, N, None),
        row("dl_vlan", &[], VlanTci, K::VlanVid, N, None).bits(0x0fff),
        row("dl_vlan_pcp", &[], VlanTci, K::VlanPcp, N, None).bits(0xe000),
        row("vlan_tci", &[], VlanTci, K::Hex { max: 0xffff }, Arbitrary, None),
        row("dl_src", &["eth_src"], DlSrc, K::Ethernet, Arbitrary, None),
        row("dl_dst", &["eth_dst"], DlDst, K::Ethernet, Arbitrary, None),
        row("arp_spa", &[], NwSrc, K::Ipv4, Prefix, Some(Arp)),
        row("nw_src", &["ip_src"], NwSrc, K::Ipv4, Prefix, Some(IpOrArp)),
        row("arp_tpa", &[], NwDst, K::Ipv4, Prefix, Some(Arp)),
        row("nw_dst", &["ip_dst"], NwDst, K::Ipv4, Prefix, Some(IpOrArp)),
        row("ipv6_src", &[], Ipv6Src, K::Ipv6, Prefix, Some(Ipv6)),
        row("ipv6_dst", &[], Ipv6Dst, K::Ipv6, Prefix, Some(Ipv6)),
        row("ipv6_label", &[], Ipv6Label, K::Hex { max: 0xfffff }, Arbitrary, Some(Ipv6)),
        row("arp_op", &[], NwProto, K::Decimal { max: 255 }, N, Some(Arp)),
        row("nw_proto", &["ip_proto"], NwProto, K::Decimal { max: 255 }, N, Some(IpAnyOrArp)),
        row("nw_tos", &[], NwTos, K::Tos, N, Some(IpAny)).bits(0xfc),
        row("ip_dscp", &[], NwTos, K::Dscp, N, Some(IpAny)).bits(0xfc).input_only(),
        row("nw_ecn", &["ip_ecn"], NwTos, K::Decimal { max: 3 }, N, Some(IpAny)).bits(0x03),
        row("nw_ttl", &[], NwTtl, K::Decimal { max: 255 }, N, Some(IpAny)),
        row("nw_frag", &["ip_frag"], NwFrag, K::Frag, N, Some(IpAny)).bits(0x03),
        row("icmp_type", &["icmpv4_type"], TpSrc, K::Decimal { max: 255 }, N, Some(IcmpAny)),
        row("icmpv6_type", &[], TpSrc, K::Decimal { max: 255 }, N, Some(Icmpv6)).input_only(),
        row("tcp_src", &[], TpSrc, K::Decimal { max: 0xffff }, Arbitrary, Some(Tcp)).input_only(),
        row("udp_src", &[], TpSrc, K::Decimal { max: 0xffff }, Arbitrary, Some(Udp)).input_only(),
        row("sctp_src", &[], TpSrc, K::Decimal { max: 0xffff }, Arbitrary, Some(Sctp)).input_only(),
        row("tp_src", &[], TpSrc, K::Decimal { max: 0xffff }, Arbitrary, Some(L4)),
        row("icmp_code", &["icmpv4_code"], TpDst, K::Decimal { max: 255 }, N, Some(IcmpAny)),
        row("icmpv6_code", &[], TpDst, K::Decimal { max: 255 }, N, Some(Icmpv6)).input_only(),
        row("tcp_dst", &[], TpDst, K::Decimal { max: 0xffff }, Arbitrary, Some(Tcp)).input_only(),
        row("udp_dst", &[], TpDst, K::Decimal { max: 0xffff }, Arbitrary, Some(Udp)).input_only(),
        row("sctp_dst", &[], TpDst, K::Decimal { max: 0xffff }, Arbitrary, Some(Sctp)).input_only(),
        row("tp_dst", &[], TpDst, K::Decimal { max: 0xffff }, Arbitrary, Some(L4)),
        row("nd_target", &[], NdTarget, K::Ipv6, Prefix, Some(Icmpv6)),
        row("nd_sll", &[], NdSll, K::Ethernet, Arbitrary, Some(Icmpv6)),
        row("nd_tll", &[], NdTll, K::Ethernet, Arbitrary, Some(Icmpv6)),
        row("nd_reserved", &[], NdReserved, K::Decimal { max: 0xffff_ffff }, N, Some(Icmpv6)),
        row("nd_options_type", &[], NdOptionsType, K::Decimal { max: 255 }, N, Some(Icmpv6)),
        row("tcp_flags", &[], TcpFlags, K::TcpFlags, Arbitrary, Some(Tcp)).bits(0x0fff),
        row("mpls_label", &[], MplsLse, K::Bits { max: 0xfffff }, N, Some(Mpls)).bits(0xffff_f000),
        row("mpls_tc", &[], MplsLse, K::Bits { max: 7 }, N, Some(Mpls)).bits(0xe00),
        row("mpls_ttl", &[], MplsLse, K::Bits { max: 255 }, N, Some(Mpls)).bits(0xff),
        row("mpls_bos", &[], MplsLse, K::Bits { max: 1 }, N, Some(Mpls)).bits(0x100),
        row("arp_sha", &[], ArpSha, K::Ethernet, Arbitrary, Some(Arp)),
        row("arp_tha", &[], ArpTha, K::Ethernet, Arbitrary, Some(Arp)),
    ]
};

/// A pipeline field: registers and metadata (OVS's `reg0`..`reg15`, their 64- and
/// 128-bit views `xreg0`..`xreg7` and `xxreg0`..`xxreg3`, and `metadata`). They match the
/// translation's [`Registers`](crate::rules::Registers), not the packet: no
/// [`MatchSlot`], no flow-key bits. Printed as OVS prints them: the wider views as the
/// 32-bit registers they cover (`xreg0` is `reg0` high, `reg1` low).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipelineField {
    Reg(u8),
    Xreg(u8),
    Xxreg(u8),
    Metadata,
}

impl PipelineField {
    /// Every pipeline field, for tests and generators.
    pub fn all() -> impl Iterator<Item = PipelineField> {
        use PipelineField::*;
        (0..16).map(Reg).chain((0..8).map(Xreg)).chain((0..4).map(Xxreg)).chain([Metadata])
    }

    /// The name `ovs-ofctl` reads.
    pub fn name(self) -> String {
        match self {
            PipelineField::Reg(n) => format!("reg{n}"),
            PipelineField::Xreg(n) => format!("xreg{n}"),
            PipelineField::Xxreg(n) => format!("xxreg{n}"),
            PipelineField::Metadata => "metadata".to_string(),
        }
    }

    pub fn width(self) -> u32 {
        match self {
            PipelineField::Reg(_) => 32,
            PipelineField::Xreg(_) | PipelineField::Metadata => 64,
            PipelineField::Xxreg(_) => 128,
        }
    }

    /// The 32-bit registers the field covers, most significant first (none for
    /// `metadata`).
    pub fn regs(self) -> std::ops::Range<u8> {
        match self {
            PipelineField::Reg(n) => n..n + 1,
            PipelineField::Xreg(n) => 2 * n..2 * n + 2,
            PipelineField::Xxreg(n) => 4 * n..4 * n + 4,
            PipelineField::Metadata => 0..0,
        }
    }

    pub fn by_name(name: &str) -> Option<PipelineField> {
        if name == "metadata" {
            return Some(PipelineField::Metadata);
        }
        let num = |prefix: &str, max: u8| {
            let d = name.strip_prefix(prefix)?;
            // Digits only, no leading zero (OVS's names are exactly `reg0`..`reg15`).
            if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) || (d.len() > 1 && d.starts_with('0')) {
                return None;
            }
            d.parse::<u8>().ok().filter(|&n| n < max)
        };
        if let Some(n) = num("xxreg", 4) {
            return Some(PipelineField::Xxreg(n));
        }
        if let Some(n) = num("xreg", 8) {
            return Some(PipelineField::Xreg(n));
        }
        num("reg", 16).map(PipelineField::Reg)
    }
}

/// Whether `load`/`move` may write a packet field (every one of them is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and written (as a set-field of the whole field, or, for `in_port` and the
    /// VLAN fields, as the translator writes those: see [`PacketField::set_field`]).
    ReadWrite,
    /// A move source only: OVS refuses it as a destination too.
    ReadOnly,
}

/// One packet field `load`/`move` can name (see [`PacketField`]): its NXM name (how
/// `ovs-ofctl` prints it), its other names, where it is stored (which bits of which
/// slot), its width and its prerequisite (OVS refuses an action on a field whose
/// prerequisite the match lacks).
#[derive(Debug)]
pub struct PacketFieldDef {
    pub field: PacketField,
    pub nxm: &'static str,
    pub names: &'static [&'static str],
    pub slot: MatchSlot,
    /// The bits of the slot that hold the field, as a value of the slot.
    pub bits: u128,
    /// How far the field's value is shifted up in the slot (`ip_dscp` 2, `vlan_pcp` 13;
    /// `nw_tos` 0: OVS's `NXM_OF_IP_TOS` is the TOS byte with the ECN bits zero).
    pub shift: u32,
    /// Width in bits as `load`/`move` see it (`NXM_OF_IN_PORT` is 16 bits, `NXM_OF_ARP_OP`
    /// 16 over the key's 8-bit opcode, which OVS also keeps in 8 bits).
    pub width: u16,
    pub prereq: Option<Prereq>,
    pub access: Access,
}

impl PacketFieldDef {
    /// The field's value in a slot value.
    pub fn get(&self, slot_value: u128) -> u128 {
        (slot_value & self.bits) >> self.shift
    }

    /// The slot bits that hold the field bits `field_bits` (bits beyond the slot's share
    /// are dropped, as OVS drops them: `NXM_OF_IP_TOS`'s low two bits, `vlan_pcp`'s 3..7).
    pub fn slot_bits(&self, field_bits: u128) -> u128 {
        (field_bits << self.shift) & self.bits
    }
}

#[allow(clippy::too_many_arguments)]
const fn pf(
    field: PacketField,
    nxm: &'static str,
    names: &'static [&'static str],
    slot: MatchSlot,
    width: u16,
    prereq: Option<Prereq>,
    access: Access,
) -> PacketFieldDef {
    PacketFieldDef { field, nxm, names, slot, bits: slot.all_ones(), shift: 0, width, prereq, access }
}

impl PacketFieldDef {
    /// The same field over only `bits` of its slot, shifted up by `shift`.
    const fn part(mut self, bits: u128, shift: u32) -> Self {
        self.bits = bits;
        self.shift = shift;
        self
    }
}

/// The packet fields of `load`/`move`: every L2-L4 field of ovs-fields(7) without
/// conntrack, tunnels or MPLS. The first name after the NXM one is the `ovs-fields` name
/// a whole-field `set_field` prints (OpenFlow 1.3).
pub static PACKET_FIELDS: [PacketFieldDef; 44] = {
    use Access::{ReadOnly, ReadWrite as RW};
    use MatchSlot as S;
    use PacketField::*;
    use Prereq::*;
    [
        pf(InPort, "NXM_OF_IN_PORT", &["in_port"], S::InPort, 16, None, RW),
        pf(InPortOxm, "OXM_OF_IN_PORT", &["in_port_oxm"], S::InPort, 32, None, RW),
        pf(EthSrc, "NXM_OF_ETH_SRC", &["eth_src", "dl_src", "OXM_OF_ETH_SRC"], S::DlSrc, 48, None, RW),
        pf(EthDst, "NXM_OF_ETH_DST", &["eth_dst", "dl_dst", "OXM_OF_ETH_DST"], S::DlDst, 48, None, RW),
        pf(EthType, "NXM_OF_ETH_TYPE", &["eth_type", "dl_type", "OXM_OF_ETH_TYPE"], S::DlType, 16, None, ReadOnly),
        pf(VlanTci, "NXM_OF_VLAN_TCI", &["vlan_tci"], S::VlanTci, 16, None, RW),
        pf(VlanVid, "OXM_OF_VLAN_VID", &["vlan_vid"], S::VlanTci, 12, None, RW).part(0x0fff, 0),
        pf(VlanPcp, "OXM_OF_VLAN_PCP", &["vlan_pcp"], S::VlanTci, 3, None, RW).part(0xe000, 13),
        pf(
            IpProto,
            "NXM_OF_IP_PROTO",
            &["nw_proto", "ip_proto", "OXM_OF_IP_PROTO"],
            S::NwProto,
            8,
            Some(IpAny),
            ReadOnly,
        ),
        pf(IpSrc, "NXM_OF_IP_SRC", &["ip_src", "nw_src", "OXM_OF_IPV4_SRC"], S::NwSrc, 32, Some(Ip), RW),
        pf(IpDst, "NXM_OF_IP_DST", &["ip_dst", "nw_dst", "OXM_OF_IPV4_DST"], S::NwDst, 32, Some(Ip), RW),
        pf(IpTtl, "NXM_NX_IP_TTL", &["nw_ttl"], S::NwTtl, 8, Some(IpAny), RW),
        pf(IpTos, "NXM_OF_IP_TOS", &["nw_tos"], S::NwTos, 8, Some(IpAny), RW).part(0xfc, 0),
        pf(IpDscp, "OXM_OF_IP_DSCP", &["ip_dscp"], S::NwTos, 6, Some(IpAny), RW).part(0xfc, 2),
        pf(IpEcn, "NXM_NX_IP_ECN", &["nw_ecn", "ip_ecn", "OXM_OF_IP_ECN"], S::NwTos, 2, Some(IpAny), RW).part(0x03, 0),
        pf(IpFrag, "NXM_NX_IP_FRAG", &["nw_frag", "ip_frag"], S::NwFrag, 2, Some(IpAny), ReadOnly).part(0x03, 0),
        pf(TcpSrc, "NXM_OF_TCP_SRC", &["tcp_src", "OXM_OF_TCP_SRC"], S::TpSrc, 16, Some(Tcp), RW),
        pf(TcpDst, "NXM_OF_TCP_DST", &["tcp_dst", "OXM_OF_TCP_DST"], S::TpDst, 16, Some(Tcp), RW),
        pf(UdpSrc, "NXM_OF_UDP_SRC", &["udp_src", "OXM_OF_UDP_SRC"], S::TpSrc, 16, Some(Udp), RW),
        pf(UdpDst, "NXM_OF_UDP_DST", &["udp_dst", "OXM_OF_UDP_DST"], S::TpDst, 16, Some(Udp), RW),
        pf(SctpSrc, "OXM_OF_SCTP_SRC", &["sctp_src"], S::TpSrc, 16, Some(Sctp), RW),
        pf(SctpDst, "OXM_OF_SCTP_DST", &["sctp_dst"], S::TpDst, 16, Some(Sctp), RW),
        pf(TcpFlags, "NXM_NX_TCP_FLAGS", &["tcp_flags", "OXM_OF_TCP_FLAGS"], S::TcpFlags, 12, Some(Tcp), ReadOnly),
        pf(IcmpType, "NXM_OF_ICMP_TYPE", &["icmp_type", "OXM_OF_ICMPV4_TYPE"], S::TpSrc, 8, Some(Icmp), RW)
            .part(0xff, 0),
        pf(IcmpCode, "NXM_OF_ICMP_CODE", &["icmp_code", "OXM_OF_ICMPV4_CODE"], S::TpDst, 8, Some(Icmp), RW)
            .part(0xff, 0),
        pf(Icmpv6Type, "NXM_NX_ICMPV6_TYPE", &["icmpv6_type", "OXM_OF_ICMPV6_TYPE"], S::TpSrc, 8, Some(Icmpv6), RW)
            .part(0xff, 0),
        pf(Icmpv6Code, "NXM_NX_ICMPV6_CODE", &["icmpv6_code", "OXM_OF_ICMPV6_CODE"], S::TpDst, 8, Some(Icmpv6), RW)
            .part(0xff, 0),
        pf(ArpOp, "NXM_OF_ARP_OP", &["arp_op", "OXM_OF_ARP_OP"], S::NwProto, 16, Some(Arp), RW),
        pf(ArpSpa, "NXM_OF_ARP_SPA", &["arp_spa", "OXM_OF_ARP_SPA"], S::NwSrc, 32, Some(Arp), RW),
        pf(ArpTpa, "NXM_OF_ARP_TPA", &["arp_tpa", "OXM_OF_ARP_TPA"], S::NwDst, 32, Some(Arp), RW),
        pf(ArpSha, "NXM_NX_ARP_SHA", &["arp_sha", "OXM_OF_ARP_SHA"], S::ArpSha, 48, Some(Arp), RW),
        pf(ArpTha, "NXM_NX_ARP_THA", &["arp_tha", "OXM_OF_ARP_THA"], S::ArpTha, 48, Some(Arp), RW),
        pf(Ipv6Src, "NXM_NX_IPV6_SRC", &["ipv6_src", "OXM_OF_IPV6_SRC"], S::Ipv6Src, 128, Some(Ipv6), RW),
        pf(Ipv6Dst, "NXM_NX_IPV6_DST", &["ipv6_dst", "OXM_OF_IPV6_DST"], S::Ipv6Dst, 128, Some(Ipv6), RW),
        pf(Ipv6Label, "NXM_NX_IPV6_LABEL", &["ipv6_label", "OXM_OF_IPV6_FLABEL"], S::Ipv6Label, 20, Some(Ipv6), RW),
        pf(MplsLabel, "OXM_OF_MPLS_LABEL", &["mpls_label"], S::MplsLse, 20, Some(Mpls), RW).part(0xffff_f000, 12),
        pf(MplsTc, "OXM_OF_MPLS_TC", &["mpls_tc"], S::MplsLse, 3, Some(Mpls), RW).part(0xe00, 9),
        pf(MplsBos, "OXM_OF_MPLS_BOS", &["mpls_bos"], S::MplsLse, 1, Some(Mpls), ReadOnly).part(0x100, 8),
        pf(MplsTtl, "NXM_NX_MPLS_TTL", &["mpls_ttl"], S::MplsLse, 8, Some(Mpls), RW).part(0xff, 0),
        pf(NdTarget, "NXM_NX_ND_TARGET", &["nd_target", "OXM_OF_IPV6_ND_TARGET"], S::NdTarget, 128, Some(Icmpv6), RW),
        pf(NdSll, "NXM_NX_ND_SLL", &["nd_sll", "OXM_OF_IPV6_ND_SLL"], S::NdSll, 48, Some(Icmpv6), RW),
        pf(NdTll, "NXM_NX_ND_TLL", &["nd_tll", "OXM_OF_IPV6_ND_TLL"], S::NdTll, 48, Some(Icmpv6), RW),
        pf(NdReserved, "ERICOXM_OF_ICMPV6_ND_RESERVED", &["nd_reserved"], S::NdReserved, 32, Some(Icmpv6), RW),
        pf(
            NdOptionsType,
            "ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE",
            &["nd_options_type"],
            S::NdOptionsType,
            8,
            Some(Icmpv6),
            RW,
        ),
    ]
};

impl PacketField {
    /// The value `load`/`move` read from the in_port fields, given the flow's in_port
    /// (as bridges number ports: [`LOCAL_PORT`](crate::ports::LOCAL_PORT) for `LOCAL`):
    /// `NXM_OF_IN_PORT` holds OpenFlow 1.0's 16-bit number, `OXM_OF_IN_PORT` OpenFlow
    /// 1.1's 32-bit one (reserved ports 0xffffff00 and up), as OVS's `mf_get_value` reads
    /// them. `None` for every other field.
    pub fn in_port_value(self, in_port: u32) -> Option<u128> {
        let of10 = crate::ports::port_to_16(in_port);
        match self {
            PacketField::InPort => Some(u128::from(of10)),
            PacketField::InPortOxm => Some(u128::from(crate::openflow::port_from_of10(of10 as u16))),
            _ => None,
        }
    }

    /// The flow's in_port once `value` is written into in_port field `self` (OVS's
    /// `mf_set_flow_value`): a 32-bit number OpenFlow 1.0 cannot hold
    /// (0xff00..0xfffffeff) is `OFPP_NONE` (0xffff).
    pub fn in_port_written(self, value: u128) -> u32 {
        let of10 = match self {
            PacketField::InPortOxm => crate::openflow::port_to_of10(value as u32).unwrap_or(0xffff),
            _ => value as u16,
        };
        crate::ports::port_from_16(u32::from(of10))
    }

    /// Whether this is `in_port` or `in_port_oxm`: translation state, not packet bits.
    pub fn is_in_port(self) -> bool {
        matches!(self, PacketField::InPort | PacketField::InPortOxm)
    }

    /// Whether this is a part of the first MPLS label stack entry (written only into an
    /// MPLS packet, with its own datapath action).
    pub fn is_mpls(self) -> bool {
        use PacketField::*;
        matches!(self, MplsLabel | MplsTc | MplsBos | MplsTtl)
    }

    /// Whether this is one of the neighbour-discovery fields (not in the flow key: read
    /// and written per packet by the slow path).
    pub fn is_nd(self) -> bool {
        self.def().slot.nd_icmp_types().is_some()
    }

    /// Whether this is a TCP, UDP or SCTP field (ports, `tcp_flags`): OVS's prerequisite
    /// of these (`MFP_TCP`, `MFP_UDP`, `MFP_SCTP`) fails on a later fragment, which has no
    /// L4 header, so a `move` from or to one does nothing there.
    pub fn is_transport(self) -> bool {
        use PacketField::*;
        matches!(self, TcpSrc | TcpDst | UdpSrc | UdpDst | SctpSrc | SctpDst | TcpFlags)
    }

    /// Whether this is one of the ARP fields (written only into an ARP packet).
    pub fn is_arp(self) -> bool {
        use PacketField::*;
        matches!(self, ArpOp | ArpSpa | ArpTpa | ArpSha | ArpTha)
    }

    pub fn def(self) -> &'static PacketFieldDef {
        PACKET_FIELDS.iter().find(|d| d.field == self).expect("every packet field has a row")
    }

    /// The set-field that writes `value` (the whole field) into a writable field; `None`
    /// for a read-only one, and for the fields no set-field writes the way OVS's `load`
    /// does: `in_port` is translation state (later outputs, `in_port`, `normal` and
    /// `flood` see the new one), a TCI whose 0x1000 bit is clear removes the tag, a VID
    /// written to an absent tag stays in the flow without pushing one, and a PCP pushes
    /// one (the translator writes those three itself); nor for the ARP fields, which the
    /// translator writes itself too (only into an ARP packet, with their own datapath
    /// actions).
    pub fn set_field(self, value: u128) -> Option<SetField> {
        use PacketField::*;
        let mac = |v: u128| {
            let b = (v as u64).to_be_bytes();
            [b[2], b[3], b[4], b[5], b[6], b[7]]
        };
        Some(match self {
            EthSrc => SetField::DlSrc(mac(value)),
            EthDst => SetField::DlDst(mac(value)),
            IpSrc => SetField::NwSrc(Ipv4Addr::from(value as u32)),
            IpDst => SetField::NwDst(Ipv4Addr::from(value as u32)),
            IpTtl => SetField::NwTtl(value as u8),
            IpTos => SetField::IpDscp(((value as u8) & 0xfc) >> 2),
            IpDscp => SetField::IpDscp((value as u8) & 0x3f),
            IpEcn => SetField::NwEcn((value as u8) & 0x03),
            TcpSrc | UdpSrc | SctpSrc => SetField::TpSrc(value as u16),
            TcpDst | UdpDst | SctpDst => SetField::TpDst(value as u16),
            // ICMP type and code live in the low byte of the port slots (as in OVS's flow).
            IcmpType | Icmpv6Type => SetField::TpSrc(u16::from(value as u8)),
            IcmpCode | Icmpv6Code => SetField::TpDst(u16::from(value as u8)),
            Ipv6Src => SetField::Ipv6Src(Ipv6Addr::from(value)),
            Ipv6Dst => SetField::Ipv6Dst(Ipv6Addr::from(value)),
            Ipv6Label => SetField::Ipv6Label((value as u32) & 0xfffff),
            InPort | InPortOxm | EthType | VlanTci | VlanVid | VlanPcp | IpProto | IpFrag | TcpFlags | ArpOp
            | ArpSpa | ArpTpa | ArpSha | ArpTha | NdTarget | NdSll | NdTll | NdReserved | NdOptionsType | MplsLabel
            | MplsTc | MplsBos | MplsTtl => return None,
        })
    }
}

impl SubfieldField {
    /// Width in bits.
    pub fn width(self) -> u16 {
        match self.pipeline() {
            Some(pf) => pf.width() as u16,
            None => match self {
                SubfieldField::Packet(p) => p.def().width,
                _ => unreachable!("every other field is a pipeline field"),
            },
        }
    }

    /// The register, wider view or metadata this names, if it is one.
    pub fn pipeline(self) -> Option<PipelineField> {
        match self {
            SubfieldField::Reg(n) => Some(PipelineField::Reg(n)),
            SubfieldField::Xreg(n) => Some(PipelineField::Xreg(n)),
            SubfieldField::Xxreg(n) => Some(PipelineField::Xxreg(n)),
            SubfieldField::Metadata => Some(PipelineField::Metadata),
            SubfieldField::Packet(_) => None,
        }
    }

    /// The name `ovs-ofctl` prints (`NXM_NX_REG0`, `OXM_OF_PKT_REG0`, `NXM_NX_XXREG0`,
    /// `OXM_OF_METADATA`, `NXM_OF_ETH_SRC`).
    pub fn nxm_name(self) -> String {
        match self {
            SubfieldField::Reg(n) => format!("NXM_NX_REG{n}"),
            SubfieldField::Xreg(n) => format!("OXM_OF_PKT_REG{n}"),
            SubfieldField::Xxreg(n) => format!("NXM_NX_XXREG{n}"),
            SubfieldField::Metadata => "OXM_OF_METADATA".to_string(),
            SubfieldField::Packet(p) => p.def().nxm.to_string(),
        }
    }

    /// The field a `load`/`move` operand names: NXM names and `ovs-fields` names.
    /// `Err` with the reason for a field OVS has that ferrovs's `load`/`move` lacks.
    pub fn by_name(name: &str) -> Result<SubfieldField, String> {
        let alias = [("NXM_NX_REG", "reg"), ("OXM_OF_PKT_REG", "xreg"), ("NXM_NX_XXREG", "xxreg")]
            .iter()
            .find_map(|(nxm, short)| name.strip_prefix(nxm).map(|n| format!("{short}{n}")));
        match PipelineField::by_name(alias.as_deref().unwrap_or(name)) {
            Some(PipelineField::Reg(n)) => return Ok(SubfieldField::Reg(n)),
            Some(PipelineField::Xreg(n)) => return Ok(SubfieldField::Xreg(n)),
            Some(PipelineField::Xxreg(n)) => return Ok(SubfieldField::Xxreg(n)),
            Some(PipelineField::Metadata) => return Ok(SubfieldField::Metadata),
            None => {}
        }
        if name == "OXM_OF_METADATA" {
            return Ok(SubfieldField::Metadata);
        }
        if let Some(d) = PACKET_FIELDS.iter().find(|d| d.nxm == name || d.names.contains(&name)) {
            return Ok(SubfieldField::Packet(d.field));
        }
        Err(format!("field `{name}` is not supported in `load`/`move`"))
    }

    /// The match prerequisite of the field (OVS: `OFPBAC_MATCH_INCONSISTENT` without it).
    pub fn prereq(self) -> Option<Prereq> {
        match self {
            SubfieldField::Packet(p) => p.def().prereq,
            _ => None,
        }
    }
}

/// The field called `name` (canonical or alias).
pub fn field_by_name(name: &str) -> Option<&'static FieldDef> {
    match key_by_name(name)? {
        KeyName::Field(_, f) => Some(f),
        KeyName::Shorthand(_) => None,
    }
}

/// The shorthand named `name` (`tcp`, `ip6`...).
pub(crate) fn shorthand_by_name(name: &str) -> Option<&'static Shorthand> {
    match key_by_name(name)? {
        KeyName::Shorthand(s) => Some(s),
        KeyName::Field(..) => None,
    }
}

/// What a key of a match names: a shorthand or a field of [`FIELDS`] (with the name as
/// the table spells it). No name is both (a test holds the tables to that), so one
/// lookup answers both questions.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyName {
    Shorthand(&'static Shorthand),
    Field(&'static str, &'static FieldDef),
}

/// The shorthand or field named `name`, in one probe of an index of both tables.
pub(crate) fn key_by_name(name: &str) -> Option<KeyName> {
    static INDEX: OnceLock<NameIndex<KeyName>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let shorthands = SHORTHANDS.iter().map(|s| (s.name, KeyName::Shorthand(s)));
        let fields = FIELDS.iter().flat_map(|f| {
            std::iter::once(f.name).chain(f.aliases.iter().copied()).map(move |n| (n, KeyName::Field(n, f)))
        });
        NameIndex::new(shorthands.chain(fields), false)
    });
    index.get(name)
}

fn mac_bits(m: [u8; 6]) -> u128 {
    m.iter().fold(0, |acc, &b| acc << 8 | u128::from(b))
}

fn bits_mac(v: u128) -> [u8; 6] {
    let b = (v as u64).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn exact(value: u128, slot: MatchSlot) -> Masked<u128> {
    Masked { value, mask: slot.all_ones() }
}

fn wide<T: Copy>(m: &Option<Masked<T>>, f: impl Fn(T) -> u128) -> Option<Masked<u128>> {
    m.map(|m| Masked { value: f(m.value), mask: f(m.mask) })
}

fn narrow<T>(m: Option<Masked<u128>>, f: impl Fn(u128) -> T) -> Option<Masked<T>> {
    m.map(|m| Masked { value: f(m.value), mask: f(m.mask) })
}

impl Match {
    /// The value of `slot` under its mask, widened to 128 bits; `None` if wildcarded.
    /// Exact-only slots (`in_port`, `dl_type`, `nw_proto`, `nw_ttl`, `nd_reserved`,
    /// `nd_options_type`) have a full mask.
    pub fn slot(&self, slot: MatchSlot) -> Option<Masked<u128>> {
        use MatchSlot::*;
        let v4 = |a: Ipv4Addr| u128::from(u32::from(a));
        match slot {
            InPort => self.in_port.map(|p| exact(crate::ports::port_to_16(p).into(), slot)),
            DlType => self.dl_type.map(|t| exact(t.into(), slot)),
            VlanTci => wide(&self.vlan_tci, u128::from),
            DlSrc => wide(&self.dl_src, mac_bits),
            DlDst => wide(&self.dl_dst, mac_bits),
            NwSrc => wide(&self.nw_src, v4),
            NwDst => wide(&self.nw_dst, v4),
            Ipv6Src => wide(&self.ipv6_src, u128::from),
            Ipv6Dst => wide(&self.ipv6_dst, u128::from),
            Ipv6Label => wide(&self.ipv6_label, u128::from),
            NwProto => self.nw_proto.map(|p| exact(p.into(), slot)),
            NwTos => wide(&self.nw_tos, u128::from),
            NwTtl => self.nw_ttl.map(|t| exact(t.into(), slot)),
            NwFrag => wide(&self.nw_frag, u128::from),
            TpSrc => wide(&self.tp_src, u128::from),
            TpDst => wide(&self.tp_dst, u128::from),
            TcpFlags => wide(&self.tcp_flags, u128::from),
            ArpSha => wide(&self.arp_sha, mac_bits),
            ArpTha => wide(&self.arp_tha, mac_bits),
            NdTarget => wide(&self.nd_target, u128::from),
            NdSll => wide(&self.nd_sll, mac_bits),
            NdTll => wide(&self.nd_tll, mac_bits),
            MplsLse => wide(&self.mpls_lse, u128::from),
            NdReserved => self.nd_reserved.map(|v| exact(v.into(), slot)),
            NdOptionsType => self.nd_options_type.map(|v| exact(v.into(), slot)),
        }
    }

    /// Sets `slot` (bits beyond the slot's width are dropped). Exact-only slots keep the
    /// value and ignore the mask.
    pub fn set_slot(&mut self, slot: MatchSlot, m: Option<Masked<u128>>) {
        use MatchSlot::*;
        let v4 = |v: u128| Ipv4Addr::from(v as u32);
        let v = m.map(|m| m.value);
        match slot {
            InPort => self.in_port = v.map(|v| crate::ports::port_from_16(v as u32)),
            DlType => self.dl_type = v.map(|v| v as u16),
            VlanTci => self.vlan_tci = narrow(m, |v| v as u16),
            DlSrc => self.dl_src = narrow(m, bits_mac),
            DlDst => self.dl_dst = narrow(m, bits_mac),
            NwSrc => self.nw_src = narrow(m, v4),
            NwDst => self.nw_dst = narrow(m, v4),
            Ipv6Src => self.ipv6_src = narrow(m, Ipv6Addr::from),
            Ipv6Dst => self.ipv6_dst = narrow(m, Ipv6Addr::from),
            Ipv6Label => self.ipv6_label = narrow(m, |v| v as u32),
            NwProto => self.nw_proto = v.map(|v| v as u8),
            NwTos => self.nw_tos = narrow(m, |v| v as u8),
            NwTtl => self.nw_ttl = v.map(|v| v as u8),
            NwFrag => self.nw_frag = narrow(m, |v| v as u8),
            TpSrc => self.tp_src = narrow(m, |v| v as u16),
            TpDst => self.tp_dst = narrow(m, |v| v as u16),
            TcpFlags => self.tcp_flags = narrow(m, |v| v as u16),
            ArpSha => self.arp_sha = narrow(m, bits_mac),
            ArpTha => self.arp_tha = narrow(m, bits_mac),
            NdTarget => self.nd_target = narrow(m, Ipv6Addr::from),
            NdSll => self.nd_sll = narrow(m, bits_mac),
            NdTll => self.nd_tll = narrow(m, bits_mac),
            MplsLse => self.mpls_lse = narrow(m, |v| v as u32),
            NdReserved => self.nd_reserved = v.map(|v| v as u32),
            NdOptionsType => self.nd_options_type = v.map(|v| v as u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indexes answer what a search of the tables in order answers, for every name
    /// and alias, shorthand, and names that are neither.
    #[test]
    fn lookups_by_name_answer_as_the_tables() {
        let all = FIELDS.iter().flat_map(|f| std::iter::once(f.name).chain(f.aliases.iter().copied()));
        let others = ["", "nw", "NW_DST", "tcp", "ip6", "reg0", "priority", "actions", "tp_dst_"];
        for name in all.chain(SHORTHANDS.iter().map(|s| s.name)).chain(others) {
            let by_table = FIELDS.iter().find(|f| f.is_named(name)).map(|f| f as *const FieldDef);
            assert_eq!(field_by_name(name).map(|f| f as *const FieldDef), by_table, "{name}");
            let by_table = SHORTHANDS.iter().find(|s| s.name == name).map(|s| s as *const Shorthand);
            assert_eq!(shorthand_by_name(name).map(|s| s as *const Shorthand), by_table, "{name}");
        }
    }

    #[test]
    fn every_name_is_unique_and_every_slot_has_a_printed_field() {
        let mut names: Vec<&str> =
            FIELDS.iter().flat_map(|f| std::iter::once(f.name).chain(f.aliases.iter().copied())).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "a name is in two rows");
        for slot in MatchSlot::ALL {
            assert!(slot.fields().any(|f| f.printed), "{slot:?}");
            for f in slot.fields() {
                assert_eq!(f.bits & !slot.all_ones(), 0, "{}", f.name);
            }
        }
        for s in SHORTHANDS {
            assert!(field_by_name(s.name).is_none(), "{} is a shorthand and a field", s.name);
        }
    }

    #[test]
    fn slot_prerequisites_are_the_union_of_their_fields() {
        let tcp = (Some(ETH_IPV4), Some(TCP));
        let icmp6 = (Some(ETH_IPV6), Some(ICMPV6));
        let arp = (Some(ETH_ARP), None);
        assert!(MatchSlot::TpSrc.prereq_holds(tcp.0, tcp.1));
        assert!(MatchSlot::TpSrc.prereq_holds(icmp6.0, icmp6.1));
        assert!(!MatchSlot::TpSrc.prereq_holds(arp.0, arp.1));
        assert!(MatchSlot::NwSrc.prereq_holds(arp.0, arp.1));
        assert!(!MatchSlot::NwSrc.prereq_holds(icmp6.0, icmp6.1));
        assert!(MatchSlot::NwProto.prereq_holds(arp.0, arp.1));
        assert!(MatchSlot::InPort.prereq_holds(None, None));
        assert!(!MatchSlot::TcpFlags.prereq_holds(Some(ETH_IPV4), Some(UDP)));
    }

    #[test]
    fn slots_round_trip_through_match() {
        let mut m = Match::default();
        let values = [
            (MatchSlot::DlSrc, 0x0011_2233_4455u128, 0xffff_ff00_0000u128),
            (MatchSlot::NwDst, 0x0a00_0000, 0xff00_0000),
            (MatchSlot::Ipv6Src, 1 << 100, u128::MAX << 64),
            (MatchSlot::TpDst, 0x1000, 0xf000),
            (MatchSlot::NwTos, 0xb8, 0xfc),
        ];
        for (slot, value, mask) in values {
            m.set_slot(slot, Some(Masked { value, mask }));
            assert_eq!(m.slot(slot), Some(Masked { value, mask }), "{slot:?}");
        }
        assert_eq!(
            m.dl_src,
            Some(Masked { value: [0, 0x11, 0x22, 0x33, 0x44, 0x55], mask: [0xff, 0xff, 0xff, 0, 0, 0] })
        );
        assert_eq!(m.nw_dst.unwrap().value, Ipv4Addr::new(10, 0, 0, 0));
        m.set_slot(MatchSlot::InPort, Some(Masked { value: 7, mask: 0 }));
        assert_eq!(m.slot(MatchSlot::InPort), Some(Masked { value: 7, mask: 0xffff }));
        m.set_slot(MatchSlot::TpDst, None);
        assert_eq!(m.tp_dst, None);
    }
}
