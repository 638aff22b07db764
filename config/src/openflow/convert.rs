//! Conversion between the OpenFlow wire model ([`Match`](super::Match) field lists,
//! [`Instruction`]s) and ferrovs's rule model ([`Rule`], [`rules::Match`], [`Action`]).
//!
//! # Direction wire -> rule (flow-mods)
//!
//! Every wire field lands in the rule model's slot that holds it (see
//! [`MatchSlot`]): `ip_src` and `arp_spa` both in `nw_src`, `tcp_src`/`udp_src`/
//! `icmp_type` in `tp_src`, `nw_tos`/`ip_dscp`/`ip_ecn` merged into the `nw_tos` byte under
//! a mask, OXM `vlan_vid`/`vlan_pcp` folded into one masked `vlan_tci` as `ovs-ofctl`
//! does. Fields the model lacks (registers, metadata, IPv6 labels, ND, MPLS, tunnels...)
//! are refused with `OFPBMC_BAD_FIELD`; actions it lacks with `OFPBAC_BAD_TYPE` (or
//! `OFPBAC_BAD_OUT_PORT` for the controller and other reserved ports, `OFPBAC_BAD_SET_TYPE`
//! for set-field of such a field); instructions other than apply-actions and goto-table
//! with `OFPBIC_UNSUP_INST`.
//!
//! OpenFlow 1.3 has no "modify VLAN, pushing a tag if needed": `ovs-ofctl` writes
//! `mod_vlan_vid:V` as `push_vlan:0x8100,set_field:V->vlan_vid` when the match does not
//! require a tag. Those are decoded as what they say, [`Action::PushVlan`] and a VLAN
//! [`SetField`]: a frame that already has a tag gets a second one, as in OVS.
//!
//! # Rules in `ovs-ofctl` syntax under a protocol version
//!
//! [`as_loaded`] is what `ovs-ofctl -O <version> add-flow` makes of a parsed rule: the rule
//! is encoded for the version ([`actions_to_wire`]) and decoded back, so the rule ferrovs
//! loads (and `dump-flows` prints) is the one OVS would hold, and the encoding rules live
//! only here.
//!
//! The converted rule is then checked by the rule model's own parser: it is printed and
//! parsed back ([`rule_from_wire`]), so prerequisites (`tcp_dst` needs `tcp`), action
//! consistency (`set_field` of a VLAN field needs a tag) and `goto_table` order are
//! checked in one place, with `OFPBMC_BAD_PREREQ` for the match and
//! `OFPBAC_BAD_ARGUMENT` for the actions.
//!
//! # Direction rule -> wire (flow statistics)
//!
//! [`match_to_wire`] and [`actions_to_wire`] encode a rule so that `ovs-ofctl dump-flows`
//! prints what `ovs-ofctl` would print for the same rule loaded into Open vSwitch:
//! `ovs-ofctl` prints from the decoded flow, not from the wire form, so any encoding of
//! the same match prints the same; actions are written the way OVS writes them for the
//! version (1.0 `mod_*` actions, 1.3 set-field, `push_vlan` before a VLAN set-field when
//! the match does not require a tag). What a form cannot express is an `Err` naming it;
//! the caller leaves that rule out of the reply and logs it.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::action::FieldSlice;
use super::{
    Action as WireAction, Field, Instruction, Match as WireMatch, MatchField, OFPP_CONTROLLER, OFPP_IN_PORT, OfpError,
    Version, port_from_of10, port_to_of10,
};
use crate::field::MatchSlot;
use crate::rules::{self, Action, Masked, PacketField, Resubmit, Rule, SetField, Subfield, SubfieldField, VlanTags};

/// `OFPP_NORMAL`.
pub const OFPP_NORMAL: u32 = 0xffff_fffa;
/// `OFPP_FLOOD`.
pub const OFPP_FLOOD: u32 = 0xffff_fffb;
/// `OFPP_ALL`.
pub const OFPP_ALL: u32 = 0xffff_fffc;
/// `OFPP_TABLE`: in a packet-out, "through the flow tables" (from table 0).
pub const OFPP_TABLE: u32 = 0xffff_fff9;
/// `OFPP_MAX`: the first reserved port number.
pub const OFPP_MAX: u32 = 0xffff_ff00;
/// `OFPTT_ALL`: every table (delete, modify, statistics).
pub const OFPTT_ALL: u8 = 0xff;

const VLAN_CFI: u16 = 0x1000;
const ETH_ARP: u16 = 0x0806;
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;

/// The wire form a match is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchForm {
    /// OpenFlow 1.0's fixed `ofp_match` (standard `OFPST_FLOW` replies in 1.0).
    Of10,
    /// Nicira NXM (`NXST_FLOW`) or OpenFlow 1.3 OXM: TLVs, any field.
    Tlv,
}

fn set(m: &mut rules::Match, slot: MatchSlot, value: u128, mask: u128) -> Result<(), OfpError> {
    if mask == 0 {
        return Ok(());
    }
    if m.slot(slot).is_some() {
        return Err(OfpError::DupField);
    }
    m.set_slot(slot, Some(Masked { value: value & mask, mask }));
    Ok(())
}

