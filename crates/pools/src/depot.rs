//! The depot: idle items kept in per-thread caches over a sharded shared level.
//!
//! A [`Depot<T>`] is the storage behind [`ObjectPool`](crate::ObjectPool) (items are `Box<T>`) and is meant to
//! be used once per size class by [`BufferPool`](crate::BufferPool). It only stores idle items: it knows
//! nothing about capacities, reset hooks or what an item is, so each pool keeps its own policy around it.
//!
//! # API (stable: later changes are additive only)
//!
//! * [`Depot::new(cache_limit)`](Depot::new): `cache_limit` items per thread cache, `0` turns the caches off
//!   (they are always off under loom); [`Depot::with_shards`] also sets the number of shards.
//! * [`pop`](Depot::pop) `-> Option<T>`: an idle item (the calling thread's cache first, then the shards).
//! * [`push`](Depot::push): keeps an idle item (calling thread's cache, or the shards).
//! * [`pop_with_origin`](Depot::pop_with_origin) / [`origin`](Depot::origin) and
//!   [`push_to`](Depot::push_to): the same, for a pool whose guard remembers the [`Origin`] (the calling
//!   thread's cache): pushing back on that same thread then skips the thread-local lookup. On any other
//!   thread `push_to` is `push`.
//! * [`push_shared`](Depot::push_shared): keeps an item in the shared level directly (prewarming).
//! * [`trim`](Depot::trim) `-> usize`: drops the shared level and the calling thread's cache now, and makes
//!   every other thread's cache drop its items on that thread's next `pop` or `push`.
//! * [`released`](Depot::released): how many items the depot has dropped itself (by `trim` and the deferred
//!   flushes it causes). A pool that counts the items it is responsible for subtracts this number.
//! * [`stats`](Depot::stats) `-> DepotStats { idle, hits, misses, released }`: `idle` is exact when no
//!   operation runs concurrently; `hits`/`misses` count pops that found an item / found none.
//!
//! What a pool can rely on:
//! * The depot never runs user code (an item's `Drop`) while it holds a lock or a borrow of a thread cache,
//!   so an item's `Drop` may call back into the same depot on the same thread (`trim` and the deferred
//!   flushes drop items after letting go of both).
//! * `released` is incremented (Release) *after* the item's drop returns (or unwinds), so a pool that reads
//!   it with Acquire and then creates a replacement never has the old and the new item alive at once because
//!   of a trim. If an item's `Drop` panics, the items after it in the same batch are dropped during unwinding
//!   without being counted: the pool then over-counts live items, which only makes its limits stricter.
//! * `pop` after `push` on one thread, with nothing in between, returns that item (LIFO caches and shards),
//!   and with no concurrent operation `pop` finds an item whenever `idle > 0`, whichever thread pushed it
//!   (unless it sits in another thread's cache: caches are private).
//! * Memory held: at most `cache_limit` items per thread that has used the depot (a thread that exits leaves
//!   its cache to the next thread that `thread_local` gives the same slot to, and it is freed with the depot)
//!   plus whatever the shards hold; the depot itself puts no bound on the shards.
//!
//! # Algorithm
//!
//! Each thread has a cache (a `Vec<T>` used as a stack) in a [`ThreadLocal`]. Only the owner thread touches
//! the `Vec`, so the hot path (pop from / push to one's own cache) takes no lock and does no atomic
//! read-modify-write: one thread-local lookup, one Relaxed load of the trim generation, the `Vec` operation,
//! and Relaxed *stores* of the cache's length and hit counter (written only by the owner, read by `stats`).
//!
//! Below the caches sit `shards` mutex-protected stacks (`available_parallelism()` rounded up to a power of
//! two, at most 64; 2 under loom so models cross shards). A thread has a home shard (threads are spread
//! round-robin) and looks at the others, in order, when its home is empty. Items move between the two levels
//! in batches, so the lock is taken once per half cache:
//! * a full cache moves its older half to the home shard in one lock before keeping the new item;
//! * an empty cache takes up to half a cache from the first non-empty shard, in one lock.
//!
//! This is the tcache/magazine shape of memory allocators (Bonwick and Adams, "Magazines and Vmem", USENIX
//! 2001), with `Vec`s instead of fixed magazines. It balances "taken on thread A, returned on thread B": A's
//! cache runs dry and refills from the shards, which B's overflowing cache feeds.
//!
//! Each shard keeps its length in an atomic (stored under the lock, Relaxed) so a pop can skip empty shards
//! without locking them. The hint is never stale for an operation that happens after the push (coherence),
//! so on one thread, and for pushes that happen-before the pop, no item is missed.
//!
//! # Trim
//!
//! `trim` bumps a generation counter, then empties every shard and the calling thread's cache. Each cache
//! remembers the generation it last saw; a cache that sees a newer one on its next operation drops its items
//! first (another thread's cache cannot be touched from here: that would need a lock on the hot path). So an
//! idle thread keeps at most `cache_limit` items until it runs again or the depot drops, like an allocator's
//! thread cache. The generation is read and bumped with Relaxed: it publishes no data (each cache only
//! drops items it owns), and coherence makes every later load see the bump.
//!
//! # Origins
//!
//! An [`Origin`] is a pointer to a thread's cache plus that thread's *token*: a number from a global counter,
//! never reused, kept in a plain `#[thread_local]` cell (one `%fs`-relative load). `push_to` uses the cache
//! without a lookup only if the calling thread's token equals the origin's, i.e. it is the very thread that
//! looked the cache up, which still owns its `thread_local` slot (slots are given up only at thread exit).
//! At thread exit the token is cleared by the depot's guard, which runs before `thread_local`'s (see below),
//! so once the slot may be handed to another thread no origin matches any more.
//!
//! # Caches and thread exit
//!
//! `thread_local` hands a finished thread's slot (and its cache, with its items) to the next new thread.
//! During thread-local destruction at thread exit, `ThreadLocal::get` returns `None` once `thread_local`'s
//! own per-thread guard has run; the depot then uses the shared level, and it never asks `thread_local` for
//! a new slot after the depot's own guard (registered after `thread_local`'s, so destroyed before it) has run.

