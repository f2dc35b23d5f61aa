//! The algorithm shared by the growable and the bounded deque.
//!
//! Positions are `u32` counters that wrap; a slot's index is `position & mask`. The deque holds the items at
//! positions `head..tail`. Three words are shared:
//!
//! * `tag_and_head` packs the head and a tag into one `AtomicU64` so one compare-and-swap can check both.
//!   Thieves claim items by moving the head forward. The owner's pop adds `1 << 32` to the word in both
//!   flavours, so the half that the owner's pop moves is the high one:
//!   - LIFO: `(pop count << 32) | head`. The owner pops from the tail with a CAS that bumps the *pop count*,
//!     so a thief whose CAS succeeds knows the owner popped nothing since the thief computed the tail, and
//!     may claim a whole batch with that one CAS (the classic Chase-Lev pop decrements the tail with a plain
//!     store, which is why crossbeam must steal a LIFO batch one item at a time).
//!   - FIFO: `(head << 32) | end of the last claim`. The owner pops at the head with a CAS that moves the
//!     head and leaves the thieves' record alone.
//! * `steal_head`: where the last thief to finish stopped, stored by that thief when it has copied out its
//!   claim. A claim is open while `steal_head` differs from the head (LIFO: only thieves move the head) or
//!   from the last claim's end (FIFO: the owner moves the head too). While one is open, other thieves get
//!   `Retry`, so at most one range is being copied out at a time, and it starts at or after `steal_head`.
//! * `push_count`: the number of pushes, written only by the owner. LIFO: `tail = push_count - pop_count`;
//!   FIFO: `tail = push_count`.
//!
//! A thief claims a range with a CAS, *then* reads its slots, then publishes the new steal head. The owner
//! never writes a slot at or past `steal_head + capacity`, so no slot is ever read while it is written: the
//! deque has no data race, unlike Chase-Lev's speculative read (see the crate's `guide` module).
//!
//! The owner's half, [`Owner`], is generic over its [`Growth`] (the growable and the bounded `Worker` are
//! different public types), and its pop is monomorphised per [`Flavour`] and chosen once, when the worker is
//! made, as a function pointer: neither push nor pop tests the flavour or the growth at run time.

use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr;

use crossbeam_utils::CachePadded;

use crate::Steal;
use crate::buffer::{Buffer, Slots};
use crate::sync::{Arc, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// The smallest buffer of the growable deque: 64 slots, or 2 under loom so models reach growth and
/// wrap-around in a few steps.
#[cfg(not(loom))]
pub(crate) const MIN_CAPACITY: u32 = 64;
#[cfg(loom)]
pub(crate) const MIN_CAPACITY: u32 = 2;

/// The largest buffer: positions are `u32`, and lengths are compared as `i32`.
pub(crate) const MAX_CAPACITY: u32 = 1 << 30;

/// The most items one `steal_batch` moves when no limit is given (crossbeam's figure).
pub(crate) const MAX_BATCH: u32 = 32;

/// What the owner's pop adds to `tag_and_head`, in both flavours (see the module docs).
const ONE_POP: u64 = 1 << 32;

/// Which end the owner pops from, as a value (thieves and the rare paths of the owner look at it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// The owner pops the item it pushed last.
    Lifo,
    /// The owner pops the item it pushed first, like the thieves.
    Fifo,
}

impl Flavor {
    /// Splits a `tag_and_head` word into `(tag, head)`.
    #[inline]
    fn split(self, word: u64) -> (u32, u32) {
        match self {
            Flavor::Lifo => ((word >> 32) as u32, word as u32),
            Flavor::Fifo => (word as u32, (word >> 32) as u32),
        }
    }

    /// The word a thief's claim of `head..end` leaves, from a word with this `tag`: LIFO keeps the pop
    /// count; FIFO records `end` as the end of the last claim too.
    #[inline]
    fn claimed(self, tag: u32, end: u32) -> u64 {
        match self {
            Flavor::Lifo => (u64::from(tag) << 32) | u64::from(end),
            Flavor::Fifo => (u64::from(end) << 32) | u64::from(end),
        }
    }

    /// The tail implied by a tag and a push count.
    #[inline]
    fn tail(self, tag: u32, push_count: u32) -> u32 {
        match self {
            Flavor::Lifo => push_count.wrapping_sub(tag),
            Flavor::Fifo => push_count,
        }
    }

    /// The end of the last claim, which `steal_head` equals when no claim is open: the head for LIFO (only
    /// thieves move it), the tag for FIFO (the owner's pops move the head too).
    #[inline]
    fn last_claim_end(self, tag: u32, head: u32) -> u32 {
        match self {
            Flavor::Lifo => head,
            Flavor::Fifo => tag,
        }
    }
}

