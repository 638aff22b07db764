//! Actions and instructions, both versions, plus the Nicira vendor actions `ovs-ofctl`
//! emits for everyday rules.
//!
//! [`Action`] is one enum for both versions: where the two wire forms mean the same
//! thing it is one variant (`Output`, `PopVlan` = 1.0 `strip_vlan` = 1.3 `pop_vlan`),
//! where they differ each keeps its own (1.0 `SetVlanVid` vs 1.3 `SetField(vlan_vid)`;
//! 1.3 `DecNwTtl` vs Nicira `NxDecTtl`), so encoding reproduces what was received
//! byte for byte. Encoding a variant the version lacks is an [`EncodeError`].
//! OpenFlow 1.0 has no instructions: its action list is `[ApplyActions(list)]` in a
//! [`FlowMod`](super::FlowMod), and an empty list is no instruction at all.
//! Refused with `OFPBAC_BAD_TYPE` (they would need MPLS/PBB support): MPLS and PBB
//! push/pop, `set_mpls_ttl`, `dec_mpls_ttl`.

use super::Version;
use super::error::{EncodeError, OfpError, len16};
use super::field::{Dialect, Field, Header, MatchField, decode_tlv, encode_tlv};
use super::port::{port_from_of10, port_to_of10, write_port};
use super::wire::{Reader, Writer};

/// Nicira's vendor id, in actions, messages and statistics.
pub const NX_VENDOR_ID: u32 = 0x0000_2320;

/// A field slice for the Nicira register actions: `field[ofs..ofs + n_bits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldSlice {
    pub field: Field,
    pub ofs: u16,
    pub n_bits: u16,
}

/// One action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `output:port`; `max_len` bytes go to the controller when `port` is CONTROLLER.
    Output { port: u32, max_len: u16 },
    /// 1.0 `enqueue:port:queue`.
    Enqueue { port: u32, queue_id: u32 },
    /// 1.0 `mod_vlan_vid`.
    SetVlanVid(u16),
    /// 1.0 `mod_vlan_pcp`.
    SetVlanPcp(u8),
    /// 1.0 `strip_vlan`, 1.3 `pop_vlan`.
    PopVlan,
    /// 1.0 `mod_dl_src`.
    SetDlSrc([u8; 6]),
    /// 1.0 `mod_dl_dst`.
    SetDlDst([u8; 6]),
    /// 1.0 `mod_nw_src`.
    SetNwSrc(u32),
    /// 1.0 `mod_nw_dst`.
    SetNwDst(u32),
    /// 1.0 `mod_nw_tos` (the ToS byte, DSCP bits only).
    SetNwTos(u8),
    /// 1.0 `mod_tp_src`.
    SetTpSrc(u16),
    /// 1.0 `mod_tp_dst`.
    SetTpDst(u16),
    /// 1.3 `copy_ttl_out`.
    CopyTtlOut,
    /// 1.3 `copy_ttl_in`.
    CopyTtlIn,
    /// 1.3 `push_vlan:ethertype`.
    PushVlan(u16),
    /// 1.3 `set_queue`.
    SetQueue(u32),
    /// 1.3 `group`.
    Group(u32),
    /// 1.3 `mod_nw_ttl`.
    SetNwTtl(u8),
    /// 1.3 `dec_ttl` (`OFPAT_DEC_NW_TTL`).
    DecNwTtl,
    /// 1.3 `set_field` (no mask).
    SetField { field: Field, value: u128 },
    /// Nicira `resubmit`: `table` `None` is `NXAST_RESUBMIT` (`resubmit:port`), `Some`
    /// is `NXAST_RESUBMIT_TABLE` (255 = this table). `in_port` OFPP_IN_PORT = unchanged.
    Resubmit { in_port: u32, table: Option<u8> },
    /// Nicira `dec_ttl` (`NXAST_DEC_TTL`).
    NxDecTtl,
    /// Nicira `pop_queue` (`NXAST_POP_QUEUE`): back to the queue before `set_queue`.
    /// `ovs-ofctl` writes 1.0's `enqueue:P:Q` in 1.3 as `set_queue:Q,output:P,pop_queue`.
    PopQueue,
    /// Nicira `note`: opaque bytes (as received: padded so the action is 8-aligned).
    Note(Vec<u8>),
    /// Nicira `load:value->dst` (`NXAST_REG_LOAD`).
    RegLoad { dst: FieldSlice, value: u64 },
    /// Nicira `NXAST_REG_LOAD2`: set a whole field, or its bits under a mask.
    RegLoad2(MatchField),
    /// Nicira `move:src->dst` (`NXAST_REG_MOVE`); both slices have `n_bits` bits.
    RegMove { src: FieldSlice, dst: FieldSlice },
    /// Nicira `output:src` (`NXAST_OUTPUT_REG`).
    OutputReg { src: FieldSlice, max_len: u16 },
    /// Nicira `output(port=P,max_len=N)` (`NXAST_OUTPUT_TRUNC`): the port in OpenFlow
    /// 1.0's 16 bits on the wire.
    OutputTrunc { port: u32, max_len: u32 },
    /// Nicira `clone(actions)`.
    Clone(Vec<Action>),
    /// Nicira `write_metadata` (`NXAST_WRITE_METADATA`): OpenFlow 1.0's form of the 1.1+
    /// instruction, `ovs-ofctl -O OpenFlow10` sends it as the last action.
    NxWriteMetadata { metadata: u64, mask: u64 },
}

