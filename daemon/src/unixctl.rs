//! The `ovs-appctl` socket: OVS's unixctl protocol, so that an operator's
//! `ovs-appctl -t /run/ferrovs/ferrovsd.ctl dpif-netdev/pmd-stats-show` works unchanged.
//!
//! # Protocol
//!
//! JSON-RPC 1.0 over a unix stream socket, as `lib/unixctl.c` speaks it: the client sends
//! one JSON object `{"id":N,"method":"dpif-netdev/pmd-stats-show","params":["-pmd","3"]}`
//! (no newline, no length prefix: the object ends where its braces close); the server
//! answers `{"id":N,"result":"text","error":null}` or `{"id":N,"result":null,"error":"text"}`.
//! `ovs-appctl` prints `result` on stdout, or `error` on stderr and exits 2. A connection may
//! carry several requests; each gets its reply in order.
//!
//! [`Framer`] is the sans-IO half: bytes in, complete requests out (or a protocol error).
//! The server half (on `socket_server`) gives every connection its own thread with a read
//! deadline, so an idle or slow client delays nobody else, and hands each request to the
//! daemon's main thread
//! (which owns all switch state) with the peer's uid; the main thread decides what each
//! method means and whether the peer may call it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use serde::{Deserialize, Serialize};

use crate::socket_server::SocketServer;

/// Longest request accepted (a request is a method name and a few words).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// One JSON-RPC request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcRequest {
    pub id: serde_json::Value,
    pub method: String,
    #[serde(default)]
    pub params: Vec<String>,
}

/// One JSON-RPC reply: exactly one of `result` and `error` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcReply {
    pub id: serde_json::Value,
    pub result: Option<String>,
    pub error: Option<String>,
}

impl RpcReply {
    pub fn new(id: serde_json::Value, outcome: Result<String, String>) -> RpcReply {
        match outcome {
            Ok(text) => RpcReply { id, result: Some(text), error: None },
            Err(text) => RpcReply { id, result: None, error: Some(text) },
        }
    }
}

/// Splits a byte stream into requests. See the module doc.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete request, `Ok(None)` if more bytes are needed, or an error that
    /// ends the connection (malformed JSON, not a request, or too long).
    pub fn next_request(&mut self) -> Result<Option<RpcRequest>, String> {
        let start = self.buf.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(self.buf.len());
        self.buf.drain(..start);
        if self.buf.is_empty() {
            return Ok(None);
        }
        let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
        match stream.next() {
            Some(Ok(value)) => {
                let used = stream.byte_offset();
                self.buf.drain(..used);
                serde_json::from_value::<RpcRequest>(value).map(Some).map_err(|e| format!("not a request: {e}"))
            }
            Some(Err(e)) if e.is_eof() => {
                if self.buf.len() > MAX_REQUEST_BYTES {
                    Err(format!("request longer than {MAX_REQUEST_BYTES} bytes"))
                } else {
                    Ok(None)
                }
            }
            Some(Err(e)) => Err(format!("malformed JSON: {e}")),
            None => Ok(None),
        }
    }
}

/// A request for the main thread: the method, its parameters, who asked, and where the
/// answer goes.
pub struct UnixctlCall {
    pub method: String,
    pub params: Vec<String>,
    /// The peer's uid (SO_PEERCRED), if the kernel told.
    pub peer_uid: Option<u32>,
    pub reply: Sender<Result<String, String>>,
}

/// The ovs-appctl socket; dropping it stops accepting and removes the file.
pub struct UnixctlServer {
    server: SocketServer,
}

impl UnixctlServer {
    /// See [`SocketServer::share_with_group`].
    pub fn share_with_group(&self, gid: u32) -> std::io::Result<()> {
        self.server.share_with_group(gid)
    }

    /// Binds `path` (see `socket_server` for modes and stale files); calls arrive on the
    /// returned receiver.
    pub fn bind(path: &Path) -> std::io::Result<(UnixctlServer, Receiver<UnixctlCall>)> {
        let (tx, rx) = bounded::<UnixctlCall>(64);
        let serve = move |stream: UnixStream, uid: Option<u32>, stop: &AtomicBool| {
            if let Err(e) = serve(stream, uid, &tx, stop) {
                tracing::debug!("appctl connection: {e}");
            }
        };
        let server = SocketServer::bind(path, "ferrovs-appctl", Box::new(serve))?;
        Ok((UnixctlServer { server }, rx))
    }
}

