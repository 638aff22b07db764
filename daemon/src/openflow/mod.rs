//! The OpenFlow management channel: one unix socket per bridge, `BRIDGE.mgmt` in the
//! directory of the control socket (as OVS keeps `br0.mgmt` in its run directory), on
//! which the unmodified `ovs-ofctl` manages the bridge over OpenFlow 1.0 or 1.3:
//! `ovs-ofctl dump-flows unix:/run/ferrovs/br0.mgmt`.
//!
//! # Processing model
//!
//! Each connection is served on its own thread (`socket_server`). The thread owns the
//! connection's state (negotiated version, Nicira flow format, whether flow-mods carry
//! table ids, switch config), decodes messages with the sans-IO codec
//! (`ferrovs_config::openflow`), converts matches and actions into the rule model
//! (`openflow::convert`), and sends typed [`OfRequest`]s to the daemon's main thread,
//! which owns the datapath, over a channel, as the control socket does. The main thread
//! answers each with typed data ([`OfAnswer`]); the connection thread builds and writes
//! the OpenFlow replies. A connection's messages are handled strictly in order, and a
//! rule change is answered only after every PMD applied it (the slow path's rule-change
//! barrier), so a `BARRIER_REPLY` sent after the previous messages were handled means
//! exactly what OpenFlow says.
//!
//! Rule changes are written back to the config like `ferrovs-ctl`'s (the daemon's
//! `persist`), so a restart keeps rules added over OpenFlow.
//!
//! Access: the sockets are created mode 0660 like the control socket, and changes
//! (flow-mod, port-mod) from a peer that is neither root nor the daemon's user are
//! refused with `OFPFMFC_EPERM`.
//!
//! Controllers (`tcp:`/`ptcp:` targets from the config or `ferrovs-ctl set-controller`)
//! are served by the same connection code, registered in the [`controller::Hub`] (roles,
//! packet-ins, fail mode; see that module). A packet-out is translated by the slow path
//! and executed by a PMD; a slave controller may not change rules or send packets.
//!
//! # Not supported
//!
//! Groups: only `all` and `indirect` (select/fast-failover refused with
//! `OFPGMFC_BAD_TYPE`); they are written back to the config with the rules (a flow-mod
//! naming a missing group is refused with `OFPBAC_BAD_OUT_GROUP`); group statistics
//! are derived from the rules that name a group (see [`GroupInfo`]). Roles over
//! OpenFlow 1.0 (Nicira role requests), `OFPFF_CHECK_OVERLAP` (accepted, not acted on),
//! buffered packet-ins. `set_async` masks are honoured (per connection, OVS's defaults
//! until set; see `controller::DEFAULT_ASYNC`).
//!
//! Flow-removed: a rule keeps `OFPFF_SEND_FLOW_REM` as its `send_flow_rem` flag; when
//! such a rule times out (the slow path reports it, see `controller::run_flow_removed`)
//! or a flow-mod deletes it ([`answer`]), its controllers get `OFPT_FLOW_REMOVED`
//! ([`controller::Hub::flow_removed`]). `port_mod` changes `OFPPC_PORT_DOWN` only, as
//! `set-port PORT admin=down|up` does (written back; controllers get a port status); the
//! other config bits are refused (`OFPPMFC_BAD_CONFIG` in 1.3, `OFPBRC_EPERM` in 1.0,
//! which lacks that code; `OFPPMFC_BAD_PORT` for a port the bridge lacks; a port-mod that
//! changes nothing is accepted).

mod conn;
#[cfg(test)]
mod connection_tests;
pub mod controller;
mod replies;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use controller::Hub;
use ferrovs_pmd::PacketInSource;

use crossbeam_channel::{Receiver, Sender, bounded};
use ferrovs_config::Group;
use ferrovs_config::openflow::FlowRemovedReason;
use ferrovs_config::{Config, Rule};
use ferrovs_flowcache::slow_path::{ExpiredRule, GroupChange, GroupError};

