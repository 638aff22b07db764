//! The EAL (Environment Abstraction Layer): process-wide DPDK initialisation, time stamp
//! counter and thread registration.
//!
//! `rte_eal_init` may run once per process; a second call fails even after
//! `rte_eal_cleanup`. [`Eal::init`] enforces that with a global flag and returns a
//! cloneable handle. Objects that own DPDK memory hold a clone, so `rte_eal_cleanup` runs
//! only after the last of them is gone. If a mempool had to be leaked because mbufs were
//! still out, cleanup is skipped: those mbufs live in EAL memory.
//!
//! Threads not launched by the EAL have no lcore id and so get no mempool cache, which
//! halves throughput; [`Eal::register_thread`] gives the calling thread an lcore id until
//! the returned guard is dropped.

use std::ffi::{CString, c_char, c_int};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{DpdkError, rte_errno, strerror};
use crate::sys;

static EAL_STARTED: AtomicBool = AtomicBool::new(false);
/// Set when a mempool was dropped with mbufs still in use: EAL memory must then stay mapped.
pub(crate) static EAL_MEMORY_PINNED: AtomicBool = AtomicBool::new(false);

/// Handle on the initialised EAL. Clone freely; cleanup happens when the last clone drops.
#[derive(Clone)]
pub struct Eal {
    inner: Arc<EalInner>,
}

struct EalInner {
    tsc_hz: u64,
}

impl Eal {
    /// Initialises DPDK with `args` (EAL options, without the program name, e.g.
    /// `["--no-huge", "--no-shconf", "--no-pci", "-m", "512", "-l", "0"]`).
    /// Succeeds at most once per process.
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlreadyInitialized);
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("ferrovs").expect("no NUL"));
        for a in args {
            match CString::new(a.as_str()) {
                Ok(c) => owned.push(c),
                Err(_) => {
                    return Err(DpdkError::InvalidArgument(format!("EAL argument {a:?} contains NUL")));
                }
            }
        }
        // The EAL may keep pointers into argv (and getopt permutes it), so the strings and
        // the array are leaked on purpose: this happens once per process.
        let owned: &'static mut [CString] = Vec::leak(owned);
        let argv: &'static mut [*mut c_char] =
            Vec::leak(owned.iter().map(|c| c.as_ptr() as *mut c_char).collect::<Vec<_>>());
        // SAFETY: argv points to argc valid NUL-terminated strings that live forever; this is
        // the only call of rte_eal_init in the process (guarded by EAL_STARTED).
        let ret = unsafe { sys::rte_eal_init(argv.len() as c_int, argv.as_mut_ptr()) };
        if ret < 0 {
            let code = rte_errno();
            return Err(DpdkError::EalInit { args: args.to_vec(), code, message: strerror(code) });
        }
        // SAFETY: plain getter, valid after rte_eal_init.
        let tsc_hz = unsafe { sys::rte_get_tsc_hz() };
        Ok(Eal { inner: Arc::new(EalInner { tsc_hz }) })
    }

    /// Time stamp counter frequency (ticks of [`rdtsc`] per second).
    pub fn tsc_hz(&self) -> u64 {
        self.inner.tsc_hz
    }

    /// NUMA socket of the calling thread (`rte_socket_id`); 0 when unknown.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: plain getter, valid after rte_eal_init.
        let s = unsafe { sys::rte_socket_id() } as i32;
        if s < 0 { 0 } else { s }
    }

    /// Registers the calling (non-EAL) thread with DPDK so it gets an lcore id and mempool
    /// caches. Unregistered when the guard drops (on the same thread: the guard is !Send).
    pub fn register_thread(&self) -> Result<ThreadRegistration, DpdkError> {
        // SAFETY: valid after rte_eal_init; registers the calling thread only.
        let ret = unsafe { sys::rte_thread_register() };
        if ret != 0 {
            return Err(DpdkError::call("rte_thread_register", ret));
        }
        Ok(ThreadRegistration { _eal: self.clone(), _not_send: PhantomData })
    }
}

impl Drop for EalInner {
    fn drop(&mut self) {
        if EAL_MEMORY_PINNED.load(Ordering::SeqCst) {
            // Some mbufs were never returned; unmapping their memory could turn a leak into
            // a use-after-free.
            return;
        }
        // SAFETY: the last handle is gone, so no mempool or port of ours is alive.
        unsafe {
            sys::rte_eal_cleanup();
        }
    }
}

/// Guard of a thread registered with [`Eal::register_thread`].
pub struct ThreadRegistration {
    _eal: Eal,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // SAFETY: this guard was created on this thread (it is !Send) by a successful
        // rte_thread_register.
        unsafe { sys::rte_thread_unregister() }
    }
}

/// Reads the time stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: executes the rdtsc instruction; no memory access.
    unsafe { sys::fvs_rdtsc() }
}

/// The lcore id of the calling thread (`u32::MAX` for an unregistered thread).
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local variable.
    unsafe { sys::fvs_lcore_id() }
}
