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

use crate::field::{MatchSlot, SHORTHANDS};
use crate::field_value::{Dotted, Mac, write_decimal, write_field_value, write_slot};
use crate::flow_parse::MatchSpec;
use crate::ports::LOCAL_PORT;
use crate::rules::{Action, Masked, Match, Resubmit, Rule, SetField, Subfield, SubfieldField};
use std::fmt::{self, Display, Formatter, Write};

/// A bridge port number as OVS prints it: `LOCAL` for the internal port, else the number.
pub struct PortName(pub u32);

impl PortName {
    pub(crate) fn write_to(&self, w: &mut impl Write) -> fmt::Result {
        match self.0 {
            LOCAL_PORT => w.write_str("LOCAL"),
            n => write_decimal(w, n.into()),
        }
    }
}

impl Display for PortName {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

/// The `ovs-ofctl` shorthand for a `dl_type`/`nw_proto` pair, and whether it covers
/// `nw_proto` too.
fn shorthand(dl_type: u16, nw_proto: Option<u8>) -> Option<(&'static str, bool)> {
    let find = |p: Option<u8>| SHORTHANDS.iter().find(|s| s.dl_type == dl_type && s.nw_proto == p);
    match nw_proto.and_then(|p| find(Some(p))) {
        Some(s) => Some((s.name, true)),
        None => find(None).map(|s| (s.name, false)),
    }
}

/// Pieces of text joined by a separator, written straight to the output as they come:
/// printing a rule wrote every piece to a string of its own and joined them, about
/// twenty allocations per rule, and every rule of a bridge is printed for the
/// write-back after a change.
pub(crate) struct Pieces<'a, W> {
    out: &'a mut W,
    sep: &'static str,
    /// The separator before the next piece, if not `sep` (`, ` between a rule's header
    /// and its match).
    next_sep: Option<&'static str>,
    any: bool,
}

impl<'a, W: Write> Pieces<'a, W> {
    pub(crate) fn new(out: &'a mut W, sep: &'static str) -> Self {
        Pieces { out, sep, next_sep: None, any: false }
    }

    /// The output, after the separator if a piece came before: write the next piece.
    pub(crate) fn next(&mut self) -> Result<&mut W, fmt::Error> {
        let sep = self.next_sep.take().unwrap_or(self.sep);
        if self.any {
            self.out.write_str(sep)?;
        }
        self.any = true;
        Ok(self.out)
    }

    /// Writes one piece given as format arguments.
    fn piece(&mut self, args: fmt::Arguments<'_>) -> fmt::Result {
        self.next()?.write_fmt(args)
    }
}

/// `dl_vlan`/`dl_vlan_pcp` when the TCI match says "a tag with this VID and/or PCP",
/// else `vlan_tci`.
fn vlan_fields<W: Write>(t: Masked<u16>, out: &mut Pieces<'_, W>) -> fmt::Result {
    let present = t.value & 0x1000 != 0;
    let vid = t.value & 0x0fff;
    let pcp = t.value >> 13;
    match t.mask {
        0x1fff if present => out.piece(format_args!("dl_vlan={vid}")),
        0xf000 if present => out.piece(format_args!("dl_vlan_pcp={pcp}")),
        0xffff if present => {
            out.piece(format_args!("dl_vlan={vid}"))?;
            out.piece(format_args!("dl_vlan_pcp={pcp}"))
        }
        0xffff => out.piece(format_args!("vlan_tci=0x{:04x}", t.value)),
        _ => out.piece(format_args!("vlan_tci=0x{:04x}/0x{:04x}", t.value, t.mask)),
    }
}

/// The fields of a match in `ovs-ofctl` order, each as `KEY` or `KEY=VALUE`: slot by slot
/// ([`MatchSlot::ALL`]), each under the name and in the format the field table gives.
fn match_fields<W: Write>(m: &Match, out: &mut Pieces<'_, W>) -> fmt::Result {
    let mut proto_printed = false;
    for slot in MatchSlot::ALL {
        if slot == MatchSlot::InPort {
            // OVS prints the registers and the metadata after the shorthand and before
            // in_port.
            pipeline_fields(m, out)?;
        }
        let Some(v) = m.slot(slot) else { continue };
        match slot {
            MatchSlot::DlType => match shorthand(v.value as u16, m.nw_proto) {
                Some((name, covers_proto)) => {
                    out.next()?.write_str(name)?;
                    proto_printed = covers_proto;
                }
                None => write_slot(out, slot, v, m.dl_type, m.nw_proto)?,
            },
            MatchSlot::NwProto if proto_printed => {}
            MatchSlot::VlanTci => vlan_fields(Masked { value: v.value as u16, mask: v.mask as u16 }, out)?,
            _ => write_slot(out, slot, v, m.dl_type, m.nw_proto)?,
        }
    }
    Ok(())
}

