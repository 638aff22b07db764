//! Building a [`Match`] (plus the rule properties `table`, `priority`, `cookie` and the
//! timeouts) from `KEY[=VALUE]` fields, one at a time, then checking it as a whole.
//!
//! # Design
//!
//! What a match field is (names, storage, syntax, masking, prerequisite) is data in
//! [`crate::field::FIELDS`]; this builder only applies it. [`RuleBuilder::apply`] handles
//! one field: it looks the key up, parses the value ([`crate::field_value`]), records the
//! prerequisite and stores the value over the bits the field covers. As in `ovs-ofctl`
//! (OVS 3.1, checked with `ovs-ofctl parse-flow`), a later field replaces what earlier
//! ones said about the same bits, whatever names they used: `tp_dst=80,tp_dst=81` is
//! `tp_dst=81`, `tcp,udp` is `udp`, `nw_tos=4,nw_ecn=1,nw_tos=8` is `nw_tos=8,nw_ecn=1`,
//! `dl_vlan=0xffff,dl_vlan=5` is `dl_vlan=5,dl_vlan_pcp=0` (the PCP bits stay matched),
//! and a repeated property (`priority`) keeps its last value.
//!
//! [`RuleBuilder::finish`] runs once every field is known, because OpenFlow
//! prerequisites do not depend on field order (`tp_dst=80,tcp` is fine): each field's
//! prerequisite is checked against the final `dl_type`/`nw_proto`, and a missing one is
//! an error at that field's position. Open vSwitch instead silently drops such fields
//! ("normalization changed ofp_match"); a rule that quietly matches more than it says is
//! a security bug, so ferrovs refuses it.
//!
//! The builder serves three callers, told apart by [`Mode`]: flows (`add-flow`), matches
//! (`del-flows`: `table`, `priority` and a masked `cookie` allowed, no timeouts) and
//! packets (`trace`: exact values only, `in_port` required, masks widened to exact).
//!
//! Positions come from the caller through a `locate` function mapping a byte offset
//! inside the value to a [`Position`], so the TOML `[[bridge.rule]]` form, which has no
//! ofctl line, reports positions in the TOML file.

use crate::field::{FieldDef, KeyName, Masking, MatchSlot, PipelineField, Prereq, Shorthand, ValueKind, key_by_name};
use crate::field_value::{ParseFailure, parse_field_value};
use crate::rule_error::RuleError;
use crate::rules::{Masked, Match, Position};
use crate::values::{ValueError, parse_masked_uint, parse_masked_wide_uint, parse_uint};

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

/// The rule properties: keys that are not match fields.
const PROPERTIES: [&str; 5] = ["table", "priority", "cookie", "idle_timeout", "hard_timeout"];

/// The rule flag keyword (OVS's `send_flow_rem`).
pub(crate) const SEND_FLOW_REM: &str = "send_flow_rem";

/// Counters printed by `ovs-ofctl dump-flows`: accepted and ignored in rules and matches,
/// as OVS does, so dump-flows output can be fed back. They carry no match semantics.
const COUNTERS: [&str; 5] = ["duration", "n_packets", "n_bytes", "idle_age", "hard_age"];

