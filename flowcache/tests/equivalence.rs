//! Property test: the FlowCache (EMC + signature cache + tuple-space classifier) gives
//! the same answer as the linear-scan reference classifier, for random megaflow sets
//! and random packets, across interleaved inserts, removals, revalidation sweeps and
//! idle expiry.
//!
//! Keys and masks are drawn from a small universe so that overlaps (which both sides
//! must refuse), hits, misses, hash collisions and cache evictions are all common.
//!
//! Fast by default (64 cases of 200 operations). For the long run:
//!   FERROVS_PROPTEST_CASES=20000 cargo test --release -p ferrovs-flowcache --test equivalence
//! Each case checks about 200 * 16 = 3,200 packets, so 20,000 cases check ~64 million.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::emc::FramedBurst;
use ferrovs_flowcache::extract::{extract, frame_window, window_flags_word};
use ferrovs_flowcache::key::{FlowKey, TCP_FLAGS_WORD, hash_window};
use ferrovs_flowcache::reference::{self, RefId, ReferenceClassifier};
use ferrovs_flowcache::testpkt::{Ipv4Hdr, eth_header, ipv4_header, tcp_header, udp_segment, with_vlan};
use ferrovs_flowcache::{FlowCache, FlowCacheConfig, InsertError, Megaflow, MegaflowId};
use proptest::prelude::*;

/// Packets compared against the reference, and cases run, over the whole test (printed
/// at the end so the long run's size is visible).
static PACKETS_CHECKED: AtomicU64 = AtomicU64::new(0);
static CASES_RUN: AtomicU64 = AtomicU64::new(0);
/// Packets the EMC's frame table answered in the framed bursts.
static FRAME_HITS: AtomicU64 = AtomicU64::new(0);

fn cases() -> u32 {
    std::env::var("FERROVS_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64)
}

/// A point of the small key universe.
#[derive(Debug, Clone, Copy)]
struct Fields {
    port: u32,
    ipv6: bool,
    proto: u8,
    dst: u32,
    tp_dst: u16,
    vlan: u16,
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        1u32..=3,
        any::<bool>(),
        prop::sample::select(vec![6u8, 17]),
        0u32..32,
        0u16..4,
        prop::sample::select(vec![0u16, 0x1005, 0x1006]),
    )
        .prop_map(|(port, ipv6, proto, dst, tp_dst, vlan)| Fields { port, ipv6, proto, dst, tp_dst, vlan })
}

/// A frame whose key is `key_of(f)` (IPv4 only), in_port aside.
fn frame_of(f: &Fields) -> Vec<u8> {
    let l4 = if f.proto == 6 { tcp_header(0, f.tp_dst, 0x10, 5) } else { udp_segment(0, f.tp_dst, &[0; 18]) };
    let ip = Ipv4Hdr { ttl: 0, ..Ipv4Hdr::new([0; 4], (0x0a00_0000 | f.dst).to_be_bytes(), f.proto) };
    let mut frame = eth_header([0; 6], [0; 6], 0x0800);
    frame.extend(ipv4_header(&ip, &[], l4.len()));
    frame.extend(l4);
    if f.vlan != 0 { with_vlan(&frame, 0x8100, f.vlan & 0x0fff) } else { frame }
}

fn key_of(f: &Fields) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_in_port(f.port);
    k.set_dl_type(if f.ipv6 { 0x86dd } else { 0x0800 });
    k.set_vlan_tci(0, f.vlan);
    k.set_nw_proto(f.proto);
    k.set_tp_dst(f.tp_dst);
    k.set_tcp_flags(if f.proto == 6 { 0x10 } else { 0 });
    if f.ipv6 {
        k.set_ipv6_dst_u128(0x2001_0db8 << 96 | f.dst as u128);
    } else {
        k.set_nw_dst_u32(0x0a00_0000 | f.dst);
    }
    k
}

