//! Instructions per operation of ws-deque, crossbeam-deque and st3, counted by callgrind.
//!
//! Timings on a shared 2-vCPU virtual machine move by ±10% between runs; instruction counts do not (they
//! depend only on the code and the input), so this is the table to decide single-thread changes with.
//!
//! The binary is its own driver: run normally (`cargo bench -p benches --bench ws_deque_instructions`), it
//! runs itself under `valgrind --tool=callgrind` once per (workload, deque), with collection off except
//! inside [`measured`] (`--toggle-collect`), reads the total from callgrind's output and prints one table.
//! Setup (filling a deque before a steal workload, the warm-up round) happens outside `measured`, so only
//! the operations are counted, together with the loop that drives them (the same loop for every deque).
//!
//! Arguments: an optional filter (a substring of `workload/deque`), `--test` for the smoke run CI does
//! (a few rounds each, the table still printed), `--rounds N` to override the rounds of every workload.
//! Without valgrind on `PATH` it says so and exits with an error.
//!
//! Workloads (every one single-threaded):
//!
//! * `push_pop/{lifo,fifo}/{64,256,4096}`: push n then pop n, on a worker made once; per push+pop pair.
//! * `steal/{lifo,fifo}`: steal single items from a full worker (4096 items) until it is empty; per item.
//! * `steal_batch/{lifo,fifo}_source`: drain a worker of 4096 items by batch steals into a second worker,
//!   popping it empty after each batch; per item moved.
//! * `steal_batch_and_pop/{lifo,fifo}_source`: the same with `steal_batch_and_pop`; per item.
//! * `injector/push`, `injector/steal`, `injector/steal_batch`: push 4096 items, steal them one at a time,
//!   or drain them by batches into a FIFO worker; per item. st3 has no injector.
//!
//! st3 is bounded and gets a buffer as large as the workload needs; its single steal is `steal_and_pop`
//! with a count of one (it can only steal into a worker), and its batch is half, rounded up, at most 32.

use std::hint::black_box;
use std::process::{Command, ExitCode};

/// The largest batch a steal moves (crossbeam's `MAX_BATCH`, which ws-deque copies).
const MAX_BATCH: usize = 32;
/// Items in the steal and injector workloads.
const STEAL_ITEMS: usize = 4096;

/// The one function whose instructions are counted (with everything it calls): `--toggle-collect` turns
/// collection on when it is entered and off when it returns.
#[inline(never)]
fn measured<R>(f: impl FnOnce() -> R) -> R {
    black_box(f())
}

/// The outcome of a steal, whatever the crate.
enum Stolen<T> {
    Empty,
    Success(T),
    Retry,
}

fn from_ws<T>(outcome: ws_deque::Steal<T>) -> Stolen<T> {
    match outcome {
        ws_deque::Steal::Empty => Stolen::Empty,
        ws_deque::Steal::Success(item) => Stolen::Success(item),
        ws_deque::Steal::Retry => Stolen::Retry,
    }
}

fn from_crossbeam<T>(outcome: crossbeam_deque::Steal<T>) -> Stolen<T> {
    match outcome {
        crossbeam_deque::Steal::Empty => Stolen::Empty,
        crossbeam_deque::Steal::Success(item) => Stolen::Success(item),
        crossbeam_deque::Steal::Retry => Stolen::Retry,
    }
}

fn from_st3<T>(outcome: Result<T, st3::StealError>) -> Stolen<T> {
    match outcome {
        Ok(item) => Stolen::Success(item),
        Err(st3::StealError::Empty) => Stolen::Empty,
        Err(st3::StealError::Busy) => Stolen::Retry,
    }
}

/// One deque (crate and flavour) behind the operations the workloads use.
trait Deque {
    type Worker;
    type Stealer;
    fn new_worker(capacity: usize) -> Self::Worker;
    fn stealer(worker: &Self::Worker) -> Self::Stealer;
    fn push(worker: &Self::Worker, item: u64);
    fn pop(worker: &Self::Worker) -> Option<u64>;
    fn steal(stealer: &Self::Stealer, scratch: &Self::Worker) -> Stolen<u64>;
    fn steal_batch(stealer: &Self::Stealer, dest: &Self::Worker) -> Stolen<()>;
    fn steal_batch_and_pop(stealer: &Self::Stealer, dest: &Self::Worker) -> Stolen<u64>;
}

