//! The message envelope: header framing, the [`Body`] of every message type, and the
//! per-version dispatch between wire type numbers and bodies.

use super::action::{Action, NX_VENDOR_ID, decode_actions, encode_actions};
use super::error::{DecodeError, EncodeError, OfpError, len16};
use super::field::{Field, Match, MatchField, decode_oxm_match, encode_oxm_match};
use super::flow::{FlowMod, FlowRemoved, Format};
use super::multipart::{Bucket, GroupType, MultipartReply, MultipartRequest, decode_buckets, encode_buckets};
use super::port::{Port, PortMod, PortStatus, port_len, read_port, write_port};
use super::wire::{Reader, Writer};

/// An OpenFlow version this codec speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// OpenFlow 1.0, wire version 0x01.
    Of10,
    /// OpenFlow 1.3, wire version 0x04.
    Of13,
}

impl Version {
    pub fn wire(self) -> u8 {
        match self {
            Version::Of10 => 1,
            Version::Of13 => 4,
        }
    }

    /// `ovs-ofctl`'s name for the version (its `-O`, a bridge's `protocols`).
    pub fn ofctl_name(self) -> &'static str {
        match self {
            Version::Of10 => "OpenFlow10",
            Version::Of13 => "OpenFlow13",
        }
    }

    /// The version `ovs-ofctl` names `name` (case-insensitive, as `-O` takes it).
    pub fn from_ofctl_name(name: &str) -> Result<Version, String> {
        [Version::Of10, Version::Of13]
            .into_iter()
            .find(|v| v.ofctl_name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| format!("unknown or unsupported OpenFlow version `{name}` (OpenFlow10 or OpenFlow13)"))
    }

    /// The version a comma-separated `ovs-ofctl -O` list (or a bridge's `protocols`)
    /// comes to with ferrovs: the highest listed version it speaks, as `ovs-ofctl`
    /// negotiates the highest version both ends allow (`OpenFlow10,OpenFlow13` is
    /// OpenFlow13). Versions OVS knows and ferrovs does not (1.1, 1.2, 1.4, 1.5) are
    /// skipped; a list of only those, or an unknown name, is an error.
    pub fn from_ofctl_list(list: &str) -> Result<Version, String> {
        const OTHERS: [&str; 4] = ["OpenFlow11", "OpenFlow12", "OpenFlow14", "OpenFlow15"];
        let mut best = None;
        for name in list.split(',').map(str::trim) {
            if OTHERS.iter().any(|o| o.eq_ignore_ascii_case(name)) {
                continue;
            }
            best = best.max(Some(Version::from_ofctl_name(name)?));
        }
        best.ok_or_else(|| format!("`{list}` names no OpenFlow version ferrovs speaks (OpenFlow10 or OpenFlow13)"))
    }

    pub fn from_wire(v: u8) -> Option<Version> {
        match v {
            1 => Some(Version::Of10),
            4 => Some(Version::Of13),
            _ => None,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::Of10 => "1.0",
            Version::Of13 => "1.3",
        })
    }
}

/// One OpenFlow message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// For [`Body::Hello`] the header carries [`Hello::version`] instead.
    pub version: Version,
    pub xid: u32,
    pub body: Body,
}

/// `OFPT_HELLO`: the sender's highest version and, optionally, the set it supports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hello {
    /// The header's version byte (any value: hellos are exchanged before agreement).
    pub version: u8,
    /// The version bitmap element (bit N = wire version N), when present.
    pub bitmap: Option<u32>,
}

impl Hello {
    /// The hello a side that speaks `versions` sends, as OVS writes it: no bitmap when
    /// the highest version is OpenFlow 1.0.
    pub fn offering(versions: &[Version]) -> Hello {
        let max = versions.iter().copied().max().unwrap_or(Version::Of10);
        let bitmap = versions.iter().fold(0u32, |acc, v| acc | 1 << v.wire());
        Hello { version: max.wire(), bitmap: (max != Version::Of10).then_some(bitmap) }
    }

    fn versions(&self) -> u32 {
        self.bitmap.unwrap_or(match self.version {
            0 => 0,
            31.. => u32::MAX - 1,
            n => (1u32 << (n + 1)) - 2,
        })
    }
}