const NXAST_RESUBMIT: u16 = 1;
const NXAST_POP_QUEUE: u16 = 5;
const NXAST_REG_MOVE: u16 = 6;
const NXAST_REG_LOAD: u16 = 7;
const NXAST_NOTE: u16 = 8;
const NXAST_RESUBMIT_TABLE: u16 = 14;
const NXAST_OUTPUT_REG: u16 = 15;
const NXAST_DEC_TTL: u16 = 18;
const NXAST_WRITE_METADATA: u16 = 22;
const NXAST_REG_LOAD2: u16 = 33;
const NXAST_OUTPUT_TRUNC: u16 = 39;
const NXAST_CLONE: u16 = 42;

/// The header family of fields in Nicira actions: OVS writes `NXAST_REG_LOAD`,
/// `NXAST_REG_MOVE` and `NXAST_OUTPUT_REG` fields in NXM form in every version.
const NX_SLICE_DIALECT: Dialect = Dialect::Nxm;

fn dialect(v: Version) -> Dialect {
    match v {
        Version::Of10 => Dialect::Nxm,
        Version::Of13 => Dialect::Oxm,
    }
}

fn read_slice_header(r: &mut Reader) -> Result<Field, OfpError> {
    let (h, has_mask) = Header::from_u32(r.u32()?);
    match Field::from_header(h.class, h.code) {
        // A field slice keeps the OXM in_port apart: its bits are OpenFlow 1.1's number.
        Some((Field::InPort, 4)) if h.len == 4 && !has_mask => Ok(Field::InPortOxm),
        Some((f, len)) if len == h.len && !has_mask => Ok(f),
        _ => Err(OfpError::BadSetType),
    }
}

fn check_slice(s: FieldSlice) -> Result<FieldSlice, OfpError> {
    let width = s.field.header(NX_SLICE_DIALECT).len as u16 * 8;
    if s.n_bits == 0 || u32::from(s.ofs) + u32::from(s.n_bits) > u32::from(width) {
        return Err(OfpError::BadSetLen);
    }
    Ok(s)
}

fn ofs_nbits(s: FieldSlice) -> u16 {
    (s.ofs << 6) | (s.n_bits - 1)
}