/// Which end the owner pops from, as a type: the owner's pop is compiled once per flavour.
pub(crate) trait Flavour: 'static {
    /// The same, as a value.
    const FLAVOR: Flavor;
}

/// The owner pops the item it pushed last.
#[derive(Debug)]
pub(crate) struct Lifo;

/// The owner pops the item it pushed first.
#[derive(Debug)]
pub(crate) struct Fifo;

impl Flavour for Lifo {
    const FLAVOR: Flavor = Flavor::Lifo;
}

impl Flavour for Fifo {
    const FLAVOR: Flavor = Flavor::Fifo;
}

/// Whether a full buffer grows (the growable `Worker`) or `push` fails (`bounded::Worker`), as a type.
pub(crate) trait Growth: 'static {
    /// `true` for the growable deque.
    const GROWABLE: bool;
}

/// The buffer doubles when full and halves when idle; old buffers are retired through the epoch.
#[cfg(feature = "std")]
#[derive(Debug)]
pub(crate) struct Growable;

/// The buffer never changes.
#[derive(Debug)]
pub(crate) struct Fixed;

#[cfg(feature = "std")]
impl Growth for Growable {
    const GROWABLE: bool = true;
}

impl Growth for Fixed {
    const GROWABLE: bool = false;
}

/// `to - from` as a signed count (positions wrap).
#[inline]
fn distance(from: u32, to: u32) -> i32 {
    to.wrapping_sub(from) as i32
}

/// The shared half of a deque: what thieves see.
pub(crate) struct Queue<T> {
    tag_and_head: CachePadded<AtomicU64>,
    steal_head: CachePadded<AtomicU32>,
    push_count: CachePadded<AtomicU32>,
    buffer: CachePadded<AtomicPtr<Buffer<T>>>,
    flavor: Flavor,
    /// `steal_as::<Lifo>` or `steal_as::<Fifo>`, matching `flavor`: chosen when the queue is made, so a
    /// single steal runs code compiled for its flavour, as the owner's pop does.
    steal: unsafe fn(&Self) -> Steal<T>,
    /// Under loom, replaced buffers are kept here and freed with the queue (crossbeam-epoch is not modelled;
    /// what loom checks is the protocol that decides when a buffer may be read).
    #[cfg(loom)]
    retired: std::sync::Mutex<alloc::vec::Vec<usize>>,
}

// SAFETY: items move between threads (pushed on one, stolen on another), which needs `T: Send`; the shared
// state is atomics, and every slot access is made exclusive by the claim protocol described above.
unsafe impl<T: Send> Send for Queue<T> {}
// SAFETY: as for `Send`; `&Queue` only lets thieves claim items, each of which is moved out exactly once.
unsafe impl<T: Send> Sync for Queue<T> {}

/// A range of positions claimed by a thief, and the buffer it read the tail through.
struct Claim<T> {
    head: u32,
    count: u32,
    buffer: *const Buffer<T>,
}

impl<T> Queue<T> {
    fn new(flavor: Flavor, capacity: u32) -> (Arc<Self>, *mut Buffer<T>) {
        let buffer = alloc::boxed::Box::into_raw(Buffer::alloc(capacity));
        let queue = Arc::new(Self {
            tag_and_head: CachePadded::new(AtomicU64::new(0)),
            steal_head: CachePadded::new(AtomicU32::new(0)),
            push_count: CachePadded::new(AtomicU32::new(0)),
            buffer: CachePadded::new(AtomicPtr::new(buffer)),
            flavor,
            steal: match flavor {
                Flavor::Lifo => Self::steal_as::<Lifo>,
                Flavor::Fifo => Self::steal_as::<Fifo>,
            },
            #[cfg(loom)]
            retired: std::sync::Mutex::new(alloc::vec::Vec::new()),
        });
        (queue, buffer)
    }

    pub(crate) fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The tail implied by a tag and a push count.
    #[inline]
    fn tail(&self, tag: u32, push_count: u32) -> u32 {
        self.flavor.tail(tag, push_count)
    }

    /// The number of items, as seen by anyone (a moment's picture).
    pub(crate) fn len(&self) -> usize {
        // Acquire: pairs with the Release CAS of pops, so the push count read next is at least the one that
        // preceded them and the length is never negative.
        let (tag, head) = self.flavor.split(self.tag_and_head.load(Ordering::Acquire));
        let push_count = self.push_count.load(Ordering::Acquire);
        distance(head, self.tail(tag, push_count)).max(0) as usize
    }

    /// The end of the last claim, which `steal_head` equals when no claim is open.
    #[inline]
    fn last_claim_end(&self, tag: u32, head: u32) -> u32 {
        self.flavor.last_claim_end(tag, head)
    }

