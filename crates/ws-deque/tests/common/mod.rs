//! Helpers shared by the integration tests (each test file includes this module with `mod common;`).
#![allow(dead_code)] // Each test file uses a different part of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An item that counts its drops in a counter shared with the test.
#[derive(Debug)]
pub(crate) struct DropCounter {
    pub(crate) id: usize,
    pub(crate) drops: Arc<AtomicUsize>,
}

impl DropCounter {
    pub(crate) fn new(id: usize, drops: &Arc<AtomicUsize>) -> Self {
        Self {
            id,
            drops: drops.clone(),
        }
    }
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// The buffer size of a growable worker, read from its `Debug` output (the only public view of it).
#[cfg(feature = "std")]
pub(crate) fn capacity<T>(worker: &ws_deque::Worker<T>) -> usize {
    let text = format!("{worker:?}");
    let start = text.find("capacity: ").expect("Debug shows the capacity") + "capacity: ".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("the capacity is a number")
}

/// A small deterministic generator, so the interleaving tests are reproducible without a dependency.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// Compiles only if `T` is `Send`.
pub(crate) fn assert_send<T: Send>() {}

/// Compiles only if `T` is `Send + Sync + Clone`.
pub(crate) fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
