//! The translator: walks a flow key through the rule tables, executing OpenFlow actions
//! into datapath actions while recording every key bit the outcome depended on.
//!
//! # Tracking dependencies through rewrites
//!
//! Actions rewrite the packet (and later lookups see the rewritten fields), so the
//! translator keeps a *current key* beside the original one and knows, for every bit
//! of the current key, where it came from ([`KeyState`]):
//! - an original packet bit (untouched, the common case),
//! - a constant written by an action (`written`): reading it depends on nothing new,
//!   because which actions ran is itself already decided by bits in the mask,
//! - a moved original bit: VLAN tags shift between the two tag slots on push/pop, so
//!   each slot remembers which original slot it came from,
//! - a derived value: after `dec_ttl` the TTL is the original minus one, so reading
//!   any of it depends on the whole original TTL,
//! - for IP fragments, the L4 ports read as zero (OVS's frag handling "normal"): reading
//!   them depends on the fragment bit, not on the ports.
//!
//! Every read goes through [`KeyState::orig_bits`], which maps current-key bits to the
//! original-key bits they depend on; those are OR-ed into the megaflow mask.
//!
//! # Lookup with minimal wildcards
//!
//! A table lookup scans the rules in priority order up to the first match (the winner;
//! no lower rule can matter). The mask must make every packet it covers (1) match the
//! winner: all of the winner's match bits, and (2) fail every rule scanned before it.
//! For (2) each failed rule needs one *witness* (see `fields`): a field it matches on
//! where the packet differs, reduced to a prefix for address and port fields. This is
//! the per-rule form of what OVS gets from priority-ordered subtables, staged lookup
//! and prefix tries; since it chooses per rule instead of per subtable it never needs
//! more bits than a subtable-wide proof. Witnesses are chosen greedily:
//! 1. rules with a single possible witness take it (it is unavoidable);
//! 2. every other rule is skipped if one of its witnesses is already in the mask,
//!    otherwise it takes the cheapest one: a categorical field (dl_type, nw_proto,
//!    in_port, VLAN, frag) costs 1, any other field costs its number of new bits. So
//!    "tcp,tp_dst=22" is disproved for a UDP packet by nw_proto, not by port bits.
//!
//! # Neighbour discovery: fields the key does not hold
//!
//! `nd_target`, `nd_sll` and `nd_tll` are not in the flow key. A lookup in a table with
//! rules matching them, of an ICMPv6 neighbour solicitation or advertisement, cannot be
//! decided from the key: without the packet's ND fields the translation ends there with
//! a *slow-path* megaflow (mask: what was read so far plus the ICMPv6 type and code; one
//! action, [`DpAction::Controller`] with [`REASON_SLOW_PATH`] and the whole frame), and
//! the slow path translates each such packet again with its ND fields
//! (`extract::nd_fields`), deciding that table by a linear scan. (An NS or NA in the key
//! of that lookup: an action before it may have written the ICMPv6 type, so such a
//! megaflow may cover packets received as other ICMPv6 messages, which the slow path
//! decides with no ND fields, as OVS decides by its current flow.) Any other packet is
//! looked up as usual: the ND rules' key part (`icmp6`, type 135 or 136) fails for it
//! with a witness like any failed rule, so its megaflow is what it would be if those
//! rules had no ND fields.
//!
//! # Neighbour discovery: writes and reads go through the slow path too
//!
//! A `set_field`/`load`/`move` into an ND field of an ND message (the field's
//! prerequisite, OVS's `is_nd`, holding for the current key), and a `move`/`output:SRC`
//! out of one when the packet was received as an NS/NA with code 0 (the value is OVS's
//! parse of it), end the translation with a slow-path megaflow the same way; without the
//! prerequisite a write or `move` is skipped, as OVS skips it, and costs only the type and
//! code bits. A read must be per packet (the key does not hold the value). A write could
//! in principle be a fast-path datapath action (a whole or masked write needs no value
//! from the packet), but not with OVS's semantics: OVS writes the field into its flow and *commits* it
//! (`commit_set_nd_action`, `commit_set_nd_extensions_action`) only if the flow's value
//! then differs from what its parse of the packet gave, and that parse is not what the
//! datapath edit touches: `nd_options_type` is the type of the first *link-layer*
//! option while `set(nd_ext)` writes the first option's type byte and recomputes the
//! whole ICMPv6 checksum; a repeated option makes the parsed target and addresses zero
//! while the bytes stay. Whether a write changes the packet at all (a bad checksum
//! corrected or left, a byte written or not) so depends on the packet's ND fields. OVS
//! itself sends every packet of such a flow to userspace (`SLOW_ACTION`); so does
//! ferrovs. In the slow path the translator keeps the flow's ND fields beside the key
//! ([`KeyState::nd`], starting as the packet's) and, at every output, emits the changes
//! from what the packet has ([`Ctx::commit_nd`]), in OVS's order.
//!
//! After translation, prerequisite bits are added (dl_type for any L3/L4 bit, nw_proto
//! for any L4 bit) so that megaflows reading shared storage never alias, and in_port.

use std::cell::Cell;
use std::time::Duration;

use ferrovs_config::rules::{Action, GroupKind, PacketField, Registers, Resubmit, SetField, Subfield, SubfieldField};

use super::action_set;
use super::fields::{Field, witness_in, word_bits};
use super::mac::{MacKey, MacLearn, MacTable, is_multicast, is_reserved};
use super::rule_index::Proof;
use super::tables::{CompiledRule, MissMode, N_TABLES, RuleRef, RuleTables};
use super::{TraceStep, Translation, XlateError};
use crate::actions::{
    DpAction, DpActions, PacketInNote, REASON_ACTION, REASON_NO_MATCH, REASON_SLOW_PATH, TPID_OF_LAST_POP,
    TPID_OF_RECEIVED_INNER, TPID_OF_RECEIVED_OUTER, TPID_OF_SECOND_LAST_POP,
};
use crate::extract::NdFields;
use crate::key::{
    FRAG_ANY, FRAG_LATER, FlowKey, Mask, VLAN_PCP_MASK, VLAN_PCP_SHIFT, VLAN_PRESENT, VLAN_VID_MASK, ethertype, ipproto,
};

/// Nesting limit of resubmit/goto_table (OVS: 64).
pub const MAX_DEPTH: usize = 64;
/// Limit on table lookups in one translation (OVS: 4096 resubmits).
pub const MAX_LOOKUPS: usize = 4096;

const VLAN_WORD_BITS: u64 = 0xffff << 48;

/// ICMPv6 neighbour solicitation and advertisement (RFC 4861).
const ND_SOLICIT: u16 = 135;
const ND_ADVERT: u16 = 136;

/// Where each bit of the current key comes from. See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct KeyState {
    pub cur: FlowKey,
    /// Bits of `cur` outside the VLAN TCIs that hold constants written by actions.
    written: Mask,
    /// For each current VLAN slot, the original slot it came from (None: constant).
    vlan_src: [Option<usize>; 2],
    /// Bits of each current VLAN slot that were written by actions.
    vlan_written: [u16; 2],
    /// For each current VLAN slot, its TPID (OVS's flow keeps it apart from the TCI: a
    /// TCI write leaves it).
    vlan_tpid: [Tpid; 2],
    ttl_derived: bool,
    is_frag: bool,
    /// The registers and metadata (zero when the packet enters; a group bucket's
    /// changes are undone with the packet's).
    pub regs: Registers,
    /// The flow's neighbour-discovery fields: the packet's, as written by the actions
    /// since (a group bucket's writes are undone with the packet's). Only the slow path
    /// has them; in a translation without them they stay zero (an ND read or write of an
    /// ND message ends it first).
    pub nd: NdFields,
}

impl KeyState {
    pub fn new(orig: &FlowKey) -> KeyState {
        let mut cur = *orig;
        let is_frag = orig.nw_frag() & FRAG_ANY != 0;
        if is_frag {
            cur.set_tp_src(0);
            cur.set_tp_dst(0);
        }
        KeyState {
            cur,
            written: Mask::ZERO,
            vlan_src: [Some(0), Some(1)],
            vlan_written: [0; 2],
            vlan_tpid: [Tpid::Received(0), Tpid::Received(1)],
            ttl_derived: false,
            is_frag,
            regs: Registers::default(),
            nd: NdFields::default(),
        }
    }

    /// The original-key bits that the current-key bits `bits` depend on.
    pub fn orig_bits(&self, bits: &Mask) -> Mask {
        let mut out = Mask::ZERO;
        for i in 0..8 {
            let mut b = bits.w[i];
            if i < 2 {
                b &= !VLAN_WORD_BITS;
            }
            out.w[i] = b & !self.written.w[i];
        }
        for slot in 0..2 {
            let b = bits.vlan_tci(slot) & !self.vlan_written[slot];
            if let (true, Some(j)) = (b != 0, self.vlan_src[slot]) {
                out.set_vlan_tci(j, out.vlan_tci(j) | b);
            }
        }
        if out.tp_src() != 0 || out.tp_dst() != 0 {
            if self.is_frag {
                out.set_tp_src(0);
                out.set_tp_dst(0);
            }
            out.set_nw_frag(out.nw_frag() | FRAG_ANY);
        }
        if self.ttl_derived && out.nw_ttl() != 0 {
            out.set_nw_ttl(0xff);
        }
        out
    }

    fn write(&mut self, field: Field, value: u128) {
        field.put(&mut self.cur, value);
        let m = field.mask_of(field.all_ones());
        self.written = self.written.union(&m);
        if field == Field::NwTtl {
            self.ttl_derived = false;
        }
    }

    fn write_bits(&mut self, field: Field, bits: u128, value: u128) {
        let old = field.get(&self.cur);
        field.put(&mut self.cur, (old & !bits) | (value & bits));
        self.written = self.written.union(&field.mask_of(bits));
    }

