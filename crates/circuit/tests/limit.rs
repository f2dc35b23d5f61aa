//! `AdaptiveLimit`: the algorithms' exact steps, admission at the limit, FIFO waiting (async and blocking),
//! cancellation, metrics and builder errors.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use circuit::{AdaptiveLimit, BuildError, ManualClock, Token};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn aimd(initial: u32) -> AdaptiveLimit<ManualClock> {
    AdaptiveLimit::aimd()
        .initial_limit(initial)
        .clock(ManualClock::new())
        .build()
        .unwrap()
}

/// Completes one token with `verdict` while more than half the limit is in use (so the sample is not
/// app-limited, also for Gradient2's fractional estimate): extra tokens are held around it and ignored
/// afterwards.
fn loaded(limit: &AdaptiveLimit<ManualClock>, verdict: impl FnOnce(Token<'_, ManualClock>)) {
    let mut held = Vec::new();
    while (held.len() as u32 + 1) * 2 < limit.limit() + 2 {
        held.push(limit.try_acquire().expect("below the limit"));
    }
    verdict(limit.try_acquire().expect("below the limit"));
    drop(held);
}

fn success(token: Token<'_, ManualClock>) {
    token.success(ms(10));
}

fn dropped(token: Token<'_, ManualClock>) {
    token.dropped();
}

#[test]
fn aimd_grows_by_one_after_exactly_three_successes_in_a_row() {
    let limit = aimd(10);
    loaded(&limit, success);
    loaded(&limit, success);
    assert_eq!(limit.limit(), 10, "two successes are not a streak of three");
    loaded(&limit, success);
    assert_eq!(limit.limit(), 11);
    for _ in 0..2 {
        loaded(&limit, success);
    }
    assert_eq!(limit.limit(), 11, "the streak restarts after growing");
    loaded(&limit, success);
    assert_eq!(limit.limit(), 12);
}

#[test]
fn aimd_drop_resets_the_streak_and_cuts_by_the_ratio() {
    let limit = aimd(20);
    loaded(&limit, success);
    loaded(&limit, success);
    loaded(&limit, dropped);
    assert_eq!(limit.limit(), 18, "floor(20 × 0.9)");
    loaded(&limit, success);
    loaded(&limit, success);
    assert_eq!(
        limit.limit(),
        18,
        "the two successes before the drop no longer count"
    );
    loaded(&limit, success);
    assert_eq!(limit.limit(), 19);
    // An ignored token is no sample: it neither grows nor resets.
    loaded(&limit, success);
    loaded(&limit, success);
    loaded(&limit, |token| token.ignore());
    loaded(&limit, success);
    assert_eq!(limit.limit(), 20);
}

#[test]
fn aimd_cut_rounds_down_and_floors_at_the_minimum() {
    let limit = AdaptiveLimit::aimd()
        .initial_limit(10)
        .min_limit(8)
        .backoff_ratio(0.5)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    limit.try_acquire().unwrap().dropped();
    assert_eq!(
        limit.limit(),
        8,
        "floor(10 × 0.5) = 5 is below the minimum 8"
    );
    limit.try_acquire().unwrap().dropped();
    assert_eq!(limit.limit(), 8);

    let limit = AdaptiveLimit::aimd()
        .initial_limit(7)
        .backoff_ratio(0.75)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    limit.try_acquire().unwrap().dropped();
    assert_eq!(limit.limit(), 5, "floor(7 × 0.75) = floor(5.25)");
    for expected in [3, 2, 1, 1] {
        limit.try_acquire().unwrap().dropped();
        assert_eq!(limit.limit(), expected);
    }
}

#[test]
fn aimd_one_cut_per_congestion_episode() {
    let limit = aimd(10);
    let first = limit.try_acquire().unwrap();
    let second = limit.try_acquire().unwrap();
    first.dropped();
    assert_eq!(limit.limit(), 9);
    second.dropped();
    assert_eq!(
        limit.limit(),
        9,
        "a request sent before the cut does not cut again"
    );
    limit.try_acquire().unwrap().dropped();
    assert_eq!(limit.limit(), 8, "one sent after the cut does");
    assert_eq!(limit.metrics().drops, 3, "every drop is still counted");
}

#[test]
fn aimd_never_exceeds_its_maximum() {
    let limit = AdaptiveLimit::aimd()
        .initial_limit(4)
        .max_limit(5)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    for _ in 0..30 {
        loaded(&limit, success);
    }
    assert_eq!(limit.limit(), 5);
}

#[test]
fn aimd_does_not_grow_when_app_limited() {
    let limit = aimd(10);
    for _ in 0..30 {
        limit.try_acquire().unwrap().success(ms(1));
    }
    assert_eq!(
        limit.limit(),
        10,
        "one request at a time never tests a limit of 10"
    );
}

#[test]
fn aimd_timeout_turns_a_slow_success_into_a_drop() {
    let clock = ManualClock::new();
    let limit = AdaptiveLimit::aimd()
        .initial_limit(10)
        .timeout(ms(100))
        .clock(clock.clone())
        .build()
        .unwrap();
    limit.try_acquire().unwrap().success(ms(100));
    assert_eq!(limit.limit(), 10, "at the timeout is not over it");
    limit.try_acquire().unwrap().success(ms(101));
    assert_eq!(limit.limit(), 9);
    let token = limit.try_acquire().unwrap();
    clock.advance(ms(250));
    assert_eq!(token.elapsed(), ms(250));
    token.success_elapsed();
    assert_eq!(limit.limit(), 8, "success_elapsed measures with the clock");
    let metrics = limit.metrics();
    assert_eq!((metrics.successes, metrics.drops), (3, 0));
}

fn gradient2(initial: u32, max: u32) -> AdaptiveLimit<ManualClock> {
    AdaptiveLimit::gradient2()
        .initial_limit(initial)
        .max_limit(max)
        .clock(ManualClock::new())
        .build()
        .unwrap()
}

fn loaded_latency(limit: &AdaptiveLimit<ManualClock>, latency: Duration, samples: usize) {
    for _ in 0..samples {
        loaded(limit, |token| token.success(latency));
    }
}

#[test]
fn gradient2_grows_by_queue_size_times_smoothing_while_latency_is_flat() {
    let limit = gradient2(20, 200);
    loaded_latency(&limit, ms(10), 10);
    // Each sample: 20 → 20 × 0.8 + (20 × 1 + 4) × 0.2 = 20.8, ... +0.8 per sample.
    assert_eq!(limit.limit(), 28);
    assert_eq!(limit.metrics().long_rtt, Some(ms(10)));
}

#[test]
fn gradient2_falls_when_latency_exceeds_the_tolerance_and_recovers() {
    let limit = gradient2(50, 50);
    loaded_latency(&limit, ms(10), 50);
    assert_eq!(limit.limit(), 50, "held at the maximum");
    loaded_latency(&limit, ms(14), 30);
    assert_eq!(
        limit.limit(),
        50,
        "14 ms is within 1.5 × the 10 ms long-term RTT"
    );
    loaded_latency(&limit, ms(20), 30);
    let fallen = limit.limit();
    assert!(
        fallen < 35,
        "20 ms is beyond the tolerance: the limit should fall well below 50, got {fallen}"
    );
    loaded_latency(&limit, ms(10), 100);
    assert_eq!(limit.limit(), 50, "recovers once latency is back");
}

#[test]
fn gradient2_drop_takes_the_lowest_gradient() {
    let limit = gradient2(20, 200);
    limit.try_acquire().unwrap().dropped();
    // 20 × 0.8 + (20 × 0.5 + 4) × 0.2 = 18.8
    assert_eq!(limit.limit(), 18);
}

#[test]
fn gradient2_ignores_app_limited_samples() {
    let limit = gradient2(20, 200);
    for _ in 0..20 {
        limit.try_acquire().unwrap().success(ms(10));
    }
    assert_eq!(limit.limit(), 20);
}

#[test]
fn try_acquire_refuses_at_the_limit_and_after_a_cut_until_enough_complete() {
    let limit = aimd(4);
    let mut tokens: Vec<_> = (0..4).map(|_| limit.try_acquire().unwrap()).collect();
    assert!(limit.try_acquire().is_none());
    assert_eq!(limit.in_flight(), 4);
    tokens.pop().unwrap().dropped(); // limit 3, in flight 3
    assert_eq!((limit.limit(), limit.in_flight()), (3, 3));
    assert!(limit.try_acquire().is_none());
    tokens.pop().unwrap().ignore(); // in flight 2
    let token = limit.try_acquire().expect("2 < 3");
    assert!(limit.try_acquire().is_none());
    drop(token);
    drop(tokens);
    assert_eq!(limit.in_flight(), 0);
    let metrics = limit.metrics();
    assert_eq!(metrics.rejected, 3);
    assert_eq!(
        metrics.ignored, 4,
        "ignore() and three dropped without verdict"
    );
}

/// A waker that counts its wakes.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (Arc::clone(&counter), Waker::from(counter))
}

