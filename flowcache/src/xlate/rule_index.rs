//! [`TableIndex`]: the classifier over one OpenFlow table, which finds the winning rule
//! of a lookup and the key bits that prove every higher-priority rule fails, without
//! scanning the table.
//!
//! # Why not a linear scan
//!
//! The translator must report, besides the winner, a *witness* for every rule that
//! comes before it in priority order (see `translate`): key bits on which the packet
//! differs from that rule, so that the megaflow mask excludes it. A scan does this rule
//! by rule and costs O(rules) per upcall. This index does it group by group.
//!
//! # Structure
//!
//! Rules are partitioned into *groups* of equal compiled mask and equal priority (a
//! tuple space as in OVS's classifier, split by priority so that a group is either
//! wholly above the winner, wholly equal to it, or not looked at). Groups are visited in
//! priority order, and the visit stops at the first group whose priority is below the
//! best match found: lower rules can neither win nor need a witness.
//!
//! Inside a group every rule matches the same fields under the same masks, so the group
//! is a decision tree over its fields in a fixed *stage order*: categorical fields first
//! (in_port, dl_type, VLAN, fragment bits, nw_proto, ...), then MACs, then addresses,
//! then L4 ports. A tree node holds the sorted distinct values that the rules below it
//! have in the node's field; a node whose rules all share one rule collapses into a
//! leaf that names that rule (the remaining fields are compared with the rule itself).
//! Looking a key up walks one path: at a node, the key's value either is present (go on)
//! or not (no rule of the group matches; stop). Every rule the walk leaves behind at a
//! node differs from the key in that node's field, and that field is the rule's witness:
//! - a categorical field: the group's whole mask of that field (as the per-rule witness
//!   and as OVS's staged lookup, which un-wildcards a whole stage);
//! - an address or port field: the prefix down to the first bit where the key differs
//!   from the *closest* value left behind. In a sorted array the value sharing the
//!   longest prefix with the key is next to the key's insertion point, so one binary
//!   search gives what OVS's prefix tries and ports trie give, and it is never longer
//!   than the longest per-rule witness of that node.
//!
//! So each rule is disproved by its first differing field in tree order, the witness
//! the per-rule scan takes when that field is its only or its cheapest one; the scan's
//! greedy choice can differ when a rule differs in several fields. To narrow that gap:
//! a leaf that differs in several fields is handed back to the caller's greedy choice;
//! a group with two or more non-categorical fields has a second tree with those fields
//! in reverse order, and the caller keeps the proof that adds fewer bits; and a group
//! with two or more non-categorical fields and at most `PER_RULE_LIMIT` rules is not
//! walked at all but disproved rule by rule, as the scan does, while the table's
//! `PER_RULE_BUDGET` lasts (small groups in lookup order; XLATE.md has the figures). A
//! group with at most one non-categorical field gains little from that: its tree gives
//! a rule the scan's witness except in rare ties among categorical fields (the
//! reference rule sets' megaflow counts are the same either way).
//!
//! Groups at the winner's priority are resolved once the winner is known: only their
//! rules before it in input order need a witness (OVS leaves overlapping equal-priority
//! rules undefined; here the first given wins). A large such group that has rules on
//! both sides of the winner is disproved whole: correct, possibly a few bits wider, and
//! rare in real rule sets.
//!
//! Cost of a lookup: for each visited group, one root-to-leaf walk of at most one node
//! per matched field (two walks for groups with two trees), plus at most
//! `PER_RULE_BUDGET` rules compared one by one. A node of many values finds the key's
//! place through a bucket directory (see [`Node`]): about two cache lines instead of one
//! per level of a binary search. So a lookup reads O(groups visited x fields) cache
//! lines, whatever the number of rules; but at 100 rules they are all cached and at
//! 10^6 (hundreds of MB) most are misses, which is why a lookup there still costs
//! several times more (BENCHMARKS.md, "Slow path"). Built once per
//! [`RuleTables`](super::RuleTables) version.

use super::fields::Field;
use std::collections::HashMap;

use ferrovs_config::rules::Registers;

use super::tables::{CompiledRule, IdentityBuildHasher, masked_regs};
use crate::key::{FlowKey, Mask};

