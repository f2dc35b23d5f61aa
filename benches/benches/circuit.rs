//! `circuit::CircuitBreaker` beside recloser (`Recloser`) and failsafe (`StateMachine`).
//!
//! Every breaker is built once per benchmark, outside the timed loop, and shared by the threads of a
//! multi-thread sample; with 2 threads both run the same loop behind a barrier and the figure is the mean of
//! the threads' own times (`time_on_threads` with `Combine::Mean`), so it stays "time per call on one
//! thread" while the other thread does the same.
//!
//! - `closed_call/{1_thread,2_threads}`: a successful call in the closed state, `call(|| Ok(black_box(x)))`.
//!   Ours in two configurations: `circuit_default` (consecutive-failure rule only, the default) and
//!   `circuit_count_window_100` (failure rate 0.5 over the last 100 calls and no consecutive rule, what
//!   recloser's defaults are: a ring of 100 calls and a failure rate of 0.5); `recloser` with its defaults;
//!   `failsafe` with a consecutive-failures policy of 5 (like our default).
//! - `rejection/{1_thread,2_threads}`: a call refused while open. Ours tripped by failures into `Open` with an
//!   hour's wait (`circuit_open`, which reads the coarse clock to see whether the wait is over) and forced
//!   open (`circuit_forced_open`); recloser and failsafe tripped by failures with an hour's open wait. Each
//!   is checked to reject before it is timed.
//! - `try_acquire_verdict/{1_thread,2_threads}`: the manual protocol, ours `try_acquire()` +
//!   `Permit::success()` against failsafe's `is_call_permitted()` + `on_success()`. recloser has no manual
//!   API (its `call_permitted`/`on_success` are crate-private), so it is absent from this group.

use std::hint::black_box;
use std::time::Duration;

use benches::{Combine, thread_counts, time_on_threads};
use circuit::{Backoff, CircuitBreaker, SlidingWindow};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;

/// How long a tripped breaker stays open in the rejection group: far longer than any run.
const LONG_OPEN_WAIT: Duration = Duration::from_secs(3600);

/// Consecutive failures that trip ours (the default) and failsafe's policy.
const CONSECUTIVE_FAILURES: u32 = 5;

type Failsafe = failsafe::StateMachine<
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
    (),
>;

fn circuit_default() -> CircuitBreaker {
    CircuitBreaker::new()
}

fn circuit_count_window_100() -> CircuitBreaker {
    CircuitBreaker::builder()
        .disable_consecutive_failures()
        .failure_rate(0.5)
        .sliding_window(SlidingWindow::count(100))
        .minimum_calls(100)
        .build()
        .expect("valid configuration")
}

fn circuit_tripped() -> CircuitBreaker {
    let breaker = CircuitBreaker::builder()
        .consecutive_failures(CONSECUTIVE_FAILURES)
        .open_wait(Backoff::constant(LONG_OPEN_WAIT))
        .build()
        .expect("valid configuration");
    for _ in 0..CONSECUTIVE_FAILURES {
        let _ = breaker.call(|| Err::<(), _>(()));
    }
    assert!(
        breaker.call(|| Ok::<_, ()>(())).is_err(),
        "circuit did not trip"
    );
    breaker
}

fn circuit_forced_open() -> CircuitBreaker {
    let breaker = CircuitBreaker::new();
    breaker.force_open();
    assert!(breaker.call(|| Ok::<_, ()>(())).is_err());
    breaker
}

fn recloser_default() -> recloser::Recloser {
    recloser::Recloser::default()
}

fn recloser_tripped() -> recloser::Recloser {
    let breaker = recloser::Recloser::custom()
        .open_wait(LONG_OPEN_WAIT)
        .build();
    // The ring of 100 must fill before recloser computes a rate; past that, failures trip it.
    for _ in 0..200 {
        let _ = breaker.call(|| Err::<(), _>(()));
    }
    assert!(
        matches!(
            breaker.call(|| Ok::<_, ()>(())),
            Err(recloser::Error::Rejected)
        ),
        "recloser did not trip"
    );
    breaker
}

fn failsafe_with_wait(wait: Duration) -> Failsafe {
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            CONSECUTIVE_FAILURES,
            failsafe::backoff::constant(wait),
        ))
        .build()
}

