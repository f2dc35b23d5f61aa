//! Concurrent stress tests with real threads: an owner pushing and popping against thieves that steal
//! single items and batches, the injector with several producers and consumers, the bounded deque with
//! thieves, and a small work-stealing pool. Every item is a unique integer; at the end each must have been
//! taken exactly once (and, for the drop-counting runs, dropped exactly once).
//!
//! Sizes shrink under Miri (run with `MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-ignore-leaks"`, as for
//! `tests/flavours.rs`: the growable deque and the injector free memory through crossbeam-epoch). The
//! `#[ignore]`d `*_long` tests move millions of items, for the ThreadSanitizer and soak runs
//! (`cargo test --release -- --ignored long`); `STRESS_SCALE` scales them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use ws_deque::{Injector, Steal, Stealer, Worker, bounded};

/// Items moved by the default-size tests.
const COUNT: u64 = if cfg!(miri) { 200 } else { 100_000 };

/// Items moved by the `#[ignore]`d long tests, before scaling.
const LONG_COUNT: u64 = 5_000_000;

/// `LONG_COUNT` times `STRESS_SCALE` from the environment (`.ci/tsan.sh` sets 0.1, as ThreadSanitizer is
/// 5-15x slower), at least 10 000.
fn long_count() -> u64 {
    let scale = std::env::var("STRESS_SCALE")
        .ok()
        .and_then(|scale| scale.parse::<f64>().ok())
        .unwrap_or(1.0);
    ((LONG_COUNT as f64 * scale) as u64).max(10_000)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    Lifo,
    Fifo,
}

fn worker<T>(flavour: Flavour) -> Worker<T> {
    match flavour {
        Flavour::Lifo => Worker::new_lifo(),
        Flavour::Fifo => Worker::new_fifo(),
    }
}

/// An item that counts its drops in a counter shared with the test.
#[derive(Debug)]
struct DropCounter {
    id: u64,
    drops: Arc<AtomicUsize>,
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Asserts that `ids` is exactly `0..count`, each once.
fn assert_each_taken_once(mut ids: Vec<u64>, count: u64) {
    ids.sort_unstable();
    let duplicates = ids.windows(2).filter(|pair| pair[0] == pair[1]).count();
    assert_eq!(duplicates, 0, "items were taken twice");
    assert_eq!(ids.len() as u64, count, "items were lost");
    assert!(ids.iter().copied().eq(0..count), "unknown items appeared");
}

/// How a thief takes items.
#[derive(Clone, Copy, Debug)]
enum Thief {
    /// `steal`.
    Single,
    /// `steal_batch` into its own worker, then pops them.
    Batch,
    /// `steal_batch_and_pop` into its own worker, then pops the rest.
    BatchAndPop,
    /// `steal_batch_with_limit_and_pop`.
    BatchWithLimitAndPop(usize),
}

/// One steal attempt; what it takes ends up in `taken` (via `own` for batches).
fn steal_once<T>(
    how: Thief,
    stealer: &Stealer<T>,
    own: &Worker<T>,
    taken: &mut Vec<T>,
) -> Steal<()> {
    let mut keep = |steal: Steal<T>| match steal {
        Steal::Success(item) => {
            taken.push(item);
            Steal::Success(())
        }
        Steal::Empty => Steal::Empty,
        Steal::Retry => Steal::Retry,
    };
    let outcome = match how {
        Thief::Single => keep(stealer.steal()),
        Thief::Batch => stealer.steal_batch(own),
        Thief::BatchAndPop => keep(stealer.steal_batch_and_pop(own)),
        Thief::BatchWithLimitAndPop(limit) => {
            keep(stealer.steal_batch_with_limit_and_pop(own, limit))
        }
    };
    taken.extend(std::iter::from_fn(|| own.pop()));
    outcome
}

/// Steals until the owner is `done` and the deque is empty.
fn run_thief<T>(how: Thief, own: Flavour, stealer: &Stealer<T>, done: &AtomicBool) -> Vec<T> {
    let own = worker(own);
    let mut taken = Vec::new();
    loop {
        // Read before the steal: an `Empty` after the owner finished means nothing is left.
        let finished = done.load(Ordering::SeqCst);
        match steal_once(how, stealer, &own, &mut taken) {
            // Stand-in for running the stolen work; it also lets the other thieves and the owner in.
            Steal::Success(()) => thread::yield_now(),
            Steal::Empty if finished => break,
            Steal::Empty | Steal::Retry => thread::yield_now(),
        }
    }
    taken
}

/// Pushes `0..count` in bursts of 1 to 300 items, pops a quarter of each burst and empties the deque every
/// eighth burst (so the buffer grows and shrinks while thieves read it), then pops what is left.
fn run_owner<T>(worker: &Worker<T>, count: u64, make: impl Fn(u64) -> T) -> Vec<T> {
    let mut taken = Vec::new();
    let mut next = 0;
    let mut round = 0u64;
    while next < count {
        let burst = (round * 37 % 300 + 1).min(count - next);
        for _ in 0..burst {
            worker.push(make(next));
            next += 1;
        }
        // Give the thieves a chance on a machine with fewer cores than threads.
        thread::yield_now();
        let pops = if round % 8 == 7 { u64::MAX } else { burst / 4 };
        for _ in 0..pops {
            match worker.pop() {
                Some(item) => taken.push(item),
                None => break,
            }
        }
        round += 1;
    }
    taken.extend(std::iter::from_fn(|| worker.pop()));
    taken
}

const THIEVES: [(Thief, Flavour); 3] = [
    (Thief::Single, Flavour::Lifo),
    (Thief::Batch, Flavour::Fifo),
    (Thief::BatchAndPop, Flavour::Lifo),
];

/// An owner against three thieves; returns everything taken, by the owner first.
fn owner_and_thieves<T: Send>(flavour: Flavour, count: u64, make: impl Fn(u64) -> T) -> Vec<T> {
    let worker = worker(flavour);
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        let thieves: Vec<_> = THIEVES
            .iter()
            .map(|&(how, own)| {
                let stealer = worker.stealer();
                let done = &done;
                scope.spawn(move || run_thief(how, own, &stealer, done))
            })
            .collect();
        let mut taken = run_owner(&worker, count, make);
        done.store(true, Ordering::SeqCst);
        for thief in thieves {
            taken.extend(thief.join().expect("thief panicked"));
        }
        taken
    })
}

