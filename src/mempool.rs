//! Packet-buffer pools (`rte_pktmbuf_pool_create`).
//!
//! A pool is shared by every port and thread (DPDK's mempool is multi-producer /
//! multi-consumer, with a per-lcore cache for registered threads). The handle is
//! reference counted; the pool is freed when the last handle drops, unless mbufs are still
//! out, in which case it is leaked deliberately (freeing it would leave those mbufs
//! dangling) and EAL cleanup is skipped.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::eal::{EAL_MEMORY_PINNED, Eal};
use crate::error::{DpdkError, rte_errno, strerror};
use crate::mbuf::Mbuf;
use crate::sys;

/// Bytes in front of a received frame in every mbuf (`RTE_PKTMBUF_HEADROOM`, a constant
/// of the DPDK build): an mbuf's data room must exceed it.
pub const PKTMBUF_HEADROOM: u16 = {
    assert!(sys::RTE_PKTMBUF_HEADROOM <= u16::MAX as u32);
    sys::RTE_PKTMBUF_HEADROOM as u16
};

/// A pool of packet buffers.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<MempoolInner>,
}

struct MempoolInner {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    size: u32,
    _eal: Eal,
}

// SAFETY: rte_mempool operations are thread-safe (MPMC ring plus per-lcore caches); the
// pointer itself is never written by us.
unsafe impl Send for MempoolInner {}
// SAFETY: as above, every operation we expose through &self is thread-safe in DPDK.
unsafe impl Sync for MempoolInner {}

impl Mempool {
    /// Creates a pool of `n_mbufs` buffers with `data_room` bytes each (including the
    /// headroom; `2176` is DPDK's default), a per-lcore cache of `cache_size`, on `socket`
    /// (-1 for any).
    pub fn new(
        eal: &Eal,
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::InvalidArgument(format!("mempool name {name:?} contains NUL")))?;
        if n_mbufs == 0 {
            return Err(DpdkError::InvalidArgument("mempool of 0 mbufs".into()));
        }
        if (data_room as u32) < sys::RTE_PKTMBUF_HEADROOM {
            return Err(DpdkError::InvalidArgument(format!(
                "mbuf data room {data_room} is smaller than the headroom {}",
                sys::RTE_PKTMBUF_HEADROOM
            )));
        }
        // SAFETY: cname is a valid C string; the other arguments are plain integers that
        // DPDK validates itself.
        let p = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n_mbufs, cache_size, 0, data_room, socket) };
        let ptr = NonNull::new(p).ok_or_else(|| {
            let code = rte_errno();
            DpdkError::Call {
                what: format!("rte_pktmbuf_pool_create({name:?}, {n_mbufs} mbufs)"),
                code,
                message: strerror(code),
            }
        })?;
        Ok(Mempool { inner: Arc::new(MempoolInner { ptr, name: name.to_string(), size: n_mbufs, _eal: eal.clone() }) })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Total number of mbufs in the pool.
    pub fn size(&self) -> u32 {
        self.inner.size
    }

    /// Mbufs free in the pool (including those sitting in per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive (we hold it); the count is a racy but safe read.
        unsafe { sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// Mbufs currently allocated (in rings, batches, or owned `Mbuf`s).
    pub fn in_use(&self) -> u32 {
        // SAFETY: as in `available`.
        unsafe { sys::rte_mempool_in_use_count(self.inner.ptr.as_ptr()) }
    }

    /// Allocates one empty packet (data length 0, default headroom).
    pub fn alloc(&self) -> Result<Mbuf, DpdkError> {
        let mut p: *mut sys::rte_mbuf = std::ptr::null_mut();
        // SAFETY: the pool is alive; `p` has room for one pointer.
        let ret = unsafe { sys::fvs_pktmbuf_alloc_bulk(self.inner.ptr.as_ptr(), &mut p, 1) };
        if ret != 0 || p.is_null() {
            return Err(DpdkError::OutOfMbufs);
        }
        // SAFETY: freshly allocated, owned by nobody else.
        Ok(unsafe { Mbuf::from_raw(p) })
    }

    /// Allocates a packet holding a copy of `frame` (single segment).
    pub fn alloc_frame(&self, frame: &[u8]) -> Result<Mbuf, DpdkError> {
        let mut m = self.alloc()?;
        m.append(frame)?;
        Ok(m)
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}

impl Drop for MempoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool is alive until rte_mempool_free below.
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use != 0 {
            EAL_MEMORY_PINNED.store(true, Ordering::SeqCst);
            return;
        }
        // SAFETY: no handle and no mbuf of this pool remains.
        unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) }
    }
}
