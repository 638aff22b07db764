//! The names of a PMD's megaflows: the slow path's [`FlowId`]s against the cache's
//! [`MegaflowId`]s.
//!
//! The slow path names every megaflow it installs (so that it can mirror each PMD's cache
//! without asking it); the cache names it by slot and generation. A hash map translates
//! names to cache ids (commands: `Remove`), and a vector indexed by slot translates back
//! (expiry and dumps report cache ids), checking the generation so that a reused slot is
//! never taken for the megaflow that held it before. Only commands and dumps use this,
//! never the per-packet path.

use std::collections::HashMap;

use ferrovs_flowcache::MegaflowId;
use ferrovs_flowcache::upcall::FlowId;
use ferrovs_flowcache::xlate::IdentityBuildHasher;

/// Name of an installed megaflow, by cache slot.
#[derive(Clone, Copy)]
struct SlotName {
    generation: u32,
    id: FlowId,
}

/// Both directions of the naming. See the module doc.
pub(crate) struct FlowNames {
    /// Flow ids are the slow path's own numbers, not chosen by packets: hashed without
    /// SipHash (under a flood of new flows at the flow limit, every install and eviction
    /// hashes three times).
    slot_of: HashMap<FlowId, MegaflowId, IdentityBuildHasher>,
    /// Indexed by cache slot.
    name_of: Vec<Option<SlotName>>,
}

impl FlowNames {
    /// Room for `n` names before anything grows (slots are below the cache's flow limit).
    /// The map is reserved for twice that: with at most half its room in use, clearing
    /// the tombstones that removals leave rehashes in place instead of reallocating.
    pub(crate) fn with_capacity(n: usize) -> FlowNames {
        FlowNames { slot_of: HashMap::with_capacity_and_hasher(2 * n, Default::default()), name_of: vec![None; n] }
    }

    pub(crate) fn contains(&self, id: FlowId) -> bool {
        self.slot_of.contains_key(&id)
    }

    /// The name of cache id `mid`, if it is the megaflow named (not an older one of its slot).
    pub(crate) fn name(&self, mid: MegaflowId) -> Option<FlowId> {
        match self.name_of.get(mid.index() as usize) {
            Some(Some(n)) if n.generation == mid.generation() => Some(n.id),
            _ => None,
        }
    }

    /// Names `mid` as `id`.
    pub(crate) fn bind(&mut self, id: FlowId, mid: MegaflowId) {
        self.slot_of.insert(id, mid);
        let i = mid.index() as usize;
        if i >= self.name_of.len() {
            self.name_of.resize(i + 1, None);
        }
        self.name_of[i] = Some(SlotName { generation: mid.generation(), id });
    }

    /// Forgets the name `id`; returns the cache id it named.
    pub(crate) fn unbind_id(&mut self, id: FlowId) -> Option<MegaflowId> {
        let mid = self.slot_of.remove(&id)?;
        if let Some(slot) = self.name_of.get_mut(mid.index() as usize) {
            *slot = None;
        }
        Some(mid)
    }

    /// Forgets the name of cache id `mid`; returns it.
    pub(crate) fn unbind_mid(&mut self, mid: MegaflowId) -> Option<FlowId> {
        let id = self.name(mid)?;
        self.unbind_id(id);
        Some(id)
    }
}
