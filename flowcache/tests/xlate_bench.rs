//! Megaflow and mask counts for the reference workloads in `../shared/bench` (beside the
//! checkout; `FERROVS_BENCH_DIR` overrides): the
//! rule sets of `rules_acl.py` (set r with `--routes-only`, set b without) and the
//! traffic of `gen_pcap.py`, replayed once in capture order through a model of the
//! megaflow cache (a miss translates and installs `key & mask`; a hit must carry the
//! same actions a fresh translation gives). Both table lookups are measured (the
//! classifier and the former linear scan), and per packet how often their masks differ
//! in size.
//!
//! Ignored by default (it runs python3 and takes a few seconds in release mode):
//! `cargo test --release -p ferrovs-flowcache --test xlate_bench -- --ignored --nocapture`
//! Flow counts: `FERROVS_XLATE_BENCH_FLOWS` (comma-separated, default 1000,100000).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrovs_config::rules::{Action, Masked, Match, Rule};
use ferrovs_flowcache::actions::DpActions;
use ferrovs_flowcache::key::{FlowKey, Mask, ethertype, ipproto};
use ferrovs_flowcache::xlate::{Lookup, MacTable, RuleTables, translate_with};

/// The reference workloads: `FERROVS_BENCH_DIR`, else `shared/bench` beside the checkout.
fn bench_dir() -> PathBuf {
    std::env::var_os("FERROVS_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench"))
}

/// Parses the subset of `ovs-ofctl` syntax that rules_acl.py prints (a cross-check of
/// `ferrovs_config::parse_flows`, which is what the measurement uses).
fn parse_rule(line: &str) -> Rule {
    let (m, a) = line.split_once(",actions=").expect("actions");
    let mut r = Rule::new(Match::default(), Vec::new());
    for f in m.split(',') {
        let (k, v) = f.split_once('=').map_or((f, None), |(k, v)| (k, Some(v)));
        let num = |s: &str| {
            let n = match s.strip_prefix("0x") {
                Some(h) => u32::from_str_radix(h, 16),
                None => s.parse::<u32>(),
            };
            n.unwrap_or_else(|e| panic!("bad number {s:?} in {line}: {e}"))
        };
        match (k, v) {
            ("priority", Some(v)) => r.priority = v.parse().unwrap(),
            ("ip", None) => r.matches.dl_type = Some(ethertype::IPV4),
            ("udp" | "tcp", None) => {
                r.matches.dl_type = Some(ethertype::IPV4);
                r.matches.nw_proto = Some(if k == "udp" { ipproto::UDP } else { ipproto::TCP });
            }
            ("nw_dst", Some(v)) => {
                let (a, len) = v.split_once('/').unwrap_or((v, "32"));
                let len: u32 = len.parse().unwrap();
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                let a: Ipv4Addr = a.parse().unwrap();
                r.matches.nw_dst =
                    Some(Masked { value: Ipv4Addr::from(u32::from(a) & mask), mask: Ipv4Addr::from(mask) });
            }
            ("tp_dst", Some(v)) => {
                let (val, mask) = match v.split_once('/') {
                    Some((a, b)) => (num(a), num(b)),
                    None => (num(v), 0xffff),
                };
                r.matches.tp_dst = Some(Masked { value: (val & mask) as u16, mask: mask as u16 });
            }
            _ => panic!("unsupported field {f} in {line}"),
        }
    }
    for act in a.split(',') {
        let port = act.strip_prefix("output:").expect("only output actions");
        r.actions.push(Action::Output(port.parse().unwrap()));
    }
    r
}

fn rules(routes_only: bool) -> Vec<Rule> {
    let mut cmd = Command::new("python3");
    cmd.arg(bench_dir().join("rules_acl.py")).args(["--out-port", "2"]);
    if routes_only {
        cmd.arg("--routes-only");
    }
    let out = cmd.output().expect("python3");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rules = ferrovs_config::parse_flows(&text).expect("rules_acl.py output parses");
    // Cross-check the config crate's parser against the minimal one above.
    let mine: Vec<Rule> = text.lines().filter(|l| !l.trim().is_empty()).map(parse_rule).collect();
    assert_eq!(rules, mine);
    rules
}

