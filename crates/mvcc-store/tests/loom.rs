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