    /// The first position a thief may still be reading: below it, the owner may write.
    #[inline]
    fn steal_head(&self) -> u32 {
        // Acquire: pairs with the Release CAS of pops (see `len`).
        let (tag, head) = self.flavor.split(self.tag_and_head.load(Ordering::Acquire));
        // Acquire: pairs with the Release store in `release`, so a thief's reads of its slots happen before
        // the owner writes those slots again. Loaded after the head: a claim made since then starts at or
        // after that head, so with no claim open at this point the head is a safe bound.
        let steal_head = self.steal_head.load(Ordering::Acquire);
        if steal_head == self.last_claim_end(tag, head) {
            head
        } else {
            steal_head
        }
    }

    /// Claims up to `limit(available)` items from the head for a thief, with the code of flavour `F` (the
    /// queue's).
    ///
    /// # Safety
    ///
    /// Every buffer loaded from `self.buffer` during the call and until the claim is released stays allocated
    /// (the caller is pinned, or the queue never replaces its buffer).
    #[inline]
    unsafe fn claim<F: Flavour>(
        &self,
        mut limit: impl FnMut(u32) -> u32,
    ) -> Result<Claim<T>, Steal<()>> {
        debug_assert_eq!(F::FLAVOR, self.flavor);
        // Acquire: pairs with the Release CAS of owner pops (see `len`).
        let mut word = self.tag_and_head.load(Ordering::Acquire);
        loop {
            let (tag, head) = F::FLAVOR.split(word);
            // Acquire: pairs with the Release store in `release` (the previous thief's reads are done).
            if self.steal_head.load(Ordering::Acquire) != F::FLAVOR.last_claim_end(tag, head) {
                // Another thief is still copying out its claim. Waiting would make stealing blocking;
                // the caller retries or looks elsewhere.
                return Err(Steal::Retry);
            }
            // Acquire: pairs with the Release store in `publish`, so the items below this count are visible.
            let push_count = self.push_count.load(Ordering::Acquire);
            let available = distance(head, F::FLAVOR.tail(tag, push_count));
            if available <= 0 {
                return Err(Steal::Empty);
            }
            let count = limit(available as u32).min(available as u32);
            if count == 0 {
                return Err(Steal::Empty);
            }
            // Read after the push count, so this buffer is the one the counted items were written to or a
            // later copy of it (Lê et al.'s fix). Acquire: pairs with the Release store in `replace_buffer`,
            // so the copied items are visible.
            let buffer = self.buffer.load(Ordering::Acquire);
            let end = head.wrapping_add(count);
            let claimed = F::FLAVOR.claimed(tag, end);
            // Success Relaxed: what the claimed slots hold was made visible by the push count above; the CAS
            // only has to be atomic. Failure Acquire: the retry reads the push count again (see `len`).
            match self.tag_and_head.compare_exchange_weak(
                word,
                claimed,
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Claim {
                        head,
                        count,
                        buffer,
                    });
                }
                Err(current) => word = current,
            }
        }
    }

    /// Publishes that a thief has finished copying out its claim, so the owner may reuse those slots and the
    /// next thief may claim.
    fn release(&self, claim: &Claim<T>) {
        // Release: pairs with the Acquire loads of `steal_head`: our slot reads happen before the owner's next
        // writes to those slots and before the next thief's claim.
        self.steal_head
            .store(claim.head.wrapping_add(claim.count), Ordering::Release);
    }

    /// Steals one item.
    ///
    /// # Safety
    ///
    /// As for [`Queue::claim`].
    #[inline]
    pub(crate) unsafe fn steal(&self) -> Steal<T> {
        // SAFETY: forwarded from the caller; `self.steal` is the instance for the queue's flavour.
        unsafe { (self.steal)(self) }
    }

    /// `steal` with the code of flavour `F`. Only called through `self.steal`.
    ///
    /// # Safety
    ///
    /// As for [`Queue::claim`].
    unsafe fn steal_as<F: Flavour>(&self) -> Steal<T> {
        // SAFETY: forwarded from the caller.
        match unsafe { self.claim::<F>(|_| 1) } {
            Err(outcome) => outcome.map(|()| unreachable!()),
            Ok(claim) => {
                // SAFETY: the claim gives us position `claim.head` alone; the buffer holds it (it was loaded
                // after the push count that covered it) and is alive (caller's guarantee); the owner does not
                // write it before `release`.
                let value = unsafe { (*claim.buffer).read(claim.head) };
                self.release(&claim);
                Steal::Success(value)
            }
        }
    }

    /// Steals up to `limit` items (at most half of what is there, rounded up) and moves them into `dest`.
    ///
    /// # Safety
    ///
    /// As for [`Queue::claim`]; `dest` belongs to the calling thread.
    pub(crate) unsafe fn steal_batch<G: Growth>(
        &self,
        dest: &Owner<T, G>,
        limit: usize,
    ) -> Steal<()> {
        if ptr::eq(self, &*dest.queue) {
            // crossbeam-deque's answer for a steal into the deque itself: nothing moves, and the outcome
            // says whether there is anything to work on.
            return if dest.len() == 0 {
                Steal::Empty
            } else {
                Steal::Success(())
            };
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.steal_batch_inner(dest, limit, false) }.map(|_| ())
    }

    /// Steals up to `limit` items (at most half of what is there, rounded up), returns one and moves the
    /// others into `dest`: the oldest of a FIFO source, the newest of a LIFO source (crossbeam-deque's
    /// order: the batch comes out in the order the source's owner would have popped it).
    ///
    /// # Safety
    ///
    /// As for [`Queue::steal_batch`].
    pub(crate) unsafe fn steal_batch_and_pop<G: Growth>(
        &self,
        dest: &Owner<T, G>,
        limit: usize,
    ) -> Steal<T> {
        if ptr::eq(self, &*dest.queue) {
            // As crossbeam-deque: a steal from the deque itself is a pop.
            return match dest.pop() {
                Some(value) => Steal::Success(value),
                None => Steal::Empty,
            };
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.steal_batch_inner(dest, limit, true) }
            .map(|popped| popped.expect("a pop batch claims at least one item"))
    }

    unsafe fn steal_batch_inner<G: Growth>(
        &self,
        dest: &Owner<T, G>,
        limit: usize,
        pop: bool,
    ) -> Steal<Option<T>> {
        match self.flavor {
            // SAFETY: forwarded from the caller, and `Lifo` is the queue's flavour.
            Flavor::Lifo => unsafe { self.steal_batch_as::<Lifo, G>(dest, limit, pop) },
            // SAFETY: forwarded from the caller, and `Fifo` is the queue's flavour.
            Flavor::Fifo => unsafe { self.steal_batch_as::<Fifo, G>(dest, limit, pop) },
        }
    }

    /// `steal_batch_inner` with the code of flavour `F`, the queue's.
    ///
    /// # Safety
    ///
    /// As for [`Queue::steal_batch`].
    unsafe fn steal_batch_as<F: Flavour, G: Growth>(
        &self,
        dest: &Owner<T, G>,
        limit: usize,
        pop: bool,
    ) -> Steal<Option<T>> {
        if limit == 0 {
            return Steal::Empty;
        }
        let pop = u32::from(pop);
        let mut limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let mut room = dest.room();
        if room < limit - pop {
            // Grow `dest` only as far as what is there now calls for, not to a large `limit`.
            let half = u32::try_from(self.len().div_ceil(2)).unwrap_or(u32::MAX);
            limit = limit.min(half.max(1));
            room = dest.reserve(limit - pop);
        }
        let limit = limit.min(room.saturating_add(pop));
        // SAFETY: forwarded from the caller.
        let claim = match unsafe { self.claim::<F>(|available| available.div_ceil(2).min(limit)) } {
            Err(outcome) => return outcome.map(|()| unreachable!()),
            Ok(claim) => claim,
        };
        let moved = claim.count - pop;
        // The batch comes out of `dest` in the order the source's owner would have popped it (crossbeam's
        // order): oldest first from a FIFO source, newest first from a LIFO one. The popped item is the first.
        let newest_first = F::FLAVOR == Flavor::Lifo;
        let (popped, first_moved) = if newest_first {
            let popped = (pop == 1).then(|| {
                // SAFETY: as in `steal`: each position of the claim is read once, by us, before `release`.
                unsafe { (*claim.buffer).read(claim.head.wrapping_add(moved)) }
            });
            (popped, claim.head)
        } else {
            let popped = (pop == 1).then(|| {
                // SAFETY: as above.
                unsafe { (*claim.buffer).read(claim.head) }
            });
            (popped, claim.head.wrapping_add(pop))
        };
        // SAFETY: the claim's buffer is alive (the caller's guarantee).
        let source = unsafe { (*claim.buffer).slots() };
        let mut writer = dest.batch_writer(moved, newest_first);
        for i in 0..moved {
            // SAFETY: as above.
            let value = unsafe { source.read(first_moved.wrapping_add(i)) };
            // SAFETY: `reserve` made room for `moved` items, `dest` is ours, and this is one of `moved` writes,
            // oldest first.
            unsafe { writer.write(value) };
        }
        self.release(&claim);
        dest.publish(moved);
        Steal::Success(popped)
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        // Relaxed: `&mut self` means every other handle is gone, and the `Arc` that dropped last already
        // synchronized with all of them.
        let (tag, head) = self.flavor.split(self.tag_and_head.load(Ordering::Relaxed));
        let tail = self.tail(tag, self.push_count.load(Ordering::Relaxed));
        let buffer = self.buffer.load(Ordering::Relaxed);
        // SAFETY: nobody else holds the queue any more; positions `head..tail` hold the items not yet taken,
        // each initialized and owned by the queue, and the buffer was allocated by `Box`.
        unsafe {
            let mut position = head;
            while position != tail {
                drop((*buffer).read(position));
                position = position.wrapping_add(1);
            }
            drop(alloc::boxed::Box::from_raw(buffer));
        }
        #[cfg(loom)]
        for old in self.retired.get_mut().unwrap().drain(..) {
            // SAFETY: retired buffers were leaked from `Box`es and are no longer reachable by anyone.
            drop(unsafe { alloc::boxed::Box::from_raw(old as *mut Buffer<T>) });
        }
    }
}

