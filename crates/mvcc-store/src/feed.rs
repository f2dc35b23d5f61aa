//! The change feed: the published version, the recent history of commits, and the wake-ups that
//! subscriptions wait for.
//!
//! The writer appends each commit's record to a ring of `capacity` slots (slot `version % capacity`) before
//! it publishes the version, so every version up to the published one is in the ring unless a newer one has
//! overwritten it. A subscription reads the slot of the next version it wants: the record it finds is either
//! that version (deliver it), or a newer one (the subscription lagged: it is told so and moves on to the
//! oldest record still held). The writer never waits for a subscription; each slot has its own small lock,
//! held only to swap or clone one `Arc`.
//!
//! Waking: a waiting subscription registers (a count of sleepers, plus its waker for an async one) and then
//! checks the published version again; the writer stores the published version and then reads the count of
//! sleepers, and notifies only when it is not zero. Each side puts a `SeqCst` fence between its store and its
//! load, so one of them sees the other: either the subscription sees the new version and does not sleep, or
//! the writer sees the sleeper and takes the waiters' lock, which it cannot get until the sleeper is parked
//! on the condition variable (or has left its waker). The loom models in `tests/loom/subscription.rs` check
//! it (with `SeqCst` accesses instead of fences, loom finds a lost wake-up: it models them as
//! acquire/release only).

use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::sync::{self, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, fence};

/// One commit as subscriptions see it: its version and its changes, sorted by key.
pub(crate) struct CommitRecord<K, V> {
    pub(crate) version: u64,
    /// Each written key with its new value, `None` for a deletion; sorted by key, one entry per key.
    pub(crate) changes: Vec<(K, Option<Arc<V>>)>,
    pub(crate) committed_at: Instant,
}

/// A ring slot: the record of the newest version `v` with `v % capacity` equal to the slot's index.
type Slot<K, V> = Mutex<Option<Arc<CommitRecord<K, V>>>>;

/// What the waiters' lock guards: the wakers of async subscriptions waiting for a newer version.
struct Waiters {
    wakers: Vec<(u64, Waker)>,
}

/// The part of a store that subscriptions share with it (it outlives the store while they do).
pub(crate) struct Feed<K, V> {
    /// The newest version readers may see. Published after the commit's versions, its ring record and (with
    /// a log) its durability. Written by every commit and read by every snapshot: on a cache line of its own,
    /// so that neither also pays for the fields around it.
    visible: CachePadded<AtomicU64>,
    ring: Box<[Slot<K, V>]>,
    /// The oldest version whose record is still in the ring; `visible + 1` when the ring holds none.
    first_retained: AtomicU64,
    closed: AtomicBool,
    /// Sleepers: blocking subscriptions in `wait` plus registered wakers.
    sleepers: AtomicUsize,
    waiters: Mutex<Waiters>,
    condvar: Condvar,
    next_subscriber: AtomicU64,
}

/// What a subscription finds when it looks for version `next`.
pub(crate) enum Lookup<K, V> {
    /// The record of `next`.
    Found(Arc<CommitRecord<K, V>>),
    /// `next` is not published yet.
    NotYet,
    /// The feed is closed (the store was dropped) and `next` was never published.
    Closed,
    /// The record of `next` was overwritten; the oldest retained version is this one.
    Lagged(u64),
}

