//! Rule-list edits with `ovs-ofctl` semantics: `add-flow(s)` and non-strict `del-flows`.
//!
//! # Semantics (OpenFlow 1.0, as Open vSwitch 3.1 with `ovs-ofctl`)
//!
//! - *add*: a rule with the same table, priority and match as an existing one replaces
//!   it in place (an OFPFC_ADD of an identical flow), and its counters start afresh;
//!   any other rule is appended. `SlowPath::add_flows` builds the new version from the
//!   existing rules followed by the added ones, and `RuleTables::new` does the in-place
//!   replacement.
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

use ferrovs_config::rules::{Match, Rule};
use ferrovs_config::{MatchSlot, MatchSpec};

use crate::key::{FlowKey, Mask};
use crate::xlate::RuleTables;
use crate::xlate::tables::{N_TABLES, match_key};

/// True if `specific` is at least as specific as `general` (see the module doc).
/// Both matches are normalised exactly as `RuleTables` compiles rules.
pub fn match_covers(general: &Match, specific: &Match) -> bool {
    let (sv, sm) = match_key(specific);
    key_covers(&match_key(general), (&sv, &sm)) && nd_covers(general, specific)
}

/// Over the compiled key (no field list built: `del-flows` tests every rule): every bit
/// the general match constrains, the specific one constrains to the same value. Fields
/// of different `dl_type`s may share key bits, but then the `dl_type`s differ.
fn key_covers((gv, gm): &(FlowKey, Mask), (sv, sm): (&FlowKey, &Mask)) -> bool {
    (0..gm.w.len()).all(|i| gm.w[i] & !sm.w[i] == 0 && (gv.w[i] ^ sv.w[i]) & gm.w[i] == 0)
}

/// The neighbour-discovery fields, which are not compiled into key fields (no key room).
fn nd_covers(general: &Match, specific: &Match) -> bool {
    MatchSlot::ALL.into_iter().filter(|slot| !slot.in_flow_key()).all(|slot| {
        general.slot(slot).is_none_or(|gm| {
            specific.slot(slot).is_some_and(|sm| sm.mask & gm.mask == gm.mask && (sm.value ^ gm.value) & gm.mask == 0)
        })
    })
}

/// True if `rule` is selected by a non-strict `del-flows` with `spec`.
pub fn del_selects(spec: &MatchSpec, rule: &Rule) -> bool {
    spec.table.is_none_or(|t| t == rule.table)
        && spec.cookie.is_none_or(|c| c.selects(rule.cookie))
        && match_covers(&spec.matches, &rule.matches)
}

/// [`del_selects`] of every rule of `tables`, by position. The rules' key matches are
/// read from their compiled form, and `spec`'s is compiled once: compiling both matches
/// for every rule was most of deleting one rule from a million (about 200 ms).
pub fn del_selected(spec: &MatchSpec, tables: &RuleTables) -> Vec<bool> {
    let rules = tables.rules();
    let general = match_key(&spec.matches);
    let nd = MatchSlot::ALL.into_iter().any(|slot| !slot.in_flow_key() && spec.matches.slot(slot).is_some());
    let mut selected = vec![false; rules.len()];
    for table in 0..N_TABLES as u8 {
        if spec.table.is_some_and(|t| t != table) {
            continue;
        }
        for c in tables.in_order(table) {
            let rule = &rules[c.rref.0 as usize];
            selected[c.rref.0 as usize] = spec.cookie.is_none_or(|c| c.selects(rule.cookie))
                && key_covers(&general, (&c.value, &c.mask))
                && (!nd || nd_covers(&spec.matches, &rule.matches));
        }
    }
    selected
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_config::{parse_flow, parse_match};

    fn m(s: &str) -> Match {
        parse_match(s).unwrap().matches
    }

    /// `del_selected` over the compiled rules answers as `del_selects` rule by rule, for
    /// tables changed in place too (rules added beside the version, rules deleted).
    #[test]
    fn del_selected_is_del_selects_of_each_rule() {
        let lines = [
            "priority=10,tcp,nw_dst=10.1.0.0/16,tp_dst=80,actions=output:1",
            "table=1,priority=20,ip,nw_src=10.0.0.0/8,actions=output:2",
            "cookie=0x5,priority=30,udp,tp_src=53,actions=drop",
            "priority=40,icmp6,icmp_type=135,nd_target=fd00::1,actions=output:1",
            "priority=41,icmp6,icmp_type=135,actions=output:2",
            "priority=5,in_port=1,dl_src=00:11:22:33:44:55,actions=output:3",
            "priority=6,arp,arp_spa=10.0.0.1,actions=normal",
            "table=2,priority=7,reg0=0x5,actions=output:1",
            "priority=8,actions=drop",
        ];
        let rule = |l: &str| parse_flow(l).unwrap();
        let mut tables = RuleTables::new(lines.iter().map(|l| rule(l)).collect(), vec![1, 2, 3]).unwrap();
        tables.add_in_place(vec![rule("priority=11,tcp,nw_dst=10.1.2.0/24,actions=output:2")]).unwrap();
        tables.add_in_place(vec![rule("table=1,cookie=0x7,priority=3,ip,actions=output:1")]).unwrap();
        let mut gone = vec![false; tables.rules().len()];
        gone[1] = true;
        tables.delete_in_place(&gone);
        let specs = [
            "",
            "ip",
            "tcp",
            "tcp,nw_dst=10.0.0.0/8",
            "table=1",
            "table=1,ip",
            "cookie=0x5/0xf",
            "cookie=0x7/-1",
            "icmp6,icmp_type=135,nd_target=fd00::1",
            "icmp6,icmp_type=135",
            "in_port=1",
            "dl_src=00:11:22:00:00:00/ff:ff:ff:00:00:00",
            "arp",
            "table=2",
        ];
        for spec in specs {
            let spec = parse_match(spec).unwrap();
            let each: Vec<bool> = tables.rules().iter().map(|r| del_selects(&spec, r)).collect();
            assert_eq!(del_selected(&spec, &tables), each, "{spec:?}");
        }
    }

    #[test]
    fn covers_by_field_and_prefix() {
        assert!(match_covers(&m(""), &m("tcp,tp_dst=80")));
        assert!(match_covers(&m("ip"), &m("tcp,nw_dst=10.1.0.0/16")));
        assert!(match_covers(&m("ip,nw_dst=10.0.0.0/8"), &m("tcp,nw_dst=10.1.0.0/16")));
        assert!(!match_covers(&m("ip,nw_dst=10.1.0.0/16"), &m("tcp,nw_dst=10.0.0.0/8")), "wider prefix");
        let ns = "icmp6,icmp_type=135";
        let nd = |f: &str| m(&format!("{ns},{f}"));
        assert!(match_covers(&m(ns), &nd("nd_target=fd00::1")));
        assert!(match_covers(&nd("nd_target=fd00::/64"), &nd("nd_target=fd00::1,nd_sll=02:00:00:00:00:01")));
        assert!(!match_covers(&nd("nd_target=fd00::1"), &nd("nd_target=fd00::2")), "other target");
        assert!(!match_covers(&nd("nd_target=fd00::1"), &m(ns)), "the rule has no target");
        assert!(!match_covers(&nd("nd_sll=02:00:00:00:00:01"), &nd("nd_target=fd00::1")));
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
}
