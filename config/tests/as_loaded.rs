//! Golden tests against `ovs-ofctl -O OpenFlow10|OpenFlow13 parse-flow`, whose output for
//! each rule file is committed beside it (`as_loaded/capture.sh` regenerates it; the
//! committed files are the oracle, so the tests need no Open vSwitch):
//!
//! - `fields.flows`: a rule per match field and alias, shorthand, action, `set_field`
//!   field and `load`/`move` field, compared as loaded (match, actions, header), with the
//!   differences listed in `FIELD_DIFFERENCES`; `every_field_shorthand_and_action_has_a_golden`
//!   checks that every name in ferrovs's tables has a golden rule;
//! - `pipeline.flows`: registers, metadata and their actions, compared as printed text;
//! - `rules.flows`, below: VLAN actions by version.
//!
//! What `ovs-ofctl -O OpenFlow10|OpenFlow13 parse-flow` makes of each rule of
//! `as_loaded/rules.flows` (captured into `of10.txt`/`of13.txt`)
//! against what ferrovs loads for the same version (`openflow::convert::as_loaded`): the
//! same actions (OVS's printed list read back by ferrovs's parser, so `set_field:..->ip_src`
//! and `mod_nw_src` are the one action they are), or refused where ovs-ofctl refuses.
//!
//! Only the action list is compared: the match prints differently for a few VLAN forms
//! (OpenFlow 1.3's OXM writes `dl_vlan=0xffff` as `vlan_tci=0x0000/0x1fff`), with the same
//! meaning. ferrovs prints one spelling per action whatever the version (`mod_nw_src`,
//! `strip_vlan` where `ovs-ofctl -O OpenFlow13` prints `set_field`, `pop_vlan`).

use ferrovs_config::format_actions;
use ferrovs_config::openflow::Version;
use ferrovs_config::openflow::convert::{as_loaded, load_in_place};

