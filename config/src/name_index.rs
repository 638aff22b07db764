//! A fixed set of names looked up in one hash probe or a few.
//!
//! # Why
//!
//! Every field of every rule line is a name to look up (`priority`, `tcp`, `nw_dst`,
//! `output`...). Searching the field table in order compared each key with up to a
//! hundred names and aliases: a fifth of the instructions of parsing a million-line
//! `add-flows`. The tables themselves stay the one home of the names (the field table,
//! the shorthands, the action names); an index is built from a table once, on first use,
//! and answers what the in-order search answered: for a name given twice, the first
//! entry.
//!
//! The index is open addressing over a power-of-two array at most a quarter full, keyed
//! by a hash of the name's length and end bytes (ASCII-lowercased for a case-insensitive
//! index), probed linearly; a slot holds the name, so a hit is confirmed by comparing it.

/// A read-only map from names to values of `T`; see the module documentation.
#[derive(Debug)]
pub(crate) struct NameIndex<T: Copy> {
    slots: Box<[Option<(&'static str, T)>]>,
    ignore_case: bool,
}

impl<T: Copy> NameIndex<T> {
    /// An index of `entries`, in order: a name already present keeps its first value.
    /// With `ignore_case`, names are compared as ASCII without case.
    pub(crate) fn new(entries: impl IntoIterator<Item = (&'static str, T)>, ignore_case: bool) -> Self {
        let entries: Vec<_> = entries.into_iter().collect();
        let len = (entries.len() * 4).next_power_of_two().max(16);
        let mut index = NameIndex { slots: vec![None; len].into_boxed_slice(), ignore_case };
        for (name, value) in entries {
            let at = index.probe(name);
            if index.slots[at].is_none() {
                index.slots[at] = Some((name, value));
            }
        }
        index
    }

    /// The value of `name`, if the index has it.
    pub(crate) fn get(&self, name: &str) -> Option<T> {
        self.entry(name).map(|(_, v)| v)
    }

    /// The name as the index holds it (a `'static` string equal to `name`, or equal
    /// without case) and its value.
    pub(crate) fn entry(&self, name: &str) -> Option<(&'static str, T)> {
        self.slots[self.probe(name)]
    }

    /// The slot holding `name`, or the empty slot where it would go.
    fn probe(&self, name: &str) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.hash(name) as usize & mask;
        loop {
            match self.slots[at] {
                Some((n, _)) if !self.same(n, name) => at = (at + 1) & mask,
                _ => return at,
            }
        }
    }

    fn same(&self, a: &str, b: &str) -> bool {
        if self.ignore_case { a.eq_ignore_ascii_case(b) } else { a == b }
    }

    /// A hash of the length and the first two and last two bytes (folded to lower case
    /// for a case-insensitive index): the names of a table differ there, and a whole-name
    /// hash cost more than the rest of a lookup. Names sharing those bytes share a
    /// probe sequence, which the comparison sorts out.
    fn hash(&self, name: &str) -> u64 {
        let b = name.as_bytes();
        let fold = if self.ignore_case { 0x20 } else { 0 };
        let at = |i: usize| {
            let c = b.get(i).copied().unwrap_or(0);
            u64::from(if c.is_ascii_uppercase() { c | fold } else { c })
        };
        let n = b.len();
        let word = n as u64 | at(0) << 8 | at(1) << 16 | at(n.wrapping_sub(2)) << 24 | at(n.wrapping_sub(1)) << 32;
        let h = word.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 29)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 6] = ["tcp", "tcp6", "nw_dst", "ip", "ipv6", "tcp"];

    /// The index answers what a search of the list in order answers, for every name in
    /// it and for names that are not.
    #[test]
    fn answers_as_a_search_in_order() {
        let index = NameIndex::new(NAMES.iter().copied().zip(0..), false);
        for probe in NAMES.iter().copied().chain(["", "t", "TCP", "nw_ds", "nw_dstx", "udp"]) {
            assert_eq!(index.get(probe), NAMES.iter().position(|n| *n == probe), "{probe}");
        }
        assert_eq!(index.get("tcp"), Some(0), "a name given twice keeps its first value");
    }

    #[test]
    fn ignores_case_when_asked() {
        let index = NameIndex::new(NAMES.iter().copied().zip(0..), true);
        for probe in ["TCP", "Nw_Dst", "IPv6", "tcp6"] {
            assert_eq!(index.get(probe), NAMES.iter().position(|n| n.eq_ignore_ascii_case(probe)), "{probe}");
        }
        assert_eq!(index.get("udp"), None);
    }

    /// Full tables (more names than the smallest array) still answer every name: the
    /// probe sequence goes round.
    #[test]
    fn many_names_all_found() {
        let names: Vec<&'static str> = (0..500).map(|i| &*Box::leak(format!("name{i}").into_boxed_str())).collect();
        let index = NameIndex::new(names.iter().copied().zip(0..), false);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(index.get(n), Some(i));
        }
        assert_eq!(index.get("name500"), None);
    }
}
