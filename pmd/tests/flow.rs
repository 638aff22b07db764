//! End-to-end tests of the flow pipeline ([`FlowPipeline`]) in a running switch over
//! net_ring port pairs, with a fake slow path, in one process with one EAL.
//!
//! Each switch port is one side of a crossed ring pair; the test drives the other side
//! ("peer"). The fake slow path is a thread that receives the PMD's upcalls, records
//! them, and answers each through the PMD's message queue as its policy says (install a
//! megaflow matching in_port + dl_type + nw_dst, execute without installing, or nothing).
//! Frames are real Ethernet/IPv4/UDP bytes with valid IPv4 and UDP checksums. Every test
//! checks at the end that all mbufs went back to their pools.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use ferrovs_dpdk::{Mempool, ring_port_pair};
use ferrovs_flowcache::actions::{DpAction, DpActions};
use ferrovs_flowcache::extract::extract;
use ferrovs_flowcache::key::{FlowKey, Mask};
use ferrovs_flowcache::pending::PendingConfig;
use ferrovs_flowcache::testpkt::{Ipv4Hdr, checksums_ok, eth_header, fill_l4_checksum, ipv4_header, udp_segment};
use ferrovs_flowcache::upcall::{FlowId, GoneFlow, GoneReason, PmdCommand, PmdReport, Upcall, UpcallBatch};
use ferrovs_flowcache::{FlowCacheConfig, Megaflow, MegaflowStats};
use ferrovs_pmd::{
    FlowMessage, FlowPipeline, IdleBackoff, PipelineClock, PipelineShared, PipelineStats, PmdSender, PortSpec, Switch,
    SwitchOptions, SwitchStats, pending_config_for_pool,
};
use libtest_mimic::Failed;

mod common;
use common::{Peer, check, eal, uniq, wait_for};

/// One UDP flow's packets: from 198.18.0.1:`sport` to `dst`:53.
#[derive(Clone, Copy)]
struct Udp {
    sport: u16,
    dst: [u8; 4],
    ttl: u8,
}

const FLOW_A: Udp = Udp { sport: 1000, dst: [198, 18, 0, 2], ttl: 64 };

/// Ethernet/IPv4/UDP frame from 02:00:00:00:00:01 to 02:00:00:00:00:02, `seq` in the IP
/// identification and the payload (neither is part of the flow key), valid IPv4 header
/// and UDP checksums.
fn udp_frame(u: Udp, seq: u16) -> Vec<u8> {
    let payload: Vec<u8> = (0..18u16).map(|i| (i as u8) ^ (seq as u8) ^ (seq >> 8) as u8).collect();
    let udp = udp_segment(u.sport, 53, &payload);
    let ip = Ipv4Hdr { ttl: u.ttl, id: seq, ..Ipv4Hdr::new([198, 18, 0, 1], u.dst, 17) };
    let mut f = eth_header([0x02, 0, 0, 0, 0, 0x02], [0x02, 0, 0, 0, 0, 0x01], 0x0800);
    f.extend(ipv4_header(&ip, &[], udp.len()));
    f.extend(udp);
    fill_l4_checksum(&mut f);
    f
}

fn flow_frames(u: Udp, seqs: std::ops::Range<u16>) -> Vec<Vec<u8>> {
    seqs.map(|s| udp_frame(u, s)).collect()
}

/// The megaflow mask the fake slow path installs: in_port, dl_type, nw_dst.
fn dst_mask() -> Mask {
    let mut m = FlowKey::ZERO;
    m.set_in_port(u32::MAX);
    m.set_dl_type(0xffff);
    m.set_nw_dst_u32(u32::MAX);
    m
}

/// How the fake slow path answers an upcall (given the id it would assign).
type Policy = Box<dyn FnMut(&Upcall, FlowId) -> Option<PmdCommand> + Send>;

/// Install a megaflow of `dst_mask()` with `actions`.
fn install(actions: DpActions) -> Policy {
    Box::new(move |u, id| {
        Some(PmdCommand::Install { id, key: u.key, megaflow: Megaflow::new(u.key, dst_mask(), actions.clone()) })
    })
}

/// Execute `actions` on the parked packets, install nothing.
fn execute_only(actions: DpActions) -> Policy {
    Box::new(move |u, _| Some(PmdCommand::Execute { key: u.key, actions: actions.clone() }))
}

