//! The PMD-side flow pipeline: flow cache lookups per burst, parked misses, upcalls.
//!
//! # Design
//!
//! A [`FlowPipeline`] is the [`Pipeline`] of one PMD thread. It owns that PMD's
//! [`FlowCache`] (EMC -> signature cache -> tuple-space classifier) and a
//! [`PendingMisses`] table of *parked* packets, and talks to the slow path with the
//! messages of [`ferrovs_flowcache::upcall`] (read that module's doc: it is the contract).
//!
//! Per burst ([`Pipeline::classify`]): extract the keys of up to 32 frames into fixed
//! arrays, hash each with the NIC's RSS hash when the mbuf has one (else
//! [`FlowKey::hash`], computed from the key's words as they are extracted), read the
//! clock once, and run [`FlowCache::lookup_burst_holding`]. Each packet's verdict is its
//! megaflow's action list, borrowed from the cache, or `Miss` (also for a packet of a
//! shadowed parked key, held back by the lookup: see `Install` below). After a burst
//! with trains (packets of one flow in a row), the next burst's walk takes a frame whose
//! key bytes equal those of the untagged common-shape frame before it
//! (`extract::same_untagged_key`) as a repeat: its key is copied, not extracted, and
//! the lookup does not compare it. A burst that was one train and hit is reported
//! [`Classified::Uniform`], and the loop reads one verdict for it. A burst through the
//! caches while the EMC is probed (and no key of its port shadowed) takes another walk:
//! a frame of the common shape (untagged Ethernet, IPv4 without options, not a fragment,
//! UDP or TCP) is looked up in the EMC's frame table by the bytes its key is made of
//! (`extract::frame_window`) as the walk reaches it, and only the frames it does not
//! answer have their keys extracted and looked up as usual
//! ([`FlowCache::lookup_burst_framed`]); a hit needs no key, no key hash and no key
//! compare.
//! Nothing is allocated, locked or called across FFI per packet (the clock costs one
//! `rdtsc` per burst).
//!
//! Misses ([`Pipeline::miss`]) park the packet under the key `classify` extracted for
//! its place in the burst (see [`PendingMisses`] for the table's design and costs):
//!
//! ```text
//!   key already parked      -> the packet joins that key (no new upcall)
//!   parking table full      -> give the packet back (dropped), count park_full
//!   new key                 -> add the key to this burst's UpcallBatch
//! ```
//!
//! Before a full table drops anything, the PMD stops taking bursts from the rx queues
//! whose packets miss ([`Pipeline::rx_hold`], counted in `rx_pauses`): while fewer than
//! a burst of packet slots are free, every queue that missed lately waits; while fewer
//! than a burst of keys are free, the queues of mostly misses. Their frames wait in the
//! device's ring until the slow path's answers free room (as behind an OVS PMD, which
//! handles its upcalls inline), so a burst of up to 4,096 new flows replayed at full
//! speed loses nothing, and a flood of new flows on one queue is taken only as fast as
//! the slow path answers it (see [`PendingMisses`], "Backpressure per rx queue"). Queues
//! of cache hits are polled as usual: the installed flows of one port do not wait for
//! another port's new flows. Nor is anything held once the oldest parked key has waited
//! [`PendingConfig::max_rx_pause_ms`] (250 ms by default).
//!
//! After the burst's misses ([`Pipeline::misses_done`]) the batch goes to the slow
//! path as one message (counted in `upcalls_sent`, one per key). If the upcall queue is
//! full, nobody will answer those keys: their packets (the first ones and any that joined
//! them in the same burst) are dropped at once and counted in `upcall_queue_full`.
//!
//! Between bursts ([`Pipeline::handle_message`]) the slow path's answers arrive:
//! - `Install{id, key, megaflow}`: insert it (`try_insert_unchecked`: the slow path
//!   guarantees no overlap), name it `id` (the private `flow_names` module), then execute
//!   its actions on the packets parked under exactly `key` (the upcall it answers), in
//!   arrival order, through the [`Injector`] (so they leave through the PMD's own tx
//!   batches, before any newer packet of the flow can be classified), and add those
//!   packets to the new megaflow's statistics (they were handled by its actions). Other
//!   parked keys the megaflow covers wait for their own answers, *shadowed*: while any
//!   key of the burst's port is ([`PendingMisses::shadowed_on`]), `classify` holds the
//!   hits of shadowed keys on megaflows installed since the oldest parked key (the
//!   lookup's hold pass; older megaflows cover no parked key) and they join their key
//!   (see [`PendingMisses`], "Each key waits for its own answer"), so every packet gets
//!   its own key's decision and a flow's packets stay in order. At the flow limit, the least
//!   recently used megaflow of a sample of [`EVICT_SAMPLE`] live slots is evicted first
//!   (reported `Evicted`, counted in `evictions`). If the cache refuses it anyway (an
//!   identical key+mask is installed, or nothing could be evicted), the key's parked
//!   packets are still executed with its actions and the slow path is told `Refused`,
//!   with their count.
//! - `Execute{key, actions}`: execute on the packets parked under exactly `key`; their
//!   count goes to the slow path (an [`ExecutedKey`]) so that it credits the rules of
//!   that key's translation.
//! - `Remove{ids}`: remove, report each as gone (`Removed`) with its final statistics.
//! - `ExpireIdle{idle_ms}`: set the idle timeout the clock hand applies (below).
//!
//! Once per loop iteration ([`Pipeline::housekeeping`]):
//! - if the oldest parked key's deadline has passed, keys whose upcall got no answer
//!   within the timeout are dropped, at most [`EXPIRE_KEYS_PER_ITERATION`] keys per
//!   iteration, and counted (`park_timeout`, and `drop_no_rule` on the ingress port);
//! - the *clock hand* visits the next [`SWEEP_SLOTS_BUSY`] cache slots (or
//!   [`SWEEP_SLOTS_IDLE`] in an iteration that classified no packet): a live megaflow
//!   idle for the timeout is removed and reported `Expired`; otherwise, if its
//!   statistics changed, they are copied into the PMD's [`FlowStatsTable`], which the
//!   slow path reads whenever it wants (see [`crate::flow_stats`]). A full turn is
//!   counted in `sweeps`. Cost per iteration: that many slot reads (128-byte records,
//!   the statistics line) plus one 64-byte table write per changed megaflow; per
//!   megaflow: one visit per turn of the hand. Nothing walks every megaflow at once.
//!   Measured (`sweep_and_eviction_cost`, release, 200,000 megaflows): 20-25 ns per
//!   slot visited, so about 0.2 µs per busy iteration and 6 µs per idle one; a turn
//!   takes 25,000 busy iterations (tens of milliseconds under load). An install at the
//!   flow limit, eviction included, took 1.7 µs.
//! - reports (gone megaflows, executed keys) leave in fixed-size [`PmdReport`]s, see
//!   the private `flow_reports` module;
//! - the counters are published as relaxed atomic stores ([`PipelineCounters`]) when
//!   they changed: by every iteration that classified no packet, and under load by every
//!   [`PUBLISH_EVERY_BUSY`]th busy one (a copy of 18 counters per burst cost ~2
//!   instructions per packet), so a reader is at most that many bursts behind.
//!
//! Nothing above allocates or frees on the PMD thread (`tests/alloc.rs` counts both:
//! forwarding, parking, installs with evictions, executes, removals, expiry, statistics).
//! A command's own heap parts (a megaflow's action list, a `Remove`'s id list, a
//! packet-out's frame) are allocated by the slow path, and the PMD hands them back to it
//! to be freed ([`crate::heap_return`]: why, and the one case where the PMD
//! frees them itself, counted in `frees_on_pmd`). One limit: the classifier's reserves
//! (subtables, ports, spare hash tables: see [`ferrovs_flowcache::classifier`]) can be
//! outgrown by unusual rule sets, which then allocate on install.

