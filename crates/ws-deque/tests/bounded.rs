//! The bounded deque: capacity rounding, `Full`, order, wrap-around, batch steals into bounded destinations
//! (full, partly full, its own worker), and drops.
//!
//! This file uses neither the growable deque nor the injector, so it runs under Miri with the default
//! Stacked Borrows: the bounded deque never frees a buffer while it lives, and needs no crossbeam-epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ws_deque::Steal;
use ws_deque::bounded::{Full, Stealer, Worker};

mod common;
use common::{DropCounter, assert_send, assert_send_sync_clone};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    Lifo,
    Fifo,
}

const FLAVOURS: [Flavour; 2] = [Flavour::Lifo, Flavour::Fifo];

/// Every (source, destination) pair.
const PAIRS: [(Flavour, Flavour); 4] = [
    (Flavour::Lifo, Flavour::Lifo),
    (Flavour::Lifo, Flavour::Fifo),
    (Flavour::Fifo, Flavour::Lifo),
    (Flavour::Fifo, Flavour::Fifo),
];

fn worker<T>(flavour: Flavour, capacity: usize) -> Worker<T> {
    match flavour {
        Flavour::Lifo => Worker::new_lifo(capacity),
        Flavour::Fifo => Worker::new_fifo(capacity),
    }
}

/// A deque of `capacity` slots holding `0..len`, oldest first, and its stealer.
fn source(flavour: Flavour, capacity: usize, len: u32) -> (Worker<u32>, Stealer<u32>) {
    let worker = worker(flavour, capacity);
    for i in 0..len {
        worker.push(i).expect("room for the initial items");
    }
    let stealer = worker.stealer();
    (worker, stealer)
}

fn drain<T>(worker: &Worker<T>) -> Vec<T> {
    std::iter::from_fn(|| worker.pop()).collect()
}

/// What the owner of a deque holding `items` (oldest first) pops, in order.
fn pop_order(flavour: Flavour, items: impl DoubleEndedIterator<Item = u32>) -> Vec<u32> {
    match flavour {
        Flavour::Lifo => items.rev().collect(),
        Flavour::Fifo => items.collect(),
    }
}

#[test]
fn handles_are_send_and_stealers_are_sync() {
    assert_send::<Worker<String>>();
    assert_send_sync_clone::<Stealer<String>>();
}

#[test]
fn capacity_rounds_up_to_a_power_of_two() {
    for flavour in FLAVOURS {
        for (requested, rounded) in [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 4),
            (5, 8),
            (63, 64),
            (64, 64),
            (65, 128),
            (100, 128),
            (1000, 1024),
        ] {
            let worker = worker::<u8>(flavour, requested);
            assert_eq!(worker.capacity(), rounded, "{flavour:?}, {requested}");
            // The rounded capacity is usable, and no more.
            for i in 0..rounded {
                assert_eq!(worker.push(i as u8), Ok(()), "{flavour:?}, {requested}");
            }
            assert_eq!(worker.push(0), Err(Full(0)), "{flavour:?}, {requested}");
            assert_eq!(worker.len(), rounded);
        }
    }
}

#[test]
#[should_panic(expected = "larger than the maximum")]
fn lifo_capacity_above_2_pow_30_panics() {
    let _worker = Worker::<u8>::new_lifo((1 << 30) + 1);
}

#[test]
#[should_panic(expected = "larger than the maximum")]
fn fifo_capacity_above_2_pow_30_panics() {
    let _worker = Worker::<u8>::new_fifo(usize::MAX);
}

#[test]
fn order_of_pops_and_steals() {
    let lifo = worker(Flavour::Lifo, 8);
    let fifo = worker(Flavour::Fifo, 8);
    for i in 0..8 {
        lifo.push(i).unwrap();
        fifo.push(i).unwrap();
    }
    let (lifo_thief, fifo_thief) = (lifo.stealer(), fifo.stealer());
    assert_eq!(lifo_thief.steal(), Steal::Success(0));
    assert_eq!(fifo_thief.steal(), Steal::Success(0));
    assert_eq!(lifo.pop(), Some(7));
    assert_eq!(fifo.pop(), Some(1));
    assert_eq!(drain(&lifo), [6, 5, 4, 3, 2, 1]);
    assert_eq!(drain(&fifo), [2, 3, 4, 5, 6, 7]);
    assert_eq!(lifo_thief.steal(), Steal::Empty);
    assert_eq!(fifo_thief.steal(), Steal::Empty);
}