fn from_ofs_nbits(field: Field, v: u16) -> FieldSlice {
    FieldSlice { field, ofs: v >> 6, n_bits: (v & 0x3f) + 1 }
}

/// Reads an action list filling all of `r`.
pub(crate) fn decode_actions(r: &mut Reader, v: Version) -> Result<Vec<Action>, OfpError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        if r.remaining() < 8 {
            return Err(OfpError::BadActionLen);
        }
        let mut peek = r.clone();
        peek.skip(2)?;
        let len = peek.u16()? as usize;
        if len < 8 || !len.is_multiple_of(8) || len > r.remaining() {
            return Err(OfpError::BadActionLen);
        }
        let mut a = r.sub(len, OfpError::BadActionLen)?;
        out.push(decode_action(&mut a, v)?);
    }
    Ok(out)
}

fn exact_len(a: &Reader, want: usize) -> Result<(), OfpError> {
    if a.remaining() + 4 == want { Ok(()) } else { Err(OfpError::BadActionLen) }
}

fn decode_action(a: &mut Reader, v: Version) -> Result<Action, OfpError> {
    let t = a.u16()?;
    a.skip(2)?;
    use Version::*;
    let action = match (v, t) {
        (Of10, 0) => {
            exact_len(a, 8)?;
            Action::Output { port: port_from_of10(a.u16()?), max_len: a.u16()? }
        }
        (Of13, 0) => {
            exact_len(a, 16)?;
            Action::Output { port: a.u32()?, max_len: a.u16()? }
        }
        (Of10, 1) => {
            exact_len(a, 8)?;
            let vid = a.u16()?;
            if vid > 0xfff {
                return Err(OfpError::BadActionArgument);
            }
            Action::SetVlanVid(vid)
        }
        (Of10, 2) => {
            exact_len(a, 8)?;
            let pcp = a.u8()?;
            if pcp > 7 {
                return Err(OfpError::BadActionArgument);
            }
            Action::SetVlanPcp(pcp)
        }
        (Of10, 3) | (Of13, 18) => {
            exact_len(a, 8)?;
            Action::PopVlan
        }
        (Of10, 4) | (Of10, 5) => {
            exact_len(a, 16)?;
            let mac = a.array()?;
            if t == 4 { Action::SetDlSrc(mac) } else { Action::SetDlDst(mac) }
        }
        (Of10, 6) | (Of10, 7) => {
            exact_len(a, 8)?;
            let ip = a.u32()?;
            if t == 6 { Action::SetNwSrc(ip) } else { Action::SetNwDst(ip) }
        }
        (Of10, 8) => {
            exact_len(a, 8)?;
            let tos = a.u8()?;
            if tos & 3 != 0 {
                return Err(OfpError::BadActionArgument);
            }
            Action::SetNwTos(tos)
        }
        (Of10, 9) | (Of10, 10) => {
            exact_len(a, 8)?;
            let p = a.u16()?;
            if t == 9 { Action::SetTpSrc(p) } else { Action::SetTpDst(p) }
        }
        (Of10, 11) => {
            exact_len(a, 16)?;
            let port = port_from_of10(a.u16()?);
            a.skip(6)?;
            Action::Enqueue { port, queue_id: a.u32()? }
        }
        (Of13, 11) | (Of13, 12) | (Of13, 24) => {
            exact_len(a, 8)?;
            match t {
                11 => Action::CopyTtlOut,
                12 => Action::CopyTtlIn,
                _ => Action::DecNwTtl,
            }
        }
        (Of13, 17) => {
            exact_len(a, 8)?;
            let ethertype = a.u16()?;
            if ethertype != 0x8100 && ethertype != 0x88a8 {
                return Err(OfpError::BadActionArgument);
            }
            Action::PushVlan(ethertype)
        }
        (Of13, 21) | (Of13, 22) => {
            exact_len(a, 8)?;
            let x = a.u32()?;
            if t == 21 { Action::SetQueue(x) } else { Action::Group(x) }
        }
        (Of13, 23) => {
            exact_len(a, 8)?;
            Action::SetNwTtl(a.u8()?)
        }
        (Of13, 25) => {
            let f = decode_tlv(a).map_err(set_field_error)?;
            if f.mask.is_some() {
                return Err(OfpError::BadSetArgument);
            }
            check_zero_padding(a)?;
            Action::SetField { field: f.field, value: f.value }
        }
        (_, 0xffff) => decode_nx_action(a, v)?,
        _ => return Err(OfpError::BadActionType),
    };
    Ok(action)
}

