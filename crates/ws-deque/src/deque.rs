use core::fmt;
use core::marker::PhantomData;

use crate::Steal;
use crate::queue::{Flavor, Growable, MAX_BATCH, MIN_CAPACITY, Owner, Queue};
use crate::reclaim;
use crate::sync::Arc;

/// The owner's end of a growable work-stealing deque.
///
/// The owner pushes and pops; any number of [`Stealer`]s take items from the other end. A LIFO worker pops
/// the item it pushed last (depth-first, cache-warm: what a fork-join scheduler wants), a FIFO worker the one
/// it pushed first (fair: what a task queue wants). Thieves always take the oldest items.
///
/// The algorithm is Chase and Lev's ("Dynamic Circular Work-Stealing Deque", SPAA 2005) with the C11
/// orderings of Lê, Pop, Cohen and Zappa Nardelli ("Correct and Efficient Work-Stealing for Weak Memory
/// Models", PPoPP 2013), changed in two ways so that it is free of data races in Rust's memory model: a thief
/// claims items *before* it reads them, and the owner pops with a compare-and-swap, which lets a thief claim
/// a whole batch with one. `docs/ws-deque.md` explains every ordering.
///
/// The buffer starts with 64 slots and doubles when full. It halves after as many pops as it has slots have
/// each left it less than an eighth full (a pop that leaves it a quarter full restarts the count), so a deque
/// that drains and refills keeps its buffer. Old buffers are freed through [`crossbeam_epoch`] once no thief
/// can be reading them.
///
/// `Worker` is `Send` but not `Sync`: one thread at a time owns it.
///
/// # Examples
///
/// ```
/// use ws_deque::{Steal, Worker};
///
/// let lifo = Worker::new_lifo();
/// let stealer = lifo.stealer();
/// lifo.push(1);
/// lifo.push(2);
/// lifo.push(3);
/// assert_eq!(stealer.steal(), Steal::Success(1)); // thieves take the oldest
/// assert_eq!(lifo.pop(), Some(3)); // a LIFO owner takes the newest
/// assert_eq!(lifo.pop(), Some(2));
/// assert_eq!(lifo.pop(), None);
/// ```
pub struct Worker<T> {
    owner: Owner<T, Growable>,
    /// `Cell`s inside `Owner` already make the type `!Sync`; this documents it.
    _not_sync: PhantomData<core::cell::Cell<()>>,
}

// SAFETY: a `Worker` is the owner handle: moving it to another thread moves ownership, and its cells are only
// touched by the thread holding it. Items cross threads, hence `T: Send`.
unsafe impl<T: Send> Send for Worker<T> {}

impl<T> Worker<T> {
    /// Creates a deque whose owner pops the item it pushed last.
    ///
    /// ```
    /// let worker = ws_deque::Worker::<u32>::new_lifo();
    /// assert!(worker.is_empty());
    /// ```
    pub fn new_lifo() -> Self {
        Self::new(Flavor::Lifo)
    }

    /// Creates a deque whose owner pops the item it pushed first.
    ///
    /// ```
    /// let worker = ws_deque::Worker::new_fifo();
    /// worker.push('a');
    /// worker.push('b');
    /// assert_eq!(worker.pop(), Some('a'));
    /// ```
    pub fn new_fifo() -> Self {
        Self::new(Flavor::Fifo)
    }

    fn new(flavor: Flavor) -> Self {
        Self {
            owner: Owner::new(flavor, MIN_CAPACITY),
            _not_sync: PhantomData,
        }
    }

    /// Creates a stealer for this deque. Stealers may outlive the worker.
    ///
    /// ```
    /// use ws_deque::Worker;
    ///
    /// let worker = Worker::new_lifo();
    /// worker.push(5);
    /// let stealer = worker.stealer();
    /// drop(worker);
    /// assert_eq!(stealer.steal().success(), Some(5));
    /// ```
    pub fn stealer(&self) -> Stealer<T> {
        Stealer {
            queue: self.owner.queue.clone(),
        }
    }

    /// Pushes an item at the owner's end.
    ///
    /// Allocates only when the buffer is full (it doubles).
    ///
    /// # Panics
    ///
    /// If the deque would hold more than 2^30 items (like `Vec`'s capacity overflow).
    #[inline]
    pub fn push(&self, value: T) {
        if self.owner.push(value).is_err() {
            capacity_overflow();
        }
    }

    /// Pops an item from the owner's end: the newest for LIFO, the oldest for FIFO.
    ///
    /// ```
    /// let worker = ws_deque::Worker::new_lifo();
    /// worker.push(1);
    /// worker.push(2);
    /// assert_eq!(worker.pop(), Some(2));
    /// ```
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

    pub(crate) fn owner(&self) -> &Owner<T, Growable> {
        &self.owner
    }
}

#[cold]
#[inline(never)]
fn capacity_overflow() -> ! {
    panic!("ws_deque::Worker holds at most 2^30 items")
}

impl<T> Default for Worker<T> {
    /// A LIFO worker.
    fn default() -> Self {
        Self::new_lifo()
    }
}