#[test]
fn len_and_is_empty() {
    for flavour in FLAVOURS {
        let worker = worker(flavour, 16);
        let stealer = worker.stealer();
        assert!(worker.is_empty() && stealer.is_empty());
        for i in 0..16 {
            worker.push(i).unwrap();
            assert_eq!((worker.len(), stealer.len()), (i + 1, i + 1));
        }
        assert!(!worker.is_empty() && !stealer.is_empty());
        assert!(stealer.steal().is_success());
        assert_eq!(worker.len(), 15);
        assert!(worker.pop().is_some());
        assert_eq!(stealer.len(), 14);
        drop(drain(&worker));
        assert!(worker.is_empty() && stealer.is_empty());
        assert!(format!("{worker:?} {stealer:?}").contains("len: 0"));
    }
}

#[test]
fn full_gives_the_item_back() {
    for flavour in FLAVOURS {
        let drops = Arc::new(AtomicUsize::new(0));
        let worker = worker(flavour, 4);
        for i in 0..4 {
            assert!(worker.push(DropCounter::new(i, &drops)).is_ok());
        }
        let Err(Full(item)) = worker.push(DropCounter::new(4, &drops)) else {
            panic!("{flavour:?}: a full deque took a fifth item");
        };
        assert_eq!(item.id, 4);
        assert_eq!(drops.load(Ordering::SeqCst), 0, "the refused item is ours");
        assert_eq!(worker.len(), 4);
        drop(item);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        let ids: Vec<usize> = drain(&worker).iter().map(|item| item.id).collect();
        assert_eq!(
            ids,
            pop_order(flavour, 0..4)
                .iter()
                .map(|&i| i as usize)
                .collect::<Vec<_>>()
        );
        assert_eq!(drops.load(Ordering::SeqCst), 5);
    }
}

#[test]
fn full_is_an_error_that_hides_the_item() {
    let full = Full(String::from("secret"));
    assert_eq!(format!("{full:?}"), "Full(..)");
    assert_eq!(full.to_string(), "the bounded work-stealing deque is full");
    let error: &dyn std::error::Error = &full;
    assert!(error.source().is_none());
    assert_eq!(full.0, "secret");
}

#[test]
fn steal_and_pop_free_room() {
    for flavour in FLAVOURS {
        let (worker, stealer) = source(flavour, 4, 4);
        assert_eq!(worker.push(4), Err(Full(4)));
        assert_eq!(stealer.steal(), Steal::Success(0));
        assert_eq!(worker.push(4), Ok(()));
        assert_eq!(worker.push(5), Err(Full(5)));
        let popped = worker.pop().expect("not empty");
        assert_eq!(popped, if flavour == Flavour::Lifo { 4 } else { 1 });
        assert_eq!(worker.push(5), Ok(()));
        assert_eq!(worker.push(6), Err(Full(6)));
        assert_eq!(worker.len(), 4);
    }
}

#[test]
fn capacity_one() {
    for flavour in FLAVOURS {
        let (worker, stealer) = source(flavour, 0, 0);
        for i in 0..10 {
            assert_eq!(worker.push(i), Ok(()));
            assert_eq!(worker.push(100), Err(Full(100)));
            if i % 2 == 0 {
                assert_eq!(stealer.steal(), Steal::Success(i));
            } else {
                assert_eq!(worker.pop(), Some(i));
            }
            assert!(worker.is_empty());
        }
    }
}

#[test]
fn fifo_push_pop_wraps_around() {
    let laps = if cfg!(miri) { 20 } else { 10_000 };
    let (worker, _stealer) = source(Flavour::Fifo, 4, 3);
    for i in 3..4 * laps {
        assert_eq!(worker.push(i), Ok(()));
        assert_eq!(worker.push(u32::MAX), Err(Full(u32::MAX)));
        assert_eq!(worker.pop(), Some(i - 3));
    }
    assert_eq!(drain(&worker), [4 * laps - 3, 4 * laps - 2, 4 * laps - 1]);
}

#[test]
fn lifo_push_steal_wraps_around() {
    let laps = if cfg!(miri) { 20 } else { 10_000 };
    let (worker, stealer) = source(Flavour::Lifo, 4, 3);
    for i in 3..4 * laps {
        assert_eq!(worker.push(i), Ok(()));
        assert_eq!(worker.push(u32::MAX), Err(Full(u32::MAX)));
        assert_eq!(stealer.steal(), Steal::Success(i - 3));
        // The owner's end works too while the positions go round.
        if i % 5 == 0 {
            assert_eq!(worker.pop(), Some(i));
            assert_eq!(worker.push(i), Ok(()));
        }
    }
    assert_eq!(drain(&worker), [4 * laps - 1, 4 * laps - 2, 4 * laps - 3]);
}

