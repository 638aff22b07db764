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
//! The server half gives every connection its own thread with a read deadline, so an idle
//! or slow client delays nobody else, and hands each request to the daemon's main thread
//! (which owns all switch state) with the peer's uid; the main thread decides what each
//! method means and whether the peer may call it.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use serde::{Deserialize, Serialize};

/// Longest request accepted (a request is a method name and a few words).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;
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

/// The listening socket and its thread; dropping it stops accepting and removes the file.
pub struct UnixctlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UnixctlServer {
    /// Binds `path` (mode 0660; a stale file from a crash is replaced, a live one refused).
    pub fn bind(path: &Path) -> std::io::Result<(UnixctlServer, Receiver<UnixctlCall>)> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{}: another process answers there", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        listener.set_nonblocking(true)?;
        let (tx, rx) = bounded::<UnixctlCall>(64);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread =
            std::thread::Builder::new().name("ferrovs-appctl".into()).spawn(move || accept(listener, tx, stop2))?;
        Ok((UnixctlServer { path: path.to_path_buf(), stop, thread: Some(thread) }, rx))
    }
}

impl Drop for UnixctlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept(listener: UnixListener, to_main: Sender<UnixctlCall>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let (to_main, active2, stop2) = (to_main.clone(), active.clone(), stop.clone());
                active.fetch_add(1, Ordering::Relaxed);
                let spawned = std::thread::Builder::new().name("ferrovs-appctl-conn".into()).spawn(move || {
                    if let Err(e) = serve(stream, &to_main, &stop2) {
                        tracing::debug!("appctl connection: {e}");
                    }
                    active2.fetch_sub(1, Ordering::Relaxed);
                });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                tracing::warn!("appctl socket accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).ok().map(|c| c.uid())
}

fn serve(mut stream: UnixStream, to_main: &Sender<UnixctlCall>, stop: &AtomicBool) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let uid = peer_uid(&stream);
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
