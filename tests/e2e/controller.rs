//! A real OpenFlow controller from PyPI drives ferrovsd: os-ken running the learning
//! switch of its `simple_switch_13` example (`controller/simple_switch_13.py`; os-ken's
//! wheel ships no example apps), on loopback. The bridge connects to it (`tcp:`), in
//! `fail_mode = "secure"`, with no rules of its own: every packet that crosses does so
//! because the controller's table-miss rule sent it up as a packet-in and the
//! controller answered with a packet-out, then flow-mods for the learned MACs.
//!
//! Then faucet (`faucet_vlan_learns_and_pings`): the production controller, with its own
//! multi-table pipeline (VLAN push/pop, learning through packet-ins and idle timeouts,
//! flooding through an `all` group), given a two-port VLAN config for the bridge's
//! datapath id.
//!
//! Both are test peers: deploy/test.sh installs each (pinned) into its own virtualenv
//! (faucet pins an older os-ken) and names the interpreters in `FERROVS_OSKEN_PYTHON`
//! and `FERROVS_FAUCET_PYTHON`; without them the tests fail and say so.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrovs_config::openflow::{
    Action as WireAction, Body, Field, Hello, Message, NO_BUFFER, PacketOut, PortReason, Version, decode, encode,
    next_message_len,
};
use ferrovs_e2e::{Daemon, Netns, TempDir, wait_until};
use libtest_mimic::Failed;

use crate::flows::two_hosts_in;

/// The os-ken version deploy/test.sh installs.
pub const OSKEN_VERSION: &str = "4.2.2";

/// The controller process, killed when dropped.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The faucet version deploy/test.sh installs.
pub const FAUCET_VERSION: &str = "1.10.12";

/// The interpreter named in `env` (python3 when unset) if it can import `module`; else
/// an error saying how to install `package`.
fn peer_python(env: &str, module: &str, package: &str) -> Result<String, Failed> {
    let python = std::env::var(env).unwrap_or_else(|_| "python3".into());
    let import = format!("import {module}");
    let ok = Command::new(&python).args(["-c", &import]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        return Err(format!(
            "{module} is not importable by `{python}`: run deploy/test.sh (it installs {package} into a \
             virtualenv and sets {env}), or pip install {package}"
        )
        .into());
    }
    Ok(python)
}

