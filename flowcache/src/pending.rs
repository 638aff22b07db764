//! Packets that missed every cache and wait for the slow path's answer ("parked"),
//! grouped by flow key.
//!
//! # Why
//!
//! The upcall contract ([`crate::upcall`]) keeps a missed packet with its PMD while the
//! upcall travels: one upcall per distinct key, every later packet of that key joins the
//! first, and the answer to that key's upcall (`Install` or `Execute`) releases them in
//! arrival order. A flood of new flows (a port scan, a restart with full traffic) must
//! not lose first packets because the table is small, so the table holds thousands of
//! keys; and since the PMD calls it from the poll loop, every operation has bounded cost
//! and nothing is allocated after [`PendingMisses::new`]. Time is passed in
//! (milliseconds), so the same code runs in the PMD and in the slow-path differential
//! test.
//!
//! # Each key waits for its own answer
//!
//! An `Install` releases only the packets of the key whose upcall it answers, even when
//! its megaflow also covers other parked keys. Each of those has its own upcall in
//! flight, translated later, possibly against a MAC table that the earlier upcall
//! changed (a frame to an address that frame itself taught `normal`, on its own input
//! port: OVS drops it; the earlier key's decision would flood it). So each packet is
//! forwarded by the decision of its own key's translation, as in OVS, where every
//! missed packet is translated.
//!
//! The other covered keys are *shadowed* ([`PendingMisses::shadow_where`]): a megaflow
//! now matches their packets, but their parked packets have not been sent yet. A newer
//! packet of a shadowed key must not use the megaflow (it would overtake its flow's
//! parked packets), so while any key is shadowed the PMD asks [`PendingMisses::must_join`]
//! about each packet that hits a megaflow installed since the oldest parked key
//! ([`PendingMisses::shadowing_since`]; a key parked then missed every megaflow installed
//! before, so none of those covers it), and parks the packets it names behind their key
//! (`FlowCache::lookup_burst_holding`). That costs one hash and probe per such packet;
//! the packets of megaflows installed before stay free of it, also under a flood of new
//! flows on their own rx queue. [`PendingMisses::shadowed`] is O(1).
//!
//! Finding the covered keys means testing each parked key against the megaflow's mask.
//! With more than [`SHADOW_SCAN_MAX_KEYS`] keys parked, [`PendingMisses::shadow_covered`]
//! does not: it shadows *every* key parked now or later, until the table is empty. That
//! is safe (a packet of a parked key that hits a megaflow must join its key whether or
//! not an install marked it: the megaflow covers its key) and turns an O(parked keys)
//! scan per install into one probe per packet of a young megaflow while the table holds
//! keys, and only for the packets of ports that have keys parked
//! ([`PendingMisses::shadowed_on`]: a count of parked keys per ingress port), so the
//! cached flows of other ports pay nothing. Under a flood
//! of new flows the table stays full and the slow path answers hundreds of thousands of
//! keys a second; a 4,096-key scan per answer took the PMD's whole time, and installed
//! flows fell to a few percent of their rate.
//!
//! # Backpressure per rx queue
//!
//! When the table cannot keep another burst's misses, receiving more from a port whose
//! packets miss only costs the PMD: each such packet is extracted, looked up at every
//! level, probed here and dropped. So the PMD leaves those rx queues alone until answers
//! free room ([`PendingMisses::rx_hold`]); their frames wait in the device's ring (and a
//! device whose ring is full drops and counts them, at no cost to the PMD). Which queues
//! wait depends on what runs short, and on each queue's own recent share of misses
//! ([`MissShare`], kept by the poll loop per queue):
//!
//! ```text
//!   fewer than a burst of packet slots free   RxHold::AnyMissing     queues that missed at
//!   (flows of many packets each wait for                             all lately: every packet
//!   their answers: a burst of new flows)                             that could be parked waits
//!   fewer than a burst of keys free           RxHold::MostlyMissing  queues of mostly misses
//!   (a flood of distinct new flows)
//! ```
//!
//! A queue of cache hits alone is never held, so the installed flows of one port keep
//! their rate while another port floods the switch with new flows or replays a burst of
//! them. Under a flood, the flooding queue is taken about as often as the slow path
//! answers a burst's worth of keys: the slow path stays saturated, and the PMD spends on
//! the flood little more than the answers (installs) themselves. A queue of mostly hits
//! that also carries new flows is polled during a flood, and its new keys are dropped
//! and counted (`park_full`) while the flood's keys fill the table: holding it would
//! cost its installed flows their rate, and the table has no room for its keys anyway.
//!
//! A held queue's frames are not parked, so the bound of [`PendingConfig::max_rx_pause_ms`]
//! on the oldest key's wait ends the hold when the slow path stops answering.
//!
//! # Design
//!
//! Three arrays, all allocated once:
//!
//! ```text
//!   index   [u32; 2^k >= 2 * max_keys]   open addressing on the key's hash, linear
//!                                         probing, entry number or EMPTY
//!   entries [Entry; max_keys]             key, hash, first-park time, packet count,
//!                                         shadowed flag, head/tail of its packet list,
//!                                         and the older/newer links of the age list
//!   packets [Slot<P>; max_packets]        the packet and the next packet of the same
//!                                         key (or of the free list)
//! ```
//!
//! - Each key's packets form a singly linked list through the slot array (append at the
//!   tail, take from the head), so a key's packets stay in arrival order. Free slots are
//!   chained the same way; free entries sit on a stack.
//! - Entries are also on a doubly linked *age list* in the order their keys were first
//!   parked. Park times never decrease (a clock that steps back is clamped to the newest
//!   park time), so the oldest key is at the head: the next deadline is O(1) and
//!   [`PendingMisses::expire`] takes keys from the head, at most `max_keys` per call, so a
//!   burst of timeouts is spread over several loop iterations. Freeing an entry unlinks
//!   it in O(1).
//! - Removing a key from the index uses backward-shift deletion (no tombstones), so
//!   probe sequences stay short however many keys come and go; with the index at most
//!   half full, a lookup probes about 1.5 slots on average for a hit, 2.5 for a miss.
//!
//! # Costs
//!
//! Memory (64-bit, `size_of` checked in the tests): 104 bytes per entry, 8 bytes of index
//! per entry (two 4-byte slots), and `size_of::<P>() + 4` bytes per packet slot rounded
//! up to `P`'s alignment (16 bytes for an mbuf pointer: the packet and the next link).
//! For 4,096 keys and 16,384 packets of pointer size: 4096 * 112 + 16384 * 16 = 704 KiB
//! per PMD.
//!
//! Time:
//! - [`park`](PendingMisses::park): one hash, O(1) expected probes, O(1) list append.
//! - [`contains`](PendingMisses::contains), [`must_join`](PendingMisses::must_join),
//!   [`release_key`](PendingMisses::release_key): O(1) expected to find the key, then
//!   O(packets of the key) to release.
//! - [`shadow_where`](PendingMisses::shadow_where) (an `Install` marking the other parked
//!   keys its megaflow covers): O(parked keys) predicate calls — a megaflow is a masked
//!   match, so the table cannot hash it and scans the live keys (the age list, not the
//!   whole array). At 4,096 parked keys the scan is 4,096 masked compares of 64 bytes,
//!   about 9 us in a release build; it is paid only by installs that arrive while other
//!   keys are parked. An index of parked keys by in_port (which the translator puts in
//!   every megaflow mask) would cut this; it is not done.
//! - [`expire`](PendingMisses::expire): O(1) if nothing is due, else O(keys released +
//!   their packets), keys bounded by the caller's budget.
//! - [`next_deadline`](PendingMisses::next_deadline), the counts: O(1).

