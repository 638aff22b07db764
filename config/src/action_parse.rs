//! Parsing `ovs-ofctl` action lists into [`Action`]s, and checking them against the rule
//! they belong to.
//!
//! # Design
//!
//! Parsing is two steps, so that actions may come from one `actions=` string or from a
//! TOML array of strings and still be checked as one list:
//!
//! 1. [`parse_action_text`] turns text into [`ParsedAction`]s (the action, where it was,
//!    and the match prerequisite it needs, if any).
//! 2. [`check_actions`] checks the whole list against the rule's match and table and
//!    returns the final `Vec<Action>`.
//!
//! # Choices (compared with `ovs-ofctl add-flow` in Open vSwitch 3.1, OpenFlow 1.0)
//!
//! - The OpenFlow 1.0 actions `mod_nw_src`, `mod_tp_dst`, `mod_nw_tos`, `dec_ttl`...
//!   are accepted without a matching prerequisite, as OVS accepts them in OpenFlow 1.0
//!   (they only force OVS away from OpenFlow 1.1+); on a packet without that header they
//!   do nothing at run time.
//! - `set_field` is checked like OVS checks it at add time: the rule must match the
//!   field's prerequisites (e.g. `set_field:10.0.0.1->ip_dst` needs `ip`), and setting
//!   `vlan_vid`/`vlan_pcp` needs a present VLAN tag at that point: a match on one, or an
//!   earlier `push_vlan`/`mod_vlan_vid`/`mod_vlan_pcp` (not undone by `strip_vlan`), as
//!   OVS tracks it (`ofpacts_check`). Masked `set_field` is not supported.
//! - `drop` must be the only action; an empty list also means drop.
//! - `goto_table:T` must be the last action, may appear once, and T must be greater
//!   than the rule's table (the OpenFlow 1.1+ instruction rules OVS enforces).
//! - `resubmit` needs a port or a table; `in_port` as the resubmit port means "keep the
//!   current ingress port".
//! - Reserved ports: `IN_PORT`, `FLOOD`, `ALL`, `NORMAL`, `CONTROLLER` and `LOCAL` (any
//!   case, bare or after `output:`; `controller:N` and `controller(max_len=N)` send at
//!   most N bytes, the bare form the whole packet, as in OVS; `LOCAL` is the bridge's
//!   internal port, [`crate::ports::LOCAL_PORT`]); `TABLE` and `NONE` are refused:
//!   `TABLE` is for packet-outs only.

use std::sync::OnceLock;

use crate::field::{Access, PipelineField, Prereq};
use crate::flow_syntax::split_actions;
use crate::match_builder::Locate;
use crate::name_index::NameIndex;
use crate::rule_error::RuleError;
use crate::rules::{Action, Match, PacketField, Position, Resubmit, SetField, Subfield, SubfieldField};
use crate::values::{
    ValueError, parse_ipv4, parse_ipv6, parse_mac, parse_masked_wide_uint, parse_port_number, parse_uint,
    parse_wide_uint,
};

/// What a `set_field` needs from the rule's match before OVS accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActionPrereq {
    Match(Prereq),
    /// Both prerequisites (`move` between two packet fields).
    Match2(Prereq, Prereq),
    /// A match on a present VLAN tag (`dl_vlan=N`, `dl_vlan_pcp=P` or `vlan_tci=0x1000/0x1000`).
    VlanTag,
    /// A present VLAN tag and the match prerequisite (`move` between `vlan_pcp` and a
    /// packet field that has one).
    VlanTagAnd(Prereq),
}

/// Every action keyword the parser knows (reserved ports in any case; a bare number is
/// `output`). The parser refuses any other name before looking further, so an action
/// added without a name here cannot be reached, and the golden test of every action
/// (config/tests/as_loaded.rs) reads this list.
pub const ACTION_NAMES: [&str; 33] = [
    "output",
    "in_port",
    "flood",
    "all",
    "normal",
    "controller",
    "drop",
    "strip_vlan",
    "pop_vlan",
    "push_vlan",
    "mod_vlan_vid",
    "mod_vlan_pcp",
    "mod_dl_src",
    "mod_dl_dst",
    "mod_nw_src",
    "mod_nw_dst",
    "mod_nw_tos",
    "mod_nw_ecn",
    "mod_nw_ttl",
    "mod_tp_src",
    "mod_tp_dst",
    "dec_ttl",
    "set_field",
    "load",
    "move",
    "write_metadata",
    "resubmit",
    "goto_table",
    "group",
    "note",
    "clone",
    "clear_actions",
    "write_actions",
];

/// The packet fields `set_field` writes, by every name it takes (registers and the
/// metadata are `PipelineField`s). Like [`ACTION_NAMES`], the parser refuses others first.
pub const SET_FIELD_NAMES: [&str; 47] = [
    "in_port",
    "in_port_oxm",
    "eth_src",
    "dl_src",
    "eth_dst",
    "dl_dst",
    "vlan_vid",
    "dl_vlan",
    "vlan_pcp",
    "dl_vlan_pcp",
    "ip_src",
    "nw_src",
    "ip_dst",
    "nw_dst",
    "ipv6_src",
    "ipv6_dst",
    "ipv6_label",
    "ip_dscp",
    "nw_tos",
    "nw_ecn",
    "ip_ecn",
    "nw_ttl",
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
    "icmpv6_type",
    "icmpv6_code",
    "arp_op",
    "arp_spa",
    "arp_tpa",
    "arp_sha",
    "arp_tha",
    "nd_target",
    "nd_sll",
    "nd_tll",
    "nd_reserved",
    "nd_options_type",
    "mpls_label",
    "mpls_tc",
    "mpls_ttl",
];

/// One parsed action, before the list is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedAction<'a> {
    /// `None` for `drop`.
    pub action: Option<Action>,
    pub position: Position,
    /// The action's name as written (for errors).
    pub name: &'a str,
    pub prereq: Option<ActionPrereq>,
    /// The actions of `clone(...)`, checked with the list they are in.
    pub nested: Vec<ParsedAction<'a>>,
}

