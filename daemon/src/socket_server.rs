//! A unix stream socket served by one thread per connection: what the control socket and
//! the ovs-appctl socket share.
//!
//! # Why a thread per connection
//!
//! Each connection is short (one request, one reply) but its peer may be slow, idle or
//! hostile. Serving connections one after another would let one idle client delay every
//! other command by its read timeout. With a thread each (at most [`MAX_CONNECTIONS`] at
//! once; more wait in the kernel's backlog), a connection can only delay itself: the
//! per-connection code sets its own read and write deadlines. The threads only parse and
//! forward; the daemon's main thread owns all switch state and answers one request at a
//! time over a channel, so no lock is shared.
//!
//! Binding: the socket file is created mode 0660 (its directory, when created, 0750). A
//! file left by a crashed daemon is replaced; one that a live process answers on is
//! refused with [`std::io::ErrorKind::AddrInUse`].

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;

/// What serves one accepted connection: the stream, the peer's uid, and a flag that
/// turns true when the server stops.
pub type Serve = dyn Fn(UnixStream, Option<u32>, &AtomicBool) + Send + Sync + 'static;

/// A listening socket and its accept thread. Dropping it stops accepting, and removes
/// the socket file; connections being served finish on their own deadlines.
pub struct SocketServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SocketServer {
    /// Binds `path` and serves each connection on a thread named `name` with `serve`.
    pub fn bind(path: &Path, name: &str, serve: Box<Serve>) -> std::io::Result<SocketServer> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
        }
        if path.exists() {
            // A live daemon answers; a stale file from a crash does not and is replaced.
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "another process answers there"));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let conn_name = format!("{name}-conn");
        let serve: Arc<Serve> = Arc::from(serve);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || accept_loop(listener, &conn_name, serve, stop2))?;
        Ok(SocketServer { path: path.to_path_buf(), stop, thread: Some(thread) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lets members of group `gid` connect (`[control] socket_group`): the socket file and
    /// its directory get that group (modes 0660 and 0750 let the group in, nobody else).
    /// What a peer may then do is [`may_change`]'s rule, as for everyone.
    pub fn share_with_group(&self, gid: u32) -> std::io::Result<()> {
        std::os::unix::fs::chown(&self.path, None, Some(gid))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::os::unix::fs::chown(dir, None, Some(gid))?;
        }
        Ok(())
    }
}

impl Drop for SocketServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a peer with `uid` may change the switch: root or the daemon's own user, in the
/// spirit of the kernel datapath's GENL_ADMIN_PERM commands. One rule for every socket.
pub fn may_change(uid: Option<u32>) -> bool {
    uid.is_some_and(|u| u == 0 || u == nix::unistd::geteuid().as_raw())
}

/// The uid of the process at the other end (SO_PEERCRED).
pub fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).ok().map(|c| c.uid())
}

/// Waits until `listener` has a connection to accept, or 100 ms (the accept loop then
/// looks at its stop flag). A sleep between tries instead delayed every command by half
/// the sleep on average (`ovs-ofctl` opens two connections per flow-mod).
fn wait_for_connection(listener: &UnixListener) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    if poll(&mut fds, PollTimeout::from(100u16)).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn accept_loop(listener: UnixListener, conn_name: &str, serve: Arc<Serve>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let (serve, active2, stop2) = (serve.clone(), active.clone(), stop.clone());
                active.fetch_add(1, Ordering::Relaxed);
                let spawned = std::thread::Builder::new().name(conn_name.to_string()).spawn(move || {
                    if stream.set_nonblocking(false).is_ok() {
                        let uid = peer_uid(&stream);
                        serve(stream, uid, &stop2);
                    }
                    active2.fetch_sub(1, Ordering::Relaxed);
                });
                if let Err(e) = spawned {
                    active.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!("{conn_name}: cannot start a thread: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_for_connection(&listener),
            Err(e) => {
                tracing::warn!("{conn_name}: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
