//! Loom models of the deque, the bounded deque and the injector.
//!
//! Run with `.ci/loom.sh` (`RUSTFLAGS="--cfg loom" cargo test -p ws-deque --features loom --test loom
//! --release`). Under `cfg(loom)` the growable deque starts with 2 slots and injector blocks hold 2 items, so
//! these small models reach growth, shrinking, wrap-around and block changes. Replaced buffers are freed when
//! the deque drops (crossbeam-epoch is not modelled); loom checks the claim protocol and every slot access.
#![cfg(loom)]

use loom::thread;
use ws_deque::{Injector, Steal, Stealer, Worker, bounded};

/// Both flavours of the growable deque.
const FLAVOURS: [fn() -> Worker<u32>; 2] = [Worker::new_lifo, Worker::new_fifo];

/// Steals single items until the thief has seen `Empty` (retrying on `Retry`).
fn steal_all<T>(stealer: &Stealer<T>, tries: usize) -> Vec<T> {
    let mut taken = Vec::new();
    for _ in 0..tries {
        match stealer.steal() {
            Steal::Success(value) => taken.push(value),
            Steal::Empty => break,
            Steal::Retry => thread::yield_now(),
        }
    }
    taken
}

/// Asserts `taken` holds each of `0..count` exactly once.
fn assert_each_once(mut taken: Vec<u32>, count: u32) {
    taken.sort_unstable();
    assert_eq!(
        taken,
        (0..count).collect::<Vec<_>>(),
        "an item was lost or taken twice"
    );
}

/// Runs a model whose threads wait for each other in spin loops (the injector's consumers wait for the
/// producer of a claimed slot): such loops use more branches than loom's default allows.
fn model_with_spin_loops(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 100_000;
    builder.check(f);
}

fn drain<T>(worker: &Worker<T>) -> Vec<T> {
    std::iter::from_fn(|| worker.pop()).collect()
}

#[test]
fn lifo_push_pop_vs_one_thief() {
    loom::model(|| {
        let worker = Worker::new_lifo();
        let stealer = worker.stealer();
        let thief = thread::spawn(move || steal_all(&stealer, 2));
        thread::yield_now();
        // Three pushes into two slots: the third grows the buffer while the thief may be stealing.
        for i in 0..3 {
            worker.push(i);
        }
        let mut taken = vec![];
        taken.extend(worker.pop());
        let mut stolen = thief.join().unwrap();
        taken.append(&mut stolen);
        taken.extend(drain(&worker));
        assert_each_once(taken, 3);
    });
}

#[test]
fn fifo_push_pop_vs_one_thief() {
    loom::model(|| {
        let worker = Worker::new_fifo();
        let stealer = worker.stealer();
        worker.push(0);
        let thief = thread::spawn(move || steal_all(&stealer, 2));
        thread::yield_now();
        worker.push(1);
        worker.push(2);
        let mut taken = vec![];
        taken.extend(worker.pop());
        taken.append(&mut thief.join().unwrap());
        taken.extend(drain(&worker));
        assert_each_once(taken, 3);
    });
}

#[test]
fn pop_vs_two_thieves() {
    for flavour in FLAVOURS {
        loom::model(move || {
            let worker = flavour();
            worker.push(0);
            worker.push(1);
            let thieves: Vec<_> = (0..2)
                .map(|_| {
                    let stealer = worker.stealer();
                    thread::spawn(move || stealer.steal().success().into_iter().collect::<Vec<_>>())
                })
                .collect();
            thread::yield_now();
            let mut taken: Vec<u32> = worker.pop().into_iter().collect();
            for thief in thieves {
                taken.append(&mut thief.join().unwrap());
            }
            taken.extend(drain(&worker));
            assert_each_once(taken, 2);
        });
    }
}

#[test]
fn last_item_pop_vs_steal() {
    for flavour in FLAVOURS {
        loom::model(move || {
            let worker = flavour();
            worker.push(7);
            let stealer = worker.stealer();
            let thief = thread::spawn(move || stealer.steal());
            thread::yield_now();
            let popped = worker.pop();
            let stolen = thief.join().unwrap();
            match (popped, stolen) {
                (Some(7), Steal::Empty | Steal::Retry) | (None, Steal::Success(7)) => {}
                (popped, stolen) => {
                    panic!("pop {popped:?}, steal {stolen:?}: the last item went to both or none")
                }
            }
            assert!(worker.pop().is_none());
        });
    }
}

