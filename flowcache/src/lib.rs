#![forbid(unsafe_code)]
//! ferrovs's fast path, without DPDK and without I/O: flow keys, datapath actions,
//! megaflows and the caches that find them, and the translation of rules into megaflows.
//!
//! Per burst, a PMD calls [`extract::extract`] on each frame to get its [`key::FlowKey`],
//! [`flow_cache::FlowCache::lookup_batch`] to find each packet's megaflow, and
//! [`edit::execute_edit`] (plus the VLAN helpers) to apply the megaflow's actions. A
//! packet that misses waits in [`pending::PendingMisses`] while its key travels to the
//! slow path in an [`upcall::UpcallBatch`]; [`slow_path`] answers with the commands of
//! [`upcall`].

pub mod actions;
pub mod checksum;
pub mod classifier;
pub mod edit;
pub mod emc;
pub mod extract;
pub mod flow_cache;
pub mod key;
pub mod megaflow;
pub mod pending;
pub mod reference;
pub mod sigcache;
pub mod slow_path;
pub mod testpkt;
pub mod upcall;
pub mod xlate;

pub use classifier::{Classifier, InsertError};
pub use flow_cache::{BurstLookup, CacheCounters, FlowCache, FlowCacheConfig, PortWide};
pub use megaflow::{Megaflow, MegaflowId, MegaflowRef, MegaflowStats};
