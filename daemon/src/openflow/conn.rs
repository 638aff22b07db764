//! One OpenFlow connection: hello and version negotiation, framing, the connection's
//! state (see `ferrovs_config::openflow`'s "connection state"), and one handler per
//! message kind. Messages are handled one at a time, in order; rule changes and
//! statistics go to the main thread ([`OfCall`]) and are waited for.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use ferrovs_config::openflow::convert::{
    OFPTT_ALL, WireRule, instructions_from_wire, packet_out_actions_from_wire, rule_from_wire, selection_from_wire,
};
use ferrovs_config::openflow::{
    Body, DecodeError, ErrorMsg, FlowFormat, FlowMod, FlowModCommand, FlowStatsRequest, GroupMod, GroupModCommand,
    GroupType, Hello, Instruction, Message, MeterModCommand, MpReply, MpRequest, MultipartReply, NO_BUFFER, OFPP_ANY,
    OfpError, PacketOut, PortMod, SwitchConfig, Version, decode, encode, negotiate, next_message_len,
};
use ferrovs_config::{Group, GroupKind, Masked};
use ferrovs_flowcache::slow_path::{GroupChange, GroupError, OFPG_ALL, match_covers};

use super::controller::Hub;
use super::replies::{self, N_TABLES};
use super::{OfAnswer, OfCall, OfRequest, RuleStats};
use crate::protocol::{ANSWER_TIMEOUT, PortInfo};
use crate::slow_path_thread::PacketOutRequest;
use ferrovs_flowcache::slow_path::{ChangeKind, FlowChange, outputs_to};

/// Who is at the other end.
pub struct Peer<'a> {
    pub bridge: &'a str,
    pub uid: Option<u32>,
    /// Root or the daemon's user: may change rules.
    pub may_change: bool,
    /// A controller (TCP, active or passive): gets packet-ins, counts for the fail mode,
    /// and is probed with echo requests when idle this long (dropped after twice it).
    pub controller: Option<Duration>,
}

/// A byte stream an OpenFlow connection runs over (unix or TCP).
pub trait OfStream: Send + Sync + 'static {
    fn read_some(&self, buf: &mut [u8]) -> std::io::Result<usize>;
    fn write_bytes(&self, bytes: &[u8]) -> std::io::Result<()>;
    fn set_timeouts(&self, read: Duration, write: Duration) -> std::io::Result<()>;
    fn close(&self);
}

macro_rules! of_stream {
    ($t:ty) => {
        impl OfStream for $t {
            fn read_some(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }
            fn write_bytes(&self, bytes: &[u8]) -> std::io::Result<()> {
                (&*self).write_all(bytes)
            }
            fn set_timeouts(&self, read: Duration, write: Duration) -> std::io::Result<()> {
                self.set_read_timeout(Some(read))?;
                self.set_write_timeout(Some(write))
            }
            fn close(&self) {
                let _ = self.shutdown(std::net::Shutdown::Both);
            }
        }
    };
}
of_stream!(UnixStream);
of_stream!(TcpStream);

/// The writing side of a connection, shared by its own thread (replies) and the
/// packet-in sender: one message is written whole before the next.
pub struct ConnWriter {
    stream: Arc<dyn OfStream>,
    lock: Mutex<()>,
}

impl ConnWriter {
    pub fn new(stream: Arc<dyn OfStream>) -> ConnWriter {
        ConnWriter { stream, lock: Mutex::new(()) }
    }

    pub fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.stream.write_bytes(bytes)
    }

    /// Closes the connection (its thread then ends).
    pub fn close(&self) {
        self.stream.close();
    }
}

