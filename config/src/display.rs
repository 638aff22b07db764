//! Printing rules, matches and actions back in `ovs-ofctl` syntax, the way
//! `ovs-ofctl --no-stats dump-flows` prints them: `cookie`, `table` and timeouts only when
//! not zero, `priority` only when not the default 32768, shorthands (`tcp`, `arp`...)
//! instead of `dl_type`/`nw_proto`, prefixes as `/LEN`, then ` actions=...` (`drop` for
//! an empty list).
//!
//! Whatever the parser produces prints to text that parses back to the same value (a
//! property test checks this). A [`Match`] built by hand with masks the syntax cannot
//! express (e.g. `nw_tos` under mask 0xf0, or an ICMP type under a partial mask) prints
//! the closest form and is documented as lossy.

use crate::flow_parse::MatchSpec;
use crate::match_parse::proto::*;
use crate::rules::{Action, Masked, Match, Resubmit, Rule, SetField};
use crate::values::TCP_FLAG_NAMES;
use std::fmt::{self, Display, Formatter, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

fn mac(m: [u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

fn masked_mac(m: &Masked<[u8; 6]>) -> String {
    if m.mask == [0xff; 6] { mac(m.value) } else { format!("{}/{}", mac(m.value), mac(m.mask)) }
}

fn masked_ipv4(m: &Masked<Ipv4Addr>) -> String {
    let mask = u32::from(m.mask);
    if mask == u32::MAX {
        m.value.to_string()
    } else if mask.leading_ones() + mask.trailing_zeros() == 32 {
        format!("{}/{}", m.value, mask.leading_ones())
    } else {
        format!("{}/{}", m.value, m.mask)
    }
}

fn masked_ipv6(m: &Masked<Ipv6Addr>) -> String {
    let mask = u128::from(m.mask);
    if mask == u128::MAX {
        m.value.to_string()
    } else if mask.leading_ones() + mask.trailing_zeros() == 128 {
        format!("{}/{}", m.value, mask.leading_ones())
    } else {
        format!("{}/{}", m.value, m.mask)
    }
}

fn masked_u16(m: &Masked<u16>) -> String {
    if m.mask == 0xffff { m.value.to_string() } else { format!("0x{:x}/0x{:x}", m.value, m.mask) }
}

fn tcp_flags(m: &Masked<u16>) -> String {
    let named: u16 = TCP_FLAG_NAMES.iter().map(|&(_, b)| b).sum();
    if m.mask & !named != 0 {
        return format!("0x{:03x}/0x{:03x}", m.value, m.mask);
    }
    let mut s = String::new();
    for &(name, bit) in &TCP_FLAG_NAMES {
        if m.mask & bit != 0 {
            s.push(if m.value & bit != 0 { '+' } else { '-' });
            s.push_str(name);
        }
    }
    s
}

/// The `ovs-ofctl` shorthand for a `dl_type`/`nw_proto` pair, and whether it covers
/// `nw_proto` too.
fn shorthand(dl_type: u16, nw_proto: Option<u8>) -> Option<(&'static str, bool)> {
    let with_proto = match (dl_type, nw_proto) {
        (ETH_IPV4, Some(TCP)) => Some("tcp"),
        (ETH_IPV4, Some(UDP)) => Some("udp"),
        (ETH_IPV4, Some(SCTP)) => Some("sctp"),
        (ETH_IPV4, Some(ICMP)) => Some("icmp"),
        (ETH_IPV6, Some(TCP)) => Some("tcp6"),
        (ETH_IPV6, Some(UDP)) => Some("udp6"),
        (ETH_IPV6, Some(SCTP)) => Some("sctp6"),
        (ETH_IPV6, Some(ICMPV6)) => Some("icmp6"),
        _ => None,
    };
    if let Some(name) = with_proto {
        return Some((name, true));
    }
    match dl_type {
        ETH_IPV4 => Some(("ip", false)),
        ETH_IPV6 => Some(("ipv6", false)),
        ETH_ARP => Some(("arp", false)),
        _ => None,
    }
}

/// The fields of a match in `ovs-ofctl` order, each as `KEY` or `KEY=VALUE`.
pub(crate) fn match_fields(m: &Match) -> Vec<String> {
    let mut out = Vec::new();
    let mut proto_printed = false;
    if let Some(t) = m.dl_type {
        match shorthand(t, m.nw_proto) {
            Some((name, covers_proto)) => {
                out.push(name.to_string());
                proto_printed = covers_proto;
            }
            None => out.push(format!("dl_type=0x{t:04x}")),
        }
    }
    if let Some(p) = m.in_port {
        out.push(format!("in_port={p}"));
    }
    if let Some(t) = &m.vlan_tci {
        let present = t.value & 0x1000 != 0;
        let vid = t.value & 0x0fff;
        let pcp = t.value >> 13;
        match t.mask {
            0x1fff if present => out.push(format!("dl_vlan={vid}")),
            0xf000 if present => out.push(format!("dl_vlan_pcp={pcp}")),
            0xffff if present => {
                out.push(format!("dl_vlan={vid}"));
                out.push(format!("dl_vlan_pcp={pcp}"));
            }
            0xffff => out.push(format!("vlan_tci=0x{:04x}", t.value)),
            _ => out.push(format!("vlan_tci=0x{:04x}/0x{:04x}", t.value, t.mask)),
        }
    }
    if let Some(a) = &m.dl_src {
        out.push(format!("dl_src={}", masked_mac(a)));
    }
    if let Some(a) = &m.dl_dst {
        out.push(format!("dl_dst={}", masked_mac(a)));
    }
    let arp = m.dl_type == Some(ETH_ARP);
    if let Some(a) = &m.nw_src {
        out.push(format!("{}={}", if arp { "arp_spa" } else { "nw_src" }, masked_ipv4(a)));
    }
    if let Some(a) = &m.nw_dst {
        out.push(format!("{}={}", if arp { "arp_tpa" } else { "nw_dst" }, masked_ipv4(a)));
    }
    if let Some(a) = &m.ipv6_src {
        out.push(format!("ipv6_src={}", masked_ipv6(a)));
    }
    if let Some(a) = &m.ipv6_dst {
        out.push(format!("ipv6_dst={}", masked_ipv6(a)));
    }
    if let (Some(p), false) = (m.nw_proto, proto_printed) {
        out.push(format!("{}={p}", if arp { "arp_op" } else { "nw_proto" }));
    }
    if let Some(t) = &m.nw_tos {
        if t.mask & 0xfc != 0 {
            out.push(format!("nw_tos={}", t.value & 0xfc));
        }
        if t.mask & 0x03 != 0 {
            out.push(format!("nw_ecn={}", t.value & 0x03));
        }
    }
    if let Some(t) = m.nw_ttl {
        out.push(format!("nw_ttl={t}"));
    }
    if let Some(f) = &m.nw_frag {
        out.push(match (f.value, f.mask) {
            (0, 1) | (0, 3) => "nw_frag=no".to_string(),
            (1, 1) => "nw_frag=yes".to_string(),
            (1, 3) => "nw_frag=first".to_string(),
            (3, 3) => "nw_frag=later".to_string(),
            (0, 2) => "nw_frag=not_later".to_string(),
            (v, mask) => format!("nw_frag=0x{v:x}/0x{mask:x}"),
        });
    }
    let icmp = match (m.dl_type, m.nw_proto) {
        (Some(ETH_IPV4), Some(ICMP)) => Some("icmp"),
        (Some(ETH_IPV6), Some(ICMPV6)) => Some("icmpv6"),
        _ => None,
    };
    for (field, name, icmp_name) in [(&m.tp_src, "tp_src", "type"), (&m.tp_dst, "tp_dst", "code")] {
        if let Some(p) = field {
            match icmp {
                Some(prefix) => out.push(format!("{prefix}_{icmp_name}={}", p.value)),
                None => out.push(format!("{name}={}", masked_u16(p))),
            }
        }
    }
    if let Some(f) = &m.tcp_flags {
        out.push(format!("tcp_flags={}", tcp_flags(f)));
    }
    if let Some(a) = &m.arp_sha {
        out.push(format!("arp_sha={}", masked_mac(a)));
    }
    if let Some(a) = &m.arp_tha {
        out.push(format!("arp_tha={}", masked_mac(a)));
    }
    out
}

/// Prints the match fields comma-separated (empty for a match-everything).
impl Display for Match {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&match_fields(self).join(","))
    }
}

impl Display for SetField {
    /// The `ovs-ofctl` action that sets this field: the OpenFlow 1.0 `mod_*` form where
    /// there is one, else `set_field:VALUE->FIELD`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match *self {
            SetField::DlSrc(m) => write!(f, "mod_dl_src:{}", mac(m)),
            SetField::DlDst(m) => write!(f, "mod_dl_dst:{}", mac(m)),
            SetField::VlanVid(v) => write!(f, "set_field:{}->vlan_vid", v | 0x1000),
            SetField::VlanPcp(p) => write!(f, "set_field:{p}->vlan_pcp"),
            SetField::NwSrc(a) => write!(f, "mod_nw_src:{a}"),
            SetField::NwDst(a) => write!(f, "mod_nw_dst:{a}"),
            SetField::Ipv6Src(a) => write!(f, "set_field:{a}->ipv6_src"),
            SetField::Ipv6Dst(a) => write!(f, "set_field:{a}->ipv6_dst"),
            SetField::IpDscp(d) => write!(f, "mod_nw_tos:{}", u16::from(d) << 2),
            SetField::NwEcn(e) => write!(f, "mod_nw_ecn:{e}"),
            SetField::NwTtl(t) => write!(f, "mod_nw_ttl:{t}"),
            SetField::TpSrc(p) => write!(f, "mod_tp_src:{p}"),
            SetField::TpDst(p) => write!(f, "mod_tp_dst:{p}"),
        }
    }
}