#[test]
fn batch_takes_half_rounded_up_at_most_32() {
    for pair in PAIRS {
        for (len, count) in [
            (1, 1),
            (2, 1),
            (3, 2),
            (9, 5),
            (64, 32),
            (65, 32),
            (128, 32),
        ] {
            let (src, stealer) = source(pair.0, 128, len);
            let dest = worker(pair.1, 128);
            assert_eq!(stealer.steal_batch(&dest), Steal::Success(()), "{pair:?}");
            assert_eq!(drain(&dest), pop_order(pair.0, 0..count), "{pair:?}, {len}");
            assert_eq!(
                drain(&src),
                pop_order(pair.0, count..len),
                "{pair:?}, {len}"
            );
        }
    }
}

#[test]
fn batch_with_limit_and_pop() {
    for pair in PAIRS {
        let (src, stealer) = source(pair.0, 128, 100);
        let dest = worker(pair.1, 128);
        assert_eq!(
            stealer.steal_batch_with_limit(&dest, 40),
            Steal::Success(())
        );
        assert_eq!(drain(&dest), pop_order(pair.0, 0..40), "{pair:?}");
        // 60 left: half is 30; the limit counts the returned item, which is the first the source's owner
        // would pop (the newest of the batch from a LIFO source), and the rest follow in that order.
        let batch = pop_order(pair.0, 40..70);
        assert_eq!(
            stealer.steal_batch_with_limit_and_pop(&dest, 50),
            Steal::Success(batch[0])
        );
        assert_eq!(drain(&dest), batch[1..], "{pair:?}");
        // 30 left.
        let batch = pop_order(pair.0, 70..85);
        assert_eq!(stealer.steal_batch_and_pop(&dest), Steal::Success(batch[0]));
        assert_eq!(drain(&dest), batch[1..], "{pair:?}");
        assert_eq!(drain(&src), pop_order(pair.0, 85..100));
    }
}

#[test]
fn batch_into_a_full_destination() {
    for pair in PAIRS {
        let (src, stealer) = source(pair.0, 16, 10);
        let dest = worker(pair.1, 4);
        for i in 100..104 {
            dest.push(i).unwrap();
        }
        assert_eq!(stealer.steal_batch(&dest), Steal::Empty, "{pair:?}");
        assert_eq!(
            stealer.steal_batch_with_limit(&dest, 3),
            Steal::Empty,
            "{pair:?}"
        );
        assert_eq!(src.len(), 10, "{pair:?}: nothing was taken");
        // The popping variants still take one item, which needs no room.
        assert_eq!(stealer.steal_batch_and_pop(&dest), Steal::Success(0));
        assert_eq!(
            stealer.steal_batch_with_limit_and_pop(&dest, 5),
            Steal::Success(1)
        );
        assert_eq!(drain(&dest), pop_order(pair.1, 100..104), "{pair:?}");
        assert_eq!(drain(&src), pop_order(pair.0, 2..10), "{pair:?}");
    }
}

#[test]
fn batch_into_a_partly_full_destination() {
    for pair in PAIRS {
        let (src, stealer) = source(pair.0, 32, 20);
        let dest = worker(pair.1, 8);
        for i in 100..105 {
            dest.push(i).unwrap();
        }
        // Half of 20 is 10, but only 3 slots are free.
        assert_eq!(stealer.steal_batch(&dest), Steal::Success(()), "{pair:?}");
        assert_eq!(dest.len(), 8);
        assert_eq!(src.len(), 17);
        let batch = pop_order(pair.0, 0..3);
        let expected: Vec<u32> = match pair.1 {
            Flavour::Lifo => batch.into_iter().chain((100..105).rev()).collect(),
            Flavour::Fifo => (100..105).chain(batch).collect(),
        };
        assert_eq!(drain(&dest), expected, "{pair:?}");

        // Empty again: 8 free slots, 17 items: 8 taken, and with a pop one more fits.
        let batch = pop_order(pair.0, 3..12);
        assert_eq!(stealer.steal_batch_and_pop(&dest), Steal::Success(batch[0]));
        assert_eq!(dest.len(), 8, "{pair:?}");
        assert_eq!(drain(&dest), batch[1..], "{pair:?}");
        assert_eq!(drain(&src), pop_order(pair.0, 12..20), "{pair:?}");
    }
}

