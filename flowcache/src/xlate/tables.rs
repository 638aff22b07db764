//! [`RuleTables`]: one immutable, compiled version of a bridge's OpenFlow-lite rule set.
//!
//! # Design
//!
//! A rule-set version is built from a `Vec<Rule>` and the bridge's port list; a rule
//! change builds a new version (the slow path revalidates the installed megaflows against
//! it, see `revalidate`), except a change of a few rules in a large version, which is made
//! in place (see *Changes in place* below). Building does, once per rule, all the work the
//! translator would otherwise repeat per upcall:
//!
//! - *Normalisation*, as `ovs-ofctl` does for OpenFlow 1.0: a match field whose
//!   prerequisite is missing (e.g. `nw_dst` without `ip`/`arp`, `tp_dst` without a
//!   transport protocol) is dropped, with a warning. This also guarantees the invariant
//!   the key layout depends on: a rule that matches any L3 bit matches `dl_type`, and
//!   one that matches any L4 bit matches `nw_proto`.
//! - *Compilation* of the match into one key/mask pair and a list of [`FieldMatch`]es
//!   (see `fields`).
//! - *Ordering*: each table's rules are sorted by priority, highest first. Among equal
//!   priorities the rule that came first in the input wins (OVS leaves overlapping
//!   equal-priority rules undefined; we pick the input order so results are
//!   reproducible). A rule with the same table, priority and match as an earlier one
//!   *replaces* it in place, as `ovs-ofctl add-flows` does (an OFPFC_ADD of an identical
//!   flow replaces it).
//!
//! # Changes in place
//!
//! A build costs one to two microseconds per rule (compiling, hashing identities,
//! indexing): 0.1-0.2 s at 100,000 rules, seconds at 10^6, for every flow-mod. So
//! [`RuleTables::add_in_place`] and [`RuleTables::delete_in_place`] change a version
//! without building one, with the same outcome as the build (the same rules, numbered
//! alike, in the same lookup order):
//!
//! - an added rule of an existing identity replaces it where it is (same compiled match:
//!   nothing else changes); any other added rule is compiled and goes into its table's
//!   [`Delta`], a small index of the rules added since the build (its groups test their
//!   fields in the order the table's groups of the same shape do, see
//!   `TableIndex::beside`), which is indexed again from its rules at each change. A
//!   lookup consults both indexes, each for the rules before the other's winner (an added
//!   rule comes after every rule of the build of its priority or higher: `Delta::rank`);
//! - a deleted rule leaves the rule list (the [`RuleRef`]s after it close up, a pass over
//!   the list: no compiling or indexing) and stays in its table's index, marked dead: it
//!   matches nothing, though the index may still spend witness bits on it.
//!
//! The slow path builds the version again once the changes in place reach
//! [`RuleTables::in_place_limit`] (sqrt(n) x 4), so lookups never carry more than that
//! beside the version. Measured (`rule_change_scale`, BENCHMARKS.md): a one-rule add
//! 1.2-1.7 ms and a one-rule delete 6-16 ms at 100,000 rules and 200,000 megaflows
//! (a build per change: 166-235 ms).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};

use ferrovs_config::persist::journal::RuleTextEdit;
use ferrovs_config::rules::{Action, Masked, Match, Registers, Rule};

use super::build_threads::{Queue, on_threads, threads_for};
use super::fields::{self, Field, FieldMatch, FieldSet};
use super::rule_index::TableIndex;
use crate::extract::NdFields;
use crate::key::{FlowKey, Mask, ethertype, ipproto, mac_to_u64};

/// Number of OpenFlow tables (0..=254).
pub const N_TABLES: usize = 255;

/// A rule of one [`RuleTables`] version: its index in [`RuleTables::rules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef(pub u32);

/// A rule compiled for lookup.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub rref: RuleRef,
    /// Masked match value and mask over the key.
    pub value: FlowKey,
    pub mask: Mask,
    /// The fields matched: with `value` and `mask`, the rule's field matches (see
    /// [`CompiledRule::fields`]).
    pub field_set: FieldSet,
    /// The rule's register and metadata match, if it has one. Decided against the
    /// translation's registers, never by key bits (see [`PipelineMatch`]).
    pub pipeline: Option<Box<PipelineMatch>>,
    /// The rule's match on the neighbour-discovery fields (`nd_target`, `nd_sll`, `nd_tll`,
    /// `nd_reserved`, `nd_options_type`), if it has one: not in the key,
    /// decided against the frame's ND fields by the slow path (see `translate`).
    pub nd: Option<Box<NdMatch>>,
    /// The rule's priority (a rule deleted in place keeps its place by it).
    pub priority: u16,
    /// Deleted in place (see [`RuleTables::delete_in_place`]): the rule is no more, its
    /// place in the index stays until the next build and matches nothing (`rref` is
    /// meaningless).
    pub dead: bool,
}

/// A match on the ND fields, as value/mask pairs (a zero mask matches anything) and the
/// two exact-only ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NdMatch {
    target: Masked<u128>,
    sll: Masked<u64>,
    tll: Masked<u64>,
    reserved: Option<u32>,
    options_type: Option<u8>,
}

impl NdMatch {
    fn of(m: &Match) -> Option<NdMatch> {
        let none = Masked { value: 0, mask: 0 };
        let mac = |x: &Option<Masked<[u8; 6]>>| {
            x.map_or(none, |x| Masked { value: mac_to_u64(x.value), mask: mac_to_u64(x.mask) })
        };
        let target = m
            .nd_target
            .map_or(Masked { value: 0, mask: 0 }, |t| Masked { value: u128::from(t.value), mask: u128::from(t.mask) });
        let nd = NdMatch {
            target,
            sll: mac(&m.nd_sll),
            tll: mac(&m.nd_tll),
            reserved: m.nd_reserved,
            options_type: m.nd_options_type,
        };
        let any = nd.target.mask | u128::from(nd.sll.mask | nd.tll.mask) != 0;
        (any || nd.reserved.is_some() || nd.options_type.is_some()).then_some(nd)
    }

    fn holds(&self, nd: &NdFields) -> bool {
        (u128::from_be_bytes(nd.target) ^ self.target.value) & self.target.mask == 0
            && (mac_to_u64(nd.sll) ^ self.sll.value) & self.sll.mask == 0
            && (mac_to_u64(nd.tll) ^ self.tll.value) & self.tll.mask == 0
            && self.reserved.is_none_or(|r| r == nd.reserved)
            && self.options_type.is_none_or(|t| t == nd.options_type)
    }
}

impl CompiledRule {
    /// A slot's value before its rule is compiled into it (see `compile_in_order`).
    fn placeholder() -> CompiledRule {
        CompiledRule {
            rref: RuleRef(u32::MAX),
            value: FlowKey::ZERO,
            mask: Mask::ZERO,
            field_set: FieldSet::default(),
            pipeline: None,
            nd: None,
            priority: 0,
            dead: true,
        }
    }

    /// Whether the key fields match (the pipeline match is checked apart).
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        self.value.matches(&self.mask, key)
    }

    /// The rule's field matches, one per matched key field, in the order of
    /// [`FieldSet::ORDER`].
    #[inline]
    pub fn fields(&self) -> impl Iterator<Item = FieldMatch> + '_ {
        self.field_set.matches(&self.value, &self.mask)
    }

    /// Whether the register and metadata match holds for `regs`.
    #[inline]
    pub fn pipeline_holds(&self, regs: &Registers) -> bool {
        self.pipeline.as_ref().is_none_or(|p| p.holds(regs))
    }

    /// Whether the rule's neighbour-discovery match (if any) holds for `nd`.
    #[inline]
    pub fn nd_holds(&self, nd: &NdFields) -> bool {
        self.nd.as_ref().is_none_or(|m| m.holds(nd))
    }

    /// The mask half of the pipeline match (all zero for a rule without one).
    pub fn pipeline_mask(&self) -> Registers {
        self.pipeline.as_ref().map_or(Registers::default(), |p| p.mask)
    }
}

/// A register and metadata match as two [`Registers`]: the bits that must be equal
/// and their values. Registers are translation state that follows from the key bits the
/// translation already depends on and the actions it ran, so such a match costs no mask
/// bits, whether it holds or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PipelineMatch {
    pub mask: Registers,
    pub value: Registers,
}

impl PipelineMatch {
    fn of(m: &Match) -> Option<Box<PipelineMatch>> {
        if !m.matches_pipeline() {
            return None;
        }
        let mut p = PipelineMatch { mask: Registers::default(), value: Registers::default() };
        for &(i, r) in &m.regs {
            p.mask.regs[usize::from(i)] = r.mask;
            p.value.regs[usize::from(i)] = r.value & r.mask;
        }
        if let Some(md) = m.metadata {
            p.mask.metadata = md.mask;
            p.value.metadata = md.value & md.mask;
        }
        Some(Box::new(p))
    }

