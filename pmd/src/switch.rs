//! The switch as the daemon sees it: start it from port specs and options, read its
//! statistics, send its PMD threads messages, stop it.
//!
//! Start-up order, so that a bad request fails before any port is touched where possible:
//! 1. [`validate`] names, numbers, devices, cores (no DPDK);
//! 2. create the mempool; probe every device (the error names the devargs DPDK rejected);
//! 3. configure each port with its rx queues and one tx queue per PMD, start it, enable
//!    promiscuous mode;
//! 4. assign (port, rx queue) pairs to PMDs by load, pinned queues to their PMD
//!    (`rxq_assign`), and start the PMD threads, each pinned to its core and
//!    registered with DPDK; wait until all are running.
//!
//! A port whose link goes down keeps its configuration; the PMDs just keep polling it and
//! forwarding resumes when the link returns. A port set administratively down
//! ([`Switch::set_port_admin`]) keeps its device and queues too: its link is set down
//! where the driver can, and every PMD drops what it receives and what is output to it
//! (counted), so bringing it up again loses nothing elsewhere and re-creates nothing.
//!
//! Stopping sets the stop flag, joins the PMDs (which flush and free everything they hold),
//! then stops and closes the ports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use ferrovs_dpdk::{Eal, EthStats, LinkStatus, Mempool, Port, PortConfig, PortId, probe};

use crate::capture::CaptureTaps;
use crate::error::SwitchError;
use crate::exec::{SlotTable, TxPort, TxState, set_slot};
use crate::forwarder::{ForwardRule, Forwarder};
use crate::pipeline::Pipeline;
use crate::pmd::{AssignedRxq, PmdMessage, PmdThread};
use crate::port_change::{PortChange, PortChangeMessage};
use crate::rxq_assign;
use crate::spec::{PortSource, PortSpec, SwitchOptions, validate};
use crate::stats::{AtomicRxqCounters, PmdLocal, PmdShared, PortCounters, RxqLocal};

/// How long a PMD may take to apply a port change (it does so between two bursts).
const PORT_CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// One change per PMD that has queues in `adds` (by PMD index): start polling them,
/// with room for the `keep(pmd)` queues it goes on polling.
fn taking_changes(adds: Vec<Vec<AssignedRxq>>, keep: impl Fn(usize) -> usize) -> Vec<(usize, PortChange)> {
    adds.into_iter()
        .enumerate()
        .filter(|(_, add)| !add.is_empty())
        .map(|(pmd, add)| {
            let rx_set = Some(Vec::with_capacity(keep(pmd) + add.len()));
            (pmd, PortChange { rx_set, add_rxqs: add, ..PortChange::default() })
        })
        .collect()
}

/// Rx and tx queue counts of a port: its rx queues, one tx queue per PMD. net_tap wants
/// as many of one as of the other, so there both are the larger (every rx queue is
/// polled; spare tx queues stay unused).
fn queue_counts(spec: &PortSpec, n_pmds: u16) -> (u16, u16) {
    let is_tap = matches!(&spec.device, PortSource::Devargs(d) if d.trim_start().starts_with("net_tap"));
    if is_tap {
        let n = spec.n_rxq.max(n_pmds);
        (n, n)
    } else {
        (spec.n_rxq, n_pmds)
    }
}

/// Sets the device's MTU where the driver can. Not fatal when it cannot (a net_tap whose
/// interface moved to another namespace answers "no such device"): the PMDs enforce the
/// limit on output either way.
fn set_device_mtu(port: &Port, name: &str, mtu: u16) {
    if let Err(e) = port.set_mtu(mtu) {
        tracing::warn!(port = %name, error = %e, "device MTU not set; the switch still drops longer frames");
    }
}

/// Sets the device's link up or down where the driver can. Not fatal when it cannot
/// (a net_tap whose interface moved to another namespace answers "no such device"): the
/// PMDs enforce an administratively down port either way.
fn set_device_link(port: &Port, name: &str, up: bool) {
    let r = if up { port.set_link_up() } else { port.set_link_down() };
    if let Err(e) = r {
        tracing::warn!(port = %name, error = %e, up, "device link not set; the switch still enforces the port state");
    }
}

/// The device of `spec`: probed from its devargs, or the existing port.
fn probe_source(eal: &Eal, spec: &PortSpec) -> Result<PortId, SwitchError> {
    match &spec.device {
        PortSource::Devargs(d) => probe(eal, d).map_err(|e| SwitchError::Port { port: spec.name.clone(), source: e }),
        PortSource::Existing(id) => Ok(*id),
    }
}

static SWITCH_SEQ: AtomicUsize = AtomicUsize::new(0);

