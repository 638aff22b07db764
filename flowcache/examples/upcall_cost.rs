//! Cost of one upcall in the slow path's core against the size of the rule table: the
//! translation and everything around it (the megaflow's install command, the flow
//! index, MAC learning), as `SlowPath::handle_upcall` does it for the daemon, without the
//! daemon's messages. Beside it, the translation alone of the same packets, so that the
//! difference is the slow path's own share.
//!
//! `cargo run --release -p ferrovs-flowcache --example upcall_cost [-- SIZES]` (SIZES:
//! comma-separated rule counts, default 100,10000,100000).
//!
//! Rules and packets are `deploy/bench`'s upcall points' (`scale_rules::bench_workload`):
//! every packet its own megaflow. Each size runs 20,000 upcalls into a fresh slow path of
//! one PMD without a flow limit, three times; the fastest is printed.
//! `valgrind --tool=callgrind --toggle-collect='*upcalls*'` counts the upcalls' instructions.

#[path = "../tests/scale_rules/mod.rs"]
mod scale_rules;

use std::time::{Duration, Instant};

use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::slow_path::{BridgeSpec, SlowPath, SlowPathConfig};
use ferrovs_flowcache::upcall::Upcall;
use ferrovs_flowcache::xlate::{MacTable, translate};
use scale_rules::bench_workload;

const PACKETS: usize = 20_000;
const RUNS: usize = 3;

/// The upcalls of `keys` into `sp`; returns the commands' count (so the work is kept).
#[inline(never)]
fn upcalls(sp: &mut SlowPath, keys: &[FlowKey]) -> usize {
    keys.iter().map(|&key| sp.handle_upcall(&Upcall { pmd: 0, key }, 0).len()).sum()
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .nth(1)
        .map(|s| s.split(',').map(|x| x.trim().parse().expect("a rule count")).collect())
        .unwrap_or_else(|| vec![100, 10_000, 100_000]);
    println!("| rules | upcall us (fastest of {RUNS}) | translation alone us | megaflows | masks |");
    println!("|---|---|---|---|---|");
    for n in sizes {
        let (rules, keys) = bench_workload(n, PACKETS);
        let mut upcall_us = f64::MAX;
        let mut last = None;
        for _ in 0..RUNS {
            let br = BridgeSpec {
                groups: Default::default(),
                name: "br0".into(),
                ports: vec![1, 2, 3, 4],
                datapath_ports: Vec::new(),
                rules: rules.clone(),
            };
            let cfg = SlowPathConfig { flow_limit_per_pmd: usize::MAX, ..Default::default() };
            let mut sp = SlowPath::new(vec![br], 1, cfg, 0).expect("valid rules");
            let t = Instant::now();
            std::hint::black_box(upcalls(&mut sp, &keys));
            upcall_us = upcall_us.min(t.elapsed().as_secs_f64() * 1e6 / keys.len() as f64);
            last = Some(sp);
        }
        let sp = last.expect("one run");
        let mirror = sp.mirror(0).expect("one PMD");
        let (megaflows, masks) = (mirror.len(), mirror.n_masks());
        let tables = sp.tables("br0").expect("the bridge");
        let macs = MacTable::default();
        let t = Instant::now();
        for k in &keys {
            std::hint::black_box(translate(tables, &macs, k, Duration::ZERO));
        }
        let xlate_us = t.elapsed().as_secs_f64() * 1e6 / keys.len() as f64;
        println!("| {n} | {upcall_us:.2} | {xlate_us:.2} | {megaflows} | {masks} |");
    }
}
