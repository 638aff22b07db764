//! Criterion benchmarks of the fast path. Every figure is **nanoseconds per packet**:
//! each benchmark iteration is one packet, processed in bursts of 32 (`iter_custom`
//! runs `iters / 32` bursts and reports the total time), so criterion's "time" column
//! reads directly as ns/packet.
//!
//! Run: `cargo bench -p ferrovs-flowcache --bench flowcache` (add a filter such as
//! `-- classifier` to run one group). Setup prints memory per flow to stderr.
//!
//! Workloads (all deterministic, seeded):
//! - `extract`: key extraction of a mix of real TCP/UDP/IPv6/VLAN frames.
//! - `emc_hit`: 32..1000 flows, every packet answered by the EMC.
//! - `extract_and_lookup`: extraction + hash + lookup of cached flows (the 20 ns target).
//! - `classifier`: caches off, N subtables with 10 flows each, uniform hits.
//! - `flows`: the whole FlowCache with F flows over 360 masks, packets uniform or
//!   Zipf-skewed (s = 1) over flows; `100000_uniform` is the 100 ns target.
//! - `emc_policy`: the 100k / 1k flow workloads with EMC always-insert, 1/100, and off.

mod common;

use std::time::{Duration, Instant};

use common::*;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::extract::extract;
use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::testpkt::*;
use ferrovs_flowcache::{FlowCache, FlowCacheConfig, Megaflow};

fn bench_extract(c: &mut Criterion) {
    let frames = frames();
    let mut keys = [FlowKey::ZERO; BURST];
    c.bench_function("extract/mix_burst32", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..(iters as usize).div_ceil(BURST) {
                extract_burst(std::hint::black_box(&frames), &mut keys);
                std::hint::black_box(&keys);
            }
            start.elapsed()
        })
    });
}

fn exact_mask() -> FlowKey {
    FlowKey::EXACT
}

fn bench_emc(c: &mut Criterion) {
    let mut g = c.benchmark_group("emc_hit");
    for n in [32usize, 1000] {
        let cfg = FlowCacheConfig { emc_insert_inverse_prob: 1, sig_entries: 0, ..Default::default() };
        let mut fc = FlowCache::new(cfg);
        let mut rng = Rng(1);
        let packets: Vec<FlowKey> = (0..n)
            .map(|i| {
                let mut k = extract(&tcp4_frame(&Tcp4 { sport: i as u16, ..TCP4 }), 1);
                k.set_nw_src_u32(rng.next_u64() as u32);
                fc.insert_unchecked(Megaflow::new(k, exact_mask(), vec![DpAction::Output(2)]), 0).unwrap();
                k
            })
            .collect();
        let seq = traffic(n, 1 << 16, false);
        let arr: Vec<FlowKey> = seq.iter().map(|&f| packets[f as usize]).collect();
        let mut pos = 0;
        run_arrivals(&mut fc, &arr, 1 << 16, &mut pos); // warm the EMC
        let before = fc.counters();
        g.bench_function(BenchmarkId::from_parameter(format!("{n}_flows")), |b| {
            b.iter_custom(|iters| run_arrivals(&mut fc, &arr, iters, &mut pos))
        });
        let after = fc.counters();
        eprintln!(
            "emc_hit/{n}: EMC answered {:.1}% of measured packets",
            100.0 * (after.emc_hits - before.emc_hits) as f64
                / (after.emc_hits + after.sig_hits + after.classifier_hits
                    - before.emc_hits
                    - before.sig_hits
                    - before.classifier_hits)
                    .max(1) as f64
        );
    }
    g.finish();
}

fn bench_extract_and_lookup(c: &mut Criterion) {
    let frames = frames();
    let mut fc = FlowCache::new(FlowCacheConfig { emc_insert_inverse_prob: 1, ..Default::default() });
    for f in &frames {
        let k = extract(f, 1);
        fc.insert_unchecked(Megaflow::new(k, FlowKey::EXACT, vec![DpAction::Output(2)]), 0).unwrap();
    }
    let mut keys = [FlowKey::ZERO; BURST];
    let mut hashes = [0u32; BURST];
    let bytes = [64u32; BURST];
    let mut out = [None; BURST];
    let mut g = c.benchmark_group("extract_and_lookup");
    for rss in [false, true] {
        // With `rss`, the hash comes with the packet (as from the NIC); otherwise it is
        // computed from the key.
        let rss_hashes: Vec<u32> = (0..BURST as u32).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
        let name = if rss { "cached_flow_rss_hash" } else { "cached_flow_sw_hash" };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut misses = 0;
                for _ in 0..(iters as usize).div_ceil(BURST) {
                    extract_burst(std::hint::black_box(&frames), &mut keys);
                    for i in 0..BURST {
                        hashes[i] = if rss { rss_hashes[i] } else { keys[i].hash() };
                    }
                    misses += fc.lookup_batch(&keys, &hashes, &bytes, 1, &mut out);
                    std::hint::black_box(&out);
                }
                assert_eq!(misses, 0);
                start.elapsed()
            })
        });
    }
    g.finish();
}

