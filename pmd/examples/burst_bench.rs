//! Instruction-count benchmark of the PMD: full bursts of 64-byte UDP frames from
//! `--flows N` distinct 5-tuples (one megaflow each) through the PMD's real code
//! ([`ferrovs_pmd::burst_bench`]), on the main thread.
//!
//! Every flow is first installed through the miss path (warm-up passes until no packet
//! misses), then one more untimed pass, then `--bursts B` measured bursts cycling over the
//! flows. `--scope burst` (the default) measures `BurstBench::measured_burst` (the burst
//! path, `process_burst`); `--scope loop` measures `BurstBench::measured_iteration` (one
//! whole iteration of the PMD's run loop per burst, rx and tx drivers included). Run under
//! `valgrind --tool=callgrind --toggle-collect='*BurstBench::measured_burst*'` (or
//! `measured_iteration`; deploy/bench-instructions does), callgrind's total divided by the
//! packets printed here is instructions per packet. Natively it prints the TSC cycles per
//! packet of the same code (noisy; for orientation).
//!
//! `--actions` sets what every megaflow does: `output` (output:2, the default), `drop`
//! (no action) or `output2` (output:1,output:2: one extra buffer reference per packet).
//! `--mask` sets the megaflows' mask: `5tuple` (the default, one megaflow per flow) or
//! `port` (in_port alone: one megaflow answers every flow, as for a table of in_port
//! rules). `--emc` looks the bursts up through the exact-match cache (filled by every hit
//! of the warm-up) instead of straight in the classifier.
//!
//! Usage: cargo run --release -p ferrovs-pmd --example burst_bench -- [--flows N] [--bursts B]
//!        [--actions output|drop|output2] [--mask 5tuple|port] [--emc] [--scope burst|loop]

use std::net::Ipv4Addr;

use ferrovs_dpdk::{BURST, Eal, MbufBatch, rdtsc};
use ferrovs_flowcache::FlowCacheConfig;
use ferrovs_flowcache::testpkt::{Ipv4Hdr, eth_header, fill_l4_checksum, ipv4_header, udp_segment};
use ferrovs_pmd::burst_bench::{BenchActions, BenchMask, BurstBench};

/// Flow `i`: UDP 198.18.0.1:(1024 + i % 50000) -> 198.19.(i / 50000).1:53, 64 bytes.
fn frame(i: usize) -> Vec<u8> {
    let sport = 1024 + (i % 50_000) as u16;
    let dst = Ipv4Addr::new(198, 19, (i / 50_000) as u8, 1).octets();
    let udp = udp_segment(sport, 53, &[0u8; 18]);
    let ip = Ipv4Hdr::new([198, 18, 0, 1], dst, 17);
    let mut f = eth_header([0x02, 0, 0, 0, 0, 0x02], [0x02, 0, 0, 0, 0, 0x01], 0x0800);
    f.extend(ipv4_header(&ip, &[], udp.len()));
    f.extend(udp);
    fill_l4_checksum(&mut f);
    f
}

/// What one measured call covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `process_burst` on a filled burst.
    Burst,
    /// A whole run-loop iteration receiving the burst from the wire.
    Loop,
}

/// Runs the bursts starting at flow `first` (wrapping), `n` bursts; returns (next flow,
/// TSC cycles inside the measured code, upcalls answered).
fn pass(
    bb: &mut BurstBench,
    frames: &[Vec<u8>],
    first: usize,
    n: usize,
    scope: Scope,
    measured: bool,
) -> (usize, u64, usize) {
    let mut batch = MbufBatch::new();
    let mut next = first;
    let mut cycles = 0u64;
    let mut answered = 0;
    let mut burst: Vec<Vec<u8>> = Vec::with_capacity(BURST);
    for _ in 0..n {
        burst.clear();
        for _ in 0..BURST {
            burst.push(frames[next].clone());
            next = (next + 1) % frames.len();
        }
        bb.fill(&mut batch, &burst).expect("fill");
        if scope == Scope::Loop {
            bb.send(&mut batch).expect("send");
        }
        let t0 = rdtsc();
        match (scope, measured) {
            (Scope::Burst, true) => bb.measured_burst(&mut batch),
            (Scope::Burst, false) => bb.unmeasured_burst(&mut batch),
            (Scope::Loop, true) => bb.measured_iteration(),
            (Scope::Loop, false) => bb.unmeasured_iteration(),
        }
        cycles += rdtsc().wrapping_sub(t0);
        answered += bb.after_burst();
    }
    (next, cycles, answered)
}