impl<K, V> Feed<K, V> {
    /// A feed at `version` whose ring has `capacity` slots (at least 1).
    pub(crate) fn new(version: u64, capacity: usize) -> Self {
        Feed {
            visible: CachePadded::new(AtomicU64::new(version)),
            ring: (0..capacity.max(1)).map(|_| Mutex::new(None)).collect(),
            first_retained: AtomicU64::new(version + 1),
            closed: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters { wakers: Vec::new() }),
            condvar: Condvar::new(),
            next_subscriber: AtomicU64::new(0),
        }
    }

    /// The published version.
    #[inline]
    pub(crate) fn visible(&self) -> &AtomicU64 {
        &self.visible
    }

    /// The published version's number.
    #[inline]
    pub(crate) fn visible_version(&self) -> u64 {
        // Acquire: pairs with the store in `publish`, so the commit's versions and record are visible.
        self.visible.load(Ordering::Acquire)
    }

    /// The oldest version whose record is retained (a subscription may resume from one below it).
    pub(crate) fn first_retained(&self) -> u64 {
        // Acquire: pairs with the Release in `append`; a reader then finds that version's record (or a
        // newer one) in its slot.
        self.first_retained.load(Ordering::Acquire)
    }

    /// The time `version` was committed, if its record is retained.
    pub(crate) fn committed_at(&self, version: u64) -> Option<Instant> {
        match self.lookup(version) {
            Lookup::Found(record) => Some(record.committed_at),
            _ => None,
        }
    }

    /// Stores the record of the next version, returning the record it overwrote (to be dropped outside the
    /// commit lock). Writer only, in version order, before `publish`.
    pub(crate) fn append(
        &self,
        record: Arc<CommitRecord<K, V>>,
    ) -> Option<Arc<CommitRecord<K, V>>> {
        let version = record.version;
        let slot = &self.ring[(version % self.ring.len() as u64) as usize];
        let previous = sync::lock(slot).replace(record);
        if let Some(previous) = &previous {
            // Release: a subscription that reads this and then the slot of the old first version finds a
            // version at least this new there (the slot write above comes first).
            self.first_retained
                .store(previous.version + 1, Ordering::Release);
        }
        previous
    }

    /// Makes `version` visible to readers and wakes the subscriptions waiting for it. Called in version
    /// order, by the writer or (with a log) by the thread that made the version durable.
    #[inline]
    pub(crate) fn publish(&self, version: u64) {
        // Release: publishes the commit (its versions, its ring record) to readers' Acquire loads.
        self.visible.store(version, Ordering::Release);
        // SeqCst fence: the writer's half of the handshake with sleepers (module docs).
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence; a sleeper registered under the waiters' lock, which `wake_all` takes.
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake_all();
        }
    }

    /// Marks the feed closed (the store is gone) and wakes every waiter.
    pub(crate) fn close(&self) {
        // Release: pairs with the Acquire in `lookup`. No handshake is needed: `wake_all` always runs.
        self.closed.store(true, Ordering::Release);
        self.wake_all();
    }

    #[cold]
    fn wake_all(&self) {
        let wakers = {
            let mut waiters = sync::lock(&self.waiters);
            let wakers = std::mem::take(&mut waiters.wakers);
            // Relaxed: the count changes only under the waiters' lock.
            self.sleepers.fetch_sub(wakers.len(), Ordering::Relaxed);
            self.condvar.notify_all();
            wakers
        };
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// Whether a subscription wanting version `next` has something to look at (a published version or the
    /// end).
    fn ready(&self, next: u64) -> bool {
        // SeqCst fence: the sleeper's half of the handshake (module docs), between its registration and this
        // check. Acquire loads: pair with `publish` and `close`.
        fence(Ordering::SeqCst);
        self.visible.load(Ordering::Acquire) >= next || self.closed.load(Ordering::Acquire)
    }

    /// Looks for the record of `next`.
    pub(crate) fn lookup(&self, next: u64) -> Lookup<K, V> {
        if self.visible_version() < next {
            // Acquire: pairs with `close`'s store; everything published before it was checked above.
            return if self.closed.load(Ordering::Acquire) && self.visible_version() < next {
                Lookup::Closed
            } else {
                Lookup::NotYet
            };
        }
        let slot = &self.ring[(next % self.ring.len() as u64) as usize];
        let record = sync::lock(slot).clone();
        match record {
            Some(record) if record.version == next => Lookup::Found(record),
            // Overwritten by a newer version, or never held (below the history a recovered store kept).
            _ => Lookup::Lagged(self.first_retained().max(next + 1)),
        }
    }

    /// Blocks until version `next` is published or the feed closes, or `deadline` passes.
    pub(crate) fn wait(&self, next: u64, deadline: Option<Instant>) {
        let mut waiters = sync::lock(&self.waiters);
        // Relaxed: changed only under the waiters' lock; `ready` fences it before the check (module docs).
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        while !self.ready(next) {
            match deadline {
                None => waiters = sync::wait(&self.condvar, waiters),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    waiters = sync::wait_timeout(&self.condvar, waiters, deadline - now);
                }
            }
        }
        // Relaxed: under the waiters' lock.
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
        drop(waiters);
    }

    /// A number that tells one subscriber's waker from another's.
    pub(crate) fn subscriber_id(&self) -> u64 {
        // Relaxed: only distinctness matters.
        self.next_subscriber.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers `waker` for subscriber `id` unless version `next` is already ready; returns whether the
    /// caller should poll again at once.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn register(&self, id: u64, next: u64, waker: &Waker) -> bool {
        let mut waiters = sync::lock(&self.waiters);
        match waiters.wakers.iter_mut().find(|(owner, _)| *owner == id) {
            Some((_, registered)) => {
                if !registered.will_wake(waker) {
                    registered.clone_from(waker);
                }
            }
            None => {
                waiters.wakers.push((id, waker.clone()));
                // Relaxed: under the waiters' lock; `ready` fences it before the check (module docs).
                self.sleepers.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.ready(next)
    }

    /// Removes subscriber `id`'s waker, if registered.
    pub(crate) fn deregister(&self, id: u64) {
        let mut waiters = sync::lock(&self.waiters);
        if let Some(position) = waiters.wakers.iter().position(|(owner, _)| *owner == id) {
            waiters.wakers.swap_remove(position);
            // Relaxed: under the waiters' lock.
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
