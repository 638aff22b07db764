//! OpenFlow flow-mods (modify and delete; an add is `add_flows`) applied by the slow path
//! itself, as Open vSwitch applies them: which rules a modify or delete selects (strict or
//! not, table, cookie under a mask, output port) and what becomes of them.
//!
//! - *modify* changes the actions of every selected rule (and, in OpenFlow 1.0, its
//!   cookie), keeping its counters and age as in OVS; in OpenFlow 1.0 a modify that
//!   selects nothing adds the rule.
//! - *delete* removes every selected rule; the deleted rules with `send_flow_rem` come
//!   back with their counters, for the controllers' flow-removed messages.
//! - Non-strict selection: the rule's match is at least as specific as the flow-mod's
//!   (`match_covers`), priority ignored. Strict: same priority and the same match.
//!
//! [`SlowPath::flow_mod`] finds a strict flow-mod's rule through the identity index (a
//! non-strict one is a pass over the rules) and changes the version in place when it can
//! (see `RuleTables::modify_in_place` and `delete_in_place`), as one atomic rule change.
//! The daemon used to read every rule with its counters, compute the changed list and
//! hand it back whole (`replace_rules`): at 100,000 rules that copy was most of a
//! flow-mod's 31-56 ms, and a rule that timed out between the read and the change came
//! back. [`apply_change`], that list semantics, stays as the reference the slow path is
//! tested against.

use ferrovs_config::openflow::convert::{OFPP_ALL, OFPP_FLOOD, OFPP_NORMAL};
use ferrovs_config::openflow::{OFPP_ANY, OFPP_CONTROLLER, OFPP_IN_PORT};
use ferrovs_config::{Action, Masked, Rule};

use super::{ListEdit, Out, Replace, RuleDump, SlowPath, SlowPathError, match_covers};
use crate::upcall::PmdCommand;
use crate::xlate::{RuleRef, RuleTables};

/// What a flow-mod does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Add,
    Modify { strict: bool },
    Delete { strict: bool },
}

/// A flow-mod in the rule model.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowChange {
    pub kind: ChangeKind,
    /// The rule to add, or the match, priority and actions of a modify/delete.
    pub rule: Rule,
    /// `None`: every table (modify/delete only).
    pub table: Option<u8>,
    /// Delete only rules that output to this port (`OFPP_ANY`: any).
    pub out_port: u32,
    /// Select only rules whose cookie equals this value under this mask.
    pub cookie: Option<Masked<u64>>,
    /// Modify also sets the cookie (OpenFlow 1.0).
    pub modify_cookie: bool,
    /// A modify that selects nothing adds the rule (OpenFlow 1.0).
    pub add_if_missing: bool,
}

/// Whether `rule` sends packets to `port` (a port number or a reserved port).
pub fn outputs_to(rule: &Rule, port: u32) -> bool {
    port == OFPP_ANY || list_outputs_to(&rule.actions, port)
}

/// Whether an action list outputs to `port`, a `clone`'s and `write_actions`' included (as
/// OVS looks into them).
fn list_outputs_to(actions: &[Action], port: u32) -> bool {
    actions.iter().any(|a| match *a {
        Action::Output(p) => p == port,
        Action::InPort => port == OFPP_IN_PORT,
        Action::Flood => port == OFPP_FLOOD,
        Action::All => port == OFPP_ALL,
        Action::Normal => port == OFPP_NORMAL,
        Action::Controller { .. } => port == OFPP_CONTROLLER,
        Action::Clone(ref inner) | Action::WriteActions(ref inner) => list_outputs_to(inner, port),
        _ => false,
    })
}

fn selects(c: &FlowChange, strict: bool, rule: &Rule) -> bool {
    c.table.is_none_or(|t| t == rule.table)
        && c.cookie.is_none_or(|k| k.selects(rule.cookie))
        && (!strict || rule.priority == c.rule.priority)
        && match_covers(&c.rule.matches, &rule.matches)
        && (!strict || match_covers(&rule.matches, &c.rule.matches))
}

/// The rule list after a modify or delete (an add goes to the slow path's add), or
/// `None` when nothing changes: the list semantics [`SlowPath::flow_mod`] is tested
/// against.
pub fn apply_change(rules: &[Rule], c: &FlowChange) -> Option<Vec<Rule>> {
    match c.kind {
        ChangeKind::Add => None,
        ChangeKind::Delete { strict } => {
            let kept: Vec<Rule> =
                rules.iter().filter(|r| !(selects(c, strict, r) && outputs_to(r, c.out_port))).cloned().collect();
            (kept.len() != rules.len()).then_some(kept)
        }
        ChangeKind::Modify { strict } => {
            let mut any = false;
            let out: Vec<Rule> = rules
                .iter()
                .map(|r| {
                    if !selects(c, strict, r) {
                        return r.clone();
                    }
                    any = true;
                    let mut r = r.clone();
                    r.actions = c.rule.actions.clone();
                    if c.modify_cookie {
                        r.cookie = c.rule.cookie;
                    }
                    r
                })
                .collect();
            if any {
                Some(out)
            } else if c.add_if_missing {
                let mut out = out;
                out.push(c.rule.clone());
                Some(out)
            } else {
                None
            }
        }
    }
}

