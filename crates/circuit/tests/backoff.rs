//! `Backoff`: exact un-jittered schedules, and statistical checks that the jittered delays stay in their bounds
//! and are spread the way the docs say (uniform), with fixed seeds so every run draws the same numbers.
//!
//! The statistics are chosen to fail for plausible wrong implementations, not only for out-of-bounds delays:
//! a full jitter that always returned half the ceiling fails the extremes and the Kolmogorov–Smirnov test; one
//! that drew from `[0, base]` instead of `[0, ceiling]` fails the mean at every attempt past the first; a
//! decorrelated jitter that ignored the previous delay or the factor of 3 fails its bounds or its spread.
//!
//! Tolerances: the mean of `n` uniform `[0, 1]` draws has standard error `1 / sqrt(12 n)`; we allow 5 of them
//! (a true uniform fails that with probability below 1e-6). The Kolmogorov–Smirnov bound `1.63 / sqrt(n)` is
//! the 1 % critical value of the largest gap between the empirical and the uniform CDF. With the fixed seeds
//! the outcome is the same on every run; under Miri the sample counts shrink and the same checks apply.

use std::time::Duration;

use circuit::{Backoff, BuildError, Jitter};

const SAMPLES: usize = if cfg!(miri) { 500 } else { 20_000 };

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn nanos(duration: Duration) -> f64 {
    duration.as_nanos() as f64
}

/// Checks that `fractions` (each in `[0, 1]`) look uniform: mean within 5 standard errors of 1/2, extremes
/// within 2 % of both ends, and the Kolmogorov–Smirnov statistic below its 1 % critical value.
fn assert_uniform(mut fractions: Vec<f64>, what: &str) {
    let n = fractions.len() as f64;
    assert!(
        fractions.iter().all(|u| (0.0..=1.0).contains(u)),
        "{what}: a fraction outside [0, 1]"
    );

    let mean = fractions.iter().sum::<f64>() / n;
    let tolerance = 5.0 / (12.0 * n).sqrt();
    assert!(
        (mean - 0.5).abs() < tolerance,
        "{what}: mean {mean:.4} is more than 5 standard errors ({tolerance:.4}) from 0.5"
    );

    let min = fractions.iter().copied().fold(f64::INFINITY, f64::min);
    let max = fractions.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!(
        min < 0.02,
        "{what}: smallest draw {min:.4} never came near the lower bound"
    );
    assert!(
        max > 0.98,
        "{what}: largest draw {max:.4} never came near the upper bound"
    );

    fractions.sort_by(f64::total_cmp);
    let ks = fractions
        .iter()
        .enumerate()
        .map(|(i, &u)| ((i + 1) as f64 / n - u).max(u - i as f64 / n))
        .fold(0.0, f64::max);
    let critical = 1.63 / n.sqrt();
    assert!(
        ks < critical,
        "{what}: Kolmogorov–Smirnov statistic {ks:.4} ≥ {critical:.4} (alpha = 0.01)"
    );
}

#[test]
fn no_jitter_is_exact_with_factor_and_cap() {
    let doubling = Backoff::exponential(ms(100), ms(2000)).unwrap();
    assert_eq!(doubling.jitter(), Jitter::None);
    assert_eq!(doubling.factor(), 2.0);
    let expected = [100, 200, 400, 800, 1600, 2000, 2000, 2000].map(ms);
    assert_eq!(doubling.delays().take(8).collect::<Vec<_>>(), expected);
    for (attempt, &delay) in expected.iter().enumerate() {
        assert_eq!(doubling.ceiling(attempt as u32), delay);
    }

    let one_and_a_half = Backoff::exponential(ms(100), ms(1000))
        .unwrap()
        .with_factor(1.5)
        .unwrap();
    let expected = [
        100_000, 150_000, 225_000, 337_500, 506_250, 759_375, 1_000_000, 1_000_000,
    ]
    .map(Duration::from_micros);
    assert_eq!(
        one_and_a_half.delays().take(8).collect::<Vec<_>>(),
        expected
    );

    let flat = Backoff::exponential(ms(70), ms(1000))
        .unwrap()
        .with_factor(1.0)
        .unwrap();
    assert!(flat.delays().take(50).all(|delay| delay == ms(70)));
    let constant = Backoff::constant(ms(250));
    assert_eq!(
        (constant.base(), constant.max(), constant.factor()),
        (ms(250), ms(250), 1.0)
    );
    assert!(constant.delays().take(50).all(|delay| delay == ms(250)));
    // Jitter::None is the default and seeds make no difference to it.
    assert_eq!(
        doubling.delays_seeded(1).take(20).collect::<Vec<_>>(),
        doubling.delays_seeded(2).take(20).collect::<Vec<_>>()
    );
}