fn poll<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(waker))
}

#[test]
fn async_waiters_are_served_in_arrival_order_and_nobody_barges() {
    let waiters = if cfg!(miri) { 4 } else { 16 };
    // A maximum of 1: the successes below must not raise the limit and wake two at once.
    let limit = AdaptiveLimit::aimd()
        .initial_limit(1)
        .max_limit(1)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    let held = limit.try_acquire().unwrap();
    let mut queued: Vec<_> = (0..waiters)
        .map(|_| {
            let (counter, waker) = counting_waker();
            let mut future = limit.acquire_async();
            assert!(poll(&mut future, &waker).is_pending());
            (future, counter, waker)
        })
        .collect();
    assert_eq!(limit.metrics().waiting, waiters);
    drop(held);
    for index in 0..waiters {
        assert!(
            limit.try_acquire().is_none(),
            "a newcomer must not take the slot handed to waiter {index}"
        );
        let woken: Vec<usize> = queued
            .iter()
            .map(|(_, counter, _)| counter.0.load(Ordering::SeqCst))
            .collect();
        for (other, &wakes) in woken.iter().enumerate() {
            let expected = usize::from(other <= index);
            assert_eq!(
                wakes, expected,
                "after {index} releases waiter {other} was woken {wakes} times"
            );
        }
        let (future, _, waker) = &mut queued[index];
        let Poll::Ready(token) = poll(future, waker) else {
            panic!("waiter {index} was woken but not granted");
        };
        for (later, _, waker) in &mut queued[index + 1..] {
            assert!(poll(later, waker).is_pending());
        }
        token.success(ms(5));
    }
    let metrics = limit.metrics();
    assert_eq!(metrics.queued, waiters as u64);
    assert_eq!((metrics.waiting, metrics.in_flight), (0, 0));
    assert!(
        limit.try_acquire().is_some(),
        "the fast path is open again once the queue is empty"
    );
}

