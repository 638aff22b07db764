//! Stable rule names and the indexes that let a rule change find the megaflows it can
//! affect without walking the bridge's mirror.
//!
//! # Design
//!
//! A rule change must not cost O(megaflows) when it touches a handful of them
//! (`change_rules` in the parent module). Two things used to make it so:
//!
//! - *Positional rule references.* [`RuleRef`] is a rule's position in one
//!   [`RuleTables`](crate::xlate::RuleTables) version, so deleting a rule shifts every
//!   later one and every megaflow's references had to be rewritten. Megaflows (and the
//!   `Removing` table) now name their rules by [`RuleId`]: a slot that a rule keeps for
//!   as long as its identity (table, priority, match) lives, plus a generation. A slot
//!   freed by a deleted rule is reused with the next generation, so a stale id (held by a
//!   megaflow on its way out) resolves to nothing instead of to another rule. [`RuleIds`]
//!   maps both ways; a new version costs O(rules) vector writes (the version itself is
//!   built in O(rules) anyway), and no megaflow is touched.
//! - *A scan to find the affected megaflows.* [`FlowIndex`] (one per bridge) answers the
//!   two questions of `rule_deps` directly:
//!   - which megaflows matched a rule that is deleted or whose actions changed: `users`,
//!     rule id -> megaflows whose translation matched it (exact);
//!   - which megaflows may a new rule R take over: those whose masked key agrees with R
//!     on the bits they look up unchanged (`RuleDeps::fixed`). Megaflows are grouped by
//!     that fixed mask F (few distinct values: one per megaflow shape), and within a
//!     group by their key under F. If R constrains every bit of F (C = F & R.mask is F),
//!     one hash probe of R's value finds them. Otherwise (R is wider than the megaflows
//!     on some bit, e.g. a route prefix over exact destinations, or a rule on fewer
//!     fields) the group's keys are tested one by one, from a contiguous array (64 bytes
//!     a megaflow, no pointer chasing): this is the part that stays proportional to the
//!     megaflows of the groups R does not constrain fully, at a few nanoseconds each.
//!
//!   The candidates are then checked against the rest of `RuleDeps::may_be_changed_by`
//!   (table, winner priority, lookup in_port), so the set revalidated is exactly the one
//!   a walk over the whole mirror with the same test would give (property-tested in the
//!   parent module's tests).
//!
//! The index is kept in step with the mirror: a megaflow is added when installed,
//! re-indexed when a revalidation keeps it (its rules and dependencies change), and
//! dropped when removed or reported gone. A change that revalidates at least half of a
//! bridge's megaflows (a catch-all rule, a group change) drops the index first and
//! rebuilds it from what is left: unlinking each removed megaflow from every partition
//! costs more than indexing the survivors afresh.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use super::mirror::MirrorFlow;
use super::rule_deps::{AddedRule, TableLookup};
use crate::key::{FlowKey, KEY_WORDS, Mask};
use crate::upcall::FlowId;
use crate::xlate::{Field, IdentityBuildHasher, RuleRef, RuleTables, per_rule_capacity, per_rule_vec};

/// A megaflow of some PMD: (pmd, id).
pub type FlowRef = (usize, FlowId);

/// A rule's name that survives rule changes (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId {
    slot: u32,
    generation: u32,
}

/// Slot not holding a rule of the current version.
const FREE: u32 = u32::MAX;

/// Both ways between the current version's [`RuleRef`]s and [`RuleId`]s.
#[derive(Debug, Clone, Default)]
pub struct RuleIds {
    /// By `RuleRef` of the current version.
    id_of: Vec<RuleId>,
    /// By slot: (generation, RuleRef or `FREE`).
    slots: Vec<(u32, u32)>,
    free: Vec<u32>,
}

impl RuleIds {
    /// Fresh ids for a version of `n` rules.
    pub fn new(n: usize) -> RuleIds {
        let mut ids = RuleIds::default();
        ids.next_version(&[], n);
        ids
    }

    /// The id of rule `r` of the current version.
    pub fn id(&self, r: RuleRef) -> RuleId {
        self.id_of[r.0 as usize]
    }

