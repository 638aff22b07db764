//! The slow path's mirror of one PMD's megaflow cache.
//!
//! # Design
//!
//! The slow path names every megaflow it installs (a [`FlowId`]) and records it here
//! when it sends the `Install`, so it never has to ask a PMD what the PMD holds. The
//! mirror is a superset of the PMD's cache in the short windows where a PMD has
//! expired or refused a megaflow and the `PmdEvent` saying so is still in flight; it
//! is never missing a megaflow the PMD holds, because the slow path forgets an entry
//! only when it sends the `Remove` (the PMD applies commands in order) or when the PMD
//! reports it gone.
//!
//! Three views of the same entries:
//! - `flows`: [`FlowId`] -> [`MirrorFlow`], ordered by id so that every walk (rule
//!   changes, dumps) and therefore every command list is deterministic;
//! - `by_mask`: a small tuple space, mask -> masked key -> id. It answers "does the PMD
//!   already hold this exact key+mask" (two upcalls raced) and "does some megaflow of
//!   the PMD already cover this packet" in one hash probe per distinct mask, the way
//!   the PMD's own classifier does (hashed as the rule index's maps are, not with
//!   SipHash: a PMD of a large rule set holds a few hundred masks, and the covering
//!   check of every upcall hashes the packet under each);
//! - the per-bridge MAC dependency index lives in the slow path (it spans PMDs).

use std::collections::{BTreeMap, HashMap};

use super::flow_index::{RuleId, shrink_if_sparse};
use super::rule_deps::RuleDeps;
use crate::actions::DpActions;
use crate::key::{FlowKey, Mask};
use crate::megaflow::MegaflowStats;
use crate::upcall::FlowId;
use crate::xlate::{IdentityBuildHasher, MacKey, MacLearn};

/// What the slow path remembers about one installed megaflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorFlow {
    /// Masked key.
    pub key: FlowKey,
    pub mask: Mask,
    pub actions: DpActions,
    /// Index of the bridge (in `SlowPath::bridges` order).
    pub bridge: usize,
    /// Rules that the latest translation matched (stable across rule-set versions).
    pub rules: Vec<RuleId>,
    /// Rules whose deletion revalidates it, besides `rules` (`rule_deps::watched`: those
    /// of a slow-path megaflow, which credits none).
    pub watched: Vec<RuleId>,
    /// MAC table entries the decision depends on.
    pub mac_deps: Vec<MacKey>,
    /// What the translation looked at in the rule tables (which rule changes can affect it).
    pub rule_deps: RuleDeps,
    /// What `normal` learns from this flow's packets (refreshed while it has traffic).
    pub learns: Vec<MacLearn>,
    /// `now_ms` of the `Install`.
    pub installed_at: u64,
    /// Packets and bytes of this megaflow already credited to `rules`.
    pub credited: MegaflowStats,
}

/// The mirror of one PMD. See the module documentation.
#[derive(Debug, Default, Clone)]
pub struct PmdMirror {
    flows: BTreeMap<FlowId, MirrorFlow>,
    by_mask: HashMap<Mask, HashMap<FlowKey, FlowId, IdentityBuildHasher>, IdentityBuildHasher>,
}

impl PmdMirror {
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn get(&self, id: FlowId) -> Option<&MirrorFlow> {
        self.flows.get(&id)
    }

    pub fn get_mut(&mut self, id: FlowId) -> Option<&mut MirrorFlow> {
        self.flows.get_mut(&id)
    }

    /// The megaflow with exactly this masked key and mask.
    pub fn find_exact(&self, key: &FlowKey, mask: &Mask) -> Option<FlowId> {
        self.by_mask.get(mask)?.get(&key.masked(mask)).copied()
    }

    /// Some megaflow that matches `packet`, if any.
    pub fn find_covering(&self, packet: &FlowKey) -> Option<FlowId> {
        self.by_mask.iter().find_map(|(mask, keys)| keys.get(&packet.masked(mask)).copied())
    }

    /// Records a megaflow. The caller has checked that the exact key+mask is absent.
    pub fn insert(&mut self, id: FlowId, flow: MirrorFlow) {
        self.by_mask.entry(flow.mask).or_default().insert(flow.key, id);
        self.flows.insert(id, flow);
    }

    /// Forgets a megaflow and returns it.
    pub fn remove(&mut self, id: FlowId) -> Option<MirrorFlow> {
        let flow = self.flows.remove(&id)?;
        if let Some(keys) = self.by_mask.get_mut(&flow.mask) {
            keys.remove(&flow.key);
            shrink_if_sparse(keys);
            if keys.is_empty() {
                self.by_mask.remove(&flow.mask);
                shrink_if_sparse(&mut self.by_mask);
            }
        }
        Some(flow)
    }

    /// Every megaflow, by increasing id.
    pub fn iter(&self) -> impl Iterator<Item = (FlowId, &MirrorFlow)> + '_ {
        self.flows.iter().map(|(id, f)| (*id, f))
    }

    /// Ids of the megaflows of bridge `bridge`, by increasing id.
    pub fn ids_of_bridge(&self, bridge: usize) -> Vec<FlowId> {
        self.flows.iter().filter(|(_, f)| f.bridge == bridge).map(|(id, _)| *id).collect()
    }

    /// Number of distinct masks (subtables the PMD holds).
    pub fn n_masks(&self) -> usize {
        self.by_mask.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::DpAction;
    use crate::extract::extract;
    use crate::testpkt::{TCP4, Tcp4, tcp4_frame};

    fn flow(key: FlowKey, mask: Mask) -> MirrorFlow {
        MirrorFlow {
            key: key.masked(&mask),
            mask,
            actions: vec![DpAction::Output(2)],
            bridge: 0,
            rules: vec![],
            watched: vec![],
            mac_deps: vec![],
            rule_deps: RuleDeps::default(),
            learns: Vec::new(),
            installed_at: 0,
            credited: MegaflowStats::default(),
        }
    }

    #[test]
    fn finds_exact_and_covering_and_forgets() {
        let k80 = extract(&tcp4_frame(&TCP4), 1);
        let k81 = extract(&tcp4_frame(&Tcp4 { dport: 81, ..TCP4 }), 1);
        let k_other_port = extract(&tcp4_frame(&TCP4), 2);
        let mut mask = Mask::ZERO;
        mask.set_in_port(u32::MAX);
        mask.set_dl_type(0xffff);
        mask.set_nw_dst_u32(0xffff_ff00);
        let mut m = PmdMirror::default();
        m.insert(7, flow(k80, mask));
        assert_eq!(m.find_exact(&k81, &mask), Some(7), "k81 agrees with k80 on the mask");
        assert_eq!(m.find_covering(&k81), Some(7));
        assert_eq!(m.find_covering(&k_other_port), None, "in_port differs");
        assert_eq!(m.find_exact(&k80, &Mask::EXACT), None);
        assert_eq!(m.remove(7).map(|f| f.key), Some(k80.masked(&mask)));
        assert_eq!((m.len(), m.n_masks(), m.find_covering(&k80)), (0, 0, None));
    }
}