    /// `push_vlan`: the slots move in (the inner one falls out, as OVS's
    /// `flow_push_vlan_uninit`), the new outer tag has `tpid` and `tci`.
    fn push_vlan(&mut self, tpid: u16, tci: u16) {
        self.cur.set_vlan_tci(1, self.cur.vlan_tci(0));
        self.cur.set_vlan_tci(0, tci | VLAN_PRESENT);
        self.vlan_src = [None, self.vlan_src[0]];
        self.vlan_written = [0xffff, self.vlan_written[0]];
        self.vlan_tpid = [Tpid::Set(tpid), self.vlan_tpid[0]];
    }

    /// `strip_vlan` of a present outer tag, as OVS's `flow_pop_vlan`: with a present inner
    /// tag the slots move out and the inner one becomes empty; with an absent one only the
    /// outer slot is emptied, the inner one (which may hold bits a `vlan_tci` write left
    /// before a push) stays. An inner slot whose presence is the packet's is moved either
    /// way: absent, it is all zero, as the emptied slot would be.
    fn pop_vlan(&mut self) {
        let inner_absent_constant =
            self.vlan_written[1] & VLAN_PRESENT != 0 && self.cur.vlan_tci(1) & VLAN_PRESENT == 0;
        if inner_absent_constant {
            self.cur.set_vlan_tci(0, 0);
            self.vlan_src[0] = None;
            self.vlan_written[0] = 0xffff;
            self.vlan_tpid[0] = Tpid::Set(0);
            return;
        }
        // The key holds two tags; a third one, if any, is not represented and the
        // inner slot reads as "no tag" afterwards.
        self.cur.set_vlan_tci(0, self.cur.vlan_tci(1));
        self.cur.set_vlan_tci(1, 0);
        self.vlan_src = [self.vlan_src[1], None];
        self.vlan_written = [self.vlan_written[1], 0xffff];
        self.vlan_tpid = [self.vlan_tpid[1], Tpid::Set(0)];
    }

    /// The VLAN slots as they are now.
    fn vlans(&self) -> VlanSlots {
        VlanSlots {
            tci: [self.cur.vlan_tci(0), self.cur.vlan_tci(1)],
            tpid: self.vlan_tpid,
            src: self.vlan_src,
            written: self.vlan_written,
        }
    }

    /// The key bits on which `cur` may differ from the packet: whatever an action wrote,
    /// moved or derived. (Ports of a fragment, read as 0, are not included.)
    fn rewritten(&self) -> Mask {
        let mut m = self.written;
        if self.vlan_src != [Some(0), Some(1)] || self.vlan_written != [0; 2] {
            m.set_vlan_tci(0, 0xffff);
            m.set_vlan_tci(1, 0xffff);
        }
        if self.ttl_derived {
            m.set_nw_ttl(0xff);
        }
        m
    }

    fn set_outer_vlan_bits(&mut self, bits: u16, value: u16) {
        let t = self.cur.vlan_tci(0);
        self.cur.set_vlan_tci(0, (t & !bits) | (value & bits));
        self.vlan_written[0] |= bits;
    }
}

/// The TPID of a VLAN slot of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tpid {
    /// Given by an action: `push_vlan`, or 0x8100 for a tag a VID, PCP or TCI write made
    /// present in a slot without a TPID. 0: none (an emptied slot).
    Set(u16),
    /// The TPID the packet's tag in this slot of the key had when it was received, which
    /// the key does not hold: the datapath reads it ([`TPID_OF_RECEIVED_OUTER`],
    /// [`TPID_OF_RECEIVED_INNER`]). None if the packet has no tag there (a write that makes
    /// such a slot present gives it 0x8100, as OVS's for a TPID of 0).
    Received(usize),
}

/// The two VLAN slots of a flow at one point: TCIs (with the present bit), TPIDs, and
/// where the TCI bits come from (as [`KeyState`] records it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VlanSlots {
    tci: [u16; 2],
    tpid: [Tpid; 2],
    src: [Option<usize>; 2],
    written: [u16; 2],
}

impl VlanSlots {
    /// The original-key bits that the `bits` of slot `i` depend on.
    fn orig_bits(&self, i: usize, bits: u16) -> Mask {
        let mut m = Mask::ZERO;
        let b = bits & !self.written[i];
        if let (true, Some(j)) = (b != 0, self.src[i]) {
            m.set_vlan_tci(j, b);
        }
        m
    }
}

/// How a tag of the packet compares with one of the flow (OVS's `qtag` compare).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagCompare {
    Same,
    Different,
    /// Same TCI, TPIDs the translator cannot compare (a received one and another): the
    /// datapath compares them.
    TpidUnknown,
}

/// A header field and the datapath action that sets it to a value.
type RestoreField = (Field, fn(u128) -> DpAction);

struct Ctx<'a> {
    tables: &'a RuleTables,
    macs: &'a MacTable,
    now: Duration,
    /// The flow's in_port, as OVS's `flow.in_port`: the packet's, unless a `load`/`move`
    /// wrote it; outputs to it are skipped, `in_port`, `flood` and `normal` use it, a
    /// `move` reads it. (`resubmit(PORT,T)` looks T up with PORT and changes nothing
    /// else, as OVS restores the flow's in_port right after the lookup.)
    in_port: u32,
    /// The port the packet came in on (the key's in_port). A packet-in reports it, also
    /// after a write to in_port (OVS reports the written one): the daemon finds the
    /// packet's bridge by it.
    ingress: u32,
    /// The packet's key as received.
    orig: FlowKey,
    st: KeyState,
    mask: Mask,
    actions: DpActions,
    rules: Vec<RuleRef>,
    /// The cookie of the rule whose actions run (OVS's `ctx->rule_cookie`): what a
    /// packet-in reports, in a `clone`, a group bucket, the action set or from
    /// `output:SRC` too; back to the caller's after a `resubmit` or `goto_table`, the
    /// first rule's once the pipeline ends; `u64::MAX` in a packet-out.
    cookie: u64,
    trace: Vec<TraceStep>,
    learns: Vec<MacLearn>,
    mac_deps: Vec<MacKey>,
    lookups: usize,
    error: Option<XlateError>,
    /// The ND fields of the packet, when the caller has its bytes (the slow path); the
    /// flow's current ones are [`KeyState::nd`].
    nd: Option<NdFields>,
    /// The ND fields as the datapath's copy of the packet has them after the actions
    /// emitted so far (OVS's base flow): [`Ctx::commit_nd`] writes the difference.
    nd_base: NdFields,
    /// A lookup needed ND fields the key does not hold and `nd` was not given: the
    /// translation ends with a slow-path megaflow (see [`translate`]).
    slow_path: bool,
    /// (table, in_port) of that lookup.
    slow_path_at: Option<(u8, u32)>,
    optional: Vec<&'a CompiledRule>,
    /// Which lookup to use: the classifier (normal) or the linear scan (reference).
    lookup: Lookup,
    /// Output of the classifier lookups, reused across lookups and translations (see
    /// [`PROOF_BUFFERS`]); taken out while a lookup fills it. Boxed: a proof is most of a
    /// kilobyte (its family walks), moved whole it cost a copy per lookup.
    proofs: Option<Box<Proofs>>,
    /// The range of `actions` in which `normal` last put back the tags it sent without
    /// (dropped at the end if nothing follows it).
    retag: Option<(usize, usize)>,
    /// The VLAN tags the datapath's packet has after the actions emitted so far: the
    /// flow's slots at the last commit (OVS's base flow). See [`Ctx::commit_vlan`].
    vlan_base: VlanSlots,
    /// [`Translation::rewritten`]: the union of [`KeyState::rewritten`] at every lookup.
    rewritten: Mask,
    /// The action set: every action `write_actions` added since the last `clear_actions`
    /// (see `action_set`), run when the pipeline ends ([`Ctx::run_action_set`]).
    action_set: Vec<Action>,
}

/// How a table lookup finds the winner and the witness bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The per-table classifier (`rule_index`): the normal path.
    Index,
    /// A scan of the table in priority order with a greedy per-rule witness choice:
    /// O(rules) per lookup, kept as the reference the classifier is measured against.
    LinearScan,
}

impl<'a> Ctx<'a> {
    fn read(&mut self, bits: &Mask) {
        let o = self.st.orig_bits(bits);
        self.mask = self.mask.union(&o);
    }

    fn read_field(&mut self, f: Field, bits: u128) {
        self.read(&f.mask_of(bits));
    }

    fn cost(&self, w: &Mask, categorical: bool) -> u32 {
        let o = self.st.orig_bits(w);
        let new: u32 = (0..8).map(|i| (o.w[i] & !self.mask.w[i]).count_ones()).sum();
        if new == 0 {
            0
        } else if categorical {
            1
        } else {
            new
        }
    }

    /// [`Ctx::cost`] of the bits `bits` of field `f`, straight from the key words for
    /// the fields whose original bits are their own unless written: all but the VLAN TCI
    /// (its slots move), the L4 ports (they bring the fragment bits) and the TTL (a
    /// derived one is read whole). The greedy choice of witnesses prices every field of
    /// every rule it is given; a `Mask` built and mapped per field was most of its cost.
    fn field_cost(&self, f: Field, bits: u128) -> u32 {
        if matches!(f, Field::VlanTci | Field::TpSrc | Field::TpDst | Field::NwTtl) {
            return self.cost(&f.mask_of(bits), f.is_categorical());
        }
        let new: u32 =
            word_bits(f, bits).iter().map(|&(i, b)| (b & !self.st.written.w[i] & !self.mask.w[i]).count_ones()).sum();
        match new {
            0 => 0,
            _ if f.is_categorical() => 1,
            n => n,
        }
    }

