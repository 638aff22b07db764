//! Deterministic large rule sets and packets for the classifier's differential test and
//! the `xlate_scale` timing example (included by both with `#[path]`).
//!
//! Shapes, as an ACL-over-routing bridge has them: exact 5-tuple ACL rules (priority
//! 300 + a small offset), port ranges as masked `tp_dst` under a /16 destination
//! (priority 200 + offset), destination routes /8../32 (priority 100 + length) and a
//! priority-0 default. With `tables == 2`, table 0 holds the ACL shapes and sends
//! the rest on with `goto_table:1` or `resubmit(,1)`; table 1 holds the routes.

#![allow(dead_code)]

use std::net::Ipv4Addr;

use ferrovs_config::rules::{Action, Masked, Match, Resubmit, Rule};
use ferrovs_flowcache::key::{FlowKey, ethertype, ipproto};
use ferrovs_flowcache::testpkt::SplitMix;

/// Destination space of all rules and packets: 16.0.0.0/4.
const DST_BASE: u32 = 0x1000_0000;
const DST_SPAN: u32 = 0x1000_0000;
const SRC_BASE: u32 = 0x0a00_0000;

fn prefix(len: u32) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

fn rule(table: u8, priority: u16, matches: Match, actions: Vec<Action>) -> Rule {
    Rule { table, priority, cookie: 0, idle_timeout: 0, hard_timeout: 0, send_flow_rem: false, matches, actions }
}

fn v4(value: u32, len: u32) -> Option<Masked<Ipv4Addr>> {
    Some(Masked { value: Ipv4Addr::from(value & prefix(len)), mask: Ipv4Addr::from(prefix(len)) })
}

/// `n` rules (plus the default), `tables` 1 or 2; `mixed` spreads priorities over a
/// few values per shape instead of one.
pub fn scale_rules(n: usize, tables: u8, mixed: bool, seed: u64) -> Vec<Rule> {
    let mut r = SplitMix(seed);
    let mut out = Vec::with_capacity(n + 2);
    let off = |r: &mut SplitMix| if mixed { r.below(4) as u16 } else { 0 };
    let route_table = tables - 1;
    for i in 0..n {
        let proto = if r.chance(50) { ipproto::UDP } else { ipproto::TCP };
        let base = Match { dl_type: Some(ethertype::IPV4), nw_proto: Some(proto), ..Match::default() };
        match i % 5 {
            0 | 1 => {
                let m = Match {
                    nw_src: v4(SRC_BASE | r.below(1 << 16) as u32, 32),
                    nw_dst: v4(DST_BASE + r.below(DST_SPAN as u64) as u32, 32),
                    tp_src: Some(Masked { value: 1024 + r.below(60000) as u16, mask: 0xffff }),
                    tp_dst: Some(Masked { value: r.pick(&[22, 53, 80, 443, 8080]) as u16, mask: 0xffff }),
                    ..base
                };
                let act = if r.chance(50) { vec![Action::Output(2)] } else { vec![] };
                out.push(rule(0, 300 + off(&mut r), m, act));
            }
            2 => {
                let len = 6 + r.below(11) as u32; // tp_dst prefix 6..=16 bits
                let mask = (0xffff_u32 << (16 - len)) as u16;
                let m = Match {
                    nw_dst: v4(DST_BASE + r.below(DST_SPAN as u64) as u32, 16),
                    tp_dst: Some(Masked { value: r.below(65536) as u16 & mask, mask }),
                    ..base
                };
                let act = if r.chance(50) { vec![Action::Output(3)] } else { vec![] };
                out.push(rule(0, 200 + off(&mut r), m, act));
            }
            _ => {
                let len = 8 + r.below(25) as u32;
                let m = Match {
                    dl_type: Some(ethertype::IPV4),
                    nw_dst: v4(DST_BASE + r.below(DST_SPAN as u64) as u32, len),
                    ..Match::default()
                };
                out.push(rule(route_table, 100 + len as u16, m, vec![Action::Output(2 + (len % 3))]));
            }
        }
    }
    if tables == 2 {
        out.push(rule(0, 0, Match::default(), vec![Action::GotoTable(1)]));
        out.push(rule(
            0,
            1,
            Match { dl_type: Some(ethertype::IPV4), ..Match::default() },
            vec![Action::Resubmit(Resubmit { in_port: None, table: Some(1) }), Action::Output(4)],
        ));
    }
    out.push(rule(route_table, 0, Match::default(), vec![Action::Output(4)]));
    out
}

/// A packet: half of them built from a random rule's match (so that they hit or nearly
/// hit it), the rest random in the rules' address space.
pub fn scale_packet(rules: &[Rule], r: &mut SplitMix) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_in_port(1);
    k.set_dl_type(ethertype::IPV4);
    k.set_nw_ttl(64);
    k.set_nw_proto(if r.chance(50) { ipproto::UDP } else { ipproto::TCP });
    k.set_nw_src_u32(SRC_BASE | r.below(1 << 16) as u32);
    k.set_nw_dst_u32(DST_BASE + r.below(DST_SPAN as u64) as u32);
    k.set_tp_src(r.below(65536) as u16);
    let any_port = r.below(65536) as u16;
    k.set_tp_dst(r.pick(&[22, 53, 80, 443, 8080, any_port]));
    if r.chance(50) {
        let m = &rules[r.index(rules.len())].matches;
        if let Some(p) = m.nw_proto {
            k.set_nw_proto(p);
        }
        let noise = r.next_u64() as u32;
        if let Some(a) = m.nw_src {
            k.set_nw_src_u32(u32::from(a.value) | (noise & !u32::from(a.mask)));
        }
        if let Some(a) = m.nw_dst {
            k.set_nw_dst_u32(u32::from(a.value) | (noise & !u32::from(a.mask)));
        }
        if let Some(p) = m.tp_src {
            k.set_tp_src(p.value);
        }
        if let Some(p) = m.tp_dst {
            k.set_tp_dst(p.value | (noise as u16 & !p.mask));
        }
        // Sometimes one bit off, to exercise long witnesses.
        if r.chance(30) {
            k.set_nw_dst_u32(k.nw_dst_u32() ^ (1 << r.below(32)));
        }
    }
    k
}

/// What `deploy/bench`'s upcall points load, with `packets` packets: the generator's rules
/// (as `bulk_load` writes them: priorities spread over four values per shape) below a
/// `dl_src` rule of the highest priority that no packet matches, and packets of one UDP
/// 5-tuple each with their own source MAC (so every one is its own megaflow, and no
/// lookup stops early at the `dl_src` rule).
pub fn bench_workload(n: usize, packets: usize) -> (Vec<Rule>, Vec<FlowKey>) {
    let mut r = SplitMix(99);
    let mut rules = scale_rules(n, 1, true, 11);
    let top = Match { dl_src: Some(Masked { value: [2, 0, 0, 0, 0, 0], mask: [0xff; 6] }), ..Match::default() };
    rules.insert(0, Rule { priority: 65000, ..Rule::new(top, Vec::new()) });
    let keys = (0..packets)
        .map(|i| {
            let mut k = scale_packet(&rules, &mut r);
            k.set_nw_proto(ipproto::UDP);
            k.set_dl_src([2, 1, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            k
        })
        .collect();
    (rules, keys)
}
