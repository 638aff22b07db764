//! A naive reference evaluator of rule sets: the oracle for the translator's tests.
//!
//! # Design
//!
//! Deliberately simple and independent of the translator: it works on the raw
//! [`Rule`]s (not on compiled key/mask pairs), compares every match field directly with
//! the packet's field, scans each table linearly for the best rule, and executes actions
//! on a plain copy of the key. It tracks no wildcards and is slow; it exists so that
//! tests can check, for packets *other* than the one translated, that the megaflow
//! decision is what the rules say. It shares with the translator only the key layout,
//! the MAC table and the datapath action type.

use std::time::Duration;

use ferrovs_config::rules::{Action, Match, PacketField, Registers, Resubmit, Rule, SetField, Subfield, SubfieldField};

use super::mac::{MacLearn, MacTable, is_multicast, is_reserved};
use crate::actions::{DpAction, DpActions};
use crate::extract::NdFields;
use crate::key::{FRAG_ANY, FRAG_LATER, FlowKey, VLAN_PRESENT, ethertype, ipproto, mac_to_u64};

/// The reference outcome for one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub actions: DpActions,
    /// Indices into the evaluated `rules` slice of every matched rule, in order.
    pub rules: Vec<usize>,
    /// What every `normal` learned, in order.
    pub learns: Vec<MacLearn>,
    /// True if the nesting or lookup limit was hit (actions are then empty).
    pub aborted: bool,
}

/// The datapath actions the rules prescribe for `key`.
pub fn evaluate(rules: &[Rule], ports: &[u32], macs: &MacTable, now: Duration, key: &FlowKey) -> DpActions {
    evaluate_full(rules, ports, macs, now, key).actions
}

/// Like [`evaluate`], with matched rules and learning. The packet's neighbour-discovery
/// fields read as zero (OVS's value for every packet but an NS/NA with code 0).
pub fn evaluate_full(rules: &[Rule], ports: &[u32], macs: &MacTable, now: Duration, key: &FlowKey) -> Evaluation {
    evaluate_with_nd(rules, ports, macs, now, key, &NdFields::default())
}

/// Like [`evaluate_full`], for a packet whose neighbour-discovery fields are `nd` (as
/// `extract::nd_fields` reads them from its bytes).
pub fn evaluate_with_nd(
    rules: &[Rule],
    ports: &[u32],
    macs: &MacTable,
    now: Duration,
    key: &FlowKey,
    nd: &NdFields,
) -> Evaluation {
    // Identical (table, priority, match) rules: the last one replaces the first in place.
    let mut slots: Vec<(u8, u16, usize)> = Vec::new(); // (table, priority, index of the kept rule)
    for (i, r) in rules.iter().enumerate() {
        match slots.iter_mut().find(|(t, p, k)| *t == r.table && *p == r.priority && rules[*k].matches == r.matches) {
            Some(s) => s.2 = i,
            None => slots.push((r.table, r.priority, i)),
        }
    }
    let mut pkt = *key;
    if pkt.nw_frag() & FRAG_ANY != 0 {
        pkt.set_tp_src(0);
        pkt.set_tp_dst(0);
    }
    let mut ev = Eval {
        nd: *nd,
        nd_base: *nd,
        rules,
        slots,
        ports,
        macs,
        now,
        in_port: ferrovs_config::port_from_16(key.in_port()),
        ingress: ferrovs_config::port_from_16(key.in_port()),
        pkt,
        regs: Registers::default(),
        out: Evaluation { actions: Vec::new(), rules: Vec::new(), learns: Vec::new(), aborted: false },
        lookups: 0,
        retag: None,
        received: [0, 1].map(|j| key.vlan_tci(j) & VLAN_PRESENT != 0),
        tpids: [TagTpid::Received(0), TagTpid::Received(1)],
        base: ([key.vlan_tci(0), key.vlan_tci(1)], [TagTpid::Received(0), TagTpid::Received(1)]),
        action_set: Vec::new(),
    };
    ev.table(0, ferrovs_config::port_from_16(key.in_port()), 0);
    ev.run_action_set();
    if let Some((start, end)) = ev.retag
        && end == ev.out.actions.len()
    {
        ev.out.actions.truncate(start);
    }
    crate::actions::trim_unsent_edits(&mut ev.out.actions);
    if ev.out.aborted {
        ev.out.actions.clear();
        ev.out.learns.clear();
    }
    ev.out
}

