//! Batch steals between growable deques of every pair of flavours (LIFO or FIFO source, LIFO or FIFO
//! destination), and the `Steal` type.
//!
//! A batch takes `min(limit, ceil(len / 2))` of the oldest items (the limit is 32 unless given) and puts them
//! in the destination so that its owner pops them in the order the source's owner would have: oldest first
//! from a FIFO source, newest first from a LIFO source, whatever the destination's flavour (crossbeam-deque
//! 0.8's order; `tests/compat.rs` checks it against crossbeam itself).
//!
//! Under Miri these run with Tree Borrows (`MIRIFLAGS=-Zmiri-tree-borrows`), like every test of the growable
//! deque.
//!
//! They also need `-Zmiri-ignore-leaks`, as crossbeam's own Miri runs do (crossbeam#579): crossbeam-epoch
//! keeps its pointers as integers and leaves deferred frees pending at exit, which Miri's leak check reports.
//! Items cannot leak unseen: the drop-counting tests count every drop.

use ws_deque::{Steal, Stealer, Worker};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    Lifo,
    Fifo,
}

/// Every (source, destination) pair.
const PAIRS: [(Flavour, Flavour); 4] = [
    (Flavour::Lifo, Flavour::Lifo),
    (Flavour::Lifo, Flavour::Fifo),
    (Flavour::Fifo, Flavour::Lifo),
    (Flavour::Fifo, Flavour::Fifo),
];

fn worker<T>(flavour: Flavour) -> Worker<T> {
    match flavour {
        Flavour::Lifo => Worker::new_lifo(),
        Flavour::Fifo => Worker::new_fifo(),
    }
}

/// A source holding `0..len`, oldest first, and its stealer.
fn source(flavour: Flavour, len: u32) -> (Worker<u32>, Stealer<u32>) {
    let worker = worker(flavour);
    for i in 0..len {
        worker.push(i);
    }
    let stealer = worker.stealer();
    (worker, stealer)
}

/// Pops everything.
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

/// The four batch methods, for the tests that treat them alike.
#[derive(Clone, Copy, Debug)]
enum Batch {
    Plain,
    WithLimit(usize),
    AndPop,
    WithLimitAndPop(usize),
}

const BATCHES: [Batch; 4] = [
    Batch::Plain,
    Batch::WithLimit(10),
    Batch::AndPop,
    Batch::WithLimitAndPop(10),
];

/// Runs a batch steal; `Success(Some(item))` for the popping ones.
fn batch(stealer: &Stealer<u32>, dest: &Worker<u32>, how: Batch) -> Steal<Option<u32>> {
    let lift = |steal: Steal<()>| match steal {
        Steal::Success(()) => Steal::Success(None),
        Steal::Empty => Steal::Empty,
        Steal::Retry => Steal::Retry,
    };
    let lift_pop = |steal: Steal<u32>| match steal {
        Steal::Success(item) => Steal::Success(Some(item)),
        Steal::Empty => Steal::Empty,
        Steal::Retry => Steal::Retry,
    };
    match how {
        Batch::Plain => lift(stealer.steal_batch(dest)),
        Batch::WithLimit(limit) => lift(stealer.steal_batch_with_limit(dest, limit)),
        Batch::AndPop => lift_pop(stealer.steal_batch_and_pop(dest)),
        Batch::WithLimitAndPop(limit) => {
            lift_pop(stealer.steal_batch_with_limit_and_pop(dest, limit))
        }
    }
}

/// Checks that a batch of `count` moved `0..count` into an empty `dest` (in the source's pop order) and left
/// `count..len` in the source.
fn check_moved(
    pair: (Flavour, Flavour),
    len: u32,
    count: u32,
    src: &Worker<u32>,
    dest: &Worker<u32>,
) {
    let context = format!("{pair:?}, len {len}");
    assert_eq!(dest.len() as u32, count, "{context}: items moved");
    assert_eq!(src.len() as u32, len - count, "{context}: items left");
    assert_eq!(
        drain(dest),
        pop_order(pair.0, 0..count),
        "{context}: the batch pops in the source's order"
    );
    assert_eq!(
        drain(src),
        pop_order(pair.0, count..len),
        "{context}: the source keeps the newest"
    );
}

