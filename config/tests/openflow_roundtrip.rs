//! Round trip: for random messages of every type, in both versions,
//! `decode(encode(m)) == m` and the decoder consumes exactly the encoded bytes.
//! The generators only build messages the version can express (fields a version lacks
//! keep their documented defaults).

use ferrovs_config::openflow::{
    self, Action, AsyncConfig, Body, Bucket, Desc, ErrorMsg, FeaturesReply, Field, FieldSlice, FlowFormat, FlowMod,
    FlowModCommand, FlowRemoved, FlowRemovedReason, FlowStats, FlowStatsRequest, GroupDesc, GroupMod, GroupModCommand,
    GroupStats, GroupType, Hello, Instruction, METER_BAND_LEN, Match, MatchField, Message, MeterFeatures, MeterMod,
    MeterModCommand, MpReply, MpRequest, MultipartReply, MultipartRequest, OFPG_ANY, PacketIn, PacketInFormat,
    PacketOut, Port, PortMod, PortReason, PortStats, PortStatus, Role, SwitchConfig, TableFeatures, TableMod,
    TableStats, Version,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::Of10), Just(Version::Of13)]
}

/// A port number every version can carry (1.0 has 16 bits, reserved ports at the top).
fn port() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..0xff00, 0xffff_ff00u32..=u32::MAX]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9 ._-]{{0,{max}}}")).expect("regex")
}

/// Every field a match or set-field TLV carries (`InPortOxm` is a field slice's name for
/// the OXM in_port; in a TLV that header is `InPort`).
fn tlv_fields() -> Vec<Field> {
    Field::all().filter(|&f| f != Field::InPortOxm).collect()
}

fn any_field() -> impl Strategy<Value = Field> {
    proptest::sample::select(tlv_fields())
}

/// A valid entry for `field`: value within its bits, mask only where allowed and
/// covering the value.
fn entry(field: Field, allow_mask: bool) -> impl Strategy<Value = MatchField> {
    let bits = field.value_bits();
    let maskable = allow_mask && field.maskable();
    (any::<u128>(), any::<u128>(), any::<bool>(), port()).prop_map(move |(v, m, masked, p)| {
        if field == Field::InPort {
            return MatchField::exact(field, u128::from(p));
        }
        if maskable && masked {
            let mask = m & bits;
            MatchField::masked(field, v & mask, mask)
        } else {
            MatchField::exact(field, v & bits)
        }
    })
}

/// An OXM / NXM match: distinct fields in any order.
fn tlv_match() -> impl Strategy<Value = Match> {
    proptest::sample::subsequence(tlv_fields(), 0..8)
        .prop_shuffle()
        .prop_flat_map(|fields| fields.into_iter().map(|f| entry(f, true)).collect::<Vec<_>>())
        .prop_map(|fields| Match { fields })
}

/// The L3/L4 part of an OpenFlow 1.0 match (dscp, proto, src prefix length and value, dst
/// prefix length and value, tp_src, tp_dst, which fields are present), for IPv4 and ARP alike.
#[allow(clippy::type_complexity)]
fn l3_fields() -> impl Strategy<Value = (u8, u8, u32, u32, u32, u32, u16, u16, [bool; 4])> {
    (
        0u8..64,
        any::<u8>(),
        0u32..33,
        any::<u32>(),
        0u32..33,
        any::<u32>(),
        any::<u16>(),
        any::<u16>(),
        any::<[bool; 4]>(),
    )
}

