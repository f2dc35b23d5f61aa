//! Differential fuzzing of the work-stealing deque against a `VecDeque` model.
//!
//! Two workers of one kind (growable or bounded, chosen by the first input byte, each LIFO or FIFO) and their
//! stealers run a sequence of operations on one thread. Every result is compared with the model: popped and
//! stolen items, `Steal` outcomes, batch sizes, `Full` pushes, and both lengths after every step. On one
//! thread a steal never loses a race, so `Steal::Retry` is always a bug here.
//!
//! The semantics checked (crossbeam-deque 0.8's, plus the bounded flavour):
//! * the owner pops the newest item (LIFO) or the oldest (FIFO); thieves take the oldest;
//! * a batch takes the `min(limit, ceil(len / 2))` oldest items (limit 32 by default) and comes out in the
//!   order the source's owner would have popped it (oldest first from a FIFO source, newest first from a
//!   LIFO one): `*_and_pop` returns the first, `dest` pops the others in that order, whatever its flavour; a batch with limit 0 is `Empty`; a batch into the stealer's own worker
//!   moves nothing and is `Success` if that worker has items, `Empty` if not (crossbeam-deque's answer);
//! * a bounded `dest` limits the batch to its free room (plus the popped item for `*_and_pop`), exactly.

#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_deque::{Steal, bounded};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Bit 0: bounded; bit 1: worker 0 is FIFO; bit 2: worker 1 is FIFO.
    flavour: u8,
    /// Requested capacities of the bounded workers (taken modulo 20, so 0..=19, rounded up by the deque).
    capacities: [u8; 2],
    operations: Vec<Operation>,
}

#[derive(Arbitrary, Debug)]
enum Operation {
    /// The current worker pushes a value.
    Push(u16),
    /// The current worker pushes this many consecutive values (reaches growth and shrinking quickly).
    PushMany(u8),
    /// The current worker pops.
    Pop,
    /// The current worker pops this many times.
    PopMany(u8),
    /// The current worker steals one item from the other worker.
    Steal,
    /// The current worker steals a batch from the other one; `None` uses the default limit.
    StealBatch(Option<u8>),
    /// As `StealBatch`, popping the oldest stolen item.
    StealBatchAndPop(Option<u8>),
    /// A batch steal from the current worker's own stealer into itself.
    StealBatchIntoSelf(Option<u8>),
    /// The current worker's stealer steals one item from its own deque.
    StealOwn,
    /// Checks `len` and `is_empty` of both workers and stealers.
    Len,
    /// Makes the other worker the current one.
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

impl<T> Outcome<T> {
    fn is_success(&self) -> bool {
        matches!(self, Outcome::Success(_))
    }

    fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Empty => Outcome::Empty,
            Outcome::Success(value) => Outcome::Success(f(value)),
            Outcome::Retry => Outcome::Retry,
        }
    }
}

/// The operations of two workers of one kind, by index.
trait Deques {
    fn push(&self, worker: usize, value: u16) -> Result<(), u16>;
    fn pop(&self, worker: usize) -> Option<u16>;
    /// `(worker.len(), worker.is_empty(), stealer.len(), stealer.is_empty())`.
    fn lengths(&self, worker: usize) -> (usize, bool, usize, bool);
    fn steal(&self, from: usize) -> Steal<u16>;
    fn steal_batch(&self, from: usize, into: usize, limit: Option<usize>) -> Steal<()>;
    fn steal_batch_and_pop(&self, from: usize, into: usize, limit: Option<usize>) -> Steal<u16>;
}

struct Growable {
    workers: [ws_deque::Worker<u16>; 2],
    stealers: [ws_deque::Stealer<u16>; 2],
}

struct Bounded {
    workers: [bounded::Worker<u16>; 2],
    stealers: [bounded::Stealer<u16>; 2],
}

