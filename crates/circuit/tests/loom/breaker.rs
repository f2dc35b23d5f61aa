//! Circuit-breaker models: half-open never admits more probes than permitted (with the open → half-open move
//! itself raced), a trip raced by two failing threads is one transition, and a thread that sees `Open` sees
//! that opening's deadline.
//!
//! Every racing actor is a spawned thread (the model's main thread only sets up and joins): with the main
//! thread as one of the actors, loom 0.7 explored a single interleaving of the deadline model, so a broken
//! ordering went unnoticed.
//!
//! Handles are `std::sync::Arc` because the owned API takes one (loom's `Arc` cannot be a method receiver);
//! every atomic and the lock inside the breaker, and the manual clock, are loom's.

use std::sync::Arc;
use std::time::Duration;

use circuit::{CircuitBreaker, CircuitBreakerBuilder, Event, ManualClock, State};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

const SECOND: Duration = Duration::from_secs(1);

fn builder(clock: &ManualClock) -> CircuitBreakerBuilder<ManualClock> {
    CircuitBreaker::builder()
        .clock(clock.clone())
        .consecutive_failures(1)
}

/// A breaker tripped on its one failure, its open wait over: the next `try_acquire` moves it to half-open.
fn due_for_half_open(
    permits: u32,
    successes: u32,
) -> (Arc<CircuitBreaker<ManualClock>>, ManualClock) {
    let clock = ManualClock::new();
    let breaker = builder(&clock)
        .half_open_permits(permits)
        .successes_to_close(successes)
        .build()
        .unwrap();
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), State::Open);
    clock.advance(SECOND);
    (Arc::new(breaker), clock)
}

/// Threads race to move an open breaker to half-open and take probes: never more than `permits` at once,
/// exactly `permits` probes in all (a probe's slot is only returned when it is ignored), and the verdicts
/// decide the round. A thread that comes after the round is decided finds it closed (admitted) or re-opened
/// (rejected with the next, two-second wait).
///
/// With `already_half_open`, the setup moves the breaker to half-open first (taking a probe and ignoring it),
/// so that the threads race only for the probe slots: three threads racing the transition too is too many
/// interleavings for the time budget, and two threads cover that race.
fn probes_never_exceed_permits(
    threads: usize,
    permits: u32,
    successes: u32,
    fail: bool,
    already_half_open: bool,
) {
    loom::model(move || {
        let (breaker, _clock) = due_for_half_open(permits, successes);
        if already_half_open {
            breaker.try_acquire().unwrap().ignore();
            assert_eq!(breaker.state(), State::HalfOpen);
        }
        let probes = Arc::new(AtomicUsize::new(0));
        let admitted = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (breaker, probes, admitted) =
                    (breaker.clone(), probes.clone(), admitted.clone());
                thread::spawn(move || match breaker.try_acquire() {
                    Ok(permit) if permit.state() == State::HalfOpen => {
                        let now = probes.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(
                            now <= permits as usize,
                            "{now} probes with {permits} permits"
                        );
                        admitted.fetch_add(1, Ordering::SeqCst);
                        probes.fetch_sub(1, Ordering::SeqCst);
                        if fail {
                            permit.failure();
                        } else {
                            permit.success();
                        }
                    }
                    Ok(permit) => {
                        assert!(!fail, "admitted after a failed round");
                        assert_eq!(permit.state(), State::Closed);
                        permit.success();
                    }
                    Err(rejected) => match rejected.state() {
                        State::HalfOpen => assert_eq!(rejected.retry_after(), None),
                        State::Open => {
                            assert!(fail, "re-opened after a successful round");
                            assert_eq!(rejected.retry_after(), Some(2 * SECOND));
                        }
                        other => panic!("rejected in {other:?}"),
                    },
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::SeqCst), permits as usize);
        let expected = if fail { State::Open } else { State::Closed };
        assert_eq!(breaker.state(), expected);
        assert_eq!(breaker.metrics().times_opened, if fail { 2 } else { 1 });
    });
}

#[test]
fn one_permit_two_threads_failing_probe_reopens() {
    probes_never_exceed_permits(2, 1, 1, true, false);
}

#[test]
fn two_permits_three_threads_successful_probes_close() {
    probes_never_exceed_permits(3, 2, 2, false, true);
}

#[test]
fn two_permits_two_threads_racing_the_transition_close() {
    probes_never_exceed_permits(2, 2, 2, false, false);
}

/// An ignored probe gives its slot back while another thread takes one: still never more than one probe.
#[test]
fn an_ignored_probe_returns_its_slot_to_a_racing_acquire() {
    loom::model(|| {
        let (breaker, _clock) = due_for_half_open(1, 1);
        let first = breaker.try_acquire_owned().unwrap();
        let probes = Arc::new(AtomicUsize::new(1));
        let ignorer = {
            let probes = probes.clone();
            thread::spawn(move || {
                probes.fetch_sub(1, Ordering::SeqCst);
                first.ignore();
            })
        };
        let other = {
            let (breaker, probes) = (breaker.clone(), probes.clone());
            thread::spawn(move || {
                if let Ok(permit) = breaker.try_acquire() {
                    let now = probes.fetch_add(1, Ordering::SeqCst) + 1;
                    assert_eq!(now, 1, "two probes with one permit");
                    probes.fetch_sub(1, Ordering::SeqCst);
                    permit.success();
                    true
                } else {
                    false
                }
            })
        };
        ignorer.join().unwrap();
        let other_probed = other.join().unwrap();
        let expected = if other_probed {
            State::Closed
        } else {
            State::HalfOpen
        };
        assert_eq!(breaker.state(), expected);
    });
}

/// Two permits of one closed generation fail at once, each reaching the threshold: one `Closed` → `Open`
/// transition, one opening.
#[test]
fn a_trip_raced_by_two_failures_is_one_transition() {
    loom::model(|| {
        let clock = ManualClock::new();
        let openings = Arc::new(AtomicUsize::new(0));
        let counter = openings.clone();
        let breaker = Arc::new(
            builder(&clock)
                .listener(move |event| {
                    if *event
                        == (Event::StateTransition {
                            from: State::Closed,
                            to: State::Open,
                        })
                    {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .build()
                .unwrap(),
        );
        let permits = [
            breaker.try_acquire_owned().unwrap(),
            breaker.try_acquire_owned().unwrap(),
        ];
        let handles: Vec<_> = permits
            .into_iter()
            .map(|permit| thread::spawn(move || permit.failure()))
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(openings.load(Ordering::SeqCst), 1);
        assert_eq!(breaker.metrics().times_opened, 1);
        assert_eq!(breaker.state(), State::Open);
    });
}

/// One thread trips the breaker while another asks for a permit: if it sees `Open` it sees the deadline
/// written for that opening (a whole second away), never the stale one, which would let it through early.
#[test]
fn a_thread_that_sees_open_sees_its_deadline() {
    loom::model(|| {
        let clock = ManualClock::new();
        let breaker = Arc::new(builder(&clock).build().unwrap());
        let permit = breaker.try_acquire_owned().unwrap();
        let tripper = thread::spawn(move || permit.failure());
        let asker = {
            let breaker = breaker.clone();
            thread::spawn(move || match breaker.try_acquire() {
                Ok(permit) => {
                    assert_eq!(permit.state(), State::Closed, "admitted early");
                    permit.ignore();
                }
                Err(rejected) => {
                    assert_eq!(rejected.state(), State::Open);
                    assert_eq!(rejected.retry_after(), Some(SECOND));
                }
            })
        };
        tripper.join().unwrap();
        asker.join().unwrap();
        assert_eq!(breaker.state(), State::Open);
    });
}
