//! Retrying an operation with backoff: [`Retry`], the [`RetryError`] it returns when it gives up and the
//! [`GaveUp`] reason.
//!
//! # Algorithm
//!
//! A call runs the operation, numbering attempts from 1. When an attempt fails, the retry gives up at once if
//! the predicate says the error is not retryable, or if that was attempt `max_attempts`. Otherwise it takes
//! the next delay from the call's own [`Delays`] (attempt `n` failing waits the backoff's delay number
//! `n − 1`, so the first retry waits about `base`), checks the time cap, reports the retry (the
//! [`on_retry`](RetryBuilder::on_retry) hook and a `tracing` debug event with the attempt and the delay),
//! sleeps, and runs attempt `n + 1`. A [`Retry`] holds only configuration: it is cheap to clone and every call
//! starts a fresh delay sequence, so one policy serves any number of concurrent calls.
//!
//! # Default backoff: exponential with full jitter
//!
//! Unless [`backoff`](RetryBuilder::backoff) says otherwise, attempt `n` waits a uniform random delay in
//! `[0, min(10 s, 100 ms × 2ⁿ⁻¹)]`, the *full jitter* of Marc Brooker's "Exponential Backoff And Jitter"
//! (AWS Architecture Blog, 2015). Retries exist for failures that many clients see at once (a server
//! restarting, a partition healing); un-jittered clients then retry in lockstep and hit the recovering server
//! together. In Brooker's simulation full jitter did the least total work of the schedules compared and
//! finished about as fast as decorrelated jitter; it also draws each delay independently of the previous one,
//! so its bound for each attempt is simply the exponential ceiling, which keeps the time cap predictable.
//! [`Jitter::Decorrelated`](crate::Jitter::Decorrelated) and [`Jitter::None`](crate::Jitter::None) are one
//! [`Backoff`] away.
//!
//! # Time cap
//!
//! [`max_elapsed`](RetryBuilder::max_elapsed) bounds when an attempt may *start*, measured with the retry's
//! [`Clock`] from the start of the first attempt. Before sleeping, the retry compares the moment the sleep
//! would end (time elapsed so far plus the delay) with the cap: if it is later, the retry gives up at once
//! with [`GaveUp::MaxElapsed`] instead of sleeping. It does not shorten the delay to fit: a clipped delay
//! would put every client's last attempt at the same instant, which is what the jitter is there to avoid, and
//! a wait that cannot be followed by an attempt is wasted. The cap never interrupts a running attempt (give
//! the operation its own timeout for that), and it is checked against the planned end of the sleep, so a
//! timer that oversleeps can start the last attempt slightly after the cap.
//!
//! # Sleeping
//!
//! [`call`](Retry::call) and [`call_if`](Retry::call_if) block the thread with [`std::thread::sleep`].
//! [`call_with_sleep`](Retry::call_with_sleep) and [`call_async_with_sleep`](Retry::call_async_with_sleep)
//! take the sleep as a function, which lets tests advance a [`ManualClock`](crate::ManualClock) instead of
//! waiting and lets async code use any runtime's timer; with the `tokio` feature,
//! [`call_async`](Retry::call_async) uses [`tokio::time::sleep`]. The async calls are plain futures:
//! dropping one (say, on a timeout) stops the retrying, and no attempt starts after the drop. Every delay
//! goes to the sleep function, zero included, so a zero delay still yields to an async runtime.
//!
//! # Cost
//!
//! A call whose first attempt succeeds does no more than run the operation: the clock is read only when a
//! time cap is set, and the delay generator (a thread-local seed read) is created at the first failure.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::backoff::{Backoff, Delays, Jitter};
use crate::clock::{Clock, SystemClock};
use crate::error::BuildError;

/// Attempts a call makes by default, the first included.
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The default backoff's first ceiling.
const DEFAULT_BASE: Duration = Duration::from_millis(100);
/// The default backoff's largest ceiling.
const DEFAULT_MAX: Duration = Duration::from_secs(10);

