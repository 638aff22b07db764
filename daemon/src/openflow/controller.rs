//! OpenFlow controllers: connections the switch makes (`tcp:IP:PORT`, reconnecting with
//! back-off) or accepts (`ptcp:PORT[:IP]`), the bridge's connection registry (roles,
//! who gets packet-ins), the fail mode, and the packet-in sender.
//!
//! # Design
//!
//! The [`Hub`] is shared by every connection thread, the target threads and the
//! packet-in thread; it holds only small bookkeeping under one mutex (never held while
//! writing to a socket or waiting for the main thread). Per bridge it knows the
//! configured targets, the connected controllers (version, role, `miss_send_len`, the
//! writer shared with the connection's own thread), and the master election's
//! generation id.
//!
//! What a table miss does follows from who is connected, as in OVS: a bridge without
//! controllers drops misses (its rules decide everything); with controllers but none
//! connected, `standalone` switches as `normal` (OVS's fail-open) and `secure` drops; with
//! a controller connected, misses drop unless an OpenFlow 1.0 controller is among them
//! (1.0's table miss is a packet-in; 1.3 controllers install a table-miss rule instead).
//! When that changes, the hub asks the main thread to recompute it
//! ([`OfRequest::MissModeChanged`]); the main thread reads the current answer from
//! [`Hub::miss_mode`], so concurrent changes cannot leave a stale mode behind.
//!
//! Fail-open starts as in OVS (`ofproto/fail-open.c`): only once no controller has been
//! connected for [`FAIL_OPEN_AFTER`] (three probe intervals), counted from when the
//! targets were set or the last controller left; until then misses drop. The main
//! thread's once-a-second [`Hub::tick`] notices the deadline. It ends as soon as a
//! controller connects.
//!
//! Packet-ins: the PMDs copy frames into a bounded pool (`ferrovs_pmd::packet_in`); one
//! thread here takes them, applies the bridge's token bucket ([`RATE`] per second, burst
//! [`BURST`], as OVS's `controller_rate_limit` / `controller_burst_limit`; the excess is
//! counted and dropped), and writes a packet-in to every connected controller whose
//! asynchronous configuration asks for it (by default: not a slave), in its version, truncated to the action's `max_len` (a table miss: the
//! connection's `miss_send_len`). Writes to a controller time out after a short while.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use ferrovs_config::openflow::{
    AsyncConfig, Body, Field, FlowRemovedReason, Match, MatchField, Message, NO_BUFFER, PacketIn, PortReason,
    PortStatus, Role, Version, encode,
};
use ferrovs_config::{ControllerTarget, FailMode};
use ferrovs_flowcache::actions::REASON_SLOW_PATH;
use ferrovs_flowcache::slow_path::ExpiredRule;
use ferrovs_flowcache::xlate::{Expiry, MissMode};
use ferrovs_pmd::{PacketInFrame, PacketInSource};

use crate::slow_path_thread::SlowPathFrame;

use super::conn::{self, ConnWriter, Peer};
use super::{OfCall, OfRequest};

/// Packet-ins per second per bridge (OVS's default `controller_rate_limit`).
pub const RATE: u32 = 1000;
/// Burst of the token bucket (OVS: a quarter of the rate).
pub const BURST: u32 = RATE / 4;
/// A controller connection idle this long is probed with an echo request.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How long no controller must have been connected before a `standalone` bridge falls
/// back to `normal` switching (OVS: three times the probe interval).
pub const FAIL_OPEN_AFTER: Duration = Duration::from_secs(3 * PROBE_INTERVAL.as_secs());
/// Reconnection back-off: first wait, and the most.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(100);

/// `OFPCR_ROLE_*`.
const ROLE_NOCHANGE: u32 = 0;
const ROLE_EQUAL: u32 = 1;
const ROLE_MASTER: u32 = 2;
const ROLE_SLAVE: u32 = 3;
/// `OFPRRFC_STALE`, `OFPRRFC_BAD_ROLE`.
const RRFC_STALE: u16 = 0;
const RRFC_BAD_ROLE: u16 = 2;

struct ConnEntry {
    id: u64,
    version: Version,
    controller: bool,
    role: u32,
    miss_send_len: u16,
    /// Which asynchronous messages it gets (`OFPT_SET_ASYNC`; OVS's defaults at first).
    async_config: AsyncConfig,
    writer: Arc<ConnWriter>,
}

/// OVS's default asynchronous configuration: a master or equal controller gets
/// packet-ins (no_match, action), every port status and every flow-removed; a slave
/// only port statuses.
pub const DEFAULT_ASYNC: AsyncConfig =
    AsyncConfig { packet_in_mask: [0x3, 0], port_status_mask: [0x7, 0x7], flow_removed_mask: [0xf, 0] };

/// The asynchronous messages a connection may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AsyncKind {
    PacketIn,
    PortStatus,
    FlowRemoved,
}

