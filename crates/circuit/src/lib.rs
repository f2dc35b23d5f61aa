//! Circuit breaker, retry with jittered backoff, and adaptive concurrency limits.
//!
//! SKELETON: crate docs to be written by the lead.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
mod breaker;
mod clock;
mod error;
mod limit;
mod retry;
mod sync;
#[cfg(feature = "tower")]
mod tower;

pub use backoff::{Backoff, Delays, Jitter};
pub use breaker::{
    CircuitBreaker, CircuitBreakerBuilder, Event, Metrics, OwnedPermit, Permit, SlidingWindow, State,
    TripReason,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{BuildError, CallError, Rejected};
pub use limit::{
    Acquire, AcquireOwned, AdaptiveLimit, AimdBuilder, Gradient2Builder, LimitMetrics, OwnedToken, Token,
};
pub use retry::{GaveUp, NoHook, Retry, RetryBuilder, RetryError, RetryHook};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use tower::{
    CircuitBreakerLayer, CircuitBreakerService, EveryError, FailurePredicate, ResponseFuture,
};