    /// Looks `table` up with the current key (in_port replaced by `lookup_port`),
    /// recording the mask bits the answer depends on.
    fn lookup(&mut self, table: u8, lookup_port: u32) -> Option<&'a CompiledRule> {
        if self.tables.has_nd_rules(table) && self.nd_message() {
            if self.nd.is_none() {
                self.slow_path = true;
                self.slow_path_at = Some((table, lookup_port));
                return None;
            }
            let nd = self.st.nd;
            return self.lookup_nd(table, lookup_port, &nd);
        }
        match self.lookup {
            Lookup::Index => self.lookup_index(table, lookup_port),
            Lookup::LinearScan => self.lookup_linear(table, lookup_port),
        }
    }

    /// Whether the current key is an ICMPv6 neighbour solicitation or advertisement,
    /// the packets whose ND fields (not in the key) a rule may match; if so, records the
    /// bits that say so (the slow-path megaflow covers only such packets). Any other key
    /// reads nothing here: it is looked up as if the table had no ND rules, whose key
    /// part (`icmp6`, type 135/136) it fails with a witness like any failed rule.
    fn nd_message(&mut self) -> bool {
        let k = &self.st.cur;
        let nd = k.dl_type() == ethertype::IPV6
            && k.nw_proto() == ipproto::ICMPV6
            && matches!(k.tp_src(), ND_SOLICIT | ND_ADVERT);
        if nd {
            for f in [Field::DlType, Field::NwProto, Field::TpSrc, Field::TpDst] {
                self.read_field(f, f.all_ones());
            }
        }
        nd
    }

    /// Whether the prerequisite of the ND field in `slot` holds for the current key (OVS's
    /// `is_nd`, plus the message type for `nd_sll`/`nd_tll`): ICMPv6 in IPv6, code 0, one
    /// of the slot's types. Reads the bits it looks at.
    fn nd_prereq_holds(&mut self, slot: Field) -> bool {
        let types = slot.nd_icmp_types().expect("a neighbour-discovery slot");
        for f in [Field::DlType, Field::NwProto, Field::TpSrc, Field::TpDst] {
            self.read_field(f, f.all_ones());
        }
        let k = &self.st.cur;
        k.dl_type() == ethertype::IPV6
            && k.nw_proto() == ipproto::ICMPV6
            && k.tp_dst() == 0
            && types.contains(&k.tp_src())
    }

    /// Whether the packet is a later fragment (no L4 header); reads the bit that says so.
    fn later_fragment(&mut self) -> bool {
        self.read_field(Field::NwFrag, FRAG_LATER as u128);
        self.st.cur.nw_frag() & FRAG_LATER != 0
    }

    /// Whether the packet as received carries ND fields OVS parses (an NS or NA with code 0,
    /// not a fragment: ferrovs reads a fragment's ports as 0); reads the bits that say so.
    fn packet_has_nd_fields(&mut self) -> bool {
        let mut bits = Mask::ZERO;
        for f in [Field::DlType, Field::NwProto, Field::TpSrc, Field::TpDst] {
            bits = bits.union(&f.mask_of(f.all_ones()));
        }
        bits.set_nw_frag(FRAG_ANY);
        self.mask = self.mask.union(&bits);
        let k = &self.orig;
        k.dl_type() == ethertype::IPV6
            && k.nw_proto() == ipproto::ICMPV6
            && k.nw_frag() & FRAG_ANY == 0
            && k.tp_dst() == 0
            && matches!(k.tp_src(), ND_SOLICIT | ND_ADVERT)
    }

    /// Whether this translation lacks the packet's ND fields; if so it ends here with a
    /// slow-path megaflow (see the module documentation), noted at the last lookup.
    fn lacks_nd_fields(&mut self) -> bool {
        if self.nd.is_some() {
            return false;
        }
        self.slow_path = true;
        self.slow_path_at = Some(self.trace.last().map_or((0, self.in_port), |s| (s.table, s.in_port)));
        true
    }

    /// A write of `value` into the bits `sf` of the ND field `p`: skipped where its
    /// prerequisite does not hold (as OVS skips it); otherwise the flow's field changes,
    /// and the next output commits it ([`Ctx::commit_nd`]).
    fn write_nd(&mut self, p: PacketField, sf: Subfield, value: u128) {
        let slot = p.def().slot;
        if !self.nd_prereq_holds(slot) || self.lacks_nd_fields() {
            return;
        }
        let bits = sf.bits();
        let old = self.st.nd.get(slot);
        self.st.nd.put(slot, (old & !bits) | ((value << sf.ofs) & bits));
    }

    /// Emits the ND rewrites that make the packet carry the flow's ND fields, as OVS's
    /// commit before an output (see [`NdFields::commit_from`]).
    fn commit_nd(&mut self) {
        if self.nd.is_some() {
            self.actions.extend(self.st.nd.commit_from(&self.nd_base));
            self.nd_base = self.st.nd;
        }
    }

    /// [`Ctx::lookup`] of a neighbour-discovery packet whose ND fields are known (the
    /// slow path has its bytes): the first rule in priority order matching the key and
    /// the ND fields. A linear scan (ND rules are few, and such packets come one by one);
    /// the mask is not used (no megaflow comes of it), only the winner's bits are read.
    fn lookup_nd(&mut self, table: u8, lookup_port: u32, nd: &NdFields) -> Option<&'a CompiledRule> {
        let mut key = self.st.cur;
        key.set_in_port(lookup_port);
        let winner =
            self.tables.in_order(table).find(|r| r.pipeline_holds(&self.st.regs) && r.matches(&key) && r.nd_holds(nd));
        if let Some(w) = winner {
            self.read(&w.mask);
        }
        winner
    }

    /// Whether the translation ended early: an error, or a slow-path decision.
    fn stopped(&self) -> bool {
        self.error.is_some() || self.slow_path
    }

    /// [`Ctx::lookup`] through the table's classifier.
    fn lookup_index(&mut self, table: u8, lookup_port: u32) -> Option<&'a CompiledRule> {
        let tables = self.tables;
        let mut key = self.st.cur;
        key.set_in_port(lookup_port);
        let t = table as usize;
        let rules = tables.tables.get(t)?;
        let regs = self.st.regs;
        let mut proofs = self.proofs.take().unwrap_or_default();
        let Proofs { table: proof, added } = &mut *proofs;
        let winner = match tables.deltas[t].as_deref() {
            None => {
                let winner = tables.index[t].lookup(rules, &key, &regs, u32::MAX, proof).map(|w| &rules[w as usize]);
                self.take_proof(proof, rules, winner, &key);
                winner
            }
            // Rules added in place since the version was built (see `Delta`): each index
            // finds its winner among the rules before the other's, the first in lookup
            // order wins, and each proof covers its rules before that winner.
            Some(delta) => {
                let in_delta = delta.index.lookup(&delta.rules, &key, &regs, u32::MAX, added);
                let before_it = in_delta.map_or(u32::MAX, |j| delta.rank[j as usize]);
                let winner = match tables.index[t].lookup(rules, &key, &regs, before_it, proof) {
                    Some(w) => {
                        // The table's rule wins: the added rules after it need no witness.
                        let thr = delta.rank.partition_point(|&r| r <= w) as u32;
                        if (thr as usize) < delta.rules.len() {
                            delta.index.lookup(&delta.rules, &key, &regs, thr, added);
                        }
                        Some(&rules[w as usize])
                    }
                    None => in_delta.map(|j| &delta.rules[j as usize]),
                };
                self.read(&added.bits);
                self.take_proof(proof, rules, winner, &key);
                added.bits = Mask::ZERO;
                self.take_proof(added, &delta.rules, None, &key);
                winner
            }
        };
        self.proofs = Some(proofs);
        winner
    }

    /// Reads what a classifier lookup found: the proof's unavoidable bits, the winner's
    /// mask, then a witness for each choice and each rule left to the caller (positions
    /// in `rules`), each the cheapest given the bits read so far.
    fn take_proof(&mut self, proof: &mut Proof, rules: &[CompiledRule], winner: Option<&CompiledRule>, key: &FlowKey) {
        self.read(&proof.bits);
        if let Some(w) = winner {
            self.read(&w.mask);
        }
        // Groups with two proofs: the one adding fewer bits, given the unavoidable ones.
        for [a, b] in &proof.choices {
            let (bits, leaf) = if self.cost(&b.0, false) < self.cost(&a.0, false) { b } else { a };
            self.read(bits);
            proof.optional.extend(*leaf);
        }
        for &pos in &proof.optional {
            self.cheapest_witness(&rules[pos as usize], key);
        }
    }

    /// Adds to the mask the cheapest witness of the failed rule `r` (nothing if one is
    /// already covered): a categorical field costs 1, any other its number of new bits.
    fn cheapest_witness(&mut self, r: &CompiledRule, key: &FlowKey) {
        let mut best: Option<(u32, Field, u128)> = None;
        for field in r.field_set.fields() {
            let Some(bits) = witness_in(field, key, &r.value, &r.mask) else { continue };
            let c = self.field_cost(field, bits);
            if best.is_none_or(|(bc, _, _)| c < bc) {
                best = Some((c, field, bits));
            }
            if c == 0 {
                break;
            }
        }
        match best {
            Some((c, f, bits)) if c > 0 => self.read_field(f, bits),
            _ => {}
        }
    }

    /// [`Ctx::lookup`] by scanning the table up to the winner, choosing witnesses
    /// greedily (see the module documentation).
    fn lookup_linear(&mut self, table: u8, lookup_port: u32) -> Option<&'a CompiledRule> {
        let tables = self.tables;
        let mut key = self.st.cur;
        key.set_in_port(lookup_port);
        let mut winner = None;
        // Failed rules with a choice of witnesses, decided once the unavoidable bits
        // (winner, single-witness rules) are known. Reused across lookups.
        let mut optional = std::mem::take(&mut self.optional);
        optional.clear();
        for r in tables.in_order(table) {
            // A rule whose registers differ fails for every packet of the megaflow: the
            // registers follow from bits already in the mask.
            if !r.pipeline_holds(&self.st.regs) {
                continue;
            }
            if r.matches(&key) {
                winner = Some(r);
                break;
            }
            let mut found = r.fields().filter_map(|fm| fm.witness(&key).map(|bits| (fm, bits)));
            match (found.next(), found.next()) {
                (Some((fm, bits)), None) => self.read_field(fm.field, bits),
                (Some(_), Some(_)) => optional.push(r),
                // Cannot happen (a failed match differs in some field); the rule's
                // whole mask is a valid proof anyway.
                (None, _) => self.read(&r.mask),
            }
        }
        if let Some(w) = winner {
            self.read(&w.mask);
        }
        for r in &optional {
            self.cheapest_witness(r, &key);
        }
        self.optional = optional;
        winner
    }

    /// Looks up `table` and runs the matched rule's actions.
    fn table(&mut self, table: u8, lookup_port: u32, depth: usize, honor_miss: bool) {
        if self.stopped() {
            return;
        }
        if depth > MAX_DEPTH {
            self.error = Some(XlateError::TooDeep);
            return;
        }
        self.lookups += 1;
        if self.lookups > MAX_LOOKUPS {
            self.error = Some(XlateError::TooManyLookups);
            return;
        }
        self.rewritten = self.rewritten.union(&self.st.rewritten());
        let hit = self.lookup(table, lookup_port);
        if self.slow_path {
            return;
        }
        self.trace.push(TraceStep {
            depth,
            table,
            in_port: lookup_port,
            rule: hit.map(|r| r.rref),
            actions: hit.map(|r| self.tables.rule(r.rref).actions.clone()).unwrap_or_default(),
        });
        let Some(rule) = hit else {
            // A miss in a table reached by goto_table (or table 0) is the bridge's table
            // miss; one after a resubmit just returns, as in OVS.
            if honor_miss && self.tables.miss == MissMode::Controller {
                self.packet_in(u16::MAX, REASON_NO_MATCH, table, u64::MAX);
            }
            return;
        };
        self.rules.push(rule.rref);
        // OVS sets the first rule's cookie for good and saves and restores it around every
        // other (`xlate_recursively`): after the pipeline, the action set sees the first's.
        let caller_cookie = std::mem::replace(&mut self.cookie, self.tables.rule(rule.rref).cookie);
        self.rule_actions(rule, table, depth);
        if depth > 0 {
            self.cookie = caller_cookie;
        }
    }

    /// Runs the actions of `rule`, found in `table`, then its `goto_table`.
    fn rule_actions(&mut self, rule: &'a CompiledRule, table: u8, depth: usize) {
        let mut goto = None;
        for a in &self.tables.rule(rule.rref).actions {
            if self.stopped() {
                return;
            }
            match *a {
                Action::GotoTable(t) => goto = Some(t),
                _ => {
                    if self.action(a, table, depth) == Flow::StopTable {
                        // The rest of this rule, its goto_table included, is skipped;
                        // a resubmitting caller continues.
                        return;
                    }
                }
            }
        }
        if let Some(t) = goto {
            self.table(t, self.in_port, depth + 1, true);
        }
    }

    fn output(&mut self, port: u32) {
        self.output_as(port, DpAction::Output(port));
    }

    /// Emits `send`, an output to `port`, unless `port` is the flow's in_port or no port
    /// of the bridge (so `output(port=IN_PORT,max_len=N)` sends nothing either, as OVS's
    /// `xlate_output_trunc_action`).
    fn output_as(&mut self, port: u32, send: DpAction) {
        if port != self.in_port && self.tables.ports().contains(&port) {
            self.emit_observer(send);
        }
    }

    fn flood(&mut self) {
        for &p in self.tables.ports() {
            if p != self.in_port {
                self.emit_observer(DpAction::Output(p));
            }
        }
    }

    /// A packet-in (`max_len` bytes, `reason`, `table`, `cookie`), preceded by the notes of
    /// what its match reports of the flow as OVS's does: the registers and the metadata
    /// that are not zero, and the in_port if a write changed it.
    fn packet_in(&mut self, max_len: u16, reason: u8, table: u8, cookie: u64) {
        self.commit_vlan();
        self.commit_nd();
        let regs = &self.st.regs;
        let notes = (regs.regs.iter().enumerate())
            .filter(|&(_, &v)| v != 0)
            .map(|(n, &v)| PacketInNote::Reg(n as u8, v))
            .chain((regs.metadata != 0).then_some(PacketInNote::Metadata(regs.metadata)))
            .chain((self.in_port != self.ingress).then_some(PacketInNote::InPort(self.in_port)));
        self.actions.extend(notes.map(DpAction::PacketInNote));
        self.actions.push(DpAction::Controller { in_port: self.ingress, max_len, reason, table, cookie });
    }

    /// Emits an action that sends the packet somewhere (an output, a packet-in): the
    /// VLAN writes waiting for it are committed first.
    fn emit_observer(&mut self, a: DpAction) {
        self.commit_vlan();
        self.commit_nd();
        self.actions.push(a);
    }

    /// Commits the flow's VLAN slots to the packet, as OVS's `commit_vlan_action` does
    /// before each output: the tags of the packet ([`Ctx::vlan_base`]) and of the flow
    /// are counted from the outside up to the first absent one, the innermost ones that are
    /// the same on both sides (TPID and TCI) are kept, the packet's others are popped and
    /// the flow's others pushed, each with its own TPID. Only the final state counts: a
    /// tag set to another value and back (`mod_vlan_vid:20,mod_vlan_vid:10` on VID 10), or
    /// stripped and pushed back equal, is left as it is, DEI included; a tag rewritten
    /// loses its DEI bit, as OVS's pop and push clear it.
    ///
    /// One tag replaced by one of the same TPID is a VID/PCP rewrite (`SetVlanVid`,
    /// `SetVlanPcp`: the same frame as a pop and a push); by one whose TPID may differ, a
    /// `ReplaceVlan`, which the datapath leaves undone if the tag is equal already (the
    /// key does not hold the received tags' TPIDs, so the datapath compares); any other
    /// count whose innermost difference is such a pair of the same TCI, a `CommitVlans`,
    /// which has the datapath compare the pairs and pop and push what differs. Pushed
    /// tags whose TPID is a received tag's take it from the datapath
    /// ([`TPID_OF_RECEIVED_OUTER`]). Called before every action that sends the packet;
    /// the bits the comparison and the pushed TCIs depend on join the mask.
    fn commit_vlan(&mut self) {
        let flow = self.st.vlans();
        self.commit_vlan_to(flow);
    }

    /// [`Ctx::commit_vlan`] of `flow`'s slots (the flow's, or the ones a `clone` found).
    fn commit_vlan_to(&mut self, flow: VlanSlots) {
        let base = self.vlan_base;
        if base == flow {
            return;
        }
        let (mut b, mut f) = (self.count_tags(&base), self.count_tags(&flow));
        let mut last = TagCompare::Different;
        while b > 0 && f > 0 {
            last = self.compare_tags(&base, b - 1, &flow, f - 1);
            if last != TagCompare::Same {
                break;
            }
            b -= 1;
            f -= 1;
        }
        if (b, f) == (1, 1) {
            let (old, new) = (base.tci[0], flow.tci[0]);
            if base.tpid[0] == flow.tpid[0] {
                if (old ^ new) & VLAN_VID_MASK != 0 {
                    self.read_slot(&flow, 0, VLAN_VID_MASK);
                    self.actions.push(DpAction::SetVlanVid(new & VLAN_VID_MASK));
                }
                if (old ^ new) & VLAN_PCP_MASK != 0 {
                    self.read_slot(&flow, 0, VLAN_PCP_MASK);
                    self.actions.push(DpAction::SetVlanPcp(((new & VLAN_PCP_MASK) >> VLAN_PCP_SHIFT) as u8));
                }
            } else {
                self.read_slot(&flow, 0, VLAN_VID_MASK | VLAN_PCP_MASK);
                let tpid = tpid_action_value(flow.tpid[0]);
                self.actions.push(DpAction::ReplaceVlan { tpid, tci: new });
            }
        } else if last == TagCompare::TpidUnknown {
            // A pair of the same VID and PCP whose TPIDs only the datapath knows (a
            // received tag's against another's): it compares them, and the pairs outside
            // it, whose bits are read here as the comparison would read them.
            if b == 2 && f == 2 {
                self.compare_tags(&base, 0, &flow, 0);
            }
            let mut tags = [(0, 0); 2];
            for (k, tag) in tags.iter_mut().enumerate().take(f) {
                self.read_slot(&flow, k, VLAN_VID_MASK | VLAN_PCP_MASK);
                *tag = (tpid_action_value(flow.tpid[k]), flow.tci[k]);
            }
            self.actions.push(DpAction::CommitVlans { pop: b as u8, push: f as u8, tags });
        } else {
            self.actions.extend(std::iter::repeat_n(DpAction::PopVlan, b));
            for k in (0..f).rev() {
                self.read_slot(&flow, k, VLAN_VID_MASK | VLAN_PCP_MASK);
                let tpid = tpid_action_value(flow.tpid[k]);
                self.actions.push(DpAction::PushVlan { tpid, tci: flow.tci[k] });
            }
        }
        self.vlan_base = flow;
    }

    /// Reads the `bits` of slot `i` of `slots` (the original bits they come from).
    fn read_slot(&mut self, slots: &VlanSlots, i: usize, bits: u16) {
        let m = slots.orig_bits(i, bits);
        self.mask = self.mask.union(&m);
    }

    /// The number of tags of `slots` from the outside up to the first absent one (OVS's
    /// `flow_count_vlan_headers`), reading the present bits it looks at.
    fn count_tags(&mut self, slots: &VlanSlots) -> usize {
        for i in 0..2 {
            self.read_slot(slots, i, VLAN_PRESENT);
            if slots.tci[i] & VLAN_PRESENT == 0 {
                return i;
            }
        }
        2
    }

    /// Compares the packet's tag `i` (of `base`) with the flow's tag `k`: the TCI bits
    /// that may differ are read (those both took unchanged from the same packet bits
    /// cannot).
    fn compare_tags(&mut self, base: &VlanSlots, i: usize, flow: &VlanSlots, k: usize) -> TagCompare {
        let same_source = base.src[i].is_some() && base.src[i] == flow.src[k];
        let may_differ = if same_source { base.written[i] | flow.written[k] } else { 0xffff };
        self.read_slot(base, i, may_differ);
        self.read_slot(flow, k, may_differ);
        if base.tci[i] != flow.tci[k] {
            return TagCompare::Different;
        }
        match (base.tpid[i], flow.tpid[k]) {
            (a, b) if a == b => TagCompare::Same,
            (Tpid::Set(_), Tpid::Set(_)) => TagCompare::Different,
            _ => TagCompare::TpidUnknown,
        }
    }

    fn is_ip(&mut self) -> (bool, bool) {
        self.read_field(Field::DlType, 0xffff);
        let t = self.st.cur.dl_type();
        (t == ethertype::IPV4, t == ethertype::IPV6)
    }

    /// Writes `bits` into the `field` bits (VID or PCP) of the present outer tag; the
    /// datapath action waits for [`Ctx::commit_vlan`]. Reads the field (the value it
    /// overwrites decides whether the commit rewrites the tag).
    fn set_outer_vlan(&mut self, field: u16, bits: u16) {
        self.read(&Field::VlanTci.mask_of(field as u128));
        let tci = self.st.cur.vlan_tci(0);
        if tci & field == bits {
            return;
        }
        self.st.set_outer_vlan_bits(field, bits);
    }

    /// Writes `bits` into the `field` bits of the absent outer slot and makes it present,
    /// as OVS's `mod_vlan_vid`/`mod_vlan_pcp` write the flow's outer TCI in place: the inner
    /// slot stays (a tag a `vlan_tci` write removed comes back with the tag under it), and
    /// the slot's other bits, zero unless a `vlan_tci` write left some, stay too.
    fn set_absent_outer_vlan(&mut self, field: u16, bits: u16) {
        // An absent tag of the packet's (its presence read by `outer_tagged`) is all zero:
        // its bits are constants; without an outer tag the packet has no inner one either.
        if self.st.vlan_written[0] & VLAN_PRESENT == 0 {
            self.st.vlan_written[0] = 0xffff;
            if self.st.vlan_src == [Some(0), Some(1)] {
                self.st.vlan_written[1] = 0xffff;
            }
        }
        self.st.set_outer_vlan_bits(field | VLAN_PRESENT, bits | VLAN_PRESENT);
        self.fix_outer_tpid();
    }

    /// Gives a present outer slot without a TPID 0x8100, as OVS's `flow_fix_vlan_tpid`
    /// and its VID/PCP actions do: an emptied slot, or one of the packet's without a tag.
    fn fix_outer_tpid(&mut self) {
        match self.st.vlan_tpid[0] {
            Tpid::Set(0) => self.st.vlan_tpid[0] = Tpid::Set(ethertype::VLAN),
            Tpid::Received(j) => {
                let mut present = Mask::ZERO;
                present.set_vlan_tci(j, VLAN_PRESENT);
                self.mask = self.mask.union(&present);
                if self.orig.vlan_tci(j) & VLAN_PRESENT == 0 {
                    self.st.vlan_tpid[0] = Tpid::Set(ethertype::VLAN);
                }
            }
            Tpid::Set(_) => {}
        }
    }

    /// `mod_vlan_vid`, and a `vlan_vid` set-field: the outer tag's VID, a tag made if there
    /// is none.
    fn set_vlan_vid(&mut self, vid: u16) {
        let vid = vid & VLAN_VID_MASK;
        if self.outer_tagged() {
            self.set_outer_vlan(VLAN_VID_MASK, vid);
        } else {
            self.set_absent_outer_vlan(VLAN_VID_MASK, vid);
        }
    }

    fn outer_tagged(&mut self) -> bool {
        self.read(&Field::VlanTci.mask_of(VLAN_PRESENT as u128));
        self.st.cur.vlan_tci(0) & VLAN_PRESENT != 0
    }

    fn action(&mut self, a: &Action, table: u8, depth: usize) -> Flow {
        match *a {
            Action::Output(p) => self.output(p),
            Action::OutputTrunc { port, max_len } => self.output_as(port, DpAction::OutputTrunc { port, max_len }),
            Action::InPort => self.emit_observer(DpAction::Output(self.in_port)),
            Action::Flood | Action::All => self.flood(),
            Action::Normal => self.normal(),
            Action::ModVlanVid(vid) => self.set_vlan_vid(vid),
            Action::ModVlanPcp(pcp) => {
                let bits = ((pcp as u16) << VLAN_PCP_SHIFT) & VLAN_PCP_MASK;
                if self.outer_tagged() {
                    self.set_outer_vlan(VLAN_PCP_MASK, bits);
                } else {
                    self.set_absent_outer_vlan(VLAN_PCP_MASK, bits);
                }
            }
            Action::StripVlan => {
                if self.outer_tagged() {
                    self.st.pop_vlan();
                }
            }
            Action::PushVlan(tpid) => self.st.push_vlan(tpid, VLAN_PRESENT),
            Action::DecTtl => {
                let (v4, v6) = self.is_ip();
                if v4 || v6 {
                    let t = self.st.cur.nw_ttl();
                    self.read_field(Field::NwTtl, ttl_side_bits(t) as u128);
                    if t <= 1 {
                        return Flow::StopTable;
                    }
                    self.actions.push(DpAction::DecTtl);
                    self.st.cur.set_nw_ttl(t - 1);
                    self.st.ttl_derived = true;
                }
            }
            Action::Set(sf) => self.set_field(sf),
            Action::Resubmit(Resubmit { in_port, table: t }) => {
                // Table 255 means the current table, as in OVS.
                let t = t.filter(|&t| (t as usize) < N_TABLES).unwrap_or(table);
                self.table(t, in_port.unwrap_or(self.in_port), depth + 1, false);
            }
            Action::Controller { max_len } => self.packet_in(max_len, REASON_ACTION, table, self.cookie),
            Action::GotoTable(_) => {}
            Action::Group(g) => self.group(g, table, depth + 1),
            Action::Load { dst, value, .. } => self.write_subfield(dst, value),
            Action::OutputReg(src) => self.output_reg(src, table, depth),
            Action::Move { src, dst } => {
                // OVS copies only if both fields' prerequisites hold (`mf_subfield_copy`);
                // the rule's match guarantees them but for the ND fields' message type
                // and, for a TCP, UDP or SCTP field, that the packet is not a later
                // fragment (whose `tcp_flags` read as 0: OVS leaves the destination).
                let nd_slots = [src, dst].map(|s| nd_slot(s.field));
                let transport =
                    [src, dst].iter().any(|s| matches!(s.field, SubfieldField::Packet(p) if p.is_transport()));
                if transport && self.later_fragment() {
                    return Flow::Continue;
                }
                if nd_slots.into_iter().flatten().all(|slot| self.nd_prereq_holds(slot)) {
                    let v = self.read_subfield(src);
                    self.write_subfield(dst, v);
                }
            }
            Action::WriteMetadata { value, mask } => {
                let md = &mut self.st.regs.metadata;
                *md = (*md & !mask) | (value & mask);
            }
            Action::Note(_) => {}
            Action::Clone(ref actions) => {
                if depth + 1 > MAX_DEPTH {
                    self.error = Some(XlateError::TooDeep);
                } else {
                    self.clone_actions(actions, table, depth + 1);
                }
            }
            Action::ClearActions => self.action_set.clear(),
            Action::WriteActions(ref actions) => self.action_set.extend(actions.iter().cloned()),
        }
        Flow::Continue
    }

    /// Runs the action set (emptying it) as OVS does when the pipeline ends (`table` 0)
    /// or a `clone` does (its rule's table): the actions of
    /// [`action_set::execution_list`], as a rule of `table` would run them (a `resubmit`
    /// without a table looks up `table`; a packet-in reports `table` and [`Ctx::cookie`]:
    /// the first rule's at the pipeline's end, the clone's rule's in a clone). A `dec_ttl`
    /// exception ends the list. What a table resubmitted to from here writes to the set is
    /// never run (OVS runs the set once).
    fn run_action_set(&mut self, table: u8, depth: usize) {
        let list = action_set::execution_list(&std::mem::take(&mut self.action_set));
        for a in &list {
            if self.stopped() || self.action(a, table, depth) == Flow::StopTable {
                break;
            }
        }
    }

    /// `clone(ACTIONS)`: [`Ctx::on_copy`], with a copy of the action set too, which runs
    /// at the clone's end (on the clone's packet: OVS's `clone_xlate_actions`); the
    /// rule's own action set is as it was afterwards.
    fn clone_actions(&mut self, actions: &[Action], table: u8, depth: usize) {
        let set = self.action_set.clone();
        self.on_copy(actions, table, depth, Self::run_action_set, true);
        self.action_set = set;
    }

    /// Runs `actions`, then `at_end`, on a copy of the packet and the registers, as a
    /// group bucket and (`clone` true) a `clone` do: afterwards both are as they were (see
    /// [`Ctx::restore`]). A `dec_ttl` exception ends the copy's actions only.
    fn on_copy(&mut self, actions: &[Action], table: u8, depth: usize, at_end: fn(&mut Self, u8, usize), clone: bool) {
        let saved = self.st.clone();
        let clone_base = clone.then_some(self.vlan_base);
        let in_port = self.in_port;
        for a in actions {
            if self.stopped() || self.action(a, table, depth) == Flow::StopTable {
                break;
            }
        }
        at_end(self, table, depth);
        self.in_port = in_port;
        self.restore(saved, clone_base);
    }

    /// The value of `sf` (shifted down). A packet field's bits join the mask (through
    /// the key state: written or moved bits map to what they came from); registers cost
    /// nothing; `in_port` is the flow's ([`Ctx::in_port`]), always in the mask.
    fn read_subfield(&mut self, sf: Subfield) -> u128 {
        let full = match sf.field {
            SubfieldField::Packet(p) if p.is_in_port() => p.in_port_value(self.in_port).expect("an in_port field"),
            // The flow's value: in a translation without the ND fields nothing wrote them
            // (a write ends it), so it is what OVS parsed from the packet, zero unless the
            // packet as received is an ND message.
            SubfieldField::Packet(p) if p.is_nd() => {
                if self.packet_has_nd_fields() && self.lacks_nd_fields() {
                    return 0;
                }
                self.st.nd.get(p.def().slot)
            }
            SubfieldField::Packet(p) => {
                let d = p.def();
                self.read_field(d.slot, d.slot_bits(sf.bits()));
                d.get(d.slot.get(&self.st.cur))
            }
            f => self.st.regs.get(f.pipeline().expect("not a packet field")),
        };
        (full & sf.bits()) >> sf.ofs
    }

    /// Writes `value` into `sf`: a register or the metadata, the flow's in_port, the outer
    /// TCI ([`Ctx::write_vlan_tci`]), or another packet field as a set-field of the whole
    /// field (its other bits, read from the packet, join the mask).
    fn write_subfield(&mut self, sf: Subfield, value: u128) {
        let bits = sf.bits();
        let put = |old: u128| (old & !bits) | ((value << sf.ofs) & bits);
        match sf.field {
            SubfieldField::Packet(p) if p.is_in_port() => {
                let old = p.in_port_value(self.in_port).expect("an in_port field");
                self.in_port = p.in_port_written(put(old));
            }
            SubfieldField::Packet(PacketField::VlanTci) => {
                if sf.n_bits < 16 {
                    self.read_field(Field::VlanTci, 0xffff & !bits);
                }
                let tci = put(u128::from(self.st.cur.vlan_tci(0))) as u16;
                self.write_vlan_tci(tci);
            }
            SubfieldField::Packet(PacketField::VlanVid | PacketField::VlanPcp) => self.write_vlan_part(sf, value),
            SubfieldField::Packet(p) if p.is_arp() => self.write_arp(p, sf, value),
            SubfieldField::Packet(p) if p.is_mpls() => self.write_mpls(p, sf, value),
            SubfieldField::Packet(p) if p.is_nd() => self.write_nd(p, sf, value),
            SubfieldField::Packet(p) => {
                let v = self.written_value(p, sf, value);
                // The parser admits only writable fields.
                if let Some(set) = p.set_field(v) {
                    self.set_field(set);
                }
            }
            f => {
                let pf = f.pipeline().expect("not a packet field");
                self.st.regs.set(pf, put(self.st.regs.get(pf)));
            }
        }
    }

    /// The whole value of packet field `p` once `value` is written into its bits `sf`: a
    /// partial write takes the field's other bits from the packet, and they join the mask
    /// (not the rest of a shared slot: a write of the ECN bits leaves the DSCP to the
    /// datapath).
    fn written_value(&mut self, p: PacketField, sf: Subfield, value: u128) -> u128 {
        let d = p.def();
        let bits = sf.bits();
        let old = if sf.ofs == 0 && sf.n_bits == sf.field.width() {
            0
        } else {
            self.read_field(d.slot, d.bits & !d.slot_bits(bits));
            d.get(d.slot.get(&self.st.cur))
        };
        (old & !bits) | ((value << sf.ofs) & bits)
    }

    /// A `load`/`move`/`set_field` into an ARP field `p` (`sf`): the flow's field changes
    /// (later tables see it) on any packet the rule's ARP/RARP prerequisite admits; the
    /// packet is rewritten only if it is ARP, as OVS commits ARP rewrites for EtherType
    /// 0x0806 only. The opcode is the key's 8 bits (OVS's flow keeps 8 too). Unlike OVS,
    /// an opcode of 0 does not cancel the rewrite and 255 is written as 255
    /// (docs/OVS-DIFFERENCES.md).
    fn write_arp(&mut self, p: PacketField, sf: Subfield, value: u128) {
        let d = p.def();
        let new = d.slot_bits(self.written_value(p, sf, value));
        self.read_field(Field::DlType, 0xffff);
        if self.st.cur.dl_type() == ethertype::ARP {
            self.actions.push(arp_action(d.slot, new));
        }
        self.st.write(d.slot, new);
    }

    /// A `load`/`move`/`set_field` into a part of the first MPLS label stack entry (`sf`):
    /// the rule's MPLS prerequisite admits only MPLS packets (`dl_type` cannot be written),
    /// so the packet is rewritten at once, just the written bits (no other bit of the
    /// packet is read for it), and the flow's entry changes for later tables. (A rule
    /// without the prerequisite, which no parser makes, writes nothing.)
    fn write_mpls(&mut self, p: PacketField, sf: Subfield, value: u128) {
        self.read_field(Field::DlType, 0xffff);
        if !matches!(self.st.cur.dl_type(), ethertype::MPLS | ethertype::MPLS_MCAST) {
            return;
        }
        let d = p.def();
        let bits = d.slot_bits(sf.bits());
        let new = d.slot_bits(value << sf.ofs);
        self.actions.push(DpAction::SetMplsLse { value: new as u32, mask: bits as u32 });
        self.st.write_bits(d.slot, bits, new);
    }

    /// A `load`/`move` into `vlan_vid` or `vlan_pcp` (`sf`), as OVS's `flow_set_vlan_vid`
    /// and `flow_set_vlan_pcp`: the VID bits change, the tag's presence does not (a VID
    /// written to an absent tag stays in the flow's TCI for a later push); a PCP is written
    /// only to a present tag (OVS's prerequisite of the field, checked again at run time).
    fn write_vlan_part(&mut self, sf: Subfield, value: u128) {
        let d = match sf.field {
            SubfieldField::Packet(p) => p.def(),
            _ => unreachable!("a VLAN field"),
        };
        let bits = d.slot_bits(sf.bits());
        let tci = self.st.cur.vlan_tci(0);
        let new = (tci & !(bits as u16)) | (d.slot_bits(value << sf.ofs) as u16 & bits as u16);
        if self.outer_tagged() {
            // The commit writes the whole VID (PCP): the bits this write leaves come from
            // the packet and join the mask.
            let rest = d.bits & !bits;
            if rest != 0 {
                self.read(&Field::VlanTci.mask_of(rest));
            }
            self.set_outer_vlan(bits as u16, new & bits as u16);
        } else if sf.field == SubfieldField::Packet(PacketField::VlanVid) {
            self.st.set_outer_vlan_bits(bits as u16, new);
        }
    }

    /// `output:SRC`: the port number in `src` when the action runs, a 16-bit OpenFlow
    /// port, as OVS's `xlate_output_reg_action`: the reserved ports act as their actions
    /// (`TABLE` looks table 0 up again, without a packet-in on a miss), a number above
    /// 16 bits sends nothing. A `CONTROLLER` packet-in carries the cookie of the rule
    /// whose action this is ([`Ctx::cookie`]).
    fn output_reg(&mut self, src: Subfield, table: u8, depth: usize) {
        let port = self.read_subfield(src);
        match port {
            0xfff8 => self.emit_observer(DpAction::Output(self.in_port)),
            0xfff9 => self.table(0, self.in_port, depth + 1, false),
            0xfffa => self.normal(),
            0xfffb | 0xfffc => self.flood(),
            0xfffd => self.packet_in(u16::MAX, REASON_ACTION, table, self.cookie),
            p if p <= 0xffff => self.output(ferrovs_config::port_from_16(p as u32)),
            _ => {}
        }
    }

    /// A write of the whole outer TCI, as OVS's `vlan_tci` field: only the outer slot's TCI
    /// changes, its TPID stays (0x8100 for a slot without one made present), the inner
    /// slot stays. With the 0x1000 bit set the tag is rewritten, or one comes back; without
    /// it the packet has no tag for the commit (it counts tags from the outside up to the
    /// first absent one, so an inner tag goes too), and the other bits stay in the flow for
    /// later matches and for a PCP or VID write that brings the tags back.
    fn write_vlan_tci(&mut self, tci: u16) {
        self.st.set_outer_vlan_bits(0xffff, tci);
        if tci & VLAN_PRESENT != 0 {
            self.fix_outer_tpid();
        }
    }

    /// `group:ID`: each bucket's actions (all of them for `all`, the one for `indirect`)
    /// on its own copy of the packet, as an action set (OpenFlow's buckets are: ordered
    /// and reduced by [`action_set::execution_list`], as OVS runs them; the pipeline's own
    /// action set is not copied, a bucket's `resubmit` may write to it as in OVS). After
    /// a bucket the packet is restored (see
    /// [`Ctx::restore`]), so later buckets and the rule's later actions see it as it
    /// was. A group the bridge lacks does nothing (a group-mod delete removes the rules
    /// that use it, as in OVS, so only a race can get here).
    fn group(&mut self, id: u32, table: u8, depth: usize) {
        if depth > MAX_DEPTH {
            self.error = Some(XlateError::TooDeep);
            return;
        }
        let tables = self.tables;
        let Some(group) = tables.groups.get(&id) else { return };
        let buckets = match group.kind {
            GroupKind::All => &group.buckets[..],
            GroupKind::Indirect => &group.buckets[..group.buckets.len().min(1)],
        };
        for bucket in buckets {
            self.on_copy(&action_set::execution_list(bucket), table, depth, |_, _, _| {}, false);
        }
    }

    /// Puts the flow back as `saved` describes it, emitting the actions that undo a group
    /// bucket's or a clone's changes to header fields: those it wrote are set back to
    /// their values before it (those values, read from the key, join the mask).
    ///
    /// The VLAN tags are OVS's way: after a group bucket OVS restores the flow but not
    /// what it committed, so the next commit compares the packet's tags with the restored
    /// flow's ([`Ctx::commit_vlan`]); a `clone` is a datapath clone in OVS, which leaves
    /// the packet's tags as they were, so they are put back here (`clone_base`: the tags
    /// the packet had before it).
    fn restore(&mut self, saved: KeyState, clone_base: Option<VlanSlots>) {
        let after = std::mem::replace(&mut self.st, saved);
        if let Some(base) = clone_base {
            self.commit_vlan_to(base);
        }
        let b = self.st.cur;
        let written = |f: Field| -> bool {
            let m: Mask = f.mask_of(f.all_ones());
            (0..8).any(|i| after.written.w[i] & m.w[i] != 0)
        };
        let restores: [RestoreField; 9] = [
            (Field::DlSrc, |v| DpAction::SetEthSrc(crate::key::mac_from_u64(v as u64))),
            (Field::DlDst, |v| DpAction::SetEthDst(crate::key::mac_from_u64(v as u64))),
            (Field::NwSrc, |v| DpAction::SetIpv4Src((v as u32).into())),
            (Field::NwDst, |v| DpAction::SetIpv4Dst((v as u32).into())),
            (Field::Ipv6Src, |v| DpAction::SetIpv6Src(v.into())),
            (Field::Ipv6Dst, |v| DpAction::SetIpv6Dst(v.into())),
            (Field::Ipv6Label, |v| DpAction::SetIpv6Label(v as u32)),
            (Field::TpSrc, |v| DpAction::SetTpSrc(v as u16)),
            (Field::TpDst, |v| DpAction::SetTpDst(v as u16)),
        ];
        // The IPv4 and IPv6 address slots share key words: only the packet's own kind of
        // address is set back (a written IPv4 address must not read as an IPv6 change).
        // An ARP packet's addresses, opcode and hardware addresses are its ARP fields.
        let dl_type = b.dl_type();
        let arp = dl_type == ethertype::ARP;
        let other_family = |f: Field| match f {
            Field::NwSrc | Field::NwDst => dl_type == ethertype::IPV6 || arp,
            Field::Ipv6Src | Field::Ipv6Dst => dl_type != ethertype::IPV6,
            _ => false,
        };
        // A field the copy wrote is read, and set back where it differs.
        let set_back = |ctx: &mut Self, f: Field, make: &dyn Fn(u128) -> DpAction| {
            if written(f) {
                ctx.read_field(f, f.all_ones());
                if f.get(&after.cur) != f.get(&b) {
                    ctx.actions.push(make(f.get(&b)));
                }
            }
        };
        if arp {
            for f in [Field::NwProto, Field::NwSrc, Field::NwDst, Field::ArpSha, Field::ArpTha] {
                set_back(self, f, &|v| arp_action(f, v));
            }
        }
        for (f, make) in restores {
            if !other_family(f) {
                set_back(self, f, &make);
            }
        }
        if written(Field::NwTos) {
            self.read_field(Field::NwTos, 0xff);
            let (at, bt) = (after.cur.nw_tos(), b.nw_tos());
            if at >> 2 != bt >> 2 {
                self.actions.push(DpAction::SetIpDscp(bt >> 2));
            }
            if at & 3 != bt & 3 {
                self.actions.push(DpAction::SetIpEcn(bt & 3));
            }
        }
        if written(Field::NwTtl) || after.ttl_derived {
            self.read_field(Field::NwTtl, 0xff);
            if after.cur.nw_ttl() != b.nw_ttl() {
                self.actions.push(DpAction::SetTtl(b.nw_ttl()));
            }
        }
    }

    fn set_field(&mut self, sf: SetField) {
        match sf {
            SetField::DlSrc(m) => {
                self.actions.push(DpAction::SetEthSrc(m));
                self.st.write(Field::DlSrc, crate::key::mac_to_u64(m) as u128);
            }
            SetField::DlDst(m) => {
                self.actions.push(DpAction::SetEthDst(m));
                self.st.write(Field::DlDst, crate::key::mac_to_u64(m) as u128);
            }
            // `vlan_vid` has no prerequisite in OVS (`vlan_pcp` needs a VID): on an absent
            // tag the write makes one, as `mod_vlan_vid` does (the value carries the
            // present bit). A rule can only be loaded with a tag known at that point, but
            // the action set runs `strip_vlan` before every write.
            SetField::VlanVid(vid) => self.set_vlan_vid(vid),
            SetField::VlanPcp(pcp) => {
                if self.outer_tagged() {
                    let bits = ((pcp as u16) << VLAN_PCP_SHIFT) & VLAN_PCP_MASK;
                    self.set_outer_vlan(VLAN_PCP_MASK, bits);
                }
            }
            SetField::NwSrc(a) | SetField::NwDst(a) => {
                if self.is_ip().0 {
                    let (act, f) = match sf {
                        SetField::NwSrc(_) => (DpAction::SetIpv4Src(a), Field::NwSrc),
                        _ => (DpAction::SetIpv4Dst(a), Field::NwDst),
                    };
                    self.actions.push(act);
                    self.st.write(f, u32::from(a) as u128);
                }
            }
            SetField::Ipv6Src(a) | SetField::Ipv6Dst(a) => {
                if self.is_ip().1 {
                    let (act, f) = match sf {
                        SetField::Ipv6Src(_) => (DpAction::SetIpv6Src(a), Field::Ipv6Src),
                        _ => (DpAction::SetIpv6Dst(a), Field::Ipv6Dst),
                    };
                    self.actions.push(act);
                    self.st.write(f, u128::from(a));
                }
            }
            SetField::Ipv6Label(l) => {
                if self.is_ip().1 {
                    let l = l & 0xfffff;
                    self.actions.push(DpAction::SetIpv6Label(l));
                    self.st.write(Field::Ipv6Label, l as u128);
                }
            }
            SetField::IpDscp(d) => {
                let (v4, v6) = self.is_ip();
                if v4 || v6 {
                    let d = d & 0x3f;
                    self.actions.push(DpAction::SetIpDscp(d));
                    self.st.write_bits(Field::NwTos, 0xfc, (d as u128) << 2);
                }
            }
            SetField::NwEcn(e) => {
                let (v4, v6) = self.is_ip();
                if v4 || v6 {
                    let e = e & 3;
                    self.actions.push(DpAction::SetIpEcn(e));
                    self.st.write_bits(Field::NwTos, 0x03, e as u128);
                }
            }
            SetField::NwTtl(t) => {
                let (v4, v6) = self.is_ip();
                if v4 || v6 {
                    self.actions.push(DpAction::SetTtl(t));
                    self.st.write(Field::NwTtl, t as u128);
                }
            }
            SetField::TpSrc(p) | SetField::TpDst(p) => {
                let (v4, v6) = self.is_ip();
                if !(v4 || v6) {
                    return;
                }
                self.read_field(Field::NwProto, 0xff);
                // As OVS (commit_set_port_action / commit_set_icmp_action): ports of
                // TCP, UDP, SCTP; on ICMP (in IPv4) and ICMPv6 (in IPv6) the low byte
                // becomes the type (tp_src) or code (tp_dst).
                let proto = self.st.cur.nw_proto();
                let has_ports = matches!(proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP)
                    || (v4 && proto == ipproto::ICMP)
                    || (v6 && proto == ipproto::ICMPV6);
                if !has_ports {
                    return;
                }
                if self.later_fragment() {
                    return;
                }
                let (act, f) = match sf {
                    SetField::TpSrc(_) => (DpAction::SetTpSrc(p), Field::TpSrc),
                    _ => (DpAction::SetTpDst(p), Field::TpDst),
                };
                self.actions.push(act);
                self.st.write(f, p as u128);
            }
        }
    }

    /// The `normal` action: a VLAN-aware learning switch over all bridge ports (every
    /// port is a trunk). Depends on in_port, the outer VLAN (presence and VID; the PCP
    /// too for VID 0), the whole dl_dst (table lookup) and the whole dl_src (so that every
    /// new or moved source misses the megaflow cache and gets learned).
    ///
    /// As OVS's `output_normal`, each output carries the tags rebuilt from their VID and
    /// PCP, and a tag whose TCI is then 0 (VID 0, PCP 0: a priority tag without priority)
    /// is not sent (`xvlan_put`): the outputs are wrapped in `PopVlan` ... `PushVlan` (TCI
    /// 0, DEI cleared, the popped tag's TPID: OVS's restore for the actions after
    /// `normal`; dropped again at the end if nothing follows). Such an outer tag is left
    /// out alone (OVS drops the tags behind it too: docs/OVS-DIFFERENCES.md); an inner one
    /// behind an outer tag that is sent goes with both tags popped and the outer one
    /// pushed back (DEI cleared, as OVS rebuilds it), and both come back afterwards.
    fn normal(&mut self) {
        // A flow in_port of OFPP_NONE or OFPP_CONTROLLER (a `load`/`move` wrote it) is a
        // controller's own traffic to OVS's xlate_normal: its "none" bundle, which learns
        // nothing and excludes no port. Any other in_port the bridge lacks: no input
        // bundle, nothing done, before any learning.
        if !ferrovs_config::is_no_port(self.in_port) && !self.tables.ports().contains(&self.in_port) {
            return;
        }
        self.read(&Field::VlanTci.mask_of((VLAN_PRESENT | VLAN_VID_MASK) as u128));
        self.read_field(Field::DlDst, Field::DlDst.all_ones());
        self.read_field(Field::DlSrc, Field::DlSrc.all_ones());
        let tci = self.st.cur.vlan_tci(0);
        // A VLAN EtherType without a parsed tag (a tag cut short, or a tag beyond the
        // vlan-limit left behind by a pop): OVS's xlate_normal drops it as malformed,
        // before learning.
        if tci & VLAN_PRESENT == 0 {
            self.read_field(Field::DlType, 0xffff);
            if matches!(self.st.cur.dl_type(), ethertype::VLAN | ethertype::QINQ) {
                return;
            }
        }
        let vlan = if tci & VLAN_PRESENT != 0 { tci & VLAN_VID_MASK } else { 0 };
        let vid_pcp = VLAN_VID_MASK | VLAN_PCP_MASK;
        let untag = tci & VLAN_PRESENT != 0 && vlan == 0 && {
            self.read(&Field::VlanTci.mask_of(VLAN_PCP_MASK as u128));
            tci & VLAN_PCP_MASK == 0
        };
        // OVS's xvlan_extract reads the inner tag only behind a present outer one.
        let untag_inner = tci & VLAN_PRESENT != 0 && !untag && {
            let mut inner = Mask::ZERO;
            inner.set_vlan_tci(1, VLAN_PRESENT | vid_pcp);
            self.read(&inner);
            let t = self.st.cur.vlan_tci(1);
            t & VLAN_PRESENT != 0 && t & vid_pcp == 0
        };
        let (send, back): (&[DpAction], &[DpAction]) = if untag {
            (&[DpAction::PopVlan], &[DpAction::PushVlan { tpid: TPID_OF_LAST_POP, tci: VLAN_PRESENT }])
        } else if untag_inner {
            let outer = tci & (VLAN_PRESENT | vid_pcp);
            (
                &[
                    DpAction::PopVlan,
                    DpAction::PopVlan,
                    DpAction::PushVlan { tpid: TPID_OF_SECOND_LAST_POP, tci: outer },
                ],
                &[
                    DpAction::PopVlan,
                    DpAction::PushVlan { tpid: TPID_OF_SECOND_LAST_POP, tci: VLAN_PRESENT },
                    DpAction::PushVlan { tpid: TPID_OF_LAST_POP, tci: outer },
                ],
            )
        } else {
            (&[], &[])
        };
        if !send.is_empty() {
            self.commit_vlan();
        }
        let start = self.actions.len();
        self.actions.extend_from_slice(send);
        self.normal_outputs(vlan);
        if self.actions.len() == start + send.len() {
            self.actions.truncate(start);
        } else if !back.is_empty() {
            let at = self.actions.len();
            self.actions.extend_from_slice(back);
            self.retag = Some((at, self.actions.len()));
        }
    }

    /// What `normal` learns and where it sends the packet (the outer VID is `vlan`).
    fn normal_outputs(&mut self, vlan: u16) {
        let src = self.st.cur.dl_src();
        let dst = self.st.cur.dl_dst();
        if !is_multicast(src) && !ferrovs_config::is_no_port(self.in_port) {
            let l = MacLearn { vlan, mac: src, port: self.in_port };
            if self.learns.last() != Some(&l) {
                self.learns.push(l);
            }
        }
        if is_reserved(dst) {
            return;
        }
        if is_multicast(dst) {
            self.flood();
            return;
        }
        let dep = MacKey { vlan, mac: dst };
        if !self.mac_deps.contains(&dep) {
            self.mac_deps.push(dep);
        }
        match self.macs.lookup_after(&self.learns, vlan, dst, self.now) {
            Some(p) if self.tables.ports().contains(&p) => self.output(p),
            _ => self.flood(),
        }
    }
}

