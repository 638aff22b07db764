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
//! Rules are partitioned into *groups* of equal compiled mask (a tuple space as in OVS's
//! classifier: one group per mask, whatever the priorities of its rules). A rule's
//! *position* is its place in the table's lookup order (priority, then input order), so
//! "comes before" is one comparison of positions. Groups are visited in the order of
//! their first rule, and the visit stops at the first group whose first rule comes
//! after the best match found: the rest can neither win nor need a witness.
//!
//! Inside a group every rule matches the same fields under the same masks, so the group
//! is a decision tree over its fields in a fixed *stage order*: categorical fields first
//! (in_port, dl_type, VLAN, fragment bits, nw_proto, ...), then MACs, then addresses,
//! then L4 ports (a stage is at most 64 bits: an IPv6 address is two stages, upper half
//! first). A tree node holds the sorted distinct values that the rules below it have in
//! the node's stage, each beside its child and the *first rule* (lowest position) below
//! it; a node whose rules all share one value path collapses into a leaf that names the
//! first of them (the remaining fields are compared with the rule itself, or, when only
//! the last stage remains and its values fit in 31 bits, with the rule's value there,
//! which the leaf's entry holds: a port, an IPv4 prefix of at most 31 bits).
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
//! Priorities inside a group: a walk is made for the rules before a *threshold* (the
//! best match so far). A value whose first rule comes at or after it is skipped: the
//! walk does not go down it, and it is not a value "left behind" (the closest value is
//! looked for among the others, at most `SKIP_LIMIT` places away, past which the value
//! there stands in: correct, a few bits wider at worst). So a group holding rules above
//! and below the winner proves only those above, as the scan does. A group's proof is
//! made when it is visited, for the best match then; if a later group holds a better
//! match and an earlier visited group has rules on both sides of it (rare), all proofs
//! are made again for the final winner, so no proof covers a rule after the winner.
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
//! Equal priorities: the first rule in input order wins (OVS leaves overlapping
//! equal-priority rules undefined), which positions express without a special case.
//!
//! # Cost and layout
//!
//! A lookup makes, for each visited group, one root-to-leaf walk of at most one node
//! per stage (two walks for groups with two trees), plus at most `PER_RULE_BUDGET`
//! rules compared one by one. The number of groups is the number of distinct masks (a
//! rule set with several priorities per shape no longer multiplies it), and the walks
//! stop early at values whose rules all come after the best match. At 10^6 rules the
//! index is hundreds of MB and most node reads are cache misses, so the layout is made
//! for few cache lines per node: a value, its child and its first rule are one 16-byte
//! [`Entry`], four to a line; a node of many values finds the key's place through a
//! bucket directory (see [`Node`]), so the search reads the directory entry and one
//! bucket (which also holds the neighbours the witness needs) instead of one line per
//! level of a binary search; a node's description is a header entry just before its
//! values, so a small node costs one or two adjacent lines. BENCHMARKS.md ("Translation
//! alone") has the counts. Built once per [`RuleTables`](super::RuleTables) version; the
//! rules a version gets in place are indexed beside it (`tables::Delta`), and a rule it
//! loses in place stays, marked dead: a walk that ends at its leaf looks on to the next
//! live rule of the same values, a family's trie hit on it is answered by the tree. The
//! rules' `dead` flags are read only once some rule of the table is dead (at 10^6 rules
//! the flag of a leaf's rule was a cache miss of its own, about four per lookup).
//!
//! # Prefix families
//!
//! A routing table is many groups that differ only in a prefix length (nw_dst/8 ..
//! nw_dst/32), and a lookup that misses the long routes searches a large node in each.
//! Groups whose only non-categorical field is a prefix of the same field (at most 32
//! bits), whose rules agree on all other fields, form a [`Family`] with one
//! [`PrefixTrie`] over all their values: a lookup walks it once, at the family's first
//! visited group, and answers every group of the family from that walk, exactly as the
//! group's tree would (see `prefix_trie` for why the witnesses are the same). A group is
//! answered by its tree instead when the key's other fields differ from the family's,
//! when some of its rules come after the best match (the trie does not skip values),
//! and when proofs are made again for the final winner.

use super::build_threads::{PARALLEL_BUILD_RULES, Queue, on_threads, threads_for};
use super::fields::{Field, witness_of, word_of};
use super::prefix_trie::{PrefixTrie, TrieAnswer, TrieWalk};
use std::collections::HashMap;

use ferrovs_config::rules::Registers;

use super::tables::{CompiledRule, IdentityBuildHasher, masked_regs};
use crate::key::{FlowKey, Mask};

/// The order in which a group's fields are tested. Earlier fields are preferred as
/// witnesses: categorical fields split traffic into few megaflows, addresses come before
/// ports because routing tables put address prefixes into most masks anyway.
const STAGE_ORDER: [Field; 20] = [
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
    Field::MplsLse,
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
    /// In order of their first rule in lookup order.
    groups: Vec<Group>,
    /// Prefix families (see [`Family`]), named by their groups' `family`.
    families: Vec<Family>,
    /// Some of the indexed rules are deleted in place ([`CompiledRule::dead`]). Only then
    /// does a lookup read a rule's `dead` flag: at 10^6 rules the flag of a rule a walk
    /// ends at is a cache miss of its own (the rule's values the leaf compares are in
    /// another cache line).
    dead: bool,
}

/// Groups that differ only in the length of a prefix of one field (routes of several
/// lengths), with the same values in all other fields: one walk of a [`PrefixTrie`]
/// over all their values answers for each of them what its tree would, when the key
/// has those other values and none of the group's rules is skipped for coming after the
/// best match (else the group's tree is walked). See the module documentation.
#[derive(Debug, Clone)]
struct Family {
    /// The prefix field (at most 32 bits wide).
    field: Field,
    /// The other fields' mask and (masked) values, common to all rules of the family.
    rest_mask: Mask,
    rest_value: FlowKey,
    trie: PrefixTrie,
}

impl Family {
    /// The field's value of `k`, top-aligned as the trie's values.
    #[inline]
    fn top_aligned(&self, k: &FlowKey) -> u32 {
        (self.field.get(k) as u32) << (32 - self.field.width())
    }
}

/// A family's walk made in the current lookup (`None`: the key's other fields differ).
#[derive(Debug, Clone, Copy)]
struct FamilyWalk {
    family: u32,
    walk: Option<TrieWalk>,
}

