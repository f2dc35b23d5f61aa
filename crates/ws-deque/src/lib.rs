//! A Chase-Lev work-stealing deque that is free of data races, with a global injector queue and a bounded
//! `no_std` flavour.
//!
//! The API has crossbeam-deque 0.8's names, so migrating is a rename:
//!
//! * [`Worker`]: the owner's end of a growable deque, LIFO or FIFO; `push`, `pop`.
//! * [`Stealer`]: a thief's handle (`Clone + Send + Sync`); `steal`, and batch steals that move about half of
//!   the items into the thief's own `Worker` with one compare-and-swap.
//! * [`Injector`]: a global FIFO queue any thread pushes to and steals from.
//! * [`Steal`]: `Empty`, `Success(item)` or `Retry`.
//! * [`bounded`]: a fixed-capacity deque for `no_std` + `alloc` (`default-features = false`).
//!
//! # A work-stealing loop
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::iter;
//! use ws_deque::{Injector, Stealer, Worker};
//!
//! fn find_task<T>(local: &Worker<T>, global: &Injector<T>, stealers: &[Stealer<T>]) -> Option<T> {
//!     // Own work first, then a batch from the global queue, then other workers.
//!     local.pop().or_else(|| {
//!         iter::repeat_with(|| {
//!             global
//!                 .steal_batch_and_pop(local)
//!                 .or_else(|| stealers.iter().map(|s| s.steal()).collect())
//!         })
//!         .find(|s| !s.is_retry())
//!         .and_then(|s| s.success())
//!     })
//! }
//!
//! let global = Injector::new();
//! (1..=1000u64).for_each(|n| global.push(n));
//! let workers: Vec<_> = (0..2).map(|_| Worker::new_lifo()).collect();
//! let stealers: Vec<_> = workers.iter().map(Worker::stealer).collect();
//! let sum = AtomicUsize::new(0);
//! std::thread::scope(|scope| {
//!     for local in workers {
//!         let (global, stealers, sum) = (&global, &stealers, &sum);
//!         scope.spawn(move || {
//!             while let Some(n) = find_task(&local, global, stealers) {
//!                 sum.fetch_add(n as usize, Ordering::Relaxed);
//!             }
//!         });
//!     }
//! });
//! assert_eq!(sum.into_inner(), 500_500);
//! ```
//!
//! # Soundness
//!
//! A Chase-Lev thief reads the slot *before* its compare-and-swap decides whether it may have the item, so
//! the owner may be overwriting that slot at the same moment: a data race, which crossbeam-deque papers over
//! with a volatile read. Here a thief claims items first and reads them after; the owner never writes a slot
//! a thief has claimed until that thief says it is done. Miri (default flags) and ThreadSanitizer (no
//! suppressions) run on the tests; loom explores the protocol. The design note `docs/ws-deque.md` explains
//! each ordering.
//!
//! # References
//!
//! * D. Chase and Y. Lev, "Dynamic Circular Work-Stealing Deque", SPAA 2005.
//! * N. M. Lê, A. Pop, A. Cohen and F. Zappa Nardelli, "Correct and Efficient Work-Stealing for Weak Memory
//!   Models", PPoPP 2013.

#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(target_has_atomic = "64")]
extern crate alloc;
#[cfg(any(feature = "std", loom))]
extern crate std;

/// The design notes: the algorithm, every ordering and why, what was measured, and what was left out.
///
/// The same text as the repository's `docs/ws-deque.md`, here so it ships with the crate.
pub mod guide {
    #![doc = include_str!("../GUIDE.md")]
}

// The deques pack a tag and a head into one `AtomicU64`, and use 32-bit and pointer-sized atomics beside it:
// on a target without them (such as `thumbv7em-none-eabihf`, which has no 64-bit atomics) only `Steal` is
// left. `.ci/check-32bit.sh` checks both cases.
#[cfg(all(
    target_has_atomic = "64",
    target_has_atomic = "32",
    target_has_atomic = "ptr"
))]
pub mod bounded;
#[cfg(all(
    target_has_atomic = "64",
    target_has_atomic = "32",
    target_has_atomic = "ptr"
))]
mod buffer;
#[cfg(all(feature = "std", target_has_atomic = "64"))]
mod deque;
#[cfg(all(feature = "std", target_has_atomic = "64"))]
mod injector;
#[cfg(all(
    target_has_atomic = "64",
    target_has_atomic = "32",
    target_has_atomic = "ptr"
))]
mod queue;
#[cfg(all(feature = "std", target_has_atomic = "64"))]
mod reclaim;
mod steal;
#[cfg(all(
    target_has_atomic = "64",
    target_has_atomic = "32",
    target_has_atomic = "ptr"
))]
mod sync;

#[cfg(all(feature = "std", target_has_atomic = "64"))]
pub use crate::deque::{Stealer, Worker};
#[cfg(all(feature = "std", target_has_atomic = "64"))]
pub use crate::injector::Injector;
pub use crate::steal::Steal;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
