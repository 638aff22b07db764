//! Differential test of the translator against the naive reference evaluator.
//!
//! For random rule sets (several tables, overlapping prefixes, masked port ranges,
//! resubmit/goto_table, set-field, VLAN operations, dec_ttl, normal with a random MAC
//! table, registers and metadata with load/move/write_metadata) and random packets p: translate p into (actions, mask); then for random
//! packets q that agree with p on the mask (other bits taken from another random packet
//! or from random noise), the reference evaluation of q must give exactly p's actions,
//! matched rules and MAC learning. This is the test that masks are never too narrow.
//!
//! Rules on the neighbour-discovery fields (not in the key) are generated too: a
//! translation that ends with the slow-path action must cover only ND messages (the
//! slow path then decides each by its frame, which the key does not hold); any other
//! translation is compared with the reference as above (an ND rule's key part, `icmp6`
//! of type 135/136, fails every other packet). The slow path's own decision for such a
//! message, `translate_with_nd` with random ND fields as a frame could carry them, is
//! compared with the reference given the same fields.
//!
//! Case count: `FERROVS_PROPTEST_CASES` (default 300 rule sets; each rule set is checked
//! with 48 packets x 6 variants, so the default is ~86k packet comparisons and
//! `FERROVS_PROPTEST_CASES=12000` is ~3.5M).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ferrovs_config::rules::{Action, Masked, Match, PacketField, Resubmit, Rule, SetField, Subfield, SubfieldField};
use ferrovs_flowcache::actions::{DpAction, REASON_SLOW_PATH};
use ferrovs_flowcache::extract::NdFields;
use ferrovs_flowcache::key::{FRAG_ANY, FRAG_LATER, FlowKey, Mask, VLAN_PRESENT, ethertype, ipproto};
use ferrovs_flowcache::xlate::{
    Lookup, MacLearn, MacTable, RuleRef, RuleTables, Translation, Verdict, reference, revalidate, translate,
    translate_with, translate_with_nd,
};
use proptest::prelude::*;

use ferrovs_flowcache::testpkt::SplitMix as Rng;

const PORTS: [u32; 4] = [1, 2, 3, 4];
const MACS: [[u8; 6]; 6] = [
    [0x02, 0, 0, 0, 0, 1],
    [0x02, 0, 0, 0, 0, 2],
    [0x02, 0, 0, 0, 1, 1],
    [0xff; 6],
    [0x01, 0x00, 0x5e, 0, 0, 1],
    [0x01, 0x80, 0xc2, 0, 0, 0],
];
const V4_BASES: [u32; 5] = [0x0a00_0000, 0x0a01_0000, 0x0a01_0200, 0xc0a8_0101, 0x0b00_0000];
const TP_PORTS: [u16; 6] = [22, 53, 80, 443, 0x1000, 0x8001];
const VIDS: [u16; 3] = [10, 20, 30];
const LABELS: [u32; 4] = [0, 0x12345, 0x80000, 0xfffff];

/// MPLS labels rules match and packets carry.
const MPLS_LABELS: [u32; 4] = [16, 17, 1000, 0xfffff];

fn prefix32(len: u32) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

fn gen_match(r: &mut Rng) -> Match {
    let mut m = Match::default();
    if r.chance(20) {
        m.in_port = Some(r.pick(&PORTS));
    }
    if r.chance(75) {
        m.dl_type = Some(r.pick(&[
            ethertype::IPV4,
            ethertype::IPV4,
            ethertype::IPV4,
            ethertype::IPV6,
            ethertype::ARP,
            ethertype::RARP,
            0x88cc,
            ethertype::MPLS,
        ]));
    }
    // MPLS: parts of the first label stack entry (label, TC, BOS, TTL), as rules write them.
    if m.dl_type == Some(ethertype::MPLS) && r.chance(70) {
        let (value, mask) = match r.below(4) {
            0 => (r.pick(&MPLS_LABELS) << 12, 0xffff_f000),
            1 => ((r.below(8) as u32) << 9, 0xe00),
            2 => ((r.below(2) as u32) << 8, 0x100),
            _ => (r.pick(&MPLS_LABELS) << 12 | 0x100 | r.pick(&[1u32, 64]), 0xffff_f1ff),
        };
        m.mpls_lse = Some(Masked { value, mask });
    }
    if r.chance(15) {
        m.vlan_tci = Some(match r.below(4) {
            0 => Masked { value: 0, mask: 0xffff },
            1 => Masked { value: VLAN_PRESENT, mask: VLAN_PRESENT },
            2 => Masked { value: VLAN_PRESENT | r.pick(&VIDS), mask: 0x1fff },
            _ => Masked { value: VLAN_PRESENT | 0x6000, mask: 0xf000 },
        });
    }
    for slot in [&mut m.dl_src, &mut m.dl_dst] {
        if r.chance(10) {
            *slot = Some(if r.chance(50) {
                Masked { value: r.pick(&MACS), mask: [0xff; 6] }
            } else {
                Masked { value: [1, 0, 0, 0, 0, 0], mask: [1, 0, 0, 0, 0, 0] }
            });
        }
    }
    if r.chance(55) {
        m.nw_proto = Some(r.pick(&[ipproto::TCP, ipproto::UDP, ipproto::UDP, ipproto::ICMP, ipproto::ICMPV6, 1]));
    }
    for slot in [&mut m.nw_src, &mut m.nw_dst] {
        if r.chance(40) {
            let len = r.pick(&[0, 1, 7, 8, 16, 20, 24, 31, 32]);
            let base = r.pick(&V4_BASES) & prefix32(len);
            *slot = Some(Masked { value: Ipv4Addr::from(base), mask: Ipv4Addr::from(prefix32(len)) });
        }
    }
    if r.chance(20) {
        let len = r.pick(&[8u32, 32, 64, 127, 128]);
        let mask = u128::MAX << (128 - len);
        let base: u128 = if r.chance(50) { 0x2001_0db8 << 96 } else { (0x2001_0db8 << 96) | 0x1_0000 };
        m.ipv6_dst = Some(Masked { value: Ipv6Addr::from(base & mask), mask: Ipv6Addr::from(mask) });
    }
    if r.chance(12) {
        m.ipv6_label = Some(if r.chance(60) {
            Masked { value: r.pick(&LABELS), mask: 0xfffff }
        } else {
            let mask = r.pick(&[0xf0000u32, 0x000ff, 0x80001]);
            Masked { value: r.pick(&LABELS) & mask, mask }
        });
    }
    if r.chance(10) {
        m.nw_tos = Some(Masked { value: 0xb8, mask: 0xfc });
    }
    if r.chance(5) {
        m.nw_ttl = Some(r.pick(&[1, 2, 63, 64]));
    }
    if r.chance(10) {
        let (v, mk) = r.pick(&[(0u8, 1u8), (1, 1), (1, 3), (3, 3), (0, 2)]);
        m.nw_frag = Some(Masked { value: v, mask: mk });
    }
    for slot in [&mut m.tp_src, &mut m.tp_dst] {
        if r.chance(40) {
            *slot = Some(if r.chance(60) {
                Masked { value: r.pick(&TP_PORTS), mask: 0xffff }
            } else {
                let mask: u16 = r.pick(&[0xf000, 0xfc00, 0xff00, 0xfff0, 0x8000]);
                Masked { value: r.pick(&TP_PORTS) & mask, mask }
            });
        }
    }
    if r.chance(5) {
        m.tcp_flags = Some(Masked { value: 0x002, mask: 0x012 });
    }
    if r.chance(5) {
        m.arp_sha = Some(Masked { value: r.pick(&MACS), mask: [0xff; 6] });
    }
    // Neighbour discovery: an ICMPv6 NS/NA rule, most with a target or link-layer address.
    if r.chance(12) {
        let ty = r.pick(&[135u16, 136]);
        (m.dl_type, m.nw_proto) = (Some(ethertype::IPV6), Some(ipproto::ICMPV6));
        m.tp_src = Some(Masked { value: ty, mask: 0xffff });
        m.tp_dst = if r.chance(30) { Some(Masked { value: 0, mask: 0xffff }) } else { None };
        m.tcp_flags = None;
        // (Without an ND field the rule is decided in the fast path; its ND writes are not.)
        if r.chance(60) {
            let target = Ipv6Addr::from(0xfd00u128 << 112 | 1);
            m.nd_target = Some(Masked { value: target, mask: Ipv6Addr::from(u128::MAX) });
        }
        if r.chance(40) {
            let mac = Some(Masked { value: r.pick(&MACS), mask: [0xff; 6] });
            if ty == 135 { m.nd_sll = mac } else { m.nd_tll = mac }
        }
        if r.chance(20) {
            m.nd_reserved = Some(r.pick(&ND_RESERVED));
        }
        if r.chance(20) {
            m.nd_options_type = Some(r.pick(&[0, 1, 2]));
        }
    }
    // Registers and metadata: small values, so that loads and moves make them match.
    if r.chance(20) {
        let value = r.below(4) as u32;
        let reg = if r.chance(70) { Masked { value, mask: u32::MAX } } else { Masked { value: value & 1, mask: 1 } };
        m.set_reg(r.pick(&[0, 1, 1, 3]), Some(reg));
    }
    if r.chance(10) {
        let mask = r.pick(&[u64::MAX, 0xff, 0x2]);
        m.metadata = Some(Masked { value: r.below(4) & mask, mask });
    }
    m
}

