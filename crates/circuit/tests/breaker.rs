//! Deterministic transition tests of the circuit breaker on a `ManualClock`, following resilience4j's
//! documented behaviour (CircuitBreaker docs: "equal or greater" thresholds, minimum number of calls,
//! permitted calls in half-open, wait in open state, forced states) where this crate does not document a
//! deliberate difference.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use circuit::{
    Backoff, BuildError, CallError, CircuitBreaker, CircuitBreakerBuilder, Event, Jitter,
    ManualClock, Rejected, SlidingWindow, State, TripReason,
};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const NANO: Duration = Duration::from_nanos(1);

type Log = Arc<Mutex<Vec<Event>>>;

/// A builder on a manual clock whose listener logs every event except rejections.
fn builder() -> (CircuitBreakerBuilder<ManualClock>, ManualClock, Log) {
    let clock = ManualClock::new();
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let builder = CircuitBreaker::builder()
        .name("test")
        .clock(clock.clone())
        .listener(move |event| {
            if !matches!(event, Event::Rejected { .. }) {
                sink.lock().unwrap().push(event.clone());
            }
        });
    (builder, clock, log)
}

fn take(log: &Log) -> Vec<Event> {
    std::mem::take(&mut *log.lock().unwrap())
}

fn transition(from: State, to: State) -> Event {
    Event::StateTransition { from, to }
}

fn succeed(breaker: &CircuitBreaker<ManualClock>) {
    breaker.try_acquire().expect("admitted").success();
}

fn fail(breaker: &CircuitBreaker<ManualClock>) {
    breaker.try_acquire().expect("admitted").failure();
}

/// A call that takes `duration` on `clock` and succeeds.
fn succeed_after(breaker: &CircuitBreaker<ManualClock>, clock: &ManualClock, duration: Duration) {
    let permit = breaker.try_acquire().expect("admitted");
    clock.advance(duration);
    permit.success();
}

fn rejection(breaker: &CircuitBreaker<ManualClock>) -> Rejected {
    breaker.try_acquire().expect_err("rejected")
}

fn open_rejection(retry_after: Duration) -> (State, Option<Duration>) {
    (State::Open, Some(retry_after))
}

fn parts(rejected: Rejected) -> (State, Option<Duration>) {
    (rejected.state(), rejected.retry_after())
}

// ---- consecutive failures ----

#[test]
fn five_consecutive_failures_trip_by_default() {
    let (builder, _clock, log) = builder();
    let breaker = builder.build().unwrap();
    for _ in 0..4 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().consecutive_failures, 4);
    assert!(take(&log).is_empty());
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        take(&log),
        [
            Event::Tripped {
                reason: TripReason::ConsecutiveFailures { count: 5 }
            },
            transition(State::Closed, State::Open),
        ]
    );
    assert_eq!(parts(rejection(&breaker)), open_rejection(SECOND));
}

#[test]
fn a_success_ends_the_failure_streak() {
    let (builder, _clock, _log) = builder();
    let breaker = builder.build().unwrap();
    for _ in 0..4 {
        fail(&breaker);
    }
    succeed(&breaker);
    assert_eq!(breaker.metrics().consecutive_failures, 0);
    for _ in 0..4 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn ignored_calls_do_not_end_the_streak() {
    let (builder, _clock, _log) = builder();
    let breaker = builder.consecutive_failures(2).build().unwrap();
    fail(&breaker);
    breaker.try_acquire().unwrap().ignore();
    drop(breaker.try_acquire().unwrap());
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(breaker.metrics().ignored, 2);
}

#[test]
fn the_consecutive_failure_rule_can_be_turned_off() {
    let (builder, _clock, _log) = builder();
    let breaker = builder.disable_consecutive_failures().build().unwrap();
    for _ in 0..1000 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().consecutive_failures, 1000);
    assert_eq!(breaker.metrics().failures, 1000);
}

// ---- failure rate, count window ----

fn rate_breaker(
    window: SlidingWindow,
    minimum_calls: u32,
) -> (CircuitBreaker<ManualClock>, ManualClock, Log) {
    let (builder, clock, log) = builder();
    let breaker = builder
        .disable_consecutive_failures()
        .failure_rate(0.5)
        .sliding_window(window)
        .minimum_calls(minimum_calls)
        .build()
        .unwrap();
    (breaker, clock, log)
}

#[test]
fn below_the_minimum_number_of_calls_the_rate_is_not_acted_on() {
    let (breaker, _clock, _log) = rate_breaker(SlidingWindow::count(10), 10);
    for _ in 0..9 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::Closed);
    let metrics = breaker.metrics();
    assert_eq!(metrics.failure_rate, None);
    assert_eq!((metrics.window_calls, metrics.window_failures), (9, 9));
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn count_window_trips_at_exactly_the_threshold() {
    let (breaker, _clock, log) = rate_breaker(SlidingWindow::count(10), 10);
    for _ in 0..6 {
        succeed(&breaker);
    }
    for _ in 0..4 {
        fail(&breaker);
    }
    // 4 of 10: below 50 %.
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().failure_rate, Some(0.4));
    // The window slides: the oldest success leaves, 5 of 10 failed, 50 % is "equal or greater".
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        take(&log),
        [
            Event::Tripped {
                reason: TripReason::FailureRate { rate: 0.5 }
            },
            transition(State::Closed, State::Open),
        ]
    );
    // The window is kept while open, for the metrics.
    let metrics = breaker.metrics();
    assert_eq!(metrics.failure_rate, Some(0.5));
    assert_eq!((metrics.window_calls, metrics.window_failures), (10, 5));
}