#[test]
fn full_jitter_is_uniform_below_each_attempts_ceiling() {
    let backoff = Backoff::exponential(ms(10), Duration::from_secs(10))
        .unwrap()
        .with_jitter(Jitter::Full);
    // Attempt 0 (ceiling = base), 3 (8 × base) and 12 (base × 4096 > max: capped).
    for (attempt, ceiling) in [(0, ms(10)), (3, ms(80)), (12, Duration::from_secs(10))] {
        assert_eq!(backoff.ceiling(attempt as u32), ceiling);
        let fractions = (0..SAMPLES as u64)
            .map(|seed| {
                let delay = backoff.delays_seeded(seed).nth(attempt).unwrap();
                assert!(
                    delay <= ceiling,
                    "attempt {attempt}: {delay:?} above {ceiling:?}"
                );
                nanos(delay) / nanos(ceiling)
            })
            .collect();
        assert_uniform(
            fractions,
            &format!("full jitter, attempt {attempt} over {SAMPLES} seeds"),
        );
    }
}

#[test]
fn full_jitter_stream_is_uniform_through_growth_and_cap() {
    // One long stream: attempts 0..=9 grow (1 ms to 512 ms), the rest sit at the 1 s cap. Dividing each delay
    // by its attempt's ceiling must give uniform fractions.
    let backoff = Backoff::exponential(ms(1), ms(1000))
        .unwrap()
        .with_jitter(Jitter::Full);
    let fractions = backoff
        .delays_seeded(0x5eed)
        .take(SAMPLES)
        .enumerate()
        .map(|(attempt, delay)| {
            let ceiling = backoff.ceiling(attempt as u32);
            assert!(
                delay <= ceiling,
                "attempt {attempt}: {delay:?} above {ceiling:?}"
            );
            nanos(delay) / nanos(ceiling)
        })
        .collect();
    assert_uniform(fractions, "full jitter, one stream");
}

/// The bounds of a decorrelated delay after `previous`: `[base, min(max, 3 × previous)]`.
fn decorrelated_bounds(backoff: &Backoff, previous: Duration) -> (Duration, Duration) {
    (backoff.base(), (previous * 3).min(backoff.max()))
}

#[test]
fn decorrelated_jitter_stays_between_base_and_three_times_the_previous_delay() {
    // A cap 100 × base, so streams spend time both growing and pressed against the cap.
    let backoff = Backoff::exponential(ms(10), ms(1000))
        .unwrap()
        .with_jitter(Jitter::Decorrelated);
    let mut fractions = Vec::with_capacity(SAMPLES);
    let mut largest = Duration::ZERO;
    let mut previous = backoff.base();
    for delay in backoff.delays_seeded(7).take(SAMPLES) {
        let (low, high) = decorrelated_bounds(&backoff, previous);
        assert!(
            low <= delay && delay <= high,
            "{delay:?} outside [{low:?}, {high:?}] after {previous:?}"
        );
        assert!(delay <= backoff.max());
        // Given the previous delay, the next is uniform on its bounds, so these fractions are i.i.d. uniform.
        fractions.push(nanos(delay - low) / nanos(high - low));
        largest = largest.max(delay);
        previous = delay;
    }
    assert!(
        largest > ms(980),
        "the stream should come near the cap, got {largest:?}"
    );
    assert_uniform(fractions, "decorrelated jitter, one stream");
}

