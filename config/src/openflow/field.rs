//! Match fields and their OXM / NXM TLV encodings.
//!
//! A match is a list of [`MatchField`]s — field, value, optional mask — in the order
//! they appear on the wire, whatever the encoding: OpenFlow 1.3's OXM match, Nicira's
//! NXM match (`NXT_FLOW_MOD`, `NXST_FLOW`), or OpenFlow 1.0's fixed `ofp_match` (see
//! `match10`). [`Field`] is named after `ovs-fields(7)`; fields that OVS encodes two
//! ways (e.g. `tcp_src` as `NXM_OF_TCP_SRC` and `OXM_OF_TCP_SRC`) are one `Field`, and
//! the encoding is chosen by context ([`Dialect`]): OXM where a field has an OXM basic
//! header and the context is OpenFlow 1.3, NXM otherwise, as `ovs-ofctl` does. Fields
//! with different meanings (`vlan_tci` vs `vlan_vid`, `nw_tos` vs `ip_dscp`) stay apart,
//! so a conversion to the rule model sees exactly what the controller said.
//!
//! Values are `u128`s holding the field's big-endian bytes (a MAC in the low 48 bits,
//! an IPv6 address in all 128). Port numbers (`in_port`) are always OpenFlow 1.3
//! 32-bit numbers; the 16-bit NXM form is converted on the wire.
//!
//! Not checked here: prerequisites (`tcp_src` without `ip_proto=6`); that is the rule
//! model's business. Checked: known header, length, mask allowed, no value bit outside
//! the mask, no field twice, value within the field's bits.

use super::error::{EncodeError, OfpError};
use super::port::{port_from_of10, port_to_of10};
use super::wire::{Reader, Writer};

/// A match or set-field field, named as in `ovs-fields(7)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    InPort,
    /// `OXM_OF_IN_PORT` as a `load`/`move`/`output` operand (32 bits, OpenFlow 1.1
    /// numbers), where OVS keeps it apart from `NXM_OF_IN_PORT`; in a match the OXM header
    /// is [`Field::InPort`].
    InPortOxm,
    InPhyPort,
    Metadata,
    EthSrc,
    EthDst,
    EthType,
    /// `vlan_tci` (NXM_OF_VLAN_TCI): the whole TCI, 0x1000 (CFI) set when tagged.
    VlanTci,
    /// `vlan_vid` (OXM): 12-bit VID with `OFPVID_PRESENT` (0x1000).
    VlanVid,
    VlanPcp,
    /// `nw_tos` (NXM_OF_IP_TOS): the ToS byte with the ECN bits zero.
    NwTos,
    IpDscp,
    IpEcn,
    NwTtl,
    IpFrag,
    /// `nw_proto` / `ip_proto`.
    IpProto,
    Ipv4Src,
    Ipv4Dst,
    TcpSrc,
    TcpDst,
    UdpSrc,
    UdpDst,
    SctpSrc,
    SctpDst,
    TcpFlags,
    Icmpv4Type,
    Icmpv4Code,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
    Icmpv6Type,
    Icmpv6Code,
    NdTarget,
    NdSll,
    NdTll,
    /// `nd_reserved` (`ERICOXM_OF_ICMPV6_ND_RESERVED`).
    NdReserved,
    /// `nd_options_type` (`ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE`).
    NdOptionsType,
    MplsLabel,
    MplsTc,
    MplsBos,
    /// `mpls_ttl` (`NXM_NX_MPLS_TTL`).
    MplsTtl,
    /// `tun_id` / `tunnel_id`.
    TunId,
    Ipv6Exthdr,
    PktMark,
    /// `reg0`..`reg15`.
    Reg(u8),
    /// `xreg0`..`xreg7` (`OXM_OF_PKT_REGn`, class `OFPXMC_PACKET_REGS`).
    Xreg(u8),
    /// `xxreg0`..`xxreg3` (`NXM_NX_XXREGn`).
    Xxreg(u8),
}

/// Which header family a context prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Nicira NXM first (OpenFlow 1.0 `nx_match`, NX actions in OpenFlow 1.0).
    Nxm,
    /// OXM basic first (OpenFlow 1.3).
    Oxm,
}