#[test]
fn steal_batch_takes_half_rounded_up() {
    for pair in PAIRS {
        for len in [1, 2, 3, 4, 7, 10, 63, 64] {
            let (src, stealer) = source(pair.0, len);
            let dest = worker(pair.1);
            assert_eq!(stealer.steal_batch(&dest), Steal::Success(()), "{pair:?}");
            check_moved(pair, len, len.div_ceil(2), &src, &dest);
        }
    }
}

#[test]
fn steal_batch_takes_at_most_32() {
    for pair in PAIRS {
        for len in [65, 66, 100, 1000] {
            let (src, stealer) = source(pair.0, len);
            let dest = worker(pair.1);
            assert_eq!(stealer.steal_batch(&dest), Steal::Success(()), "{pair:?}");
            check_moved(pair, len, 32, &src, &dest);
        }
    }
}

#[test]
fn steal_batch_with_limit_takes_the_smaller_of_limit_and_half() {
    for pair in PAIRS {
        for (len, limit, count) in [
            (100, 1, 1),
            (100, 5, 5),
            (100, 32, 32),
            (100, 33, 33),
            (100, 50, 50),
            (100, 51, 50),
            (100, usize::MAX, 50),
            (7, 3, 3),
            (7, 4, 4),
            (7, 5, 4),
            (1, 1, 1),
            (1, 100, 1),
        ] {
            let (src, stealer) = source(pair.0, len);
            let dest = worker(pair.1);
            assert_eq!(
                stealer.steal_batch_with_limit(&dest, limit),
                Steal::Success(()),
                "{pair:?}, limit {limit}"
            );
            check_moved(pair, len, count, &src, &dest);
        }
    }
}

/// Checks what a popping batch of `count` from `0..len` returned and left in `dest`: the item the source's
/// owner would have popped first (the oldest of a FIFO source, the newest of a LIFO one), then the rest in
/// that order.
fn check_popped(pair: (Flavour, Flavour), count: u32, popped: Steal<u32>, dest: &Worker<u32>) {
    let order = pop_order(pair.0, 0..count);
    assert_eq!(popped, Steal::Success(order[0]), "{pair:?}, count {count}");
    assert_eq!(dest.len() as u32, count - 1, "{pair:?}, count {count}");
    assert_eq!(drain(dest), order[1..], "{pair:?}, count {count}");
}

#[test]
fn steal_batch_and_pop_returns_what_the_source_would_pop_first() {
    for pair in PAIRS {
        for len in [1, 2, 3, 4, 10, 64, 100] {
            let (src, stealer) = source(pair.0, len);
            let dest = worker(pair.1);
            let count = len.div_ceil(2).min(32);
            check_popped(pair, count, stealer.steal_batch_and_pop(&dest), &dest);
            assert_eq!(drain(&src), pop_order(pair.0, count..len), "{pair:?}");
        }
    }
}

#[test]
fn steal_batch_with_limit_and_pop_counts_the_returned_item() {
    for pair in PAIRS {
        for (len, limit, count) in [
            (100, 1, 1),
            (100, 2, 2),
            (100, 10, 10),
            (100, 40, 40),
            (100, 60, 50),
            (5, 2, 2),
            (5, 4, 3),
        ] {
            let (src, stealer) = source(pair.0, len);
            let dest = worker(pair.1);
            let popped = stealer.steal_batch_with_limit_and_pop(&dest, limit);
            assert_eq!(src.len() as u32, len - count, "{pair:?}, limit {limit}");
            check_popped(pair, count, popped, &dest);
            assert_eq!(drain(&src), pop_order(pair.0, count..len), "{pair:?}");
        }
    }
}

#[test]
fn limit_zero_steals_nothing() {
    for pair in PAIRS {
        let (src, stealer) = source(pair.0, 10);
        let dest = worker(pair.1);
        assert_eq!(stealer.steal_batch_with_limit(&dest, 0), Steal::Empty);
        assert_eq!(
            stealer.steal_batch_with_limit_and_pop(&dest, 0),
            Steal::Empty
        );
        assert_eq!((src.len(), dest.len()), (10, 0), "{pair:?}");
        assert_eq!(drain(&src), pop_order(pair.0, 0..10));
    }
}

#[test]
fn empty_source_gives_empty() {
    for pair in PAIRS {
        let (src, stealer) = source(pair.0, 0);
        let dest = worker(pair.1);
        dest.push(7);
        for how in BATCHES {
            assert_eq!(
                batch(&stealer, &dest, how),
                Steal::Empty,
                "{pair:?} {how:?}"
            );
        }
        assert!(src.is_empty());
        assert_eq!(drain(&dest), [7]);
    }
}