/// The version two hellos agree on: the highest in both sets (a hello without bitmap
/// offers every version up to its header's), if it is one this codec speaks.
pub fn negotiate(ours: &Hello, theirs: &Hello) -> Option<Version> {
    let common = ours.versions() & theirs.versions();
    [Version::Of13, Version::Of10].into_iter().find(|v| common & (1 << v.wire()) != 0)
}

/// `OFPT_ERROR` as on the wire; [`OfpError::from_wire`] names known pairs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorMsg {
    pub err_type: u16,
    pub code: u16,
    pub data: Vec<u8>,
}

/// `OFPT_FEATURES_REPLY`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FeaturesReply {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    /// 1.3 only (0 otherwise).
    pub auxiliary_id: u8,
    pub capabilities: u32,
    /// 1.0: supported `OFPAT_*` bits; 1.3: the reserved field.
    pub actions: u32,
    /// 1.0 only (empty otherwise; 1.3 uses the port-desc multipart).
    pub ports: Vec<Port>,
}

/// `OFPT_GET_CONFIG_REPLY` / `OFPT_SET_CONFIG`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SwitchConfig {
    /// `OFPC_FRAG_*`.
    pub flags: u16,
    pub miss_send_len: u16,
}

/// `OFPT_PACKET_IN`. In 1.0 the match is exactly `in_port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketIn {
    pub buffer_id: u32,
    pub total_len: u16,
    /// `OFPR_NO_MATCH` (table miss) = 0, `OFPR_ACTION` = 1, `OFPR_INVALID_TTL` = 2.
    pub reason: u8,
    /// 1.3 only (0 otherwise).
    pub table_id: u8,
    /// 1.3 only (0 otherwise).
    pub cookie: u64,
    pub matches: Match,
    pub data: Vec<u8>,
}

/// `OFPT_PACKET_OUT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketOut {
    pub buffer_id: u32,
    pub in_port: u32,
    pub actions: Vec<Action>,
    pub data: Vec<u8>,
}

/// `OFPGC_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupModCommand {
    Add = 0,
    Modify = 1,
    Delete = 2,
}

/// `OFPT_GROUP_MOD` (1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupMod {
    pub command: GroupModCommand,
    pub group_type: GroupType,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

/// `OFPMC_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeterModCommand {
    Add = 0,
    Modify = 1,
    Delete = 2,
}

/// `OFPT_METER_MOD` (1.3). The switch has no meters; the bands are kept as their bytes
/// (whole 16-byte `ofp_meter_band_*` entries), not interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeterMod {
    pub command: MeterModCommand,
    /// `OFPMF_*`; `KBPS` and `PKTPS` together are refused.
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<u8>,
}

/// An `ofp_meter_band_*` entry's size: every band type of OpenFlow 1.3 has 16 bytes.
pub const METER_BAND_LEN: usize = 16;

/// `OFPT_TABLE_MOD` (1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableMod {
    pub table_id: u8,
    pub config: u32,
}

/// `OFPT_ROLE_REQUEST` / `OFPT_ROLE_REPLY` (1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Role {
    /// `OFPCR_ROLE_NOCHANGE` = 0, `EQUAL` = 1, `MASTER` = 2, `SLAVE` = 3.
    pub role: u32,
    pub generation_id: u64,
}

/// `OFPT_GET_ASYNC_REPLY` / `OFPT_SET_ASYNC` (1.3): for each message kind, the reasons
/// sent to a master/equal controller (index 0) and to a slave (index 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AsyncConfig {
    pub packet_in_mask: [u32; 2],
    pub port_status_mask: [u32; 2],
    pub flow_removed_mask: [u32; 2],
}

/// `NXT_SET_FLOW_FORMAT`'s format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowFormat {
    /// `NXFF_OPENFLOW10`.
    OpenFlow10 = 0,
    /// `NXFF_NXM`.
    Nxm = 2,
}

/// `NXT_SET_PACKET_IN_FORMAT`'s format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketInFormat {
    /// `NXPIF_STANDARD`.
    Standard = 0,
    /// `NXPIF_NXT_PACKET_IN`.
    NxPacketIn = 1,
    /// `NXPIF_NXT_PACKET_IN2`.
    NxPacketIn2 = 2,
}

