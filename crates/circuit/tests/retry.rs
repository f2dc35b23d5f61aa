//! `Retry`: attempts counted exactly, the retryable predicate, the time cap on a `ManualClock`, the delays
//! handed to the sleep, the hook, the error's contents and message, the builder's errors, and the async forms
//! (a hand-driven one with a manual sleep, and tokio's with paused time). Nothing here waits for real: every
//! sleep is a function that records the delay (and advances a `ManualClock` where time matters), tokio's
//! paused clock, or (one test of `call` and `call_if`) a zero-length `thread::sleep`. Everything runs under Miri too (the tokio tests included: paused time needs no OS timer).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use circuit::{
    Backoff, BuildError, Clock, GaveUp, Jitter, ManualClock, Retry, RetryError, SystemClock,
};

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// A retry with `max_attempts` and a constant delay, on a manual clock.
fn constant_retry(max_attempts: u32, delay: Duration, clock: &ManualClock) -> Retry<ManualClock> {
    Retry::builder()
        .max_attempts(max_attempts)
        .backoff(Backoff::constant(delay))
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Polls `future` once; every future in these tests that uses it is ready at once.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

fn ready<T>(poll: Poll<T>) -> T {
    match poll {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the retry future should have finished in one poll"),
    }
}

#[test]
fn succeeds_on_attempt_k_after_exactly_k_attempts() {
    let clock = ManualClock::new();
    let retry = constant_retry(5, ms(10), &clock);
    for k in 1..=5 {
        let seen = RefCell::new(Vec::new());
        let sleeps = RefCell::new(Vec::new());
        let result = retry.call_with_sleep(
            |attempt| {
                seen.borrow_mut().push(attempt);
                if attempt < k {
                    Err(attempt)
                } else {
                    Ok(attempt * 100)
                }
            },
            |_| true,
            |delay| sleeps.borrow_mut().push(delay),
        );
        assert_eq!(result, Ok(k * 100), "k = {k}");
        assert_eq!(
            *seen.borrow(),
            (1..=k).collect::<Vec<_>>(),
            "attempt numbers, k = {k}"
        );
        assert_eq!(
            sleeps.borrow().len(),
            (k - 1) as usize,
            "one sleep between attempts, k = {k}"
        );
    }
}

#[test]
fn exhausts_at_max_attempts_with_the_last_error() {
    let clock = ManualClock::new();
    for max_attempts in [1, 2, 4, 7] {
        let retry = constant_retry(max_attempts, ms(10), &clock);
        let calls = Cell::new(0);
        let sleeps = Cell::new(0);
        let error = retry
            .call_with_sleep(
                |attempt| {
                    calls.set(calls.get() + 1);
                    Err::<(), _>(format!("failure {attempt}"))
                },
                |_| true,
                |_| sleeps.set(sleeps.get() + 1),
            )
            .unwrap_err();
        assert_eq!(error.attempts(), max_attempts);
        assert_eq!(error.reason(), GaveUp::MaxAttempts);
        assert_eq!(error.error(), &format!("failure {max_attempts}"));
        assert_eq!(error.into_inner(), format!("failure {max_attempts}"));
        assert_eq!(calls.get(), max_attempts);
        assert_eq!(
            sleeps.get(),
            max_attempts - 1,
            "no sleep after the last attempt"
        );
    }
}

#[test]
fn call_and_call_if_retry_with_real_but_tiny_sleeps() {
    let retry = Retry::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::ZERO))
        .build()
        .unwrap();
    assert_eq!(
        retry.call(|attempt| if attempt < 3 {
            Err(attempt)
        } else {
            Ok(attempt)
        }),
        Ok(3)
    );
    let error = retry.call(Err::<(), u32>).unwrap_err();
    assert_eq!((error.attempts(), error.reason()), (3, GaveUp::MaxAttempts));
    let error = retry
        .call_if(Err::<(), u32>, |&error| error < 2)
        .unwrap_err();
    assert_eq!(
        (error.attempts(), error.reason()),
        (2, GaveUp::NotRetryable)
    );
}