#[test]
fn count_window_forgets_calls_older_than_its_size() {
    let (breaker, _clock, _log) = rate_breaker(SlidingWindow::count(4), 4);
    fail(&breaker);
    succeed(&breaker);
    // [F S]: rates are not acted on below 4 calls.
    succeed(&breaker);
    succeed(&breaker);
    // [F S S S]
    assert_eq!(breaker.metrics().failure_rate, Some(0.25));
    succeed(&breaker);
    // [S S S S]: the failure has left.
    assert_eq!(breaker.metrics().failure_rate, Some(0.0));
    fail(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn minimum_calls_above_a_count_window_is_lowered_to_its_size() {
    let (breaker, _clock, _log) = rate_breaker(SlidingWindow::count(5), 100);
    for _ in 0..4 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn a_failure_trips_on_the_consecutive_rule_before_the_rate_rule() {
    let (builder, _clock, log) = builder();
    let breaker = builder
        .consecutive_failures(3)
        .failure_rate(0.5)
        .sliding_window(SlidingWindow::count(3))
        .minimum_calls(3)
        .build()
        .unwrap();
    for _ in 0..3 {
        fail(&breaker);
    }
    assert_eq!(
        take(&log)[0],
        Event::Tripped {
            reason: TripReason::ConsecutiveFailures { count: 3 }
        }
    );
}

// ---- slow calls ----

fn slow_breaker(window: SlidingWindow) -> (CircuitBreaker<ManualClock>, ManualClock, Log) {
    let (builder, clock, log) = builder();
    let breaker = builder
        .disable_consecutive_failures()
        .slow_call_rate(0.5)
        .slow_call_duration(SECOND)
        .sliding_window(window)
        .minimum_calls(4)
        .build()
        .unwrap();
    (breaker, clock, log)
}

#[test]
fn count_window_trips_at_exactly_the_slow_call_threshold() {
    let (breaker, clock, log) = slow_breaker(SlidingWindow::count(4));
    succeed_after(&breaker, &clock, SECOND - NANO);
    succeed_after(&breaker, &clock, Duration::ZERO);
    succeed_after(&breaker, &clock, SECOND);
    assert_eq!(breaker.metrics().window_slow_calls, 1);
    // 1 of 4 slow: below 50 %.
    succeed_after(&breaker, &clock, SECOND - NANO);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().slow_call_rate, Some(0.25));
    // The first (fast) call leaves; 2 of 4 slow.
    succeed_after(&breaker, &clock, 5 * SECOND);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        take(&log)[0],
        Event::Tripped {
            reason: TripReason::SlowCallRate { rate: 0.5 }
        }
    );
    let metrics = breaker.metrics();
    assert_eq!(metrics.failure_rate, Some(0.0));
    assert_eq!(metrics.slow_call_rate, Some(0.5));
    assert_eq!(metrics.successes, 5);
}

#[test]
fn a_slow_failure_counts_as_failed_and_slow() {
    let (builder, clock, _log) = builder();
    let breaker = builder
        .failure_rate(1.0)
        .slow_call_rate(1.0)
        .slow_call_duration(SECOND)
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(10)
        .build()
        .unwrap();
    let permit = breaker.try_acquire().unwrap();
    clock.advance(2 * SECOND);
    permit.failure();
    let metrics = breaker.metrics();
    assert_eq!(
        (
            metrics.window_calls,
            metrics.window_failures,
            metrics.window_slow_calls
        ),
        (1, 1, 1)
    );
}

#[test]
fn time_window_trips_at_exactly_the_slow_call_threshold() {
    let (breaker, clock, _log) = slow_breaker(SlidingWindow::time(Duration::from_secs(10)));
    succeed_after(&breaker, &clock, 2 * SECOND);
    succeed_after(&breaker, &clock, MS);
    succeed_after(&breaker, &clock, MS);
    assert_eq!(breaker.state(), State::Closed);
    succeed_after(&breaker, &clock, SECOND);
    assert_eq!(breaker.state(), State::Open);
}

// ---- time window ----

#[test]
fn time_window_trips_at_exactly_the_threshold() {
    let (breaker, clock, log) = rate_breaker(SlidingWindow::time(Duration::from_secs(10)), 4);
    succeed(&breaker);
    succeed(&breaker);
    clock.advance(3 * SECOND);
    fail(&breaker);
    // 3 calls: below the minimum.
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().failure_rate, None);
    clock.advance(3 * SECOND);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        take(&log)[0],
        Event::Tripped {
            reason: TripReason::FailureRate { rate: 0.5 }
        }
    );
}