use std::mem;

use thread_local::ThreadLocal;

use crate::sync::{self, AtomicU64, AtomicUsize, Mutex, Ordering, THREAD_CACHES, UnsafeCell};

/// The most shards a depot has (more would only spread the same items thinner).
#[cfg(not(loom))]
pub(crate) const MAX_SHARDS: usize = 64;
/// Under loom: two shards, so small models reach the "home shard empty, look at the next" path.
#[cfg(loom)]
pub(crate) const MAX_SHARDS: usize = 2;

/// Idle items in per-thread caches over sharded shared stacks. See the module docs.
pub(crate) struct Depot<T: Send> {
    /// The trim generation: bumped by `trim`; a cache that has seen an older one drops its items.
    generation: AtomicU64,
    /// Items per thread cache; 0: no caches.
    cache_limit: usize,
    caches: ThreadLocal<CacheBox<T>>,
    shards: Box<[Shard<T>]>,
    /// `shards.len() - 1` (the count is a power of two).
    shard_mask: usize,
    /// Items the depot dropped itself (trim and deferred flushes).
    released: AtomicUsize,
}

/// Counters of a depot, summed over its shards and caches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DepotStats {
    /// Items held (shards and caches).
    pub(crate) idle: usize,
    /// Pops that found an item.
    pub(crate) hits: u64,
    /// Pops that found none.
    pub(crate) misses: u64,
    /// Items the depot dropped itself (trim and the deferred flushes it causes).
    pub(crate) released: usize,
}

/// Where a popped item came from: the calling thread's cache, for a fast [`Depot::push_to`] on that thread.
pub(crate) struct Origin<T> {
    /// Null: no cache (caches off, or the thread is exiting).
    cache: *const Cache<T>,
    /// The token of the thread that looked `cache` up; 0 with a null `cache`.
    token: u64,
}

impl<T> Origin<T> {
    /// No cache: `push_to` does a plain `push`.
    pub(crate) const NONE: Self = Self {
        cache: std::ptr::null(),
        token: 0,
    };
}

impl<T> Clone for Origin<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Origin<T> {}

impl<T> std::fmt::Debug for Origin<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

// SAFETY: an `Origin` is only an address and a number; `push_to` dereferences the address only on the thread
// whose token it holds (the cache's owner), so sending or sharing the `Origin` itself races with nothing.
unsafe impl<T> Send for Origin<T> {}
// SAFETY: as for `Send`: `&Origin` gives access to nothing but the two plain values.
unsafe impl<T> Sync for Origin<T> {}

