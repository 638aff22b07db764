//! The resolved switch configuration and its loader.
//!
//! # Design
//!
//! Loading is three passes over one text:
//!
//! 1. serde reads the TOML into the raw [`crate::schema`] structs (unknown keys and wrong
//!    types fail here; `serde_path_to_error` supplies the key path and toml the span);
//! 2. [`resolve`] fills in defaults, checks everything that needs more than one value
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

use crate::action_parse::{ParsedAction, parse_action_text};
use crate::error::ConfigError;
use crate::flow_parse::{finish_rule, line_locator, parse_flow_located};
use crate::match_parse::{Mode, RuleBuilder, SHORTHANDS};
use crate::rule_error::RuleError;
use crate::rules::{Action, Match, Position, Rule};
use crate::schema::{RawBridge, RawConfig, RawPort, RawRule, RuleValue};
use crate::source_map::SourceMap;
use crate::values::MAX_PORT_NUMBER;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

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
    pub bridges: Vec<BridgeConfig>,
    /// Where things were, for [`Config::validate`]'s errors.
    origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Origin {
    file: PathBuf,
    main_lcore: Option<Position>,
    /// Position of each PMD core in `pmd.cores` (or of the default's absence: none).
    pmd_cores: Vec<Position>,
}

/// `[eal]`: how DPDK's environment abstraction layer is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// `memory_mb`, default 512: memory DPDK reserves (`-m`).
    pub memory_mb: u32,
    /// `hugepages`, default false. Off: `--no-huge --no-shconf`; on: `--in-memory`.
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
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// `socket`, default `/run/ferrovs/ferrovsd.sock`: the control socket's path.
    pub socket: PathBuf,
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
    pub ports: Vec<PortConfig>,
    /// Every rule of the bridge: `[[bridge.rule]]` tables, then `flows`, then the lines
    /// of `flows_file`, in file order.
    pub rules: Vec<Rule>,
}

/// `[[bridge.port]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Unique across the switch.
    pub name: String,
    /// OpenFlow port number, 1..=0xfeff, unique within the bridge.
    pub number: u32,
    /// The DPDK device arguments as written (`0000:01:00.0`, `net_tap0,iface=fvs0`...).
    pub devargs: String,
    /// What `devargs` names.
    pub device: PortDevice,
    /// `rx_queues`, default 1.
    pub rx_queues: u16,
}

/// The device a port's `devargs` names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortDevice {
    /// A PCI device; `address` is in full `DDDD:BB:DD.F` form (lowercase).
    Pci { address: String },
    /// A DPDK virtual device (`--vdev`): `name` is the device name (`net_tap0`), `driver`
    /// the name without its instance number (`net_tap`).
    Vdev { name: String, driver: String },
}

impl PortDevice {
    /// The name DPDK knows the device by; unique across the switch.
    pub fn name(&self) -> &str {
        match self {
            PortDevice::Pci { address } => address,
            PortDevice::Vdev { name, .. } => name,
        }
    }
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
        let raw: RawConfig = deserialize(text, file, &map)?;
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
    /// memory, hugepage mode, log level, `--no-pci` or an allow-list entry (`-a`) per PCI
    /// port, a `--vdev` per virtual port, then `extra_args`. PMD threads are not EAL
    /// lcores: they are pinned by the daemon and registered with DPDK.
    pub fn eal_args(&self) -> Vec<String> {
        let e = &self.eal;
        let mut args = vec!["-l".to_string(), e.main_lcore.to_string(), "-m".to_string(), e.memory_mb.to_string()];
        if e.hugepages {
            args.push("--in-memory".into());
        } else {
            args.push("--no-huge".into());
            args.push("--no-shconf".into());
        }
        args.push(format!("--log-level={}", e.log_level));
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

/// What resolving needs to report errors.
struct Ctx<'a> {
    file: &'a Path,
    map: &'a SourceMap<'a>,
    base_dir: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, offset: usize, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            position: Some(self.map.position(offset)),
            key: key.into(),
            message: message.into(),
        }
    }
    fn rule_err(&self, key: impl Into<String>, e: RuleError) -> ConfigError {
        ConfigError { file: self.file.to_path_buf(), position: Some(e.position), key: key.into(), message: e.reason }
    }
}

fn deserialize(text: &str, file: &Path, map: &SourceMap<'_>) -> Result<RawConfig, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        // toml's `Spanned` shows up in the path as a private field: leave it out.
        let mut path = e.path().to_string().replace(".$__serde_spanned_private_value", "");
        let inner = e.into_inner();
        // The keys of a `[[bridge.rule]]` table are read with their spans, which hides
        // them from the path (`?`); recover the key from the `KEY = VALUE` line.
        let hidden_key =
            path.find('?').zip(inner.span()).and_then(|(q, span)| Some((q, key_before(map.text(), span.start)?)));
        if let Some((q, key)) = hidden_key {
            path.replace_range(q..q + 1, key);
        }
        ConfigError {
            file: file.to_path_buf(),
            position: inner.span().map(|s| map.position(s.start)),
            key: if path == "." { String::new() } else { path },
            message: inner.message().trim_end().replace('\n', ": "),
        }
    })
}

/// The bare key of a `KEY = ...` line whose value starts at byte `offset`.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let (key, rest) = text.get(line_start..offset)?.split_once('=')?;
    let key = key.trim();
    let simple = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (simple && !rest.contains('=')).then_some(key)
}

