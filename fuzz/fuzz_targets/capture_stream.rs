//! Fuzzes the reading of a capture stream (what ferrovs-ctl reads from ferrovsd after a
//! `capture` reply) with exactly the function ferrovs-ctl calls:
//! `protocol::capture::read_record`, record after record until the end record or an error.
//!
//! Properties: never panics; every frame it accepts encodes back to exactly the bytes it
//! was read from, and its captured length is within the record limit and its wire length;
//! an accepted end record's summary encodes back to a record that reads the same.
#![no_main]

use ferrovs_daemon::protocol::capture::{MAX_FRAME_BYTES, Record, encode_end, encode_frame, read_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        let before = rest;
        match read_record(&mut rest) {
            Ok(Record::Frame(f)) => {
                assert!(!f.data.is_empty() && f.data.len() <= MAX_FRAME_BYTES as usize);
                assert!(f.orig_len as usize >= f.data.len());
                let mut again = Vec::new();
                encode_frame(&mut again, f.timestamp_ns, f.orig_len, f.direction, &f.data);
                assert_eq!(again, before[..before.len() - rest.len()]);
            }
            Ok(Record::End(end)) => {
                let mut again = Vec::new();
                encode_end(&mut again, &end);
                assert_eq!(read_record(&mut &again[..]), Ok(Record::End(end)));
                return;
            }
            Err(_) => return,
        }
    }
});
