//! Packet capture by DPDK's secondary-process tools (`dpdk-dumpcap`, `dpdk-pdump`).
//!
//! # Design
//!
//! The capture tools are DPDK *secondary* processes: they attach to the primary's
//! hugepage memory through the files of its runtime directory (named by
//! `--file-prefix`), create a ring and a mempool there, and ask the primary over DPDK's
//! multi-process channel to copy the packets of a port into that ring. The primary's
//! side of that request is librte_pdump's handler, which [`Pdump::init`] registers
//! (`rte_pdump_init`). Once a tool asks, the handler installs ethdev rx/tx callbacks on
//! the port's queues; the callbacks run inside `rte_eth_rx_burst`/`rte_eth_tx_burst`
//! on the polling threads, so capture costs the fast path something only while a tool is
//! capturing, and nothing in ferrovs's own code changes.
//!
//! What this needs of the EAL is not checked here (the config refuses combinations that
//! cannot work): hugepage memory backed by files (no `--no-huge`, no `--in-memory`), a
//! shared runtime directory (no `--no-shconf`), and a file prefix the tools are given.
//! The polling threads must be registered with DPDK (they are, see
//! [`crate::Eal::register_thread`]) so the copies come from mempool caches.

use crate::eal::Eal;
use crate::error::DpdkError;
use crate::sys;

/// librte_pdump's request handler, registered for as long as this value lives.
pub struct Pdump {
    _eal: Eal,
}

impl Pdump {
    /// Registers the handler that capture tools talk to. Call after [`Eal::init`], once.
    pub fn init(eal: &Eal) -> Result<Pdump, DpdkError> {
        // SAFETY: the EAL is initialised (we hold a handle); rte_pdump_init only registers
        // a multi-process action and reserves a small memzone.
        let ret = unsafe { sys::rte_pdump_init() };
        if ret != 0 {
            return Err(DpdkError::call("rte_pdump_init", ret));
        }
        Ok(Pdump { _eal: eal.clone() })
    }
}

impl Drop for Pdump {
    fn drop(&mut self) {
        // SAFETY: rte_pdump_init succeeded and the EAL is still up (we hold a handle).
        unsafe {
            sys::rte_pdump_uninit();
        }
    }
}
