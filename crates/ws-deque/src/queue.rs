//! The algorithm shared by the growable and the bounded deque.
//!
//! Positions are `u32` counters that wrap; a slot's index is `position & mask`. The deque holds the items at
//! positions `head..tail`. Three words are shared:
//!
//! * `tag_and_head` packs `(tag, head)` into one `AtomicU64` so one compare-and-swap can check both. Thieves
//!   claim items by moving `head` forward. The tag depends on the flavour:
//!   - LIFO: the owner's *pop count*. The owner pops from the tail with a CAS that bumps it, so a thief whose
//!     CAS succeeds knows the owner popped nothing since the thief computed the tail, and may claim a whole
//!     batch with that one CAS (the classic Chase-Lev pop decrements the tail with a plain store, which is why
//!     crossbeam must steal a LIFO batch one item at a time).
//!   - FIFO: the *end of the last claim*. The owner pops at the head with a CAS that leaves it alone.
//! * `steal_head`: where the last thief to finish stopped, stored by that thief when it has copied out its
//!   claim. A claim is open while `steal_head` differs from the head (LIFO: only thieves move the head) or
//!   from the last claim's end (FIFO: the owner moves the head too). While one is open, other thieves get
//!   `Retry`, so at most one range is being copied out at a time, and it starts at or after `steal_head`.
//! * `push_count`: the number of pushes, written only by the owner. LIFO: `tail = push_count - pop_count`;
//!   FIFO: `tail = push_count`.
//!
//! A thief claims a range with a CAS, *then* reads its slots, then publishes the new steal head. The owner
//! never writes a slot at or past `steal_head + capacity`, so no slot is ever read while it is written: the
//! deque has no data race, unlike Chase-Lev's speculative read (see `docs/ws-deque.md`).

use core::cell::Cell;
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

/// Which end the owner pops from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// The owner pops the item it pushed last.
    Lifo,
    /// The owner pops the item it pushed first, like the thieves.
    Fifo,
}

#[inline]
fn pack(tag: u32, head: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(head)
}

