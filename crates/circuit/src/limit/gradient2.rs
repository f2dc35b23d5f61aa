//! Gradient2: the limit follows the ratio of a long-term to a short-term round-trip time (Netflix
//! concurrency-limits' `Gradient2Limit`; the parent module lists every deviation).

use std::fmt;
use std::time::Duration;

use super::{AdaptiveLimit, Algorithm, Sample, check_limits};
use crate::clock::{Clock, SystemClock};
use crate::error::BuildError;

/// Samples averaged plainly before the long-term average switches to exponential smoothing, so that the
/// first few samples are not dwarfed by a zero start (Netflix's warm-up window of 10).
const WARMUP_SAMPLES: u32 = 10;

/// The lowest gradient: one sample never more than halves the unsmoothed estimate.
const MIN_GRADIENT: f64 = 0.5;

/// An exponential moving average with an arithmetic-mean warm-up.
#[derive(Debug)]
struct ExpAverage {
    value: f64,
    sum: f64,
    count: u32,
    /// Weight of a new sample once warm: 2 / (window + 1), the usual N-sample EMA weight.
    factor: f64,
}

impl ExpAverage {
    fn new(window: u32) -> Self {
        Self {
            value: 0.0,
            sum: 0.0,
            count: 0,
            factor: 2.0 / (f64::from(window) + 1.0),
        }
    }

    fn add(&mut self, sample: f64) -> f64 {
        if self.count < WARMUP_SAMPLES {
            self.count += 1;
            self.sum += sample;
            self.value = self.sum / f64::from(self.count);
        } else {
            self.value += (sample - self.value) * self.factor;
        }
        self.value
    }
}

/// The Gradient2 state, kept under the limiter's algorithm mutex.
#[derive(Debug)]
pub(super) struct Gradient2 {
    /// The unrounded limit; the limiter enforces its floor.
    estimate: f64,
    min_limit: f64,
    max_limit: f64,
    smoothing: f64,
    rtt_tolerance: f64,
    queue_size: f64,
    /// Long-term round-trip time in nanoseconds.
    long_rtt: ExpAverage,
}

impl Gradient2 {
    pub(super) fn limit(&self) -> u32 {
        self.estimate as u32
    }

    /// The long-term RTT the algorithm currently compares against (for metrics and tests).
    pub(super) fn long_rtt(&self) -> Duration {
        Duration::from_nanos(self.long_rtt.value as u64)
    }

    /// Applies one sample taken by a token issued when `in_flight` tokens (itself included) were out, before
    /// the latest cut if `sent_before_cut`; returns the new limit.
    pub(super) fn on_sample(
        &mut self,
        sample: Sample,
        in_flight: u32,
        sent_before_cut: bool,
    ) -> u32 {
        let gradient = match sample {
            // Sent under a limit that has since been cut: this congestion was already answered.
            Sample::Dropped if sent_before_cut => return self.limit(),
            // Deviation: Netflix's Gradient2 ignores the drop flag and uses the dropped request's RTT. A drop
            // here carries no latency (the request timed out or was refused, often fast), so it is taken as
            // the strongest congestion signal the algorithm has: the lowest gradient, whatever the load.
            Sample::Dropped => MIN_GRADIENT,
            Sample::Success(latency) => {
                // A zero RTT (coarse clocks) would divide by zero: count it as one nanosecond.
                let short = (latency.as_nanos() as f64).max(1.0);
                let long = self.long_rtt.add(short);
                // After a long overload the long RTT sits far above the recovered short RTT; pull it down
                // faster than the average alone would, so the limit can grow again sooner.
                if long / short > 2.0 {
                    self.long_rtt.value *= 0.95;
                }
                // App-limited: fewer than half the limit in use says nothing about whether it is too low.
                if f64::from(in_flight) < self.estimate / 2.0 {
                    return self.limit();
                }
                (self.rtt_tolerance * long / short).clamp(MIN_GRADIENT, 1.0)
            }
        };
        let target = self.estimate * gradient + self.queue_size;
        let smoothed = self.estimate * (1.0 - self.smoothing) + target * self.smoothing;
        self.estimate = smoothed.clamp(self.min_limit, self.max_limit);
        self.limit()
    }
}

/// Builds a Gradient2 [`AdaptiveLimit`]; every setting has a default (see each method).
///
/// ```
/// use circuit::AdaptiveLimit;
///
/// let limit = AdaptiveLimit::gradient2()
///     .initial_limit(20)
///     .max_limit(200)
///     .rtt_tolerance(1.5)
///     .build()?;
/// assert_eq!(limit.limit(), 20);
/// # Ok::<(), circuit::BuildError>(())
/// ```
pub struct Gradient2Builder<C = SystemClock> {
    initial_limit: u32,
    min_limit: u32,
    max_limit: u32,
    smoothing: f64,
    rtt_tolerance: f64,
    long_window: u32,
    queue_size: u32,
    clock: C,
}