/// The order in which a group's fields are tested. Earlier fields are preferred as
/// witnesses: categorical fields split traffic into few megaflows, addresses come before
/// ports because routing tables put address prefixes into most masks anyway.
const STAGE_ORDER: [Field; 19] = [
    Field::InPort,
    Field::DlType,
    Field::VlanTci,
    Field::NwFrag,
    Field::NwProto,
    Field::NwTos,
    Field::NwTtl,
    Field::TcpFlags,
    Field::DlDst,
    Field::DlSrc,
    Field::ArpSha,
    Field::ArpTha,
    Field::NwDst,
    Field::NwSrc,
    Field::Ipv6Dst,
    Field::Ipv6Src,
    Field::Ipv6Label,
    Field::TpDst,
    Field::TpSrc,
];

/// Groups of at most this many rules with several address/port fields may be disproved
/// rule by rule (as the scan does; see `PER_RULE_BUDGET`), larger ones by their trees.
/// Chosen so that the reference rule sets' groups with several fields (at most 48 rules
/// each) keep the scan's megaflow counts.
const PER_RULE_LIMIT: usize = 64;

/// At most this many rules of a table are disproved rule by rule (the small groups of
/// `PER_RULE_LIMIT` in lookup order, until the budget is spent; the rest by their
/// trees), so that a lookup costs O(groups x fields) plus this constant, whatever the
/// sizes of the groups. Without it a table of many small groups was scanned almost
/// whole: 10,000 generator rules with four priorities per shape put the port ranges
/// into 44 groups of ~45 rules, and every lookup disproved those ~2,000 rules one by
/// one, 7x the cost of a lookup at 100,000 rules (BENCHMARKS.md, "Slow path"). 128
/// covers the reference rule sets' small groups with several address/port fields (96
/// rules).
const PER_RULE_BUDGET: usize = 128;

/// Marks a `next` entry that names a rule (its position in the table) instead of a node.
const LEAF: u32 = 1 << 31;

/// The classifier of one table. See the module documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableIndex {
    /// Highest priority first; equal priorities by first rule in table order.
    groups: Vec<Group>,
}

/// Rules of one compiled mask, one priority and one set of matched register and
/// metadata bits, split into [`Part`]s by the values of those bits.
#[derive(Debug, Clone)]
struct Group {
    priority: u16,
    /// Position (in the table's lookup order) of the group's first rule.
    first: u32,
    /// The register and metadata bits the group's rules match (all zero: none).
    pipeline_mask: Registers,
    parts: Vec<Part>,
    /// Register values under `pipeline_mask` -> part (empty when the mask is zero: the
    /// group is its one part).
    by_value: HashMap<Registers, u32, IdentityBuildHasher>,
}

/// The rules of a group with the same register and metadata values. Only the part
/// whose values the translation's registers have can match; the others need no
/// witness, because the registers follow from bits already in the mask.
#[derive(Debug, Clone)]
struct Part {
    /// Position (in the table's lookup order) of the part's first rule.
    first: u32,
    /// Positions of all rules, ascending (for the per-rule fallback).
    members: Vec<u32>,
    /// One decision tree, or two over different field orders when the part has two
    /// or more non-categorical fields (the caller then keeps the cheaper proof).
    trees: Vec<Tree>,
    /// Disproved rule by rule instead of by the trees (`PER_RULE_LIMIT`, `PER_RULE_BUDGET`).
    per_rule: bool,
}

/// A decision tree over a group's fields in one order.
#[derive(Debug, Clone)]
struct Tree {
    /// The matched fields in test order, each with the group's mask of it.
    stages: Vec<(Field, u128)>,
    nodes: Vec<Node>,
    values: Vec<u128>,
    /// The nodes' directories (see [`Node`]), one after another.
    dirs: Vec<u32>,
    /// Child node, or `LEAF | position` of the first rule with that value path.
    next: Vec<u32>,
    /// The entry of the root: a node, or a leaf for a group with a single rule or no
    /// matched field.
    root: u32,
}

