//! Forwarding benchmark: the same traffic source and sink, first through a trivial
//! rx->tx loop (the reference: what the devices and DPDK cost), then through a ferrovs
//! switch with one PMD (Forwarder, in_port -> output). Prints Mpps and cycles/packet.
//!
//! Source: `net_pcap,rx_pcap=FILE,infinite_rx=1` replaying a capture of 64-byte UDP frames
//! (written by this program), or `net_null` with `--source null`. Sink: `net_null,no-rx=1`.
//!
//! Usage: cargo run --release -p ferrovs-pmd --example fwd_bench -- [--seconds N]
//!        [--core C] [--source pcap|null] [--eal "EAL ARGS"]

use std::time::{Duration, Instant};

use ferrovs_dpdk::{MbufBatch, Mempool, Port, PortConfig, probe, rdtsc, rx_burst, tx_burst};
use ferrovs_pmd::{ForwardRule, PortSpec, Switch, SwitchOptions};

mod common;
use common::TempCapture;

fn main() {
    let mut seconds = 3u64;
    let mut core = 1usize;
    let mut source = "pcap".to_string();
    let mut eal_extra = "--no-huge --no-shconf --no-pci -m 512".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().and_then(|s| s.parse().ok()).expect("--seconds N"),
            "--core" => core = it.next().and_then(|s| s.parse().ok()).expect("--core C"),
            "--source" => source = it.next().expect("--source pcap|null"),
            "--eal" => eal_extra = it.next().expect("--eal ARGS"),
            other => panic!("unknown argument {other}"),
        }
    }
    let capture = TempCapture::udp_flows("ferrovs-fwd-bench", 256).expect("write pcap");
    let pcap = capture.devarg();
    let src = |i: u32| match source.as_str() {
        "pcap" => format!("net_pcap{i},rx_pcap={pcap},infinite_rx=1"),
        _ => format!("net_null{i},size=60,copy=0"),
    };
    let eal = common::init_eal(&eal_extra);
    let hz = eal.tsc_hz() as f64;

    // Reference: trivial rx -> tx loop on a registered thread pinned to `core`.
    let (ref_mpps, ref_cpp) = {
        let pool = Mempool::new(&eal, "ref_pool", 16383, 256, ferrovs_pmd::spec::DEFAULT_DATA_ROOM, 0).expect("pool");
        let a = probe(&eal, &src(100)).expect("source");
        let b = probe(&eal, "net_null101,no-rx=1").expect("sink");
        let cfg = PortConfig::default();
        let pa = Port::configure(&eal, a, &cfg, &pool).expect("cfg a");
        let pb = Port::configure(&eal, b, &cfg, &pool).expect("cfg b");
        pa.start().unwrap();
        pb.start().unwrap();
        let mut rxq = pa.rx_queue(0).unwrap();
        let mut txq = pb.tx_queue(0).unwrap();
        let eal2 = eal.clone();
        let h = std::thread::spawn(move || {
            core_affinity::set_for_current(core_affinity::CoreId { id: core });
            let _reg = eal2.register_thread().expect("register");
            let mut batch = MbufBatch::new();
            let (mut pkts, mut busy) = (0u64, 0u64);
            let end = Instant::now() + Duration::from_secs(seconds);
            let mut i = 0u32;
            loop {
                i += 1;
                if i.is_multiple_of(4096) && Instant::now() > end {
                    break;
                }
                let t0 = rdtsc();
                let n = rx_burst(&mut rxq, &mut batch);
                if n == 0 {
                    continue;
                }
                tx_burst(&mut txq, &mut batch);
                batch.free_all();
                busy += rdtsc() - t0;
                pkts += n as u64;
            }
            (pkts, busy)
        });
        let (pkts, busy) = h.join().unwrap();
        pa.stop().unwrap();
        pb.stop().unwrap();
        (pkts as f64 / seconds as f64 / 1e6, busy as f64 / pkts.max(1) as f64)
    };

    // ferrovs: the same devices through a one-PMD switch.
    let specs = [PortSpec::new("src", 1, src(200)), PortSpec::new("sink", 2, "net_null201,no-rx=1")];
    let opts = SwitchOptions { pmd_cores: vec![core], ..Default::default() };
    let sw = Switch::start_forwarder(&eal, &specs, &opts, &[(1, ForwardRule::Output(2))]).expect("switch");
    std::thread::sleep(Duration::from_millis(200));
    let s0 = sw.stats();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let s1 = sw.stats();
    let dt = t0.elapsed().as_secs_f64();
    let tx = s1.ports[1].counters.tx_packets - s0.ports[1].counters.tx_packets;
    let pk = s1.pmds[0].counters.packets - s0.pmds[0].counters.packets;
    let busy = s1.pmds[0].counters.busy_cycles - s0.pmds[0].counters.busy_cycles;
    let drops = s1.ports[1].counters.drops() - s0.ports[1].counters.drops();
    let stats = sw.stop();

    println!("source: {source}, burst 32, 64-byte frames, one core (CPU {core}), TSC {:.2} GHz", hz / 1e9);
    println!("reference rx->tx loop : {ref_mpps:7.2} Mpps  {ref_cpp:7.1} cycles/packet");
    println!(
        "ferrovs switch (1 PMD): {:7.2} Mpps  {:7.1} cycles/packet  (tx {:.2} Mpps, {drops} drops)",
        pk as f64 / dt / 1e6,
        busy as f64 / pk.max(1) as f64,
        tx as f64 / dt / 1e6
    );
    println!(
        "final: {:?}",
        stats.ports.iter().map(|p| (p.name.clone(), p.counters.rx_packets, p.counters.tx_packets)).collect::<Vec<_>>()
    );
}