/// A wire match as the rule model's match. Prerequisites are not checked here (see
/// [`rule_from_wire`]).
pub fn match_from_wire(wire: &WireMatch) -> Result<rules::Match, OfpError> {
    use Field::*;
    let mut m = rules::Match::default();
    let (mut vid, mut pcp, mut tos) = (None, None, Masked { value: 0u8, mask: 0u8 });
    // The parts of the first MPLS label stack entry, gathered.
    let mut lse = Masked { value: 0u32, mask: 0u32 };
    for f in &wire.fields {
        let mask = |slot: MatchSlot| f.mask.unwrap_or(slot.all_ones());
        let put = |m: &mut rules::Match, slot: MatchSlot| set(m, slot, f.value, mask(slot));
        match f.field {
            // As OVS's 16-bit `ofp_port_t`: numbers below 0xff00, or a reserved port
            // (0xffffff00 and up, kept as its 16-bit form); the rest is no port.
            // OpenFlow 1.0's LOCAL (0xfffe) is the one 16-bit reserved number a bridge port has.
            InPort if f.value != 0xfffe && (0xff00..u128::from(OFPP_MAX)).contains(&f.value) => {
                return Err(OfpError::BadValue);
            }
            InPort => put(&mut m, MatchSlot::InPort)?,
            EthSrc => put(&mut m, MatchSlot::DlSrc)?,
            EthDst => put(&mut m, MatchSlot::DlDst)?,
            EthType => put(&mut m, MatchSlot::DlType)?,
            VlanTci => put(&mut m, MatchSlot::VlanTci)?,
            VlanVid => vid = Some((f.value as u16, f.mask.map_or(0x1fff, |x| x as u16))),
            VlanPcp => pcp = Some(f.value as u16),
            IpProto => put(&mut m, MatchSlot::NwProto)?,
            ArpOp if f.value > 255 => return Err(OfpError::BadValue),
            ArpOp => put(&mut m, MatchSlot::NwProto)?,
            Ipv4Src | ArpSpa => put(&mut m, MatchSlot::NwSrc)?,
            Ipv4Dst | ArpTpa => put(&mut m, MatchSlot::NwDst)?,
            Ipv6Src => put(&mut m, MatchSlot::Ipv6Src)?,
            Ipv6Dst => put(&mut m, MatchSlot::Ipv6Dst)?,
            Ipv6Label => put(&mut m, MatchSlot::Ipv6Label)?,
            NwTos | IpDscp | IpEcn => {
                let (value, bits) = match f.field {
                    NwTos => (f.value as u8 & 0xfc, 0xfc),
                    IpDscp => ((f.value as u8) << 2, 0xfc),
                    _ => (f.value as u8 & 3, 3),
                };
                if tos.mask & bits != 0 {
                    return Err(OfpError::DupField);
                }
                tos = Masked { value: tos.value | value, mask: tos.mask | bits };
            }
            NwTtl => put(&mut m, MatchSlot::NwTtl)?,
            MplsLabel | MplsTc | MplsBos | MplsTtl => {
                // Where each part sits in the entry: its `load`/`move` field's bits.
                let Some(SubfieldField::Packet(p)) = subfield_field(f.field) else { unreachable!("an MPLS field") };
                let d = p.def();
                let bits = d.bits as u32;
                if lse.mask & bits != 0 {
                    return Err(OfpError::DupField);
                }
                lse = Masked { value: lse.value | d.slot_bits(f.value) as u32, mask: lse.mask | bits };
            }
            IpFrag => put(&mut m, MatchSlot::NwFrag)?,
            TcpSrc | UdpSrc | SctpSrc | Icmpv4Type | Icmpv6Type => put(&mut m, MatchSlot::TpSrc)?,
            TcpDst | UdpDst | SctpDst | Icmpv4Code | Icmpv6Code => put(&mut m, MatchSlot::TpDst)?,
            TcpFlags => put(&mut m, MatchSlot::TcpFlags)?,
            ArpSha => put(&mut m, MatchSlot::ArpSha)?,
            ArpTha => put(&mut m, MatchSlot::ArpTha)?,
            NdTarget => put(&mut m, MatchSlot::NdTarget)?,
            NdSll => put(&mut m, MatchSlot::NdSll)?,
            NdTll => put(&mut m, MatchSlot::NdTll)?,
            NdReserved => put(&mut m, MatchSlot::NdReserved)?,
            NdOptionsType => put(&mut m, MatchSlot::NdOptionsType)?,
            Reg(n) => {
                if m.reg(n).is_some() {
                    return Err(OfpError::DupField);
                }
                let mask = f.mask.unwrap_or(0xffff_ffff) as u32;
                m.set_reg(n, Some(Masked { value: f.value as u32 & mask, mask }));
            }
            Xreg(_) | Xxreg(_) => {
                let pf = match f.field {
                    Xreg(n) => crate::field::PipelineField::Xreg(n),
                    Xxreg(n) => crate::field::PipelineField::Xxreg(n),
                    _ => unreachable!(),
                };
                let mask = f.mask.unwrap_or(f.field.value_bits());
                let last = pf.regs().end - 1;
                for r in pf.regs() {
                    let part = |x: u128| (x >> (32 * u32::from(last - r))) as u32;
                    if part(mask) != 0 && m.reg(r).is_some() {
                        return Err(OfpError::DupField);
                    }
                    if part(mask) != 0 {
                        m.set_reg(r, Some(Masked { value: part(f.value & mask), mask: part(mask) }));
                    }
                }
            }
            Metadata => {
                if m.metadata.is_some() {
                    return Err(OfpError::DupField);
                }
                let mask = f.mask.unwrap_or(u128::from(u64::MAX)) as u64;
                m.metadata = Some(Masked { value: f.value as u64 & mask, mask }).filter(|md| md.mask != 0);
            }
            _ => return Err(OfpError::BadField),
        }
    }
    if tos.mask != 0 {
        m.nw_tos = Some(tos);
    }
    if lse.mask != 0 {
        m.mpls_lse = Some(lse);
    }
    if vid.is_some() || pcp.is_some() {
        if m.vlan_tci.is_some() {
            return Err(OfpError::DupField);
        }
        let mut tci = Masked { value: 0u16, mask: 0u16 };
        match vid {
            // OFPVID_NONE: no tag at all.
            Some((0, 0x1fff)) => tci = Masked { value: 0, mask: 0xffff },
            Some((v, mask)) => tci = Masked { value: v & mask, mask },
            None => {}
        }
        if let Some(p) = pcp {
            if tci.mask == 0xffff && tci.value == 0 {
                return Err(OfpError::BadPrereq);
            }
            tci.value |= (p << 13) | VLAN_CFI;
            tci.mask |= 0xe000 | VLAN_CFI;
        }
        if tci.mask != 0 {
            m.vlan_tci = Some(tci);
        }
    }
    Ok(m)
}

fn mac_bits(a: [u8; 6]) -> u128 {
    a.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
}

fn bits_mac(v: u128) -> [u8; 6] {
    let b = v.to_be_bytes();
    [b[10], b[11], b[12], b[13], b[14], b[15]]
}

