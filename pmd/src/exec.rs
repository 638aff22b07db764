//! Executing datapath actions and batching output per port.
//!
//! A PMD owns one [`TxState`]: for every port of the switch, its own tx queue and a
//! pending [`MbufBatch`]. `Output(n)` appends the packet to port `n`'s batch; a full batch
//! is sent at once, and every batch is sent at the end of each loop iteration, so packets
//! leave in bursts and in arrival order. Whatever a tx queue does not take is freed and
//! counted as `drop_tx_full` on that port (never retried, never leaked).
//!
//! Several outputs of one packet share the buffer (refcount + 1 per extra output) instead
//! of copying it. An edit after an output is copy-on-write: if the buffer is shared at
//! that point, the PMD edits a private deep copy. The last output hands over the PMD's own
//! reference, so the common single-output case touches no refcount at all. An
//! `OutputTrunc` of a frame longer than its `max_len` sends a copy of the frame's head
//! (`output(port=P,max_len=N)`, a rare action: one copy per packet, counted as
//! `drop_no_mbuf` when the pool is empty); a shorter frame goes out as an `Output`.
//!
//! A port whose frame is longer than its MTU allows (MTU + 18: Ethernet header, one VLAN
//! tag and no FCS, as OVS counts it) is not sent: the packet is freed and counted as
//! `drop_oversize` on that port. A port that is administratively down has a frame limit
//! of 0, so the same single comparison drops every output to it (counted as
//! `drop_admin_down_tx` instead) and the common path pays nothing for the state.
//!
//! Ports come and go at run time ([`crate::port_change`]): the per-port table has a
//! fixed number of slots, sized when the switch starts, so attaching a port moves a
//! prepared `TxPort` into a free slot and never allocates on the PMD.
//!
//! Edits are flowcache's ([`ferrovs_flowcache::edit`]), the same parser as key
//! extraction deciding where each header is: in-place rewrites go to
//! [`execute_edit`]; for VLAN push and pop the PMD only resizes the mbuf (prepend or trim 4
//! bytes of headroom) and flowcache's [`push_vlan`] / [`pop_vlan`] move the bytes. A
//! `DecTtl` at TTL 0 or 1 drops the packet (`drop_action`); an edit that cannot be done
//! (no headroom, or a buffer that cannot be written) drops it as `drop_unsupported`,
//! never forwarding it unedited.

use std::sync::Arc;

use ferrovs_dpdk::{Drain, Mbuf, MbufBatch, Mempool, TxQueue, tx_burst};
use ferrovs_flowcache::actions::{DpAction, PacketInFlow, PoppedTpids};
use ferrovs_flowcache::edit::{EditOutcome, execute_edit, outer_tpid, pop_vlan, push_vlan, vlans_kept};

use crate::capture::CaptureTaps;
use crate::perf::PmdPerf;
use crate::stats::{PmdLocal, PortCounters};

/// Dense index meaning "no such port".
pub(crate) const NO_PORT: usize = usize::MAX;
/// [`NO_PORT`] in a [`SlotTable`].
pub(crate) const NO_SLOT: u16 = u16::MAX;

/// Slot of each port by OpenFlow port number ([`NO_SLOT`] where there is none), as long
/// as the highest number in use. Built by the control thread, swapped in by the PMD.
pub(crate) type SlotTable = Vec<u16>;

/// One port as one PMD sends to it: its own tx queue, the pending batch, the frame limit.
pub(crate) struct TxPort {
    /// The port's (datapath) number, what captures are armed by.
    number: u32,
    txq: TxQueue,
    batch: MbufBatch,
    pending_bytes: u64,
    /// Longest frame the port sends: MTU + 18, or 0 while the port is down.
    max_frame: u32,
    /// MTU + 18, kept while the port is down.
    mtu_frame: u32,
    /// Administratively down: nothing is sent, nothing received is processed.
    down: bool,
}

impl TxPort {
    pub(crate) fn new(number: u32, txq: TxQueue, max_frame: u32) -> TxPort {
        TxPort { number, txq, batch: MbufBatch::new(), pending_bytes: 0, max_frame, mtu_frame: max_frame, down: false }
    }

