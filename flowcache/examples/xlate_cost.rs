//! Cost of one translation (the slow path's rule lookup and actions) against the size
//! of the rule table, every size in the same run: 100, 10,000, 100,000 and 1,000,000
//! rules by default, min and max over repetitions, and the ratio of the largest size's
//! cost to the smallest's (issue 8's goal: at most 2). The sizes' timed passes take
//! turns, one of each per round, and the ratio is also given per round (the two sizes'
//! passes of one round ran within a second of each other, under the same load).
//!
//! `cargo run --release -p ferrovs-flowcache --example xlate_cost [-- OPTIONS]`
//! - `--sizes A,B,..`: rule counts (default 100,10000,100000,1000000);
//! - `--reps R`: rounds of timed passes, one pass over the packets per size each (default 5; 0: one untimed pass, as `--count-only`);
//! - `--packets P`: distinct packets per size (default 20000);
//! - `--shape bench|scale`: the rule set (default bench):
//!   - `bench`: what `deploy/bench`'s upcall points load: the generator's file
//!     (`bulk_load N FILE --write-only`: priorities spread over four values per shape)
//!     below a `dl_src` rule of the highest priority, packets of one UDP 5-tuple each with
//!     their own source MAC (so no lookup stops early at the `dl_src` rule);
//!   - `scale`: `xlate_scale`'s rule set (one priority per shape) and packets.
//! - `--compare-scan K`: also translate the first K packets with the linear scan (sizes
//!   up to 100,000) and count the masks with more / fewer bits than the scan's (the
//!   classifier must decide the same; its masks may differ, see XLATE.md);
//! - `--digest`: one untimed pass per size that prints a digest of every translation's
//!   mask, actions and rules (a change meant to make the index faster, not to choose other
//!   witnesses, leaves the digests as they were);
//! - `--count-only`: one untimed pass per size inside `measured_pass`, for
//!   `valgrind --tool=callgrind --toggle-collect='*measured_pass*'` (instructions per
//!   translation = callgrind's total / the translations printed).
//!
//! The warm-up pass (outside `measured_pass`) translates 1,000 packets other than the
//! measured ones: each measured packet is a new flow, as an upcall's is, so its path
//! through the index is not in the cache unless other packets share it (the index's top
//! levels, as in a running switch). Warming up on the measured packets themselves hid
//! the cache misses of a large index from callgrind's cache simulation.
//!
//! Rules and packets come from `tests/scale_rules` (deterministic).

#[path = "../tests/scale_rules/mod.rs"]
mod scale_rules;

use std::time::{Duration, Instant};

use ferrovs_config::rules::Rule;
use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::testpkt::SplitMix;
use ferrovs_flowcache::xlate::{Lookup, MacTable, RuleTables, translate, translate_with};
use scale_rules::{bench_workload, scale_packet, scale_rules};

struct Options {
    sizes: Vec<usize>,
    reps: usize,
    packets: usize,
    bench_shape: bool,
    count_only: bool,
    digest: bool,
    compare_scan: usize,
}

fn options() -> Options {
    let mut o = Options {
        sizes: vec![100, 10_000, 100_000, 1_000_000],
        reps: 5,
        packets: 20_000,
        bench_shape: true,
        count_only: false,
        digest: false,
        compare_scan: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--sizes" => o.sizes = value().split(',').map(|s| s.trim().parse().expect("a rule count")).collect(),
            "--reps" => o.reps = value().parse().expect("a repetition count"),
            "--packets" => o.packets = value().parse().expect("a packet count"),
            "--shape" => {
                o.bench_shape = match value().as_str() {
                    "bench" => true,
                    "scale" => false,
                    s => panic!("--shape {s}: bench or scale"),
                }
            }
            "--count-only" => o.count_only = true,
            "--digest" => o.digest = true,
            "--compare-scan" => o.compare_scan = value().parse().expect("a packet count"),
            _ => panic!("unknown option {a} (see the example's documentation)"),
        }
    }
    o
}

/// The rules and packets of one size (`bench`: `scale_rules::bench_workload`).
/// The last `WARM_UP` packets are the warm-up's, not measured.
fn workload(n: usize, bench_shape: bool, packets: usize) -> (Vec<Rule>, Vec<FlowKey>) {
    if bench_shape {
        return bench_workload(n, packets);
    }
    let mut r = SplitMix(99);
    let rules = scale_rules(n, 1, false, 7);
    let keys = (0..packets).map(|_| scale_packet(&rules, &mut r)).collect();
    (rules, keys)
}

/// Packets translated before the measured passes (see the module documentation).
const WARM_UP: usize = 1000;

/// One pass over `keys`: the function callgrind counts in (`--count-only`).
#[inline(never)]
fn measured_pass(tables: &RuleTables, macs: &MacTable, keys: &[FlowKey]) {
    for k in keys {
        std::hint::black_box(translate(tables, macs, std::hint::black_box(k), Duration::ZERO));
    }
}

/// A pass callgrind does not count (warm-up), kept apart from `measured_pass`: it
/// returns the number of rules matched, so that the linker cannot fold the two
/// functions into one (which made callgrind count the warm-up too).
#[inline(never)]
fn warm_up(tables: &RuleTables, macs: &MacTable, keys: &[FlowKey]) -> usize {
    keys.iter().map(|k| translate(tables, macs, std::hint::black_box(k), Duration::ZERO).rules.len()).sum()
}

