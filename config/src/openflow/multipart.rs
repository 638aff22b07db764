//! Statistics (OpenFlow 1.0 "stats") and multipart (1.3) requests and replies, plus
//! Nicira's `NXST_FLOW` / `NXST_AGGREGATE`, and the group bodies they share with
//! group-mod.
//!
//! OpenFlow 1.0 has no group statistics, and its `OFPST_PORT_DESC` (type 13) is an
//! OVS extension that `ovs-ofctl dump-ports-desc` uses; both versions' table-features
//! requests are accepted only empty (a query), which is what `ovs-ofctl` sends.

use super::Version;
use super::action::{Action, NX_VENDOR_ID, decode_actions, encode_actions};
use super::error::{EncodeError, OfpError, len16};
use super::flow::{AggregateStats, FlowStats, FlowStatsRequest, Format};
use super::port::{Port, port_len, read_port, write_port};
use super::wire::{Reader, Writer};

/// `OFPSF_REQ_MORE` / `OFPSF_REPLY_MORE`: more parts follow.
const MORE: u16 = 1;

const DESC: u16 = 0;
const FLOW: u16 = 1;
const AGGREGATE: u16 = 2;
const TABLE: u16 = 3;
const PORT: u16 = 4;
const GROUP: u16 = 6;
const GROUP_DESC: u16 = 7;
const METER: u16 = 9;
const METER_CONFIG: u16 = 10;
const METER_FEATURES: u16 = 11;
const TABLE_FEATURES: u16 = 12;
const PORT_DESC: u16 = 13;
const VENDOR: u16 = 0xffff;
const NXST_FLOW: u32 = 0;
const NXST_AGGREGATE: u32 = 1;

/// A statistics / multipart request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultipartRequest {
    pub more: bool,
    pub body: MpRequest,
}

/// What a statistics request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpRequest {
    Desc,
    Flow(FlowStatsRequest),
    Aggregate(FlowStatsRequest),
    Table,
    /// Statistics of one port, or all (`OFPP_ANY`).
    Port(u32),
    PortDesc,
    /// 1.3: statistics of one group, or all (`OFPG_ALL`).
    Group(u32),
    /// 1.3.
    GroupDesc,
    /// 1.3: table features query (no body).
    TableFeatures,
    /// 1.3: statistics of one meter, or all (`OFPM_ALL`).
    Meter(u32),
    /// 1.3: configuration of one meter, or all.
    MeterConfig(u32),
    /// 1.3.
    MeterFeatures,
    /// `NXST_FLOW`.
    NxFlow(FlowStatsRequest),
    /// `NXST_AGGREGATE`.
    NxAggregate(FlowStatsRequest),
}

/// A statistics / multipart reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultipartReply {
    pub more: bool,
    pub body: MpReply,
}

/// The body of a statistics reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpReply {
    Desc(Desc),
    Flow(Vec<FlowStats>),
    Aggregate(AggregateStats),
    Table(Vec<TableStats>),
    Port(Vec<PortStats>),
    PortDesc(Vec<Port>),
    Group(Vec<GroupStats>),
    GroupDesc(Vec<GroupDesc>),
    TableFeatures(Vec<TableFeatures>),
    /// 1.3: meter statistics, kept as their bytes (the switch has no meters).
    Meter(Vec<u8>),
    /// 1.3: meter configurations, kept as their bytes.
    MeterConfig(Vec<u8>),
    MeterFeatures(MeterFeatures),
    NxFlow(Vec<FlowStats>),
    NxAggregate(AggregateStats),
}

/// `OFPMP_METER_FEATURES` reply (1.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MeterFeatures {
    pub max_meter: u32,
    pub band_types: u32,
    pub capabilities: u32,
    pub max_bands: u8,
    pub max_color: u8,
}

/// `OFPST_DESC` reply: switch description strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Desc {
    pub mfr_desc: String,
    pub hw_desc: String,
    pub sw_desc: String,
    pub serial_num: String,
    pub dp_desc: String,
}