/// crossbeam-deque's answer for a batch into the deque itself: the plain batches move nothing and say
/// whether there is work (`Success(())` or `Empty`); the popping ones pop.
#[test]
fn batch_into_its_own_worker_moves_nothing_or_pops() {
    for flavour in [Flavour::Lifo, Flavour::Fifo] {
        for len in [0, 1, 10, 100] {
            let (src, stealer) = source(flavour, len);
            let mut popped = Vec::new();
            for how in BATCHES {
                let outcome = batch(&stealer, &src, how);
                match how {
                    Batch::Plain | Batch::WithLimit(_) => {
                        let expected = if src.is_empty() {
                            Steal::Empty
                        } else {
                            Steal::Success(None)
                        };
                        assert_eq!(outcome, expected, "{flavour:?}, len {len}, {how:?}");
                    }
                    Batch::AndPop | Batch::WithLimitAndPop(_) => {
                        let expected = pop_order(flavour, 0..len).get(popped.len()).copied();
                        assert_eq!(
                            outcome,
                            expected.map_or(Steal::Empty, |item| Steal::Success(Some(item))),
                            "{flavour:?}, len {len}, {how:?}"
                        );
                        popped.extend(expected);
                    }
                }
            }
            assert_eq!(src.len(), len as usize - popped.len());
            // A clone of the stealer is the same deque.
            let expected = if src.is_empty() {
                Steal::Empty
            } else {
                Steal::Success(())
            };
            assert_eq!(stealer.clone().steal_batch(&src), expected);
            // Nothing was lost, duplicated or reordered.
            popped.extend(drain(&src));
            assert_eq!(popped, pop_order(flavour, 0..len));
            assert_eq!(stealer.steal(), Steal::Empty);
        }
    }
}

#[test]
fn batch_goes_after_what_the_destination_holds() {
    for pair in PAIRS {
        let (src, stealer) = source(pair.0, 10);
        let dest = worker(pair.1);
        dest.push(100);
        dest.push(101);
        assert_eq!(stealer.steal_batch(&dest), Steal::Success(()));
        assert_eq!(dest.len(), 7);
        let batch = pop_order(pair.0, 0..5);
        let expected: Vec<u32> = match pair.1 {
            // The batch lands on top, its first out uppermost.
            Flavour::Lifo => batch.into_iter().chain([101, 100]).collect(),
            // The batch queues behind what was there.
            Flavour::Fifo => [100, 101].into_iter().chain(batch).collect(),
        };
        assert_eq!(drain(&dest), expected, "{pair:?}");
        assert_eq!(drain(&src), pop_order(pair.0, 5..10));
    }
}

#[test]
fn batch_grows_a_full_destination() {
    for pair in PAIRS {
        let (src, stealer) = source(pair.0, 100);
        let dest = worker(pair.1);
        for i in 1000..1064 {
            dest.push(i);
        }
        assert_eq!(stealer.steal_batch(&dest), Steal::Success(()));
        assert_eq!(dest.len(), 96);
        let own = 1000..1064;
        let batch = pop_order(pair.0, 0..32);
        let expected: Vec<u32> = match pair.1 {
            Flavour::Lifo => batch.into_iter().chain(own.rev()).collect(),
            Flavour::Fifo => own.chain(batch).collect(),
        };
        assert_eq!(drain(&dest), expected, "{pair:?}");
        assert_eq!(src.len(), 68);
    }
}

#[test]
fn repeated_batches_halve_the_source() {
    for pair in PAIRS {
        let (src, stealer) = source(pair.0, 100);
        let dest = worker(pair.1);
        let mut counts = Vec::new();
        let mut moved = Vec::new();
        while stealer.steal_batch(&dest) == Steal::Success(()) {
            counts.push(dest.len());
            moved.extend(drain(&dest));
        }
        assert_eq!(counts, [32, 32, 18, 9, 5, 2, 1, 1], "{pair:?}");
        // Each batch takes the oldest items left and comes out in the source's order.
        let mut start = 0;
        let mut expected = Vec::new();
        for count in counts {
            expected.extend(pop_order(pair.0, start..start + count as u32));
            start += count as u32;
        }
        assert_eq!(moved, expected, "{pair:?}");
        assert!(src.is_empty());
    }
}

