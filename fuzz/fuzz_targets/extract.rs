//! Fuzzes flow key extraction on arbitrary frame bytes.
//!
//! Beyond "never panics, never reads out of bounds" (libFuzzer plus Rust bounds checks),
//! it checks properties that hold for every input: extraction is deterministic, a short
//! frame yields only in_port, later fragments carry no L4 fields, a prefix of the frame
//! never gains L4 fields, only a neighbour-discovery message has ND fields
//! (`nd_fields`), and where the fast path for common frame shapes (`extract_common`)
//! takes a frame it gives exactly the general parse's key, with either VLAN limit. (The
//! `frames` target fuzzes the editor; the stable test
//! `flowcache/tests/extract_random.rs` compares extraction with a reference parser.)
#![no_main]

use ferrovs_flowcache::extract::{NdFields, extract, extract_common, extract_general, layers, nd_fields};
use ferrovs_flowcache::key::{FRAG_LATER, FlowKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte chooses where to cut the frame; the rest is the frame.
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
    // A prefix never gains L4 fields: a cut whose key has one is the whole frame's key.
    let cut = &frame[..choice as usize % (frame.len() + 1)];
    let p = extract(cut, 3);
    if (p.tp_src(), p.tp_dst(), p.tcp_flags()) != (0, 0, 0) {
        assert_eq!(p, k, "a prefix of {} bytes gained L4 fields", cut.len());
    }
    if let Some(fast) = extract_common(frame, 3) {
        assert_eq!(fast, extract_general(frame, 3, 1), "fast path vs general parse, vlan-limit 1");
        assert_eq!(fast, extract_general(frame, 3, 2), "fast path vs general parse, vlan-limit 2");
    }
    let _ = layers(frame);
    // ND fields only for what the key says is an ND message (ICMPv6 135/136, code 0).
    let nd_message = k.dl_type() == 0x86dd && k.nw_proto() == 58 && matches!(k.tp_src(), 135 | 136) && k.tp_dst() == 0;
    if !nd_message {
        assert_eq!(nd_fields(frame), NdFields::default());
    }
});