/// `reg0=0x5`, `reg3=0x5/0xff`, `metadata=0`, as `ovs-ofctl` prints them.
fn pipeline_fields<W: Write>(m: &Match, out: &mut Pieces<'_, W>) -> fmt::Result {
    fn hex_field<W: Write>(
        out: &mut Pieces<'_, W>,
        name: fmt::Arguments<'_>,
        value: u64,
        mask: u64,
        all: u64,
    ) -> fmt::Result {
        let v = hex(value.into());
        if mask == all {
            out.piece(format_args!("{name}={v}"))
        } else {
            out.piece(format_args!("{name}={v}/0x{mask:x}"))
        }
    }
    for &(r, v) in &m.regs {
        hex_field(out, format_args!("reg{r}"), v.value.into(), v.mask.into(), u32::MAX.into())?;
    }
    if let Some(md) = m.metadata {
        hex_field(out, format_args!("metadata"), md.value, md.mask, u64::MAX)?;
    }
    Ok(())
}

/// Prints the match fields comma-separated (empty for a match-everything).
impl Display for Match {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match_fields(self, &mut Pieces::new(f, ","))
    }
}

impl Display for SetField {
    /// The `ovs-ofctl` action that sets this field: the OpenFlow 1.0 `mod_*` form where
    /// there is one, else `set_field:VALUE->FIELD`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match *self {
            SetField::DlSrc(m) => write!(f, "mod_dl_src:{}", Mac(m)),
            SetField::DlDst(m) => write!(f, "mod_dl_dst:{}", Mac(m)),
            SetField::VlanVid(v) => write!(f, "set_field:{}->vlan_vid", v | 0x1000),
            SetField::VlanPcp(p) => write!(f, "set_field:{p}->vlan_pcp"),
            SetField::NwSrc(a) => write!(f, "mod_nw_src:{}", Dotted(a)),
            SetField::NwDst(a) => write!(f, "mod_nw_dst:{}", Dotted(a)),
            SetField::Ipv6Src(a) => write!(f, "set_field:{a}->ipv6_src"),
            SetField::Ipv6Dst(a) => write!(f, "set_field:{a}->ipv6_dst"),
            SetField::Ipv6Label(l) => write!(f, "set_field:{l:#x}->ipv6_label"),
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
        write_action(f, self)
    }
}

