//! Match fields as bit ranges of a [`FlowKey`], and the *witness* of a failed match.
//!
//! # Design
//!
//! A rule's match compiles to one key/mask pair (so "does rule R match key K" is eight
//! ANDs and compares) plus a short list of [`FieldMatch`]es, one per matched field. The
//! list is only used when a rule fails to match: the translator then needs a *witness*,
//! a set of key bits that by themselves prove the rule cannot match, so that it can add
//! just those bits to the megaflow mask (every packet that agrees with this one on the
//! witness bits also fails the rule).
//!
//! A field that the rule matches on and the packet differs in yields one witness:
//! - for *prefix* fields (IPv4/IPv6 addresses, L4 ports), the bits from the field's most
//!   significant bit down to and including the most significant differing bit. That is
//!   what OVS's prefix tries (and its ports trie) achieve: the mask stays a prefix, so
//!   many packets produce the same few masks, and it is as short as a prefix can be.
//! - for every other field, the rule's whole mask of that field (as OVS's staged lookup
//!   un-wildcards whole stages). These fields are categorical (in_port, dl_type,
//!   nw_proto, VLAN, fragment bits) or rarely matched with masks (MACs, TOS, TCP flags).

use crate::key::{FlowKey, Mask};
use ferrovs_config::{MatchSlot, SlotStorage};

/// One matchable field of the key: `ferrovs-config`'s [`MatchSlot`], the storage
/// identity its field table uses, so the field list exists once. Its width, prefix and
/// categorical properties come from there; this module adds only where each slot lives in
/// a [`FlowKey`] (the private `loc`), through [`SlotStorage`], which gives `Field::get`, `put` and
/// `mask_of`.
pub use ferrovs_config::MatchSlot as Field;

/// Where a field lives: one bit range of one word, a 128-bit address over two words, or
/// nowhere (the neighbour-discovery slots: [`MatchSlot::in_flow_key`]; they read as zero
/// and writing them changes no key bit).
#[derive(Clone, Copy)]
enum Loc {
    Bits { word: usize, shift: u32, width: u32 },
    Wide { hi: usize, lo: usize },
    Nowhere,
}

/// The key location of each slot: the flow key's layout (see [`FlowKey`]).
const fn loc(slot: MatchSlot) -> Loc {
    use MatchSlot::*;
    const fn b(word: usize, shift: u32, slot: MatchSlot) -> Loc {
        Loc::Bits { word, shift, width: slot.width() }
    }
    match slot {
        InPort => b(0, 0, slot),
        NwFrag => b(0, 16, slot),
        NwTtl => b(0, 24, slot),
        DlType => b(0, 32, slot),
        VlanTci => b(0, 48, slot),
        DlDst => b(1, 0, slot),
        DlSrc => b(2, 0, slot),
        NwTos => b(2, 48, slot),
        NwProto => b(2, 56, slot),
        TpSrc => b(3, 0, slot),
        TpDst => b(3, 16, slot),
        TcpFlags => b(3, 52, slot),
        Ipv6Label => b(3, 32, slot),
        ArpSha => b(4, 0, slot),
        NwSrc => b(5, 0, slot),
        MplsLse => b(5, 32, slot),
        ArpTha => b(6, 0, slot),
        NwDst => b(7, 0, slot),
        Ipv6Src => Loc::Wide { hi: 4, lo: 5 },
        Ipv6Dst => Loc::Wide { hi: 6, lo: 7 },
        NdTarget | NdSll | NdTll | NdReserved | NdOptionsType => Loc::Nowhere,
    }
}

/// Where the bits of `field` in one 64-bit half live in a [`FlowKey`]: the key word and
/// the shift of the field's (or the half's) lowest bit in it. `upper` selects the upper
/// half of a 128-bit address (ignored for fields of at most 64 bits). `None` for the
/// fields that are not in the key.
pub(crate) fn word_of(field: Field, upper: bool) -> Option<(usize, u32)> {
    match loc(field) {
        Loc::Bits { word, shift, .. } => Some((word, shift)),
        Loc::Wide { hi, lo } => Some((if upper { hi } else { lo }, 0)),
        Loc::Nowhere => None,
    }
}

