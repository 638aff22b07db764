//! Flow key extraction: raw Ethernet frame bytes -> [`FlowKey`].
//!
//! # Algorithm
//!
//! One forward pass over the frame, one protocol layer at a time, in the manner of Open
//! vSwitch's `miniflow_extract()` (lib/flow.c). Every layer first checks that the bytes
//! it needs are present; if they are not, parsing stops and the fields of that layer and
//! every later layer stay zero. Nothing reads past the end of the frame, nothing
//! allocates, and no input can make it panic (the fuzz target and the "millions of
//! mutated frames" test in `tests/extract_random.rs` check that).
//!
//! Layer by layer (the rules below are OVS 3.1's, and tests pin each one):
//! - **Ethernet**: fewer than 14 bytes: only `in_port` is set. Then up to `vlan-limit`
//!   802.1Q / 802.1ad tags (OVS's default 1, at most 2: [`DEFAULT_VLAN_LIMIT`]); a tag is
//!   only taken if the 4 tag bytes *and* the following EtherType are present, otherwise
//!   `dl_type` stays the tag's TPID. A tag beyond the limit is not parsed (`dl_type` =
//!   its TPID, nothing behind it). A type/length below 0x600 is an 802.3 length: an LLC/SNAP
//!   header with OUI 0 yields its SNAP type, anything else `dl_type = 0x05ff`
//!   ([`DL_TYPE_NONE`]).
//! - **IPv4**: rejected (only L2 fields kept) if shorter than 20 bytes, if IHL < 5, if the
//!   header is longer than the frame, or if the total length is shorter than the header
//!   or longer than the frame. Bytes after the total length (Ethernet padding) are
//!   ignored by the L4 parse.
//! - **IPv6**: rejected if shorter than 40 bytes or if the payload length exceeds the
//!   frame. Hop-by-hop, routing, destination-options and AH extension headers are
//!   skipped; a fragment header with a non-zero offset/flags word sets `FRAG_ANY` (an
//!   atomic fragment, offset 0 and M=0, is no fragment: RFC 6946) and, with a non-zero
//!   offset, `FRAG_LATER`, `nw_proto = 44` and ends parsing. A truncated extension header keeps the addresses
//!   but leaves `nw_proto`, `nw_tos`, `ipv6_label`, `nw_ttl` and `nw_frag` zero, as OVS does.
//! - **ARP/RARP**: only Ethernet/IPv4 ARP (hrd 1, pro 0x0800, hln 6, pln 4) with all 28
//!   bytes present; an opcode above 255 leaves `nw_proto` zero.
//! - **MPLS** (0x8847, 0x8848): the first label stack entry, if its 4 bytes are there
//!   (OVS's `mpls_lse[0]`); nothing behind the label stack is parsed.
//! - **L4** (not for later fragments): TCP needs 20 bytes and a data offset of at least 5
//!   words that fits; UDP needs 8, SCTP 12, ICMP 8, ICMPv6 8. ICMP is only parsed in
//!   IPv4 and ICMPv6 only in IPv6.
//!
//! **Fast path.** Most frames a switch forwards have one shape: Ethernet, at most one
//! VLAN tag, IPv4 without options and not fragmented, a complete UDP or TCP header.
//! [`extract_common`] builds their key word by word (no per-field read-modify-write)
//! and declines every other frame, which then takes the general parse above
//! ([`extract_general`]); [`extract`] and [`extract_into`] try the fast path first.
//! For the frames it takes, the fast path must give exactly the general parse's key:
//! `fast_path_agrees_with_the_general_parse` checks that on mutated and truncated
//! frames, and `tests/extract_random.rs` checks [`extract`] against an independent
//! parser.
//!
//! **Frame windows.** For the untagged frames of that shape, [`frame_window`] gathers
//! the bytes their key is made of (and in_port) into four words without building the
//! key: equal windows mean equal keys and equal keys equal windows, so the EMC keeps a
//! table keyed by them, which the PMD probes before it extracts anything
//! (`frame_window_stands_for_the_key` checks the correspondence on mutated frames).
//!
//! Where OVS 3.1 and this code differ: nowhere on purpose. (OVS also keeps the second
//! and third MPLS label stack entries, ND fields, conntrack and tunnel metadata; the
//! ferrovs key has no such fields: the ND fields are read from the frame by the slow
//! path.)

use crate::actions::DpAction;
use crate::key::{FRAG_ANY, FRAG_LATER, FlowKey, VLAN_PRESENT, ethertype, hash_key_words, ipproto};
use ferrovs_config::MatchSlot;

/// `dl_type` of an 802.3 frame without a SNAP EtherType (OVS's `FLOW_DL_TYPE_NONE`).
pub const DL_TYPE_NONE: u16 = 0x05ff;
/// EtherType of reverse ARP, parsed like ARP.
pub const ETHERTYPE_RARP: u16 = ethertype::RARP;
/// Smallest value of the Ethernet type/length field that is a type.
pub const ETH_TYPE_MIN: u16 = 0x0600;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

#[inline(always)]
fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// The two bytes at `off` as they are in memory (compare with a constant's `to_be()`).
#[inline(always)]
fn ne16(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

#[inline(always)]
fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[inline(always)]
fn be48(b: &[u8], off: usize) -> u64 {
    let s = &b[off..off + 6];
    u64::from_be_bytes([0, 0, s[0], s[1], s[2], s[3], s[4], s[5]])
}

#[inline(always)]
fn be64(b: &[u8], off: usize) -> u64 {
    let s = &b[off..off + 8];
    u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
}

/// OVS's default `other_config:vlan-limit` (1): the key parses at most one VLAN tag, so
/// with two tags `dl_type` is the inner TPID and nothing behind it is parsed.
pub const DEFAULT_VLAN_LIMIT: usize = 1;
/// Tags the key can hold (OVS's `FLOW_MAX_VLAN_HEADERS`), the largest useful limit.
pub const MAX_VLAN_HEADERS: usize = 2;

/// The number of tags the key parses for a configured `vlan-limit`, as OVS's
/// `flow_limit_vlans()`: 0 means "as many as the key holds", larger values are capped.
pub const fn vlan_limit(configured: usize) -> usize {
    if configured == 0 || configured > MAX_VLAN_HEADERS { MAX_VLAN_HEADERS } else { configured }
}

/// Extracts the flow key of one frame received on `in_port`, with the default
/// `vlan-limit` ([`DEFAULT_VLAN_LIMIT`]).
///
/// Inlined into the caller (the PMD's per-burst loop), so the common shapes' key is
/// written where the caller keeps it; the general parse is a call.
#[inline(always)]
pub fn extract(frame: &[u8], in_port: u32) -> FlowKey {
    extract_with_vlan_limit(frame, in_port, DEFAULT_VLAN_LIMIT)
}

/// Extracts the flow key of one frame, parsing at most `vlan_limit(limit)` VLAN tags.
/// The limit is a per-switch setting (OVS: `other_config:vlan-limit`); a bridge option
/// would pass it here. Every cached key of a switch must use the same limit.
///
/// The common frame shapes take [`extract_common`]; every other frame the general parse.
#[inline(always)]
pub fn extract_with_vlan_limit(frame: &[u8], in_port: u32, limit: usize) -> FlowKey {
    match extract_common(frame, in_port) {
        Some(key) => key,
        None => extract_general(frame, in_port, limit),
    }
}

/// The key of a frame of the most common shape, built word by word with no per-field
/// read-modify-write, or `None` for any other frame. The shape: Ethernet, no VLAN tag
/// or one 802.1Q / 802.1ad tag (every `vlan-limit` parses one), IPv4 without options
/// whose total length fits in the frame and that is not a fragment, and a complete UDP
/// header or a complete TCP header (data offset 5..=15 words, within the IP packet).
/// For those frames the general parse takes exactly these fields and leaves every
/// other one zero; the tests check the two agree (`fast_path_agrees_with_the_general_parse`
/// and, through [`extract`], the mutated-frame differential test).
#[inline(always)]
pub fn extract_common(frame: &[u8], in_port: u32) -> Option<FlowKey> {
    let mut key = FlowKey::ZERO;
    extract_common_into(frame, in_port, &mut key).then_some(key)
}

/// [`extract`] into `key`: the common shapes write their words in place (a burst loop
/// keeps its keys in an array; building each key on the stack and copying it there
/// costs a copy of the cache line per packet).
#[inline(always)]
pub fn extract_into(frame: &[u8], in_port: u32, key: &mut FlowKey) {
    if !extract_common_into(frame, in_port, key) {
        *key = extract_general(frame, in_port, DEFAULT_VLAN_LIMIT);
    }
}

/// [`extract_into`] that also returns the key's [`FlowKey::hash`]: for the common shapes
/// the hash is taken from the words before they are stored (its two multiplies by the
/// words those shapes leave zero fold away, and no word is read back), which cost 14
/// instructions per packet less than hashing the stored key.
#[inline(always)]
pub fn extract_hashed_into(frame: &[u8], in_port: u32, key: &mut FlowKey) -> u32 {
    extract_step::<true>(frame, in_port, key).0
}

/// One step of a burst's walk: [`extract_into`], with `HASH` also the key's hash as
/// [`extract_hashed_into`] computes it (else 0), and whether the frame took the common
/// shape untagged: a frame that [`same_untagged_key`] can compare the next ones with.
#[inline(always)]
pub fn extract_step<const HASH: bool>(frame: &[u8], in_port: u32, key: &mut FlowKey) -> (u32, bool) {
    match extract_common_words(frame, in_port) {
        Some(w) => {
            key.w = w;
            // Untagged: no TCI in word 0 (a tag always sets VLAN_PRESENT there).
            (if HASH { hash_key_words(&w) } else { 0 }, w[0] >> 48 == 0)
        }
        None => {
            *key = extract_general(frame, in_port, DEFAULT_VLAN_LIMIT);
            (if HASH { key.hash() } else { 0 }, false)
        }
    }
}

/// Whether `frame` has the key of `prev`, a frame that took the common shape untagged
/// ([`extract_step`] said so) received on the same port, decided from the bytes
/// without extracting: for the packets of one flow in a burst (a train), whose IPv4
/// identification, checksum, lengths and TCP sequence numbers differ from packet to
/// packet, but not their key.
///
/// For such a `prev`, [`extract`] reads exactly these bytes: the Ethernet header (0..14),
/// IPv4 bytes 14 (version and IHL: 0x45), 15 (TOS), 16..18 (total length: only checked,
/// not in the key), 20..22 (fragment bits: checked), 22 (TTL), 23 (protocol), 26..34
/// (addresses), the ports (34..38) and for TCP 46..48 (data offset: checked; flags).
/// `frame` has the same key if all of them but the total length are equal to `prev`'s
/// (so the same checks pass on them) and its total length passes the checks of
/// `prev`'s protocol: within the frame, and covering the UDP header or the TCP header
/// of that data offset. Otherwise false (its key may still be equal). The tests check
/// it against [`extract`] on mutated frames (`same_untagged_key_agrees_with_the_keys`).
#[inline(always)]
pub fn same_untagged_key(prev: &[u8], frame: &[u8]) -> bool {
    let (Some(a), Some(b)) = (prev.get(..38), frame.get(..38)) else { return false };
    let (a, b): (&[u8; 38], &[u8; 38]) = match (a.try_into(), b.try_into()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return false,
    };
    let ne64 = |f: &[u8; 38], at: usize| {
        u64::from_ne_bytes([f[at], f[at + 1], f[at + 2], f[at + 3], f[at + 4], f[at + 5], f[at + 6], f[at + 7]])
    };
    let ne32 = |f: &[u8; 38], at: usize| u32::from_ne_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]]);
    // The destination address and the ports first: where two flows differ most often.
    if ne64(a, 30) != ne64(b, 30)
        || ne64(a, 0) != ne64(b, 0)
        || ne64(a, 8) != ne64(b, 8)
        || ne32(a, 20) != ne32(b, 20)
        || ne32(a, 26) != ne32(b, 26)
    {
        return false;
    }
    let total_len = be16(b, 16) as usize;
    if 14 + total_len > frame.len() {
        return false;
    }
    match b[23] {
        ipproto::UDP => total_len >= 28,
        ipproto::TCP => match (prev.get(46..48), frame.get(46..48)) {
            (Some(x), Some(y)) if x == y => {
                let data_offset = ((y[0] >> 4) as usize) * 4;
                data_offset >= 20 && total_len >= 20 + data_offset
            }
            _ => false,
        },
        _ => false,
    }
}

