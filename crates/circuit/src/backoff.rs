//! Delays that grow between attempts: [`Backoff`] and its [`Jitter`].
//!
//! The breaker uses a backoff for its open wait (the wait grows each time a probe fails) and [`Retry`] for
//! the pause between attempts. Jitter spreads clients that failed together so they do not come back together;
//! the two kinds offered are the ones the AWS Architecture Blog's "Exponential Backoff And Jitter" (Marc
//! Brooker, 2015) found best: *full* jitter, uniform in `[0, d]` where `d` is the exponential delay, and
//! *decorrelated* jitter, uniform in `[base, 3 × previous]`, capped.
//!
//! [`Retry`]: crate::Retry

use std::fmt;
use std::time::Duration;

use crate::clock::duration_to_nanos;
use crate::error::BuildError;

/// How a [`Backoff`] randomises its delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: attempt `n` waits `min(max, base × factorⁿ)`.
    #[default]
    None,
    /// Uniform in `[0, min(max, base × factorⁿ)]`.
    Full,
    /// Uniform in `[base, min(max, 3 × previous delay)]`, starting from `previous = base`. The factor does not
    /// apply: the growth comes from the previous delay.
    Decorrelated,
}

/// A delay schedule: constant, or exponential with a cap and optional jitter.
///
/// ```
/// use circuit::{Backoff, Jitter};
/// use std::time::Duration;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2))?;
/// let delays: Vec<_> = backoff.delays().take(6).collect();
/// assert_eq!(delays[0], Duration::from_millis(100));
/// assert_eq!(delays[3], Duration::from_millis(800));
/// assert_eq!(delays[5], Duration::from_secs(2)); // capped
///
/// let jittered = backoff.with_jitter(Jitter::Full);
/// assert!(jittered.delays().take(100).all(|d| d <= Duration::from_secs(2)));
/// # Ok::<(), circuit::BuildError>(())
/// ```
#[derive(Clone, Copy, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    factor: f64,
    jitter: Jitter,
}

impl Backoff {
    /// The same delay every time.
    pub fn constant(delay: Duration) -> Self {
        Self {
            base: delay,
            max: delay,
            factor: 1.0,
            jitter: Jitter::None,
        }
    }

    /// A delay that starts at `base` and doubles each attempt up to `max`.
    ///
    /// A zero `base` gives zero delays with every jitter: nothing grows from zero, decorrelated jitter included.
    ///
    /// # Errors
    ///
    /// [`BuildError::MaxBelowBase`] naming `max` if `max < base`.
    pub fn exponential(base: Duration, max: Duration) -> Result<Self, BuildError> {
        if max < base {
            return Err(BuildError::MaxBelowBase {
                field: "max",
                base,
                max,
            });
        }
        Ok(Self {
            base,
            max,
            factor: 2.0,
            jitter: Jitter::None,
        })
    }

    /// The same schedule growing by `factor` per attempt instead of 2.
    ///
    /// # Errors
    ///
    /// [`BuildError::OutOfRange`] naming `factor` unless it is finite and at least 1.
    pub fn with_factor(self, factor: f64) -> Result<Self, BuildError> {
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(BuildError::OutOfRange {
                field: "factor",
                expected: "finite and at least 1",
                value: factor,
            });
        }
        Ok(Self { factor, ..self })
    }

    /// The same schedule with `jitter`.
    pub fn with_jitter(self, jitter: Jitter) -> Self {
        Self { jitter, ..self }
    }

    /// The first delay (and the lower bound of decorrelated jitter).
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The cap on every delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The growth per attempt.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The jitter.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The endless sequence of delays, attempt 0 first, with a randomly seeded generator.
    pub fn delays(&self) -> Delays {
        Delays::new(*self, fastrand::Rng::new())
    }

    /// Like [`delays`](Backoff::delays) with a fixed seed, so the jitter repeats from run to run.
    pub fn delays_seeded(&self, seed: u64) -> Delays {
        Delays::new(*self, fastrand::Rng::with_seed(seed))
    }

    /// The un-jittered delay of attempt `attempt`: `min(max, base × factor^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let base = duration_to_nanos(self.base) as f64;
        let max = duration_to_nanos(self.max);
        // `powi` saturates to infinity and `as u64` saturates, so huge attempts give `max`. Its precision is
        // unspecified (Miri perturbs it by a few ulps, and so may a target's libm), so the product is rounded to
        // the nearest nanosecond rather than truncated: 100 ms × 2³ is 800 ms, never 799.999999 ms, and a seed
        // draws the same delays everywhere. (A zero base times an infinite power is NaN, which `as` makes 0.)
        let grown = (base * self.factor.powi(attempt.min(i32::MAX as u32) as i32)).round();
        Duration::from_nanos((grown as u64).min(max))
    }

    /// The delay for `attempt`, given the delay before it (`base` for the first), drawing jitter from `rng`.
    pub(crate) fn delay(
        &self,
        attempt: u32,
        previous: Duration,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        match self.jitter {
            Jitter::None => self.ceiling(attempt),
            Jitter::Full => {
                let ceiling = duration_to_nanos(self.ceiling(attempt));
                Duration::from_nanos(rng.u64(0..=ceiling))
            }
            Jitter::Decorrelated => {
                let low = duration_to_nanos(self.base);
                let high = duration_to_nanos(previous.max(self.base))
                    .saturating_mul(3)
                    .min(duration_to_nanos(self.max))
                    .max(low);
                Duration::from_nanos(rng.u64(low..=high))
            }
        }
    }
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("base", &self.base)
            .field("max", &self.max)
            .field("factor", &self.factor)
            .field("jitter", &self.jitter)
            .finish()
    }
}

/// The delays of a [`Backoff`], one per attempt; never ends.
#[derive(Debug, Clone)]
pub struct Delays {
    backoff: Backoff,
    attempt: u32,
    previous: Duration,
    rng: fastrand::Rng,
}

impl Delays {
    fn new(backoff: Backoff, rng: fastrand::Rng) -> Self {
        Self {
            previous: backoff.base,
            backoff,
            attempt: 0,
            rng,
        }
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self
            .backoff
            .delay(self.attempt, self.previous, &mut self.rng);
        self.attempt = self.attempt.saturating_add(1);
        self.previous = delay;
        Some(delay)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}
