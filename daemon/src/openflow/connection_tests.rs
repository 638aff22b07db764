//! A connection served over a socket pair against a stand-in for the main thread:
//! negotiation, in-order handling (a barrier is answered after the flow-mod before it
//! was applied), errors for what cannot be decoded or is not allowed, and replies split
//! over several messages.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crossbeam_channel::{Receiver, unbounded};
use ferrovs_config::openflow::{Action as WireAction, Field};
use ferrovs_config::openflow::{
    Body, FlowMod, FlowModCommand, Hello, Instruction, Match, MatchField, Message, MpReply, MpRequest,
    MultipartRequest, NO_BUFFER, OFPG_ANY, OFPP_ANY, Version, decode, encode, next_message_len,
};

use super::conn::{Peer, serve};
use super::*;

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    calls: Receiver<OfCall>,
    _server: std::thread::JoinHandle<()>,
}

impl Client {
    /// A connection to bridge "br0"; `may_change` as a privileged peer would have.
    fn connect(may_change: bool) -> Client {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (tx, rx) = unbounded();
        let server = std::thread::spawn(move || {
            let stop = AtomicBool::new(false);
            let peer = Peer { bridge: "br0", uid: Some(1000), may_change, controller: None };
            let hub = super::controller::Hub::new(tx.clone());
            let _ = serve(std::sync::Arc::new(theirs), peer, &tx, &hub, &stop);
        });
        Client { stream: ours, buf: Vec::new(), calls: rx, _server: server }
    }

    fn send(&mut self, v: Version, xid: u32, body: Body) {
        self.send_raw(&encode(&Message { version: v, xid, body }).unwrap());
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn recv(&mut self) -> Message {
        loop {
            if let Ok(Some(n)) = next_message_len(&self.buf)
                && n <= self.buf.len()
            {
                let raw: Vec<u8> = self.buf.drain(..n).collect();
                return decode(&raw).unwrap_or_else(|e| panic!("undecodable reply {raw:02x?}: {e}")).0;
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).expect("a reply in time");
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Hello exchange offering `version` only.
    fn hello(&mut self, version: Version) {
        let m = self.recv();
        assert!(matches!(m.body, Body::Hello(Hello { bitmap: Some(b), .. }) if b == (1 << 1) | (1 << 4)), "{m:?}");
        self.send(version, 1, Body::Hello(Hello::offering(&[version])));
    }
}

/// Answers the stand-in main thread's calls like the daemon would: no ports, no rules,
/// changes accepted; returns what it was asked.
fn main_thread(calls: Receiver<OfCall>) -> std::thread::JoinHandle<Vec<OfRequest>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Ok(call) = calls.recv_timeout(Duration::from_secs(2)) {
            let answer = match &call.request {
                OfRequest::Ports => OfAnswer::Ports(Vec::new()),
                OfRequest::Flows => OfAnswer::Flows(Vec::new()),
                OfRequest::TableCounts => OfAnswer::TableCounts(Vec::new()),
                OfRequest::PacketOut(_)
                | OfRequest::MissModeChanged
                | OfRequest::GroupMod(_)
                | OfRequest::PortMod { .. } => OfAnswer::Changed,
                OfRequest::Groups => OfAnswer::Groups(Vec::new()),
                OfRequest::FlowMod(_) | OfRequest::AddRules(_) => {
                    // A rule change takes a while (every PMD confirms it).
                    std::thread::sleep(Duration::from_millis(50));
                    OfAnswer::Changed
                }
            };
            seen.push(call.request.clone());
            let _ = call.reply.send(Ok(answer));
        }
        seen
    })
}

fn flow_mod(fields: Vec<MatchField>) -> FlowMod {
    FlowMod {
        cookie: 0,
        cookie_mask: 0,
        table_id: 0,
        command: FlowModCommand::Add,
        idle_timeout: 0,
        hard_timeout: 0,
        priority: 100,
        buffer_id: NO_BUFFER,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        flags: 0,
        matches: Match { fields },
        instructions: vec![Instruction::ApplyActions(vec![WireAction::Output { port: 2, max_len: 0 }])],
    }
}

