//! What the daemon asks for: ports ([`PortSpec`]) and switch options ([`SwitchOptions`]),
//! and the checks made on them before any device is touched ([`validate`]).

use std::collections::HashSet;
use std::time::Duration;

use ferrovs_dpdk::PortId;

use crate::error::SwitchError;

/// Highest port number accepted: OpenFlow 1.0 port numbers end at 0xff00 (OFPP_MAX);
/// the numbers above are reserved names (in_port, flood, local ...).
pub const MAX_PORT_NUMBER: u32 = 0xff00;

/// Where a port's device comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortDevice {
    /// DPDK devargs, e.g. `net_null0,no-rx=1`, `net_pcap0,rx_pcap=/x.pcap`, `0000:01:00.0`.
    Devargs(String),
    /// A port that already exists (e.g. one side of `ring_port_pair`); the switch does not
    /// probe it but configures, starts and closes it like the others.
    Existing(PortId),
}

/// One port of the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Name used in logs and stats.
    pub name: String,
    /// OpenFlow port number (1..=0xff00), what rules and `DpAction::Output` refer to.
    pub number: u32,
    pub device: PortDevice,
    /// Number of rx queues (each polled by one PMD thread).
    pub n_rxq: u16,
}

impl PortSpec {
    /// A port probed from DPDK devargs, with one rx queue.
    pub fn new(name: impl Into<String>, number: u32, devargs: impl Into<String>) -> PortSpec {
        PortSpec { name: name.into(), number, device: PortDevice::Devargs(devargs.into()), n_rxq: 1 }
    }
    /// A port that already exists, with one rx queue.
    pub fn existing(name: impl Into<String>, number: u32, id: PortId) -> PortSpec {
        PortSpec { name: name.into(), number, device: PortDevice::Existing(id), n_rxq: 1 }
    }
}

/// Idle back-off: after `after_empty_polls` consecutive empty polls a PMD sleeps `start`,
/// doubling each further empty poll up to `max`; any packet resets it. Saves a core in CI
/// at the price of latency (up to `max`) on the first packet after a quiet period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleBackoff {
    pub after_empty_polls: u32,
    pub start: Duration,
    pub max: Duration,
}

impl Default for IdleBackoff {
    fn default() -> Self {
        IdleBackoff { after_empty_polls: 1024, start: Duration::from_micros(1), max: Duration::from_micros(100) }
    }
}

/// Switch-wide options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchOptions {
    /// One PMD thread per entry, pinned to that CPU.
    pub pmd_cores: Vec<usize>,
    /// Mbufs in the switch's pool.
    pub n_mbufs: u32,
    /// Per-lcore mempool cache size.
    pub mbuf_cache: u32,
    /// Mbuf data room including headroom (DPDK default 2176).
    pub mbuf_data_room: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Off (None) by default: a PMD busy-polls.
    pub idle_backoff: Option<IdleBackoff>,
    /// Pin each PMD thread to its core (turn off only to run more PMDs than cores in tests).
    pub pin_threads: bool,
    /// Capacity of each PMD's message queue.
    pub message_queue: usize,
}

impl Default for SwitchOptions {
    fn default() -> Self {
        SwitchOptions {
            pmd_cores: vec![1],
            n_mbufs: 16 * 1024 - 1,
            mbuf_cache: 256,
            mbuf_data_room: 2176,
            rx_desc: 1024,
            tx_desc: 1024,
            idle_backoff: None,
            pin_threads: true,
            message_queue: 1024,
        }
    }
}

