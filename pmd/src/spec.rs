//! What the daemon asks for: ports ([`PortSpec`]) and switch options ([`SwitchOptions`]),
//! and the checks made on them before any device is touched ([`validate`]).
//!
//! Port names, numbers, devices and queue counts are checked by `ferrovs-config`'s port
//! checks (the one home of those rules, shared with the config loader), so a program that
//! builds [`PortSpec`]s by hand gets the same limits as a config file.

use std::collections::HashSet;
use std::time::Duration;

use ferrovs_config::{
    DEFAULT_MTU, PortRegistry, check_mtu, check_port_number, check_rx_queues, check_rxq_affinity, parse_devargs,
};
use ferrovs_dpdk::PortId;

use crate::error::SwitchError;

pub use ferrovs_config::MAX_PORT_NUMBER;

/// Where a port's device comes from: DPDK devargs to probe, or a port that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSource {
    /// DPDK devargs, e.g. `net_null0,no-rx=1`, `net_pcap0,rx_pcap=capture.pcap`, `0000:01:00.0`.
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
    /// OpenFlow port number (1..=[`MAX_PORT_NUMBER`]), what rules and `DpAction::Output`
    /// refer to.
    pub number: u32,
    pub device: PortSource,
    /// Number of rx queues (each polled by one PMD thread).
    pub n_rxq: u16,
    /// Largest IP packet the port sends: frames longer than `mtu` + 18 bytes are dropped
    /// on output and counted (`drop_oversize`), as OVS does.
    pub mtu: u16,
    /// Set the link down once the port has started: a bridge's internal port, which (as
    /// OVS's LOCAL) stays down, and quiet, until the host sets its interface up.
    pub link_down: bool,
    /// Administratively down (OpenFlow's `OFPPC_PORT_DOWN`): the link is set down where
    /// the driver can, frames received are dropped (`drop_admin_down_rx`) and outputs to
    /// it are dropped (`drop_admin_down_tx`).
    pub admin_down: bool,
    /// Rx queues pinned to PMD cores, (queue, core) ([`ferrovs_config::RxqAffinity`]).
    pub rxq_affinity: Vec<(u16, usize)>,
}

