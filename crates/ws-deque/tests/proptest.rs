//! State-machine property tests: random sequences of operations run on one thread against `VecDeque`
//! models, for the LIFO, FIFO and bounded deques and the injector.
//!
//! Each deque comes with a second worker (the destination of batch steals, of either flavour) that is
//! modelled too, and every result is compared: popped and stolen items, `Steal` outcomes, lengths, `Full`.
//! On one thread a steal never loses a race, so `Steal::Retry` is always a failure here.
//!
//! Under Miri the case count drops to 8 and failures are not persisted (no file system); run it with
//! `MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-ignore-leaks"`, as for `tests/flavours.rs`.

use std::collections::VecDeque;

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use ws_deque::{Injector, Steal, Stealer, Worker, bounded};

/// The default batch limit.
const MAX_BATCH: usize = 32;

/// Items per block of the injector: a batch never crosses a block.
const BLOCK: usize = 63;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 256 });
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

/// The longest operation sequence.
const MAX_OPS: usize = if cfg!(miri) { 48 } else { 300 };

/// The most items one `Op::PushMany` pushes: past 64 so the growable deque grows, even under Miri.
const PUSH_MANY: u8 = if cfg!(miri) { 70 } else { 100 };

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    Lifo,
    Fifo,
}

fn flavour() -> impl Strategy<Value = Flavour> {
    prop_oneof![Just(Flavour::Lifo), Just(Flavour::Fifo)]
}

#[derive(Clone, Debug)]
enum Op {
    /// Pushes one item (into the deque, or the injector).
    Push(u32),
    /// Pushes this many items, to reach growth and block boundaries quickly.
    PushMany(u8),
    /// The deque's owner pops (for the injector: the destination's owner).
    Pop,
    /// A thief steals one item.
    Steal,
    /// A batch steal into the destination; `None` is the default limit.
    StealBatch { limit: Option<usize> },
    /// A batch steal that returns the oldest item; `None` is the default limit.
    StealBatchAndPop { limit: Option<usize> },
    /// A batch steal from the deque into its own worker (a no-op; not for the injector).
    StealBatchIntoItself { limit: Option<usize>, pop: bool },
    /// Compares the lengths (they are also compared after every operation).
    Len,
    /// The destination's owner pops.
    PopDestination,
    /// A thief of the destination steals.
    StealFromDestination,
}

/// Decodes a batch limit: `None` (the default) a quarter of the time, then 0, `usize::MAX`, or 1 to 80.
fn limit(code: u16) -> Option<usize> {
    match code % 8 {
        0 | 1 => None,
        2 => Some(0),
        3 => Some(usize::MAX),
        _ => Some(usize::from(code / 8) % 80 + 1),
    }
}

/// One flat tuple decoded into an operation, weighted towards pushes. (Nested `prop_oneof!`s are what made
/// generation slow under Miri; a tuple of integers still shrinks towards `Push(0)`.)
fn op() -> impl Strategy<Value = Op> {
    (0u8..24, any::<u32>(), any::<u16>(), any::<bool>()).prop_map(|(kind, value, code, pop)| {
        match kind {
            0..8 => Op::Push(value),
            8 => Op::PushMany((value % u32::from(PUSH_MANY)) as u8),
            9..12 => Op::Pop,
            12..15 => Op::Steal,
            15..17 => Op::StealBatch { limit: limit(code) },
            17..19 => Op::StealBatchAndPop { limit: limit(code) },
            19 => Op::StealBatchIntoItself {
                limit: limit(code),
                pop,
            },
            20 => Op::Len,
            21..23 => Op::PopDestination,
            _ => Op::StealFromDestination,
        }
    })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 0..MAX_OPS)
}

/// A `Steal` whose `Debug` shows the item (the crate's prints `Success(..)`).
#[derive(Debug, PartialEq, Eq)]
enum Outcome<T> {
    Empty,
    Success(T),
    Retry,
}

impl<T> From<Steal<T>> for Outcome<T> {
    fn from(steal: Steal<T>) -> Self {
        match steal {
            Steal::Empty => Outcome::Empty,
            Steal::Success(value) => Outcome::Success(value),
            Steal::Retry => Outcome::Retry,
        }
    }
}

