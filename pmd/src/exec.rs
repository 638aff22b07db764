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
//! reference, so the common single-output case touches no refcount at all.
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
use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::edit::{EditOutcome, execute_edit, pop_vlan, push_vlan};

use crate::capture::CaptureTaps;
use crate::perf::PmdPerf;
use crate::stats::{PmdLocal, PortCounters};

/// Dense index meaning "no such port".
pub(crate) const NO_PORT: usize = usize::MAX;

pub(crate) struct TxPort {
    /// OpenFlow port number.
    number: u32,
    txq: TxQueue,
    batch: MbufBatch,
    pending_bytes: u64,
}

/// One PMD's output side: per-port tx queue and batch, counters, and the pool for copies.
pub struct TxState {
    ports: Vec<TxPort>,
    /// Dense port index by OpenFlow port number (`NO_PORT` where there is none).
    index_by_number: Vec<usize>,
    pub(crate) counters: Vec<PortCounters>,
    pub(crate) pmd: PmdLocal,
    pool: Mempool,
    /// The switch's captures (`capture.rs`): checked once per rx and per tx burst.
    pub(crate) capture: Arc<CaptureTaps>,
    /// The PMD's iteration histograms (`perf.rs`).
    pub(crate) perf: PmdPerf,
}

/// What one edit did to a packet.
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

/// Removes the outer VLAN tag if flowcache's parser sees one (else nothing to do).
fn pop_vlan_mbuf(m: &mut Mbuf) -> EditResult {
    let Some(frame) = m.data_mut() else { return EditResult::Unsupported };
    if !pop_vlan(frame) {
        return EditResult::Done;
    }
    // The MAC addresses have moved 4 bytes on: the packet now starts there.
    if m.adj(4) { EditResult::Done } else { EditResult::Unsupported }
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
    /// `ports[i] = (number, this PMD's tx queue of port i)`.
    pub(crate) fn new(ports: Vec<(u32, TxQueue)>, pool: Mempool, capture: Arc<CaptureTaps>) -> TxState {
        let max = ports.iter().map(|(n, _)| *n as usize).max().unwrap_or(0);
        let mut index_by_number = vec![NO_PORT; max + 1];
        for (i, (n, _)) in ports.iter().enumerate() {
            index_by_number[*n as usize] = i;
        }
        let n = ports.len();
        TxState {
            ports: ports
                .into_iter()
                .map(|(number, txq)| TxPort { number, txq, batch: MbufBatch::new(), pending_bytes: 0 })
                .collect(),
            index_by_number,
            counters: vec![PortCounters::default(); n],
            pmd: PmdLocal::default(),
            pool,
            capture,
            perf: PmdPerf::default(),
        }
    }

    /// Dense index of port `number`, or `NO_PORT`.
    #[inline(always)]
    pub(crate) fn port_index(&self, number: u32) -> usize {
        self.index_by_number.get(number as usize).copied().unwrap_or(NO_PORT)
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
        let Some(last_out) = actions.iter().rposition(|a| matches!(a, DpAction::Output(_))) else {
            return self.drop_counted(in_idx, pkt, |c| c.drop_action += 1);
        };
        let mut m = pkt;
        for (k, a) in actions[..=last_out].iter().enumerate() {
            match *a {
                DpAction::Output(p) if k == last_out => return self.output(p, m),
                DpAction::Output(p) => {
                    let s = m.share();
                    self.output(p, s);
                }
                _ => {
                    m = match self.private(m) {
                        Some(m) => m,
                        None => return self.count_in(in_idx, |c| c.drop_no_mbuf += 1),
                    };
                    let result = match *a {
                        DpAction::PushVlan { tpid, tci } => push_vlan_mbuf(&mut m, tpid, tci),
                        DpAction::PopVlan => pop_vlan_mbuf(&mut m),
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
        if idx == NO_PORT {
            self.pmd.drop_bad_output += 1;
            return drop(pkt);
        }
        if self.ports[idx].batch.is_full() {
            self.flush_port(idx);
        }
        let port = &mut self.ports[idx];
        port.pending_bytes += pkt.pkt_len() as u64;
        if let Err(pkt) = port.batch.push(pkt) {
            // Unreachable after the flush above (it always empties the batch), but a packet
            // must never be lost silently.
            self.counters[idx].drop_tx_full += 1;
            drop(pkt);
        }
    }

    /// Queues the next `count` packets of `pkts` (all with the single action
    /// `Output(number)`, `bytes` long in total) for port `number`, moving them as a block.
    #[inline(always)]
    pub(crate) fn output_run(&mut self, number: u32, pkts: &mut Drain<'_>, count: usize, bytes: u64) {
        let idx = self.port_index(number);
        if idx == NO_PORT {
            for _ in 0..count {
                self.pmd.drop_bad_output += 1;
                drop(pkts.next());
            }
            return;
        }
        self.ports[idx].pending_bytes += bytes;
        let mut left = count;
        while left > 0 {
            if self.ports[idx].batch.is_full() {
                self.flush_port(idx);
            }
            let moved = pkts.move_to(left, &mut self.ports[idx].batch);
            if moved == 0 {
                // Only if the caller asked for more packets than remain: nothing to lose.
                break;
            }
            left -= moved;
        }
    }

    /// Sends port `idx`'s batch; frees and counts what the queue did not take.
    fn flush_port(&mut self, idx: usize) {
        let port = &mut self.ports[idx];
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

    /// Sends every pending batch.
    pub(crate) fn flush(&mut self) {
        for idx in 0..self.ports.len() {
            self.flush_port(idx);
        }
    }
}