impl<C> fmt::Debug for Gradient2Builder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gradient2Builder")
            .field("initial_limit", &self.initial_limit)
            .field("min_limit", &self.min_limit)
            .field("max_limit", &self.max_limit)
            .field("smoothing", &self.smoothing)
            .field("rtt_tolerance", &self.rtt_tolerance)
            .field("long_window", &self.long_window)
            .field("queue_size", &self.queue_size)
            .finish_non_exhaustive()
    }
}

impl Gradient2Builder<SystemClock> {
    pub(super) fn new() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 1,
            max_limit: 200,
            smoothing: 0.2,
            rtt_tolerance: 1.5,
            long_window: 600,
            queue_size: 4,
            clock: SystemClock::new(),
        }
    }
}

impl<C: Clock> Gradient2Builder<C> {
    /// The limit to start from (default 20).
    pub fn initial_limit(mut self, limit: u32) -> Self {
        self.initial_limit = limit;
        self
    }

    /// The limit never falls below this (default 1; Netflix's default is 20, which would stop the limiter
    /// from protecting a backend that handles fewer than 20 requests at once).
    pub fn min_limit(mut self, limit: u32) -> Self {
        self.min_limit = limit;
        self
    }

    /// The limit never rises above this (default 200; at most 2³¹ − 1).
    pub fn max_limit(mut self, limit: u32) -> Self {
        self.max_limit = limit;
        self
    }

    /// How much of each new estimate goes into the limit, in (0, 1] (default 0.2): 1 follows every sample,
    /// smaller values move more slowly and ride out outliers.
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// How much the short-term RTT may exceed the long-term one before the limit falls, at least 1 (default
    /// 1.5: latency may grow by half before the limit is cut).
    pub fn rtt_tolerance(mut self, tolerance: f64) -> Self {
        self.rtt_tolerance = tolerance;
        self
    }

    /// The long-term RTT is an exponential average over about this many samples (default 600).
    pub fn long_window(mut self, samples: u32) -> Self {
        self.long_window = samples;
        self
    }

    /// How far each estimate may reach above the current limit while latency stays within tolerance
    /// (default 4): the room the limit probes into, and its growth rate (`queue_size × smoothing` per
    /// sample).
    pub fn queue_size(mut self, size: u32) -> Self {
        self.queue_size = size;
        self
    }

    /// The clock tokens read for [`Token::success_elapsed`](crate::Token::success_elapsed) (default
    /// [`SystemClock`]).
    pub fn clock<C2: Clock>(self, clock: C2) -> Gradient2Builder<C2> {
        Gradient2Builder {
            initial_limit: self.initial_limit,
            min_limit: self.min_limit,
            max_limit: self.max_limit,
            smoothing: self.smoothing,
            rtt_tolerance: self.rtt_tolerance,
            long_window: self.long_window,
            queue_size: self.queue_size,
            clock,
        }
    }

    /// Checks the settings and builds the limiter.
    ///
    /// # Errors
    ///
    /// [`BuildError::Zero`] for a zero limit, `long_window` or `queue_size`; [`BuildError::TooLarge`] for a
    /// `max_limit` above 2³¹ − 1; [`BuildError::Exceeds`] unless `min_limit ≤ initial_limit ≤ max_limit`;
    /// [`BuildError::OutOfRange`] for a `smoothing` outside (0, 1] or an `rtt_tolerance` below 1 or not
    /// finite.
    pub fn build(self) -> Result<AdaptiveLimit<C>, BuildError> {
        check_limits(self.initial_limit, self.min_limit, self.max_limit)?;
        if self.long_window == 0 {
            return Err(BuildError::Zero {
                field: "long_window",
            });
        }
        if self.queue_size == 0 {
            return Err(BuildError::Zero {
                field: "queue_size",
            });
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(BuildError::OutOfRange {
                field: "smoothing",
                expected: "greater than 0 and at most 1",
                value: self.smoothing,
            });
        }
        if !(self.rtt_tolerance >= 1.0 && self.rtt_tolerance.is_finite()) {
            return Err(BuildError::OutOfRange {
                field: "rtt_tolerance",
                expected: "finite and at least 1",
                value: self.rtt_tolerance,
            });
        }
        let algorithm = Gradient2 {
            estimate: f64::from(self.initial_limit),
            min_limit: f64::from(self.min_limit),
            max_limit: f64::from(self.max_limit),
            smoothing: self.smoothing,
            rtt_tolerance: self.rtt_tolerance,
            queue_size: f64::from(self.queue_size),
            long_rtt: ExpAverage::new(self.long_window),
        };
        Ok(AdaptiveLimit::from_parts(
            Algorithm::Gradient2(algorithm),
            self.clock,
        ))
    }
}
