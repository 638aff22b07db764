//! Fuzzes the OpenFlow decoder (`ferrovs_config::openflow`) with arbitrary bytes, as a
//! switch reads them from a controller or `ovs-ofctl`.
//!
//! Properties: `next_message_len` and `decode` never panic; a decoded message is no
//! longer than the input and agrees with the framing; a decoded message that encodes
//! again decodes to itself (the encoder may refuse what it cannot represent); the
//! conversion into the rule model (a flow-mod's rule, a packet-out's actions) never
//! panics.
#![no_main]

use ferrovs_config::openflow::convert::{WireRule, packet_out_actions_from_wire, rule_from_wire};
use ferrovs_config::openflow::{Body, decode, encode, next_message_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let framed = next_message_len(data);
    let Ok((msg, used)) = decode(data) else { return };
    assert!(used <= data.len());
    if let Ok(Some(len)) = framed {
        assert_eq!(len, used, "framing and decoding disagree");
    }
    match &msg.body {
        Body::FlowMod(fm) | Body::NxFlowMod(fm) => {
            let _ = rule_from_wire(&WireRule::of(fm));
        }
        Body::PacketOut(po) => {
            let _ = packet_out_actions_from_wire(&po.actions);
        }
        _ => {}
    }
    let Ok(bytes) = encode(&msg) else { return };
    let (again, n) = decode(&bytes).expect("an encoded message decodes");
    assert_eq!(n, bytes.len());
    assert_eq!(again, msg);
});