impl<T> fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.owner.fmt(f)
    }
}

/// A thief's handle on a [`Worker`]'s deque: takes the oldest items.
///
/// `Clone + Send + Sync`; each steal pins the thread with [`crossbeam_epoch`] while it reads the buffer.
///
/// # Examples
///
/// ```
/// use ws_deque::{Steal, Worker};
///
/// let worker = Worker::new_lifo();
/// for i in 0..10 {
///     worker.push(i);
/// }
/// let stealer = worker.stealer();
/// let thief = Worker::new_lifo();
/// // Moves half of the items (the oldest) into `thief`, with one compare-and-swap.
/// assert_eq!(stealer.steal_batch(&thief), Steal::Success(()));
/// assert_eq!(thief.len(), 5);
/// // The batch comes out in the order the victim's owner would have popped it: newest first from a LIFO
/// // victim (as in crossbeam-deque).
/// assert_eq!(thief.pop(), Some(4));
/// ```
pub struct Stealer<T> {
    queue: Arc<Queue<T>>,
}

// SAFETY: a stealer only claims and moves out items through the queue's protocol; items cross threads, hence
// `T: Send`.
unsafe impl<T: Send> Send for Stealer<T> {}
// SAFETY: as for `Send`: every method takes `&self` and is safe to call from many threads at once.
unsafe impl<T: Send> Sync for Stealer<T> {}

impl<T> Stealer<T> {
    /// Steals the oldest item.
    ///
    /// Returns [`Steal::Retry`] when it lost a race with another thief or the owner.
    #[inline]
    pub fn steal(&self) -> Steal<T> {
        let _guard = reclaim::pin();
        // SAFETY: we are pinned, so no buffer loaded during the steal is freed before it ends.
        unsafe { self.queue.steal() }
    }

    /// Steals about half of the items (at most 32) and pushes them into `dest`.
    ///
    /// The thief takes the oldest items, and `dest` pops them in the order this deque's owner would have:
    /// oldest first from a FIFO deque, newest first from a LIFO one, whatever the flavour of `dest` (as
    /// crossbeam-deque 0.8). Stealing into the worker this stealer belongs to moves nothing and returns
    /// [`Steal::Success`] if it holds items, [`Steal::Empty`] if not (as crossbeam-deque).
    pub fn steal_batch(&self, dest: &Worker<T>) -> Steal<()> {
        self.steal_batch_with_limit(dest, MAX_BATCH as usize)
    }

    /// Steals about half of the items, at most `limit`, and pushes them into `dest`.
    ///
    /// A `limit` of 0 steals nothing and returns [`Steal::Empty`] (crossbeam-deque panics).
    ///
    /// ```
    /// use ws_deque::Worker;
    ///
    /// let victim = Worker::new_fifo();
    /// (0..100).for_each(|i| victim.push(i));
    /// let dest = Worker::new_fifo();
    /// let _ = victim.stealer().steal_batch_with_limit(&dest, 10);
    /// assert_eq!(dest.len(), 10);
    /// ```
    pub fn steal_batch_with_limit(&self, dest: &Worker<T>, limit: usize) -> Steal<()> {
        let _guard = reclaim::pin();
        // SAFETY: pinned, as in `steal`; `dest` is a `Worker`, so the calling thread owns it.
        unsafe { self.queue.steal_batch(dest.owner(), limit) }
    }

    /// Steals about half of the items (at most 32), returns one and pushes the rest into `dest`.
    ///
    /// The one returned is the first this deque's owner would have popped: the oldest of the batch from a FIFO
    /// deque, the newest from a LIFO one; `dest` pops the rest in that order (as crossbeam-deque 0.8).
    /// Stealing into the worker this stealer belongs to is a pop.
    ///
    /// ```
    /// use ws_deque::{Steal, Worker};
    ///
    /// let victim = Worker::new_fifo();
    /// (1..=6).for_each(|i| victim.push(i));
    /// let dest = Worker::new_lifo();
    /// assert_eq!(victim.stealer().steal_batch_and_pop(&dest), Steal::Success(1));
    /// assert_eq!(dest.pop(), Some(2));
    ///
    /// let victim = Worker::new_lifo();
    /// (1..=6).for_each(|i| victim.push(i));
    /// assert_eq!(victim.stealer().steal_batch_and_pop(&dest), Steal::Success(3));
    /// assert_eq!(dest.pop(), Some(2));
    /// ```
    pub fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
        self.steal_batch_with_limit_and_pop(dest, MAX_BATCH as usize)
    }

    /// Steals about half of the items, at most `limit` (the returned one included), returns one and pushes
    /// the rest into `dest`, as [`Stealer::steal_batch_and_pop`].
    pub fn steal_batch_with_limit_and_pop(&self, dest: &Worker<T>, limit: usize) -> Steal<T> {
        let _guard = reclaim::pin();
        // SAFETY: as in `steal_batch_with_limit`.
        unsafe { self.queue.steal_batch_and_pop(dest.owner(), limit) }
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
