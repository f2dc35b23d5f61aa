//! The growable deque on one thread, one body run over each flavour (`lifo::*` and `fifo::*`): order,
//! lengths, growth and shrinking, wrap-around, stealing from the other end, zero-sized items, and drops.
//!
//! Each test says what it expects through the flavour's [`Flavour`] description (which end the owner pops),
//! checked against a `VecDeque` model where the order matters.
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

/// What a test needs to know about a flavour.
#[derive(Clone, Copy, Debug)]
struct Flavour {
    /// Makes an empty worker of this flavour.
    new: fn() -> Worker<usize>,
    /// The owner pops the newest item (LIFO) or the oldest (FIFO).
    newest_first: bool,
    /// The flavour's name in `Debug` output.
    name: &'static str,
}

const LIFO: Flavour = Flavour {
    new: Worker::new_lifo,
    newest_first: true,
    name: "Lifo",
};

const FIFO: Flavour = Flavour {
    new: Worker::new_fifo,
    newest_first: false,
    name: "Fifo",
};

impl Flavour {
    /// What the owner of a deque holding `items` (oldest first) pops, in order.
    fn pop_order(self, items: impl DoubleEndedIterator<Item = usize>) -> Vec<usize> {
        if self.newest_first {
            items.rev().collect()
        } else {
            items.collect()
        }
    }

    /// The owner's pop on a model holding the items oldest first.
    fn model_pop<T>(self, model: &mut VecDeque<T>) -> Option<T> {
        if self.newest_first {
            model.pop_back()
        } else {
            model.pop_front()
        }
    }

    /// A worker of this flavour for items of any type.
    fn worker<T>(self) -> Worker<T> {
        if self.newest_first {
            Worker::new_lifo()
        } else {
            Worker::new_fifo()
        }
    }
}

#[test]
fn handles_are_send_and_stealers_are_sync() {
    assert_send::<Worker<String>>();
    assert_send_sync_clone::<Stealer<String>>();
}

#[test]
fn default_is_lifo() {
    let worker = Worker::default();
    worker.push('a');
    worker.push('b');
    assert_eq!(worker.pop(), Some('b'));
    assert!(format!("{worker:?}").contains("Lifo"));
}