/// An rx queue and the PMD polling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxqAssignment {
    pub port_name: String,
    pub port_number: u32,
    pub queue: u16,
    /// TSC cycles its PMD spent on this queue's bursts since it was first polled.
    pub busy_cycles: u64,
    /// Packets received on it.
    pub packets: u64,
    /// Pinned to this PMD (`rxq_affinity`).
    pub pinned: bool,
}

/// What a PMD thread is doing; see [`Switch::pmd_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmdInfo {
    pub index: usize,
    pub core: usize,
    /// Polls a pinned queue, so it gets no unpinned one (OVS's `isolated`).
    pub isolated: bool,
    pub rx_queues: Vec<RxqAssignment>,
}

/// Statistics of one port.
#[derive(Debug, Clone, PartialEq)]
pub struct PortStats {
    pub name: String,
    pub number: u32,
    pub port_id: PortId,
    /// DPDK device name.
    pub device: String,
    pub link: LinkStatus,
    /// Our counters, summed over PMDs.
    pub counters: PortCounters,
    /// The driver's counters (`None` if the driver failed to report them).
    pub eth: Option<EthStats>,
}

/// Statistics of one PMD thread.
#[derive(Debug, Clone, PartialEq)]
pub struct PmdStats {
    pub index: usize,
    pub core: usize,
    pub running: bool,
    /// Polls a pinned queue (see [`PmdInfo::isolated`]).
    pub isolated: bool,
    pub rx_queues: Vec<RxqAssignment>,
    /// The PMD's counters as last published.
    pub counters: PmdLocal,
    /// Its iteration histograms as last published (see `perf`).
    pub histograms: crate::perf::PmdHistograms,
}

impl PmdStats {
    /// Busy TSC cycles per received packet.
    pub fn cycles_per_packet(&self) -> Option<f64> {
        let c = &self.counters;
        (c.packets > 0).then(|| c.busy_cycles as f64 / c.packets as f64)
    }
    /// Share of cycles spent in iterations that had packets (0..=1).
    pub fn busy_ratio(&self) -> f64 {
        let c = &self.counters;
        let t = c.busy_cycles + c.idle_cycles;
        if t == 0 { 0.0 } else { c.busy_cycles as f64 / t as f64 }
    }
}

/// A snapshot of the switch's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchStats {
    pub ports: Vec<PortStats>,
    pub pmds: Vec<PmdStats>,
    /// TSC ticks per second, to turn cycles into time.
    pub tsc_hz: u64,
    pub mbufs_in_use: u32,
    pub mbufs_total: u32,
}

/// A cloneable handle to send one PMD messages, usable from any thread.
pub struct PmdSender<M> {
    index: usize,
    tx: Sender<PmdMessage<M>>,
    /// The PMD's shared state, for barriers.
    shared: Arc<PmdShared>,
}

impl<M> Clone for PmdSender<M> {
    fn clone(&self) -> Self {
        PmdSender { index: self.index, tx: self.tx.clone(), shared: self.shared.clone() }
    }
}

impl<M: Send + 'static> PmdSender<M> {
    pub fn pmd(&self) -> usize {
        self.index
    }
    /// Queues `msg` for the PMD's pipeline without blocking; it is applied between bursts.
    pub fn send(&self, msg: M) -> Result<(), SwitchError> {
        self.tx.try_send(PmdMessage::Pipeline(msg)).map_err(|e| match e {
            TrySendError::Full(_) => SwitchError::QueueFull(self.index),
            TrySendError::Disconnected(_) => SwitchError::PmdGone(self.index),
        })
    }
    /// Queues `msg`, waiting up to `timeout` for room: for messages that must not be
    /// lost (the PMD drains its queue between bursts, so a full queue empties quickly).
    pub fn send_timeout(&self, msg: M, timeout: Duration) -> Result<(), SwitchError> {
        self.tx.send_timeout(PmdMessage::Pipeline(msg), timeout).map_err(|e| match e {
            crossbeam_channel::SendTimeoutError::Timeout(_) => SwitchError::QueueFull(self.index),
            crossbeam_channel::SendTimeoutError::Disconnected(_) => SwitchError::PmdGone(self.index),
        })
    }
    /// Waits until the PMD has applied every message sent before this call.
    ///
    /// The PMD answers barrier `n` by storing `n` (a reply channel per barrier was freed
    /// on the PMD whenever the waiter dropped its end first, and woke the waiter with a
    /// system call from the PMD loop); the waiter polls, spinning briefly and then
    /// sleeping 20 us at a time. Numbers come from one counter per PMD, taken after the
    /// caller's earlier messages were queued, so the PMD reaching a later barrier than
    /// ours (another thread's, queued first) also means ours is passed.
    pub fn barrier(&self, timeout: Duration) -> Result<(), SwitchError> {
        let deadline = Instant::now() + timeout;
        let n = self.shared.barrier_sent.fetch_add(1, Ordering::SeqCst) + 1;
        self.tx.send_timeout(PmdMessage::Barrier(n), timeout).map_err(|_| SwitchError::PmdGone(self.index))?;
        let mut spins = 0u32;
        while self.shared.barrier_done.load(Ordering::Acquire) < n {
            if Instant::now() >= deadline || !self.shared.running.load(Ordering::SeqCst) {
                return Err(SwitchError::PmdGone(self.index));
            }
            if spins < 200 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        Ok(())
    }
}