impl<T> Outcome<T> {
    fn of(item: Option<T>) -> Self {
        item.map_or(Outcome::Empty, Outcome::Success)
    }
}

/// A deque of either flavour, oldest item at the front.
#[derive(Debug)]
struct ModelDeque {
    flavour: Flavour,
    items: VecDeque<u32>,
}

impl ModelDeque {
    fn new(flavour: Flavour) -> Self {
        Self {
            flavour,
            items: VecDeque::new(),
        }
    }

    fn pop(&mut self) -> Option<u32> {
        match self.flavour {
            Flavour::Lifo => self.items.pop_back(),
            Flavour::Fifo => self.items.pop_front(),
        }
    }

    fn steal(&mut self) -> Option<u32> {
        self.items.pop_front()
    }

    /// Receives a batch, placed so that `pop` returns its items in the order given.
    fn receive(&mut self, batch: impl DoubleEndedIterator<Item = u32>) {
        match self.flavour {
            // The owner pops the back: the first to come out goes last.
            Flavour::Lifo => self.items.extend(batch.rev()),
            Flavour::Fifo => self.items.extend(batch),
        }
    }

    /// Moves the `count` oldest items into `dest`, in the order this deque's owner would have popped them
    /// (crossbeam-deque's order: newest first from a LIFO source), the first of them into the result if
    /// `pop`.
    fn move_batch(&mut self, count: usize, pop: bool, dest: &mut ModelDeque) -> Option<u32> {
        let mut batch: VecDeque<u32> = self.items.drain(..count).collect();
        if self.flavour == Flavour::Lifo {
            batch = batch.into_iter().rev().collect();
        }
        let popped = if pop { batch.pop_front() } else { None };
        dest.receive(batch.into_iter());
        popped
    }
}

/// The deque under test: a growable or a bounded one, with a destination worker of the same kind.
trait Subject {
    /// Pushes, or gives the item back if the deque is full.
    fn push(&self, value: u32) -> Result<(), u32>;
    fn pop(&self) -> Option<u32>;
    fn steal(&self) -> Steal<u32>;
    fn steal_batch(&self, limit: Option<usize>) -> Steal<()>;
    fn steal_batch_and_pop(&self, limit: Option<usize>) -> Steal<u32>;
    fn steal_batch_into_itself(&self, limit: Option<usize>, pop: bool) -> Outcome<Option<u32>>;
    /// `(worker.len(), worker.is_empty(), stealer.len(), stealer.is_empty())`.
    fn lens(&self) -> (usize, bool, usize, bool);
    fn destination_pop(&self) -> Option<u32>;
    fn destination_steal(&self) -> Steal<u32>;
    fn destination_len(&self) -> usize;
    /// The capacities of the deque and of the destination, if bounded.
    fn capacities(&self) -> Option<(usize, usize)>;
}

struct Growable {
    worker: Worker<u32>,
    stealer: Stealer<u32>,
    destination: Worker<u32>,
    destination_stealer: Stealer<u32>,
}

fn growable(flavour: Flavour) -> Worker<u32> {
    match flavour {
        Flavour::Lifo => Worker::new_lifo(),
        Flavour::Fifo => Worker::new_fifo(),
    }
}

impl Growable {
    fn new(flavour: Flavour, destination: Flavour) -> Self {
        let worker = growable(flavour);
        let destination = growable(destination);
        Self {
            stealer: worker.stealer(),
            destination_stealer: destination.stealer(),
            worker,
            destination,
        }
    }
}

impl Subject for Growable {
    fn push(&self, value: u32) -> Result<(), u32> {
        self.worker.push(value);
        Ok(())
    }

    fn pop(&self) -> Option<u32> {
        self.worker.pop()
    }

    fn steal(&self) -> Steal<u32> {
        self.stealer.steal()
    }

    fn steal_batch(&self, limit: Option<usize>) -> Steal<()> {
        match limit {
            None => self.stealer.steal_batch(&self.destination),
            Some(limit) => self
                .stealer
                .steal_batch_with_limit(&self.destination, limit),
        }
    }

    fn steal_batch_and_pop(&self, limit: Option<usize>) -> Steal<u32> {
        match limit {
            None => self.stealer.steal_batch_and_pop(&self.destination),
            Some(limit) => self
                .stealer
                .steal_batch_with_limit_and_pop(&self.destination, limit),
        }
    }