    fn set_limits(&mut self, mtu_frame: u32, down: bool) {
        self.mtu_frame = mtu_frame;
        self.down = down;
        self.max_frame = if down { 0 } else { mtu_frame };
    }
}

/// One PMD's output side: per-port tx queue and batch, counters, and the pool for copies.
pub struct TxState {
    /// By slot; `None` where no port is attached. Never grows after construction.
    ports: Vec<Option<TxPort>>,
    /// One past the highest attached slot: what `flush` walks.
    slots_in_use: usize,
    /// One past the highest slot ever attached: the counters the PMD publishes. Never
    /// shrinks, so a detached port's last counts are still published; it is the number
    /// of ports the switch has had at once, not the slot capacity (copying all 256 slots'
    /// counters after every busy iteration cost ~50 cycles per packet).
    counted_slots: usize,
    /// Dense port index by OpenFlow port number.
    index_by_number: SlotTable,
    /// By slot, as many as `ports`.
    pub(crate) counters: Vec<PortCounters>,
    pub(crate) pmd: PmdLocal,
    pool: Mempool,
    /// Where `DpAction::Controller` copies go (none: they are dropped and counted).
    pub(crate) packet_in: Option<crate::packet_in::PacketInSink>,
    /// The switch's captures (`capture.rs`): checked once per rx and per tx burst.
    pub(crate) capture: Arc<CaptureTaps>,
    /// The PMD's iteration histograms (`perf.rs`).
    pub(crate) perf: PmdPerf,
}

/// What one edit did to a packet.
#[derive(PartialEq, Eq)]
enum EditResult {
    Done,
    /// The action drops the packet (DecTtl at TTL 0 or 1).
    Drop,
    /// The edit could not be done.
    Unsupported,
}

/// Inserts an outer VLAN tag: 4 bytes of headroom, then flowcache writes the tag.
fn push_vlan_mbuf(m: &mut Mbuf, tpid: u16, tci: u16) -> EditResult {
    if m.data().len() < 12 {
        return EditResult::Unsupported;
    }
    let Some(buf) = m.prepend(4) else { return EditResult::Unsupported };
    match push_vlan(buf, tpid, tci) {
        Ok(()) => EditResult::Done,
        // Unreachable (12 bytes were checked above), but never send a half-built frame.
        Err(_) => EditResult::Unsupported,
    }
}

/// Removes the outer VLAN tag if flowcache's parser sees one (else nothing to do); its
/// TPID goes to `popped` (for a later `PushVlan` of a popped tag's TPID).
fn pop_vlan_mbuf(m: &mut Mbuf, popped: &mut PoppedTpids) -> EditResult {
    let Some(frame) = m.data_mut() else { return EditResult::Unsupported };
    let tpid = frame.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]]));
    if !pop_vlan(frame) {
        return EditResult::Done;
    }
    if let Some(t) = tpid {
        popped.popped(t);
    }
    // The MAC addresses have moved 4 bytes on: the packet now starts there.
    if m.adj(4) { EditResult::Done } else { EditResult::Unsupported }
}

/// `ReplaceVlan` (in place): its TPID taken from `popped` if it is a placeholder, then the
/// TPID of the tag it replaces added to them, as its pop would.
fn replace_vlan_mbuf(m: &mut Mbuf, popped: &mut PoppedTpids, tpid: u16, tci: u16) -> EditResult {
    let Some(frame) = m.data_mut() else { return EditResult::Unsupported };
    let found = outer_tpid(frame);
    let a = DpAction::ReplaceVlan { tpid: popped.take(tpid), tci };
    let result = match execute_edit(frame, &a) {
        EditOutcome::Applied | EditOutcome::Skipped => EditResult::Done,
        _ => EditResult::Unsupported,
    };
    if let Some(t) = found {
        popped.popped(t);
    }
    result
}

/// `CommitVlans`: the tags [`vlans_kept`] leaves are popped and pushed, one at a time.
fn commit_vlans_mbuf(m: &mut Mbuf, popped: &mut PoppedTpids, pop: u8, push: u8, tags: &[(u16, u16); 2]) -> EditResult {
    let Some(frame) = m.data_mut() else { return EditResult::Unsupported };
    let kept = vlans_kept(frame, pop, push, tags, popped);
    for _ in kept..pop {
        let result = pop_vlan_mbuf(m, popped);
        if result != EditResult::Done {
            return result;
        }
    }
    for &(tpid, tci) in tags[..usize::from(push - kept)].iter().rev() {
        let result = push_vlan_mbuf(m, popped.take(tpid), tci);
        if result != EditResult::Done {
            return result;
        }
    }
    EditResult::Done
}

