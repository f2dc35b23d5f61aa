//! [`ObjectPool`]: reuse objects that are costly to build, with a per-thread cache on the hot path.
//!
//! # Design
//!
//! Idle objects live in a [`Depot`] as `Box<T>` (so a large object is never copied on get or return): a
//! per-thread cache in front of sharded mutex-protected stacks (see the depot's docs for the algorithm,
//! its memory bounds and how `trim` reaches other threads' caches). A get that hits the calling thread's
//! cache and the matching return take no lock and do no atomic read-modify-write: the return reads two
//! counters (Relaxed loads) to check the capacity, and the cache stores its length and hit count.
//!
//! # Capacity
//!
//! The pool counts the objects it is responsible for: `live` = idle + handed out (a [`Pooled`] not yet
//! dropped); a detached object leaves the count. The counter `live_raw` is changed by read-modify-writes
//! only when an object is created, discarded or detached, never on a hit or a plain return; objects that the
//! depot drops itself (trim) are subtracted through [`Depot::released`]. So `live = live_raw - released`.
//!
//! * [`ObjectPool::try_get`] creates only while `live < capacity`: it reserves a place with a
//!   compare-and-swap on `live_raw` before creating. The CAS is Acquire: it pairs with the Release
//!   decrement that follows the drop of a discarded object, and the Acquire load of `released` pairs with
//!   the Release increment that follows a trimmed object's drop, so a replacement is created only after the
//!   object it replaces has finished dropping: at most `capacity` objects exist because of `try_get`.
//! * [`ObjectPool::get`] always succeeds and may create beyond `capacity` (it counts the object after
//!   `create` returns, with a Relaxed increment: nothing waits on it).
//! * On return, after the reset hook, an object is discarded while `live > capacity`, claimed with a CAS
//!   (Relaxed: the decrement precedes no drop that another thread waits for) so that two threads returning
//!   at once never both discard the last surplus object. Hence objects become idle only while
//!   `live <= capacity`, and `idle <= capacity`.
//!
//! Thread caches are private: an object idle in thread A's cache is invisible to thread B, so `try_get` on
//! B may return `None` (and `get` on B may create) while A's cache holds idle objects. With
//! `thread_cache(0)` every idle object is visible to every thread, and `try_get` returns `None` only when
//! `live == capacity` and none is idle (up to races with concurrent returns): use that for small pools of
//! scarce objects (connections, sessions). The default cache is `min(16, capacity)` objects per thread.
//!
//! # Reentrancy and panics
//!
//! `create`, `reset` and `T::drop` are user code and may use the same pool on the same thread (an object
//! may hold a [`Pooled`] of its own pool): the pool never holds a lock or a cache borrow while they run. If
//! `create` panics nothing is counted (a `try_get` reservation is given back); if `reset` panics the object
//! is counted as discarded and dropped during unwinding, and the panic continues out of `Pooled`'s drop.

use std::fmt;
use std::mem::{self, ManuallyDrop};
use std::ops::{Deref, DerefMut};

use crate::depot::{Depot, Origin};
use crate::error::BuildError;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};

type Create<T> = Box<dyn Fn() -> T + Send + Sync>;
type Reset<T> = Box<dyn Fn(&mut T) -> bool + Send + Sync>;

/// A pool of reusable objects of type `T`, shared by reference between threads.
///
/// ```
/// use pools::ObjectPool;
///
/// let pool = ObjectPool::builder(|| Vec::<u8>::with_capacity(4096))
///     .capacity(64)
///     .reset(|buffer| {
///         buffer.clear();
///         buffer.capacity() <= 1 << 20 // discard buffers that grew too large
///     })
///     .build()?;
///
/// let mut buffer = pool.get();
/// buffer.extend_from_slice(b"hello");
/// drop(buffer); // cleared and kept for the next `get`
///
/// let buffer = pool.get();
/// assert!(buffer.is_empty() && buffer.capacity() >= 4096);
/// assert_eq!(pool.stats().created, 1);
/// # Ok::<(), pools::BuildError>(())
/// ```
///
/// Capacity: `try_get` creates only while fewer than `capacity` objects are live (idle or lent out), `get`
/// always succeeds, and a returned object is dropped while more than `capacity` are live. Each thread keeps
/// up to `thread_cache` idle objects of its own, which other threads do not see: use `thread_cache(0)` for
/// small pools of scarce objects so `try_get` sees every idle object. `trim` frees idle objects now (and
/// other threads' cached ones on their next use).
pub struct ObjectPool<T: Send> {
    depot: Depot<Box<T>>,
    create: Create<T>,
    reset: Option<Reset<T>>,
    capacity: usize,
    /// Objects created and not yet discarded or detached, including those the depot released (see module
    /// docs: `live = live_raw - depot.released()`).
    live_raw: AtomicUsize,
    created: AtomicU64,
    discarded: AtomicU64,
    detached: AtomicU64,
}

