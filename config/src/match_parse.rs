//! Building a [`Match`] (plus the rule properties `table`, `priority`, `cookie` and the
//! timeouts) from `KEY[=VALUE]` fields, one at a time, then checking it as a whole.
//!
//! # Design
//!
//! [`RuleBuilder::apply`] handles one field: it parses the value, refuses a field that was
//! already given (directly or through an alias sharing its slot, e.g. `nw_src` and
//! `arp_spa`), and records which prerequisite the field needs. Shorthands (`tcp`, `arp`...)
//! set `dl_type`/`nw_proto`; they may repeat what another field says (`ip,tcp`) but never
//! contradict it (`tcp,udp`, `ipv6,dl_type=0x0800`).
//!
//! [`RuleBuilder::finish`] runs once every field is known, because OpenFlow
//! prerequisites do not depend on field order (`tp_dst=80,tcp` is fine): each field's
//! prerequisite (e.g. `tp_dst` needs `nw_proto` TCP, UDP or SCTP over IPv4 or IPv6) is
//! checked against the final `dl_type`/`nw_proto`, and a missing one is an error at that
//! field's position. Open vSwitch instead silently drops such fields ("normalization
//! changed ofp_match"); a rule that quietly matches more than it says is a security bug,
//! so ferrovs refuses it.
//!
//! The builder serves three callers, told apart by [`Mode`]: flows (`add-flow`), matches
//! (`del-flows`: `table`, `priority` and a masked `cookie` allowed, no timeouts) and
//! packets (`trace`: exact values only, `in_port` required, masks widened to exact).
//!
//! Positions come from the caller through a `locate` function mapping a byte offset
//! inside the value to a [`Position`], so the TOML `[[bridge.rule]]` form, which has no
//! ofctl line, reports positions in the TOML file.

use crate::rule_error::RuleError;
use crate::rules::{Masked, Match, Position};
use crate::values::{
    TCP_FLAGS_ALL, ValueError, parse_masked_ipv4, parse_masked_ipv6, parse_masked_mac, parse_masked_uint,
    parse_port_number, parse_tcp_flags, parse_uint,
};
use std::net::{Ipv4Addr, Ipv6Addr};

/// EtherTypes and IP protocols the shorthands stand for.
pub(crate) mod proto {
    pub const ETH_IPV4: u16 = 0x0800;
    pub const ETH_ARP: u16 = 0x0806;
    pub const ETH_IPV6: u16 = 0x86dd;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}
use proto::*;

/// The shorthand keywords: name, EtherType, IP protocol.
pub(crate) const SHORTHANDS: [(&str, u16, Option<u8>); 11] = [
    ("ip", ETH_IPV4, None),
    ("ipv6", ETH_IPV6, None),
    ("arp", ETH_ARP, None),
    ("tcp", ETH_IPV4, Some(TCP)),
    ("udp", ETH_IPV4, Some(UDP)),
    ("sctp", ETH_IPV4, Some(SCTP)),
    ("icmp", ETH_IPV4, Some(ICMP)),
    ("tcp6", ETH_IPV6, Some(TCP)),
    ("udp6", ETH_IPV6, Some(UDP)),
    ("sctp6", ETH_IPV6, Some(SCTP)),
    ("icmp6", ETH_IPV6, Some(ICMPV6)),
];

/// Maps a byte offset inside a value (or key) to a position in the caller's input.
pub(crate) type Locate<'a> = &'a dyn Fn(usize) -> Position;

/// What is being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A rule (`add-flow`): timeouts allowed, exact cookie, actions required.
    Flow,
    /// A match for `del-flows`: table, priority and a masked cookie allowed.
    Match,
    /// A packet for `trace`: exact values only, `in_port` required.
    Packet,
}

/// The match prerequisites of OpenFlow fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prereq {
    /// IPv4 or IPv6.
    IpAny,
    /// IPv4, IPv6 or ARP (`nw_proto` doubles as the ARP opcode in OpenFlow 1.0).
    IpAnyOrArp,
    /// IPv4 or ARP (`nw_src`/`nw_dst` double as ARP's protocol addresses).
    IpOrArp,
    /// IPv4 only.
    Ip,
    Ipv6,
    Arp,
    /// TCP, UDP or SCTP over IPv4 or IPv6.
    L4,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv6,
}

impl Prereq {
    pub(crate) fn holds(self, dl_type: Option<u16>, nw_proto: Option<u8>) -> bool {
        let ip_any = matches!(dl_type, Some(ETH_IPV4 | ETH_IPV6));
        match self {
            Prereq::IpAny => ip_any,
            Prereq::IpAnyOrArp => ip_any || dl_type == Some(ETH_ARP),
            Prereq::IpOrArp => matches!(dl_type, Some(ETH_IPV4 | ETH_ARP)),
            Prereq::Ip => dl_type == Some(ETH_IPV4),
            Prereq::Ipv6 => dl_type == Some(ETH_IPV6),
            Prereq::Arp => dl_type == Some(ETH_ARP),
            Prereq::L4 => ip_any && matches!(nw_proto, Some(TCP | UDP | SCTP)),
            Prereq::Tcp => ip_any && nw_proto == Some(TCP),
            Prereq::Udp => ip_any && nw_proto == Some(UDP),
            Prereq::Sctp => ip_any && nw_proto == Some(SCTP),
            Prereq::Icmp => dl_type == Some(ETH_IPV4) && nw_proto == Some(ICMP),
            Prereq::Icmpv6 => dl_type == Some(ETH_IPV6) && nw_proto == Some(ICMPV6),
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Prereq::IpAny => "ip or ipv6",
            Prereq::IpAnyOrArp => "ip, ipv6 or arp",
            Prereq::IpOrArp => "ip or arp",
            Prereq::Ip => "ip",
            Prereq::Ipv6 => "ipv6",
            Prereq::Arp => "arp",
            Prereq::L4 => "tcp, udp or sctp (or tcp6, udp6, sctp6)",
            Prereq::Tcp => "tcp or tcp6",
            Prereq::Udp => "udp or udp6",
            Prereq::Sctp => "sctp or sctp6",
            Prereq::Icmp => "icmp",
            Prereq::Icmpv6 => "icmp6",
        }
    }
}