    /// The ids of `refs`.
    pub fn ids(&self, refs: &[RuleRef]) -> Vec<RuleId> {
        refs.iter().map(|r| self.id(*r)).collect()
    }

    /// The current version's rule named `id`, if it still exists.
    pub fn resolve(&self, id: RuleId) -> Option<RuleRef> {
        match self.slots.get(id.slot as usize) {
            Some(&(generation, r)) if generation == id.generation && r != FREE => Some(RuleRef(r)),
            _ => None,
        }
    }

    /// The current rules of `ids` (those still existing).
    pub fn resolve_all(&self, ids: &[RuleId]) -> Vec<RuleRef> {
        ids.iter().filter_map(|id| self.resolve(*id)).collect()
    }

    /// Moves to a version changed in place (see `RuleTables::add_in_place`): the rules
    /// `renewed` get fresh ids (their old ids no longer resolve), rules from the current
    /// count up to `n_new` are new and get fresh ids, all others keep theirs.
    pub fn renew(&mut self, renewed: &[RuleRef], n_new: usize) {
        for r in renewed {
            let old = self.id_of[r.0 as usize];
            let s = &mut self.slots[old.slot as usize];
            *s = (s.0.wrapping_add(1), FREE);
            self.free.push(old.slot);
        }
        let n_old = self.id_of.len();
        let fresh = renewed.iter().map(|r| r.0).chain(n_old as u32..n_new as u32);
        for n in fresh.collect::<Vec<u32>>() {
            let slot = self.free.pop().unwrap_or_else(|| {
                self.slots.push((0, FREE));
                (self.slots.len() - 1) as u32
            });
            let id = RuleId { slot, generation: self.slots[slot as usize].0 };
            self.slots[slot as usize].1 = n;
            if n as usize == self.id_of.len() {
                self.id_of.push(id);
            } else {
                self.id_of[n as usize] = id;
            }
        }
    }

    /// Moves to a version changed in place by deleting rules (see
    /// `RuleTables::delete_in_place`): rule `r` is now `new_position[r]`, or gone
    /// (`u32::MAX`: its id no longer resolves).
    pub fn close_up(&mut self, new_position: &[u32]) {
        let mut id_of = Vec::with_capacity(per_rule_capacity(self.id_of.len()));
        for (r, id) in self.id_of.iter().enumerate() {
            let s = &mut self.slots[id.slot as usize];
            match new_position[r] {
                u32::MAX => {
                    *s = (s.0.wrapping_add(1), FREE);
                    self.free.push(id.slot);
                }
                n => {
                    s.1 = n;
                    id_of.push(*id);
                }
            }
        }
        self.id_of = id_of;
    }

    /// Moves to a version of `n_new` rules in which old rule `i` is new rule `remap[i]`
    /// (keeping its id) or gone (its id no longer resolves); the other new rules get
    /// fresh ids.
    pub fn next_version(&mut self, remap: &[Option<RuleRef>], n_new: usize) {
        const UNSET: RuleId = RuleId { slot: FREE, generation: 0 };
        let mut id_of = per_rule_vec(UNSET, n_new);
        for (i, m) in remap.iter().enumerate() {
            let id = self.id_of[i];
            match m {
                Some(n) => id_of[n.0 as usize] = id,
                None => {
                    let s = &mut self.slots[id.slot as usize];
                    *s = (s.0.wrapping_add(1), FREE);
                    self.free.push(id.slot);
                }
            }
        }
        for (n, id) in id_of.iter_mut().enumerate() {
            if id.slot == FREE {
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.slots.push((0, FREE));
                    (self.slots.len() - 1) as u32
                });
                *id = RuleId { slot, generation: self.slots[slot as usize].0 };
            }
            self.slots[id.slot as usize].1 = n as u32;
        }
        self.id_of = id_of;
        // Room for the slots of rules added in place (none are free after a build).
        let free = self.free.len();
        self.slots.reserve(RuleTables::in_place_limit(n_new).saturating_sub(free));
    }
}

/// Lookups kept inline per indexed megaflow; a megaflow with more is always a candidate
/// for the caller's exact test.
const INLINE_LOOKUPS: usize = 4;