macro_rules! growable {
    ($name:ident, $krate:ident, $new:ident, $convert:ident) => {
        struct $name;
        impl Deque for $name {
            type Worker = $krate::Worker<u64>;
            type Stealer = $krate::Stealer<u64>;
            fn new_worker(_capacity: usize) -> Self::Worker {
                $krate::Worker::$new()
            }
            fn stealer(worker: &Self::Worker) -> Self::Stealer {
                worker.stealer()
            }
            #[inline]
            fn push(worker: &Self::Worker, item: u64) {
                worker.push(item);
            }
            #[inline]
            fn pop(worker: &Self::Worker) -> Option<u64> {
                worker.pop()
            }
            #[inline]
            fn steal(stealer: &Self::Stealer, _scratch: &Self::Worker) -> Stolen<u64> {
                $convert(stealer.steal())
            }
            #[inline]
            fn steal_batch(stealer: &Self::Stealer, dest: &Self::Worker) -> Stolen<()> {
                $convert(stealer.steal_batch(dest))
            }
            #[inline]
            fn steal_batch_and_pop(stealer: &Self::Stealer, dest: &Self::Worker) -> Stolen<u64> {
                $convert(stealer.steal_batch_and_pop(dest))
            }
        }
    };
}

growable!(WsLifo, ws_deque, new_lifo, from_ws);
growable!(WsFifo, ws_deque, new_fifo, from_ws);
growable!(CrossbeamLifo, crossbeam_deque, new_lifo, from_crossbeam);
growable!(CrossbeamFifo, crossbeam_deque, new_fifo, from_crossbeam);

macro_rules! bounded {
    ($name:ident, $new:ident) => {
        struct $name;
        impl Deque for $name {
            type Worker = ws_deque::bounded::Worker<u64>;
            type Stealer = ws_deque::bounded::Stealer<u64>;
            fn new_worker(capacity: usize) -> Self::Worker {
                ws_deque::bounded::Worker::$new(capacity)
            }
            fn stealer(worker: &Self::Worker) -> Self::Stealer {
                worker.stealer()
            }
            #[inline]
            fn push(worker: &Self::Worker, item: u64) {
                if worker.push(item).is_err() {
                    unreachable!("sized for the workload");
                }
            }
            #[inline]
            fn pop(worker: &Self::Worker) -> Option<u64> {
                worker.pop()
            }
            #[inline]
            fn steal(stealer: &Self::Stealer, _scratch: &Self::Worker) -> Stolen<u64> {
                from_ws(stealer.steal())
            }
            #[inline]
            fn steal_batch(stealer: &Self::Stealer, dest: &Self::Worker) -> Stolen<()> {
                from_ws(stealer.steal_batch(dest))
            }
            #[inline]
            fn steal_batch_and_pop(stealer: &Self::Stealer, dest: &Self::Worker) -> Stolen<u64> {
                from_ws(stealer.steal_batch_and_pop(dest))
            }
        }
    };
}

bounded!(WsBoundedLifo, new_lifo);
bounded!(WsBoundedFifo, new_fifo);

fn st3_batch(available: usize) -> usize {
    available.div_ceil(2).min(MAX_BATCH)
}