/// `field[ofs..ofs + n_bits]`.
fn sub(field: SubfieldField, ofs: u16, n_bits: u16) -> Subfield {
    Subfield { field, ofs, n_bits }
}

/// Random bits of a packet field of `load`/`move` other than in_port and vlan_tci (which
/// have their own cases): one ferrovs reads (`write`: also writes).
fn packet_subfield(r: &mut Rng, write: bool) -> Subfield {
    use ferrovs_config::field::{Access, PACKET_FIELDS};
    let defs: Vec<_> = PACKET_FIELDS
        .iter()
        .filter(|d| !matches!(d.field, PacketField::InPort | PacketField::VlanTci))
        .filter(|d| !write || d.access == Access::ReadWrite)
        .collect();
    let d = defs[r.below(defs.len() as u64) as usize];
    let (ofs, n_bits) = match r.below(3) {
        0 => (0, d.width),
        _ => {
            let n = 1 + r.below(d.width.min(16) as u64) as u16;
            (r.below((d.width - n + 1) as u64) as u16, n)
        }
    };
    sub(SubfieldField::Packet(d.field), ofs, n_bits)
}

/// A `load`, `move` or `write_metadata` over registers 0 and 1, the metadata and the
/// packet fields (in_port and vlan_tci in cases of their own), or an `output` to the port
/// in a register (some loads put reserved ports there: IN_PORT, NORMAL, FLOOD, LOCAL).
fn gen_pipeline_action(r: &mut Rng) -> Action {
    use PacketField as P;
    use SubfieldField::{Metadata, Packet, Reg};
    let reg = |r: &mut Rng| Reg(r.below(2) as u8);
    match r.below(14) {
        10 => {
            let src = packet_subfield(r, false);
            let n = src.n_bits.min(32);
            Action::Move { src: Subfield { n_bits: n, ..src }, dst: sub(reg(r), 0, n) }
        }
        11 => {
            let dst = packet_subfield(r, true);
            if r.chance(50) {
                let value = r.next_u64() as u128 & ((1u128 << dst.n_bits.min(64)) - 1);
                Action::Load { dst, value, set_field: false }
            } else {
                let src = packet_subfield(r, false);
                let n = src.n_bits.min(dst.n_bits);
                Action::Move { src: Subfield { n_bits: n, ..src }, dst: Subfield { n_bits: n, ..dst } }
            }
        }
        12 => Action::OutputReg(sub(reg(r), 0, 16)),
        13 => Action::Load {
            dst: sub(Reg(1), 0, 16),
            value: r.pick(&[1u128, 2, 3, 9, 0xfff8, 0xfffa, 0xfffb, 0xfffc, 0xfffe, 0xffff]),
            set_field: false,
        },
        0 => Action::Load { dst: sub(reg(r), 0, 32), value: r.below(4) as u128, set_field: r.chance(50) },
        1 => Action::Load { dst: sub(reg(r), 0, 1), value: r.below(2) as u128, set_field: false },
        2 => Action::Load { dst: sub(Metadata, 0, 8), value: r.below(4) as u128, set_field: false },
        3 => {
            let src = match r.below(5) {
                0 => sub(Packet(P::InPort), 0, 2),
                1 => sub(Packet(P::EthSrc), 0, 2),
                2 => sub(Packet(P::IpProto), 0, 2),
                3 => sub(Packet(P::TcpDst), 0, 2),
                _ => sub(Packet(P::IpDst), 30, 2),
            };
            let dst = if r.chance(70) { sub(reg(r), 0, 2) } else { sub(Metadata, 0, 2) };
            Action::Move { src, dst }
        }
        4 => {
            let (src, dst) = match r.below(4) {
                0 => (sub(reg(r), 0, 8), sub(Packet(P::EthDst), 0, 8)),
                1 => (sub(reg(r), 0, 16), sub(Packet(P::UdpSrc), 0, 16)),
                2 => (sub(reg(r), 0, 8), sub(Packet(P::IpTtl), 0, 8)),
                _ => (sub(Metadata, 0, 32), sub(Packet(P::Ipv6Dst), 0, 32)),
            };
            Action::Move { src, dst }
        }
        5 => Action::WriteMetadata { value: r.below(4), mask: r.pick(&[0xff, 0x3]) },
        // The wider views: xreg0 bits 30..33 are reg1's top two and reg0's low two bits;
        // xxreg0's low 32 bits are reg3.
        6 => Action::Load { dst: sub(SubfieldField::Xreg(0), 30, 4), value: r.below(16) as u128, set_field: false },
        // in_port: later outputs, `in_port`, flood and normal see the new one.
        8 => match r.below(3) {
            0 => {
                Action::Load { dst: sub(Packet(P::InPort), 0, 16), value: r.pick(&[1u128, 2, 3, 7]), set_field: false }
            }
            1 => Action::Load { dst: sub(Packet(P::InPort), 0, 2), value: r.below(4) as u128, set_field: false },
            _ => Action::Move { src: sub(reg(r), 0, 16), dst: sub(Packet(P::InPort), 0, 16) },
        },
        // vlan_tci: present (rewrite or push), absent (remove), some bits of it.
        9 => match r.below(4) {
            0 => {
                let value = r.pick(&[0u128, 0x1000, 0x100a, 0x3014, 0x0005]);
                Action::Load { dst: sub(Packet(P::VlanTci), 0, 16), value, set_field: false }
            }
            1 => {
                Action::Load { dst: sub(Packet(P::VlanTci), 0, 12), value: r.pick(&[0u128, 10, 20]), set_field: false }
            }
            2 => Action::Load { dst: sub(Packet(P::VlanTci), 12, 1), value: r.below(2) as u128, set_field: false },
            _ => Action::Move { src: sub(reg(r), 0, 16), dst: sub(Packet(P::VlanTci), 0, 16) },
        },
        _ => Action::Move { src: sub(Packet(P::IpDst), 0, 2), dst: sub(SubfieldField::Xxreg(0), 0, 2) },
    }
}

