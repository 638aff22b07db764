//! Ethernet ports: probing devices, configuring and starting them, and the per-queue
//! handles used for burst I/O.
//!
//! A [`PortId`] names an ethdev that exists (probed, or created by
//! [`ring_port_pair`]). [`Port::configure`] turns it into a configured, reference-counted
//! [`Port`] bound to a mempool. Each rx/tx queue can be taken once as an [`RxQueue`] /
//! [`TxQueue`] (tracked with an atomic bit mask), which is `Send` but not `Sync` and not
//! `Clone`: exactly one thread polls a queue, as DPDK requires, with no lock. The queue
//! handles keep the port alive; the device is stopped and closed when the last handle of
//! it is gone.
//!
//! Stopping a port while a thread still polls it is safe: DPDK 22.11 swaps in dummy burst
//! functions on stop, which return 0.

use std::ffi::{CStr, CString, c_char};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::eal::Eal;
use crate::error::{DpdkError, rte_errno, strerror};
use crate::mbuf::{BURST, MbufBatch};
use crate::mempool::Mempool;
use crate::sys;

/// DPDK ethdev port id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// `RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP` (rte_ethdev.h: function-like
/// macros bindgen cannot evaluate): IPv4/IPv6 (fragments, other, extension headers),
/// TCP and UDP over both.
const RSS_IP_TCP_UDP: u64 = 1 << 2
    | 1 << 3
    | 1 << 4
    | 1 << 5
    | 1 << 7
    | 1 << 8
    | 1 << 9
    | 1 << 10
    | 1 << 11
    | 1 << 13
    | 1 << 15
    | 1 << 16
    | 1 << 17;
/// `RTE_ETH_RX_OFFLOAD_RSS_HASH`: the driver stores the RSS hash in the mbuf.
const RX_OFFLOAD_RSS_HASH: u64 = 1 << 19;

