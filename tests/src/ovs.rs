//! A private Open vSwitch for differential tests: its own ovsdb-server and
//! `ovs-vswitchd --enable-dummy=override --disable-system` (the userspace datapath OVS's
//! own test suite uses: no kernel module, no DPDK, no hugepages), one bridge of
//! `datapath_type=dummy` with `type=dummy` ports that write every transmitted frame to a
//! pcap file, and frames injected with `netdev-dummy/receive` over the daemon's unixctl
//! socket.
//!
//! Everything lives in a unique scratch directory: `OVS_RUNDIR`, `OVS_DBDIR`,
//! `OVS_LOGDIR` and `OVS_SYSCONFDIR` point there for every OVS command, so a system OVS
//! on the same machine is never touched. Both daemons are children of the test and are
//! killed on drop (also when the test panics).
//!
//! The bridge has `fail-mode=secure` (no NORMAL rule is installed behind our back, no
//! in-band control) and `other_config:vlan-limit=1` (OVS's default, written out so a
//! changed default shows up as a changed result rather than silently).
//!
//! Frames are processed one at a time: `netdev-dummy/receive` queues the frame on the
//! port and returns; the datapath polls the port later. An answered unixctl request is
//! not enough to know the frame was handled (seen here: outputs of frame N showed up
//! after frame N+1 was sent). So `send` waits until the datapath's lookup counter
//! (`dpctl/show`: hit + missed + lost) has grown; the frame's actions, and so its
//! writes to the tx pcaps (each flushed), are done by then, and every output frame can
//! be attributed to the input frame that caused it.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{TempDir, wait_until};

/// Whether the OVS programs this harness needs are installed (on PATH or in /usr/sbin).
pub fn installed() -> Result<(), String> {
    let missing: Vec<&str> = ["ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"]
        .into_iter()
        .filter(|p| find_program(p).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Open vSwitch is not installed (missing {}): install the Debian packages openvswitch-common and \
             openvswitch-switch (deploy/test.sh does)",
            missing.join(", ")
        ))
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').chain(["/usr/sbin", "/sbin", "/usr/bin"]).map(|d| Path::new(d).join(name)).find(|p| p.exists())
}

fn program(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| panic!("{name} not found"))
}

/// The OVS schema, from the usual Debian location or `OVS_PKGDATADIR`.
fn schema() -> PathBuf {
    let dir = std::env::var("OVS_PKGDATADIR").unwrap_or_else(|_| "/usr/share/openvswitch".to_string());
    Path::new(&dir).join("vswitch.ovsschema")
}

/// A running private OVS with bridge `br0` and dummy ports `p1..pN` (OpenFlow 1..N).
pub struct Ovs {
    dir: TempDir,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
    ctl: Option<UnixStream>,
    next_id: u64,
    n_ports: u32,
    /// Byte offset already consumed in each port's tx pcap (index = port - 1).
    tx_offsets: Vec<u64>,
}

/// The frames a port sent for one input frame.
pub type PortFrames = Vec<(u32, Vec<u8>)>;