/// One megaflow of a group: what the overlap test reads, inline (no pointer to follow).
#[derive(Debug, Clone)]
struct Entry {
    /// Masked key.
    key: FlowKey,
    lookups: [TableLookup; INLINE_LOOKUPS],
    /// Lookups used, or `None` if there are more than fit.
    n_lookups: Option<u8>,
    flow: FlowRef,
}

impl Entry {
    /// Whether some lookup of the megaflow may be won by `a` (conservative if they did
    /// not fit).
    fn lookup_may_change(&self, a: &AddedRule) -> bool {
        match self.n_lookups {
            Some(n) => self.lookups[..n as usize].iter().any(|l| l.may_be_won_by(a)),
            None => true,
        }
    }
}

/// Shrinks `map` once it is a quarter full. A hash table that loses most of its entries
/// keeps their tombstones, and every lookup of an absent key (each insert starts with
/// one) then probes through them: after a rule change removed most megaflows, inserting
/// the next ones cost tens of microseconds each. Rehashing at a quarter is amortised O(1).
pub(super) fn shrink_if_sparse<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

/// No entry (end of a bucket's chain).
const NIL: u32 = u32::MAX;

/// The key slices megaflow groups are partitioned by: every field of the key but in_port,
/// and the leading quarter, half and three quarters of the address fields (so that a
/// route prefix finds the exact destinations under it).
fn slices() -> &'static [Mask] {
    static SLICES: OnceLock<Vec<Mask>> = OnceLock::new();
    SLICES.get_or_init(|| {
        let mut v: Vec<Mask> = Vec::new();
        for f in Field::ALL.into_iter().filter(|f| f.in_flow_key() && *f != Field::InPort) {
            v.push(f.mask_of(f.all_ones()));
            let w = f.width();
            if f.is_prefix() && w >= 32 {
                for len in [w / 4, w / 2, 3 * w / 4] {
                    let ones = f.all_ones();
                    v.push(f.mask_of(ones ^ (ones >> len)));
                }
            }
        }
        v
    })
}