use crate::key::FlowKey;

/// Parked keys above which [`PendingMisses::shadow_covered`] shadows every parked key
/// instead of testing each (see the module doc): 64 masked 64-byte compares are cheaper
/// than a probe for each packet of a burst.
pub const SHADOW_SCAN_MAX_KEYS: usize = 64;

/// Buckets of the count of parked keys by ingress port ([`PendingMisses::shadowed_on`]):
/// ports are numbered from 1 and a PMD polls a few, so 64 buckets rarely share one.
pub const PORT_BUCKETS: usize = 64;

fn port_bucket(in_port: u32) -> usize {
    in_port as usize % PORT_BUCKETS
}

/// Sizes and timeout of a [`PendingMisses`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingConfig {
    /// Most distinct keys parked at once (one upcall each).
    pub max_keys: usize,
    /// Most packets parked at once, over all keys.
    pub max_packets: usize,
    /// A key parked this long without an answer is given up (its packets dropped).
    pub timeout_ms: u64,
    /// How long the oldest key may have waited for [`PendingMisses::rx_hold`] still to
    /// hold rx queues. It must exceed the time the slow path takes to answer a full
    /// table (4,096 keys at 30,000-50,000 upcalls/s: 80-140 ms), so that a burst of up to
    /// 4,096 new flows loses nothing; and it bounds how long a slow path that stopped
    /// answering (say, a rule change that takes seconds) holds up the installed flows.
    pub max_rx_pause_ms: u64,
}

impl PendingConfig {
    /// Default number of keys: the slow-path requirement of at least 4,096 new flows
    /// waiting per PMD.
    pub const DEFAULT_KEYS: usize = 4096;
    /// Default timeout of an unanswered upcall.
    pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
    /// Default [`PendingConfig::max_rx_pause_ms`].
    pub const DEFAULT_MAX_RX_PAUSE_MS: u64 = 250;

    /// `max_keys` keys and `max_packets` packets (each at least 1), default timeout.
    pub fn new(max_keys: usize, max_packets: usize) -> PendingConfig {
        PendingConfig {
            max_keys: max_keys.max(1),
            max_packets: max_packets.max(1),
            timeout_ms: Self::DEFAULT_TIMEOUT_MS,
            max_rx_pause_ms: Self::DEFAULT_MAX_RX_PAUSE_MS,
        }
    }
}

impl Default for PendingConfig {
    /// 4,096 keys, four packets per key on average, one second.
    fn default() -> Self {
        PendingConfig::new(Self::DEFAULT_KEYS, 4 * Self::DEFAULT_KEYS)
    }
}

/// Which rx queues the PMD leaves alone for now ([`PendingMisses::rx_hold`], decided
/// per queue by [`MissShare::held_by`]; see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RxHold {
    /// None: the table can keep another burst's misses.
    #[default]
    None,
    /// The queues whose recent bursts were mostly misses: fewer than a burst of keys free.
    MostlyMissing,
    /// The queues that missed at all lately: fewer than a burst of packet slots free.
    AnyMissing,
}

/// The share of one rx queue's recent packets that missed every cache: an exponential
/// moving average over its bursts (each weighs 1/8), in 1/65,536ths. The poll loop keeps
/// one per rx queue and records every burst; while the parking table is short
/// ([`PendingMisses::rx_hold`]) it leaves alone the queues [`MissShare::held_by`] names
/// (see the module doc). A queue turns from all hits to "mostly misses" after 6 bursts
/// of misses, long before a burst of new flows can fill a table of thousands of packets;
/// one missed packet makes it "missing" for the next 30-odd bursts; the share of a queue
/// of hits alone is 0. A held queue's share is not updated, and it is polled again as
/// soon as the table has room. O(1), one division per burst.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissShare {
    share: u32,
}

impl MissShare {
    /// The whole share (every packet missed).
    pub const ALL: u32 = 1 << 16;

    /// Records a burst of `packets` of which `misses` missed (a burst of none changes
    /// nothing).
    pub fn record(&mut self, packets: usize, misses: usize) {
        if packets == 0 {
            return;
        }
        let burst = (misses.min(packets) as u64 * Self::ALL as u64 / packets as u64) as i64;
        let share = self.share as i64;
        // An arithmetic shift rounds down, so a queue whose packets stop missing gets back
        // to 0 (a division would stop short of it).
        self.share = (share + ((burst - share) >> 3)) as u32;
    }

    /// The share, in 1/65,536ths.
    pub fn share(&self) -> u32 {
        self.share
    }

    /// Whether at least half of the queue's recent packets missed.
    pub fn mostly_misses(&self) -> bool {
        self.share >= Self::ALL / 2
    }

