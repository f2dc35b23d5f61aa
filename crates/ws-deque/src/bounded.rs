//! A fixed-capacity work-stealing deque that needs no allocator beyond its one buffer and no epoch
//! reclamation, so it works with `default-features = false` (`no_std` + `alloc`).
//!
//! Same algorithm and API as the growable [`Worker`](crate::Worker), except that [`Worker::push`] returns
//! [`Full`] when the buffer is full.
//!
//! ```
//! use ws_deque::bounded::{Full, Worker};
//! use ws_deque::Steal;
//!
//! let worker = Worker::new_lifo(2);
//! worker.push(1).unwrap();
//! worker.push(2).unwrap();
//! assert_eq!(worker.push(3), Err(Full(3)));
//! let stealer = worker.stealer();
//! assert_eq!(stealer.steal(), Steal::Success(1));
//! worker.push(3).unwrap();
//! ```

use core::fmt;
use core::marker::PhantomData;

use crate::Steal;
use crate::queue::{Fixed, Flavor, MAX_BATCH, MAX_CAPACITY, Owner, Queue};
use crate::sync::Arc;

/// The item a full [`Worker::push`] gives back.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the bounded work-stealing deque is full")]
pub struct Full<T>(pub T);

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Full(..)")
    }
}

/// The owner's end of a bounded work-stealing deque.
///
/// See [the module docs](self) and the growable [`crate::Worker`] for the algorithm.
pub struct Worker<T> {
    owner: Owner<T, Fixed>,
    _not_sync: PhantomData<core::cell::Cell<()>>,
}

// SAFETY: as for the growable `Worker`: the handle moves ownership; items cross threads, hence `T: Send`.
unsafe impl<T: Send> Send for Worker<T> {}

/// Rounds a requested capacity to the buffer size used.
fn buffer_capacity(capacity: usize) -> u32 {
    assert!(
        capacity <= MAX_CAPACITY as usize,
        "bounded deque capacity {capacity} is larger than the maximum, 2^30"
    );
    (capacity as u32).max(1).next_power_of_two()
}

impl<T> Worker<T> {
    /// Creates a deque of at least `capacity` slots whose owner pops the item it pushed last.
    ///
    /// The capacity is rounded up to a power of two, and a capacity of 0 to 1 (see [`Worker::capacity`]).
    ///
    /// # Panics
    ///
    /// If `capacity` is larger than 2^30.
    ///
    /// ```
    /// let worker = ws_deque::bounded::Worker::<u8>::new_lifo(100);
    /// assert_eq!(worker.capacity(), 128);
    /// ```
    pub fn new_lifo(capacity: usize) -> Self {
        Self::new(Flavor::Lifo, capacity)
    }

    /// Creates a deque of at least `capacity` slots whose owner pops the item it pushed first.
    ///
    /// The capacity is rounded as for [`Worker::new_lifo`].
    ///
    /// # Panics
    ///
    /// If `capacity` is larger than 2^30.
    pub fn new_fifo(capacity: usize) -> Self {
        Self::new(Flavor::Fifo, capacity)
    }

    fn new(flavor: Flavor, capacity: usize) -> Self {
        Self {
            owner: Owner::new(flavor, buffer_capacity(capacity)),
            _not_sync: PhantomData,
        }
    }

    /// The number of slots (the requested capacity rounded up to a power of two).
    pub fn capacity(&self) -> usize {
        self.owner.capacity()
    }

    /// Creates a stealer for this deque. Stealers may outlive the worker.
    pub fn stealer(&self) -> Stealer<T> {
        Stealer {
            queue: self.owner.queue.clone(),
        }
    }

    /// Pushes an item at the owner's end, or returns it in [`Full`] if there is no free slot.
    ///
    /// A slot counts as taken until the thief that claimed it has moved its item out, so `push` may report
    /// `Full` for the short time a thief is copying, even though `len` is below the capacity.
    #[inline]
    pub fn push(&self, value: T) -> Result<(), Full<T>> {
        self.owner.push(value).map_err(Full)
    }

    /// Pops an item from the owner's end: the newest for LIFO, the oldest for FIFO.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        self.owner.pop()
    }

    /// The number of items in the deque (thieves may change it at any moment).
    pub fn len(&self) -> usize {
        self.owner.len()
    }

    /// Returns `true` if the deque holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.owner.fmt(f)
    }
}

/// A thief's handle on a bounded [`Worker`]'s deque.
pub struct Stealer<T> {
    queue: Arc<Queue<T>>,
}

// SAFETY: as for the growable `Stealer`.
unsafe impl<T: Send> Send for Stealer<T> {}
// SAFETY: as for the growable `Stealer`.
unsafe impl<T: Send> Sync for Stealer<T> {}

impl<T> Stealer<T> {
    /// Steals the oldest item.
    #[inline]
    pub fn steal(&self) -> Steal<T> {
        // SAFETY: a bounded queue never replaces its buffer, which lives as long as `self.queue`.
        unsafe { self.queue.steal() }
    }

    /// Steals about half of the items (at most 32, and no more than `dest` has room for) into `dest`, which
    /// pops them in the order this deque's owner would have (as the growable [`crate::Stealer::steal_batch`]).
    ///
    /// If `dest` is full, nothing is stolen and the result is [`Steal::Empty`]. Stealing into this stealer's
    /// own worker moves nothing and returns [`Steal::Success`] if it holds items, [`Steal::Empty`] if not.
    pub fn steal_batch(&self, dest: &Worker<T>) -> Steal<()> {
        self.steal_batch_with_limit(dest, MAX_BATCH as usize)
    }

    /// Steals about half of the items, at most `limit`, into `dest`.
    pub fn steal_batch_with_limit(&self, dest: &Worker<T>, limit: usize) -> Steal<()> {
        // SAFETY: as in `steal`; `dest` is a `Worker`, so the calling thread owns it.
        unsafe { self.queue.steal_batch(&dest.owner, limit) }
    }

    /// Steals about half of the items (at most 32), returns the one this deque's owner would have popped first
    /// and pushes the rest into `dest` (as the growable [`crate::Stealer::steal_batch_and_pop`]).
    pub fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
        self.steal_batch_with_limit_and_pop(dest, MAX_BATCH as usize)
    }

    /// Steals about half of the items, at most `limit` (the returned one included), returns one and pushes the
    /// rest into `dest`, as [`Stealer::steal_batch_and_pop`].
    pub fn steal_batch_with_limit_and_pop(&self, dest: &Worker<T>, limit: usize) -> Steal<T> {
        // SAFETY: as in `steal_batch_with_limit`.
        unsafe { self.queue.steal_batch_and_pop(&dest.owner, limit) }
    }

    /// The number of items in the deque, at the moment it looked.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Returns `true` if the deque looked empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Stealer<T> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<T> fmt::Debug for Stealer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stealer")
            .field("flavor", &self.queue.flavor())
            .field("len", &self.len())
            .finish()
    }
}