fn gen_action(r: &mut Rng, n_tables: u8) -> Action {
    match r.below(27) {
        22..=26 => gen_pipeline_action(r),
        0..=3 => Action::Output(r.pick(&[1, 2, 3, 4, 9])),
        4 => Action::OutputTrunc {
            port: r.pick(&[1, 2, 3, 9, ferrovs_config::rules::OUTPUT_TRUNC_IN_PORT]),
            max_len: r.pick(&[14, 60, 1500]),
        },
        5 => Action::InPort,
        6 => Action::Flood,
        7 => Action::All,
        8 => Action::Normal,
        9 => Action::ModVlanVid(r.pick(&VIDS)),
        10 => Action::ModVlanPcp(r.below(8) as u8),
        11 => Action::StripVlan,
        12 => Action::PushVlan(r.pick(&[ethertype::VLAN, ethertype::QINQ])),
        13 => Action::DecTtl,
        14..=17 => Action::Set(match r.below(14) {
            0 => SetField::DlSrc(r.pick(&MACS)),
            1 => SetField::DlDst(r.pick(&MACS)),
            2 => SetField::VlanVid(r.pick(&VIDS)),
            3 => SetField::VlanPcp(r.below(8) as u8),
            4 => SetField::NwSrc(Ipv4Addr::from(r.pick(&V4_BASES) | 7)),
            5 => SetField::NwDst(Ipv4Addr::from(r.pick(&V4_BASES) | 9)),
            6 => SetField::Ipv6Src(Ipv6Addr::from((0x2001_0db8u128 << 96) | 5)),
            7 => SetField::Ipv6Dst(Ipv6Addr::from((0x2001_0db8u128 << 96) | 0x1_0005)),
            8 => SetField::IpDscp(46),
            9 => SetField::NwEcn(1),
            10 => SetField::NwTtl(r.pick(&[1, 64])),
            11 => SetField::TpSrc(r.pick(&TP_PORTS)),
            12 => SetField::Ipv6Label(r.pick(&LABELS)),
            _ => SetField::TpDst(r.pick(&TP_PORTS)),
        }),
        _ => Action::Resubmit(Resubmit {
            in_port: if r.chance(30) { Some(r.pick(&PORTS)) } else { None },
            table: match r.below(20) {
                0..=16 => Some(r.below(n_tables as u64) as u8),
                17 => Some(255),
                _ => None,
            },
        }),
    }
}

/// A `load` into an ND field (its whole width or a few bits) or a `move` out of one into
/// register 0 or into another ND field.
fn gen_nd_action(r: &mut Rng) -> Action {
    use PacketField::{NdOptionsType, NdReserved, NdSll, NdTarget, NdTll};
    let field = SubfieldField::Packet(r.pick(&[NdTarget, NdSll, NdTll, NdReserved, NdOptionsType]));
    let width = field.width();
    let (ofs, n_bits) = if r.chance(50) { (0, width) } else { (r.below(u64::from(width - 7)) as u16, 8) };
    let dst = sub(field, ofs, n_bits);
    match r.below(4) {
        0 => {
            let n = n_bits.min(32);
            Action::Move { src: sub(field, ofs, n), dst: sub(SubfieldField::Reg(0), 0, n) }
        }
        1 => Action::Move { src: sub(SubfieldField::Packet(NdReserved), 0, 8), dst: sub(field, ofs, 8) },
        _ => {
            let value = r.pick(&[0u128, 1, 2, 0xff, u128::MAX]) & (u128::MAX >> (128 - n_bits));
            Action::Load { dst, value, set_field: n_bits == width }
        }
    }
}

fn gen_rules(r: &mut Rng) -> Vec<Rule> {
    let n_tables = 1 + r.below(3) as u8;
    let n = 1 + r.below(24) as usize;
    let mut rules = Vec::with_capacity(n);
    for _ in 0..n {
        let table = r.below(n_tables as u64) as u8;
        let n_actions = r.below(4) as usize;
        let mut actions: Vec<Action> = (0..n_actions).map(|_| gen_action(r, n_tables)).collect();
        // The action set's instructions (after the actions, before write_metadata and
        // goto_table), with the actions the action set can hold.
        if r.chance(15) {
            let at = actions.iter().position(|a| matches!(a, Action::WriteMetadata { .. })).unwrap_or(actions.len());
            let set: Vec<Action> = (0..1 + r.below(3))
                .map(|_| gen_action(r, n_tables))
                .filter(|a| !matches!(a, Action::Clone(_) | Action::Note(_) | Action::WriteMetadata { .. }))
                .collect();
            if !set.is_empty() {
                actions.insert(at, Action::WriteActions(set));
            }
            if r.chance(30) {
                actions.insert(at, Action::ClearActions);
            }
        }
        let matches = gen_match(r);
        // ND messages: writes into their ND fields (whole or some bits) and moves out of
        // them, before an output, more often than the random actions would bring them.
        if matches.tp_src.is_some_and(|t| matches!(t.value, 135 | 136)) && r.chance(50) {
            let at = r.below(actions.len() as u64 + 1) as usize;
            actions.insert(at, Action::Output(r.pick(&PORTS)));
            for _ in 0..1 + r.below(2) {
                actions.insert(at, gen_nd_action(r));
            }
        }
        if table + 1 < n_tables && r.chance(20) {
            actions.push(Action::GotoTable(table + 1 + r.below((n_tables - table - 1) as u64) as u8));
        }
        rules.push(Rule {
            table,
            priority: r.pick(&[0, 1, 100, 100, 200, 32768]),
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            send_flow_rem: false,
            matches,
            actions,
        });
    }
    rules
}

/// A key of the megaflow (`p` under `mask`), `noise` elsewhere, that extraction could give:
/// an absent tag's TCI is 0 (and no inner tag stands behind an absent outer one). The
/// translator relies on that (OVS's `mod_vlan_vid` keeps the other bits of an absent
/// tag's TCI, which only a `vlan_tci` write can make non-zero), so it reads only the
/// present bit of an absent tag.
fn covered(p: &FlowKey, mask: &Mask, noise: &FlowKey) -> FlowKey {
    let mut q = FlowKey::ZERO;
    for i in 0..8 {
        q.w[i] = (p.w[i] & mask.w[i]) | (noise.w[i] & !mask.w[i]);
    }
    // A tag whose bits (a VID or PCP read) are in the mask with a non-zero value is present.
    for slot in 0..2 {
        if p.vlan_tci(slot) & mask.vlan_tci(slot) != 0 {
            q.set_vlan_tci(slot, q.vlan_tci(slot) | VLAN_PRESENT);
        }
    }
    if q.vlan_tci(0) & VLAN_PRESENT == 0 {
        q.set_vlan_tci(0, 0);
        q.set_vlan_tci(1, 0);
    } else if q.vlan_tci(1) & VLAN_PRESENT == 0 {
        q.set_vlan_tci(1, 0);
    }
    q
}

fn gen_packet(r: &mut Rng) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_in_port(r.pick(&[1, 2, 3, 4, 4, 7]));
    k.set_dl_src(r.pick(&MACS));
    k.set_dl_dst(r.pick(&MACS));
    if r.chance(40) {
        k.set_vlan_tci(0, VLAN_PRESENT | r.pick(&VIDS) | ((r.below(8) as u16) << 13));
        if r.chance(30) {
            k.set_vlan_tci(1, VLAN_PRESENT | r.pick(&VIDS));
        }
    }
    let dl_type = r.pick(&[
        ethertype::IPV4,
        ethertype::IPV4,
        ethertype::IPV4,
        ethertype::IPV6,
        ethertype::ARP,
        ethertype::RARP,
        0x88cc,
        ethertype::MPLS,
        // A tag cut short, or one beyond the vlan-limit: the TPID is the EtherType.
        ethertype::VLAN,
    ]);
    k.set_dl_type(dl_type);
    match dl_type {
        ethertype::IPV4 | ethertype::IPV6 => {
            if dl_type == ethertype::IPV4 {
                k.set_nw_src_u32(r.pick(&V4_BASES) | (r.below(1 << 12) as u32));
                let dst = if r.chance(80) {
                    let bits = r.below(32);
                    r.pick(&V4_BASES) ^ (r.below(1 << bits) as u32)
                } else {
                    r.next_u64() as u32
                };
                k.set_nw_dst_u32(dst);
            } else {
                k.set_ipv6_src_u128(((0x2001_0db8u128) << 96) | r.below(1 << 20) as u128);
                let shift = r.below(64);
                k.set_ipv6_dst_u128(((0x2001_0db8u128) << 96) ^ ((r.next_u64() as u128) >> shift));
                k.set_ipv6_label(if r.chance(70) {
                    r.pick(&LABELS) ^ (r.below(4) as u32)
                } else {
                    r.next_u64() as u32
                });
            }
            let proto = r.pick(&[ipproto::TCP, ipproto::UDP, ipproto::UDP, ipproto::ICMP, ipproto::ICMPV6, 47]);
            k.set_nw_proto(proto);
            k.set_nw_tos(r.below(256) as u8);
            k.set_nw_ttl(r.pick(&[0, 1, 2, 64]));
            if r.chance(25) {
                k.set_nw_frag(r.pick(&[FRAG_ANY, FRAG_ANY | FRAG_LATER]));
            }
            let port =
                |r: &mut Rng| if r.chance(60) { r.pick(&TP_PORTS) ^ (r.below(4) as u16) } else { r.next_u64() as u16 };
            k.set_tp_src(port(r));
            k.set_tp_dst(port(r));
            if proto == ipproto::ICMPV6 && r.chance(40) {
                // Neighbour solicitations and advertisements, mostly with code 0.
                k.set_tp_src(r.pick(&[135, 136]));
                k.set_tp_dst(if r.chance(80) { 0 } else { 1 });
            }
            if proto == ipproto::TCP {
                k.set_tcp_flags(r.below(0x1000) as u16);
            }
        }
        ethertype::ARP | ethertype::RARP => {
            k.set_nw_proto(r.pick(&[1, 2, 3, 4]));
            k.set_nw_src_u32(r.pick(&V4_BASES) | 1);
            k.set_nw_dst_u32(r.pick(&V4_BASES) | 2);
            k.set_arp_sha(r.pick(&MACS));
        }
        ethertype::MPLS => {
            let lse = r.pick(&MPLS_LABELS) << 12 | (r.below(8) as u32) << 9 | (r.below(2) as u32) << 8;
            k.set_mpls_lse(lse | r.pick(&[0u32, 1, 64, 255]));
        }
        _ => {}
    }
    k
}

