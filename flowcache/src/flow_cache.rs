//! The per-PMD flow cache: EMC -> signature cache -> tuple-space classifier.
//!
//! # Design
//!
//! One [`FlowCache`] is owned by one PMD thread and touched by nobody else (the slow
//! path sends install/remove requests that the PMD applies between bursts), so nothing
//! here locks or uses atomics. A burst of up to 32 packets goes through three levels,
//! each working on the bitmap of packets the previous level missed:
//!
//! 1. the [`Emc`]: full key compare, a few thousand of the hottest flows (for the
//!    frames of the common shape, a table keyed by the frame bytes their key is made
//!    of, which the PMD probes as it walks the burst, before any key is extracted:
//!    [`FlowCache::frame_probe`], [`FlowCache::lookup_burst_framed`]);
//! 2. the [`SigCache`]: hash -> megaflow slot, verified by matching the megaflow, sized
//!    for the whole working set; its buckets are all loaded before any is examined, so
//!    the cache misses of the burst overlap;
//! 3. the [`Classifier`]: tuple-space search, the authority (probed first, and alone,
//!    when it has very few subtables: see "Direct lookups" below).
//!
//! A classifier hit is written to the signature cache; a hit of level 2 or 3 is written
//! to the EMC with probability `1 / emc_insert_inverse_prob`. The EMC is bypassed
//! while it answers few packets ([`EmcGate`]): behind a signature cache it only pays
//! when it answers nearly all of them. Statistics (packets, bytes, last used, TCP
//! flags) are added per packet into the second cache line of the megaflow's record,
//! which verification has just read. Removing a megaflow invalidates every cache entry
//! for it in O(1) (generation check in the EMC, match verification in the signature
//! cache).
//!
//! **Direct lookups.** When the burst's in_port partition (plus the "any port"
//! partition) has very few subtables, probing them is cheaper than the caches: a
//! subtable probe reads a hot bucket and the megaflow, while the signature cache reads
//! a random line of a multi-megabyte table per packet, and neither cache needs a packet
//! hash then (the caller may skip computing it: [`FlowCache::uses_hashes`]). Measured
//! (`examples/direct_threshold.rs`, ns/packet, min of 5 rounds, direct vs caches): 1
//! subtable: 14.2 vs 15.4 at 1 flow, 13.7 vs 16.6 at 1,000 flows, 14.1 vs 39.1 at
//! 100,000 flows; 2-4 subtables at 1,000 flows (EMC answering): 16.5 vs 16.4, a draw;
//! 2-4 subtables at 100,000 flows (EMC bypassed): 22-35 vs 39-41; 6-8 subtables: no
//! gain. So a burst goes direct when its port probes at most one subtable, or at most
//! [`FlowCache::DIRECT_MAX_SUBTABLES`] while the EMC gate has bypassed the EMC (except
//! on the gate's sample bursts, which still go through the caches so that the gate
//! sees when the EMC would pay again). Direct hits are counted as classifier hits and
//! do not fill the caches (they would only be read once the port has more subtables,
//! and the classifier fills them then). The decision costs one remembered-port compare
//! per burst. End to end (`deploy/bench --quick`, 100,000 flows under one in_port
//! megaflow, same machine and session): 11.85-12.46 Mpps before, 18.26-18.60 after,
//! against OVS 3.1's 16.02-16.09 (its "simple match" path does the same thing).
//!
//! **Trains.** Bursts often carry several packets of one flow in a row. On the direct
//! path a key equal to the key just before it is not probed: it takes that key's result
//! (`repeated_keys`; one word compare per key when neighbours differ, the whole key when
//! they are equal), and the statistics pass adds a run of packets of one megaflow once
//! and hands the caller's value for it out once per run ([`FlowCache::lookup_burst`]).
//! Counters count every packet as the level that answered its train's first key (the
//! subtables' hit counts, which only rank them, count a train once). A caller that
//! knows some keys are repeats (the PMD finds them from the frames' bytes without
//! extracting: `extract::same_untagged_key`) passes them to
//! [`FlowCache::lookup_burst_holding`], and they are not compared; a burst that was one
//! train and hit says so ([`BurstLookup::one_train`]), so that the caller can take one
//! verdict for all its packets.
//!
//! The packet hash should be the NIC's RSS hash when the mbuf carries one, else
//! [`FlowKey::hash`]. Any hash is correct (every level verifies); a good one is fast.

use crate::actions::{DpAction, DpActions};
use crate::classifier::{Classifier, InsertError, MAX_BATCH};
use crate::emc::{Emc, FrameProbe, FramedBurst};
use crate::key::FlowKey;
use crate::megaflow::{Megaflow, MegaflowId, MegaflowRef, MegaflowStats};
use crate::sigcache::SigCache;

/// Sizes and policies of a [`FlowCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowCacheConfig {
    /// Most megaflows installed at once (OVS's default flow limit is 200,000).
    pub max_flows: usize,
    /// EMC entries (0 disables the EMC).
    pub emc_entries: usize,
    /// Insert one EMC candidate in this many (1 = always, 0 = never).
    pub emc_insert_inverse_prob: u32,
    /// Signature cache entries (0 disables it).
    pub sig_entries: usize,
}

impl Default for FlowCacheConfig {
    fn default() -> Self {
        FlowCacheConfig { max_flows: 200_000, emc_entries: 8192, emc_insert_inverse_prob: 100, sig_entries: 1 << 20 }
    }
}

impl FlowCacheConfig {
    /// The default configuration for a flow limit of `max_flows`, with the signature
    /// cache sized to at least 4 entries per flow (measured: at 1 entry per flow, 9% of
    /// a uniform 1M-flow load falls through to the classifier and the average lookup
    /// costs ~1 µs; at 4 entries per flow, ~70 ns).
    pub fn for_max_flows(max_flows: usize) -> Self {
        let d = FlowCacheConfig::default();
        FlowCacheConfig { max_flows, sig_entries: d.sig_entries.max(max_flows.saturating_mul(4)), ..d }
    }
}

/// Where lookups were answered, since creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheCounters {
    pub emc_hits: u64,
    pub sig_hits: u64,
    pub classifier_hits: u64,
    pub misses: u64,
}

/// Decides, per burst, whether the EMC is probed.
///
/// Measured (README): with the signature cache behind it, the EMC saves about 1 ns per
/// packet when it answers everything (a few thousand hot flows), already costs ~3 ns
/// when it answers two thirds, and 10-15 ns when it mostly misses (tens of thousands
/// of flows used evenly). So it is probed only while it earns its keep: over each
/// window of bursts (default [`Self::WINDOW`]) the gate counts packets probed and EMC
/// hits; an active EMC whose hit rate falls below 7/8 is bypassed; a bypassed EMC is
/// still probed on one burst in [`Self::SAMPLE_EVERY`] (and still filled, at the
/// insertion probability), and comes back when those samples hit at least 15/16 of the
/// time. Counting is per burst, so the
/// decision is deterministic and costs a few integer operations per burst.
#[derive(Debug, Clone, Copy)]
pub struct EmcGate {
    window: u32,
    active: bool,
    /// Free-running burst counter for sampling while bypassed.
    tick: u32,
    bursts: u32,
    probed: u32,
    hits: u32,
}

impl EmcGate {
    pub const WINDOW: u32 = 1024;
    pub const SAMPLE_EVERY: u32 = 16;

    fn new() -> Self {
        EmcGate { window: Self::WINDOW, active: true, tick: 0, bursts: 0, probed: 0, hits: 0 }
    }

    /// Whether to probe the EMC for the next burst.
    #[inline(always)]
    fn probe_now(&self) -> bool {
        self.active || self.tick.is_multiple_of(Self::SAMPLE_EVERY)
    }

    /// Records one burst (`probed` packets looked up in the EMC, `hits` found).
    #[inline(always)]
    fn record(&mut self, probed: u32, hits: u32) {
        self.probed += probed;
        self.hits += hits;
        self.bursts += 1;
        self.tick = self.tick.wrapping_add(1);
        if self.bursts >= self.window {
            if self.probed > 0 {
                self.active =
                    if self.active { self.hits * 8 >= self.probed * 7 } else { self.hits * 16 >= self.probed * 15 };
            }
            self.bursts = 0;
            self.probed = 0;
            self.hits = 0;
        }
    }

    /// True while EMC lookups are done on every burst.
    pub fn is_active(&self) -> bool {
        self.active
    }
}

/// The per-PMD fast-path lookup structure. See the module doc.
pub struct FlowCache {
    cls: Classifier,
    emc: Option<Emc>,
    emc_gate: EmcGate,
    emc_adaptive: bool,
    sig: Option<SigCache>,
    /// Bursts whose port probes at most this many subtables skip the EMC and signature
    /// cache and go straight to the classifier (0: never).
    direct_max_subtables: usize,
    counters: CacheCounters,
}

