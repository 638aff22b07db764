//! The PMD (poll-mode driver) thread: one per configured core.
//!
//! ```text
//! loop until the stop flag is set:
//!     apply queued messages (try_recv, no blocking)
//!     for each rx queue assigned to this PMD:
//!         skip it if its recent bursts missed and the pipeline cannot keep another
//!         burst's misses (pipeline.rx_hold; the frames wait in the device's ring)
//!         rx burst (<= 32)  ->  drop runts  ->  pipeline.classify(burst)
//!         hits: execute actions into per-port tx batches
//!         misses: pipeline.miss(pkt, its place in the burst) (park) or drop; then pipeline.misses_done
//!         (e.g. one upcall message for the burst); record the queue's share of misses
//!     pipeline housekeeping (cheap periodic work, e.g. parked-packet timeouts)
//!     send every non-empty tx batch on this PMD's own tx queue of that port
//!     account the iteration's TSC cycles as busy or idle; publish counters if busy
//!     idle back-off (optional): sleep after N empty iterations, doubling up to a cap
//! ```
//!
//! Everything the loop touches is owned by the thread (queues, batches, pipeline,
//! counters); other threads reach it only through the message queue and the stop flag,
//! and read its counters through relaxed atomics. No lock, allocation or system call
//! happens in the loop except the back-off sleep, which happens only when idle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};
use ferrovs_dpdk::{BURST, Drain, Eal, MbufBatch, RxQueue, rdtsc, rx_burst};

use ferrovs_flowcache::actions::DpAction;
use ferrovs_flowcache::pending::MissShare;

use crate::exec::TxState;
use crate::pipeline::{Classified, Injector, PacketView, Pipeline, RxBurst, Verdict};
use crate::port_change::PortChangeMessage;
use crate::spec::IdleBackoff;
use crate::stats::{AtomicRxqCounters, PmdShared, RxqLocal};

/// Minimum Ethernet header; shorter frames (runts) are dropped as malformed.
const MIN_FRAME: usize = 14;

/// A message to a PMD thread.
pub enum PmdMessage<M> {
    /// For the pipeline ([`Pipeline::handle_message`]).
    Pipeline(M),
    /// Barrier number `n`: once every message sent before it has been applied, the PMD
    /// stores `n` where its senders wait (see [`crate::PmdSender::barrier`]).
    Barrier(u64),
    /// Ports added, removed or changed (see [`crate::port_change`]).
    Ports(PortChangeMessage),
}

/// One rx queue a PMD polls.
pub(crate) struct AssignedRxq {
    pub rxq: RxQueue,
    pub in_port: u32,
    /// The port's slot.
    pub in_idx: usize,
    pub counters: RxqLocal,
    pub shared: Arc<AtomicRxqCounters>,
    /// The share of misses of its recent bursts: a queue whose packets miss is left alone
    /// while the pipeline cannot keep more ([`Pipeline::rx_hold`]).
    pub misses: MissShare,
}

pub(crate) struct PmdThread<C: Pipeline> {
    pub index: usize,
    pub rxqs: Vec<AssignedRxq>,
    pub tx: TxState,
    pub pipeline: C,
    pub messages: Receiver<PmdMessage<C::Message>>,
    pub stop: Arc<AtomicBool>,
    pub shared: Arc<PmdShared>,
    pub backoff: Option<IdleBackoff>,
    pub eal: Eal,
}

impl<C: Pipeline> PmdThread<C> {
    /// Runs the loop on the calling thread until the stop flag is set. `started` receives
    /// Ok once the thread is registered with DPDK, or the reason it could not be.
    pub(crate) fn run(mut self, started: Sender<Result<(), (usize, String)>>) {
        let registration = match self.eal.register_thread() {
            Ok(r) => r,
            Err(e) => {
                let _ = started.send(Err((self.index, format!("rte_thread_register: {e}"))));
                return;
            }
        };
        self.tx.packet_in = self.pipeline.packet_in_sink();
        self.shared.running.store(true, Ordering::SeqCst);
        let _ = started.send(Ok(()));
        drop(started);

        let mut state = LoopState::new(self.backoff);
        while self.iteration(&mut state) {}

        // Leave nothing behind: what is pending goes out (or is counted and freed).
        self.tx.flush();
        state.batch.free_all();
        self.shared.publish(self.tx.counters_in_use(), &self.tx.pmd);
        self.tx.perf.publish(&self.shared.perf);
        self.shared.running.store(false, Ordering::SeqCst);
        // Queues, batches and the pipeline (with any packets it holds) drop here, while
        // the thread is still registered; then it unregisters.
        drop(state);
        drop(self);
        drop(registration);
    }