/// Configures an [`ObjectPool`]; made by [`ObjectPool::builder`].
pub struct ObjectPoolBuilder<T: Send> {
    create: Create<T>,
    reset: Option<Reset<T>>,
    capacity: usize,
    prewarm: usize,
    thread_cache: usize,
}

/// A snapshot of an [`ObjectPool`]'s counters (each read on its own: exact when nothing runs concurrently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectPoolStats {
    /// Gets (`get` and `try_get`) that found an idle object.
    pub hits: u64,
    /// Gets that found no idle object (and then created one, or returned `None`).
    pub misses: u64,
    /// Objects created (by `get`, `try_get` and prewarming).
    pub created: u64,
    /// Objects dropped on return: refused by the reset hook, over capacity, or after a panicking reset.
    pub discarded: u64,
    /// Objects taken out of the pool with [`Pooled::detach`].
    pub detached: u64,
    /// Idle objects dropped by [`ObjectPool::trim`] (including other threads' caches, on their next use).
    pub trimmed: u64,
    /// Idle objects (shared level and every thread cache).
    pub idle: usize,
    /// Objects the pool is responsible for: idle plus handed out.
    pub live: usize,
    /// Heap bytes of the idle objects' boxes (`idle * size_of::<T>()`; memory that `T` owns is not seen).
    pub bytes_held: usize,
    /// The pool's capacity.
    pub capacity: usize,
}

/// An object on loan from an [`ObjectPool`]; returns it to the pool when dropped.
///
/// Dereferences to `T`. The return runs the pool's reset hook, which may discard the object.
#[must_use = "dropping a Pooled returns the object to the pool at once"]
pub struct Pooled<'pool, T: Send> {
    pool: &'pool ObjectPool<T>,
    /// Taken out only in `drop` and `detach`, each of which consumes the guard.
    object: ManuallyDrop<Box<T>>,
    /// The cache of the thread that took the object: a return on that thread skips the cache lookup.
    origin: Origin<Box<T>>,
}

impl<T: Send> ObjectPool<T> {
    /// Starts configuring a pool whose objects `create` makes.
    ///
    /// ```
    /// let pool = pools::ObjectPool::builder(String::new).capacity(8).prewarm(2).build()?;
    /// assert_eq!(pool.stats().idle, 2);
    /// # Ok::<(), pools::BuildError>(())
    /// ```
    pub fn builder(create: impl Fn() -> T + Send + Sync + 'static) -> ObjectPoolBuilder<T> {
        ObjectPoolBuilder {
            create: Box::new(create),
            reset: None,
            capacity: ObjectPoolBuilder::<T>::DEFAULT_CAPACITY,
            prewarm: 0,
            thread_cache: ObjectPoolBuilder::<T>::DEFAULT_THREAD_CACHE,
        }
    }

    /// A pool with the default capacity and thread cache, no reset hook and nothing prewarmed.
    ///
    /// ```
    /// let pool = pools::ObjectPool::new(|| [0u8; 64]);
    /// assert_eq!(pool.get().len(), 64);
    /// ```
    pub fn new(create: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Self::from_builder(Self::builder(create))
    }

    fn from_builder(builder: ObjectPoolBuilder<T>) -> Self {
        let pool = Self {
            depot: Depot::new(builder.thread_cache.min(builder.capacity)),
            create: builder.create,
            reset: builder.reset,
            capacity: builder.capacity,
            live_raw: AtomicUsize::new(0),
            created: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            detached: AtomicU64::new(0),
        };
        for _ in 0..builder.prewarm {
            let object = Box::new((pool.create)());
            pool.count_created();
            pool.depot.push_shared(object);
        }
        pool
    }