/// An in-place edit through flowcache.
fn edit_in_place(m: &mut Mbuf, a: &DpAction) -> EditResult {
    let Some(frame) = m.data_mut() else { return EditResult::Unsupported };
    match execute_edit(frame, a) {
        EditOutcome::Applied | EditOutcome::Skipped => EditResult::Done,
        EditOutcome::Drop => EditResult::Drop,
        // Outputs and VLAN push/pop are handled by the caller and never get here.
        EditOutcome::NotAnEdit | EditOutcome::NeedsResize => EditResult::Unsupported,
    }
}

impl TxState {
    /// A PMD's output side with `slots` port slots, `ports[i] = (number, its tx port)` in
    /// slot `i`.
    pub(crate) fn new(slots: usize, ports: Vec<(u32, TxPort)>, pool: Mempool, capture: Arc<CaptureTaps>) -> TxState {
        let mut tx = TxState {
            ports: (0..slots).map(|_| None).collect(),
            slots_in_use: 0,
            counted_slots: 0,
            index_by_number: SlotTable::new(),
            counters: vec![PortCounters::default(); slots],
            pmd: PmdLocal::default(),
            pool,
            packet_in: None,
            capture,
            perf: PmdPerf::default(),
        };
        let mut table = SlotTable::new();
        for (slot, (number, port)) in ports.into_iter().enumerate() {
            set_slot(&mut table, number, slot);
            tx.attach(slot, port);
        }
        tx.index_by_number = table;
        tx
    }

    /// Dense index of port `number`, or `NO_PORT`.
    #[inline(always)]
    pub(crate) fn port_index(&self, number: u32) -> usize {
        match self.index_by_number.get(number as usize) {
            Some(&s) if s != NO_SLOT => s as usize,
            _ => NO_PORT,
        }
    }

    /// Puts `port` in `slot` (free; `slot` < the slot count) with zeroed counters.
    pub(crate) fn attach(&mut self, slot: usize, port: TxPort) {
        self.ports[slot] = Some(port);
        self.counters[slot] = PortCounters::default();
        self.slots_in_use = self.slots_in_use.max(slot + 1);
        self.counted_slots = self.counted_slots.max(slot + 1);
    }

    /// The port counters of every slot that has held a port: what the PMD publishes.
    pub(crate) fn counters_in_use(&self) -> &[PortCounters] {
        &self.counters[..self.counted_slots]
    }

    /// Sends what is pending for `slot` and takes its port out.
    pub(crate) fn detach(&mut self, slot: usize) -> Option<TxPort> {
        self.flush_port(slot);
        let port = self.ports.get_mut(slot)?.take();
        while self.slots_in_use > 0 && self.ports[self.slots_in_use - 1].is_none() {
            self.slots_in_use -= 1;
        }
        port
    }

    /// Changes the longest frame `slot` sends.
    pub(crate) fn set_max_frame(&mut self, slot: usize, max_frame: u32) {
        if let Some(Some(p)) = self.ports.get_mut(slot) {
            p.set_limits(max_frame, p.down);
        }
    }

    /// Sets `slot` administratively down or up.
    pub(crate) fn set_down(&mut self, slot: usize, down: bool) {
        if let Some(Some(p)) = self.ports.get_mut(slot) {
            p.set_limits(p.mtu_frame, down);
        }
    }

    /// Whether `slot`'s port is administratively down (what it receives is dropped).
    #[inline(always)]
    pub(crate) fn is_down(&self, slot: usize) -> bool {
        matches!(self.ports.get(slot), Some(Some(p)) if p.down)
    }

    /// Replaces the number → slot table, returning the old one.
    pub(crate) fn swap_slot_table(&mut self, table: SlotTable) -> SlotTable {
        std::mem::replace(&mut self.index_by_number, table)
    }