/// A tree node: covers `values[start..start + len]` (sorted) and `next[start..start + len]`.
///
/// A node of at least `DIR_MIN` values also has a *directory*, so that finding the
/// key's place costs about two cache misses instead of one per level of a binary search
/// (a million-rule table has nodes of 10^5 values, 1.6 MB, far outside the cache, and a
/// lookup walks dozens of them): the values all share their bits above the highest bit
/// where the first and the last differ, and the next `dir_bits` bits below those cut
/// them into `2^dir_bits` buckets in value order: value `v` is in bucket
/// `(v >> shift) - base`. `dirs[dir + b]` is the index (relative to `start`) of the
/// first value of bucket `b` or a later one, `dirs[dir + 2^dir_bits]` is `len`; the key's
/// place is found by a binary search of its bucket alone (a key outside the values'
/// range searches the first or last bucket), without reading the values' ends. `dir_bits` is chosen for about `DIR_FILL` values a
/// bucket: the values of the scale rule sets (addresses, ports) spread evenly, and
/// skewed values only make some buckets longer (a bucket's search is still a binary search).
#[derive(Debug, Clone, Copy)]
struct Node {
    start: u32,
    len: u32,
    /// Start of the directory in `dirs` (meaningless when `dir_bits` is 0: none).
    dir: u32,
    shift: u8,
    dir_bits: u8,
    /// The first value's bits from `shift` up.
    base: u128,
}

/// Nodes with at least this many values get a directory.
const DIR_MIN: usize = 32;

/// Values per directory bucket, on average when values spread evenly: four `u128`s are
/// one cache line.
const DIR_FILL: usize = 4;

impl Node {
    /// Where `v` is among the node's sorted `vals` (`binary_search`'s answer).
    #[inline]
    fn search(&self, vals: &[u128], dirs: &[u32], v: u128) -> Result<usize, usize> {
        if self.dir_bits == 0 {
            return vals.binary_search(&v);
        }
        let b = (v >> self.shift).saturating_sub(self.base).min((1u128 << self.dir_bits) - 1) as usize;
        let d = &dirs[self.dir as usize + b..];
        let (lo, hi) = (d[0] as usize, d[1] as usize);
        match vals[lo..hi].binary_search(&v) {
            Ok(i) => Ok(lo + i),
            Err(i) => Err(lo + i),
        }
    }

    /// A node over `vals` (sorted, distinct), adding its directory to `dirs` if it gets one.
    fn new(start: usize, vals: &[u128], dirs: &mut Vec<u32>) -> Node {
        let mut n = Node { start: start as u32, len: vals.len() as u32, dir: 0, shift: 0, dir_bits: 0, base: 0 };
        if vals.len() < DIR_MIN {
            return n;
        }
        let varying = 128 - (vals[0] ^ vals[vals.len() - 1]).leading_zeros();
        let wanted = (vals.len() / DIR_FILL).ilog2().min(24);
        n.dir_bits = wanted.min(varying) as u8;
        if n.dir_bits == 0 {
            return n;
        }
        n.shift = (varying - u32::from(n.dir_bits)) as u8;
        n.base = vals[0] >> n.shift;
        n.dir = dirs.len() as u32;
        let buckets = 1usize << n.dir_bits;
        for (i, v) in vals.iter().enumerate() {
            let b = ((v >> n.shift) - n.base) as usize;
            while dirs.len() - n.dir as usize <= b {
                dirs.push(i as u32);
            }
        }
        while dirs.len() - n.dir as usize <= buckets {
            dirs.push(vals.len() as u32);
        }
        n
    }
}

/// What a lookup found to disprove the rules before the winner.
#[derive(Debug, Clone, Default)]
pub(crate) struct Proof {
    /// Witness bits that are needed whatever else is chosen.
    pub bits: Mask,
    /// Failed rules (positions) that differ in several fields: the caller picks a witness.
    pub optional: Vec<u32>,
    /// Groups with two alternative proofs (bits, and a rule left to the caller): the
    /// caller takes the one that adds fewer bits to its mask.
    pub choices: Vec<[(Mask, Option<u32>); 2]>,
    /// Scratch: proofs of the groups at the current priority level.
    pending: Vec<Pending>,
}

