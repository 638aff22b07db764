//! The switch as the daemon sees it: start it from port specs and options, read its
//! statistics, send its PMD threads messages, stop it.
//!
//! Start-up order, so that a bad request fails before any port is touched where possible:
//! 1. [`validate`] names, numbers, devices, cores (no DPDK);
//! 2. create the mempool; probe every device (the error names the devargs DPDK rejected);
//! 3. configure each port with its rx queues and one tx queue per PMD, start it, enable
//!    promiscuous mode;
//! 4. assign (port, rx queue) pairs to PMDs round-robin and start the PMD threads, each
//!    pinned to its core and registered with DPDK; wait until all are running.
//!
//! A port whose link goes down keeps its configuration; the PMDs just keep polling it and
//! forwarding resumes when the link returns.
//!
//! Stopping sets the stop flag, joins the PMDs (which flush and free everything they hold),
//! then stops and closes the ports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use ferrovs_dpdk::{Eal, EthStats, LinkStatus, Mempool, Port, PortConfig, PortId, probe};

use crate::capture::CaptureTaps;
use crate::error::SwitchError;
use crate::exec::TxState;
use crate::forwarder::{ForwardRule, Forwarder};
use crate::pipeline::Pipeline;
use crate::pmd::{AssignedRxq, PmdMessage, PmdThread};
use crate::spec::{PortSource, PortSpec, SwitchOptions, validate};
use crate::stats::{PmdLocal, PmdShared, PortCounters};

static SWITCH_SEQ: AtomicUsize = AtomicUsize::new(0);

/// An rx queue and the PMD polling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxqAssignment {
    pub port_name: String,
    pub port_number: u32,
    pub queue: u16,
}

/// What a PMD thread is doing; see [`Switch::pmd_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmdInfo {
    pub index: usize,
    pub core: usize,
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
}

impl<M> Clone for PmdSender<M> {
    fn clone(&self) -> Self {
        PmdSender { index: self.index, tx: self.tx.clone() }
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
    pub fn barrier(&self, timeout: Duration) -> Result<(), SwitchError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.tx.send_timeout(PmdMessage::Barrier(tx), timeout).map_err(|_| SwitchError::PmdGone(self.index))?;
        rx.recv_timeout(timeout).map(|_| ()).map_err(|_| SwitchError::PmdGone(self.index))
    }
}

struct SwitchPort {
    spec: PortSpec,
    port: Port,
}

struct PmdHandle<M> {
    info: PmdInfo,
    sender: PmdSender<M>,
    shared: Arc<PmdShared>,
    join: Option<JoinHandle<()>>,
}

/// A running switch. `M` is the pipeline's message type.
pub struct Switch<M: Send + 'static> {
    eal: Eal,
    ports: Vec<SwitchPort>,
    pool: Mempool,
    pmds: Vec<PmdHandle<M>>,
    stop: Arc<AtomicBool>,
    capture: Arc<CaptureTaps>,
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
    /// Starts the switch. `make_pipeline` is called once per PMD (on this thread) and
    /// the pipeline moved to that PMD.
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

        // Probe every device first: a rejected devargs fails here, before any port is
        // configured.
        let mut ids = Vec::with_capacity(specs.len());
        for s in specs {
            let id = match &s.device {
                PortSource::Devargs(d) => {
                    probe(eal, d).map_err(|e| SwitchError::Port { port: s.name.clone(), source: e })?
                }
                PortSource::Existing(id) => *id,
            };
            ids.push(id);
        }
        let mut ports = Vec::with_capacity(specs.len());
        for (s, id) in specs.iter().zip(&ids) {
            let cfg =
                PortConfig { n_rxq: s.n_rxq, n_txq: n_pmds as u16, rx_desc: options.rx_desc, tx_desc: options.tx_desc };
            let perr = |e| SwitchError::Port { port: s.name.clone(), source: e };
            let port = Port::configure(eal, *id, &cfg, &pool).map_err(perr)?;
            port.start().map_err(perr)?;
            port.set_promiscuous(true).map_err(perr)?;
            ports.push(SwitchPort { spec: s.clone(), port });
        }

        // Round-robin (port, rx queue) -> PMD.
        let mut assigned: Vec<Vec<AssignedRxq>> = (0..n_pmds).map(|_| Vec::new()).collect();
        let mut infos: Vec<PmdInfo> = options
            .pmd_cores
            .iter()
            .enumerate()
            .map(|(index, &core)| PmdInfo { index, core, rx_queues: Vec::new() })
            .collect();
        let mut k = 0usize;
        for (idx, sp) in ports.iter().enumerate() {
            for q in 0..sp.spec.n_rxq {
                let rxq =
                    sp.port.rx_queue(q).map_err(|e| SwitchError::Port { port: sp.spec.name.clone(), source: e })?;
                let pmd = k % n_pmds;
                k += 1;
                assigned[pmd].push(AssignedRxq { rxq, in_port: sp.spec.number, in_idx: idx });
                infos[pmd].rx_queues.push(RxqAssignment {
                    port_name: sp.spec.name.clone(),
                    port_number: sp.spec.number,
                    queue: q,
                });
            }
        }

        let stop = Arc::new(AtomicBool::new(false));
        let capture = Arc::new(CaptureTaps::default());
        let mut switch = Switch {
            eal: eal.clone(),
            ports: Vec::new(),
            pool: pool.clone(),
            pmds: Vec::new(),
            stop: stop.clone(),
            capture: capture.clone(),
        };
        let (started_tx, started_rx) = crossbeam_channel::unbounded();
        for (pmd_index, rxqs) in assigned.into_iter().enumerate() {
            let info = infos[pmd_index].clone();
            let mut txqs = Vec::with_capacity(ports.len());
            for sp in &ports {
                let q = sp
                    .port
                    .tx_queue(pmd_index as u16)
                    .map_err(|e| SwitchError::Port { port: sp.spec.name.clone(), source: e })?;
                txqs.push((sp.spec.number, q));
            }
            let pipeline = make_pipeline(&info);
            let (msg_tx, msg_rx) = crossbeam_channel::bounded(options.message_queue);
            let shared = Arc::new(PmdShared::new(ports.len()));
            let thread = PmdThread {
                index: pmd_index,
                rxqs,
                tx: TxState::new(txqs, pool.clone(), capture.clone()),
                pipeline,
                messages: msg_rx,
                stop: stop.clone(),
                shared: shared.clone(),
                backoff: options.idle_backoff,
                eal: eal.clone(),
            };
            let core = info.core;
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
                info,
                sender: PmdSender { index: pmd_index, tx: msg_tx },
                shared,
                join: Some(join),
            });
        }
        drop(started_tx);
        switch.ports = ports;
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
        tracing::info!(ports = specs.len(), pmds = n_pmds, "switch started");
        Ok(switch)
    }

    /// The PMD threads and their rx queues.
    pub fn pmd_info(&self) -> Vec<PmdInfo> {
        self.pmds.iter().map(|p| p.info.clone()).collect()
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
            .enumerate()
            .map(|(i, sp)| {
                let mut counters = PortCounters::default();
                for p in &self.pmds {
                    counters.add(&p.shared.port(i));
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
                index: p.info.index,
                core: p.info.core,
                running: p.shared.running.load(Ordering::SeqCst),
                rx_queues: p.info.rx_queues.clone(),
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