/// The fake slow path thread.
struct SlowPath {
    seen: Arc<Mutex<Vec<Upcall>>>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl SlowPath {
    fn spawn(upcalls: Receiver<UpcallBatch>, pmds: Vec<PmdSender<FlowMessage>>, mut policy: Policy) -> SlowPath {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let join = std::thread::spawn(move || {
            let mut next_id: FlowId = 1;
            while !stop2.load(Ordering::SeqCst) {
                let Ok(batch) = upcalls.recv_timeout(Duration::from_millis(5)) else { continue };
                for u in batch.upcalls() {
                    seen2.lock().unwrap().push(u.clone());
                    if let Some(cmd) = policy(&u, next_id) {
                        next_id += 1;
                        let _ = pmds[u.pmd].send(FlowMessage::Command(cmd));
                    }
                }
            }
        });
        SlowPath { seen, stop, join: Some(join) }
    }

    fn upcalls(&self) -> Vec<Upcall> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for SlowPath {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

struct Bench {
    sw: Switch<FlowMessage>,
    peers: Vec<Peer>,
    pool: Mempool,
    shared: Vec<Arc<PipelineShared>>,
    reports: Receiver<PmdReport>,
    /// The upcall queue, when no fake slow path reads it.
    upcalls: Option<Receiver<UpcallBatch>>,
    slow: Option<SlowPath>,
}

fn test_options() -> SwitchOptions {
    SwitchOptions {
        pmd_cores: vec![1 % ferrovs_pmd::online_cpus().len()],
        pin_threads: true,
        n_mbufs: 2047,
        mbuf_cache: 32,
        idle_backoff: Some(IdleBackoff {
            after_empty_polls: 64,
            start: Duration::from_micros(2),
            max: Duration::from_micros(100),
        }),
        ..Default::default()
    }
}

/// A switch with two ring ports numbered 1 and 2, one PMD running a [`FlowPipeline`], an
/// upcall queue of `upcall_queue` entries and, if `policy` is given, a fake slow path.
fn bench(upcall_queue: usize, policy: Option<Policy>) -> Result<Bench, Failed> {
    let options = test_options();
    bench_with(upcall_queue, policy, pending_config_for_pool(options.n_mbufs, options.pmd_cores.len()))
}

/// [`bench`] with the parking table `pending`.
fn bench_with(upcall_queue: usize, policy: Option<Policy>, pending: PendingConfig) -> Result<Bench, Failed> {
    let eal = eal();
    let pool = Mempool::new(eal, &uniq("fpool"), 4095, 0, ferrovs_pmd::spec::DEFAULT_DATA_ROOM, 0)?;
    let mut specs = Vec::new();
    let mut peers = Vec::new();
    for i in 0..2 {
        let (a, b) = ring_port_pair(eal, &uniq("fr"), 1, 1024)?;
        specs.push(PortSpec::existing(format!("p{}", i + 1), (i + 1) as u32, a));
        peers.push(Peer::open(b, 1, &pool)?);
    }
    let (up_tx, up_rx) = crossbeam_channel::bounded(upcall_queue);
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(64);
    let clock = PipelineClock::new(eal.tsc_hz(), ferrovs_dpdk::rdtsc());
    let cfg = FlowCacheConfig { max_flows: 1000, emc_entries: 1024, emc_insert_inverse_prob: 1, sig_entries: 4096 };
    let mut shared = Vec::new();
    let options = test_options();
    let sw = Switch::start(eal, &specs, &options, |info| {
        let c = Arc::new(PipelineShared::new(&cfg));
        shared.push(c.clone());
        FlowPipeline::new(info.index, cfg, pending, up_tx.clone(), ev_tx.clone(), clock, c)
    })?;
    drop((up_tx, ev_tx));
    let (upcalls, slow) = match policy {
        Some(p) => (None, Some(SlowPath::spawn(up_rx, vec![sw.sender(0)?], p))),
        None => (Some(up_rx), None),
    };
    Ok(Bench { sw, peers, pool, shared, reports: ev_rx, upcalls, slow })
}

impl Bench {
    /// Sends `frames` from the peer of port `port` (1-based), a burst of up to 32 at a
    /// time (each burst is enqueued on the ring at once, so the PMD sees it whole).
    fn send(&mut self, port: usize, frames: &[Vec<u8>]) -> Result<(), Failed> {
        self.peers[port - 1].send(&self.pool, 0, frames)
    }

    /// Receives on the peer of `port` until `n` frames arrived (then a short grace period
    /// to catch extra ones) or `wait` passed.
    fn recv(&mut self, port: usize, n: usize, wait: Duration) -> Vec<Vec<u8>> {
        self.peers[port - 1].recv(n, wait)
    }

    fn pipeline(&self) -> PipelineStats {
        self.shared[0].counters.snapshot()
    }

    /// Waits until the pipeline counters satisfy `f` (published once per loop iteration).
    fn wait_pipeline(&self, what: &str, f: impl Fn(&PipelineStats) -> bool) -> Result<PipelineStats, Failed> {
        wait_for(what, || self.pipeline(), f)
    }

    /// Waits until the switch's port/PMD counters satisfy `f`.
    fn wait_switch(&self, what: &str, f: impl Fn(&SwitchStats) -> bool) -> Result<SwitchStats, Failed> {
        wait_for(what, || self.sw.stats(), f)
    }

    /// The PMD's live megaflow statistics, once its clock hand has gone round twice
    /// since the call (so everything that happened before is published). A cache that
    /// never held a megaflow has no slots for the hand to turn over.
    fn flows(&self) -> Result<Vec<(FlowId, MegaflowStats)>, Failed> {
        let s = self.pipeline();
        if s.installs > 0 {
            self.wait_pipeline("two turns of the clock hand", |x| x.sweeps >= s.sweeps + 2)?;
        }
        let mut v = Vec::new();
        self.shared[0].flows.snapshot(0, &mut v);
        Ok(v.into_iter().map(|(_, id, st)| (id, st)).collect())
    }

    /// The next report from the PMD.
    fn report(&self, what: &str) -> Result<PmdReport, Failed> {
        Ok(self.reports.recv_timeout(Duration::from_secs(2)).map_err(|_| format!("no report: {what}"))?)
    }

    /// The gone megaflows of the next report.
    fn gone(&self, what: &str) -> Result<Vec<GoneFlow>, Failed> {
        Ok(self.report(what)?.gone().to_vec())
    }

    fn command(&self, cmd: PmdCommand) -> Result<(), Failed> {
        self.sw.send(0, FlowMessage::Command(cmd))?;
        self.sw.barrier(Duration::from_secs(2))?;
        Ok(())
    }

    fn upcalls_seen(&self) -> Vec<Upcall> {
        self.slow.as_ref().map(|s| s.upcalls()).unwrap_or_default()
    }

    /// Stops the slow path and the switch, drains the peers, checks every mbuf came back.
    fn finish(self) -> Result<(), Failed> {
        let Bench { sw, mut peers, pool, slow, upcalls, .. } = self;
        drop(slow);
        let sw_pool = sw.mempool().clone();
        sw.stop();
        drop(upcalls);
        for p in peers.iter_mut() {
            p.drain();
        }
        drop(peers);
        check(pool.in_use() == 0, || format!("test pool: {} mbufs still in use", pool.in_use()))?;
        check(sw_pool.in_use() == 0, || format!("switch pool: {} mbufs still in use", sw_pool.in_use()))?;
        Ok(())
    }
}

fn cache_hits(s: &PipelineStats) -> u64 {
    s.emc_hits + s.sig_hits + s.classifier_hits
}

// ---------------------------------------------------------------- tests

fn one_upcall_per_new_flow_and_no_first_packet_lost() -> Result<(), Failed> {
    let mut b = bench(16, Some(install(vec![DpAction::Output(2)])))?;
    // 20 packets of one new flow in one burst: one upcall, all 20 out, in order.
    let burst = flow_frames(FLOW_A, 0..20);
    b.send(1, &burst)?;
    let got = b.recv(2, 20, Duration::from_secs(3));
    check(got == burst, || format!("port 2 got {} frames (want the 20 sent, same bytes, same order)", got.len()))?;
    let s = b.wait_pipeline("install", |s| s.installs == 1 && s.parked == 0)?;
    check(s.upcalls_sent == 1 && s.misses + cache_hits(&s) == 20 && s.misses >= 1, || format!("{s:#?}"))?;
    let seen = b.upcalls_seen();
    check(seen.len() == 1 && seen[0].key == extract(&burst[0], 1) && seen[0].pmd == 0, || format!("upcalls {seen:?}"))?;
    check(s.megaflows == 1 && s.masks == 1, || format!("{s:#?}"))?;

    // A second flow (other source port) to the same destination hits the megaflow.
    let other = flow_frames(Udp { sport: 4242, ..FLOW_A }, 100..110);
    b.send(1, &other)?;
    let got = b.recv(2, 10, Duration::from_secs(3));
    check(got == other, || format!("second flow: {} frames", got.len()))?;
    let s2 = b.wait_pipeline("hits", |x| cache_hits(x) >= cache_hits(&s) + 10)?;
    check(s2.upcalls_sent == 1 && s2.misses == s.misses, || format!("the second flow missed: {s2:#?}"))?;
    check(b.upcalls_seen().len() == 1, || "a second upcall reached the slow path".into())?;
    // Every packet counts in the megaflow: the parked ones its install released and the hits.
    let dump = b.flows()?;
    let bytes = burst.iter().chain(&other).map(|f| f.len() as u64).sum::<u64>();
    check(dump.len() == 1 && dump[0].0 == 1 && dump[0].1.packets == 30, || format!("{dump:?}"))?;
    check(dump[0].1.bytes == bytes, || format!("{dump:?} (want {bytes} bytes)"))?;
    // Nothing came back on the ingress port and no packet was dropped.
    check(b.recv(1, 0, Duration::from_millis(5)).is_empty(), || "frames on the ingress port".into())?;
    let sw = b.wait_switch("tx", |x| x.ports[1].counters.tx_packets == 30)?;
    check(sw.ports[0].counters.drops() == 0 && sw.ports[1].counters.drops() == 0, || format!("{:?}", sw.ports))?;
    b.finish()
}

fn each_parked_key_waits_for_its_own_answer_in_arrival_order() -> Result<(), Failed> {
    // No slow path: the test answers by hand, after all packets are parked.
    let mut b = bench(16, None)?;
    let a = Udp { sport: 1, ..FLOW_A };
    let c = Udp { sport: 2, ..FLOW_A };
    let other_dst = Udp { sport: 3, dst: [198, 18, 0, 77], ttl: 64 };
    // Interleaved: a0 c0 x0 a1 c1 x1 ... (x has another destination).
    let mut sent = Vec::new();
    for s in 0..5u16 {
        sent.push(udp_frame(a, s));
        sent.push(udp_frame(c, 10 + s));
        sent.push(udp_frame(other_dst, 20 + s));
    }
    b.send(1, &sent)?;
    let s = b.wait_pipeline("parked", |s| s.parked == 15)?;
    check(s.upcalls_sent == 3, || format!("{s:#?}"))?;
    let rx = b.upcalls.take().ok_or("no upcall queue")?;
    let batches: Vec<UpcallBatch> = rx.try_iter().collect();
    let ups: Vec<Upcall> = batches.iter().flat_map(|b| b.upcalls()).collect();
    check(ups.len() == 3, || format!("{} upcalls queued", ups.len()))?;
    // All in one burst: one message.
    check(batches.len() == 1, || format!("{} upcall messages for one burst", batches.len()))?;
    // a's answer: a megaflow (destination only) that covers a and c. It releases a's
    // packets only: c has its own upcall, whose answer may differ (in the switch, when
    // a taught `normal` something c's decision depends on).
    let mf = Megaflow::new(ups[0].key, dst_mask(), vec![DpAction::Output(2)]);
    b.command(PmdCommand::Install { id: 7, key: ups[0].key, megaflow: mf })?;
    let got = b.recv(2, 5, Duration::from_secs(3));
    let of = |u: Udp| -> Vec<Vec<u8>> {
        sent.iter().filter(|f| extract(f, 1) == extract(&udp_frame(u, 0), 1)).cloned().collect()
    };
    check(got == of(a), || format!("got {} frames, want a's five as sent", got.len()))?;
    check(b.pipeline().parked == 10, || format!("{:#?}", b.pipeline()))?;
    // Newer packets of c match the megaflow but must not overtake c's parked ones: they
    // join c (no new upcall), while a's hit the megaflow.
    let later_c = flow_frames(c, 15..18);
    let later_a = flow_frames(a, 5..7);
    b.send(1, &[later_c.clone(), later_a.clone()].concat())?;
    let got = b.recv(2, 2, Duration::from_secs(3));
    check(got == later_a, || format!("got {} frames, want a's two later ones only", got.len()))?;
    let s = b.wait_pipeline("c joined", |s| s.parked == 13)?;
    check(s.upcalls_sent == 3, || format!("{s:#?}"))?;
    // The PMD is idle now; its port counters still show the injected packets.
    b.wait_switch("injected tx", |s| s.ports[1].counters.tx_packets == 7)?;
    // x's answer: execute only.
    b.command(PmdCommand::Execute { key: ups[2].key, actions: vec![DpAction::Output(2)] })?;
    let got = b.recv(2, 5, Duration::from_secs(3));
    check(got == of(other_dst), || format!("x: got {} frames", got.len()))?;
    // c's answer: an Install of the same key and mask, refused (identical megaflow
    // installed) but executed on c's eight packets, in arrival order, and reported.
    let dup = Megaflow::new(ups[1].key, dst_mask(), vec![DpAction::Output(2)]);
    b.command(PmdCommand::Install { id: 8, key: ups[1].key, megaflow: dup })?;
    let got = b.recv(2, 8, Duration::from_secs(3));
    let want_c = [of(c), later_c].concat();
    check(got == want_c, || format!("c: got {} frames, want its eight in arrival order", got.len()))?;
    // First the report of x's Execute: its five packets, under its key.
    let r = b.report("executed x")?;
    let x_bytes = of(other_dst).iter().map(|f| f.len() as u64).sum::<u64>();
    check(r.executed().len() == 1 && r.gone().is_empty(), || format!("{r:?}"))?;
    let e = r.executed()[0];
    check(e.key == ups[2].key && e.packets == 5 && e.bytes == x_bytes, || format!("{r:?}"))?;
    let ev = b.gone("refused")?;
    check(ev.len() == 1 && ev[0].reason == GoneReason::Refused && ev[0].id == 8, || format!("{ev:?}"))?;
    check(ev[0].stats.packets == 8, || format!("c's eight packets were executed with its actions: {ev:?}"))?;
    let s = b.wait_pipeline("refused", |s| s.install_refused == 1)?;
    check(s.parked == 0 && s.installs == 1 && s.megaflows == 1, || format!("{s:#?}"))?;
    // Nothing is shadowed any more: c's next packets hit the megaflow.
    let hits = cache_hits(&s);
    let last_c = flow_frames(c, 18..20);
    b.send(1, &last_c)?;
    let got = b.recv(2, 2, Duration::from_secs(3));
    check(got == last_c, || format!("c after its answer: got {} frames", got.len()))?;
    b.wait_pipeline("c hits", |x| cache_hits(x) == hits + 2 && x.parked == 0)?;
    b.upcalls = Some(rx);
    b.finish()
}

/// A megaflow of mask in_port alone (the slow path's answer for a table of in_port
/// rules) answers every packet of the port without their keys (`FlowCache::port_wide`),
/// except while keys of the port wait for their own answers.
fn an_in_port_megaflow_answers_every_packet_and_parked_keys_still_wait() -> Result<(), Failed> {
    let mut b = bench(16, None)?;
    let mut in_port_mask = FlowKey::ZERO;
    in_port_mask.set_in_port(u32::MAX);
    let a = Udp { sport: 1, ..FLOW_A };
    let c = Udp { sport: 2, dst: [198, 18, 0, 9], ttl: 64 };
    let sent: Vec<Vec<u8>> = (0..4u16).flat_map(|s| [udp_frame(a, s), udp_frame(c, 10 + s)]).collect();
    b.send(1, &sent)?;
    b.wait_pipeline("parked", |s| s.parked == 8 && s.upcalls_sent == 2)?;
    let rx = b.upcalls.take().ok_or("no upcall queue")?;
    let ups: Vec<Upcall> = rx.try_iter().flat_map(|batch| batch.upcalls().collect::<Vec<_>>()).collect();
    check(ups.len() == 2, || format!("{} upcalls", ups.len()))?;
    let mf = Megaflow::new(ups[0].key, in_port_mask, vec![DpAction::Output(2)]);
    b.command(PmdCommand::Install { id: 5, key: ups[0].key, megaflow: mf })?;
    check(b.recv(2, 4, Duration::from_secs(3)).len() == 4, || "a's parked packets".into())?;
    // c's key is parked (covered by the new megaflow, waiting for its own answer): c's
    // newer packets join it, a's hit.
    let later_c = flow_frames(c, 14..16);
    let later_a = flow_frames(a, 4..6);
    b.send(1, &[later_c.clone(), later_a.clone()].concat())?;
    let got = b.recv(2, 2, Duration::from_secs(3));
    check(got == later_a, || format!("got {} frames, want a's two later ones only", got.len()))?;
    b.wait_pipeline("c joined", |s| s.parked == 6)?;
    // c's answer: the same megaflow (refused as identical), executed on its six packets.
    let dup = Megaflow::new(ups[1].key, in_port_mask, vec![DpAction::Output(2)]);
    b.command(PmdCommand::Install { id: 6, key: ups[1].key, megaflow: dup })?;
    check(b.recv(2, 6, Duration::from_secs(3)).len() == 6, || "c's parked packets".into())?;
    let s = b.wait_pipeline("nothing parked", |s| s.parked == 0 && s.install_refused == 1)?;
    // Now every packet of the port hits, whatever its flow: UDP of new flows, TCP with
    // flags, a VLAN-tagged frame; none goes to the slow path.
    let tcp = |flags: u8, sport: u16| {
        ferrovs_flowcache::testpkt::tcp4_frame(&ferrovs_flowcache::testpkt::Tcp4 {
            flags,
            sport,
            ..ferrovs_flowcache::testpkt::TCP4
        })
    };
    let mut burst: Vec<Vec<u8>> = (0..20u16).map(|i| udp_frame(Udp { sport: 100 + i, ..c }, i)).collect();
    burst.push(tcp(0x02, 7));
    burst.push(tcp(0x11, 8));
    burst.push(ferrovs_flowcache::testpkt::with_vlan(&tcp(0x04, 9), 0x8100, 3));
    b.send(1, &burst)?;
    let got = b.recv(2, burst.len(), Duration::from_secs(3));
    check(got == burst, || format!("got {} of {} frames", got.len(), burst.len()))?;
    let s2 = b.wait_pipeline("hits", |x| cache_hits(x) >= cache_hits(&s) + burst.len() as u64)?;
    check(s2.misses == s.misses && s2.upcalls_sent == 2, || format!("a packet missed: {s2:#?}"))?;
    let dump = b.flows()?;
    let bytes = [&sent[..], &later_c, &later_a, &burst].concat().iter().map(|f| f.len() as u64).sum::<u64>();
    check(dump.len() == 1 && dump[0].0 == 5, || format!("{dump:?}"))?;
    let st = dump[0].1;
    // Every packet: a's four parked and two hits, c's six executed under the refused
    // install (reported with it, not here), the burst.
    let want_packets = 6 + burst.len() as u64;
    let len_sum = |fs: &[Vec<u8>]| fs.iter().map(|f| f.len() as u64).sum::<u64>();
    let c_bytes = len_sum(&sent.iter().skip(1).step_by(2).cloned().collect::<Vec<_>>()) + len_sum(&later_c);
    check(st.packets == want_packets && st.bytes == bytes - c_bytes, || {
        format!("{st:?} (want {want_packets} packets)")
    })?;
    check(st.tcp_flags == 0x02 | 0x11 | 0x04, || format!("tcp flags {:#x}", st.tcp_flags))?;
    b.upcalls = Some(rx);
    b.finish()
}

fn a_thousand_new_flows_park_and_their_answers_release_them_in_order() -> Result<(), Failed> {
    // More distinct keys than the old 64-key table held: each packet is a new flow (its
    // own source port), all to one destination, parked before any answer.
    let n = 1000u16;
    check(pending_config_for_pool(test_options().n_mbufs, 1).max_keys >= n as usize, || "table too small".into())?;
    let mut b = bench(1024, None)?;
    let sent: Vec<Vec<u8>> = (0..n).map(|i| udp_frame(Udp { sport: 10_000 + i, ..FLOW_A }, i)).collect();
    b.send(1, &sent)?;
    let s = b.wait_pipeline("parked", |s| s.parked == n as u64)?;
    check(s.upcalls_sent == n as u64 && s.park_full == 0, || format!("{s:#?}"))?;
    let rx = b.upcalls.take().ok_or("no upcall queue")?;
    let batches: Vec<UpcallBatch> = rx.try_iter().collect();
    let ups: Vec<Upcall> = batches.iter().flat_map(|b| b.upcalls()).collect();
    check(ups.len() == n as usize, || format!("{} upcalls queued", ups.len()))?;
    // One message per burst of up to 32 packets.
    check(batches.len() >= (n as usize).div_ceil(32) && batches.len() < n as usize, || {
        format!("{} upcall messages", batches.len())
    })?;
    // Answered as the slow path does: the first flow's megaflow (destination only)
    // covers every parked key, so the others are raced and answered by `Execute`.
    let pmd = b.sw.sender(0)?;
    for (i, u) in ups.iter().enumerate() {
        let actions = vec![DpAction::Output(2)];
        let cmd = if i == 0 {
            PmdCommand::Install { id: 1, key: u.key, megaflow: Megaflow::new(u.key, dst_mask(), actions) }
        } else {
            PmdCommand::Execute { key: u.key, actions }
        };
        pmd.send_timeout(FlowMessage::Command(cmd), Duration::from_secs(2))?;
    }
    let got = b.recv(2, n as usize, Duration::from_secs(3));
    check(got == sent, || format!("got {} of {n} frames (or out of order)", got.len()))?;
    let s = b.wait_pipeline("released", |s| s.parked == 0 && s.installs == 1)?;
    check(s.park_timeout == 0, || format!("{s:#?}"))?;
    b.upcalls = Some(rx);
    b.finish()
}

/// Four flows (own destinations) of `n` packets each, from sequence number `from`.
fn four_flows(from: u16, n: u16) -> (Vec<Udp>, Vec<Vec<u8>>) {
    let flows: Vec<Udp> = (0..4).map(|i| Udp { sport: 7000 + i, dst: [198, 18, 1, i as u8], ttl: 64 }).collect();
    let frames = (from..from + n).flat_map(|seq| flows.iter().map(move |&u| udp_frame(u, seq))).collect();
    (flows, frames)
}

/// Sends four flows of 256 frames from port 1, which fill a parking table of 1,024
/// packets, then 80 more of each, which must wait in the port's ring; returns the flows,
/// both sets of frames, and the counters once rx was held many times.
type Filled = (Vec<Udp>, Vec<Vec<u8>>, Vec<Vec<u8>>, PipelineStats);
fn fill_the_table_from_port_1(b: &mut Bench) -> Result<Filled, Failed> {
    let (flows, first) = four_flows(0, 256);
    b.send(1, &first)?;
    b.wait_pipeline("table full", |s| s.parked == 1024)?;
    let (_, later) = four_flows(256, 80);
    b.send(1, &later)?;
    let s = b.wait_pipeline("rx held", |s| s.rx_pauses > 1000)?;
    Ok((flows, first, later, s))
}

/// Answers the four upcalls of [`four_flows`] sent from port 1 (queued, no fake slow path)
/// one by one, each with a megaflow to port 2, and returns what port 2 sent meanwhile
/// (336 frames of each flow expected).
fn answer_four_flows(b: &mut Bench) -> Result<Vec<Vec<u8>>, Failed> {
    let batches: Vec<UpcallBatch> = b.upcalls.as_ref().ok_or("no queue")?.try_iter().collect();
    let ups: Vec<Upcall> = batches.iter().flat_map(|b| b.upcalls()).collect();
    check(ups.len() == 4, || format!("{} upcalls", ups.len()))?;
    let mut got = Vec::new();
    for (i, u) in ups.iter().enumerate() {
        let megaflow = Megaflow::new(u.key, dst_mask(), vec![DpAction::Output(2)]);
        b.command(PmdCommand::Install { id: i as FlowId + 1, key: u.key, megaflow })?;
        got.extend(b.recv(2, 336, Duration::from_secs(3)));
    }
    Ok(got)
}

fn a_full_parking_table_pauses_rx_and_loses_nothing() -> Result<(), Failed> {
    // The test's parking table holds 1,024 packets; four new flows fill it, and the next
    // 320 frames must wait in the port's ring (not be dropped) until the answers come.
    let options = test_options();
    let pending = PendingConfig { max_rx_pause_ms: 60_000, ..pending_config_for_pool(options.n_mbufs, 1) };
    check(pending.max_packets == 1024 && pending.max_keys > 4, || format!("{pending:?}"))?;
    let mut b = bench_with(16, None, pending)?;
    let (flows, first, later, s) = fill_the_table_from_port_1(&mut b)?;
    check(s.parked == 1024 && s.park_full == 0 && s.upcalls_sent == 4, || format!("{s:#?}"))?;
    // Each answer frees a quarter of the table: the PMD takes the waiting frames again,
    // the answered flow's go out by its megaflow, the others join their keys.
    let got = answer_four_flows(&mut b)?;
    check(got.len() == first.len() + later.len(), || format!("got {} of 1344 frames", got.len()))?;
    // Every flow's frames in the order they were sent.
    for f in &flows {
        let sent: Vec<&Vec<u8>> = first.iter().chain(&later).filter(|x| x[30..34] == f.dst).collect();
        let came: Vec<&Vec<u8>> = got.iter().filter(|x| x[30..34] == f.dst).collect();
        check(sent == came, || format!("flow to {:?}: {} frames, or out of order", f.dst, came.len()))?;
    }
    let s = b.wait_pipeline("released", |s| s.parked == 0 && s.installs == 4)?;
    check(s.park_full == 0 && s.park_timeout == 0, || format!("{s:#?}"))?;
    b.finish()
}

fn a_queue_of_misses_is_held_and_the_installed_flows_of_another_are_not() -> Result<(), Failed> {
    // Port 1's queue fills the parking table with new flows and is held; port 2 carries an
    // installed flow, whose frames keep flowing meanwhile (a pause of every queue would
    // hold them too, for as long as the slow path does not answer: here a minute, as
    // long as the parked keys' timeout).
    let options = test_options();
    let pending =
        PendingConfig { max_rx_pause_ms: 60_000, timeout_ms: 60_000, ..pending_config_for_pool(options.n_mbufs, 1) };
    let mut b = bench_with(16, None, pending)?;
    let installed = Udp { sport: 4000, dst: [198, 18, 2, 1], ttl: 64 };
    let key = extract(&udp_frame(installed, 0), 2);
    let megaflow = Megaflow::new(key, dst_mask(), vec![DpAction::Output(1)]);
    b.command(PmdCommand::Install { id: 100, key, megaflow })?;
    let (_, first, later, held) = fill_the_table_from_port_1(&mut b)?;
    let sent = flow_frames(installed, 0..96);
    b.send(2, &sent)?;
    let got = b.recv(1, sent.len(), Duration::from_secs(3));
    check(got == sent, || format!("installed flow: got {} of {} frames (or out of order)", got.len(), sent.len()))?;
    let s = b.pipeline();
    check(s.parked == 1024 && s.park_full == 0 && s.rx_pauses > held.rx_pauses && cache_hits(&s) >= 96, || {
        format!("port 1 no longer held, or port 2 missed: {s:#?}")
    })?;
    // The answers release port 1's flows; nothing was lost there either.
    let out = answer_four_flows(&mut b)?;
    check(out.len() == first.len() + later.len(), || format!("port 1: got {} of 1344 frames", out.len()))?;
    let s = b.wait_pipeline("released", |s| s.parked == 0 && s.installs == 5)?;
    check(s.park_full == 0 && s.park_timeout == 0, || format!("{s:#?}"))?;
    b.finish()
}

fn a_slow_path_that_does_not_answer_pauses_rx_for_a_bounded_time() -> Result<(), Failed> {
    // Pauses end once the oldest key has waited 100 ms: then the waiting frames are
    // taken and, the table being full, dropped. (Had rx stayed paused, they would have
    // been parked as new keys after the first keys' 1 s timeout, and none dropped.)
    let options = test_options();
    let pending = PendingConfig { max_rx_pause_ms: 100, ..pending_config_for_pool(options.n_mbufs, 1) };
    let mut b = bench_with(16, None, pending)?;
    b.send(1, &four_flows(0, 256).1)?;
    b.wait_pipeline("table full", |s| s.parked == 1024)?;
    b.send(1, &four_flows(256, 80).1)?;
    let s = b.wait_pipeline("dropped after the pause", |s| s.park_full == 320)?;
    check(s.rx_pauses > 0, || format!("{s:#?}"))?;
    b.wait_pipeline("timed out", |s| s.park_timeout == 1024 && s.parked == 0)?;
    b.finish()
}

fn execute_without_install_forwards_and_next_packet_upcalls_again() -> Result<(), Failed> {
    let mut b = bench(16, Some(execute_only(vec![DpAction::Output(2)])))?;
    let first = flow_frames(FLOW_A, 0..5);
    b.send(1, &first)?;
    let got = b.recv(2, 5, Duration::from_secs(3));
    check(got == first, || format!("first: {} frames", got.len()))?;
    b.wait_pipeline("parked drained", |s| s.upcalls_sent == 1 && s.parked == 0)?;
    let second = flow_frames(FLOW_A, 5..8);
    b.send(1, &second)?;
    let got = b.recv(2, 3, Duration::from_secs(3));
    check(got == second, || format!("second: {} frames", got.len()))?;
    let s = b.wait_pipeline("second upcall", |s| s.upcalls_sent == 2 && s.parked == 0)?;
    check(s.megaflows == 0 && s.installs == 0 && cache_hits(&s) == 0 && s.misses == 8, || format!("{s:#?}"))?;
    check(b.flows()?.is_empty(), || "Execute installed something".into())?;
    // Each Execute's packets come back as counts for the key.
    let mut executed = Vec::new();
    while executed.len() < 2 {
        executed.extend(b.report("executed")?.executed().iter().map(|e| (e.packets, e.bytes)));
    }
    let bytes = |f: &[Vec<u8>]| f.iter().map(|f| f.len() as u64).sum::<u64>();
    check(executed == vec![(5, bytes(&first)), (3, bytes(&second))], || format!("{executed:?}"))?;
    check(b.upcalls_seen().len() == 2, || format!("{:?}", b.upcalls_seen()))?;
    b.finish()
}

fn remove_and_expiry_report_gone_with_final_stats() -> Result<(), Failed> {
    let mut b = bench(16, Some(install(vec![DpAction::Output(2)])))?;
    b.send(1, &flow_frames(FLOW_A, 0..4))?;
    check(b.recv(2, 4, Duration::from_secs(3)).len() == 4, || "first packets".into())?;
    b.wait_pipeline("install", |s| s.installs == 1)?;
    let hits = flow_frames(FLOW_A, 4..10);
    b.send(1, &hits)?;
    check(b.recv(2, 6, Duration::from_secs(3)) == hits, || "hits not forwarded".into())?;
    // The four parked first packets count too: the install released them.
    let dump = b.flows()?;
    check(dump.len() == 1 && dump[0].1.packets == 10, || format!("{dump:?}"))?;
    let id = dump[0].0;
    let bytes = flow_frames(FLOW_A, 0..10).iter().map(|f| f.len() as u64).sum::<u64>();
    check(dump[0].1.bytes == bytes, || format!("{dump:?}"))?;
    b.command(PmdCommand::Remove { ids: vec![id, 999] })?;
    let r = b.report("removed")?;
    check(r.pmd == 0 && r.gone().len() == 1 && r.gone()[0].reason == GoneReason::Removed, || format!("{r:?}"))?;
    let g = r.gone()[0];
    check(g.id == id && g.stats.packets == 10 && g.stats.bytes == bytes, || format!("{r:?}"))?;
    check(b.flows()?.is_empty(), || "removed megaflow still in the stats table".into())?;
    let s = b.wait_pipeline("removal", |s| s.removals == 1 && s.megaflows == 0)?;
    check(s.masks == 0, || format!("{s:#?}"))?;
    // The next packet misses, upcalls again, and is forwarded under the new megaflow.
    let again = flow_frames(FLOW_A, 10..11);
    b.send(1, &again)?;
    check(b.recv(2, 1, Duration::from_secs(3)) == again, || "packet after removal".into())?;
    let s = b.wait_pipeline("second install", |s| s.installs == 2)?;
    check(s.upcalls_sent == 2, || format!("{s:#?}"))?;
    // Idle expiry: the clock hand removes it once it is idle for 1 ms.
    std::thread::sleep(Duration::from_millis(3));
    b.command(PmdCommand::ExpireIdle { idle_ms: 1 })?;
    let ev = b.gone("expired")?;
    check(ev.len() == 1 && ev[0].reason == GoneReason::Expired && ev[0].id == 2, || format!("{ev:?}"))?;
    b.wait_pipeline("expiry", |s| s.expirations == 1 && s.megaflows == 0)?;
    check(b.reports.recv_timeout(Duration::from_millis(100)).is_err(), || "a second report".into())?;
    b.finish()
}

fn full_upcall_queue_drops_and_counts() -> Result<(), Failed> {
    // A queue of one and nobody reading it.
    let mut b = bench(1, None)?;
    let a = flow_frames(FLOW_A, 0..3);
    let c = flow_frames(Udp { sport: 7, ..FLOW_A }, 0..4);
    let x = flow_frames(Udp { sport: 8, ..FLOW_A }, 0..5);
    // First burst: a's batch fills the queue.
    b.send(1, &a)?;
    b.wait_pipeline("a parked", |s| s.parked == 3 && s.upcalls_sent == 1)?;
    // Second burst: its batch (c and x) finds the queue full; all 9 packets are dropped.
    let mut cx = c.clone();
    cx.extend(x);
    b.send(1, &cx)?;
    let s = b.wait_pipeline("queue full", |s| s.upcall_queue_full == 9)?;
    check(s.upcalls_sent == 1 && s.parked == 3, || format!("{s:#?}"))?;
    let sw = b.wait_switch("no_rule", |s| s.ports[0].counters.drop_no_rule == 9)?;
    check(sw.ports[1].counters.tx_packets == 0, || "something was sent".into())?;
    // The queued upcall is answered: only flow a's packets come out.
    let up = b.upcalls.as_ref().ok_or("no queue")?.try_recv().map_err(|_| "no upcall queued")?;
    check(up.keys() == [extract(&a[0], 1)], || format!("upcall batch {up:?}"))?;
    b.command(PmdCommand::Execute { key: up.keys()[0], actions: vec![DpAction::Output(2)] })?;
    check(b.recv(2, 3, Duration::from_secs(3)) == a, || "parked packets of a".into())?;
    // Packets still parked when the switch stops are freed, not leaked.
    b.send(1, &flow_frames(FLOW_A, 50..52))?;
    b.wait_pipeline("parked again", |s| s.parked == 2)?;
    b.finish()
}

fn unanswered_upcalls_time_out() -> Result<(), Failed> {
    let mut b = bench(16, None)?;
    b.send(1, &flow_frames(FLOW_A, 0..4))?;
    b.wait_pipeline("parked", |s| s.parked == 4)?;
    let t0 = Instant::now();
    let s = b.wait_pipeline("timeout", |s| s.park_timeout == 4 && s.parked == 0)?;
    let waited = t0.elapsed();
    check(waited >= Duration::from_millis(PendingConfig::DEFAULT_TIMEOUT_MS - 100), || {
        format!("timed out after only {waited:?}")
    })?;
    check(s.upcalls_sent == 1, || format!("{s:#?}"))?;
    b.wait_switch("no_rule", |s| s.ports[0].counters.drop_no_rule == 4)?;
    // A late answer finds nothing parked; the next packet upcalls again.
    let up = b.upcalls.as_ref().ok_or("no queue")?.try_recv().map_err(|_| "no upcall")?;
    b.command(PmdCommand::Execute { key: up.keys()[0], actions: vec![DpAction::Output(2)] })?;
    check(b.recv(2, 1, Duration::from_millis(50)).is_empty(), || "timed-out packets came out".into())?;
    b.send(1, &flow_frames(FLOW_A, 4..5))?;
    b.wait_pipeline("new upcall", |s| s.upcalls_sent == 2 && s.parked == 1)?;
    b.finish()
}

fn ipv4_rewrite_keeps_checksums_valid() -> Result<(), Failed> {
    let new_dst = Ipv4Addr::new(198, 18, 9, 9);
    let mut b = bench(16, Some(install(vec![DpAction::SetIpv4Dst(new_dst), DpAction::Output(2)])))?;
    // The first 3 go through the upcall (parked, then executed), the next 3 hit.
    let sent = flow_frames(FLOW_A, 0..3);
    b.send(1, &sent)?;
    let mut got = b.recv(2, 3, Duration::from_secs(3));
    b.wait_pipeline("install", |s| s.installs == 1)?;
    let more = flow_frames(FLOW_A, 3..6);
    b.send(1, &more)?;
    got.extend(b.recv(2, 3, Duration::from_secs(3)));
    check(got.len() == 6, || format!("got {} frames", got.len()))?;
    for (f, orig) in got.iter().zip(sent.iter().chain(&more)) {
        check(f[30..34] == new_dst.octets(), || format!("destination not rewritten: {:?}", &f[30..34]))?;
        check(checksums_ok(f), || format!("bad IPv4 or UDP checksum in {f:02x?}"))?;
        // Only the destination and the two checksums change.
        check(f.len() == orig.len() && f[..24] == orig[..24] && f[26..30] == orig[26..30], || {
            "header bytes changed".into()
        })?;
        check(f[34..40] == orig[34..40] && f[42..] == orig[42..], || "ports or payload changed".into())?;
    }
    b.finish()
}

fn dec_ttl_at_one_drops() -> Result<(), Failed> {
    let mut b = bench(16, Some(install(vec![DpAction::DecTtl, DpAction::Output(2)])))?;
    let first = flow_frames(FLOW_A, 0..2);
    b.send(1, &first)?;
    let got = b.recv(2, 2, Duration::from_secs(3));
    check(got.len() == 2 && got.iter().all(|f| f[22] == 63 && checksums_ok(f)), || format!("{got:02x?}"))?;
    b.wait_pipeline("install", |s| s.installs == 1)?;
    // TTL is not in the megaflow: TTL 1 packets hit the same megaflow and are dropped.
    b.send(1, &flow_frames(Udp { ttl: 1, ..FLOW_A }, 2..7))?;
    b.wait_switch("ttl drops", |s| s.ports[0].counters.drop_action == 5)?;
    check(b.recv(2, 1, Duration::from_millis(30)).is_empty(), || "a TTL-1 packet was forwarded".into())?;
    let last = flow_frames(Udp { ttl: 2, ..FLOW_A }, 7..8);
    b.send(1, &last)?;
    let got = b.recv(2, 1, Duration::from_secs(3));
    check(got.len() == 1 && got[0][22] == 1 && checksums_ok(&got[0]), || format!("{got:02x?}"))?;
    let s = b.pipeline();
    check(s.upcalls_sent == 1, || format!("{s:#?}"))?;
    b.finish()
}

fn main() {
    let tests: Vec<(&str, common::TestFn)> = vec![
        ("one_upcall_per_new_flow_and_no_first_packet_lost", one_upcall_per_new_flow_and_no_first_packet_lost),
        (
            "each_parked_key_waits_for_its_own_answer_in_arrival_order",
            each_parked_key_waits_for_its_own_answer_in_arrival_order,
        ),
        (
            "a_thousand_new_flows_park_and_their_answers_release_them_in_order",
            a_thousand_new_flows_park_and_their_answers_release_them_in_order,
        ),
        ("a_full_parking_table_pauses_rx_and_loses_nothing", a_full_parking_table_pauses_rx_and_loses_nothing),
        (
            "a_queue_of_misses_is_held_and_the_installed_flows_of_another_are_not",
            a_queue_of_misses_is_held_and_the_installed_flows_of_another_are_not,
        ),
        (
            "a_slow_path_that_does_not_answer_pauses_rx_for_a_bounded_time",
            a_slow_path_that_does_not_answer_pauses_rx_for_a_bounded_time,
        ),
        (
            "execute_without_install_forwards_and_next_packet_upcalls_again",
            execute_without_install_forwards_and_next_packet_upcalls_again,
        ),
        ("remove_and_expiry_report_gone_with_final_stats", remove_and_expiry_report_gone_with_final_stats),
        ("full_upcall_queue_drops_and_counts", full_upcall_queue_drops_and_counts),
        ("unanswered_upcalls_time_out", unanswered_upcalls_time_out),
        ("ipv4_rewrite_keeps_checksums_valid", ipv4_rewrite_keeps_checksums_valid),
        ("dec_ttl_at_one_drops", dec_ttl_at_one_drops),
        (
            "an_in_port_megaflow_answers_every_packet_and_parked_keys_still_wait",
            an_in_port_megaflow_answers_every_packet_and_parked_keys_still_wait,
        ),
    ];
    common::run(tests)
}