    /// Takes an idle object, or creates one if none is idle (even beyond the capacity).
    ///
    /// ```
    /// let pool = pools::ObjectPool::new(|| 0u64);
    /// *pool.get() += 1;
    /// assert_eq!(*pool.get(), 1); // no reset hook: the object comes back as it was left
    /// ```
    ///
    /// # Panics
    ///
    /// If `create` panics (nothing is counted then).
    #[inline]
    pub fn get(&self) -> Pooled<'_, T> {
        match self.depot.pop_with_origin() {
            (Some(object), origin) => self.lend(object, origin),
            (None, origin) => self.create_for_get(origin),
        }
    }

    #[cold]
    #[inline(never)]
    fn create_for_get(&self, origin: Origin<Box<T>>) -> Pooled<'_, T> {
        let object = Box::new((self.create)());
        self.count_created();
        self.lend(object, origin)
    }

    /// Takes an idle object, or creates one if the pool holds fewer than `capacity` live objects; `None`
    /// otherwise. Objects idle in other threads' caches are not seen (see the module docs).
    ///
    /// ```
    /// let pool = pools::ObjectPool::builder(|| 0u8).capacity(1).build()?;
    /// let first = pool.try_get().expect("room for one");
    /// assert!(pool.try_get().is_none());
    /// drop(first);
    /// assert!(pool.try_get().is_some());
    /// # Ok::<(), pools::BuildError>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If `create` panics (the reserved place is given back).
    #[inline]
    pub fn try_get(&self) -> Option<Pooled<'_, T>> {
        match self.depot.pop_with_origin() {
            (Some(object), origin) => Some(self.lend(object, origin)),
            (None, origin) => self.try_create(origin),
        }
    }

    #[cold]
    #[inline(never)]
    fn try_create(&self, origin: Origin<Box<T>>) -> Option<Pooled<'_, T>> {
        let mut live_raw = self.live_raw.load(Ordering::Relaxed);
        loop {
            if live_raw.saturating_sub(self.depot.released()) >= self.capacity {
                return None;
            }
            // Acquire: pairs with the Release decrement in `discard`, which follows a discarded object's
            // drop, so that drop happens before the creation below (and `released()` is an Acquire load,
            // for trimmed objects). Failure Relaxed: the loop only retries with the value read.
            match self.live_raw.compare_exchange_weak(
                live_raw,
                live_raw + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => live_raw = current,
            }
        }
        /// Gives the reserved place back if `create` unwinds.
        struct Reservation<'a>(&'a AtomicUsize);
        impl Drop for Reservation<'_> {
            fn drop(&mut self) {
                // Relaxed: no object was made, so there is no drop for anyone to wait on.
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let reservation = Reservation(&self.live_raw);
        let object = Box::new((self.create)());
        mem::forget(reservation);
        self.created.fetch_add(1, Ordering::Relaxed);
        Some(self.lend(object, origin))
    }

    /// The most objects the pool keeps and `try_get` lets live at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Drops the idle objects of the shared level and of the calling thread's cache now, and those of every
    /// other thread's cache on that thread's next use of the pool (or when the pool drops). Returns how many
    /// objects it dropped now.
    ///
    /// ```
    /// let pool = pools::ObjectPool::builder(|| [0u8; 4096]).prewarm(3).build()?;
    /// assert_eq!(pool.trim(), 3);
    /// assert_eq!(pool.stats().bytes_held, 0);
    /// # Ok::<(), pools::BuildError>(())
    /// ```
    pub fn trim(&self) -> usize {
        self.depot.trim()
    }

    /// The pool's counters; see [`ObjectPoolStats`].
    pub fn stats(&self) -> ObjectPoolStats {
        let depot = self.depot.stats();
        let live_raw = self.live_raw.load(Ordering::Relaxed);
        ObjectPoolStats {
            hits: depot.hits,
            misses: depot.misses,
            created: self.created.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
            detached: self.detached.load(Ordering::Relaxed),
            trimmed: depot.released as u64,
            idle: depot.idle,
            live: live_raw.saturating_sub(depot.released),
            bytes_held: depot.idle.saturating_mul(mem::size_of::<T>()),
            capacity: self.capacity,
        }
    }

    #[inline(always)]
    fn lend(&self, object: Box<T>, origin: Origin<Box<T>>) -> Pooled<'_, T> {
        Pooled {
            pool: self,
            object: ManuallyDrop::new(object),
            origin,
        }
    }

    fn count_created(&self) {
        // Relaxed: counters that only `stats` and the capacity checks read; a `get` beyond capacity does
        // not synchronise with anyone.
        self.live_raw.fetch_add(1, Ordering::Relaxed);
        self.created.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a returned object back: reset hook, capacity check, then the depot.
    #[inline]
    fn put_back(&self, object: Box<T>, origin: Origin<Box<T>>) {
        let object = match &self.reset {
            None => object,
            Some(reset) => {
                /// Holds the object while the hook runs: if the hook unwinds, the object is discarded
                /// (dropped, then its place given back) as the guard drops.
                struct Resetting<'a, T: Send> {
                    pool: &'a ObjectPool<T>,
                    object: Option<Box<T>>,
                }
                impl<T: Send> Drop for Resetting<'_, T> {
                    fn drop(&mut self) {
                        if let Some(object) = self.object.take() {
                            self.pool.discard(object);
                        }
                    }
                }
                let mut resetting = Resetting {
                    pool: self,
                    object: Some(object),
                };
                let Some(object) = resetting.object.as_mut() else {
                    unreachable!("the object was just put in")
                };
                if !reset(object) {
                    return; // `resetting` discards it.
                }
                let Some(object) = resetting.object.take() else {
                    unreachable!("only the guard's drop takes the object")
                };
                object
            }
        };
        // Relaxed: a hint; `put_back_over_capacity` decides with a CAS. `live <= live_raw`, so the usual case
        // (`live_raw` within capacity) needs no load of the depot's `released` counter.
        let live_raw = self.live_raw.load(Ordering::Relaxed);
        if live_raw > self.capacity
            && live_raw.saturating_sub(self.depot.released()) > self.capacity
        {
            self.put_back_over_capacity(object);
        } else {
            self.depot.push_to(object, origin);
        }
    }

    #[cold]
    #[inline(never)]
    fn put_back_over_capacity(&self, object: Box<T>) {
        let mut live_raw = self.live_raw.load(Ordering::Relaxed);
        loop {
            if live_raw.saturating_sub(self.depot.released()) <= self.capacity {
                self.depot.push(object);
                return;
            }
            // Relaxed: this claims the surplus place; `live` stays >= capacity afterwards, so no `try_get`
            // creates in it while the object below is dropped.
            match self.live_raw.compare_exchange_weak(
                live_raw,
                live_raw - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => live_raw = current,
            }
        }
        self.discarded.fetch_add(1, Ordering::Relaxed);
        drop(object);
    }

    /// Drops a refused object, then gives its place back (also if its drop unwinds).
    fn discard(&self, object: Box<T>) {
        /// Gives the place back when dropped, i.e. after the object dropped before it in its scope.
        struct GivePlaceBack<'a>(&'a AtomicUsize);
        impl Drop for GivePlaceBack<'_> {
            fn drop(&mut self) {
                // Release: pairs with the Acquire CAS in `try_create`, so a replacement is created only
                // after this object's drop has finished.
                self.0.fetch_sub(1, Ordering::Release);
            }
        }
        self.discarded.fetch_add(1, Ordering::Relaxed);
        let _give_back = GivePlaceBack(&self.live_raw);
        drop(object);
    }
}

