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
//! two PMDs (from 32 ingress ports) until the count is reached. The small changes are
//! timed 5 times each, each time undone (the undo is not timed), and the fastest and
//! slowest printed; the large ones once:
//! - add an exact 5-tuple ACL rule at the ACLs' priority (overlaps few megaflows),
//! - add a /24 route in table 1 (overlaps the megaflows of its destinations), delete it,
//! - delete one ACL rule,
//! - change the actions of one ACL rule, and delete one, as an OpenFlow modify and
//!   delete do (`replace_rules` with the whole list, copied and changed),
//! - change the actions of the default route (re-add with other actions),
//! - add a catch-all rule above everything in table 0 (overlaps every megaflow).

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

/// Runs `change` (then `undo`, untimed) `repeat` times; prints the fastest and slowest
/// change, the megaflows the first one revalidated and removed (the repetitions find
/// those gone).
fn timed(
    sp: &mut SlowPath,
    what: &str,
    repeat: usize,
    change: impl Fn(&mut SlowPath) -> Vec<(usize, PmdCommand)>,
    undo: impl Fn(&mut SlowPath),
) {
    let (mut min, mut max, mut reval, mut removed) = (f64::MAX, 0f64, 0, 0);
    for i in 0..repeat {
        let before = sp.counters().revalidated;
        let t = Instant::now();
        let cmds = change(sp);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        (min, max) = (min.min(ms), max.max(ms));
        if i == 0 {
            reval = sp.counters().revalidated - before;
            removed = removes(&cmds);
        }
        undo(sp);
    }
    println!("  {what:<44} {min:>8.2}-{max:<8.2} ms  revalidated {reval:>7}  removed {removed:>7}");
}

/// Times each small change is repeated (each followed by its undo).
const REPEAT: usize = 5;

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
        let acl_match = "tcp,nw_src=10.0.1.2,nw_dst=16.1.2.3,tp_src=1111,tp_dst=80";
        let add = |text: &'static str| {
            move |sp: &mut SlowPath| sp.add_flows("br0", vec![parse_flow(text).unwrap()], 1).unwrap()
        };
        let del =
            |m: &'static str| move |sp: &mut SlowPath| sp.del_flows("br0", &parse_match(m).unwrap(), 1).unwrap().0;
        timed(&mut sp, "add exact 5-tuple ACL (table 0, prio 300)", REPEAT, add(acl), |sp| {
            del(acl_match)(sp);
        });
        let route = "table=1,priority=124,ip,nw_dst=16.8.9.0/24,actions=output:3";
        let route_match = "table=1,ip,nw_dst=16.8.9.0/24";
        timed(&mut sp, "add /24 route (table 1, prio 124)", REPEAT, add(route), |sp| {
            del(route_match)(sp);
        });
        timed(&mut sp, "delete a /24 route", REPEAT, del(route_match), |sp| {
            add(route)(sp);
        });
        del(route_match)(&mut sp);
        let first_acl = rules[0].clone();
        let spec = ferrovs_config::MatchSpec {
            table: Some(0),
            priority: None,
            matches: first_acl.matches.clone(),
            cookie: None,
        };
        timed(
            &mut sp,
            "delete one exact ACL rule",
            REPEAT,
            |sp| sp.del_flows("br0", &spec, 5).unwrap().0,
            |sp| {
                sp.add_flows("br0", vec![first_acl.clone()], 5).unwrap();
            },
        );
        // What an OpenFlow modify or delete flow-mod makes of the daemon's copy of the
        // rules: the whole list, changed, given to `replace_rules` (the copy is timed too).
        timed(
            &mut sp,
            "replace: one ACL rule's actions (OF modify)",
            REPEAT,
            |sp| {
                let mut list = sp.rules("br0").unwrap().to_vec();
                let at = list.iter().position(|r| r.matches == first_acl.matches).unwrap();
                list[at].actions = vec![ferrovs_config::rules::Action::Output(4)];
                sp.replace_rules("br0", list, 6).unwrap()
            },
            |sp| {
                let mut list = sp.rules("br0").unwrap().to_vec();
                let at = list.iter().position(|r| r.matches == first_acl.matches).unwrap();
                list[at].actions = first_acl.actions.clone();
                sp.replace_rules("br0", list, 6).unwrap();
            },
        );
        timed(
            &mut sp,
            "replace: one ACL rule less (OF delete)",
            REPEAT,
            |sp| {
                let list =
                    sp.rules("br0").unwrap().iter().filter(|r| r.matches != first_acl.matches).cloned().collect();
                sp.replace_rules("br0", list, 7).unwrap()
            },
            |sp| {
                sp.add_flows("br0", vec![first_acl.clone()], 7).unwrap();
            },
        );
        let default = rules.last().expect("a default route").clone();
        timed(
            &mut sp,
            "change the default route's actions",
            1,
            |sp| {
                let mut r = default.clone();
                r.actions = vec![ferrovs_config::rules::Action::Output(3)];
                sp.add_flows("br0", vec![r], 4).unwrap()
            },
            |_| {},
        );
        timed(&mut sp, "add catch-all above all (table 0, prio 1000)", 1, add("priority=1000,actions=drop"), |_| {});
    }
}
