//! Executing the packet-editing datapath actions on frame bytes.
//!
//! # Design
//!
//! [`execute_edit`] applies one [`DpAction`] to a frame in place. It locates the headers
//! with the same parser as key extraction ([`crate::extract::layers`]), so an edit
//! applies exactly when the key would show the field: a field that the key leaves zero
//! (absent or truncated header, later fragment for L4) is not written, and the result
//! says [`EditOutcome::Skipped`].
//!
//! Checksums are updated incrementally (RFC 1624), never recomputed over the payload:
//! - IPv4 address, TOS, TTL rewrites update the IPv4 header checksum;
//! - address rewrites update the TCP / UDP checksum (pseudo-header) and, for IPv6, the
//!   ICMPv6 checksum; port rewrites update TCP / UDP;
//! - a UDP checksum of zero over IPv4 means "none" and stays zero; a computed UDP
//!   checksum of zero is sent as 0xffff (RFC 768);
//! - SCTP port rewrites recompute the CRC32c over the SCTP packet (it is not
//!   incrementally updatable), as Open vSwitch does;
//! - the neighbour-discovery target and link-layer option rewrites update the ICMPv6
//!   checksum incrementally; the `nd_reserved` and `nd_options_type` ones recompute it
//!   over the message, as OVS's `packet_set_nd_ext` does (see [`DpAction::SetNdTarget`]).
//!
//! VLAN push and pop change the frame length, which only the PMD can do on an mbuf:
//! [`execute_edit`] answers [`EditOutcome::NeedsResize`] for them, and the PMD calls
//! [`push_vlan`] after prepending 4 bytes or [`pop_vlan`] before trimming 4.
//! `ReplaceVlan` (a pop and a push in one) keeps the length and is done in place;
//! `CommitVlans` is pops and pushes after [`vlans_kept`] says how many tags stay.

use crate::actions::{DpAction, PoppedTpids};
use crate::checksum;
use crate::extract::{Layers, layers};
use crate::key::{VLAN_PRESENT, ethertype, ipproto};

/// What [`execute_edit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOutcome {
    /// The frame was changed.
    Applied,
    /// The frame has no such field (e.g. an IP rewrite on ARP); it is unchanged.
    Skipped,
    /// `DecTtl` found TTL 0 or 1: drop the packet and skip the remaining actions.
    Drop,
    /// Not an edit (`Output`): the caller handles it.
    NotAnEdit,
    /// `PushVlan` / `PopVlan`: the caller resizes the buffer and calls [`push_vlan`] /
    /// [`pop_vlan`]; `CommitVlans`: the same for the pops and pushes [`vlans_kept`] leaves.
    NeedsResize,
}

/// Why a VLAN byte edit could not be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VlanEditError {
    #[error("buffer of {0} bytes is too short for a VLAN push (need 4 spare + 12 MAC bytes)")]
    TooShort(usize),
}

/// Applies one action to `frame`. See the module doc.
pub fn execute_edit(frame: &mut [u8], action: &DpAction) -> EditOutcome {
    match *action {
        DpAction::Output(_)
        | DpAction::OutputTrunc { .. }
        | DpAction::Controller { .. }
        | DpAction::PacketInNote(_) => EditOutcome::NotAnEdit,
        DpAction::PushVlan { .. } | DpAction::PopVlan | DpAction::CommitVlans { .. } => EditOutcome::NeedsResize,
        DpAction::SetEthDst(mac) => set_bytes(frame, 0, &mac),
        DpAction::SetEthSrc(mac) => set_bytes(frame, 6, &mac),
        DpAction::SetVlanVid(vid) => set_tci(frame, 0x0fff, vid & 0x0fff),
        DpAction::SetVlanPcp(pcp) => set_tci(frame, 0xe000, ((pcp & 7) as u16) << 13),
        DpAction::ReplaceVlan { tpid, tci } => replace_tag(frame, tpid, tci),
        DpAction::SetIpv4Src(a) => set_ipv4_addr(frame, 12, a.octets()),
        DpAction::SetIpv4Dst(a) => set_ipv4_addr(frame, 16, a.octets()),
        DpAction::SetIpv6Src(a) => set_ipv6_addr(frame, IPV6_SRC, a.octets()),
        DpAction::SetIpv6Dst(a) => set_ipv6_addr(frame, 24, a.octets()),
        DpAction::SetIpv6Label(l) => set_ipv6_label(frame, l),
        DpAction::SetIpDscp(d) => set_tos(frame, 0xfc, (d & 0x3f) << 2),
        DpAction::SetIpEcn(e) => set_tos(frame, 0x03, e & 0x03),
        DpAction::SetTtl(t) => set_ttl(frame, |_| Some(t)),
        DpAction::DecTtl => set_ttl(frame, |t| if t <= 1 { None } else { Some(t - 1) }),
        DpAction::SetTpSrc(p) => set_port(frame, 0, p),
        DpAction::SetTpDst(p) => set_port(frame, 2, p),
        DpAction::SetArpOp(op) => set_arp(frame, ARP_OP, &u16::from(op).to_be_bytes()),
        DpAction::SetArpSha(mac) => set_arp(frame, ARP_SHA, &mac),
        DpAction::SetArpSpa(a) => set_arp(frame, ARP_SPA, &a.octets()),
        DpAction::SetArpTha(mac) => set_arp(frame, ARP_THA, &mac),
        DpAction::SetArpTpa(a) => set_arp(frame, ARP_TPA, &a.octets()),
        DpAction::SetMplsLse { value, mask } => set_mpls_lse(frame, value, mask),
        DpAction::SetNdTarget(_)
        | DpAction::SetNdSll(_)
        | DpAction::SetNdTll(_)
        | DpAction::SetNdReserved(_)
        | DpAction::SetNdOptionsType(_) => nd_edit(frame, action),
    }
}

/// The ICMPv6 message of an IPv6 frame as OVS's ND edits see it: (L3 offset, message
/// offset, end of the IP packet), when the IPv6 payload (behind its extension headers)
/// is ICMPv6 and holds at least the 24-byte message (header, flags, target), which is
/// what OVS's `odp_set_nd`/`packet_set_nd`/`packet_set_nd_ext` require.
fn nd_message_at(frame: &[u8]) -> Option<(usize, usize, usize)> {
    let (l, l3, false) = ip_layers(frame)? else { return None };
    let l4 = l.l4_start?;
    (l.ip_proto == ipproto::ICMPV6 && !l.later_fragment && l.l3_end >= l4 + ND_MSG_LEN).then_some((l3, l4, l.l3_end))
}

/// An ND message's fixed part: ICMPv6 header (4), flags/reserved (4), target (16).
const ND_MSG_LEN: usize = 24;

/// The offset of the link-layer address option OVS's `odp_set_nd`/`packet_set_nd` rewrite
/// in the message at `l4` (ending at `end`): the first source (type 1) or target (type 2)
/// option of length 1, by their walk. It starts with the bytes after the fixed part as
/// remaining, stops at a length of 0 or when fewer than 8 bytes remain, and subtracts the
/// length of the option it moves *to* (not of the one it leaves), so it may look past the
/// message's end by up to the first option's length. Those steps are replicated exactly
/// while they read inside the frame (its Ethernet padding included: OVS's packet holds it
/// too); where OVS would read or write past the frame's last byte (into its buffer's
/// tailroom), ferrovs stops and writes nothing (docs/OVS-DIFFERENCES.md).
fn nd_link_layer_option(frame: &[u8], l4: usize, end: usize) -> Option<usize> {
    let mut remain = (end - l4 - ND_MSG_LEN) as isize;
    let mut opt = l4 + ND_MSG_LEN;
    while remain >= 8 {
        let (ty, len) = (*frame.get(opt)?, *frame.get(opt + 1)?);
        if len == 0 {
            return None;
        }
        if matches!(ty, 1 | 2) && len == 1 {
            return (opt + 8 <= frame.len()).then_some(opt);
        }
        opt += usize::from(len) * 8;
        remain -= isize::from(*frame.get(opt + 1)?) * 8;
    }
    None
}

