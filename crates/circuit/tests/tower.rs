//! `CircuitBreakerLayer` under `tower::ServiceBuilder`: outcomes reach the breaker, rejections never reach the
//! inner service, half-open probes, dropped response futures, readiness.
//!
//! Run with `cargo test -p circuit --features tower --test tower`. The futures here are driven by polling
//! with a no-op waker: every inner future is either ready at its first poll or never ready, so no runtime
//! (and no timer) is involved and the tests run under Miri unchanged.
#![cfg(feature = "tower")]

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use circuit::{Backoff, CallError, CircuitBreaker, CircuitBreakerLayer, ManualClock, State};
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt, service_fn};

const OPEN_WAIT: Duration = Duration::from_secs(10);

/// Polls `future` once with a waker that does nothing.
fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Drives a future that must complete at its first poll.
fn now<F: Future>(future: F) -> F::Output {
    match poll_once(pin!(future)) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("future was expected to be ready at once"),
    }
}

/// A breaker on a manual clock that opens after `failures` consecutive failures, stays open for
/// `OPEN_WAIT`, and in half-open admits `probes` probes and closes after as many successes.
fn breaker(clock: &ManualClock, failures: u32, probes: u32) -> Arc<CircuitBreaker<ManualClock>> {
    Arc::new(
        CircuitBreaker::builder()
            .consecutive_failures(failures)
            .open_wait(Backoff::constant(OPEN_WAIT))
            .half_open_permits(probes)
            .successes_to_close(probes)
            .clock(clock.clone())
            .build()
            .expect("valid configuration"),
    )
}

/// What the inner service does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Ok,
    Fail,
    /// A future that never completes (a call still in flight).
    Hang,
}

/// An inner service that answers as told and counts the calls that reach it.
fn counting_service(
    calls: &Arc<AtomicUsize>,
) -> impl Service<Reply, Response = u32, Error = io::Error, Future: Unpin> + Clone {
    let calls = Arc::clone(calls);
    service_fn(move |reply: Reply| {
        calls.fetch_add(1, Ordering::Relaxed);
        let outcome: std::pin::Pin<Box<dyn Future<Output = io::Result<u32>> + Send>> = match reply {
            Reply::Ok => Box::pin(std::future::ready(Ok(7))),
            Reply::Fail => Box::pin(std::future::ready(Err(io::Error::other("boom")))),
            Reply::Hang => Box::pin(std::future::pending()),
        };
        outcome
    })
}

/// Waits for readiness and makes one call that completes at once.
fn call_now<R, S: Service<R>>(service: &mut S, request: R) -> Result<S::Response, S::Error> {
    now(service.ready())?;
    now(service.call(request))
}

#[test]
fn success_passes_through() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 5, 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::from_arc(Arc::clone(&breaker)))
        .service(counting_service(&calls));
    for _ in 0..20 {
        assert_eq!(call_now(&mut service, Reply::Ok).unwrap(), 7);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 20);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn inner_error_is_returned_as_inner() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 5, 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service = CircuitBreakerLayer::from_arc(breaker).layer(counting_service(&calls));
    match call_now(&mut service, Reply::Fail) {
        Err(CallError::Inner(error)) => assert_eq!(error.to_string(), "boom"),
        other => panic!("expected the inner error, got {other:?}"),
    }
}

#[test]
fn consecutive_failures_trip_and_rejections_skip_the_inner_service() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 5, 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::from_arc(Arc::clone(&breaker)))
        .service(counting_service(&calls));

    for failure in 1..=4 {
        assert!(matches!(
            call_now(&mut service, Reply::Fail),
            Err(CallError::Inner(_))
        ));
        assert_eq!(
            breaker.state(),
            State::Closed,
            "open after only {failure} failures"
        );
    }
    assert!(matches!(
        call_now(&mut service, Reply::Fail),
        Err(CallError::Inner(_))
    ));
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(calls.load(Ordering::Relaxed), 5);

    for _ in 0..10 {
        match call_now(&mut service, Reply::Ok) {
            Err(CallError::Rejected(rejected)) => {
                assert_eq!(rejected.state(), State::Open);
                let retry_after = rejected.retry_after().expect("open knows its wait");
                assert!(retry_after <= OPEN_WAIT && retry_after > Duration::ZERO);
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        5,
        "a rejected call reached the inner service"
    );
}

#[test]
fn a_success_resets_the_failure_streak() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 5, 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service =
        CircuitBreakerLayer::from_arc(Arc::clone(&breaker)).layer(counting_service(&calls));
    for _ in 0..10 {
        for _ in 0..4 {
            let _ = call_now(&mut service, Reply::Fail);
        }
        call_now(&mut service, Reply::Ok).unwrap();
    }
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn half_open_probe_after_the_wait_closes_the_breaker() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 5, 1);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service =
        CircuitBreakerLayer::from_arc(Arc::clone(&breaker)).layer(counting_service(&calls));
    for _ in 0..5 {
        let _ = call_now(&mut service, Reply::Fail);
    }
    assert_eq!(breaker.state(), State::Open);

    clock.advance(OPEN_WAIT - Duration::from_millis(1));
    assert!(call_now(&mut service, Reply::Ok).unwrap_err().is_rejected());
    assert_eq!(calls.load(Ordering::Relaxed), 5);

    clock.advance(Duration::from_millis(1));
    assert_eq!(
        call_now(&mut service, Reply::Ok).unwrap(),
        7,
        "the probe was not let through"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 6);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn failed_probe_reopens() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 5, 1);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service =
        CircuitBreakerLayer::from_arc(Arc::clone(&breaker)).layer(counting_service(&calls));
    for _ in 0..5 {
        let _ = call_now(&mut service, Reply::Fail);
    }
    clock.advance(OPEN_WAIT);
    assert!(matches!(
        call_now(&mut service, Reply::Fail),
        Err(CallError::Inner(_))
    ));
    assert_eq!(breaker.state(), State::Open);
    assert!(call_now(&mut service, Reply::Ok).unwrap_err().is_rejected());
    assert_eq!(calls.load(Ordering::Relaxed), 6);
}