/// Name of an existing port.
fn port_name(id: u16) -> Option<String> {
    let mut buf = [0 as c_char; 64];
    // SAFETY: buf has room for RTE_ETH_NAME_MAX_LEN (64) bytes including the NUL.
    let ret = unsafe { sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    if ret != 0 {
        return None;
    }
    // SAFETY: DPDK wrote a NUL-terminated string into buf.
    Some(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// The port named `name` (the device name, e.g. `net_ring0` or a PCI address).
pub fn port_by_name(_eal: &Eal, name: &str) -> Result<PortId, DpdkError> {
    let c = CString::new(name).map_err(|_| DpdkError::PortNotFound(name.to_string()))?;
    let mut id: u16 = 0;
    // SAFETY: valid C string and out pointer.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    if ret != 0 { Err(DpdkError::PortNotFound(name.to_string())) } else { Ok(PortId(id)) }
}

/// Creates the device described by `devargs` (e.g. `net_null0,no-rx=1`,
/// `net_pcap0,rx_pcap=capture.pcap`, or a PCI address `0000:01:00.0`) and returns its port.
///
/// Virtual devices (`net_*` / `eth_*` names) go through `rte_vdev_init`; anything else
/// through `rte_dev_probe`. The error names the devargs DPDK rejected. A device whose name
/// already exists is rejected too (it would be a second owner of the same port).
pub fn probe(eal: &Eal, devargs: &str) -> Result<PortId, DpdkError> {
    let (name, args) = match devargs.split_once(',') {
        Some((n, a)) => (n.trim(), a.trim()),
        None => (devargs.trim(), ""),
    };
    let rejected =
        |code: i32, message: String| DpdkError::DeviceRejected { devargs: devargs.to_string(), code, message };
    if name.is_empty() {
        return Err(rejected(libc_einval(), "empty device name".into()));
    }
    if port_by_name(eal, name).is_ok() {
        return Err(rejected(17, format!("a port named {name:?} already exists")));
    }
    let cname = CString::new(name).map_err(|_| rejected(libc_einval(), "NUL in device name".into()))?;
    let cargs = CString::new(args).map_err(|_| rejected(libc_einval(), "NUL in device args".into()))?;
    let is_vdev = name.starts_with("net_") || name.starts_with("eth_");
    let ret = if is_vdev {
        // SAFETY: two valid C strings; DPDK copies what it keeps.
        unsafe { sys::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) }
    } else {
        let full = CString::new(devargs).map_err(|_| rejected(libc_einval(), "NUL in devargs".into()))?;
        // SAFETY: valid C string.
        unsafe { sys::rte_dev_probe(full.as_ptr()) }
    };
    if ret != 0 {
        let code = if ret == -1 { rte_errno() } else { -ret };
        let mut message = strerror(code);
        if is_vdev {
            message.push_str(" (unknown driver, bad argument, or the driver failed: see DPDK's log)");
        }
        return Err(rejected(code, message));
    }
    port_by_name(eal, name)
        .map_err(|_| rejected(19, format!("probe succeeded but no ethdev port named {name:?} appeared")))
}

/// Is there an interface with this index in the calling thread's network namespace?
fn interface_exists(if_index: u32) -> bool {
    let mut buf = [0 as c_char; 16]; // IF_NAMESIZE
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires; it returns NULL
    // (ENXIO) when no interface has the index.
    !unsafe { sys::if_indextoname(if_index, buf.as_mut_ptr()) }.is_null()
}

fn libc_einval() -> i32 {
    22
}

/// Creates two ports connected back to back with rings (what one sends, the other
/// receives), named `{name}_a` and `{name}_b`, each with `n_queues` rx and tx queues.
/// For tests and benchmarks. The rings live until the process exits.
pub fn ring_port_pair(eal: &Eal, name: &str, n_queues: u16, ring_size: u32) -> Result<(PortId, PortId), DpdkError> {
    if n_queues == 0 || n_queues > 16 {
        return Err(DpdkError::InvalidArgument(format!("ring port pair with {n_queues} queues (1..=16)")));
    }
    let socket = eal.socket_id();
    let make_rings = |dir: &str| -> Result<Vec<*mut sys::rte_ring>, DpdkError> {
        (0..n_queues)
            .map(|q| {
                let rname = format!("{name}_{dir}{q}");
                let c = CString::new(rname.clone()).map_err(|_| DpdkError::InvalidArgument(rname.clone()))?;
                // SAFETY: valid C string; ring_size validated by DPDK (power of two).
                let r = unsafe { sys::fvs_ring_create(c.as_ptr(), ring_size, socket) };
                if r.is_null() {
                    let code = rte_errno();
                    Err(DpdkError::Call {
                        what: format!("rte_ring_create({rname:?}, {ring_size})"),
                        code,
                        message: strerror(code),
                    })
                } else {
                    Ok(r)
                }
            })
            .collect()
    };
    let a_to_b = make_rings("ab")?;
    let b_to_a = make_rings("ba")?;
    let mk = |pname: String, rx: &[*mut sys::rte_ring], tx: &[*mut sys::rte_ring]| -> Result<PortId, DpdkError> {
        let c = CString::new(pname.clone()).map_err(|_| DpdkError::InvalidArgument(pname.clone()))?;
        // SAFETY: valid name, arrays of n_queues valid rings that are never freed.
        let ret = unsafe {
            sys::rte_eth_from_rings(
                c.as_ptr(),
                rx.as_ptr(),
                rx.len() as u32,
                tx.as_ptr(),
                tx.len() as u32,
                socket as u32,
            )
        };
        if ret < 0 {
            Err(DpdkError::call(format!("rte_eth_from_rings({pname:?})"), ret))
        } else {
            Ok(PortId(ret as u16))
        }
    };
    let a = mk(format!("{name}_a"), &b_to_a, &a_to_b)?;
    let b = mk(format!("{name}_b"), &a_to_b, &b_to_a)?;
    Ok((a, b))
}

/// Queue counts and ring sizes for [`Port::configure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    pub n_rxq: u16,
    pub n_txq: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig { n_rxq: 1, n_txq: 1, rx_desc: 1024, tx_desc: 1024 }
    }
}

/// Whether a link is up, as far as this process can know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkState {
    Up,
    #[default]
    Down,
    /// The driver's answer cannot be trusted: the port is bound to a host interface
    /// (a net_tap's kernel interface) that is no longer in this process's network
    /// namespace, typically because it was moved into another one. The driver asks the
    /// kernel about the interface by name in our namespace, where it no longer exists,
    /// and so reports "down" while the port forwards.
    Unknown,
}

