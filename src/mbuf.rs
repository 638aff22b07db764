//! Packets: [`MbufBatch`] (a burst of up to [`BURST`] mbufs, the unit of work of the fast
//! path) and [`Mbuf`] (one owned packet).
//!
//! Accessors read `buf_addr`, `data_off`, `data_len`, `pkt_len`, `refcnt`, `ol_flags` and
//! `hash.rss` straight from the bound `rte_mbuf` struct, so looking at a packet costs no
//! FFI call; rx, tx and bulk free are one call per burst.
//!
//! Ownership: a batch owns the mbufs in its slots `0..len`; an `Mbuf` owns one. Dropping
//! either frees what it owns, so a packet can be lost from the switch only by being
//! counted and freed. [`Mbuf::share`] adds a reference (refcount + 1) to the same buffer,
//! for sending one packet to several ports without copying; while a buffer is shared its
//! bytes are read-only ([`Mbuf::data_mut`] returns `None`), and [`Mbuf::copy`] makes a
//! private deep copy for an output that is edited differently.
//!
//! Only the first segment is exposed by `data`/`data_mut`: the drivers we use deliver
//! single-segment packets for frames that fit the data room (2048 bytes by default).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use crate::error::DpdkError;
use crate::mempool::Mempool;
use crate::sys;

/// Packets per burst. The fact's home is `ferrovs_config::BURST_SIZE`; this crate sits
/// beside the others and cannot name it, so the PMD crate checks at compile time that the
/// two agree.
pub const BURST: usize = 32;

/// `RTE_MBUF_F_RX_RSS_HASH`: `hash.rss` is valid.
const RX_RSS_HASH: u64 = 1 << 1;

// --- raw per-mbuf helpers (all callers hold a valid mbuf pointer they own) ---

/// # Safety
/// `m` must point to a valid mbuf owned by the caller for the lifetime `'a`.
#[inline(always)]
unsafe fn seg_data<'a>(m: *mut sys::rte_mbuf) -> &'a [u8] {
    // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer by DPDK's
    // mbuf invariants; the caller guarantees the mbuf is valid for 'a.
    unsafe {
        let m = &*m;
        std::slice::from_raw_parts((m.buf_addr as *const u8).add(m.data_off as usize), m.data_len as usize)
    }
}

/// # Safety
/// As [`seg_data`], and the caller must have exclusive access (refcnt == 1, checked by callers).
#[inline(always)]
unsafe fn seg_data_mut<'a>(m: *mut sys::rte_mbuf) -> &'a mut [u8] {
    // SAFETY: as in seg_data; exclusivity is the caller's obligation.
    unsafe {
        let mm = &*m;
        std::slice::from_raw_parts_mut((mm.buf_addr as *mut u8).add(mm.data_off as usize), mm.data_len as usize)
    }
}

/// # Safety
/// `m` must be a valid mbuf.
#[inline(always)]
unsafe fn refcnt(m: *mut sys::rte_mbuf) -> u16 {
    // SAFETY: refcnt is a naturally aligned u16 that DPDK updates atomically; reading it
    // through an AtomicU16 view is the same access DPDK makes.
    unsafe { AtomicU16::from_ptr(&raw mut (*m).refcnt).load(Ordering::Acquire) }
}

/// # Safety
/// `m` must be a valid mbuf.
#[inline(always)]
unsafe fn rss(m: *mut sys::rte_mbuf) -> Option<u32> {
    // SAFETY: plain field reads of a valid mbuf; hash.rss is a u32 in a union of PODs.
    unsafe {
        let m = &*m;
        // Read whether it is valid or not (a plain load, no branch around it): the
        // caller's own test of the option is then the only one.
        let rss = m.__bindgen_anon_2.hash.rss;
        (m.ol_flags & RX_RSS_HASH != 0).then_some(rss)
    }
}

