//! A pool of byte buffers in size classes, for I/O and serialisation hot paths.
//!
//! DESIGN-DOCS-PLACEHOLDER

mod buf;
mod idle;

use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

pub use buf::PooledBuf;
use idle::IdleStore;

use crate::BuildError;
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
    idle: IdleStore,
    /// Buffers of this class the pool is responsible for: idle plus handed out. Changed only when a buffer
    /// is allocated (a miss) or freed (over the cap, or by a trim), never on a hit or a plain release.
    live: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
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
                let idle = class.idle.len();
                SizeClassStats {
                    size: class.size,
                    hits: class.hits.load(Ordering::Relaxed),
                    misses: class.misses.load(Ordering::Relaxed),
                    idle,
                    live: class.live.load(Ordering::Relaxed),
                    bytes_held: idle * class.size,
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
    /// Buffers in use are not affected: they come back (and may be kept) when released.
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
            .map(|class| {
                let freed = class.idle.trim();
                class.live.fetch_sub(freed, Ordering::Relaxed);
                freed * class.size
            })
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
            Some(block) => {
                size_class.hits.fetch_add(1, Ordering::Relaxed);
                block
            }
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
    /// A new buffer for this class: counted in `live` and as a miss.
    #[cold]
    fn allocate(&self) -> Block {
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::Relaxed);
        Box::<[u8]>::new_uninit_slice(self.size)
    }

    /// Keeps `block` idle, unless the class holds more than `cap` buffers: then frees it (dropping `block`).
    #[inline]
    fn put(&self, block: Block, cap: usize) {
        // Relaxed: `live` is a count, not a guard over data. The releasing thread happens after the
        // increment that counted this buffer (it allocated it, or took it from the store, which orders the
        // releaser before the taker), so it sees that increment or a later value.
        let mut live = self.live.load(Ordering::Relaxed);
        while live > cap {
            // Only one of several threads over the cap may give up each surplus buffer, hence the CAS.
            match self.live.compare_exchange_weak(
                live,
                live - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => live = actual,
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
                idle: IdleStore::new(self.thread_cache),
                live: AtomicUsize::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
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