/// One shared stack, on its own cache lines so shards do not false-share.
#[repr(align(128))]
struct Shard<T> {
    items: Mutex<Vec<T>>,
    /// `items.len()`, stored under the lock (Relaxed): lets pops skip empty shards and `stats` read it.
    len: AtomicUsize,
    /// Hits and misses of pops that use no cache (caches off), counted at the popping thread's home shard.
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A thread's cache. `local` is touched only by the owner thread; the atomics are written only by the owner
/// (Relaxed load + store, no read-modify-write) and read by `stats` from any thread.
struct Cache<T> {
    local: UnsafeCell<Local<T>>,
    len: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Local<T> {
    items: Vec<T>,
    /// The trim generation this cache has caught up with.
    generation: u64,
}

// SAFETY: `local` (the only non-`Sync` field) is accessed only through `Cache::with_local`, whose contract
// restricts it to the thread that owns the cache (the one `ThreadLocal` returned it to); other threads only
// read the atomics. Items move between threads (a cache's items may be pushed on one thread and, through the
// shards, popped on another), hence `T: Send`.
unsafe impl<T: Send> Sync for Cache<T> {}

/// Owns a thread's [`Cache`] through a raw pointer, so that every access to the cache (by the owner's
/// lookups and through [`Origin`]s) derives from that one pointer. Were an origin's pointer taken from a
/// `&Cache` returned by one `ThreadLocal` lookup, a later lookup's reference could invalidate it under
/// Stacked Borrows; copies of the owning pointer cannot be invalidated that way.
struct CacheBox<T>(std::ptr::NonNull<Cache<T>>);

impl<T> CacheBox<T> {
    fn new(cache: Cache<T>) -> Self {
        Self(std::ptr::NonNull::from(Box::leak(Box::new(cache))))
    }