use std::sync::Arc;

use crossbeam_channel::Sender;
use ferrovs_dpdk::{BURST, Mbuf};
use ferrovs_flowcache::actions::{DpAction, DpActions};
use ferrovs_flowcache::emc::FramedBurst;
use ferrovs_flowcache::extract::{
    extract, extract_hashed_into, extract_into, extract_step, frame_window, same_untagged_key, tcp_flags,
    window_flags_word,
};
use ferrovs_flowcache::key::{FlowKey, TCP_FLAGS_WORD, hash_window};
use ferrovs_flowcache::pending::{Parked, PendingConfig, PendingMisses, RxHold};
use ferrovs_flowcache::upcall::{ExecutedKey, FlowId, GoneFlow, GoneReason, PmdCommand, PmdReport, UpcallBatch};
use ferrovs_flowcache::{
    BurstLookup, FlowCache, FlowCacheConfig, InsertError, Megaflow, MegaflowId, MegaflowStats, PortWide,
};

use crate::clock::PipelineClock;
use crate::flow_names::FlowNames;
use crate::flow_reports::ReportQueue;
use crate::flow_stats::FlowStatsTable;
use crate::heap_return::{HeapReturn, Spent};
use crate::packet_in::PacketInSink;
use crate::pipeline::{Classified, Injector, Pipeline, RxBurst, Verdict};
use crate::stats::counter_set;

/// Most parked keys given up per loop iteration (the rest wait for the next ones), so
/// that a burst of timeouts never stalls forwarding.
pub const EXPIRE_KEYS_PER_ITERATION: usize = 64;
/// Cache slots the clock hand visits in an iteration that classified packets.
pub const SWEEP_SLOTS_BUSY: usize = 8;
/// Busy iterations between two publications of changed counters (an idle iteration
/// publishes them at once).
pub const PUBLISH_EVERY_BUSY: u32 = 16;
/// Cache slots the clock hand visits in an iteration that classified none.
pub const SWEEP_SLOTS_IDLE: usize = 256;
/// Live megaflows compared (by last use) to pick one to evict at the flow limit.
pub const EVICT_SAMPLE: usize = 16;

/// Messages a [`FlowPipeline`] accepts.
// An `Install` carries two 64-byte keys; boxing would add an allocation per install.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum FlowMessage {
    Command(PmdCommand),
    /// An OpenFlow packet-out, translated by the slow path.
    PacketOut(PacketOut),
    /// Test hook: the PMD sleeps this long when it applies the message, so that it makes
    /// no progress (the daemon's watchdog test). ferrovsd sends it only from an
    /// `ovs-appctl` command that exists when it was started with `FERROVS_TEST_HOOKS=1`.
    Stall(std::time::Duration),
}

/// A frame to send with its datapath actions (see [`Injector::execute_frame`]).
#[derive(Debug, Clone)]
pub struct PacketOut {
    /// The ingress port the frame is treated as coming from (maybe a reserved port).
    pub in_port: u32,
    pub frame: Vec<u8>,
    pub actions: DpActions,
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
        /// Loop iterations that left rx queues whose packets miss alone because the
        /// parking table could not keep another burst's misses (see
        /// [`PendingMisses::rx_hold`]).
        rx_pauses,
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
        /// Megaflows the clock hand removed for being idle.
        expirations,
        /// Megaflows evicted to make room at the flow limit.
        evictions,
        /// Full turns of the clock hand over the cache's slots.
        sweeps,
        /// Reports (gone megaflows, executed keys) dropped: backlog full or slow path gone.
        reports_lost,
        /// Heap values of the slow path's commands the PMD freed itself because their way
        /// back to the slow path was full (see [`crate::heap_return`]).
        frees_on_pmd,
    }
}

/// What a PMD shares with other threads: its counters, its live megaflow statistics and
/// the heap values it hands back to the slow path to be freed.
pub struct PipelineShared {
    pub counters: PipelineCounters,
    pub flows: FlowStatsTable,
    pub returned: HeapReturn,
}

impl PipelineShared {
    /// For a PMD whose cache is configured by `config`.
    pub fn new(config: &FlowCacheConfig) -> PipelineShared {
        PipelineShared {
            counters: PipelineCounters::default(),
            flows: FlowStatsTable::new(cache_slots(config)),
            returned: HeapReturn::default(),
        }
    }
}

/// Slots a cache of `config` can use (the classifier's slab stops at 2^20 preallocated).
fn cache_slots(config: &FlowCacheConfig) -> usize {
    config.max_flows.min(1 << 20)
}

/// The parking table's size for a PMD of a switch with `n_mbufs` mbufs and `n_pmds`
/// PMDs: half the pool shared among the PMDs (the other half is for the rx and tx rings),
/// at least 1,024 and at most 16,384 packets, and [`PendingConfig::DEFAULT_KEYS`] keys
/// (fewer if there are fewer packets: a key holds at least one).
pub fn pending_config_for_pool(n_mbufs: u32, n_pmds: usize) -> PendingConfig {
    let packets = (n_mbufs as usize / 2 / n_pmds.max(1)).clamp(1024, 4 * PendingConfig::DEFAULT_KEYS);
    PendingConfig::new(PendingConfig::DEFAULT_KEYS.min(packets), packets)
}

/// A PMD's flow pipeline: the [`Pipeline`] that uses the flow cache. See the module doc.
pub struct FlowPipeline {
    pmd: usize,
    cache: FlowCache,
    upcalls: Sender<UpcallBatch>,
    /// The keys the current burst parked first, sent by `misses_done`.
    new_keys: UpcallBatch,
    reports: ReportQueue,
    clock: PipelineClock,
    shared: Arc<PipelineShared>,
    local: PipelineStats,
    /// Counters changed since the last publication.
    dirty: bool,
    pending: PendingMisses<Mbuf>,
    names: FlowNames,
    /// Next slot the clock hand visits (statistics and idle expiry).
    hand: usize,
    /// State of the generator that picks the slots of an eviction sample (xorshift).
    evict_rng: u64,
    /// Megaflows unused this long are removed (`u64::MAX`: never, until `ExpireIdle`).
    idle_ms: u64,
    /// Packets were classified since the last housekeeping.
    busy: bool,
    /// Busy iterations since the counters were last published.
    busy_unpublished: u32,
    // Per-burst scratch, reused.
    /// The last burst's keys, by place in the burst (`miss` parks under them).
    keys: [FlowKey; BURST],
    hashes: [u32; BURST],
    bytes: [u32; BURST],
    /// How many of `keys` are the last burst's (0 after a burst served without keys:
    /// `miss` then extracts a packet's key again). A packet the EMC's frame table
    /// answered has only its flags word in `keys`; it is no miss.
    keyed: u8,
    /// What the last burst's walk found in the EMC's frame table, when it probed it.
    framed: FramedBurst,
    /// The clock as read for the last burst (misses of that burst are parked at it).
    burst_ms: u64,
    /// Where `DpAction::Controller` sends packets (see [`FlowPipeline::with_packet_in`]).
    packet_in: Option<PacketInSink>,
    /// The last keyed burst had trains of equal keys: the next one's walk looks for
    /// them in the frames' bytes (see `classify`). Bursts without trains do not pay for
    /// that test.
    expect_trains: bool,
}

