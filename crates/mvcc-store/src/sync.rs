//! The one place atomics, locks and condition variables come from, so the same code runs under loom.
//!
//! With `--cfg loom` (and the `loom` feature) every type here is loom's model of it and loom explores the
//! interleavings of the crate's own code; without it they are the `std` types. Values are always held in
//! `std::sync::Arc` (it is part of the public API), and so are the parts a `Subscription` shares with the
//! store: loom's `Arc` cannot be a method receiver, and its reference counts are not what the models check.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::{
    Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence},
};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::{
    Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence},
};

/// Locks `mutex`, ignoring poisoning: no critical section of this crate runs user code (no `Ord`, `Clone`
/// or `Drop` of a key or value can unwind out of a locked section and leave it half done) except where the
/// section's comments say how the state stays consistent, so a poisoned lock still guards valid data.
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

/// Waits on `condvar`, ignoring poisoning as [`lock`] does.
#[inline]
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

/// Waits on `condvar` for at most `timeout`, ignoring poisoning as [`lock`] does. Loom has no time: there it
/// is a plain wait.
#[inline]
pub(crate) fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: std::time::Duration,
) -> MutexGuard<'a, T> {
    #[cfg(loom)]
    {
        let _ = timeout;
        condvar.wait(guard).unwrap()
    }
    #[cfg(not(loom))]
    {
        condvar
            .wait_timeout(guard, timeout)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    }
}

/// A small number that differs between threads, so that threads taking snapshots at once start their search
/// for a free pin slot in different places. Under loom every model thread runs on one OS thread, so it is 0.
#[inline]
pub(crate) fn thread_hint() -> usize {
    #[cfg(loom)]
    {
        0
    }
    #[cfg(not(loom))]
    {
        use std::cell::Cell;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            // A const initializer: reading it is one thread-relative load, with no lazy-initialisation path
            // (which cost about 170 instructions per snapshot, measured with callgrind).
            static HINT: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        HINT.with(|hint| {
            let mut value = hint.get();
            if value == usize::MAX {
                // Relaxed: the counter only hands out distinct-ish numbers; nothing is published through it.
                value = NEXT.fetch_add(1, Ordering::Relaxed) % (usize::MAX - 1);
                hint.set(value);
            }
            value
        })
    }
}