/// A retry policy: how many attempts, how long in total, and how long to wait between attempts.
///
/// Build one with [`Retry::builder`], then run operations through it with [`call`](Retry::call) (retries
/// every error), [`call_if`](Retry::call_if) (retries errors a predicate accepts) or their async forms. The
/// operation gets the attempt number, starting at 1. When the retry gives up, the [`RetryError`] carries the
/// last error, the number of attempts made and the reason.
///
/// ```
/// use circuit::{Backoff, GaveUp, Retry};
/// use std::time::Duration;
///
/// let retry = Retry::builder()
///     .max_attempts(4)
///     .backoff(Backoff::constant(Duration::from_millis(1)))
///     .build()?;
///
/// // A flaky operation: fails twice, then works.
/// let mut failures_left = 2;
/// let result = retry.call(|attempt| {
///     if failures_left > 0 {
///         failures_left -= 1;
///         Err(format!("attempt {attempt}: connection reset"))
///     } else {
///         Ok(attempt)
///     }
/// });
/// assert_eq!(result, Ok(3));
///
/// // An operation that never works: four attempts, then the last error.
/// let error = retry.call(|attempt| Err::<(), _>(attempt)).unwrap_err();
/// assert_eq!(error.attempts(), 4);
/// assert_eq!(error.reason(), GaveUp::MaxAttempts);
/// assert_eq!(error.into_inner(), 4);
/// # Ok::<(), circuit::BuildError>(())
/// ```
///
/// # Time cap
///
/// With [`max_elapsed`](RetryBuilder::max_elapsed), before each sleep the retry adds the delay to the time
/// elapsed since the first attempt started (read from its [`Clock`]); if the sum exceeds the cap it gives up
/// with [`GaveUp::MaxElapsed`] instead of sleeping. The delay is not shortened to fit, and a running attempt
/// is never interrupted: the cap bounds when attempts start, not when the call returns.
#[derive(Clone)]
pub struct Retry<C: Clock = SystemClock, H = NoHook> {
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    backoff: Backoff,
    clock: C,
    hook: H,
}

impl Retry {
    /// A builder with the defaults: 3 attempts, no time cap, exponential backoff from 100 ms to 10 s with
    /// full jitter, the system clock, no hook.
    pub fn builder() -> RetryBuilder {
        RetryBuilder {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_elapsed: None,
            backoff: default_backoff(),
            clock: SystemClock::new(),
            hook: NoHook,
        }
    }
}

impl Default for Retry {
    /// The policy [`Retry::builder`] builds when nothing is changed.
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_elapsed: None,
            backoff: default_backoff(),
            clock: SystemClock::new(),
            hook: NoHook,
        }
    }
}

fn default_backoff() -> Backoff {
    Backoff::exponential(DEFAULT_BASE, DEFAULT_MAX)
        .expect("the default backoff's max is above its base")
        .with_jitter(Jitter::Full)
}

impl<C: Clock, H> Retry<C, H> {
    /// The most attempts a call makes, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The time cap, if any: no attempt is planned to start later than this after the first began.
    pub fn max_elapsed(&self) -> Option<Duration> {
        self.max_elapsed
    }

    /// The schedule of delays between attempts.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The clock the time cap is measured with.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Runs `op` until it succeeds, retrying every error, sleeping the thread between attempts.
    ///
    /// `op` gets the attempt number, from 1. Same as [`call_if`](Retry::call_if) with a predicate that always
    /// says yes.
    ///
    /// # Errors
    ///
    /// A [`RetryError`] with the last error when the attempts or the time cap run out.
    pub fn call<T, E, F>(&self, op: F) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Result<T, E>,
        H: RetryHook<E>,
    {
        self.call_with_sleep(op, |_| true, std::thread::sleep)
    }

    /// Runs `op` until it succeeds or fails with an error `is_retryable` rejects, sleeping the thread between
    /// attempts.
    ///
    /// ```
    /// use circuit::{Backoff, GaveUp, Retry};
    /// use std::io;
    /// use std::time::Duration;
    ///
    /// let retry = Retry::builder().backoff(Backoff::constant(Duration::from_millis(1))).build()?;
    /// let error = retry
    ///     .call_if(
    ///         |_| Err::<(), _>(io::Error::from(io::ErrorKind::PermissionDenied)),
    ///         |error| error.kind() == io::ErrorKind::TimedOut,
    ///     )
    ///     .unwrap_err();
    /// assert_eq!(error.reason(), GaveUp::NotRetryable);
    /// assert_eq!(error.attempts(), 1);
    /// # Ok::<(), circuit::BuildError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`RetryError`] with the last error when it is not retryable or the attempts or the time cap run out.
    pub fn call_if<T, E, F, P>(&self, op: F, is_retryable: P) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Result<T, E>,
        P: FnMut(&E) -> bool,
        H: RetryHook<E>,
    {
        self.call_with_sleep(op, is_retryable, std::thread::sleep)
    }

