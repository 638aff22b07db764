//! Fuzzes flow key extraction and the packet editor on arbitrary frame bytes.
//!
//! Beyond "never panics, never reads out of bounds" (libFuzzer plus Rust bounds checks),
//! it checks properties that hold for every input: extraction is deterministic, batch
//! extraction equals single extraction, a short frame yields only in_port, later
//! fragments carry no L4 fields, and an edit of a frame whose checksums verify leaves
//! checksums that verify.
#![no_main]

use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::edit::{EditOutcome, execute_edit, pop_vlan};
use ferrovs_flowcache::extract::{extract, extract_batch, layers};
use ferrovs_flowcache::key::{FRAG_LATER, FlowKey};
use ferrovs_flowcache::testpkt::{checksums_ok, routing_header_pending};
use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    // First byte chooses an edit; the rest is the frame.
    let (choice, frame) = match data.split_first() {
        Some((c, f)) => (*c, f),
        None => (0, data),
    };
    let k = extract(frame, 3);
    assert_eq!(k, extract(frame, 3));
    assert_eq!(k.in_port(), 3);
    if frame.len() < 14 {
        let mut want = FlowKey::ZERO;
        want.set_in_port(3);
        assert_eq!(k, want);
    }
    if k.nw_frag() & FRAG_LATER != 0 {
        assert_eq!((k.tp_src(), k.tp_dst(), k.tcp_flags()), (0, 0, 0));
    }
    let mut keys = [FlowKey::ZERO; 2];
    extract_batch(&[frame, frame], &[3, 4], &mut keys);
    assert_eq!(keys[0], k);
    let _ = layers(frame);

    let actions = [
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
        DpAction::SetTtl(9),
        DpAction::SetTpSrc(4242),
        DpAction::SetTpDst(8080),
    ];
    let mut buf = frame.to_vec();
    let ok_before = checksums_ok(&buf);
    let a = actions[choice as usize % actions.len()];
    // A destination rewrite behind a pending routing header rightly keeps the L4
    // checksum, which the checker cannot judge.
    let judgeable = !(matches!(a, DpAction::SetIpv6Dst(_)) && routing_header_pending(&buf));
    if execute_edit(&mut buf, &a) == EditOutcome::Applied && ok_before && judgeable {
        assert!(checksums_ok(&buf), "{a:?}");
    }
    let _ = pop_vlan(&mut buf);
});