#[test]
fn probe_in_flight_holds_its_slot_and_a_dropped_probe_returns_it() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 5, 1);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service =
        CircuitBreakerLayer::from_arc(Arc::clone(&breaker)).layer(counting_service(&calls));
    for _ in 0..5 {
        let _ = call_now(&mut service, Reply::Fail);
    }
    clock.advance(OPEN_WAIT);

    now(service.ready()).unwrap();
    let mut probe = service.call(Reply::Hang);
    assert!(poll_once(std::pin::Pin::new(&mut probe)).is_pending());
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(calls.load(Ordering::Relaxed), 6);

    // The only probe permit is taken: a second call is refused in half-open without reaching the service.
    match call_now(&mut service, Reply::Ok) {
        Err(CallError::Rejected(rejected)) => assert_eq!(rejected.state(), State::HalfOpen),
        other => panic!("expected a half-open rejection, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::Relaxed), 6);

    // Dropping the in-flight probe gives its slot back without a verdict: still half-open, and the next
    // call is a probe again.
    drop(probe);
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(call_now(&mut service, Reply::Ok).unwrap(), 7);
    assert_eq!(calls.load(Ordering::Relaxed), 7);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn dropped_response_futures_do_not_count() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 5, 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service =
        CircuitBreakerLayer::from_arc(Arc::clone(&breaker)).layer(counting_service(&calls));
    for _ in 0..4 {
        let _ = call_now(&mut service, Reply::Fail);
    }
    // Many calls whose futures are dropped: polled once and pending (in flight), or never polled. Counted
    // as failures they would open the breaker at the first; counted as successes they would reset the
    // streak.
    for round in 0..10 {
        now(service.ready()).unwrap();
        let mut future = service.call(Reply::Hang);
        if round % 2 == 0 {
            assert!(poll_once(std::pin::Pin::new(&mut future)).is_pending());
        }
        drop(future);
        now(service.ready()).unwrap();
        drop(service.call(Reply::Fail));
    }
    assert_eq!(calls.load(Ordering::Relaxed), 24);
    assert_eq!(breaker.state(), State::Closed);
    // The streak of four is intact: one more failure is the fifth.
    let _ = call_now(&mut service, Reply::Fail);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn failure_predicate_decides_what_counts() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 5, 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CircuitBreakerLayer::from_arc(Arc::clone(&breaker))
        .with_failure_predicate(|error: &io::Error| error.to_string() != "boom");
    let mut service = ServiceBuilder::new()
        .layer(layer)
        .service(counting_service(&calls));
    for _ in 0..50 {
        // The error still reaches the caller; it just does not count against the service.
        assert!(matches!(
            call_now(&mut service, Reply::Fail),
            Err(CallError::Inner(_))
        ));
    }
    assert_eq!(breaker.state(), State::Closed);

    let strict = CircuitBreakerLayer::from_arc(Arc::clone(&breaker))
        .with_failure_predicate(|error: &io::Error| error.to_string() == "boom");
    let mut service = strict.layer(counting_service(&calls));
    for _ in 0..5 {
        let _ = call_now(&mut service, Reply::Fail);
    }
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn clones_and_layered_services_share_one_breaker() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 5, 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CircuitBreakerLayer::from_arc(Arc::clone(&breaker));
    let mut first = layer.layer(counting_service(&calls));
    let mut second = first.clone();
    let mut third = layer.clone().layer(counting_service(&calls));
    for _ in 0..2 {
        let _ = call_now(&mut first, Reply::Fail);
        let _ = call_now(&mut second, Reply::Fail);
    }
    let _ = call_now(&mut third, Reply::Fail);
    assert_eq!(breaker.state(), State::Open);
    for service in [&mut first, &mut second, &mut third] {
        assert!(call_now(service, Reply::Ok).unwrap_err().is_rejected());
    }
    assert_eq!(calls.load(Ordering::Relaxed), 5);
    assert!(Arc::ptr_eq(first.breaker(), &breaker));
}

/// An inner service whose readiness is switched by hand and that counts `poll_ready` calls.
#[derive(Clone)]
struct Gate {
    open: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
    polls: Arc<AtomicUsize>,
}

impl Service<()> for Gate {
    type Response = ();
    type Error = io::Error;
    type Future = std::future::Ready<io::Result<()>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        if self.broken.load(Ordering::Relaxed) {
            Poll::Ready(Err(io::Error::other("not ready")))
        } else if self.open.load(Ordering::Relaxed) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, (): ()) -> Self::Future {
        std::future::ready(Ok(()))
    }
}