/// A batch fills the destination's free room even after the destination's own pops moved its steal head
/// (regression: the room was once computed from a stale steal head, cutting the batch short or refusing it).
#[test]
fn batch_fills_the_free_room_of_the_destination() {
    for pair in PAIRS {
        let (_src, stealer) = source(pair.0, 32, 20);
        let dest = worker(pair.1, 8);
        let dest_stealer = dest.stealer();
        for i in 100..106 {
            dest.push(i).unwrap();
        }
        for i in 100..106 {
            assert_eq!(dest_stealer.steal(), Steal::Success(i));
        }
        assert!(dest.is_empty());
        // 8 free slots; half of 20 is 10: 8 items are moved.
        assert_eq!(stealer.steal_batch(&dest), Steal::Success(()), "{pair:?}");
        assert_eq!(dest.len(), 8, "{pair:?}: after its thief emptied it");
    }
    for source_flavour in FLAVOURS {
        let (_src, stealer) = source(source_flavour, 32, 20);
        let dest = worker(Flavour::Fifo, 8);
        for i in 100..108 {
            dest.push(i).unwrap();
            assert_eq!(dest.pop(), Some(i));
        }
        assert_eq!(
            stealer.steal_batch(&dest),
            Steal::Success(()),
            "{source_flavour:?}"
        );
        assert_eq!(
            dest.len(),
            8,
            "{source_flavour:?}: after its FIFO owner emptied it"
        );
    }
}

/// As crossbeam-deque: a plain batch into the deque itself moves nothing and says whether there is work; a
/// popping one pops.
#[test]
fn batch_into_its_own_worker_moves_nothing_or_pops() {
    for flavour in FLAVOURS {
        let (src, stealer) = source(flavour, 16, 10);
        let order = pop_order(flavour, 0..10);
        assert_eq!(stealer.steal_batch(&src), Steal::Success(()));
        assert_eq!(stealer.steal_batch_with_limit(&src, 4), Steal::Success(()));
        assert_eq!(stealer.steal_batch_and_pop(&src), Steal::Success(order[0]));
        assert_eq!(
            stealer.steal_batch_with_limit_and_pop(&src, 4),
            Steal::Success(order[1])
        );
        assert_eq!(src.len(), 8);
        assert_eq!(drain(&src), order[2..]);
        assert_eq!(stealer.steal_batch(&src), Steal::Empty);
        assert_eq!(stealer.steal_batch_and_pop(&src), Steal::Empty);
    }
}

#[test]
fn limit_zero_and_empty_source_steal_nothing() {
    for pair in PAIRS {
        let (src, stealer) = source(pair.0, 16, 10);
        let dest = worker(pair.1, 16);
        assert_eq!(stealer.steal_batch_with_limit(&dest, 0), Steal::Empty);
        assert_eq!(
            stealer.steal_batch_with_limit_and_pop(&dest, 0),
            Steal::Empty
        );
        assert_eq!((src.len(), dest.len()), (10, 0));

        let (_empty, empty_stealer) = source(pair.0, 16, 0);
        assert_eq!(empty_stealer.steal(), Steal::Empty);
        assert_eq!(empty_stealer.steal_batch(&dest), Steal::Empty);
        assert_eq!(empty_stealer.steal_batch_and_pop(&dest), Steal::Empty);
        assert!(dest.is_empty());
    }
}

#[test]
fn zero_sized_items() {
    for flavour in FLAVOURS {
        let worker = worker(flavour, 8);
        for _ in 0..8 {
            assert_eq!(worker.push(()), Ok(()));
        }
        assert_eq!(worker.push(()), Err(Full(())));
        let dest = self::worker(flavour, 8);
        assert_eq!(worker.stealer().steal_batch(&dest), Steal::Success(()));
        assert_eq!((worker.len(), dest.len()), (4, 4));
        assert_eq!(worker.pop(), Some(()));
    }
}

#[test]
fn dropping_the_worker_drops_each_item_once() {
    for flavour in FLAVOURS {
        let drops = Arc::new(AtomicUsize::new(0));
        let worker = worker(flavour, 8);
        for i in 0..8 {
            worker.push(DropCounter::new(i, &drops)).unwrap();
        }
        let stolen = worker.stealer().steal().success().expect("not empty");
        assert_eq!(stolen.id, 0);
        // Wrap the positions: the slot freed by the steal is reused.
        worker.push(DropCounter::new(8, &drops)).unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(worker);
        assert_eq!(drops.load(Ordering::SeqCst), 8, "{flavour:?}");
        drop(stolen);
        assert_eq!(drops.load(Ordering::SeqCst), 9, "{flavour:?}");
    }
}