#[test]
fn time_window_ages_out_old_calls_bucket_by_bucket() {
    let (breaker, clock, _log) = rate_breaker(
        SlidingWindow::time_with_buckets(Duration::from_secs(10), 10),
        4,
    );
    clock.advance(500 * MS);
    fail(&breaker); // period 0
    clock.advance(SECOND);
    fail(&breaker); // period 1
    clock.advance(SECOND);
    succeed(&breaker); // period 2
    assert_eq!(breaker.metrics().window_calls, 3);
    // At 9.999 s the window is periods 0..=9: all three calls.
    clock.set(10 * SECOND - NANO);
    assert_eq!(breaker.metrics().window_calls, 3);
    // At 10 s period 0 leaves.
    clock.set(10 * SECOND);
    let metrics = breaker.metrics();
    assert_eq!((metrics.window_calls, metrics.window_failures), (2, 1));
    clock.set(11 * SECOND);
    assert_eq!(breaker.metrics().window_calls, 1);
    clock.set(12 * SECOND);
    assert_eq!(breaker.metrics().window_calls, 0);
    // Aged-out failures do not count: 2 failures and 2 successes now is 50 %, but 3 failures out of 4 only
    // because the old ones are gone.
    succeed(&breaker);
    succeed(&breaker);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().window_calls, 3);
    // Period 22 reuses the bucket of period 12 (whose three calls have aged out) and starts it from zero.
    clock.set(22 * SECOND);
    fail(&breaker);
    assert_eq!(breaker.metrics().window_calls, 1);
}

// ---- open, half-open, backoff ----

fn tripped(
    configure: impl FnOnce(CircuitBreakerBuilder<ManualClock>) -> CircuitBreakerBuilder<ManualClock>,
) -> (CircuitBreaker<ManualClock>, ManualClock, Log) {
    let (builder, clock, log) = builder();
    let breaker = configure(builder.consecutive_failures(1)).build().unwrap();
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
    take(&log);
    (breaker, clock, log)
}

#[test]
fn open_rejects_until_exactly_the_deadline() {
    let (breaker, clock, log) = tripped(|builder| builder);
    assert_eq!(parts(rejection(&breaker)), open_rejection(SECOND));
    clock.advance(400 * MS);
    assert_eq!(parts(rejection(&breaker)), open_rejection(600 * MS));
    clock.advance(600 * MS - NANO);
    assert_eq!(parts(rejection(&breaker)), open_rejection(NANO));
    // Still open: a state reading does not move it.
    assert_eq!(breaker.state(), State::Open);
    assert!(take(&log).is_empty());
    clock.advance(NANO);
    let probe = breaker.try_acquire().expect("half-open probe");
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(take(&log), [transition(State::Open, State::HalfOpen)]);
    probe.success();
    let metrics = breaker.metrics();
    assert_eq!(metrics.rejected, 3);
    assert_eq!(metrics.times_opened, 1);
}

#[test]
fn half_open_admits_exactly_the_permitted_probes_and_closes_after_enough_successes() {
    let (breaker, clock, log) = tripped(|builder| builder);
    clock.advance(SECOND);
    let first = breaker.try_acquire().unwrap();
    let second = breaker.try_acquire().unwrap();
    assert_eq!(parts(rejection(&breaker)), (State::HalfOpen, None));
    first.success();
    // One success of two: still half-open, and the decided probe keeps its slot.
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(parts(rejection(&breaker)), (State::HalfOpen, None));
    second.success();
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(
        take(&log),
        [
            transition(State::Open, State::HalfOpen),
            transition(State::HalfOpen, State::Closed)
        ]
    );
    // Fresh streak and the backoff restarted: the next opening waits the base delay again.
    assert_eq!(breaker.metrics().consecutive_failures, 0);
    fail(&breaker);
    assert_eq!(parts(rejection(&breaker)), open_rejection(SECOND));
}

#[test]
fn closing_starts_a_fresh_window() {
    let (builder, clock, _log) = builder();
    let breaker = builder
        .disable_consecutive_failures()
        .failure_rate(0.5)
        .sliding_window(SlidingWindow::count(4))
        .minimum_calls(4)
        .half_open_permits(1)
        .successes_to_close(1)
        .build()
        .unwrap();
    for _ in 0..4 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::Open);
    clock.advance(SECOND);
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    let metrics = breaker.metrics();
    assert_eq!(
        (
            metrics.window_calls,
            metrics.window_failures,
            metrics.failure_rate
        ),
        (0, 0, None)
    );
    // Three failures in the fresh window are below the minimum.
    for _ in 0..3 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn a_failed_probe_reopens_with_the_next_backoff_delay_up_to_the_cap() {
    let (breaker, clock, log) = tripped(|builder| builder);
    let expected = [1, 2, 4, 8, 16, 32, 60, 60, 60];
    assert_eq!(parts(rejection(&breaker)), open_rejection(SECOND));
    for (round, pair) in expected.windows(2).enumerate() {
        clock.advance(Duration::from_secs(pair[0]));
        let probe = breaker.try_acquire().expect("probe");
        probe.failure();
        assert_eq!(breaker.state(), State::Open, "round {round}");
        assert_eq!(
            parts(rejection(&breaker)),
            open_rejection(Duration::from_secs(pair[1])),
            "round {round}"
        );
        assert_eq!(
            take(&log),
            [
                transition(State::Open, State::HalfOpen),
                transition(State::HalfOpen, State::Open)
            ]
        );
    }
    assert_eq!(breaker.metrics().times_opened, expected.len() as u64);
}

