//! Loom models of the pools' shared paths. Run with `.ci/loom.sh` (`CRATES=pools`), never on the workspace.
#![cfg(loom)]

#[path = "loom/object_pool.rs"]
mod object_pool;

#[path = "loom/interner.rs"]
mod interner;

#[path = "loom/buffer_pool.rs"]
mod buffer_pool;