/// What `dl_vlan` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VlanVid {
    /// `dl_vlan=0xffff`: no tag.
    NoTag,
    Vid(u16),
}

/// Who set `dl_type` or `nw_proto` first: the key, where, and whether it was an explicit
/// field (as opposed to a shorthand).
#[derive(Debug, Clone)]
struct Origin<T> {
    value: T,
    key: String,
    explicit: bool,
}

/// Records that `key` sets a field that shorthands (`tcp`, `ip`...) may also set:
/// agreeing repeats are fine (`ip,tcp`), a different value is a conflict, and two
/// explicit settings of the field are a duplicate. `field` and `show` name the field
/// and print a value in messages.
fn set_origin<T: Copy + PartialEq>(
    slot: &mut Option<Origin<T>>,
    value: T,
    key: &str,
    pos: Position,
    explicit: bool,
    (field, show): (&str, fn(T) -> String),
) -> Result<(), RuleError> {
    match slot {
        Some(old) if old.value != value => Err(RuleError::new(
            pos,
            format!("`{key}` conflicts with `{}` ({field} {} vs {})", old.key, show(value), show(old.value)),
        )),
        Some(old) if explicit && old.explicit => {
            Err(RuleError::new(pos, format!("`{key}` sets the same field as `{}`", old.key)))
        }
        Some(_) => Ok(()),
        None => {
            *slot = Some(Origin { value, key: key.to_string(), explicit });
            Ok(())
        }
    }
}

/// Accumulates fields; see the module documentation.
#[derive(Debug)]
pub(crate) struct RuleBuilder {
    mode: Mode,
    pub table: Option<u8>,
    pub priority: Option<u16>,
    pub cookie: Option<Masked<u64>>,
    pub idle_timeout: Option<u16>,
    pub hard_timeout: Option<u16>,
    m: Match,
    /// Keys given so far (for "duplicate field").
    seen: Vec<String>,
    /// Field slots taken so far and by which key (for aliases sharing a slot).
    slots: Vec<(&'static str, String)>,
    dl_type: Option<Origin<u16>>,
    nw_proto: Option<Origin<u8>>,
    vlan_vid: Option<VlanVid>,
    vlan_pcp: Option<(u8, Position)>,
    vlan_tci: Option<Masked<u16>>,
    prereqs: Vec<(Prereq, String, Position)>,
}

fn nonzero<T: PartialEq>(m: Masked<T>, zero: T) -> Option<Masked<T>> {
    if m.mask == zero { None } else { Some(m) }
}

impl RuleBuilder {
    pub(crate) fn new(mode: Mode) -> Self {
        RuleBuilder {
            mode,
            table: None,
            priority: None,
            cookie: None,
            idle_timeout: None,
            hard_timeout: None,
            m: Match::default(),
            seen: Vec::new(),
            slots: Vec::new(),
            dl_type: None,
            nw_proto: None,
            vlan_vid: None,
            vlan_pcp: None,
            vlan_tci: None,
            prereqs: Vec::new(),
        }
    }

    fn claim(&mut self, slot: &'static str, key: &str, pos: Position) -> Result<(), RuleError> {
        if let Some((_, prev)) = self.slots.iter().find(|(s, _)| *s == slot) {
            return Err(RuleError::new(pos, format!("`{key}` sets the same field as `{prev}`")));
        }
        self.slots.push((slot, key.to_string()));
        Ok(())
    }

    fn set_dl_type(&mut self, value: u16, key: &str, pos: Position, explicit: bool) -> Result<(), RuleError> {
        set_origin(&mut self.dl_type, value, key, pos, explicit, ("dl_type", |v| format!("0x{v:04x}")))?;
        self.m.dl_type = Some(value);
        Ok(())
    }

    fn set_nw_proto(&mut self, value: u8, key: &str, pos: Position, explicit: bool) -> Result<(), RuleError> {
        set_origin(&mut self.nw_proto, value, key, pos, explicit, ("nw_proto", |v| v.to_string()))?;
        self.m.nw_proto = Some(value);
        Ok(())
    }