/// The family walks of one lookup, kept inline: a translation makes a new [`Proof`], and
/// a heap buffer of walks cost an allocation and its cache misses per translation. A
/// table rarely has more than one family (routes by nw_dst); past `WALK_SLOTS` the last
/// slot is reused and a family's walk may be made again.
#[derive(Debug, Clone, Copy, Default)]
struct FamilyWalks {
    slots: [Option<FamilyWalk>; WALK_SLOTS],
}

const WALK_SLOTS: usize = 4;

impl FamilyWalks {
    fn clear(&mut self) {
        self.slots = [None; WALK_SLOTS];
    }
}

/// Rules of one compiled mask and one set of matched register and metadata bits, of any
/// priorities, split into [`Part`]s by the values of those bits.
#[derive(Debug, Clone)]
struct Group {
    /// Position (in the table's lookup order) of the group's first rule.
    first: u32,
    /// The compiled mask of the group's rules.
    mask: Mask,
    /// The register and metadata bits the group's rules match (all zero: none).
    pipeline_mask: Registers,
    parts: Vec<Part>,
    /// Register values under `pipeline_mask` -> part (empty when the mask is zero: the
    /// group is its one part).
    by_value: HashMap<Registers, u32, IdentityBuildHasher>,
    /// The [`Family`] (index in `TableIndex::families`) and the prefix length of a group
    /// looked up through a prefix trie.
    family: Option<(u32, u32)>,
}

/// The rules of a group with the same register and metadata values. Only the part
/// whose values the translation's registers have can match; the others need no
/// witness, because the registers follow from bits already in the mask.
#[derive(Debug, Clone)]
struct Part {
    /// Positions (in the table's lookup order) of the part's first and last rules.
    first: u32,
    last: u32,
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
    /// What each level tests, in order.
    stages: Vec<Stage>,
    /// The nodes, node after node: each its header (see [`Node::at`]) and then its
    /// values and where they lead.
    entries: Vec<Entry>,
    /// The nodes' directories (see [`Node`]), one after another.
    dirs: Vec<u32>,
    /// The entry of the root: a node, or a leaf for a group with a single rule or no
    /// matched field.
    root: u32,
    /// The tree has at least two stages and the last one's values, shifted down by
    /// [`Stage::low_zeros`], fit in 31 bits: the leaves of nodes at the stage before the
    /// last are inline (see [`Entry`]).
    inline_leaves: bool,
}

/// One level of a tree: up to 64 bits of one field. A field of at most 64 bits is one
/// stage; an IPv6 address whose mask has bits in both halves is two (the upper half
/// first), so that every value of a node is a `u64` and an [`Entry`] is 16 bytes, four
/// to a cache line (the upper half's node leaves behind values that differ there, the
/// lower half's those equal there, so the prefix witness is the same as over the whole
/// field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stage {
    field: Field,
    /// The group's mask of the field, limited to this stage's half (field coordinates).
    mask: u128,
    /// Where the stage's bits start in the field (0 or 64).
    shift: u32,
    /// The key word that holds the stage's bits, the shift of the stage's lowest bit in
    /// it, and the stage's mask there: `(k.w[word] >> bit) & bits` is the stage's value,
    /// read without going through the field's 128-bit value (a walk reads the key's
    /// value at every node it visits, a build every rule's at every stage).
    word: u8,
    bit: u8,
    bits: u64,
}

impl Stage {
    /// The stage's value of `k` (a key or a rule's value): `(field(k) & mask) >> shift`.
    #[inline]
    fn get(&self, k: &FlowKey) -> u64 {
        (k.w[self.word as usize] >> self.bit) & self.bits
    }

    /// Adds the witness `w` (bits of the stage's field, field coordinates, none below the
    /// stage's half) to `bits`: into the stage's key word, where every witness but a
    /// prefix ending in the lower half of an IPv6 address lies (a `Mask` built through
    /// the field's slot and merged word by word was a tenth of a walk's instructions).
    #[inline]
    fn add_witness(&self, bits: &mut Mask, w: u128) {
        // The lower half of an IPv6 address: its prefix witness takes the upper half too.
        if self.shift == 0 && self.field.width() > 64 {
            *bits = bits.union(&self.field.mask_of(w));
        } else {
            bits.w[self.word as usize] |= ((w >> self.shift) as u64) << self.bit;
        }
    }

    /// The stage's value bits below its mask's lowest one, always zero.
    #[inline]
    fn low_zeros(&self) -> u32 {
        self.bits.trailing_zeros()
    }

    /// The witness of a value that differs from the key's in the stage's bits `diff`
    /// (stage coordinates, not zero): for a prefix field the prefix down to the highest
    /// differing bit, else the stage's whole mask (field coordinates).
    #[inline]
    fn witness(&self, diff: u64) -> u128 {
        witness_of(self.field, u128::from(diff) << self.shift, self.mask)
    }

    /// The stages of a field matched under `mask`.
    fn of(field: Field, mask: u128) -> impl Iterator<Item = Stage> {
        let halves = if field.width() > 64 {
            [(64, mask >> 64 << 64), (0, mask & u128::from(u64::MAX))]
        } else {
            [(0, mask), (0, 0)]
        };
        halves.into_iter().filter(|&(_, m)| m != 0).map(move |(shift, mask)| {
            let (word, bit) = word_of(field, shift == 64).expect("an indexed field is in the key");
            Stage { field, mask, shift, word: word as u8, bit: bit as u8, bits: (mask >> shift) as u64 }
        })
    }
}

/// A value of a node, where it leads, and the first rule (lowest position) below it: a
/// lookup skips the values whose rules all come after the best match it has (they can
/// neither win nor need a witness). Together, so that the cache line read to find the
/// key's value also holds its child and its neighbours' first rules.
///
/// A leaf's first rule is the leaf's own, so `next` names it only once, in `min`, when
/// the leaf is *inline*: in a tree with [`Tree::inline_leaves`], a leaf of a node at the
/// stage before the last (one rule, the last stage left to compare) holds in `next`,
/// beside `LEAF`, that rule's value at the last stage, so that a walk ending there
/// compares it with the key without reading the rule (at 10^6 rules a rule read is a
/// cache miss of its own, and groups of two address/port fields end most walks so).
#[derive(Debug, Clone, Copy)]
struct Entry {
    value: u64,
    /// Child node (the index of its header in `entries`), or `LEAF | position` of the
    /// first rule with that value path, or for an inline leaf `LEAF | value` (see above).
    next: u32,
    /// The lowest position of the rules below.
    min: u32,
}

