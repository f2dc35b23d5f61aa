//! The one place atomics, locks and `Arc` come from, so the same code runs under loom.
//!
//! With `--cfg loom` (and the `loom` feature) every type here is loom's model of it and loom explores the
//! interleavings of the crate's own code; without it they are the `std` types. Per-thread counters keep one
//! cell per thread; loom threads all run on one OS thread, so under loom there is a single cell and every
//! count goes through the one atomic the models see.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::{
    hint::spin_loop,
    sync::Arc,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    sync::{Condvar, Mutex, MutexGuard},
};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::{
    hint::spin_loop,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
};

/// Locks `mutex`, ignoring poisoning: no critical section in this crate runs user code, and each leaves its
/// data consistent before it could unwind, so a poisoned lock still guards valid data.
#[inline]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(loom)]
    {
        mutex.lock().unwrap()
    }
    #[cfg(not(loom))]
    {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Waits on `condvar`, ignoring poisoning for the same reason as [`lock`].
#[allow(dead_code)]
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    #[cfg(loom)]
    {
        condvar.wait(guard).unwrap()
    }
    #[cfg(not(loom))]
    {
        condvar
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A monotonically increasing event counter with one cell per thread, so counting never bounces a cache line
/// between cores and never needs a locked read-modify-write: only the owning thread writes its cell (a load
/// and a store), and readers sum every cell. On this crate's hot paths a `lock xadd`, even uncontended, costs
/// as much as the rest of the path (8-10 ns on the machines we measure on).
///
/// Under loom there is one shared cell updated with `fetch_add`: loom threads run on one OS thread, so a
/// thread-local would be shared between model threads.
#[derive(Debug)]
pub(crate) struct PerThreadCounter {
    #[cfg(not(loom))]
    cells: thread_local::ThreadLocal<crossbeam_utils::CachePadded<AtomicU64>>,
    #[cfg(loom)]
    cell: AtomicU64,
}

impl PerThreadCounter {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(loom))]
            cells: thread_local::ThreadLocal::new(),
            #[cfg(loom)]
            cell: AtomicU64::new(0),
        }
    }

    /// Adds one. Relaxed: the counter orders nothing, it is only summed for metrics.
    #[inline]
    pub(crate) fn increment(&self) {
        #[cfg(not(loom))]
        {
            // Cache-padded because `ThreadLocal` keeps the cells of different threads side by side.
            let cell = self.cells.get_or_default();
            // Not a lost update: no other thread ever writes this thread's cell.
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
        }
        #[cfg(loom)]
        self.cell.fetch_add(1, Ordering::Relaxed);
    }

    /// The sum of all cells: not a snapshot taken at one instant, which is all a metrics counter needs.
    pub(crate) fn sum(&self) -> u64 {
        #[cfg(not(loom))]
        {
            self.cells
                .iter()
                .map(|cell| cell.load(Ordering::Relaxed))
                .fold(0, u64::wrapping_add)
        }
        #[cfg(loom)]
        {
            self.cell.load(Ordering::Relaxed)
        }
    }
}
