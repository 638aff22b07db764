//! Per-rule packet and byte counters and idle/hard timeouts.
//!
//! # Design
//!
//! Rules live only in the slow path; packets are counted per megaflow by the PMDs. The
//! slow path periodically reads each megaflow's counter deltas and credits them to the
//! rules its translation matched ([`crate::xlate::Translation::rules`], refreshed by
//! revalidation), as OVS's revalidators do. A rule matched twice in one translation
//! (e.g. by two resubmits into the same table) is credited twice, also as OVS.
//!
//! Counters are indexed by [`RuleRef`] of one [`RuleTables`] version. A new version gets
//! a new [`RuleStats`] through [`RuleStats::carry_over`], which keeps the counters and
//! the install time of every rule whose identity (table, priority, match) is unchanged.
//! OpenFlow 1.0 says that re-adding an identical rule resets its counters; a caller
//! applying such an `add` should pass that rule in `reset` so that it starts afresh.
//!
//! Timeouts follow OpenFlow: a rule with `idle_timeout` T expires when it has not been
//! credited with a packet for T seconds, one with `hard_timeout` T expires T seconds
//! after it was installed, whatever its traffic. 0 means never.

use std::time::Duration;

use super::tables::{RuleRef, RuleTables};

/// Counters of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleCounters {
    pub packets: u64,
    pub bytes: u64,
    /// When the rule was added (for `hard_timeout`).
    pub installed_at: Duration,
    /// When the rule was added or last credited with a packet (for `idle_timeout`).
    pub last_used: Duration,
}

/// Why a rule timed out (a rule past both timeouts: `Hard`, as OVS checks it first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Idle,
    Hard,
}

/// Counters of every rule of one [`RuleTables`] version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleStats {
    per_rule: Vec<RuleCounters>,
}

impl RuleStats {
    /// Fresh counters for every rule of `tables`, installed at `now`.
    pub fn new(tables: &RuleTables, now: Duration) -> RuleStats {
        let c = RuleCounters { packets: 0, bytes: 0, installed_at: now, last_used: now };
        RuleStats { per_rule: super::tables::per_rule_vec(c, tables.rules().len()) }
    }

    /// The counters after an in-place change (see `RuleTables::add_in_place`): those of
    /// `restarted` and of the rules from the current count up to `n_new` start at `now`,
    /// the others are kept.
    pub fn restart(&mut self, restarted: &[RuleRef], n_new: usize, now: Duration) {
        let c = RuleCounters { packets: 0, bytes: 0, installed_at: now, last_used: now };
        for r in restarted {
            self.per_rule[r.0 as usize] = c;
        }
        self.per_rule.resize(n_new, c);
    }

    /// The counters after rules were deleted in place (see
    /// `RuleTables::delete_in_place`): those of the rules `r` with `gone[r]` go.
    pub fn close_up(&mut self, gone: &[bool]) {
        super::tables::drop_flagged(&mut self.per_rule, gone);
    }

    /// Counters for `new_tables`, keeping those of rules that `old_tables` also had
    /// (same table, priority and match) unless they are listed in `reset`.
    pub fn carry_over(
        old_tables: &RuleTables,
        old: &RuleStats,
        new_tables: &RuleTables,
        reset: &[RuleRef],
        now: Duration,
    ) -> RuleStats {
        let mut s = RuleStats::new(new_tables, now);
        // Into an empty bridge (a bulk load) nothing is kept: no lookups of a million rules.
        if old_tables.rules().is_empty() {
            return s;
        }
        // A flag per rule: `reset` may list a million rules (a bulk add of existing ones).
        let mut is_reset = vec![false; new_tables.rules().len()];
        for r in reset {
            if let Some(f) = is_reset.get_mut(r.0 as usize) {
                *f = true;
            }
        }
        for (i, r) in new_tables.rules().iter().enumerate() {
            if is_reset[i] {
                continue;
            }
            let old_counters =
                old_tables.find(r.table, r.priority, &r.matches).and_then(|o| old.per_rule.get(o.0 as usize));
            if let Some(c) = old_counters {
                s.per_rule[i] = *c;
            }
        }
        s
    }

    /// Credits a megaflow's new traffic to the rules its translation matched.
    pub fn credit(&mut self, rules: &[RuleRef], packets: u64, bytes: u64, now: Duration) {
        for r in rules {
            if let Some(c) = self.per_rule.get_mut(r.0 as usize) {
                c.packets = c.packets.saturating_add(packets);
                c.bytes = c.bytes.saturating_add(bytes);
                if packets > 0 && now > c.last_used {
                    c.last_used = now;
                }
            }
        }
    }