#[inline]
fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
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
            #[cfg(loom)]
            retired: std::sync::Mutex::new(alloc::vec::Vec::new()),
        });
        (queue, buffer)
    }

    pub(crate) fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The tail implied by a `tag_and_head` value and a push count.
    #[inline]
    fn tail(&self, tag: u32, push_count: u32) -> u32 {
        match self.flavor {
            Flavor::Lifo => push_count.wrapping_sub(tag),
            Flavor::Fifo => push_count,
        }
    }

    /// The number of items, as seen by anyone (a moment's picture).
    pub(crate) fn len(&self) -> usize {
        // Acquire: pairs with the Release CAS of pops, so the push count read next is at least the one that
        // preceded them and the length is never negative.
        let (tag, head) = unpack(self.tag_and_head.load(Ordering::Acquire));
        let push_count = self.push_count.load(Ordering::Acquire);
        distance(head, self.tail(tag, push_count)).max(0) as usize
    }

    /// The end of the last claim, which `steal_head` equals when no claim is open.
    #[inline]
    fn last_claim_end(&self, tag: u32, head: u32) -> u32 {
        match self.flavor {
            Flavor::Lifo => head,
            Flavor::Fifo => tag,
        }
    }

    /// The first position a thief may still be reading: below it, the owner may write.
    #[inline]
    fn steal_head(&self) -> u32 {
        // Acquire: pairs with the Release CAS of pops (see `len`).
        let (tag, head) = unpack(self.tag_and_head.load(Ordering::Acquire));
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

    /// Claims up to `limit(available)` items from the head for a thief.
    ///
    /// # Safety
    ///
    /// Every buffer loaded from `self.buffer` during the call and until the claim is released stays allocated
    /// (the caller is pinned, or the queue never replaces its buffer).
    unsafe fn claim(&self, mut limit: impl FnMut(u32) -> u32) -> Result<Claim<T>, Steal<()>> {
        // Acquire: pairs with the Release CAS of owner pops (see `len`).
        let mut word = self.tag_and_head.load(Ordering::Acquire);
        loop {
            let (tag, head) = unpack(word);
            // Acquire: pairs with the Release store in `release` (the previous thief's reads are done).
            if self.steal_head.load(Ordering::Acquire) != self.last_claim_end(tag, head) {
                // Another thief is still copying out its claim. Waiting would make stealing blocking;
                // the caller retries or looks elsewhere.
                return Err(Steal::Retry);
            }
            // Acquire: pairs with the Release store in `push`, so the items below this count are visible.
            let push_count = self.push_count.load(Ordering::Acquire);
            let available = distance(head, self.tail(tag, push_count));
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
            let claimed = match self.flavor {
                Flavor::Lifo => pack(tag, end),
                Flavor::Fifo => pack(end, end),
            };
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
    pub(crate) unsafe fn steal(&self) -> Steal<T> {
        // SAFETY: forwarded from the caller.
        match unsafe { self.claim(|_| 1) } {
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
    pub(crate) unsafe fn steal_batch(&self, dest: &Owner<T>, limit: usize) -> Steal<()> {
        // SAFETY: forwarded from the caller.
        unsafe { self.steal_batch_inner(dest, limit, false) }.map(|_| ())
    }

    /// Steals up to `limit` items (at most half of what is there, rounded up), returns the oldest and moves
    /// the others into `dest`.
    ///
    /// # Safety
    ///
    /// As for [`Queue::steal_batch`].
    pub(crate) unsafe fn steal_batch_and_pop(&self, dest: &Owner<T>, limit: usize) -> Steal<T> {
        // SAFETY: forwarded from the caller.
        unsafe { self.steal_batch_inner(dest, limit, true) }
            .map(|popped| popped.expect("a pop batch claims at least one item"))
    }

    unsafe fn steal_batch_inner(
        &self,
        dest: &Owner<T>,
        limit: usize,
        pop: bool,
    ) -> Steal<Option<T>> {
        if ptr::eq(self, &*dest.queue) || limit == 0 {
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
        let claim = match unsafe { self.claim(|available| available.div_ceil(2).min(limit)) } {
            Err(outcome) => return outcome.map(|()| unreachable!()),
            Ok(claim) => claim,
        };
        let popped = (pop == 1).then(|| {
            // SAFETY: as in `steal`: each position of the claim is read once, by us, before `release`.
            unsafe { (*claim.buffer).read(claim.head) }
        });
        let moved = claim.count - pop;
        for i in 0..moved {
            // SAFETY: as above.
            let value = unsafe { (*claim.buffer).read(claim.head.wrapping_add(pop + i)) };
            // SAFETY: `reserve` made room for `moved` items, and `dest` is ours.
            unsafe { dest.write_batch_item(moved, i, value) };
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
        let (tag, head) = unpack(self.tag_and_head.load(Ordering::Relaxed));
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
pub(crate) struct Owner<T> {
    pub(crate) queue: Arc<Queue<T>>,
    /// Mirror of `queue.push_count` (only the owner writes it).
    push_count: Cell<u32>,
    /// LIFO: mirror of the pop count in `queue.tag_and_head` (only the owner changes it). FIFO: 0.
    pop_count: Cell<u32>,
    /// One past the last position the owner may write: a steal head seen earlier plus the capacity. Steal
    /// heads only grow, so an old one is a safe lower bound; the owner reloads it only when the buffer looks
    /// full. Keeping the sum makes the push check one comparison.
    push_limit: Cell<u32>,
    /// The current buffer (only the owner replaces it).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    // Only a growable deque replaces (and reads) it.
    buffer: Cell<*mut Buffer<T>>,
    /// Its slot pointer and mask, kept here so push and pop need not follow the pointer.
    slots: Cell<Slots<T>>,
    /// The flavour, kept here so push and pop need not follow the `Arc`.
    flavor: Flavor,
    /// Pops since the deque was last at least a quarter full that left it less than an eighth full: the
    /// buffer shrinks when this reaches the capacity (see `note_pop`).
    low_pops: Cell<u32>,
    /// Whether a full buffer grows (the unbounded deque) or `push` fails (the bounded one).
    growable: bool,
}

/// How many low pops a buffer of `capacity` slots waits before it halves (see `Owner::note_pop`). Under loom
/// it shrinks at once, so models reach the shrink in a few steps (the count is the owner's alone and plays
/// no part in the protocol).
fn shrink_delay(capacity: u32) -> u32 {
    if cfg!(loom) { 1 } else { capacity }
}

impl<T> Owner<T> {
    pub(crate) fn new(flavor: Flavor, capacity: u32, growable: bool) -> Self {
        let (queue, buffer) = Queue::new(flavor, capacity);
        Self {
            queue,
            push_count: Cell::new(0),
            pop_count: Cell::new(0),
            push_limit: Cell::new(capacity),
            buffer: Cell::new(buffer),
            // SAFETY: `buffer` was just allocated and is owned by the queue.
            slots: Cell::new(unsafe { (*buffer).slots() }),
            flavor,
            low_pops: Cell::new(0),
            growable,
        }
    }

    #[inline]
    fn tail(&self) -> u32 {
        // A FIFO owner never pops from the tail: its pop count stays 0, so one formula serves both.
        self.push_count.get().wrapping_sub(self.pop_count.get())
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
        let room = self.push_limit.get().wrapping_sub(self.tail());
        if room != 0 {
            return room;
        }
        self.refresh_steal_head();
        self.push_limit.get().wrapping_sub(self.tail())
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
        if self.room() == 0 && (!self.growable || !self.grow(1)) {
            return Err(value);
        }
        let tail = self.tail();
        // SAFETY: `slots` are the current buffer's, alive while the owner holds the queue; `room` showed `tail`
        // is below `steal_head + capacity`, so no thief reads this slot, and only the owner writes.
        unsafe { self.slots.get().write(tail, value) };
        self.publish(1);
        Ok(())
    }

    /// Makes `count` more items visible to thieves.
    #[inline]
    pub(crate) fn publish(&self, count: u32) {
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
        if room >= wanted || !self.growable || !self.grow(wanted) {
            return room;
        }
        self.room()
    }

    /// Writes item `i` (counting from the oldest) of a batch of `count` past the tail, placed so the owner
    /// pops the oldest first. Nothing is visible to thieves before [`Owner::publish`]`(count)`.
    ///
    /// # Safety
    ///
    /// `room()` is at least `count`, `i < count`, and each `i` is written once before the publish.
    #[inline]
    pub(crate) unsafe fn write_batch_item(&self, count: u32, i: u32, value: T) {
        let position = match self.flavor {
            // The LIFO owner pops from the tail: put the oldest item there.
            Flavor::Lifo => self.tail().wrapping_add(count - 1 - i),
            Flavor::Fifo => self.tail().wrapping_add(i),
        };
        // SAFETY: `slots` are the current buffer's (alive); the caller made room for `count` items, so the
        // slot is outside every claim.
        unsafe { self.slots.get().write(position, value) };
    }

    /// Pops from the owner's end.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        let (position, remaining) = match self.flavor {
            Flavor::Lifo => self.pop_lifo()?,
            Flavor::Fifo => self.pop_fifo()?,
        };
        // SAFETY: `slots` are the current buffer's (alive); the CAS in `pop_*` claimed `position` for the owner; it was pushed by the owner, so its
        // write is ours, and no thief can claim it any more.
        let value = unsafe { self.slots.get().read(position) };
        if self.growable {
            self.note_pop(remaining);
        }
        Some(value)
    }

    #[inline]
    fn pop_lifo(&self) -> Option<(u32, u32)> {
        let pop_count = self.pop_count.get();
        let tail = self.tail();
        // Relaxed: a stale head only makes the CAS below fail and retry with the fresh one.
        let mut word = self.queue.tag_and_head.load(Ordering::Relaxed);
        loop {
            let (tag, head) = unpack(word);
            debug_assert_eq!(tag, pop_count);
            if distance(head, tail) <= 0 {
                return None;
            }
            // Release: pairs with the Acquire loads of `tag_and_head` in `claim` and `len`, so a thief that
            // sees this pop count also sees the push count that preceded it (a tail below the head would be
            // nonsense). The CAS also tells thieves that computed the tail before it: theirs fails.
            match self.queue.tag_and_head.compare_exchange_weak(
                word,
                pack(pop_count.wrapping_add(1), head),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.pop_count.set(pop_count.wrapping_add(1));
                    let position = tail.wrapping_sub(1);
                    return Some((position, distance(head, position) as u32));
                }
                Err(current) => word = current,
            }
        }
    }

    #[inline]
    fn pop_fifo(&self) -> Option<(u32, u32)> {
        let tail = self.tail();
        // Relaxed: as in `pop_lifo`.
        let mut word = self.queue.tag_and_head.load(Ordering::Relaxed);
        loop {
            let (last_claim_end, head) = unpack(word);
            if distance(head, tail) <= 0 {
                return None;
            }
            let next = head.wrapping_add(1);
            // Release: as in `pop_lifo`. The tag stays: it is the thieves' record of the last claim.
            match self.queue.tag_and_head.compare_exchange_weak(
                word,
                pack(last_claim_end, next),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some((head, distance(next, tail) as u32)),
                Err(current) => word = current,
            }
        }
    }

    /// Shrinks the buffer once it has been mostly idle for as many pops as it has slots.
    ///
    /// A pop that leaves less than an eighth of the slots in use counts as low; one that leaves at least a
    /// quarter resets the count. When the count reaches the capacity, the buffer halves (and is then at most a
    /// quarter full, so it must double its contents before growing again). Shrinking costs a copy of at most
    /// an eighth of the buffer, paid for by as many pops as it has slots; a deque that keeps refilling, such
    /// as one oscillating between 64 and 256 items or a fork-join deque that drains and refills, keeps its
    /// buffer and never reallocates. crossbeam-deque halves as soon as a pop leaves a quarter, so the same
    /// oscillation reallocates on every round.
    #[inline]
    fn note_pop(&self, remaining: u32) {
        let capacity = self.slots.get().capacity();
        if remaining >= capacity / 4 {
            self.low_pops.set(0);
        } else if remaining < capacity / 8 && capacity > MIN_CAPACITY {
            let low_pops = self.low_pops.get() + 1;
            self.low_pops.set(low_pops);
            if low_pops >= shrink_delay(capacity) {
                self.shrink();
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(feature = "std")]
impl<T> Owner<T> {
    /// Grows the buffer until `wanted` more items fit. Returns `false` at `MAX_CAPACITY`.
    #[cold]
    fn grow(&self, wanted: u32) -> bool {
        let used = self.tail().wrapping_sub(self.refresh_steal_head());
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
        let used = self.tail().wrapping_sub(self.refresh_steal_head());
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
        let (_, head) = unpack(self.queue.tag_and_head.load(Ordering::Relaxed));
        let tail = self.tail();
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
impl<T> Owner<T> {
    fn grow(&self, _wanted: u32) -> bool {
        false
    }

    fn shrink(&self) {}
}

impl<T> core::fmt::Debug for Owner<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("flavor", &self.queue.flavor)
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}
