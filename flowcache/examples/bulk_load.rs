//! Time of a bulk `add-flows` by stage: parsing the text, building the `RuleTables`
//! version, and the whole slow-path change (which builds the version again, carries
//! counters over and revalidates).
//!
//! `cargo run --release -p ferrovs-flowcache --example bulk_load [-- N [FILE]]`
//! (N rules, default 1000000; with FILE, the rules are also written there, one per line
//! in `ovs-ofctl` syntax, for `ferrovs-ctl add-flows` and `ovs-ofctl add-flows`).
//!
//! Rules come from `tests/scale_rules` (deterministic: ACLs, port ranges, routes; one
//! table).

#[path = "../tests/scale_rules/mod.rs"]
mod scale_rules;

use std::time::Instant;

use ferrovs_flowcache::slow_path::{BridgeSpec, SlowPath};
use ferrovs_flowcache::xlate::RuleTables;
use scale_rules::scale_rules;

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
    println!("{} rules, {:.1} MB of text", rules.len(), text.len() as f64 / 1e6);

    let t = Instant::now();
    let parsed = ferrovs_config::parse_flows(&text).expect("the generated rules parse");
    println!("  parse             {:>8.0} ms", t.elapsed().as_secs_f64() * 1e3);
    assert_eq!(parsed.len(), rules.len());

    let t = Instant::now();
    let tables = RuleTables::new(parsed.clone(), vec![1, 2, 3, 4]).expect("valid rules");
    println!("  RuleTables::new   {:>8.0} ms ({} groups)", t.elapsed().as_secs_f64() * 1e3, tables.index_groups());
    drop(tables);

    let br = BridgeSpec { name: "br0".into(), ports: vec![1, 2, 3, 4], datapath_ports: Vec::new(), rules: Vec::new() };
    let mut sp = SlowPath::new(vec![br], 1, Default::default(), 0).expect("a bridge");
    let t = Instant::now();
    sp.add_flows("br0", parsed.clone(), 1).expect("valid rules");
    println!("  add_flows (empty) {:>8.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    sp.add_flows("br0", parsed, 2).expect("valid rules");
    println!("  add_flows (again) {:>8.0} ms (every rule replaces itself)", t.elapsed().as_secs_f64() * 1e3);
}