#[test]
fn negotiates_and_answers_echo_features_and_config() {
    for v in [Version::Of10, Version::Of13] {
        let mut c = Client::connect(true);
        let main = main_thread(c.calls.clone());
        c.hello(v);
        c.send(v, 7, Body::EchoRequest(vec![1, 2, 3]));
        assert_eq!(c.recv(), Message { version: v, xid: 7, body: Body::EchoReply(vec![1, 2, 3]) });
        c.send(v, 8, Body::FeaturesRequest);
        match c.recv() {
            Message { version, xid: 8, body: Body::FeaturesReply(f) } if version == v => {
                assert_eq!(f.datapath_id, datapath_id("br0"));
                assert_eq!(f.n_tables, 254);
            }
            other => panic!("{other:?}"),
        }
        c.send(v, 9, Body::GetConfigRequest);
        assert!(matches!(c.recv().body, Body::GetConfigReply(_)));
        drop(c);
        main.join().unwrap();
    }
}

#[test]
fn barrier_comes_after_the_flow_mod_is_applied() {
    let mut c = Client::connect(true);
    let (tx, rx) = unbounded();
    let calls = c.calls.clone();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let order2 = order.clone();
    // Forward calls to the stand-in, noting when each flow-mod was answered.
    let relay = std::thread::spawn(move || {
        while let Ok(call) = calls.recv_timeout(Duration::from_secs(2)) {
            let (rtx, rrx) = crossbeam_channel::bounded(1);
            let reply = call.reply;
            tx.send(OfCall { bridge: call.bridge, request: call.request, peer_uid: call.peer_uid, reply: rtx })
                .unwrap();
            let answer = rrx.recv().unwrap();
            order2.lock().unwrap().push("applied");
            let _ = reply.send(answer);
        }
    });
    let main = main_thread(rx);
    c.hello(Version::Of13);
    let fm = flow_mod(vec![MatchField::exact(Field::InPort, 1)]);
    c.send(Version::Of13, 20, Body::FlowMod(fm));
    c.send(Version::Of13, 21, Body::BarrierRequest);
    assert_eq!(c.recv(), Message { version: Version::Of13, xid: 21, body: Body::BarrierReply });
    order.lock().unwrap().push("barrier reply");
    assert_eq!(*order.lock().unwrap(), vec!["applied", "barrier reply"]);
    drop(c);
    relay.join().unwrap();
    let seen = main.join().unwrap();
    match seen.as_slice() {
        [OfRequest::AddRules(rules)] => {
            assert_eq!(rules.len(), 1);
            assert_eq!(rules[0].to_string(), "priority=100,in_port=1 actions=output:2");
        }
        other => panic!("{other:?}"),
    }
}