impl TableIndex {
    /// Indexes `rules`, a table's compiled rules in lookup order.
    pub fn new(rules: &[CompiledRule]) -> TableIndex {
        // The table's own fast hasher: SipHash over a 64-byte mask per rule was a tenth of
        // a million-rule build.
        let mut by_shape: HashMap<(u16, Mask, Registers), Vec<u32>, IdentityBuildHasher> = Default::default();
        for (pos, r) in rules.iter().enumerate() {
            by_shape.entry((r.priority, r.mask, r.pipeline_mask())).or_default().push(pos as u32);
        }
        let mut groups: Vec<Group> = by_shape.into_iter().map(|((p, _, pm), m)| Group::new(p, pm, m, rules)).collect();
        groups.sort_by_key(|g| (std::cmp::Reverse(g.priority), g.first));
        let mut budget = PER_RULE_BUDGET;
        for part in groups.iter_mut().flat_map(|g| g.parts.iter_mut()) {
            let n = part.members.len();
            part.per_rule = part.trees.len() > 1 && n <= PER_RULE_LIMIT && n <= budget;
            if part.per_rule {
                budget -= n;
            }
        }
        TableIndex { groups }
    }

    /// Number of groups (distinct mask and priority pairs).
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Approximate heap bytes of the index.
    pub fn heap_bytes(&self) -> usize {
        self.groups
            .iter()
            .map(|g| {
                std::mem::size_of::<Group>()
                    + g.by_value.capacity() * (std::mem::size_of::<Registers>() + 4)
                    + g.parts.iter().map(Part::heap_bytes).sum::<usize>()
            })
            .sum()
    }

    /// The position (in `rules`, the table this index was built from) of the rule that
    /// wins for `key` with the registers `regs`, if any. Fills `proof` (cleared first;
    /// bits of `key`) with what disproves every rule before the winner in lookup order.
    /// The winner's own mask is not included.
    pub fn lookup(&self, rules: &[CompiledRule], key: &FlowKey, regs: &Registers, proof: &mut Proof) -> Option<u32> {
        let mut best: Option<(u16, u32)> = None;
        proof.bits = Mask::ZERO;
        proof.optional.clear();
        proof.choices.clear();
        // Proofs of the groups at the current priority level: committed only once it is
        // known whether the winner is at this level, since some may be unnecessary.
        let mut pending = std::mem::take(&mut proof.pending);
        pending.clear();
        let mut level = None;
        for (gi, g) in self.groups.iter().enumerate() {
            if let Some((bp, bpos)) = best {
                if g.priority < bp {
                    break;
                }
                if g.first > bpos {
                    continue;
                }
            }
            let Some(pi) = g.part_for(regs) else { continue };
            let part = &g.parts[pi as usize];
            if level != Some(g.priority) {
                // A new, lower level and no winner yet: the previous level's rules all
                // come before any winner.
                for p in pending.drain(..) {
                    p.commit(&self.groups, rules, key, proof);
                }
                level = Some(g.priority);
            }
            let at = (gi as u32, pi);
            if part.per_rule {
                // Small group: rule by rule, as the scan does, so that every rule that
                // differs in several fields gets the cheapest witness.
                let hit = part.members.iter().copied().find(|&p| rules[p as usize].matches(key));
                if let Some(pos) = hit
                    && best.is_none_or(|(_, bpos)| pos < bpos)
                {
                    best = Some((g.priority, pos));
                }
                pending.push(Pending { at, bits: Mask::ZERO, leaf: None, alt: None, per_rule: true });
                continue;
            }
            let mut bits = Mask::ZERO;
            let mut leaf = None;
            let mut hit = false;
            match part.trees[0].probe(rules, key, &mut bits) {
                Probe::Hit(pos) => {
                    hit = true;
                    if best.is_none_or(|(_, bpos)| pos < bpos) {
                        best = Some((g.priority, pos));
                    }
                }
                Probe::Miss(l) => leaf = l,
            }
            let mut alt = None;
            // A hit in one tree is a hit in the other (the same rules): no second proof.
            if let Some(t) = part.trees.get(1).filter(|_| !hit) {
                let mut abits = Mask::ZERO;
                if let Probe::Miss(l) = t.probe(rules, key, &mut abits)
                    && (abits != bits || l.is_some() || leaf.is_some())
                {
                    alt = Some((abits, l));
                }
            }
            pending.push(Pending { at, bits, leaf, alt, per_rule: false });
        }
        let Some((_, wpos)) = best else {
            for p in pending.drain(..) {
                p.commit(&self.groups, rules, key, proof);
            }
            proof.pending = pending;
            return None;
        };
        for p in pending.iter() {
            let part = &self.groups[p.at.0 as usize].parts[p.at.1 as usize];
            if part.first > wpos || part.members.binary_search(&wpos).is_ok() {
                // Nothing in the group comes before the winner, or it is the winner's
                // group, whose proof lies inside the winner's mask.
                continue;
            }
            if part.per_rule {
                part.disprove_each(rules, key, wpos, proof);
            } else {
                p.commit(&self.groups, rules, key, proof);
            }
        }
        proof.pending = pending;
        Some(wpos)
    }
}

