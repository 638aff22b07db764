//! The resolved switch configuration and its loader.
//!
//! # Design
//!
//! Loading is three passes over one text:
//!
//! 1. serde reads the TOML into the raw [`crate::schema`] structs (unknown keys and wrong
//!    types fail here; `serde_path_to_error` supplies the key path and toml the span);
//! 2. [`crate::resolve`] fills in defaults, checks everything that needs more than one value
//!    (duplicate bridges, ports, devices, PMD cores...) and parses the rules of every
//!    bridge (`[[bridge.rule]]` tables, `flows` strings and the `flows_file`) with the
//!    same parser as `ovs-ofctl` lines;
//! 3. [`Config::validate`] checks what depends on the machine ([`SystemFacts`]: which
//!    CPUs exist), because this crate does no I/O beyond reading the config and flows
//!    files.
//!
//! Every error is a [`ConfigError`] naming the file, line, column and key path.
//!
//! The TOML schema is documented in `config/README.md`; [`Config`]'s fields document
//! the resolved values and their defaults.

use crate::error::ConfigError;
use crate::hugepages::HugepagesConfig;
use crate::ports::PortDevice;
use crate::resolve::{Ctx, resolve};
use crate::rules::{Groups, Position, Rule};
use crate::schema::deserialize;
use crate::source_map::SourceMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The burst size of every PMD rx/tx call. Fixed: the whole fast path is built around
/// batches of this size.
pub const BURST_SIZE: usize = 32;

/// The default control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/ferrovs/ferrovsd.sock";

/// A loaded, checked switch configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub eal: EalConfig,
    pub control: ControlConfig,
    pub pmd: PmdConfig,
    pub flow: FlowConfig,
    pub metrics: MetricsConfig,
    /// `[hugepages]`: what `deploy/hugepages.sh` reserves (`ferrovsd --print-hugepages`);
    /// none without the section.
    pub hugepages: Option<HugepagesConfig>,
    pub bridges: Vec<BridgeConfig>,
    /// Where things were, for [`Config::validate`]'s errors.
    pub(crate) origin: Origin,
}

/// Where the values [`Config::validate`] checks were in the file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Origin {
    pub file: PathBuf,
    pub main_lcore: Option<Position>,
    /// Position of each PMD core in `pmd.cores` (or of the default's absence: none).
    pub pmd_cores: Vec<Position>,
}

/// `[eal]`: how DPDK's environment abstraction layer is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// `memory_mb`, default 512: memory DPDK reserves (`-m`).
    pub memory_mb: u32,
    /// `hugepages`, default false. Off: `--no-huge --no-shconf`; on: `--in-memory`, or
    /// hugepage files shared with the capture tools when `capture` is on.
    pub hugepages: bool,
    /// `main_lcore`, default 0: the CPU of the main (control) thread; no PMD may use it.
    pub main_lcore: usize,
    /// `log_level`, default `warning`: DPDK's `--log-level` (a level name, or
    /// `PATTERN:LEVEL` such as `pmd.net.tap:critical`).
    pub log_level: String,
    /// `extra_args`, default empty: appended to the EAL arguments as they are.
    pub extra_args: Vec<String>,
    /// `no_pci`: pass `--no-pci`. Default: true exactly when no port has a PCI address.
    pub no_pci: bool,
    /// `file_prefix`, default none: DPDK's `--file-prefix`, which names its runtime
    /// directory (`/var/run/dpdk/PREFIX`, where the telemetry socket is) so that several
    /// DPDK processes can run side by side. Without it DPDK uses `rte`. 1..=64 of
    /// `[A-Za-z0-9_.-]`, not starting with a dot.
    pub file_prefix: Option<String>,
    /// `huge_dir`, default none: DPDK's `--huge-dir`, the hugetlbfs mount to take pages
    /// from (DPDK's default: the first mount of the default page size). Needs
    /// `hugepages`; an absolute path.
    pub huge_dir: Option<PathBuf>,
    /// `capture`, default false: let DPDK's capture tools (`dpdk-dumpcap`, `dpdk-pdump`)
    /// attach to ferrovsd and copy a port's packets. They are secondary processes that map
    /// ferrovsd's memory through its hugepage files, so this needs `hugepages` and a
    /// `file_prefix` (which the tools are given: `dpdk-dumpcap --file-prefix=PREFIX`),
    /// and replaces `--in-memory` by file-backed pages (removed again when ferrovsd
    /// exits).
    pub capture: bool,
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// `socket`, default `/run/ferrovs/ferrovsd.sock`: the control socket's path.
    pub socket: PathBuf,
    /// `socket_group`: a group whose members may use the daemon's sockets (control,
    /// ovs-appctl, OpenFlow management) for read-only commands; changes stay with root
    /// and the daemon's user. Without it only those two can connect.
    pub socket_group: Option<String>,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsConfig {
    /// `listen`, default none (no endpoint): the `ADDRESS:PORT` where `GET /metrics`
    /// is served, such as `127.0.0.1:9477`. Only what is written here is exposed: use a
    /// loopback address unless the scraper is on another machine.
    pub listen: Option<SocketAddr>,
}