use crate::datapath::Datapath;
use crate::protocol::PortInfo;
use crate::slow_path_thread::SlowPathFrame;
use crate::socket_server::SocketServer;

pub use ferrovs_flowcache::slow_path::{ChangeKind, FlowChange};

/// The management socket of `bridge`, beside the control socket.
pub fn mgmt_socket(control_socket: &Path, bridge: &str) -> PathBuf {
    control_socket.with_file_name(format!("{bridge}.mgmt"))
}

/// The datapath id of a bridge: stable across restarts, derived from its name (FNV-1a,
/// top 16 bits clear as OVS's "implementation defined" part).
pub fn datapath_id(bridge: &str) -> u64 {
    let h = bridge.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    h & 0x0000_ffff_ffff_ffff
}

/// What a connection asks the main thread for.
#[derive(Debug, Clone, PartialEq)]
pub enum OfRequest {
    /// Change the bridge's rules.
    FlowMod(Box<FlowChange>),
    /// Add these rules as one change (a run of adds received together).
    AddRules(Vec<Rule>),
    /// The bridge's rules with their counters.
    Flows,
    /// How many rules each table of the bridge has (table statistics).
    TableCounts,
    /// The bridge's ports with their counters.
    Ports,
    /// Execute a packet-out.
    PacketOut(Box<crate::slow_path_thread::PacketOutRequest>),
    /// The bridge's connected controllers changed: apply [`Hub::miss_mode`].
    MissModeChanged,
    /// Change a group.
    GroupMod(GroupChange),
    /// The bridge's groups with the number of rules using each.
    Groups,
    /// Set port `port` administratively down or up (a port-mod's `OFPPC_PORT_DOWN`): the
    /// main loop applies it as `set-port PORT admin=down|up` (desired state, written back).
    PortMod { port: String, down: bool },
}

/// A rule with its counters, as the switch reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleStats {
    pub rule: Rule,
    pub n_packets: u64,
    pub n_bytes: u64,
    pub duration_ms: u64,
    pub idle_ms: u64,
}

impl From<ferrovs_flowcache::slow_path::RuleDump> for RuleStats {
    fn from(d: ferrovs_flowcache::slow_path::RuleDump) -> RuleStats {
        RuleStats {
            rule: d.rule,
            n_packets: d.packets,
            n_bytes: d.bytes,
            duration_ms: d.duration_ms,
            idle_ms: d.idle_ms,
        }
    }
}

/// The main thread's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum OfAnswer {
    /// The change is applied on every PMD (and written back).
    Changed,
    Flows(Vec<RuleStats>),
    /// Rules per table, by table number.
    TableCounts(Vec<u32>),
    Ports(Vec<PortInfo>),
    /// A group change the switch refused (nothing changed).
    GroupRefused(GroupError),
    /// A rule change the switch refused with this error (nothing changed).
    Refused(ferrovs_config::openflow::OfpError),
    /// Each group with its use.
    Groups(Vec<GroupInfo>),
}

/// A group of a bridge as its statistics show it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInfo {
    pub id: u32,
    pub group: Group,
    /// The rules that name it.
    pub ref_count: u32,
    /// Packets and bytes the rules that name it now sent to it (each `group:ID` action
    /// of a rule once per packet of the rule). Traffic of rules deleted since and of
    /// packet-outs is not in it: groups have no counters of their own.
    pub packets: u64,
    pub bytes: u64,
}

/// One request for the main thread, with where the answer goes.
pub struct OfCall {
    pub bridge: String,
    pub request: OfRequest,
    pub peer_uid: Option<u32>,
    pub reply: Sender<Result<OfAnswer, String>>,
}

/// The management sockets of every bridge and the controller connections. Dropping it
/// stops accepting and removes the socket files (controller threads are told to stop).
pub struct OpenFlowServers {
    servers: Vec<(String, SocketServer)>,
    control_socket: PathBuf,
    calls: Sender<OfCall>,
    /// `[control] socket_group`'s gid, given to every management socket.
    group: Option<u32>,
    hub: Arc<Hub>,
    stop: Arc<AtomicBool>,
}