fn lines(name: &str) -> Vec<String> {
    let path = format!("{}/tests/as_loaded/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).lines().map(str::to_string).collect()
}

fn check(version: Version, golden: &str) {
    let rules = lines("rules.flows");
    let expected = lines(golden);
    assert_eq!(rules.len(), expected.len(), "{golden} is stale: rerun capture.sh");
    let mut wrong = Vec::new();
    for (text, ovs) in rules.iter().zip(&expected) {
        let ours = ferrovs_config::parse_flow(text).map_err(|e| e.to_string()).and_then(|r| as_loaded(r, version));
        // OVS's action list read by ferrovs's (versionless) parser, under the rule's own
        // match: the actions OVS holds, in the rule model.
        let theirs = ovs.find("actions=").map(|at| {
            let head = &text[..text.find("actions=").expect("every rule has actions")];
            let rule = format!("{head}{}", &ovs[at..]);
            ferrovs_config::parse_flow(&rule).unwrap_or_else(|e| panic!("OVS's `{rule}`: {e}")).actions
        });
        let same = match (&ours, &theirs) {
            (Ok(r), Some(a)) => &r.actions == a,
            (Err(_), None) => true,
            _ => false,
        };
        if !same {
            let ours = ours.map(|r| format!("actions={}", format_actions(&r.actions)));
            wrong.push(format!("{text}\n  ovs-ofctl: {ovs}\n  ferrovs:   {ours:?}"));
        }
    }
    assert!(wrong.is_empty(), "{} under {}:\n{}", wrong.len(), version.ofctl_name(), wrong.join("\n"));
}

#[test]
fn openflow10_loads_as_ovs_ofctl() {
    check(Version::Of10, "of10.txt");
}

#[test]
fn openflow13_loads_as_ovs_ofctl() {
    check(Version::Of13, "of13.txt");
}

/// Registers, metadata, `load`, `move`, `set_field` of a register and `write_metadata`
/// (`as_loaded/pipeline.flows`): ferrovs prints the loaded rule exactly as `ovs-ofctl
/// parse-flow` does (its `table:N` header aside, which `dump-flows` prints as
/// `table=N,`), or refuses it where ovs-ofctl refuses it.
fn check_printed(version: Version, golden: &str) {
    let rules = lines("pipeline.flows");
    let expected = lines(golden);
    assert_eq!(rules.len(), expected.len(), "{golden} is stale: rerun capture.sh");
    let mut wrong = Vec::new();
    for (text, ovs) in rules.iter().zip(&expected) {
        let ours = ferrovs_config::parse_flow(text).map_err(|e| e.to_string()).and_then(|r| as_loaded(r, version));
        let ovs = match ovs.split_once(' ') {
            Some((t, rest)) if t.starts_with("table:") => format!("table={}, {rest}", &t[6..]),
            _ => ovs.clone(),
        };
        let same = match &ours {
            Ok(r) => r.to_string() == ovs,
            Err(_) => ovs == "refused",
        };
        if !same {
            wrong.push(format!("{text}\n  ovs-ofctl: {ovs}\n  ferrovs:   {:?}", ours.map(|r| r.to_string())));
        }
    }
    assert!(wrong.is_empty(), "{} under {}:\n{}", wrong.len(), version.ofctl_name(), wrong.join("\n"));
}

#[test]
fn openflow10_pipeline_fields_print_as_ovs_ofctl() {
    check_printed(Version::Of10, "pipeline_of10.txt");
}

#[test]
fn openflow13_pipeline_fields_print_as_ovs_ofctl() {
    check_printed(Version::Of13, "pipeline_of13.txt");
}

/// OVS's printed rule (`parse-flow`'s form: `table:3 priority=7 cookie:0x1f idle:10
/// hard:20 MATCH actions=...`) in the syntax ferrovs reads.
fn ovs_rule_text(ovs: &str) -> String {
    let (head, actions) = match ovs.find("actions=") {
        Some(at) => (ovs[..at].trim(), &ovs[at..]),
        None => (ovs, ""),
    };
    let mut parts: Vec<String> = head
        .split_whitespace()
        .map(|t| match t.split_once(':') {
            Some(("table", v)) => format!("table={v}"),
            Some(("cookie", v)) => format!("cookie={v}"),
            Some(("idle", v)) => format!("idle_timeout={v}"),
            Some(("hard", v)) => format!("hard_timeout={v}"),
            _ => t.to_string(),
        })
        .collect();
    parts.push(actions.to_string());
    parts.join(",")
}

/// Rules of `fields.flows` whose outcome differs from `ovs-ofctl`'s, each with the
/// reason; the test fails if one of them comes to agree (then it leaves this list) or
/// another one differs. (version 10/13 or 0 for both, rule, reason)
const FIELD_DIFFERENCES: &[(u8, &str, &str)] = &[
    (0, "icmp,icmpv4_type=0,icmp_code=0,actions=drop", "ovs-ofctl 3.1 does not know the name icmpv4_type"),
    (0, "icmp,icmpv4_code=3,actions=drop", "ovs-ofctl 3.1 does not know the name icmpv4_code"),
    (
        0,
        "actions=mod_nw_tos:184,mod_nw_ecn:2,mod_nw_ttl:9",
        "ferrovs takes mod_nw_ecn/mod_nw_ttl without `ip` like the OpenFlow 1.0 actions; OVS refuses them",
    ),
    (
        13,
        "actions=mod_nw_src:10.0.0.1,mod_nw_dst:10.0.0.2",
        "prerequisites of the 1.3 set-field: OVS refuses, ferrovs does not check them by version",
    ),
    (
        13,
        "dl_vlan=0xffff,actions=drop",
        "OXM has no whole-TCI match: OVS holds vlan_tci=0x0000/0x1fff, ferrovs 0x0000/0xffff; the key's TCI is 0 \
         whenever its present bit is (the same packets match)",
    ),
    (13, "vlan_tci=0x0000,actions=drop", "as dl_vlan=0xffff"),
    (13, "actions=dec_ttl", "same, dec_ttl without ip under 1.3"),
    (
        0,
        "dl_vlan=5,actions=set_field:20->dl_vlan,set_field:3->dl_vlan_pcp",
        "OVS 3.1 reads set_field:20->dl_vlan as set_field:20->in_port (an OVS bug); ferrovs sets the VID",
    ),
    (
        10,
        "ipv6,actions=set_field:2001:db8::1->ipv6_src,set_field:2001:db8::2->ipv6_dst",
        "OVS holds two 64-bit loads per address under 1.0, ferrovs one set-field: the same rewrite",
    ),
    (
        10,
        "ipv6,actions=set_field:1->nw_ecn,set_field:2->ip_ecn,set_field:9->nw_ttl",
        "OVS holds load:..->NXM_NX_IP_ECN[] under 1.0, which ferrovs's load does not name: the same rewrite",
    ),
    (
        10,
        "sctp,actions=set_field:9->sctp_src,set_field:10->sctp_dst",
        "OVS holds load:..->OXM_OF_SCTP_SRC[] under 1.0, which ferrovs's load does not name: the same rewrite",
    ),
    (
        10,
        "actions=output:1,goto_table:1",
        "OVS loads goto_table as resubmit(,T) under 1.0 (same forwarding, last action)",
    ),
    (
        0,
        "tp_dst=80,actions=drop",
        "OVS drops a field without its prerequisite; ferrovs refuses (docs/OVS-DIFFERENCES.md)",
    ),
    (
        0,
        "icmp6,icmp_type=136,nd_sll=00:11:22:33:44:55,actions=drop",
        "OVS drops nd_sll outside a neighbour solicitation; ferrovs refuses (docs/OVS-DIFFERENCES.md)",
    ),
    (
        0,
        "icmp6,nd_reserved=5,actions=drop",
        "OVS drops nd_reserved without icmp_type=135 or 136; ferrovs refuses (docs/OVS-DIFFERENCES.md)",
    ),
    (
        0,
        "actions=output:xxreg0[]",
        "OVS encodes at most 64 bits of an output:FIELD and holds another range (NXM_NX_XXREG0[1..64]); ferrovs refuses",
    ),
];

/// Every line of `fields.flows` (a rule per match field, name, shorthand, action and
/// `load`/`move` field) as ferrovs loads it for `version` against what `ovs-ofctl
/// parse-flow` printed: the same table, priority, cookie, timeouts, match and actions
/// (OVS's text read by ferrovs's parser), or refused by both; differences only as
/// [`FIELD_DIFFERENCES`] lists them.
fn check_fields(version: Version, golden: &str) {
    let tag = if version == Version::Of10 { 10 } else { 13 };
    let rules = lines("fields.flows");
    let expected = lines(golden);
    assert_eq!(rules.len(), expected.len(), "{golden} is stale: rerun capture.sh");
    let mut wrong = Vec::new();
    for (text, ovs) in rules.iter().zip(&expected) {
        let ours = ferrovs_config::parse_flow(text).map_err(|e| e.to_string()).and_then(|r| as_loaded(r, version));
        let theirs = (ovs != "refused").then(|| ferrovs_config::parse_flow(&ovs_rule_text(ovs)));
        let same = match (&ours, &theirs) {
            (Ok(r), Some(Ok(o))) => r == o,
            (Err(_), None) => true,
            _ => false,
        };
        let listed = FIELD_DIFFERENCES.iter().any(|&(v, rule, _)| (v == 0 || v == tag) && rule == text);
        if same == listed {
            let why = if listed { "agrees now: take it off FIELD_DIFFERENCES" } else { "differs" };
            wrong.push(format!("{text}: {why}\n  ovs-ofctl: {ovs}\n  ferrovs:   {:?}", ours.map(|r| r.to_string())));
        }
    }
    assert!(wrong.is_empty(), "{} under {}:\n{}", wrong.len(), version.ofctl_name(), wrong.join("\n"));
}

#[test]
fn openflow10_fields_and_actions_load_as_ovs_ofctl() {
    check_fields(Version::Of10, "fields_of10.txt");
}

#[test]
fn openflow13_fields_and_actions_load_as_ovs_ofctl() {
    check_fields(Version::Of13, "fields_of13.txt");
}

/// Every match field name (and alias), shorthand, register/metadata field, action,
/// `set_field` field and `load`/`move` field name that ferrovs's tables list appears in
/// a golden rule above, so a name added to a table without a golden fails here.
#[test]
fn every_field_shorthand_and_action_has_a_golden() {
    use ferrovs_config::field::{PACKET_FIELDS, PipelineField, shorthand_names};
    let all: Vec<String> = ["rules.flows", "pipeline.flows", "fields.flows"].iter().flat_map(|f| lines(f)).collect();
    let (mut matches, mut actions): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for rule in &all {
        let (m, a) = rule.split_once("actions=").expect("every golden rule has actions");
        matches.extend(m.split(',').map(|p| p.split('=').next().unwrap_or("")));
        actions.push(a);
    }
    let mut missing = Vec::new();
    for f in ferrovs_config::FIELDS.iter() {
        for name in std::iter::once(f.name).chain(f.aliases.iter().copied()) {
            if !matches.contains(&name) {
                missing.push(format!("match field {name}"));
            }
        }
    }
    for name in shorthand_names().map(str::to_string).chain(PipelineField::all().map(PipelineField::name)) {
        if !matches.contains(&name.as_str()) {
            missing.push(format!("match keyword {name}"));
        }
    }
    let in_actions = |needle: &str| actions.iter().any(|a| a.contains(needle));
    for name in ferrovs_config::ACTION_NAMES {
        let used = actions.iter().any(|a| a.split([',', ':', '(']).any(|w| w.eq_ignore_ascii_case(name)));
        if !used {
            missing.push(format!("action {name}"));
        }
    }
    for name in ferrovs_config::SET_FIELD_NAMES {
        if !in_actions(&format!("->{name},")) && !actions.iter().any(|a| a.ends_with(&format!("->{name}"))) {
            missing.push(format!("set_field field {name}"));
        }
    }
    for d in PACKET_FIELDS.iter() {
        for name in std::iter::once(d.nxm).chain(d.names.iter().copied()) {
            if !in_actions(&format!("{name}[")) {
                missing.push(format!("load/move field {name}"));
            }
        }
    }
    assert!(missing.is_empty(), "no golden rule uses:\n{}", missing.join("\n"));
}

/// `load_in_place` (what `add-flows` uses, to move no rule) writes what `as_loaded`
/// returns, and leaves a refused rule as it was given, under both versions, over every
/// rule of the three files (some refused by each version).
#[test]
fn loading_in_place_is_as_loaded_and_a_refusal_changes_nothing() {
    let (mut loaded, mut refused) = (0, 0);
    for file in ["rules.flows", "fields.flows", "pipeline.flows"] {
        for text in lines(file) {
            let Ok(given) = ferrovs_config::parse_flow(&text) else { continue };
            for version in [Version::Of10, Version::Of13] {
                let mut rule = given.clone();
                match (load_in_place(&mut rule, version), as_loaded(given.clone(), version)) {
                    (Ok(()), Ok(want)) => {
                        assert_eq!(rule, want, "{text} under {version:?}");
                        loaded += 1;
                    }
                    (Err(e), Err(want)) => {
                        assert_eq!(e, want, "{text} under {version:?}");
                        assert_eq!(rule, given, "{text}: refused under {version:?} but changed");
                        refused += 1;
                    }
                    (ours, want) => panic!("{text} under {version:?}: {ours:?} in place, {want:?} by value"),
                }
            }
        }
    }
    assert!(loaded > 100 && refused > 5, "{loaded} loaded, {refused} refused");
}
