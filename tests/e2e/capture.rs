//! `ferrovs-ctl capture`: a running ferrovsd's port captured into pcapng while other
//! traffic flows, the file parsed back and compared byte for byte with what was sent;
//! the filter, the limits (count, duration, Ctrl-C) and the refusals.
//!
//! Port `a` is a net_tap whose interface sits in a namespace with IPv6 off (so the kernel
//! sends nothing of its own); the test writes frames onto it with a raw socket.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrovs_e2e::{Daemon, Netns, TempDir, bin, frames, unique, wait_until};
use libtest_mimic::Failed;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};

use crate::{counter, preamble};

/// One frame of a pcapng file: its bytes, its wire length, and its `epb_flags`.
#[derive(Debug)]
struct PcapNgFrame {
    data: Vec<u8>,
    orig_len: u32,
    flags: Option<u32>,
}

/// Every frame of the pcapng file at `path`, and the names of its interfaces.
fn read_pcapng(path: &Path) -> Result<(Vec<PcapNgFrame>, Vec<String>), Failed> {
    let bytes = std::fs::read(path)?;
    let mut r = PcapNgReader::new(&bytes[..]).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut frames, mut names) = (Vec::new(), Vec::new());
    while let Some(b) = r.next_block() {
        match b.map_err(|e| format!("{}: {e}", path.display()))? {
            Block::InterfaceDescription(i) => names.extend(i.options.iter().filter_map(|o| match o {
                InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                _ => None,
            })),
            Block::EnhancedPacket(p) => frames.push(PcapNgFrame {
                flags: p.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Flags(f) => Some(*f),
                    _ => None,
                }),
                orig_len: p.original_len,
                data: p.data.into_owned(),
            }),
            other => return Err(format!("unexpected block {other:?}").into()),
        }
    }
    Ok((frames, names))
}

/// ferrovsd with port `a` (a tap, moved into a quiet namespace; returned: the daemon, the
/// namespace and the tap's name) and `b` (a sink),
/// `in_port=1,actions=output:2`, plus `extra` ports and rules.
pub(crate) fn tap_switch(dir: TempDir, extra_flows: &str, extra_ports: &str) -> (Daemon, Netns, String) {
    let tap = unique("fvk");
    let config = format!(
        "{}{}{extra_ports}",
        preamble(),
        crate::bridge(
            &format!("flows = [\"in_port=1,actions=output:2\"{extra_flows}]"),
            &[("a", 1, &format!("net_tap0,iface={tap}")), ("b", 2, "net_null1,no-rx=1")]
        )
    );
    let d = Daemon::start_in(dir, &config);
    let ns = Netns::new();
    ns.quiet_ipv6();
    ferrovs_e2e::run_ok("ip", &["link", "set", &tap, "netns", &ns.name]);
    ns.exec_ok(&["ip", "link", "set", &tap, "up"]);
    (d, ns, tap)
}

/// A `ferrovs-ctl capture` running in the background; its standard error in a file.
struct CtlCapture {
    child: Child,
    err: std::path::PathBuf,
    out: std::path::PathBuf,
}

impl CtlCapture {
    fn start(d: &Daemon, name: &str, args: &[&str]) -> Result<CtlCapture, Failed> {
        let err = d.dir.join(&format!("{name}.err"));
        let out = d.dir.join(&format!("{name}.out"));
        let child = Command::new(bin("ferrovs-ctl"))
            .arg("--socket")
            .arg(&d.socket)
            .arg("--json")
            .arg("capture")
            .args(args)
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?)
            .stdin(Stdio::null())
            .spawn()?;
        Ok(CtlCapture { child, err, out })
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits until the daemon has armed the capture (ferrovs-ctl says so).
    fn wait_armed(&mut self) -> Result<(), Failed> {
        if wait_until(Duration::from_secs(15), || self.stderr().contains("capturing port")) {
            return Ok(());
        }
        let _ = self.child.kill();
        Err(format!("the capture never started: {}", self.stderr()).into())
    }

    /// Waits up to `timeout` for the exit; the JSON summary it printed.
    fn finish(mut self, timeout: Duration) -> Result<serde_json::Value, Failed> {
        let exited = wait_until(timeout, || matches!(self.child.try_wait(), Ok(Some(_))));
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Err(format!("ferrovs-ctl capture did not finish in {timeout:?}: {}", self.stderr()).into());
        }
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("ferrovs-ctl capture failed ({status}): {}", self.stderr()).into());
        }
        let out = std::fs::read_to_string(&self.out)?;
        Ok(serde_json::from_str(out.trim()).map_err(|e| format!("summary {out:?}: {e}"))?)
    }
}