#[test]
fn decorrelated_first_delays_spread_over_base_to_three_base() {
    let backoff = Backoff::exponential(ms(10), ms(1000))
        .unwrap()
        .with_jitter(Jitter::Decorrelated);
    let fractions = (0..SAMPLES as u64)
        .map(|seed| {
            let delay = backoff.delays_seeded(seed).next().unwrap();
            assert!((ms(10)..=ms(30)).contains(&delay), "{delay:?}");
            nanos(delay - ms(10)) / nanos(ms(20))
        })
        .collect();
    assert_uniform(fractions, "decorrelated jitter, first delay over seeds");
}

#[test]
fn seeds_repeat_and_differ() {
    for jitter in [Jitter::Full, Jitter::Decorrelated] {
        let backoff = Backoff::exponential(ms(10), ms(1000))
            .unwrap()
            .with_jitter(jitter);
        let take = |mut delays: circuit::Delays| (&mut delays).take(64).collect::<Vec<_>>();
        assert_eq!(
            take(backoff.delays_seeded(3)),
            take(backoff.delays_seeded(3)),
            "{jitter:?}"
        );
        assert_ne!(
            take(backoff.delays_seeded(3)),
            take(backoff.delays_seeded(4)),
            "{jitter:?}"
        );
        assert_ne!(
            take(backoff.delays()),
            take(backoff.delays()),
            "{jitter:?}: random seeds"
        );
        // A clone carries on exactly where the original is.
        let mut original = backoff.delays_seeded(5);
        original.nth(10);
        let clone = original.clone();
        assert_eq!(take(original), take(clone), "{jitter:?}");
    }
}

#[test]
fn huge_attempts_and_durations_neither_overflow_nor_panic() {
    let long = if cfg!(miri) { 300 } else { 100_000 };
    for factor in [1.0, 1.000_000_1, 2.0, 1e300] {
        let backoff = Backoff::exponential(ms(1), Duration::from_secs(60))
            .unwrap()
            .with_factor(factor)
            .unwrap();
        for attempt in [u32::MAX, u32::MAX - 1, i32::MAX as u32, i32::MAX as u32 + 1] {
            let expected = if factor == 1.0 {
                ms(1)
            } else {
                Duration::from_secs(60)
            };
            assert_eq!(
                backoff.ceiling(attempt),
                expected,
                "factor {factor}, attempt {attempt}"
            );
        }
        for jitter in [Jitter::None, Jitter::Full, Jitter::Decorrelated] {
            let backoff = backoff.with_jitter(jitter);
            assert!(
                backoff
                    .delays_seeded(1)
                    .take(long)
                    .all(|delay| delay <= Duration::from_secs(60))
            );
        }
    }
    // A cap of `Duration::MAX` (more nanoseconds than a u64 holds): ceilings saturate at u64::MAX ns.
    let unbounded = Backoff::exponential(Duration::from_secs(1), Duration::MAX).unwrap();
    assert_eq!(unbounded.ceiling(u32::MAX), Duration::from_nanos(u64::MAX));
    assert_eq!(unbounded.ceiling(10), Duration::from_secs(1024));
    for jitter in [Jitter::None, Jitter::Full, Jitter::Decorrelated] {
        let delays: Vec<_> = unbounded
            .with_jitter(jitter)
            .delays_seeded(9)
            .take(300)
            .collect();
        assert!(
            delays
                .iter()
                .all(|&delay| delay <= Duration::from_nanos(u64::MAX)),
            "{jitter:?}"
        );
        if jitter != Jitter::Full {
            assert!(
                delays.iter().all(|&delay| delay >= Duration::from_secs(1)),
                "{jitter:?}"
            );
        }
    }
}

