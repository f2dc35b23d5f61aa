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