fn resolve(raw: RawConfig, ctx: &Ctx<'_>) -> Result<Config, ConfigError> {
    let mut origin = Origin { file: ctx.file.to_path_buf(), ..Origin::default() };

    // [eal]
    let main_lcore = match &raw.eal.main_lcore {
        Some(m) => {
            origin.main_lcore = Some(ctx.map.position(m.span().start));
            *m.get_ref()
        }
        None => 0,
    };
    let memory_mb = match &raw.eal.memory_mb {
        Some(m) if *m.get_ref() == 0 => {
            return Err(ctx.err(m.span().start, "eal.memory_mb", "must be at least 1"));
        }
        Some(m) => *m.get_ref(),
        None => 512,
    };
    let log_level = match &raw.eal.log_level {
        Some(l) => {
            check_log_level(l.get_ref()).map_err(|m| ctx.err(l.span().start, "eal.log_level", m))?;
            l.get_ref().clone()
        }
        None => "warning".into(),
    };

    // [control]
    let socket = match &raw.control.socket {
        Some(s) if s.get_ref().is_empty() => {
            return Err(ctx.err(s.span().start, "control.socket", "must not be empty"));
        }
        Some(s) => PathBuf::from(s.get_ref()),
        None => PathBuf::from(DEFAULT_CONTROL_SOCKET),
    };

    // [pmd]
    let cores = match &raw.pmd.cores {
        None => {
            if main_lcore == 1 {
                return Err(ctx.err(
                    raw.eal.main_lcore.as_ref().map_or(0, |m| m.span().start),
                    "eal.main_lcore",
                    "the main lcore is CPU 1, which is also the default PMD core: set pmd.cores",
                ));
            }
            vec![1]
        }
        Some(list) => {
            if list.get_ref().is_empty() {
                return Err(ctx.err(list.span().start, "pmd.cores", "needs at least one CPU"));
            }
            let mut cores = Vec::new();
            for (i, c) in list.get_ref().iter().enumerate() {
                let key = format!("pmd.cores[{i}]");
                if let Some(j) = cores.iter().position(|x| x == c.get_ref()) {
                    return Err(ctx.err(
                        c.span().start,
                        key,
                        format!("CPU {} is listed twice (also pmd.cores[{j}])", c.get_ref()),
                    ));
                }
                if *c.get_ref() == main_lcore {
                    return Err(ctx.err(
                        c.span().start,
                        key,
                        format!("CPU {} is the main lcore (eal.main_lcore); a PMD needs a CPU of its own", c.get_ref()),
                    ));
                }
                cores.push(*c.get_ref());
                origin.pmd_cores.push(ctx.map.position(c.span().start));
            }
            cores
        }
    };
    if let Some(b) = raw.pmd.burst.as_ref().filter(|b| *b.get_ref() as usize != BURST_SIZE) {
        return Err(ctx.err(b.span().start, "pmd.burst", format!("the burst size is fixed at {BURST_SIZE}")));
    }
    let idle_backoff_us = match &raw.pmd.idle_backoff_us {
        Some(b) if *b.get_ref() > 1_000_000 => {
            return Err(ctx.err(b.span().start, "pmd.idle_backoff_us", "must be at most 1000000 (one second)"));
        }
        Some(b) => *b.get_ref(),
        None => 0,
    };

    // [flow]
    let positive_u32 = |v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
        Some(x) if *x.get_ref() == 0 => Err(ctx.err(x.span().start, key, "must be at least 1")),
        Some(x) => Ok(*x.get_ref()),
        None => Ok(default),
    };
    let limit_per_pmd = positive_u32(&raw.flow.limit_per_pmd, "flow.limit_per_pmd", 200_000)?;
    let upcall_queue_len = positive_u32(&raw.flow.upcall_queue_len, "flow.upcall_queue_len", 4096)?;
    let idle_expiry = match &raw.flow.idle_expiry_ms {
        Some(x) if *x.get_ref() == 0 => {
            return Err(ctx.err(x.span().start, "flow.idle_expiry_ms", "must be at least 1"));
        }
        Some(x) => Duration::from_millis(*x.get_ref()),
        None => Duration::from_secs(10),
    };

    // [[bridge]]
    if raw.bridge.is_empty() {
        return Err(ConfigError {
            file: ctx.file.to_path_buf(),
            position: Some(Position { line: 1, column: 1 }),
            key: "bridge".into(),
            message: "no [[bridge]]: the switch needs at least one bridge with ports".into(),
        });
    }
    let mut bridges: Vec<BridgeConfig> = Vec::new();
    // Device name and port name -> where first seen, across bridges.
    let mut devices: HashMap<String, String> = HashMap::new();
    let mut port_names: HashMap<String, String> = HashMap::new();
    for (bi, b) in raw.bridge.iter().enumerate() {
        let bkey = format!("bridge[{bi}]");
        let name = b.get_ref().name.get_ref();
        check_name(name).map_err(|m| ctx.err(b.get_ref().name.span().start, format!("{bkey}.name"), m))?;
        if bridges.iter().any(|x| &x.name == name) {
            return Err(ctx.err(
                b.get_ref().name.span().start,
                format!("{bkey}.name"),
                format!("duplicate bridge name `{name}`"),
            ));
        }
        let ports = resolve_ports(b, &bkey, ctx, &mut devices, &mut port_names)?;
        let rules = resolve_rules(b.get_ref(), &bkey, &ports, ctx)?;
        bridges.push(BridgeConfig { name: name.clone(), ports, rules });
    }

    let any_pci = bridges.iter().flat_map(|b| &b.ports).any(|p| matches!(p.device, PortDevice::Pci { .. }));
    let no_pci = raw.eal.no_pci.unwrap_or(!any_pci);
    Ok(Config {
        eal: EalConfig {
            memory_mb,
            hugepages: raw.eal.hugepages.unwrap_or(false),
            main_lcore,
            log_level,
            extra_args: raw.eal.extra_args.clone(),
            no_pci,
        },
        control: ControlConfig { socket },
        pmd: PmdConfig { cores, idle_backoff_us, burst: BURST_SIZE },
        flow: FlowConfig { limit_per_pmd, idle_expiry, upcall_queue_len },
        bridges,
        origin,
    })
}

fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 8] = ["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"];
    let last = level.rsplit(':').next().unwrap_or(level);
    if LEVELS.contains(&last) || matches!(last.parse::<u8>(), Ok(1..=8)) {
        Ok(())
    } else {
        Err(format!(
            "`{level}` is not a DPDK log level (one of {}, or 1..=8, optionally after `PATTERN:`)",
            LEVELS.join(", ")
        ))
    }
}