/// The key words of `field` and the bits `bits` (field coordinates) take in each: one
/// word for a field of at most 64 bits (the second pair is `(0, 0)`), two for an IPv6
/// address, none for a field outside the key.
#[inline]
pub(crate) fn word_bits(field: Field, bits: u128) -> [(usize, u64); 2] {
    match loc(field) {
        Loc::Bits { word, shift, width } => [(word, (bits as u64 & ((1u64 << width) - 1)) << shift), (0, 0)],
        Loc::Wide { hi, lo } => [(hi, (bits >> 64) as u64), (lo, bits as u64)],
        Loc::Nowhere => [(0, 0), (0, 0)],
    }
}

impl SlotStorage for FlowKey {
    fn zero() -> Self {
        FlowKey::ZERO
    }

    #[inline]
    fn get_slot(&self, slot: MatchSlot) -> u128 {
        match loc(slot) {
            Loc::Bits { word, shift, width } => ((self.w[word] >> shift) & ((1u64 << width) - 1)) as u128,
            Loc::Wide { hi, lo } => ((self.w[hi] as u128) << 64) | self.w[lo] as u128,
            Loc::Nowhere => 0,
        }
    }

    #[inline]
    fn put_slot(&mut self, slot: MatchSlot, value: u128) {
        match loc(slot) {
            Loc::Bits { word, shift, width } => {
                let m = ((1u64 << width) - 1) << shift;
                self.w[word] = (self.w[word] & !m) | (((value as u64) << shift) & m);
            }
            Loc::Wide { hi, lo } => {
                self.w[hi] = (value >> 64) as u64;
                self.w[lo] = value as u64;
            }
            Loc::Nowhere => {}
        }
    }
}

/// One field of a rule's match: the packet's field, under `mask`, must equal `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMatch {
    pub field: Field,
    pub value: u128,
    pub mask: u128,
}

impl FieldMatch {
    /// If `key` fails this field match, the bits of the field (as a field value) that
    /// prove it: any key equal to `key` on those bits fails too. `None` if `key` passes.
    #[inline]
    pub fn witness(&self, key: &FlowKey) -> Option<u128> {
        let diff = (self.field.get(key) ^ self.value) & self.mask;
        (diff != 0).then(|| witness_of(self.field, diff, self.mask))
    }
}

/// [`FieldMatch::witness`] of the match of `field` in the compiled rule `value`/`mask`,
/// read from the key words: the field's differing bits found without building the
/// match's 128-bit value and mask (the greedy witness choice asks it of every field of
/// every rule it is given).
#[inline]
pub(crate) fn witness_in(field: Field, key: &FlowKey, value: &FlowKey, mask: &Mask) -> Option<u128> {
    let (diff, fmask) = match loc(field) {
        Loc::Bits { word, shift, width } => {
            let ones = (1u64 << width) - 1;
            let d = ((key.w[word] ^ value.w[word]) & mask.w[word]) >> shift & ones;
            (u128::from(d), u128::from(mask.w[word] >> shift & ones))
        }
        Loc::Wide { hi, lo } => {
            let d = |i: usize| u128::from((key.w[i] ^ value.w[i]) & mask.w[i]);
            (d(hi) << 64 | d(lo), u128::from(mask.w[hi]) << 64 | u128::from(mask.w[lo]))
        }
        Loc::Nowhere => return None,
    };
    (diff != 0).then(|| witness_of(field, diff, fmask))
}

/// The witness of a match of `field` under `mask` that a key fails in the bits `diff`
/// (field coordinates, not zero): for a prefix field the prefix down to the highest
/// differing bit (any key sharing it fails too), else the whole mask.
#[inline]
pub(crate) fn witness_of(field: Field, diff: u128, mask: u128) -> u128 {
    debug_assert!(diff != 0, "a witness is of a difference");
    if field.is_prefix() {
        let top = 127 - diff.leading_zeros();
        field.all_ones() & !((1u128 << top) - 1)
    } else {
        mask
    }
}