    /// Like [`call_if`](Retry::call_if), waiting between attempts by calling `sleep` with each delay instead
    /// of sleeping the thread.
    ///
    /// With a [`ManualClock`](crate::ManualClock), a sleep that advances the clock makes the time cap
    /// deterministic:
    ///
    /// ```
    /// use circuit::{Backoff, GaveUp, ManualClock, Retry};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let retry = Retry::builder()
    ///     .max_attempts(10)
    ///     .max_elapsed(Duration::from_secs(1))
    ///     .backoff(Backoff::constant(Duration::from_millis(300)))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let error = retry
    ///     .call_with_sleep(|_| Err::<(), _>("down"), |_| true, |delay| clock.advance(delay))
    ///     .unwrap_err();
    /// // Attempts at 0, 300, 600 and 900 ms; one more would start at 1.2 s.
    /// assert_eq!(error.attempts(), 4);
    /// assert_eq!(error.reason(), GaveUp::MaxElapsed);
    /// # Ok::<(), circuit::BuildError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`RetryError`] with the last error when it is not retryable or the attempts or the time cap run out.
    pub fn call_with_sleep<T, E, F, P, S>(
        &self,
        mut op: F,
        mut is_retryable: P,
        mut sleep: S,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Result<T, E>,
        P: FnMut(&E) -> bool,
        S: FnMut(Duration),
        H: RetryHook<E>,
    {
        let mut schedule = Schedule::start(self);
        let mut attempt = 1;
        loop {
            let error = match op(attempt) {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let delay = schedule.after_failure(attempt, error, &mut is_retryable)?;
            sleep(delay);
            attempt += 1;
        }
    }

    /// Runs the future `op` returns until it succeeds or fails with an error `is_retryable` rejects, awaiting
    /// the future `sleep` returns between attempts. Works with any runtime (or none).
    ///
    /// Dropping the returned future stops the retrying: no attempt starts after the drop.
    ///
    /// ```
    /// use circuit::{Backoff, Clock, ManualClock, Retry};
    /// use std::future::Future;
    /// use std::task::{Context, Poll, Waker};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let retry = Retry::builder()
    ///     .backoff(Backoff::constant(Duration::from_millis(50)))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let call = retry.call_async_with_sleep(
    ///     |attempt| async move { if attempt < 3 { Err("busy") } else { Ok(attempt) } },
    ///     |_| true,
    ///     |delay| {
    ///         clock.advance(delay); // a real program awaits its runtime's timer here
    ///         std::future::ready(())
    ///     },
    /// );
    /// // Every future here is ready at once, so one poll finishes the call; a program awaits it instead.
    /// let mut call = std::pin::pin!(call);
    /// let mut context = Context::from_waker(Waker::noop());
    /// let Poll::Ready(result) = call.as_mut().poll(&mut context) else { unreachable!() };
    /// assert_eq!(result, Ok(3));
    /// assert_eq!(clock.now(), Duration::from_millis(100));
    /// # Ok::<(), circuit::BuildError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`RetryError`] with the last error when it is not retryable or the attempts or the time cap run out.
    pub async fn call_async_with_sleep<T, E, F, Fut, P, S, SleepFut>(
        &self,
        mut op: F,
        mut is_retryable: P,
        mut sleep: S,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: FnMut(&E) -> bool,
        S: FnMut(Duration) -> SleepFut,
        SleepFut: Future<Output = ()>,
        H: RetryHook<E>,
    {
        let mut schedule = Schedule::start(self);
        let mut attempt = 1;
        loop {
            let error = match op(attempt).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            // The error is consumed here (dropped or returned), so it is not held across the sleep.
            let delay = schedule.after_failure(attempt, error, &mut is_retryable)?;
            sleep(delay).await;
            attempt += 1;
        }
    }

    /// Like [`call_async_with_sleep`](Retry::call_async_with_sleep), sleeping with [`tokio::time::sleep`].
    ///
    /// Needs a tokio runtime with the time driver. Under tokio's paused test time the sleeps advance tokio's
    /// clock, but [`SystemClock`] keeps reading the operating system's: give a time-capped retry a
    /// [`ManualClock`](crate::ManualClock) in such tests.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), circuit::BuildError> {
    /// use circuit::{Backoff, Retry};
    /// use std::time::Duration;
    ///
    /// let retry = Retry::builder().backoff(Backoff::constant(Duration::from_millis(1))).build()?;
    /// let result = retry
    ///     .call_async(|attempt| async move { if attempt == 1 { Err("refused") } else { Ok(attempt) } }, |_| true)
    ///     .await;
    /// assert_eq!(result, Ok(2));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// A [`RetryError`] with the last error when it is not retryable or the attempts or the time cap run out.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn call_async<T, E, F, Fut, P>(
        &self,
        op: F,
        is_retryable: P,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: FnMut(&E) -> bool,
        H: RetryHook<E>,
    {
        self.call_async_with_sleep(op, is_retryable, tokio::time::sleep)
            .await
    }
}

impl<C: Clock + fmt::Debug, H> fmt::Debug for Retry<C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("max_attempts", &self.max_attempts)
            .field("max_elapsed", &self.max_elapsed)
            .field("backoff", &self.backoff)
            .field("clock", &self.clock)
            .field("hook", &std::any::type_name::<H>())
            .finish()
    }
}

/// The state of one call: when it started and its delays. Shared by the sync and async loops.
struct Schedule<'a, C: Clock, H> {
    retry: &'a Retry<C, H>,
    /// When the first attempt started; read only when there is a time cap.
    start: Option<Duration>,
    /// Created at the first failure, so a call that succeeds at once costs no seeding.
    delays: Option<Delays>,
}