    #[inline(always)]
    fn get(&self) -> &Cache<T> {
        // SAFETY: the pointer comes from `Box::leak` and is freed only in `drop`, which takes `&mut self`.
        unsafe { self.0.as_ref() }
    }
}

impl<T> Drop for CacheBox<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer comes from `Box::leak` in `new` and is freed only here; no reference to the
        // cache outlives the `ThreadLocal` (hence the depot) that owns this box.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

// SAFETY: a `CacheBox` owns its `Cache` as a `Box` would: it is `Send` when the cache is (`T: Send`).
unsafe impl<T: Send> Send for CacheBox<T> {}
// SAFETY: `&CacheBox` only gives `&Cache`, which is `Sync` for `T: Send` (see `Cache`'s impl).
unsafe impl<T: Send> Sync for CacheBox<T> {}

impl<T> Cache<T> {
    fn new(limit: usize, generation: u64) -> Self {
        Self {
            local: UnsafeCell::new(Local {
                items: Vec::with_capacity(limit),
                generation,
            }),
            len: AtomicUsize::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Runs `f` on the cache's own data.
    ///
    /// # Safety
    ///
    /// Only the thread that owns this cache may call this, and `f` must not run user code (drop an item) or
    /// call back into the depot, so that no other `&mut Local` exists while `f` runs.
    #[inline(always)]
    unsafe fn with_local<R>(&self, f: impl FnOnce(&mut Local<T>) -> R) -> R {
        self.local.with_mut(|local| {
            // SAFETY: the caller is the owner thread and `f` does not re-enter (this function's contract), so
            // this is the only reference to `Local` while `f` runs.
            f(unsafe { &mut *local })
        })
    }
}

/// Adds one to a counter that only the calling thread writes: a load and a store, no read-modify-write.
#[inline(always)]
fn bump_owned(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl<T: Send> Depot<T> {
    /// A depot with `cache_limit` items per thread cache (`0`: no caches) and the default number of shards.
    pub(crate) fn new(cache_limit: usize) -> Self {
        Self::with_shards(cache_limit, default_shards())
    }

    /// A depot with `shards` shards (rounded up to a power of two, between 1 and [`MAX_SHARDS`]).
    pub(crate) fn with_shards(cache_limit: usize, shards: usize) -> Self {
        let count = shards.clamp(1, MAX_SHARDS).next_power_of_two();
        Self {
            generation: AtomicU64::new(0),
            cache_limit: if THREAD_CACHES { cache_limit } else { 0 },
            caches: ThreadLocal::new(),
            shards: (0..count)
                .map(|_| Shard {
                    items: Mutex::new(Vec::new()),
                    len: AtomicUsize::new(0),
                    hits: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                })
                .collect(),
            shard_mask: count - 1,
            released: AtomicUsize::new(0),
        }
    }

    /// The number of items each thread cache may hold (0 when caches are off, always under loom).
    pub(crate) fn cache_limit(&self) -> usize {
        self.cache_limit
    }

    /// Takes an idle item: the calling thread's cache, then its home shard, then the other shards.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        match self.cache() {
            Some(cache) => self.pop_cached(cache.get()),
            None => self.pop_uncached(),
        }
    }

    /// Keeps an idle item: in the calling thread's cache (moving half of a full cache to the shared level
    /// first), or in its home shard when caches are off.
    #[inline]
    pub(crate) fn push(&self, item: T) {
        match self.cache() {
            Some(cache) => self.push_cached(cache.get(), item),
            None => self.push_shared(item),
        }
    }

    /// As [`pop`](Self::pop), also returning the calling thread's [`Origin`] for [`push_to`](Self::push_to).
    #[inline]
    pub(crate) fn pop_with_origin(&self) -> (Option<T>, Origin<T>) {
        match self.cache() {
            Some(cache) => (self.pop_cached(cache.get()), origin_of(cache)),
            None => (self.pop_uncached(), Origin::NONE),
        }
    }

    #[allow(dead_code)] // For the buffer pool (a miss that allocates).
    /// The calling thread's [`Origin`] (its cache), for an item that did not come from [`pop_with_origin`](
    /// Self::pop_with_origin).
    pub(crate) fn origin(&self) -> Origin<T> {
        match self.cache() {
            Some(cache) => origin_of(cache),
            None => Origin::NONE,
        }
    }

    /// As [`push`](Self::push); if `origin` is the calling thread's own (see the module docs), without
    /// looking its cache up. `origin` must come from this depot.
    #[inline]
    pub(crate) fn push_to(&self, item: T, origin: Origin<T>) {
        if origin.token != 0 && origin.token == exit_guard::token() {
            // SAFETY: the tokens match, so this is the thread that got `origin.cache` from this depot's
            // `ThreadLocal` and it still owns that slot (module docs, "Origins"); the cache lives as long
            // as the depot (`ThreadLocal` frees entries only when dropped), which the caller borrows.
            let cache = unsafe { &*origin.cache };
            self.push_cached(cache, item);
        } else {
            self.push(item);
        }
    }

    /// Keeps an idle item in the calling thread's home shard, bypassing its cache (prewarming).
    pub(crate) fn push_shared(&self, item: T) {
        let shard = &self.shards[home_shard() & self.shard_mask];
        let mut items = sync::lock(&shard.items);
        items.push(item);
        shard.len.store(items.len(), Ordering::Relaxed);
    }

    /// Drops every item in the shards and in the calling thread's cache, and makes every other thread's cache
    /// drop its items on that thread's next `pop` or `push`. Returns how many items it dropped now.
    pub(crate) fn trim(&self) -> usize {
        // Relaxed: the generation publishes nothing; each cache drops only what it owns (module docs).
        self.generation.fetch_add(1, Ordering::Relaxed);
        let mut count = 0;
        for shard in self.shards.iter() {
            let items = {
                let mut items = sync::lock(&shard.items);
                shard.len.store(0, Ordering::Relaxed);
                mem::take(&mut *items)
            };
            // Dropped after the lock is released: an item's `Drop` may use the depot.
            count += self.release(items);
        }
        if self.cache_limit != 0
            && let Some(cache) = self.caches.get()
        {
            count += self.flush(cache.get());
        }
        count
    }

    /// How many items the depot has dropped itself (by `trim` and the deferred flushes). Acquire: pairs with
    /// the Release increment in `release`, which follows the item's drop.
    pub(crate) fn released(&self) -> usize {
        self.released.load(Ordering::Acquire)
    }

    /// How many items the depot holds (exact when no operation runs concurrently).
    #[allow(dead_code)] // For the buffer pool; the object pool reads `stats`.
    pub(crate) fn idle(&self) -> usize {
        self.stats().idle
    }

    /// The depot's counters, summed over shards and caches (each read Relaxed: a snapshot, not atomic as a
    /// whole).
    pub(crate) fn stats(&self) -> DepotStats {
        let mut stats = DepotStats {
            released: self.released.load(Ordering::Relaxed),
            ..DepotStats::default()
        };
        for shard in self.shards.iter() {
            stats.idle += shard.len.load(Ordering::Relaxed);
            stats.hits += shard.hits.load(Ordering::Relaxed);
            stats.misses += shard.misses.load(Ordering::Relaxed);
        }
        if self.cache_limit != 0 {
            for cache in self.caches.iter().map(CacheBox::get) {
                stats.idle += cache.len.load(Ordering::Relaxed);
                stats.hits += cache.hits.load(Ordering::Relaxed);
                stats.misses += cache.misses.load(Ordering::Relaxed);
            }
        }
        stats
    }

    /// The calling thread's cache, if caches are on (creating it on first use).
    #[inline(always)]
    fn cache(&self) -> Option<&CacheBox<T>> {
        if self.cache_limit == 0 {
            return None;
        }
        match self.caches.get() {
            Some(cache) => Some(cache),
            None => self.new_cache(),
        }
    }

    #[cold]
    #[inline(never)]
    fn new_cache(&self) -> Option<&CacheBox<T>> {
        if !exit_guard::may_create_cache() {
            return None;
        }
        let generation = self.generation.load(Ordering::Relaxed);
        let cache = self
            .caches
            .get_or(|| CacheBox::new(Cache::new(self.cache_limit, generation)));
        exit_guard::register();
        Some(cache)
    }

    #[inline(always)]
    fn pop_cached(&self, cache: &Cache<T>) -> Option<T> {
        let generation = self.generation.load(Ordering::Relaxed);
        // SAFETY: `cache` is the calling thread's own (from `ThreadLocal::get`), and the closure runs no user
        // code (`Vec::pop` moves the item out without dropping anything).
        let popped = unsafe {
            cache.with_local(|local| {
                if local.generation != generation {
                    return None;
                }
                let item = local.items.pop();
                if item.is_some() {
                    cache.len.store(local.items.len(), Ordering::Relaxed);
                }
                item
            })
        };
        match popped {
            Some(item) => {
                bump_owned(&cache.hits);
                Some(item)
            }
            None => self.pop_cached_slow(cache),
        }
    }

    /// The cache was empty or stale: catch up with `trim`, then refill from the shards.
    #[cold]
    #[inline(never)]
    fn pop_cached_slow(&self, cache: &Cache<T>) -> Option<T> {
        self.flush_if_stale(cache);
        let want = (self.cache_limit / 2).max(1);
        let home = home_shard();
        // SAFETY: `cache` is the calling thread's own; the closure moves items between the cache and a shard
        // and drops none, so it runs no user code.
        let item = unsafe {
            cache.with_local(|local| {
                // An item's `Drop` during the flush above may have pushed items here.
                if local.items.is_empty() {
                    for offset in 0..self.shards.len() {
                        let shard = &self.shards[(home + offset) & self.shard_mask];
                        if shard.len.load(Ordering::Relaxed) == 0 {
                            continue;
                        }
                        let mut items = sync::lock(&shard.items);
                        let len = items.len();
                        if len == 0 {
                            continue;
                        }
                        local.items.extend(items.drain(len - want.min(len)..));
                        shard.len.store(items.len(), Ordering::Relaxed);
                        break;
                    }
                }
                let item = local.items.pop();
                cache.len.store(local.items.len(), Ordering::Relaxed);
                item
            })
        };
        bump_owned(if item.is_some() {
            &cache.hits
        } else {
            &cache.misses
        });
        item
    }

    #[inline(always)]
    fn push_cached(&self, cache: &Cache<T>, item: T) {
        let generation = self.generation.load(Ordering::Relaxed);
        let limit = self.cache_limit;
        // SAFETY: `cache` is the calling thread's own, and the closure drops nothing: a refused item is
        // handed back.
        let refused = unsafe {
            cache.with_local(|local| {
                if local.generation != generation || local.items.len() >= limit {
                    return Some(item);
                }
                local.items.push(item);
                cache.len.store(local.items.len(), Ordering::Relaxed);
                None
            })
        };
        if let Some(item) = refused {
            self.push_cached_slow(cache, item);
        }
    }

    /// The cache was full or stale: catch up with `trim`, move the older half to the home shard if full,
    /// then keep the item.
    #[cold]
    #[inline(never)]
    fn push_cached_slow(&self, cache: &Cache<T>, item: T) {
        self.flush_if_stale(cache);
        let limit = self.cache_limit;
        // SAFETY: `cache` is the calling thread's own; the closure moves items into a shard and drops none.
        unsafe {
            cache.with_local(|local| {
                if local.items.len() >= limit {
                    let half = (limit / 2).max(1);
                    let shard = &self.shards[home_shard() & self.shard_mask];
                    let mut items = sync::lock(&shard.items);
                    items.extend(local.items.drain(..half));
                    shard.len.store(items.len(), Ordering::Relaxed);
                }
                local.items.push(item);
                cache.len.store(local.items.len(), Ordering::Relaxed);
            });
        }
    }

    /// Drops the cache's items if a `trim` happened since it last looked.
    fn flush_if_stale(&self, cache: &Cache<T>) {
        let generation = self.generation.load(Ordering::Relaxed);
        // SAFETY: `cache` is the calling thread's own; the closure only reads.
        let stale = unsafe { cache.with_local(|local| local.generation != generation) };
        if stale {
            self.flush(cache);
        }
    }

    /// Takes every item out of `cache` (the calling thread's own), marks it as caught up with the current
    /// generation, and drops the items once the cache is no longer borrowed. Returns how many it dropped.
    fn flush(&self, cache: &Cache<T>) -> usize {
        let generation = self.generation.load(Ordering::Relaxed);
        let limit = self.cache_limit;
        // SAFETY: callers pass the calling thread's own cache; the closure swaps the `Vec` out and drops
        // nothing (the items are dropped below, after the borrow ends).
        let items = unsafe {
            cache.with_local(|local| {
                local.generation = generation;
                cache.len.store(0, Ordering::Relaxed);
                if local.items.is_empty() {
                    Vec::new()
                } else {
                    mem::replace(&mut local.items, Vec::with_capacity(limit))
                }
            })
        };
        self.release(items)
    }

    #[inline]
    fn pop_uncached(&self) -> Option<T> {
        let home = home_shard();
        let mut found = None;
        for offset in 0..self.shards.len() {
            let shard = &self.shards[(home + offset) & self.shard_mask];
            if shard.len.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut items = sync::lock(&shard.items);
            if let Some(item) = items.pop() {
                shard.len.store(items.len(), Ordering::Relaxed);
                found = Some(item);
                break;
            }
        }
        let counters = &self.shards[home & self.shard_mask];
        let counter = if found.is_some() {
            &counters.hits
        } else {
            &counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Drops `items` one by one, counting each in `released` after its drop (also if the drop unwinds).
    fn release(&self, items: Vec<T>) -> usize {
        /// Counts one released item when dropped, i.e. after the item dropped before it in its scope.
        struct CountOne<'a>(&'a AtomicUsize);
        impl Drop for CountOne<'_> {
            fn drop(&mut self) {
                // Release: pairs with the Acquire in `Depot::released`, so a pool that sees the count also
                // sees the item's drop as finished before it creates a replacement.
                self.0.fetch_add(1, Ordering::Release);
            }
        }
        let count = items.len();
        for item in items {
            let _count = CountOne(&self.released);
            drop(item);
        }
        count
    }
}

impl<T: Send> std::fmt::Debug for Depot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Depot")
            .field("cache_limit", &self.cache_limit)
            .field("shards", &self.shards.len())
            .field("stats", &self.stats())
            .finish()
    }
}

/// The origin for `cache`, the calling thread's own.
#[inline(always)]
fn origin_of<T>(cache: &CacheBox<T>) -> Origin<T> {
    let mut token = exit_guard::token();
    if token == 0 {
        token = exit_guard::assign_token();
    }
    Origin {
        // The owning pointer itself (not one derived from a reference): see `CacheBox`.
        cache: if token == 0 {
            std::ptr::null()
        } else {
            cache.0.as_ptr()
        },
        token,
    }
}

/// `available_parallelism()` rounded up to a power of two, at most [`MAX_SHARDS`] (computed once: it reads
/// cgroup files on Linux).
#[cfg(not(loom))]
fn default_shards() -> usize {
    static SHARDS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SHARDS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .next_power_of_two()
            .min(MAX_SHARDS)
    })
}

