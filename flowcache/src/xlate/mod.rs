//! Translation of OpenFlow-lite rules into megaflows: the slow path's decision for a
//! missed packet, with the widest mask that is still correct.
//!
//! # Overview
//!
//! When a PMD's caches miss, the slow path calls [`translate`] with the packet's flow
//! key. Translation walks the key through the rule tables of a [`RuleTables`] version
//! (table 0 first; `resubmit` and `goto_table` continue elsewhere), executes the
//! OpenFlow actions of every matched rule into datapath actions ([`DpActions`]), and
//! records every key bit the outcome depended on. The result's `mask` is the megaflow
//! mask: any packet equal to this one on the masked bits gets exactly the same actions
//! and hits exactly the same rules, so `(key & mask, mask, actions)` can be installed.
//!
//! Modules, in data-flow order:
//! - `fields`: match fields as key bit ranges, and the witness of a failed match.
//! - `tables`: [`RuleTables`], a compiled immutable rule-set version.
//! - `rule_index`: the classifier of each table (priority-ordered groups of equal mask,
//!   each a decision tree over its fields), which finds the winner and the witness bits
//!   of a lookup without scanning the table.
//! - `translate`: the translator and its dependency tracking (the heart; read its
//!   header for the mask algorithm).
//! - `mac`: [`MacTable`], the learning table behind the `normal` action.
//! - `revalidate`: what to do with installed megaflows after a change.
//! - `stats`: per-rule counters fed from megaflow statistics, idle/hard timeouts.
//! - `reference`: a naive evaluator with no wildcard tracking, the oracle of the tests.
//!
//! # Semantics (OpenFlow 1.0 as in Open vSwitch 3.1 with `ovs-ofctl add-flows`)
//!
//! - A miss in table 0 drops; a miss in a table reached by `resubmit` does nothing (the
//!   remaining actions of the resubmitting rule still run); `goto_table:T` continues in
//!   T after the rule's other actions. Nesting deeper than 64 or more than 4096 lookups
//!   drops the packet and sets [`Translation::error`] (OVS does the same).
//! - `resubmit(P,T)` looks up with in_port P, but the rule's actions see the real
//!   in_port again (as OVS, which restores it after the lookup).
//! - `output:N` to the ingress port, or to a port that is not on the bridge, does
//!   nothing; `in_port` outputs to the ingress port; `flood` and `all` output to every
//!   bridge port but the ingress port, in port-list order.
//! - Set-field actions become datapath actions immediately, in order (OVS instead
//!   commits only changed fields at output time, which needs the old value of the
//!   field in the mask; we never compare, so the mask does not grow). Actions whose
//!   prerequisites the packet lacks (e.g. `mod_nw_src` on ARP, `mod_tp_dst` on GRE or
//!   on a later fragment) do nothing; `mod_tp_src`/`mod_tp_dst` on ICMP (ICMPv6) write
//!   the type/code, as OVS does. Later lookups see the rewritten fields.
//! - `dec_ttl` on IP: at TTL 0 or 1 (also the TTL 0 of an IP header the key could not
//!   parse) it is OVS's TTL exception: the rest of the current rule's actions, its
//!   `goto_table` included, do not run, while a rule that resubmitted to this table
//!   continues (`compose_dec_ttl` returns "stop processing for current table"). Otherwise
//!   it becomes [`DpAction::DecTtl`]. The mask gets only the TTL bits that decide the
//!   side of "TTL <= 1" (a prefix: 0xc0 for TTL 64), where OVS takes the whole TTL.
//! - IP fragments (frag handling "normal"): tp_src/tp_dst read as 0. The mask covers
//!   the fragment bit only when ports were consulted (OVS always covers nw_frag for IP).
//! - `normal`: see [`MacTable`] and the `normal` method in `translate`.
//!
//! [`DpAction::DecTtl`]: crate::actions::DpAction::DecTtl

mod action_set;
mod build_threads;
mod fields;
mod mac;
mod prefix_trie;
pub mod reference;
mod revalidate;
mod rule_index;
mod stats;
pub(crate) mod tables;
mod translate;

use std::time::Duration;

use ferrovs_config::rules::Action;

pub use fields::Field;
pub use mac::{LearnOutcome, LearnResult, MacKey, MacLearn, MacTable, is_multicast, is_reserved};
pub use revalidate::{Revalidated, Verdict, revalidate, revalidate_all};
pub use stats::{Expiry, RuleCounters, RuleStats};
pub use tables::{
    BuildError, IdentityBuildHasher, IdentityHasher, InPlaceAdd, MissMode, N_TABLES, RuleRef, RuleTables, match_key,
};
pub(crate) use tables::{per_rule_capacity, per_rule_vec};
pub use translate::{Lookup, MAX_DEPTH, MAX_LOOKUPS};

