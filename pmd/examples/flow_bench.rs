//! Flow pipeline benchmark: the same traffic through a one-PMD switch, first with the
//! per-port [`Forwarder`](ferrovs_pmd::Forwarder) (no packet parsing: the floor), then
//! with the [`FlowPipeline`] (key extraction, EMC / signature cache / classifier lookup,
//! upcalls answered by a minimal slow-path thread that installs one megaflow per upcall).
//! Prints Mpps, busy cycles per packet and where the lookups were answered.
//!
//! Source: `net_pcap,rx_pcap=FILE,infinite_rx=1` replaying `--flows N` distinct UDP flows
//! of 64-byte frames (source ports 1024..1024+N, written by this program). Sink:
//! `net_null,no-rx=1`. `--mask 5tuple` installs one megaflow per flow, `--mask dst` a
//! single megaflow for all of them (in_port + dl_type + nw_dst).
//!
//! Usage: cargo run --release -p ferrovs-pmd --example flow_bench -- [--seconds N]
//!        [--core C] [--flows N] [--mask 5tuple|dst] [--emc-prob P] [--direct MAX_SUBTABLES] [--eal "EAL ARGS"]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrovs_dpdk::{Eal, rdtsc};
use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::key::FlowKey;
use ferrovs_flowcache::upcall::PmdCommand;
use ferrovs_flowcache::{FlowCacheConfig, Megaflow};
use ferrovs_pmd::{
    FlowMessage, FlowPipeline, ForwardRule, PipelineClock, PipelineShared, PortSpec, Switch, SwitchOptions,
    SwitchStats, pending_config_for_pool,
};

mod common;
use common::TempCapture;

fn mask(kind: &str) -> FlowKey {
    let mut m = FlowKey::ZERO;
    m.set_in_port(u32::MAX);
    m.set_dl_type(0xffff);
    m.set_nw_dst_u32(u32::MAX);
    if kind == "5tuple" {
        m.set_nw_proto(0xff);
        m.set_nw_src_u32(u32::MAX);
        m.set_tp_src(0xffff);
        m.set_tp_dst(0xffff);
    }
    m
}

/// (Mpps received, busy cycles per packet) over `seconds`, after a 300 ms warm-up.
fn measure<M: Send + 'static>(sw: &Switch<M>, seconds: u64) -> (f64, f64, SwitchStats) {
    std::thread::sleep(Duration::from_millis(300));
    let s0 = sw.stats();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let s1 = sw.stats();
    let dt = t0.elapsed().as_secs_f64();
    let pk = s1.pmds[0].counters.packets - s0.pmds[0].counters.packets;
    let busy = s1.pmds[0].counters.busy_cycles - s0.pmds[0].counters.busy_cycles;
    (pk as f64 / dt / 1e6, busy as f64 / pk.max(1) as f64, s1)
}