/// The methods both kinds share, with the same names.
macro_rules! shared_methods {
    () => {
        fn pop(&self, worker: usize) -> Option<u16> {
            self.workers[worker].pop()
        }

        fn lengths(&self, worker: usize) -> (usize, bool, usize, bool) {
            let (w, s) = (&self.workers[worker], &self.stealers[worker]);
            (w.len(), w.is_empty(), s.len(), s.is_empty())
        }

        fn steal(&self, from: usize) -> Steal<u16> {
            self.stealers[from].steal()
        }

        fn steal_batch(&self, from: usize, into: usize, limit: Option<usize>) -> Steal<()> {
            let (stealer, dest) = (&self.stealers[from], &self.workers[into]);
            match limit {
                None => stealer.steal_batch(dest),
                Some(limit) => stealer.steal_batch_with_limit(dest, limit),
            }
        }

        fn steal_batch_and_pop(
            &self,
            from: usize,
            into: usize,
            limit: Option<usize>,
        ) -> Steal<u16> {
            let (stealer, dest) = (&self.stealers[from], &self.workers[into]);
            match limit {
                None => stealer.steal_batch_and_pop(dest),
                Some(limit) => stealer.steal_batch_with_limit_and_pop(dest, limit),
            }
        }
    };
}

impl Deques for Growable {
    fn push(&self, worker: usize, value: u16) -> Result<(), u16> {
        self.workers[worker].push(value);
        Ok(())
    }

    shared_methods!();
}

impl Deques for Bounded {
    fn push(&self, worker: usize, value: u16) -> Result<(), u16> {
        self.workers[worker].push(value).map_err(|full| full.0)
    }

    shared_methods!();
}

/// The model: each deque's items from oldest (front, where thieves take) to newest (back).
struct Model {
    items: [VecDeque<u16>; 2],
    fifo: [bool; 2],
    capacity: [Option<usize>; 2],
}

impl Model {
    fn push(&mut self, worker: usize, value: u16) -> Result<(), u16> {
        if self.capacity[worker].is_some_and(|capacity| self.items[worker].len() == capacity) {
            return Err(value);
        }
        self.items[worker].push_back(value);
        Ok(())
    }

    fn pop(&mut self, worker: usize) -> Option<u16> {
        if self.fifo[worker] {
            self.items[worker].pop_front()
        } else {
            self.items[worker].pop_back()
        }
    }

    fn steal(&mut self, from: usize) -> Outcome<u16> {
        match self.items[from].pop_front() {
            Some(value) => Outcome::Success(value),
            None => Outcome::Empty,
        }
    }

    /// The number of items a batch steal from `from` into `into` takes.
    fn batch_size(&self, from: usize, into: usize, limit: usize, pop: bool) -> usize {
        if from == into || limit == 0 {
            return 0;
        }
        let count = limit.min(self.items[from].len().div_ceil(2));
        match self.capacity[into] {
            // Room for the moved items; the popped one needs none.
            Some(capacity) => count.min(capacity - self.items[into].len() + usize::from(pop)),
            None => count,
        }
    }

    /// Moves the `count` oldest items of `from` into `into`; returns the batch's first (see below) if `pop`.
    fn move_batch(&mut self, from: usize, into: usize, count: usize, pop: bool) -> Option<u16> {
        let mut stolen: VecDeque<u16> = self.items[from].drain(..count).collect();
        // The batch comes out in the order the source's owner would have popped it: the oldest first from
        // a FIFO source, the newest first from a LIFO one (crossbeam-deque's order). `*_and_pop` returns
        // the first, and `dest` pops the others in that order.
        if !self.fifo[from] {
            stolen.make_contiguous().reverse();
        }
        let popped = if pop { stolen.pop_front() } else { None };
        // FIFO pops the front, LIFO the back.
        if self.fifo[into] {
            self.items[into].extend(stolen);
        } else {
            self.items[into].extend(stolen.into_iter().rev());
        }
        popped
    }
}

/// Default batch limit (crossbeam's).
const MAX_BATCH: usize = 32;