impl<T: Send> ObjectPoolBuilder<T> {
    /// The default [`capacity`](Self::capacity): enough for a few hundred concurrent users of small objects;
    /// pools of large or scarce objects should set their own.
    pub const DEFAULT_CAPACITY: usize = 256;

    /// The default [`thread_cache`](Self::thread_cache) (capped at the capacity): deep enough that a thread
    /// holding a handful of objects at a time stays in its cache, shallow enough that caches hold little.
    pub const DEFAULT_THREAD_CACHE: usize = 16;

    /// The most objects the pool keeps (idle) and lets [`ObjectPool::try_get`] have live at once; default
    /// [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY). Must be at least 1.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// How many objects to create when the pool is built (default 0); at most the capacity.
    pub fn prewarm(mut self, count: usize) -> Self {
        self.prewarm = count;
        self
    }

    /// A hook run on every returned object before it is kept; returning `false` discards (drops) it.
    ///
    /// ```
    /// let pool = pools::ObjectPool::builder(String::new)
    ///     .reset(|text| {
    ///         text.clear();
    ///         text.capacity() <= 4096
    ///     })
    ///     .build()?;
    /// pool.get().push_str("kept, then cleared");
    /// assert!(pool.get().is_empty());
    /// # Ok::<(), pools::BuildError>(())
    /// ```
    pub fn reset(mut self, reset: impl Fn(&mut T) -> bool + Send + Sync + 'static) -> Self {
        self.reset = Some(Box::new(reset));
        self
    }