/// A value left behind at a node is looked for at most this many places away from the
/// key's; past that, the value there stands in for it (see `Tree::probe`).
const SKIP_LIMIT: usize = 8;

/// A tree node: covers `entries[start..start + len]` (sorted by value, distinct).
///
/// Stored in the tree's `entries` as one header entry just before its values, or two
/// for a node with a directory (see [`Node::at`]), so that a walk reads a small node's
/// description and its values from the same cache line or the next (with the nodes in
/// an array of their own, a node below the root cost a cache miss of its own at 10^6
/// rules).
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
    base: u64,
}

/// Nodes with at least this many values get a directory.
const DIR_MIN: usize = 32;

/// Values per directory bucket, on average when values spread evenly: four entries are
/// one cache line.
const DIR_FILL: usize = 4;

/// The header's `min` of a node without a directory.
const NO_DIR: u32 = u32::MAX;

impl Node {
    /// The node whose header is `entries[h]`: `{value: 0, next: len, min: dir or
    /// NO_DIR}`, for a directory followed by `{value: base, next: shift, min: dir_bits}`.
    #[inline]
    fn at(entries: &[Entry], h: usize) -> Node {
        let hd = entries[h];
        if hd.min == NO_DIR {
            return Node { start: h as u32 + 1, len: hd.next, dir: 0, shift: 0, dir_bits: 0, base: 0 };
        }
        let d = entries[h + 1];
        Node {
            start: h as u32 + 2,
            len: hd.next,
            dir: hd.min,
            shift: d.next as u8,
            dir_bits: d.min as u8,
            base: d.value,
        }
    }

    /// The header entries of this node (see [`Node::at`]).
    fn header(&self) -> impl Iterator<Item = Entry> {
        let has_dir = self.dir_bits != 0;
        let first = Entry { value: 0, next: self.len, min: if has_dir { self.dir } else { NO_DIR } };
        let second = Entry { value: self.base, next: u32::from(self.shift), min: u32::from(self.dir_bits) };
        std::iter::once(first).chain(has_dir.then_some(second))
    }

    /// Where `v` is among the node's `entries` (`binary_search`'s answer).
    #[inline]
    fn search(&self, entries: &[Entry], dirs: &[u32], v: u64) -> Result<usize, usize> {
        if self.dir_bits == 0 {
            return entries.binary_search_by_key(&v, |e| e.value);
        }
        let b = (v >> self.shift).saturating_sub(self.base).min((1u64 << self.dir_bits) - 1) as usize;
        let d = &dirs[self.dir as usize + b..];
        let (lo, hi) = (d[0] as usize, d[1] as usize);
        match entries[lo..hi].binary_search_by_key(&v, |e| e.value) {
            Ok(i) => Ok(lo + i),
            Err(i) => Err(lo + i),
        }
    }