/// A visited group's proof, held until it is known whether it is needed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    /// The group and its part.
    at: (u32, u32),
    bits: Mask,
    /// A failed rule whose witness is left to the caller.
    leaf: Option<u32>,
    /// The proof by the group's second tree, if it has one and it differs.
    alt: Option<(Mask, Option<u32>)>,
    /// A small group, disproved rule by rule when committed.
    per_rule: bool,
}

impl Pending {
    fn commit(&self, groups: &[Group], rules: &[CompiledRule], key: &FlowKey, proof: &mut Proof) {
        if self.per_rule {
            groups[self.at.0 as usize].parts[self.at.1 as usize].disprove_each(rules, key, u32::MAX, proof);
            return;
        }
        match self.alt {
            None => {
                proof.bits = proof.bits.union(&self.bits);
                proof.optional.extend(self.leaf);
            }
            Some(alt) => proof.choices.push([(self.bits, self.leaf), alt]),
        }
    }
}

/// Outcome of walking one group.
enum Probe {
    /// The first rule (in lookup order) of the group that matches.
    Hit(u32),
    /// No rule matches; a rule left for the caller to disprove, if any.
    Miss(Option<u32>),
}

/// Outcome of comparing one rule with the key.
enum Leaf {
    Matches,
    /// Differs in exactly one field, whose witness was added.
    One,
    /// Differs in several fields; nothing was added.
    Several,
}

impl Group {
    fn new(priority: u16, pipeline_mask: Registers, members: Vec<u32>, rules: &[CompiledRule]) -> Group {
        let mut by_value: HashMap<Registers, u32, IdentityBuildHasher> = Default::default();
        let mut split: Vec<Vec<u32>> = Vec::new();
        if pipeline_mask == Registers::default() {
            split.push(members);
        } else {
            for p in members {
                let v = rules[p as usize].pipeline.as_ref().map_or(Registers::default(), |m| m.value);
                let i = *by_value.entry(v).or_insert_with(|| {
                    split.push(Vec::new());
                    split.len() as u32 - 1
                });
                split[i as usize].push(p);
            }
        }
        let parts: Vec<Part> = split.into_iter().map(|m| Part::new(m, rules)).collect();
        let first = parts.iter().map(|p| p.first).min().expect("a group has rules");
        Group { priority, first, pipeline_mask, parts, by_value }
    }

    /// The part whose rules' register values `regs` has, if any.
    #[inline]
    fn part_for(&self, regs: &Registers) -> Option<u32> {
        if self.by_value.is_empty() {
            return Some(0);
        }
        self.by_value.get(&masked_regs(regs, &self.pipeline_mask)).copied()
    }
}