/// Whether a rule's remaining actions run after an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// `dec_ttl` found TTL 0 or 1: OVS's `compose_dec_ttl` returns "stop processing for
    /// the current table", so the rest of this rule's actions (and its goto_table) do not
    /// run, but a rule that resubmitted here goes on with its own next action.
    StopTable,
}

/// The TPID a datapath action gives a tag of TPID `t` (present, so not an empty one).
fn tpid_action_value(t: Tpid) -> u16 {
    match t {
        Tpid::Set(t) => t,
        Tpid::Received(0) => TPID_OF_RECEIVED_OUTER,
        Tpid::Received(_) => TPID_OF_RECEIVED_INNER,
    }
}

/// The neighbour-discovery slot a `load`/`move` operand names, if it names one.
fn nd_slot(f: SubfieldField) -> Option<Field> {
    match f {
        SubfieldField::Packet(p) if p.is_nd() => Some(p.def().slot),
        _ => None,
    }
}

/// The datapath action that writes `value` into the ARP field held in key slot `slot`.
pub(super) fn arp_action(slot: Field, value: u128) -> DpAction {
    match slot {
        Field::NwProto => DpAction::SetArpOp(value as u8),
        Field::NwSrc => DpAction::SetArpSpa((value as u32).into()),
        Field::NwDst => DpAction::SetArpTpa((value as u32).into()),
        Field::ArpSha => DpAction::SetArpSha(crate::key::mac_from_u64(value as u64)),
        Field::ArpTha => DpAction::SetArpTha(crate::key::mac_from_u64(value as u64)),
        _ => unreachable!("{slot:?} holds no ARP field"),
    }
}