/// An OpenFlow 1.0 match, in the canonical order the decoder produces.
fn match10() -> impl Strategy<Value = Match> {
    let l2 = (proptest::option::of(port()), proptest::option::of(0u64..1 << 48), proptest::option::of(0u64..1 << 48));
    let vlan = proptest::option::of((proptest::option::of(0u16..0x1000), proptest::option::of(0u8..8)));
    let l3 = prop_oneof![
        Just(None),
        (any::<u16>()).prop_map(|t| Some((t, None))),
        l3_fields().prop_map(|x| Some((0x0800, Some(x)))),
        l3_fields().prop_map(|x| Some((0x0806, Some(x)))),
    ];
    (l2, vlan, l3).prop_map(|((in_port, src, dst), vlan, l3)| {
        let mut f = Vec::new();
        if let Some(p) = in_port {
            f.push(MatchField::exact(Field::InPort, p.into()));
        }
        if let Some(s) = src {
            f.push(MatchField::exact(Field::EthSrc, s.into()));
        }
        if let Some(d) = dst {
            f.push(MatchField::exact(Field::EthDst, d.into()));
        }
        match vlan {
            None => {}
            Some((None, _)) => f.push(MatchField::exact(Field::VlanVid, 0)),
            Some((Some(vid), pcp)) => {
                f.push(MatchField::exact(Field::VlanVid, 0x1000 | u128::from(vid)));
                if let Some(pcp) = pcp {
                    f.push(MatchField::exact(Field::VlanPcp, pcp.into()));
                }
            }
        }
        if let Some((dl_type, nw)) = l3 {
            f.push(MatchField::exact(Field::EthType, dl_type.into()));
            if let Some((dscp, proto, src_len, src, dst_len, dst, tp_src, tp_dst, present)) = nw {
                let ip = dl_type == 0x0800;
                let addr = |field, len: u32, a: u32, f: &mut Vec<MatchField>| match len {
                    0 => {}
                    32 => f.push(MatchField::exact(field, a.into())),
                    n => {
                        let mask = u32::MAX << (32 - n);
                        f.push(MatchField::masked(field, (a & mask).into(), mask.into()));
                    }
                };
                if ip && present[0] {
                    f.push(MatchField::exact(Field::NwTos, u128::from(dscp << 2)));
                }
                let proto =
                    present[1].then_some(if ip { [6, 17, 132, 1, proto][usize::from(proto % 5)] } else { proto });
                if let Some(p) = proto {
                    f.push(MatchField::exact(if ip { Field::IpProto } else { Field::ArpOp }, p.into()));
                }
                addr(if ip { Field::Ipv4Src } else { Field::ArpSpa }, src_len, src, &mut f);
                addr(if ip { Field::Ipv4Dst } else { Field::ArpTpa }, dst_len, dst, &mut f);
                let ports = match proto {
                    Some(6) if ip => Some((Field::TcpSrc, Field::TcpDst, 0xffff)),
                    Some(17) if ip => Some((Field::UdpSrc, Field::UdpDst, 0xffff)),
                    Some(132) if ip => Some((Field::SctpSrc, Field::SctpDst, 0xffff)),
                    Some(1) if ip => Some((Field::Icmpv4Type, Field::Icmpv4Code, 0xff)),
                    _ => None,
                };
                if let Some((s, d, bits)) = ports {
                    if present[2] {
                        f.push(MatchField::exact(s, u128::from(tp_src & bits)));
                    }
                    if present[3] {
                        f.push(MatchField::exact(d, u128::from(tp_dst & bits)));
                    }
                }
            }
        }
        Match { fields: f }
    })
}

fn std_match(v: Version) -> BoxedStrategy<Match> {
    match v {
        Version::Of10 => match10().boxed(),
        Version::Of13 => tlv_match().boxed(),
    }
}

/// A field slice for the Nicira register actions, with the field's NXM width.
fn slice() -> impl Strategy<Value = FieldSlice> {
    let fields = vec![
        (Field::Reg(0), 32u16),
        (Field::Reg(7), 32),
        (Field::Reg(15), 32),
        (Field::Ipv4Src, 32),
        (Field::EthSrc, 48),
        (Field::TunId, 64),
        (Field::Ipv6Dst, 128),
        (Field::TcpSrc, 16),
        (Field::InPort, 16),
        (Field::InPortOxm, 32),
    ];
    (proptest::sample::select(fields), any::<u16>(), any::<u16>()).prop_map(|((field, width), a, b)| {
        let ofs = a % width;
        let n_bits = 1 + b % (width - ofs).min(64);
        FieldSlice { field, ofs, n_bits }
    })
}