impl OpenFlowServers {
    /// Binds `BRIDGE.mgmt` for each bridge of `config` beside its control socket; calls
    /// arrive on the returned receiver.
    pub fn bind(config: &Config, group: Option<u32>) -> std::io::Result<(OpenFlowServers, Receiver<OfCall>)> {
        let (tx, rx) = bounded::<OfCall>(64);
        let hub = Hub::new(tx.clone());
        let mut servers = OpenFlowServers {
            servers: Vec::new(),
            control_socket: config.control.socket.clone(),
            calls: tx,
            group,
            hub,
            stop: Arc::new(AtomicBool::new(false)),
        };
        for b in &config.bridges {
            servers.add_bridge(&b.name, b.datapath_id)?;
        }
        Ok((servers, rx))
    }

    /// Binds the management socket of a bridge (at start, or added at run time).
    pub fn add_bridge(&mut self, bridge: &str, datapath_id: Option<u64>) -> std::io::Result<()> {
        if let Some(id) = datapath_id {
            self.hub.set_dpid(bridge, id);
        }
        let path = mgmt_socket(&self.control_socket, bridge);
        let (tx, bridge2, hub2) = (self.calls.clone(), bridge.to_string(), self.hub.clone());
        let serve = move |stream: UnixStream, uid: Option<u32>, stop: &AtomicBool| {
            let may_change = crate::socket_server::may_change(uid);
            let peer = conn::Peer { bridge: &bridge2, uid, may_change, controller: None };
            if let Err(e) = conn::serve(Arc::new(stream), peer, &tx, &hub2, stop) {
                tracing::debug!("OpenFlow connection on {bridge2}: {e}");
            }
        };
        let server = SocketServer::bind(&path, "ferrovs-of", Box::new(serve))
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if let Some(gid) = self.group {
            server.share_with_group(gid)?;
        }
        self.servers.push((bridge.to_string(), server));
        Ok(())
    }

    /// Closes the management socket and the controller connections of a removed bridge.
    pub fn remove_bridge(&mut self, bridge: &str) {
        let _ = self.hub.set_controllers(bridge, &[], ferrovs_config::FailMode::default());
        self.servers.retain(|(b, _)| b != bridge);
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Starts the controller connections of every bridge of `config` and the packet-in
    /// sender reading `packet_in` (whose in_ports are `datapath_numbers`' values).
    pub fn start_controllers(
        &self,
        config: &Config,
        datapath_numbers: &std::collections::HashMap<String, u32>,
        packet_in: Option<(PacketInSource, Sender<SlowPathFrame>)>,
        expired: Option<Receiver<ExpiredRule>>,
    ) -> Result<(), String> {
        for b in &config.bridges {
            for p in &b.ports {
                self.hub.port_added(&b.name, p.number, datapath_numbers.get(&p.name).copied().unwrap_or(p.number));
            }
            if !b.controllers.is_empty() {
                self.hub
                    .set_controllers(&b.name, &b.controllers, b.fail_mode)
                    .map_err(|e| format!("bridge {}: {e}", b.name))?;
            }
        }
        if let Some((source, slow_path)) = packet_in {
            let (hub, stop) = (self.hub.clone(), self.stop.clone());
            std::thread::Builder::new()
                .name("ferrovs-pktin".into())
                .spawn(move || controller::run_packet_ins(hub, source, slow_path, stop))
                .map_err(|e| format!("packet-in thread: {e}"))?;
        }
        if let Some(expired) = expired {
            let (hub, stop) = (self.hub.clone(), self.stop.clone());
            std::thread::Builder::new()
                .name("ferrovs-flowrem".into())
                .spawn(move || controller::run_flow_removed(hub, expired, stop))
                .map_err(|e| format!("flow-removed thread: {e}"))?;
        }
        Ok(())
    }
}

impl Drop for OpenFlowServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for b in self.hub.bridges() {
            let _ = self.hub.set_controllers(&b, &[], ferrovs_config::FailMode::default());
        }
    }
}

