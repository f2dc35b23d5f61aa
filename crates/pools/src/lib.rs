//! Pools for hot paths: an object pool, a concurrent string interner and a buffer pool with size classes.
//!
//! * [`ObjectPool`]: reuse objects that are expensive to build (a parser, a connection state, a large
//!   scratch struct). `get` hands out a [`Pooled`] guard that puts the object back when dropped, after a
//!   reset hook that may also discard it. Each thread keeps a small cache, so the common path takes no lock
//!   and no atomic read-modify-write; a sharded shared level balances threads that take on one thread and
//!   return on another.
//! * [`Interner`]: map strings to small [`Symbol`]s and back. `resolve` takes no lock (three loads), `get`
//!   and the hit path of `intern` take none either, and the strings live in arena chunks.
//! * [`BufferPool`]: byte buffers in size classes (1, 4, 16 and 64 KiB by default). A [`PooledBuf`]
//!   implements `io::Write` and `bytes::BufMut`, and [`PooledBuf::freeze`] turns it into `bytes::Bytes` that
//!   return the buffer to its pool when the last clone drops.
//!
//! Every pool has `trim()` and a `stats()` that reports the bytes it holds, so a program under memory
//! pressure can give memory back.
//!
//! Configuration mistakes (a capacity of 0, an unsorted class list, ...) are a [`BuildError`] from the
//! builder, naming what was wrong.
//!
//! # Verification
//!
//! Loom models cover the shared paths (get/return races, two threads interning one string, resolve racing
//! with intern, buffers released on another thread); the tests also run under Miri (default Stacked
//! Borrows) and compare each structure with a std model (proptest, and a fuzz target per structure). The
//! design note `docs/pools.md` explains each ordering.

/// The design notes: the algorithm, every ordering and why, what was measured, and what was left out.
///
/// The same text as the repository's `docs/pools.md`, here so it ships with the crate.
pub mod guide {
    #![doc = include_str!("../GUIDE.md")]
}

mod buffer_pool;
mod depot;
mod error;
mod interner;
mod object_pool;
mod sync;

pub use buffer_pool::{
    BufferPool, BufferPoolBuilder, BufferPoolStats, PooledBuf, SizeClassStats, Zeroing,
};
pub use error::{BuildError, InternError};
pub use interner::{Interner, InternerIter, InternerStats, Symbol};
pub use object_pool::{ObjectPool, ObjectPoolBuilder, ObjectPoolStats, Pooled};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
