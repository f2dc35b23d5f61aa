//! The crate's errors: one enum per boundary, each variant naming what was wrong.

use thiserror::Error;

/// Why a pool builder refused its configuration.
///
/// Returned by [`ObjectPoolBuilder::build`](crate::ObjectPoolBuilder::build) and
/// [`BufferPoolBuilder::build`](crate::BufferPoolBuilder::build); nothing is allocated when a build fails.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `capacity(0)`: a pool that may keep no object is a plain allocator; use `Box::new` instead.
    #[error("capacity must be at least 1 (got 0)")]
    ZeroCapacity,
    /// More objects to create up front than the pool may keep.
    #[error("prewarm ({prewarm}) exceeds capacity ({capacity})")]
    PrewarmExceedsCapacity {
        /// The requested number of objects to create up front.
        prewarm: usize,
        /// The pool's capacity.
        capacity: usize,
    },
    /// A buffer pool needs at least one size class.
    #[error("the list of size classes is empty")]
    NoSizeClasses,
    /// A size class of 0 bytes.
    #[error("size class {index} is 0 bytes; every class must hold at least one byte")]
    ZeroSizeClass {
        /// Position of the class in the list.
        index: usize,
    },
    /// Size classes must be listed smallest first.
    #[error(
        "size classes must be ascending: class {index} ({size} bytes) is smaller than the one before it ({previous} bytes)"
    )]
    UnsortedSizeClasses {
        /// Position of the out-of-order class.
        index: usize,
        /// Its size in bytes.
        size: usize,
        /// The size of the class before it.
        previous: usize,
    },
    /// The same size listed twice.
    #[error("size class {size} bytes is listed twice (positions {first} and {second})")]
    DuplicateSizeClass {
        /// The repeated size in bytes.
        size: usize,
        /// Position of its first occurrence.
        first: usize,
        /// Position of its second occurrence.
        second: usize,
    },
}

/// Why an [`Interner`](crate::Interner) refused a string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InternError {
    /// Every `Symbol` value is taken: an interner holds at most `u32::MAX` distinct strings.
    #[error(
        "the interner is full: it already holds {len} strings, the most a 32-bit symbol can name"
    )]
    SymbolsExhausted {
        /// The number of strings already interned.
        len: usize,
    },
}