/// Mask choices: (in_port exact?, dl_type, nw_proto, dst prefix drop bits, tp_dst mask, vlan mask).
fn mask() -> impl Strategy<Value = FlowKey> {
    (
        prop::bool::weighted(0.9),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![None, Some(0u32), Some(1), Some(3), Some(5)]),
        prop::sample::select(vec![0u16, 0xffff, 0x0001]),
        prop::sample::select(vec![0u16, 0xffff, 0x1000]),
    )
        .prop_map(|(port, dl_type, proto, dst_drop, tp, vlan)| {
            let mut m = FlowKey::ZERO;
            if port {
                m.set_in_port(u32::MAX);
            }
            // Prerequisites as translation would produce them: address and L4 bits
            // are only matched together with dl_type (and nw_proto for L4).
            let l3 = dl_type || dst_drop.is_some() || tp != 0;
            if l3 {
                m.set_dl_type(0xffff);
            }
            if proto || tp != 0 {
                m.set_nw_proto(0xff);
            }
            if let Some(d) = dst_drop {
                m.set_nw_dst_u32(u32::MAX << d);
                m.w[6] = u64::MAX;
                m.w[7] = u64::MAX << d;
            }
            m.set_tp_dst(tp);
            m.set_vlan_tci(0, vlan);
            m
        })
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Fields, FlowKey),
    Remove(usize),
    Lookup(Vec<Fields>),
    RemoveWherePort(u32),
    Expire(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (fields(), mask()).prop_map(|(f, m)| Op::Insert(f, m)),
        2 => any::<usize>().prop_map(Op::Remove),
        8 => prop::collection::vec(fields(), 1..40).prop_map(Op::Lookup),
        1 => (1u32..=3).prop_map(Op::RemoveWherePort),
        1 => (0u64..30).prop_map(Op::Expire),
    ]
}

