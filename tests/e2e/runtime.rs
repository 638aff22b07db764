//! Bridges and ports changed while traffic flows (ferrovs-ctl add-br / del-br /
//! add-port / del-port / set-port), written back so that kill -9 and a start come back
//! to the same switch.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ferrovs_config::openflow::{PortReason, Version};
use ferrovs_e2e::{Daemon, Netns, TempDir, run_ok, unique, wait_until};
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

/// `count` pings 50 ms apart from `host` to `dst`, in a thread: (sent, received).
fn ping_in_background(host: &Netns, count: u32, dst: &str) -> std::thread::JoinHandle<(u32, u32)> {
    let (ns, count, dst) = (host.name.clone(), count.to_string(), dst.to_string());
    std::thread::spawn(move || {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "ping", "-n", "-q", "-c", &count, "-i", "0.05", "-W", "1", &dst])
            .output();
        out.map(|o| ferrovs_e2e::parse_ping_summary(&String::from_utf8_lossy(&o.stdout))).unwrap_or((0, 0))
    })
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
    let pinger = ping_in_background(&host, 60, "198.18.0.2");
    let mut null = 10;
    for _ in 1..=3 {
        // Each bridge has its internal port, a TAP named as the bridge: unique names.
        let br = unique("fbx");
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
    // ovs-vsctl's form with the bridge; a bridge the port is not on is refused.
    if d.ctl(&["set-port", "nosuchbr", "b", "mtu=1000"]).status.success() {
        return Err("set-port on a bridge without that port was not refused".into());
    }
    ctl_ok(&d, &["set-port", "br0", "b", "mtu=1000"])?;
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
    let br9 = unique("fb9");
    ctl_ok(&d, &["add-br", &br9])?;
    // The mbufs were sized at start for the config's MTUs (1500): a jumbo MTU at run time
    // is refused, saying how to get it.
    let jumbo = d.ctl(&["add-port", &br9, "n99", "net_null99,no-rx=1", "--mtu", "9000"]);
    let said = String::from_utf8_lossy(&jumbo.stderr).to_string() + &String::from_utf8_lossy(&jumbo.stdout);
    if jumbo.status.success() || !said.contains("MTU 9000 is above 2022") || !said.contains("restart") {
        return Err(format!("add-port with MTU 9000 on a switch sized for 1500: {said}").into());
    }
    ctl_ok(&d, &["add-port", &br9, "n99", "net_null99,no-rx=1", "--mtu", "2000"])?;
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
    if mtu != Some(2000) {
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
        "{}\n[[bridge]]\nname = \"br0\"\ninternal_port = false\nflows = [\"actions=normal\"]\n\n[[bridge.port]]\nname = \"a\"\nnumber = 1\n\
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
        config += &format!("\n[[bridge]]\nname = \"{br}\"\ninternal_port = false\n{rules}\n");
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

/// A network interface of the host namespace that a test made, deleted when dropped
/// (whatever happened in the test).
struct HostLink(String);

impl Drop for HostLink {
    fn drop(&mut self) {
        if ferrovs_e2e::exists(&std::path::Path::new("/sys/class/net").join(&self.0)) {
            let _ = ferrovs_e2e::run("ip", &["link", "del", &self.0]);
        }
    }
}

/// Gives the host-namespace interface `iface` `addr_cidr` and sets it up.
fn host_address(iface: &str, addr_cidr: &str) {
    run_ok("ip", &["addr", "add", addr_cidr, "dev", iface]);
    run_ok("ip", &["link", "set", iface, "up"]);
}

/// `show`'s link state of port `name` (`up`, `down`, `unknown`, `detached`).
fn link_state(d: &Daemon, name: &str) -> String {
    let show = d.ctl_json(&["show"]);
    let ports = show["bridges"].as_array().cloned().unwrap_or_default();
    ports
        .iter()
        .flat_map(|b| b["ports"].as_array().cloned().unwrap_or_default())
        .find(|p| p["name"] == name)
        .and_then(|p| p["link_state"].as_str().map(str::to_string))
        .unwrap_or_else(|| "absent".into())
}

/// A bridge's internal port (on by default): a TAP named as the bridge, down until the
/// host sets it up, then addressed by the host and reachable through the bridge by a
/// host in a namespace; `LOCAL` in rules (`in_port=LOCAL`, `actions=LOCAL`) steers that
/// traffic; `show` and `ovs-ofctl show` name it LOCAL; `list-ports` does not list it (as
/// ovs-vsctl); `del-port` refuses it and `del-br` removes it.
pub fn internal_port_reaches_the_host() -> Result<(), Failed> {
    let (br, tap_b) = (unique("fbl"), unique("fib"));
    let config = format!(
        "{}\n[[bridge]]\nname = \"{br}\"\nflows = [\"actions=normal\"]\n\n[[bridge.port]]\nname = \"b\"\nnumber = 1\n\
         devargs = \"net_tap0,iface={tap_b}\"\n",
        crate::preamble()
    );
    let d = Daemon::start_in(TempDir::new(), &config);
    let _local = HostLink(br.clone());
    let guest = Netns::new();
    guest.adopt(&tap_b, "198.19.9.2/24");
    let flags = std::fs::read_to_string(format!("/sys/class/net/{br}/flags")).unwrap_or_default();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(1);
    if flags & 1 != 0 {
        return Err(format!("internal port {br} is not down at start (flags {flags:#x})\n{}", d.log_text()).into());
    }
    host_address(&br, "198.19.9.1/24");
    let (tx, rx) = guest.ping("198.19.9.1", 3, 3);
    if rx == 0 {
        return Err(format!("no reply from the host's internal port ({rx}/{tx})\n{}", d.log_text()).into());
    }
    let show = ctl_ok(&d, &["show"])?;
    if !show.contains(&format!("port LOCAL {br} ")) {
        return Err(format!("show does not list the internal port as LOCAL:\n{show}").into());
    }
    if ctl_ok(&d, &["list-ports", &br])? != "b\n" {
        return Err(format!("list-ports {br}: {:?}", ctl_ok(&d, &["list-ports", &br])?).into());
    }
    let mgmt = d.socket.with_file_name(format!("{br}.mgmt"));
    let ofshow = run_ok("ovs-ofctl", &["show", &format!("unix:{}", mgmt.display())]);
    if !ofshow.contains(&format!("LOCAL({br})")) {
        return Err(format!("ovs-ofctl show:\n{ofshow}").into());
    }
    // LOCAL in rules, as OVS writes and prints it.
    ctl_ok(&d, &["del-flows", &br])?;
    ctl_ok(&d, &["add-flow", &br, "in_port=LOCAL,actions=output:1"])?;
    ctl_ok(&d, &["add-flow", &br, "in_port=1,actions=LOCAL"])?;
    let (tx, rx) = guest.ping("198.19.9.1", 3, 3);
    let dumped = ctl_ok(&d, &["dump-flows", &br])?;
    if rx == 0 || !dumped.contains("in_port=LOCAL") || !dumped.contains("actions=LOCAL") {
        return Err(format!("LOCAL rules: {rx}/{tx} pings, rules:\n{dumped}").into());
    }
    let refused = d.ctl(&["del-port", &br, &br]);
    if refused.status.success() || !String::from_utf8_lossy(&refused.stderr).contains("internal port") {
        return Err(format!("del-port of the internal port: {}", String::from_utf8_lossy(&refused.stderr)).into());
    }
    // A bridge name that cannot be an interface name is refused, with the reason.
    let bad = d.ctl(&["add-br", ".."]);
    if bad.status.success() || !String::from_utf8_lossy(&bad.stderr).contains("interface name") {
        return Err(format!("add-br ..: {}", String::from_utf8_lossy(&bad.stderr)).into());
    }
    // So is a name an interface of the host has (the loopback's), and nothing changes.
    let taken = d.ctl(&["add-br", "lo"]);
    if taken.status.success() || !String::from_utf8_lossy(&taken.stderr).contains("interface named lo exists") {
        return Err(format!("add-br lo: {}", String::from_utf8_lossy(&taken.stderr)).into());
    }
    if ctl_ok(&d, &["list-br"])? != format!("{br}\n") {
        return Err(format!("refused add-br changed the bridges: {:?}", ctl_ok(&d, &["list-br"])?).into());
    }
    // The same bridge from the file (reload): its internal port fails, the bridge goes again.
    let cfg = d.dir.join("ferrovs.toml");
    let text = std::fs::read_to_string(&cfg)?;
    std::fs::write(&cfg, format!("{text}\n[[bridge]]\nname = \"lo\"\n"))?;
    let reload = d.ctl(&["reload"]);
    std::fs::write(&cfg, &text)?;
    let why = String::from_utf8_lossy(&reload.stderr);
    if reload.status.success()
        || !why.contains("bridge lo: internal port")
        || ctl_ok(&d, &["list-br"])? != format!("{br}\n")
    {
        return Err(format!(
            "reload with bridge lo: {}, bridges {:?}",
            String::from_utf8_lossy(&reload.stderr),
            ctl_ok(&d, &["list-br"])?
        )
        .into());
    }
    ctl_ok(&d, &["del-br", "--force", &br])?;
    if !wait_until(Duration::from_secs(3), || !ferrovs_e2e::exists(&std::path::Path::new("/sys/class/net").join(&br))) {
        return Err(format!("del-br left the internal port's interface {br}").into());
    }
    drop(d.stop());
    Ok(())
}

/// A TAP deleted under the running switch (`ip link del`) is detached: `show` says so,
/// the log says so, the controller gets a port-status DELETE, and the other ports keep
/// forwarding. Recreated as a persistent multi-queue TAP of the same name, it is
/// reattached (port-status ADD) and forwards again. Ports added and removed at run time
/// reach the controller as ADD and DELETE too.
pub fn removed_tap_detaches_and_returns() -> Result<(), Failed> {
    let (tap_a, tap_b, tap_c) = (unique("fda"), unique("fdb"), unique("fdc"));
    let listen = crate::controller::free_port();
    let mut config = format!(
        "{}\n[[bridge]]\nname = \"br0\"\ninternal_port = false\ncontroller = [\"ptcp:{listen}\"]\n\
         flows = [\"actions=normal\"]\n",
        crate::preamble()
    );
    for (i, tap) in [&tap_a, &tap_b, &tap_c].iter().enumerate() {
        config += &format!(
            "\n[[bridge.port]]\nname = \"{}\"\nnumber = {}\ndevargs = \"net_tap{i},iface={tap}\"\n",
            ["a", "b", "c"][i],
            i + 1
        );
    }
    let d = Daemon::start_in(TempDir::new(), &config);
    let _a = HostLink(tap_a.clone());
    let (guest, third) = (Netns::new(), Netns::new());
    guest.adopt(&tap_b, "198.19.10.2/24");
    third.adopt(&tap_c, "198.19.10.3/24");
    host_address(&tap_a, "198.19.10.1/24");
    let stop = Arc::new(AtomicBool::new(false));
    let statuses = crate::controller::port_status_watcher(
        crate::controller::RawController::connect(listen, Version::Of13)?,
        stop.clone(),
    );
    if guest.ping("198.19.10.1", 3, 3).1 == 0 {
        return Err(format!("no reply from the host's tap\n{}", d.log_text()).into());
    }

    run_ok("ip", &["link", "del", &tap_a]);
    if !wait_until(Duration::from_secs(5), || link_state(&d, "a") == "detached") {
        return Err(format!("a is {} after its TAP was deleted\n{}", link_state(&d, "a"), d.log_text()).into());
    }
    if !d.log_text().contains("port a: its device is gone; detached") {
        return Err(format!("the detach is not in the log:\n{}", d.log_text()).into());
    }
    let (tx, rx) = guest.ping("198.19.10.3", 3, 3);
    if (tx, rx) != (3, 3) {
        return Err(format!("b -> c with a detached: {rx}/{tx}\n{}", d.log_text()).into());
    }

    run_ok("ip", &["tuntap", "add", "dev", &tap_a, "mode", "tap", "multi_queue"]);
    if !wait_until(Duration::from_secs(5), || !matches!(link_state(&d, "a").as_str(), "detached" | "absent")) {
        return Err(format!("a is {} after its TAP came back\n{}", link_state(&d, "a"), d.log_text()).into());
    }
    host_address(&tap_a, "198.19.10.1/24");
    // The host's side of the TAP has a new MAC address.
    guest.exec_ok(&["ip", "neigh", "flush", "all"]);
    let (tx, rx) = guest.ping("198.19.10.1", 3, 3);
    if rx == 0 {
        return Err(format!("no reply from the reattached tap ({rx}/{tx})\n{}", d.log_text()).into());
    }

    ctl_ok(&d, &["add-port", "br0", "n4", "net_null40,no-rx=1", "--number", "4"])?;
    ctl_ok(&d, &["del-port", "br0", "n4"])?;
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = statuses.join().map_err(|_| "controller thread panicked")?;
    // (A link going up or down adds MODIFYs: the reattached TAP's link comes up. None
    // while detached: the port is deleted for the controllers then.)
    let seen: Vec<(u32, PortReason)> = seen.into_iter().filter(|s| s.1 != PortReason::Modify).collect();
    let want = [(1, PortReason::Delete), (1, PortReason::Add), (4, PortReason::Add), (4, PortReason::Delete)].to_vec();
    if seen != want {
        return Err(format!("port statuses: {seen:?}, want {want:?}\n{}", d.log_text()).into());
    }
    drop(d.stop());
    Ok(())
}

/// `set-port PORT admin=down|up` (OVS's `ovs-ofctl mod-port BR PORT down|up`): the port
/// neither receives nor sends (both counted) while a ping through two other ports loses
/// nothing; it comes back up without being re-created (its TAP stays in the guest's
/// namespace, where only the test put it); the state is written back, and `reload` of an
/// edited file applies it. Then `rxq_affinity`: pinning the port's queue to the PMD's core
/// isolates that PMD (pmd-rxq-show), a core without a PMD is refused with the reason.
pub fn admin_down_stops_a_port_in_place() -> Result<(), Failed> {
    let tap_c = unique("fvc");
    let extra = format!("\n[[bridge.port]]\nname = \"c\"\nnumber = 3\ndevargs = \"net_tap2,iface={tap_c}\"\n");
    let (d, host, guest) = two_hosts_in(TempDir::new(), r#"flows = ["actions=normal"]"#, &extra);
    let third = Netns::new();
    third.adopt(&tap_c, "198.18.0.3/24");
    if host.ping("198.18.0.2", 1, 3) != (1, 1) || host.ping("198.18.0.3", 1, 3) != (1, 1) {
        return Err(format!("first pings lost\n{}", d.log_text()).into());
    }
    let pinger = ping_in_background(&host, 40, "198.18.0.3");
    let config = d.dir.join("ferrovs.toml");
    let file = || std::fs::read_to_string(&config).unwrap_or_default();
    let is_down = |d: &Daemon| d.port_counters("b").is_some_and(|p| p["admin_down"] == true);

    ctl_ok(&d, &["set-port", "b", "admin=down"])?;
    let (_, to_guest) = host.ping("198.18.0.2", 2, 1);
    let (_, from_guest) = guest.ping("198.18.0.1", 2, 1);
    let both_dropped = wait_until(Duration::from_secs(3), || {
        d.port_counters("b")
            .is_some_and(|p| counter(&p, "drop_admin_down_tx") > 0 && counter(&p, "drop_admin_down_rx") > 0)
    });
    let show = ctl_ok(&d, &["show"])?;
    if to_guest != 0 || from_guest != 0 || !both_dropped || !is_down(&d) || !show.contains("admin down (PORT_DOWN)") {
        return Err(format!(
            "port b down: {to_guest} replies to the host, {from_guest} to the guest, b = {:?}\n{show}",
            d.port_counters("b")
        )
        .into());
    }
    if !file().contains("admin = \"down\"") {
        return Err(format!("admin state not written back:\n{}", file()).into());
    }
    ctl_ok(&d, &["set-port", "b", "admin=up"])?;
    if host.ping("198.18.0.2", 2, 3).1 == 0 || is_down(&d) {
        return Err(format!("no forwarding after admin=up\n{}", d.log_text()).into());
    }
    // reload applies an edited admin state, in place too.
    std::fs::write(&config, file().replace("admin = \"up\"", "admin = \"down\"")).map_err(|e| e.to_string())?;
    ctl_ok(&d, &["reload"])?;
    if host.ping("198.18.0.2", 1, 1).1 != 0 || !is_down(&d) {
        return Err("reload of admin = \"down\" did not take the port down".into());
    }
    std::fs::write(&config, file().replace("admin = \"down\"", "admin = \"up\"")).map_err(|e| e.to_string())?;
    ctl_ok(&d, &["reload"])?;
    if host.ping("198.18.0.2", 2, 3).1 == 0 {
        return Err(format!("no forwarding after reload of admin = \"up\"\n{}", d.log_text()).into());
    }
    let (tx, rx) = pinger.join().map_err(|_| "ping thread panicked")?;
    if tx != 40 || rx != 40 {
        return Err(format!("pings through other ports lost while b went down and up: {rx}/{tx}").into());
    }

    // Pins: b's queue on the PMD's core; a core without a PMD is refused.
    let pmd_core = d.ctl_json(&["pmd-stats-show"])["pmds"][0]["core"].as_u64().unwrap_or(u64::MAX);
    ctl_ok(&d, &["set-port", "b", &format!("rxq_affinity=0:{pmd_core}")])?;
    let rxq =
        run_ok("ovs-appctl", &["-t", &d.dir.join("ferrovsd.ctl").display().to_string(), "dpif-netdev/pmd-rxq-show"]);
    if !rxq.contains("isolated : true") || !file().contains(&format!("rxq_affinity = \"0:{pmd_core}\"")) {
        return Err(format!("pinned: pmd-rxq-show\n{rxq}\nfile:\n{}", file()).into());
    }
    let out = d.ctl(&["set-port", "b", "rxq_affinity=0:4096"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !err.contains("CPU 4096 runs no PMD thread") {
        return Err(format!("a pin to CPU 4096: {err}").into());
    }
    if host.ping("198.18.0.2", 2, 3).1 == 0 {
        return Err("no forwarding with b's queue pinned".into());
    }
    drop(third);
    drop(d.stop());
    Ok(())
}

/// The PMD whose rx queues include `queue` (`port:queue`), by `pmd-stats-show`.
fn pmd_polling(d: &Daemon, queue: &str) -> Option<u64> {
    let v = d.ctl_json(&["pmd-stats-show"]);
    v["pmds"].as_array()?.iter().find(|p| p["rx_queues"].as_array().is_some_and(|q| q.iter().any(|x| x == queue)))?
        ["pmd"]
        .as_u64()
}

/// The EAL, control and PMD settings of a test whose PMDs are on CPUs `cores` (a
/// list), one of them the main lcore's CPU 0 (a host of two CPUs has no other); the
/// `[pmd]` table is last, open for more keys.
fn sharing_the_main_lcore(cores: &str) -> String {
    format!(
        "
[eal]
hugepages = false
memory_mb = 256

[control]
socket = \"@SOCKET@\"

[pmd]
cores = [{cores}]
share_main_lcore = true
idle_backoff_us = 200
"
    )
}

/// `[pmd] auto_rebalance_interval_s`: two PMDs (one on the main lcore's CPU, this host
/// has two), two traffic sources on one of them and an idle port on the other. The
/// sources start administratively down (their frames are dropped unprocessed, so no load
/// is measured and the start-up assignment is fixed: both on PMD 0); brought up, PMD 0
/// is busy all the time and PMD 1 idle, so within a few intervals the automatic
/// rebalance moves one source to PMD 1, and then keeps them apart.
pub fn auto_rebalance_follows_load() -> Result<(), Failed> {
    let config = sharing_the_main_lcore("1, 0")
        + "auto_rebalance_interval_s = 1

[[bridge]]
name = \"br0\"
internal_port = false
flows = [\"actions=drop\"]

[[bridge.port]]
name = \"g1\"
number = 1
devargs = \"net_null0,size=64\"
admin = \"down\"

[[bridge.port]]
name = \"x\"
number = 2
devargs = \"net_null1,no-rx=1\"

[[bridge.port]]
name = \"g2\"
number = 3
devargs = \"net_null2,size=64\"
admin = \"down\"
";
    let d = Daemon::start_in(TempDir::new(), &config);
    let placed = (pmd_polling(&d, "g1:0"), pmd_polling(&d, "x:0"), pmd_polling(&d, "g2:0"));
    if placed != (Some(0), Some(1), Some(0)) {
        return Err(format!("start-up assignment (g1, x, g2): {placed:?}").into());
    }
    ctl_ok(&d, &["set-port", "g1", "admin=up"])?;
    ctl_ok(&d, &["set-port", "g2", "admin=up"])?;
    let apart = |d: &Daemon| {
        let (a, b) = (pmd_polling(d, "g1:0"), pmd_polling(d, "g2:0"));
        a.is_some() && b.is_some() && a != b
    };
    if !wait_until(Duration::from_secs(8), || apart(&d)) {
        return Err(
            format!("no automatic rebalance: {}\n{}", d.ctl_json(&["pmd-stats-show"])["pmds"], d.log_text()).into()
        );
    }
    if !d.log_text().contains("automatic rx queue rebalance") {
        return Err(format!("the move was not logged:\n{}", d.log_text()).into());
    }
    // Both PMDs busy now: the sources stay apart over the next intervals.
    std::thread::sleep(Duration::from_millis(2500));
    if !apart(&d) {
        return Err(format!("the sources came back together: {}", d.ctl_json(&["pmd-stats-show"])["pmds"]).into());
    }
    drop(d.stop());
    Ok(())
}

/// The CPUs in a `Cpus_allowed_list` line of `/proc/.../status` ("0-2,5").
fn cpu_list(status: &str) -> Option<Vec<usize>> {
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?.trim();
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?);
    }
    Some(cpus)
}

/// Threads other than the PMDs run on the CPUs ferrovsd was started with, less the
/// PMDs' (the EAL pins the thread that starts it to the main lcore's CPU, and the threads
/// started after it used to inherit that one CPU: the slow path shared it with the PMD
/// here). A PMD on the main lcore's CPU 0: every other thread must be on the other CPUs
/// (on a host of one CPU, on that one).
pub fn threads_other_than_the_pmds_leave_them_their_cpus() -> Result<(), Failed> {
    let config = sharing_the_main_lcore("0")
        + "

[[bridge]]
name = \"br0\"
internal_port = false
flows = [\"actions=drop\"]

[[bridge.port]]
name = \"x\"
number = 1
devargs = \"net_null0,no-rx=1\"
";
    let ours = cpu_list(&std::fs::read_to_string("/proc/thread-self/status")?).ok_or("no Cpus_allowed_list")?;
    let others: Vec<usize> = ours.iter().copied().filter(|&c| c != 0).collect();
    let expected = if others.is_empty() { ours.clone() } else { others };
    let d = Daemon::start_in(TempDir::new(), &config);
    let mut seen = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", d.pid()))? {
        let task = task?.path();
        // A thread may end between the listing and the reads.
        let (Ok(name), Ok(status)) =
            (std::fs::read_to_string(task.join("comm")), std::fs::read_to_string(task.join("status")))
        else {
            continue;
        };
        let name = name.trim().to_string();
        let cpus = cpu_list(&status).ok_or("no Cpus_allowed_list")?;
        let want = if name.starts_with("pmd") { vec![0] } else { expected.clone() };
        if cpus != want {
            return Err(format!("thread {name} may run on CPUs {cpus:?}, expected {want:?} (ours: {ours:?})").into());
        }
        seen.push(name);
    }
    for must in ["ferrovsd", "pmd0-c0", "ferrovs-slow_pa", "ferrovs-ctl"] {
        if !seen.iter().any(|n| n == must) {
            return Err(format!("no thread {must} among {seen:?}").into());
        }
    }
    drop(d.stop());
    Ok(())
}
