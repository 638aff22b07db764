//! What a PMD reports ([`PmdReport`]): gone megaflows, and packets executed without a
//! megaflow, credited to the rules that handled them.
//!
//! An `Execute` answer installs nothing, so no megaflow's statistics will ever carry its
//! packets; the PMD reports their count and length under the key instead
//! ([`ExecutedKey`]), and the slow path credits them to the rules of that key's
//! translation against the current rules and MAC table (one more translation per
//! `Execute`, off the PMD). If the rules changed between the `Execute` and its report
//! (a few milliseconds), the packets count for the rules that would handle them now.

use super::{SlowPath, ms};
use crate::upcall::{ExecutedKey, PmdReport};
use crate::xlate::translate;

impl SlowPath {
    /// Credits the packets of an `Execute` answer of PMD `pmd` to the rules of their
    /// key's translation. A key on no bridge credits nothing.
    pub fn credit_executed(&mut self, pmd: usize, e: &ExecutedKey) {
        let _ = pmd;
        let Some(&b) = self.port_bridge.get(&e.key.in_port()) else { return };
        let br = &self.bridges[b];
        let t = translate(&br.tables, &br.macs, &br.port_map.of_key(&e.key), ms(e.used));
        self.counters.executed_packets += e.packets;
        self.bridges[b].stats.credit(&t.rules, e.packets, e.bytes, ms(e.used));
    }