#[test]
fn lifo_owner_and_thieves() {
    assert_each_taken_once(owner_and_thieves(Flavour::Lifo, COUNT, |id| id), COUNT);
}

#[test]
fn fifo_owner_and_thieves() {
    assert_each_taken_once(owner_and_thieves(Flavour::Fifo, COUNT, |id| id), COUNT);
}

#[test]
fn owner_and_thieves_drop_each_item_once() {
    for flavour in [Flavour::Lifo, Flavour::Fifo] {
        let drops = Arc::new(AtomicUsize::new(0));
        let taken = owner_and_thieves(flavour, COUNT, |id| DropCounter {
            id,
            drops: drops.clone(),
        });
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "{flavour:?}: an item was dropped while held"
        );
        assert_each_taken_once(taken.iter().map(|item| item.id).collect(), COUNT);
        drop(taken);
        assert_eq!(drops.load(Ordering::SeqCst), COUNT as usize, "{flavour:?}");
    }
}

/// The owner drops its worker while thieves are still stealing; the last stealer to go drops the rest.
#[test]
fn worker_dropped_while_thieves_steal() {
    for flavour in [Flavour::Lifo, Flavour::Fifo] {
        let drops = Arc::new(AtomicUsize::new(0));
        let worker = worker(flavour);
        let stealers: Vec<_> = THIEVES.iter().map(|_| worker.stealer()).collect();
        let done = AtomicBool::new(false);
        let taken: Vec<DropCounter> = thread::scope(|scope| {
            let thieves: Vec<_> = THIEVES
                .iter()
                .zip(stealers)
                .map(|(&(how, own), stealer)| {
                    let done = &done;
                    // The stealer moves into the thread and is dropped there.
                    scope.spawn(move || run_thief(how, own, &stealer, done))
                })
                .collect();
            for id in 0..COUNT {
                worker.push(DropCounter {
                    id,
                    drops: drops.clone(),
                });
            }
            drop(worker);
            done.store(true, Ordering::SeqCst);
            thieves
                .into_iter()
                .flat_map(|thief| thief.join().expect("thief panicked"))
                .collect()
        });
        // The thieves drained the deque after the worker went, so nothing was left to drop.
        assert_eq!(drops.load(Ordering::SeqCst), 0, "{flavour:?}");
        assert_each_taken_once(taken.iter().map(|item| item.id).collect(), COUNT);
        drop(taken);
        assert_eq!(drops.load(Ordering::SeqCst), COUNT as usize, "{flavour:?}");
    }
}