/// The owner's half of a deque: the shared queue plus what only the owner writes, cached in plain cells.
///
/// `G` says whether the buffer grows; the flavour is in `pop`, the pop compiled for it.
pub(crate) struct Owner<T, G: Growth> {
    pub(crate) queue: Arc<Queue<T>>,
    /// One past the newest item. LIFO: `push_count - pop_count` (the pop count is the tag of
    /// `queue.tag_and_head`); FIFO: `push_count`.
    tail: Cell<u32>,
    /// One past the last position the owner may write: a steal head seen earlier plus the capacity. Steal
    /// heads only grow, so an old one is a safe lower bound; the owner reloads it only when the buffer looks
    /// full. Keeping the sum makes the push check one comparison with the tail.
    push_limit: Cell<u32>,
    /// Its slot pointer and mask, kept here so push and pop need not follow the buffer pointer.
    slots: Cell<Slots<T>>,
    /// Mirror of `queue.push_count` (only the owner writes it).
    push_count: Cell<u32>,
    /// `pop_as::<Lifo>` or `pop_as::<Fifo>`, matching `queue.flavor`: chosen when the worker is made, so a
    /// pop runs code compiled for its flavour and tests nothing about it.
    pop: fn(&Self) -> Option<T>,
    /// Growable only: a pop that finds at most this many items counts as low (see `note_low_pop`). An eighth
    /// of the capacity, or 0 at the minimum capacity (which never shrinks), so in the usual case the pop's
    /// emptiness test and its shrink test are one comparison.
    low_mark: Cell<u32>,
    /// Growable only: low pops since the count last restarted.
    low_pops: Cell<u32>,
    /// Growable only: the push count at the last low pop.
    push_count_at_low_pop: Cell<u32>,
    /// The current buffer (only the owner replaces it).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    // Only a growable deque replaces (and reads) it.
    buffer: Cell<*mut Buffer<T>>,
    _growth: PhantomData<G>,
}