/// Parses one action list (`output:2,mod_vlan_vid:10`); `locate` maps byte offsets in
/// `text` to positions.
pub(crate) fn parse_action_text<'a>(text: &'a str, locate: Locate<'_>) -> Result<Vec<ParsedAction<'a>>, RuleError> {
    let pieces = split_actions(text, 0).map_err(|e| RuleError::new(locate(e.offset), e.reason))?;
    let mut out = Vec::with_capacity(pieces.len());
    for p in pieces {
        let position = locate(p.offset);
        let known = p.name.starts_with(|c: char| c.is_ascii_digit()) || known_action_name(p.name);
        if !known {
            return Err(unsupported(p.name, position));
        }
        let arg_at = |off: usize| locate(p.arg_offset + off);
        let verr = |e: ValueError| RuleError::new(arg_at(e.offset), format!("invalid `{}`: {}", p.name, e.reason));
        let arg = || p.arg.ok_or_else(|| RuleError::new(position, format!("`{}` needs an argument", p.name)));
        let simple = |a: Action| (Some(a), None);
        let (action, prereq) = match p.name {
            // `output(port=P,max_len=N)`, recognised as `ovs-ofctl` does (both words in it).
            "output" if arg()?.contains("port") && arg()?.contains("max_len") => {
                simple(parse_output_trunc(arg()?, &arg_at)?)
            }
            "output" => match reserved_port(arg()?) {
                Some(a) => simple(a.map_err(|r| RuleError::new(arg_at(0), r))?),
                // A port number (no field name starts with a digit: the usual case, told
                // apart before the field names are searched), a field (`output:reg0`,
                // `output:NXM_NX_REG0[0..15]`), else a port number.
                None if arg()?.starts_with(|c: char| c.is_ascii_digit()) && !arg()?.contains('[') => {
                    simple(Action::Output(parse_port_number(arg()?).map_err(verr)?))
                }
                None if arg()?.contains('[') || SubfieldField::by_name(arg()?).is_ok() => {
                    parse_output_reg(arg()?, &arg_at)?
                }
                None => simple(Action::Output(parse_port_number(arg()?).map_err(verr)?)),
            },
            name if p.arg.is_none() => match reserved_port(name) {
                Some(a) => simple(a.map_err(|r| RuleError::new(position, r))?),
                None => match name {
                    "drop" => (None, None),
                    "strip_vlan" | "pop_vlan" => simple(Action::StripVlan),
                    "dec_ttl" => simple(Action::DecTtl),
                    "clear_actions" => simple(Action::ClearActions),
                    _ if name.starts_with(|c: char| c.is_ascii_digit()) => {
                        let port = parse_port_number(name).map_err(|e| {
                            RuleError::new(locate(p.offset + e.offset), format!("invalid output port: {}", e.reason))
                        })?;
                        simple(Action::Output(port))
                    }
                    _ => return Err(unsupported(name, position)),
                },
            },
            "mod_dl_src" | "mod_dl_dst" => {
                let mac = parse_mac(arg()?).map_err(verr)?;
                simple(Action::Set(if p.name == "mod_dl_src" { SetField::DlSrc(mac) } else { SetField::DlDst(mac) }))
            }
            "mod_nw_src" | "mod_nw_dst" => {
                let ip = parse_ipv4(arg()?).map_err(verr)?;
                simple(Action::Set(if p.name == "mod_nw_src" { SetField::NwSrc(ip) } else { SetField::NwDst(ip) }))
            }
            "mod_nw_tos" => simple(Action::Set(SetField::IpDscp(parse_tos(arg()?).map_err(verr)?))),
            "mod_nw_ecn" => simple(Action::Set(SetField::NwEcn(parse_uint(arg()?, 3).map_err(verr)? as u8))),
            "mod_nw_ttl" => simple(Action::Set(SetField::NwTtl(parse_uint(arg()?, 255).map_err(verr)? as u8))),
            "mod_tp_src" | "mod_tp_dst" => {
                let port = parse_uint(arg()?, 0xffff).map_err(verr)? as u16;
                simple(Action::Set(if p.name == "mod_tp_src" { SetField::TpSrc(port) } else { SetField::TpDst(port) }))
            }
            "mod_vlan_vid" => simple(Action::ModVlanVid(parse_uint(arg()?, 0x0fff).map_err(verr)? as u16)),
            "mod_vlan_pcp" => simple(Action::ModVlanPcp(parse_uint(arg()?, 7).map_err(verr)? as u8)),
            "push_vlan" => {
                let tpid = parse_uint(arg()?, 0xffff).map_err(verr)? as u16;
                if tpid != 0x8100 && tpid != 0x88a8 {
                    return Err(RuleError::new(
                        arg_at(0),
                        format!("invalid `push_vlan`: TPID 0x{tpid:04x} is not 0x8100 or 0x88a8"),
                    ));
                }
                simple(Action::PushVlan(tpid))
            }
            "set_field" => {
                if let Some(loads) = parse_pipeline_set_field(arg()?, &arg_at)? {
                    out.extend(loads.into_iter().map(|a| ParsedAction {
                        action: Some(a),
                        position,
                        name: p.name,
                        prereq: None,
                        nested: Vec::new(),
                    }));
                    continue;
                }
                match parse_set_field(arg()?, &arg_at)? {
                    Some((set, prereq)) => (Some(Action::Set(set)), prereq),
                    None => {
                        let (load, prereq) = parse_packet_set_field(arg()?, &arg_at)?;
                        (Some(load), prereq)
                    }
                }
            }
            "load" => {
                let (actions, prereq) = parse_load(arg()?, &arg_at)?;
                out.extend(actions.into_iter().map(|a| ParsedAction {
                    action: Some(a),
                    position,
                    name: p.name,
                    prereq,
                    nested: Vec::new(),
                }));
                continue;
            }
            "move" => {
                let (action, prereq) = parse_move(arg()?, &arg_at)?;
                (Some(action), prereq)
            }
            "note" => simple(Action::Note(parse_note(p.arg.unwrap_or("")).map_err(verr)?)),
            "clone" | "write_actions" => {
                let nested = parse_action_text(arg()?, &|off| arg_at(off))?;
                let action =
                    if p.name == "clone" { Action::Clone(Vec::new()) } else { Action::WriteActions(Vec::new()) };
                out.push(ParsedAction { action: Some(action), position, name: p.name, prereq: None, nested });
                continue;
            }
            "write_metadata" => {
                let m = parse_masked_wide_uint(arg()?, u128::from(u64::MAX)).map_err(verr)?;
                simple(Action::WriteMetadata { value: m.value as u64, mask: m.mask as u64 })
            }
            "resubmit" => simple(Action::Resubmit(parse_resubmit(arg()?, &arg_at, position)?)),
            "goto_table" => simple(Action::GotoTable(parse_uint(arg()?, 254).map_err(verr)? as u8)),
            // OFPG_MAX = 0xffffff00: the larger ids are reserved (ALL, ANY).
            "group" => simple(Action::Group(parse_uint(arg()?, 0xffff_ff00).map_err(verr)? as u32)),
            name if name.eq_ignore_ascii_case("controller") => {
                let a = arg()?;
                let (n, at) = match a.strip_prefix("max_len=") {
                    Some(n) => (n, 8),
                    None if a.contains('=') => {
                        return Err(RuleError::new(
                            arg_at(0),
                            "`controller(...)` supports only `max_len=N` (no reason, userdata or controller id)",
                        ));
                    }
                    None => (a, 0),
                };
                let max_len = parse_uint(n, 0xffff).map_err(|e| {
                    RuleError::new(arg_at(at + e.offset), format!("invalid `controller`: {}", e.reason))
                })?;
                simple(Action::Controller { max_len: max_len as u16 })
            }
            name => return Err(unsupported(name, position)),
        };
        out.push(ParsedAction { action, position, name: p.name, prereq, nested: Vec::new() });
    }
    Ok(out)
}

/// `port=P,max_len=N` (either order) of `output(...)`: `P` a port number, `LOCAL` or
/// `IN_PORT` (`ovs-ofctl` refuses the other reserved ports), `N` at least 14.
fn parse_output_trunc(arg: &str, arg_at: &dyn Fn(usize) -> Position) -> Result<Action, RuleError> {
    let (mut port, mut max_len) = (None, None);
    let mut at = 0;
    for kv in arg.split(',') {
        let bad = |off: usize, reason: String| RuleError::new(arg_at(at + off), format!("invalid `output`: {reason}"));
        match kv.split_once('=') {
            Some(("port", v)) => {
                port = Some(if v.eq_ignore_ascii_case("in_port") {
                    crate::rules::OUTPUT_TRUNC_IN_PORT
                } else {
                    crate::values::parse_port_number(v).map_err(|e| bad(5 + e.offset, e.reason))?
                })
            }
            Some(("max_len", v)) => {
                let n = parse_uint(v, u64::from(u32::MAX)).map_err(|e| bad(8 + e.offset, e.reason))? as u32;
                if n < crate::rules::OUTPUT_TRUNC_MIN_LEN {
                    return Err(bad(8, format!("max_len {n} is less than the minimum value 14")));
                }
                max_len = Some(n);
            }
            _ => return Err(bad(0, format!("`{kv}` is not `port=P` or `max_len=N`"))),
        }
        at += kv.len() + 1;
    }
    match (port, max_len) {
        (Some(port), Some(max_len)) => Ok(Action::OutputTrunc { port, max_len }),
        _ => Err(RuleError::new(arg_at(0), "`output(...)` needs `port=P` and `max_len=N`")),
    }
}

fn unsupported(name: &str, position: Position) -> RuleError {
    RuleError::new(position, format!("unknown or unsupported action `{name}`"))
}