/// Bridge and port names: 1..=15 characters of letters, digits, `_`, `-` and `.`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("`{name}` must be 1 to 15 characters long"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(format!("`{name}` contains `{c}` (use letters, digits, `_`, `-`, `.`)"));
    }
    Ok(())
}

fn resolve_ports(
    b: &Spanned<RawBridge>,
    bkey: &str,
    ctx: &Ctx<'_>,
    devices: &mut HashMap<String, String>,
    port_names: &mut HashMap<String, String>,
) -> Result<Vec<PortConfig>, ConfigError> {
    let raw = b.get_ref();
    if raw.port.is_empty() {
        return Err(ctx.err(
            raw.name.span().start,
            format!("{bkey}.port"),
            format!("bridge `{}` has no ports ([[bridge.port]])", raw.name.get_ref()),
        ));
    }
    let mut ports: Vec<PortConfig> = Vec::new();
    for (pi, p) in raw.port.iter().enumerate() {
        let pkey = format!("{bkey}.port[{pi}]");
        let RawPort { name, number, devargs, rx_queues } = p.get_ref();
        check_name(name.get_ref()).map_err(|m| ctx.err(name.span().start, format!("{pkey}.name"), m))?;
        if let Some(first) = port_names.get(name.get_ref()) {
            return Err(ctx.err(
                name.span().start,
                format!("{pkey}.name"),
                format!("duplicate port name `{}` (also {first})", name.get_ref()),
            ));
        }
        let n = *number.get_ref();
        if !(1..=i64::from(MAX_PORT_NUMBER)).contains(&n) {
            return Err(ctx.err(
                number.span().start,
                format!("{pkey}.number"),
                format!("{n} is out of range 1..=65279"),
            ));
        }
        let n = n as u32;
        if let Some(other) = ports.iter().find(|x| x.number == n) {
            return Err(ctx.err(
                number.span().start,
                format!("{pkey}.number"),
                format!("duplicate port number {n} (also port `{}`)", other.name),
            ));
        }
        let device = parse_devargs(devargs.get_ref())
            .map_err(|m| ctx.err(devargs.span().start, format!("{pkey}.devargs"), m))?;
        if let Some(first) = devices.get(device.name()) {
            return Err(ctx.err(
                devargs.span().start,
                format!("{pkey}.devargs"),
                format!("device `{}` is already used by {first}", device.name()),
            ));
        }
        let rx_queues = match rx_queues {
            None => 1,
            Some(q) if (1..=1024).contains(q.get_ref()) => *q.get_ref() as u16,
            Some(q) => {
                return Err(ctx.err(
                    q.span().start,
                    format!("{pkey}.rx_queues"),
                    format!("{} is out of range 1..=1024", q.get_ref()),
                ));
            }
        };
        devices.insert(device.name().to_string(), format!("{pkey} (`{}`)", name.get_ref()));
        port_names.insert(name.get_ref().clone(), pkey.clone());
        ports.push(PortConfig {
            name: name.get_ref().clone(),
            number: n,
            devargs: devargs.get_ref().clone(),
            device,
            rx_queues,
        });
    }
    Ok(ports)
}

