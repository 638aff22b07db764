//! Flow table messages: flow-mod (OpenFlow 1.0, 1.3 and Nicira `NXT_FLOW_MOD`),
//! flow-removed, and the bodies of flow and aggregate statistics (standard and
//! `NXST_FLOW` / `NXST_AGGREGATE`).
//!
//! One struct serves every encoding; fields an encoding lacks read back as the value
//! given in their doc and must have that value to be encoded (else [`EncodeError`]).
//! OpenFlow 1.0 and Nicira flow-mods carry `table_id` in the upper byte of `command`,
//! which the switch honours only after `NXT_FLOW_MOD_TABLE_ID` enabled it.

use super::Version;
use super::action::{
    Instruction, actions_to_instructions, decode_actions, decode_instructions, encode_actions, encode_instructions,
    instructions_to_actions,
};
use super::error::{EncodeError, OfpError, len16};
use super::field::{Match, decode_nx_match, decode_oxm_match, encode_nx_match, encode_oxm_match};
use super::match10::{decode_match10, encode_match10};
use super::port::{OFPG_ANY, read_port, write_port};
use super::wire::{Reader, Writer};

/// Which flow-table encoding a body uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The version's standard form (1.0 `ofp_match` + actions, 1.3 OXM + instructions).
    Standard(Version),
    /// Nicira NXM match + actions of `Version`.
    Nicira(Version),
}

impl Format {
    fn version(self) -> Version {
        match self {
            Format::Standard(v) | Format::Nicira(v) => v,
        }
    }
}

fn absent<T: PartialEq>(value: T, default: T, what: &'static str, v: Version) -> Result<(), EncodeError> {
    if value == default { Ok(()) } else { Err(EncodeError::Unsupported(what, v)) }
}

/// `OFPFC_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowModCommand {
    Add = 0,
    Modify = 1,
    ModifyStrict = 2,
    Delete = 3,
    DeleteStrict = 4,
}

impl FlowModCommand {
    fn from_wire(c: u8) -> Result<Self, OfpError> {
        Ok(match c {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            _ => return Err(OfpError::FlowModBadCommand),
        })
    }
}

/// `OFPFF_SEND_FLOW_REM`: send flow-removed when the flow expires or is deleted.
pub const OFPFF_SEND_FLOW_REM: u16 = 1 << 0;
/// `OFPFF_CHECK_OVERLAP`.
pub const OFPFF_CHECK_OVERLAP: u16 = 1 << 1;
/// `OFPFF_EMERG` (OpenFlow 1.0 only; bit 2 is `RESET_COUNTS` in 1.3).
pub const OFPFF10_EMERG: u16 = 1 << 2;
/// `OFPFF_RESET_COUNTS` (OpenFlow 1.3).
pub const OFPFF13_RESET_COUNTS: u16 = 1 << 2;
/// `OFPFF_NO_PKT_COUNTS` (OpenFlow 1.3).
pub const OFPFF13_NO_PKT_COUNTS: u16 = 1 << 3;
/// `OFPFF_NO_BYT_COUNTS` (OpenFlow 1.3).
pub const OFPFF13_NO_BYT_COUNTS: u16 = 1 << 4;

/// A flow-table modification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowMod {
    pub cookie: u64,
    /// 1.3 only (0 otherwise): which cookie bits modify/delete must match.
    pub cookie_mask: u64,
    pub table_id: u8,
    pub command: FlowModCommand,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub buffer_id: u32,
    /// For delete: only flows that output to this port (`OFPP_ANY`: any).
    pub out_port: u32,
    /// 1.3 only (`OFPG_ANY` otherwise).
    pub out_group: u32,
    /// `OFPFF_*` bits of the message's version.
    pub flags: u16,
    pub matches: Match,
    pub instructions: Vec<Instruction>,
}