/// The rule model's match as wire fields in `form`, ordered so that every field comes
/// after its prerequisites (OVS checks them field by field while decoding).
pub fn match_to_wire(m: &rules::Match, form: MatchForm) -> Result<WireMatch, &'static str> {
    let mut fields = Vec::new();
    fn push(fields: &mut Vec<MatchField>, field: Field, slot: MatchSlot, v: Masked<u128>) {
        let mask = (v.mask != slot.all_ones()).then_some(v.mask);
        fields.push(MatchField { field, value: v.value, mask });
    }
    let arp = m.dl_type == Some(ETH_ARP);
    let get = |slot| m.slot(slot);
    if let Some(p) = m.in_port {
        // The port number itself, not the slot's 16 bits: OpenFlow 1.3 carries LOCAL as
        // 0xfffffffe (1.0's encoder keeps the low 16 bits, 0xfffe).
        fields.push(MatchField { field: Field::InPort, value: u128::from(p), mask: None });
    }
    if let Some(v) = get(MatchSlot::DlSrc) {
        push(&mut fields, Field::EthSrc, MatchSlot::DlSrc, v);
    }
    if let Some(v) = get(MatchSlot::DlDst) {
        push(&mut fields, Field::EthDst, MatchSlot::DlDst, v);
    }
    if let Some(v) = get(MatchSlot::DlType) {
        push(&mut fields, Field::EthType, MatchSlot::DlType, v);
    }
    if let Some(t) = m.vlan_tci {
        match form {
            MatchForm::Tlv => {
                push(&mut fields, Field::VlanTci, MatchSlot::VlanTci, get(MatchSlot::VlanTci).expect("set"))
            }
            MatchForm::Of10 => {
                let present = t.value & VLAN_CFI != 0;
                let vid = |f: &mut Vec<MatchField>| {
                    f.push(MatchField::exact(Field::VlanVid, u128::from(VLAN_CFI | (t.value & 0xfff))))
                };
                let pcp =
                    |f: &mut Vec<MatchField>| f.push(MatchField::exact(Field::VlanPcp, u128::from(t.value >> 13)));
                match t.mask {
                    0xffff if !present && t.value == 0 => fields.push(MatchField::exact(Field::VlanVid, 0)),
                    0x1fff if present => vid(&mut fields),
                    0xf000 if present => pcp(&mut fields),
                    0xffff if present => {
                        vid(&mut fields);
                        pcp(&mut fields);
                    }
                    _ => return Err("a vlan_tci mask OpenFlow 1.0 cannot express"),
                }
            }
        }
    }
    if let Some(lse) = m.mpls_lse {
        if form == MatchForm::Of10 {
            return Err("MPLS fields (OpenFlow 1.0's match has none)");
        }
        // In `ovs-ofctl`'s order: label, tc, ttl, bos.
        for p in [PacketField::MplsLabel, PacketField::MplsTc, PacketField::MplsTtl, PacketField::MplsBos] {
            let d = p.def();
            if u128::from(lse.mask) & d.bits != 0 {
                fields.push(MatchField::exact(wire_field(SubfieldField::Packet(p)), d.get(lse.value.into())));
            }
        }
    }
    if let Some(v) = get(MatchSlot::NwProto) {
        push(&mut fields, if arp { Field::ArpOp } else { Field::IpProto }, MatchSlot::NwProto, v);
    }
    if let Some(v) = get(MatchSlot::NwSrc) {
        push(&mut fields, if arp { Field::ArpSpa } else { Field::Ipv4Src }, MatchSlot::NwSrc, v);
    }
    if let Some(v) = get(MatchSlot::NwDst) {
        push(&mut fields, if arp { Field::ArpTpa } else { Field::Ipv4Dst }, MatchSlot::NwDst, v);
    }
    if let Some(v) = get(MatchSlot::Ipv6Src) {
        push(&mut fields, Field::Ipv6Src, MatchSlot::Ipv6Src, v);
    }
    if let Some(v) = get(MatchSlot::Ipv6Dst) {
        push(&mut fields, Field::Ipv6Dst, MatchSlot::Ipv6Dst, v);
    }
    if let Some(v) = get(MatchSlot::Ipv6Label) {
        push(&mut fields, Field::Ipv6Label, MatchSlot::Ipv6Label, v);
    }
    if let Some(t) = m.nw_tos {
        match t.mask & 0xfc {
            0 => {}
            0xfc => fields.push(MatchField::exact(Field::NwTos, u128::from(t.value & 0xfc))),
            _ => return Err("a partial DSCP mask"),
        }
        match t.mask & 3 {
            0 => {}
            3 if form == MatchForm::Tlv => fields.push(MatchField::exact(Field::IpEcn, u128::from(t.value & 3))),
            _ => return Err("this ECN match"),
        }
    }
    if let Some(v) = get(MatchSlot::NwTtl) {
        push(&mut fields, Field::NwTtl, MatchSlot::NwTtl, v);
    }
    if let Some(v) = get(MatchSlot::NwFrag) {
        push(&mut fields, Field::IpFrag, MatchSlot::NwFrag, v);
    }
    let ports = match (m.dl_type, m.nw_proto) {
        (Some(ETH_IPV4 | ETH_IPV6), Some(6)) => Some((Field::TcpSrc, Field::TcpDst, false)),
        (Some(ETH_IPV4 | ETH_IPV6), Some(17)) => Some((Field::UdpSrc, Field::UdpDst, false)),
        (Some(ETH_IPV4 | ETH_IPV6), Some(132)) => Some((Field::SctpSrc, Field::SctpDst, false)),
        (Some(ETH_IPV4), Some(1)) => Some((Field::Icmpv4Type, Field::Icmpv4Code, true)),
        (Some(ETH_IPV6), Some(58)) => Some((Field::Icmpv6Type, Field::Icmpv6Code, true)),
        _ => None,
    };
    if let Some((src, dst, icmp)) = ports {
        for (slot, field) in [(MatchSlot::TpSrc, src), (MatchSlot::TpDst, dst)] {
            if let Some(v) = get(slot) {
                if icmp {
                    fields.push(MatchField::exact(field, v.value & 0xff));
                } else {
                    push(&mut fields, field, slot, v);
                }
            }
        }
    }
    for (slot, field) in [
        (MatchSlot::NdTarget, Field::NdTarget),
        (MatchSlot::NdSll, Field::NdSll),
        (MatchSlot::NdTll, Field::NdTll),
        (MatchSlot::NdReserved, Field::NdReserved),
        (MatchSlot::NdOptionsType, Field::NdOptionsType),
    ] {
        if let Some(v) = get(slot) {
            push(&mut fields, field, slot, v);
        }
    }
    if let Some(v) = get(MatchSlot::TcpFlags) {
        push(&mut fields, Field::TcpFlags, MatchSlot::TcpFlags, v);
    }
    if let Some(v) = get(MatchSlot::ArpSha) {
        push(&mut fields, Field::ArpSha, MatchSlot::ArpSha, v);
    }
    if let Some(v) = get(MatchSlot::ArpTha) {
        push(&mut fields, Field::ArpTha, MatchSlot::ArpTha, v);
    }
    if m.matches_pipeline() && form == MatchForm::Of10 {
        return Err("registers or metadata (OpenFlow 1.0's match has neither)");
    }
    for &(n, r) in &m.regs {
        let mask = (r.mask != u32::MAX).then_some(u128::from(r.mask));
        fields.push(MatchField { field: Field::Reg(n), value: r.value.into(), mask });
    }
    if let Some(md) = m.metadata {
        let mask = (md.mask != u64::MAX).then_some(u128::from(md.mask));
        fields.push(MatchField { field: Field::Metadata, value: md.value.into(), mask });
    }
    Ok(WireMatch { fields })
}

fn output(port: u32, max_len: u16, packet_out: bool) -> Result<Action, OfpError> {
    Ok(match port {
        OFPP_IN_PORT => Action::InPort,
        OFPP_CONTROLLER => Action::Controller { max_len },
        // `resubmit(,0)` with the packet-out's in_port is exactly "through the tables".
        OFPP_TABLE if packet_out => Action::Resubmit(Resubmit { in_port: None, table: Some(0) }),
        OFPP_FLOOD => Action::Flood,
        OFPP_ALL => Action::All,
        OFPP_NORMAL => Action::Normal,
        crate::ports::LOCAL_PORT => Action::Output(crate::ports::LOCAL_PORT),
        p if p >= OFPP_MAX || p == 0 => return Err(OfpError::BadActionOutPort),
        p => Action::Output(p),
    })
}

/// `output(port=P,max_len=N)` as `ovs-ofctl` writes it: a port number, `LOCAL` or
/// `IN_PORT`, at least an Ethernet header's 14 bytes.
fn output_trunc(port: u32, max_len: u32) -> Result<Action, OfpError> {
    if max_len < rules::OUTPUT_TRUNC_MIN_LEN {
        return Err(OfpError::BadActionArgument);
    }
    match port {
        crate::ports::LOCAL_PORT | rules::OUTPUT_TRUNC_IN_PORT => {}
        p if p >= OFPP_MAX || p == 0 => return Err(OfpError::BadActionOutPort),
        _ => {}
    }
    Ok(Action::OutputTrunc { port, max_len })
}

/// A set-field (1.3 `set_field`, Nicira `load` of a whole field) in the rule model.
fn set_field(field: Field, value: u128) -> Result<Action, OfpError> {
    use Field::*;
    let s = match field {
        EthSrc => SetField::DlSrc(bits_mac(value)),
        EthDst => SetField::DlDst(bits_mac(value)),
        VlanVid => SetField::VlanVid(value as u16 & 0xfff),
        VlanPcp => SetField::VlanPcp(value as u8),
        Ipv4Src => SetField::NwSrc(Ipv4Addr::from(value as u32)),
        Ipv4Dst => SetField::NwDst(Ipv4Addr::from(value as u32)),
        Ipv6Src => SetField::Ipv6Src(Ipv6Addr::from(value)),
        Ipv6Dst => SetField::Ipv6Dst(Ipv6Addr::from(value)),
        Ipv6Label => SetField::Ipv6Label(value as u32),
        IpDscp => SetField::IpDscp(value as u8),
        NwTos => SetField::IpDscp(value as u8 >> 2),
        IpEcn => SetField::NwEcn(value as u8),
        NwTtl => SetField::NwTtl(value as u8),
        TcpSrc | UdpSrc | SctpSrc => SetField::TpSrc(value as u16),
        TcpDst | UdpDst | SctpDst => SetField::TpDst(value as u16),
        _ => return Err(OfpError::BadSetType),
    };
    Ok(Action::Set(s))
}