struct SwitchPort {
    spec: PortSpec,
    port: Port,
    slot: usize,
    /// Whether the PMDs poll its rx queues.
    polled: bool,
}

/// One rx queue and where it is polled; its counters survive a move to another PMD.
struct RxqState {
    slot: usize,
    port_name: String,
    port_number: u32,
    queue: u16,
    pmd: usize,
    counters: Arc<AtomicRxqCounters>,
    /// `counters.busy_cycles` at the last rebalance: the load since is what counts.
    cycles_at_rebalance: u64,
    /// The PMD it is pinned to.
    pinned: Option<usize>,
}

struct PmdHandle<M> {
    index: usize,
    core: usize,
    sender: PmdSender<M>,
    shared: Arc<PmdShared>,
    join: Option<JoinHandle<()>>,
}

/// A running switch. `M` is the pipeline's message type.
///
/// Ports are added and removed while the PMDs forward ([`Switch::add_port`],
/// [`Switch::poll_port`], [`Switch::unpoll_port`], [`Switch::remove_port`]); see
/// [`crate::port_change`] for how a change reaches the PMDs.
pub struct Switch<M: Send + 'static> {
    eal: Eal,
    options: SwitchOptions,
    ports: Vec<SwitchPort>,
    rxqs: Vec<RxqState>,
    /// Port number → slot, as the PMDs have it.
    slot_table: SlotTable,
    pool: Mempool,
    pmds: Vec<PmdHandle<M>>,
    stop: Arc<AtomicBool>,
    capture: Arc<CaptureTaps>,
    /// The last round number a port change was sent with (see `PortChange::round`).
    port_change_rounds: AtomicU64,
}

/// Longest frame a port with `mtu` sends: Ethernet header, one VLAN tag, no FCS (OVS's
/// limit).
pub fn max_frame(mtu: u16) -> u32 {
    u32::from(mtu) + 18
}

impl Switch<crate::forwarder::ForwarderMessage> {
    /// Starts a switch whose PMDs forward by ingress port with `rules`.
    pub fn start_forwarder(
        eal: &Eal,
        ports: &[PortSpec],
        options: &SwitchOptions,
        rules: &[(u32, ForwardRule)],
    ) -> Result<Self, SwitchError> {
        let numbers: Vec<u32> = ports.iter().map(|p| p.number).collect();
        validate(ports, options)?;
        let fwd = Forwarder::new(&numbers, rules)?;
        Switch::start(eal, ports, options, |_| fwd.clone())
    }
}