/// The body of a message, one variant per message type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Body {
    Hello(Hello),
    Error(ErrorMsg),
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    FeaturesRequest,
    FeaturesReply(FeaturesReply),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketIn),
    FlowRemoved(FlowRemoved),
    PortStatus(PortStatus),
    PacketOut(PacketOut),
    FlowMod(FlowMod),
    GroupMod(GroupMod),
    MeterMod(MeterMod),
    PortMod(PortMod),
    TableMod(TableMod),
    MultipartRequest(MultipartRequest),
    MultipartReply(MultipartReply),
    BarrierRequest,
    BarrierReply,
    RoleRequest(Role),
    RoleReply(Role),
    GetAsyncRequest,
    GetAsyncReply(AsyncConfig),
    SetAsync(AsyncConfig),
    /// `NXT_SET_FLOW_FORMAT`.
    NxSetFlowFormat(FlowFormat),
    /// `NXT_FLOW_MOD_TABLE_ID`: whether flow-mods carry a table id in `command`.
    NxFlowModTableId(bool),
    /// `NXT_SET_PACKET_IN_FORMAT`.
    NxSetPacketInFormat(PacketInFormat),
    /// `NXT_FLOW_MOD`: a flow-mod with an NXM match.
    NxFlowMod(FlowMod),
}

const NXT_SET_FLOW_FORMAT: u32 = 12;
const NXT_FLOW_MOD: u32 = 13;
const NXT_FLOW_MOD_TABLE_ID: u32 = 15;
const NXT_SET_PACKET_IN_FORMAT: u32 = 16;

/// Wire type numbers that differ between versions: (name, 1.0, 1.3).
mod ty {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const VENDOR: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const OF10_PORT_MOD: u8 = 15;
    pub const OF10_STATS_REQUEST: u8 = 16;
    pub const OF10_STATS_REPLY: u8 = 17;
    pub const OF10_BARRIER_REQUEST: u8 = 18;
    pub const OF10_BARRIER_REPLY: u8 = 19;
    pub const OF13_GROUP_MOD: u8 = 15;
    pub const OF13_PORT_MOD: u8 = 16;
    pub const OF13_TABLE_MOD: u8 = 17;
    pub const OF13_MULTIPART_REQUEST: u8 = 18;
    pub const OF13_MULTIPART_REPLY: u8 = 19;
    pub const OF13_BARRIER_REQUEST: u8 = 20;
    pub const OF13_BARRIER_REPLY: u8 = 21;
    pub const OF13_ROLE_REQUEST: u8 = 24;
    pub const OF13_ROLE_REPLY: u8 = 25;
    pub const OF13_GET_ASYNC_REQUEST: u8 = 26;
    pub const OF13_GET_ASYNC_REPLY: u8 = 27;
    pub const OF13_SET_ASYNC: u8 = 28;
    pub const OF13_METER_MOD: u8 = 29;
}

/// The length of the message at the start of `buf`: `Ok(None)` while fewer than the 8
/// header bytes are there, `Ok(Some(n))` once the header says the message is `n` bytes,
/// an error when it claims fewer than 8.
pub fn next_message_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if len < 8 {
        return Err(DecodeError::new(OfpError::BadLen, &buf[..8]));
    }
    Ok(Some(len))
}

/// Decodes the message at the start of `buf`; returns it and its length. Never panics;
/// every failure is the error OVS would answer with.
pub fn decode(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    let len = match next_message_len(buf)? {
        Some(len) if len <= buf.len() => len,
        _ => return Err(DecodeError::new(OfpError::BadLen, buf)),
    };
    let msg = &buf[..len];
    let t = msg[1];
    let xid = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
    let mut r = Reader::new(&msg[8..], OfpError::BadLen);
    let result = match Version::from_wire(msg[0]) {
        _ if t == ty::HELLO && msg[0] != 0 => decode_hello(&mut r, msg[0]).map(|h| {
            // The closest version we speak at or below the hello's.
            let version = if msg[0] >= 4 { Version::Of13 } else { Version::Of10 };
            Message { version, xid, body: Body::Hello(h) }
        }),
        None => Err(OfpError::BadVersion),
        Some(v) => decode_body(&mut r, v, t)
            .and_then(|body| if r.is_empty() { Ok(Message { version: v, xid, body }) } else { Err(OfpError::BadLen) }),
    };
    result.map(|m| (m, len)).map_err(|e| DecodeError::new(e, msg))
}