pub(crate) const NXM_OF: u16 = 0x0000;
pub(crate) const NXM_NX: u16 = 0x0001;
pub(crate) const OXM_BASIC: u16 = 0x8000;
/// The class of OVS's `ERICOXM_OF_*` fields: a plain 32-bit header (no experimenter
/// ID), the same in NXM and OXM contexts.
pub(crate) const ERICOXM_OF: u16 = 0x1000;
/// `OFPXMC_PACKET_REGS`: OpenFlow 1.5's 64-bit packet registers, OVS's `xreg`s.
pub(crate) const OXM_PACKET_REGS: u16 = 0x8001;
/// `NXM_NX_XXREG0`'s field code (the four follow it).
const NXM_NX_XXREG0_CODE: u8 = 111;

/// One field's encodings: NXM (class, code, bytes), OXM basic (code, bytes), whether
/// it takes a mask, and how many low bits a value may use (0: all of its bytes).
struct FieldDef {
    field: Field,
    nxm: Option<(u16, u8, u8)>,
    oxm: Option<(u8, u8)>,
    maskable: bool,
    bits: u8,
}

const fn def(field: Field, nxm: Option<(u16, u8, u8)>, oxm: Option<(u8, u8)>, maskable: bool, bits: u8) -> FieldDef {
    FieldDef { field, nxm, oxm, maskable, bits }
}

#[rustfmt::skip]
const FIELDS: &[FieldDef] = {
    use Field::*;
    &[
        def(InPort, Some((NXM_OF, 0, 2)), Some((0, 4)), false, 0),
        // After `InPort`, so that a match's OXM header reads as `InPort`.
        def(InPortOxm, None, Some((0, 4)), false, 0),
        def(InPhyPort, None, Some((1, 4)), false, 0),
        def(Metadata, None, Some((2, 8)), true, 0),
        def(EthDst, Some((NXM_OF, 1, 6)), Some((3, 6)), true, 0),
        def(EthSrc, Some((NXM_OF, 2, 6)), Some((4, 6)), true, 0),
        def(EthType, Some((NXM_OF, 3, 2)), Some((5, 2)), false, 0),
        def(VlanTci, Some((NXM_OF, 4, 2)), None, true, 0),
        def(VlanVid, None, Some((6, 2)), true, 13),
        def(VlanPcp, None, Some((7, 1)), false, 3),
        def(NwTos, Some((NXM_OF, 5, 1)), None, false, 0),
        def(IpDscp, None, Some((8, 1)), false, 6),
        def(IpEcn, Some((NXM_NX, 28, 1)), Some((9, 1)), false, 2),
        def(IpProto, Some((NXM_OF, 6, 1)), Some((10, 1)), false, 0),
        def(Ipv4Src, Some((NXM_OF, 7, 4)), Some((11, 4)), true, 0),
        def(Ipv4Dst, Some((NXM_OF, 8, 4)), Some((12, 4)), true, 0),
        def(TcpSrc, Some((NXM_OF, 9, 2)), Some((13, 2)), true, 0),
        def(TcpDst, Some((NXM_OF, 10, 2)), Some((14, 2)), true, 0),
        def(UdpSrc, Some((NXM_OF, 11, 2)), Some((15, 2)), true, 0),
        def(UdpDst, Some((NXM_OF, 12, 2)), Some((16, 2)), true, 0),
        def(SctpSrc, None, Some((17, 2)), true, 0),
        def(SctpDst, None, Some((18, 2)), true, 0),
        def(Icmpv4Type, Some((NXM_OF, 13, 1)), Some((19, 1)), false, 0),
        def(Icmpv4Code, Some((NXM_OF, 14, 1)), Some((20, 1)), false, 0),
        def(ArpOp, Some((NXM_OF, 15, 2)), Some((21, 2)), false, 0),
        def(ArpSpa, Some((NXM_OF, 16, 4)), Some((22, 4)), true, 0),
        def(ArpTpa, Some((NXM_OF, 17, 4)), Some((23, 4)), true, 0),
        def(ArpSha, Some((NXM_NX, 17, 6)), Some((24, 6)), true, 0),
        def(ArpTha, Some((NXM_NX, 18, 6)), Some((25, 6)), true, 0),
        def(Ipv6Src, Some((NXM_NX, 19, 16)), Some((26, 16)), true, 0),
        def(Ipv6Dst, Some((NXM_NX, 20, 16)), Some((27, 16)), true, 0),
        def(Ipv6Label, Some((NXM_NX, 27, 4)), Some((28, 4)), true, 20),
        def(Icmpv6Type, Some((NXM_NX, 21, 1)), Some((29, 1)), false, 0),
        def(Icmpv6Code, Some((NXM_NX, 22, 1)), Some((30, 1)), false, 0),
        def(NdTarget, Some((NXM_NX, 23, 16)), Some((31, 16)), true, 0),
        def(NdSll, Some((NXM_NX, 24, 6)), Some((32, 6)), true, 0),
        def(NdTll, Some((NXM_NX, 25, 6)), Some((33, 6)), true, 0),
        def(NdReserved, Some((ERICOXM_OF, 1, 4)), None, false, 0),
        def(NdOptionsType, Some((ERICOXM_OF, 2, 1)), None, false, 0),
        def(MplsLabel, None, Some((34, 4)), false, 20),
        def(MplsTc, None, Some((35, 1)), false, 3),
        def(MplsBos, None, Some((36, 1)), false, 1),
        def(MplsTtl, Some((NXM_NX, 30, 1)), None, false, 0),
        def(TunId, Some((NXM_NX, 16, 8)), Some((38, 8)), true, 0),
        def(Ipv6Exthdr, None, Some((39, 2)), true, 9),
        def(IpFrag, Some((NXM_NX, 26, 1)), None, true, 2),
        def(NwTtl, Some((NXM_NX, 29, 1)), None, false, 0),
        def(PktMark, Some((NXM_NX, 33, 4)), None, true, 0),
        def(TcpFlags, Some((NXM_NX, 34, 2)), None, true, 12),
    ]
};