fn osken_python() -> Result<String, Failed> {
    peer_python("FERROVS_OSKEN_PYTHON", "os_ken", &format!("os-ken=={OSKEN_VERSION}"))
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

fn start_controller(dir: &TempDir, port: u16) -> Result<Controller, Failed> {
    let python = osken_python()?;
    let app = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/controller/simple_switch_13.py");
    let log = dir.join("controller.log");
    let mut cmd = Command::new(python);
    cmd.arg(&app).args(["--ofp-tcp-listen-port", &port.to_string(), "--ofp-listen-host", "127.0.0.1"]);
    let child = spawn_logged(cmd, &log, "os-ken")?;
    Ok(Controller { child, log })
}

/// Starts `cmd` with no input and its standard output and error in the file `output`.
fn spawn_logged(mut cmd: Command, output: &std::path::Path, what: &str) -> Result<Child, Failed> {
    let out = std::fs::File::create(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn();
    child.map_err(|e| format!("starting {what}: {e}").into())
}

fn ofctl13(d: &Daemon, args: &[&str]) -> String {
    let mgmt = d.socket.with_file_name("br0.mgmt");
    let (cmd, rest) = args.split_first().expect("a subcommand");
    Command::new("ovs-ofctl")
        .args(["-O", "OpenFlow13", "--timeout=10", cmd])
        .arg(format!("unix:{}", mgmt.display()))
        .args(rest)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Two namespaces on a ferrovsd whose bridge (no rules) connects to the controller on
/// `port` in `fail_mode = "secure"`, as datapath `dpid` (see `flows::two_hosts_in`).
fn secure_switch(port: u16, dpid: u64) -> (Daemon, Netns, Netns) {
    let extra = format!("controller = [\"tcp:127.0.0.1:{port}\"]\nfail_mode = \"secure\"\ndatapath_id = \"{dpid:#x}\"");
    two_hosts_in(TempDir::new(), &extra, "")
}

/// Through the controller's learning switch: the first ping and every later one get
/// through both ways, and the learned flows show (with packets) in `dump-flows`.
fn learns_and_forwards(d: &Daemon, host: &Netns, guest: &Netns, controller: &Controller) -> Result<(), Failed> {
    // The controller has connected once its table-miss rule is in.
    let connected =
        wait_until(Duration::from_secs(30), || ofctl13(d, &["dump-flows"]).contains("actions=CONTROLLER:65535"));
    if !connected {
        return Err(format!(
            "no table-miss rule from the controller\ncontroller:\n{}\nferrovsd:\n{}",
            controller.log_text(),
            d.log_text()
        )
        .into());
    }
    let (tx, rx) = host.ping("198.18.0.2", 1, 3);
    if (tx, rx) != (1, 1) {
        return Err(format!(
            "first ping lost ({rx}/{tx})\n{}\ncontroller:\n{}\nferrovsd:\n{}",
            ofctl13(d, &["dump-flows"]),
            controller.log_text(),
            d.log_text()
        )
        .into());
    }
    let (tx, rx) = host.ping("198.18.0.2", 10, 2);
    if (tx, rx) != (10, 10) {
        return Err(format!("later pings: {rx}/{tx} replies\n{}", controller.log_text()).into());
    }
    let (tx, rx) = guest.ping("198.18.0.1", 5, 2);
    if (tx, rx) != (5, 5) {
        return Err(format!("guest->host: {rx}/{tx} replies").into());
    }
    // The learned flows: one per direction between the two hosts' MACs.
    let flows = ofctl13(d, &["dump-flows"]);
    let learned: Vec<&str> =
        flows.lines().filter(|l| l.contains("priority=1,") && l.contains("dl_src=") && l.contains("dl_dst=")).collect();
    let to = |p: u32| {
        learned.iter().any(|l| l.contains(&format!("in_port={}", 3 - p)) && l.contains(&format!("actions=output:{p}")))
    };
    if !(to(1) && to(2)) {
        return Err(format!("learned flows missing from dump-flows:\n{flows}").into());
    }
    // Packets of the learned flows took the fast path: their counters moved.
    if !learned.iter().any(|l| !l.contains("n_packets=0,")) {
        return Err(format!("the learned flows forwarded nothing:\n{flows}").into());
    }
    Ok(())
}

fn stop(d: Daemon) -> Result<(), Failed> {
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    Ok(())
}

/// os-ken's learning switch drives one ferrovsd.
pub fn osken_simple_switch_13() -> Result<(), Failed> {
    let dir = TempDir::new();
    let port = free_port();
    let controller = start_controller(&dir, port)?;
    let (d, host, guest) = secure_switch(port, 0x1);
    learns_and_forwards(&d, &host, &guest, &controller)?;
    stop(d)
}

/// Two ferrovsd instances (two simulated hosts, each with its own pair of namespaces)
/// on one os-ken controller at once: each learns and forwards on its own.
pub fn osken_two_switches() -> Result<(), Failed> {
    let dir = TempDir::new();
    let port = free_port();
    let controller = start_controller(&dir, port)?;
    let (d1, host1, guest1) = secure_switch(port, 0x1);
    let (d2, host2, guest2) = secure_switch(port, 0x2);
    learns_and_forwards(&d1, &host1, &guest1, &controller)?;
    learns_and_forwards(&d2, &host2, &guest2, &controller)?;
    // Both connected at once, as two datapaths.
    let log = controller.log_text();
    for dpid in ["dpid=0000000000000001", "dpid=0000000000000002"] {
        if !log.contains(dpid) {
            return Err(format!("the controller never saw {dpid}:\n{log}").into());
        }
    }
    // The first switch still works after the second joined.
    let (tx, rx) = host1.ping("198.18.0.2", 3, 2);
    if (tx, rx) != (3, 3) {
        return Err(format!("first switch after the second joined: {rx}/{tx}").into());
    }
    stop(d1)?;
    stop(d2)
}

/// faucet's config: one datapath (the bridge's `dpid`, as Open vSwitch, flooding through
/// groups) with both ports untagged on VLAN 100.
fn faucet_yaml(dpid: u64) -> String {
    format!(
        "vlans:\n  office:\n    vid: 100\n\
         dps:\n  ferrovs:\n    dp_id: {dpid:#x}\n    hardware: \"Open vSwitch\"\n    group_table: true\n    interfaces:\n\
         \x20     1:\n        native_vlan: office\n\
         \x20     2:\n        native_vlan: office\n"
    )
}

/// faucet listening on loopback `port` with the config `faucet_yaml(dpid)`; its log is
/// `faucet.log` in `dir`, where its standard output and error go too.
fn start_faucet(dir: &TempDir, port: u16, dpid: u64) -> Result<Controller, Failed> {
    let python = peer_python("FERROVS_FAUCET_PYTHON", "faucet", &format!("faucet=={FAUCET_VERSION}"))?;
    let config = dir.join("faucet.yaml");
    std::fs::write(&config, faucet_yaml(dpid)).map_err(|e| format!("{}: {e}", config.display()))?;
    let log = dir.join("faucet.log");
    // faucet's main execs `osken-manager` from PATH: the one beside the interpreter.
    let bin = std::path::Path::new(&python).parent().map(|p| p.display().to_string()).unwrap_or_default();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new(&python);
    cmd.env("PATH", path)
        .args(["-m", "faucet", "--ryu-ofp-tcp-listen-port", &port.to_string(), "--ryu-ofp-listen-host", "127.0.0.1"])
        .env("FAUCET_CONFIG", &config)
        .env("FAUCET_LOG", &log)
        .env("FAUCET_EXCEPTION_LOG", dir.join("faucet_exception.log"))
        .env("FAUCET_PROMETHEUS_ADDR", "127.0.0.1")
        .env("FAUCET_PROMETHEUS_PORT", free_port().to_string());
    let child = spawn_logged(cmd, &dir.join("faucet.out"), "faucet")?;
    Ok(Controller { child, log })
}

/// The Ethernet address of the one non-loopback interface in `ns`.
fn ether_of(ns: &Netns) -> String {
    let links = ns.exec_ok(&["ip", "-o", "link", "show"]);
    let after = |l: &str| l.split("link/ether ").nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_owned);
    links.lines().find_map(after).unwrap_or_default()
}

/// faucet drives one ferrovsd with two hosts on one VLAN: it programs its pipeline
/// (flooding through an `all` group), the hosts' first ping and every later one get
/// through, and the MACs faucet learned show as its rules (eth_src matches, eth_dst
/// forwarding with idle timeouts) in `dump-flows`.
pub fn faucet_vlan_learns_and_pings() -> Result<(), Failed> {
    let dir = TempDir::new();
    let (port, dpid) = (free_port(), 0x1);
    let faucet = start_faucet(&dir, port, dpid)?;
    let (d, host, guest) = secure_switch(port, dpid);
    let context = |what: String| -> Failed {
        let out = std::fs::read_to_string(dir.join("faucet.out")).unwrap_or_default();
        let exc = std::fs::read_to_string(dir.join("faucet_exception.log")).unwrap_or_default();
        format!(
            "{what}\nflows:\n{}\nfaucet log:\n{}\nfaucet output:\n{out}\nfaucet exceptions:\n{exc}\nferrovsd:\n{}",
            ofctl13(&d, &["dump-flows"]),
            faucet.log_text(),
            d.log_text()
        )
        .into()
    };
    // faucet has programmed the datapath once its log says so.
    if !wait_until(Duration::from_secs(40), || faucet.log_text().contains("Configuring VLAN")) {
        return Err(context("faucet never configured the datapath".into()));
    }
    let (tx, rx) = host.ping("198.18.0.2", 1, 5);
    if (tx, rx) != (1, 1) {
        return Err(context(format!("first ping lost ({rx}/{tx})")));
    }
    let (tx, rx) = host.ping("198.18.0.2", 10, 2);
    if (tx, rx) != (10, 10) {
        return Err(context(format!("later pings: {rx}/{tx} replies")));
    }
    let (tx, rx) = guest.ping("198.18.0.1", 5, 2);
    if (tx, rx) != (5, 5) {
        return Err(context(format!("guest->host: {rx}/{tx} replies")));
    }
    // faucet learned both hosts: each MAC has an eth_src rule (with an idle timeout) and
    // an eth_dst rule that forwards to its port.
    let (mac1, mac2) = (ether_of(&host), ether_of(&guest));
    let flows = ofctl13(&d, &["dump-flows"]);
    for (mac, port) in [(&mac1, 1), (&mac2, 2)] {
        let src = flows.lines().any(|l| l.contains(&format!("dl_src={mac}")) && l.contains(&format!("in_port={port}")));
        let dst = flows.lines().any(|l| l.contains(&format!("dl_dst={mac}")) && l.contains(&format!("output:{port}")));
        if !(src && dst) {
            return Err(context(format!("faucet's learned rules for {mac} on port {port} missing")));
        }
    }
    // With `group_table`, faucet floods the VLAN through an `all` group.
    let groups = ofctl13(&d, &["dump-groups"]);
    if !flows.contains("group:100") || !groups.contains("group_id=100,type=all") {
        return Err(context(format!("faucet's flood group is not in use:\n{groups}")));
    }
    if !faucet.log_text().contains("L2 learned") {
        return Err(context("faucet logged no learned host".into()));
    }
    stop(d)
}

/// A minimal OpenFlow controller written against the codec, speaking one version.
pub(crate) struct RawController {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
    version: Version,
}

impl RawController {
    pub(crate) fn connect(port: u16, version: Version) -> Result<RawController, Failed> {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
        let mut c = RawController { stream, buf: Vec::new(), version };
        c.send(Body::Hello(Hello::offering(&[version])))?;
        match c.recv()?.body {
            Body::Hello(_) => {}
            other => return Err(format!("expected a hello, got {other:?}").into()),
        }
        c.send(Body::FeaturesRequest)?;
        match c.recv()?.body {
            Body::FeaturesReply(_) => Ok(c),
            other => Err(format!("expected a features reply, got {other:?}").into()),
        }
    }

    fn send(&mut self, body: Body) -> Result<(), Failed> {
        use std::io::Write;
        let bytes = encode(&Message { version: self.version, xid: 7, body }).map_err(|e| e.to_string())?;
        self.stream.write_all(&bytes).map_err(|e| format!("send: {e}").into())
    }

    /// The next message; Err when the switch closed the connection or was silent.
    pub(crate) fn recv(&mut self) -> Result<Message, Failed> {
        use std::io::Read;
        loop {
            if let Ok(Some(n)) = next_message_len(&self.buf)
                && n <= self.buf.len()
            {
                let raw: Vec<u8> = self.buf.drain(..n).collect();
                return decode(&raw).map(|(m, _)| m).map_err(|e| format!("undecodable: {e}").into());
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("closed".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}").into()),
            }
        }
    }
}

/// What the flooding controller was sent: packet-ins (in_port, reason, frame length,
/// total length) and port statuses (port, reason, state bits).
type Seen = (Vec<(u32, u8, usize, u16)>, Vec<(u32, PortReason, u32)>);

/// Runs `c` until the switch closes the connection: every packet-in is answered with a
/// packet-out that floods it.
fn flood_controller(mut c: RawController) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let (mut seen, mut ports) = (Vec::new(), Vec::new());
        while let Ok(m) = c.recv() {
            match m.body {
                Body::PortStatus(s) => ports.push((s.desc.port_no, s.reason, s.desc.state)),
                Body::PacketIn(p) => {
                    let in_port =
                        p.matches.fields.iter().find(|f| f.field == Field::InPort).map_or(0, |f| f.value as u32);
                    seen.push((in_port, p.reason, p.data.len(), p.total_len));
                    let out = PacketOut {
                        buffer_id: NO_BUFFER,
                        in_port,
                        actions: vec![WireAction::Output { port: 0xffff_fffb, max_len: 0 }],
                        data: p.data,
                    };
                    if c.send(Body::PacketOut(out)).is_err() {
                        break;
                    }
                }
                Body::EchoRequest(d) => {
                    let _ = c.send(Body::EchoReply(d));
                }
                _ => {}
            }
        }
        (seen, ports)
    })
}

