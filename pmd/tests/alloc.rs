//! The PMD thread allocates nothing while it forwards, parks misses, installs megaflows
//! (evicting at the flow limit), executes, removes, expires idle megaflows and publishes
//! statistics, and while a port is added, polled, changed and removed.
//!
//! The binary's global allocator counts the allocations of threads that ask for it
//! ([`ferrovs_dpdk::alloc_count`]). The PMD runs a [`FlowPipeline`] wrapped in `common`'s
//! `Counted`, which switches counting on and off on the PMD thread when told by a message,
//! so everything the poll loop does between the two messages (its own code included) is
//! counted. A fake slow path answers upcalls (installs for most flows, executes for some)
//! and drains the reports and the heap values the PMD hands back, on its own (uncounted)
//! thread. Frees are counted too: a command's heap parts (action lists, id lists) are
//! allocated by the slow path and must be freed there, not on the PMD (see the pmd
//! crate's `heap_return` module).
//!
//! One EAL per process, so this is a `harness = false` binary like `flow`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferrovs_dpdk::alloc_count::{CountingAllocator, allocations, deallocations};
use ferrovs_dpdk::{Mempool, ring_port_pair};
use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::key::{FlowKey, Mask};
use ferrovs_flowcache::pending::PendingConfig;
use ferrovs_flowcache::testpkt::{Ipv4Hdr, eth_header, fill_l4_checksum, ipv4_header, udp_segment};
use ferrovs_flowcache::upcall::{FlowId, PmdCommand, PmdReport, UpcallBatch};
use ferrovs_flowcache::{FlowCacheConfig, Megaflow};
use ferrovs_pmd::{
    FlowMessage, FlowPipeline, PipelineClock, PipelineShared, PipelineStats, PmdSender, PortSpec, Switch, SwitchOptions,
};
use libtest_mimic::Failed;

mod common;
use common::{Counted, CountedMsg, Peer, check, eal, stop_and_check_pools, uniq, wait_for};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

type Msg = CountedMsg<FlowMessage>;

/// UDP from 198.18.0.1 to 10.0.(d / 256).(d % 256): one megaflow per destination.
fn frame(d: u16, seq: u16) -> Vec<u8> {
    let dst = Ipv4Addr::new(10, 0, (d >> 8) as u8, d as u8).octets();
    let udp = udp_segment(1000, 53, &seq.to_be_bytes());
    let ip = Ipv4Hdr { id: seq, ..Ipv4Hdr::new([198, 18, 0, 1], dst, 17) };
    let mut f = eth_header([0x02, 0, 0, 0, 0, 0x02], [0x02, 0, 0, 0, 0, 0x01], 0x0800);
    f.extend(ipv4_header(&ip, &[], udp.len()));
    f.extend(udp);
    fill_l4_checksum(&mut f);
    f
}

fn dst_mask() -> Mask {
    let mut m = FlowKey::ZERO;
    m.set_in_port(u32::MAX);
    m.set_dl_type(0xffff);
    m.set_nw_dst_u32(u32::MAX);
    m
}

