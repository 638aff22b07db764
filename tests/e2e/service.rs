//! ferrovsd under a service manager and its operators' tools: the `sd_notify` protocol
//! as systemd speaks it (`Type=notify`, `WatchdogSec=`, with a datagram socket of the
//! test standing in for systemd), `ovs-appctl`, the Prometheus endpoint, DPDK's
//! telemetry client, and the hugepage script.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrovs_e2e::{Daemon, TempDir, frames, unique, wait_until, write_pcap};
use libtest_mimic::Failed;

use crate::{ports_ok, preamble};

fn next_message(s: &UnixDatagram) -> Option<String> {
    let mut buf = [0u8; 1024];
    let n = s.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// ferrovsd with a 600 ms watchdog (fed every 300 ms) and the test's datagram socket as
/// `NOTIFY_SOCKET`, plus `env`; returns once its first notification, READY=1, arrived.
fn under_watchdog(env: &[(&str, &str)]) -> Result<(Daemon, UnixDatagram), Failed> {
    let dir = TempDir::new();
    let notify = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&notify)?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    let notify_path = notify.to_str().ok_or("utf8 path")?.to_string();
    let mut all = vec![("NOTIFY_SOCKET", notify_path.as_str()), ("WATCHDOG_USEC", "600000")];
    all.extend_from_slice(env);
    let d = Daemon::start_in_with_env(dir, &format!("{}{}", preamble(), ports_ok()), &all);
    let first = next_message(&sock).ok_or("no notification within 30 s")?;
    if !first.lines().any(|l| l == "READY=1") {
        return Err(format!("first notification is not READY=1: {first:?}").into());
    }
    Ok((d, sock))
}

