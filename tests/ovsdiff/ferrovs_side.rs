//! Running a rule set and a list of frames through the real ferrovsd: net_pcap ports
//! 1..=N, every port writing what it sends to `out<N>.pcap`. The daemon is stopped
//! before the captures are read (net_pcap flushes them on close).
//!
//! The input port gets the frames in one of two ways:
//! - *replayed*: it reads `in.pcap` once, as fast as it polls (bursts of up to 32
//!   frames, so later frames are looked up before earlier ones' upcalls are answered);
//! - *paced* ([`Feeder`]): it captures a kernel dummy interface (net_pcap `rx_iface`)
//!   onto which the harness writes one frame at a time, and the next frame is written only
//!   once ferrovsd has looked the previous one up and no packet waits for the slow path
//!   any more (`pmd-stats-show`: lookups and the `parked` gauge). The slow path applies
//!   what `normal` learned from an upcall, and removes the megaflows it made stale,
//!   before its answer, and a PMD applies commands in order, so by then the frame is
//!   forwarded and every megaflow agrees with the MAC table it left. That is how the OVS
//!   side decides frames (one at a time, its datapath flows purged after each frame of a
//!   set with `normal`), so rule sets with `normal` are run paced: replayed, a frame
//!   may be decided with a MAC table that frames before it in the same burst change
//!   later, as it would be by OVS's datapath for a burst (a later packet of a batch finds
//!   the flow an earlier packet's upcall installed).

use std::time::{Duration, Instant};

use ferrovs_e2e::{Daemon, FrameWriter, Netns, TempDir, read_pcap, run_ok, unique, wait_until, write_pcap};

use crate::gen_rules::N_PORTS;

/// EAL, control and PMD settings: no hugepages, one PMD on the last CPU with idle back-off.
fn preamble() -> String {
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!(
        "[eal]\nhugepages = false\nmemory_mb = 256\n\n[control]\nsocket = \"@SOCKET@\"\n\n[pmd]\ncores = [{}]\n\
         idle_backoff_us = 200\n",
        ncpu.saturating_sub(1)
    )
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The OpenFlow version the rules are read in, as OVS gets them (`ovs-ofctl -O`).
fn protocols(openflow13: bool) -> &'static str {
    if openflow13 { "OpenFlow13" } else { "OpenFlow10" }
}

/// The whole config for `rules` (read in OpenFlow 1.3 if `openflow13`, else 1.0) with
/// input on `in_port`, from `in.pcap`, or captured from the interface `rx_iface`.
pub fn config(rules: &[String], openflow13: bool, in_port: u32, rx_iface: Option<&str>) -> String {
    let flows: Vec<String> = rules.iter().map(|r| toml_string(r)).collect();
    let mut s = format!(
        "{}\n[[bridge]]\nname = \"br0\"\ninternal_port = false\nprotocols = \"{}\"\nflows = [\n  {}\n]\n",
        preamble(),
        protocols(openflow13),
        flows.join(",\n  ")
    );
    for p in 1..=N_PORTS {
        let rx = match rx_iface {
            Some(iface) if p == in_port => format!("rx_iface={iface}"),
            None if p == in_port => "rx_pcap=@DIR@/in.pcap".to_string(),
            _ => "rx_pcap=@DIR@/empty.pcap".to_string(),
        };
        s += &format!(
            "\n[[bridge.port]]\nname = \"p{p}\"\nnumber = {p}\n\
             devargs = \"net_pcap{i},{rx},tx_pcap=@DIR@/out{p}.pcap\"\n",
            i = p - 1
        );
    }
    s
}

/// Whether ferrovs's config parser accepts `rules` (the same check ferrovsd makes at start).
pub fn accepts(rules: &[String], openflow13: bool) -> Result<(), String> {
    let text = config(rules, openflow13, 1, None)
        .replace("@SOCKET@", "/nonexistent/ctl.sock")
        .replace("@DIR@", "/nonexistent");
    ferrovs_config::Config::from_str(&text, std::env::temp_dir()).map(|_| ()).map_err(|e| e.to_string())
}

/// Whether ferrovs accepts one rule on its own.
pub fn accepts_rule(rule: &str, openflow13: bool) -> Result<(), String> {
    let version = ferrovs_config::openflow::Version::from_ofctl_name(protocols(openflow13))?;
    let parsed = ferrovs_config::parse_flow(rule).map_err(|e| e.to_string())?;
    ferrovs_config::openflow::convert::as_loaded(parsed, version).map(|_| ())
}

fn counter(v: &serde_json::Value, port: &str, name: &str) -> u64 {
    v["bridges"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == port)
        .and_then(|p| p[name].as_u64())
        .unwrap_or(0)
}

/// The interface a paced run's input port captures, and the writer of frames onto it.
/// The interface is one end of a veth pair: a capture sees what is sent on it whole, as
/// written (no tag taken off on the way, no padding added), which the receiving end
/// would not promise (the kernel takes the outer tag off a received frame, and drops a
/// tagged one too short for its tag). The other end is in a namespace of its own, so
/// whatever the kernel does with the frames it receives stays there; IPv6 is off on both
/// ends and neither has an address, so the kernel sends nothing of its own on them. The
/// writer is a Python process holding a raw packet socket bound to the interface, which
/// writes each hex line it reads as one frame and answers `ok` (the harness has no raw
/// sockets of its own). One for a whole run; removed on drop.
pub struct Feeder {
    iface: String,
    /// Holds the other end of the pair (deleting the namespace deletes the pair).
    _peer_ns: Netns,
    writer: FrameWriter,
}