    /// Applies one field. `key_pos` is where the key starts; `locate` maps byte offsets
    /// inside `value` to positions.
    pub(crate) fn apply(
        &mut self,
        key: &str,
        key_pos: Position,
        value: Option<&str>,
        locate: Locate<'_>,
    ) -> Result<(), RuleError> {
        if self.seen.iter().any(|k| k == key) {
            return Err(RuleError::new(key_pos, format!("duplicate field `{key}`")));
        }
        self.seen.push(key.to_string());

        if let Some(&(name, eth, ip)) = SHORTHANDS.iter().find(|(n, _, _)| *n == key) {
            if value.is_some() {
                return Err(RuleError::new(key_pos, format!("`{name}` is a shorthand and takes no value")));
            }
            self.set_dl_type(eth, key, key_pos, false)?;
            if let Some(ip) = ip {
                self.set_nw_proto(ip, key, key_pos, false)?;
            }
            return Ok(());
        }
        if key == "actions" {
            return Err(RuleError::new(key_pos, "`actions` must be written `actions=ACTION,...`"));
        }
        let Some(text) = value else {
            if is_known_field(key) {
                return Err(RuleError::new(key_pos, format!("`{key}` needs a value (`{key}=...`)")));
            }
            return Err(RuleError::new(key_pos, format!("unknown or unsupported field `{key}`")));
        };
        let verr = |e: ValueError| RuleError::new(locate(e.offset), format!("invalid `{key}`: {}", e.reason));
        let packet = self.mode == Mode::Packet;
        // A packet is described with exact values only.
        let exact_only = |text: &str| -> Result<(), RuleError> {
            match text.find('/') {
                Some(slash) if packet => {
                    Err(RuleError::new(locate(slash), format!("`{key}` of a packet takes an exact value, not a mask")))
                }
                _ => Ok(()),
            }
        };
        let not_in = |what: &str| RuleError::new(key_pos, format!("`{key}` is not allowed in {what}"));

        match key {
            "table" => {
                if packet {
                    return Err(not_in("a packet"));
                }
                self.claim("table", key, key_pos)?;
                self.table = Some(parse_uint(text, 254).map_err(verr)? as u8);
            }
            "priority" => {
                if packet {
                    return Err(not_in("a packet"));
                }
                self.claim("priority", key, key_pos)?;
                self.priority = Some(parse_uint(text, 65535).map_err(verr)? as u16);
            }
            "cookie" => {
                if packet {
                    return Err(not_in("a packet"));
                }
                self.claim("cookie", key, key_pos)?;
                let cookie = match (self.mode, text.split_once('/')) {
                    (Mode::Flow, Some((v, _))) => {
                        return Err(RuleError::new(
                            locate(v.len()),
                            "a cookie mask is only accepted when matching rules (del-flows), not in a rule",
                        ));
                    }
                    (_, Some((v, "-1"))) => Masked { value: parse_uint(v, u64::MAX).map_err(verr)?, mask: u64::MAX },
                    _ => parse_masked_uint(text, u64::MAX).map_err(verr)?,
                };
                self.cookie = Some(cookie);
            }
            "idle_timeout" | "hard_timeout" => {
                if self.mode != Mode::Flow {
                    return Err(not_in(if packet { "a packet" } else { "a match" }));
                }
                self.claim(if key == "idle_timeout" { "idle_timeout" } else { "hard_timeout" }, key, key_pos)?;
                let t = Some(parse_uint(text, 65535).map_err(verr)? as u16);
                if key == "idle_timeout" {
                    self.idle_timeout = t;
                } else {
                    self.hard_timeout = t;
                }
            }
            // Counters printed by `ovs-ofctl dump-flows`: accepted and ignored, as OVS
            // does, so dump-flows output can be fed back. They carry no match semantics.
            "duration" | "n_packets" | "n_bytes" | "idle_age" | "hard_age" if !packet => {}
            "in_port" => {
                self.claim("in_port", key, key_pos)?;
                self.m.in_port = Some(parse_port_number(text).map_err(verr)?);
            }
            "dl_src" | "eth_src" | "dl_dst" | "eth_dst" => {
                exact_only(text)?;
                let src = key.ends_with("src");
                self.claim(if src { "dl_src" } else { "dl_dst" }, key, key_pos)?;
                let mac = nonzero(parse_masked_mac(text).map_err(verr)?, [0; 6]);
                if src {
                    self.m.dl_src = mac;
                } else {
                    self.m.dl_dst = mac;
                }
            }
            "dl_type" | "eth_type" => {
                let v = parse_uint(text, 0xffff).map_err(verr)? as u16;
                self.set_dl_type(v, key, key_pos, true)?;
            }
            "dl_vlan" => {
                self.claim("vlan_vid", key, key_pos)?;
                let v = parse_uint(text, 0xffff).map_err(verr)? as u16;
                self.vlan_vid = Some(match v {
                    0xffff => VlanVid::NoTag,
                    0..=0x0fff => VlanVid::Vid(v),
                    _ => {
                        return Err(RuleError::new(
                            locate(0),
                            format!("invalid `dl_vlan`: {text} is not a VLAN ID (0..=4095, or 0xffff for no tag)"),
                        ));
                    }
                });
            }
            "dl_vlan_pcp" => {
                self.claim("vlan_pcp", key, key_pos)?;
                self.vlan_pcp = Some((parse_uint(text, 7).map_err(verr)? as u8, key_pos));
            }
            "vlan_tci" => {
                exact_only(text)?;
                self.claim("vlan_vid", key, key_pos)?;
                self.claim("vlan_pcp", key, key_pos)?;
                let m = parse_masked_uint(text, 0xffff).map_err(verr)?;
                self.vlan_tci = Some(Masked { value: m.value as u16, mask: m.mask as u16 });
            }
            "nw_src" | "ip_src" | "nw_dst" | "ip_dst" | "arp_spa" | "arp_tpa" => {
                exact_only(text)?;
                let src = matches!(key, "nw_src" | "ip_src" | "arp_spa");
                self.claim(if src { "nw_src" } else { "nw_dst" }, key, key_pos)?;
                let prereq = if key.starts_with("arp") { Prereq::Arp } else { Prereq::IpOrArp };
                self.prereqs.push((prereq, key.to_string(), key_pos));
                let ip = nonzero(parse_masked_ipv4(text).map_err(verr)?, Ipv4Addr::UNSPECIFIED);
                if src {
                    self.m.nw_src = ip;
                } else {
                    self.m.nw_dst = ip;
                }
            }
            "ipv6_src" | "ipv6_dst" => {
                exact_only(text)?;
                let src = key == "ipv6_src";
                self.claim(if src { "ipv6_src" } else { "ipv6_dst" }, key, key_pos)?;
                self.prereqs.push((Prereq::Ipv6, key.to_string(), key_pos));
                let ip = nonzero(parse_masked_ipv6(text).map_err(verr)?, Ipv6Addr::UNSPECIFIED);
                if src {
                    self.m.ipv6_src = ip;
                } else {
                    self.m.ipv6_dst = ip;
                }
            }
            "nw_proto" | "ip_proto" | "arp_op" => {
                let v = parse_uint(text, 255).map_err(verr)? as u8;
                let prereq = if key == "arp_op" { Prereq::Arp } else { Prereq::IpAnyOrArp };
                self.prereqs.push((prereq, key.to_string(), key_pos));
                self.set_nw_proto(v, key, key_pos, true)?;
            }
            "nw_tos" | "ip_dscp" => {
                self.claim("ip_dscp", key, key_pos)?;
                self.prereqs.push((Prereq::IpAny, key.to_string(), key_pos));
                let tos = if key == "nw_tos" {
                    let v = parse_uint(text, 255).map_err(verr)? as u8;
                    if v & 0x03 != 0 {
                        return Err(RuleError::new(
                            locate(0),
                            format!(
                                "invalid `nw_tos`: {text} is not a multiple of 4 (its low two bits are ECN: use nw_ecn)"
                            ),
                        ));
                    }
                    v
                } else {
                    (parse_uint(text, 63).map_err(verr)? as u8) << 2
                };
                self.or_nw_tos(tos, 0xfc);
            }
            "nw_ecn" | "ip_ecn" => {
                self.claim("nw_ecn", key, key_pos)?;
                self.prereqs.push((Prereq::IpAny, key.to_string(), key_pos));
                let ecn = parse_uint(text, 3).map_err(verr)? as u8;
                self.or_nw_tos(ecn, 0x03);
            }
            "nw_ttl" => {
                self.claim("nw_ttl", key, key_pos)?;
                self.prereqs.push((Prereq::IpAny, key.to_string(), key_pos));
                self.m.nw_ttl = Some(parse_uint(text, 255).map_err(verr)? as u8);
            }
            "nw_frag" | "ip_frag" => {
                self.claim("nw_frag", key, key_pos)?;
                self.prereqs.push((Prereq::IpAny, key.to_string(), key_pos));
                let (value, mask) = match (text, packet) {
                    ("no", false) => (0, 1),
                    ("yes", false) => (1, 1),
                    ("first", false) => (1, 3),
                    ("later", false) => (3, 3),
                    ("not_later", false) => (0, 2),
                    ("no", true) => (0, 3),
                    ("first", true) => (1, 3),
                    ("later", true) => (3, 3),
                    ("yes" | "not_later", true) => {
                        return Err(RuleError::new(
                            locate(0),
                            format!("`{key}={text}` does not describe one packet: use no, first or later"),
                        ));
                    }
                    _ => {
                        return Err(RuleError::new(
                            locate(0),
                            format!("invalid `{key}`: `{text}` is not one of no, yes, first, later, not_later"),
                        ));
                    }
                };
                self.m.nw_frag = Some(Masked { value, mask });
            }
            "tp_src" | "tp_dst" | "tcp_src" | "tcp_dst" | "udp_src" | "udp_dst" | "sctp_src" | "sctp_dst" => {
                exact_only(text)?;
                let src = key.ends_with("src");
                self.claim(if src { "tp_src" } else { "tp_dst" }, key, key_pos)?;
                let prereq = match key.split('_').next() {
                    Some("tcp") => Prereq::Tcp,
                    Some("udp") => Prereq::Udp,
                    Some("sctp") => Prereq::Sctp,
                    _ => Prereq::L4,
                };
                self.prereqs.push((prereq, key.to_string(), key_pos));
                let m = parse_masked_uint(text, 0xffff).map_err(verr)?;
                let port = nonzero(Masked { value: m.value as u16, mask: m.mask as u16 }, 0);
                if src {
                    self.m.tp_src = port;
                } else {
                    self.m.tp_dst = port;
                }
            }
            "icmp_type" | "icmpv4_type" | "icmp_code" | "icmpv4_code" | "icmpv6_type" | "icmpv6_code" => {
                let is_type = key.ends_with("type");
                self.claim(if is_type { "tp_src" } else { "tp_dst" }, key, key_pos)?;
                let prereq = if key.starts_with("icmpv6") { Prereq::Icmpv6 } else { Prereq::Icmp };
                self.prereqs.push((prereq, key.to_string(), key_pos));
                let v = Some(Masked { value: parse_uint(text, 255).map_err(verr)? as u16, mask: 0xffff });
                if is_type {
                    self.m.tp_src = v;
                } else {
                    self.m.tp_dst = v;
                }
            }
            "tcp_flags" => {
                if packet && text.starts_with(['+', '-']) {
                    return Err(RuleError::new(
                        locate(0),
                        "`tcp_flags` of a packet takes an exact value (e.g. 0x002), not +flag/-flag",
                    ));
                }
                exact_only(text)?;
                self.claim("tcp_flags", key, key_pos)?;
                self.prereqs.push((Prereq::Tcp, key.to_string(), key_pos));
                self.m.tcp_flags = nonzero(parse_tcp_flags(text).map_err(verr)?, 0);
            }
            "arp_sha" | "arp_tha" => {
                exact_only(text)?;
                let sha = key == "arp_sha";
                self.claim(if sha { "arp_sha" } else { "arp_tha" }, key, key_pos)?;
                self.prereqs.push((Prereq::Arp, key.to_string(), key_pos));
                let mac = nonzero(parse_masked_mac(text).map_err(verr)?, [0; 6]);
                if sha {
                    self.m.arp_sha = mac;
                } else {
                    self.m.arp_tha = mac;
                }
            }
            _ => {
                return Err(RuleError::new(key_pos, format!("unknown or unsupported field `{key}`")));
            }
        }
        Ok(())
    }