fn decode_hello(r: &mut Reader, version: u8) -> Result<Hello, OfpError> {
    let mut bitmap = None;
    while r.remaining() >= 4 {
        let t = r.u16()?;
        let len = r.u16()? as usize;
        if len < 4 {
            return Err(OfpError::BadLen);
        }
        let mut e = r.sub(len - 4, OfpError::BadLen)?;
        r.skip((len.next_multiple_of(8) - len).min(r.remaining()))?;
        if t == 1 && bitmap.is_none() {
            bitmap = Some(e.u32()?);
        }
    }
    r.rest();
    Ok(Hello { version, bitmap })
}

fn decode_body(r: &mut Reader, v: Version, t: u8) -> Result<Body, OfpError> {
    use Version::*;
    Ok(match (v, t) {
        (_, ty::ERROR) => Body::Error(ErrorMsg { err_type: r.u16()?, code: r.u16()?, data: r.rest().to_vec() }),
        (_, ty::ECHO_REQUEST) => Body::EchoRequest(r.rest().to_vec()),
        (_, ty::ECHO_REPLY) => Body::EchoReply(r.rest().to_vec()),
        (_, ty::VENDOR) => decode_vendor(r, v)?,
        (_, ty::FEATURES_REQUEST) => Body::FeaturesRequest,
        (_, ty::FEATURES_REPLY) => {
            let mut f =
                FeaturesReply { datapath_id: r.u64()?, n_buffers: r.u32()?, n_tables: r.u8()?, ..Default::default() };
            if v == Of13 {
                f.auxiliary_id = r.u8()?;
                r.skip(2)?;
            } else {
                r.skip(3)?;
            }
            f.capabilities = r.u32()?;
            f.actions = r.u32()?;
            if v == Of10 {
                while !r.is_empty() {
                    let mut p = r.sub(port_len(v), OfpError::BadLen)?;
                    f.ports.push(Port::decode(&mut p, v)?);
                }
            }
            Body::FeaturesReply(f)
        }
        (_, ty::GET_CONFIG_REQUEST) => Body::GetConfigRequest,
        (_, ty::GET_CONFIG_REPLY | ty::SET_CONFIG) => {
            let c = SwitchConfig { flags: r.u16()?, miss_send_len: r.u16()? };
            if t == ty::SET_CONFIG { Body::SetConfig(c) } else { Body::GetConfigReply(c) }
        }
        (_, ty::PACKET_IN) => Body::PacketIn(decode_packet_in(r, v)?),
        (_, ty::FLOW_REMOVED) => Body::FlowRemoved(FlowRemoved::decode(r, v)?),
        (_, ty::PORT_STATUS) => Body::PortStatus(PortStatus::decode(r, v)?),
        (_, ty::PACKET_OUT) => {
            let buffer_id = r.u32()?;
            let in_port = read_port(r, v)?;
            let actions_len = r.u16()? as usize;
            if v == Of13 {
                r.skip(6)?;
            }
            let mut a = r.sub(actions_len, OfpError::BadLen)?;
            let actions = decode_actions(&mut a, v)?;
            Body::PacketOut(PacketOut { buffer_id, in_port, actions, data: r.rest().to_vec() })
        }
        (_, ty::FLOW_MOD) => Body::FlowMod(FlowMod::decode(r, Format::Standard(v))?),
        (Of10, ty::OF10_PORT_MOD) | (Of13, ty::OF13_PORT_MOD) => Body::PortMod(PortMod::decode(r, v)?),
        (Of10, ty::OF10_STATS_REQUEST) | (Of13, ty::OF13_MULTIPART_REQUEST) => {
            Body::MultipartRequest(MultipartRequest::decode(r, v)?)
        }
        (Of10, ty::OF10_STATS_REPLY) | (Of13, ty::OF13_MULTIPART_REPLY) => {
            Body::MultipartReply(MultipartReply::decode(r, v)?)
        }
        (Of10, ty::OF10_BARRIER_REQUEST) | (Of13, ty::OF13_BARRIER_REQUEST) => Body::BarrierRequest,
        (Of10, ty::OF10_BARRIER_REPLY) | (Of13, ty::OF13_BARRIER_REPLY) => Body::BarrierReply,
        (Of13, ty::OF13_GROUP_MOD) => {
            let command = match r.u16()? {
                0 => GroupModCommand::Add,
                1 => GroupModCommand::Modify,
                2 => GroupModCommand::Delete,
                _ => return Err(OfpError::GroupModBadCommand),
            };
            let group_type = GroupType::from_wire(r.u8()?)?;
            r.skip(1)?;
            let group_id = r.u32()?;
            Body::GroupMod(GroupMod { command, group_type, group_id, buckets: decode_buckets(r)? })
        }
        (Of13, ty::OF13_METER_MOD) => {
            let command = match r.u16()? {
                0 => MeterModCommand::Add,
                1 => MeterModCommand::Modify,
                2 => MeterModCommand::Delete,
                _ => return Err(OfpError::MeterModBadCommand),
            };
            let flags = r.u16()?;
            // OFPMF_KBPS | OFPMF_PKTPS: a rate in both units.
            if command != MeterModCommand::Delete && flags & 3 == 3 {
                return Err(OfpError::MeterModBadFlags);
            }
            let meter_id = r.u32()?;
            if !r.remaining().is_multiple_of(METER_BAND_LEN) {
                return Err(OfpError::BadLen);
            }
            Body::MeterMod(MeterMod { command, flags, meter_id, bands: r.rest().to_vec() })
        }
        (Of13, ty::OF13_TABLE_MOD) => {
            let table_id = r.u8()?;
            r.skip(3)?;
            Body::TableMod(TableMod { table_id, config: r.u32()? })
        }
        (Of13, ty::OF13_ROLE_REQUEST | ty::OF13_ROLE_REPLY) => {
            let role = r.u32()?;
            if role > 3 {
                return Err(OfpError::BadRole);
            }
            r.skip(4)?;
            let role = Role { role, generation_id: r.u64()? };
            if t == ty::OF13_ROLE_REQUEST { Body::RoleRequest(role) } else { Body::RoleReply(role) }
        }
        (Of13, ty::OF13_GET_ASYNC_REQUEST) => Body::GetAsyncRequest,
        (Of13, ty::OF13_GET_ASYNC_REPLY | ty::OF13_SET_ASYNC) => {
            let mut a = AsyncConfig::default();
            for slot in [&mut a.packet_in_mask, &mut a.port_status_mask, &mut a.flow_removed_mask] {
                *slot = [r.u32()?, r.u32()?];
            }
            if t == ty::OF13_SET_ASYNC { Body::SetAsync(a) } else { Body::GetAsyncReply(a) }
        }
        _ => return Err(OfpError::BadType),
    })
}