fn set_field_error(e: OfpError) -> OfpError {
    match e {
        OfpError::BadField => OfpError::BadSetType,
        OfpError::BadMatchLen => OfpError::BadSetLen,
        OfpError::BadValue | OfpError::BadMask | OfpError::BadWildcards => OfpError::BadSetArgument,
        e => e,
    }
}

fn check_zero_padding(a: &mut Reader) -> Result<(), OfpError> {
    if a.remaining() >= 8 || a.rest().iter().any(|&b| b != 0) {
        return Err(OfpError::BadActionLen);
    }
    Ok(())
}

fn decode_nx_action(a: &mut Reader, v: Version) -> Result<Action, OfpError> {
    if a.u32()? != NX_VENDOR_ID {
        return Err(OfpError::BadActionVendor);
    }
    let subtype = a.u16()?;
    // `a` now holds the action past its 10-byte header.
    let total = a.remaining() + 10;
    let want = |n: usize| if total == n { Ok(()) } else { Err(OfpError::BadActionLen) };
    let action = match subtype {
        NXAST_RESUBMIT | NXAST_RESUBMIT_TABLE => {
            want(16)?;
            let in_port = port_from_of10(a.u16()?);
            let table = a.u8()?;
            Action::Resubmit { in_port, table: (subtype == NXAST_RESUBMIT_TABLE).then_some(table) }
        }
        NXAST_DEC_TTL | NXAST_POP_QUEUE => {
            want(16)?;
            if subtype == NXAST_DEC_TTL { Action::NxDecTtl } else { Action::PopQueue }
        }
        NXAST_NOTE => Action::Note(a.rest().to_vec()),
        NXAST_REG_LOAD => {
            want(24)?;
            let on = a.u16()?;
            let dst = check_slice(from_ofs_nbits(read_slice_header(a)?, on))?;
            let value = a.u64()?;
            if dst.n_bits < 64 && value >> dst.n_bits != 0 {
                return Err(OfpError::BadSetArgument);
            }
            Action::RegLoad { dst, value }
        }
        NXAST_REG_MOVE => {
            want(24)?;
            let n_bits = a.u16()?;
            let (src_ofs, dst_ofs) = (a.u16()?, a.u16()?);
            let src = FieldSlice { field: read_slice_header(a)?, ofs: src_ofs, n_bits };
            let dst = FieldSlice { field: read_slice_header(a)?, ofs: dst_ofs, n_bits };
            Action::RegMove { src: check_slice(src)?, dst: check_slice(dst)? }
        }
        NXAST_OUTPUT_TRUNC => {
            want(16)?;
            let port = port_from_of10(a.u16()?);
            Action::OutputTrunc { port, max_len: a.u32()? }
        }
        NXAST_OUTPUT_REG => {
            want(24)?;
            let on = a.u16()?;
            let src = check_slice(from_ofs_nbits(read_slice_header(a)?, on))?;
            Action::OutputReg { src, max_len: a.u16()? }
        }
        NXAST_REG_LOAD2 => {
            let f = decode_tlv(a).map_err(set_field_error)?;
            check_zero_padding(a)?;
            Action::RegLoad2(f)
        }
        NXAST_CLONE => {
            a.skip(6)?;
            Action::Clone(decode_actions(a, v)?)
        }
        NXAST_WRITE_METADATA => {
            want(32)?;
            a.skip(6)?;
            Action::NxWriteMetadata { metadata: a.u64()?, mask: a.u64()? }
        }
        _ => return Err(OfpError::BadActionVendorType),
    };
    Ok(action)
}