    /// One loop iteration (see the module doc): messages, every rx queue's burst through
    /// [`process_burst`], housekeeping, the tx flush, the cycle accounting, counter
    /// publication and the idle back-off. Returns false, doing nothing, once the stop flag
    /// is set. Inlined into [`PmdThread::run`]; the loop benchmark
    /// ([`crate::burst_bench::LoopBench`]) calls the same function, so what it counts is
    /// what the loop runs.
    #[inline(always)]
    pub(crate) fn iteration(&mut self, st: &mut LoopState) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        // Port counters changed outside an rx burst (packets injected by a message or
        // dropped by housekeeping): publish them even if the iteration is idle.
        let mut touched = false;
        // `is_empty` (two loads) first: `try_recv` on an empty queue costs ~55
        // instructions, paid by every iteration. A message that arrives meanwhile is
        // applied by the next iteration.
        while !self.messages.is_empty()
            && let Ok(msg) = self.messages.try_recv()
        {
            self.tx.pmd.messages += 1;
            match msg {
                PmdMessage::Pipeline(m) => {
                    touched = true;
                    self.pipeline.handle_message(m, &mut Injector { tx: &mut self.tx })
                }
                PmdMessage::Barrier(n) => {
                    // Packets injected by earlier messages leave before the ack.
                    self.tx.flush();
                    self.shared.barrier_done.fetch_max(n, Ordering::Release);
                }
                PmdMessage::Ports(PortChangeMessage { mut change }) => {
                    touched = true;
                    self.tx.flush();
                    change.apply(&mut self.rxqs, &mut self.tx);
                    self.shared.port_changes.give(change);
                }
            }
        }

        let LoopState { batch, scratch, .. } = st;
        let mut received = 0usize;
        // Queues whose packets miss wait while the pipeline cannot keep another burst of
        // misses; queues of cached flows never do.
        let hold = self.pipeline.rx_hold();
        let mut held = 0;
        for q in self.rxqs.iter_mut() {
            if q.misses.held_by(hold) {
                held += 1;
                continue;
            }
            let t0 = rdtsc();
            let n = rx_burst(&mut q.rxq, batch);
            if n == 0 {
                continue;
            }
            if self.tx.is_down(q.in_idx) {
                // Administratively down: what arrives is freed unprocessed (the ring
                // does not fill with stale frames to deliver when it comes up).
                self.tx.counters[q.in_idx].drop_admin_down_rx += n as u64;
                batch.free_all();
                touched = true;
                continue;
            }
            received += n;
            self.tx.pmd.rx_bursts += 1;
            self.tx.perf.batch(n);
            crate::capture::rx(&self.tx.capture, q.in_port, batch);
            let misses = process_burst(q.in_port, q.in_idx, batch, scratch, &mut self.pipeline, &mut self.tx);
            q.misses.record(n, misses);
            // The queue's share of the PMD (pmd-rxq-show, and where a new queue goes).
            q.counters.busy_cycles += rdtsc().wrapping_sub(t0);
            q.counters.packets += n as u64;
        }
        if held > 0 {
            self.pipeline.rxqs_held(held);
        }
        touched |= self.pipeline.housekeeping(&mut Injector { tx: &mut self.tx });
        self.tx.flush();

        let now = rdtsc();
        let spent = now.wrapping_sub(st.t_prev);
        st.t_prev = now;
        self.tx.pmd.iterations += 1;
        self.tx.perf.iteration(spent, received, &self.shared.perf);
        if received > 0 {
            self.tx.pmd.busy_cycles += spent;
            self.tx.pmd.packets += received as u64;
            self.shared.publish(self.tx.counters_in_use(), &self.tx.pmd);
            for q in &self.rxqs {
                q.shared.publish(&q.counters);
            }
            st.empty_polls = 0;
            if let Some(b) = self.backoff {
                st.sleep = b.start;
            }
        } else {
            self.tx.pmd.idle_cycles += spent;
            if touched {
                self.shared.publish(self.tx.counters_in_use(), &self.tx.pmd);
            }
            st.empty_polls = st.empty_polls.saturating_add(1);
            if let Some(b) = self.backoff {
                if st.empty_polls >= b.after_empty_polls {
                    self.shared.publish_pmd(&self.tx.pmd);
                    std::thread::sleep(st.sleep);
                    st.sleep = (st.sleep * 2).min(b.max);
                    // The sleep is idle time; charge it here, not to the next
                    // iteration (which may be busy and would then report the
                    // sleep as cycles spent on its packets).
                    let woke = rdtsc();
                    self.tx.pmd.idle_cycles += woke.wrapping_sub(st.t_prev);
                    st.t_prev = woke;
                }
            } else if st.empty_polls & 1023 == 0 {
                self.shared.publish_pmd(&self.tx.pmd);
            }
        }
        true
    }
}

