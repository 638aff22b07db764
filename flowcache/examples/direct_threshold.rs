//! Measures where direct classifier lookups stop beating the EMC + signature cache:
//! ns per packet (bursts of 32, hash computed per packet when the caches are used) for
//! K subtables in one in_port partition, traffic spread evenly over them, at several
//! flow counts. Sets `FlowCache::DIRECT_MAX_SUBTABLES`.
//!
//! `cargo run --release -p ferrovs-flowcache --example direct_threshold [-- ROUNDS]`

use std::time::Instant;

use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::classifier::MAX_BATCH as BURST;
use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::{FlowCache, FlowCacheConfig, Megaflow};

/// Packet `i` of a load of `flows` flows over `k` subtables: in_port 1, UDP, tp_dst
/// selects the megaflow, nw_src/nw_dst make the flows distinct.
fn packet(i: usize, k: usize) -> FlowKey {
    let mut p = FlowKey::ZERO;
    p.set_in_port(1);
    p.set_dl_type(0x0800);
    p.set_nw_proto(17);
    p.set_nw_src_u32(0xc612_0000 + i as u32);
    p.set_nw_dst_u32(0xc612_8000 + (i as u32).wrapping_mul(2_654_435_761) % 65_536);
    p.set_tp_dst((i % k) as u16);
    p
}

/// Megaflow `j` of `k`: in_port + tp_dst == j, plus `j` low bits of tp_src (zero), so
/// each megaflow has its own mask and no two overlap.
fn megaflow(j: usize) -> Megaflow {
    let mut m = FlowKey::ZERO;
    m.set_in_port(u32::MAX);
    m.set_tp_dst(0xffff);
    m.set_tp_src(((1u32 << j) - 1) as u16);
    let mut key = FlowKey::ZERO;
    key.set_in_port(1);
    key.set_tp_dst(j as u16);
    Megaflow::new(key, m, vec![DpAction::Output(2)])
}

/// `direct`: Some(n) sets the direct threshold, None keeps the default policy.
fn run(flows: usize, k: usize, direct: Option<usize>, rounds: usize) -> (f64, f64, String) {
    let mut fc = FlowCache::new(FlowCacheConfig::for_max_flows(200_000));
    if let Some(n) = direct {
        fc.set_direct_max_subtables(n);
    }
    for j in 0..k {
        fc.insert(megaflow(j), 0).unwrap();
    }
    let pkts: Vec<FlowKey> = (0..flows).map(|i| packet(i, k)).collect();
    // Each round: 2^20 packets, walking the flows in a fixed shuffled order.
    let per_round = 1usize << 20;
    let mut keys = [FlowKey::ZERO; BURST];
    let mut hashes = [0u32; BURST];
    let mut out = [None; BURST];
    let mut pos = 0usize;
    let mut results = Vec::new();
    for r in 0..=rounds {
        let t = Instant::now();
        let mut n = 0;
        while n < per_round {
            for k in keys.iter_mut() {
                *k = pkts[pos];
                pos += 7919;
                if pos >= flows {
                    pos %= flows;
                }
            }
            if fc.uses_hashes(1) {
                for b in 0..BURST {
                    hashes[b] = keys[b].hash();
                }
            }
            let m = fc.lookup_batch(&keys, &hashes, &[60; BURST], r as u64, &mut out);
            assert_eq!(m, 0);
            n += BURST;
        }
        if r > 0 {
            results.push(t.elapsed().as_nanos() as f64 / per_round as f64);
        }
    }
    results.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let c = fc.counters();
    let t = (c.emc_hits + c.sig_hits + c.classifier_hits) as f64;
    let share = format!(
        "emc {:.0}% sig {:.0}% cls {:.0}%",
        100.0 * c.emc_hits as f64 / t,
        100.0 * c.sig_hits as f64 / t,
        100.0 * c.classifier_hits as f64 / t
    );
    (results[0], results[results.len() - 1], share)
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    println!(
        "| flows | subtables | always direct ns/pkt (min-max) | never direct | caches answered by | default policy | default answered by |"
    );
    println!("|---|---|---|---|---|---|---|");
    for flows in [1usize, 1000, 100_000] {
        for k in [1usize, 2, 3, 4, 6, 8] {
            let (dmin, dmax, _) = run(flows, k, Some(64), rounds);
            let (cmin, cmax, share) = run(flows, k, Some(0), rounds);
            let (pmin, pmax, pshare) = run(flows, k, None, rounds);
            println!(
                "| {flows} | {k} | {dmin:.1}-{dmax:.1} | {cmin:.1}-{cmax:.1} | {share} | {pmin:.1}-{pmax:.1} | {pshare} |"
            );
        }
    }
}