    fn steal_batch_into_itself(&self, limit: Option<usize>, pop: bool) -> Outcome<Option<u32>> {
        let limit = limit.unwrap_or(MAX_BATCH);
        if pop {
            Outcome::from(
                self.stealer
                    .steal_batch_with_limit_and_pop(&self.worker, limit),
            )
            .map(Some)
        } else {
            Outcome::from(self.stealer.steal_batch_with_limit(&self.worker, limit)).map(|()| None)
        }
    }

    fn lens(&self) -> (usize, bool, usize, bool) {
        (
            self.worker.len(),
            self.worker.is_empty(),
            self.stealer.len(),
            self.stealer.is_empty(),
        )
    }

    fn destination_pop(&self) -> Option<u32> {
        self.destination.pop()
    }

    fn destination_steal(&self) -> Steal<u32> {
        self.destination_stealer.steal()
    }

    fn destination_len(&self) -> usize {
        self.destination.len()
    }

    fn capacities(&self) -> Option<(usize, usize)> {
        None
    }
}

struct Bounded {
    worker: bounded::Worker<u32>,
    stealer: bounded::Stealer<u32>,
    destination: bounded::Worker<u32>,
    destination_stealer: bounded::Stealer<u32>,
}

fn bounded(flavour: Flavour, capacity: usize) -> bounded::Worker<u32> {
    match flavour {
        Flavour::Lifo => bounded::Worker::new_lifo(capacity),
        Flavour::Fifo => bounded::Worker::new_fifo(capacity),
    }
}

impl Bounded {
    fn new(flavour: Flavour, capacity: usize, destination: Flavour, dest_capacity: usize) -> Self {
        let worker = bounded(flavour, capacity);
        let destination = bounded(destination, dest_capacity);
        Self {
            stealer: worker.stealer(),
            destination_stealer: destination.stealer(),
            worker,
            destination,
        }
    }
}

impl Subject for Bounded {
    fn push(&self, value: u32) -> Result<(), u32> {
        self.worker
            .push(value)
            .map_err(|bounded::Full(value)| value)
    }

    fn pop(&self) -> Option<u32> {
        self.worker.pop()
    }

    fn steal(&self) -> Steal<u32> {
        self.stealer.steal()
    }

    fn steal_batch(&self, limit: Option<usize>) -> Steal<()> {
        match limit {
            None => self.stealer.steal_batch(&self.destination),
            Some(limit) => self
                .stealer
                .steal_batch_with_limit(&self.destination, limit),
        }
    }

    fn steal_batch_and_pop(&self, limit: Option<usize>) -> Steal<u32> {
        match limit {
            None => self.stealer.steal_batch_and_pop(&self.destination),
            Some(limit) => self
                .stealer
                .steal_batch_with_limit_and_pop(&self.destination, limit),
        }
    }

    fn steal_batch_into_itself(&self, limit: Option<usize>, pop: bool) -> Outcome<Option<u32>> {
        let limit = limit.unwrap_or(MAX_BATCH);
        if pop {
            Outcome::from(
                self.stealer
                    .steal_batch_with_limit_and_pop(&self.worker, limit),
            )
            .map(Some)
        } else {
            Outcome::from(self.stealer.steal_batch_with_limit(&self.worker, limit)).map(|()| None)
        }
    }

    fn lens(&self) -> (usize, bool, usize, bool) {
        (
            self.worker.len(),
            self.worker.is_empty(),
            self.stealer.len(),
            self.stealer.is_empty(),
        )
    }

    fn destination_pop(&self) -> Option<u32> {
        self.destination.pop()
    }

    fn destination_steal(&self) -> Steal<u32> {
        self.destination_stealer.steal()
    }

    fn destination_len(&self) -> usize {
        self.destination.len()
    }

    fn capacities(&self) -> Option<(usize, usize)> {
        Some((self.worker.capacity(), self.destination.capacity()))
    }
}

impl<T> Outcome<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Empty => Outcome::Empty,
            Outcome::Success(value) => Outcome::Success(f(value)),
            Outcome::Retry => Outcome::Retry,
        }
    }
}

