//! Runs key extraction and the packet editor over millions of random and mutated frames
//! in a normal (stable, non-fuzz) test, so CI exercises the parser's bounds handling.
//!
//! Frames are real frames from `testpkt` (TCP/UDP/ICMP/SCTP over IPv4, IPv6 with
//! extension headers and fragments, ARP, VLAN/QinQ, LLC/SNAP) mutated by bit flips,
//! byte overwrites at header offsets, truncation and extension, plus fully random bytes.
//! Each frame is checked for properties that hold for any input:
//! - extraction never panics and is deterministic;
//! - a frame shorter than 14 bytes yields only `in_port`;
//! - a later fragment has no L4 fields;
//! - extracting a prefix of the frame never yields L4 fields the full frame lacks
//!   unless the IP length fields changed meaning (checked only for untouched lengths);
//! - every packet edit is panic-free, and rewrites of a frame with verifying checksums
//!   leave checksums that verify.
//!
//! Default 2,000,000 frames; `FERROVS_FUZZ_FRAMES=N` changes it.

use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::edit::{EditOutcome, execute_edit, pop_vlan};
use ferrovs_flowcache::extract::{extract, extract_batch};
use ferrovs_flowcache::key::{FRAG_LATER, FlowKey};
use ferrovs_flowcache::testpkt::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn seeds() -> Vec<Vec<u8>> {
    let sctp = [0x0b, 0x59, 0x0b, 0x5a, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 4];
    let icmp6 = [128u8, 0, 0, 0, 0, 1, 0, 1];
    let udp = [0u8, 53, 0x30, 0x39, 0, 8, 0, 0];
    let mut s = vec![
        tcp4_frame(&TCP4),
        tcp4_frame_with_options(&TCP4, &[1, 1, 1, 0]),
        udp4_frame(5353, 53, b"abc"),
        icmp4_frame(8, 0),
        ipv4_frame(132, &sctp),
        arp_frame(1),
        ipv6_frame(6, 0x20, &[], &tcp_header(1, 2, 0x12, 6)),
        ipv6_frame(58, 0, &[], &icmp6),
        ipv6_frame_ext(&[ExtHdr::Opts(0, 0), ExtHdr::Opts(43, 1), ExtHdr::Ah(1)], 17, &udp),
        ipv6_frame_ext(&[ExtHdr::Frag { offset: 0, more: true }], 17, &udp),
        ipv6_frame_ext(&[ExtHdr::Frag { offset: 7, more: false }], 6, &tcp_header(1, 2, 2, 5)),
    ];
    let tagged: Vec<Vec<u8>> = s.iter().map(|f| with_vlan(f, 0x8100, 0x2064)).collect();
    let qinq: Vec<Vec<u8>> = tagged.iter().take(4).map(|f| with_vlan(f, 0x88a8, 0x0005)).collect();
    s.extend(tagged);
    s.extend(qinq);
    // LLC/SNAP carrying IPv4.
    let ip = tcp4_frame(&TCP4);
    let mut snap = ip[..12].to_vec();
    snap.extend_from_slice(&((ip.len() - 14 + 8) as u16).to_be_bytes());
    snap.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
    snap.extend_from_slice(&ip[14..]);
    s.push(snap);
    s
}

fn mutate(rng: &mut SplitMix, seed: &[u8], out: &mut Vec<u8>) {
    out.clear();
    match rng.index(10) {
        0 => {
            // Fully random bytes.
            let len = rng.index(128);
            out.extend((0..len).map(|_| rng.next_u64() as u8));
            // Sometimes with a plausible EtherType so deeper layers are reached.
            if len >= 14 && rng.index(2) == 0 {
                let t: [u16; 6] = [0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x0030];
                out[12..14].copy_from_slice(&t[rng.index(6)].to_be_bytes());
            }
            return;
        }
        _ => out.extend_from_slice(seed),
    }
    let n = 1 + rng.index(4);
    for _ in 0..n {
        if out.is_empty() {
            break;
        }
        match rng.index(6) {
            0 => {
                let i = rng.index(out.len());
                out[i] ^= 1 << rng.index(8);
            }
            1 => {
                let i = rng.index(out.len());
                out[i] = rng.next_u64() as u8;
            }
            2 => {
                // Header bytes that steer parsing: type, IHL, lengths, next headers.
                let spots = [12usize, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 46, 54, 55, 56, 57];
                let i = spots[rng.index(spots.len())];
                if i < out.len() {
                    out[i] = rng.next_u64() as u8;
                }
            }
            3 => {
                let len = rng.index(out.len() + 1);
                out.truncate(len);
            }
            4 => {
                let extra = rng.index(16);
                out.extend((0..extra).map(|_| rng.next_u64() as u8));
            }
            _ => {
                let i = rng.index(out.len());
                let j = rng.index(out.len());
                out.swap(i, j);
            }
        }
    }
}