/// Reserved port names usable as actions: `Some(Ok(action))`, `Some(Err(reason))` for
/// a reserved port ferrovs does not have, `None` for anything else.
fn reserved_port(name: &str) -> Option<Result<Action, String>> {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("in_port") {
        Some(Ok(Action::InPort))
    } else if is("flood") {
        Some(Ok(Action::Flood))
    } else if is("all") {
        Some(Ok(Action::All))
    } else if is("normal") {
        Some(Ok(Action::Normal))
    } else if is("controller") {
        Some(Ok(Action::Controller { max_len: u16::MAX }))
    } else if is("local") {
        Some(Ok(Action::Output(crate::ports::LOCAL_PORT)))
    } else if is("table") || is("none") || is("any") {
        Some(Err(format!("reserved port `{name}` is not supported in a rule")))
    } else {
        None
    }
}

/// Whether `name` is one of [`ACTION_NAMES`] or a reserved port ferrovs lacks (refused
/// later with its own reason), without case, in one probe of an index of them.
fn known_action_name(name: &str) -> bool {
    static INDEX: OnceLock<NameIndex<()>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        NameIndex::new(["local", "table", "none", "any"].into_iter().chain(ACTION_NAMES).map(|n| (n, ())), true)
    });
    index.get(name).is_some()
}

/// A TOS byte whose ECN bits are zero, as the six-bit DSCP.
fn parse_tos(s: &str) -> Result<u8, ValueError> {
    let v = parse_uint(s, 255)? as u8;
    if v & 0x03 != 0 {
        return Err(ValueError::new(0, format!("{s} is not a multiple of 4 (the TOS byte's low two bits are ECN)")));
    }
    Ok(v >> 2)
}

/// `VALUE->FIELD`: `None` for a field of [`SET_FIELD_NAMES`] that no [`SetField`]
/// writes (see [`parse_packet_set_field`]).
fn parse_set_field(
    arg: &str,
    arg_at: &dyn Fn(usize) -> Position,
) -> Result<Option<(SetField, Option<ActionPrereq>)>, RuleError> {
    let Some((value, field)) = arg.split_once("->") else {
        return Err(RuleError::new(arg_at(0), "`set_field` must be written `set_field:VALUE->FIELD`"));
    };
    let field_at = arg_at(value.len() + 2);
    if let Some(slash) = value.find('/') {
        return Err(RuleError::new(arg_at(slash), "a masked `set_field` is not supported"));
    }
    if !SET_FIELD_NAMES.contains(&field) {
        return Err(RuleError::new(field_at, format!("`set_field` of field `{field}` is not supported")));
    }
    let verr = |e: ValueError| RuleError::new(arg_at(e.offset), format!("invalid value for `{field}`: {}", e.reason));
    use ActionPrereq::{Match as M, VlanTag};
    let set = match field {
        "eth_src" | "dl_src" => (SetField::DlSrc(parse_mac(value).map_err(verr)?), None),
        "eth_dst" | "dl_dst" => (SetField::DlDst(parse_mac(value).map_err(verr)?), None),
        "vlan_vid" => {
            // OpenFlow 1.2+ writes the VID with the "present" bit 0x1000; accept both.
            let v = parse_uint(value, 0x1fff).map_err(verr)? as u16;
            (SetField::VlanVid(v & 0x0fff), Some(VlanTag))
        }
        "dl_vlan" => (SetField::VlanVid(parse_uint(value, 0x0fff).map_err(verr)? as u16), Some(VlanTag)),
        "vlan_pcp" | "dl_vlan_pcp" => (SetField::VlanPcp(parse_uint(value, 7).map_err(verr)? as u8), Some(VlanTag)),
        "ip_src" | "nw_src" => (SetField::NwSrc(parse_ipv4(value).map_err(verr)?), Some(M(Prereq::Ip))),
        "ip_dst" | "nw_dst" => (SetField::NwDst(parse_ipv4(value).map_err(verr)?), Some(M(Prereq::Ip))),
        "ipv6_src" => (SetField::Ipv6Src(parse_ipv6(value).map_err(verr)?), Some(M(Prereq::Ipv6))),
        "ipv6_dst" => (SetField::Ipv6Dst(parse_ipv6(value).map_err(verr)?), Some(M(Prereq::Ipv6))),
        "ipv6_label" => (SetField::Ipv6Label(parse_uint(value, 0xfffff).map_err(verr)? as u32), Some(M(Prereq::Ipv6))),
        "ip_dscp" => (SetField::IpDscp(parse_uint(value, 63).map_err(verr)? as u8), Some(M(Prereq::IpAny))),
        "nw_tos" => (SetField::IpDscp(parse_tos(value).map_err(verr)?), Some(M(Prereq::IpAny))),
        "nw_ecn" | "ip_ecn" => (SetField::NwEcn(parse_uint(value, 3).map_err(verr)? as u8), Some(M(Prereq::IpAny))),
        "nw_ttl" => (SetField::NwTtl(parse_uint(value, 255).map_err(verr)? as u8), Some(M(Prereq::IpAny))),
        "tp_src" | "tp_dst" | "tcp_src" | "tcp_dst" | "udp_src" | "udp_dst" | "sctp_src" | "sctp_dst" => {
            let port = parse_uint(value, 0xffff).map_err(verr)? as u16;
            let prereq = match field.split('_').next() {
                Some("tcp") => Prereq::Tcp,
                Some("udp") => Prereq::Udp,
                Some("sctp") => Prereq::Sctp,
                _ => Prereq::L4,
            };
            let set = if field.ends_with("src") { SetField::TpSrc(port) } else { SetField::TpDst(port) };
            (set, Some(M(prereq)))
        }
        _ => return Ok(None),
    };
    Ok(Some(set))
}

/// `note:HH.HH...` (hex byte pairs, dots optional): the bytes, zero-padded as `ovs-ofctl`
/// encodes them (the Nicira action is 10 bytes plus the note, rounded up to 8).
fn parse_note(text: &str) -> Result<Vec<u8>, ValueError> {
    let mut bytes = Vec::new();
    let digits: Vec<(usize, char)> = text.char_indices().filter(|&(_, c)| c != '.').collect();
    for pair in digits.chunks(2) {
        let [(at, hi), (_, lo)] = pair else {
            return Err(ValueError::new(pair[0].0, "a note is pairs of hex digits (`note:01.02`)"));
        };
        match (hi.to_digit(16), lo.to_digit(16)) {
            (Some(h), Some(l)) => bytes.push((h * 16 + l) as u8),
            _ => return Err(ValueError::new(*at, format!("`{hi}{lo}` is not a hex byte"))),
        }
    }
    let padded = (10 + bytes.len()).div_ceil(8) * 8 - 10;
    bytes.resize(padded, 0);
    Ok(bytes)
}

/// `NAME[]`, `NAME[BIT]`, `NAME[START..END]` or a bare `NAME` (the whole field).
fn parse_subfield(text: &str, at: &dyn Fn(usize) -> Position) -> Result<Subfield, RuleError> {
    let (name, range) = match text.find('[') {
        Some(i) => {
            let Some(inner) = text[i + 1..].strip_suffix(']') else {
                return Err(RuleError::new(at(i), format!("`{text}`: missing `]`")));
            };
            (&text[..i], Some((inner, i + 1)))
        }
        None => (text, None),
    };
    let field = SubfieldField::by_name(name).map_err(|r| RuleError::new(at(0), r))?;
    let width = field.width();
    let (start, end) = match range {
        None | Some(("", _)) => (0, width - 1),
        Some((r, off)) => {
            let bit = |t: &str, o: usize| {
                parse_uint(t, u64::from(u16::MAX)).map(|v| v as u16).map_err(|e| {
                    RuleError::new(at(off + o + e.offset), format!("invalid bit in `{text}`: {}", e.reason))
                })
            };
            match r.split_once("..") {
                Some((a, b)) => (bit(a, 0)?, bit(b, a.len() + 2)?),
                None => {
                    let b = bit(r, 0)?;
                    (b, b)
                }
            }
        }
    };
    if end >= width {
        return Err(RuleError::new(
            at(0),
            format!("`{text}`: ending bit {end} is not valid because the field is only {width} bits wide"),
        ));
    }
    if start > end {
        return Err(RuleError::new(at(0), format!("`{text}`: starting bit {start} is after ending bit {end}")));
    }
    Ok(Subfield { field, ofs: start, n_bits: end - start + 1 })
}