#[cfg(loom)]
fn default_shards() -> usize {
    MAX_SHARDS
}

/// The calling thread's home shard, before masking: threads are numbered round-robin on first use.
#[cfg(not(loom))]
#[inline]
fn home_shard() -> usize {
    use std::cell::Cell;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    HOME.try_with(|home| {
        let mut index = home.get();
        if index == usize::MAX {
            index = NEXT.fetch_add(1, Ordering::Relaxed);
            home.set(index);
        }
        index
    })
    .unwrap_or(0)
}

/// Under loom: the model thread's number (0 for the main thread, then 1, 2, ...), the same in every
/// execution as loom requires. Loom's `ThreadId` also holds an execution id, so it is read from the `Debug`
/// output (`ThreadId(n)`), which shows only the number.
#[cfg(loom)]
fn home_shard() -> usize {
    let id = format!("{:?}", loom::thread::current().id());
    id.trim_start_matches("ThreadId(")
        .trim_end_matches(')')
        .parse()
        .unwrap_or(0)
}

/// Keeps the depot from asking `thread_local` for a new slot once thread-local destruction is under way at
/// thread exit (`thread_local` panics if asked after its own guard has run).
///
/// Our guard is first touched right after a `ThreadLocal::get_or` (which registers `thread_local`'s guard if
/// it was not yet), so it is registered later, and thread-local destructors run in reverse order of
/// registration: ours runs first. After it ran, `may_create_cache` says no. Left uncovered: a thread whose
/// very first depot cache would be created from a thread-local destructor after `thread_local`'s guard ran.
#[cfg(not(loom))]
mod exit_guard {
    use std::cell::Cell;

