//! What a megaflow's translation looked at in the rule tables, so that a rule change
//! revalidates only the megaflows it can affect.
//!
//! # Why this is enough
//!
//! Every packet a megaflow covers takes the same path through the tables (the megaflow
//! property: same lookups, same winners, same actions). A rule change can alter a
//! packet's decision only by changing the winner of one of those lookups:
//!
//! - *A rule is deleted or its actions change*: only lookups it won are affected (a rule
//!   that lost, or was never reached, still loses or is still not reached without it).
//!   So the megaflows to revalidate are those whose matched rules include it.
//! - *A rule R (table T, priority P) is added*: it can win a lookup only in table T, and
//!   only one that missed or whose winner has priority <= P (equal priorities are
//!   ordered by input position; we do not rely on that order), and only if some packet of
//!   the megaflow matches R *at that lookup*. The lookup key is the packet's key with the
//!   lookup's in_port (`resubmit(P,T)` changes it) and with whatever earlier actions
//!   rewrote. [`RuleDeps::fixed`] is the part of the megaflow mask the lookups see
//!   unchanged: the megaflow's mask minus in_port (checked against the recorded lookup
//!   in_ports instead), minus every field an action had rewritten when a lookup read the
//!   key (`Translation::rewritten`: set-field, VLAN push/pop/set, TTL), minus the L4
//!   ports unless the megaflow is known to cover only non-fragments (fragments look up
//!   with ports 0). If R disagrees with the megaflow's key on a fixed bit, no packet of
//!   the megaflow can match R. The rewrites come from the translation, not from the
//!   datapath actions: a tag edit waits for the next output to be committed (as in OVS),
//!   so one that no output follows (`strip_vlan,goto_table:2` and no output after) has
//!   no datapath action, yet table 2 looked the untagged packet up.
//!
//! An abandoned translation (resubmit loop) or a slow-path megaflow counts nothing of its
//! mask as fixed (a slow-path megaflow's one action sends packets to the slow path,
//! whatever the rules before the stop rewrote).
//!
//! A slow-path megaflow (a lookup needed the ND fields the key lacks) credits no rule,
//! yet its being one depends on rules: those its path matched before the stop, and the ND
//! rules of the table it stopped at (without them the messages are decided in the fast
//! path). [`watched`] lists them, for the deletion side; the stopping lookup counts as a
//! miss of that table, for the addition side. The slow path decides each packet with the
//! current rules anyway: what a change must not leave is a megaflow that sends packets
//! there after nothing needs it.
//!
//! Rule changes that are not a set of such deletions and additions (the relative order
//! of kept equal-priority rules changes, or too many rules are added at once) fall back to
//! revalidating every megaflow of the bridge (see `SlowPath::change_rules`). The
//! megaflows to test are found through `flow_index`, not by walking the mirror.

use crate::key::{FRAG_ANY, FlowKey, Mask};
use crate::xlate::{RuleRef, RuleTables, Translation, match_key};

/// One table lookup of a translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLookup {
    pub table: u8,
    /// The in_port the lookup used.
    pub in_port: u32,
    /// Priority of the winner; `None` for a miss.
    pub winner: Option<u16>,
}

impl TableLookup {
    /// Whether `r` could win this lookup (it is in the table, reached with this in_port,
    /// and the lookup missed or was won at a priority not above `r`'s).
    pub fn may_be_won_by(&self, r: &AddedRule) -> bool {
        self.table == r.table
            && self.winner.is_none_or(|w| w <= r.priority)
            && r.in_port.is_none_or(|p| p == self.in_port)
    }
}

/// The rule-table dependencies of one megaflow. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleDeps {
    /// Distinct lookups, each (table, in_port) once with its lowest winner priority.
    pub lookups: Vec<TableLookup>,
    /// Bits of the megaflow mask that every lookup sees as the packet has them.
    pub fixed: Mask,
}

/// A rule added by a change, compiled for the overlap test.
#[derive(Debug, Clone)]
pub struct AddedRule {
    pub table: u8,
    pub priority: u16,
    pub in_port: Option<u32>,
    /// Match value and mask over the key, in_port left out.
    pub value: FlowKey,
    pub mask: Mask,
}

impl AddedRule {
    /// Rule `r` of `tables`, compiled for [`RuleDeps::may_be_changed_by`].
    pub fn of(tables: &RuleTables, r: RuleRef) -> AddedRule {
        let rule = tables.rule(r);
        let (mut value, mut mask) = match_key(&rule.matches);
        let in_port = (mask.in_port() != 0).then(|| value.in_port());
        value.set_in_port(0);
        mask.set_in_port(0);
        AddedRule { table: rule.table, priority: rule.priority, in_port, value, mask }
    }
}

/// Rules whose deletion must revalidate a megaflow from `t` although it matched them
/// without crediting them: for a slow-path megaflow, those its path matched before the stop
/// and the ND rules of the table it stopped at (see the module documentation). Empty for
/// any other (its `rules` are the ones).
pub fn watched(t: &Translation, tables: &RuleTables) -> Vec<RuleRef> {
    let Some((table, _)) = t.slow_path_at else { return Vec::new() };
    t.trace.iter().filter_map(|s| s.rule).chain(tables.nd_rules(table)).collect()
}

impl RuleDeps {
    /// The dependencies of the megaflow `(key & mask, mask)` installed from `t`, a
    /// translation against `tables`.
    pub fn of(t: &Translation, tables: &RuleTables, key: &FlowKey, mask: &Mask) -> RuleDeps {
        let mut lookups: Vec<TableLookup> = Vec::new();
        for s in &t.trace {
            let winner = s.rule.map(|r| tables.rule(r).priority);
            match lookups.iter_mut().find(|l| l.table == s.table && l.in_port == s.in_port) {
                Some(l) => {
                    l.winner = match (l.winner, winner) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        _ => None,
                    }
                }
                None => lookups.push(TableLookup { table: s.table, in_port: s.in_port, winner }),
            }
        }
        if let Some((table, in_port)) = t.slow_path_at {
            match lookups.iter_mut().find(|l| l.table == table && l.in_port == in_port) {
                Some(l) => l.winner = None,
                None => lookups.push(TableLookup { table, in_port, winner: None }),
            }
        }
        let fixed = if t.error.is_some() || t.slow_path_at.is_some() {
            Mask::ZERO
        } else {
            let mut unstable = t.rewritten;
            unstable.set_in_port(u32::MAX);
            let non_fragment = mask.nw_frag() & FRAG_ANY != 0 && key.nw_frag() & FRAG_ANY == 0;
            if !non_fragment {
                unstable.set_tp_src(0xffff);
                unstable.set_tp_dst(0xffff);
            }
            let mut f = Mask::ZERO;
            for i in 0..f.w.len() {
                f.w[i] = mask.w[i] & !unstable.w[i];
            }
            f
        };
        RuleDeps { lookups, fixed }
    }

    /// Whether adding `r` can change the decision of some packet of the megaflow with
    /// (masked) key `key` and these dependencies. False only when it provably cannot.
    pub fn may_be_changed_by(&self, key: &FlowKey, r: &AddedRule) -> bool {
        // The bit test first: it reads only what is inline in the megaflow.
        (0..key.w.len()).all(|i| (key.w[i] ^ r.value.w[i]) & self.fixed.w[i] & r.mask.w[i] == 0)
            && self.lookups.iter().any(|l| l.may_be_won_by(r))
    }
}