/// The TTL bits that decide on which side of "TTL <= 1" (the `dec_ttl` exception) a
/// TTL `t` is, as few as possible: bits 7..1 for 0 and 1; otherwise the bits from the top
/// down to `t`'s highest set bit (TTL 64 needs `0xc0`: every 64..=127 decrements). OVS
/// un-wildcards the whole TTL; this prefix gives the same decision with at most 7
/// megaflows instead of 256.
fn ttl_side_bits(t: u8) -> u8 {
    if t <= 1 { 0xfe } else { 0xff << (7 - t.leading_zeros()) }
}

/// Adds the bits that every mask touching a field must also cover.
pub(crate) fn add_prerequisites(mask: &mut Mask) {
    let l3 = mask.nw_tos() != 0
        || mask.nw_proto() != 0
        || mask.nw_ttl() != 0
        || mask.nw_frag() != 0
        || mask.ipv6_label() != 0
        || mask.w[4..8].iter().any(|&w| w != 0);
    let l4 = mask.tp_src() != 0 || mask.tp_dst() != 0 || mask.tcp_flags() != 0;
    if l3 || l4 {
        mask.set_dl_type(0xffff);
    }
    if l4 {
        mask.set_nw_proto(0xff);
    }
    mask.set_in_port(u32::MAX);
}

