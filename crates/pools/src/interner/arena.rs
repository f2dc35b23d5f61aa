//! The strings' bytes: append-only chunks that never move or free while the interner is shared.
//!
//! Small strings are copied one after another into the *current* chunk; when one does not fit, a new chunk
//! becomes current (1 KiB, then twice the previous size, up to 64 KiB) and the old one keeps its unused
//! tail. A string longer than a quarter of the largest chunk (16 KiB) gets a chunk of its own, sized
//! exactly, and the current chunk stays current: so no chunk wastes more than 16 KiB, and one long string
//! does not make the arena double. The empty string takes no bytes (its pointer is dangling, never read).
//!
//! Only the writer (holding the interner's lock) appends, and it writes a string's bytes before it
//! publishes the entry that points at them, so readers never see bytes being written. Chunks are freed only
//! by `drop`; [`Arena::shrink_current`] (from `Interner::trim`, which has `&mut self`) may move the current
//! chunk, and its caller repoints the entries.

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use std::alloc;

/// The first chunk's size (8 bytes under loom, so models cross chunks).
#[cfg(not(loom))]
pub(super) const FIRST_CHUNK_SIZE: usize = 1024;
#[cfg(loom)]
pub(super) const FIRST_CHUNK_SIZE: usize = 8;

/// The size chunks stop doubling at (16 bytes under loom).
#[cfg(not(loom))]
pub(super) const MAX_CHUNK_SIZE: usize = 64 * 1024;
#[cfg(loom)]
pub(super) const MAX_CHUNK_SIZE: usize = 16;

/// Strings longer than this get a chunk of their own.
pub(super) const OWN_CHUNK_ABOVE: usize = MAX_CHUNK_SIZE / 4;

/// One allocation of `capacity` bytes.
#[derive(Debug)]
struct Chunk {
    start: NonNull<u8>,
    capacity: usize,
}

impl Chunk {
    fn layout(capacity: usize) -> Layout {
        Layout::array::<u8>(capacity).expect("a string longer than isize::MAX bytes")
    }
}

/// The chunk small strings are appended to.
#[derive(Debug)]
struct Current {
    /// Its position in `Arena::chunks`.
    chunk: usize,
    /// Bytes used from its start.
    used: usize,
    /// The index (`Symbol::index`) of the first string put in it: no earlier string points into it.
    first_index: u32,
}

/// A chunk that [`Arena::shrink_current`] moved: the entries pointing into the old range must follow it.
#[derive(Debug)]
pub(super) struct Moved {
    /// No string before this index is in the chunk.
    pub(super) first_index: u32,
    /// The old start address (freed: compare it, never read through it).
    pub(super) old_start: usize,
    /// The bytes that moved.
    pub(super) len: usize,
    /// Where they are now.
    pub(super) new_start: *const u8,
}

/// Append-only storage for the bytes of interned strings.
#[derive(Debug)]
pub(super) struct Arena {
    /// Every chunk, in allocation order.
    chunks: Vec<Chunk>,
    current: Option<Current>,
    /// The size of the next current chunk.
    next_chunk_size: usize,
    /// The sum of the chunks' capacities.
    held: usize,
}

// SAFETY: the arena owns its chunks (plain bytes, no thread affinity); the raw pointers only stand in for
// owned allocations, so moving the arena to another thread moves that ownership with it.
unsafe impl Send for Arena {}

impl Arena {
    pub(super) const fn new() -> Self {
        Self {
            chunks: Vec::new(),
            current: None,
            next_chunk_size: FIRST_CHUNK_SIZE,
            held: 0,
        }
    }

    /// Copies `bytes` into the arena and returns where they are; `index` is the symbol index they belong to.
    ///
    /// The bytes stay at that address until the arena drops or [`shrink_current`](Self::shrink_current)
    /// reports that it moved them.
    pub(super) fn alloc(&mut self, bytes: &[u8], index: u32) -> *const u8 {
        let len = bytes.len();
        if len == 0 {
            return NonNull::<u8>::dangling().as_ptr();
        }
        let dest = if len > OWN_CHUNK_ABOVE {
            self.push_chunk(len).as_ptr()
        } else {
            let fits = self
                .current
                .as_ref()
                .is_some_and(|current| self.chunks[current.chunk].capacity - current.used >= len);
            if !fits {
                let size = self.next_chunk_size.max(len);
                self.next_chunk_size = (self.next_chunk_size * 2).min(MAX_CHUNK_SIZE);
                self.push_chunk(size);
                self.current = Some(Current {
                    chunk: self.chunks.len() - 1,
                    used: 0,
                    first_index: index,
                });
            }
            let current = self
                .current
                .as_mut()
                .expect("a current chunk was just made");
            let chunk = &self.chunks[current.chunk];
            // SAFETY: `used + len <= capacity` (checked above, or a fresh chunk of at least `len` bytes), so
            // the pointer stays inside the chunk's allocation.
            let dest = unsafe { chunk.start.as_ptr().add(current.used) };
            current.used += len;
            dest
        };
        // SAFETY: `dest` has `len` bytes of this arena's memory that nothing else points at yet (they are past
        // every earlier string), and `bytes` is another allocation, so the ranges do not overlap.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), dest, len) };
        dest
    }

