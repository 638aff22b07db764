//! Pass 2 of loading: the raw TOML structs ([`crate::schema`]) into a checked
//! [`Config`], section by section, with defaults filled in.
//!
//! Each section has its own function; what spans sections is passed explicitly (the main
//! lcore to the PMD core checks, the ports to the `no_pci` default). Bridges, their ports
//! and their rules are resolved in [`crate::bridges`]. Every error carries the position
//! of the offending value ([`Ctx::err`]).

use crate::bridges::resolve_bridges;
use crate::config::{
    BURST_SIZE, Config, ControlConfig, DEFAULT_CONTROL_SOCKET, EalConfig, FlowConfig, MetricsConfig, Origin, PmdConfig,
};
use crate::error::ConfigError;
use crate::hugepages::resolve_hugepages;
use crate::ports::PortDevice;
use crate::rule_error::RuleError;
use crate::schema::{RawConfig, RawControl, RawEal, RawFlow, RawMetrics, RawPmd};
use crate::source_map::SourceMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// What resolving needs to report errors and find `flows_file`s.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    pub map: &'a SourceMap<'a>,
    pub base_dir: &'a Path,
}

impl Ctx<'_> {
    /// An error at byte `offset` of the config file.
    pub(crate) fn err(&self, offset: usize, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            position: Some(self.map.position(offset)),
            key: key.into(),
            message: message.into(),
        }
    }
    /// A rule error whose position is already in the config file.
    pub(crate) fn rule_err(&self, key: impl Into<String>, e: RuleError) -> ConfigError {
        ConfigError { file: self.file.to_path_buf(), position: Some(e.position), key: key.into(), message: e.reason }
    }
}

pub(crate) fn resolve(raw: RawConfig, ctx: &Ctx<'_>) -> Result<Config, ConfigError> {
    let mut origin = Origin { file: ctx.file.to_path_buf(), ..Origin::default() };
    let mut eal = resolve_eal(&raw.eal, ctx, &mut origin)?;
    let control = resolve_control(&raw.control, ctx)?;
    let main_lcore_at = raw.eal.main_lcore.as_ref().map_or(0, |m| m.span().start);
    let pmd = resolve_pmd(&raw.pmd, (eal.main_lcore, main_lcore_at), ctx, &mut origin)?;
    let flow = resolve_flow(&raw.flow, ctx)?;
    let metrics = resolve_metrics(&raw.metrics, ctx)?;
    let hugepages = raw.hugepages.as_ref().map(|h| resolve_hugepages(h, ctx)).transpose()?;
    let bridges = resolve_bridges(&raw.bridge, &pmd.cores, ctx)?;
    let any_pci = bridges.iter().flat_map(|b| &b.ports).any(|p| matches!(p.device, PortDevice::Pci { .. }));
    eal.no_pci = raw.eal.no_pci.unwrap_or(!any_pci);
    Ok(Config { eal, control, pmd, flow, metrics, hugepages, bridges, origin })
}

/// `[eal]`; `no_pci` is left for [`resolve`] (its default depends on the ports).
fn resolve_eal(raw: &RawEal, ctx: &Ctx<'_>, origin: &mut Origin) -> Result<EalConfig, ConfigError> {
    let main_lcore = match &raw.main_lcore {
        Some(m) => {
            origin.main_lcore = Some(ctx.map.position(m.span().start));
            *m.get_ref()
        }
        None => 0,
    };
    let memory_mb = match &raw.memory_mb {
        Some(m) if *m.get_ref() == 0 => {
            return Err(ctx.err(m.span().start, "eal.memory_mb", "must be at least 1"));
        }
        Some(m) => *m.get_ref(),
        None => 512,
    };
    let log_level = match &raw.log_level {
        Some(l) => {
            check_log_level(l.get_ref()).map_err(|m| ctx.err(l.span().start, "eal.log_level", m))?;
            l.get_ref().clone()
        }
        None => "warning".into(),
    };
    let file_prefix = match &raw.file_prefix {
        Some(p) => {
            check_file_prefix(p.get_ref()).map_err(|m| ctx.err(p.span().start, "eal.file_prefix", m))?;
            Some(p.get_ref().clone())
        }
        None => None,
    };
    let hugepages = raw.hugepages.unwrap_or(false);
    let huge_dir = match &raw.huge_dir {
        Some(d) => {
            let at = d.span().start;
            if !hugepages {
                return Err(ctx.err(
                    at,
                    "eal.huge_dir",
                    "needs hugepages = true (without hugepages there is no hugetlbfs)",
                ));
            }
            let path = PathBuf::from(d.get_ref());
            if !path.is_absolute() {
                return Err(ctx.err(at, "eal.huge_dir", format!("`{}` is not an absolute path", d.get_ref())));
            }
            Some(path)
        }
        None => None,
    };
    let capture = match &raw.capture {
        Some(c) if *c.get_ref() => {
            check_capture(hugepages, file_prefix.is_some(), &raw.extra_args)
                .map_err(|m| ctx.err(c.span().start, "eal.capture", m))?;
            true
        }
        _ => false,
    };
    Ok(EalConfig {
        memory_mb,
        hugepages,
        main_lcore,
        log_level,
        extra_args: raw.extra_args.clone(),
        no_pci: false,
        file_prefix,
        huge_dir,
        capture,
    })
}

