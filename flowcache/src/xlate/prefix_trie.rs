//! [`PrefixTrie`]: one walk over the values of several groups of the classifier that
//! differ only in the prefix length of one field (the routes of a table: `nw_dst/8`,
//! `nw_dst/9`, .., `nw_dst/32`, each length a group of its own), giving for every length
//! what walking that group's tree would give.
//!
//! # Why
//!
//! A group's tree finds the key's value among the group's sorted values and, if it is
//! not there, the witness: the key's prefix down to the first bit where it differs from
//! the closest value (see `rule_index`). With routes of 25 lengths that is 25 searches
//! of 25 large sorted arrays, about one cache miss each at 10^6 rules. A binary trie over
//! all the prefixes answers all of them in one root-to-leaf walk of the key's path:
//! - the group of length `L` holds the key's prefix iff the path's node at depth `L`
//!   ends a prefix of length `L` (a *hit*, with the first rule that has it);
//! - otherwise the closest value of length `L` shares the most leading bits with the
//!   key: it lies in the sibling subtree (the side the key does not take) of the deepest
//!   path node whose sibling holds a prefix of length `L`. If that node is at depth `d`,
//!   the value and the key first differ at bit `d`, and the witness is the key's first
//!   `d + 1` bits: exactly the tree's witness (the tree's closest value in sorted order
//!   is the one sharing the longest prefix with the key).
//!
//! So every node keeps, per child, the set of lengths below it (a 32-bit mask, one bit
//! per length; the fields indexed here are at most 32 bits wide: IPv4 addresses and L4
//! ports), and a walk records,
//! per length, the depth of the deepest sibling holding it. The trie is path-compressed
//! (a node only where prefixes branch or end), so a walk visits about log2(values)
//! nodes; the top ones are shared by all lookups and stay in the cache. Nodes are 24
//! bytes and in depth-first order, a node's first child right after it (so it needs no
//! index, and a walk going that way often stays in the cache line).
//!
//! Values are top-aligned in a `u32` (bit 31 is the field's first bit), lengths are
//! 1..=32.

/// No node / no rule.
const NONE: u32 = u32::MAX;

/// The top `d` bits set.
#[inline]
fn prefix(d: u32) -> u32 {
    if d == 0 { 0 } else { u32::MAX << (32 - d) }
}

/// A node: the prefix of `depth` bits that all values below share.
#[derive(Debug, Clone, Copy)]
struct TrieNode {
    /// Top-aligned; bits below `depth` are zero.
    value: u32,
    /// Lengths (bit `L - 1` for length `L`) of the prefixes below each child.
    below: [u32; 2],
    /// The child by bit 1 (`NONE`: none); the child by bit 0, if `zero_child`, is the
    /// next node.
    one_child: u32,
    /// First rule (position) of the prefix of length `depth` equal to `value`, if any.
    term: u32,
    depth: u8,
    zero_child: bool,
}

/// A path-compressed binary trie over prefixes of several lengths. See the module
/// documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrefixTrie {
    nodes: Vec<TrieNode>,
    root: Option<u32>,
}

/// What one walk found, per length `L` (index `L - 1`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrieWalk {
    /// Lengths whose prefix of the key is in the trie (bit `L - 1`).
    hits: u32,
    /// For a hit: the first rule with the key's prefix of that length.
    pos: [u32; 32],
    /// For a length without a hit: the length of the witness, one more than the longest
    /// prefix the key shares with a value of that length (0: the trie has none).
    witness: [u8; 32],
}

impl Default for TrieWalk {
    fn default() -> TrieWalk {
        TrieWalk { hits: 0, pos: [NONE; 32], witness: [0; 32] }
    }
}

/// The answer of a walk for one length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrieAnswer {
    /// The first rule whose prefix of this length is the key's.
    Hit(u32),
    /// No value of this length is the key's prefix; the key's first this many bits
    /// differ from every one (0: there is none).
    Witness(u32),
}

impl TrieWalk {
    /// The answer for the prefixes of length `len` (1..=32).
    #[inline]
    pub fn answer(&self, len: u32) -> TrieAnswer {
        let i = len as usize - 1;
        if self.hits >> i & 1 != 0 {
            TrieAnswer::Hit(self.pos[i])
        } else {
            TrieAnswer::Witness(u32::from(self.witness[i]))
        }
    }

    /// Records depth `d` as the witness of every length in `lens` (deeper calls come
    /// later in a walk and overwrite).
    #[inline]
    fn set(&mut self, mut lens: u32, d: u32) {
        while lens != 0 {
            self.witness[lens.trailing_zeros() as usize] = d as u8;
            lens &= lens - 1;
        }
    }
}

impl PrefixTrie {
    /// A trie over `items`: (top-aligned value with zeros below its length, length
    /// 1..=32, position of a rule). Several rules with one value and length keep the
    /// lowest position.
    pub fn new(mut items: Vec<(u32, u8, u32)>) -> PrefixTrie {
        debug_assert!(items.iter().all(|&(v, l, _)| (1..=32).contains(&l) && v & !prefix(l.into()) == 0));
        items.sort_unstable();
        items.dedup_by_key(|i| (i.0, i.1));
        let mut t = PrefixTrie { nodes: Vec::with_capacity(items.len() * 2), root: None };
        if !items.is_empty() {
            t.root = Some(t.build(&items));
        }
        t
    }