    /// A node over `entries` (sorted by value, distinct), adding its directory to `dirs`
    /// if it gets one.
    fn new(start: usize, entries: &[Entry], dirs: &mut Vec<u32>) -> Node {
        let mut n = Node { start: start as u32, len: entries.len() as u32, dir: 0, shift: 0, dir_bits: 0, base: 0 };
        if entries.len() < DIR_MIN {
            return n;
        }
        let (first, last) = (entries[0].value, entries[entries.len() - 1].value);
        let varying = 64 - (first ^ last).leading_zeros();
        let wanted = (entries.len() / DIR_FILL).ilog2().min(24);
        n.dir_bits = wanted.min(varying) as u8;
        if n.dir_bits == 0 {
            return n;
        }
        n.shift = (varying - u32::from(n.dir_bits)) as u8;
        n.base = first >> n.shift;
        n.dir = dirs.len() as u32;
        let buckets = 1usize << n.dir_bits;
        for (i, e) in entries.iter().enumerate() {
            let b = ((e.value >> n.shift) - n.base) as usize;
            while dirs.len() - n.dir as usize <= b {
                dirs.push(i as u32);
            }
        }
        while dirs.len() - n.dir as usize <= buckets {
            dirs.push(entries.len() as u32);
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
    /// Scratch: the parts a lookup visited.
    visited: Vec<Visit>,
    /// Scratch: the families a lookup walked.
    walks: FamilyWalks,
}

impl TableIndex {
    /// Indexes `rules`, a table's compiled rules in lookup order.
    pub fn new(rules: &[CompiledRule]) -> TableIndex {
        Self::build(rules, None)
    }

    /// Indexes `rules`, compiled rules in lookup order added beside the table `like`
    /// indexes (see `tables::Delta`): a group of a shape `like` has too tests its fields
    /// in the order `like`'s group does, so that a lookup's walks in both leave values
    /// behind at the stages where one walk over all the rules would (and the witnesses
    /// of the two are about those of one index over all of them), whatever the order
    /// the few added rules alone would suggest.
    pub fn beside(rules: &[CompiledRule], like: &TableIndex) -> TableIndex {
        Self::build(rules, Some(like))
    }

    fn build(rules: &[CompiledRule], like: Option<&TableIndex>) -> TableIndex {
        // The table's own fast hasher: SipHash over a 64-byte mask per rule was a tenth of
        // a million-rule build.
        let mut by_shape: HashMap<(Mask, Registers), Vec<u32>, IdentityBuildHasher> = Default::default();
        let mut dead = false;
        for (pos, r) in rules.iter().enumerate() {
            by_shape.entry((r.mask, r.pipeline_mask())).or_default().push(pos as u32);
            dead |= r.dead;
        }
        let like_group = |mask: &Mask, pm: &Registers| {
            like.and_then(|l| l.groups.iter().find(|g| g.mask == *mask && g.pipeline_mask == *pm))
        };
        let group =
            |((mask, pm), m): ((Mask, Registers), Vec<u32>)| Group::new(mask, pm, m, rules, like_group(&mask, &pm));
        // A large table's groups are built side by side (and a large part's two trees).
        let threads = threads_for(rules.len()).min(by_shape.len());
        let mut groups: Vec<Group> = if threads <= 1 {
            by_shape.into_iter().map(group).collect()
        } else {
            // Groups are independent: built on several threads, each taking the largest
            // group left (so that a large one does not start last).
            let mut shapes: Vec<_> = by_shape.into_iter().collect();
            shapes.sort_unstable_by_key(|s| s.1.len());
            let queue = Queue::new(shapes);
            on_threads(threads, || std::iter::from_fn(|| queue.take()).map(&group).collect())
        };
        // Positions are distinct across groups: the order is the same however the
        // groups were built.
        groups.sort_by_key(|g| g.first);
        let mut budget = PER_RULE_BUDGET;
        for part in groups.iter_mut().flat_map(|g| g.parts.iter_mut()) {
            let n = part.members.len();
            part.per_rule = part.trees.len() > 1 && n <= PER_RULE_LIMIT && n <= budget;
            if part.per_rule {
                budget -= n;
            }
        }
        let families = Family::find(&mut groups, rules);
        TableIndex { groups, families, dead }
    }

    /// Notes that some of the indexed rules were deleted in place (their `dead` flags are
    /// read from now on; see [`TableIndex::dead`]).
    pub fn mark_dead(&mut self) {
        self.dead = true;
    }

    /// Number of groups (distinct masks, register masks apart).
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
            .sum::<usize>()
            + self.families.iter().map(|f| std::mem::size_of::<Family>() + f.trie.heap_bytes()).sum::<usize>()
    }

    /// The answer of the group's family trie for `key`, walking it if this lookup has
    /// not yet (`None`: the key's other fields differ from the family's).
    #[inline]
    fn family_answer(&self, (family, len): (u32, u32), key: &FlowKey, walks: &mut FamilyWalks) -> Option<TrieAnswer> {
        let slots = &mut walks.slots;
        let at = match slots.iter().position(|w| w.is_none_or(|w| w.family == family)) {
            Some(i) if slots[i].is_some() => i,
            free => {
                let i = free.unwrap_or(WALK_SLOTS - 1);
                let f = &self.families[family as usize];
                let walk = (key.masked(&f.rest_mask) == f.rest_value).then(|| {
                    let mut w = TrieWalk::default();
                    f.trie.walk(f.top_aligned(key), &mut w);
                    w
                });
                slots[i] = Some(FamilyWalk { family, walk });
                i
            }
        };
        Some(slots[at].as_ref().expect("filled above").walk.as_ref()?.answer(len))
    }

    /// The position (in `rules`, the table this index was built from) of the rule that
    /// wins for `key` with the registers `regs` among those before position `thr` (all:
    /// `u32::MAX`), if any. Fills `proof` (cleared first; bits of `key`) with what
    /// disproves every rule before the winner in lookup order (before `thr` if none
    /// wins). The winner's own mask is not included.
    pub fn lookup(
        &self,
        rules: &[CompiledRule],
        key: &FlowKey,
        regs: &Registers,
        thr: u32,
        proof: &mut Proof,
    ) -> Option<u32> {
        proof.bits = Mask::ZERO;
        proof.optional.clear();
        proof.choices.clear();
        let mut visited = std::mem::take(&mut proof.visited);
        visited.clear();
        proof.walks.clear();
        // The best match so far, as a position in lookup order (`thr`: none): only rules
        // before it can win, and only they need a witness.
        let mut best = thr;
        for (gi, g) in self.groups.iter().enumerate() {
            if g.first >= best {
                // Groups are in order of their first rule: none of the rest comes
                // before the best match.
                break;
            }
            let Some(pi) = g.part_for(regs) else { continue };
            let part = &g.parts[pi as usize];
            if part.first >= best {
                continue;
            }
            // A family's trie stands in for the tree when no rule of the group comes
            // after the best match (the trie does not skip any).
            let by_trie = match g.family {
                Some(f) if part.last < best => self.family_answer(f, key, &mut proof.walks),
                _ => None,
            };
            // A rule deleted in place is answered by the tree, which looks past it.
            let by_trie =
                by_trie.filter(|a| !matches!(*a, TrieAnswer::Hit(pos) if self.dead && rules[pos as usize].dead));
            let hit = match by_trie {
                Some(TrieAnswer::Hit(pos)) => Some(pos),
                Some(TrieAnswer::Witness(d)) => {
                    let f = &self.families[g.family.expect("answered by its family").0 as usize];
                    let w = f.field.width();
                    debug_assert!(d >= 1 && d <= w, "a group without the key's prefix has another value");
                    let bits = f.field.all_ones() & !((1u128 << (w - d.min(w))) - 1);
                    proof.bits = proof.bits.union(&f.field.mask_of(bits));
                    None
                }
                None => part.prove(rules, key, best, proof, self.dead),
            };
            visited.push(Visit { at: (gi as u32, pi), thr: best, hit: hit.unwrap_or(u32::MAX) });
            if let Some(pos) = hit {
                best = pos;
            }
        }
        // Every visited part has rules before the winner (it was visited because its
        // first rule comes before the best match then). Its proof is exact if it was
        // made for the winner, or if all of its rules come before the winner; else it
        // may cover rules after the winner and be wider than needed: then all proofs
        // are made again for the winner (rare: a later group held a better match, and
        // an earlier one rules on both sides of it; the nodes are in the cache now).
        // The winner's own part needs none: its rules have the winner's mask, all of
        // which the megaflow's mask holds, so those before the winner fail on bits
        // already there (and its walk added only such bits).
        let part = |v: &Visit| &self.groups[v.at.0 as usize].parts[v.at.1 as usize];
        let found = best < thr;
        let won = |v: &Visit| found && v.hit == best;
        if visited.iter().any(|v| !won(v) && v.thr != best && part(v).last >= best && !part(v).per_rule) {
            proof.bits = Mask::ZERO;
            proof.optional.clear();
            proof.choices.clear();
            for v in visited.iter().filter(|v| !won(v)) {
                part(v).prove(rules, key, best, proof, self.dead);
            }
        }
        for v in visited.iter().filter(|v| !won(v) && part(v).per_rule) {
            part(v).disprove_each(rules, key, best, proof, self.dead);
        }
        proof.visited = visited;
        found.then_some(best)
    }
}

/// A part looked at by a lookup.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Visit {
    /// The group and its part.
    at: (u32, u32),
    /// Its proof covers its rules before this position.
    thr: u32,
    /// The matching rule it found (u32::MAX: none).
    hit: u32,
}

