//! Bridges and ports changed while traffic flows (ferrovs-ctl add-br / del-br /
//! add-port / del-port / set-port), written back so that kill -9 and a start come back
//! to the same switch.

use std::time::Duration;

use ferrovs_e2e::{Daemon, Netns, TempDir, unique, wait_until};
use libtest_mimic::Failed;

use crate::counter;
use crate::flows::{ctl_ok, two_hosts_in};

/// `list-br`, each bridge's `list-ports`, and br0's rules: what must survive a restart.
fn topology(d: &Daemon) -> Result<Vec<String>, Failed> {
    let mut out = Vec::new();
    for br in ctl_ok(d, &["list-br"])?.lines() {
        out.push(format!("bridge {br}"));
        for p in ctl_ok(d, &["list-ports", br])?.lines() {
            out.push(format!("  port {p}"));
        }
    }
    out.extend(crate::flows::ctl_rules(d)?);
    Ok(out)
}

/// 20 ports on 3 bridges added and removed while a ping runs between two other ports:
/// no ping is lost. Then a tap port added to the running bridge carries a third host's
/// traffic, its removal leaves no megaflow pointing at it, an MTU change drops (and
/// counts) oversize frames, and kill -9 plus a start restores the same bridges, ports
/// and rules.
pub fn ports_come_and_go_under_traffic() -> Result<(), Failed> {
    let (d, host, guest) = two_hosts_in(TempDir::new(), r#"flows = ["actions=normal"]"#, "");
    if host.ping("198.18.0.2", 1, 3) != (1, 1) {
        return Err(format!("first ping lost\n{}", d.log_text()).into());
    }
    // A steady ping in the background while the switch changes under it.
    let ns = host.name.clone();
    let pinger = std::thread::spawn(move || {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "ping", "-n", "-q", "-c", "60", "-i", "0.05", "-W", "1", "198.18.0.2"])
            .output();
        out.map(|o| ferrovs_e2e::parse_ping_summary(&String::from_utf8_lossy(&o.stdout))).unwrap_or((0, 0))
    });
    let mut null = 10;
    for round in 1..=3 {
        let br = format!("brx{round}");
        ctl_ok(&d, &["add-br", &br])?;
        for _ in 0..7 {
            let (name, devargs) = (format!("n{null}"), format!("net_null{null},no-rx=1"));
            ctl_ok(&d, &["add-port", if null % 2 == 0 { &br } else { "br0" }, &name, &devargs])?;
            null += 1;
        }
        // Refused without --force while it has ports; nothing changes.
        if d.ctl(&["del-br", &br]).status.success() {
            return Err(format!("del-br {br} with ports was not refused").into());
        }
        ctl_ok(&d, &["del-br", "--force", &br])?;
    }
    for n in 10..null {
        if n % 2 == 1 {
            ctl_ok(&d, &["del-port", "br0", &format!("n{n}")])?;
        }
    }
    let (tx, rx) = pinger.join().map_err(|_| "ping thread panicked")?;
    if tx != 60 || rx != 60 {
        return Err(format!("pings lost while ports changed: {rx}/{tx}\n{}", d.log_text()).into());
    }
    let ports = ctl_ok(&d, &["list-ports", "br0"])?;
    if ports.lines().collect::<Vec<_>>() != ["a", "b"] {
        return Err(format!("br0's ports after the churn: {ports:?}").into());
    }

    // Refusals say why and change nothing.
    for (args, why) in [
        (vec!["add-port", "br0", "a", "net_null90,no-rx=1"], "exists"),
        (vec!["add-port", "br0", "z", "net_null90,no-rx=1", "--number", "2"], "in use"),
        (vec!["add-port", "br0", "z", "net_null90,no-rx=1", "--number", "65280"], "out of range"),
        (vec!["add-port", "br0", "z", "net_nosuchdriver0"], "net_nosuchdriver0"),
        (vec!["add-port", "nobr", "z", "net_null90,no-rx=1"], "no bridge"),
    ] {
        let out = d.ctl(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !err.contains(why) {
            return Err(
                format!("ferrovs-ctl {}: expected a refusal naming {why:?}, got {err:?}", args.join(" ")).into()
            );
        }
    }

    // A third host on a port added at run time.
    let tap_c = unique("fvc");
    ctl_ok(&d, &["add-port", "br0", "c", &format!("net_tap7,iface={tap_c}"), "--number", "3"])?;
    let third = Netns::new();
    third.adopt(&tap_c, "198.18.0.3/24");
    let (tx, rx) = host.ping("198.18.0.3", 3, 3);
    if rx == 0 {
        return Err(format!("no reply through the added port ({rx}/{tx})\n{}", d.log_text()).into());
    }
    let dp = ctl_ok(&d, &["dump-dp-flows"])?;
    if !dp.contains("in_port(3)") {
        return Err(format!("no megaflow from the added port:\n{dp}").into());
    }
    ctl_ok(&d, &["del-port", "c"])?;
    let dp = ctl_ok(&d, &["dump-dp-flows"])?;
    let stale: Vec<&str> = dp.lines().filter(|l| l.contains("in_port(3)") || l.contains("actions:3")).collect();
    if !stale.is_empty()
        || dp.lines().any(|l| l.split("actions:").nth(1).is_some_and(|a| a.split(',').any(|x| x == "3")))
    {
        return Err(format!("megaflows still use the removed port:\n{dp}").into());
    }

    // MTU: frames longer than MTU + 18 are not sent, and counted.
    ctl_ok(&d, &["set-port", "b", "mtu=1000"])?;
    let (_, rx_small) = host.ping("198.18.0.2", 2, 2);
    let big = host.exec(&["ping", "-n", "-q", "-c", "2", "-W", "1", "-s", "1200", "198.18.0.2"]);
    let (_, rx_big) = ferrovs_e2e::parse_ping_summary(&String::from_utf8_lossy(&big.stdout));
    let oversize =
        wait_until(Duration::from_secs(3), || d.port_counters("b").is_some_and(|p| counter(&p, "drop_oversize") >= 2));
    if rx_small == 0 || rx_big != 0 || !oversize {
        return Err(format!(
            "MTU 1000: small pings answered {rx_small}, 1200-byte pings answered {rx_big}, b = {:?}",
            d.port_counters("b")
        )
        .into());
    }

    // Crash and start again on the written-back config: the same switch.
    ctl_ok(&d, &["add-br", "br9"])?;
    ctl_ok(&d, &["add-port", "br9", "n99", "net_null99,no-rx=1", "--mtu", "9000"])?;
    // A queue count change re-creates the port (the MTU stays).
    ctl_ok(&d, &["set-port", "n99", "rx_queues=2"])?;
    let before = topology(&d)?;
    let dir = d.kill();
    drop(guest);
    drop(host);
    let d = Daemon::restart_in(dir, &[]);
    let after = topology(&d)?;
    if after != before {
        return Err(format!("after kill -9:\nbefore {before:?}\nafter  {after:?}").into());
    }
    let mtu = d.port_counters("n99").map(|p| counter(&p, "mtu"));
    if mtu != Some(9000) {
        return Err(format!("n99's MTU after restart: {mtu:?}").into());
    }
    let pmds = d.ctl_json(&["pmd-stats-show"]);
    let queues = pmds["pmds"]
        .as_array()
        .map(|p| {
            p.iter()
                .flat_map(|x| x["rxq_usage"].as_array().cloned().unwrap_or_default())
                .filter(|q| q["port"] == "n99")
                .count()
        })
        .unwrap_or(0);
    if queues != 2 {
        return Err(format!("n99 polls {queues} rx queues after restart, want 2: {pmds}").into());
    }
    drop(d.stop());
    Ok(())
}