impl<M: Send + 'static> Switch<M> {
    /// Starts the switch: the PMD threads, then each port of `specs` (added and polled as
    /// [`Switch::add_port`] and [`Switch::poll_port`] would). `make_pipeline` is called once
    /// per PMD (on this thread) and the pipeline moved to that PMD.
    pub fn start<C, F>(
        eal: &Eal,
        specs: &[PortSpec],
        options: &SwitchOptions,
        mut make_pipeline: F,
    ) -> Result<Switch<M>, SwitchError>
    where
        C: Pipeline<Message = M>,
        F: FnMut(&PmdInfo) -> C,
    {
        validate(specs, options)?;
        let n_pmds = options.pmd_cores.len();
        let seq = SWITCH_SEQ.fetch_add(1, Ordering::SeqCst);
        let pool = Mempool::new(
            eal,
            &format!("fvs_pool{seq}"),
            options.n_mbufs,
            options.mbuf_cache,
            options.mbuf_data_room,
            eal.socket_id(),
        )?;

        let stop = Arc::new(AtomicBool::new(false));
        let capture = Arc::new(CaptureTaps::default());
        let mut switch = Switch {
            eal: eal.clone(),
            options: options.clone(),
            ports: Vec::new(),
            rxqs: Vec::new(),
            slot_table: SlotTable::new(),
            pool: pool.clone(),
            pmds: Vec::new(),
            stop: stop.clone(),
            capture: capture.clone(),
            port_change_rounds: AtomicU64::new(0),
        };
        let (started_tx, started_rx) = crossbeam_channel::unbounded();
        for (pmd_index, &core) in options.pmd_cores.iter().enumerate() {
            let info = PmdInfo { index: pmd_index, core, isolated: false, rx_queues: Vec::new() };
            let pipeline = make_pipeline(&info);
            let (msg_tx, msg_rx) = crossbeam_channel::bounded(options.message_queue);
            let shared = Arc::new(PmdShared::new(options.max_ports, options.message_queue));
            let thread = PmdThread {
                index: pmd_index,
                rxqs: Vec::new(),
                tx: TxState::new(options.max_ports, Vec::new(), pool.clone(), capture.clone()),
                pipeline,
                messages: msg_rx,
                stop: stop.clone(),
                shared: shared.clone(),
                backoff: options.idle_backoff,
                eal: eal.clone(),
            };
            let pin = options.pin_threads;
            let started = started_tx.clone();
            let join = std::thread::Builder::new()
                .name(format!("pmd{pmd_index}-c{core}"))
                .spawn(move || {
                    if pin && !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        let _ = started.send(Err((pmd_index, format!("could not pin to core {core}"))));
                        return;
                    }
                    thread.run(started)
                })
                .map_err(|e| SwitchError::ThreadStart { pmd: pmd_index, reason: e.to_string() })?;
            switch.pmds.push(PmdHandle {
                index: pmd_index,
                core,
                sender: PmdSender { index: pmd_index, tx: msg_tx, shared: shared.clone() },
                shared,
                join: Some(join),
            });
        }
        drop(started_tx);
        for _ in 0..n_pmds {
            match started_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err((pmd, reason))) => return Err(SwitchError::ThreadStart { pmd, reason }),
                Err(_) => {
                    let pmd = switch.pmds.iter().position(|p| !p.shared.running.load(Ordering::SeqCst)).unwrap_or(0);
                    return Err(SwitchError::ThreadStart { pmd, reason: "did not start within 10 s".into() });
                }
            }
        }
        // Probe every device first: a rejected devargs fails here, before any port is
        // configured.
        let mut ids = Vec::with_capacity(specs.len());
        for s in specs {
            ids.push(probe_source(eal, s)?);
        }
        for (s, id) in specs.iter().zip(ids) {
            switch.attach_port(s.clone(), id, matches!(s.device, PortSource::Devargs(_)))?;
        }
        for s in specs {
            switch.poll_port(&s.name)?;
        }
        tracing::info!(ports = specs.len(), pmds = n_pmds, "switch started");
        Ok(switch)
    }

    /// Adds a port: probes its device, configures it (its rx queues, one tx queue per
    /// PMD), starts it, and gives every PMD its tx queue. The port is not polled until
    /// [`Switch::poll_port`]. Refused, with nothing changed, when the name, number or
    /// device is taken, the switch has no free slot, or DPDK rejects the device.
    pub fn add_port(&mut self, spec: PortSpec) -> Result<(), SwitchError> {
        let mut all: Vec<PortSpec> = self.ports.iter().map(|p| p.spec.clone()).collect();
        all.push(spec.clone());
        validate(&all, &self.options)?;
        let id = probe_source(&self.eal, &spec)?;
        self.attach_port(spec, id, matches!(all.last().map(|s| &s.device), Some(PortSource::Devargs(_))))
    }

    fn attach_port(&mut self, spec: PortSpec, id: PortId, probed: bool) -> Result<(), SwitchError> {
        let perr = |e| SwitchError::Port { port: spec.name.clone(), source: e };
        // `validate` kept the port count within the slots.
        let slot = (0..self.options.max_ports)
            .find(|s| self.ports.iter().all(|p| p.slot != *s))
            .ok_or_else(|| SwitchError::Invalid(format!("at most {} ports", self.options.max_ports)))?;
        let (n_rxq, n_txq) = queue_counts(&spec, self.pmds.len() as u16);
        let cfg = PortConfig { n_rxq, n_txq, rx_desc: self.options.rx_desc, tx_desc: self.options.tx_desc };
        let port = Port::configure(&self.eal, id, &cfg, &self.pool).map_err(perr)?;
        if probed {
            port.remove_device_on_close();
        }
        set_device_mtu(&port, &spec.name, spec.mtu);
        port.start().map_err(perr)?;
        port.set_promiscuous(true).map_err(perr)?;
        if spec.link_down || spec.admin_down {
            set_device_link(&port, &spec.name, false);
        }
        let mut table = self.slot_table.clone();
        set_slot(&mut table, spec.number, slot);
        let mut changes = Vec::with_capacity(self.pmds.len());
        for pmd in 0..self.pmds.len() {
            let txq = port.tx_queue(pmd as u16).map_err(perr)?;
            changes.push(PortChange {
                attach_tx: Some((slot, TxPort::new(spec.number, txq, max_frame(spec.mtu)))),
                admin_down: spec.admin_down.then_some((slot, true)),
                slot_table: Some(table.clone()),
                ..PortChange::default()
            });
        }
        self.apply(changes.into_iter().enumerate().collect())?;
        self.slot_table = table;
        tracing::info!(port = %spec.name, number = spec.number, slot, "port added");
        self.ports.push(SwitchPort { spec, port, slot, polled: false });
        Ok(())
    }

    /// Starts polling `name`'s rx queues: a pinned queue goes to its PMD; each other
    /// queue to the PMD with the least measured load (busy cycles of the queues it polls;
    /// then fewest queues) among those without pinned queues (`rxq_assign`).
    /// When the port's pins isolate a PMD that polls unpinned queues, those move
    /// ([`Switch::rebalance_rxqs`]).
    pub fn poll_port(&mut self, name: &str) -> Result<(), SwitchError> {
        let i = self.port_position(name)?;
        if self.ports[i].polled {
            return Ok(());
        }
        let (slot, number, n_rxq) = (self.ports[i].slot, self.ports[i].spec.number, self.ports[i].port.config().n_rxq);
        let pins = self.pin_pmds(&self.ports[i].spec.rxq_affinity);
        let mut load: Vec<(u64, usize)> = vec![(0, 0); self.pmds.len()];
        for q in &self.rxqs {
            load[q.pmd].0 += q.counters.snapshot().busy_cycles;
            load[q.pmd].1 += 1;
        }
        let iso = rxq_assign::isolated(
            self.pmds.len(),
            self.rxqs.iter().filter_map(|q| q.pinned).chain(pins.iter().map(|&(_, p)| p)),
        );
        let mut adds: Vec<Vec<AssignedRxq>> = (0..self.pmds.len()).map(|_| Vec::new()).collect();
        let mut new_states = Vec::new();
        for queue in 0..n_rxq {
            let pinned = pins.iter().find(|&&(q, _)| q == queue).map(|&(_, p)| p);
            let pmd = pinned.unwrap_or_else(|| rxq_assign::least_loaded(&load, &iso));
            load[pmd].1 += 1;
            let rxq =
                self.ports[i].port.rx_queue(queue).map_err(|e| SwitchError::Port { port: name.into(), source: e })?;
            let counters = Arc::new(AtomicRxqCounters::default());
            adds[pmd].push(AssignedRxq {
                rxq,
                in_port: number,
                in_idx: slot,
                counters: RxqLocal::default(),
                shared: counters.clone(),
                misses: Default::default(),
            });
            new_states.push(RxqState {
                slot,
                port_name: name.into(),
                port_number: number,
                queue,
                pmd,
                counters,
                cycles_at_rebalance: 0,
                pinned,
            });
        }
        let changes = taking_changes(adds, |pmd| self.rxqs.iter().filter(|q| q.pmd == pmd).count());
        self.apply(changes)?;
        self.rxqs.extend(new_states);
        self.ports[i].polled = true;
        if self.rxqs.iter().any(|q| q.pinned.is_none() && iso[q.pmd]) && iso.contains(&false) {
            self.rebalance_rxqs()?;
        }
        Ok(())
    }

    /// `pins` ((queue, core)) as (queue, PMD index); cores without a PMD left out
    /// (`validate` refused them).
    fn pin_pmds(&self, pins: &[(u16, usize)]) -> Vec<(u16, usize)> {
        pins.iter()
            .filter_map(|&(q, core)| self.options.pmd_cores.iter().position(|&c| c == core).map(|p| (q, p)))
            .collect()
    }

    /// Pins `name`'s rx queues to PMD cores as `pins` ((queue, core); empty: none) and
    /// reassigns every queue ([`Switch::rebalance_rxqs`]) so that pinned queues sit on their
    /// PMD and isolated PMDs poll nothing else. Refused, with nothing changed, for a
    /// queue the port does not have or a core that runs no PMD.
    pub fn set_rxq_affinity(&mut self, name: &str, pins: &[(u16, usize)]) -> Result<(), SwitchError> {
        let i = self.port_position(name)?;
        ferrovs_config::check_rxq_affinity(pins, self.ports[i].port.config().n_rxq, &self.options.pmd_cores)
            .map_err(|m| SwitchError::Invalid(format!("port {name:?}: rxq_affinity: {m}")))?;
        self.ports[i].spec.rxq_affinity = pins.to_vec();
        let slot = self.ports[i].slot;
        let pmds = self.pin_pmds(pins);
        for q in self.rxqs.iter_mut().filter(|q| q.slot == slot) {
            q.pinned = pmds.iter().find(|&&(n, _)| n == q.queue).map(|&(_, p)| p);
        }
        self.rebalance_rxqs()?;
        Ok(())
    }

    /// Sets `name` administratively down (or up): its link where the driver can, and on
    /// every PMD its received frames and outputs dropped and counted (or no longer). The
    /// device, its queues and every other port are left as they are.
    pub fn set_port_admin(&mut self, name: &str, down: bool) -> Result<(), SwitchError> {
        let i = self.port_position(name)?;
        let slot = self.ports[i].slot;
        if down {
            // Stop forwarding first, then the link: nothing is sent on a link going down.
            self.apply(self.admin_changes(slot, true))?;
            set_device_link(&self.ports[i].port, name, false);
        } else {
            if !self.ports[i].spec.link_down {
                set_device_link(&self.ports[i].port, name, true);
            }
            self.apply(self.admin_changes(slot, false))?;
        }
        self.ports[i].spec.admin_down = down;
        tracing::info!(port = %name, "port administratively {}", if down { "down" } else { "up" });
        Ok(())
    }

    fn admin_changes(&self, slot: usize, down: bool) -> Vec<(usize, PortChange)> {
        (0..self.pmds.len())
            .map(|pmd| (pmd, PortChange { admin_down: Some((slot, down)), ..PortChange::default() }))
            .collect()
    }

    /// Stops polling `name`'s rx queues (every PMD has let go of them when this returns).
    pub fn unpoll_port(&mut self, name: &str) -> Result<(), SwitchError> {
        let i = self.port_position(name)?;
        if !self.ports[i].polled {
            return Ok(());
        }
        let slot = self.ports[i].slot;
        let mut changes = Vec::new();
        for pmd in 0..self.pmds.len() {
            let total = self.rxqs.iter().filter(|q| q.pmd == pmd).count();
            let theirs = self.rxqs.iter().filter(|q| q.pmd == pmd && q.slot == slot).count();
            if theirs == 0 {
                continue;
            }
            changes.push((
                pmd,
                PortChange {
                    rx_set: Some(Vec::with_capacity(total - theirs)),
                    remove_rxqs: vec![(slot, None)],
                    retired_rxqs: Vec::with_capacity(theirs),
                    ..PortChange::default()
                },
            ));
        }
        // The returned changes (and the queue handles in them) drop here.
        self.apply(changes)?;
        self.rxqs.retain(|q| q.slot != slot);
        self.ports[i].polled = false;
        Ok(())
    }

    /// Removes port `name`: stops polling it, takes its tx queues back from every PMD
    /// (sending what they had pending), then stops and closes the device (and removes a
    /// virtual device the switch probed, so its devargs can be used again).
    pub fn remove_port(&mut self, name: &str) -> Result<(), SwitchError> {
        self.unpoll_port(name)?;
        let i = self.port_position(name)?;
        let (slot, number) = (self.ports[i].slot, self.ports[i].spec.number);
        let mut table = self.slot_table.clone();
        if let Some(s) = table.get_mut(number as usize) {
            *s = crate::exec::NO_SLOT;
        }
        let changes = (0..self.pmds.len())
            .map(|pmd| {
                (pmd, PortChange { detach_tx: Some(slot), slot_table: Some(table.clone()), ..PortChange::default() })
            })
            .collect();
        self.apply(changes)?;
        self.slot_table = table;
        let sp = self.ports.remove(i);
        if let Err(e) = sp.port.stop() {
            tracing::warn!(port = %sp.spec.name, error = %e, "stopping port");
        }
        tracing::info!(port = %sp.spec.name, number, "port removed");
        Ok(())
    }

    /// Changes `name`'s MTU: the device's (where the driver can) and the PMDs' limit.
    pub fn set_port_mtu(&mut self, name: &str, mtu: u16) -> Result<(), SwitchError> {
        let i = self.port_position(name)?;
        crate::spec::check_mtu_fits(name, mtu, self.options.mbuf_data_room)?;
        set_device_mtu(&self.ports[i].port, name, mtu);
        let slot = self.ports[i].slot;
        let changes = (0..self.pmds.len())
            .map(|pmd| (pmd, PortChange { max_frame: Some((slot, max_frame(mtu))), ..PortChange::default() }))
            .collect();
        self.apply(changes)?;
        self.ports[i].spec.mtu = mtu;
        Ok(())
    }

    /// The name of the port whose device is `id`, if the switch has it.
    pub fn port_name_of(&self, id: ferrovs_dpdk::PortId) -> Option<&str> {
        self.ports.iter().find(|p| p.port.id() == id).map(|p| p.spec.name.as_str())
    }

    /// The ports, in the order they were added.
    pub fn port_specs(&self) -> Vec<PortSpec> {
        self.ports.iter().map(|p| p.spec.clone()).collect()
    }

    fn port_position(&self, name: &str) -> Result<usize, SwitchError> {
        self.ports.iter().position(|p| p.spec.name == name).ok_or_else(|| SwitchError::NoSuchPort(name.to_string()))
    }

    /// Sends each `(pmd, change)` and waits until every PMD has handed its change back
    /// (polling each PMD's `PortChangeReturn`, see [`crate::port_change`], so
    /// the PMD never wakes this thread); what comes back (old tables, retired queues) is
    /// dropped here, on this thread, as is any change an earlier call gave up on.
    fn apply(&self, changes: Vec<(usize, PortChange)>) -> Result<Vec<PortChange>, SwitchError> {
        let round = self.port_change_rounds.fetch_add(1, Ordering::SeqCst) + 1;
        let mut waiting = vec![0usize; self.pmds.len()];
        for (pmd, mut change) in changes {
            let p = self.pmds.get(pmd).ok_or(SwitchError::NoSuchPmd(pmd))?;
            if waiting[pmd] == 0 {
                while p.shared.port_changes.take().is_some() {}
            }
            change.round = round;
            let msg = PmdMessage::Ports(PortChangeMessage { change: Box::new(change) });
            p.sender.tx.send_timeout(msg, PORT_CHANGE_TIMEOUT).map_err(|_| SwitchError::PmdGone(pmd))?;
            waiting[pmd] += 1;
        }
        let deadline = Instant::now() + PORT_CHANGE_TIMEOUT;
        let mut back = Vec::new();
        for (pmd, n) in waiting.into_iter().enumerate() {
            let shared = &self.pmds[pmd].shared;
            let mut spins = 0u32;
            let mut got = 0;
            while got < n {
                match shared.port_changes.take() {
                    Some(c) if c.round == round => {
                        back.push(*c);
                        got += 1;
                    }
                    Some(_stale) => {}
                    None if Instant::now() >= deadline || !shared.running.load(Ordering::SeqCst) => {
                        return Err(SwitchError::PmdGone(pmd));
                    }
                    None if spins < 200 => {
                        spins += 1;
                        std::hint::spin_loop();
                    }
                    None => std::thread::sleep(Duration::from_micros(20)),
                }
            }
        }
        Ok(back)
    }

    /// Reassigns every polled rx queue by its load since the last rebalance (OVS's
    /// `pmd-rxq-assign=cycles`): pinned queues to their PMD, the others busiest first, each
    /// to the non-isolated PMD with the least load so far (`rxq_assign`). A
    /// moving queue is let go by its PMD, then taken by the new one (packets wait in the
    /// device's ring meanwhile). Returns the moves as (port, queue, from, to).
    pub fn rebalance_rxqs(&mut self) -> Result<Vec<(String, u16, usize, usize)>, SwitchError> {
        let queues: Vec<(u64, Option<usize>)> = self
            .rxqs
            .iter()
            .map(|q| (q.counters.snapshot().busy_cycles.saturating_sub(q.cycles_at_rebalance), q.pinned))
            .collect();
        let target = rxq_assign::assign(&queues, self.pmds.len());
        let moving: Vec<usize> = (0..self.rxqs.len()).filter(|&i| target[i] != self.rxqs[i].pmd).collect();
        // Let go: each source PMD hands its moving queues back.
        let mut changes = Vec::new();
        for pmd in 0..self.pmds.len() {
            let out: Vec<(usize, Option<u16>)> = moving
                .iter()
                .filter(|&&i| self.rxqs[i].pmd == pmd)
                .map(|&i| (self.rxqs[i].slot, Some(self.rxqs[i].queue)))
                .collect();
            if out.is_empty() {
                continue;
            }
            let total = self.rxqs.iter().filter(|q| q.pmd == pmd).count();
            changes.push((
                pmd,
                PortChange {
                    rx_set: Some(Vec::with_capacity(total - out.len())),
                    retired_rxqs: Vec::with_capacity(out.len()),
                    remove_rxqs: out,
                    ..PortChange::default()
                },
            ));
        }
        let mut taken: Vec<AssignedRxq> = Vec::new();
        for mut back in self.apply(changes)? {
            taken.append(&mut back.retired_rxqs);
        }
        // Take: each target PMD gets its new queues (with their counters).
        let mut adds: Vec<Vec<AssignedRxq>> = (0..self.pmds.len()).map(|_| Vec::new()).collect();
        for q in taken {
            let i = self.rxqs.iter().position(|r| r.slot == q.in_idx && r.queue == q.rxq.queue());
            if let Some(i) = i {
                adds[target[i]].push(q);
            }
        }
        let changes = taking_changes(adds, |pmd| {
            self.rxqs.iter().enumerate().filter(|(i, q)| q.pmd == pmd && !moving.contains(i)).count()
        });
        self.apply(changes)?;
        let mut moves = Vec::new();
        for (i, q) in self.rxqs.iter_mut().enumerate() {
            if moving.contains(&i) {
                moves.push((q.port_name.clone(), q.queue, q.pmd, target[i]));
                q.pmd = target[i];
            }
            q.cycles_at_rebalance = q.counters.snapshot().busy_cycles;
        }
        Ok(moves)
    }

    /// The PMD threads and their rx queues.
    pub fn pmd_info(&self) -> Vec<PmdInfo> {
        self.pmds
            .iter()
            .map(|p| PmdInfo {
                index: p.index,
                core: p.core,
                isolated: self.rxqs.iter().any(|q| q.pinned == Some(p.index)),
                rx_queues: self.rx_queues_of(p.index),
            })
            .collect()
    }

    /// The rx queues `pmd` polls, with their counters.
    fn rx_queues_of(&self, pmd: usize) -> Vec<RxqAssignment> {
        self.rxqs
            .iter()
            .filter(|q| q.pmd == pmd)
            .map(|q| {
                let c = q.counters.snapshot();
                RxqAssignment {
                    port_name: q.port_name.clone(),
                    port_number: q.port_number,
                    queue: q.queue,
                    busy_cycles: c.busy_cycles,
                    packets: c.packets,
                    pinned: q.pinned.is_some(),
                }
            })
            .collect()
    }

    /// A handle to send messages to PMD `index`.
    pub fn sender(&self, index: usize) -> Result<PmdSender<M>, SwitchError> {
        self.pmds.get(index).map(|p| p.sender.clone()).ok_or(SwitchError::NoSuchPmd(index))
    }

    /// Sends `msg` to PMD `index` (non-blocking; see [`PmdSender::send`]).
    pub fn send(&self, index: usize, msg: M) -> Result<(), SwitchError> {
        self.pmds.get(index).ok_or(SwitchError::NoSuchPmd(index))?.sender.send(msg)
    }

    /// Sends a clone of `msg` to every PMD.
    pub fn broadcast(&self, msg: M) -> Result<(), SwitchError>
    where
        M: Clone,
    {
        for p in &self.pmds {
            p.sender.send(msg.clone())?;
        }
        Ok(())
    }

    /// Waits until every PMD has applied every message sent before this call.
    pub fn barrier(&self, timeout: Duration) -> Result<(), SwitchError> {
        let deadline = Instant::now() + timeout;
        for p in &self.pmds {
            p.sender.barrier(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)))?;
        }
        Ok(())
    }

    /// The switch's packet captures: arm one with [`CaptureTaps::arm`].
    pub fn capture(&self) -> &Arc<CaptureTaps> {
        &self.capture
    }

    /// The switch's mbuf pool.
    pub fn mempool(&self) -> &Mempool {
        &self.pool
    }

    /// A snapshot of all counters, taken without stopping forwarding.
    pub fn stats(&self) -> SwitchStats {
        let ports = self
            .ports
            .iter()
            .map(|sp| {
                let mut counters = PortCounters::default();
                for p in &self.pmds {
                    counters.add(&p.shared.port(sp.slot));
                }
                PortStats {
                    name: sp.spec.name.clone(),
                    number: sp.spec.number,
                    port_id: sp.port.id(),
                    device: sp.port.name().to_string(),
                    link: sp.port.link(),
                    counters,
                    eth: sp.port.stats().ok(),
                }
            })
            .collect();
        let pmds = self
            .pmds
            .iter()
            .map(|p| PmdStats {
                index: p.index,
                core: p.core,
                running: p.shared.running.load(Ordering::SeqCst),
                isolated: self.rxqs.iter().any(|q| q.pinned == Some(p.index)),
                rx_queues: self.rx_queues_of(p.index),
                counters: p.shared.pmd(),
                histograms: p.shared.perf.snapshot(),
            })
            .collect();
        SwitchStats {
            ports,
            pmds,
            tsc_hz: self.eal.tsc_hz(),
            mbufs_in_use: self.pool.in_use(),
            mbufs_total: self.pool.size(),
        }
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for p in &mut self.pmds {
            if let Some(j) = p.join.take() {
                let _ = j.join();
            }
        }
        for sp in &self.ports {
            if let Err(e) = sp.port.stop() {
                tracing::warn!(port = %sp.spec.name, error = %e, "stopping port");
            }
        }
        // Dropping the last handles closes the devices.
        self.ports.clear();
    }

    /// Stops the PMDs, then stops and closes every port. Returns the final statistics
    /// (taken after the PMDs stopped, before the ports closed).
    pub fn stop(mut self) -> SwitchStats {
        self.stop.store(true, Ordering::SeqCst);
        for p in &mut self.pmds {
            if let Some(j) = p.join.take() {
                let _ = j.join();
            }
        }
        let stats = self.stats();
        self.shutdown();
        stats
    }
}

impl<M: Send + 'static> Drop for Switch<M> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