/// The fake slow path: installs a megaflow (in_port, dl_type, nw_dst -> output 2) per
/// upcall, except for destinations whose last byte is a multiple of 5 (executed without
/// a megaflow, every time they miss); destinations whose last byte is a multiple of 3
/// also go to the controller (packet-ins, drained here). Drains the reports and frees
/// what the PMD hands back. Returns the ids it installed, the packets executed and the
/// packet-ins received.
fn slow_path(
    upcalls: crossbeam_channel::Receiver<UpcallBatch>,
    reports: crossbeam_channel::Receiver<PmdReport>,
    packet_ins: ferrovs_pmd::PacketInSource,
    pmd: PmdSender<Msg>,
    shared: Arc<PipelineShared>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<FlowId>, u64, u64)> {
    std::thread::spawn(move || {
        let (mut ids, mut executed, mut pins) = (Vec::new(), 0u64, 0u64);
        let mut next: FlowId = 1;
        while !stop.load(Ordering::SeqCst) {
            shared.returned.free_returned();
            while let Ok(r) = reports.try_recv() {
                executed += r.executed().iter().map(|e| e.packets).sum::<u64>();
            }
            while let Some(p) = packet_ins.recv_timeout(Duration::ZERO) {
                pins += 1;
                packet_ins.recycle(p.data);
            }
            let Ok(batch) = upcalls.recv_timeout(Duration::from_millis(2)) else { continue };
            for u in batch.upcalls() {
                let mut actions = vec![DpAction::Output(2)];
                if u.key.nw_dst_u32() % 3 == 0 {
                    let c = DpAction::Controller { in_port: 1, max_len: u16::MAX, reason: 1, table: 0, cookie: 0 };
                    actions.insert(0, c);
                }
                let cmd = if u.key.nw_dst_u32() % 5 == 0 {
                    PmdCommand::Execute { key: u.key, actions }
                } else {
                    ids.push(next);
                    next += 1;
                    PmdCommand::Install {
                        id: next - 1,
                        key: u.key,
                        megaflow: Megaflow::new(u.key, dst_mask(), actions),
                    }
                };
                let _ = pmd.send_timeout(Msg::Inner(FlowMessage::Command(cmd)), Duration::from_secs(2));
            }
        }
        (ids, executed, pins)
    })
}