impl FlowPipeline {
    /// The pipeline of PMD `pmd`. `upcalls` is the bounded queue to the slow path,
    /// `reports` the bounded queue of [`PmdReport`]s, `clock` the time base shared with
    /// the slow path, `shared` where this PMD publishes its counters and megaflow
    /// statistics (made by [`PipelineShared::new`] from the same `config`). `pending`
    /// sizes the parking table (see [`pending_config_for_pool`]). Everything the PMD
    /// needs is allocated here, once.
    pub fn new(
        pmd: usize,
        config: FlowCacheConfig,
        pending: PendingConfig,
        upcalls: Sender<UpcallBatch>,
        reports: Sender<PmdReport>,
        clock: PipelineClock,
        shared: Arc<PipelineShared>,
    ) -> FlowPipeline {
        let slots = cache_slots(&config);
        FlowPipeline {
            pmd,
            cache: FlowCache::new(config),
            upcalls,
            new_keys: UpcallBatch::new(pmd),
            reports: ReportQueue::new(pmd, reports, slots, pending.max_keys),
            clock,
            shared,
            local: PipelineStats::default(),
            dirty: true,
            pending: PendingMisses::new(pending),
            names: FlowNames::with_capacity(slots),
            hand: 0,
            evict_rng: 0x9e37_79b9_7f4a_7c15 ^ pmd as u64,
            idle_ms: u64::MAX,
            busy: false,
            busy_unpublished: 0,
            keys: [FlowKey::ZERO; BURST],
            keyed: 0,
            hashes: [0; BURST],
            bytes: [0; BURST],
            framed: FramedBurst::new(),
            burst_ms: 0,
            packet_in: None,
            expect_trains: false,
        }
    }

    /// This pipeline's PMD copies the packets of `DpAction::Controller` to `sink`.
    pub fn with_packet_in(mut self, sink: PacketInSink) -> FlowPipeline {
        self.packet_in = Some(sink);
        self
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
        s.reports_lost = self.reports.lost;
    }

    fn publish(&mut self) {
        let mut s = self.local;
        self.refresh(&mut s);
        self.local = s;
        self.shared.counters.publish(&s);
        self.dirty = false;
        self.busy_unpublished = 0;
    }

    /// Publishes changed counters at the end of an iteration that was `busy` or not (see
    /// the module doc: every [`PUBLISH_EVERY_BUSY`]th busy iteration, every idle one).
    fn publish_if_due(&mut self, busy: bool) {
        if self.dirty {
            self.busy_unpublished += busy as u32;
            if !busy || self.busy_unpublished >= PUBLISH_EVERY_BUSY {
                self.publish();
            }
        }
    }

    /// Notes a burst's start for the statistics and the parking table, and returns its time.
    #[inline(always)]
    fn burst_started(&mut self) -> u64 {
        let now = self.clock.now_ms();
        self.burst_ms = now;
        self.dirty = true;
        self.busy = true;
        now
    }

    /// [`Pipeline::classify`] of a burst of `n` packets that the megaflow `found`
    /// ([`FlowCache::port_wide`]) answers whatever their keys: no key is extracted, only
    /// the burst's bytes and TCP flags are taken for its statistics. Inlined: out of
    /// line it cost 6.5 instructions per packet more, and the keyed path 1.3 less.
    #[inline(always)]
    fn classify_port_wide<'s, 'p, B: RxBurst<'p>>(
        &'s mut self,
        found: PortWide,
        n: usize,
        pkts: B,
        out: &mut [Verdict<'s>],
    ) -> Classified {
        let (mut total, mut flags) = (0u64, 0u16);
        pkts.for_each(|i, p| {
            if i < n {
                total += p.frame.len() as u64;
                flags |= tcp_flags(p.frame);
            }
        });
        let now = self.burst_started();
        // No keys were extracted: a miss (none is possible) would extract its own.
        self.keyed = 0;
        let verdict = match self.cache.port_wide_hits(found, n, total, flags, now) {
            Some(actions) => Verdict::Actions(actions),
            None => Verdict::Miss,
        };
        out[..n].fill(verdict);
        if out.len() == n { Classified::Uniform } else { Classified::Mixed }
    }

    /// [`Pipeline::classify`] of a burst that goes through the caches
    /// ([`FlowCache::uses_hashes`]) while the EMC is probed and no key of the port is
    /// shadowed (holding those back needs every hit's key): a frame of the common shape is
    /// looked up in the EMC's frame table by the bytes its key is made of
    /// (`extract::frame_window`) as the walk reaches it, and its key is extracted only if
    /// that misses (then it is looked up as usual, and its window cached with the
    /// megaflow found); a hit sets only the key's flags word, for the statistics. Frames
    /// of other shapes are extracted (out of line: through the EMC few frames need it)
    /// and looked up as usual. Inlined, as the other walks: out of line, it would take
    /// the loop's rx pass by reference, whose counters could then no longer be kept in
    /// registers on the other paths (measured: +4.8 instructions per packet at 1 flow).
    #[inline(always)]
    fn classify_framed<'s, 'p, B: RxBurst<'p>>(
        &'s mut self,
        in_port: u32,
        n: usize,
        pkts: B,
        out: &mut [Verdict<'s>],
    ) -> Classified {
        let Some(probe) = self.cache.frame_probe() else { return Classified::Mixed };
        let (keys, hashes, bytes) = (&mut self.keys, &mut self.hashes, &mut self.bytes);
        let FramedBurst { hits, windowed, idx, windows, hashes: window_hashes } = &mut self.framed;
        let (mut found, mut kept) = (0u32, 0u32);
        // Bounded by the arrays, as the other walks (see `classify`).
        pkts.for_each(|i, p| {
            if let (Some(key), Some(hash), Some(len), Some(x)) =
                (keys.get_mut(i), hashes.get_mut(i), bytes.get_mut(i), idx.get_mut(i))
            {
                *len = p.frame.len() as u32;
                if let Some((w, _)) = frame_window(p.frame, in_port) {
                    let wh = match p.rss_hash {
                        Some(rss) => rss,
                        None => hash_window(&w),
                    };
                    if let Some(hit) = probe.lookup(&w, wh) {
                        *x = hit;
                        key.w[TCP_FLAGS_WORD] = window_flags_word(&w);
                        found |= 1 << i;
                        return;
                    }
                    if let (Some(kw), Some(kh)) = (windows.get_mut(i), window_hashes.get_mut(i)) {
                        (*kw, *kh) = (w, wh);
                        kept |= 1 << i;
                    }
                }
                *hash = extract_missed(p.frame, p.rss_hash, in_port, key);
            }
        });
        (*hits, *windowed) = (found, kept);
        self.look_up_framed(in_port, n, out)
    }

    /// The lookup of [`FlowPipeline::classify_framed`]'s burst and its verdicts.
    #[inline(always)]
    fn look_up_framed<'s>(&'s mut self, in_port: u32, n: usize, out: &mut [Verdict<'s>]) -> Classified {
        let now = self.burst_started();
        let (keys, hashes, bytes) = (&self.keys[..n], &self.hashes[..n], &self.bytes[..n]);
        let found =
            self.cache.lookup_burst_framed(in_port, keys, hashes, bytes, &self.framed, now, &mut out[..n], verdict);
        self.expect_trains = found.trains;
        classified(&found, n, out.len())
    }

