//! Packet capture on the PMD (`ferrovs_pmd::capture`) over net_ring ports: an armed
//! capture gets every received and every sent frame of its port, byte for byte, while
//! forwarding delivers all of them; the PMD allocates nothing while it copies; a capture
//! without free buffers drops from the capture only (counted), never from forwarding; a
//! disarmed port is not copied.
//!
//! One EAL per process, so this is a `harness = false` binary like `ring`.

use std::time::Duration;

use ferrovs_dpdk::alloc_count::{CountingAllocator, allocations};
use ferrovs_dpdk::{Mempool, ring_port_pair};
use ferrovs_flowcache::testpkt::{Ipv4Hdr, eth_header, ipv4_header, udp_segment};
use ferrovs_pmd::capture::{CaptureHandle, Direction};
use ferrovs_pmd::{ForwardRule, Forwarder, PortSpec, Switch, SwitchOptions};
use libtest_mimic::Failed;

mod common;
use common::{Counted, CountedMsg, Peer, check, eal, stop_and_check_pools, uniq};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn frame(seq: u16) -> Vec<u8> {
    let udp = udp_segment(1000 + seq, 53, &seq.to_be_bytes());
    let ip = Ipv4Hdr { id: seq, ..Ipv4Hdr::new([198, 18, 0, 1], [198, 18, 0, 2], 17) };
    let mut f = eth_header([0x02, 0, 0, 0, 0, 0x02], [0x02, 0, 0, 0, 0, 0x01], 0x0800);
    f.extend(ipv4_header(&ip, &[], udp.len()));
    f.extend(udp);
    f
}

/// Every frame the capture holds now: (direction, bytes, wire length).
fn take_all(h: &CaptureHandle) -> Vec<(Direction, Vec<u8>, u32)> {
    let mut out = Vec::new();
    while let Some(b) = h.try_next() {
        out.extend(b.frames().map(|f| (b.direction, f.bytes.to_vec(), f.orig_len)));
        h.recycle(b);
    }
    out
}

fn armed_capture_copies_without_allocating() -> Result<(), Failed> {
    let eal = eal();
    let pool = Mempool::new(eal, &uniq("cpool"), 4095, 0, ferrovs_pmd::spec::DEFAULT_DATA_ROOM, 0)?;
    let mut specs = Vec::new();
    let mut peers = Vec::new();
    for i in 0..3u32 {
        let (a, b) = ring_port_pair(eal, &uniq("cr"), 1, 1024)?;
        specs.push(PortSpec::existing(format!("p{}", i + 1), i + 1, a));
        peers.push(Peer::open(b, 1, &pool)?);
    }
    let options = SwitchOptions {
        pmd_cores: vec![1 % ferrovs_pmd::online_cpus().len()],
        pin_threads: true,
        n_mbufs: 2047,
        mbuf_cache: 32,
        ..Default::default()
    };
    let fwd = Forwarder::new(&[1, 2, 3], &[(1, ForwardRule::Output(2)), (3, ForwardRule::Output(2))])?;
    let sw = Switch::start(eal, &specs, &options, |_| Counted(fwd.clone()))?;
    let taps = sw.capture().clone();

    // Port 1 is captured (what it receives), port 2 too (what is sent to it).
    let rx_cap = taps.arm(1, 256)?;
    let tx_cap = taps.arm(2, 256)?;
    let sent: Vec<Vec<u8>> = (0..100).map(frame).collect();
    sw.send(0, CountedMsg::Count(true))?;
    sw.barrier(Duration::from_secs(2))?;
    let a0 = allocations();
    peers[0].send(&pool, 0, &sent)?;
    let got = peers[1].recv(sent.len(), Duration::from_secs(3));
    sw.send(0, CountedMsg::Count(false))?;
    sw.barrier(Duration::from_secs(2))?;
    let allocs = allocations() - a0;
    check(got == sent, || format!("forwarded {} of {} frames", got.len(), sent.len()))?;
    check(allocs == 0, || format!("the PMD allocated {allocs} times while capturing"))?;
    let want = |d: Direction| sent.iter().map(|f| (d, f.clone(), f.len() as u32)).collect::<Vec<_>>();
    check(take_all(&rx_cap) == want(Direction::Rx), || "port 1's capture is not the received frames".into())?;
    check(take_all(&tx_cap) == want(Direction::Tx), || "port 2's capture is not the sent frames".into())?;
    check(rx_cap.dropped() == 0 && tx_cap.dropped() == 0, || "drops with enough buffers".into())?;

    // Traffic on port 3 (also to port 2) is not in port 1's capture.
    peers[2].send(&pool, 0, &sent[..10])?;
    check(peers[1].recv(10, Duration::from_secs(3)).len() == 10, || "port 3 not forwarded".into())?;
    std::thread::sleep(Duration::from_millis(20));
    check(take_all(&rx_cap).is_empty(), || "port 3's frames in port 1's capture".into())?;
    check(take_all(&tx_cap).len() == 10, || "port 2's capture missed port 3's frames".into())?;
    drop(tx_cap);

    // One buffer (one burst) and nobody reading: the first burst is captured, the rest
    // counted as capture drops, and forwarding loses nothing.
    drop(rx_cap);
    let small = taps.arm(1, 1)?;
    peers[0].send(&pool, 0, &sent)?;
    let got = peers[1].recv(sent.len(), Duration::from_secs(3));
    check(got == sent, || format!("forwarded {} of {} with the capture full", got.len(), sent.len()))?;
    let kept = take_all(&small).len();
    let dropped = small.dropped() as usize;
    check((1..=32).contains(&kept) && kept + dropped == sent.len(), || {
        format!("{kept} frames captured and {dropped} dropped of {}", sent.len())
    })?;

    // Disarmed: nothing is copied any more (a fresh capture of the slot starts empty).
    drop(small);
    peers[0].send(&pool, 0, &sent[..32])?;
    check(peers[1].recv(32, Duration::from_secs(3)).len() == 32, || "forwarding after disarm".into())?;
    let fresh = taps.arm(1, 1)?;
    check(take_all(&fresh).is_empty() && fresh.dropped() == 0, || "frames copied while disarmed".into())?;
    drop(fresh);

    stop_and_check_pools(sw, peers, &pool)
}

fn main() {
    common::run(vec![("armed_capture_copies_without_allocating", armed_capture_copies_without_allocating)]);
}
