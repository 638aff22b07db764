#![forbid(unsafe_code)]
//! Harness for ferrovs's end-to-end tests: a running `ferrovsd`, network namespaces, and
//! scratch directories, each an RAII guard that cleans up on drop, so a failing (panicking)
//! test still removes its namespaces, interfaces and processes.
//!
//! Names are unique per process and per call (`unique`), so tests can run in parallel
//! with each other and with other checkouts on the same machine. Interface names stay
//! within the kernel's 15-character limit.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A short name, unique across processes and calls: `<prefix><pid in base36><counter>`.
/// With a prefix of up to 4 characters it fits in an interface name with room for a
/// one-character suffix.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{}", base36(std::process::id()), base36(n))
}

fn base36(mut v: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// Directory holding the workspace's built binaries (`target/debug` or `target/release`).
/// `FERROVS_BIN_DIR` overrides; otherwise it is found from the test executable's path
/// (`target/<profile>/deps/<test>`).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("FERROVS_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("exe dir");
    deps.parent().expect("profile dir").to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} is not built: run `cargo build --workspace --bins` first", p.display());
    p
}

/// Runs a command, returning its output; panics with stderr if it cannot be started.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Runs a command that must succeed.
pub fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "`{cmd} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scratch directory, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(unique("ferrovs-e2e-"));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A network namespace created for one test and deleted on drop (which also destroys
/// any interface moved into it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique("fvs-ns-");
        run_ok("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let mut args = vec!["netns", "exec", self.name.as_str()];
        args.extend_from_slice(argv);
        run("ip", &args)
    }

    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let mut args = vec!["netns", "exec", self.name.as_str()];
        args.extend_from_slice(argv);
        run_ok("ip", &args)
    }

    /// Moves `iface` (in the root namespace) into this namespace, gives it `addr_cidr`
    /// and brings it up.
    pub fn adopt(&self, iface: &str, addr_cidr: &str) {
        run_ok("ip", &["link", "set", iface, "netns", &self.name]);
        self.exec_ok(&["ip", "addr", "add", addr_cidr, "dev", iface]);
        self.exec_ok(&["ip", "link", "set", iface, "up"]);
    }

    /// Writes `frames` in order onto `iface` (an interface in this namespace), whole and
    /// unchanged, through one raw packet socket.
    pub fn send_frames(&self, iface: &str, frames: &[Vec<u8>]) {
        let mut w = FrameWriter::open(Some(&self.name), iface).unwrap_or_else(|e| panic!("{e}"));
        for f in frames {
            w.send(f).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Turns IPv6 off for interfaces that join the namespace later, so the kernel sends
    /// nothing of its own on them (no router solicitations, no MLD reports).
    pub fn quiet_ipv6(&self) {
        self.exec_ok(&["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"]);
    }

    /// Sends `count` pings to `dst`, 0.2 s apart, each waiting up to `wait_s` seconds.
    /// Returns (transmitted, received).
    pub fn ping(&self, dst: &str, count: u32, wait_s: u32) -> (u32, u32) {
        let out =
            self.exec(&["ping", "-n", "-q", "-c", &count.to_string(), "-i", "0.2", "-W", &wait_s.to_string(), dst]);
        parse_ping_summary(&String::from_utf8_lossy(&out.stdout))
    }
}

/// Writes frames onto one interface through a raw socket, one at a time: a `python3` child
/// (the standard library has no `AF_PACKET`) that reads a frame per line of hex on its
/// stdin and answers `ok` once the kernel took it, so the caller knows each frame left
/// before it sends the next.
pub struct FrameWriter {
    child: Child,
    to_child: std::process::ChildStdin,
    from_child: BufReader<std::process::ChildStdout>,
}

impl FrameWriter {
    /// A writer onto `iface`, inside namespace `netns` (or the root namespace).
    pub fn open(netns: Option<&str>, iface: &str) -> Result<FrameWriter, String> {
        let script = "import socket,sys\n\
                      s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
                      s.bind((sys.argv[1],0))\n\
                      for line in sys.stdin:\n\
                      \x20s.send(bytes.fromhex(line.strip()))\n\
                      \x20sys.stdout.write('ok\\n')\n\
                      \x20sys.stdout.flush()\n";
        let mut argv: Vec<&str> = match netns {
            Some(ns) => vec!["ip", "netns", "exec", ns, "python3"],
            None => vec!["python3"],
        };
        argv.extend(["-c", script, iface]);
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("python3 (writes frames onto {iface}): {e}"))?;
        let to_child = child.stdin.take().expect("piped stdin");
        let from_child = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(FrameWriter { child, to_child, from_child })
    }

    /// Writes `frame`; returns once it is sent.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), String> {
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(self.to_child, "{hex}").map_err(|e| format!("frame writer: {e}"))?;
        let mut answer = String::new();
        self.from_child.read_line(&mut answer).map_err(|e| format!("frame writer: {e}"))?;
        if answer.trim() != "ok" {
            return Err(format!("frame writer did not send a frame of {} bytes: {answer:?}", frame.len()));
        }
        Ok(())
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Default for Netns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).stderr(Stdio::null()).status();
    }
}

/// Parses "N packets transmitted, M received" from ping's summary.
pub fn parse_ping_summary(s: &str) -> (u32, u32) {
    for line in s.lines() {
        if let Some(idx) = line.find(" packets transmitted, ") {
            let tx = line[..idx].trim().parse().unwrap_or(0);
            let rest = &line[idx + " packets transmitted, ".len()..];
            let rx = rest.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
            return (tx, rx);
        }
    }
    (0, 0)
}

/// A running ferrovsd, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Daemon {
    child: Option<Child>,
    pub socket: PathBuf,
    pub dir: TempDir,
    pub log: PathBuf,
}

