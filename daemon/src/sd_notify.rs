//! systemd's service notification protocol (`sd_notify(3)`), and the PMD liveness rule
//! that decides when the watchdog is fed.
//!
//! # Design
//!
//! Under `Type=notify`, systemd passes `NOTIFY_SOCKET` (a unix datagram socket path, or
//! an abstract name starting with `@`) and, with `WatchdogSec=`, `WATCHDOG_USEC` (and
//! `WATCHDOG_PID`, the process that must send). A message is one datagram of
//! newline-separated `KEY=VALUE` assignments. ferrovsd sends:
//!
//! - `READY=1` once every port is started and every PMD thread has polled (the switch's
//!   start returns only then), so `systemctl start` returns when it forwards;
//! - `RELOADING=1` / `READY=1` around a reload, `STOPPING=1` when it stops;
//! - `WATCHDOG=1` every half watchdog period, **only while every PMD makes progress**:
//!   [`PmdLiveness`] compares each PMD's loop-iteration counter with the previous check.
//!   A PMD publishes that counter at least every 1,024 empty polls and before every idle
//!   back-off sleep, so a polling PMD always advances it within a check period; a PMD
//!   stuck in a loop, blocked, or gone does not, the watchdog runs out, and systemd
//!   restarts the service (`Restart=on-failure`).
//!
//! The end-to-end test `service_pmd_stall_trips_the_watchdog` plays systemd (its own
//! datagram socket as `NOTIFY_SOCKET`) and stalls a PMD on purpose with the test-only
//! `ovs-appctl ferrovs/stall-pmd` (present only under `FERROVS_TEST_HOOKS=1`, see
//! `appctl::parse_test_hook`): the feeds stop, the log names the PMD, and they resume.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) every call is a no-op. Send errors
//! are logged once and otherwise ignored: notification must never stop forwarding.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// Where and how to notify the service manager.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// Half the watchdog timeout: how often `WATCHDOG=1` is due.
    watchdog_every: Option<Duration>,
    last_watchdog: Option<Instant>,
    warned: bool,
}

impl Notifier {
    /// From the environment systemd gives the main process (`NOTIFY_SOCKET`,
    /// `WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Notifier::new(var("NOTIFY_SOCKET").as_deref(), var("WATCHDOG_USEC").as_deref(), var("WATCHDOG_PID").as_deref())
    }

    /// `socket`, `watchdog_usec`, `watchdog_pid` as in the environment variables.
    pub fn new(socket: Option<&str>, watchdog_usec: Option<&str>, watchdog_pid: Option<&str>) -> Notifier {
        let target = socket.and_then(|path| {
            let addr = match path.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
                None => SocketAddr::from_pathname(path),
            };
            match (UnixDatagram::unbound(), addr) {
                (Ok(s), Ok(a)) => Some((s, a)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!("NOTIFY_SOCKET={path}: {e}; systemd will not be notified");
                    None
                }
            }
        });
        // The watchdog is ours only if no PID is named or it is this process.
        let ours = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>().ok() == Some(std::process::id()));
        let watchdog_every = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && ours && target.is_some())
            .map(|u| Duration::from_micros(u / 2));
        Notifier { target, watchdog_every, last_watchdog: None, warned: false }
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often the watchdog must be fed, if it is enabled.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog_every
    }

    /// Sends one notification (`KEY=VALUE` lines).
    pub fn notify(&mut self, state: &str) {
        let Some((sock, addr)) = &self.target else { return };
        if let Err(e) = sock.send_to_addr(state.as_bytes(), addr)
            && !self.warned
        {
            tracing::warn!("sd_notify: {e}");
            self.warned = true;
        }
    }

    pub fn ready(&mut self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn reloading(&mut self) {
        self.notify("RELOADING=1");
    }

    pub fn stopping(&mut self) {
        self.notify("STOPPING=1");
    }

    /// Whether `WATCHDOG=1` is due at `now`.
    pub fn watchdog_due(&self, now: Instant) -> bool {
        match (self.watchdog_every, self.last_watchdog) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(every), Some(last)) => now.duration_since(last) >= every,
        }
    }

    /// Feeds the watchdog if `alive`; either way the next check is a period later.
    pub fn watchdog(&mut self, now: Instant, alive: bool) {
        self.last_watchdog = Some(now);
        if alive {
            self.notify("WATCHDOG=1");
        }
    }
}

