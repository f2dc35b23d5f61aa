//! The growable FIFO deque on one thread: order, lengths, growth and shrinking, wrap-around, stealing from
//! the other end, zero-sized items, and drops.
//!
//! Under Miri these run with Tree Borrows (`MIRIFLAGS=-Zmiri-tree-borrows`): crossbeam-epoch, which frees the
//! replaced buffers, does not pass Stacked Borrows.
//!
//! They also need `-Zmiri-ignore-leaks`, as crossbeam's own Miri runs do (crossbeam#579): crossbeam-epoch
//! keeps its pointers as integers and leaves deferred frees pending at exit, which Miri's leak check reports.
//! Items cannot leak unseen: the drop-counting tests count every drop.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ws_deque::{Steal, Stealer, Worker};

mod common;
use common::{DropCounter, Lcg, assert_send, assert_send_sync_clone, capacity};

/// More than 4096 items, so the buffer grows through every size up to 8192 slots.
const MANY: usize = 5000;

#[test]
fn handles_are_send_and_stealers_are_sync() {
    assert_send::<Worker<String>>();
    assert_send_sync_clone::<Stealer<String>>();
}

#[test]
fn smoke() {
    let worker = Worker::new_fifo();
    let stealer = worker.stealer();
    assert_eq!(worker.pop(), None);
    assert_eq!(stealer.steal(), Steal::Empty);

    worker.push(1);
    assert_eq!(worker.pop(), Some(1));
    assert_eq!(worker.pop(), None);

    worker.push(2);
    assert_eq!(stealer.steal(), Steal::Success(2));
    assert_eq!(stealer.steal(), Steal::Empty);
    assert_eq!(worker.pop(), None);
}

#[test]
fn pops_oldest_first() {
    let worker = Worker::new_fifo();
    for i in 0..10 {
        worker.push(i);
    }
    for i in 0..10 {
        assert_eq!(worker.pop(), Some(i));
    }
    assert_eq!(worker.pop(), None);
    assert!(format!("{worker:?}").contains("Fifo"));
}

#[test]
fn len_and_is_empty() {
    let worker = Worker::new_fifo();
    let stealer = worker.stealer();
    assert_eq!((worker.len(), worker.is_empty()), (0, true));
    assert_eq!((stealer.len(), stealer.is_empty()), (0, true));
    for i in 0..100 {
        worker.push(i);
        assert_eq!(worker.len(), i + 1);
        assert_eq!(stealer.len(), i + 1);
        assert!(!worker.is_empty());
        assert!(!stealer.is_empty());
    }
    for i in 0..50 {
        assert_eq!(stealer.steal(), Steal::Success(i));
        assert_eq!(worker.len(), 99 - i);
    }
    for i in 0..50 {
        assert_eq!(worker.pop(), Some(50 + i));
        assert_eq!(stealer.len(), 49 - i);
    }
    assert_eq!((worker.len(), worker.is_empty()), (0, true));
    assert_eq!((stealer.len(), stealer.is_empty()), (0, true));
}

#[test]
fn grows_past_64_and_4096_then_shrinks_back() {
    let worker = Worker::new_fifo();
    let stealer = worker.stealer();
    assert_eq!(capacity(&worker), 64);
    // The second round checks that a deque that shrank grows again (one round is enough under Miri).
    for round in 0..if cfg!(miri) { 1 } else { 2 } {
        for i in 0..MANY {
            worker.push(i);
            assert_eq!(worker.len(), i + 1);
            match i + 1 {
                64 => assert_eq!(capacity(&worker), 64, "round {round}: full but not grown"),
                65 => assert_eq!(capacity(&worker), 128, "round {round}: grown once"),
                4096 => assert_eq!(capacity(&worker), 4096, "round {round}"),
                4097 => assert_eq!(capacity(&worker), 8192, "round {round}"),
                _ => {}
            }
        }
        // The oldest items are still reachable from the thieves' end after every copy.
        for i in 0..3 {
            assert_eq!(stealer.steal(), Steal::Success(i));
        }
        for i in 3..MANY {
            assert_eq!(worker.pop(), Some(i), "round {round}");
            assert_eq!(worker.len(), MANY - 1 - i);
        }
        assert_eq!(worker.pop(), None);
        assert_eq!(stealer.steal(), Steal::Empty);
        assert_eq!(
            capacity(&worker),
            8192,
            "round {round}: draining alone does not shrink"
        );
        idle_until_minimum(&worker, round);
    }
}