fn nonzero<T: PartialEq>(m: Masked<T>, zero: T) -> Option<Masked<T>> {
    if m.mask == zero { None } else { Some(m) }
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
    /// The `send_flow_rem` flag (a keyword without value).
    pub send_flow_rem: bool,
    m: Match,
    /// Each field with a prerequisite as it was given (its name as written), checked
    /// when the match is whole.
    prereqs: Prereqs,
    /// Neighbour-discovery fields given, for their ICMPv6 type check.
    nd_fields: Vec<(MatchSlot, &'static str, Position)>,
}

/// The fields with a prerequisite of one rule, in order: the first few in place (a rule
/// line names a handful of fields; a vector per line was an allocation per rule of a
/// million-line file), more in a vector.
#[derive(Debug, Default)]
struct Prereqs {
    inline: [Option<(Prereq, &'static str, Position)>; 8],
    more: Vec<(Prereq, &'static str, Position)>,
}

impl Prereqs {
    fn push(&mut self, p: (Prereq, &'static str, Position)) {
        match self.inline.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(p),
            None => self.more.push(p),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &(Prereq, &'static str, Position)> {
        self.inline.iter().map_while(Option::as_ref).chain(&self.more)
    }
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
            send_flow_rem: false,
            m: Match::default(),
            prereqs: Prereqs::default(),
            nd_fields: Vec::new(),
        }
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
        let name = key_by_name(key);
        if let Some(KeyName::Shorthand(sh)) = name {
            return self.apply_shorthand(sh, value, key_pos);
        }
        // OVS's `eth` is `packet_type=(0,0)`, an Ethernet frame: every packet a bridge
        // sees is one, so it matches everything (and OVS prints nothing for it).
        if key == "eth" && value.is_none() {
            return Ok(());
        }
        if key == SEND_FLOW_REM {
            if self.mode != Mode::Flow {
                return Err(not_allowed(key, key_pos, if self.mode == Mode::Packet { "a packet" } else { "a match" }));
            }
            if value.is_some() {
                return Err(RuleError::new(key_pos, "`send_flow_rem` is a flag and takes no value"));
            }
            self.send_flow_rem = true;
            return Ok(());
        }
        if key == "actions" {
            return Err(RuleError::new(key_pos, "`actions` must be written `actions=ACTION,...`"));
        }
        if let Some(pf) = PipelineField::by_name(key) {
            let Some(text) = value else {
                return Err(RuleError::new(key_pos, format!("`{key}` needs a value (`{key}=...`)")));
            };
            return self.apply_pipeline(pf, key, key_pos, text, locate);
        }
        let field = match name {
            Some(KeyName::Field(name, f)) => Some((name, f)),
            _ => None,
        };
        let Some(text) = value else {
            if field.is_some() || PROPERTIES.contains(&key) {
                return Err(RuleError::new(key_pos, format!("`{key}` needs a value (`{key}=...`)")));
            }
            return Err(unknown(key, key_pos));
        };
        match field {
            Some((name, f)) => self.apply_field(f, name, key_pos, text, locate),
            None => self.apply_property(key, key_pos, text, locate),
        }
    }

    fn apply_shorthand(&mut self, sh: &Shorthand, value: Option<&str>, key_pos: Position) -> Result<(), RuleError> {
        if value.is_some() {
            return Err(RuleError::new(key_pos, format!("`{}` is a shorthand and takes no value", sh.name)));
        }
        self.m.dl_type = Some(sh.dl_type);
        if let Some(p) = sh.nw_proto {
            self.m.nw_proto = Some(p);
        }
        Ok(())
    }

    /// `table`, `priority`, `cookie`, the timeouts, and the ignored counters.
    fn apply_property(
        &mut self,
        key: &str,
        key_pos: Position,
        text: &str,
        locate: Locate<'_>,
    ) -> Result<(), RuleError> {
        let packet = self.mode == Mode::Packet;
        if packet && PROPERTIES.contains(&key) {
            return Err(not_allowed(key, key_pos, "a packet"));
        }
        let verr = |e: ValueError| invalid(key, e, locate);
        match key {
            "table" => self.table = Some(parse_uint(text, 254).map_err(verr)? as u8),
            "priority" => self.priority = Some(parse_uint(text, 65535).map_err(verr)? as u16),
            "cookie" => self.cookie = Some(self.parse_cookie(text, locate)?),
            "idle_timeout" | "hard_timeout" => {
                if self.mode != Mode::Flow {
                    return Err(not_allowed(key, key_pos, "a match"));
                }
                let t = Some(parse_uint(text, 65535).map_err(verr)? as u16);
                if key == "idle_timeout" {
                    self.idle_timeout = t;
                } else {
                    self.hard_timeout = t;
                }
            }
            _ if COUNTERS.contains(&key) && !packet => {}
            _ => return Err(unknown(key, key_pos)),
        }
        Ok(())
    }

    /// `cookie=V`, or in a match `cookie=V/M` (`V/-1` is exact).
    fn parse_cookie(&self, text: &str, locate: Locate<'_>) -> Result<Masked<u64>, RuleError> {
        let verr = |e: ValueError| invalid("cookie", e, locate);
        match (self.mode, text.split_once('/')) {
            (Mode::Flow, Some((v, _))) => Err(RuleError::new(
                locate(v.len()),
                "a cookie mask is only accepted when matching rules (del-flows), not in a rule",
            )),
            (_, Some((v, "-1"))) => Ok(Masked { value: parse_uint(v, u64::MAX).map_err(verr)?, mask: u64::MAX }),
            _ => parse_masked_uint(text, u64::MAX).map_err(verr),
        }
    }

    /// A register or the metadata: replaces what earlier fields said about the registers
    /// it covers (`reg0=1,reg0=0x2/0x2` is `reg0=0x2/0x2`, as in OVS).
    fn apply_pipeline(
        &mut self,
        pf: PipelineField,
        key: &str,
        key_pos: Position,
        text: &str,
        locate: Locate<'_>,
    ) -> Result<(), RuleError> {
        if self.mode == Mode::Packet {
            return Err(RuleError::new(
                key_pos,
                format!("`{key}` is pipeline state (zero when a packet enters the switch), not a packet field"),
            ));
        }
        let width = pf.width();
        let max = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
        let v = parse_masked_wide_uint(text, max).map_err(|e| invalid(key, e, locate))?;
        if pf == PipelineField::Metadata {
            self.m.metadata = nonzero(Masked { value: v.value as u64, mask: v.mask as u64 }, 0);
            return Ok(());
        }
        let regs = pf.regs();
        let last = regs.end - 1;
        for r in regs {
            let shift = 32 * u32::from(last - r);
            let part = |x: u128| (x >> shift) as u32;
            self.m.set_reg(r, Some(Masked { value: part(v.value), mask: part(v.mask) }));
        }
        Ok(())
    }

    /// A match field of the table; `key` is its name as written (the table's spelling).
    fn apply_field(
        &mut self,
        f: &FieldDef,
        key: &'static str,
        key_pos: Position,
        text: &str,
        locate: Locate<'_>,
    ) -> Result<(), RuleError> {
        if self.mode == Mode::Packet {
            check_packet_value(f, key, text, locate)?;
        }
        if let Some(p) = f.prereq {
            self.prereqs.push((p, key, key_pos));
        }
        if f.slot.nd_icmp_types().is_some() {
            self.nd_fields.push((f.slot, key, key_pos));
        }
        let v = parse_field_value(f, key, text, self.mode == Mode::Packet).map_err(|e| match e {
            ParseFailure::Value(e) => invalid(key, e, locate),
            ParseFailure::Whole(reason) => RuleError::new(locate(0), reason),
        })?;
        self.store(f, v);
        Ok(())
    }

    /// Stores `v` over the bits `f` covers (plus the bits its mask sets, e.g. the VLAN
    /// "present" bit of `dl_vlan`): earlier values of those bits are replaced, other bits
    /// of the slot are kept.
    fn store(&mut self, f: &FieldDef, v: Masked<u128>) {
        let cover = f.bits | v.mask;
        let old = self.m.slot(f.slot).unwrap_or(Masked { value: 0, mask: 0 });
        let new = Masked { value: (old.value & !cover) | v.value, mask: (old.mask & !cover) | v.mask };
        self.m.set_slot(f.slot, nonzero(new, 0));
    }

    /// Checks the fields as a whole and returns the match. `end` is the position used for
    /// errors about something missing (e.g. a packet without `in_port`).
    pub(crate) fn finish(mut self, end: Position) -> Result<Match, RuleError> {
        for (prereq, key, pos) in self.prereqs.iter() {
            if !prereq.holds(self.m.dl_type, self.m.nw_proto) {
                return Err(RuleError::new(*pos, format!("`{key}` requires a match on {}", prereq.describe())));
            }
        }
        for (slot, key, pos) in &self.nd_fields {
            let types = slot.nd_icmp_types().expect("an ND slot");
            if self.m.slot(*slot).is_some() && !slot.nd_type_holds(&self.m) {
                let types = types.iter().map(|t| format!("icmp_type={t}")).collect::<Vec<_>>().join(" or ");
                return Err(RuleError::new(
                    *pos,
                    format!(
                        "`{key}` requires {types} (and icmp_code absent or 0); \
                         Open vSwitch would silently ignore it and match more"
                    ),
                ));
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

/// A packet is described with exact values only.
fn check_packet_value(f: &FieldDef, key: &str, text: &str, locate: Locate<'_>) -> Result<(), RuleError> {
    if f.kind == ValueKind::TcpFlags && text.starts_with(['+', '-']) {
        return Err(RuleError::new(
            locate(0),
            "`tcp_flags` of a packet takes an exact value (e.g. 0x002), not +flag/-flag",
        ));
    }
    match text.find('/') {
        Some(slash) if f.masking != Masking::None => {
            Err(RuleError::new(locate(slash), format!("`{key}` of a packet takes an exact value, not a mask")))
        }
        _ => Ok(()),
    }
}

/// Turns every matched slot into an exact match of all the bits its fields cover: a
/// packet has every bit of a field it has. Fields absent from the description stay
/// `None` (zero in the packet).
fn widen_to_exact(m: &mut Match) {
    for slot in MatchSlot::ALL {
        if let Some(v) = m.slot(slot) {
            let all = slot.fields().fold(0, |acc, f| acc | f.bits);
            m.set_slot(slot, Some(Masked { value: v.value, mask: all }));
        }
    }
}

fn invalid(key: &str, e: ValueError, locate: Locate<'_>) -> RuleError {
    RuleError::new(locate(e.offset), format!("invalid `{key}`: {}", e.reason))
}

fn unknown(key: &str, pos: Position) -> RuleError {
    RuleError::new(pos, format!("unknown or unsupported field `{key}`"))
}

fn not_allowed(key: &str, pos: Position, what: &str) -> RuleError {
    RuleError::new(pos, format!("`{key}` is not allowed in {what}"))
}

#[cfg(test)]
mod tests;
