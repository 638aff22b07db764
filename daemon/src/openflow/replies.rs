//! The switch's side of the OpenFlow replies: port descriptions and counters from the
//! datapath's `show`, flow statistics from its rules and their counters, the table
//! descriptions, and the splitting of long statistics replies into several messages
//! (an OpenFlow message is at most 64 KiB; `more` is set on all but the last).

use ferrovs_config::openflow::convert::{MatchForm, actions_to_wire, match_to_wire};
use ferrovs_config::openflow::{
    AggregateStats, Bucket, Desc, EncodeError, FeaturesReply, FlowRemoved, FlowRemovedReason, FlowStats, GroupDesc,
    GroupStats, GroupType, Instruction, Message, MpReply, MultipartReply, OFPFF_SEND_FLOW_REM, OFPP_ANY, Port,
    PortStats, TableFeatures, TableStats, Version, encode,
};

use super::{GroupInfo, RuleStats};
use ferrovs_config::{GroupKind, Rule};

/// `OFPG_ANY`: a bucket watches no group.
const OFPG_ANY: u32 = 0xffff_ffff;
use crate::protocol::{LinkState, PortInfo};

/// Flow tables the rule model has (0..=253, as Open vSwitch).
pub const N_TABLES: u8 = 254;

/// `OFPPS_LINK_DOWN`.
const LINK_DOWN: u32 = 1;
/// `OFPPC_PORT_DOWN` (the same bit in OpenFlow 1.0 and 1.3).
pub const PORT_DOWN: u32 = 1;
/// `OFPPF_10GB_FD | OFPPF_COPPER` style "current features" are left 0: the speed is in
/// `curr_speed` (1.3); 1.0 has no number for it.
const NO_FEATURES: u32 = 0;

/// A locally administered MAC for a port (the datapath does not report the device's):
/// 02:fe:DPID(2 bytes):PORT(2 bytes), stable for a bridge and port.
fn port_mac(dpid: u64, port: u32) -> [u8; 6] {
    let d = (dpid as u16).to_be_bytes();
    let p = (port as u16).to_be_bytes();
    [0x02, 0xfe, d[0], d[1], p[0], p[1]]
}

/// Whether OpenFlow shows the port's link as live: unless it is known to be down.
/// OpenFlow has no "unknown" state, and a link ferrovsd cannot see (a net_tap whose
/// interface is in another namespace) still forwards; calling it down would make a
/// controller that honours `OFPPS_LINK_DOWN` (faucet) leave the port unconfigured. A
/// detached port (its device gone) is not live.
pub fn link_live(p: &PortInfo) -> bool {
    matches!(p.link_state, LinkState::Up | LinkState::Unknown)
}

pub fn port_desc(p: &PortInfo, dpid: u64, v: Version) -> Port {
    let kbps = u64::from(p.speed_mbps) * 1000;
    Port {
        port_no: p.number,
        hw_addr: port_mac(dpid, p.number),
        name: p.name.chars().take(15).collect(),
        config: if p.admin_down { PORT_DOWN } else { 0 },
        state: if link_live(p) { 0 } else { LINK_DOWN },
        curr: NO_FEATURES,
        curr_speed: if v == Version::Of13 { kbps.min(u64::from(u32::MAX)) as u32 } else { 0 },
        max_speed: if v == Version::Of13 { kbps.min(u64::from(u32::MAX)) as u32 } else { 0 },
        ..Port::default()
    }
}

/// Port counters in OpenFlow's order. Drops the datapath counts on receive (no rule,
/// actions, malformed, unsupported, no mbuf, port down) are rx_dropped; a full tx queue
/// and outputs to a port that is down are tx_dropped; the driver's error counters when it
/// reports them.
pub fn port_stats(p: &PortInfo) -> PortStats {
    let rx_dropped =
        p.drop_no_rule + p.drop_action + p.drop_malformed + p.drop_unsupported + p.drop_no_mbuf + p.drop_admin_down_rx;
    let (rx_errors, tx_errors) = p.nic.as_ref().map_or((0, 0), |n| (n.rx_errors, n.tx_errors));
    PortStats {
        port_no: p.number,
        counters: [
            p.rx_packets,
            p.tx_packets,
            p.rx_bytes,
            p.tx_bytes,
            rx_dropped,
            p.drop_tx_full + p.drop_admin_down_tx,
            rx_errors,
            tx_errors,
            0,
            0,
            0,
            0,
        ],
        duration_sec: 0,
        duration_nsec: 0,
    }
}

pub fn features(dpid: u64, ports: &[PortInfo], v: Version) -> FeaturesReply {
    // FLOW_STATS | TABLE_STATS | PORT_STATS.
    let capabilities = 0x7;
    FeaturesReply {
        datapath_id: dpid,
        n_buffers: 0,
        n_tables: N_TABLES,
        auxiliary_id: 0,
        capabilities,
        // 1.0: output, the VLAN, MAC, IPv4, ToS and port rewrites (OFPAT10 0..=10).
        actions: if v == Version::Of10 { 0x7ff } else { 0 },
        ports: if v == Version::Of10 { ports.iter().map(|p| port_desc(p, dpid, v)).collect() } else { Vec::new() },
    }
}