/// Pushes and pops one item until the buffer is back at 64 slots. Every pop leaves the deque empty, so each
/// counts towards a shrink; halving from `c` slots takes `c` such pops, so `2 * start` cycles are enough.
fn idle_until_minimum(worker: &Worker<usize>, round: usize) {
    let start = capacity(worker);
    let mut cycles = 0;
    while capacity(worker) > 64 {
        for _ in 0..64 {
            worker.push(cycles);
            assert_eq!(worker.pop(), Some(cycles));
            cycles += 1;
        }
        assert!(
            cycles <= 2 * start,
            "round {round}: still {} slots after {cycles} idle cycles",
            capacity(worker)
        );
    }
    assert!(
        cycles >= start,
        "round {round}: shrank from {start} slots after only {cycles} idle cycles"
    );
}

#[test]
fn shrinks_after_as_many_low_pops_as_slots() {
    let worker = Worker::new_fifo();
    for i in 0..256 {
        worker.push(i);
    }
    assert_eq!(capacity(&worker), 256);
    // Down to 32 items, an eighth of 256: no pop so far left the deque below an eighth.
    for _ in 0..224 {
        assert!(worker.pop().is_some());
    }
    // Each of these pops leaves 31 items: 255 of them are not yet enough.
    for i in 0..255 {
        if i > 0 {
            worker.push(1000 + i);
        }
        assert!(worker.pop().is_some());
        assert_eq!(worker.len(), 31);
    }
    assert_eq!(capacity(&worker), 256);
    worker.push(5000);
    assert!(worker.pop().is_some());
    assert_eq!(
        capacity(&worker),
        128,
        "the 256th low pop halves the buffer"
    );
}

#[test]
fn a_pop_above_a_quarter_restarts_the_shrink_count() {
    let worker = Worker::new_fifo();
    for i in 0..256 {
        worker.push(i);
    }
    for _ in 0..225 {
        assert!(worker.pop().is_some());
    }
    // 200 low pops (31 items left after each).
    for i in 0..200 {
        worker.push(1000 + i);
        assert!(worker.pop().is_some());
    }
    // Refill past a quarter (64 items) and pop once: the count starts again.
    for i in 0..40 {
        worker.push(2000 + i);
    }
    assert!(worker.pop().is_some());
    assert_eq!(worker.len(), 70);
    for _ in 0..39 {
        assert!(worker.pop().is_some());
    }
    // Without the reset, these 201 low pops and the 200 before would pass 256 and halve the buffer.
    for i in 0..200 {
        worker.push(3000 + i);
        assert!(worker.pop().is_some());
    }
    assert_eq!(capacity(&worker), 256);
}

#[test]
fn steals_from_the_other_end() {
    let worker = Worker::new_fifo();
    let stealer = worker.stealer();
    for i in 0..10 {
        worker.push(i);
    }
    // Both ends are the same end: thieves and the owner take turns at the oldest item.
    for i in 0..5 {
        assert_eq!(stealer.steal(), Steal::Success(2 * i));
        assert_eq!(worker.pop(), Some(2 * i + 1));
    }
    assert_eq!(stealer.steal(), Steal::Empty);
    assert_eq!(worker.pop(), None);
}