/// The number of items a batch steal should take: `min(limit, ceil(len / 2))`, and no more than a bounded
/// destination has room for (plus the returned item).
fn batch_size(limit: Option<usize>, len: usize, room: Option<usize>, pop: bool) -> usize {
    let count = limit.unwrap_or(MAX_BATCH).min(len.div_ceil(2));
    match room {
        Some(room) => count.min(room + usize::from(pop)),
        None => count,
    }
}

/// How strictly a batch into a bounded destination must fill the destination's free room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Room {
    /// Exactly `batch_size` items.
    Exact,
    /// Any number of items up to `batch_size` (at least the returned one for the popping batches), the
    /// oldest first. See `batch_fills_the_free_room_of_the_destination` in `tests/bounded.rs`.
    UpTo,
}

/// Runs `ops` on `subject` and on the models, comparing every result, then drains both.
fn run(
    subject: &impl Subject,
    model: &mut ModelDeque,
    dest: &mut ModelDeque,
    ops: &[Op],
    room_check: Room,
) -> TestCaseResult {
    let mut next = 1_000_000u32;
    for (step, op) in ops.iter().enumerate() {
        let room = subject
            .capacities()
            .map(|(_, dest_capacity)| dest_capacity - dest.items.len());
        match *op {
            Op::Push(value) => push(subject, model, value, step)?,
            Op::PushMany(count) => {
                for _ in 0..count {
                    push(subject, model, next, step)?;
                    next += 1;
                }
            }
            Op::Pop => prop_assert_eq!(subject.pop(), model.pop(), "step {}: {:?}", step, op),
            Op::Steal => prop_assert_eq!(
                Outcome::from(subject.steal()),
                Outcome::of(model.steal()),
                "step {}: {:?}",
                step,
                op
            ),
            Op::StealBatch { limit } | Op::StealBatchAndPop { limit } => {
                let pop = matches!(op, Op::StealBatchAndPop { .. });
                let most = batch_size(limit, model.items.len(), room, pop);
                let before = subject.destination_len();
                let outcome = if pop {
                    Outcome::from(subject.steal_batch_and_pop(limit)).map(Some)
                } else {
                    Outcome::from(subject.steal_batch(limit)).map(|()| None)
                };
                let count = match (room_check, room) {
                    (Room::UpTo, Some(_)) => {
                        let count = subject.destination_len() - before
                            + usize::from(outcome != Outcome::Empty && pop);
                        let least = usize::from(pop).min(most);
                        prop_assert!(
                            (least..=most).contains(&count),
                            "step {}: {:?}: took {}, expected {}..={}",
                            step,
                            op,
                            count,
                            least,
                            most
                        );
                        count
                    }
                    _ => most,
                };
                let expected = if count == 0 {
                    Outcome::Empty
                } else {
                    Outcome::Success(model.move_batch(count, pop, dest))
                };
                prop_assert_eq!(outcome, expected, "step {}: {:?}", step, op);
            }
            // As crossbeam-deque: the popping batch pops; the plain one moves nothing and says whether
            // there is work.
            Op::StealBatchIntoItself { limit, pop } => prop_assert_eq!(
                subject.steal_batch_into_itself(limit, pop),
                if pop {
                    Outcome::of(model.pop()).map(Some)
                } else if model.items.is_empty() {
                    Outcome::Empty
                } else {
                    Outcome::Success(None)
                },
                "step {}: {:?}",
                step,
                op
            ),
            Op::Len => {}
            Op::PopDestination => {
                prop_assert_eq!(
                    subject.destination_pop(),
                    dest.pop(),
                    "step {}: {:?}",
                    step,
                    op
                )
            }
            Op::StealFromDestination => prop_assert_eq!(
                Outcome::from(subject.destination_steal()),
                Outcome::of(dest.steal()),
                "step {}: {:?}",
                step,
                op
            ),
        }
        let len = model.items.len();
        prop_assert_eq!(
            subject.lens(),
            (len, len == 0, len, len == 0),
            "step {}: {:?}",
            step,
            op
        );
        prop_assert_eq!(
            subject.destination_len(),
            dest.items.len(),
            "step {}: {:?}",
            step,
            op
        );
    }
    while let Some(expected) = model.pop() {
        prop_assert_eq!(subject.pop(), Some(expected), "draining the deque");
    }
    prop_assert_eq!(subject.pop(), None);
    prop_assert_eq!(Outcome::from(subject.steal()), Outcome::Empty);
    while let Some(expected) = dest.pop() {
        prop_assert_eq!(
            subject.destination_pop(),
            Some(expected),
            "draining the destination"
        );
    }
    prop_assert_eq!(subject.destination_pop(), None);
    Ok(())
}