    #[inline]
    pub fn holds(&self, regs: &Registers) -> bool {
        masked_regs(regs, &self.mask) == self.value
    }
}

/// `regs` under `mask`.
#[inline]
pub(crate) fn masked_regs(regs: &Registers, mask: &Registers) -> Registers {
    let mut out = Registers { regs: [0; 16], metadata: regs.metadata & mask.metadata };
    for i in 0..16 {
        out.regs[i] = regs.regs[i] & mask.regs[i];
    }
    out
}

/// Why a rule set was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Table 255 is not a table.
    BadTable { rule: usize, table: u8 },
    /// `goto_table` must go forward.
    GotoBackwards { rule: usize, table: u8, target: u8 },
    /// `group:G` of a group the bridge does not have (OVS: `OFPBAC_BAD_OUT_GROUP`).
    UnknownGroup { rule: usize, group: u32 },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::BadTable { rule, table } => {
                write!(f, "rule {rule}: table {table} does not exist (tables are 0..=254)")
            }
            BuildError::GotoBackwards { rule, table, target } => {
                write!(f, "rule {rule}: goto_table:{target} in table {table} must name a later table")
            }
            BuildError::UnknownGroup { rule, group } => {
                write!(f, "rule {rule}: group {group} does not exist (add it first: OFPBAC_BAD_OUT_GROUP)")
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// What a packet that no rule of a table matches gets (beyond the rules themselves).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MissMode {
    /// Nothing: it is dropped (OpenFlow 1.3's table miss; a bridge with no controller).
    #[default]
    Drop,
    /// A packet-in with reason `OFPR_NO_MATCH` (OpenFlow 1.0's table miss, when an
    /// OpenFlow 1.0 controller is connected).
    Controller,
    /// The rules are bypassed and the bridge switches as `normal`: OVS's fail-open, a
    /// standalone bridge whose controllers are all unreachable.
    FailOpen,
}

/// One compiled, immutable rule-set version of a bridge.
#[derive(Debug, Clone)]
pub struct RuleTables {
    rules: Vec<Rule>,
    /// For each rule, its index in the `Vec<Rule>` it was built from (the last of
    /// identical duplicates).
    source_index: Vec<usize>,
    /// Per table, compiled rules in lookup order.
    pub(crate) tables: Vec<Vec<CompiledRule>>,
    /// Per table, the classifier over `tables[t]` (see `rule_index`).
    pub(crate) index: Vec<TableIndex>,
    /// Per table, the rules added in place since the version was built (see
    /// [`RuleTables::add_in_place`]); `None` for a table without any.
    pub(crate) deltas: Vec<Option<Box<Delta>>>,
    /// Compiled rules of `tables` deleted in place since the version was built (see
    /// [`RuleTables::delete_in_place`]).
    dead: usize,
    /// Per table, whether a rule of it matches ND fields (which the key does not hold).
    nd_tables: Vec<bool>,
    ports: Vec<u32>,
    warnings: Vec<String>,
    /// Rule identity (table, priority, match) to rule.
    by_identity: IdentityIndex,
    /// Positions (ascending) of the rules that have an idle or hard timeout, and perhaps
    /// of a few that lost theirs in a change in place: the rules the slow path's tick
    /// looks at for expiry ([`RuleTables::timed_rules`]), instead of every rule (at
    /// 842,013 rules a pass over all of them took the slow-path thread 10-20 ms a second).
    timed: Vec<u32>,
    /// What a table miss does.
    pub miss: MissMode,
    /// The bridge's groups (`group:ID`), shared between versions that keep them.
    pub groups: std::sync::Arc<ferrovs_config::rules::Groups>,
    /// `rules` as text, when the version was built with them printed (see
    /// [`RuleTables::build`]) or was given them ([`RuleTables::keep_printed`]); changes
    /// in place keep them current by printing only the rules they add.
    printed: Option<PrintedRules>,
}

/// A version's rules printed (see [`RuleTables::printed`]), and the changes made to them
/// in place since they were last taken ([`RuleTables::take_text_edits`]): the daemon
/// writes those to the flows file's journal instead of the whole file.
#[derive(Debug, Clone)]
struct PrintedRules {
    texts: std::sync::Arc<Vec<String>>,
    /// `None` when not known: the texts were printed whole (a build) or given, or more
    /// changes were made than a whole write costs ([`PrintedRules::MAX_EDITS`]).
    edits: Option<Vec<RuleTextEdit>>,
}

impl PrintedRules {
    /// Most edits kept between two takes: a quarter of the rules, at least 1,024 (more
    /// are written whole anyway: see `ferrovs_config::persist`).
    fn max_edits(&self) -> usize {
        (self.texts.len() / 4).max(1024)
    }

    fn note(&mut self, edit: RuleTextEdit) {
        let max = self.max_edits();
        if let Some(edits) = &mut self.edits {
            if edits.len() < max {
                edits.push(edit);
            } else {
                self.edits = None;
            }
        }
    }

    /// The texts, to change (copied first if a caller still holds them, with room for
    /// the changes in place to come: a copy has none).
    fn texts_mut(&mut self) -> &mut Vec<String> {
        let shared = std::sync::Arc::strong_count(&self.texts) > 1;
        let texts = std::sync::Arc::make_mut(&mut self.texts);
        if shared {
            let n = texts.len();
            reserve_for_changes_in_place(texts, n);
        }
        texts
    }

    fn replace(&mut self, i: usize, new: String) {
        let old = std::mem::replace(&mut self.texts_mut()[i], new.clone());
        self.note(RuleTextEdit::Replace { old, new });
    }

    fn push(&mut self, text: String) {
        self.note(RuleTextEdit::Add(text.clone()));
        self.texts_mut().push(text);
    }

    /// Deletes the texts `gone` flags (one flag per text).
    fn delete(&mut self, gone: &[bool]) {
        let texts = self.texts_mut();
        let deleted: Vec<String> =
            texts.iter_mut().zip(gone).filter(|(_, g)| **g).map(|(t, _)| std::mem::take(t)).collect();
        drop_flagged(texts, gone);
        for t in deleted {
            self.note(RuleTextEdit::Delete(t));
        }
    }
}

/// The rules added to one table of a version in place (see [`RuleTables::add_in_place`]),
/// indexed on their own: a lookup consults this index and the table's, and keeps the
/// winner that comes first in lookup order.
#[derive(Debug, Clone)]
pub(crate) struct Delta {
    /// The added rules compiled, in lookup order among themselves.
    pub rules: Vec<CompiledRule>,
    /// The classifier over `rules`.
    pub index: TableIndex,
    /// For each of `rules`, how many of the table's own rules come before it in lookup
    /// order (those of its priority or higher: an added rule comes after every rule of
    /// the version in input order). Added rule `j` comes before the table's rule at
    /// position `i` exactly when `rank[j] <= i`. Ascending.
    pub rank: Vec<u32>,
}

impl Delta {
    fn empty() -> Delta {
        Delta { rules: Vec::new(), index: TableIndex::new(&[]), rank: Vec::new() }
    }
}

/// What [`RuleTables::add_in_place`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPlaceAdd {
    /// Rules of the version before that a rule of the same identity replaced (in place).
    pub replaced: Vec<RuleRef>,
    /// The rules appended.
    pub appended: std::ops::Range<u32>,
}

/// A table's compiled rules in lookup order (see [`RuleTables::in_order`]).
pub(crate) struct InOrder<'a> {
    base: &'a [CompiledRule],
    delta: Option<&'a Delta>,
    i: usize,
    j: usize,
}

impl<'a> Iterator for InOrder<'a> {
    type Item = &'a CompiledRule;

    fn next(&mut self) -> Option<&'a CompiledRule> {
        loop {
            if let Some(d) = self.delta
                && self.j < d.rules.len()
                && d.rank[self.j] as usize <= self.i
            {
                self.j += 1;
                return Some(&d.rules[self.j - 1]);
            }
            let r = self.base.get(self.i)?;
            self.i += 1;
            if !r.dead {
                return Some(r);
            }
        }
    }
}

/// Fewest rules printed on a thread of their own while a version is compiled (see
/// [`RuleTables::build`]); below, a thread costs more than it saves.
pub const PRINT_ON_SIDE_RULES: usize = 50_000;

impl RuleTables {
    /// These tables with the bridge's `groups`, if every group a rule names is one of
    /// them (as OVS refuses a flow-mod naming a missing group).
    pub fn with_groups(mut self, groups: std::sync::Arc<ferrovs_config::rules::Groups>) -> Result<Self, BuildError> {
        for (i, r) in self.rules.iter().enumerate() {
            if let Some(group) = r.groups().find(|g| !groups.contains_key(g)) {
                return Err(BuildError::UnknownGroup { rule: self.source_index[i], group });
            }
        }
        self.groups = groups;
        Ok(self)
    }