#[test]
fn open_wait_follows_a_custom_backoff() {
    let backoff = Backoff::exponential(100 * MS, SECOND)
        .unwrap()
        .with_factor(3.0)
        .unwrap();
    let (breaker, clock, _log) = tripped(|builder| builder.open_wait(backoff));
    for wait in [100, 300, 900, 1000] {
        let wait = wait * MS;
        assert_eq!(parts(rejection(&breaker)), open_rejection(wait));
        clock.advance(wait);
        breaker.try_acquire().unwrap().failure();
    }
}

#[test]
fn jittered_open_waits_stay_within_the_backoff_bounds() {
    for jitter in [Jitter::Full, Jitter::Decorrelated] {
        let backoff = Backoff::exponential(100 * MS, 2 * SECOND)
            .unwrap()
            .with_jitter(jitter);
        let (breaker, clock, _log) = tripped(|builder| builder.open_wait(backoff));
        for attempt in 0..20 {
            let wait = rejection(&breaker).retry_after().expect("open");
            let (low, high) = match jitter {
                Jitter::Full => (Duration::ZERO, backoff.ceiling(attempt)),
                _ => (100 * MS, 2 * SECOND),
            };
            assert!(
                (low..=high).contains(&wait),
                "{jitter:?} attempt {attempt}: {wait:?}"
            );
            clock.advance(wait);
            breaker.try_acquire().unwrap().failure();
        }
    }
}

#[test]
fn with_more_permits_than_successes_needed_a_failure_is_tolerated() {
    // permits 3, successes 2: closing stays possible after one failure, not after two.
    let (breaker, clock, log) = tripped(|builder| builder.half_open_permits(3));
    clock.advance(SECOND);
    take(&log);
    let probes: Vec<_> = (0..3).map(|_| breaker.try_acquire().unwrap()).collect();
    assert_eq!(parts(rejection(&breaker)), (State::HalfOpen, None));
    let mut probes = probes.into_iter();
    probes.next().unwrap().failure();
    assert_eq!(breaker.state(), State::HalfOpen);
    probes.next().unwrap().failure();
    assert_eq!(breaker.state(), State::Open);
    // The last probe's verdict belongs to the finished round: it changes nothing.
    probes.next().unwrap().success();
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(parts(rejection(&breaker)), open_rejection(2 * SECOND));

    clock.advance(2 * SECOND);
    let probes: Vec<_> = (0..3).map(|_| breaker.try_acquire().unwrap()).collect();
    let mut probes = probes.into_iter();
    probes.next().unwrap().success();
    probes.next().unwrap().failure();
    assert_eq!(breaker.state(), State::HalfOpen);
    probes.next().unwrap().success();
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn a_dropped_or_ignored_probe_gives_its_slot_back() {
    let (breaker, clock, _log) = tripped(|builder| builder);
    clock.advance(SECOND);
    let first = breaker.try_acquire().unwrap();
    let second = breaker.try_acquire().unwrap();
    rejection(&breaker);
    drop(first);
    let third = breaker.try_acquire().expect("the dropped probe's slot");
    rejection(&breaker);
    second.ignore();
    let fourth = breaker.try_acquire().expect("the ignored probe's slot");
    rejection(&breaker);
    third.success();
    assert_eq!(breaker.state(), State::HalfOpen);
    fourth.success();
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().ignored, 2);
}

#[test]
fn a_slow_probe_is_a_failed_probe() {
    let (builder, clock, _log) = builder();
    let breaker = builder
        .consecutive_failures(1)
        .slow_call_rate(1.0)
        .slow_call_duration(SECOND)
        .build()
        .unwrap();
    fail(&breaker);
    clock.advance(SECOND);
    succeed_after(&breaker, &clock, SECOND);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(parts(rejection(&breaker)), open_rejection(2 * SECOND));
}

// ---- stale generations ----

#[test]
fn a_verdict_from_an_earlier_generation_is_not_a_probe() {
    let (builder, clock, _log) = builder();
    let breaker = builder.consecutive_failures(1).build().unwrap();
    let late = breaker.try_acquire().unwrap();
    let late_too = breaker.try_acquire().unwrap();
    fail(&breaker);
    clock.advance(SECOND);
    let probe = breaker.try_acquire().unwrap();
    assert_eq!(breaker.state(), State::HalfOpen);
    // Two successes would close a half-open breaker, but these permits were issued while closed.
    late.success();
    late_too.success();
    assert_eq!(breaker.state(), State::HalfOpen);
    // Their failures do not re-open it either.
    probe.success();
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(breaker.metrics().successes, 3);
}