    /// The parking table (read-only).
    pub fn pending(&self) -> &PendingMisses<Mbuf> {
        &self.pending
    }

    /// Installs `megaflow` as `id` (the cache part of `Install`), evicting first at the
    /// flow limit; gives the megaflow back if refused.
    // Given back by value: boxing it would allocate on the PMD thread.
    #[allow(clippy::result_large_err)]
    fn install(&mut self, id: FlowId, megaflow: Megaflow, now_ms: u64) -> Result<MegaflowId, (InstallError, Megaflow)> {
        if self.names.contains(id) {
            return Err((InstallError::DuplicateId, megaflow));
        }
        if self.cache.len() >= self.cache.max_flows() {
            self.evict_one();
        }
        let mid = self.cache.try_insert_unchecked(megaflow, now_ms).map_err(|(e, m)| (InstallError::Cache(e), m))?;
        self.names.bind(id, mid);
        self.shared.flows.write(mid.index() as usize, id, &MegaflowStats { used: now_ms, ..Default::default() });
        self.local.installs += 1;
        Ok(mid)
    }

    /// Removes megaflow `mid` (named `id`) and reports it gone.
    fn forget(&mut self, id: FlowId, mid: MegaflowId, reason: GoneReason) -> bool {
        let Some((megaflow, stats)) = self.cache.remove(mid) else { return false };
        self.give_back(Spent::Actions(megaflow.actions));
        self.shared.flows.clear(mid.index() as usize);
        self.reports.gone(GoneFlow { id, reason, stats });
        true
    }

    /// Hands a heap value of the slow path's back to it (see [`crate::heap_return`]).
    fn give_back(&mut self, spent: Spent) {
        if !self.shared.returned.give(spent) {
            self.local.frees_on_pmd += 1;
        }
    }

    /// Removes the megaflows named `ids` (unknown ones are ignored), reporting each.
    fn remove(&mut self, ids: &[FlowId]) {
        for &id in ids {
            let Some(mid) = self.names.unbind_id(id) else { continue };
            if self.forget(id, mid, GoneReason::Removed) {
                self.local.removals += 1;
            }
        }
    }

    /// Evicts the least recently used of [`EVICT_SAMPLE`] live megaflows taken at
    /// pseudo-random slots, if the report backlog has room. O(EVICT_SAMPLE) when the
    /// cache is full (every slot live). Random slots, not consecutive ones: slot order
    /// follows install order, so a run of slots is often all young or all old, and a
    /// sample of it a poor guess of the oldest (measured: a consecutive sample of 16
    /// evicted a recently used megaflow 7,500 times in 20,000, random ones 0 times,
    /// with half the cache recently used).
    fn evict_one(&mut self) -> bool {
        let slots = self.cache.slots();
        if slots == 0 || !self.reports.has_room(1) {
            return false;
        }
        let mut oldest: Option<(MegaflowId, u64)> = None;
        let mut sampled = 0;
        for _ in 0..4 * EVICT_SAMPLE {
            let mut x = self.evict_rng;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.evict_rng = x;
            let slot = (((x >> 32) * slots as u64) >> 32) as usize;
            if let Some((mid, st)) = self.cache.slot_stats(slot) {
                if oldest.is_none_or(|(_, used)| st.used < used) {
                    oldest = Some((mid, st.used));
                }
                sampled += 1;
                if sampled == EVICT_SAMPLE {
                    break;
                }
            }
        }
        let Some((mid, _)) = oldest else { return false };
        let Some(id) = self.names.unbind_mid(mid) else { return false };
        let evicted = self.forget(id, mid, GoneReason::Evicted);
        self.local.evictions += evicted as u64;
        evicted
    }

    /// Moves the clock hand over the next `budget` slots: expires idle megaflows and
    /// publishes changed statistics. See the module doc.
    fn sweep(&mut self, now_ms: u64, budget: usize) {
        let slots = self.cache.slots();
        for _ in 0..budget.min(slots) {
            let slot = self.hand;
            if slot + 1 >= slots {
                self.hand = 0;
                self.local.sweeps += 1;
            } else {
                self.hand = slot + 1;
            }
            let Some((mid, st)) = self.cache.slot_stats(slot) else { continue };
            let Some(id) = self.names.name(mid) else { continue };
            if st.used.saturating_add(self.idle_ms) <= now_ms && self.reports.has_room(1) {
                self.names.unbind_id(id);
                if self.forget(id, mid, GoneReason::Expired) {
                    self.local.expirations += 1;
                }
            } else if self.shared.flows.packets_at(slot) != Some(st.packets) {
                self.shared.flows.write(slot, id, &st);
            }
        }
    }

    fn handle_command(&mut self, cmd: PmdCommand, inject: &mut Injector<'_>) {
        let now = self.clock.now_ms();
        // Packets released from the park, for the statistics of what handled them.
        let (mut packets, mut bytes, mut flags) = (0u64, 0u64, 0u16);
        let mut count = |k: &FlowKey, pkt: &Mbuf| {
            packets += 1;
            bytes += pkt.data().len() as u64;
            flags |= k.tcp_flags();
        };
        match cmd {
            PmdCommand::Install { id, key, megaflow } => {
                let (mkey, mmask) = (megaflow.key.masked(&megaflow.mask), megaflow.mask);
                match self.install(id, megaflow, now) {
                    Ok(mid) => {
                        let actions = self.cache.actions(mid).map(Vec::as_slice).unwrap_or(&[]);
                        self.pending.release_key(&key, |k, pkt| {
                            count(k, &pkt);
                            inject.execute(k.in_port(), pkt, actions)
                        });
                        if !self.pending.is_empty() {
                            self.pending.shadow_covered(|k| mkey.matches(&mmask, k));
                        }
                        if packets > 0 {
                            self.cache.add_stats(mid, packets, bytes, flags, now);
                        }
                    }
                    Err((e, megaflow)) => {
                        tracing::warn!(pmd = self.pmd, id, error = %e, "megaflow install refused");
                        self.local.install_refused += 1;
                        self.pending.release_key(&key, |k, pkt| {
                            count(k, &pkt);
                            inject.execute(k.in_port(), pkt, &megaflow.actions)
                        });
                        let stats = MegaflowStats { packets, bytes, used: now, tcp_flags: flags };
                        self.reports.gone(GoneFlow { id, reason: GoneReason::Refused, stats });
                        self.give_back(Spent::Actions(megaflow.actions));
                    }
                }
            }
            PmdCommand::Execute { key, actions } => {
                self.pending.release_key(&key, |k, pkt| {
                    count(k, &pkt);
                    inject.execute(k.in_port(), pkt, &actions)
                });
                if packets > 0 {
                    self.reports.executed(ExecutedKey { key, packets, bytes, used: now });
                }
                self.give_back(Spent::Actions(actions));
            }
            PmdCommand::Remove { ids } => {
                self.remove(&ids);
                self.give_back(Spent::Ids(ids));
            }
            PmdCommand::ExpireIdle { idle_ms } => self.idle_ms = idle_ms,
        }
    }
}

/// A lookup's result as its packet's verdict. The verdicts are written as the cache
/// hands out each result (no array of ids to resolve into actions afterwards), resolved
/// once per run of one megaflow.
#[inline(always)]
fn verdict<'s>(r: Option<(MegaflowId, &'s [DpAction])>) -> Verdict<'s> {
    match r {
        Some((_, actions)) => Verdict::Actions(actions),
        None => Verdict::Miss,
    }
}

