//! `ObjectPool`: builder errors, capacity rules, the reset hook, detach, exact stats on one thread, trim
//! (here and in other threads' caches), reentrant user code, panics in user code, and counted multi-thread
//! stress tests in which no object is ever held twice and every object is dropped exactly once.
//!
//! Each test that depends on the thread caches runs with them on (the default) and off (`thread_cache(0)`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock, mpsc};
use std::thread;

use pools::{BuildError, ObjectPool, Pooled};

/// Thread cache settings every cache-sensitive test runs with.
const CACHES: [usize; 2] = [16, 0];

/// Iterations of the stress tests.
const STRESS: usize = if cfg!(miri) { 200 } else { 50_000 };

/// Creates and drops, shared by a pool's objects.
#[derive(Debug, Default)]
struct Counters {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

/// An object that counts its creation and drop, and knows who holds it.
#[derive(Debug)]
struct Tracked {
    id: usize,
    /// Set by a holder for as long as it holds the object.
    in_use: AtomicBool,
    /// What the reset hook looks at (`keep == false`: discard).
    keep: bool,
    value: u64,
    counters: Arc<Counters>,
}

impl Tracked {
    fn new(counters: &Arc<Counters>) -> Self {
        let id = counters.created.fetch_add(1, Ordering::SeqCst);
        Self {
            id,
            in_use: AtomicBool::new(false),
            keep: true,
            value: 0,
            counters: counters.clone(),
        }
    }

    /// Marks the object held, panicking if someone else holds it.
    fn acquire(&self) {
        assert!(
            !self.in_use.swap(true, Ordering::SeqCst),
            "object {} is held twice",
            self.id
        );
    }

