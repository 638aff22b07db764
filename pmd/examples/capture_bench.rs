//! What an armed capture (`ferrovs_pmd::capture`) costs forwarding, in one run: one PMD
//! forwards two replayed streams (`src1 -> sink1`, `src2 -> sink2`) while, phase after
//! phase, nothing is captured, an idle port is captured, the *other* busy port (`src2`) is
//! captured, and the measured port (`src1`) itself is captured. A reader thread drains the
//! capture as the daemon's capture thread would (take, look at the bytes, give back).
//! The phases run in that order twice, so the spread between equal phases shows the noise.
//!
//! Printed per phase: Mpps sent to sink1 and sink2, the PMD's busy cycles per packet, and
//! what the capture took and missed. "Cost to the other ports" is the drop of sink1's rate
//! from phase `none` to phase `src2 captured` (same PMD, so the copies compete for it).
//!
//! Usage: cargo run --release -p ferrovs-pmd --example capture_bench -- [--seconds N]
//!        [--core C] [--eal "EAL ARGS"]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferrovs_pmd::capture::DEFAULT_CAPTURE_BUFFERS;
use ferrovs_pmd::{ForwardRule, PortSpec, Switch, SwitchOptions};

mod common;
use common::TempCapture;

fn main() {
    let mut seconds = 2u64;
    let mut core = 1usize;
    let mut eal_extra = "--no-huge --no-shconf --no-pci -m 512".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().and_then(|s| s.parse().ok()).expect("--seconds N"),
            "--core" => core = it.next().and_then(|s| s.parse().ok()).expect("--core C"),
            "--eal" => eal_extra = it.next().expect("--eal ARGS"),
            other => panic!("unknown argument {other}"),
        }
    }
    let capture = TempCapture::udp_flows("ferrovs-capture-bench", 256).expect("write pcap");
    let pcap = capture.devarg();
    let eal = common::init_eal(&eal_extra);

    let specs = [
        PortSpec::new("src1", 1, format!("net_pcap1,rx_pcap={pcap},infinite_rx=1")),
        PortSpec::new("sink1", 2, "net_null2,no-rx=1"),
        PortSpec::new("src2", 3, format!("net_pcap3,rx_pcap={pcap},infinite_rx=1")),
        PortSpec::new("sink2", 4, "net_null4,no-rx=1"),
        PortSpec::new("idle", 5, "net_null5,no-rx=1"),
    ];
    let opts = SwitchOptions { pmd_cores: vec![core], ..Default::default() };
    let rules = [(1, ForwardRule::Output(2)), (3, ForwardRule::Output(4))];
    let sw = Switch::start_forwarder(&eal, &specs, &opts, &rules).expect("switch");
    let taps = sw.capture().clone();
    std::thread::sleep(Duration::from_millis(300));

    println!("one PMD (CPU {core}), two pcap replays of 64-byte frames, {seconds} s per phase");
    println!(
        "{:<16} {:>11} {:>11} {:>12} {:>12} {:>12}",
        "phase", "sink1 Mpps", "sink2 Mpps", "cycles/pkt", "captured/s", "missed/s"
    );
    for round in 0..2 {
        for (name, port) in
            [("none", None), ("idle captured", Some(5)), ("src2 captured", Some(3)), ("src1 captured", Some(1))]
        {
            let handle = port.map(|p| taps.arm(p, DEFAULT_CAPTURE_BUFFERS).expect("arm"));
            let stop = Arc::new(AtomicBool::new(false));
            let taken = Arc::new(AtomicU64::new(0));
            std::thread::scope(|s| {
                if let Some(h) = &handle {
                    let (stop, taken) = (stop.clone(), taken.clone());
                    s.spawn(move || {
                        let mut sum = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            match h.try_next() {
                                Some(b) => {
                                    for f in b.frames() {
                                        sum = sum.wrapping_add(f.bytes.iter().map(|&x| x as u64).sum::<u64>());
                                    }
                                    taken.fetch_add(b.len() as u64, Ordering::Relaxed);
                                    h.recycle(b);
                                }
                                None => std::thread::sleep(Duration::from_millis(1)),
                            }
                        }
                        std::hint::black_box(sum);
                    });
                }
                let s0 = sw.stats();
                let d0 = handle.as_ref().map(|h| h.dropped()).unwrap_or(0);
                let t0 = Instant::now();
                std::thread::sleep(Duration::from_secs(seconds));
                let s1 = sw.stats();
                let dt = t0.elapsed().as_secs_f64();
                let d1 = handle.as_ref().map(|h| h.dropped()).unwrap_or(0);
                stop.store(true, Ordering::Relaxed);
                let tx =
                    |i: usize| (s1.ports[i].counters.tx_packets - s0.ports[i].counters.tx_packets) as f64 / dt / 1e6;
                let (p0, p1) = (&s0.pmds[0].counters, &s1.pmds[0].counters);
                let cpp = (p1.busy_cycles - p0.busy_cycles) as f64 / (p1.packets - p0.packets).max(1) as f64;
                println!(
                    "{:<16} {:>11.2} {:>11.2} {:>12.1} {:>12.0} {:>12.0}   (round {})",
                    name,
                    tx(1),
                    tx(3),
                    cpp,
                    taken.load(Ordering::Relaxed) as f64 / dt,
                    (d1 - d0) as f64 / dt,
                    round + 1
                );
            });
            drop(handle);
        }
    }
    sw.stop();
}