/// [`Action`]'s `Display`, written to any `Write` (the actions of a rule printed for
/// the write-back are written straight into its text, not through `core::fmt`).
fn write_action(f: &mut impl Write, action: &Action) -> fmt::Result {
    match *action {
        Action::Output(LOCAL_PORT) => f.write_str("LOCAL"),
        Action::Output(p) => {
            f.write_str("output:")?;
            write_decimal(f, p.into())
        }
        Action::OutputTrunc { port, max_len } => {
            let port = match port {
                crate::rules::OUTPUT_TRUNC_IN_PORT => "IN_PORT".to_string(),
                p => PortName(p).to_string(),
            };
            write!(f, "output(port={port},max_len={max_len})")
        }
        Action::OutputReg(src) => write!(f, "output:{src}"),
        Action::InPort => f.write_str("IN_PORT"),
        Action::Flood => f.write_str("FLOOD"),
        Action::All => f.write_str("ALL"),
        Action::Normal => f.write_str("NORMAL"),
        Action::Controller { max_len } => write!(f, "CONTROLLER:{max_len}"),
        Action::ModVlanVid(v) => write!(f, "mod_vlan_vid:{v}"),
        Action::ModVlanPcp(p) => write!(f, "mod_vlan_pcp:{p}"),
        Action::StripVlan => f.write_str("strip_vlan"),
        Action::PushVlan(tpid) => write!(f, "push_vlan:0x{tpid:04x}"),
        Action::Set(s) => write!(f, "{s}"),
        Action::DecTtl => f.write_str("dec_ttl"),
        Action::Resubmit(Resubmit { in_port, table }) => match (in_port, table) {
            (Some(p), None) => write!(f, "resubmit:{}", PortName(p)),
            (None, Some(t)) => write!(f, "resubmit(,{t})"),
            (Some(p), Some(t)) => write!(f, "resubmit({},{t})", PortName(p)),
            // Not produced by the parser: "current port, current table".
            (None, None) => f.write_str("resubmit(in_port,)"),
        },
        Action::GotoTable(t) => write!(f, "goto_table:{t}"),
        Action::Group(g) => write!(f, "group:{g}"),
        Action::Load { dst, value, set_field: true } => {
            let name = match dst.field {
                SubfieldField::Reg(n) => format!("reg{n}"),
                SubfieldField::Xreg(n) => format!("xreg{n}"),
                SubfieldField::Xxreg(n) => format!("xxreg{n}"),
                SubfieldField::Metadata => "metadata".to_string(),
                // A packet field no `SetField` writes (`icmp_type`, `arp_spa`): its
                // `ovs-fields` name, the value as its match field prints it (from
                // where it sits in the match field's slot: `mpls_tc` is bits 9..11).
                SubfieldField::Packet(p) => {
                    let name = p.def().names[0];
                    f.write_str("set_field:")?;
                    match crate::field::field_by_name(name) {
                        Some(d) => {
                            let value = p.def().slot_bits(value);
                            write_field_value(f, d, Masked { value, mask: d.bits })?;
                        }
                        None => write!(f, "{value}")?,
                    }
                    return write!(f, "->{name}");
                }
            };
            write!(f, "set_field:{}->{name}", hex(value))
        }
        Action::Load { dst, value, set_field: false } => write!(f, "load:{}->{dst}", hex(value)),
        Action::Move { src, dst } => write!(f, "move:{src}->{dst}"),
        Action::WriteMetadata { value, mask } if mask == u64::MAX => {
            write!(f, "write_metadata:{}", hex(value.into()))
        }
        Action::WriteMetadata { value, mask } => {
            write!(f, "write_metadata:{}/{}", hex(value.into()), hex(mask.into()))
        }
        Action::Note(ref bytes) => {
            let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write!(f, "note:{}", hex.join("."))
        }
        Action::Clone(ref actions) => write!(f, "clone({})", format_actions(actions)),
        Action::ClearActions => f.write_str("clear_actions"),
        Action::WriteActions(ref actions) => write!(f, "write_actions({})", format_actions(actions)),
    }
}

/// A number as C's `%#x`: `0`, else `0x` and the hex digits.
fn hex(v: u128) -> String {
    if v == 0 { "0".to_string() } else { format!("0x{v:x}") }
}

impl Display for Subfield {
    /// `NXM_NX_REG0[]` (whole field), `NXM_NX_REG0[3]` (one bit), `NXM_NX_REG0[0..15]`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let name = self.field.nxm_name();
        if self.ofs == 0 && self.n_bits == self.field.width() {
            write!(f, "{name}[]")
        } else if self.n_bits == 1 {
            write!(f, "{name}[{}]", self.ofs)
        } else {
            write!(f, "{name}[{}..{}]", self.ofs, self.ofs + self.n_bits - 1)
        }
    }
}

/// An action list as after `actions=`: comma-separated, `drop` when empty.
pub fn format_actions(actions: &[Action]) -> String {
    let mut s = String::new();
    let _ = write_actions(&mut s, actions);
    s
}

/// [`format_actions`], written to `w`.
fn write_actions(w: &mut impl Write, actions: &[Action]) -> fmt::Result {
    if actions.is_empty() {
        return w.write_str("drop");
    }
    let mut list = Pieces::new(w, ",");
    for a in actions {
        write_action(list.next()?, a)?;
    }
    Ok(())
}

/// `rule` as text (its `Display`), in a string of exactly that length. `to_string` prints
/// into a string that grows four or five times per rule, about a third of the time of
/// printing a rule set, which the write-back does for every rule after a build; here each
/// thread prints into one scratch buffer and copies the text out once.
pub fn rule_text(rule: &Rule) -> String {
    thread_local! {
        static SCRATCH: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(512));
    }
    SCRATCH.with_borrow_mut(|s| {
        s.clear();
        let _ = write!(s, "{rule}");
        s.as_str().to_owned()
    })
}