    #[inline(always)]
    fn count_in(&mut self, in_idx: usize, f: impl FnOnce(&mut PortCounters)) {
        if let Some(c) = self.counters.get_mut(in_idx) {
            f(c)
        }
    }

    /// Drops a packet received on `in_idx`, counting it with `f`.
    #[inline(always)]
    pub(crate) fn drop_counted(&mut self, in_idx: usize, pkt: Mbuf, f: impl FnOnce(&mut PortCounters)) {
        self.count_in(in_idx, f);
        drop(pkt);
    }

    /// Executes `actions` on `pkt` (received on dense port `in_idx`).
    #[inline]
    pub(crate) fn execute(&mut self, in_idx: usize, pkt: Mbuf, actions: &[DpAction]) {
        match actions {
            [DpAction::Output(p)] => self.output(*p, pkt),
            [] => self.drop_counted(in_idx, pkt, |c| c.drop_action += 1),
            _ => self.execute_list(in_idx, pkt, actions),
        }
    }

    fn execute_list(&mut self, in_idx: usize, pkt: Mbuf, actions: &[DpAction]) {
        // Edits after the last output cannot be observed: stop there.
        let Some(last_out) = actions.iter().rposition(DpAction::sends) else {
            return self.drop_counted(in_idx, pkt, |c| c.drop_action += 1);
        };
        // The TPIDs of the tags `PopVlan`s removed and of the received ones (see
        // `TPID_OF_LAST_POP`, `TPID_OF_RECEIVED_OUTER`), read before any action runs.
        let mut popped = PoppedTpids::for_frame(pkt.data());
        let mut m = pkt;
        for (k, a) in actions[..=last_out].iter().enumerate() {
            match *a {
                DpAction::Output(p) | DpAction::OutputTrunc { port: p, .. } => {
                    // A frame longer than an `OutputTrunc`'s `max_len`: a copy of its head
                    // (the packet itself stays whole); any other goes out as it is.
                    if let DpAction::OutputTrunc { max_len, .. } = *a
                        && m.pkt_len() > max_len as usize
                    {
                        match m.copy_prefix(&self.pool, max_len) {
                            Some(head) => self.output(p, head),
                            None => self.count_in(in_idx, |c| c.drop_no_mbuf += 1),
                        }
                    } else if k == last_out {
                        return self.output(p, m);
                    } else {
                        let s = m.share();
                        self.output(p, s);
                    }
                    if k == last_out {
                        return;
                    }
                }
                // Read by the packet-in after them.
                DpAction::PacketInNote(_) => {}
                DpAction::Controller { .. } => {
                    let flow = PacketInFlow::before(&actions[..k]);
                    crate::packet_in::execute(self.packet_in.as_ref(), &m, a, flow);
                    if k == last_out {
                        return;
                    }
                }
                _ => {
                    m = match self.private(m) {
                        Some(m) => m,
                        None => return self.count_in(in_idx, |c| c.drop_no_mbuf += 1),
                    };
                    let result = match *a {
                        DpAction::PushVlan { tpid, tci } => push_vlan_mbuf(&mut m, popped.take(tpid), tci),
                        DpAction::PopVlan => pop_vlan_mbuf(&mut m, &mut popped),
                        DpAction::ReplaceVlan { tpid, tci } => replace_vlan_mbuf(&mut m, &mut popped, tpid, tci),
                        DpAction::CommitVlans { pop, push, tags } => {
                            commit_vlans_mbuf(&mut m, &mut popped, pop, push, &tags)
                        }
                        _ => edit_in_place(&mut m, a),
                    };
                    match result {
                        EditResult::Done => {}
                        EditResult::Drop => return self.drop_counted(in_idx, m, |c| c.drop_action += 1),
                        EditResult::Unsupported => return self.drop_counted(in_idx, m, |c| c.drop_unsupported += 1),
                    }
                }
            }
        }
    }

    /// The packet itself if nobody else references its buffer, else a private copy.
    fn private(&mut self, m: Mbuf) -> Option<Mbuf> {
        if !m.is_shared() {
            return Some(m);
        }
        m.copy(&self.pool)
    }