/// The bytes a key is made of, for a frame of the untagged common shape, with the port
/// it came in on: see [`frame_window`].
pub type FrameWindow = [u64; 4];

/// The four words of [`FrameWindow`] for `frame` received on `in_port`, if the frame is
/// of the untagged common shape ([`extract`] builds its key without the general parse:
/// Ethernet, no VLAN tag, IPv4 without options, not a fragment, a complete UDP header or
/// TCP header within the IP packet, whose total length fits in the frame) and at least 48
/// bytes long; with the key's word [`crate::key::TCP_FLAGS_WORD`] as far as the TCP flags
/// go (their bits; the ports are left out). `None` for every other frame (its key may
/// still be one a window stands for).
///
/// For the frames it takes, the window holds every byte of the frame their key is made
/// of, and `in_port`, and nothing else that varies: two frames with equal windows have
/// equal keys, and two frames with equal keys equal windows, so that an exact-match
/// cache keyed on the window (the EMC's frame table, `crate::emc`) answers a frame
/// without its key being extracted. Little-endian loads of the frame, the words being
/// (byte offsets in the frame):
///
/// ```text
///  0  bytes 0..8: destination MAC, the source MAC's first two bytes
///  1  bytes 8..12: the source MAC's last four (bits 31..0); in_port (47..32); TOS (63..56)
///  2  TTL (7..0), protocol (15..8), TCP flags as the key has them (27..16, 0 for UDP),
///     source address (63..32)
///  3  bytes 30..38: destination address, source and destination ports
/// ```
///
/// Word 1's bits 55..32 are the EtherType and the version/IHL byte (0x0800, 0x45) in the
/// frame: the shape fixes them, so they are XORed away and `in_port` takes their place;
/// word 2's bits 31..16, the IPv4 checksum, are not in the key and carry the TCP flags.
/// The IPv4 identification, total length, checksum, DF bit, TCP sequence numbers, data
/// offset and the payload are not in the window (the total length and the data offset
/// are checked for each frame). The tests check the two directions above against
/// [`extract`] on mutated frames (`frame_window_stands_for_the_key`).
#[inline(always)]
pub fn frame_window(frame: &[u8], in_port: u32) -> Option<(FrameWindow, u64)> {
    let f: &[u8; 48] = frame.get(..48)?.try_into().ok()?;
    let le64 = |at: usize| {
        u64::from_le_bytes([f[at], f[at + 1], f[at + 2], f[at + 3], f[at + 4], f[at + 5], f[at + 6], f[at + 7]])
    };
    // EtherType IPv4 and version 4, IHL 5 in bits 55..32 (bytes 12, 13, 14).
    const SHAPE: u64 = 0x0045_0008 << 32;
    let w1 = le64(8) ^ SHAPE;
    if w1 & 0x00ff_ffff << 32 != 0 || ne16(f, 20) & 0x3fffu16.to_be() != 0 {
        return None;
    }
    let total_len = be16(f, 16) as usize;
    if 14 + total_len > frame.len() {
        return None;
    }
    let flags = match f[23] {
        ipproto::UDP if total_len >= 20 + 8 => 0,
        ipproto::TCP => {
            let data_offset = ((f[46] >> 4) as usize) * 4;
            if data_offset < 20 || total_len < 20 + data_offset {
                return None;
            }
            (be16(f, 46) & 0x0fff) as u64
        }
        _ => return None,
    };
    let w = [le64(0), w1 | ((in_port & 0xffff) as u64) << 32, le64(22) & 0xffff_ffff_0000_ffff | flags << 16, le64(30)];
    Some((w, flags << 52))
}

/// The flags word [`frame_window`] returns with `w`, from `w` (the TCP flags are bits
/// 27..16 of its word 2).
#[inline(always)]
pub fn window_flags_word(w: &FrameWindow) -> u64 {
    (w[2] << 36) & 0xfff << 52
}

/// [`extract_common`] into `key`: overwrites every word of `key` and returns true for
/// a frame of the common shape; leaves `key` untouched and returns false otherwise.
#[inline(always)]
fn extract_common_into(frame: &[u8], in_port: u32, key: &mut FlowKey) -> bool {
    extract_common_words(frame, in_port).map(|w| key.w = w).is_some()
}

#[inline(always)]
fn extract_common_words(frame: &[u8], in_port: u32) -> Option<[u64; 8]> {
    let eth: &[u8; 14] = frame.get(..14)?.try_into().ok()?;
    // The MACs from two 8-byte loads: bytes 0..8 are the destination and the source's
    // first two bytes, bytes 8..12 the source's last four. (With the destination as
    // the top 48 bits of the first load alone, the compiler narrows that load to three
    // loads of 4, 1 and 1 bytes and reassembles them.)
    let head = be64(eth, 0);
    let dl_dst = head >> 16;
    let dl_src = (head & 0xffff) << 32 | be32(eth, 8) as u64;
    // Untagged IPv4 first, as the EtherType's bytes as they are in the frame (no swap,
    // no VLAN compares on the way).
    if ne16(eth, 12) == ethertype::IPV4.to_be() {
        return ipv4_words(frame, 14, 0, in_port, dl_dst, dl_src);
    }
    let dl_type = be16(eth, 12);
    if dl_type != ethertype::VLAN && dl_type != ethertype::QINQ {
        return None;
    }
    let tag: &[u8; 4] = frame.get(14..18)?.try_into().ok()?;
    if ne16(tag, 2) != ethertype::IPV4.to_be() {
        return None;
    }
    let tci = (be16(tag, 0) | VLAN_PRESENT) as u64;
    ipv4_words(frame, 18, tci, in_port, dl_dst, dl_src)
}