    /// Whether the queue is left alone under `hold`.
    #[inline]
    pub fn held_by(&self, hold: RxHold) -> bool {
        match hold {
            RxHold::None => false,
            RxHold::MostlyMissing => self.mostly_misses(),
            RxHold::AnyMissing => self.share > 0,
        }
    }
}

/// What [`PendingMisses::park`] did with a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Parked<P> {
    /// The key was already parked: the packet joined it (no new upcall).
    Joined,
    /// The packet is the first of a new key: send its upcall (or, if that fails, take
    /// the key back with [`PendingMisses::release_key`]).
    NewKey,
    /// No room (no free packet slot, or no free entry for a new key): the packet is
    /// given back.
    Full(P),
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Entry {
    hash: u32,
    /// Packets parked under this key.
    count: u32,
    /// When the first packet was parked (and the upcall sent).
    since_ms: u64,
    /// A megaflow installed since covers this key (see the module doc).
    shadowed: bool,
    head: u32,
    tail: u32,
    /// Age list: the entry parked just before / after this one.
    older: u32,
    newer: u32,
}

const EMPTY_ENTRY: Entry =
    Entry { hash: 0, count: 0, since_ms: 0, shadowed: false, head: NIL, tail: NIL, older: NIL, newer: NIL };

struct Slot<P> {
    pkt: Option<P>,
    /// Next packet of the same key, or next free slot.
    next: u32,
}

/// The parking table. See the module doc.
pub struct PendingMisses<P> {
    config: PendingConfig,
    /// Entry number by open addressing on the hash; `NIL` = empty.
    index: Vec<u32>,
    index_mask: usize,
    entries: Vec<Entry>,
    /// The key of each entry (apart: a key is 64-byte aligned, so inside `Entry` it would
    /// pad it to 128 bytes).
    entry_keys: Vec<FlowKey>,
    free_entries: Vec<u32>,
    slots: Vec<Slot<P>>,
    free_slot: u32,
    n_keys: usize,
    n_packets: usize,
    /// Entries with `shadowed` set.
    n_shadowed: usize,
    /// Every parked key counts as shadowed until the table is empty
    /// ([`PendingMisses::shadow_covered`]).
    all_shadowed: bool,
    /// Parked keys by bucket of their ingress port ([`port_bucket`]).
    port_keys: [u32; PORT_BUCKETS],
    oldest: u32,
    newest: u32,
}

impl<P> PendingMisses<P> {
    /// An empty table; the only allocation it ever makes.
    pub fn new(config: PendingConfig) -> PendingMisses<P> {
        let config = PendingConfig {
            max_keys: config.max_keys.clamp(1, (NIL / 2) as usize),
            max_packets: config.max_packets.clamp(1, (NIL - 1) as usize),
            ..config
        };
        let index_len = (2 * config.max_keys).next_power_of_two();
        let n = config.max_packets;
        PendingMisses {
            config,
            index: vec![NIL; index_len],
            index_mask: index_len - 1,
            entries: vec![EMPTY_ENTRY; config.max_keys],
            entry_keys: vec![FlowKey::ZERO; config.max_keys],
            free_entries: (0..config.max_keys as u32).rev().collect(),
            slots: (0..n).map(|i| Slot { pkt: None, next: if i + 1 < n { i as u32 + 1 } else { NIL } }).collect(),
            free_slot: 0,
            n_keys: 0,
            n_packets: 0,
            n_shadowed: 0,
            all_shadowed: false,
            port_keys: [0; PORT_BUCKETS],
            oldest: NIL,
            newest: NIL,
        }
    }

    pub fn config(&self) -> &PendingConfig {
        &self.config
    }

    /// Distinct keys parked.
    pub fn keys(&self) -> usize {
        self.n_keys
    }

    /// Packets parked.
    pub fn packets(&self) -> usize {
        self.n_packets
    }

    pub fn is_empty(&self) -> bool {
        self.n_packets == 0
    }

    /// Whether `key` is parked.
    pub fn contains(&self, key: &FlowKey) -> bool {
        self.find(key, key.hash()).is_some()
    }

    /// Packets parked under `key`.
    pub fn packets_of(&self, key: &FlowKey) -> usize {
        self.find(key, key.hash()).map_or(0, |(_, e)| self.entries[e as usize].count as usize)
    }

    /// When the oldest parked key times out (`None` if nothing is parked).
    pub fn next_deadline(&self) -> Option<u64> {
        (self.oldest != NIL).then(|| self.entries[self.oldest as usize].since_ms.saturating_add(self.config.timeout_ms))
    }

    /// Which rx queues the PMD should leave alone for now instead of receiving bursts
    /// whose misses the table could not keep (backpressure: the frames wait in the
    /// device's ring, as they do behind an OVS PMD that handles its upcalls inline; see
    /// the module doc, "Backpressure per rx queue"): [`RxHold::AnyMissing`] when fewer
    /// than a burst of packet slots are free, else [`RxHold::MostlyMissing`] when fewer
    /// than a burst of keys are free, else none. None either once the oldest key has
    /// waited [`PendingConfig::max_rx_pause_ms`] (a slow path that does not answer, or
    /// answers very slowly, must not hold up those queues for long), or when the table is
    /// empty (it waits for nothing; a table smaller than a burst holds while anything is
    /// parked).
    ///
    /// O(1); `now_ms` (the clock) is asked only when the table runs short.
    pub fn rx_hold(&self, burst: usize, now_ms: impl FnOnce() -> u64) -> RxHold {
        let short = |max: usize, used: usize| max - used < burst.min(max);
        let hold = if short(self.config.max_packets, self.n_packets) {
            RxHold::AnyMissing
        } else if short(self.config.max_keys, self.n_keys) {
            RxHold::MostlyMissing
        } else {
            return RxHold::None;
        };
        let waited = |oldest: u32| now_ms().saturating_sub(self.entries[oldest as usize].since_ms);
        if self.oldest != NIL && waited(self.oldest) < self.config.max_rx_pause_ms { hold } else { RxHold::None }
    }

