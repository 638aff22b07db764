//! Packet capture on the PMD side: copies of one port's frames, taken only while a
//! capture of that port is armed, handed to a reader on another thread.
//!
//! # Design
//!
//! The switch owns one [`CaptureTaps`] for its whole life, shared by every PMD (through
//! its `TxState`) and by whoever arms captures (the daemon). It holds, per OpenFlow port
//! number, one byte saying which capture slot (if any) takes that port's frames, and
//! [`MAX_CAPTURES`] slots, each a pair of bounded queues of fixed-size buffers, one
//! buffer holding one burst (up to [`BURST`] frames of up to [`SNAP_LEN`] bytes):
//!
//! ```text
//!   arm(port) ─► buffers allocated (reader's thread) ─► slot.free
//!   PMD, per rx burst of the port and per tx burst to it, while the port's byte is set:
//!       one relaxed load (a byte of a read-mostly table) ─► take a buffer from
//!       slot.free, copy the burst's frames into it, push it to slot.full;
//!       no buffer ─► count the burst's frames as capture drops
//!   reader: pop slot.full ─► filter / write out ─► push the buffer back to slot.free
//!   drop(CaptureHandle) ─► port byte cleared, buffers freed (reader's thread)
//! ```
//!
//! A buffer per burst rather than per frame: the two queue operations (atomics on cache
//! lines the reader's core also writes) are paid once per burst, so a captured frame
//! costs little more than its copy.
//!
//! Nothing on the PMD allocates, locks or waits: the queues are bounded crossbeam channels
//! (array flavour: slots preallocated when the taps are made), used only with `try_send`
//! / `try_recv` on both sides, so no thread ever sleeps on them and the PMD never takes
//! a waker's lock. A port nobody captures costs one relaxed byte load per burst; a
//! captured port's PMD also pays the copies. When the reader falls behind, the free queue
//! runs dry and frames are dropped *from the capture* (counted), never from forwarding.
//!
//! What is captured: rx frames as received (before any action edits them), tx frames as
//! handed to the port's tx queue (after edits; frames the queue then refuses, counted as
//! `drop_tx_full`, are in the capture too, as with `dpdk-dumpcap`). Only the first mbuf
//! segment is copied, at most [`SNAP_LEN`] bytes; the frame's whole length is kept.
//!
//! A disarm races with PMDs in the middle of a burst: a PMD that read the port's byte just
//! before it was cleared may still push a few frames. Those stay in the slot's queue and
//! are freed by the next [`CaptureTaps::arm`] of the slot (or when the taps drop); every
//! frame carries its port number and the reader skips bursts of another port.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};
use ferrovs_dpdk::{BURST, MbufBatch, rdtsc};

use crate::spec::MAX_PORT_NUMBER;

/// Bytes of a frame a capture keeps (the first segment of a default mbuf holds at most
/// 2,048 bytes of data).
pub const SNAP_LEN: usize = 2048;

/// Captures that may run at once (on different ports).
pub const MAX_CAPTURES: usize = 4;

/// Burst buffers a capture gets unless told otherwise: 128 of 64 KiB (8 MiB), 4,096
/// frames, about a millisecond of a busy 10 Gb/s port; allocated when the capture
/// starts, freed when it ends.
pub const DEFAULT_CAPTURE_BUFFERS: usize = 128;

/// Most buffers one capture may have in flight (the capacity of each slot queue).
pub const MAX_CAPTURE_BUFFERS: usize = 1024;

/// Which way a captured frame was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received on the port.
    Rx,
    /// Sent to the port.
    Tx,
}

/// One captured burst in a fixed-size buffer.
pub struct CapturedBurst {
    /// TSC when the PMD copied the burst.
    pub tsc: u64,
    /// OpenFlow number of the port the burst was captured on.
    pub port: u32,
    pub direction: Direction,
    /// Frames held (`<= BURST`).
    n: usize,
    /// Bytes of `data[i]` that hold frame `i` (`<= SNAP_LEN`).
    lens: [u32; BURST],
    /// Length of frame `i` on the wire (all segments).
    orig_lens: [u32; BURST],
    data: [[u8; SNAP_LEN]; BURST],
}

/// One frame of a [`CapturedBurst`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedFrame<'a> {
    pub bytes: &'a [u8],
    /// Length of the frame on the wire (`>= bytes.len()`).
    pub orig_len: u32,
}

impl CapturedBurst {
    /// The frames, in the order of the burst.
    pub fn frames(&self) -> impl Iterator<Item = CapturedFrame<'_>> {
        (0..self.n)
            .map(|i| CapturedFrame { bytes: &self.data[i][..self.lens[i] as usize], orig_len: self.orig_lens[i] })
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn empty() -> Box<CapturedBurst> {
        Box::new(CapturedBurst {
            tsc: 0,
            port: 0,
            direction: Direction::Rx,
            n: 0,
            lens: [0; BURST],
            orig_lens: [0; BURST],
            data: [[0; SNAP_LEN]; BURST],
        })
    }
}