/// READY=1 arrives once ferrovsd forwards (its ports are up when it is read), then
/// WATCHDOG=1 every half period while the PMD polls, and STOPPING=1 on stop.
pub fn notifies_ready_then_feeds_watchdog() -> Result<(), Failed> {
    let (d, sock) = under_watchdog(&[])?;
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

/// A PMD stalled on purpose (the test hook `ferrovs/stall-pmd`, present because the test
/// starts ferrovsd with `FERROVS_TEST_HOOKS=1`) starves the watchdog: feeds arrive every
/// half period while the PMD polls, none while it sleeps (from the second check after the
/// stall began until it ends), the log names the PMD, and feeding resumes afterwards.
pub fn pmd_stall_trips_the_watchdog() -> Result<(), Failed> {
    let (d, sock) = under_watchdog(&[("FERROVS_TEST_HOOKS", "1")])?;
    // Feeds (their arrival times) until `until`.
    let feeds_until = |until: Instant| -> Vec<Instant> {
        let mut at = Vec::new();
        while Instant::now() < until {
            let _ = sock
                .set_read_timeout(Some(until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))));
            if let Some(m) = next_message(&sock)
                && m == "WATCHDOG=1"
            {
                at.push(Instant::now());
            }
        }
        at
    };
    let before = feeds_until(Instant::now() + Duration::from_millis(1500));
    if before.len() < 3 {
        return Err(format!("{} watchdog feeds in 1.5 s before the stall\n{}", before.len(), d.log_text()).into());
    }
    let target = d.socket.with_file_name("ferrovsd.ctl");
    let stall_s = 3.0;
    let t0 = Instant::now();
    let out = Command::new("ovs-appctl")
        .arg("-t")
        .arg(&target)
        .args(["ferrovs/stall-pmd", "0", &stall_s.to_string()])
        .output()
        .map_err(|e| format!("ovs-appctl cannot run ({e}); deploy/test.sh installs openvswitch-common"))?;
    if !out.status.success() {
        return Err(format!("ferrovs/stall-pmd: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    // The first check after t0 may still see iterations from before the stall; from the
    // second one (at most two half periods later, plus a margin) until shortly before the
    // stall ends, there must be no feed (six periods).
    let during = feeds_until(t0 + Duration::from_secs_f64(stall_s - 0.4));
    let starved_from = t0 + Duration::from_millis(750);
    let late: Vec<Duration> = during.iter().filter(|t| **t > starved_from).map(|t| t.duration_since(t0)).collect();
    if !late.is_empty() {
        return Err(format!("the watchdog was fed while PMD 0 stalled, at {late:?} after the stall began").into());
    }
    let after = feeds_until(Instant::now() + Duration::from_millis(1500));
    if after.len() < 2 {
        return Err(format!("feeding did not resume after the stall ({} feeds)\n{}", after.len(), d.log_text()).into());
    }
    let log = d.log_text();
    if !log.contains("PMD(s) [0] made no progress") || !log.contains("test hooks enabled") {
        return Err(format!("the log does not name the stalled PMD:\n{log}").into());
    }
    drop(d.stop());
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
    // The test hook exists only with FERROVS_TEST_HOOKS=1.
    let (ok, _, err) = appctl(&["ferrovs/stall-pmd", "0", "1"])?;
    if ok || !err.contains("not a valid command") {
        return Err(format!("the stall hook answered without FERROVS_TEST_HOOKS: {err}").into());
    }
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

/// One sample of an OpenMetrics exposition: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: every sample, and each family's declared type.
struct Exposition {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

/// Parses OpenMetrics text (the subset a scraper needs: `# TYPE`/`# HELP`/`# UNIT`
/// lines, samples with quoted, escaped label values, the closing `# EOF`). Any line it
/// does not understand is an error, and so is a sample whose family has no `# TYPE`.
fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    let mut lines = text.lines().peekable();
    let mut eof = false;
    while let Some(line) = lines.next() {
        if line == "# EOF" {
            eof = lines.peek().is_none();
            break;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(family), Some(t)) => {
                    types.insert(family.to_string(), t.to_string());
                }
                (Some("HELP" | "UNIT"), Some(_), _) => {}
                _ => return Err(format!("unknown comment line {line:?}")),
            }
            continue;
        }
        samples.push(parse_sample(line)?);
    }
    if !eof {
        return Err("the exposition does not end with `# EOF`".into());
    }
    for s in &samples {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| s.name.strip_suffix(suffix).filter(|f| types.contains_key(*f)))
            .unwrap_or(&s.name);
        if !types.contains_key(family) {
            return Err(format!("sample {} has no # TYPE", s.name));
        }
    }
    Ok(Exposition { samples, types })
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let bad = |why: &str| format!("{why} in sample line {line:?}");
    let name_end = line.find(['{', ' ']).ok_or_else(|| bad("no value"))?;
    let name = &line[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return Err(bad("bad metric name"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            let key_start = chars.peek().map(|(i, _)| *i).ok_or_else(|| bad("unterminated labels"))?;
            if after[key_start..].starts_with('}') {
                rest = &after[key_start + 1..];
                break;
            }
            let eq = after[key_start..].find("=\"").ok_or_else(|| bad("label without =\""))? + key_start;
            let key = after[key_start..eq].to_string();
            while chars.peek().is_some_and(|(i, _)| *i < eq + 2) {
                chars.next();
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or_else(|| bad("unterminated label value"))? {
                    (_, '"') => break,
                    (_, '\\') => match chars.next().ok_or_else(|| bad("dangling escape"))?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        _ => return Err(bad("unknown escape")),
                    },
                    (_, c) => value.push(c),
                }
            }
            if labels.insert(key, value).is_some() {
                return Err(bad("repeated label"));
            }
            if chars.peek().is_some_and(|(_, c)| *c == ',') {
                chars.next();
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or_else(|| bad("no space before the value"))?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| bad("bad value"))?,
    };
    Ok(Sample { name: name.to_string(), labels, value })
}

impl Exposition {
    /// The value of the one sample called `name` whose labels include `with`.
    fn value(&self, name: &str, with: &[(&str, &str)]) -> Result<f64, String> {
        let matching: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v)))
            .collect();
        match matching.as_slice() {
            [one] => Ok(one.value),
            other => Err(format!("{} samples {name}{with:?}", other.len())),
        }
    }
}

/// Sends `GET path` to the metrics endpoint; returns (status code, body).
fn http_get(addr: &str, path: &str) -> Result<(u16, String), Failed> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or("no status code")?;
    Ok((code, body.to_string()))
}