    fn release(&self) {
        assert!(self.in_use.swap(false, Ordering::SeqCst));
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert!(
            !*self.in_use.get_mut(),
            "object {} dropped while held",
            self.id
        );
        self.counters.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

fn tracked_pool(
    counters: &Arc<Counters>,
    capacity: usize,
    thread_cache: usize,
) -> ObjectPool<Tracked> {
    let counters = counters.clone();
    ObjectPool::builder(move || Tracked::new(&counters))
        .capacity(capacity)
        .thread_cache(thread_cache)
        .reset(|object| {
            let keep = object.keep;
            object.keep = true;
            object.value = 0;
            keep
        })
        .build()
        .expect("valid configuration")
}

#[test]
fn builder_rejects_zero_capacity_and_too_much_prewarm_without_creating() {
    let created = Arc::new(AtomicUsize::new(0));
    let counting = {
        let created = created.clone();
        move || {
            created.fetch_add(1, Ordering::SeqCst);
        }
    };
    let error = ObjectPool::builder(counting.clone())
        .capacity(0)
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::ZeroCapacity);
    let error = ObjectPool::builder(counting)
        .capacity(3)
        .prewarm(4)
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        BuildError::PrewarmExceedsCapacity {
            prewarm: 4,
            capacity: 3
        }
    );
    assert_eq!(created.load(Ordering::SeqCst), 0);
}

#[test]
fn defaults() {
    let pool = ObjectPool::new(|| 0u8);
    assert_eq!(pool.capacity(), 256);
    assert_eq!(
        pool.capacity(),
        pools::ObjectPoolBuilder::<u8>::DEFAULT_CAPACITY
    );
    let stats = pool.stats();
    assert_eq!((stats.created, stats.idle, stats.live), (0, 0, 0));
}

#[test]
fn prewarm_creates_exactly_k_and_gets_use_them() {
    for cache in CACHES {
        let counters = Arc::new(Counters::default());
        let counting = counters.clone();
        let pool = ObjectPool::builder(move || Tracked::new(&counting))
            .capacity(5)
            .prewarm(3)
            .thread_cache(cache)
            .build()
            .unwrap();
        assert_eq!(counters.created.load(Ordering::SeqCst), 3);
        let stats = pool.stats();
        assert_eq!((stats.created, stats.idle, stats.live), (3, 3, 3));
        let held: Vec<_> = (0..3).map(|_| pool.get()).collect();
        assert_eq!(counters.created.load(Ordering::SeqCst), 3, "cache {cache}");
        assert_eq!(pool.stats().hits, 3);
        drop(held);
        drop(pool);
        assert_eq!(counters.dropped.load(Ordering::SeqCst), 3);
    }
}

#[test]
fn try_get_stops_at_capacity_and_get_goes_beyond() {
    for cache in CACHES {
        let counters = Arc::new(Counters::default());
        let pool = tracked_pool(&counters, 2, cache);
        let a = pool.try_get().expect("room");
        let b = pool.try_get().expect("room");
        assert!(pool.try_get().is_none(), "cache {cache}");
        let c = pool.get();
        let stats = pool.stats();
        assert_eq!((stats.created, stats.live, stats.idle), (3, 3, 0));
        assert_eq!(stats.misses, 4);
        drop(a);
        // live (3) > capacity (2): the first return is discarded.
        let stats = pool.stats();
        assert_eq!((stats.discarded, stats.live, stats.idle), (1, 2, 0));
        drop(b);
        drop(c);
        let stats = pool.stats();
        assert_eq!((stats.discarded, stats.live, stats.idle), (1, 2, 2));
        assert_eq!(counters.dropped.load(Ordering::SeqCst), 1);
        // At capacity but objects are idle: `try_get` hands them out.
        let a = pool.try_get().expect("idle object");
        let b = pool.try_get().expect("idle object");
        assert!(pool.try_get().is_none());
        assert_eq!(pool.stats().created, 3);
        drop((a, b));
    }
}

#[test]
fn reset_runs_on_return_and_false_discards() {
    for cache in CACHES {
        let counters = Arc::new(Counters::default());
        let pool = tracked_pool(&counters, 4, cache);
        let mut object = pool.get();
        object.value = 7;
        let id = object.id;
        drop(object);
        let object = pool.get();
        assert_eq!((object.id, object.value), (id, 0), "reset cleared it");
        let mut object = object;
        object.keep = false;
        drop(object);
        assert_eq!(counters.dropped.load(Ordering::SeqCst), 1);
        let stats = pool.stats();
        assert_eq!((stats.discarded, stats.live, stats.idle), (1, 0, 0));
        assert_ne!(pool.get().id, id, "a new object replaces the discarded one");
    }
}

#[test]
fn detach_takes_the_object_out_of_the_accounting() {
    for cache in CACHES {
        let counters = Arc::new(Counters::default());
        let pool = tracked_pool(&counters, 1, cache);
        let object = pool.try_get().unwrap();
        assert!(pool.try_get().is_none());
        let detached: Tracked = object.detach();
        let stats = pool.stats();
        assert_eq!((stats.detached, stats.live, stats.idle), (1, 0, 0));
        let replacement = pool.try_get().expect("the detached object left room");
        assert_ne!(replacement.id, detached.id);
        drop(replacement);
        drop(detached);
        assert_eq!(pool.stats().idle, 1);
        drop(pool);
        assert_eq!(counters.dropped.load(Ordering::SeqCst), 2);
    }
}

#[test]
fn stats_are_exact_on_one_thread() {
    for cache in CACHES {
        let pool = ObjectPool::builder(|| [0u8; 100])
            .capacity(3)
            .prewarm(1)
            .thread_cache(cache)
            .reset(|object| object[0] == 0)
            .build()
            .unwrap();
        let a = pool.get(); // hit (prewarmed)
        let b = pool.get(); // miss, created
        let c = pool.try_get().unwrap(); // miss, created
        assert!(pool.try_get().is_none()); // miss, at capacity
        let d = pool.get(); // miss, created beyond capacity
        let mut e = pool.get(); // miss, created beyond capacity
        e[0] = 1;
        drop(e); // discarded by reset
        drop(d); // discarded: live 4 > 3
        drop(c);
        let bytes = pool.stats().bytes_held;
        assert_eq!(bytes, 100);
        let f = pool.get(); // hit
        let stats = pool.stats();
        assert_eq!(stats.hits, 2, "cache {cache}");
        assert_eq!(stats.misses, 5);
        assert_eq!(stats.created, 5);
        assert_eq!(stats.discarded, 2);
        assert_eq!((stats.idle, stats.live, stats.capacity), (0, 3, 3));
        drop((a, b, f));
        let stats = pool.stats();
        assert_eq!((stats.idle, stats.live, stats.bytes_held), (3, 3, 300));
        assert_eq!(format!("{:?}", pool.get()), format!("{:?}", [0u8; 100]));
    }
}

#[test]
fn trim_releases_the_shared_level_and_this_threads_cache() {
    for cache in CACHES {
        let counters = Arc::new(Counters::default());
        let pool = tracked_pool(&counters, 8, cache);
        let held: Vec<_> = (0..5).map(|_| pool.get()).collect();
        drop(held);
        let kept = pool.get();
        assert_eq!(pool.trim(), 4);
        assert_eq!(counters.dropped.load(Ordering::SeqCst), 4);
        let stats = pool.stats();
        assert_eq!(
            (stats.trimmed, stats.idle, stats.live, stats.bytes_held),
            (4, 0, 1, 0)
        );
        drop(kept);
        assert_eq!(pool.stats().idle, 1);
        assert_eq!(pool.trim(), 1);
        assert_eq!(pool.trim(), 0);
        let stats = pool.stats();
        assert_eq!((stats.trimmed, stats.live, stats.created), (5, 0, 5));
    }
}

#[test]
fn trim_reaches_other_threads_caches_on_their_next_use() {
    let counters = Arc::new(Counters::default());
    let pool = tracked_pool(&counters, 8, 4);
    let (to_worker, worker_rx) = mpsc::channel::<()>();
    let (to_main, main_rx) = mpsc::channel::<()>();
    let pool = &pool;
    // `move`: if an assertion below fails, `to_worker` drops and the worker stops waiting.
    thread::scope(move |scope| {
        scope.spawn(move || {
            let held: Vec<_> = (0..3).map(|_| pool.get()).collect();
            drop(held); // three objects in this thread's cache
            to_main.send(()).unwrap();
            worker_rx.recv().unwrap();
            // Catches up with the trim: its three objects go, and a new one is created.
            let object = pool.get();
            assert_eq!(object.id, 3);
            to_main.send(()).unwrap();
            worker_rx.recv().unwrap();
        });
        main_rx.recv().unwrap();
        assert_eq!(pool.stats().idle, 3);
        assert_eq!(
            pool.trim(),
            0,
            "nothing in the shared level or this thread's cache"
        );
        assert_eq!(pool.stats().idle, 3);
        to_worker.send(()).unwrap();
        main_rx.recv().unwrap();
        assert_eq!(counters.dropped.load(Ordering::SeqCst), 3);
        let stats = pool.stats();
        // The worker holds its new object.
        assert_eq!((stats.trimmed, stats.idle, stats.live), (3, 0, 1));
        to_worker.send(()).unwrap();
    });
}

#[test]
fn objects_returned_on_another_thread_are_reused() {
    for cache in CACHES {
        let counters = Arc::new(Counters::default());
        let pool = tracked_pool(&counters, 64, cache);
        for _ in 0..4 {
            let held: Vec<_> = (0..20).map(|_| pool.get()).collect();
            thread::scope(|scope| {
                scope.spawn(move || drop(held));
            });
        }
        // Each other thread's cache keeps at most 16 and spills the rest to the shared level.
        assert!(
            counters.created.load(Ordering::SeqCst) < 80,
            "cache {cache}: created {}",
            counters.created.load(Ordering::SeqCst)
        );
        let stats = pool.stats();
        assert_eq!(stats.live, stats.idle);
        assert_eq!(
            stats.created as usize,
            counters.created.load(Ordering::SeqCst)
        );
    }
}

#[test]
fn dropping_the_pool_drops_every_idle_object_exactly_once() {
    for cache in CACHES {
        let log = Arc::new(Mutex::new(Vec::new()));
        /// Logs its id when dropped.
        struct Logged(usize, Arc<Mutex<Vec<usize>>>);
        impl Drop for Logged {
            fn drop(&mut self) {
                self.1.lock().unwrap().push(self.0);
            }
        }
        let next = AtomicUsize::new(0);
        let logging = log.clone();
        let pool = ObjectPool::builder(move || {
            Logged(next.fetch_add(1, Ordering::SeqCst), logging.clone())
        })
        .capacity(40)
        .prewarm(10)
        .thread_cache(cache)
        .build()
        .unwrap();
        let held: Vec<_> = (0..30).map(|_| pool.get()).collect();
        drop(held);
        // Some objects sit in another thread's cache.
        thread::scope(|scope| {
            scope.spawn(|| drop((0..7).map(|_| pool.get()).collect::<Vec<_>>()));
        });
        assert!(log.lock().unwrap().is_empty());
        drop(pool);
        let mut dropped = log.lock().unwrap().clone();
        dropped.sort_unstable();
        assert_eq!(dropped, (0..30).collect::<Vec<_>>(), "cache {cache}");
    }
}

/// A node that may hold a loan from its own pool: its drop (and the reset hook) return that loan.
#[derive(Debug, Default)]
struct Node {
    child: Option<Pooled<'static, Node>>,
}

fn reentrant_pool(
    slot: &'static OnceLock<ObjectPool<Node>>,
    cache: usize,
    reset: bool,
) -> &'static ObjectPool<Node> {
    slot.get_or_init(|| {
        let builder = ObjectPool::builder(Node::default)
            .capacity(8)
            .thread_cache(cache);
        let builder = if reset {
            builder.reset(|node| {
                node.child = None; // returns the child to this same pool, inside the hook
                true
            })
        } else {
            builder
        };
        builder.build().unwrap()
    })
}

