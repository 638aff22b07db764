//! End-to-end tests of the binding and the poll loop over net_ring port pairs, in one
//! process with one EAL (DPDK allows a single `rte_eal_init` per process).
//!
//! Each switch port is one side of a crossed ring pair; the test drives the other side
//! ("peer"): what the peer sends, the switch receives, and what the switch sends on the
//! port, the peer receives. Frames are real Ethernet/IPv4/UDP bytes. Every test checks
//! that all mbufs went back to their pools at the end.

use std::time::{Duration, Instant};

use ferrovs_dpdk::{DpdkError, MbufBatch, Mempool, Port, PortConfig, PortId, probe, ring_port_pair};
use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::testpkt::{Ipv4Hdr, eth_header, ipv4_header, udp_segment};
use ferrovs_pmd::{
    ForwardRule, ForwarderMessage, IdleBackoff, PortSpec, Switch, SwitchError, SwitchOptions, SwitchStats,
};
use libtest_mimic::Failed;

mod common;
use common::{Peer, check, eal, uniq, wait_for};

/// Ethernet/IPv4/UDP frame from 02:00:00:00:00:01 to 02:00:00:00:00:02,
/// 198.18.0.1:1000+seq -> 198.18.0.2:53, `payload` bytes of payload, valid IPv4 checksum.
fn udp_frame(seq: u16, payload: usize) -> Vec<u8> {
    let bytes: Vec<u8> = (0..payload).map(|i| (i as u8) ^ (seq as u8)).collect();
    let udp = udp_segment(1000u16.wrapping_add(seq), 53, &bytes); // checksum 0 = none (IPv4)
    let ip = Ipv4Hdr { id: seq, ..Ipv4Hdr::new([198, 18, 0, 1], [198, 18, 0, 2], 17) };
    let mut f = eth_header([0x02, 0, 0, 0, 0, 0x02], [0x02, 0, 0, 0, 0, 0x01], 0x0800);
    f.extend(ipv4_header(&ip, &[], udp.len()));
    f.extend(udp);
    f
}

struct Bench {
    sw: Switch<ForwarderMessage>,
    peers: Vec<Peer>,
    pool: Mempool,
}