/// `[pmd]`: the forwarding threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmdConfig {
    /// `cores`, default `[1]`: one PMD thread pinned to each of these CPUs.
    pub cores: Vec<usize>,
    /// `idle_backoff_us`, default 0 (off): when a PMD finds no packets it sleeps,
    /// doubling from 1 µs up to this many microseconds, and polls flat out again as soon
    /// as traffic arrives. 0 means busy-polling always (lowest latency, one full CPU).
    pub idle_backoff_us: u32,
    /// Always [`BURST_SIZE`]; `burst` in the file may only repeat it.
    pub burst: usize,
    /// `auto_rebalance_interval_s`, default 0 (off): every this many seconds, if the
    /// busiest PMD was busy at least `auto_rebalance_threshold` % of the interval and
    /// another had room, the rx queues are reassigned by load (OVS's `pmd-auto-lb`).
    pub auto_rebalance_interval_s: u32,
    /// `auto_rebalance_threshold`, default 95 (%, as OVS's `pmd-auto-lb-load-threshold`).
    pub auto_rebalance_threshold: u8,
    /// `share_main_lcore`, default false: a PMD may run on the main lcore's CPU, sharing it
    /// with the control thread (machines with very few CPUs, such as a 2-CPU test host that
    /// needs two PMDs). Off, such a `cores` entry is refused.
    pub share_main_lcore: bool,
}

/// `[flow]`: slow-path and megaflow cache knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// `limit_per_pmd`, default 200000: most megaflows one PMD may hold.
    pub limit_per_pmd: u32,
    /// `idle_expiry_ms`, default 10000: a megaflow unused this long is removed.
    pub idle_expiry: Duration,
    /// `upcall_queue_len`, default 4096: the bounded queue of misses from each PMD to
    /// the slow path; misses beyond it are dropped (and counted).
    pub upcall_queue_len: u32,
}

/// `[[bridge]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    pub name: String,
    /// The bridge's ports; with `internal_port`, the first is the internal port
    /// ([`BridgeConfig::internal_port_config`]), which is never written to the file.
    pub ports: Vec<PortConfig>,
    /// Every rule of the bridge: `[[bridge.rule]]` tables, then `flows`, then the lines
    /// of `flows_file`, in file order.
    pub rules: Vec<Rule>,
    /// The bridge's groups (`groups`, in `ovs-ofctl add-group` syntax); every group a
    /// rule names is one of them.
    pub groups: Groups,
    /// OpenFlow controller targets: `tcp:IP:PORT` (the switch connects) and
    /// `ptcp:PORT[:IP]` (the switch listens, on 127.0.0.1 unless an IP is given).
    pub controllers: Vec<ControllerTarget>,
    pub fail_mode: FailMode,
    /// The OpenFlow datapath id (`datapath_id = "0x..."`, at most 48 bits as OVS
    /// derives them); `None`: derived from the bridge's name. Controllers tell switches
    /// apart by it: bridges of one name on several hosts need their own.
    pub datapath_id: Option<u64>,
    /// `internal_port`, default true: the bridge has an internal port (OVS's `LOCAL`), a
    /// TAP interface named after the bridge that the host can address.
    pub internal_port: bool,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            name: String::new(),
            ports: Vec::new(),
            rules: Vec::new(),
            groups: Groups::default(),
            controllers: Vec::new(),
            fail_mode: FailMode::default(),
            datapath_id: None,
            internal_port: true,
        }
    }
}

impl BridgeConfig {
    /// A new bridge `name` without rules; with its internal port when `internal_port`.
    pub fn new(name: &str, internal_port: bool) -> BridgeConfig {
        let ports = if internal_port { vec![BridgeConfig::internal_port_config(name)] } else { Vec::new() };
        BridgeConfig { name: name.to_string(), ports, internal_port, ..BridgeConfig::default() }
    }

