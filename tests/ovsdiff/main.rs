//! Differential test against the real Open vSwitch 3.1: random rule sets and random
//! frames go through a private OVS (userspace dummy datapath, see
//! `ferrovs_e2e::ovs`) and through ferrovsd (net_pcap ports), and every output frame,
//! its port, and every drop must match.
//!
//! Each case is one seed: one rule set, one input port, a list of frames fed in the same
//! order to both switches. A difference prints the seed, the rule set, the frame and
//! both outputs; `--seed N` (after `--` on cargo's command line) or
//! `FERROVS_OVSDIFF_SEED=N` reruns that case alone. Differences are sorted by
//! `classify`: known intended ones (docs/OVS-DIFFERENCES.md) and currently open
//! divergence classes are counted and printed; any other difference fails the run.
//! Rules ferrovs refuses but OVS accepts are counted as findings and left out of the
//! forwarding comparison.
//!
//! A default run (CI) takes the fixed seeds, which always cover the same ground, plus
//! `FRESH_CASES` cases drawn from a fresh base seed, so that every run also explores new
//! rule sets. The base seed is printed at the start and in the failure message;
//! `FERROVS_OVSDIFF_BASE_SEED=X` repeats those cases (deploy/test.sh draws it from
//! /dev/urandom and prints it too). A fresh case that fails names its own seed as any
//! other.
//!
//! Environment: `FERROVS_OVSDIFF_SEED` (one case), `FERROVS_OVSDIFF_BASE_SEED` (the
//! fresh base seed; default: from the clock and the process id), `FERROVS_OVSDIFF_CASES`
//! (fresh cases, default `FRESH_CASES`; thousands for a long run), `FERROVS_OVSDIFF_FIXED=0`
//! (leave the fixed seeds out),
//! `FERROVS_OVSDIFF_FRAMES` (frames per case). Needs root (DPDK; a veth pair and a
//! network namespace for the paced runs of `ferrovs_side`), python3 and OVS; fails without
//! OVS (deploy/test.sh installs it).

mod classify;
mod compare;
mod ferrovs_side;
mod fixed;
mod frame_view;
mod gen_frames;
mod gen_rules;
mod known;
mod pools;
mod report;
mod rng;

use std::time::Instant;

use ferrovs_e2e::ovs::Ovs;
use libtest_mimic::{Arguments, Failed, Trial};

use crate::classify::{Difference, classify};
use crate::ferrovs_side::Feeder;
use crate::gen_rules::N_PORTS;
use crate::report::Report;
use crate::rng::Rng;

/// Seeds run every time, so a CI run always covers the same ground.
const FIXED_SEEDS: std::ops::RangeInclusive<u64> = 1..=180;
/// Cases drawn from a fresh base seed in a default run (see the module doc); with the
/// fixed seeds, 200 cases in all, about 215 s on a shared 2-CPU machine.
const FRESH_CASES: u64 = 20;
const FRAMES_PER_CASE: usize = 40;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = if let Some(h) = v.strip_prefix("0x") { u64::from_str_radix(h, 16) } else { v.parse() };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// The seed of case `i` drawn from base seed `base`.
fn case_seed(base: u64, i: u64) -> u64 {
    let mut r = Rng::new(base.wrapping_mul(0x100_0000_01b3) ^ i);
    r.next_u64() >> 16
}

/// Rules of `set` that both switches accept; refusals by ferrovs of rules OVS accepts go
/// to the report.
fn accepted_rules(ovs: &mut Ovs, set: &gen_rules::RuleSet, report: &mut Report) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for rule in &set.rules {
        if let Err(why) = ferrovs_side::accepts_rule(rule, set.openflow13) {
            if ovs.accepts(rule, set.openflow13).is_ok() {
                report.refused(rule, &why);
            }
            continue;
        }
        let mut with = kept.clone();
        with.push(rule.clone());
        match ferrovs_side::accepts(&with, set.openflow13) {
            Ok(()) => kept = with,
            Err(why) => report.refused_in_set(rule, &why),
        }
    }
    if ovs.replace_rules(&kept, set.openflow13).is_err() {
        // Find the rules OVS refuses (e.g. an OpenFlow 1.0-only action in a 1.3 set).
        kept.retain(|r| ovs.accepts(r, set.openflow13).is_ok());
    }
    kept
}