/// Collects the port statuses (port number, reason) `c` is sent, answering echo requests,
/// until `stop` is set.
pub(crate) fn port_status_watcher(
    mut c: RawController,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(u32, PortReason)>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match c.recv() {
                Ok(m) => match m.body {
                    Body::PortStatus(s) => out.push((s.desc.port_no, s.reason)),
                    Body::EchoRequest(d) => {
                        let _ = c.send(Body::EchoReply(d));
                    }
                    _ => {}
                },
                // Silence (the read timed out) or a closed connection: look at `stop` again.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        out
    })
}

/// The next flow-removed `c` is sent (echo requests answered, other messages skipped),
/// or why none came within `wait`.
pub(crate) fn next_flow_removed(
    c: &mut RawController,
    wait: Duration,
) -> Result<ferrovs_config::openflow::FlowRemoved, Failed> {
    let until = std::time::Instant::now() + wait;
    while std::time::Instant::now() < until {
        match c.recv()?.body {
            Body::FlowRemoved(f) => return Ok(f),
            Body::EchoRequest(d) => c.send(Body::EchoReply(d))?,
            _ => {}
        }
    }
    Err(format!("no flow-removed within {wait:?}").into())
}

/// Fail-open, then an OpenFlow 1.0 controller on a `ptcp:` target set by ferrovs-ctl:
/// with no rules at all, a standalone bridge whose controller is unreachable drops
/// misses, then after the fail-open delay switches as `normal`; once a 1.0 controller is connected every table miss is a packet-in and
/// its packet-outs carry the pings; once it is removed, misses drop.
pub fn fail_open_then_of10_controller() -> Result<(), Failed> {
    let (nobody, listen) = (free_port(), free_port());
    let (d, host, _guest) = two_hosts_in(TempDir::new(), &format!("controller = [\"tcp:127.0.0.1:{nobody}\"]"), "");

    // As OVS, fail-open waits for three probe intervals (15 s) without a controller;
    // until then misses drop.
    let (tx, rx) = host.ping("198.18.0.2", 2, 1);
    if rx != 0 {
        return Err(format!("before the fail-open delay: {rx}/{tx} pings passed").into());
    }
    if !wait_until(Duration::from_secs(30), || host.ping("198.18.0.2", 1, 1).1 == 1) {
        return Err(format!("fail-open never started\n{}", d.log_text()).into());
    }
    let (tx, rx) = host.ping("198.18.0.2", 3, 3);
    if rx == 0 {
        return Err(format!("fail-open: {rx}/{tx} pings\n{}", d.log_text()).into());
    }
    crate::flows::ctl_ok(&d, &["set-controller", "br0", &format!("ptcp:{listen}")])?;
    let shown = crate::flows::ctl_ok(&d, &["get-controller", "br0"])?;
    if !shown.contains(&format!("ptcp:{listen}:127.0.0.1")) || !shown.contains("connected: 0") {
        return Err(format!("get-controller: {shown}").into());
    }
    let controller = flood_controller(RawController::connect(listen, Version::Of10)?);
    // The miss mode changes once the main thread has seen the connection.
    std::thread::sleep(Duration::from_millis(500));
    let (tx, rx) = host.ping("198.18.0.2", 5, 3);
    if (tx, rx) != (5, 5) {
        return Err(format!("through the controller: {rx}/{tx} pings\n{}", d.log_text()).into());
    }
    let shown = crate::flows::ctl_ok(&d, &["get-controller", "br0"])?;
    if !shown.contains("connected: 1") {
        return Err(format!("get-controller: {shown}").into());
    }
    crate::flows::ctl_ok(&d, &["del-controller", "br0"])?;
    // (No port status is expected: the link state of a tap moved into a namespace reads
    // unknown, so a link change there is not seen; `Hub::watch_links` is unit-tested.)
    let (seen, _ports) = controller.join().map_err(|_| "controller thread panicked")?;
    // Every ping and its reply went up (ARP too), as table misses, whole (shorter than
    // miss_send_len = 128), from both ports.
    if seen.len() < 10
        || seen.iter().any(|&(p, reason, len, total)| !(1..=2).contains(&p) || reason != 0 || len != total as usize)
    {
        return Err(format!("packet-ins: {seen:?}").into());
    }
    // No controller and no rules: misses drop.
    std::thread::sleep(Duration::from_millis(500));
    let (tx, rx) = host.ping("198.18.0.2", 2, 1);
    if rx != 0 {
        return Err(format!("without a controller: {rx}/{tx} pings passed").into());
    }
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    Ok(())
}