#[test]
fn stealers_outlive_the_worker() {
    for flavour in FLAVOURS {
        let drops = Arc::new(AtomicUsize::new(0));
        let worker = worker(flavour, 16);
        for i in 0..16 {
            worker.push(DropCounter::new(i, &drops)).unwrap();
        }
        let first = worker.stealer();
        let second = first.clone();
        drop(worker);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        for i in 0..6 {
            let stealer = if i % 2 == 0 { &first } else { &second };
            assert_eq!(stealer.steal().success().map(|item| item.id), Some(i));
        }
        assert_eq!(drops.load(Ordering::SeqCst), 6);
        // A batch from a stealer whose worker is gone, into a live one.
        let dest = self::worker(Flavour::Fifo, 4);
        assert!(first.steal_batch(&dest).is_success());
        let ids: Vec<u32> = drain(&dest).iter().map(|item| item.id as u32).collect();
        assert_eq!(ids, pop_order(flavour, 6..10));
        assert_eq!(drops.load(Ordering::SeqCst), 10);
        drop(first);
        assert_eq!(drops.load(Ordering::SeqCst), 10, "another stealer is alive");
        assert_eq!(second.len(), 6);
        drop(second);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            16,
            "the last stealer drops the rest"
        );
    }
}

/// Positions are `u32` counters that wrap: push and take 2^32 + 100 items through a 4-slot deque, so every
/// counter passes `u32::MAX` with items in flight.
#[test]
#[ignore = "slow (2^32 operations, minutes in release): cargo test --release -- --ignored wrap"]
fn positions_wrap_past_u32_max() {
    let total = (1u64 << 32) + 100;
    let fifo = worker(Flavour::Fifo, 4);
    let lifo = worker(Flavour::Lifo, 4);
    let lifo_thief = lifo.stealer();
    for i in 0..3u64 {
        fifo.push(i).unwrap();
        lifo.push(i).unwrap();
    }
    for i in 3..total {
        fifo.push(i).unwrap();
        assert_eq!(fifo.pop(), Some(i - 3));
        lifo.push(i).unwrap();
        assert_eq!(lifo_thief.steal(), Steal::Success(i - 3));
    }
    assert_eq!(fifo.len(), 3);
    assert_eq!(fifo.push(total), Ok(()));
    assert_eq!(fifo.push(0), Err(Full(0)));
    assert_eq!(drain(&fifo), [total - 3, total - 2, total - 1, total]);
    assert_eq!(lifo.stealer().len(), 3);
    assert_eq!(drain(&lifo), [total - 1, total - 2, total - 3]);
}

/// A small concurrent run, so Miri (Stacked Borrows, data-race detector) checks the claim protocol of the
/// bounded deque: an owner pushing and popping against a thief that steals single items and batches.
#[test]
fn owner_and_thief_take_each_item_once() {
    let count: u32 = if cfg!(miri) { 120 } else { 50_000 };
    for flavour in FLAVOURS {
        let (worker, stealer) = source(flavour, 8, 0);
        let done = AtomicBool::new(false);
        let (mut taken, stolen) = std::thread::scope(|scope| {
            let thief = scope.spawn(|| {
                let dest = self::worker(Flavour::Fifo, 4);
                let mut stolen = Vec::new();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    match stealer.steal_batch_and_pop(&dest) {
                        Steal::Success(item) => stolen.push(item),
                        Steal::Retry => {}
                        Steal::Empty if finished => break,
                        Steal::Empty => std::thread::yield_now(),
                    }
                    stolen.extend(drain(&dest));
                    if let Steal::Success(item) = stealer.steal() {
                        stolen.push(item);
                    }
                }
                stolen
            });
            let mut taken = Vec::new();
            for i in 0..count {
                let mut item = i;
                while let Err(Full(refused)) = worker.push(item) {
                    item = refused;
                    taken.extend(worker.pop());
                }
                if i % 3 == 0 {
                    taken.extend(worker.pop());
                }
            }
            taken.extend(drain(&worker));
            done.store(true, Ordering::SeqCst);
            (taken, thief.join().unwrap())
        });
        taken.extend(stolen);
        taken.sort_unstable();
        assert_eq!(taken, (0..count).collect::<Vec<_>>(), "{flavour:?}");
    }
}
