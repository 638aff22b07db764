//! The switch's counters as last published by the main thread, for readers on other
//! threads (DPDK's telemetry thread, the metrics endpoint).
//!
//! # Why a published snapshot
//!
//! The main thread owns the switch; a reader on another thread must not call into it.
//! Once a second (and after `pmd-stats-clear`) the main thread builds the same typed
//! replies that `ferrovs-ctl show` and `pmd-stats-show` print and swaps them in here
//! behind an `Arc`. A reader clones the `Arc` under a short lock and reads at leisure:
//! a scrape never touches a PMD or the slow path, so scraping cannot disturb
//! forwarding, and every consumer reads the same numbers as `ferrovs-ctl`.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::protocol::{PmdStatsReply, ShowReply};

/// One publication.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub show: ShowReply,
    pub pmd: PmdStatsReply,
    /// When the replies were built (the metrics export the snapshot's age).
    pub taken: Instant,
}

/// Where the main thread publishes and others read.
#[derive(Debug, Default)]
pub struct Published {
    current: RwLock<Option<Arc<Snapshot>>>,
}

/// How often the main thread publishes.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

impl Published {
    pub fn publish(&self, s: Snapshot) {
        if let Ok(mut c) = self.current.write() {
            *c = Some(Arc::new(s));
        }
    }

    /// The latest snapshot, if one was published.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.current.read().ok().and_then(|c| c.clone())
    }
}