    /// Whether a packet received on `in_port` may belong to a shadowed key. False means
    /// that none of that port's packets needs [`PendingMisses::must_join`]: no key of that
    /// port (or of another port sharing its bucket of [`PORT_BUCKETS`]) is parked. A
    /// flood of new flows on one port thus costs the cached flows of the other ports no
    /// probe per packet. O(1).
    pub fn shadowed_on(&self, in_port: u32) -> bool {
        self.shadowed() > 0 && self.port_keys[port_bucket(in_port)] > 0
    }

    /// When the oldest parked key was parked (the `now_ms` of its first
    /// [`PendingMisses::park`]), while any key is shadowed: the packets that may need
    /// [`PendingMisses::must_join`] are those that hit a megaflow installed since (see
    /// `FlowCache::lookup_burst_holding`). O(1).
    pub fn shadowing_since(&self) -> Option<u64> {
        (self.shadowed() > 0 && self.oldest != NIL).then(|| self.entries[self.oldest as usize].since_ms)
    }

    /// The parked keys, oldest first (for dumps and tests; O(parked keys)).
    pub fn iter_keys(&self) -> impl Iterator<Item = &FlowKey> + '_ {
        let mut e = self.oldest;
        std::iter::from_fn(move || {
            if e == NIL {
                return None;
            }
            let key = &self.entry_keys[e as usize];
            e = self.entries[e as usize].newer;
            Some(key)
        })
    }

    /// (index position, entry number) of `key`.
    fn find(&self, key: &FlowKey, hash: u32) -> Option<(usize, u32)> {
        let mut i = hash as usize & self.index_mask;
        loop {
            let e = self.index[i];
            if e == NIL {
                return None;
            }
            if self.entries[e as usize].hash == hash && self.entry_keys[e as usize] == *key {
                return Some((i, e));
            }
            i = (i + 1) & self.index_mask;
        }
    }

    /// Parks `pkt` under `key` at time `now_ms`. See [`Parked`].
    pub fn park(&mut self, key: &FlowKey, now_ms: u64, pkt: P) -> Parked<P> {
        let hash = key.hash();
        if self.free_slot == NIL {
            return Parked::Full(pkt);
        }
        if let Some((_, e)) = self.find(key, hash) {
            self.append(e, pkt);
            return Parked::Joined;
        }
        let Some(e) = self.free_entries.pop() else { return Parked::Full(pkt) };
        // Park times never decrease along the age list (see the module doc).
        let since_ms = match self.newest {
            NIL => now_ms,
            n => now_ms.max(self.entries[n as usize].since_ms),
        };
        self.entries[e as usize] =
            Entry { hash, count: 0, since_ms, shadowed: false, head: NIL, tail: NIL, older: self.newest, newer: NIL };
        self.entry_keys[e as usize] = *key;
        match self.newest {
            NIL => self.oldest = e,
            n => self.entries[n as usize].newer = e,
        }
        self.newest = e;
        let mut i = hash as usize & self.index_mask;
        while self.index[i] != NIL {
            i = (i + 1) & self.index_mask;
        }
        self.index[i] = e;
        self.n_keys += 1;
        self.port_keys[port_bucket(key.in_port())] += 1;
        self.append(e, pkt);
        Parked::NewKey
    }

    /// Appends to entry `e`'s list; a free slot must exist.
    fn append(&mut self, e: u32, pkt: P) {
        let s = self.free_slot;
        let slot = &mut self.slots[s as usize];
        self.free_slot = slot.next;
        *slot = Slot { pkt: Some(pkt), next: NIL };
        self.n_packets += 1;
        let entry = &mut self.entries[e as usize];
        entry.count += 1;
        match entry.tail {
            NIL => entry.head = s,
            t => self.slots[t as usize].next = s,
        }
        entry.tail = s;
    }

    /// Takes the oldest packet of entry `e` (which has one); frees the entry after its
    /// last packet.
    fn pop(&mut self, e: u32) -> P {
        let s = self.entries[e as usize].head;
        let slot = &mut self.slots[s as usize];
        let pkt = slot.pkt.take().expect("a listed slot holds a packet");
        let next = slot.next;
        slot.next = self.free_slot;
        self.free_slot = s;
        self.n_packets -= 1;
        let entry = &mut self.entries[e as usize];
        entry.head = next;
        entry.count -= 1;
        if next == NIL {
            entry.tail = NIL;
            self.free_entry(e);
        }
        pkt
    }

    /// Unlinks entry `e` (now without packets) from the index and the age list.
    fn free_entry(&mut self, e: u32) {
        let Entry { hash, older, newer, shadowed, .. } = self.entries[e as usize];
        self.n_shadowed -= shadowed as usize;
        if self.n_keys == 1 {
            // The last key leaves (n_keys is decremented below).
            self.all_shadowed = false;
        }
        match older {
            NIL => self.oldest = newer,
            o => self.entries[o as usize].newer = newer,
        }
        match newer {
            NIL => self.newest = older,
            n => self.entries[n as usize].older = older,
        }
        // Backward-shift deletion: move later members of the probe run into the hole
        // unless that would put them before their home position.
        let mut hole = hash as usize & self.index_mask;
        while self.index[hole] != e {
            hole = (hole + 1) & self.index_mask;
        }
        let mut j = hole;
        loop {
            j = (j + 1) & self.index_mask;
            let f = self.index[j];
            if f == NIL {
                break;
            }
            let home = self.entries[f as usize].hash as usize & self.index_mask;
            // Movable iff home is not cyclically in (hole, j].
            let dist_home = j.wrapping_sub(home) & self.index_mask;
            let dist_hole = j.wrapping_sub(hole) & self.index_mask;
            if dist_home >= dist_hole {
                self.index[hole] = f;
                hole = j;
            }
        }
        self.index[hole] = NIL;
        self.free_entries.push(e);
        self.n_keys -= 1;
        self.port_keys[port_bucket(self.entry_keys[e as usize].in_port())] -= 1;
    }

    /// Releases every packet of entry `e`, oldest first.
    fn release_entry(&mut self, e: u32, f: &mut impl FnMut(&FlowKey, P)) -> usize {
        let key = self.entry_keys[e as usize];
        let n = self.entries[e as usize].count as usize;
        for _ in 0..n {
            let p = self.pop(e);
            f(&key, p);
        }
        n
    }

    /// Releases the packets parked under exactly `key`, in arrival order, to `f` (with
    /// their key). Returns how many.
    pub fn release_key(&mut self, key: &FlowKey, mut f: impl FnMut(&FlowKey, P)) -> usize {
        match self.find(key, key.hash()) {
            Some((_, e)) => self.release_entry(e, &mut f),
            None => 0,
        }
    }

    /// Marks every parked key for which `pred` holds as shadowed: a megaflow installed
    /// now covers it, while its packets wait for the answer to its own upcall (see the
    /// module doc). Returns how many keys were newly marked.
    pub fn shadow_where(&mut self, mut pred: impl FnMut(&FlowKey) -> bool) -> usize {
        let mut n = 0;
        let mut e = self.oldest;
        while e != NIL {
            let entry = &mut self.entries[e as usize];
            if !entry.shadowed && pred(&self.entry_keys[e as usize]) {
                entry.shadowed = true;
                n += 1;
            }
            e = entry.newer;
        }
        self.n_shadowed += n;
        n
    }

    /// Shadows the parked keys that a newly installed megaflow covers (`covers`): tests
    /// each key when at most [`SHADOW_SCAN_MAX_KEYS`] are parked, else shadows every key
    /// parked now or later until the table is empty (O(1); see the module doc).
    pub fn shadow_covered(&mut self, covers: impl FnMut(&FlowKey) -> bool) {
        if self.n_keys > SHADOW_SCAN_MAX_KEYS {
            self.all_shadowed = true;
        } else {
            self.shadow_where(covers);
        }
    }

    /// Parked keys that are shadowed. While it is 0, no packet needs
    /// [`PendingMisses::must_join`].
    pub fn shadowed(&self) -> usize {
        if self.all_shadowed { self.n_keys } else { self.n_shadowed }
    }

    /// Whether a packet of `key` must be parked behind its key although a megaflow
    /// matches it: the key is shadowed (parked, with a covering megaflow installed since).
    pub fn must_join(&self, key: &FlowKey) -> bool {
        if self.all_shadowed {
            return self.find(key, key.hash()).is_some();
        }
        self.n_shadowed > 0 && self.find(key, key.hash()).is_some_and(|(_, e)| self.entries[e as usize].shadowed)
    }

    /// Releases (to `f`, to be dropped) the keys parked at or before `now_ms -
    /// timeout_ms`, oldest key first, at most `max_keys` keys. Returns the packets
    /// released.
    pub fn expire(&mut self, now_ms: u64, max_keys: usize, mut f: impl FnMut(&FlowKey, P)) -> usize {
        let mut n = 0;
        for _ in 0..max_keys {
            match self.next_deadline() {
                Some(d) if d <= now_ms => n += self.release_entry(self.oldest, &mut f),
                _ => break,
            }
        }
        n
    }
}