    use crate::sync::{AtomicU64, Ordering};

    /// 0: guard not registered yet; 1: registered; 2: destroyed (the thread is exiting).
    const UNREGISTERED: u8 = 0;
    const REGISTERED: u8 = 1;
    const EXITING: u8 = 2;

    struct Guard;

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = STATE.try_with(|state| state.set(EXITING));
            let _ = TOKEN.try_with(|token| token.set(0));
        }
    }

    std::thread_local! {
        static STATE: Cell<u8> = const { Cell::new(UNREGISTERED) };
        static GUARD: Guard = const { Guard };
        /// This thread's origin token (module docs, "Origins"); 0: none yet, or the thread is exiting.
        static TOKEN: Cell<u64> = const { Cell::new(0) };
    }

    pub(super) fn may_create_cache() -> bool {
        STATE
            .try_with(Cell::get)
            .is_ok_and(|state| state != EXITING)
    }

    /// Registers the guard; call only once the thread holds a `thread_local` slot (so `thread_local`'s own
    /// guard is registered before ours).
    pub(super) fn register() {
        let _ = STATE.try_with(|state| {
            if state.get() == UNREGISTERED && GUARD.try_with(|_| ()).is_ok() {
                state.set(REGISTERED);
            }
        });
    }

    /// The calling thread's token, 0 if it has none.
    #[inline(always)]
    pub(super) fn token() -> u64 {
        // A `const` thread-local without a destructor is always accessible; `try_with` only for form.
        TOKEN.try_with(Cell::get).unwrap_or(0)
    }

    /// Gives the calling thread a token (0 if it is exiting). Call only from a thread holding a
    /// `thread_local` slot (it registers the guard).
    #[cold]
    #[inline(never)]
    pub(super) fn assign_token() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        register();
        if STATE.try_with(Cell::get).ok() != Some(REGISTERED) {
            return 0;
        }
        // Relaxed: only uniqueness matters, which the read-modify-write gives.
        let token = NEXT.fetch_add(1, Ordering::Relaxed);
        let _ = TOKEN.try_with(|cell| cell.set(token));
        token
    }
}