/// `nd_reserved` values the rules match and the packets carry (an NA's R/S/O flags).
const ND_RESERVED: [u32; 3] = [0, 0x6000_0000, 0x2000_0000];

/// ND fields a frame with key `k` could carry, as `extract::nd_fields` reads them: zero
/// unless an NS/NA with code 0; a target the ND rules name or another; a source
/// link-layer address only in an NS, a target one only in an NA, each present or not,
/// the options type the one of the address present (or, rarely, the other or none: a
/// repeated option zeroes the address only); flags.
fn gen_nd(r: &mut Rng, k: &FlowKey) -> NdFields {
    let mut nd = NdFields::default();
    if k.tp_dst() != 0 || !is_nd_message(k) {
        return nd;
    }
    nd.target = r.pick(&[0xfd00u128 << 112 | 1, 0xfd00u128 << 112 | 2, 0]).to_be_bytes();
    nd.reserved = r.pick(&ND_RESERVED);
    if r.chance(70) {
        let mac = r.pick(&MACS);
        if k.tp_src() == 135 {
            nd.sll = mac
        } else {
            nd.tll = mac
        }
        nd.options_type = if k.tp_src() == 135 { 1 } else { 2 };
    }
    if r.chance(10) {
        nd.options_type = r.pick(&[0, 1, 2]);
    }
    nd
}

/// Whether `actions` are a slow-path megaflow's: every packet goes up with its bytes.
fn is_slow_path(actions: &[DpAction]) -> bool {
    matches!(actions, [DpAction::Controller { reason: REASON_SLOW_PATH, .. }])
}

/// An ICMPv6 neighbour solicitation or advertisement (not a fragment: fragments look
/// up with ports 0).
fn is_nd_message(k: &FlowKey) -> bool {
    k.dl_type() == ethertype::IPV6
        && k.nw_proto() == ipproto::ICMPV6
        && k.nw_frag() & FRAG_ANY == 0
        && matches!(k.tp_src(), 135 | 136)
}

fn gen_macs(r: &mut Rng, now: Duration) -> MacTable {
    let mut t = MacTable::default();
    for _ in 0..r.below(6) {
        let vlan = r.pick(&[0, 10, 20]);
        let mac = r.pick(&MACS[..3]);
        let age = Duration::from_secs(r.pick(&[0, 10, 299, 300, 1000]));
        t.learn(&MacLearn { vlan, mac, port: r.pick(&[1, 2, 3, 4, 5]) }, now - age.min(now));
    }
    t
}

fn check_rule_set(seed: u64) -> Result<(), String> {
    let mut r = Rng(seed);
    let rules = gen_rules(&mut r);
    let now = Duration::from_secs(10_000);
    let macs = gen_macs(&mut r, now);
    let tables = RuleTables::new(rules.clone(), PORTS.to_vec()).map_err(|e| e.to_string())?;
    for _ in 0..48 {
        let p = gen_packet(&mut r);
        let t = translate(&tables, &macs, &p, now);
        let got_rules: Vec<usize> = t.rules.iter().map(|&x| tables.source_index(x)).collect();
        let slow_path = is_slow_path(&t.actions);
        // What the slow path does with the message, given ND fields it could carry.
        for _ in 0..if slow_path { 6 } else { 0 } {
            let nd = gen_nd(&mut r, &p);
            let s = translate_with_nd(&tables, &macs, &p, &nd, now);
            let s_rules: Vec<usize> = s.rules.iter().map(|&x| tables.source_index(x)).collect();
            let e = reference::evaluate_with_nd(&rules, &PORTS, &macs, now, &p, &nd);
            if e.actions != s.actions || e.rules != s_rules || e.learns != s.learns || e.aborted != s.error.is_some() {
                return Err(format!(
                    "seed {seed}: ND message with {nd:?}\nrules: {rules:#?}\np: {p:?}\nslow path: {:?} rules {s_rules:?} learn {:?} err {:?}\nreference: {:?} rules {:?} learn {:?} aborted {}",
                    s.actions, s.learns, s.error, e.actions, e.rules, e.learns, e.aborted
                ));
            }
        }
        if !p.masked(&t.mask).matches(&t.mask, &p) || t.mask.in_port() != ferrovs_flowcache::key::IN_PORT_EXACT {
            return Err(format!("mask does not cover in_port or p: {:?}", t.mask));
        }
        covered_agree(&mut r, &tables, &|x| tables.source_index(x), &rules, &macs, now, &p, &t, &got_rules)
            .map_err(|e| format!("seed {seed}: {e}"))?;
    }
    Ok(())
}

/// Every packet the megaflow of `p` covers (translation `t` through `tables`, whose
/// matched rules are `got_rules`, indices in `rules` as `index_of` gives them) gets `t`'s decision from the
/// reference evaluator over `rules`: `p` itself and packets with other bits from other
/// packets or from noise. A slow-path megaflow sends each packet it covers to the slow
/// path, which decides it by its frame's ND fields: such a packet must be one its own
/// translation sends there (an ND message in the key of the lookup that decided so; an
/// action before that lookup may have written the ICMPv6 type, so not always an ND
/// message as received), and the slow path's decision must be the reference's.
#[allow(clippy::too_many_arguments)]
fn covered_agree(
    r: &mut Rng,
    tables: &RuleTables,
    index_of: &dyn Fn(RuleRef) -> usize,
    rules: &[Rule],
    macs: &MacTable,
    now: Duration,
    p: &FlowKey,
    t: &Translation,
    got_rules: &[usize],
) -> Result<(), String> {
    let slow_path = is_slow_path(&t.actions);
    for v in 0..6 {
        let noise = match v {
            0 => *p,
            1 | 2 => gen_packet(r),
            _ => FlowKey { w: std::array::from_fn(|_| r.next_u64()) },
        };
        let q = covered(p, &t.mask, &noise);
        if slow_path {
            let own = translate(tables, macs, &q, now);
            if own.actions != t.actions {
                return Err(format!(
                    "a slow-path megaflow covers {q:?}, whose own translation is {:?} (mask {:x?})",
                    own.actions, t.mask.w
                ));
            }
            let nd = if is_nd_message(&q) { gen_nd(r, &q) } else { NdFields::default() };
            let s = translate_with_nd(tables, macs, &q, &nd, now);
            let e = reference::evaluate_with_nd(rules, &PORTS, macs, now, &q, &nd);
            let s_rules: Vec<usize> = s.rules.iter().map(|&x| index_of(x)).collect();
            if e.actions != s.actions || e.rules != s_rules || e.learns != s.learns || e.aborted != s.error.is_some() {
                return Err(format!(
                    "{q:?}, covered by a slow-path megaflow, with {nd:?}\nrules: {rules:#?}\nslow path: {:?} rules \
                     {s_rules:?} learn {:?} err {:?}\nreference: {:?} rules {:?} learn {:?} aborted {}",
                    s.actions, s.learns, s.error, e.actions, e.rules, e.learns, e.aborted
                ));
            }
            continue;
        }
        let e = reference::evaluate_full(rules, &PORTS, macs, now, &q);
        if e.actions != t.actions || e.rules != got_rules || e.learns != t.learns || e.aborted != t.error.is_some() {
            return Err(format!(
                "rules: {rules:#?}\np: {p:?}\nq: {q:?}\nmask: {:x?}\ntranslate: {:?} rules {:?} learn {:?} err {:?}\nreference: {:?} rules {:?} learn {:?} aborted {}",
                t.mask.w, t.actions, got_rules, t.learns, t.error, e.actions, e.rules, e.learns, e.aborted
            ));
        }
    }
    Ok(())
}