/// CPUs the system has online (read from sysfs, not from this thread's affinity, which
/// `rte_eal_init -l` narrows).
pub fn online_cpus() -> Vec<usize> {
    if let Ok(s) = std::fs::read_to_string("/sys/devices/system/cpu/online") {
        let mut cpus = Vec::new();
        for part in s.trim().split(',') {
            let part = part.trim();
            if let Some((a, b)) = part.split_once('-') {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            } else if let Ok(a) = part.parse::<usize>() {
                cpus.push(a);
            }
        }
        if !cpus.is_empty() {
            return cpus;
        }
    }
    (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect()
}

/// The device name part of devargs (before the first comma).
pub fn device_name(devargs: &str) -> &str {
    devargs.split(',').next().unwrap_or("").trim()
}

/// Checks everything that can be checked without DPDK.
pub fn validate(ports: &[PortSpec], options: &SwitchOptions) -> Result<(), SwitchError> {
    if ports.is_empty() {
        return Err(SwitchError::Invalid("a switch needs at least one port".into()));
    }
    let mut names = HashSet::new();
    let mut numbers = HashSet::new();
    let mut devices = HashSet::new();
    for p in ports {
        if p.name.is_empty() {
            return Err(SwitchError::Invalid(format!("port number {} has an empty name", p.number)));
        }
        if !names.insert(p.name.as_str()) {
            return Err(SwitchError::Duplicate(format!("port name {:?}", p.name)));
        }
        if p.number == 0 || p.number > MAX_PORT_NUMBER {
            return Err(SwitchError::Invalid(format!(
                "port {:?}: number {} is outside 1..={MAX_PORT_NUMBER}",
                p.name, p.number
            )));
        }
        if !numbers.insert(p.number) {
            return Err(SwitchError::Duplicate(format!("port number {} (port {:?})", p.number, p.name)));
        }
        let dev = match &p.device {
            PortDevice::Devargs(d) => {
                if device_name(d).is_empty() {
                    return Err(SwitchError::Invalid(format!("port {:?}: empty devargs", p.name)));
                }
                format!("dev:{}", device_name(d))
            }
            PortDevice::Existing(id) => format!("id:{}", id.0),
        };
        if !devices.insert(dev) {
            return Err(SwitchError::Duplicate(format!("device of port {:?} ({:?})", p.name, p.device)));
        }
        if p.n_rxq == 0 || p.n_rxq > 64 {
            return Err(SwitchError::Invalid(format!("port {:?}: {} rx queues (1..=64)", p.name, p.n_rxq)));
        }
    }
    if options.pmd_cores.is_empty() {
        return Err(SwitchError::Invalid("no PMD cores given".into()));
    }
    if options.pmd_cores.len() > 64 {
        return Err(SwitchError::Invalid(format!("{} PMD threads (at most 64)", options.pmd_cores.len())));
    }
    let online = online_cpus();
    let mut seen = HashSet::new();
    for &c in &options.pmd_cores {
        if options.pin_threads && !online.contains(&c) {
            return Err(SwitchError::NoSuchCore { core: c, online });
        }
        if options.pin_threads && !seen.insert(c) {
            return Err(SwitchError::Duplicate(format!("PMD core {c}")));
        }
    }
    if options.n_mbufs < 64 {
        return Err(SwitchError::Invalid(format!("{} mbufs is too few", options.n_mbufs)));
    }
    if options.message_queue == 0 {
        return Err(SwitchError::Invalid("message queue capacity 0".into()));
    }
    if let Some(b) = options.idle_backoff
        && (b.start.is_zero() || b.max < b.start)
    {
        return Err(SwitchError::Invalid(format!("idle back-off {b:?}: need 0 < start <= max")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SwitchOptions {
        SwitchOptions { pmd_cores: vec![0], ..Default::default() }
    }

    #[test]
    fn rejects_duplicates_and_bad_numbers() {
        let a = PortSpec::new("a", 1, "net_null0");
        let ok = [a.clone(), PortSpec::new("b", 2, "net_null1")];
        assert!(validate(&ok, &opts()).is_ok());
        let dup_name = [a.clone(), PortSpec::new("a", 2, "net_null1")];
        assert!(matches!(validate(&dup_name, &opts()), Err(SwitchError::Duplicate(_))));
        let dup_num = [a.clone(), PortSpec::new("b", 1, "net_null1")];
        assert!(matches!(validate(&dup_num, &opts()), Err(SwitchError::Duplicate(_))));
        let dup_dev = [a.clone(), PortSpec::new("b", 2, "net_null0,no-rx=1")];
        assert!(matches!(validate(&dup_dev, &opts()), Err(SwitchError::Duplicate(_))));
        let zero = [PortSpec::new("a", 0, "net_null0")];
        assert!(matches!(validate(&zero, &opts()), Err(SwitchError::Invalid(_))));
        let big = [PortSpec::new("a", 0xff01, "net_null0")];
        assert!(matches!(validate(&big, &opts()), Err(SwitchError::Invalid(_))));
        assert!(validate(&[], &opts()).is_err());
    }

    #[test]
    fn rejects_missing_core() {
        let p = [PortSpec::new("a", 1, "net_null0")];
        let o = SwitchOptions { pmd_cores: vec![100_000], ..Default::default() };
        match validate(&p, &o) {
            Err(SwitchError::NoSuchCore { core: 100_000, .. }) => {}
            other => panic!("{other:?}"),
        }
        let none = SwitchOptions { pmd_cores: vec![], ..Default::default() };
        assert!(validate(&p, &none).is_err());
    }

    #[test]
    fn online_cpus_parses_sysfs() {
        let cpus = online_cpus();
        assert!(!cpus.is_empty());
        assert!(cpus.contains(&0));
    }
}