/// The thieves stop early, so the last stealer (dropped with the last thief) drops what they left.
#[test]
fn last_stealer_drops_what_is_left() {
    for flavour in [Flavour::Lifo, Flavour::Fifo] {
        let drops = Arc::new(AtomicUsize::new(0));
        let worker = worker(flavour);
        for id in 0..COUNT {
            worker.push(DropCounter {
                id,
                drops: drops.clone(),
            });
        }
        let stealers: Vec<_> = (0..2).map(|_| worker.stealer()).collect();
        drop(worker);
        let quota = COUNT as usize / 4;
        let taken: Vec<DropCounter> = thread::scope(|scope| {
            let thieves: Vec<_> = stealers
                .into_iter()
                .map(|stealer| {
                    scope.spawn(move || {
                        let own = Worker::new_fifo();
                        let mut taken = Vec::new();
                        while taken.len() < quota {
                            let _ = steal_once(
                                Thief::BatchWithLimitAndPop(4),
                                &stealer,
                                &own,
                                &mut taken,
                            );
                        }
                        taken
                    })
                })
                .collect();
            thieves
                .into_iter()
                .flat_map(|thief| thief.join().expect("thief panicked"))
                .collect()
        });
        let left = COUNT as usize - taken.len();
        assert!(left > 0);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            left,
            "{flavour:?}: the rest is dropped once"
        );
        let mut ids: Vec<u64> = taken.iter().map(|item| item.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), taken.len(), "items were taken twice");
        drop(taken);
        assert_eq!(drops.load(Ordering::SeqCst), COUNT as usize, "{flavour:?}");
    }
}

/// Several producers push disjoint ranges into the injector; consumers steal singly and in batches. Each
/// consumer must see each producer's items in increasing order (the injector is FIFO).
fn injector_producers_and_consumers(count: u64) {
    const PRODUCERS: u64 = 2;
    let injector = Injector::new();
    let producers_done = AtomicUsize::new(0);
    let consumers = [
        (Thief::Single, Flavour::Lifo),
        (Thief::BatchAndPop, Flavour::Lifo),
        (Thief::Batch, Flavour::Fifo),
    ];
    let per_producer = count / PRODUCERS;
    let taken: Vec<Vec<u64>> = thread::scope(|scope| {
        let consumers: Vec<_> = consumers
            .iter()
            .map(|&(how, own)| {
                let (injector, producers_done) = (&injector, &producers_done);
                scope.spawn(move || {
                    let own = worker(own);
                    let mut taken = Vec::new();
                    loop {
                        let finished = producers_done.load(Ordering::SeqCst) == PRODUCERS as usize;
                        let outcome = match how {
                            Thief::Single => {
                                injector.steal().success().map_or(Steal::Empty, |item| {
                                    taken.push(item);
                                    Steal::Success(())
                                })
                            }
                            Thief::Batch => injector.steal_batch(&own),
                            Thief::BatchAndPop | Thief::BatchWithLimitAndPop(_) => {
                                match injector.steal_batch_and_pop(&own) {
                                    Steal::Success(item) => {
                                        taken.push(item);
                                        Steal::Success(())
                                    }
                                    Steal::Empty => Steal::Empty,
                                    Steal::Retry => Steal::Retry,
                                }
                            }
                        };
                        taken.extend(std::iter::from_fn(|| own.pop()));
                        match outcome {
                            Steal::Success(()) => {}
                            Steal::Empty if finished => break,
                            Steal::Empty | Steal::Retry => thread::yield_now(),
                        }
                    }
                    taken
                })
            })
            .collect();
        for producer in 0..PRODUCERS {
            let (injector, producers_done) = (&injector, &producers_done);
            scope.spawn(move || {
                for id in producer * per_producer..(producer + 1) * per_producer {
                    injector.push(id);
                }
                producers_done.fetch_add(1, Ordering::SeqCst);
            });
        }
        consumers
            .into_iter()
            .map(|consumer| consumer.join().expect("consumer panicked"))
            .collect()
    });
    for (consumer, items) in taken.iter().enumerate() {
        for producer in 0..PRODUCERS {
            let range = producer * per_producer..(producer + 1) * per_producer;
            let from_producer: Vec<u64> = items
                .iter()
                .copied()
                .filter(|id| range.contains(id))
                .collect();
            assert!(
                from_producer.windows(2).all(|pair| pair[0] < pair[1]),
                "consumer {consumer} saw producer {producer}'s items out of order"
            );
        }
    }
    assert!(injector.is_empty());
    assert_each_taken_once(taken.concat(), per_producer * PRODUCERS);
}

#[test]
fn injector_producers_and_consumers_default() {
    injector_producers_and_consumers(COUNT);
}

