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

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::extract::{extract, extract_batch};
use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::testpkt::*;
use ferrovs_flowcache::{FlowCache, FlowCacheConfig, Megaflow, MegaflowId};

const BURST: usize = 32;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Mask number `i` of the family of 360: in_port, dl_type, nw_proto, tp_src and the
/// top 16 bits of nw_dst always; then nw_dst prefix 16..32 step 2 (9), nw_src prefix
/// 0/8/16/24/32 (5), tp_dst on/off, VLAN VID on/off, DSCP on/off. Flows of different
/// masks are disjoint because each mask i owns nw_dst 10.i/16... (top 16 bits = mask
/// number), which every mask covers.
fn mask_n(i: usize) -> FlowKey {
    let dst_plen = 16 + 2 * (i % 9) as u32;
    let src_plen = [0u32, 8, 16, 24, 32][(i / 9) % 5];
    let mut m = FlowKey::ZERO;
    m.set_in_port(u32::MAX);
    m.set_dl_type(0xffff);
    m.set_nw_proto(0xff);
    m.set_tp_src(0xffff);
    m.set_nw_dst_u32(u32::MAX << (32 - dst_plen));
    m.set_nw_src_u32(if src_plen == 0 { 0 } else { u32::MAX << (32 - src_plen) });
    if (i / 45) % 2 == 1 {
        m.set_tp_dst(0xffff);
    }
    if (i / 90) % 2 == 1 {
        m.set_vlan_tci(0, 0x0fff);
    }
    if (i / 180) % 2 == 1 {
        m.set_nw_tos(0xfc);
    }
    m
}

/// `n_flows` disjoint megaflows over `n_masks` masks, and one packet key per flow
/// (unmasked bits random, so packets of one flow differ from its key).
fn build(n_flows: usize, n_masks: usize, cfg: FlowCacheConfig) -> (FlowCache, Vec<FlowKey>, Vec<MegaflowId>) {
    let mut fc = FlowCache::new(FlowCacheConfig { max_flows: n_flows.max(cfg.max_flows), ..cfg });
    let mut rng = Rng(42);
    let mut packets = Vec::with_capacity(n_flows);
    let mut ids = Vec::with_capacity(n_flows);
    for f in 0..n_flows {
        let mi = f % n_masks;
        let m = mask_n(mi);
        let mut p = FlowKey::ZERO;
        p.set_in_port(1);
        p.set_dl_type(0x0800);
        p.set_nw_proto(6);
        p.set_dl_src_u64(rng.next() & 0xffff_ffff_ffff);
        p.set_dl_dst_u64(rng.next() & 0xffff_ffff_ffff);
        p.set_nw_ttl(64);
        p.set_nw_tos(rng.next() as u8);
        p.set_vlan_tci(0, 0x1000 | (rng.next() as u16 & 0x0fff));
        p.set_nw_src_u32(rng.next() as u32);
        p.set_tp_dst(rng.next() as u16);
        p.set_tcp_flags(0x10);
        // Distinct per flow within its mask: tp_src carries the flow's rank in the mask
        // (up to 65536 per mask), the rest of nw_dst below the mask number is random.
        let rank = f / n_masks;
        p.set_tp_src(rank as u16);
        let extra = (rank >> 16) as u32; // beyond 65536 flows per mask: into nw_dst
        p.set_nw_dst_u32(((mi as u32 & 0xffff) << 16) | ((extra & 0xff) << 8) | (rng.next() as u32 & 0xff));
        let id = fc
            .insert_unchecked(Megaflow::new(p, m, vec![DpAction::Output(2)]), 0)
            .expect("disjoint flows");
        ids.push(id);
        packets.push(p);
    }
    (fc, packets, ids)
}

/// A sequence of flow indices: uniform, or Zipf(s = 1) by rank.
fn traffic(n_flows: usize, len: usize, skewed: bool) -> Vec<u32> {
    let mut rng = Rng(7);
    if !skewed {
        return (0..len).map(|_| (rng.next() % n_flows as u64) as u32).collect();
    }
    let mut cdf = Vec::with_capacity(n_flows);
    let mut acc = 0.0;
    for r in 1..=n_flows {
        acc += 1.0 / r as f64;
        cdf.push(acc);
    }
    (0..len)
        .map(|_| {
            let x = rng.f64() * acc;
            cdf.partition_point(|&c| c < x).min(n_flows - 1) as u32
        })
        .collect()
}