pub fn desc(bridge: &str) -> Desc {
    Desc {
        mfr_desc: "ferrovs".into(),
        hw_desc: "userspace switch on DPDK".into(),
        sw_desc: env!("CARGO_PKG_VERSION").into(),
        serial_num: "none".into(),
        dp_desc: bridge.into(),
    }
}

/// Table statistics from the rule count of each table (`counts[t]`; absent: none).
pub fn table_stats(counts: &[u32], v: Version) -> Vec<TableStats> {
    (0..N_TABLES)
        .map(|t| TableStats {
            table_id: t,
            name: if v == Version::Of10 { format!("table{t}") } else { String::new() },
            wildcards: if v == Version::Of10 { 0x3f_ffff } else { 0 },
            max_entries: if v == Version::Of10 { 1_000_000 } else { 0 },
            active_count: counts.get(t as usize).copied().unwrap_or(0),
            lookup_count: 0,
            matched_count: 0,
        })
        .collect()
}

/// One table-features property: type, length, payload, padding to 8.
fn prop(out: &mut Vec<u8>, t: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&t.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len() + (len.next_multiple_of(8) - len), 0);
}

/// `(type, length 4)` headers of the listed action or instruction types.
fn ids(types: &[u16]) -> Vec<u8> {
    types.iter().flat_map(|t| [t.to_be_bytes(), 4u16.to_be_bytes()].concat()).collect()
}

/// OXM headers (class, field, length) of what the rule model matches on.
fn oxm_headers(fields: &[(u8, u8)]) -> Vec<u8> {
    fields.iter().flat_map(|&(code, len)| [0x80, 0x00, code << 1, len]).collect()
}

/// The 1.3 table features: per table the eight properties `ovs-ofctl` requires.
pub fn table_features() -> Vec<TableFeatures> {
    // OXM basic fields the model holds: in_port, eth_dst/src/type, vlan_vid/pcp,
    // ip_dscp/ecn, ip_proto, ipv4 src/dst, tcp/udp/sctp ports, icmpv4, arp, ipv6
    // src/dst, icmpv6.
    let matchable: Vec<(u8, u8)> = vec![
        (0, 4),
        (3, 6),
        (4, 6),
        (5, 2),
        (6, 2),
        (7, 1),
        (8, 1),
        (9, 1),
        (10, 1),
        (11, 4),
        (12, 4),
        (13, 2),
        (14, 2),
        (15, 2),
        (16, 2),
        (17, 2),
        (18, 2),
        (19, 1),
        (20, 1),
        (21, 2),
        (22, 4),
        (23, 4),
        (24, 6),
        (25, 6),
        (26, 16),
        (27, 16),
        (29, 1),
        (30, 1),
    ];
    let settable: Vec<(u8, u8)> = vec![
        (3, 6),
        (4, 6),
        (6, 2),
        (7, 1),
        (8, 1),
        (9, 1),
        (11, 4),
        (12, 4),
        (13, 2),
        (14, 2),
        (15, 2),
        (16, 2),
        (17, 2),
        (18, 2),
        (26, 16),
        (27, 16),
    ];
    // output, push_vlan, pop_vlan, set_nw_ttl, dec_nw_ttl, set_field.
    let actions = ids(&[0, 17, 18, 23, 24, 25]);
    (0..N_TABLES)
        .map(|t| {
            let mut p = Vec::new();
            let instructions: &[u16] = if t + 1 < N_TABLES { &[1, 4] } else { &[4] };
            prop(&mut p, 0, &ids(instructions));
            prop(&mut p, 2, &((t + 1)..N_TABLES).collect::<Vec<u8>>());
            prop(&mut p, 4, &[]);
            prop(&mut p, 6, &actions);
            prop(&mut p, 8, &oxm_headers(&matchable));
            prop(&mut p, 10, &oxm_headers(&matchable));
            prop(&mut p, 12, &[]);
            prop(&mut p, 14, &oxm_headers(&settable));
            TableFeatures {
                table_id: t,
                name: format!("table{t}"),
                metadata_match: 0,
                metadata_write: 0,
                config: 0,
                max_entries: 1_000_000,
                properties: p,
            }
        })
        .collect()
}

/// A rule's flow statistics in `v` (`nicira`: an `NXST_FLOW` entry), or why the form
/// cannot express it.
pub fn flow_stats(r: &RuleStats, v: Version, nicira: bool) -> Result<FlowStats, &'static str> {
    let form = if v == Version::Of10 && !nicira { MatchForm::Of10 } else { MatchForm::Tlv };
    let secs = |ms: u64| (ms / 1000).min(u64::from(u16::MAX)) as u16;
    let (duration_sec, duration_nsec) = duration(r.duration_ms);
    Ok(FlowStats {
        table_id: r.rule.table,
        duration_sec,
        duration_nsec,
        priority: r.rule.priority,
        idle_timeout: r.rule.idle_timeout,
        hard_timeout: r.rule.hard_timeout,
        // Only 1.3's flow statistics carry the flags (1.0's and Nicira's have no field).
        flags: if v == Version::Of13 && r.rule.send_flow_rem { OFPFF_SEND_FLOW_REM } else { 0 },
        idle_age: if nicira { secs(r.idle_ms) } else { 0 },
        hard_age: if nicira { secs(r.duration_ms) } else { 0 },
        cookie: r.rule.cookie,
        packet_count: r.n_packets,
        byte_count: r.n_bytes,
        matches: match_to_wire(&r.rule.matches, form)?,
        instructions: actions_to_wire(&r.rule, v)?,
    })
}

