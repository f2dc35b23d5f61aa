//! Loom models of the pools' shared paths. Run with `.ci/loom.sh` (`CRATES=pools`), never on the workspace.
#![cfg(loom)]

#[path = "loom/object_pool.rs"]
mod object_pool;

#[path = "loom/interner.rs"]
mod interner;

#[path = "loom/buffer_pool.rs"]
mod buffer_pool;

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