/// A destination of `load`/`move`: a packet field only if ferrovs can write it.
fn check_writable(dst: Subfield, text: &str, at: Position) -> Result<(), RuleError> {
    let SubfieldField::Packet(p) = dst.field else { return Ok(()) };
    let nxm = p.def().nxm;
    match p.def().access {
        Access::ReadWrite => Ok(()),
        Access::ReadOnly => Err(RuleError::new(at, format!("`{text}`: {nxm} is read-only"))),
    }
}

/// What a `load`/`set_field` into `dst` (`write`) or a use of it as a `move` operand or
/// an `output` port needs from the rule: the field's match prerequisite, and a present
/// VLAN tag for `vlan_pcp` (OVS's prerequisite of the field) and for a `load` or
/// `set_field` of `vlan_vid` (OVS's check of a set-field).
fn operand_prereq(f: SubfieldField, write: bool) -> Option<ActionPrereq> {
    match f {
        SubfieldField::Packet(PacketField::VlanPcp) => Some(ActionPrereq::VlanTag),
        SubfieldField::Packet(PacketField::VlanVid) if write => Some(ActionPrereq::VlanTag),
        f => f.prereq().map(ActionPrereq::Match),
    }
}

/// The neighbour-discovery slots a `load`/`set_field`/`move`/`output:SRC` reads or
/// writes: OVS checks their ICMPv6 type and code prerequisite (`is_nd`) against the match.
fn nd_operands(a: &Action) -> impl Iterator<Item = crate::field::MatchSlot> {
    let (x, y) = match *a {
        Action::Load { dst, .. } => (Some(dst.field), None),
        Action::Move { src, dst } => (Some(src.field), Some(dst.field)),
        Action::OutputReg(src) => (Some(src.field), None),
        _ => (None, None),
    };
    [x, y].into_iter().flatten().filter_map(|f| match f {
        SubfieldField::Packet(p) if p.is_nd() => Some(p.def().slot),
        _ => None,
    })
}

/// `output:SRC[...]`: the port number read from a register or field when the action
/// runs (Nicira's `NXAST_OUTPUT_REG`). At most 64 bits, as OVS's encoding carries: a
/// wider source `ovs-ofctl` loads as another range of bits.
fn parse_output_reg(
    arg: &str,
    arg_at: &dyn Fn(usize) -> Position,
) -> Result<(Option<Action>, Option<ActionPrereq>), RuleError> {
    let src = parse_subfield(arg, arg_at)?;
    if src.n_bits > 64 {
        return Err(RuleError::new(
            arg_at(0),
            format!("`output:{arg}`: a port read from more than 64 bits is not supported (OVS loads another range)"),
        ));
    }
    Ok((Some(Action::OutputReg(src)), operand_prereq(src.field, false)))
}

/// `set_field:VALUE->FIELD` of a packet field of [`SET_FIELD_NAMES`] that only `load`
/// names in ferrovs's model (ICMP type and code, the ARP and neighbour-discovery fields):
/// a whole-field load printed as a set-field.
fn parse_packet_set_field(
    arg: &str,
    arg_at: &dyn Fn(usize) -> Position,
) -> Result<(Action, Option<ActionPrereq>), RuleError> {
    let (value, name) = arg.split_once("->").expect("checked by parse_set_field");
    let field_at = arg_at(value.len() + 2);
    let unsupported = || RuleError::new(field_at, format!("`set_field` of field `{name}` is not supported"));
    let def = crate::field::PACKET_FIELDS.iter().find(|d| d.names.first() == Some(&name)).ok_or_else(unsupported)?;
    let dst = Subfield { field: SubfieldField::Packet(def.field), ofs: 0, n_bits: def.width };
    check_writable(dst, name, field_at)?;
    let written_by_the_translator =
        def.field.is_arp() || def.field.is_in_port() || def.field.is_mpls() || def.field.is_nd();
    if def.field.set_field(0).is_none() && !written_by_the_translator {
        return Err(unsupported());
    }
    let bad =
        |offset: usize, reason: String| RuleError::new(arg_at(offset), format!("invalid value for `{name}`: {reason}"));
    let v = if def.field.is_in_port() {
        in_port_value(def.field, value).map_err(|e| bad(e.offset, e.reason))?
    } else {
        match crate::field::field_by_name(name) {
            // Addresses (the ARP and ND ones) in their own notation, as the match field reads
            // them; exact values only (a masked `set_field` is refused above).
            Some(f)
                if matches!(
                    f.kind,
                    crate::field::ValueKind::Ipv4 | crate::field::ValueKind::Ipv6 | crate::field::ValueKind::Ethernet
                ) =>
            {
                match crate::field_value::parse_field_value(f, name, value, false) {
                    Ok(m) => m.value,
                    Err(crate::field_value::ParseFailure::Value(e)) => return Err(bad(e.offset, e.reason)),
                    Err(crate::field_value::ParseFailure::Whole(m)) => return Err(bad(0, m)),
                }
            }
            _ => u128::from(parse_uint(value, (1u64 << def.width) - 1).map_err(|e| bad(e.offset, e.reason))?),
        }
    };
    Ok((Action::Load { dst, value: v, set_field: true }, operand_prereq(dst.field, true)))
}

/// The value of `set_field:VALUE->in_port` / `->in_port_oxm`: a port number or `LOCAL`,
/// in the field's own numbering (`LOCAL` is 0xfffe in `in_port`, 0xfffffffe in
/// `in_port_oxm`). As in `ovs-ofctl`, a number of `in_port_oxm` is an OpenFlow 1.0 one
/// (below 0x10000) or an OpenFlow 1.1 reserved port (0xffffff00 and up).
fn in_port_value(field: PacketField, text: &str) -> crate::values::ValueResult<u128> {
    let port = if text.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        crate::values::parse_port_number(text)?
    } else {
        match parse_uint(text, u64::from(u32::MAX))? as u32 {
            n @ 0..=0xffff => crate::ports::port_from_16(n),
            n @ 0xffff_ff00.. if field == PacketField::InPortOxm => crate::ports::port_from_16(n & 0xffff),
            _ => return Err(crate::values::ValueError::new(0, format!("port {text} is out of range"))),
        }
    };
    Ok(field.in_port_value(port).expect("an in_port field"))
}

/// `load:VALUE->DST`: the actions and the prerequisite of a packet field. A load of
/// more than 64 bits is two loads, low bits first, as `ovs-ofctl` encodes it (Nicira's
/// `NXAST_REG_LOAD` carries 64 bits).
fn parse_load(arg: &str, arg_at: &dyn Fn(usize) -> Position) -> Result<(Vec<Action>, Option<ActionPrereq>), RuleError> {
    let Some((value, dst_text)) = arg.split_once("->") else {
        return Err(RuleError::new(arg_at(0), "`load` must be written `load:VALUE->DST[...]`"));
    };
    let dst_off = value.len() + 2;
    let dst = parse_subfield(dst_text, &|o| arg_at(dst_off + o))?;
    check_writable(dst, dst_text, arg_at(dst_off))?;
    let v = parse_wide_uint(value, u128::MAX)
        .map_err(|e| RuleError::new(arg_at(e.offset), format!("invalid `load` value: {}", e.reason)))?;
    if dst.n_bits < 128 && v >> dst.n_bits != 0 {
        return Err(RuleError::new(arg_at(0), format!("value {value} does not fit into {} bits", dst.n_bits)));
    }
    let mut loads = Vec::new();
    let mut done = 0u16;
    while done < dst.n_bits {
        let n = (dst.n_bits - done).min(64);
        let part = Subfield { field: dst.field, ofs: dst.ofs + done, n_bits: n };
        let value = (v >> done) & ((1u128 << n) - 1);
        loads.push(Action::Load { dst: part, value, set_field: false });
        done += n;
    }
    Ok((loads, operand_prereq(dst.field, true)))
}