/// Rules added and deleted in place (`RuleTables::add_in_place`, `delete_in_place`:
/// `add-flows` and `del-flows` of a few rules among many) translate as a version built
/// from the same rules does: a random rule set is built from a prefix of its rules and
/// the rest is added in random batches, with rules of existing identities and other
/// actions among them (which replace those in place), and random rules deleted between.
/// For random packets the decision equals the fresh build's and the linear scan's, and
/// every packet the megaflow covers gets the same decision from the reference evaluator
/// over the version's rules.
fn check_in_place(seed: u64) -> Result<(), String> {
    let mut r = Rng(seed);
    let mut rules = gen_rules(&mut r);
    for _ in 0..r.below(4) {
        let mut x = rules[r.below(rules.len() as u64) as usize].clone();
        x.actions = if r.chance(50) { vec![Action::Output(r.pick(&PORTS))] } else { Vec::new() };
        rules.push(x);
    }
    let k = 1 + r.below(rules.len() as u64) as usize;
    let mut tables = RuleTables::new(rules[..k].to_vec(), PORTS.to_vec()).map_err(|e| e.to_string())?;
    let mut at = k;
    loop {
        // Some rules deleted in place (see `RuleTables::delete_in_place`) now and then.
        if r.chance(40) {
            let gone: Vec<bool> = tables.rules().iter().map(|_| r.chance(15)).collect();
            tables.delete_in_place(&gone);
        }
        if at == rules.len() {
            break;
        }
        let n = 1 + r.below((rules.len() - at) as u64) as usize;
        tables.add_in_place(rules[at..at + n].to_vec()).map_err(|e| e.to_string())?;
        at += n;
    }
    let list = tables.rules().to_vec();
    let fresh = RuleTables::new(list.clone(), PORTS.to_vec()).map_err(|e| e.to_string())?;
    let now = Duration::from_secs(10_000);
    let macs = gen_macs(&mut r, now);
    for _ in 0..48 {
        let p = gen_packet(&mut r);
        let t = translate(&tables, &macs, &p, now);
        let f = translate(&fresh, &macs, &p, now);
        let s = translate_with(&tables, &macs, &p, now, Lookup::LinearScan);
        for (what, o) in [("a fresh build", &f), ("the linear scan", &s)] {
            if (&t.actions, &t.rules, &t.learns, t.error.is_some())
                != (&o.actions, &o.rules, &o.learns, o.error.is_some())
            {
                return Err(format!(
                    "seed {seed} (built from {k}): {p:?}: in place {:?} rules {:?}, {what} {:?} rules {:?}\nrules: {list:#?}",
                    t.actions, t.rules, o.actions, o.rules
                ));
            }
        }
        let got_rules: Vec<usize> = t.rules.iter().map(|x| x.0 as usize).collect();
        covered_agree(&mut r, &tables, &|x| x.0 as usize, &list, &macs, now, &p, &t, &got_rules)
            .map_err(|e| format!("seed {seed} (built from {k}): {e}"))?;
    }
    Ok(())
}

/// Revalidation: megaflows installed from an old rule set and MAC table, revalidated
/// against a new rule set (some rules kept, some dropped, some added) and a changed MAC
/// table, must give every packet they still cover the new rules' decision.
fn check_revalidation(seed: u64) -> Result<(), String> {
    let mut r = Rng(seed);
    let old_rules = gen_rules(&mut r);
    let now = Duration::from_secs(10_000);
    let old_macs = gen_macs(&mut r, now);
    let mut new_rules: Vec<Rule> = old_rules.iter().filter(|_| r.chance(70)).cloned().collect();
    let extra = gen_rules(&mut r);
    new_rules.extend(extra.into_iter().take(r.below(4) as usize).map(|mut x| {
        x.table = x.table.min(old_rules.iter().map(|o| o.table).max().unwrap_or(0));
        x.actions.retain(|a| !matches!(a, Action::GotoTable(t) if *t <= x.table));
        x
    }));
    let later = now + Duration::from_secs(r.pick(&[0, 100, 400]));
    let mut new_macs = old_macs.clone();
    for _ in 0..r.below(3) {
        new_macs.learn(
            &MacLearn { vlan: r.pick(&[0, 10, 20]), mac: r.pick(&MACS[..3]), port: r.pick(&[1, 2, 3, 4]) },
            later,
        );
    }
    let old = RuleTables::new(old_rules, PORTS.to_vec()).map_err(|e| e.to_string())?;
    let new = RuleTables::new(new_rules.clone(), PORTS.to_vec()).map_err(|e| e.to_string())?;
    for _ in 0..24 {
        let p = gen_packet(&mut r);
        let t = translate(&old, &old_macs, &p, now);
        let rv = revalidate(&new, &new_macs, later, &p.masked(&t.mask), &t.mask, &t.actions);
        let actions = match &rv.verdict {
            Verdict::Delete => continue,
            Verdict::Keep => t.actions.clone(),
            Verdict::Replace(a) => a.clone(),
        };
        // The slow path decides those packets one by one (see the module doc).
        if is_slow_path(&actions) {
            continue;
        }
        for _ in 0..4 {
            let noise = gen_packet(&mut r);
            let q = covered(&p, &t.mask, &noise);
            let e = reference::evaluate(&new_rules, &PORTS, &new_macs, later, &q);
            if e != actions {
                return Err(format!("seed {seed}: verdict {:?} but reference gives {e:?} for {q:?}", rv.verdict));
            }
        }
    }
    Ok(())
}

/// Pipelines of ND rules (table 0..2, `icmp6` NS/NA rules, some matching the ND fields,
/// most writing them, moving them into registers or between them, with outputs, goto and
/// resubmit; register matches on the moved values) and ND messages with random ND
/// fields: without the fields every ND message whose path writes or reads one ends in a
/// slow-path megaflow covering only ND messages; with them the translation equals the
/// reference's evaluation, rewrites included.
fn check_nd_pipeline(seed: u64) -> Result<(), String> {
    let mut r = Rng(seed);
    let mut rules = Vec::new();
    for _ in 0..2 + r.below(8) {
        let table = r.below(3) as u8;
        let mut m = Match {
            dl_type: Some(ethertype::IPV6),
            nw_proto: Some(ipproto::ICMPV6),
            tp_src: Some(Masked { value: r.pick(&[135, 136]), mask: 0xffff }),
            ..Match::default()
        };
        match r.below(5) {
            0 => m.nd_target = Some(Masked { value: Ipv6Addr::from(0xfd00u128 << 112 | 1), mask: u128::MAX.into() }),
            1 => m.nd_reserved = Some(r.pick(&ND_RESERVED)),
            2 => m.nd_options_type = Some(r.pick(&[0, 1, 2])),
            3 => m.set_reg(0, Some(Masked { value: r.pick(&[0, 1, 2, 0xff]), mask: 0xff })),
            _ => {}
        }
        let mut actions: Vec<Action> = (0..1 + r.below(4)).map(|_| gen_nd_action(&mut r)).collect();
        for _ in 0..1 + r.below(2) {
            let at = r.below(actions.len() as u64 + 1) as usize;
            actions.insert(at, Action::Output(r.pick(&PORTS)));
        }
        if r.chance(20) {
            actions.push(Action::Resubmit(Resubmit { in_port: None, table: Some(r.below(3) as u8) }));
        } else if table < 2 && r.chance(40) {
            actions.push(Action::GotoTable(table + 1));
        }
        let priority = r.pick(&[1, 10, 100]);
        rules.push(Rule {
            table,
            priority,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            send_flow_rem: false,
            matches: m,
            actions,
        });
    }
    let now = Duration::from_secs(10_000);
    let macs = MacTable::default();
    let tables = RuleTables::new(rules.clone(), PORTS.to_vec()).map_err(|e| e.to_string())?;
    for _ in 0..16 {
        let mut p = FlowKey::ZERO;
        p.set_in_port(r.pick(&[1, 2, 3, 4]));
        p.set_dl_type(ethertype::IPV6);
        p.set_nw_proto(ipproto::ICMPV6);
        p.set_tp_src(r.pick(&[135, 136]));
        p.set_tp_dst(if r.chance(90) { 0 } else { 1 });
        let t = translate(&tables, &macs, &p, now);
        let slow_path = is_slow_path(&t.actions);
        if slow_path && (t.mask.tp_src(), t.mask.tp_dst()) != (0xffff, 0xffff) {
            return Err(format!("seed {seed}: a slow-path megaflow for more than ND messages: {:x?}", t.mask.w));
        }
        for _ in 0..6 {
            let nd = gen_nd(&mut r, &p);
            let s = translate_with_nd(&tables, &macs, &p, &nd, now);
            let e = reference::evaluate_with_nd(&rules, &PORTS, &macs, now, &p, &nd);
            let s_rules: Vec<usize> = s.rules.iter().map(|&x| tables.source_index(x)).collect();
            if e.actions != s.actions || e.rules != s_rules || e.aborted != s.error.is_some() {
                return Err(format!(
                    "seed {seed}: ND message {p:?} with {nd:?}\nrules: {rules:#?}\nslow path: {:?} rules {s_rules:?}\nreference: {:?} rules {:?}",
                    s.actions, e.actions, e.rules
                ));
            }
            let touches_nd = e.actions.iter().any(DpAction::is_nd_edit);
            if touches_nd && !slow_path {
                return Err(format!(
                    "seed {seed}: ND rewrites {:?} from a fast-path megaflow {:?}",
                    e.actions, t.actions
                ));
            }
        }
    }
    Ok(())
}