/// The tests, one body for both flavours: `flavour_tests!(module, FLAVOUR)`.
macro_rules! flavour_tests {
    ($module:ident, $flavour:expr) => {
        mod $module {
            use super::*;

            const FLAVOUR: Flavour = $flavour;

            #[test]
            fn smoke() {
                let worker = (FLAVOUR.new)();
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
            fn pops_in_the_flavours_order() {
                let worker = (FLAVOUR.new)();
                for i in 0..10 {
                    worker.push(i);
                }
                for expected in FLAVOUR.pop_order(0..10) {
                    assert_eq!(worker.pop(), Some(expected));
                }
                assert_eq!(worker.pop(), None);
                assert!(format!("{worker:?}").contains(FLAVOUR.name));
            }

            #[test]
            fn len_and_is_empty() {
                let worker = (FLAVOUR.new)();
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
                for (i, expected) in FLAVOUR.pop_order(50..100).into_iter().enumerate() {
                    assert_eq!(worker.pop(), Some(expected));
                    assert_eq!(stealer.len(), 49 - i);
                }
                assert_eq!((worker.len(), worker.is_empty()), (0, true));
                assert_eq!((stealer.len(), stealer.is_empty()), (0, true));
            }

            #[test]
            fn grows_past_64_and_4096_then_shrinks_back() {
                let worker = (FLAVOUR.new)();
                let stealer = worker.stealer();
                assert_eq!(capacity(&worker), 64);
                // The second round checks that a deque that shrank grows again (one round is enough under
                // Miri).
                for round in 0..if cfg!(miri) { 1 } else { 2 } {
                    for i in 0..MANY {
                        worker.push(i);
                        assert_eq!(worker.len(), i + 1);
                        match i + 1 {
                            64 => assert_eq!(
                                capacity(&worker),
                                64,
                                "round {round}: full but not grown"
                            ),
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
                    for (popped, expected) in FLAVOUR.pop_order(3..MANY).into_iter().enumerate() {
                        assert_eq!(worker.pop(), Some(expected), "round {round}");
                        assert_eq!(worker.len(), MANY - 4 - popped);
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

            #[test]
            fn shrinks_after_as_many_low_pops_as_slots() {
                let worker = (FLAVOUR.new)();
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
            fn a_refill_restarts_the_shrink_count() {
                let worker = (FLAVOUR.new)();
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
                // Refill past a quarter (64 items: 40 pushed, at least an eighth of 256) and come back down:
                // the count starts again.
                for i in 0..40 {
                    worker.push(2000 + i);
                }
                assert!(worker.pop().is_some());
                assert_eq!(worker.len(), 70);
                for _ in 0..39 {
                    assert!(worker.pop().is_some());
                }
                // Without the restart, these 201 low pops and the 200 before would pass 256 and halve the
                // buffer.
                for i in 0..200 {
                    worker.push(3000 + i);
                    assert!(worker.pop().is_some());
                }
                assert_eq!(capacity(&worker), 256);
            }

            #[test]
            fn steals_from_the_other_end() {
                let worker = (FLAVOUR.new)();
                let stealer = worker.stealer();
                let mut model: VecDeque<usize> = (0..10).collect();
                for i in 0..10 {
                    worker.push(i);
                }
                for _ in 0..5 {
                    assert_eq!(stealer.steal().success(), model.pop_front());
                    assert_eq!(worker.pop(), FLAVOUR.model_pop(&mut model));
                }
                assert_eq!(stealer.steal(), Steal::Empty);
                assert_eq!(worker.pop(), None);
            }

            #[test]
            fn cloned_stealers_share_the_deque() {
                let worker = (FLAVOUR.new)();
                let first = worker.stealer();
                let second = first.clone();
                let mut model: VecDeque<usize> = (0..4).collect();
                for i in 0..4 {
                    worker.push(i);
                }
                assert_eq!(first.steal().success(), model.pop_front());
                assert_eq!(second.steal().success(), model.pop_front());
                assert_eq!(second.len(), 2);
                assert_eq!(worker.pop(), FLAVOUR.model_pop(&mut model));
                assert_eq!(first.steal().success(), model.pop_front());
                assert_eq!(second.steal(), Steal::Empty);
            }

            /// Mixes pushes, pops and steals (kept between 0 and about 100 items, across the 64-slot
            /// boundary) for many times the buffer size, so the positions go round the buffer.
            #[test]
            fn wraps_around_many_times() {
                let rounds = if cfg!(miri) { 600 } else { 20_000 };
                let worker = (FLAVOUR.new)();
                let stealer = worker.stealer();
                let mut model = VecDeque::new();
                let mut random = Lcg(7);
                let mut next = 0;
                let mut stolen = 0;
                for round in 0..rounds {
                    let high = model.len() > 100;
                    match random.below(4) {
                        0 | 1 if !high => {
                            worker.push(next);
                            model.push_back(next);
                            next += 1;
                        }
                        2 => {
                            assert_eq!(worker.pop(), FLAVOUR.model_pop(&mut model), "round {round}")
                        }
                        _ => {
                            let expected = model.pop_front().map_or(Steal::Empty, Steal::Success);
                            stolen += usize::from(expected.is_success());
                            assert_eq!(stealer.steal(), expected, "round {round}");
                        }
                    }
                    assert_eq!(worker.len(), model.len(), "round {round}");
                }
                assert!(
                    stolen > 2 * 64,
                    "too few steals to go round the buffer: {stolen}"
                );
                while let Some(expected) = FLAVOUR.model_pop(&mut model) {
                    assert_eq!(worker.pop(), Some(expected));
                }
                assert_eq!(worker.pop(), None);
            }

            /// 40 items in flight, pushed and popped many times the buffer size, never growing (for FIFO
            /// the owner alone moves the head round the buffer).
            #[test]
            fn push_pop_wraps_around_without_growing() {
                let laps = if cfg!(miri) { 4 } else { 200 };
                let worker = (FLAVOUR.new)();
                let mut model = VecDeque::new();
                for i in 0..40 {
                    worker.push(i);
                    model.push_back(i);
                }
                for i in 40..40 + 64 * laps {
                    worker.push(i);
                    model.push_back(i);
                    assert_eq!(worker.pop(), FLAVOUR.model_pop(&mut model));
                    assert_eq!(worker.len(), 40);
                }
                assert_eq!(capacity(&worker), 64);
                let rest: Vec<_> = std::iter::from_fn(|| worker.pop()).collect();
                let expected: Vec<_> =
                    std::iter::from_fn(|| FLAVOUR.model_pop(&mut model)).collect();
                assert_eq!(rest, expected);
            }

            #[test]
            fn zero_sized_items() {
                let worker = FLAVOUR.worker();
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
                let worker = FLAVOUR.worker();
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
                let worker = FLAVOUR.worker();
                let mut model: VecDeque<usize> = (0..300).collect();
                // Past 64 and 128, so items were copied into new buffers: copies must not be dropped twice.
                for i in 0..300 {
                    worker.push(DropCounter::new(i, &drops));
                }
                let popped = worker.pop().expect("not empty");
                assert_eq!(Some(popped.id), FLAVOUR.model_pop(&mut model));
                let stolen = worker.stealer().steal().success().expect("not empty");
                assert_eq!(Some(stolen.id), model.pop_front());
                assert_eq!(drops.load(Ordering::SeqCst), 0);
                drop(worker);
                assert_eq!(drops.load(Ordering::SeqCst), 298);
                drop((popped, stolen));
                assert_eq!(drops.load(Ordering::SeqCst), 300);
            }

            #[test]
            fn dropping_an_emptied_worker_drops_nothing_more() {
                let drops = Arc::new(AtomicUsize::new(0));
                let worker = FLAVOUR.worker();
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
                let worker = FLAVOUR.worker();
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
                let worker = FLAVOUR.worker();
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
                let worker = (FLAVOUR.new)();
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
                assert_eq!(popped, FLAVOUR.pop_order(0..=10));
                assert_eq!(stealer.steal(), Steal::Empty);
            }
        }
    };
}

flavour_tests!(lifo, LIFO);
flavour_tests!(fifo, FIFO);

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

/// Positions are `u32` counters that wrap (the head moves when thieves steal, the pop count with pops):
/// 2^32 + 100 items pass through a LIFO deque holding 10, then a batch steal crosses the wrapped positions.
#[test]
#[ignore = "slow (2^32 operations, minutes in release): cargo test --release -- --ignored wrap"]
fn lifo_positions_wrap_past_u32_max() {
    let total = (1u64 << 32) + 100;
    let worker = Worker::new_lifo();
    let stealer = worker.stealer();
    for i in 0..10 {
        worker.push(i);
    }
    for i in 10..total {
        worker.push(i);
        worker.push(u64::MAX);
        assert_eq!(worker.pop(), Some(u64::MAX));
        assert_eq!(stealer.steal(), Steal::Success(i - 10));
    }
    assert_eq!(worker.len(), 10);
    let dest = Worker::new_fifo();
    assert_eq!(stealer.steal_batch(&dest), Steal::Success(()));
    // The batch (the 5 oldest) comes out newest first, as a LIFO owner would pop it.
    assert_eq!(dest.pop(), Some(total - 6));
    assert_eq!(worker.pop(), Some(total - 1));
}

/// The same for a FIFO deque, whose owner moves the head too: 2^32 + 100 items go through a deque holding
/// 10, then a batch steal and a drop cross the wrapped positions.
#[test]
#[ignore = "slow (2^32 operations, minutes in release): cargo test --release -- --ignored wrap"]
fn fifo_positions_wrap_past_u32_max() {
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