    /// Compiles `rules` for a bridge whose OpenFlow ports are `ports` (in the order
    /// `flood`/`all` output to them).
    pub fn new(rules: Vec<Rule>, ports: Vec<u32>) -> Result<RuleTables, BuildError> {
        Self::build(rules, ports, false)
    }

    /// [`RuleTables::new`], and with `print`, the kept rules printed as text (as
    /// `ovs-ofctl` reads them) for [`RuleTables::printed`]: a version of at least
    /// `PRINT_ON_SIDE_RULES` rules is printed on a second thread while it is compiled,
    /// the compiling thread taking its share once done (the daemon writes every rule
    /// change back to its config, and a million rules take most of a second to print on
    /// one thread, more than compiling them takes).
    pub fn build(rules: Vec<Rule>, ports: Vec<u32>, print: bool) -> Result<RuleTables, BuildError> {
        // The identity pass works in the given vector: a rule of an identity seen before
        // is swapped into the first one's place (keeping its position, taking the later
        // rule) and its own position dropped after the pass. Without duplicates (a bulk
        // load) no rule moves: copying a million 344-byte rules cost a tenth of the build.
        let mut kept = rules;
        let n = kept.len();
        reserve_for_changes_in_place(&mut kept, n);
        let mut source_index: Vec<usize> = Vec::with_capacity(per_rule_capacity(n));
        source_index.extend(0..n);
        let mut by_identity = IdentityIndex::with_capacity(per_rule_capacity(n));
        let mut duplicate: Vec<bool> = Vec::new();
        for i in 0..kept.len() {
            let r = &kept[i];
            check_table_and_gotos(r, i)?;
            let h = identity_hash(r.table, r.priority, &r.matches);
            match by_identity.find(h, |k| same_identity(&kept[k], r.table, r.priority, &r.matches)) {
                Some(at) => {
                    kept.swap(at, i);
                    source_index[at] = i;
                    duplicate.resize(kept.len(), false);
                    duplicate[i] = true;
                }
                None => by_identity.insert(h, i),
            }
        }
        if !duplicate.is_empty() {
            drop_flagged(&mut kept, &duplicate);
            drop_flagged(&mut source_index, &duplicate);
            // Positions moved up by the duplicates before them.
            by_identity.close_up(&kept_positions(&duplicate), kept.len());
        }
        // Printing takes longer than compiling: the compiling thread, once done, prints
        // the pieces the printer has not claimed yet.
        let to_print = Queue::new(if print { kept.chunks(PRINT_PIECE).enumerate().collect() } else { Vec::new() });
        let ((tables, warnings, index), printed) = std::thread::scope(|s| {
            let (kept, to_print) = (&kept, &to_print);
            let printer = (print && kept.len() >= PRINT_ON_SIDE_RULES).then(|| s.spawn(move || print_pieces(to_print)));
            let (tables, warnings) = compile_in_order(kept, &source_index);
            let index: Vec<TableIndex> = tables.iter().map(|t| TableIndex::new(t)).collect();
            let printed = print.then(|| {
                let mut pieces = print_pieces(to_print);
                if let Some(p) = printer {
                    pieces.extend(p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
                }
                pieces.sort_unstable_by_key(|p| p.0);
                let mut texts = Vec::with_capacity(per_rule_capacity(kept.len()));
                for (_, piece) in pieces {
                    texts.extend(piece);
                }
                texts
            });
            ((tables, warnings, index), printed)
        });
        let nd_tables = tables.iter().map(|t| t.iter().any(|r| r.nd.is_some())).collect();
        let mut timed: Vec<u32> = (0..kept.len() as u32).filter(|&i| has_timeout(&kept[i as usize])).collect();
        reserve_for_changes_in_place(&mut timed, kept.len());
        Ok(RuleTables {
            timed,
            rules: kept,
            source_index,
            deltas: vec![None; tables.len()],
            dead: 0,
            tables,
            index,
            nd_tables,
            ports,
            warnings,
            by_identity,
            miss: MissMode::Drop,
            groups: Default::default(),
            printed: printed.map(|texts| PrintedRules { texts: std::sync::Arc::new(texts), edits: None }),
        })
    }

    /// The rules as text, in [`RuleTables::rules`] order, if this version was built with
    /// them printed or given them (see [`RuleTables::keep_printed`]). Shared: a change in
    /// place while a caller still holds them copies them first.
    pub fn printed(&self) -> Option<std::sync::Arc<Vec<String>>> {
        self.printed.as_ref().map(|p| p.texts.clone())
    }

    /// The changes made in place to the printed rules (see [`RuleTables::printed`])
    /// since the last call, in order; `None` when they are not known (the rules were
    /// printed whole since, by a build, or given, or changed too much): then the
    /// printed rules must be written whole. Known from now on.
    pub fn take_text_edits(&mut self) -> Option<Vec<RuleTextEdit>> {
        let printed = self.printed.as_mut()?;
        printed.edits.replace(Vec::new())
    }

    /// Makes `edits` the changes to this version's printed rules not yet taken (see
    /// [`RuleTables::take_text_edits`]): a version built from another by a known edit of
    /// its rule list carries on the other's edits with that one's (the slow path
    /// computes them). Too many for a journal: not known.
    /// Most edits [`RuleTables::carry_text_edits`] keeps for this version.
    pub fn max_text_edits(&self) -> usize {
        self.printed.as_ref().map_or(0, PrintedRules::max_edits)
    }

    pub fn carry_text_edits(&mut self, edits: Vec<RuleTextEdit>) {
        if let Some(printed) = &mut self.printed {
            printed.edits = (edits.len() <= printed.max_edits()).then_some(edits);
        }
    }

    /// Keeps `texts`, the rules printed (one per rule, in [`RuleTables::rules`] order),
    /// for [`RuleTables::printed`]: the daemon writes every rule change back as text, and
    /// with them kept, a change in place prints only the rules it adds (printing 100,000
    /// rules takes tens of milliseconds of the slow-path thread; keeping them costs their
    /// text in memory, about 100 bytes a rule). Texts of another count are not kept.
    /// Returns them shared, as [`RuleTables::printed`] gives them.
    pub fn keep_printed(&mut self, mut texts: Vec<String>) -> std::sync::Arc<Vec<String>> {
        // Room for the changes in place, made before the texts are shared.
        reserve_for_changes_in_place(&mut texts, self.rules.len());
        let texts = std::sync::Arc::new(texts);
        if texts.len() == self.rules.len() {
            self.printed = Some(PrintedRules { texts: texts.clone(), edits: None });
        }
        texts
    }

    /// All rules of this version; a [`RuleRef`] indexes this slice.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether a rule of `table` matches a neighbour-discovery field.
    pub fn has_nd_rules(&self, table: u8) -> bool {
        self.nd_tables.get(table as usize).copied().unwrap_or(false)
    }

    /// The rules of `table` that match a neighbour-discovery field.
    pub fn nd_rules(&self, table: u8) -> impl Iterator<Item = RuleRef> + '_ {
        let rules = if self.has_nd_rules(table) { Some(self.in_order(table)) } else { None };
        rules.into_iter().flatten().filter(|r| r.nd.is_some()).map(|r| r.rref)
    }