/// What a stopped daemon left: exit status and its combined output.
pub struct Stopped {
    pub status: ExitStatus,
    pub log: String,
    /// The daemon's scratch directory (its config, captures it wrote), removed on drop.
    pub dir: TempDir,
}

impl Daemon {
    /// Writes `config` (TOML; the string `@SOCKET@` is replaced by a unique control
    /// socket path and `@DIR@` by the scratch directory) and starts ferrovsd on it.
    /// Waits until the control socket answers.
    pub fn start(config: &str) -> Daemon {
        let dir = TempDir::new();
        Self::start_in(dir, config)
    }

    pub fn start_in(dir: TempDir, config: &str) -> Daemon {
        Self::start_in_with_env(dir, config, &[])
    }

    /// As [`Daemon::start_in`], with extra environment variables for ferrovsd.
    pub fn start_in_with_env(dir: TempDir, config: &str, env: &[(&str, &str)]) -> Daemon {
        let socket = dir.join("ctl.sock");
        let config = config
            .replace("@SOCKET@", socket.to_str().expect("utf8 path"))
            .replace("@DIR@", dir.path.to_str().expect("utf8 path"));
        std::fs::write(dir.join("ferrovs.toml"), config).expect("write config");
        Self::restart_in(dir, env)
    }

    /// Starts ferrovsd on the config already in `dir` (`ferrovs.toml`, as a previous
    /// `start_in` left it, with whatever the daemon wrote back), e.g. after [`Daemon::kill`].
    pub fn restart_in(dir: TempDir, env: &[(&str, &str)]) -> Daemon {
        let socket = dir.join("ctl.sock");
        let cfg = dir.join("ferrovs.toml");
        let log = dir.join("ferrovsd.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin("ferrovsd"))
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .expect("spawn ferrovsd");
        let mut d = Daemon { child: Some(child), socket, dir, log };
        let ready = wait_until(Duration::from_secs(30), || {
            if let Some(st) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("ferrovsd exited early ({st}):\n{}", d.log_text());
            }
            d.request(r#"{"cmd":"show"}"#).is_ok()
        });
        assert!(ready, "ferrovsd did not answer on its control socket:\n{}", d.log_text());
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends one raw JSON request line on the control socket and returns the reply line.
    pub fn request(&self, line: &str) -> std::io::Result<String> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.write_all(line.as_bytes())?;
        s.write_all(b"\n")?;
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply)?;
        Ok(reply)
    }

    /// Runs `ferrovs-ctl --socket SOCK args...`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("ferrovs-ctl")).arg("--socket").arg(&self.socket).args(args).output().expect("run ferrovs-ctl")
    }

    /// `ferrovs-ctl --json ARGS`, parsed.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ctl(&a);
        assert!(
            out.status.success(),
            "ferrovs-ctl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("ferrovs-ctl printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Port counters by port name from `show`: (rx_packets, tx_packets, total drops).
    pub fn port_counters(&self, name: &str) -> Option<serde_json::Value> {
        let v = self.ctl_json(&["show"]);
        v["bridges"].as_array()?.iter().find_map(|b| b["ports"].as_array()?.iter().find(|p| p["name"] == name).cloned())
    }

    /// The kernel interface name (`iface=`) of a port's net_tap/af_packet devargs.
    pub fn port_iface(&self, name: &str) -> String {
        let p = self.port_counters(name).unwrap_or_else(|| panic!("no port {name}"));
        let devargs = p["devargs"].as_str().unwrap_or_default().to_string();
        devargs
            .split(',')
            .find_map(|kv| kv.strip_prefix("iface="))
            .unwrap_or_else(|| panic!("port {name} has no iface= in {devargs}"))
            .to_string()
    }

    /// Sends SIGTERM and waits (up to 30 s) for the exit.
    /// Kills ferrovsd with SIGKILL (no clean-up of its own) and gives back its scratch
    /// directory, config included.
    pub fn kill(mut self) -> TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::mem::replace(&mut self.dir, TempDir { path: PathBuf::new() })
    }

    pub fn stop(mut self) -> Stopped {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                break child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = self.log_text();
        let dir = std::mem::replace(&mut self.dir, TempDir { path: PathBuf::new() });
        Stopped { status, log, dir }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let ok = wait_until(Duration::from_secs(10), || matches!(c.try_wait(), Ok(Some(_))));
            if !ok {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Runs ferrovsd on `config` expecting it to refuse to start; returns (status, output).
pub fn ferrovsd_check_fails(config: &str, extra_args: &[&str]) -> (ExitStatus, String) {
    let dir = TempDir::new();
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, config.replace("@DIR@", dir.path.to_str().expect("utf8"))).expect("write");
    let out = Command::new(bin("ferrovsd"))
        .arg("--config")
        .arg(&cfg)
        .args(extra_args)
        .stdin(Stdio::null())
        .output()
        .expect("run ferrovsd");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status, text)
}

/// Whether a path exists (for readability in tests).
pub fn exists(p: &Path) -> bool {
    p.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary() {
        let s = "--- 198.18.0.2 ping statistics ---\n3 packets transmitted, 2 received, 33% packet loss, time 402ms\n";
        assert_eq!(parse_ping_summary(s), (3, 2));
        assert_eq!(parse_ping_summary("garbage"), (0, 0));
    }

    #[test]
    fn unique_names_fit_interfaces() {
        let a = unique("fvs");
        let b = unique("fvs");
        assert_ne!(a, b);
        assert!(a.len() < 15, "{a}");
    }
}

pub mod frames;
pub mod ovs;
pub mod pcap;

/// Writes `frames` as a pcap file; panics on an I/O error (a test harness failure).
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    pcap::write_frames(path, frames).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Reads every frame of a pcap file; panics if it cannot.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    pcap::read_frames(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
