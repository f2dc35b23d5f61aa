//! ws-deque beside crossbeam-deque and st3: each group runs the three crates on the same workload, with the
//! same thread count, through one small [`Deque`] trait, so every crate executes the same benchmark code.
//!
//! Groups:
//!
//! * `push_pop/{lifo,fifo}`: one thread pushes `n` items then pops them, on a worker made once.
//! * `owner_with_thief/{lifo,fifo}`: the owner pushes two, pops one, then drains, while a thief thread
//!   steals single items; only the owner's time is measured.
//! * `steal_batch/{lifo,fifo}_source`: one thread drains a full source into its own worker by batch steals.
//! * `fork_join/{1,2}_threads/{no_work,with_work}`: a depth-first tree sum over 2^20 leaves with a
//!   work-stealing loop, checked against the expected sum.
//!
//! st3 is bounded and only steals into a destination worker, so its single steal is `steal_and_pop` with a
//! count of one, and its batch size is the one crossbeam and ws-deque use: half of what is there, rounded
//! up, at most 32.
//!
//! The two-thread groups (`owner_with_thief`, `fork_join/2_threads`) pin each thread to its own core
//! (`core_affinity`): the owner (criterion's thread) on the first core, the thief or the second worker on
//! the second. Unpinned, the scheduler moved them around and the medians swung 2x between runs. They take
//! more samples than the single-thread groups, so the confidence intervals criterion prints stay within a
//! few percent. Single-instruction-level comparisons are in `ws_deque_instructions` (callgrind).

use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main, measurement::WallTime,
};
use ws_deque::Steal;

/// The largest batch a steal moves (crossbeam's `MAX_BATCH`, which ws-deque copies).
const MAX_BATCH: usize = 32;

/// One work-stealing deque flavour (crate and LIFO/FIFO) behind the operations the workloads use.
trait Deque {
    /// The function id in each group.
    const NAME: &'static str;
    /// The owner's handle.
    type Worker<T: Send>: Send;
    /// A thief's handle.
    type Stealer<T: Send>: Clone + Send + Sync;

    /// A worker; only st3 uses `capacity` (it is bounded), the others start small and grow.
    fn new_worker<T: Send>(capacity: usize) -> Self::Worker<T>;
    fn stealer<T: Send>(worker: &Self::Worker<T>) -> Self::Stealer<T>;
    fn push<T: Send>(worker: &Self::Worker<T>, item: T);
    fn pop<T: Send>(worker: &Self::Worker<T>) -> Option<T>;
    /// Steals the oldest item. `scratch` is the thief's own worker: st3 can only steal into one.
    fn steal<T: Send>(stealer: &Self::Stealer<T>, scratch: &Self::Worker<T>) -> Steal<T>;
    /// Moves about half of the items, at most [`MAX_BATCH`], into `dest`.
    fn steal_batch<T: Send>(stealer: &Self::Stealer<T>, dest: &Self::Worker<T>) -> Steal<()>;
    /// As [`Deque::steal_batch`], returning one of the stolen items.
    fn steal_batch_and_pop<T: Send>(stealer: &Self::Stealer<T>, dest: &Self::Worker<T>)
    -> Steal<T>;
}

fn from_ws<T>(outcome: Steal<T>) -> Steal<T> {
    outcome
}

fn from_crossbeam<T>(outcome: crossbeam_deque::Steal<T>) -> Steal<T> {
    match outcome {
        crossbeam_deque::Steal::Empty => Steal::Empty,
        crossbeam_deque::Steal::Success(item) => Steal::Success(item),
        crossbeam_deque::Steal::Retry => Steal::Retry,
    }
}