impl PortSpec {
    /// A port probed from DPDK devargs, with one rx queue.
    pub fn new(name: impl Into<String>, number: u32, devargs: impl Into<String>) -> PortSpec {
        PortSpec {
            name: name.into(),
            number,
            device: PortSource::Devargs(devargs.into()),
            n_rxq: 1,
            mtu: DEFAULT_MTU,
            link_down: false,
            admin_down: false,
            rxq_affinity: Vec::new(),
        }
    }
    /// A port that already exists, with one rx queue.
    pub fn existing(name: impl Into<String>, number: u32, id: PortId) -> PortSpec {
        PortSpec {
            name: name.into(),
            number,
            device: PortSource::Existing(id),
            n_rxq: 1,
            mtu: DEFAULT_MTU,
            link_down: false,
            admin_down: false,
            rxq_affinity: Vec::new(),
        }
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
    /// Mbuf data room including headroom (DPDK default [`DEFAULT_DATA_ROOM`]; see [`data_room_for_mtu`]).
    /// Every port's MTU must fit it ([`max_mtu_for_data_room`]): a frame longer than one
    /// mbuf arrives in segments, and the PMD drops those.
    pub mbuf_data_room: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Off (None) by default: a PMD busy-polls.
    pub idle_backoff: Option<IdleBackoff>,
    /// Pin each PMD thread to its core (turn off only to run more PMDs than cores in tests).
    pub pin_threads: bool,
    /// Capacity of each PMD's message queue.
    pub message_queue: usize,
    /// Most ports the switch can have at once (slots in each PMD's per-port tables,
    /// allocated at start so that adding a port never allocates on a PMD).
    pub max_ports: usize,
}

/// DPDK's default mbuf data room (`RTE_MBUF_DEFAULT_BUF_SIZE`): 2,048 bytes of frame
/// behind the headroom.
pub const DEFAULT_DATA_ROOM: u16 = 2048 + MBUF_HEADROOM;
/// Bytes DPDK keeps in front of a received frame (`RTE_PKTMBUF_HEADROOM`, as the
/// installed DPDK was built with it).
pub const MBUF_HEADROOM: u16 = ferrovs_dpdk::PKTMBUF_HEADROOM;
/// Bytes a received frame may have beyond its port's MTU: the Ethernet header, two VLAN
/// tags, and a frame check sequence a device may leave on.
pub const RX_FRAME_OVERHEAD: u16 = 14 + 8 + 4;

/// The mbuf data room that receives a frame of a port with `mtu` in one segment: DPDK's
/// default for MTUs up to 2,022, more (in 64-byte steps) for a jumbo MTU.
pub fn data_room_for_mtu(mtu: u16) -> u16 {
    let need = u32::from(MBUF_HEADROOM) + u32::from(mtu) + u32::from(RX_FRAME_OVERHEAD);
    need.div_ceil(64).saturating_mul(64).clamp(u32::from(DEFAULT_DATA_ROOM), u32::from(u16::MAX)) as u16
}

/// The largest MTU whose frames one mbuf of `data_room` receives whole.
pub fn max_mtu_for_data_room(data_room: u16) -> u16 {
    data_room.saturating_sub(MBUF_HEADROOM + RX_FRAME_OVERHEAD)
}

/// Refuses an MTU the switch's mbufs cannot receive in one segment (the PMD would drop
/// every frame longer than one mbuf as malformed).
pub(crate) fn check_mtu_fits(name: &str, mtu: u16, data_room: u16) -> Result<(), SwitchError> {
    let max = max_mtu_for_data_room(data_room);
    if mtu > max {
        return Err(SwitchError::Invalid(format!(
            "port {name:?}: MTU {mtu} is above {max}, the largest this switch's mbufs ({data_room} bytes) receive \
             whole; their size follows the largest MTU in the config when the switch starts: put the MTU in the \
             config and restart"
        )));
    }
    Ok(())
}

/// Default [`SwitchOptions::max_ports`]: 256 slots cost each PMD about 100 KiB.
pub const DEFAULT_MAX_PORTS: usize = 256;

impl Default for SwitchOptions {
    fn default() -> Self {
        SwitchOptions {
            pmd_cores: vec![1],
            n_mbufs: 16 * 1024 - 1,
            mbuf_cache: 256,
            mbuf_data_room: DEFAULT_DATA_ROOM,
            rx_desc: 1024,
            tx_desc: 1024,
            idle_backoff: None,
            pin_threads: true,
            message_queue: 1024,
            max_ports: DEFAULT_MAX_PORTS,
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

/// One port, with config's checks: a name, a number in range, a device no other port
/// has (devargs are parsed, so `01:00.0` and `0000:01:00.0` are the same device), and a
/// queue count in range. Names are not held to config's character rules: ports built by
/// programs may be named freely.
fn check_port<'a>(p: &'a PortSpec, registry: &mut PortRegistry<&'a str>) -> Result<(), SwitchError> {
    let invalid = |m: String| SwitchError::Invalid(format!("port {:?}: {m}", p.name));
    if p.name.is_empty() {
        return Err(SwitchError::Invalid(format!("port number {} has an empty name", p.number)));
    }
    if let Err(first) = registry.claim_name(&p.name, &p.name) {
        return Err(SwitchError::Duplicate(format!("port name {first:?}")));
    }
    let number = check_port_number(i64::from(p.number)).map_err(|m| invalid(format!("number {m}")))?;
    if let Err(first) = registry.claim_number(number, &p.name) {
        return Err(SwitchError::Duplicate(format!("port number {number} (ports {first:?} and {:?})", p.name)));
    }
    let device = match &p.device {
        PortSource::Devargs(d) => parse_devargs(d).map_err(invalid)?.name().to_string(),
        // An existing port is named by its DPDK port id, which no devargs name looks like.
        PortSource::Existing(id) => format!("port id {}", id.0),
    };
    if let Err(first) = registry.claim_device(&device, &p.name) {
        return Err(SwitchError::Duplicate(format!("device {device} (ports {first:?} and {:?})", p.name)));
    }
    check_rx_queues(i64::from(p.n_rxq)).map_err(|m| invalid(format!("rx queues {m}")))?;
    check_mtu(i64::from(p.mtu)).map_err(|m| invalid(format!("MTU {m}")))?;
    Ok(())
}

/// Checks everything that can be checked without DPDK.
pub fn validate(ports: &[PortSpec], options: &SwitchOptions) -> Result<(), SwitchError> {
    if ports.len() > options.max_ports {
        return Err(SwitchError::Invalid(format!("{} ports (at most {})", ports.len(), options.max_ports)));
    }
    if options.max_ports == 0 || options.max_ports >= usize::from(crate::exec::NO_SLOT) {
        return Err(SwitchError::Invalid(format!("{} port slots (1..{})", options.max_ports, crate::exec::NO_SLOT)));
    }
    let mut registry = PortRegistry::new();
    for p in ports {
        check_port(p, &mut registry)?;
        check_mtu_fits(&p.name, p.mtu, options.mbuf_data_room)?;
        check_rxq_affinity(&p.rxq_affinity, p.n_rxq, &options.pmd_cores)
            .map_err(|m| SwitchError::Invalid(format!("port {:?}: rxq_affinity: {m}", p.name)))?;
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

    #[test]
    fn the_data_room_follows_the_mtu() {
        assert_eq!(data_room_for_mtu(1500), DEFAULT_DATA_ROOM);
        assert_eq!(max_mtu_for_data_room(DEFAULT_DATA_ROOM), 2022);
        assert_eq!(data_room_for_mtu(2022), DEFAULT_DATA_ROOM);
        assert_eq!(data_room_for_mtu(2023), DEFAULT_DATA_ROOM + 64);
        for mtu in [68, 1500, 2022, 2023, 4000, 9000, 9216] {
            let room = data_room_for_mtu(mtu);
            assert!(max_mtu_for_data_room(room) >= mtu, "{mtu}: {room}");
            assert!(
                room.is_multiple_of(64)
                    && room - 64 < u16::max(DEFAULT_DATA_ROOM, MBUF_HEADROOM + mtu + RX_FRAME_OVERHEAD)
            );
        }
        assert!(check_mtu_fits("p", 2022, DEFAULT_DATA_ROOM).is_ok());
        let e = check_mtu_fits("p", 9000, DEFAULT_DATA_ROOM).unwrap_err().to_string();
        assert!(e.contains("MTU 9000 is above 2022") && e.contains("restart"), "{e}");
        assert!(check_mtu_fits("p", 9000, data_room_for_mtu(9000)).is_ok());
    }

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
        // 0xff00 and above are OpenFlow's reserved ports; 0xfeff is the highest usable.
        let reserved = [PortSpec::new("a", 0xff00, "net_null0")];
        assert!(matches!(validate(&reserved, &opts()), Err(SwitchError::Invalid(_))));
        assert!(validate(&[PortSpec::new("a", 0xfeff, "net_null0")], &opts()).is_ok());
        // The same PCI device written two ways is one device.
        let pci = [PortSpec::new("a", 1, "01:00.0"), PortSpec::new("b", 2, "0000:01:00.0,txq_inline=1")];
        assert!(matches!(validate(&pci, &opts()), Err(SwitchError::Duplicate(_))));
        let not_a_device = [PortSpec::new("a", 1, "eth0")];
        assert!(matches!(validate(&not_a_device, &opts()), Err(SwitchError::Invalid(_))));
        let no_queues = [PortSpec { n_rxq: 0, ..PortSpec::new("a", 1, "net_null0") }];
        assert!(matches!(validate(&no_queues, &opts()), Err(SwitchError::Invalid(_))));
        // A switch may start without ports: they can be added at run time.
        assert!(validate(&[], &opts()).is_ok());
        let tiny_mtu = [PortSpec { mtu: 60, ..PortSpec::new("a", 1, "net_null0") }];
        assert!(matches!(validate(&tiny_mtu, &opts()), Err(SwitchError::Invalid(_))));
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