    /// The compiled rules of `table` in lookup order: the version's, with the rules added
    /// in place since merged in (see [`Delta::rank`]).
    pub(crate) fn in_order(&self, table: u8) -> InOrder<'_> {
        let t = table as usize;
        InOrder {
            base: self.tables.get(t).map_or(&[], Vec::as_slice),
            delta: self.deltas.get(t).and_then(|d| d.as_deref()),
            i: 0,
            j: 0,
        }
    }

    /// Number of rules added in place since the version was built (see
    /// [`RuleTables::add_in_place`]), and of the version's rules deleted in place since
    /// (see [`RuleTables::delete_in_place`]): the work lookups do beyond the version's.
    pub fn changed_in_place(&self) -> usize {
        self.dead + self.deltas.iter().flatten().map(|d| d.rules.len()).sum::<usize>()
    }

    /// Whether `rule` may be a rule of this version as far as its actions go (a
    /// `goto_table` forward to a table that exists, every group it names the bridge's), as
    /// [`RuleTables::build`] and [`RuleTables::with_groups`] check.
    pub fn valid_in_place(&self, rule: &Rule) -> bool {
        self.check_in_place(rule, 0).is_ok()
    }

    /// What [`RuleTables::build`] and [`RuleTables::with_groups`] check of a rule, for
    /// rule `rule` (its number in the change) of a change in place.
    fn check_in_place(&self, r: &Rule, rule: usize) -> Result<(), BuildError> {
        check_table_and_gotos(r, rule)?;
        match r.groups().find(|g| !self.groups.contains_key(g)) {
            Some(group) => Err(BuildError::UnknownGroup { rule, group }),
            None => Ok(()),
        }
    }

    /// Gives rule `r` the actions `actions` and the cookie `cookie` in place (an OpenFlow
    /// modify: its match, and so its compiled form and its place in the index, stay), its
    /// text too if the rules are kept printed.
    pub fn modify_in_place(&mut self, r: RuleRef, actions: Vec<Action>, cookie: u64) {
        let rule = &mut self.rules[r.0 as usize];
        rule.actions = actions;
        rule.cookie = cookie;
        if let Some(printed) = &mut self.printed {
            printed.replace(r.0 as usize, rule.to_string());
        }
    }

    /// `del-flows` in place: deletes the rules `r` for which `gone[r]` holds (`gone` has
    /// one flag per rule), as a build of the rules kept would (the kept rules keep their
    /// order; [`RuleRef`]s close up over the deleted ones: kept rule `r` becomes
    /// `new_position[r]`, returned, `u32::MAX` for a deleted one). Costs a pass over the
    /// rule list and the compiled rules (moving and renumbering, no compiling or
    /// indexing): a deleted rule of the version stays in its table's index, marked dead
    /// (it matches nothing; the index may still spend witness bits on it) until the next
    /// build; one added in place leaves the table's `Delta`, which is indexed again.
    pub fn delete_in_place(&mut self, gone: &[bool]) -> Vec<u32> {
        debug_assert_eq!(gone.len(), self.rules.len());
        let new_position = kept_positions(gone);
        let moved = |c: &mut CompiledRule| {
            if !c.dead {
                c.rref = RuleRef(new_position[c.rref.0 as usize]);
            }
        };
        for (t, table) in self.tables.iter_mut().enumerate() {
            let mut nd = false;
            for c in table.iter_mut() {
                if !c.dead && gone[c.rref.0 as usize] {
                    c.dead = true;
                    self.dead += 1;
                    self.index[t].mark_dead();
                }
                nd |= !c.dead && c.nd.is_some();
                moved(c);
            }
            let delta = self.deltas[t].as_deref();
            self.nd_tables[t] =
                nd || delta.is_some_and(|d| d.rules.iter().any(|c| c.nd.is_some() && !gone[c.rref.0 as usize]));
            let Some(d) = self.deltas[t].as_deref_mut() else { continue };
            let before = d.rules.len();
            let dropped: Vec<bool> = d.rules.iter().map(|c| gone[c.rref.0 as usize]).collect();
            drop_flagged(&mut d.rank, &dropped);
            d.rules.retain(|c| !gone[c.rref.0 as usize]);
            d.rules.iter_mut().for_each(&moved);
            if d.rules.len() != before {
                d.index = TableIndex::beside(&d.rules, &self.index[t]);
            }
        }
        drop_flagged(&mut self.rules, gone);
        drop_flagged(&mut self.source_index, gone);
        self.timed.retain(|&i| !gone[i as usize]);
        self.timed.iter_mut().for_each(|i| *i = new_position[*i as usize]);
        self.by_identity.close_up(&new_position, self.rules.len());
        if let Some(printed) = &mut self.printed {
            printed.delete(gone);
        }
        new_position
    }

    /// Whether `table` may hold a rule (false: it has never had one since this version
    /// was built), so that a lookup by identity in every table skips the empty ones.
    pub fn may_have_rules(&self, table: u8) -> bool {
        let t = table as usize;
        self.tables.get(t).is_some_and(|c| !c.is_empty()) || self.deltas.get(t).is_some_and(Option::is_some)
    }

    /// The rules that may have an idle or hard timeout, in position order: every rule
    /// that has one is among them (a rule that lost its timeout in a change in place may
    /// be too).
    pub fn timed_rules(&self) -> impl Iterator<Item = RuleRef> + '_ {
        self.timed.iter().map(|&i| RuleRef(i))
    }

    /// The rule `r` refers to.
    pub fn rule(&self, r: RuleRef) -> &Rule {
        &self.rules[r.0 as usize]
    }

    /// Index, in the `Vec<Rule>` given to [`RuleTables::new`], of the rule `r` refers to.
    pub fn source_index(&self, r: RuleRef) -> usize {
        self.source_index[r.0 as usize]
    }

    /// The rule with this identity (table, priority, match), if any: used to carry
    /// per-rule counters over from one version to the next.
    pub fn find(&self, table: u8, priority: u16, matches: &Match) -> Option<RuleRef> {
        let h = identity_hash(table, priority, matches);
        self.by_identity.find(h, |k| same_identity(&self.rules[k], table, priority, matches)).map(|k| RuleRef(k as u32))
    }

    /// The bridge's ports, in flood order.
    pub fn ports(&self) -> &[u32] {
        &self.ports
    }

    /// Fields dropped by normalisation, one message each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Number of classifier groups (distinct mask and priority pairs) over all tables.
    pub fn index_groups(&self) -> usize {
        self.index.iter().chain(self.deltas.iter().flatten().map(|d| &d.index)).map(TableIndex::groups).sum()
    }

    /// Approximate heap bytes of the compiled rules and the classifier (not counting
    /// the source rules and the identity map).
    pub fn index_heap_bytes(&self) -> usize {
        let compiled: usize = self.tables.iter().map(|t| t.len() * std::mem::size_of::<CompiledRule>()).sum();
        let deltas: usize = self
            .deltas
            .iter()
            .flatten()
            .map(|d| d.rules.len() * (std::mem::size_of::<CompiledRule>() + 4) + d.index.heap_bytes())
            .sum();
        compiled + deltas + self.index.iter().map(TableIndex::heap_bytes).sum::<usize>()
    }

    /// The mask of rule `r`'s match over the key (after normalisation).
    pub fn rule_mask(&self, r: RuleRef) -> Mask {
        self.in_order(self.rules[r.0 as usize].table).find(|c| c.rref == r).map(|c| c.mask).unwrap_or(Mask::ZERO)
    }

    /// Most rules [`RuleTables::add_in_place`] keeps beside a version of `n` rules before
    /// the version should be built again: each in-place change re-indexes the added rules
    /// of its tables (about a microsecond each), a build all rules (one to two), so the
    /// bound grows with the version but much slower: sqrt(n) x 4 (400 at 10,000 rules,
    /// 1,264 at 100,000, 4,000 at 10^6), at least 64 and at most 8,192.
    pub fn in_place_limit(n: usize) -> usize {
        (((n as f64).sqrt() * 4.0) as usize).clamp(64, 8192)
    }

    /// `add-flows` of `new` into this version in place: the result is what
    /// [`RuleTables::build`] over this version's rules followed by `new` gives (a rule of
    /// an existing identity replaces it where it is, keeping its [`RuleRef`]; the others
    /// are appended, each after the existing rules of its table and priority), at a cost
    /// that grows with `new` and with the rules added in place since the version was
    /// built, not with the version: the appended rules of a table go into its `Delta`,
    /// a small index of their own that lookups consult beside the table's. Nothing
    /// changes if an error is returned (rules are numbered as in `build`'s list: this
    /// version's rules, then `new`). If the rules are kept printed (see
    /// [`RuleTables::printed`]), the added ones are printed.
    pub fn add_in_place(&mut self, new: Vec<Rule>) -> Result<InPlaceAdd, BuildError> {
        let n_old = self.rules.len();
        for (i, r) in new.iter().enumerate() {
            self.check_in_place(r, n_old + i)?;
        }
        let mut replaced = Vec::new();
        let mut touched = Vec::new();
        for (i, r) in new.into_iter().enumerate() {
            let h = identity_hash(r.table, r.priority, &r.matches);
            let rules = &self.rules;
            match self.by_identity.find(h, |k| same_identity(&rules[k], r.table, r.priority, &r.matches)) {
                Some(at) => {
                    // Same match: the compiled rule and the index stay as they are.
                    if at < n_old && !replaced.contains(&RuleRef(at as u32)) {
                        replaced.push(RuleRef(at as u32));
                    }
                    if let Some(printed) = &mut self.printed {
                        printed.replace(at, r.to_string());
                    }
                    if has_timeout(&r)
                        && let Err(k) = self.timed.binary_search(&(at as u32))
                    {
                        self.timed.insert(k, at as u32);
                    }
                    self.rules[at] = r;
                    self.source_index[at] = n_old + i;
                }
                None => {
                    let pos = self.rules.len();
                    self.by_identity.insert(h, pos);
                    let (c, dropped) = compile_rule(&r, RuleRef(pos as u32));
                    for d in dropped {
                        self.warnings.push(dropped_warning(n_old + i, &r, d));
                    }
                    let t = r.table as usize;
                    self.nd_tables[t] |= c.nd.is_some();
                    let base = &self.tables[t];
                    let d = self.deltas[t].get_or_insert_with(|| Box::new(Delta::empty()));
                    // After every rule of its priority or higher: the latest in input order.
                    let at = d.rules.partition_point(|o| o.priority >= r.priority);
                    d.rank.insert(at, base.partition_point(|o| o.priority >= r.priority) as u32);
                    d.rules.insert(at, c);
                    if !touched.contains(&t) {
                        touched.push(t);
                    }
                    if let Some(printed) = &mut self.printed {
                        printed.push(r.to_string());
                    }
                    if has_timeout(&r) {
                        self.timed.push(pos as u32);
                    }
                    self.rules.push(r);
                    self.source_index.push(n_old + i);
                }
            }
        }
        for t in touched {
            if let Some(d) = self.deltas[t].as_deref_mut() {
                d.index = TableIndex::beside(&d.rules, &self.index[t]);
            }
        }
        Ok(InPlaceAdd { replaced, appended: n_old as u32..self.rules.len() as u32 })
    }
}