fn main() {
    let mut flows = 1usize;
    let mut bursts = 2000usize;
    let mut actions = BenchActions::Output;
    let mut mask = BenchMask::FiveTuple;
    let mut emc = false;
    let mut scope = Scope::Burst;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--flows" => flows = it.next().and_then(|s| s.parse().ok()).expect("--flows N"),
            "--bursts" => bursts = it.next().and_then(|s| s.parse().ok()).expect("--bursts B"),
            "--actions" => {
                actions = it.next().and_then(|s| BenchActions::parse(&s)).expect("--actions output|drop|output2")
            }
            "--mask" => mask = it.next().and_then(|s| BenchMask::parse(&s)).expect("--mask 5tuple|port"),
            "--emc" => emc = true,
            "--scope" => {
                scope = match it.next().as_deref() {
                    Some("burst") => Scope::Burst,
                    Some("loop") => Scope::Loop,
                    _ => panic!("--scope burst|loop"),
                }
            }
            other => panic!("unknown argument {other}"),
        }
    }
    assert!((1..=2_000_000).contains(&flows), "--flows 1..=2000000");
    let eal_args: Vec<String> = ["--no-huge", "--no-shconf", "--no-pci", "-m", "512", "-l", "0", "--log-level=error"]
        .map(String::from)
        .to_vec();
    let eal = Eal::init(&eal_args).expect("EAL");
    let mut config = FlowCacheConfig::for_max_flows(flows.max(1024) * 2);
    if emc {
        config.emc_insert_inverse_prob = 1;
    }
    let mut bb = BurstBench::new(&eal, &std::process::id().to_string(), 16 * 1024 - 1, config, actions)
        .expect("harness")
        .with_mask(mask);
    if emc {
        bb = bb.through_emc();
    }
    let frames: Vec<Vec<u8>> = (0..flows).map(frame).collect();
    let per_pass = flows.div_ceil(BURST).max(1);

    // Install every flow through the miss path, then one clean pass (EMC and signature
    // cache warm as in steady state).
    let mut passes = 0;
    loop {
        let (_, _, answered) = pass(&mut bb, &frames, 0, per_pass, scope, false);
        passes += 1;
        if answered == 0 {
            break;
        }
        assert!(passes < 10, "flows still missing after {passes} warm-up passes");
    }
    let (_, _, _) = pass(&mut bb, &frames, 0, per_pass, scope, false);
    let (sent0, dropped0, no_rule0) = bb.counts();
    let s0 = bb.stats();

    let (_, cycles, answered) = pass(&mut bb, &frames, 0, bursts, scope, true);
    let (sent1, dropped1, no_rule1) = bb.counts();
    let s1 = bb.stats();
    let packets = (bursts * BURST) as u64;
    assert_eq!(answered, 0, "a measured burst missed");
    assert_eq!(s1.misses, s0.misses, "a measured lookup missed");
    assert_eq!(no_rule1, no_rule0, "a measured packet was dropped for want of a rule");
    let (want_sent, want_dropped) = if actions == BenchActions::Drop { (0, packets) } else { (packets, 0) };
    assert_eq!((sent1 - sent0, dropped1 - dropped0), (want_sent, want_dropped), "packets went the wrong way");
    println!(
        "lookups in the measured bursts: emc {} sig {} classifier {} miss {}",
        s1.emc_hits - s0.emc_hits,
        s1.sig_hits - s0.sig_hits,
        s1.classifier_hits - s0.classifier_hits,
        s1.misses - s0.misses
    );
    println!(
        "scope {scope:?} flows {flows} actions {actions:?} mask {mask:?} emc {emc} bursts {bursts} packets {packets} warm-up passes {passes} tsc cycles/packet {:.1}",
        cycles as f64 / packets as f64
    );
}
