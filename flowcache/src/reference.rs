//! A plain reference classifier for tests: a list of megaflows scanned linearly.
//!
//! It is deliberately naive so that it is obviously right: insertion compares the new
//! megaflow with every installed one, lookup returns the first (and, since overlaps
//! are refused, only) megaflow that matches. Property tests compare the real caches
//! against it. Not for the data path.

use crate::key::FlowKey;
use crate::megaflow::Megaflow;

/// Handle of a megaflow in the reference classifier.
pub type RefId = usize;

/// The reference classifier. See the module doc.
#[derive(Default)]
pub struct ReferenceClassifier {
    flows: Vec<Option<Megaflow>>,
}

impl ReferenceClassifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `flow` unless it overlaps an installed megaflow (then returns that one).
    pub fn insert(&mut self, flow: Megaflow) -> Result<RefId, RefId> {
        let flow = Megaflow::new(flow.key, flow.mask, flow.actions);
        for (i, f) in self.flows.iter().enumerate() {
            if let Some(f) = f
                && f.overlaps(&flow)
            {
                return Err(i);
            }
        }
        self.flows.push(Some(flow));
        Ok(self.flows.len() - 1)
    }

    pub fn remove(&mut self, id: RefId) -> Option<Megaflow> {
        self.flows.get_mut(id).and_then(Option::take)
    }

    /// The megaflow matching `packet`.
    pub fn lookup(&self, packet: &FlowKey) -> Option<RefId> {
        self.flows.iter().position(|f| f.as_ref().is_some_and(|f| f.matches(packet)))
    }

    pub fn get(&self, id: RefId) -> Option<&Megaflow> {
        self.flows.get(id).and_then(Option::as_ref)
    }

    pub fn len(&self) -> usize {
        self.flows.iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
