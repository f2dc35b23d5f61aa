//! The circuit breaker. SKELETON: public surface fixed by the lead; bodies to be written (helper "breaker").

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::clock::{Clock, SystemClock};
use crate::error::{BuildError, CallError, Rejected};
use crate::sync::Arc;

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls go through; outcomes are recorded and may trip the breaker.
    Closed,
    /// Calls are rejected until the open wait is over.
    Open,
    /// A limited number of probe calls go through; their outcomes close or re-open the breaker.
    HalfOpen,
    /// Rejects every call until [`reset`](CircuitBreaker::reset).
    ForcedOpen,
    /// Admits every call and records metrics, but never trips, until [`reset`](CircuitBreaker::reset).
    ForcedClosed,
    /// Admits every call and records nothing, until [`reset`](CircuitBreaker::reset).
    Disabled,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
            State::ForcedOpen => "forced open",
            State::ForcedClosed => "forced closed",
            State::Disabled => "disabled",
        })
    }
}

/// Which recent calls the rate thresholds look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindow {
    kind: WindowKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindowKind {
    Count(u32),
    Time { span: Duration, buckets: u32 },
}

impl SlidingWindow {
    /// The last `calls` calls.
    pub fn count(calls: u32) -> Self {
        Self {
            kind: WindowKind::Count(calls),
        }
    }

    /// The calls of the last `span`, aged out in ten steps of `span / 10`.
    pub fn time(span: Duration) -> Self {
        Self::time_with_buckets(span, 10)
    }

    /// The calls of the last `span`, aged out in `buckets` steps of `span / buckets`.
    pub fn time_with_buckets(span: Duration, buckets: u32) -> Self {
        Self {
            kind: WindowKind::Time { span, buckets },
        }
    }
}

/// Something that happened to a breaker, given to its listener and logged with `tracing`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The breaker moved from one state to another.
    StateTransition {
        /// The state it left.
        from: State,
        /// The state it entered.
        to: State,
    },
    /// A call was refused.
    Rejected {
        /// The state that refused it.
        state: State,
    },
}

/// A snapshot of a breaker's counters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// The state when the snapshot was taken.
    pub state: State,
}

/// Builds a [`CircuitBreaker`]; every setting has a default (see each method).
pub struct CircuitBreakerBuilder<C = SystemClock> {
    clock: C,
}

impl<C> fmt::Debug for CircuitBreakerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder").finish_non_exhaustive()
    }
}

impl<C: Clock> CircuitBreakerBuilder<C> {
    /// A name for events and `tracing` spans.
    pub fn name(self, _name: impl Into<String>) -> Self {
        todo!()
    }
    /// Trip after this many failures in a row (default 5).
    pub fn consecutive_failures(self, _failures: u32) -> Self {
        todo!()
    }
    /// Do not trip on consecutive failures (only on rates, if set).
    pub fn disable_consecutive_failures(self) -> Self {
        todo!()
    }
    /// Trip when the failure rate in the window reaches this, in (0, 1] (off by default).
    pub fn failure_rate(self, _threshold: f64) -> Self {
        todo!()
    }
    /// Trip when the slow-call rate in the window reaches this, in (0, 1] (off by default).
    pub fn slow_call_rate(self, _threshold: f64) -> Self {
        todo!()
    }
    /// A call taking at least this long is slow (default 60 s).
    pub fn slow_call_duration(self, _duration: Duration) -> Self {
        todo!()
    }
    /// The window the rates are computed over (default: the last 100 calls).
    pub fn sliding_window(self, _window: SlidingWindow) -> Self {
        todo!()
    }
    /// Rates are only acted on once the window holds this many calls (default 100).
    pub fn minimum_calls(self, _calls: u32) -> Self {
        todo!()
    }
    /// How long to stay open, growing with each failed probe round.
    pub fn open_wait(self, _backoff: Backoff) -> Self {
        todo!()
    }
    /// How many probe calls half-open admits (default 2).
    pub fn half_open_permits(self, _permits: u32) -> Self {
        todo!()
    }
    /// How many probe successes close the breaker (default 2).
    pub fn successes_to_close(self, _successes: u32) -> Self {
        todo!()
    }
    /// Receives every [`Event`].
    pub fn listener(self, _listener: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        todo!()
    }
    /// Uses `clock` instead of the system clock.
    pub fn clock<C2: Clock>(self, _clock: C2) -> CircuitBreakerBuilder<C2> {
        todo!()
    }
    /// Checks the settings and builds the breaker.
    ///
    /// # Errors
    ///
    /// [`BuildError`] naming the first invalid field.
    pub fn build(self) -> Result<CircuitBreaker<C>, BuildError> {
        todo!()
    }
}

