//! [`PooledBuf`], the buffer a [`BufferPool`] hands out, and the owner behind [`PooledBuf::freeze`].

use core::fmt;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};
use core::slice;
use std::io;

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes};

use super::{BufferPool, Shared, UNPOOLED};
use crate::sync::Arc;

/// A byte buffer from a [`BufferPool`]; goes back to the pool when dropped.
///
/// It behaves like a `Vec<u8>` that only appends: it derefs to the bytes written so far, and writes through
/// [`io::Write`], [`BufMut`] or [`extend_from_slice`](Self::extend_from_slice) never fail: past the
/// capacity the contents move to the next class that fits (the old buffer goes back to the pool), or above
/// the largest class to an unpooled buffer that grows by doubling. [`freeze`](Self::freeze) turns it into
/// `Bytes` without copying.
///
/// ```
/// use bytes::BufMut;
///
/// let pool = pools::BufferPool::new();
/// let mut buf = pool.acquire(16);
/// buf.put_u32(0xdead_beef);
/// buf.extend_from_slice(b"!");
/// assert_eq!(&buf[..], &[0xde, 0xad, 0xbe, 0xef, b'!']);
/// buf.extend_from_slice(&[0; 2000]); // past 1 KiB: moves to the 4 KiB class
/// assert_eq!((buf.len(), buf.capacity()), (2005, 4096));
/// ```
pub struct PooledBuf<'pool> {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
    /// The highest `len` reached before the last decrease of `len` (see `written`): with `len`, bounds the
    /// bytes `Zeroing::ZeroOnRelease` must clear, without a branch on every write.
    high_water: usize,
    /// Index of the buffer's class, or `UNPOOLED`.
    class: usize,
    pool: &'pool BufferPool,
}

// SAFETY: a `PooledBuf` owns its allocation exclusively (nothing else has the pointer until it is released),
// like a `Vec<u8>`; the pool it borrows is `Sync`, and releasing on another thread is part of the design.
unsafe impl Send for PooledBuf<'_> {}
// SAFETY: `&PooledBuf` only reads the bytes (`Deref`, `len`, ...); every mutation takes `&mut self`.
unsafe impl Sync for PooledBuf<'_> {}

impl<'pool> PooledBuf<'pool> {
    #[inline]
    pub(super) fn from_parts(
        ptr: NonNull<u8>,
        capacity: usize,
        class: usize,
        pool: &'pool BufferPool,
    ) -> Self {
        Self {
            ptr,
            len: 0,
            capacity,
            high_water: 0,
            class,
            pool,
        }
    }

    /// The number of bytes written.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written (or everything was cleared).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes the buffer holds without growing: its class size, or the unpooled allocation's size.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets the contents (the capacity stays).
    ///
    /// ```
    /// let pool = pools::BufferPool::new();
    /// let mut buf = pool.acquire(0);
    /// buf.extend_from_slice(b"abc");
    /// buf.clear();
    /// assert!(buf.is_empty());
    /// ```
    #[inline]
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Shortens the contents to `len` bytes; does nothing if they are already that short.
    ///
    /// ```
    /// let pool = pools::BufferPool::new();
    /// let mut buf = pool.acquire(0);
    /// buf.extend_from_slice(b"abcdef");
    /// buf.truncate(2);
    /// assert_eq!(&buf[..], b"ab");
    /// ```
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.high_water = self.written();
            self.len = len;
        }
    }

    /// Appends `data`, growing the buffer if needed.
    #[inline]
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        if data.len() > self.capacity - self.len {
            self.grow(data.len());
        }
        // SAFETY: after the check (and growth) `len + data.len() <= capacity`, so the destination lies in
        // this buffer's allocation, which `data` (a shared borrow, while we hold `&mut self`) cannot overlap.
        unsafe {
            ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(self.len), data.len());
        }
        self.len += data.len();
    }

    /// Makes room for at least `additional` more bytes (the next class that fits, or unpooled memory).
    ///
    /// ```
    /// let pool = pools::BufferPool::new();
    /// let mut buf = pool.acquire(0);
    /// buf.reserve(5000);
    /// assert_eq!(buf.capacity(), 16 * 1024);
    /// ```
    ///
    /// # Panics
    ///
    /// If the new capacity would exceed `isize::MAX` bytes, or the allocator fails.
    #[inline]
    pub fn reserve(&mut self, additional: usize) {
        if additional > self.capacity - self.len {
            self.grow(additional);
        }
    }

    /// Turns the buffer into `Bytes` without copying; the buffer goes back to the pool when the last clone
    /// of those `Bytes` drops, on whatever thread that is. An empty buffer goes back at once.
    ///
    /// ```
    /// let pool = pools::BufferPool::new();
    /// let mut buf = pool.acquire(0);
    /// buf.extend_from_slice(b"reply");
    /// let bytes = buf.freeze();
    /// let clone = bytes.clone();
    /// drop(bytes);
    /// assert_eq!(pool.stats().classes[0].idle, 0); // `clone` still holds the buffer
    /// drop(clone);
    /// assert_eq!(pool.stats().classes[0].idle, 1);
    /// ```
    pub fn freeze(self) -> Bytes {
        if self.len == 0 {
            return Bytes::new(); // `self` drops here and the buffer goes back now.
        }
        let this = ManuallyDrop::new(self);
        Bytes::from_owner(FrozenBuf {
            ptr: this.ptr,
            len: this.len,
            capacity: this.capacity,
            high_water: this.high_water,
            class: this.class,
            pool: Arc::clone(this.pool.shared()),
        })
    }

    /// The bytes that may hold data: the highest length reached.
    #[inline]
    fn written(&self) -> usize {
        self.high_water.max(self.len)
    }

    /// Moves the contents to a buffer with room for `additional` more bytes.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, additional: usize) {
        let required = self
            .len
            .checked_add(additional)
            .filter(|&required| required <= isize::MAX as usize)
            .expect("PooledBuf capacity overflow");
        let shared = &**self.pool.shared();
        let (ptr, capacity, class) = match shared.class_for(required) {
            Some(class) => {
                let (ptr, capacity) = shared.take(class);
                (ptr, capacity, class)
            }
            None => {
                // Above the largest class: double like `Vec`, so appending byte by byte stays amortised O(1).
                let capacity =
                    required.max(self.capacity.saturating_mul(2).min(isize::MAX as usize));
                (shared.allocate_unpooled(capacity), capacity, UNPOOLED)
            }
        };
        // SAFETY: `self.len <= required <= capacity` bytes fit the new allocation, the old one holds `len`
        // initialised bytes, and the two are distinct allocations.
        unsafe { ptr::copy_nonoverlapping(self.ptr.as_ptr(), ptr.as_ptr(), self.len) };
        let old = (self.ptr, self.capacity, self.class, self.written());
        self.ptr = ptr;
        self.capacity = capacity;
        self.class = class;
        self.high_water = self.len;
        // SAFETY: the old buffer came from this pool with this capacity and class, `self` no longer refers
        // to it, and its first `written` bytes were initialised by writes.
        unsafe { shared.release(old.0, old.1, old.2, old.3) };
    }
}

