//! What ferrovs-ctl asks, and [`parse_request`], the one function that turns a request
//! line into a [`Request`] (the control socket calls it, and so can a fuzz target).

use serde::{Deserialize, Serialize};

use super::MAX_REQUEST_BYTES;

/// A request from ferrovs-ctl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Bridges, ports, link state and port counters.
    Show,
    /// Per-PMD counters: packets, cycles per packet, busy/idle cycles, cache hits.
    PmdStatsShow,
    /// Zero the PMD cycle counters (port counters are never reset).
    PmdStatsClear,
    /// Reassign rx queues to PMDs by their measured load since the last rebalance.
    PmdRxqRebalance,
    /// Stop the daemon cleanly.
    Stop,
    /// Add one rule in ovs-ofctl syntax to a bridge. `protocol`: the OpenFlow version the
    /// rule is read in, as `ovs-ofctl -O` names it (absent: OpenFlow10, its default).
    AddFlow {
        bridge: String,
        flow: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
    },
    /// Add several rules atomically (each element one or more lines of rules).
    AddFlows {
        bridge: String,
        flows: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
    },
    /// Add the rules of a file atomically: exactly `bytes` bytes of rule text in
    /// `ovs-ofctl add-flows` syntax (one rule per line, `#` comments) follow the request
    /// line on the connection (see the protocol module doc). Answered by `add-flows`.
    AddFlowsStream {
        bridge: String,
        bytes: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
    },
    /// Delete rules matching (non-strictly) a match in ovs-ofctl syntax; all when None.
    DelFlows {
        bridge: String,
        #[serde(default)]
        r#match: Option<String>,
    },
    /// The rules with their counters.
    DumpFlows { bridge: String },
    /// The megaflows installed in every PMD.
    DumpDpFlows,
    /// How a packet described in ovs-ofctl syntax would be handled.
    Trace { bridge: String, packet: String },
    /// Re-read the config file and apply the difference: bridges and ports added,
    /// removed or changed, each changed bridge's rule set replaced atomically. Settings
    /// that apply at start only (`[eal]`, `[pmd]`, ...) are refused, naming them.
    Reload,
    /// Add a bridge (no ports, no rules).
    AddBr { bridge: String },
    /// Remove a bridge; refused while it has ports unless `force`.
    DelBr {
        bridge: String,
        #[serde(default)]
        force: bool,
    },
    /// The bridges' names.
    ListBr,
    /// Add a port to a running bridge.
    AddPort {
        bridge: String,
        port: String,
        devargs: String,
        /// OpenFlow port number; the lowest free one when absent.
        #[serde(default)]
        number: Option<u32>,
        #[serde(default)]
        rx_queues: Option<u16>,
        #[serde(default)]
        mtu: Option<u16>,
    },
    /// Remove a port.
    DelPort { port: String },
    /// Change a port's settings: `KEY=VALUE` with keys `devargs`, `rx_queues`, `number`
    /// (these re-create the port), `mtu`, `admin`, `rxq_affinity` (applied in place).
    SetPort { port: String, settings: Vec<String> },
    /// The ports of a bridge.
    ListPorts { bridge: String },
    /// Connect the bridge to these OpenFlow controllers (`tcp:IP:PORT`,
    /// `ptcp:PORT[:IP]`), replacing its targets (not written back to the config).
    SetController { bridge: String, targets: Vec<String> },
    /// Disconnect the bridge from its controllers.
    DelController { bridge: String },
    /// The bridge's controllers.
    GetController { bridge: String },
    /// Capture the frames a port receives and sends, until `count` frames that match
    /// `filter` (ovs-ofctl match syntax) were sent or `duration_ms` passed (neither: until
    /// the client closes the connection). Answered by `capture`, then the capture stream
    /// on the same connection (see `protocol::capture`).
    Capture {
        port: String,
        #[serde(default)]
        count: Option<u64>,
        #[serde(default)]
        duration_ms: Option<u64>,
        #[serde(default)]
        filter: Option<String>,
    },
}

impl Request {
    /// Whether the request changes the switch (and so needs an administrator).
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Request::Stop
                | Request::Reload
                | Request::PmdStatsClear
                | Request::PmdRxqRebalance
                | Request::AddFlow { .. }
                | Request::AddFlows { .. }
                | Request::AddFlowsStream { .. }
                | Request::DelFlows { .. }
                | Request::AddBr { .. }
                | Request::DelBr { .. }
                | Request::AddPort { .. }
                | Request::DelPort { .. }
                | Request::SetPort { .. }
                | Request::SetController { .. }
                | Request::DelController { .. }
        )
    }

    /// Whether the request shows the traffic itself (and so needs an administrator, as
    /// capturing on a kernel interface needs CAP_NET_RAW).
    pub fn reveals_traffic(&self) -> bool {
        matches!(self, Request::Capture { .. })
    }

    /// The request as one line of the wire format, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        // A Request is strings and lists of strings: serializing it cannot fail.
        let mut line = serde_json::to_vec(self).expect("a Request always serializes");
        line.push(b'\n');
        line
    }
}

