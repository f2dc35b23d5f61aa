//! Circuit breaker, retry with jittered backoff, and adaptive concurrency limits: the three ways a client
//! protects itself and the service it calls.
//!
//! - [`CircuitBreaker`] stops calling a service that keeps failing and lets a few probes find out when it is
//!   back. It trips on consecutive failures, or on a failure rate or slow-call rate over a count-based or
//!   time-based sliding window with a minimum number of calls; stays open for a wait that grows with a
//!   [`Backoff`]; admits a limited number of half-open probes; and has forced states, events, metrics and a
//!   manual [`try_acquire`](CircuitBreaker::try_acquire) + [`Permit`] protocol. The semantics follow
//!   resilience4j's; where they differ, the type's docs say so and why.
//! - [`Retry`] runs an operation again after a jittered [`Backoff`] (full or decorrelated jitter), with caps on
//!   attempts and total time and a predicate for which errors are worth retrying; sync and async.
//! - [`AdaptiveLimit`] bounds the calls in flight and moves the bound with what the service shows: AIMD (grow
//!   after a streak of successes, cut on a drop) or Netflix's Gradient2 (follow the ratio of long-term to
//!   short-term latency). Async and blocking waiters are served in arrival order.
//!
//! ```
//! use circuit::{Backoff, CallError, CircuitBreaker, Retry, State};
//! use std::time::Duration;
//!
//! let breaker = CircuitBreaker::builder()
//!     .consecutive_failures(3)
//!     .open_wait(Backoff::exponential(Duration::from_secs(1), Duration::from_secs(30))?)
//!     .build()?;
//!
//! // Three failures in a row open the breaker; the fourth call is refused without running.
//! for _ in 0..3 {
//!     let result = breaker.call(|| Err::<(), _>("connection refused"));
//!     assert_eq!(result, Err(CallError::Inner("connection refused")));
//! }
//! assert_eq!(breaker.state(), State::Open);
//! let refused = breaker.call(|| Ok::<_, &str>(42)).unwrap_err();
//! assert!(refused.is_rejected());
//!
//! // A retry that gives up after three attempts.
//! let retry = Retry::builder()
//!     .max_attempts(3)
//!     .backoff(Backoff::constant(Duration::from_millis(1)))
//!     .build()?;
//! let answer = retry.call(|attempt| if attempt < 3 { Err("busy") } else { Ok(attempt) });
//! assert_eq!(answer.unwrap(), 3);
//! # Ok::<(), circuit::BuildError>(())
//! ```
//!
//! # Cost
//!
//! The breaker's closed state takes no lock: admitting a call is one load of the state word, and recording a
//! success touches only words that stay shared between cores while the service is healthy (plus one
//! `fetch_add` when a count window is configured). An open breaker refuses a call in about 9 ns (measured on one thread): it
//! checks the open wait against [`SystemClock::coarse_now`](Clock::coarse_now) (`CLOCK_MONOTONIC_COARSE` on
//! Linux) rather than a precise clock. Transitions, which are rare, take a mutex. The figures, beside recloser
//! and failsafe, are in the workspace's `docs/benchmarks.md`.
//!
//! # Time
//!
//! Everything that reads time takes a [`Clock`] as a type parameter; [`ManualClock`] lets tests move time by
//! hand, so open waits, sliding windows and latencies are tested without sleeping.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `tokio` | `Retry::call_async`, which sleeps with `tokio::time::sleep`. Everything else async (the breaker's `call_async`, the limit's `acquire_async`, [`Retry::call_async_with_sleep`]) needs no runtime. |
//! | `tower` | `CircuitBreakerLayer`, a `tower::Layer` that puts a breaker in front of a service. |
//! | `loom` | test-only: the crate's atomics and locks under the loom model checker (with `--cfg loom`); outside semver. |
//!
//! # Verification
//!
//! Deterministic transition tests with a manual clock, a proptest of random call sequences against a simple
//! reference state machine, loom models of concurrent half-open probes, transitions and limit hand-offs,
//! statistical tests of the jitter's bounds and distribution, a simulation in which a service's capacity
//! drops from 100 to 20 and the adaptive limit follows it, Miri and ThreadSanitizer over the tests. The design
//! note (`docs/circuit.md` in the repository) explains each ordering and what it pairs with.

#![cfg_attr(docsrs, feature(doc_cfg))]

/// The design notes: the algorithm, every ordering and why, what was measured, and what was left out.
///
/// The same text as the repository's `docs/circuit.md`, here so it ships with the crate.
pub mod guide {
    #![doc = include_str!("../GUIDE.md")]
}

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
    CircuitBreaker, CircuitBreakerBuilder, Event, Metrics, OwnedPermit, Permit, SlidingWindow,
    State, TripReason,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{BuildError, CallError, Rejected};
pub use limit::{
    Acquire, AcquireOwned, AdaptiveLimit, AimdBuilder, Gradient2Builder, LimitMetrics, OwnedToken,
    Token,
};
pub use retry::{GaveUp, NoHook, Retry, RetryBuilder, RetryError, RetryHook};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use tower::{
    CircuitBreakerLayer, CircuitBreakerService, EveryError, FailurePredicate, ResponseFuture,
};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