/// The key words of a frame of the common shape whose IPv4 header is at `off` (14, or
/// 18 behind a tag: inlined with each constant, so every offset below is one), or
/// `None`. Every frame of the shape has the 20-byte IPv4 header and 8 bytes behind it
/// (a UDP header, or the start of a TCP header): one bounds check covers them, and a
/// shorter frame could not have been of the shape.
#[inline(always)]
fn ipv4_words(frame: &[u8], off: usize, tci: u64, in_port: u32, dl_dst: u64, dl_src: u64) -> Option<[u64; 8]> {
    let ip: &[u8; 28] = frame.get(off..off + 28)?.try_into().ok()?;
    // Version 4 and IHL 5 (the general parse does not look at the version: a frame
    // with another one takes it), no fragment (MF clear, offset 0).
    if ip[0] != 0x45 || ne16(ip, 6) & 0x3fffu16.to_be() != 0 {
        return None;
    }
    // The whole packet in the frame, and (below, by protocol) long enough for its L4
    // header: the general parse takes the L4 header from the IP packet's payload.
    let total_len = be16(ip, 2) as usize;
    if off + total_len > frame.len() {
        return None;
    }
    let proto = ip[9];
    let (ports, flags) = match proto {
        ipproto::UDP if total_len >= 20 + 8 => (be32(ip, 20), 0u64),
        ipproto::TCP if total_len >= 20 + 20 => {
            let tcp: &[u8; 20] = frame.get(off + 20..off + 40)?.try_into().ok()?;
            let data_offset = ((tcp[12] >> 4) as usize) * 4;
            if data_offset < 20 || total_len - 20 < data_offset {
                return None;
            }
            (be32(tcp, 0), (be16(tcp, 12) & 0x0fff) as u64)
        }
        _ => return None,
    };
    // Word layout: see the key module's table.
    Some([
        tci << 48 | (ethertype::IPV4 as u64) << 32 | (ip[8] as u64) << 24 | (in_port & 0xffff) as u64,
        dl_dst,
        (proto as u64) << 56 | (ip[1] as u64) << 48 | dl_src,
        // tp_src in bits 15..0, tp_dst in 31..16 (the big-endian pair rotated by 16),
        // the flags in 63..52.
        flags << 52 | ports.rotate_left(16) as u64,
        0,
        be32(ip, 12) as u64,
        0,
        be32(ip, 16) as u64,
    ])
}

/// The TCP flags [`extract`] puts in a frame's key (0 for any frame that is not TCP),
/// without building the key: for a lookup that needs no other field (a megaflow of
/// mask `in_port` answers every packet of the port; its statistics still OR the flags
/// of every packet, as OVS's do). An untagged IPv4 frame whose protocol byte is not
/// TCP's answers 0 from two reads (the key's `nw_proto` is that byte or, for a header
/// that fails the parse's checks, 0: either way not TCP, so no flags); any other frame
/// takes the whole extraction. The tests check it against [`extract`] on mutated and
/// truncated frames (`tcp_flags_agrees_with_the_key`).
#[inline(always)]
pub fn tcp_flags(frame: &[u8]) -> u16 {
    if let Some(head) = frame.get(..24)
        && ne16(head, 12) == ethertype::IPV4.to_be()
        && head[23] != ipproto::TCP
    {
        return 0;
    }
    tcp_flags_by_key(frame)
}

/// [`tcp_flags`] of a frame of another shape: through the key (in_port does not matter).
#[cold]
#[inline(never)]
fn tcp_flags_by_key(frame: &[u8]) -> u16 {
    extract(frame, 0).tcp_flags()
}

/// [`extract_with_vlan_limit`] through the general parse only (any frame).
#[inline(never)]
pub fn extract_general(frame: &[u8], in_port: u32, limit: usize) -> FlowKey {
    let mut key = FlowKey::ZERO;
    key.set_in_port(in_port);
    let mut layers = Layers::default();
    parse_with_layers(frame, &mut key, &mut layers, vlan_limit(limit));
    key
}

/// Where the layers of a frame start, for code that edits frames (see `edit`).
///
/// Unlike the key, which stops at the `vlan-limit`, [`layers`] walks through every VLAN
/// tag, so the L3 header is found behind any number of them. That is what edits need:
/// the translator emits an L3/L4 edit only where the *key* says the header is, and the
/// key may have been rewritten since extraction (a `push_vlan` before `mod_nw_tos` puts
/// the IP header behind one more tag than the key's parse saw). Where the key says the
/// header is absent (more tags than the limit), no such edit is emitted at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layers {
    /// Offset of the outer VLAN tag's TPID, if the frame has a tag that was parsed.
    pub vlan: Option<usize>,
    /// Number of VLAN tags in front of `dl_type`.
    pub n_tags: usize,
    /// EtherType after the VLAN tags.
    pub dl_type: u16,
    /// Offset of the L3 header, if it passed the checks above (IPv4, IPv6, ARP).
    pub l3: Option<usize>,
    /// Offset of the first MPLS label stack entry, if its 4 bytes are there.
    pub mpls: Option<usize>,
    /// IP protocol as the key has it (for an IPv6 later fragment, 44).
    pub ip_proto: u8,
    /// Offset just past the IP header and the IPv6 extension headers, when `l3` is IP:
    /// OVS's `l4_ofs`, set even when no L4 header could be parsed.
    pub l4_start: Option<usize>,
    /// The IP packet is a later fragment (it carries no L4 header).
    pub later_fragment: bool,
    /// IP protocol of the L4 header, and its offset, if the L4 header passed the checks.
    pub l4: Option<(u8, usize)>,
    /// End of the IP packet (start of Ethernet padding) when `l3` is IP.
    pub l3_end: usize,
}

/// Finds the layer offsets of a frame with the same rules as [`extract`], except that
/// every VLAN tag is skipped (see [`Layers`]).
pub fn layers(frame: &[u8]) -> Layers {
    let mut key = FlowKey::ZERO;
    let mut layers = Layers::default();
    parse_with_layers(frame, &mut key, &mut layers, usize::MAX);
    layers
}

#[inline(always)]
fn parse_with_layers(frame: &[u8], key: &mut FlowKey, layers: &mut Layers, vlan_limit: usize) {
    if frame.len() < 14 {
        return;
    }
    key.set_dl_dst_u64(be48(frame, 0));
    key.set_dl_src_u64(be48(frame, 6));

    // `off` is the offset of the current type/length field.
    let mut off = 12;
    let mut dl_type = be16(frame, off);
    let mut n_tags = 0;
    while (dl_type == ethertype::VLAN || dl_type == ethertype::QINQ) && n_tags < vlan_limit {
        // The tag is only taken with its TCI and the next type field present.
        if frame.len() < off + 6 {
            break;
        }
        if n_tags == 0 {
            layers.vlan = Some(off);
        }
        if n_tags < MAX_VLAN_HEADERS {
            key.set_vlan_tci(n_tags, be16(frame, off + 2) | VLAN_PRESENT);
        }
        n_tags += 1;
        off += 4;
        dl_type = be16(frame, off);
    }
    layers.n_tags = n_tags;
    off += 2;
    if dl_type < ETH_TYPE_MIN {
        // 802.3 length field: look for LLC/SNAP (DSAP AA, SSAP AA, control 03, OUI 0).
        dl_type = DL_TYPE_NONE;
        if frame.len() >= off + 8
            && frame[off] == 0xaa
            && frame[off + 1] == 0xaa
            && frame[off + 2] == 0x03
            && frame[off + 3..off + 6] == [0, 0, 0]
        {
            let snap_type = be16(frame, off + 6);
            if snap_type >= ETH_TYPE_MIN {
                dl_type = snap_type;
                off += 8;
            }
        }
    }
    key.set_dl_type(dl_type);
    layers.dl_type = dl_type;

    let l3 = &frame[off..];
    let ip = match dl_type {
        ethertype::IPV4 => parse_ipv4(l3, key).map(|r| (r, false)),
        ethertype::IPV6 => parse_ipv6(l3, key).map(|r| (r, true)),
        ethertype::ARP | ETHERTYPE_RARP => {
            if parse_arp(l3, key) {
                layers.l3 = Some(off);
                layers.l3_end = off + 28;
            }
            None
        }
        ethertype::MPLS | ethertype::MPLS_MCAST => {
            if let Some(lse) = l3.first_chunk::<4>() {
                key.set_mpls_lse(u32::from_be_bytes(*lse));
                layers.mpls = Some(off);
            }
            None
        }
        _ => None,
    };
    if let Some(((l4, len), is_ipv6)) = ip {
        let l4_off = off + l4;
        layers.l3 = Some(off);
        layers.l3_end = off + len;
        layers.l4_start = Some(l4_off);
        layers.ip_proto = key.nw_proto();
        layers.later_fragment = key.nw_frag() & FRAG_LATER != 0;
        if !layers.later_fragment && parse_l4(&frame[l4_off..off + len], key, is_ipv6) {
            layers.l4 = Some((key.nw_proto(), l4_off));
        }
    }
}

/// Parses an IPv4 header. Returns the L4 offset and the IP total length, both relative
/// to `p`, or `None` (and touches no key field) if the header fails the sanity checks.
#[inline(always)]
fn parse_ipv4(p: &[u8], key: &mut FlowKey) -> Option<(usize, usize)> {
    if p.len() < 20 {
        return None;
    }
    let ihl = ((p[0] & 0x0f) as usize) * 4;
    if ihl < 20 || p.len() < ihl {
        return None;
    }
    let total_len = be16(p, 2) as usize;
    if total_len > p.len() || ihl > total_len {
        return None;
    }
    key.set_nw_src_u32(be32(p, 12));
    key.set_nw_dst_u32(be32(p, 16));
    let frag_off = be16(p, 6);
    let mut frag = 0;
    // MF set or a non-zero offset: a fragment.
    if frag_off & 0x3fff != 0 {
        frag = FRAG_ANY;
        if frag_off & 0x1fff != 0 {
            frag |= FRAG_LATER;
        }
    }
    key.set_nw_frag(frag);
    key.set_nw_tos(p[1]);
    key.set_nw_ttl(p[8]);
    key.set_nw_proto(p[9]);
    Some((ihl, total_len))
}