#[test]
fn a_verdict_from_an_earlier_generation_is_not_recorded_in_the_new_window() {
    let (builder, clock, _log) = builder();
    let breaker = builder
        .consecutive_failures(2)
        .failure_rate(1.0)
        .sliding_window(SlidingWindow::count(10))
        .build()
        .unwrap();
    let late = breaker.try_acquire().unwrap();
    fail(&breaker);
    fail(&breaker);
    clock.advance(SECOND);
    succeed(&breaker);
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    late.failure();
    let metrics = breaker.metrics();
    assert_eq!((metrics.window_calls, metrics.consecutive_failures), (0, 0));
    assert_eq!(metrics.failures, 3);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn a_probe_from_an_earlier_half_open_round_is_stale() {
    let (breaker, clock, _log) = tripped(|builder| builder);
    clock.advance(SECOND);
    let old_probe = breaker.try_acquire().unwrap();
    breaker.try_acquire().unwrap().failure();
    clock.advance(2 * SECOND);
    let probe = breaker.try_acquire().unwrap();
    // The earlier round's probe neither fails the new round nor takes back a slot of it.
    old_probe.failure();
    assert_eq!(breaker.state(), State::HalfOpen);
    let second = breaker.try_acquire().unwrap();
    rejection(&breaker);
    probe.success();
    second.success();
    assert_eq!(breaker.state(), State::Closed);
}

// ---- forced states and reset ----

#[test]
fn forced_open_rejects_everything_until_reset() {
    let (builder, clock, log) = builder();
    let breaker = builder.build().unwrap();
    let earlier = breaker.try_acquire().unwrap();
    breaker.force_open();
    breaker.force_open();
    assert_eq!(breaker.state(), State::ForcedOpen);
    assert_eq!(parts(rejection(&breaker)), (State::ForcedOpen, None));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(parts(rejection(&breaker)), (State::ForcedOpen, None));
    earlier.failure();
    breaker.reset();
    assert_eq!(breaker.state(), State::Closed);
    succeed(&breaker);
    assert_eq!(
        take(&log),
        [
            transition(State::Closed, State::ForcedOpen),
            transition(State::ForcedOpen, State::Closed),
            Event::Reset {
                from: State::ForcedOpen
            },
        ]
    );
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.rejected, metrics.failures, metrics.successes),
        (2, 1, 1)
    );
    assert_eq!(metrics.times_opened, 0);
}

#[test]
fn forced_closed_records_but_never_trips() {
    let (builder, _clock, log) = builder();
    let breaker = builder
        .failure_rate(0.5)
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(10)
        .build()
        .unwrap();
    fail(&breaker);
    breaker.force_closed();
    // The window starts empty.
    assert_eq!(breaker.metrics().window_calls, 0);
    for _ in 0..100 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::ForcedClosed);
    let metrics = breaker.metrics();
    assert_eq!(metrics.failure_rate, Some(1.0));
    assert_eq!(metrics.consecutive_failures, 100);
    assert_eq!(metrics.failures, 101);
    breaker.reset();
    assert_eq!(breaker.metrics().window_calls, 0);
    assert_eq!(
        take(&log),
        [
            transition(State::Closed, State::ForcedClosed),
            transition(State::ForcedClosed, State::Closed),
            Event::Reset {
                from: State::ForcedClosed
            },
        ]
    );
}

#[test]
fn disabled_admits_everything_and_records_nothing() {
    let (builder, _clock, _log) = builder();
    let breaker = builder
        .failure_rate(0.5)
        .sliding_window(SlidingWindow::count(10))
        .build()
        .unwrap();
    succeed(&breaker);
    breaker.disable();
    let before = breaker.metrics();
    for _ in 0..100 {
        fail(&breaker);
    }
    breaker.try_acquire().unwrap().ignore();
    drop(breaker.try_acquire().unwrap());
    let mut after = breaker.metrics();
    assert_eq!(after.state, State::Disabled);
    after.state = before.state;
    assert_eq!(after, before);
}

#[test]
fn reset_from_open_closes_and_restarts_the_backoff() {
    let (breaker, clock, log) = tripped(|builder| builder);
    clock.advance(SECOND);
    breaker.try_acquire().unwrap().failure();
    assert_eq!(parts(rejection(&breaker)), open_rejection(2 * SECOND));
    take(&log);
    breaker.reset();
    assert_eq!(
        take(&log),
        [
            transition(State::Open, State::Closed),
            Event::Reset { from: State::Open }
        ]
    );
    fail(&breaker);
    assert_eq!(parts(rejection(&breaker)), open_rejection(SECOND));
    // A reset while closed is an event but no transition.
    breaker.reset();
    breaker.reset();
    assert_eq!(
        take(&log)[2..],
        [
            transition(State::Open, State::Closed),
            Event::Reset { from: State::Open },
            Event::Reset {
                from: State::Closed
            }
        ]
    );
}