/// Frames the generator writes are far shorter; the MTU only has to let them through.
const FEEDER_MTU: &str = "9000";

impl Feeder {
    pub fn new() -> Result<Feeder, String> {
        let iface = unique("fod");
        let peer = format!("{iface}p");
        let ns = Netns::new();
        ns.quiet_ipv6();
        run_ok(
            "ip",
            &["link", "add", &iface, "mtu", FEEDER_MTU, "type", "veth", "peer", "name", &peer, "mtu", FEEDER_MTU],
        );
        run_ok("ip", &["link", "set", &peer, "netns", &ns.name]);
        ns.exec_ok(&["ip", "link", "set", &peer, "up"]);
        std::fs::write(format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6"), "1")
            .map_err(|e| format!("turning IPv6 off on {iface}: {e}"))?;
        run_ok("ip", &["link", "set", &iface, "up"]);
        let writer = FrameWriter::open(None, &iface)?;
        Ok(Feeder { iface, _peer_ns: ns, writer })
    }

    /// Writes `frame` onto the interface; returns once it is sent.
    fn send(&mut self, frame: &[u8]) -> Result<(), String> {
        self.writer.send(frame)
    }
}

/// The first PMD's lookups so far (cache hits of every level plus misses) and the packets
/// it has parked now.
fn lookups_and_parked(d: &Daemon) -> Option<(u64, u64)> {
    let line = d.request(r#"{"cmd":"pmd-stats-show"}"#).ok()?;
    let v: serde_json::Value = serde_json::from_str(&line).ok()?;
    let v = if v.get("result").is_some() { &v["result"] } else { &v };
    let pmd = v["pmds"].get(0)?;
    let n = |name: &str| pmd[name].as_u64();
    Some((n("emc_hits")? + n("signature_hits")? + n("megaflow_hits")? + n("misses")?, n("parked")?))
}

/// Writes `frames` one at a time through `feeder`, each once ferrovsd is done with the
/// ones before (see the module doc).
fn feed_paced(d: &Daemon, feeder: &mut Feeder, frames: &[Vec<u8>]) -> Result<(), String> {
    for (i, f) in frames.iter().enumerate() {
        feeder.send(f)?;
        let start = Instant::now();
        loop {
            match lookups_and_parked(d) {
                Some((lookups, 0)) if lookups > i as u64 => break,
                state if start.elapsed() > Duration::from_secs(10) => {
                    return Err(format!(
                        "ferrovsd did not finish frame {i} of a paced run within 10 s (lookups, parked: {state:?})"
                    ));
                }
                _ => std::thread::sleep(Duration::from_micros(300)),
            }
        }
    }
    Ok(())
}

/// Per port (index = port - 1), the frames ferrovsd sent, in order. The frames are
/// replayed from a capture, or written one at a time through `paced`.
pub fn run(
    rules: &[String],
    openflow13: bool,
    in_port: u32,
    frames: &[Vec<u8>],
    paced: Option<&mut Feeder>,
) -> Result<crate::known::PerPort, String> {
    let dir = TempDir::new();
    write_pcap(&dir.join("in.pcap"), frames);
    write_pcap(&dir.join("empty.pcap"), &[]);
    let rx_iface = paced.as_ref().map(|f| f.iface.clone());
    let d = Daemon::start_in(dir, &config(rules, openflow13, in_port, rx_iface.as_deref()));
    let is_paced = paced.is_some();
    if let Some(feeder) = paced {
        feed_paced(&d, feeder, frames)?;
    }
    let show = |d: &Daemon| -> serde_json::Value {
        d.request(r#"{"cmd":"show"}"#)
            .ok()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .map(|v| if v.get("result").is_some() { v["result"].clone() } else { v })
            .unwrap_or_default()
    };
    let n = frames.len() as u64;
    let input = format!("p{in_port}");
    let all_in = wait_until(Duration::from_secs(20), || counter(&show(&d), &input, "rx_packets") >= n);
    if !all_in {
        return Err(format!("ferrovsd received only part of the input: {}", show(&d)));
    }
    if is_paced {
        // Each frame was done before the next was written; the last one too.
        let received = counter(&show(&d), &input, "rx_packets");
        if received != n {
            return Err(format!("ferrovsd received {received} frames on {input}, {n} were written"));
        }
        return stop_and_read(d);
    }
    // Misses go through the slow path: wait until the transmit counters rest.
    let tx_total = |v: &serde_json::Value| -> u64 {
        (1..=N_PORTS)
            .map(|p| counter(v, &format!("p{p}"), "tx_packets") + counter(v, &format!("p{p}"), "drop_tx_full"))
            .sum()
    };
    let mut last = tx_total(&show(&d));
    let mut still_since = Instant::now();
    let start = Instant::now();
    while still_since.elapsed() < Duration::from_millis(150) && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(30));
        let now = tx_total(&show(&d));
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    stop_and_read(d)
}

/// Stops ferrovsd and reads what each port sent.
fn stop_and_read(d: Daemon) -> Result<crate::known::PerPort, String> {
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log));
    }
    Ok((1..=N_PORTS).map(|p| read_pcap(&stopped.dir.join(&format!("out{p}.pcap")))).collect())
}