/// What a keyed burst's lookup says of its `n` verdicts (of `len` places): a burst of one
/// flow that hit has its megaflow's list everywhere; one whose packets all hit megaflows
/// of the same single output, that port.
#[inline(always)]
fn classified(found: &BurstLookup, n: usize, len: usize) -> Classified {
    if found.one_train && len == n {
        return Classified::Uniform;
    }
    match found.one_output {
        Some(port) if len == n => Classified::OneOutput(port),
        _ => Classified::Mixed,
    }
}

/// Extracts a frame's key for a lookup through the caches and returns its hash: the NIC's
/// if it gave one, else computed from the key's words as they are extracted.
#[inline(always)]
fn extract_keyed(frame: &[u8], rss_hash: Option<u32>, in_port: u32, key: &mut FlowKey) -> u32 {
    match rss_hash {
        Some(rss) => {
            extract_into(frame, in_port, key);
            rss
        }
        None => extract_hashed_into(frame, in_port, key),
    }
}

/// [`extract_keyed`] for a frame the EMC's frame table did not answer (see
/// `FlowPipeline::classify_framed`). Out of line: through the EMC few packets need it.
#[inline(never)]
fn extract_missed(frame: &[u8], rss_hash: Option<u32>, in_port: u32, key: &mut FlowKey) -> u32 {
    extract_keyed(frame, rss_hash, in_port, key)
}

/// Why an `Install` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum InstallError {
    #[error(transparent)]
    Cache(InsertError),
    #[error("flow id already installed on this PMD")]
    DuplicateId,
}

impl Pipeline for FlowPipeline {
    type Message = FlowMessage;

    fn classify<'s, 'p, B: RxBurst<'p>>(&'s mut self, in_port: u32, pkts: B, out: &mut [Verdict<'s>]) -> Classified {
        // The poll loop never passes more than a burst; anything beyond stays `Miss` and
        // goes through the (correct, slower) miss path.
        let n = pkts.len().min(out.len()).min(BURST);
        self.keyed = n as u8;
        if n == 0 {
            return Classified::Mixed;
        }
        // While keys of the port are shadowed (parked, with a covering megaflow installed
        // since), packets that hit a megaflow installed since the oldest parked key may
        // be theirs and must join them (see `FlowCache::lookup_burst_holding`).
        let shadowing_since = if self.pending.shadowed_on(in_port) { self.pending.shadowing_since() } else { None };
        // One megaflow answers every packet of the port (a table of in_port rules): no
        // key is needed, only the burst's bytes and TCP flags for its statistics. Unless
        // it is newer than a parked key of the port (then packets are held by key).
        if let Some(found) = self.cache.port_wide(in_port)
            && shadowing_since.is_none_or(|since| self.cache.installed_before(found.id, since))
        {
            return self.classify_port_wide(found, n, pkts, out);
        }
        // With few subtables the cache probes the classifier directly and reads no
        // hash: computing one per packet would be wasted work (and the NIC's hash is
        // then not read either).
        // Keys the walk found equal to the key before them from their frames' bytes.
        let mut known = 0u32;
        // The walks are bounded by the arrays (a constant), not by `n`: packets past
        // `n` (none from the poll loop) fill slots that are not looked up, and the walk
        // keeps one value less live across the extraction (-7 instructions per packet).
        if self.cache.uses_hashes(in_port) {
            // Through the caches while the EMC is probed: its frame table is looked up
            // from the frames' bytes (see `classify_framed`).
            if shadowing_since.is_none() && self.cache.frame_probed() {
                return self.classify_framed(in_port, n, pkts, out);
            }
            let (keys, hashes, bytes) = (&mut self.keys, &mut self.hashes, &mut self.bytes);
            pkts.for_each(|i, p| {
                if let (Some(key), Some(hash), Some(len)) = (keys.get_mut(i), hashes.get_mut(i), bytes.get_mut(i)) {
                    *hash = extract_keyed(p.frame, p.rss_hash, in_port, key);
                    *len = p.frame.len() as u32;
                }
            });
        } else if self.expect_trains {
            let (keys, bytes) = (&mut self.keys, &mut self.bytes);
            // The last burst had trains (packets of one flow in a row): a packet whose
            // key bytes equal those of the untagged common-shape frame before it takes
            // that frame's key without an extraction, and is a known repeat for the
            // lookup (no key compare). `prev` is empty when the frame before was of
            // another shape (or there was none).
            let mut prev: &[u8] = &[];
            pkts.for_each(|i, p| {
                if let Some(len) = bytes.get_mut(i) {
                    *len = p.frame.len() as u32;
                }
                if i > 0
                    && !prev.is_empty()
                    && same_untagged_key(prev, p.frame)
                    && let Some([before, key]) = keys.get_mut(i - 1..=i)
                {
                    *key = *before;
                    known |= 1 << i;
                } else if let Some(key) = keys.get_mut(i) {
                    let (_, untagged) = extract_step::<false>(p.frame, in_port, key);
                    prev = if untagged { p.frame } else { &[] };
                }
            });
        } else {
            let (keys, bytes) = (&mut self.keys, &mut self.bytes);
            pkts.for_each(|i, p| {
                if let (Some(key), Some(len)) = (keys.get_mut(i), bytes.get_mut(i)) {
                    extract_into(p.frame, in_port, key);
                    *len = p.frame.len() as u32;
                }
            });
        }
        let now = self.burst_started();
        let (keys, hashes, bytes) = (&self.keys[..n], &self.hashes[..n], &self.bytes[..n]);
        let pending = &self.pending;
        let hold = shadowing_since.map(|since| (since, |i: usize| pending.must_join(&keys[i])));
        let (found, _held) =
            self.cache.lookup_burst_holding(in_port, keys, hashes, bytes, known, now, hold, &mut out[..n], verdict);
        self.expect_trains = found.trains;
        classified(&found, n, out.len())
    }

    fn rx_hold(&mut self) -> RxHold {
        let clock = &self.clock;
        self.pending.rx_hold(BURST, || clock.now_ms())
    }

    fn rxqs_held(&mut self, _queues: usize) {
        self.local.rx_pauses += 1;
        self.dirty = true;
    }