/// Parses one request line as received on the control socket (the trailing newline and
/// any other trailing whitespace are allowed). This is exactly what ferrovsd does with
/// the bytes a client sends, before any permission check, so a fuzz target calling it
/// covers the daemon's whole parsing surface.
///
/// Never panics, for any input. Refuses: lines longer than [`MAX_REQUEST_BYTES`]
/// (the socket reads at most one byte more than that), anything that is not UTF-8
/// JSON, unknown commands, and unknown or missing arguments of commands that take
/// arguments. A line it accepts describes the same request after a round trip:
/// `parse_request(&r.to_line()) == Ok(r)`.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(format!("request longer than {MAX_REQUEST_BYTES} bytes"));
    }
    serde_json::from_slice(line.trim_ascii_end()).map_err(|e| format!("bad request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_round_trip() {
        let r = parse_request(b"{\"cmd\":\"pmd-stats-show\"}\n").unwrap();
        assert_eq!(r, Request::PmdStatsShow);
        // The OpenFlow version of added rules: optional, so older clients' lines still parse.
        let r = parse_request(br#"{"cmd":"add-flow","bridge":"b","flow":"f","protocol":"OpenFlow13"}"#).unwrap();
        assert_eq!(r, Request::AddFlow { bridge: "b".into(), flow: "f".into(), protocol: Some("OpenFlow13".into()) });
        let r = parse_request(br#"{"cmd":"add-flow","bridge":"b","flow":"f"}"#).unwrap();
        assert_eq!(r, Request::AddFlow { bridge: "b".into(), flow: "f".into(), protocol: None });
        assert!(!String::from_utf8(r.to_line()).unwrap().contains("protocol"));
        let r = parse_request(br#"{"cmd":"del-flows","bridge":"br0","match":"tcp"}"#).unwrap();
        assert_eq!(r, Request::DelFlows { bridge: "br0".into(), r#match: Some("tcp".into()) });
        assert!(r.is_mutating());
        let all = [
            Request::Show,
            Request::PmdStatsShow,
            Request::PmdStatsClear,
            Request::PmdRxqRebalance,
            Request::Stop,
            Request::AddFlow { bridge: "br0".into(), flow: "actions=drop".into(), protocol: None },
            Request::AddFlow { bridge: "br0".into(), flow: "actions=drop".into(), protocol: Some("OpenFlow13".into()) },
            Request::AddFlows { bridge: "br0".into(), flows: vec!["a".into(), "b\n\"c\"".into()], protocol: None },
            Request::AddFlows { bridge: "b".into(), flows: vec![], protocol: Some("OpenFlow10".into()) },
            Request::AddFlowsStream { bridge: "br0".into(), bytes: 1 << 33, protocol: None },
            Request::AddFlowsStream { bridge: "br0".into(), bytes: 1, protocol: Some("OpenFlow13".into()) },
            Request::DelFlows { bridge: "br0".into(), r#match: None },
            Request::DumpFlows { bridge: "br0".into() },
            Request::DumpDpFlows,
            Request::Trace { bridge: "br0".into(), packet: "in_port=1,tcp".into() },
            Request::Reload,
            Request::AddBr { bridge: "br1".into() },
            Request::DelBr { bridge: "br1".into(), force: true },
            Request::ListBr,
            Request::AddPort {
                bridge: "br0".into(),
                port: "p3".into(),
                devargs: "net_tap3,iface=x3".into(),
                number: Some(3),
                rx_queues: None,
                mtu: Some(9000),
            },
            Request::DelPort { port: "p3".into() },
            Request::SetPort { port: "p3".into(), settings: vec!["mtu=1400".into()] },
            Request::ListPorts { bridge: "br0".into() },
            Request::SetController { bridge: "br0".into(), targets: vec!["tcp:127.0.0.1:6653".into()] },
            Request::DelController { bridge: "br0".into() },
            Request::GetController { bridge: "br0".into() },
            Request::Capture { port: "a".into(), count: Some(3), duration_ms: None, filter: Some("udp".into()) },
        ];
        for r in all {
            let line = r.to_line();
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line: {r:?}");
            assert_eq!(parse_request(&line), Ok(r));
        }
    }

    /// The property a fuzz target checks, over every one-byte change of valid lines:
    /// no panic, and whatever parses survives a round trip.
    #[test]
    fn mutated_lines_parse_or_fail_cleanly() {
        let lines: [&[u8]; 3] = [
            br#"{"cmd":"del-flows","bridge":"br0","match":"tcp"}"#,
            br#"{"cmd":"add-flows","bridge":"b","flows":["a","b"]}"#,
            br#"{"cmd":"trace","bridge":"br0","packet":"in_port=1"}"#,
        ];
        let mut parsed = 0;
        for line in lines {
            for i in 0..line.len() {
                for b in [b'"', b'\\', b'{', b']', b',', b':', b'0', b'x', 0x00, 0x80, 0xff] {
                    let mut m = line.to_vec();
                    m[i] = b;
                    if let Ok(r) = parse_request(&m) {
                        assert_eq!(parse_request(&r.to_line()), Ok(r));
                        parsed += 1;
                    }
                }
            }
        }
        assert!(parsed > 50, "{parsed} mutants parsed");
    }

    #[test]
    fn bad_requests_are_refused() {
        // Unknown fields of commands that take arguments are refused (serde ignores
        // extra fields next to the tag of argument-less commands, which is harmless).
        assert!(parse_request(br#"{"cmd":"dump-flows","bridge":"b","x":1}"#).is_err());
        assert!(parse_request(br#"{"cmd":"dump-flows"}"#).is_err(), "missing argument");
        assert!(parse_request(br#"{"cmd":"add-flow","bridge":"b","flow":"f","protocols":"x"}"#).is_err());
        assert!(parse_request(br#"{"cmd":"add-flow","bridge":"b","flow":"f","protocol":13}"#).is_err());
        assert!(parse_request(br#"{"cmd":"reboot"}"#).is_err());
        assert!(parse_request(b"{not json").unwrap_err().starts_with("bad request"));
        assert!(parse_request(b"{\"cmd\":\"show\xff\"}").is_err(), "not UTF-8");
        assert!(parse_request(b"").is_err());
        let mut long = br#"{"cmd":"add-flow","bridge":"br0","flow":""#.to_vec();
        long.resize(MAX_REQUEST_BYTES + 1, b'x');
        assert!(parse_request(&long).unwrap_err().contains("longer than"));
    }
}