/// One table's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TableStats {
    pub table_id: u8,
    /// 1.0 only (empty otherwise).
    pub name: String,
    /// 1.0 only (0 otherwise): `OFPFW_*` bits the table supports.
    pub wildcards: u32,
    /// 1.0 only (0 otherwise).
    pub max_entries: u32,
    pub active_count: u32,
    pub lookup_count: u64,
    pub matched_count: u64,
}

/// One port's counters (all-ones: unavailable).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortStats {
    pub port_no: u32,
    /// rx_packets, tx_packets, rx_bytes, tx_bytes, rx_dropped, tx_dropped, rx_errors,
    /// tx_errors, rx_frame_err, rx_over_err, rx_crc_err, collisions.
    pub counters: [u64; 12],
    /// 1.3 only (0 otherwise).
    pub duration_sec: u32,
    /// 1.3 only (0 otherwise).
    pub duration_nsec: u32,
}

/// One group's counters (1.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GroupStats {
    pub group_id: u32,
    pub ref_count: u32,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    /// Per bucket: (packet_count, byte_count).
    pub buckets: Vec<(u64, u64)>,
}

/// `OFPGT_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupType {
    All = 0,
    Select = 1,
    Indirect = 2,
    FastFailover = 3,
}

impl GroupType {
    pub(crate) fn from_wire(t: u8) -> Result<Self, OfpError> {
        Ok(match t {
            0 => GroupType::All,
            1 => GroupType::Select,
            2 => GroupType::Indirect,
            3 => GroupType::FastFailover,
            _ => return Err(OfpError::GroupModBadType),
        })
    }
}

/// One bucket of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// Relative weight (select groups; 0 otherwise).
    pub weight: u16,
    pub watch_port: u32,
    pub watch_group: u32,
    pub actions: Vec<Action>,
}

/// A group's description (group-desc reply entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupDesc {
    pub group_type: GroupType,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

/// One table's features (1.3); the properties are kept as their raw bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TableFeatures {
    pub table_id: u8,
    pub name: String,
    pub metadata_match: u64,
    pub metadata_write: u64,
    pub config: u32,
    pub max_entries: u32,
    pub properties: Vec<u8>,
}

pub(crate) fn decode_buckets(r: &mut Reader) -> Result<Vec<Bucket>, OfpError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.u16().map_err(|_| OfpError::GroupModBadBucket)? as usize;
        if len < 16 || !len.is_multiple_of(8) {
            return Err(OfpError::GroupModBadBucket);
        }
        let mut b = r.sub(len - 2, OfpError::GroupModBadBucket)?;
        let (weight, watch_port, watch_group) = (b.u16()?, b.u32()?, b.u32()?);
        b.skip(4)?;
        out.push(Bucket { weight, watch_port, watch_group, actions: decode_actions(&mut b, Version::Of13)? });
    }
    Ok(out)
}

pub(crate) fn encode_buckets(w: &mut Writer, buckets: &[Bucket]) -> Result<(), EncodeError> {
    for b in buckets {
        let start = w.len();
        w.u16(0);
        w.u16(b.weight);
        w.u32(b.watch_port);
        w.u32(b.watch_group);
        w.zeros(4);
        encode_actions(w, &b.actions, Version::Of13)?;
        let len = len16(w.len() - start, "bucket")?;
        w.patch_u16(start, len);
    }
    Ok(())
}

/// Group and table-features statistics exist only in 1.3.
fn only13(v: Version) -> Result<(), OfpError> {
    if v == Version::Of13 { Ok(()) } else { Err(OfpError::BadStat) }
}

/// Reads the multipart header (type, flags, 1.3 padding) and, for vendor statistics,
/// the Nicira vendor header; returns (type, more, Nicira subtype).
fn decode_header(r: &mut Reader, v: Version) -> Result<(u16, bool, u32), OfpError> {
    let t = r.u16()?;
    let more = r.u16()? & MORE != 0;
    if v == Version::Of13 {
        r.skip(4)?;
    }
    let mut subtype = 0;
    if t == VENDOR {
        if r.u32()? != NX_VENDOR_ID {
            return Err(OfpError::BadVendor);
        }
        subtype = r.u32()?;
        if v == Version::Of10 {
            r.skip(4)?;
        }
    }
    Ok((t, more, subtype))
}

