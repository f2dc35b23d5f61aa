//! A pool of byte buffers in size classes, for I/O and serialisation hot paths.
//!
//! # Algorithm
//!
//! The pool has a few size classes (1, 4, 16 and 64 KiB by default). [`BufferPool::acquire`] picks the
//! smallest class that holds the requested length (a scan of a small sorted array) and pops an idle buffer
//! of that class from its [`Depot`]: the calling thread's cache first (no lock, no atomic read-modify-write),
//! then the depot's sharded shared stacks, and only if both are empty allocates a new one. A request above
//! the largest class gets an unpooled allocation of exactly that size, counted in the stats and freed on
//! release. Buffers are `Box<[MaybeUninit<u8>]>`: a new one is never initialised (like
//! `Vec::with_capacity`), and the safe API only exposes bytes below the length, which were written.
//!
//! [`PooledBuf`] borrows the pool handle (no reference count is touched per acquire) and holds the raw
//! pointer, length, capacity and class, like a `Vec<u8>`: a write is one capacity check and one copy.
//! Past the capacity it grows like a `Vec` so `io::Write` and `BufMut` never fail: the contents move to the
//! smallest class that fits (the old buffer goes back to its class), or above the largest class to an
//! unpooled allocation of at least twice the old capacity. [`PooledBuf::freeze`] hands the buffer to
//! `Bytes::from_owner` together with a clone of the pool's `Arc`, so the `Bytes` are `'static` and the
//! buffer comes back when the last clone drops, on whatever thread.
//!
//! # Idle cap without a read-modify-write per operation
//!
//! Each class counts the buffers it has `allocated` (a Relaxed `fetch_add` on a miss, which allocates
//! anyway); the depot counts those it freed itself (`released`, by a trim). Their difference is the number
//! of buffers the class answers for, idle or in use. A release keeps the buffer if that number is at most
//! `max_idle_per_class` and otherwise frees it, taking it off `allocated` with a CAS, so several threads
//! over the cap at once free one buffer each and no more. Hits and plain releases only *load* the counts,
//! so the hot path has no read-modify-write; the cost is that the cap bounds idle plus in-use buffers
//! (a burst above the cap is served, then freed as it comes back), which bounds idle memory the same way:
//! at most `max_idle_per_class` buffers of each class sit idle, so the pool holds at most
//! `max_idle_per_class * sum(size_classes)` bytes idle (5.4 MiB with the defaults), whatever the number of
//! threads (thread caches count toward the cap).
//!
//! # Orderings
//!
//! * `allocated` is Relaxed everywhere: it guards no data. A thread releasing a buffer happens after the
//!   increment that counted it (it allocated the buffer, or popped it from the depot, whose lock or
//!   thread-local cache orders the pusher before the popper), so it reads that increment or a later value
//!   and never keeps a buffer on a count that misses it.
//! * `released` is read with Acquire (pairs with the depot's Release increment after each buffer it frees),
//!   before `allocated`: every buffer it counts was counted in `allocated` before, so the difference does
//!   not underflow.
//! * The buffers' bytes need no ordering of their own: a buffer moves between threads only through the
//!   depot (its mutexes, or one thread's own cache), through a `Send` of the `PooledBuf`, or through
//!   `Bytes`, whose reference count orders the last drop after every reader.
//! * The oversize counters are Relaxed statistics, changed only on the (allocating) unpooled path.
//!
//! # Zeroing
//!
//! With [`Zeroing::ZeroOnRelease`] (the default) a release first zeroes the bytes that were ever written:
//! up to the highest length the buffer reached while held (a high-water mark updated when the length
//! shrinks, so writes pay nothing for it), not the whole class. Then every idle buffer is zero up to where
//! it was ever written and uninitialised after. Bytes written through [`bytes::BufMut::chunk_mut`] and never
//! committed with `advance_mut` are not counted. Unpooled buffers, buffers freed over the cap and buffers
//! left behind by growth are zeroed too, and the pointer is passed to `black_box` after the `memset` so the
//! compiler cannot drop it as a dead store before the free.
//!
//! # Memory and thread caches
//!
//! Each thread keeps up to `thread_cache` idle buffers per class (default 4); a buffer released on another
//! thread goes to that thread's cache, whose overflow moves to the shared level in batches, where the
//! acquiring thread finds it. [`BufferPool::trim`] frees the shared level and the calling thread's caches at
//! once; other threads' caches free themselves on their next operation (see the depot). Under loom the
//! caches are off so every operation takes the shared path the models check.