impl FlowMod {
    pub(crate) fn decode(r: &mut Reader, f: Format) -> Result<Self, OfpError> {
        match f {
            Format::Standard(Version::Of13) => {
                let cookie = r.u64()?;
                let cookie_mask = r.u64()?;
                let table_id = r.u8()?;
                let command = FlowModCommand::from_wire(r.u8()?)?;
                let (idle_timeout, hard_timeout, priority) = (r.u16()?, r.u16()?, r.u16()?);
                let (buffer_id, out_port, out_group, flags) = (r.u32()?, r.u32()?, r.u32()?, r.u16()?);
                r.skip(2)?;
                let matches = decode_oxm_match(r)?;
                let instructions = decode_instructions(r)?;
                Ok(FlowMod {
                    cookie,
                    cookie_mask,
                    table_id,
                    command,
                    idle_timeout,
                    hard_timeout,
                    priority,
                    buffer_id,
                    out_port,
                    out_group,
                    flags,
                    matches,
                    instructions,
                })
            }
            Format::Standard(Version::Of10) | Format::Nicira(_) => {
                let v = f.version();
                let nicira = matches!(f, Format::Nicira(_));
                let std_match = if nicira { None } else { Some(decode_match10(r)?) };
                let cookie = r.u64()?;
                let command = r.u16()?;
                let (idle_timeout, hard_timeout, priority) = (r.u16()?, r.u16()?, r.u16()?);
                let buffer_id = r.u32()?;
                let out_port = read_port(r, Version::Of10)?;
                let flags = r.u16()?;
                let matches = match std_match {
                    Some(m) => m,
                    None => {
                        let match_len = r.u16()? as usize;
                        r.skip(6)?;
                        decode_nx_match(r, match_len)?
                    }
                };
                let actions = decode_actions(r, v)?;
                Ok(FlowMod {
                    cookie,
                    cookie_mask: 0,
                    table_id: (command >> 8) as u8,
                    command: FlowModCommand::from_wire(command as u8)?,
                    idle_timeout,
                    hard_timeout,
                    priority,
                    buffer_id,
                    out_port,
                    out_group: OFPG_ANY,
                    flags,
                    matches,
                    instructions: actions_to_instructions(actions),
                })
            }
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer, f: Format) -> Result<(), EncodeError> {
        match f {
            Format::Standard(Version::Of13) => {
                w.u64(self.cookie);
                w.u64(self.cookie_mask);
                w.u8(self.table_id);
                w.u8(self.command as u8);
                w.u16(self.idle_timeout);
                w.u16(self.hard_timeout);
                w.u16(self.priority);
                w.u32(self.buffer_id);
                w.u32(self.out_port);
                w.u32(self.out_group);
                w.u16(self.flags);
                w.zeros(2);
                encode_oxm_match(w, &self.matches)?;
                encode_instructions(w, &self.instructions)
            }
            Format::Standard(Version::Of10) | Format::Nicira(_) => {
                let v = f.version();
                absent(self.cookie_mask, 0, "cookie_mask", Version::Of10)?;
                absent(self.out_group, OFPG_ANY, "out_group", Version::Of10)?;
                let actions = instructions_to_actions(&self.instructions)?;
                let nicira = matches!(f, Format::Nicira(_));
                if !nicira {
                    encode_match10(w, &self.matches)?;
                }
                w.u64(self.cookie);
                w.u16((u16::from(self.table_id) << 8) | self.command as u16);
                w.u16(self.idle_timeout);
                w.u16(self.hard_timeout);
                w.u16(self.priority);
                w.u32(self.buffer_id);
                write_port(w, Version::Of10, self.out_port)?;
                w.u16(self.flags);
                if nicira {
                    let at = w.len();
                    w.u16(0);
                    w.zeros(6);
                    let len = encode_nx_match(w, &self.matches)?;
                    w.patch_u16(at, len);
                }
                encode_actions(w, actions, v)
            }
        }
    }
}

/// Why a flow was removed (`OFPRR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowRemovedReason {
    IdleTimeout = 0,
    HardTimeout = 1,
    Delete = 2,
    GroupDelete = 3,
}

/// `OFPT_FLOW_REMOVED` (standard forms only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowRemoved {
    pub cookie: u64,
    pub priority: u16,
    pub reason: FlowRemovedReason,
    /// 1.3 only (0 otherwise).
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub idle_timeout: u16,
    /// 1.3 only (0 otherwise).
    pub hard_timeout: u16,
    pub packet_count: u64,
    pub byte_count: u64,
    pub matches: Match,
}

