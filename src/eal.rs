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
//!
//! A file-backed run (hugepages without `--in-memory`) leaves its hugepage files behind
//! after `rte_eal_cleanup`; the last handle removes the ones this process mapped (see
//! [`crate::hugefiles`]).
//!
//! # Secondary processes
//!
//! DPDK refuses secondary processes (such as the capture tools, [`crate::Pdump`]) once a
//! non-EAL thread has been registered: `rte_thread_register` switches multi-process off
//! for good, and it cannot be switched on again. A primary meant for secondaries is
//! started with [`Eal::init_multi_process`]; there, [`Eal::register_thread`] leaves the
//! thread unregistered (no lcore id, so no mempool cache: mempool operations take the
//! shared ring, which costs throughput) and says so in the guard
//! ([`ThreadRegistration::is_registered`]).

use std::ffi::{CStr, CString, c_char, c_int};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{DpdkError, rte_errno, strerror};
use crate::hugefiles;
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
    /// Started for secondary processes: threads are not registered (see the module docs).
    multi_process: bool,
    /// The `--file-prefix` in effect (DPDK's default is `rte`): the last component of the
    /// runtime directory, which DPDK names `.../dpdk/PREFIX`.
    file_prefix: String,
}

impl Eal {
    /// Initialises DPDK with `args` (EAL options, without the program name, e.g.
    /// `["--no-huge", "--no-shconf", "--no-pci", "-m", "512", "-l", "0"]`).
    /// Succeeds at most once per process.
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        Eal::start(args, false)
    }

    /// Like [`Eal::init`], for a primary that secondary processes (the capture tools)
    /// attach to: [`Eal::register_thread`] will not register threads, because that would
    /// shut secondaries out. The arguments must keep the memory shareable (hugepages, no
    /// `--in-memory`, no `--no-shconf`).
    pub fn init_multi_process(args: &[String]) -> Result<Eal, DpdkError> {
        Eal::start(args, true)
    }

    fn start(args: &[String], multi_process: bool) -> Result<Eal, DpdkError> {
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
        let file_prefix = runtime_dir()
            .and_then(|d| std::path::Path::new(&d).file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        Ok(Eal { inner: Arc::new(EalInner { tsc_hz, multi_process, file_prefix }) })
    }

    /// Time stamp counter frequency (ticks of [`rdtsc`] per second).
    pub fn tsc_hz(&self) -> u64 {
        self.inner.tsc_hz
    }

    /// DPDK's runtime directory (`/var/run/dpdk/PREFIX`, or under `$RUNTIME_DIRECTORY`),
    /// where secondary processes and the telemetry client find this process.
    pub fn runtime_dir(&self) -> Option<String> {
        runtime_dir()
    }

    /// The file prefix in effect (`--file-prefix`, default `rte`).
    pub fn file_prefix(&self) -> &str {
        &self.inner.file_prefix
    }

    /// NUMA socket of the calling thread (`rte_socket_id`); 0 when unknown.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: plain getter, valid after rte_eal_init.
        let s = unsafe { sys::rte_socket_id() } as i32;
        if s < 0 { 0 } else { s }
    }

    /// Registers the calling (non-EAL) thread with DPDK so it gets an lcore id and mempool
    /// caches. Unregistered when the guard drops (on the same thread: the guard is !Send).
    /// In a multi-process primary ([`Eal::init_multi_process`]) the thread is left
    /// unregistered, and the guard says so.
    pub fn register_thread(&self) -> Result<ThreadRegistration, DpdkError> {
        if self.inner.multi_process {
            return Ok(ThreadRegistration { _eal: self.clone(), registered: false, _not_send: PhantomData });
        }
        // SAFETY: valid after rte_eal_init; registers the calling thread only.
        let ret = unsafe { sys::rte_thread_register() };
        if ret != 0 {
            return Err(DpdkError::call("rte_thread_register", ret));
        }
        Ok(ThreadRegistration { _eal: self.clone(), registered: true, _not_send: PhantomData })
    }

    /// Started with [`Eal::init_multi_process`].
    pub fn is_multi_process(&self) -> bool {
        self.inner.multi_process
    }
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // Listed while the memory is still mapped; removed once DPDK is done with it.
        let page_files =
            if self.file_prefix.is_empty() { Vec::new() } else { hugefiles::mapped_by_us(&self.file_prefix) };
        if !EAL_MEMORY_PINNED.load(Ordering::SeqCst) {
            // SAFETY: the last handle is gone, so no mempool or port of ours is alive.
            unsafe {
                sys::rte_eal_cleanup();
            }
        }
        // Even when some mbufs were never returned (and their memory stays mapped, since
        // unmapping could turn a leak into a use-after-free), the files can go: removing a
        // hugetlbfs file does not unmap it, and the pages return to the pool at exit.
        hugefiles::remove(&page_files);
        // Files were ours, so the runtime directory is ours alone too (DPDK refuses a
        // second primary with the same prefix): remove what DPDK left there.
        if !page_files.is_empty()
            && let Some(dir) = runtime_dir()
        {
            hugefiles::remove_runtime_files(std::path::Path::new(&dir));
        }
    }
}

/// `rte_eal_get_runtime_dir`, if the EAL has one.
fn runtime_dir() -> Option<String> {
    // SAFETY: returns a pointer to a NUL-terminated string in EAL's static storage, valid
    // for the life of the process after rte_eal_init; copied out at once.
    let p = unsafe { sys::rte_eal_get_runtime_dir() };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated (see above).
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    (!s.is_empty()).then_some(s)
}

/// Guard of a thread registered with [`Eal::register_thread`].
pub struct ThreadRegistration {
    _eal: Eal,
    registered: bool,
    _not_send: PhantomData<*const ()>,
}

impl ThreadRegistration {
    /// Whether the thread really has an lcore id (false in a multi-process primary).
    pub fn is_registered(&self) -> bool {
        self.registered
    }
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        if self.registered {
            // SAFETY: this guard was created on this thread (it is !Send) by a successful
            // rte_thread_register.
            unsafe { sys::rte_thread_unregister() }
        }
    }
}

/// Reads the time stamp counter (the counter `Eal::tsc_hz` is the frequency of).
///
/// On x86_64 this is the `rdtsc` instruction inline, as DPDK's `rte_rdtsc` is (not
/// serialising); the PMD reads it several times per loop iteration, so it must not be a
/// call into C. Elsewhere it goes through DPDK's own `rte_rdtsc` for the platform.
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `rdtsc` only reads the time stamp counter into registers: no memory access,
    // and every x86_64 CPU has it.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: a C wrapper of rte_rdtsc; reads a counter, no memory access.
    unsafe {
        sys::fvs_rdtsc()
    }
}

/// The lcore id of the calling thread (`u32::MAX` for an unregistered thread).
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local variable.
    unsafe { sys::fvs_lcore_id() }
}
