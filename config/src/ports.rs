//! Switch ports: the OpenFlow port number range, device arguments, and the checks that
//! make a set of ports valid (names, numbers and devices unique, values in range).
//!
//! # Design
//!
//! These checks have one home, here, and every layer that accepts ports uses them: the
//! config loader (which adds the file position and key of the offending value) and the
//! PMD switch's own validation (which may be given ports by a program, not a config
//! file). They take plain values and return plain messages; callers wrap the messages in
//! their own error types.
//!
//! OpenFlow port numbers are each bridge's own (two bridges may each have a port 1); the
//! datapath numbers its ports switch-wide by itself (daemon's `datapath_numbers`). A
//! bridge's internal port has the reserved number [`LOCAL_PORT`].

use std::collections::HashMap;

/// Highest OpenFlow port number a port can have: OpenFlow 1.0 reserves 0xff00 and above
/// (`OFPP_MAX` = 0xff00 and the named ports `IN_PORT`, `FLOOD`, `LOCAL`...), so the
/// highest usable number is 0xfeff (65279).
pub const MAX_PORT_NUMBER: u32 = 0xfeff;

/// The OpenFlow number of a bridge's internal port (`OFPP_LOCAL`), in OpenFlow 1.3's
/// 32-bit form as the codec keeps every port number (OpenFlow 1.0's 0xfffe maps to it).
/// Rules name it `LOCAL`; printed as `LOCAL`.
pub const LOCAL_PORT: u32 = 0xffff_fffe;

/// `port` in the 16 bits of a match's `in_port` slot (the flow key's width, and OVS's
/// `ofp_port_t`): [`LOCAL_PORT`] is OpenFlow 1.0's 0xfffe there, every other bridge port
/// number fits as it is.
pub fn port_to_16(port: u32) -> u32 {
    if port == LOCAL_PORT { 0xfffe } else { port }
}

/// The inverse of [`port_to_16`].
pub fn port_from_16(port: u32) -> u32 {
    if port == 0xfffe { LOCAL_PORT } else { port }
}

/// Whether `port`, in the 16-bit form of [`port_to_16`], is OpenFlow 1.0's `OFPP_NONE`
/// (0xffff) or `OFPP_CONTROLLER` (0xfffd): an in_port a `load` or `move` may write, which
/// OVS's `normal` takes for a controller's own traffic (no port's).
pub fn is_no_port(port: u32) -> bool {
    matches!(port, 0xffff | 0xfffd)
}

/// The DPDK device name of a bridge's internal port is this followed by the bridge name
/// (`net_tap_local_br0`): a net_tap device, unlike any `net_tapN` an operator writes.
pub const INTERNAL_DEVICE_PREFIX: &str = "net_tap_local_";

/// Most receive queues a port may have (DPDK's default `RTE_MAX_QUEUES_PER_PORT`).
pub const MAX_RX_QUEUES: u16 = 1024;

/// Longest bridge, port or kernel interface name (the kernel's `IFNAMSIZ` - 1).
pub const MAX_NAME_LEN: usize = 15;

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

/// Bridge and port names: 1..=15 characters of letters, digits, `_`, `-` and `.`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("`{name}` must be 1 to {MAX_NAME_LEN} characters long"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(format!("`{name}` contains `{c}` (use letters, digits, `_`, `-`, `.`)"));
    }
    Ok(())
}

/// A bridge name that its internal port (a kernel interface of that name) can have:
/// [`check_name`], and not `.` or `..` (which the kernel refuses).
pub fn check_interface_name(name: &str) -> Result<(), String> {
    check_name(name)?;
    if name == "." || name == ".." {
        return Err(format!("`{name}` cannot be a network interface name"));
    }
    Ok(())
}

/// A port number: `1..=MAX_PORT_NUMBER`.
pub fn check_port_number(number: i64) -> Result<u32, String> {
    match u32::try_from(number) {
        Ok(n @ 1..=MAX_PORT_NUMBER) => Ok(n),
        _ => Err(format!("{number} is out of range 1..={MAX_PORT_NUMBER}")),
    }
}

/// The MTU a port has unless told otherwise (Ethernet's, as in OVS).
pub const DEFAULT_MTU: u16 = 1500;
/// The smallest MTU (IPv4's minimum datagram, RFC 791).
pub const MIN_MTU: u16 = 68;
/// The largest MTU (a 9 KiB jumbo frame's payload, the usual NIC limit).
pub const MAX_MTU: u16 = 9216;