/// Gives `v`, a vector of (at most) one entry per rule of a version of `n` rules, room
/// for the entries of the rules it may get in place before it is built again
/// ([`RuleTables::in_place_limit`]), so that no change in place grows it. Grown by
/// doubling instead, the per-rule vectors (rules, their positions, texts, ids, counters)
/// were each copied by the first change after a build or a start, those below the
/// allocator's mmap threshold with their pages faulted in anew: 21-44 ms for the first
/// `add-flow` at 842,013 rules against 0.4-0.5 ms for the next.
pub(crate) fn reserve_for_changes_in_place<T>(v: &mut Vec<T>, n: usize) {
    v.reserve_exact(RuleTables::in_place_limit(n));
}

/// The capacity of a per-rule vector of a version of `n` rules: its entries and the room
/// of [`reserve_for_changes_in_place`].
pub(crate) fn per_rule_capacity(n: usize) -> usize {
    n + RuleTables::in_place_limit(n)
}

/// `n` copies of `value` in a vector of [`per_rule_capacity`], allocated once.
pub(crate) fn per_rule_vec<T: Clone>(value: T, n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(per_rule_capacity(n));
    v.resize(n, value);
    v
}

/// Whether rule `r` expires by an idle or a hard timeout.
fn has_timeout(r: &Rule) -> bool {
    r.idle_timeout != 0 || r.hard_timeout != 0
}

/// A fast, non-keyed hasher (multiply-rotate, as rustc's) for keys that no packet
/// chooses: rule identities (rules come from the administrator, and SipHash over a
/// million matches costs more than the rest of building a version) and the slow path's
/// own numbers (a PMD's flow ids). Never for keys taken from packets: without a secret
/// key, colliding ones are easy to make.
#[derive(Default, Clone, Copy)]
pub struct IdentityHasher(u64);

/// Builds [`IdentityHasher`]s, for maps keyed by rule identities, masks or flow ids.
pub type IdentityBuildHasher = BuildHasherDefault<IdentityHasher>;

impl IdentityHasher {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for IdentityHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The hash of a rule identity (table, priority, match): which fields the match has,
/// then the present fields' values packed into 64-bit words. The derived `Hash` fed the
/// hasher a discriminant, a length and the bytes of every field, present or not (about
/// seventy steps per rule, and every rule of a change is hashed). Equal identities hash
/// alike; the match is taken apart without `..`, so a field added to `Match` does not
/// compile here until it is hashed.
pub(crate) fn identity_hash(table: u8, priority: u16, matches: &Match) -> u64 {
    let Match {
        in_port,
        dl_src,
        dl_dst,
        dl_type,
        vlan_tci,
        nw_src,
        nw_dst,
        ipv6_src,
        ipv6_dst,
        ipv6_label,
        nw_proto,
        nw_tos,
        nw_ttl,
        nw_frag,
        tp_src,
        tp_dst,
        tcp_flags,
        arp_sha,
        arp_tha,
        nd_target,
        nd_sll,
        nd_tll,
        mpls_lse,
        nd_reserved,
        nd_options_type,
        regs,
        metadata,
    } = matches;
    let mut h = IdentityHasher::default();
    // Which fields are present (so a missing field and a zero one differ).
    let present = [
        in_port.is_some(),
        dl_src.is_some(),
        dl_dst.is_some(),
        dl_type.is_some(),
        vlan_tci.is_some(),
        nw_src.is_some(),
        nw_dst.is_some(),
        ipv6_src.is_some(),
        ipv6_dst.is_some(),
        ipv6_label.is_some(),
        nw_proto.is_some(),
        nw_tos.is_some(),
        nw_ttl.is_some(),
        nw_frag.is_some(),
        tp_src.is_some(),
        tp_dst.is_some(),
        tcp_flags.is_some(),
        arp_sha.is_some(),
        arp_tha.is_some(),
        nd_target.is_some(),
        nd_sll.is_some(),
        nd_tll.is_some(),
        mpls_lse.is_some(),
        nd_reserved.is_some(),
        nd_options_type.is_some(),
        metadata.is_some(),
    ];
    let bits = present.iter().enumerate().fold(0u64, |b, (i, &p)| b | u64::from(p) << i);
    h.add(u64::from(table) | u64::from(priority) << 8 | bits << 24);
    let m16 = |m: &Option<Masked<u16>>| m.map_or(0, |m| u64::from(m.value) | u64::from(m.mask) << 16);
    let m8 = |m: &Option<Masked<u8>>| m.map_or(0, |m| u64::from(m.value) | u64::from(m.mask) << 8);
    let m32 = |m: &Option<Masked<u32>>| m.map_or(0, |m| u64::from(m.value) | u64::from(m.mask) << 32);
    h.add(
        u64::from(in_port.unwrap_or(0))
            | u64::from(dl_type.unwrap_or(0)) << 32
            | u64::from(nw_proto.unwrap_or(0)) << 48
            | u64::from(nw_ttl.unwrap_or(0)) << 56,
    );
    h.add(m16(vlan_tci) | m8(nw_tos) << 32 | m8(nw_frag) << 48);
    h.add(m16(tp_src) | m16(tp_dst) << 32);
    h.add(m16(tcp_flags) | u64::from(nd_reserved.unwrap_or(0)) << 32);
    let v4 = |m: &Option<Masked<Ipv4Addr>>| {
        m.map_or(0, |m| u64::from(u32::from(m.value)) | u64::from(u32::from(m.mask)) << 32)
    };
    h.add(v4(nw_src));
    h.add(v4(nw_dst));
    for m in [ipv6_label, mpls_lse] {
        if m.is_some() {
            h.add(m32(m));
        }
    }
    for m in [dl_src, dl_dst, arp_sha, arp_tha, nd_sll, nd_tll].into_iter().flatten() {
        h.add(mac_to_u64(m.value));
        h.add(mac_to_u64(m.mask));
    }
    for m in [ipv6_src, ipv6_dst, nd_target].into_iter().flatten() {
        for a in [m.value, m.mask] {
            let a = u128::from(a);
            h.add(a as u64);
            h.add((a >> 64) as u64);
        }
    }
    if let Some(t) = nd_options_type {
        h.add(u64::from(*t));
    }
    if let Some(md) = metadata {
        h.add(md.value);
        h.add(md.mask);
    }
    for &(n, r) in regs {
        h.add(u64::from(n));
        h.add(u64::from(r.value) | u64::from(r.mask) << 32);
    }
    h.finish()
}

fn same_identity(r: &Rule, table: u8, priority: u16, matches: &Match) -> bool {
    r.table == table && r.priority == priority && &r.matches == matches
}

/// Rule identities -> positions in a rule list, without copies of the matches: the
/// first position of each identity hash, and a chain through positions of equal hash.
/// The caller compares the rules themselves.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdentityIndex {
    first: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
    /// For each position, the next position of the same hash (`u32::MAX`: none).
    next: Vec<u32>,
}

impl IdentityIndex {
    pub fn with_capacity(n: usize) -> IdentityIndex {
        IdentityIndex { first: HashMap::with_capacity_and_hasher(n, Default::default()), next: Vec::with_capacity(n) }
    }

    /// The first position of hash `h` for which `same` holds.
    pub fn find(&self, h: u64, same: impl Fn(usize) -> bool) -> Option<usize> {
        let mut at = *self.first.get(&h)?;
        while at != u32::MAX {
            if same(at as usize) {
                return Some(at as usize);
            }
            at = self.next[at as usize];
        }
        None
    }