impl Drop for PooledBuf<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the buffer came from this pool with this capacity and class, is dropped with `self`, and
        // its bytes `..written()` were initialised by writes.
        unsafe {
            self.pool
                .shared()
                .release(self.ptr, self.capacity, self.class, self.written());
        }
    }
}

impl Deref for PooledBuf<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of the allocation are initialised, and `&self` keeps them unchanged.
        unsafe { slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for PooledBuf<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for PooledBuf<'_> {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for PooledBuf<'_> {
    #[inline]
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for PooledBuf<'_> {
    /// Shows the length and capacity, never the contents (they may be secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("pooled", &(self.class != UNPOOLED))
            .finish()
    }
}

impl io::Write for PooledBuf<'_> {
    /// Appends all of `data` (growing as needed) and returns its length: never fails.
    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.extend_from_slice(data);
        Ok(data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }

    fn write_vectored(&mut self, data: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let total = data.iter().map(|slice| slice.len()).sum();
        self.reserve(total);
        for slice in data {
            self.extend_from_slice(slice);
        }
        Ok(total)
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// SAFETY: `remaining_mut`, `chunk_mut` and `advance_mut` describe the same spare capacity: `chunk_mut`
// returns `capacity - len` writable bytes right after the contents, and `advance_mut` only accepts counts
// within them, as `BufMut` requires.
unsafe impl BufMut for PooledBuf<'_> {
    #[inline]
    fn remaining_mut(&self) -> usize {
        // Like `Vec<u8>`: the buffer grows, so only the address space limits it.
        isize::MAX as usize - self.len
    }

    /// # Panics
    ///
    /// If `count` exceeds the spare capacity (what `chunk_mut` returned).
    #[inline]
    unsafe fn advance_mut(&mut self, count: usize) {
        let spare = self.capacity - self.len;
        assert!(
            count <= spare,
            "advance_mut({count}) past the end of the spare capacity ({spare} bytes)"
        );
        self.len += count;
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        if self.len == self.capacity {
            self.grow(64); // Like `Vec<u8>`: never hand out an empty chunk.
        }
        // SAFETY: `len < capacity` bytes lie in this buffer's allocation, and `&mut self` makes them ours.
        unsafe {
            UninitSlice::from_raw_parts_mut(
                self.ptr.as_ptr().add(self.len),
                self.capacity - self.len,
            )
        }
    }

    #[inline]
    fn put<T: Buf>(&mut self, mut src: T)
    where
        Self: Sized,
    {
        self.reserve(src.remaining());
        while src.has_remaining() {
            let chunk = src.chunk();
            let count = chunk.len();
            self.extend_from_slice(chunk);
            src.advance(count);
        }
    }

    #[inline]
    fn put_slice(&mut self, src: &[u8]) {
        self.extend_from_slice(src);
    }

    #[inline]
    fn put_bytes(&mut self, value: u8, count: usize) {
        self.reserve(count);
        // SAFETY: after `reserve`, `len + count <= capacity` bytes lie in this buffer's allocation.
        unsafe { ptr::write_bytes(self.ptr.as_ptr().add(self.len), value, count) };
        self.len += count;
    }
}

/// The owner behind a frozen buffer's `Bytes`: gives the buffer back to its pool when `Bytes` drops it.
struct FrozenBuf {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
    high_water: usize,
    class: usize,
    pool: Arc<Shared>,
}

// SAFETY: the owner holds its allocation exclusively and only reads it; the pool's state is `Send + Sync`.
unsafe impl Send for FrozenBuf {}
// SAFETY: shared access only reads the bytes `..len`, which nothing writes any more.
unsafe impl Sync for FrozenBuf {}

impl AsRef<[u8]> for FrozenBuf {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were initialised before the freeze and are never written again.
        unsafe { slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for FrozenBuf {
    fn drop(&mut self) {
        // SAFETY: the frozen buffer came from this pool with this capacity and class, nothing refers to it
        // once `Bytes` drops its owner, and its first `max(high_water, len)` bytes were written.
        unsafe {
            self.pool.release(
                self.ptr,
                self.capacity,
                self.class,
                self.high_water.max(self.len),
            );
        }
    }
}
