//! Revalidation: deciding, after a rule-set or MAC-table change, what to do with each
//! installed megaflow.
//!
//! # Algorithm
//!
//! A megaflow (key K, mask M, actions A) is correct iff every packet P with
//! `P & M == K` gets decision A from the current rules. Re-translating K itself yields
//! a decision A' and a mask M' such that every packet agreeing with K on M' gets A'
//! (the property the differential test checks). Hence:
//! - M' ⊆ M and A' == A: every packet of the megaflow agrees with K on M' → **Keep**.
//! - M' ⊆ M and A' != A: same reasoning, the decision is A' for all of them →
//!   **Replace** the actions in place (the mask stays M).
//! - M' ⊄ M: packets of the megaflow may now get different decisions → **Delete**; they
//!   will miss and be translated afresh.
//!
//! The fresh translation is returned as well: its `rules` re-point the megaflow's
//! statistics at the new version's rules, its `mac_deps` replace the old ones, and its
//! `learn` lets the slow path refresh MAC entries of flows that are still active but no
//! longer come up as misses (OVS's revalidators do the same), so that they do not age
//! out under traffic.

use std::time::Duration;

use super::mac::MacTable;
use super::tables::RuleTables;
use super::{Translation, translate};
use crate::actions::DpActions;
use crate::key::{FlowKey, Mask};

/// What to do with one installed megaflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Keep key and mask, swap the actions.
    Replace(DpActions),
    Delete,
}

/// A verdict and the fresh translation it was based on.
#[derive(Debug, Clone)]
pub struct Revalidated {
    pub verdict: Verdict,
    pub translation: Translation,
}

/// Revalidates one installed megaflow `(key, mask, actions)` against `tables` and `macs`.
/// `key` may be the masked key or any packet key the megaflow covers.
pub fn revalidate(
    tables: &RuleTables,
    macs: &MacTable,
    now: Duration,
    key: &FlowKey,
    mask: &Mask,
    actions: &DpActions,
) -> Revalidated {
    let k = key.masked(mask);
    let t = translate(tables, macs, &k, now);
    let verdict = if !t.mask.is_subset_of(mask) {
        Verdict::Delete
    } else if &t.actions == actions {
        Verdict::Keep
    } else {
        Verdict::Replace(t.actions.clone())
    };
    Revalidated { verdict, translation: t }
}

/// [`revalidate`] over many megaflows.
pub fn revalidate_all<'k, I>(tables: &RuleTables, macs: &MacTable, now: Duration, installed: I) -> Vec<Revalidated>
where
    I: IntoIterator<Item = (&'k FlowKey, &'k Mask, &'k DpActions)>,
{
    installed.into_iter().map(|(k, m, a)| revalidate(tables, macs, now, k, m, a)).collect()
}