    /// Drops the recorded positions `p` with `new_position[p] == u32::MAX` and moves the
    /// others to `new_position[p]` (of which there are `n`), keeping every chain whole.
    pub fn close_up(&mut self, new_position: &[u32], n: usize) {
        let old_next = std::mem::take(&mut self.next);
        let mut next = per_rule_vec(u32::MAX, n);
        self.first.retain(|_, head| {
            let (mut at, mut new_head, mut last) = (*head, u32::MAX, u32::MAX);
            while at != u32::MAX {
                let moved = new_position[at as usize];
                if moved != u32::MAX {
                    if last == u32::MAX {
                        new_head = moved;
                    } else {
                        next[last as usize] = moved;
                    }
                    last = moved;
                }
                at = old_next[at as usize];
            }
            *head = new_head;
            new_head != u32::MAX
        });
        self.next = next;
    }

    /// Records position `pos` with hash `h` (positions are inserted in increasing order,
    /// some may be skipped).
    pub fn insert(&mut self, h: u64, pos: usize) {
        debug_assert!(pos >= self.next.len());
        let prev = self.first.insert(h, pos as u32).unwrap_or(u32::MAX);
        self.next.resize(pos, u32::MAX);
        self.next.push(prev);
    }
}

fn mac(m: &Masked<[u8; 6]>) -> (u128, u128) {
    (mac_to_u64(m.value) as u128, mac_to_u64(m.mask) as u128)
}
fn v4(m: &Masked<Ipv4Addr>) -> (u128, u128) {
    (u32::from(m.value) as u128, u32::from(m.mask) as u128)
}
fn v6(m: &Masked<Ipv6Addr>) -> (u128, u128) {
    (u128::from(m.value), u128::from(m.mask))
}

/// Normalises and compiles a match. Returns the field matches and the names of the
/// fields dropped for a missing prerequisite. (Tests: the rest of the crate takes the
/// field matches one by one, without a list.)
#[cfg(test)]
pub(crate) fn compile_match(m: &Match) -> (Vec<FieldMatch>, Vec<&'static str>) {
    let mut out = Vec::new();
    let dropped = for_each_field_match(m, |fm| out.push(fm));
    (out, dropped)
}

/// Normalises a match and gives `each` its field matches, in [`FieldSet::ORDER`];
/// returns the names of the fields dropped for a missing prerequisite. (Compiling a
/// rule keeps no list of them: see [`FieldSet`].)
fn for_each_field_match(m: &Match, mut each: impl FnMut(FieldMatch)) -> Vec<&'static str> {
    let mut dropped = Vec::new();
    let is_ip4 = m.dl_type == Some(ethertype::IPV4);
    let is_ip6 = m.dl_type == Some(ethertype::IPV6);
    let is_arp = matches!(m.dl_type, Some(ethertype::ARP | ethertype::RARP));
    let is_mpls = matches!(m.dl_type, Some(ethertype::MPLS | ethertype::MPLS_MCAST));
    let is_ip = is_ip4 || is_ip6;
    let proto = if is_ip { m.nw_proto } else { None };
    let has_ports = matches!(proto, Some(ipproto::TCP | ipproto::UDP | ipproto::SCTP))
        || (is_ip4 && proto == Some(ipproto::ICMP))
        || (is_ip6 && proto == Some(ipproto::ICMPV6));
    let is_tcp = proto == Some(ipproto::TCP);

    let mut push = |ok: bool, name: &'static str, field: Field, vm: Option<(u128, u128)>| {
        if let Some((value, mask)) = vm {
            if !ok {
                dropped.push(name);
                return;
            }
            let mask = mask & field.all_ones();
            if mask != 0 {
                each(FieldMatch { field, value: value & mask, mask });
            }
        }
    };
    let full = |f: Field, v: u128| (v, f.all_ones());
    push(true, "in_port", Field::InPort, m.in_port.map(|p| full(Field::InPort, p as u128)));
    push(true, "dl_type", Field::DlType, m.dl_type.map(|t| full(Field::DlType, t as u128)));
    push(true, "vlan_tci", Field::VlanTci, m.vlan_tci.map(|v| (v.value as u128, v.mask as u128)));
    push(true, "dl_src", Field::DlSrc, m.dl_src.as_ref().map(mac));
    push(true, "dl_dst", Field::DlDst, m.dl_dst.as_ref().map(mac));
    push(is_ip || is_arp, "nw_proto", Field::NwProto, m.nw_proto.map(|p| full(Field::NwProto, p as u128)));
    push(is_ip4 || is_arp, "nw_src", Field::NwSrc, m.nw_src.as_ref().map(v4));
    push(is_ip4 || is_arp, "nw_dst", Field::NwDst, m.nw_dst.as_ref().map(v4));
    push(is_ip6, "ipv6_src", Field::Ipv6Src, m.ipv6_src.as_ref().map(v6));
    push(is_ip6, "ipv6_dst", Field::Ipv6Dst, m.ipv6_dst.as_ref().map(v6));
    push(is_ip6, "ipv6_label", Field::Ipv6Label, m.ipv6_label.map(|v| (v.value as u128, v.mask as u128)));
    push(is_ip, "nw_tos", Field::NwTos, m.nw_tos.map(|v| (v.value as u128, v.mask as u128)));
    push(is_ip, "nw_ttl", Field::NwTtl, m.nw_ttl.map(|t| full(Field::NwTtl, t as u128)));
    push(is_ip, "nw_frag", Field::NwFrag, m.nw_frag.map(|v| (v.value as u128, v.mask as u128)));
    push(has_ports, "tp_src", Field::TpSrc, m.tp_src.map(|v| (v.value as u128, v.mask as u128)));
    push(has_ports, "tp_dst", Field::TpDst, m.tp_dst.map(|v| (v.value as u128, v.mask as u128)));
    push(is_tcp, "tcp_flags", Field::TcpFlags, m.tcp_flags.map(|v| (v.value as u128, v.mask as u128)));
    push(is_arp, "arp_sha", Field::ArpSha, m.arp_sha.as_ref().map(mac));
    push(is_arp, "arp_tha", Field::ArpTha, m.arp_tha.as_ref().map(mac));
    push(is_mpls, "mpls_lse", Field::MplsLse, m.mpls_lse.map(|v| (v.value as u128, v.mask as u128)));
    dropped
}

/// Rules printed per piece claimed by one thread of [`RuleTables::build`].
const PRINT_PIECE: usize = 8192;

/// Prints the pieces of rules (numbered, of [`PRINT_PIECE`] rules) this thread claims
/// from `to_print` until none is left, each with its number.
fn print_pieces(to_print: &Queue<(usize, &[Rule])>) -> Vec<(usize, Vec<String>)> {
    let mut pieces = Vec::new();
    while let Some((n, piece)) = to_print.take() {
        pieces.push((n, piece.iter().map(ferrovs_config::rule_text).collect()));
    }
    pieces
}

/// The kept rules compiled per table in lookup order, and the warnings for
/// fields dropped for a missing prerequisite, in rule order.
fn compile_in_order(kept: &[Rule], source_index: &[usize]) -> (Vec<Vec<CompiledRule>>, Vec<String>) {
    compile_on_threads(kept, source_index, threads_for(kept.len()))
}