/// The key fields a compiled rule matches. Its field matches are its key/mask pair read
/// field by field: normalisation keeps the fields that share key words apart (IPv4, IPv6,
/// ARP and MPLS fields need different `dl_type`s), so the pair and the set say the same as
/// a list of [`FieldMatch`]es, without the heap allocation per rule (a million rules are
/// compiled for each change of a large rule set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldSet(u32);

impl FieldSet {
    /// The order [`FieldSet::matches`] lists fields in: the order a match is compiled
    /// in (`tables::for_each_field_match`), which the translator's choice between equally
    /// cheap witnesses follows.
    pub const ORDER: [Field; 20] = {
        use Field::*;
        [
            InPort, DlType, VlanTci, DlSrc, DlDst, NwProto, NwSrc, NwDst, Ipv6Src, Ipv6Dst, Ipv6Label, NwTos, NwTtl,
            NwFrag, TpSrc, TpDst, TcpFlags, ArpSha, ArpTha, MplsLse,
        ]
    };

    /// Each slot's bit: its position in [`FieldSet::ORDER`] (slots outside the key have
    /// none).
    const BIT: [u8; Field::ALL.len()] = {
        let mut bit = [u8::MAX; Field::ALL.len()];
        let mut i = 0;
        while i < FieldSet::ORDER.len() {
            bit[FieldSet::ORDER[i] as usize] = i as u8;
            i += 1;
        }
        bit
    };

    /// Adds a key field (one of [`FieldSet::ORDER`]).
    pub fn insert(&mut self, f: Field) {
        let bit = Self::BIT[f as usize];
        debug_assert!(bit != u8::MAX, "{f:?} is not a key field");
        self.0 |= 1 << bit;
    }

    /// The fields, in [`FieldSet::ORDER`].
    #[inline]
    pub fn fields(self) -> impl Iterator<Item = Field> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let field = Self::ORDER[bits.trailing_zeros() as usize];
            bits &= bits - 1;
            Some(field)
        })
    }

    /// The field matches of the rule compiled to `value`/`mask` with these fields, in
    /// [`FieldSet::ORDER`].
    #[inline]
    pub fn matches<'a>(self, value: &'a FlowKey, mask: &'a Mask) -> impl Iterator<Item = FieldMatch> + 'a {
        self.fields().map(|field| FieldMatch { field, value: field.get(value), mask: field.get(mask) })
    }
}