/// The neighbour-discovery rewrites (see [`DpAction::SetNdTarget`]), as OVS's datapath
/// applies `set(nd(...))` and `set(nd_ext(...))` to the packet's bytes.
fn nd_edit(frame: &mut [u8], action: &DpAction) -> EditOutcome {
    let Some((l3, l4, end)) = nd_message_at(frame) else { return EditOutcome::Skipped };
    let csum_at = l4 + 2;
    let rewrite = |frame: &mut [u8], at: usize, new: &[u8]| {
        if frame[at..at + new.len()] == *new {
            return EditOutcome::Skipped;
        }
        let c = u16::from_be_bytes([frame[csum_at], frame[csum_at + 1]]);
        let c = checksum::update(c, &frame[at..at + new.len()], new);
        frame[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
        frame[at..at + new.len()].copy_from_slice(new);
        EditOutcome::Applied
    };
    match *action {
        DpAction::SetNdTarget(t) => rewrite(frame, l4 + 8, &t.octets()),
        DpAction::SetNdSll(mac) | DpAction::SetNdTll(mac) => {
            let want = if matches!(action, DpAction::SetNdSll(_)) { 1 } else { 2 };
            match nd_link_layer_option(frame, l4, end) {
                Some(opt) if frame[opt] == want => rewrite(frame, opt + 2, &mac),
                _ => EditOutcome::Skipped,
            }
        }
        DpAction::SetNdReserved(r) => {
            frame[l4 + 4..l4 + 8].copy_from_slice(&r.to_be_bytes());
            nd_recompute_checksum(frame, l3, l4, end)
        }
        DpAction::SetNdOptionsType(t) => {
            // The first option's type byte: OVS writes the byte after the fixed part even
            // when the message has no option (the frame's padding, if it has any there).
            if let Some(b) = frame.get_mut(l4 + ND_MSG_LEN) {
                *b = t;
            }
            nd_recompute_checksum(frame, l3, l4, end)
        }
        _ => unreachable!("not an ND edit"),
    }
}

/// The ICMPv6 checksum of the message at `l4..end`, computed again as OVS's
/// `packet_set_nd_ext` does: its pseudo-header takes the IPv6 header's next-header and
/// payload-length fields as they are (not the upper-layer ones, when extension headers
/// stand between).
fn nd_recompute_checksum(frame: &mut [u8], l3: usize, l4: usize, end: usize) -> EditOutcome {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&frame[l3 + 8..l3 + 24]);
    dst.copy_from_slice(&frame[l3 + 24..l3 + 40]);
    let plen = usize::from(u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]));
    frame[l4 + 2..l4 + 4].fill(0);
    let sum = checksum::sum_words(&frame[l4..end], checksum::ipv6_pseudo_sum(&src, &dst, frame[l3 + 6], plen));
    frame[l4 + 2..l4 + 4].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
    EditOutcome::Applied
}

/// Rewrites bits of the first MPLS label stack entry, if the packet has all four bytes of
/// one.
fn set_mpls_lse(frame: &mut [u8], value: u32, mask: u32) -> EditOutcome {
    let Some(at) = layers(frame).mpls else { return EditOutcome::Skipped };
    let Some(lse) = frame.get_mut(at..at + 4) else { return EditOutcome::Skipped };
    let old = u32::from_be_bytes([lse[0], lse[1], lse[2], lse[3]]);
    lse.copy_from_slice(&((old & !mask) | (value & mask)).to_be_bytes());
    EditOutcome::Applied
}

/// Offsets in an Ethernet/IPv4 ARP header (RFC 826).
const ARP_OP: usize = 6;
const ARP_SHA: usize = 8;
const ARP_SPA: usize = 14;
const ARP_THA: usize = 18;
const ARP_TPA: usize = 24;

/// Writes `v` at offset `off` of the ARP header of an ARP (not RARP: OVS rewrites ARP
/// only) frame whose header the key parsed.
fn set_arp(frame: &mut [u8], off: usize, v: &[u8]) -> EditOutcome {
    let l = layers(frame);
    match l.l3 {
        Some(l3) if l.dl_type == ethertype::ARP => {
            frame[l3 + off..l3 + off + v.len()].copy_from_slice(v);
            EditOutcome::Applied
        }
        _ => EditOutcome::Skipped,
    }
}

fn set_bytes(frame: &mut [u8], off: usize, v: &[u8]) -> EditOutcome {
    if frame.len() < 14 {
        return EditOutcome::Skipped;
    }
    frame[off..off + v.len()].copy_from_slice(v);
    EditOutcome::Applied
}

/// Rewrites bits of the outer TCI. The DEI/CFI bit is cleared, as OVS does: it rewrites a
/// tag by popping it and pushing a new one whose TCI never carries DEI.
fn set_tci(frame: &mut [u8], mask: u16, bits: u16) -> EditOutcome {
    let Some(off) = layers(frame).vlan else { return EditOutcome::Skipped };
    let tci = u16::from_be_bytes([frame[off + 2], frame[off + 3]]);
    let tci = (tci & !mask & !VLAN_PRESENT) | bits;
    frame[off + 2..off + 4].copy_from_slice(&tci.to_be_bytes());
    EditOutcome::Applied
}

/// The TPID of the outer tag, if the frame has one the parser sees.
pub fn outer_tpid(frame: &[u8]) -> Option<u16> {
    layers(frame).vlan.map(|off| u16::from_be_bytes([frame[off], frame[off + 1]]))
}

/// `ReplaceVlan`: the outer tag becomes (`tpid`, `tci` without DEI) unless its TPID, VID
/// and PCP are those already (then it keeps its DEI bit). The same frame as a pop and a
/// push, without moving bytes.
fn replace_tag(frame: &mut [u8], tpid: u16, tci: u16) -> EditOutcome {
    let Some(off) = layers(frame).vlan else { return EditOutcome::Skipped };
    let old_tpid = u16::from_be_bytes([frame[off], frame[off + 1]]);
    let old_tci = u16::from_be_bytes([frame[off + 2], frame[off + 3]]);
    if old_tpid == tpid && (old_tci ^ tci) & !VLAN_PRESENT == 0 {
        return EditOutcome::Skipped;
    }
    frame[off..off + 2].copy_from_slice(&tpid.to_be_bytes());
    frame[off + 2..off + 4].copy_from_slice(&(tci & !VLAN_PRESENT).to_be_bytes());
    EditOutcome::Applied
}

/// The IP layer of a frame: (layers, L3 offset, is IPv4), or None if not IP.
fn ip_layers(frame: &[u8]) -> Option<(Layers, usize, bool)> {
    let l = layers(frame);
    let l3 = l.l3?;
    match l.dl_type {
        ethertype::IPV4 => Some((l, l3, true)),
        ethertype::IPV6 => Some((l, l3, false)),
        _ => None,
    }
}

/// Offset of the L4 checksum field for a pseudo-header-covered protocol, relative to
/// the L4 header: TCP 16, UDP 6, ICMPv6 2 (IPv6 only).
fn l4_csum_field(proto: u8, ipv4: bool) -> Option<usize> {
    match proto {
        ipproto::TCP => Some(16),
        ipproto::UDP => Some(6),
        ipproto::ICMPV6 if !ipv4 => Some(2),
        _ => None,
    }
}

