//! OpenFlow 1.0's fixed 40-byte `ofp_match`, read into and written from the same
//! field list as OXM (see `field`). Decoding follows OVS: network fields count only
//! under `dl_type` IPv4 or ARP (for ARP they are `arp_op`, `arp_spa`, `arp_tpa`),
//! transport ports only under TCP, UDP, SCTP or ICMP (`icmp_type`/`icmp_code`);
//! `dl_vlan` becomes `vlan_vid` with `OFPVID_PRESENT`, 0xffff ("no tag") `vlan_vid=0`;
//! `nw_tos` stays `nw_tos` (the ToS byte). Fields come back in that canonical order.
//! Encoding refuses a field list that would not decode back to itself (masks other
//! than CIDR prefixes on `nw_src`/`nw_dst`, fields without their prerequisites,
//! fields OpenFlow 1.0 cannot express).

use super::Version;
use super::error::{EncodeError, OfpError};
use super::field::{Field, Match, MatchField};
use super::port::{port_from_of10, port_to_of10};
use super::wire::{Reader, Writer};

const FW_IN_PORT: u32 = 1 << 0;
const FW_DL_VLAN: u32 = 1 << 1;
const FW_DL_SRC: u32 = 1 << 2;
const FW_DL_DST: u32 = 1 << 3;
const FW_DL_TYPE: u32 = 1 << 4;
const FW_NW_PROTO: u32 = 1 << 5;
const FW_TP_SRC: u32 = 1 << 6;
const FW_TP_DST: u32 = 1 << 7;
const FW_NW_SRC_SHIFT: u32 = 8;
const FW_NW_DST_SHIFT: u32 = 14;
const FW_DL_VLAN_PCP: u32 = 1 << 20;
const FW_NW_TOS: u32 = 1 << 21;
/// The wildcards of a match that matches nothing, as OVS writes them: every flag set,
/// and "32 bits wildcarded" for both addresses.
const FW_ALL: u32 = ((1 << 22) - 1) & !(0xfff << FW_NW_SRC_SHIFT) | (32 << FW_NW_SRC_SHIFT) | (32 << FW_NW_DST_SHIFT);

/// The size of an OpenFlow 1.0 `ofp_match`.
pub(crate) const MATCH10_LEN: usize = 40;

const OFP_VLAN_NONE: u16 = 0xffff;
const VID_PRESENT: u128 = 0x1000;

fn prefix_mask(wildcard_bits: u32) -> Option<u32> {
    match wildcard_bits {
        0 => None,
        32.. => Some(0),
        n => Some(u32::MAX << n),
    }
}

pub(crate) fn decode_match10(r: &mut Reader) -> Result<Match, OfpError> {
    let mut r = r.sub(MATCH10_LEN, OfpError::BadLen)?;
    let wc = r.u32()?;
    let in_port = r.u16()?;
    let dl_src: [u8; 6] = r.array()?;
    let dl_dst: [u8; 6] = r.array()?;
    let dl_vlan = r.u16()?;
    let dl_vlan_pcp = r.u8()?;
    r.skip(1)?;
    let dl_type = r.u16()?;
    let nw_tos = r.u8()?;
    let nw_proto = r.u8()?;
    r.skip(2)?;
    let nw_src = r.u32()?;
    let nw_dst = r.u32()?;
    let tp_src = r.u16()?;
    let tp_dst = r.u16()?;

    let mut m = Match::default();
    let mut push = |field, value: u128| m.fields.push(MatchField::exact(field, value));
    let mac = |a: [u8; 6]| a.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
    if wc & FW_IN_PORT == 0 {
        push(Field::InPort, u128::from(port_from_of10(in_port)));
    }
    if wc & FW_DL_SRC == 0 {
        push(Field::EthSrc, mac(dl_src));
    }
    if wc & FW_DL_DST == 0 {
        push(Field::EthDst, mac(dl_dst));
    }
    let mut tagged = true;
    if wc & FW_DL_VLAN == 0 {
        if dl_vlan == OFP_VLAN_NONE {
            tagged = false;
            push(Field::VlanVid, 0);
        } else {
            push(Field::VlanVid, VID_PRESENT | u128::from(dl_vlan & 0xfff));
        }
    }
    if wc & FW_DL_VLAN_PCP == 0 && tagged {
        push(Field::VlanPcp, u128::from(dl_vlan_pcp & 7));
    }
    if wc & FW_DL_TYPE == 0 {
        push(Field::EthType, u128::from(dl_type));
        let addr = |field, value: u32, shift: u32, m: &mut Match| match prefix_mask((wc >> shift) & 0x3f) {
            None => m.fields.push(MatchField::exact(field, u128::from(value))),
            Some(0) => {}
            Some(mask) => m.fields.push(MatchField::masked(field, u128::from(value & mask), u128::from(mask))),
        };
        if dl_type == 0x0800 {
            if wc & FW_NW_TOS == 0 {
                m.fields.push(MatchField::exact(Field::NwTos, u128::from(nw_tos & 0xfc)));
            }
            if wc & FW_NW_PROTO == 0 {
                m.fields.push(MatchField::exact(Field::IpProto, u128::from(nw_proto)));
            }
            addr(Field::Ipv4Src, nw_src, FW_NW_SRC_SHIFT, &mut m);
            addr(Field::Ipv4Dst, nw_dst, FW_NW_DST_SHIFT, &mut m);
            if wc & FW_NW_PROTO == 0 {
                let ports = match nw_proto {
                    6 => Some((Field::TcpSrc, Field::TcpDst, 0xffff)),
                    17 => Some((Field::UdpSrc, Field::UdpDst, 0xffff)),
                    132 => Some((Field::SctpSrc, Field::SctpDst, 0xffff)),
                    1 => Some((Field::Icmpv4Type, Field::Icmpv4Code, 0xff)),
                    _ => None,
                };
                if let Some((src, dst, bits)) = ports {
                    if wc & FW_TP_SRC == 0 {
                        m.fields.push(MatchField::exact(src, u128::from(tp_src & bits)));
                    }
                    if wc & FW_TP_DST == 0 {
                        m.fields.push(MatchField::exact(dst, u128::from(tp_dst & bits)));
                    }
                }
            }
        } else if dl_type == 0x0806 {
            if wc & FW_NW_PROTO == 0 {
                m.fields.push(MatchField::exact(Field::ArpOp, u128::from(nw_proto)));
            }
            addr(Field::ArpSpa, nw_src, FW_NW_SRC_SHIFT, &mut m);
            addr(Field::ArpTpa, nw_dst, FW_NW_DST_SHIFT, &mut m);
        }
    }
    Ok(m)
}