/// The proofs of a translation's classifier lookups.
#[derive(Default)]
struct Proofs {
    /// The table's index.
    table: Proof,
    /// The index of the rules added to the table in place (see `Delta`).
    added: Proof,
}

thread_local! {
    /// The classifier lookups' proof buffers, handed from one translation to the next on
    /// a thread. Their vectors hold 64-byte-aligned masks, so each growth is an aligned
    /// allocation: made afresh for every translation, about four of them were a tenth of
    /// a translation's instructions at 10^6 rules.
    static PROOF_BUFFERS: Cell<Option<Box<Proofs>>> = const { Cell::new(None) };
}

/// Translates `key`. `nd`: the packet's ND fields, when the caller has its bytes; without
/// them, a lookup in a table with ND rules of an ND message ends the translation with a
/// slow-path megaflow (its one action a [`DpAction::Controller`] with reason
/// [`REASON_SLOW_PATH`], mask what was read so far).
pub(crate) fn translate(
    tables: &RuleTables,
    macs: &MacTable,
    key: &FlowKey,
    nd: Option<&NdFields>,
    now: Duration,
    lookup: Lookup,
) -> Translation {
    let mut cx = Ctx::new(tables, macs, key, now, lookup);
    cx.set_nd(nd);
    if tables.miss == MissMode::FailOpen {
        cx.normal();
    } else {
        cx.table(0, cx.in_port, 0, true);
    }
    cx.run_action_set(0, 0);
    cx.finish()
}