/// [`compile_in_order`] on `threads` threads.
fn compile_on_threads(kept: &[Rule], source_index: &[usize], threads: usize) -> (Vec<Vec<CompiledRule>>, Vec<String>) {
    // Lookup order: by table, highest priority first, equal priorities in input order.
    // A counting sort on (table, priority): every rule's place is known before any is
    // compiled, so the rules are read in input order and no compiled rule is moved. (A
    // stable sort of compiled rules took a quarter of the build; compiling in lookup
    // order, after a sort of packed keys, read a large set's rules in a jump from one
    // to the next: a rule is hundreds of bytes and the rules of one priority are spread
    // over the whole list, so each was a cache and TLB miss, 0.3-0.4 s of a million-rule
    // build.)
    let key = |r: &Rule| u32::from(r.table) << 16 | u32::from(u16::MAX - r.priority);
    let mut buckets: HashMap<u32, u32, IdentityBuildHasher> = HashMap::default();
    for r in kept {
        buckets.entry(key(r)).or_insert(0);
    }
    // The (table, priority) buckets, numbered in lookup order.
    let mut keys: Vec<u32> = buckets.keys().copied().collect();
    keys.sort_unstable();
    for (b, k) in keys.iter().enumerate() {
        buckets.insert(*k, b as u32);
    }
    let bucket: Vec<u32> = kept.iter().map(|r| buckets[&key(r)]).collect();
    // The input cut into one contiguous piece per thread; each piece's rules of a bucket
    // take a run of the bucket's slots, in piece order (so input order within a bucket).
    let piece_len = kept.len().div_ceil(threads.max(1)).max(1);
    let pieces: Vec<std::ops::Range<usize>> =
        (0..kept.len()).step_by(piece_len).map(|a| a..(a + piece_len).min(kept.len())).collect();
    let counts: Vec<Vec<u32>> = pieces
        .iter()
        .map(|p| {
            let mut c = vec![0u32; keys.len()];
            for &b in &bucket[p.clone()] {
                c[b as usize] += 1;
            }
            c
        })
        .collect();
    let mut per_table = vec![0usize; N_TABLES];
    for (b, k) in keys.iter().enumerate() {
        per_table[(k >> 16) as usize] += counts.iter().map(|c| c[b] as usize).sum::<usize>();
    }
    // Each table's vector is made whole first (of placeholders: a compiled rule is cache-
    // line aligned, so a growing vector is reallocated by copying all of it again), then
    // cut into the runs.
    let mut tables: Vec<Vec<CompiledRule>> =
        per_table.into_iter().map(|n| vec![CompiledRule::placeholder(); n]).collect();
    let mut runs: Vec<Vec<&mut [CompiledRule]>> = pieces.iter().map(|_| Vec::with_capacity(keys.len())).collect();
    let mut slots = tables.iter_mut().map(|t| t.as_mut_slice());
    let (mut table, mut rest) = (u32::MAX, &mut [][..]);
    for (b, k) in keys.iter().enumerate() {
        while k >> 16 != table {
            rest = slots.next().expect("a vector per table");
            table = table.wrapping_add(1);
        }
        for (piece_runs, c) in runs.iter_mut().zip(&counts) {
            let (run, after) = std::mem::take(&mut rest).split_at_mut(c[b] as usize);
            piece_runs.push(run);
            rest = after;
        }
    }
    let queue = Queue::new(pieces.into_iter().zip(runs).collect());
    let bucket = &bucket;
    let mut warnings = on_threads(threads, || {
        let mut warnings = Vec::new();
        while let Some((piece, mut runs)) = queue.take() {
            for i in piece {
                let (c, dropped) = compile_rule(&kept[i], RuleRef(i as u32));
                for d in dropped {
                    warnings.push((i, dropped_warning(source_index[i], &kept[i], d)));
                }
                let run = &mut runs[bucket[i] as usize];
                let (slot, after) = std::mem::take(run).split_first_mut().expect("a slot counted for each rule");
                *slot = c;
                *run = after;
            }
        }
        warnings
    });
    warnings.sort_by_key(|w| w.0);
    let warnings = warnings.into_iter().map(|w| w.1).collect();
    (tables, warnings)
}

/// For each position of a list, its position once the flagged ones are removed
/// (`u32::MAX` for those).
fn kept_positions(flags: &[bool]) -> Vec<u32> {
    let mut next = 0;
    flags
        .iter()
        .map(|&f| {
            if f {
                return u32::MAX;
            }
            next += 1;
            next - 1
        })
        .collect()
}

