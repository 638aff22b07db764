//! The PMD-side flow pipeline: flow cache lookups per burst, parked misses, upcalls.
//!
//! # Design
//!
//! A [`FlowPipeline`] is the [`Classifier`] of one PMD thread. It owns that PMD's
//! [`FlowCache`] (EMC -> signature cache -> tuple-space classifier) and a
//! [`PendingMisses`] table of *parked* packets, and talks to the slow path with the
//! messages of [`ferrovs_flowcache::upcall`] (read that module's doc: it is the contract).
//!
//! Per burst ([`Classifier::classify`]): extract the keys of up to 32 frames into fixed
//! arrays, hash each with the NIC's RSS hash when the mbuf has one (else
//! [`FlowKey::hash`]), read the clock once, and run [`FlowCache::lookup_batch`]. Each
//! packet's verdict is its megaflow's action list, borrowed from the cache, or `Miss`.
//! Nothing is allocated, locked or called across FFI per packet (the clock costs one
//! `rdtsc` per burst).
//!
//! Misses ([`Classifier::miss`], rare) re-extract the key and park the packet under it
//! (see [`PendingMisses`] for the table's design and costs):
//!
//! ```text
//!   key already parked      -> the packet joins that key (no new upcall)
//!   parking table full      -> give the packet back (dropped), count park_full
//!   new key                 -> add the key to this burst's UpcallBatch
//! ```
//!
//! After the burst's misses ([`Classifier::misses_done`]) the batch goes to the slow
//! path as one message (counted in `upcalls_sent`, one per key). If the upcall queue is
//! full, nobody will answer those keys: their packets (the first ones and any that joined
//! them in the same burst) are dropped at once and counted in `upcall_queue_full`.
//!
//! Between bursts ([`Classifier::handle_message`]) the slow path's answers arrive:
//! - `Install{id, megaflow}`: insert it (`insert_unchecked`: the slow path guarantees no
//!   overlap), name it `id` (the private `flow_names` module), then execute its actions on every
//!   parked packet it matches, in arrival order, through the [`Injector`] (so they leave
//!   through the PMD's own tx batches, before any newer packet of the flow can be
//!   classified). If the cache refuses it (full, or an identical key+mask is installed),
//!   the parked packets are still executed with its actions and the slow path is told
//!   `Refused`.
//! - `Execute{key, actions}`: execute on the packets parked under exactly `key`.
//! - `Remove{ids}` / `ExpireIdle{idle_ms}`: remove, then report the final statistics in
//!   one [`PmdEvent`] per command (`Gone`/`Removed` or `Expired`; nothing is sent when no
//!   megaflow left).
//! - [`FlowMessage::Dump`]: reply with every installed megaflow.
//!
//! Once per loop iteration ([`Classifier::housekeeping`]), if the oldest parked key's
//! deadline has passed, keys whose upcall got no answer within the timeout are dropped,
//! at most [`EXPIRE_KEYS_PER_ITERATION`] keys per iteration, and counted
//! (`park_timeout`, and `drop_no_rule` on the ingress port). The counters are also
//! published there, at most once per iteration, as relaxed atomic stores
//! ([`PipelineCounters`]).

use std::sync::Arc;

use crossbeam_channel::Sender;
use ferrovs_dpdk::{BURST, Mbuf};
use ferrovs_flowcache::actions::DpActions;
use ferrovs_flowcache::extract::extract;
use ferrovs_flowcache::key::{FlowKey, Mask};
use ferrovs_flowcache::pending::{Parked, PendingConfig, PendingMisses};
use ferrovs_flowcache::upcall::{FlowId, GoneReason, PmdCommand, PmdEvent, UpcallBatch};
use ferrovs_flowcache::{FlowCache, FlowCacheConfig, InsertError, Megaflow, MegaflowId, MegaflowStats};

use crate::classify::{Classifier, Injector, PacketView, Verdict};
use crate::clock::PipelineClock;
use crate::flow_names::FlowNames;
use crate::stats::counter_set;