fn main() {
    let o = options();
    let macs = MacTable::default();
    println!("shape {}, {} packets, {} repetitions", if o.bench_shape { "bench" } else { "scale" }, o.packets, o.reps);
    println!("| rules | groups | heap MB | build ms | us/translation min | max |");
    println!("|---|---|---|---|---|---|");
    // Every size is built first and the timed passes take turns (one pass of each size
    // per round), so that another tenant's load on this machine falls on all sizes
    // alike rather than on whichever size was being timed then.
    let mut sizes = Vec::new();
    for &n in &o.sizes {
        let (rules, mut keys) = workload(n, o.bench_shape, o.packets + WARM_UP);
        let warm = keys.split_off(o.packets);
        let start = Instant::now();
        let tables = RuleTables::new(rules, vec![1, 2, 3, 4]).expect("valid rules");
        let build_ms = start.elapsed().as_secs_f64() * 1e3;
        std::hint::black_box(warm_up(&tables, &macs, &warm));
        if o.digest {
            println!("| {n} | digest {:016x} of {} translations |", digest(&tables, &macs, &keys), keys.len());
            continue;
        }
        if o.count_only || o.reps == 0 {
            measured_pass(&tables, &macs, &keys);
            let mb = tables.index_heap_bytes() as f64 / 1e6;
            println!("| {n} | {} | {mb:.1} | {build_ms:.0} | translations {} |", tables.index_groups(), keys.len());
            continue;
        }
        sizes.push(Size { n, tables, keys, warm, build_ms, us: Vec::new() });
    }
    for _ in 0..o.reps {
        for s in &mut sizes {
            // The warm-up again: the other sizes' passes ran since this size's last.
            std::hint::black_box(warm_up(&s.tables, &macs, &s.warm));
            let t = Instant::now();
            measured_pass(&s.tables, &macs, &s.keys);
            s.us.push(t.elapsed().as_secs_f64() * 1e6 / s.keys.len() as f64);
        }
    }
    for s in &sizes {
        let lo = s.us.iter().copied().fold(f64::MAX, f64::min);
        let hi = s.us.iter().copied().fold(0f64, f64::max);
        let mb = s.tables.index_heap_bytes() as f64 / 1e6;
        let scan = if o.compare_scan > 0 && s.n <= 100_000 {
            compare_scan(&s.tables, &macs, &s.keys, o.compare_scan)
        } else {
            String::new()
        };
        println!("| {} | {} | {mb:.1} | {:.0} | {lo:.2} | {hi:.2} |{scan}", s.n, s.tables.index_groups(), s.build_ms);
    }
    if let (Some(first), Some(last)) = (sizes.first(), sizes.last())
        && sizes.len() > 1
    {
        let min = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
        let max = |v: &[f64]| v.iter().copied().fold(0f64, f64::max);
        // The same round's passes of the two sizes, one ratio per round.
        let rounds: Vec<f64> = last.us.iter().zip(&first.us).map(|(a, b)| a / b).collect();
        println!(
            "ratio {} / {} rules: {:.2} (min / min), {:.2} (max / max); per round {:.2}-{:.2}",
            last.n,
            first.n,
            min(&last.us) / min(&first.us),
            max(&last.us) / max(&first.us),
            min(&rounds),
            max(&rounds)
        );
    }
}

/// One size's tables, packets and timed passes (us per translation, one per round).
struct Size {
    n: usize,
    tables: RuleTables,
    keys: Vec<FlowKey>,
    warm: Vec<FlowKey>,
    build_ms: f64,
    us: Vec<f64>,
}

/// A digest (FNV-1a) of every translation's mask, actions and matched rules.
fn digest(tables: &RuleTables, macs: &MacTable, keys: &[FlowKey]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    for k in keys {
        let t = translate(tables, macs, k, Duration::ZERO);
        for w in t.mask.w {
            eat(&w.to_le_bytes());
        }
        eat(format!("{:?}{:?}", t.actions, t.rules).as_bytes());
    }
    h
}

/// Translates the first `k` packets with the linear scan too: the decisions must be the
/// same; counts the masks with more and fewer bits than the scan's.
fn compare_scan(tables: &RuleTables, macs: &MacTable, keys: &[FlowKey], k: usize) -> String {
    let bits = |m: &ferrovs_flowcache::key::Mask| m.w.iter().map(|w| w.count_ones()).sum::<u32>();
    let (mut wider, mut narrower) = (0, 0);
    let k = k.min(keys.len());
    for key in &keys[..k] {
        let a = translate_with(tables, macs, key, Duration::ZERO, Lookup::LinearScan);
        let b = translate_with(tables, macs, key, Duration::ZERO, Lookup::Index);
        assert_eq!((&a.actions, &a.rules), (&b.actions, &b.rules), "decisions differ for {key:?}");
        wider += usize::from(bits(&b.mask) > bits(&a.mask));
        narrower += usize::from(bits(&b.mask) < bits(&a.mask));
    }
    format!(" masks vs scan: {wider} wider, {narrower} narrower of {k} |")
}
