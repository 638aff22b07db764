//! The control socket: a unix stream socket on which ferrovsd answers ferrovs-ctl.
//!
//! A listener thread accepts connections and reads one request line from each (with a
//! read timeout and a size cap, so a stuck or hostile client cannot hold it). The request
//! is handed to the daemon's main thread over a channel together with a one-shot reply
//! channel; the main thread owns all switch state, so no lock is shared with the
//! listener. Malformed requests are answered with an error and change nothing.
//!
//! Access: the socket is created mode 0660 in a directory the daemon creates mode 0750,
//! and commands that change the switch (`Request::is_mutating`) are refused unless the
//! peer's uid (SO_PEERCRED) is root or the daemon's own uid, in the spirit of the kernel
//! datapath's GENL_ADMIN_PERM commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::protocol::{
    ANSWER_TIMEOUT, CLIENT_TIMEOUT, LINE_TIMEOUT, MAX_REQUEST_BYTES, Reply, Request, Response, parse_request,
};

/// A request waiting for the main thread, with where to send the answer.
pub struct Pending {
    pub request: Request,
    /// The peer's uid (SO_PEERCRED), for the log of changes.
    pub peer_uid: Option<u32>,
    pub reply: Sender<Response>,
}

/// The listening socket and its thread. Dropping it stops the thread and removes the
/// socket file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {path}: another ferrovsd is already listening there")]
    InUse { path: String },
    #[error("control socket {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl ControlServer {
    /// Binds `path` and starts the listener thread; requests arrive on the returned
    /// receiver.
    pub fn bind(path: &Path) -> Result<(ControlServer, Receiver<Pending>), ControlError> {
        let io = |source| ControlError::Io { path: path.display().to_string(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(io)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).map_err(io)?;
        }
        if path.exists() {
            // A live daemon answers; a stale file from a crash does not and is replaced.
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse { path: path.display().to_string() });
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;

        let (tx, rx) = bounded::<Pending>(64);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ferrovs-ctl".into())
            .spawn(move || accept_loop(listener, tx, stop2))
            .map_err(io)?;
        Ok((ControlServer { path: path.to_path_buf(), stop, thread: Some(thread) }, rx))
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: UnixListener, to_main: Sender<Pending>, stop: Arc<AtomicBool>) {
    let me = nix::unistd::geteuid().as_raw();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // One connection at a time: requests are short and the main thread
                // serialises them anyway.
                if let Err(e) = serve(stream, &to_main, me) {
                    tracing::debug!("control connection: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).ok().map(|c| c.uid())
}

fn serve(stream: UnixStream, to_main: &Sender<Pending>, my_uid: u32) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(LINE_TIMEOUT))?;
    stream.set_write_timeout(Some(LINE_TIMEOUT))?;
    let mut line = Vec::new();
    BufReader::new((&stream).take(MAX_REQUEST_BYTES as u64 + 1)).read_until(b'\n', &mut line)?;
    let response = match parse_request(&line) {
        Err(e) => Response::Err(e),
        Ok(req) => {
            let uid = peer_uid(&stream);
            if req.is_mutating() && uid != Some(0) && uid != Some(my_uid) {
                Response::err("permission denied: this command needs root (or the daemon's user)")
            } else {
                let (rtx, rrx) = bounded(1);
                if to_main.send(Pending { request: req, peer_uid: uid, reply: rtx }).is_err() {
                    Response::err("ferrovsd is shutting down")
                } else {
                    // Rule changes wait for every PMD to acknowledge; allow for it.
                    rrx.recv_timeout(ANSWER_TIMEOUT).unwrap_or_else(|_| {
                        Response::err(format!("ferrovsd did not answer in {} s", ANSWER_TIMEOUT.as_secs()))
                    })
                }
            }
        }
    };
    (&stream).write_all(&response.to_line())
}

/// Client side: sends one request to `path` and returns the daemon's reply, or its
/// error, or why there was none. A reply that does not parse as the protocol's types
/// (a daemon of another version) or that answers another request is an error too.
pub fn request(path: &Path, req: &Request) -> Result<Reply, String> {
    let mut s = UnixStream::connect(path)
        .map_err(|e| format!("cannot connect to {}: {e} (is ferrovsd running?)", path.display()))?;
    s.set_write_timeout(Some(LINE_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(|e| e.to_string())?;
    s.write_all(&req.to_line()).map_err(|e| format!("send: {e}"))?;
    let mut line = Vec::new();
    BufReader::new(s).read_until(b'\n', &mut line).map_err(|e| format!("receive: {e}"))?;
    let text = || String::from_utf8_lossy(&line).trim_end().to_string();
    match serde_json::from_slice::<Response>(&line) {
        Err(e) => Err(format!("bad reply from ferrovsd ({e}): {}", text())),
        Ok(Response::Err(e)) => Err(e),
        Ok(Response::Ok(reply)) if !reply.answers(req) => Err(format!("ferrovsd answered another request: {}", text())),
        Ok(Response::Ok(reply)) => Ok(reply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `bytes` as they are and returns the reply line.
    fn raw(path: &Path, bytes: &[u8]) -> Response {
        let mut s = UnixStream::connect(path).unwrap();
        s.write_all(bytes).unwrap();
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap()
    }

    #[test]
    fn serves_requests_and_rejects_garbage() {
        let dir = std::env::temp_dir().join(format!("ferrovs-ctl-test-{}", std::process::id()));
        let path = dir.join("s.sock");
        let (server, rx) = ControlServer::bind(&path).unwrap();
        let main = std::thread::spawn(move || {
            let mut it = rx.iter();
            let p = it.next().unwrap();
            assert_eq!(p.request, Request::Show);
            let show = crate::protocol::ShowReply { bridges: vec![], mbufs_in_use: 1, mbufs_total: 2 };
            p.reply.send(Response::Ok(Reply::Show(show))).unwrap();
            // A daemon that answers the wrong request is caught by the client.
            let p = it.next().unwrap();
            assert_eq!(p.request, Request::DumpDpFlows);
            p.reply.send(Response::Ok(Reply::Stop)).unwrap();
            let p = it.next().unwrap();
            p.reply.send(Response::err("unknown bridge \"x\"")).unwrap();
        });
        match request(&path, &Request::Show) {
            Ok(Reply::Show(s)) => assert_eq!((s.mbufs_in_use, s.mbufs_total), (1, 2)),
            other => panic!("{other:?}"),
        }
        let e = request(&path, &Request::DumpDpFlows).unwrap_err();
        assert!(e.contains("answered another request") && e.contains("\"stop\""), "{e}");
        let e = request(&path, &Request::DumpFlows { bridge: "x".into() }).unwrap_err();
        assert_eq!(e, "unknown bridge \"x\"");
        // Garbage gets an error and the server keeps serving.
        match raw(&path, b"{not json\n") {
            Response::Err(e) => assert!(e.contains("bad request"), "{e}"),
            other => panic!("{other:?}"),
        }
        match raw(&path, b"{\"cmd\":\"show\xff\"}\n") {
            Response::Err(e) => assert!(e.contains("bad request"), "{e}"),
            other => panic!("{other:?}"),
        }
        main.join().unwrap();
        // A second server on the same live socket is refused.
        assert!(matches!(ControlServer::bind(&path), Err(ControlError::InUse { .. })));
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