/// The number of registers (`reg0`..`reg15`).
pub const N_REGS: u8 = 16;

/// A header as it appears on the wire: class, field code, payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub class: u16,
    pub code: u8,
    pub len: u8,
}

impl Header {
    /// The 32-bit `nxm_header` / `oxm_header` form, without the has-mask bit.
    pub(crate) fn to_u32(self) -> u32 {
        (u32::from(self.class) << 16) | (u32::from(self.code) << 9) | u32::from(self.len)
    }

    pub(crate) fn from_u32(h: u32) -> (Header, bool) {
        let has_mask = h & 0x100 != 0;
        let len = (h & 0xff) as u8;
        let payload = if has_mask { len / 2 } else { len };
        (Header { class: (h >> 16) as u16, code: ((h >> 9) & 0x7f) as u8, len: payload }, has_mask)
    }
}

impl Field {
    /// Every field, for generators and exhaustive tests.
    pub fn all() -> impl Iterator<Item = Field> {
        FIELDS
            .iter()
            .map(|d| d.field)
            .chain((0..N_REGS).map(Field::Reg))
            .chain((0..N_REGS / 2).map(Field::Xreg))
            .chain((0..N_REGS / 4).map(Field::Xxreg))
    }

    fn def(self) -> Option<&'static FieldDef> {
        FIELDS.iter().find(|d| d.field == self)
    }

    /// Whether the field takes a mask.
    pub fn maskable(self) -> bool {
        match self {
            Field::Reg(_) | Field::Xreg(_) | Field::Xxreg(_) => true,
            f => f.def().is_some_and(|d| d.maskable),
        }
    }

    /// The value's width in bytes (the OXM width where the two differ: `in_port` is 4).
    pub fn width(self) -> usize {
        self.header(Dialect::Oxm).len as usize
    }

    /// The mask of all value bits the field may use.
    pub fn value_bits(self) -> u128 {
        let bits = match self {
            Field::Reg(_) | Field::Xreg(_) | Field::Xxreg(_) => 0,
            f => f.def().map_or(0, |d| d.bits),
        };
        let bits = if bits == 0 { self.width() as u32 * 8 } else { u32::from(bits) };
        if bits >= 128 { u128::MAX } else { (1u128 << bits) - 1 }
    }

    /// The header this field is written with in `dialect`.
    pub(crate) fn header(self, dialect: Dialect) -> Header {
        match self {
            Field::Reg(n) => return Header { class: NXM_NX, code: n, len: 4 },
            Field::Xreg(n) => return Header { class: OXM_PACKET_REGS, code: n, len: 8 },
            Field::Xxreg(n) => return Header { class: NXM_NX, code: NXM_NX_XXREG0_CODE + n, len: 16 },
            _ => {}
        }
        let d = self.def().expect("every non-register field has a definition");
        let nxm = d.nxm.map(|(class, code, len)| Header { class, code, len });
        let oxm = d.oxm.map(|(code, len)| Header { class: OXM_BASIC, code, len });
        let (first, second) = match dialect {
            Dialect::Nxm => (nxm, oxm),
            Dialect::Oxm => (oxm, nxm),
        };
        first.or(second).expect("every field has at least one header")
    }

    /// The field a header names, if known.
    pub(crate) fn from_header(class: u16, code: u8) -> Option<(Field, u8)> {
        if class == NXM_NX && code < N_REGS {
            return Some((Field::Reg(code), 4));
        }
        if class == OXM_PACKET_REGS && code < N_REGS / 2 {
            return Some((Field::Xreg(code), 8));
        }
        if class == NXM_NX && (NXM_NX_XXREG0_CODE..NXM_NX_XXREG0_CODE + N_REGS / 4).contains(&code) {
            return Some((Field::Xxreg(code - NXM_NX_XXREG0_CODE), 16));
        }
        FIELDS.iter().find_map(|d| match (class, d.nxm, d.oxm) {
            (OXM_BASIC, _, Some((c, len))) if c == code => Some((d.field, len)),
            (_, Some((cl, c, len)), _) if cl == class && c == code => Some((d.field, len)),
            _ => None,
        })
    }
}