/// Updates the L4 checksum for a pseudo-header change from `old` to `new` (an address).
///
/// As OVS's `packet_set_ipv4_addr` / `packet_update_csum128`, the checksum is updated
/// whenever the IP payload is long enough to hold the L4 header's fixed part (TCP 20,
/// UDP 8, ICMPv6 4 bytes), even if the key could not parse the header (a TCP data
/// offset below 5 or past the end). Unlike OVS, a later fragment is left alone: its
/// payload bytes at that offset are data, not a checksum.
fn update_l4_for_pseudo(frame: &mut [u8], l: &Layers, ipv4: bool, old: &[u8], new: &[u8]) {
    let Some(l4) = l.l4_start else { return };
    if l.later_fragment {
        return;
    }
    let proto = l.ip_proto;
    let Some(field) = l4_csum_field(proto, ipv4) else { return };
    let fixed_len = match proto {
        ipproto::TCP => 20,
        ipproto::UDP => 8,
        _ => 4,
    };
    if l.l3_end < l4 + fixed_len {
        return;
    }
    let at = l4 + field;
    let c = u16::from_be_bytes([frame[at], frame[at + 1]]);
    if proto == ipproto::UDP && ipv4 && c == 0 {
        return; // no UDP checksum
    }
    let mut n = checksum::update(c, old, new);
    if proto == ipproto::UDP && n == 0 {
        n = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&n.to_be_bytes());
}

fn set_ipv4_addr(frame: &mut [u8], field: usize, new: [u8; 4]) -> EditOutcome {
    let Some((l, l3, true)) = ip_layers(frame) else { return EditOutcome::Skipped };
    let at = l3 + field;
    let old: [u8; 4] = [frame[at], frame[at + 1], frame[at + 2], frame[at + 3]];
    frame[at..at + 4].copy_from_slice(&new);
    let c = u16::from_be_bytes([frame[l3 + 10], frame[l3 + 11]]);
    frame[l3 + 10..l3 + 12].copy_from_slice(&checksum::update(c, &old, &new).to_be_bytes());
    update_l4_for_pseudo(frame, &l, true, &old, &new);
    EditOutcome::Applied
}

fn set_ipv6_addr(frame: &mut [u8], field: usize, new: [u8; 16]) -> EditOutcome {
    let Some((l, l3, false)) = ip_layers(frame) else { return EditOutcome::Skipped };
    let at = l3 + field;
    let mut old = [0u8; 16];
    old.copy_from_slice(&frame[at..at + 16]);
    frame[at..at + 16].copy_from_slice(&new);
    let pseudo_has_it = field == IPV6_SRC || l.l4_start.is_none_or(|l4| !routing_header_pending(frame, l3, l4));
    if pseudo_has_it {
        update_l4_for_pseudo(frame, &l, false, &old, &new);
    }
    EditOutcome::Applied
}

const IPV6_SRC: usize = 8;

/// True if the IPv6 extension headers between `l3 + 40` and `l4` include a routing
/// header with segments left. The L4 pseudo-header then holds the final destination
/// (the routing header's last address), not the destination field (RFC 8200 8.1), so a
/// destination rewrite leaves the L4 checksum alone, as OVS's `packet_set_ipv6` does.
fn routing_header_pending(frame: &[u8], l3: usize, l4: usize) -> bool {
    let mut next = frame[l3 + 6];
    let mut off = l3 + 40;
    while off + 8 <= l4 {
        let len = match next {
            51 => (frame[off + 1] as usize + 2) * 4, // AH
            44 => 8,                                 // fragment
            0 | 43 | 60 => (frame[off + 1] as usize + 1) * 8,
            _ => return false,
        };
        if next == 43 && frame[off + 3] > 0 {
            return true;
        }
        next = frame[off];
        off += len;
    }
    false
}

fn set_tos(frame: &mut [u8], mask: u8, bits: u8) -> EditOutcome {
    let Some((_, l3, ipv4)) = ip_layers(frame) else { return EditOutcome::Skipped };
    if ipv4 {
        let old = u16::from_be_bytes([frame[l3], frame[l3 + 1]]);
        frame[l3 + 1] = (frame[l3 + 1] & !mask) | bits;
        let new = u16::from_be_bytes([frame[l3], frame[l3 + 1]]);
        let c = u16::from_be_bytes([frame[l3 + 10], frame[l3 + 11]]);
        frame[l3 + 10..l3 + 12].copy_from_slice(&checksum::update16(c, old, new).to_be_bytes());
    } else {
        // Traffic class: low 4 bits of byte 0 and high 4 bits of byte 1.
        let tc = (frame[l3] << 4) | (frame[l3 + 1] >> 4);
        let tc = (tc & !mask) | bits;
        frame[l3] = (frame[l3] & 0xf0) | (tc >> 4);
        frame[l3 + 1] = (frame[l3 + 1] & 0x0f) | (tc << 4);
    }
    EditOutcome::Applied
}

/// The flow label: the low 20 bits of the IPv6 header's first word (version and traffic
/// class above it are kept).
fn set_ipv6_label(frame: &mut [u8], label: u32) -> EditOutcome {
    let Some((_, l3, false)) = ip_layers(frame) else { return EditOutcome::Skipped };
    let word = u32::from_be_bytes([frame[l3], frame[l3 + 1], frame[l3 + 2], frame[l3 + 3]]);
    let word = (word & !0xfffff) | (label & 0xfffff);
    frame[l3..l3 + 4].copy_from_slice(&word.to_be_bytes());
    EditOutcome::Applied
}

fn set_ttl(frame: &mut [u8], f: impl Fn(u8) -> Option<u8>) -> EditOutcome {
    let Some((_, l3, ipv4)) = ip_layers(frame) else { return EditOutcome::Skipped };
    let at = if ipv4 { l3 + 8 } else { l3 + 7 };
    let Some(ttl) = f(frame[at]) else { return EditOutcome::Drop };
    if ipv4 {
        let old = u16::from_be_bytes([frame[at], frame[at + 1]]);
        frame[at] = ttl;
        let new = u16::from_be_bytes([frame[at], frame[at + 1]]);
        let c = u16::from_be_bytes([frame[l3 + 10], frame[l3 + 11]]);
        frame[l3 + 10..l3 + 12].copy_from_slice(&checksum::update16(c, old, new).to_be_bytes());
    } else {
        frame[at] = ttl;
    }
    EditOutcome::Applied
}

fn set_port(frame: &mut [u8], field: usize, port: u16) -> EditOutcome {
    let Some((l, _, ipv4)) = ip_layers(frame) else { return EditOutcome::Skipped };
    let Some((proto, l4)) = l.l4 else { return EditOutcome::Skipped };
    let at = l4 + field;
    match proto {
        ipproto::TCP | ipproto::UDP => {
            let old = u16::from_be_bytes([frame[at], frame[at + 1]]);
            frame[at..at + 2].copy_from_slice(&port.to_be_bytes());
            let cf = l4 + if proto == ipproto::TCP { 16 } else { 6 };
            let c = u16::from_be_bytes([frame[cf], frame[cf + 1]]);
            if !(proto == ipproto::UDP && ipv4 && c == 0) {
                let mut n = checksum::update16(c, old, port);
                if proto == ipproto::UDP && n == 0 {
                    n = 0xffff;
                }
                frame[cf..cf + 2].copy_from_slice(&n.to_be_bytes());
            }
        }
        ipproto::SCTP => {
            frame[at..at + 2].copy_from_slice(&port.to_be_bytes());
            let end = l.l3_end;
            frame[l4 + 8..l4 + 12].fill(0);
            let crc = crc32c(&frame[l4..end]);
            // SCTP stores the CRC32c in little-endian byte order on the wire.
            frame[l4 + 8..l4 + 12].copy_from_slice(&crc.to_le_bytes());
        }
        // ICMP type (field 0) or code (field 2 -> byte 1): OVS's packet_set_icmp, for
        // both ICMP and ICMPv6 (the key only has these in their own IP version).
        ipproto::ICMP | ipproto::ICMPV6 => {
            let old = u16::from_be_bytes([frame[l4], frame[l4 + 1]]);
            frame[l4 + field / 2] = port as u8;
            let new = u16::from_be_bytes([frame[l4], frame[l4 + 1]]);
            let c = u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]);
            frame[l4 + 2..l4 + 4].copy_from_slice(&checksum::update16(c, old, new).to_be_bytes());
        }
        _ => return EditOutcome::Skipped,
    }
    EditOutcome::Applied
}