impl Display for Action {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match *self {
            Action::Output(p) => write!(f, "output:{p}"),
            Action::InPort => f.write_str("IN_PORT"),
            Action::Flood => f.write_str("FLOOD"),
            Action::All => f.write_str("ALL"),
            Action::Normal => f.write_str("NORMAL"),
            Action::ModVlanVid(v) => write!(f, "mod_vlan_vid:{v}"),
            Action::ModVlanPcp(p) => write!(f, "mod_vlan_pcp:{p}"),
            Action::StripVlan => f.write_str("strip_vlan"),
            Action::PushVlan(tpid) => write!(f, "push_vlan:0x{tpid:04x}"),
            Action::Set(s) => s.fmt(f),
            Action::DecTtl => f.write_str("dec_ttl"),
            Action::Resubmit(Resubmit { in_port, table }) => match (in_port, table) {
                (Some(p), None) => write!(f, "resubmit:{p}"),
                (None, Some(t)) => write!(f, "resubmit(,{t})"),
                (Some(p), Some(t)) => write!(f, "resubmit({p},{t})"),
                // Not produced by the parser: "current port, current table".
                (None, None) => f.write_str("resubmit(in_port,)"),
            },
            Action::GotoTable(t) => write!(f, "goto_table:{t}"),
        }
    }
}