/// `capture = true`: the capture tools are DPDK secondary processes, which map the
/// primary's memory through its hugepage files and find it by its file prefix.
fn check_capture(hugepages: bool, has_prefix: bool, extra_args: &[String]) -> Result<(), String> {
    if !hugepages {
        return Err("needs hugepages = true: the capture tools (dpdk-dumpcap, dpdk-pdump) map ferrovsd's memory \
                    through its hugepage files, and --no-huge memory is private to ferrovsd"
            .into());
    }
    if !has_prefix {
        return Err("needs eal.file_prefix: the capture tools find ferrovsd by it \
                    (dpdk-dumpcap --file-prefix=PREFIX)"
            .into());
    }
    let private = ["--in-memory", "--no-shconf", "--no-huge"];
    if let Some(a) = extra_args.iter().find(|a| private.contains(&a.split('=').next().unwrap_or(a))) {
        return Err(format!(
            "eal.extra_args has `{a}`, which keeps DPDK's memory private: the capture tools could not attach"
        ));
    }
    Ok(())
}

/// A `--file-prefix` names a directory under `/var/run/dpdk` and the files in it: a
/// plain file name, short enough that the telemetry socket's path fits a socket address.
fn check_file_prefix(prefix: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if prefix.is_empty() || prefix.len() > 64 || prefix.starts_with('.') || !prefix.chars().all(ok_char) {
        return Err(format!("`{prefix}` is not 1..=64 of [A-Za-z0-9_.-] (not starting with a dot)"));
    }
    Ok(())
}