/// Bit `i` set: `keys[i]` equals `keys[i - 1]` (`i` in 1..32). Bursts come in trains
/// of one flow; a key of a train has the lookup result of the first one.
///
/// The L4 ports first (the word that most often differs between flows), then the
/// whole key: a burst without trains pays about one word compare per key.
///
/// With `KNOWN`, the keys of `known` (bits the caller knows to be repeats: see
/// [`FlowCache::lookup_burst_holding`]) are taken without a compare, and the loop visits
/// only the others (a burst of one flow whose repeats the caller found visits none:
/// testing each key's bit instead cost 8.5 instructions per packet at 1 flow).
#[inline(always)]
fn repeated_keys<const KNOWN: bool>(keys: &[FlowKey], known: u32) -> u32 {
    let mut repeats = 0u32;
    let keys = &keys[..keys.len().min(MAX_BATCH)];
    if KNOWN {
        // Keys 1.. that are not known: only they are compared (none, for a burst the
        // caller found to be one train).
        let valid = if keys.len() >= 32 { u32::MAX } else { (1u32 << keys.len()) - 1 } & !1;
        let mut todo = valid & !known;
        repeats = valid & known;
        while todo != 0 {
            let i = todo.trailing_zeros() as usize;
            todo &= todo - 1;
            if let (Some(a), Some(b)) = (keys.get(i.wrapping_sub(1)), keys.get(i))
                && a.w[3] == b.w[3]
                && a == b
            {
                repeats |= 1 << i;
            }
        }
        return repeats;
    }
    for i in 1..keys.len() {
        let (a, b) = (&keys[i - 1], &keys[i]);
        if a.w[3] == b.w[3] && a == b {
            repeats |= 1 << i;
        }
    }
    repeats
}

/// `hits` with every key of a train (`repeats`, see [`repeated_keys`]) set as the
/// first key of its train is: each step carries the bits up through twice as many
/// repeats as the last (five steps for 32 keys, instead of a step per key).
#[inline(always)]
fn spread_up_trains(mut hits: u32, mut repeats: u32) -> u32 {
    for step in [1, 2, 4, 8, 16] {
        hits |= (hits << step) & repeats;
        repeats &= repeats << step;
    }
    hits
}

/// What [`FlowCache::lookup_burst`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstLookup {
    /// Keys that found no megaflow.
    pub misses: usize,
    /// The burst was one train (every key equal to the first) and it hit: every value
    /// written to `out` is the same, from one call of `resolve` with the megaflow. Known
    /// from the train test the direct path makes anyway (a burst through the caches has
    /// no trains: only one key), so a caller that would otherwise scan the values for a
    /// burst of one flow need not.
    pub one_train: bool,
    /// Some key of the burst was equal to the key before it (found only where the
    /// burst goes straight to the classifier: the cached path does not look for trains).
    pub trains: bool,
    /// `Some(port)`: the burst had no trains and every key hit a megaflow whose actions
    /// are the single action `output(port)`, of one port for all (known from a value
    /// each megaflow keeps, read once per run of one megaflow), so that a caller need
    /// not test each value for it. `None` says nothing (a burst with trains is not
    /// looked at: see `one_train`).
    pub one_output: Option<u32>,
}

/// Who asks [`FlowCache::lookup_burst_holding`] whether key `i` must join its parked
/// packets.
type MustJoin = fn(usize) -> bool;

/// No hold pass ([`FlowCache::lookup_burst_holding`]).
const NO_HOLD: Option<(u64, MustJoin)> = None;

/// What [`FlowCache::probe_chunk`] found for at most [`MAX_BATCH`] keys.
struct Probed {
    /// Slab index of each key's megaflow, `u32::MAX` for a miss; unset (`u32::MAX`) for
    /// a key of `repeats`.
    idx: [u32; MAX_BATCH],
    /// The misses.
    todo: u32,
    /// Keys equal to the key before them ([`repeated_keys`]; only on the direct path):
    /// each has the result of the first key of its train.
    repeats: u32,
    /// Hits held back as misses ([`FlowCache::lookup_burst_holding`]), also in `todo`.
    held: u32,
}