/// What the loop carries from one iteration to the next.
pub(crate) struct LoopState {
    /// The rx burst (empty between iterations).
    pub batch: MbufBatch,
    pub scratch: BurstScratch,
    /// Iterations in a row that received nothing.
    empty_polls: u32,
    /// The next back-off sleep.
    sleep: std::time::Duration,
    /// The TSC at the end of the previous iteration.
    t_prev: u64,
}

impl LoopState {
    pub(crate) fn new(backoff: Option<IdleBackoff>) -> LoopState {
        LoopState {
            batch: MbufBatch::new(),
            scratch: BurstScratch::new(),
            empty_polls: 0,
            sleep: backoff.map(|b| b.start).unwrap_or_default(),
            t_prev: rdtsc(),
        }
    }
}

/// Whether `v` is the single action `output(port)`. Compared by value, not by the
/// address of the action list: packets of different megaflows with the same output
/// (every 5-tuple its own megaflow, one output port) then form one run, moved as a block.
#[inline(always)]
fn is_output_to(v: Verdict<'_>, port: u32) -> bool {
    matches!(v, Verdict::Actions([DpAction::Output(p)]) if *p == port)
}

/// The output port, if every verdict is the same action list `output(port)` (by
/// address: one megaflow's list, as a burst of one flow or a port-wide megaflow gives).
/// Stops at the first other list, so a burst of several costs a compare or two.
#[inline(always)]
fn one_output_for_all(verdicts: &[Verdict<'_>]) -> Option<u32> {
    let (&first, rest) = verdicts.split_first()?;
    let Verdict::Actions(list @ [DpAction::Output(port)]) = first else { return None };
    rest.iter().all(|v| matches!(v, Verdict::Actions(l) if std::ptr::eq(*l, list))).then_some(*port)
}

/// The port of `v` if it is the single action `output(port)`.
#[inline(always)]
fn single_output(v: Verdict<'_>) -> Option<u32> {
    match v {
        Verdict::Actions([DpAction::Output(port)]) => Some(*port),
        _ => None,
    }
}

/// Whether `v` drops the packet (an empty action list).
#[inline(always)]
fn is_drop(v: Verdict<'_>) -> bool {
    matches!(v, Verdict::Actions([]))
}

/// The loop's per-packet work on a received burst, done while the pipeline walks the
/// packets ([`RxBurst`]): each packet's length, whether it is a runt, the burst's bytes,
/// and the bytes of the packets' first segments (a frame in more than one segment is
/// found from the difference, after the walk: [`mark_segmented`]). The arrays are the
/// caller's, borrowed: moving them out of the pass afterwards (it borrows the batch,
/// which the execution then drains) copied 160 bytes per burst.
struct RxPass<'b, 'a> {
    batch: &'b MbufBatch,
    lens: &'a mut [u32; BURST],
    malformed: &'a mut [bool; BURST],
    /// Some packet is malformed (else the execution loop does not look at `malformed`).
    any_malformed: bool,
    bytes: u64,
    /// Bytes of the packets' first segments: `bytes` unless a frame came in segments.
    first_segment_bytes: u64,
    /// The packets were walked (a pipeline that does not look at them leaves it false).
    walked: bool,
}

impl<'b> RxBurst<'b> for &mut RxPass<'b, '_> {
    fn len(&self) -> usize {
        self.batch.len()
    }

    #[inline(always)]
    fn for_each(self, mut f: impl FnMut(usize, PacketView<'b>)) {
        self.walked = true;
        let (lens, malformed, any_malformed, bytes, first) = (
            &mut *self.lens,
            &mut *self.malformed,
            &mut self.any_malformed,
            &mut self.bytes,
            &mut self.first_segment_bytes,
        );
        self.batch.for_each_packet(|i, frame, rss_hash, len| {
            lens[i] = len;
            if frame.len() < MIN_FRAME {
                malformed[i] = true;
                *any_malformed = true;
            }
            *bytes += len as u64;
            // One add per packet, where a comparison of the two lengths and its branch
            // cost four to five instructions per packet.
            *first += frame.len() as u64;
            f(i, PacketView { frame, rss_hash });
        });
    }
}

/// The batches [`process_burst`] sorts packets into, kept from one burst to the next
/// (empty in between) so that no burst pays for clearing new ones (two 256-byte
/// `memset`s per burst, ~2 instructions per packet).
pub(crate) struct BurstScratch {
    misses: MbufBatch,
    dropped: MbufBatch,
}

impl BurstScratch {
    pub(crate) fn new() -> BurstScratch {
        BurstScratch { misses: MbufBatch::new(), dropped: MbufBatch::new() }
    }
}

/// Classifies one burst from `in_port` and executes the verdicts. Leaves `batch` and
/// `scratch` empty. Returns how many of its packets missed.
#[inline]
pub(crate) fn process_burst<C: Pipeline>(
    in_port: u32,
    in_idx: usize,
    batch: &mut MbufBatch,
    scratch: &mut BurstScratch,
    pipeline: &mut C,
    tx: &mut TxState,
) -> usize {
    let n = batch.len();
    let mut verdicts = [Verdict::Miss; BURST];
    // The loop's pass over the packets runs inside the pipeline's (see `RxBurst`).
    let (mut lens, mut malformed) = ([0u32; BURST], [false; BURST]);
    let mut rx = RxPass {
        batch,
        lens: &mut lens,
        malformed: &mut malformed,
        any_malformed: false,
        bytes: 0,
        first_segment_bytes: 0,
        walked: false,
    };
    let classified = pipeline.classify(in_port, &mut rx, &mut verdicts[..n]);
    if !rx.walked {
        (&mut rx).for_each(|_, _| {});
    }
    let RxPass { mut any_malformed, bytes: rx_bytes, first_segment_bytes, .. } = rx;
    if first_segment_bytes != rx_bytes {
        any_malformed |= mark_segmented(batch, &lens, &mut malformed);
    }
    let c = &mut tx.counters[in_idx];
    c.rx_packets += n as u64;
    c.rx_bytes += rx_bytes;

    // Runts and packets whose actions drop them go to `dropped`: freed together after the
    // loop (one bulk free, not one call into C per packet).
    let BurstScratch { misses, dropped } = scratch;
    debug_assert!(misses.is_empty() && dropped.is_empty());
    let mut pkts = batch.drain();
    let verdicts = &verdicts[..n];
    debug_assert!(
        match classified {
            Classified::Uniform => verdicts.iter().all(|v| *v == verdicts[0]),
            Classified::OneOutput(port) => verdicts.iter().all(|&v| single_output(v) == Some(port)),
            Classified::Mixed => true,
        },
        "{classified:?} {verdicts:?}"
    );
    let one_output = match classified {
        Classified::Uniform => verdicts.first().and_then(|&v| single_output(v)),
        Classified::OneOutput(port) => Some(port),
        Classified::Mixed => one_output_for_all(verdicts),
    };
    if !any_malformed && let Some(port) = one_output {
        // The whole burst is one run (one megaflow, or a port-wide one): one block,
        // without the run loop's test of every verdict.
        let longest = lens[..n].iter().copied().max().unwrap_or(0);
        tx.output_run(port, &mut pkts, n, rx_bytes, longest);
    } else if any_malformed {
        execute_verdicts::<true>(verdicts, &lens, &malformed, &mut pkts, misses, dropped, in_idx, tx);
    } else {
        execute_verdicts::<false>(verdicts, &lens, &malformed, &mut pkts, misses, dropped, in_idx, tx);
    }
    drop(pkts);
    dropped.free_all();
    // The verdicts borrow the pipeline; misses are handed over after they are done.
    let n_misses = misses.len();
    if n_misses == 0 {
        return 0;
    }
    let (places, found) = miss_places(verdicts, &malformed, any_malformed);
    // Declined packets are freed together (one bulk free, not one call per packet).
    let mut declined = MbufBatch::new();
    for (pkt, &at) in misses.drain().zip(&places[..found]) {
        if let Some(pkt) = pipeline.miss(in_port, at as usize, pkt) {
            // Same capacity as `misses`: cannot fail, but never lose a packet silently.
            if let Err(pkt) = declined.push(pkt) {
                drop(pkt);
            }
        }
    }
    tx.counters[in_idx].drop_no_rule += declined.len() as u64;
    declined.free_all();
    pipeline.misses_done(&mut Injector { tx });
    n_misses
}

/// Marks malformed the packets of a burst that came in more than one segment (longer than
/// an mbuf's data room: the switch's mbufs are sized for the largest MTU, so only frames
/// longer than any port takes): the parser and the edits see the first segment only, so
/// such a frame's key could say a header is absent or cut short that is there. Dropped
/// whatever its verdict, as a NIC drops a frame longer than its buffers (OVS-DPDK without
/// multi-segment mbufs does not take it either). Returns whether it marked any.
#[cold]
#[inline(never)]
fn mark_segmented(batch: &MbufBatch, lens: &[u32; BURST], malformed: &mut [bool; BURST]) -> bool {
    let mut any = false;
    for i in 0..batch.len() {
        if batch.data(i).len() != lens[i] as usize {
            malformed[i] = true;
            any = true;
        }
    }
    any
}

/// The places in the burst of the packets that went to `misses`: those whose verdict is a
/// miss, runts excepted (dropped before their verdict is read), and how many. Found
/// again after the execution loop rather than noted by it, and out of line: either way
/// in the hot path cost every packet of every burst an instruction or two, misses or not.
#[inline(never)]
fn miss_places(verdicts: &[Verdict<'_>], malformed: &[bool; BURST], any_malformed: bool) -> ([u8; BURST], usize) {
    let mut places = [0u8; BURST];
    let mut found = 0;
    for (i, v) in verdicts.iter().enumerate() {
        if matches!(v, Verdict::Miss)
            && !(any_malformed && malformed[i])
            && let Some(p) = places.get_mut(found)
        {
            *p = i as u8;
            found += 1;
        }
    }
    (places, found)
}

/// Executes the `verdicts` of a burst's packets, taken in order from `pkts`: runs of one
/// single output move to the tx batch as a block, drops and runts go to `dropped`,
/// misses to `misses`. `MALFORMED`: some packet is malformed (`malformed`); without any, the loop
/// does not test for them.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn execute_verdicts<const MALFORMED: bool>(
    verdicts: &[Verdict<'_>],
    lens: &[u32; BURST],
    malformed: &[bool; BURST],
    pkts: &mut Drain<'_>,
    misses: &mut MbufBatch,
    dropped: &mut MbufBatch,
    in_idx: usize,
    tx: &mut TxState,
) {
    let n = verdicts.len();
    let mut i = 0;
    while i < n {
        if MALFORMED && malformed[i] {
            // `dropped` has room for a whole burst.
            tx.counters[in_idx].drop_malformed += pkts.move_to(1, dropped) as u64;
            i += 1;
            continue;
        }
        match verdicts[i] {
            // The common case: a run of packets with the same single output (of one
            // megaflow or several) moves to the tx batch as a block.
            Verdict::Actions([DpAction::Output(port)]) => {
                let port = *port;
                let mut j = i + 1;
                let mut bytes = lens[i] as u64;
                let mut longest = lens[i];
                while j < n && !(MALFORMED && malformed[j]) && is_output_to(verdicts[j], port) {
                    bytes += lens[j] as u64;
                    longest = longest.max(lens[j]);
                    j += 1;
                }
                tx.output_run(port, pkts, j - i, bytes, longest);
                i = j;
            }
            Verdict::Actions([]) => {
                let mut j = i + 1;
                while j < n && !(MALFORMED && malformed[j]) && is_drop(verdicts[j]) {
                    j += 1;
                }
                tx.counters[in_idx].drop_action += pkts.move_to(j - i, dropped) as u64;
                i = j;
            }
            Verdict::Actions(actions) => {
                if let Some(pkt) = pkts.next() {
                    tx.execute(in_idx, pkt, actions);
                }
                i += 1;
            }
            // `misses` has room for a whole burst.
            Verdict::Miss => {
                if let Some(pkt) = pkts.next()
                    && let Err(pkt) = misses.push(pkt)
                {
                    tx.drop_counted(in_idx, pkt, |c| c.drop_no_rule += 1);
                }
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_output_for_all_takes_one_list_by_address() {
        let list = [DpAction::Output(4)];
        let same_content = [DpAction::Output(4)];
        let two = [DpAction::Output(4), DpAction::Output(5)];
        let one = Verdict::Actions(&list);
        assert_eq!(one_output_for_all(&[one; 32]), Some(4));
        assert_eq!(one_output_for_all(&[one]), Some(4));
        assert_eq!(one_output_for_all(&[]), None);
        // Equal actions of another megaflow: the run loop groups them, not this.
        assert_eq!(one_output_for_all(&[one, Verdict::Actions(&same_content)]), None);
        assert_eq!(one_output_for_all(&[one, one, Verdict::Miss]), None);
        assert_eq!(one_output_for_all(&[Verdict::Actions(&[]); 4]), None);
        assert_eq!(one_output_for_all(&[Verdict::Actions(&two); 4]), None);
        assert_eq!(one_output_for_all(&[Verdict::Actions(&list[..0]), one]), None);
    }
}