/// Under loom there are no caches.
#[cfg(loom)]
mod exit_guard {
    pub(super) fn may_create_cache() -> bool {
        false
    }

    pub(super) fn register() {}

    pub(super) fn token() -> u64 {
        0
    }

    pub(super) fn assign_token() -> u64 {
        0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Depot;

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn pop_returns_the_last_push_and_counts_hits_and_misses() {
        for limit in [0, 1, 4] {
            let depot = Depot::with_shards(limit, 2);
            assert_eq!(depot.pop(), None);
            depot.push(1);
            depot.push(2);
            assert_eq!(depot.idle(), 2);
            assert_eq!(depot.pop(), Some(2));
            assert_eq!(depot.pop(), Some(1));
            assert_eq!(depot.pop(), None);
            let stats = depot.stats();
            assert_eq!(
                (stats.hits, stats.misses, stats.idle),
                (2, 2, 0),
                "limit {limit}"
            );
        }
    }

    #[test]
    fn a_full_cache_moves_its_older_half_to_the_shards() {
        let depot = Depot::with_shards(4, 1);
        for item in 0..5 {
            depot.push(item);
        }
        // The fifth push found the cache full: 0 and 1 went to the shard.
        assert_eq!(depot.shards[0].len.load(Ordering::Relaxed), 2);
        assert_eq!(depot.idle(), 5);
        // Another thread sees only the shared level.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                assert_eq!(depot.pop(), Some(1));
                assert_eq!(depot.pop(), Some(0));
                assert_eq!(depot.pop(), None);
            });
        });
        let popped: Vec<_> = std::iter::from_fn(|| depot.pop()).collect();
        assert_eq!(popped, [4, 3, 2]);
    }

    #[test]
    fn an_empty_cache_refills_half_a_cache_in_one_go() {
        let depot = Depot::with_shards(4, 1);
        for item in 0..6 {
            depot.push_shared(item);
        }
        assert_eq!(depot.pop(), Some(5));
        // 5 and 4 came over; 4 stays in the cache.
        assert_eq!(depot.shards[0].len.load(Ordering::Relaxed), 4);
        assert_eq!(depot.idle(), 5);
    }

    #[test]
    fn trim_drops_now_and_other_caches_on_their_next_use() {
        let drops = Arc::new(AtomicUsize::new(0));
        let depot = Depot::with_shards(8, 2);
        std::thread::scope(|scope| {
            let (to_other, other_rx) = std::sync::mpsc::channel::<()>();
            let (trimmed_tx, trimmed) = std::sync::mpsc::channel::<()>();
            let (depot, drops) = (&depot, &drops);
            let other = scope.spawn(move || {
                for _ in 0..3 {
                    depot.push(Counted(drops.clone()));
                }
                trimmed_tx.send(()).unwrap();
                other_rx.recv().unwrap();
                // This thread's next operation catches up with the trim.
                assert!(depot.pop().is_none());
            });
            trimmed.recv().unwrap();
            depot.push(Counted(drops.clone()));
            depot.push_shared(Counted(drops.clone()));
            assert_eq!(depot.trim(), 2);
            assert_eq!(drops.load(Ordering::SeqCst), 2);
            assert_eq!(
                depot.idle(),
                3,
                "the other thread's cache is untouched so far"
            );
            to_other.send(()).unwrap();
            other.join().unwrap();
        });
        assert_eq!(drops.load(Ordering::SeqCst), 5);
        assert_eq!(depot.released(), 5);
        assert_eq!(depot.idle(), 0);
    }

    #[test]
    fn an_item_drop_may_use_the_depot() {
        /// When dropped, `Reenter` pushes a `Plain` into the depot it holds.
        enum Item {
            Reenter(Arc<Depot<Item>>),
            Plain,
        }
        impl Drop for Item {
            fn drop(&mut self) {
                if let Item::Reenter(depot) = self {
                    depot.push(Item::Plain);
                }
            }
        }
        for limit in [0, 2] {
            let depot = Arc::new(Depot::with_shards(limit, 1));
            depot.push(Item::Reenter(depot.clone()));
            assert_eq!(depot.trim(), 1);
            // The drop pushed `Plain` after the trim took the items.
            assert_eq!(depot.idle(), 1, "limit {limit}");
            assert!(matches!(depot.pop(), Some(Item::Plain)));
            assert_eq!(Arc::strong_count(&depot), 1);
        }
    }
}
