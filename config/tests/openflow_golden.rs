//! Golden tests: the bytes `ovs-ofctl` 3.1 sent for each captured subcommand
//! (`openflow_golden/*.hex`, made by `openflow_golden/capture-all.sh`) must decode, and
//! encoding the decoded message must reproduce them exactly.

use std::path::PathBuf;

use ferrovs_config::openflow::{self, Body, Message};

struct Capture {
    name: String,
    command: String,
    /// Messages per connection, in order.
    connections: Vec<Vec<Vec<u8>>>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn captures() -> Vec<Capture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openflow_golden");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("hex") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let mut cap = Capture {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            command: String::new(),
            connections: Vec::new(),
        };
        for line in text.lines() {
            if let Some(c) = line.strip_prefix("# command: ") {
                cap.command = c.to_owned();
            } else if line.starts_with("# connection") {
                cap.connections.push(Vec::new());
            } else if line.starts_with("# exit: ") {
                assert_eq!(line, "# exit: 0", "{}: ovs-ofctl failed during capture", cap.name);
            } else if !line.starts_with('#') && !line.is_empty() {
                cap.connections.last_mut().expect("connection line first").push(hex(line));
            }
        }
        out.push(cap);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() >= 40, "captures missing: {}", out.len());
    out
}

fn decode_exact(name: &str, bytes: &[u8]) -> Message {
    let (m, len) = openflow::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e:?} decoding {bytes:02x?}"));
    assert_eq!(len, bytes.len(), "{name}: length");
    m
}

#[test]
fn every_captured_message_decodes_and_reencodes_byte_for_byte() {
    let mut failures = Vec::new();
    let mut n = 0;
    for cap in captures() {
        for conn in &cap.connections {
            for bytes in conn {
                n += 1;
                match openflow::decode(bytes) {
                    Err(e) => failures.push(format!("{}: decode {:?} of {}", cap.name, e.error, hexs(bytes))),
                    Ok((m, _)) => match openflow::encode(&m) {
                        Err(e) => failures.push(format!("{}: encode {e} of {m:?}", cap.name)),
                        Ok(back) if back != *bytes => failures.push(format!(
                            "{} ({}): re-encoded differs\n  want {}\n  got  {}\n  {m:?}",
                            cap.name,
                            cap.command,
                            hexs(bytes),
                            hexs(&back)
                        )),
                        Ok(_) => {}
                    },
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {n} messages failed:\n{}", failures.len(), failures.join("\n"));
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A short name of a message's kind, to state each subcommand's sequence compactly.
fn kind(m: &Message) -> String {
    use openflow::MpRequest;
    match &m.body {
        Body::MultipartRequest(r) => match &r.body {
            MpRequest::Flow(_) => "FLOW_STATS".into(),
            MpRequest::Aggregate(_) => "AGGREGATE_STATS".into(),
            MpRequest::NxFlow(_) => "NXST_FLOW".into(),
            MpRequest::NxAggregate(_) => "NXST_AGGREGATE".into(),
            other => format!("{other:?}").to_uppercase().replace("(", "_STATS(").replace("DESC", "_DESC"),
        },
        other => {
            let s = format!("{other:?}");
            s.split(['(', ' ', '{']).next().unwrap_or_default().to_owned()
        }
    }
}
