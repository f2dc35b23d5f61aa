//! `tower` integration: [`CircuitBreakerLayer`] puts a [`CircuitBreaker`] in front of any
//! [`Service`](tower_service::Service).
//!
//! # How a request goes through
//!
//! 1. `poll_ready` asks the inner service only. The breaker takes no part in readiness (see below).
//! 2. `call` asks the breaker for an [`OwnedPermit`]. If it refuses, the inner service is not called and the
//!    returned future is ready at once with [`CallError::Rejected`], carrying the state and, when the breaker
//!    knows it, how long until it lets a probe through ([`Rejected::retry_after`]).
//! 3. Otherwise the inner service is called and the permit travels inside the response future. When the
//!    inner future completes, `Ok` is a success and `Err` a failure (or, with
//!    [`with_failure_predicate`](CircuitBreakerLayer::with_failure_predicate), a failure only when the
//!    predicate says so; an error it does not count is recorded as a success, as
//!    [`CircuitBreaker::call_with`] does). The breaker times the call from `call` to completion, so the
//!    slow-call rate sees the whole response time.
//! 4. A response future dropped before it completes (a timeout above this layer, a cancelled request, a
//!    `select!` that went the other way) drops its permit without a verdict: the call counts as ignored. A
//!    cancellation says nothing about the service's health, and in half-open the probe slot comes back.
//!
//! # Why the permit is taken in `call`, not in `poll_ready`
//!
//! Readiness in tower is about the inner service's capacity (a connection pool with a free connection, a
//! concurrency limit with room), and a caller may poll for readiness and then never call: it may drop the
//! service, or a balancer may poll several services and call only one. A permit reserved in `poll_ready`
//! would then be held by nobody who will ever give a verdict. In closed state that costs little, but in
//! half-open the breaker admits a handful of probes, and a probe slot parked in an idle service's readiness
//! would keep the breaker from closing until that service is dropped. Reporting "not ready" while open would
//! be worse: nothing would wake the caller when the open wait ends (the breaker has no timer), and callers
//! would queue instead of failing fast. So an open breaker shows up as a fast error from `call`, and load
//! shedding or retries above this layer see it as an ordinary error.
//!
//! # Error type
//!
//! The service's error is [`CallError<S::Error>`], not tower's customary `BoxError`. It keeps both cases
//! typed: a caller matches [`CallError::Rejected`] (and reads `retry_after`) or [`CallError::Inner`] without
//! downcasting, and a layer above with a typed error policy (a retry policy that should not retry a
//! rejection, say) can tell them apart by a `match`. It still composes with layers that want
//! `Into<BoxError>`: when the inner error is itself `BoxError` (the inner stack holds a timeout, a buffer, …)
//! or any `std::error::Error + Send + Sync + 'static`, `CallError<E>` is an error of that kind and converts
//! into `BoxError` with `?` or `.into()`. Boxed, it downcasts to `CallError<E>`.
//!
//! # The response future
//!
//! [`ResponseFuture`] is a named type (it can be stored in a struct or named in a `Service` impl) and
//! allocates nothing: it is an enum of "rejected, ready now" and "the inner future, the permit and the
//! predicate", pinned with `pin-project-lite`.
//!
//! # No retry layer
//!
//! There is no retry layer here: it does not fall out of the crate's `Retry`. `Retry` re-runs a closure
//! and sleeps with tokio or a sleep function the caller passes; a tower retry must also clone the request
//! and the service for each attempt and wait for the service's readiness before each one, which is what
//! `tower::retry::Retry` with a `Policy` already does. Such a policy can read [`CallError::Rejected`] and its
//! [`Rejected::retry_after`] to wait out an open breaker instead of hammering it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::{CircuitBreaker, OwnedPermit};
use crate::clock::{Clock, SystemClock};
use crate::error::{CallError, Rejected};
use crate::sync::Arc;

/// Decides whether a service's error counts against the breaker.
///
/// Implemented by [`EveryError`] (the default: every `Err` is a failure) and by every
/// `Fn(&E) -> bool + Clone` closure, which [`CircuitBreakerLayer::with_failure_predicate`] takes. An error
/// the predicate does not count is recorded as a success: the service answered.
pub trait FailurePredicate<E> {
    /// Whether `error` is a failure of the service (true) or a normal answer (false).
    fn is_failure(&self, error: &E) -> bool;
}

/// The default [`FailurePredicate`]: every error the inner service returns is a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EveryError;