mod buf;

use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

pub use buf::PooledBuf;

use crate::BuildError;
use crate::depot::Depot;
use crate::sync::{Arc, AtomicU64, AtomicUsize, Ordering};

/// One buffer's allocation, uninitialised beyond what was written. Boxed so that whatever drops an idle one
/// (a trim, the pool's drop) frees it.
pub(crate) type Block = Box<[MaybeUninit<u8>]>;

/// The class index of a buffer that belongs to no class (above the largest class): freed on release.
const UNPOOLED: usize = usize::MAX;

/// The buffers one class may keep unless the builder says otherwise (idle and in use together).
const DEFAULT_MAX_IDLE_PER_CLASS: usize = 64;

/// The buffers each thread may keep per class, unless the builder says otherwise.
const DEFAULT_THREAD_CACHE: usize = 4;

/// What happens to the bytes of a buffer when it goes back to the pool.
///
/// Pooled buffers often carry data that should not outlive its use: prompts, tokens, keys, personal data.
/// The safe API never exposes bytes past a buffer's length (a fresh [`PooledBuf`] has length 0 and its
/// spare capacity is only reachable as uninitialised memory through [`bytes::BufMut::chunk_mut`]), so stale
/// bytes are reachable only through `unsafe` code that reads uninitialised memory, or in a memory dump or
/// core file. [`Zeroing::ZeroOnRelease`] closes that window too, and is the default; choose
/// [`Zeroing::Never`] when the data is not sensitive and the cost of one `memset` per release matters.
///
/// ```
/// use pools::{BufferPool, Zeroing};
///
/// let pool = BufferPool::builder().zeroing(Zeroing::Never).build()?;
/// # Ok::<(), pools::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Zeroing {
    /// Zero the bytes that were written (up to the highest length the buffer reached, not the whole class)
    /// before the buffer becomes idle or is freed. Costs about as much as writing those bytes once more.
    #[default]
    ZeroOnRelease,
    /// Leave released buffers as they are.
    Never,
}

/// A pool of byte buffers in size classes; a cheap, cloneable handle to shared state.
///
/// [`acquire`](Self::acquire) hands out an empty [`PooledBuf`] whose capacity is the smallest class that
/// holds the requested length; dropping it (or the last clone of the `Bytes` made by
/// [`PooledBuf::freeze`]) gives the buffer back, on any thread. Requests above the largest class get an
/// unpooled buffer of exactly that capacity, freed on release and counted in [`BufferPoolStats`].
///
/// ```
/// use std::io::Write;
///
/// let pool = pools::BufferPool::new(); // classes of 1, 4, 16 and 64 KiB
/// let mut buf = pool.acquire(3000);
/// assert_eq!(buf.capacity(), 4096);
/// write!(buf, "hello {}", 42)?;
/// assert_eq!(&buf[..], b"hello 42");
/// let frozen: bytes::Bytes = buf.freeze(); // goes back to the pool when the last clone drops
/// assert_eq!(frozen, "hello 42");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct BufferPool {
    shared: Arc<Shared>,
}

/// The state every handle, buffer and frozen `Bytes` of one pool share.
pub(crate) struct Shared {
    /// Class sizes, ascending, apart from `classes` so the search touches one small array.
    sizes: Box<[usize]>,
    classes: Box<[SizeClass]>,
    zeroing: Zeroing,
    max_idle_per_class: usize,
    /// Unpooled buffers allocated, and their bytes: changed only on that (allocating) path.
    oversize: AtomicU64,
    oversize_bytes: AtomicU64,
}

