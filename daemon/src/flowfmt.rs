//! Text forms of megaflows and datapath actions, in the style of
//! `ovs-appctl dpctl/dump-flows`: only the fields the mask covers are printed, a field
//! covered in part is printed as `value/mask`, e.g.
//!
//! ```text
//! in_port(1),eth_type(0x0800),ipv4(dst=10.1.0.0/255.255.0.0,proto=6),tcp(dst=443) actions:set(vlan_vid=20),3
//! ```

use std::fmt::Write;

use ferrovs_flowcache::actions::{DpAction, PacketInNote};
use ferrovs_flowcache::key::{FlowKey, Mask, ethertype, mac_from_u64};

fn mac(v: u64) -> String {
    let m = mac_from_u64(v);
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

/// Appends `name=value` (or `name=value/mask`) to `parts` when `mask` is not zero.
fn field<T: PartialEq + Copy>(
    parts: &mut Vec<String>,
    name: &str,
    value: T,
    mask: T,
    zero: T,
    full: T,
    show: impl Fn(T) -> String,
) {
    if mask == zero {
        return;
    }
    if mask == full {
        parts.push(format!("{name}={}", show(value)));
    } else {
        parts.push(format!("{name}={}/{}", show(value), show(mask)));
    }
}

fn group(out: &mut String, name: &str, parts: Vec<String>) {
    if !parts.is_empty() {
        let _ = write!(out, ",{name}({})", parts.join(","));
    }
}

/// The covered fields of a megaflow's key.
pub fn format_match(key: &FlowKey, mask: &Mask) -> String {
    let k = key.masked(mask);
    let mut out = format!("in_port({})", k.in_port());
    for i in 0..2 {
        if mask.vlan_tci(i) != 0 {
            let _ = write!(out, ",vlan{i}(tci=0x{:04x}/0x{:04x})", k.vlan_tci(i), mask.vlan_tci(i));
        }
    }
    let mut eth = Vec::new();
    field(&mut eth, "src", k.dl_src_u64(), mask.dl_src_u64(), 0, 0xffff_ffff_ffff, mac);
    field(&mut eth, "dst", k.dl_dst_u64(), mask.dl_dst_u64(), 0, 0xffff_ffff_ffff, mac);
    group(&mut out, "eth", eth);
    if mask.dl_type() != 0 {
        let _ = write!(out, ",eth_type(0x{:04x})", k.dl_type());
    }
    let hex8 = |v: u8| format!("{v:#x}");
    let dec8 = |v: u8| v.to_string();
    match k.dl_type() {
        ethertype::ARP => {
            let mut a = Vec::new();
            field(&mut a, "sip", k.nw_src_u32(), mask.nw_src_u32(), 0, u32::MAX, |v| {
                std::net::Ipv4Addr::from(v).to_string()
            });
            field(&mut a, "tip", k.nw_dst_u32(), mask.nw_dst_u32(), 0, u32::MAX, |v| {
                std::net::Ipv4Addr::from(v).to_string()
            });
            field(&mut a, "op", k.nw_proto(), mask.nw_proto(), 0, u8::MAX, dec8);
            field(&mut a, "sha", k.arp_sha_u64(), mask.arp_sha_u64(), 0, 0xffff_ffff_ffff, mac);
            field(&mut a, "tha", k.arp_tha_u64(), mask.arp_tha_u64(), 0, 0xffff_ffff_ffff, mac);
            group(&mut out, "arp", a);
            return out;
        }
        ethertype::MPLS | ethertype::MPLS_MCAST => {
            use ferrovs_config::rules::PacketField as P;
            let (lse, m) = (u128::from(k.mpls_lse()), u128::from(mask.mpls_lse()));
            let mut a = Vec::new();
            for (name, p) in [("label", P::MplsLabel), ("tc", P::MplsTc), ("ttl", P::MplsTtl), ("bos", P::MplsBos)] {
                let d = p.def();
                field(&mut a, name, d.get(lse), d.get(m), 0, d.get(d.bits), |v| v.to_string());
            }
            group(&mut out, "mpls", a);
            return out;
        }
        ethertype::IPV6 => {
            let mut a = Vec::new();
            field(&mut a, "src", k.ipv6_src_u128(), mask.ipv6_src_u128(), 0, u128::MAX, |v| {
                std::net::Ipv6Addr::from(v).to_string()
            });
            field(&mut a, "dst", k.ipv6_dst_u128(), mask.ipv6_dst_u128(), 0, u128::MAX, |v| {
                std::net::Ipv6Addr::from(v).to_string()
            });
            field(&mut a, "label", k.ipv6_label(), mask.ipv6_label(), 0, 0xfffff, |v| format!("{v:#x}"));
            ip_common(&mut a, &k, mask, hex8, dec8);
            group(&mut out, "ipv6", a);
        }
        _ => {
            let mut a = Vec::new();
            field(&mut a, "src", k.nw_src_u32(), mask.nw_src_u32(), 0, u32::MAX, |v| {
                std::net::Ipv4Addr::from(v).to_string()
            });
            field(&mut a, "dst", k.nw_dst_u32(), mask.nw_dst_u32(), 0, u32::MAX, |v| {
                std::net::Ipv4Addr::from(v).to_string()
            });
            ip_common(&mut a, &k, mask, hex8, dec8);
            group(&mut out, "ipv4", a);
        }
    }
    let mut l4 = Vec::new();
    field(&mut l4, "src", k.tp_src(), mask.tp_src(), 0, u16::MAX, |v| v.to_string());
    field(&mut l4, "dst", k.tp_dst(), mask.tp_dst(), 0, u16::MAX, |v| v.to_string());
    field(&mut l4, "flags", k.tcp_flags(), mask.tcp_flags(), 0, 0x0fff, |v| format!("{v:#x}"));
    group(&mut out, "l4", l4);
    out
}

fn ip_common(
    a: &mut Vec<String>,
    k: &FlowKey,
    mask: &Mask,
    hex8: impl Fn(u8) -> String,
    dec8: impl Fn(u8) -> String + Copy,
) {
    field(a, "proto", k.nw_proto(), mask.nw_proto(), 0, u8::MAX, dec8);
    field(a, "tos", k.nw_tos(), mask.nw_tos(), 0, u8::MAX, hex8);
    field(a, "ttl", k.nw_ttl(), mask.nw_ttl(), 0, u8::MAX, dec8);
    field(a, "frag", k.nw_frag(), mask.nw_frag(), 0, u8::MAX, dec8);
}

/// A `push_vlan`/`replace_vlan` TPID: a placeholder by what it stands for, any other in hex.
fn tpid_name(tpid: u16) -> String {
    use ferrovs_flowcache::actions::{
        TPID_OF_LAST_POP, TPID_OF_RECEIVED_INNER, TPID_OF_RECEIVED_OUTER, TPID_OF_SECOND_LAST_POP,
    };
    match tpid {
        TPID_OF_LAST_POP => "popped".into(),
        TPID_OF_SECOND_LAST_POP => "popped2".into(),
        TPID_OF_RECEIVED_OUTER => "received".into(),
        TPID_OF_RECEIVED_INNER => "received2".into(),
        t => format!("0x{t:04x}"),
    }
}

/// Datapath actions, comma separated; `drop` when empty.
pub fn format_actions(actions: &[DpAction]) -> String {
    if actions.is_empty() {
        return "drop".into();
    }
    actions
        .iter()
        .map(|a| match a {
            DpAction::Output(p) => p.to_string(),
            DpAction::OutputTrunc { port, max_len } => format!("trunc({max_len}),{port}"),
            DpAction::SetEthSrc(m) => format!("set(eth_src={})", mac(ferrovs_flowcache::key::mac_to_u64(*m))),
            DpAction::SetEthDst(m) => format!("set(eth_dst={})", mac(ferrovs_flowcache::key::mac_to_u64(*m))),
            DpAction::PushVlan { tpid, tci } => format!("push_vlan(tpid={},tci=0x{tci:04x})", tpid_name(*tpid)),
            DpAction::ReplaceVlan { tpid, tci } => format!("replace_vlan(tpid={},tci=0x{tci:04x})", tpid_name(*tpid)),
            DpAction::PopVlan => "pop_vlan".into(),
            DpAction::CommitVlans { pop, push, tags } => {
                let tags: Vec<String> = tags[..usize::from(*push)]
                    .iter()
                    .map(|(tpid, tci)| format!("{}/0x{tci:04x}", tpid_name(*tpid)))
                    .collect();
                format!("commit_vlans(pop={pop},tags=[{}])", tags.join(","))
            }
            DpAction::SetVlanVid(v) => format!("set(vlan_vid={v})"),
            DpAction::SetVlanPcp(p) => format!("set(vlan_pcp={p})"),
            DpAction::SetIpv4Src(a) => format!("set(ipv4_src={a})"),
            DpAction::SetIpv4Dst(a) => format!("set(ipv4_dst={a})"),
            DpAction::SetIpv6Src(a) => format!("set(ipv6_src={a})"),
            DpAction::SetIpv6Dst(a) => format!("set(ipv6_dst={a})"),
            DpAction::SetIpv6Label(l) => format!("set(ipv6_label={l:#x})"),
            DpAction::SetIpDscp(d) => format!("set(ip_dscp={d})"),
            DpAction::SetIpEcn(e) => format!("set(ip_ecn={e})"),
            DpAction::SetTtl(t) => format!("set(ttl={t})"),
            DpAction::DecTtl => "dec_ttl".into(),
            DpAction::SetTpSrc(p) => format!("set(tp_src={p})"),
            DpAction::SetTpDst(p) => format!("set(tp_dst={p})"),
            DpAction::SetArpOp(op) => format!("set(arp_op={op})"),
            DpAction::SetArpSpa(a) => format!("set(arp_spa={a})"),
            DpAction::SetArpTpa(a) => format!("set(arp_tpa={a})"),
            DpAction::SetArpSha(m) => format!("set(arp_sha={})", mac(ferrovs_flowcache::key::mac_to_u64(*m))),
            DpAction::SetArpTha(m) => format!("set(arp_tha={})", mac(ferrovs_flowcache::key::mac_to_u64(*m))),
            DpAction::SetNdTarget(a) => format!("set(nd(target={a}))"),
            DpAction::SetNdSll(m) => format!("set(nd(sll={}))", mac(ferrovs_flowcache::key::mac_to_u64(*m))),
            DpAction::SetNdTll(m) => format!("set(nd(tll={}))", mac(ferrovs_flowcache::key::mac_to_u64(*m))),
            DpAction::SetNdReserved(r) => format!("set(nd_ext(nd_reserved={r:#x}))"),
            DpAction::SetNdOptionsType(t) => format!("set(nd_ext(nd_options_type={t}))"),
            DpAction::Controller { max_len, reason, table, cookie, .. } => {
                format!("userspace(controller(max_len={max_len},reason={reason},table={table},cookie={cookie:#x}))")
            }
            DpAction::SetMplsLse { value, mask: u32::MAX } => format!("set(mpls(lse={value:#010x}))"),
            DpAction::SetMplsLse { value, mask } => format!("set(mpls(lse={value:#010x}/{mask:#010x}))"),
            DpAction::PacketInNote(PacketInNote::Reg(n, v)) => format!("pin_note(reg{n}={v:#x})"),
            DpAction::PacketInNote(PacketInNote::Metadata(m)) => format!("pin_note(metadata={m:#x})"),
            DpAction::PacketInNote(PacketInNote::InPort(p)) => format!("pin_note(in_port={p})"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_only_covered_fields() {
        let mut k = FlowKey::ZERO;
        k.set_in_port(1);
        k.set_dl_type(0x0800);
        k.set_nw_dst_u32(0x0a01_0203);
        k.set_nw_proto(6);
        k.set_tp_dst(443);
        k.set_tp_src(999);
        let mut m = FlowKey::ZERO;
        m.set_in_port(u32::MAX);
        m.set_dl_type(0xffff);
        m.set_nw_dst_u32(0xffff_0000);
        m.set_nw_proto(0xff);
        m.set_tp_dst(0xffff);
        assert_eq!(
            format_match(&k, &m),
            "in_port(1),eth_type(0x0800),ipv4(dst=10.1.0.0/255.255.0.0,proto=6),l4(dst=443)"
        );
        assert_eq!(format_actions(&[DpAction::SetVlanVid(20), DpAction::Output(3)]), "set(vlan_vid=20),3");
        assert_eq!(format_actions(&[DpAction::OutputTrunc { port: 2, max_len: 100 }]), "trunc(100),2");
        let mut k = FlowKey::ZERO;
        let mut m = Mask::ZERO;
        k.set_dl_type(ethertype::MPLS);
        k.set_mpls_lse(16 << 12 | 5 << 9 | 1 << 8 | 64);
        m.set_dl_type(0xffff);
        m.set_mpls_lse(0xffff_f000 | 0xff);
        assert_eq!(format_match(&k, &m), "in_port(0),eth_type(0x8847),mpls(label=16,ttl=64)");
        let note = DpAction::PacketInNote(PacketInNote::Reg(3, 5));
        assert_eq!(format_actions(&[note]), "pin_note(reg3=0x5)");
        assert_eq!(format_actions(&[]), "drop");
        let nd = [
            DpAction::SetNdReserved(0x6000_0000),
            DpAction::SetNdOptionsType(1),
            DpAction::SetNdTarget("fd00::9".parse().unwrap()),
            DpAction::SetNdSll([2, 0, 0, 0, 0, 0xb]),
            DpAction::SetNdTll([2, 0, 0, 0, 0, 0xc]),
        ];
        assert_eq!(
            format_actions(&nd),
            "set(nd_ext(nd_reserved=0x60000000)),set(nd_ext(nd_options_type=1)),set(nd(target=fd00::9)),\
             set(nd(sll=02:00:00:00:00:0b)),set(nd(tll=02:00:00:00:00:0c))"
        );
    }
}