/// Most parked keys given up per loop iteration (the rest wait for the next ones), so
/// that a burst of timeouts never stalls forwarding.
pub const EXPIRE_KEYS_PER_ITERATION: usize = 64;

/// Messages a [`FlowPipeline`] accepts.
// `Command` (an `Install` carries two 64-byte keys) is the common message and `Dump` the
// rare one, so boxing the large variant would only add an allocation per install.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum FlowMessage {
    Command(PmdCommand),
    /// Reply with every installed megaflow: (id, key, mask, actions, stats).
    Dump(Sender<Vec<DpFlowDump>>),
}

/// One installed megaflow, as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpFlowDump {
    pub id: FlowId,
    /// Masked key.
    pub key: FlowKey,
    pub mask: Mask,
    pub actions: DpActions,
    pub stats: MegaflowStats,
}

counter_set! {
    /// A snapshot of a PMD's pipeline counters.
    pub struct PipelineStats;
    /// A PMD's pipeline counters, written by the PMD (relaxed stores, at most once per
    /// loop iteration) and read by any thread ([`PipelineCounters::snapshot`]).
    pub struct PipelineCounters;
    {
        /// Lookups answered by the exact-match cache.
        emc_hits,
        /// Lookups answered by the signature cache.
        sig_hits,
        /// Lookups answered by the tuple-space classifier.
        classifier_hits,
        /// Lookups that found no megaflow.
        misses,
        /// Upcalls queued to the slow path (one per newly parked key).
        upcalls_sent,
        /// Missed packets dropped because the upcall queue was full (or the slow path gone).
        upcall_queue_full,
        /// Missed packets dropped because the parking table was full.
        park_full,
        /// Parked packets dropped because their upcall was not answered in time.
        park_timeout,
        /// Packets parked right now (gauge).
        parked,
        /// Megaflows installed right now (gauge).
        megaflows,
        /// Classifier subtables (distinct masks) right now (gauge).
        masks,
        /// Install commands that installed a megaflow.
        installs,
        /// Install commands the cache refused (reported as `GoneReason::Refused`).
        install_refused,
        /// Megaflows removed by `Remove` commands.
        removals,
        /// Megaflows removed by `ExpireIdle` commands.
        expirations,
    }
}

/// The parking table's size for a PMD of a switch with `n_mbufs` mbufs and `n_pmds`
/// PMDs: half the pool shared among the PMDs (the other half is for the rx and tx rings),
/// at least 1,024 and at most 16,384 packets, and [`PendingConfig::DEFAULT_KEYS`] keys
/// (fewer if there are fewer packets: a key holds at least one).
pub fn pending_config_for_pool(n_mbufs: u32, n_pmds: usize) -> PendingConfig {
    let packets = (n_mbufs as usize / 2 / n_pmds.max(1)).clamp(1024, 4 * PendingConfig::DEFAULT_KEYS);
    PendingConfig::new(PendingConfig::DEFAULT_KEYS.min(packets), packets)
}

/// A PMD's flow pipeline: the [`Classifier`] that uses the flow cache. See the module doc.
pub struct FlowPipeline {
    pmd: usize,
    cache: FlowCache,
    upcalls: Sender<UpcallBatch>,
    /// The keys the current burst parked first, sent by `misses_done`.
    new_keys: UpcallBatch,
    events: Sender<PmdEvent>,
    clock: PipelineClock,
    shared: Arc<PipelineCounters>,
    local: PipelineStats,
    /// Counters changed since the last publication.
    dirty: bool,
    pending: PendingMisses<Mbuf>,
    names: FlowNames,
    // Per-burst scratch, reused.
    keys: [FlowKey; BURST],
    hashes: [u32; BURST],
    bytes: [u32; BURST],
    found: [Option<MegaflowId>; BURST],
    /// The clock as read for the last burst (misses of that burst are parked at it).
    burst_ms: u64,
}

