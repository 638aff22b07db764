//! Fuzzes the rule journal's reader (`persist::journal::replay`), which runs at start
//! over a file a crash may have cut anywhere, on arbitrary UTF-8 over a fixed flows file.
//!
//! Properties: never panics; an error names a line of the journal; a stale journal
//! changes nothing; what is replayed holds each rule text once; the part it reports whole
//! (where an append may follow) replays alone to the same; and a journal cut at any
//! byte replays a prefix of its whole records (never an error, never part of a record).
#![no_main]

use ferrovs_config::persist::journal::{self, LineOrigin, Replayed};
use libfuzzer_sys::fuzz_target;

const STAMP: journal::FlowsStamp = journal::FlowsStamp { generation: 1, hash: 0x5eed };

const BASE: [&str; 3] = ["in_port=1 actions=output:2", "priority=7,tcp actions=drop", "actions=drop"];

fn base() -> Vec<(&'static str, LineOrigin)> {
    BASE.iter().zip(2u32..).map(|(t, n)| (*t, LineOrigin::Flows(n))).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = base();
    match journal::replay(&mut lines, Some(STAMP), text) {
        Ok(Replayed::Stale) => assert_eq!(lines, base()),
        Ok(Replayed::Applied { records, whole_bytes }) => {
            let mut texts: Vec<&str> = lines.iter().map(|(t, _)| *t).collect();
            texts.sort_unstable();
            let n = texts.len();
            texts.dedup();
            assert_eq!(texts.len(), n, "a rule twice after {text:?}");
            // The whole part alone (what an append may follow) replays the same.
            assert!(whole_bytes <= text.len() && text.is_char_boundary(whole_bytes), "{whole_bytes} of {text:?}");
            let mut again = base();
            let whole_part = journal::replay(&mut again, Some(STAMP), &text[..whole_bytes]);
            assert_eq!(whole_part, Ok(Replayed::Applied { records, whole_bytes }), "the whole part of {text:?}");
            assert_eq!(again, lines, "the whole part of {text:?}");
        }
        Err(e) => assert!(e.line >= 1 && e.line as usize <= text.split('\n').count(), "{e:?} for {text:?}"),
    }
    // The input's lines as edits of a well-formed journal, cut at every byte.
    let edits: Vec<journal::RuleTextEdit> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.contains('\r'))
        .take(8)
        .map(|l| journal::RuleTextEdit::Add(l.to_string()))
        .collect();
    let mut whole = journal::journal_header("br0.flows", STAMP);
    for e in &edits {
        whole.push_str(std::str::from_utf8(&journal::record(std::slice::from_ref(e))).expect("UTF-8 record"));
    }
    let mut before = 0;
    for cut in (0..=whole.len()).filter(|&c| whole.is_char_boundary(c)) {
        let mut lines = base();
        match journal::replay(&mut lines, Some(STAMP), &whole[..cut]) {
            Ok(Replayed::Applied { records: n, whole_bytes }) => {
                assert!(n >= before && n <= edits.len(), "cut at {cut}: {n} records after {before}");
                assert!(whole_bytes <= cut, "cut at {cut}: whole up to {whole_bytes}");
                before = n;
            }
            Ok(Replayed::Stale) => assert_eq!(before, 0, "cut at {cut}: stale after records"),
            // A text already in the flows file, or added twice, is an error whatever the cut.
            Err(_) => return,
        }
    }
    assert_eq!(before, edits.len(), "the whole journal replays every record");
});