/// Answers a control request about controllers (`None`: not such a request).
pub fn controller_request(
    hub: &Arc<Hub>,
    config: &Config,
    req: &crate::protocol::Request,
) -> Option<Result<crate::protocol::Reply, String>> {
    use crate::protocol::{ControllersReply, Reply, Request};
    let known =
        |bridge: &str| config.bridges.iter().find(|b| b.name == bridge).ok_or_else(|| format!("no bridge `{bridge}`"));
    Some(match req {
        Request::SetController { bridge, targets } => known(bridge).and_then(|b| {
            let parsed =
                targets.iter().map(|t| ferrovs_config::ControllerTarget::parse(t)).collect::<Result<Vec<_>, _>>()?;
            hub.set_controllers(bridge, &parsed, b.fail_mode).map(|()| Reply::SetController)
        }),
        Request::DelController { bridge } => {
            known(bridge).and_then(|b| hub.set_controllers(bridge, &[], b.fail_mode).map(|()| Reply::DelController))
        }
        Request::GetController { bridge } => known(bridge).map(|_| {
            let (targets, connected, counts) = hub.controllers(bridge);
            Reply::GetController(ControllersReply {
                targets: targets.into_iter().map(|t| t.target).collect(),
                connected: connected as u64,
                packet_ins_sent: counts.sent,
                packet_ins_rate_limited: counts.rate_limited,
            })
        }),
        _ => return None,
    })
}

/// Answers one call on the main thread; the bridge's rules changed when it says so
/// (the caller writes them back).
pub fn answer(dp: &mut Datapath, config: &Config, hub: &Hub, call: &OfCall) -> (Result<OfAnswer, String>, bool) {
    let bridge = &call.bridge;
    match &call.request {
        OfRequest::PacketOut(out) => (dp.packet_out(bridge, (**out).clone()).map(|()| OfAnswer::Changed), false),
        OfRequest::MissModeChanged => {
            let mode = hub.miss_mode(bridge);
            tracing::info!("OpenFlow: table misses on {bridge}: {mode:?}");
            (dp.set_miss_mode(bridge, mode).map(|()| OfAnswer::Changed), false)
        }
        OfRequest::Ports => {
            let show = dp.show(config);
            let ports = show.bridges.into_iter().find(|b| &b.name == bridge).map(|b| b.ports).unwrap_or_default();
            (Ok(OfAnswer::Ports(ports)), false)
        }
        OfRequest::Flows => (dp.rules(bridge).map(OfAnswer::Flows), false),
        // Counted by the slow path: `ovs-ofctl` asks for table statistics before every
        // flow-mod, and reading every rule with its counters cost it 0.3 s at 100,000.
        OfRequest::TableCounts => (dp.rules_per_table(bridge).map(OfAnswer::TableCounts), false),
        // Needs the config file and the OpenFlow servers: the main loop applies it.
        OfRequest::PortMod { .. } => (Err("a port-mod is applied by the main loop".into()), false),
        OfRequest::GroupMod(change) => {
            tracing::info!(target: "ferrovs_daemon::control", uid = ?call.peer_uid, "change (OpenFlow on {bridge}): group {change:?}");
            // The rules a group delete takes are deletions too (OpenFlow 1.3 has no
            // `OFPRR_GROUP_DELETE`; OVS sends `delete`).
            let applied = notifying_deletes(dp, hub, |dp| dp.group_mod(bridge, change.clone()));
            match applied {
                Ok(Ok(())) => (Ok(OfAnswer::Changed), true),
                Ok(Err(e)) => (Ok(OfAnswer::GroupRefused(e)), false),
                Err(e) => (Err(e), false),
            }
        }
        OfRequest::Groups => {
            let answer = dp.groups(bridge).and_then(|groups| {
                let rules = dp.rules(bridge)?;
                let info = |(id, group): (&u32, &Group)| {
                    let mut g = GroupInfo { id: *id, group: group.clone(), ref_count: 0, packets: 0, bytes: 0 };
                    for r in &rules {
                        let times = r.rule.groups().filter(|x| x == id).count() as u64;
                        if times > 0 {
                            g.ref_count += 1;
                            g.packets += times * r.n_packets;
                            g.bytes += times * r.n_bytes;
                        }
                    }
                    g
                };
                Ok(OfAnswer::Groups(groups.iter().map(info).collect()))
            });
            (answer, false)
        }
        OfRequest::AddRules(rules) if missing_group(dp, bridge, rules).is_some() => {
            (Ok(OfAnswer::Refused(ferrovs_config::openflow::OfpError::BadOutGroup)), false)
        }
        OfRequest::FlowMod(change)
            if !matches!(change.kind, ChangeKind::Delete { .. })
                && missing_group(dp, bridge, std::slice::from_ref(&change.rule)).is_some() =>
        {
            (Ok(OfAnswer::Refused(ferrovs_config::openflow::OfpError::BadOutGroup)), false)
        }
        OfRequest::AddRules(rules) => {
            tracing::info!(target: "ferrovs_daemon::control", uid = ?call.peer_uid, "change (OpenFlow on {bridge}): add {} rule(s)", rules.len());
            (dp.add_rules(bridge, rules.clone()).map(|()| OfAnswer::Changed), true)
        }
        OfRequest::FlowMod(change) => {
            tracing::info!(target: "ferrovs_daemon::control", uid = ?call.peer_uid, "change (OpenFlow on {bridge}): {:?} {}", change.kind, change.rule);
            if change.kind == ChangeKind::Add {
                return (dp.add_rules(bridge, vec![change.rule.clone()]).map(|()| OfAnswer::Changed), true);
            }
            // Applied by the slow path (selection by the identity index, changed in place):
            // no copy of the rules here.
            match dp.flow_mod(bridge, (**change).clone()) {
                Ok(done) => {
                    for r in done.removed {
                        hub.flow_removed(bridge, &RuleStats::from(r), FlowRemovedReason::Delete);
                    }
                    (Ok(OfAnswer::Changed), done.changed)
                }
                Err(e) => (Err(e), false),
            }
        }
    }
}