/// Writes a field match into a key/mask pair (the compiled form of a rule): the mask
/// gains the match's mask bits, the value takes the match's value under them.
///
/// In place on the key's words, the field's location looked up once (four reads and
/// writes through the slot table were a tenth of compiling a million rules).
pub fn add_to(value: &mut FlowKey, mask: &mut Mask, fm: &FieldMatch) {
    match loc(fm.field) {
        Loc::Bits { word, shift, width } => {
            let m = (fm.mask as u64 & ((1u64 << width) - 1)) << shift;
            let v = (fm.value as u64) << shift & m;
            mask.w[word] |= m;
            value.w[word] = (value.w[word] & !m) | v;
        }
        Loc::Wide { hi, lo } => {
            for (word, shift) in [(hi, 64), (lo, 0)] {
                let m = (fm.mask >> shift) as u64;
                let v = (fm.value >> shift) as u64 & m;
                mask.w[word] |= m;
                value.w[word] = (value.w[word] & !m) | v;
            }
        }
        Loc::Nowhere => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `witness_in` read from the key words is the witness of the field's match built
    /// through the slot table, for every field of the key, over random keys, values and
    /// masks (sparse ones too, so that some fields do not differ).
    #[test]
    fn witness_in_is_the_field_match_s_witness() {
        let mut r = crate::testpkt::SplitMix(41);
        for _ in 0..3000 {
            let word = |r: &mut crate::testpkt::SplitMix| match r.below(3) {
                0 => r.next_u64(),
                1 => r.next_u64() & r.next_u64() & r.next_u64(),
                _ => 0,
            };
            let key = FlowKey { w: std::array::from_fn(|_| word(&mut r)) };
            let mask = FlowKey { w: std::array::from_fn(|_| word(&mut r)) };
            let mut value = FlowKey { w: std::array::from_fn(|_| word(&mut r)) }.masked(&mask);
            if r.chance(50) {
                value = key.masked(&mask);
                value.w[r.index(crate::key::KEY_WORDS)] ^= 1 << r.below(64);
                value = value.masked(&mask);
            }
            for field in FieldSet::ORDER {
                let fm = FieldMatch { field, value: field.get(&value), mask: field.get(&mask) };
                assert_eq!(witness_in(field, &key, &value, &mask), fm.witness(&key), "{field:?}");
            }
        }
    }

    /// `add_to` writes what reading and writing the field through the slot table
    /// writes, for every field, over keys and masks already holding other bits.
    #[test]
    fn add_to_is_the_slot_tables_read_modify_write() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for field in MatchSlot::ALL {
            for _ in 0..64 {
                let mut value = FlowKey::ZERO;
                let mut mask = Mask::ZERO;
                for w in 0..value.w.len() {
                    value.w[w] = next();
                    mask.w[w] = next();
                }
                let wide = |a: u64, b: u64| u128::from(a) << 64 | u128::from(b);
                let fm = FieldMatch { field, value: wide(next(), next()), mask: wide(next(), next()) };
                let (mut v2, mut m2) = (value, mask);
                let (old_v, old_m) = (field.get(&v2), field.get(&m2));
                field.put(&mut m2, old_m | fm.mask);
                field.put(&mut v2, (old_v & !fm.mask) | (fm.value & fm.mask));
                add_to(&mut value, &mut mask, &fm);
                assert_eq!((value, mask), (v2, m2), "{field:?}");
            }
        }
    }

    #[test]
    fn prefix_witness_stops_at_first_difference() {
        // Rule nw_dst=10.0.0.0/8, packet 192.168.1.1: the very first bit differs.
        let fm = FieldMatch { field: Field::NwDst, value: 0x0a00_0000, mask: 0xff00_0000 };
        let mut k = FlowKey::ZERO;
        k.set_nw_dst_u32(0xc0a8_0101);
        assert_eq!(fm.witness(&k), Some(0x8000_0000));
        // Packet 11.0.0.1 (0x0b): differs from 0x0a only in bit 24.
        k.set_nw_dst_u32(0x0b00_0001);
        assert_eq!(fm.witness(&k), Some(0xff00_0000));
        k.set_nw_dst_u32(0x0a01_0203);
        assert_eq!(fm.witness(&k), None);
    }

    #[test]
    fn categorical_witness_is_the_rule_mask() {
        let fm = FieldMatch { field: Field::NwProto, value: 6, mask: 0xff };
        let mut k = FlowKey::ZERO;
        k.set_nw_proto(17);
        assert_eq!(fm.witness(&k), Some(0xff));
        assert_eq!(Field::NwProto.mask_of::<Mask>(0xff).nw_proto(), 0xff);
    }

    #[test]
    fn slots_do_not_overlap_in_the_key() {
        // IPv6 addresses share their words with the IPv4/ARP slots (a packet has one or
        // the other); every other pair of slots is disjoint.
        let mut seen = Mask::ZERO;
        for slot in Field::ALL {
            let m: Mask = slot.mask_of(slot.all_ones());
            if !slot.in_flow_key() {
                assert!(m.is_zero(), "{slot:?} has no key bits");
                continue;
            }
            assert_eq!(slot.get(&m), slot.all_ones(), "{slot:?}");
            if !matches!(slot, Field::Ipv6Src | Field::Ipv6Dst) {
                assert!(m.masked(&seen).is_zero(), "{slot:?} overlaps another slot");
                seen = seen.union(&m);
            }
        }
    }

    #[test]
    fn wide_fields_round_trip() {
        let mut k = FlowKey::ZERO;
        Field::Ipv6Dst.put(&mut k, 0x2001_0db8_0000_0000_0000_0000_0000_0001);
        assert_eq!(k.ipv6_dst_u128(), 0x2001_0db8_0000_0000_0000_0000_0000_0001);
        assert_eq!(Field::Ipv6Dst.get(&k), k.ipv6_dst_u128());
        Field::TpDst.put(&mut k, 443);
        assert_eq!(k.tp_dst(), 443);
        assert_eq!(Field::TpDst.get(&k), 443);
    }
}