fn unsupported(what: &'static str, v: Version) -> EncodeError {
    EncodeError::Unsupported(what, v)
}

pub(crate) fn encode_actions(w: &mut Writer, actions: &[Action], v: Version) -> Result<(), EncodeError> {
    actions.iter().try_for_each(|a| encode_action(w, a, v))
}

fn encode_action(w: &mut Writer, action: &Action, v: Version) -> Result<(), EncodeError> {
    let start = w.len();
    let std = |w: &mut Writer, t: u16| {
        w.u16(t);
        w.u16(0);
    };
    let only = |want: Version, what| if v == want { Ok(()) } else { Err(unsupported(what, v)) };
    match *action {
        Action::Output { port, max_len } => {
            std(w, 0);
            write_port(w, v, port)?;
            w.u16(max_len);
            if v == Version::Of13 {
                w.zeros(6);
            }
        }
        Action::Enqueue { port, queue_id } => {
            only(Version::Of10, "enqueue")?;
            std(w, 11);
            write_port(w, v, port)?;
            w.zeros(6);
            w.u32(queue_id);
        }
        Action::SetVlanVid(vid) => {
            only(Version::Of10, "mod_vlan_vid")?;
            std(w, 1);
            w.u16(vid);
            w.zeros(2);
        }
        Action::SetVlanPcp(pcp) => {
            only(Version::Of10, "mod_vlan_pcp")?;
            std(w, 2);
            w.u8(pcp);
            w.zeros(3);
        }
        Action::PopVlan => {
            std(w, if v == Version::Of10 { 3 } else { 18 });
            w.zeros(4);
        }
        Action::SetDlSrc(mac) | Action::SetDlDst(mac) => {
            only(Version::Of10, "mod_dl_src/mod_dl_dst")?;
            std(w, if matches!(action, Action::SetDlSrc(_)) { 4 } else { 5 });
            w.bytes(&mac);
            w.zeros(6);
        }
        Action::SetNwSrc(ip) | Action::SetNwDst(ip) => {
            only(Version::Of10, "mod_nw_src/mod_nw_dst")?;
            std(w, if matches!(action, Action::SetNwSrc(_)) { 6 } else { 7 });
            w.u32(ip);
        }
        Action::SetNwTos(tos) => {
            only(Version::Of10, "mod_nw_tos")?;
            std(w, 8);
            w.u8(tos);
            w.zeros(3);
        }
        Action::SetTpSrc(p) | Action::SetTpDst(p) => {
            only(Version::Of10, "mod_tp_src/mod_tp_dst")?;
            std(w, if matches!(action, Action::SetTpSrc(_)) { 9 } else { 10 });
            w.u16(p);
            w.zeros(2);
        }
        Action::CopyTtlOut | Action::CopyTtlIn | Action::DecNwTtl => {
            only(Version::Of13, "copy_ttl/dec_nw_ttl")?;
            std(
                w,
                match action {
                    Action::CopyTtlOut => 11,
                    Action::CopyTtlIn => 12,
                    _ => 24,
                },
            );
            w.zeros(4);
        }
        Action::PushVlan(ethertype) => {
            only(Version::Of13, "push_vlan")?;
            std(w, 17);
            w.u16(ethertype);
            w.zeros(2);
        }
        Action::SetQueue(x) | Action::Group(x) => {
            only(Version::Of13, "set_queue/group")?;
            std(w, if matches!(action, Action::SetQueue(_)) { 21 } else { 22 });
            w.u32(x);
        }
        Action::SetNwTtl(ttl) => {
            only(Version::Of13, "mod_nw_ttl")?;
            std(w, 23);
            w.u8(ttl);
            w.zeros(3);
        }
        Action::SetField { field, value } => {
            only(Version::Of13, "set_field")?;
            std(w, 25);
            encode_tlv(w, &MatchField::exact(field, value), Dialect::Oxm)?;
            w.pad8_from(start);
        }
        Action::Resubmit { in_port, table } => {
            nx_header(w, if table.is_some() { NXAST_RESUBMIT_TABLE } else { NXAST_RESUBMIT });
            w.u16(port_to_of10(in_port).ok_or(EncodeError::Invalid("resubmit in_port"))?);
            w.u8(table.unwrap_or(0));
            w.zeros(3);
        }
        Action::NxDecTtl | Action::PopQueue => {
            nx_header(w, if matches!(action, Action::NxDecTtl) { NXAST_DEC_TTL } else { NXAST_POP_QUEUE });
            w.zeros(6);
        }
        Action::Note(ref bytes) => {
            nx_header(w, NXAST_NOTE);
            w.bytes(bytes);
            w.pad8_from(start);
        }
        Action::RegLoad { dst, value } => {
            nx_header(w, NXAST_REG_LOAD);
            w.u16(ofs_nbits(checked(dst)?));
            w.u32(dst.field.header(NX_SLICE_DIALECT).to_u32());
            w.u64(value);
        }
        Action::RegLoad2(ref f) => {
            nx_header(w, NXAST_REG_LOAD2);
            encode_tlv(w, f, dialect(v))?;
            w.pad8_from(start);
        }
        Action::RegMove { src, dst } => {
            nx_header(w, NXAST_REG_MOVE);
            if src.n_bits != dst.n_bits {
                return Err(EncodeError::Invalid("move: slices of different widths"));
            }
            // `n_bits` is a whole u16 here (IPv6 addresses move in one action).
            let within =
                |s: FieldSlice| check_slice(s).map_err(|_| EncodeError::Invalid("field slice out of the field"));
            w.u16(within(src)?.n_bits);
            w.u16(src.ofs);
            w.u16(within(dst)?.ofs);
            w.u32(src.field.header(NX_SLICE_DIALECT).to_u32());
            w.u32(dst.field.header(NX_SLICE_DIALECT).to_u32());
        }
        Action::OutputReg { src, max_len } => {
            nx_header(w, NXAST_OUTPUT_REG);
            w.u16(ofs_nbits(checked(src)?));
            w.u32(src.field.header(NX_SLICE_DIALECT).to_u32());
            w.u16(max_len);
            w.zeros(6);
        }
        Action::OutputTrunc { port, max_len } => {
            nx_header(w, NXAST_OUTPUT_TRUNC);
            w.u16(port_to_of10(port).ok_or(EncodeError::Invalid("output_trunc port without a 16-bit form"))?);
            w.u32(max_len);
        }
        Action::Clone(ref inner) => {
            nx_header(w, NXAST_CLONE);
            w.zeros(6);
            encode_actions(w, inner, v)?;
        }
        Action::NxWriteMetadata { metadata, mask } => {
            nx_header(w, NXAST_WRITE_METADATA);
            w.zeros(6);
            w.u64(metadata);
            w.u64(mask);
        }
    }
    let len = len16(w.len() - start, "action")?;
    w.patch_u16(start + 2, len);
    Ok(())
}