#[test]
fn steal_during_growth() {
    loom::model(|| {
        let worker = Worker::new_lifo();
        worker.push(0);
        worker.push(1);
        let stealer = worker.stealer();
        let thief = thread::spawn(move || steal_all(&stealer, 1));
        thread::yield_now();
        // The buffer (2 slots) is full: this push moves the items to a 4-slot buffer.
        worker.push(2);
        let mut taken = thief.join().unwrap();
        taken.extend(drain(&worker));
        assert_each_once(taken, 3);
    });
}

#[test]
fn steal_during_shrink() {
    loom::model(|| {
        let worker = Worker::new_fifo();
        // Grow to 16 slots, then pop down so that the next pops shrink the buffer.
        for i in 0..9 {
            worker.push(i);
        }
        let mut taken: Vec<u32> = (0..7).map(|_| worker.pop().unwrap()).collect();
        let stealer = worker.stealer();
        let thief = thread::spawn(move || steal_all(&stealer, 1));
        thread::yield_now();
        // One item is left after this pop: fewer than 16 / 8, so the buffer halves while the thief steals.
        taken.extend(worker.pop());
        taken.append(&mut thief.join().unwrap());
        taken.extend(drain(&worker));
        assert_each_once(taken, 9);
    });
}

#[test]
fn wrap_around_vs_thief() {
    loom::model(|| {
        let worker = Worker::new_fifo();
        let stealer = worker.stealer();
        // Move the positions past the 2-slot buffer's end before the thief starts.
        worker.push(0);
        worker.push(1);
        let mut taken = vec![worker.pop().unwrap()];
        let thief = thread::spawn(move || steal_all(&stealer, 2));
        thread::yield_now();
        worker.push(2);
        taken.extend(worker.pop());
        taken.append(&mut thief.join().unwrap());
        taken.extend(drain(&worker));
        assert_each_once(taken, 3);
    });
}

#[test]
fn batch_steal_from_lifo_vs_pop() {
    loom::model(|| {
        let worker = Worker::new_lifo();
        for i in 0..3 {
            worker.push(i);
        }
        let stealer = worker.stealer();
        let thief = thread::spawn(move || {
            let dest = Worker::new_lifo();
            let mut taken: Vec<u32> = stealer
                .steal_batch_and_pop(&dest)
                .success()
                .into_iter()
                .collect();
            taken.extend(drain(&dest));
            taken
        });
        thread::yield_now();
        let mut taken: Vec<u32> = worker.pop().into_iter().collect();
        taken.extend(worker.pop());
        taken.append(&mut thief.join().unwrap());
        taken.extend(drain(&worker));
        assert_each_once(taken, 3);
    });
}

#[test]
fn batch_steal_from_fifo_vs_pop_and_push() {
    loom::model(|| {
        let worker = Worker::new_fifo();
        for i in 0..2 {
            worker.push(i);
        }
        let stealer = worker.stealer();
        let thief = thread::spawn(move || {
            let dest = Worker::new_fifo();
            let _ = stealer.steal_batch(&dest);
            drain(&dest)
        });
        thread::yield_now();
        let mut taken: Vec<u32> = worker.pop().into_iter().collect();
        worker.push(2);
        taken.append(&mut thief.join().unwrap());
        taken.extend(drain(&worker));
        assert_each_once(taken, 3);
    });
}

#[test]
fn two_thieves_batch_and_single() {
    loom::model(|| {
        let worker = Worker::new_lifo();
        for i in 0..3 {
            worker.push(i);
        }
        let batch = worker.stealer();
        let single = worker.stealer();
        let batch = thread::spawn(move || {
            let dest = Worker::new_fifo();
            let _ = batch.steal_batch(&dest);
            drain(&dest)
        });
        let single =
            thread::spawn(move || single.steal().success().into_iter().collect::<Vec<_>>());
        let mut taken = batch.join().unwrap();
        taken.append(&mut single.join().unwrap());
        taken.extend(drain(&worker));
        assert_each_once(taken, 3);
    });
}

#[test]
fn injector_two_producers_race_for_block_end() {
    // Blocks hold 2 items under loom: with one item in, the two producers race for the last slot, and the
    // winner installs the next block while the other waits on the block marker.
    model_with_spin_loops(|| {
        let injector = loom::sync::Arc::new(Injector::new());
        injector.push(0);
        let producers: Vec<_> = (1..3u32)
            .map(|value| {
                let injector = injector.clone();
                thread::spawn(move || injector.push(value))
            })
            .collect();
        thread::yield_now();
        let mut taken: Vec<u32> = injector.steal().success().into_iter().collect();
        for producer in producers {
            producer.join().unwrap();
        }
        while let Steal::Success(value) = injector.steal() {
            taken.push(value);
        }
        assert_each_once(taken, 3);
    });
}