fn action(v: Version, depth: u32) -> BoxedStrategy<Action> {
    let common = prop_oneof![
        (port(), any::<u16>()).prop_map(|(port, max_len)| Action::Output { port, max_len }),
        Just(Action::PopVlan),
        (port(), 0u8..=255, any::<bool>())
            .prop_map(|(in_port, t, has)| Action::Resubmit { in_port, table: has.then_some(t) }),
        Just(Action::NxDecTtl),
        Just(Action::PopQueue),
        prop_oneof![Just(6usize), Just(14), Just(22)].prop_flat_map(|n| vec(any::<u8>(), n)).prop_map(Action::Note),
        (slice(), any::<u64>()).prop_map(|(dst, value)| {
            let value = if dst.n_bits >= 64 { value } else { value & ((1 << dst.n_bits) - 1) };
            Action::RegLoad { dst, value }
        }),
        any_field().prop_flat_map(|f| entry(f, true)).prop_map(Action::RegLoad2),
        (slice(), slice()).prop_map(|(src, dst)| {
            let n_bits = src.n_bits.min(dst.n_bits);
            Action::RegMove { src: FieldSlice { n_bits, ..src }, dst: FieldSlice { n_bits, ..dst } }
        }),
        (slice(), any::<u16>()).prop_map(|(src, max_len)| Action::OutputReg { src, max_len }),
        any::<(u64, u64)>().prop_map(|(metadata, mask)| Action::NxWriteMetadata { metadata, mask }),
    ];
    let specific = match v {
        Version::Of10 => prop_oneof![
            (port(), any::<u32>()).prop_map(|(port, queue_id)| Action::Enqueue { port, queue_id }),
            (0u16..0x1000).prop_map(Action::SetVlanVid),
            (0u8..8).prop_map(Action::SetVlanPcp),
            any::<[u8; 6]>().prop_map(Action::SetDlSrc),
            any::<[u8; 6]>().prop_map(Action::SetDlDst),
            any::<u32>().prop_map(Action::SetNwSrc),
            any::<u32>().prop_map(Action::SetNwDst),
            (0u8..64).prop_map(|d| Action::SetNwTos(d << 2)),
            any::<u16>().prop_map(Action::SetTpSrc),
            any::<u16>().prop_map(Action::SetTpDst),
        ]
        .boxed(),
        Version::Of13 => prop_oneof![
            Just(Action::CopyTtlOut),
            Just(Action::CopyTtlIn),
            prop_oneof![Just(0x8100u16), Just(0x88a8)].prop_map(Action::PushVlan),
            any::<u32>().prop_map(Action::SetQueue),
            any::<u32>().prop_map(Action::Group),
            any::<u8>().prop_map(Action::SetNwTtl),
            Just(Action::DecNwTtl),
            any_field()
                .prop_flat_map(|f| entry(f, false))
                .prop_map(|e| Action::SetField { field: e.field, value: e.value }),
        ]
        .boxed(),
    };
    if depth == 0 {
        prop_oneof![common, specific].boxed()
    } else {
        prop_oneof![4 => common, 4 => specific, 1 => vec(action(v, depth - 1), 0..3).prop_map(Action::Clone)].boxed()
    }
}

fn actions(v: Version) -> impl Strategy<Value = Vec<Action>> {
    vec(action(v, 1), 0..5)
}

fn instructions(v: Version) -> BoxedStrategy<Vec<Instruction>> {
    match v {
        Version::Of10 => vec(action(v, 1), 1..5).prop_map(|a| vec![Instruction::ApplyActions(a)]).boxed(),
        Version::Of13 => vec(
            prop_oneof![
                any::<u8>().prop_map(Instruction::GotoTable),
                (any::<u64>(), any::<u64>()).prop_map(|(metadata, mask)| Instruction::WriteMetadata { metadata, mask }),
                actions(v).prop_map(Instruction::WriteActions),
                actions(v).prop_map(Instruction::ApplyActions),
                Just(Instruction::ClearActions),
                any::<u32>().prop_map(Instruction::Meter),
            ],
            0..4,
        )
        .boxed(),
    }
}

fn flow_mod(v: Version, nicira: bool) -> impl Strategy<Value = FlowMod> {
    let command = prop_oneof![
        Just(FlowModCommand::Add),
        Just(FlowModCommand::Modify),
        Just(FlowModCommand::ModifyStrict),
        Just(FlowModCommand::Delete),
        Just(FlowModCommand::DeleteStrict),
    ];
    let of13 = v == Version::Of13 && !nicira;
    let matches = if nicira { tlv_match().boxed() } else { std_match(v) };
    let instructions =
        if nicira { instructions(Version::Of10).prop_map(move |i| retarget(i, v)).boxed() } else { instructions(v) };
    (
        (any::<u64>(), any::<u64>(), any::<u8>(), command, any::<u16>(), any::<u16>(), any::<u16>()),
        (any::<u32>(), port(), any::<u32>(), any::<u16>(), matches, instructions),
    )
        .prop_map(
            move |(
                (cookie, cookie_mask, table_id, command, idle, hard, priority),
                (buffer_id, out_port, out_group, flags, matches, instructions),
            )| FlowMod {
                cookie,
                cookie_mask: if of13 { cookie_mask } else { 0 },
                table_id,
                command,
                idle_timeout: idle,
                hard_timeout: hard,
                priority,
                buffer_id,
                out_port,
                out_group: if of13 { out_group } else { OFPG_ANY },
                flags,
                matches,
                instructions,
            },
        )
}

