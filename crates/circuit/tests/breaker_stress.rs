//! Concurrent stress: worker threads make calls with random outcomes through one breaker while another
//! thread moves a shared `ManualClock`, so the breaker trips, waits, probes, closes and re-opens many times
//! under contention. Checked:
//!
//! - never more half-open probes in flight than `half_open_permits` within one half-open round (a probe of an
//!   earlier round may still be running when the next round starts; the round is the permit's generation);
//! - every call is counted exactly once in the lifetime metrics, in the category the caller gave it;
//! - the transition events form one chain (each `from` is the previous `to`), which is what delivering them
//!   in order means, and the openings in it match `times_opened`;
//! - afterwards the breaker still works: past the longest wait, probes close it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use circuit::{Backoff, CircuitBreaker, Event, ManualClock, Permit, SlidingWindow, State};

const PERMITS: u32 = 2;

fn calls_per_thread() -> u64 {
    if cfg!(miri) { 150 } else { 40_000 }
}

/// The generation a permit was issued in, from its `Debug` (tests only: the generation is not public).
fn generation(permit: &Permit<'_, ManualClock>) -> u64 {
    let debug = format!("{permit:?}");
    let start = debug.find("generation: ").expect("generation in Debug") + "generation: ".len();
    debug[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[derive(Default)]
struct Tally {
    successes: AtomicU64,
    failures: AtomicU64,
    ignored: AtomicU64,
    rejected: AtomicU64,
}

fn stress(window: SlidingWindow, threads: usize) {
    let clock = ManualClock::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .clock(clock.clone())
            .consecutive_failures(4)
            .failure_rate(0.5)
            .slow_call_rate(0.9)
            .slow_call_duration(Duration::from_millis(3))
            .sliding_window(window)
            .minimum_calls(10)
            .half_open_permits(PERMITS)
            .successes_to_close(PERMITS)
            .open_wait(
                Backoff::exponential(Duration::from_millis(1), Duration::from_millis(8)).unwrap(),
            )
            .listener(move |event| {
                if let Event::StateTransition { .. } = event {
                    sink.lock().unwrap().push(event.clone());
                }
            })
            .build()
            .unwrap(),
    );
    let probes_in_flight: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let most_probes = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Tally::default());
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(threads + 1));

    let ticker = {
        let (clock, done, start) = (clock.clone(), Arc::clone(&done), Arc::clone(&start));
        std::thread::spawn(move || {
            start.wait();
            while !done.load(Ordering::Relaxed) {
                clock.advance(Duration::from_micros(250));
                std::thread::yield_now();
            }
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|seed| {
            let breaker = Arc::clone(&breaker);
            let (probes, most, tally, start) = (
                Arc::clone(&probes_in_flight),
                Arc::clone(&most_probes),
                Arc::clone(&tally),
                Arc::clone(&start),
            );
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed as u64);
                start.wait();
                for _ in 0..calls_per_thread() {
                    let Ok(permit) = breaker.try_acquire() else {
                        tally.rejected.fetch_add(1, Ordering::Relaxed);
                        // Give the clock thread a turn, or the run is all rejections.
                        std::thread::yield_now();
                        continue;
                    };
                    let probe = (permit.state() == State::HalfOpen).then(|| generation(&permit));
                    if let Some(generation) = probe {
                        let mut probes = probes.lock().unwrap();
                        let count = probes.entry(generation).or_insert(0);
                        *count += 1;
                        most.fetch_max(u64::from(*count), Ordering::Relaxed);
                        assert!(
                            *count <= PERMITS,
                            "{count} probes in generation {generation}"
                        );
                    }
                    // Mostly failures while probing half the time keeps the breaker cycling.
                    let roll = rng.u32(0..100);
                    // Probes linger, so that another thread finds half-open full.
                    if roll < 3 || probe.is_some() {
                        std::thread::yield_now();
                    }
                    if let Some(generation) = probe {
                        *probes.lock().unwrap().get_mut(&generation).unwrap() -= 1;
                    }
                    match roll {
                        0..45 => {
                            tally.successes.fetch_add(1, Ordering::Relaxed);
                            permit.success();
                        }
                        45..90 => {
                            tally.failures.fetch_add(1, Ordering::Relaxed);
                            permit.failure();
                        }
                        90..95 => {
                            tally.ignored.fetch_add(1, Ordering::Relaxed);
                            permit.ignore();
                        }
                        _ => {
                            tally.ignored.fetch_add(1, Ordering::Relaxed);
                            drop(permit);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    ticker.join().unwrap();

    let metrics = breaker.metrics();
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    assert_eq!(
        (
            metrics.successes,
            metrics.failures,
            metrics.ignored,
            metrics.rejected
        ),
        (
            load(&tally.successes),
            load(&tally.failures),
            load(&tally.ignored),
            load(&tally.rejected)
        )
    );
    assert_eq!(
        metrics.successes + metrics.failures + metrics.ignored + metrics.rejected,
        threads as u64 * calls_per_thread()
    );

    let events = std::mem::take(&mut *events.lock().unwrap());
    let mut state = State::Closed;
    let mut openings = 0;
    for event in &events {
        let Event::StateTransition { from, to } = *event else {
            unreachable!()
        };
        assert_eq!(from, state, "transition chain broken in {events:?}");
        assert!(matches!(
            (from, to),
            (State::Closed, State::Open)
                | (State::Open, State::HalfOpen)
                | (State::HalfOpen, State::Open | State::Closed)
        ));
        openings += u64::from(to == State::Open);
        state = to;
    }
    assert_eq!(state, metrics.state);
    assert_eq!(openings, metrics.times_opened);
    if !cfg!(miri) {
        assert!(
            metrics.times_opened > 10,
            "too few openings to mean anything: {metrics:?}"
        );
        // Whether two probes of one round ever overlapped depends on the scheduler; it usually happens.
        assert!(load(&most_probes) >= 1, "no probe was ever admitted");
        eprintln!(
            "{} openings, at most {} probes of one round in flight",
            metrics.times_opened,
            load(&most_probes)
        );
    }

    // Still works: past the longest wait, the probes close it.
    clock.advance(Duration::from_millis(10));
    for _ in 0..PERMITS {
        if let Ok(permit) = breaker.try_acquire() {
            permit.success();
        }
    }
    assert_eq!(breaker.state(), State::Closed);
    breaker.try_acquire().unwrap().success();
}

#[test]
fn count_window_under_contention() {
    stress(SlidingWindow::count(20), if cfg!(miri) { 2 } else { 4 });
}

#[test]
fn time_window_under_contention() {
    stress(
        SlidingWindow::time_with_buckets(Duration::from_millis(5), 5),
        if cfg!(miri) { 2 } else { 4 },
    );
}