/// ws-deque and crossbeam-deque share the API, so one macro covers both.
macro_rules! growable_deque {
    ($name:ident, $label:literal, $krate:ident, $new:ident, $convert:ident) => {
        struct $name;

        impl Deque for $name {
            const NAME: &'static str = $label;
            type Worker<T: Send> = $krate::Worker<T>;
            type Stealer<T: Send> = $krate::Stealer<T>;

            fn new_worker<T: Send>(_capacity: usize) -> Self::Worker<T> {
                $krate::Worker::$new()
            }

            fn stealer<T: Send>(worker: &Self::Worker<T>) -> Self::Stealer<T> {
                worker.stealer()
            }

            #[inline]
            fn push<T: Send>(worker: &Self::Worker<T>, item: T) {
                worker.push(item);
            }

            #[inline]
            fn pop<T: Send>(worker: &Self::Worker<T>) -> Option<T> {
                worker.pop()
            }

            #[inline]
            fn steal<T: Send>(stealer: &Self::Stealer<T>, _scratch: &Self::Worker<T>) -> Steal<T> {
                $convert(stealer.steal())
            }

            #[inline]
            fn steal_batch<T: Send>(
                stealer: &Self::Stealer<T>,
                dest: &Self::Worker<T>,
            ) -> Steal<()> {
                $convert(stealer.steal_batch(dest))
            }

            #[inline]
            fn steal_batch_and_pop<T: Send>(
                stealer: &Self::Stealer<T>,
                dest: &Self::Worker<T>,
            ) -> Steal<T> {
                $convert(stealer.steal_batch_and_pop(dest))
            }
        }
    };
}

growable_deque!(WsLifo, "ws-deque", ws_deque, new_lifo, from_ws);
growable_deque!(WsFifo, "ws-deque", ws_deque, new_fifo, from_ws);
growable_deque!(
    CrossbeamLifo,
    "crossbeam-deque",
    crossbeam_deque,
    new_lifo,
    from_crossbeam
);
growable_deque!(
    CrossbeamFifo,
    "crossbeam-deque",
    crossbeam_deque,
    new_fifo,
    from_crossbeam
);

/// ws-deque's bounded flavour: a fixed buffer like st3's, so `push_pop` compares like with like.
macro_rules! bounded_ws_deque {
    ($name:ident, $new:ident) => {
        struct $name;

        impl Deque for $name {
            const NAME: &'static str = "ws-deque-bounded";
            type Worker<T: Send> = ws_deque::bounded::Worker<T>;
            type Stealer<T: Send> = ws_deque::bounded::Stealer<T>;

            fn new_worker<T: Send>(capacity: usize) -> Self::Worker<T> {
                ws_deque::bounded::Worker::$new(capacity)
            }

            fn stealer<T: Send>(worker: &Self::Worker<T>) -> Self::Stealer<T> {
                worker.stealer()
            }

            #[inline]
            fn push<T: Send>(worker: &Self::Worker<T>, item: T) {
                assert!(
                    worker.push(item).is_ok(),
                    "the bounded deque is sized for the workload"
                );
            }

            #[inline]
            fn pop<T: Send>(worker: &Self::Worker<T>) -> Option<T> {
                worker.pop()
            }

            #[inline]
            fn steal<T: Send>(stealer: &Self::Stealer<T>, _scratch: &Self::Worker<T>) -> Steal<T> {
                stealer.steal()
            }

            #[inline]
            fn steal_batch<T: Send>(
                stealer: &Self::Stealer<T>,
                dest: &Self::Worker<T>,
            ) -> Steal<()> {
                stealer.steal_batch(dest)
            }

            #[inline]
            fn steal_batch_and_pop<T: Send>(
                stealer: &Self::Stealer<T>,
                dest: &Self::Worker<T>,
            ) -> Steal<T> {
                stealer.steal_batch_and_pop(dest)
            }
        }
    };
}

bounded_ws_deque!(WsBoundedLifo, new_lifo);
bounded_ws_deque!(WsBoundedFifo, new_fifo);

fn from_st3<T>(outcome: Result<T, st3::StealError>) -> Steal<T> {
    match outcome {
        Ok(item) => Steal::Success(item),
        Err(st3::StealError::Empty) => Steal::Empty,
        Err(st3::StealError::Busy) => Steal::Retry,
    }
}

/// The batch size crossbeam and ws-deque use: half, rounded up, at most [`MAX_BATCH`].
fn st3_batch(available: usize) -> usize {
    available.div_ceil(2).min(MAX_BATCH)
}

/// How many times an st3 owner found its deque full and waited for a thief (see [`st3_wait_for_room`]).
static ST3_FULL_WAITS: AtomicU64 = AtomicU64::new(0);