/// A loopback port nobody listens on right now.
fn free_loopback_port() -> Result<u16, Failed> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `[metrics] listen`: a capture replayed through ferrovsd, then the endpoint scraped
/// and parsed; every port, PMD and slow-path counter equals what `ferrovs-ctl --json`
/// reports, the upcall histogram is a well-formed histogram of the handled upcalls, and
/// other paths are 404.
pub fn metrics_endpoint_matches_ctl() -> Result<(), Failed> {
    let dir = TempDir::new();
    let input = frames::mixed_capture();
    let frames_in: Vec<Vec<u8>> = input.iter().map(|(f, _)| f.clone()).collect();
    write_pcap(&dir.join("in.pcap"), &frames_in);
    write_pcap(&dir.join("empty.pcap"), &[]);
    let addr = format!("127.0.0.1:{}", free_loopback_port()?);
    let config = format!(
        "{}\n[metrics]\nlisten = \"{addr}\"\n{}{}{}",
        preamble(),
        crate::bridge(r#"flows = ["in_port=1,actions=output:2"]"#, &[]),
        crate::flows::pcap_port("in", 1, "in.pcap"),
        crate::flows::pcap_port("out", 2, "empty.pcap"),
    );
    let d = Daemon::start_in(dir, &config);
    let n_in = frames_in.len() as f64;
    // The endpoint reads the once-a-second publication: wait for the replay to show.
    let mut last = String::new();
    let seen = wait_until(Duration::from_secs(15), || {
        let Ok((200, body)) = http_get(&addr, "/metrics") else { return false };
        last = body;
        parse_exposition(&last)
            .and_then(|e| e.value("ferrovs_port_rx_packets_total", &[("port", "in")]))
            .is_ok_and(|v| v == n_in)
    });
    if !seen {
        return Err(format!("the scrape never showed {n_in} packets in:\n{last}\n{}", d.log_text()).into());
    }
    // The replay is over and the counters are still, but the slow path refreshes its
    // state machine's counters once a second and the main thread publishes once a
    // second: allow a few publications for the two views to meet.
    let start = Instant::now();
    loop {
        match scrape_agrees_with_ctl(&d, &addr, n_in) {
            Ok(()) => break,
            Err(e) if start.elapsed() > Duration::from_secs(10) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
    let (code, _) = http_get(&addr, "/")?;
    if code != 404 {
        return Err(format!("GET /: {code}, want 404").into());
    }
    drop(d.stop());
    Ok(())
}

/// One scrape against `ferrovs-ctl --json show` and `pmd-stats-show` taken just before.
fn scrape_agrees_with_ctl(d: &Daemon, addr: &str, n_in: f64) -> Result<(), Failed> {
    let show = d.ctl_json(&["show"]);
    let stats = d.ctl_json(&["pmd-stats-show"]);
    let (code, body) = http_get(addr, "/metrics")?;
    if code != 200 {
        return Err(format!("GET /metrics: {code}").into());
    }
    let e = parse_exposition(&body).map_err(|m| format!("{m}\n{body}"))?;
    let check = |name: &str, with: &[(&str, &str)], want: &serde_json::Value| -> Result<(), Failed> {
        let got = e.value(name, with)?;
        let want = want.as_f64().ok_or_else(|| format!("{want} is not a number ({name})"))?;
        if got != want {
            return Err(format!("{name}{with:?} = {got}, ferrovs-ctl says {want}").into());
        }
        Ok(())
    };
    let mut rx_total = 0.0;
    for b in show["bridges"].as_array().ok_or("no bridges")? {
        let bridge = b["name"].as_str().ok_or("bridge name")?;
        for p in b["ports"].as_array().ok_or("no ports")? {
            let port = p["name"].as_str().ok_or("port name")?;
            let l = [("bridge", bridge), ("port", port)];
            rx_total += p["rx_packets"].as_f64().unwrap_or(0.0);
            check("ferrovs_port_rx_packets_total", &l, &p["rx_packets"])?;
            check("ferrovs_port_rx_bytes_total", &l, &p["rx_bytes"])?;
            check("ferrovs_port_tx_packets_total", &l, &p["tx_packets"])?;
            check("ferrovs_port_tx_bytes_total", &l, &p["tx_bytes"])?;
            for reason in [
                "tx_full",
                "no_rule",
                "action",
                "malformed",
                "unsupported",
                "no_mbuf",
                "oversize",
                "admin_down_rx",
                "admin_down_tx",
            ] {
                let with = [l[0], l[1], ("reason", reason)];
                check("ferrovs_port_drops_total", &with, &p[&format!("drop_{reason}")])?;
            }
        }
    }
    if rx_total != n_in || e.value("ferrovs_port_drops_total", &[("port", "in"), ("reason", "malformed")])? == 0.0 {
        return Err(format!("the replay did not move the counters as expected:\n{body}").into());
    }
    for p in stats["pmds"].as_array().ok_or("no pmds")? {
        let pmd = p["pmd"].to_string();
        let l = [("pmd", pmd.as_str())];
        check("ferrovs_pmd_packets_total", &l, &p["packets"])?;
        check("ferrovs_pmd_upcalls_total", &l, &p["upcalls_sent"])?;
        check("ferrovs_pmd_megaflows", &l, &p["megaflows"])?;
        check("ferrovs_pmd_masks", &l, &p["masks"])?;
        for (level, field) in [("emc", "emc_hits"), ("signature", "signature_hits"), ("megaflow", "megaflow_hits")] {
            check("ferrovs_pmd_lookups_total", &[l[0], ("level", level)], &p[field])?;
        }
        check("ferrovs_pmd_lookups_total", &[l[0], ("level", "miss")], &p["misses"])?;
        for reason in ["upcall_queue_full", "park_full", "park_timeout", "bad_output"] {
            check("ferrovs_pmd_drops_total", &[l[0], ("reason", reason)], &p[&format!("drop_{reason}")])?;
        }
    }
    let sp = &stats["slow_path"];
    check("ferrovs_slow_path_upcalls_handled_total", &[], &sp["upcalls_handled"])?;
    check("ferrovs_slow_path_installs_total", &[], &sp["state"]["installs"])?;
    check("ferrovs_slow_path_rule_changes_total", &[], &sp["state"]["rule_changes"])?;
    check("ferrovs_slow_path_mac_events_total", &[("event", "learned")], &sp["state"]["mac_learned"])?;
    if sp["upcalls_handled"].as_u64().unwrap_or(0) == 0 {
        return Err(format!("no upcalls for a new capture: {sp}").into());
    }
    // The histogram: cumulative buckets with increasing bounds ending at +Inf, whose
    // count is the handled upcalls.
    let h = "ferrovs_slow_path_upcall_duration_seconds";
    if e.types.get(h).map(String::as_str) != Some("histogram") {
        return Err(format!("{h} is not declared a histogram").into());
    }
    let mut buckets: Vec<(f64, f64)> = e
        .samples
        .iter()
        .filter(|s| s.name == format!("{h}_bucket"))
        .map(|s| Ok((s.labels.get("le").ok_or("bucket without le")?.parse::<f64>().map_err(|_| "bad le")?, s.value)))
        .collect::<Result<_, &str>>()?;
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let monotone = buckets.windows(2).all(|w| w[0].1 <= w[1].1);
    let count = e.value(&format!("{h}_count"), &[])?;
    let last = buckets.last().copied().unwrap_or_default();
    if buckets.len() < 2 || !monotone || last != (f64::INFINITY, count) || e.value(&format!("{h}_sum"), &[])? <= 0.0 {
        return Err(format!("bad upcall histogram {buckets:?} count {count}").into());
    }
    check(&format!("{h}_count"), &[], &sp["upcalls_handled"])
}

/// `[eal] file_prefix`: DPDK's runtime directory is `RUNTIME_DIRECTORY/dpdk/PREFIX`
/// (the test points RUNTIME_DIRECTORY at its own directory, as systemd does for the
/// service), and the stock `dpdk-telemetry.py -f PREFIX` reads ferrovs's commands there.
pub fn dpdk_telemetry_with_file_prefix() -> Result<(), Failed> {
    let dir = TempDir::new();
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir)?;
    let run = run_dir.to_str().ok_or("utf8 path")?.to_string();
    let prefix = unique("fvt");
    let config = format!(
        "{}{}",
        preamble().replace("[eal]\n", &format!("[eal]\nfile_prefix = \"{prefix}\"\n")),
        crate::ports_ok()
    );
    let d = Daemon::start_in_with_env(dir, &config, &[("RUNTIME_DIRECTORY", &run)]);
    let socket = run_dir.join("dpdk").join(&prefix).join("dpdk_telemetry.v2");
    if !wait_until(Duration::from_secs(10), || socket.exists()) {
        return Err(format!("no telemetry socket at {}:\n{}", socket.display(), d.log_text()).into());
    }
    // The first publication is made before the daemon answers `show`, so every command
    // has numbers to return.
    let commands =
        ["/ferrovs/pmd_stats", "/ferrovs/ports", "/ferrovs/flows", "/ferrovs/pmd_stats,0", "/ferrovs/ports,a"];
    let mut child = Command::new("dpdk-telemetry.py")
        .args(["-f", &prefix])
        .env("RUNTIME_DIRECTORY", &run)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("dpdk-telemetry.py cannot run ({e}); deploy/setup.sh installs dpdk-dev"))?;
    child.stdin.take().ok_or("stdin")?.write_all(format!("{}\n", commands.join("\n")).as_bytes())?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let replies: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    if !out.status.success() || replies.len() != commands.len() {
        return Err(format!(
            "dpdk-telemetry.py: {} JSON replies to {} commands:\n{text}{}",
            replies.len(),
            commands.len(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    // A reply is keyed by the command without its parameter.
    let reply = |i: usize| &replies[i][commands[i].split(',').next().unwrap_or_default()];
    let keys = |v: &serde_json::Value, want: &[&str]| -> Result<(), Failed> {
        for k in want {
            if v.get(k).is_none() {
                return Err(format!("no {k:?} in {v}").into());
            }
        }
        Ok(())
    };
    if reply(0) != &serde_json::json!([0]) {
        return Err(format!("/ferrovs/pmd_stats: {}, want the one PMD index", reply(0)).into());
    }
    if reply(1) != &serde_json::json!(["a", "b"]) {
        return Err(format!("/ferrovs/ports: {}, want the port names", reply(1)).into());
    }
    keys(reply(2), &["megaflows_per_pmd", "masks_per_pmd", "upcalls", "installs", "revalidated", "rule_changes"])?;
    keys(reply(3), &["pmd", "core", "packets", "busy_cycles", "emc_hits", "misses", "megaflows", "masks"])?;
    keys(reply(4), &["name", "number", "rx_packets", "tx_packets", "drop_no_rule", "drop_tx_full"])?;
    if reply(4)["number"] != 1 {
        return Err(format!("/ferrovs/ports,a: {}", reply(4)).into());
    }
    drop(d.stop());
    Ok(())
}

/// `deploy/hugepages.sh` applies `ferrovsd --print-hugepages`: each node's count lands
/// in that node's `nr_hugepages` (a scratch sysfs tree stands in for /sys), a size the
/// machine lacks fails naming it, and a config without `[hugepages]` changes nothing.
pub fn hugepages_script_applies_the_plan() -> Result<(), Failed> {
    let dir = TempDir::new();
    let sys = dir.join("sys");
    let nr = |node: usize| sys.join(format!("devices/system/node/node{node}/hugepages/hugepages-2048kB/nr_hugepages"));
    for node in 0..3 {
        std::fs::create_dir_all(nr(node).parent().ok_or("parent")?)?;
        std::fs::write(nr(node), "9\n")?;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/hugepages.sh");
    let run = |section: &str| -> Result<(bool, String), Failed> {
        let cfg = dir.join("hp.toml");
        std::fs::write(&cfg, format!("{section}\n{}", crate::ports_ok()))?;
        let out = Command::new(&script)
            .arg(&cfg)
            .env("FERROVSD", ferrovs_e2e::bin("ferrovsd"))
            .env("FERROVS_SYSFS", &sys)
            .env_remove("INVOCATION_ID")
            .output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    };
    let counts = || -> Result<Vec<String>, Failed> {
        (0..3).map(|n| Ok(std::fs::read_to_string(nr(n))?.trim().to_string())).collect()
    };
    let (ok, text) = run("")?;
    if !ok || counts()? != ["9", "9", "9"] {
        return Err(format!("no [hugepages] changed something ({ok}): {text} {:?}", counts()?).into());
    }
    let (ok, text) = run("[hugepages]\nsize = \"2M\"\npages_per_node = [3, 0, 7]")?;
    if !ok || counts()? != ["3", "0", "7"] {
        return Err(format!("per-node plan not applied ({ok}): {text} {:?}", counts()?).into());
    }
    let (ok, text) = run("[hugepages]\nsize = \"2M\"\npages = 5")?;
    if !ok || counts()? != ["5", "0", "7"] {
        return Err(format!("`pages` is not node 0's count ({ok}): {text} {:?}", counts()?).into());
    }
    let (ok, text) = run("[hugepages]\nsize = \"1G\"\npages = 1")?;
    if ok || !text.contains("1048576") {
        return Err(format!("a missing page size was not reported ({ok}): {text}").into());
    }
    let (ok, text) = run("[hugepages]\nsize = \"3M\"\npages = 1")?;
    if ok || !text.contains("hugepages.size") {
        return Err(format!("a bad config was not refused with its key ({ok}): {text}").into());
    }
    Ok(())
}

/// 2 MiB pages added to the kernel's pool for as long as this lives. The pool is shared
/// by every test process on the machine, so each change is a read-modify-write under a
/// lock (`flock`), and dropping removes exactly what was added (never writing back an old
/// value that would take pages another test added since).
struct HugepageReservation {
    added: u64,
}

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

impl HugepageReservation {
    fn add(pages: u64) -> Result<HugepageReservation, Failed> {
        let (before, after) = adjust_hugepages(&format!("+ {pages}"))?;
        let r = HugepageReservation { added: after.saturating_sub(before) };
        if r.added < pages {
            return Err(format!(
                "could reserve only {} of {pages} more 2 MiB hugepages ({before} -> {after})",
                r.added
            )
            .into());
        }
        Ok(r)
    }
}

impl Drop for HugepageReservation {
    fn drop(&mut self) {
        if self.added > 0 {
            let _ = adjust_hugepages(&format!("- {}", self.added));
        }
    }
}

/// `nr_hugepages = nr_hugepages OP N` under the machine-wide lock: (before, after).
fn adjust_hugepages(op: &str) -> Result<(u64, u64), Failed> {
    let lock = std::env::temp_dir().join("ferrovs-e2e-nr_hugepages.lock");
    let script = format!(
        "b=$(cat {NR_HUGEPAGES}); n=$((b {op})); [ $n -lt 0 ] && n=0; echo $n > {NR_HUGEPAGES}; echo $b $(cat {NR_HUGEPAGES})"
    );
    let out = Command::new("flock").arg(&lock).args(["sh", "-c", &script]).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let nums: Vec<u64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    match nums[..] {
        [b, a] if out.status.success() => Ok((b, a)),
        _ => Err(format!("{NR_HUGEPAGES} {op}: {text}{}", String::from_utf8_lossy(&out.stderr)).into()),
    }
}

/// A private hugetlbfs (2 MiB pages) mounted on a fresh directory, unmounted on drop.
struct HugetlbfsMount {
    dir: TempDir,
}

impl HugetlbfsMount {
    fn new() -> Result<HugetlbfsMount, Failed> {
        let dir = TempDir::new();
        let out =
            Command::new("mount").args(["-t", "hugetlbfs", "-o", "pagesize=2M", "none"]).arg(&dir.path).output()?;
        if !out.status.success() {
            return Err(format!("mount hugetlbfs: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(HugetlbfsMount { dir })
    }
}

impl Drop for HugetlbfsMount {
    fn drop(&mut self) {
        // Lazy: a daemon killed by a panicking test may still hold it for a moment.
        let _ = Command::new("umount").arg("-l").arg(&self.dir.path).status();
    }
}

/// The frames of every Enhanced Packet Block of a pcapng file. A walk over the blocks
/// (type, length, body) rather than the pcap-file crate: DPDK 22.11 ends block options
/// without `opt_endofopt`, which the spec allows and pcap-file 2.0 refuses ("Invalid
/// option"). Options are not read; only the frames are.
fn read_pcapng(path: &std::path::Path) -> Result<Vec<Vec<u8>>, Failed> {
    let bytes = std::fs::read(path)?;
    let bad = |why: &str| -> Failed { format!("{}: {why}", path.display()).into() };
    // The Section Header Block's byte-order magic says how to read every number.
    let little = match bytes.get(8..12) {
        Some([0x4d, 0x3c, 0x2b, 0x1a]) => true,
        Some([0x1a, 0x2b, 0x3c, 0x4d]) => false,
        _ => return Err(bad("no pcapng section header")),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    };
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (kind, len) =
            (u32_at(at).ok_or_else(|| bad("cut block"))?, u32_at(at + 4).ok_or_else(|| bad("cut block"))?);
        let len = len as usize;
        if len < 12 || !len.is_multiple_of(4) || at + len > bytes.len() {
            return Err(bad(&format!("bad block length {len} at {at}")));
        }
        // Enhanced Packet Block: interface, timestamp (2 words), captured and original
        // lengths, then the frame.
        if kind == 6 {
            let caplen = u32_at(at + 20).ok_or_else(|| bad("cut packet block"))? as usize;
            let frame = bytes.get(at + 28..at + 28 + caplen).filter(|_| 28 + caplen <= len - 4);
            frames.push(frame.ok_or_else(|| bad("frame longer than its block"))?.to_vec());
        }
        at += len;
    }
    Ok(frames)
}

/// `[eal] capture`: `dpdk-dumpcap` attaches to a running ferrovsd (hugepages in a private
/// hugetlbfs, its own file prefix) and captures port 1, a net_tap whose interface sits in
/// a namespace with IPv6 off (so the kernel sends nothing of its own); the frames of the
/// mixed capture are written to that interface once dumpcap counts packets, and
/// the pcapng dumpcap writes must hold exactly those frames, byte for byte, in order.
/// After ferrovsd stops, none of its hugepage or runtime files are left.
pub fn dumpcap_captures_a_port() -> Result<(), Failed> {
    let _pages = HugepageReservation::add(256)?;
    let huge = HugetlbfsMount::new()?;
    let dir = TempDir::new();
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir)?;
    let run = run_dir.to_str().ok_or("utf8 path")?.to_string();
    let prefix = unique("fvc");
    let tap = unique("fvc");
    let eal = format!(
        "[eal]\ncapture = true\nfile_prefix = \"{prefix}\"\nhuge_dir = \"{}\"\n",
        huge.dir.path.to_str().ok_or("utf8 path")?
    );
    let config = format!(
        "{}{}",
        preamble().replace("hugepages = false", "hugepages = true").replace("[eal]\n", &eal),
        crate::bridge(
            r#"flows = ["in_port=1,actions=output:2"]"#,
            &[("a", 1, &format!("net_tap0,iface={tap}")), ("b", 2, "net_null1,no-rx=1")]
        )
    );
    let d = Daemon::start_in_with_env(dir, &config, &[("RUNTIME_DIRECTORY", &run)]);
    let ns = ferrovs_e2e::Netns::new();
    ns.quiet_ipv6();
    ferrovs_e2e::run_ok("ip", &["link", "set", &tap, "netns", &ns.name]);
    ns.exec_ok(&["ip", "link", "set", &tap, "up"]);

    let sent: Vec<Vec<u8>> = frames::mixed_capture().into_iter().filter(|(_, runt)| !runt).map(|(f, _)| f).collect();
    let out = d.dir.join("dumpcap.pcapng");
    let err = d.dir.join("dumpcap.err");
    let mut dumpcap = Command::new("dpdk-dumpcap")
        .arg(format!("--file-prefix={prefix}"))
        .args(["-i", "net_tap0", "-c", &sent.len().to_string(), "-w"])
        .arg(&out)
        .env("RUNTIME_DIRECTORY", &run)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err)?)
        .spawn()
        .map_err(|e| format!("dpdk-dumpcap cannot run ({e}); deploy/setup.sh installs dpdk-dev"))?;
    let log = || std::fs::read_to_string(&err).unwrap_or_default();
    // dumpcap prints its running count on stderr once the capture is enabled.
    if !wait_until(Duration::from_secs(30), || log().contains("Packets captured:")) {
        let _ = dumpcap.kill();
        let _ = dumpcap.wait();
        return Err(format!("dpdk-dumpcap never started capturing:\n{}\n{}", log(), d.log_text()).into());
    }
    // One raw socket writes the frames in order onto the tap, which ferrovsd receives.
    ns.send_frames(&tap, &sent);
    let exited = wait_until(Duration::from_secs(20), || matches!(dumpcap.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = dumpcap.kill();
    }
    let status = dumpcap.wait()?;
    if !exited || !status.success() {
        return Err(format!("dpdk-dumpcap did not finish ({status}):\n{}", log()).into());
    }
    let got = read_pcapng(&out)?;
    if got != sent {
        let first = got.iter().zip(&sent).position(|(a, b)| a != b);
        return Err(format!("captured {} frames, sent {}; first difference at {first:?}", got.len(), sent.len()).into());
    }
    let port_a = d.port_counters("a").ok_or("port a")?;
    if crate::counter(&port_a, "rx_packets") < sent.len() as u64 {
        return Err(format!("ferrovsd received fewer frames than were captured: {port_a}").into());
    }
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    let left: Vec<String> =
        std::fs::read_dir(&huge.dir.path)?.flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    if !left.is_empty() {
        return Err(format!("hugepage files left after exit: {left:?}").into());
    }
    if run_dir.join("dpdk").join(&prefix).exists() {
        return Err(format!("runtime directory of {prefix} left after exit").into());
    }
    Ok(())
}

/// A net_tap port whose interface was moved into another namespace forwards, and `show`
/// says its link state is unknown (not "down", which the tap driver would report: it
/// looks for the interface in ferrovsd's namespace); a tap left in ferrovsd's namespace
/// reads "up". Text, JSON and metrics agree.
pub fn tap_in_another_namespace_reads_unknown() -> Result<(), Failed> {
    let tap_c = unique("fvl");
    let extra = format!("\n[[bridge.port]]\nname = \"c\"\nnumber = 3\ndevargs = \"net_tap2,iface={tap_c}\"\n");
    let addr = format!("127.0.0.1:{}", free_loopback_port()?);
    let dir = TempDir::new();
    let (d, host, _guest) = crate::flows::two_hosts_in(
        dir,
        &format!(
            "flows = [\"in_port=1,actions=output:2\", \"in_port=2,actions=output:1\"]\n\n[metrics]\nlisten = \"{addr}\"\n"
        ),
        &extra,
    );
    if host.ping("198.18.0.2", 2, 2) != (2, 2) {
        return Err(format!("no forwarding between the namespaces\n{}", d.log_text()).into());
    }
    let show = d.ctl_json(&["show"]);
    let port = |name: &str| -> Result<serde_json::Value, Failed> {
        show["bridges"][0]["ports"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned())
            .ok_or_else(|| format!("no port {name} in {show}").into())
    };
    for (name, state, up) in [("a", "unknown", false), ("b", "unknown", false), ("c", "up", true)] {
        let p = port(name)?;
        if p["link_state"] != state || p["link_up"] != up {
            return Err(format!("port {name}: want link_state {state}, link_up {up}: {p}").into());
        }
    }
    let text = String::from_utf8_lossy(&d.ctl(&["show"]).stdout).into_owned();
    let line = |n: u32| text.lines().find(|l| l.trim_start().starts_with(&format!("port {n} "))).unwrap_or_default();
    if !line(1).contains("link unknown") || !line(3).contains("link up") {
        return Err(format!("ferrovs-ctl show:\n{text}").into());
    }
    // The endpoint reads the once-a-second publication.
    let mut body = String::new();
    let agrees = wait_until(Duration::from_secs(5), || {
        let Ok((200, b)) = http_get(&addr, "/metrics") else { return false };
        body = b;
        let Ok(e) = parse_exposition(&body) else { return false };
        let state = |port: &str, s: &str| e.value("ferrovs_port_link_state", &[("port", port), ("state", s)]).ok();
        state("a", "unknown") == Some(1.0)
            && state("a", "down") == Some(0.0)
            && state("c", "up") == Some(1.0)
            && e.value("ferrovs_port_link_up", &[("port", "a")]).is_err()
            && e.value("ferrovs_port_link_up", &[("port", "c")]).ok() == Some(1.0)
    });
    if !agrees {
        return Err(format!("metrics do not show the link states:\n{body}").into());
    }
    Ok(())
}