#[test]
fn max_equal_to_base() {
    let backoff = Backoff::exponential(ms(40), ms(40)).unwrap();
    assert!(backoff.delays().take(100).all(|delay| delay == ms(40)));
    let full = backoff.with_jitter(Jitter::Full);
    let fractions = full
        .delays_seeded(11)
        .take(SAMPLES)
        .map(|delay| nanos(delay) / nanos(ms(40)))
        .collect();
    assert_uniform(fractions, "full jitter with max == base");
    let decorrelated = backoff.with_jitter(Jitter::Decorrelated);
    assert!(
        decorrelated
            .delays_seeded(12)
            .take(100)
            .all(|delay| delay == ms(40))
    );
}

#[test]
fn zero_base_gives_zero_delays() {
    // Nothing multiplies up from zero: every schedule with a zero base waits zero (decorrelated jitter's
    // range `[0, 3 × 0]` included), whatever the cap.
    let backoff = Backoff::exponential(Duration::ZERO, Duration::from_secs(1)).unwrap();
    for jitter in [Jitter::None, Jitter::Full, Jitter::Decorrelated] {
        let backoff = backoff.with_jitter(jitter);
        assert!(
            backoff
                .delays_seeded(1)
                .take(100)
                .all(|delay| delay == Duration::ZERO),
            "{jitter:?}"
        );
        assert_eq!(backoff.ceiling(u32::MAX), Duration::ZERO, "{jitter:?}");
    }
    let zero = Backoff::constant(Duration::ZERO).with_jitter(Jitter::Full);
    assert!(zero.delays().take(100).all(|delay| delay == Duration::ZERO));
}

#[test]
fn with_factor_rejects_factors_below_one_and_non_finite() {
    let backoff = Backoff::exponential(ms(1), ms(100)).unwrap();
    for factor in [
        0.999,
        0.5,
        0.0,
        -0.0,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        let error = backoff.with_factor(factor).unwrap_err();
        match error {
            BuildError::OutOfRange {
                field,
                expected,
                value,
            } => {
                assert_eq!(field, "factor");
                assert_eq!(expected, "finite and at least 1");
                assert!(value.to_bits() == factor.to_bits(), "{value} != {factor}");
            }
            other => panic!("factor {factor}: unexpected {other:?}"),
        }
        assert!(error.to_string().contains("`factor`"), "{error}");
    }
    assert_eq!(backoff.with_factor(1.0).unwrap().factor(), 1.0);
    assert_eq!(backoff.with_factor(3.5).unwrap().factor(), 3.5);
}

#[test]
fn exponential_rejects_max_below_base_naming_max() {
    let error = Backoff::exponential(ms(200), ms(199)).unwrap_err();
    assert_eq!(
        error,
        BuildError::MaxBelowBase {
            field: "max",
            base: ms(200),
            max: ms(199)
        }
    );
    assert!(error.to_string().starts_with("`max`"), "{error}");
    assert!(Backoff::exponential(ms(200), ms(200)).is_ok());
    assert!(Backoff::exponential(Duration::ZERO, Duration::ZERO).is_ok());
}

#[test]
fn with_jitter_keeps_the_schedule() {
    let backoff = Backoff::exponential(ms(5), ms(500))
        .unwrap()
        .with_factor(3.0)
        .unwrap();
    for jitter in [Jitter::None, Jitter::Full, Jitter::Decorrelated] {
        let jittered = backoff.with_jitter(jitter);
        assert_eq!(
            (
                jittered.base(),
                jittered.max(),
                jittered.factor(),
                jittered.jitter()
            ),
            (ms(5), ms(500), 3.0, jitter)
        );
        assert_eq!(jittered.ceiling(2), ms(45));
    }
    assert_eq!(Jitter::default(), Jitter::None);
}