#[test]
fn forced_states_chain_with_one_event_each() {
    let (builder, _clock, log) = builder();
    let breaker = builder.build().unwrap();
    breaker.force_closed();
    breaker.disable();
    breaker.force_open();
    breaker.force_closed();
    assert_eq!(
        take(&log),
        [
            transition(State::Closed, State::ForcedClosed),
            transition(State::ForcedClosed, State::Disabled),
            transition(State::Disabled, State::ForcedOpen),
            transition(State::ForcedOpen, State::ForcedClosed),
        ]
    );
}

// ---- events and metrics ----

#[test]
fn the_listener_sees_rejections_and_transitions_in_order() {
    let clock = ManualClock::new();
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let breaker = CircuitBreaker::builder()
        .clock(clock.clone())
        .consecutive_failures(2)
        .half_open_permits(1)
        .successes_to_close(1)
        .listener(move |event| sink.lock().unwrap().push(event.clone()))
        .build()
        .unwrap();
    fail(&breaker);
    fail(&breaker);
    rejection(&breaker);
    clock.advance(SECOND);
    let probe = breaker.try_acquire().unwrap();
    rejection(&breaker);
    probe.success();
    breaker.force_open();
    rejection(&breaker);
    assert_eq!(
        take(&log),
        [
            Event::Tripped {
                reason: TripReason::ConsecutiveFailures { count: 2 }
            },
            transition(State::Closed, State::Open),
            Event::Rejected { state: State::Open },
            transition(State::Open, State::HalfOpen),
            Event::Rejected {
                state: State::HalfOpen
            },
            transition(State::HalfOpen, State::Closed),
            transition(State::Closed, State::ForcedOpen),
            Event::Rejected {
                state: State::ForcedOpen
            },
        ]
    );
}

#[test]
fn a_listener_may_call_the_breaker() {
    // The listener runs outside the lock: it can read metrics and even force a state.
    let breaker: Arc<Mutex<Option<Arc<CircuitBreaker<ManualClock>>>>> = Arc::default();
    let handle = Arc::clone(&breaker);
    let seen: Log = Arc::default();
    let sink = Arc::clone(&seen);
    let built = Arc::new(
        CircuitBreaker::builder()
            .clock(ManualClock::new())
            .consecutive_failures(1)
            .listener(move |event| {
                sink.lock().unwrap().push(event.clone());
                if let Event::StateTransition {
                    to: State::Open, ..
                } = event
                {
                    let breaker = handle.lock().unwrap().clone().unwrap();
                    assert_eq!(breaker.metrics().times_opened, 1);
                    breaker.force_open();
                }
            })
            .build()
            .unwrap(),
    );
    *breaker.lock().unwrap() = Some(Arc::clone(&built));
    fail(&built);
    assert_eq!(built.state(), State::ForcedOpen);
    assert_eq!(
        take(&seen)[1..],
        [
            transition(State::Closed, State::Open),
            transition(State::Open, State::ForcedOpen)
        ]
    );
    // Break the cycle breaker -> listener -> breaker.
    breaker.lock().unwrap().take();
}

#[test]
fn metrics_report_every_counter() {
    let (builder, clock, _log) = builder();
    let breaker = builder
        .consecutive_failures(3)
        .failure_rate(0.9)
        .slow_call_rate(0.9)
        .slow_call_duration(SECOND)
        .sliding_window(SlidingWindow::count(8))
        .minimum_calls(4)
        .build()
        .unwrap();
    let fresh = breaker.metrics();
    assert_eq!(fresh.state, State::Closed);
    assert_eq!((fresh.failure_rate, fresh.slow_call_rate), (None, None));
    succeed(&breaker);
    succeed_after(&breaker, &clock, 2 * SECOND);
    fail(&breaker);
    fail(&breaker);
    breaker.try_acquire().unwrap().ignore();
    let metrics = breaker.metrics();
    assert_eq!(metrics.failure_rate, Some(0.5));
    assert_eq!(metrics.slow_call_rate, Some(0.25));
    assert_eq!(
        (
            metrics.window_calls,
            metrics.window_failures,
            metrics.window_slow_calls
        ),
        (4, 2, 1)
    );
    assert_eq!(metrics.consecutive_failures, 2);
    assert_eq!(
        (
            metrics.successes,
            metrics.failures,
            metrics.ignored,
            metrics.rejected
        ),
        (2, 2, 1, 0)
    );
    fail(&breaker);
    rejection(&breaker);
    let metrics = breaker.metrics();
    assert_eq!(metrics.state, State::Open);
    assert_eq!((metrics.rejected, metrics.times_opened), (1, 1));
}

#[test]
fn without_a_rate_rule_no_window_is_kept() {
    let (builder, _clock, _log) = builder();
    let breaker = builder.build().unwrap();
    fail(&breaker);
    succeed(&breaker);
    let metrics = breaker.metrics();
    assert_eq!((metrics.window_calls, metrics.failure_rate), (0, None));
    assert_eq!((metrics.successes, metrics.failures), (1, 1));
}

// ---- builder validation ----