type Frame = Box<CapturedBurst>;

/// One capture's queues and counters.
struct Slot {
    free_tx: Sender<Frame>,
    free_rx: Receiver<Frame>,
    full_tx: Sender<Frame>,
    full_rx: Receiver<Frame>,
    /// Frames not captured for want of a free buffer.
    dropped: AtomicU64,
    in_use: AtomicBool,
}

impl Slot {
    fn new() -> Slot {
        let (free_tx, free_rx) = bounded(MAX_CAPTURE_BUFFERS);
        let (full_tx, full_rx) = bounded(MAX_CAPTURE_BUFFERS);
        Slot { free_tx, free_rx, full_tx, full_rx, dropped: AtomicU64::new(0), in_use: AtomicBool::new(false) }
    }

    /// Frees every buffer left in either queue (the reader's thread).
    fn drain(&self) {
        while self.full_rx.try_recv().is_ok() {}
        while self.free_rx.try_recv().is_ok() {}
    }
}

/// Why a capture could not be armed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("port {0} is already being captured")]
    Busy(u32),
    #[error("{MAX_CAPTURES} captures are running already")]
    TooMany,
    #[error("port number {0} is out of range")]
    BadPort(u32),
    #[error("a capture needs 1..={MAX_CAPTURE_BUFFERS} buffers, not {0}")]
    BadBuffers(usize),
}

/// The capture state of one switch, shared by its PMDs and the thread that arms captures.
pub struct CaptureTaps {
    /// By port number: 0 if the port is not captured, else its slot's index + 1.
    by_port: Box<[AtomicU8]>,
    slots: [Slot; MAX_CAPTURES],
}

impl Default for CaptureTaps {
    fn default() -> Self {
        CaptureTaps {
            by_port: (0..=MAX_PORT_NUMBER).map(|_| AtomicU8::new(0)).collect(),
            slots: std::array::from_fn(|_| Slot::new()),
        }
    }
}

impl CaptureTaps {
    /// Starts capturing port `port` with `buffers` frame buffers (allocated here, on the
    /// caller's thread). The capture runs until the handle drops.
    pub fn arm(self: &Arc<Self>, port: u32, buffers: usize) -> Result<CaptureHandle, CaptureError> {
        let entry = self.by_port.get(port as usize).ok_or(CaptureError::BadPort(port))?;
        if !(1..=MAX_CAPTURE_BUFFERS).contains(&buffers) {
            return Err(CaptureError::BadBuffers(buffers));
        }
        if entry.load(Ordering::SeqCst) != 0 {
            return Err(CaptureError::Busy(port));
        }
        let slot = (0..MAX_CAPTURES)
            .find(|&i| self.slots[i].in_use.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_ok())
            .ok_or(CaptureError::TooMany)?;
        let s = &self.slots[slot];
        // Frames a PMD pushed after the previous capture of this slot ended.
        s.drain();
        s.dropped.store(0, Ordering::SeqCst);
        for _ in 0..buffers {
            // Capacity is MAX_CAPTURE_BUFFERS and the queue was just drained.
            let _ = s.free_tx.try_send(CapturedBurst::empty());
        }
        if entry.compare_exchange(0, slot as u8 + 1, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            s.drain();
            s.in_use.store(false, Ordering::SeqCst);
            return Err(CaptureError::Busy(port));
        }
        Ok(CaptureHandle { taps: self.clone(), slot, port })
    }

    /// The slot capturing `port`, if any: what a PMD checks once per burst.
    #[inline(always)]
    fn slot_of(&self, port: u32) -> Option<usize> {
        match self.by_port.get(port as usize).map(|b| b.load(Ordering::Relaxed)) {
            None | Some(0) => None,
            Some(s) => Some(s as usize - 1),
        }
    }

    /// Copies the frames of `batch` into one of slot `slot`'s free buffers.
    #[cold]
    #[inline(never)]
    fn copy_batch(&self, slot: usize, port: u32, direction: Direction, batch: &MbufBatch) {
        let s = &self.slots[slot];
        let Ok(mut b) = s.free_rx.try_recv() else {
            s.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            return;
        };
        b.tsc = rdtsc();
        b.port = port;
        b.direction = direction;
        b.n = batch.len();
        for i in 0..b.n {
            let data = batch.data(i);
            let n = data.len().min(SNAP_LEN);
            b.data[i][..n].copy_from_slice(&data[..n]);
            b.lens[i] = n as u32;
            b.orig_lens[i] = batch.pkt_len(i) as u32;
        }
        // Both queues have room for every buffer, so this cannot fail; if it ever did,
        // the buffer goes back (never freed on the PMD).
        if let Err(e) = s.full_tx.try_send(b) {
            let b = e.into_inner();
            s.dropped.fetch_add(b.n as u64, Ordering::Relaxed);
            let _ = s.free_tx.try_send(b);
        }
    }
}