/// Producers and consumers of drop-counting items; the injector is dropped with items still in it.
#[test]
fn injector_drops_each_item_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let injector = Injector::new();
    let taken: Vec<DropCounter> = thread::scope(|scope| {
        for producer in 0..2 {
            let (injector, drops) = (&injector, &drops);
            scope.spawn(move || {
                for id in (producer..COUNT).step_by(2) {
                    injector.push(DropCounter {
                        id,
                        drops: drops.clone(),
                    });
                }
            });
        }
        let consumer = scope.spawn(|| {
            let own = Worker::new_fifo();
            let mut taken = Vec::new();
            while (taken.len() as u64) < COUNT / 2 {
                if let Steal::Success(item) = injector.steal_batch_with_limit_and_pop(&own, 7) {
                    taken.push(item);
                }
                taken.extend(std::iter::from_fn(|| own.pop()));
            }
            taken
        });
        consumer.join().expect("consumer panicked")
    });
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    let left = COUNT as usize - taken.len();
    assert_eq!(injector.len(), left);
    drop(injector);
    assert_eq!(drops.load(Ordering::SeqCst), left);
    let mut ids: Vec<u64> = taken.iter().map(|item| item.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), taken.len(), "items were taken twice");
    drop(taken);
    assert_eq!(drops.load(Ordering::SeqCst), COUNT as usize);
}

fn bounded_worker<T>(flavour: Flavour, capacity: usize) -> bounded::Worker<T> {
    match flavour {
        Flavour::Lifo => bounded::Worker::new_lifo(capacity),
        Flavour::Fifo => bounded::Worker::new_fifo(capacity),
    }
}

/// A bounded owner (16 slots) against two thieves batching into their own bounded workers (8 slots) and one
/// stealing singly. The owner pops one of its own items whenever the deque is full.
fn bounded_owner_and_thieves(flavour: Flavour, count: u64) {
    let worker = bounded_worker(flavour, 16);
    let done = AtomicBool::new(false);
    let taken: Vec<u64> = thread::scope(|scope| {
        let thieves: Vec<_> = [0usize, 1, 2]
            .into_iter()
            .map(|thief| {
                let stealer = worker.stealer();
                let done = &done;
                scope.spawn(move || {
                    let own = bounded_worker(
                        if thief == 1 {
                            Flavour::Fifo
                        } else {
                            Flavour::Lifo
                        },
                        8,
                    );
                    let mut taken = Vec::new();
                    loop {
                        let finished = done.load(Ordering::SeqCst);
                        let outcome = match thief {
                            0 => match stealer.steal() {
                                Steal::Success(item) => {
                                    taken.push(item);
                                    Steal::Success(())
                                }
                                Steal::Empty => Steal::Empty,
                                Steal::Retry => Steal::Retry,
                            },
                            1 => stealer.steal_batch(&own),
                            _ => match stealer.steal_batch_and_pop(&own) {
                                Steal::Success(item) => {
                                    taken.push(item);
                                    Steal::Success(())
                                }
                                Steal::Empty => Steal::Empty,
                                Steal::Retry => Steal::Retry,
                            },
                        };
                        taken.extend(std::iter::from_fn(|| own.pop()));
                        match outcome {
                            Steal::Success(()) => {}
                            Steal::Empty if finished => break,
                            Steal::Empty | Steal::Retry => thread::yield_now(),
                        }
                    }
                    taken
                })
            })
            .collect();
        let mut taken = Vec::new();
        for id in 0..count {
            let mut item = id;
            while let Err(bounded::Full(refused)) = worker.push(item) {
                item = refused;
                taken.extend(worker.pop());
            }
            if id % 5 == 0 {
                taken.extend(worker.pop());
            }
        }
        taken.extend(std::iter::from_fn(|| worker.pop()));
        done.store(true, Ordering::SeqCst);
        for thief in thieves {
            taken.extend(thief.join().expect("thief panicked"));
        }
        taken
    });
    assert_each_taken_once(taken, count);
}

#[test]
fn bounded_lifo_owner_and_thieves() {
    bounded_owner_and_thieves(Flavour::Lifo, COUNT);
}

#[test]
fn bounded_fifo_owner_and_thieves() {
    bounded_owner_and_thieves(Flavour::Fifo, COUNT);
}