struct Eval<'a> {
    rules: &'a [Rule],
    slots: Vec<(u8, u16, usize)>,
    ports: &'a [u32],
    macs: &'a MacTable,
    now: Duration,
    /// The flow's neighbour-discovery fields: the packet's, as the actions wrote them.
    nd: NdFields,
    /// The ND fields the datapath's packet has after the actions emitted so far.
    nd_base: NdFields,
    /// The flow's in_port (a `load`/`move` may write it; `resubmit(PORT,T)` only looks
    /// up with another).
    in_port: u32,
    /// The packet's ingress port (what a packet-in reports).
    ingress: u32,
    pkt: FlowKey,
    /// Registers and metadata, zero at the start.
    regs: Registers,
    out: Evaluation,
    lookups: usize,
    /// The actions with which `normal` last put back tags it sent without (dropped if
    /// nothing follows).
    retag: Option<(usize, usize)>,
    /// Whether the packet has a first, a second tag (the key's VLAN slots).
    received: [bool; 2],
    /// The TPIDs of the flow's two VLAN slots (`pkt` holds their TCIs).
    tpids: [TagTpid; 2],
    /// The tags the datapath's packet has: the flow's at the last output (OVS's base
    /// flow), TCIs and TPIDs.
    base: ([u16; 2], [TagTpid; 2]),
    /// What `write_actions` wrote since the last `clear_actions`, in order.
    action_set: Vec<Action>,
}

/// The TPID of a VLAN slot of the flow, as OVS's flow keeps it beside the TCI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagTpid {
    /// Given by `push_vlan` (or 0x8100, by a write that made a slot without one present);
    /// 0 for an emptied slot.
    Set(u16),
    /// The one of the packet's tag `j` as received (none if it has no such tag).
    Received(usize),
}

fn masked_eq<T: Copy>(v: Option<ferrovs_config::rules::Masked<T>>, pkt: u128, conv: impl Fn(T) -> u128) -> bool {
    match v {
        None => true,
        Some(m) => (pkt & conv(m.mask)) == (conv(m.value) & conv(m.mask)),
    }
}

/// Does `m` match `p` (neighbour-discovery fields `nd`), with OpenFlow 1.0 normalisation
/// (a field whose prerequisite is not part of the match is ignored)?
fn matches(m: &Match, p: &FlowKey, nd: &NdFields) -> bool {
    let ip4 = m.dl_type == Some(ethertype::IPV4);
    let ip6 = m.dl_type == Some(ethertype::IPV6);
    let arp = m.dl_type == Some(ethertype::ARP) || m.dl_type == Some(0x8035);
    let mpls = m.dl_type == Some(ethertype::MPLS) || m.dl_type == Some(ethertype::MPLS_MCAST);
    let ip = ip4 || ip6;
    let proto = if ip { m.nw_proto } else { None };
    let ports = matches!(proto, Some(ipproto::TCP | ipproto::UDP | ipproto::SCTP))
        || (ip4 && proto == Some(ipproto::ICMP))
        || (ip6 && proto == Some(ipproto::ICMPV6));
    let mac = |a: [u8; 6]| mac_to_u64(a) as u128;
    let v4 = |a: std::net::Ipv4Addr| u32::from(a) as u128;
    let v6 = |a: std::net::Ipv6Addr| u128::from(a);
    let u16c = |x: u16| x as u128;
    let u8c = |x: u8| x as u128;
    m.in_port.is_none_or(|x| ferrovs_config::port_to_16(x) == p.in_port())
        && m.dl_type.is_none_or(|x| x == p.dl_type())
        && masked_eq(m.vlan_tci, p.vlan_tci(0) as u128, u16c)
        && masked_eq(m.dl_src, p.dl_src_u64() as u128, mac)
        && masked_eq(m.dl_dst, p.dl_dst_u64() as u128, mac)
        && (!(ip || arp) || m.nw_proto.is_none_or(|x| x == p.nw_proto()))
        && (!(ip4 || arp) || masked_eq(m.nw_src, p.nw_src_u32() as u128, v4))
        && (!(ip4 || arp) || masked_eq(m.nw_dst, p.nw_dst_u32() as u128, v4))
        && (!ip6 || masked_eq(m.ipv6_src, p.ipv6_src_u128(), v6))
        && (!ip6 || masked_eq(m.ipv6_dst, p.ipv6_dst_u128(), v6))
        && (!ip6 || masked_eq(m.ipv6_label, p.ipv6_label() as u128, |x: u32| x as u128))
        && (!ip || masked_eq(m.nw_tos, p.nw_tos() as u128, u8c))
        && (!ip || m.nw_ttl.is_none_or(|x| x == p.nw_ttl()))
        && (!ip || masked_eq(m.nw_frag, p.nw_frag() as u128, u8c))
        && (!ports || masked_eq(m.tp_src, p.tp_src() as u128, u16c))
        && (!ports || masked_eq(m.tp_dst, p.tp_dst() as u128, u16c))
        && (proto != Some(ipproto::TCP) || masked_eq(m.tcp_flags, p.tcp_flags() as u128, u16c))
        && (!arp || masked_eq(m.arp_sha, p.arp_sha_u64() as u128, mac))
        && (!arp || masked_eq(m.arp_tha, p.arp_tha_u64() as u128, mac))
        && (!mpls || masked_eq(m.mpls_lse, p.mpls_lse() as u128, |x: u32| x as u128))
        && masked_eq(m.nd_target, u128::from_be_bytes(nd.target), v6)
        && masked_eq(m.nd_sll, mac_to_u64(nd.sll) as u128, mac)
        && masked_eq(m.nd_tll, mac_to_u64(nd.tll) as u128, mac)
        && m.nd_reserved.is_none_or(|r| r == nd.reserved)
        && m.nd_options_type.is_none_or(|t| t == nd.options_type)
}