fn config() -> impl Strategy<Value = (FlowCacheConfig, u32, u32, usize)> {
    (
        prop::sample::select(vec![0usize, 2, 64, 8192]),
        prop::sample::select(vec![0u32, 1, 2, 100]),
        prop::sample::select(vec![0usize, 8, 64, 1 << 16]),
        // Hash quality: full, few distinct values, constant (as a worst-case RSS).
        prop::sample::select(vec![u32::MAX, 0x0000_0107, 0]),
        // Adaptive EMC window: 0 = not adaptive, 1 and 3 = flips between probing and
        // bypassing many times within one case.
        prop::sample::select(vec![0u32, 1, 3, 1024]),
        // Direct classifier lookups for ports with at most this many subtables (0 =
        // never): 1 and 3 switch between direct and cached lookups within one case.
        prop::sample::select(vec![0usize, 1, 3, 64]),
    )
        .prop_map(|(emc, prob, sig, hash_mask, gate, direct)| {
            (
                FlowCacheConfig { max_flows: 48, emc_entries: emc, emc_insert_inverse_prob: prob, sig_entries: sig },
                hash_mask,
                gate,
                direct,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn flow_cache_equals_reference((cfg, hash_mask, gate, direct) in config(), ops in prop::collection::vec(op(), 1..200)) {
        let mut fc = FlowCache::new(cfg);
        fc.set_direct_max_subtables(direct);
        if gate == 0 {
            fc.set_emc_adaptive(false);
        } else {
            fc.set_emc_gate_window(gate);
        }
        let mut reference = ReferenceClassifier::new();
        let mut ids: HashMap<MegaflowId, RefId> = HashMap::new();
        let mut live: Vec<MegaflowId> = Vec::new();
        let mut now = 0u64;
        let mut removed_packets = 0u64;
        let mut framed = FramedBurst::new();
        for op in ops {
            now += 1;
            match op {
                Op::Insert(f, m) => {
                    let mf = Megaflow::new(key_of(&f), m, vec![DpAction::Output(now as u32)]);
                    let got = fc.insert(mf.clone(), now);
                    if live.len() >= cfg.max_flows {
                        prop_assert!(matches!(got, Err(InsertError::Full(_))), "{:?}", got);
                        continue;
                    }
                    let want = reference.insert(mf);
                    match (got, want) {
                        (Ok(id), Ok(rid)) => { ids.insert(id, rid); live.push(id); }
                        (Err(InsertError::Overlap(id)), Err(_)) => {
                            // The reported megaflow really overlaps.
                            let other = fc.get(id).expect("overlap names a live flow");
                            prop_assert!(reference::overlap(other.key, other.mask, &key_of(&f), &m));
                        }
                        (g, w) => prop_assert!(false, "insert disagrees: {:?} vs {:?}", g, w),
                    }
                }
                Op::Remove(i) => {
                    if live.is_empty() { continue; }
                    let id = live.swap_remove(i % live.len());
                    removed_packets += fc.remove(id).expect("live").1.packets;
                    prop_assert!(fc.remove(id).is_none());
                    reference.remove(ids.remove(&id).unwrap());
                }
                Op::Lookup(pkts) => {
                    let keys: Vec<FlowKey> = pkts.iter().map(key_of).collect();
                    for f in pkts.iter().filter(|f| !f.ipv6) {
                        prop_assert_eq!(extract(&frame_of(f), f.port), key_of(f));
                    }
                    let hashes: Vec<u32> = keys.iter().map(|k| k.hash() & hash_mask).collect();
                    let mut out = vec![None; keys.len()];
                    // Twice: the second pass is answered by the caches filled by the first.
                    for _ in 0..2 {
                        let misses = fc.lookup_batch(&keys, &hashes, &vec![100; keys.len()], now, &mut out);
                        prop_assert_eq!(misses, out.iter().filter(|o| o.is_none()).count());
                        PACKETS_CHECKED.fetch_add(keys.len() as u64, Ordering::Relaxed);
                        for (k, o) in keys.iter().zip(&out) {
                            let want = reference.lookup(k);
                            prop_assert_eq!(o.map(|id| ids[&id]), want, "key {:?}", k);
                        }
                    }
                    // The PMD's form: the keys of one port at a time (no grouping by port).
                    let mut ports: Vec<u32> = keys.iter().map(|k| k.in_port()).collect();
                    ports.sort_unstable();
                    ports.dedup();
                    for port in ports {
                        let mine: Vec<FlowKey> = keys.iter().copied().filter(|k| k.in_port() == port).collect();
                        // In trains, as bursts come (a key repeated answers as the first of
                        // its train): keys 0, 0, 1, 2, 2, 3, ... of the port's.
                        let mine: Vec<FlowKey> = (0..mine.len()).map(|i| mine[i * 2 / 3]).collect();
                        let h: Vec<u32> = mine.iter().map(|k| k.hash() & hash_mask).collect();
                        // Each hit as its megaflow and the index of its actions in `lists`
                        // (resolved results borrow the cache; they are copied out here).
                        let mut got = vec![None; mine.len()];
                        let mut lists: Vec<(MegaflowId, Vec<DpAction>)> = Vec::new();
                        let found = fc.lookup_burst(port, &mine, &h, &vec![100; mine.len()], now, &mut got, |r| {
                            r.map(|(id, a)| {
                                lists.push((id, a.to_vec()));
                                (id, lists.len() - 1)
                            })
                        });
                        let misses = found.misses;
                        // One train that hit: one value everywhere (the caller reads only
                        // the first).
                        if found.one_train {
                            prop_assert!(got[0].is_some() && got.iter().all(|g| *g == got[0]), "{:?}", got);
                        }
                        let one_key = !mine.is_empty() && mine.iter().all(|k| *k == mine[0]);
                        prop_assert!(!found.one_train || one_key);
                        // One output port: reported exactly when the burst had no trains,
                        // every key hit, and every megaflow's list is that one output.
                        let port_of = |g: &Option<(MegaflowId, usize)>| match g.map(|(_, l)| lists[l].1.as_slice()) {
                            Some([DpAction::Output(p)]) => Some(*p),
                            _ => None,
                        };
                        let one_port =
                            got.first().and_then(port_of).filter(|p| got.iter().all(|g| port_of(g) == Some(*p)));
                        let want_one_output = one_port.filter(|p| !found.trains && *p != u32::MAX);
                        prop_assert_eq!(found.one_output, want_one_output, "{:?}", got);
                        // Resolved once per run of keys of one megaflow, with its own actions.
                        let hit_runs = (0..got.len())
                            .filter(|&i| got[i].is_some() && (i == 0 || got[i - 1].map(|g| g.0) != got[i].map(|g| g.0)))
                            .count();
                        prop_assert_eq!(lists.len(), hit_runs);
                        for (id, actions) in &lists {
                            prop_assert_eq!(Some(actions), fc.actions(*id));
                        }
                        let out: Vec<_> = got.iter().map(|g| g.map(|(id, _)| id)).collect();
                        prop_assert_eq!(misses, out.iter().filter(|o| o.is_none()).count());
                        PACKETS_CHECKED.fetch_add(mine.len() as u64, Ordering::Relaxed);
                        for (k, o) in mine.iter().zip(&out) {
                            prop_assert_eq!(o.map(|id| ids[&id]), reference.lookup(k), "burst of port {}, key {:?}", port, k);
                        }
                    }
                    // The PMD's walk through the EMC's frame table (IPv4 frames of the port's,
                    // as frames): a frame of the common shape the table answers has no key
                    // (only its flags word); the others are extracted. Three times (the first
                    // ones fill the table).
                    let mut ports: Vec<u32> = keys.iter().map(|k| k.in_port()).collect();
                    ports.sort_unstable();
                    ports.dedup();
                    for port in ports {
                        let frames: Vec<Vec<u8>> =
                            pkts.iter().filter(|f| f.port == port && !f.ipv6).take(32).map(frame_of).collect();
                        for _ in 0..3 {
                            if frames.is_empty() || !fc.uses_hashes(port) {
                                break;
                            }
                            let Some(probe) = fc.frame_probe() else { break };
                            // Kept from burst to burst, as the PMD keeps it: stale entries.
                            (framed.hits, framed.windowed) = (0, 0);
                            let mut mine = vec![FlowKey::EXACT; frames.len()];
                            let mut h = vec![0u32; frames.len()];
                            for (i, frame) in frames.iter().enumerate() {
                                if let Some((w, _)) = frame_window(frame, port) {
                                    let wh = hash_window(&w) & hash_mask;
                                    if let Some(x) = probe.lookup(&w, wh) {
                                        framed.idx[i] = x;
                                        framed.hits |= 1 << i;
                                        mine[i].w[TCP_FLAGS_WORD] = window_flags_word(&w);
                                        continue;
                                    }
                                    (framed.windows[i], framed.hashes[i]) = (w, wh);
                                    framed.windowed |= 1 << i;
                                }
                                mine[i] = extract(frame, port);
                                h[i] = mine[i].hash() & hash_mask;
                            }
                            FRAME_HITS.fetch_add(framed.hits.count_ones() as u64, Ordering::Relaxed);
                            let mut got = vec![None; frames.len()];
                            let found = fc.lookup_burst_framed(port, &mine, &h, &vec![100; mine.len()], &framed, now, &mut got, |r| r.map(|(id, _)| id));
                            prop_assert_eq!(found.misses, got.iter().filter(|o| o.is_none()).count());
                            PACKETS_CHECKED.fetch_add(frames.len() as u64, Ordering::Relaxed);
                            for (frame, o) in frames.iter().zip(&got) {
                                let k = extract(frame, port);
                                prop_assert_eq!(o.map(|id| ids[&id]), reference.lookup(&k), "framed burst of port {}, key {:?}", port, k);
                            }
                        }
                    }
                }
                Op::RemoveWherePort(p) => {
                    let gone = fc.remove_where(|m| m.mask.in_port() == ferrovs_flowcache::key::IN_PORT_EXACT && m.key.in_port() == p);
                    for (id, stats) in gone {
                        removed_packets += stats.packets;
                        let rid = ids.remove(&id).unwrap();
                        let mf = reference.remove(rid).unwrap();
                        prop_assert_eq!(mf.key.in_port(), p);
                        live.retain(|&l| l != id);
                    }
                    prop_assert_eq!(fc.len(), reference.len());
                }
                Op::Expire(idle) => {
                    for (id, stats) in fc.expire_idle(now, idle) {
                        prop_assert!(stats.used + idle <= now);
                        removed_packets += stats.packets;
                        reference.remove(ids.remove(&id).unwrap());
                        live.retain(|&l| l != id);
                    }
                    for id in &live {
                        prop_assert!(fc.stats(*id).unwrap().used + idle > now);
                    }
                }
            }
            prop_assert_eq!(fc.len(), reference.len());
        }
        // Stats add up: every hit was counted on exactly one megaflow.
        let c = fc.counters();
        let live_packets: u64 = live.iter().map(|id| fc.stats(*id).unwrap().packets).sum();
        prop_assert_eq!(c.emc_hits + c.sig_hits + c.classifier_hits, live_packets + removed_packets);
        let run = CASES_RUN.fetch_add(1, Ordering::Relaxed) + 1;
        if run.is_multiple_of(10_000) || run == cases() as u64 {
            eprintln!(
                "equivalence: {run} cases, {} packets checked, {} answered by the frame table",
                PACKETS_CHECKED.load(Ordering::Relaxed),
                FRAME_HITS.load(Ordering::Relaxed)
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// The PMD installs with `insert_unchecked`: the slow path may install megaflows that
    /// partially overlap (with the same decision on the packets they share). Then any
    /// matching megaflow is a right answer: a lookup must return one that matches the
    /// packet, and a miss only when none does.
    #[test]
    fn overlapping_megaflows_answer_some_match((cfg, hash_mask, gate, direct) in config(), ops in prop::collection::vec(op(), 1..200)) {
        let mut fc = FlowCache::new(FlowCacheConfig { max_flows: 1000, ..cfg });
        fc.set_direct_max_subtables(direct);
        fc.set_emc_gate_window(gate.max(1));
        let mut installed: HashMap<MegaflowId, Megaflow> = HashMap::new();
        let mut now = 0u64;
        for op in ops {
            now += 1;
            match op {
                Op::Insert(f, m) => {
                    let mf = Megaflow::new(key_of(&f), m, vec![DpAction::Output(now as u32)]);
                    match fc.insert_unchecked(mf.clone(), now) {
                        Ok(id) => { installed.insert(id, mf); }
                        Err(InsertError::Overlap(id)) => {
                            let other = &installed[&id];
                            // Identical bit for bit: same mask, same key on the masked bits.
                            let same = other.mask == mf.mask
                                && reference::matches(&other.key, &other.mask, &mf.key)
                                && reference::matches(&mf.key, &mf.mask, &other.key);
                            prop_assert!(same, "only identical flows are refused: {:?} vs {:?}", other, mf);
                        }
                        Err(e) => prop_assert!(false, "{:?}", e),
                    }
                }
                Op::Remove(i) => {
                    if installed.is_empty() { continue; }
                    let mut ids: Vec<MegaflowId> = installed.keys().copied().collect();
                    ids.sort();
                    let id = ids[i % ids.len()];
                    prop_assert!(fc.remove(id).is_some());
                    installed.remove(&id);
                }
                Op::Lookup(pkts) => {
                    let keys: Vec<FlowKey> = pkts.iter().map(key_of).collect();
                    let hashes: Vec<u32> = keys.iter().map(|k| k.hash() & hash_mask).collect();
                    let mut out = vec![None; keys.len()];
                    for _ in 0..2 {
                        fc.lookup_batch(&keys, &hashes, &vec![100; keys.len()], now, &mut out);
                        PACKETS_CHECKED.fetch_add(keys.len() as u64, Ordering::Relaxed);
                        for (k, o) in keys.iter().zip(&out) {
                            match o {
                                Some(id) => {
                                    let m = &installed[id];
                                    prop_assert!(reference::matches(&m.key, &m.mask, k), "returned a non-matching megaflow")
                                }
                                None => prop_assert!(
                                    !installed.values().any(|m| reference::matches(&m.key, &m.mask, k)),
                                    "missed a matching megaflow"
                                ),
                            }
                        }
                    }
                }
                Op::RemoveWherePort(p) => {
                    for (id, _) in fc.remove_where(|m| m.key.in_port() == p) {
                        prop_assert!(installed.remove(&id).is_some());
                    }
                }
                Op::Expire(idle) => {
                    for (id, _) in fc.expire_idle(now, idle) {
                        prop_assert!(installed.remove(&id).is_some());
                    }
                }
            }
            prop_assert_eq!(fc.len(), installed.len());
        }
    }
}