fn encode_header(w: &mut Writer, v: Version, t: u16, more: bool, subtype: Option<u32>) {
    w.u16(t);
    w.u16(if more { MORE } else { 0 });
    if v == Version::Of13 {
        w.zeros(4);
    }
    if let Some(s) = subtype {
        w.u32(NX_VENDOR_ID);
        w.u32(s);
        if v == Version::Of10 {
            w.zeros(4);
        }
    }
}

fn expect_empty(r: &Reader) -> Result<(), OfpError> {
    if r.is_empty() { Ok(()) } else { Err(OfpError::BadLen) }
}

impl MultipartRequest {
    pub(crate) fn decode(r: &mut Reader, v: Version) -> Result<Self, OfpError> {
        let (t, more, subtype) = decode_header(r, v)?;
        let body = match t {
            DESC => MpRequest::Desc,
            FLOW => MpRequest::Flow(FlowStatsRequest::decode(r, Format::Standard(v))?),
            AGGREGATE => MpRequest::Aggregate(FlowStatsRequest::decode(r, Format::Standard(v))?),
            TABLE => MpRequest::Table,
            PORT => {
                let port = read_port(r, v)?;
                r.skip(if v == Version::Of10 { 6 } else { 4 })?;
                MpRequest::Port(port)
            }
            PORT_DESC => MpRequest::PortDesc,
            GROUP => {
                only13(v)?;
                let g = r.u32()?;
                r.skip(4)?;
                MpRequest::Group(g)
            }
            GROUP_DESC => {
                only13(v)?;
                MpRequest::GroupDesc
            }
            TABLE_FEATURES => {
                only13(v)?;
                MpRequest::TableFeatures
            }
            METER | METER_CONFIG => {
                only13(v)?;
                let m = r.u32()?;
                r.skip(4)?;
                if t == METER { MpRequest::Meter(m) } else { MpRequest::MeterConfig(m) }
            }
            METER_FEATURES => {
                only13(v)?;
                MpRequest::MeterFeatures
            }
            VENDOR => match subtype {
                NXST_FLOW => MpRequest::NxFlow(FlowStatsRequest::decode(r, Format::Nicira(v))?),
                NXST_AGGREGATE => MpRequest::NxAggregate(FlowStatsRequest::decode(r, Format::Nicira(v))?),
                _ => return Err(OfpError::BadSubtype),
            },
            _ => return Err(OfpError::BadStat),
        };
        expect_empty(r)?;
        Ok(MultipartRequest { more, body })
    }

    pub(crate) fn encode(&self, w: &mut Writer, v: Version) -> Result<(), EncodeError> {
        let (t, subtype) = match &self.body {
            MpRequest::Desc => (DESC, None),
            MpRequest::Flow(_) => (FLOW, None),
            MpRequest::Aggregate(_) => (AGGREGATE, None),
            MpRequest::Table => (TABLE, None),
            MpRequest::Port(_) => (PORT, None),
            MpRequest::PortDesc => (PORT_DESC, None),
            MpRequest::Group(_) => (GROUP, None),
            MpRequest::GroupDesc => (GROUP_DESC, None),
            MpRequest::TableFeatures => (TABLE_FEATURES, None),
            MpRequest::Meter(_) => (METER, None),
            MpRequest::MeterConfig(_) => (METER_CONFIG, None),
            MpRequest::MeterFeatures => (METER_FEATURES, None),
            MpRequest::NxFlow(_) => (VENDOR, Some(NXST_FLOW)),
            MpRequest::NxAggregate(_) => (VENDOR, Some(NXST_AGGREGATE)),
        };
        if v == Version::Of10
            && matches!(t, GROUP | GROUP_DESC | TABLE_FEATURES | METER | METER_CONFIG | METER_FEATURES)
        {
            return Err(EncodeError::Unsupported("group / table-features / meter statistics", v));
        }
        encode_header(w, v, t, self.more, subtype);
        match &self.body {
            MpRequest::Meter(m) | MpRequest::MeterConfig(m) => {
                w.u32(*m);
                w.zeros(4);
            }
            MpRequest::Flow(f) | MpRequest::Aggregate(f) => f.encode(w, Format::Standard(v))?,
            MpRequest::NxFlow(f) | MpRequest::NxAggregate(f) => f.encode(w, Format::Nicira(v))?,
            MpRequest::Port(p) => {
                write_port(w, v, *p)?;
                w.zeros(if v == Version::Of10 { 6 } else { 4 });
            }
            MpRequest::Group(g) => {
                w.u32(*g);
                w.zeros(4);
            }
            _ => {}
        }
        Ok(())
    }
}