/// One match entry: `field == value` under `mask` (`None`: exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatchField {
    pub field: Field,
    pub value: u128,
    pub mask: Option<u128>,
}

impl MatchField {
    pub fn exact(field: Field, value: u128) -> Self {
        MatchField { field, value, mask: None }
    }

    pub fn masked(field: Field, value: u128, mask: u128) -> Self {
        MatchField { field, value, mask: Some(mask) }
    }
}

/// A flow match: the fields that are not wildcarded, in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Match {
    pub fields: Vec<MatchField>,
}

impl Match {
    /// The entry for `field`, if matched.
    pub fn get(&self, field: Field) -> Option<&MatchField> {
        self.fields.iter().find(|f| f.field == field)
    }
}

fn read_be(bytes: &[u8]) -> u128 {
    bytes.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
}

fn write_be(w: &mut Writer, v: u128, len: usize) {
    w.bytes(&v.to_be_bytes()[16 - len..]);
}

/// Reads one TLV (header, value, optional mask). `in_port` in its 16-bit NXM form comes
/// back as a 32-bit port number.
pub(crate) fn decode_tlv(r: &mut Reader) -> Result<MatchField, OfpError> {
    let (h, has_mask) = Header::from_u32(r.u32()?);
    let total = if has_mask { 2 * h.len as usize } else { h.len as usize };
    let payload = r.bytes(total).map_err(|_| OfpError::BadMatchLen)?;
    let (field, len) = Field::from_header(h.class, h.code).ok_or(OfpError::BadField)?;
    if len != h.len {
        return Err(OfpError::BadMatchLen);
    }
    if has_mask && !field.maskable() {
        return Err(OfpError::BadMask);
    }
    let mut value = read_be(&payload[..len as usize]);
    let mask = has_mask.then(|| read_be(&payload[len as usize..]));
    if field == Field::InPort && len == 2 {
        value = u128::from(port_from_of10(value as u16));
    }
    if value & !field.value_bits() != 0 {
        return Err(OfpError::BadValue);
    }
    if mask.is_some_and(|m| value & !m != 0) {
        return Err(OfpError::BadWildcards);
    }
    Ok(MatchField { field, value, mask })
}