    /// The counters of rule `r`.
    pub fn get(&self, r: RuleRef) -> RuleCounters {
        self.per_rule.get(r.0 as usize).copied().unwrap_or_default()
    }

    /// The rules whose idle or hard timeout has passed at `now`, to be deleted (as one
    /// rule change, followed by revalidation).
    pub fn expired(&self, tables: &RuleTables, now: Duration) -> Vec<(RuleRef, Expiry)> {
        let mut out = Vec::new();
        // Only the rules that may have a timeout: the tick runs once a second, and most
        // rules of a large rule set (a bulk load) have none.
        for rref in tables.timed_rules() {
            let (r, c) = (tables.rule(rref), &self.per_rule[rref.0 as usize]);
            let idle =
                r.idle_timeout != 0 && now.saturating_sub(c.last_used) >= Duration::from_secs(r.idle_timeout as u64);
            let hard =
                r.hard_timeout != 0 && now.saturating_sub(c.installed_at) >= Duration::from_secs(r.hard_timeout as u64);
            if hard {
                out.push((rref, Expiry::Hard));
            } else if idle {
                out.push((rref, Expiry::Idle));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_config::rules::{Action, Match, Rule};

    fn rule(priority: u16, idle: u16, hard: u16) -> Rule {
        Rule {
            table: 0,
            priority,
            cookie: 0,
            idle_timeout: idle,
            hard_timeout: hard,
            send_flow_rem: false,
            matches: Match { in_port: Some(priority as u32), ..Match::default() },
            actions: vec![Action::Output(1)],
        }
    }
    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    /// Counters have room for the rules a version may get in place (see
    /// `RuleTables::in_place_limit`): restarting with them added does not move them.
    #[test]
    fn counters_have_room_for_the_rules_added_in_place() {
        let n = 4000;
        let tables = RuleTables::new((0..n).map(|i| rule(i as u16, 0, 0)).collect(), vec![1]).unwrap();
        let mut stats = RuleStats::new(&tables, Duration::ZERO);
        let before = stats.per_rule.as_ptr();
        stats.restart(&[], n + RuleTables::in_place_limit(n), Duration::from_secs(1));
        assert_eq!(stats.per_rule.as_ptr(), before);
    }

    #[test]
    fn credits_and_times_out() {
        let t = RuleTables::new(vec![rule(1, 10, 0), rule(2, 0, 30), rule(3, 0, 0)], vec![1]).unwrap();
        let mut st = RuleStats::new(&t, s(0));
        st.credit(&[RuleRef(0), RuleRef(2)], 3, 180, s(5));
        assert_eq!(st.get(RuleRef(0)).packets, 3);
        assert_eq!(st.get(RuleRef(2)).bytes, 180);
        assert_eq!(st.expired(&t, s(14)), vec![]);
        assert_eq!(st.expired(&t, s(15)), vec![(RuleRef(0), Expiry::Idle)], "idle 10 s after the last packet");
        let both = vec![(RuleRef(0), Expiry::Idle), (RuleRef(1), Expiry::Hard)];
        assert_eq!(st.expired(&t, s(30)), both, "hard 30 s after install");
    }

    #[test]
    fn carries_counters_over_by_identity() {
        let old = RuleTables::new(vec![rule(1, 0, 0), rule(2, 0, 0)], vec![1]).unwrap();
        let mut st = RuleStats::new(&old, s(0));
        st.credit(&[RuleRef(0), RuleRef(1)], 1, 60, s(1));
        // New version: rule 1 deleted, rule 2 kept (now at index 1), rule 4 new.
        let new = RuleTables::new(vec![rule(4, 0, 0), rule(2, 0, 0)], vec![1]).unwrap();
        let st2 = RuleStats::carry_over(&old, &st, &new, &[], s(2));
        assert_eq!(st2.get(RuleRef(0)).packets, 0);
        assert_eq!(st2.get(RuleRef(1)).packets, 1);
        assert_eq!(st2.get(RuleRef(1)).installed_at, s(0));
        let st3 = RuleStats::carry_over(&old, &st, &new, &[RuleRef(1)], s(2));
        assert_eq!(st3.get(RuleRef(1)).packets, 0);
    }
}
