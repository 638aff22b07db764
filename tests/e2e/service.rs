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

/// The unmodified `ovs-appctl -t SOCKET` reads ferrovsd's views: each answers, the
/// numbers are ferrovs-ctl's, run-time log levels change, and errors come back as errors.
pub fn ovs_appctl_views() -> Result<(), Failed> {
    let d = Daemon::start(&format!("{}{}", preamble(), ports_ok()));
    let target = d.socket.with_file_name("ferrovsd.ctl");
    let target = target.to_str().ok_or("utf8 path")?.to_string();
    let appctl = |args: &[&str]| -> Result<(bool, String, String), Failed> {
        let out = std::process::Command::new("ovs-appctl")
            .arg("-t")
            .arg(&target)
            .args(args)
            .output()
            .map_err(|e| format!("ovs-appctl cannot run ({e}); deploy/test.sh installs openvswitch-common"))?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let expect = |args: &[&str], words: &[&str]| -> Result<String, Failed> {
        let (ok, out, err) = appctl(args)?;
        if !ok {
            return Err(format!("ovs-appctl {args:?} failed: {err}").into());
        }
        for w in words {
            if !out.contains(w) {
                return Err(format!("ovs-appctl {args:?}: no {w:?} in\n{out}").into());
            }
        }
        Ok(out)
    };
    expect(&["list-commands"], &["dpif-netdev/pmd-stats-show", "ofproto/trace", "vlog/set"])?;
    expect(&["version"], &["ferrovsd"])?;
    let stats = expect(&["dpif-netdev/pmd-stats-show"], &["pmd 0", "megaflows"])?;
    let ctl = String::from_utf8_lossy(&d.ctl(&["pmd-stats-show"]).stdout).into_owned();
    // Same renderer, same source: the first line (PMD, core, queues) is identical.
    if stats.lines().next() != ctl.lines().next() {
        return Err(format!("appctl and ctl disagree:\n{stats}\n---\n{ctl}").into());
    }
    expect(&["dpif-netdev/pmd-rxq-show"], &["pmd thread numa_id 0 core_id", "queue-id"])?;
    expect(&["dpif-netdev/pmd-perf-show"], &["Iterations"])?;
    expect(&["dpctl/show"], &["br0: 2 ports", "port 1 a"])?;
    expect(&["dpctl/dump-flows"], &[])?;
    expect(&["bridge/dump-flows", "br0"], &["in_port=1"])?;
    expect(&["ofproto/trace", "br0", "in_port=1,tcp,nw_dst=198.18.0.2"], &["Datapath actions: 2"])?;
    expect(&["coverage/show"], &["events never hit"])?;
    expect(&["vlog/set", "pmd:debug"], &["pmd          debug"])?;
    expect(&["vlog/list"], &["pmd          debug", "control      info"])?;
    expect(&["dpif-netdev/pmd-stats-clear"], &[])?;
    let (ok, _, err) = appctl(&["no/such/command"])?;
    if ok || !err.contains("not a valid command") {
        return Err(format!("unknown command accepted or unclear: {err}").into());
    }
    let (ok, _, err) = appctl(&["vlog/set", "pmd:loud"])?;
    if ok || !err.contains("unknown log level") {
        return Err(format!("bad level accepted or unclear: {err}").into());
    }
    if !d.log_text().contains("change (appctl): vlog/set") {
        return Err(format!("the change was not logged:\n{}", d.log_text()).into());
    }
    drop(d.stop());
    Ok(())
}