/// Seconds and nanoseconds of a duration in milliseconds.
fn duration(ms: u64) -> (u32, u32) {
    ((ms / 1000) as u32, ((ms % 1000) * 1_000_000) as u32)
}

/// The `OFPT_FLOW_REMOVED` of rule `r` (with its final counters) in `v`, or why `v`'s
/// match cannot express the rule's (1.0's fixed match has no IPv6 fields, for example).
pub fn flow_removed(r: &RuleStats, reason: FlowRemovedReason, v: Version) -> Result<Message, &'static str> {
    let of13 = v == Version::Of13;
    let form = if of13 { MatchForm::Tlv } else { MatchForm::Of10 };
    let (duration_sec, duration_nsec) = duration(r.duration_ms);
    let body = FlowRemoved {
        cookie: r.rule.cookie,
        priority: r.rule.priority,
        reason,
        table_id: if of13 { r.rule.table } else { 0 },
        duration_sec,
        duration_nsec,
        idle_timeout: r.rule.idle_timeout,
        hard_timeout: if of13 { r.rule.hard_timeout } else { 0 },
        packet_count: r.n_packets,
        byte_count: r.n_bytes,
        matches: match_to_wire(&r.rule.matches, form)?,
    };
    Ok(Message { version: v, xid: 0, body: ferrovs_config::openflow::Body::FlowRemoved(body) })
}

/// A group's description: its buckets' actions in `v` (1.3; 1.0 has no groups).
pub fn group_desc(g: &GroupInfo, v: Version) -> Result<GroupDesc, &'static str> {
    let (id, group) = (&g.id, &g.group);
    let buckets = group
        .buckets
        .iter()
        .map(|actions| {
            // The bucket's actions alone (no match: a set_field whose prerequisite is in
            // the referring rule's match cannot be expressed here).
            let rule = Rule::new(ferrovs_config::Match::default(), actions.clone());
            let actions = actions_to_wire(&rule, v)?
                .into_iter()
                .flat_map(|i| match i {
                    Instruction::ApplyActions(a) => a,
                    _ => Vec::new(),
                })
                .collect();
            Ok(Bucket { weight: 0, watch_port: OFPP_ANY, watch_group: OFPG_ANY, actions })
        })
        .collect::<Result<Vec<_>, &'static str>>()?;
    let group_type = match group.kind {
        GroupKind::All => GroupType::All,
        GroupKind::Indirect => GroupType::Indirect,
    };
    Ok(GroupDesc { group_type, group_id: *id, buckets })
}

/// A group's statistics (see [`GroupInfo`] for what its counters hold); every bucket of
/// an `all` group, and the one of an `indirect` group, sees each of its packets.
pub fn group_stats(g: &GroupInfo) -> GroupStats {
    GroupStats {
        group_id: g.id,
        ref_count: g.ref_count,
        packet_count: g.packets,
        byte_count: g.bytes,
        duration_sec: 0,
        duration_nsec: 0,
        buckets: vec![(g.packets, g.bytes); g.group.buckets.len()],
    }
}

pub fn aggregate(rules: &[&RuleStats]) -> AggregateStats {
    AggregateStats {
        packet_count: rules.iter().map(|r| r.n_packets).sum(),
        byte_count: rules.iter().map(|r| r.n_bytes).sum(),
        flow_count: rules.len() as u32,
    }
}

/// Encodes a statistics reply whose body is a list, split into as many messages as its
/// length needs; each with `more` but the last.
pub fn encode_split<T: Clone>(
    v: Version,
    xid: u32,
    items: &[T],
    make: &dyn Fn(Vec<T>) -> MpReply,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let mut out = Vec::new();
    let mut rest = items;
    loop {
        // The largest prefix that fits, by halving from everything that is left.
        let mut n = rest.len();
        let bytes = loop {
            let more = n < rest.len();
            let m = Message {
                version: v,
                xid,
                body: ferrovs_config::openflow::Body::MultipartReply(MultipartReply {
                    more,
                    body: make(rest[..n].to_vec()),
                }),
            };
            match encode(&m) {
                Ok(b) => break b,
                Err(EncodeError::TooLong(_)) if n > 1 => n /= 2,
                Err(e) => return Err(e),
            }
        };
        out.push(bytes);
        rest = &rest[n..];
        if rest.is_empty() {
            return Ok(out);
        }
    }
}