impl LinkState {
    /// `up`, `down` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Unknown => "unknown",
        }
    }
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStatus {
    /// Known to be up (`state` is [`LinkState::Up`]).
    pub up: bool,
    pub state: LinkState,
    /// Mbit/s (0 when unknown or down).
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// Hardware / driver counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EthStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the NIC because no rx descriptor was free (rx queue overrun).
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// A configured port. Cloning gives another handle; the device is stopped and closed when
/// the last handle (including queue handles) is dropped.
#[derive(Clone)]
pub struct Port {
    inner: Arc<PortInner>,
}

struct PortInner {
    id: u16,
    name: String,
    config: PortConfig,
    rxq_taken: AtomicU64,
    txq_taken: AtomicU64,
    started: AtomicBool,
    /// The host interface the port is bound to (`rte_eth_dev_info.if_index`; net_tap sets
    /// it), 0 if none.
    host_if_index: u32,
    /// `on_removal` is registered for the port (the driver reports removals).
    removal_callback: bool,
    /// Remove the virtual device from DPDK when the port closes (see
    /// [`Port::remove_device_on_close`]).
    remove_device: AtomicBool,
    _pool: Mempool,
    _eal: Eal,
}

impl Port {
    /// Configures `id` with `config` queues (rx buffers from `pool`). The port is not
    /// started. Fails with a clear message if the device supports fewer queues.
    pub fn configure(eal: &Eal, id: PortId, config: &PortConfig, pool: &Mempool) -> Result<Port, DpdkError> {
        let pid = id.0;
        let name = port_name(pid).ok_or_else(|| DpdkError::PortNotFound(format!("port id {pid}")))?;
        if config.n_rxq == 0 || config.n_txq == 0 || config.n_rxq > 64 || config.n_txq > 64 {
            return Err(DpdkError::InvalidArgument(format!(
                "port {name}: {} rx and {} tx queues (1..=64 each)",
                config.n_rxq, config.n_txq
            )));
        }
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port id and out struct.
        let ret = unsafe { sys::rte_eth_dev_info_get(pid, &mut info) };
        if ret != 0 {
            return Err(DpdkError::call(format!("rte_eth_dev_info_get({name})"), ret));
        }
        if config.n_rxq > info.max_rx_queues || config.n_txq > info.max_tx_queues {
            return Err(DpdkError::InvalidArgument(format!(
                "port {name} supports at most {} rx and {} tx queues; asked for {} and {}",
                info.max_rx_queues, info.max_tx_queues, config.n_rxq, config.n_txq
            )));
        }
        let mut conf = sys::rte_eth_conf::default();
        // SAFETY: `dev_flags` points into the device's data (which lives as long as the
        // port) or is NULL.
        let removable = unsafe { !info.dev_flags.is_null() && *info.dev_flags & ETH_DEV_INTR_RMV != 0 };
        if removable {
            // The driver can tell when its device goes away: ask it to (see `on_removal`).
            conf.intr_conf.set_rmv(1);
        }
        // Several rx queues: let the device spread flows over them by an IP/TCP/UDP hash,
        // and hand that hash to the flow cache (which then does not compute one).
        let rss_hf = RSS_IP_TCP_UDP & info.flow_type_rss_offloads;
        if config.n_rxq > 1 && rss_hf != 0 {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            conf.rxmode.offloads |= RX_OFFLOAD_RSS_HASH & info.rx_offload_capa;
        }
        // SAFETY: valid port id and a configuration without pointers (no RSS key: the
        // driver's default).
        let ret = unsafe { sys::rte_eth_dev_configure(pid, config.n_rxq, config.n_txq, &conf) };
        if ret != 0 {
            return Err(DpdkError::call(format!("rte_eth_dev_configure({name})"), ret));
        }
        // SAFETY: valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(pid) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        if removable {
            // SAFETY: valid port id; `on_removal` is a plain function that touches only
            // atomics, with no argument.
            let ret = unsafe {
                sys::rte_eth_dev_callback_register(
                    pid,
                    sys::rte_eth_event_type_RTE_ETH_EVENT_INTR_RMV,
                    Some(on_removal),
                    std::ptr::null_mut(),
                )
            };
            if ret != 0 {
                return Err(DpdkError::call(format!("rte_eth_dev_callback_register({name}, INTR_RMV)"), ret));
            }
        }
        for q in 0..config.n_rxq {
            // SAFETY: configured port, queue index in range, NULL conf = driver defaults, live pool.
            let ret =
                unsafe { sys::rte_eth_rx_queue_setup(pid, q, config.rx_desc, socket, std::ptr::null(), pool.as_ptr()) };
            if ret != 0 {
                return Err(DpdkError::call(format!("rte_eth_rx_queue_setup({name}, queue {q})"), ret));
            }
        }
        for q in 0..config.n_txq {
            // SAFETY: configured port, queue index in range, NULL conf = driver defaults.
            let ret = unsafe { sys::rte_eth_tx_queue_setup(pid, q, config.tx_desc, socket, std::ptr::null()) };
            if ret != 0 {
                return Err(DpdkError::call(format!("rte_eth_tx_queue_setup({name}, queue {q})"), ret));
            }
        }
        Ok(Port {
            inner: Arc::new(PortInner {
                id: pid,
                name,
                config: *config,
                rxq_taken: AtomicU64::new(0),
                txq_taken: AtomicU64::new(0),
                started: AtomicBool::new(false),
                host_if_index: info.if_index,
                removal_callback: removable,
                remove_device: AtomicBool::new(false),
                _pool: pool.clone(),
                _eal: eal.clone(),
            }),
        })
    }

    pub fn id(&self) -> PortId {
        PortId(self.inner.id)
    }
    /// Device name (e.g. `net_null0`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    pub fn config(&self) -> PortConfig {
        self.inner.config
    }

    pub fn start(&self) -> Result<(), DpdkError> {
        // SAFETY: configured port.
        let ret = unsafe { sys::rte_eth_dev_start(self.inner.id) };
        if ret != 0 {
            return Err(DpdkError::call(format!("rte_eth_dev_start({})", self.inner.name), ret));
        }
        self.inner.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Sets the link administratively down (for a TAP: its kernel interface down, until
    /// the host sets it up).
    pub fn set_link_down(&self) -> Result<(), DpdkError> {
        // SAFETY: configured, valid port id.
        let ret = unsafe { sys::rte_eth_dev_set_link_down(self.inner.id) };
        if ret != 0 {
            return Err(DpdkError::call(format!("rte_eth_dev_set_link_down({})", self.inner.name), ret));
        }
        Ok(())
    }

    /// Sets the link administratively up again (after [`Port::set_link_down`]).
    pub fn set_link_up(&self) -> Result<(), DpdkError> {
        // SAFETY: configured, valid port id.
        let ret = unsafe { sys::rte_eth_dev_set_link_up(self.inner.id) };
        if ret != 0 {
            return Err(DpdkError::call(format!("rte_eth_dev_set_link_up({})", self.inner.name), ret));
        }
        Ok(())
    }

    /// Stops the port (pollers then see empty bursts).
    pub fn stop(&self) -> Result<(), DpdkError> {
        if !self.inner.started.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        // SAFETY: configured port.
        let ret = unsafe { sys::rte_eth_dev_stop(self.inner.id) };
        if ret != 0 { Err(DpdkError::call(format!("rte_eth_dev_stop({})", self.inner.name), ret)) } else { Ok(()) }
    }

    /// Link state, without waiting. [`LinkState::Unknown`] when the port's host
    /// interface has left this network namespace (see [`LinkState`]).
    pub fn link(&self) -> LinkStatus {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: valid port, out struct.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.inner.id, &mut l) };
        if ret != 0 {
            return LinkStatus::default();
        }
        if self.inner.host_if_index != 0 && !interface_exists(self.inner.host_if_index) {
            return LinkStatus { state: LinkState::Unknown, ..LinkStatus::default() };
        }
        let up = l.link_status() != 0;
        LinkStatus {
            up,
            state: if up { LinkState::Up } else { LinkState::Down },
            speed_mbps: if up && l.link_speed != u32::MAX { l.link_speed } else { 0 },
            full_duplex: l.link_duplex() != 0,
        }
    }

    /// Driver counters.
    pub fn stats(&self) -> Result<EthStats, DpdkError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port, out struct.
        let ret = unsafe { sys::rte_eth_stats_get(self.inner.id, &mut s) };
        if ret != 0 {
            return Err(DpdkError::call(format!("rte_eth_stats_get({})", self.inner.name), ret));
        }
        Ok(EthStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    pub fn mac_addr(&self) -> Result<[u8; 6], DpdkError> {
        let mut a = sys::rte_ether_addr::default();
        // SAFETY: valid port, out struct.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.inner.id, &mut a) };
        if ret != 0 {
            Err(DpdkError::call(format!("rte_eth_macaddr_get({})", self.inner.name), ret))
        } else {
            Ok(a.addr_bytes)
        }
    }

    /// Sets the device's MTU. A driver that cannot (net_ring, net_pcap: "not supported")
    /// is not an error: the switch enforces the limit on output itself.
    pub fn set_mtu(&self, mtu: u16) -> Result<(), DpdkError> {
        // SAFETY: valid port.
        let ret = unsafe { sys::rte_eth_dev_set_mtu(self.inner.id, mtu) };
        if ret != 0 && ret != -95 {
            return Err(DpdkError::call(format!("MTU {mtu} on {}", self.inner.name), ret));
        }
        Ok(())
    }

    /// When the last handle goes, also remove the virtual device (`net_*` / `eth_*`) from
    /// DPDK, so that the same devargs can be probed again (a port removed and added back
    /// at run time). For ports the caller probed; a device it did not create stays.
    pub fn remove_device_on_close(&self) {
        self.inner.remove_device.store(true, Ordering::SeqCst);
    }

    pub fn set_promiscuous(&self, on: bool) -> Result<(), DpdkError> {
        // SAFETY: valid port.
        let ret = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(self.inner.id)
            } else {
                sys::rte_eth_promiscuous_disable(self.inner.id)
            }
        };
        // Some virtual drivers (net_ring) do not implement promiscuous mode: they accept
        // every frame anyway, so "not supported" is not a failure.
        if ret != 0 && ret != -95 {
            return Err(DpdkError::call(format!("promiscuous mode on {}", self.inner.name), ret));
        }
        Ok(())
    }

    fn take(&self, queue: u16, rx: bool) -> Result<(), DpdkError> {
        let (n, mask) = if rx {
            (self.inner.config.n_rxq, &self.inner.rxq_taken)
        } else {
            (self.inner.config.n_txq, &self.inner.txq_taken)
        };
        if queue >= n {
            return Err(DpdkError::Queue { port: self.inner.id, queue, reason: "no such queue" });
        }
        let bit = 1u64 << queue;
        if mask.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
            return Err(DpdkError::Queue { port: self.inner.id, queue, reason: "already taken by another handle" });
        }
        Ok(())
    }

    /// The handle of rx queue `queue` (each queue can be taken once at a time).
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue, DpdkError> {
        self.take(queue, true)?;
        Ok(RxQueue { port: self.clone(), queue, _not_sync: std::marker::PhantomData })
    }

    /// The handle of tx queue `queue` (each queue can be taken once at a time).
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue, DpdkError> {
        self.take(queue, false)?;
        Ok(TxQueue { port: self.clone(), queue, _not_sync: std::marker::PhantomData })
    }
}