impl ConnEntry {
    /// Whether this is a controller that asked for messages of `kind` with `reason`
    /// (management connections get none).
    fn wants(&self, kind: AsyncKind, reason: u8) -> bool {
        let masks = match kind {
            AsyncKind::PacketIn => self.async_config.packet_in_mask,
            AsyncKind::PortStatus => self.async_config.port_status_mask,
            AsyncKind::FlowRemoved => self.async_config.flow_removed_mask,
        };
        let mask = masks[usize::from(self.role == ROLE_SLAVE)];
        self.controller && u32::from(reason) < 32 && mask & (1 << reason) != 0
    }
}

struct RunningTarget {
    target: ControllerTarget,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct BridgeState {
    fail_mode: FailMode,
    targets: Vec<RunningTarget>,
    conns: Vec<ConnEntry>,
    /// Since when the bridge has targets but no controller connected.
    down_since: Option<Instant>,
    /// Fail-open is on: `down_since` is older than the hub's fail-open delay.
    fail_open: bool,
    generation: Option<u64>,
    bucket: Bucket,
}

/// Counters of one bridge's packet-ins.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PacketInCounts {
    pub sent: u64,
    pub rate_limited: u64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    counts: PacketInCounts,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket { tokens: f64::from(BURST), at: Instant::now(), counts: PacketInCounts::default() }
    }
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let dt = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * f64::from(RATE)).min(f64::from(BURST));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.counts.rate_limited += 1;
            false
        }
    }
}

#[derive(Default)]
struct HubState {
    bridges: HashMap<String, BridgeState>,
    /// Datapath port -> (bridge, its OpenFlow number): where a packet-in goes (the PMD
    /// reports the datapath's in_port; OpenFlow numbers are per bridge).
    dp_ports: HashMap<u32, (String, u32)>,
    /// Each port's link liveness (`replies::link_live`) as last seen by [`Hub::watch_links`],
    /// by bridge and OpenFlow number.
    link_up: HashMap<(String, u32), bool>,
    /// Configured datapath ids.
    dpids: HashMap<String, u64>,
}

/// The OpenFlow connections of every bridge. See the module doc.
pub struct Hub {
    state: Mutex<HubState>,
    /// [`FAIL_OPEN_AFTER`]; shorter in unit tests.
    fail_open_after: Duration,
    to_main: Sender<OfCall>,
    next_id: AtomicU64,
}

/// One controller target as `get-controller` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStatus {
    pub target: String,
    /// Controllers connected through it right now.
    pub connected: usize,
}

impl Hub {
    pub fn new(to_main: Sender<OfCall>) -> Arc<Hub> {
        Hub::with_fail_open_after(to_main, FAIL_OPEN_AFTER)
    }

    fn with_fail_open_after(to_main: Sender<OfCall>, fail_open_after: Duration) -> Arc<Hub> {
        Arc::new(Hub { state: Mutex::new(HubState::default()), fail_open_after, to_main, next_id: AtomicU64::new(1) })
    }