/// Outcome of walking one group.
enum Probe {
    /// The first rule (in lookup order) of the group that matches.
    Hit(u32),
    /// No rule matches; a rule left for the caller to disprove, if any.
    Miss(Option<u32>),
    /// The walk ended at a leaf whose rule was deleted in place (position, stage
    /// reached): the leaf's other rules, if any, are the part's with the same values.
    Dead(u32, usize),
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
    /// The group of `members`, whose trees test the fields in the order `like`'s first
    /// part does, if given.
    fn new(
        mask: Mask,
        pipeline_mask: Registers,
        members: Vec<u32>,
        rules: &[CompiledRule],
        like: Option<&Group>,
    ) -> Group {
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
        let orders: Option<Vec<&[Stage]>> = like.map(|g| g.parts[0].trees.iter().map(|t| &t.stages[..]).collect());
        let parts: Vec<Part> = split.into_iter().map(|m| Part::new(m, rules, orders.as_deref())).collect();
        let first = parts.iter().map(|p| p.first).min().expect("a group has rules");
        Group { first, mask, pipeline_mask, parts, by_value, family: None }
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

impl Family {
    /// Finds the families among `groups` (at least two groups each), builds their
    /// tries and marks their groups. A group qualifies if it is one part without
    /// register matches, its only non-categorical field is a prefix of a field of at
    /// most 32 bits (so it has one tree, walked for every visit), and its rules agree on
    /// all other fields.
    fn find(groups: &mut [Group], rules: &[CompiledRule]) -> Vec<Family> {
        type Shape = (Field, Mask, FlowKey);
        let mut by_shape: HashMap<Shape, Vec<(usize, u32)>> = HashMap::new();
        for (gi, g) in groups.iter().enumerate() {
            let [part] = &g.parts[..] else { continue };
            if !g.by_value.is_empty() || part.trees.len() != 1 {
                continue;
            }
            let r0 = &rules[part.first as usize];
            let mut others = r0.fields().filter(|fm| !fm.field.is_categorical());
            let (Some(fm), None) = (others.next(), others.next()) else { continue };
            let (field, w) = (fm.field, fm.field.width());
            let len = fm.mask.count_ones();
            if !field.is_prefix() || w > 32 || len == 0 || fm.mask != field.all_ones() & !((1u128 << (w - len)) - 1) {
                continue;
            }
            let own: Mask = field.mask_of(field.all_ones());
            let mut rest_mask = r0.mask;
            for (m, o) in rest_mask.w.iter_mut().zip(own.w) {
                *m &= !o;
            }
            let rest_value = r0.value.masked(&rest_mask);
            if part.members.iter().any(|&p| rules[p as usize].value.masked(&rest_mask) != rest_value) {
                continue;
            }
            by_shape.entry((field, rest_mask, rest_value)).or_default().push((gi, len));
        }
        let mut families = Vec::new();
        for ((field, rest_mask, rest_value), members) in by_shape {
            if members.len() < 2 {
                continue;
            }
            let w = field.width();
            let items = members
                .iter()
                .flat_map(|&(gi, len)| {
                    groups[gi].parts[0]
                        .members
                        .iter()
                        .map(move |&p| ((field.get(&rules[p as usize].value) as u32) << (32 - w), len as u8, p))
                })
                .collect();
            let fi = families.len() as u32;
            families.push(Family { field, rest_mask, rest_value, trie: PrefixTrie::new(items) });
            for (gi, len) in members {
                groups[gi].family = Some((fi, len));
            }
        }
        families
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
                        + t.stages.capacity() * std::mem::size_of::<Stage>()
                        + t.dirs.capacity() * 4
                        + t.entries.capacity() * std::mem::size_of::<Entry>()
                })
                .sum::<usize>()
    }

    /// Looks the part up for `key`, for its rules before position `thr`: returns the
    /// first of them that matches; if none does, adds to `proof` what disproves them
    /// (a part disproved rule by rule adds nothing here: see `disprove_each`).
    /// `dead`: some rules of the table are deleted in place (see [`TableIndex::dead`]).
    fn prove(&self, rules: &[CompiledRule], key: &FlowKey, thr: u32, proof: &mut Proof, dead: bool) -> Option<u32> {
        if self.per_rule {
            let live = |q: &u32| !(dead && rules[*q as usize].dead) && rules[*q as usize].matches(key);
            return self.members.iter().copied().take_while(|&q| q < thr).find(live);
        }
        let mut bits = Mask::ZERO;
        let leaf = match self.probe(0, rules, key, thr, &mut bits, dead) {
            // A hit in one tree is a hit in the other (the same rules): no second proof.
            Probe::Hit(pos) => return Some(pos),
            Probe::Miss(l) => l,
            // (`Part::probe` resolves a dead leaf.)
            Probe::Dead(..) => None,
        };
        if self.trees.len() > 1 {
            let mut abits = Mask::ZERO;
            if let Probe::Miss(l) = self.probe(1, rules, key, thr, &mut abits, dead)
                && (abits != bits || l.is_some() || leaf.is_some())
            {
                // Two proofs: the translator keeps the one that adds fewer bits.
                proof.choices.push([(bits, leaf), (abits, l)]);
                return None;
            }
        }
        proof.bits = proof.bits.union(&bits);
        proof.optional.extend(leaf);
        None
    }

    /// Walks tree `t` (see [`Tree::probe`]); a leaf whose rule was deleted in place
    /// stands for the next live rule of the part with the same values, if any (only a
    /// leaf at the last stage holds several rules: those of equal values).
    fn probe(&self, t: usize, rules: &[CompiledRule], key: &FlowKey, thr: u32, bits: &mut Mask, dead: bool) -> Probe {
        let tree = &self.trees[t];
        match tree.probe(rules, key, thr, bits, dead) {
            Probe::Dead(pos, stage) => {
                let value = &rules[pos as usize].value;
                let next = (stage == tree.stages.len())
                    .then(|| {
                        let mut later = self.members.iter().copied().skip_while(|&q| q <= pos).take_while(|&q| q < thr);
                        later.find(|&q| !rules[q as usize].dead && rules[q as usize].value == *value)
                    })
                    .flatten();
                match next.map(|q| (q, tree.leaf_witness(&rules[q as usize], key, stage, bits))) {
                    Some((q, Leaf::Matches)) => Probe::Hit(q),
                    Some((q, Leaf::Several)) => Probe::Miss(Some(q)),
                    Some((_, Leaf::One)) | None => Probe::Miss(None),
                }
            }
            p => p,
        }
    }

    /// Disproves the part's failing rules before position `until` one by one: a rule
    /// differing in one field adds that witness, one differing in several is left to
    /// the caller. Matching rules (after the winner) and rules deleted in place are
    /// skipped.
    fn disprove_each(&self, rules: &[CompiledRule], key: &FlowKey, until: u32, proof: &mut Proof, dead: bool) {
        for &pos in self.members.iter().take_while(|&&p| p < until) {
            if dead && rules[pos as usize].dead {
                continue;
            }
            if let Leaf::Several = self.trees[0].leaf_witness(&rules[pos as usize], key, 0, &mut proof.bits) {
                proof.optional.push(pos);
            }
        }
    }