impl FlowPipeline {
    /// The pipeline of PMD `pmd`. `upcalls` is the bounded queue to the slow path,
    /// `events` the (unbounded) queue of [`PmdEvent`]s, `clock` the time base shared with
    /// the slow path, `counters` where this PMD publishes its counters. `pending` sizes the
    /// parking table (see [`pending_config_for_pool`]); it is allocated here, once.
    pub fn new(
        pmd: usize,
        config: FlowCacheConfig,
        pending: PendingConfig,
        upcalls: Sender<UpcallBatch>,
        events: Sender<PmdEvent>,
        clock: PipelineClock,
        counters: Arc<PipelineCounters>,
    ) -> FlowPipeline {
        // Slots are below max_flows; preallocate up to 1M names, grow past that if needed.
        let names = config.max_flows.min(1 << 20);
        FlowPipeline {
            pmd,
            cache: FlowCache::new(config),
            upcalls,
            new_keys: UpcallBatch::new(pmd),
            events,
            clock,
            shared: counters,
            local: PipelineStats::default(),
            dirty: true,
            pending: PendingMisses::new(pending),
            names: FlowNames::with_capacity(names),
            keys: [FlowKey::ZERO; BURST],
            hashes: [0; BURST],
            bytes: [0; BURST],
            found: [None; BURST],
            burst_ms: 0,
        }
    }

    pub fn pmd(&self) -> usize {
        self.pmd
    }

    /// The counters as this PMD sees them now (the published ones may lag by one loop
    /// iteration).
    pub fn stats(&self) -> PipelineStats {
        let mut s = self.local;
        self.refresh(&mut s);
        s
    }

    /// The flow cache (read-only).
    pub fn cache(&self) -> &FlowCache {
        &self.cache
    }

    /// See [`FlowCache::set_direct_max_subtables`] (for benchmarks and tuning).
    pub fn set_direct_max_subtables(&mut self, n: usize) {
        self.cache.set_direct_max_subtables(n);
    }

    fn refresh(&self, s: &mut PipelineStats) {
        let c = self.cache.counters();
        s.emc_hits = c.emc_hits;
        s.sig_hits = c.sig_hits;
        s.classifier_hits = c.classifier_hits;
        s.misses = c.misses;
        s.parked = self.pending.packets() as u64;
        s.megaflows = self.cache.len() as u64;
        s.masks = self.cache.n_masks() as u64;
    }

    fn publish(&mut self) {
        let mut s = self.local;
        self.refresh(&mut s);
        self.local = s;
        self.shared.publish(&s);
        self.dirty = false;
    }

    /// The parking table (read-only).
    pub fn pending(&self) -> &PendingMisses<Mbuf> {
        &self.pending
    }

    /// Installs `megaflow` as `id` (the cache part of `Install`).
    fn install(&mut self, id: FlowId, megaflow: Megaflow, now_ms: u64) -> Result<MegaflowId, InstallError> {
        if self.names.contains(id) {
            return Err(InstallError::DuplicateId);
        }
        let mid = self.cache.insert_unchecked(megaflow, now_ms).map_err(InstallError::Cache)?;
        self.names.bind(id, mid);
        self.local.installs += 1;
        Ok(mid)
    }

