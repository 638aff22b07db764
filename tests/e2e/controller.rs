//! A real OpenFlow controller from PyPI drives ferrovsd: os-ken running the learning
//! switch of its `simple_switch_13` example (`controller/simple_switch_13.py`; os-ken's
//! wheel ships no example apps), on loopback. The bridge connects to it (`tcp:`), in
//! `fail_mode = "secure"`, with no rules of its own: every packet that crosses does so
//! because the controller's table-miss rule sent it up as a packet-in and the
//! controller answered with a packet-out, then flow-mods for the learned MACs.
//!
//! os-ken is a test peer: deploy/test.sh installs it (pinned) into a virtualenv and
//! names its interpreter in `FERROVS_OSKEN_PYTHON`; without it the test fails and says so.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrovs_e2e::{Daemon, Netns, TempDir, unique, wait_until};
use libtest_mimic::Failed;

use crate::preamble;

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

fn osken_python() -> Result<String, Failed> {
    let python = std::env::var("FERROVS_OSKEN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python).args(["-c", "import os_ken"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        return Err(format!(
            "os-ken is not importable by `{python}`: run deploy/test.sh (it installs os-ken=={OSKEN_VERSION} \
             into a virtualenv and sets FERROVS_OSKEN_PYTHON), or pip install os-ken=={OSKEN_VERSION}"
        )
        .into());
    }
    Ok(python)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

fn start_controller(dir: &TempDir, port: u16) -> Result<Controller, Failed> {
    let python = osken_python()?;
    let app = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/controller/simple_switch_13.py");
    let log = dir.join("controller.log");
    let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(python)
        .arg(&app)
        .args(["--ofp-tcp-listen-port", &port.to_string(), "--ofp-listen-host", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting os-ken: {e}"))?;
    Ok(Controller { child, log })
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

/// os-ken's learning switch: the first ping and every later one get through, and the
/// learned flows show in `dump-flows`.
pub fn osken_simple_switch_13() -> Result<(), Failed> {
    let dir = TempDir::new();
    let port = free_port();
    let controller = start_controller(&dir, port)?;
    let tap_a = unique("fva");
    let tap_b = unique("fvb");
    let extra = format!("controller = [\"tcp:127.0.0.1:{port}\"]\nfail_mode = \"secure\"");
    let config = format!(
        "{}{}",
        preamble(),
        crate::bridge(
            &extra,
            &[("a", 1, &format!("net_tap0,iface={tap_a}")), ("b", 2, &format!("net_tap1,iface={tap_b}"))]
        )
    );
    let d = Daemon::start_in(dir, &config);
    let host = Netns::new();
    let guest = Netns::new();
    host.adopt(&tap_a, "198.18.0.1/24");
    guest.adopt(&tap_b, "198.18.0.2/24");

    // The controller has connected once its table-miss rule is in.
    let connected =
        wait_until(Duration::from_secs(30), || ofctl13(&d, &["dump-flows"]).contains("actions=CONTROLLER:65535"));
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
            ofctl13(&d, &["dump-flows"]),
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
    let flows = ofctl13(&d, &["dump-flows"]);
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
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    drop(controller);
    Ok(())
}