/// The loop of [`FlowCache::finish_chunk`] for a burst with trains: a key of `probed.repeats`
/// continues the run of the key before it without a look at its slab index or flags
/// (equal keys: the same result, the same flags word).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn add_runs<'s, V: Copy>(
    records: &mut [crate::megaflow::Record],
    cold: &'s [crate::megaflow::Cold],
    keys: &[FlowKey],
    bytes: &[u32],
    now: u64,
    probed: &Probed,
    out: &mut [V],
    resolve: &mut impl FnMut(Option<(MegaflowId, &'s [DpAction])>) -> V,
) {
    // The run starts as one of misses (`u32::MAX` is no slab index).
    let miss = resolve(None);
    let (mut run, mut run_value) = (u32::MAX, miss);
    use crate::key::TCP_FLAGS_WORD;
    // `flags` ORs the keys' whole flags word (see `Record::tcp_flags_word`).
    let (mut packets, mut run_bytes, mut flags) = (0u64, 0u64, 0u64);
    let n = out.len().min(bytes.len()).min(keys.len()).min(MAX_BATCH);
    let (out, bytes, keys) = (&mut out[..n], &bytes[..n], &keys[..n]);
    let mut i = 0;
    while i < n {
        if probed.repeats & (1 << i) != 0 {
            // The whole train at once: the keys from `i` up to the first that is no
            // repeat (`!repeats >> i` has at least one bit: bit 31 or above when the
            // train runs to the end).
            let end = (i + (!probed.repeats >> i).trailing_zeros() as usize).min(n);
            packets += (end - i) as u64;
            run_bytes += bytes[i..end].iter().map(|&b| b as u64).sum::<u64>();
            out[i..end].fill(run_value);
            i = end;
            continue;
        }
        let (x, b, key) = (probed.idx[i], bytes[i], &keys[i]);
        if x != run {
            if let Some(h) = records.get_mut(run as usize) {
                h.packets += packets;
                h.bytes += run_bytes;
                h.used = now;
                h.tcp_flags_word |= flags;
            }
            run = x;
            run_value = match cold.get(x as usize) {
                Some(c) => {
                    let id = MegaflowId { index: x, generation: records[x as usize].generation };
                    resolve(Some((id, c.actions.as_slice())))
                }
                None => miss,
            };
            (packets, run_bytes, flags) = (0, 0, 0);
        }
        packets += 1;
        run_bytes += b as u64;
        flags |= key.w[TCP_FLAGS_WORD];
        out[i] = run_value;
        i += 1;
    }
    if let Some(h) = records.get_mut(run as usize) {
        h.packets += packets;
        h.bytes += run_bytes;
        h.used = now;
        h.tcp_flags_word |= flags;
    }
}

/// The statistics pass of a burst without trains: each hit adds its packet to its
/// megaflow's record at once, and `resolve` is called once per run of keys of one result
/// (its value copied to the rest of the run).
///
/// Without trains, each packet is its own run in the common bursts of many flows (the
/// EMC path, the direct path at 1,000 flows): summing runs in registers and writing each
/// run's sums at its end ([`add_runs`]) then cost about 12 instructions per packet more
/// than adding each packet to its record. A run of one megaflow's packets chains their
/// additions through memory (store-to-load forwarding, a few cycles a packet), hidden
/// behind a lookup's tens of instructions a packet; trains, whose packets cost a few
/// instructions each, keep the sums ([`add_runs`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn add_each<'s, V: Copy>(
    records: &mut [crate::megaflow::Record],
    cold: &'s [crate::megaflow::Cold],
    keys: &[FlowKey],
    bytes: &[u32],
    now: u64,
    probed: &Probed,
    out: &mut [V],
    resolve: &mut impl FnMut(Option<(MegaflowId, &'s [DpAction])>) -> V,
) -> Option<u32> {
    use crate::key::TCP_FLAGS_WORD;
    // The run starts as one of misses (`u32::MAX` is no slab index).
    let miss = resolve(None);
    let (mut run, mut run_value) = (u32::MAX, miss);
    // The OR and the AND of the runs' `one_output`: equal only if all were the same.
    let (mut any, mut all) = (0u32, u32::MAX);
    let n = out.len().min(bytes.len()).min(keys.len()).min(MAX_BATCH);
    let (out, bytes, keys) = (&mut out[..n], &bytes[..n], &keys[..n]);
    for (((slot, &x), &b), key) in out.iter_mut().zip(&probed.idx).zip(bytes).zip(keys) {
        if x != run {
            run = x;
            run_value = match cold.get(x as usize) {
                Some(c) => {
                    (any, all) = (any | c.one_output, all & c.one_output);
                    let id = MegaflowId { index: x, generation: records[x as usize].generation };
                    resolve(Some((id, c.actions.as_slice())))
                }
                None => miss,
            };
        }
        if let Some(r) = records.get_mut(x as usize) {
            r.add_packet(b, key.w[TCP_FLAGS_WORD], now);
        }
        *slot = run_value;
    }
    (any == all && any != crate::megaflow::Cold::NOT_ONE_OUTPUT).then_some(any)
}

/// A megaflow that answers every packet of one port ([`FlowCache::port_wide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortWide {
    pub id: MegaflowId,
    /// Its subtable (ranked by hits).
    subtable: u32,
}

impl FlowCache {
    /// Default of [`FlowCache::set_direct_max_subtables`]; see the module doc.
    pub const DIRECT_MAX_SUBTABLES: usize = 4;

    pub fn new(cfg: FlowCacheConfig) -> Self {
        FlowCache {
            cls: Classifier::new(cfg.max_flows),
            emc: (cfg.emc_entries > 0).then(|| Emc::new(cfg.emc_entries, cfg.emc_insert_inverse_prob)),
            emc_gate: EmcGate::new(),
            emc_adaptive: true,
            sig: (cfg.sig_entries > 0).then(|| SigCache::new(cfg.sig_entries)),
            direct_max_subtables: Self::DIRECT_MAX_SUBTABLES,
            counters: CacheCounters::default(),
        }
    }

    /// Looks up a batch of keys (any length; processed 32 at a time). `hashes[i]` is the
    /// packet's hash (RSS or `keys[i].hash()`), `bytes[i]` its length for the stats.
    /// Sets `out[i]` to the matching megaflow or `None` (a miss: send it to the slow
    /// path). Returns the number of misses. Slices shorter than `keys` limit the batch.
    pub fn lookup_batch(
        &mut self,
        keys: &[FlowKey],
        hashes: &[u32],
        bytes: &[u32],
        now: u64,
        out: &mut [Option<MegaflowId>],
    ) -> usize {
        let n = keys.len().min(hashes.len()).min(bytes.len()).min(out.len());
        let mut misses = 0;
        let mut start = 0;
        while start < n {
            let end = (start + MAX_BATCH).min(n);
            let probed = self.probe_chunk(None, &keys[start..end], &hashes[start..end], 0);
            misses += self
                .finish_chunk(&keys[start..end], &bytes[start..end], now, &probed, &mut out[start..end], |r| {
                    r.map(|(id, _)| id)
                })
                .0;
            start = end;
        }
        misses
    }

    /// Looks up one burst from `in_port` (every key's in_port; debug builds check), as a
    /// PMD does: the classifier skips grouping the keys by port, and instead of filling
    /// an array of ids, `out[i]` gets `resolve(result)` of key `i`, `result` being the
    /// megaflow and its actions or `None` (a miss), written while the statistics are
    /// added, so that the caller builds its verdicts in the same pass. `resolve` is
    /// called once per run of consecutive keys with the same result (once per burst for
    /// a burst of one flow), not once per key: its value is copied to every key of the
    /// run. Takes at most [`MAX_BATCH`] keys (one burst); keys past that, or past the end
    /// of `hashes` or `bytes`, miss (keys past the end of `out` are ignored). Same
    /// answers, statistics and counters as [`FlowCache::lookup_batch`]. Returns the
    /// number of misses, and whether the burst was one train of equal keys that hit
    /// (see [`BurstLookup`]).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn lookup_burst<'s, V: Copy>(
        &'s mut self,
        in_port: u32,
        keys: &[FlowKey],
        hashes: &[u32],
        bytes: &[u32],
        now: u64,
        out: &mut [V],
        resolve: impl FnMut(Option<(MegaflowId, &'s [DpAction])>) -> V,
    ) -> BurstLookup {
        self.lookup_burst_holding(in_port, keys, hashes, bytes, 0, now, NO_HOLD, out, resolve).0
    }

    /// [`FlowCache::lookup_burst`] as a PMD runs it, with two more inputs.
    ///
    /// `known`: the keys of `known` (bit `i`: `keys[i]` is `keys[i - 1]`, `i` in 1..32)
    /// are repeats: they are not compared when the burst looks for trains. A caller that
    /// found them equal without extracting them (the frames' bytes) saves the compare of
    /// their keys; a bit set for keys that differ is a caller's bug (the key takes the
    /// result of the one before it).
    ///
    /// `hold`: hits may be held back, for a PMD with parked keys whose newer packets
    /// must not overtake them (see `crate::pending`, "Each key waits for its own
    /// answer"). With `hold = Some((since, must_join))`, a key that
    /// hits a megaflow installed at or after `since` (the `now` of its insert; `since`
    /// on the same clock: the time the oldest parked key was parked) is held when
    /// `must_join(i)` says so: it is looked up as a miss (`resolve(None)`, no
    /// statistics, counted as the hit it was and not as a miss), and so are the repeats
    /// of it after it. A hit on a megaflow installed before `since` is never asked
    /// about: a key parked since then missed every megaflow installed before its lookup,
    /// so such a megaflow does not cover it. A burst of installed flows thus pays no
    /// probe per packet while new flows wait. Returns the lookup (its `misses` count the
    /// held keys) and the held keys (bit `i`: key `i`).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn lookup_burst_holding<'s, V: Copy>(
        &'s mut self,
        in_port: u32,
        keys: &[FlowKey],
        hashes: &[u32],
        bytes: &[u32],
        known: u32,
        now: u64,
        hold: Option<(u64, impl FnMut(usize) -> bool)>,
        out: &mut [V],
        resolve: impl FnMut(Option<(MegaflowId, &'s [DpAction])>) -> V,
    ) -> (BurstLookup, u32) {
        // As the keys hold it (16 bits).
        let mut k = FlowKey::ZERO;
        k.set_in_port(in_port);
        let keys = &keys[..keys.len().min(out.len())];
        let n = keys.len().min(hashes.len()).min(bytes.len()).min(MAX_BATCH);
        let mut probed = self.probe_chunk(Some(k.in_port()), &keys[..n], &hashes[..n], known);
        if let Some((since, must_join)) = hold {
            self.hold_young(&mut probed, n, since, must_join);
        }
        let held = probed.held;
        let (misses, one_output) = self.finish_burst(keys, bytes, n, now, &probed, out, resolve);
        // Keys 1..n all repeats of the key before them (bits 1..n of `repeats`).
        let train = (1u64 << n).wrapping_sub(2) as u32;
        let found = BurstLookup {
            misses,
            one_train: misses == 0 && n > 0 && probed.repeats == train,
            trains: probed.repeats != 0,
            one_output: one_output.filter(|_| misses == 0),
        };
        (found, held)
    }

    /// The hold pass of [`FlowCache::lookup_burst_holding`]: turns the hits of the first
    /// `n` keys on megaflows installed at or after `since` for which `must_join` holds
    /// into misses, with the repeats that follow each (`probed.held`).
    fn hold_young(&self, probed: &mut Probed, n: usize, since: u64, mut must_join: impl FnMut(usize) -> bool) {
        let records = &self.cls.slab.records;
        for i in 0..n.min(MAX_BATCH) {
            let bit = 1u32 << i;
            // Misses stay misses; a repeat goes with the key before it.
            if (probed.todo | probed.repeats) & bit != 0 {
                continue;
            }
            let young = records.get(probed.idx[i] as usize).is_some_and(|r| r.installed >= since);
            if young && must_join(i) {
                // The key and the repeats right after it (in u64: `i + 1` may be 32).
                let run = 1 + (!((probed.repeats as u64) >> (i + 1))).trailing_zeros() as usize;
                let end = (i + run).min(n);
                let bits = ((1u64 << end) - (1u64 << i)) as u32;
                probed.idx[i] = u32::MAX;
                probed.todo |= bits;
                probed.held |= bits;
            }
        }
    }

    /// Whether megaflow `id` is installed and was installed before `t` (on the clock of
    /// the inserts' `now`): a caller with keys parked since `t` can use it for a port's
    /// whole burst without asking about each packet (see
    /// [`FlowCache::lookup_burst_holding`]).
    pub fn installed_before(&self, id: MegaflowId, t: u64) -> bool {
        self.cls.slab.resolve(id).is_some_and(|i| self.cls.slab.records[i].installed < t)
    }

    /// The frame table of the EMC for the walk over the next burst, if the EMC is probed
    /// now (see [`FrameProbe`]). For a burst that goes through the caches
    /// ([`FlowCache::uses_hashes`]): its walk looks up each frame of the common shape by
    /// its window, extracts the keys of the others and of the frames the table did not
    /// answer, and hands what it found to [`FlowCache::lookup_burst_framed`].
    #[inline(always)]
    pub fn frame_probe(&self) -> Option<FrameProbe<'_>> {
        self.emc.as_ref().filter(|_| self.emc_probed_now()).map(|emc| emc.frame_probe(&self.cls.slab))
    }

    /// Whether [`FlowCache::frame_probe`] gives the frame table now.
    #[inline(always)]
    pub fn frame_probed(&self) -> bool {
        self.emc_probed_now()
    }

    /// [`FlowCache::lookup_burst`] of a burst whose walk probed the EMC's frame table
    /// ([`FlowCache::frame_probe`]): the packets of `framed.hits` are EMC hits of the
    /// megaflows in `framed.idx` (their keys need only their word
    /// [`crate::key::TCP_FLAGS_WORD`], for the statistics); the other keys are looked up
    /// as usual, the EMC's key table probed only for the packets whose frames had no
    /// window (not in `framed.windowed`), and a hit of a later level is cached in the
    /// frame table for a packet of `framed.windowed`. The same answers, statistics and
    /// counters as [`FlowCache::lookup_burst`] (the frame table's hits count as EMC
    /// hits), except that the burst goes through the caches whatever its port's
    /// subtables and no trains are looked for.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn lookup_burst_framed<'s, V: Copy>(
        &'s mut self,
        in_port: u32,
        keys: &[FlowKey],
        hashes: &[u32],
        bytes: &[u32],
        framed: &FramedBurst,
        now: u64,
        out: &mut [V],
        resolve: impl FnMut(Option<(MegaflowId, &'s [DpAction])>) -> V,
    ) -> BurstLookup {
        let mut k = FlowKey::ZERO;
        k.set_in_port(in_port);
        let keys = &keys[..keys.len().min(out.len())];
        let n = keys.len().min(hashes.len()).min(bytes.len()).min(MAX_BATCH);
        let probed = self.probe_chunk_framed(Some(k.in_port()), &keys[..n], &hashes[..n], framed);
        let (misses, one_output) = self.finish_burst(keys, bytes, n, now, &probed, out, resolve);
        // No trains are looked for: one packet that hit is the only train.
        BurstLookup {
            misses,
            one_train: misses == 0 && n == 1,
            trains: false,
            one_output: one_output.filter(|_| misses == 0),
        }
    }

    /// The megaflow that answers every packet from `in_port` whatever its other fields
    /// (its mask covers `in_port` alone, and a lookup from the port probes nothing else:
    /// see `Classifier::port_wide`), if there is one and the port's bursts go straight
    /// to the classifier. The caller then needs no keys for a burst from the port: it
    /// accounts the burst with [`FlowCache::port_wide_hits`] and gets the megaflow the
    /// lookup of any key would (OVS's "simple match" serves tables of `in_port` rules
    /// the same way). Two compares per call while no megaflow is installed or removed.
    #[inline]
    pub fn port_wide(&mut self, in_port: u32) -> Option<PortWide> {
        // With one subtable to probe, the burst goes straight to the classifier unless
        // that is switched off (see `direct`).
        if self.direct_max_subtables == 0 {
            return None;
        }
        let mut k = FlowKey::ZERO;
        k.set_in_port(in_port);
        let (subtable, id) = self.cls.port_wide(k.in_port())?;
        Some(PortWide { id, subtable })
    }

    /// Accounts a burst of `packets` packets of `bytes` bytes, whose keys' TCP flags OR
    /// to `tcp_flags`, as hits of the megaflow `found` by [`FlowCache::port_wide`] for
    /// their port (statistics, counters, the subtable's rank), exactly as
    /// [`FlowCache::lookup_burst`] would have for their keys; returns the megaflow's
    /// actions. `None` (nothing counted) if that megaflow is no longer installed.
    #[inline]
    pub fn port_wide_hits(
        &mut self,
        found: PortWide,
        packets: usize,
        bytes: u64,
        tcp_flags: u16,
        now: u64,
    ) -> Option<&[DpAction]> {
        let i = self.cls.slab.resolve(found.id)?;
        self.cls.credit_subtable(found.subtable, packets as u32);
        self.counters.classifier_hits += packets as u64;
        if self.emc_adaptive && self.emc.is_some() {
            // As on the direct path: a burst that did not probe the EMC.
            self.emc_gate.record(0, 0);
        }
        let crate::megaflow::Slab { records, cold, .. } = &mut self.cls.slab;
        let r = &mut records[i];
        r.packets += packets as u64;
        r.bytes += bytes;
        r.used = now;
        r.tcp_flags_word |= crate::key::word_of_tcp_flags(tcp_flags);
        Some(cold[i].actions.as_slice())
    }

    /// Whether a burst from `in_port` goes straight to the classifier (see the module
    /// doc): always with one subtable to probe (or none), and with up to
    /// `direct_max_subtables` while the EMC is bypassed, except on the bursts that
    /// sample the EMC (they keep its gate informed).
    #[inline]
    fn direct(&mut self, in_port: u32) -> bool {
        if self.direct_max_subtables == 0 {
            return false;
        }
        let k = self.cls.subtables_for_port(in_port);
        k <= 1 || (k <= self.direct_max_subtables && !self.emc_probed_now())
    }

    /// Whether the EMC is probed on the next burst that goes through the caches.
    #[inline(always)]
    fn emc_probed_now(&self) -> bool {
        self.emc.is_some() && (!self.emc_adaptive || self.emc_gate.probe_now())
    }

    /// Whether [`FlowCache::lookup_batch`] will read the packet hashes of the next burst
    /// (at most 32 keys) from `in_port`. When it will not, the caller may skip computing
    /// them: any values are then correct.
    #[inline]
    pub fn uses_hashes(&mut self, in_port: u32) -> bool {
        !self.direct(in_port)
    }

    /// Classifier lookup of the keys of `todo`: by one port if all keys have it.
    #[inline(always)]
    fn classifier_lookup(&mut self, port: Option<u32>, keys: &[FlowKey], todo: u32, out: &mut [u32; MAX_BATCH]) -> u32 {
        match port {
            Some(p) => self.cls.lookup_batch_port(p, keys, todo, out),
            None => self.cls.lookup_batch(keys, todo, out),
        }
    }

    /// Looks up at most [`MAX_BATCH`] keys through the levels (see [`Probed`]).
    #[inline(always)]
    fn probe_chunk(&mut self, port: Option<u32>, keys: &[FlowKey], hashes: &[u32], known: u32) -> Probed {
        let n = keys.len();
        let mut idx = [u32::MAX; MAX_BATCH];
        let mut todo: u32 = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };

        if n > 0 && self.direct(port.unwrap_or_else(|| keys[0].in_port())) {
            // Few subtables: probing them beats the caches (see the module doc). The
            // caches are not filled: they would only be read once this port has more
            // subtables, and the classifier fills them then.
            // A key equal to the one before it (a train of one flow) is not probed: it
            // takes the result of the first key of its train.
            // Their `idx` is left unset: the statistics pass continues the train's run.
            let repeats = if known == 0 { repeated_keys::<false>(keys, 0) } else { repeated_keys::<true>(keys, known) };
            let mut hits = self.classifier_lookup(port, keys, todo & !repeats, &mut idx);
            if repeats != 0 {
                hits = spread_up_trains(hits, repeats);
            }
            todo &= !hits;
            self.counters.classifier_hits += hits.count_ones() as u64;
            if self.emc_adaptive && self.emc.is_some() {
                // A burst that did not probe the EMC: moves the gate's sampling clock.
                self.emc_gate.record(0, 0);
            }
            return Probed { idx, todo, repeats, held: 0 };
        }

        // The signature cache works in stages over the whole burst: find candidates and
        // load their memory for every packet, then verify. The loads of different
        // packets are independent, so their cache misses overlap instead of queueing
        // (safe Rust has no prefetch instruction; an early plain load does the same
        // job). The EMC looks each packet up in one pass (see `Emc::lookup_burst`).
        let slab = &self.cls.slab;
        let probe_emc = self.emc_probed_now();
        if let Some(emc) = self.emc.as_ref().filter(|_| probe_emc) {
            todo &= !emc.lookup_burst(slab, keys, hashes, &mut idx);
            self.count_emc_hits(n, todo);
        } else if self.emc_adaptive && self.emc.is_some() {
            self.emc_gate.record(0, 0);
        }

        todo = self.probe_later_levels(port, keys, hashes, todo, &mut idx, None);

        Probed { idx, todo, repeats: 0, held: 0 }
    }

    /// The statistics pass and verdicts of a burst of `keys` whose first `n` were probed
    /// (`probed`; the rest miss). Returns the misses and the one output of
    /// [`FlowCache::finish_chunk`].
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn finish_burst<'s, V: Copy>(
        &'s mut self,
        keys: &[FlowKey],
        bytes: &[u32],
        n: usize,
        now: u64,
        probed: &Probed,
        out: &mut [V],
        mut resolve: impl FnMut(Option<(MegaflowId, &'s [DpAction])>) -> V,
    ) -> (usize, Option<u32>) {
        self.counters.misses += (keys.len() - n) as u64;
        let (head, tail) = out[..keys.len()].split_at_mut(n);
        let (missed, one_output) = self.finish_chunk(&keys[..n], &bytes[..n], now, probed, head, &mut resolve);
        if !tail.is_empty() {
            tail.fill(resolve(None));
        }
        (missed + tail.len(), one_output)
    }

    /// Counts the EMC's answers to a burst of `n` keys of which `todo` are left, and tells
    /// its gate (see [`EmcGate`]).
    #[inline(always)]
    fn count_emc_hits(&mut self, n: usize, todo: u32) {
        let hits = n as u32 - todo.count_ones();
        self.counters.emc_hits += hits as u64;
        if self.emc_adaptive {
            self.emc_gate.record(n as u32, hits);
        }
    }

    /// The levels after the EMC (signature cache, classifier) for the keys of `todo`:
    /// sets `idx[i]` of each hit, fills the caches, returns the keys still missing. A
    /// hit is cached in the EMC's frame table for a packet of `framed.windowed` (see
    /// [`FlowCache::lookup_burst_framed`]), in its key table otherwise.
    #[inline(always)]
    fn probe_later_levels(
        &mut self,
        port: Option<u32>,
        keys: &[FlowKey],
        hashes: &[u32],
        mut todo: u32,
        idx: &mut [u32; MAX_BATCH],
        framed: Option<&FramedBurst>,
    ) -> u32 {
        if todo != 0
            && let Some(sig) = &self.sig
        {
            // Load every pending bucket first so their cache misses overlap.
            let mut acc = 0u32;
            let mut bits = todo;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                acc ^= sig.touch(hashes[i]);
            }
            std::hint::black_box(acc);
            let mut cand = [u32::MAX; MAX_BATCH];
            let mut acc = 0u64;
            let mut bits = todo;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let c = sig.candidate(hashes[i]);
                cand[i] = c;
                if let Some(r) = self.cls.slab.records.get(c as usize) {
                    acc ^= r.key.w[0] ^ r.packets;
                }
            }
            std::hint::black_box(acc);
            let mut found = 0u32;
            let mut bits = todo;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let c = cand[i] as usize;
                if c < self.cls.slab.records.len() && self.cls.slab.slot_matches(c, &keys[i]) {
                    idx[i] = c as u32;
                    found |= 1 << i;
                }
            }
            todo &= !found;
            self.counters.sig_hits += found.count_ones() as u64;
            if let Some(emc) = &mut self.emc {
                let mut bits = found;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if emc.should_insert() {
                        let id = self.cls.slab.id_of(idx[i]);
                        match framed {
                            Some(f) if f.windowed & (1 << i) != 0 => emc.insert_window(&f.windows[i], f.hashes[i], id),
                            _ => emc.insert(&keys[i], hashes[i], id),
                        }
                    }
                }
            }
        }

        if todo != 0 {
            let mut cls_idx = [u32::MAX; MAX_BATCH];
            let hits = self.classifier_lookup(port, keys, todo, &mut cls_idx);
            todo &= !hits;
            self.counters.classifier_hits += hits.count_ones() as u64;
            let mut bits = hits;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                idx[i] = cls_idx[i];
                if let Some(sig) = &mut self.sig {
                    sig.insert(&self.cls.slab, hashes[i], idx[i]);
                }
                if let Some(emc) = &mut self.emc
                    && emc.should_insert()
                {
                    let id = self.cls.slab.id_of(idx[i]);
                    match framed {
                        Some(f) if f.windowed & (1 << i) != 0 => emc.insert_window(&f.windows[i], f.hashes[i], id),
                        _ => emc.insert(&keys[i], hashes[i], id),
                    }
                }
            }
        }

        todo
    }

    /// [`FlowCache::probe_chunk`] of a burst whose walk probed the EMC's frame table (see
    /// [`FlowCache::lookup_burst_framed`]): its hits first, the key table for the keys of
    /// the frames that had no window, then the later levels (out of line: through the
    /// EMC they answer few packets).
    #[inline(always)]
    fn probe_chunk_framed(
        &mut self,
        port: Option<u32>,
        keys: &[FlowKey],
        hashes: &[u32],
        framed: &FramedBurst,
    ) -> Probed {
        let n = keys.len();
        let all: u32 = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        // `framed.idx` holds the frame table's hits; the other entries are stale (set
        // below as the levels answer them, or as misses).
        let mut idx = framed.idx;
        let mut todo = all & !framed.hits;
        let rest = todo & !framed.windowed;
        if rest != 0
            && let Some(emc) = &self.emc
        {
            todo &= !emc.lookup_some(&self.cls.slab, keys, hashes, rest, &mut idx);
        }
        self.count_emc_hits(n, todo);
        if todo != 0 {
            todo = self.probe_misses_framed(port, keys, hashes, todo, &mut idx, framed);
        }
        Probed { idx, todo, repeats: 0, held: 0 }
    }

    /// The later levels of [`FlowCache::probe_chunk_framed`]; the misses' entries of
    /// `idx` set to `u32::MAX`.
    #[inline(never)]
    fn probe_misses_framed(
        &mut self,
        port: Option<u32>,
        keys: &[FlowKey],
        hashes: &[u32],
        todo: u32,
        idx: &mut [u32; MAX_BATCH],
        framed: &FramedBurst,
    ) -> u32 {
        let todo = self.probe_later_levels(port, keys, hashes, todo, idx, Some(framed));
        let mut bits = todo;
        while bits != 0 {
            idx[bits.trailing_zeros() as usize] = u32::MAX;
            bits &= bits - 1;
        }
        todo
    }

    /// Adds the statistics of every hit, sets `out[i]` to `resolve` of each key's result
    /// and counts the misses (see [`Probed`]).
    ///
    /// Consecutive packets of the same result (a burst of one flow, or of flows that
    /// share a megaflow; or misses) are one run, and `resolve` is called once per run.
    /// In a burst with trains (`repeats`) the run's statistics are summed in registers
    /// and written once per run (adding to the record per packet chains every packet's
    /// read-modify-write through memory, store-to-load forwarding latency, for a
    /// one-flow burst whose packets cost little else: [`add_runs`]); a key of a train
    /// costs two sums and the copy of the run's value. Without trains each packet adds
    /// to its record ([`add_each`]). Also returns the burst's single output port, if
    /// [`add_each`] found one (see [`BurstLookup::one_output`]).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn finish_chunk<'s, V: Copy>(
        &'s mut self,
        keys: &[FlowKey],
        bytes: &[u32],
        now: u64,
        probed: &Probed,
        out: &mut [V],
        mut resolve: impl FnMut(Option<(MegaflowId, &'s [DpAction])>) -> V,
    ) -> (usize, Option<u32>) {
        let missed = probed.todo.count_ones() as usize;
        // Held keys were counted as the hits they were.
        self.counters.misses += (probed.todo & !probed.held).count_ones() as u64;
        // The records are written (statistics) while the actions are handed out.
        let crate::megaflow::Slab { records, cold, .. } = &mut self.cls.slab;
        // Both cut to one length (they have it), so that an index found in `cold` needs
        // no second bounds check in `records`.
        let slots = records.len().min(cold.len());
        let (records, cold): (_, &'s [crate::megaflow::Cold]) = (&mut records[..slots], &cold[..slots]);
        // Two loops: bursts without trains do not pay for testing for them.
        let one_output = if probed.repeats != 0 {
            add_runs(records, cold, keys, bytes, now, probed, out, &mut resolve);
            None
        } else {
            add_each(records, cold, keys, bytes, now, probed, out, &mut resolve)
        };
        (missed, one_output)
    }

    /// Looks up one key without touching statistics or caches (for the slow path and
    /// tests).
    pub fn classify(&mut self, key: &FlowKey) -> Option<MegaflowId> {
        self.cls.lookup(key)
    }

    /// Installs a megaflow, refusing one that overlaps an installed megaflow or one
    /// beyond `max_flows`. `now` starts its idle timer.
    pub fn insert(&mut self, flow: Megaflow, now: u64) -> Result<MegaflowId, InsertError> {
        self.cls.insert(flow, now)
    }

    /// Installs a megaflow that the caller guarantees overlaps no installed megaflow
    /// (only an identical key+mask is detected). See [`Classifier::insert_unchecked`].
    pub fn insert_unchecked(&mut self, flow: Megaflow, now: u64) -> Result<MegaflowId, InsertError> {
        self.cls.insert_unchecked(flow, now)
    }

    /// [`FlowCache::insert_unchecked`] that gives the megaflow back when it refuses it
    /// (see [`Classifier::try_insert_unchecked`]).
    // Given back by value: boxing it would allocate on the PMD thread.
    #[allow(clippy::result_large_err)]
    pub fn try_insert_unchecked(&mut self, flow: Megaflow, now: u64) -> Result<MegaflowId, (InsertError, Megaflow)> {
        self.cls.try_insert_unchecked(flow, now)
    }

    /// Most megaflows installed at once.
    pub fn max_flows(&self) -> usize {
        self.cls.max_flows()
    }

    /// One past the highest slot number ever used (see [`Classifier::slots`]).
    pub fn slots(&self) -> usize {
        self.cls.slots()
    }

    /// The live megaflow in slot `slot` and its statistics. O(1).
    #[inline]
    pub fn slot_stats(&self, slot: usize) -> Option<(MegaflowId, MegaflowStats)> {
        self.cls.slot_stats(slot)
    }

    /// See [`Classifier::add_stats`].
    pub fn add_stats(&mut self, id: MegaflowId, packets: u64, bytes: u64, tcp_flags: u16, now: u64) -> bool {
        self.cls.add_stats(id, packets, bytes, tcp_flags, now)
    }

    /// Removes a megaflow; every cached reference to it dies with it.
    pub fn remove(&mut self, id: MegaflowId) -> Option<(Megaflow, MegaflowStats)> {
        self.cls.remove(id)
    }

    /// Removes every megaflow for which `pred` is true (revalidation).
    pub fn remove_where(&mut self, pred: impl FnMut(&MegaflowRef<'_>) -> bool) -> Vec<(MegaflowId, MegaflowStats)> {
        self.cls.remove_where(pred)
    }

    /// Removes megaflows idle for at least `idle` (`used + idle <= now`).
    pub fn expire_idle(&mut self, now: u64, idle: u64) -> Vec<(MegaflowId, MegaflowStats)> {
        self.cls.expire_idle(now, idle)
    }

    /// The actions of a live megaflow.
    #[inline]
    pub fn actions(&self, id: MegaflowId) -> Option<&DpActions> {
        self.cls.actions(id)
    }

    pub fn stats(&self, id: MegaflowId) -> Option<MegaflowStats> {
        self.cls.get(id).map(|m| m.stats)
    }

    pub fn get(&self, id: MegaflowId) -> Option<MegaflowRef<'_>> {
        self.cls.get(id)
    }

    /// Every installed megaflow (for dumps).
    pub fn iter(&self) -> impl Iterator<Item = MegaflowRef<'_>> + '_ {
        self.cls.iter()
    }

    pub fn len(&self) -> usize {
        self.cls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cls.is_empty()
    }

    /// Number of classifier subtables.
    pub fn n_masks(&self) -> usize {
        self.cls.n_masks()
    }

    pub fn counters(&self) -> CacheCounters {
        self.counters
    }

    /// Turns the adaptive EMC bypass ([`EmcGate`]) on (the default) or off (the EMC is
    /// then probed on every burst).
    pub fn set_emc_adaptive(&mut self, on: bool) {
        self.emc_adaptive = on;
        self.emc_gate = EmcGate::new();
    }

    /// Bursts from a port whose lookups probe at most `n` classifier subtables skip the
    /// EMC and the signature cache (0 turns that off). Default
    /// [`FlowCache::DIRECT_MAX_SUBTABLES`].
    pub fn set_direct_max_subtables(&mut self, n: usize) {
        self.direct_max_subtables = n;
    }

    /// Sets the number of bursts per decision of the adaptive EMC (at least 1).
    pub fn set_emc_gate_window(&mut self, bursts: u32) {
        self.emc_gate.window = bursts.max(1);
    }

    /// True while the EMC is probed on every burst (always true if not adaptive).
    pub fn emc_active(&self) -> bool {
        self.emc.is_some() && (!self.emc_adaptive || self.emc_gate.is_active())
    }

    /// Empties the EMC and signature cache (the megaflows stay).
    pub fn clear_caches(&mut self) {
        if let Some(e) = &mut self.emc {
            e.clear();
        }
        if let Some(s) = &mut self.sig {
            s.clear();
        }
    }

    /// Memory in bytes: (classifier bytes per installed flow, EMC bytes, signature cache bytes).
    pub fn memory(&self) -> (f64, usize, usize) {
        (
            self.cls.bytes_per_flow(),
            self.emc.as_ref().map_or(0, |e| e.memory_bytes()),
            self.sig.as_ref().map_or(0, |s| s.memory_bytes()),
        )
    }

    /// The classifier (read-only), e.g. for `find_overlap`.
    pub fn classifier(&self) -> &Classifier {
        &self.cls
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::DpAction;
    use crate::extract::extract;
    use crate::testpkt::*;

    #[test]
    fn levels_answer_and_stats_accumulate() {
        let mut fc = FlowCache::new(FlowCacheConfig { emc_insert_inverse_prob: 1, ..Default::default() });
        fc.set_direct_max_subtables(0);
        let frame = tcp4_frame(&TCP4);
        let key = extract(&frame, 1);
        let mut out = [None; 1];
        assert_eq!(fc.lookup_batch(&[key], &[key.hash()], &[frame.len() as u32], 5, &mut out), 1);
        assert_eq!(out[0], None);
        let id = fc.insert(Megaflow::new(key, five_tuple_mask(), vec![DpAction::Output(2)]), 5).unwrap();
        for now in 6..9 {
            assert_eq!(fc.lookup_batch(&[key], &[key.hash()], &[frame.len() as u32], now, &mut out), 0);
            assert_eq!(out[0], Some(id));
        }
        let c = fc.counters();
        assert_eq!((c.classifier_hits, c.emc_hits, c.misses), (1, 2, 1));
        let s = fc.stats(id).unwrap();
        assert_eq!((s.packets, s.bytes, s.used, s.tcp_flags), (3, 3 * frame.len() as u64, 8, 0x002));
        // Only the signature cache (EMC cleared): still answered, by the sig cache.
        if let Some(e) = &mut fc.emc {
            e.clear();
        }
        fc.lookup_batch(&[key], &[key.hash()], &[60], 9, &mut out);
        assert_eq!(out[0], Some(id));
        assert_eq!(fc.counters().sig_hits, 1);
        // Removal kills every level at once.
        fc.remove(id).unwrap();
        assert_eq!(fc.lookup_batch(&[key], &[key.hash()], &[60], 10, &mut out), 1);
        assert!(fc.actions(id).is_none());
    }

    #[test]
    fn port_wide_answers_as_the_burst_lookup_does() {
        let mut port_mask = FlowKey::ZERO;
        port_mask.set_in_port(u32::MAX);
        let frames = [
            tcp4_frame(&TCP4),
            tcp4_frame(&Tcp4 { sport: 7, flags: 0x11, ..TCP4 }),
            udp4_frame(1, 2, b"x"),
            icmp4_frame(8, 0),
            arp_frame(1),
            ipv6_frame(6, 0, &[], &tcp_header(1, 2, 0x18, 5)),
            with_vlan(&tcp4_frame(&Tcp4 { flags: 0x04, ..TCP4 }), 0x8100, 5),
            vec![0u8; 3],
        ];
        let n = frames.len();
        let keys: Vec<FlowKey> = frames.iter().map(|f| extract(f, 3)).collect();
        let bytes: Vec<u32> = frames.iter().map(|f| f.len() as u32).collect();
        let total = bytes.iter().map(|&b| b as u64).sum::<u64>();
        let flags = frames.iter().fold(0, |a, f| a | crate::extract::tcp_flags(f));
        assert_eq!(flags, 0x02 | 0x11 | 0x18 | 0x04);
        let (mut a, mut b) = (FlowCache::new(FlowCacheConfig::default()), FlowCache::new(FlowCacheConfig::default()));
        assert_eq!(a.port_wide(3), None, "nothing installed");
        let mf = Megaflow::new(keys[0], port_mask, vec![DpAction::Output(2)]);
        let (ida, idb) = (a.insert(mf.clone(), 1).unwrap(), b.insert(mf, 1).unwrap());
        assert_eq!(a.port_wide(4), None, "another port");
        let found = a.port_wide(3).expect("one megaflow of mask in_port");
        assert_eq!(found.id, ida);
        let mut out = vec![None; n];
        b.lookup_burst(3, &keys, &vec![0; n], &bytes, 9, &mut out, |r| r.map(|(id, _)| id));
        assert!(out.iter().all(|o| *o == Some(idb)), "{out:?}");
        assert_eq!(a.port_wide_hits(found, n, total, flags, 9), Some(&[DpAction::Output(2)][..]));
        assert_eq!(a.stats(ida), b.stats(idb));
        assert_eq!(a.counters(), b.counters());

        // Anything else a lookup from the port would probe, and the answer is gone;
        // it comes back when that is removed.
        let mut by_type = port_mask;
        by_type.set_dl_type(0xffff);
        let mut any_port = port_mask;
        any_port.set_in_port(0xff);
        for other in [five_tuple_mask(), by_type, any_port] {
            let id = a.insert_unchecked(Megaflow::new(keys[2], other, vec![]), 10).unwrap();
            assert_eq!(a.port_wide(3), None, "with a megaflow of mask {other:?}");
            a.remove(id).unwrap();
            assert_eq!(a.port_wide(3), Some(found));
        }
        // A port-wide megaflow of in_port and dl_type is not one.
        let mut c = FlowCache::new(FlowCacheConfig::default());
        c.insert(Megaflow::new(keys[0], by_type, vec![]), 1).unwrap();
        assert_eq!(c.port_wide(3), None);
        // Removed: no answer, and a stale one counts nothing.
        a.remove(ida).unwrap();
        assert_eq!(a.port_wide(3), None);
        let before = a.counters();
        assert_eq!(a.port_wide_hits(found, n, total, flags, 11), None);
        assert_eq!(a.counters(), before);
        // Off with the direct path.
        let id = a.insert(Megaflow::new(keys[0], port_mask, vec![]), 12).unwrap();
        assert_eq!(a.port_wide(3).map(|f| f.id), Some(id));
        a.set_direct_max_subtables(0);
        assert_eq!(a.port_wide(3), None);
    }

    #[test]
    fn config_for_max_flows_sizes_the_signature_cache() {
        assert_eq!(FlowCacheConfig::for_max_flows(1000), FlowCacheConfig { max_flows: 1000, ..Default::default() });
        let c = FlowCacheConfig::for_max_flows(1_000_000);
        assert_eq!((c.max_flows, c.sig_entries), (1_000_000, 4_000_000));
    }

    #[test]
    fn emc_gate_bypasses_and_returns() {
        let mut g = EmcGate::new();
        g.window = 4;
        // Active, 10% hits: bypassed after one window.
        for _ in 0..4 {
            assert!(g.probe_now());
            g.record(32, 27);
        }
        assert!(!g.is_active(), "27/32 is below 7/8");
        // Bypassed: probed on one burst in SAMPLE_EVERY only.
        let probes = (0..EmcGate::SAMPLE_EVERY * 4)
            .filter(|_| {
                let p = g.probe_now();
                g.record(if p { 32 } else { 0 }, if p { 29 } else { 0 });
                p
            })
            .count();
        assert_eq!(probes, 4);
        assert!(!g.is_active(), "29/32 is not enough to come back");
        for _ in 0..EmcGate::SAMPLE_EVERY * 4 {
            let p = g.probe_now();
            g.record(if p { 32 } else { 0 }, if p { 30 } else { 0 });
        }
        assert!(g.is_active(), "the sampled hit rate brings it back");
    }

    #[test]
    fn bypassed_emc_still_answers_correctly() {
        // Many flows used evenly: the EMC misses, gets bypassed, answers stay right.
        let mut fc = FlowCache::new(FlowCacheConfig { emc_entries: 64, sig_entries: 1 << 16, ..Default::default() });
        fc.set_direct_max_subtables(0);
        fc.set_emc_gate_window(8);
        let keys: Vec<FlowKey> = (0..2000u16).map(|i| extract(&tcp4_frame(&Tcp4 { sport: i, ..TCP4 }), 1)).collect();
        let ids: Vec<MegaflowId> = keys
            .iter()
            .map(|k| fc.insert(Megaflow::new(*k, five_tuple_mask(), vec![DpAction::Output(1)]), 0).unwrap())
            .collect();
        let mut out = [None; 32];
        for round in 0..4 {
            for (kc, ic) in keys.chunks(32).zip(ids.chunks(32)) {
                let hashes: Vec<u32> = kc.iter().map(|k| k.hash()).collect();
                fc.lookup_batch(kc, &hashes, &[64; 32], round, &mut out[..kc.len()]);
                assert!(out[..kc.len()].iter().zip(ic).all(|(o, i)| *o == Some(*i)));
            }
        }
        assert!(!fc.emc_active());
    }

    #[test]
    fn batch_of_mixed_hits_and_misses() {
        let mut fc = FlowCache::new(FlowCacheConfig::default());
        let mut keys = Vec::new();
        let mut ids = Vec::new();
        for i in 0..40u16 {
            let f = tcp4_frame(&Tcp4 { sport: 1000 + i, ..TCP4 });
            let k = extract(&f, 1);
            keys.push(k);
            ids.push(if i % 2 == 0 {
                Some(fc.insert(Megaflow::new(k, five_tuple_mask(), vec![DpAction::Output(i as u32)]), 0).unwrap())
            } else {
                None
            });
        }
        let hashes: Vec<u32> = keys.iter().map(|k| k.hash()).collect();
        let mut out = vec![None; 40];
        for _ in 0..3 {
            assert_eq!(fc.lookup_batch(&keys, &hashes, &[64; 40], 1, &mut out), 20);
            assert_eq!(out, ids);
        }
        // One burst takes at most MAX_BATCH keys: the 8 past it miss (and are counted).
        let before = fc.counters();
        let mut got = vec![Some(None); 40];
        let found = fc.lookup_burst(1, &keys, &hashes, &[64; 40], 1, &mut got, |r| Some(r.map(|(id, _)| id)));
        assert_eq!(found, BurstLookup { misses: 24, one_train: false, trains: false, one_output: None });
        let want: Vec<_> = (0..40).map(|i| Some(if i < MAX_BATCH { ids[i] } else { None })).collect();
        assert_eq!(got, want);
        let after = fc.counters();
        assert_eq!((after.misses - before.misses, after.classifier_hits - before.classifier_hits), (24, 16));
        // Statistics: three lookup_batch passes and this burst.
        assert_eq!(fc.stats(ids[0].unwrap()).unwrap().packets, 4);
        assert_eq!(fc.stats(ids[38].unwrap()).unwrap().packets, 3);
    }

    #[test]
    fn known_repeats_are_taken_and_the_other_keys_compared() {
        let mut rng = SplitMix(16);
        let flows: Vec<FlowKey> =
            (0..3u8).map(|i| extract(&tcp4_frame(&Tcp4 { sport: 100 + i as u16, ..TCP4 }), 1)).collect();
        for _ in 0..20_000 {
            let n = rng.index(MAX_BATCH + 3);
            let few = if rng.chance(50) { 1 } else { 3 };
            let keys: Vec<FlowKey> = (0..n).map(|_| flows[rng.index(few)]).collect();
            let repeats = repeated_keys::<false>(&keys, 0);
            // Any subset of the repeats may be known (bit 0 and bits past the keys
            // are not repeats whatever the caller says).
            let known = repeats & rng.next_u64() as u32;
            assert_eq!(repeated_keys::<true>(&keys, known), repeats, "{n} keys, known {known:#x}");
            assert_eq!(repeated_keys::<true>(&keys, known | 1), repeats, "{n} keys, known {known:#x} | 1");
            if n < 32 {
                assert_eq!(repeated_keys::<true>(&keys, known | !0 << n.max(1)), repeats, "{n} keys");
            }
            let want = (1..n.min(MAX_BATCH)).filter(|&i| keys[i] == keys[i - 1]).fold(0u32, |r, i| r | 1 << i);
            assert_eq!(repeats, want);
        }
    }

    #[test]
    fn trains_of_equal_keys_take_the_first_keys_result() {
        let mut fc = FlowCache::new(FlowCacheConfig::default());
        let key = |sport: u16, flags: u8| extract(&tcp4_frame(&Tcp4 { sport, flags, ..TCP4 }), 1);
        let (a, b, missing) = (key(1, 0x002), key(2, 0x010), key(3, 0x002));
        // A key equal to `a` except for its TCP flags: another key (probed), same megaflow.
        let a_ack = key(1, 0x010);
        let ida = fc.insert(Megaflow::new(a, five_tuple_mask(), vec![DpAction::Output(1)]), 0).unwrap();
        let idb = fc.insert(Megaflow::new(b, five_tuple_mask(), vec![DpAction::Output(2)]), 0).unwrap();
        // Trains of hits and of misses, at the start, middle and end of the burst.
        let keys = [a, a, a, missing, missing, b, a_ack, a, missing, b, b, b];
        assert_eq!(repeated_keys::<false>(&keys, 0), 0b1100_0001_0110);
        // Known repeats are taken as they are; the others still compared.
        assert_eq!(repeated_keys::<true>(&keys, 0b0100_0000_0010), 0b1100_0001_0110);
        // Hits carried up their trains, also through 31 repeats, never past a key that
        // is no repeat.
        assert_eq!(spread_up_trains(0b0010_0010_0001, 0b1100_0001_0110), 0b1110_0010_0111);
        assert_eq!(spread_up_trains(1, u32::MAX - 1), u32::MAX);
        assert_eq!(spread_up_trains(0b10, u32::MAX - 1), u32::MAX - 1);
        assert_eq!(spread_up_trains(1 << 31, u32::MAX - 1), 1 << 31);
        let want = [
            Some(ida),
            Some(ida),
            Some(ida),
            None,
            None,
            Some(idb),
            Some(ida),
            Some(ida),
            None,
            Some(idb),
            Some(idb),
            Some(idb),
        ];
        let hashes: Vec<u32> = keys.iter().map(|k| k.hash()).collect();
        let bytes: Vec<u32> = (0..keys.len() as u32).map(|i| 60 + i).collect();
        let mut got = [None; 12];
        let found = fc.lookup_burst(1, &keys, &hashes, &bytes, 7, &mut got, |r| r.map(|(id, _)| id));
        assert_eq!(found, BurstLookup { misses: 3, one_train: false, trains: true, one_output: None });
        assert_eq!(got, want);
        let mut batch = [None; 12];
        assert_eq!(fc.lookup_batch(&keys, &hashes, &bytes, 8, &mut batch), 3);
        assert_eq!(batch, want);
        // Every packet counted, as if each had been probed.
        let c = fc.counters();
        assert_eq!((c.classifier_hits, c.misses), (18, 6));
        let sum = |id| (0..keys.len()).filter(|&i| want[i] == Some(id)).map(|i| bytes[i] as u64).sum::<u64>() * 2;
        let (sa, sb) = (fc.stats(ida).unwrap(), fc.stats(idb).unwrap());
        assert_eq!((sa.packets, sa.bytes, sa.used, sa.tcp_flags), (10, sum(ida), 8, 0x012));
        assert_eq!((sb.packets, sb.bytes, sb.used), (8, sum(idb), 8));
        // One train: a whole burst of `a` (one value, from one call); not when it misses,
        // nor with one other key anywhere in it, nor past the keys looked up.
        let train = |keys: &[FlowKey], fc: &mut FlowCache| {
            let mut got = vec![None; keys.len()];
            let mut calls = 0;
            let hashes: Vec<u32> = keys.iter().map(|k| k.hash()).collect();
            let found = fc.lookup_burst(1, keys, &hashes, &vec![60; keys.len()], 9, &mut got, |r| {
                calls += 1;
                r.map(|(id, _)| id)
            });
            (found.one_train, calls)
        };
        assert_eq!(train(&[a; 32], &mut fc), (true, 2), "the miss value first, then the train's");
        assert_eq!(train(&[a], &mut fc), (true, 2));
        assert!(!train(&[missing; 32], &mut fc).0);
        assert!(!train(&[a; 33], &mut fc).0, "the key past a burst misses");
        for at in [0, 1, 17, 31] {
            let mut keys = [a; 32];
            keys[at] = a_ack;
            assert!(!train(&keys, &mut fc).0, "another key at {at}");
        }
        assert!(!train(&[], &mut fc).0);
    }

    /// The hold pass: only hits on megaflows installed at or after `since` are asked
    /// about; a held key (and the repeats right after it) is a miss without statistics,
    /// counted as the hit it was; keys of older megaflows are never asked about. On the
    /// direct path (trains) and through the caches.
    #[test]
    fn hits_on_megaflows_installed_since_a_parked_key_are_held_when_asked() {
        let key = |sport: u16| extract(&tcp4_frame(&Tcp4 { sport, ..TCP4 }), 1);
        let (old, young, young2, missing) = (key(1), key(2), key(3), key(4));
        for direct in [true, false] {
            let mut fc = FlowCache::new(FlowCacheConfig { emc_insert_inverse_prob: 1, ..Default::default() });
            if !direct {
                fc.set_direct_max_subtables(0);
            }
            let mf = |k| Megaflow::new(k, five_tuple_mask(), vec![DpAction::Output(1)]);
            let id_old = fc.insert(mf(old), 9).unwrap();
            let id_young = fc.insert(mf(young), 10).unwrap();
            let id_young2 = fc.insert(mf(young2), 12).unwrap();
            assert!(fc.installed_before(id_old, 10) && !fc.installed_before(id_young, 10));
            let keys = [old, young, young, young, missing, young2, old, young];
            let hashes: Vec<u32> = keys.iter().map(|k| k.hash()).collect();
            let bytes = [60u32; 8];
            let before = fc.counters();
            let lookup = |fc: &mut FlowCache, since: u64, asked: &mut Vec<usize>| {
                let mut got = [None; 8];
                // `young`'s packets are parked: they must join; `young2`'s are not.
                let hold = Some((since, |i: usize| {
                    asked.push(i);
                    keys[i] == young
                }));
                let (found, held) =
                    fc.lookup_burst_holding(1, &keys, &hashes, &bytes, 0, 20, hold, &mut got, |r| r.map(|(id, _)| id));
                (found.misses, held, got)
            };
            let mut asked = Vec::new();
            let (misses, held, got) = lookup(&mut fc, 10, &mut asked);
            assert_eq!(held, 0b1000_1110, "direct {direct}");
            assert_eq!(
                got,
                [Some(id_old), None, None, None, None, Some(id_young2), Some(id_old), None],
                "direct {direct}"
            );
            assert_eq!(misses, 5, "direct {direct}");
            // Asked about the first key of each run of `young` (its repeats go with it on
            // the direct path) and about `young2`; never about `old`.
            let want_asked: &[usize] = if direct { &[1, 5, 7] } else { &[1, 2, 3, 5, 7] };
            assert_eq!(asked, want_asked, "direct {direct}");
            let c = fc.counters();
            let hits = |c: CacheCounters| c.classifier_hits + c.sig_hits + c.emc_hits;
            assert_eq!((hits(c) - hits(before), c.misses - before.misses), (7, 1), "direct {direct}");
            assert_eq!(fc.stats(id_young).unwrap().packets, 0, "held packets are not counted");
            assert_eq!((fc.stats(id_old).unwrap().packets, fc.stats(id_young2).unwrap().packets), (2, 1));
            // Parked since after every install: nothing is asked about or held.
            asked.clear();
            let (misses, held, _) = lookup(&mut fc, 13, &mut asked);
            assert_eq!((misses, held, asked.len()), (1, 0, 0), "direct {direct}");
        }
    }

    #[test]
    fn rss_hash_collisions_are_harmless() {
        // Every packet given the same "RSS" hash: all levels must still tell flows apart.
        let mut fc = FlowCache::new(FlowCacheConfig { emc_insert_inverse_prob: 1, ..Default::default() });
        fc.set_direct_max_subtables(0);
        let mut keys = Vec::new();
        for i in 0..16u16 {
            let k = extract(&tcp4_frame(&Tcp4 { dport: i, ..TCP4 }), 1);
            fc.insert(Megaflow::new(k, five_tuple_mask(), vec![DpAction::Output(i as u32)]), 0).unwrap();
            keys.push(k);
        }
        let mut out = vec![None; 16];
        for _ in 0..4 {
            fc.lookup_batch(&keys, &[7; 16], &[60; 16], 0, &mut out);
            for (i, id) in out.iter().enumerate() {
                assert_eq!(fc.actions(id.unwrap()).unwrap(), &vec![DpAction::Output(i as u32)]);
            }
        }
    }

    #[test]
    fn few_subtables_go_direct_and_many_use_the_caches() {
        let frames: Vec<Vec<u8>> = (0..3u8).map(|i| tcp4_frame(&Tcp4 { dst: [10, i, 0, 1], ..TCP4 })).collect();
        let keys: Vec<FlowKey> = frames.iter().map(|f| extract(f, 1)).collect();
        let hashes: Vec<u32> = keys.iter().map(|k| k.hash()).collect();
        // Megaflow i matches nw_dst under a prefix of its own length: its own subtable.
        let megaflow = |i: usize| {
            let mut m = five_tuple_mask();
            m.set_nw_dst_u32(u32::MAX << (8 * i));
            Megaflow::new(keys[i], m, vec![DpAction::Output(i as u32)])
        };
        // emc_entries 0 stands for "EMC bypassed": direct up to the threshold.
        for emc_entries in [8192, 0] {
            let mut fc =
                FlowCache::new(FlowCacheConfig { emc_entries, emc_insert_inverse_prob: 1, ..Default::default() });
            fc.set_direct_max_subtables(2);
            // Nothing installed: direct (no hash needed), every packet misses.
            assert!(!fc.uses_hashes(1));
            let mut out = vec![None; 3];
            assert_eq!(fc.lookup_batch(&keys, &[0; 3], &[60; 3], 1, &mut out), 3);
            let mut ids = Vec::new();
            for i in 0..3 {
                ids.push(fc.insert(megaflow(i), 0).unwrap());
                let subtables = i + 1;
                let want_direct = subtables <= 1 || (subtables <= 2 && emc_entries == 0);
                assert_eq!(fc.uses_hashes(1), !want_direct, "{subtables} subtables, emc {emc_entries}");
                // A port without a partition of its own probes only "any port" (empty).
                assert!(!fc.uses_hashes(9));
            }
            // Three subtables: the caches answer the second pass.
            for _ in 0..2 {
                assert_eq!(fc.lookup_batch(&keys, &hashes, &[60; 3], 2, &mut out), 0);
                assert_eq!(out, ids.iter().map(|&i| Some(i)).collect::<Vec<_>>());
            }
            let c = fc.counters();
            assert_eq!((c.classifier_hits, c.emc_hits + c.sig_hits, c.misses), (3, 3, 3));
            // Back to one subtable: direct again; garbage hashes, same answers and stats.
            fc.remove(ids[2]).unwrap();
            fc.remove(ids[1]).unwrap();
            assert!(!fc.uses_hashes(1));
            assert_eq!(fc.lookup_batch(&keys, &[7; 3], &[60; 3], 3, &mut out), 2);
            assert_eq!(out, vec![Some(ids[0]), None, None]);
            assert_eq!(fc.counters().classifier_hits, 4);
            let s = fc.stats(ids[0]).unwrap();
            assert_eq!((s.packets, s.bytes, s.used), (3, 180, 3));
        }
    }
}