/// Parses an IPv6 header and its extension headers. Returns the L4 offset and the end of
/// the IPv6 payload relative to `p`, or `None` if the packet is rejected.
#[inline(always)]
fn parse_ipv6(p: &[u8], key: &mut FlowKey) -> Option<(usize, usize)> {
    if p.len() < 40 {
        return None;
    }
    let payload_len = be16(p, 4) as usize;
    if payload_len > p.len() - 40 {
        return None;
    }
    let end = 40 + payload_len;
    key.w[4] = be64(p, 8);
    key.w[5] = be64(p, 16);
    key.w[6] = be64(p, 24);
    key.w[7] = be64(p, 32);

    let tc_flow = be32(p, 0);
    let tos = ((tc_flow >> 20) & 0xff) as u8;
    let ttl = p[7];
    let mut next = p[6];
    let mut frag = 0;
    let mut off = 40;
    loop {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH => {
                if end - off < 8 {
                    return None;
                }
                let len =
                    if next == IPPROTO_AH { (p[off + 1] as usize + 2) * 4 } else { (p[off + 1] as usize + 1) * 8 };
                if end - off < len {
                    return None;
                }
                next = p[off];
                off += len;
            }
            IPPROTO_FRAGMENT => {
                if end - off < 8 {
                    return None;
                }
                next = p[off];
                let offset_flags = be16(p, off + 2);
                off += 8;
                // An atomic fragment (offset 0, M=0) is no fragment (RFC 6946).
                if offset_flags != 0 {
                    frag = FRAG_ANY;
                    if offset_flags & 0xfff8 != 0 {
                        // As OVS: a later fragment's protocol reads as "fragment".
                        frag |= FRAG_LATER;
                        next = IPPROTO_FRAGMENT;
                        break;
                    }
                }
            }
            _ => break,
        }
    }
    key.set_nw_tos(tos);
    key.set_ipv6_label(tc_flow & 0xfffff);
    key.set_nw_ttl(ttl);
    key.set_nw_proto(next);
    key.set_nw_frag(frag);
    Some((off, end))
}

/// Parses Ethernet/IPv4 ARP. Returns true if the fields were taken.
#[inline(always)]
fn parse_arp(p: &[u8], key: &mut FlowKey) -> bool {
    if p.len() < 28 || be16(p, 0) != 1 || be16(p, 2) != ethertype::IPV4 || p[4] != 6 || p[5] != 4 {
        return false;
    }
    let op = be16(p, 6);
    if op <= 0xff {
        key.set_nw_proto(op as u8);
    }
    key.set_arp_sha_u64(be48(p, 8));
    key.set_nw_src_u32(be32(p, 14));
    key.set_arp_tha_u64(be48(p, 18));
    key.set_nw_dst_u32(be32(p, 24));
    true
}

/// The IPv6 neighbour-discovery fields of a frame, as OVS's `struct flow` holds them
/// (`nd_target`, `nd_sll` in `arp_sha`, `nd_tll` in `arp_tha`); all zero for any other
/// frame. They are not part of the [`FlowKey`] (no room: see docs/OVS-DIFFERENCES.md);
/// this parse is for the slow path, which sees the frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NdFields {
    pub target: [u8; 16],
    pub sll: [u8; 6],
    pub tll: [u8; 6],
    /// `nd_reserved`: the 32 bits after the ICMPv6 header (OVS's `igmp_group_ip4`).
    pub reserved: u32,
    /// `nd_options_type`: the type of the first source or target link-layer option the
    /// walk takes (OVS keeps it in `tcp_flags`); 0 if none.
    pub options_type: u8,
}

impl NdFields {
    /// The value of the neighbour-discovery slot `slot` (as a value of the slot: an
    /// address's big-endian bytes); 0 for any other slot.
    pub fn get(&self, slot: MatchSlot) -> u128 {
        match slot {
            MatchSlot::NdTarget => u128::from_be_bytes(self.target),
            MatchSlot::NdSll => u128::from(crate::key::mac_to_u64(self.sll)),
            MatchSlot::NdTll => u128::from(crate::key::mac_to_u64(self.tll)),
            MatchSlot::NdReserved => u128::from(self.reserved),
            MatchSlot::NdOptionsType => u128::from(self.options_type),
            _ => 0,
        }
    }

    /// Writes `value` into the neighbour-discovery slot `slot` (nothing for another).
    pub fn put(&mut self, slot: MatchSlot, value: u128) {
        let mac = |v: u128| crate::key::mac_from_u64(v as u64);
        match slot {
            MatchSlot::NdTarget => self.target = value.to_be_bytes(),
            MatchSlot::NdSll => self.sll = mac(value),
            MatchSlot::NdTll => self.tll = mac(value),
            MatchSlot::NdReserved => self.reserved = value as u32,
            MatchSlot::NdOptionsType => self.options_type = value as u8,
            _ => {}
        }
    }

    /// The datapath actions that make a packet whose ND fields are `base` (as the
    /// datapath has them) carry these ones, in the order OVS commits them
    /// (`commit_set_nw_action`: the `nd_ext` fields, then target, SLL, TLL), each only if
    /// it differs, as OVS's commit compares the flow with its base flow.
    pub fn commit_from(&self, base: &NdFields) -> impl Iterator<Item = DpAction> + use<> {
        [
            (self.reserved != base.reserved).then_some(DpAction::SetNdReserved(self.reserved)),
            (self.options_type != base.options_type).then_some(DpAction::SetNdOptionsType(self.options_type)),
            (self.target != base.target).then_some(DpAction::SetNdTarget(self.target.into())),
            (self.sll != base.sll).then_some(DpAction::SetNdSll(self.sll)),
            (self.tll != base.tll).then_some(DpAction::SetNdTll(self.tll)),
        ]
        .into_iter()
        .flatten()
    }
}

/// ND option types that carry a link-layer address (RFC 4861).
const ND_OPT_SOURCE_LINKADDR: u8 = 1;
const ND_OPT_TARGET_LINKADDR: u8 = 2;

/// [`NdFields`] of `frame` with the default `vlan-limit`, by OVS 3.1's rules
/// (`parse_icmpv6` in lib/flow.c), over the headers [`extract`] finds:
/// - only an ICMPv6 neighbour solicitation (135) or advertisement (136) with code 0;
/// - `reserved` is the 4 bytes after the type, code and checksum;
/// - the target is the 16 bytes after the 8-byte ICMPv6 header; if they are not all
///   there, every other field stays zero;
/// - then options, each `len * 8` bytes: a length of 0 or one past the end of the
///   packet ends the walk (what was found so far stays); a source (type 1) or target
///   (type 2) link-layer option of exactly 8 bytes gives `sll` / `tll` whatever the
///   message type, and the first of them its type to `options_type`; the same one twice
///   (the first not all zero) makes the target and both addresses zero (`reserved` and
///   `options_type` stay).
pub fn nd_fields(frame: &[u8]) -> NdFields {
    let mut key = FlowKey::ZERO;
    let mut l = Layers::default();
    parse_with_layers(frame, &mut key, &mut l, vlan_limit(DEFAULT_VLAN_LIMIT));
    let Some((ipproto::ICMPV6, l4)) = l.l4 else { return NdFields::default() };
    if key.dl_type() != ethertype::IPV6 {
        return NdFields::default();
    }
    let icmp = &frame[l4..l.l3_end];
    // `l4` is set for ICMPv6 only with its 8-byte header present.
    if icmp[1] != 0 || !matches!(icmp[0], 135 | 136) {
        return NdFields::default();
    }
    let mut nd = NdFields { reserved: u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]), ..NdFields::default() };
    if icmp.len() < 24 {
        return nd;
    }
    nd.target.copy_from_slice(&icmp[8..24]);
    let mut opts = &icmp[24..];
    while opts.len() >= 8 {
        let len = opts[1] as usize * 8;
        if len == 0 || len > opts.len() {
            break;
        }
        let slot = match opts[0] {
            ND_OPT_SOURCE_LINKADDR if len == 8 => Some(&mut nd.sll),
            ND_OPT_TARGET_LINKADDR if len == 8 => Some(&mut nd.tll),
            _ => None,
        };
        if let Some(slot) = slot {
            // "Twice" as OVS sees it: the address already taken is not all zero.
            if *slot != [0; 6] {
                return NdFields { reserved: nd.reserved, options_type: nd.options_type, ..NdFields::default() };
            }
            slot.copy_from_slice(&opts[2..8]);
            if nd.options_type == 0 {
                nd.options_type = opts[0];
            }
        }
        opts = &opts[len..];
    }
    nd
}