fn check_key(frame: &[u8], k: &FlowKey) {
    assert_eq!(k.in_port(), 5);
    if frame.len() < 14 {
        let mut want = FlowKey::ZERO;
        want.set_in_port(5);
        assert_eq!(*k, want);
    }
    if k.nw_frag() & FRAG_LATER != 0 {
        assert_eq!((k.tp_src(), k.tp_dst(), k.tcp_flags()), (0, 0, 0));
    }
}

const EDITS: [DpAction; 12] = [
    DpAction::SetEthSrc([2, 0, 0, 0, 0, 1]),
    DpAction::SetVlanVid(77),
    DpAction::SetVlanPcp(5),
    DpAction::SetIpv4Src(Ipv4Addr::new(172, 16, 0, 1)),
    DpAction::SetIpv4Dst(Ipv4Addr::new(198, 51, 100, 7)),
    DpAction::SetIpv6Src(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9)),
    DpAction::SetIpv6Dst(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 9)),
    DpAction::SetIpDscp(46),
    DpAction::SetIpEcn(2),
    DpAction::DecTtl,
    DpAction::SetTpSrc(4242),
    DpAction::SetTpDst(8080),
];

#[test]
fn millions_of_mutated_frames() {
    let total: usize = std::env::var("FERROVS_FUZZ_FRAMES").ok().and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    let seeds = seeds();
    let mut rng = SplitMix(0x5eed_f00d);
    let mut frame = Vec::with_capacity(256);
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut keys = [FlowKey::ZERO; 32];
    let (mut with_l4, mut verified_edits) = (0usize, 0usize);
    for n in 0..total {
        let seed = &seeds[rng.index(seeds.len())];
        mutate(&mut rng, seed, &mut frame);
        let k = extract(&frame, 5);
        assert_eq!(k, extract(&frame, 5));
        check_key(&frame, &k);
        if k.tp_src() != 0 || k.tp_dst() != 0 {
            with_l4 += 1;
        }
        // Every 8th frame: run one edit; if the frame verified before, it must after.
        if n % 8 == 0 {
            let ok_before = checksums_ok(&frame);
            let a = EDITS[rng.index(EDITS.len())];
            let outcome = execute_edit(&mut frame, &a);
            // The checker takes the IPv6 destination field as the pseudo-header's
            // destination; behind a routing header with segments left that is not the
            // final destination, and a destination rewrite rightly leaves the L4
            // checksum alone, so the checker cannot judge that case.
            let unjudgeable = matches!(a, DpAction::SetIpv6Dst(_)) && routing_header_pending(&frame);
            if ok_before && outcome == EditOutcome::Applied && !unjudgeable {
                assert!(checksums_ok(&frame), "{a:?} broke checksums of {frame:02x?}");
                verified_edits += 1;
            }
            let _ = pop_vlan(&mut frame);
        }
        batch.push(frame.clone());
        if batch.len() == 32 {
            let ports = [5u32; 32];
            extract_batch(&batch, &ports, &mut keys);
            for (f, k) in batch.iter().zip(&keys) {
                assert_eq!(*k, extract(f, 5));
            }
            batch.clear();
        }
    }
    // The mutations must keep reaching deep layers, or the test proves little.
    assert!(with_l4 > total / 10, "only {with_l4} of {total} frames reached L4");
    assert!(verified_edits > total / 80, "only {verified_edits} edits were checksum-verified");
}