macro_rules! st3_deque {
    ($name:ident, $module:ident) => {
        struct $name;
        impl Deque for $name {
            type Worker = st3::$module::Worker<u64>;
            type Stealer = st3::$module::Stealer<u64>;
            fn new_worker(capacity: usize) -> Self::Worker {
                st3::$module::Worker::new(capacity)
            }
            fn stealer(worker: &Self::Worker) -> Self::Stealer {
                worker.stealer()
            }
            #[inline]
            fn push(worker: &Self::Worker, item: u64) {
                if worker.push(item).is_err() {
                    unreachable!("sized for the workload");
                }
            }
            #[inline]
            fn pop(worker: &Self::Worker) -> Option<u64> {
                worker.pop()
            }
            #[inline]
            fn steal(stealer: &Self::Stealer, scratch: &Self::Worker) -> Stolen<u64> {
                from_st3(stealer.steal_and_pop(scratch, |_| 1).map(|(item, _)| item))
            }
            #[inline]
            fn steal_batch(stealer: &Self::Stealer, dest: &Self::Worker) -> Stolen<()> {
                from_st3(stealer.steal(dest, st3_batch).map(|_| ()))
            }
            #[inline]
            fn steal_batch_and_pop(stealer: &Self::Stealer, dest: &Self::Worker) -> Stolen<u64> {
                from_st3(stealer.steal_and_pop(dest, st3_batch).map(|(item, _)| item))
            }
        }
    };
}

st3_deque!(St3Lifo, lifo);
st3_deque!(St3Fifo, fifo);

/// Runs `rounds` rounds of push n / pop n; returns the pairs counted.
fn push_pop<D: Deque>(n: usize, rounds: usize) -> u64 {
    let worker = D::new_worker(n.next_power_of_two());
    let round = |worker: &D::Worker| {
        for i in 0..n as u64 {
            D::push(worker, black_box(i));
        }
        for _ in 0..n {
            black_box(D::pop(worker));
        }
    };
    // Warm-up, not counted: the growable deques reach the size the workload needs.
    round(&worker);
    measured(|| {
        for _ in 0..rounds {
            round(&worker);
        }
    });
    assert!(D::pop(&worker).is_none());
    (n * rounds) as u64
}

fn fill<D: Deque>(worker: &D::Worker) {
    for i in 0..STEAL_ITEMS as u64 {
        D::push(worker, i);
    }
}

/// Steals single items from a full worker until it is empty; returns the items counted.
fn steal<D: Deque>(rounds: usize) -> u64 {
    let worker = D::new_worker(STEAL_ITEMS);
    let stealer = D::stealer(&worker);
    let scratch = D::new_worker(STEAL_ITEMS);
    for _ in 0..rounds + 1 {
        fill::<D>(&worker);
        measured(|| {
            let mut taken = 0;
            loop {
                match D::steal(&stealer, &scratch) {
                    Stolen::Success(item) => {
                        black_box(item);
                        taken += 1;
                    }
                    Stolen::Empty => break,
                    Stolen::Retry => {}
                }
            }
            assert_eq!(taken, STEAL_ITEMS);
        });
    }
    // The first round (the warm-up) is counted too: it is the same work, and the deques are sized already.
    ((rounds + 1) * STEAL_ITEMS) as u64
}

/// Drains a full worker by batch steals (with or without the pop) into a second worker.
fn steal_batches<D: Deque>(rounds: usize, and_pop: bool) -> u64 {
    let worker = D::new_worker(STEAL_ITEMS);
    let stealer = D::stealer(&worker);
    let dest = D::new_worker(2 * MAX_BATCH);
    for _ in 0..rounds + 1 {
        fill::<D>(&worker);
        measured(|| {
            let mut taken = 0;
            loop {
                let outcome = if and_pop {
                    match D::steal_batch_and_pop(&stealer, &dest) {
                        Stolen::Success(item) => {
                            black_box(item);
                            taken += 1;
                            Stolen::Success(())
                        }
                        Stolen::Empty => Stolen::Empty,
                        Stolen::Retry => Stolen::Retry,
                    }
                } else {
                    D::steal_batch(&stealer, &dest)
                };
                match outcome {
                    Stolen::Success(()) => {
                        while let Some(item) = D::pop(&dest) {
                            black_box(item);
                            taken += 1;
                        }
                    }
                    Stolen::Empty => break,
                    Stolen::Retry => {}
                }
            }
            assert_eq!(taken, STEAL_ITEMS);
        });
    }
    ((rounds + 1) * STEAL_ITEMS) as u64
}

