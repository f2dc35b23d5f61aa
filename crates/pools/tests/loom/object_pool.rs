//! Loom models of `ObjectPool`'s shared path (under loom the thread caches are off, and the depot has two
//! shards, so every get and return goes through the shard locks and the capacity counters).
//!
//! Objects carry a loom `UnsafeCell` "resource" where it matters: creating an object writes it and dropping
//! one writes it, so loom reports a causality violation if a replacement could be created before the object
//! it replaces has finished dropping (the Release/Acquire pairs of `discard`/`release` with `try_get`).

use std::sync::atomic::Ordering::SeqCst;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::thread;
use pools::ObjectPool;

/// Creations and drops of a model's objects.
#[derive(Default)]
struct Counters {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

/// An object that asserts it is never held twice and counts its creation and drop.
struct Object {
    in_use: AtomicBool,
    keep: bool,
    counters: Arc<Counters>,
}

impl Object {
    fn new(counters: &Arc<Counters>) -> Self {
        counters.created.fetch_add(1, SeqCst);
        Self {
            in_use: AtomicBool::new(false),
            keep: true,
            counters: counters.clone(),
        }
    }

    fn hold(&self) {
        assert!(!self.in_use.swap(true, SeqCst), "an object is held twice");
    }

    fn let_go(&self) {
        self.in_use.store(false, SeqCst);
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        self.counters.dropped.fetch_add(1, SeqCst);
    }
}

fn pool(counters: &Arc<Counters>, capacity: usize, prewarm: usize) -> Arc<ObjectPool<Object>> {
    let counters = counters.clone();
    Arc::new(
        ObjectPool::builder(move || Object::new(&counters))
            .capacity(capacity)
            .prewarm(prewarm)
            .reset(|object| std::mem::replace(&mut object.keep, true))
            .build()
            .unwrap(),
    )
}

/// Two threads get and return concurrently: no object is held twice, and dropping the pool drops every
/// object created.
#[test]
fn get_return_race() {
    loom::model(|| {
        let counters = Arc::new(Counters::default());
        let pool = pool(&counters, 2, 1);
        let other = {
            let pool = pool.clone();
            thread::spawn(move || {
                let object = pool.get();
                object.hold();
                object.let_go();
            })
        };
        let object = pool.get();
        object.hold();
        object.let_go();
        drop(object);
        other.join().unwrap();
        let stats = pool.stats();
        assert_eq!(stats.live, stats.idle);
        assert_eq!(stats.created as usize, counters.created.load(SeqCst));
        drop(pool);
        assert_eq!(counters.created.load(SeqCst), counters.dropped.load(SeqCst));
    });
}

/// A unique resource: whether an object holds it. Accessed without synchronisation on purpose.
#[derive(Default)]
struct Resource(UnsafeCell<bool>);

// SAFETY: every access goes through loom's `UnsafeCell`, which fails the model if two accesses are not
// ordered by happens-before; that is what the models check.
unsafe impl Sync for Resource {}

/// An object that occupies the resource from creation to drop: two alive at once is a data race.
struct Exclusive {
    resource: Arc<Resource>,
    keep: bool,
}

impl Exclusive {
    fn new(resource: &Arc<Resource>) -> Self {
        resource.0.with_mut(|taken| {
            // SAFETY: loom checks that no other access to the cell is concurrent with this one.
            let taken = unsafe { &mut *taken };
            assert!(!*taken, "two objects hold the resource");
            *taken = true;
        });
        Self {
            resource: resource.clone(),
            keep: true,
        }
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        // SAFETY: loom checks that no other access to the cell is concurrent with this one.
        self.resource.0.with_mut(|taken| unsafe { *taken = false });
    }
}

/// Capacity 1 and `try_get` only: while one thread discards its object (reset refuses it) or the main
/// thread trims it, the other may create a replacement, but only once the old one has finished dropping.
#[test]
fn try_get_at_capacity_never_has_two_alive() {
    loom::model(|| {
        let resource = Arc::new(Resource::default());
        let pool = {
            let resource = resource.clone();
            Arc::new(
                ObjectPool::builder(move || Exclusive::new(&resource))
                    .capacity(1)
                    .reset(|object| object.keep)
                    .build()
                    .unwrap(),
            )
        };
        let first = pool.try_get().expect("room for one");
        let other = {
            let pool = pool.clone();
            thread::spawn(move || {
                if let Some(mut object) = pool.try_get() {
                    object.keep = false;
                }
            })
        };
        let mut first = first;
        first.keep = false;
        drop(first); // discarded: its drop must happen before any replacement is created
        let again = pool.try_get();
        other.join().unwrap();
        drop(again);
        pool.trim();
        assert_eq!(pool.stats().live, 0);
    });
}

/// As above, with the place freed by `trim` (through the depot's `released` counter) instead of a discard.
#[test]
fn try_get_after_trim_never_has_two_alive() {
    loom::model(|| {
        let resource = Arc::new(Resource::default());
        let pool = {
            let resource = resource.clone();
            Arc::new(
                ObjectPool::builder(move || Exclusive::new(&resource))
                    .capacity(1)
                    .prewarm(1)
                    .build()
                    .unwrap(),
            )
        };
        let other = {
            let pool = pool.clone();
            thread::spawn(move || {
                pool.trim();
            })
        };
        let object = pool.try_get();
        drop(object);
        let again = pool.try_get();
        other.join().unwrap();
        drop(again);
        let stats = pool.stats();
        assert!(stats.live <= 1);
        assert_eq!(stats.live, stats.idle);
    });
}

/// Two threads return while a third trims: every object ends up idle or trimmed, exactly once.
#[test]
fn two_returns_race_with_trim() {
    loom::model(|| {
        let counters = Arc::new(Counters::default());
        let pool = pool(&counters, 4, 0);
        let a = pool.get();
        let b = pool.get();
        // Safe to send: the loans borrow a pool that outlives both threads (joined below).
        let (a, b) = (SendLoan::new(a), SendLoan::new(b));
        let returners: Vec<_> = [a, b]
            .into_iter()
            .map(|loan| thread::spawn(move || loan.give_back()))
            .collect();
        let trimmed = pool.trim();
        for returner in returners {
            returner.join().unwrap();
        }
        let stats = pool.stats();
        assert_eq!(stats.trimmed as usize, trimmed);
        assert_eq!(stats.idle + trimmed, 2);
        assert_eq!(counters.dropped.load(SeqCst), trimmed);
        assert_eq!(stats.live, stats.idle);
        drop(pool);
        assert_eq!(counters.dropped.load(SeqCst), 2);
    });
}

/// Two threads return surplus objects at once (capacity 1, three live): exactly two are discarded.
#[test]
fn surplus_returns_race() {
    loom::model(|| {
        let counters = Arc::new(Counters::default());
        let pool = pool(&counters, 1, 0);
        let loans: Vec<_> = (0..3).map(|_| SendLoan::new(pool.get())).collect();
        let mut loans = loans.into_iter();
        let first = loans.next().unwrap();
        let returners: Vec<_> = loans
            .map(|loan| thread::spawn(move || loan.give_back()))
            .collect();
        first.give_back();
        for returner in returners {
            returner.join().unwrap();
        }
        let stats = pool.stats();
        assert_eq!((stats.discarded, stats.live, stats.idle), (2, 1, 1));
        assert_eq!(counters.dropped.load(SeqCst), 2);
    });
}

/// A loan moved to a spawned loom thread. `Pooled` borrows its pool, and loom's `spawn` wants `'static`:
/// this erases the lifetime, which is sound here because every model joins the threads before the pool
/// (kept alive by an `Arc` in the model) is dropped.
struct SendLoan(pools::Pooled<'static, Object>);

impl SendLoan {
    fn new(loan: pools::Pooled<'_, Object>) -> Self {
        // SAFETY: see the type's docs: the pool outlives every use of the loan.
        Self(unsafe {
            std::mem::transmute::<pools::Pooled<'_, Object>, pools::Pooled<'static, Object>>(loan)
        })
    }

    fn give_back(self) {
        drop(self.0);
    }
}
