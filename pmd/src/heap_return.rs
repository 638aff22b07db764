//! Heap memory a PMD is done with goes back to the slow-path thread to be freed there.
//!
//! # Why
//!
//! The heap parts of the slow path's commands (a megaflow's action list, a `Remove`'s
//! id list, a packet-out's frame and actions) are allocated by the slow-path thread and
//! outlive their command on the PMD: an action list until its megaflow is evicted,
//! removed or expires. Freed on the PMD, glibc's `free` keeps the first few chunks in
//! the PMD's own thread cache and then, for every further one, takes the lock of the
//! arena they came from, which is the slow-path thread's, busy allocating at the same
//! time: a lock in the PMD loop, once per eviction. Under a flood of new flows at the
//! flow limit that was 7-14 % of the PMD's profile (docs/BENCHMARKS.md, "Floods on one
//! port no longer cost another port's installed flows").
//!
//! # How
//!
//! Each PMD hands them back through its own bounded channel ([`HeapReturn`], in its
//! [`crate::PipelineShared`]); the slow-path thread drops what is there whenever it
//! wakes up ([`HeapReturn::free_returned`]). Nobody ever blocks receiving on that
//! channel, so a send is a claim of a preallocated slot and a write: no lock, no
//! wake-up, no system call, no allocation. Values without heap memory (an empty list)
//! are not sent. If the channel is full (the slow path has not woken for
//! [`HEAP_RETURN_SLOTS`] returns, for example during the `Remove` of a whole cache at a
//! rule change, which waits for the PMD's barrier), the PMD frees the value itself and
//! counts it (`frees_on_pmd`): memory never waits for a slot.
//!
//! Cost: [`HEAP_RETURN_SLOTS`] slots of about 40 bytes per PMD (160 KiB), allocated at
//! start.

use crossbeam_channel::{Receiver, Sender, TrySendError};
use ferrovs_flowcache::actions::DpActions;
use ferrovs_flowcache::upcall::FlowId;

/// Values one PMD may have handed back before the slow path frees them.
pub const HEAP_RETURN_SLOTS: usize = 4096;

/// A heap value a PMD is done with.
#[derive(Debug)]
pub enum Spent {
    /// A megaflow's or an `Execute`'s action list, or a packet-out's.
    Actions(DpActions),
    /// A `Remove`'s id list.
    Ids(Vec<FlowId>),
    /// A packet-out's frame.
    Frame(Vec<u8>),
}

impl Spent {
    /// Whether dropping it frees anything.
    fn owns_heap(&self) -> bool {
        match self {
            Spent::Actions(v) => v.capacity() > 0,
            Spent::Ids(v) => v.capacity() > 0,
            Spent::Frame(v) => v.capacity() > 0,
        }
    }
}

/// One PMD's way back for heap values. See the module doc.
pub struct HeapReturn {
    tx: Sender<Spent>,
    rx: Receiver<Spent>,
}

impl Default for HeapReturn {
    fn default() -> Self {
        HeapReturn::new(HEAP_RETURN_SLOTS)
    }
}

impl HeapReturn {
    /// A channel of `slots` values, allocated here.
    pub fn new(slots: usize) -> HeapReturn {
        let (tx, rx) = crossbeam_channel::bounded(slots);
        HeapReturn { tx, rx }
    }

    /// On the PMD: hands `spent` back to be freed elsewhere. Returns false if it was
    /// freed here instead (no slot free).
    pub fn give(&self, spent: Spent) -> bool {
        if !spent.owns_heap() {
            return true;
        }
        match self.tx.try_send(spent) {
            Ok(()) => true,
            Err(TrySendError::Full(spent) | TrySendError::Disconnected(spent)) => {
                drop(spent);
                false
            }
        }
    }

    /// On the slow path: frees everything handed back so far. Returns how many values.
    pub fn free_returned(&self) -> usize {
        self.rx.try_iter().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_flowcache::actions::DpAction;

    #[test]
    fn values_go_back_until_the_slots_are_full_and_empty_ones_are_not_sent() {
        let r = HeapReturn::new(2);
        assert!(r.give(Spent::Actions(Vec::new())), "nothing to free: not sent, not freed here");
        assert!(r.give(Spent::Actions(vec![DpAction::Output(1)])));
        assert!(r.give(Spent::Ids(vec![7])));
        assert!(!r.give(Spent::Frame(vec![0; 60])), "full: freed here");
        assert_eq!(r.free_returned(), 2);
        assert_eq!(r.free_returned(), 0);
        assert!(r.give(Spent::Frame(vec![0; 60])));
        assert_eq!(r.free_returned(), 1);
    }
}