/// Writes a batch past an owner's tail, one item after the other, oldest first (see
/// [`Owner::batch_writer`]).
pub(crate) struct BatchWriter<T> {
    slots: Slots<T>,
    next: u32,
    /// 1, or -1 as a wrapping `u32`.
    step: u32,
}

impl<T> BatchWriter<T> {
    /// Writes the next item.
    ///
    /// # Safety
    ///
    /// The owner that made the writer has room for the batch (`room()` at least its count), the calling
    /// thread owns it, and this is called at most `count` times.
    #[inline]
    pub(crate) unsafe fn write(&mut self, value: T) {
        // SAFETY: `slots` are the owner's current buffer's (alive); the room makes the slot outside every
        // claim, and only the owner's thread writes.
        unsafe { self.slots.write(self.next, value) };
        self.next = self.next.wrapping_add(self.step);
    }
}

/// How many low pops a buffer of `capacity` slots waits before it halves (see `Owner::note_low_pop`). Under
/// loom it shrinks at once, so models reach the shrink in a few steps (the count is the owner's alone and
/// plays no part in the protocol).
fn shrink_delay(capacity: u32) -> u32 {
    if cfg!(loom) { 1 } else { capacity }
}

/// The `low_mark` of a buffer of `capacity` slots.
fn low_mark(capacity: u32) -> u32 {
    if capacity > MIN_CAPACITY {
        capacity / 8
    } else {
        0
    }
}