    /// The internal port of bridge `bridge`: named as the bridge, OpenFlow number
    /// [`crate::LOCAL_PORT`], a net_tap device whose kernel interface is named as the bridge.
    pub fn internal_port_config(bridge: &str) -> PortConfig {
        let devargs = format!("{}{bridge},iface={bridge}", crate::ports::INTERNAL_DEVICE_PREFIX);
        PortConfig {
            name: bridge.to_string(),
            number: crate::ports::LOCAL_PORT,
            device: PortDevice::Vdev {
                name: devargs.split(',').next().unwrap_or_default().to_string(),
                driver: "net_tap".into(),
            },
            devargs,
            rx_queues: 1,
            mtu: crate::ports::DEFAULT_MTU,
            admin_down: false,
            rxq_affinity: Vec::new(),
        }
    }

    /// The ports the operator added (every port but the internal one).
    pub fn user_ports(&self) -> impl Iterator<Item = &PortConfig> {
        self.ports.iter().filter(|p| !p.is_internal())
    }
}

impl PortConfig {
    /// Whether this is a bridge's internal port.
    pub fn is_internal(&self) -> bool {
        self.number == crate::ports::LOCAL_PORT
    }
}

/// Where an OpenFlow controller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControllerTarget {
    /// `tcp:IP:PORT`: connect to a controller (reconnecting with back-off).
    Tcp(std::net::SocketAddr),
    /// `ptcp:PORT[:IP]`: listen for controllers.
    Ptcp(std::net::SocketAddr),
}

impl ControllerTarget {
    /// Parses `tcp:IP:PORT` (IPv6 as `tcp:[IP]:PORT`) or `ptcp:PORT[:IP]`.
    pub fn parse(s: &str) -> Result<ControllerTarget, String> {
        let port = |p: &str| p.parse::<u16>().map_err(|_| format!("`{p}` is not a TCP port number"));
        let ip = |a: &str| {
            a.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("`{a}` is not an IP address"))
        };
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (a, p) = rest.rsplit_once(':').ok_or_else(|| format!("`{s}`: expected tcp:IP:PORT"))?;
            Ok(ControllerTarget::Tcp(std::net::SocketAddr::new(ip(a)?, port(p)?)))
        } else if let Some(rest) = s.strip_prefix("ptcp:") {
            let (p, a) = rest.split_once(':').unwrap_or((rest, "127.0.0.1"));
            Ok(ControllerTarget::Ptcp(std::net::SocketAddr::new(ip(a)?, port(p)?)))
        } else {
            Err(format!("`{s}`: a controller is tcp:IP:PORT or ptcp:PORT[:IP] (unix and ssl are not supported)"))
        }
    }
}

impl std::fmt::Display for ControllerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControllerTarget::Tcp(a) => write!(f, "tcp:{}:{}", bracketed(a.ip()), a.port()),
            ControllerTarget::Ptcp(a) => write!(f, "ptcp:{}:{}", a.port(), bracketed(a.ip())),
        }
    }
}

fn bracketed(ip: std::net::IpAddr) -> String {
    if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() }
}

/// What a bridge with controllers does while none is connected (OVS's `fail_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum FailMode {
    /// Switch as `normal` (MAC learning), bypassing the rules, until a controller
    /// connects.
    #[default]
    Standalone,
    /// Keep the rules; table misses drop.
    Secure,
}

impl FailMode {
    pub fn parse(s: &str) -> Result<FailMode, String> {
        match s {
            "standalone" => Ok(FailMode::Standalone),
            "secure" => Ok(FailMode::Secure),
            _ => Err(format!("`{s}`: fail_mode is `standalone` or `secure`")),
        }
    }
}

/// `[[bridge.port]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Unique across the switch.
    pub name: String,
    /// OpenFlow port number, 1..=[`crate::MAX_PORT_NUMBER`], unique across the switch.
    pub number: u32,
    /// The DPDK device arguments as written (`0000:01:00.0`, `net_tap0,iface=fvs0`...).
    pub devargs: String,
    /// What `devargs` names.
    pub device: PortDevice,
    /// `rx_queues`, default 1.
    pub rx_queues: u16,
    /// `mtu`, default [`crate::DEFAULT_MTU`].
    pub mtu: u16,
    /// `admin = "down"` (default `"up"`): the port neither receives nor sends (OVS's
    /// `ovs-ofctl mod-port BR PORT down`, OpenFlow's `OFPPC_PORT_DOWN`).
    pub admin_down: bool,
    /// `rxq_affinity`, default none: rx queues pinned to PMD cores
    /// ([`crate::ports::RxqAffinity`]).
    pub rxq_affinity: crate::ports::RxqAffinity,
}