fn build_error(
    configure: impl FnOnce(CircuitBreakerBuilder<ManualClock>) -> CircuitBreakerBuilder<ManualClock>,
) -> BuildError {
    configure(CircuitBreaker::builder().clock(ManualClock::new()))
        .build()
        .expect_err("invalid")
}

#[test]
fn every_invalid_setting_names_its_field() {
    for value in [0.0, -0.1, 1.01, f64::NAN, f64::INFINITY] {
        match build_error(|b| b.failure_rate(value)) {
            BuildError::RateOutOfRange { field, .. } => assert_eq!(field, "failure_rate"),
            other => panic!("{other:?}"),
        }
        match build_error(|b| b.slow_call_rate(value)) {
            BuildError::RateOutOfRange { field, .. } => assert_eq!(field, "slow_call_rate"),
            other => panic!("{other:?}"),
        }
    }
    let zero = |field| BuildError::Zero { field };
    assert_eq!(
        build_error(|b| b.consecutive_failures(0)),
        zero("consecutive_failures")
    );
    assert_eq!(
        build_error(|b| b.slow_call_duration(Duration::ZERO)),
        zero("slow_call_duration")
    );
    for window in [
        SlidingWindow::count(0),
        SlidingWindow::time(Duration::ZERO),
        SlidingWindow::time_with_buckets(SECOND, 0),
    ] {
        assert_eq!(
            build_error(|b| b.sliding_window(window)),
            zero("sliding_window")
        );
    }
    assert_eq!(
        build_error(|b| b.sliding_window(SlidingWindow::count(65_537))),
        BuildError::TooLarge {
            field: "sliding_window",
            value: 65_537,
            max: 65_536
        }
    );
    assert_eq!(
        build_error(|b| b.sliding_window(SlidingWindow::time_with_buckets(SECOND, 65_537))),
        BuildError::TooLarge {
            field: "sliding_window",
            value: 65_537,
            max: 65_536
        }
    );
    assert_eq!(
        build_error(|b| b.sliding_window(SlidingWindow::time_with_buckets(
            Duration::from_nanos(10),
            11
        ))),
        BuildError::TooLarge {
            field: "sliding_window",
            value: 11,
            max: 10
        }
    );
    assert_eq!(build_error(|b| b.minimum_calls(0)), zero("minimum_calls"));
    assert_eq!(
        build_error(|b| b.half_open_permits(0)),
        zero("half_open_permits")
    );
    assert_eq!(
        build_error(|b| b.half_open_permits(4096).successes_to_close(1)),
        BuildError::TooLarge {
            field: "half_open_permits",
            value: 4096,
            max: 4095
        }
    );
    assert_eq!(
        build_error(|b| b.successes_to_close(0)),
        zero("successes_to_close")
    );
    assert_eq!(
        build_error(|b| b.half_open_permits(2).successes_to_close(3)),
        BuildError::Exceeds {
            field: "successes_to_close",
            value: 3,
            limit_field: "half_open_permits",
            limit: 2
        }
    );
    // The largest accepted values build.
    CircuitBreaker::builder()
        .clock(ManualClock::new())
        .failure_rate(1.0)
        .slow_call_rate(f64::MIN_POSITIVE)
        .sliding_window(SlidingWindow::count(65_536))
        .half_open_permits(4095)
        .successes_to_close(4095)
        .build()
        .unwrap();
    let error = build_error(|b| b.failure_rate(2.0));
    assert!(error.to_string().contains("failure_rate"), "{error}");
}

// ---- call helpers ----

#[test]
fn call_counts_err_as_failure_and_passes_values_through() {
    let (builder, _clock, _log) = builder();
    let breaker = builder.consecutive_failures(2).build().unwrap();
    assert_eq!(breaker.call(|| Ok::<_, &str>(7)), Ok(7));
    assert_eq!(
        breaker.call(|| Err::<u8, _>("down")),
        Err(CallError::Inner("down"))
    );
    assert_eq!(
        breaker.call(|| Err::<u8, _>("down")),
        Err(CallError::Inner("down"))
    );
    let mut ran = false;
    let rejected = breaker.call(|| {
        ran = true;
        Ok::<_, &str>(())
    });
    assert!(!ran);
    match rejected {
        Err(CallError::Rejected(rejected)) => assert_eq!(rejected.state(), State::Open),
        other => panic!("{other:?}"),
    }
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.successes, metrics.failures, metrics.rejected),
        (1, 2, 1)
    );
}

#[test]
fn call_with_counts_non_failures_as_successes() {
    let (builder, _clock, _log) = builder();
    let breaker = builder.consecutive_failures(2).build().unwrap();
    let is_failure = |status: &u16| *status >= 500;
    fail(&breaker);
    // A 404 says the service answered: it ends the streak.
    assert_eq!(
        breaker.call_with(is_failure, || Err::<(), _>(404)),
        Err(CallError::Inner(404))
    );
    assert_eq!(breaker.metrics().consecutive_failures, 0);
    assert_eq!(
        breaker.call_with(is_failure, || Err::<(), _>(503)),
        Err(CallError::Inner(503))
    );
    assert_eq!(breaker.state(), State::Closed);
    let _ = breaker.call_with(is_failure, || Err::<(), _>(500));
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(breaker.metrics().successes, 1);
}