fn run(deques: &impl Deques, model: &mut Model, operations: &[Operation]) {
    let mut current = 0;
    let mut next_value = 0u16;
    for (step, operation) in operations.iter().enumerate() {
        let other = 1 - current;
        match *operation {
            Operation::Push(value) => {
                assert_eq!(
                    deques.push(current, value),
                    model.push(current, value),
                    "step {step}: {operation:?}"
                );
            }
            Operation::PushMany(count) => {
                for _ in 0..count {
                    let value = next_value;
                    next_value = next_value.wrapping_add(1);
                    assert_eq!(
                        deques.push(current, value),
                        model.push(current, value),
                        "step {step}: {operation:?}"
                    );
                }
            }
            Operation::Pop => {
                assert_eq!(
                    deques.pop(current),
                    model.pop(current),
                    "step {step}: {operation:?}"
                );
            }
            Operation::PopMany(count) => {
                for _ in 0..count {
                    assert_eq!(
                        deques.pop(current),
                        model.pop(current),
                        "step {step}: {operation:?}"
                    );
                }
            }
            Operation::Steal => {
                assert_eq!(
                    outcome(deques.steal(other)),
                    model.steal(other),
                    "step {step}: {operation:?}"
                );
            }
            Operation::StealOwn => {
                assert_eq!(
                    outcome(deques.steal(current)),
                    model.steal(current),
                    "step {step}: {operation:?}"
                );
            }
            Operation::StealBatch(limit)
            | Operation::StealBatchAndPop(limit)
            | Operation::StealBatchIntoSelf(limit) => {
                let from = match operation {
                    Operation::StealBatchIntoSelf(_) => current,
                    _ => other,
                };
                let pop = matches!(operation, Operation::StealBatchAndPop(_));
                let limit = limit.map(usize::from);
                let expected = model.batch_size(from, current, limit.unwrap_or(MAX_BATCH), pop);
                let before = deques.lengths(current).0;
                let stolen = if pop {
                    outcome(deques.steal_batch_and_pop(from, current, limit)).map(Some)
                } else {
                    outcome(deques.steal_batch(from, current, limit)).map(|()| None)
                };
                let after = deques.lengths(current).0;
                assert!(
                    after >= before,
                    "step {step}: {operation:?}: dest lost items"
                );
                let count = after - before + usize::from(pop && stolen.is_success());
                assert_eq!(count, expected, "step {step}: {operation:?}: batch size");
                let expected_outcome = match count {
                    // crossbeam-deque's answer for a batch into the stealer's own worker: nothing moves,
                    // and the outcome says whether there is anything to work on.
                    0 if from == current && !model.items[current].is_empty() => {
                        Outcome::Success(None)
                    }
                    0 => Outcome::Empty,
                    _ => Outcome::Success(model.move_batch(from, current, count, pop)),
                };
                assert_eq!(stolen, expected_outcome, "step {step}: {operation:?}");
            }
            Operation::Len => {}
            Operation::Switch => current = other,
        }
        // Lengths after every step: this is what catches a batch of the wrong size at once.
        for worker in 0..2 {
            let len = model.items[worker].len();
            assert_eq!(
                deques.lengths(worker),
                (len, len == 0, len, len == 0),
                "step {step}: {operation:?}: worker {worker}"
            );
        }
    }
    // Drain: every item left comes out in the model's order, from the owner's end.
    for worker in 0..2 {
        while let Some(expected) = model.pop(worker) {
            assert_eq!(
                deques.pop(worker),
                Some(expected),
                "drain of worker {worker}"
            );
        }
        assert_eq!(deques.pop(worker), None, "drain of worker {worker}");
    }
}

fuzz_target!(|input: Input| {
    let fifo = [input.flavour & 2 != 0, input.flavour & 4 != 0];
    if input.flavour & 1 == 0 {
        let new = |fifo| {
            if fifo {
                ws_deque::Worker::new_fifo()
            } else {
                ws_deque::Worker::new_lifo()
            }
        };
        let workers = [new(fifo[0]), new(fifo[1])];
        let stealers = [workers[0].stealer(), workers[1].stealer().clone()];
        let mut model = Model {
            items: Default::default(),
            fifo,
            capacity: [None; 2],
        };
        run(
            &Growable { workers, stealers },
            &mut model,
            &input.operations,
        );
    } else {
        let new = |fifo, capacity: u8| {
            let capacity = usize::from(capacity % 20);
            if fifo {
                bounded::Worker::new_fifo(capacity)
            } else {
                bounded::Worker::new_lifo(capacity)
            }
        };
        let workers = [
            new(fifo[0], input.capacities[0]),
            new(fifo[1], input.capacities[1]),
        ];
        let stealers = [workers[0].stealer(), workers[1].stealer().clone()];
        // The deque rounds the capacity up to a power of two (at least 1): the model takes what it reports.
        let capacity = [Some(workers[0].capacity()), Some(workers[1].capacity())];
        for (worker, requested) in input.capacities.into_iter().enumerate() {
            let expected = usize::from(requested % 20).max(1).next_power_of_two();
            assert_eq!(
                capacity[worker],
                Some(expected),
                "capacity of worker {worker}"
            );
        }
        let mut model = Model {
            items: Default::default(),
            fifo,
            capacity,
        };
        run(
            &Bounded { workers, stealers },
            &mut model,
            &input.operations,
        );
    }
});