#[test]
fn a_cancelled_waiter_passes_its_slot_on() {
    let limit = aimd(1);
    let held = limit.try_acquire().unwrap();
    let (first_counter, first_waker) = counting_waker();
    let (second_counter, second_waker) = counting_waker();
    let (third_counter, third_waker) = counting_waker();
    let mut first = limit.acquire_async();
    let mut second = limit.acquire_async();
    let mut third = limit.acquire_async();
    assert!(poll(&mut first, &first_waker).is_pending());
    assert!(poll(&mut second, &second_waker).is_pending());
    assert!(poll(&mut third, &third_waker).is_pending());

    // `second` gives up while still waiting: it just leaves the queue.
    drop(second);
    assert_eq!(second_counter.0.load(Ordering::SeqCst), 0);
    assert_eq!(limit.metrics().waiting, 2);

    drop(held);
    assert_eq!(first_counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(third_counter.0.load(Ordering::SeqCst), 0);
    // `first` was handed the slot but gives up before collecting it: it goes to `third`.
    drop(first);
    assert_eq!(third_counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(limit.in_flight(), 1);
    let Poll::Ready(token) = poll(&mut third, &third_waker) else {
        panic!("third was handed the slot");
    };
    drop(token);
    drop(third);
    assert_eq!((limit.in_flight(), limit.metrics().waiting), (0, 0));
}

#[test]
fn a_waiter_polled_with_a_new_waker_is_woken_through_it() {
    let limit = aimd(1);
    let held = limit.try_acquire().unwrap();
    let (old_counter, old_waker) = counting_waker();
    let (new_counter, new_waker) = counting_waker();
    let mut future = limit.acquire_async();
    assert!(poll(&mut future, &old_waker).is_pending());
    assert!(poll(&mut future, &new_waker).is_pending());
    drop(held);
    assert_eq!(old_counter.0.load(Ordering::SeqCst), 0);
    assert_eq!(new_counter.0.load(Ordering::SeqCst), 1);
    assert!(poll(&mut future, &new_waker).is_ready());
}

#[test]
fn a_raised_limit_is_handed_to_waiters() {
    let limit = AdaptiveLimit::aimd()
        .initial_limit(2)
        .successes_to_grow(1)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    let first = limit.try_acquire().unwrap();
    let second = limit.try_acquire().unwrap();
    let (counters, mut futures): (Vec<_>, Vec<_>) = (0..2)
        .map(|_| {
            let (counter, waker) = counting_waker();
            let mut future = limit.acquire_async();
            assert!(poll(&mut future, &waker).is_pending());
            (counter, (future, waker))
        })
        .unzip();
    first.success(ms(1)); // limit 3 and one slot freed: both waiters get a slot
    assert_eq!(limit.limit(), 3);
    let mut tokens = Vec::new();
    for (counter, (future, waker)) in counters.iter().zip(&mut futures) {
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        let Poll::Ready(token) = poll(future, waker) else {
            panic!("granted");
        };
        tokens.push(token);
    }
    assert_eq!(limit.in_flight(), 3);
    drop(second);
    drop(tokens);
}

#[test]
fn owned_tokens_and_futures_outlive_the_borrow() {
    let limit = Arc::new(aimd(1));
    let token = limit.try_acquire_owned().unwrap();
    assert!(limit.try_acquire_owned().is_none());
    let (counter, waker) = counting_waker();
    let mut future = limit.acquire_owned_async();
    assert!(poll(&mut future, &waker).is_pending());
    token.success(ms(1));
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    let Poll::Ready(token) = poll(&mut future, &waker) else {
        panic!("granted");
    };
    let handle = std::thread::spawn(move || token.dropped());
    handle.join().unwrap();
    assert_eq!((limit.in_flight(), limit.limit()), (0, 1));
}

#[test]
fn blocking_acquire_never_exceeds_the_limit_across_threads() {
    let threads = 4;
    let rounds = if cfg!(miri) { 20 } else { 2_000 };
    let limit = Arc::new(
        AdaptiveLimit::aimd()
            .initial_limit(2)
            .max_limit(2)
            .build()
            .unwrap(),
    );
    let holding = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (limit, holding, most) = (limit.clone(), holding.clone(), most.clone());
            std::thread::spawn(move || {
                for round in 0..rounds {
                    let token = limit.acquire();
                    let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    holding.fetch_sub(1, Ordering::SeqCst);
                    if round % 2 == 0 {
                        token.success(ms(1));
                    } else {
                        drop(token);
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert!(most.load(Ordering::SeqCst) <= 2);
    let metrics = limit.metrics();
    assert_eq!(metrics.in_flight, 0);
    assert_eq!(metrics.waiting, 0);
    assert_eq!(
        metrics.successes + metrics.ignored,
        u64::from(threads as u32 * rounds as u32)
    );
}

#[test]
fn blocking_waiters_and_async_waiters_share_one_queue() {
    let limit = Arc::new(aimd(1));
    let held = limit.try_acquire_owned().unwrap();
    let (counter, waker) = counting_waker();
    let mut future = limit.acquire_owned_async();
    assert!(poll(&mut future, &waker).is_pending());
    let blocked = {
        let limit = Arc::clone(&limit);
        std::thread::spawn(move || limit.acquire_owned().success(ms(1)))
    };
    while limit.metrics().waiting < 2 {
        std::thread::yield_now();
    }
    held.ignore();
    // The task arrived first: it gets the slot; the thread keeps waiting until the task's token is done.
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    let Poll::Ready(token) = poll(&mut future, &waker) else {
        panic!("granted");
    };
    assert_eq!(limit.metrics().waiting, 1);
    token.ignore();
    blocked.join().unwrap();
    assert_eq!(limit.in_flight(), 0);
}

#[test]
fn every_build_error_names_its_field() {
    fn field(error: BuildError) -> &'static str {
        match error {
            BuildError::Zero { field }
            | BuildError::TooLarge { field, .. }
            | BuildError::OutOfRange { field, .. }
            | BuildError::Exceeds { field, .. } => field,
            other => panic!("unexpected {other:?}"),
        }
    }
    let aimd = AdaptiveLimit::aimd;
    let cases: Vec<(Result<AdaptiveLimit, BuildError>, &str)> = vec![
        (aimd().initial_limit(0).build(), "initial_limit"),
        (aimd().min_limit(0).build(), "min_limit"),
        (aimd().max_limit(0).build(), "max_limit"),
        (aimd().max_limit(1 << 31).build(), "max_limit"),
        (aimd().min_limit(30).build(), "min_limit"),
        (aimd().initial_limit(2000).build(), "initial_limit"),
        (aimd().successes_to_grow(0).build(), "successes_to_grow"),
        (aimd().timeout(Duration::ZERO).build(), "timeout"),
        (aimd().backoff_ratio(1.0).build(), "backoff_ratio"),
        (aimd().backoff_ratio(0.0).build(), "backoff_ratio"),
        (aimd().backoff_ratio(f64::NAN).build(), "backoff_ratio"),
        (
            AdaptiveLimit::gradient2().max_limit(10).build(),
            "initial_limit",
        ),
        (
            AdaptiveLimit::gradient2().long_window(0).build(),
            "long_window",
        ),
        (
            AdaptiveLimit::gradient2().queue_size(0).build(),
            "queue_size",
        ),
        (
            AdaptiveLimit::gradient2().smoothing(0.0).build(),
            "smoothing",
        ),
        (
            AdaptiveLimit::gradient2().smoothing(1.5).build(),
            "smoothing",
        ),
        (
            AdaptiveLimit::gradient2().rtt_tolerance(0.9).build(),
            "rtt_tolerance",
        ),
        (
            AdaptiveLimit::gradient2()
                .rtt_tolerance(f64::INFINITY)
                .build(),
            "rtt_tolerance",
        ),
    ];
    for (result, expected) in cases {
        let error = result.expect_err(expected);
        assert!(error.to_string().contains(expected), "{error}");
        assert_eq!(field(error), expected);
    }
    assert_eq!(
        aimd().min_limit(30).build().unwrap_err(),
        BuildError::Exceeds {
            field: "min_limit",
            value: 30,
            limit_field: "initial_limit",
            limit: 20
        }
    );
    assert!(
        AdaptiveLimit::gradient2()
            .smoothing(1.0)
            .rtt_tolerance(1.0)
            .build()
            .is_ok()
    );
}