    /// Allocates a chunk of `capacity > 0` bytes and records it.
    fn push_chunk(&mut self, capacity: usize) -> NonNull<u8> {
        let layout = Chunk::layout(capacity);
        // SAFETY: `layout` has a non-zero size (callers pass `capacity > 0`).
        let start = unsafe { alloc::alloc(layout) };
        let start = NonNull::new(start).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        self.chunks.push(Chunk { start, capacity });
        self.held += capacity;
        start
    }

    /// Gives back the unused tail of the current chunk, which stops being current (the next small string
    /// opens a new chunk). Returns where its bytes went if the allocator moved them.
    ///
    /// `&mut self` is not enough on its own: the caller must hold no reference into the chunk, which
    /// `Interner::trim` ensures by taking `&mut Interner`.
    pub(super) fn shrink_current(&mut self) -> Option<Moved> {
        let current = self.current.take()?;
        let chunk = &mut self.chunks[current.chunk];
        debug_assert!(
            current.used > 0,
            "a chunk becomes current with a string in it"
        );
        if current.used == chunk.capacity {
            return None;
        }
        let old_start = chunk.start;
        // SAFETY: the chunk was allocated by `push_chunk` with `Chunk::layout(chunk.capacity)` (shrinking
        // keeps the capacity field in step), and `current.used` is non-zero and fits in `isize`.
        let new_start = unsafe {
            alloc::realloc(
                old_start.as_ptr(),
                Chunk::layout(chunk.capacity),
                current.used,
            )
        };
        let new_start = NonNull::new(new_start)
            .unwrap_or_else(|| alloc::handle_alloc_error(Chunk::layout(current.used)));
        self.held -= chunk.capacity - current.used;
        chunk.start = new_start;
        chunk.capacity = current.used;
        (new_start != old_start).then(|| Moved {
            first_index: current.first_index,
            old_start: old_start.as_ptr().addr(),
            len: current.used,
            new_start: new_start.as_ptr(),
        })
    }

    /// The bytes held by chunks (used or not).
    pub(super) fn bytes(&self) -> usize {
        self.held
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for chunk in &self.chunks {
            // SAFETY: allocated by `push_chunk` (or resized by `shrink_current`) with this layout, and freed
            // once, here; the arena drops with the interner, when no string borrowed from it is left.
            unsafe { alloc::dealloc(chunk.start.as_ptr(), Chunk::layout(chunk.capacity)) };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Reads back a string the arena stored.
    fn read(ptr: *const u8, len: usize) -> Vec<u8> {
        // SAFETY: the tests pass pointers returned by `alloc` for `len` bytes, while the arena lives.
        unsafe { core::slice::from_raw_parts(ptr, len) }.to_vec()
    }

    #[test]
    fn small_strings_share_chunks_and_long_ones_get_their_own() {
        let mut arena = Arena::new();
        let small = [b'a'; 100];
        let first = arena.alloc(&small, 0);
        let second = arena.alloc(&small, 1);
        assert_eq!(
            second.addr() - first.addr(),
            100,
            "consecutive in one chunk"
        );
        assert_eq!(arena.bytes(), FIRST_CHUNK_SIZE);

        let long = vec![b'z'; OWN_CHUNK_ABOVE + 1];
        let own = arena.alloc(&long, 2);
        assert_eq!(arena.bytes(), FIRST_CHUNK_SIZE + long.len());
        let third = arena.alloc(&small, 3);
        assert_eq!(
            third.addr() - first.addr(),
            200,
            "the long string left the current chunk alone"
        );

        // Fill the first chunk: the next string opens a chunk twice as large.
        let rest = FIRST_CHUNK_SIZE - 300;
        arena.alloc(&vec![b'r'; rest], 4);
        let next = arena.alloc(b"x", 5);
        assert_eq!(arena.bytes(), 3 * FIRST_CHUNK_SIZE + long.len());

        assert_eq!(read(first, 100), small);
        assert_eq!(read(own, long.len()), long);
        assert_eq!(read(next, 1), b"x");
        assert_eq!(arena.alloc(b"", 6), NonNull::<u8>::dangling().as_ptr());
    }

    #[test]
    fn shrink_current_keeps_the_bytes() {
        let mut arena = Arena::new();
        arena.alloc(b"hello", 0);
        let world = arena.alloc(b"world", 1);
        let moved = arena.shrink_current();
        assert_eq!(arena.bytes(), 10);
        let world = match moved {
            Some(moved) => {
                assert_eq!((moved.first_index, moved.len), (0, 10));
                // SAFETY: `world` was 5 bytes into the moved chunk.
                unsafe { moved.new_start.add(world.addr() - moved.old_start) }
            }
            None => world,
        };
        assert_eq!(read(world, 5), b"world");
        assert!(
            arena.shrink_current().is_none(),
            "nothing is current any more"
        );
        arena.alloc(b"again", 2);
        assert_eq!(arena.bytes(), 10 + 2 * FIRST_CHUNK_SIZE);
    }
}