    /// Removes the megaflows named `ids` (unknown ones are ignored).
    fn remove(&mut self, ids: &[FlowId]) -> Vec<(FlowId, MegaflowStats)> {
        let mut gone = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(mid) = self.names.unbind_id(id) else { continue };
            if let Some((_, stats)) = self.cache.remove(mid) {
                gone.push((id, stats));
            }
        }
        self.local.removals += gone.len() as u64;
        gone
    }

    /// Removes the megaflows idle for `idle_ms`.
    fn expire(&mut self, idle_ms: u64, now_ms: u64) -> Vec<(FlowId, MegaflowStats)> {
        let removed = self.cache.expire_idle(now_ms, idle_ms);
        let mut gone = Vec::with_capacity(removed.len());
        for (mid, stats) in removed {
            if let Some(id) = self.names.unbind_mid(mid) {
                gone.push((id, stats));
            }
        }
        self.local.expirations += gone.len() as u64;
        gone
    }

    /// Every installed megaflow with its name.
    pub fn dump(&self) -> Vec<DpFlowDump> {
        self.cache
            .iter()
            .filter_map(|m| {
                Some(DpFlowDump {
                    id: self.names.name(m.id)?,
                    key: *m.key,
                    mask: *m.mask,
                    actions: m.actions.to_vec(),
                    stats: m.stats,
                })
            })
            .collect()
    }

    fn send_event(&self, reason: GoneReason, flows: Vec<(FlowId, MegaflowStats)>) {
        if flows.is_empty() {
            return;
        }
        // The slow path going away is not the PMD's problem: it keeps forwarding.
        let _ = self.events.send(PmdEvent { pmd: self.pmd, reason, flows });
    }

    fn handle_command(&mut self, cmd: PmdCommand, inject: &mut Injector<'_>) {
        let now = self.clock.now_ms();
        match cmd {
            PmdCommand::Install { id, megaflow } => {
                let (mkey, mmask) = (megaflow.key.masked(&megaflow.mask), megaflow.mask);
                let covered = |k: &FlowKey| mkey.matches(&mmask, k);
                // The actions are needed after a refused insert (which consumes the
                // megaflow) only if packets are waiting for them.
                let fallback = (!self.pending.is_empty()).then(|| megaflow.actions.clone());
                match self.install(id, megaflow, now) {
                    Ok(mid) => {
                        let actions = self.cache.actions(mid).map(Vec::as_slice).unwrap_or(&[]);
                        self.pending.release_where(covered, |k, pkt| inject.execute(k.in_port(), pkt, actions));
                    }
                    Err(e) => {
                        tracing::warn!(pmd = self.pmd, id, error = %e, "megaflow install refused");
                        self.local.install_refused += 1;
                        let actions = fallback.as_deref().unwrap_or(&[]);
                        self.pending.release_where(covered, |k, pkt| inject.execute(k.in_port(), pkt, actions));
                        self.send_event(GoneReason::Refused, vec![(id, MegaflowStats::default())]);
                    }
                }
            }
            PmdCommand::Execute { key, actions } => {
                self.pending.release_key(&key, |k, pkt| inject.execute(k.in_port(), pkt, &actions));
            }
            PmdCommand::Remove { ids } => {
                let gone = self.remove(&ids);
                self.send_event(GoneReason::Removed, gone);
            }
            PmdCommand::ExpireIdle { idle_ms } => {
                let gone = self.expire(idle_ms, now);
                self.send_event(GoneReason::Expired, gone);
            }
        }
    }
}

/// Why an `Install` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum InstallError {
    #[error(transparent)]
    Cache(InsertError),
    #[error("flow id already installed on this PMD")]
    DuplicateId,
}

impl Classifier for FlowPipeline {
    type Message = FlowMessage;