/// A set-field of a packet field that no [`SetField`] writes (`icmp_type`, `in_port`):
/// the model's whole-field load printed as a set-field (an OXM in_port's 32-bit number
/// as `in_port`'s 16 bits; one that has no such form is OFPP_NONE, as OVS reads it).
fn packet_set_field(field: Field, value: u128) -> Option<Action> {
    let dst = whole_subfield(field)?;
    let value = match field {
        Field::InPort => u128::from(port_to_of10(value as u32).unwrap_or(0xffff)),
        _ => value,
    };
    matches!(dst.field, SubfieldField::Packet(_)).then_some(Action::Load { dst, value, set_field: true })
}

/// One wire action list in the rule model.
fn actions_from_wire(list: &[WireAction], out: &mut Vec<Action>, packet_out: bool) -> Result<(), OfpError> {
    for a in list {
        let action = match *a {
            WireAction::Output { port, max_len } => output(port, max_len, packet_out)?,
            WireAction::SetVlanVid(v) => Action::ModVlanVid(v),
            WireAction::SetVlanPcp(p) => Action::ModVlanPcp(p),
            WireAction::PopVlan => Action::StripVlan,
            WireAction::SetDlSrc(mac) => Action::Set(SetField::DlSrc(mac)),
            WireAction::SetDlDst(mac) => Action::Set(SetField::DlDst(mac)),
            WireAction::SetNwSrc(ip) => Action::Set(SetField::NwSrc(Ipv4Addr::from(ip))),
            WireAction::SetNwDst(ip) => Action::Set(SetField::NwDst(Ipv4Addr::from(ip))),
            WireAction::SetNwTos(tos) => Action::Set(SetField::IpDscp(tos >> 2)),
            WireAction::SetTpSrc(p) => Action::Set(SetField::TpSrc(p)),
            WireAction::SetTpDst(p) => Action::Set(SetField::TpDst(p)),
            WireAction::PushVlan(tpid) => Action::PushVlan(tpid),
            WireAction::SetNwTtl(t) => Action::Set(SetField::NwTtl(t)),
            WireAction::DecNwTtl | WireAction::NxDecTtl => Action::DecTtl,
            WireAction::SetField {
                field: field @ (Field::Reg(_) | Field::Xreg(_) | Field::Xxreg(_) | Field::Metadata),
                value,
            }
            | WireAction::RegLoad2(MatchField {
                field: field @ (Field::Reg(_) | Field::Xreg(_) | Field::Xxreg(_) | Field::Metadata),
                value,
                mask: None,
            }) => {
                let dst = whole_subfield(field).ok_or(OfpError::BadSetType)?;
                Action::Load { dst, value, set_field: true }
            }
            WireAction::SetField { field, value } | WireAction::RegLoad2(MatchField { field, value, mask: None }) => {
                set_field(field, value).or_else(|e| packet_set_field(field, value).ok_or(e))?
            }
            WireAction::RegLoad { dst, value } if subfield(dst).is_some() => {
                Action::Load { dst: subfield(dst).expect("checked"), value: value.into(), set_field: false }
            }
            // A load of the whole field (all of its value bits: `NXM_NX_IPV6_LABEL[]` is 20).
            WireAction::RegLoad { dst, value }
                if dst.ofs == 0 && u32::from(dst.n_bits) == dst.field.value_bits().count_ones() =>
            {
                set_field(dst.field, u128::from(value))?
            }
            WireAction::OutputTrunc { port, max_len } => output_trunc(port, max_len)?,
            WireAction::OutputReg { src, max_len: u16::MAX } => {
                Action::OutputReg(subfield(src).ok_or(OfpError::BadSetType)?)
            }
            WireAction::RegMove { src, dst } => match (subfield(src), subfield(dst)) {
                (Some(src), Some(dst)) => Action::Move { src, dst },
                _ => return Err(OfpError::BadSetType),
            },
            WireAction::Group(g) => Action::Group(g),
            WireAction::Resubmit { in_port, table } => {
                let in_port = (in_port != OFPP_IN_PORT).then_some(in_port);
                let table = table.filter(|&t| t != OFPTT_ALL);
                if in_port.is_none() && table.is_none() {
                    return Err(OfpError::BadActionArgument);
                }
                Action::Resubmit(Resubmit { in_port, table })
            }
            WireAction::Note(ref bytes) => Action::Note(bytes.clone()),
            WireAction::NxWriteMetadata { metadata, mask } => Action::WriteMetadata { value: metadata & mask, mask },
            WireAction::Clone(ref list) => {
                let mut inner = Vec::new();
                actions_from_wire(list, &mut inner, packet_out)?;
                Action::Clone(inner)
            }
            WireAction::Enqueue { .. }
            | WireAction::CopyTtlOut
            | WireAction::CopyTtlIn
            | WireAction::SetQueue(_)
            | WireAction::PopQueue
            | WireAction::RegLoad { .. }
            | WireAction::RegLoad2(_)
            | WireAction::OutputReg { .. } => return Err(OfpError::BadActionType),
        };
        out.push(action);
    }
    Ok(())
}

/// Instructions (1.3) or a 1.0 action list (one apply-actions) as the model's actions.
pub fn instructions_from_wire(list: &[Instruction]) -> Result<Vec<Action>, OfpError> {
    let mut out = Vec::new();
    let mut goto = None;
    let mut write_metadata = None;
    let mut clear = None;
    let mut write = None;
    for i in list {
        match i {
            Instruction::ApplyActions(a) => actions_from_wire(a, &mut out, false)?,
            Instruction::GotoTable(t) => goto = Some(*t),
            Instruction::WriteMetadata { metadata, mask } => {
                write_metadata = Some(Action::WriteMetadata { value: *metadata & *mask, mask: *mask })
            }
            Instruction::ClearActions => clear = Some(Action::ClearActions),
            Instruction::WriteActions(a) => {
                let mut set = Vec::new();
                actions_from_wire(a, &mut set, false)?;
                // As OVS's decoder: actions the action set cannot hold.
                if set.iter().any(|a| matches!(a, Action::Note(_) | Action::Clone(_))) {
                    return Err(OfpError::BadActionType);
                }
                write = (!set.is_empty()).then_some(Action::WriteActions(set));
            }
            Instruction::Meter(_) => return Err(OfpError::UnsupportedInstruction),
        }
    }
    // The instruction order: apply-actions, clear-actions, write-actions, write-metadata,
    // goto-table.
    out.extend(clear);
    out.extend(write);
    out.extend(write_metadata);
    out.extend(goto.map(Action::GotoTable));
    Ok(out)
}