    /// How many idle objects each thread may keep in its own cache (default [`DEFAULT_THREAD_CACHE`](Self::DEFAULT_THREAD_CACHE), capped
    /// at the capacity); `0` turns the caches off, so every idle object is visible to every thread.
    pub fn thread_cache(mut self, objects: usize) -> Self {
        self.thread_cache = objects;
        self
    }

    /// Builds the pool, creating the prewarmed objects.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroCapacity`] for `capacity(0)`, [`BuildError::PrewarmExceedsCapacity`] when
    /// `prewarm` is larger than the capacity. Nothing is created then.
    ///
    /// # Panics
    ///
    /// If `create` panics while prewarming.
    pub fn build(self) -> Result<ObjectPool<T>, BuildError> {
        if self.capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        if self.prewarm > self.capacity {
            return Err(BuildError::PrewarmExceedsCapacity {
                prewarm: self.prewarm,
                capacity: self.capacity,
            });
        }
        Ok(ObjectPool::from_builder(self))
    }
}

impl<T: Send> Pooled<'_, T> {
    /// Takes the object out of the pool for good: it will not be returned, and the pool stops counting it
    /// (a `try_get` may create a replacement).
    ///
    /// ```
    /// let pool = pools::ObjectPool::builder(|| vec![1, 2, 3]).capacity(1).build()?;
    /// let kept: Vec<i32> = pool.get().detach();
    /// assert_eq!(kept, [1, 2, 3]);
    /// assert_eq!(pool.stats().live, 0);
    /// # Ok::<(), pools::BuildError>(())
    /// ```
    pub fn detach(self) -> T {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped (it is in a `ManuallyDrop`) and its object is not used after this
        // line, so the object is taken out exactly once.
        let object = unsafe { ManuallyDrop::take(&mut this.object) };
        let pool = this.pool;
        // Relaxed: the object lives on outside the pool, so there is no drop for a `try_get` to wait on.
        pool.live_raw.fetch_sub(1, Ordering::Relaxed);
        pool.detached.fetch_add(1, Ordering::Relaxed);
        *object
    }
}

impl<T: Send> Drop for Pooled<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and nothing uses `self.object` afterwards.
        let object = unsafe { ManuallyDrop::take(&mut self.object) };
        self.pool.put_back(object, self.origin);
    }
}

impl<T: Send> Deref for Pooled<'_, T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        &self.object
    }
}

impl<T: Send> DerefMut for Pooled<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.object
    }
}

impl<T: Send + fmt::Debug> fmt::Debug for Pooled<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self.object, f)
    }
}

impl<T: Send> fmt::Debug for ObjectPool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectPool")
            .field("capacity", &self.capacity)
            .field("thread_cache", &self.depot.cache_limit())
            .field("has_reset", &self.reset.is_some())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<T: Send> fmt::Debug for ObjectPoolBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectPoolBuilder")
            .field("capacity", &self.capacity)
            .field("prewarm", &self.prewarm)
            .field("thread_cache", &self.thread_cache)
            .field("has_reset", &self.reset.is_some())
            .finish_non_exhaustive()
    }
}