impl Drop for PortInner {
    fn drop(&mut self) {
        if self.removal_callback {
            // SAFETY: the callback registered in `configure`, same function and argument.
            unsafe {
                sys::rte_eth_dev_callback_unregister(
                    self.id,
                    sys::rte_eth_event_type_RTE_ETH_EVENT_INTR_RMV,
                    Some(on_removal),
                    std::ptr::null_mut(),
                );
            }
            if let Some(flag) = REMOVED.get(usize::from(self.id)) {
                flag.store(false, Ordering::SeqCst);
            }
        }
        // SAFETY: no queue handle remains (they hold the Arc), so nobody polls the port.
        unsafe {
            if self.started.load(Ordering::SeqCst) {
                sys::rte_eth_dev_stop(self.id);
            }
            sys::rte_eth_dev_close(self.id);
        }
        let is_vdev = self.name.starts_with("net_") || self.name.starts_with("eth_");
        if self.remove_device.load(Ordering::SeqCst)
            && is_vdev
            && let Ok(name) = CString::new(self.name.as_str())
        {
            // SAFETY: valid C string; the port is closed, so the driver's remove only frees
            // the device (a driver whose close already freed it returns without work).
            let ret = unsafe { sys::rte_vdev_uninit(name.as_ptr()) };
            if ret != 0 {
                report_remove_failure(&self.name, ret);
            }
        }
    }
}