/// The rule model's name for a wire field of `load`/`move`, if it has one.
fn subfield_field(f: Field) -> Option<SubfieldField> {
    use crate::rules::PacketField as P;
    Some(match f {
        Field::Reg(n) => SubfieldField::Reg(n),
        Field::Xreg(n) => SubfieldField::Xreg(n),
        Field::Xxreg(n) => SubfieldField::Xxreg(n),
        Field::Metadata => SubfieldField::Metadata,
        Field::InPort => SubfieldField::Packet(P::InPort),
        Field::InPortOxm => SubfieldField::Packet(P::InPortOxm),
        Field::MplsLabel => SubfieldField::Packet(P::MplsLabel),
        Field::MplsTc => SubfieldField::Packet(P::MplsTc),
        Field::MplsBos => SubfieldField::Packet(P::MplsBos),
        Field::MplsTtl => SubfieldField::Packet(P::MplsTtl),
        Field::EthSrc => SubfieldField::Packet(P::EthSrc),
        Field::EthDst => SubfieldField::Packet(P::EthDst),
        Field::EthType => SubfieldField::Packet(P::EthType),
        Field::VlanTci => SubfieldField::Packet(P::VlanTci),
        Field::IpProto => SubfieldField::Packet(P::IpProto),
        Field::Ipv4Src => SubfieldField::Packet(P::IpSrc),
        Field::Ipv4Dst => SubfieldField::Packet(P::IpDst),
        Field::NwTtl => SubfieldField::Packet(P::IpTtl),
        Field::TcpSrc => SubfieldField::Packet(P::TcpSrc),
        Field::TcpDst => SubfieldField::Packet(P::TcpDst),
        Field::UdpSrc => SubfieldField::Packet(P::UdpSrc),
        Field::UdpDst => SubfieldField::Packet(P::UdpDst),
        Field::Ipv6Src => SubfieldField::Packet(P::Ipv6Src),
        Field::Ipv6Dst => SubfieldField::Packet(P::Ipv6Dst),
        Field::VlanVid => SubfieldField::Packet(P::VlanVid),
        Field::VlanPcp => SubfieldField::Packet(P::VlanPcp),
        Field::NwTos => SubfieldField::Packet(P::IpTos),
        Field::IpDscp => SubfieldField::Packet(P::IpDscp),
        Field::IpEcn => SubfieldField::Packet(P::IpEcn),
        Field::IpFrag => SubfieldField::Packet(P::IpFrag),
        Field::SctpSrc => SubfieldField::Packet(P::SctpSrc),
        Field::SctpDst => SubfieldField::Packet(P::SctpDst),
        Field::TcpFlags => SubfieldField::Packet(P::TcpFlags),
        Field::Icmpv4Type => SubfieldField::Packet(P::IcmpType),
        Field::Icmpv4Code => SubfieldField::Packet(P::IcmpCode),
        Field::Icmpv6Type => SubfieldField::Packet(P::Icmpv6Type),
        Field::Icmpv6Code => SubfieldField::Packet(P::Icmpv6Code),
        Field::ArpOp => SubfieldField::Packet(P::ArpOp),
        Field::ArpSpa => SubfieldField::Packet(P::ArpSpa),
        Field::ArpTpa => SubfieldField::Packet(P::ArpTpa),
        Field::ArpSha => SubfieldField::Packet(P::ArpSha),
        Field::ArpTha => SubfieldField::Packet(P::ArpTha),
        Field::Ipv6Label => SubfieldField::Packet(P::Ipv6Label),
        Field::NdTarget => SubfieldField::Packet(P::NdTarget),
        Field::NdSll => SubfieldField::Packet(P::NdSll),
        Field::NdTll => SubfieldField::Packet(P::NdTll),
        Field::NdReserved => SubfieldField::Packet(P::NdReserved),
        Field::NdOptionsType => SubfieldField::Packet(P::NdOptionsType),
        _ => return None,
    })
}

/// The wire field of a rule-model `load`/`move` field.
fn wire_field(f: SubfieldField) -> Field {
    use crate::rules::PacketField as P;
    match f {
        SubfieldField::Reg(n) => Field::Reg(n),
        SubfieldField::Xreg(n) => Field::Xreg(n),
        SubfieldField::Xxreg(n) => Field::Xxreg(n),
        SubfieldField::Metadata => Field::Metadata,
        SubfieldField::Packet(p) => match p {
            P::InPort => Field::InPort,
            P::InPortOxm => Field::InPortOxm,
            P::MplsLabel => Field::MplsLabel,
            P::MplsTc => Field::MplsTc,
            P::MplsBos => Field::MplsBos,
            P::MplsTtl => Field::MplsTtl,
            P::EthSrc => Field::EthSrc,
            P::EthDst => Field::EthDst,
            P::EthType => Field::EthType,
            P::VlanTci => Field::VlanTci,
            P::IpProto => Field::IpProto,
            P::IpSrc => Field::Ipv4Src,
            P::IpDst => Field::Ipv4Dst,
            P::IpTtl => Field::NwTtl,
            P::TcpSrc => Field::TcpSrc,
            P::TcpDst => Field::TcpDst,
            P::UdpSrc => Field::UdpSrc,
            P::UdpDst => Field::UdpDst,
            P::Ipv6Src => Field::Ipv6Src,
            P::Ipv6Dst => Field::Ipv6Dst,
            P::VlanVid => Field::VlanVid,
            P::VlanPcp => Field::VlanPcp,
            P::IpTos => Field::NwTos,
            P::IpDscp => Field::IpDscp,
            P::IpEcn => Field::IpEcn,
            P::IpFrag => Field::IpFrag,
            P::SctpSrc => Field::SctpSrc,
            P::SctpDst => Field::SctpDst,
            P::TcpFlags => Field::TcpFlags,
            P::IcmpType => Field::Icmpv4Type,
            P::IcmpCode => Field::Icmpv4Code,
            P::Icmpv6Type => Field::Icmpv6Type,
            P::Icmpv6Code => Field::Icmpv6Code,
            P::ArpOp => Field::ArpOp,
            P::ArpSpa => Field::ArpSpa,
            P::ArpTpa => Field::ArpTpa,
            P::ArpSha => Field::ArpSha,
            P::ArpTha => Field::ArpTha,
            P::Ipv6Label => Field::Ipv6Label,
            P::NdTarget => Field::NdTarget,
            P::NdSll => Field::NdSll,
            P::NdTll => Field::NdTll,
            P::NdReserved => Field::NdReserved,
            P::NdOptionsType => Field::NdOptionsType,
        },
    }
}

/// A wire slice as a rule-model subfield (within the model's width of the field).
fn subfield(s: FieldSlice) -> Option<Subfield> {
    let field = subfield_field(s.field)?;
    (u32::from(s.ofs) + u32::from(s.n_bits) <= u32::from(field.width()) && s.n_bits > 0).then_some(Subfield {
        field,
        ofs: s.ofs,
        n_bits: s.n_bits,
    })
}

fn whole_subfield(f: Field) -> Option<Subfield> {
    let field = subfield_field(f)?;
    Some(Subfield { field, ofs: 0, n_bits: field.width() })
}

fn slice(s: Subfield) -> FieldSlice {
    FieldSlice { field: wire_field(s.field), ofs: s.ofs, n_bits: s.n_bits }
}

impl<'a> WireRule<'a> {
    /// What the flow-mod `fm` says, as received (its own table id).
    pub fn of(fm: &'a super::FlowMod) -> WireRule<'a> {
        WireRule {
            table: fm.table_id,
            priority: fm.priority,
            cookie: fm.cookie,
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            flags: fm.flags,
            matches: &fm.matches,
            instructions: &fm.instructions,
        }
    }
}

/// A packet-out's action list in the rule model: as a rule's, plus `output:TABLE`
/// (as `resubmit(,0)`, run with the packet-out's in_port).
pub fn packet_out_actions_from_wire(list: &[WireAction]) -> Result<Vec<Action>, OfpError> {
    let mut out = Vec::new();
    actions_from_wire(list, &mut out, true)?;
    Ok(out)
}

/// What a flow-mod says about one rule, before the rule model's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRule<'a> {
    pub table: u8,
    pub priority: u16,
    pub cookie: u64,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    /// `OFPFF_*` flags (only `OFPFF_SEND_FLOW_REM` reaches the rule model).
    pub flags: u16,
    pub matches: &'a WireMatch,
    pub instructions: &'a [Instruction],
}