/// What [`SlowPath::flow_mod`] did.
#[derive(Debug, Default)]
pub struct FlowModDone {
    /// The commands for the PMDs (as every rule change's).
    pub cmds: Vec<(usize, PmdCommand)>,
    /// Whether any rule changed (else there is nothing to write back).
    pub changed: bool,
    /// The deleted rules that asked for a flow-removed (`send_flow_rem`), with their
    /// counters at the deletion.
    pub removed: Vec<RuleDump>,
}

/// The rules of `tables` that `c` selects, in rule order (see the module documentation).
fn select(tables: &RuleTables, c: &FlowChange, strict: bool) -> Vec<RuleRef> {
    if strict {
        // One identity per table: found through the identity index (a table that never
        // had a rule is not hashed for: a flow-mod without a table names all 256).
        let tables_of = |t: u8| c.table.is_none_or(|x| x == t) && tables.may_have_rules(t);
        let found: Vec<RuleRef> = (0..=u8::MAX)
            .filter(|t| tables_of(*t))
            .filter_map(|t| tables.find(t, c.rule.priority, &c.rule.matches))
            .filter(|r| selects(c, true, tables.rule(*r)))
            .collect();
        if !found.is_empty() {
            let mut found = found;
            found.sort_unstable();
            return found;
        }
        // Equal meaning is what counts, not equal spelling: a match that the identity
        // index does not know may still select a rule.
    }
    (0..tables.rules().len() as u32).map(RuleRef).filter(|r| selects(c, strict, tables.rule(*r))).collect()
}

impl SlowPath {
    /// An OpenFlow flow-mod `c` on `bridge` (see the module documentation): applied as
    /// one rule change, in place when the change is small and the bridge large (as
    /// `add_flows` and `del_flows`).
    pub fn flow_mod(&mut self, bridge: &str, c: &FlowChange, now_ms: u64) -> Result<FlowModDone, SlowPathError> {
        let b = self.bridge_index(bridge)?;
        let (strict, delete) = match c.kind {
            ChangeKind::Add => return self.flow_mod_add(bridge, c, now_ms),
            ChangeKind::Modify { strict } => (strict, false),
            ChangeKind::Delete { strict } => (strict, true),
        };
        let tables = &self.bridges[b].tables;
        let mut selected = select(tables, c, strict);
        if delete {
            selected.retain(|r| outputs_to(tables.rule(*r), c.out_port));
        }
        if selected.is_empty() {
            return if !delete && c.add_if_missing {
                self.flow_mod_add(bridge, c, now_ms)
            } else {
                Ok(FlowModDone::default())
            };
        }
        let mut out = Out::new(self.mirrors.len());
        let print = self.cfg.print_changed_rules;
        let n = tables.rules().len();
        if delete {
            let removed = self.notified_dumps(b, selected.iter().copied(), now_ms);
            let br = &self.bridges[b];
            let mut gone = vec![false; n];
            for r in &selected {
                gone[r.0 as usize] = true;
            }
            if self.in_place(b, selected.len()) {
                self.delete_in_place(b, &gone, now_ms, &mut out);
            } else {
                let list = br.tables.rules().iter().zip(&gone).filter(|(_, g)| !**g).map(|(r, _)| r.clone()).collect();
                let replace = Replace { print, list_edit: ListEdit::Deleted(gone), ..Replace::default() };
                self.change_rules(b, list, usize::MAX, replace, now_ms, &mut out)?;
            }
            return Ok(FlowModDone { cmds: out.finish(), changed: true, removed });
        }
        let cookie = |r: &Rule| if c.modify_cookie { c.rule.cookie } else { r.cookie };
        let modified = |r: &Rule| Rule { actions: c.rule.actions.clone(), cookie: cookie(r), ..r.clone() };
        if self.in_place(b, selected.len())
            && selected.iter().all(|r| tables.valid_in_place(&modified(tables.rule(*r))))
        {
            let changes = selected.iter().map(|r| (*r, c.rule.actions.clone(), cookie(tables.rule(*r)))).collect();
            self.modify_in_place(b, changes, now_ms, &mut out);
        } else {
            let mut list = tables.rules().to_vec();
            for r in &selected {
                list[r.0 as usize] = modified(&list[r.0 as usize]);
            }
            // Identities unchanged: every rule keeps its counters (as `replace_rules`).
            let replace = Replace { print, list_edit: ListEdit::Modified(selected), ..Replace::default() };
            self.change_rules(b, list, usize::MAX, replace, now_ms, &mut out)?;
        }
        Ok(FlowModDone { cmds: out.finish(), changed: true, removed: Vec::new() })
    }