    fn or_nw_tos(&mut self, value: u8, mask: u8) {
        let old = self.m.nw_tos.unwrap_or(Masked { value: 0, mask: 0 });
        self.m.nw_tos = nonzero(Masked { value: old.value | value, mask: old.mask | mask }, 0);
    }

    /// Checks the fields as a whole and returns the match. `end` is the position used for
    /// errors about something missing (e.g. a packet without `in_port`).
    pub(crate) fn finish(mut self, end: Position) -> Result<Match, RuleError> {
        self.m.vlan_tci = match (self.vlan_tci, self.vlan_vid, self.vlan_pcp) {
            (Some(tci), _, _) => nonzero(tci, 0),
            (None, Some(VlanVid::NoTag), Some((_, pcp_pos))) => {
                return Err(RuleError::new(
                    pcp_pos,
                    "`dl_vlan_pcp` conflicts with `dl_vlan=0xffff` (which matches packets without a VLAN tag)",
                ));
            }
            (None, Some(VlanVid::NoTag), None) => Some(Masked { value: 0, mask: 0xffff }),
            (None, Some(VlanVid::Vid(vid)), pcp) => Some(match pcp {
                Some((p, _)) => Masked { value: 0x1000 | vid | (u16::from(p) << 13), mask: 0xffff },
                None => Masked { value: 0x1000 | vid, mask: 0x1fff },
            }),
            (None, None, Some((p, _))) => Some(Masked { value: 0x1000 | (u16::from(p) << 13), mask: 0xf000 }),
            (None, None, None) => None,
        };
        for (prereq, key, pos) in &self.prereqs {
            if !prereq.holds(self.m.dl_type, self.m.nw_proto) {
                return Err(RuleError::new(*pos, format!("`{key}` requires a match on {}", prereq.describe())));
            }
        }
        if self.mode == Mode::Packet {
            if self.m.in_port.is_none() {
                return Err(RuleError::new(end, "a packet needs `in_port=N`"));
            }
            widen_to_exact(&mut self.m);
        }
        Ok(self.m)
    }
}

/// Turns every matched field into an exact match: a packet has every bit of a field it
/// has. Fields absent from the description stay `None` (zero in the packet).
fn widen_to_exact(m: &mut Match) {
    fn full<T>(f: &mut Option<Masked<T>>, all: T) {
        if let Some(x) = f {
            x.mask = all;
        }
    }
    full(&mut m.vlan_tci, 0xffff);
    full(&mut m.nw_tos, 0xff);
    full(&mut m.nw_frag, 0x03);
    full(&mut m.tcp_flags, TCP_FLAGS_ALL);
}

/// Whether `key` names a field this parser knows (for a better error on a missing value).
fn is_known_field(key: &str) -> bool {
    const KNOWN: &[&str] = &[
        "table",
        "priority",
        "cookie",
        "idle_timeout",
        "hard_timeout",
        "in_port",
        "dl_src",
        "eth_src",
        "dl_dst",
        "eth_dst",
        "dl_type",
        "eth_type",
        "dl_vlan",
        "dl_vlan_pcp",
        "vlan_tci",
        "nw_src",
        "ip_src",
        "nw_dst",
        "ip_dst",
        "arp_spa",
        "arp_tpa",
        "ipv6_src",
        "ipv6_dst",
        "nw_proto",
        "ip_proto",
        "arp_op",
        "nw_tos",
        "ip_dscp",
        "nw_ecn",
        "ip_ecn",
        "nw_ttl",
        "nw_frag",
        "ip_frag",
        "tp_src",
        "tp_dst",
        "tcp_src",
        "tcp_dst",
        "udp_src",
        "udp_dst",
        "sctp_src",
        "sctp_dst",
        "icmp_type",
        "icmp_code",
        "icmpv4_type",
        "icmpv4_code",
        "icmpv6_type",
        "icmpv6_code",
        "tcp_flags",
        "arp_sha",
        "arp_tha",
    ];
    KNOWN.contains(&key)
}

#[cfg(test)]
mod tests {
    use crate::rules::{Masked, Match, Position};
    use crate::{RuleError, parse_flow, parse_match, parse_packet};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The match of `fields,actions=drop`.
    fn m(fields: &str) -> Match {
        parse_flow(&format!("{fields},actions=drop")).unwrap_or_else(|e| panic!("{fields}: {e}")).matches
    }