/// One size class.
struct SizeClass {
    size: usize,
    /// The idle buffers; it counts hits and misses (pops that found a buffer or none) and the buffers it
    /// freed itself (`trim`).
    idle: Depot<Block>,
    /// Buffers of this class allocated and not freed by `put`: with the depot's `released` subtracted, the
    /// buffers the pool is responsible for (idle plus handed out). Changed only when a buffer is allocated
    /// (a miss) or freed over the cap, never on a hit or a plain release.
    allocated: AtomicUsize,
}

impl BufferPool {
    /// The default size classes: 1, 4, 16 and 64 KiB.
    pub const DEFAULT_SIZE_CLASSES: [usize; 4] = [1024, 4 * 1024, 16 * 1024, 64 * 1024];

    /// A pool with the default classes (1, 4, 16 and 64 KiB), at most 64 buffers per class and
    /// [`Zeroing::ZeroOnRelease`].
    ///
    /// ```
    /// let pool = pools::BufferPool::new();
    /// assert_eq!(pool.acquire(1).capacity(), 1024);
    /// ```
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the default size classes are valid")
    }

    /// A builder to choose the size classes, the idle cap, the zeroing policy and the thread caches.
    ///
    /// ```
    /// use pools::{BufferPool, Zeroing};
    ///
    /// let pool = BufferPool::builder()
    ///     .size_classes(&[512, 8192])
    ///     .max_idle_per_class(16)
    ///     .zeroing(Zeroing::Never)
    ///     .build()?;
    /// assert_eq!(pool.acquire(600).capacity(), 8192);
    /// # Ok::<(), pools::BuildError>(())
    /// ```
    pub fn builder() -> BufferPoolBuilder {
        BufferPoolBuilder::new()
    }

    /// An empty buffer with room for at least `min_len` bytes: the smallest class that holds `min_len`
    /// (`acquire(0)` gives the smallest class), or above the largest class an unpooled buffer of exactly
    /// `min_len` bytes.
    ///
    /// The buffer grows like a `Vec` when written past its capacity, so `min_len` is a hint, not a limit.
    ///
    /// ```
    /// let pool = pools::BufferPool::new();
    /// let buf = pool.acquire(1025);
    /// assert_eq!((buf.len(), buf.capacity()), (0, 4096));
    /// assert_eq!(pool.acquire(100_000).capacity(), 100_000); // above 64 KiB: unpooled
    /// ```
    ///
    /// # Panics
    ///
    /// If the allocator fails, or `min_len` exceeds `isize::MAX` (as `Vec::with_capacity` does).
    #[inline]
    pub fn acquire(&self, min_len: usize) -> PooledBuf<'_> {
        let shared = &*self.shared;
        match shared.class_for(min_len) {
            Some(class) => {
                let (ptr, capacity) = shared.take(class);
                PooledBuf::from_parts(ptr, capacity, class, self)
            }
            None => {
                let ptr = shared.allocate_unpooled(min_len);
                PooledBuf::from_parts(ptr, min_len, UNPOOLED, self)
            }
        }
    }

    /// Counters and the memory held, per class: a moment's picture, exact when no other thread uses the
    /// pool.
    ///
    /// ```
    /// let pool = pools::BufferPool::new();
    /// drop(pool.acquire(10));
    /// drop(pool.acquire(10));
    /// let stats = pool.stats();
    /// assert_eq!((stats.classes[0].misses, stats.classes[0].hits), (1, 1));
    /// assert_eq!(stats.bytes_held, 1024);
    /// ```
    pub fn stats(&self) -> BufferPoolStats {
        let shared = &*self.shared;
        let classes: Vec<SizeClassStats> = shared
            .classes
            .iter()
            .map(|class| {
                let depot = class.idle.stats();
                SizeClassStats {
                    size: class.size,
                    hits: depot.hits,
                    misses: depot.misses,
                    idle: depot.idle,
                    live: class.live(),
                    bytes_held: depot.idle * class.size,
                }
            })
            .collect();
        BufferPoolStats {
            bytes_held: classes.iter().map(|class| class.bytes_held).sum(),
            classes,
            oversize: shared.oversize.load(Ordering::Relaxed),
            oversize_bytes: shared.oversize_bytes.load(Ordering::Relaxed),
        }
    }

    /// Frees the idle buffers and returns the number of bytes released.
    ///
    /// Buffers in use are not affected: they come back (and may be kept) when released. Other threads'
    /// caches (at most `thread_cache` buffers per class each) cannot be touched from here: each frees its
    /// buffers on that thread's next use of the class, or when the pool drops (they are not counted in the
    /// result).
    ///
    /// ```
    /// let pool = pools::BufferPool::new();
    /// drop(pool.acquire(5000)); // one idle 16 KiB buffer
    /// assert_eq!(pool.trim(), 16 * 1024);
    /// assert_eq!(pool.stats().bytes_held, 0);
    /// ```
    pub fn trim(&self) -> usize {
        self.shared
            .classes
            .iter()
            .map(|class| class.idle.trim() * class.size)
            .sum()
    }

    /// The size classes, ascending.
    pub fn size_classes(&self) -> &[usize] {
        &self.shared.sizes
    }

    /// The zeroing policy.
    pub fn zeroing(&self) -> Zeroing {
        self.shared.zeroing
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("size_classes", &self.shared.sizes)
            .field("max_idle_per_class", &self.shared.max_idle_per_class)
            .field("zeroing", &self.shared.zeroing)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The smallest class that holds `len` bytes, if any.
    #[inline]
    fn class_for(&self, len: usize) -> Option<usize> {
        self.sizes.iter().position(|&size| len <= size)
    }

    /// A buffer of class `class`: an idle one, or a new allocation.
    #[inline]
    fn take(&self, class: usize) -> (NonNull<u8>, usize) {
        let size_class = &self.classes[class];
        let block = match size_class.idle.pop() {
            Some(block) => block,
            None => size_class.allocate(),
        };
        (into_raw(block), size_class.size)
    }

    /// An unpooled allocation of `capacity` bytes, counted.
    fn allocate_unpooled(&self, capacity: usize) -> NonNull<u8> {
        self.oversize.fetch_add(1, Ordering::Relaxed);
        self.oversize_bytes
            .fetch_add(capacity as u64, Ordering::Relaxed);
        into_raw(Box::<[u8]>::new_uninit_slice(capacity))
    }

    /// Takes back a buffer: zeroes its written bytes if the policy says so, then keeps it idle or frees it.
    ///
    /// # Safety
    ///
    /// `ptr` and `capacity` come from `into_raw` (through `take` for class `class`, or `allocate_unpooled`
    /// for `UNPOOLED`) of this pool, the buffer is not used afterwards, and its bytes `..written` are
    /// initialised.
    pub(crate) unsafe fn release(
        &self,
        ptr: NonNull<u8>,
        capacity: usize,
        class: usize,
        written: usize,
    ) {
        if self.zeroing == Zeroing::ZeroOnRelease && written > 0 {
            // SAFETY: `written <= capacity` bytes from `ptr` belong to this buffer, which the caller gave up.
            unsafe { ptr::write_bytes(ptr.as_ptr(), 0, written) };
            // The zeroes must reach memory even when the buffer is freed right after: an escaped pointer
            // keeps the compiler from treating those stores as dead.
            core::hint::black_box(ptr);
        }
        // SAFETY: the caller passes what `into_raw` returned for a block of `capacity` bytes.
        let block = unsafe { from_raw(ptr, capacity) };
        if class == UNPOOLED {
            return;
        }
        self.classes[class].put(block, self.max_idle_per_class);
    }
}