/// Runs one case; differences go to the report. `feeder`: the paced input of ferrovsd
/// for sets with `normal`, made by the first such case.
fn run_case(
    ovs: &mut Ovs,
    feeder: &mut Option<Feeder>,
    seed: u64,
    n_frames: usize,
    report: &mut Report,
) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let set = gen_rules::rule_set(&mut rng);
    let mut sizes = Rng::new(seed ^ gen_frames::SIZES_SEED);
    let frames: Vec<gen_frames::Frame> = (0..n_frames).map(|_| gen_frames::frame(&mut rng, &mut sizes)).collect();
    let rules = accepted_rules(ovs, &set, report);
    ovs.replace_rules(&rules, set.openflow13).map_err(|e| format!("seed {seed}: OVS refused the filtered set: {e}"))?;
    // OVS 3.1's userspace datapath dies on an ARP rewrite of an ARP frame too short for
    // its header (it writes the ARP fields past the frame: docs/OVS-DIFFERENCES.md), so
    // sets that write ARP fields get no such frame.
    let writes_arp = rules.iter().any(|r| {
        r.split_once("actions=")
            .is_some_and(|(_, a)| ["->NXM_OF_ARP_", "->NXM_NX_ARP_", "->arp_"].iter().any(|w| a.contains(w)))
    });
    let inputs: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| {
            let v = frame_view::View::parse(&f.bytes);
            !(writes_arp && v.arp_header_unparsable() && v.l3_bytes().len() < 28)
        })
        .map(|f| f.bytes.clone())
        .collect();
    // With `normal`, each frame may teach the MAC table something that changes the
    // decision for later frames. Both switches apply that to their datapath flows some
    // time after the frame that taught it (OVS's revalidators run asynchronously; a
    // ferrovs PMD may look up the rest of a burst first), so a later frame may still be
    // decided with the table as it was. Both decide each frame afresh here, with the table
    // as the earlier frames left it: OVS's datapath flows are purged after each frame,
    // and ferrovs gets the frames one at a time (see `ferrovs_side`).
    let learns = rules.iter().any(|r| r.split_once("actions=").is_some_and(|(_, a)| a.contains("normal")));
    let mut ovs_out = Vec::with_capacity(inputs.len());
    for f in &inputs {
        ovs_out.push(ovs.send(set.in_port, f)?);
        if learns {
            ovs.purge_datapath_flows()?;
        }
    }
    let paced = match (learns, feeder.is_some()) {
        (false, _) => None,
        (true, true) => feeder.as_mut(),
        (true, false) => Some(feeder.insert(Feeder::new()?)),
    };
    let fer_out = ferrovs_side::run(&rules, set.openflow13, set.in_port, &inputs, paced)
        .map_err(|e| format!("seed {seed}: {e}"))?;
    if report.verbose() {
        // One case alone: the whole run, so order effects (MAC learning) can be followed.
        for (i, (f, o)) in frames.iter().zip(&ovs_out).enumerate() {
            let ports: Vec<u32> = o.iter().map(|(p, _)| *p).collect();
            println!("frame {i}: {} -> OVS ports {ports:?}", f.desc);
        }
        for (p, out) in fer_out.iter().enumerate() {
            println!("ferrovs port {}: {} frames", p + 1, out.len());
        }
    }
    report.case(inputs.len());
    let (mismatches, order) = compare::compare(&inputs, &ovs_out, &fer_out);
    if !order.is_empty() {
        let described: Vec<String> = frames.iter().enumerate().map(|(i, f)| format!("frame {i}: {}", f.desc)).collect();
        let flows: Vec<_> = inputs.iter().map(|f| ferrovs_flowcache::extract::extract(f, set.in_port)).collect();
        let kept = order.iter().all(|o| o.keeps_flow_order(&flows));
        let lines: Vec<String> = order.iter().map(|o| o.to_string()).collect();
        report.order_only(seed, &rules, set.in_port, &lines, &described, kept);
    }
    for m in mismatches {
        let frame = &frames[m.frame_index];
        let d = Difference {
            rules: &rules,
            frame: &frame.bytes,
            earlier: &inputs[..m.frame_index],
            ovs: m.ovs,
            ferrovs: m.ferrovs,
        };
        let class = classify(&d);
        report.difference(class, seed, set.in_port, &frame.desc, &d);
    }
    Ok(())
}