    /// The error of `line`, as (column, reason).
    fn err(line: &str) -> (u32, String) {
        let e: RuleError = parse_flow(line).expect_err(line);
        assert_eq!(e.position.line, 1);
        (e.position.column, e.reason)
    }

    fn exact<T>(value: T, mask: T) -> Option<Masked<T>> {
        Some(Masked { value, mask })
    }

    #[test]
    fn shorthands() {
        for (name, dl_type, proto) in [
            ("ip", 0x0800, None),
            ("ipv6", 0x86dd, None),
            ("arp", 0x0806, None),
            ("tcp", 0x0800, Some(6)),
            ("udp", 0x0800, Some(17)),
            ("sctp", 0x0800, Some(132)),
            ("icmp", 0x0800, Some(1)),
            ("tcp6", 0x86dd, Some(6)),
            ("udp6", 0x86dd, Some(17)),
            ("sctp6", 0x86dd, Some(132)),
            ("icmp6", 0x86dd, Some(58)),
        ] {
            let got = m(name);
            assert_eq!((got.dl_type, got.nw_proto), (Some(dl_type), proto), "{name}");
        }
        // Consistent repetition is fine, as in OVS.
        assert_eq!(m("ip,tcp").nw_proto, Some(6));
        assert_eq!(m("tcp,dl_type=0x0800,nw_proto=6").nw_proto, Some(6));
        assert_eq!(m("eth_type=0x86dd,ip_proto=17"), m("udp6"));
    }