#[test]
fn user_code_may_reenter_the_pool() {
    static POOLS: [OnceLock<ObjectPool<Node>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    for (index, slot) in POOLS.iter().enumerate() {
        let (cache, reset) = (CACHES[index % 2], index >= 2);
        let pool = reentrant_pool(slot, cache, reset);
        // A chain of three loans, each held by the previous one.
        let mut root = pool.get();
        let mut middle = pool.get();
        middle.child = Some(pool.get());
        root.child = Some(middle);
        assert_eq!(pool.stats().live, 3);
        drop(root);
        let stats = pool.stats();
        if reset {
            // The hook cut the chain: all three are idle.
            assert_eq!((stats.idle, stats.live), (3, 3));
        } else {
            // The root went back still holding its child: one idle, two held by it.
            assert_eq!((stats.idle, stats.live), (1, 3));
            // Trim drops the root, whose drop returns the middle to the pool, whose drop...
            assert_eq!(pool.trim(), 1);
            let stats = pool.stats();
            assert_eq!(
                (stats.idle, stats.live),
                (1, 2),
                "the middle came back, holding the leaf"
            );
            assert_eq!(pool.trim(), 1);
            let stats = pool.stats();
            assert_eq!((stats.idle, stats.live), (1, 1), "the leaf came back");
            assert_eq!(pool.trim(), 1);
            assert_eq!(pool.stats().live, 0);
        }
        pool.trim();
        assert_eq!(pool.stats().idle, 0);
    }
}

/// An object whose creation takes a loan from its own pool.
#[derive(Debug)]
struct Chain(Option<Pooled<'static, Chain>>);

#[test]
fn create_may_use_the_pool() {
    static POOL: OnceLock<ObjectPool<Chain>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        ObjectPool::builder(|| Chain(POOL.get().and_then(ObjectPool::try_get)))
            .capacity(3)
            .build()
            .unwrap()
    });
    // Each creation reserves a place, then its `create` calls `try_get`, which reserves the next...
    let head = pool.try_get().expect("room");
    let depth = std::iter::successors(Some(&*head), |link| link.0.as_deref()).count();
    assert_eq!(depth, 3, "the third creation found the pool at capacity");
    assert!(pool.try_get().is_none());
    let stats = pool.stats();
    // Four `try_get`s in the chain (the last found no room), and the one just above.
    assert_eq!((stats.created, stats.live, stats.misses), (3, 3, 5));
    drop(head);
    // The head went back holding the rest of the chain.
    assert_eq!(pool.stats().idle, 1);
}