/// A flow-mod's rule in the rule model, checked by the model's parser (see the module
/// doc): the error is the `OFPT_ERROR` to answer with.
pub fn rule_from_wire(w: &WireRule) -> Result<Rule, OfpError> {
    let rule = Rule {
        table: w.table,
        priority: w.priority,
        cookie: w.cookie,
        idle_timeout: w.idle_timeout,
        hard_timeout: w.hard_timeout,
        send_flow_rem: w.flags & super::OFPFF_SEND_FLOW_REM != 0,
        matches: match_from_wire(w.matches)?,
        actions: instructions_from_wire(w.instructions)?,
    };
    check(&rule)
}

/// What `ovs-ofctl -O v` loads for `rule` (parsed in `ovs-ofctl` syntax): see the module
/// doc. Refused, with the reason, where `ovs-ofctl` refuses the rule for that version.
pub fn as_loaded(mut rule: Rule, v: Version) -> Result<Rule, String> {
    load_in_place(&mut rule, v)?;
    Ok(rule)
}

/// [`as_loaded`] of `rule`, written over it: a rule is a few hundred bytes, and a
/// million-line add-flows would move each of them twice more through a by-value call.
/// `rule` is unchanged when refused.
pub fn load_in_place(rule: &mut Rule, v: Version) -> Result<(), String> {
    let refuse = |why: &str| Err(format!("{why} under {}", v.ofctl_name()));
    if let Err(why) = check_vlan_actions(&rule.actions, VlanTags::of_match(&rule.matches), v) {
        return refuse(why);
    }
    if v == Version::Of10 {
        if rule.actions.iter().any(|a| matches!(a, Action::WriteMetadata { .. }))
            && rule.actions.iter().any(|a| matches!(a, Action::GotoTable(_)))
        {
            // `ovs-ofctl` encodes the two as Nicira actions that its own decoder then
            // refuses (OFPBAC_UNSUPPORTED_ORDER).
            return refuse("write_metadata with goto_table needs OpenFlow 1.1 or later (-O OpenFlow13)");
        }
        rule.actions = of10_actions(std::mem::take(&mut rule.actions));
        return Ok(());
    }
    let instructions = actions_to_wire(rule, v).map_err(|e| format!("{e} under {}", v.ofctl_name()))?;
    let actions = instructions_from_wire(&instructions).map_err(|e| format!("{e:?} under {}", v.ofctl_name()))?;
    // The converted list is checked in the rule's place, and the given one put back
    // whatever the answer: a refused rule is left as it came.
    let given = std::mem::replace(&mut rule.actions, actions);
    let loaded = check(rule);
    rule.actions = given;
    *rule = loaded.map_err(|e| format!("{e:?} under {}", v.ofctl_name()))?;
    Ok(())
}

/// What `ovs-ofctl` refuses in VLAN actions for `v`: `push_vlan` under OpenFlow 1.0, a
/// `strip_vlan` without a tag under 1.1+ (`clone`s included; `tagged`: at the list's start).
fn check_vlan_actions(actions: &[Action], mut tagged: VlanTags, v: Version) -> Result<(), &'static str> {
    for a in actions {
        match a {
            Action::PushVlan(_) if v == Version::Of10 => {
                return Err("push_vlan needs OpenFlow 1.1 or later (-O OpenFlow13)");
            }
            Action::StripVlan if v != Version::Of10 && !tagged.tagged() => {
                return Err("strip_vlan/pop_vlan needs a VLAN tag in the match (or pushed before it)");
            }
            Action::Clone(inner) => check_vlan_actions(inner, tagged, v)?,
            // `ovs-ofctl` finds no protocol for a 1.1+ action in it under 1.0 (where it
            // drops the instruction otherwise); 1.1+ does not check the action set's tags.
            Action::WriteActions(inner) if v == Version::Of10 => check_vlan_actions(inner, tagged, v)?,
            _ => tagged.apply(a)?,
        }
    }
    Ok(())
}

/// OpenFlow 1.0 has no set-field: `ovs-ofctl` sends a VLAN one (valid only with a tag,
/// checked before) as the 1.0 action, which on a tagged frame is the same, and a
/// register's as a Nicira `load` (`clone`s included). Nor has it instructions: `ovs-ofctl`
/// drops `clear_actions` and `write_actions(...)` without a word.
///
/// A list with nothing to rewrite (most rules) is returned as it is: `add-flows` of a
/// million rules goes through here, and rebuilding every list cost an allocation or two
/// per rule.
fn of10_actions(actions: Vec<Action>) -> Vec<Action> {
    if !actions.iter().any(of10_rewrites) {
        return actions;
    }
    of10_rebuild(actions)
}

/// [`of10_actions`]' rewrite, action by action.
fn of10_rebuild(actions: Vec<Action>) -> Vec<Action> {
    let mut out = Vec::with_capacity(actions.len());
    for a in actions {
        match a {
            Action::ClearActions | Action::WriteActions(_) => {}
            Action::Set(SetField::VlanVid(x)) => out.push(Action::ModVlanVid(x)),
            Action::Set(SetField::VlanPcp(x)) => out.push(Action::ModVlanPcp(x)),
            Action::Clone(inner) => out.push(Action::Clone(of10_actions(inner))),
            // A `load` carries 64 bits: a wider set-field is loads of 64, low bits first.
            Action::Load { dst, value, set_field: true } => out.extend((0..dst.n_bits).step_by(64).map(|done| {
                let n_bits = (dst.n_bits - done).min(64);
                let part = Subfield { field: dst.field, ofs: dst.ofs + done, n_bits };
                Action::Load { dst: part, value: (value >> done) & (u128::MAX >> (128 - n_bits)), set_field: false }
            })),
            a => out.push(a),
        }
    }
    out
}

/// Whether [`of10_rebuild`] changes `a` (a `clone` may hold an action it changes): a
/// twin of its match, held to it by `of10_rewrites_names_exactly_the_actions_the_rebuild_changes`.
fn of10_rewrites(a: &Action) -> bool {
    match a {
        Action::ClearActions
        | Action::WriteActions(_)
        | Action::Set(SetField::VlanVid(_) | SetField::VlanPcp(_))
        | Action::Load { set_field: true, .. } => true,
        Action::Clone(inner) => inner.iter().any(of10_rewrites),
        _ => false,
    }
}

/// A rule, as the rule model prints it, as `ovs-ofctl -O v dump-flows` prints it from a
/// switch that holds it: encoded for `v` and decoded back ([`as_loaded`]), e.g. a
/// register's `set_field` is a `load` under OpenFlow 1.0, OpenFlow 1.0's `mod_vlan_vid`
/// that pushes a tag only if needed is `push_vlan` + `set_field` under 1.3. A rule `v`
/// cannot express (`push_vlan` under 1.0) is printed as it is.
pub fn printed_in(text: &str, v: Version) -> String {
    match crate::parse_flow(text).map(|r| as_loaded(r, v)) {
        Ok(Ok(rule)) => rule.to_string(),
        _ => text.to_string(),
    }
}

/// Whether `rule` may read differently by version: the one home of which actions do.
/// VLAN actions (`mod_vlan_*`, `strip_vlan`, `push_vlan`, a VLAN `set_field`), a
/// `set_field` with no OpenFlow 1.0 `mod_*` form (a register's is a `load` under 1.0),
/// `write_metadata` (with `goto_table` only under OpenFlow 1.3) and the action set's
/// instructions (dropped under 1.0), inside a `clone` or `write_actions` too. Every
/// other action, and every match, reads the same under both versions.
pub fn depends_on_version(rule: &Rule) -> bool {
    rule.actions.iter().any(action_depends_on_version)
}