#[test]
fn cloned_stealers_share_the_deque() {
    let worker = Worker::new_fifo();
    let first = worker.stealer();
    let second = first.clone();
    for i in 0..4 {
        worker.push(i);
    }
    assert_eq!(first.steal(), Steal::Success(0));
    assert_eq!(second.steal(), Steal::Success(1));
    assert_eq!(second.len(), 2);
    assert_eq!(worker.pop(), Some(2));
    assert_eq!(first.steal(), Steal::Success(3));
    assert_eq!(second.steal(), Steal::Empty);
}

/// Mixes pushes, pops and steals (kept between 0 and about 100 items, across the 64-slot boundary) for many
/// times the buffer size; every take moves the head forward.
#[test]
fn wraps_around_many_times() {
    let rounds = if cfg!(miri) { 600 } else { 20_000 };
    let worker = Worker::new_fifo();
    let stealer = worker.stealer();
    let mut model = VecDeque::new();
    let mut random = Lcg(7);
    let mut next = 0u32;
    let mut stolen = 0;
    for round in 0..rounds {
        let high = model.len() > 100;
        match random.below(4) {
            0 | 1 if !high => {
                worker.push(next);
                model.push_back(next);
                next += 1;
            }
            2 => assert_eq!(worker.pop(), model.pop_front(), "round {round}"),
            _ => {
                let expected = model.pop_front().map_or(Steal::Empty, Steal::Success);
                stolen += usize::from(expected.is_success());
                assert_eq!(stealer.steal(), expected, "round {round}");
            }
        }
        assert_eq!(worker.len(), model.len(), "round {round}");
    }
    assert!(stolen > 2 * 64, "too few steals: {stolen}");
    while let Some(expected) = model.pop_front() {
        assert_eq!(worker.pop(), Some(expected));
    }
    assert_eq!(worker.pop(), None);
}

/// The owner alone moves the head of a FIFO deque round the buffer: 40 items in flight, pushed and popped
/// many times the buffer size, never growing.
#[test]
fn push_pop_wraps_around_without_growing() {
    let laps = if cfg!(miri) { 4 } else { 200 };
    let worker = Worker::new_fifo();
    for i in 0..40 {
        worker.push(i);
    }
    for i in 40..40 + 64 * laps {
        worker.push(i);
        assert_eq!(worker.pop(), Some(i - 40));
        assert_eq!(worker.len(), 40);
    }
    assert_eq!(capacity(&worker), 64);
    let rest: Vec<_> = std::iter::from_fn(|| worker.pop()).collect();
    assert_eq!(rest, (64 * laps..64 * laps + 40).collect::<Vec<_>>());
}

/// Positions are `u32` counters that wrap: 2^32 + 100 items go through a deque holding 10, then a batch
/// steal and a drop cross the wrapped positions.
#[test]
#[ignore = "slow (2^32 operations, minutes in release): cargo test --release -- --ignored wrap"]
fn positions_wrap_past_u32_max() {
    let total = (1u64 << 32) + 100;
    let worker = Worker::new_fifo();
    for i in 0..10 {
        worker.push(i);
    }
    for i in 10..total {
        worker.push(i);
        assert_eq!(worker.pop(), Some(i - 10));
    }
    assert_eq!(worker.len(), 10);
    let dest = Worker::new_lifo();
    assert_eq!(worker.stealer().steal_batch(&dest), Steal::Success(()));
    assert_eq!(dest.pop(), Some(total - 10));
    assert_eq!(worker.pop(), Some(total - 5));
}

#[test]
fn zero_sized_items() {
    let worker = Worker::new_fifo();
    let stealer = worker.stealer();
    for i in 0..1000 {
        worker.push(());
        assert_eq!(worker.len(), i + 1);
    }
    assert_eq!(capacity(&worker), 1024);
    for _ in 0..500 {
        assert_eq!(worker.pop(), Some(()));
        assert_eq!(stealer.steal(), Steal::Success(()));
    }
    assert!(worker.is_empty());
    assert_eq!(worker.pop(), None);
    assert_eq!(stealer.steal(), Steal::Empty);
}