fn decode_packet_in(r: &mut Reader, v: Version) -> Result<PacketIn, OfpError> {
    let buffer_id = r.u32()?;
    let total_len = r.u16()?;
    let (reason, table_id, cookie, matches);
    if v == Version::Of10 {
        let in_port = read_port(r, v)?;
        reason = r.u8()?;
        r.skip(1)?;
        (table_id, cookie) = (0, 0);
        matches = Match { fields: vec![MatchField::exact(Field::InPort, u128::from(in_port))] };
    } else {
        reason = r.u8()?;
        table_id = r.u8()?;
        cookie = r.u64()?;
        matches = decode_oxm_match(r)?;
        r.skip(2)?;
    }
    Ok(PacketIn { buffer_id, total_len, reason, table_id, cookie, matches, data: r.rest().to_vec() })
}

fn decode_vendor(r: &mut Reader, v: Version) -> Result<Body, OfpError> {
    if r.u32()? != NX_VENDOR_ID {
        return Err(OfpError::BadVendor);
    }
    Ok(match r.u32()? {
        NXT_SET_FLOW_FORMAT => Body::NxSetFlowFormat(match r.u32()? {
            0 => FlowFormat::OpenFlow10,
            2 => FlowFormat::Nxm,
            _ => return Err(OfpError::BadValue),
        }),
        NXT_FLOW_MOD => Body::NxFlowMod(FlowMod::decode(r, Format::Nicira(v))?),
        NXT_FLOW_MOD_TABLE_ID => {
            let set = r.u8()?;
            r.skip(7)?;
            Body::NxFlowModTableId(set != 0)
        }
        NXT_SET_PACKET_IN_FORMAT => Body::NxSetPacketInFormat(match r.u32()? {
            0 => PacketInFormat::Standard,
            1 => PacketInFormat::NxPacketIn,
            2 => PacketInFormat::NxPacketIn2,
            _ => return Err(OfpError::BadValue),
        }),
        _ => return Err(OfpError::BadSubtype),
    })
}