/// A circuit breaker.
pub struct CircuitBreaker<C = SystemClock> {
    clock: C,
}

impl<C> fmt::Debug for CircuitBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker").finish_non_exhaustive()
    }
}

impl CircuitBreaker<SystemClock> {
    /// A builder with the defaults.
    pub fn builder() -> CircuitBreakerBuilder<SystemClock> {
        CircuitBreakerBuilder {
            clock: SystemClock::new(),
        }
    }

    /// A breaker with every default.
    pub fn new() -> Self {
        todo!()
    }
}

impl Default for CircuitBreaker<SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> CircuitBreaker<C> {
    /// The current state.
    pub fn state(&self) -> State {
        let _ = &self.clock;
        todo!()
    }
    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        todo!()
    }
    /// Asks to make one call.
    ///
    /// # Errors
    ///
    /// [`Rejected`] when open, forced open, or half-open with every probe permit taken.
    pub fn try_acquire(&self) -> Result<Permit<'_, C>, Rejected> {
        todo!()
    }
    /// Like [`try_acquire`](Self::try_acquire), with a permit that owns a reference to the breaker.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit<C>, Rejected> {
        todo!()
    }
    /// Runs `f` if permitted; `Err` is a failure.
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] without running `f`, or [`CallError::Inner`] with `f`'s error.
    pub fn call<T, E>(&self, _f: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        todo!()
    }
    /// Runs `f` if permitted; an `Err` for which `is_failure` is false counts as a success.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub fn call_with<T, E>(
        &self,
        _is_failure: impl FnOnce(&E) -> bool,
        _f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, CallError<E>> {
        todo!()
    }
    /// Awaits `future` if permitted; `Err` is a failure; dropping the returned future counts as ignored.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub async fn call_async<T, E>(
        &self,
        _future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        todo!()
    }
    /// Like [`call_async`](Self::call_async) with a failure predicate.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub async fn call_async_with<T, E>(
        &self,
        _is_failure: impl FnOnce(&E) -> bool,
        _future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        todo!()
    }
    /// Rejects every call until [`reset`](Self::reset).
    pub fn force_open(&self) {
        todo!()
    }
    /// Admits every call, records, never trips, until [`reset`](Self::reset).
    pub fn force_closed(&self) {
        todo!()
    }
    /// Admits every call and records nothing until [`reset`](Self::reset).
    pub fn disable(&self) {
        todo!()
    }
    /// Back to closed with empty counters and the open wait's backoff restarted.
    pub fn reset(&self) {
        todo!()
    }
}

/// Permission for one call; give the verdict with [`success`](Permit::success) or
/// [`failure`](Permit::failure). Dropped without a verdict, the call counts as ignored.
#[must_use = "a permit dropped without a verdict counts as an ignored call"]
pub struct Permit<'a, C = SystemClock> {
    breaker: &'a CircuitBreaker<C>,
}

impl<C> fmt::Debug for Permit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

impl<C: Clock> Permit<'_, C> {
    /// The call succeeded.
    pub fn success(self) {
        let _ = self.breaker;
        todo!()
    }
    /// The call failed.
    pub fn failure(self) {
        todo!()
    }
    /// The call's outcome says nothing about the service (e.g. cancelled): not recorded.
    pub fn ignore(self) {
        todo!()
    }
}

/// A [`Permit`] that holds an `Arc` of its breaker, for futures and services that must be `'static`.
#[must_use = "a permit dropped without a verdict counts as an ignored call"]
pub struct OwnedPermit<C = SystemClock> {
    breaker: Arc<CircuitBreaker<C>>,
}

impl<C> fmt::Debug for OwnedPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit").finish_non_exhaustive()
    }
}

impl<C: Clock> OwnedPermit<C> {
    /// The call succeeded.
    pub fn success(self) {
        let _ = &self.breaker;
        todo!()
    }
    /// The call failed.
    pub fn failure(self) {
        todo!()
    }
    /// The call's outcome says nothing about the service: not recorded.
    pub fn ignore(self) {
        todo!()
    }
}
