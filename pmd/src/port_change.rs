//! Ports that come and go while the PMDs forward.
//!
//! A port change is prepared by the control thread ([`crate::Switch`]) and applied by each
//! PMD between two bursts, by moving values only:
//!
//! - the control thread builds everything the change needs: the new port-number → slot
//!   table, the PMD's tx queue of an added port (wrapped in a `TxPort`), the rx queues
//!   the PMD starts polling, and empty vectors with room for everything the PMD will hand
//!   back;
//! - the PMD swaps and moves those values into place — no allocation, no lock, no system
//!   call — and hands the `PortChange` back with what it took out: the old table, the
//!   removed port's tx queue (its pending batch already sent) and rx queues;
//! - the control thread frees them. A device is closed only once every PMD has handed its
//!   queues back, so no PMD ever polls or sends to a closed port.
//!
//! The way back is a channel of the PMD's shared state (`PortChangeReturn`), not one
//! per change: a reply channel per change was freed on the PMD whenever the waiting thread
//! had given up and dropped its end first (and a change the PMD could not send back was
//! freed there too, old table, queues and all), and a send woke the waiting thread with a
//! system call from the PMD loop. Both ends of the shared one live as long as the PMD, and
//! the control thread polls it (as it polls barriers), so nobody ever waits on it: a send
//! is a claim of a preallocated slot and a write.
//!
//! Ordering with the slow path (done by the daemon): a new port gets its tx queues first
//! (so megaflows may output to it), then the slow path learns it, then the PMDs poll it; a
//! removed port stops being polled first, then the slow path forgets it (revalidating
//! every megaflow that outputs to it), then its tx queues are taken back.

use crossbeam_channel::{Receiver, Sender};

use crate::exec::{SlotTable, TxPort, TxState};
use crate::pmd::AssignedRxq;

/// One change, sent to one PMD and sent back by it.
#[derive(Default)]
pub(crate) struct PortChange {
    /// Which `Switch::apply` sent it (a change that comes back after its sender gave up is
    /// told apart from the next one's).
    pub round: u64,
    /// The new number → slot table; the old one comes back here.
    pub slot_table: Option<SlotTable>,
    /// A port to send to: its slot and this PMD's tx port.
    pub attach_tx: Option<(usize, TxPort)>,
    /// The slot of a port to stop sending to; its [`TxPort`] comes back in `retired_tx`.
    pub detach_tx: Option<usize>,
    pub retired_tx: Option<TxPort>,
    /// A new frame limit for a slot.
    pub max_frame: Option<(usize, u32)>,
    /// A slot set administratively down (true) or up.
    pub admin_down: Option<(usize, bool)>,
    /// The PMD's next rx queue set: empty, with room for the queues it keeps plus
    /// `add_rxqs`. The old (emptied) vector comes back here.
    pub rx_set: Option<Vec<AssignedRxq>>,
    /// Rx queues to start polling.
    pub add_rxqs: Vec<AssignedRxq>,
    /// Stop polling the rx queues of these (slot, queue) pairs; `None` as queue: all of
    /// the slot's. The queues come back in `retired_rxqs` (which has room for them).
    pub remove_rxqs: Vec<(usize, Option<u16>)>,
    pub retired_rxqs: Vec<AssignedRxq>,
}

/// A `PortChange` on its way to a PMD (it comes back through the PMD's
/// `PortChangeReturn`).
pub struct PortChangeMessage {
    pub(crate) change: Box<PortChange>,
}

/// A PMD's way back for the port changes it applied. See the module doc.
pub(crate) struct PortChangeReturn {
    tx: Sender<Box<PortChange>>,
    rx: Receiver<Box<PortChange>>,
}

impl PortChangeReturn {
    /// Room for `slots` changes, allocated here. `Switch::apply` takes what is there
    /// before it sends (dropping the changes earlier calls gave up on) and while it waits,
    /// so a PMD hands back at most what its message queue held meanwhile: a queue's length
    /// plus one is room enough.
    pub(crate) fn new(slots: usize) -> PortChangeReturn {
        let (tx, rx) = crossbeam_channel::bounded(slots);
        PortChangeReturn { tx, rx }
    }

    /// On the PMD: hands an applied change back. Never disconnected (this holds both
    /// ends); were it full (more calls given up on than the queue holds), the change would
    /// be freed here.
    pub(crate) fn give(&self, change: Box<PortChange>) {
        let _ = self.tx.try_send(change);
    }

    /// On the control thread: a change handed back, if there is one.
    pub(crate) fn take(&self) -> Option<Box<PortChange>> {
        self.rx.try_recv().ok()
    }
}

impl PortChange {
    /// Applies the change to a PMD's rx queue set and output side. Allocation-free given
    /// the capacities the control thread reserved.
    pub(crate) fn apply(&mut self, rxqs: &mut Vec<AssignedRxq>, tx: &mut TxState) {
        if let Some((slot, port)) = self.attach_tx.take() {
            tx.attach(slot, port);
        }
        if let Some(slot) = self.detach_tx {
            self.retired_tx = tx.detach(slot);
        }
        if let Some((slot, max_frame)) = self.max_frame {
            tx.set_max_frame(slot, max_frame);
        }
        if let Some((slot, down)) = self.admin_down {
            tx.set_down(slot, down);
        }
        if let Some(table) = self.slot_table.take() {
            self.slot_table = Some(tx.swap_slot_table(table));
        }
        if let Some(mut next) = self.rx_set.take() {
            for q in rxqs.drain(..) {
                let removed = self
                    .remove_rxqs
                    .iter()
                    .any(|&(slot, queue)| q.in_idx == slot && queue.is_none_or(|n| n == q.rxq.queue()));
                if removed { self.retired_rxqs.push(q) } else { next.push(q) }
            }
            next.append(&mut self.add_rxqs);
            self.rx_set = Some(std::mem::replace(rxqs, next));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a PMD hands back waits in the shared return, in order, each with the round it
    /// was sent in (so a change whose sender gave up is told apart and dropped by the next
    /// sender); the PMD's side keeps both ends, so its sends never find it closed.
    #[test]
    fn changes_come_back_through_the_shared_return_with_their_round() {
        let r = PortChangeReturn::new(3);
        assert!(r.take().is_none());
        for round in [4, 5] {
            r.give(Box::new(PortChange { round, max_frame: Some((1, 1518)), ..PortChange::default() }));
        }
        let back: Vec<(u64, Option<(usize, u32)>)> =
            std::iter::from_fn(|| r.take()).map(|c| (c.round, c.max_frame)).collect();
        assert_eq!(back, [(4, Some((1, 1518))), (5, Some((1, 1518)))]);
        assert!(r.take().is_none());
    }
}