/// `s` if it lies within its field and its width fits the 6-bit `n_bits - 1`.
fn checked(s: FieldSlice) -> Result<FieldSlice, EncodeError> {
    if s.n_bits > 64 {
        return Err(EncodeError::Invalid("field slice wider than 64 bits"));
    }
    check_slice(s).map_err(|_| EncodeError::Invalid("field slice out of the field"))
}

fn nx_header(w: &mut Writer, subtype: u16) {
    w.u16(0xffff);
    w.u16(0);
    w.u32(NX_VENDOR_ID);
    w.u16(subtype);
}

/// An OpenFlow 1.3 instruction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Instruction {
    GotoTable(u8),
    WriteMetadata {
        metadata: u64,
        mask: u64,
    },
    WriteActions(Vec<Action>),
    ApplyActions(Vec<Action>),
    ClearActions,
    /// Decoded so it can be refused with a precise error by whoever applies it.
    Meter(u32),
}

/// Reads an instruction list filling all of `r` (OpenFlow 1.3).
pub(crate) fn decode_instructions(r: &mut Reader) -> Result<Vec<Instruction>, OfpError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let t = r.peek_u16().map_err(|_| OfpError::BadInstructionLen)?;
        let mut peek = r.clone();
        peek.skip(2).map_err(|_| OfpError::BadInstructionLen)?;
        let len = peek.u16().map_err(|_| OfpError::BadInstructionLen)? as usize;
        if len < 8 || !len.is_multiple_of(8) || len > r.remaining() {
            return Err(OfpError::BadInstructionLen);
        }
        let mut i = r.sub(len, OfpError::BadInstructionLen)?;
        i.skip(4)?;
        let want = |n: usize| if len == n { Ok(()) } else { Err(OfpError::BadInstructionLen) };
        out.push(match t {
            1 => {
                want(8)?;
                Instruction::GotoTable(i.u8()?)
            }
            2 => {
                want(24)?;
                i.skip(4)?;
                Instruction::WriteMetadata { metadata: i.u64()?, mask: i.u64()? }
            }
            3 | 4 => {
                i.skip(4)?;
                let actions = decode_actions(&mut i, Version::Of13)?;
                if t == 3 { Instruction::WriteActions(actions) } else { Instruction::ApplyActions(actions) }
            }
            5 => {
                want(8)?;
                Instruction::ClearActions
            }
            6 => {
                want(8)?;
                Instruction::Meter(i.u32()?)
            }
            _ => return Err(OfpError::UnknownInstruction),
        });
    }
    Ok(out)
}