fn decode_list<T>(r: &mut Reader, mut one: impl FnMut(&mut Reader) -> Result<T, OfpError>) -> Result<Vec<T>, OfpError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(one(r)?);
    }
    Ok(out)
}

impl MultipartReply {
    pub(crate) fn decode(r: &mut Reader, v: Version) -> Result<Self, OfpError> {
        let (t, more, subtype) = decode_header(r, v)?;
        let body = match t {
            DESC => MpReply::Desc(Desc {
                mfr_desc: r.string(256)?,
                hw_desc: r.string(256)?,
                sw_desc: r.string(256)?,
                serial_num: r.string(32)?,
                dp_desc: r.string(256)?,
            }),
            FLOW => MpReply::Flow(decode_list(r, |r| FlowStats::decode(r, Format::Standard(v)))?),
            AGGREGATE => MpReply::Aggregate(AggregateStats::decode(r)?),
            TABLE => MpReply::Table(decode_list(r, |r| decode_table_stats(r, v))?),
            PORT => MpReply::Port(decode_list(r, |r| decode_port_stats(r, v))?),
            PORT_DESC => MpReply::PortDesc(decode_list(r, |r| {
                let mut one = r.sub(port_len(v), OfpError::BadLen)?;
                Port::decode(&mut one, v)
            })?),
            GROUP => {
                only13(v)?;
                MpReply::Group(decode_list(r, decode_group_stats)?)
            }
            GROUP_DESC => {
                only13(v)?;
                MpReply::GroupDesc(decode_list(r, |r| {
                    let len = r.u16()? as usize;
                    if len < 8 {
                        return Err(OfpError::BadLen);
                    }
                    let mut e = r.sub(len - 2, OfpError::BadLen)?;
                    let group_type = GroupType::from_wire(e.u8()?)?;
                    e.skip(1)?;
                    let group_id = e.u32()?;
                    Ok(GroupDesc { group_type, group_id, buckets: decode_buckets(&mut e)? })
                })?)
            }
            TABLE_FEATURES => {
                only13(v)?;
                MpReply::TableFeatures(decode_list(r, |r| {
                    let len = r.u16()? as usize;
                    if len < 64 {
                        return Err(OfpError::BadLen);
                    }
                    let mut e = r.sub(len - 2, OfpError::BadLen)?;
                    let table_id = e.u8()?;
                    e.skip(5)?;
                    Ok(TableFeatures {
                        table_id,
                        name: e.string(32)?,
                        metadata_match: e.u64()?,
                        metadata_write: e.u64()?,
                        config: e.u32()?,
                        max_entries: e.u32()?,
                        properties: e.rest().to_vec(),
                    })
                })?)
            }
            METER | METER_CONFIG => {
                only13(v)?;
                let bytes = r.rest().to_vec();
                if t == METER { MpReply::Meter(bytes) } else { MpReply::MeterConfig(bytes) }
            }
            METER_FEATURES => {
                only13(v)?;
                let f = MeterFeatures {
                    max_meter: r.u32()?,
                    band_types: r.u32()?,
                    capabilities: r.u32()?,
                    max_bands: r.u8()?,
                    max_color: r.u8()?,
                };
                r.skip(2)?;
                MpReply::MeterFeatures(f)
            }
            VENDOR => match subtype {
                NXST_FLOW => MpReply::NxFlow(decode_list(r, |r| FlowStats::decode(r, Format::Nicira(v)))?),
                NXST_AGGREGATE => MpReply::NxAggregate(AggregateStats::decode(r)?),
                _ => return Err(OfpError::BadSubtype),
            },
            _ => return Err(OfpError::BadStat),
        };
        expect_empty(r)?;
        Ok(MultipartReply { more, body })
    }