fn bench_classifier(c: &mut Criterion) {
    let mut g = c.benchmark_group("classifier");
    for n_masks in [1usize, 10, 100, 300, 500] {
        let (mut fc, packets) = build_classifier(n_masks);
        let seq = traffic(packets.len(), 1 << 16, false);
        let arr = arrivals(&packets, &seq);
        let mut pos = 0;
        g.bench_function(BenchmarkId::from_parameter(format!("{n_masks}_subtables")), |b| {
            b.iter_custom(|iters| run_arrivals(&mut fc, &arr, iters, &mut pos))
        });
    }
    g.finish();
}

fn bench_flows(c: &mut Criterion) {
    let mut g = c.benchmark_group("flows");
    g.sample_size(10);
    for n_flows in [1_000usize, 100_000, 1_000_000] {
        let t = Instant::now();
        let (mut fc, packets, _) = build(n_flows, 360, FlowCacheConfig::default());
        let (per_flow, emc, sig) = fc.memory();
        eprintln!(
            "flows/{n_flows}: {} masks, built in {:?}; classifier {:.0} B/flow, EMC {} KiB, sig cache {} KiB",
            fc.n_masks(),
            t.elapsed(),
            per_flow,
            emc / 1024,
            sig / 1024
        );
        for skewed in [false, true] {
            let seq = traffic(n_flows, 1 << 21, skewed);
            let arr: Vec<FlowKey> = seq.iter().map(|&f| packets[f as usize]).collect();
            let mut pos = 0;
            // Warm up the caches with one pass over the sequence.
            run_arrivals(&mut fc, &arr, arr.len() as u64, &mut pos);
            let before = fc.counters();
            let name = format!("{n_flows}_{}", if skewed { "skewed" } else { "uniform" });
            g.bench_function(BenchmarkId::from_parameter(&name), |b| {
                b.iter_custom(|iters| run_arrivals(&mut fc, &arr, iters, &mut pos))
            });
            let a = fc.counters();
            let total = (a.emc_hits + a.sig_hits + a.classifier_hits
                - before.emc_hits
                - before.sig_hits
                - before.classifier_hits)
                .max(1) as f64;
            eprintln!(
                "flows/{name}: answered by EMC {:.1}%, sig cache {:.1}%, classifier {:.1}%",
                100.0 * (a.emc_hits - before.emc_hits) as f64 / total,
                100.0 * (a.sig_hits - before.sig_hits) as f64 / total,
                100.0 * (a.classifier_hits - before.classifier_hits) as f64 / total
            );
        }
    }
    g.finish();
}

fn bench_emc_policy(c: &mut Criterion) {
    let mut g = c.benchmark_group("emc_policy");
    g.sample_size(10);
    for (n_flows, skewed) in
        [(1_000usize, false), (20_000, false), (100_000, false), (100_000, true), (1_000_000, true)]
    {
        for (name, emc, prob, sig, adaptive) in [
            ("default_adaptive_emc_sig", 8192, 100, 1 << 20, true),
            ("emc_always_sig", 8192, 1, 1 << 20, false),
            ("emc_1in100_sig", 8192, 100, 1 << 20, false),
            ("no_emc_sig", 0, 0, 1 << 20, false),
            ("emc_always_nosig", 8192, 1, 0, false),
            ("emc_1in100_nosig", 8192, 100, 0, false),
        ] {
            let cfg = FlowCacheConfig {
                emc_entries: emc,
                emc_insert_inverse_prob: prob,
                sig_entries: sig,
                ..Default::default()
            };
            if n_flows > 100_000 && sig == 0 {
                continue; // minutes per sample
            }
            let (mut fc, packets, _) = build(n_flows, 360, cfg);
            fc.set_emc_adaptive(adaptive);
            let seq = traffic(n_flows, 1 << 20, skewed);
            let arr: Vec<FlowKey> = seq.iter().map(|&f| packets[f as usize]).collect();
            let mut pos = 0;
            run_arrivals(&mut fc, &arr, arr.len() as u64, &mut pos);
            let dist = if skewed { "skewed" } else { "uniform" };
            g.bench_function(BenchmarkId::from_parameter(format!("{n_flows}_{dist}/{name}")), |b| {
                b.iter_custom(|iters| run_arrivals(&mut fc, &arr, iters, &mut pos))
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    targets = bench_extract, bench_emc, bench_extract_and_lookup, bench_classifier, bench_flows, bench_emc_policy
}
criterion_main!(benches);
