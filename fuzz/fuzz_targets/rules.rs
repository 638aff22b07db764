//! Fuzzes the `ovs-ofctl` rule syntax of ferrovs-config on arbitrary UTF-8: a whole rule
//! (`parse_flow`), a match as `del-flows` takes it (`parse_match`), a packet description
//! as `trace` takes it (`parse_packet`), a rules file (`parse_flows`), and a group as
//! `add-group` and the config's `groups` take it (`parse_group`).
//!
//! Properties: never panics; an error's position is on the input (line 1 for one rule,
//! column at most one past the end); and what is accepted prints (`Display`) to text that
//! parses back to the same value, as the config crate promises.
#![no_main]

use ferrovs_config::{RuleError, group_text, parse_flow, parse_flows, parse_group, parse_match, parse_packet};
use libfuzzer_sys::fuzz_target;

fn check_position(e: &RuleError, line: &str) {
    let p = e.position;
    assert!(p.line == 1 && p.column >= 1 && p.column as usize <= line.chars().count() + 1, "{e:?} for {line:?}");
}

/// Parses `line`; if accepted, its printed form must parse back to the same value, and
/// if refused, the error must point into the line.
fn round_trip<T: std::fmt::Display + PartialEq + std::fmt::Debug>(line: &str, parse: fn(&str) -> Result<T, RuleError>) {
    match parse(line) {
        Ok(value) => {
            let printed = value.to_string();
            let again = parse(&printed).unwrap_or_else(|e| panic!("{line:?} printed as {printed:?}: {e}"));
            assert_eq!(again, value, "{line:?} printed as {printed:?}");
        }
        Err(e) => check_position(&e, line),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Rules are single lines; a file of several goes to `parse_flows` below.
    let line = text.lines().next().unwrap_or("");
    round_trip(line, parse_flow);
    round_trip(line, parse_match);
    round_trip(line, parse_packet);
    match parse_group(line) {
        Ok((id, group)) => {
            let printed = group_text(id, &group);
            let again = parse_group(&printed).unwrap_or_else(|e| panic!("{line:?} printed as {printed:?}: {e:?}"));
            assert_eq!(again, (id, group), "{line:?} printed as {printed:?}");
        }
        Err(e) => check_position(&e, line),
    }
    if let Ok(rules) = parse_flows(text) {
        let printed: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
        let again = parse_flows(&printed.join("\n")).expect("printed rules parse");
        assert_eq!(again, rules);
    }
});