    /// Applies a whole report: its gone megaflows ([`SlowPath::handle_event`]) and its
    /// executed keys ([`SlowPath::credit_executed`]).
    pub fn handle_report(&mut self, r: &PmdReport, now_ms: u64) {
        for ev in r.gone_events() {
            self.handle_event(&ev, now_ms);
        }
        for e in r.executed() {
            self.credit_executed(r.pmd, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::super::{BridgeSpec, SlowPathConfig};
    use super::*;
    use crate::extract::extract;
    use crate::flow_cache::{FlowCache, FlowCacheConfig};
    use crate::pending::{Parked, PendingConfig, PendingMisses};
    use crate::testpkt::{TCP4, Tcp4, tcp4_frame, udp4_frame};
    use crate::upcall::{GoneFlow, GoneReason, PmdCommand, Upcall};

    /// A PMD as the upcall contract describes it, over the real cache and parking table,
    /// reporting as the PMD does; the frames it handles are `(in_port, frame)`.
    struct Pmd {
        cache: FlowCache,
        park: PendingMisses<usize>,
        names: Vec<(u64, crate::MegaflowId)>,
        /// Reports filled so far (a new one when the last is full).
        reports: Vec<PmdReport>,
    }

    impl Pmd {
        fn new() -> Pmd {
            Pmd {
                cache: FlowCache::new(FlowCacheConfig::for_max_flows(64)),
                park: PendingMisses::new(PendingConfig::new(64, 256)),
                names: Vec::new(),
                reports: vec![PmdReport::new(0)],
            }
        }

        /// One packet: a cache hit counts in its megaflow; a miss, or a packet of a
        /// shadowed key, parks (a new key becomes an upcall).
        fn packet(&mut self, key: &crate::key::FlowKey, len: usize, now: u64, upcalls: &mut VecDeque<Upcall>) {
            let mut out = [None];
            if !self.park.must_join(key) {
                self.cache.lookup_batch(std::slice::from_ref(key), &[key.hash()], &[len as u32], now, &mut out);
            }
            if out[0].is_none() && matches!(self.park.park(key, now, len), Parked::NewKey) {
                upcalls.push_back(Upcall { pmd: 0, key: *key });
            }
        }

        fn apply(&mut self, cmd: PmdCommand, now: u64) {
            let (mut packets, mut bytes) = (0u64, 0u64);
            let mut count = |_: &crate::key::FlowKey, len: usize| {
                packets += 1;
                bytes += len as u64;
            };
            match cmd {
                PmdCommand::Install { id, key, megaflow } => {
                    let covers = megaflow.clone();
                    let mid = self.cache.insert_unchecked(megaflow, now).expect("room");
                    self.park.release_key(&key, &mut count);
                    self.park.shadow_where(|k| covers.matches(k));
                    self.cache.add_stats(mid, packets, bytes, 0, now);
                    self.names.push((id, mid));
                }
                PmdCommand::Execute { key, .. } => {
                    self.park.release_key(&key, &mut count);
                    let e = ExecutedKey { key, packets, bytes, used: now };
                    if let Err(e) = self.reports.last_mut().unwrap().push_executed(e) {
                        let mut r = PmdReport::new(0);
                        r.push_executed(e).unwrap();
                        self.reports.push(r);
                    }
                }
                PmdCommand::Remove { ids } => {
                    for id in ids {
                        if let Some(i) = self.names.iter().position(|n| n.0 == id) {
                            let (_, mid) = self.names.swap_remove(i);
                            let (_, stats) = self.cache.remove(mid).unwrap();
                            let g = GoneFlow { id, reason: GoneReason::Removed, stats };
                            self.reports.last_mut().unwrap().push_gone(g).unwrap();
                        }
                    }
                }
                PmdCommand::ExpireIdle { .. } => {}
            }
        }
    }

    #[test]
    fn rules_count_every_packet_sent_first_cached_and_executed() {
        // Port 1 -> rule 0, port 3 -> rule 1: one megaflow per port would do, but the
        // flow limit of 1 makes every miss of port 3 an Execute (no megaflow), and the
        // flows of port 1 parked before its megaflow came are raced Executes.
        let br = BridgeSpec {
            groups: Default::default(),
            name: "br0".into(),
            ports: vec![1, 2, 3],
            datapath_ports: Vec::new(),
            rules: vec![
                ferrovs_config::parse_flow("priority=10,in_port=1,actions=output:2").unwrap(),
                ferrovs_config::parse_flow("priority=10,in_port=3,actions=output:2").unwrap(),
                ferrovs_config::parse_flow("priority=0,actions=drop").unwrap(),
            ],
        };
        let cfg = SlowPathConfig { flow_limit_per_pmd: 1, ..Default::default() };
        let mut sp = SlowPath::new(vec![br], 1, cfg, 0).unwrap();
        let mut pmd = Pmd::new();
        // 12 flows, 1 to 4 packets each, interleaved; the slow path answers only after
        // each round, so later packets of a flow join its parked key.
        let frames: Vec<(u32, Vec<u8>)> = (0..12u16)
            .map(|i| {
                let f = if i % 2 == 0 {
                    tcp4_frame(&Tcp4 { sport: 1000 + i, ..TCP4 })
                } else {
                    udp4_frame(2000 + i, 53, &vec![0u8; i as usize])
                };
                (if i < 7 { 1 } else { 3 }, f)
            })
            .collect();
        let mut sent = [(0u64, 0u64); 2];
        let mut upcalls = VecDeque::new();
        let mut now = 1;
        for round in 0..4u16 {
            for (i, (port, f)) in frames.iter().enumerate() {
                if (i as u16) % 4 < 4 - round {
                    let key = extract(f, *port);
                    pmd.packet(&key, f.len(), now, &mut upcalls);
                    let r = if *port == 1 { 0 } else { 1 };
                    sent[r].0 += 1;
                    sent[r].1 += f.len() as u64;
                }
            }
            now += 1;
            while let Some(u) = upcalls.pop_front() {
                for (_, cmd) in sp.handle_upcall(&u, now) {
                    pmd.apply(cmd, now);
                }
            }
        }
        let c = sp.counters();
        assert!(c.executes_flow_limit > 0 && c.executes_raced > 0 && c.installs == 1, "{c:?}");
        // The executed keys' reports, then every megaflow's live stats.
        for r in pmd.reports.drain(..) {
            sp.handle_report(&r, now);
        }
        let live: Vec<_> = pmd.names.iter().map(|(id, mid)| (0usize, *id, pmd.cache.stats(*mid).unwrap())).collect();
        let dump = sp.dump_flows("br0", &live, now).unwrap();
        assert_eq!((dump[0].packets, dump[0].bytes), sent[0]);
        assert_eq!((dump[1].packets, dump[1].bytes), sent[1]);
        assert_eq!(dump[2].packets, 0);
        // Removing the megaflows: their final stats come back as a report; the counts
        // do not move.
        sp.update_stats(&live, now);
        let ids: Vec<u64> = pmd.names.iter().map(|n| n.0).collect();
        pmd.reports.push(PmdReport::new(0));
        pmd.apply(PmdCommand::Remove { ids }, now);
        sp.handle_report(&pmd.reports[0], now);
        let dump = sp.dump_flows("br0", &[], now).unwrap();
        assert_eq!(((dump[0].packets, dump[0].bytes), (dump[1].packets, dump[1].bytes)), (sent[0], sent[1]));
        assert_eq!(sp.n_flows(0), 0);
    }
}