fn main() {
    let mut seconds = 3u64;
    let mut core = 1usize;
    let mut flows = 256usize;
    let mut mask_kind = "5tuple".to_string();
    let mut emc_prob = 100u32;
    let mut direct: Option<usize> = None;
    let mut eal_extra = "--no-huge --no-shconf --no-pci -m 1024".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().and_then(|s| s.parse().ok()).expect("--seconds N"),
            "--core" => core = it.next().and_then(|s| s.parse().ok()).expect("--core C"),
            "--flows" => flows = it.next().and_then(|s| s.parse().ok()).expect("--flows N"),
            "--mask" => mask_kind = it.next().expect("--mask 5tuple|dst"),
            "--direct" => direct = it.next().and_then(|s| s.parse().ok()),
            "--emc-prob" => emc_prob = it.next().and_then(|s| s.parse().ok()).expect("--emc-prob P"),
            "--eal" => eal_extra = it.next().expect("--eal ARGS"),
            other => panic!("unknown argument {other}"),
        }
    }
    let capture = TempCapture::udp_flows("ferrovs-flow-bench", flows).expect("write pcap");
    let pcap = capture.devarg();
    let mut eal_args: Vec<String> = eal_extra.split_whitespace().map(String::from).collect();
    eal_args.extend(["-l", "0", "--log-level=error"].map(String::from));
    let eal = Eal::init(&eal_args).expect("EAL");
    // net_pcap's infinite_rx keeps the whole capture in mbufs: size the pool for it.
    let n_mbufs = (flows as u32 + 16 * 1024).max(16 * 1024 - 1);
    let opts = SwitchOptions { pmd_cores: vec![core], n_mbufs, ..Default::default() };

    // Floor: the Forwarder never looks at the packet.
    let specs = [
        PortSpec::new("src", 1, format!("net_pcap100,rx_pcap={pcap},infinite_rx=1")),
        PortSpec::new("sink", 2, "net_null101,no-rx=1"),
    ];
    let sw = Switch::start_forwarder(&eal, &specs, &opts, &[(1, ForwardRule::Output(2))]).expect("switch");
    let (fwd_mpps, fwd_cpp, _) = measure(&sw, seconds);
    sw.stop();

    // The flow pipeline with a minimal slow path.
    let specs = [
        PortSpec::new("src", 1, format!("net_pcap200,rx_pcap={pcap},infinite_rx=1")),
        PortSpec::new("sink", 2, "net_null201,no-rx=1"),
    ];
    let (up_tx, up_rx) = crossbeam_channel::bounded(1024);
    let (ev_tx, _ev_rx) = crossbeam_channel::bounded(1024);
    let clock = PipelineClock::new(eal.tsc_hz(), rdtsc());
    let cfg = FlowCacheConfig { emc_insert_inverse_prob: emc_prob, ..Default::default() };
    let counters = Arc::new(PipelineShared::new(&cfg));
    let c2 = counters.clone();
    let pending = pending_config_for_pool(opts.n_mbufs, opts.pmd_cores.len());
    let sw = Switch::start(&eal, &specs, &opts, move |info| {
        let mut p = FlowPipeline::new(info.index, cfg, pending, up_tx.clone(), ev_tx.clone(), clock, c2.clone());
        if let Some(n) = direct {
            p.set_direct_max_subtables(n);
        }
        p
    })
    .expect("switch");
    let pmd = sw.sender(0).expect("sender");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let m = mask(&mask_kind);
    let slow = std::thread::spawn(move || {
        let mut id = 0u64;
        let mut installed = std::collections::HashSet::new();
        while !stop2.load(Ordering::SeqCst) {
            let Ok(batch) = up_rx.recv_timeout(Duration::from_millis(10)) else { continue };
            for u in batch.upcalls() {
                // One megaflow per masked key; later upcalls for a covered key just execute.
                let cmd = if installed.insert(u.key.masked(&m)) {
                    id += 1;
                    PmdCommand::Install { id, key: u.key, megaflow: Megaflow::new(u.key, m, vec![DpAction::Output(2)]) }
                } else {
                    PmdCommand::Execute { key: u.key, actions: vec![DpAction::Output(2)] }
                };
                let _ = pmd.send(FlowMessage::Command(cmd));
            }
        }
    });
    let (flow_mpps, flow_cpp, s) = measure(&sw, seconds);
    let c1 = counters.counters.snapshot();
    stop.store(true, Ordering::SeqCst);
    let _ = slow.join();
    sw.stop();

    let looked_up = (c1.emc_hits + c1.sig_hits + c1.classifier_hits + c1.misses) as f64;
    println!("{flows} flows, mask {mask_kind}, EMC insert 1/{emc_prob}, burst 32, 64-byte frames, PMD on CPU {core}");
    println!("forwarder (floor)     : {fwd_mpps:7.2} Mpps  {fwd_cpp:7.1} cycles/packet");
    println!("flow pipeline         : {flow_mpps:7.2} Mpps  {flow_cpp:7.1} cycles/packet");
    println!(
        "lookups: emc {:.1}%  sig {:.1}%  classifier {:.3}%  miss {:.4}%  | upcalls {}  megaflows {}  masks {}  tx drops {}",
        100.0 * c1.emc_hits as f64 / looked_up,
        100.0 * c1.sig_hits as f64 / looked_up,
        100.0 * c1.classifier_hits as f64 / looked_up,
        100.0 * c1.misses as f64 / looked_up,
        c1.upcalls_sent,
        c1.megaflows,
        c1.masks,
        s.ports[1].counters.drops(),
    );
}
