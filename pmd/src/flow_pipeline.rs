//! The PMD-side flow pipeline: flow cache lookups per burst, parked misses, upcalls.
//!
//! # Design
//!
//! A [`FlowPipeline`] is the [`Classifier`] of one PMD thread. It owns that PMD's
//! [`FlowCache`] (EMC -> signature cache -> tuple-space classifier) and a small table of
//! *parked* packets, and talks to the slow path with the messages of
//! [`ferrovs_flowcache::upcall`] (read that module's doc: it is the contract).
//!
//! Per burst ([`Classifier::classify`]): extract the keys of up to 32 frames into fixed
//! arrays, hash each with the NIC's RSS hash when the mbuf has one (else
//! [`FlowKey::hash`]), read the clock once, and run [`FlowCache::lookup_batch`]. Each
//! packet's verdict is its megaflow's action list, borrowed from the cache, or `Miss`.
//! Nothing is allocated, locked or called across FFI per packet (the clock costs one
//! `rdtsc` per burst).
//!
//! Misses ([`Classifier::miss`], rare) re-extract the key and park the packet under it:
//!
//! ```text
//!   key already parked      -> append the packet to that key's list (no new upcall)
//!   parking table full      -> give the packet back (dropped), count park_full
//!   upcall queue full       -> give the packet back (dropped), count upcall_queue_full
//!   otherwise               -> park it as a new key, send Upcall { pmd, key }
//! ```
//!
//! The parking table has fixed capacity ([`PARK_KEYS`] keys, [`PARK_PACKETS`] packets),
//! allocated once: packet slots form per-key singly linked lists threaded through a
//! slot array, with a free list, and every packet carries a sequence number so that
//! packets of several keys can be released in their global arrival order.
//!
//! Between bursts ([`Classifier::handle_message`]) the slow path's answers arrive:
//! - `Install{id, megaflow}`: insert it (`insert_unchecked`: the slow path guarantees no
//!   overlap), name it `id`, then execute its actions on every parked packet it matches,
//!   oldest first, through the [`Injector`] (so they leave through the PMD's own tx
//!   batches, before any newer packet of the flow can be classified). If the cache
//!   refuses it (full, or an identical key+mask is installed), the parked packets are
//!   still executed with its actions and the slow path is told `Refused`.
//! - `Execute{key, actions}`: execute on the packets parked under exactly `key`.
//! - `Remove{ids}` / `ExpireIdle{idle_ms}`: remove, then report the final statistics in
//!   one [`PmdEvent`] per command (`Gone`/`Removed` or `Expired`; nothing is sent when no
//!   megaflow left).
//! - [`FlowMessage::Dump`]: reply with every installed megaflow.
//!
//! Names: the slow path names megaflows with [`FlowId`]s, the cache with
//! [`MegaflowId`]s (slot + generation). A hash map translates ids to slots, and a vector
//! indexed by slot (sized to the flow limit) translates back, checking the generation.
//!
//! Once per loop iteration ([`Classifier::housekeeping`]), if anything is parked and the
//! oldest parked key's deadline has passed, keys parked for [`PARK_TIMEOUT_MS`] (the slow
//! path never answered) are dropped and counted (`park_timeout`, and `drop_no_rule` on
//! the ingress port). The counters are also published there, at most once per
//! iteration, as relaxed atomic stores ([`PipelineCounters`]).
//!
//! [`flowcache_editor`] adapts [`execute_edit`] (L3/L4 rewrites with checksum updates) to
//! the switch's [`FrameEditor`] hook; see [`pipeline_hooks`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Sender, TrySendError};
use ferrovs_dpdk::{BURST, Mbuf, rdtsc};
use ferrovs_flowcache::actions::{DpAction, DpActions};
use ferrovs_flowcache::edit::{EditOutcome, execute_edit};
use ferrovs_flowcache::extract::extract;
use ferrovs_flowcache::key::{FlowKey, Mask};
use ferrovs_flowcache::upcall::{FlowId, GoneReason, PmdCommand, PmdEvent, Upcall};
use ferrovs_flowcache::{FlowCache, FlowCacheConfig, InsertError, Megaflow, MegaflowId, MegaflowStats};

