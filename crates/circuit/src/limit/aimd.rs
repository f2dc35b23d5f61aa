//! AIMD: additive increase after a streak of successes, multiplicative decrease on a drop.

use std::fmt;
use std::time::Duration;

use super::{AdaptiveLimit, Algorithm, MAX_LIMIT, Sample, check_limits};
use crate::clock::{Clock, SystemClock};
use crate::error::BuildError;

/// The AIMD state, kept under the limiter's algorithm mutex.
#[derive(Debug)]
pub(super) struct Aimd {
    limit: u32,
    min_limit: u32,
    max_limit: u32,
    successes_to_grow: u32,
    backoff_ratio: f64,
    timeout: Option<Duration>,
    /// Successes in a row since the last growth or drop (app-limited successes are not counted).
    streak: u32,
}

impl Aimd {
    pub(super) fn limit(&self) -> u32 {
        self.limit
    }

    /// Applies one sample taken by a token issued when `in_flight` tokens (itself included) were out, before
    /// the latest cut if `sent_before_cut`; returns the new limit.
    pub(super) fn on_sample(
        &mut self,
        sample: Sample,
        in_flight: u32,
        sent_before_cut: bool,
    ) -> u32 {
        let dropped = match sample {
            Sample::Dropped => true,
            Sample::Success(latency) => self.timeout.is_some_and(|timeout| latency > timeout),
        };
        if dropped {
            self.streak = 0;
            if sent_before_cut {
                // Sent under a limit that has since been cut: this congestion was already answered.
                return self.limit;
            }
            // floor(limit × ratio) < limit for every ratio < 1, so a drop always cuts by at least one (until
            // the minimum).
            let cut = (f64::from(self.limit) * self.backoff_ratio).floor() as u32;
            self.limit = cut.max(self.min_limit);
        } else if u64::from(in_flight) * 2 >= u64::from(self.limit) {
            // Only a success seen while at least half the limit was in use says the limit is too low; below
            // that the caller is app-limited and growing would only inflate a limit nobody tests (the same
            // guard as Netflix's AIMDLimit).
            self.streak += 1;
            if self.streak >= self.successes_to_grow {
                self.streak = 0;
                self.limit = (self.limit + 1).min(self.max_limit);
            }
        }
        self.limit
    }
}

/// Builds an AIMD [`AdaptiveLimit`]; every setting has a default (see each method).
///
/// ```
/// use circuit::AdaptiveLimit;
///
/// let limit = AdaptiveLimit::aimd()
///     .initial_limit(10)
///     .max_limit(100)
///     .successes_to_grow(3)
///     .backoff_ratio(0.9)
///     .build()?;
/// assert_eq!(limit.limit(), 10);
/// # Ok::<(), circuit::BuildError>(())
/// ```
pub struct AimdBuilder<C = SystemClock> {
    initial_limit: u32,
    min_limit: u32,
    max_limit: u32,
    successes_to_grow: u32,
    backoff_ratio: f64,
    timeout: Option<Duration>,
    clock: C,
}

impl<C> fmt::Debug for AimdBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AimdBuilder")
            .field("initial_limit", &self.initial_limit)
            .field("min_limit", &self.min_limit)
            .field("max_limit", &self.max_limit)
            .field("successes_to_grow", &self.successes_to_grow)
            .field("backoff_ratio", &self.backoff_ratio)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AimdBuilder<SystemClock> {
    pub(super) fn new() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 1,
            max_limit: 1000,
            successes_to_grow: 3,
            backoff_ratio: 0.9,
            timeout: None,
            clock: SystemClock::new(),
        }
    }
}

impl<C: Clock> AimdBuilder<C> {
    /// The limit to start from (default 20).
    pub fn initial_limit(mut self, limit: u32) -> Self {
        self.initial_limit = limit;
        self
    }

    /// The limit never falls below this (default 1).
    pub fn min_limit(mut self, limit: u32) -> Self {
        self.min_limit = limit;
        self
    }

    /// The limit never rises above this (default 1000; at most 2³¹ − 1).
    pub fn max_limit(mut self, limit: u32) -> Self {
        self.max_limit = limit;
        self
    }

    /// The limit grows by one after this many successes in a row (default 3).
    pub fn successes_to_grow(mut self, successes: u32) -> Self {
        self.successes_to_grow = successes;
        self
    }

    /// A drop multiplies the limit by this and rounds down, in (0, 1) (default 0.9).
    pub fn backoff_ratio(mut self, ratio: f64) -> Self {
        self.backoff_ratio = ratio;
        self
    }

    /// A success slower than this counts as a drop (default: none, only [`Token::dropped`] cuts).
    ///
    /// [`Token::dropped`]: crate::Token::dropped
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The clock tokens read for [`Token::success_elapsed`](crate::Token::success_elapsed) (default
    /// [`SystemClock`]).
    pub fn clock<C2: Clock>(self, clock: C2) -> AimdBuilder<C2> {
        AimdBuilder {
            initial_limit: self.initial_limit,
            min_limit: self.min_limit,
            max_limit: self.max_limit,
            successes_to_grow: self.successes_to_grow,
            backoff_ratio: self.backoff_ratio,
            timeout: self.timeout,
            clock,
        }
    }

    /// Checks the settings and builds the limiter.
    ///
    /// # Errors
    ///
    /// [`BuildError::Zero`] for a zero limit, `successes_to_grow` or `timeout`; [`BuildError::TooLarge`] for a
    /// `max_limit` above 2³¹ − 1; [`BuildError::Exceeds`] unless `min_limit ≤ initial_limit ≤ max_limit`;
    /// [`BuildError::OutOfRange`] for a `backoff_ratio` outside (0, 1).
    pub fn build(self) -> Result<AdaptiveLimit<C>, BuildError> {
        check_limits(self.initial_limit, self.min_limit, self.max_limit)?;
        if self.successes_to_grow == 0 {
            return Err(BuildError::Zero {
                field: "successes_to_grow",
            });
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(BuildError::Zero { field: "timeout" });
        }
        if !(self.backoff_ratio > 0.0 && self.backoff_ratio < 1.0) {
            return Err(BuildError::OutOfRange {
                field: "backoff_ratio",
                expected: "greater than 0 and less than 1",
                value: self.backoff_ratio,
            });
        }
        debug_assert!(self.max_limit <= MAX_LIMIT);
        let algorithm = Aimd {
            limit: self.initial_limit,
            min_limit: self.min_limit,
            max_limit: self.max_limit,
            successes_to_grow: self.successes_to_grow,
            backoff_ratio: self.backoff_ratio,
            timeout: self.timeout,
            streak: 0,
        };
        Ok(AdaptiveLimit::from_parts(
            Algorithm::Aimd(algorithm),
            self.clock,
        ))
    }
}