/// `move:SRC->DST`: the action and the prerequisites of its packet fields.
fn parse_move(arg: &str, arg_at: &dyn Fn(usize) -> Position) -> Result<(Action, Option<ActionPrereq>), RuleError> {
    let Some((src_text, dst_text)) = arg.split_once("->") else {
        return Err(RuleError::new(arg_at(0), "`move` must be written `move:SRC[...]->DST[...]`"));
    };
    let src = parse_subfield(src_text, arg_at)?;
    let dst_off = src_text.len() + 2;
    let dst = parse_subfield(dst_text, &|o| arg_at(dst_off + o))?;
    check_writable(dst, dst_text, arg_at(dst_off))?;
    if src.n_bits != dst.n_bits {
        return Err(RuleError::new(
            arg_at(0),
            format!("`move`: source has {} bits and destination {} bits", src.n_bits, dst.n_bits),
        ));
    }
    use ActionPrereq::{Match, Match2, VlanTag, VlanTagAnd};
    let prereq = match (operand_prereq(src.field, false), operand_prereq(dst.field, false)) {
        (Some(Match(a)), Some(Match(b))) => Some(Match2(a, b)),
        (Some(VlanTag), Some(Match(a))) | (Some(Match(a)), Some(VlanTag)) => Some(VlanTagAnd(a)),
        (a, None) | (None, a) => a,
        (a, _) => a,
    };
    Ok((Action::Move { src, dst }, prereq))
}

/// `set_field:VALUE[/MASK]->FIELD` of a register or the metadata, as `ovs-ofctl` reads
/// it: without a mask (or a full one) one whole-field set-field; with a mask, one `load`
/// per run of consecutive mask bits. `None` if FIELD is not a pipeline field.
fn parse_pipeline_set_field(arg: &str, arg_at: &dyn Fn(usize) -> Position) -> Result<Option<Vec<Action>>, RuleError> {
    let Some((value, name)) = arg.split_once("->") else { return Ok(None) };
    let Some(pf) = PipelineField::by_name(name) else { return Ok(None) };
    let field = match pf {
        PipelineField::Reg(n) => SubfieldField::Reg(n),
        PipelineField::Xreg(n) => SubfieldField::Xreg(n),
        PipelineField::Xxreg(n) => SubfieldField::Xxreg(n),
        PipelineField::Metadata => SubfieldField::Metadata,
    };
    let width = field.width();
    let all = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
    let m = parse_masked_wide_uint(value, all)
        .map_err(|e| RuleError::new(arg_at(e.offset), format!("invalid value for `{name}`: {}", e.reason)))?;
    let whole = Subfield { field, ofs: 0, n_bits: width };
    if m.mask == all {
        return Ok(Some(vec![Action::Load { dst: whole, value: m.value, set_field: true }]));
    }
    let mut loads = Vec::new();
    let mut rest = m.mask;
    while rest != 0 {
        let ofs = rest.trailing_zeros();
        let n = (rest >> ofs).trailing_ones();
        let dst = Subfield { field, ofs: ofs as u16, n_bits: n as u16 };
        loads.push(Action::Load { dst, value: (m.value & dst.bits()) >> ofs, set_field: false });
        rest &= !dst.bits();
    }
    Ok(Some(loads))
}

/// `PORT`, `PORT,TABLE`, `,TABLE` (`in_port` as PORT means the current ingress port).
fn parse_resubmit(arg: &str, arg_at: &dyn Fn(usize) -> Position, position: Position) -> Result<Resubmit, RuleError> {
    let (port_text, table_text) = match arg.split_once(',') {
        Some((p, t)) => (p, Some(t)),
        None => (arg, None),
    };
    let in_port = match port_text {
        "" => None,
        p if p.eq_ignore_ascii_case("in_port") => None,
        p => Some(
            parse_port_number(p)
                .map_err(|e| RuleError::new(arg_at(e.offset), format!("invalid `resubmit` port: {}", e.reason)))?,
        ),
    };
    let table = match table_text {
        None | Some("") => None,
        Some(t) => {
            let off = port_text.len() + 1;
            Some(parse_uint(t, 254).map_err(|e| {
                RuleError::new(arg_at(off + e.offset), format!("invalid `resubmit` table: {}", e.reason))
            })? as u8)
        }
    };
    if in_port.is_none() && table.is_none() {
        return Err(RuleError::new(position, "`resubmit` needs a port or a table"));
    }
    Ok(Resubmit { in_port, table })
}

/// Checks a whole action list against the rule's match and table.
pub(crate) fn check_actions(parsed: Vec<ParsedAction<'_>>, m: &Match, table: u8) -> Result<Vec<Action>, RuleError> {
    check_list(parsed, m, table, &mut crate::rules::VlanTags::of_match(m), Nest::Rule)
}

/// Which list [`check_list`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nest {
    /// A rule's: actions, then the instructions in OpenFlow 1.1+ order.
    Rule,
    /// A `clone`'s: actions only.
    Clone,
    /// A `write_actions`': actions allowed in the action set only (not `note` or `clone`,
    /// which OVS refuses there).
    ActionSet,
}

/// The OpenFlow 1.1+ instructions in the order a rule must give them (after its plain
/// actions, stage 0), as `ovs-ofctl` enforces it.
const INSTRUCTIONS: [&str; 5] = ["actions", "clear_actions", "write_actions", "write_metadata", "goto_table"];

fn instruction_stage(a: &Action) -> usize {
    match a {
        Action::ClearActions => 1,
        Action::WriteActions(_) => 2,
        Action::WriteMetadata { .. } => 3,
        Action::GotoTable(_) => 4,
        _ => 0,
    }
}