    /// Queues `pkt` for port `number`.
    #[inline(always)]
    pub(crate) fn output(&mut self, number: u32, pkt: Mbuf) {
        let idx = self.port_index(number);
        let Some(Some(port)) = self.ports.get_mut(idx) else {
            self.pmd.drop_bad_output += 1;
            return drop(pkt);
        };
        let len = pkt.pkt_len();
        if len > port.max_frame as usize {
            let c = &mut self.counters[idx];
            if port.down {
                c.drop_admin_down_tx += 1
            } else {
                c.drop_oversize += 1
            }
            return drop(pkt);
        }
        if port.batch.is_full() {
            self.flush_port(idx);
        }
        let Some(port) = &mut self.ports[idx] else { return drop(pkt) };
        port.pending_bytes += len as u64;
        if let Err(pkt) = port.batch.push(pkt) {
            // Unreachable after the flush above (it always empties the batch), but a packet
            // must never be lost silently.
            self.counters[idx].drop_tx_full += 1;
            drop(pkt);
        }
    }

    /// Queues the next `count` packets of `pkts` (all with the single action
    /// `Output(number)`, `bytes` long in total, none longer than `longest`) for port
    /// `number`, moving them as a block.
    #[inline(always)]
    pub(crate) fn output_run(&mut self, number: u32, pkts: &mut Drain<'_>, count: usize, bytes: u64, longest: u32) {
        let idx = self.port_index(number);
        let fits = match self.ports.get(idx) {
            Some(Some(p)) => longest <= p.max_frame,
            _ => {
                for _ in 0..count {
                    self.pmd.drop_bad_output += 1;
                    drop(pkts.next());
                }
                return;
            }
        };
        if !fits {
            // Some frame is over the port's MTU: check them one by one.
            for _ in 0..count {
                if let Some(pkt) = pkts.next() {
                    self.output(number, pkt);
                }
            }
            return;
        }
        let mut left = count;
        let mut first = true;
        while left > 0 {
            if self.ports[idx].as_ref().is_some_and(|p| p.batch.is_full()) {
                self.flush_port(idx);
            }
            let Some(port) = &mut self.ports[idx] else { break };
            if first {
                port.pending_bytes += bytes;
                first = false;
            }
            let moved = pkts.move_to(left, &mut port.batch);
            if moved == 0 {
                // Only if the caller asked for more packets than remain: nothing to lose.
                break;
            }
            left -= moved;
        }
    }

    /// Sends port `idx`'s batch; frees and counts what the queue did not take.
    fn flush_port(&mut self, idx: usize) {
        let Some(Some(port)) = self.ports.get_mut(idx) else { return };
        let queued = port.batch.len();
        if queued == 0 {
            return;
        }
        crate::capture::tx(&self.capture, port.number, &port.batch);
        let sent = tx_burst(&mut port.txq, &mut port.batch);
        let mut unsent_bytes = 0u64;
        for i in 0..port.batch.len() {
            unsent_bytes += port.batch.pkt_len(i) as u64;
        }
        let c = &mut self.counters[idx];
        c.tx_packets += sent as u64;
        c.tx_bytes += port.pending_bytes - unsent_bytes;
        c.drop_tx_full += (queued - sent) as u64;
        port.batch.free_all();
        port.pending_bytes = 0;
    }

    /// Executes `actions` on a copy of `frame` in a new mbuf (a packet-out), as if
    /// received on `in_idx`. Counted as `drop_no_mbuf` if the pool is empty.
    pub(crate) fn execute_frame(&mut self, in_idx: usize, frame: &[u8], actions: &[DpAction]) {
        match self.pool.alloc_frame(frame) {
            Ok(m) => self.execute(in_idx, m, actions),
            Err(_) => self.count_in(in_idx, |c| c.drop_no_mbuf += 1),
        }
    }

    /// Sends every pending batch.
    pub(crate) fn flush(&mut self) {
        for idx in 0..self.slots_in_use {
            self.flush_port(idx);
        }
    }
}

/// Points port `number` at `slot` in `table`, growing it as needed (control thread only).
pub(crate) fn set_slot(table: &mut SlotTable, number: u32, slot: usize) {
    let n = number as usize;
    if table.len() <= n {
        table.resize(n + 1, NO_SLOT);
    }
    table[n] = u16::try_from(slot).unwrap_or(NO_SLOT);
}