/// A rule set (seed found by a long run) whose first rule writes the low bits of the
/// ICMPv6 type (`move:...->OXM_OF_SCTP_SRC[0..2]`, in an action set that then resubmits to
/// a table with ND rules): its slow-path megaflow for an NA message covers other ICMPv6
/// types, which the move makes NA messages too. The slow path, given such a packet's
/// frame, decides it as the reference does.
#[test]
fn a_slow_path_megaflow_covers_packets_an_action_makes_nd_messages() {
    check_rule_set(5_849_485_865_069_622_339).unwrap();
}

fn cases() -> u32 {
    std::env::var("FERROVS_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(300)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn megaflow_decision_equals_reference_for_every_covered_packet(seed in any::<u64>()) {
        if let Err(msg) = check_rule_set(seed) {
            prop_assert!(false, "{}", msg);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rules_changed_in_place_translate_as_a_fresh_build(seed in any::<u64>()) {
        if let Err(msg) = check_in_place(seed) {
            prop_assert!(false, "{}", msg);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn nd_writes_and_reads_equal_reference(seed in any::<u64>()) {
        if let Err(msg) = check_nd_pipeline(seed) {
            prop_assert!(false, "{}", msg);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn revalidated_megaflows_give_the_new_decision(seed in any::<u64>()) {
        if let Err(msg) = check_revalidation(seed) {
            prop_assert!(false, "{}", msg);
        }
    }
}

/// The property must be able to fail: an all-wildcard mask (apart from in_port) is
/// wrong for a rule set that distinguishes packets, and the same comparison catches it.
#[test]
fn comparison_catches_a_too_wide_mask() {
    let rules = vec![
        Rule {
            table: 0,
            priority: 10,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            send_flow_rem: false,
            matches: Match { dl_type: Some(ethertype::IPV4), nw_proto: Some(ipproto::TCP), ..Match::default() },
            actions: vec![Action::Output(2)],
        },
        Rule {
            table: 0,
            priority: 0,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            send_flow_rem: false,
            matches: Match::default(),
            actions: vec![Action::Output(3)],
        },
    ];
    let tables = RuleTables::new(rules.clone(), PORTS.to_vec()).unwrap();
    let macs = MacTable::default();
    let mut p = FlowKey::ZERO;
    p.set_in_port(1);
    p.set_dl_type(ethertype::IPV4);
    p.set_nw_proto(ipproto::TCP);
    let t = translate(&tables, &macs, &p, Duration::ZERO);
    let mut q = p;
    q.set_nw_proto(ipproto::UDP);
    // The real mask separates p and q...
    assert!(!p.masked(&t.mask).matches(&t.mask, &q));
    // ...and a mask without nw_proto would have put q in p's megaflow with the wrong answer.
    assert_ne!(reference::evaluate(&rules, &PORTS, &macs, Duration::ZERO, &q), t.actions);
}

#[path = "scale_rules/mod.rs"]
mod scale_rules;

/// Large tables: the classifier against the linear scan (which shares no lookup code
/// with it), on rule sets of 10^3..10^5 rules (exact 5-tuples, masked port ranges,
/// routes, mixed priorities, one or two tables with goto_table/resubmit). Checks: same
/// actions and matched rules; packets inside the megaflow get the scan's decision of
/// the translated packet (mask not too narrow). Also counts how often the classifier's
/// mask has more or fewer bits than the scan's (not asserted: the two choose witnesses
/// differently; see XLATE.md) and prints it.
fn check_large(n: usize, tables_n: u8, mixed: bool, seed: u64, packets: usize) -> (usize, usize, u32) {
    check_large_rules(scale_rules::scale_rules(n, tables_n, mixed, seed), n, seed, packets, scale_rules::scale_packet)
}

/// [`check_large`] of a given rule set (`n` names it in messages) and packets made by
/// `packet` (given the rules). Packets come in on ports 1..=4.
fn check_large_rules(
    rules: Vec<Rule>,
    n: usize,
    seed: u64,
    packets: usize,
    packet: fn(&[Rule], &mut Rng) -> FlowKey,
) -> (usize, usize, u32) {
    check_large_tables(RuleTables::new(rules, PORTS.to_vec()).unwrap(), n, seed, packets, packet)
}

/// [`check_large_rules`] of a built version.
fn check_large_tables(
    tables: RuleTables,
    n: usize,
    seed: u64,
    packets: usize,
    packet: fn(&[Rule], &mut Rng) -> FlowKey,
) -> (usize, usize, u32) {
    let macs = MacTable::default();
    let now = Duration::ZERO;
    let mut r = Rng(seed ^ 0x5eed);
    let rules = tables.rules().to_vec();
    let bits = |m: &ferrovs_flowcache::key::Mask| m.w.iter().map(|w| w.count_ones()).sum::<u32>();
    let (mut wider, mut narrower, mut most) = (0, 0, 0);
    for _ in 0..packets {
        let mut p = packet(&rules, &mut r);
        p.set_in_port(r.pick(&PORTS));
        let t = translate_with(&tables, &macs, &p, now, Lookup::Index);
        let s = translate_with(&tables, &macs, &p, now, Lookup::LinearScan);
        assert_eq!((&t.actions, &t.rules), (&s.actions, &s.rules), "n {n} seed {seed}: decisions differ for {p:?}");
        let (bt, bs) = (bits(&t.mask), bits(&s.mask));
        if bt > bs {
            wider += 1;
            most = most.max(bt - bs);
        } else if bt < bs {
            narrower += 1;
        }
        for v in 0..3 {
            let noise = if v == 0 {
                let mut k = packet(&rules, &mut r);
                k.set_in_port(r.pick(&PORTS));
                k
            } else {
                FlowKey { w: std::array::from_fn(|_| r.next_u64()) }
            };
            let q = covered(&p, &t.mask, &noise);
            let e = translate_with(&tables, &macs, &q, now, Lookup::LinearScan);
            assert_eq!(
                (&e.actions, &e.rules),
                (&t.actions, &t.rules),
                "n {n} seed {seed}: megaflow of {p:?} (mask {:x?}) covers {q:?} with another decision",
                t.mask.w
            );
        }
    }
    (wider, narrower, most)
}

#[test]
fn classifier_equals_linear_scan_on_large_tables() {
    // Default: a few seconds in debug mode; FERROVS_PROPTEST_CASES scales the seeds.
    let rounds = (cases() / 300).max(1) as u64;
    let mut total = (0, 0, 0, 0);
    for round in 0..rounds {
        for (i, &(n, tables_n, mixed, packets)) in [
            (1000, 1, false, 60),
            (1000, 2, true, 60),
            (10_000, 1, true, 30),
            (10_000, 2, false, 20),
            (100_000, 1, true, 4),
        ]
        .iter()
        .enumerate()
        {
            let (w, na, most) = check_large(n, tables_n, mixed, round * 16 + i as u64, packets);
            total = (total.0 + w, total.1 + na, total.2.max(most), total.3 + packets);
        }
    }
    eprintln!(
        "classifier vs scan masks: {} wider (by at most {} bits), {} narrower, of {} packets",
        total.0, total.2, total.1, total.3
    );
}

/// The scale rule sets with a few hundred of their rules added in place, in batches of
/// 1 to 40 (`add-flows` of a few rules into many, see `RuleTables::add_in_place`), some
/// of them again with other actions, and now and then 1 % of the rules deleted in place
/// (`RuleTables::delete_in_place`): classifier against linear scan, as
/// `classifier_equals_linear_scan_on_large_tables`, and the decisions of a fresh build of
/// the same rules. Prints how many megaflow masks have more or fewer bits than the fresh
/// build's: the 1,000-rule one-table set with a quarter of its rules added in place has
/// more for most packets (the slow path adds in place only into 2,048 rules or more, and
/// at most sqrt(n) x 4), the larger sets about none.
#[test]
fn classifier_equals_linear_scan_with_rules_changed_in_place() {
    let rounds = (cases() / 300).max(1) as u64;
    let mut total = (0, 0, 0, 0);
    let mut vs_fresh = (0, 0, 0);
    for round in 0..rounds {
        for (i, &(n, tables_n, mixed, added, packets)) in [
            (1000, 1, false, 250, 60),
            (3000, 2, true, 250, 60),
            (10_000, 1, false, 400, 30),
            (10_000, 2, true, 400, 30),
        ]
        .iter()
        .enumerate()
        {
            let seed = round * 16 + i as u64;
            let rules = scale_rules::scale_rules(n, tables_n, mixed, seed);
            let mut r = Rng(seed ^ 0xadd);
            let mut tables = RuleTables::new(rules[..n - added].to_vec(), PORTS.to_vec()).unwrap();
            let mut at = n - added;
            while at < n {
                let k = (1 + r.below(40) as usize).min(n - at);
                let mut batch = rules[at..at + k].to_vec();
                if r.chance(30) {
                    let mut again = rules[r.below(at as u64) as usize].clone();
                    again.actions = vec![Action::Output(r.pick(&PORTS))];
                    batch.push(again);
                }
                tables.add_in_place(batch).unwrap();
                at += k;
                if r.chance(20) {
                    let gone: Vec<bool> = tables.rules().iter().map(|_| r.chance(1)).collect();
                    tables.delete_in_place(&gone);
                }
            }
            assert!(tables.changed_in_place() >= added / 2, "the rules went in place ({})", tables.changed_in_place());
            let fresh = RuleTables::new(tables.rules().to_vec(), PORTS.to_vec()).unwrap();
            let mut r = Rng(seed ^ 0xf5e);
            let list = tables.rules().to_vec();
            for _ in 0..packets {
                let mut p = scale_rules::scale_packet(&list, &mut r);
                p.set_in_port(r.pick(&PORTS));
                let (a, b) = (
                    translate(&tables, &MacTable::default(), &p, Duration::ZERO),
                    translate(&fresh, &MacTable::default(), &p, Duration::ZERO),
                );
                assert_eq!(
                    (&a.actions, &a.rules),
                    (&b.actions, &b.rules),
                    "n {n} seed {seed}: in place and fresh differ for {p:?}"
                );
                let bits = |m: &ferrovs_flowcache::key::Mask| m.w.iter().map(|w| w.count_ones()).sum::<u32>();
                let (ba, bb) = (bits(&a.mask), bits(&b.mask));
                if ba > bb {
                    vs_fresh.0 += 1;
                    vs_fresh.2 = vs_fresh.2.max(ba - bb);
                } else if ba < bb {
                    vs_fresh.1 += 1;
                }
            }
            let (w, na, most) = check_large_tables(tables, n, seed, packets, scale_rules::scale_packet);
            total = (total.0 + w, total.1 + na, total.2.max(most), total.3 + packets);
        }
    }
    eprintln!(
        "in place, classifier vs scan masks: {} wider (by at most {} bits), {} narrower, of {} packets; \
         vs a fresh build: {} wider (by at most {} bits), {} narrower",
        total.0, total.2, total.1, total.3, vs_fresh.0, vs_fresh.2, vs_fresh.1
    );
}

/// The scale rule sets behind a register dispatch, as OVN-style pipelines are built:
/// table 0 loads the input port into reg0 and the IP protocol into reg1 and resubmits
/// to table 1, whose rules (the scale shapes) mostly match reg0 (and some reg1) besides
/// their packet fields, with a few writing the metadata and going on to table 2, which
/// matches it. Classifier against linear scan, as `classifier_equals_linear_scan_on_large_tables`.
#[test]
fn classifier_equals_linear_scan_with_register_pipelines() {
    use SubfieldField::{Metadata, Packet, Reg};
    let rounds = (cases() / 300).max(1) as u64;
    for round in 0..rounds {
        for (i, &(n, packets)) in [(1000usize, 80usize), (10_000, 30)].iter().enumerate() {
            let seed = round * 16 + i as u64;
            let mut r = Rng(seed ^ 0x4e67);
            let mut rules = scale_rules::scale_rules(n, 1, true, seed);
            for rule in &mut rules {
                rule.table = 1;
                if r.chance(75) {
                    rule.matches.set_reg(0, Some(Masked { value: r.pick(&PORTS), mask: u32::MAX }));
                }
                if r.chance(20) {
                    let proto = rule.matches.nw_proto.map_or(6, u32::from);
                    rule.matches.set_reg(1, Some(Masked { value: proto, mask: 0xff }));
                }
                if r.chance(10) {
                    rule.actions = vec![Action::WriteMetadata { value: r.below(3), mask: 0xff }, Action::GotoTable(2)];
                }
            }
            for port in PORTS {
                let m = Match { in_port: Some(port), ..Match::default() };
                let actions = vec![
                    Action::Load { dst: sub(Reg(0), 0, 32), value: port.into(), set_field: false },
                    Action::Move { src: sub(Packet(PacketField::IpProto), 0, 8), dst: sub(Reg(1), 0, 8) },
                    Action::Resubmit(Resubmit { in_port: None, table: Some(1) }),
                ];
                rules.push(Rule { matches: m, ..Rule::new(Match::default(), actions) });
            }
            for v in 0..3u64 {
                let m = Match { metadata: Some(Masked { value: v, mask: 0xff }), ..Match::default() };
                let actions = vec![Action::Output(1 + v as u32)];
                rules.push(Rule { table: 2, ..Rule::new(m, actions) });
            }
            let md = Match { metadata: Some(Masked { value: 1, mask: 1 }), ..Match::default() };
            let load = Action::Load { dst: sub(Metadata, 8, 8), value: 7, set_field: false };
            rules.push(Rule { table: 2, priority: 40000, ..Rule::new(md, vec![load, Action::Output(4)]) });
            check_large_rules(rules, n, seed, packets, scale_rules::scale_packet);
        }
    }
}

/// IPv6 prefixes and priorities interleaved across masks: the classifier's trees test an
/// IPv6 address as two 64-bit stages (upper half, lower half), and a group holds the
/// rules of one mask at every priority, each value of a node with the first rule below
/// it. Rules: `ipv6_dst` prefixes of lengths 0..=128 around the two halves' border (and
/// /0, /128), some with an `ipv6_src` prefix or a `tp_dst` as well, all near a few
/// bases so that prefixes overlap; priorities from a small set shared by every shape,
/// so that groups of one mask hold rules above and below other groups' rules.
/// Packets: a rule's address with random low bits, often with one bit flipped in either
/// half. Classifier against linear scan, as `classifier_equals_linear_scan_on_large_tables`.
#[test]
fn classifier_equals_linear_scan_on_ipv6_prefixes_with_interleaved_priorities() {
    let rounds = (cases() / 300).max(1) as u64;
    let mut total = (0, 0, 0, 0);
    for round in 0..rounds {
        for (i, &(n, packets)) in [(300usize, 150usize), (3000, 60)].iter().enumerate() {
            let seed = round * 16 + i as u64;
            let (w, na, most) = check_large_rules(ipv6_rules(n, seed), n, seed, packets, ipv6_packet);
            total = (total.0 + w, total.1 + na, total.2.max(most), total.3 + packets);
        }
    }
    eprintln!(
        "IPv6 classifier vs scan masks: {} wider (by at most {} bits), {} narrower, of {} packets",
        total.0, total.2, total.1, total.3
    );
    // Each address stage gives the scan's prefix witness; only groups of two or more
    // address/port fields may choose another one.
    assert!(total.0 * 4 <= total.3, "masks wider than the scan's for more than 25 % of the packets");
}

const V6_BASES: [u128; 3] = [
    0x2001_0db8_0000_0000_0000_0000_0000_0000,
    0x2001_0db8_0000_0001_8000_0000_0000_0000,
    0xfd00_0000_0000_0000_ffff_0000_0000_0000,
];

fn v6_prefix(len: u32) -> u128 {
    if len == 0 { 0 } else { u128::MAX << (128 - len) }
}

fn ipv6_rules(n: usize, seed: u64) -> Vec<Rule> {
    let mut r = Rng(seed ^ 0x6666);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.pick(&[0u32, 16, 48, 63, 64, 65, 72, 96, 127, 128]);
        let noise = u128::from(r.next_u64()) << 64 | u128::from(r.next_u64());
        // Near a base: random bits only in a few places, so that prefixes overlap.
        let near = r.pick(&V6_BASES) ^ (noise & 0x0000_0000_0000_00ff_0000_0000_0000_00ff);
        let mut m = Match { dl_type: Some(ethertype::IPV6), ..Match::default() };
        m.ipv6_dst =
            Some(Masked { value: Ipv6Addr::from(near & v6_prefix(len)), mask: Ipv6Addr::from(v6_prefix(len)) });
        if r.chance(25) {
            let slen = r.pick(&[8u32, 64, 96, 128]);
            let src = r.pick(&V6_BASES) ^ (noise.rotate_left(7) & 0xff);
            m.ipv6_src =
                Some(Masked { value: Ipv6Addr::from(src & v6_prefix(slen)), mask: Ipv6Addr::from(v6_prefix(slen)) });
        }
        if r.chance(25) {
            m.nw_proto = Some(ipproto::UDP);
            m.tp_dst = Some(Masked { value: r.pick(&TP_PORTS) & 0xff00, mask: 0xff00 });
        }
        let priority = r.pick(&[10u16, 20, 30, 40, 50]);
        out.push(Rule { priority, ..Rule::new(m, vec![Action::Output(1 + r.below(4) as u32)]) });
    }
    out
}

fn ipv6_packet(rules: &[Rule], r: &mut Rng) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_dl_type(ethertype::IPV6);
    k.set_nw_proto(if r.chance(50) { ipproto::UDP } else { ipproto::TCP });
    k.set_tp_dst(r.pick(&TP_PORTS));
    let noise = |r: &mut Rng| u128::from(r.next_u64()) << 64 | u128::from(r.next_u64());
    let m = &rules[r.index(rules.len())].matches;
    for (field, addr) in [(m.ipv6_dst, 0), (m.ipv6_src, 1)] {
        let base = field.map_or(r.pick(&V6_BASES), |f| u128::from(f.value));
        let mask = field.map_or(0, |f| u128::from(f.mask));
        let mut a = base | (noise(r) & !mask & 0x0000_0000_0000_0fff_0000_0000_0000_0fff);
        if r.chance(40) {
            a ^= 1 << r.below(128);
        }
        if addr == 0 { k.set_ipv6_dst_u128(a) } else { k.set_ipv6_src_u128(a) }
    }
    k
}

/// A table where no rule matches still needs a witness for every rule: here two rules
/// of one mask with two address fields (a group small enough to be disproved rule by
/// rule), a packet failing each in nw_dst alone. The megaflow must not cover the
/// packet with the first rule's nw_dst, which that rule matches (a lookup once skipped
/// such groups' witnesses when nothing won).
#[test]
fn a_table_without_a_winner_disproves_every_rule() {
    let m = |src: u32, dst: u32| Match {
        dl_type: Some(ethertype::IPV4),
        nw_src: Some(Masked { value: Ipv4Addr::from(src), mask: Ipv4Addr::from(0xff00_0000) }),
        nw_dst: Some(Masked { value: Ipv4Addr::from(dst), mask: Ipv4Addr::from(0xffff_ff00) }),
        ..Match::default()
    };
    let rules = vec![
        Rule { priority: 10, ..Rule::new(m(0x0a00_0000, 0x0a01_0200), vec![Action::Output(2)]) },
        Rule { priority: 10, ..Rule::new(m(0x0a00_0000, 0x0a01_0300), vec![Action::Output(3)]) },
    ];
    let tables = RuleTables::new(rules.clone(), PORTS.to_vec()).unwrap();
    let macs = MacTable::default();
    let mut p = FlowKey::ZERO;
    p.set_in_port(1);
    p.set_dl_type(ethertype::IPV4);
    p.set_nw_src_u32(0x0a00_0001);
    p.set_nw_dst_u32(0x0b01_0201);
    let t = translate(&tables, &macs, &p, Duration::ZERO);
    assert!(t.rules.is_empty());
    let mut q = p;
    q.set_nw_dst_u32(0x0a01_0201);
    assert_eq!(reference::evaluate(&rules, &PORTS, &macs, Duration::ZERO, &q), vec![DpAction::Output(2)]);
    assert!(!p.masked(&t.mask).matches(&t.mask, &q), "the megaflow covers {q:?}: mask {:x?}", t.mask.w);
}

/// Long runs of values whose rules come after the winner: one mask (an exact nw_dst) at
/// two priorities, the lower one on most values, under a rule of another mask whose
/// priority lies between them and that many packets match. The lookup first proves the
/// nw_dst group for every rule, then finds the better match and proves it again for
/// the rules above the winner only: the closest such value is often more than the
/// skip limit away, and the value there must stand in for it. Classifier against
/// linear scan, as `classifier_equals_linear_scan_on_large_tables`.
#[test]
fn classifier_equals_linear_scan_when_values_after_the_winner_are_skipped() {
    let rounds = (cases() / 300).max(1) as u64;
    for round in 0..rounds {
        check_large_rules(skip_rules(round), 2000, round, 300, skip_packet);
    }
}

fn skip_rules(seed: u64) -> Vec<Rule> {
    let mut r = Rng(seed ^ 0x5c1b);
    let mut rules = Vec::new();
    for _ in 0..2000 {
        let dst = 0x0a00_0000 | (r.below(1 << 14) as u32) << 2;
        let m = Match {
            dl_type: Some(ethertype::IPV4),
            nw_dst: Some(Masked { value: Ipv4Addr::from(dst), mask: Ipv4Addr::from(u32::MAX) }),
            ..Match::default()
        };
        let priority = if r.chance(5) { 30 } else { 10 };
        rules.push(Rule { priority, ..Rule::new(m, vec![Action::Output(1 + r.below(2) as u32)]) });
    }
    let mid = Match { dl_type: Some(ethertype::IPV4), nw_proto: Some(ipproto::UDP), ..Match::default() };
    rules.push(Rule { priority: 20, ..Rule::new(mid, vec![Action::Output(3)]) });
    rules.push(Rule { priority: 0, ..Rule::new(Match::default(), vec![Action::Output(4)]) });
    rules
}

fn skip_packet(rules: &[Rule], r: &mut Rng) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_dl_type(ethertype::IPV4);
    k.set_nw_proto(if r.chance(70) { ipproto::UDP } else { ipproto::TCP });
    let near = rules[r.index(rules.len() - 2)].matches.nw_dst.map_or(0, |a| u32::from(a.value));
    k.set_nw_dst_u32(near ^ (r.below(8) as u32) << r.below(20));
    k
}
