//! Time of a bulk `add-flows` by stage, the stages the daemon runs for
//! `ferrovs-ctl add-flows`: splitting the streamed text into lines, parsing it, the
//! slow-path change (building the `RuleTables` version and printing its rules for the
//! write-back on a second thread meanwhile, carrying counters over, revalidating),
//! formatting every rule again on one thread (what the printing on the side saves) and
//! writing the config back (a config without a `flows_file`, which gets a side file past 10,000 rules, and
//! one with a `flows_file`).
//!
//! `cargo run --release -p ferrovs-flowcache --example bulk_load [-- N [FILE [--write-only]]]`
//! (N rules, default 1000000; with FILE, the rules are also written there, one per line
//! in `ovs-ofctl` syntax, for `ferrovs-ctl add-flows` and `ovs-ofctl add-flows`; with
//! `--write-only` nothing is timed: the rule generator of `deploy/bench`).
//!
//! Rules come from `tests/scale_rules` (deterministic: ACLs, port ranges, routes; one
//! table).

#[path = "../tests/scale_rules/mod.rs"]
mod scale_rules;

use std::time::Instant;

use ferrovs_flowcache::slow_path::{BridgeSpec, SlowPath, SlowPathConfig};
use scale_rules::scale_rules;

fn stage<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    println!("  {name:<28} {:>8.0} ms", t.elapsed().as_secs_f64() * 1e3);
    r
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|s| s.parse().expect("a number")).unwrap_or(1_000_000);
    let file = args.next();
    let rules = scale_rules(n, 1, true, 11);
    let mut text = String::with_capacity(rules.len() * 100);
    for r in &rules {
        text.push_str(&r.to_string());
        text.push('\n');
    }
    if let Some(f) = &file {
        std::fs::write(f, &text).expect("writable file");
    }
    if args.next().as_deref() == Some("--write-only") {
        return;
    }
    println!("{} rules, {:.1} MB of text", rules.len(), text.len() as f64 / 1e6);

    let total = Instant::now();
    let lines: Vec<String> = stage("split into lines", || text.lines().map(str::to_owned).collect());
    let joined = stage("join lines", || lines.join("\n"));
    let parsed = stage("parse", || ferrovs_config::parse_flows(&joined).expect("the generated rules parse"));
    assert_eq!(parsed.len(), rules.len());
    let br = BridgeSpec {
        groups: Default::default(),
        name: "br0".into(),
        ports: vec![1, 2, 3, 4],
        datapath_ports: Vec::new(),
        rules: Vec::new(),
    };
    // As the daemon runs it: the rules printed for the write-back while they are compiled.
    let cfg = SlowPathConfig { print_changed_rules: true, ..Default::default() };
    let mut sp = SlowPath::new(vec![br], 1, cfg, 0).expect("a bridge");
    stage("slow path add_flows (empty)", || sp.add_flows("br0", parsed.clone(), 1).expect("valid rules"));
    let texts = sp.printed_rules("br0").expect("printed by the change");
    let dir = std::env::temp_dir().join(format!("ferrovs-bulk-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("ferrovs.toml");
    std::fs::write(&config, "[[bridge]]\nname = \"br0\"\nflows = []\n").expect("config");
    stage("write back (no flows_file: a side file past 10,000 rules)", || {
        ferrovs_config::persist::write_bridge_flows(&config, "br0", &texts, &[]).expect("written")
    });
    println!("  {:<28} {:>8.0} ms", "total", total.elapsed().as_secs_f64() * 1e3);
    // What printing on the side saves (not part of the total).
    let again: Vec<String> = stage("format rules (one thread)", || {
        sp.rules("br0").expect("a bridge").iter().map(ferrovs_config::rule_text).collect()
    });
    assert_eq!(*texts, again);
    // `rule_text` beside `to_string` (a string growing per rule, as rules were printed
    // before), alternating, best of three each.
    let rules = sp.rules("br0").expect("a bridge");
    let (mut exact, mut grown) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let t = Instant::now();
        let a: Vec<String> = rules.iter().map(ferrovs_config::rule_text).collect();
        exact = exact.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let b: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
        grown = grown.min(t.elapsed().as_secs_f64());
        assert_eq!(a, b);
    }
    println!("    best of 3: rule_text {:.0} ms, to_string {:.0} ms", exact * 1e3, grown * 1e3);
    std::fs::write(&config, "[[bridge]]\nname = \"br0\"\nflows_file = \"br0.flows\"\n").expect("config");
    stage("write back (flows_file)", || {
        ferrovs_config::persist::write_bridge_flows(&config, "br0", &texts, &[]).expect("written")
    });
    std::fs::remove_dir_all(&dir).expect("temp dir removed");
    stage("slow path add_flows (again)", || sp.add_flows("br0", parsed, 3).expect("valid rules"));
}
