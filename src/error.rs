//! Errors of the DPDK binding. DPDK reports failures as negative return codes or through
//! `rte_errno`; each variant keeps the code and DPDK's own text for it, plus what we were
//! doing, so the message tells an operator which argument DPDK rejected.

use std::ffi::CStr;
use std::fmt;

use crate::sys;

/// A failure reported by DPDK (or a misuse caught before calling it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpdkError {
    /// `rte_eal_init` was already called in this process (it can run only once).
    EalAlreadyInitialized,
    /// `rte_eal_init` failed.
    EalInit { args: Vec<String>, code: i32, message: String },
    /// A device string that DPDK refused to probe.
    DeviceRejected { devargs: String, code: i32, message: String },
    /// No ethdev port with this name exists.
    PortNotFound(String),
    /// A DPDK call failed.
    Call { what: String, code: i32, message: String },
    /// A queue handle was requested twice, or does not exist on the port.
    Queue { port: u16, queue: u16, reason: &'static str },
    /// An argument was invalid before reaching DPDK.
    InvalidArgument(String),
    /// The mempool had no free mbufs.
    OutOfMbufs,
}

/// DPDK's description of an error code (positive errno or rte_errno value).
pub(crate) fn strerror(code: i32) -> String {
    let code = code.abs();
    // SAFETY: rte_strerror accepts any integer and returns a pointer to a static or
    // per-thread NUL-terminated string, valid at least until the next call on this thread;
    // we copy it out immediately.
    unsafe {
        let p = sys::rte_strerror(code);
        if p.is_null() {
            return format!("error {code}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The current value of `rte_errno` for this thread.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local integer; no preconditions.
    unsafe { sys::fvs_errno() }
}

impl DpdkError {
    /// An error for a failed call returning a negative code (or -1 with rte_errno set).
    pub(crate) fn call(what: impl Into<String>, ret: i32) -> DpdkError {
        let code = if ret == -1 { rte_errno() } else { -ret };
        DpdkError::Call { what: what.into(), code, message: strerror(code) }
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpdkError::EalAlreadyInitialized => {
                write!(f, "the DPDK EAL is already initialised in this process (it can be only once)")
            }
            DpdkError::EalInit { args, code, message } => {
                write!(f, "rte_eal_init failed with args {args:?}: {message} (code {code})")
            }
            DpdkError::DeviceRejected { devargs, code, message } => {
                write!(f, "DPDK rejected device {devargs:?}: {message} (code {code})")
            }
            DpdkError::PortNotFound(name) => write!(f, "no DPDK port named {name:?}"),
            DpdkError::Call { what, code, message } => {
                write!(f, "{what} failed: {message} (code {code})")
            }
            DpdkError::Queue { port, queue, reason } => {
                write!(f, "queue {queue} of port {port}: {reason}")
            }
            DpdkError::InvalidArgument(s) => write!(f, "invalid argument: {s}"),
            DpdkError::OutOfMbufs => write!(f, "mempool exhausted: no free mbufs"),
        }
    }
}

impl std::error::Error for DpdkError {}