use crate::classify::{Classifier, Injector, PacketView, Verdict};
use crate::edit::{EditResult, FrameEditor};
use crate::switch::Hooks;

/// Most distinct keys parked at once (one bit each in a `u64`).
pub const PARK_KEYS: usize = 64;
/// Most packets parked at once, over all keys.
pub const PARK_PACKETS: usize = 512;
/// A parked key whose upcall got no answer for this long is dropped.
pub const PARK_TIMEOUT_MS: u64 = 1000;

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

/// Milliseconds since a TSC value shared by every PMD and the slow path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineClock {
    tsc_hz: u64,
    start_tsc: u64,
    /// ms = (ticks * mult) >> 64: one multiply instead of a division per read, see `new`.
    mult: u64,
}

impl PipelineClock {
    /// A clock counting from `start_tsc` (an [`rdtsc`] value) at `tsc_hz` ticks per second
    /// (`Eal::tsc_hz`). Frequencies below 1 MHz (none is real) are taken as 1 MHz, so that
    /// a zero never divides.
    pub fn new(tsc_hz: u64, start_tsc: u64) -> PipelineClock {
        let hz = tsc_hz.max(1_000_000);
        // Rounded up, so that a whole number of milliseconds of ticks is not read as one
        // less; the excess stays below 1e-5 ms per day of uptime.
        let mult = ((1000u128 << 64).div_ceil(hz as u128)) as u64;
        PipelineClock { tsc_hz, start_tsc, mult }
    }

    pub fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    pub fn start_tsc(&self) -> u64 {
        self.start_tsc
    }

    /// Milliseconds between the start and the TSC value `tsc` (0 before the start).
    #[inline]
    pub fn ms_at(&self, tsc: u64) -> u64 {
        let ticks = tsc.saturating_sub(self.start_tsc);
        ((ticks as u128 * self.mult as u128) >> 64) as u64
    }

    /// Milliseconds since the start, now.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.ms_at(rdtsc())
    }
}

macro_rules! pipeline_counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A PMD's pipeline counters, written by the PMD (relaxed stores, at most once per
        /// loop iteration) and read by any thread ([`PipelineCounters::snapshot`]).
        #[derive(Debug, Default)]
        pub struct PipelineCounters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A snapshot of [`PipelineCounters`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct PipelineStats {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl PipelineCounters {
            pub fn snapshot(&self) -> PipelineStats {
                PipelineStats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }

            fn publish(&self, s: &PipelineStats) {
                $(self.$name.store(s.$name, Ordering::Relaxed);)*
            }
        }

        impl PipelineStats {
            /// Adds `other` field by field (e.g. to sum over PMDs).
            pub fn add(&mut self, other: &PipelineStats) {
                $(self.$name += other.$name;)*
            }
        }
    };
}