/// An action list as after `actions=`: comma-separated, `drop` when empty.
pub fn format_actions(actions: &[Action]) -> String {
    if actions.is_empty() {
        return "drop".to_string();
    }
    let mut s = String::new();
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{a}");
    }
    s
}

impl Display for Rule {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut header = Vec::new();
        if self.cookie != 0 {
            header.push(format!("cookie=0x{:x}", self.cookie));
        }
        if self.table != 0 {
            header.push(format!("table={}", self.table));
        }
        if self.idle_timeout != 0 {
            header.push(format!("idle_timeout={}", self.idle_timeout));
        }
        if self.hard_timeout != 0 {
            header.push(format!("hard_timeout={}", self.hard_timeout));
        }
        let mut body = Vec::new();
        if self.priority != Rule::DEFAULT_PRIORITY {
            body.push(format!("priority={}", self.priority));
        }
        body.extend(match_fields(&self.matches));
        let mut s = header.join(", ");
        if !body.is_empty() {
            if !s.is_empty() {
                s.push_str(", ");
            }
            s.push_str(&body.join(","));
        }
        if !s.is_empty() {
            s.push(' ');
        }
        write!(f, "{s}actions={}", format_actions(&self.actions))
    }
}

impl Display for MatchSpec {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(c) = &self.cookie {
            parts.push(if c.mask == u64::MAX {
                format!("cookie=0x{:x}", c.value)
            } else {
                format!("cookie=0x{:x}/0x{:x}", c.value, c.mask)
            });
        }
        if let Some(t) = self.table {
            parts.push(format!("table={t}"));
        }
        if let Some(p) = self.priority {
            parts.push(format!("priority={p}"));
        }
        parts.extend(match_fields(&self.matches));
        f.write_str(&parts.join(","))
    }
}