impl FlowRemoved {
    pub(crate) fn decode(r: &mut Reader, v: Version) -> Result<Self, OfpError> {
        let of10_match = if v == Version::Of10 { Some(decode_match10(r)?) } else { None };
        let cookie = r.u64()?;
        let priority = r.u16()?;
        let reason = match r.u8()? {
            0 => FlowRemovedReason::IdleTimeout,
            1 => FlowRemovedReason::HardTimeout,
            2 => FlowRemovedReason::Delete,
            3 if v == Version::Of13 => FlowRemovedReason::GroupDelete,
            _ => return Err(OfpError::BadValue),
        };
        let table_id = r.u8()?;
        let (duration_sec, duration_nsec, idle_timeout) = (r.u32()?, r.u32()?, r.u16()?);
        let hard_timeout = r.u16()?;
        let (packet_count, byte_count) = (r.u64()?, r.u64()?);
        let matches = match of10_match {
            Some(m) => m,
            None => decode_oxm_match(r)?,
        };
        // In 1.0 the two u8/u16 slots read above are padding.
        let (table_id, hard_timeout) = if v == Version::Of10 { (0, 0) } else { (table_id, hard_timeout) };
        Ok(FlowRemoved {
            cookie,
            priority,
            reason,
            table_id,
            duration_sec,
            duration_nsec,
            idle_timeout,
            hard_timeout,
            packet_count,
            byte_count,
            matches,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer, v: Version) -> Result<(), EncodeError> {
        if v == Version::Of10 {
            absent(self.table_id, 0, "flow-removed table_id", v)?;
            absent(self.hard_timeout, 0, "flow-removed hard_timeout", v)?;
            absent(self.reason == FlowRemovedReason::GroupDelete, false, "group-delete reason", v)?;
            encode_match10(w, &self.matches)?;
        }
        w.u64(self.cookie);
        w.u16(self.priority);
        w.u8(self.reason as u8);
        w.u8(self.table_id);
        w.u32(self.duration_sec);
        w.u32(self.duration_nsec);
        w.u16(self.idle_timeout);
        w.u16(self.hard_timeout);
        w.u64(self.packet_count);
        w.u64(self.byte_count);
        if v == Version::Of13 {
            encode_oxm_match(w, &self.matches)?;
        }
        Ok(())
    }
}

/// The body of a flow or aggregate statistics request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowStatsRequest {
    /// 0xff: all tables.
    pub table_id: u8,
    pub out_port: u32,
    /// 1.3 only (`OFPG_ANY` otherwise).
    pub out_group: u32,
    /// 1.3 only (0 otherwise).
    pub cookie: u64,
    /// 1.3 only (0 otherwise).
    pub cookie_mask: u64,
    pub matches: Match,
}

impl FlowStatsRequest {
    pub(crate) fn decode(r: &mut Reader, f: Format) -> Result<Self, OfpError> {
        let mut req = FlowStatsRequest {
            table_id: 0,
            out_port: 0,
            out_group: OFPG_ANY,
            cookie: 0,
            cookie_mask: 0,
            matches: Match::default(),
        };
        match f {
            Format::Standard(Version::Of10) => {
                req.matches = decode_match10(r)?;
                req.table_id = r.u8()?;
                r.skip(1)?;
                req.out_port = read_port(r, Version::Of10)?;
            }
            Format::Standard(Version::Of13) => {
                req.table_id = r.u8()?;
                r.skip(3)?;
                req.out_port = r.u32()?;
                req.out_group = r.u32()?;
                r.skip(4)?;
                req.cookie = r.u64()?;
                req.cookie_mask = r.u64()?;
                req.matches = decode_oxm_match(r)?;
            }
            Format::Nicira(_) => {
                req.out_port = read_port(r, Version::Of10)?;
                let match_len = r.u16()? as usize;
                req.table_id = r.u8()?;
                r.skip(3)?;
                req.matches = decode_nx_match(r, match_len)?;
            }
        }
        Ok(req)
    }

    pub(crate) fn encode(&self, w: &mut Writer, f: Format) -> Result<(), EncodeError> {
        if f != Format::Standard(Version::Of13) {
            absent(self.out_group, OFPG_ANY, "out_group", Version::Of10)?;
            absent(self.cookie, 0, "cookie in a flow stats request", Version::Of10)?;
            absent(self.cookie_mask, 0, "cookie_mask", Version::Of10)?;
        }
        match f {
            Format::Standard(Version::Of10) => {
                encode_match10(w, &self.matches)?;
                w.u8(self.table_id);
                w.u8(0);
                write_port(w, Version::Of10, self.out_port)?;
            }
            Format::Standard(Version::Of13) => {
                w.u8(self.table_id);
                w.zeros(3);
                w.u32(self.out_port);
                w.u32(self.out_group);
                w.zeros(4);
                w.u64(self.cookie);
                w.u64(self.cookie_mask);
                encode_oxm_match(w, &self.matches)?;
            }
            Format::Nicira(_) => {
                write_port(w, Version::Of10, self.out_port)?;
                let at = w.len();
                w.u16(0);
                w.u8(self.table_id);
                w.zeros(3);
                let len = encode_nx_match(w, &self.matches)?;
                w.patch_u16(at, len);
            }
        }
        Ok(())
    }
}

/// One flow in a flow statistics reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowStats {
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    /// 1.3 only (0 otherwise).
    pub flags: u16,
    /// Nicira only (0 otherwise): seconds since the last hit, plus one (0: unknown);
    /// `ovs-ofctl` prints this minus one as `idle_age`.
    pub idle_age: u16,
    /// Nicira only (0 otherwise): seconds since added or modified, plus one (0: unknown).
    pub hard_age: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    pub matches: Match,
    pub instructions: Vec<Instruction>,
}