/// [`check_actions`] of one list (see [`Nest`]). `tagged`: what is known of the packet's
/// VLAN tags at the start of the list (updated to its end).
fn check_list(
    parsed: Vec<ParsedAction<'_>>,
    m: &Match,
    table: u8,
    tagged: &mut crate::rules::VlanTags,
    nest: Nest,
) -> Result<Vec<Action>, RuleError> {
    if let Some(drop) = parsed.iter().find(|a| a.action.is_none()) {
        if parsed.len() > 1 {
            return Err(RuleError::new(drop.position, "`drop` cannot be combined with other actions"));
        }
        return Ok(Vec::new());
    }
    let count = parsed.len();
    let mut actions = Vec::with_capacity(count);
    let mut stage = 0;
    for (i, p) in parsed.into_iter().enumerate() {
        let action = p.action.expect("drop handled above");
        let this = instruction_stage(&action);
        if nest != Nest::Rule && this > 0 {
            let inside = if nest == Nest::Clone { "clone" } else { "write_actions" };
            return Err(RuleError::new(p.position, format!("`{}` is an instruction: not inside `{inside}`", p.name)));
        }
        // OVS 3.1 refuses `output:SRC` and `output(port=P,max_len=N)` in the action set too
        // ("disallowed action in action set").
        if nest == Nest::ActionSet
            && matches!(action, Action::Note(_) | Action::Clone(_) | Action::OutputReg(_) | Action::OutputTrunc { .. })
        {
            return Err(RuleError::new(p.position, format!("`{}` is not allowed in the action set", p.name)));
        }
        if let Action::GotoTable(t) = action {
            if i + 1 != count {
                return Err(RuleError::new(p.position, "`goto_table` must be the last action"));
            }
            if t <= table {
                return Err(RuleError::new(
                    p.position,
                    format!("`goto_table:{t}` must go to a table after this rule's table {table}"),
                ));
            }
        }
        if this > 0 && this == stage {
            return Err(RuleError::new(p.position, format!("`{}` may appear only once", p.name)));
        }
        if this < stage {
            let reason = if stage == 3 && this == 0 {
                format!("`{}` after `write_metadata`: only `goto_table` may follow it (instruction order)", p.name)
            } else {
                format!(
                    "`{}` after `{}`: the order is {} (instruction order)",
                    p.name,
                    INSTRUCTIONS[stage],
                    INSTRUCTIONS.join(", ")
                )
            };
            return Err(RuleError::new(p.position, reason));
        }
        stage = this;
        let unmet = match p.prereq {
            Some(ActionPrereq::Match(a) | ActionPrereq::VlanTagAnd(a)) => [Some(a), None],
            Some(ActionPrereq::Match2(a, b)) => [Some(a), Some(b)],
            _ => [None, None],
        };
        if let Some(pr) = unmet.into_iter().flatten().find(|pr| !pr.holds(m.dl_type, m.nw_proto)) {
            return Err(RuleError::new(
                p.position,
                format!("`{}` of this field requires the rule to match on {}", p.name, pr.describe()),
            ));
        }
        if let Some(slot) = nd_operands(&action).find(|s| !s.nd_type_holds(m)) {
            let types = slot.nd_icmp_types().expect("an ND slot").iter().map(|t| format!("icmp_type={t}"));
            return Err(RuleError::new(
                p.position,
                format!(
                    "`{}` of a neighbour-discovery field requires the rule to match on {} (and icmp_code \
                     absent or 0), as Open vSwitch requires",
                    p.name,
                    types.collect::<Vec<_>>().join(" or ")
                ),
            ));
        }
        if matches!(p.prereq, Some(ActionPrereq::VlanTag | ActionPrereq::VlanTagAnd(_))) && !tagged.tagged() {
            return Err(RuleError::new(
                p.position,
                format!(
                    "`{}` of a VLAN field requires a VLAN tag: match on one (e.g. dl_vlan=N) or \
                     push one first (push_vlan, mod_vlan_vid, mod_vlan_pcp)",
                    p.name
                ),
            ));
        }
        tagged.apply(&action).map_err(|why| RuleError::new(p.position, format!("`{}`: {why}", p.name)))?;
        let action = match action {
            // The clone runs on a copy: what it does to the tag is undone after it. So does
            // OVS's check of a `write_actions` (which runs at the pipeline's end, in another
            // order, so its tag changes cannot be followed).
            Action::Clone(_) => Action::Clone(check_list(p.nested, m, table, &mut tagged.to_owned(), Nest::Clone)?),
            Action::WriteActions(_) => {
                let set = check_list(p.nested, m, table, &mut tagged.to_owned(), Nest::ActionSet)?;
                if set.is_empty() {
                    // `write_actions()` / `write_actions(drop)` adds nothing: OVS holds none.
                    continue;
                }
                Action::WriteActions(set)
            }
            _ => action,
        };
        actions.push(action);
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use crate::parse_flow;
    use crate::rules::{Action, Resubmit, SetField};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The index of action names answers as the list does, without case.
    #[test]
    fn known_action_names_are_the_list_without_case() {
        use super::{ACTION_NAMES, known_action_name};
        for n in ACTION_NAMES.iter().chain(&["local", "table", "none", "any"]) {
            for name in [n.to_string(), n.to_ascii_uppercase(), n[..1].to_ascii_uppercase() + &n[1..]] {
                assert!(known_action_name(&name), "{name}");
            }
        }
        for name in ["", "outpu", "output_", "mod_nw", "frobnicate", "loca", "tables"] {
            assert!(!known_action_name(name), "{name}");
        }
    }

    /// The actions of `match,actions=ACTIONS`.
    fn acts(matches: &str, actions: &str) -> Vec<Action> {
        let line = format!("{matches}{}actions={actions}", if matches.is_empty() { "" } else { "," });
        parse_flow(&line).unwrap_or_else(|e| panic!("{line}: {e}")).actions
    }

    /// The error of `line`, as (column, reason).
    fn err(line: &str) -> (u32, String) {
        let e = parse_flow(line).expect_err(line);
        (e.position.column, e.reason)
    }

    #[test]
    fn outputs_and_reserved_ports() {
        assert_eq!(acts("", "output:3"), vec![Action::Output(3)]);
        assert_eq!(acts("", "3,4"), vec![Action::Output(3), Action::Output(4)]);
        assert_eq!(acts("", "output(5)"), vec![Action::Output(5)]);
        assert_eq!(
            acts("", "output(port=2,max_len=100),output(max_len=14,port=LOCAL),output(port=IN_PORT,max_len=64)"),
            vec![
                Action::OutputTrunc { port: 2, max_len: 100 },
                Action::OutputTrunc { port: crate::ports::LOCAL_PORT, max_len: 14 },
                Action::OutputTrunc { port: crate::rules::OUTPUT_TRUNC_IN_PORT, max_len: 64 },
            ]
        );
        assert!(err("actions=output(port=2,max_len=13)").1.contains("less than the minimum value 14"));
        assert!(err("actions=output(port=FLOOD,max_len=100)").1.contains("FLOOD"));
        assert!(err("actions=output(port=reg0,max_len=100)").1.contains("reg0"));
        assert!(err("actions=output(port=2,max_len=64,queue=1)").1.contains("queue=1"));
        assert_eq!(acts("", "in_port,IN_PORT,output:in_port"), vec![Action::InPort; 3]);
        assert_eq!(acts("", "flood,FLOOD"), vec![Action::Flood; 2]);
        assert_eq!(acts("", "all,ALL,output:all"), vec![Action::All; 3]);
        assert_eq!(acts("", "normal,NORMAL"), vec![Action::Normal; 2]);
        assert_eq!(acts("", "drop"), vec![]);
        assert_eq!(acts("", ""), vec![]);
        assert_eq!(acts("", "  output:1 , output:2 "), vec![Action::Output(1), Action::Output(2)]);
        assert_eq!(err("actions=output:0"), (16, "invalid `output`: port number 0 is out of range 1..=65279".into()));
        assert_eq!(err("actions=output:65280").0, 16);
        assert_eq!(err("actions=output:x").0, 16);
        assert_eq!(err("actions=output").0, 9);
        let local = Action::Output(crate::ports::LOCAL_PORT);
        assert_eq!(acts("", "1,LOCAL,output:local"), vec![Action::Output(1), local.clone(), local]);
        assert_eq!(err("actions=output:table").0, 16);
        assert_eq!(acts("", "output:controller"), vec![Action::Controller { max_len: u16::MAX }]);
        assert_eq!(
            acts("", "controller,CONTROLLER:128,controller(max_len=64)"),
            vec![
                Action::Controller { max_len: u16::MAX },
                Action::Controller { max_len: 128 },
                Action::Controller { max_len: 64 }
            ]
        );
        assert!(err("actions=controller(reason=no_match)").1.contains("max_len"));
        assert_eq!(err("actions=12z").0, 11);
    }

    #[test]
    fn drop_must_be_alone() {
        assert_eq!(err("actions=output:1,drop"), (18, "`drop` cannot be combined with other actions".into()));
        assert_eq!(err("actions=drop,drop").0, 9);
    }

    #[test]
    fn header_rewrites() {
        let mac = [0, 0x11, 0x22, 0x33, 0x44, 0x55];
        assert_eq!(acts("", "mod_dl_src:00:11:22:33:44:55"), vec![Action::Set(SetField::DlSrc(mac))]);
        assert_eq!(acts("", "mod_dl_dst:00:11:22:33:44:55"), vec![Action::Set(SetField::DlDst(mac))]);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        // OpenFlow 1.0 actions need no matching prerequisite (as in OVS).
        assert_eq!(acts("", "mod_nw_src:10.0.0.1"), vec![Action::Set(SetField::NwSrc(ip))]);
        assert_eq!(acts("", "mod_nw_dst:10.0.0.1"), vec![Action::Set(SetField::NwDst(ip))]);
        assert_eq!(acts("", "mod_nw_tos:184"), vec![Action::Set(SetField::IpDscp(46))]);
        assert_eq!(acts("", "mod_nw_ecn:2"), vec![Action::Set(SetField::NwEcn(2))]);
        assert_eq!(acts("", "mod_nw_ttl:9"), vec![Action::Set(SetField::NwTtl(9))]);
        assert_eq!(acts("", "mod_tp_src:1"), vec![Action::Set(SetField::TpSrc(1))]);
        assert_eq!(acts("", "mod_tp_dst:65535"), vec![Action::Set(SetField::TpDst(65535))]);
        assert_eq!(acts("", "dec_ttl"), vec![Action::DecTtl]);
        assert_eq!(
            err("actions=mod_nw_tos:2"),
            (20, "invalid `mod_nw_tos`: 2 is not a multiple of 4 (the TOS byte's low two bits are ECN)".into())
        );
        assert_eq!(err("actions=mod_nw_tos:256").0, 20);
        assert_eq!(err("actions=mod_nw_ecn:4").0, 20);
        assert_eq!(err("actions=mod_tp_dst:65536").0, 20);
        assert_eq!(err("actions=mod_dl_src:00:11").0, 25);
        assert_eq!(err("actions=mod_nw_src:10.0.0.1/8").0, 20);
        assert_eq!(err("actions=dec_ttl(1)").0, 9);
    }

    #[test]
    fn vlan_actions() {
        assert_eq!(acts("", "mod_vlan_vid:20"), vec![Action::ModVlanVid(20)]);
        assert_eq!(acts("", "mod_vlan_pcp:7"), vec![Action::ModVlanPcp(7)]);
        assert_eq!(acts("", "strip_vlan,pop_vlan"), vec![Action::StripVlan; 2]);
        assert_eq!(
            acts("", "push_vlan:0x8100,push_vlan:0x88a8"),
            vec![Action::PushVlan(0x8100), Action::PushVlan(0x88a8)]
        );
        assert_eq!(err("actions=mod_vlan_vid:4096").0, 22);
        assert_eq!(err("actions=mod_vlan_pcp:8").0, 22);
        assert_eq!(
            err("actions=push_vlan:0x0800"),
            (19, "invalid `push_vlan`: TPID 0x0800 is not 0x8100 or 0x88a8".into())
        );
    }

    #[test]
    fn set_field() {
        let mac = [0, 0x11, 0x22, 0x33, 0x44, 0x55];
        assert_eq!(acts("", "set_field:00:11:22:33:44:55->eth_src"), vec![Action::Set(SetField::DlSrc(mac))]);
        assert_eq!(acts("", "set_field:00:11:22:33:44:55->dl_dst"), vec![Action::Set(SetField::DlDst(mac))]);
        assert_eq!(acts("dl_vlan=5", "set_field:4116->vlan_vid"), vec![Action::Set(SetField::VlanVid(20))]);
        assert_eq!(acts("dl_vlan=5", "set_field:20->vlan_vid"), vec![Action::Set(SetField::VlanVid(20))]);
        assert_eq!(acts("vlan_tci=0x1000/0x1000", "set_field:3->vlan_pcp"), vec![Action::Set(SetField::VlanPcp(3))]);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(acts("ip", "set_field:10.0.0.1->ip_src"), vec![Action::Set(SetField::NwSrc(ip))]);
        assert_eq!(acts("tcp", "set_field:10.0.0.1->nw_dst"), vec![Action::Set(SetField::NwDst(ip))]);
        let ip6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(acts("ipv6", "set_field:2001:db8::1->ipv6_src"), vec![Action::Set(SetField::Ipv6Src(ip6))]);
        assert_eq!(acts("ipv6", "set_field:2001:db8::1->ipv6_dst"), vec![Action::Set(SetField::Ipv6Dst(ip6))]);
        assert_eq!(acts("ipv6", "set_field:46->ip_dscp"), vec![Action::Set(SetField::IpDscp(46))]);
        assert_eq!(acts("ip", "set_field:184->nw_tos"), vec![Action::Set(SetField::IpDscp(46))]);
        assert_eq!(acts("ip", "set_field:1->nw_ecn"), vec![Action::Set(SetField::NwEcn(1))]);
        assert_eq!(acts("ip", "set_field:1->nw_ttl"), vec![Action::Set(SetField::NwTtl(1))]);
        assert_eq!(acts("udp", "set_field:53->udp_dst"), vec![Action::Set(SetField::TpDst(53))]);
        assert_eq!(acts("tcp6", "set_field:53->tcp_src"), vec![Action::Set(SetField::TpSrc(53))]);
        assert_eq!(acts("sctp", "set_field:53->tp_src"), vec![Action::Set(SetField::TpSrc(53))]);
        assert_eq!(acts("ipv6", "set_field:0x54321->ipv6_label"), vec![Action::Set(SetField::Ipv6Label(0x54321))]);
        assert_eq!(acts("icmp6", "set_field:5->ipv6_label"), vec![Action::Set(SetField::Ipv6Label(5))]);
        assert_eq!(err("ip,actions=set_field:1->ipv6_label").0, 12);
        assert_eq!(err("ipv6,actions=set_field:0x100000->ipv6_label").0, 24);
        // Prerequisites, as OVS checks them for set_field.
        assert_eq!(
            err("actions=set_field:10.0.0.1->ip_src"),
            (9, "`set_field` of this field requires the rule to match on ip".into())
        );
        assert_eq!(err("ipv6,actions=set_field:10.0.0.1->ip_src").0, 14);
        assert_eq!(err("ip,actions=set_field:::1->ipv6_dst").0, 12);
        assert_eq!(err("arp,actions=set_field:1->nw_ttl").0, 13);
        assert_eq!(err("udp,actions=set_field:1->tcp_dst").0, 13);
        assert_eq!(err("ip,actions=set_field:1->tp_dst").0, 12);
        assert_eq!(err("actions=set_field:20->vlan_vid").0, 9);
        assert_eq!(err("dl_vlan=0xffff,actions=set_field:2->vlan_pcp").0, 24);
        // Syntax and values.
        assert_eq!(err("actions=set_field:1->tun_id"), (22, "`set_field` of field `tun_id` is not supported".into()));
        assert_eq!(err("actions=set_field:1"), (19, "`set_field` must be written `set_field:VALUE->FIELD`".into()));
        assert_eq!(err("ip,actions=set_field:1/1->nw_ttl"), (23, "a masked `set_field` is not supported".into()));
        assert_eq!(err("dl_vlan=1,actions=set_field:0x2000->vlan_vid").0, 29);
        assert_eq!(err("ip,actions=set_field:300->nw_ttl").0, 22);
    }

    #[test]
    fn resubmit_and_goto_table() {
        let r = |in_port, table| vec![Action::Resubmit(Resubmit { in_port, table })];
        assert_eq!(acts("", "resubmit:3"), r(Some(3), None));
        assert_eq!(acts("", "resubmit(,2)"), r(None, Some(2)));
        assert_eq!(acts("", "resubmit(4,2)"), r(Some(4), Some(2)));
        assert_eq!(acts("", "resubmit(in_port,2)"), r(None, Some(2)));
        assert_eq!(acts("", "resubmit(5,)"), r(Some(5), None));
        assert_eq!(acts("", "output:1,goto_table:1"), vec![Action::Output(1), Action::GotoTable(1)]);
        assert_eq!(acts("table=3", "goto_table:4"), vec![Action::GotoTable(4)]);
        assert_eq!(err("actions=resubmit(,)"), (9, "`resubmit` needs a port or a table".into()));
        assert_eq!(err("actions=resubmit:in_port").0, 9);
        assert_eq!(err("actions=resubmit(,255)").0, 19);
        assert_eq!(err("actions=resubmit(0,1)").0, 18);
        assert_eq!(err("actions=resubmit(,1").0, 17);
        assert_eq!(err("actions=goto_table:1,output:1"), (9, "`goto_table` must be the last action".into()));
        assert_eq!(
            err("table=2,actions=goto_table:2"),
            (17, "`goto_table:2` must go to a table after this rule's table 2".into())
        );
        assert_eq!(err("actions=goto_table:255").0, 20);
    }

    #[test]
    fn unsupported_actions_are_named() {
        for (action, name) in [("learn(table=1)", "learn"), ("ct(commit)", "ct"), ("enqueue:1:2", "enqueue")] {
            let (column, reason) = err(&format!("actions={action}"));
            assert_eq!(column, 9, "{action}");
            assert_eq!(reason, format!("unknown or unsupported action `{name}`"));
        }
        assert_eq!(
            err("actions=load:1->NXM_NX_TUN_ID[]"),
            (17, "field `NXM_NX_TUN_ID` is not supported in `load`/`move`".into())
        );
        assert_eq!(
            err("icmp6,actions=move:nd_target[]->xxreg0[]"),
            (
                15,
                "`move` of a neighbour-discovery field requires the rule to match on icmp_type=135 or \
                 icmp_type=136 (and icmp_code absent or 0), as Open vSwitch requires"
                    .into()
            )
        );
        assert!(err("ip,actions=set_field:1.2.3.4->arp_spa").1.contains("arp or rarp"));
        assert!(err("arp,actions=set_field:1.2.3->arp_spa").1.contains("invalid value for `arp_spa`"));
        assert!(err("icmp6,actions=set_field:1->nd_sll").1.contains("invalid value for `nd_sll`"));
        assert!(err("icmp6,actions=set_field:00:00:00:00:00:01->nd_sll").1.contains("neighbour-discovery"));
    }

    #[test]
    fn note_and_clone() {
        // Padded as ovs-ofctl encodes them: 10 + n bytes rounded up to 8.
        assert_eq!(acts("", "note:01.02.03"), vec![Action::Note(vec![1, 2, 3, 0, 0, 0])]);
        assert_eq!(
            acts("", "note:0102030405060708")[0],
            Action::Note([1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0].to_vec())
        );
        assert_eq!(acts("", "note:"), vec![Action::Note(vec![0; 6])]);
        assert!(err("actions=note:1").1.contains("pairs of hex digits"));
        assert!(err("actions=note:zz").1.contains("not a hex byte"));
        assert_eq!(
            acts("", "clone(output:1,clone(drop)),output:2"),
            vec![Action::Clone(vec![Action::Output(1), Action::Clone(vec![])]), Action::Output(2)]
        );
        // Checked where they stand: an instruction is not an action; a VLAN set-field needs
        // a tag in the clone; a tag pushed in the clone is gone after it.
        assert!(err("actions=clone(goto_table:1)").1.contains("instruction"));
        assert!(err("actions=clone(set_field:5->vlan_vid)").1.contains("requires a VLAN tag"));
        assert_eq!(acts("", "clone(push_vlan:0x8100,set_field:5->vlan_vid)").len(), 1);
        assert!(err("actions=clone(push_vlan:0x8100),set_field:5->vlan_vid").1.contains("requires a VLAN tag"));
        assert!(err("actions=clone(output:1,drop)").1.contains("cannot be combined"));
    }

    #[test]
    fn clear_actions_and_write_actions() {
        assert_eq!(
            acts("ip", "output:1,clear_actions,write_actions(dec_ttl,output:2),write_metadata:1,goto_table:1"),
            vec![
                Action::Output(1),
                Action::ClearActions,
                Action::WriteActions(vec![Action::DecTtl, Action::Output(2)]),
                Action::WriteMetadata { value: 1, mask: u64::MAX },
                Action::GotoTable(1)
            ]
        );
        // Nothing to write: no instruction, as OVS holds it.
        assert_eq!(acts("", "write_actions(drop)"), vec![]);
        assert_eq!(acts("", "write_actions()"), vec![]);
        // The instruction order and count, as ovs-ofctl enforces them.
        assert!(err("actions=write_actions(output:1),output:2").1.contains("instruction order"));
        assert!(err("actions=write_actions(output:2),clear_actions").1.contains("instruction order"));
        assert!(err("actions=write_metadata:1,write_actions(output:2)").1.contains("instruction order"));
        assert!(err("actions=clear_actions,clear_actions").1.contains("only once"));
        assert!(err("actions=write_actions(output:1),write_actions(output:2)").1.contains("only once"));
        // Inside: actions of the action set only.
        assert!(err("actions=write_actions(goto_table:1)").1.contains("instruction"));
        assert!(err("actions=write_actions(clear_actions)").1.contains("instruction"));
        assert!(err("actions=write_actions(note:01)").1.contains("not allowed in the action set"));
        assert!(err("actions=write_actions(clone(output:1))").1.contains("not allowed in the action set"));
        assert!(err("actions=write_actions(output:NXM_NX_REG0[0..15])").1.contains("not allowed in the action set"));
        assert!(err("actions=write_actions(output(port=1,max_len=64))").1.contains("not allowed in the action set"));
        assert!(err("actions=write_actions(drop,output:1)").1.contains("cannot be combined"));
        // Checked with the tag state the actions before it leave; its own changes stay in.
        assert!(err("dl_vlan=3,actions=strip_vlan,write_actions(set_field:5->vlan_vid)").1.contains("VLAN tag"));
        assert_eq!(acts("", "write_actions(push_vlan:0x8100,set_field:5->vlan_vid,output:1)").len(), 1);
        assert!(
            err("actions=write_actions(push_vlan:0x8100,output:1),set_field:5->vlan_vid")
                .1
                .contains("instruction order")
        );
    }

    #[test]
    fn registers_load_move_and_write_metadata() {
        use crate::rules::{PacketField, Subfield, SubfieldField};
        let reg = |n, ofs, n_bits| Subfield { field: SubfieldField::Reg(n), ofs, n_bits };
        let md = |ofs, n_bits| Subfield { field: SubfieldField::Metadata, ofs, n_bits };
        assert_eq!(
            acts("", "load:5->reg0[],load:0x1->NXM_NX_REG6[3],load:2->reg1[1..2]"),
            vec![
                Action::Load { dst: reg(0, 0, 32), value: 5, set_field: false },
                Action::Load { dst: reg(6, 3, 1), value: 1, set_field: false },
                Action::Load { dst: reg(1, 1, 2), value: 2, set_field: false },
            ]
        );
        assert_eq!(
            acts("", "set_field:7->reg4,set_field:0x5/0x5->metadata"),
            vec![
                Action::Load { dst: reg(4, 0, 32), value: 7, set_field: true },
                Action::Load { dst: md(0, 1), value: 1, set_field: false },
                Action::Load { dst: md(2, 1), value: 1, set_field: false },
            ]
        );
        let eth_src = Subfield { field: SubfieldField::Packet(PacketField::EthSrc), ofs: 0, n_bits: 32 };
        assert_eq!(
            acts("", "move:dl_src[0..31]->metadata[32..63]"),
            vec![Action::Move { src: eth_src, dst: md(32, 32) }]
        );
        assert_eq!(
            acts("", "output:1,write_metadata:0x5/0xff,goto_table:1"),
            vec![Action::Output(1), Action::WriteMetadata { value: 5, mask: 0xff }, Action::GotoTable(1)]
        );
        // As ovs-ofctl refuses them.
        assert_eq!(err("actions=load:0x1ffff->reg0[0..15]"), (14, "value 0x1ffff does not fit into 16 bits".into()));
        assert!(err("actions=load:5->reg0[0..40]").1.contains("only 32 bits wide"));
        assert!(err("actions=move:reg0[0..3]->reg1[0..4]").1.contains("4 bits and destination 5 bits"));
        assert!(err("actions=move:NXM_OF_IP_SRC[]->reg0[]").1.contains("requires the rule to match on ip"));
        assert!(err("ip,actions=move:NXM_OF_IN_PORT[]->NXM_OF_ETH_TYPE[]").1.contains("read-only"));
        assert_eq!(err("actions=write_metadata:1,output:1").0, 26);
        assert!(err("actions=write_metadata:1,write_metadata:2").1.contains("only once"));
        let xreg = Subfield { field: SubfieldField::Xreg(0), ofs: 0, n_bits: 64 };
        assert_eq!(acts("", "set_field:1->xreg0"), vec![Action::Load { dst: xreg, value: 1, set_field: true }]);
    }
}