    /// The part of `members`, with trees in the stage orders `orders` if given (one or
    /// two: those of another part of the same fields), else chosen here.
    fn new(mut members: Vec<u32>, rules: &[CompiledRule], orders: Option<&[&[Stage]]>) -> Part {
        members.sort_unstable();
        if let Some(orders) = orders {
            let n = if members.len() > 1 { orders.len() } else { 1 };
            let trees = orders[..n].iter().map(|st| Tree::new(st.to_vec(), &members, rules)).collect();
            return Part { first: members[0], last: members[members.len() - 1], members, trees, per_rule: false };
        }
        let r0 = &rules[members[0] as usize];
        let mut fields: Vec<(Field, u128)> =
            STAGE_ORDER.iter().filter_map(|&f| r0.fields().find(|fm| fm.field == f).map(|fm| (f, fm.mask))).collect();
        debug_assert_eq!(fields.len(), r0.fields().count(), "every field has a stage");
        // Categorical fields stay first; the others go by number of distinct values,
        // fewest first (stable, so ties keep STAGE_ORDER). The second tree, if any,
        // tests the non-categorical fields in the reverse order.
        let distinct = |&(f, m): &(Field, u128)| {
            let values = members.iter().map(|&p| f.get(&rules[p as usize].value) & m);
            if f.width() <= 64 {
                // Sorting 64-bit values: half the work of 128-bit ones.
                let mut v: Vec<u64> = values.map(|x| x as u64).collect();
                v.sort_unstable();
                v.dedup();
                v.len()
            } else {
                let mut v: Vec<u128> = values.collect();
                v.sort_unstable();
                v.dedup();
                v.len()
            }
        };
        let n_cat = fields.iter().take_while(|(f, _)| f.is_categorical()).count();
        fields[n_cat..].sort_by_cached_key(distinct);
        let stages =
            |fields: &[(Field, u128)]| -> Vec<Stage> { fields.iter().flat_map(|&(f, m)| Stage::of(f, m)).collect() };
        let first = stages(&fields);
        let second = (fields.len() - n_cat >= 2 && members.len() > 1).then(|| {
            fields[n_cat..].reverse();
            stages(&fields)
        });
        let trees = match second {
            // The two trees of a large part are built side by side.
            Some(second) if members.len() >= PARALLEL_BUILD_RULES => std::thread::scope(|s| {
                let other = s.spawn(|| Tree::new(second, &members, rules));
                let one = Tree::new(first, &members, rules);
                vec![one, other.join().unwrap_or_else(|e| std::panic::resume_unwind(e))]
            }),
            Some(second) => vec![Tree::new(first, &members, rules), Tree::new(second, &members, rules)],
            None => vec![Tree::new(first, &members, rules)],
        };
        Part { first: members[0], last: members[members.len() - 1], members, trees, per_rule: false }
    }
}

/// Buffers [`Tree::build`] reuses from node to node (a million-rule tree has hundreds of
/// thousands of nodes; three vectors each were a tenth of building it).
#[derive(Default)]
struct BuildScratch {
    /// The node's rules with their values at its stage, sorted by value.
    keyed: Vec<(u64, u32)>,
    /// The runs of equal values (value, start, end in the node's set) of the nodes on
    /// the path being built, the deepest last.
    runs: Vec<(u64, usize, usize)>,
    /// The node's distinct values as entries, before they are copied into the tree.
    values: Vec<Entry>,
}

impl Tree {
    fn new(stages: Vec<Stage>, members: &[u32], rules: &[CompiledRule]) -> Tree {
        let inline_leaves =
            stages.len() >= 2 && stages.last().is_some_and(|st| st.bits >> st.low_zeros() < u64::from(LEAF));
        let mut t = Tree { stages, entries: Vec::new(), dirs: Vec::new(), root: 0, inline_leaves };
        let mut work = members.to_vec();
        t.root = t.build(&mut work, 0, rules, &mut BuildScratch::default()).0;
        t
    }

    /// Builds the subtree of `set` (rules agreeing on stages before `stage`); returns
    /// its entry (node index or leaf) and its first rule.
    fn build(
        &mut self,
        set: &mut [u32],
        stage: usize,
        rules: &[CompiledRule],
        scratch: &mut BuildScratch,
    ) -> (u32, u32) {
        let min = *set.iter().min().expect("non-empty");
        if set.len() == 1 || stage == self.stages.len() {
            // One rule, or the same value path at several priorities: the first in
            // lookup order wins, and if it fails all fail.
            return (LEAF | min, min);
        }
        let st = self.stages[stage];
        // Each rule's value read once, then sorted by it: a sort by a key read through
        // `rules` would miss the cache at every comparison. The order of the rules of
        // one value does not matter (a subtree depends on its set, not its order), so
        // the sort compares values only.
        let keyed = &mut scratch.keyed;
        keyed.clear();
        keyed.extend(set.iter().map(|&p| (st.get(&rules[p as usize].value), p)));
        keyed.sort_unstable_by_key(|k| k.0);
        let runs_start = scratch.runs.len();
        let mut i = 0;
        while i < keyed.len() {
            let v = keyed[i].0;
            let mut j = i + 1;
            while j < keyed.len() && keyed[j].0 == v {
                j += 1;
            }
            scratch.runs.push((v, i, j));
            i = j;
        }
        for (s, k) in set.iter_mut().zip(keyed.iter()) {
            *s = k.1;
        }
        let runs = &scratch.runs[runs_start..];
        scratch.values.clear();
        scratch.values.extend(runs.iter().map(|r| Entry { value: r.0, next: 0, min: 0 }));
        let node = self.entries.len() as u32;
        let n = Node::new(0, &scratch.values, &mut self.dirs);
        self.entries.extend(n.header());
        let start = self.entries.len();
        self.entries.extend_from_slice(&scratch.values);
        // A leaf with the last stage left to compare is inline (see `Entry`).
        let last = (self.inline_leaves && stage + 2 == self.stages.len()).then(|| self.stages[stage + 1]);
        for k in 0..scratch.runs.len() - runs_start {
            let (_, i, j) = scratch.runs[runs_start + k];
            let (next, min) = self.build(&mut set[i..j], stage + 1, rules, scratch);
            let next = match last {
                Some(st) if next & LEAF != 0 => LEAF | (st.get(&rules[min as usize].value) >> st.low_zeros()) as u32,
                _ => next,
            };
            let e = &mut self.entries[start + k];
            (e.next, e.min) = (next, min);
        }
        scratch.runs.truncate(runs_start);
        (node, min)
    }