/// `RTE_ETH_DEV_INTR_RMV` (rte_ethdev.h: `RTE_BIT32(3)`, a macro bindgen cannot read): the
/// device's driver raises the removal interrupt.
const ETH_DEV_INTR_RMV: u32 = 1 << 3;

/// Ports whose driver reported their device removed (`RTE_ETH_EVENT_INTR_RMV`), by port
/// id, until [`take_removed_ports`] reads them.
static REMOVED: [AtomicBool; sys::RTE_MAX_ETHPORTS as usize] =
    [const { AtomicBool::new(false) }; sys::RTE_MAX_ETHPORTS as usize];

/// DPDK's removal callback: runs on DPDK's interrupt thread, so it only records the event
/// (the application detaches the port from its own thread).
unsafe extern "C" fn on_removal(
    port_id: u16,
    _event: sys::rte_eth_event_type,
    _cb_arg: *mut std::os::raw::c_void,
    _ret_param: *mut std::os::raw::c_void,
) -> std::os::raw::c_int {
    if let Some(flag) = REMOVED.get(usize::from(port_id)) {
        flag.store(true, Ordering::SeqCst);
    }
    0
}

/// The ports whose device their driver reported removed since the last call (only drivers
/// that support the removal interrupt report: hot-unplugged PCI devices, failsafe...).
pub fn take_removed_ports() -> Vec<PortId> {
    (0..REMOVED.len()).filter(|&i| REMOVED[i].swap(false, Ordering::SeqCst)).map(|i| PortId(i as u16)).collect()
}