/// Parses the L4 header `l4` (which ends where the IP packet ends). Returns true if a
/// header of the key's `nw_proto` was taken.
#[inline(always)]
fn parse_l4(l4: &[u8], key: &mut FlowKey, is_ipv6: bool) -> bool {
    match key.nw_proto() {
        ipproto::TCP if l4.len() >= 20 => {
            let data_offset = ((l4[12] >> 4) as usize) * 4;
            if data_offset >= 20 && l4.len() >= data_offset {
                key.set_tp_src(be16(l4, 0));
                key.set_tp_dst(be16(l4, 2));
                key.set_tcp_flags(be16(l4, 12) & 0x0fff);
                return true;
            }
        }
        ipproto::UDP if l4.len() >= 8 => {
            key.set_tp_src(be16(l4, 0));
            key.set_tp_dst(be16(l4, 2));
            return true;
        }
        ipproto::SCTP if l4.len() >= 12 => {
            key.set_tp_src(be16(l4, 0));
            key.set_tp_dst(be16(l4, 2));
            return true;
        }
        ipproto::ICMP if !is_ipv6 && l4.len() >= 8 => {
            key.set_tp_src(l4[0] as u16);
            key.set_tp_dst(l4[1] as u16);
            return true;
        }
        ipproto::ICMPV6 if is_ipv6 && l4.len() >= 8 => {
            key.set_tp_src(l4[0] as u16);
            key.set_tp_dst(l4[1] as u16);
            return true;
        }
        _ => {}
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The fast path of the common shapes against the general parse: on frames of those
    /// shapes (which it must take) and on random mutations and truncations of them
    /// (which it must either decline or get exactly right), with both VLAN limits.
    #[test]
    fn tcp_flags_agrees_with_the_key() {
        let frames = [
            tcp4_frame(&TCP4),
            tcp4_frame(&Tcp4 { flags: 0xff, ..TCP4 }),
            udp4_frame(5353, 53, &[0xde, 0xad]),
            tcp4_frame_with_options(&TCP4, &[1, 1, 1, 1]),
            icmp4_frame(8, 0),
            arp_frame(1),
            ipv6_frame(6, 0, &[], &tcp_header(1, 2, 0x12, 5)),
            ipv6_frame(17, 0, &[], &udp_segment(1, 2, b"")),
            with_vlan(&tcp4_frame(&TCP4), 0x8100, 0x2005),
            with_vlan(&udp4_frame(7, 9, b"x"), 0x88a8, 0xffff),
        ];
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(tcp_flags(f), extract(f, 1).tcp_flags(), "frame {i}");
        }
        assert_ne!(tcp_flags(&frames[0]), 0, "a TCP frame's flags");
        let mut rng = SplitMix(13);
        let (mut zero_fast, mut tcp) = (0, 0);
        for _ in 0..200_000 {
            let mut f = frames[rng.index(frames.len())].clone();
            for _ in 0..rng.below(4) {
                let at = rng.index(f.len().min(60));
                f[at] = if rng.chance(50) { rng.next_u64() as u8 } else { f[at] ^ (1 << rng.below(8)) };
            }
            if rng.chance(30) {
                f.truncate(rng.index(f.len() + 1));
            }
            let want = extract(&f, 1).tcp_flags();
            assert_eq!(tcp_flags(&f), want, "frame {f:02x?}");
            zero_fast += (f.len() >= 24 && f[12..14] == [8, 0] && f[23] != 6) as u32;
            tcp += (want != 0) as u32;
        }
        assert!(zero_fast > 20_000 && tcp > 20_000, "shapes: {zero_fast} answered at once, {tcp} with flags");
    }

    /// A TCP/IPv4 frame whose TCP header has 12 bytes of options (data offset 8 words).
    fn tcp4_frame_with_data_offset_8() -> Vec<u8> {
        let mut f = eth_header(DST_MAC, SRC_MAC, 0x0800);
        let tcp = tcp_header(1, 2, 0x12, 8);
        let ip = Ipv4Hdr::new([10, 0, 0, 1], [10, 0, 0, 2], 6);
        f.extend(ipv4_header(&ip, &[], tcp.len()));
        f.extend(tcp);
        f
    }

    /// Changes up to three of the first `within` bytes of `f` (a random byte or one flipped
    /// bit), sometimes its IPv4 total length (within the frame or not), and sometimes cuts
    /// or extends it: frames near a common shape, of it or not.
    fn mutate_frame(rng: &mut SplitMix, f: &mut Vec<u8>, within: usize) {
        for _ in 0..rng.below(4) {
            let at = rng.index(f.len().min(within));
            f[at] = if rng.chance(50) { rng.next_u64() as u8 } else { f[at] ^ (1 << rng.below(8)) };
        }
        if rng.chance(20) {
            let len = (rng.below(f.len() as u64 + 8) as u16).to_be_bytes();
            f[16..18].copy_from_slice(&len);
        }
        if rng.chance(20) {
            f.truncate(rng.index(f.len() + 1));
        } else if rng.chance(20) {
            f.extend(std::iter::repeat_n(0xa5, rng.index(30)));
        }
    }

    /// The train test on frame bytes against the keys: whenever it says a frame has the
    /// key of an untagged common-shape frame before it, the extracted keys are equal; on
    /// mutated, truncated and extended copies (key bytes and others), and it must say so
    /// for most copies that differ only in bytes outside the key.
    #[test]
    fn same_untagged_key_agrees_with_the_keys() {
        let tcp_opts = tcp4_frame_with_data_offset_8();
        let bases = [
            tcp4_frame(&TCP4),
            tcp4_frame(&Tcp4 { flags: 0x10, ..TCP4 }),
            udp4_frame(5353, 53, &[0xde, 0xad]),
            pad_to(udp4_frame(1, 2, &[]), 60),
            tcp_opts,
            with_vlan(&tcp4_frame(&TCP4), 0x8100, 0x2005),
            icmp4_frame(8, 0),
        ];
        // Bytes no key reads: IPv4 identification and checksum, TCP sequence and
        // acknowledgement numbers, window, checksum, the payload.
        let outside_key = [18, 19, 24, 25, 38, 39, 40, 41, 42, 43, 44, 45, 48, 49, 50, 51, 52, 53];
        let mut rng = SplitMix(14);
        let (mut same, mut same_outside, mut tried_outside) = (0, 0, 0);
        for _ in 0..300_000 {
            let prev = bases[rng.index(bases.len())].clone();
            let mut scratch = FlowKey::ZERO;
            if !extract_step::<false>(&prev, 1, &mut scratch).1 {
                assert!(!matches!(extract_common(&prev, 1), Some(k) if k.vlan_tci(0) == 0));
                continue;
            }
            let mut f = prev.clone();
            let outside = rng.chance(40);
            if outside {
                for _ in 0..1 + rng.below(3) {
                    let at = outside_key[rng.index(outside_key.len())];
                    if at < f.len() {
                        f[at] = rng.next_u64() as u8;
                    }
                }
            } else {
                mutate_frame(&mut rng, &mut f, 60);
            }
            let port = rng.below(0x1_0000) as u32;
            let same_key = same_untagged_key(&prev, &f);
            if same_key {
                assert_eq!(extract(&f, port), extract(&prev, port), "prev {prev:02x?} frame {f:02x?}");
                same += 1;
            }
            if outside && f.len() >= 54 {
                tried_outside += 1;
                same_outside += same_key as u32;
            }
        }
        assert!(same > 50_000, "only {same} frames recognised");
        assert!(same_outside * 10 >= tried_outside * 9, "{same_outside} of {tried_outside} differing outside the key");
    }

    /// `frame_window` on mutated, truncated and extended frames: every frame it takes is
    /// one `extract` takes untagged through the common shape, its flags word is the key's
    /// flags, and windows and keys correspond one to one (equal windows, equal keys: the
    /// EMC's frame table gives no wrong answer; equal keys, equal windows: it answers the
    /// packets of one flow whatever their identification, checksum, lengths or sequence
    /// numbers).
    #[test]
    fn frame_window_stands_for_the_key() {
        let bases = [
            tcp4_frame(&TCP4),
            tcp4_frame(&Tcp4 { flags: 0x10, tos: 0xb8, ttl: 3, ..TCP4 }),
            udp4_frame(5353, 53, &[0xde, 0xad]),
            pad_to(udp4_frame(1, 2, &[]), 60),
            tcp4_frame_with_data_offset_8(),
            with_vlan(&tcp4_frame(&TCP4), 0x8100, 0x2005),
            tcp4_frame_with_options(&TCP4, &[1, 1, 1, 0]),
            icmp4_frame(8, 0),
        ];
        // Frames that must not take it, as they are.
        for (i, f) in bases[5..].iter().enumerate() {
            assert_eq!(frame_window(f, 1), None, "base {}", i + 5);
        }
        let mut first_frag = pad_to(udp4_frame(1, 2, &[]), 60);
        first_frag[20] = 0x20;
        let mut later_frag = pad_to(udp4_frame(1, 2, &[]), 60);
        later_frag[21] = 1;
        let short_udp = udp4_frame(1, 2, &[]);
        assert_eq!(short_udp.len(), 42);
        for f in [&first_frag, &later_frag, &short_udp] {
            assert_eq!(frame_window(f, 1), None);
        }
        let mut df = pad_to(udp4_frame(1, 2, &[]), 60);
        df[20] = 0x40;
        assert!(frame_window(&df, 1).is_some(), "DF alone is no fragment");
        let outside_key = [18, 19, 20, 24, 25, 38, 39, 40, 41, 42, 43, 44, 45, 48, 49, 50, 51, 52, 53];
        let mut by_window = std::collections::HashMap::new();
        let mut by_key = std::collections::HashMap::new();
        let mut rng = SplitMix(15);
        let (mut taken, mut outside_same, mut outside_tried) = (0, 0, 0);
        for _ in 0..300_000 {
            let base = &bases[rng.index(bases.len())];
            let mut f = base.clone();
            let outside = rng.chance(30);
            if outside {
                for _ in 0..1 + rng.below(3) {
                    let at = outside_key[rng.index(outside_key.len())];
                    if at >= f.len() {
                        continue;
                    }
                    // The DF bit, or any byte outside the key.
                    f[at] = if at == 20 { f[at] ^ 0x40 } else { rng.next_u64() as u8 };
                }
            } else {
                mutate_frame(&mut rng, &mut f, 64);
            }
            let port = rng.pick(&[1, 2, 0xfeff, 0x1_0001]);
            let got = frame_window(&f, port);
            let key = extract(&f, port);
            if outside && f.len() >= 54 && frame_window(base, port).is_some() {
                outside_tried += 1;
                outside_same += (got == frame_window(base, port)) as u32;
            }
            let Some((w, flags_word)) = got else { continue };
            taken += 1;
            assert_eq!(window_flags_word(&w), flags_word);
            assert_eq!(extract_common(&f, port), Some(key), "{f:02x?}");
            assert_eq!(key.vlan_tci(0), 0);
            assert_eq!(flags_word, key.w[crate::key::TCP_FLAGS_WORD] & 0xfff << 52, "{f:02x?}");
            assert_eq!(*by_window.entry(w).or_insert(key), key, "one window, two keys: {f:02x?}");
            assert_eq!(*by_key.entry(key).or_insert(w), w, "one key, two windows: {f:02x?}");
        }
        assert!(taken > 50_000, "only {taken} frames taken");
        assert!(by_key.len() > 5_000, "only {} keys", by_key.len());
        assert_eq!(outside_same, outside_tried, "frames differing outside the key");
        assert!(outside_tried > 10_000);
    }

    #[test]
    fn fast_path_agrees_with_the_general_parse() {
        let tcp_opts = tcp4_frame_with_data_offset_8();
        let common = [
            tcp4_frame(&TCP4),
            udp4_frame(5353, 53, &[0xde, 0xad]),
            pad_to(udp4_frame(1, 2, &[]), 60),
            tcp_opts,
            with_vlan(&tcp4_frame(&TCP4), 0x8100, 0x2005),
            with_vlan(&udp4_frame(7, 9, b"x"), 0x88a8, 0xffff),
        ];
        let others = [
            tcp4_frame_with_options(&TCP4, &[1, 1, 1, 1]),
            icmp4_frame(8, 0),
            arp_frame(1),
            ipv6_frame(17, 0, &[], &udp_segment(1, 2, b"")),
            with_vlan(&with_vlan(&udp4_frame(1, 2, b""), 0x8100, 3), 0x88a8, 4),
        ];
        for (i, f) in common.iter().enumerate() {
            assert_eq!(extract_common(f, 3), Some(extract_general(f, 3, 1)), "common frame {i}");
            assert_eq!(extract_common(f, 3), Some(extract_general(f, 3, 2)), "common frame {i}");
        }
        for (i, f) in others.iter().enumerate() {
            assert_eq!(extract_common(f, 3), None, "other frame {i}");
        }
        let mut rng = SplitMix(12);
        let mut taken = 0;
        for _ in 0..200_000 {
            let mut f = if rng.chance(80) {
                common[rng.index(common.len())].clone()
            } else {
                others[rng.index(others.len())].clone()
            };
            for _ in 0..rng.below(4) {
                let at = rng.index(f.len().min(60));
                f[at] = if rng.chance(50) { rng.next_u64() as u8 } else { f[at] ^ (1 << rng.below(8)) };
            }
            if rng.chance(30) {
                f.truncate(rng.index(f.len() + 1));
            }
            let port = rng.below(0x1_0000) as u32;
            // In place over a key with every bit set: every word must be written.
            let mut into = FlowKey::EXACT;
            extract_into(&f, port, &mut into);
            assert_eq!(into, extract_general(&f, port, DEFAULT_VLAN_LIMIT), "in place: frame {f:02x?}");
            let mut hashed = FlowKey::EXACT;
            let hash = extract_hashed_into(&f, port, &mut hashed);
            assert_eq!((hashed, hash), (into, into.hash()), "hashed in place: frame {f:02x?}");
            if let Some(k) = extract_common(&f, port) {
                taken += 1;
                for limit in [1, 2] {
                    assert_eq!(k, extract_general(&f, port, limit), "frame {f:02x?} limit {limit}");
                }
            }
        }
        assert!(taken > 50_000, "the fast path took only {taken} frames");
    }

    #[test]
    fn tcp_ipv4_syn() {
        let f = tcp4_frame(&TCP4);
        let k = extract(&f, 7);
        assert_eq!(k.in_port(), 7);
        assert_eq!(k.dl_dst(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(k.dl_src(), [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!(k.nw_src(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(k.nw_proto(), 6);
        assert_eq!(k.nw_ttl(), 64);
        assert_eq!(k.nw_tos(), 0x10);
        assert_eq!(k.nw_frag(), 0);
        assert_eq!((k.tp_src(), k.tp_dst()), (43210, 80));
        assert_eq!(k.tcp_flags(), 0x002);
        assert_eq!(k.vlan_tci(0), 0);
        assert_eq!(k.w[4] | k.w[6], 0);
        assert!(ipv4_header_checksum_ok(&f[14..34]));
    }

    #[test]
    fn udp_ipv4_with_ethernet_padding() {
        // 60-byte minimum frame: UDP with 2 payload bytes, then padding. Padding must not
        // change anything.
        let mut f = udp4_frame(5353, 53, &[0xde, 0xad]);
        f.resize(60, 0xee);
        let k = extract(&f, 1);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (17, 5353, 53));
    }

    #[test]
    fn icmp_echo_ipv4() {
        let f = icmp4_frame(8, 0);
        let k = extract(&f, 1);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (1, 8, 0));
        let f = icmp4_frame(3, 4);
        let k = extract(&f, 1);
        assert_eq!((k.tp_src(), k.tp_dst()), (3, 4));
    }

    #[test]
    fn sctp_ipv4() {
        let mut f = ipv4_frame(132, &[0x0b, 0x59, 0x0b, 0x5a, 0, 0, 0, 1, 0, 0, 0, 0]);
        let k = extract(&f, 1);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (132, 2905, 2906));
        // 11 bytes of SCTP: too short, ports stay zero, L3 fields kept.
        f.truncate(f.len() - 1);
        fix_ipv4_total_len(&mut f, 14);
        let k = extract(&f, 1);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (132, 0, 0));
    }

    #[test]
    fn vlan_single_and_double() {
        let inner = tcp4_frame(&TCP4);
        let f = with_vlan(&inner, 0x8100, 0xa064); // PCP 5, VID 100
        let k = extract(&f, 1);
        assert_eq!(k.vlan_tci(0), 0xa064 | VLAN_PRESENT);
        assert_eq!(k.vlan_tci(1), 0);
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!(k.tp_dst(), 80);

        // Default vlan-limit 1 (OVS's default): the second tag is not parsed, dl_type is
        // its TPID and nothing behind it is in the key.
        let f2 = with_vlan(&f, 0x88a8, 0x0005);
        let k = extract(&f2, 1);
        assert_eq!(k.vlan_tci(0), 0x0005 | VLAN_PRESENT);
        assert_eq!(k.vlan_tci(1), 0);
        assert_eq!(k.dl_type(), 0x8100);
        assert_eq!((k.nw_proto(), k.tp_dst(), k.nw_src_u32(), k.nw_ttl()), (0, 0, 0, 0));

        // vlan-limit 2 (or 0, "as many as the key holds"): both tags.
        for limit in [2, 0, 7] {
            let k = extract_with_vlan_limit(&f2, 1, limit);
            assert_eq!(k.vlan_tci(0), 0x0005 | VLAN_PRESENT);
            assert_eq!(k.vlan_tci(1), 0xa064 | VLAN_PRESENT);
            assert_eq!(k.dl_type(), 0x0800);
            assert_eq!(k.tp_dst(), 80);
        }
        assert_eq!(extract_with_vlan_limit(&f2, 1, 1), extract(&f2, 1));

        // VID 0 priority tag is still a tag.
        let f = with_vlan(&inner, 0x8100, 0x0000);
        assert_eq!(extract(&f, 1).vlan_tci(0), VLAN_PRESENT);

        // A third tag is never parsed: dl_type is its TPID and nothing after it.
        let f3 = with_vlan(&f2, 0x8100, 0x0007);
        let k = extract_with_vlan_limit(&f3, 1, 2);
        assert_eq!(k.vlan_tci(0), 0x0007 | VLAN_PRESENT);
        assert_eq!(k.vlan_tci(1), 0x0005 | VLAN_PRESENT);
        assert_eq!(k.dl_type(), 0x8100);
        assert_eq!((k.nw_proto(), k.tp_dst(), k.nw_src_u32()), (0, 0, 0));
    }

    #[test]
    fn layers_see_through_any_number_of_tags() {
        let mut f = tcp4_frame(&TCP4);
        for n in 1..=5 {
            f = with_vlan(&f, 0x8100, n as u16);
            let l = layers(&f);
            assert_eq!((l.vlan, l.n_tags, l.dl_type), (Some(12), n, 0x0800), "{n} tags");
            assert_eq!(l.l3, Some(14 + 4 * n));
            assert_eq!(l.l4, Some((6, 34 + 4 * n)));
        }
    }

    #[test]
    fn truncated_vlan_tag_keeps_tpid_as_type() {
        let f = with_vlan(&tcp4_frame(&TCP4), 0x8100, 0x0064);
        // 12 MACs + TPID + TCI, no inner type: the tag is not taken.
        let k = extract(&f[..16], 1);
        assert_eq!(k.dl_type(), 0x8100);
        assert_eq!(k.vlan_tci(0), 0);
        assert_eq!(k.dl_src(), [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
        let k = extract(&f[..17], 1);
        assert_eq!((k.dl_type(), k.vlan_tci(0)), (0x8100, 0));
        // With the inner type present the tag is taken, the IPv4 header is missing.
        let k = extract(&f[..18], 1);
        assert_eq!((k.dl_type(), k.vlan_tci(0)), (0x0800, 0x1064));
        assert_eq!(k.nw_proto(), 0);
    }

    #[test]
    fn short_frames() {
        let f = tcp4_frame(&TCP4);
        for len in 0..14 {
            let k = extract(&f[..len], 9);
            let mut want = FlowKey::ZERO;
            want.set_in_port(9);
            assert_eq!(k, want, "len {len}");
        }
        let k = extract(&f[..14], 9);
        assert_eq!(k.dl_type(), 0x0800);
        assert_eq!(k.nw_src_u32(), 0);
        // Every truncation of the IPv4 header or TCP header: no L3 (IP total length
        // now exceeds the frame) and never a panic.
        for len in 14..f.len() {
            let k = extract(&f[..len], 9);
            assert_eq!((k.dl_type(), k.nw_proto(), k.tp_src()), (0x0800, 0, 0), "len {len}");
        }
    }

    #[test]
    fn ipv4_bad_ihl_and_total_length() {
        let good = tcp4_frame(&TCP4);
        // IHL 4 (< 5): L3 rejected.
        let mut f = good.clone();
        f[14] = 0x44;
        let k = extract(&f, 1);
        assert_eq!((k.dl_type(), k.nw_src_u32(), k.nw_proto(), k.nw_ttl()), (0x0800, 0, 0, 0));
        // IHL 15 (60 bytes) with a 40-byte IP packet: longer than total length.
        let mut f = good.clone();
        f[14] = 0x4f;
        let k = extract(&f, 1);
        assert_eq!((k.nw_src_u32(), k.nw_proto()), (0, 0));
        // Total length larger than the frame.
        let mut f = good.clone();
        f[16..18].copy_from_slice(&1500u16.to_be_bytes());
        assert_eq!(extract(&f, 1).nw_src_u32(), 0);
        // Total length smaller than the header.
        let mut f = good.clone();
        f[16..18].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(extract(&f, 1).nw_src_u32(), 0);
        // Total length = 20 (header only): L3 fields, no L4.
        let mut f = good.clone();
        f[16..18].copy_from_slice(&20u16.to_be_bytes());
        let k = extract(&f, 1);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tcp_flags()), (6, 0, 0));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(10, 0, 0, 1));
    }

    #[test]
    fn ipv4_options_are_skipped() {
        // IHL 6: one 4-byte option (NOP NOP NOP EOL) before TCP.
        let f = tcp4_frame_with_options(&TCP4, &[1, 1, 1, 0]);
        assert_eq!(f[14], 0x46);
        let k = extract(&f, 1);
        assert_eq!((k.tp_src(), k.tp_dst(), k.tcp_flags()), (43210, 80, 2));
    }

    #[test]
    fn tcp_bad_data_offset() {
        let mut f = tcp4_frame(&TCP4);
        // Data offset 4 words (< 5): no L4 fields.
        f[34 + 12] = 0x40 | (f[34 + 12] & 0x0f);
        let k = extract(&f, 1);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tcp_flags()), (6, 0, 0));
        // Data offset 6 words (24 bytes) but only 20 bytes of TCP: no L4 fields.
        f[34 + 12] = 0x60;
        assert_eq!(extract(&f, 1).tp_src(), 0);
    }

    #[test]
    fn tcp_flags_all_twelve_bits() {
        let mut f = tcp4_frame(&TCP4);
        f[34 + 12] = 0x5f; // reserved bits + NS
        f[34 + 13] = 0xff;
        assert_eq!(extract(&f, 1).tcp_flags(), 0x0fff);
    }

    #[test]
    fn ipv4_fragments() {
        // First fragment (MF, offset 0): FRAG_ANY, ports parsed.
        let mut f = tcp4_frame(&TCP4);
        f[20] = 0x20;
        let k = extract(&f, 1);
        assert_eq!(k.nw_frag(), FRAG_ANY);
        assert_eq!(k.tp_dst(), 80);
        // Later fragment (offset 185*8): FRAG_ANY|FRAG_LATER, no L4 even though the
        // bytes look like TCP.
        f[20] = 0x00;
        f[21] = 185;
        let k = extract(&f, 1);
        assert_eq!(k.nw_frag(), FRAG_ANY | FRAG_LATER);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst(), k.tcp_flags()), (6, 0, 0, 0));
        // DF alone is not a fragment.
        f[20] = 0x40;
        f[21] = 0;
        assert_eq!(extract(&f, 1).nw_frag(), 0);
    }

    #[test]
    fn arp_request_and_reply() {
        let f = arp_frame(1);
        let k = extract(&f, 3);
        assert_eq!(k.dl_type(), 0x0806);
        assert_eq!(k.nw_proto(), 1);
        assert_eq!(k.nw_src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(k.nw_dst(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(k.arp_sha(), [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
        assert_eq!(k.arp_tha(), [0; 6]);
        let k = extract(&arp_frame(2), 3);
        assert_eq!(k.nw_proto(), 2);
        // Opcode above 255: addresses kept, nw_proto 0.
        let mut f = arp_frame(1);
        f[20..22].copy_from_slice(&0x0101u16.to_be_bytes());
        let k = extract(&f, 3);
        assert_eq!((k.nw_proto(), k.nw_src_u32()), (0, 0x0a00_0001));
        // Not Ethernet/IPv4 ARP: nothing past L2.
        let mut f = arp_frame(1);
        f[14 + 4] = 8; // hln
        let k = extract(&f, 3);
        assert_eq!((k.dl_type(), k.nw_proto(), k.nw_src_u32(), k.arp_sha_u64()), (0x0806, 0, 0, 0));
        // Truncated to 27 ARP bytes.
        let f = arp_frame(1);
        let k = extract(&f[..14 + 27], 3);
        assert_eq!((k.nw_proto(), k.nw_src_u32()), (0, 0));
        // RARP is parsed like ARP.
        let mut f = arp_frame(3);
        f[12..14].copy_from_slice(&0x8035u16.to_be_bytes());
        let k = extract(&f, 3);
        assert_eq!((k.dl_type(), k.nw_proto()), (0x8035, 3));
    }

    #[test]
    fn llc_and_snap_frames() {
        // STP BPDU: 802.3 length, LLC 42 42 03: dl_type NONE.
        let mut f = vec![0x01, 0x80, 0xc2, 0, 0, 0, 0x52, 0x54, 0, 1, 2, 3, 0, 38, 0x42, 0x42, 0x03];
        f.extend_from_slice(&[0u8; 35]);
        let k = extract(&f, 1);
        assert_eq!(k.dl_type(), DL_TYPE_NONE);
        assert_eq!(k.dl_dst(), [0x01, 0x80, 0xc2, 0, 0, 0]);
        // SNAP with OUI 0 and type 0x0800: an IPv4 packet inside SNAP.
        let ip = tcp4_frame(&TCP4);
        let mut f = ip[..12].to_vec();
        f.extend_from_slice(&((ip.len() - 14 + 8) as u16).to_be_bytes());
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        f.extend_from_slice(&ip[14..]);
        let k = extract(&f, 1);
        assert_eq!((k.dl_type(), k.tp_dst()), (0x0800, 80));
        // SNAP with a non-zero OUI (Cisco CDP): NONE.
        let n = f.len();
        let mut g = f.clone();
        g[17] = 0x0c;
        assert_eq!(extract(&g, 1).dl_type(), DL_TYPE_NONE);
        // SNAP type below 0x600: NONE.
        let mut g = f.clone();
        g[20..22].copy_from_slice(&0x0100u16.to_be_bytes());
        assert_eq!(extract(&g, 1).dl_type(), DL_TYPE_NONE);
        // Truncated LLC/SNAP header.
        assert_eq!(extract(&f[..21], 1).dl_type(), DL_TYPE_NONE);
        assert!(n > 22);
    }

    #[test]
    fn ipv6_tcp_and_traffic_class() {
        let f = ipv6_frame(6, 0xb8, &[], &tcp_header(443, 51000, 0x12, 5));
        let k = extract(&f, 2);
        assert_eq!(k.dl_type(), 0x86dd);
        assert_eq!(k.ipv6_src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(k.ipv6_dst(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!((k.nw_proto(), k.nw_tos(), k.nw_ttl()), (6, 0xb8, 64));
        assert_eq!((k.tp_src(), k.tp_dst(), k.tcp_flags()), (443, 51000, 0x12));
        assert_eq!(k.ipv6_label(), 0x12345);
    }

    /// An ND message: type, code, then the 4 reserved/flag bytes, the target and `opts`.
    #[test]
    fn nd_fields_as_ovs_parses_them() {
        let target = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        let (a, b) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
        let ll = |ty: u8, mac: [u8; 6]| [&[ty, 1][..], &mac[..]].concat();
        let nd = |ty, code, opts: &[u8]| nd_fields(&ipv6_frame(58, 0, &[], &nd_message(ty, code, target, opts)));
        // What OVS's parse gives: the flags word (0x60000000 in these messages) always.
        let want = |target, sll, tll, options_type| NdFields { target, sll, tll, reserved: 0x6000_0000, options_type };
        let none = [0; 6];
        // A solicitation with its source address, an advertisement with its target one.
        assert_eq!(nd(135, 0, &ll(1, a)), want(target, a, none, 1));
        assert_eq!(nd(136, 0, &ll(2, b)), want(target, none, b, 2));
        // Either option on either message; an unknown option (type 14, 16 bytes) skipped.
        let both = [ll(2, b), vec![14, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], ll(1, a)].concat();
        assert_eq!(nd(135, 0, &both), want(target, a, b, 2));
        // No options: the target alone.
        assert_eq!(nd(136, 0, &[]), want(target, none, none, 0));
        // Length 0 or past the end: the walk stops, what came before stays.
        let zero_len = [ll(1, a), vec![2, 0, 1, 2, 3, 4, 5, 6]].concat();
        assert_eq!(nd(135, 0, &zero_len), want(target, a, none, 1));
        let too_long = [&[2u8, 2][..], &b[..]].concat();
        assert_eq!(nd(136, 0, &too_long), want(target, none, none, 0));
        // A link-layer option of 16 bytes is not an Ethernet address.
        let wide = [&[1u8, 2][..], &a[..], &[0; 8][..]].concat();
        assert_eq!(nd(135, 0, &wide), want(target, none, none, 0));
        // The same option twice: no target nor address (the flags and the first option's
        // type stay); unless the first one was all zero (OVS checks the address it holds).
        assert_eq!(nd(135, 0, &[ll(1, a), ll(1, b)].concat()), want([0; 16], none, none, 1));
        assert_eq!(nd(135, 0, &[ll(1, [0; 6]), ll(1, b)].concat()), want(target, b, none, 1));
        // Not ND: another type, a non-zero code, ICMP in IPv4.
        assert_eq!(nd(128, 0, &ll(1, a)), NdFields::default());
        assert_eq!(nd(135, 1, &ll(1, a)), NdFields::default());
        // (Cut before the end of the target: the flags alone.)
        assert_eq!(
            nd_fields(&ipv6_frame(58, 0, &[], &nd_message(135, 0, target, &[])[..20])),
            want([0; 16], none, none, 0)
        );
        assert_eq!(nd_fields(&tcp4_frame(&TCP4)), NdFields::default());
        // Behind extension headers, as the key finds ICMPv6; a truncated option: stop.
        let ext = [ExtHdr::Opts(IPPROTO_HOPOPTS, 0)];
        let f = ipv6_frame_ext(&ext, 58, &nd_message(135, 0, target, &[&ll(1, a)[..], &[2, 1, 0]].concat()));
        assert_eq!(nd_fields(&f), want(target, a, none, 1));
        // Ethernet padding after the IPv6 payload is not an option.
        let mut f = ipv6_frame(58, 0, &[], &nd_message(136, 0, target, &[]));
        f.extend_from_slice(&ll(2, b));
        assert_eq!(nd_fields(&f), want(target, none, none, 0));
    }

    #[test]
    fn ipv6_flow_label_beside_the_traffic_class() {
        // Version 6, traffic class 0xa5, label 0xf0e1d: the class and the label share the
        // second byte (0x5f).
        let mut f = vec![0u8; 14 + 40 + 8];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14..18].copy_from_slice(&[0x6a, 0x5f, 0x0e, 0x1d]);
        f[18..20].copy_from_slice(&8u16.to_be_bytes());
        f[20] = 17;
        f[21] = 1;
        f[54..62].copy_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        let k = extract(&f, 4);
        assert_eq!((k.ipv6_label(), k.nw_tos(), k.nw_proto(), k.tp_dst()), (0xf0e1d, 0xa5, 17, 2));
        // Label 0 and the all-ones label: no bit leaks into the neighbouring fields.
        f[15] = 0x50;
        f[16..18].copy_from_slice(&[0, 0]);
        assert_eq!((extract(&f, 4).ipv6_label(), extract(&f, 4).nw_tos()), (0, 0xa5));
        f[14..18].copy_from_slice(&[0x60, 0x0f, 0xff, 0xff]);
        let k = extract(&f, 0xffff);
        assert_eq!((k.ipv6_label(), k.nw_tos(), k.tcp_flags(), k.in_port()), (0xfffff, 0, 0, 0xffff));
        // IPv4 has no label.
        assert_eq!(extract(&tcp4_frame(&TCP4), 1).ipv6_label(), 0);
    }

    #[test]
    fn ipv6_icmpv6_and_extension_headers() {
        let icmp = [128u8, 0, 0, 0, 0, 1, 0, 1]; // echo request
        let k = extract(&ipv6_frame(58, 0, &[], &icmp), 2);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (58, 128, 0));
        // Hop-by-hop (8 bytes) then destination options (16 bytes) then ICMPv6.
        let ext = [ExtHdr::Opts(IPPROTO_HOPOPTS, 0), ExtHdr::Opts(IPPROTO_DSTOPTS, 1)];
        let k = extract(&ipv6_frame_ext(&ext, 58, &icmp), 2);
        assert_eq!((k.nw_proto(), k.tp_src(), k.nw_frag()), (58, 128, 0));
        // AH (length in 4-byte units + 2): len field 1 = 12 bytes.
        let k = extract(&ipv6_frame_ext(&[ExtHdr::Ah(1)], 17, &[0, 53, 0x30, 0x39, 0, 8, 0, 0]), 2);
        assert_eq!((k.nw_proto(), k.tp_src(), k.tp_dst()), (17, 53, 12345));
        // ICMP (v4) inside IPv6 is not parsed.
        let k = extract(&ipv6_frame(1, 0, &[], &[8, 0, 0, 0, 0, 0, 0, 0]), 2);
        assert_eq!((k.nw_proto(), k.tp_src()), (1, 0));
    }

    #[test]
    fn ipv6_fragments() {
        let udp = [0u8, 53, 0x30, 0x39, 0, 8, 0, 0];
        // First fragment: FRAG_ANY, L4 parsed after the fragment header.
        let k = extract(&ipv6_frame_ext(&[ExtHdr::Frag { offset: 0, more: true }], 17, &udp), 2);
        assert_eq!((k.nw_frag(), k.nw_proto(), k.tp_dst()), (FRAG_ANY, 17, 12345));
        // Later fragment: FRAG_LATER, no L4, and (as OVS's parse_ipv6_ext_hdrs__)
        // nw_proto reads 44, "fragment", not the protocol the fragment header names.
        let k = extract(&ipv6_frame_ext(&[ExtHdr::Frag { offset: 100, more: false }], 17, &udp), 2);
        assert_eq!((k.nw_frag(), k.nw_proto(), k.tp_dst()), (FRAG_ANY | FRAG_LATER, IPPROTO_FRAGMENT, 0));
        // Atomic fragment (offset 0, M=0): no fragment at all (RFC 6946, OVS 3.1), L4 parsed.
        let k = extract(&ipv6_frame_ext(&[ExtHdr::Frag { offset: 0, more: false }], 17, &udp), 2);
        assert_eq!((k.nw_frag(), k.nw_proto(), k.tp_dst()), (0, 17, 12345));
    }

    #[test]
    fn ipv6_truncated_extension_header_keeps_only_addresses() {
        let icmp = [128u8, 0, 0, 0, 0, 1, 0, 1];
        let f = ipv6_frame_ext(&[ExtHdr::Opts(IPPROTO_HOPOPTS, 1)], 58, &icmp);
        // Cut the frame inside the 16-byte hop-by-hop header and fix the payload length.
        let mut g = f[..14 + 40 + 12].to_vec();
        g[18..20].copy_from_slice(&12u16.to_be_bytes());
        let k = extract(&g, 2);
        assert_eq!(k.ipv6_dst(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!((k.nw_proto(), k.nw_ttl(), k.nw_tos(), k.nw_frag(), k.ipv6_label()), (0, 0, 0, 0, 0));
        // Payload length larger than the frame: nothing of L3.
        let mut g = f.clone();
        g[18..20].copy_from_slice(&1000u16.to_be_bytes());
        let k = extract(&g, 2);
        assert_eq!((k.dl_type(), k.ipv6_src_u128()), (0x86dd, 0));
        // Fewer than 40 bytes of IPv6 header.
        let k = extract(&f[..14 + 39], 2);
        assert_eq!(k.ipv6_src_u128(), 0);
        // Payload length shorter than the actual bytes: only the payload counts, so
        // an 8-byte payload with a 16-byte extension header is truncated.
        let mut g = f.clone();
        g[18..20].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(extract(&g, 2).nw_proto(), 0);
    }

    #[test]
    fn ipv6_udp_short_l4() {
        let f = ipv6_frame(17, 0, &[], &[0, 53, 0x30, 0x39, 0, 7, 0]); // 7 bytes
        let k = extract(&f, 2);
        assert_eq!((k.nw_proto(), k.tp_src()), (17, 0));
    }

    #[test]
    fn unknown_ethertype_keeps_l2_only() {
        let mut f = tcp4_frame(&TCP4);
        f[12..14].copy_from_slice(&0x88ccu16.to_be_bytes()); // LLDP
        let k = extract(&f, 4);
        assert_eq!(k.dl_type(), 0x88cc);
        assert_eq!(k.w[2] >> 48, 0);
        assert_eq!(k.w[3] | k.w[4] | k.w[5] | k.w[6] | k.w[7], 0);
    }

    #[test]
    fn layers_of_tagged_tcp() {
        let f = with_vlan(&tcp4_frame(&TCP4), 0x8100, 0x0064);
        let l = layers(&f);
        assert_eq!(l.vlan, Some(12));
        assert_eq!(l.l3, Some(18));
        assert_eq!(l.l4, Some((6, 38)));
        assert_eq!(l.l3_end, f.len());
    }
}