/// `[metrics]`: `listen` is `ADDRESS:PORT` with a port that is not 0 (the scraper must
/// know where to find it).
fn resolve_metrics(raw: &RawMetrics, ctx: &Ctx<'_>) -> Result<MetricsConfig, ConfigError> {
    let Some(l) = &raw.listen else { return Ok(MetricsConfig::default()) };
    let at = l.span().start;
    let addr: std::net::SocketAddr = l.get_ref().parse().map_err(|_| {
        ctx.err(at, "metrics.listen", format!("`{}` is not ADDRESS:PORT (127.0.0.1:9477, [::1]:9477)", l.get_ref()))
    })?;
    if addr.port() == 0 {
        return Err(ctx.err(at, "metrics.listen", "port 0 would be a random port; give the port to scrape"));
    }
    Ok(MetricsConfig { listen: Some(addr) })
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

/// `[control]`.
fn resolve_control(raw: &RawControl, ctx: &Ctx<'_>) -> Result<ControlConfig, ConfigError> {
    let socket = match &raw.socket {
        Some(s) if s.get_ref().is_empty() => {
            return Err(ctx.err(s.span().start, "control.socket", "must not be empty"));
        }
        Some(s) => PathBuf::from(s.get_ref()),
        None => PathBuf::from(DEFAULT_CONTROL_SOCKET),
    };
    let socket_group = match &raw.socket_group {
        Some(g) if g.get_ref().is_empty() => {
            return Err(ctx.err(g.span().start, "control.socket_group", "must not be empty"));
        }
        Some(g) => Some(g.get_ref().clone()),
        None => None,
    };
    Ok(ControlConfig { socket, socket_group })
}

/// `[pmd]`. `main_lcore` is the main lcore and the offset of its value (0 if defaulted).
fn resolve_pmd(
    raw: &RawPmd,
    main_lcore: (usize, usize),
    ctx: &Ctx<'_>,
    origin: &mut Origin,
) -> Result<PmdConfig, ConfigError> {
    let share_main_lcore = raw.share_main_lcore.as_ref().is_some_and(|s| *s.get_ref());
    let cores = match &raw.cores {
        None => default_pmd_cores(main_lcore, ctx)?,
        Some(list) => pmd_cores(list, (!share_main_lcore).then_some(main_lcore.0), ctx, origin)?,
    };
    if let Some(b) = raw.burst.as_ref().filter(|b| *b.get_ref() as usize != BURST_SIZE) {
        return Err(ctx.err(b.span().start, "pmd.burst", format!("the burst size is fixed at {BURST_SIZE}")));
    }
    let idle_backoff_us = match &raw.idle_backoff_us {
        Some(b) if *b.get_ref() > 1_000_000 => {
            return Err(ctx.err(b.span().start, "pmd.idle_backoff_us", "must be at most 1000000 (one second)"));
        }
        Some(b) => *b.get_ref(),
        None => 0,
    };
    let auto_rebalance_interval_s = match &raw.auto_rebalance_interval_s {
        Some(i) if *i.get_ref() > 86_400 => {
            return Err(ctx.err(i.span().start, "pmd.auto_rebalance_interval_s", "must be at most 86400 (a day)"));
        }
        Some(i) => *i.get_ref(),
        None => 0,
    };
    let auto_rebalance_threshold = match &raw.auto_rebalance_threshold {
        Some(t) if !(1..=100).contains(t.get_ref()) => {
            return Err(ctx.err(t.span().start, "pmd.auto_rebalance_threshold", "must be a percentage, 1 to 100"));
        }
        Some(t) => *t.get_ref() as u8,
        None => 95,
    };
    Ok(PmdConfig {
        cores,
        idle_backoff_us,
        burst: BURST_SIZE,
        auto_rebalance_interval_s,
        auto_rebalance_threshold,
        share_main_lcore,
    })
}

/// No `pmd.cores`: CPU 1, unless that is the main lcore.
fn default_pmd_cores((main_lcore, main_lcore_at): (usize, usize), ctx: &Ctx<'_>) -> Result<Vec<usize>, ConfigError> {
    if main_lcore == 1 {
        return Err(ctx.err(
            main_lcore_at,
            "eal.main_lcore",
            "the main lcore is CPU 1, which is also the default PMD core: set pmd.cores",
        ));
    }
    Ok(vec![1])
}

/// `pmd.cores = [...]`: not empty, no CPU twice, not `main_lcore` (unless that is `None`:
/// `share_main_lcore`).
fn pmd_cores(
    list: &Spanned<Vec<Spanned<usize>>>,
    main_lcore: Option<usize>,
    ctx: &Ctx<'_>,
    origin: &mut Origin,
) -> Result<Vec<usize>, ConfigError> {
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
        if Some(*c.get_ref()) == main_lcore {
            return Err(ctx.err(
                c.span().start,
                key,
                format!(
                    "CPU {} is the main lcore (eal.main_lcore); a PMD needs a CPU of its own (or set pmd.share_main_lcore)",
                    c.get_ref()
                ),
            ));
        }
        cores.push(*c.get_ref());
        origin.pmd_cores.push(ctx.map.position(c.span().start));
    }
    Ok(cores)
}

/// `[flow]`.
fn resolve_flow(raw: &RawFlow, ctx: &Ctx<'_>) -> Result<FlowConfig, ConfigError> {
    let positive_u32 = |v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
        Some(x) if *x.get_ref() == 0 => Err(ctx.err(x.span().start, key, "must be at least 1")),
        Some(x) => Ok(*x.get_ref()),
        None => Ok(default),
    };
    let limit_per_pmd = positive_u32(&raw.limit_per_pmd, "flow.limit_per_pmd", 200_000)?;
    let upcall_queue_len = positive_u32(&raw.upcall_queue_len, "flow.upcall_queue_len", 4096)?;
    let idle_expiry = match &raw.idle_expiry_ms {
        Some(x) if *x.get_ref() == 0 => {
            return Err(ctx.err(x.span().start, "flow.idle_expiry_ms", "must be at least 1"));
        }
        Some(x) => Duration::from_millis(*x.get_ref()),
        None => Duration::from_secs(10),
    };
    Ok(FlowConfig { limit_per_pmd, idle_expiry, upcall_queue_len })
}
