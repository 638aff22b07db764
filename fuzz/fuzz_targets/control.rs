//! Fuzzes the parsing of the daemon's control requests (one JSON object per line).
//!
//! The daemon is adding `ferrovs_daemon::protocol::parse_request(&[u8])`; until it is
//! there, this fuzzes what the server decodes a request line with today,
//! `serde_json::from_slice::<Request>`. Switch to `parse_request` when it lands (its
//! length limit and error text then get fuzzed too).
//!
//! Properties: never panics; an accepted request serializes and parses back to itself,
//! and `is_mutating` answers for it.
#![no_main]

use ferrovs_daemon::protocol::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<Request>(data) else { return };
    let _ = req.is_mutating();
    let text = serde_json::to_vec(&req).expect("a request serializes");
    let again: Request = serde_json::from_slice(&text).expect("a serialized request parses");
    assert_eq!(again, req, "{}", String::from_utf8_lossy(&text));
});