/// Writes one TLV in `dialect`.
pub(crate) fn encode_tlv(w: &mut Writer, f: &MatchField, dialect: Dialect) -> Result<(), EncodeError> {
    let h = f.field.header(dialect);
    let mut value = f.value;
    if f.field == Field::InPort && h.len == 2 {
        let port = u32::try_from(value).map_err(|_| EncodeError::Invalid("in_port"))?;
        value = u128::from(port_to_of10(port).ok_or(EncodeError::Invalid("in_port out of the 16-bit range"))?);
    }
    if value & !f.field.value_bits() != 0 {
        return Err(EncodeError::Invalid("match value wider than its field"));
    }
    match f.mask {
        None => {
            w.u32(h.to_u32());
            write_be(w, value, h.len as usize);
        }
        Some(mask) => {
            if !f.field.maskable() {
                return Err(EncodeError::Invalid("mask on a field that takes none"));
            }
            w.u32((h.to_u32() & !0xff) | 0x100 | (2 * u32::from(h.len)));
            write_be(w, value, h.len as usize);
            write_be(w, mask, h.len as usize);
        }
    }
    Ok(())
}

/// Reads TLVs until `r` is exhausted.
pub(crate) fn decode_tlvs(r: &mut Reader) -> Result<Match, OfpError> {
    let mut m = Match::default();
    while !r.is_empty() {
        let f = decode_tlv(r)?;
        if m.get(f.field).is_some() {
            return Err(OfpError::DupField);
        }
        m.fields.push(f);
    }
    Ok(m)
}

pub(crate) fn encode_tlvs(w: &mut Writer, m: &Match, dialect: Dialect) -> Result<(), EncodeError> {
    m.fields.iter().try_for_each(|f| encode_tlv(w, f, dialect))
}

/// OpenFlow 1.3 `ofp_match` (type OXM): type, length, TLVs, padding to 8.
pub(crate) fn decode_oxm_match(r: &mut Reader) -> Result<Match, OfpError> {
    let match_type = r.u16().map_err(|_| OfpError::BadMatchLen)?;
    let len = r.u16().map_err(|_| OfpError::BadMatchLen)? as usize;
    if match_type != 1 {
        return Err(OfpError::BadMatchType);
    }
    if len < 4 {
        return Err(OfpError::BadMatchLen);
    }
    let mut tlvs = r.sub(len - 4, OfpError::BadMatchLen).map_err(|_| OfpError::BadMatchLen)?;
    r.skip(len.next_multiple_of(8) - len).map_err(|_| OfpError::BadMatchLen)?;
    decode_tlvs(&mut tlvs)
}

pub(crate) fn encode_oxm_match(w: &mut Writer, m: &Match) -> Result<(), EncodeError> {
    let start = w.len();
    w.u16(1);
    w.u16(0);
    encode_tlvs(w, m, Dialect::Oxm)?;
    let len = super::error::len16(w.len() - start, "match")?;
    w.patch_u16(start + 2, len);
    w.pad8_from(start);
    Ok(())
}

/// A Nicira `nx_match` of `len` bytes followed by padding to 8.
pub(crate) fn decode_nx_match(r: &mut Reader, len: usize) -> Result<Match, OfpError> {
    let mut tlvs = r.sub(len, OfpError::BadMatchLen).map_err(|_| OfpError::BadLen)?;
    r.skip(len.next_multiple_of(8) - len).map_err(|_| OfpError::BadLen)?;
    decode_tlvs(&mut tlvs)
}

/// Writes an `nx_match` plus padding; returns its unpadded length.
pub(crate) fn encode_nx_match(w: &mut Writer, m: &Match) -> Result<u16, EncodeError> {
    let start = w.len();
    encode_tlvs(w, m, Dialect::Nxm)?;
    let len = super::error::len16(w.len() - start, "nx_match")?;
    w.pad8_from(start);
    Ok(len)
}
