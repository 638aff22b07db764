//! Workloads shared by the criterion benchmarks (`benches/flowcache.rs`) and the
//! figure-collecting example (`examples/measure.rs`): deterministic flow sets, traffic
//! sequences and the timed burst loop.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::testpkt::*;
use ferrovs_flowcache::{FlowCache, FlowCacheConfig, Megaflow, MegaflowId};

/// Packets per burst: the largest batch the cache looks up at once (the PMD's burst).
pub use ferrovs_flowcache::classifier::MAX_BATCH as BURST;

/// Extracts the key of every frame of a burst (all from port 1) into `keys`.
pub fn extract_burst<F: AsRef<[u8]>>(frames: &[F], keys: &mut [FlowKey]) {
    for (k, f) in keys.iter_mut().zip(frames) {
        *k = ferrovs_flowcache::extract::extract(f.as_ref(), 1);
    }
}

pub use ferrovs_flowcache::testpkt::SplitMix as Rng;

/// A uniform float in [0, 1).
pub fn unit_f64(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Mask number `i` of the family of 360: in_port, dl_type, nw_proto, tp_src and the
/// top 16 bits of nw_dst always; then nw_dst prefix 16..32 step 2 (9), nw_src prefix
/// 0/8/16/24/32 (5), tp_dst on/off, VLAN VID on/off, DSCP on/off. Flows of different
/// masks are disjoint because each mask i owns nw_dst 10.i/16... (top 16 bits = mask
/// number), which every mask covers.
pub fn mask_n(i: usize) -> FlowKey {
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
pub fn build(n_flows: usize, n_masks: usize, cfg: FlowCacheConfig) -> (FlowCache, Vec<FlowKey>, Vec<MegaflowId>) {
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
        p.set_dl_src_u64(rng.next_u64() & 0xffff_ffff_ffff);
        p.set_dl_dst_u64(rng.next_u64() & 0xffff_ffff_ffff);
        p.set_nw_ttl(64);
        p.set_nw_tos(rng.next_u64() as u8);
        p.set_vlan_tci(0, 0x1000 | (rng.next_u64() as u16 & 0x0fff));
        p.set_nw_src_u32(rng.next_u64() as u32);
        p.set_tp_dst(rng.next_u64() as u16);
        p.set_tcp_flags(0x10);
        // Distinct per flow within its mask: tp_src carries the flow's rank in the mask
        // (up to 65536 per mask), the rest of nw_dst below the mask number is random.
        let rank = f / n_masks;
        p.set_tp_src(rank as u16);
        let extra = (rank >> 16) as u32; // beyond 65536 flows per mask: into nw_dst
        p.set_nw_dst_u32(((mi as u32 & 0xffff) << 16) | ((extra & 0xff) << 8) | (rng.next_u64() as u32 & 0xff));
        let id = fc.insert_unchecked(Megaflow::new(p, m, vec![DpAction::Output(2)]), 0).expect("disjoint flows");
        ids.push(id);
        packets.push(p);
    }
    (fc, packets, ids)
}

/// A sequence of flow indices: uniform, or Zipf(s = 1) by rank.
pub fn traffic(n_flows: usize, len: usize, skewed: bool) -> Vec<u32> {
    let mut rng = Rng(7);
    if !skewed {
        return (0..len).map(|_| (rng.next_u64() % n_flows as u64) as u32).collect();
    }
    let mut cdf = Vec::with_capacity(n_flows);
    let mut acc = 0.0;
    for r in 1..=n_flows {
        acc += 1.0 / r as f64;
        cdf.push(acc);
    }
    (0..len)
        .map(|_| {
            let x = unit_f64(&mut rng) * acc;
            cdf.partition_point(|&c| c < x).min(n_flows - 1) as u32
        })
        .collect()
}

/// Times `iters` packets of `arrivals` through `fc` in bursts of 32. The packet keys are
/// laid out in arrival order beforehand (as extraction would leave them in the
/// burst), so the harness reads them sequentially rather than with a cache miss each;
/// the hash is computed per packet (no RSS hash assumed).
pub fn run_arrivals(fc: &mut FlowCache, arrivals: &[FlowKey], iters: u64, pos: &mut usize) -> Duration {
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
        misses += fc.lookup_batch(keys, &hashes, &bytes, 1, &mut out);
        std::hint::black_box(&out);
    }
    let t = start.elapsed();
    assert_eq!(misses, 0, "every packet belongs to an installed flow");
    t
}

/// One burst of the extraction workload: TCP4, UDP4, VLAN-tagged TCP4 and IPv6 TCP in turn.
pub fn frames() -> Vec<Vec<u8>> {
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

/// A classifier-only FlowCache (EMC and signature cache off) with `n_masks` subtables
/// of 10 flows each, and one packet per flow. Up to 360 masks come from [`mask_n`];
/// beyond, each further family of 360 also matches one more bit of `dl_src`.
pub fn build_classifier(n_masks: usize) -> (FlowCache, Vec<FlowKey>) {
    let cfg = FlowCacheConfig { emc_entries: 0, sig_entries: 0, ..Default::default() };
    if n_masks <= 360 {
        let (fc, packets, _) = build(10 * n_masks, n_masks, cfg);
        assert_eq!(fc.n_masks(), n_masks);
        return (fc, packets);
    }
    let (_, base, _) = build(10 * 360, 360, cfg);
    let mut fc = FlowCache::new(cfg);
    let mut pk = Vec::new();
    for f in 0..10 * n_masks {
        let mi = f % n_masks;
        let family = mi / 360;
        let mut m = mask_n(mi % 360);
        m.set_dl_src_u64(1 << family);
        let rank = f / n_masks;
        let mut p = base[rank * 360 + mi % 360];
        p.set_dl_src_u64(0xffff_ffff_ffff);
        // Disjoint across families: tp_src = 1000 * family + rank.
        p.set_tp_src((rank + 1000 * family) as u16);
        fc.insert(Megaflow::new(p, m, vec![DpAction::Output(2)]), 0).expect("disjoint");
        pk.push(p);
    }
    assert_eq!(fc.n_masks(), n_masks);
    (fc, pk)
}

/// Keys in arrival order for a traffic sequence.
pub fn arrivals(packets: &[FlowKey], seq: &[u32]) -> Vec<FlowKey> {
    seq.iter().map(|&f| packets[f as usize]).collect()
}