fn unsupported(what: &'static str, v: Version) -> EncodeError {
    EncodeError::Unsupported(what, v)
}

/// Encodes `m` into wire bytes.
pub fn encode(m: &Message) -> Result<Vec<u8>, EncodeError> {
    use Version::*;
    let v = m.version;
    let mut w = Writer::default();
    let version_byte = match &m.body {
        Body::Hello(h) => h.version,
        _ => v.wire(),
    };
    w.u8(version_byte);
    w.u8(0);
    w.u16(0);
    w.u32(m.xid);
    let by_version = |of10: u8, of13: u8| if v == Of10 { of10 } else { of13 };
    let only13 = |what| if v == Of13 { Ok(()) } else { Err(unsupported(what, v)) };
    let t = match &m.body {
        Body::Hello(h) => {
            if let Some(bitmap) = h.bitmap {
                w.u16(1);
                w.u16(8);
                w.u32(bitmap);
            }
            ty::HELLO
        }
        Body::Error(e) => {
            w.u16(e.err_type);
            w.u16(e.code);
            w.bytes(&e.data);
            ty::ERROR
        }
        Body::EchoRequest(d) | Body::EchoReply(d) => {
            w.bytes(d);
            if matches!(m.body, Body::EchoRequest(_)) { ty::ECHO_REQUEST } else { ty::ECHO_REPLY }
        }
        Body::FeaturesRequest => ty::FEATURES_REQUEST,
        Body::FeaturesReply(f) => {
            w.u64(f.datapath_id);
            w.u32(f.n_buffers);
            w.u8(f.n_tables);
            if v == Of13 {
                w.u8(f.auxiliary_id);
                w.zeros(2);
                if !f.ports.is_empty() {
                    return Err(unsupported("ports in a features reply", v));
                }
            } else {
                if f.auxiliary_id != 0 {
                    return Err(unsupported("auxiliary_id", v));
                }
                w.zeros(3);
            }
            w.u32(f.capabilities);
            w.u32(f.actions);
            f.ports.iter().try_for_each(|p| p.encode(&mut w, v))?;
            ty::FEATURES_REPLY
        }
        Body::GetConfigRequest => ty::GET_CONFIG_REQUEST,
        Body::GetConfigReply(c) | Body::SetConfig(c) => {
            w.u16(c.flags);
            w.u16(c.miss_send_len);
            if matches!(m.body, Body::SetConfig(_)) { ty::SET_CONFIG } else { ty::GET_CONFIG_REPLY }
        }
        Body::PacketIn(p) => {
            encode_packet_in(&mut w, p, v)?;
            ty::PACKET_IN
        }
        Body::FlowRemoved(f) => {
            f.encode(&mut w, v)?;
            ty::FLOW_REMOVED
        }
        Body::PortStatus(p) => {
            p.encode(&mut w, v)?;
            ty::PORT_STATUS
        }
        Body::PacketOut(p) => {
            w.u32(p.buffer_id);
            write_port(&mut w, v, p.in_port)?;
            let at = w.len();
            w.u16(0);
            if v == Of13 {
                w.zeros(6);
            }
            let start = w.len();
            encode_actions(&mut w, &p.actions, v)?;
            let len = len16(w.len() - start, "packet-out actions")?;
            w.patch_u16(at, len);
            w.bytes(&p.data);
            ty::PACKET_OUT
        }
        Body::FlowMod(f) => {
            f.encode(&mut w, Format::Standard(v))?;
            ty::FLOW_MOD
        }
        Body::GroupMod(g) => {
            only13("group-mod")?;
            w.u16(g.command as u16);
            w.u8(g.group_type as u8);
            w.u8(0);
            w.u32(g.group_id);
            encode_buckets(&mut w, &g.buckets)?;
            ty::OF13_GROUP_MOD
        }
        Body::MeterMod(m) => {
            only13("meter-mod")?;
            if !m.bands.len().is_multiple_of(METER_BAND_LEN) {
                return Err(EncodeError::Invalid("meter bands are whole 16-byte entries"));
            }
            w.u16(m.command as u16);
            w.u16(m.flags);
            w.u32(m.meter_id);
            w.bytes(&m.bands);
            ty::OF13_METER_MOD
        }
        Body::PortMod(p) => {
            p.encode(&mut w, v)?;
            by_version(ty::OF10_PORT_MOD, ty::OF13_PORT_MOD)
        }
        Body::TableMod(t) => {
            only13("table-mod")?;
            w.u8(t.table_id);
            w.zeros(3);
            w.u32(t.config);
            ty::OF13_TABLE_MOD
        }
        Body::MultipartRequest(r) => {
            r.encode(&mut w, v)?;
            by_version(ty::OF10_STATS_REQUEST, ty::OF13_MULTIPART_REQUEST)
        }
        Body::MultipartReply(r) => {
            r.encode(&mut w, v)?;
            by_version(ty::OF10_STATS_REPLY, ty::OF13_MULTIPART_REPLY)
        }
        Body::BarrierRequest => by_version(ty::OF10_BARRIER_REQUEST, ty::OF13_BARRIER_REQUEST),
        Body::BarrierReply => by_version(ty::OF10_BARRIER_REPLY, ty::OF13_BARRIER_REPLY),
        Body::RoleRequest(r) | Body::RoleReply(r) => {
            only13("role request/reply")?;
            w.u32(r.role);
            w.zeros(4);
            w.u64(r.generation_id);
            if matches!(m.body, Body::RoleRequest(_)) { ty::OF13_ROLE_REQUEST } else { ty::OF13_ROLE_REPLY }
        }
        Body::GetAsyncRequest => {
            only13("get-async")?;
            ty::OF13_GET_ASYNC_REQUEST
        }
        Body::GetAsyncReply(a) | Body::SetAsync(a) => {
            only13("async config")?;
            for pair in [a.packet_in_mask, a.port_status_mask, a.flow_removed_mask] {
                w.u32(pair[0]);
                w.u32(pair[1]);
            }
            if matches!(m.body, Body::SetAsync(_)) { ty::OF13_SET_ASYNC } else { ty::OF13_GET_ASYNC_REPLY }
        }
        Body::NxSetFlowFormat(f) => {
            nx_header(&mut w, NXT_SET_FLOW_FORMAT);
            w.u32(*f as u32);
            ty::VENDOR
        }
        Body::NxFlowMod(f) => {
            nx_header(&mut w, NXT_FLOW_MOD);
            f.encode(&mut w, Format::Nicira(v))?;
            ty::VENDOR
        }
        Body::NxFlowModTableId(set) => {
            nx_header(&mut w, NXT_FLOW_MOD_TABLE_ID);
            w.u8(u8::from(*set));
            w.zeros(7);
            ty::VENDOR
        }
        Body::NxSetPacketInFormat(f) => {
            nx_header(&mut w, NXT_SET_PACKET_IN_FORMAT);
            w.u32(*f as u32);
            ty::VENDOR
        }
    };
    w.buf[1] = t;
    let len = len16(w.len(), "message")?;
    w.patch_u16(2, len);
    Ok(w.buf)
}

fn nx_header(w: &mut Writer, subtype: u32) {
    w.u32(NX_VENDOR_ID);
    w.u32(subtype);
}

fn encode_packet_in(w: &mut Writer, p: &PacketIn, v: Version) -> Result<(), EncodeError> {
    w.u32(p.buffer_id);
    w.u16(p.total_len);
    if v == Version::Of10 {
        let in_port = match p.matches.fields.as_slice() {
            [MatchField { field: Field::InPort, value, mask: None }] => *value as u32,
            _ => return Err(unsupported("a packet-in match other than in_port", v)),
        };
        if (p.table_id, p.cookie) != (0, 0) {
            return Err(unsupported("packet-in table_id/cookie", v));
        }
        write_port(w, v, in_port)?;
        w.u8(p.reason);
        w.u8(0);
    } else {
        w.u8(p.reason);
        w.u8(p.table_id);
        w.u64(p.cookie);
        encode_oxm_match(w, &p.matches)?;
        w.zeros(2);
    }
    w.bytes(&p.data);
    Ok(())
}