    fn classify<'s>(&'s mut self, in_port: u32, pkts: &[PacketView<'_>], out: &mut [Verdict<'s>]) {
        // The poll loop never passes more than a burst; anything beyond stays `Miss` and
        // goes through the (correct, slower) miss path.
        let n = pkts.len().min(out.len()).min(BURST);
        if n == 0 {
            return;
        }
        // With few subtables the cache probes the classifier directly and reads no
        // hash: computing one per packet would be wasted work.
        if self.cache.uses_hashes(in_port) {
            for (i, p) in pkts[..n].iter().enumerate() {
                let key = extract(p.frame, in_port);
                self.hashes[i] = p.rss_hash.unwrap_or_else(|| key.hash());
                self.keys[i] = key;
                self.bytes[i] = p.frame.len() as u32;
            }
        } else {
            for (i, p) in pkts[..n].iter().enumerate() {
                self.keys[i] = extract(p.frame, in_port);
                self.bytes[i] = p.frame.len() as u32;
            }
        }
        let now = self.clock.now_ms();
        self.burst_ms = now;
        self.cache.lookup_batch(&self.keys[..n], &self.hashes[..n], &self.bytes[..n], now, &mut self.found[..n]);
        self.dirty = true;
        let this: &'s FlowPipeline = self;
        for (v, found) in out[..n].iter_mut().zip(&this.found[..n]) {
            *v = match found.and_then(|id| this.cache.actions(id)) {
                Some(actions) => Verdict::Actions(actions.as_slice()),
                None => Verdict::Miss,
            };
        }
    }

    fn miss(&mut self, in_port: u32, pkt: Mbuf) -> Option<Mbuf> {
        self.dirty = true;
        let key = extract(pkt.data(), in_port);
        match self.pending.park(&key, self.burst_ms, pkt) {
            Parked::Joined => None,
            Parked::Full(pkt) => {
                self.local.park_full += 1;
                Some(pkt)
            }
            Parked::NewKey => match self.new_keys.push(key) {
                Ok(()) => None,
                // Only if a burst had more packets than a batch holds: no upcall, so the
                // packet must not wait.
                Err(_) => {
                    self.local.upcall_queue_full += 1;
                    let mut back = None;
                    self.pending.release_key(&key, |_, pkt| back = Some(pkt));
                    back
                }
            },
        }
    }

    fn misses_done(&mut self, inject: &mut Injector<'_>) {
        if self.new_keys.is_empty() {
            return;
        }
        let n = self.new_keys.len() as u64;
        // The batch is copied into the channel's preallocated slot; ours is reused.
        match self.upcalls.try_send(self.new_keys.clone()) {
            Ok(()) => self.local.upcalls_sent += n,
            // Queue full, or the slow path gone: nobody will answer, so the packets must
            // not wait.
            Err(_) => {
                let mut dropped = 0u64;
                for key in self.new_keys.keys() {
                    self.pending.release_key(key, |k, pkt| {
                        dropped += 1;
                        inject.drop_missed(k.in_port(), pkt)
                    });
                }
                self.local.upcall_queue_full += dropped;
            }
        }
        self.new_keys.clear();
        self.dirty = true;
    }

    fn handle_message(&mut self, msg: FlowMessage, inject: &mut Injector<'_>) {
        self.dirty = true;
        match msg {
            FlowMessage::Command(cmd) => self.handle_command(cmd, inject),
            FlowMessage::Dump(reply) => {
                let _ = reply.send(self.dump());
            }
        }
    }

    fn housekeeping(&mut self, inject: &mut Injector<'_>) -> bool {
        let mut timed_out = 0;
        if let Some(deadline) = self.pending.next_deadline() {
            let now = self.clock.now_ms();
            if now >= deadline {
                timed_out =
                    self.pending.expire(now, EXPIRE_KEYS_PER_ITERATION, |k, pkt| inject.drop_missed(k.in_port(), pkt));
                self.local.park_timeout += timed_out as u64;
                self.dirty = true;
            }
        }
        if self.dirty {
            self.publish();
        }
        timed_out > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_flowcache::actions::DpAction;
    use ferrovs_flowcache::testpkt::{TCP4, Tcp4, tcp4_frame};

    fn pipeline(
        upcall_len: usize,
    ) -> (FlowPipeline, crossbeam_channel::Receiver<UpcallBatch>, crossbeam_channel::Receiver<PmdEvent>) {
        let (utx, urx) = crossbeam_channel::bounded(upcall_len);
        let (etx, erx) = crossbeam_channel::unbounded();
        let cfg = FlowCacheConfig { max_flows: 4, emc_entries: 64, emc_insert_inverse_prob: 1, sig_entries: 256 };
        let p = FlowPipeline::new(
            3,
            cfg,
            PendingConfig::new(4, 8),
            utx,
            etx,
            PipelineClock::new(1_000_000, 0),
            Arc::new(PipelineCounters::default()),
        );
        (p, urx, erx)
    }

    fn dst_mask() -> Mask {
        let mut m = FlowKey::ZERO;
        m.set_in_port(u32::MAX);
        m.set_dl_type(0xffff);
        m.set_nw_dst_u32(u32::MAX);
        m
    }

    #[test]
    fn classify_hits_installed_megaflows_and_names_round_trip() {
        let (mut p, _u, _e) = pipeline(4);
        let f1 = tcp4_frame(&TCP4);
        let f2 = tcp4_frame(&Tcp4 { sport: 999, ..TCP4 });
        let f3 = tcp4_frame(&Tcp4 { dst: [10, 9, 9, 9], ..TCP4 });
        let views = [
            PacketView { frame: &f1, rss_hash: None },
            PacketView { frame: &f2, rss_hash: Some(7) },
            PacketView { frame: &f3, rss_hash: None },
            PacketView { frame: &[0u8; 3], rss_hash: None },
        ];
        let mut out = [Verdict::Miss; 4];
        p.classify(1, &views, &mut out);
        assert!(out.iter().all(|v| *v == Verdict::Miss));
        let k1 = extract(&f1, 1);
        p.install(41, Megaflow::new(k1, dst_mask(), vec![DpAction::Output(2)]), 5).unwrap();
        assert_eq!(p.install(41, Megaflow::new(k1, dst_mask(), vec![]), 5), Err(InstallError::DuplicateId));
        let mut out = [Verdict::Miss; 4];
        p.classify(1, &views, &mut out);
        // f1 and f2 share the destination: both hit; f3 and the runt miss.
        assert_eq!(out[0], Verdict::Actions(&[DpAction::Output(2)]));
        assert_eq!(out[1], Verdict::Actions(&[DpAction::Output(2)]));
        assert_eq!((out[2], out[3]), (Verdict::Miss, Verdict::Miss));
        // Same packets from another port: the mask has in_port, so they miss.
        let mut out2 = [Verdict::Miss; 4];
        p.classify(2, &views, &mut out2);
        assert!(out2.iter().all(|v| *v == Verdict::Miss));
        let s = p.stats();
        assert_eq!((s.classifier_hits + s.sig_hits + s.emc_hits, s.misses, s.megaflows, s.installs), (2, 10, 1, 1));
        let dump = p.dump();
        assert_eq!(dump.len(), 1);
        assert_eq!((dump[0].id, dump[0].stats.packets, dump[0].key), (41, 2, k1.masked(&dst_mask())));
        assert_eq!(p.remove(&[41, 77]), vec![(41, dump[0].stats)]);
        assert!(p.remove(&[41]).is_empty());
        let mut out = [Verdict::Miss; 4];
        p.classify(1, &views, &mut out);
        assert!(out.iter().all(|v| *v == Verdict::Miss));
        assert!(p.dump().is_empty());
    }

    #[test]
    fn expiry_names_the_idle_flows_and_the_table_limit_refuses() {
        let (mut p, _u, _e) = pipeline(4);
        let frames: Vec<Vec<u8>> = (0..5u8).map(|i| tcp4_frame(&Tcp4 { dst: [10, 0, 0, i], ..TCP4 })).collect();
        for (i, f) in frames.iter().enumerate().take(4) {
            p.install(i as u64, Megaflow::new(extract(f, 1), dst_mask(), vec![DpAction::Output(2)]), 0).unwrap();
        }
        let fifth = Megaflow::new(extract(&frames[4], 1), dst_mask(), vec![]);
        assert!(matches!(p.install(4, fifth, 0), Err(InstallError::Cache(InsertError::Full(4)))));
        // Flows 1 and 3 are used at t=50; expiring with idle 30 at t=60 removes 0 and 2.
        let views =
            [PacketView { frame: &frames[1], rss_hash: None }, PacketView { frame: &frames[3], rss_hash: None }];
        // now_ms() reads the real TSC: look up through the cache with explicit times.
        let keys = [extract(&frames[1], 1), extract(&frames[3], 1)];
        let mut found = [None; 2];
        p.cache.lookup_batch(&keys, &[keys[0].hash(), keys[1].hash()], &[60, 60], 50, &mut found);
        let mut gone = p.expire(30, 60);
        gone.sort_by_key(|g| g.0);
        assert_eq!(gone.iter().map(|g| g.0).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(p.stats().expirations, 2);
        let mut left: Vec<u64> = p.dump().iter().map(|d| d.id).collect();
        left.sort();
        assert_eq!(left, vec![1, 3]);
        let mut out = [Verdict::Miss; 2];
        p.classify(1, &views, &mut out);
        assert!(out.iter().all(|v| matches!(v, Verdict::Actions(_))));
    }
}