fn action_depends_on_version(a: &Action) -> bool {
    match a {
        Action::ModVlanVid(_)
        | Action::ModVlanPcp(_)
        | Action::StripVlan
        | Action::PushVlan(_)
        | Action::Load { set_field: true, .. }
        | Action::WriteMetadata { .. }
        | Action::ClearActions
        | Action::WriteActions(_) => true,
        Action::Set(f) => matches!(
            f,
            SetField::VlanVid(_)
                | SetField::VlanPcp(_)
                | SetField::Ipv6Src(_)
                | SetField::Ipv6Dst(_)
                | SetField::Ipv6Label(_)
        ),
        Action::Clone(inner) => inner.iter().any(action_depends_on_version),
        _ => false,
    }
}

/// Words found in the printed form (as the rule model prints it) of every rule
/// [`depends_on_version`] holds for (a test holds the two to that): lines without any
/// are not parsed by [`version_reading_back`]. Each has, or is printed only inside
/// actions that have, an underscore (`mod_vlan_vid`, `set_field:...->vlan_vid`), which
/// is looked for first.
const PRINTED_VERSION_WORDS: [&str; 4] = ["vlan", "set_field", "write_metadata", "_actions"];

/// Whether a rule printed as `text` may be one [`depends_on_version`] holds for (false:
/// surely not). Only actions depend on the version, so only the action list (from the
/// first `actions=`: a match has no such word) is searched for the words: every rule of
/// a bridge goes through here when its rules are written back, and four searches of
/// whole lines cost a tenth of a second at a million rules. The rule model prints no
/// space inside an action list, so the list is most often what follows the last space,
/// found without setting up a substring search for every rule (that was as much again).
pub(crate) fn may_depend_on_version(text: &str) -> bool {
    let actions = match text.rfind(' ') {
        Some(at) if text[at + 1..].starts_with("actions=") => &text[at + 1..],
        _ => text.find("actions=").map_or(text, |at| &text[at..]),
    };
    actions.contains('_') && PRINTED_VERSION_WORDS.iter().any(|w| actions.contains(w))
}

/// The version in which the rules in `texts` (in `ovs-ofctl` syntax, as the rule model
/// prints them) read back as themselves, preferring `preferred`: what a bridge's
/// `protocols` must say when its running rules are written back to the config, and
/// whether a rule set can be held at all. `Err` as [`version_reading_back_rules`].
pub fn version_reading_back(texts: &[String], preferred: Version) -> Result<Version, String> {
    version_reading_back_rules(&version_dependent_rules(texts)?, preferred)
}

/// The rules among `texts` (as the rule model prints them) that [`depends_on_version`],
/// in order. Only lines with a word of `PRINTED_VERSION_WORDS` are parsed.
pub fn version_dependent_rules(texts: &[String]) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    for text in texts.iter().filter(|t| may_depend_on_version(t)) {
        let rule = crate::parse_flow(text).map_err(|e| format!("{text}: {e}"))?;
        if depends_on_version(&rule) {
            rules.push(rule);
        }
    }
    Ok(rules)
}

/// The version in which `rules` read back as themselves, preferring `preferred` (see
/// [`version_reading_back`]); only those that [`depends_on_version`] are looked at.
/// `Err` when no one version reads them all back (OpenFlow 1.0's `mod_vlan_vid` pushing
/// only if needed next to a `push_vlan`), naming one rule of each kind.
pub fn version_reading_back_rules<'a>(
    rules: impl IntoIterator<Item = &'a Rule>,
    preferred: Version,
) -> Result<Version, String> {
    let other = if preferred == Version::Of10 { Version::Of13 } else { Version::Of10 };
    let mut refused_by: [Option<&Rule>; 2] = [None, None];
    for rule in rules.into_iter().filter(|r| depends_on_version(r)) {
        for (i, v) in [preferred, other].into_iter().enumerate() {
            if refused_by[i].is_none() && as_loaded(rule.clone(), v).as_ref() != Ok(rule) {
                refused_by[i] = Some(rule);
            }
        }
        if refused_by.iter().all(Option::is_some) {
            break;
        }
    }
    match refused_by {
        [None, _] => Ok(preferred),
        [_, None] => Ok(other),
        [Some(a), Some(b)] => Err(format!(
            "no one OpenFlow version reads back both `{b}` (only {}) and `{a}` (only {})",
            preferred.ofctl_name(),
            other.ofctl_name()
        )),
    }
}

/// `rule` as the rule model's parser accepts it, or the error for the part it refuses.
fn check(rule: &Rule) -> Result<Rule, OfpError> {
    let text = rule.to_string();
    match crate::parse_flow(&text) {
        Ok(parsed) => Ok(parsed),
        Err(e) => {
            let actions_at = text.find("actions=").map_or(usize::MAX, |i| text[..i].chars().count() + 1);
            if (e.position.column as usize) < actions_at {
                Err(OfpError::BadPrereq)
            } else {
                Err(OfpError::BadActionArgument)
            }
        }
    }
}

/// A match as the rule model sees it, for the selection of delete/modify and
/// statistics requests; checked like a rule's (prerequisites included).
pub fn selection_from_wire(m: &WireMatch) -> Result<rules::Match, OfpError> {
    let matches = match_from_wire(m)?;
    let rule = Rule::new(matches, Vec::new());
    check(&rule).map(|r| r.matches)
}

fn set_field_to_wire(s: SetField, m: &rules::Match, v: Version) -> Result<WireAction, &'static str> {
    use SetField::*;
    let tp = |src: bool| match m.nw_proto {
        Some(6) => Ok(if src { Field::TcpSrc } else { Field::TcpDst }),
        Some(17) => Ok(if src { Field::UdpSrc } else { Field::UdpDst }),
        Some(132) => Ok(if src { Field::SctpSrc } else { Field::SctpDst }),
        _ => Err("a transport port rewrite without a transport protocol"),
    };
    let field = |field: Field, value: u128| match v {
        Version::Of13 => WireAction::SetField { field, value },
        Version::Of10 => WireAction::RegLoad2(MatchField::exact(field, value)),
    };
    Ok(match (s, v) {
        (DlSrc(a), Version::Of10) => WireAction::SetDlSrc(a),
        (DlDst(a), Version::Of10) => WireAction::SetDlDst(a),
        (NwSrc(a), Version::Of10) => WireAction::SetNwSrc(u32::from(a)),
        (NwDst(a), Version::Of10) => WireAction::SetNwDst(u32::from(a)),
        (IpDscp(d), Version::Of10) => WireAction::SetNwTos(d << 2),
        (TpSrc(p), Version::Of10) => WireAction::SetTpSrc(p),
        (TpDst(p), Version::Of10) => WireAction::SetTpDst(p),
        (DlSrc(a), _) => field(Field::EthSrc, mac_bits(a)),
        (DlDst(a), _) => field(Field::EthDst, mac_bits(a)),
        (NwSrc(a), _) => field(Field::Ipv4Src, u128::from(u32::from(a))),
        (NwDst(a), _) => field(Field::Ipv4Dst, u128::from(u32::from(a))),
        (IpDscp(d), _) => field(Field::IpDscp, u128::from(d)),
        (TpSrc(p), _) => field(tp(true)?, u128::from(p)),
        (TpDst(p), _) => field(tp(false)?, u128::from(p)),
        (VlanVid(x), _) => field(Field::VlanVid, u128::from(VLAN_CFI | x)),
        (VlanPcp(x), _) => field(Field::VlanPcp, u128::from(x)),
        (Ipv6Src(a), _) => field(Field::Ipv6Src, u128::from(a)),
        (Ipv6Dst(a), _) => field(Field::Ipv6Dst, u128::from(a)),
        (Ipv6Label(l), _) => field(Field::Ipv6Label, u128::from(l)),
        (NwEcn(e), _) => field(Field::IpEcn, u128::from(e)),
        (NwTtl(t), Version::Of13) => WireAction::SetNwTtl(t),
        (NwTtl(t), Version::Of10) => field(Field::NwTtl, u128::from(t)),
    })
}