impl<T, G: Growth> Owner<T, G> {
    pub(crate) fn new(flavor: Flavor, capacity: u32) -> Self {
        let (queue, buffer) = Queue::new(flavor, capacity);
        let pop: fn(&Self) -> Option<T> = match flavor {
            Flavor::Lifo => Self::pop_as::<Lifo>,
            Flavor::Fifo => Self::pop_as::<Fifo>,
        };
        Self {
            queue,
            tail: Cell::new(0),
            push_limit: Cell::new(capacity),
            // SAFETY: `buffer` was just allocated and is owned by the queue.
            slots: Cell::new(unsafe { (*buffer).slots() }),
            push_count: Cell::new(0),
            pop,
            low_mark: Cell::new(if G::GROWABLE { low_mark(capacity) } else { 0 }),
            low_pops: Cell::new(0),
            push_count_at_low_pop: Cell::new(0),
            buffer: Cell::new(buffer),
            _growth: PhantomData,
        }
    }

    /// The steal head `push_limit` was computed from.
    #[inline]
    fn known_steal_head(&self) -> u32 {
        self.push_limit
            .get()
            .wrapping_sub(self.slots.get().capacity())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.get().capacity() as usize
    }

    /// How many more items fit before the owner would overwrite a slot a thief may still be reading.
    #[inline]
    pub(crate) fn room(&self) -> u32 {
        // Never more than the capacity: the owner writes only below the limit, and pops only lower the tail
        // to the head, which is at or above every steal head.
        let room = self.push_limit.get().wrapping_sub(self.tail.get());
        if room != 0 {
            return room;
        }
        self.refresh_steal_head();
        self.push_limit.get().wrapping_sub(self.tail.get())
    }

    /// Reloads the steal head, moves `push_limit` up to it and returns it. Both the old and the new value are
    /// lower bounds of what thieves may read (a claim opened after the old one was taken starts at or after
    /// it), so the larger one is kept: the one just read may be lower, the start of an open claim.
    fn refresh_steal_head(&self) -> u32 {
        let known = self.known_steal_head();
        let fresh = self.queue.steal_head();
        let bound = if distance(known, fresh) > 0 {
            fresh
        } else {
            known
        };
        self.push_limit
            .set(bound.wrapping_add(self.slots.get().capacity()));
        bound
    }