/// The injector workloads; `what` is `push`, `steal` or `steal_batch`.
macro_rules! injector_workload {
    ($fn_name:ident, $krate:ident, $convert:ident) => {
        fn $fn_name(what: &str, rounds: usize) -> u64 {
            let injector = $krate::Injector::<u64>::new();
            let dest = $krate::Worker::<u64>::new_fifo();
            let push_all = |injector: &$krate::Injector<u64>| {
                for i in 0..STEAL_ITEMS as u64 {
                    injector.push(black_box(i));
                }
            };
            for _ in 0..rounds + 1 {
                match what {
                    "push" => {
                        measured(|| push_all(&injector));
                        while let Stolen::Success(_) | Stolen::Retry = $convert(injector.steal()) {}
                    }
                    "steal" => {
                        push_all(&injector);
                        measured(|| {
                            let mut taken = 0;
                            loop {
                                match $convert(injector.steal()) {
                                    Stolen::Success(item) => {
                                        black_box(item);
                                        taken += 1;
                                    }
                                    Stolen::Empty => break,
                                    Stolen::Retry => {}
                                }
                            }
                            assert_eq!(taken, STEAL_ITEMS);
                        });
                    }
                    "steal_batch" => {
                        push_all(&injector);
                        measured(|| {
                            let mut taken = 0;
                            loop {
                                match $convert(injector.steal_batch(&dest)) {
                                    Stolen::Success(()) => {
                                        while let Some(item) = dest.pop() {
                                            black_box(item);
                                            taken += 1;
                                        }
                                    }
                                    Stolen::Empty => break,
                                    Stolen::Retry => {}
                                }
                            }
                            assert_eq!(taken, STEAL_ITEMS);
                        });
                    }
                    _ => unreachable!("unknown injector workload {what}"),
                }
            }
            ((rounds + 1) * STEAL_ITEMS) as u64
        }
    };
}

injector_workload!(injector_ws, ws_deque, from_ws);
injector_workload!(injector_crossbeam, crossbeam_deque, from_crossbeam);

/// The deques of a worker workload, in table order.
const DEQUES: [&str; 4] = ["ws-deque", "ws-deque-bounded", "crossbeam-deque", "st3"];

/// Every (workload, unit, deques) the table has.
fn workloads() -> Vec<(String, &'static str, Vec<&'static str>)> {
    let mut all = Vec::new();
    for flavour in ["lifo", "fifo"] {
        for n in [64, 256, 4096] {
            all.push((format!("push_pop/{flavour}/{n}"), "pair", DEQUES.to_vec()));
        }
    }
    for flavour in ["lifo", "fifo"] {
        all.push((format!("steal/{flavour}"), "item", DEQUES.to_vec()));
    }
    for what in ["steal_batch", "steal_batch_and_pop"] {
        for flavour in ["lifo", "fifo"] {
            all.push((format!("{what}/{flavour}_source"), "item", DEQUES.to_vec()));
        }
    }
    for what in ["push", "steal", "steal_batch"] {
        all.push((
            format!("injector/{what}"),
            "item",
            vec!["ws-deque", "crossbeam-deque"],
        ));
    }
    all
}

/// Default rounds per workload: enough that the warm-up and setup noise is far below one instruction per
/// operation, few enough that the whole table takes about a minute under callgrind.
fn default_rounds(workload: &str) -> usize {
    match workload.rsplit('/').next() {
        Some("64") => 2000,
        Some("256") => 500,
        Some("4096") => 32,
        _ => 24,
    }
}