/// A port's MTU: `MIN_MTU..=MAX_MTU`. Frames longer than MTU + 18 bytes (Ethernet header
/// and one VLAN tag) are not sent.
pub fn check_mtu(mtu: i64) -> Result<u16, String> {
    match u16::try_from(mtu) {
        Ok(m @ MIN_MTU..=MAX_MTU) => Ok(m),
        _ => Err(format!("{mtu} is out of range {MIN_MTU}..={MAX_MTU}")),
    }
}

/// A port's receive queue count: `1..=MAX_RX_QUEUES`.
pub fn check_rx_queues(queues: i64) -> Result<u16, String> {
    match u16::try_from(queues) {
        Ok(q @ 1..=MAX_RX_QUEUES) => Ok(q),
        _ => Err(format!("{queues} is out of range 1..={MAX_RX_QUEUES}")),
    }
}

/// A port's `admin` setting: `"up"` or `"down"`; whether it is down.
pub fn parse_admin(value: &str) -> Result<bool, String> {
    match value.trim() {
        "up" => Ok(false),
        "down" => Ok(true),
        other => Err(format!("`{other}`: admin is `up` or `down`")),
    }
}

/// The queue → CPU pins of a port (`rxq_affinity = "0:1,1:3"`, OVS's
/// `other_config:pmd-rxq-affinity`): each listed rx queue is polled by the PMD on that
/// CPU, whatever the load, and that PMD polls no unpinned queue (OVS's default
/// `pmd-rxq-isolate=true`). Sorted by queue; empty when none is pinned.
pub type RxqAffinity = Vec<(u16, usize)>;

/// Parses `QUEUE:CPU,...` (spaces allowed, empty for none). Each queue at most once.
pub fn parse_rxq_affinity(text: &str) -> Result<RxqAffinity, String> {
    let mut pins: RxqAffinity = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (q, c) = item.split_once(':').ok_or_else(|| format!("`{item}` is not QUEUE:CPU"))?;
        let queue = q.trim().parse::<u16>().map_err(|_| format!("`{q}` in `{item}` is not a queue number"))?;
        let cpu = c.trim().parse::<usize>().map_err(|_| format!("`{c}` in `{item}` is not a CPU number"))?;
        if pins.iter().any(|&(x, _)| x == queue) {
            return Err(format!("queue {queue} is pinned twice"));
        }
        pins.push((queue, cpu));
    }
    pins.sort_unstable();
    Ok(pins)
}

/// The `QUEUE:CPU,...` text of `pins` ([`parse_rxq_affinity`] reads it back).
pub fn format_rxq_affinity(pins: &[(u16, usize)]) -> String {
    pins.iter().map(|(q, c)| format!("{q}:{c}")).collect::<Vec<_>>().join(",")
}

/// Pins that a port with `rx_queues` queues and a switch with these PMD cores can have:
/// every queue exists and every CPU runs a PMD.
pub fn check_rxq_affinity(pins: &[(u16, usize)], rx_queues: u16, pmd_cores: &[usize]) -> Result<(), String> {
    for &(queue, cpu) in pins {
        if queue >= rx_queues {
            return Err(format!("queue {queue} does not exist (the port has {rx_queues} rx queue(s))"));
        }
        if !pmd_cores.contains(&cpu) {
            return Err(format!("CPU {cpu} runs no PMD thread (PMD cores: {pmd_cores:?})"));
        }
    }
    Ok(())
}