/// Nicira messages carry actions of the message's version; the 1.0 generator's
/// apply-actions list is only valid for 1.0, so for 1.3 drop what 1.3 lacks.
fn retarget(i: Vec<Instruction>, v: Version) -> Vec<Instruction> {
    if v == Version::Of10 {
        return i;
    }
    let keep = |a: &Action| {
        !matches!(
            a,
            Action::Enqueue { .. }
                | Action::SetVlanVid(_)
                | Action::SetVlanPcp(_)
                | Action::SetDlSrc(_)
                | Action::SetDlDst(_)
                | Action::SetNwSrc(_)
                | Action::SetNwDst(_)
                | Action::SetNwTos(_)
                | Action::SetTpSrc(_)
                | Action::SetTpDst(_)
                | Action::Clone(_)
        )
    };
    let mut actions = Vec::new();
    for ins in i {
        if let Instruction::ApplyActions(a) = ins {
            actions.extend(a.into_iter().filter(keep));
        }
    }
    if actions.is_empty() { vec![] } else { vec![Instruction::ApplyActions(actions)] }
}

fn port_desc(v: Version) -> impl Strategy<Value = Port> {
    (port(), any::<[u8; 6]>(), text(15), any::<[u32; 6]>(), any::<[u32; 2]>()).prop_map(
        move |(port_no, hw_addr, name, c, speeds)| {
            let speeds = if v == Version::Of13 { speeds } else { [0, 0] };
            Port {
                port_no,
                hw_addr,
                name,
                config: c[0],
                state: c[1],
                curr: c[2],
                advertised: c[3],
                supported: c[4],
                peer: c[5],
                curr_speed: speeds[0],
                max_speed: speeds[1],
            }
        },
    )
}

fn flow_stats_request(v: Version, nicira: bool) -> impl Strategy<Value = FlowStatsRequest> {
    let of13 = v == Version::Of13 && !nicira;
    let matches = if nicira { tlv_match().boxed() } else { std_match(v) };
    (any::<u8>(), port(), any::<u32>(), any::<u64>(), any::<u64>(), matches).prop_map(
        move |(table_id, out_port, out_group, cookie, cookie_mask, matches)| FlowStatsRequest {
            table_id,
            out_port,
            out_group: if of13 { out_group } else { OFPG_ANY },
            cookie: if of13 { cookie } else { 0 },
            cookie_mask: if of13 { cookie_mask } else { 0 },
            matches,
        },
    )
}

fn flow_stats(v: Version, nicira: bool) -> impl Strategy<Value = FlowStats> {
    let matches = if nicira { tlv_match().boxed() } else { std_match(v) };
    let instructions = if nicira || v == Version::Of10 {
        prop_oneof![Just(vec![]), instructions(Version::Of10)].prop_map(move |i| retarget(i, v)).boxed()
    } else {
        instructions(v)
    };
    (
        (any::<u8>(), any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>(), any::<u16>(), any::<u16>()),
        (any::<u16>(), any::<u16>(), any::<u64>(), any::<u64>(), any::<u64>(), matches, instructions),
    )
        .prop_map(
            move |(
                (table_id, ds, dn, priority, idle, hard, flags),
                (ia, ha, cookie, pc, bc, matches, instructions),
            )| {
                FlowStats {
                    table_id,
                    duration_sec: ds,
                    duration_nsec: dn,
                    priority,
                    idle_timeout: idle,
                    hard_timeout: hard,
                    flags: if v == Version::Of13 && !nicira { flags } else { 0 },
                    idle_age: if nicira { ia } else { 0 },
                    hard_age: if nicira { ha } else { 0 },
                    cookie,
                    packet_count: pc,
                    byte_count: bc,
                    matches,
                    instructions,
                }
            },
        )
}