impl Display for Rule {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut parts = Pieces::new(f, ", ");
        if self.cookie != 0 {
            parts.piece(format_args!("cookie=0x{:x}", self.cookie))?;
        }
        if self.table != 0 {
            parts.piece(format_args!("table={}", self.table))?;
        }
        if self.idle_timeout != 0 {
            parts.piece(format_args!("idle_timeout={}", self.idle_timeout))?;
        }
        if self.hard_timeout != 0 {
            parts.piece(format_args!("hard_timeout={}", self.hard_timeout))?;
        }
        if self.send_flow_rem {
            parts.next()?.write_str(crate::match_builder::SEND_FLOW_REM)?;
        }
        // The header's pieces are joined by `, `, the match's by `,`, with `, ` between.
        parts.next_sep = Some(parts.sep);
        parts.sep = ",";
        if self.priority != Rule::DEFAULT_PRIORITY {
            let w = parts.next()?;
            w.write_str("priority=")?;
            write_decimal(w, self.priority.into())?;
        }
        match_fields(&self.matches, &mut parts)?;
        if parts.any {
            f.write_char(' ')?;
        }
        f.write_str("actions=")?;
        write_actions(f, &self.actions)
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
        let mut out = Pieces::new(f, ",");
        for p in parts {
            out.next()?.write_str(&p)?;
        }
        match_fields(&self.matches, &mut out)
    }
}