#[test]
fn injector_consumers_race_across_block_end() {
    // Two consumers race for the two items of the first block (one by batch); whoever takes the last one
    // moves the head to the next block, which the producer is installing concurrently.
    model_with_spin_loops(|| {
        let injector = loom::sync::Arc::new(Injector::new());
        injector.push(0);
        injector.push(1);
        let producer = {
            let injector = injector.clone();
            thread::spawn(move || injector.push(2))
        };
        let consumer = {
            let injector = injector.clone();
            thread::spawn(move || {
                let dest = Worker::new_lifo();
                let mut taken: Vec<u32> = injector
                    .steal_batch_and_pop(&dest)
                    .success()
                    .into_iter()
                    .collect();
                taken.extend(drain(&dest));
                taken
            })
        };
        thread::yield_now();
        let mut taken: Vec<u32> = injector.steal().success().into_iter().collect();
        producer.join().unwrap();
        taken.append(&mut consumer.join().unwrap());
        while let Steal::Success(value) = injector.steal() {
            taken.push(value);
        }
        assert_each_once(taken, 3);
    });
}

#[test]
fn bounded_full_vs_thief() {
    loom::model(|| {
        let worker = bounded::Worker::new_lifo(2);
        worker.push(0).unwrap();
        worker.push(1).unwrap();
        let stealer = worker.stealer();
        let thief =
            thread::spawn(move || stealer.steal().success().into_iter().collect::<Vec<_>>());
        thread::yield_now();
        // Full unless the thief has finished copying its item out: either way nothing is lost.
        let mut taken = vec![];
        if let Err(bounded::Full(value)) = worker.push(2) {
            taken.push(value);
        }
        taken.append(&mut thief.join().unwrap());
        taken.extend(std::iter::from_fn(|| worker.pop()));
        assert_each_once(taken, 3);
    });
}

#[test]
fn bounded_fifo_wrap_vs_batch() {
    loom::model(|| {
        let worker = bounded::Worker::new_fifo(2);
        worker.push(0).unwrap();
        let mut taken = vec![worker.pop().unwrap()];
        worker.push(1).unwrap();
        worker.push(2).unwrap();
        let stealer = worker.stealer();
        let thief = thread::spawn(move || {
            let dest = bounded::Worker::new_fifo(2);
            let _ = stealer.steal_batch(&dest);
            std::iter::from_fn(|| dest.pop()).collect::<Vec<_>>()
        });
        thread::yield_now();
        taken.extend(worker.pop());
        if let Err(bounded::Full(value)) = worker.push(3) {
            taken.push(value);
        }
        taken.append(&mut thief.join().unwrap());
        taken.extend(std::iter::from_fn(|| worker.pop()));
        assert_each_once(taken, 4);
    });
}

#[test]
fn bounded_two_thieves_vs_push_into_freed_slots() {
    // The owner may only reuse a slot once the thief that claimed it has copied it out, even when a second
    // thief claims and finishes after it.
    for flavor in [
        bounded::Worker::new_lifo as fn(usize) -> bounded::Worker<u32>,
        bounded::Worker::new_fifo,
    ] {
        loom::model(move || {
            let worker = flavor(2);
            worker.push(0).unwrap();
            worker.push(1).unwrap();
            let thieves: Vec<_> = (0..2)
                .map(|_| {
                    let stealer = worker.stealer();
                    thread::spawn(move || stealer.steal().success().into_iter().collect::<Vec<_>>())
                })
                .collect();
            thread::yield_now();
            let mut taken = vec![];
            for value in 2..4 {
                if let Err(bounded::Full(value)) = worker.push(value) {
                    taken.push(value);
                }
            }
            for thief in thieves {
                taken.append(&mut thief.join().unwrap());
            }
            taken.extend(std::iter::from_fn(|| worker.pop()));
            assert_each_once(taken, 4);
        });
    }
}

/// The models run optimised with debug assertions on (`.ci/loom.sh` sets
/// `CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true`), so the `debug_assert!`s that state the invariants are checked
/// in every execution loom explores; `--release` alone compiles them out, which this catches.
#[test]
#[allow(
    clippy::assertions_on_constants,
    reason = "the constant is what the test checks"
)]
fn models_run_with_debug_assertions() {
    assert!(
        cfg!(debug_assertions),
        "run the loom models through .ci/loom.sh: `--release` alone turns the invariants' debug_assert!s off"
    );
}
