//! The one place atomics, locks, cells and `Arc` come from, so the same code runs under loom.
//!
//! With `--cfg loom` (and the `loom` feature) every type here is loom's model of it and loom explores the
//! interleavings of the crate's own code; without it they are the `std` types, and the cell wrapper compiles
//! to nothing. Per-thread caches (the `thread_local` crate) have no loom model: under loom the pools run
//! with their thread caches turned off, so every operation takes the shared path that the models check.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::{
    cell::UnsafeCell,
    sync::Arc,
    sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    sync::{Mutex, MutexGuard},
};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
};

/// A cell with loom's closure-based access API, so loom can check every read and write through it.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
#[allow(dead_code)]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer for reading.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a pointer for writing.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section in this crate leaves its data consistent before
/// it runs user code that could panic, so a poisoned lock still guards valid data.
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

/// Whether per-thread caches may be used: never under loom, whose threads all run on one OS thread (so an OS
/// thread-local would be shared between model threads) and whose models must see every shared access.
pub(crate) const THREAD_CACHES: bool = !cfg!(loom);