/// Whether every PMD made progress since the previous check. See the module doc.
#[derive(Debug, Default)]
pub struct PmdLiveness {
    last: Vec<u64>,
}

impl PmdLiveness {
    /// `iterations[i]`: PMD `i`'s loop-iteration counter now. Returns the PMDs that did not
    /// advance since the previous call (empty: all alive). The first call only records.
    pub fn stalled(&mut self, iterations: &[u64]) -> Vec<usize> {
        let stalled = if self.last.len() == iterations.len() {
            iterations
                .iter()
                .zip(&self.last)
                .enumerate()
                .filter(|(_, (now, then))| now == then)
                .map(|(i, _)| i)
                .collect()
        } else {
            Vec::new()
        };
        self.last = iterations.to_vec();
        stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(s: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = s.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_socket_and_an_abstract_one() {
        let dir = std::env::temp_dir().join(format!("ferrovs-sdn-{}-{:?}", std::process::id(), Instant::now()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut n = Notifier::new(path.to_str(), Some("4000000"), None);
        assert!(n.enabled());
        assert_eq!(n.watchdog_every(), Some(Duration::from_secs(2)));
        n.ready("forwarding");
        assert_eq!(recv(&server), "READY=1\nSTATUS=forwarding");
        n.stopping();
        assert_eq!(recv(&server), "STOPPING=1");
        std::fs::remove_dir_all(&dir).unwrap();

        let name = format!("ferrovs-sdn-{}", std::process::id());
        let abs = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        abs.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut n = Notifier::new(Some(&format!("@{name}")), None, None);
        n.reloading();
        assert_eq!(recv(&abs), "RELOADING=1");
        assert_eq!(n.watchdog_every(), None);
    }

    #[test]
    fn watchdog_only_for_this_pid_and_only_when_due() {
        let n = Notifier::new(None, Some("1000000"), None);
        assert!(!n.enabled() && n.watchdog_every().is_none(), "no socket, no watchdog");
        let name = format!("@ferrovs-sdn-wd-{}", std::process::id());
        let other = Notifier::new(Some(&name), Some("1000000"), Some("1"));
        assert_eq!(other.watchdog_every(), None, "WATCHDOG_PID names another process");
        let mut n = Notifier::new(Some(&name), Some("1000000"), Some(&std::process::id().to_string()));
        let t0 = Instant::now();
        assert!(n.watchdog_due(t0));
        n.watchdog(t0, true);
        assert!(!n.watchdog_due(t0 + Duration::from_millis(499)));
        assert!(n.watchdog_due(t0 + Duration::from_millis(500)));
        // A stalled check still waits a whole period before the next one.
        n.watchdog(t0 + Duration::from_millis(500), false);
        assert!(!n.watchdog_due(t0 + Duration::from_millis(900)));
    }

    #[test]
    fn liveness_names_the_pmds_that_did_not_advance() {
        let mut l = PmdLiveness::default();
        assert!(l.stalled(&[10, 20]).is_empty(), "first call records");
        assert!(l.stalled(&[11, 25]).is_empty());
        assert_eq!(l.stalled(&[11, 26]), vec![0]);
        assert_eq!(l.stalled(&[11, 26]), vec![0, 1]);
        // A cleared counter moved: alive.
        assert!(l.stalled(&[0, 27]).is_empty());
        // The PMD set changed (restart): record again.
        assert!(l.stalled(&[5]).is_empty());
    }
}
