//! Rule-list edits with `ovs-ofctl` semantics: `add-flow(s)` and non-strict `del-flows`.
//!
//! # Semantics (OpenFlow 1.0, as Open vSwitch 3.1 with `ovs-ofctl`)
//!
//! - *add*: a rule with the same table, priority and match as an existing one replaces
//!   it in place (an OFPFC_ADD of an identical flow), and its counters start afresh;
//!   any other rule is appended.
//! - *non-strict delete*: deletes every rule, in the given table or in all tables, whose
//!   match is *at least as specific* as the given match: every field the given match
//!   constrains, the rule constrains too, with a mask covering the given mask and the
//!   same value under it. Priority is ignored; a masked cookie, if given, must match.
//!   The empty match deletes everything.
//!
//! Both matches are first normalised as OpenFlow 1.0 does (and as `RuleTables`
//! compiles them): a field whose prerequisite is missing (`nw_dst` without `ip`/`arp`,
//! `tp_dst` without a transport protocol, ...) is ignored, and an all-zero mask is the
//! same as no match. So `del-flows nw_dst=10.0.0.0/8` (no `ip`) deletes every rule,
//! which is what `ovs-ofctl` does (after a warning).

use ferrovs_config::MatchSpec;
use ferrovs_config::rules::{Match, Rule};

use crate::xlate::tables::{IdentityIndex, compile_match, identity_hash};

/// True if `specific` is at least as specific as `general` (see the module doc).
/// Both matches are normalised exactly as `RuleTables` compiles rules.
pub fn match_covers(general: &Match, specific: &Match) -> bool {
    let (g, _) = compile_match(general);
    let (s, _) = compile_match(specific);
    g.iter().all(|gf| {
        s.iter()
            .find(|sf| sf.field == gf.field)
            .is_some_and(|sf| sf.mask & gf.mask == gf.mask && sf.value & gf.mask == gf.value)
    })
}

/// True if `rule` is selected by a non-strict `del-flows` with `spec`.
pub fn del_selects(spec: &MatchSpec, rule: &Rule) -> bool {
    spec.table.is_none_or(|t| t == rule.table)
        && spec.cookie.is_none_or(|c| rule.cookie & c.mask == c.value & c.mask)
        && match_covers(&spec.matches, &rule.matches)
}

/// `rules` after adding `new` with `add-flows` semantics. Also returns, for each rule
/// of the result that replaced an existing one, its (table, priority, match) identity
/// index in the result, so that its counters can be reset.
pub fn add_rules(rules: &[Rule], new: Vec<Rule>) -> (Vec<Rule>, Vec<usize>) {
    let mut out = rules.to_vec();
    let mut replaced = Vec::new();
    // Identity -> position in `out`, extended as new rules are appended (a bulk add
    // must not be quadratic).
    let mut at = IdentityIndex::with_capacity(out.len() + new.len());
    for (i, o) in out.iter().enumerate() {
        at.insert(identity_hash(o.table, o.priority, &o.matches), i);
    }
    let mut is_replaced = vec![false; out.len()];
    for r in new {
        let h = identity_hash(r.table, r.priority, &r.matches);
        let same = |i: usize| out[i].table == r.table && out[i].priority == r.priority && out[i].matches == r.matches;
        match at.find(h, same) {
            Some(i) => {
                if i < is_replaced.len() && !is_replaced[i] {
                    is_replaced[i] = true;
                    replaced.push(i);
                }
                out[i] = r;
            }
            None => {
                at.insert(h, out.len());
                out.push(r);
            }
        }
    }
    (out, replaced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_config::{parse_flow, parse_match};

    fn m(s: &str) -> Match {
        parse_match(s).unwrap().matches
    }

    #[test]
    fn covers_by_field_and_prefix() {
        assert!(match_covers(&m(""), &m("tcp,tp_dst=80")));
        assert!(match_covers(&m("ip"), &m("tcp,nw_dst=10.1.0.0/16")));
        assert!(match_covers(&m("ip,nw_dst=10.0.0.0/8"), &m("tcp,nw_dst=10.1.0.0/16")));
        assert!(!match_covers(&m("ip,nw_dst=10.1.0.0/16"), &m("tcp,nw_dst=10.0.0.0/8")), "wider prefix");
        assert!(!match_covers(&m("ip,nw_dst=11.0.0.0/8"), &m("tcp,nw_dst=10.1.0.0/16")), "other value");
        assert!(!match_covers(&m("tcp"), &m("ip")), "nw_proto not constrained");
        assert!(!match_covers(&m("in_port=1"), &m("in_port=2,ip")));
        assert!(match_covers(&m("tcp,tp_dst=0x1000/0xf000"), &m("tcp,tp_dst=0x1234")));
    }

    #[test]
    fn normalisation_drops_fields_without_prerequisites() {
        // The (normalised-away) nw_dst of the general match constrains nothing.
        let general = Match { nw_dst: m("ip,nw_dst=10.0.0.0/8").nw_dst, ..Match::default() };
        assert!(match_covers(&general, &m("arp")));
        assert!(match_covers(&general, &Match::default()));
    }

    #[test]
    fn del_selects_table_and_cookie() {
        let r = parse_flow("table=1,cookie=0x12,priority=5,udp,tp_dst=53,actions=drop").unwrap();
        assert!(del_selects(&parse_match("udp").unwrap(), &r));
        assert!(del_selects(&parse_match("table=1").unwrap(), &r));
        assert!(!del_selects(&parse_match("table=0").unwrap(), &r));
        assert!(del_selects(&parse_match("cookie=0x10/0xf0").unwrap(), &r));
        assert!(!del_selects(&parse_match("cookie=0x20/0xf0").unwrap(), &r));
        assert!(del_selects(&parse_match("priority=9,udp").unwrap(), &r), "non-strict ignores priority");
    }

    #[test]
    fn add_replaces_identical_and_appends_others() {
        let a = parse_flow("priority=5,ip,actions=output:1").unwrap();
        let b = parse_flow("priority=6,ip,actions=output:2").unwrap();
        let a2 = parse_flow("priority=5,ip,actions=output:3").unwrap();
        let (out, replaced) = add_rules(&[a, b.clone()], vec![a2.clone()]);
        assert_eq!(out, vec![a2.clone(), b.clone()]);
        assert_eq!(replaced, vec![0]);
        let c = parse_flow("priority=5,tcp,actions=output:3").unwrap();
        let (out, replaced) = add_rules(&out, vec![c.clone()]);
        assert_eq!(out, vec![a2, b, c]);
        assert!(replaced.is_empty());
    }
}