impl<'a, C: Clock, H> Schedule<'a, C, H> {
    fn start(retry: &'a Retry<C, H>) -> Self {
        Self {
            retry,
            start: retry.max_elapsed.map(|_| retry.clock.now()),
            delays: None,
        }
    }

    /// Decides what follows the failure of `attempt`: the delay before the next attempt (after reporting it
    /// to the hook and to `tracing`), or the error to return.
    fn after_failure<E, P>(
        &mut self,
        attempt: u32,
        error: E,
        is_retryable: &mut P,
    ) -> Result<Duration, RetryError<E>>
    where
        P: FnMut(&E) -> bool,
        H: RetryHook<E>,
    {
        match self.next_delay(attempt, &error, is_retryable) {
            Ok(delay) => {
                tracing::debug!(attempt, ?delay, "attempt failed, retrying after delay");
                self.retry.hook.on_retry(attempt, &error, delay);
                Ok(delay)
            }
            Err(reason) => {
                tracing::debug!(attempts = attempt, %reason, "retry gave up");
                Err(RetryError {
                    error,
                    attempts: attempt,
                    reason,
                })
            }
        }
    }

    fn next_delay<E, P>(
        &mut self,
        attempt: u32,
        error: &E,
        is_retryable: &mut P,
    ) -> Result<Duration, GaveUp>
    where
        P: FnMut(&E) -> bool,
    {
        if !is_retryable(error) {
            return Err(GaveUp::NotRetryable);
        }
        if attempt >= self.retry.max_attempts {
            return Err(GaveUp::MaxAttempts);
        }
        let backoff = self.retry.backoff;
        let delay = self
            .delays
            .get_or_insert_with(|| backoff.delays())
            .next()
            .expect("backoff delays never end");
        if let (Some(start), Some(max_elapsed)) = (self.start, self.retry.max_elapsed) {
            let elapsed = self.retry.clock.now().saturating_sub(start);
            if elapsed.saturating_add(delay) > max_elapsed {
                return Err(GaveUp::MaxElapsed);
            }
        }
        Ok(delay)
    }
}

/// Builds a [`Retry`]; every setting has a default (see [`Retry::builder`]).
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RetryBuilder<C: Clock = SystemClock, H = NoHook> {
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    backoff: Backoff,
    clock: C,
    hook: H,
}

impl<C: Clock, H> RetryBuilder<C, H> {
    /// The most attempts a call makes, the first included (default 3). `1` means never retry.
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The time cap (default none): a retry whose delay would end more than `max_elapsed` after the first
    /// attempt started is not made. See [the time cap](Retry#time-cap).
    pub fn max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    /// The delays between attempts (default: exponential from 100 ms to 10 s, doubling, full jitter).
    /// Attempt `n` failing waits the backoff's delay number `n − 1`.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The clock the time cap is measured with (default [`SystemClock`]).
    pub fn clock<C2: Clock>(self, clock: C2) -> RetryBuilder<C2, H> {
        RetryBuilder {
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            backoff: self.backoff,
            clock,
            hook: self.hook,
        }
    }

