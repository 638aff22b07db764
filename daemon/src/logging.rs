//! ferrovsd's log: format chosen for where it goes, levels per subsystem, changeable while
//! the switch runs.
//!
//! # Design
//!
//! - **Format.** Plain text to a terminal with colours, plain text without escape codes
//!   anywhere else (the journal, a file), or one JSON object per line on request
//!   (`--log-format json`), for log shippers.
//! - **Subsystems** are the modules that log, named as `ovs-appctl vlog/list` names OVS's
//!   modules: the short names of [`SUBSYSTEMS`] map to tracing targets (Rust module
//!   paths). A level applies to a subsystem and everything below it.
//! - **Levels at run time.** The filter sits behind a reload handle; [`LogControl::set`]
//!   parses `vlog/set`-style specs (`LEVEL`, `SUBSYSTEM:LEVEL`, or `ANY:LEVEL`) and swaps
//!   the filter. The starting levels come from `RUST_LOG` (an EnvFilter directive string),
//!   else `info` everywhere.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

/// Short subsystem names and the tracing targets they stand for.
pub const SUBSYSTEMS: &[(&str, &str)] = &[
    ("daemon", "ferrovs_daemon::daemon"),
    ("control", "ferrovs_daemon::control"),
    ("datapath", "ferrovs_daemon::datapath"),
    ("slow_path", "ferrovs_daemon::slow_path_thread"),
    ("service", "ferrovs_daemon::sd_notify"),
    ("pmd", "ferrovs_pmd"),
    ("flowcache", "ferrovs_flowcache"),
    ("dpdk", "ferrovs_dpdk"),
];

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Output format of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// The levels in force, by subsystem (`None`: the default applies).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Levels {
    default: String,
    per_subsystem: BTreeMap<&'static str, String>,
    /// Extra directives from RUST_LOG that name no known subsystem; kept as given.
    extra: Vec<String>,
}

impl Levels {
    fn directives(&self) -> String {
        let mut d = vec![self.default.clone()];
        for (name, level) in &self.per_subsystem {
            let target = SUBSYSTEMS.iter().find(|(n, _)| n == name).map(|(_, t)| *t).unwrap_or(name);
            d.push(format!("{target}={level}"));
        }
        d.extend(self.extra.iter().cloned());
        d.join(",")
    }

    /// Applies one `vlog/set` spec.
    fn apply(&mut self, spec: &str) -> Result<(), String> {
        let (who, level) = match spec.split_once(':') {
            Some((w, l)) => (Some(w), l),
            None => (None, spec),
        };
        let level = level.to_ascii_lowercase();
        let level = match level.as_str() {
            "emer" | "err" => "error".to_string(),
            "warning" | "warn" => "warn".to_string(),
            "dbg" => "debug".to_string(),
            l if LEVELS.contains(&l) => l.to_string(),
            _ => return Err(format!("unknown log level `{level}` (one of {})", LEVELS.join(", "))),
        };
        match who {
            None | Some("ANY") | Some("any") => {
                self.default = level;
                self.per_subsystem.clear();
            }
            Some(name) => {
                let Some((n, _)) = SUBSYSTEMS.iter().find(|(n, _)| *n == name) else {
                    let known: Vec<&str> = SUBSYSTEMS.iter().map(|(n, _)| *n).collect();
                    return Err(format!("unknown subsystem `{name}` (one of {})", known.join(", ")));
                };
                self.per_subsystem.insert(n, level);
            }
        }
        Ok(())
    }

    fn list(&self) -> String {
        let mut out = format!("{:<12} {}\n", "subsystem", "level");
        for (name, _) in SUBSYSTEMS {
            let level = self.per_subsystem.get(name).unwrap_or(&self.default);
            out += &format!("{name:<12} {level}\n");
        }
        out
    }
}

/// Changes the log levels of the running daemon.
pub struct LogControl {
    levels: Mutex<Levels>,
    handle: Option<reload::Handle<EnvFilter, tracing_subscriber::Registry>>,
}

impl LogControl {
    /// Applies `vlog/set` specs (all or none) and returns the levels now in force.
    pub fn set(&self, specs: &[String]) -> Result<String, String> {
        let mut levels = self.levels.lock().map_err(|_| "log levels poisoned".to_string())?;
        let mut next = levels.clone();
        for s in specs {
            next.apply(s)?;
        }
        let filter = EnvFilter::try_new(next.directives()).map_err(|e| e.to_string())?;
        if let Some(h) = &self.handle {
            h.reload(filter).map_err(|e| e.to_string())?;
        }
        *levels = next;
        Ok(levels.list())
    }

    /// The level of every subsystem (`vlog/list`).
    pub fn list(&self) -> String {
        self.levels.lock().map(|l| l.list()).unwrap_or_default()
    }
}

fn starting_levels(rust_log: Option<&str>) -> Levels {
    let mut levels = Levels { default: "info".into(), per_subsystem: BTreeMap::new(), extra: Vec::new() };
    for d in rust_log.unwrap_or("").split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match d.split_once('=') {
            None if LEVELS.contains(&d.to_ascii_lowercase().as_str()) => levels.default = d.to_ascii_lowercase(),
            Some((target, level)) => match SUBSYSTEMS.iter().find(|(n, t)| *t == target || *n == target) {
                Some((n, _)) if LEVELS.contains(&level) => {
                    levels.per_subsystem.insert(n, level.to_string());
                }
                _ => levels.extra.push(d.to_string()),
            },
            None => levels.extra.push(d.to_string()),
        }
    }
    levels
}

/// Installs the global logger on stderr. Returns the handle that changes levels.
pub fn init(format: LogFormat) -> LogControl {
    let levels = starting_levels(std::env::var("RUST_LOG").ok().as_deref());
    let filter = EnvFilter::try_new(levels.directives()).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::stderr().is_terminal();
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
            .try_init()
            .is_ok(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().with_ansi(false).with_writer(std::io::stderr))
            .try_init()
            .is_ok(),
    };
    LogControl { levels: Mutex::new(levels), handle: installed.then_some(handle) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(rust_log: Option<&str>) -> LogControl {
        LogControl { levels: Mutex::new(starting_levels(rust_log)), handle: None }
    }

    #[test]
    fn starting_levels_come_from_rust_log() {
        let l = starting_levels(Some("warn,ferrovs_pmd=debug,hyper=trace"));
        assert_eq!(l.default, "warn");
        assert_eq!(l.per_subsystem.get("pmd").map(String::as_str), Some("debug"));
        assert_eq!(l.extra, vec!["hyper=trace".to_string()]);
        assert_eq!(l.directives(), "warn,ferrovs_pmd=debug,hyper=trace");
        assert_eq!(starting_levels(None).directives(), "info");
    }

    #[test]
    fn vlog_set_changes_one_subsystem_or_all_and_refuses_nonsense() {
        let c = control(None);
        let listed = c.set(&["pmd:dbg".into()]).unwrap();
        assert!(listed.contains("pmd          debug\n"), "{listed}");
        assert!(listed.contains("control      info\n"), "{listed}");
        assert!(c.set(&["nosuch:info".into()]).unwrap_err().contains("unknown subsystem"));
        assert!(c.set(&["pmd:loud".into()]).unwrap_err().contains("unknown log level"));
        // A refused spec changes nothing, even after a good one in the same call.
        assert!(c.set(&["control:warn".into(), "pmd:loud".into()]).is_err());
        assert!(c.list().contains("control      info\n"));
        let all = c.set(&["ANY:warn".into()]).unwrap();
        assert!(all.lines().skip(1).all(|l| l.ends_with(" warn")), "{all}");
    }
}