/// A net_tap port with 4 rx queues: the kernel spreads the host's flows over them, every
/// queue is polled, `pmd-rxq-show` gives each queue's share, and a rebalance answers.
pub fn multi_queue_tap_spreads_flows() -> Result<(), Failed> {
    let (tap_a, tap_b) = (unique("fqa"), unique("fqb"));
    let config = format!(
        "{}\n[[bridge]]\nname = \"br0\"\nflows = [\"actions=normal\"]\n\n[[bridge.port]]\nname = \"a\"\nnumber = 1\n\
         devargs = \"net_tap0,iface={tap_a}\"\nrx_queues = 4\n\n[[bridge.port]]\nname = \"b\"\nnumber = 2\n\
         devargs = \"net_tap1,iface={tap_b}\"\n",
        crate::preamble()
    );
    let d = Daemon::start_in(TempDir::new(), &config);
    let (host, guest) = (Netns::new(), Netns::new());
    host.adopt(&tap_a, "198.18.0.1/24");
    guest.adopt(&tap_b, "198.18.0.2/24");
    if host.ping("198.18.0.2", 1, 3) != (1, 1) {
        return Err(format!("no ping through the switch\n{}", d.log_text()).into());
    }
    // 200 UDP flows (one source port each) from the host.
    let script = "for i in $(seq 1 200); do echo x > /dev/udp/198.18.0.2/$((5000 + i)); done";
    host.exec_ok(&["bash", "-c", script]);
    let busy_queues = |d: &Daemon| -> usize {
        let v = d.ctl_json(&["pmd-stats-show"]);
        let pmds = v["pmds"].as_array().cloned().unwrap_or_default();
        pmds.iter()
            .flat_map(|p| p["rxq_usage"].as_array().cloned().unwrap_or_default())
            .filter(|q| q["port"] == "a" && q["packets"].as_u64().unwrap_or(0) > 0)
            .count()
    };
    if !wait_until(Duration::from_secs(5), || busy_queues(&d) >= 2) {
        return Err(format!("the flows did not spread: {}", d.ctl_json(&["pmd-stats-show"])).into());
    }
    let show = ferrovs_e2e::run_ok(
        "ovs-appctl",
        &["-t", &d.dir.join("ferrovsd.ctl").display().to_string(), "dpif-netdev/pmd-rxq-show"],
    );
    let lines = show.lines().filter(|l| l.contains("port: a") && l.contains("pmd usage:")).count();
    if lines != 4 || show.contains("NOT AVAIL ") {
        return Err(format!("pmd-rxq-show:\n{show}").into());
    }
    ctl_ok(&d, &["pmd-rxq-rebalance"])?;
    if host.ping("198.18.0.2", 2, 2).1 != 2 {
        return Err("no forwarding after the rebalance".into());
    }
    drop(d.stop());
    Ok(())
}