    pub(crate) fn encode(&self, w: &mut Writer, v: Version) -> Result<(), EncodeError> {
        let (t, subtype) = match &self.body {
            MpReply::Desc(_) => (DESC, None),
            MpReply::Flow(_) => (FLOW, None),
            MpReply::Aggregate(_) => (AGGREGATE, None),
            MpReply::Table(_) => (TABLE, None),
            MpReply::Port(_) => (PORT, None),
            MpReply::PortDesc(_) => (PORT_DESC, None),
            MpReply::Group(_) => (GROUP, None),
            MpReply::GroupDesc(_) => (GROUP_DESC, None),
            MpReply::TableFeatures(_) => (TABLE_FEATURES, None),
            MpReply::Meter(_) => (METER, None),
            MpReply::MeterConfig(_) => (METER_CONFIG, None),
            MpReply::MeterFeatures(_) => (METER_FEATURES, None),
            MpReply::NxFlow(_) => (VENDOR, Some(NXST_FLOW)),
            MpReply::NxAggregate(_) => (VENDOR, Some(NXST_AGGREGATE)),
        };
        if v == Version::Of10
            && matches!(t, GROUP | GROUP_DESC | TABLE_FEATURES | METER | METER_CONFIG | METER_FEATURES)
        {
            return Err(EncodeError::Unsupported("group / table-features / meter statistics", v));
        }
        encode_header(w, v, t, self.more, subtype);
        match &self.body {
            MpReply::Meter(bytes) | MpReply::MeterConfig(bytes) => w.bytes(bytes),
            MpReply::MeterFeatures(f) => {
                w.u32(f.max_meter);
                w.u32(f.band_types);
                w.u32(f.capabilities);
                w.u8(f.max_bands);
                w.u8(f.max_color);
                w.zeros(2);
            }
            MpReply::Desc(d) => {
                w.string(&d.mfr_desc, 256);
                w.string(&d.hw_desc, 256);
                w.string(&d.sw_desc, 256);
                w.string(&d.serial_num, 32);
                w.string(&d.dp_desc, 256);
            }
            MpReply::Flow(list) => list.iter().try_for_each(|f| f.encode(w, Format::Standard(v)))?,
            MpReply::NxFlow(list) => list.iter().try_for_each(|f| f.encode(w, Format::Nicira(v)))?,
            MpReply::Aggregate(a) | MpReply::NxAggregate(a) => a.encode(w),
            MpReply::Table(list) => list.iter().try_for_each(|t| encode_table_stats(w, t, v))?,
            MpReply::Port(list) => list.iter().try_for_each(|p| encode_port_stats(w, p, v))?,
            MpReply::PortDesc(list) => list.iter().try_for_each(|p| p.encode(w, v))?,
            MpReply::Group(list) => {
                for g in list {
                    let start = w.len();
                    w.u16(0);
                    w.zeros(2);
                    w.u32(g.group_id);
                    w.u32(g.ref_count);
                    w.zeros(4);
                    w.u64(g.packet_count);
                    w.u64(g.byte_count);
                    w.u32(g.duration_sec);
                    w.u32(g.duration_nsec);
                    for (p, b) in &g.buckets {
                        w.u64(*p);
                        w.u64(*b);
                    }
                    let len = len16(w.len() - start, "group stats")?;
                    w.patch_u16(start, len);
                }
            }
            MpReply::GroupDesc(list) => {
                for g in list {
                    let start = w.len();
                    w.u16(0);
                    w.u8(g.group_type as u8);
                    w.u8(0);
                    w.u32(g.group_id);
                    encode_buckets(w, &g.buckets)?;
                    let len = len16(w.len() - start, "group desc")?;
                    w.patch_u16(start, len);
                }
            }
            MpReply::TableFeatures(list) => {
                for t in list {
                    if t.properties.len() % 8 != 0 {
                        return Err(EncodeError::Invalid("table features properties not 8-aligned"));
                    }
                    let start = w.len();
                    w.u16(0);
                    w.u8(t.table_id);
                    w.zeros(5);
                    w.string(&t.name, 32);
                    w.u64(t.metadata_match);
                    w.u64(t.metadata_write);
                    w.u32(t.config);
                    w.u32(t.max_entries);
                    w.bytes(&t.properties);
                    let len = len16(w.len() - start, "table features")?;
                    w.patch_u16(start, len);
                }
            }
        }
        Ok(())
    }
}

