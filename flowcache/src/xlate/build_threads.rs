//! Building a rule-table version on several threads: rules compile independently, and a
//! table's groups index independently, so both are cut into pieces that threads claim
//! from a shared queue (a large piece first where sizes differ). The result does not
//! depend on which thread built what: callers put the pieces back in their order.

use std::sync::{Mutex, PoisonError};

/// Rule sets (and parts of a table's group) of at least this many rules are built on
/// several threads: below, a thread costs more than it saves.
pub(crate) const PARALLEL_BUILD_RULES: usize = 20_000;

/// Most threads building one version (the printer of the write-back runs beside them).
const MAX_BUILD_THREADS: usize = 4;

/// The threads to build `rules` rules on: one below [`PARALLEL_BUILD_RULES`], else as
/// many as the CPUs, at most [`MAX_BUILD_THREADS`].
pub(crate) fn threads_for(rules: usize) -> usize {
    if rules < PARALLEL_BUILD_RULES {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_BUILD_THREADS)
}

/// Runs `work` on `threads` threads (this one and `threads - 1` scoped others) and
/// returns what they made, concatenated. `work` claims its pieces itself (see
/// [`Queue`]); a panic in one is passed on.
pub(crate) fn on_threads<T: Send>(threads: usize, work: impl Fn() -> Vec<T> + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(&work)).collect();
        let mut made = work();
        for h in helpers {
            made.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        made
    })
}

/// Pieces of work claimed one at a time, the last first.
pub(crate) struct Queue<P>(Mutex<Vec<P>>);

impl<P> Queue<P> {
    pub(crate) fn new(pieces: Vec<P>) -> Self {
        Queue(Mutex::new(pieces))
    }

    /// The next piece, if any is left.
    pub(crate) fn take(&self) -> Option<P> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }
}