/// Flow keys of the frames in gen_pcap.py's capture, in capture order, on in_port 1.
fn traffic(flows: usize) -> Vec<FlowKey> {
    let dir = std::env::temp_dir().join(format!("ferrovs-xlate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap: PathBuf = dir.join(format!("flows{flows}.pcap"));
    let st = Command::new("python3")
        .arg(bench_dir().join("gen_pcap.py"))
        .args(["--flows", &flows.to_string(), "--out"])
        .arg(&pcap)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3");
    assert!(st.success());
    let b = std::fs::read(&pcap).unwrap();
    std::fs::remove_file(&pcap).ok();
    let mut keys = Vec::with_capacity(flows);
    let mut at = 24;
    while at + 16 <= b.len() {
        let caplen = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        let f = &b[at + 16..at + 16 + caplen];
        at += 16 + caplen;
        let be16 = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
        let mut k = FlowKey::ZERO;
        k.set_in_port(1);
        k.set_dl_dst(f[0..6].try_into().unwrap());
        k.set_dl_src(f[6..12].try_into().unwrap());
        k.set_dl_type(be16(12));
        assert_eq!(k.dl_type(), ethertype::IPV4);
        k.set_nw_tos(f[15]);
        k.set_nw_ttl(f[22]);
        k.set_nw_proto(f[23]);
        k.set_nw_src_u32(u32::from_be_bytes(f[26..30].try_into().unwrap()));
        k.set_nw_dst_u32(u32::from_be_bytes(f[30..34].try_into().unwrap()));
        k.set_tp_src(be16(34));
        k.set_tp_dst(be16(36));
        keys.push(k);
    }
    assert_eq!(keys.len(), flows);
    keys
}

struct Counts {
    megaflows: usize,
    masks: usize,
    /// Average time of one translation, in microseconds.
    translate_us: f64,
}

fn replay(tables: &RuleTables, keys: &[FlowKey], lookup: Lookup) -> Counts {
    let macs = MacTable::default();
    let now = Duration::ZERO;
    let mut order: Vec<Mask> = Vec::new();
    let mut cache: HashMap<Mask, HashMap<FlowKey, DpActions>> = HashMap::new();
    let mut megaflows = 0;
    let start = Instant::now();
    let all: Vec<_> = keys.iter().map(|k| translate_with(tables, &macs, k, now, lookup)).collect();
    let translate_us = start.elapsed().as_secs_f64() * 1e6 / keys.len() as f64;
    for (k, t) in keys.iter().zip(all) {
        let hit = order.iter().find_map(|m| cache[m].get(&k.masked(m)));
        match hit {
            Some(actions) => assert_eq!(actions, &t.actions, "installed megaflow disagrees for {k:?}"),
            None => {
                if !cache.contains_key(&t.mask) {
                    order.push(t.mask);
                }
                cache.entry(t.mask).or_default().insert(k.masked(&t.mask), t.actions);
                megaflows += 1;
            }
        }
    }
    if std::env::var("FERROVS_XLATE_BENCH_MASKS").is_ok() {
        for m in &order {
            println!(
                "  mask nw_dst/{} tp_dst/{} proto={} frag={}: {} megaflows",
                m.nw_dst_u32().count_ones(),
                m.tp_dst().count_ones(),
                m.nw_proto() != 0,
                m.nw_frag() != 0,
                cache[m].len()
            );
        }
    }
    Counts { megaflows, masks: order.len(), translate_us }
}

#[test]
#[ignore = "runs python3 and a long replay; see the module docs"]
fn megaflow_and_mask_counts_for_reference_workloads() {
    let flows: Vec<usize> = std::env::var("FERROVS_XLATE_BENCH_FLOWS")
        .unwrap_or_else(|_| "1000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    for (name, routes_only) in [("r", true), ("b", false)] {
        let rs = rules(routes_only);
        let n_rules = rs.len();
        let tables = RuleTables::new(rs, vec![1, 2]).unwrap();
        for &n in &flows {
            let keys = traffic(n);
            for lookup in [Lookup::LinearScan, Lookup::Index] {
                let c = replay(&tables, &keys, lookup);
                println!(
                    "set {name} ({n_rules} rules), {n} flows, {lookup:?}: {} megaflows, {} masks ({:.1} us per translation)",
                    c.megaflows, c.masks, c.translate_us
                );
            }
            let macs = MacTable::default();
            let (mut wider, mut narrower, mut shown) = (0, 0, 0);
            for k in &keys {
                let a = translate_with(&tables, &macs, k, Duration::ZERO, Lookup::LinearScan).mask;
                let b = translate_with(&tables, &macs, k, Duration::ZERO, Lookup::Index).mask;
                let bits = |m: &Mask| m.w.iter().map(|w| w.count_ones()).sum::<u32>();
                if bits(&b) > bits(&a) {
                    wider += 1;
                    if shown < 5 && std::env::var("FERROVS_XLATE_BENCH_MASKS").is_ok() {
                        shown += 1;
                        println!("  wider: key {k:?}\n    linear {:x?}\n    index  {:x?}", a.w, b.w);
                    }
                } else if bits(&b) < bits(&a) {
                    narrower += 1;
                }
            }
            println!("  index mask vs linear scan: {wider} wider, {narrower} narrower of {n}");
        }
    }
}