    /// A flow-mod that adds `c.rule` (an add, or an OpenFlow 1.0 modify that selected
    /// nothing): `add_flows` of it.
    fn flow_mod_add(&mut self, bridge: &str, c: &FlowChange, now_ms: u64) -> Result<FlowModDone, SlowPathError> {
        let cmds = self.add_flows(bridge, vec![c.rule.clone()], now_ms)?;
        Ok(FlowModDone { cmds, changed: true, removed: Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_config::parse_flow;

    fn rules(lines: &[&str]) -> Vec<Rule> {
        lines.iter().map(|l| parse_flow(l).unwrap()).collect()
    }

    fn change(kind: ChangeKind, rule: &str) -> FlowChange {
        FlowChange {
            kind,
            rule: parse_flow(rule).unwrap(),
            table: None,
            out_port: OFPP_ANY,
            cookie: None,
            modify_cookie: false,
            add_if_missing: false,
        }
    }

    const TABLE: &[&str] = &[
        "priority=10,in_port=1,actions=output:2",
        "priority=20,tcp,in_port=1,tp_dst=80,actions=output:3",
        "table=1,priority=10,in_port=1,actions=NORMAL",
        "cookie=0x5,priority=5,ip,actions=drop",
    ];

    #[test]
    fn delete_strict_and_not() {
        let t = rules(TABLE);
        let got = apply_change(&t, &change(ChangeKind::Delete { strict: false }, "in_port=1,actions=drop")).unwrap();
        assert_eq!(got, rules(&[TABLE[3]]));
        let mut c = change(ChangeKind::Delete { strict: true }, "priority=10,in_port=1,actions=drop");
        assert_eq!(apply_change(&t, &c).unwrap(), rules(&[TABLE[1], TABLE[3]]));
        c.table = Some(1);
        assert_eq!(apply_change(&t, &c).unwrap(), rules(&[TABLE[0], TABLE[1], TABLE[3]]));
        let mut c = change(ChangeKind::Delete { strict: true }, "priority=11,in_port=1,actions=drop");
        assert_eq!(apply_change(&t, &c), None, "another priority");
        c.rule.priority = 10;
        c.out_port = 3;
        assert_eq!(apply_change(&t, &c), None, "does not output to 3");
        c.out_port = 2;
        assert_eq!(apply_change(&t, &c).unwrap(), rules(&[TABLE[1], TABLE[2], TABLE[3]]));
        let mut c = change(ChangeKind::Delete { strict: false }, "actions=drop");
        c.out_port = OFPP_NORMAL;
        assert_eq!(apply_change(&t, &c).unwrap(), rules(&[TABLE[0], TABLE[1], TABLE[3]]));
        c.out_port = OFPP_ANY;
        c.cookie = Some(Masked { value: 5, mask: u64::MAX });
        assert_eq!(apply_change(&t, &c).unwrap(), rules(&[TABLE[0], TABLE[1], TABLE[2]]));
    }

    #[test]
    fn modify_changes_actions_or_adds_in_of10() {
        let t = rules(TABLE);
        let c = change(ChangeKind::Modify { strict: false }, "tcp,actions=output:4");
        let want = rules(&[TABLE[0], "priority=20,tcp,in_port=1,tp_dst=80,actions=output:4", TABLE[2], TABLE[3]]);
        assert_eq!(apply_change(&t, &c).unwrap(), want);
        let mut c = change(ChangeKind::Modify { strict: true }, "priority=30,udp,actions=output:4");
        assert_eq!(apply_change(&t, &c), None);
        c.add_if_missing = true;
        let got = apply_change(&t, &c).unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(got[4], c.rule);
    }

    /// `apply_change`'s list with identities made unique as a version makes them (a later
    /// rule of an identity replaces the first in its place): an OpenFlow 1.0 modify that
    /// selects nothing appends a rule whose identity another rule may have (one its cookie
    /// or table filter left out), which the slow path's add replaces.
    fn canon(rules: Vec<Rule>) -> Vec<Rule> {
        let mut out: Vec<Rule> = Vec::new();
        for r in rules {
            match out.iter_mut().find(|o| (o.table, o.priority, &o.matches) == (r.table, r.priority, &r.matches)) {
                Some(o) => *o = r,
                None => out.push(r),
            }
        }
        out
    }

    #[test]
    fn flow_mods_apply_as_the_list_semantics_in_place_and_by_a_build() {
        use crate::slow_path::{BridgeSpec, SlowPathConfig};
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let matches =
            ["in_port=1", "ip", "ip,nw_dst=198.18.0.0/16", "ip,nw_dst=198.18.1.0/24", "tcp", "tcp,tp_dst=80", ""];
        let gen_rule = |rnd: &mut dyn FnMut(u64) -> u64| {
            let m = matches[rnd(matches.len() as u64) as usize];
            let text = format!(
                "table={},priority={},cookie={}{}{}{},actions=output:{}",
                rnd(2),
                10 * rnd(3),
                rnd(3),
                if rnd(3) == 0 { ",send_flow_rem" } else { "" },
                if m.is_empty() { "" } else { "," },
                m,
                1 + rnd(3)
            );
            parse_flow(&text).unwrap()
        };
        use ferrovs_config::persist::journal;
        let mut in_place_changes = 0;
        let mut journaled = 0;
        for add_in_place_from in [1, usize::MAX] {
            let initial = canon((0..40).map(|_| gen_rule(&mut rnd)).collect());
            let cfg = SlowPathConfig { add_in_place_from, print_changed_rules: true, ..SlowPathConfig::default() };
            let br = BridgeSpec {
                name: "br0".into(),
                ports: vec![1, 2, 3],
                datapath_ports: Vec::new(),
                rules: initial,
                groups: Default::default(),
            };
            let mut sp = SlowPath::new(vec![br], 1, cfg, 0).unwrap();
            let mut written: Option<Vec<String>> = None;
            for step in 0..400u64 {
                let kind = match rnd(4) {
                    0 => ChangeKind::Modify { strict: false },
                    1 => ChangeKind::Modify { strict: true },
                    2 => ChangeKind::Delete { strict: false },
                    _ => ChangeKind::Delete { strict: true },
                };
                let mut c = change(kind, &gen_rule(&mut rnd).to_string());
                c.table = (rnd(2) == 0).then_some(c.rule.table);
                c.out_port = [OFPP_ANY, 1, 2][rnd(3) as usize];
                c.cookie = (rnd(3) == 0).then(|| Masked { value: rnd(3), mask: [u64::MAX, 1][rnd(2) as usize] });
                c.modify_cookie = rnd(2) == 0;
                c.add_if_missing = rnd(2) == 0;
                let before = sp.rules("br0").unwrap().to_vec();
                let want = canon(apply_change(&before, &c).unwrap_or_else(|| before.clone()));
                let changed_before = sp.bridges[0].tables.changed_in_place();
                let done = sp.flow_mod("br0", &c, 1_000 * step).unwrap();
                in_place_changes += usize::from(sp.bridges[0].tables.changed_in_place() != changed_before);
                let got = sp.rules("br0").unwrap().to_vec();
                assert_eq!(got, want, "step {step}: {c:?}");
                assert!(done.changed || want == before, "step {step}: changed, not said so");
                if matches!(c.kind, ChangeKind::Delete { .. }) {
                    assert_eq!(done.changed, want != before, "step {step}");
                    let gone: Vec<&Rule> = before.iter().filter(|r| r.send_flow_rem && !want.contains(r)).collect();
                    let removed: Vec<&Rule> = done.removed.iter().map(|d| &d.rule).collect();
                    assert_eq!(removed, gone, "step {step}: the flow-removed rules");
                }
                if let Some(printed) = sp.printed_rules("br0") {
                    let texts: Vec<String> = got.iter().map(ToString::to_string).collect();
                    assert_eq!(*printed, texts, "step {step}: the printed rules");
                    // What the write-back journals, replayed over what it wrote before.
                    let edits = sp.take_rule_text_edits("br0");
                    if let (Some(w), Some(edits)) = (&written, &edits) {
                        let stamp = journal::FlowsStamp { generation: 1, hash: 1 };
                        let record = String::from_utf8(journal::record(edits)).unwrap();
                        let j = format!("{}{record}", journal::journal_header("br0.flows", stamp));
                        let mut lines: Vec<(&str, journal::LineOrigin)> =
                            w.iter().map(|t| (t.as_str(), journal::LineOrigin::Flows(0))).collect();
                        journal::replay(&mut lines, Some(stamp), &j).unwrap();
                        let replayed: Vec<&str> = lines.iter().map(|(t, _)| *t).collect();
                        assert_eq!(replayed, texts, "step {step}: journaled {edits:?}");
                        journaled += 1;
                    }
                    written = Some(texts);
                }
                if got.len() < 10 {
                    for _ in 0..20 {
                        sp.add_flows("br0", vec![gen_rule(&mut rnd)], 1_000 * step).unwrap();
                    }
                }
            }
        }
        assert!(in_place_changes > 100, "only {in_place_changes} flow-mods were made in place");
        assert!(journaled > 300, "only {journaled} changes were journaled");
    }
}
