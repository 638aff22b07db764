//! Translation time per upcall against the number of rules: the classifier
//! (`Lookup::Index`) beside the former linear scan (`Lookup::LinearScan`), plus the
//! build time and heap size of a `RuleTables` version and how the two lookups' masks
//! compare in bits.
//!
//! `cargo run --release -p ferrovs-flowcache --example xlate_scale [-- SIZES]`
//! (SIZES: comma-separated rule counts, default 100,10000,100000,1000000).
//!
//! Rules and packets come from `tests/scale_rules` (deterministic): exact 5-tuple ACLs,
//! masked port ranges, routes /8../32 and a default, in one table. The scan is timed on
//! as many packets as fit in about two seconds (at least 3).

#[path = "../tests/scale_rules/mod.rs"]
mod scale_rules;

use std::time::{Duration, Instant};

use ferrovs_flowcache::key::{FlowKey, Mask};
use ferrovs_flowcache::testpkt::SplitMix;
use ferrovs_flowcache::xlate::{Lookup, MacTable, RuleTables, translate_with};
use scale_rules::{scale_packet, scale_rules};

const PACKETS: usize = 20_000;
const SCAN_BUDGET: Duration = Duration::from_secs(2);

fn bits(m: &Mask) -> u32 {
    m.w.iter().map(|w| w.count_ones()).sum()
}

/// Mean microseconds per translation over `keys` (stopping after `budget`, at least 3).
fn time(tables: &RuleTables, keys: &[FlowKey], lookup: Lookup, budget: Duration) -> (f64, usize) {
    let macs = MacTable::default();
    let start = Instant::now();
    let mut n = 0;
    for k in keys {
        std::hint::black_box(translate_with(tables, &macs, k, Duration::ZERO, lookup));
        n += 1;
        if n >= 3 && start.elapsed() > budget {
            break;
        }
    }
    (start.elapsed().as_secs_f64() * 1e6 / n as f64, n)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "100,10000,100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("rule count"))
        .collect();
    println!(
        "| rules | groups | build ms | heap MB | index us/upcall | scan us/upcall (packets) | wider / narrower masks |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &n in &sizes {
        let rules = scale_rules(n, 1, false, 7);
        let mut r = SplitMix(99);
        let keys: Vec<FlowKey> = (0..PACKETS).map(|_| scale_packet(&rules, &mut r)).collect();
        let start = Instant::now();
        let tables = RuleTables::new(rules, vec![1, 2, 3, 4]).expect("valid rules");
        let build_ms = start.elapsed().as_secs_f64() * 1e3;
        time(&tables, &keys[..1000], Lookup::Index, Duration::MAX); // warm-up
        let (index_us, _) = time(&tables, &keys, Lookup::Index, Duration::MAX);
        let (scan_us, scanned) = time(&tables, &keys, Lookup::LinearScan, SCAN_BUDGET);
        let macs = MacTable::default();
        let (mut wider, mut narrower) = (0, 0);
        for k in &keys[..scanned] {
            let a = translate_with(&tables, &macs, k, Duration::ZERO, Lookup::LinearScan);
            let b = translate_with(&tables, &macs, k, Duration::ZERO, Lookup::Index);
            assert_eq!(a.actions, b.actions, "decisions differ for {k:?}");
            assert_eq!(a.rules, b.rules, "matched rules differ for {k:?}");
            match bits(&b.mask).cmp(&bits(&a.mask)) {
                std::cmp::Ordering::Greater => wider += 1,
                std::cmp::Ordering::Less => narrower += 1,
                _ => {}
            }
        }
        println!(
            "| {n} | {} | {build_ms:.0} | {:.1} | {index_us:.2} | {scan_us:.1} ({scanned}) | {wider} / {narrower} of {scanned} |",
            tables.index_groups(),
            tables.index_heap_bytes() as f64 / 1e6,
        );
    }
}
