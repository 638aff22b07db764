//! The MAC learning table of one bridge, used by the `normal` action.
//!
//! # Design
//!
//! A map from (VLAN, MAC) to the port the MAC was last seen on, with the time it was
//! last seen. Entries older than the aging time (default 300 s, as OVS) are ignored by
//! lookups and removed by [`MacTable::expire`]. The table holds at most `capacity`
//! entries; learning a new entry into a full table evicts the least recently seen one
//! (OVS does the same).
//!
//! Translation never writes the table: it only reads it and returns what it would
//! learn as a [`MacLearn`], which the slow path applies with [`MacTable::learn`]. That
//! keeps translation a pure function of its inputs. Every change that can alter a
//! forwarding decision (a new entry, a move to another port, an eviction, an expiry) is
//! reported back as the [`MacKey`]s it touched, so the slow path can re-translate the
//! megaflows whose `Translation::mac_deps` name them.
//!
//! Time is a `Duration` since an arbitrary epoch chosen by the caller (monotonic).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::key::mac_to_u64;

/// A VLAN (VID, 0 for untagged) and a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacKey {
    pub vlan: u16,
    pub mac: [u8; 6],
}

/// What translation learned: `mac` in `vlan` lives behind `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacLearn {
    pub vlan: u16,
    pub mac: [u8; 6],
    pub port: u32,
}

/// What applying a [`MacLearn`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOutcome {
    /// A new entry: megaflows that flooded towards this MAC are now stale.
    New,
    /// The MAC moved from port `from`: megaflows that output to `from` are stale.
    Moved { from: u32 },
    /// Same port; only the age was refreshed. Nothing is stale.
    Refreshed,
}

/// The result of [`MacTable::learn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnResult {
    pub outcome: LearnOutcome,
    /// The entry evicted to make room, if the table was full.
    pub evicted: Option<MacKey>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    port: u32,
    last_seen: Duration,
}

/// A bridge's MAC learning table.
#[derive(Debug, Clone)]
pub struct MacTable {
    entries: HashMap<MacKey, Entry>,
    /// (last_seen, key) of every entry: oldest first, for eviction and expiry.
    by_age: BTreeSet<(Duration, MacKey)>,
    aging: Duration,
    capacity: usize,
}

impl Default for MacTable {
    fn default() -> Self {
        MacTable::new(MacTable::DEFAULT_AGING, MacTable::DEFAULT_CAPACITY)
    }
}

impl MacTable {
    /// OVS's default `mac-aging-time`.
    pub const DEFAULT_AGING: Duration = Duration::from_secs(300);
    /// OVS's default `mac-table-size`.
    pub const DEFAULT_CAPACITY: usize = 8192;

    /// An empty table. A capacity of 0 is treated as 1.
    pub fn new(aging: Duration, capacity: usize) -> MacTable {
        MacTable { entries: HashMap::new(), by_age: BTreeSet::new(), aging, capacity: capacity.max(1) }
    }

