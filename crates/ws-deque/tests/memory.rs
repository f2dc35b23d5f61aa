//! Allocation counts, through a counting global allocator: after warm-up, a deque oscillating within its
//! buffer never reallocates, and pushes, pops and steals allocate nothing.
//!
//! The counter is per thread (each test runs on its own thread, so parallel tests do not disturb each
//! other). Allocation counts mean nothing under Miri, and these loops are long there, so they are skipped.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ws_deque::{Injector, Steal, Stealer, Worker};

/// Counts the allocations of the current thread, then hands them to the system allocator.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn record_allocation() {
    // `try_with`: the thread-local may already be gone while the thread exits.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments, so `System`'s guarantees hold; the
// counting touches only a const-initialized thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record_allocation();
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record_allocation();
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record_allocation();
        // SAFETY: forwarded from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The number of allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn flavours() -> [Worker<u64>; 2] {
    [Worker::new_lifo(), Worker::new_fifo()]
}

/// Pushes until `worker` holds `high` items, then pops until it holds `low`.
fn oscillate(worker: &Worker<u64>, low: usize, high: usize) {
    let mut next = 0;
    while worker.len() < high {
        worker.push(next);
        next += 1;
    }
    while worker.len() > low {
        assert!(worker.pop().is_some());
    }
}

/// Pins the thread with crossbeam-epoch (its first pin allocates a handle) and steals once.
fn warm_up_stealing(stealer: &Stealer<u64>) {
    let _ = stealer.steal();
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_counter_sees_allocations() {
    assert_eq!(allocations(|| {}), 0);
    assert!(allocations(|| drop(std::hint::black_box(Box::new(1u64)))) >= 1);
    assert!(allocations(|| drop(std::hint::black_box(Worker::<u64>::new_lifo()))) >= 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn oscillating_between_64_and_256_items_does_not_allocate() {
    for worker in flavours() {
        oscillate(&worker, 64, 256);
        oscillate(&worker, 64, 256);
        let during = allocations(|| {
            for _ in 0..100 {
                oscillate(&worker, 64, 256);
            }
        });
        assert_eq!(during, 0, "{worker:?}");
        // Not a vacuous check: one item more than the buffer holds makes it grow.
        assert_eq!(worker.len(), 64);
        let growth = allocations(|| oscillate(&worker, 64, 257));
        assert!(growth > 0, "{worker:?}: growing past 256 should allocate");
    }
}

/// A factor of eight is still inside the shrink threshold (shrinking at a quarter, like crossbeam, would
/// reallocate twice per round here), and one low pop per round never adds up to a shrink.
#[test]
#[cfg_attr(miri, ignore)]
fn oscillating_between_33_and_256_items_does_not_allocate() {
    for worker in flavours() {
        oscillate(&worker, 33, 256);
        oscillate(&worker, 33, 256);
        let during = allocations(|| {
            for _ in 0..100 {
                oscillate(&worker, 33, 256);
            }
        });
        assert_eq!(during, 0, "{worker:?}");
        // Held below an eighth for as many pops as it has slots, the buffer does shrink.
        let shrink = allocations(|| {
            oscillate(&worker, 31, 256);
            for i in 0..256 {
                worker.push(i);
                assert!(worker.pop().is_some());
            }
        });
        assert!(
            shrink > 0,
            "{worker:?}: 256 pops below 32 of 256 items should shrink"
        );
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn push_pop_and_steal_do_not_allocate() {
    for worker in flavours() {
        let stealer = worker.stealer();
        warm_up_stealing(&stealer);
        oscillate(&worker, 100, 100);
        let during = allocations(|| {
            for i in 0..10_000 {
                worker.push(i);
                worker.push(i);
                assert!(worker.pop().is_some());
                assert!(stealer.steal().is_success());
            }
        });
        assert_eq!(during, 0, "{worker:?}");
        assert_eq!(worker.len(), 100);
    }
}

/// Batch steals into a LIFO worker whose owner pops what it received.
#[test]
#[cfg_attr(miri, ignore)]
fn batch_steals_into_a_lifo_worker_do_not_allocate() {
    for source in flavours() {
        let stealer = source.stealer();
        let dest = Worker::new_lifo();
        let rounds = |count| {
            for _ in 0..count {
                oscillate(&source, 64, 64);
                assert_eq!(
                    stealer.steal_batch_with_limit(&dest, 20),
                    Steal::Success(())
                );
                assert!(stealer.steal_batch_and_pop(&dest).is_success());
                while dest.pop().is_some() {}
            }
        };
        rounds(10);
        let during = allocations(|| rounds(1000));
        assert_eq!(during, 0, "{source:?}");
    }
}

/// Batches into a destination with room do not allocate (regression: a stale cached steal head once made
/// `reserve` call `grow`, which replaced the buffer with one of the same size every few batches).
#[test]
fn batch_steals_into_a_worker_that_has_room_do_not_allocate() {
    for source in flavours() {
        let stealer = source.stealer();
        for dest in flavours() {
            let dest_stealer = dest.stealer();
            let rounds = |count| {
                for _ in 0..count {
                    oscillate(&source, 64, 64);
                    assert_eq!(
                        stealer.steal_batch_with_limit(&dest, 20),
                        Steal::Success(())
                    );
                    // Half of what arrived is taken by the destination's thief, half by its owner.
                    for _ in 0..10 {
                        assert!(dest_stealer.steal().is_success());
                    }
                    while dest.pop().is_some() {}
                }
            };
            rounds(10);
            let during = allocations(|| rounds(1000));
            assert_eq!(during, 0, "{source:?} into {dest:?}");
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn injector_allocates_only_blocks() {
    let injector = Injector::new();
    let dest = Worker::new_lifo();
    // Warm up: the first pin of the thread, and the destination's buffer.
    injector.push(0);
    assert_eq!(injector.steal(), Steal::Success(0));
    let pushes = allocations(|| {
        for i in 0..630 {
            injector.push(i);
        }
    });
    assert!(
        (1..=11).contains(&pushes),
        "630 items fill 10 blocks of 63, allocated {pushes} times"
    );
    let steals = allocations(|| {
        while !injector.is_empty() {
            assert!(injector.steal_batch_and_pop(&dest).is_success());
            assert!(injector.steal().is_success());
            while dest.pop().is_some() {}
        }
    });
    assert_eq!(steals, 0);
}