    /// Walks the key's path for the rules before position `thr`. Returns the matching
    /// rule's position, and adds to `bits` the witnesses of those rules left behind on
    /// the way.
    ///
    /// At a node, the rules left behind are those below the values other than the key's
    /// whose first rule comes before `thr`. Their witness is the node's field: for a
    /// prefix field, the prefix down to the first bit where the key differs from the
    /// closest such value below or above the key's place (sorted values share fewer
    /// leading bits with the key the farther they are). A value is looked for at most
    /// `SKIP_LIMIT` places away; past that, the value there is used instead, whose
    /// witness is at least as long as any farther value's, so the proof stays correct
    /// (a few bits wider at worst).
    ///
    /// `dead`: some rules of the table are deleted in place (see [`TableIndex::dead`]);
    /// if not, a leaf's rule is not asked.
    fn probe(&self, rules: &[CompiledRule], key: &FlowKey, thr: u32, bits: &mut Mask, dead: bool) -> Probe {
        let mut entry = self.root;
        let mut stage = 0;
        // The `min` of the entry that led to `entry`: an inline leaf's rule.
        let mut min = 0;
        loop {
            if entry & LEAF != 0 {
                // Only an entry of a node leads to an inline leaf, never the root: the
                // leaf's stage, the last, is not the first.
                let inline = self.inline_leaves && stage + 1 == self.stages.len();
                let pos = if inline { min } else { entry & !LEAF };
                if pos >= thr {
                    return Probe::Miss(None);
                }
                if dead && rules[pos as usize].dead {
                    return Probe::Dead(pos, stage);
                }
                if inline {
                    // What `leaf_witness` finds for the one stage left, from the entry's
                    // value instead of the rule's (see `Entry`).
                    let st = &self.stages[stage];
                    let diff = st.get(key) ^ (u64::from(entry & !LEAF) << st.low_zeros());
                    if diff == 0 {
                        return Probe::Hit(pos);
                    }
                    st.add_witness(bits, st.witness(diff));
                    return Probe::Miss(None);
                }
                return match self.leaf_witness(&rules[pos as usize], key, stage, bits) {
                    Leaf::Matches => Probe::Hit(pos),
                    Leaf::One => Probe::Miss(None),
                    Leaf::Several => Probe::Miss(Some(pos)),
                };
            }
            let st = self.stages[stage];
            let node = Node::at(&self.entries, entry as usize);
            let start = node.start as usize;
            let len = node.len as usize;
            let es = &self.entries[start..start + len];
            let v = st.get(key);
            let found = node.search(es, &self.dirs, v);
            let (at, skip) = match found {
                Ok(i) => (i, 1),
                Err(i) => (i, 0),
            };
            // The closest values below and above the key's place, other than the key's,
            // that have a rule before `thr` (or stand in for one: see above).
            let wanted = |i: &usize| es[*i].min < thr;
            let lo = (at.saturating_sub(SKIP_LIMIT)..at)
                .rev()
                .find(wanted)
                .or((at > SKIP_LIMIT).then(|| at - SKIP_LIMIT - 1));
            let up = (at + skip..len.min(at + skip + SKIP_LIMIT))
                .find(wanted)
                .or((len > at + skip + SKIP_LIMIT).then_some(at + skip + SKIP_LIMIT));
            // The closer of the two (the smaller highest differing bit) gives the witness.
            let diff = [lo, up].into_iter().flatten().map(|i| es[i].value ^ v).min();
            if let Some(diff) = diff {
                st.add_witness(bits, st.witness(diff));
            }
            match found {
                Ok(i) if es[i].min < thr => {
                    (entry, min) = (es[i].next, es[i].min);
                    stage += 1;
                }
                _ => return Probe::Miss(None),
            }
        }
    }

