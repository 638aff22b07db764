//! Malformed input: the decoder never panics, and each kind of damage maps to the
//! OFPT_ERROR type/code OVS sends for it, carrying the first 64 bytes of the message.
//! The messages here are laid out by hand (not by the encoder under test).

use ferrovs_config::openflow::{self, Body, OfpError, Version};

fn header(version: u8, t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![version, t];
    m.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    m.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// An OpenFlow 1.3 flow-mod (add, table 0) whose OXM match holds `tlvs` and whose
/// instructions are `instructions`.
fn flow_mod13(tlvs: &[u8], instructions: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&[0; 16]); // cookie, cookie_mask
    b.extend_from_slice(&[0, 0]); // table, command
    b.extend_from_slice(&[0, 0, 0, 0, 0x80, 0]); // idle, hard, priority
    b.extend_from_slice(&[0xff; 12]); // buffer_id, out_port, out_group
    b.extend_from_slice(&[0; 4]); // flags, pad
    b.extend_from_slice(&1u16.to_be_bytes());
    b.extend_from_slice(&((4 + tlvs.len()) as u16).to_be_bytes());
    b.extend_from_slice(tlvs);
    while b.len() % 8 != 0 {
        b.push(0);
    }
    b.extend_from_slice(instructions);
    header(4, 14, &b)
}

/// An apply-actions instruction holding `actions`.
fn apply(actions: &[u8]) -> Vec<u8> {
    let mut i = vec![0, 4];
    i.extend_from_slice(&((8 + actions.len()) as u16).to_be_bytes());
    i.extend_from_slice(&[0; 4]);
    i.extend_from_slice(actions);
    i
}

fn err(bytes: &[u8]) -> openflow::DecodeError {
    match openflow::decode(bytes) {
        Ok((m, _)) => panic!("decoded {m:?}"),
        Err(e) => e,
    }
}

fn assert_error(bytes: &[u8], want: OfpError, of13_pair: (u16, u16)) {
    let e = err(bytes);
    assert_eq!(e.error, want);
    assert_eq!(e.error.wire(Version::Of13), of13_pair);
    assert_eq!(e.data, bytes[..bytes.len().min(64)]);
    let reply = e.to_reply(Version::Of13);
    assert_eq!(reply.xid, 0x1234_5678);
    match reply.body {
        Body::Error(m) => assert_eq!((m.err_type, m.code), of13_pair),
        other => panic!("not an error: {other:?}"),
    }
}

const ETH_TYPE_IP: [u8; 6] = [0x80, 0, 0x0a, 2, 0x08, 0x00];

