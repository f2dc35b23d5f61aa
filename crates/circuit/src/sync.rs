//! The one place atomics, locks and `Arc` come from, so the same code runs under loom.
//!
//! With `--cfg loom` (and the `loom` feature) every type here is loom's model of it and loom explores the
//! interleavings of the crate's own code; without it they are the `std` types. Striped counters pick their
//! stripe from a thread-local index; loom threads all run on one OS thread, so under loom there is a single
//! stripe and every count goes through the one atomic the models see.

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

/// Number of stripes in a [`StripedCounter`]: one under loom (see the module docs), else enough that two
/// threads rarely share one on the machines this runs on.
pub(crate) const STRIPES: usize = if cfg!(loom) { 1 } else { 16 };

/// A monotonically increasing event counter spread over cache-padded stripes, so that threads counting at
/// the same time do not bounce one cache line between cores. Reads sum the stripes and are not a snapshot
/// taken at one instant, which is all a metrics counter needs.
#[derive(Debug)]
pub(crate) struct StripedCounter {
    stripes: [crossbeam_utils::CachePadded<AtomicU64>; STRIPES],
}

impl StripedCounter {
    pub(crate) fn new() -> Self {
        Self {
            stripes: std::array::from_fn(|_| crossbeam_utils::CachePadded::new(AtomicU64::new(0))),
        }
    }

    /// Adds one. Relaxed: the counter orders nothing, it is only summed for metrics.
    #[inline]
    pub(crate) fn increment(&self) {
        self.stripes[stripe_index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The sum of all stripes.
    pub(crate) fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .map(|stripe| stripe.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// This thread's stripe: threads are numbered in the order they first count, round robin over the stripes.
#[inline]
fn stripe_index() -> usize {
    #[cfg(loom)]
    {
        0
    }
    #[cfg(not(loom))]
    {
        use std::cell::Cell;
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        thread_local! {
            static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        STRIPE.with(|stripe| {
            let mut index = stripe.get();
            if index == usize::MAX {
                index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % STRIPES;
                stripe.set(index);
            }
            index
        })
    }
}