#[test]
fn a_panicking_reset_discards_the_object_and_leaves_the_pool_consistent() {
    for cache in CACHES {
        let counters = Arc::new(Counters::default());
        let counting = counters.clone();
        let pool = ObjectPool::builder(move || Tracked::new(&counting))
            .capacity(4)
            .thread_cache(cache)
            .reset(|object| {
                assert!(object.value != 13, "unlucky object");
                true
            })
            .build()
            .unwrap();
        let mut unlucky = pool.get();
        let fine = pool.get();
        unlucky.value = 13;
        let result = catch_unwind(AssertUnwindSafe(|| drop(unlucky)));
        assert!(result.is_err());
        assert_eq!(counters.dropped.load(Ordering::SeqCst), 1);
        let stats = pool.stats();
        assert_eq!((stats.discarded, stats.live, stats.idle), (1, 1, 0));
        drop(fine);
        assert_eq!(pool.stats().idle, 1);
        let again = pool.try_get().unwrap();
        assert_eq!(again.value, 0);
        drop(again);
        drop(pool);
        assert_eq!(counters.dropped.load(Ordering::SeqCst), 2);
    }
}

#[test]
fn a_panicking_create_counts_nothing_and_gives_the_reservation_back() {
    for cache in CACHES {
        let fail = Arc::new(AtomicBool::new(true));
        let failing = fail.clone();
        let pool = ObjectPool::builder(move || {
            assert!(!failing.load(Ordering::SeqCst), "create failed");
            5u32
        })
        .capacity(1)
        .thread_cache(cache)
        .build()
        .unwrap();
        assert!(catch_unwind(AssertUnwindSafe(|| pool.try_get().is_some())).is_err());
        assert!(catch_unwind(AssertUnwindSafe(|| *pool.get())).is_err());
        let stats = pool.stats();
        assert_eq!((stats.created, stats.live), (0, 0));
        fail.store(false, Ordering::SeqCst);
        let object = pool
            .try_get()
            .expect("the failed try_get gave its place back");
        assert_eq!(*object, 5);
        assert!(pool.try_get().is_none());
    }
}