#[test]
fn a_panicking_call_counts_as_ignored() {
    let (builder, clock, _log) = builder();
    let breaker = builder.consecutive_failures(1).build().unwrap();
    fail(&breaker);
    clock.advance(SECOND);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        breaker.call(|| -> Result<(), ()> { panic!("boom") })
    }));
    assert!(panicked.is_err());
    assert_eq!(breaker.metrics().ignored, 1);
    // The probe's slot came back: two probes are still available.
    let _first = breaker.try_acquire().unwrap();
    let _second = breaker.try_acquire().unwrap();
}

/// Polls `future` to completion on this thread (the futures here complete without waking).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// Pending on its first poll, ready with `value` on the second.
struct YieldOnce<T>(Option<T>, bool);

impl<T: Unpin> Future for YieldOnce<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<T> {
        if self.1 {
            Poll::Ready(self.0.take().expect("polled after completion"))
        } else {
            self.1 = true;
            context.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[test]
fn call_async_records_the_future_outcome() {
    let (builder, _clock, _log) = builder();
    let breaker = builder.consecutive_failures(2).build().unwrap();
    assert_eq!(
        block_on(breaker.call_async(YieldOnce(Some(Ok::<_, ()>(1)), false))),
        Ok(1)
    );
    assert_eq!(
        block_on(breaker.call_async(async { Err::<(), _>("down") })),
        Err(CallError::Inner("down"))
    );
    assert_eq!(
        block_on(breaker.call_async_with(|_: &&str| false, async { Err::<(), _>("fine") })),
        Err(CallError::Inner("fine"))
    );
    let _ = block_on(breaker.call_async(async { Err::<(), _>("down") }));
    assert_eq!(breaker.metrics().consecutive_failures, 1);
    let _ = block_on(breaker.call_async(async { Err::<(), _>("down") }));
    assert!(
        block_on(breaker.call_async(async { Ok::<_, ()>(()) }))
            .unwrap_err()
            .is_rejected()
    );
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.successes, metrics.failures, metrics.rejected),
        (2, 3, 1)
    );
}

#[test]
fn dropping_call_async_midway_counts_as_ignored() {
    let (builder, clock, _log) = builder();
    let breaker = builder.consecutive_failures(1).build().unwrap();
    fail(&breaker);
    clock.advance(SECOND);
    {
        let mut future =
            std::pin::pin!(breaker.call_async(std::future::pending::<Result<(), ()>>()));
        let mut context = Context::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut context).is_pending());
        assert_eq!(breaker.state(), State::HalfOpen);
    }
    assert_eq!(breaker.metrics().ignored, 1);
    let _first = breaker.try_acquire().unwrap();
    let _second = breaker.try_acquire().unwrap();
}

#[tokio::test]
async fn call_async_on_tokio() {
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .consecutive_failures(1)
            .build()
            .unwrap(),
    );
    let shared = Arc::clone(&breaker);
    let value = tokio::spawn(async move {
        shared
            .call_async(async {
                tokio::task::yield_now().await;
                Ok::<_, ()>(5)
            })
            .await
    })
    .await
    .unwrap();
    assert_eq!(value, Ok(5));
    let permit = breaker.try_acquire_owned().unwrap();
    tokio::spawn(async move { permit.failure() }).await.unwrap();
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn owned_permits_work_like_borrowed_ones() {
    let clock = ManualClock::new();
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .clock(clock.clone())
            .consecutive_failures(1)
            .half_open_permits(1)
            .successes_to_close(1)
            .build()
            .unwrap(),
    );
    breaker.try_acquire_owned().unwrap().failure();
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        breaker.try_acquire_owned().unwrap_err().retry_after(),
        Some(SECOND)
    );
    clock.advance(SECOND);
    let probe = breaker.try_acquire_owned().unwrap();
    assert!(breaker.try_acquire_owned().is_err());
    drop(probe);
    let probe = breaker.try_acquire_owned().unwrap();
    assert!(format!("{probe:?}").contains("HalfOpen"));
    std::thread::spawn(move || probe.success()).join().unwrap();
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().ignored, 1);
}

#[test]
fn the_default_breaker_uses_the_documented_defaults() {
    let breaker = CircuitBreaker::new();
    assert_eq!(breaker.name(), "circuit-breaker");
    for _ in 0..4 {
        breaker.try_acquire().unwrap().failure();
    }
    assert_eq!(breaker.state(), State::Closed);
    breaker.try_acquire().unwrap().failure();
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(rejected.state(), State::Open);
    // The deadline was set from the precise clock and is compared with the coarse one, which lags it by a
    // tick (a few milliseconds): the wait reported can exceed a second by that much.
    let wait = rejected.retry_after().unwrap();
    assert!(
        wait > SECOND - Duration::from_millis(500) && wait <= SECOND + Duration::from_millis(50),
        "{wait:?}"
    );
}