/// Pushes into a full st3 worker by waiting for room.
///
/// Every st3 worker is sized for the items it holds, but st3 counts free room from the *stealers'* head,
/// which only moves when a steal has finished copying. A thief preempted mid-steal therefore pins that head,
/// and a FIFO owner (which pops at the head, leaving the stealers' head behind) then fills the buffer with
/// as few as `capacity` pushes. ws-deque's growable worker grows in that case; a bounded deque's owner can
/// only wait (or spill elsewhere), so the owner waits, and that wait counts as its time.
#[cold]
#[inline(never)]
fn st3_wait_for_room<T>(mut item: T, mut push: impl FnMut(T) -> Result<(), T>) {
    ST3_FULL_WAITS.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now();
    loop {
        thread::yield_now();
        match push(item) {
            Ok(()) => return,
            Err(back) => item = back,
        }
        // Nothing else runs in single-threaded workloads, so waiting there would hang for ever.
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the st3 worker stayed full for 10 s: the benchmark sized it too small"
        );
    }
}

/// st3's `lifo` and `fifo` modules share the API.
macro_rules! st3_deque {
    ($name:ident, $module:ident) => {
        struct $name;

        impl Deque for $name {
            const NAME: &'static str = "st3";
            type Worker<T: Send> = st3::$module::Worker<T>;
            type Stealer<T: Send> = st3::$module::Stealer<T>;

            fn new_worker<T: Send>(capacity: usize) -> Self::Worker<T> {
                st3::$module::Worker::new(capacity)
            }

            fn stealer<T: Send>(worker: &Self::Worker<T>) -> Self::Stealer<T> {
                worker.stealer()
            }

            #[inline]
            fn push<T: Send>(worker: &Self::Worker<T>, item: T) {
                if let Err(item) = worker.push(item) {
                    st3_wait_for_room(item, |item| worker.push(item));
                }
            }

            #[inline]
            fn pop<T: Send>(worker: &Self::Worker<T>) -> Option<T> {
                worker.pop()
            }

            #[inline]
            fn steal<T: Send>(stealer: &Self::Stealer<T>, scratch: &Self::Worker<T>) -> Steal<T> {
                // A count of one moves nothing into `scratch` and hands the item back.
                from_st3(stealer.steal_and_pop(scratch, |_| 1).map(|(item, _)| item))
            }

            #[inline]
            fn steal_batch<T: Send>(
                stealer: &Self::Stealer<T>,
                dest: &Self::Worker<T>,
            ) -> Steal<()> {
                from_st3(stealer.steal(dest, st3_batch).map(|_| ()))
            }

            #[inline]
            fn steal_batch_and_pop<T: Send>(
                stealer: &Self::Stealer<T>,
                dest: &Self::Worker<T>,
            ) -> Steal<T> {
                from_st3(stealer.steal_and_pop(dest, st3_batch).map(|(item, _)| item))
            }
        }
    };
}

st3_deque!(St3Lifo, lifo);
st3_deque!(St3Fifo, fifo);

/// Measurement settings shared by every group: short, so the whole run takes a few minutes on two cores.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(40);
}

/// Measurement settings of the two-thread groups: more samples and a longer window, for intervals of a few
/// percent.
fn configure_two_threads(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .sample_size(100);
}

fn available_threads() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}

