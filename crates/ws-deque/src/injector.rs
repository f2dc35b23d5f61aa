use alloc::boxed::Box;
use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr;

use crossbeam_utils::CachePadded;

use crate::Steal;
use crate::deque::Worker;
use crate::queue::MAX_BATCH;
use crate::reclaim;
use crate::sync::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, UnsafeCell, spin_wait};

/// Slots per block: 63 makes a block of `u64`s fit in about 1 KiB with its flags; 2 under loom so models
/// cross block boundaries in a few steps.
#[cfg(not(loom))]
const BLOCK_CAP: usize = 63;
#[cfg(loom)]
const BLOCK_CAP: usize = 2;

/// Index values per block: one per slot plus one that marks "the next block is being installed".
const LAP: usize = BLOCK_CAP + 1;

struct Slot<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    /// Set once the producer that claimed the slot has written it.
    written: AtomicBool,
}

struct Block<T> {
    next: AtomicPtr<Block<T>>,
    slots: [Slot<T>; BLOCK_CAP],
}

impl<T> Block<T> {
    fn new() -> Box<Self> {
        Box::new(Self {
            next: AtomicPtr::new(ptr::null_mut()),
            slots: core::array::from_fn(|_| Slot {
                value: UnsafeCell::new(MaybeUninit::uninit()),
                written: AtomicBool::new(false),
            }),
        })
    }

    /// Waits until the producer that took the block's last slot has linked the next block.
    fn wait_next(&self) -> *mut Block<T> {
        let mut step = 0;
        loop {
            // Acquire: pairs with the Release store in `push`, so the new block's initialization is visible.
            let next = self.next.load(Ordering::Acquire);
            if !next.is_null() {
                return next;
            }
            spin_wait(step);
            step += 1;
        }
    }
}

impl<T> Slot<T> {
    /// Waits until the slot's producer has written it, then moves the value out.
    ///
    /// # Safety
    ///
    /// The caller claimed this slot (advanced the head past it), so it alone reads it.
    unsafe fn take(&self) -> T {
        let mut step = 0;
        // Acquire: pairs with the Release store in `push`, so the value written is visible.
        while !self.written.load(Ordering::Acquire) {
            spin_wait(step);
            step += 1;
        }
        // SAFETY: the producer has written the slot and will not touch it again; the caller is its only reader.
        self.value
            .with(|value| unsafe { value.read().assume_init() })
    }
}

/// One end of the queue: an index (slots and block markers counted together) and the block it is in.
struct Position<T> {
    index: AtomicUsize,
    block: AtomicPtr<Block<T>>,
}

/// A global FIFO queue that any thread pushes to and steals from, to feed work to a pool of [`Worker`]s.
///
/// A linked list of blocks of 63 slots. A producer claims a slot by moving the tail index with a CAS, writes
/// it and sets the slot's `written` flag; a consumer claims by moving the head index, waits for the flag and
/// reads: no slot is read before its write is complete, so there is no data race. Batch steals claim up to
/// the end of the head block with one CAS. Blocks are freed through [`crossbeam_epoch`]; consumers pin it,
/// producers need not (see `push`).
///
/// # Examples
///
/// ```
/// use ws_deque::{Injector, Steal, Worker};
///
/// let injector = Injector::new();
/// for job in 0..10 {
///     injector.push(job);
/// }
/// let local = Worker::new_fifo();
/// assert_eq!(injector.steal_batch_and_pop(&local), Steal::Success(0));
/// assert_eq!(local.pop(), Some(1));
/// ```
pub struct Injector<T> {
    head: CachePadded<Position<T>>,
    tail: CachePadded<Position<T>>,
    #[cfg(loom)]
    retired: std::sync::Mutex<alloc::vec::Vec<usize>>,
    _marker: PhantomData<T>,
}

// SAFETY: items pushed on one thread are taken on another, hence `T: Send`; all shared state is atomics, and
// each slot is written once by the producer that claimed it and read once by the consumer that claimed it.
unsafe impl<T: Send> Send for Injector<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send> Sync for Injector<T> {}

