#![forbid(unsafe_code)]
//! ferrovs's fast path, without DPDK and without I/O: flow keys, datapath actions,
//! megaflows and the caches that find them, and the translation of rules into megaflows.

pub mod actions;
pub mod key;
pub mod xlate;