/// Pins the calling thread to the `index`-th core the process may run on (modulo their number). Returns
/// `false` if the platform does not support it (the benchmark then runs unpinned).
fn pin_to_core(index: usize) -> bool {
    match core_affinity::get_core_ids() {
        Some(cores) if !cores.is_empty() => {
            core_affinity::set_for_current(cores[index % cores.len()])
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------------------
// push_pop

const PUSH_POP_SIZES: [usize; 3] = [64, 256, 4096];

fn push_pop<D: Deque>(group: &mut BenchmarkGroup<'_, WallTime>, n: usize) {
    // Made once: the loop measures the deque in steady state (for the growable ones, that includes
    // growing past their 64 initial slots and shrinking back on every round, as a real owner would).
    let worker = D::new_worker::<u64>(n.next_power_of_two());
    group.bench_with_input(BenchmarkId::new(D::NAME, n), &n, |b, &n| {
        b.iter(|| {
            for i in 0..n as u64 {
                D::push(&worker, black_box(i));
            }
            for _ in 0..n {
                black_box(D::pop(&worker));
            }
        });
    });
    assert!(D::pop(&worker).is_none(), "{} kept items", D::NAME);
}

fn bench_push_pop(c: &mut Criterion) {
    let mut group = c.benchmark_group("push_pop/lifo");
    configure(&mut group);
    for n in PUSH_POP_SIZES {
        group.throughput(Throughput::Elements(n as u64));
        push_pop::<WsLifo>(&mut group, n);
        push_pop::<CrossbeamLifo>(&mut group, n);
        push_pop::<St3Lifo>(&mut group, n);
        push_pop::<WsBoundedLifo>(&mut group, n);
    }
    group.finish();

    let mut group = c.benchmark_group("push_pop/fifo");
    configure(&mut group);
    for n in PUSH_POP_SIZES {
        group.throughput(Throughput::Elements(n as u64));
        push_pop::<WsFifo>(&mut group, n);
        push_pop::<CrossbeamFifo>(&mut group, n);
        push_pop::<St3Fifo>(&mut group, n);
        push_pop::<WsBoundedFifo>(&mut group, n);
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------------------
// owner_with_thief

/// Rounds of "push two, pop one" per iteration; the drain that follows pops what the thief left.
const OWNER_ROUNDS: u64 = 1024;
/// Pushes per iteration.
const OWNER_PUSHES: u64 = 2 * OWNER_ROUNDS;
/// st3's capacity: enough for every push of an iteration if the thief takes nothing.
const OWNER_CAPACITY: usize = OWNER_PUSHES as usize;

/// One iteration of the owner: returns how many items it popped itself.
#[inline]
fn owner_round<D: Deque>(worker: &D::Worker<u64>) -> u64 {
    let mut popped = 0;
    for i in 0..OWNER_ROUNDS {
        D::push(worker, black_box(i));
        D::push(worker, black_box(i));
        if let Some(item) = D::pop(worker) {
            black_box(item);
            popped += 1;
        }
    }
    while let Some(item) = D::pop(worker) {
        black_box(item);
        popped += 1;
    }
    popped
}

/// Runs `iters` owner iterations against a thief that steals single items until told to stop, and returns
/// the owner's time.
fn owner_with_thief<D: Deque>(iters: u64) -> Duration {
    let worker = D::new_worker::<u64>(OWNER_CAPACITY);
    let stealer = D::stealer(&worker);
    let started = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    // The owner on the first core, the thief on the second, each on a thread of its own (pinning criterion's
    // thread would also narrow `available_parallelism` for the groups that follow).
    let (started, stop) = (&started, &stop);
    thread::scope(|scope| {
        let thief = scope.spawn(|| {
            pin_to_core(1);
            let scratch = D::new_worker::<u64>(1);
            let mut stolen = 0u64;
            started.store(true, Ordering::Release);
            // A steal that succeeds after the owner's last pop is counted before `stop` is seen.
            while !stop.load(Ordering::Acquire) {
                match D::steal(&stealer, &scratch) {
                    Steal::Success(item) => {
                        black_box(item);
                        stolen += 1;
                    }
                    Steal::Empty | Steal::Retry => spin_loop(),
                }
            }
            stolen
        });
        let owner = scope.spawn(move || {
            pin_to_core(0);
            // Time only while the thief is really stealing.
            while !started.load(Ordering::Acquire) {
                spin_loop();
            }
            let start = Instant::now();
            let mut popped = 0;
            for _ in 0..iters {
                popped += owner_round::<D>(&worker);
            }
            let elapsed = start.elapsed();
            stop.store(true, Ordering::Release);
            (elapsed, popped)
        });
        let (elapsed, popped) = owner.join().expect("the owner panicked");
        let stolen = thief.join().expect("the thief panicked");
        assert_eq!(
            popped + stolen,
            iters * OWNER_PUSHES,
            "{} lost items",
            D::NAME
        );
        elapsed
    })
}

fn bench_owner_with_thief(c: &mut Criterion) {
    if available_threads() < 2 {
        eprintln!("owner_with_thief: skipped, it needs 2 cores");
        return;
    }
    let mut group = c.benchmark_group("owner_with_thief/lifo");
    configure_two_threads(&mut group);
    group.throughput(Throughput::Elements(OWNER_PUSHES));
    group.bench_function(WsLifo::NAME, |b| b.iter_custom(owner_with_thief::<WsLifo>));
    group.bench_function(CrossbeamLifo::NAME, |b| {
        b.iter_custom(owner_with_thief::<CrossbeamLifo>)
    });
    group.bench_function(St3Lifo::NAME, |b| {
        b.iter_custom(owner_with_thief::<St3Lifo>)
    });
    group.finish();

    let mut group = c.benchmark_group("owner_with_thief/fifo");
    configure_two_threads(&mut group);
    group.throughput(Throughput::Elements(OWNER_PUSHES));
    group.bench_function(WsFifo::NAME, |b| b.iter_custom(owner_with_thief::<WsFifo>));
    group.bench_function(CrossbeamFifo::NAME, |b| {
        b.iter_custom(owner_with_thief::<CrossbeamFifo>)
    });
    group.bench_function(St3Fifo::NAME, |b| {
        b.iter_custom(owner_with_thief::<St3Fifo>)
    });
    group.finish();

    let waits = ST3_FULL_WAITS.swap(0, Ordering::Relaxed);
    if waits > 0 {
        eprintln!(
            "owner_with_thief: the st3 owners found their deque full {waits} times (a thief was mid-steal)"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// steal_batch

const STEAL_BATCH_ITEMS: u64 = 4096;

/// Steals `source` empty in batches, popping `dest` empty after each; returns the number of items.
#[inline]
fn drain_by_batches<D: Deque>(source: &D::Stealer<u64>, dest: &D::Worker<u64>) -> u64 {
    let mut drained = 0;
    loop {
        match D::steal_batch(source, dest) {
            Steal::Success(()) => {
                while let Some(item) = D::pop(dest) {
                    black_box(item);
                    drained += 1;
                }
            }
            Steal::Empty => return drained,
            // No other thread touches the source, but a lost race would only cost a retry.
            Steal::Retry => {}
        }
    }
}

fn steal_batch<D: Deque>(group: &mut BenchmarkGroup<'_, WallTime>) {
    let source = D::new_worker::<u64>(STEAL_BATCH_ITEMS as usize);
    let stealer = D::stealer(&source);
    let dest = D::new_worker::<u64>(2 * MAX_BATCH);
    group.bench_function(D::NAME, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for i in 0..STEAL_BATCH_ITEMS {
                    D::push(&source, i);
                }
                let start = Instant::now();
                let drained = drain_by_batches::<D>(&stealer, &dest);
                total += start.elapsed();
                assert_eq!(drained, STEAL_BATCH_ITEMS, "{} lost items", D::NAME);
            }
            total
        });
    });
}

fn bench_steal_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("steal_batch/lifo_source");
    configure(&mut group);
    group.throughput(Throughput::Elements(STEAL_BATCH_ITEMS));
    steal_batch::<WsLifo>(&mut group);
    steal_batch::<CrossbeamLifo>(&mut group);
    steal_batch::<St3Lifo>(&mut group);
    group.finish();

    let mut group = c.benchmark_group("steal_batch/fifo_source");
    configure(&mut group);
    group.throughput(Throughput::Elements(STEAL_BATCH_ITEMS));
    steal_batch::<WsFifo>(&mut group);
    steal_batch::<CrossbeamFifo>(&mut group);
    steal_batch::<St3Fifo>(&mut group);
    group.finish();
}

// ---------------------------------------------------------------------------------------------------------
// fork_join

/// Leaves of the tree; positions fit in `u32`.
const FORK_JOIN_LEAVES: u32 = 1 << 20;
/// st3's capacity: a depth-first owner holds one pending half per level (20) plus one stolen batch.
const FORK_JOIN_CAPACITY: usize = 1024;
/// Hash rounds per leaf in the `with_work` variant.
const LEAF_WORK_ROUNDS: u32 = 50;

/// A half-open range of leaves.
type Task = (u32, u32);

#[inline]
fn leaf_value(leaf: u32, with_work: bool) -> u64 {
    let mut value = u64::from(leaf);
    if with_work {
        for _ in 0..LEAF_WORK_ROUNDS {
            // splitmix64's finaliser step: cheap, and `black_box` keeps the loop from being folded.
            value = black_box((value ^ (value >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9));
        }
    }
    value
}

fn expected_sum(with_work: bool) -> u64 {
    (0..FORK_JOIN_LEAVES).fold(0u64, |sum, leaf| {
        sum.wrapping_add(leaf_value(leaf, with_work))
    })
}

/// Looks for work in the other workers' deques, starting with the next one.
fn steal_work<D: Deque>(
    index: usize,
    local: &D::Worker<Task>,
    stealers: &[D::Stealer<Task>],
) -> Option<Task> {
    for offset in 1..stealers.len() {
        let victim = &stealers[(index + offset) % stealers.len()];
        loop {
            match D::steal_batch_and_pop(victim, local) {
                Steal::Success(task) => return Some(task),
                Steal::Empty => break,
                Steal::Retry => spin_loop(),
            }
        }
    }
    None
}

/// One scheduler thread: split ranges depth-first, sum leaves, steal when the local deque is empty, stop
/// when no leaf is outstanding anywhere.
fn fork_join_worker<D: Deque>(
    index: usize,
    local: D::Worker<Task>,
    stealers: &[D::Stealer<Task>],
    outstanding: &AtomicU64,
    with_work: bool,
) -> u64 {
    let mut sum = 0u64;
    // Leaves summed but not yet subtracted from `outstanding`: one atomic per steal attempt, not per leaf.
    let mut done = 0u64;
    loop {
        let task = D::pop(&local).or_else(|| {
            if done > 0 {
                // AcqRel: Release so the thread that sees 0 sees every sum finished; Acquire for symmetry
                // with the load below.
                outstanding.fetch_sub(done, Ordering::AcqRel);
                done = 0;
            }
            steal_work::<D>(index, &local, stealers)
        });
        match task {
            Some((low, mut high)) => {
                while high - low > 1 {
                    let middle = low + (high - low) / 2;
                    D::push(&local, (middle, high));
                    high = middle;
                }
                sum = sum.wrapping_add(leaf_value(low, with_work));
                done += 1;
            }
            // Acquire: pairs with the fetch_sub above.
            None if outstanding.load(Ordering::Acquire) == 0 => return sum,
            None => spin_loop(),
        }
    }
}

fn fork_join<D: Deque>(threads: usize, with_work: bool) -> u64 {
    let workers: Vec<_> = (0..threads)
        .map(|_| D::new_worker::<Task>(FORK_JOIN_CAPACITY))
        .collect();
    let stealers: Vec<_> = workers.iter().map(D::stealer).collect();
    let outstanding = AtomicU64::new(u64::from(FORK_JOIN_LEAVES));
    D::push(&workers[0], (0, FORK_JOIN_LEAVES));
    thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(index, local)| {
                let (stealers, outstanding) = (&stealers, &outstanding);
                scope.spawn(move || {
                    if threads > 1 {
                        pin_to_core(index);
                    }
                    fork_join_worker::<D>(index, local, stealers, outstanding, with_work)
                })
            })
            .collect();
        handles.into_iter().fold(0u64, |sum, handle| {
            sum.wrapping_add(handle.join().expect("a fork-join worker panicked"))
        })
    })
}

fn bench_fork_join(c: &mut Criterion) {
    for threads in [1, 2] {
        if threads > available_threads() {
            eprintln!("fork_join/{threads}_threads: skipped, the machine has fewer cores");
            continue;
        }
        for (name, with_work) in [("no_work", false), ("with_work", true)] {
            let expected = expected_sum(with_work);
            let mut group = c.benchmark_group(format!("fork_join/{threads}_threads/{name}"));
            configure(&mut group);
            // An iteration takes milliseconds to tens of them: the same count per sample. One thread: the
            // fewest samples criterion accepts, to keep the run short; two threads (pinned): enough samples
            // for a narrow interval.
            group
                .sampling_mode(SamplingMode::Flat)
                .sample_size(if threads > 1 { 40 } else { 10 })
                .throughput(Throughput::Elements(u64::from(FORK_JOIN_LEAVES)));
            if threads > 1 {
                group.measurement_time(Duration::from_secs(8));
            }
            macro_rules! run {
                ($deque:ty) => {
                    group.bench_function(<$deque>::NAME, |b| {
                        b.iter(|| {
                            let sum = fork_join::<$deque>(threads, with_work);
                            assert_eq!(sum, expected, "{} summed wrong", <$deque>::NAME);
                            sum
                        });
                    });
                };
            }
            run!(WsLifo);
            run!(CrossbeamLifo);
            run!(St3Lifo);
            group.finish();
        }
    }
}

criterion_group!(
    benches,
    bench_push_pop,
    bench_owner_with_thief,
    bench_steal_batch,
    bench_fork_join
);
criterion_main!(benches);