impl<E> FailurePredicate<E> for EveryError {
    #[inline]
    fn is_failure(&self, _error: &E) -> bool {
        true
    }
}

impl<E, F> FailurePredicate<E> for F
where
    F: Fn(&E) -> bool,
{
    #[inline]
    fn is_failure(&self, error: &E) -> bool {
        self(error)
    }
}

/// A [`Layer`] that wraps services in a [`CircuitBreakerService`] sharing one breaker.
///
/// Every service the layer makes (and every clone of them) goes through the same breaker, so failures seen
/// by one clone open the breaker for all.
///
/// - **Readiness** is the inner service's alone. The breaker is asked in `call`, not in `poll_ready`: a caller
///   may poll for readiness and never call (a balancer polls several services and calls one), and a permit
///   reserved there would hold one of half-open's few probe slots for nobody. An open breaker does not make
///   the service unready either (nothing would wake the caller when the wait ends); it fails calls fast.
/// - **Rejected** calls never reach the inner service: the response future is ready at once with
///   [`CallError::Rejected`], whose [`Rejected::retry_after`] says how long the breaker stays open.
/// - **Outcomes** are given when the inner future completes: `Ok` is a success, `Err` a failure (or what
///   [`with_failure_predicate`](Self::with_failure_predicate) decides). The call is timed from `call` to
///   completion for the slow-call rate.
/// - A response future **dropped** before completion (a timeout above, a cancelled request) counts as
///   ignored: neither success nor failure, and a half-open probe slot is given back.
/// - **Errors** are [`CallError<S::Error>`](CallError): typed, so callers and retry policies `match`
///   rejections without downcasting; when the inner error is `BoxError` or any `Error + Send + Sync`,
///   `CallError` converts into `BoxError` for layers that want one (and downcasts back to `CallError<E>`).
/// - The response future ([`ResponseFuture`]) is a named type and allocates nothing.
///
/// ```
/// # use circuit::{CallError, CircuitBreaker, CircuitBreakerLayer};
/// # use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = CircuitBreaker::builder().consecutive_failures(3).build()?;
/// let mut service = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker))
///     .service(service_fn(|request: u32| async move { Ok::<_, std::io::Error>(request * 2) }));
/// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// # runtime.block_on(async {
/// let response = service.ready().await?.call(21).await?;
/// assert_eq!(response, 42);
/// # Ok::<_, CallError<std::io::Error>>(())
/// # })?;
/// # Ok(())
/// # }
/// ```
pub struct CircuitBreakerLayer<C = SystemClock, P = EveryError> {
    breaker: Arc<CircuitBreaker<C>>,
    predicate: P,
}

impl<C> CircuitBreakerLayer<C, EveryError> {
    /// A layer around `breaker`, counting every error of the inner service as a failure.
    pub fn new(breaker: CircuitBreaker<C>) -> Self {
        Self::from_arc(Arc::new(breaker))
    }

    /// A layer around a breaker shared with other code (another layer, direct `call`s, a metrics exporter).
    pub fn from_arc(breaker: Arc<CircuitBreaker<C>>) -> Self {
        Self {
            breaker,
            predicate: EveryError,
        }
    }
}

impl<C, P> CircuitBreakerLayer<C, P> {
    /// Counts an inner service's error as a failure only when `predicate` returns true for it; other errors
    /// are passed through and recorded as successes (the service answered, e.g. a "not found").
    ///
    /// The predicate is cloned into every service the layer makes, so it should be cheap to clone (a closure
    /// without captures, or one holding an `Arc`).
    ///
    /// ```
    /// # use circuit::{CircuitBreaker, CircuitBreakerLayer};
    /// # use std::io;
    /// let layer = CircuitBreakerLayer::new(CircuitBreaker::new())
    ///     .with_failure_predicate(|error: &io::Error| error.kind() != io::ErrorKind::NotFound);
    /// # let _ = layer;
    /// ```
    pub fn with_failure_predicate<Q>(self, predicate: Q) -> CircuitBreakerLayer<C, Q> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            predicate,
        }
    }

    /// The breaker the layer's services share.
    pub fn breaker(&self) -> &Arc<CircuitBreaker<C>> {
        &self.breaker
    }
}

impl<C, P: Clone> Clone for CircuitBreakerLayer<C, P> {
    fn clone(&self) -> Self {
        Self {
            breaker: Arc::clone(&self.breaker),
            predicate: self.predicate.clone(),
        }
    }
}

