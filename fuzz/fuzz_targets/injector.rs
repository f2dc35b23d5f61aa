//! Differential fuzzing of the injector against a `VecDeque` model.
//!
//! One injector and two destination workers (LIFO or FIFO, chosen by the first input byte) run a sequence of
//! operations on one thread; every result is compared with the model. On one thread a steal never loses a
//! race, so `Steal::Retry` is always a bug here.
//!
//! Batch sizes are exact: a batch takes `min(limit, ceil(len / 2))` items (limit 32 by default) but never
//! crosses the end of a 63-slot block, and the model knows where the head is in its block from how many
//! items have been taken so far. The items moved must be the oldest, in order (checked through the
//! destination's length and every later pop).

#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_deque::{Injector, Steal, Worker};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Bit 0: destination 0 is FIFO; bit 1: destination 1 is FIFO.
    flavour: u8,
    operations: Vec<Operation>,
}

#[derive(Arbitrary, Debug)]
enum Operation {
    /// Pushes a value into the injector.
    Push(u16),
    /// Pushes this many consecutive values (crosses block boundaries quickly).
    PushMany(u8),
    /// Steals one item from the injector.
    Steal,
    /// Steals a batch into the current destination; `None` uses the default limit.
    StealBatch(Option<u8>),
    /// As `StealBatch`, popping the oldest stolen item.
    StealBatchAndPop(Option<u8>),
    /// The current destination's owner pops.
    Pop,
    /// The current destination's owner pops this many times.
    PopMany(u8),
    /// A thief steals the oldest item of the current destination.
    StealFromDestination,
    /// Checks `len` and `is_empty`.
    Len,
    /// Makes the other destination the current one.
    Switch,
}

/// A `Steal` whose `Debug` shows the item (the crate's prints `Success(..)`).
#[derive(Debug, PartialEq, Eq)]
enum Outcome<T> {
    Empty,
    Success(T),
    Retry,
}

fn outcome<T>(steal: Steal<T>) -> Outcome<T> {
    match steal {
        Steal::Empty => Outcome::Empty,
        Steal::Success(value) => Outcome::Success(value),
        Steal::Retry => Outcome::Retry,
    }
}

/// Default batch limit (crossbeam's).
const MAX_BATCH: usize = 32;

/// Slots per injector block.
const BLOCK_CAP: usize = 63;

/// Items from oldest (front) to newest (back).
struct Model {
    injector: VecDeque<u16>,
    /// Items ever taken from the injector: the head's offset in its block is this modulo the block size.
    taken: usize,
    destinations: [VecDeque<u16>; 2],
    fifo: [bool; 2],
}

impl Model {
    fn pop(&mut self, destination: usize) -> Option<u16> {
        if self.fifo[destination] {
            self.destinations[destination].pop_front()
        } else {
            self.destinations[destination].pop_back()
        }
    }

    /// Moves the `count` oldest items of the injector into `destination`, returning the oldest if `pop`.
    fn move_batch(&mut self, destination: usize, count: usize, pop: bool) -> Option<u16> {
        self.taken += count;
        let mut stolen: VecDeque<u16> = self.injector.drain(..count).collect();
        let popped = if pop { stolen.pop_front() } else { None };
        // The destination pops the oldest stolen item first: FIFO pops the front, LIFO the back.
        if self.fifo[destination] {
            self.destinations[destination].extend(stolen);
        } else {
            self.destinations[destination].extend(stolen.into_iter().rev());
        }
        popped
    }
}