#[test]
fn non_retryable_error_stops_at_once() {
    let clock = ManualClock::new();
    let retry = constant_retry(10, ms(10), &clock);
    let judged = RefCell::new(Vec::new());
    let sleeps = Cell::new(0);
    // Attempts 1 and 2 fail with retryable errors, attempt 3 with one that is not.
    let error = retry
        .call_with_sleep(
            |attempt| Err::<(), _>((attempt, attempt < 3)),
            |&(attempt, retryable)| {
                judged.borrow_mut().push(attempt);
                retryable
            },
            |_| sleeps.set(sleeps.get() + 1),
        )
        .unwrap_err();
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.reason(), GaveUp::NotRetryable);
    assert_eq!(error.into_inner(), (3, false));
    assert_eq!(*judged.borrow(), [1, 2, 3], "every error is judged once");
    assert_eq!(sleeps.get(), 2);
}

#[test]
fn non_retryable_wins_over_attempts_exhausted() {
    // The predicate is asked first, so the reason says the error itself was not retryable.
    let clock = ManualClock::new();
    let retry = constant_retry(1, ms(10), &clock);
    let error = retry
        .call_with_sleep(|_| Err::<(), _>("fatal"), |_| false, |_| panic!("no sleep"))
        .unwrap_err();
    assert_eq!(
        (error.attempts(), error.reason()),
        (1, GaveUp::NotRetryable)
    );
}