impl Ovs {
    pub fn start(n_ports: u32) -> Ovs {
        installed().unwrap_or_else(|e| panic!("{e}"));
        let dir = TempDir::new();
        let mut ovs = Ovs {
            dir,
            ovsdb: None,
            vswitchd: None,
            ctl: None,
            next_id: 0,
            n_ports,
            tx_offsets: vec![0; n_ports as usize],
        };
        let db = ovs.path("conf.db");
        ovs.ok("ovsdb-tool", &["create", db.to_str().expect("utf8"), schema().to_str().expect("utf8")]);
        let db_sock = format!("punix:{}", ovs.path("db.sock").display());
        ovs.ovsdb = Some(ovs.spawn(
            "ovsdb-server",
            &[
                db.to_str().expect("utf8"),
                &format!("--remote={db_sock}"),
                &format!("--unixctl={}", ovs.path("ovsdb-server.ctl").display()),
                &format!("--log-file={}", ovs.path("ovsdb-server.log").display()),
                "-vconsole:off",
                "--no-chdir",
            ],
        ));
        assert!(wait_until(Duration::from_secs(10), || ovs.path("db.sock").exists()), "ovsdb-server did not start");
        ovs.vsctl(&["--no-wait", "init"]);
        ovs.vswitchd = Some(ovs.spawn(
            "ovs-vswitchd",
            &[
                &format!("unix:{}", ovs.path("db.sock").display()),
                "--enable-dummy=override",
                "--disable-system",
                &format!("--unixctl={}", ovs.path("vswitchd.ctl").display()),
                &format!("--log-file={}", ovs.path("ovs-vswitchd.log").display()),
                "-vconsole:off",
                "--no-chdir",
            ],
        ));
        assert!(
            wait_until(Duration::from_secs(10), || ovs.path("vswitchd.ctl").exists()),
            "ovs-vswitchd did not start:\n{}",
            ovs.log()
        );
        let mut args: Vec<String> = [
            "--timeout=20",
            "add-br",
            "br0",
            "--",
            "set",
            "bridge",
            "br0",
            "datapath_type=dummy",
            "fail-mode=secure",
            "protocols=OpenFlow10,OpenFlow13",
            "--",
            "set",
            "open_vswitch",
            ".",
            "other_config:vlan-limit=1",
        ]
        .map(String::from)
        .to_vec();
        for p in 1..=n_ports {
            let pcap = ovs.tx_pcap(p);
            args.extend([
                "--".to_string(),
                "add-port".to_string(),
                "br0".to_string(),
                format!("p{p}"),
                "--".to_string(),
                "set".to_string(),
                "interface".to_string(),
                format!("p{p}"),
                "type=dummy".to_string(),
                format!("ofport_request={p}"),
                format!("options:tx_pcap={}", pcap.display()),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ovs.vsctl(&args);
        let ready = wait_until(Duration::from_secs(10), || (1..=n_ports).all(|p| ovs.tx_pcap(p).exists()));
        assert!(ready, "the dummy ports' tx pcaps did not appear:\n{}", ovs.log());
        for p in 1..=n_ports {
            ovs.tx_offsets[p as usize - 1] = std::fs::metadata(ovs.tx_pcap(p)).map(|m| m.len()).unwrap_or(0).max(24);
        }
        let sock = UnixStream::connect(ovs.path("vswitchd.ctl")).expect("connect to ovs-vswitchd's unixctl socket");
        sock.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        ovs.ctl = Some(sock);
        ovs
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn tx_pcap(&self, port: u32) -> PathBuf {
        self.path(&format!("p{port}-tx.pcap"))
    }

    /// The tail of ovs-vswitchd's log, for error messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.path("ovs-vswitchd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn command(&self, prog: &str) -> Command {
        let mut c = Command::new(program(prog));
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(var, &self.dir.path);
        }
        c
    }

    fn spawn(&self, prog: &str, args: &[&str]) -> Child {
        self.command(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {prog}: {e}"))
    }

    /// Runs an OVS program in this instance's environment.
    pub fn run(&self, prog: &str, args: &[&str]) -> Output {
        self.command(prog).args(args).output().unwrap_or_else(|e| panic!("run {prog}: {e}"))
    }

    fn ok(&self, prog: &str, args: &[&str]) -> String {
        let out = self.run(prog, args);
        assert!(
            out.status.success(),
            "{prog} {} failed: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.path("db.sock").display());
        let mut a = vec![db.as_str()];
        a.extend_from_slice(args);
        self.ok("ovs-vsctl", &a)
    }

    /// Replaces all rules of br0 with `rules` (an ovs-ofctl flows file's lines), forgets
    /// learned MACs and purges the datapath flow cache, so the next frame meets exactly
    /// these rules in a fresh switch. Returns ovs-ofctl's error if OVS refuses the set.
    pub fn replace_rules(&mut self, rules: &[String], openflow13: bool) -> Result<(), String> {
        let proto = if openflow13 { "OpenFlow13" } else { "OpenFlow10" };
        self.ok("ovs-ofctl", &["-O", proto, "del-flows", "br0"]);
        let file = self.path("rules.flows");
        std::fs::write(&file, rules.join("\n") + "\n").expect("write rules");
        let out = self.run("ovs-ofctl", &["-O", proto, "add-flows", "br0", file.to_str().expect("utf8")]);
        let result = if out.status.success() {
            Ok(())
        } else {
            self.ok("ovs-ofctl", &["-O", proto, "del-flows", "br0"]);
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        };
        self.appctl("fdb/flush", &["br0"])?;
        self.appctl("revalidator/purge", &[])?;
        result
    }

    /// Whether OVS accepts one rule (added alone, then removed again).
    pub fn accepts(&mut self, rule: &str, openflow13: bool) -> Result<(), String> {
        self.replace_rules(&[rule.to_string()], openflow13)
    }

    /// One unixctl request on ovs-vswitchd's socket (JSON-RPC); the result text.
    pub fn appctl(&mut self, method: &str, params: &[&str]) -> Result<String, String> {
        self.next_id += 1;
        let id = self.next_id;
        let req = serde_json::json!({"method": method, "params": params, "id": id});
        let sock = self.ctl.as_mut().expect("unixctl connection");
        sock.write_all(req.to_string().as_bytes()).map_err(|e| format!("unixctl write: {e}"))?;
        let mut de = serde_json::Deserializer::from_reader(BufReader::new(&*sock)).into_iter::<serde_json::Value>();
        let reply =
            de.next().ok_or("unixctl connection closed")?.map_err(|e| format!("unixctl reply: {e}\n{}", self.log()))?;
        if reply["id"] != id {
            return Err(format!("unixctl reply for another request: {reply}"));
        }
        if !reply["error"].is_null() {
            return Err(format!("{method}: {}", reply["error"]));
        }
        Ok(reply["result"].as_str().unwrap_or_default().to_string())
    }

    /// Deletes every datapath flow, so the next frame is translated afresh. OVS's
    /// revalidators update the datapath flows that a change of the MAC learning table
    /// affects only some time later (asynchronously); until then a frame can hit a flow
    /// decided with the table as it was (seen: a flood towards a MAC learned since).
    pub fn purge_datapath_flows(&mut self) -> Result<(), String> {
        self.appctl("revalidator/purge", &[]).map(|_| ())
    }

    /// Frames the datapath has looked up so far (`hit + missed + lost` of `dpctl/show`).
    fn processed(&mut self) -> Result<u64, String> {
        let text = self.appctl("dpctl/show", &[])?;
        let line = text.lines().find(|l| l.contains("lookups:")).ok_or_else(|| format!("dpctl/show: {text}"))?;
        Ok(line
            .split_whitespace()
            .filter_map(|w| w.split_once(':'))
            .filter(|(k, _)| matches!(*k, "hit" | "missed" | "lost"))
            .filter_map(|(_, v)| v.parse::<u64>().ok())
            .sum())
    }

    /// Feeds `frame` into port `port` and returns what every port sent because of it,
    /// as (port, frame) in the order each port sent them, ports in increasing order.
    pub fn send(&mut self, port: u32, frame: &[u8]) -> Result<PortFrames, String> {
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        let before = self.processed()?;
        self.appctl("netdev-dummy/receive", &[&format!("p{port}"), &hex])?;
        // Wait until the datapath has looked the frame up (hit, miss or lost): its
        // actions, and so its outputs, are done by then.
        let start = std::time::Instant::now();
        while self.processed()? == before {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!("OVS did not process a frame within 10 s\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut out = Vec::new();
        for p in 1..=self.n_ports {
            let (frames, end) = read_pcap_from(&self.tx_pcap(p), self.tx_offsets[p as usize - 1]);
            self.tx_offsets[p as usize - 1] = end;
            out.extend(frames.into_iter().map(|f| (p, f)));
        }
        Ok(out)
    }
}

/// The complete records of a pcap file from byte `offset` on (which must be 24, just
/// after the file header, or the end of an earlier record), and the offset after them.
/// Only the standard microsecond little-endian format OVS writes is understood.
pub fn read_pcap_from(path: &Path, offset: u64) -> (Vec<Vec<u8>>, u64) {
    let data = std::fs::read(path).unwrap_or_default();
    let mut at = offset as usize;
    let mut frames = Vec::new();
    while at + 16 <= data.len() {
        let caplen = u32::from_le_bytes(data[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        if at + 16 + caplen > data.len() {
            break;
        }
        frames.push(data[at + 16..at + 16 + caplen].to_vec());
        at += 16 + caplen;
    }
    (frames, at as u64)
}

impl Drop for Ovs {
    fn drop(&mut self) {
        self.ctl = None;
        for child in [self.vswitchd.take(), self.ovsdb.take()].into_iter().flatten() {
            let mut child = child;
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            if !wait_until(Duration::from_secs(5), || matches!(child.try_wait(), Ok(Some(_)))) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
