//! Loom models of the store's lock-free paths, run by `.ci/loom.sh` (`CRATES=mvcc-store`) with `--cfg loom`.
//!
//! Under loom the B+tree index holds at most 2 entries per leaf and 3 children per inner node, and a pin block
//! 2 slots, so a handful of keys and three snapshots reach leaf splits, a root that grows a level, and the
//! growth of the pin list. Readers assert that they never reach a version or an index node the writer has
//! reclaimed (reclaimed nodes are marked, not freed, under loom).
#![cfg(loom)]

#[path = "loom/snapshot.rs"]
mod snapshot;

#[path = "loom/gc.rs"]
mod gc;

#[path = "loom/subscription.rs"]
mod subscription;

/// The models run optimised with debug assertions on (`.ci/loom.sh` sets
/// `CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true`), so the `debug_assert!`s that state the invariants are checked
/// in every execution loom explores; `--release` alone compiles them out, which this catches.
#[test]
#[allow(
    clippy::assertions_on_constants,
    reason = "the constant is what the test checks"
)]
fn models_run_with_debug_assertions() {
    assert!(
        cfg!(debug_assertions),
        "run the loom models through .ci/loom.sh: `--release` alone turns the invariants' debug_assert!s off"
    );
}