#[test]
fn a_delay_that_would_overshoot_the_time_cap_is_not_taken() {
    let clock = ManualClock::new();
    let retry = Retry::builder()
        .max_attempts(100)
        .max_elapsed(ms(1000))
        .backoff(Backoff::constant(ms(200)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let starts = RefCell::new(Vec::new());
    let sleeps = RefCell::new(Vec::new());
    // Each attempt takes 100 ms: attempts start at 0, 300, 600, 900; after the fourth (ending at 1000) a
    // 200 ms delay would end at 1200, past the cap.
    let error = retry
        .call_with_sleep(
            |attempt| {
                starts.borrow_mut().push(clock.now());
                clock.advance(ms(100));
                Err::<(), _>(attempt)
            },
            |_| true,
            |delay| {
                sleeps.borrow_mut().push(delay);
                clock.advance(delay);
            },
        )
        .unwrap_err();
    assert_eq!(error.reason(), GaveUp::MaxElapsed);
    assert_eq!(error.attempts(), 4);
    assert_eq!(error.into_inner(), 4);
    assert_eq!(*starts.borrow(), [ms(0), ms(300), ms(600), ms(900)]);
    assert_eq!(
        *sleeps.borrow(),
        [ms(200); 3],
        "the overshooting delay is not slept"
    );
    assert_eq!(clock.now(), ms(1000));
}

#[test]
fn a_delay_ending_exactly_at_the_cap_is_taken() {
    let clock = ManualClock::new();
    let retry = Retry::builder()
        .max_attempts(100)
        .max_elapsed(ms(1000))
        .backoff(Backoff::constant(ms(250)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let starts = RefCell::new(Vec::new());
    let error = retry
        .call_with_sleep(
            |attempt| {
                starts.borrow_mut().push(clock.now());
                Err::<(), _>(attempt)
            },
            |_| true,
            |delay| clock.advance(delay),
        )
        .unwrap_err();
    assert_eq!(
        *starts.borrow(),
        [ms(0), ms(250), ms(500), ms(750), ms(1000)]
    );
    assert_eq!((error.attempts(), error.reason()), (5, GaveUp::MaxElapsed));
}

#[test]
fn the_time_cap_counts_from_the_first_attempt_of_each_call() {
    let clock = ManualClock::new();
    let retry = Retry::builder()
        .max_attempts(100)
        .max_elapsed(ms(500))
        .backoff(Backoff::constant(ms(100)))
        .clock(clock.clone())
        .build()
        .unwrap();
    // Time that passed before the call (since the clock's origin, or during earlier calls) does not count.
    clock.advance(Duration::from_secs(3600));
    for _ in 0..3 {
        let error = retry
            .call_with_sleep(|_| Err::<(), _>(()), |_| true, |delay| clock.advance(delay))
            .unwrap_err();
        // Attempts at 0, 100, ..., 500 ms after the call began.
        assert_eq!((error.attempts(), error.reason()), (6, GaveUp::MaxElapsed));
    }
}

#[test]
fn attempts_or_time_whichever_runs_out_first() {
    let clock = ManualClock::new();
    let retry = Retry::builder()
        .max_attempts(3)
        .max_elapsed(ms(1000))
        .backoff(Backoff::constant(ms(100)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let error = retry
        .call_with_sleep(|_| Err::<(), _>(()), |_| true, |delay| clock.advance(delay))
        .unwrap_err();
    assert_eq!((error.attempts(), error.reason()), (3, GaveUp::MaxAttempts));

    // A slow operation hits the cap before the attempts run out.
    let error = retry
        .call_with_sleep(
            |_| {
                clock.advance(ms(600));
                Err::<(), _>(())
            },
            |_| true,
            |delay| clock.advance(delay),
        )
        .unwrap_err();
    // Attempt 1 runs 0..600 ms, attempt 2 700..1300 ms; a third would start at 1400 ms.
    assert_eq!((error.attempts(), error.reason()), (2, GaveUp::MaxElapsed));
}

#[test]
fn success_past_the_cap_is_still_success() {
    // The cap bounds when attempts start; it never turns a finished attempt's success into an error.
    let clock = ManualClock::new();
    let retry = Retry::builder()
        .max_elapsed(ms(10))
        .backoff(Backoff::constant(ms(1)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let result = retry.call_with_sleep(
        |attempt| {
            clock.advance(ms(5));
            if attempt < 2 { Err(()) } else { Ok(attempt) }
        },
        |_| true,
        |delay| clock.advance(delay),
    );
    assert_eq!(result, Ok(2));
    assert!(clock.now() > ms(10));
}

#[test]
fn sleeps_follow_the_backoff_exactly_without_jitter() {
    let clock = ManualClock::new();
    let backoff = Backoff::exponential(ms(10), ms(1000)).unwrap();
    let retry = Retry::builder()
        .max_attempts(10)
        .backoff(backoff)
        .clock(clock)
        .build()
        .unwrap();
    let expected = [10, 20, 40, 80, 160, 320, 640, 1000, 1000].map(ms);
    assert_eq!(backoff.delays().take(9).collect::<Vec<_>>(), expected);
    // Twice, so a second call starts its own sequence from the beginning.
    for _ in 0..2 {
        let sleeps = RefCell::new(Vec::new());
        let _ = retry.call_with_sleep(
            |_| Err::<(), _>(()),
            |_| true,
            |delay| sleeps.borrow_mut().push(delay),
        );
        assert_eq!(*sleeps.borrow(), expected);
    }

    let tripling = backoff.with_factor(3.0).unwrap();
    let retry = Retry::builder()
        .max_attempts(6)
        .backoff(tripling)
        .build()
        .unwrap();
    let sleeps = RefCell::new(Vec::new());
    let _ = retry.call_with_sleep(
        |_| Err::<(), _>(()),
        |_| true,
        |delay| sleeps.borrow_mut().push(delay),
    );
    assert_eq!(*sleeps.borrow(), [10, 30, 90, 270, 810].map(ms));
}

#[test]
fn zero_delays_still_go_to_the_sleep() {
    let retry = Retry::builder()
        .backoff(Backoff::constant(Duration::ZERO))
        .build()
        .unwrap();
    let sleeps = RefCell::new(Vec::new());
    let _ = retry.call_with_sleep(
        |_| Err::<(), _>(()),
        |_| true,
        |delay| sleeps.borrow_mut().push(delay),
    );
    assert_eq!(*sleeps.borrow(), [Duration::ZERO; 2]);
}

#[test]
fn jittered_sleeps_stay_under_their_attempt_ceilings() {
    let attempts = if cfg!(miri) { 10 } else { 40 };
    let calls = if cfg!(miri) { 5 } else { 200 };
    for jitter in [Jitter::Full, Jitter::Decorrelated] {
        let backoff = Backoff::exponential(ms(10), ms(2000))
            .unwrap()
            .with_jitter(jitter);
        let retry = Retry::builder()
            .max_attempts(attempts)
            .backoff(backoff)
            .build()
            .unwrap();
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..calls {
            let sleeps = RefCell::new(Vec::new());
            let _ = retry.call_with_sleep(
                |_| Err::<(), _>(()),
                |_| true,
                |delay| sleeps.borrow_mut().push(delay),
            );
            let sleeps = sleeps.into_inner();
            assert_eq!(sleeps.len(), attempts as usize - 1);
            let mut previous = backoff.base();
            for (index, &delay) in sleeps.iter().enumerate() {
                match jitter {
                    Jitter::Full => {
                        assert!(delay <= backoff.ceiling(index as u32), "{jitter:?} {index}")
                    }
                    _ => {
                        assert!(
                            delay >= backoff.base() && delay <= backoff.max(),
                            "{jitter:?} {index}"
                        );
                        assert!(delay <= previous * 3, "{jitter:?} {index}");
                    }
                }
                previous = delay;
            }
            distinct.insert(sleeps);
        }
        assert_eq!(
            distinct.len(),
            calls,
            "{jitter:?}: each call draws its own delays"
        );
    }
}

#[test]
fn the_default_policy() {
    let retry = Retry::builder().build().unwrap();
    assert_eq!(retry.max_attempts(), 3);
    assert_eq!(retry.max_elapsed(), None);
    let expected = Backoff::exponential(ms(100), Duration::from_secs(10))
        .unwrap()
        .with_jitter(Jitter::Full);
    assert_eq!(retry.backoff(), expected);
    let default = Retry::default();
    assert_eq!(
        (
            default.max_attempts(),
            default.max_elapsed(),
            default.backoff()
        ),
        (3, None, expected)
    );
}

#[test]
fn the_hook_sees_each_retry_but_not_the_give_up() {
    let clock = ManualClock::new();
    let log = RefCell::new(Vec::new());
    let retry = Retry::builder()
        .max_attempts(4)
        .backoff(Backoff::exponential(ms(5), ms(1000)).unwrap())
        .clock(clock)
        .on_retry(|attempt, error: &String, delay| {
            log.borrow_mut().push((attempt, error.clone(), delay))
        })
        .build()
        .unwrap();
    let sleeps = RefCell::new(Vec::new());
    let error = retry
        .call_with_sleep(
            |attempt| Err::<(), _>(format!("e{attempt}")),
            |_| true,
            |delay| sleeps.borrow_mut().push(delay),
        )
        .unwrap_err();
    assert_eq!(error.attempts(), 4);
    assert_eq!(
        *log.borrow(),
        [
            (1, "e1".into(), ms(5)),
            (2, "e2".into(), ms(10)),
            (3, "e3".into(), ms(20))
        ]
    );
    assert_eq!(*sleeps.borrow(), [ms(5), ms(10), ms(20)]);

    // A clone shares the configuration, hook included.
    let clone = retry.clone();
    let _ = clone.call_with_sleep(|_| Err::<(), _>("x".to_string()), |_| true, |_| {});
    assert_eq!(log.borrow().len(), 6);
}

#[test]
fn the_error_says_what_happened() {
    let clock = ManualClock::new();
    let once = constant_retry(1, ms(1), &clock)
        .call_with_sleep(|_| Err::<(), _>("boom"), |_| false, |_| {})
        .unwrap_err();
    assert_eq!(
        once.to_string(),
        "gave up after 1 attempt (the error is not retryable): boom"
    );
    let thrice = constant_retry(3, ms(1), &clock)
        .call_with_sleep(|_| Err::<(), _>("boom"), |_| true, |_| {})
        .unwrap_err();
    assert_eq!(
        thrice.to_string(),
        "gave up after 3 attempts (max_attempts reached): boom"
    );
    assert_eq!(
        GaveUp::MaxElapsed.to_string(),
        "the next attempt would start after max_elapsed"
    );
    // An error type, usable with `?` into `Box<dyn Error>`.
    let boxed: Box<dyn std::error::Error> = Box::new(thrice.clone());
    assert_eq!(boxed.to_string(), thrice.to_string());
}

#[test]
fn build_errors_name_the_field() {
    let error = Retry::builder().max_attempts(0).build().unwrap_err();
    assert_eq!(
        error,
        BuildError::Zero {
            field: "max_attempts"
        }
    );
    assert!(error.to_string().contains("max_attempts"), "{error}");
    let error = Retry::builder()
        .max_elapsed(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        BuildError::Zero {
            field: "max_elapsed"
        }
    );
    assert!(error.to_string().contains("max_elapsed"), "{error}");
    // Smallest valid values.
    let retry = Retry::builder()
        .max_attempts(1)
        .max_elapsed(Duration::from_nanos(1))
        .build()
        .unwrap();
    assert_eq!(
        (retry.max_attempts(), retry.max_elapsed()),
        (1, Some(Duration::from_nanos(1)))
    );
}

#[test]
fn huge_max_attempts_stop_at_the_time_cap() {
    let clock = ManualClock::new();
    let retry = Retry::builder()
        .max_attempts(u32::MAX)
        .max_elapsed(Duration::from_secs(60))
        .backoff(Backoff::exponential(ms(1), Duration::from_secs(1)).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let error = retry
        .call_with_sleep(|_| Err::<(), _>(()), |_| true, |delay| clock.advance(delay))
        .unwrap_err();
    assert_eq!(error.reason(), GaveUp::MaxElapsed);
    // 1 + 2 + ... + 512 ms = 1023 ms, then 59 delays of 1 s reach 60.023 s > 60 s at the 59th.
    assert_eq!(error.attempts(), 11 + 58);
    assert!(clock.now() <= Duration::from_secs(60));
}

#[test]
fn retry_and_its_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync + Clone>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let retry = Retry::builder().build().unwrap();
    send_sync(&retry);
    send_sync(&constant_retry(1, ms(1), &ManualClock::new()));
    let future = retry.call_async_with_sleep(
        |attempt| async move { Err::<(), _>(attempt) },
        |_| true,
        |_| std::future::ready(()),
    );
    send(&future);
    let _: Retry<SystemClock> = retry;
}

// Async, driven by hand: every future is ready at once (the sleep advances a manual clock).

#[test]
fn async_attempts_counted_exactly() {
    let clock = ManualClock::new();
    let retry = constant_retry(5, ms(10), &clock);
    for k in 1..=5u32 {
        let calls = Cell::new(0);
        let result = ready(poll_once(retry.call_async_with_sleep(
            |attempt| {
                calls.set(calls.get() + 1);
                async move {
                    if attempt < k {
                        Err(attempt)
                    } else {
                        Ok(attempt)
                    }
                }
            },
            |_| true,
            |delay| {
                clock.advance(delay);
                std::future::ready(())
            },
        )));
        assert_eq!(result, Ok(k));
        assert_eq!(calls.get(), k);
    }
    let error = ready(poll_once(retry.call_async_with_sleep(
        |attempt| async move { Err::<(), _>(attempt) },
        |&error| error != 3,
        |_| std::future::ready(()),
    )))
    .unwrap_err();
    assert_eq!(
        (error.attempts(), error.reason(), error.into_inner()),
        (3, GaveUp::NotRetryable, 3)
    );
}

#[test]
fn async_time_cap_and_delays() {
    let clock = ManualClock::new();
    let retry = Retry::builder()
        .max_attempts(100)
        .max_elapsed(ms(100))
        .backoff(Backoff::exponential(ms(10), ms(1000)).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let sleeps = RefCell::new(Vec::new());
    let error: RetryError<u32> = ready(poll_once(retry.call_async_with_sleep(
        |attempt| async move { Err::<(), _>(attempt) },
        |_| true,
        |delay| {
            sleeps.borrow_mut().push(delay);
            clock.advance(delay);
            std::future::ready(())
        },
    )))
    .unwrap_err();
    // 10 + 20 + 40 = 70 ms; the next 80 ms would end at 150 > 100.
    assert_eq!(*sleeps.borrow(), [ms(10), ms(20), ms(40)]);
    assert_eq!((error.attempts(), error.reason()), (4, GaveUp::MaxElapsed));
}

#[test]
fn dropping_the_async_call_mid_sleep_stops_the_attempts() {
    let clock = ManualClock::new();
    let retry = constant_retry(10, ms(10), &clock);
    let calls = Cell::new(0);
    let sleeps = Cell::new(0);
    {
        let call = retry.call_async_with_sleep(
            |attempt| {
                calls.set(calls.get() + 1);
                async move { Err::<(), _>(attempt) }
            },
            |_| true,
            |_| {
                sleeps.set(sleeps.get() + 1);
                std::future::pending::<()>()
            },
        );
        let mut call = pin!(call);
        let mut context = Context::from_waker(Waker::noop());
        for _ in 0..3 {
            assert!(call.as_mut().poll(&mut context).is_pending());
        }
        // Dropped here, in the middle of its first sleep.
    }
    assert_eq!((calls.get(), sleeps.get()), (1, 1));
}

#[test]
fn async_call_is_lazy() {
    // Creating the future runs nothing; the time cap starts when it is first polled.
    let clock = ManualClock::new();
    let retry = Retry::builder()
        .max_attempts(10)
        .max_elapsed(ms(100))
        .backoff(Backoff::constant(ms(50)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let calls = Cell::new(0);
    let call = retry.call_async_with_sleep(
        |attempt| {
            calls.set(calls.get() + 1);
            async move { Err::<(), _>(attempt) }
        },
        |_| true,
        |delay| {
            clock.advance(delay);
            std::future::ready(())
        },
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(calls.get(), 0);
    let error = ready(poll_once(call)).unwrap_err();
    assert_eq!((error.attempts(), error.reason()), (3, GaveUp::MaxElapsed));
}

// Async on tokio with paused time: sleeps advance tokio's virtual clock, nothing waits for real.

#[cfg(feature = "tokio")]
mod tokio_time {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn call_async_sleeps_the_backoff_on_tokio_time() {
        let retry = Retry::builder()
            .max_attempts(4)
            .backoff(Backoff::exponential(ms(100), Duration::from_secs(10)).unwrap())
            .build()
            .unwrap();
        let start = tokio::time::Instant::now();
        let starts = RefCell::new(Vec::new());
        let result = retry
            .call_async(
                |attempt| {
                    starts.borrow_mut().push(start.elapsed());
                    async move {
                        if attempt < 4 {
                            Err(attempt)
                        } else {
                            Ok(attempt)
                        }
                    }
                },
                |_| true,
            )
            .await;
        assert_eq!(result, Ok(4));
        // Virtual time: attempts start exactly after 0, 100, 100 + 200 and 100 + 200 + 400 ms.
        assert_eq!(*starts.borrow(), [ms(0), ms(100), ms(300), ms(700)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_call_makes_no_more_attempts() {
        let retry = Retry::builder()
            .max_attempts(100)
            .backoff(Backoff::constant(ms(100)))
            .build()
            .unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&calls);
        let call = retry.call_async(
            move |attempt| {
                counted.fetch_add(1, Ordering::Relaxed);
                async move { Err::<(), _>(attempt) }
            },
            |_| true,
        );
        // Attempts at 0 and 100 ms; the timeout drops the call at 150 ms, half-way through its second sleep.
        assert!(tokio::time::timeout(ms(150), call).await.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            calls.load(Ordering::Relaxed),
            2,
            "no attempt after the drop"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn call_async_spawned_with_a_cloned_policy() {
        let retry = Retry::builder()
            .backoff(Backoff::constant(ms(10)))
            .build()
            .unwrap();
        let handles: Vec<_> = (0..4)
            .map(|task| {
                let retry = retry.clone();
                tokio::spawn(async move {
                    retry
                            .call_async(
                                move |attempt| async move {
                                    if attempt < 3 { Err(task) } else { Ok(task) }
                                },
                                |_| true,
                            )
                            .await
                })
            })
            .collect();
        for (task, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap(), Ok(task));
        }
    }
}