/// Times `iters` packets of `arrivals` through `fc` in bursts of 32. The packet keys are
/// laid out in arrival order beforehand (as extraction would leave them in the
/// burst), so the harness reads them sequentially rather than with a cache miss each;
/// the hash is computed per packet (no RSS hash assumed).
fn run_arrivals(fc: &mut FlowCache, arrivals: &[FlowKey], iters: u64, pos: &mut usize) -> Duration {
    let bursts = (iters as usize).div_ceil(BURST);
    let mut hashes = [0u32; BURST];
    let bytes = [64u32; BURST];
    let mut out = [None; BURST];
    let mut misses = 0;
    let start = Instant::now();
    for _ in 0..bursts {
        if *pos + BURST > arrivals.len() {
            *pos = 0;
        }
        let keys = &arrivals[*pos..*pos + BURST];
        for i in 0..BURST {
            hashes[i] = keys[i].hash();
        }
        *pos += BURST;
        misses += fc.lookup_batch(&keys, &hashes, &bytes, 1, &mut out);
        std::hint::black_box(&out);
    }
    let t = start.elapsed();
    assert_eq!(misses, 0, "every packet belongs to an installed flow");
    t
}

fn frames() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for i in 0..BURST as u16 {
        v.push(match i % 4 {
            0 => tcp4_frame(&Tcp4 { sport: 1000 + i, ..TCP4 }),
            1 => udp4_frame(2000 + i, 53, &[0; 18]),
            2 => with_vlan(&tcp4_frame(&Tcp4 { dport: 443, sport: i, ..TCP4 }), 0x8100, 100),
            _ => ipv6_frame(6, 0, &[], &tcp_header(i, 80, 0x10, 5)),
        });
    }
    v
}

fn bench_extract(c: &mut Criterion) {
    let frames = frames();
    let ports = [1u32; BURST];
    let mut keys = [FlowKey::ZERO; BURST];
    c.bench_function("extract/mix_burst32", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..(iters as usize).div_ceil(BURST) {
                extract_batch(std::hint::black_box(&frames), &ports, &mut keys);
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
                k.set_nw_src_u32(rng.next() as u32);
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
                / (after.emc_hits + after.sig_hits + after.classifier_hits - before.emc_hits - before.sig_hits - before.classifier_hits).max(1) as f64
        );
    }
    g.finish();
}

fn bench_extract_and_lookup(c: &mut Criterion) {
    let frames = frames();
    let ports = [1u32; BURST];
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
                    extract_batch(std::hint::black_box(&frames), &ports, &mut keys);
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
        let n_masks_eff = n_masks.min(360);
        let (mut fc, packets, _) = build(
            10 * n_masks_eff,
            n_masks_eff,
            FlowCacheConfig { emc_entries: 0, sig_entries: 0, ..Default::default() },
        );
        // Beyond the 360-mask family: extra masks add an exact match on dl_src bits.
        let mut fc = if n_masks > 360 {
            let mut extra = FlowCache::new(FlowCacheConfig { emc_entries: 0, sig_entries: 0, ..Default::default() });
            let mut pk = Vec::new();
            for f in 0..10 * n_masks {
                let mi = f % n_masks;
                let mut m = mask_n(mi % 360);
                m.set_dl_src_u64((mi / 360 + 1) as u64); // distinct masks: 1 or 2 bits of dl_src
                let mut p = packets[(f / n_masks) * 360 + (mi % 360)];
                p.set_dl_src_u64(0xffff_ffff_ffff);
                // Disjoint: flows of mask family k > 0 use tp_src = 1000 + rank.
                p.set_tp_src(((f / n_masks) + 1000 * (mi / 360)) as u16);
                extra.insert(Megaflow::new(p, m, vec![DpAction::Output(2)]), 0).expect("disjoint");
                pk.push(p);
            }
            fc = extra;
            assert_eq!(fc.n_masks(), n_masks);
            let seq = traffic(pk.len(), 1 << 16, false);
            let arr: Vec<FlowKey> = seq.iter().map(|&f| pk[f as usize]).collect();
            let mut pos = 0;
            g.bench_function(BenchmarkId::from_parameter(format!("{n_masks}_subtables")), |b| {
                b.iter_custom(|iters| run_arrivals(&mut fc, &arr, iters, &mut pos))
            });
            continue;
        } else {
            fc
        };
        assert_eq!(fc.n_masks(), n_masks);
        let seq = traffic(packets.len(), 1 << 16, false);
        let arr: Vec<FlowKey> = seq.iter().map(|&f| packets[f as usize]).collect();
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
            let total = (a.emc_hits + a.sig_hits + a.classifier_hits - before.emc_hits - before.sig_hits - before.classifier_hits).max(1) as f64;
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
    for (n_flows, skewed) in [(1_000usize, false), (20_000, false), (100_000, false), (100_000, true), (1_000_000, true)] {
        for (name, emc, prob, sig) in [
            ("emc_always_sig", 8192, 1, 1 << 20),
            ("emc_1in100_sig", 8192, 100, 1 << 20),
            ("no_emc_sig", 0, 0, 1 << 20),
            ("emc_always_nosig", 8192, 1, 0),
            ("emc_1in100_nosig", 8192, 100, 0),
        ] {
            let cfg = FlowCacheConfig { emc_entries: emc, emc_insert_inverse_prob: prob, sig_entries: sig, ..Default::default() };
            let (mut fc, packets, _) = build(n_flows, 360, cfg);
            if n_flows > 100_000 && sig == 0 {
                continue; // minutes per sample
            }
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