/// Parses a `devargs` string: a PCI address (`0000:01:00.0` or `01:00.0`) or a virtual
/// device `net_DRIVER<N>`, either followed by `,key=value` arguments.
pub fn parse_devargs(devargs: &str) -> Result<PortDevice, String> {
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
        // net_vhost's `iface` is a unix socket path, not an interface name.
        let names_interface = !rest[..driver_len].starts_with("vhost");
        if key == "iface" && names_interface && (value.is_empty() || value.len() > MAX_NAME_LEN) {
            return Err(format!("interface name `{value}` must be 1 to {MAX_NAME_LEN} characters long"));
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

/// The names, numbers and devices taken by the ports of one switch so far, each with
/// who took it (`H`: whatever the caller uses to name a port in messages).
///
/// Each `claim_*` records the value for `holder`, or returns the earlier holder when the
/// value is taken. Callers check in the order they want errors reported.
#[derive(Debug, Clone)]
pub struct PortRegistry<H> {
    names: HashMap<String, H>,
    numbers: HashMap<u32, H>,
    devices: HashMap<String, H>,
}

impl<H> Default for PortRegistry<H> {
    fn default() -> Self {
        PortRegistry { names: HashMap::new(), numbers: HashMap::new(), devices: HashMap::new() }
    }
}

fn claim<K: std::hash::Hash + Eq, H>(map: &mut HashMap<K, H>, key: K, holder: H) -> Result<(), &H> {
    use std::collections::hash_map::Entry;
    match map.entry(key) {
        Entry::Occupied(first) => Err(first.into_mut()),
        Entry::Vacant(slot) => {
            slot.insert(holder);
            Ok(())
        }
    }
}

impl<H> PortRegistry<H> {
    pub fn new() -> Self {
        Self::default()
    }
    /// Port names are unique across the switch.
    pub fn claim_name(&mut self, name: &str, holder: H) -> Result<(), &H> {
        claim(&mut self.names, name.to_string(), holder)
    }
    /// Port numbers are unique across the switch (see the module documentation).
    pub fn claim_number(&mut self, number: u32, holder: H) -> Result<(), &H> {
        claim(&mut self.numbers, number, holder)
    }
    /// Devices ([`PortDevice::name`], or any other name of an existing device) are unique
    /// across the switch.
    pub fn claim_device(&mut self, device: &str, holder: H) -> Result<(), &H> {
        claim(&mut self.devices, device.to_string(), holder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("net_pcap0,rx_pcap=capture.pcap,infinite_rx=1", "net_pcap"),
            ("net_null0", "net_null"),
            ("net_af_packet0,iface=veth0", "net_af_packet"),
            ("net_vhost0,iface=vhost/sock0", "net_vhost"),
            ("net_vhost1,iface=vhost/a-socket-path-longer-than-fifteen.sock", "net_vhost"),
            ("net_ring", "net_ring"),
        ] {
            match parse_devargs(devargs) {
                Ok(PortDevice::Vdev { driver: d, .. }) => assert_eq!(d, driver, "{devargs}"),
                other => panic!("{devargs}: {other:?}"),
            }
        }
        assert!(parse_devargs("net_tap0,iface=a-very-long-name0").is_err());
        assert!(parse_devargs("eth0").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(check_port_number(1), Ok(1));
        assert_eq!(check_port_number(0xfeff), Ok(0xfeff));
        assert_eq!(check_port_number(0xff00), Err("65280 is out of range 1..=65279".into()));
        assert_eq!(check_port_number(-1), Err("-1 is out of range 1..=65279".into()));
        assert_eq!(check_port_number(1 << 33), Err("8589934592 is out of range 1..=65279".into()));
        assert_eq!(check_rx_queues(1024), Ok(1024));
        assert_eq!(check_rx_queues(0), Err("0 is out of range 1..=1024".into()));
        assert!(check_name("br-0.x_y").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("sixteen-chars-xx").is_err());
    }

    #[test]
    fn rxq_affinity_text() {
        assert_eq!(parse_rxq_affinity("1:3, 0:1"), Ok(vec![(0, 1), (1, 3)]));
        assert_eq!(parse_rxq_affinity(""), Ok(vec![]));
        assert_eq!(format_rxq_affinity(&[(0, 1), (1, 3)]), "0:1,1:3");
        assert_eq!(parse_rxq_affinity("0:1,0:2"), Err("queue 0 is pinned twice".into()));
        assert!(parse_rxq_affinity("0").is_err());
        assert!(parse_rxq_affinity("x:1").is_err());
        assert!(parse_rxq_affinity("0:-1").is_err());
        assert_eq!(check_rxq_affinity(&[(0, 1), (1, 0)], 2, &[0, 1]), Ok(()));
        assert_eq!(
            check_rxq_affinity(&[(0, 5)], 2, &[0, 1]),
            Err("CPU 5 runs no PMD thread (PMD cores: [0, 1])".into())
        );
        assert!(check_rxq_affinity(&[(2, 1)], 2, &[1]).unwrap_err().contains("queue 2 does not exist"));
    }

    #[test]
    fn registry_reports_the_first_holder() {
        let mut r = PortRegistry::new();
        assert_eq!(r.claim_name("a", 0), Ok(()));
        assert_eq!(r.claim_number(1, 0), Ok(()));
        assert_eq!(r.claim_device("net_null0", 0), Ok(()));
        assert_eq!(r.claim_name("b", 1), Ok(()));
        assert_eq!(r.claim_name("a", 2), Err(&0));
        assert_eq!(r.claim_number(1, 2), Err(&0));
        assert_eq!(r.claim_number(2, 1), Ok(()));
        assert_eq!(r.claim_device("net_null0", 2), Err(&0));
    }
}
