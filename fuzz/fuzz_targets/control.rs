//! Fuzzes the parsing of the daemon's control requests (one JSON object per line), with
//! exactly the function the control socket calls: `protocol::parse_request` (size cap,
//! UTF-8 check, JSON, known commands and fields).
//!
//! Properties: never panics; an accepted request survives a round trip through its wire
//! form (`parse_request(&r.to_line()) == Ok(r)`), and `is_mutating` answers for it.
#![no_main]

use ferrovs_daemon::protocol::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = parse_request(data) else { return };
    let _ = req.is_mutating();
    let line = req.to_line();
    assert_eq!(parse_request(&line), Ok(req), "{}", String::from_utf8_lossy(&line));
});