/// The datapath actions of a packet-out: `actions` run on the packet `key` (its in_port
/// the packet-out's, its ND fields `nd`) as a rule of table 0 would run them. No
/// megaflow comes of it.
pub(crate) fn translate_actions(
    tables: &RuleTables,
    macs: &MacTable,
    key: &FlowKey,
    nd: &NdFields,
    in_port: u32,
    now: Duration,
    actions: &[Action],
) -> Translation {
    let mut cx = Ctx::new(tables, macs, key, now, Lookup::Index);
    cx.set_nd(Some(nd));
    cx.in_port = in_port;
    cx.ingress = in_port;
    for a in actions {
        if cx.stopped() {
            break;
        }
        if let Action::GotoTable(t) = *a {
            cx.table(t, cx.in_port, 1, true);
        } else if cx.action(a, 0, 0) == Flow::StopTable {
            break;
        }
    }
    cx.run_action_set(0, 0);
    cx.finish()
}

impl<'a> Ctx<'a> {
    fn new(tables: &'a RuleTables, macs: &'a MacTable, key: &FlowKey, now: Duration, lookup: Lookup) -> Ctx<'a> {
        // (A lookup clears what it uses of a proof first.)
        let proofs = Some(PROOF_BUFFERS.take().unwrap_or_default());
        Ctx {
            tables,
            macs,
            now,
            // The key holds LOCAL in 16 bits; the translator speaks OpenFlow numbers.
            in_port: ferrovs_config::port_from_16(key.in_port()),
            ingress: ferrovs_config::port_from_16(key.in_port()),
            orig: *key,
            st: KeyState::new(key),
            mask: Mask::ZERO,
            actions: DpActions::new(),
            rules: Vec::new(),
            cookie: u64::MAX,
            trace: Vec::new(),
            learns: Vec::new(),
            mac_deps: Vec::new(),
            lookups: 0,
            error: None,
            nd: None,
            nd_base: NdFields::default(),
            slow_path: false,
            slow_path_at: None,
            optional: Vec::new(),
            lookup,
            proofs,
            retag: None,
            vlan_base: KeyState::new(key).vlans(),
            rewritten: Mask::ZERO,
            action_set: Vec::new(),
        }
    }

    /// Gives the translation the packet's ND fields (`None`: a key without its bytes).
    fn set_nd(&mut self, nd: Option<&NdFields>) {
        self.nd = nd.copied();
        let nd = nd.copied().unwrap_or_default();
        self.st.nd = nd;
        self.nd_base = nd;
    }

    fn finish(mut self) -> Translation {
        PROOF_BUFFERS.set(self.proofs.take());
        // Tags `normal` put back for later actions that never came are not output.
        if let Some((start, end)) = self.retag
            && end == self.actions.len()
        {
            self.actions.truncate(start);
        }
        crate::actions::trim_unsent_edits(&mut self.actions);
        let mut mask = self.mask;
        add_prerequisites(&mut mask);
        if self.slow_path {
            // Every packet of this megaflow goes, with its bytes, to the slow path,
            // which translates it with its ND fields. What the translation did before
            // the lookup is redone there.
            self.actions.clear();
            self.actions.push(DpAction::Controller {
                in_port: self.ingress,
                max_len: u16::MAX,
                reason: REASON_SLOW_PATH,
                table: 0,
                cookie: 0,
            });
            self.learns.clear();
            self.mac_deps.clear();
            self.rules.clear();
        }
        if self.error.is_some() {
            // An abandoned translation drops the packet and learns nothing.
            self.actions.clear();
            self.learns.clear();
        }
        Translation {
            actions: self.actions,
            mask,
            rules: self.rules,
            trace: self.trace,
            learns: self.learns,
            mac_deps: self.mac_deps,
            error: self.error,
            slow_path_at: self.slow_path_at,
            rewritten: self.rewritten,
        }
    }
}

#[cfg(test)]
mod tests;
