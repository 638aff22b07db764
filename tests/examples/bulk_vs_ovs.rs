//! End-to-end time of one bulk `add-flows` of a rules file: `ferrovs-ctl add-flows` into
//! a running ferrovsd (net_null-free: four idle net_pcap ports) beside `ovs-ofctl
//! add-flows` into a private Open vSwitch (dummy datapath, see `ferrovs_e2e::ovs`).
//!
//! `cargo build --release --workspace --bins --examples`, then, as root:
//! `target/release/examples/bulk_vs_ovs FILE` (FILE: rules in `ovs-ofctl` syntax, e.g.
//! written by `cargo run --release -p ferrovs-flowcache --example bulk_load -- 1000000
//! FILE`). Each side starts with an empty bridge; the time is the command's, until it
//! returns. With `--no-ovs` after FILE, only the ferrovs side runs (OVS takes a minute
//! at a million rules).

use std::process::Command;
use std::time::Instant;

use ferrovs_e2e::ovs::Ovs;
use ferrovs_e2e::{Daemon, TempDir, bin, write_pcap};

fn config() -> String {
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut s = format!(
        "[eal]\nhugepages = false\nmemory_mb = 256\n\n[control]\nsocket = \"@SOCKET@\"\n\n[pmd]\ncores = [{}]\n\
         idle_backoff_us = 200\n\n[[bridge]]\nname = \"br0\"\ninternal_port = false\nflows = []\n",
        ncpu.saturating_sub(1)
    );
    for p in 1..=4 {
        s += &format!(
            "\n[[bridge.port]]\nname = \"p{p}\"\nnumber = {p}\n\
             devargs = \"net_pcap{i},rx_pcap=@DIR@/empty.pcap,tx_pcap=@DIR@/out{p}.pcap\"\n",
            i = p - 1
        );
    }
    s
}

fn main() {
    let file = std::env::args().nth(1).expect("usage: bulk_vs_ovs FILE");
    let lines = std::fs::read_to_string(&file).expect("readable file").lines().count();
    println!("{file}: {lines} lines");

    let dir = TempDir::new();
    write_pcap(&dir.join("empty.pcap"), &[]);
    let d = Daemon::start_in(dir, &config());
    let t = Instant::now();
    let out = Command::new(bin("ferrovs-ctl"))
        .args(["-s", d.socket.to_str().expect("utf8"), "add-flows", "br0", &file])
        .output()
        .expect("run ferrovs-ctl");
    let ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "ferrovs-ctl add-flows: {ms:.0} ms, exit {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim().replace('\n', ", "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    // The daemon's own split of that time (parse and apply, write-back).
    for line in d.stop().log.lines().filter(|l| l.contains("add-flows br0:")) {
        println!("  ferrovsd: {}", line.split("add-flows").nth(1).map_or(line, str::trim));
    }

    if std::env::args().nth(2).as_deref() == Some("--no-ovs") {
        return;
    }
    if let Err(e) = ferrovs_e2e::ovs::installed() {
        println!("OVS: not run ({e})");
        return;
    }
    let ovs = Ovs::start(4);
    let t = Instant::now();
    let out = ovs.run("ovs-ofctl", &["add-flows", "br0", &file]);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    println!("ovs-ofctl add-flows:   {ms:.0} ms, exit {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    let n = ovs.run("ovs-ofctl", &["dump-aggregate", "br0"]);
    println!("OVS dump-aggregate: {}", String::from_utf8_lossy(&n.stdout).trim());
}
