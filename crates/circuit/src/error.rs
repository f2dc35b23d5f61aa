//! Errors: [`BuildError`] for configuration that cannot work, [`Rejected`] when a breaker refuses a call,
//! [`CallError`] for a call made through a breaker.

use std::time::Duration;

use crate::breaker::State;

/// A configuration that cannot work, naming the field that is wrong and the value it had.
///
/// Every builder in this crate (breaker, retry, adaptive limit, backoff) validates in `build()` (or in the
/// constructor, for [`Backoff`](crate::Backoff)) and never panics on bad input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A rate threshold is not in `(0, 1]` (or is not a number).
    #[error("`{field}` must be in (0, 1], got {value}")]
    RateOutOfRange {
        /// The builder field, e.g. `failure_rate`.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A count, size or duration that must be positive is zero.
    #[error("`{field}` must be greater than zero")]
    Zero {
        /// The builder field, e.g. `half_open_permits`.
        field: &'static str,
    },
    /// A count is larger than this crate can represent for it.
    #[error("`{field}` is {value}, above the largest supported value {max}")]
    TooLarge {
        /// The builder field.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A backoff's maximum delay is below its base delay.
    #[error("`{field}` ({max:?}) is below the backoff's base delay ({base:?})")]
    MaxBelowBase {
        /// The field, e.g. `max` (or `open_wait.max` when a builder forwards it).
        field: &'static str,
        /// The base delay.
        base: Duration,
        /// The maximum delay given.
        max: Duration,
    },
    /// A growth factor or ratio is out of its range.
    #[error("`{field}` must be {expected}, got {value}")]
    OutOfRange {
        /// The field, e.g. `factor` or `backoff_ratio`.
        field: &'static str,
        /// The accepted range, in words, e.g. "finite and at least 1".
        expected: &'static str,
        /// The value given.
        value: f64,
    },
    /// Two fields contradict each other.
    #[error("`{field}` ({value}) must not exceed `{limit_field}` ({limit})")]
    Exceeds {
        /// The field that is too large.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The field it is bounded by.
        limit_field: &'static str,
        /// That field's value.
        limit: u64,
    },
}

/// A breaker refused a call: it is open (or forced open), or half-open with every probe permit taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker rejected the call: it is {state}")]
pub struct Rejected {
    pub(crate) state: State,
    /// The rest of the open wait in nanoseconds, kept as an integer so that the rejection path does not
    /// pay for the division that building a `Duration` costs; never zero (the wait is over at zero).
    pub(crate) retry_after_nanos: Option<std::num::NonZeroU64>,
}

impl Rejected {
    /// The state the breaker was in when it refused the call.
    pub fn state(&self) -> State {
        self.state
    }

    /// How long until the breaker lets a probe through, when it knows: the rest of the open wait (`None` when
    /// forced open or half-open, where it depends on other calls).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_nanos
            .map(|nanos| Duration::from_nanos(nanos.get()))
    }
}

/// The result of a call made through a breaker that failed: refused by the breaker, or the call's own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError<E> {
    /// The breaker refused the call; the function was not run.
    #[error(transparent)]
    Rejected(Rejected),
    /// The function ran and returned this error.
    #[error("{0}")]
    Inner(E),
}

impl<E> CallError<E> {
    /// The call's own error, or `None` if the breaker refused the call.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Rejected(_) => None,
            CallError::Inner(error) => Some(error),
        }
    }

    /// Whether the breaker refused the call.
    pub fn is_rejected(&self) -> bool {
        matches!(self, CallError::Rejected(_))
    }
}