    /// Compares `rule` with `key` on the stages from `stage` on. If exactly one field
    /// differs, adds its witness to `bits` (the two stages of an IPv6 address are one
    /// field: the prefix down to its first differing bit).
    fn leaf_witness(&self, rule: &CompiledRule, key: &FlowKey, stage: usize, bits: &mut Mask) -> Leaf {
        let mut differing: Option<(&Stage, u64)> = None;
        for st in &self.stages[stage..] {
            let diff = st.get(key) ^ st.get(&rule.value);
            if diff == 0 {
                continue;
            }
            match differing {
                // The lower half of an address whose upper half differs already.
                Some((d, _)) if d.field == st.field => {}
                Some(_) => return Leaf::Several,
                None => differing = Some((st, diff)),
            }
        }
        let Some((st, diff)) = differing else { return Leaf::Matches };
        st.add_witness(bits, st.witness(diff));
        Leaf::One
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ethertype;
    use crate::testpkt::SplitMix;
    use crate::xlate::RuleTables;
    use ferrovs_config::rules::{Masked, Match, Rule};
    use std::net::Ipv4Addr;

    /// A lookup answered by a family's prefix trie gives exactly what the groups' own
    /// trees give (winner, witness bits, rules left to the caller): the same tables are
    /// looked up with their families and with the families removed. Routes of many
    /// lengths in a narrow space (so lengths share paths), some with a second
    /// destination-only family over `nw_src`, a few with a different `dl_type` or
    /// `nw_proto` value (groups that cannot join), priorities that interleave lengths,
    /// and keys near rule values, one bit off, and outside the family's other values.
    #[test]
    fn family_tries_equal_the_groups_trees() {
        let mut r = SplitMix(81);
        let mut walked = 0;
        for case in 0..60 {
            let n = 5 + r.below(if case % 3 == 0 { 3000 } else { 300 }) as usize;
            let base = 0x0a00_0000 | (r.below(4) as u32) << 20;
            let prefix = |len: u32| if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let mut rules: Vec<Rule> = (0..n)
                .map(|_| {
                    let len = if r.chance(80) { 8 + r.below(25) as u32 } else { 1 + r.below(32) as u32 };
                    let v = (base | r.below(1 << 20) as u32) & prefix(len);
                    let a = Some(Masked { value: Ipv4Addr::from(v), mask: Ipv4Addr::from(prefix(len)) });
                    let mut m = Match { dl_type: Some(ethertype::IPV4), ..Match::default() };
                    if r.chance(20) {
                        m.nw_src = a;
                    } else {
                        m.nw_dst = a;
                    }
                    if r.chance(5) {
                        m.nw_proto = Some(if r.chance(50) { 6 } else { 17 });
                    }
                    let priority = if r.chance(30) { r.below(200) as u16 } else { 100 + len as u16 };
                    Rule { priority, ..Rule::new(m, Vec::new()) }
                })
                .collect();
            rules.push(Rule { priority: 0, ..Rule::new(Match::default(), Vec::new()) });
            let tables = RuleTables::new(rules.clone(), vec![1]).expect("valid rules");
            let (with, compiled) = (&tables.index[0], &tables.tables[0]);
            let mut without = with.clone();
            without.families.clear();
            without.groups.iter_mut().for_each(|g| g.family = None);
            walked += usize::from(!with.families.is_empty());
            for _ in 0..200 {
                let mut k = FlowKey::ZERO;
                k.set_dl_type(if r.chance(95) { ethertype::IPV4 } else { ethertype::IPV6 });
                k.set_nw_proto(r.pick(&[6, 17, 1]) as u8);
                let near = |r: &mut SplitMix| {
                    let m = &rules[r.index(n)].matches;
                    let a = m.nw_dst.or(m.nw_src).expect("an address");
                    let v = u32::from(a.value) | (r.next_u64() as u32 & !u32::from(a.mask));
                    if r.chance(30) { v ^ 1 << r.below(32) } else { v }
                };
                let (d, s) = (near(&mut r), near(&mut r));
                k.set_nw_dst_u32(d);
                k.set_nw_src_u32(if r.chance(50) { s } else { base | r.below(1 << 20) as u32 });
                let (mut a, mut b) = (Proof::default(), Proof::default());
                let regs = Registers::default();
                let wa = with.lookup(compiled, &k, &regs, u32::MAX, &mut a);
                let wb = without.lookup(compiled, &k, &regs, u32::MAX, &mut b);
                assert_eq!(wa, wb, "case {case}: winner for {k:?}");
                assert_eq!(a.bits, b.bits, "case {case}: witness bits for {k:?}");
                assert_eq!((&a.optional, &a.choices), (&b.optional, &b.choices), "case {case}: {k:?}");
            }
        }
        assert!(walked > 50, "the route tables form families ({walked} of 60)");
    }

    /// Two random masks of `field`: arbitrary bits, and a prefix of a random length.
    fn random_masks(r: &mut SplitMix, field: Field) -> (u128, u128) {
        let all = field.all_ones();
        let m = (u128::from(r.next_u64()) << 64 | u128::from(r.next_u64())) & all;
        let len = r.below(u64::from(field.width()) + 1) as u32;
        let prefix = if len == 0 { 0 } else { all & !((1u128 << (field.width() - len)) - 1) };
        (m, prefix)
    }

    /// A stage's value read from its key word equals the field's value under the stage's
    /// mask, shifted down by the stage's start: for every indexed field, random masks
    /// (prefixes and arbitrary bits, both halves of an IPv6 address) and random keys.
    #[test]
    fn stage_value_equals_the_fields() {
        let mut r = SplitMix(17);
        for &field in &STAGE_ORDER {
            for _ in 0..200 {
                let (m, prefix) = random_masks(&mut r, field);
                let mask = if r.chance(50) { m } else { prefix };
                let k = FlowKey { w: std::array::from_fn(|_| r.next_u64()) };
                for st in Stage::of(field, mask) {
                    assert_eq!(
                        u128::from(st.get(&k)),
                        (field.get(&k) & st.mask) >> st.shift,
                        "{field:?} mask {mask:#x} stage at {}",
                        st.shift
                    );
                }
            }
        }
    }

    /// A stage's witness written into its key word is the field's mask of that witness,
    /// merged: for every indexed field, random masks (prefixes and arbitrary bits, both
    /// halves of an IPv6 address, the lower one alone too), random differing bits, and
    /// masks already holding other bits.
    #[test]
    fn a_witness_added_in_its_word_is_the_field_s_mask_of_it() {
        let mut r = SplitMix(29);
        for &field in &STAGE_ORDER {
            for _ in 0..300 {
                let (m, prefix) = random_masks(&mut r, field);
                let mask = match r.below(3) {
                    0 => m,
                    1 => prefix,
                    _ => m & u128::from(u64::MAX),
                };
                for st in Stage::of(field, mask) {
                    let diff = r.next_u64() & st.bits;
                    if diff == 0 {
                        continue;
                    }
                    let w = st.witness(diff);
                    let start = FlowKey { w: std::array::from_fn(|_| r.next_u64() & r.next_u64()) };
                    let mut got = start;
                    st.add_witness(&mut got, w);
                    assert_eq!(got, start.union(&field.mask_of(w)), "{field:?} mask {mask:#x} stage at {}", st.shift);
                }
            }
        }
    }

    /// A node's directory search gives exactly `binary_search`'s answer, for values
    /// spread evenly, clustered under a common prefix, and skewed into a few buckets, and
    /// keys below, inside, between and above them.
    #[test]
    fn directory_search_equals_binary_search() {
        let mut r = SplitMix(5);
        for case in 0..200 {
            let n = DIR_MIN + r.below(3000) as usize;
            let mut vals: Vec<u64> = (0..n)
                .map(|_| match case % 3 {
                    0 => u64::from(r.next_u64() as u32),
                    1 => 0x1000_0000 | r.below(1 << 16) << 8,
                    _ => r.below(8) << 60 | r.below(1 << 20),
                })
                .collect();
            vals.sort_unstable();
            vals.dedup();
            if vals.len() < DIR_MIN {
                continue;
            }
            let entries: Vec<Entry> = vals.iter().map(|&value| Entry { value, next: 0, min: 0 }).collect();
            let mut dirs = vec![7; 3]; // a directory need not start at 0
            let node = Node::new(0, &entries, &mut dirs);
            assert!(node.dir_bits > 0, "case {case}: {} values get a directory", vals.len());
            let mut keys: Vec<u64> = vals.iter().flat_map(|&v| [v, v.wrapping_sub(1), v + 1]).collect();
            keys.extend([0, u64::MAX, vals[0] >> 1, vals[vals.len() - 1] << 1]);
            keys.extend((0..200).map(|_| r.next_u64() >> (r.below(64) as u32)));
            for k in keys {
                assert_eq!(node.search(&entries, &dirs, k), vals.binary_search(&k), "case {case} key {k:#x}");
            }
        }
    }
}
