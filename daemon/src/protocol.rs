//! The control protocol between ferrovs-ctl and ferrovsd: one JSON object per line on a
//! unix stream socket, one request and one reply per connection.
//!
//! ```text
//! -> {"cmd":"show"}
//! <- {"ok":true,"result":{...}}
//! <- {"ok":false,"error":"unknown command \"shw\""}
//! ```
//!
//! JSON keeps the daemon's answers machine-readable (`ferrovs-ctl --json`) for scripts and
//! tests; ferrovs-ctl renders them as text for people. Commands that change the switch
//! are admin-only (see `control`), as OVS's datapath commands require CAP_NET_ADMIN.

use serde::{Deserialize, Serialize};

/// Longest request line accepted, so a misbehaving client cannot make the daemon
/// buffer without bound.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

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
    /// Stop the daemon cleanly.
    Stop,
    /// Add one rule in ovs-ofctl syntax to a bridge.
    AddFlow { bridge: String, flow: String },
    /// Add several rules atomically.
    AddFlows { bridge: String, flows: Vec<String> },
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
    /// Re-read the config file and apply its rules (each bridge's rule set replaced
    /// atomically). Ports and other settings need a restart; a changed one is an error.
    Reload,
}

impl Request {
    /// Whether the request changes the switch (and so needs an administrator).
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Request::Stop
                | Request::Reload
                | Request::PmdStatsClear
                | Request::AddFlow { .. }
                | Request::AddFlows { .. }
                | Request::DelFlows { .. }
        )
    }
}

/// The reply: `result` when ok, `error` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn ok(result: serde_json::Value) -> Response {
        Response { ok: true, result: Some(result), error: None }
    }
    pub fn err(msg: impl Into<String>) -> Response {
        Response { ok: false, result: None, error: Some(msg.into()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let r: Request = serde_json::from_str(r#"{"cmd":"pmd-stats-show"}"#).unwrap();
        assert_eq!(r, Request::PmdStatsShow);
        let r: Request = serde_json::from_str(r#"{"cmd":"del-flows","bridge":"br0","match":"tcp"}"#).unwrap();
        assert_eq!(r, Request::DelFlows { bridge: "br0".into(), r#match: Some("tcp".into()) });
        assert!(r.is_mutating());
        // Unknown fields of commands that take arguments are refused (serde ignores
        // extra fields next to the tag of argument-less commands, which is harmless).
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"dump-flows","bridge":"b","x":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
    }
}