impl Part {
    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Part>()
            + self.members.capacity() * 4
            + self
                .trees
                .iter()
                .map(|t| {
                    std::mem::size_of::<Tree>()
                        + t.stages.capacity() * std::mem::size_of::<(Field, u128)>()
                        + t.nodes.capacity() * std::mem::size_of::<Node>()
                        + t.dirs.capacity() * 4
                        + t.values.capacity() * 16
                        + t.next.capacity() * 4
                })
                .sum::<usize>()
    }

    /// Disproves the part's failing rules before position `until` one by one: a rule
    /// differing in one field adds that witness, one differing in several is left to
    /// the caller. Matching rules (after the winner) are skipped.
    fn disprove_each(&self, rules: &[CompiledRule], key: &FlowKey, until: u32, proof: &mut Proof) {
        for &pos in self.members.iter().take_while(|&&p| p < until) {
            if let Leaf::Several = self.trees[0].leaf_witness(&rules[pos as usize], key, 0, &mut proof.bits) {
                proof.optional.push(pos);
            }
        }
    }

    fn new(mut members: Vec<u32>, rules: &[CompiledRule]) -> Part {
        members.sort_unstable();
        let r0 = &rules[members[0] as usize];
        let mut stages: Vec<(Field, u128)> = STAGE_ORDER
            .iter()
            .filter_map(|&f| r0.fields.iter().find(|fm| fm.field == f).map(|fm| (f, fm.mask)))
            .collect();
        debug_assert_eq!(stages.len(), r0.fields.len(), "every field has a stage");
        // Categorical fields stay first; the others go by number of distinct values,
        // fewest first (stable, so ties keep STAGE_ORDER). The second tree, if any,
        // tests the non-categorical fields in the reverse order.
        let distinct = |&(f, m): &(Field, u128)| {
            let mut v: Vec<u128> = members.iter().map(|&p| f.get(&rules[p as usize].value) & m).collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        let n_cat = stages.iter().take_while(|(f, _)| f.is_categorical()).count();
        stages[n_cat..].sort_by_cached_key(distinct);
        let mut trees = vec![Tree::new(stages.clone(), &members, rules)];
        if stages.len() - n_cat >= 2 && members.len() > 1 {
            stages[n_cat..].reverse();
            trees.push(Tree::new(stages, &members, rules));
        }
        Part { first: members[0], members, trees, per_rule: false }
    }
}

impl Tree {
    fn new(stages: Vec<(Field, u128)>, members: &[u32], rules: &[CompiledRule]) -> Tree {
        let mut t = Tree { stages, nodes: Vec::new(), values: Vec::new(), dirs: Vec::new(), next: Vec::new(), root: 0 };
        let mut work = members.to_vec();
        t.root = t.build(&mut work, 0, rules);
        t
    }

    /// Builds the subtree of `set` (rules agreeing on stages before `stage`); returns
    /// its entry (node index or leaf).
    fn build(&mut self, set: &mut [u32], stage: usize, rules: &[CompiledRule]) -> u32 {
        if set.len() == 1 || stage == self.stages.len() {
            // One rule, or duplicates of one value path: the first in order wins.
            return LEAF | *set.iter().min().expect("non-empty");
        }
        let (field, fmask) = self.stages[stage];
        // Each rule's value read once, then sorted as pairs: a sort by a key read
        // through `rules` would miss the cache at every comparison.
        let mut keyed: Vec<(u128, u32)> =
            set.iter().map(|&p| (field.get(&rules[p as usize].value) & fmask, p)).collect();
        keyed.sort_unstable();
        let mut runs = Vec::new();
        let mut i = 0;
        while i < keyed.len() {
            let v = keyed[i].0;
            let mut j = i + 1;
            while j < keyed.len() && keyed[j].0 == v {
                j += 1;
            }
            runs.push((v, i, j));
            i = j;
        }
        for (s, k) in set.iter_mut().zip(&keyed) {
            *s = k.1;
        }
        drop(keyed);
        let start = self.values.len();
        self.values.extend(runs.iter().map(|r| r.0));
        self.next.resize(start + runs.len(), 0);
        let node = self.nodes.len() as u32;
        let n = Node::new(start, &self.values[start..], &mut self.dirs);
        self.nodes.push(n);
        for (k, &(_, i, j)) in runs.iter().enumerate() {
            let child = self.build(&mut set[i..j], stage + 1, rules);
            self.next[start + k] = child;
        }
        node
    }