fuzz_target!(|input: Input| {
    let fifo = [input.flavour & 1 != 0, input.flavour & 2 != 0];
    let new = |fifo| {
        if fifo {
            Worker::new_fifo()
        } else {
            Worker::new_lifo()
        }
    };
    let destinations = [new(fifo[0]), new(fifo[1])];
    let stealers = [destinations[0].stealer(), destinations[1].stealer()];
    let injector = Injector::new();
    let mut model = Model {
        injector: VecDeque::new(),
        taken: 0,
        destinations: Default::default(),
        fifo,
    };
    let mut current = 0;
    let mut next_value = 0u16;

    for (step, operation) in input.operations.iter().enumerate() {
        let destination = &destinations[current];
        match *operation {
            Operation::Push(value) => {
                injector.push(value);
                model.injector.push_back(value);
            }
            Operation::PushMany(count) => {
                for _ in 0..count {
                    injector.push(next_value);
                    model.injector.push_back(next_value);
                    next_value = next_value.wrapping_add(1);
                }
            }
            Operation::Steal => {
                let expected = match model.injector.pop_front() {
                    Some(value) => {
                        model.taken += 1;
                        Outcome::Success(value)
                    }
                    None => Outcome::Empty,
                };
                assert_eq!(
                    outcome(injector.steal()),
                    expected,
                    "step {step}: {operation:?}"
                );
            }
            Operation::StealBatch(limit) | Operation::StealBatchAndPop(limit) => {
                let pop = matches!(operation, Operation::StealBatchAndPop(_));
                // crossbeam-deque's batch: everything left in the head block when the items run into a
                // later block, otherwise half of them, rounded up; never more than the limit (one more by
                // default for the item `steal_batch_and_pop` returns).
                let room = BLOCK_CAP - model.taken % BLOCK_CAP;
                let len = model.injector.len();
                let bound = if len >= room { room } else { len.div_ceil(2) }
                    .min(limit.map_or(MAX_BATCH + usize::from(pop), usize::from));
                let before = destination.len();
                let stolen = match (pop, limit) {
                    (false, None) => outcome(injector.steal_batch(destination)).map(|()| None),
                    (false, Some(limit)) => {
                        outcome(injector.steal_batch_with_limit(destination, limit.into()))
                            .map(|()| None)
                    }
                    (true, None) => outcome(injector.steal_batch_and_pop(destination)).map(Some),
                    (true, Some(limit)) => {
                        outcome(injector.steal_batch_with_limit_and_pop(destination, limit.into()))
                            .map(Some)
                    }
                };
                let after = destination.len();
                assert!(
                    after >= before,
                    "step {step}: {operation:?}: the destination lost items"
                );
                let count = after - before + usize::from(pop);
                match stolen {
                    Outcome::Empty => {
                        assert_eq!(
                            bound, 0,
                            "step {step}: {operation:?}: Empty with items to take"
                        );
                        assert_eq!(
                            destination.len(),
                            before,
                            "step {step}: {operation:?}: Empty moved items"
                        );
                    }
                    Outcome::Retry => panic!("step {step}: {operation:?}: Retry on one thread"),
                    Outcome::Success(popped) => {
                        assert_eq!(count, bound, "step {step}: {operation:?}: batch size");
                        assert_eq!(
                            popped,
                            model.move_batch(current, count, pop),
                            "step {step}: {operation:?}"
                        );
                    }
                }
            }
            Operation::Pop => {
                assert_eq!(
                    destination.pop(),
                    model.pop(current),
                    "step {step}: {operation:?}"
                );
            }
            Operation::PopMany(count) => {
                for _ in 0..count {
                    assert_eq!(
                        destination.pop(),
                        model.pop(current),
                        "step {step}: {operation:?}"
                    );
                }
            }
            Operation::StealFromDestination => {
                let expected = match model.destinations[current].pop_front() {
                    Some(value) => Outcome::Success(value),
                    None => Outcome::Empty,
                };
                assert_eq!(
                    outcome(stealers[current].steal()),
                    expected,
                    "step {step}: {operation:?}"
                );
            }
            Operation::Len => {}
            Operation::Switch => current = 1 - current,
        }
        let len = model.injector.len();
        assert_eq!(
            (injector.len(), injector.is_empty()),
            (len, len == 0),
            "step {step}: {operation:?}"
        );
        for (index, destination) in destinations.iter().enumerate() {
            assert_eq!(
                destination.len(),
                model.destinations[index].len(),
                "step {step}: {operation:?}"
            );
        }
    }

    // Drain: everything left comes out in the model's order.
    while let Some(expected) = model.injector.pop_front() {
        assert_eq!(
            outcome(injector.steal()),
            Outcome::Success(expected),
            "drain of the injector"
        );
    }
    assert_eq!(
        outcome(injector.steal()),
        Outcome::Empty,
        "drain of the injector"
    );
    for (index, destination) in destinations.iter().enumerate() {
        while let Some(expected) = model.pop(index) {
            assert_eq!(
                destination.pop(),
                Some(expected),
                "drain of destination {index}"
            );
        }
        assert_eq!(destination.pop(), None, "drain of destination {index}");
    }
});

impl<T> Outcome<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Empty => Outcome::Empty,
            Outcome::Success(value) => Outcome::Success(f(value)),
            Outcome::Retry => Outcome::Retry,
        }
    }
}
