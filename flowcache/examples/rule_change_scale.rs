//! How long one rule change takes with many megaflows installed: the slow path's
//! `add_flows` / `del_flows` return only after deciding, for every installed megaflow,
//! whether it must go (the commands are then delivered by the daemon).
//!
//! `cargo run --release -p ferrovs-flowcache --example rule_change_scale [-- SIZES [RULES]]`
//! (SIZES: comma-separated megaflow counts, default 10000,100000,200000; RULES: rules in
//! the bridge, default 1000).
//!
//! Rules and packets come from `tests/scale_rules` (deterministic, two tables: ACLs in
//! table 0, routes in table 1). Megaflows are installed by upcalls of random packets on
//! two PMDs (from 32 ingress ports) until the count is reached. Each change is timed alone, then undone (the
//! undo is not timed):
//! - add an exact 5-tuple ACL rule at the ACLs' priority (overlaps few megaflows),
//! - add a /24 route in table 1 (overlaps the megaflows of its destinations),
//! - add a catch-all rule above everything in table 0 (overlaps every megaflow),
//! - change the actions of the most used route (re-add with other actions),
//! - delete one ACL rule.

#[path = "../tests/scale_rules/mod.rs"]
mod scale_rules;

use std::time::Instant;

use ferrovs_config::{parse_flow, parse_match};
use ferrovs_flowcache::slow_path::{BridgeSpec, SlowPath, SlowPathConfig};
use ferrovs_flowcache::testpkt::SplitMix;
use ferrovs_flowcache::upcall::{PmdCommand, Upcall};
use scale_rules::{scale_packet, scale_rules};

const PORTS: u32 = 32;

fn removes(cmds: &[(usize, PmdCommand)]) -> usize {
    cmds.iter().map(|(_, c)| if let PmdCommand::Remove { ids } = c { ids.len() } else { 0 }).sum()
}

/// Runs `change`, prints its time, the megaflows revalidated and removed.
fn timed(sp: &mut SlowPath, what: &str, change: impl FnOnce(&mut SlowPath) -> Vec<(usize, PmdCommand)>) {
    let before = sp.counters().revalidated;
    let t = Instant::now();
    let cmds = change(sp);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let reval = sp.counters().revalidated - before;
    println!("  {what:<44} {ms:>9.2} ms  revalidated {reval:>7}  removed {:>7}", removes(&cmds));
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sizes: Vec<usize> = args
        .next()
        .map(|s| s.split(',').map(|x| x.trim().parse().expect("a number")).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 200_000]);
    let n_rules: usize = args.next().map(|s| s.parse().expect("a number")).unwrap_or(1000);
    let rules = scale_rules(n_rules, 2, false, 7);
    for &target in &sizes {
        let cfg = SlowPathConfig { flow_limit_per_pmd: usize::MAX, ..Default::default() };
        // Many ingress ports (in_port is in every megaflow) so that the packets give
        // enough distinct megaflows.
        let br = BridgeSpec {
            groups: Default::default(),
            name: "br0".into(),
            ports: (1..=PORTS).collect(),
            datapath_ports: Vec::new(),
            rules: rules.clone(),
        };
        let mut sp = SlowPath::new(vec![br], 2, cfg, 0).expect("valid rules");
        let mut rng = SplitMix(target as u64);
        let t = Instant::now();
        let mut attempts = 0;
        while sp.n_flows(0) + sp.n_flows(1) < target && attempts < target * 20 {
            let mut key = scale_packet(&rules, &mut rng);
            key.set_in_port(1 + (rng.next_u64() % PORTS as u64) as u32);
            sp.handle_upcall(&Upcall { pmd: attempts % 2, key }, 0);
            attempts += 1;
        }
        let n = sp.n_flows(0) + sp.n_flows(1);
        println!("{n} megaflows ({n_rules} rules, {attempts} upcalls in {:.1} s):", t.elapsed().as_secs_f64());
        let acl = "table=0,priority=300,tcp,nw_src=10.0.1.2,nw_dst=16.1.2.3,tp_src=1111,tp_dst=80,actions=output:3";
        timed(&mut sp, "add exact 5-tuple ACL (table 0, prio 300)", |sp| {
            sp.add_flows("br0", vec![parse_flow(acl).unwrap()], 1).unwrap()
        });
        sp.del_flows("br0", &parse_match("tcp,nw_src=10.0.1.2,nw_dst=16.1.2.3,tp_src=1111,tp_dst=80").unwrap(), 1)
            .unwrap();
        let route = "table=1,priority=124,ip,nw_dst=16.8.9.0/24,actions=output:3";
        timed(&mut sp, "add /24 route (table 1, prio 124)", |sp| {
            sp.add_flows("br0", vec![parse_flow(route).unwrap()], 2).unwrap()
        });
        timed(&mut sp, "delete that /24 route", |sp| {
            sp.del_flows("br0", &parse_match("table=1,ip,nw_dst=16.8.9.0/24").unwrap(), 3).unwrap().0
        });
        let default = rules.last().expect("a default route").clone();
        timed(&mut sp, "change the default route's actions", |sp| {
            let mut r = default.clone();
            r.actions = vec![ferrovs_config::rules::Action::Output(3)];
            sp.add_flows("br0", vec![r], 4).unwrap()
        });
        let first_acl = rules[0].clone();
        timed(&mut sp, "delete one exact ACL rule", |sp| {
            let spec = ferrovs_config::MatchSpec {
                table: Some(0),
                priority: None,
                matches: first_acl.matches.clone(),
                cookie: None,
            };
            sp.del_flows("br0", &spec, 5).unwrap().0
        });
        timed(&mut sp, "add catch-all above all (table 0, prio 1000)", |sp| {
            sp.add_flows("br0", vec![parse_flow("priority=1000,actions=drop").unwrap()], 6).unwrap()
        });
    }
}