fn differential(one_seed: Option<u64>) -> Result<(), Failed> {
    ferrovs_e2e::ovs::installed()?;
    let n_frames = env_u64("FERROVS_OVSDIFF_FRAMES").map(|v| v as usize).unwrap_or(FRAMES_PER_CASE);
    let mut rerun = String::new();
    let seeds: Vec<u64> = match one_seed.or_else(|| env_u64("FERROVS_OVSDIFF_SEED")) {
        Some(s) => vec![s],
        None => {
            let fresh = env_u64("FERROVS_OVSDIFF_BASE_SEED").unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
                    ^ std::process::id() as u64
            });
            let n = env_u64("FERROVS_OVSDIFF_CASES").unwrap_or(FRESH_CASES);
            // `FERROVS_OVSDIFF_FIXED=0` leaves the fixed seeds out (long runs of fresh cases).
            let fixed: Vec<u64> =
                if env_u64("FERROVS_OVSDIFF_FIXED") == Some(0) { Vec::new() } else { FIXED_SEEDS.collect() };
            let fixed_text = if fixed.is_empty() { "none".to_string() } else { format!("{FIXED_SEEDS:?}") };
            println!("ovsdiff: fixed seeds {fixed_text}, fresh base seed {fresh:#x} ({n} cases)");
            rerun = format!(
                "\nfresh base seed {fresh:#x} ({n} cases; repeat them with FERROVS_OVSDIFF_BASE_SEED={fresh:#x} \
                 FERROVS_OVSDIFF_CASES={n}, one case with --seed N)"
            );
            fixed.into_iter().chain((0..n).map(|i| case_seed(fresh, i))).collect()
        }
    };
    let single = seeds.len() == 1;
    let start = Instant::now();
    let mut ovs = Ovs::start(N_PORTS);
    let mut report = Report::new(single);
    let mut feeder = None;
    for seed in seeds {
        if let Err(e) = run_case(&mut ovs, &mut feeder, seed, n_frames, &mut report) {
            report.error(seed, e);
        }
    }
    report.finish(start.elapsed()).map_err(|e| format!("{}{rerun}", e.message().unwrap_or_default()).into())
}

/// Takes `--seed N` (or `--seed=N`) out of the command line: the one case to run.
fn take_seed_arg(args: &mut Vec<String>) -> Option<u64> {
    let at = args.iter().position(|a| a == "--seed" || a.starts_with("--seed="))?;
    let value = match args.remove(at).strip_prefix("--seed=") {
        Some(v) => v.to_string(),
        None if at < args.len() => args.remove(at),
        None => panic!("--seed needs a value"),
    };
    let parsed = match value.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => value.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("--seed {value} is not a number")))
}

fn main() {
    let mut argv: Vec<String> = std::env::args().collect();
    let one_seed = take_seed_arg(&mut argv);
    let mut args = Arguments::from_iter(argv);
    // Both switches share the machine's cores: run one trial at a time.
    args.test_threads = Some(1);
    let mut trials = vec![
        Trial::test("ovs_differential", move || differential(one_seed)),
        Trial::test(
            "compare_a_frame_sent_twice_and_missing_once_keeps_the_other_copy",
            compare::a_frame_sent_twice_and_missing_once_keeps_the_other_copy,
        ),
        Trial::test(
            "compare_a_truncated_copy_goes_with_the_frame_it_was_cut_from",
            compare::a_truncated_copy_goes_with_the_frame_it_was_cut_from,
        ),
        Trial::test(
            "compare_a_changed_frame_keeps_its_place_among_the_outputs",
            compare::a_changed_frame_keeps_its_place_among_the_outputs,
        ),
        Trial::test("known_ipv4_later_fragment_payload_untouched", known::ipv4_later_fragment_payload_untouched),
        Trial::test("known_first_fragment_ports_read_as_zero", known::first_fragment_ports_read_as_zero),
        Trial::test("known_ipv4_protocol_0_rewritten", known::ipv4_protocol_0_rewritten),
        Trial::test("known_ovs_megaflow_of_ipv4_protocol_0", known::ovs_megaflow_of_ipv4_protocol_0),
        Trial::test("known_ovs_arp_opcode_0_and_255", known::ovs_arp_opcode_0_and_255),
        Trial::test("known_nd_partial_write_after_a_repeated_option", known::nd_partial_write_after_a_repeated_option),
        Trial::test(
            "known_ovs_mpls_write_to_a_zero_or_cut_entry_pushes_one",
            known::ovs_mpls_write_to_a_zero_or_cut_entry_pushes_one,
        ),
        Trial::test("known_unparsable_ip_header_not_rewritten", known::unparsable_ip_header_not_rewritten),
        Trial::test("known_mtu_limit_is_netdev_dpdk_s", known::mtu_limit_is_netdev_dpdk_s),
        Trial::test(
            "known_a_frame_longer_than_an_mbuf_is_dropped_on_receive",
            known::a_frame_longer_than_an_mbuf_is_dropped_on_receive,
        ),
        Trial::test("known_normal_keeps_the_tag_behind_a_vid_0_tag", known::normal_keeps_the_tag_behind_a_vid_0_tag),
        Trial::test("known_nd_extension_partial_writes", known::nd_extension_partial_writes),
    ];
    trials.extend(fixed::trials());
    libtest_mimic::run(&args, trials).exit();
}
