//! Running a rule set and a list of frames through the real ferrovsd: net_pcap ports
//! 1..=N, the input port replaying `in.pcap` once, every port writing what it sends to
//! `out<N>.pcap`. The daemon is stopped before the captures are read (net_pcap flushes
//! them on close).

use std::time::{Duration, Instant};

use ferrovs_e2e::{Daemon, TempDir, read_pcap, wait_until, write_pcap};

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
/// input on `in_port`.
pub fn config(rules: &[String], openflow13: bool, in_port: u32) -> String {
    let flows: Vec<String> = rules.iter().map(|r| toml_string(r)).collect();
    let mut s = format!(
        "{}\n[[bridge]]\nname = \"br0\"\ninternal_port = false\nprotocols = \"{}\"\nflows = [\n  {}\n]\n",
        preamble(),
        protocols(openflow13),
        flows.join(",\n  ")
    );
    for p in 1..=N_PORTS {
        let rx = if p == in_port { "in.pcap" } else { "empty.pcap" };
        s += &format!(
            "\n[[bridge.port]]\nname = \"p{p}\"\nnumber = {p}\n\
             devargs = \"net_pcap{i},rx_pcap=@DIR@/{rx},tx_pcap=@DIR@/out{p}.pcap\"\n",
            i = p - 1
        );
    }
    s
}

/// Whether ferrovs's config parser accepts `rules` (the same check ferrovsd makes at start).
pub fn accepts(rules: &[String], openflow13: bool) -> Result<(), String> {
    let text =
        config(rules, openflow13, 1).replace("@SOCKET@", "/nonexistent/ctl.sock").replace("@DIR@", "/nonexistent");
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

/// Per port (index = port - 1), the frames ferrovsd sent, in order.
pub fn run(
    rules: &[String],
    openflow13: bool,
    in_port: u32,
    frames: &[Vec<u8>],
) -> Result<crate::known::PerPort, String> {
    let dir = TempDir::new();
    write_pcap(&dir.join("in.pcap"), frames);
    write_pcap(&dir.join("empty.pcap"), &[]);
    let d = Daemon::start_in(dir, &config(rules, openflow13, in_port));
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
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log));
    }
    Ok((1..=N_PORTS).map(|p| read_pcap(&stopped.dir.join(&format!("out{p}.pcap")))).collect())
}