/// How many items precede `index` (block markers do not count).
fn items_before(index: usize) -> usize {
    index - index / LAP
}

impl<T> Injector<T> {
    /// Creates an empty injector.
    pub fn new() -> Self {
        let block = Box::into_raw(Block::new());
        Self {
            head: CachePadded::new(Position {
                index: AtomicUsize::new(0),
                block: AtomicPtr::new(block),
            }),
            tail: CachePadded::new(Position {
                index: AtomicUsize::new(0),
                block: AtomicPtr::new(block),
            }),
            #[cfg(loom)]
            retired: std::sync::Mutex::new(alloc::vec::Vec::new()),
            _marker: PhantomData,
        }
    }

    /// Pushes an item at the back.
    pub fn push(&self, value: T) {
        // No epoch pin: a producer touches a block only after its CAS has given it a slot there, and the
        // block is not retired before that slot has been consumed, which waits for the producer's last
        // access to the block (the Release store of `written`). Before the CAS it only holds the pointer.
        let mut next_block: Option<Box<Block<T>>> = None;
        let mut step = 0;
        // Acquire: pairs with the Release store of the index in `push` that installed the block, so the
        // block pointer read next is that block or a later one.
        let mut tail = self.tail.index.load(Ordering::Acquire);
        loop {
            let offset = tail % LAP;
            if offset == BLOCK_CAP {
                // Another producer is installing the next block.
                spin_wait(step);
                step += 1;
                tail = self.tail.index.load(Ordering::Acquire);
                continue;
            }
            // Allocate outside the critical window: the producer of the last slot installs the next block.
            if offset + 1 == BLOCK_CAP && next_block.is_none() {
                next_block = Some(Block::new());
            }
            // Acquire: pairs with the Release store of the block pointer when a block is installed.
            let block = self.tail.block.load(Ordering::Acquire);
            // Relaxed: the CAS only has to be atomic; a failure rereads the index with Acquire above.
            match self.tail.index.compare_exchange_weak(
                tail,
                tail + 1,
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if offset + 1 == BLOCK_CAP {
                        let next = Box::into_raw(next_block.take().expect("allocated above"));
                        // Release (both): pairs with the Acquire loads of producers and consumers, so they
                        // see the block initialized; the block pointer is stored before the index leaves
                        // the marker, so a producer never pairs a new index with the old block.
                        self.tail.block.store(next, Ordering::Release);
                        self.tail.index.store(tail + 2, Ordering::Release);
                        // SAFETY: `block` is alive: the CAS gave us its last slot, and it is retired only
                        // after a consumer has taken that slot, which waits for our `written` store below.
                        // Release: pairs with the Acquire load in `wait_next`.
                        unsafe { (*block).next.store(next, Ordering::Release) };
                    }
                    // SAFETY: the CAS gave us slot `offset` of `block` (the index we moved was in its
                    // lap, and the block pointer is stored before an index enters a new lap), which no
                    // consumer reads before `written` is set; the block is not retired before that slot's
                    // consumer has seen `written`, our last access.
                    unsafe {
                        let slot = &(*block).slots[offset];
                        slot.value
                            .with_mut(|cell| cell.write(MaybeUninit::new(value)));
                        // Release: pairs with the Acquire load in `Slot::take`.
                        slot.written.store(true, Ordering::Release);
                    }
                    return;
                }
                Err(current) => {
                    tail = current;
                    spin_wait(step.min(3));
                    step += 1;
                }
            }
        }
    }

    /// Claims up to `limit` slots at the head (never past the end of the head block), then runs `consume`
    /// on each claimed slot in order.
    fn claim(&self, limit: usize, mut consume: impl FnMut(usize, &Slot<T>)) -> Steal<()> {
        let guard = reclaim::pin();
        let mut step = 0;
        // Acquire: as in `push`, for the head.
        let mut head = self.head.index.load(Ordering::Acquire);
        loop {
            let offset = head % LAP;
            if offset == BLOCK_CAP {
                // The consumer of the block's last slot is moving the head to the next block.
                spin_wait(step);
                step += 1;
                head = self.head.index.load(Ordering::Acquire);
                continue;
            }
            // Acquire: pairs with the Release CAS/stores that moved the tail, for the empty check to see
            // everything pushed before this steal began.
            let tail = self.tail.index.load(Ordering::Acquire);
            let available = items_before(tail).saturating_sub(items_before(head));
            if available == 0 {
                return Steal::Empty;
            }
            // crossbeam-deque's batch: when the tail is in a later block, everything up to the end of the head
            // block; otherwise half of what is there, rounded up; never more than the limit.
            let count = if head / LAP == tail / LAP {
                available.div_ceil(2)
            } else {
                BLOCK_CAP - offset
            }
            .min(limit);
            // Acquire: pairs with the Release store of the head block pointer.
            let block = self.head.block.load(Ordering::Acquire);
            let end = head + count;
            // Release: pairs with the Acquire loads of the head index, so a consumer that sees this head also
            // sees a tail at least as far as the one that let us claim (the slots themselves are published
            // by their `written` flags).
            match self.head.index.compare_exchange_weak(
                head,
                end,
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if offset + count == BLOCK_CAP {
                        // SAFETY: pinned, and `block` is the head block, which is not retired before the
                        // head moves past it, below.
                        let next = unsafe { (*block).wait_next() };
                        // Release: pairs with the Acquire loads of consumers (block before index, as in push).
                        self.head.block.store(next, Ordering::Release);
                        self.head.index.store(end + 1, Ordering::Release);
                    }
                    for slot in offset..offset + count {
                        // SAFETY: pinned, so the block is alive; the CAS gave us these slots.
                        consume(count, unsafe { &(*block).slots[slot] });
                    }
                    if offset + count == BLOCK_CAP {
                        // SAFETY: the head has moved past the block and every slot of it is claimed, so no new
                        // thread can reach it; those that did are pinned, and the collector frees it only after
                        // they unpin. The closure frees memory only: every item was moved out by its consumer.
                        #[cfg(not(loom))]
                        unsafe {
                            let block = block as usize;
                            guard.defer_unchecked(move || {
                                drop(Box::from_raw(block as *mut Block<T>))
                            });
                        }
                        // Under loom blocks are freed with the injector: loom checks the claim protocol, not
                        // crossbeam-epoch.
                        #[cfg(loom)]
                        self.retired.lock().unwrap().push(block as usize);
                    }
                    let _ = &guard;
                    return Steal::Success(());
                }
                Err(current) => {
                    head = current;
                    spin_wait(step.min(3));
                    step += 1;
                }
            }
        }
    }

    /// Steals the oldest item.
    pub fn steal(&self) -> Steal<T> {
        let mut value = None;
        // SAFETY: `claim` hands us each claimed slot once.
        let outcome = self.claim(1, |_, slot| value = Some(unsafe { slot.take() }));
        outcome.map(|()| value.expect("a successful claim takes one item"))
    }

    /// Steals a batch (at most 32) and pushes it into `dest`, which pops the oldest of them first.
    ///
    /// The batch is crossbeam-deque's: when items have spilled into a later block, everything left in the
    /// head block (63 slots each); otherwise half of the items, rounded up.
    pub fn steal_batch(&self, dest: &Worker<T>) -> Steal<()> {
        self.steal_batch_with_limit(dest, MAX_BATCH as usize)
    }

    /// Steals a batch (as [`Injector::steal_batch`]) of at most `limit` items, and pushes them into `dest`.
    ///
    /// A batch never crosses a block boundary (63 items). A `limit` of 0 steals nothing and returns
    /// [`Steal::Empty`] (crossbeam-deque panics).
    pub fn steal_batch_with_limit(&self, dest: &Worker<T>, limit: usize) -> Steal<()> {
        self.steal_batch_inner(dest, limit, false).map(|_| ())
    }

    /// Steals a batch (as [`Injector::steal_batch`], at most 33 items with the returned one, as
    /// crossbeam-deque), returns the oldest and pushes the rest into `dest`.
    pub fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
        self.steal_batch_with_limit_and_pop(dest, MAX_BATCH as usize + 1)
    }

    /// Steals a batch (as [`Injector::steal_batch`]) of at most `limit` items (the returned one included),
    /// returns the oldest and pushes the rest into `dest`.
    pub fn steal_batch_with_limit_and_pop(&self, dest: &Worker<T>, limit: usize) -> Steal<T> {
        self.steal_batch_inner(dest, limit, true)
            .map(|popped| popped.expect("a pop batch claims at least one item"))
    }

    fn steal_batch_inner(&self, dest: &Worker<T>, limit: usize, pop: bool) -> Steal<Option<T>> {
        if limit == 0 {
            return Steal::Empty;
        }
        let dest = dest.owner();
        let pop = usize::from(pop);
        // A batch never crosses a block, so it is at most a block's worth: make room for that (the worker
        // grows, so this falls short only past its maximum capacity).
        let limit = limit.min(BLOCK_CAP);
        let room = dest.reserve((limit - pop) as u32) as usize;
        let limit = limit.min(room + pop);
        let mut popped = None;
        let mut moved = 0;
        let mut writer = None;
        let outcome = self.claim(limit, |count, slot| {
            // SAFETY: `claim` hands us each claimed slot once.
            let value = unsafe { slot.take() };
            if pop == 1 && popped.is_none() {
                popped = Some(value);
            } else {
                let writer =
                    writer.get_or_insert_with(|| dest.batch_writer((count - pop) as u32, false));
                // SAFETY: `reserve` made room for `limit - pop` items; `count - pop` of them at most are
                // moved, each written once, oldest first.
                unsafe { writer.write(value) };
                moved += 1;
            }
        });
        dest.publish(moved);
        outcome.map(|()| popped)
    }

    /// The number of items, at the moment it looked.
    pub fn len(&self) -> usize {
        loop {
            // SeqCst: the two tail loads and the head load must not be reordered with each other, or the
            // "tail did not move" check below would prove nothing.
            let tail = self.tail.index.load(Ordering::SeqCst);
            let head = self.head.index.load(Ordering::SeqCst);
            if self.tail.index.load(Ordering::SeqCst) == tail {
                return items_before(tail).saturating_sub(items_before(head));
            }
        }
    }

    /// Returns `true` if the injector looked empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Default for Injector<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for Injector<T> {
    fn drop(&mut self) {
        // Relaxed: `&mut self` means every other thread is done with the injector.
        let mut head = self.head.index.load(Ordering::Relaxed);
        let tail = self.tail.index.load(Ordering::Relaxed);
        let mut block = self.head.block.load(Ordering::Relaxed);
        // SAFETY: with exclusive access, every slot between head and tail is written and unclaimed; blocks
        // from the head block on are owned by the injector and were allocated by `Box`.
        unsafe {
            while head != tail {
                let offset = head % LAP;
                if offset < BLOCK_CAP {
                    (*block).slots[offset]
                        .value
                        .with(|value| drop(value.read().assume_init()));
                } else {
                    let next = (*block).next.load(Ordering::Relaxed);
                    drop(Box::from_raw(block));
                    block = next;
                }
                head += 1;
            }
            drop(Box::from_raw(block));
        }
        #[cfg(loom)]
        for block in self.retired.get_mut().unwrap().drain(..) {
            // SAFETY: retired blocks were leaked from `Box`es and nobody can reach them any more.
            drop(unsafe { Box::from_raw(block as *mut Block<T>) });
        }
    }
}

impl<T> fmt::Debug for Injector<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Injector")
            .field("len", &self.len())
            .finish()
    }
}
