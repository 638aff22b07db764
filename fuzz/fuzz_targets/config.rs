//! Fuzzes the TOML switch config parser (`Config::from_str`) on arbitrary UTF-8.
//!
//! Properties: never panics, and an error names a position inside the text (line and
//! column from 1, the line at most the number of lines).
//!
//! `flows_file` makes the parser read a file; a fuzzer that writes `flows_file =
//! "/dev/zero"` would read forever. Inputs that could name that key (the literal name, or
//! a `\u`/`\U` escape that could spell it) are skipped, so the file reader is not fuzzed
//! here (the rules it reads are, by the `rules` target).
#![no_main]

use ferrovs_config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.contains("flows_file") || text.contains("\\u") || text.contains("\\U") {
        return;
    }
    // No file is read (see above), so the base directory does not matter.
    if let Err(e) = Config::from_str(text, ".") {
        if let Some(p) = e.position {
            let lines = text.split('\n').count() as u32;
            assert!(p.line >= 1 && p.line <= lines.max(1) && p.column >= 1, "{e} for {text:?}");
        }
        let _ = e.to_string();
    }
});