/// A small work-stealing pool: task `n` spawns tasks `2n + 1` and `2n + 2` (below `count`) into its
/// worker's deque; idle workers take from the injector, then steal batches from each other. Every task must
/// run exactly once.
fn pool(count: u64, flavour: Flavour) {
    const WORKERS: usize = 3;
    let injector = Injector::new();
    injector.push(0u64);
    let workers: Vec<Worker<u64>> = (0..WORKERS).map(|_| worker(flavour)).collect();
    let stealers: Vec<Stealer<u64>> = workers.iter().map(Worker::stealer).collect();
    // Tasks pushed and not yet run.
    let pending = AtomicUsize::new(1);
    let ran: Vec<Vec<u64>> = thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(index, local)| {
                let (injector, stealers, pending) = (&injector, &stealers, &pending);
                scope.spawn(move || {
                    let mut ran = Vec::new();
                    while pending.load(Ordering::SeqCst) > 0 {
                        let task = local.pop().or_else(|| {
                            std::iter::repeat_with(|| {
                                injector.steal_batch_and_pop(&local).or_else(|| {
                                    (1..WORKERS)
                                        .map(|offset| {
                                            stealers[(index + offset) % WORKERS]
                                                .steal_batch_and_pop(&local)
                                        })
                                        .collect()
                                })
                            })
                            .find(|steal| !steal.is_retry())
                            .and_then(Steal::success)
                        });
                        let Some(task) = task else {
                            thread::yield_now();
                            continue;
                        };
                        ran.push(task);
                        for child in [2 * task + 1, 2 * task + 2] {
                            if child < count {
                                pending.fetch_add(1, Ordering::SeqCst);
                                // Every fourth spawn goes through the injector.
                                if child % 4 == 0 {
                                    injector.push(child);
                                } else {
                                    local.push(child);
                                }
                            }
                        }
                        pending.fetch_sub(1, Ordering::SeqCst);
                    }
                    ran
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("worker panicked"))
            .collect()
    });
    assert_each_taken_once(ran.concat(), count);
}

#[test]
fn lifo_pool_runs_each_task_once() {
    pool(COUNT, Flavour::Lifo);
}

#[test]
fn fifo_pool_runs_each_task_once() {
    pool(COUNT, Flavour::Fifo);
}

#[test]
#[ignore = "long: for the ThreadSanitizer and soak runs"]
fn lifo_owner_and_thieves_long() {
    let count = long_count();
    assert_each_taken_once(owner_and_thieves(Flavour::Lifo, count, |id| id), count);
}

#[test]
#[ignore = "long: for the ThreadSanitizer and soak runs"]
fn fifo_owner_and_thieves_long() {
    let count = long_count();
    assert_each_taken_once(owner_and_thieves(Flavour::Fifo, count, |id| id), count);
}

#[test]
#[ignore = "long: for the ThreadSanitizer and soak runs"]
fn owner_and_thieves_drop_each_item_once_long() {
    let count = long_count();
    for flavour in [Flavour::Lifo, Flavour::Fifo] {
        let drops = Arc::new(AtomicUsize::new(0));
        let taken = owner_and_thieves(flavour, count, |id| DropCounter {
            id,
            drops: drops.clone(),
        });
        assert_eq!(drops.load(Ordering::SeqCst), 0, "{flavour:?}");
        assert_each_taken_once(taken.iter().map(|item| item.id).collect(), count);
        drop(taken);
        assert_eq!(drops.load(Ordering::SeqCst), count as usize, "{flavour:?}");
    }
}

#[test]
#[ignore = "long: for the ThreadSanitizer and soak runs"]
fn injector_producers_and_consumers_long() {
    let count = long_count();
    injector_producers_and_consumers(count);
}

#[test]
#[ignore = "long: for the ThreadSanitizer and soak runs"]
fn bounded_owner_and_thieves_long() {
    let count = long_count();
    bounded_owner_and_thieves(Flavour::Lifo, count);
    bounded_owner_and_thieves(Flavour::Fifo, count);
}

#[test]
#[ignore = "long: for the ThreadSanitizer and soak runs"]
fn pool_long() {
    let count = long_count();
    pool(count, Flavour::Lifo);
    pool(count, Flavour::Fifo);
}

/// ThreadSanitizer runs these tests optimised with debug assertions on (`.ci/tsan.sh`, which sets
/// `TSAN_OPTIONS`), so the `debug_assert!`s that state the deque's invariants are checked under every
/// interleaving TSan sees; `--release` alone compiles them out, which this catches.
#[test]
#[allow(
    clippy::assertions_on_constants,
    reason = "the constant is what the test checks"
)]
fn sanitizer_runs_keep_debug_assertions() {
    if std::env::var_os("TSAN_OPTIONS").is_some() {
        assert!(
            cfg!(debug_assertions),
            "run TSan through .ci/tsan.sh: `--release` alone turns the invariants' debug_assert!s off"
        );
    }
}