use crate::actions::DpActions;
use crate::key::{FlowKey, Mask};

/// One table lookup of a translation, for `ofproto/trace`-style output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    /// Resubmit nesting depth (0 for table 0).
    pub depth: usize,
    pub table: u8,
    /// The in_port the lookup used (differs from the packet's for `resubmit(P,T)`).
    pub in_port: u32,
    /// The matched rule, `None` for a table miss.
    pub rule: Option<RuleRef>,
    /// The matched rule's OpenFlow actions.
    pub actions: Vec<Action>,
}

/// Why a translation was abandoned (the packet is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XlateError {
    /// resubmit/goto_table nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More than [`MAX_LOOKUPS`] table lookups.
    TooManyLookups,
}

/// The outcome of translating one flow key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// Datapath actions; empty means drop.
    pub actions: DpActions,
    /// Megaflow mask: always covers in_port; covers dl_type if it covers any L3/L4 bit
    /// and nw_proto if it covers any L4 bit.
    pub mask: Mask,
    /// Every rule that matched, in lookup order (for per-rule statistics).
    pub rules: Vec<RuleRef>,
    pub trace: Vec<TraceStep>,
    /// What each `normal` learned, in order, for the slow path to apply to the
    /// [`MacTable`] (later lookups of the same translation already saw it).
    pub learns: Vec<MacLearn>,
    /// The (VLAN, destination MAC) entries `normal` looked up. When one of them is
    /// learned, moves, is evicted or expires, megaflows from this translation must be
    /// revalidated. Empty when the MAC table was not used.
    pub mac_deps: Vec<MacKey>,
    pub error: Option<XlateError>,
    /// (table, in_port) of the lookup that needed the neighbour-discovery fields the key
    /// does not hold: the translation stopped there and the megaflow sends its packets to
    /// the slow path. `rules` is then empty (the slow path credits each packet), `trace`
    /// has the lookups before it.
    pub slow_path_at: Option<(u8, u32)>,
    /// The key bits an action had rewritten (written, moved between tag slots, derived)
    /// when some table lookup read the key: where a lookup may have seen other values than
    /// the packet's. Writes waiting for a commit count too, though no datapath action may
    /// ever show them (a `strip_vlan` or `mod_vlan_vid` with no output after it).
    pub rewritten: Mask,
}

impl Translation {
    /// True if the outcome depended on the MAC table.
    pub fn uses_mac_table(&self) -> bool {
        !self.mac_deps.is_empty()
    }
}

/// Translates `key` through `tables`, reading (never writing) `macs` at time `now`.
pub fn translate(tables: &RuleTables, macs: &MacTable, key: &FlowKey, now: Duration) -> Translation {
    translate::translate(tables, macs, key, None, now, Lookup::Index)
}

/// [`translate`] of a packet whose bytes the caller has, with its neighbour-discovery
/// fields (`extract::nd_fields`): never a slow-path outcome. For executing that one
/// packet; its mask is not a megaflow's.
pub fn translate_with_nd(
    tables: &RuleTables,
    macs: &MacTable,
    key: &FlowKey,
    nd: &crate::extract::NdFields,
    now: Duration,
) -> Translation {
    translate::translate(tables, macs, key, Some(nd), now, Lookup::Index)
}

/// [`translate`] with a chosen table lookup: [`Lookup::LinearScan`] is the former
/// O(rules) scan, kept for differential tests and timing against the classifier.
pub fn translate_with(
    tables: &RuleTables,
    macs: &MacTable,
    key: &FlowKey,
    now: Duration,
    lookup: Lookup,
) -> Translation {
    translate::translate(tables, macs, key, None, now, lookup)
}

/// The datapath actions of a packet-out: `actions` (a rule's, plus `resubmit(,0)` for
/// `output:TABLE`) executed on the packet whose key is `key` and neighbour-discovery
/// fields `nd` (`extract::nd_fields` of its bytes), received on `in_port` (a port number
/// or a 32-bit reserved port such as `OFPP_CONTROLLER`, which the key's 16-bit in_port
/// cannot hold).
pub fn translate_actions(
    tables: &RuleTables,
    macs: &MacTable,
    key: &FlowKey,
    nd: &crate::extract::NdFields,
    in_port: u32,
    now: Duration,
    actions: &[ferrovs_config::rules::Action],
) -> Translation {
    translate::translate_actions(tables, macs, key, nd, in_port, now, actions)
}

/// The megaflow key to install for a translation of `key`.
pub fn megaflow_key(key: &FlowKey, t: &Translation) -> FlowKey {
    key.masked(&t.mask)
}