pipeline_counters! {
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

// ---------------------------------------------------------------- parking table

const NIL: u16 = u16::MAX;

#[derive(Clone, Copy)]
struct ParkedKey {
    key: FlowKey,
    hash: u32,
    /// When the first packet was parked (and the upcall sent).
    since_ms: u64,
    head: u16,
    tail: u16,
}

const EMPTY_KEY: ParkedKey = ParkedKey { key: FlowKey::ZERO, hash: 0, since_ms: 0, head: NIL, tail: NIL };

/// Fixed-capacity table of packets waiting for the slow path, grouped by flow key.
/// Generic over the packet type so its logic is testable without DPDK.
struct ParkTable<P> {
    keys: Vec<ParkedKey>,
    /// Bit `e` set: `keys[e]` is in use.
    live: u64,
    slots: Vec<Option<P>>,
    /// Next slot of the same key (or of the free list).
    next: Vec<u16>,
    /// Arrival sequence number of the packet in each slot.
    seq: Vec<u64>,
    free: u16,
    n_pkts: usize,
    next_seq: u64,
    /// No parked key times out before this (may be early, never late).
    deadline_ms: u64,
}

impl<P> ParkTable<P> {
    fn new() -> Self {
        let next = (0..PARK_PACKETS).map(|i| if i + 1 < PARK_PACKETS { (i + 1) as u16 } else { NIL }).collect();
        ParkTable {
            keys: vec![EMPTY_KEY; PARK_KEYS],
            live: 0,
            slots: (0..PARK_PACKETS).map(|_| None).collect(),
            next,
            seq: vec![0; PARK_PACKETS],
            free: 0,
            n_pkts: 0,
            next_seq: 0,
            deadline_ms: u64::MAX,
        }
    }

    fn packets(&self) -> usize {
        self.n_pkts
    }

    #[cfg(test)]
    fn n_keys(&self) -> usize {
        self.live.count_ones() as usize
    }

    fn find(&self, key: &FlowKey, hash: u32) -> Option<usize> {
        let mut bits = self.live;
        while bits != 0 {
            let e = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let k = &self.keys[e];
            if k.hash == hash && k.key == *key {
                return Some(e);
            }
        }
        None
    }

    /// Room for a new key with one packet.
    fn has_room_for_new_key(&self) -> bool {
        self.live != u64::MAX && self.free != NIL
    }

    /// Parks the first packet of a new key. Gives it back if there is no room.
    fn park_new(&mut self, key: FlowKey, hash: u32, now_ms: u64, pkt: P) -> Result<usize, P> {
        if !self.has_room_for_new_key() {
            return Err(pkt);
        }
        let e = (!self.live).trailing_zeros() as usize;
        self.keys[e] = ParkedKey { key, hash, since_ms: now_ms, head: NIL, tail: NIL };
        self.live |= 1 << e;
        self.deadline_ms = self.deadline_ms.min(now_ms.saturating_add(PARK_TIMEOUT_MS));
        // Cannot fail: a free slot was checked above.
        self.join(e, pkt)?;
        Ok(e)
    }

    /// Appends a packet to parked key `e`. Gives it back if every slot is taken.
    fn join(&mut self, e: usize, pkt: P) -> Result<(), P> {
        let s = self.free;
        if s == NIL {
            return Err(pkt);
        }
        let si = s as usize;
        self.free = self.next[si];
        self.slots[si] = Some(pkt);
        self.next[si] = NIL;
        self.seq[si] = self.next_seq;
        self.next_seq += 1;
        self.n_pkts += 1;
        let k = &mut self.keys[e];
        if k.tail == NIL {
            k.head = s;
        } else {
            self.next[k.tail as usize] = s;
        }
        k.tail = s;
        Ok(())
    }

    /// Removes the oldest packet of key `e`; frees the key when it was the last one.
    fn pop(&mut self, e: usize) -> Option<P> {
        let s = self.keys[e].head;
        if s == NIL {
            return None;
        }
        let si = s as usize;
        let pkt = self.slots[si].take();
        self.keys[e].head = self.next[si];
        if self.keys[e].head == NIL {
            self.keys[e].tail = NIL;
            self.live &= !(1u64 << e);
            if self.live == 0 {
                self.deadline_ms = u64::MAX;
            }
        }
        self.next[si] = self.free;
        self.free = s;
        self.n_pkts -= 1;
        pkt
    }

    /// Releases every packet of the keys in bit set `which`, in global arrival order,
    /// passing each with its ingress port to `f`. Returns the number released.
    fn release(&mut self, mut which: u64, mut f: impl FnMut(u32, P)) -> usize {
        which &= self.live;
        let mut n = 0;
        while which != 0 {
            // The key whose oldest packet is the oldest of all.
            let mut best = usize::MAX;
            let mut best_seq = u64::MAX;
            let mut bits = which;
            while bits != 0 {
                let e = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let sq = self.seq[self.keys[e].head as usize];
                if sq < best_seq {
                    best_seq = sq;
                    best = e;
                }
            }
            let in_port = self.keys[best].key.in_port();
            if let Some(p) = self.pop(best) {
                f(in_port, p);
                n += 1;
            }
            if self.live & (1 << best) == 0 {
                which &= !(1u64 << best);
            }
        }
        n
    }

    /// The set of parked keys for which `pred` holds.
    fn keys_where(&self, mut pred: impl FnMut(&FlowKey) -> bool) -> u64 {
        let mut out = 0u64;
        let mut bits = self.live;
        while bits != 0 {
            let e = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if pred(&self.keys[e].key) {
                out |= 1 << e;
            }
        }
        out
    }

    /// Releases every key parked at or before `now_ms - PARK_TIMEOUT_MS` (to `f`) if the
    /// deadline has passed. Returns the number of packets released.
    fn expire(&mut self, now_ms: u64, f: impl FnMut(u32, P)) -> usize {
        if now_ms < self.deadline_ms {
            return 0;
        }
        let expired = self.keys_where_since(|since| since.saturating_add(PARK_TIMEOUT_MS) <= now_ms);
        let n = self.release(expired, f);
        let mut deadline = u64::MAX;
        let mut bits = self.live;
        while bits != 0 {
            let e = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            deadline = deadline.min(self.keys[e].since_ms.saturating_add(PARK_TIMEOUT_MS));
        }
        self.deadline_ms = deadline;
        n
    }

    fn keys_where_since(&self, pred: impl Fn(u64) -> bool) -> u64 {
        let mut out = 0u64;
        let mut bits = self.live;
        while bits != 0 {
            let e = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if pred(self.keys[e].since_ms) {
                out |= 1 << e;
            }
        }
        out
    }
}

// ---------------------------------------------------------------- the pipeline

/// Name of an installed megaflow, by cache slot.
#[derive(Clone, Copy)]
struct SlotName {
    generation: u32,
    id: FlowId,
}

/// A PMD's flow pipeline: the [`Classifier`] that uses the flow cache. See the module doc.
pub struct FlowPipeline {
    pmd: usize,
    cache: FlowCache,
    upcalls: Sender<Upcall>,
    events: Sender<PmdEvent>,
    clock: PipelineClock,
    shared: Arc<PipelineCounters>,
    local: PipelineStats,
    /// Counters changed since the last publication.
    dirty: bool,
    park: ParkTable<Mbuf>,
    slot_of: HashMap<FlowId, MegaflowId>,
    /// Indexed by cache slot.
    name_of: Vec<Option<SlotName>>,
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
    /// the slow path, `counters` where this PMD publishes its counters.
    pub fn new(
        pmd: usize,
        config: FlowCacheConfig,
        upcalls: Sender<Upcall>,
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
            events,
            clock,
            shared: counters,
            local: PipelineStats::default(),
            dirty: true,
            park: ParkTable::new(),
            slot_of: HashMap::with_capacity(names),
            name_of: vec![None; names],
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
        s.parked = self.park.packets() as u64;
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

    fn name(&self, mid: MegaflowId) -> Option<FlowId> {
        match self.name_of.get(mid.index() as usize) {
            Some(Some(n)) if n.generation == mid.generation() => Some(n.id),
            _ => None,
        }
    }

    fn forget(&mut self, mid: MegaflowId) {
        if let Some(slot) = self.name_of.get_mut(mid.index() as usize) {
            *slot = None;
        }
    }

    /// Installs `megaflow` as `id` (the cache part of `Install`).
    fn install(&mut self, id: FlowId, megaflow: Megaflow, now_ms: u64) -> Result<MegaflowId, InstallError> {
        if self.slot_of.contains_key(&id) {
            return Err(InstallError::DuplicateId);
        }
        let mid = self.cache.insert_unchecked(megaflow, now_ms).map_err(InstallError::Cache)?;
        self.slot_of.insert(id, mid);
        let i = mid.index() as usize;
        if i >= self.name_of.len() {
            self.name_of.resize(i + 1, None);
        }
        self.name_of[i] = Some(SlotName { generation: mid.generation(), id });
        self.local.installs += 1;
        Ok(mid)
    }

    /// Removes the megaflows named `ids` (unknown ones are ignored).
    fn remove(&mut self, ids: &[FlowId]) -> Vec<(FlowId, MegaflowStats)> {
        let mut gone = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(mid) = self.slot_of.remove(&id) else { continue };
            self.forget(mid);
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
            if let Some(id) = self.name(mid) {
                self.forget(mid);
                self.slot_of.remove(&id);
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
                    id: self.name(m.id)?,
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
                let waiting = self.park.keys_where(|k| mkey.matches(&mmask, k));
                // The actions are needed after a refused insert (which consumes the
                // megaflow) only if packets are waiting for them.
                let fallback = (waiting != 0).then(|| megaflow.actions.clone());
                match self.install(id, megaflow, now) {
                    Ok(mid) => {
                        let actions = self.cache.actions(mid).map(Vec::as_slice).unwrap_or(&[]);
                        self.park.release(waiting, |in_port, pkt| inject.execute(in_port, pkt, actions));
                    }
                    Err(e) => {
                        tracing::warn!(pmd = self.pmd, id, error = %e, "megaflow install refused");
                        self.local.install_refused += 1;
                        let actions = fallback.as_deref().unwrap_or(&[]);
                        self.park.release(waiting, |in_port, pkt| inject.execute(in_port, pkt, actions));
                        self.send_event(GoneReason::Refused, vec![(id, MegaflowStats::default())]);
                    }
                }
            }
            PmdCommand::Execute { key, actions } => {
                if let Some(e) = self.park.find(&key, key.hash()) {
                    self.park.release(1 << e, |in_port, pkt| inject.execute(in_port, pkt, &actions));
                }
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
        let hash = key.hash();
        if let Some(e) = self.park.find(&key, hash) {
            return match self.park.join(e, pkt) {
                Ok(()) => None,
                Err(pkt) => {
                    self.local.park_full += 1;
                    Some(pkt)
                }
            };
        }
        // Check for room before sending, so that no upcall is sent for a packet that then
        // cannot wait for its answer.
        if !self.park.has_room_for_new_key() {
            self.local.park_full += 1;
            return Some(pkt);
        }
        match self.upcalls.try_send(Upcall { pmd: self.pmd, key }) {
            Ok(()) => {
                self.local.upcalls_sent += 1;
                match self.park.park_new(key, hash, self.burst_ms, pkt) {
                    Ok(_) => None,
                    Err(pkt) => {
                        self.local.park_full += 1;
                        Some(pkt)
                    }
                }
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.local.upcall_queue_full += 1;
                Some(pkt)
            }
        }
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
        if self.park.packets() > 0 {
            let now = self.clock.now_ms();
            timed_out = self.park.expire(now, |in_port, pkt| inject.drop_missed(in_port, pkt));
            if timed_out > 0 {
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

// ---------------------------------------------------------------- L3/L4 edits

/// [`FrameEditor`] for the L3/L4 rewrites, backed by [`execute_edit`] (checksums updated
/// incrementally). A field the frame does not have (e.g. an IPv4 rewrite of an ARP frame)
/// leaves it unchanged, as in Open vSwitch; `DecTtl` at TTL 0 or 1 drops the packet and
/// skips the remaining actions.
pub fn flowcache_editor(frame: &mut [u8], a: &DpAction) -> EditResult {
    match execute_edit(frame, a) {
        EditOutcome::Applied | EditOutcome::Skipped => EditResult::Done,
        EditOutcome::Drop => EditResult::Drop,
        // Outputs and VLAN push/pop are executed by the PMD itself and never reach an
        // editor; if one ever does, refusing is safer than forwarding it unedited.
        EditOutcome::NotAnEdit | EditOutcome::NeedsResize => EditResult::Unsupported,
    }
}

/// [`Hooks`] for a switch running [`FlowPipeline`]s: the [`flowcache_editor`].
pub fn pipeline_hooks() -> Hooks {
    let editor: FrameEditor = flowcache_editor;
    Hooks { editor: Some(editor) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_flowcache::testpkt::{TCP4, Tcp4, checksums_ok, ipv4_header_checksum_ok, tcp4_frame, udp4_frame};
    use std::net::Ipv4Addr;

    fn key(port: u32, dst: u32) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.set_in_port(port);
        k.set_dl_type(0x0800);
        k.set_nw_dst_u32(dst);
        k
    }

    #[test]
    fn park_joins_and_releases_in_global_arrival_order() {
        let mut t: ParkTable<u32> = ParkTable::new();
        let (a, b, c) = (key(1, 10), key(2, 20), key(1, 30));
        let ea = t.park_new(a, a.hash(), 0, 100).unwrap();
        let eb = t.park_new(b, b.hash(), 0, 200).unwrap();
        t.join(ea, 101).unwrap();
        let ec = t.park_new(c, c.hash(), 0, 300).unwrap();
        t.join(eb, 201).unwrap();
        t.join(ea, 102).unwrap();
        assert_eq!((t.packets(), t.n_keys()), (6, 3));
        assert_eq!(t.find(&b, b.hash()), Some(eb));
        // Release a and b together: interleaved exactly as they arrived, with in_port.
        let mut got = Vec::new();
        assert_eq!(t.release((1 << ea) | (1 << eb), |p, x| got.push((p, x))), 5);
        assert_eq!(got, vec![(1, 100), (2, 200), (1, 101), (2, 201), (1, 102)]);
        assert_eq!((t.packets(), t.n_keys()), (1, 1));
        assert_eq!(t.find(&a, a.hash()), None);
        assert_eq!(t.find(&c, c.hash()), Some(ec));
        // The freed slots are reused.
        let ea2 = t.park_new(a, a.hash(), 0, 103).unwrap();
        let mut got = Vec::new();
        t.release(t.keys_where(|k| k.in_port() == 1), |_, x| got.push(x));
        assert_eq!(got, vec![300, 103]);
        assert_eq!((t.packets(), t.n_keys(), t.live), (0, 0, 0));
        let _ = ea2;
    }

    #[test]
    fn park_capacity_limits_keys_and_packets() {
        let mut t: ParkTable<usize> = ParkTable::new();
        for i in 0..PARK_KEYS {
            let k = key(1, i as u32);
            t.park_new(k, k.hash(), 0, i).unwrap();
        }
        let extra = key(1, 9999);
        assert!(!t.has_room_for_new_key());
        assert_eq!(t.park_new(extra, extra.hash(), 0, 7), Err(7));
        // Packets: fill the remaining slots under key 0.
        for i in PARK_KEYS..PARK_PACKETS {
            t.join(0, i).unwrap();
        }
        assert_eq!(t.join(1, 12345), Err(12345));
        assert_eq!(t.packets(), PARK_PACKETS);
        let mut n = 0;
        t.release(u64::MAX, |_, _| n += 1);
        assert_eq!((n, t.packets(), t.free != NIL), (PARK_PACKETS, 0, true));
        // Every slot is usable again.
        for i in 0..PARK_PACKETS {
            let k = key(1, 0);
            match t.find(&k, k.hash()) {
                Some(e) => t.join(e, i).unwrap(),
                None => {
                    t.park_new(k, k.hash(), 0, i).unwrap();
                }
            }
        }
        assert_eq!(t.packets(), PARK_PACKETS);
    }

    #[test]
    fn park_expires_only_old_keys() {
        let mut t: ParkTable<u32> = ParkTable::new();
        let (a, b) = (key(1, 1), key(1, 2));
        let ea = t.park_new(a, a.hash(), 100, 1).unwrap();
        t.park_new(b, b.hash(), 600, 2).unwrap();
        t.join(ea, 3).unwrap();
        let mut got = Vec::new();
        assert_eq!(t.expire(1099, |_, x| got.push(x)), 0);
        assert_eq!(t.expire(1100, |_, x| got.push(x)), 2);
        assert_eq!(got, vec![1, 3]);
        assert_eq!(t.deadline_ms, 1600);
        assert_eq!(t.expire(1599, |_, x| got.push(x)), 0);
        assert_eq!(t.expire(5000, |_, x| got.push(x)), 1);
        assert_eq!((t.packets(), t.deadline_ms), (0, u64::MAX));
    }

    #[test]
    fn clock_converts_ticks_to_ms() {
        let c = PipelineClock::new(2_500_000_000, 1_000);
        assert_eq!(c.ms_at(500), 0);
        assert_eq!(c.ms_at(1_000 + 2_500_000_000), 1000);
        assert_eq!(c.ms_at(1_000 + 2_500_000 * 7), 7);
        // A day later, still exact to the ms.
        assert_eq!(c.ms_at(1_000 + 2_500_000_000 * 86_400), 86_400_000);
        assert_eq!(c.ms_at(1_000 + 2_500_000 * 7 - 1), 6);
        let z = PipelineClock::new(0, 0);
        assert_eq!(z.ms_at(1_000_000), 1000);
    }

    fn pipeline(
        upcall_len: usize,
    ) -> (FlowPipeline, crossbeam_channel::Receiver<Upcall>, crossbeam_channel::Receiver<PmdEvent>) {
        let (utx, urx) = crossbeam_channel::bounded(upcall_len);
        let (etx, erx) = crossbeam_channel::unbounded();
        let cfg = FlowCacheConfig { max_flows: 4, emc_entries: 64, emc_insert_inverse_prob: 1, sig_entries: 256 };
        let p = FlowPipeline::new(
            3,
            cfg,
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

    #[test]
    fn editor_rewrites_with_valid_checksums_and_dec_ttl_drops() {
        let mut f = tcp4_frame(&TCP4);
        assert_eq!(flowcache_editor(&mut f, &DpAction::SetIpv4Dst(Ipv4Addr::new(198, 18, 7, 7))), EditResult::Done);
        assert_eq!(&f[30..34], &[198, 18, 7, 7]);
        assert!(ipv4_header_checksum_ok(&f[14..34]) && checksums_ok(&f));
        let mut u = udp4_frame(1000, 53, b"hello");
        assert_eq!(flowcache_editor(&mut u, &DpAction::SetTpDst(5353)), EditResult::Done);
        assert!(checksums_ok(&u));
        // TTL 64 -> 63; TTL 1 drops.
        let mut t = tcp4_frame(&TCP4);
        let ttl = t[22];
        assert_eq!(flowcache_editor(&mut t, &DpAction::DecTtl), EditResult::Done);
        assert_eq!(t[22], ttl - 1);
        assert!(ipv4_header_checksum_ok(&t[14..34]));
        t[22] = 1;
        assert_eq!(flowcache_editor(&mut t, &DpAction::DecTtl), EditResult::Drop);
        // Not applicable: unchanged and fine; not an edit: refused.
        let mut arp = vec![0xffu8; 14];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let before = arp.clone();
        assert_eq!(flowcache_editor(&mut arp, &DpAction::SetIpv4Src(Ipv4Addr::LOCALHOST)), EditResult::Done);
        assert_eq!(arp, before);
        assert_eq!(flowcache_editor(&mut arp, &DpAction::PopVlan), EditResult::Unsupported);
        assert_eq!(flowcache_editor(&mut arp, &DpAction::Output(1)), EditResult::Unsupported);
        assert!(pipeline_hooks().editor.is_some());
    }
}