fn aggregate() -> impl Strategy<Value = openflow::AggregateStats> {
    (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(packet_count, byte_count, flow_count)| {
        openflow::AggregateStats { packet_count, byte_count, flow_count }
    })
}

fn group_type() -> impl Strategy<Value = GroupType> {
    prop_oneof![Just(GroupType::All), Just(GroupType::Select), Just(GroupType::Indirect), Just(GroupType::FastFailover)]
}

fn buckets() -> impl Strategy<Value = Vec<Bucket>> {
    vec(
        (any::<u16>(), any::<u32>(), any::<u32>(), actions(Version::Of13))
            .prop_map(|(weight, watch_port, watch_group, actions)| Bucket { weight, watch_port, watch_group, actions }),
        0..4,
    )
}

fn mp_request(v: Version) -> BoxedStrategy<MpRequest> {
    let common = prop_oneof![
        Just(MpRequest::Desc),
        flow_stats_request(v, false).prop_map(MpRequest::Flow),
        flow_stats_request(v, false).prop_map(MpRequest::Aggregate),
        Just(MpRequest::Table),
        port().prop_map(MpRequest::Port),
        Just(MpRequest::PortDesc),
        flow_stats_request(v, true).prop_map(MpRequest::NxFlow),
        flow_stats_request(v, true).prop_map(MpRequest::NxAggregate),
    ];
    match v {
        Version::Of10 => common.boxed(),
        Version::Of13 => prop_oneof![
            common,
            any::<u32>().prop_map(MpRequest::Group),
            Just(MpRequest::GroupDesc),
            Just(MpRequest::TableFeatures),
            any::<u32>().prop_map(MpRequest::Meter),
            any::<u32>().prop_map(MpRequest::MeterConfig),
            Just(MpRequest::MeterFeatures),
        ]
        .boxed(),
    }
}

fn mp_reply(v: Version) -> BoxedStrategy<MpReply> {
    let desc = (text(255), text(255), text(255), text(31), text(255)).prop_map(|(a, b, c, d, e)| {
        MpReply::Desc(Desc { mfr_desc: a, hw_desc: b, sw_desc: c, serial_num: d, dp_desc: e })
    });
    let table = vec(
        (any::<u8>(), text(31), any::<[u32; 3]>(), any::<u64>(), any::<u64>()).prop_map(
            move |(table_id, name, n, l, m)| {
                let of10 = v == Version::Of10;
                TableStats {
                    table_id,
                    name: if of10 { name } else { String::new() },
                    wildcards: if of10 { n[0] } else { 0 },
                    max_entries: if of10 { n[1] } else { 0 },
                    active_count: n[2],
                    lookup_count: l,
                    matched_count: m,
                }
            },
        ),
        0..3,
    );
    let port_stats = vec(
        (port(), any::<[u64; 12]>(), any::<[u32; 2]>()).prop_map(move |(port_no, counters, d)| {
            let d = if v == Version::Of13 { d } else { [0, 0] };
            PortStats { port_no, counters, duration_sec: d[0], duration_nsec: d[1] }
        }),
        0..3,
    );
    let common = prop_oneof![
        desc,
        vec(flow_stats(v, false), 0..3).prop_map(MpReply::Flow),
        aggregate().prop_map(MpReply::Aggregate),
        table.prop_map(MpReply::Table),
        port_stats.prop_map(MpReply::Port),
        vec(port_desc(v), 0..3).prop_map(MpReply::PortDesc),
        vec(flow_stats(v, true), 0..3).prop_map(MpReply::NxFlow),
        aggregate().prop_map(MpReply::NxAggregate),
    ];
    match v {
        Version::Of10 => common.boxed(),
        Version::Of13 => {
            prop_oneof![
                common,
                vec(
                    (any::<[u32; 4]>(), any::<[u64; 2]>(), vec(any::<(u64, u64)>(), 0..3)).prop_map(
                        |(a, c, buckets)| {
                            GroupStats {
                                group_id: a[0],
                                ref_count: a[1],
                                packet_count: c[0],
                                byte_count: c[1],
                                duration_sec: a[2],
                                duration_nsec: a[3],
                                buckets,
                            }
                        }
                    ),
                    0..3
                )
                .prop_map(MpReply::Group),
                vec(
                    (group_type(), any::<u32>(), buckets()).prop_map(|(group_type, group_id, buckets)| GroupDesc {
                        group_type,
                        group_id,
                        buckets
                    }),
                    0..3
                )
                .prop_map(MpReply::GroupDesc),
                vec(
                    (
                        any::<u8>(),
                        text(31),
                        any::<[u64; 2]>(),
                        any::<[u32; 2]>(),
                        (0usize..4).prop_flat_map(|n| vec(any::<u8>(), n * 8))
                    )
                        .prop_map(|(table_id, name, m, c, properties)| TableFeatures {
                            table_id,
                            name,
                            metadata_match: m[0],
                            metadata_write: m[1],
                            config: c[0],
                            max_entries: c[1],
                            properties,
                        }),
                    0..3
                )
                .prop_map(MpReply::TableFeatures),
                bytes(48).prop_map(MpReply::Meter),
                bytes(48).prop_map(MpReply::MeterConfig),
                (any::<u32>(), any::<u32>(), any::<u32>(), any::<u8>(), any::<u8>()).prop_map(
                    |(max_meter, band_types, capabilities, max_bands, max_color)| MpReply::MeterFeatures(
                        MeterFeatures { max_meter, band_types, capabilities, max_bands, max_color }
                    )
                ),
            ]
            .boxed()
        }
    }
}