    fn miss(&mut self, in_port: u32, at: usize, pkt: Mbuf) -> Option<Mbuf> {
        self.dirty = true;
        // The key `classify` extracted for this place of the burst (a caller that did not
        // classify the packet gets it extracted again).
        let key = if at < self.keyed as usize { self.keys[at] } else { extract(pkt.data(), in_port) };
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
            FlowMessage::PacketOut(p) => {
                inject.execute_frame(p.in_port, &p.frame, &p.actions);
                self.give_back(Spent::Frame(p.frame));
                self.give_back(Spent::Actions(p.actions));
            }
            FlowMessage::Stall(d) => std::thread::sleep(d),
        }
    }

    fn packet_in_sink(&self) -> Option<PacketInSink> {
        self.packet_in.clone()
    }

    fn housekeeping(&mut self, inject: &mut Injector<'_>) -> bool {
        let now = self.clock.now_ms();
        let mut timed_out = 0;
        if let Some(deadline) = self.pending.next_deadline()
            && now >= deadline
        {
            timed_out =
                self.pending.expire(now, EXPIRE_KEYS_PER_ITERATION, |k, pkt| inject.drop_missed(k.in_port(), pkt));
            self.local.park_timeout += timed_out as u64;
            self.dirty = true;
        }
        let (sweeps, gone) = (self.local.sweeps, self.local.expirations);
        let busy = std::mem::replace(&mut self.busy, false);
        self.sweep(now, if busy { SWEEP_SLOTS_BUSY } else { SWEEP_SLOTS_IDLE });
        let sent = self.reports.flush();
        if sent || sweeps != self.local.sweeps || gone != self.local.expirations {
            self.dirty = true;
        }
        self.publish_if_due(busy);
        timed_out > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PacketView;
    use ferrovs_flowcache::actions::DpAction;
    use ferrovs_flowcache::key::Mask;
    use ferrovs_flowcache::testpkt::{TCP4, Tcp4, pad_to, tcp4_frame, tcp4_frame_with_options, udp4_frame, with_vlan};

    /// Each verdict's action list (`None`: a miss).
    fn action_lists(out: &[Verdict<'_>]) -> Vec<Option<Vec<DpAction>>> {
        out.iter()
            .map(|v| match v {
                Verdict::Actions(a) => Some(a.to_vec()),
                Verdict::Miss => None,
            })
            .collect()
    }

    type Channels = (crossbeam_channel::Receiver<UpcallBatch>, crossbeam_channel::Receiver<PmdReport>);

    fn pipeline(max_flows: usize) -> (FlowPipeline, Channels) {
        let (utx, urx) = crossbeam_channel::bounded(4);
        let (rtx, rrx) = crossbeam_channel::bounded(64);
        let cfg = FlowCacheConfig { max_flows, emc_entries: 64, emc_insert_inverse_prob: 1, sig_entries: 256 };
        let p = FlowPipeline::new(
            3,
            cfg,
            PendingConfig::new(4, 8),
            utx,
            rtx,
            PipelineClock::new(1_000_000, 0),
            Arc::new(PipelineShared::new(&cfg)),
        );
        (p, (urx, rrx))
    }

    fn dst_mask() -> Mask {
        let mut m = FlowKey::ZERO;
        m.set_in_port(u32::MAX);
        m.set_dl_type(0xffff);
        m.set_nw_dst_u32(u32::MAX);
        m
    }

    /// Every gone megaflow reported so far: (id, reason, packets).
    fn gone(p: &mut FlowPipeline, rx: &crossbeam_channel::Receiver<PmdReport>) -> Vec<(FlowId, GoneReason, u64)> {
        let mut v = Vec::new();
        while p.reports.backlog() > 0 || !rx.is_empty() {
            p.reports.flush();
            while let Ok(r) = rx.try_recv() {
                v.extend(r.gone().iter().map(|g| (g.id, g.reason, g.stats.packets)));
            }
        }
        v
    }

    fn table(p: &FlowPipeline) -> Vec<(FlowId, MegaflowStats)> {
        let mut v = Vec::new();
        p.shared.flows.snapshot(3, &mut v);
        let mut v: Vec<_> = v.into_iter().map(|(_, id, st)| (id, st)).collect();
        v.sort_by_key(|e| e.0);
        v
    }

    #[test]
    fn counters_are_published_every_nth_busy_iteration_and_by_an_idle_one() {
        let (mut p, _channels) = pipeline(8);
        let published = |p: &FlowPipeline| p.shared.counters.snapshot().installs;
        p.publish_if_due(false);
        assert_eq!(published(&p), 0);
        p.local.installs = 1;
        p.dirty = true;
        for _ in 1..PUBLISH_EVERY_BUSY {
            p.publish_if_due(true);
            assert_eq!(published(&p), 0, "published before the {PUBLISH_EVERY_BUSY}th busy iteration");
        }
        p.publish_if_due(true);
        assert_eq!(published(&p), 1);
        p.local.installs = 2;
        p.dirty = true;
        p.publish_if_due(true);
        assert_eq!(published(&p), 1, "the count of busy iterations restarts at a publication");
        p.publish_if_due(false);
        assert_eq!(published(&p), 2, "an idle iteration publishes at once");
    }

    #[test]
    fn classify_hits_installed_megaflows_and_names_round_trip() {
        let (mut p, (_u, r)) = pipeline(4);
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
        p.classify(1, &views[..], &mut out);
        assert!(out.iter().all(|v| *v == Verdict::Miss));
        let k1 = extract(&f1, 1);
        p.install(41, Megaflow::new(k1, dst_mask(), vec![DpAction::Output(2)]), 5).unwrap();
        let dup = p.install(41, Megaflow::new(k1, dst_mask(), vec![]), 5).map_err(|e| e.0);
        assert_eq!(dup, Err(InstallError::DuplicateId));
        assert_eq!(table(&p).iter().map(|e| e.0).collect::<Vec<_>>(), vec![41], "named on install");
        let mut out = [Verdict::Miss; 4];
        p.classify(1, &views[..], &mut out);
        // f1 and f2 share the destination: both hit; f3 and the runt miss.
        assert_eq!(out[0], Verdict::Actions(&[DpAction::Output(2)]));
        assert_eq!(out[1], Verdict::Actions(&[DpAction::Output(2)]));
        assert_eq!((out[2], out[3]), (Verdict::Miss, Verdict::Miss));
        // Same packets from another port: the mask has in_port, so they miss.
        let mut out2 = [Verdict::Miss; 4];
        p.classify(2, &views[..], &mut out2);
        assert!(out2.iter().all(|v| *v == Verdict::Miss));
        let s = p.stats();
        assert_eq!((s.classifier_hits + s.sig_hits + s.emc_hits, s.misses, s.megaflows, s.installs), (2, 10, 1, 1));
        // One turn of the clock hand publishes the hits.
        p.sweep(6, SWEEP_SLOTS_IDLE);
        assert_eq!(table(&p).iter().map(|e| (e.0, e.1.packets)).collect::<Vec<_>>(), vec![(41, 2)]);
        p.remove(&[41, 77]);
        p.remove(&[41]);
        assert_eq!(gone(&mut p, &r), vec![(41, GoneReason::Removed, 2)]);
        assert!(table(&p).is_empty());
        let mut out = [Verdict::Miss; 4];
        p.classify(1, &views[..], &mut out);
        assert!(out.iter().all(|v| *v == Verdict::Miss));
    }

    #[test]
    fn classify_says_uniform_only_for_one_flow_that_hit() {
        let (mut p, _channels) = pipeline(4);
        let f1 = tcp4_frame(&TCP4);
        let f2 = tcp4_frame(&Tcp4 { sport: 999, ..TCP4 });
        let f3 = tcp4_frame(&Tcp4 { dst: [10, 9, 9, 9], ..TCP4 });
        p.install(1, Megaflow::new(extract(&f1, 1), dst_mask(), vec![DpAction::Output(2)]), 5).unwrap();
        p.install(2, Megaflow::new(extract(&f3, 1), dst_mask(), vec![DpAction::Output(3)]), 5).unwrap();
        let view = |f: &'static [u8]| PacketView { frame: f, rss_hash: None };
        let leak = |f: &Vec<u8>| -> &'static [u8] { Box::leak(f.clone().into_boxed_slice()) };
        let (f1, f2, f3) = (leak(&f1), leak(&f2), leak(&f3));
        let f4 = tcp4_frame(&Tcp4 { dst: [10, 8, 8, 8], ..TCP4 });
        let f5 = tcp4_frame(&Tcp4 { dst: [10, 7, 7, 7], ..TCP4 });
        // Another megaflow with the same single output, one with two outputs.
        p.install(3, Megaflow::new(extract(&f4, 1), dst_mask(), vec![DpAction::Output(2)]), 5).unwrap();
        p.install(4, Megaflow::new(extract(&f5, 1), dst_mask(), vec![DpAction::Output(2), DpAction::Output(3)]), 5)
            .unwrap();
        let (f4, f5) = (leak(&f4), leak(&f5));
        let cases: [(Vec<&'static [u8]>, Classified); 13] = [
            (vec![f1; 32], Classified::Uniform),
            (vec![f1], Classified::Uniform),
            // Two megaflows of two outputs, all hits: each verdict must be read.
            ([vec![f1; 16], vec![f3; 16]].concat(), Classified::Mixed),
            ([vec![f1; 31], vec![f3]].concat(), Classified::Mixed),
            // One megaflow, two keys, no train: its one output.
            (vec![f1, f2, f1], Classified::OneOutput(2)),
            // Two megaflows of the same one output, with and without trains (a burst
            // with trains is not looked at).
            (vec![f1, f4, f2, f4], Classified::OneOutput(2)),
            (vec![f4, f1], Classified::OneOutput(2)),
            (vec![f1, f1, f4], Classified::Mixed),
            // Another output, two outputs, a miss: not one output.
            (vec![f1, f4, f3, f4], Classified::Mixed),
            (vec![f1, f5, f4], Classified::Mixed),
            (vec![f5, f1], Classified::Mixed),
            (vec![f1, &[0u8; 3]], Classified::Mixed),
            (vec![&[0u8; 3]; 4], Classified::Mixed),
        ];
        // The direct path (one subtable), then the caches (no trains found: a burst
        // of one flow is one output there).
        for cached in [false, true] {
            if cached {
                p.set_direct_max_subtables(0);
            }
            for (i, (frames, want)) in cases.iter().enumerate() {
                let want = match (cached, want) {
                    (true, Classified::Uniform) if frames.len() > 1 => Classified::OneOutput(2),
                    (true, _) if i == 7 => Classified::OneOutput(2),
                    (_, w) => *w,
                };
                let views: Vec<PacketView<'_>> = frames.iter().map(|f| view(f)).collect();
                let mut out = vec![Verdict::Miss; views.len()];
                let got = p.classify(1, &views[..], &mut out);
                assert_eq!(got, want, "case {i}, through the caches: {cached}");
                if got == Classified::Uniform {
                    assert!(out.iter().all(|v| *v == out[0]) && out[0] != Verdict::Miss, "case {i}");
                }
                if let Classified::OneOutput(port) = got {
                    assert!(out.iter().all(|v| *v == Verdict::Actions(&[DpAction::Output(port)])), "case {i}");
                }
            }
        }
    }

    #[test]
    fn trains_found_in_the_frames_get_the_keys_an_extraction_would() {
        let (mut p, _channels) = pipeline(4);
        let f1 = tcp4_frame(&TCP4);
        let f3 = tcp4_frame(&Tcp4 { dst: [10, 9, 9, 9], ..TCP4 });
        p.install(1, Megaflow::new(extract(&f1, 1), dst_mask(), vec![DpAction::Output(2)]), 5).unwrap();
        p.install(2, Megaflow::new(extract(&f3, 1), dst_mask(), vec![DpAction::Output(3)]), 5).unwrap();
        // The same flow with another IPv4 identification (not in the key), another TTL
        // (in the key), another TCP flag; tagged; unknown; a runt.
        let with = |f: &[u8], at: usize, v: u8| {
            let mut f = f.to_vec();
            f[at] = v;
            f
        };
        let frames: Vec<Vec<u8>> = vec![
            f1.clone(),
            with(&f1, 18, 0x77),
            with(&f1, 19, 0x01),
            with(&f1, 22, 9),
            with(&f1, 47, 0x10),
            f3.clone(),
            with(&f3, 18, 0x55),
            with_vlan(&f3, 0x8100, 5),
            with_vlan(&f3, 0x8100, 5),
            with(&f1, 30, 99),
            with(&f1, 30, 99),
            vec![0u8; 3],
            vec![0u8; 3],
            f1.clone(),
        ];
        let want = |i: usize| match i {
            0..=4 | 13 => Some(vec![DpAction::Output(2)]),
            5..=8 => Some(vec![DpAction::Output(3)]),
            _ => None,
        };
        // Each burst in another order (so that no key is left from the burst before).
        for burst in 0..4 {
            let order: Vec<usize> = (0..frames.len()).map(|i| (i + burst * 5) % frames.len()).collect();
            let views: Vec<PacketView<'_>> =
                order.iter().map(|&i| PacketView { frame: &frames[i], rss_hash: None }).collect();
            let mut out = vec![Verdict::Miss; views.len()];
            p.classify(1, &views[..], &mut out);
            let got = action_lists(&out);
            assert_eq!(got, order.iter().map(|&i| want(i)).collect::<Vec<_>>(), "burst {burst}");
            assert!(p.expect_trains, "burst {burst}: the burst has trains");
            for (at, &i) in order.iter().enumerate() {
                assert_eq!(p.keys[at], extract(&frames[i], 1), "burst {burst}, packet {at}");
            }
        }
    }

    /// Bursts through the caches while the EMC is probed: the frames of the common shape
    /// are answered by the EMC's frame table without their keys, the others by their
    /// keys; every verdict is the one the key's lookup gives, the megaflows' statistics
    /// (packets, bytes, TCP flags) are those of the packets they answered, and a missed
    /// packet has the key an extraction gives.
    #[test]
    fn frame_table_answers_as_the_keys_do() {
        let (mut p, _channels) = pipeline(8);
        p.set_direct_max_subtables(0);
        let f1 = tcp4_frame(&TCP4);
        let f3 = tcp4_frame(&Tcp4 { dst: [10, 9, 9, 9], ..TCP4 });
        let mut u = pad_to(udp4_frame(7, 9, b"x"), 60);
        u[30..34].copy_from_slice(&[10, 0, 0, 7]);
        let m1 = p.install(1, Megaflow::new(extract(&f1, 1), dst_mask(), vec![DpAction::Output(2)]), 5).unwrap();
        let m3 = p.install(2, Megaflow::new(extract(&f3, 1), dst_mask(), vec![DpAction::Output(3)]), 5).unwrap();
        let mu = p.install(3, Megaflow::new(extract(&u, 1), dst_mask(), vec![]), 5).unwrap();
        let with = |f: &[u8], at: usize, v: u8| {
            let mut f = f.to_vec();
            f[at] = v;
            f
        };
        let frames: Vec<Vec<u8>> = vec![
            f1.clone(),
            with(&f1, 47, 0x11), // other TCP flags: another key, same megaflow
            with(&f1, 22, 9),    // another TTL
            with(&f1, 15, 0x04), // another TOS
            with(&f1, 18, 0x77), // another identification: the same key
            with(&f1, 20, 0x40), // DF
            with(&f1, 20, 0x20), // a first fragment: not the shape
            with_vlan(&f3, 0x8100, 5),
            tcp4_frame_with_options(&Tcp4 { dst: [10, 9, 9, 9], flags: 0x04, ..TCP4 }, &[1, 1, 1, 0]),
            f3.clone(),
            u.clone(),
            with(&u, 40, 0x33), // UDP payload
            with(&f1, 30, 99),  // no megaflow
            vec![0u8; 3],
        ];
        let mid = |i: usize| p.cache.classify(&extract(&frames[i], 1));
        let want: Vec<Option<MegaflowId>> = (0..frames.len()).map(mid).collect();
        assert_eq!(want.iter().filter(|w| **w == Some(m1)).count(), 7);
        let mut sums = std::collections::HashMap::new();
        for burst in 0..6 {
            let order: Vec<usize> = (0..frames.len()).map(|i| (i + burst * 5) % frames.len()).collect();
            // From the fourth burst on, with the NIC's hash (a hash per frame).
            let rss = |i: usize| (burst >= 3).then(|| 0x9e37_79b9u32.wrapping_mul(i as u32 + 1));
            let views: Vec<PacketView<'_>> =
                order.iter().map(|&i| PacketView { frame: &frames[i], rss_hash: rss(i) }).collect();
            let mut out = vec![Verdict::Miss; views.len()];
            let hits_before = p.stats().emc_hits;
            p.classify(1, &views[..], &mut out);
            let got = action_lists(&out);
            for (at, &i) in order.iter().enumerate() {
                let expected = want[i].and_then(|m| p.cache.actions(m)).map(|a| a.to_vec());
                assert_eq!(got[at], expected, "burst {burst}, frame {i}");
                match want[i] {
                    Some(m) => {
                        let s: &mut (u64, u64, u16) = sums.entry(m).or_default();
                        let k = extract(&frames[i], 1);
                        *s = (s.0 + 1, s.1 + frames[i].len() as u64, s.2 | k.tcp_flags());
                    }
                    None => assert_eq!(p.keys[at], extract(&frames[i], 1), "burst {burst}, missed frame {i}"),
                }
            }
            if burst > 0 && burst != 3 {
                // Every packet that hit was answered by the EMC (its key or frame table;
                // the fourth burst's hashes are new to both).
                assert_eq!(p.stats().emc_hits - hits_before, 12, "burst {burst}");
                let framed = frames.iter().filter(|f| frame_window(f, 1).is_some()).count();
                assert_eq!(p.framed.hits.count_ones() as usize, framed - 1, "burst {burst}");
            }
        }
        for m in [m1, m3, mu] {
            let st = p.cache.stats(m).unwrap();
            assert_eq!((st.packets, st.bytes, st.tcp_flags), sums[&m], "megaflow {m:?}");
        }
    }

    #[test]
    fn clock_hand_expires_idle_flows_and_the_limit_evicts_the_least_recently_used() {
        let (mut p, (_u, r)) = pipeline(4);
        let frames: Vec<Vec<u8>> = (0..6u8).map(|i| tcp4_frame(&Tcp4 { dst: [10, 0, 0, i], ..TCP4 })).collect();
        let mf = |i: usize| Megaflow::new(extract(&frames[i], 1), dst_mask(), vec![DpAction::Output(2)]);
        for i in 0..4 {
            p.install(i as u64 + 1, mf(i), 0).unwrap();
        }
        // Flows 2 and 4 are used at t=50 (explicit times: now_ms() reads the real TSC).
        let keys = [extract(&frames[1], 1), extract(&frames[3], 1)];
        let mut found = [None; 2];
        p.cache.lookup_batch(&keys, &[keys[0].hash(), keys[1].hash()], &[60, 60], 50, &mut found);
        // No idle timeout yet: a full turn removes nothing.
        p.sweep(60, 4);
        assert_eq!(p.stats().expirations, 0);
        // Full table: installing a fifth megaflow evicts the oldest sampled (1 or 3, used
        // at 0), never the recently used 2 and 4.
        p.install(5, mf(4), 55).unwrap();
        let ev = gone(&mut p, &r);
        assert!(matches!(ev.as_slice(), [(1 | 3, GoneReason::Evicted, 0)]), "{ev:?}");
        assert_eq!((p.stats().evictions, p.cache.len()), (1, 4));
        let evicted = ev[0].0;
        // Idle 30 at t=60: one turn of the hand, a slot at a time, removes the other of
        // 1 and 3 (used at 0) and nothing else.
        p.idle_ms = 30;
        for _ in 0..4 {
            p.sweep(60, 1);
        }
        assert_eq!(gone(&mut p, &r), vec![(4 - evicted, GoneReason::Expired, 0)]);
        assert_eq!(p.stats().expirations, 1);
        let mut left: Vec<u64> = table(&p).iter().map(|e| e.0).collect();
        left.sort();
        assert_eq!(left, vec![2, 4, 5]);
        assert_eq!(table(&p).iter().find(|e| e.0 == 2).map(|e| e.1.packets), Some(1));
    }

    /// Costs at the default flow limit (run with `--release -- --ignored --nocapture`):
    /// a turn of the clock hand with and without changed statistics, and installs at the
    /// limit (each evicting), with how often the sample picks a recently used megaflow.
    #[test]
    #[ignore]
    fn sweep_and_eviction_cost() {
        let n = 200_000usize;
        let (mut p, (_u, r)) = pipeline(n);
        let key = |i: usize| {
            let f = tcp4_frame(&Tcp4 { dst: [10, (i >> 16) as u8, (i >> 8) as u8, i as u8], ..TCP4 });
            extract(&f, 1)
        };
        let keys: Vec<FlowKey> = (0..n + 20_000).map(key).collect();
        for (i, k) in keys.iter().take(n).enumerate() {
            p.install(i as u64 + 1, Megaflow::new(*k, dst_mask(), vec![DpAction::Output(2)]), 0).unwrap();
        }
        let turn = |p: &mut FlowPipeline, now| {
            let t = std::time::Instant::now();
            for _ in 0..n.div_ceil(SWEEP_SLOTS_IDLE) {
                p.sweep(now, SWEEP_SLOTS_IDLE);
            }
            t.elapsed().as_nanos() as f64 / n as f64
        };
        let first = turn(&mut p, 1);
        let unchanged = turn(&mut p, 1);
        // The second half is used at t=100.
        let hashes: Vec<u32> = keys.iter().map(|k| k.hash()).collect();
        let mut found = [None; 32];
        for c in (n / 2..n).step_by(32) {
            p.cache.lookup_batch(&keys[c..c + 32], &hashes[c..c + 32], &[60; 32], 100, &mut found);
        }
        let changed = turn(&mut p, 101);
        println!(
            "clock hand, ns per slot: {first:.1} (all new), {unchanged:.1} (unchanged), {changed:.1} (half changed)"
        );
        let mut evicted = Vec::new();
        let t = std::time::Instant::now();
        for (i, k) in keys.iter().enumerate().skip(n) {
            evicted.extend(r.try_iter().flat_map(|r| r.gone().to_vec()).map(|g| (g.id, g.reason)));
            p.reports.flush();
            p.install(i as u64 + 1, Megaflow::new(*k, dst_mask(), vec![DpAction::Output(2)]), 200).unwrap();
        }
        let per_install = t.elapsed().as_nanos() as f64 / 20_000.0;
        evicted.extend(gone(&mut p, &r).into_iter().map(|g| (g.0, g.1)));
        evicted.retain(|g| g.1 == GoneReason::Evicted);
        let recent = evicted.iter().filter(|g| g.0 as usize > n / 2).count();
        println!(
            "20,000 installs at the limit: {per_install:.0} ns each, {} evictions, {recent} of them recently used",
            evicted.len()
        );
        assert_eq!(evicted.len(), 20_000);
        assert!(recent * 100 < evicted.len(), "half the cache is older than every recently used megaflow");
    }
}
