//! ferrovsd under a service manager: the `sd_notify` protocol as systemd speaks it
//! (`Type=notify`, `WatchdogSec=`), with a datagram socket of the test standing in for
//! systemd.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use ferrovs_e2e::{Daemon, TempDir};
use libtest_mimic::Failed;

use crate::{ports_ok, preamble};

fn next_message(s: &UnixDatagram) -> Option<String> {
    let mut buf = [0u8; 1024];
    let n = s.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// READY=1 arrives once ferrovsd forwards (its ports are up when it is read), then
/// WATCHDOG=1 every half period while the PMD polls, and STOPPING=1 on stop.
pub fn notifies_ready_then_feeds_watchdog() -> Result<(), Failed> {
    let dir = TempDir::new();
    let notify = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&notify)?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    let notify_path = notify.to_str().ok_or("utf8 path")?.to_string();
    // 600 ms watchdog: fed every 300 ms.
    let d = Daemon::start_in_with_env(
        dir,
        &format!("{}{}", preamble(), ports_ok()),
        &[("NOTIFY_SOCKET", &notify_path), ("WATCHDOG_USEC", "600000")],
    );
    let first = next_message(&sock).ok_or("no notification within 30 s")?;
    if !first.lines().any(|l| l == "READY=1") {
        return Err(format!("first notification is not READY=1: {first:?}").into());
    }
    // Ready means forwarding: every port is up in `show` right away.
    let show = d.ctl_json(&["show"]);
    let ports: Vec<&serde_json::Value> = show["bridges"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["ports"].as_array().into_iter().flatten())
        .collect();
    if ports.len() != 2 || !ports.iter().all(|p| p["link_up"] == true) {
        return Err(format!("READY before the ports are up: {show}").into());
    }
    // At least three feeds in about 1.5 s.
    let start = Instant::now();
    let mut feeds = 0;
    sock.set_read_timeout(Some(Duration::from_secs(3)))?;
    while feeds < 3 && start.elapsed() < Duration::from_secs(5) {
        match next_message(&sock) {
            Some(m) if m == "WATCHDOG=1" => feeds += 1,
            Some(_) => {}
            None => break,
        }
    }
    if feeds < 3 {
        return Err(format!("{feeds} watchdog feeds in {:?}\n{}", start.elapsed(), d.log_text()).into());
    }
    let out = d.ctl(&["stop"]);
    if !out.status.success() {
        return Err("ferrovs-ctl stop failed".into());
    }
    let mut stopping = false;
    while let Some(m) = next_message(&sock) {
        if m.lines().any(|l| l == "STOPPING=1") {
            stopping = true;
            break;
        }
    }
    drop(d.stop());
    if !stopping {
        return Err("no STOPPING=1 on stop".into());
    }
    Ok(())
}