#[test]
fn zero_sized_items_are_dropped_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Unit;
    impl Drop for Unit {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let worker = Worker::new_fifo();
    for _ in 0..200 {
        worker.push(Unit);
    }
    drop(worker.pop());
    drop(worker.stealer().steal());
    assert_eq!(DROPS.load(Ordering::SeqCst), 2);
    drop(worker);
    assert_eq!(DROPS.load(Ordering::SeqCst), 200);
}

#[test]
fn dropping_the_worker_drops_each_item_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let worker = Worker::new_fifo();
    // Past 64 and 128, so items were copied into new buffers: copies must not be dropped twice.
    for i in 0..300 {
        worker.push(DropCounter::new(i, &drops));
    }
    let popped = worker.pop().expect("not empty");
    assert_eq!(popped.id, 0);
    let stolen = worker.stealer().steal().success().expect("not empty");
    assert_eq!(stolen.id, 1);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(worker);
    assert_eq!(drops.load(Ordering::SeqCst), 298);
    drop((popped, stolen));
    assert_eq!(drops.load(Ordering::SeqCst), 300);
}

#[test]
fn dropping_an_emptied_worker_drops_nothing_more() {
    let drops = Arc::new(AtomicUsize::new(0));
    let worker = Worker::new_fifo();
    let stealer = worker.stealer();
    for i in 0..100 {
        worker.push(DropCounter::new(i, &drops));
    }
    let mut taken = Vec::new();
    while let Some(item) = worker.pop() {
        taken.push(item);
        if let Steal::Success(item) = stealer.steal() {
            taken.push(item);
        }
    }
    assert_eq!(taken.len(), 100);
    drop((worker, stealer));
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(taken);
    assert_eq!(drops.load(Ordering::SeqCst), 100);
}

#[test]
fn stealers_outlive_the_worker() {
    let drops = Arc::new(AtomicUsize::new(0));
    let worker = Worker::new_fifo();
    for i in 0..200 {
        worker.push(DropCounter::new(i, &drops));
    }
    let first = worker.stealer();
    let second = first.clone();
    drop(worker);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "stealers keep the items");
    assert_eq!(first.len(), 200);
    for i in 0..100 {
        let stealer = if i % 2 == 0 { &first } else { &second };
        let item = stealer.steal().success().expect("items remain");
        assert_eq!(item.id, i);
    }
    assert_eq!(drops.load(Ordering::SeqCst), 100);
    drop(first);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        100,
        "another stealer is alive"
    );
    assert_eq!(second.len(), 100);
    drop(second);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        200,
        "the last stealer drops the rest"
    );
}

#[test]
fn stealers_outliving_the_worker_can_be_drained() {
    let drops = Arc::new(AtomicUsize::new(0));
    let worker = Worker::new_fifo();
    for i in 0..70 {
        worker.push(DropCounter::new(i, &drops));
    }
    let stealer = worker.stealer();
    drop(worker);
    let ids: Vec<usize> = std::iter::from_fn(|| stealer.steal().success())
        .map(|item| item.id)
        .collect();
    assert_eq!(ids, (0..70).collect::<Vec<_>>());
    assert!(stealer.steal().is_empty());
    assert_eq!(drops.load(Ordering::SeqCst), 70);
    drop(stealer);
    assert_eq!(drops.load(Ordering::SeqCst), 70);
}

#[test]
fn worker_moves_to_another_thread() {
    let worker = Worker::new_fifo();
    let stealer = worker.stealer();
    for i in 0..10 {
        worker.push(i);
    }
    let popped = std::thread::spawn(move || {
        worker.push(10);
        std::iter::from_fn(|| worker.pop()).collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert_eq!(popped, (0..=10).collect::<Vec<_>>());
    assert_eq!(stealer.steal(), Steal::Empty);
}