impl SizeClass {
    /// A new buffer for this class (the depot has counted the miss).
    #[cold]
    fn allocate(&self) -> Block {
        // Relaxed: a count, not a guard over data (see `put`).
        self.allocated.fetch_add(1, Ordering::Relaxed);
        Box::<[u8]>::new_uninit_slice(self.size)
    }

    /// The buffers the class is responsible for: idle plus handed out (a moment's picture).
    fn live(&self) -> usize {
        // Acquire: pairs with the depot's Release increment after each buffer it frees. Read first, so every
        // buffer it counts was counted in `allocated` before the load below (its allocation happened before
        // it was pushed, popped... and freed), and the difference does not underflow.
        let released = self.idle.released();
        self.allocated
            .load(Ordering::Relaxed)
            .saturating_sub(released)
    }

    /// Keeps `block` idle, unless the class holds more than `cap` buffers: then frees it (dropping `block`).
    #[inline]
    fn put(&self, block: Block, cap: usize) {
        // Relaxed on `allocated`: it is a count, not a guard over data. The releasing thread happens after the
        // increment that counted this buffer (it allocated the buffer, or popped it from the depot, whose
        // push/pop order the pusher before the popper), so it reads that increment or a later value: a buffer
        // is never kept on a count that misses it. Acquire on `released`: see `live`.
        let released = self.idle.released();
        let mut allocated = self.allocated.load(Ordering::Relaxed);
        while allocated.saturating_sub(released) > cap {
            // Only one of several threads over the cap may give up each surplus buffer, hence the CAS.
            match self.allocated.compare_exchange_weak(
                allocated,
                allocated - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return, // `block` is freed here.
                Err(actual) => allocated = actual,
            }
        }
        self.idle.push(block);
    }
}