/// PMD hook: an rx burst of `port` (before anything edits it).
#[inline(always)]
pub(crate) fn rx(taps: &CaptureTaps, port: u32, batch: &MbufBatch) {
    if let Some(slot) = taps.slot_of(port) {
        taps.copy_batch(slot, port, Direction::Rx, batch);
    }
}

/// PMD hook: a tx burst about to be handed to `port`'s tx queue.
#[inline(always)]
pub(crate) fn tx(taps: &CaptureTaps, port: u32, batch: &MbufBatch) {
    if let Some(slot) = taps.slot_of(port) {
        taps.copy_batch(slot, port, Direction::Tx, batch);
    }
}

/// A running capture of one port. Dropping it stops the capture and frees its buffers.
pub struct CaptureHandle {
    taps: Arc<CaptureTaps>,
    slot: usize,
    port: u32,
}

impl CaptureHandle {
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The next captured burst of this port, if one is waiting (never blocks).
    pub fn try_next(&self) -> Option<Box<CapturedBurst>> {
        let s = &self.taps.slots[self.slot];
        while let Ok(f) = s.full_rx.try_recv() {
            if f.port == self.port {
                return Some(f);
            }
            // Left by a PMD from the slot's previous capture: reuse the buffer.
            self.recycle(f);
        }
        None
    }

    /// Gives a burst's buffer back for the PMDs to fill again.
    pub fn recycle(&self, f: Box<CapturedBurst>) {
        let _ = self.taps.slots[self.slot].free_tx.try_send(f);
    }

    /// Frames not captured because no buffer was free.
    pub fn dropped(&self) -> u64 {
        self.taps.slots[self.slot].dropped.load(Ordering::Relaxed)
    }
}

impl Drop for CaptureHandle {
    fn drop(&mut self) {
        self.taps.by_port[self.port as usize].store(0, Ordering::SeqCst);
        let s = &self.taps.slots[self.slot];
        s.drain();
        s.in_use.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arming_refuses_what_it_cannot_do_and_disarming_frees_the_slot() {
        let taps = Arc::new(CaptureTaps::default());
        assert_eq!(taps.arm(MAX_PORT_NUMBER + 1, 8).err(), Some(CaptureError::BadPort(MAX_PORT_NUMBER + 1)));
        assert_eq!(taps.arm(1, 0).err(), Some(CaptureError::BadBuffers(0)));
        let a = taps.arm(1, 8).unwrap();
        assert_eq!(taps.slot_of(1), Some(a.slot));
        assert_eq!(taps.arm(1, 8).err(), Some(CaptureError::Busy(1)));
        let others: Vec<CaptureHandle> = (2..=MAX_CAPTURES as u32).map(|p| taps.arm(p, 8).unwrap()).collect();
        assert_eq!(taps.arm(100, 8).err(), Some(CaptureError::TooMany));
        assert_eq!(taps.slots[a.slot].free_rx.len(), 8);
        let slot = a.slot;
        drop(a);
        assert_eq!(taps.slot_of(1), None);
        assert_eq!(taps.slots[slot].free_rx.len(), 0, "buffers freed");
        let again = taps.arm(100, 4).unwrap();
        assert_eq!(again.slot, slot);
        drop(others);
    }

    #[test]
    fn frames_of_another_port_are_skipped_and_recycled() {
        let taps = Arc::new(CaptureTaps::default());
        let h = taps.arm(7, 2).unwrap();
        let s = &taps.slots[h.slot];
        let mut stale = s.free_rx.try_recv().unwrap();
        stale.port = 3;
        s.full_tx.try_send(stale).unwrap();
        let mut good = s.free_rx.try_recv().unwrap();
        good.port = 7;
        good.n = 1;
        good.lens[0] = 2;
        good.orig_lens[0] = 60;
        good.data[0][..2].copy_from_slice(b"ok");
        s.full_tx.try_send(good).unwrap();
        let f = h.try_next().expect("the port's burst");
        assert_eq!(f.frames().collect::<Vec<_>>(), [CapturedFrame { bytes: b"ok", orig_len: 60 }]);
        assert!(h.try_next().is_none());
        assert_eq!(s.free_rx.len(), 1, "the stale buffer went back");
        h.recycle(f);
        assert_eq!(s.free_rx.len(), 2);
    }
}