impl<P> std::fmt::Debug for PendingMisses<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingMisses")
            .field("config", &self.config)
            .field("keys", &self.n_keys)
            .field("packets", &self.n_packets)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::extract;
    use crate::testpkt::{TCP4, Tcp4, arp_frame, tcp4_frame, udp4_frame};
    use proptest::prelude::*;

    /// Real keys: TCP, UDP and ARP frames extracted on some port.
    fn real_keys() -> Vec<FlowKey> {
        let mut v = Vec::new();
        for i in 0..6u8 {
            v.push(extract(&tcp4_frame(&Tcp4 { dst: [10, 0, 0, i], ..TCP4 }), 1));
            v.push(extract(&tcp4_frame(&Tcp4 { sport: 1000 + i as u16, ..TCP4 }), 2));
            v.push(extract(&udp4_frame(53, 1000 + i as u16, b"q"), 1));
        }
        v.push(extract(&arp_frame(1), 3));
        v
    }

    fn collect<P: Copy>(v: &mut Vec<(FlowKey, P)>) -> impl FnMut(&FlowKey, P) + '_ {
        move |k, p| v.push((*k, p))
    }

    /// What a flood of new keys costs the table (release build: `cargo test --release -p
    /// ferrovs-flowcache --lib park_cost -- --ignored --nocapture`): parks refused by a full
    /// table (every key new), and keys parked and released one after another at 4,095
    /// keys parked.
    #[test]
    #[ignore]
    fn park_cost() {
        let key = |i: u32| {
            let mut k = FlowKey::ZERO;
            k.set_in_port(1);
            k.set_dl_type(0x0800);
            k.set_nw_dst_u32(i);
            k
        };
        let n = PendingConfig::default().max_keys as u32;
        let mut t: PendingMisses<u32> = PendingMisses::new(PendingConfig::default());
        for i in 0..n {
            assert!(matches!(t.park(&key(i), 0, i), Parked::NewKey));
        }
        let rounds = 2_000_000u32;
        let start = std::time::Instant::now();
        let mut refused = 0u32;
        for i in 0..rounds {
            refused += matches!(t.park(&key(n + i), 0, i), Parked::Full(_)) as u32;
        }
        let full = start.elapsed().as_nanos() as f64 / rounds as f64;
        assert_eq!(refused, rounds);
        t.release_key(&key(0), |_, _| ());
        let start = std::time::Instant::now();
        for i in 0..rounds {
            let k = key(n + i);
            assert!(matches!(t.park(&k, 0, i), Parked::NewKey));
            assert_eq!(t.release_key(&k, |_, _| ()), 1);
        }
        let cycle = start.elapsed().as_nanos() as f64 / rounds as f64;
        println!("ns per park refused by a full table: {full:.1}; per park and release at {} keys: {cycle:.1}", n - 1);
    }

    #[test]
    fn sizes_are_what_the_doc_says() {
        assert_eq!(std::mem::size_of::<Entry>() + std::mem::size_of::<FlowKey>(), 104);
        assert_eq!(std::mem::size_of::<Slot<std::ptr::NonNull<u8>>>(), 16);
        let t: PendingMisses<u8> = PendingMisses::new(PendingConfig::default());
        assert_eq!((t.index.len(), t.entries.len(), t.slots.len()), (8192, 4096, 16384));
    }

    #[test]
    fn joins_and_releases_each_key_in_arrival_order() {
        let k = real_keys();
        let (a, b, c) = (k[0], k[1], k[3]);
        let mut t = PendingMisses::new(PendingConfig::new(8, 16));
        assert_eq!(t.park(&a, 0, 100), Parked::NewKey);
        assert_eq!(t.park(&b, 0, 200), Parked::NewKey);
        assert_eq!(t.park(&a, 0, 101), Parked::Joined);
        assert_eq!(t.park(&c, 0, 300), Parked::NewKey);
        assert_eq!(t.park(&b, 0, 201), Parked::Joined);
        assert_eq!(t.park(&a, 0, 102), Parked::Joined);
        assert_eq!((t.packets(), t.keys(), t.packets_of(&a)), (6, 3, 3));
        let mut got = Vec::new();
        assert_eq!(t.release_key(&a, collect(&mut got)), 3);
        assert_eq!(got, vec![(a, 100), (a, 101), (a, 102)]);
        assert_eq!((t.packets(), t.keys(), t.contains(&a), t.contains(&c)), (3, 2, false, true));
        assert_eq!(t.release_key(&a, collect(&mut got)), 0);
        // The freed entry and slots are reused; the age list keeps first-park order.
        assert_eq!(t.park(&a, 0, 103), Parked::NewKey);
        assert_eq!(t.iter_keys().copied().collect::<Vec<_>>(), vec![b, c, a]);
        got.clear();
        t.release_key(&b, collect(&mut got));
        t.release_key(&c, collect(&mut got));
        t.release_key(&a, collect(&mut got));
        assert_eq!(got, vec![(b, 200), (b, 201), (c, 300), (a, 103)]);
        assert_eq!((t.packets(), t.keys(), t.next_deadline()), (0, 0, None));
    }

    #[test]
    fn shadowed_keys_are_joined_until_their_own_release() {
        let k = real_keys();
        let (a, b, c) = (k[0], k[1], k[3]);
        let mut t = PendingMisses::new(PendingConfig::new(8, 16));
        t.park(&a, 0, 1);
        t.park(&b, 0, 2);
        t.park(&c, 0, 3);
        assert!(!t.must_join(&a) && !t.must_join(&b) && t.shadowed() == 0, "nothing shadowed yet");
        // An install answering a's upcall covers a and b: a goes, b is shadowed.
        let mut got = Vec::new();
        t.release_key(&a, collect(&mut got));
        assert_eq!(t.shadow_where(|x| *x == a || *x == b), 1);
        assert_eq!(t.shadow_where(|x| *x == b), 0, "already shadowed");
        assert_eq!(got, vec![(a, 1)]);
        assert_eq!(t.shadowed(), 1);
        assert!(t.must_join(&b) && !t.must_join(&c) && !t.must_join(&a));
        assert_eq!(t.park(&b, 0, 4), Parked::Joined);
        // b's own answer releases both of its packets, in order, and ends the shadow.
        got.clear();
        t.release_key(&b, collect(&mut got));
        assert_eq!(got, vec![(b, 2), (b, 4)]);
        assert_eq!(t.shadowed(), 0);
        assert!(!t.must_join(&b));
        // A shadowed key that times out is no longer shadowed either.
        t.shadow_where(|x| *x == c);
        assert_eq!(t.shadowed(), 1);
        t.expire(u64::MAX, 8, |_, _| {});
        assert_eq!((t.shadowed(), t.keys()), (0, 0));
    }

    #[test]
    fn capacity_limits_keys_and_packets() {
        let k = real_keys();
        let mut t = PendingMisses::new(PendingConfig::new(4, 6));
        for (i, key) in k[..4].iter().enumerate() {
            assert_eq!(t.park(key, 0, i), Parked::NewKey);
        }
        assert_eq!(t.park(&k[4], 0, 9), Parked::Full(9), "no entry left");
        assert_eq!(t.park(&k[0], 0, 10), Parked::Joined);
        assert_eq!(t.park(&k[1], 0, 11), Parked::Joined);
        assert_eq!(t.park(&k[1], 0, 12), Parked::Full(12), "no slot left");
        assert_eq!(t.packets(), 6);
        let mut got = Vec::new();
        t.release_key(&k[1], collect(&mut got));
        assert_eq!(got, vec![(k[1], 1), (k[1], 11)]);
        assert_eq!(t.park(&k[4], 0, 13), Parked::NewKey);
        assert_eq!(t.park(&k[4], 0, 14), Parked::Joined);
        assert_eq!(t.park(&k[5], 0, 15), Parked::Full(15));
    }

    #[test]
    fn many_parked_keys_are_shadowed_all_at_once_until_the_table_empties() {
        let keys: Vec<FlowKey> =
            (0..=SHADOW_SCAN_MAX_KEYS as u16).map(|i| extract(&udp4_frame(53, 2000 + i, b"q"), 1)).collect();
        let mut t = PendingMisses::new(PendingConfig::new(1024, 4096));
        for (i, k) in keys.iter().enumerate() {
            t.park(k, 0, i);
        }
        // An install covering nothing: with this many keys it shadows them all unseen.
        t.shadow_covered(|_| panic!("no key is tested"));
        assert_eq!(t.shadowed(), keys.len());
        assert!(keys.iter().all(|k| t.must_join(k)));
        let newcomer = extract(&udp4_frame(53, 9, b"q"), 1);
        assert!(!t.must_join(&newcomer), "not parked");
        t.park(&newcomer, 0, 99);
        assert!(t.must_join(&newcomer), "parked later: shadowed too");
        let mut got = Vec::new();
        for k in keys.iter().chain([&newcomer]) {
            t.release_key(k, collect(&mut got));
        }
        assert_eq!((t.keys(), t.shadowed()), (0, 0));
        // Empty again: a few keys are tested one by one.
        t.park(&keys[0], 0, 1);
        t.park(&keys[1], 0, 2);
        t.shadow_covered(|k| *k == keys[1]);
        assert!(!t.must_join(&keys[0]) && t.must_join(&keys[1]) && t.shadowed() == 1);
    }

    #[test]
    fn missing_queues_are_held_while_slots_or_keys_run_short_for_a_bounded_time() {
        use RxHold::*;
        let k = real_keys();
        // 4 keys, 8 packets, bursts of 3, holds while the oldest key waited < 100 ms.
        let config = PendingConfig { max_rx_pause_ms: 100, ..PendingConfig::new(4, 8) };
        let mut t = PendingMisses::new(config);
        assert_eq!(t.rx_hold(3, || 0), None, "empty");
        t.park(&k[0], 10, 0);
        for i in 1..5 {
            assert_eq!(t.park(&k[0], 10, i), Parked::Joined);
        }
        assert_eq!(t.rx_hold(3, || 10), None, "3 slots and 3 keys free: a burst fits");
        t.park(&k[1], 20, 6);
        assert_eq!(t.rx_hold(3, || 20), AnyMissing, "2 slots free: wait for the slow path");
        assert_eq!(t.rx_hold(3, || 109), AnyMissing, "oldest key waited 99 ms");
        assert_eq!(t.rx_hold(3, || 110), None, "oldest key waited 100 ms: receive (and drop) again");
        let mut got = Vec::new();
        t.release_key(&k[0], collect(&mut got));
        assert_eq!(t.rx_hold(3, || 20), None, "answered: room again");
        // A flood of new keys fills the keys first: the queues of mostly misses wait until
        // answers free a burst's worth of keys.
        let mut t = PendingMisses::new(config);
        t.park(&k[0], 0, 0);
        t.park(&k[1], 0, 1);
        assert_eq!(t.rx_hold(3, || 0), MostlyMissing, "2 of 4 keys free, 6 packet slots");
        t.park(&k[2], 0, 2);
        t.park(&k[3], 0, 3);
        assert_eq!(t.rx_hold(3, || 99), MostlyMissing, "every key taken");
        assert_eq!(t.rx_hold(3, || 100), None, "bounded by the oldest key's wait");
        t.park(&k[3], 0, 4);
        t.park(&k[3], 0, 5);
        assert_eq!(t.rx_hold(3, || 0), AnyMissing, "packet slots short too: the stronger hold");
        for key in &k[..3] {
            t.release_key(key, collect(&mut got));
        }
        assert_eq!(t.rx_hold(3, || 0), None, "3 keys and 5 slots free");
        // A table smaller than a burst never takes a whole one: it holds while anything
        // is parked, until it is empty.
        let mut t = PendingMisses::new(PendingConfig::new(2, 2));
        assert_eq!(t.rx_hold(32, || 0), None, "empty");
        t.park(&k[0], 0, 0);
        assert_eq!(t.rx_hold(32, || 0), AnyMissing, "one key parked");
    }

    #[test]
    fn a_queue_is_mostly_misses_after_a_few_bursts_of_them_and_back() {
        use RxHold::*;
        let mut q = MissShare::default();
        assert!(!q.held_by(None) && !q.held_by(MostlyMissing) && !q.held_by(AnyMissing), "hits alone");
        q.record(0, 0);
        assert_eq!(q.share(), 0, "an empty burst is no evidence");
        let mut bursts = 0;
        while !q.mostly_misses() {
            q.record(32, 32);
            bursts += 1;
        }
        assert_eq!(bursts, 6);
        assert!(q.held_by(MostlyMissing) && q.held_by(AnyMissing) && !q.held_by(None));
        // Half-and-half bursts stay at about half; hits take it back down.
        for _ in 0..64 {
            q.record(32, 16);
        }
        let half = MissShare::ALL / 2;
        assert!((half - half / 16..=half + half / 16).contains(&q.share()), "{}", q.share());
        let mut bursts = 0;
        while q.mostly_misses() {
            q.record(32, 0);
            bursts += 1;
        }
        assert!(bursts <= 1, "{bursts}");
        // Hits alone bring it back to exactly 0: then no hold applies.
        let mut bursts = 0;
        while q.held_by(AnyMissing) {
            q.record(32, 0);
            bursts += 1;
        }
        assert!((40..=120).contains(&bursts), "{bursts}");
        assert_eq!(q.share(), 0);
        // One missed packet among hits: "missing" for the next 30-odd bursts, never
        // "mostly".
        q.record(32, 1);
        let mut bursts = 0;
        while q.held_by(AnyMissing) {
            assert!(!q.mostly_misses());
            q.record(32, 0);
            bursts += 1;
        }
        assert!((20..=60).contains(&bursts), "{bursts}");
        // A queue with a miss now and then (a new flow among cached ones) is not mostly
        // misses.
        for i in 0..1000 {
            q.record(32, (i % 4 == 0) as usize);
        }
        assert!(!q.mostly_misses() && q.share() < MissShare::ALL / 16, "{}", q.share());
    }

    #[test]
    fn only_ports_with_parked_keys_need_the_shadow_probe() {
        let on = |port: u32, i: u16| extract(&udp4_frame(53, 3000 + i, b"q"), port);
        let mut t = PendingMisses::new(PendingConfig::new(1024, 4096));
        for i in 0..=SHADOW_SCAN_MAX_KEYS as u16 {
            t.park(&on(2, i), 0, i);
        }
        assert!(!t.shadowed_on(2), "nothing shadowed yet");
        t.shadow_covered(|_| false);
        assert!(t.shadowed_on(2) && !t.shadowed_on(1) && !t.shadowed_on(3));
        assert!(t.shadowed_on(2 + PORT_BUCKETS as u32), "same bucket: conservative");
        t.park(&on(1, 0), 0, 100);
        assert!(t.shadowed_on(1), "a port's first parked key");
        let mut got = Vec::new();
        t.release_key(&on(1, 0), collect(&mut got));
        assert!(!t.shadowed_on(1) && t.shadowed_on(2));
        t.expire(u64::MAX, usize::MAX, collect(&mut got));
        assert!(!t.shadowed_on(2) && t.keys() == 0);
        // Few keys: only the shadowed ones count, on their ports.
        t.park(&on(5, 0), 0, 0);
        t.park(&on(6, 0), 0, 1);
        assert!(!t.shadowed_on(5));
        t.shadow_covered(|k| k.in_port() == 5);
        assert!(t.shadowed_on(5) && t.must_join(&on(5, 0)) && !t.must_join(&on(6, 0)));
    }

    #[test]
    fn expiry_takes_oldest_keys_first_within_the_budget() {
        let k = real_keys();
        let mut t = PendingMisses::new(PendingConfig { timeout_ms: 1000, ..PendingConfig::new(8, 16) });
        t.park(&k[0], 100, 1);
        t.park(&k[1], 600, 2);
        t.park(&k[0], 700, 3);
        t.park(&k[2], 650, 4); // clock stepped back: clamped to 700
        assert_eq!(t.next_deadline(), Some(1100));
        let mut got = Vec::new();
        assert_eq!(t.expire(1099, 8, collect(&mut got)), 0);
        assert_eq!(t.expire(1100, 8, collect(&mut got)), 2);
        assert_eq!(got, vec![(k[0], 1), (k[0], 3)]);
        assert_eq!(t.next_deadline(), Some(1600));
        // Budget of one key per call.
        got.clear();
        assert_eq!(t.expire(5000, 1, collect(&mut got)), 1);
        assert_eq!(t.expire(5000, 1, collect(&mut got)), 1);
        assert_eq!(got, vec![(k[1], 2), (k[2], 4)]);
        assert_eq!((t.keys(), t.next_deadline()), (0, None));
    }

    #[test]
    fn index_survives_many_colliding_deletes() {
        // A tiny index (2 keys -> 4 positions) makes every probe run wrap and shift.
        let k = real_keys();
        let mut t = PendingMisses::new(PendingConfig::new(2, 4));
        for round in 0..200usize {
            let (x, y) = (k[round % k.len()], k[(round * 7 + 3) % k.len()]);
            t.park(&x, 0, round);
            t.park(&y, 0, round);
            assert!(t.contains(&x) && t.contains(&y));
            let mut got = Vec::new();
            t.release_key(&x, collect(&mut got));
            assert!(!t.contains(&x));
            assert_eq!(t.contains(&y), x != y);
            t.expire(u64::MAX, 4, collect(&mut got));
            assert_eq!(t.keys(), 0);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Park(usize, u64),
        ReleaseKey(usize),
        /// Shadows the parked keys whose index has this bit set.
        ShadowWhere(u32),
        Expire(u64, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..19usize, 0..50u64).prop_map(|(k, dt)| Op::Park(k, dt)),
            1 => (0..19usize).prop_map(Op::ReleaseKey),
            1 => (1..u32::MAX).prop_map(Op::ShadowWhere),
            1 => (0..400u64, 0..4usize).prop_map(|(dt, b)| Op::Expire(dt, b)),
        ]
    }

    /// The naive model: every parked packet as (key, number), in arrival order; the
    /// parked keys with their park time, in first-park order; the shadowed keys.
    struct Model {
        parked: Vec<(FlowKey, u64)>,
        since: Vec<(FlowKey, u64)>,
        shadowed: Vec<FlowKey>,
    }

    impl Model {
        fn take(&mut self, sel: impl Fn(&FlowKey) -> bool) -> Vec<(FlowKey, u64)> {
            let (out, keep) = self.parked.drain(..).partition(|(k, _)| sel(k));
            self.parked = keep;
            self.since.retain(|(k, _)| !sel(k));
            self.shadowed.retain(|k| !sel(k));
            out
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn behaves_like_a_vec_of_key_and_number(
            keys_cap in 1..6usize, pkts_cap in 1..12usize, ops in proptest::collection::vec(op(), 1..120)
        ) {
            let keys = real_keys();
            let timeout = 100;
            let mut t = PendingMisses::new(PendingConfig { timeout_ms: timeout, ..PendingConfig::new(keys_cap, pkts_cap) });
            let mut m = Model { parked: Vec::new(), since: Vec::new(), shadowed: Vec::new() };
            let (mut now, mut n) = (0u64, 0u64);
            for o in ops {
                match o {
                    Op::Park(k, dt) => {
                        now += dt;
                        let key = keys[k];
                        n += 1;
                        let known = m.since.iter().any(|(x, _)| *x == key);
                        let want = if m.parked.len() == pkts_cap || (!known && m.since.len() == keys_cap) {
                            Parked::Full(n)
                        } else if known {
                            Parked::Joined
                        } else {
                            Parked::NewKey
                        };
                        if want != Parked::Full(n) {
                            m.parked.push((key, n));
                            if !known {
                                m.since.push((key, now));
                            }
                        }
                        prop_assert_eq!(t.park(&key, now, n), want);
                    }
                    Op::ReleaseKey(k) => {
                        let key = keys[k];
                        let mut got = Vec::new();
                        t.release_key(&key, collect(&mut got));
                        prop_assert_eq!(got, m.take(|x| *x == key));
                    }
                    Op::ShadowWhere(bits) => {
                        let sel = |x: &FlowKey| {
                            let i = keys.iter().position(|k| k == x).unwrap();
                            bits & (1 << i) != 0
                        };
                        let new: Vec<FlowKey> = m.since.iter().map(|(k, _)| *k)
                            .filter(|k| sel(k) && !m.shadowed.contains(k)).collect();
                        prop_assert_eq!(t.shadow_where(sel), new.len());
                        m.shadowed.extend(new);
                    }
                    Op::Expire(dt, budget) => {
                        now += dt;
                        let due: Vec<FlowKey> = m.since.iter()
                            .filter(|(_, s)| s + timeout <= now).take(budget).map(|(k, _)| *k).collect();
                        let mut want = Vec::new();
                        for k in &due {
                            want.extend(m.take(|x| x == k));
                        }
                        let mut got = Vec::new();
                        t.expire(now, budget, collect(&mut got));
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!((t.packets(), t.keys()), (m.parked.len(), m.since.len()));
                prop_assert_eq!(t.next_deadline(), m.since.first().map(|(_, s)| s + timeout));
                let order: Vec<FlowKey> = t.iter_keys().copied().collect();
                prop_assert_eq!(order, m.since.iter().map(|(k, _)| *k).collect::<Vec<_>>());
                prop_assert_eq!(t.shadowed(), m.shadowed.len());
                for k in &keys {
                    prop_assert_eq!(t.packets_of(k), m.parked.iter().filter(|(x, _)| x == k).count());
                    prop_assert_eq!(t.must_join(k), m.shadowed.contains(k));
                    // Never false for a port with a shadowed key.
                    prop_assert!(!t.must_join(k) || t.shadowed_on(k.in_port()));
                }
            }
        }
    }
}