fn test_options(n_pmds: usize) -> SwitchOptions {
    SwitchOptions {
        // With 2 CPUs, pinning one PMD to CPU 1 is realistic; more PMDs share CPUs unpinned.
        pmd_cores: if n_pmds == 1 { vec![1 % ferrovs_pmd::online_cpus().len()] } else { (0..n_pmds).collect() },
        pin_threads: n_pmds == 1,
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

/// Builds a switch with `n_ports` ring ports numbered 1..=n (rings of `ring_sizes[i]`).
fn bench(
    n_ports: usize,
    ring_sizes: &[u32],
    n_rxq: u16,
    n_pmds: usize,
    rules: &[(u32, ForwardRule)],
) -> Result<Bench, Failed> {
    bench_with(n_ports, ring_sizes, n_rxq, n_pmds, rules, |_| {})
}

/// As [`bench`], with each port spec passed through `edit` before the switch starts.
fn bench_with(
    n_ports: usize,
    ring_sizes: &[u32],
    n_rxq: u16,
    n_pmds: usize,
    rules: &[(u32, ForwardRule)],
    edit: impl Fn(&mut PortSpec),
) -> Result<Bench, Failed> {
    let eal = eal();
    let pool = Mempool::new(eal, &uniq("tpool"), 4095, 0, ferrovs_pmd::spec::DEFAULT_DATA_ROOM, 0)?;
    let n_q = (n_pmds as u16).max(n_rxq);
    let mut specs = Vec::new();
    let mut peers = Vec::new();
    for (i, &ring_size) in ring_sizes.iter().enumerate().take(n_ports) {
        let (a, b) = ring_port_pair(eal, &uniq("r"), n_q, ring_size)?;
        let mut spec = PortSpec::existing(format!("p{}", i + 1), (i + 1) as u32, a);
        spec.n_rxq = n_rxq;
        edit(&mut spec);
        specs.push(spec);
        peers.push(Peer::open(b, n_q, &pool)?);
    }
    let sw = Switch::start_forwarder(eal, &specs, &test_options(n_pmds), rules)?;
    Ok(Bench { sw, peers, pool })
}

impl Bench {
    /// Sends `frames` from the peer of port `port` (1-based) on peer tx queue `q`.
    fn send_on(&mut self, port: usize, q: usize, frames: &[Vec<u8>]) -> Result<(), Failed> {
        self.peers[port - 1].send(&self.pool, q, frames)
    }

    fn send(&mut self, port: usize, frames: &[Vec<u8>]) -> Result<(), Failed> {
        self.send_on(port, 0, frames)
    }

    /// Receives on the peer of `port` until `n` frames arrived or `wait` passed.
    fn recv(&mut self, port: usize, n: usize, wait: Duration) -> Vec<Vec<u8>> {
        self.peers[port - 1].recv(n, wait)
    }

    /// Waits until the switch's counters satisfy `f` (counters are published per burst).
    fn wait_stats(&self, what: &str, f: impl Fn(&SwitchStats) -> bool) -> Result<SwitchStats, Failed> {
        wait_for(what, || self.sw.stats(), f)
    }

    /// Stops the switch, drains the peers and checks every mbuf came back.
    fn finish(self) -> Result<SwitchStats, Failed> {
        let Bench { sw, mut peers, pool } = self;
        let sw_pool = sw.mempool().clone();
        let stats = sw.stop();
        for p in peers.iter_mut() {
            p.drain();
        }
        drop(peers);
        check(pool.in_use() == 0, || format!("test pool: {} mbufs still in use", pool.in_use()))?;
        check(sw_pool.in_use() == 0, || format!("switch pool: {} mbufs still in use", sw_pool.in_use()))?;
        Ok(stats)
    }
}

fn frames(n: usize, payload: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| udp_frame(i as u16, payload)).collect()
}

// ---------------------------------------------------------------- tests

fn output_forwards_in_order_and_counts() -> Result<(), Failed> {
    let mut b = bench(2, &[1024, 1024], 1, 1, &[(1, ForwardRule::Output(2))])?;
    let sent = frames(100, 64);
    b.send(1, &sent)?;
    let got = b.recv(2, 100, Duration::from_secs(3));
    check(got == sent, || format!("port 2 got {} frames (want the 100 sent, same bytes, same order)", got.len()))?;
    let back = b.recv(1, 0, Duration::from_millis(10));
    check(back.is_empty(), || format!("{} frames came back on the ingress port", back.len()))?;
    let bytes: u64 = sent.iter().map(|f| f.len() as u64).sum();
    let s = b.wait_stats("counters", |s| s.ports[1].counters.tx_packets == 100)?;
    let (p1, p2) = (&s.ports[0], &s.ports[1]);
    check(p1.counters.rx_packets == 100 && p1.counters.rx_bytes == bytes, || format!("port 1 {:?}", p1.counters))?;
    check(p2.counters.tx_packets == 100 && p2.counters.tx_bytes == bytes, || format!("port 2 {:?}", p2.counters))?;
    check(p1.counters.drops() == 0 && p2.counters.drops() == 0, || "unexpected drops".into())?;
    let e1 = p1.eth.ok_or("no eth stats")?;
    let e2 = p2.eth.ok_or("no eth stats")?;
    check(e1.rx_packets == 100 && e2.tx_packets == 100, || format!("eth stats {e1:?} {e2:?}"))?;
    check(p1.link.up, || "ring link should be up".into())?;
    let pmd = &s.pmds[0];
    check(pmd.counters.packets == 100 && pmd.counters.busy_cycles > 0 && pmd.running, || format!("pmd {pmd:?}"))?;
    check(pmd.cycles_per_packet().is_some(), || "no cycles/packet".into())?;
    b.finish()?;
    Ok(())
}

fn flood_reaches_every_other_port() -> Result<(), Failed> {
    let mut b = bench(4, &[1024; 4], 1, 1, &[(1, ForwardRule::Flood)])?;
    let sent = frames(50, 200);
    b.send(1, &sent)?;
    for p in 2..=4 {
        let got = b.recv(p, 50, Duration::from_secs(3));
        check(got == sent, || format!("port {p} got {} frames, want the 50 sent", got.len()))?;
    }
    check(b.recv(1, 0, Duration::from_millis(10)).is_empty(), || "flood sent back to ingress".into())?;
    let s = b.wait_stats("tx counters", |s| s.ports[1..].iter().all(|p| p.counters.tx_packets == 50))?;
    check(s.ports[0].counters.rx_packets == 50, || format!("{:?}", s.ports[0].counters))?;
    b.finish()?;
    Ok(())
}

fn drop_rule_and_missing_rule_are_counted() -> Result<(), Failed> {
    let mut b = bench(2, &[1024, 1024], 1, 1, &[(1, ForwardRule::Drop)])?;
    b.send(1, &frames(10, 64))?;
    b.send(2, &frames(7, 64))?;
    let s =
        b.wait_stats("drops", |s| s.ports[0].counters.drop_action == 10 && s.ports[1].counters.drop_no_rule == 7)?;
    check(s.ports[0].counters.tx_packets == 0 && s.ports[1].counters.tx_packets == 0, || "something was sent".into())?;
    check(
        b.recv(2, 0, Duration::from_millis(20)).is_empty() && b.recv(1, 0, Duration::from_millis(1)).is_empty(),
        || "dropped packets came out".into(),
    )?;
    b.finish()?;
    Ok(())
}

fn runts_are_dropped_as_malformed() -> Result<(), Failed> {
    let mut b = bench(2, &[1024, 1024], 1, 1, &[(1, ForwardRule::Output(2))])?;
    let mut mixed: Vec<Vec<u8>> = (0..5).map(|i| vec![0xff; 1 + i * 2]).collect();
    mixed.push(udp_frame(9, 10));
    b.send(1, &mixed)?;
    let got = b.recv(2, 1, Duration::from_secs(2));
    check(got == vec![udp_frame(9, 10)], || format!("got {} frames", got.len()))?;
    let s = b.wait_stats("malformed", |s| s.ports[0].counters.drop_malformed == 5)?;
    check(s.ports[0].counters.rx_packets == 6, || format!("{:?}", s.ports[0].counters))?;
    b.finish()?;
    Ok(())
}

fn full_tx_queue_frees_and_counts() -> Result<(), Failed> {
    // The output ring holds 63 packets (size 64, one slot kept empty) and nobody drains it.
    let mut b = bench(2, &[1024, 64], 1, 1, &[(1, ForwardRule::Output(2))])?;
    b.send(1, &frames(200, 64))?;
    let s =
        b.wait_stats("tx accounting", |s| s.ports[1].counters.tx_packets + s.ports[1].counters.drop_tx_full == 200)?;
    let c = s.ports[1].counters;
    check(c.tx_packets == 63 && c.drop_tx_full == 137, || format!("port 2 {c:?}"))?;
    let got = b.recv(2, 63, Duration::from_secs(2));
    check(got.len() == 63, || format!("peer got {}", got.len()))?;
    b.finish()?;
    Ok(())
}

fn messages_change_rules_between_bursts() -> Result<(), Failed> {
    let mut b = bench(3, &[1024; 3], 1, 1, &[])?;
    b.send(1, &frames(5, 64))?;
    b.wait_stats("no rule", |s| s.ports[0].counters.drop_no_rule == 5)?;
    b.sw.send(0, ForwarderMessage::SetActions { in_port: 1, actions: Some(vec![DpAction::Output(3)]) })?;
    b.sw.barrier(Duration::from_secs(2))?;
    let sent = frames(5, 64);
    b.send(1, &sent)?;
    let got = b.recv(3, 5, Duration::from_secs(2));
    check(got == sent, || format!("after the message: {} frames on port 3", got.len()))?;
    let s = b.wait_stats("messages", |s| s.pmds[0].counters.messages >= 2)?;
    check(s.ports[0].counters.drop_no_rule == 5, || "no_rule changed".into())?;
    b.finish()?;
    Ok(())
}

fn edits_are_copy_on_write_per_output() -> Result<(), Failed> {
    let mut b = bench(3, &[1024; 3], 1, 1, &[])?;
    // Port 2 gets the frame as received, port 3 a VLAN-100 tagged copy with a new source MAC.
    let acts = vec![
        DpAction::Output(2),
        DpAction::PushVlan { tpid: 0x8100, tci: 0x1000 | (3 << 13) | 100 },
        DpAction::SetEthSrc([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]),
        DpAction::Output(3),
    ];
    b.sw.send(0, ForwarderMessage::SetActions { in_port: 1, actions: Some(acts) })?;
    // Tagged frames from port 2 are popped and sent to port 1.
    b.sw.send(
        0,
        ForwarderMessage::SetActions { in_port: 2, actions: Some(vec![DpAction::PopVlan, DpAction::Output(1)]) },
    )?;
    b.sw.barrier(Duration::from_secs(2))?;
    let sent = frames(3, 40);
    b.send(1, &sent)?;
    let plain = b.recv(2, 3, Duration::from_secs(2));
    let tagged = b.recv(3, 3, Duration::from_secs(2));
    check(plain == sent, || "port 2 frames changed".into())?;
    let mut want = Vec::new();
    for f in &sent {
        let mut t = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x81, 0x00, 0x60, 100];
        t.extend(&f[12..]);
        want.push(t);
    }
    check(tagged == want, || format!("port 3 got {:02x?}", tagged.first()))?;
    b.send(2, &want)?;
    let popped = b.recv(1, 3, Duration::from_secs(2));
    let mut want_popped = sent.clone();
    for f in &mut want_popped {
        f[6..12].copy_from_slice(&[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
    }
    check(popped == want_popped, || format!("popped {:02x?}", popped.first()))?;
    // L3 edits are flowcache's, whatever the classifier: DecTtl with the checksum updated.
    b.sw.send(
        0,
        ForwarderMessage::SetActions { in_port: 1, actions: Some(vec![DpAction::DecTtl, DpAction::Output(2)]) },
    )?;
    b.sw.barrier(Duration::from_secs(2))?;
    let sent = frames(2, 40);
    b.send(1, &sent)?;
    let got = b.recv(2, 2, Duration::from_secs(2));
    let ttl = |f: &[u8]| ferrovs_flowcache::extract::extract(f, 1).nw_ttl();
    check(
        got.len() == 2
            && got.iter().zip(&sent).all(|(g, s)| ttl(g) + 1 == ttl(s) && ferrovs_flowcache::testpkt::checksums_ok(g)),
        || format!("dec_ttl: {got:02x?}"),
    )?;
    b.finish()?;
    Ok(())
}

fn two_pmds_share_rx_queues() -> Result<(), Failed> {
    let mut b = bench(2, &[1024, 1024], 2, 2, &[(1, ForwardRule::Output(2)), (2, ForwardRule::Output(1))])?;
    let info = b.sw.pmd_info();
    check(info.len() == 2 && info.iter().all(|p| !p.rx_queues.is_empty()), || format!("{info:?}"))?;
    b.send_on(1, 0, &frames(40, 64))?;
    b.send_on(1, 1, &frames(40, 64))?;
    let got = b.recv(2, 80, Duration::from_secs(3));
    check(got.len() == 80, || format!("got {}", got.len()))?;
    let s = b.wait_stats("both pmds", |s| s.pmds.iter().map(|p| p.counters.packets).sum::<u64>() == 80)?;
    check(s.pmds.iter().all(|p| p.counters.packets == 40), || format!("{:?}", s.pmds))?;
    b.finish()?;
    Ok(())
}

/// The PMD polling rx queue `queue` of port `port` (by `pmd_info`).
fn pmd_of(sw: &Switch<ferrovs_pmd::ForwarderMessage>, port: &str, queue: u16) -> Option<usize> {
    sw.pmd_info().iter().find(|p| p.rx_queues.iter().any(|q| q.port_name == port && q.queue == queue)).map(|p| p.index)
}

fn rebalance_spreads_busy_queues() -> Result<(), Failed> {
    let mut b = bench(2, &[1024, 1024], 2, 2, &[(1, ForwardRule::Output(2)), (2, ForwardRule::Output(1))])?;
    // Each port's queue 0 on PMD 0, queue 1 on PMD 1 (least loaded, then fewest queues).
    let (p1q0, p2q0) = (pmd_of(&b.sw, "p1", 0), pmd_of(&b.sw, "p2", 0));
    check(p1q0 == Some(0) && p2q0 == Some(0), || format!("{:?}", b.sw.pmd_info()))?;
    // Load only the two queue-0s: PMD 0 does all the work.
    for _ in 0..20 {
        b.send_on(1, 0, &frames(32, 64))?;
        b.send_on(2, 0, &frames(32, 64))?;
        check(b.recv(2, 32, Duration::from_secs(3)).len() == 32, || "p1 -> p2".into())?;
        check(b.recv(1, 32, Duration::from_secs(3)).len() == 32, || "p2 -> p1".into())?;
    }
    let queued = |sw: &Switch<ferrovs_pmd::ForwarderMessage>| -> u64 {
        sw.pmd_info().iter().flat_map(|p| p.rx_queues.clone()).map(|q| q.packets).sum()
    };
    // Counters are published after the burst is sent: wait for the last one.
    let before = wait_for("queue counters", || queued(&b.sw), |n| *n == 1280)?;
    let moves = b.sw.rebalance_rxqs()?;
    let (p1q0, p2q0) = (pmd_of(&b.sw, "p1", 0), pmd_of(&b.sw, "p2", 0));
    check(p1q0.is_some() && p2q0.is_some() && p1q0 != p2q0, || format!("moves {moves:?}: {:?}", b.sw.pmd_info()))?;
    // The queues' history moved with them, and forwarding goes on from the new PMDs.
    let after = queued(&b.sw);
    check(before == 1280 && after == before, || format!("queue packets {before} then {after}"))?;
    b.send_on(1, 0, &frames(32, 64))?;
    b.send_on(2, 0, &frames(32, 64))?;
    check(b.recv(2, 32, Duration::from_secs(3)).len() == 32, || "p1 -> p2 after the move".into())?;
    check(b.recv(1, 32, Duration::from_secs(3)).len() == 32, || "p2 -> p1 after the move".into())?;
    b.finish()?;
    Ok(())
}

/// Which PMD polls each of `ports`' queues 0 and 1, in that order.
fn assignment(sw: &Switch<ForwarderMessage>, ports: &[&str]) -> Vec<Option<usize>> {
    ports.iter().flat_map(|p| [pmd_of(sw, p, 0), pmd_of(sw, p, 1)]).collect()
}

/// Sends 32 frames on queues 0 and 1 of each of p1 and p2 and checks they all cross.
fn all_queues_forward(b: &mut Bench) -> Result<(), Failed> {
    for q in 0..2 {
        b.send_on(1, q, &frames(32, 64))?;
        b.send_on(2, q, &frames(32, 64))?;
    }
    let (to2, to1) = (b.recv(2, 64, Duration::from_secs(3)).len(), b.recv(1, 64, Duration::from_secs(3)).len());
    check(to2 == 64 && to1 == 64, || format!("p1 -> p2 {to2}/64, p2 -> p1 {to1}/64"))
}

/// `rxq_affinity`: p1's queue 0 pinned to core 1 (PMD 1) is polled there, PMD 1 polls
/// nothing else (isolated), a rebalance under load keeps it so, a core without a PMD is
/// refused, and pins changed at run time move the queues; traffic flows on every queue
/// throughout.
fn pinned_queues_stay_and_isolate_their_pmd() -> Result<(), Failed> {
    let rules = [(1, ForwardRule::Output(2)), (2, ForwardRule::Output(1))];
    let mut b = bench_with(2, &[1024, 1024], 2, 2, &rules, |s| {
        if s.name == "p1" {
            s.rxq_affinity = vec![(0, 1)];
        }
    })?;
    let info = b.sw.pmd_info();
    let pinned_alone = vec![Some(1), Some(0), Some(0), Some(0)];
    check(assignment(&b.sw, &["p1", "p2"]) == pinned_alone, || format!("{info:?}"))?;
    check(info[1].isolated && !info[0].isolated && info[1].rx_queues.iter().all(|q| q.pinned), || format!("{info:?}"))?;
    all_queues_forward(&mut b)?;
    // Load the unpinned queues: PMD 0 is busy, PMD 1 idle, but isolated: nothing moves.
    for _ in 0..10 {
        all_queues_forward(&mut b)?;
    }
    let moves = b.sw.rebalance_rxqs()?;
    check(moves.is_empty() && assignment(&b.sw, &["p1", "p2"]) == pinned_alone, || {
        format!("moves {moves:?}: {:?}", b.sw.pmd_info())
    })?;
    // A core that runs no PMD is refused, with the reason, and changes nothing.
    match b.sw.set_rxq_affinity("p1", &[(0, 7)]) {
        Err(SwitchError::Invalid(m)) => check(m.contains("CPU 7 runs no PMD thread"), || m.clone())?,
        other => return Err(format!("pin to core 7: {other:?}").into()),
    }
    check(assignment(&b.sw, &["p1", "p2"]) == pinned_alone, || format!("{:?}", b.sw.pmd_info()))?;
    // p2's queue 1 pinned to core 0 as well: both PMDs isolated, both pins hold.
    b.sw.set_rxq_affinity("p2", &[(1, 0)])?;
    let a = assignment(&b.sw, &["p1", "p2"]);
    check(a[0] == Some(1) && a[3] == Some(0) && b.sw.pmd_info().iter().all(|p| p.isolated), || {
        format!("{:?}", b.sw.pmd_info())
    })?;
    all_queues_forward(&mut b)?;
    // Pins gone: no PMD isolated, every queue polled.
    b.sw.set_rxq_affinity("p1", &[])?;
    b.sw.set_rxq_affinity("p2", &[])?;
    let info = b.sw.pmd_info();
    check(info.iter().all(|p| !p.isolated && p.rx_queues.iter().all(|q| !q.pinned)), || format!("{info:?}"))?;
    check(assignment(&b.sw, &["p1", "p2"]).iter().all(Option::is_some), || format!("{info:?}"))?;
    all_queues_forward(&mut b)?;
    b.finish()?;
    Ok(())
}

/// A port polled after others, whose pin lands on a PMD that already polls unpinned
/// queues: those move off it (p1's queue 0 was on PMD 0, which p2's pinned queue 1 now
/// isolates), and every queue forwards.
fn a_later_pin_moves_unpinned_queues_off_its_pmd() -> Result<(), Failed> {
    let rules = [(1, ForwardRule::Output(2)), (2, ForwardRule::Output(1))];
    let mut b = bench_with(2, &[1024, 1024], 2, 2, &rules, |s| {
        if s.name == "p2" {
            s.rxq_affinity = vec![(1, 0)];
        }
    })?;
    let info = b.sw.pmd_info();
    check(assignment(&b.sw, &["p1", "p2"]) == vec![Some(1), Some(1), Some(1), Some(0)], || format!("{info:?}"))?;
    check(info[0].isolated && info[0].rx_queues.len() == 1, || format!("{info:?}"))?;
    all_queues_forward(&mut b)?;
    b.finish()?;
    Ok(())
}

/// An administratively down port drops what it receives and what is output to it (both
/// counted) while its device stays; up again, it forwards.
fn admin_down_drops_both_ways_in_place() -> Result<(), Failed> {
    let mut b = bench(2, &[1024, 1024], 1, 1, &[(1, ForwardRule::Output(2)), (2, ForwardRule::Output(1))])?;
    b.sw.set_port_admin("p2", true)?;
    b.send(1, &frames(10, 64))?;
    b.send(2, &frames(7, 64))?;
    let s = b.wait_stats("down drops", |s| {
        s.ports[1].counters.drop_admin_down_tx == 10 && s.ports[1].counters.drop_admin_down_rx == 7
    })?;
    let (to2, to1) = (b.recv(2, 1, Duration::from_millis(200)).len(), b.recv(1, 1, Duration::from_millis(50)).len());
    check(to2 == 0 && to1 == 0 && s.ports[0].counters.tx_packets == 0, || {
        format!("a down port passed frames: to p2 {to2}, to p1 {to1}; {:?}", s.ports)
    })?;
    b.sw.set_port_admin("p2", false)?;
    b.send(1, &frames(10, 64))?;
    b.send(2, &frames(10, 64))?;
    let (to2, to1) = (b.recv(2, 10, Duration::from_secs(3)).len(), b.recv(1, 10, Duration::from_secs(3)).len());
    check(to2 == 10 && to1 == 10, || format!("up again: to p2 {to2}/10, to p1 {to1}/10"))?;
    b.finish()?;
    Ok(())
}

fn bad_requests_fail_clearly() -> Result<(), Failed> {
    let eal = eal();
    let opts = test_options(1);
    let bad = [PortSpec::new("x", 1, "net_nosuchdriver0,foo=1")];
    match Switch::start_forwarder(eal, &bad, &opts, &[]) {
        Err(SwitchError::Port { port, source: DpdkError::DeviceRejected { devargs, .. } }) => {
            check(port == "x" && devargs == "net_nosuchdriver0,foo=1", || format!("{port} {devargs}"))?;
        }
        Err(e) => return Err(format!("wrong error: {e}").into()),
        Ok(_) => return Err("a bogus device was accepted".into()),
    }
    let bad_arg = [PortSpec::new("y", 1, "net_null9,no-such-arg=1")];
    let e = Switch::start_forwarder(eal, &bad_arg, &opts, &[]).err().ok_or("bad null args accepted")?;
    check(e.to_string().contains("net_null9,no-such-arg=1"), || format!("message does not name the devargs: {e}"))?;
    let dup = [PortSpec::new("a", 1, "net_null5"), PortSpec::new("a", 2, "net_null6")];
    check(matches!(Switch::start_forwarder(eal, &dup, &opts, &[]), Err(SwitchError::Duplicate(_))), || "dup".into())?;
    let nocore = SwitchOptions { pmd_cores: vec![4096], ..opts.clone() };
    let one = [PortSpec::new("a", 1, "net_null5")];
    match Switch::start_forwarder(eal, &one, &nocore, &[]) {
        Err(e @ SwitchError::NoSuchCore { .. }) => check(e.to_string().contains("4096"), || e.to_string())?,
        other => return Err(format!("missing core: {:?}", other.err()).into()),
    }
    // Nothing was probed by the failed starts above: net_null5 is still free.
    let id = probe(eal, "net_null5")?;
    check(matches!(probe(eal, "net_null5"), Err(DpdkError::DeviceRejected { .. })), || {
        "second probe of the same name".into()
    })?;
    let _ = id;
    Ok(())
}

fn null_ports_forward_and_close() -> Result<(), Failed> {
    // net_null generates packets on rx (size=64) and frees what it is sent: a real probed
    // device, forwarded for a moment, then stopped and closed.
    let eal = eal();
    let specs = [PortSpec::new("src", 1, "net_null20,size=64"), PortSpec::new("dst", 2, "net_null21,no-rx=1")];
    let sw = Switch::start_forwarder(eal, &specs, &test_options(1), &[(1, ForwardRule::Output(2))])?;
    let deadline = Instant::now() + Duration::from_secs(3);
    while sw.stats().ports[1].counters.tx_packets < 10_000 {
        check(Instant::now() < deadline, || format!("{:?}", sw.stats().ports))?;
        std::thread::sleep(Duration::from_millis(5));
    }
    let pool = sw.mempool().clone();
    let s = sw.stop();
    let c0 = s.ports[0].counters;
    let c1 = s.ports[1].counters;
    check(c0.rx_packets == c1.tx_packets + c1.drop_tx_full, || format!("{c0:?} {c1:?}"))?;
    check(pool.in_use() == 0, || format!("{} mbufs in use after stop", pool.in_use()))?;
    // Closed: the ethdev port is released.
    check(ferrovs_dpdk::port_by_name(eal, "net_null21").is_err(), || "port still exists after stop".into())?;
    Ok(())
}

fn mbuf_api_share_copy_prepend_adj() -> Result<(), Failed> {
    let eal = eal();
    let pool = Mempool::new(eal, &uniq("mpool"), 127, 0, ferrovs_pmd::spec::DEFAULT_DATA_ROOM, 0)?;
    let frame = udp_frame(1, 20);
    let mut m = pool.alloc_frame(&frame)?;
    check(m.data() == &frame[..] && m.pkt_len() == frame.len(), || "alloc_frame".into())?;
    let s = m.share();
    check(m.is_shared() && m.data_mut().is_none() && m.prepend(4).is_none(), || "shared must be read-only".into())?;
    let mut c = s.copy(&pool).ok_or("copy")?;
    check(pool.in_use() == 2, || format!("in use {}", pool.in_use()))?;
    drop(s);
    check(!m.is_shared(), || "refcnt".into())?;
    {
        let d = c.prepend(4).ok_or("prepend")?;
        d[..4].copy_from_slice(&[1, 2, 3, 4]);
    }
    check(c.data().len() == frame.len() + 4 && c.data()[4..] == frame[..], || "prepend data".into())?;
    check(c.adj(4) && c.data() == &frame[..], || "adj".into())?;
    check(!c.adj(5000), || "adj past the end".into())?;
    let mut batch = MbufBatch::new();
    batch.push(m).map_err(|_| "push")?;
    batch.push(c).map_err(|_| "push")?;
    for _ in 0..30 {
        batch.push(pool.alloc()?).map_err(|_| "push")?;
    }
    check(batch.is_full() && batch.push(pool.alloc()?).is_err(), || "batch capacity".into())?;
    {
        let mut it = batch.drain();
        let first = it.next().ok_or("drain")?;
        check(first.data() == &frame[..], || "drain order".into())?;
    } // rest freed by the iterator
    check(batch.is_empty() && pool.in_use() == 0, || format!("in use {}", pool.in_use()))?;
    check(pool.available() == 127, || format!("available {}", pool.available()))?;
    Ok(())
}

fn queues_are_taken_once() -> Result<(), Failed> {
    let eal = eal();
    let pool = Mempool::new(eal, &uniq("qpool"), 255, 0, ferrovs_pmd::spec::DEFAULT_DATA_ROOM, 0)?;
    let (a, _b): (PortId, PortId) = ring_port_pair(eal, &uniq("q"), 2, 256)?;
    let port = Port::configure(eal, a, &PortConfig { n_rxq: 2, n_txq: 1, rx_desc: 128, tx_desc: 128 }, &pool)?;
    let q0 = port.rx_queue(0)?;
    check(port.rx_queue(0).is_err(), || "rx queue 0 handed out twice".into())?;
    check(port.rx_queue(2).is_err() && port.tx_queue(1).is_err(), || "nonexistent queue".into())?;
    drop(q0);
    let _again = port.rx_queue(0)?;
    check(
        Port::configure(eal, a, &PortConfig { n_rxq: 5, n_txq: 1, rx_desc: 128, tx_desc: 128 }, &pool).is_err(),
        || "more queues than rings accepted".into(),
    )?;
    Ok(())
}

fn main() {
    let tests: Vec<(&str, common::TestFn)> = vec![
        ("mbuf_api_share_copy_prepend_adj", mbuf_api_share_copy_prepend_adj),
        ("queues_are_taken_once", queues_are_taken_once),
        ("output_forwards_in_order_and_counts", output_forwards_in_order_and_counts),
        ("flood_reaches_every_other_port", flood_reaches_every_other_port),
        ("drop_rule_and_missing_rule_are_counted", drop_rule_and_missing_rule_are_counted),
        ("runts_are_dropped_as_malformed", runts_are_dropped_as_malformed),
        ("full_tx_queue_frees_and_counts", full_tx_queue_frees_and_counts),
        ("messages_change_rules_between_bursts", messages_change_rules_between_bursts),
        ("edits_are_copy_on_write_per_output", edits_are_copy_on_write_per_output),
        ("two_pmds_share_rx_queues", two_pmds_share_rx_queues),
        ("rebalance_spreads_busy_queues", rebalance_spreads_busy_queues),
        ("pinned_queues_stay_and_isolate_their_pmd", pinned_queues_stay_and_isolate_their_pmd),
        ("admin_down_drops_both_ways_in_place", admin_down_drops_both_ways_in_place),
        ("a_later_pin_moves_unpinned_queues_off_its_pmd", a_later_pin_moves_unpinned_queues_off_its_pmd),
        ("bad_requests_fail_clearly", bad_requests_fail_clearly),
        ("null_ports_forward_and_close", null_ports_forward_and_close),
    ];
    common::run(tests)
}