#[test]
fn a_large_object_is_not_moved_between_get_and_return() {
    let pool = ObjectPool::builder(|| [7u8; 4096])
        .capacity(2)
        .build()
        .unwrap();
    let object = pool.get();
    let address = std::ptr::from_ref(&*object);
    drop(object);
    let object = pool.get();
    assert_eq!(std::ptr::from_ref(&*object), address);
}

#[test]
fn send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<ObjectPool<Vec<u8>>>();
    send_sync::<ObjectPool<std::cell::Cell<u8>>>();
    send_sync::<Pooled<'static, Vec<u8>>>();
    send::<Pooled<'static, std::cell::Cell<u8>>>();
    send_sync::<pools::ObjectPoolBuilder<Vec<u8>>>();
}

#[test]
fn debug_output() {
    let pool = ObjectPool::builder(|| 3u8).capacity(2).build().unwrap();
    let object = pool.get();
    assert_eq!(format!("{object:?}"), "3");
    let text = format!("{pool:?}");
    assert!(text.starts_with("ObjectPool { capacity: 2"), "{text}");
    assert!(format!("{:?}", ObjectPool::builder(|| 1u8)).contains("capacity: 256"));
}

/// Threads get, check and return objects (sometimes discarding, detaching, passing a loan to another
/// thread, or trimming); nobody ever holds an object someone else holds, and every object is dropped once.
fn stress(threads: usize, capacity: usize, cache: usize) {
    let counters = Arc::new(Counters::default());
    let pool = tracked_pool(&counters, capacity, cache);
    let detached = AtomicUsize::new(0);
    let barrier = Barrier::new(threads);
    let (to_next, from_previous): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::channel()).unzip();
    thread::scope(|scope| {
        for (index, receiver) in from_previous.into_iter().enumerate() {
            let sender: mpsc::Sender<Pooled<'_, Tracked>> = to_next[(index + 1) % threads].clone();
            let (pool, barrier, detached) = (&pool, &barrier, &detached);
            scope.spawn(move || {
                let mut seed = index as u64 + 1;
                let mut held = Vec::new();
                barrier.wait();
                for step in 0..STRESS {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let roll = (seed >> 33) % 100;
                    match roll {
                        0..=39 => {
                            let mut object = pool.get();
                            object.acquire();
                            object.value = step as u64;
                            held.push(object);
                        }
                        40..=54 => {
                            if let Some(object) = pool.try_get() {
                                object.acquire();
                                held.push(object);
                            }
                        }
                        55..=89 => {
                            if let Some(mut object) = held.pop() {
                                object.keep = !roll.is_multiple_of(7);
                                object.release();
                                if roll.is_multiple_of(11) {
                                    // Another thread returns it.
                                    let _ = sender.send(object);
                                } else {
                                    drop(object);
                                }
                            }
                        }
                        90..=91 => {
                            if let Some(object) = held.pop() {
                                object.release();
                                drop(object.detach());
                                detached.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        92 => {
                            pool.trim();
                        }
                        _ => {
                            while let Ok(object) = receiver.try_recv() {
                                drop(object);
                            }
                        }
                    }
                    if held.len() > 8 {
                        let object = held.remove(0);
                        object.release();
                    }
                }
                for object in held.drain(..) {
                    object.release();
                }
                drop(held);
                barrier.wait();
                while let Ok(object) = receiver.try_recv() {
                    drop(object);
                }
            });
        }
    });
    drop(to_next);
    let stats = pool.stats();
    assert_eq!(
        stats.created as usize,
        counters.created.load(Ordering::SeqCst)
    );
    assert_eq!(stats.detached as usize, detached.load(Ordering::SeqCst));
    // Everything is back: the live objects are exactly the idle ones.
    assert_eq!(stats.live, stats.idle, "{stats:?}");
    assert_eq!(
        counters.created.load(Ordering::SeqCst) - counters.dropped.load(Ordering::SeqCst),
        stats.idle,
        "{stats:?}"
    );
    assert!(stats.idle <= capacity, "{stats:?}");
    drop(pool);
    assert_eq!(
        counters.created.load(Ordering::SeqCst),
        counters.dropped.load(Ordering::SeqCst)
    );
}

#[test]
fn stress_with_thread_caches() {
    stress(4, 16, 8);
}

#[test]
fn stress_without_thread_caches() {
    stress(4, 16, 0);
}

#[test]
fn stress_small_capacity() {
    stress(3, 1, 16);
}

/// Many threads, each with its own short-lived cache: thread slots are reused, with their caches.
#[test]
fn short_lived_threads_reuse_cache_slots() {
    let counters = Arc::new(Counters::default());
    let pool = tracked_pool(&counters, 32, 8);
    let rounds = if cfg!(miri) { 4 } else { 64 };
    for _ in 0..rounds {
        thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    let held: Vec<_> = (0..5).map(|_| pool.get()).collect();
                    for object in &held {
                        object.acquire();
                        object.release();
                    }
                });
            }
        });
    }
    let stats = pool.stats();
    assert_eq!(stats.live, stats.idle);
    assert!(stats.idle <= 32);
    drop(pool);
    assert_eq!(
        counters.created.load(Ordering::SeqCst),
        counters.dropped.load(Ordering::SeqCst)
    );
}

/// A loan dropped from a thread-local destructor while the thread exits goes back to the pool.
#[test]
fn a_loan_dropped_during_thread_exit_is_returned() {
    static POOL: OnceLock<ObjectPool<u64>> = OnceLock::new();
    let pool = POOL.get_or_init(|| ObjectPool::builder(|| 9).capacity(4).build().unwrap());
    /// Holds a loan until the thread's locals are destroyed.
    struct HeldUntilExit(std::cell::RefCell<Vec<Pooled<'static, u64>>>);
    impl Drop for HeldUntilExit {
        fn drop(&mut self) {
            // Also takes a new loan while the thread exits.
            let extra = POOL.get().unwrap().get();
            self.0.get_mut().push(extra);
            self.0.get_mut().clear();
        }
    }
    thread_local! {
        static HELD: HeldUntilExit = const { HeldUntilExit(std::cell::RefCell::new(Vec::new())) };
    }
    thread::spawn(move || {
        HELD.with(|held| held.0.borrow_mut().push(pool.get()));
    })
    .join()
    .unwrap();
    let stats = pool.stats();
    assert_eq!(stats.live, stats.idle, "{stats:?}");
    assert!(stats.idle >= 1 && stats.created <= 2, "{stats:?}");
}
