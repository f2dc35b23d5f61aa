//! The injector on one thread: FIFO order, lengths across its 63-item blocks, batch steals into LIFO and
//! FIFO workers, zero-sized items, and drops.
//!
//! Under Miri these run with Tree Borrows (`MIRIFLAGS=-Zmiri-tree-borrows`): blocks are freed through
//! crossbeam-epoch, which does not pass Stacked Borrows.
//!
//! They also need `-Zmiri-ignore-leaks`, as crossbeam's own Miri runs do (crossbeam#579): crossbeam-epoch
//! keeps its pointers as integers and leaves deferred frees pending at exit, which Miri's leak check reports.
//! Items cannot leak unseen: the drop-counting tests count every drop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ws_deque::{Injector, Steal, Worker};

mod common;
use common::DropCounter;

/// Items per block of the injector (documented: a batch never crosses one).
const BLOCK: usize = 63;

/// Enough items for many blocks.
const MANY: usize = if cfg!(miri) { 300 } else { 1000 };

fn workers<T>() -> [Worker<T>; 2] {
    [Worker::new_lifo(), Worker::new_fifo()]
}

fn filled(len: usize) -> Injector<usize> {
    let injector = Injector::new();
    for i in 0..len {
        injector.push(i);
    }
    injector
}

fn drain<T>(worker: &Worker<T>) -> Vec<T> {
    std::iter::from_fn(|| worker.pop()).collect()
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn injector_is_send_and_sync() {
    assert_send_sync::<Injector<String>>();
}

#[test]
fn smoke() {
    let injector = Injector::default();
    assert_eq!(injector.steal(), Steal::Empty);
    injector.push(1);
    injector.push(2);
    assert_eq!(injector.steal(), Steal::Success(1));
    injector.push(3);
    assert_eq!(injector.steal(), Steal::Success(2));
    assert_eq!(injector.steal(), Steal::Success(3));
    assert_eq!(injector.steal(), Steal::Empty);
    assert!(format!("{injector:?}").contains("len: 0"));
}

#[test]
fn steals_in_fifo_order_across_blocks() {
    let injector = filled(MANY);
    for i in 0..MANY {
        assert_eq!(injector.steal(), Steal::Success(i));
    }
    assert_eq!(injector.steal(), Steal::Empty);
    // Still usable after the head has crossed many blocks.
    injector.push(MANY);
    assert_eq!(injector.steal(), Steal::Success(MANY));
}

#[test]
fn interleaved_push_and_steal() {
    let injector = Injector::new();
    let mut next_out = 0;
    for i in 0..MANY {
        injector.push(i);
        injector.push(i + MANY);
        assert_eq!(injector.steal(), Steal::Success(next_out));
        next_out = if next_out < MANY {
            next_out + MANY
        } else {
            next_out - MANY + 1
        };
    }
    assert_eq!(injector.len(), MANY);
}

#[test]
fn len_across_block_boundaries() {
    let injector = Injector::new();
    assert_eq!((injector.len(), injector.is_empty()), (0, true));
    for i in 0..MANY {
        injector.push(i);
        assert_eq!(injector.len(), i + 1, "after push {i}");
        assert!(!injector.is_empty());
    }
    for i in 0..MANY {
        assert_eq!(injector.steal(), Steal::Success(i));
        assert_eq!(injector.len(), MANY - 1 - i, "after steal {i}");
    }
    assert!(injector.is_empty());
}

#[test]
fn batch_is_capped_at_32_and_pops_oldest_first() {
    for dest in workers() {
        let injector = filled(MANY);
        assert_eq!(injector.steal_batch(&dest), Steal::Success(()));
        assert_eq!(dest.len(), 32);
        assert_eq!(injector.len(), MANY - 32);
        assert_eq!(drain(&dest), (0..32).collect::<Vec<_>>(), "{dest:?}");
        assert_eq!(injector.steal(), Steal::Success(32));
    }
}

#[test]
fn batch_with_limit() {
    for dest in workers() {
        let injector = filled(MANY);
        let mut next = 0;
        // The head starts each batch at block offset 0, 10, 30, 33 and 0.
        for (limit, count) in [(10, 10), (20, 20), (3, 3), (usize::MAX, 30), (63, 63)] {
            assert_eq!(
                injector.steal_batch_with_limit(&dest, limit),
                Steal::Success(()),
                "limit {limit}"
            );
            assert_eq!(
                drain(&dest),
                (next..next + count).collect::<Vec<_>>(),
                "limit {limit}"
            );
            next += count;
            assert_eq!(injector.len(), MANY - next);
        }
    }
}

#[test]
fn batch_never_crosses_a_block() {
    for dest in workers() {
        let injector = filled(200);
        for i in 0..50 {
            assert_eq!(injector.steal(), Steal::Success(i));
        }
        // 13 items are left in the first block.
        assert_eq!(
            injector.steal_batch_with_limit(&dest, 40),
            Steal::Success(())
        );
        assert_eq!(drain(&dest), (50..63).collect::<Vec<_>>());
        // The next batch starts a fresh block.
        assert_eq!(
            injector.steal_batch_with_limit(&dest, 40),
            Steal::Success(())
        );
        assert_eq!(drain(&dest), (63..103).collect::<Vec<_>>());
        assert_eq!(
            injector.steal_batch_with_limit_and_pop(&dest, 40),
            Steal::Success(103)
        );
        assert_eq!(drain(&dest), (104..126).collect::<Vec<_>>());
        assert_eq!(injector.steal(), Steal::Success(126));
    }
}

#[test]
fn batch_and_pop() {
    for dest in workers() {
        let injector = filled(MANY);
        // crossbeam-deque's limit for this one is 33 (32 moved and the returned one).
        assert_eq!(injector.steal_batch_and_pop(&dest), Steal::Success(0));
        assert_eq!(drain(&dest), (1..33).collect::<Vec<_>>());
        assert_eq!(
            injector.steal_batch_with_limit_and_pop(&dest, 10),
            Steal::Success(33)
        );
        assert_eq!(drain(&dest), (34..43).collect::<Vec<_>>());
        assert_eq!(
            injector.steal_batch_with_limit_and_pop(&dest, 1),
            Steal::Success(43)
        );
        assert!(dest.is_empty());
        assert_eq!(injector.len(), MANY - 44);
    }
}

#[test]
fn batch_of_one_item() {
    for dest in workers() {
        let injector = filled(1);
        assert_eq!(injector.steal_batch(&dest), Steal::Success(()));
        assert_eq!(drain(&dest), [0]);
        injector.push(1);
        assert_eq!(injector.steal_batch_and_pop(&dest), Steal::Success(1));
        assert!(dest.is_empty());
        assert!(injector.is_empty());
    }
}

/// Every batch takes at least one item, at most the limit, never crosses a block, and the items arrive in
/// order.
#[test]
fn repeated_batches_drain_in_order() {
    for dest in workers() {
        let injector = filled(MANY);
        let mut moved = Vec::new();
        while injector.steal_batch(&dest) == Steal::Success(()) {
            let batch = drain(&dest);
            let offset = moved.len() % BLOCK;
            assert!(
                (1..=32.min(BLOCK - offset)).contains(&batch.len()),
                "batch of {} at block offset {offset}",
                batch.len()
            );
            moved.extend(batch);
        }
        assert_eq!(moved, (0..MANY).collect::<Vec<_>>());
    }
}

/// crossbeam-deque's batch: while the items fit in the head block, `min(limit, ceil(len / 2))` of them, like
/// the deque's batches, so one thief does not empty a short injector; once they spill into a later block,
/// everything to the end of the head block, within the limit.
#[test]
fn batch_takes_half_of_a_short_injector() {
    for dest in workers() {
        let injector = filled(10);
        assert_eq!(injector.steal_batch(&dest), Steal::Success(()));
        assert_eq!(dest.len(), 5, "ceil(10 / 2) items, {dest:?}");
        assert_eq!(injector.len(), 5);
        drop(drain(&dest));

        let injector = filled(10);
        assert_eq!(injector.steal_batch_and_pop(&dest), Steal::Success(0));
        assert_eq!(drain(&dest), [1, 2, 3, 4]);
        assert_eq!(injector.len(), 5);

        // 100 items spill into a second block: the batch is the whole first block.
        let injector = filled(100);
        assert_eq!(
            injector.steal_batch_with_limit(&dest, 63),
            Steal::Success(())
        );
        assert_eq!(dest.len(), 63);
        drop(drain(&dest));
        // 37 left, all in the second block: half of them.
        assert_eq!(
            injector.steal_batch_with_limit(&dest, 63),
            Steal::Success(())
        );
        assert_eq!(dest.len(), 19);
        drop(drain(&dest));
    }
}

/// The batch sizes of a draining injector halve like the deque's.
#[test]
fn repeated_batches_halve_the_injector() {
    let injector = filled(100);
    let dest = Worker::new_fifo();
    let mut counts = Vec::new();
    while injector.steal_batch(&dest) == Steal::Success(()) {
        counts.push(drain(&dest).len());
    }
    // 100 -> 32; 68 -> 31 (the rest of the first block); 37 -> 19; 18 -> 9; 9 -> 5; 4 -> 2; 2 -> 1; 1 -> 1.
    assert_eq!(counts, [32, 31, 19, 9, 5, 2, 1, 1]);
}

#[test]
fn limit_zero_and_empty_injector_steal_nothing() {
    for dest in workers() {
        let injector = filled(10);
        assert_eq!(injector.steal_batch_with_limit(&dest, 0), Steal::Empty);
        assert_eq!(
            injector.steal_batch_with_limit_and_pop(&dest, 0),
            Steal::Empty
        );
        assert_eq!((injector.len(), dest.len()), (10, 0));

        let empty = Injector::new();
        assert_eq!(empty.steal(), Steal::Empty);
        assert_eq!(empty.steal_batch(&dest), Steal::Empty);
        assert_eq!(empty.steal_batch_with_limit(&dest, 5), Steal::Empty);
        assert_eq!(empty.steal_batch_and_pop(&dest), Steal::Empty);
        assert_eq!(empty.steal_batch_with_limit_and_pop(&dest, 5), Steal::Empty);
        assert!(dest.is_empty());
    }
}

#[test]
fn batch_goes_after_what_the_destination_holds() {
    let injector = filled(MANY);
    let [lifo, fifo] = workers();
    for dest in [&lifo, &fifo] {
        dest.push(1000);
        dest.push(1001);
    }
    assert_eq!(
        injector.steal_batch_with_limit(&lifo, 3),
        Steal::Success(())
    );
    assert_eq!(
        injector.steal_batch_with_limit(&fifo, 3),
        Steal::Success(())
    );
    assert_eq!(drain(&lifo), [0, 1, 2, 1001, 1000]);
    assert_eq!(drain(&fifo), [1000, 1001, 3, 4, 5]);
}

#[test]
fn batch_grows_a_full_destination() {
    for dest in workers() {
        let injector = filled(MANY);
        for i in 0..64 {
            dest.push(10_000 + i);
        }
        assert_eq!(injector.steal_batch(&dest), Steal::Success(()));
        assert_eq!(dest.len(), 96);
        let mut all = drain(&dest);
        all.sort_unstable();
        let expected: Vec<usize> = (0..32).chain(10_000..10_064).collect();
        assert_eq!(all, expected);
    }
}

#[test]
fn zero_sized_items() {
    let injector = Injector::new();
    for _ in 0..MANY {
        injector.push(());
    }
    assert_eq!(injector.len(), MANY);
    let dest = Worker::new_lifo();
    assert_eq!(injector.steal_batch(&dest), Steal::Success(()));
    assert_eq!(dest.len(), 32);
    let mut taken = 32;
    while injector.steal() == Steal::Success(()) {
        taken += 1;
    }
    assert_eq!(taken, MANY);
    assert!(injector.is_empty());
}

#[test]
fn dropping_the_injector_drops_each_item_once() {
    // Lengths and heads around the block boundaries.
    for (pushed, stolen) in [
        (0, 0),
        (1, 0),
        (62, 0),
        (63, 0),
        (64, 0),
        (126, 0),
        (127, 0),
        (200, 0),
        (63, 63),
        (126, 63),
        (200, 70),
        (200, 200),
    ] {
        let drops = Arc::new(AtomicUsize::new(0));
        let injector = Injector::new();
        for i in 0..pushed {
            injector.push(DropCounter::new(i, &drops));
        }
        for i in 0..stolen {
            let item = injector.steal().success().expect("not empty");
            assert_eq!(item.id, i);
        }
        assert_eq!(drops.load(Ordering::SeqCst), stolen, "{pushed} pushed");
        drop(injector);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            pushed,
            "{pushed} pushed, {stolen} stolen"
        );
    }
}

#[test]
fn items_moved_by_batches_are_dropped_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let injector = Injector::new();
    for i in 0..150 {
        injector.push(DropCounter::new(i, &drops));
    }
    let dest = Worker::new_fifo();
    assert!(injector.steal_batch(&dest).is_success());
    let popped = injector
        .steal_batch_and_pop(&dest)
        .success()
        .expect("items left");
    assert_eq!(popped.id, 32);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    let in_dest = dest.len();
    drop(dest);
    assert_eq!(drops.load(Ordering::SeqCst), in_dest);
    drop(injector);
    assert_eq!(drops.load(Ordering::SeqCst), 149);
    drop(popped);
    assert_eq!(drops.load(Ordering::SeqCst), 150);
}