#[cfg(test)]
mod ovs_golden;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::proto::*;
    use crate::{parse_flow, parse_match, parse_packet};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn prints_like_dump_flows() {
        for (input, printed) in [
            ("in_port=1,actions=output:2", "in_port=1 actions=output:2"),
            ("in_port=local,actions=output:LOCAL,resubmit(LOCAL,1)", "in_port=LOCAL actions=LOCAL,resubmit(LOCAL,1)"),
            ("actions=drop", "actions=drop"),
            ("priority=32768,actions=", "actions=drop"),
            (
                "hard_timeout=5,table=1,idle_timeout=3,cookie=0x10,priority=7,tp_dst=80,tcp,actions=IN_PORT",
                "cookie=0x10, table=1, idle_timeout=3, hard_timeout=5, priority=7,tcp,tp_dst=80 actions=IN_PORT",
            ),
            ("cookie=1,actions=flood", "cookie=0x1 actions=FLOOD"),
            (
                "udp6,ipv6_dst=2001:db8::/32,tp_src=0x1000/0xf000,actions=all,normal",
                "udp6,ipv6_dst=2001:db8::/32,tp_src=0x1000/0xf000 actions=ALL,NORMAL",
            ),
            ("ip,nw_proto=6,actions=drop", "tcp actions=drop"),
            ("dl_type=0x0800,nw_proto=47,actions=drop", "ip,nw_proto=47 actions=drop"),
            ("dl_type=0x88cc,actions=drop", "dl_type=0x88cc actions=drop"),
            (
                "arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/255.0.255.0,arp_sha=00:00:00:00:00:01,actions=drop",
                "arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/255.0.255.0,arp_op=1,arp_sha=00:00:00:00:00:01 actions=drop",
            ),
            ("dl_vlan=5,dl_vlan_pcp=3,actions=strip_vlan", "dl_vlan=5,dl_vlan_pcp=3 actions=strip_vlan"),
            (
                "dl_vlan=0xffff,actions=mod_vlan_vid:3,mod_vlan_pcp:2",
                "vlan_tci=0x0000 actions=mod_vlan_vid:3,mod_vlan_pcp:2",
            ),
            ("vlan_tci=0x1000/0x1000,actions=push_vlan:0x88a8", "vlan_tci=0x1000/0x1000 actions=push_vlan:0x88a8"),
            ("icmp,icmp_type=3,icmp_code=1,actions=dec_ttl", "icmp,icmp_type=3,icmp_code=1 actions=dec_ttl"),
            ("icmp6,icmpv6_type=135,actions=drop", "icmp6,icmp_type=135 actions=drop"),
            ("tcp,tcp_flags=0x12/0x12,actions=drop", "tcp,tcp_flags=+syn+ack actions=drop"),
            ("tcp,tcp_flags=0x800/0x800,actions=drop", "tcp,tcp_flags=0x800/0x800 actions=drop"),
            // As `ovs-ofctl` prints them (captured): label, tc, ttl, bos.
            (
                "mpls,mpls_label=5,mpls_tc=3,mpls_bos=1,mpls_ttl=64,actions=drop",
                "mpls,mpls_label=5,mpls_tc=3,mpls_ttl=64,mpls_bos=1 actions=drop",
            ),
            ("dl_type=0x8848,mpls_bos=0,actions=output:1", "mplsm,mpls_bos=0 actions=output:1"),
            ("eth,actions=drop", "actions=drop"),
            (
                "ip,ip_dscp=46,nw_ecn=1,nw_ttl=3,nw_frag=not_later,actions=drop",
                "ip,nw_tos=184,nw_ecn=1,nw_ttl=3,nw_frag=not_later actions=drop",
            ),
            (
                "dl_src=00:11:22:33:44:55,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=mod_dl_src:0a:0b:0c:0d:0e:0f",
                "dl_src=00:11:22:33:44:55,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=mod_dl_src:0a:0b:0c:0d:0e:0f",
            ),
            (
                "dl_vlan=1,ipv6,actions=set_field:5->vlan_vid,set_field:1->vlan_pcp,set_field:::1->ipv6_src,mod_nw_tos:8,resubmit:3,resubmit(,4),resubmit(5,6),goto_table:9",
                "ipv6,dl_vlan=1 actions=set_field:4101->vlan_vid,set_field:1->vlan_pcp,set_field:::1->ipv6_src,mod_nw_tos:8,resubmit:3,resubmit(,4),resubmit(5,6),goto_table:9",
            ),
        ] {
            let rule = parse_flow(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(rule.to_string(), printed, "{input}");
            assert_eq!(parse_flow(printed).unwrap(), rule, "{printed}");
        }
        assert!(parse_flow("mpls_label=5,actions=drop").unwrap_err().to_string().contains("mpls or mplsm"));
        assert!(parse_flow("mpls,mpls_tc=8,actions=drop").is_err());
    }

    #[test]
    fn match_spec_and_packet_print() {
        let spec = parse_match("cookie=0x1/0xff,table=2,priority=5,ip").unwrap();
        assert_eq!(spec.to_string(), "cookie=0x1/0xff,table=2,priority=5,ip");
        assert_eq!(parse_match(&spec.to_string()).unwrap(), spec);
        let p = parse_packet("in_port=3,udp,tp_dst=53").unwrap();
        assert_eq!(p.to_string(), "udp,in_port=3,tp_dst=53");
    }

    fn masked_u16() -> impl Strategy<Value = Masked<u16>> {
        (any::<u16>(), 1..=u16::MAX).prop_map(|(v, m)| Masked { value: v & m, mask: m })
    }
    fn mac_masked() -> impl Strategy<Value = Masked<[u8; 6]>> {
        (any::<[u8; 6]>(), any::<[u8; 6]>(), any::<bool>()).prop_map(|(v, m, exact)| {
            let m = if exact || m == [0; 6] { [0xff; 6] } else { m };
            let mut v = v;
            for (b, m) in v.iter_mut().zip(m) {
                *b &= m;
            }
            Masked { value: v, mask: m }
        })
    }
    fn ipv4_masked() -> impl Strategy<Value = Masked<Ipv4Addr>> {
        (any::<u32>(), prop_oneof![(1u32..=32).prop_map(|l| u32::MAX << (32 - l)), 1..=u32::MAX])
            .prop_map(|(v, m)| Masked { value: Ipv4Addr::from(v & m), mask: Ipv4Addr::from(m) })
    }
    fn ipv6_masked() -> impl Strategy<Value = Masked<Ipv6Addr>> {
        (any::<u128>(), prop_oneof![(1u32..=128).prop_map(|l| u128::MAX << (128 - l)), 1..=u128::MAX])
            .prop_map(|(v, m)| Masked { value: Ipv6Addr::from(v & m), mask: Ipv6Addr::from(m) })
    }
    fn vlan() -> impl Strategy<Value = Masked<u16>> {
        prop_oneof![
            (0u16..4096).prop_map(|v| Masked { value: 0x1000 | v, mask: 0x1fff }),
            (0u16..8).prop_map(|p| Masked { value: 0x1000 | (p << 13), mask: 0xf000 }),
            (0u16..4096, 0u16..8).prop_map(|(v, p)| Masked { value: 0x1000 | v | (p << 13), mask: 0xffff }),
            Just(Masked { value: 0, mask: 0xffff }),
            masked_u16(),
        ]
    }

    /// (dl_type, nw_proto) pairs covering every prerequisite class.
    fn l3() -> impl Strategy<Value = (Option<u16>, Option<u8>)> {
        prop_oneof![
            Just((None, None)),
            Just((Some(0x88cc), None)),
            Just((Some(ETH_ARP), None)),
            (0u8..=255).prop_map(|p| (Some(ETH_ARP), Some(p))),
            prop::sample::select(vec![None, Some(TCP), Some(UDP), Some(SCTP), Some(ICMP), Some(47)])
                .prop_map(|p| (Some(ETH_IPV4), p)),
            prop::sample::select(vec![None, Some(TCP), Some(UDP), Some(SCTP), Some(ICMPV6), Some(47)])
                .prop_map(|p| (Some(ETH_IPV6), p)),
        ]
    }

    prop_compose! {
        fn valid_match()(
            (dl_type, nw_proto) in l3(),
            in_port in prop::option::of(1u32..=0xfeff),
            dl_src in prop::option::of(mac_masked()),
            dl_dst in prop::option::of(mac_masked()),
            vlan_tci in prop::option::of(vlan()),
            nw_src in prop::option::of(ipv4_masked()),
            nw_dst in prop::option::of(ipv4_masked()),
            ipv6_src in prop::option::of(ipv6_masked()),
            ipv6_dst in prop::option::of(ipv6_masked()),
            ipv6_label in prop::option::of((0u32..0x10_0000, 1u32..0x10_0000)),
            tos in prop::option::of((any::<u8>(), prop::sample::select(vec![0xfcu8, 0x03, 0xff]))),
            nw_ttl in prop::option::of(any::<u8>()),
            frag in prop::option::of(prop::sample::select(vec![(0u8, 1u8), (1, 1), (1, 3), (3, 3), (0, 2)])),
            tp_src in prop::option::of(masked_u16()),
            tp_dst in prop::option::of(masked_u16()),
            icmp in (prop::option::of(0u16..256), prop::option::of(0u16..256)),
            tcp_flags in prop::option::of((0u16..0x1000, 1u16..0x1000)),
            arp_sha in prop::option::of(mac_masked()),
            arp_tha in prop::option::of(mac_masked()),
            pipeline in (
                prop::collection::vec((0u8..16, any::<u32>(), any::<u32>()), 0..3),
                prop::option::of((any::<u64>(), any::<u64>())),
            ),
        ) -> Match {
            let ip_any = matches!(dl_type, Some(ETH_IPV4 | ETH_IPV6));
            let arp = dl_type == Some(ETH_ARP);
            let v4_or_arp = dl_type == Some(ETH_IPV4) || arp;
            let l4 = ip_any && matches!(nw_proto, Some(TCP | UDP | SCTP));
            let icmp_any = matches!((dl_type, nw_proto), (Some(ETH_IPV4), Some(ICMP)) | (Some(ETH_IPV6), Some(ICMPV6)));
            let exact = |v: Option<u16>| v.map(|value| Masked { value, mask: 0xffff });
            let mut m = Match {
                in_port,
                dl_src,
                dl_dst,
                dl_type,
                vlan_tci,
                nw_src: nw_src.filter(|_| v4_or_arp),
                nw_dst: nw_dst.filter(|_| v4_or_arp),
                ipv6_src: ipv6_src.filter(|_| dl_type == Some(ETH_IPV6)),
                ipv6_dst: ipv6_dst.filter(|_| dl_type == Some(ETH_IPV6)),
                ipv6_label: ipv6_label
                    .filter(|_| dl_type == Some(ETH_IPV6))
                    .map(|(v, m)| Masked { value: v & m, mask: m }),
                nw_proto,
                nw_tos: tos.filter(|_| ip_any).map(|(v, m)| Masked { value: v & m, mask: m }),
                nw_ttl: nw_ttl.filter(|_| ip_any),
                nw_frag: frag.filter(|_| ip_any).map(|(value, mask)| Masked { value, mask }),
                tp_src: if icmp_any { exact(icmp.0) } else { tp_src.filter(|_| l4) },
                tp_dst: if icmp_any { exact(icmp.1) } else { tp_dst.filter(|_| l4) },
                tcp_flags: tcp_flags
                    .filter(|_| ip_any && nw_proto == Some(TCP))
                    .map(|(v, m)| Masked { value: v & m, mask: m }),
                arp_sha: arp_sha.filter(|_| arp),
                arp_tha: arp_tha.filter(|_| arp),
                ..Match::default()
            };
            for (r, value, mask) in pipeline.0 {
                m.set_reg(r, Some(Masked { value, mask }));
            }
            m.metadata = pipeline.1.filter(|&(_, mask)| mask != 0).map(|(v, mask)| Masked { value: v & mask, mask });
            m
        }
    }

    /// A `load`/`move` operand of a register or the metadata.
    fn subfield() -> impl Strategy<Value = Subfield> {
        (prop_oneof![(0u8..16).prop_map(SubfieldField::Reg), Just(SubfieldField::Metadata)], any::<(u16, u16)>())
            .prop_map(|(field, (a, b))| {
                let w = field.width();
                let ofs = a % w;
                Subfield { field, ofs, n_bits: 1 + b % (w - ofs) }
            })
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            (1u32..=0xfeff).prop_map(Action::Output),
            Just(Action::InPort),
            Just(Action::Flood),
            Just(Action::All),
            Just(Action::Normal),
            any::<u16>().prop_map(|max_len| Action::Controller { max_len }),
            (0u16..4096).prop_map(Action::ModVlanVid),
            (0u8..8).prop_map(Action::ModVlanPcp),
            Just(Action::StripVlan),
            prop::sample::select(vec![0x8100u16, 0x88a8]).prop_map(Action::PushVlan),
            Just(Action::DecTtl),
            (0u32..=0xffff_ff00).prop_map(Action::Group),
            any::<[u8; 6]>().prop_map(|m| Action::Set(SetField::DlSrc(m))),
            any::<[u8; 6]>().prop_map(|m| Action::Set(SetField::DlDst(m))),
            (0u16..4096).prop_map(|v| Action::Set(SetField::VlanVid(v))),
            (0u8..8).prop_map(|v| Action::Set(SetField::VlanPcp(v))),
            any::<u32>().prop_map(|a| Action::Set(SetField::NwSrc(a.into()))),
            any::<u32>().prop_map(|a| Action::Set(SetField::NwDst(a.into()))),
            any::<u128>().prop_map(|a| Action::Set(SetField::Ipv6Src(a.into()))),
            any::<u128>().prop_map(|a| Action::Set(SetField::Ipv6Dst(a.into()))),
            (0u32..=0xfffff).prop_map(|l| Action::Set(SetField::Ipv6Label(l))),
            (0u8..64).prop_map(|v| Action::Set(SetField::IpDscp(v))),
            (0u8..4).prop_map(|v| Action::Set(SetField::NwEcn(v))),
            any::<u8>().prop_map(|v| Action::Set(SetField::NwTtl(v))),
            any::<u16>().prop_map(|v| Action::Set(SetField::TpSrc(v))),
            any::<u16>().prop_map(|v| Action::Set(SetField::TpDst(v))),
            (prop::option::of(1u32..=0xfeff), prop::option::of(0u8..=254))
                .prop_filter("resubmit needs a port or a table", |(p, t)| p.is_some() || t.is_some())
                .prop_map(|(in_port, table)| Action::Resubmit(Resubmit { in_port, table })),
            (subfield(), any::<u128>()).prop_map(|(dst, v)| Action::Load {
                dst,
                value: v & (dst.bits() >> dst.ofs),
                set_field: false
            }),
            (0u8..16, any::<u32>()).prop_map(|(r, v)| Action::Load {
                dst: Subfield { field: SubfieldField::Reg(r), ofs: 0, n_bits: 32 },
                value: v.into(),
                set_field: true
            }),
            prop::collection::vec(any::<u8>(), 0..12).prop_map(|mut b| {
                b.resize((10 + b.len()).div_ceil(8) * 8 - 10, 0);
                Action::Note(b)
            }),
            prop::collection::vec((1u32..=0xfeff).prop_map(Action::Output), 0..3).prop_map(Action::Clone),
            (subfield(), subfield()).prop_map(|(src, dst)| {
                let n = src.n_bits.min(dst.n_bits);
                Action::Move { src: Subfield { n_bits: n, ..src }, dst: Subfield { n_bits: n, ..dst } }
            }),
        ]
    }

    /// Actions of a `write_actions` with no prerequisite.
    fn action_set_action() -> BoxedStrategy<Action> {
        prop_oneof![
            (1u32..=0xfeff).prop_map(Action::Output),
            Just(Action::DecTtl),
            Just(Action::StripVlan),
            Just(Action::Normal),
            any::<[u8; 6]>().prop_map(|m| Action::Set(SetField::DlSrc(m))),
            (0u32..=0xffff_ff00).prop_map(Action::Group),
            (0u8..=254).prop_map(|t| Action::Resubmit(Resubmit { in_port: None, table: Some(t) })),
        ]
        .boxed()
    }

    prop_compose! {
        fn valid_rule()(
            table in 0u8..=254,
            priority in any::<u16>(),
            cookie in any::<u64>(),
            idle_timeout in any::<u16>(),
            hard_timeout in any::<u16>(),
            send_flow_rem in any::<bool>(),
            matches in valid_match(),
            actions in prop::collection::vec(action(), 0..6),
            goto in any::<Option<u8>>(),
            write_metadata in prop::option::of((any::<u64>(), any::<u64>())),
        ) -> Rule {
            let mut tagged = matches.vlan_tci.is_some_and(|t| t.mask & t.value & 0x1000 != 0);
            let ipv6 = matches.dl_type == Some(ETH_IPV6);
            // The tags as the parser's action check counts them: a third push is refused.
            let mut tags = crate::rules::VlanTags::of_match(&matches);
            // Keep only the set_field actions whose prerequisites are met at that point
            // (a VLAN tag: matched, or pushed and not stripped since).
            let mut actions: Vec<Action> = actions
                .into_iter()
                .filter(|a| {
                    let keep = match a {
                        Action::Set(SetField::VlanVid(_) | SetField::VlanPcp(_)) => tagged,
                        Action::Set(SetField::Ipv6Src(_) | SetField::Ipv6Dst(_) | SetField::Ipv6Label(_)) => ipv6,
                        Action::PushVlan(_) if { let mut t = tags; t.apply(a).is_err() } => false,
                        Action::PushVlan(_) | Action::ModVlanVid(_) | Action::ModVlanPcp(_) => {
                            tagged = true;
                            true
                        }
                        Action::StripVlan => {
                            tagged = false;
                            true
                        }
                        _ => true,
                    };
                    if keep {
                        let _ = tags.apply(a);
                    }
                    keep
                })
                .collect();
            // The instruction order: write_metadata after the actions, before goto_table.
            actions.extend(write_metadata.map(|(v, mask)| Action::WriteMetadata { value: v & mask, mask }));
            if let Some(t) = goto.filter(|&t| t > table && t != 255) {
                actions.push(Action::GotoTable(t));
            }
            Rule { table, priority, cookie, idle_timeout, hard_timeout, send_flow_rem, matches, actions }
        }
    }

    proptest! {
        /// With `clear_actions` and `write_actions` (instructions: after the actions,
        /// before `write_metadata` and `goto_table`).
        #[test]
        fn parse_of_display_with_the_action_set_is_identity(
            base in 0usize..4,
            clear in any::<bool>(),
            write in prop::collection::vec(action_set_action(), 1..4),
        ) {
            let mut rule = parse_flow(
                ["actions=drop", "ip,actions=output:1", "actions=dec_ttl,goto_table:3", "actions=write_metadata:0x1/0x3"][base],
            )
            .unwrap();
            let at = rule
                .actions
                .iter()
                .position(|a| matches!(a, Action::WriteMetadata { .. } | Action::GotoTable(_)))
                .unwrap_or(rule.actions.len());
            rule.actions.insert(at, Action::WriteActions(write));
            if clear {
                rule.actions.insert(at, Action::ClearActions);
            }
            let text = rule.to_string();
            let parsed = parse_flow(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(parsed, rule, "{}", text);
        }

        /// The typed test of version dependence and the words its printed form is
        /// filtered by agree, and a rule it says does not depend on the version is, under
        /// each version that loads it (as `ovs-ofctl -O` does), itself. (A version may
        /// refuse such a rule, e.g. `mod_tp_src` without a transport protocol under 1.3:
        /// then it is never held as read in that version.)
        #[test]
        fn version_dependence_is_decided_on_the_typed_rule(rule in valid_rule()) {
            use crate::openflow::Version;
            use crate::openflow::convert::{as_loaded, depends_on_version, may_depend_on_version};
            let text = rule.to_string();
            // `may_depend_on_version` looks for the action list after the last space first.
            let list = &text[text.find("actions=").expect("every rule is printed with its actions")..];
            prop_assert!(!list.contains(' '), "an action list printed with a space: {}", text);
            if depends_on_version(&rule) {
                prop_assert!(may_depend_on_version(&text), "{}", text);
            } else {
                for v in [Version::Of10, Version::Of13] {
                    if let Ok(loaded) = as_loaded(rule.clone(), v) {
                        prop_assert_eq!(&loaded, &rule, "{} under {:?}", text, v);
                    }
                }
            }
        }

        #[test]
        fn parse_of_display_is_identity(rule in valid_rule()) {
            let text = rule.to_string();
            let parsed = parse_flow(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(parsed, rule, "{}", text);
        }
    }
}
