//! The control protocol between ferrovs-ctl and ferrovsd: one JSON object per line on a
//! unix stream socket, one request and one reply per connection.
//!
//! ```text
//! -> {"cmd":"show"}
//! <- {"ok":true,"result":{"cmd":"show","bridges":[...],"mbufs_in_use":1023,"mbufs_total":16383}}
//! <- {"ok":false,"error":"unknown bridge \"br9\""}
//! ```
//!
//! JSON keeps the daemon's answers machine-readable (`ferrovs-ctl --json` prints
//! `result`) for scripts and tests; ferrovs-ctl renders them as text for people
//! (`render`). Both ends share the types of this module: [`Request`] (`request`) and
//! [`Reply`] (`reply`), whose `cmd` tag names the request it answers. A reply that does
//! not have exactly the fields of its type is refused by the reader, so a mismatch
//! between a ferrovs-ctl and a ferrovsd is an error, never a silently wrong number.
//!
//! # Bulk rule loads
//!
//! `add-flows-stream` carries a rules file of any size: its request line gives the
//! body's length in bytes, and exactly that many bytes of rule text follow on the same
//! connection, then the reply comes as usual:
//!
//! ```text
//! -> {"cmd":"add-flows-stream","bridge":"br0","bytes":74512345}
//! -> priority=300,tcp,nw_src=10.0.3.4,...,actions=output:2
//! -> ... (74512345 bytes in all)
//! <- {"ok":true,"result":{"cmd":"add-flows","added":1000000,"megaflows_removed":0}}
//! ```
//!
//! A byte count rather than a path: the client and the daemon need not share a
//! filesystem (a container, another mount namespace) nor the daemon read what the
//! client may read, and the body needs no escaping (a JSON array of a million strings
//! would be escaped by the client, unescaped and copied by the daemon). The body is at
//! most [`MAX_STREAM_BYTES`]; only its inactivity is timed ([`LINE_TIMEOUT`] per read), so
//! a slow link is fine. The whole body is parsed before anything changes, and the rules
//! are applied as one atomic change, so an error (a bad line, a cut connection) changes
//! nothing.
//!
//! Timeouts never hide an applied change: once a mutating request is handed to the
//! daemon, the daemon answers only when it is applied everywhere or refused (its own
//! PMD barrier is bounded), and the client waits for that answer without a deadline.
//!
//! Commands that change the switch are admin-only (see `control`), as OVS's datapath
//! commands require CAP_NET_ADMIN.

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod capture;
mod reply;
mod request;
#[cfg(test)]
pub(crate) mod samples;
#[cfg(test)]
mod tests;

pub use reply::*;
pub use request::{Request, parse_request};

/// Longest request line accepted, so a misbehaving client cannot make the daemon
/// buffer without bound.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Largest body of an `add-flows-stream` (1 GiB: about 13 million rules of 80 bytes).
pub const MAX_STREAM_BYTES: u64 = 1 << 30;

/// How long either end waits for the other to send its line (the request, or the reply
/// once it is ready) before giving up on the connection.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the daemon may take to answer a request that changes nothing. Rule changes
/// wait for every PMD to apply them, which takes milliseconds unless a PMD is stuck (the
/// slow path's own barrier deadline); mutating requests are waited for without this
/// deadline, so that a reply never says "timed out" about a change that then applies.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client waits for the reply line after sending its request: the daemon's
/// own deadline plus the time to write the reply, so the client hears the daemon's
/// timeout error rather than timing out first.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(ANSWER_TIMEOUT.as_secs() + 2 * LINE_TIMEOUT.as_secs());

/// The answer to one request: on the wire `{"ok":true,"result":REPLY}` or
/// `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Ok(Reply),
    Err(String),
}

impl Response {
    pub fn err(msg: impl Into<String>) -> Response {
        Response::Err(msg.into())
    }

    /// The response as one line of the wire format, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        // Replies are strings, integers and finite floats (every ratio is guarded
        // against division by zero); should one ever fail, the client gets an error.
        let mut line = serde_json::to_vec(self).unwrap_or_else(|e| {
            serde_json::to_vec(&Response::err(format!("reply not serializable: {e}"))).unwrap_or_default()
        });
        line.push(b'\n');
        line
    }
}

impl From<Result<Reply, String>> for Response {
    fn from(r: Result<Reply, String>) -> Response {
        match r {
            Ok(reply) => Response::Ok(reply),
            Err(e) => Response::Err(e),
        }
    }
}

/// Response as it is written.
#[derive(Serialize)]
struct WireOut<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Reply>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// Response as it is read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn {
    ok: bool,
    #[serde(default)]
    result: Option<Reply>,
    #[serde(default)]
    error: Option<String>,
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Response::Ok(r) => WireOut { ok: true, result: Some(r), error: None },
            Response::Err(e) => WireOut { ok: false, result: None, error: Some(e) },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Response, D::Error> {
        match WireIn::deserialize(d)? {
            WireIn { ok: true, result: Some(r), error: None } => Ok(Response::Ok(r)),
            WireIn { ok: false, result: None, error: Some(e) } => Ok(Response::Err(e)),
            WireIn { ok, .. } => Err(D::Error::custom(if ok {
                "\"ok\":true needs a \"result\" and no \"error\""
            } else {
                "\"ok\":false needs an \"error\" and no \"result\""
            })),
        }
    }
}
