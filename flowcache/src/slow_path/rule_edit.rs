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

use crate::xlate::tables::match_key;

/// True if `specific` is at least as specific as `general` (see the module doc).
/// Both matches are normalised exactly as `RuleTables` compiles rules.
pub fn match_covers(general: &Match, specific: &Match) -> bool {
    // Over the compiled key (no field list built: `del-flows` tests every rule): every
    // bit the general match constrains, the specific one constrains to the same value.
    // Fields of different `dl_type`s may share key bits, but then the `dl_type`s differ.
    let (gv, gm) = match_key(general);
    let (sv, sm) = match_key(specific);
    let key_fields = (0..gm.w.len()).all(|i| gm.w[i] & !sm.w[i] == 0 && (gv.w[i] ^ sv.w[i]) & gm.w[i] == 0);
    // The neighbour-discovery fields are not compiled into key fields (no key room).
    let nd_fields = MatchSlot::ALL.into_iter().filter(|slot| !slot.in_flow_key()).all(|slot| {
        general.slot(slot).is_none_or(|gm| {
            specific.slot(slot).is_some_and(|sm| sm.mask & gm.mask == gm.mask && (sm.value ^ gm.value) & gm.mask == 0)
        })
    });
    key_fields && nd_fields
}

/// True if `rule` is selected by a non-strict `del-flows` with `spec`.
pub fn del_selects(spec: &MatchSpec, rule: &Rule) -> bool {
    spec.table.is_none_or(|t| t == rule.table)
        && spec.cookie.is_none_or(|c| rule.cookie & c.mask == c.value & c.mask)
        && match_covers(&spec.matches, &rule.matches)
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