/// The largest message a peer may send (the header's length field is 16 bits).
const MAX_MESSAGE: usize = 65535;
/// How often a blocked read wakes up to check whether the server is stopping.
const POLL: Duration = Duration::from_millis(200);
/// `OFPET_FLOW_MOD_FAILED` / `OFPFMFC_EPERM` per version.
const FLOW_MOD_EPERM: [(u16, u16); 2] = [(3, 2), (5, 4)];
/// `OFPET_FLOW_MOD_FAILED` with the version's "unknown"/"unsupported" code: the
/// datapath refused a change the codec and rule model accepted.
const FLOW_MOD_FAILED: [(u16, u16); 2] = [(3, 5), (5, 0)];
/// A port-mod that changes a config bit other than `OFPPC_PORT_DOWN`: `OFPPMFC_BAD_CONFIG`
/// in 1.3; 1.0 has no such code, so `OFPBRC_EPERM` there.
const PORT_MOD_BAD_CONFIG: [(u16, u16); 2] = [(1, 5), (7, 2)];
/// A change from a slave controller: `OFPBRC_IS_SLAVE` in 1.3, `OFPBRC_EPERM` in 1.0.
const IS_SLAVE: [(u16, u16); 2] = [(1, 5), (1, 10)];
/// `OFPET_ROLE_REQUEST_FAILED` (1.3).
const ROLE_REQUEST_FAILED: u16 = 11;
/// `OFPET_GROUP_MOD_FAILED` (1.3) and its codes.
const GROUP_MOD_FAILED: u16 = 6;
const GMFC_GROUP_EXISTS: u16 = 0;
const GMFC_INVALID_GROUP: u16 = 1;
const GMFC_UNKNOWN_GROUP: u16 = 8;
const GMFC_BAD_TYPE: u16 = 10;
const GMFC_BAD_BUCKET: u16 = 12;
const GMFC_EPERM: u16 = 14;

struct Conn<'a> {
    peer: Peer<'a>,
    to_main: &'a Sender<OfCall>,
    hub: &'a Hub,
    /// This connection's id in the hub (registered once the version is known).
    id: u64,
    version: Version,
    dpid: u64,
    flow_format: FlowFormat,
    table_id_enabled: bool,
    config: SwitchConfig,
}

fn pair(p: [(u16, u16); 2], v: Version) -> (u16, u16) {
    if v == Version::Of10 { p[0] } else { p[1] }
}

