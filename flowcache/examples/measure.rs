//! Collects the figures of flowcache/README.md: ns per packet (bursts of 32) for each
//! workload, as min / median / max over repeated rounds, plus memory per flow.
//!
//! `cargo run --release -p ferrovs-flowcache --example measure [-- FILTER] [ROUNDS]`
//!
//! On a shared machine the minimum is the figure that other processes disturb least;
//! the max shows how much they did. Each round runs at least 2^20 packets.

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::extract::extract;
use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::{FlowCache, FlowCacheConfig, Megaflow};

fn report(name: &str, mut ns: Vec<f64>, note: &str) {
    ns.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("| {name} | {:.1} | {:.1} | {:.1} | {note} |", ns[0], ns[ns.len() / 2], ns[ns.len() - 1]);
}

fn rounds_of(rounds: usize, packets: u64, mut f: impl FnMut(u64) -> std::time::Duration) -> Vec<f64> {
    f(packets); // warm-up round, not reported
    (0..rounds).map(|_| f(packets).as_nanos() as f64 / packets as f64).collect()
}

fn hit_shares(fc: &FlowCache, before: ferrovs_flowcache::CacheCounters) -> String {
    let a = fc.counters();
    let e = a.emc_hits - before.emc_hits;
    let s = a.sig_hits - before.sig_hits;
    let c = a.classifier_hits - before.classifier_hits;
    let t = (e + s + c).max(1) as f64;
    format!("EMC {:.0}%, sig {:.0}%, cls {:.0}%", 100.0 * e as f64 / t, 100.0 * s as f64 / t, 100.0 * c as f64 / t)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args.first().cloned().unwrap_or_default();
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(7);
    let want = |name: &str| name.contains(&filter);
    const N: u64 = 1 << 20;
    println!("| workload | min ns/pkt | median | max | notes |");
    println!("|---|---|---|---|---|");

    let frames = frames();

    if want("extract") {
        let mut keys = [FlowKey::ZERO; BURST];
        let ns = rounds_of(rounds, N, |n| {
            let t = Instant::now();
            for _ in 0..n / BURST as u64 {
                extract_burst(std::hint::black_box(&frames), &mut keys);
                std::hint::black_box(&keys);
            }
            t.elapsed()
        });
        report("extract (TCP4/UDP4/VLAN/IPv6 mix)", ns, "key extraction alone");
    }

    for rss in [false, true] {
        let name = if rss { "extract+lookup cached, RSS hash" } else { "extract+lookup cached, sw hash" };
        if !want(name) {
            continue;
        }
        let mut fc = FlowCache::new(FlowCacheConfig::default());
        for f in &frames {
            fc.insert_unchecked(Megaflow::new(extract(f, 1), FlowKey::EXACT, vec![DpAction::Output(2)]), 0).unwrap();
        }
        let rss_hashes: Vec<u32> = (0..BURST as u32).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
        let (mut keys, mut hashes, bytes, mut out) =
            ([FlowKey::ZERO; BURST], [0u32; BURST], [64u32; BURST], [None; BURST]);
        let before = fc.counters();
        let ns = rounds_of(rounds, N, |n| {
            let t = Instant::now();
            for _ in 0..n / BURST as u64 {
                extract_burst(std::hint::black_box(&frames), &mut keys);
                for i in 0..BURST {
                    hashes[i] = if rss { rss_hashes[i] } else { keys[i].hash() };
                }
                let m = fc.lookup_batch(&keys, &hashes, &bytes, 1, &mut out);
                assert_eq!(m, 0);
                std::hint::black_box(&out);
            }
            t.elapsed()
        });
        report(name, ns, &format!("{BURST} flows; {}", hit_shares(&fc, before)));
    }

    if want("emc hit") {
        let cfg = FlowCacheConfig { emc_insert_inverse_prob: 1, sig_entries: 0, ..Default::default() };
        let (mut fc, packets, _) = build(1000, 1, cfg);
        let arr = arrivals(&packets, &traffic(1000, 1 << 16, false));
        let mut pos = 0;
        run_arrivals(&mut fc, &arr, arr.len() as u64, &mut pos);
        let before = fc.counters();
        let ns = rounds_of(rounds, N, |n| run_arrivals(&mut fc, &arr, n, &mut pos));
        report("emc hit, 1000 flows", ns, &hit_shares(&fc, before));
    }

    for n_masks in [1usize, 10, 100, 300, 500] {
        let name = format!("classifier only, {n_masks} subtables");
        if !want(&name) {
            continue;
        }
        let (mut fc, packets) = build_classifier(n_masks);
        let arr = arrivals(&packets, &traffic(packets.len(), 1 << 16, false));
        let mut pos = 0;
        let n = if n_masks >= 100 { N / 8 } else { N };
        let ns = rounds_of(rounds, n, |n| run_arrivals(&mut fc, &arr, n, &mut pos));
        report(&name, ns, "10 flows per subtable, uniform hits, caches off");
    }

    for n_flows in [1_000usize, 100_000, 1_000_000] {
        for skewed in [false, true] {
            let dist = if skewed { "Zipf s=1" } else { "uniform" };
            let name = format!("flows {n_flows}, 360 masks, {dist}");
            if !want(&name) {
                continue;
            }
            let (mut fc, packets, _) = build(n_flows, 360, FlowCacheConfig::default());
            let arr = arrivals(&packets, &traffic(n_flows, 1 << 21, skewed));
            let mut pos = 0;
            run_arrivals(&mut fc, &arr, arr.len() as u64, &mut pos);
            let before = fc.counters();
            let n = if n_flows >= 1_000_000 { N / 2 } else { N };
            let ns = rounds_of(rounds, n, |n| run_arrivals(&mut fc, &arr, n, &mut pos));
            let (per_flow, _, _) = fc.memory();
            report(&name, ns, &format!("{}; classifier {per_flow:.0} B/flow", hit_shares(&fc, before)));
        }
    }

    let policies = [
        ("default: adaptive EMC 1/100 + sig", 8192usize, 100u32, 1usize << 20, true),
        ("EMC always + sig", 8192, 1, 1 << 20, false),
        ("EMC 1/100 + sig", 8192, 100, 1 << 20, false),
        ("sig only", 0, 0, 1 << 20, false),
        ("EMC always only", 8192, 1, 0, false),
        ("EMC 1/100 only", 8192, 100, 0, false),
    ];
    for (n_flows, skewed) in
        [(1_000usize, false), (1_000, true), (20_000, false), (100_000, false), (100_000, true), (1_000_000, true)]
    {
        for (pname, emc, prob, sig, adaptive) in policies {
            let dist = if skewed { "Zipf" } else { "uniform" };
            let name = format!("policy {n_flows} {dist}: {pname}");
            if !want(&name) || (sig == 0 && n_flows > 1000) {
                continue; // without the signature cache, large sets run at classifier speed
            }
            let cfg = FlowCacheConfig {
                emc_entries: emc,
                emc_insert_inverse_prob: prob,
                sig_entries: sig,
                ..Default::default()
            };
            let (mut fc, packets, _) = build(n_flows, 360, cfg);
            fc.set_emc_adaptive(adaptive);
            let arr = arrivals(&packets, &traffic(n_flows, 1 << 21, skewed));
            let mut pos = 0;
            run_arrivals(&mut fc, &arr, arr.len() as u64, &mut pos);
            let before = fc.counters();
            let ns = rounds_of(rounds, N / 2, |n| run_arrivals(&mut fc, &arr, n, &mut pos));
            report(&name, ns, &hit_shares(&fc, before));
        }
    }

    if want("flows 1000000 Zipf after a uniform phase") {
        // The same cache first serves 2^21 uniform packets (filling every bucket with
        // flows that then go cold), then the Zipf load: replacement must let the hot
        // flows back in.
        let (mut fc, packets, _) = build(1_000_000, 360, FlowCacheConfig::default());
        let uni = arrivals(&packets, &traffic(1_000_000, 1 << 21, false));
        let mut pos = 0;
        run_arrivals(&mut fc, &uni, uni.len() as u64, &mut pos);
        let arr = arrivals(&packets, &traffic(1_000_000, 1 << 21, true));
        pos = 0;
        for _ in 0..8 {
            run_arrivals(&mut fc, &arr, arr.len() as u64, &mut pos);
        }
        let before = fc.counters();
        let ns = rounds_of(rounds, N / 2, |n| run_arrivals(&mut fc, &arr, n, &mut pos));
        report("flows 1000000 Zipf after a uniform phase", ns, &hit_shares(&fc, before));
    }

    for n_flows in [1_000usize, 100_000] {
        let name = format!("insert into {n_flows} flows");
        if !want(&name) {
            continue;
        }
        // Build n_flows + 2000, remove the last 2000 and time putting them back.
        let (mut fc, _, ids) = build(n_flows + 2000, 360, FlowCacheConfig::default());
        let mut removed: Vec<Megaflow> = ids[n_flows..].iter().map(|&id| fc.remove(id).unwrap().0).collect();
        let t = Instant::now();
        let mut new_ids = Vec::new();
        for mf in removed.drain(..) {
            new_ids.push(fc.insert(mf, 0).expect("disjoint"));
        }
        let checked = t.elapsed().as_nanos() as f64 / 2000.0;
        for id in &new_ids {
            removed.push(fc.remove(*id).unwrap().0);
        }
        let t = Instant::now();
        for mf in removed.drain(..) {
            fc.insert_unchecked(mf, 0).unwrap();
        }
        let unchecked = t.elapsed().as_nanos() as f64 / 2000.0;
        println!("| {name} (ns per insert) | checked {checked:.0} | unchecked {unchecked:.0} | | 360 masks |");
    }

    if want("flows 1000000 uniform, sig 4M") {
        let cfg = FlowCacheConfig { sig_entries: 1 << 22, ..Default::default() };
        let (mut fc, packets, _) = build(1_000_000, 360, cfg);
        let arr = arrivals(&packets, &traffic(1_000_000, 1 << 21, false));
        let mut pos = 0;
        run_arrivals(&mut fc, &arr, arr.len() as u64, &mut pos);
        let before = fc.counters();
        let ns = rounds_of(rounds, N / 2, |n| run_arrivals(&mut fc, &arr, n, &mut pos));
        report("flows 1000000 uniform, sig 4M entries (32 MB)", ns, &hit_shares(&fc, before));
    }
    if false {
        {}
    }
}