impl Drop for CtlCapture {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A capture of port `a` while a replayed capture floods from port 3 to port 4: the
/// pcapng holds exactly the frames written onto `a`'s interface, byte for byte and in
/// order, each marked inbound, and none of the other traffic.
pub fn ctl_capture_is_what_was_sent() -> Result<(), Failed> {
    let dir = TempDir::new();
    let replay: Vec<Vec<u8>> = (0..64u8).map(|i| frames::ipv4_udp([198, 18, 9, 1], [198, 18, 9, i], 7, 7)).collect();
    ferrovs_e2e::write_pcap(&dir.join("replay.pcap"), &replay);
    let extra_ports = "\n[[bridge.port]]\nname = \"c\"\nnumber = 3\n\
                       devargs = \"net_pcap2,rx_pcap=@DIR@/replay.pcap,infinite_rx=1\"\n\
                       \n[[bridge.port]]\nname = \"d\"\nnumber = 4\ndevargs = \"net_null3,no-rx=1\"\n";
    let (d, ns, tap) = tap_switch(dir, ", \"in_port=3,actions=output:4\"", extra_ports);
    let sent: Vec<Vec<u8>> = frames::mixed_capture().into_iter().filter(|(_, runt)| !runt).map(|(f, _)| f).collect();
    let file = d.dir.join("a.pcapng");
    let file_arg = file.to_str().ok_or("utf8 path")?.to_string();
    let flowing_before = counter(&d.port_counters("d").ok_or("port d")?, "tx_packets");
    let mut cap = CtlCapture::start(&d, "cap", &["a", &file_arg, "--count", &sent.len().to_string()])?;
    cap.wait_armed()?;
    ns.send_frames(&tap, &sent);
    let summary = cap.finish(Duration::from_secs(20))?;
    let flowing_after = counter(&d.port_counters("d").ok_or("port d")?, "tx_packets");
    if flowing_after <= flowing_before {
        return Err(format!("no traffic flowed from c to d during the capture ({flowing_before})").into());
    }
    let (got, names) = read_pcapng(&file)?;
    if names != ["a"] {
        return Err(format!("interfaces {names:?}, want [\"a\"]").into());
    }
    let data: Vec<&Vec<u8>> = got.iter().map(|f| &f.data).collect();
    if data != sent.iter().collect::<Vec<_>>() {
        let first = data.iter().zip(&sent).position(|(a, b)| *a != b);
        let at = |v: &[&Vec<u8>], i: Option<usize>| i.and_then(|i| v.get(i)).map(|f| hex(f)).unwrap_or_default();
        let sent_refs: Vec<&Vec<u8>> = sent.iter().collect();
        return Err(format!(
            "captured {} frames, sent {}; first difference at {first:?}:\n got  {}\n sent {}",
            got.len(),
            sent.len(),
            at(&data, first),
            at(&sent_refs, first)
        )
        .into());
    }
    if let Some(f) = got.iter().find(|f| f.flags != Some(1) || f.orig_len as usize != f.data.len()) {
        return Err(format!("a frame is not a whole inbound frame: {f:?}").into());
    }
    if summary["frames"] != sent.len() || summary["reason"] != "count" {
        return Err(format!("summary {summary}").into());
    }
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    if !stopped.log.contains("capture of port a started") || !stopped.log.contains("capture of port a ended (Count)") {
        return Err(format!("the capture was not logged:\n{}", stopped.log).into());
    }
    Ok(())
}

/// `--filter udp,tp_dst=53 --count 10` keeps the first ten DNS frames of a mix and
/// counts what it left out; a second capture of a busy port, an unknown port and a bad
/// filter are refused; `--duration` ends an idle capture; Ctrl-C ends an unlimited one
/// and frees the port for the next capture.
pub fn ctl_capture_filter_and_limits() -> Result<(), Failed> {
    let (d, ns, tap) = tap_switch(TempDir::new(), "", "");
    let (a, b) = ([198, 18, 0, 1], [198, 18, 0, 2]);
    let mut sent = Vec::new();
    let mut dns = Vec::new();
    for i in 0..15u16 {
        let q = frames::ipv4_udp(a, b, 1000 + i, 53);
        dns.push(q.clone());
        sent.push(q);
        sent.push(frames::ipv4_udp(a, b, 1000 + i, 54));
        sent.push(frames::ipv4_tcp(a, b, 1000 + i, 53, 0x02));
        sent.push(frames::arp_request(a, b));
    }
    // Non-matching frames before the tenth DNS query: three per query.
    let left_out_before_tenth = 9 * 3;
    let file = d.dir.join("dns.pcapng");
    let file_arg = file.to_str().ok_or("utf8 path")?.to_string();
    let mut cap = CtlCapture::start(&d, "dns", &["a", &file_arg, "--count", "10", "--filter", "udp,tp_dst=53"])?;
    cap.wait_armed()?;

    // While it runs: the same port cannot be captured twice.
    let busy = d.ctl(&["capture", "a", &d.dir.join("busy.pcapng").to_string_lossy()]);
    let busy_err = String::from_utf8_lossy(&busy.stderr).into_owned();
    if busy.status.success() || !busy_err.contains("already being captured") {
        return Err(format!("a second capture of port a: {busy_err}").into());
    }
    ns.send_frames(&tap, &sent);
    let summary = cap.finish(Duration::from_secs(20))?;
    let (got, _) = read_pcapng(&file)?;
    let data: Vec<Vec<u8>> = got.into_iter().map(|f| f.data).collect();
    if data != dns[..10] {
        return Err(format!("filtered capture: {} frames, not the first ten DNS queries", data.len()).into());
    }
    if summary["frames"] != 10 || summary["filtered_out"] != left_out_before_tenth || summary["dropped"] != 0 {
        return Err(format!("summary {summary}, want 10 frames, {left_out_before_tenth} filtered out").into());
    }

    let refused = d.dir.join("refused.pcapng");
    let refused_arg = refused.to_str().ok_or("utf8 path")?;
    for (args, want) in [
        (vec!["nosuch", refused_arg], "no port named"),
        (vec!["a", refused_arg, "--filter", "udp,tp_dts=53"], "filter: column 5"),
        (vec!["a", refused_arg, "--filter", "in_port=2"], "in_port"),
        (vec!["a", refused_arg, "--count", "0"], "at least 1"),
    ] {
        let out = d.ctl(&[&["capture"][..], &args].concat());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() || !err.contains(want) {
            return Err(format!("capture {args:?}: want an error with {want:?}, got: {err}").into());
        }
        if refused.exists() {
            return Err(format!("a refused capture ({args:?}) created its file").into());
        }
    }

    // --duration ends a capture that sees nothing.
    let idle = d.dir.join("idle.pcapng");
    let t = Instant::now();
    let cap = CtlCapture::start(&d, "idle", &["a", idle.to_str().ok_or("utf8")?, "--duration", "0.5"])?;
    let summary = cap.finish(Duration::from_secs(10))?;
    if summary["frames"] != 0 || summary["reason"] != "duration" || t.elapsed() < Duration::from_millis(500) {
        return Err(format!("idle capture: {summary} after {:?}", t.elapsed()).into());
    }
    if !read_pcapng(&idle)?.0.is_empty() {
        return Err("the idle capture has frames".into());
    }

    // Ctrl-C: the file keeps what came, and the daemon disarms (the port is free again).
    let open = d.dir.join("open.pcapng");
    let mut cap = CtlCapture::start(&d, "open", &["a", open.to_str().ok_or("utf8")?])?;
    cap.wait_armed()?;
    let rx_a = || d.port_counters("a").map(|p| counter(&p, "rx_packets")).unwrap_or(0);
    let before = rx_a();
    ns.send_frames(&tap, &dns[..3]);
    let written = wait_until(Duration::from_secs(5), || rx_a() >= before + 3);
    // The capture thread polls every millisecond; give it ample time to pass them on.
    std::thread::sleep(Duration::from_millis(300));
    ferrovs_e2e::run_ok("kill", &["-INT", &cap.child.id().to_string()]);
    let summary = cap.finish(Duration::from_secs(10))?;
    if !written || summary["reason"] != "interrupted" || summary["frames"] != 3 {
        return Err(format!("interrupted capture: {summary}").into());
    }
    let data: Vec<Vec<u8>> = read_pcapng(&open)?.0.into_iter().map(|f| f.data).collect();
    if data != dns[..3] {
        return Err(format!("interrupted capture holds {} frames, not the three sent", data.len()).into());
    }
    let freed = wait_until(Duration::from_secs(5), || d.log_text().contains("the client closed the connection"));
    let again = CtlCapture::start(&d, "again", &["a", &file_arg, "--duration", "0.1"])?.finish(Duration::from_secs(10));
    if !freed || again.is_err() {
        return Err(format!("the port was not freed after Ctrl-C: {again:?}\n{}", d.log_text()).into());
    }
    Ok(())
}

/// A frame as hex, for failure messages.
fn hex(f: &[u8]) -> String {
    f.iter().map(|b| format!("{b:02x}")).collect()
}
