//! An ordered, in-memory multi-version key-value store: snapshot reads that take no lock, atomic
//! multi-key transactions at snapshot isolation or serializable, ordered change subscriptions, incremental
//! garbage collection, and (feature `durable`) a checksummed commit log.
//!
//! * [`Store::snapshot`] gives a [`Snapshot`]: a consistent view at one [`Version`]. It takes no lock and
//!   is never blocked by writers; values come back by reference, with no reference count touched.
//! * [`Store::begin`] and [`Store::begin_serializable`] give a [`Txn`] that reads a snapshot, buffers its
//!   writes and commits them all at one new version. A commit fails with a [`Conflict`] naming the key
//!   when another transaction won a race: first committer wins on writes; a serializable transaction also
//!   fails if what it read (keys and ranges) changed. [`Store::compare_and_swap`] and
//!   [`Txn::expect_version`] give optimistic locking on single keys.
//! * [`Store::subscribe`] gives a [`Subscription`] to every committed change in a key range, in commit
//!   order, each once, resumable from a version; a slow subscriber never holds writers back and is told
//!   when it lagged ([`Lagged`]).
//! * Old versions are collected as commits go (a key's chain is cut when it is written; a sweep visits a
//!   few other keys per commit) and by [`Store::gc`]. Nothing a live snapshot can read is freed;
//!   [`Store::stats`] shows what is retained and which snapshot holds it.
//!
//! # Isolation, as the Hermitage suite tests it
//!
//! | anomaly | [`Isolation::Snapshot`] | [`Isolation::Serializable`] |
//! |---|---|---|
//! | G0 write cycles | prevented | prevented |
//! | G1a aborted reads | prevented | prevented |
//! | G1b intermediate reads | prevented | prevented |
//! | G1c circular information flow | prevented | prevented |
//! | OTV observed transaction vanishes | prevented | prevented |
//! | PMP predicate-many-preceders | prevented | prevented |
//! | P4 lost update | prevented | prevented |
//! | G-single read skew | prevented | prevented |
//! | G2-item write skew | **possible** | prevented |
//! | G2 anti-dependency cycles | **possible** | prevented |
//!
//! Each row is a test in `tests/hermitage.rs`. Serializable here is optimistic validation at commit (every
//! key and range the transaction read must be unchanged since its snapshot), so committed transactions are
//! equivalent to running one at a time in version order, and read-only transactions never fail.
//!
//! # How it works
//!
//! Keys live in a copy-on-write B+tree with one writer at a time and readers that take no lock; each key's
//! entry holds the head of a chain of versions, newest first, so a commit to an existing key copies no node. A commit takes a short lock to validate, gives the commit the next version,
//! pushes a version on each written key's chain and then publishes the version number: a snapshot is just
//! "every version up to the published one". Snapshots pin their version in a slot of their own, and a
//! collector never frees what the smallest pinned version (the watermark) might read, so reads need no
//! epoch and no reference counts. The design note `docs/mvcc-store.md` explains each ordering.
//!
//! # Features
//!
//! * `stream` (or `tokio`): [`Subscription::into_stream`] turns a subscription into a `futures_core::Stream`,
//!   usable from any executor.
//! * `durable`: `Store::open(path, Durability)` with a checksummed append-only log, compacted snapshots
//!   written by temp file + fsync + rename, and recovery that truncates a torn tail. With
//!   `Durability::Fsync` an acknowledged commit survives `kill -9` and power loss.

/// The design notes: the algorithm, every ordering and why, what was measured, and what was left out.
///
/// The same text as the repository's `docs/mvcc-store.md`, here so it ships with the crate.
pub mod guide {
    #![doc = include_str!("../GUIDE.md")]
}

mod chain;
#[cfg(feature = "durable")]
mod durable;
mod error;
mod feed;
mod index;
mod pin;
mod snapshot;
mod stats;
mod store;
mod subscription;
mod sync;
mod txn;
mod version;

#[cfg(feature = "durable")]
pub use durable::{Durability, OpenError, Recovery};
#[cfg(all(feature = "durable", fuzzing))]
#[doc(hidden)]
pub use durable::{fuzz_decode_file, fuzz_encode_record, fuzz_log_header};
pub use error::{BuildError, CommitError, Conflict, ConflictKind, SubscribeError};
pub use snapshot::{Range, Snapshot};
pub use stats::{GcReport, Stats};
pub use store::{Store, StoreBuilder};
#[cfg(feature = "stream")]
pub use subscription::ChangeStream;
pub use subscription::{Change, Lagged, Subscription};
pub use txn::{Isolation, Txn, TxnRange};
pub use version::Version;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