/// Gives up ownership of a block as a thin pointer (the capacity is kept by the caller).
#[inline]
fn into_raw(block: Block) -> NonNull<u8> {
    let ptr = Box::into_raw(block).cast::<u8>();
    // SAFETY: `Box::into_raw` never returns null.
    unsafe { NonNull::new_unchecked(ptr) }
}

/// Takes back ownership of a block given up by `into_raw`.
///
/// # Safety
///
/// `ptr` was returned by `into_raw` for a block of exactly `capacity` bytes, and is not used afterwards.
#[inline]
unsafe fn from_raw(ptr: NonNull<u8>, capacity: usize) -> Block {
    let slice = ptr::slice_from_raw_parts_mut(ptr.as_ptr().cast::<MaybeUninit<u8>>(), capacity);
    // SAFETY: the caller guarantees `slice` is the pointer `Box::into_raw` returned for this block.
    unsafe { Box::from_raw(slice) }
}

/// Counters and memory of one size class, from [`BufferPool::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SizeClassStats {
    /// The class size in bytes.
    pub size: usize,
    /// Acquires served by an idle buffer.
    pub hits: u64,
    /// Acquires that allocated a new buffer (growth into this class counts too).
    pub misses: u64,
    /// Idle buffers kept.
    pub idle: usize,
    /// Buffers the class is responsible for: idle plus in use (not counting buffers in use that will be freed
    /// on release because the class was over its cap when they came back).
    pub live: usize,
    /// Bytes in idle buffers: `idle * size`, what [`BufferPool::trim`] would release.
    pub bytes_held: usize,
}

/// A picture of a [`BufferPool`]: per-class counters, unpooled allocations and the bytes held idle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BufferPoolStats {
    /// One entry per size class, smallest first.
    pub classes: Vec<SizeClassStats>,
    /// Unpooled buffers allocated since the pool was built (requests and growth above the largest class).
    pub oversize: u64,
    /// Bytes of those unpooled allocations, in total.
    pub oversize_bytes: u64,
    /// Bytes in idle buffers across every class.
    pub bytes_held: usize,
}

