//! A plain reference classifier for tests: a list of megaflows scanned linearly.
//!
//! It is deliberately naive so that it is obviously right: insertion compares the new
//! megaflow with every installed one, lookup returns the first (and, since overlaps
//! are refused, only) megaflow that matches. Property tests compare the real caches
//! against it. Not for the data path.
//!
//! It shares no matching code with what it checks: masking, matching and the overlap
//! test are written here over the key's words ([`FlowKey::w`]), not taken from
//! `FlowKey::masked`, `FlowKey::matches` or `Megaflow::matches`/`overlaps`, so a bug in
//! those cannot hide by being on both sides of a comparison.

use crate::actions::DpActions;
use crate::key::FlowKey;
use crate::megaflow::Megaflow;

/// Handle of a megaflow in the reference classifier.
pub type RefId = usize;

/// One installed megaflow, with its value kept already masked.
struct RefFlow {
    value: [u64; 8],
    mask: [u64; 8],
    actions: DpActions,
}

impl RefFlow {
    fn matches(&self, packet: &FlowKey) -> bool {
        matches(&FlowKey { w: self.value }, &FlowKey { w: self.mask }, packet)
    }

    fn overlaps(&self, other: &RefFlow) -> bool {
        overlap(
            &FlowKey { w: self.value },
            &FlowKey { w: self.mask },
            &FlowKey { w: other.value },
            &FlowKey { w: other.mask },
        )
    }
}

/// True if `packet` matches `key` under `mask`: every bit the mask covers is equal in
/// both (bits of `key` outside the mask do not matter).
pub fn matches(key: &FlowKey, mask: &FlowKey, packet: &FlowKey) -> bool {
    (0..8).all(|i| (packet.w[i] ^ key.w[i]) & mask.w[i] == 0)
}

/// True if some packet matches both (`k1`, `m1`) and (`k2`, `m2`): on the bits both
/// masks cover, the keys agree.
pub fn overlap(k1: &FlowKey, m1: &FlowKey, k2: &FlowKey, m2: &FlowKey) -> bool {
    (0..8).all(|i| (k1.w[i] ^ k2.w[i]) & m1.w[i] & m2.w[i] == 0)
}

/// The reference classifier. See the module doc.
#[derive(Default)]
pub struct ReferenceClassifier {
    flows: Vec<Option<RefFlow>>,
}

impl ReferenceClassifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `flow` unless it overlaps an installed megaflow (then returns that one).
    /// Bits of `flow.key` outside `flow.mask` are ignored.
    pub fn insert(&mut self, flow: Megaflow) -> Result<RefId, RefId> {
        let mut value = [0u64; 8];
        for (i, v) in value.iter_mut().enumerate() {
            *v = flow.key.w[i] & flow.mask.w[i];
        }
        let new = RefFlow { value, mask: flow.mask.w, actions: flow.actions };
        if let Some(i) = self.flows.iter().position(|f| f.as_ref().is_some_and(|f| f.overlaps(&new))) {
            return Err(i);
        }
        self.flows.push(Some(new));
        Ok(self.flows.len() - 1)
    }

    /// Removes an installed megaflow and returns it (key masked).
    pub fn remove(&mut self, id: RefId) -> Option<Megaflow> {
        self.flows.get_mut(id).and_then(Option::take).map(|f| Megaflow {
            key: FlowKey { w: f.value },
            mask: FlowKey { w: f.mask },
            actions: f.actions,
        })
    }

    /// The megaflow matching `packet`.
    pub fn lookup(&self, packet: &FlowKey) -> Option<RefId> {
        self.flows.iter().position(|f| f.as_ref().is_some_and(|f| f.matches(packet)))
    }

    /// The actions of an installed megaflow.
    pub fn actions(&self, id: RefId) -> Option<&DpActions> {
        self.flows.get(id).and_then(Option::as_ref).map(|f| &f.actions)
    }

    /// The masked key and the mask of an installed megaflow.
    pub fn key_and_mask(&self, id: RefId) -> Option<(FlowKey, FlowKey)> {
        self.flows.get(id).and_then(Option::as_ref).map(|f| (FlowKey { w: f.value }, FlowKey { w: f.mask }))
    }

    pub fn len(&self) -> usize {
        self.flows.iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(port: u32, port_mask: u32, dst: u32, dst_mask: u32) -> Megaflow {
        let (mut k, mut m) = (FlowKey::ZERO, FlowKey::ZERO);
        k.w[0] = u64::from(port);
        m.w[0] = u64::from(port_mask);
        k.w[7] = u64::from(dst);
        m.w[7] = u64::from(dst_mask);
        Megaflow { key: k, mask: m, actions: Vec::new() }
    }

    fn packet(port: u32, dst: u32) -> FlowKey {
        let mut p = FlowKey::ZERO;
        p.w[0] = u64::from(port);
        p.w[7] = u64::from(dst);
        p
    }

    #[test]
    fn matches_overlap_and_unmasked_bits() {
        let mut r = ReferenceClassifier::new();
        // Port 1, 10.0.0.0/8 (with stray bits outside the mask in the key).
        let a = r.insert(flow(1, !0, 0x0a12_3456, 0xff00_0000)).unwrap();
        assert_eq!(r.lookup(&packet(1, 0x0a00_0001)), Some(a));
        assert_eq!(r.lookup(&packet(2, 0x0a00_0001)), None);
        assert_eq!(r.lookup(&packet(1, 0x0b00_0001)), None);
        // 10.1.0.0/16 on any port overlaps it; 11.0.0.0/8 on port 1 does not.
        assert_eq!(r.insert(flow(0, 0, 0x0a01_0000, 0xffff_0000)), Err(a));
        let b = r.insert(flow(1, !0, 0x0b00_0000, 0xff00_0000)).unwrap();
        assert_eq!(r.lookup(&packet(1, 0x0b00_0001)), Some(b));
        assert_eq!(r.key_and_mask(a).unwrap().0.w[7], 0x0a00_0000, "kept masked");
        assert!(r.remove(a).is_some());
        assert_eq!(r.lookup(&packet(1, 0x0a00_0001)), None);
        assert_eq!(r.len(), 1);
    }
}