    #[test]
    fn conflicting_and_duplicate_fields() {
        assert_eq!(err("tcp,udp,actions=drop"), (5, "`udp` conflicts with `tcp` (nw_proto 17 vs 6)".into()));
        assert_eq!(err("ip,ipv6,actions=drop").0, 4);
        assert_eq!(err("ipv6,dl_type=0x0800,actions=drop").0, 6);
        assert_eq!(err("tcp,tcp,actions=drop"), (5, "duplicate field `tcp`".into()));
        assert_eq!(err("in_port=1,in_port=2,actions=drop"), (11, "duplicate field `in_port`".into()));
        assert_eq!(
            err("dl_type=0x800,eth_type=0x800,actions=drop"),
            (15, "`eth_type` sets the same field as `dl_type`".into())
        );
        assert_eq!(err("ip,nw_src=1.1.1.1,ip_src=1.1.1.1,actions=drop").0, 19);
        assert_eq!(err("arp,arp_spa=1.1.1.1,nw_src=1.1.1.1,actions=drop").0, 21);
        assert_eq!(err("ip,nw_tos=4,ip_dscp=1,actions=drop").0, 13);
        assert_eq!(err("dl_vlan=1,vlan_tci=0x1001,actions=drop").0, 11);
        assert_eq!(err("udp,tp_dst=1,udp_dst=1,actions=drop").0, 14);
        assert_eq!(err("icmp,icmp_type=1,icmpv4_type=1,actions=drop").0, 18);
        assert_eq!(err("priority=1,priority=1,actions=drop").0, 12);
        assert_eq!(err("arp,nw_proto=1,arp_op=1,actions=drop").0, 16);
    }

    #[test]
    fn in_port_and_ethernet() {
        assert_eq!(m("in_port=7").in_port, Some(7));
        assert_eq!(m("in_port=0xfeff").in_port, Some(0xfeff));
        assert_eq!(err("in_port=0,actions=drop").0, 9);
        assert_eq!(err("in_port=65280,actions=drop").0, 9);
        assert_eq!(err("in_port=LOCAL,actions=drop").0, 9);
        let mac = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
        assert_eq!(m("dl_src=00:11:22:33:44:55").dl_src, exact(mac, [0xff; 6]));
        assert_eq!(m("eth_dst=00:11:22:33:44:55").dl_dst, exact(mac, [0xff; 6]));
        assert_eq!(
            m("dl_dst=01:00:00:00:00:00/01:00:00:00:00:00").dl_dst,
            exact([1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0])
        );
        // A zero mask matches everything: the field is not matched at all.
        assert_eq!(m("dl_dst=01:00:00:00:00:00/00:00:00:00:00:00").dl_dst, None);
        assert_eq!(err("dl_src=00:11:22:33:44,actions=drop").0, 22);
        assert_eq!(m("dl_type=0x88cc").dl_type, Some(0x88cc));
        assert_eq!(m("eth_type=2048").dl_type, Some(0x0800));
        assert_eq!(err("dl_type=0x10000,actions=drop").0, 9);
    }

    #[test]
    fn vlan_fields() {
        assert_eq!(m("dl_vlan=10").vlan_tci, exact(0x100a, 0x1fff));
        assert_eq!(m("dl_vlan=0xffff").vlan_tci, exact(0, 0xffff));
        assert_eq!(m("dl_vlan_pcp=5").vlan_tci, exact(0xb000, 0xf000));
        assert_eq!(m("dl_vlan=10,dl_vlan_pcp=5").vlan_tci, exact(0xb00a, 0xffff));
        assert_eq!(m("dl_vlan_pcp=5,dl_vlan=10").vlan_tci, exact(0xb00a, 0xffff));
        assert_eq!(m("vlan_tci=0x1000/0x1000").vlan_tci, exact(0x1000, 0x1000));
        assert_eq!(m("vlan_tci=0").vlan_tci, exact(0, 0xffff));
        assert_eq!(err("dl_vlan=4096,actions=drop").0, 9);
        assert_eq!(err("dl_vlan_pcp=8,actions=drop").0, 13);
        assert_eq!(err("dl_vlan=0xffff,dl_vlan_pcp=1,actions=drop").0, 16);
    }