pub(crate) fn encode_instructions(w: &mut Writer, list: &[Instruction]) -> Result<(), EncodeError> {
    for ins in list {
        let start = w.len();
        let head = |w: &mut Writer, t: u16| {
            w.u16(t);
            w.u16(0);
        };
        match ins {
            Instruction::GotoTable(t) => {
                head(w, 1);
                w.u8(*t);
                w.zeros(3);
            }
            Instruction::WriteMetadata { metadata, mask } => {
                head(w, 2);
                w.zeros(4);
                w.u64(*metadata);
                w.u64(*mask);
            }
            Instruction::WriteActions(a) | Instruction::ApplyActions(a) => {
                head(w, if matches!(ins, Instruction::WriteActions(_)) { 3 } else { 4 });
                w.zeros(4);
                encode_actions(w, a, Version::Of13)?;
            }
            Instruction::ClearActions => {
                head(w, 5);
                w.zeros(4);
            }
            Instruction::Meter(m) => {
                head(w, 6);
                w.u32(*m);
            }
        }
        let len = len16(w.len() - start, "instruction")?;
        w.patch_u16(start + 2, len);
    }
    Ok(())
}

/// OpenFlow 1.0's action list as instructions (see the module doc).
pub(crate) fn actions_to_instructions(actions: Vec<Action>) -> Vec<Instruction> {
    if actions.is_empty() { Vec::new() } else { vec![Instruction::ApplyActions(actions)] }
}

/// The OpenFlow 1.0 action list of `instructions`, if they have that form.
pub(crate) fn instructions_to_actions(list: &[Instruction]) -> Result<&[Action], EncodeError> {
    match list {
        [] => Ok(&[]),
        [Instruction::ApplyActions(a)] if !a.is_empty() => Ok(a),
        _ => Err(EncodeError::Unsupported("instructions other than one non-empty apply_actions", Version::Of10)),
    }
}