/// Runs one workload on one deque (in the child process); returns the operations counted.
fn run_child(workload: &str, deque: &str, rounds: usize) -> u64 {
    let parts: Vec<&str> = workload.split('/').collect();
    macro_rules! by_flavour {
        ($flavour:expr, $run:ident $(, $arg:expr)*) => {
            match (deque, $flavour) {
                ("ws-deque", "lifo") => $run::<WsLifo>($($arg),*),
                ("ws-deque", "fifo") => $run::<WsFifo>($($arg),*),
                ("ws-deque-bounded", "lifo") => $run::<WsBoundedLifo>($($arg),*),
                ("ws-deque-bounded", "fifo") => $run::<WsBoundedFifo>($($arg),*),
                ("crossbeam-deque", "lifo") => $run::<CrossbeamLifo>($($arg),*),
                ("crossbeam-deque", "fifo") => $run::<CrossbeamFifo>($($arg),*),
                ("st3", "lifo") => $run::<St3Lifo>($($arg),*),
                ("st3", "fifo") => $run::<St3Fifo>($($arg),*),
                other => panic!("unknown deque {other:?}"),
            }
        };
    }
    match parts.as_slice() {
        ["push_pop", flavour, n] => {
            by_flavour!(*flavour, push_pop, n.parse().expect("a size"), rounds)
        }
        ["steal", flavour] => by_flavour!(*flavour, steal, rounds),
        ["steal_batch", source] => {
            by_flavour!(
                source.trim_end_matches("_source"),
                steal_batches,
                rounds,
                false
            )
        }
        ["steal_batch_and_pop", source] => {
            by_flavour!(
                source.trim_end_matches("_source"),
                steal_batches,
                rounds,
                true
            )
        }
        ["injector", what] => match deque {
            "ws-deque" => injector_ws(what, rounds),
            "crossbeam-deque" => injector_crossbeam(what, rounds),
            other => panic!("no injector for {other}"),
        },
        _ => panic!("unknown workload {workload}"),
    }
}

/// Runs the child under callgrind and returns the instructions counted inside [`measured`] and the
/// operations they cover.
fn count(workload: &str, deque: &str, rounds: usize) -> Result<(u64, u64), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("ws-deque-instructions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join("callgrind.out");
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--collect-atstart=no")
        .arg("--toggle-collect=*measured*")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .args(["--child", workload, deque, &rounds.to_string()])
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{workload} {deque}: the child failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let operations: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("{workload} {deque}: the child printed no count: {e}"))?;
    let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    let total = text
        .lines()
        .find_map(|line| {
            line.strip_prefix("totals:")
                .or(line.strip_prefix("summary:"))
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{workload} {deque}: no total in callgrind's output"))?;
    Ok((total, operations))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let rounds = args[3].parse().expect("rounds");
        println!("{}", run_child(&args[1], &args[2], rounds));
        return ExitCode::SUCCESS;
    }
    let smoke = args.iter().any(|a| a == "--test");
    let rounds_override = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse::<usize>().expect("--rounds takes a number"));
    // cargo bench passes `--bench`; anything else that is not a flag is a filter.
    let filter = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--rounds"))
        .map(|(_, a)| a.clone());
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!(
            "ws_deque_instructions: valgrind is not on PATH (Debian: apt-get install valgrind)"
        );
        return ExitCode::FAILURE;
    }
    println!(
        "Instructions per operation (callgrind), single thread; the unit is a push+pop pair or an item."
    );
    println!();
    println!("| workload | unit | {} |", DEQUES.join(" | "));
    println!("|---|---|{}", "---|".repeat(DEQUES.len()));
    let mut failed = false;
    for (workload, unit, deques) in workloads() {
        let wanted: Vec<_> = deques
            .iter()
            .filter(|deque| {
                filter
                    .as_ref()
                    .is_none_or(|f| format!("{workload}/{deque}").contains(f.as_str()))
            })
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let rounds = rounds_override.unwrap_or(if smoke { 1 } else { default_rounds(&workload) });
        let mut cells = Vec::new();
        for deque in DEQUES {
            if !wanted.contains(&&deque) {
                cells.push("–".to_string());
                continue;
            }
            match count(&workload, deque, rounds) {
                Ok((instructions, operations)) => {
                    cells.push(format!("{:.1}", instructions as f64 / operations as f64));
                }
                Err(error) => {
                    eprintln!("{error}");
                    failed = true;
                    cells.push("error".to_string());
                }
            }
        }
        println!("| {workload} | {unit} | {} |", cells.join(" | "));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