/// Adds sent together are one change; when the switch refuses that change, each add is
/// tried alone and only the refused one is answered with an error.
#[test]
fn adds_sent_together_are_one_change_and_refusals_are_per_message() {
    for refuse_batch in [false, true] {
        let mut c = Client::connect(true);
        let calls = c.calls.clone();
        let main = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while let Ok(call) = calls.recv_timeout(Duration::from_secs(2)) {
                let answer = match &call.request {
                    OfRequest::AddRules(_) if refuse_batch => Err("refused".to_string()),
                    OfRequest::FlowMod(ch) if ch.rule.priority == 13 => Err("refused".to_string()),
                    _ => Ok(OfAnswer::Changed),
                };
                seen.push(call.request.clone());
                let _ = call.reply.send(answer);
            }
            seen
        });
        c.hello(Version::Of13);
        let mut bytes = Vec::new();
        for (xid, prio) in [(50, 11), (51, 12), (52, 13)] {
            let mut fm = flow_mod(vec![MatchField::exact(Field::InPort, 1)]);
            fm.priority = prio;
            bytes.extend(encode(&Message { version: Version::Of13, xid, body: Body::FlowMod(fm) }).unwrap());
        }
        bytes.extend(encode(&Message { version: Version::Of13, xid: 53, body: Body::BarrierRequest }).unwrap());
        c.send_raw(&bytes);
        if refuse_batch {
            match c.recv() {
                Message { xid: 52, body: Body::Error(e), .. } => assert_eq!((e.err_type, e.code), (5, 0)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(c.recv(), Message { version: Version::Of13, xid: 53, body: Body::BarrierReply });
        drop(c);
        let seen = main.join().unwrap();
        let kinds: Vec<usize> = seen
            .iter()
            .map(|r| match r {
                OfRequest::AddRules(rules) => rules.len(),
                OfRequest::FlowMod(_) => 1,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, if refuse_batch { vec![3, 1, 1, 1] } else { vec![3] }, "{seen:?}");
    }
}

#[test]
fn errors_for_what_cannot_be_decoded_or_done() {
    let mut c = Client::connect(true);
    let main = main_thread(c.calls.clone());
    c.hello(Version::Of10);
    // Unknown message type 200.
    c.send_raw(&[1, 200, 0, 8, 0, 0, 0, 30]);
    match c.recv() {
        Message { xid: 30, body: Body::Error(e), .. } => assert_eq!((e.err_type, e.code), (1, 1)),
        other => panic!("{other:?}"),
    }
    // A field the rule model lacks, in a Nicira flow-mod: OVS's (0,263) as a vendor error.
    c.send(Version::Of10, 31, Body::NxFlowMod(flow_mod(vec![MatchField::exact(Field::TunId, 1)])));
    match c.recv() {
        Message { xid: 31, body: Body::Error(e), .. } => {
            assert_eq!((e.err_type, e.code), (0xb0c2, 0));
            assert_eq!(&e.data[..8], &[0, 0, 0x23, 0x20, 0, 0, 1, 7]);
        }
        other => panic!("{other:?}"),
    }
    // Still serving.
    c.send(Version::Of10, 33, Body::BarrierRequest);
    assert_eq!(c.recv().xid, 33);
    drop(c);
    assert!(main.join().unwrap().is_empty(), "nothing reached the main thread");

    // A well-formed flow-mod from a peer that may not change the switch: EPERM.
    let mut c = Client::connect(false);
    let main = main_thread(c.calls.clone());
    c.hello(Version::Of10);
    c.send(Version::Of10, 32, Body::FlowMod(flow_mod(vec![MatchField::exact(Field::InPort, 1)])));
    match c.recv() {
        Message { xid: 32, body: Body::Error(e), .. } => assert_eq!((e.err_type, e.code), (3, 2)),
        other => panic!("{other:?}"),
    }
    drop(c);
    assert!(main.join().unwrap().is_empty(), "nothing reached the main thread");
}

/// No meters, as OVS on a datapath without them: deleting (all) meters succeeds
/// silently, adding one is `OFPMMFC_INVALID_METER`.
#[test]
fn meter_mods_as_a_switch_without_meters() {
    use ferrovs_config::openflow::{MeterMod, MeterModCommand};
    let mut c = Client::connect(true);
    let main = main_thread(c.calls.clone());
    c.hello(Version::Of13);
    let meter = |command| MeterMod { command, flags: 1, meter_id: 0xffff_ffff, bands: Vec::new() };
    c.send(Version::Of13, 40, Body::MeterMod(meter(MeterModCommand::Delete)));
    c.send(Version::Of13, 41, Body::MeterMod(MeterMod { meter_id: 1, ..meter(MeterModCommand::Add) }));
    c.send(Version::Of13, 42, Body::BarrierRequest);
    let m = c.recv();
    assert!(matches!(&m.body, Body::Error(e) if (e.err_type, e.code) == (12, 2)) && m.xid == 41, "{m:?}");
    assert_eq!(c.recv().xid, 42, "the delete got no error");
    drop(c);
    assert!(main.join().unwrap().is_empty(), "nothing reached the main thread");
}

/// set_async is remembered per connection and get_async answers it (OVS's defaults
/// before).
#[test]
fn async_config_is_set_and_read_back() {
    use ferrovs_config::openflow::AsyncConfig;
    let mut c = Client::connect(true);
    let main = main_thread(c.calls.clone());
    c.hello(Version::Of13);
    c.send(Version::Of13, 50, Body::GetAsyncRequest);
    let m = c.recv();
    assert_eq!((m.xid, m.body), (50, Body::GetAsyncReply(super::controller::DEFAULT_ASYNC)));
    let mine = AsyncConfig { packet_in_mask: [1, 0], port_status_mask: [0, 0], flow_removed_mask: [4, 4] };
    c.send(Version::Of13, 51, Body::SetAsync(mine));
    c.send(Version::Of13, 52, Body::GetAsyncRequest);
    let m = c.recv();
    assert_eq!((m.xid, m.body), (52, Body::GetAsyncReply(mine)));
    drop(c);
    assert!(main.join().unwrap().is_empty(), "nothing reached the main thread");
}

#[test]
fn table_features_span_several_messages() {
    let mut c = Client::connect(true);
    c.hello(Version::Of13);
    let req = MultipartRequest { more: false, body: MpRequest::TableFeatures };
    c.send(Version::Of13, 40, Body::MultipartRequest(req));
    let mut tables = Vec::new();
    let mut parts = 0;
    loop {
        let m = c.recv();
        let Body::MultipartReply(r) = m.body else { panic!("{m:?}") };
        let MpReply::TableFeatures(t) = r.body else { panic!("not table features") };
        tables.extend(t.into_iter().map(|t| t.table_id));
        parts += 1;
        if !r.more {
            break;
        }
    }
    assert!(parts > 1, "one message cannot hold 254 tables' features");
    assert_eq!(tables, (0..254).collect::<Vec<u8>>());
}

/// Role requests: a master with a generation id; an older generation is stale; a slave
/// may not change rules or send packets.
#[test]
fn roles_follow_generation_ids_and_slaves_are_refused() {
    let mut c = Client::connect(true);
    let main = main_thread(c.calls.clone());
    c.hello(Version::Of13);
    let role = |role, generation_id| Body::RoleRequest(ferrovs_config::openflow::Role { role, generation_id });
    c.send(Version::Of13, 2, role(2, 5));
    let m = c.recv();
    assert!(matches!(m.body, Body::RoleReply(r) if r.role == 2 && r.generation_id == 5), "{m:?}");
    c.send(Version::Of13, 3, role(3, 4));
    let m = c.recv();
    assert!(matches!(&m.body, Body::Error(e) if (e.err_type, e.code) == (11, 0)), "stale: {m:?}");
    c.send(Version::Of13, 4, role(3, 6));
    let m = c.recv();
    assert!(matches!(m.body, Body::RoleReply(r) if r.role == 3 && r.generation_id == 6), "{m:?}");
    c.send(Version::Of13, 5, Body::FlowMod(flow_mod(Vec::new())));
    c.send(Version::Of13, 6, Body::BarrierRequest);
    let m = c.recv();
    assert!(matches!(&m.body, Body::Error(e) if (e.err_type, e.code) == (1, 10)) && m.xid == 5, "slave: {m:?}");
    assert!(matches!(c.recv().body, Body::BarrierReply));
    drop(c);
    assert!(main.join().unwrap().is_empty(), "a slave's flow-mod reached the switch");
}

/// A packet-out's actions reach the switch in the rule model; a buffered one is refused.
#[test]
fn packet_outs_reach_the_switch() {
    use ferrovs_config::openflow::{Action as WireAction, NO_BUFFER, PacketOut};
    let mut c = Client::connect(true);
    let main = main_thread(c.calls.clone());
    c.hello(Version::Of13);
    let out = |buffer_id| {
        Body::PacketOut(PacketOut {
            buffer_id,
            in_port: 1,
            actions: vec![WireAction::Output { port: 0xffff_fffb, max_len: 0 }],
            data: vec![0xff; 60],
        })
    };
    c.send(Version::Of13, 2, out(7));
    c.send(Version::Of13, 3, out(NO_BUFFER));
    c.send(Version::Of13, 4, Body::BarrierRequest);
    let m = c.recv();
    assert!(matches!(&m.body, Body::Error(e) if (e.err_type, e.code) == (1, 8)) && m.xid == 2, "{m:?}");
    assert!(matches!(c.recv().body, Body::BarrierReply));
    drop(c);
    let seen = main.join().unwrap();
    assert!(
        matches!(seen.as_slice(), [OfRequest::PacketOut(p)] if p.in_port == 1 && p.actions == vec![ferrovs_config::Action::Flood] && p.frame.len() == 60),
        "{seen:?}"
    );
}