/// Parses a `devargs` string: a PCI address (`0000:01:00.0` or `01:00.0`) or a virtual
/// device `net_DRIVER<N>`, either followed by `,key=value` arguments.
pub(crate) fn parse_devargs(devargs: &str) -> Result<PortDevice, String> {
    let (name, args) = devargs.split_once(',').unwrap_or((devargs, ""));
    if let Some(address) = pci_address(name) {
        return Ok(PortDevice::Pci { address });
    }
    let Some(rest) = name.strip_prefix("net_") else {
        return Err(format!(
            "`{devargs}` is neither a PCI address (0000:01:00.0) nor a virtual device (net_tap0,iface=..., net_pcap0,..., net_null0...)"
        ));
    };
    let driver_len = rest.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if driver_len == 0 || !rest[..driver_len].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{name}` is not a virtual device name (expected net_DRIVER followed by a number, e.g. net_tap0)"
        ));
    }
    for arg in args.split(',').filter(|a| !a.is_empty()) {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(format!("device argument `{arg}` of `{name}` is not KEY=VALUE"));
        };
        // Kernel interface names are at most 15 characters (IFNAMSIZ - 1). net_vhost's
        // `iface` is a unix socket path, not an interface name.
        let names_interface = !rest[..driver_len].starts_with("vhost");
        if key == "iface" && names_interface && (value.is_empty() || value.len() > 15) {
            return Err(format!("interface name `{value}` must be 1 to 15 characters long"));
        }
    }
    Ok(PortDevice::Vdev { name: name.to_string(), driver: format!("net_{}", &rest[..driver_len]) })
}

/// `DDDD:BB:DD.F` or `BB:DD.F` in hex, normalized to the long lowercase form.
fn pci_address(s: &str) -> Option<String> {
    let hex = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit());
    let parts: Vec<&str> = s.split(':').collect();
    let (domain, bus, devfn) = match parts.as_slice() {
        [d, b, df] if hex(d, 4) => (*d, *b, *df),
        [b, df] => ("0000", *b, *df),
        _ => return None,
    };
    let (dev, func) = devfn.split_once('.')?;
    if !(hex(bus, 2) && hex(dev, 2) && func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7')) {
        return None;
    }
    Some(format!("{domain}:{bus}:{dev}.{func}").to_ascii_lowercase())
}

/// A rule and where it came from (for the bridge-level checks).
struct Sourced {
    rule: Rule,
    file: PathBuf,
    position: Position,
    key: String,
}

fn resolve_rules(b: &RawBridge, bkey: &str, ports: &[PortConfig], ctx: &Ctx<'_>) -> Result<Vec<Rule>, ConfigError> {
    let mut rules: Vec<Sourced> = Vec::new();
    for (ri, r) in b.rule.iter().enumerate() {
        let key = format!("{bkey}.rule[{ri}]");
        let rule = rule_from_table(r, &key, ctx)?;
        rules.push(Sourced { rule, file: ctx.file.to_path_buf(), position: ctx.map.position(r.span().start), key });
    }
    for (fi, f) in b.flows.iter().enumerate() {
        let key = format!("{bkey}.flows[{fi}]");
        let locate = ctx.map.string_locator(f.span(), f.get_ref());
        let rule = parse_flow_located(f.get_ref(), &locate).map_err(|e| ctx.rule_err(key.clone(), e))?;
        rules.push(Sourced { rule, file: ctx.file.to_path_buf(), position: locate(0), key });
    }
    if let Some(ff) = &b.flows_file {
        let key = format!("{bkey}.flows_file");
        let path = ctx.base_dir.join(ff.get_ref());
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ctx.err(ff.span().start, key.clone(), format!("cannot read flows file `{}`: {e}", path.display()))
        })?;
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let locate = line_locator(line, i as u32 + 1);
            let rule = parse_flow_located(line, &locate).map_err(|e| ConfigError {
                file: path.clone(),
                position: Some(e.position),
                key: key.clone(),
                message: e.reason,
            })?;
            rules.push(Sourced { rule, file: path.clone(), position: locate(0), key: key.clone() });
        }
    }
    check_bridge_rules(&rules, b.name.get_ref(), ports)?;
    Ok(rules.into_iter().map(|s| s.rule).collect())
}

/// Checks that rules name ports of their bridge and that no two rules have the same
/// table, priority and match (OVS would silently keep only the later one).
fn check_bridge_rules(rules: &[Sourced], bridge: &str, ports: &[PortConfig]) -> Result<(), ConfigError> {
    let has_port = |n: u32| ports.iter().any(|p| p.number == n);
    let mut seen: HashMap<(u8, u16, &Match), usize> = HashMap::new();
    for (i, s) in rules.iter().enumerate() {
        let err = |message: String| ConfigError {
            file: s.file.clone(),
            position: Some(s.position),
            key: s.key.clone(),
            message,
        };
        if let Some(p) = s.rule.matches.in_port.filter(|&p| !has_port(p)) {
            return Err(err(format!("in_port={p}: bridge `{bridge}` has no port {p}")));
        }
        for a in &s.rule.actions {
            let port = match a {
                Action::Output(p) => Some(*p),
                Action::Resubmit(r) => r.in_port,
                _ => None,
            };
            if let Some(p) = port.filter(|&p| !has_port(p)) {
                return Err(err(format!("`{a}`: bridge `{bridge}` has no port {p}")));
            }
        }
        if let Some(&j) = seen.get(&(s.rule.table, s.rule.priority, &s.rule.matches)) {
            let first = &rules[j];
            return Err(err(format!(
                "this rule has the same table, priority and match as the rule at {}:{}:{} ({})",
                first.file.display(),
                first.position.line,
                first.position.column,
                first.key
            )));
        }
        seen.insert((s.rule.table, s.rule.priority, &s.rule.matches), i);
    }
    Ok(())
}

/// A `[[bridge.rule]]` table: each key is a rule field as in `ovs-ofctl` (`in_port = 1`,
/// `nw_dst = "10.0.0.0/8"`, `tp_dst = "0x1000/0xf000"`), `proto = "tcp"` stands for a
/// shorthand, and `actions` is a string or an array of strings.
fn rule_from_table(r: &Spanned<RawRule>, key: &str, ctx: &Ctx<'_>) -> Result<Rule, ConfigError> {
    let mut builder = RuleBuilder::new(Mode::Flow);
    let mut actions: Option<Vec<ParsedAction>> = None;
    for (k, v) in &r.get_ref().fields {
        let name = k.get_ref().as_str();
        let fkey = format!("{key}.{name}");
        let key_pos = ctx.map.position(k.span().start);
        let value_start = v.span().start;
        let rerr = |e: RuleError| ctx.rule_err(fkey.clone(), e);
        match (name, v.get_ref()) {
            ("actions", RuleValue::Str(s)) => {
                let locate = ctx.map.string_locator(v.span(), s);
                actions = Some(parse_action_text(s, &locate).map_err(rerr)?);
            }
            ("actions", RuleValue::List(items)) => {
                let mut list = Vec::new();
                for item in items {
                    let locate = ctx.map.string_locator(item.span(), item.get_ref());
                    list.extend(parse_action_text(item.get_ref(), &locate).map_err(rerr)?);
                }
                actions = Some(list);
            }
            ("actions", RuleValue::Int(_)) => {
                return Err(ctx.err(value_start, fkey, "must be a string or an array of strings"));
            }
            ("proto", RuleValue::Str(s)) if !SHORTHANDS.iter().any(|(n, _, _)| n == s) => {
                let names: Vec<&str> = SHORTHANDS.iter().map(|(n, _, _)| *n).collect();
                return Err(ctx.err(value_start, fkey, format!("`{s}` is not one of {}", names.join(", "))));
            }
            ("proto", RuleValue::Str(s)) => {
                builder
                    .apply(s, ctx.map.position(value_start), None, &|_| ctx.map.position(value_start))
                    .map_err(rerr)?;
            }
            ("proto", _) => {
                return Err(ctx.err(value_start, fkey, "must be a string such as \"tcp\", \"udp6\" or \"arp\""));
            }
            (_, RuleValue::Int(i)) => {
                let text = i.to_string();
                builder.apply(name, key_pos, Some(&text), &|_| ctx.map.position(value_start)).map_err(rerr)?;
            }
            (_, RuleValue::Str(s)) => {
                let locate = ctx.map.string_locator(v.span(), s);
                builder.apply(name, key_pos, Some(s), &locate).map_err(rerr)?;
            }
            (_, RuleValue::List(_)) => {
                return Err(ctx.err(value_start, fkey, "takes a single value, not an array"));
            }
        }
    }
    finish_rule(builder, actions, ctx.map.position(r.span().start)).map_err(|e| ctx.rule_err(key, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Masked, SetField};
    use std::net::Ipv4Addr;

    const PORTS: &str = r#"
[[bridge]]
name = "br0"

[[bridge.port]]
name = "p1"
number = 1
devargs = "net_null0"

[[bridge.port]]
name = "p2"
number = 2
devargs = "net_null1"
"#;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_str(text, std::env::temp_dir())
    }

    /// The error of `text` as (line, column, key, message).
    fn err(text: &str) -> (u32, u32, String, String) {
        let e = load(text).expect_err(text);
        let p = e.position.expect("a position");
        (p.line, p.column, e.key, e.message)
    }

    fn deploy(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name)
    }

    #[test]
    fn example_configs_load() {
        let c = Config::load(deploy("ferrovs.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.eal.hugepages);
        assert!(c.eal.no_pci);
        assert_eq!(c.pmd.cores, vec![1]);
        assert_eq!(c.pmd.idle_backoff_us, 50);
        let br = c.bridge("br0").unwrap();
        assert_eq!(br.ports.len(), 2);
        assert_eq!(br.ports[0].device, PortDevice::Vdev { name: "net_tap0".into(), driver: "net_tap".into() });
        assert_eq!(br.rules.len(), 2);
        assert_eq!(br.rules[0].matches.in_port, Some(1));
        assert_eq!(br.rules[0].actions, vec![Action::Output(2)]);
        assert_eq!(br.rules[1].actions, vec![Action::Output(1)]);
        c.validate(&SystemFacts { online_cpus: vec![0, 1] }).unwrap();
        assert_eq!(
            c.eal_args(),
            [
                "-l",
                "0",
                "-m",
                "512",
                "--no-huge",
                "--no-shconf",
                "--log-level=warning",
                "--no-pci",
                "--vdev=net_tap0,iface=fvs-tap0",
                "--vdev=net_tap1,iface=fvs-tap1",
            ]
        );

        let c = Config::load(deploy("ferrovs-nic.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.eal.hugepages);
        assert!(!c.eal.no_pci);
        let br = &c.bridges[0];
        assert_eq!(br.ports[0].device, PortDevice::Pci { address: "0000:01:00.0".into() });
        assert_eq!(br.ports[1].rx_queues, 2);
        assert_eq!(br.rules.len(), 3);
        assert_eq!(br.rules[0].matches.tp_dst, Some(Masked { value: 443, mask: 0xffff }));
        assert_eq!(br.rules[0].matches.nw_dst.unwrap().mask, Ipv4Addr::new(255, 254, 0, 0));
        let args = c.eal_args();
        assert!(args.contains(&"--in-memory".to_string()));
        assert!(args.windows(2).any(|w| w == ["-a", "0000:01:00.1"]));
        assert!(!args.contains(&"--no-pci".to_string()));
        assert!(c.validate(&SystemFacts { online_cpus: vec![0, 1] }).is_err());
    }

    #[test]
    fn defaults() {
        let c = load(PORTS).unwrap();
        assert_eq!(c.eal.memory_mb, 512);
        assert!(!c.eal.hugepages);
        assert_eq!(c.eal.main_lcore, 0);
        assert_eq!(c.eal.log_level, "warning");
        assert!(c.eal.no_pci);
        assert_eq!(c.control.socket, PathBuf::from("/run/ferrovs/ferrovsd.sock"));
        assert_eq!(c.pmd.cores, vec![1]);
        assert_eq!(c.pmd.idle_backoff_us, 0);
        assert_eq!(c.pmd.burst, 32);
        assert_eq!(c.flow.limit_per_pmd, 200_000);
        assert_eq!(c.flow.idle_expiry, Duration::from_secs(10));
        assert_eq!(c.flow.upcall_queue_len, 4096);
        assert_eq!(c.bridges[0].ports[1].rx_queues, 1);
        assert!(c.bridges[0].rules.is_empty());
    }

    #[test]
    fn unknown_keys_and_wrong_types() {
        assert_eq!(
            err("[eal]\nbogus = 1\n"),
            (2, 1, "eal.bogus".into(), "unknown field `bogus`, expected one of `memory_mb`, `hugepages`, `main_lcore`, `log_level`, `extra_args`, `no_pci`".into())
        );
        assert_eq!(err("[pmd]\ncores = 1\n").0..=err("[pmd]\ncores = 1\n").1, 2..=9);
        let e = err(&format!("{PORTS}\n[[bridge.port]]\nname = \"p3\"\nnumber = \"x\"\ndevargs = \"net_null2\"\n"));
        assert_eq!((e.0, e.1, e.2.as_str()), (17, 10, "bridge[0].port[2].number"));
        assert!(e.3.contains("invalid type"), "{}", e.3);
        let e = err("[[bridge]]\nname = \"br0\"\nfoo = 1\n");
        assert_eq!((e.0, e.2.as_str()), (3, "bridge[0].foo"));
        assert_eq!(err("[control]\nsocket = 5\n").2, "control.socket");
        assert_eq!(err("[tunnel]\n").2, "tunnel");
        let e = err("x = [");
        assert_eq!((e.0, e.1), (1, 6));
        assert_eq!(err("[eal]\nhugepages = \"yes\"\n").0, 2);
    }

    #[test]
    fn error_display_names_file_line_column_and_key() {
        let e = load("[eal]\nbogus = 1\n").unwrap_err();
        assert!(e.to_string().starts_with("<config>:2:1: eal.bogus: unknown field `bogus`"), "{e}");
        let e = Config::load("/nonexistent/ferrovs.toml").unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/ferrovs.toml: cannot read the config file"), "{e}");
    }

    #[test]
    fn ports() {
        let dup_number = PORTS.replace("number = 2", "number = 1");
        assert_eq!(
            err(&dup_number),
            (12, 10, "bridge[0].port[1].number".into(), "duplicate port number 1 (also port `p1`)".into())
        );
        let dup_name = PORTS.replace("name = \"p2\"", "name = \"p1\"");
        assert_eq!(
            err(&dup_name),
            (11, 8, "bridge[0].port[1].name".into(), "duplicate port name `p1` (also bridge[0].port[0])".into())
        );
        let dup_dev = PORTS.replace("net_null1", "net_null0,no-rx=1");
        assert_eq!(err(&dup_dev).3, "device `net_null0` is already used by bridge[0].port[0] (`p1`)");
        assert_eq!(err(&PORTS.replace("number = 2", "number = 0")).3, "0 is out of range 1..=65279");
        assert_eq!(err(&PORTS.replace("number = 2", "number = 65280")).3, "65280 is out of range 1..=65279");
        assert_eq!(err(&PORTS.replace("number = 2", "number = -1")).3, "-1 is out of range 1..=65279");
        let bad = PORTS.replace("\"net_null1\"", "\"eth0\"");
        assert_eq!(err(&bad).2, "bridge[0].port[1].devargs");
        assert_eq!(
            err(&PORTS.replace("net_null1", "net_tap1,iface=a-very-long-name0")).3,
            "interface name `a-very-long-name0` must be 1 to 15 characters long"
        );
        assert_eq!(err(&PORTS.replace("net_null1", "net_1")).2, "bridge[0].port[1].devargs");
        assert_eq!(err(&PORTS.replace("net_null1", "net_tap1,iface")).2, "bridge[0].port[1].devargs");
        let queues = PORTS.replace("number = 2", "number = 2\nrx_queues = 0");
        assert_eq!(err(&queues), (13, 13, "bridge[0].port[1].rx_queues".into(), "0 is out of range 1..=1024".into()));
        assert_eq!(
            err(&PORTS.replace("\"p2\"", "\"p 2\"")).3,
            "`p 2` contains ` ` (use letters, digits, `_`, `-`, `.`)"
        );
        let no_ports = "[[bridge]]\nname = \"br0\"\n";
        assert_eq!(
            err(no_ports),
            (2, 8, "bridge[0].port".into(), "bridge `br0` has no ports ([[bridge.port]])".into())
        );
        assert_eq!(err("[eal]\n").3, "no [[bridge]]: the switch needs at least one bridge with ports");
    }

    #[test]
    fn devargs_forms() {
        assert_eq!(parse_devargs("01:00.1"), Ok(PortDevice::Pci { address: "0000:01:00.1".into() }));
        assert_eq!(
            parse_devargs("0000:AF:00.0,txq_inline=128"),
            Ok(PortDevice::Pci { address: "0000:af:00.0".into() })
        );
        assert!(parse_devargs("0000:01:00.8").is_err());
        for (devargs, driver) in [
            ("net_tap0,iface=x", "net_tap"),
            ("net_pcap0,rx_pcap=/tmp/a.pcap,infinite_rx=1", "net_pcap"),
            ("net_null0", "net_null"),
            ("net_af_packet0,iface=veth0", "net_af_packet"),
            ("net_vhost0,iface=/tmp/sock0", "net_vhost"),
            ("net_vhost1,iface=/run/ferrovs/vhost-user-client-0.sock", "net_vhost"),
            ("net_ring", "net_ring"),
        ] {
            match parse_devargs(devargs) {
                Ok(PortDevice::Vdev { driver: d, .. }) => assert_eq!(d, driver, "{devargs}"),
                other => panic!("{devargs}: {other:?}"),
            }
        }
    }

    #[test]
    fn bridges() {
        let two =
            format!("{PORTS}\n{}", PORTS.replace("net_null", "net_ring").replace("\"p", "\"q").replace("br0", "br1"));
        let c = load(&two).unwrap();
        assert_eq!(c.bridges.len(), 2);
        let e = err(&two.replace("\"q1\"", "\"p1\""));
        assert_eq!(
            (e.2.as_str(), e.3.as_str()),
            ("bridge[1].port[0].name", "duplicate port name `p1` (also bridge[0].port[0])")
        );
        let e = err(&format!("{PORTS}\n{}", PORTS.replace("\"p", "\"q").replace("br0", "br1")));
        assert_eq!((e.0, e.2.as_str()), (22, "bridge[1].port[0].devargs"));
        let e = err(&two.replace("\"br1\"", "\"br0\""));
        assert_eq!((e.0, e.1, e.2.as_str(), e.3.as_str()), (17, 8, "bridge[1].name", "duplicate bridge name `br0`"));
    }

    #[test]
    fn pmd_and_eal() {
        let c = load(&format!("[pmd]\ncores = [1, 3]\nidle_backoff_us = 50\nburst = 32\n[eal]\nmain_lcore = 2\nno_pci = false\nhugepages = true\nlog_level = \"pmd.net.tap:critical\"\nextra_args = [\"--x\"]\n{PORTS}")).unwrap();
        assert_eq!(c.pmd.cores, vec![1, 3]);
        assert_eq!(c.eal.main_lcore, 2);
        assert!(!c.eal.no_pci);
        assert_eq!(c.eal_args().last().unwrap(), "--x");
        assert_eq!(c.eal_args()[..6], ["-l", "2", "-m", "512", "--in-memory", "--log-level=pmd.net.tap:critical"]);
        // Validation against the machine.
        let e = c.validate(&SystemFacts { online_cpus: vec![0, 1, 2] }).unwrap_err();
        assert_eq!((e.position, e.key.as_str()), (Some(Position { line: 2, column: 13 }), "pmd.cores[1]"));
        assert_eq!(e.message, "CPU 3 is not online here (online CPUs: [0, 1, 2])");
        let e = c.validate(&SystemFacts { online_cpus: vec![1, 3] }).unwrap_err();
        assert_eq!((e.position, e.key.as_str()), (Some(Position { line: 6, column: 14 }), "eal.main_lcore"));
        c.validate(&SystemFacts { online_cpus: vec![0, 1, 2, 3] }).unwrap();
        let e = load(PORTS).unwrap().validate(&SystemFacts { online_cpus: vec![0] }).unwrap_err();
        assert_eq!((e.position, e.key.as_str()), (None, "pmd.cores"));

        assert_eq!(
            err(&format!("[pmd]\ncores = []\n{PORTS}")),
            (2, 9, "pmd.cores".into(), "needs at least one CPU".into())
        );
        assert_eq!(
            err(&format!("[pmd]\ncores = [1, 2, 1]\n{PORTS}")),
            (2, 16, "pmd.cores[2]".into(), "CPU 1 is listed twice (also pmd.cores[0])".into())
        );
        assert_eq!(err(&format!("[pmd]\ncores = [0]\n{PORTS}")).2, "pmd.cores[0]");
        assert_eq!(err(&format!("[eal]\nmain_lcore = 1\n{PORTS}")).2, "eal.main_lcore");
        assert_eq!(
            err(&format!("[pmd]\nburst = 64\n{PORTS}")),
            (2, 9, "pmd.burst".into(), "the burst size is fixed at 32".into())
        );
        assert_eq!(err(&format!("[pmd]\nidle_backoff_us = 2000000\n{PORTS}")).2, "pmd.idle_backoff_us");
        assert_eq!(err(&format!("[eal]\nlog_level = \"loud\"\n{PORTS}")).2, "eal.log_level");
        assert_eq!(err(&format!("[eal]\nmemory_mb = 0\n{PORTS}")).2, "eal.memory_mb");
        assert_eq!(err(&format!("[flow]\nlimit_per_pmd = 0\n{PORTS}")).2, "flow.limit_per_pmd");
        assert_eq!(err(&format!("[flow]\nidle_expiry_ms = 0\n{PORTS}")).2, "flow.idle_expiry_ms");
        assert_eq!(err(&format!("[flow]\nupcall_queue_len = 0\n{PORTS}")).2, "flow.upcall_queue_len");
        assert_eq!(err(&format!("[control]\nsocket = \"\"\n{PORTS}")).2, "control.socket");
        let c = load(&format!("[flow]\nidle_expiry_ms = 1500\n[control]\nsocket = \"/tmp/x.sock\"\n{PORTS}")).unwrap();
        assert_eq!(c.flow.idle_expiry, Duration::from_millis(1500));
        assert_eq!(c.control.socket, PathBuf::from("/tmp/x.sock"));
    }

    /// PORTS with `extra` added to the bridge table (before its ports).
    fn with_bridge(extra: &str) -> String {
        PORTS.replacen("name = \"br0\"\n", &format!("name = \"br0\"\n{extra}\n"), 1)
    }

    #[test]
    fn flows_strings() {
        let c =
            load(&with_bridge(r#"flows = ["priority=5,in_port=1,actions=output:2", 'tcp,tp_dst=80,actions=drop']"#))
                .unwrap();
        let rules = &c.bridges[0].rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].priority, 5);
        assert_eq!(rules[1].matches.tp_dst, Some(Masked { value: 80, mask: 0xffff }));
        // The column points inside the string, in the TOML file.
        let e = err(&with_bridge("flows = [\n  \"in_port=1,actions=output:2\",\n  \"tp_dst=80,actions=drop\",\n]"));
        assert_eq!(
            e,
            (
                6,
                4,
                "bridge[0].flows[1]".into(),
                "`tp_dst` requires a match on tcp, udp or sctp (or tcp6, udp6, sctp6)".into()
            )
        );
        let e = err(&with_bridge(r#"flows = ["in_port=1,actions=output:x"]"#));
        assert_eq!((e.0, e.1), (4, 36));
        // With an escape inside the string, the position falls back to the opening quote.
        let e = err(&with_bridge(r#"flows = ["in_port=1,\u0061ctions=output:x"]"#));
        assert_eq!((e.0, e.1), (4, 10));
    }

    #[test]
    fn flows_file() {
        let dir = std::env::temp_dir().join(format!("ferrovs-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("br0.flows"),
            "# rules\n\npriority=10,in_port=1,actions=output:2\nin_port=2,actions=output:1\n",
        )
        .unwrap();
        std::fs::write(dir.join("bad.flows"), "in_port=1,actions=output:2\n\n  ip,nw_dst=10.0.0.0/40,actions=drop\n")
            .unwrap();
        let text = with_bridge(r#"flows_file = "br0.flows""#);
        std::fs::write(dir.join("ferrovs.toml"), &text).unwrap();
        let c = Config::load(dir.join("ferrovs.toml")).unwrap();
        assert_eq!(c.bridges[0].rules.len(), 2);
        assert_eq!(c.bridges[0].rules[1].actions, vec![Action::Output(1)]);
        let e = Config::from_str(&with_bridge(r#"flows_file = "bad.flows""#), &dir).unwrap_err();
        assert_eq!(e.file, dir.join("bad.flows"));
        assert_eq!(e.position, Some(Position { line: 3, column: 22 }));
        assert_eq!(e.key, "bridge[0].flows_file");
        assert_eq!(
            e.to_string(),
            format!(
                "{}:3:22: bridge[0].flows_file: invalid `nw_dst`: `40` is not a prefix length (0..=32) or a dotted mask",
                dir.join("bad.flows").display()
            )
        );
        let e = Config::from_str(&with_bridge(r#"flows_file = "missing.flows""#), &dir).unwrap_err();
        assert_eq!((e.position, e.key.as_str()), (Some(Position { line: 4, column: 14 }), "bridge[0].flows_file"));
        assert!(e.message.starts_with("cannot read flows file"), "{}", e.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rule_tables() {
        let text = format!(
            "{PORTS}{}",
            r#"
[[bridge.rule]]
table = 1
priority = 200
cookie = 0x10
idle_timeout = 30
in_port = 1
proto = "tcp"
nw_dst = "10.0.0.0/8"
tp_dst = "0x1000/0xf000"
tcp_flags = "+syn-ack"
dl_vlan = 5
actions = ["mod_vlan_vid:20", "set_field:10.0.0.1->ip_dst", "output:2"]

[[bridge.rule]]
arp = 0
actions = "drop"
"#
        );
        let e = err(&text);
        assert_eq!((e.0, e.1, e.2.as_str()), (29, 1, "bridge[0].rule[1].arp"));
        assert_eq!(e.3, "`arp` is a shorthand and takes no value");
        let c = load(&text.replace("arp = 0", "proto = \"arp\"")).unwrap();
        let r = &c.bridges[0].rules[0];
        assert_eq!((r.table, r.priority, r.cookie, r.idle_timeout), (1, 200, 0x10, 30));
        assert_eq!(r.matches.tp_dst, Some(Masked { value: 0x1000, mask: 0xf000 }));
        assert_eq!(r.matches.tcp_flags, Some(Masked { value: 2, mask: 0x12 }));
        assert_eq!(r.matches.vlan_tci, Some(Masked { value: 0x1005, mask: 0x1fff }));
        assert_eq!(
            r.actions,
            vec![Action::ModVlanVid(20), Action::Set(SetField::NwDst(Ipv4Addr::new(10, 0, 0, 1))), Action::Output(2)]
        );
        assert_eq!(c.bridges[0].rules[1].matches.dl_type, Some(0x0806));
        assert!(c.bridges[0].rules[1].actions.is_empty());

        let rule = |body: &str| err(&format!("{PORTS}\n[[bridge.rule]]\n{body}\n"));
        // Line 15 is the `[[bridge.rule]]` header, line 16 its first key.
        assert_eq!(
            rule("tp_dst = 80\nactions = \"drop\""),
            (
                16,
                1,
                "bridge[0].rule[0]".into(),
                "`tp_dst` requires a match on tcp, udp or sctp (or tcp6, udp6, sctp6)".into()
            )
        );
        assert_eq!(
            rule("in_port = 1"),
            (15, 1, "bridge[0].rule[0]".into(), "missing `actions=` (use `actions=drop` to drop)".into())
        );
        assert_eq!(rule("bogus = 1\nactions = \"drop\"").3, "unknown or unsupported field `bogus`");
        assert_eq!(rule("proto = \"tcpp\"\nactions = \"drop\"").2, "bridge[0].rule[0].proto");
        assert_eq!(rule("proto = 6\nactions = \"drop\"").2, "bridge[0].rule[0].proto");
        assert_eq!(
            rule("proto = \"tcp\"\ntp_dst = 65536\nactions = \"drop\""),
            (
                17,
                10,
                "bridge[0].rule[0].tp_dst".into(),
                "invalid `tp_dst`: 65536 is out of range (maximum 65535)".into()
            )
        );
        assert_eq!(rule("proto = \"ip\"\nnw_dst = \"10.0.0.0/33\"\nactions = \"drop\"").1, 20);
        assert_eq!(
            rule("actions = [\"output:2\", \"output:x\"]"),
            (
                16,
                32,
                "bridge[0].rule[0].actions".into(),
                "invalid `output`: port `x` is not supported here (expected a port number 1..=65279)".into()
            )
        );
        assert_eq!(rule("actions = [\"output:2\", \"drop\"]").1, 25);
        assert_eq!(rule("actions = 5").2, "bridge[0].rule[0].actions");
        assert_eq!(
            rule("in_port = [1]\nactions = \"drop\""),
            (16, 12, "bridge[0].rule[0].in_port[0]".into(), "invalid type: integer `1`, expected a string".into())
        );
        assert_eq!(rule("in_port = [\"1\"]\nactions = \"drop\"").2, "bridge[0].rule[0].in_port");
        assert_eq!(rule("in_port = { a = 1 }\nactions = \"drop\"").2, "bridge[0].rule[0].in_port");
        assert_eq!(rule("in_port = true\nactions = \"drop\"").0, 16);
        assert_eq!(rule("in_port = -1\nactions = \"drop\"").1, 11);
    }

    #[test]
    fn rules_must_name_ports_of_their_bridge_and_not_repeat() {
        let e = err(&with_bridge(r#"flows = ["in_port=3,actions=output:2"]"#));
        assert_eq!(e, (4, 11, "bridge[0].flows[0]".into(), "in_port=3: bridge `br0` has no port 3".into()));
        assert_eq!(
            err(&with_bridge(r#"flows = ["actions=output:1,output:9"]"#)).3,
            "`output:9`: bridge `br0` has no port 9"
        );
        assert_eq!(
            err(&with_bridge(r#"flows = ["actions=resubmit(7,1)"]"#)).3,
            "`resubmit(7,1)`: bridge `br0` has no port 7"
        );
        load(&with_bridge(r#"flows = ["actions=resubmit(,1)"]"#)).unwrap();
        let e = err(&with_bridge(r#"flows = ["ip,in_port=1,actions=output:2", "in_port=1,ip,actions=drop"]"#));
        assert_eq!((e.0, e.1, e.2.as_str()), (4, 44, "bridge[0].flows[1]"));
        assert_eq!(
            e.3,
            "this rule has the same table, priority and match as the rule at <config>:4:11 (bridge[0].flows[0])"
        );
        // Same match at another priority or table is fine.
        load(&with_bridge(
            r#"flows = ["ip,actions=output:2", "priority=1,ip,actions=drop", "table=1,ip,actions=drop"]"#,
        ))
        .unwrap();
    }
}

#[cfg(test)]
mod robustness_tests {
    use super::*;

    /// Every prefix of the example configs is either a config or an error: no panics.
    #[test]
    fn truncated_configs_never_panic() {
        for name in ["ferrovs.toml", "ferrovs-nic.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name);
            let text = std::fs::read_to_string(path).unwrap();
            for (i, _) in text.char_indices() {
                let _ = Config::from_str(&text[..i], std::env::temp_dir());
            }
        }
    }
}