    /// A function called before each retry's sleep with the attempt that failed (from 1), its error and the
    /// delay about to be slept, e.g. to log or count retries. It is not called when the retry gives up.
    ///
    /// ```
    /// use circuit::{Backoff, Retry};
    /// use std::cell::RefCell;
    /// use std::time::Duration;
    ///
    /// let log = RefCell::new(Vec::new());
    /// let retry = Retry::builder()
    ///     .backoff(Backoff::constant(Duration::ZERO))
    ///     .on_retry(|attempt, error: &String, delay| {
    ///         log.borrow_mut().push(format!("attempt {attempt} failed ({error}); retrying in {delay:?}"))
    ///     })
    ///     .build()?;
    /// let _ = retry.call(|attempt| if attempt < 2 { Err(String::from("timeout")) } else { Ok(()) });
    /// assert_eq!(*log.borrow(), ["attempt 1 failed (timeout); retrying in 0ns"]);
    /// # Ok::<(), circuit::BuildError>(())
    /// ```
    pub fn on_retry<E, H2>(self, hook: H2) -> RetryBuilder<C, H2>
    where
        H2: Fn(u32, &E, Duration),
    {
        RetryBuilder {
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            backoff: self.backoff,
            clock: self.clock,
            hook,
        }
    }

    /// The policy.
    ///
    /// # Errors
    ///
    /// [`BuildError::Zero`] naming `max_attempts` or `max_elapsed` if either is zero.
    pub fn build(self) -> Result<Retry<C, H>, BuildError> {
        if self.max_attempts == 0 {
            return Err(BuildError::Zero {
                field: "max_attempts",
            });
        }
        if self.max_elapsed == Some(Duration::ZERO) {
            return Err(BuildError::Zero {
                field: "max_elapsed",
            });
        }
        Ok(Retry {
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            backoff: self.backoff,
            clock: self.clock,
            hook: self.hook,
        })
    }
}

impl<C: Clock + fmt::Debug, H> fmt::Debug for RetryBuilder<C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("max_attempts", &self.max_attempts)
            .field("max_elapsed", &self.max_elapsed)
            .field("backoff", &self.backoff)
            .field("clock", &self.clock)
            .field("hook", &std::any::type_name::<H>())
            .finish()
    }
}

/// Something told about each retry of a call whose errors are `E`: the hook set with
/// [`RetryBuilder::on_retry`].
///
/// Implemented by [`NoHook`] (the default, which does nothing) and by every `Fn(u32, &E, Duration)`.
pub trait RetryHook<E> {
    /// Attempt `attempt` (from 1) failed with `error`, and the retry is about to sleep `delay`.
    fn on_retry(&self, attempt: u32, error: &E, delay: Duration);
}

/// The hook of a [`Retry`] without [`on_retry`](RetryBuilder::on_retry): does nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoHook;

impl<E> RetryHook<E> for NoHook {
    #[inline]
    fn on_retry(&self, _attempt: u32, _error: &E, _delay: Duration) {}
}

impl<E, F> RetryHook<E> for F
where
    F: Fn(u32, &E, Duration),
{
    #[inline]
    fn on_retry(&self, attempt: u32, error: &E, delay: Duration) {
        self(attempt, error, delay)
    }
}

/// Why a [`Retry`] stopped retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GaveUp {
    /// The predicate said the last error is not worth retrying.
    NotRetryable,
    /// The last attempt was number `max_attempts`.
    MaxAttempts,
    /// The next attempt would have started more than `max_elapsed` after the first.
    MaxElapsed,
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GaveUp::NotRetryable => "the error is not retryable",
            GaveUp::MaxAttempts => "max_attempts reached",
            GaveUp::MaxElapsed => "the next attempt would start after max_elapsed",
        })
    }
}

/// A [`Retry`] gave up: the last attempt's error, how many attempts were made, and why it stopped.
///
/// Displays as `gave up after 3 attempts (max_attempts reached): <last error>`. The last error is part of the
/// message rather than the [`source`](std::error::Error::source), like [`CallError`](crate::CallError), so
/// `E` need not implement [`Error`](std::error::Error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "gave up after {attempts} attempt{} ({reason}): {error}",
    if *.attempts == 1 { "" } else { "s" }
)]
pub struct RetryError<E> {
    error: E,
    attempts: u32,
    reason: GaveUp,
}

impl<E> RetryError<E> {
    /// The last attempt's error.
    pub fn into_inner(self) -> E {
        self.error
    }

    /// The last attempt's error, borrowed.
    pub fn error(&self) -> &E {
        &self.error
    }

    /// How many attempts were made, the first included (at least 1).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the retry stopped.
    pub fn reason(&self) -> GaveUp {
        self.reason
    }
}