fn body(v: Version) -> BoxedStrategy<Body> {
    let of13 = v == Version::Of13;
    let config = (any::<u16>(), any::<u16>()).prop_map(|(flags, miss_send_len)| SwitchConfig { flags, miss_send_len });
    let features =
        (any::<u64>(), any::<u32>(), any::<u8>(), any::<u8>(), any::<u32>(), any::<u32>(), vec(port_desc(v), 0..3))
            .prop_map(move |(datapath_id, n_buffers, n_tables, aux, capabilities, actions, ports)| FeaturesReply {
                datapath_id,
                n_buffers,
                n_tables,
                auxiliary_id: if of13 { aux } else { 0 },
                capabilities,
                actions,
                ports: if of13 { vec![] } else { ports },
            });
    let packet_in_match = match v {
        Version::Of10 => {
            port().prop_map(|p| Match { fields: vec![MatchField::exact(Field::InPort, p.into())] }).boxed()
        }
        Version::Of13 => tlv_match().boxed(),
    };
    let packet_in = (any::<u32>(), any::<u16>(), any::<u8>(), any::<u8>(), any::<u64>(), packet_in_match, bytes(64))
        .prop_map(move |(buffer_id, total_len, reason, table_id, cookie, matches, data)| PacketIn {
            buffer_id,
            total_len,
            reason,
            table_id: if of13 { table_id } else { 0 },
            cookie: if of13 { cookie } else { 0 },
            matches,
            data,
        });
    let reason = prop_oneof![
        Just(FlowRemovedReason::IdleTimeout),
        Just(FlowRemovedReason::HardTimeout),
        Just(FlowRemovedReason::Delete),
        Just(if of13 { FlowRemovedReason::GroupDelete } else { FlowRemovedReason::Delete }),
    ];
    let flow_removed = (
        (any::<u64>(), any::<u16>(), reason, any::<u8>(), any::<u32>(), any::<u32>()),
        (any::<u16>(), any::<u16>(), any::<u64>(), any::<u64>(), std_match(v)),
    )
        .prop_map(move |((cookie, priority, reason, table_id, ds, dn), (idle, hard, pc, bc, matches))| FlowRemoved {
            cookie,
            priority,
            reason,
            table_id: if of13 { table_id } else { 0 },
            duration_sec: ds,
            duration_nsec: dn,
            idle_timeout: idle,
            hard_timeout: if of13 { hard } else { 0 },
            packet_count: pc,
            byte_count: bc,
            matches,
        });
    let port_status =
        (prop_oneof![Just(PortReason::Add), Just(PortReason::Delete), Just(PortReason::Modify)], port_desc(v))
            .prop_map(|(reason, desc)| PortStatus { reason, desc });
    let packet_out = (any::<u32>(), port(), actions(v), bytes(64))
        .prop_map(|(buffer_id, in_port, actions, data)| PacketOut { buffer_id, in_port, actions, data });
    let port_mod = (port(), any::<[u8; 6]>(), any::<[u32; 3]>()).prop_map(|(port_no, hw_addr, c)| PortMod {
        port_no,
        hw_addr,
        config: c[0],
        mask: c[1],
        advertise: c[2],
    });
    let common = prop_oneof![
        (any::<u16>(), any::<u16>(), bytes(64)).prop_map(|(err_type, code, data)| Body::Error(ErrorMsg {
            err_type,
            code,
            data
        })),
        bytes(32).prop_map(Body::EchoRequest),
        bytes(32).prop_map(Body::EchoReply),
        Just(Body::FeaturesRequest),
        features.prop_map(Body::FeaturesReply),
        Just(Body::GetConfigRequest),
        config.clone().prop_map(Body::GetConfigReply),
        config.prop_map(Body::SetConfig),
        packet_in.prop_map(Body::PacketIn),
        flow_removed.prop_map(Body::FlowRemoved),
        port_status.prop_map(Body::PortStatus),
        packet_out.prop_map(Body::PacketOut),
        flow_mod(v, false).prop_map(Body::FlowMod),
        flow_mod(v, true).prop_map(Body::NxFlowMod),
        port_mod.prop_map(Body::PortMod),
        (any::<bool>(), mp_request(v)).prop_map(|(more, body)| Body::MultipartRequest(MultipartRequest { more, body })),
        (any::<bool>(), mp_reply(v)).prop_map(|(more, body)| Body::MultipartReply(MultipartReply { more, body })),
        Just(Body::BarrierRequest),
        Just(Body::BarrierReply),
        prop_oneof![Just(FlowFormat::OpenFlow10), Just(FlowFormat::Nxm)].prop_map(Body::NxSetFlowFormat),
        any::<bool>().prop_map(Body::NxFlowModTableId),
        prop_oneof![
            Just(PacketInFormat::Standard),
            Just(PacketInFormat::NxPacketIn),
            Just(PacketInFormat::NxPacketIn2)
        ]
        .prop_map(Body::NxSetPacketInFormat),
        proptest::option::of(any::<u32>()).prop_map(move |bitmap| Body::Hello(Hello { version: v.wire(), bitmap })),
    ];
    if !of13 {
        return common.boxed();
    }
    let role = (0u32..4, any::<u64>()).prop_map(|(role, generation_id)| Role { role, generation_id });
    let async_config = any::<[u32; 6]>().prop_map(|m| AsyncConfig {
        packet_in_mask: [m[0], m[1]],
        port_status_mask: [m[2], m[3]],
        flow_removed_mask: [m[4], m[5]],
    });
    let group_mod = (
        prop_oneof![Just(GroupModCommand::Add), Just(GroupModCommand::Modify), Just(GroupModCommand::Delete)],
        group_type(),
        any::<u32>(),
        buckets(),
    )
        .prop_map(|(command, group_type, group_id, buckets)| GroupMod { command, group_type, group_id, buckets });
    let meter_mod = (
        prop_oneof![Just(MeterModCommand::Add), Just(MeterModCommand::Modify), Just(MeterModCommand::Delete)],
        any::<u16>().prop_map(|f| f & !1),
        any::<u32>(),
        proptest::collection::vec(any::<[u8; METER_BAND_LEN]>(), 0..3),
    )
        .prop_map(|(command, flags, meter_id, bands)| MeterMod { command, flags, meter_id, bands: bands.concat() });
    prop_oneof![
        8 => common,
        1 => group_mod.prop_map(Body::GroupMod),
        1 => meter_mod.prop_map(Body::MeterMod),
        1 => (any::<u8>(), any::<u32>()).prop_map(|(table_id, config)| Body::TableMod(TableMod { table_id, config })),
        1 => role.clone().prop_map(Body::RoleRequest),
        1 => role.prop_map(Body::RoleReply),
        1 => Just(Body::GetAsyncRequest),
        1 => async_config.clone().prop_map(Body::GetAsyncReply),
        1 => async_config.prop_map(Body::SetAsync),
    ]
    .boxed()
}

fn message() -> impl Strategy<Value = Message> {
    (version(), any::<u32>()).prop_flat_map(|(v, xid)| body(v).prop_map(move |body| Message { version: v, xid, body }))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn decode_inverts_encode(m in message()) {
        let bytes = openflow::encode(&m).map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
        let (back, len) = openflow::decode(&bytes).map_err(|e| TestCaseError::fail(format!("decode: {e:?} of {bytes:02x?}")))?;
        prop_assert_eq!(len, bytes.len());
        prop_assert_eq!(back, m);
    }
}