const CRC32C_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82f6_3b78 } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC32c (Castagnoli), as SCTP uses it.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC32C_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Writes a new outer VLAN tag. `buf` is the frame with 4 spare bytes prepended (the PMD
/// did `rte_pktmbuf_prepend(m, 4)`): the 12 MAC bytes move to the front and the tag goes
/// after them. The 0x1000 "present" bit of `tci` is not written (DEI stays 0).
pub fn push_vlan(buf: &mut [u8], tpid: u16, tci: u16) -> Result<(), VlanEditError> {
    if buf.len() < 4 + 12 {
        return Err(VlanEditError::TooShort(buf.len()));
    }
    buf.copy_within(4..16, 0);
    buf[12..14].copy_from_slice(&tpid.to_be_bytes());
    buf[14..16].copy_from_slice(&(tci & !VLAN_PRESENT).to_be_bytes());
    Ok(())
}

/// `CommitVlans { pop, push, tags }`: how many of the packet's outer `pop` tags stay,
/// innermost first, each equal in TPID (`tpids` resolves a placeholder), VID and PCP to the
/// tag of `tags[..push]` in its place. The caller then pops the other `pop - kept` tags and
/// pushes `tags[..push - kept]`, innermost first. A tag the frame does not have is not
/// equal to anything.
pub fn vlans_kept(frame: &[u8], pop: u8, push: u8, tags: &[(u16, u16); 2], tpids: &PoppedTpids) -> u8 {
    let tag_at = |i: u8| {
        let at = 12 + 4 * usize::from(i);
        frame.get(at..at + 4).map(|t| (u16::from_be_bytes([t[0], t[1]]), u16::from_be_bytes([t[2], t[3]])))
    };
    let mut kept = 0;
    while kept < pop.min(push) {
        let Some((tpid, tci)) = tag_at(pop - 1 - kept) else { break };
        let (want_tpid, want_tci) = tags[usize::from(push - 1 - kept)];
        if tpid != tpids.peek(want_tpid) || (tci ^ want_tci) & !VLAN_PRESENT != 0 {
            break;
        }
        kept += 1;
    }
    kept
}

/// Removes the outer VLAN tag by moving the MAC addresses 4 bytes towards the end; the
/// caller then drops the first 4 bytes (`rte_pktmbuf_adj(m, 4)`). Returns false (and
/// changes nothing) if the frame has no parsable outer tag.
pub fn pop_vlan(frame: &mut [u8]) -> bool {
    if layers(frame).vlan != Some(12) {
        return false;
    }
    frame.copy_within(0..12, 4);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::extract;
    use crate::testpkt::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn apply(frame: &mut [u8], a: DpAction) -> EditOutcome {
        execute_edit(frame, &a)
    }

    /// ARP rewrites land at RFC 826 offsets of an ARP frame (behind a tag too) and leave
    /// RARP and anything else alone, as OVS commits them for EtherType 0x0806 only.
    #[test]
    fn arp_edits_rewrite_arp_frames_only() {
        let mac = [2, 0, 0, 0, 0, 0x99];
        let ip = Ipv4Addr::new(10, 9, 9, 9);
        let edits = [
            DpAction::SetArpOp(2),
            DpAction::SetArpSha(mac),
            DpAction::SetArpSpa(ip),
            DpAction::SetArpTha(mac),
            DpAction::SetArpTpa(ip),
        ];
        for tagged in [false, true] {
            let mut f = arp_frame(1);
            if tagged {
                f = with_vlan(&f, 0x8100, 7);
            }
            for a in edits {
                assert_eq!(apply(&mut f, a), EditOutcome::Applied, "{a:?}");
            }
            let k = extract(&f, 1);
            assert_eq!((k.nw_proto(), k.arp_sha(), k.nw_src(), k.arp_tha(), k.nw_dst()), (2, mac, ip, mac, ip));
            let l3 = if tagged { 18 } else { 14 };
            assert_eq!(f[l3 + 6..l3 + 8], [0, 2], "the 16-bit opcode");
        }
        let mut rarp = arp_frame(3);
        rarp[12..14].copy_from_slice(&0x8035u16.to_be_bytes());
        let mut ip4 = udp4_frame(53, 53, b"x");
        for f in [&mut rarp, &mut ip4] {
            let before = f.clone();
            for a in edits {
                assert_eq!(apply(f, a), EditOutcome::Skipped, "{a:?}");
            }
            assert_eq!(*f, before);
        }
    }

    /// The neighbour-discovery edits over real messages, at RFC 4861 offsets, checksums
    /// kept right (incrementally, or computed again for the `nd_ext` ones), the option
    /// OVS's walk finds rewritten and nothing else.
    #[test]
    fn nd_edits_rewrite_the_target_the_first_link_layer_option_and_the_flags() {
        let target = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let new_target: Ipv6Addr = "fd00::99".parse().unwrap();
        let (a, b) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
        let ll = |ty: u8, mac: [u8; 6]| [&[ty, 1][..], &mac[..]].concat();
        let frame = |ty, opts: &[u8]| ipv6_frame(58, 0, &[], &nd_message(ty, 0, target, opts));
        const L4: usize = 14 + 40;
        // NS with its source address: target and SLL rewritten, a TLL write skipped.
        let mut ns = frame(135, &ll(1, a));
        assert!(checksums_ok(&ns));
        assert_eq!(apply(&mut ns, DpAction::SetNdTarget(new_target)), EditOutcome::Applied);
        assert_eq!(apply(&mut ns, DpAction::SetNdTll(b)), EditOutcome::Skipped);
        assert_eq!(apply(&mut ns, DpAction::SetNdSll(b)), EditOutcome::Applied);
        assert_eq!(apply(&mut ns, DpAction::SetNdSll(b)), EditOutcome::Skipped, "already so");
        assert_eq!(ns, frame_with(&frame(135, &ll(1, b)), L4 + 8, &new_target.octets()));
        assert!(checksums_ok(&ns));
        // NA with its target address: the TLL.
        let mut na = frame(136, &ll(2, a));
        assert_eq!(apply(&mut na, DpAction::SetNdSll(b)), EditOutcome::Skipped);
        assert_eq!(apply(&mut na, DpAction::SetNdTll(b)), EditOutcome::Applied);
        assert_eq!(na, frame(136, &ll(2, b)));
        // The option after an unknown one (type 14, 16 bytes); only the first link-layer
        // option is ever rewritten (OVS's walk stops there), whatever comes after it.
        let opts = |x| [vec![14, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], ll(2, x), ll(1, a)].concat();
        let mut f = frame(135, &opts(a));
        assert_eq!(apply(&mut f, DpAction::SetNdSll(b)), EditOutcome::Skipped, "the first is a TLL");
        assert_eq!(apply(&mut f, DpAction::SetNdTll(b)), EditOutcome::Applied);
        assert_eq!(f, frame(135, &opts(b)));
        // The flags and the first option's type: checksum computed again.
        let mut f = frame(136, &ll(2, a));
        assert_eq!(apply(&mut f, DpAction::SetNdReserved(0xe000_0001)), EditOutcome::Applied);
        assert_eq!(apply(&mut f, DpAction::SetNdOptionsType(1)), EditOutcome::Applied);
        let mut want = frame(136, &ll(1, a));
        want[L4 + 4..L4 + 8].copy_from_slice(&0xe000_0001u32.to_be_bytes());
        fill_l4_checksum(&mut want);
        assert_eq!(f, want);
        assert!(checksums_ok(&f));
        // A bad checksum is left bad by the incremental edits, corrected by the others.
        let mut bad = frame(135, &ll(1, a));
        bad[L4 + 2] ^= 0xff;
        apply(&mut bad, DpAction::SetNdSll(b));
        assert!(!checksums_ok(&bad));
        apply(&mut bad, DpAction::SetNdReserved(0));
        assert!(checksums_ok(&bad));
        // NS without options: no address to rewrite; the options type lands on the byte
        // after the message only if the frame has one (here, a trailer after the IPv6
        // payload, as Ethernet padding would be), which no checksum covers.
        let mut bare = frame(135, &[]);
        assert_eq!(apply(&mut bare, DpAction::SetNdSll(b)), EditOutcome::Skipped);
        let before = bare.clone();
        assert_eq!(apply(&mut bare, DpAction::SetNdOptionsType(2)), EditOutcome::Applied);
        assert_eq!(bare, before);
        let mut trailer = [frame(135, &[]), vec![0; 6]].concat();
        apply(&mut trailer, DpAction::SetNdOptionsType(2));
        assert_eq!(trailer[L4 + 24..], [2, 0, 0, 0, 0, 0]);
        assert_eq!(trailer[..L4 + 24], before[..]);
        // Not an ND-sized ICMPv6 message, not ICMPv6: nothing.
        for mut other in [ipv6_frame(58, 0, &[], &[128, 0, 0, 0, 0, 0, 0, 0]), udp4_frame(1, 2, b"x")] {
            let before = other.clone();
            for e in [DpAction::SetNdTarget(new_target), DpAction::SetNdReserved(1), DpAction::SetNdOptionsType(1)] {
                assert_eq!(apply(&mut other, e), EditOutcome::Skipped, "{e:?}");
            }
            assert_eq!(other, before);
        }
    }

    /// OVS's option walk subtracts the length of the option it moves to, so after a first
    /// option of 16 bytes it takes a link-layer option that crosses the end of the
    /// message (where its parse stopped); ferrovs does the same while the bytes are in the
    /// frame, and stops where OVS would read past the frame.
    #[test]
    fn nd_option_walk_is_ovs_s_arithmetic_inside_the_frame() {
        let target = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        const L4: usize = 14 + 40;
        // Options: a 16-byte unknown one, then 4 bytes of a source link-layer option; the
        // IPv6 payload ends there, 4 more bytes of frame follow.
        let first = [14, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let msg = nd_message(135, 0, target, &[&first[..], &[1, 1, 2, 0]].concat());
        let mut f = [ipv6_frame(58, 0, &[], &msg), vec![0, 0, 0, 0xa]].concat();
        assert_eq!(crate::extract::nd_fields(&f).sll, [0; 6], "OVS's parse stops before it");
        let mac = [2, 0, 0, 0, 0, 0xb];
        assert_eq!(apply(&mut f, DpAction::SetNdSll(mac)), EditOutcome::Applied);
        assert_eq!(f[L4 + 40 + 2..], mac);
        // One byte shorter: OVS would write past the frame; ferrovs writes nothing.
        let mut short = [ipv6_frame(58, 0, &[], &msg), vec![0, 0, 0]].concat();
        let before = short.clone();
        assert_eq!(apply(&mut short, DpAction::SetNdSll(mac)), EditOutcome::Skipped);
        assert_eq!(short, before);
        // A length of 0 ends the walk.
        let msg = nd_message(135, 0, target, &[&[14, 0, 0, 0, 0, 0, 0, 0][..], &[1, 1, 2, 0, 0, 0, 0, 0]].concat());
        let mut f = ipv6_frame(58, 0, &[], &msg);
        assert_eq!(apply(&mut f, DpAction::SetNdSll(mac)), EditOutcome::Skipped);
    }

    /// `frame` with `bytes` at `at` and its L4 checksum filled again.
    fn frame_with(frame: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut f = frame.to_vec();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        fill_l4_checksum(&mut f);
        f
    }

    /// `CommitVlans` keeps the innermost pairs equal in TPID, VID and PCP (DEI ignored) up
    /// to the first that differs, a received-tag placeholder compared as that tag's TPID.
    #[test]
    fn commit_vlans_keeps_the_innermost_equal_tags_up_to_the_first_difference() {
        use crate::actions::{TPID_OF_RECEIVED_INNER, TPID_OF_RECEIVED_OUTER};
        // 0x88a8 VID 5, then 0x8100 PCP 5 VID 10 with DEI set, then ARP.
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x05, 0x81, 0x00, 0xb0, 0x0a, 0x08, 0x06]);
        f.resize(60, 0);
        let tpids = PoppedTpids::for_frame(&f);
        let (outer, inner) = ((0x88a8, VLAN_PRESENT | 5), (0x8100, VLAN_PRESENT | 0xa00a));
        let kept = |pop, push, tags| vlans_kept(&f, pop, push, &tags, &tpids);
        assert_eq!(kept(2, 2, [outer, inner]), 2);
        assert_eq!(kept(2, 2, [(0x88a8, VLAN_PRESENT | 6), inner]), 1, "the outer VID differs");
        assert_eq!(kept(2, 2, [outer, (0x88a8, inner.1)]), 0, "the inner TPID differs: nothing after it");
        assert_eq!(kept(2, 2, [outer, (0x8100, VLAN_PRESENT | 0x800a)]), 0, "the inner PCP differs");
        assert_eq!(kept(2, 2, [(TPID_OF_RECEIVED_OUTER, outer.1), (TPID_OF_RECEIVED_INNER, inner.1)]), 2);
        assert_eq!(kept(2, 2, [outer, (TPID_OF_RECEIVED_OUTER, inner.1)]), 0, "the outer tag's TPID");
        // One tag of the packet against the inner of two, and two against one.
        assert_eq!(kept(1, 2, [(0x8100, VLAN_PRESENT), outer]), 1);
        assert_eq!(kept(2, 1, [inner, (0, 0)]), 1);
        assert_eq!(kept(2, 1, [outer, (0, 0)]), 0);
        assert_eq!(kept(0, 2, [outer, inner]), 0);
        // A tag the frame is too short to have is equal to nothing.
        assert_eq!(vlans_kept(&f[..18], 2, 2, &[outer, inner], &tpids), 0);
    }

    #[test]
    fn replace_vlan_keeps_an_equal_tag_with_its_dei_and_rewrites_any_other() {
        // 0x8100, DEI set, PCP 5, VID 10.
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0xb0, 0x0a, 0x08, 0x06]);
        f.resize(60, 0);
        let orig = f.clone();
        let same = DpAction::ReplaceVlan { tpid: 0x8100, tci: VLAN_PRESENT | 0xa00a };
        assert_eq!(apply(&mut f, same), EditOutcome::Skipped);
        assert_eq!(f, orig);
        assert_eq!(
            apply(&mut f, DpAction::ReplaceVlan { tpid: 0x88a8, tci: VLAN_PRESENT | 0xa00a }),
            EditOutcome::Applied
        );
        assert_eq!(f[12..16], [0x88, 0xa8, 0xa0, 0x0a]);
        let mut g = orig.clone();
        assert_eq!(
            apply(&mut g, DpAction::ReplaceVlan { tpid: 0x8100, tci: VLAN_PRESENT | 0x000a }),
            EditOutcome::Applied
        );
        assert_eq!(g[12..16], [0x81, 0x00, 0x00, 0x0a]);
        let mut untagged = vec![0u8; 12];
        untagged.extend_from_slice(&[0x08, 0x06]);
        untagged.resize(60, 0);
        assert_eq!(apply(&mut untagged, same), EditOutcome::Skipped);
    }

    #[test]
    fn ipv4_tcp_address_and_port_rewrites_keep_checksums() {
        let mut f = tcp4_frame(&TCP4);
        assert!(checksums_ok(&f));
        assert_eq!(apply(&mut f, DpAction::SetIpv4Src(Ipv4Addr::new(172, 16, 5, 4))), EditOutcome::Applied);
        assert_eq!(apply(&mut f, DpAction::SetIpv4Dst(Ipv4Addr::new(8, 8, 8, 8))), EditOutcome::Applied);
        assert_eq!(apply(&mut f, DpAction::SetTpSrc(1)), EditOutcome::Applied);
        assert_eq!(apply(&mut f, DpAction::SetTpDst(65535)), EditOutcome::Applied);
        let k = extract(&f, 1);
        assert_eq!(k.nw_src(), Ipv4Addr::new(172, 16, 5, 4));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(8, 8, 8, 8));
        assert_eq!((k.tp_src(), k.tp_dst()), (1, 65535));
        assert!(checksums_ok(&f));
        // Against a frame built from scratch with the new values: byte-identical.
        let want = tcp4_frame(&Tcp4 { src: [172, 16, 5, 4], dst: [8, 8, 8, 8], sport: 1, dport: 65535, ..TCP4 });
        assert_eq!(f, want);
    }

    #[test]
    fn udp_checksum_rules() {
        let mut f = udp4_frame(1000, 53, b"query");
        apply(&mut f, DpAction::SetIpv4Dst(Ipv4Addr::new(1, 1, 1, 1)));
        apply(&mut f, DpAction::SetTpDst(5353));
        assert!(checksums_ok(&f));
        assert_eq!(f, {
            let mut g = udp4_frame(1000, 5353, b"query");
            let l3 = 14;
            g[l3 + 16..l3 + 20].copy_from_slice(&[1, 1, 1, 1]);
            fix_ipv4_total_len(&mut g, l3);
            fill_l4_checksum(&mut g);
            g
        });
        // Zero UDP checksum over IPv4 stays zero.
        let mut f = udp4_frame(1000, 53, b"query");
        f[14 + 20 + 6] = 0;
        f[14 + 20 + 7] = 0;
        apply(&mut f, DpAction::SetIpv4Src(Ipv4Addr::new(9, 9, 9, 9)));
        apply(&mut f, DpAction::SetTpSrc(7));
        assert_eq!(&f[40..42], &[0, 0]);
        assert!(ipv4_header_checksum_ok(&f[14..34]));
    }

    #[test]
    fn udp_result_zero_is_sent_as_ffff() {
        // Search a source port for which the updated checksum computes to zero; the
        // edit must write 0xffff and the frame must still verify.
        let base = udp4_frame(1000, 53, b"x");
        let mut found = false;
        for p in 0..=u16::MAX {
            let mut f = base.clone();
            apply(&mut f, DpAction::SetTpSrc(p));
            if f[40..42] == [0xff, 0xff] {
                assert!(checksums_ok(&f));
                found = true;
                break;
            }
        }
        assert!(found, "some port yields a zero checksum");
    }

    #[test]
    fn ttl_tos_and_dec_ttl() {
        let mut f = tcp4_frame(&TCP4);
        assert_eq!(apply(&mut f, DpAction::DecTtl), EditOutcome::Applied);
        assert_eq!(extract(&f, 1).nw_ttl(), 63);
        apply(&mut f, DpAction::SetIpDscp(46));
        apply(&mut f, DpAction::SetIpEcn(1));
        assert_eq!(extract(&f, 1).nw_tos(), (46 << 2) | 1);
        assert!(checksums_ok(&f));
        apply(&mut f, DpAction::SetTtl(1));
        assert!(checksums_ok(&f));
        assert_eq!(apply(&mut f, DpAction::DecTtl), EditOutcome::Drop);
        assert_eq!(extract(&f, 1).nw_ttl(), 1, "a dropped packet is not edited");
        // IPv6 hop limit and traffic class.
        let mut f = ipv6_frame(6, 0, &[], &tcp_header(1, 2, 0x10, 5));
        apply(&mut f, DpAction::DecTtl);
        apply(&mut f, DpAction::SetIpDscp(10));
        apply(&mut f, DpAction::SetIpEcn(3));
        let k = extract(&f, 1);
        assert_eq!((k.nw_ttl(), k.nw_tos()), (63, (10 << 2) | 3));
        assert_eq!(
            u32::from_be_bytes([f[14], f[15], f[16], f[17]]) & 0xf00f_ffff,
            0x6001_2345,
            "version and flow label kept"
        );
        assert!(checksums_ok(&f));
        // The flow label: version and traffic class kept, checksums untouched.
        assert_eq!(extract(&f, 1).ipv6_label(), 0x12345);
        assert_eq!(apply(&mut f, DpAction::SetIpv6Label(0xfedcb)), EditOutcome::Applied);
        let k = extract(&f, 1);
        assert_eq!((k.ipv6_label(), k.nw_tos(), k.nw_ttl()), (0xfedcb, (10 << 2) | 3, 63));
        assert_eq!(f[14] >> 4, 6);
        assert!(checksums_ok(&f));
        // Not IP: skipped.
        let mut a = arp_frame(1);
        let before = a.clone();
        assert_eq!(apply(&mut a, DpAction::SetIpv6Label(1)), EditOutcome::Skipped);
        let mut v4 = tcp4_frame(&TCP4);
        let before4 = v4.clone();
        assert_eq!(apply(&mut v4, DpAction::SetIpv6Label(1)), EditOutcome::Skipped);
        assert_eq!(v4, before4, "IPv4 has no flow label");
        assert_eq!(apply(&mut a, DpAction::DecTtl), EditOutcome::Skipped);
        assert_eq!(apply(&mut a, DpAction::SetIpv4Src(Ipv4Addr::new(1, 2, 3, 4))), EditOutcome::Skipped);
        assert_eq!(a, before);
    }

    #[test]
    fn ipv6_address_rewrite_fixes_tcp_udp_icmpv6() {
        let new_src: Ipv6Addr = "fd00::1234:5678".parse().unwrap();
        for l4 in [
            (6u8, tcp_header(1, 2, 0x18, 5)),
            (17, vec![0, 53, 0, 54, 0, 10, 0, 0, 0xab, 0xcd]),
            (58, vec![128, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3]),
        ] {
            let mut f = ipv6_frame(l4.0, 0, &[], &l4.1);
            assert!(checksums_ok(&f));
            assert_eq!(apply(&mut f, DpAction::SetIpv6Src(new_src)), EditOutcome::Applied);
            assert_eq!(apply(&mut f, DpAction::SetIpv6Dst(Ipv6Addr::LOCALHOST)), EditOutcome::Applied);
            let k = extract(&f, 1);
            assert_eq!((k.ipv6_src(), k.ipv6_dst()), (new_src, Ipv6Addr::LOCALHOST));
            assert!(checksums_ok(&f), "proto {}", l4.0);
        }
    }

    #[test]
    fn later_fragment_ports_are_not_touched() {
        let mut f = tcp4_frame(&TCP4);
        f[20] = 0;
        f[21] = 10; // offset 80 bytes
        fix_ipv4_total_len(&mut f, 14);
        let before = f.clone();
        assert_eq!(apply(&mut f, DpAction::SetTpDst(1)), EditOutcome::Skipped);
        assert_eq!(f, before);
        // The address rewrite still fixes the IPv4 header checksum.
        apply(&mut f, DpAction::SetIpv4Dst(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(ipv4_header_checksum_ok(&f[14..34]));
    }

    #[test]
    fn sctp_port_rewrite_recomputes_crc32c() {
        // CRC32c check value of "123456789" is 0xe3069283.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        let mut sctp = vec![0x0b, 0x59, 0x0b, 0x5a, 0, 0, 0, 1, 0, 0, 0, 0];
        sctp.extend_from_slice(&[1, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0x10, 0, 0, 1, 0, 1, 0, 0, 0, 1]);
        let mut f = ipv4_frame(132, &sctp);
        assert_eq!(apply(&mut f, DpAction::SetTpDst(9999)), EditOutcome::Applied);
        let l4 = 34;
        let stored = u32::from_le_bytes(f[l4 + 8..l4 + 12].try_into().unwrap());
        let mut g = f.clone();
        g[l4 + 8..l4 + 12].fill(0);
        assert_eq!(stored, crc32c(&g[l4..]));
        assert_eq!(extract(&f, 1).tp_dst(), 9999);
    }

    #[test]
    fn vlan_vid_pcp_push_pop() {
        let plain = tcp4_frame(&TCP4);
        let mut f = plain.clone();
        assert_eq!(apply(&mut f, DpAction::SetVlanVid(5)), EditOutcome::Skipped);
        assert_eq!(apply(&mut f, DpAction::PushVlan { tpid: 0x8100, tci: 0x1064 }), EditOutcome::NeedsResize);
        // Push: the PMD prepends 4 bytes, then calls push_vlan.
        let mut buf = vec![0u8; 4];
        buf.extend_from_slice(&plain);
        push_vlan(&mut buf, 0x8100, 0x1064 | 0xa000).unwrap();
        assert_eq!(buf, with_vlan(&plain, 0x8100, 0xa064));
        let k = extract(&buf, 1);
        assert_eq!((k.vlan_tci(0), k.tp_dst()), (0xa064 | VLAN_PRESENT, 80));
        assert_eq!(apply(&mut buf, DpAction::SetVlanVid(4095)), EditOutcome::Applied);
        assert_eq!(apply(&mut buf, DpAction::SetVlanPcp(1)), EditOutcome::Applied);
        assert_eq!(extract(&buf, 1).vlan_tci(0), 0x2fff | VLAN_PRESENT);
        // Pop: move the MACs, then the PMD drops the first 4 bytes.
        assert!(pop_vlan(&mut buf));
        assert_eq!(&buf[4..], &plain[..]);
        assert!(!pop_vlan(&mut f));
        assert_eq!(push_vlan(&mut [0u8; 15], 0x8100, 1), Err(VlanEditError::TooShort(15)));
        // L3 edits see through the tag.
        let mut t = with_vlan(&plain, 0x8100, 7);
        apply(&mut t, DpAction::SetIpv4Src(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(checksums_ok(&t));
        assert_eq!(extract(&t, 1).nw_src(), Ipv4Addr::new(1, 2, 3, 4));
    }

    #[test]
    fn eth_rewrites_and_short_frames() {
        let mut f = tcp4_frame(&TCP4);
        apply(&mut f, DpAction::SetEthSrc([2, 0, 0, 0, 0, 1]));
        apply(&mut f, DpAction::SetEthDst([2, 0, 0, 0, 0, 2]));
        assert_eq!(&f[..12], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        let mut short = vec![0u8; 13];
        for a in [
            DpAction::SetEthSrc([1; 6]),
            DpAction::SetIpv4Dst(Ipv4Addr::BROADCAST),
            DpAction::SetTpSrc(1),
            DpAction::DecTtl,
            DpAction::SetVlanPcp(3),
        ] {
            assert_eq!(execute_edit(&mut short, &a), EditOutcome::Skipped);
        }
        assert!(short.iter().all(|&b| b == 0));
        assert!(!pop_vlan(&mut short));
    }

    /// OVS rewrites a tag by pop + push of a TCI without DEI: VID and PCP rewrites clear
    /// the DEI/CFI bit (ofproto-dpif-xlate's commit_vlan_action pushes `tci & ~CFI`).
    #[test]
    fn vlan_rewrites_clear_dei() {
        let plain = tcp4_frame(&TCP4);
        for a in [DpAction::SetVlanVid(7), DpAction::SetVlanPcp(3)] {
            let mut f = with_vlan(&plain, 0x8100, 0xa000 | 0x1000 | 100); // PCP 5, DEI, VID 100
            assert_eq!(apply(&mut f, a), EditOutcome::Applied);
            let tci = u16::from_be_bytes([f[14], f[15]]);
            assert_eq!(tci & 0x1000, 0, "{a:?}: DEI cleared");
            let want = match a {
                DpAction::SetVlanVid(_) => 0xa000 | 7,
                _ => 0x6000 | 100,
            };
            assert_eq!(tci, want, "{a:?}");
        }
    }

    /// The L3 header is found behind any number of tags: after the translator pushed a
    /// tag the key still says IP, and the edit must apply (it used to be skipped with
    /// three tags, because the edit parser stopped at the key's tag limit).
    #[test]
    fn l3_edits_behind_many_tags() {
        let mut f = tcp4_frame(&TCP4);
        for n in 1..=4u16 {
            f = with_vlan(&f, 0x8100, n);
            let mut g = f.clone();
            assert_eq!(apply(&mut g, DpAction::SetIpDscp(46)), EditOutcome::Applied, "{n} tags");
            assert_eq!(apply(&mut g, DpAction::SetIpv4Dst(Ipv4Addr::new(1, 2, 3, 4))), EditOutcome::Applied);
            assert_eq!(apply(&mut g, DpAction::SetTpDst(8080)), EditOutcome::Applied);
            let l3 = 14 + 4 * n as usize;
            assert_eq!(g[l3 + 1] >> 2, 46);
            let mut untagged = g[..12].to_vec();
            untagged.extend_from_slice(&g[12 + 4 * n as usize..]);
            assert!(checksums_ok(&untagged), "{n} tags");
            assert_eq!(extract(&untagged, 1).tp_dst(), 8080);
        }
    }

    /// One's-complement sum of a TCP segment with its IPv4 pseudo-header (0xffff if the
    /// checksum verifies), whatever its data offset says.
    fn tcp4_sum(f: &[u8], l3: usize, end: usize) -> u16 {
        let ihl = (f[l3] & 0xf) as usize * 4;
        let src: [u8; 4] = f[l3 + 12..l3 + 16].try_into().unwrap();
        let dst: [u8; 4] = f[l3 + 16..l3 + 20].try_into().unwrap();
        let seg = &f[l3 + ihl..end];
        checksum::fold(checksum::sum_words(seg, checksum::ipv4_pseudo_sum(src, dst, 6, seg.len())))
    }

    /// OVS updates the TCP checksum on an address rewrite whenever 20 bytes of TCP are
    /// there (packet_set_ipv4_addr checks only `l4_size >= TCP_HEADER_LEN`), even when the
    /// data offset is below 5 or points past the end and the key has no ports.
    #[test]
    fn tcp_checksum_follows_address_rewrites_with_any_data_offset() {
        for doff in [0u8, 4, 15] {
            let mut f = tcp4_frame(&TCP4);
            let l4 = 34;
            f[l4 + 12] = (doff << 4) | (f[l4 + 12] & 0x0f);
            // Make the checksum valid for the changed header, as a sender would.
            f[l4 + 16..l4 + 18].fill(0);
            let c = !tcp4_sum(&f, 14, f.len());
            f[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
            assert_eq!(tcp4_sum(&f, 14, f.len()), 0xffff);
            assert_eq!(extract(&f, 1).tp_dst(), 0, "the key has no L4 with data offset {doff}");
            assert_eq!(apply(&mut f, DpAction::SetIpv4Src(Ipv4Addr::new(172, 16, 0, 9))), EditOutcome::Applied);
            assert_eq!(tcp4_sum(&f, 14, f.len()), 0xffff, "data offset {doff}");
            assert!(ipv4_header_checksum_ok(&f[14..34]));
            // Port rewrites need a parsed header (OVS: dp_packet_get_tcp_payload).
            let before = f.clone();
            assert_eq!(apply(&mut f, DpAction::SetTpDst(1)), EditOutcome::Skipped);
            assert_eq!(f, before);
        }
        // Fewer than 20 bytes of TCP: no checksum to update.
        let mut f = ipv4_frame(6, &[0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0, 0, 0, 0xaa, 0xbb]);
        let tail = f[34..].to_vec();
        apply(&mut f, DpAction::SetIpv4Src(Ipv4Addr::new(1, 1, 1, 1)));
        assert_eq!(&f[34..], &tail[..]);
    }

    /// ferrovs keeps this difference from OVS 3.1 (docs/OVS-DIFFERENCES.md): rewriting
    /// an address of a later IPv4 fragment does not touch its payload, where OVS
    /// "updates" bytes 16-17 of the payload as if they were a TCP checksum.
    #[test]
    fn later_fragment_payload_is_not_edited_as_a_checksum() {
        let mut f = tcp4_frame(&TCP4);
        f[20] = 0;
        f[21] = 10; // offset 80 bytes
        fix_ipv4_total_len(&mut f, 14);
        let payload = f[34..].to_vec();
        assert_eq!(apply(&mut f, DpAction::SetIpv4Src(Ipv4Addr::new(9, 9, 9, 9))), EditOutcome::Applied);
        assert_eq!(&f[34..], &payload[..]);
        assert!(ipv4_header_checksum_ok(&f[14..34]));
    }

    /// ferrovs keeps this difference from OVS 3.1 (docs/OVS-DIFFERENCES.md): IPv4 with
    /// protocol 0 is still IPv4, so address, TOS and TTL edits apply (OVS's
    /// commit_set_nw_action skips a flow whose nw_proto is 0).
    #[test]
    fn ipv4_protocol_zero_is_edited() {
        let mut f = ipv4_frame(0, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(apply(&mut f, DpAction::SetIpv4Dst(Ipv4Addr::new(5, 6, 7, 8))), EditOutcome::Applied);
        assert_eq!(apply(&mut f, DpAction::SetIpDscp(10)), EditOutcome::Applied);
        assert_eq!(apply(&mut f, DpAction::DecTtl), EditOutcome::Applied);
        let k = extract(&f, 1);
        assert_eq!((k.nw_dst(), k.nw_tos() >> 2, k.nw_ttl(), k.nw_proto()), (Ipv4Addr::new(5, 6, 7, 8), 10, 63, 0));
        assert!(ipv4_header_checksum_ok(&f[14..34]));
        assert_eq!(&f[34..], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    /// `mod_tp_src`/`mod_tp_dst` on ICMP and ICMPv6 write the type and code (low byte),
    /// with the checksum updated, as OVS 3.1 does.
    #[test]
    fn tp_rewrites_on_icmp_write_type_and_code() {
        let mut f = icmp4_frame(8, 0);
        assert_eq!(apply(&mut f, DpAction::SetTpSrc(0x0100)), EditOutcome::Applied);
        assert_eq!(apply(&mut f, DpAction::SetTpDst(3)), EditOutcome::Applied);
        assert_eq!(f, icmp4_frame(0, 3));
        assert!(checksums_ok(&f));
        let mut f = ipv6_frame(58, 0, &[], &[128, 0, 0, 0, 0, 1, 0, 1]);
        assert!(checksums_ok(&f));
        assert_eq!(apply(&mut f, DpAction::SetTpSrc(129)), EditOutcome::Applied);
        let k = extract(&f, 1);
        assert_eq!((k.tp_src(), k.tp_dst()), (129, 0));
        assert!(checksums_ok(&f));
    }

    /// With a routing header that has segments left, the L4 pseudo-header holds the final
    /// destination, so rewriting the IPv6 destination field leaves the L4 checksum as it
    /// is (OVS's packet_set_ipv6 does the same); a source rewrite still updates it.
    #[test]
    fn ipv6_dst_rewrite_behind_a_pending_routing_header_keeps_the_l4_checksum() {
        let tcp = tcp_header(1, 2, 0x10, 5);
        let routed = ipv6_frame_ext(&[ExtHdr::Opts(43, 2)], 6, &tcp);
        let segments_left_at = 14 + 40 + 3;
        assert!(routed[segments_left_at] > 0);
        let l4 = layers(&routed).l4.unwrap().1;
        let mut f = routed.clone();
        assert_eq!(apply(&mut f, DpAction::SetIpv6Dst(Ipv6Addr::LOCALHOST)), EditOutcome::Applied);
        assert_eq!(extract(&f, 1).ipv6_dst(), Ipv6Addr::LOCALHOST);
        assert_eq!(&f[l4..], &routed[l4..], "L4 untouched");
        let mut f = routed.clone();
        apply(&mut f, DpAction::SetIpv6Src("fd00::9".parse().unwrap()));
        assert!(checksums_ok(&f), "source rewrite updates the checksum");
        // No segments left: the destination field is the final destination.
        let mut f = routed.clone();
        f[segments_left_at] = 0;
        fill_l4_checksum(&mut f);
        apply(&mut f, DpAction::SetIpv6Dst(Ipv6Addr::LOCALHOST));
        assert!(checksums_ok(&f));
    }

    /// ferrovs keeps this difference from OVS 3.1 (docs/OVS-DIFFERENCES.md): an IPv6
    /// atomic fragment (offset 0, M=0) is a whole packet, so an address rewrite updates
    /// its L4 checksum. OVS's packet_rh_present counts only offset 0 *with* M=1 as a
    /// first fragment and leaves the checksum stale.
    #[test]
    fn ipv6_atomic_fragment_address_rewrite_keeps_the_l4_checksum_right() {
        let tcp = tcp_header(1, 2, 0x10, 5);
        let mut f = ipv6_frame_ext(&[ExtHdr::Frag { offset: 0, more: false }], 6, &tcp);
        assert!(checksums_ok(&f));
        assert_eq!(apply(&mut f, DpAction::SetIpv6Src("fd00::9".parse().unwrap())), EditOutcome::Applied);
        assert_eq!(apply(&mut f, DpAction::SetIpv6Dst(Ipv6Addr::LOCALHOST)), EditOutcome::Applied);
        assert!(checksums_ok(&f));
    }

    /// ferrovs keeps this difference from OVS 3.1 (docs/OVS-DIFFERENCES.md): a source
    /// rewrite behind a routing header with segments left updates the L4 checksum (the
    /// source is in the pseudo-header); OVS's packet_set_ipv6 skips it.
    #[test]
    fn ipv6_src_rewrite_behind_a_routing_header_updates_the_l4_checksum() {
        let mut f = ipv6_frame_ext(&[ExtHdr::Opts(43, 2)], 17, &[0, 53, 0, 54, 0, 10, 0, 0, 0xab, 0xcd]);
        assert!(checksums_ok(&f));
        apply(&mut f, DpAction::SetIpv6Src("fd00::9".parse().unwrap()));
        assert!(checksums_ok(&f));
    }
}