impl FlowStats {
    pub(crate) fn decode(r: &mut Reader, f: Format) -> Result<Self, OfpError> {
        let len = r.u16()? as usize;
        if len < 4 {
            return Err(OfpError::BadLen);
        }
        let mut e = r.sub(len - 2, OfpError::BadLen)?;
        let table_id = e.u8()?;
        e.skip(1)?;
        let of10_match = if f == Format::Standard(Version::Of10) { Some(decode_match10(&mut e)?) } else { None };
        let (duration_sec, duration_nsec) = (e.u32()?, e.u32()?);
        let (priority, idle_timeout, hard_timeout) = (e.u16()?, e.u16()?, e.u16()?);
        let (mut flags, mut idle_age, mut hard_age, mut match_len) = (0, 0, 0, 0);
        match f {
            Format::Standard(Version::Of10) => e.skip(6)?,
            Format::Standard(Version::Of13) => {
                flags = e.u16()?;
                e.skip(4)?;
            }
            Format::Nicira(_) => {
                match_len = e.u16()? as usize;
                idle_age = e.u16()?;
                hard_age = e.u16()?;
            }
        }
        let (cookie, packet_count, byte_count) = (e.u64()?, e.u64()?, e.u64()?);
        let (matches, instructions) = match f {
            Format::Standard(Version::Of10) => {
                (of10_match.unwrap_or_default(), actions_to_instructions(decode_actions(&mut e, Version::Of10)?))
            }
            Format::Standard(Version::Of13) => (decode_oxm_match(&mut e)?, decode_instructions(&mut e)?),
            Format::Nicira(v) => {
                let m = decode_nx_match(&mut e, match_len)?;
                (m, actions_to_instructions(decode_actions(&mut e, v)?))
            }
        };
        Ok(FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            idle_age,
            hard_age,
            cookie,
            packet_count,
            byte_count,
            matches,
            instructions,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer, f: Format) -> Result<(), EncodeError> {
        let v = f.version();
        if f != Format::Standard(Version::Of13) {
            absent(self.flags, 0, "flow stats flags", v)?;
        }
        if !matches!(f, Format::Nicira(_)) {
            absent((self.idle_age, self.hard_age), (0, 0), "idle_age/hard_age", v)?;
        }
        let start = w.len();
        w.u16(0);
        w.u8(self.table_id);
        w.u8(0);
        if f == Format::Standard(Version::Of10) {
            encode_match10(w, &self.matches)?;
        }
        w.u32(self.duration_sec);
        w.u32(self.duration_nsec);
        w.u16(self.priority);
        w.u16(self.idle_timeout);
        w.u16(self.hard_timeout);
        let mut match_len_at = None;
        match f {
            Format::Standard(Version::Of10) => w.zeros(6),
            Format::Standard(Version::Of13) => {
                w.u16(self.flags);
                w.zeros(4);
            }
            Format::Nicira(_) => {
                match_len_at = Some(w.len());
                w.u16(0);
                w.u16(self.idle_age);
                w.u16(self.hard_age);
            }
        }
        w.u64(self.cookie);
        w.u64(self.packet_count);
        w.u64(self.byte_count);
        match f {
            Format::Standard(Version::Of10) => encode_actions(w, instructions_to_actions(&self.instructions)?, v)?,
            Format::Standard(Version::Of13) => {
                encode_oxm_match(w, &self.matches)?;
                encode_instructions(w, &self.instructions)?;
            }
            Format::Nicira(_) => {
                let len = encode_nx_match(w, &self.matches)?;
                w.patch_u16(match_len_at.expect("set for Nicira"), len);
                encode_actions(w, instructions_to_actions(&self.instructions)?, v)?;
            }
        }
        let len = len16(w.len() - start, "flow stats entry")?;
        w.patch_u16(start, len);
        Ok(())
    }
}

/// An aggregate statistics reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AggregateStats {
    pub packet_count: u64,
    pub byte_count: u64,
    pub flow_count: u32,
}

impl AggregateStats {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, OfpError> {
        let a = AggregateStats { packet_count: r.u64()?, byte_count: r.u64()?, flow_count: r.u32()? };
        r.skip(4)?;
        Ok(a)
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u64(self.packet_count);
        w.u64(self.byte_count);
        w.u32(self.flow_count);
        w.zeros(4);
    }
}
