//! Symbol → string: a segmented array of `(pointer, length)` entries that grows without moving an entry.
//!
//! Segment `k` holds `FIRST_SEGMENT << k` entries, so the segments double in size and the entry at index
//! `i` lives in segment `floor(log2(i + FIRST_SEGMENT)) - log2(FIRST_SEGMENT)`: one `leading_zeros`, two
//! shifts and a subtraction. A segment is allocated (zeroed) by the writer when the first index in it is
//! pushed and freed only when the interner drops, so a reader that found an entry can keep reading it.
//!
//! `len` is the publication point: the writer fills the entry, then stores `len = index + 1` with Release;
//! a reader loads `len` with Acquire and reads only entries below it. The segment pointer itself is stored
//! and loaded Relaxed: a reader reaches it only after an Acquire that synchronizes with a Release the writer
//! made *after* storing the pointer (`len` here, or a hash-table slot in `table.rs`), so happens-before
//! already makes the non-null pointer the one it sees; a second Acquire would pay for nothing.

use core::ptr;

use crate::sync::{AtomicPtr, AtomicU32, Ordering, UnsafeCell};

/// log2 of the number of entries in the first segment (32 entries, 512 bytes on 64-bit targets; 2 under
/// loom, so a model crosses segments after a few strings).
#[cfg(not(loom))]
pub(super) const FIRST_SEGMENT_BITS: u32 = 5;
#[cfg(loom)]
pub(super) const FIRST_SEGMENT_BITS: u32 = 1;

/// Enough segments for every index below `u32::MAX`: index `i` is in segment
/// `floor(log2(i + 2^F)) - F`, and `i + 2^F < 2^33`.
const SEGMENTS: usize = (33 - FIRST_SEGMENT_BITS) as usize;

/// Where one string lives: a pointer into the arena (or a dangling one for the empty string) and a length.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) ptr: *const u8,
    pub(super) len: usize,
}

impl Entry {
    const EMPTY: Entry = Entry {
        ptr: ptr::null(),
        len: 0,
    };
}

/// The segment and the offset in it of entry `index`.
#[inline(always)]
fn locate(index: u32) -> (usize, usize) {
    let position = u64::from(index) + (1u64 << FIRST_SEGMENT_BITS);
    let top_bit = 63 - position.leading_zeros();
    let segment = (top_bit - FIRST_SEGMENT_BITS) as usize;
    let offset = (position - (1u64 << top_bit)) as usize;
    (segment, offset)
}

/// The number of entries of segment `segment`.
fn segment_len(segment: usize) -> usize {
    1usize
        .checked_shl(segment as u32 + FIRST_SEGMENT_BITS)
        .expect("a symbol segment larger than the address space")
}

/// The entries of every interned string, by index (`Symbol::index`).
#[derive(Debug)]
pub(super) struct Entries {
    /// The number of published entries.
    len: AtomicU32,
    /// Segment `k` points at `segment_len(k)` cells, or is null until the writer first needs it.
    segments: [AtomicPtr<UnsafeCell<Entry>>; SEGMENTS],
}