/// Hints the CPU to load the cache line at `p` into all cache levels.
#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and has no visible effect,
    // whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// One owned packet buffer. Freed (reference dropped) on drop.
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the unique owner of one reference to the buffer; freeing it from
// another thread is allowed by DPDK (mempool put is thread-safe). Shared buffers are only
// read through `&` and refcounts are atomic.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// # Safety
    /// `p` must be a valid mbuf whose reference the caller transfers to the new `Mbuf`.
    #[inline(always)]
    pub(crate) unsafe fn from_raw(p: *mut sys::rte_mbuf) -> Mbuf {
        // SAFETY: the caller guarantees p is a valid, non-null mbuf.
        Mbuf(unsafe { NonNull::new_unchecked(p) })
    }

    #[inline(always)]
    pub(crate) fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// Bytes of the (first segment of the) packet.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: we own a reference to a valid mbuf; the borrow is tied to &self.
        unsafe { seg_data(self.0.as_ptr()) }
    }

    /// Writable bytes, or `None` while the buffer is shared with another `Mbuf`.
    #[inline]
    pub fn data_mut(&mut self) -> Option<&mut [u8]> {
        if self.is_shared() {
            return None;
        }
        // SAFETY: refcnt is 1, so this Mbuf is the only owner; the borrow is tied to &mut self.
        Some(unsafe { seg_data_mut(self.0.as_ptr()) })
    }

    /// Length of the whole packet (all segments).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        // SAFETY: field read of a valid mbuf.
        unsafe { (*self.0.as_ptr()).pkt_len as usize }
    }

    /// Whether another `Mbuf` references the same buffer.
    #[inline]
    pub fn is_shared(&self) -> bool {
        // SAFETY: valid mbuf.
        unsafe { refcnt(self.0.as_ptr()) != 1 }
    }

    /// The RSS hash the NIC computed, if any.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        // SAFETY: valid mbuf.
        unsafe { rss(self.0.as_ptr()) }
    }

    /// Grows the packet by `n` bytes at the front (into the headroom), e.g. to push a VLAN
    /// tag, and returns the whole (first segment) data. `None` if the buffer is shared or
    /// the headroom is too small; the packet is then unchanged.
    pub fn prepend(&mut self, n: u16) -> Option<&mut [u8]> {
        if self.is_shared() {
            return None;
        }
        // SAFETY: exclusive owner of a valid mbuf; rte_pktmbuf_prepend checks the headroom
        // and returns NULL (changing nothing) if it is too small.
        let p = unsafe { sys::fvs_pktmbuf_prepend(self.0.as_ptr(), n) };
        if p.is_null() {
            return None;
        }
        self.data_mut()
    }

    /// Removes `n` bytes from the front (e.g. to pop a VLAN tag). `false` (and no change)
    /// if the buffer is shared or the first segment is shorter than `n`.
    pub fn adj(&mut self, n: u16) -> bool {
        if self.is_shared() {
            return false;
        }
        // SAFETY: exclusive owner of a valid mbuf; rte_pktmbuf_adj checks the length.
        !unsafe { sys::fvs_pktmbuf_adj(self.0.as_ptr(), n) }.is_null()
    }

    /// Appends `bytes` at the end of the packet (tailroom permitting).
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), DpdkError> {
        if self.is_shared() {
            return Err(DpdkError::InvalidArgument("append to a shared mbuf".into()));
        }
        let n = u16::try_from(bytes.len())
            .map_err(|_| DpdkError::InvalidArgument(format!("{} bytes do not fit an mbuf", bytes.len())))?;
        // SAFETY: exclusive owner of a valid mbuf; append checks the tailroom and returns
        // NULL without change if there is not enough.
        let p = unsafe { sys::fvs_pktmbuf_append(self.0.as_ptr(), n) } as *mut u8;
        if p.is_null() {
            return Err(DpdkError::InvalidArgument(format!("{} bytes do not fit the mbuf's tailroom", bytes.len())));
        }
        // SAFETY: append returned a pointer to n writable bytes inside our buffer.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
        Ok(())
    }

    /// Another reference to the same buffer (refcount + 1): for sending one unmodified
    /// packet to several ports. Inline, as DPDK's `rte_mbuf_refcnt_update` is (no call
    /// into C per extra output): a plain store while this is the only reference (nobody
    /// else can look at the count), an atomic add otherwise. A packet received as a chain
    /// of segments (longer than one buffer) gets one more reference on *every* segment,
    /// as `rte_pktmbuf_refcnt_update` does: freeing a packet drops one reference of each
    /// segment, so a count on the first alone would free the others twice.
    #[inline]
    pub fn share(&self) -> Mbuf {
        let m = self.0.as_ptr();
        // SAFETY: valid mbuf we hold a reference to, and so its chain of segments (each
        // `next` valid or null). refcnt is a naturally aligned u16 that DPDK updates
        // atomically; this is the same access rte_mbuf_refcnt_update makes (the store only
        // when we hold the sole reference, so no other thread can be updating it). The new
        // Mbuf owns the added references.
        unsafe {
            let mut seg = m;
            loop {
                let count = AtomicU16::from_ptr(&raw mut (*seg).refcnt);
                if count.load(Ordering::Relaxed) == 1 {
                    count.store(2, Ordering::Relaxed);
                } else {
                    count.fetch_add(1, Ordering::AcqRel);
                }
                if (*m).nb_segs == 1 {
                    break;
                }
                seg = (*seg).next;
                if seg.is_null() {
                    break;
                }
            }
            Mbuf::from_raw(m)
        }
    }

    /// A private deep copy allocated from `pool` (`None` if the pool is empty).
    pub fn copy(&self, pool: &Mempool) -> Option<Mbuf> {
        self.copy_prefix(pool, u32::MAX)
    }

    /// A private deep copy of the packet's first `len` bytes (all of it if it is shorter),
    /// allocated from `pool` (`None` if the pool is empty).
    pub fn copy_prefix(&self, pool: &Mempool, len: u32) -> Option<Mbuf> {
        // SAFETY: valid source mbuf and live pool; rte_pktmbuf_copy copies at most `len`
        // bytes from offset 0 (clamped to the packet's length). Returns NULL on allocation
        // failure.
        let p = unsafe { sys::rte_pktmbuf_copy(self.0.as_ptr(), pool.as_ptr(), 0, len) };
        if p.is_null() {
            None
        } else {
            // SAFETY: fresh mbuf owned by nobody else.
            Some(unsafe { Mbuf::from_raw(p) })
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own one reference to a valid mbuf; free drops that reference.
        unsafe { sys::fvs_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mbuf({} bytes)", self.pkt_len())
    }
}

/// A burst of up to [`BURST`] packets. Owns the mbufs in slots `0..len()`; frees them on
/// drop.
pub struct MbufBatch {
    pkts: [*mut sys::rte_mbuf; BURST],
    len: usize,
}

// SAFETY: the batch uniquely owns its references (as a Vec<Mbuf> would).
unsafe impl Send for MbufBatch {}

impl Default for MbufBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl MbufBatch {
    pub const fn new() -> MbufBatch {
        MbufBatch { pkts: [std::ptr::null_mut(); BURST], len: 0 }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.len == BURST
    }

    #[inline(always)]
    fn slot(&self, i: usize) -> *mut sys::rte_mbuf {
        assert!(i < self.len, "packet index {i} out of batch of {}", self.len);
        self.pkts[i]
    }

    /// Bytes of packet `i` (first segment). Panics if `i >= len()` (a caller bug).
    #[inline(always)]
    pub fn data(&self, i: usize) -> &[u8] {
        // SAFETY: slot i < len holds a valid mbuf the batch owns; borrow tied to &self.
        unsafe { seg_data(self.slot(i)) }
    }

    /// Writable bytes of packet `i`, or `None` if its buffer is shared.
    #[inline(always)]
    pub fn data_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let m = self.slot(i);
        // SAFETY: valid mbuf owned by the batch; exclusive if refcnt == 1; borrow tied to &mut self.
        unsafe { if refcnt(m) != 1 { None } else { Some(seg_data_mut(m)) } }
    }

    /// Length of packet `i` (all segments).
    #[inline(always)]
    pub fn pkt_len(&self, i: usize) -> usize {
        // SAFETY: valid mbuf owned by the batch.
        unsafe { (*self.slot(i)).pkt_len as usize }
    }

    /// RSS hash of packet `i`, if the driver set one.
    #[inline(always)]
    pub fn rss_hash(&self, i: usize) -> Option<u32> {
        // SAFETY: valid mbuf owned by the batch.
        unsafe { rss(self.slot(i)) }
    }

    /// Prefetches the first cache line of packet `i`'s data. An inline instruction, not
    /// a call into C (the fast path makes no per-packet FFI call).
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        if i < self.len {
            let m = self.pkts[i];
            // SAFETY: slot i < len holds a valid mbuf owned by the batch (field reads);
            // the address arithmetic stays inside its buffer, and a prefetch never faults.
            unsafe {
                let mm = &*m;
                prefetch_line((mm.buf_addr as *const u8).add(mm.data_off as usize));
            }
        }
    }

    /// Calls `f(i, frame, rss_hash, pkt_len)` for every packet `i` in order, prefetching
    /// the next packet's data first: the per-burst pass that builds the classifier's view
    /// of a burst, with one bounds check for the whole batch instead of one per field.
    #[inline(always)]
    pub fn for_each_packet<'a>(&'a self, mut f: impl FnMut(usize, &'a [u8], Option<u32>, u32)) {
        let pkts = &self.pkts[..self.len];
        for (i, &m) in pkts.iter().enumerate() {
            if let Some(&next) = pkts.get(i + 1) {
                // SAFETY: slots below len hold valid mbufs owned by the batch (field
                // reads); the address stays inside the buffer and a prefetch never faults.
                unsafe {
                    let nm = &*next;
                    prefetch_line((nm.buf_addr as *const u8).add(nm.data_off as usize));
                }
            }
            // SAFETY: slot i < len holds a valid mbuf owned by the batch; the frame borrow
            // is tied to &'a self.
            let (frame, hash, len) = unsafe { (seg_data(m), rss(m), (*m).pkt_len) };
            f(i, frame, hash, len);
        }
    }

    /// Adds a packet; gives it back if the batch is full.
    #[inline(always)]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST {
            return Err(m);
        }
        self.pkts[self.len] = m.into_raw();
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the last packet.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: the slot held a valid mbuf owned by the batch; ownership moves out.
        Some(unsafe { Mbuf::from_raw(self.pkts[self.len]) })
    }

    /// Moves every packet out, in order. Packets the iterator does not yield (if it is
    /// dropped early) are freed.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let len = self.len;
        // The batch forgets the packets now; the iterator owns them.
        self.len = 0;
        Drain { batch: self, next: 0, end: len }
    }

    /// Frees every packet (one `rte_pktmbuf_free_bulk` call) and empties the batch.
    pub fn free_all(&mut self) {
        if self.len > 0 {
            // SAFETY: slots 0..len are valid mbufs owned by the batch; after the call the
            // batch forgets them.
            unsafe { sys::rte_pktmbuf_free_bulk(self.pkts.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    /// Raw view for rx/tx in this crate.
    pub(crate) fn raw_parts(&mut self) -> (&mut [*mut sys::rte_mbuf; BURST], &mut usize) {
        (&mut self.pkts, &mut self.len)
    }
}

impl Drop for MbufBatch {
    fn drop(&mut self) {
        self.free_all();
    }
}

/// Iterator of [`MbufBatch::drain`].
pub struct Drain<'a> {
    batch: &'a mut MbufBatch,
    next: usize,
    end: usize,
}

impl Drain<'_> {
    /// Packets not yet moved out.
    #[inline(always)]
    pub fn remaining(&self) -> usize {
        self.end - self.next
    }

    /// Moves the next `count` packets (fewer if fewer remain or `dst` has less room) to
    /// the end of `dst`, in order, as raw slots (no `Mbuf` is built or dropped per
    /// packet). Returns how many moved.
    #[inline(always)]
    pub fn move_to(&mut self, count: usize, dst: &mut MbufBatch) -> usize {
        let k = count.min(self.end - self.next).min(BURST - dst.len);
        // Ownership of the k mbufs passes from this iterator (which skips them from now
        // on) to `dst` (which owns slots 0..len).
        dst.pkts[dst.len..dst.len + k].copy_from_slice(&self.batch.pkts[self.next..self.next + k]);
        dst.len += k;
        self.next += k;
        k
    }
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;
    #[inline(always)]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        let p = self.batch.pkts[self.next];
        self.next += 1;
        // SAFETY: slots next..end were owned by the batch when drain began and each is
        // yielded exactly once.
        Some(unsafe { Mbuf::from_raw(p) })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.end - self.next, Some(self.end - self.next))
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let rest = self.end - self.next;
        if rest > 0 {
            // SAFETY: the not-yet-yielded slots are still owned by this iterator.
            unsafe { sys::rte_pktmbuf_free_bulk(self.batch.pkts.as_mut_ptr().add(self.next), rest as u32) };
        }
    }
}