/// Runs `change`, a rule change not made by a flow-mod (`ferrovs-ctl del-flows`, a
/// group delete, a reload), then sends `OFPT_FLOW_REMOVED` (reason delete) for the
/// `send_flow_rem` rules it deleted to their bridges' controllers, as OVS does for every
/// deletion. The slow path names those rules as it deletes them (`take_deleted`): one
/// short request, whatever the size of the rule tables.
pub fn notifying_deletes<T>(
    dp: &mut Datapath,
    hub: &Hub,
    change: impl FnOnce(&mut Datapath) -> Result<T, String>,
) -> Result<T, String> {
    let outcome = change(dp);
    match dp.take_deleted() {
        Ok(deleted) => {
            for d in deleted {
                hub.flow_removed(&d.bridge, &RuleStats::from(d.dump), FlowRemovedReason::Delete);
            }
        }
        Err(e) => tracing::warn!("flow-removed for deleted rules not sent: {e}"),
    }
    outcome
}

/// A group that one of `rules` names and `bridge` lacks (OVS refuses such a flow-mod
/// with `OFPBAC_BAD_OUT_GROUP`; the slow path would refuse the change too, but without
/// the OpenFlow code).
fn missing_group(dp: &mut Datapath, bridge: &str, rules: &[Rule]) -> Option<u32> {
    let mut named = rules.iter().flat_map(Rule::groups).peekable();
    named.peek()?;
    let groups = dp.groups(bridge).ok()?;
    named.find(|g| !groups.contains_key(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datapath_ids_are_stable_and_differ_per_bridge() {
        assert_eq!(datapath_id("br0"), datapath_id("br0"));
        assert_ne!(datapath_id("br0"), datapath_id("br1"));
        assert_eq!(datapath_id("br0") >> 48, 0);
        assert_eq!(mgmt_socket(Path::new("run/ferrovsd.sock"), "br0"), PathBuf::from("run/br0.mgmt"));
    }
}