    pub fn aging(&self) -> Duration {
        self.aging
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn alive(&self, e: &Entry, now: Duration) -> bool {
        now.saturating_sub(e.last_seen) < self.aging
    }

    /// The port `mac` was learned on in `vlan`, unless unknown or aged out at `now`.
    pub fn lookup(&self, vlan: u16, mac: [u8; 6], now: Duration) -> Option<u32> {
        let e = self.entries.get(&MacKey { vlan, mac })?;
        self.alive(e, now).then_some(e.port)
    }

    /// The port `mac` lives behind in `vlan` for a translation that has already learned
    /// `learned` (newest last): OVS's `normal` writes its table before it looks up the
    /// destination, so a later `normal` of the same translation (or this one, for a frame
    /// sent to its own source address) sees what an earlier one learned.
    pub fn lookup_after(&self, learned: &[MacLearn], vlan: u16, mac: [u8; 6], now: Duration) -> Option<u32> {
        match learned.iter().rev().find(|l| l.vlan == vlan && l.mac == mac) {
            Some(l) => Some(l.port),
            None => self.lookup(vlan, mac, now),
        }
    }

    /// Applies what translation learned. Multicast source addresses are never learned
    /// (translation does not return them); if given one anyway it is ignored as
    /// `Refreshed`.
    pub fn learn(&mut self, l: &MacLearn, now: Duration) -> LearnResult {
        if is_multicast(l.mac) {
            return LearnResult { outcome: LearnOutcome::Refreshed, evicted: None };
        }
        let key = MacKey { vlan: l.vlan, mac: l.mac };
        let mut evicted = None;
        let outcome = match self.entries.get(&key).copied() {
            Some(old) => {
                self.by_age.remove(&(old.last_seen, key));
                if !self.alive(&old, now) {
                    LearnOutcome::New
                } else if old.port != l.port {
                    LearnOutcome::Moved { from: old.port }
                } else {
                    LearnOutcome::Refreshed
                }
            }
            None => {
                let oldest = self.by_age.iter().next().copied();
                if let (true, Some((t, k))) = (self.entries.len() >= self.capacity, oldest) {
                    self.by_age.remove(&(t, k));
                    self.entries.remove(&k);
                    evicted = Some(k);
                }
                LearnOutcome::New
            }
        };
        // Time never goes backwards for an entry, so an out-of-order `now` cannot
        // make an entry look older than it is.
        let last_seen = match self.entries.get(&key) {
            Some(old) => old.last_seen.max(now),
            None => now,
        };
        self.entries.insert(key, Entry { port: l.port, last_seen });
        self.by_age.insert((last_seen, key));
        LearnResult { outcome, evicted }
    }

    /// Removes the entries that aged out at `now` and returns them.
    pub fn expire(&mut self, now: Duration) -> Vec<MacKey> {
        let mut gone = Vec::new();
        while let Some(&(t, k)) = self.by_age.iter().next() {
            if now.saturating_sub(t) < self.aging {
                break;
            }
            self.by_age.remove(&(t, k));
            self.entries.remove(&k);
            gone.push(k);
        }
        gone
    }

    /// Removes every entry on `port` (e.g. when the port is deleted) and returns them.
    pub fn flush_port(&mut self, port: u32) -> Vec<MacKey> {
        let gone: Vec<MacKey> = self.entries.iter().filter(|(_, e)| e.port == port).map(|(k, _)| *k).collect();
        for k in &gone {
            if let Some(e) = self.entries.remove(k) {
                self.by_age.remove(&(e.last_seen, *k));
            }
        }
        gone
    }
}

/// True for group (multicast and broadcast) addresses.
pub fn is_multicast(mac: [u8; 6]) -> bool {
    mac[0] & 1 != 0
}

/// True for the IEEE 802.1D reserved addresses 01:80:c2:00:00:00..0f (STP, LACP, ...),
/// which a bridge must not forward.
pub fn is_reserved(mac: [u8; 6]) -> bool {
    mac_to_u64(mac) & !0xf == 0x0180_c200_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
    const C: [u8; 6] = [0x02, 0, 0, 0, 0, 0xcc];
    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    #[test]
    fn learns_moves_and_ages() {
        let mut t = MacTable::default();
        assert_eq!(t.learn(&MacLearn { vlan: 0, mac: A, port: 1 }, s(0)).outcome, LearnOutcome::New);
        assert_eq!(t.lookup(0, A, s(10)), Some(1));
        assert_eq!(t.lookup(5, A, s(10)), None, "other VLAN");
        assert_eq!(t.learn(&MacLearn { vlan: 0, mac: A, port: 1 }, s(100)).outcome, LearnOutcome::Refreshed);
        assert_eq!(t.learn(&MacLearn { vlan: 0, mac: A, port: 2 }, s(200)).outcome, LearnOutcome::Moved { from: 1 });
        assert_eq!(t.lookup(0, A, s(499)), Some(2));
        assert_eq!(t.lookup(0, A, s(500)), None, "aged out after 300 s");
        assert_eq!(t.expire(s(500)), vec![MacKey { vlan: 0, mac: A }]);
        assert!(t.is_empty());
    }

    #[test]
    fn evicts_oldest_when_full() {
        let mut t = MacTable::new(s(300), 2);
        t.learn(&MacLearn { vlan: 0, mac: A, port: 1 }, s(1));
        t.learn(&MacLearn { vlan: 0, mac: B, port: 1 }, s(2));
        t.learn(&MacLearn { vlan: 0, mac: A, port: 1 }, s(3));
        let r = t.learn(&MacLearn { vlan: 0, mac: C, port: 1 }, s(4));
        assert_eq!(r.evicted, Some(MacKey { vlan: 0, mac: B }));
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(0, A, s(4)), Some(1));
    }

    #[test]
    fn never_learns_multicast_and_knows_reserved() {
        let mut t = MacTable::default();
        t.learn(&MacLearn { vlan: 0, mac: [0xff; 6], port: 1 }, s(0));
        assert!(t.is_empty());
        assert!(is_reserved([0x01, 0x80, 0xc2, 0, 0, 0x0e]));
        assert!(!is_reserved([0x01, 0x80, 0xc2, 0, 0, 0x10]));
    }
}