/// The stolen range straddles the end of the source's buffer (its head was moved near the end by steals).
#[test]
fn batch_across_the_end_of_the_buffer() {
    for pair in PAIRS {
        let (src, stealer) = source(pair.0, 60);
        for i in 0..50 {
            assert_eq!(stealer.steal(), Steal::Success(i));
        }
        for i in 60..90 {
            src.push(i);
        }
        // 40 items at positions 50..90 of a 64-slot buffer; the batch takes 50..70.
        let dest = worker(pair.1);
        assert_eq!(stealer.steal_batch(&dest), Steal::Success(()));
        assert_eq!(drain(&dest), pop_order(pair.0, 50..70), "{pair:?}");
        assert_eq!(drain(&src), pop_order(pair.0, 70..90), "{pair:?}");
    }
}

/// A destination that is itself a victim: its own thieves take its oldest items.
#[test]
fn destination_stays_a_working_deque() {
    for pair in PAIRS {
        let (_src, stealer) = source(pair.0, 20);
        let dest = worker(pair.1);
        let dest_stealer = dest.stealer();
        dest.push(100);
        assert_eq!(stealer.steal_batch_with_limit(&dest, 4), Steal::Success(()));
        // `100` is the oldest item of `dest`, whatever its flavour.
        assert_eq!(dest_stealer.steal(), Steal::Success(100), "{pair:?}");
        let batch = pop_order(pair.0, 0..4);
        assert_eq!(dest.pop(), Some(batch[0]), "{pair:?}");
        let third = Worker::new_fifo();
        assert_eq!(dest_stealer.steal_batch(&third), Steal::Success(()));
        assert_eq!(dest.len() + third.len(), 3);
        let mut rest: Vec<u32> = drain(&third);
        rest.extend(drain(&dest));
        rest.sort_unstable();
        let mut expected = batch[1..].to_vec();
        expected.sort_unstable();
        assert_eq!(rest, expected, "{pair:?}");
    }
}

#[test]
fn steal_predicates_and_success() {
    let empty: Steal<u8> = Steal::Empty;
    let retry: Steal<u8> = Steal::Retry;
    let success = Steal::Success(3u8);
    assert_eq!(
        (empty.is_empty(), empty.is_success(), empty.is_retry()),
        (true, false, false)
    );
    assert_eq!(
        (retry.is_empty(), retry.is_success(), retry.is_retry()),
        (false, false, true)
    );
    assert_eq!(
        (success.is_empty(), success.is_success(), success.is_retry()),
        (false, true, false)
    );
    assert_eq!(empty.success(), None);
    assert_eq!(retry.success(), None);
    assert_eq!(success.success(), Some(3));
    assert_eq!(
        format!("{empty:?} {retry:?} {success:?}"),
        "Empty Retry Success(..)"
    );
}

#[test]
fn steal_or_else() {
    use Steal::{Empty, Retry, Success};
    assert_eq!(Success(1).or_else(|| Success(2)), Success(1));
    assert_eq!(Success(1).or_else(|| unreachable!()), Success(1));
    assert_eq!(Empty.or_else(|| Success(2)), Success(2));
    assert_eq!(Empty.or_else(|| Empty), Empty::<u8>);
    assert_eq!(Empty.or_else(|| Retry), Retry::<u8>);
    assert_eq!(Retry.or_else(|| Success(2)), Success(2));
    assert_eq!(Retry.or_else(|| Empty), Retry::<u8>);
    assert_eq!(Retry.or_else(|| Retry), Retry::<u8>);
}

#[test]
fn steal_from_iterator() {
    use Steal::{Empty, Retry, Success};
    let collect = |outcomes: &[Steal<u8>]| outcomes.iter().copied().collect::<Steal<u8>>();
    assert_eq!(collect(&[]), Empty);
    assert_eq!(collect(&[Empty, Empty]), Empty);
    assert_eq!(collect(&[Empty, Retry, Empty]), Retry);
    assert_eq!(collect(&[Retry, Success(1), Success(2)]), Success(1));
    assert_eq!(collect(&[Empty, Success(4)]), Success(4));
    // It stops at the first success: later sources are not stolen from.
    let (first, second) = (source(Flavour::Fifo, 2), source(Flavour::Fifo, 2));
    let stolen: Steal<u32> = [&first.1, &second.1].iter().map(|s| s.steal()).collect();
    assert_eq!(stolen, Success(0));
    assert_eq!((first.0.len(), second.0.len()), (1, 2));
}