/// What [`Config::validate`] needs to know about the machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemFacts {
    /// CPUs that are online and usable by this process.
    pub online_cpus: Vec<usize>,
}

impl Config {
    /// Reads and checks the config file at `path`; `flows_file`s are relative to its
    /// directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            position: None,
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, path, base)
    }

    /// Checks a config given as text; `flows_file`s are relative to `base_dir`. Errors
    /// name the file `<config>`.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, base_dir: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("<config>"), base_dir.as_ref())
    }

    /// Checks a config given as text, naming `file` in errors.
    pub fn parse(text: &str, file: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
        let map = SourceMap::new(text);
        let raw = deserialize(text, file, &map)?;
        resolve(raw, &Ctx { file, map: &map, base_dir })
    }

    /// Checks the config against the machine: the main lcore and every PMD core must be
    /// an online CPU.
    pub fn validate(&self, facts: &SystemFacts) -> Result<(), ConfigError> {
        let err = |position, key: String, message: String| ConfigError {
            file: self.origin.file.clone(),
            position,
            key,
            message,
        };
        let online = |cpu: &usize| facts.online_cpus.contains(cpu);
        let list = || format!("{:?}", facts.online_cpus);
        if !online(&self.eal.main_lcore) {
            return Err(err(
                self.origin.main_lcore,
                "eal.main_lcore".into(),
                format!("CPU {} is not online here (online CPUs: {})", self.eal.main_lcore, list()),
            ));
        }
        for (i, core) in self.pmd.cores.iter().enumerate() {
            if !online(core) {
                return Err(err(
                    self.origin.pmd_cores.get(i).copied(),
                    if self.origin.pmd_cores.is_empty() { "pmd.cores".into() } else { format!("pmd.cores[{i}]") },
                    format!("CPU {core} is not online here (online CPUs: {})", list()),
                ));
            }
        }
        Ok(())
    }

    /// The EAL arguments for this config (without the program name): the main lcore,
    /// memory, hugepage mode (`--no-huge --no-shconf`; `--in-memory`; or, with `capture`,
    /// neither: file-backed pages and a runtime directory the capture tools attach to),
    /// the hugetlbfs directory, log level, the file prefix if any, `--no-pci` or an
    /// allow-list entry (`-a`) per PCI port, a `--vdev` per virtual port, then
    /// `extra_args`. PMD threads are not EAL lcores: they are pinned by the daemon and
    /// registered with DPDK.
    pub fn eal_args(&self) -> Vec<String> {
        let e = &self.eal;
        let mut args = vec!["-l".to_string(), e.main_lcore.to_string(), "-m".to_string(), e.memory_mb.to_string()];
        match (e.hugepages, e.capture) {
            (true, false) => args.push("--in-memory".into()),
            // Resolving refuses capture without hugepages.
            (true, true) => {}
            (false, _) => {
                args.push("--no-huge".into());
                args.push("--no-shconf".into());
            }
        }
        if let Some(dir) = &e.huge_dir {
            args.push(format!("--huge-dir={}", dir.display()));
        }
        args.push(format!("--log-level={}", e.log_level));
        if let Some(prefix) = &e.file_prefix {
            args.push(format!("--file-prefix={prefix}"));
        }
        if e.no_pci {
            args.push("--no-pci".into());
        }
        for port in self.bridges.iter().flat_map(|b| &b.ports) {
            match port.device {
                PortDevice::Pci { .. } if !e.no_pci => {
                    args.push("-a".into());
                    args.push(port.devargs.clone());
                }
                PortDevice::Pci { .. } => {}
                PortDevice::Vdev { .. } => args.push(format!("--vdev={}", port.devargs)),
            }
        }
        args.extend(e.extra_args.iter().cloned());
        args
    }

    /// The bridge called `name`.
    pub fn bridge(&self, name: &str) -> Option<&BridgeConfig> {
        self.bridges.iter().find(|b| b.name == name)
    }
}

/// Checks `cfg` against the machine; the same as [`Config::validate`].
pub fn validate(cfg: &Config, facts: &SystemFacts) -> Result<(), ConfigError> {
    cfg.validate(facts)
}

#[cfg(test)]
mod tests;