    /// Pushes `value`, or gives it back if the buffer is full and may not grow.
    #[inline]
    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        let tail = self.tail.get();
        if tail == self.push_limit.get() {
            return self.push_when_full(value);
        }
        // SAFETY: `slots` are the current buffer's, alive while the owner holds the queue; `tail` is below
        // `push_limit` (a steal head plus the capacity), so no thief reads this slot, and only the owner
        // writes.
        unsafe { self.slots.get().write(tail, value) };
        self.publish(1);
        Ok(())
    }

    /// The rest of `push` when the known room is used up: look at the steal head again, then grow or fail.
    #[cold]
    #[inline(never)]
    fn push_when_full(&self, value: T) -> Result<(), T> {
        if self.room() == 0 && (!G::GROWABLE || !self.grow(1)) {
            return Err(value);
        }
        // SAFETY: as in `push`: `room` showed the tail is below the limit.
        unsafe { self.slots.get().write(self.tail.get(), value) };
        self.publish(1);
        Ok(())
    }

    /// Makes the `count` items written past the tail part of the deque and visible to thieves.
    #[inline]
    pub(crate) fn publish(&self, count: u32) {
        self.tail.set(self.tail.get().wrapping_add(count));
        let push_count = self.push_count.get().wrapping_add(count);
        self.push_count.set(push_count);
        // Release: pairs with the Acquire load in `claim`: the slot writes happen before a thief reads them.
        self.queue.push_count.store(push_count, Ordering::Release);
    }

    /// Makes room for `wanted` items if the deque may grow, and returns the room there is.
    pub(crate) fn reserve(&self, wanted: u32) -> u32 {
        let room = self.room();
        if room >= wanted {
            return room;
        }
        // The known steal head may be old (thieves and FIFO pops move it): look again before concluding the
        // buffer is too small.
        self.refresh_steal_head();
        let room = self.room();
        if room >= wanted || !G::GROWABLE || !self.grow(wanted) {
            return room;
        }
        self.room()
    }

    /// Where the `count` items of a batch go past the tail, given oldest first, so that the owner pops them
    /// oldest first, or newest first if `newest_first`. Nothing is visible to thieves before
    /// [`Owner::publish`]`(count)`.
    #[inline]
    pub(crate) fn batch_writer(&self, count: u32, newest_first: bool) -> BatchWriter<T> {
        let tail = self.tail.get();
        // A LIFO owner pops from the tail end, a FIFO owner from the other: the oldest item goes at the tail
        // end exactly when it must come out first from a LIFO owner, or last from a FIFO one.
        let oldest_at_the_tail_end = (self.queue.flavor == Flavor::Lifo) != newest_first;
        let (next, step) = if oldest_at_the_tail_end {
            (tail.wrapping_add(count).wrapping_sub(1), u32::MAX)
        } else {
            (tail, 1)
        };
        BatchWriter {
            slots: self.slots.get(),
            next,
            step,
        }
    }

    /// Pops from the owner's end, with the pop compiled for the deque's flavour.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        (self.pop)(self)
    }

    /// The fewest items a pop may find for the fast path: more than the low mark (growable), or more than 0.
    #[inline]
    fn low_mark(&self) -> i32 {
        if G::GROWABLE {
            self.low_mark.get() as i32
        } else {
            0
        }
    }

    /// The pop of flavour `F`. Only ever called through `self.pop`, which `new` set to the instance whose `F`
    /// is the queue's flavour.
    #[inline]
    fn pop_as<F: Flavour>(&self) -> Option<T> {
        debug_assert_eq!(F::FLAVOR, self.queue.flavor);
        let tail = self.tail.get();
        // Relaxed: a stale word only makes the CAS below fail and retry with the fresh one.
        let mut word = self.queue.tag_and_head.load(Ordering::Relaxed);
        loop {
            let (tag, head) = F::FLAVOR.split(word);
            self.debug_check_tag::<F>(tag, tail);
            if distance(head, tail) <= self.low_mark() {
                // Empty, or few enough items that the pop counts towards a shrink: out of line, so this stays
                // a leaf function in the usual case.
                return self.pop_low::<F>();
            }
            // Release: pairs with the Acquire loads of `tag_and_head` in `claim` and `len`, so a thief that
            // sees this pop also sees the push count that preceded it (a tail below the head would be
            // nonsense). LIFO: the CAS bumps the pop count, so a thief that computed the tail before it fails
            // its own CAS. FIFO: it moves the head.
            match self.queue.tag_and_head.compare_exchange_weak(
                word,
                word.wrapping_add(ONE_POP),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                // SAFETY: the CAS took the item for the owner (see `take`).
                Ok(_) => return Some(unsafe { self.take::<F>(head, tail) }),
                Err(current) => word = current,
            }
        }
    }

    /// The LIFO invariant: the tag is the owner's pop count, `push_count - tail`. FIFO: the tail is the push
    /// count.
    #[inline]
    fn debug_check_tag<F: Flavour>(&self, tag: u32, tail: u32) {
        match F::FLAVOR {
            Flavor::Lifo => debug_assert_eq!(
                tag,
                self.push_count.get().wrapping_sub(tail),
                "a LIFO deque's tag is its owner's pop count"
            ),
            Flavor::Fifo => {
                let _ = tag;
                debug_assert_eq!(
                    tail,
                    self.push_count.get(),
                    "a FIFO deque's tail is its push count"
                );
            }
        }
    }

    /// `pop_as` for an empty deque or a low pop (growable only).
    #[cold]
    #[inline(never)]
    fn pop_low<F: Flavour>(&self) -> Option<T> {
        let tail = self.tail.get();
        // Relaxed: as in `pop_as`.
        let mut word = self.queue.tag_and_head.load(Ordering::Relaxed);
        loop {
            let (tag, head) = F::FLAVOR.split(word);
            self.debug_check_tag::<F>(tag, tail);
            let len = distance(head, tail);
            if len <= 0 {
                return None;
            }
            // Release: as in `pop_as`.
            match self.queue.tag_and_head.compare_exchange_weak(
                word,
                word.wrapping_add(ONE_POP),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // SAFETY: as in `pop_as`.
                    let value = unsafe { self.take::<F>(head, tail) };
                    if G::GROWABLE && len <= self.low_mark() {
                        self.note_low_pop();
                    }
                    return Some(value);
                }
                Err(current) => word = current,
            }
        }
    }

    /// Moves out the item a successful pop CAS took: the newest (LIFO, at `tail - 1`, which becomes the
    /// tail) or the oldest (FIFO, at `head`).
    ///
    /// # Safety
    ///
    /// The owner's CAS just moved `tag_and_head` on from a word with this `head`, with `tail` the owner's tail.
    #[inline]
    unsafe fn take<F: Flavour>(&self, head: u32, tail: u32) -> T {
        let position = match F::FLAVOR {
            Flavor::Lifo => {
                let position = tail.wrapping_sub(1);
                self.tail.set(position);
                position
            }
            Flavor::Fifo => head,
        };
        // SAFETY: `slots` are the current buffer's (alive). The CAS claimed `position` for the owner: LIFO,
        // the bumped pop count makes every thief that counted it fail; FIFO, the head moved past it. The
        // owner pushed it, so its write is ours, and no thief reads it.
        unsafe { self.slots.get().read(position) }
    }

    /// Counts a pop that left less than an eighth of the buffer in use, and halves the buffer when as many
    /// pops as it has slots have done so with no refill in between.
    ///
    /// A refill is at least an eighth of the capacity pushed since the previous low pop (what it takes to
    /// get from below an eighth to a quarter full): it restarts the count. When the count reaches the
    /// capacity the buffer halves (and is then at most a quarter full, so it must double its contents before
    /// growing again). Shrinking costs a copy of at most an eighth of the buffer, paid for by as many pops as
    /// it has slots; a deque that keeps refilling, such as one oscillating between 64 and 256 items or a
    /// fork-join deque that drains and refills, keeps its buffer and never reallocates. crossbeam-deque
    /// halves as soon as a pop leaves a quarter, so the same oscillation reallocates on every round.
    #[inline]
    fn note_low_pop(&self) {
        let capacity = self.slots.get().capacity();
        let push_count = self.push_count.get();
        let pushed = push_count.wrapping_sub(self.push_count_at_low_pop.replace(push_count));
        let low_pops = if pushed >= capacity / 8 {
            1
        } else {
            self.low_pops.get() + 1
        };
        self.low_pops.set(low_pops);
        if low_pops >= shrink_delay(capacity) {
            self.shrink();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(feature = "std")]
impl<T, G: Growth> Owner<T, G> {
    /// Grows the buffer until `wanted` more items fit. Returns `false` at `MAX_CAPACITY`.
    #[cold]
    fn grow(&self, wanted: u32) -> bool {
        let used = self.tail.get().wrapping_sub(self.refresh_steal_head());
        let Some(needed) = used.checked_add(wanted) else {
            return false;
        };
        let mut capacity = self.slots.get().capacity();
        if capacity >= needed {
            return true;
        }
        while capacity < needed {
            if capacity >= MAX_CAPACITY {
                return false;
            }
            capacity *= 2;
        }
        self.replace_buffer(capacity);
        true
    }

    #[cold]
    fn shrink(&self) {
        self.low_pops.set(0);
        let capacity = self.slots.get().capacity() / 2;
        // Count from the steal head, not the head: the new buffer must not let the owner overwrite a slot a
        // thief is reading through it.
        let used = self.tail.get().wrapping_sub(self.refresh_steal_head());
        if used < capacity / 2 {
            self.replace_buffer(capacity);
        }
    }

    /// Moves the live items into a new buffer of `capacity` slots, publishes it and retires the old one.
    fn replace_buffer(&self, capacity: u32) {
        let old = self.buffer.get();
        let known_steal_head = self.known_steal_head();
        let new = alloc::boxed::Box::into_raw(Buffer::alloc(capacity));
        // Relaxed: the head is only a starting point; positions below the real head are copied as bits
        // nobody will read as items. Thieves only read slots, so copying one a thief is reading is no race.
        let (_, head) = self
            .queue
            .flavor
            .split(self.queue.tag_and_head.load(Ordering::Relaxed));
        let tail = self.tail.get();
        let mut position = head;
        while position != tail {
            // SAFETY: only the owner writes slots, and nobody has seen `new` yet.
            unsafe { (*old).copy_to(&*new, position) };
            position = position.wrapping_add(1);
        }
        // Release: pairs with the Acquire load in `claim`, so a thief that reads this pointer sees the copies.
        self.queue.buffer.store(new, Ordering::Release);
        self.buffer.set(new);
        // SAFETY: `new` is the buffer just published; it lives until the owner retires it.
        self.slots.set(unsafe { (*new).slots() });
        self.low_pops.set(0);
        self.low_mark.set(low_mark(capacity));
        self.push_limit.set(known_steal_head.wrapping_add(capacity));
        self.refresh_steal_head();
        self.retire(old);
    }

    /// Frees `old` once no thief can be reading it.
    fn retire(&self, old: *mut Buffer<T>) {
        #[cfg(not(loom))]
        {
            let guard = crossbeam_epoch::pin();
            // SAFETY: `old` is unreachable from the queue now; a thief that loaded it did so while pinned, and
            // the epoch collector runs this only after every such thief has unpinned. The closure frees
            // memory only: `Buffer` never drops items.
            unsafe { guard.defer_unchecked(move || drop(alloc::boxed::Box::from_raw(old))) };
            // Big buffers are worth handing to the collector now rather than at the next flush.
            if core::mem::size_of::<T>() * self.slots.get().capacity() as usize >= 1 << 16 {
                guard.flush();
            }
        }
        #[cfg(loom)]
        self.queue.retired.lock().unwrap().push(old as usize);
    }
}

#[cfg(not(feature = "std"))]
impl<T, G: Growth> Owner<T, G> {
    fn grow(&self, _wanted: u32) -> bool {
        false
    }

    fn shrink(&self) {}
}

impl<T, G: Growth> core::fmt::Debug for Owner<T, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("flavor", &self.queue.flavor)
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}
