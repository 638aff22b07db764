//! Flow-mod semantics over a bridge's rule list, as Open vSwitch applies them: which
//! rules a modify or delete selects (strict or not, table, cookie under a mask, output
//! port) and what the list becomes. Pure: the main thread reads the rules, computes the
//! new list and applies it as one atomic rule change (`replace_rules`, which carries the
//! counters over by rule identity — table, priority, match — so a modified rule keeps its
//! counters and age, as in OVS). A rule that times out between that read and the change
//! would come back; the window is one main-thread step.
//!
//! - *add* is the slow path's `add-flows` (same table, priority and match replaces).
//! - *modify* changes the actions of every selected rule (and, in OpenFlow 1.0, its
//!   cookie); in OpenFlow 1.0 a modify that selects nothing adds the rule.
//! - *delete* removes every selected rule.
//! - Non-strict selection: the rule's match is at least as specific as the flow-mod's
//!   (`match_covers`), priority ignored. Strict: same priority and the same match.

use ferrovs_config::{Action, Masked, Rule};
use ferrovs_flowcache::slow_path::match_covers;

use ferrovs_config::openflow::convert::{OFPP_ALL, OFPP_FLOOD, OFPP_NORMAL};
use ferrovs_config::openflow::{OFPP_ANY, OFPP_CONTROLLER, OFPP_IN_PORT};

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
        && c.cookie.is_none_or(|k| rule.cookie & k.mask == k.value & k.mask)
        && (!strict || rule.priority == c.rule.priority)
        && match_covers(&c.rule.matches, &rule.matches)
        && (!strict || match_covers(&rule.matches, &c.rule.matches))
}

/// The rule list after a modify or delete (an add goes to the slow path's add), or
/// `None` when nothing changes.
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
}