    /// Heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<TrieNode>()
    }

    /// The subtree of `items` (sorted, distinct, non-empty, sharing the bits above
    /// their parent's depth + 1); returns its node.
    fn build(&mut self, items: &[(u32, u8, u32)]) -> u32 {
        let (first, last) = (items[0], items[items.len() - 1]);
        let shortest = items.iter().map(|i| u32::from(i.1)).min().expect("non-empty");
        let depth = shortest.min((first.0 ^ last.0).leading_zeros());
        // A prefix of length `depth` sorts first: its value has zeros below `depth` and
        // it is the shortest of that value.
        let (term, rest) = if u32::from(first.1) == depth { (first.2, &items[1..]) } else { (NONE, items) };
        let at = self.nodes.len() as u32;
        self.nodes.push(TrieNode {
            value: first.0 & prefix(depth),
            below: [0; 2],
            one_child: NONE,
            term,
            depth: depth as u8,
            zero_child: false,
        });
        if rest.is_empty() {
            return at;
        }
        // Longer prefixes than `depth` remain, so `depth` < 32; split by bit `depth`.
        // The zero side is built first, so that it is the next node.
        let split = rest.partition_point(|i| (i.0 << depth) >> 31 == 0);
        for (b, side) in [&rest[..split], &rest[split..]].into_iter().enumerate() {
            if side.is_empty() {
                continue;
            }
            let lens = side.iter().fold(0u32, |m, i| m | 1 << (i.1 - 1));
            let c = self.build(side);
            let n = &mut self.nodes[at as usize];
            n.below[b] = lens;
            if b == 0 {
                debug_assert_eq!(c, at + 1);
                n.zero_child = true;
            } else {
                n.one_child = c;
            }
        }
        at
    }

    /// Walks the path of `key` (top-aligned) into `out`.
    pub fn walk(&self, key: u32, out: &mut TrieWalk) {
        out.hits = 0;
        out.witness = [0; 32];
        let Some(mut at) = self.root else { return };
        loop {
            let n = &self.nodes[at as usize];
            let depth = u32::from(n.depth);
            let diff = (key ^ n.value) & prefix(depth);
            if diff != 0 {
                // The key leaves the path above this node, at bit `e` (the bits above
                // agree): every prefix below first differs from the key there.
                let e = diff.leading_zeros();
                let term = if n.term == NONE { 0 } else { 1 << (depth - 1) };
                out.set(n.below[0] | n.below[1] | term, e + 1);
                return;
            }
            if n.term != NONE {
                out.hits |= 1 << (depth - 1);
                out.pos[depth as usize - 1] = n.term;
            }
            if depth == 32 {
                return;
            }
            let b = ((key << depth) >> 31) as usize;
            out.set(n.below[1 - b], depth + 1);
            at = match b {
                0 if n.zero_child => at + 1,
                1 if n.one_child != NONE => n.one_child,
                _ => return,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::SplitMix;

    /// The walk's answer for every length equals a search of all values of that length:
    /// the key's prefix present (with its first rule), else one more than the longest
    /// prefix shared with any value of that length.
    #[test]
    fn walk_equals_search_of_every_length() {
        let mut r = SplitMix(8);
        for case in 0..300 {
            let n = 1 + r.below(if case % 2 == 0 { 40 } else { 2000 }) as usize;
            // Values clustered under a few prefixes so that lengths share paths.
            let top = (r.below(4) as u32) << 28;
            let items: Vec<(u32, u8, u32)> = (0..n)
                .map(|i| {
                    let len = if r.chance(10) { 1 + r.below(32) as u8 } else { 8 + r.below(25) as u8 };
                    let v = (top | (r.next_u64() as u32) >> 4 >> r.below(8) << r.below(8)) & prefix(len.into());
                    (v, len, r.below(10_000) as u32 + i as u32)
                })
                .collect();
            let trie = PrefixTrie::new(items.clone());
            let mut walk = TrieWalk::default();
            for _ in 0..50 {
                let key = if r.chance(50) {
                    let (v, l, _) = items[r.index(items.len())];
                    let flip = if r.chance(30) { 1 << r.below(32) } else { 0 };
                    (v | (r.next_u64() as u32 & !prefix(l.into()))) ^ flip
                } else {
                    top | (r.next_u64() as u32) >> 4
                };
                trie.walk(key, &mut walk);
                for len in 1..=32u32 {
                    let of_len = items.iter().filter(|i| u32::from(i.1) == len);
                    let hit = of_len.clone().filter(|i| i.0 == key & prefix(len)).map(|i| i.2).min();
                    let want = match hit {
                        Some(p) => TrieAnswer::Hit(p),
                        None => TrieAnswer::Witness(of_len.map(|i| (i.0 ^ key).leading_zeros() + 1).max().unwrap_or(0)),
                    };
                    assert_eq!(walk.answer(len), want, "case {case}, key {key:#x}, length {len}");
                }
            }
        }
    }
}