fn serve(
    mut stream: UnixStream,
    uid: Option<u32>,
    to_main: &Sender<UnixctlCall>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut framer = Framer::default();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        framer.push(&buf[..n]);
        loop {
            let req = match framer.next_request() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    let reply = RpcReply::new(serde_json::Value::Null, Err(e));
                    stream.write_all(&serde_json::to_vec(&reply).unwrap_or_default())?;
                    return Ok(());
                }
            };
            let (rtx, rrx) = bounded(1);
            let call = UnixctlCall { method: req.method, params: req.params, peer_uid: uid, reply: rtx };
            let outcome = if to_main.send(call).is_err() {
                Err("ferrovsd is shutting down".to_string())
            } else {
                rrx.recv_timeout(Duration::from_secs(60))
                    .unwrap_or_else(|_| Err("ferrovsd did not answer in 60 s".into()))
            };
            stream.write_all(&serde_json::to_vec(&RpcReply::new(req.id, outcome)).unwrap_or_default())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framer_splits_concatenated_and_partial_requests() {
        let mut f = Framer::default();
        // What ovs-appctl sends, byte for byte, then a second request in two pieces.
        f.push(br#"{"id":0,"method":"dpif-netdev/pmd-stats-show","params":["-pmd","3"]}  {"id":1,"meth"#);
        let r = f.next_request().unwrap().unwrap();
        assert_eq!(r.method, "dpif-netdev/pmd-stats-show");
        assert_eq!(r.params, vec!["-pmd", "3"]);
        assert_eq!(r.id, serde_json::json!(0));
        assert_eq!(f.next_request(), Ok(None));
        f.push(br#"od":"list-commands","params":[]}"#);
        assert_eq!(f.next_request().unwrap().unwrap().method, "list-commands");
        assert_eq!(f.next_request(), Ok(None));
    }

    #[test]
    fn framer_refuses_garbage_and_oversize() {
        let mut f = Framer::default();
        f.push(b"{nope}");
        assert!(f.next_request().unwrap_err().contains("malformed"));
        let mut f = Framer::default();
        f.push(br#"{"id":1,"params":[]}"#);
        assert!(f.next_request().unwrap_err().contains("not a request"));
        let mut f = Framer::default();
        f.push(b"[\"");
        f.push(&vec![b'x'; MAX_REQUEST_BYTES + 1]);
        assert!(f.next_request().unwrap_err().contains("longer"));
    }

    #[test]
    fn replies_carry_result_or_error() {
        let ok = serde_json::to_string(&RpcReply::new(serde_json::json!(3), Ok("hi\n".into()))).unwrap();
        assert_eq!(ok, r#"{"id":3,"result":"hi\n","error":null}"#);
        let err = serde_json::to_string(&RpcReply::new(serde_json::json!(3), Err("no".into()))).unwrap();
        assert_eq!(err, r#"{"id":3,"result":null,"error":"no"}"#);
    }

    #[test]
    fn an_idle_client_does_not_delay_another() {
        let dir = std::env::temp_dir().join(format!("ferrovs-appctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.ctl");
        let (server, rx) = UnixctlServer::bind(&path).unwrap();
        let main = std::thread::spawn(move || {
            let c = rx.recv().unwrap();
            c.reply.send(Ok(format!("{} {:?}", c.method, c.params))).unwrap();
        });
        let _idle: Vec<UnixStream> = (0..20).map(|_| UnixStream::connect(&path).unwrap()).collect();
        let mut half = UnixStream::connect(&path).unwrap();
        half.write_all(br#"{"id":9,"meth"#).unwrap();
        let t = std::time::Instant::now();
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(br#"{"id":7,"method":"vlog/list","params":["x"]}"#).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reply = Vec::new();
        let mut b = [0u8; 256];
        while !reply.ends_with(b"}") {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0);
            reply.extend_from_slice(&b[..n]);
        }
        assert!(t.elapsed() < Duration::from_secs(1), "took {:?}", t.elapsed());
        let r: RpcReply = serde_json::from_slice(&reply).unwrap();
        assert_eq!(r.result.as_deref(), Some("vlog/list [\"x\"]"));
        main.join().unwrap();
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