/// `[control] socket_group`: a member of the group may read (`show`, `list-br`) but not
/// change; a user outside it cannot connect at all.
pub fn control_socket_group_reads_only() -> Result<(), Failed> {
    let config = format!(
        "{}{}",
        crate::preamble().replace("[control]\n", "[control]\nsocket_group = \"nogroup\"\n"),
        crate::ports_ok()
    );
    let d = Daemon::start_in(TempDir::new(), &config);
    let socket = d.dir.join("ctl.sock");
    let as_user = |group: &str, args: &[&str]| {
        let ctl = ferrovs_e2e::bin("ferrovs-ctl");
        let mut argv = vec!["--reuid=nobody", "--regid", group, "--clear-groups", ctl.to_str().unwrap_or_default()];
        argv.extend(["-s", socket.to_str().unwrap_or_default()]);
        argv.extend_from_slice(args);
        ferrovs_e2e::run("setpriv", &argv)
    };
    let show = as_user("nogroup", &["list-br"]);
    if !show.status.success() || String::from_utf8_lossy(&show.stdout) != "br0\n" {
        return Err(format!("group member could not read: {}", String::from_utf8_lossy(&show.stderr)).into());
    }
    let change = as_user("nogroup", &["add-br", "brz"]);
    if change.status.success() || !String::from_utf8_lossy(&change.stderr).contains("permission denied") {
        return Err(format!("group member changed the switch: {}", String::from_utf8_lossy(&change.stderr)).into());
    }
    let outsider = as_user("daemon", &["list-br"]);
    if outsider.status.success() {
        return Err("a user outside the socket group could read".into());
    }
    if ctl_ok(&d, &["list-br"])? != "br0\n" {
        return Err("the refused change changed something".into());
    }
    drop(d.stop());
    Ok(())
}

/// Two bridges, each with its own ports 1 and 2 (OpenFlow numbers are per bridge), each
/// forwarding between its own two hosts with `in_port=1,actions=output:2` rules; then a
/// third port 3 on each bridge added at run time.
pub fn two_bridges_each_with_port_1() -> Result<(), Failed> {
    let taps: Vec<String> = (0..4).map(|i| unique(&format!("fb{i}"))).collect();
    let rules = r#"flows = ["in_port=1,actions=output:2", "in_port=2,actions=output:1"]"#;
    let mut config = crate::preamble();
    for (b, br) in ["br0", "br1"].iter().enumerate() {
        config += &format!("\n[[bridge]]\nname = \"{br}\"\n{rules}\n");
        for n in 1..=2u32 {
            let i = b * 2 + (n as usize - 1);
            config += &format!(
                "\n[[bridge.port]]\nname = \"p{i}\"\nnumber = {n}\ndevargs = \"net_tap{i},iface={}\"\n",
                taps[i]
            );
        }
    }
    let d = Daemon::start_in(TempDir::new(), &config);
    let hosts: Vec<Netns> = (0..4).map(|_| Netns::new()).collect();
    for (i, h) in hosts.iter().enumerate() {
        h.adopt(&taps[i], &format!("198.18.{}.{}/24", i / 2, i % 2 + 1));
    }
    for b in 0..2 {
        let dst = format!("198.18.{b}.2");
        let (tx, rx) = hosts[b * 2].ping(&dst, 3, 2);
        if rx == 0 {
            return Err(format!("bridge br{b}: no reply from {dst} ({rx}/{tx})\n{}", d.log_text()).into());
        }
    }
    // Each bridge's view of its ports: OpenFlow numbers 1 and 2 on both.
    let show = d.ctl_json(&["show"]);
    for b in show["bridges"].as_array().cloned().unwrap_or_default() {
        let numbers: Vec<u64> =
            b["ports"].as_array().map(|p| p.iter().filter_map(|x| x["number"].as_u64()).collect()).unwrap_or_default();
        if numbers != [1, 2] {
            return Err(format!("bridge {}: port numbers {numbers:?}", b["name"]).into());
        }
    }
    // Port 3 on both bridges at run time, each a different datapath port.
    ctl_ok(&d, &["add-port", "br0", "x0", "net_null20,no-rx=1", "--number", "3"])?;
    ctl_ok(&d, &["add-port", "br1", "x1", "net_null21,no-rx=1", "--number", "3"])?;
    if hosts[2].ping("198.18.1.2", 2, 2).1 == 0 {
        return Err("br1 stopped forwarding after the port-3 additions".into());
    }
    drop(d.stop());
    Ok(())
}