fn unsupported(what: &'static str) -> EncodeError {
    EncodeError::Unsupported(what, Version::Of10)
}

pub(crate) fn encode_match10(w: &mut Writer, m: &Match) -> Result<(), EncodeError> {
    let mut wc = FW_ALL;
    let (mut in_port, mut dl_src, mut dl_dst, mut dl_vlan, mut pcp, mut dl_type) = (0u16, 0u128, 0u128, 0u16, 0u8, 0);
    let (mut tos, mut proto, mut nw_src, mut nw_dst, mut tp_src, mut tp_dst) = (0u8, 0u8, 0u32, 0u32, 0u16, 0u16);
    for f in &m.fields {
        let exact = |bit: u32, wc: &mut u32| -> Result<u128, EncodeError> {
            if f.mask.is_some() {
                return Err(unsupported("a mask on this field"));
            }
            *wc &= !bit;
            Ok(f.value)
        };
        match f.field {
            Field::InPort => {
                let p = u32::try_from(exact(FW_IN_PORT, &mut wc)?).map_err(|_| EncodeError::Invalid("in_port"))?;
                in_port = port_to_of10(p).ok_or(unsupported("a 32-bit in_port"))?;
            }
            Field::EthSrc => dl_src = exact(FW_DL_SRC, &mut wc)?,
            Field::EthDst => dl_dst = exact(FW_DL_DST, &mut wc)?,
            Field::VlanVid => {
                let v = exact(FW_DL_VLAN, &mut wc)?;
                dl_vlan = if v & VID_PRESENT == 0 { OFP_VLAN_NONE } else { (v & 0xfff) as u16 };
            }
            Field::VlanPcp => pcp = exact(FW_DL_VLAN_PCP, &mut wc)? as u8,
            Field::EthType => dl_type = exact(FW_DL_TYPE, &mut wc)? as u16,
            Field::NwTos => tos = exact(FW_NW_TOS, &mut wc)? as u8,
            Field::IpProto | Field::ArpOp => proto = exact(FW_NW_PROTO, &mut wc)? as u8,
            Field::Ipv4Src | Field::ArpSpa | Field::Ipv4Dst | Field::ArpTpa => {
                let mask = f.mask.unwrap_or(u128::from(u32::MAX)) as u32;
                let prefix = mask.leading_ones();
                if mask != prefix_mask(32 - prefix).unwrap_or(u32::MAX) || prefix == 0 {
                    return Err(unsupported("a non-prefix address mask"));
                }
                let shift = if matches!(f.field, Field::Ipv4Src | Field::ArpSpa) {
                    nw_src = f.value as u32;
                    FW_NW_SRC_SHIFT
                } else {
                    nw_dst = f.value as u32;
                    FW_NW_DST_SHIFT
                };
                wc = (wc & !(0x3f << shift)) | ((32 - prefix) << shift);
            }
            Field::TcpSrc | Field::UdpSrc | Field::SctpSrc | Field::Icmpv4Type => {
                tp_src = exact(FW_TP_SRC, &mut wc)? as u16
            }
            Field::TcpDst | Field::UdpDst | Field::SctpDst | Field::Icmpv4Code => {
                tp_dst = exact(FW_TP_DST, &mut wc)? as u16
            }
            _ => return Err(unsupported("this match field")),
        }
    }
    let start = w.len();
    w.u32(wc);
    w.u16(in_port);
    w.bytes(&dl_src.to_be_bytes()[10..]);
    w.bytes(&dl_dst.to_be_bytes()[10..]);
    w.u16(dl_vlan);
    w.u8(pcp);
    w.u8(0);
    w.u16(dl_type);
    w.u8(tos);
    w.u8(proto);
    w.zeros(2);
    w.u32(nw_src);
    w.u32(nw_dst);
    w.u16(tp_src);
    w.u16(tp_dst);
    // Refuse what would not come back: prerequisites missing, values out of range.
    let back = decode_match10(&mut Reader::new(&w.buf[start..], OfpError::BadLen))
        .map_err(|_| EncodeError::Invalid("OpenFlow 1.0 match"))?;
    let mut want = m.fields.clone();
    let mut got = back.fields;
    let key = |f: &MatchField| format!("{:?}", f.field);
    want.sort_by_key(key);
    got.sort_by_key(key);
    if want != got {
        return Err(unsupported("this match (prerequisites or values)"));
    }
    Ok(())
}