#[test]
fn poll_ready_is_the_inner_services_and_takes_no_permit() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 5, 1);
    let gate = Gate {
        open: Arc::new(AtomicBool::new(false)),
        broken: Arc::new(AtomicBool::new(false)),
        polls: Arc::new(AtomicUsize::new(0)),
    };
    let mut service = CircuitBreakerLayer::from_arc(Arc::clone(&breaker)).layer(gate.clone());
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);

    // Pending inner service: pending outer service, the poll went through.
    assert!(service.poll_ready(&mut cx).is_pending());
    assert_eq!(gate.polls.load(Ordering::Relaxed), 1);
    gate.open.store(true, Ordering::Relaxed);
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));

    // An open breaker does not make the service unready: the rejection comes from `call`.
    breaker.force_open();
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    assert!(now(service.call(())).unwrap_err().is_rejected());
    breaker.reset();

    // Readiness errors come back as `Inner` and are not recorded: no call was made.
    gate.broken.store(true, Ordering::Relaxed);
    for _ in 0..20 {
        match service.poll_ready(&mut cx) {
            Poll::Ready(Err(CallError::Inner(error))) => assert_eq!(error.to_string(), "not ready"),
            other => panic!("expected the inner readiness error, got {other:?}"),
        }
    }
    assert_eq!(breaker.state(), State::Closed);
    gate.broken.store(false, Ordering::Relaxed);

    // Readiness reserves no probe slot: in half-open with one permit, many services polled ready and never
    // called leave the slot for the one that calls.
    let mut tripper =
        CircuitBreakerLayer::from_arc(Arc::clone(&breaker)).layer(service_fn(|(): ()| async {
            Err::<(), _>(io::Error::other("boom"))
        }));
    for _ in 0..5 {
        let _ = call_now(&mut tripper, ());
    }
    assert_eq!(breaker.state(), State::Open);
    clock.advance(OPEN_WAIT);
    let mut idle: Vec<_> = (0..3).map(|_| service.clone()).collect();
    for other in &mut idle {
        assert!(matches!(other.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    }
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    now(service.call(())).unwrap();
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn errors_compose_with_box_error_layers() {
    let clock = ManualClock::new();
    let breaker = breaker(&clock, 1, 1);
    let calls = Arc::new(AtomicUsize::new(0));
    // An inner stack whose error is already `BoxError`, and a layer above that wants `Into<BoxError>`.
    let mut service = ServiceBuilder::new()
        .map_err(Into::<BoxError>::into)
        .layer(CircuitBreakerLayer::from_arc(Arc::clone(&breaker)))
        .map_err(Into::<BoxError>::into)
        .service(counting_service(&calls));

    let error = call_now(&mut service, Reply::Fail).unwrap_err();
    match error.downcast_ref::<CallError<BoxError>>() {
        Some(CallError::Inner(inner)) => assert_eq!(inner.to_string(), "boom"),
        other => panic!("expected a boxed inner error, got {other:?}"),
    }
    let error = call_now(&mut service, Reply::Ok).unwrap_err();
    match error.downcast_ref::<CallError<BoxError>>() {
        Some(CallError::Rejected(rejected)) => assert_eq!(rejected.state(), State::Open),
        other => panic!("expected a boxed rejection, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[test]
fn oneshot_through_service_builder() {
    let breaker = Arc::new(CircuitBreaker::new());
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::from_arc(breaker))
        .service_fn(|request: u32| async move { Ok::<_, io::Error>(request + 1) });
    assert_eq!(now(service.oneshot(41)).unwrap(), 42);
}