/// A rule's actions as `v`'s instructions (1.0: at most one apply-actions).
pub fn actions_to_wire(rule: &Rule, v: Version) -> Result<Vec<Instruction>, &'static str> {
    let mut after = After::default();
    // Whether the packet surely has a tag at this point (for 1.3's push-before-set).
    let mut tagged = VlanTags::of_match(&rule.matches);
    let list = list_to_wire(&rule.actions, &rule.matches, v, &mut tagged, &mut after)?;
    let mut out = Vec::new();
    if !list.is_empty() {
        out.push(Instruction::ApplyActions(list));
    }
    out.extend(after.clear.then_some(Instruction::ClearActions));
    out.extend(after.write.map(Instruction::WriteActions));
    out.extend(after.write_metadata);
    out.extend(after.goto.map(Instruction::GotoTable));
    Ok(out)
}

/// The instructions that follow the apply-actions list.
#[derive(Default)]
struct After {
    clear: bool,
    write: Option<Vec<WireAction>>,
    write_metadata: Option<Instruction>,
    goto: Option<u8>,
}

/// One action list (a rule's, or a `clone`'s) as wire actions; `tagged` as in
/// [`actions_to_wire`], updated to the list's end.
fn list_to_wire(
    actions: &[Action],
    m: &rules::Match,
    v: Version,
    tagged: &mut VlanTags,
    after: &mut After,
) -> Result<Vec<WireAction>, &'static str> {
    let mut list = Vec::new();
    let out = |port: u32| WireAction::Output { port, max_len: 0 };
    for a in actions {
        if matches!(a, Action::Load { .. } | Action::Move { .. }) {
            tagged.apply(a)?;
        }
        match *a {
            Action::Output(p) => list.push(out(p)),
            Action::InPort => list.push(out(OFPP_IN_PORT)),
            Action::Flood => list.push(out(OFPP_FLOOD)),
            Action::All => list.push(out(OFPP_ALL)),
            Action::Normal => list.push(out(OFPP_NORMAL)),
            Action::Controller { max_len } => list.push(WireAction::Output { port: OFPP_CONTROLLER, max_len }),
            Action::OutputTrunc { port, max_len } => list.push(WireAction::OutputTrunc { port, max_len }),
            Action::ModVlanVid(x) => match v {
                Version::Of10 => list.push(WireAction::SetVlanVid(x)),
                Version::Of13 => {
                    if !tagged.tagged() {
                        list.push(WireAction::PushVlan(0x8100));
                    }
                    tagged.apply(a)?;
                    list.push(WireAction::SetField { field: Field::VlanVid, value: u128::from(VLAN_CFI | x) });
                }
            },
            Action::ModVlanPcp(x) => match v {
                Version::Of10 => list.push(WireAction::SetVlanPcp(x)),
                Version::Of13 => {
                    if !tagged.tagged() {
                        list.push(WireAction::PushVlan(0x8100));
                    }
                    tagged.apply(a)?;
                    list.push(WireAction::SetField { field: Field::VlanPcp, value: u128::from(x) });
                }
            },
            Action::StripVlan => {
                tagged.apply(a)?;
                list.push(WireAction::PopVlan);
            }
            Action::PushVlan(tpid) => {
                if v == Version::Of10 {
                    return Err("push_vlan in OpenFlow 1.0");
                }
                tagged.apply(a)?;
                list.push(WireAction::PushVlan(tpid));
            }
            Action::Set(s) => list.push(set_field_to_wire(s, m, v)?),
            Action::DecTtl => list.push(if v == Version::Of10 { WireAction::NxDecTtl } else { WireAction::DecNwTtl }),
            Action::Resubmit(Resubmit { in_port, table }) => list.push(WireAction::Resubmit {
                in_port: in_port.unwrap_or(OFPP_IN_PORT),
                table: if in_port.is_some() && table.is_none() { None } else { Some(table.unwrap_or(OFPTT_ALL)) },
            }),
            Action::GotoTable(t) => {
                if v == Version::Of10 {
                    return Err("goto_table in OpenFlow 1.0");
                }
                after.goto = Some(t);
            }
            Action::Group(g) => {
                if v == Version::Of10 {
                    return Err("group in OpenFlow 1.0");
                }
                list.push(WireAction::Group(g));
            }
            Action::Load {
                dst: Subfield { field: SubfieldField::Packet(PacketField::InPortOxm), .. },
                set_field: true,
                ..
            } if v == Version::Of13 => {
                // OVS 3.1 cannot decode its own 1.3 set-field of `in_port_oxm`
                // (OFPBAC_BAD_SET_ARGUMENT), so the rule never loads there.
                return Err("set_field of in_port_oxm in OpenFlow 1.3");
            }
            // OXM's in_port is OpenFlow 1.1's 32-bit number; the load holds 1.0's.
            Action::Load { dst, value, set_field: true } if v == Version::Of13 => {
                let value = match dst.field {
                    SubfieldField::Packet(PacketField::InPort) => u128::from(port_from_of10(value as u16)),
                    _ => value,
                };
                list.push(WireAction::SetField { field: wire_field(dst.field), value })
            }
            Action::Load { dst, value, .. } if dst.n_bits <= 64 => {
                list.push(WireAction::RegLoad { dst: slice(dst), value: value as u64 })
            }
            Action::Load { dst, value, .. } => {
                let whole = dst.ofs == 0 && dst.n_bits == dst.field.width();
                let mask = (!whole).then_some(dst.bits());
                list.push(WireAction::RegLoad2(MatchField {
                    field: wire_field(dst.field),
                    value: value << dst.ofs,
                    mask,
                }))
            }
            Action::Move { src, dst } => list.push(WireAction::RegMove { src: slice(src), dst: slice(dst) }),
            Action::OutputReg(src) => list.push(WireAction::OutputReg { src: slice(src), max_len: u16::MAX }),
            // OpenFlow 1.0: Nicira's action, last in the list as `ovs-ofctl` writes it.
            Action::WriteMetadata { value, mask } if v == Version::Of10 => {
                list.push(WireAction::NxWriteMetadata { metadata: value, mask })
            }
            Action::WriteMetadata { value, mask } => {
                after.write_metadata = Some(Instruction::WriteMetadata { metadata: value, mask });
            }
            Action::Note(ref bytes) => list.push(WireAction::Note(bytes.clone())),
            Action::Clone(ref inner) => {
                // A clone's tag changes are undone after it.
                let inner = list_to_wire(inner, m, v, &mut tagged.to_owned(), &mut After::default())?;
                list.push(WireAction::Clone(inner));
            }
            // OpenFlow 1.0 has no instructions: `ovs-ofctl` leaves them out.
            Action::ClearActions | Action::WriteActions(_) if v == Version::Of10 => {}
            Action::ClearActions => after.clear = true,
            Action::WriteActions(ref inner) => {
                // Encoded as OVS encodes it: with the tag state the rule's actions leave
                // (its own changes do not carry on).
                after.write = Some(list_to_wire(inner, m, v, &mut tagged.to_owned(), &mut After::default())?);
            }
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests;