fn failsafe_default() -> Failsafe {
    failsafe_with_wait(Duration::from_secs(30))
}

fn failsafe_tripped() -> Failsafe {
    let breaker = failsafe_with_wait(LONG_OPEN_WAIT);
    for _ in 0..CONSECUTIVE_FAILURES {
        let _ = breaker.call(|| Err::<(), _>(()));
    }
    assert!(
        matches!(
            breaker.call(|| Ok::<_, ()>(())),
            Err(failsafe::Error::Rejected)
        ),
        "failsafe did not trip"
    );
    breaker
}

/// Times `op` on `threads` threads under `name` in `group`; `op` runs once untimed first.
fn bench_op(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    op: impl Fn() + Sync,
) {
    op();
    group.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter_custom(|iters| time_on_threads(threads, iters, Combine::Mean, &op));
    });
}

fn thread_label(threads: usize) -> &'static str {
    if threads == 1 {
        "1_thread"
    } else {
        "2_threads"
    }
}

fn group<'a>(c: &'a mut Criterion, workload: &str, threads: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(format!("{workload}/{}", thread_label(threads)));
    if threads > 1 {
        // Each sample spawns threads: fewer, longer samples keep that cost out of the figure.
        group.sample_size(30);
    }
    group
}

fn closed_call(c: &mut Criterion) {
    for threads in thread_counts() {
        let mut group = group(c, "closed_call", threads);
        let x = 42_u64;

        let breaker = circuit_default();
        bench_op(&mut group, "circuit_default", threads, || {
            black_box(breaker.call(|| Ok::<_, ()>(black_box(x))).ok());
        });
        let breaker = circuit_count_window_100();
        bench_op(&mut group, "circuit_count_window_100", threads, || {
            black_box(breaker.call(|| Ok::<_, ()>(black_box(x))).ok());
        });
        let breaker = recloser_default();
        bench_op(&mut group, "recloser", threads, || {
            black_box(breaker.call(|| Ok::<_, ()>(black_box(x))).ok());
        });
        let breaker = failsafe_default();
        bench_op(&mut group, "failsafe", threads, || {
            black_box(breaker.call(|| Ok::<_, ()>(black_box(x))).ok());
        });
        group.finish();
    }
}

fn rejection(c: &mut Criterion) {
    for threads in thread_counts() {
        let mut group = group(c, "rejection", threads);
        let x = 42_u64;

        let breaker = circuit_tripped();
        bench_op(&mut group, "circuit_open", threads, || {
            black_box(breaker.call(|| Ok::<_, ()>(black_box(x))).is_err());
        });
        let breaker = circuit_forced_open();
        bench_op(&mut group, "circuit_forced_open", threads, || {
            black_box(breaker.call(|| Ok::<_, ()>(black_box(x))).is_err());
        });
        let breaker = recloser_tripped();
        bench_op(&mut group, "recloser", threads, || {
            black_box(breaker.call(|| Ok::<_, ()>(black_box(x))).is_err());
        });
        let breaker = failsafe_tripped();
        bench_op(&mut group, "failsafe", threads, || {
            black_box(breaker.call(|| Ok::<_, ()>(black_box(x))).is_err());
        });
        group.finish();
    }
}

fn try_acquire_verdict(c: &mut Criterion) {
    for threads in thread_counts() {
        let mut group = group(c, "try_acquire_verdict", threads);

        let breaker = circuit_default();
        bench_op(&mut group, "circuit_default", threads, || {
            if let Ok(permit) = black_box(&breaker).try_acquire() {
                permit.success();
            }
        });
        let breaker = circuit_count_window_100();
        bench_op(&mut group, "circuit_count_window_100", threads, || {
            if let Ok(permit) = black_box(&breaker).try_acquire() {
                permit.success();
            }
        });
        let breaker = failsafe_default();
        bench_op(&mut group, "failsafe", threads, || {
            let breaker = black_box(&breaker);
            if breaker.is_call_permitted() {
                breaker.on_success();
            }
        });
        group.finish();
    }
}

criterion_group!(benches, closed_call, rejection, try_acquire_verdict);
criterion_main!(benches);