fn pmd_loop_does_not_allocate() -> Result<(), Failed> {
    let eal = eal();
    let pool = Mempool::new(eal, &uniq("apool"), 4095, 0, ferrovs_pmd::spec::DEFAULT_DATA_ROOM, 0)?;
    let mut specs = Vec::new();
    let mut peers = Vec::new();
    for i in 0..2 {
        let (a, b) = ring_port_pair(eal, &uniq("ar"), 1, 1024)?;
        specs.push(PortSpec::existing(format!("p{}", i + 1), (i + 1) as u32, a));
        peers.push(Peer::open(b, 1, &pool)?);
    }
    let (up_tx, up_rx) = crossbeam_channel::bounded(64);
    let (rep_tx, rep_rx) = crossbeam_channel::bounded(64);
    let clock = PipelineClock::new(eal.tsc_hz(), ferrovs_dpdk::rdtsc());
    // A flow limit below the number of destinations: installs evict.
    const LIMIT: usize = 48;
    let cfg = FlowCacheConfig { max_flows: LIMIT, emc_entries: 256, emc_insert_inverse_prob: 1, sig_entries: 1024 };
    let shared = Arc::new(PipelineShared::new(&cfg));
    let options = SwitchOptions {
        pmd_cores: vec![1 % ferrovs_pmd::online_cpus().len()],
        pin_threads: true,
        n_mbufs: 2047,
        mbuf_cache: 32,
        ..Default::default()
    };
    let sh = shared.clone();
    let (pin_sink, pin_source) = ferrovs_pmd::packet_in_channel(64);
    let mut sw = Switch::start(eal, &specs, &options, |info| {
        Counted(
            FlowPipeline::new(
                info.index,
                cfg,
                PendingConfig::new(256, 1024),
                up_tx.clone(),
                rep_tx.clone(),
                clock,
                sh.clone(),
            )
            .with_packet_in(pin_sink.clone()),
        )
    })?;
    drop((up_tx, rep_tx));
    let stop = Arc::new(AtomicBool::new(false));
    let slow = slow_path(up_rx, rep_rx, pin_source, sw.sender(0)?, shared.clone(), stop.clone());
    let stats = || -> PipelineStats { shared.counters.snapshot() };

    sw.send(0, Msg::Count(true))?;
    sw.barrier(Duration::from_secs(2))?;
    let (a0, f0) = (allocations(), deallocations());

    // Forwarding, parking, installs with evictions and executes: 80 destinations, four
    // rounds of a burst of 20 at a time.
    let dsts = 80u16;
    let mut sent = 0usize;
    for round in 0..4u16 {
        for chunk in (0..dsts).collect::<Vec<_>>().chunks(20) {
            let frames: Vec<Vec<u8>> = chunk.iter().map(|&d| frame(d + 1, round)).collect();
            peers[0].send(&pool, 0, &frames)?;
            sent += frames.len();
            let got = peers[1].recv(frames.len(), Duration::from_secs(3));
            check(got.len() == frames.len(), || format!("round {round}: {} of {} frames", got.len(), frames.len()))?;
        }
    }
    let s = wait_for("evictions", stats, |s| s.evictions > 0 && s.parked == 0)?;
    check(s.megaflows as usize <= LIMIT, || format!("{s:#?}"))?;
    // Statistics: two full turns of the clock hand, then read the table here.
    let sweeps = s.sweeps;
    wait_for("sweeps", stats, |s| s.sweeps >= sweeps + 2)?;
    let mut live = Vec::new();
    shared.flows.snapshot(0, &mut live);
    check(!live.is_empty() && live.len() <= LIMIT, || format!("{} live flows", live.len()))?;
    // Removal of half of what is installed.
    let ids: Vec<FlowId> = live.iter().step_by(2).map(|l| l.1).collect();
    sw.send(0, Msg::Inner(FlowMessage::Command(PmdCommand::Remove { ids })))?;
    wait_for("removals", stats, |s| s.removals > 0)?;
    // Idle expiry of the rest.
    std::thread::sleep(Duration::from_millis(5));
    sw.send(0, Msg::Inner(FlowMessage::Command(PmdCommand::ExpireIdle { idle_ms: 1 })))?;
    let s = wait_for("expiry", stats, |s| s.megaflows == 0 && s.expirations > 0)?;
    // A port added, forwarded from, given another MTU and removed while counting: the PMD
    // only moves the values the control thread prepared (queues, slot table, room for what
    // it hands back) and hands each change back through its shared return, which it never
    // frees.
    let (c, c_peer) = ring_port_pair(eal, &uniq("ar"), 1, 1024)?;
    let mut peer3 = Peer::open(c_peer, 1, &pool)?;
    sw.add_port(PortSpec::existing("p3", 3, c))?;
    sw.poll_port("p3")?;
    let frames: Vec<Vec<u8>> = (0..8).map(|i| frame(200 + i, 9)).collect();
    peer3.send(&pool, 0, &frames)?;
    let got = peers[1].recv(frames.len(), Duration::from_secs(3));
    check(got.len() == frames.len(), || format!("from the added port: {} of {} frames", got.len(), frames.len()))?;
    sw.set_port_mtu("p3", 1400)?;
    sw.remove_port("p3")?;

    sw.send(0, Msg::Count(false))?;
    sw.barrier(Duration::from_secs(2))?;
    let (allocs, frees) = (allocations() - a0, deallocations() - f0);
    stop.store(true, Ordering::SeqCst);
    let (installed, executed, packet_ins) = slow.join().map_err(|_| "slow path panicked")?;
    println!(
        "{sent} packets, {} installs, {} evictions, {} executed, {packet_ins} packet-ins, {} removals, \
         {} expirations: {allocs} allocations and {frees} frees on the PMD thread",
        installed.len(),
        s.evictions,
        executed,
        s.removals,
        s.expirations
    );
    check(executed > 0 && installed.len() > LIMIT && packet_ins > 0, || format!("{s:#?}"))?;
    check(allocs == 0, || format!("the PMD thread allocated {allocs} times"))?;
    check(frees == 0 && s.frees_on_pmd == 0, || {
        format!("the PMD thread freed {frees} times ({} counted by the PMD)", s.frees_on_pmd)
    })?;
    peers.push(peer3);
    stop_and_check_pools(sw, peers, &pool)
}

fn main() {
    common::run(vec![("pmd_loop_does_not_allocate", pmd_loop_does_not_allocate)]);
}