fn decode_table_stats(r: &mut Reader, v: Version) -> Result<TableStats, OfpError> {
    let table_id = r.u8()?;
    r.skip(3)?;
    let mut t = TableStats { table_id, ..TableStats::default() };
    if v == Version::Of10 {
        t.name = r.string(32)?;
        t.wildcards = r.u32()?;
        t.max_entries = r.u32()?;
    }
    t.active_count = r.u32()?;
    t.lookup_count = r.u64()?;
    t.matched_count = r.u64()?;
    Ok(t)
}

fn encode_table_stats(w: &mut Writer, t: &TableStats, v: Version) -> Result<(), EncodeError> {
    w.u8(t.table_id);
    w.zeros(3);
    if v == Version::Of10 {
        w.string(&t.name, 32);
        w.u32(t.wildcards);
        w.u32(t.max_entries);
    } else if !t.name.is_empty() || t.wildcards != 0 || t.max_entries != 0 {
        return Err(EncodeError::Unsupported("table stats name/wildcards/max_entries", v));
    }
    w.u32(t.active_count);
    w.u64(t.lookup_count);
    w.u64(t.matched_count);
    Ok(())
}

fn decode_port_stats(r: &mut Reader, v: Version) -> Result<PortStats, OfpError> {
    let port_no = read_port(r, v)?;
    r.skip(if v == Version::Of10 { 6 } else { 4 })?;
    let mut p = PortStats { port_no, ..PortStats::default() };
    for c in &mut p.counters {
        *c = r.u64()?;
    }
    if v == Version::Of13 {
        p.duration_sec = r.u32()?;
        p.duration_nsec = r.u32()?;
    }
    Ok(p)
}

fn encode_port_stats(w: &mut Writer, p: &PortStats, v: Version) -> Result<(), EncodeError> {
    write_port(w, v, p.port_no)?;
    w.zeros(if v == Version::Of10 { 6 } else { 4 });
    p.counters.iter().for_each(|&c| w.u64(c));
    if v == Version::Of13 {
        w.u32(p.duration_sec);
        w.u32(p.duration_nsec);
    } else if (p.duration_sec, p.duration_nsec) != (0, 0) {
        return Err(EncodeError::Unsupported("port stats duration", v));
    }
    Ok(())
}

fn decode_group_stats(r: &mut Reader) -> Result<GroupStats, OfpError> {
    let len = r.u16()? as usize;
    if len < 40 || !(len - 40).is_multiple_of(16) {
        return Err(OfpError::BadLen);
    }
    let mut e = r.sub(len - 2, OfpError::BadLen)?;
    e.skip(2)?;
    let (group_id, ref_count) = (e.u32()?, e.u32()?);
    e.skip(4)?;
    let mut g = GroupStats {
        group_id,
        ref_count,
        packet_count: e.u64()?,
        byte_count: e.u64()?,
        duration_sec: e.u32()?,
        duration_nsec: e.u32()?,
        buckets: Vec::new(),
    };
    while !e.is_empty() {
        g.buckets.push((e.u64()?, e.u64()?));
    }
    Ok(g)
}