/// A cheap mix of a (masked) key, the bucket of a partition. Collisions only add
/// candidates, which the bit test then drops.
fn digest(k: &FlowKey) -> u64 {
    let mut h = 0u64;
    for w in k.w {
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    h
}

/// A group's megaflows bucketed by their key under `mask` (one slice of the group's
/// fixed mask), as chains through the group's entries (no allocation per megaflow).
#[derive(Debug, Clone)]
struct Partition {
    mask: Mask,
    /// Digest -> (first entry, number of entries).
    heads: HashMap<u64, (u32, u32), IdentityBuildHasher>,
    /// By entry: (previous, next) in its bucket.
    links: Vec<(u32, u32)>,
    /// By entry: its digest.
    digests: Vec<u64>,
}

impl Partition {
    fn push(&mut self, key: &FlowKey) {
        let i = self.links.len() as u32;
        let d = digest(&key.masked(&self.mask));
        let next = match self.heads.get_mut(&d) {
            Some((head, n)) => {
                let old = *head;
                *head = i;
                *n += 1;
                self.links[old as usize].0 = i;
                old
            }
            None => {
                self.heads.insert(d, (i, 1));
                NIL
            }
        };
        self.links.push((NIL, next));
        self.digests.push(d);
    }

    /// Takes entry `i` out of its chain, then moves the last entry to `i` (as the
    /// group's `swap_remove`).
    fn swap_remove(&mut self, i: usize) {
        let (prev, next) = self.links[i];
        let d = self.digests[i];
        if next != NIL {
            self.links[next as usize].0 = prev;
        }
        if prev != NIL {
            self.links[prev as usize].1 = next;
        }
        if let Some(h) = self.heads.get_mut(&d) {
            if prev == NIL {
                h.0 = next;
            }
            h.1 -= 1;
            if h.1 == 0 {
                self.heads.remove(&d);
                shrink_if_sparse(&mut self.heads);
            }
        }
        let last = self.links.len() - 1;
        if i != last {
            let (prev, next) = self.links[last];
            if next != NIL {
                self.links[next as usize].0 = i as u32;
            }
            if prev != NIL {
                self.links[prev as usize].1 = i as u32;
            } else if let Some(h) = self.heads.get_mut(&self.digests[last]) {
                h.0 = i as u32;
            }
        }
        self.links.swap_remove(i);
        self.digests.swap_remove(i);
    }
}

/// Megaflows sharing one fixed mask (see the module documentation).
#[derive(Debug, Clone)]
struct Group {
    /// Contiguous, for a scan.
    entries: Vec<Entry>,
    pos: HashMap<FlowRef, usize, IdentityBuildHasher>,
    /// One per distinct non-empty slice of the fixed mask (the whole mask first).
    parts: Vec<Partition>,
}

impl Group {
    fn new(fixed: &Mask) -> Group {
        let mut masks = vec![*fixed];
        for s in slices() {
            let m = fixed.masked(s);
            if m != Mask::ZERO && !masks.contains(&m) {
                masks.push(m);
            }
        }
        let parts = masks
            .into_iter()
            .map(|mask| Partition { mask, heads: HashMap::default(), links: Vec::new(), digests: Vec::new() })
            .collect();
        Group { entries: Vec::new(), pos: HashMap::default(), parts }
    }

    fn insert(&mut self, r: FlowRef, key: FlowKey, deps: &[TableLookup]) {
        const NONE: TableLookup = TableLookup { table: 0, in_port: 0, winner: None };
        let mut lookups = [NONE; INLINE_LOOKUPS];
        let n_lookups = (deps.len() <= INLINE_LOOKUPS).then(|| {
            lookups[..deps.len()].copy_from_slice(deps);
            deps.len() as u8
        });
        self.pos.insert(r, self.entries.len());
        self.entries.push(Entry { key, lookups, n_lookups, flow: r });
        for p in &mut self.parts {
            p.push(&key);
        }
    }

    fn remove(&mut self, r: FlowRef) {
        let Some(i) = self.pos.remove(&r) else { return };
        for p in &mut self.parts {
            p.swap_remove(i);
        }
        self.entries.swap_remove(i);
        if let Some(moved) = self.entries.get(i) {
            self.pos.insert(moved.flow, i);
        }
        shrink_if_sparse(&mut self.pos);
    }

    /// Adds to `out` the entries that agree with `a` under `common` (the group's fixed
    /// mask and `a`'s) and whose lookups `a` may win: through the smallest bucket of a
    /// partition that `a` constrains entirely, else by a scan.
    fn overlapping(&self, a: &AddedRule, common: &Mask, out: &mut Vec<FlowRef>) {
        // (partition, first entry, entries) of the smallest bucket found.
        let mut best: Option<(&Partition, u32, u32)> = None;
        for p in self.parts.iter().filter(|p| p.mask.masked(&a.mask) == p.mask) {
            let Some(&(head, n)) = p.heads.get(&digest(&a.value.masked(&p.mask))) else { return };
            if best.is_none_or(|(_, _, m)| n < m) {
                best = Some((p, head, n));
            }
        }
        let v = a.value.masked(common);
        let agrees = |e: &Entry| {
            let mut diff = 0;
            for w in 0..KEY_WORDS {
                diff |= (e.key.w[w] ^ v.w[w]) & common.w[w];
            }
            diff == 0 && e.lookup_may_change(a)
        };
        match best {
            // A chain is walked in random order: past a quarter of the group, a scan of
            // the contiguous entries is faster.
            Some((p, head, n)) if n as usize * 4 <= self.entries.len() => {
                let mut i = head;
                while i != NIL {
                    let e = &self.entries[i as usize];
                    if agrees(e) {
                        out.push(e.flow);
                    }
                    i = p.links[i as usize].1;
                }
            }
            _ => out.extend(self.entries.iter().filter(|e| agrees(e)).map(|e| e.flow)),
        }
    }
}

/// The per-bridge megaflow index. See the module documentation.
///
/// Its maps, keyed by rule ids, flow references, masks and digests, hash as the rule
/// index's do (`IdentityBuildHasher`): with SipHash they were a tenth of an upcall's
/// slow-path share (every install indexes its megaflow under each rule it depends on).
#[derive(Debug, Clone, Default)]
pub struct FlowIndex {
    users: HashMap<RuleId, BTreeSet<FlowRef>, IdentityBuildHasher>,
    groups: HashMap<Mask, Group, IdentityBuildHasher>,
}

impl FlowIndex {
    /// Records megaflow `r`.
    pub fn insert(&mut self, r: FlowRef, f: &MirrorFlow) {
        for id in f.rules.iter().chain(&f.watched) {
            self.users.entry(*id).or_default().insert(r);
        }
        let deps = &f.rule_deps;
        self.groups.entry(deps.fixed).or_insert_with(|| Group::new(&deps.fixed)).insert(r, f.key, &deps.lookups);
    }

    /// Forgets megaflow `r`, recorded as `f`.
    pub fn remove(&mut self, r: FlowRef, f: &MirrorFlow) {
        for id in f.rules.iter().chain(&f.watched) {
            if let Some(s) = self.users.get_mut(id) {
                s.remove(&r);
                if s.is_empty() {
                    self.users.remove(id);
                    shrink_if_sparse(&mut self.users);
                }
            }
        }
        if let Some(g) = self.groups.get_mut(&f.rule_deps.fixed) {
            g.remove(r);
            if g.entries.is_empty() {
                self.groups.remove(&f.rule_deps.fixed);
                shrink_if_sparse(&mut self.groups);
            }
        }
    }

    /// Adds the megaflows whose translation matched rule `id` to `out`.
    pub fn users_of(&self, id: RuleId, out: &mut Vec<FlowRef>) {
        if let Some(s) = self.users.get(&id) {
            out.extend(s.iter().copied());
        }
    }

    /// Adds to `out` every megaflow that `a` may take over: a superset of those for which
    /// `RuleDeps::may_be_changed_by` holds (exactly those, unless a megaflow has more
    /// lookups than are kept inline), so the caller applies that test to the result.
    pub fn overlapping(&self, a: &AddedRule, out: &mut Vec<FlowRef>) {
        for (fixed, g) in &self.groups {
            g.overlapping(a, &fixed.masked(&a.mask), out);
        }
    }

    /// Number of megaflows indexed (O(groups): one per megaflow shape).
    pub fn len(&self) -> usize {
        self.groups.values().map(|g| g.entries.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids have room for the rules a version may get in place (see
    /// `RuleTables::in_place_limit`): adding them, after a new version or a delete in
    /// place, moves neither vector.
    #[test]
    fn ids_have_room_for_the_rules_added_in_place() {
        let n = 5000;
        let limit = RuleTables::in_place_limit(n);
        let mut ids = RuleIds::new(n);
        let mut fresh = RuleIds::new(n);
        let gone: Vec<u32> = (0..n as u32).map(|r| if r % 50 == 0 { u32::MAX } else { r - r / 50 - 1 }).collect();
        fresh.close_up(&gone);
        for (ids, n) in [(&mut ids, n), (&mut fresh, n - n / 50)] {
            let before = (ids.id_of.as_ptr(), ids.slots.as_ptr());
            for k in 1..=limit {
                ids.renew(&[], n + k);
            }
            assert_eq!((ids.id_of.as_ptr(), ids.slots.as_ptr()), before, "{n} rules");
        }
    }

    #[test]
    fn ids_survive_shifts_and_stale_ids_resolve_to_nothing() {
        let mut ids = RuleIds::new(3);
        let (a, b, c) = (ids.id(RuleRef(0)), ids.id(RuleRef(1)), ids.id(RuleRef(2)));
        // Rule 0 deleted, 1 and 2 shift down, one rule appended.
        ids.next_version(&[None, Some(RuleRef(0)), Some(RuleRef(1))], 3);
        assert_eq!((ids.id(RuleRef(0)), ids.id(RuleRef(1))), (b, c));
        assert_eq!(ids.resolve(a), None, "deleted");
        assert_eq!(ids.resolve(c), Some(RuleRef(1)));
        let d = ids.id(RuleRef(2));
        assert_ne!(d, a, "a reused slot has a new generation");
        assert_eq!(ids.resolve(d), Some(RuleRef(2)));
    }
}