/// Reports a device that could not be removed (nothing else can be done in a destructor).
fn report_remove_failure(name: &str, ret: i32) {
    eprintln!("ferrovs-dpdk: removing device {name}: error {ret}");
}

/// Exclusive handle of one rx queue. `Send`, not `Sync`: one polling thread.
pub struct RxQueue {
    port: Port,
    queue: u16,
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

/// Exclusive handle of one tx queue. `Send`, not `Sync`: one polling thread.
pub struct TxQueue {
    port: Port,
    queue: u16,
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl RxQueue {
    pub fn port(&self) -> &Port {
        &self.port
    }
    pub fn queue(&self) -> u16 {
        self.queue
    }
}
impl TxQueue {
    pub fn port(&self) -> &Port {
        &self.port
    }
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        self.port.inner.rxq_taken.fetch_and(!(1u64 << self.queue), Ordering::SeqCst);
    }
}
impl Drop for TxQueue {
    fn drop(&mut self) {
        self.port.inner.txq_taken.fetch_and(!(1u64 << self.queue), Ordering::SeqCst);
    }
}

/// Receives up to `BURST - batch.len()` packets, appended to `batch`. Returns how many
/// arrived.
#[inline]
pub fn rx_burst(rxq: &mut RxQueue, batch: &mut MbufBatch) -> usize {
    let (pkts, len) = batch.raw_parts();
    let room = BURST - *len;
    if room == 0 {
        return 0;
    }
    // SAFETY: we hold the only handle of this queue (&mut, and the queue is taken once);
    // the driver writes at most `room` valid mbuf pointers after the current ones, which the
    // batch then owns.
    let n =
        unsafe { sys::fvs_rx_burst(rxq.port.inner.id, rxq.queue, pkts.as_mut_ptr().add(*len), room as u16) } as usize;
    *len += n;
    n
}

/// Sends the batch's packets from the front. Returns how many the driver took; the unsent
/// ones stay in the batch (moved to the front) for the caller to retry, count or free.
#[inline]
pub fn tx_burst(txq: &mut TxQueue, batch: &mut MbufBatch) -> usize {
    let (pkts, len) = batch.raw_parts();
    if *len == 0 {
        return 0;
    }
    // SAFETY: exclusive handle of this tx queue; slots 0..len are valid mbufs owned by the
    // batch. The driver takes ownership of the first `sent`.
    let sent = unsafe { sys::fvs_tx_burst(txq.port.inner.id, txq.queue, pkts.as_mut_ptr(), *len as u16) } as usize;
    if sent < *len {
        pkts.copy_within(sent..*len, 0);
    }
    *len -= sent;
    sent
}