/// Serves one connection until the peer closes it, stops answering echo requests (a
/// controller), or the server stops.
pub fn serve(
    stream: Arc<dyn OfStream>,
    peer: Peer,
    to_main: &Sender<OfCall>,
    hub: &Hub,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_timeouts(POLL, if peer.controller.is_some() { CONTROLLER_WRITE_TIMEOUT } else { ANSWER_TIMEOUT })?;
    let writer = Arc::new(ConnWriter::new(stream.clone()));
    let ours = Hello::offering(&[Version::Of10, Version::Of13]);
    let hello = Message { version: Version::Of13, xid: 0, body: Body::Hello(ours.clone()) };
    writer.send(&encode(&hello).map_err(std::io::Error::other)?)?;
    let id = hub.next_id();
    let _registration = Registration { hub, id, bridge: peer.bridge };
    let probe = peer.controller;
    let mut conn = Conn {
        dpid: hub.dpid(peer.bridge),
        peer,
        to_main,
        hub,
        id,
        version: Version::Of10,
        flow_format: FlowFormat::OpenFlow10,
        table_id_enabled: false,
        config: SwitchConfig { flags: 0, miss_send_len: 128 },
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut negotiated = false;
    let mut received: Vec<Vec<u8>> = Vec::new();
    let mut chunk = [0u8; 16384];
    let mut last_rx = Instant::now();
    let mut probed = false;
    while !stop.load(Ordering::Relaxed) {
        match stream.read_some(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                last_rx = Instant::now();
                probed = false;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                if let Some(interval) = probe {
                    let idle = last_rx.elapsed();
                    if idle >= 2 * interval {
                        tracing::warn!(
                            "OpenFlow controller on {}: no answer for {idle:?}, disconnecting",
                            conn.peer.bridge
                        );
                        return Ok(());
                    }
                    if idle >= interval && !probed && negotiated {
                        probed = true;
                        let echo = Message { version: conn.version, xid: 0, body: Body::EchoRequest(Vec::new()) };
                        writer.send(&encode(&echo).map_err(std::io::Error::other)?)?;
                    }
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        loop {
            let len = match next_message_len(&buf) {
                Ok(Some(len)) if len <= buf.len() => len,
                Ok(_) if buf.len() <= MAX_MESSAGE => break,
                Ok(_) => return Ok(()),
                Err(e) => {
                    // No way to find the next message: answer what came before, then
                    // this, and hang up.
                    let mut replies = conn.handle_all(std::mem::take(&mut received));
                    replies.push(decode_error_reply(conn.version, &e));
                    write_raw(&writer, &replies)?;
                    return Ok(());
                }
            };
            let raw: Vec<u8> = buf.drain(..len).collect();
            if !negotiated {
                match decode(&raw) {
                    Ok((Message { body: Body::Hello(theirs), .. }, _)) => match negotiate(&ours, &theirs) {
                        Some(v) => {
                            conn.version = v;
                            negotiated = true;
                            conn.register(&writer);
                            continue;
                        }
                        None => {
                            let e = ErrorMsg { err_type: 0, code: 0, data: b"no common OpenFlow version".to_vec() };
                            let reply = Message { version: Version::Of10, xid: 0, body: Body::Error(e) };
                            write(&writer, &[reply])?;
                            return Ok(());
                        }
                    },
                    // OVS carries on with the version of a first message that is not a hello.
                    Ok((m, _)) => {
                        conn.version = m.version;
                        negotiated = true;
                        conn.register(&writer);
                    }
                    Err(e) => {
                        write_raw(&writer, &[decode_error_reply(e.version.unwrap_or(Version::Of10), &e)])?;
                        return Ok(());
                    }
                }
            }
            received.push(raw);
        }
        let replies = conn.handle_all(std::mem::take(&mut received));
        write_raw(&writer, &replies)?;
    }
    Ok(())
}

/// How long a write to a controller may block (a stuck controller must not hold up the
/// packet-in sender for long).
const CONTROLLER_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Removes a connection from the hub when its thread ends, however it ends.
struct Registration<'a> {
    hub: &'a Hub,
    id: u64,
    bridge: &'a str,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.hub.unregister(self.bridge, self.id);
    }
}

fn write(writer: &ConnWriter, msgs: &[Message]) -> std::io::Result<()> {
    for m in msgs {
        writer.send(&encode(m).map_err(std::io::Error::other)?)?;
    }
    Ok(())
}

fn write_raw(writer: &ConnWriter, msgs: &[Vec<u8>]) -> std::io::Result<()> {
    msgs.iter().try_for_each(|m| writer.send(m))
}

/// An error reply to the message `raw`.
fn error_reply(v: Version, raw: &[u8], pair: (u16, u16)) -> Vec<u8> {
    let xid = raw.get(4..8).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    error_message(v, xid, pair, &raw[..raw.len().min(ferrovs_config::openflow::ERROR_DATA_LEN)])
}

/// The reply for a message the codec could not decode.
fn decode_error_reply(v: Version, e: &DecodeError) -> Vec<u8> {
    error_message(v, e.xid, e.error.wire(v), &e.data)
}

/// `NXET_VENDOR` / `NXVC_VENDOR_ERROR`: how OpenFlow 1.0 carries OVS's own error codes.
const NXET_VENDOR: u16 = 0xb0c2;

/// An `OFPT_ERROR` with `(type, code)`. In OpenFlow 1.0 the codes OVS added (all at or
/// above 0x100, e.g. `OFPBMC_BAD_FIELD` = (0,263)) travel as a Nicira vendor error:
/// type `NXET_VENDOR`, code 0, then the vendor id, the inner type and code, and the
/// data; `ovs-ofctl` cannot decode them otherwise.
fn error_message(v: Version, xid: u32, (err_type, code): (u16, u16), data: &[u8]) -> Vec<u8> {
    let (err_type, code, data) = if v == Version::Of10 && code >= 0x100 {
        let mut d = ferrovs_config::openflow::NX_VENDOR_ID.to_be_bytes().to_vec();
        d.extend_from_slice(&err_type.to_be_bytes());
        d.extend_from_slice(&code.to_be_bytes());
        d.extend_from_slice(data);
        (NXET_VENDOR, 0, d)
    } else {
        (err_type, code, data.to_vec())
    };
    let m = Message { version: v, xid, body: Body::Error(ErrorMsg { err_type, code, data }) };
    encode(&m).expect("an error message always encodes")
}

impl Conn<'_> {
    /// The replies to one received message (raw bytes, already framed).
    fn handle(&mut self, raw: &[u8]) -> Vec<Vec<u8>> {
        let v = self.version;
        let msg = match decode(raw) {
            Ok((m, _)) => m,
            Err(e) => return vec![decode_error_reply(v, &e)],
        };
        if msg.version != v && !matches!(msg.body, Body::Hello(_)) {
            return vec![error_reply(v, raw, OfpError::BadVersion.wire(v))];
        }
        let xid = msg.xid;
        let reply = |body| vec![encode(&Message { version: v, xid, body }).expect("replies encode")];
        let err = |e: OfpError| vec![error_reply(v, raw, e.wire(v))];
        match msg.body {
            Body::Hello(_) | Body::EchoReply(_) | Body::Error(_) | Body::BarrierReply => Vec::new(),
            Body::EchoRequest(d) => reply(Body::EchoReply(d)),
            Body::BarrierRequest => reply(Body::BarrierReply),
            Body::FeaturesRequest => match self.ports() {
                Ok(ports) => reply(Body::FeaturesReply(replies::features(self.dpid, &ports, v))),
                Err(e) => self.failed(raw, &e),
            },
            Body::GetConfigRequest => reply(Body::GetConfigReply(self.config)),
            Body::SetConfig(c) => {
                self.config = c;
                self.hub.set_miss_send_len(self.peer.bridge, self.id, c.miss_send_len);
                Vec::new()
            }
            Body::NxSetFlowFormat(f) => {
                self.flow_format = f;
                Vec::new()
            }
            Body::NxFlowModTableId(on) => {
                self.table_id_enabled = on;
                Vec::new()
            }
            // Accepted and remembered by OVS; packet-ins are sent in the standard format.
            Body::NxSetPacketInFormat(_) => Vec::new(),
            Body::SetAsync(a) => {
                self.hub.set_async(self.peer.bridge, self.id, a);
                Vec::new()
            }
            Body::GetAsyncRequest => reply(Body::GetAsyncReply(self.hub.get_async(self.peer.bridge, self.id))),
            Body::FlowMod(_)
            | Body::NxFlowMod(_)
            | Body::PortMod(_)
            | Body::PacketOut(_)
            | Body::GroupMod(_)
            | Body::MeterMod(_)
                if self.hub.is_slave(self.peer.bridge, self.id) =>
            {
                vec![error_reply(v, raw, pair(IS_SLAVE, v))]
            }
            Body::FlowMod(fm) => self.flow_mod(raw, fm, v == Version::Of13),
            Body::NxFlowMod(fm) => self.flow_mod(raw, fm, false),
            Body::PortMod(pm) => self.port_mod(raw, &pm),
            Body::PacketOut(po) => self.packet_out(raw, po),
            Body::RoleRequest(r) if v == Version::Of13 => match self.hub.role_request(self.peer.bridge, self.id, r) {
                Ok(role) => reply(Body::RoleReply(role)),
                Err(code) => vec![error_reply(v, raw, (ROLE_REQUEST_FAILED, code))],
            },
            Body::MultipartRequest(r) => self.stats(raw, xid, r.body),
            Body::GroupMod(gm) if v == Version::Of13 => self.group_mod(raw, gm),
            // As OVS on a datapath without meters: a delete (of none) succeeds, an add
            // or modify is refused as `OFPMMFC_INVALID_METER`.
            Body::MeterMod(mm) if mm.command == MeterModCommand::Delete => Vec::new(),
            Body::MeterMod(_) => err(OfpError::InvalidMeter),
            Body::GroupMod(_) | Body::TableMod(_) | Body::RoleRequest(_) => err(OfpError::BadType),
            // Messages only a switch sends.
            Body::FeaturesReply(_)
            | Body::GetConfigReply(_)
            | Body::PacketIn(_)
            | Body::FlowRemoved(_)
            | Body::PortStatus(_)
            | Body::MultipartReply(_)
            | Body::RoleReply(_)
            | Body::GetAsyncReply(_) => err(OfpError::BadType),
        }
    }

    fn ask(&self, request: OfRequest) -> Result<OfAnswer, String> {
        let (tx, rx) = bounded(1);
        let call = OfCall { bridge: self.peer.bridge.to_string(), request, peer_uid: self.peer.uid, reply: tx };
        self.to_main.send(call).map_err(|_| "ferrovsd is shutting down".to_string())?;
        rx.recv_timeout(ANSWER_TIMEOUT).map_err(|_| "ferrovsd did not answer".to_string())?
    }

    fn ports(&self) -> Result<Vec<PortInfo>, String> {
        match self.ask(OfRequest::Ports)? {
            OfAnswer::Ports(p) => Ok(p),
            _ => Err("internal error: ports answered with another reply".into()),
        }
    }

    fn flows(&self) -> Result<Vec<RuleStats>, String> {
        match self.ask(OfRequest::Flows)? {
            OfAnswer::Flows(f) => Ok(f),
            _ => Err("internal error: flows answered with another reply".into()),
        }
    }

    fn groups(&self) -> Result<Vec<super::GroupInfo>, String> {
        match self.ask(OfRequest::Groups)? {
            OfAnswer::Groups(g) => Ok(g),
            _ => Err("internal error: groups answered with another reply".into()),
        }
    }

    /// A group-mod (1.3): `all` and `indirect` groups whose buckets hold actions the
    /// rule model has; refusals with `OFPET_GROUP_MOD_FAILED` codes.
    fn group_mod(&mut self, raw: &[u8], gm: GroupMod) -> Vec<Vec<u8>> {
        let v = self.version;
        let refuse = |code: u16| vec![error_reply(v, raw, (GROUP_MOD_FAILED, code))];
        if !self.peer.may_change {
            return refuse(GMFC_EPERM);
        }
        let change = match gm.command {
            GroupModCommand::Delete => GroupChange::Delete(gm.group_id),
            GroupModCommand::Add | GroupModCommand::Modify => {
                let kind = match gm.group_type {
                    GroupType::All => GroupKind::All,
                    GroupType::Indirect => GroupKind::Indirect,
                    GroupType::Select | GroupType::FastFailover => return refuse(GMFC_BAD_TYPE),
                };
                let mut buckets = Vec::with_capacity(gm.buckets.len());
                for b in gm.buckets {
                    match instructions_from_wire(&[Instruction::ApplyActions(b.actions)]) {
                        Ok(actions) => buckets.push(actions),
                        Err(_) => return refuse(GMFC_BAD_BUCKET),
                    }
                }
                let group = Group { kind, buckets };
                if gm.command == GroupModCommand::Add {
                    GroupChange::Add(gm.group_id, group)
                } else {
                    GroupChange::Modify(gm.group_id, group)
                }
            }
        };
        match self.ask(OfRequest::GroupMod(change)) {
            Ok(OfAnswer::GroupRefused(e)) => refuse(match e {
                GroupError::Exists => GMFC_GROUP_EXISTS,
                GroupError::Unknown => GMFC_UNKNOWN_GROUP,
                GroupError::Invalid => GMFC_INVALID_GROUP,
                GroupError::IndirectBuckets | GroupError::BadBucketAction => GMFC_BAD_BUCKET,
            }),
            Ok(_) => Vec::new(),
            Err(e) => self.failed(raw, &e),
        }
    }

    /// The switch could not do what a well-formed request asked.
    fn failed(&self, raw: &[u8], why: &str) -> Vec<Vec<u8>> {
        tracing::warn!("OpenFlow request on {} failed: {why}", self.peer.bridge);
        vec![error_reply(self.version, raw, pair(FLOW_MOD_FAILED, self.version))]
    }

    fn flow_mod(&mut self, raw: &[u8], fm: FlowMod, of13: bool) -> Vec<Vec<u8>> {
        match self.prepare_flow_mod(raw, &fm, of13) {
            Ok(change) => self.change_rule(raw, change),
            Err(reply) => reply,
        }
    }

    /// A flow-mod as a rule change, or the error reply that refuses it.
    fn prepare_flow_mod(&self, raw: &[u8], fm: &FlowMod, of13: bool) -> Result<FlowChange, Vec<Vec<u8>>> {
        let v = self.version;
        let err = |e: OfpError| Err(vec![error_reply(v, raw, e.wire(v))]);
        if !self.peer.may_change {
            return Err(vec![error_reply(v, raw, pair(FLOW_MOD_EPERM, v))]);
        }
        // 1.0 / Nicira flow-mods carry a table id only once NXT_FLOW_MOD_TABLE_ID enabled it.
        let table = if of13 || self.table_id_enabled { fm.table_id } else { OFPTT_ALL };
        let kind = match fm.command {
            FlowModCommand::Add => ChangeKind::Add,
            FlowModCommand::Modify => ChangeKind::Modify { strict: false },
            FlowModCommand::ModifyStrict => ChangeKind::Modify { strict: true },
            FlowModCommand::Delete => ChangeKind::Delete { strict: false },
            FlowModCommand::DeleteStrict => ChangeKind::Delete { strict: true },
        };
        let table = match (kind, table) {
            (ChangeKind::Add, OFPTT_ALL) if of13 => return err(OfpError::BadTableId),
            (ChangeKind::Add, OFPTT_ALL) => Some(0),
            (_, OFPTT_ALL) => None,
            (_, t) if t >= N_TABLES => return err(OfpError::BadTableId),
            (_, t) => Some(t),
        };
        let deleting = matches!(kind, ChangeKind::Delete { .. });
        let wire = WireRule {
            table: table.unwrap_or(0),
            instructions: if deleting { &[] } else { &fm.instructions },
            ..WireRule::of(fm)
        };
        let rule = match rule_from_wire(&wire) {
            Ok(r) => r,
            Err(e) => return err(e),
        };
        // 1.3 selects modify/delete by cookie under cookie_mask (and adds set the cookie);
        // 1.0 has no selection by cookie, and a modify sets it.
        let cookie = (of13 && fm.cookie_mask != 0).then_some(Masked { value: fm.cookie, mask: fm.cookie_mask });
        Ok(FlowChange {
            kind,
            rule,
            table,
            out_port: if deleting { fm.out_port } else { OFPP_ANY },
            cookie,
            modify_cookie: !of13 && fm.cookie != u64::MAX,
            add_if_missing: !of13,
        })
    }

    /// The replies to the messages received together, in order. A run of adds (a client
    /// that pipelines flow-mods; `ovs-ofctl add-flows` does not, it waits for a barrier
    /// after each) is applied as one rule change (one PMD synchronisation, one
    /// write-back) instead of one per rule; if the switch
    /// refuses the run, its adds are applied one by one so each refusal answers its own
    /// message.
    fn handle_all(&mut self, msgs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut run: Vec<(Vec<u8>, FlowChange)> = Vec::new();
        for raw in msgs {
            match self.batchable_add(&raw) {
                Some(change) => run.push((raw, change)),
                None => {
                    out.extend(self.apply_adds(std::mem::take(&mut run)));
                    out.extend(self.handle(&raw));
                }
            }
        }
        out.extend(self.apply_adds(run));
        out
    }

    /// The change of an add that converts cleanly (anything else takes the normal path).
    fn batchable_add(&self, raw: &[u8]) -> Option<FlowChange> {
        let msg = decode(raw).ok()?.0;
        let (fm, of13) = match msg.body {
            Body::FlowMod(fm) if msg.version == self.version => (fm, msg.version == Version::Of13),
            Body::NxFlowMod(fm) if msg.version == self.version => (fm, false),
            _ => return None,
        };
        if fm.command != FlowModCommand::Add || self.hub.is_slave(self.peer.bridge, self.id) {
            return None;
        }
        self.prepare_flow_mod(raw, &fm, of13).ok()
    }

    fn apply_adds(&self, run: Vec<(Vec<u8>, FlowChange)>) -> Vec<Vec<u8>> {
        if run.is_empty() {
            return Vec::new();
        }
        let rules = run.iter().map(|(_, c)| c.rule.clone()).collect();
        if matches!(self.ask(OfRequest::AddRules(rules)), Ok(OfAnswer::Changed)) {
            return Vec::new();
        }
        run.into_iter().flat_map(|(raw, change)| self.change_rule(&raw, change)).collect()
    }

    /// Asks for one rule change; the error reply when it was refused or failed.
    fn change_rule(&self, raw: &[u8], change: FlowChange) -> Vec<Vec<u8>> {
        match self.ask(OfRequest::FlowMod(Box::new(change))) {
            Ok(OfAnswer::Refused(e)) => vec![error_reply(self.version, raw, e.wire(self.version))],
            Ok(_) => Vec::new(),
            Err(e) => self.failed(raw, &e),
        }
    }

    /// Registers this connection with the hub once its version is known.
    fn register(&self, writer: &Arc<ConnWriter>) {
        let c = self.peer.controller.is_some();
        self.hub.register(self.peer.bridge, self.id, self.version, c, writer.clone());
    }

    fn packet_out(&self, raw: &[u8], po: PacketOut) -> Vec<Vec<u8>> {
        let v = self.version;
        if !self.peer.may_change {
            return vec![error_reply(v, raw, pair(FLOW_MOD_EPERM, v))];
        }
        if po.buffer_id != NO_BUFFER {
            // The switch buffers nothing: every packet-in carries the whole frame.
            return vec![error_reply(v, raw, (1, 8))];
        }
        let actions = match packet_out_actions_from_wire(&po.actions) {
            Ok(a) => a,
            Err(e) => return vec![error_reply(v, raw, e.wire(v))],
        };
        let out = PacketOutRequest { in_port: po.in_port, frame: po.data, actions };
        match self.ask(OfRequest::PacketOut(Box::new(out))) {
            Ok(_) => Vec::new(),
            Err(e) => self.failed(raw, &e),
        }
    }

    fn port_mod(&self, raw: &[u8], pm: &PortMod) -> Vec<Vec<u8>> {
        let v = self.version;
        if !self.peer.may_change {
            return vec![error_reply(v, raw, pair(FLOW_MOD_EPERM, v))];
        }
        let ports = match self.ports() {
            Err(e) => return self.failed(raw, &e),
            Ok(ports) => ports,
        };
        let Some(port) = ports.iter().find(|p| p.number == pm.port_no) else {
            return vec![error_reply(v, raw, OfpError::PortModBadPort.wire(v))];
        };
        if pm.mask & !replies::PORT_DOWN != 0 {
            return vec![error_reply(v, raw, pair(PORT_MOD_BAD_CONFIG, v))];
        }
        let down = pm.config & replies::PORT_DOWN != 0;
        // Nothing to change is accepted as is.
        if pm.mask == 0 || port.admin_down == down {
            return Vec::new();
        }
        match self.ask(OfRequest::PortMod { port: port.name.clone(), down }) {
            Ok(_) => Vec::new(),
            Err(e) => self.failed(raw, &e),
        }
    }

    /// The rules a flow or aggregate statistics request selects.
    fn selected<'r>(&self, rules: &'r [RuleStats], req: &FlowStatsRequest) -> Result<Vec<&'r RuleStats>, OfpError> {
        let m = selection_from_wire(&req.matches)?;
        Ok(rules
            .iter()
            .filter(|r| req.table_id == OFPTT_ALL || r.rule.table == req.table_id)
            .filter(|r| r.rule.cookie & req.cookie_mask == req.cookie & req.cookie_mask)
            .filter(|r| outputs_to(&r.rule, req.out_port))
            .filter(|r| match_covers(&m, &r.rule.matches))
            .collect())
    }

    fn stats(&self, raw: &[u8], xid: u32, body: MpRequest) -> Vec<Vec<u8>> {
        let v = self.version;
        let one = |body| {
            let m = Message { version: v, xid, body: Body::MultipartReply(MultipartReply { more: false, body }) };
            vec![encode(&m).expect("replies encode")]
        };
        let split = |r: Result<Vec<Vec<u8>>, ferrovs_config::openflow::EncodeError>| match r {
            Ok(m) => m,
            Err(e) => self.failed(raw, &e.to_string()),
        };
        match body {
            MpRequest::Desc => one(MpReply::Desc(replies::desc(self.peer.bridge))),
            MpRequest::Flow(ref req)
            | MpRequest::NxFlow(ref req)
            | MpRequest::Aggregate(ref req)
            | MpRequest::NxAggregate(ref req) => {
                let rules = match self.flows() {
                    Ok(r) => r,
                    Err(e) => return self.failed(raw, &e),
                };
                let selected = match self.selected(&rules, req) {
                    Ok(s) => s,
                    Err(e) => return vec![error_reply(v, raw, e.wire(v))],
                };
                match body {
                    MpRequest::Aggregate(_) => one(MpReply::Aggregate(replies::aggregate(&selected))),
                    MpRequest::NxAggregate(_) => one(MpReply::NxAggregate(replies::aggregate(&selected))),
                    _ => {
                        let nicira = matches!(body, MpRequest::NxFlow(_));
                        let entries: Vec<_> = selected
                            .iter()
                            .filter_map(|r| match replies::flow_stats(r, v, nicira) {
                                Ok(s) => Some(s),
                                Err(why) => {
                                    tracing::info!("flow stats on {}: {} left out: {why}", self.peer.bridge, r.rule);
                                    None
                                }
                            })
                            .collect();
                        let make: &dyn Fn(Vec<_>) -> MpReply = if nicira { &MpReply::NxFlow } else { &MpReply::Flow };
                        split(replies::encode_split(v, xid, &entries, make))
                    }
                }
            }
            MpRequest::Table => match self.ask(OfRequest::TableCounts) {
                Ok(OfAnswer::TableCounts(counts)) => one(MpReply::Table(replies::table_stats(&counts, v))),
                Ok(_) => self.failed(raw, "internal error: table counts answered with another reply"),
                Err(e) => self.failed(raw, &e),
            },
            // No meters, as OVS on a datapath without them: empty lists, zero features.
            MpRequest::Meter(_) => one(MpReply::Meter(Vec::new())),
            MpRequest::MeterConfig(_) => one(MpReply::MeterConfig(Vec::new())),
            MpRequest::MeterFeatures => one(MpReply::MeterFeatures(Default::default())),
            MpRequest::TableFeatures => {
                split(replies::encode_split(v, xid, &replies::table_features(), &MpReply::TableFeatures))
            }
            MpRequest::Port(port) => match self.ports() {
                Ok(ports) => {
                    let stats: Vec<_> = ports
                        .iter()
                        .filter(|p| port == OFPP_ANY || p.number == port)
                        .map(replies::port_stats)
                        .collect();
                    split(replies::encode_split(v, xid, &stats, &MpReply::Port))
                }
                Err(e) => self.failed(raw, &e),
            },
            MpRequest::PortDesc => match self.ports() {
                Ok(ports) => {
                    let desc: Vec<_> = ports.iter().map(|p| replies::port_desc(p, self.dpid, v)).collect();
                    split(replies::encode_split(v, xid, &desc, &MpReply::PortDesc))
                }
                Err(e) => self.failed(raw, &e),
            },
            MpRequest::Group(id) => match self.groups() {
                Ok(groups) => {
                    let stats: Vec<_> =
                        groups.iter().filter(|g| id == OFPG_ALL || g.id == id).map(replies::group_stats).collect();
                    split(replies::encode_split(v, xid, &stats, &MpReply::Group))
                }
                Err(e) => self.failed(raw, &e),
            },
            MpRequest::GroupDesc => match self.groups() {
                Ok(groups) => {
                    let desc: Result<Vec<_>, _> = groups.iter().map(|g| replies::group_desc(g, v)).collect();
                    match desc {
                        Ok(desc) => split(replies::encode_split(v, xid, &desc, &MpReply::GroupDesc)),
                        Err(e) => self.failed(raw, e),
                    }
                }
                Err(e) => self.failed(raw, &e),
            },
        }
    }
}