    /// Walks the key's path. Returns the matching rule's position, and adds to `bits`
    /// the witnesses of every rule of the group left behind on the way.
    fn probe(&self, rules: &[CompiledRule], key: &FlowKey, bits: &mut Mask) -> Probe {
        let mut entry = self.root;
        let mut stage = 0;
        loop {
            if entry & LEAF != 0 {
                let pos = entry & !LEAF;
                return match self.leaf_witness(&rules[pos as usize], key, stage, bits) {
                    Leaf::Matches => Probe::Hit(pos),
                    Leaf::One => Probe::Miss(None),
                    Leaf::Several => Probe::Miss(Some(pos)),
                };
            }
            let (field, fmask) = self.stages[stage];
            let node = self.nodes[entry as usize];
            let (start, len) = (node.start, node.len);
            let vals = &self.values[start as usize..(start + len) as usize];
            let v = field.get(key) & fmask;
            let found = node.search(vals, &self.dirs, v);
            if vals.len() > 1 || found.is_err() {
                let w = if field.is_prefix() {
                    let at = match found {
                        Ok(i) => i,
                        Err(i) => i,
                    };
                    let skip = found.is_ok() as usize;
                    // Closest values below and above the key's, other than the key's.
                    let lo = at.checked_sub(1).map(|i| vals[i]);
                    let hi = vals.get(at + skip).copied();
                    let top = [lo, hi].into_iter().flatten().map(|x| 127 - (x ^ v).leading_zeros()).min();
                    top.map_or(0, |t| field.all_ones() & !((1u128 << t) - 1))
                } else {
                    fmask
                };
                *bits = bits.union(&field.mask_of(w));
            }
            match found {
                Ok(i) => {
                    entry = self.next[start as usize + i];
                    stage += 1;
                }
                Err(_) => return Probe::Miss(None),
            }
        }
    }

    /// Compares `rule` with `key` on the stages from `stage` on. If exactly one field
    /// differs, adds its witness to `bits`.
    fn leaf_witness(&self, rule: &CompiledRule, key: &FlowKey, stage: usize, bits: &mut Mask) -> Leaf {
        let mut differing = self.stages[stage..]
            .iter()
            .filter(|&&(field, fmask)| (field.get(key) ^ field.get(&rule.value)) & fmask != 0);
        let Some(&(field, fmask)) = differing.next() else { return Leaf::Matches };
        if differing.next().is_some() {
            return Leaf::Several;
        }
        let diff = (field.get(key) ^ field.get(&rule.value)) & fmask;
        let w = if field.is_prefix() {
            let top = 127 - diff.leading_zeros();
            field.all_ones() & !((1u128 << top) - 1)
        } else {
            fmask
        };
        *bits = bits.union(&field.mask_of(w));
        Leaf::One
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::SplitMix;

    /// A node's directory search gives exactly `binary_search`'s answer, for values
    /// spread evenly, clustered under a common prefix, and skewed into a few buckets, and
    /// keys below, inside, between and above them.
    #[test]
    fn directory_search_equals_binary_search() {
        let mut r = SplitMix(5);
        for case in 0..200 {
            let n = DIR_MIN + r.below(3000) as usize;
            let mut vals: Vec<u128> = (0..n)
                .map(|_| match case % 3 {
                    0 => u128::from(r.next_u64() as u32),
                    1 => 0x1000_0000 | u128::from(r.below(1 << 16)) << 8,
                    _ => u128::from(r.below(8)) << 100 | u128::from(r.below(1 << 20)),
                })
                .collect();
            vals.sort_unstable();
            vals.dedup();
            if vals.len() < DIR_MIN {
                continue;
            }
            let mut dirs = vec![7; 3]; // a directory need not start at 0
            let node = Node::new(0, &vals, &mut dirs);
            assert!(node.dir_bits > 0, "case {case}: {} values get a directory", vals.len());
            let mut keys: Vec<u128> = vals.iter().flat_map(|&v| [v, v.wrapping_sub(1), v + 1]).collect();
            keys.extend([0, u128::MAX, vals[0] >> 1, vals[vals.len() - 1] << 1]);
            keys.extend((0..200).map(|_| u128::from(r.next_u64()) << (r.below(64) as u32)));
            for k in keys {
                assert_eq!(node.search(&vals, &dirs, k), vals.binary_search(&k), "case {case} key {k:#x}");
            }
        }
    }
}