/// OVS's `is_nd` prerequisite of an ND field `p` on packet `k`: ICMPv6 in IPv6, code 0,
/// type 135 or 136 (135 only for `nd_sll`, 136 only for `nd_tll`).
fn nd_prereq(p: PacketField, k: &FlowKey) -> bool {
    let types = p.def().slot.nd_icmp_types().unwrap_or(&[]);
    k.dl_type() == ethertype::IPV6 && k.nw_proto() == ipproto::ICMPV6 && k.tp_dst() == 0 && types.contains(&k.tp_src())
}

impl Eval<'_> {
    fn table(&mut self, table: u8, lookup_port: u32, depth: usize) {
        if self.out.aborted {
            return;
        }
        self.lookups += 1;
        if depth > super::MAX_DEPTH || self.lookups > super::MAX_LOOKUPS {
            self.out.aborted = true;
            return;
        }
        let mut probe = self.pkt;
        probe.set_in_port(lookup_port);
        // Best rule: highest priority, then earliest slot.
        let mut best: Option<(u16, usize)> = None;
        for &(t, prio, idx) in &self.slots {
            if t == table
                && best.is_none_or(|(bp, _)| prio > bp)
                && matches(&self.rules[idx].matches, &probe, &self.nd)
                && self.regs.satisfy(&self.rules[idx].matches)
            {
                best = Some((prio, idx));
            }
        }
        let Some((_, idx)) = best else { return };
        self.out.rules.push(idx);
        self.rule_actions(idx, table, depth);
    }

    fn rule_actions(&mut self, idx: usize, table: u8, depth: usize) {
        let rules = self.rules;
        let mut goto = None;
        for a in &rules[idx].actions {
            if self.out.aborted {
                return;
            }
            match *a {
                Action::GotoTable(t) => goto = Some(t),
                Action::Controller { max_len } => self.emit_observer(DpAction::Controller {
                    in_port: self.ingress,
                    max_len,
                    reason: crate::actions::REASON_ACTION,
                    table,
                    cookie: rules[idx].cookie,
                }),
                Action::Resubmit(Resubmit { in_port, table: t }) => {
                    let t = if t == Some(255) { table } else { t.unwrap_or(table) };
                    self.table(t, in_port.unwrap_or(self.in_port), depth + 1)
                }
                // TTL exception: this rule stops here (no goto_table either); whoever
                // resubmitted to this table goes on.
                Action::DecTtl if self.ip() && self.pkt.nw_ttl() < 2 => return,
                _ => self.action(a),
            }
        }
        if let Some(t) = goto {
            self.table(t, self.in_port, depth + 1);
        }
    }

    fn emit(&mut self, a: DpAction) {
        self.out.actions.push(a);
    }

    /// An output or a packet-in: pending VLAN and ND writes are committed first.
    fn emit_observer(&mut self, a: DpAction) {
        self.commit_vlan();
        self.out.actions.extend(self.nd.commit_from(&self.nd_base));
        self.nd_base = self.nd;
        self.emit(a);
    }

    /// OVS's `commit_vlan_action`: the tags of the packet and of the flow counted from the
    /// outside to the first absent one, the same innermost ones kept, the packet's others
    /// popped and the flow's pushed. One tag for one: a VID/PCP rewrite if the TPIDs are
    /// the same, else a `ReplaceVlan` (the datapath compares the TPIDs); any other count
    /// with a pair of the same TCI whose TPIDs are not both known (a received tag's) at the
    /// innermost difference, a `CommitVlans` (the datapath compares them).
    fn commit_vlan(&mut self) {
        let flow = ([self.pkt.vlan_tci(0), self.pkt.vlan_tci(1)], self.tpids);
        let base = self.base;
        let count = |t: &[u16; 2]| t.iter().take_while(|&&x| x & VLAN_PRESENT != 0).count();
        let (mut b, mut f) = (count(&base.0), count(&flow.0));
        while b > 0 && f > 0 && (base.0[b - 1], base.1[b - 1]) == (flow.0[f - 1], flow.1[f - 1]) {
            b -= 1;
            f -= 1;
        }
        // The same TCI, and TPIDs that are not both known: the datapath compares them.
        let tpid_unknown = b > 0
            && f > 0
            && base.0[b - 1] == flow.0[f - 1]
            && !matches!((base.1[b - 1], flow.1[f - 1]), (TagTpid::Set(_), TagTpid::Set(_)));
        let tpid = |t: TagTpid| match t {
            TagTpid::Set(t) => t,
            TagTpid::Received(0) => crate::actions::TPID_OF_RECEIVED_OUTER,
            TagTpid::Received(_) => crate::actions::TPID_OF_RECEIVED_INNER,
        };
        if (b, f) == (1, 1) {
            let (old, new) = (base.0[0], flow.0[0]);
            if base.1[0] != flow.1[0] {
                self.emit(DpAction::ReplaceVlan { tpid: tpid(flow.1[0]), tci: new });
            } else {
                if (old ^ new) & 0x0fff != 0 {
                    self.emit(DpAction::SetVlanVid(new & 0x0fff));
                }
                if (old ^ new) & 0xe000 != 0 {
                    self.emit(DpAction::SetVlanPcp((new >> 13) as u8));
                }
            }
        } else if tpid_unknown {
            let tags = std::array::from_fn(|k| if k < f { (tpid(flow.1[k]), flow.0[k]) } else { (0, 0) });
            self.emit(DpAction::CommitVlans { pop: b as u8, push: f as u8, tags });
        } else {
            for _ in 0..b {
                self.emit(DpAction::PopVlan);
            }
            for k in (0..f).rev() {
                self.emit(DpAction::PushVlan { tpid: tpid(flow.1[k]), tci: flow.0[k] });
            }
        }
        self.base = flow;
    }

    fn output(&mut self, port: u32) {
        self.output_as(port, DpAction::Output(port));
    }

    fn output_as(&mut self, port: u32, send: DpAction) {
        if port != self.in_port && self.ports.contains(&port) {
            self.emit_observer(send);
        }
    }

    fn flood(&mut self) {
        for i in 0..self.ports.len() {
            let p = self.ports[i];
            if p != self.in_port {
                self.emit_observer(DpAction::Output(p));
            }
        }
    }

    fn tagged(&self) -> bool {
        self.pkt.vlan_tci(0) & VLAN_PRESENT != 0
    }

    /// `push_vlan`: the slots move in, the inner one falls out.
    fn push(&mut self, tpid: u16) {
        self.pkt.set_vlan_tci(1, self.pkt.vlan_tci(0));
        self.pkt.set_vlan_tci(0, VLAN_PRESENT);
        self.tpids = [TagTpid::Set(tpid), self.tpids[0]];
    }

    /// `strip_vlan` (OVS's `flow_pop_vlan`, which counts the tags from the outside): two
    /// tags move out; of one, the outer slot is emptied; none (an absent outer slot, a
    /// present inner one or not): nothing.
    fn pop(&mut self) {
        if !self.tagged() {
            return;
        }
        if self.pkt.vlan_tci(1) & VLAN_PRESENT != 0 {
            self.pkt.set_vlan_tci(0, self.pkt.vlan_tci(1));
            self.pkt.set_vlan_tci(1, 0);
            self.tpids = [self.tpids[1], TagTpid::Set(0)];
        } else {
            self.pkt.set_vlan_tci(0, 0);
            self.tpids[0] = TagTpid::Set(0);
        }
    }

    /// Sets the `field` bits of the outer slot to `bits` (the commit writes them out).
    fn set_outer(&mut self, field: u16, bits: u16) {
        let t = self.pkt.vlan_tci(0);
        self.pkt.set_vlan_tci(0, (t & !field) | bits);
    }

    /// Sets the `field` bits of the outer slot to `bits` and makes it present, with
    /// 0x8100 if it has no TPID (OVS's `flow_fix_vlan_tpid`).
    fn set_outer_present(&mut self, field: u16, bits: u16) {
        self.set_outer(field | VLAN_PRESENT, bits | VLAN_PRESENT);
        match self.tpids[0] {
            TagTpid::Set(0) => self.tpids[0] = TagTpid::Set(ethertype::VLAN),
            TagTpid::Received(j) if !self.received[j] => self.tpids[0] = TagTpid::Set(ethertype::VLAN),
            _ => {}
        }
    }

    fn ip(&self) -> bool {
        matches!(self.pkt.dl_type(), ethertype::IPV4 | ethertype::IPV6)
    }

    fn action(&mut self, a: &Action) {
        match *a {
            Action::Output(n) => self.output(n),
            Action::OutputTrunc { port, max_len } => self.output_as(port, DpAction::OutputTrunc { port, max_len }),
            // TABLE and CONTROLLER from a register are not modelled (as resubmit and
            // controller are not).
            Action::OutputReg(src) => match self.fetch(src) {
                0xfff8 => self.emit_observer(DpAction::Output(self.in_port)),
                0xfffa => self.normal(),
                0xfffb | 0xfffc => self.flood(),
                p if p <= 0xffff => self.output(ferrovs_config::port_from_16(p as u32)),
                _ => {}
            },
            Action::InPort => self.emit_observer(DpAction::Output(self.in_port)),
            Action::Flood | Action::All => self.flood(),
            Action::Normal => self.normal(),
            // On an absent tag: written in place, the inner slot stays.
            Action::ModVlanVid(v) => self.set_outer_present(0x0fff, v & 0x0fff),
            Action::ModVlanPcp(c) => self.set_outer_present(0xe000, ((c as u16) & 7) << 13),
            Action::StripVlan => self.pop(),
            Action::PushVlan(tpid) => self.push(tpid),
            Action::DecTtl => {
                if self.ip() {
                    self.pkt.set_nw_ttl(self.pkt.nw_ttl() - 1);
                    self.emit(DpAction::DecTtl);
                }
            }
            Action::Set(sf) => self.set(sf),
            // Groups are not modelled by the reference (it has no group table); the
            // translator's group tests state their expected actions directly.
            // Nor is `clone`, whose undoing of header changes is the translator's business;
            // its tests state their expected actions directly.
            Action::Resubmit(_)
            | Action::GotoTable(_)
            | Action::Controller { .. }
            | Action::Group(_)
            | Action::Note(_)
            | Action::Clone(_) => {}
            Action::ClearActions => self.action_set.clear(),
            Action::WriteActions(ref list) => self.action_set.extend_from_slice(list),
            Action::Load { dst, value, .. } => self.store(dst, value),
            Action::Move { src, dst } => {
                let nd_ok = |f: SubfieldField| match f {
                    SubfieldField::Packet(p) if p.is_nd() => nd_prereq(p, &self.pkt),
                    _ => true,
                };
                // A TCP, UDP or SCTP field's prerequisite fails on a later fragment.
                let l4_ok = |f: SubfieldField| match f {
                    SubfieldField::Packet(p) if p.is_transport() => self.pkt.nw_frag() & FRAG_LATER == 0,
                    _ => true,
                };
                if nd_ok(src.field) && nd_ok(dst.field) && l4_ok(src.field) && l4_ok(dst.field) {
                    let v = self.fetch(src);
                    self.store(dst, v);
                }
            }
            Action::WriteMetadata { value, mask } => {
                self.regs.metadata = (self.regs.metadata & !mask) | (value & mask);
            }
        }
    }

    /// The action set at the pipeline's end: nothing without an output, group or resubmit;
    /// otherwise the last pop, push and dec_ttl, every field write in order, and the one
    /// group, else the last output, else the last resubmit; run as table 0's rule would.
    fn run_action_set(&mut self) {
        let set = std::mem::take(&mut self.action_set);
        let last = |f: fn(&Action) -> bool| set.iter().rev().find(|a| f(a)).cloned();
        let output = |a: &Action| {
            matches!(
                a,
                Action::Output(_)
                    | Action::InPort
                    | Action::Flood
                    | Action::All
                    | Action::Normal
                    | Action::Controller { .. }
            )
        };
        let Some(fin) = last(|a| matches!(a, Action::Group(_)))
            .or_else(|| last(output))
            .or_else(|| last(|a| matches!(a, Action::Resubmit(_))))
        else {
            return;
        };
        let mut list: Vec<Action> = [
            last(|a| matches!(a, Action::StripVlan)),
            last(|a| matches!(a, Action::PushVlan(_))),
            last(|a| matches!(a, Action::DecTtl)),
        ]
        .into_iter()
        .flatten()
        .collect();
        list.extend(
            set.iter()
                .filter(|a| {
                    matches!(
                        a,
                        Action::Set(_)
                            | Action::Load { .. }
                            | Action::Move { .. }
                            | Action::ModVlanVid(_)
                            | Action::ModVlanPcp(_)
                    )
                })
                .cloned(),
        );
        list.push(fin);
        let cookie = self.out.rules.first().map_or(u64::MAX, |&i| self.rules[i].cookie);
        for a in &list {
            if self.out.aborted {
                return;
            }
            match *a {
                Action::Controller { max_len } => self.emit_observer(DpAction::Controller {
                    in_port: self.ingress,
                    max_len,
                    reason: crate::actions::REASON_ACTION,
                    table: 0,
                    cookie,
                }),
                Action::Resubmit(Resubmit { in_port, table }) => {
                    let t = if table == Some(255) { 0 } else { table.unwrap_or(0) };
                    self.table(t, in_port.unwrap_or(self.in_port), 1)
                }
                Action::DecTtl if self.ip() && self.pkt.nw_ttl() < 2 => return,
                _ => self.action(a),
            }
        }
    }

    /// The bits of `sf`, shifted down.
    fn fetch(&self, sf: Subfield) -> u128 {
        let full = match sf.field {
            SubfieldField::Packet(p) if p.is_in_port() => p.in_port_value(self.in_port).expect("an in_port field"),
            SubfieldField::Packet(p) if p.is_nd() => self.nd.get(p.def().slot),
            SubfieldField::Packet(p) => p.def().get(p.def().slot.get(&self.pkt)),
            f => self.regs.get(f.pipeline().expect("not a packet field")),
        };
        (full & sf.bits()) >> sf.ofs
    }

    /// Writes `value` into the bits of `sf`; a packet field as a set-field of the whole.
    fn store(&mut self, sf: Subfield, value: u128) {
        let bits = sf.bits();
        let put = |old: u128| (old & !bits) | ((value << sf.ofs) & bits);
        match sf.field {
            SubfieldField::Packet(p) if p.is_in_port() => {
                let old = p.in_port_value(self.in_port).expect("an in_port field");
                self.in_port = p.in_port_written(put(old));
            }
            SubfieldField::Packet(PacketField::VlanTci) => {
                // The outer slot's TCI only: its TPID and the inner slot stay.
                let tci = put(u128::from(self.pkt.vlan_tci(0))) as u16;
                if tci & VLAN_PRESENT != 0 {
                    self.set_outer_present(0xffff, tci);
                } else {
                    self.set_outer(0xffff, tci);
                }
            }
            // OVS's flow_set_vlan_vid / flow_set_vlan_pcp: the VID of a present or absent
            // tag; the PCP of a present one.
            SubfieldField::Packet(p @ (PacketField::VlanVid | PacketField::VlanPcp)) => {
                let d = p.def();
                let bits = d.slot_bits(sf.bits()) as u16;
                let new = d.slot_bits(value << sf.ofs) as u16;
                if self.tagged() {
                    self.set_outer(bits, new);
                } else if p == PacketField::VlanVid {
                    let t = self.pkt.vlan_tci(0);
                    self.pkt.set_vlan_tci(0, (t & !bits) | new);
                }
            }
            // ARP fields: the flow's on any packet, the packet's only if it is ARP.
            SubfieldField::Packet(p) if p.is_arp() => {
                let d = p.def();
                let new = d.slot_bits(put(d.get(d.slot.get(&self.pkt))));
                d.slot.put(&mut self.pkt, new);
                if self.pkt.dl_type() == ethertype::ARP {
                    self.emit(super::translate::arp_action(d.slot, new));
                }
            }
            // MPLS entry parts: only MPLS packets get here (the rule's prerequisite);
            // the written bits of the entry, nothing else.
            SubfieldField::Packet(p) if p.is_mpls() => {
                if !matches!(self.pkt.dl_type(), ethertype::MPLS | ethertype::MPLS_MCAST) {
                    return;
                }
                let d = p.def();
                let lse = self.pkt.mpls_lse();
                let new = d.slot_bits(put(d.get(u128::from(lse)))) as u32;
                let written = d.slot_bits(bits) as u32;
                self.pkt.set_mpls_lse((lse & !written) | (new & written));
                self.emit(DpAction::SetMplsLse { value: new & written, mask: written });
            }
            // ND fields: the flow's, on an ND message of the field's type; the packet's at
            // the next output.
            SubfieldField::Packet(p) if p.is_nd() => {
                if nd_prereq(p, &self.pkt) {
                    let slot = p.def().slot;
                    self.nd.put(slot, put(self.nd.get(slot)));
                }
            }
            SubfieldField::Packet(p) => {
                if let Some(set) = p.set_field(put(p.def().get(p.def().slot.get(&self.pkt)))) {
                    self.set(set);
                }
            }
            f => {
                let pf = f.pipeline().expect("not a packet field");
                self.regs.set(pf, put(self.regs.get(pf)));
            }
        }
    }

    fn set(&mut self, sf: SetField) {
        let ip4 = self.pkt.dl_type() == ethertype::IPV4;
        let ip6 = self.pkt.dl_type() == ethertype::IPV6;
        let p = &mut self.pkt;
        let a = match sf {
            SetField::DlSrc(m) => {
                p.set_dl_src(m);
                Some(DpAction::SetEthSrc(m))
            }
            SetField::DlDst(m) => {
                p.set_dl_dst(m);
                Some(DpAction::SetEthDst(m))
            }
            // `vlan_vid` has no prerequisite in OVS (`vlan_pcp` needs a VID): on an absent
            // tag the write makes one, as `mod_vlan_vid` does (the value carries the
            // present bit). A rule can only be loaded with a tag known at that point, but
            // the action set runs `strip_vlan` before every write.
            SetField::VlanVid(v) => {
                return self.set_outer_present(0x0fff, v & 0x0fff);
            }
            SetField::VlanPcp(c) if p.vlan_tci(0) & VLAN_PRESENT != 0 => {
                return self.set_outer(0xe000, ((c as u16) & 7) << 13);
            }
            SetField::NwSrc(x) if ip4 => {
                p.set_nw_src(x);
                Some(DpAction::SetIpv4Src(x))
            }
            SetField::NwDst(x) if ip4 => {
                p.set_nw_dst(x);
                Some(DpAction::SetIpv4Dst(x))
            }
            SetField::Ipv6Src(x) if ip6 => {
                p.set_ipv6_src(x);
                Some(DpAction::SetIpv6Src(x))
            }
            SetField::Ipv6Dst(x) if ip6 => {
                p.set_ipv6_dst(x);
                Some(DpAction::SetIpv6Dst(x))
            }
            SetField::Ipv6Label(l) if ip6 => {
                p.set_ipv6_label(l & 0xfffff);
                Some(DpAction::SetIpv6Label(l & 0xfffff))
            }
            SetField::IpDscp(d) if ip4 || ip6 => {
                p.set_nw_tos((p.nw_tos() & 3) | ((d & 0x3f) << 2));
                Some(DpAction::SetIpDscp(d & 0x3f))
            }
            SetField::NwEcn(e) if ip4 || ip6 => {
                p.set_nw_tos((p.nw_tos() & 0xfc) | (e & 3));
                Some(DpAction::SetIpEcn(e & 3))
            }
            SetField::NwTtl(t) if ip4 || ip6 => {
                p.set_nw_ttl(t);
                Some(DpAction::SetTtl(t))
            }
            // L4 ports; for ICMP/ICMPv6 the type (src) and code (dst), as OVS writes them.
            SetField::TpSrc(x) | SetField::TpDst(x)
                if p.nw_frag() & FRAG_LATER == 0
                    && match p.nw_proto() {
                        ipproto::TCP | ipproto::UDP | ipproto::SCTP => ip4 || ip6,
                        ipproto::ICMP => ip4,
                        ipproto::ICMPV6 => ip6,
                        _ => false,
                    } =>
            {
                if matches!(sf, SetField::TpSrc(_)) {
                    p.set_tp_src(x);
                    Some(DpAction::SetTpSrc(x))
                } else {
                    p.set_tp_dst(x);
                    Some(DpAction::SetTpDst(x))
                }
            }
            _ => None,
        };
        if let Some(a) = a {
            self.emit(a);
        }
    }

    fn normal(&mut self) {
        // No input bundle (a written in_port the bridge lacks): nothing, as OVS; but
        // OFPP_NONE and OFPP_CONTROLLER are OVS's "none" bundle: no learning, no port
        // excluded.
        if !ferrovs_config::is_no_port(self.in_port) && !self.ports.contains(&self.in_port) {
            return;
        }
        let tci = self.pkt.vlan_tci(0);
        // Partial VLAN tag: dropped as malformed (OVS's xlate_normal), nothing learned.
        if tci & VLAN_PRESENT == 0 && (self.pkt.dl_type() == 0x8100 || self.pkt.dl_type() == 0x88a8) {
            return;
        }
        let vlan = if tci & VLAN_PRESENT != 0 { tci & 0x0fff } else { 0 };
        let inner = self.pkt.vlan_tci(1);
        let (last, second) = (crate::actions::TPID_OF_LAST_POP, crate::actions::TPID_OF_SECOND_LAST_POP);
        // A tag with VID 0 and PCP 0 leaves untagged (OVS's xvlan_put), then comes back:
        // an outer one alone, an inner one behind a sent outer one with both popped and
        // the outer pushed back around the outputs.
        let (send, back) = if tci & VLAN_PRESENT == 0 {
            (vec![], vec![])
        } else if tci & 0xefff == 0 {
            (vec![DpAction::PopVlan], vec![DpAction::PushVlan { tpid: last, tci: VLAN_PRESENT }])
        } else if inner & VLAN_PRESENT != 0 && inner & 0xefff == 0 {
            let outer = tci & 0xefff | VLAN_PRESENT;
            (
                vec![DpAction::PopVlan, DpAction::PopVlan, DpAction::PushVlan { tpid: second, tci: outer }],
                vec![
                    DpAction::PopVlan,
                    DpAction::PushVlan { tpid: second, tci: VLAN_PRESENT },
                    DpAction::PushVlan { tpid: last, tci: outer },
                ],
            )
        } else {
            (vec![], vec![])
        };
        if !send.is_empty() {
            self.commit_vlan();
        }
        let start = self.out.actions.len();
        self.out.actions.extend_from_slice(&send);
        self.normal_outputs(vlan);
        if self.out.actions.len() == start + send.len() {
            self.out.actions.truncate(start);
        } else if !back.is_empty() {
            let at = self.out.actions.len();
            self.out.actions.extend_from_slice(&back);
            self.retag = Some((at, self.out.actions.len()));
        }
    }

    fn normal_outputs(&mut self, vlan: u16) {
        let src = self.pkt.dl_src();
        let dst = self.pkt.dl_dst();
        if !is_multicast(src) && !ferrovs_config::is_no_port(self.in_port) {
            let l = MacLearn { vlan, mac: src, port: self.in_port };
            if self.out.learns.last() != Some(&l) {
                self.out.learns.push(l);
            }
        }
        if is_reserved(dst) {
            return;
        }
        if is_multicast(dst) {
            return self.flood();
        }
        match self.macs.lookup_after(&self.out.learns, vlan, dst, self.now) {
            Some(port) if self.ports.contains(&port) => self.output(port),
            _ => self.flood(),
        }
    }
}