/// Configures a [`BufferPool`]; [`build`](Self::build) checks the configuration.
///
/// ```
/// use pools::{BufferPool, BuildError};
///
/// let error = BufferPool::builder().size_classes(&[4096, 1024]).build().unwrap_err();
/// assert!(matches!(error, BuildError::UnsortedSizeClasses { index: 1, .. }));
/// ```
#[derive(Debug, Clone)]
pub struct BufferPoolBuilder {
    size_classes: Vec<usize>,
    max_idle_per_class: usize,
    zeroing: Zeroing,
    thread_cache: usize,
}

impl BufferPoolBuilder {
    fn new() -> Self {
        Self {
            size_classes: BufferPool::DEFAULT_SIZE_CLASSES.to_vec(),
            max_idle_per_class: DEFAULT_MAX_IDLE_PER_CLASS,
            zeroing: Zeroing::default(),
            thread_cache: DEFAULT_THREAD_CACHE,
        }
    }

    /// The class sizes in bytes, ascending, each at least 1 (default: 1, 4, 16 and 64 KiB).
    pub fn size_classes(mut self, sizes: &[usize]) -> Self {
        self.size_classes = sizes.to_vec();
        self
    }

    /// The most buffers one class keeps, idle and in use together (default 64).
    ///
    /// A buffer released while its class holds more is freed, so at most `max` buffers of each class sit
    /// idle and the pool holds at most `max * sum(size_classes)` bytes idle. `0` keeps nothing (every
    /// buffer is freed on release).
    pub fn max_idle_per_class(mut self, max: usize) -> Self {
        self.max_idle_per_class = max;
        self
    }

    /// What happens to a buffer's bytes on release (default [`Zeroing::ZeroOnRelease`]).
    pub fn zeroing(mut self, zeroing: Zeroing) -> Self {
        self.zeroing = zeroing;
        self
    }

    /// Idle buffers each thread may keep per class, taken and returned without a lock or atomic
    /// read-modify-write (default 4; 0 turns thread caches off). They count toward `max_idle_per_class`.
    pub fn thread_cache(mut self, buffers: usize) -> Self {
        self.thread_cache = buffers;
        self
    }

    /// Checks the configuration and builds the pool (nothing is allocated up front).
    ///
    /// # Errors
    ///
    /// [`BuildError::NoSizeClasses`] for an empty list, [`BuildError::ZeroSizeClass`] for a class of 0
    /// bytes, [`BuildError::DuplicateSizeClass`] for a size listed twice, [`BuildError::UnsortedSizeClasses`]
    /// for a list not in ascending order.
    pub fn build(self) -> Result<BufferPool, BuildError> {
        check_size_classes(&self.size_classes)?;
        let classes = self
            .size_classes
            .iter()
            .map(|&size| SizeClass {
                size,
                idle: Depot::new(self.thread_cache),
                allocated: AtomicUsize::new(0),
            })
            .collect();
        Ok(BufferPool {
            shared: Arc::new(Shared {
                sizes: self.size_classes.into_boxed_slice(),
                classes,
                zeroing: self.zeroing,
                max_idle_per_class: self.max_idle_per_class,
                oversize: AtomicU64::new(0),
                oversize_bytes: AtomicU64::new(0),
            }),
        })
    }
}

/// The first mistake in a list of class sizes, if any.
fn check_size_classes(sizes: &[usize]) -> Result<(), BuildError> {
    if sizes.is_empty() {
        return Err(BuildError::NoSizeClasses);
    }
    for (index, &size) in sizes.iter().enumerate() {
        if size == 0 {
            return Err(BuildError::ZeroSizeClass { index });
        }
        let Some(&previous) = index.checked_sub(1).map(|before| &sizes[before]) else {
            continue;
        };
        if size == previous {
            return Err(BuildError::DuplicateSizeClass {
                size,
                first: index - 1,
                second: index,
            });
        }
        if size < previous {
            return Err(BuildError::UnsortedSizeClasses {
                index,
                size,
                previous,
            });
        }
    }
    Ok(())
}