#[test]
fn a_valid_hand_made_flow_mod_decodes() {
    let output = [0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    let (m, _) = openflow::decode(&flow_mod13(&ETH_TYPE_IP, &apply(&output))).expect("valid");
    assert!(matches!(m.body, Body::FlowMod(_)));
}

#[test]
fn header_errors() {
    assert_error(&header(2, 5, &[]), OfpError::BadVersion, (1, 0));
    assert_error(&header(4, 99, &[]), OfpError::BadType, (1, 1));
    assert_error(&header(1, 24, &[]), OfpError::BadType, (1, 1)); // role request is 1.3 only
    // Length field beyond the buffer, and below the header size.
    let mut short = header(4, 2, &[1, 2, 3]);
    short.truncate(9);
    assert_eq!(err(&short).error, OfpError::BadLen);
    assert!(openflow::next_message_len(&[4, 2, 0, 4, 0, 0, 0, 0]).is_err());
    assert_eq!(openflow::next_message_len(&[4, 2, 0]).unwrap(), None);
    assert_eq!(openflow::next_message_len(&[4, 2, 0, 12, 0, 0, 0, 0]).unwrap(), Some(12));
    // A features request with a body.
    assert_error(&header(4, 5, &[0]), OfpError::BadLen, (1, 6));
}

#[test]
fn vendor_and_stats_errors() {
    assert_error(&header(1, 4, &[0, 0, 0x23, 0x20, 0, 0, 0, 99]), OfpError::BadSubtype, (1, 4));
    assert_error(&header(1, 4, &[0, 0, 0x12, 0x34, 0, 0, 0, 12]), OfpError::BadVendor, (1, 3));
    assert_error(&header(4, 18, &[0, 99, 0, 0, 0, 0, 0, 0]), OfpError::BadStat, (1, 2));
    assert_error(&header(1, 16, &[0, 6, 0, 0]), OfpError::BadStat, (1, 2)); // group stats: 1.3 only
}

#[test]
fn meter_mod_errors() {
    let band = [0, 1, 0, 16, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0]; // drop, rate 100
    let meter_mod = |command: u8, flags: u8, bands: &[u8]| {
        let mut b = vec![0, command, 0, flags, 0, 0, 0, 1];
        b.extend_from_slice(bands);
        header(4, 29, &b)
    };
    let (m, _) = openflow::decode(&meter_mod(0, 1, &band)).expect("valid");
    assert!(matches!(m.body, Body::MeterMod(ref mm) if mm.meter_id == 1 && mm.bands == band));
    assert_error(&meter_mod(3, 1, &band), OfpError::MeterModBadCommand, (12, 4));
    assert_error(&meter_mod(0, 3, &band), OfpError::MeterModBadFlags, (12, 5));
    assert_error(&meter_mod(0, 1, &band[..12]), OfpError::BadLen, (1, 6));
    assert_error(&header(1, 29, &[0; 8]), OfpError::BadType, (1, 1)); // 1.3 only
}

#[test]
fn match_errors() {
    // Unknown OXM basic field 60.
    assert_error(&flow_mod13(&[0x80, 0, 60 << 1, 2, 0, 0], &[]), OfpError::BadField, (4, 6));
    // A mask on eth_type, which takes none.
    assert_error(&flow_mod13(&[0x80, 0, 0x0b, 4, 8, 0, 0xff, 0xff], &[]), OfpError::BadMask, (4, 8));
    // Value bits outside the mask (ipv4_src 10.0.0.1/255.0.0.0).
    let masked = [0x80, 0, 0x17, 8, 10, 0, 0, 1, 255, 0, 0, 0];
    assert_error(&flow_mod13(&masked, &[]), OfpError::BadWildcards, (4, 5));
    // The same field twice.
    let dup = [ETH_TYPE_IP, ETH_TYPE_IP].concat();
    assert_error(&flow_mod13(&dup, &[]), OfpError::DupField, (4, 10));
    // A field whose length disagrees with its definition (eth_type with 3 bytes).
    assert_error(&flow_mod13(&[0x80, 0, 0x0a, 3, 8, 0, 0], &[]), OfpError::BadMatchLen, (4, 1));
    // vlan_pcp 9 does not fit in 3 bits.
    assert_error(&flow_mod13(&[0x80, 0, 7 << 1, 1, 9], &[]), OfpError::BadValue, (4, 7));
    // Match type 0 (OpenFlow 1.1's standard match) instead of OXM.
    let mut m = flow_mod13(&ETH_TYPE_IP, &[]);
    m[49] = 0;
    assert_error(&m, OfpError::BadMatchType, (4, 0));
}

#[test]
fn action_and_instruction_errors() {
    // Unknown action type 99.
    assert_error(&flow_mod13(&[], &apply(&[0, 99, 0, 8, 0, 0, 0, 0])), OfpError::BadActionType, (2, 0));
    // Output with length 8 (needs 16), and an action length not a multiple of 8.
    assert_error(&flow_mod13(&[], &apply(&[0, 0, 0, 8, 0, 0, 0, 1])), OfpError::BadActionLen, (2, 1));
    assert_error(
        &flow_mod13(&[], &apply(&[0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])),
        OfpError::BadActionLen,
        (2, 1),
    );
    // An unknown Nicira action subtype, and another vendor's action.
    let nx = |sub: u8| [0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, sub, 0, 0, 0, 0, 0, 0];
    assert_error(&flow_mod13(&[], &apply(&nx(250))), OfpError::BadActionVendorType, (2, 3));
    let mut other = nx(1);
    other[6] = 0x99;
    assert_error(&flow_mod13(&[], &apply(&other)), OfpError::BadActionVendor, (2, 2));
    // set_field of an unknown field.
    let set = [0, 25, 0, 16, 0x80, 0, 60 << 1, 2, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_error(&flow_mod13(&[], &apply(&set)), OfpError::BadSetType, (2, 13));
    // reg_load past the end of reg0 (ofs 16, 32 bits).
    let load = [0xff, 0xff, 0, 24, 0, 0, 0x23, 0x20, 0, 7, 4, 31, 0, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1];
    assert_error(&flow_mod13(&[], &apply(&load)), OfpError::BadSetLen, (2, 14));
    // Unknown instruction 7, and a goto-table of the wrong length.
    assert_error(&flow_mod13(&[], &[0, 7, 0, 8, 0, 0, 0, 0]), OfpError::UnknownInstruction, (3, 0));
    assert_error(
        &flow_mod13(&[], &[0, 1, 0, 16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        OfpError::BadInstructionLen,
        (3, 7),
    );
    // Flow-mod command 9.
    let mut m = flow_mod13(&[], &[]);
    m[8 + 17] = 9;
    assert_error(&m, OfpError::FlowModBadCommand, (5, 6));
}

#[test]
fn openflow10_codes_follow_ovs() {
    assert_eq!(OfpError::BadField.wire(Version::Of10), (0, 263));
    assert_eq!(OfpError::BadSetType.wire(Version::Of10), (1, 523));
    assert_eq!(OfpError::FlowModBadCommand.wire(Version::Of10), (3, 4));
    assert_eq!(OfpError::BadInstructionLen.wire(Version::Of10), (1, 521));
    assert_eq!(OfpError::from_wire(Version::Of10, 1, 523), Some(OfpError::BadSetType));
    assert_eq!(OfpError::from_wire(Version::Of13, 4, 6), Some(OfpError::BadField));
}

/// Every prefix of every captured message, with the header length fixed up to the
/// prefix, and every single-byte corruption: decoding returns, never panics.
#[test]
fn truncated_and_corrupted_captures_never_panic() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openflow_golden");
    let mut n = 0u64;
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("hex") {
            continue;
        }
        for line in std::fs::read_to_string(&path).expect("read").lines().filter(|l| !l.starts_with('#')) {
            let msg: Vec<u8> =
                (0..line.len()).step_by(2).map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap()).collect();
            for cut in 0..=msg.len() {
                let mut m = msg[..cut].to_vec();
                if cut >= 4 {
                    m[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
                }
                let _ = openflow::decode(&m);
                n += 1;
            }
            for i in 0..msg.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut m = msg.clone();
                    m[i] ^= flip;
                    if let Ok((decoded, len)) = openflow::decode(&m) {
                        assert!(len <= m.len());
                        // Whatever decodes must encode again.
                        let _ = openflow::encode(&decoded);
                    }
                    n += 1;
                }
            }
        }
    }
    assert!(n > 10_000, "only {n} inputs tried");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 20_000, ..Default::default() })]

    /// Random bodies under every message type of both versions: decode returns.
    #[test]
    fn random_bodies_never_panic(
        version in proptest::sample::select(vec![1u8, 4]),
        t in 0u8..32,
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
    ) {
        let m = header(version, t, &body);
        if let Ok((decoded, _)) = openflow::decode(&m) {
            let _ = openflow::encode(&decoded);
        }
    }
}