impl Entries {
    pub(super) fn new() -> Self {
        Self {
            len: AtomicU32::new(0),
            segments: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    /// The number of published entries, with no ordering: a count, not a licence to read entries.
    #[inline]
    pub(super) fn len_relaxed(&self) -> u32 {
        self.len.load(Ordering::Relaxed)
    }

    /// The number of published entries; every entry below it may be read by this thread.
    #[inline(always)]
    pub(super) fn len_acquire(&self) -> u32 {
        // Acquire: pairs with the Release store in `push`, so the entries below the loaded length (and the
        // arena bytes they point to, written before them) are visible to this thread.
        self.len.load(Ordering::Acquire)
    }

    /// Reads entry `index`.
    ///
    /// # Safety
    ///
    /// Entry `index` is published to this thread: the thread loaded with Acquire a `len` above `index`
    /// ([`len_acquire`](Self::len_acquire)), or a hash-table slot naming it, or got the index through another
    /// happens-before chain from the writer's `push`.
    #[inline(always)]
    pub(super) unsafe fn get(&self, index: u32) -> Entry {
        let (segment, offset) = locate(index);
        // Relaxed: the caller's Acquire (of `len`, or of a table slot stored after `push`) synchronized with
        // a Release the writer made after storing this pointer, so this load sees it (see the module docs).
        let base = self.segments[segment].load(Ordering::Relaxed);
        // Checked in debug builds and under loom, where a model that breaks the ordering chain shows up as
        // this panic rather than a crash.
        if cfg!(any(debug_assertions, loom)) {
            assert!(
                !base.is_null(),
                "entry {index} read before it was published"
            );
        }
        // SAFETY: the segment was allocated with `segment_len(segment)` cells and `offset` is below that
        // (`locate`); segments are freed only by `drop`, which has `&mut self`. The cell was written before
        // it was published (caller's contract) and is never written again while `&self` is shared, so this
        // read races with no write.
        unsafe { (*base.add(offset)).with(|entry| entry.read()) }
    }

    /// Appends an entry and publishes it; returns its index.
    ///
    /// # Safety
    ///
    /// Calls are serialized (the interner's writer lock), and `len_relaxed() < u32::MAX`.
    pub(super) unsafe fn push(&self, entry: Entry) -> u32 {
        // Relaxed: only `push` stores `len`, and the caller's lock orders this call after the previous one.
        let index = self.len.load(Ordering::Relaxed);
        let (segment, offset) = locate(index);
        // Relaxed: only `push` stores segment pointers (see above).
        let mut base = self.segments[segment].load(Ordering::Relaxed);
        if base.is_null() {
            base = allocate_segment(segment);
            // Relaxed: published by the Release store of `len` below (and, for lookups, by the Release store
            // of the table slot that follows it); see the module docs.
            self.segments[segment].store(base, Ordering::Relaxed);
        }
        // SAFETY: `offset < segment_len(segment)` (`locate`). No reader reads cell `index` before the `len`
        // store below publishes it, and writers are serialized, so this write is the only access.
        unsafe { (*base.add(offset)).with_mut(|cell| cell.write(entry)) };
        // Release: pairs with the Acquire in `len_acquire` (and, through the table slot stored after it, with
        // the Acquire of slot loads): a reader that sees `index + 1` sees the entry written above.
        self.len.store(index + 1, Ordering::Release);
        index
    }

    /// Points the entries from `first` on that lie in `old_start..old_start + old_len` at the same offset
    /// from `new_start` (the arena moved a chunk while trimming it).
    ///
    /// # Safety
    ///
    /// `new_start..new_start + old_len` holds a copy of the bytes that were at `old_start` (the old range may
    /// already be freed: only its address is compared).
    pub(super) unsafe fn rebase(
        &mut self,
        first: u32,
        old_start: usize,
        old_len: usize,
        new_start: *const u8,
    ) {
        for index in first..self.len_relaxed() {
            let (segment, offset) = locate(index);
            let base = self.segments[segment].load(Ordering::Relaxed);
            // SAFETY: the entry is below `len`, so its segment is allocated and `offset` is in it; `&mut self`
            // excludes every other access.
            unsafe {
                (*base.add(offset)).with_mut(|cell| {
                    let distance = (*cell).ptr.addr().wrapping_sub(old_start);
                    if distance < old_len {
                        // SAFETY: `distance < old_len`, the length of the copy at `new_start`.
                        (*cell).ptr = new_start.add(distance);
                    }
                });
            }
        }
    }

    /// The bytes held by allocated segments.
    pub(super) fn bytes(&self) -> usize {
        (0..SEGMENTS)
            .filter(|&segment| !self.segments[segment].load(Ordering::Relaxed).is_null())
            .map(|segment| segment_len(segment) * size_of::<UnsafeCell<Entry>>())
            .sum()
    }

    /// Allocates every segment needed to hold `count` entries without allocating again.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push): calls are serialized with pushes (`&mut self` would do; the constructor
    /// calls it before sharing).
    pub(super) unsafe fn reserve(&self, count: usize) {
        let Some(last) = count.checked_sub(1) else {
            return;
        };
        let last = u32::try_from(last).unwrap_or(u32::MAX - 1);
        for segment in 0..=locate(last).0 {
            // Relaxed: see `push`.
            if self.segments[segment].load(Ordering::Relaxed).is_null() {
                let base = allocate_segment(segment);
                self.segments[segment].store(base, Ordering::Relaxed);
            }
        }
    }
}

fn allocate_segment(segment: usize) -> *mut UnsafeCell<Entry> {
    let cells: Box<[UnsafeCell<Entry>]> = (0..segment_len(segment))
        .map(|_| UnsafeCell::new(Entry::EMPTY))
        .collect();
    Box::into_raw(cells).cast::<UnsafeCell<Entry>>()
}

impl Drop for Entries {
    fn drop(&mut self) {
        for (segment, pointer) in self.segments.iter_mut().enumerate() {
            let base = pointer.load(Ordering::Relaxed);
            if !base.is_null() {
                // SAFETY: `base` came from `Box::into_raw` of a boxed slice of `segment_len(segment)` cells in
                // `allocate_segment`, and is freed once, here; `&mut self` means no reader is left.
                drop(unsafe {
                    Box::from_raw(ptr::slice_from_raw_parts_mut(base, segment_len(segment)))
                });
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn locate_walks_segments_in_order() {
        let mut expected = (0, 0);
        for index in 0..5_000u32 {
            assert_eq!(locate(index), expected, "index {index}");
            expected.1 += 1;
            if expected.1 == segment_len(expected.0) {
                expected = (expected.0 + 1, 0);
            }
        }
        let (segment, offset) = locate(u32::MAX - 1);
        assert!(segment < SEGMENTS);
        assert!(offset < segment_len(segment));
    }
}