/// What [`RuleTables::build`] checks of a rule alone (number `rule` of its list): its
/// table exists, and every `goto_table` goes forward to one that does.
fn check_table_and_gotos(r: &Rule, rule: usize) -> Result<(), BuildError> {
    if r.table as usize >= N_TABLES {
        return Err(BuildError::BadTable { rule, table: r.table });
    }
    for a in &r.actions {
        match a {
            Action::GotoTable(t) if *t <= r.table || *t as usize >= N_TABLES => {
                return Err(BuildError::GotoBackwards { rule, table: r.table, target: *t });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Removes the elements `v[i]` with `flags[i]` (elements past the flags stay), keeping
/// the order of the rest.
pub(crate) fn drop_flagged<T>(v: &mut Vec<T>, flags: &[bool]) {
    let mut dropped = flags.iter();
    v.retain(|_| !dropped.next().copied().unwrap_or(false));
}

/// Rule `r` compiled, as [`RuleTables`] refers to it by `rref`, and the names of the
/// fields dropped for a missing prerequisite.
fn compile_rule(r: &Rule, rref: RuleRef) -> (CompiledRule, Vec<&'static str>) {
    let mut value = FlowKey::ZERO;
    let mut mask = Mask::ZERO;
    let mut field_set = FieldSet::default();
    let dropped = for_each_field_match(&r.matches, |fm| {
        fields::add_to(&mut value, &mut mask, &fm);
        field_set.insert(fm.field);
    });
    let pipeline = PipelineMatch::of(&r.matches);
    let nd = NdMatch::of(&r.matches).map(Box::new);
    (CompiledRule { rref, value, mask, field_set, pipeline, nd, priority: r.priority, dead: false }, dropped)
}

/// The warning for field `dropped` of rule `r`, number `rule` of its list.
fn dropped_warning(rule: usize, r: &Rule, dropped: &str) -> String {
    format!(
        "rule {rule} (table {}, priority {}): {dropped} ignored, its prerequisite is not matched",
        r.table, r.priority
    )
}

/// The flow key value and mask a match describes (fields whose prerequisite is missing
/// are left out, as when compiling a rule). `ferrovs-ctl trace` uses it to turn a packet
/// described in `ovs-ofctl` syntax into a flow key.
pub fn match_key(m: &Match) -> (FlowKey, Mask) {
    let mut value = FlowKey::ZERO;
    let mut mask = Mask::ZERO;
    for_each_field_match(m, |fm| fields::add_to(&mut value, &mut mask, &fm));
    (value, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(table: u8, priority: u16, m: Match, actions: Vec<Action>) -> Rule {
        Rule { table, priority, cookie: 0, idle_timeout: 0, hard_timeout: 0, send_flow_rem: false, matches: m, actions }
    }

    /// Compiling on several threads gives the tables and warnings compiling on one does:
    /// every rule in its place, in lookup order, over several tables and pieces.
    #[test]
    fn compiling_on_threads_is_compiling_in_order() {
        let rules: Vec<Rule> = (0..3 * 4096 + 77)
            .map(|i| {
                let line = match i % 4 {
                    0 => format!(
                        "table={},priority={},tcp,nw_dst=10.{}.{}.0/24,actions=drop",
                        i % 3,
                        i % 7,
                        i >> 8 & 255,
                        i & 255
                    ),
                    1 => format!("priority={},udp,tp_dst={},actions=output:1", i % 5, i % 65_000),
                    2 => format!("table=7,priority={},in_port={},actions=output:2", i % 11, i % 200 + 1),
                    _ => format!("priority=3,ip,nw_src={}.0.0.0/8,actions=drop", i % 250),
                };
                ferrovs_config::parse_flow(&line).unwrap()
            })
            .collect();
        let mut rules = rules;
        // A field dropped for its missing prerequisite: a warning, in rule order.
        rules[5].matches.tp_dst = Some(Masked { value: 80, mask: 0xffff });
        rules[5].matches.nw_proto = None;
        rules[9_000].matches.tp_src = Some(Masked { value: 81, mask: 0xffff });
        rules[9_000].matches.nw_proto = None;
        let source: Vec<usize> = (0..rules.len()).collect();
        let (one, warnings_one) = compile_on_threads(&rules, &source, 1);
        let (three, warnings_three) = compile_on_threads(&rules, &source, 3);
        assert_eq!(warnings_one.len(), 2);
        assert_eq!(warnings_three, warnings_one);
        let view = |t: &Vec<Vec<CompiledRule>>| -> Vec<(u32, FlowKey, Mask, FieldSet, u16, bool)> {
            t.iter().flatten().map(|c| (c.rref.0, c.value, c.mask, c.field_set, c.priority, c.dead)).collect()
        };
        assert_eq!(one.iter().map(Vec::len).collect::<Vec<_>>(), three.iter().map(Vec::len).collect::<Vec<_>>());
        assert_eq!(view(&three), view(&one));
        assert!(view(&one).iter().all(|c| !c.5 && c.0 != u32::MAX), "no placeholder left");
        // Against compiling rule by rule in lookup order: by table, highest priority
        // first, equal priorities in input order.
        let mut by_order: Vec<usize> = (0..rules.len()).collect();
        by_order.sort_by_key(|&i| (rules[i].table, u16::MAX - rules[i].priority, i));
        let reference: Vec<_> = by_order
            .iter()
            .map(|&i| {
                let c = compile_rule(&rules[i], RuleRef(i as u32)).0;
                (c.rref.0, c.value, c.mask, c.field_set, c.priority, c.dead)
            })
            .collect();
        assert_eq!(view(&three), reference);
        // Fewer rules than threads, and none.
        for n in [0, 1, 2, 5] {
            let (one, _) = compile_on_threads(&rules[..n], &source[..n], 1);
            let (three, _) = compile_on_threads(&rules[..n], &source[..n], 3);
            assert_eq!(view(&three), view(&one), "{n} rules");
            assert_eq!(view(&one).len(), n);
        }
    }

    /// Several rules of one identity: the first one's position keeps the last one's
    /// rule, the others go, later positions close up, and every kept rule is found by
    /// identity at its new position.
    #[test]
    fn repeated_identities_keep_the_first_position_and_the_last_rule() {
        let m = |port: u32| Match { in_port: Some(port), ..Match::default() };
        let rules = vec![
            rule(0, 1, m(1), vec![Action::Output(10)]),
            rule(0, 1, m(2), vec![Action::Output(20)]),
            rule(0, 1, m(1), vec![Action::Output(11)]),
            rule(0, 1, m(3), vec![Action::Output(30)]),
            rule(0, 1, m(1), vec![Action::Output(12)]),
            rule(0, 1, m(2), vec![Action::Output(21)]),
            rule(1, 1, m(1), vec![Action::Output(40)]),
        ];
        let t = RuleTables::new(rules, vec![1, 2, 3]).unwrap();
        let kept: Vec<(u8, Option<u32>, Vec<Action>)> =
            t.rules().iter().map(|r| (r.table, r.matches.in_port, r.actions.clone())).collect();
        assert_eq!(
            kept,
            vec![
                (0, Some(1), vec![Action::Output(12)]),
                (0, Some(2), vec![Action::Output(21)]),
                (0, Some(3), vec![Action::Output(30)]),
                (1, Some(1), vec![Action::Output(40)]),
            ]
        );
        let sources: Vec<usize> = (0..4).map(|i| t.source_index(RuleRef(i))).collect();
        assert_eq!(sources, vec![4, 5, 3, 6]);
        for (i, r) in t.rules().iter().enumerate() {
            assert_eq!(t.find(r.table, r.priority, &r.matches), Some(RuleRef(i as u32)));
        }
        assert_eq!(t.find(0, 1, &m(4)), None);
    }

    #[test]
    fn sorts_by_priority_and_replaces_identical_rules() {
        let ip = Match { dl_type: Some(ethertype::IPV4), ..Match::default() };
        let rules = vec![
            rule(0, 10, Match::default(), vec![Action::Output(1)]),
            rule(0, 20, ip.clone(), vec![Action::Output(2)]),
            rule(0, 10, Match::default(), vec![Action::Output(3)]),
        ];
        let t = RuleTables::new(rules, vec![1, 2, 3]).unwrap();
        assert_eq!(t.rules().len(), 2);
        let order: Vec<u16> = t.tables[0].iter().map(|c| t.rule(c.rref).priority).collect();
        assert_eq!(order, vec![20, 10]);
        let low = t.tables[0][1].rref;
        assert_eq!(t.rule(low).actions, vec![Action::Output(3)]);
        assert_eq!(t.source_index(low), 2);
        assert_eq!(t.find(0, 20, &ip), Some(t.tables[0][0].rref));
    }

    /// A compiled rule's field matches, read from its key/mask pair and field set, are
    /// the compiled match's list, in its order (the translator's witness choice follows
    /// it), for every family of fields that share key words.
    #[test]
    fn field_matches_read_back_from_the_key_in_compile_order() {
        for text in [
            "in_port=3,dl_src=00:11:22:00:00:00/ff:ff:ff:00:00:00,dl_dst=02:00:00:00:00:01,dl_vlan=5,tcp,\
             nw_src=10.1.0.0/16,nw_dst=192.0.2.1,nw_tos=32,nw_ttl=9,ip_frag=first,tp_src=0x1000/0xf000,tp_dst=443,\
             tcp_flags=+syn-ack,actions=drop",
            "udp6,ipv6_src=2001:db8::/32,ipv6_dst=2001:db8::1,ipv6_label=0x12345,tp_dst=53,actions=drop",
            "arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8,arp_op=1,arp_sha=02:00:00:00:00:02,arp_tha=02:00:00:00:00:03,\
             actions=drop",
            "mpls,mpls_label=17,mpls_tc=3,mpls_bos=1,actions=drop",
            "icmp6,icmp_type=135,nd_target=fd00::1,actions=drop",
            "actions=drop",
        ] {
            let r = ferrovs_config::parse_flow(text).unwrap();
            let (listed, _) = compile_match(&r.matches);
            let t = RuleTables::new(vec![r], vec![]).unwrap();
            let read: Vec<FieldMatch> = t.tables[0][0].fields().collect();
            assert_eq!(read, listed, "{text}");
        }
    }

    #[test]
    fn drops_fields_without_prerequisites() {
        let m = Match {
            nw_dst: Some(Masked { value: Ipv4Addr::new(10, 0, 0, 0), mask: Ipv4Addr::new(255, 0, 0, 0) }),
            tp_dst: Some(Masked { value: 80, mask: 0xffff }),
            ..Match::default()
        };
        let t = RuleTables::new(vec![rule(0, 1, m, vec![])], vec![]).unwrap();
        assert_eq!(t.warnings().len(), 2);
        assert!(t.tables[0][0].mask.is_zero());
    }

    #[test]
    fn refuses_backward_goto() {
        let r = rule(3, 1, Match::default(), vec![Action::GotoTable(2)]);
        assert_eq!(
            RuleTables::new(vec![r], vec![]).unwrap_err(),
            BuildError::GotoBackwards { rule: 0, table: 3, target: 2 }
        );
    }

    /// The rules with a timeout are among [`RuleTables::timed_rules`] (ascending, in
    /// range) after a build and after every change in place: rules added with and without
    /// timeouts, a rule replaced by one with a timeout, rules deleted (the rest renumbered).
    /// A version has room in every per-rule vector for the rules it may get in place
    /// before it is built again: none of them moves (is grown) while it gets them, as
    /// built (printed or not), after a delete in place, and with texts kept.
    #[test]
    fn changes_in_place_up_to_the_limit_move_no_per_rule_vector() {
        let r =
            |i: u32| rule(0, (i % 7) as u16, Match { in_port: Some(i), ..Match::default() }, vec![Action::Output(1)]);
        let addresses = |t: &RuleTables| {
            let printed = t.printed.as_ref().map(|p| p.texts.as_ptr());
            (t.rules.as_ptr(), t.source_index.as_ptr(), t.by_identity.next.as_ptr(), t.timed.as_ptr(), printed)
        };
        let n = 3000;
        let limit = RuleTables::in_place_limit(n as usize);
        for (print, delete, keep) in
            [(false, false, false), (true, false, false), (false, true, false), (false, false, true)]
        {
            let mut t = RuleTables::build((0..n).map(r).collect(), vec![1], print).unwrap();
            let mut next = n;
            if delete {
                let gone: Vec<bool> = (0..t.rules().len()).map(|i| i % 100 == 0).collect();
                t.delete_in_place(&gone);
            }
            if keep {
                let texts = t.rules().iter().map(ToString::to_string).collect();
                drop(t.keep_printed(texts));
            }
            let before = addresses(&t);
            while t.changed_in_place() < limit {
                let timed = Rule { idle_timeout: 5, ..r(next) };
                t.add_in_place(vec![timed]).unwrap();
                next += 1;
            }
            assert_eq!(addresses(&t), before, "printed {print}, after a delete {delete}, texts kept {keep}");
        }
    }

    #[test]
    fn timed_rules_hold_every_rule_with_a_timeout_through_changes_in_place() {
        let timed = |i: u32, idle: u16, hard: u16| Rule {
            idle_timeout: idle,
            hard_timeout: hard,
            ..rule(0, i as u16, Match { in_port: Some(i), ..Match::default() }, vec![Action::Output(1)])
        };
        let check = |t: &RuleTables| {
            let listed: Vec<u32> = t.timed_rules().map(|r| r.0).collect();
            assert!(listed.windows(2).all(|w| w[0] < w[1]) && listed.iter().all(|&i| (i as usize) < t.rules().len()));
            for (i, r) in t.rules().iter().enumerate() {
                if has_timeout(r) {
                    assert!(listed.contains(&(i as u32)), "rule {i} ({r}) has a timeout: {listed:?}");
                }
            }
            listed
        };
        let rules: Vec<Rule> =
            (0..40).map(|i| timed(i, if i % 5 == 0 { 10 } else { 0 }, if i % 7 == 0 { 3 } else { 0 })).collect();
        let mut t = RuleTables::new(rules, vec![1]).unwrap();
        assert_eq!(check(&t), vec![0, 5, 7, 10, 14, 15, 20, 21, 25, 28, 30, 35]);
        // Two new rules (one timed), and rule 1 again with a timeout: replaced in place.
        t.add_in_place(vec![timed(40, 0, 0), timed(41, 0, 9), timed(1, 4, 0)]).unwrap();
        assert_eq!(check(&t), vec![0, 1, 5, 7, 10, 14, 15, 20, 21, 25, 28, 30, 35, 41]);
        // Every third rule deleted: the rest close up.
        let gone: Vec<bool> = (0..t.rules().len()).map(|i| i % 3 == 0).collect();
        t.delete_in_place(&gone);
        check(&t);
        t.add_in_place(vec![timed(50, 1, 0)]).unwrap();
        let listed = check(&t);
        assert_eq!(t.rule(RuleRef(*listed.last().unwrap())).priority, 50);
    }
}