fn push(subject: &impl Subject, model: &mut ModelDeque, value: u32, step: usize) -> TestCaseResult {
    let full = subject
        .capacities()
        .is_some_and(|(capacity, _)| model.items.len() == capacity);
    let result = subject.push(value);
    if full {
        prop_assert_eq!(result, Err(value), "step {}: push into a full deque", step);
    } else {
        prop_assert_eq!(result, Ok(()), "step {}: push", step);
        model.items.push_back(value);
    }
    Ok(())
}

fn run_bounded(
    source: Flavour,
    capacity: usize,
    destination: Flavour,
    dest_capacity: usize,
    ops: &[Op],
    room_check: Room,
) -> TestCaseResult {
    let subject = Bounded::new(source, capacity, destination, dest_capacity);
    let (rounded, dest_rounded) = subject.capacities().expect("bounded");
    prop_assert_eq!(rounded, capacity.max(1).next_power_of_two());
    prop_assert_eq!(dest_rounded, dest_capacity.max(1).next_power_of_two());
    run(
        &subject,
        &mut ModelDeque::new(source),
        &mut ModelDeque::new(destination),
        ops,
        room_check,
    )
}

/// The injector with a destination worker. `Op::Pop` is the destination's owner popping, and
/// `Op::StealBatchIntoItself` is skipped.
///
/// A batch takes at most `min(limit, len)` items and never crosses a block. With `exact`, it must take
/// `min(limit, ceil(len / 2))` (cut at the block end) like the deque's batches; without, anything from that
/// up to the bound passes.
fn run_injector(destination: Flavour, ops: &[Op], exact: bool) -> TestCaseResult {
    let injector = Injector::new();
    let worker = growable(destination);
    let worker_stealer = worker.stealer();
    let mut model = VecDeque::new();
    let mut dest = ModelDeque::new(destination);
    // Items ever taken from the injector: the head's offset in its block is `taken % BLOCK`.
    let mut taken = 0;
    let mut next = 1_000_000u32;
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Push(value) => {
                injector.push(value);
                model.push_back(value);
            }
            Op::PushMany(count) => {
                for _ in 0..count {
                    injector.push(next);
                    model.push_back(next);
                    next += 1;
                }
            }
            Op::Steal => {
                let expected = Outcome::of(model.pop_front());
                taken += usize::from(expected != Outcome::Empty);
                prop_assert_eq!(
                    Outcome::from(injector.steal()),
                    expected,
                    "step {}: {:?}",
                    step,
                    op
                );
            }
            Op::StealBatch { limit } | Op::StealBatchAndPop { limit } => {
                let pop = matches!(op, Op::StealBatchAndPop { .. });
                let before = worker.len();
                let outcome: Outcome<Option<u32>> = match (pop, limit) {
                    (false, None) => Outcome::from(injector.steal_batch(&worker)).map(|()| None),
                    (false, Some(limit)) => {
                        Outcome::from(injector.steal_batch_with_limit(&worker, limit))
                            .map(|()| None)
                    }
                    (true, None) => Outcome::from(injector.steal_batch_and_pop(&worker)).map(Some),
                    (true, Some(limit)) => {
                        Outcome::from(injector.steal_batch_with_limit_and_pop(&worker, limit))
                            .map(Some)
                    }
                };
                // crossbeam-deque's batch: its `steal_batch_and_pop` takes up to 33; everything left in the
                // head block once items have spilled into the next, half of them otherwise.
                let limit = limit.unwrap_or(MAX_BATCH + usize::from(pop));
                let block_rest = BLOCK - taken % BLOCK;
                let least = if model.len() >= block_rest {
                    block_rest
                } else {
                    model.len().div_ceil(2)
                }
                .min(limit);
                let most = if exact {
                    least
                } else {
                    limit.min(model.len()).min(block_rest)
                };
                let count = worker.len() - before + usize::from(pop);
                if least == 0 {
                    prop_assert_eq!(outcome, Outcome::Empty, "step {}: {:?}", step, op);
                    prop_assert_eq!(worker.len(), before, "step {}: {:?}", step, op);
                } else {
                    prop_assert!(
                        (least..=most).contains(&count),
                        "step {}: {:?}: took {} items, expected {}..={}",
                        step,
                        op,
                        count,
                        least,
                        most
                    );
                    let mut batch: VecDeque<u32> = model.drain(..count).collect();
                    let popped = if pop { batch.pop_front() } else { None };
                    dest.receive(batch.into_iter());
                    taken += count;
                    prop_assert_eq!(outcome, Outcome::Success(popped), "step {}: {:?}", step, op);
                }
            }
            Op::Pop | Op::PopDestination => {
                prop_assert_eq!(worker.pop(), dest.pop(), "step {}: {:?}", step, op)
            }
            Op::StealFromDestination => prop_assert_eq!(
                Outcome::from(worker_stealer.steal()),
                Outcome::of(dest.steal()),
                "step {}: {:?}",
                step,
                op
            ),
            Op::StealBatchIntoItself { .. } | Op::Len => {}
        }
        prop_assert_eq!(
            (injector.len(), injector.is_empty()),
            (model.len(), model.is_empty()),
            "step {}: {:?}",
            step,
            op
        );
        prop_assert_eq!(worker.len(), dest.items.len(), "step {}: {:?}", step, op);
    }
    while let Some(expected) = model.pop_front() {
        prop_assert_eq!(
            Outcome::from(injector.steal()),
            Outcome::Success(expected),
            "draining"
        );
    }
    prop_assert_eq!(Outcome::from(injector.steal()), Outcome::Empty);
    while let Some(expected) = dest.pop() {
        prop_assert_eq!(worker.pop(), Some(expected), "draining the destination");
    }
    prop_assert_eq!(worker.pop(), None);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lifo_deque_matches_the_model(destination in flavour(), ops in ops()) {
        let subject = Growable::new(Flavour::Lifo, destination);
        let (mut model, mut dest) = (ModelDeque::new(Flavour::Lifo), ModelDeque::new(destination));
        run(&subject, &mut model, &mut dest, &ops, Room::Exact)?;
    }

    #[test]
    fn fifo_deque_matches_the_model(destination in flavour(), ops in ops()) {
        let subject = Growable::new(Flavour::Fifo, destination);
        let (mut model, mut dest) = (ModelDeque::new(Flavour::Fifo), ModelDeque::new(destination));
        run(&subject, &mut model, &mut dest, &ops, Room::Exact)?;
    }

    /// Batches into the bounded destination may take fewer items than its free room (see `Room::UpTo`);
    /// everything else is exact.
    #[test]
    fn bounded_deque_matches_the_model(
        source in flavour(),
        capacity in 0usize..80,
        destination in flavour(),
        dest_capacity in 0usize..40,
        ops in ops(),
    ) {
        run_bounded(source, capacity, destination, dest_capacity, &ops, Room::UpTo)?;
    }

    #[test]
    fn injector_matches_the_model(destination in flavour(), ops in ops()) {
        run_injector(destination, &ops, false)?;
    }
}

proptest! {
    #![proptest_config(config())]

    /// Injector batches take `min(limit, ceil(len / 2))` items (within the head block).
    /// See `batch_takes_half_of_a_short_injector` in `tests/injector.rs`.
    #[test]
    fn injector_batches_take_half(destination in flavour(), ops in ops()) {
        run_injector(destination, &ops, true)?;
    }

    /// A batch into a bounded destination takes as many items as it has room for (up to the usual half).
    /// See `batch_fills_the_free_room_of_the_destination` in `tests/bounded.rs`.
    #[test]
    fn bounded_batches_fill_the_free_room(
        source in flavour(),
        capacity in 0usize..80,
        destination in flavour(),
        dest_capacity in 0usize..40,
        ops in ops(),
    ) {
        run_bounded(source, capacity, destination, dest_capacity, &ops, Room::Exact)?;
    }
}