impl<C, P> fmt::Debug for CircuitBreakerLayer<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, C, P: Clone> Layer<S> for CircuitBreakerLayer<C, P> {
    type Service = CircuitBreakerService<S, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: Arc::clone(&self.breaker),
            predicate: self.predicate.clone(),
        }
    }
}

/// A [`Service`] that asks a [`CircuitBreaker`] before calling the inner service and reports the outcome.
///
/// Made by [`CircuitBreakerLayer`] or [`CircuitBreakerService::new`]; the protocol (readiness is the inner
/// service's, the permit is taken in `call`, a rejected call never reaches the inner service, a response
/// future dropped early counts as ignored) is described on [`CircuitBreakerLayer`].
pub struct CircuitBreakerService<S, C = SystemClock, P = EveryError> {
    inner: S,
    breaker: Arc<CircuitBreaker<C>>,
    predicate: P,
}

impl<S, C> CircuitBreakerService<S, C, EveryError> {
    /// Wraps `inner` with `breaker`, counting every error of `inner` as a failure.
    pub fn new(inner: S, breaker: Arc<CircuitBreaker<C>>) -> Self {
        Self {
            inner,
            breaker,
            predicate: EveryError,
        }
    }
}

impl<S, C, P> CircuitBreakerService<S, C, P> {
    /// The breaker in front of the inner service.
    pub fn breaker(&self) -> &Arc<CircuitBreaker<C>> {
        &self.breaker
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C, P: Clone> Clone for CircuitBreakerService<S, C, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            breaker: Arc::clone(&self.breaker),
            predicate: self.predicate.clone(),
        }
    }
}

impl<S: fmt::Debug, C, P> fmt::Debug for CircuitBreakerService<S, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, Request, C, P> Service<Request> for CircuitBreakerService<S, C, P>
where
    S: Service<Request>,
    C: Clock,
    P: FailurePredicate<S::Error> + Clone,
{
    type Response = S::Response;
    type Error = CallError<S::Error>;
    type Future = ResponseFuture<S::Future, C, P>;

    /// The inner service's readiness, unchanged; the breaker is not consulted (see the module docs).
    ///
    /// An error from the inner service's `poll_ready` is returned as [`CallError::Inner`] and not recorded:
    /// no call was made.
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(CallError::Inner)
    }

    /// Takes a permit and calls the inner service, or returns a future that is ready with
    /// [`CallError::Rejected`] without calling it.
    #[inline]
    fn call(&mut self, request: Request) -> Self::Future {
        let state = match self.breaker.try_acquire_owned() {
            Ok(permit) => State::Called {
                future: self.inner.call(request),
                permit: Some(permit),
                predicate: self.predicate.clone(),
            },
            Err(rejected) => State::Rejected { rejected },
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The future of a [`CircuitBreakerService`] call: the inner service's response, or a rejection.
    ///
    /// Dropped before it completes, it drops its permit and the call counts as ignored.
    pub struct ResponseFuture<F, C = SystemClock, P = EveryError> {
        #[pin]
        state: State<F, C, P>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F, C, P> {
        Rejected {
            rejected: Rejected,
        },
        Called {
            #[pin]
            future: F,
            // `None` once the verdict is given, so a poll after completion cannot give a second one.
            permit: Option<OwnedPermit<C>>,
            predicate: P,
        },
    }
}

impl<F, C, P> fmt::Debug for ResponseFuture<F, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Rejected { rejected } => f
                .debug_struct("ResponseFuture")
                .field("rejected", rejected)
                .finish(),
            State::Called { permit, .. } => f
                .debug_struct("ResponseFuture")
                .field("permit", permit)
                .finish_non_exhaustive(),
        }
    }
}

impl<F, T, E, C, P> Future for ResponseFuture<F, C, P>
where
    F: Future<Output = Result<T, E>>,
    C: Clock,
    P: FailurePredicate<E>,
{
    type Output = Result<T, CallError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Rejected { rejected } => {
                Poll::Ready(Err(CallError::Rejected(*rejected)))
            }
            StateProjection::Called {
                future,
                permit,
                predicate,
            } => {
                let output = match future.poll(cx) {
                    Poll::Ready(output) => output,
                    Poll::Pending => return Poll::Pending,
                };
                let failed = match &output {
                    Ok(_) => false,
                    Err(error) => predicate.is_failure(error),
                };
                if let Some(permit) = permit.take() {
                    if failed {
                        permit.failure();
                    } else {
                        permit.success();
                    }
                }
                Poll::Ready(output.map_err(CallError::Inner))
            }
        }
    }
}