    #[test]
    fn ipv4_and_arp_addresses() {
        let got = m("ip,nw_src=10.1.0.0/16,nw_dst=192.168.1.1");
        assert_eq!(got.nw_src, exact(Ipv4Addr::new(10, 1, 0, 0), Ipv4Addr::new(255, 255, 0, 0)));
        assert_eq!(got.nw_dst, exact(Ipv4Addr::new(192, 168, 1, 1), Ipv4Addr::BROADCAST));
        assert_eq!(m("ip,ip_dst=10.0.0.0/255.0.0.255").nw_dst.unwrap().mask, Ipv4Addr::new(255, 0, 0, 255));
        assert_eq!(m("ip,nw_dst=10.0.0.0/0").nw_dst, None);
        assert_eq!(m("arp,nw_src=10.0.0.1").nw_src, m("arp,arp_spa=10.0.0.1").nw_src);
        assert_eq!(m("arp,arp_tpa=10.0.0.1").nw_dst.unwrap().value, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(m("arp,arp_op=2").nw_proto, Some(2));
        assert_eq!(m("arp,nw_proto=1").nw_proto, Some(1));
        let mac = [2, 0, 0, 0, 0, 1];
        assert_eq!(m("arp,arp_sha=02:00:00:00:00:01").arp_sha, exact(mac, [0xff; 6]));
        assert_eq!(
            m("arp,arp_tha=02:00:00:00:00:01/ff:ff:ff:00:00:00").arp_tha,
            exact([2, 0, 0, 0, 0, 0], [0xff, 0xff, 0xff, 0, 0, 0])
        );
        assert_eq!(err("ip,nw_dst=10.0.0.0/33,actions=drop").0, 20);
        assert_eq!(err("ip,nw_dst=10.0.0,actions=drop").0, 11);
        assert_eq!(err("arp,arp_op=256,actions=drop").0, 12);
    }

    #[test]
    fn ipv6_addresses() {
        let got = m("ipv6,ipv6_src=2001:db8::/32,ipv6_dst=::1");
        assert_eq!(got.ipv6_src.unwrap().mask, "ffff:ffff::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(got.ipv6_dst, exact(Ipv6Addr::LOCALHOST, Ipv6Addr::from(u128::MAX)));
        assert_eq!(err("ipv6,ipv6_src=2001:db8::/200,actions=drop").0, 26);
    }

    #[test]
    fn ip_header_fields() {
        assert_eq!(m("ip,nw_proto=47").nw_proto, Some(47));
        assert_eq!(m("ipv6,ip_proto=47").nw_proto, Some(47));
        assert_eq!(m("ip,nw_tos=184").nw_tos, exact(184, 0xfc));
        assert_eq!(m("ip,ip_dscp=46").nw_tos, exact(184, 0xfc));
        assert_eq!(m("ip,nw_ecn=3").nw_tos, exact(3, 0x03));
        assert_eq!(m("ip,ip_ecn=1,ip_dscp=46").nw_tos, exact(185, 0xff));
        assert_eq!(m("ipv6,nw_ttl=64").nw_ttl, Some(64));
        for (name, v, mask) in [("no", 0, 1), ("yes", 1, 1), ("first", 1, 3), ("later", 3, 3), ("not_later", 0, 2)] {
            assert_eq!(m(&format!("ip,nw_frag={name}")).nw_frag, exact(v, mask), "{name}");
        }
        assert_eq!(
            err("ip,nw_tos=185,actions=drop"),
            (11, "invalid `nw_tos`: 185 is not a multiple of 4 (its low two bits are ECN: use nw_ecn)".into())
        );
        assert_eq!(err("ip,ip_dscp=64,actions=drop").0, 12);
        assert_eq!(err("ip,nw_ecn=4,actions=drop").0, 11);
        assert_eq!(err("ip,nw_ttl=256,actions=drop").0, 11);
        assert_eq!(err("ip,nw_frag=maybe,actions=drop").0, 12);
        assert_eq!(err("ip,nw_proto=256,actions=drop").0, 13);
    }

    #[test]
    fn transport_fields() {
        assert_eq!(m("tcp,tp_dst=443").tp_dst, exact(443, 0xffff));
        assert_eq!(m("udp,tp_src=0x1000/0xf000").tp_src, exact(0x1000, 0xf000));
        assert_eq!(m("sctp6,tp_dst=1").tp_dst, exact(1, 0xffff));
        assert_eq!(m("tcp,tcp_dst=80"), m("tcp,tp_dst=80"));
        assert_eq!(m("udp,udp_src=53").tp_src, exact(53, 0xffff));
        assert_eq!(m("sctp,sctp_dst=9").tp_dst, exact(9, 0xffff));
        assert_eq!(m("tcp,tcp_flags=+syn-ack").tcp_flags, exact(0x002, 0x012));
        assert_eq!(m("tcp,tcp_flags=0x02/0x12").tcp_flags, exact(0x002, 0x012));
        assert_eq!(m("icmp,icmp_type=8,icmp_code=0").tp_src, exact(8, 0xffff));
        assert_eq!(m("icmp,icmp_type=8,icmp_code=0").tp_dst, exact(0, 0xffff));
        assert_eq!(m("icmp6,icmpv6_type=135,icmpv6_code=0").tp_src, exact(135, 0xffff));
        assert_eq!(err("tcp,tp_dst=65536,actions=drop").0, 12);
        assert_eq!(err("tcp,tp_dst=0x1000/0x10000,actions=drop").0, 19);
        assert_eq!(err("tcp,tcp_flags=+syn+bogus,actions=drop").0, 20);
        assert_eq!(err("icmp,icmp_type=256,actions=drop").0, 16);
    }

    #[test]
    fn prerequisites() {
        let cases = [
            ("tp_dst=80,actions=drop", 1, "`tp_dst` requires a match on tcp, udp or sctp (or tcp6, udp6, sctp6)"),
            ("ip,tp_dst=80,actions=drop", 4, "`tp_dst` requires a match on tcp, udp or sctp (or tcp6, udp6, sctp6)"),
            ("udp,tcp_dst=80,actions=drop", 5, "`tcp_dst` requires a match on tcp or tcp6"),
            ("tcp,udp_src=80,actions=drop", 5, "`udp_src` requires a match on udp or udp6"),
            ("tcp,sctp_src=80,actions=drop", 5, "`sctp_src` requires a match on sctp or sctp6"),
            ("nw_src=1.2.3.4,actions=drop", 1, "`nw_src` requires a match on ip or arp"),
            ("ipv6,nw_dst=1.2.3.4,actions=drop", 6, "`nw_dst` requires a match on ip or arp"),
            ("ip,ipv6_src=::1,actions=drop", 4, "`ipv6_src` requires a match on ipv6"),
            ("ipv6_dst=::1,actions=drop", 1, "`ipv6_dst` requires a match on ipv6"),
            ("ip,icmp_type=8,actions=drop", 4, "`icmp_type` requires a match on icmp"),
            ("icmp6,icmp_type=8,actions=drop", 7, "`icmp_type` requires a match on icmp"),
            ("icmp,icmpv6_code=0,actions=drop", 6, "`icmpv6_code` requires a match on icmp6"),
            ("ip,arp_op=1,actions=drop", 4, "`arp_op` requires a match on arp"),
            ("ip,arp_spa=1.2.3.4,actions=drop", 4, "`arp_spa` requires a match on arp"),
            ("arp_sha=00:00:00:00:00:01,actions=drop", 1, "`arp_sha` requires a match on arp"),
            ("ip,arp_tha=00:00:00:00:00:01,actions=drop", 4, "`arp_tha` requires a match on arp"),
            ("udp,tcp_flags=+syn,actions=drop", 5, "`tcp_flags` requires a match on tcp or tcp6"),
            ("nw_proto=6,actions=drop", 1, "`nw_proto` requires a match on ip, ipv6 or arp"),
            ("nw_tos=4,actions=drop", 1, "`nw_tos` requires a match on ip or ipv6"),
            ("arp,ip_dscp=4,actions=drop", 5, "`ip_dscp` requires a match on ip or ipv6"),
            ("nw_ecn=1,actions=drop", 1, "`nw_ecn` requires a match on ip or ipv6"),
            ("nw_ttl=1,actions=drop", 1, "`nw_ttl` requires a match on ip or ipv6"),
            ("nw_frag=yes,actions=drop", 1, "`nw_frag` requires a match on ip or ipv6"),
        ];
        for (line, column, reason) in cases {
            assert_eq!(err(line), (column, reason.to_string()), "{line}");
        }
        // Prerequisites do not depend on order.
        assert_eq!(m("tp_dst=80,tcp").tp_dst, exact(80, 0xffff));
        assert_eq!(m("tp_dst=80,dl_type=0x0800,nw_proto=6").tp_dst, exact(80, 0xffff));
    }

    #[test]
    fn rule_properties() {
        let r = parse_flow("table=3,priority=7,cookie=0xdead,idle_timeout=10,hard_timeout=60,actions=drop").unwrap();
        assert_eq!((r.table, r.priority, r.cookie, r.idle_timeout, r.hard_timeout), (3, 7, 0xdead, 10, 60));
        let r = parse_flow("actions=drop").unwrap();
        assert_eq!((r.table, r.priority, r.cookie, r.idle_timeout, r.hard_timeout), (0, 32768, 0, 0, 0));
        assert_eq!(r.matches, Match::default());
        // dump-flows counters are accepted and ignored.
        let r = parse_flow(
            "cookie=0x0, duration=1.5s, table=0, n_packets=3, n_bytes=180, idle_age=1, priority=5,ip actions=drop",
        );
        assert_eq!(r.unwrap().priority, 5);
        assert_eq!(err("table=255,actions=drop").0, 7);
        assert_eq!(err("priority=65536,actions=drop").0, 10);
        assert_eq!(err("idle_timeout=65536,actions=drop").0, 14);
        assert_eq!(err("hard_timeout=x,actions=drop").0, 14);
        assert_eq!(err("cookie=1/1,actions=drop").0, 9);
    }

    #[test]
    fn unknown_fields_and_syntax() {
        assert_eq!(err("in_port=1,tun_id=5,actions=drop"), (11, "unknown or unsupported field `tun_id`".into()));
        assert_eq!(err("in_port=1,rarp,actions=drop"), (11, "unknown or unsupported field `rarp`".into()));
        assert_eq!(err("in_port,actions=drop"), (1, "`in_port` needs a value (`in_port=...`)".into()));
        assert_eq!(err("tcp=1,actions=drop"), (1, "`tcp` is a shorthand and takes no value".into()));
        assert_eq!(err("in_port=1"), (10, "missing `actions=` (use `actions=drop` to drop)".into()));
        assert_eq!(err("in_port=1, =2,actions=drop").0, 12);
        assert_eq!(err("in_port=1,actions").0, 11);
        // Columns count characters, not bytes.
        assert_eq!(err("in_port=1,é=2,actions=drop"), (11, "unknown or unsupported field `é`".into()));
        assert_eq!(err("n_bytes=é,in_port=x,actions=drop").0, 19);
    }

    #[test]
    fn match_for_del_flows() {
        let spec = parse_match("table=2,priority=10,cookie=0x10/0xf0,tcp,tp_dst=80").unwrap();
        assert_eq!(spec.table, Some(2));
        assert_eq!(spec.priority, Some(10));
        assert_eq!(spec.cookie, exact(0x10, 0xf0));
        assert_eq!(spec.matches.tp_dst, exact(80, 0xffff));
        assert_eq!(parse_match("cookie=0x5/-1").unwrap().cookie, exact(5, u64::MAX));
        assert_eq!(parse_match("").unwrap(), Default::default());
        let e = parse_match("tcp,actions=drop").unwrap_err();
        assert_eq!(e.position, Position { line: 1, column: 5 });
        assert_eq!(parse_match("idle_timeout=5").unwrap_err().position.column, 1);
        assert_eq!(
            parse_match("tp_dst=5").unwrap_err().reason,
            "`tp_dst` requires a match on tcp, udp or sctp (or tcp6, udp6, sctp6)"
        );
    }

    #[test]
    fn packets_for_trace() {
        let p = parse_packet("in_port=1,tcp,nw_src=198.18.0.1,nw_dst=198.18.0.2,tp_dst=80").unwrap();
        assert_eq!(p.in_port, Some(1));
        assert_eq!(p.nw_src, exact(Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::BROADCAST));
        assert_eq!(p.tp_dst, exact(80, 0xffff));
        assert_eq!(p.tp_src, None);
        let p = parse_packet("in_port=1,dl_vlan=5,ip,ip_dscp=46,nw_frag=no,tcp,tcp_flags=0x002").unwrap();
        assert_eq!(p.vlan_tci, exact(0x1005, 0xffff));
        assert_eq!(p.nw_tos, exact(184, 0xff));
        assert_eq!(p.nw_frag, exact(0, 3));
        assert_eq!(p.tcp_flags, exact(2, 0xfff));
        let e = |s: &str| parse_packet(s).unwrap_err();
        assert_eq!(e("tcp,tp_dst=80").position.column, 14);
        assert_eq!(e("tcp,tp_dst=80").reason, "a packet needs `in_port=N`");
        assert_eq!(e("in_port=1,ip,nw_dst=10.0.0.0/8").position.column, 29);
        assert_eq!(e("in_port=1,tcp,tcp_flags=+syn").position.column, 25);
        assert_eq!(e("in_port=1,ip,nw_frag=yes").position.column, 22);
        assert_eq!(e("in_port=1,priority=5").position.column, 11);
        assert_eq!(e("in_port=1,tp_dst=80").position.column, 11);
        assert_eq!(e("in_port=1,actions=drop").position.column, 11);
    }
}