    /// Starts fail-open on every `standalone` bridge whose controllers have all been
    /// away for the fail-open delay (see the module doc). Called about once a second.
    pub fn tick(&self, now: Instant) {
        let due: Vec<String> = {
            let mut st = self.lock();
            st.bridges
                .iter_mut()
                .filter(|(_, b)| {
                    b.fail_mode == FailMode::Standalone
                        && !b.fail_open
                        && b.down_since.is_some_and(|t| now.duration_since(t) >= self.fail_open_after)
                })
                .map(|(name, b)| {
                    b.fail_open = true;
                    name.clone()
                })
                .collect()
        };
        for bridge in due {
            tracing::warn!(
                "OpenFlow: no controller of {bridge} for {:?}: fail-open (normal switching)",
                self.fail_open_after
            );
            self.changed(&bridge);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bridge's datapath id: configured, or derived from its name.
    pub fn dpid(&self, bridge: &str) -> u64 {
        self.lock().dpids.get(bridge).copied().unwrap_or_else(|| super::datapath_id(bridge))
    }

    pub fn set_dpid(&self, bridge: &str, dpid: u64) {
        self.lock().dpids.insert(bridge.to_string(), dpid);
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Port `port` belongs to `bridge` (packet-ins from it go to that bridge's
    /// controllers).
    pub fn port_added(&self, bridge: &str, port: u32, datapath_port: u32) {
        self.lock().dp_ports.insert(datapath_port, (bridge.to_string(), port));
    }

    /// Forgets a removed port (by its datapath number).
    pub fn port_removed(&self, datapath_port: u32) {
        self.lock().dp_ports.remove(&datapath_port);
    }

    /// Sends a `OFPPR_MODIFY` port status for every port whose link went up or down
    /// since the last call (the first call only records).
    pub fn watch_links(&self, show: &crate::protocol::ShowReply) {
        let mut changed = Vec::new();
        {
            let mut st = self.lock();
            for b in &show.bridges {
                for p in &b.ports {
                    // By bridge and number: OpenFlow numbers (LOCAL too) are each bridge's own.
                    let key = (b.name.clone(), p.number);
                    if p.link_state == crate::protocol::LinkState::Detached {
                        // Reported deleted (and added when back), not modified.
                        st.link_up.remove(&key);
                        continue;
                    }
                    let live = super::replies::link_live(p);
                    if st.link_up.insert(key, live).is_some_and(|was| was != live) {
                        changed.push((b.name.clone(), p.clone()));
                    }
                }
            }
        }
        for (bridge, port) in changed {
            self.port_status(&bridge, &port, PortReason::Modify);
        }
    }

    /// A port of `bridge` was added, deleted or changed (link state): records it and
    /// sends `OFPT_PORT_STATUS` to the bridge's controllers. For the datapath, when it
    /// adds or removes a port at run time or sees a link change.
    pub fn port_status(&self, bridge: &str, port: &crate::protocol::PortInfo, reason: PortReason) {
        let writers: Vec<(Version, Arc<ConnWriter>)> = {
            let st = self.lock();
            let Some(b) = st.bridges.get(bridge) else { return };
            b.conns
                .iter()
                .filter(|c| c.wants(AsyncKind::PortStatus, reason as u8))
                .map(|c| (c.version, c.writer.clone()))
                .collect()
        };
        let dpid = self.dpid(bridge);
        for (version, writer) in writers {
            let desc = super::replies::port_desc(port, dpid, version);
            let m = Message { version, xid: 0, body: Body::PortStatus(PortStatus { reason, desc }) };
            if let Ok(bytes) = encode(&m)
                && writer.send(&bytes).is_err()
            {
                writer.close();
            }
        }
    }

    /// Rule `r` of `bridge` (with `send_flow_rem`) is gone for `reason`: sends
    /// `OFPT_FLOW_REMOVED` to the bridge's controllers that asked for it (by default those
    /// that are not slaves; management connections get none). Returns how many
    /// controllers it was written to.
    pub fn flow_removed(&self, bridge: &str, r: &super::RuleStats, reason: FlowRemovedReason) -> usize {
        let writers: Vec<(Version, Arc<ConnWriter>)> = {
            let st = self.lock();
            let Some(b) = st.bridges.get(bridge) else { return 0 };
            b.conns
                .iter()
                .filter(|c| c.wants(AsyncKind::FlowRemoved, reason as u8))
                .map(|c| (c.version, c.writer.clone()))
                .collect()
        };
        let mut n = 0;
        for (version, writer) in writers {
            let bytes = match super::replies::flow_removed(r, reason, version).map(|m| encode(&m)) {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::warn!("OpenFlow: flow-removed of `{}` not encoded: {e}", r.rule);
                    continue;
                }
                Err(e) => {
                    tracing::debug!("OpenFlow: no {version:?} flow-removed for `{}`: {e}", r.rule);
                    continue;
                }
            };
            if writer.send(&bytes).is_ok() {
                n += 1;
            } else {
                writer.close();
            }
        }
        n
    }

    /// What a table miss does on `bridge` now (see the module doc).
    pub fn miss_mode(&self, bridge: &str) -> MissMode {
        let st = self.lock();
        let Some(b) = st.bridges.get(bridge) else { return MissMode::Drop };
        miss_mode_of(b)
    }

    fn changed(&self, bridge: &str) {
        // The reply is not waited for: the main thread reads `miss_mode` itself.
        let (reply, _) = bounded(1);
        let call = OfCall { bridge: bridge.to_string(), request: OfRequest::MissModeChanged, peer_uid: None, reply };
        let _ = self.to_main.send(call);
    }

    pub(super) fn register(&self, bridge: &str, id: u64, version: Version, controller: bool, writer: Arc<ConnWriter>) {
        {
            let mut st = self.lock();
            let b = st.bridges.entry(bridge.to_string()).or_default();
            let async_config = DEFAULT_ASYNC;
            b.conns.push(ConnEntry {
                id,
                version,
                controller,
                role: ROLE_EQUAL,
                miss_send_len: 128,
                async_config,
                writer,
            });
            if controller {
                (b.down_since, b.fail_open) = (None, false);
            }
        }
        if controller {
            tracing::info!("OpenFlow controller connected to {bridge} ({version:?})");
            self.changed(bridge);
        }
    }

    pub(super) fn unregister(&self, bridge: &str, id: u64) {
        let was_controller = {
            let mut st = self.lock();
            let Some(b) = st.bridges.get_mut(bridge) else { return };
            let before = b.conns.len();
            let c = b.conns.iter().any(|c| c.id == id && c.controller);
            b.conns.retain(|c| c.id != id);
            b.note_if_down(Instant::now());
            c && b.conns.len() < before
        };
        if was_controller {
            tracing::info!("OpenFlow controller disconnected from {bridge}");
            self.changed(bridge);
        }
    }

    pub(super) fn set_miss_send_len(&self, bridge: &str, id: u64, len: u16) {
        let mut st = self.lock();
        if let Some(c) = st.bridges.get_mut(bridge).and_then(|b| b.conns.iter_mut().find(|c| c.id == id)) {
            c.miss_send_len = len;
        }
    }

    /// `OFPT_SET_ASYNC`: the connection's asynchronous configuration.
    pub(super) fn set_async(&self, bridge: &str, id: u64, config: AsyncConfig) {
        let mut st = self.lock();
        if let Some(c) = st.bridges.get_mut(bridge).and_then(|b| b.conns.iter_mut().find(|c| c.id == id)) {
            c.async_config = config;
        }
    }

    /// `OFPT_GET_ASYNC_REQUEST`: the connection's asynchronous configuration.
    pub(super) fn get_async(&self, bridge: &str, id: u64) -> AsyncConfig {
        let st = self.lock();
        st.bridges
            .get(bridge)
            .and_then(|b| b.conns.iter().find(|c| c.id == id))
            .map_or(DEFAULT_ASYNC, |c| c.async_config)
    }

    pub(super) fn is_slave(&self, bridge: &str, id: u64) -> bool {
        let st = self.lock();
        st.bridges.get(bridge).and_then(|b| b.conns.iter().find(|c| c.id == id)).is_some_and(|c| c.role == ROLE_SLAVE)
    }

    /// OpenFlow 1.3's role request: the role now, or the `OFPRRFC_*` code refusing it.
    pub(super) fn role_request(&self, bridge: &str, id: u64, req: Role) -> Result<Role, u16> {
        let mut st = self.lock();
        let b = st.bridges.entry(bridge.to_string()).or_default();
        if !matches!(req.role, ROLE_NOCHANGE | ROLE_EQUAL | ROLE_MASTER | ROLE_SLAVE) {
            return Err(RRFC_BAD_ROLE);
        }
        if matches!(req.role, ROLE_MASTER | ROLE_SLAVE) {
            // Stale: older than the newest generation seen (by wrap-around distance).
            if let Some(g) = b.generation
                && (req.generation_id.wrapping_sub(g) as i64) < 0
            {
                return Err(RRFC_STALE);
            }
            b.generation = Some(req.generation_id);
        }
        if req.role == ROLE_MASTER {
            for c in b.conns.iter_mut().filter(|c| c.id != id && c.role == ROLE_MASTER) {
                c.role = ROLE_SLAVE;
            }
        }
        let generation_id = b.generation.unwrap_or(0);
        let c = b.conns.iter_mut().find(|c| c.id == id).ok_or(RRFC_BAD_ROLE)?;
        if req.role != ROLE_NOCHANGE {
            c.role = req.role;
        }
        Ok(Role { role: c.role, generation_id })
    }

    /// The bridge's controller targets and fail mode; connections of targets no longer
    /// listed are closed, new ones started. Errors name a target that cannot be used
    /// (e.g. a listening port in use); the others are still set.
    pub fn set_controllers(
        self: &Arc<Self>,
        bridge: &str,
        targets: &[ControllerTarget],
        fail_mode: FailMode,
    ) -> Result<(), String> {
        let mut errors = Vec::new();
        let mut closing = Vec::new();
        {
            let mut st = self.lock();
            let b = st.bridges.entry(bridge.to_string()).or_default();
            b.fail_mode = fail_mode;
            let (keep, gone): (Vec<_>, Vec<_>) =
                std::mem::take(&mut b.targets).into_iter().partition(|t| targets.contains(&t.target));
            b.targets = keep;
            for t in gone {
                t.stop.store(true, Ordering::Relaxed);
                closing.push(t.target);
            }
            let new: Vec<ControllerTarget> =
                targets.iter().filter(|t| !b.targets.iter().any(|r| r.target == **t)).copied().collect();
            for target in new {
                let stop = Arc::new(AtomicBool::new(false));
                match self.start_target(bridge, target, stop.clone()) {
                    Ok(()) => b.targets.push(RunningTarget { target, stop }),
                    Err(e) => errors.push(format!("{target}: {e}")),
                }
            }
            b.note_if_down(Instant::now());
            // Connections of removed targets: their threads notice the stop flag; close
            // the controllers' sockets now (a controller connection belongs to exactly one
            // target, but which one is not recorded: close them all if every target went).
            if b.targets.is_empty() {
                for c in b.conns.iter().filter(|c| c.controller) {
                    c.writer.close();
                }
            }
        }
        if !closing.is_empty() {
            tracing::info!("OpenFlow controllers of {bridge} removed: {closing:?}");
        }
        self.changed(bridge);
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// The bridges the hub knows.
    pub fn bridges(&self) -> Vec<String> {
        self.lock().bridges.keys().cloned().collect()
    }

    /// The bridge's targets and how many controllers are connected.
    pub fn controllers(&self, bridge: &str) -> (Vec<TargetStatus>, usize, PacketInCounts) {
        let st = self.lock();
        let Some(b) = st.bridges.get(bridge) else { return (Vec::new(), 0, PacketInCounts::default()) };
        let connected = b.conns.iter().filter(|c| c.controller).count();
        let targets = b.targets.iter().map(|t| TargetStatus { target: t.target.to_string(), connected }).collect();
        (targets, connected, b.bucket.counts)
    }

    fn start_target(
        self: &Arc<Self>,
        bridge: &str,
        target: ControllerTarget,
        stop: Arc<AtomicBool>,
    ) -> Result<(), String> {
        let hub = self.clone();
        let bridge = bridge.to_string();
        match target {
            ControllerTarget::Tcp(addr) => std::thread::Builder::new()
                .name("ferrovs-ofctl".into())
                .spawn(move || hub.run_active(&bridge, addr, &stop))
                .map(|_| ())
                .map_err(|e| e.to_string()),
            ControllerTarget::Ptcp(addr) => {
                let listener = TcpListener::bind(addr).map_err(|e| format!("listen on {addr}: {e}"))?;
                listener.set_nonblocking(true).map_err(|e| e.to_string())?;
                std::thread::Builder::new()
                    .name("ferrovs-ofctl".into())
                    .spawn(move || hub.run_passive(&bridge, listener, &stop))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn serve(&self, bridge: &str, stream: TcpStream, stop: &AtomicBool) {
        let _ = stream.set_nodelay(true);
        let peer = Peer { bridge, uid: None, may_change: true, controller: Some(PROBE_INTERVAL) };
        if let Err(e) = conn::serve(Arc::new(stream), peer, &self.to_main, self, stop) {
            tracing::info!("OpenFlow controller connection on {bridge}: {e}");
        }
    }

    /// `tcp:IP:PORT`: connect, serve until the connection ends, wait, again.
    fn run_active(&self, bridge: &str, addr: SocketAddr, stop: &AtomicBool) {
        let mut backoff = BACKOFF_MIN;
        while !stop.load(Ordering::Relaxed) {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    backoff = BACKOFF_MIN;
                    self.serve(bridge, s, stop);
                }
                Err(e) => tracing::debug!("OpenFlow controller tcp:{addr} for {bridge}: {e}"),
            }
            let until = Instant::now() + backoff;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(POLL);
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// `ptcp:PORT[:IP]`: accept controllers, each served on its own thread.
    fn run_passive(self: Arc<Self>, bridge: &str, listener: TcpListener, stop: &Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let (hub, bridge, stop) = (self.clone(), bridge.to_string(), stop.clone());
                    let _ = std::thread::Builder::new()
                        .name("ferrovs-ofctl".into())
                        .spawn(move || hub.serve(&bridge, s, &stop));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(e) => {
                    tracing::warn!("OpenFlow listener for {bridge}: {e}");
                    std::thread::sleep(POLL);
                }
            }
        }
    }

    /// Sends one packet-in to the bridge's controllers (rate-limited). Returns how many
    /// controllers it was written to.
    fn deliver(&self, pin: &PacketInFrame) -> usize {
        let (targets, in_port): (Vec<(Version, u16, Arc<ConnWriter>)>, u32) = {
            let mut st = self.lock();
            let Some((bridge, in_port)) = st.dp_ports.get(&pin.in_port).cloned() else { return 0 };
            let Some(b) = st.bridges.get_mut(&bridge) else { return 0 };
            let eligible: Vec<_> = b
                .conns
                .iter()
                .filter(|c| c.wants(AsyncKind::PacketIn, pin.reason))
                .map(|c| (c.version, c.miss_send_len, c.writer.clone()))
                .collect();
            if eligible.is_empty() || !b.bucket.take(Instant::now()) {
                return 0;
            }
            b.bucket.counts.sent += 1;
            (eligible, in_port)
        };
        let mut n = 0;
        for (version, miss_send_len, writer) in targets {
            let max_len =
                if pin.reason == ferrovs_flowcache::actions::REASON_NO_MATCH { miss_send_len } else { pin.max_len };
            let Ok(bytes) = encode(&packet_in_message(pin, in_port, version, max_len)) else { continue };
            if writer.send(&bytes).is_ok() {
                n += 1;
            } else {
                writer.close();
            }
        }
        n
    }
}

impl BridgeState {
    /// Starts the fail-open clock when the bridge has targets and no controller (and
    /// stops it when it has no targets).
    fn note_if_down(&mut self, now: Instant) {
        if self.targets.is_empty() {
            (self.down_since, self.fail_open) = (None, false);
        } else if !self.conns.iter().any(|c| c.controller) && self.down_since.is_none() {
            self.down_since = Some(now);
        }
    }
}

fn miss_mode_of(b: &BridgeState) -> MissMode {
    if b.targets.is_empty() {
        return MissMode::Drop;
    }
    let mut controllers = b.conns.iter().filter(|c| c.controller).peekable();
    if controllers.peek().is_none() {
        return match b.fail_mode {
            FailMode::Standalone if b.fail_open => MissMode::FailOpen,
            FailMode::Standalone | FailMode::Secure => MissMode::Drop,
        };
    }
    if controllers.any(|c| c.version == Version::Of10) { MissMode::Controller } else { MissMode::Drop }
}

/// The packet-in message for `pin`, received on the bridge's OpenFlow port `in_port`, in
/// `version`, at most `max_len` bytes of the frame (65535: all of it). Its match is what
/// OVS's holds of the flow: the in_port (a written one, as the flow had it), and under
/// OpenFlow 1.3 (whose packet-in has a match) the registers and the metadata that are
/// not zero.
pub fn packet_in_message(pin: &PacketInFrame, in_port: u32, version: Version, max_len: u16) -> Message {
    let n = if max_len == u16::MAX { pin.data.len() } else { pin.data.len().min(usize::from(max_len)) };
    let (table_id, cookie) = if version == Version::Of13 { (pin.table, pin.cookie) } else { (0, 0) };
    // The flow's in_port in the 32-bit numbers of the codec (OFPP_NONE is 0xffffffff):
    // what `OXM_OF_IN_PORT` reads.
    let oxm = ferrovs_config::rules::PacketField::InPortOxm;
    let flow_in_port =
        pin.flow.in_port.map_or(u128::from(in_port), |p| oxm.in_port_value(p).expect("an in_port field"));
    let mut fields = vec![MatchField::exact(Field::InPort, flow_in_port)];
    if version == Version::Of13 {
        let regs = pin.flow.regs.iter().enumerate().filter(|&(_, &v)| v != 0);
        fields.extend(regs.map(|(n, &v)| MatchField::exact(Field::Reg(n as u8), u128::from(v))));
        if pin.flow.metadata != 0 {
            fields.push(MatchField::exact(Field::Metadata, u128::from(pin.flow.metadata)));
        }
    }
    let body = PacketIn {
        buffer_id: NO_BUFFER,
        total_len: u16::try_from(pin.total_len).unwrap_or(u16::MAX),
        reason: pin.reason,
        table_id,
        cookie,
        matches: Match { fields },
        data: pin.data[..n].to_vec(),
    };
    Message { version, xid: 0, body: Body::PacketIn(body) }
}

/// Sends a flow-removed for every timed-out `send_flow_rem` rule the slow path reports,
/// until `stop`.
pub fn run_flow_removed(hub: Arc<Hub>, expired: Receiver<ExpiredRule>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(e) = expired.recv_timeout(POLL) else { continue };
        let reason = match e.reason {
            Expiry::Idle => FlowRemovedReason::IdleTimeout,
            Expiry::Hard => FlowRemovedReason::HardTimeout,
        };
        hub.flow_removed(&e.bridge, &super::RuleStats::from(e.dump), reason);
    }
}

/// Runs the packet-in sender until `stop`: see the module doc. Packets a slow-path
/// megaflow sent up (reason `REASON_SLOW_PATH`) are no packet-ins: they go, whole, to the
/// slow path (`slow_path`), waiting for room there.
pub fn run_packet_ins(hub: Arc<Hub>, source: PacketInSource, slow_path: Sender<SlowPathFrame>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Some(pin) = source.recv_timeout(POLL) else { continue };
        if pin.reason == REASON_SLOW_PATH {
            if pin.data.len() == pin.total_len as usize {
                let f = SlowPathFrame { in_port: pin.in_port, frame: pin.data.clone() };
                if slow_path.send_timeout(f, SLOW_PATH_WAIT).is_err() {
                    tracing::warn!("a slow-path packet was dropped: the slow path is not taking them");
                }
            } else {
                tracing::warn!("a slow-path packet of {} bytes was dropped: longer than a copy", pin.total_len);
            }
        } else {
            hub.deliver(&pin);
        }
        source.recycle(pin.data);
    }
}

/// How long the packet-in thread waits for room in the slow path's frame queue.
const SLOW_PATH_WAIT: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    /// A link change of a port is a `PORT_STATUS` (modify) to the bridge's controllers;
    /// the first look only records.
    #[test]
    fn link_changes_are_port_statuses() {
        use crate::protocol::LinkState;
        use std::io::Read;
        let (tx, _rx) = crossbeam_channel::unbounded();
        let hub = Hub::new(tx);
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let writer = Arc::new(ConnWriter::new(Arc::new(theirs)));
        hub.register("br0", 1, Version::Of13, true, writer);
        let mut show = crate::protocol::samples::show();
        hub.watch_links(&show);
        let port = &mut show.bridges[0].ports[1];
        port.link_up = !port.link_up;
        port.link_state = if port.link_up { LinkState::Up } else { LinkState::Down };
        hub.watch_links(&show);
        let mut buf = [0u8; 4096];
        let n = (&ours).read(&mut buf).unwrap();
        let (m, used) = ferrovs_config::openflow::decode(&buf[..n]).unwrap();
        assert_eq!(used, n, "exactly one message");
        let Body::PortStatus(s) = m.body else { panic!("{m:?}") };
        assert_eq!((s.reason, s.desc.port_no), (PortReason::Modify, 2));
        assert_eq!(s.desc.state & 1 == 0, show.bridges[0].ports[1].link_up);
    }

    /// The miss mode follows who is connected: see the module doc.
    #[test]
    fn miss_mode_follows_targets_connections_and_fail_mode() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let after = Duration::from_millis(200);
        let hub = Hub::with_fail_open_after(tx, after);
        let conn = || {
            let (_ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
            Arc::new(ConnWriter::new(Arc::new(theirs)))
        };
        assert_eq!(hub.miss_mode("br0"), MissMode::Drop, "no controllers: the rules decide");
        // A target nobody listens on (port 9 on loopback refuses at once): fail-open only
        // after the delay, noticed by the tick.
        let target = ControllerTarget::parse("tcp:127.0.0.1:9").unwrap();
        hub.set_controllers("br0", &[target], FailMode::Standalone).unwrap();
        hub.tick(Instant::now());
        assert_eq!(hub.miss_mode("br0"), MissMode::Drop, "not yet: the controllers may still answer");
        hub.tick(Instant::now() + after);
        assert_eq!(hub.miss_mode("br0"), MissMode::FailOpen);
        hub.set_controllers("br0", &[target], FailMode::Secure).unwrap();
        assert_eq!(hub.miss_mode("br0"), MissMode::Drop);
        hub.register("br0", 1, Version::Of13, true, conn());
        assert_eq!(hub.miss_mode("br0"), MissMode::Drop, "1.3: the controller installs its table-miss rule");
        hub.register("br0", 2, Version::Of10, true, conn());
        assert_eq!(hub.miss_mode("br0"), MissMode::Controller, "1.0: a miss is a packet-in");
        // A management connection is no controller.
        hub.unregister("br0", 2);
        hub.register("br0", 3, Version::Of10, false, conn());
        assert_eq!(hub.miss_mode("br0"), MissMode::Drop);
        hub.unregister("br0", 1);
        hub.set_controllers("br0", &[target], FailMode::Standalone).unwrap();
        assert_eq!(hub.miss_mode("br0"), MissMode::Drop, "the clock restarts when the last controller leaves");
        hub.tick(Instant::now() + after);
        assert_eq!(hub.miss_mode("br0"), MissMode::FailOpen);
        hub.set_controllers("br0", &[], FailMode::Standalone).unwrap();
        assert_eq!(hub.miss_mode("br0"), MissMode::Drop);
        // Every change asked the main thread to re-read the mode.
        let asked = rx.try_iter().filter(|c| c.request == OfRequest::MissModeChanged).count();
        assert!(asked >= 7, "{asked}");
    }

    /// A flow-removed goes to the equal and master controllers, in each one's version,
    /// with the rule's cookie, priority, match, timeouts, duration and counters; not to
    /// slaves nor management connections.
    #[test]
    fn flow_removed_goes_to_non_slave_controllers_in_their_version() {
        use std::io::Read;
        let (tx, _rx) = crossbeam_channel::unbounded();
        let hub = Hub::new(tx);
        let conn = || {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
            ours.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            (ours, Arc::new(ConnWriter::new(Arc::new(theirs))))
        };
        let (equal10, w) = conn();
        hub.register("br0", 1, Version::Of10, true, w);
        let (master13, w) = conn();
        hub.register("br0", 2, Version::Of13, true, w);
        let (slave13, w) = conn();
        hub.register("br0", 3, Version::Of13, true, w);
        let (mgmt, w) = conn();
        hub.register("br0", 4, Version::Of13, false, w);
        hub.role_request("br0", 2, Role { role: ROLE_MASTER, generation_id: 1 }).unwrap();
        hub.role_request("br0", 3, Role { role: ROLE_SLAVE, generation_id: 1 }).unwrap();
        let r = super::super::RuleStats {
            rule: ferrovs_config::parse_flow(
                "table=0,cookie=0x2a,priority=7,idle_timeout=5,hard_timeout=1,send_flow_rem,ip,nw_dst=198.18.0.2,actions=drop",
            )
            .unwrap(),
            n_packets: 3,
            n_bytes: 180,
            duration_ms: 1_250,
            idle_ms: 0,
        };
        assert_eq!(hub.flow_removed("br0", &r, FlowRemovedReason::HardTimeout), 2);
        let read = |s: &std::os::unix::net::UnixStream| {
            let mut buf = [0u8; 4096];
            let n = (&*s).read(&mut buf).unwrap();
            let (m, used) = ferrovs_config::openflow::decode(&buf[..n]).unwrap();
            assert_eq!(used, n, "exactly one message");
            m
        };
        for (s, v) in [(&equal10, Version::Of10), (&master13, Version::Of13)] {
            let m = read(s);
            assert_eq!(m.version, v);
            let Body::FlowRemoved(f) = m.body else { panic!("{m:?}") };
            assert_eq!((f.cookie, f.priority, f.reason), (0x2a, 7, FlowRemovedReason::HardTimeout));
            assert_eq!((f.duration_sec, f.duration_nsec, f.idle_timeout), (1, 250_000_000, 5));
            assert_eq!((f.packet_count, f.byte_count), (3, 180));
            let hard = if v == Version::Of13 { 1 } else { 0 };
            assert_eq!(f.hard_timeout, hard, "1.0 has no hard_timeout field");
            let want = ferrovs_config::openflow::convert::match_to_wire(
                &r.rule.matches,
                if v == Version::Of13 {
                    ferrovs_config::openflow::convert::MatchForm::Tlv
                } else {
                    ferrovs_config::openflow::convert::MatchForm::Of10
                },
            )
            .unwrap();
            assert_eq!(f.matches, want);
            assert!(!f.matches.fields.is_empty());
        }
        for s in [&slave13, &mgmt] {
            let mut buf = [0u8; 64];
            let got = (&*s).read(&mut buf);
            assert!(got.is_err(), "nothing for a slave or a management connection: {got:?}");
        }
        assert_eq!(hub.flow_removed("br1", &r, FlowRemovedReason::Delete), 0, "another bridge");
        // set_async: the master asks for deletes only, the slave for every reason.
        assert_eq!(hub.get_async("br0", 2), DEFAULT_ASYNC);
        hub.set_async("br0", 2, AsyncConfig { flow_removed_mask: [1 << 2, 0], ..DEFAULT_ASYNC });
        hub.set_async("br0", 3, AsyncConfig { flow_removed_mask: [0, 0xf], ..DEFAULT_ASYNC });
        assert_eq!(hub.get_async("br0", 3).flow_removed_mask, [0, 0xf]);
        // The 1.0 equal controller (defaults) and the slave; not the master.
        assert_eq!(hub.flow_removed("br0", &r, FlowRemovedReason::HardTimeout), 2);
        // The three controllers.
        assert_eq!(hub.flow_removed("br0", &r, FlowRemovedReason::Delete), 3);
    }

    #[test]
    fn the_token_bucket_allows_a_burst_then_the_rate() {
        let mut b = Bucket::default();
        let t0 = b.at;
        let passed = (0..BURST + 10).filter(|_| b.take(t0)).count();
        assert_eq!(passed, BURST as usize);
        assert_eq!(b.counts.rate_limited, 10);
        // 10 ms later: RATE/100 more.
        let passed = (0..100).filter(|_| b.take(t0 + Duration::from_millis(10))).count();
        assert_eq!(passed, (RATE / 100) as usize);
    }

    #[test]
    fn packet_ins_carry_in_port_and_truncate() {
        let pin = PacketInFrame {
            in_port: 7,
            reason: 1,
            table: 2,
            cookie: 9,
            flow: Default::default(),
            max_len: 3,
            total_len: 5,
            data: vec![1, 2, 3, 4, 5],
        };
        let m = packet_in_message(&pin, pin.in_port, Version::Of13, 3);
        let Body::PacketIn(p) = &m.body else { panic!() };
        assert_eq!(
            (p.buffer_id, p.total_len, p.table_id, p.cookie, p.data.as_slice()),
            (NO_BUFFER, 5, 2, 9, &[1u8, 2, 3][..])
        );
        let back = ferrovs_config::openflow::decode(&encode(&m).unwrap()).unwrap().0;
        assert_eq!(back, m);
        let m10 = packet_in_message(&pin, pin.in_port, Version::Of10, u16::MAX);
        let back = ferrovs_config::openflow::decode(&encode(&m10).unwrap()).unwrap().0;
        assert_eq!(back, m10);
    }

    /// As OVS's: the written in_port (LOCAL, OFPP_NONE in 32 bits), and under 1.3 the
    /// registers and the metadata that are not zero; 1.0's packet-in has no room for them.
    #[test]
    fn packet_ins_report_the_flow_s_registers_metadata_and_in_port() {
        let mut flow = ferrovs_flowcache::actions::PacketInFlow::default();
        flow.regs[0] = 5;
        flow.regs[15] = 0xffff_ffff;
        flow.metadata = 0x10;
        flow.in_port = Some(ferrovs_config::LOCAL_PORT);
        let pin = PacketInFrame {
            in_port: 7,
            reason: 1,
            table: 2,
            cookie: 9,
            flow,
            max_len: u16::MAX,
            total_len: 1,
            data: vec![1],
        };
        let m = packet_in_message(&pin, pin.in_port, Version::Of13, u16::MAX);
        let Body::PacketIn(p) = &m.body else { panic!() };
        let want = vec![
            MatchField::exact(Field::InPort, 0xffff_fffe),
            MatchField::exact(Field::Reg(0), 5),
            MatchField::exact(Field::Reg(15), 0xffff_ffff),
            MatchField::exact(Field::Metadata, 0x10),
        ];
        assert_eq!(p.matches.fields, want);
        assert_eq!(ferrovs_config::openflow::decode(&encode(&m).unwrap()).unwrap().0, m);
        let none =
            PacketInFrame { flow: ferrovs_flowcache::actions::PacketInFlow { in_port: Some(0xffff), ..flow }, ..pin };
        let m10 = packet_in_message(&none, none.in_port, Version::Of10, u16::MAX);
        let Body::PacketIn(p) = &m10.body else { panic!() };
        assert_eq!(p.matches.fields, vec![MatchField::exact(Field::InPort, 0xffff_ffff)]);
        assert_eq!(ferrovs_config::openflow::decode(&encode(&m10).unwrap()).unwrap().0, m10);
    }
}
