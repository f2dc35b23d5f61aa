//! The circuit breaker: [`CircuitBreaker`], its builder, permits, events and metrics.
//!
//! # Semantics
//!
//! The states and rules follow resilience4j's `CircuitBreaker` (the gold standard named by the issue), with
//! the seed's defaults and the differences listed under [Deviations](#deviations-from-resilience4j).
//!
//! - **Closed** admits every call. It trips to open when `consecutive_failures` calls fail in a row (default
//!   5; a success ends the streak), or, when a rate rule is set (`failure_rate`, `slow_call_rate`, both off
//!   by default), when the sliding window holds at least `minimum_calls` calls (default 100) and the rate is
//!   *equal to or greater than* the threshold. A call is slow when it took at least `slow_call_duration`
//!   (default 60 s) from its permit to its verdict; calls are only timed when a slow-call rule is set.
//! - **Open** rejects with [`Rejected`] whose `retry_after` is the rest of the wait. The wait of the `k`-th
//!   opening in a row (`k` = 0 after closing or a reset) is the `open_wait` backoff's delay for attempt `k`
//!   (default 1 s doubling to 60 s). The first `try_acquire` at or after the deadline moves it to half-open;
//!   nothing moves it earlier (resilience4j's default, without its optional timer thread).
//! - **Half-open** admits at most `half_open_permits` probes (default 2) and rejects the rest. It closes once
//!   `successes_to_close` probes succeed (default 2) and re-opens, with the next backoff step, as soon as
//!   closing has become impossible: more than `half_open_permits - successes_to_close` probes failed
//!   (failsafe-java's `successThreshold` out of `permits`; with the defaults any failed probe re-opens). An
//!   ignored or dropped probe gives its slot back. Closing starts a fresh window and streak and restarts
//!   the backoff.
//! - **Forced** states: [`force_open`](CircuitBreaker::force_open) rejects everything,
//!   [`force_closed`](CircuitBreaker::force_closed) admits and records but never trips (resilience4j's
//!   `METRICS_ONLY`), [`disable`](CircuitBreaker::disable) admits and records nothing; each stays until
//!   another forced state or [`reset`](CircuitBreaker::reset), which closes with an empty window and streak
//!   and the backoff restarted.
//!
//! # The state word
//!
//! Everything a call needs to know is one `AtomicU64`:
//!
//! ```text
//!  63            40 39  36 35         24 23          12 11           0
//! +----------------+------+-------------+--------------+--------------+
//! |  generation    | kind | probes out  | probe succ.  | probe fail.  |
//! +----------------+------+-------------+--------------+--------------+
//! ```
//!
//! The kind is one of the six states, numbered so that closed and forced closed are the two with the low
//! bits clear: the closed-state `try_acquire` is one Acquire load and one mask test. The probe fields (12
//! bits each, so at most 4,095 permits) change only in half-open, by compare-and-swap of the whole word, so
//! two threads can never both take the last probe slot, and a verdict and a transition cannot both apply to
//! the same round. Every transition writes a new word with the next generation (24 bits, wrapping); a permit
//! keeps the generation and kind it was issued in.
//!
//! Transitions are rare and go through one `Mutex` (the *transition lock*): the thread re-reads the word under
//! the lock, gives up if the generation is no longer the one it saw (another thread already moved the
//! breaker: of two failures racing to trip it, one trips it), updates what the new state needs (the backoff
//! attempt, its `fastrand` generator and last delay, the deadline, the window) and publishes the new word with
//! a Release store. No hot path takes the lock.
//!
//! # Orderings
//!
//! | operation | ordering | pairs with / why |
//! |---|---|---|
//! | `try_acquire`: load of the state word | Acquire | the Release store that published it, so that a thread seeing `Open` reads that opening's deadline (or a later one's), and a permit of a new closed generation records into a window already cleared for it |
//! | publishing a transition's word | Release | the Acquire load above |
//! | the open deadline (`open_until`) | Relaxed | written before the Release publication of its `Open` word and read after the Acquire load of it |
//! | half-open probe CAS (take, verdict, give back) | Relaxed (Acquire on a failed take) | the counts are the only data; the transition they lead to re-reads the word under the lock, which sees this thread's own CAS by coherence. A failed take reloads with Acquire because the loop may then find `Open` or a new closed generation and needs what `try_acquire` needs |
//! | re-reading the word under the lock | Relaxed | every generation change is made under the lock, whose acquisition orders the previous one before the read |
//! | a closed verdict's generation check | Relaxed | only compares generations; the permit's Acquire already ordered the window's clearing |
//! | streak, window bits and counts, lifetime counters | Relaxed | counts, ordering nothing |
//! | time-window bucket tag: load / publish after zeroing | Acquire / Release | a recorder (or reader) that sees the new period's tag sees its counts already zeroed, so no call of the new period is wiped out by the zeroing |
//!
//! The loom models in `tests/loom/breaker.rs` check the probe limit (with the open → half-open move raced),
//! one transition for a raced trip, and the deadline publication: weakening the Release store or the Acquire
//! load, or storing the deadline after publishing, lets a thread through before the wait is over.
//!
//! # Costs of the hot paths
//!
//! - **Closed call**: the Acquire load (a plain load on x86), then for a success without a window or timing:
//!   a Relaxed load of the word (the generation check), a load of the failure streak, which is written only
//!   when it is non-zero so that on the healthy path its cache line stays shared between cores, and one
//!   lifetime count (`crate::sync::PerThreadCounter`: this thread's own cell, a plain load and store, no
//!   locked instruction). A failure adds a `fetch_add` on the streak. No lock, no clock read, no allocation, and no
//!   locked instruction at all on the healthy path. With a count window, add the `fetch_add` on the
//!   window's call sequence (the one locked instruction of a closed call) and a load of the bitmap word.
//!   recloser 1.4 by comparison pins a crossbeam epoch and takes a spin lock around its ring buffer on every
//!   call.
//! - **Open rejection**: the Acquire load, a Relaxed load of the deadline beside it on the same cache line,
//!   `coarse_now` (on Linux `CLOCK_MONOTONIC_COARSE`, a vDSO read of a few nanoseconds instead of the ~25 of
//!   `Instant::now`, which recloser reads on every rejection), a comparison, a per-thread count, a disabled
//!   `tracing` callsite (a load and a branch) and a check for a listener. The coarse clock lags the precise
//!   one by up to a tick (1–4 ms) and never leads it, and the deadline is computed from the precise clock, so
//!   the breaker never leaves open early; it may leave up to a tick late, and `retry_after` (the deadline
//!   minus the coarse reading) may exceed the true remainder by as much.
//! - **Half-open**: a CAS per probe taken and per verdict.
//!
//! # Sliding windows
//!
//! The window is kept only when a rate rule is set (without one, a closed call touches no window, and the
//! window fields of [`Metrics`] are zero). It belongs to the closed state: it stays as it was while open or
//! half-open (so [`Metrics`] shows the rates that tripped it) and is cleared when the breaker closes, is
//! reset, or is forced closed.
//!
//! **Count window** (`SlidingWindow::count(n)`): a cache-padded call sequence (`fetch_add` gives this call's
//! slot, `seq % n`, by multiplication rather than division) and two bitmaps of `n` bits, failed and slow. A
//! call sets or clears its bits, writing only when a bit changes, so a run of successes over successes
//! writes nothing but the sequence. Rates are computed only after a failure or a slow call (a fast success
//! cannot raise a rate): the calls are `min(sequence, n)` and the failures a popcount of `n / 64` words,
//! which is why the window is capped at 65,536 calls. It is exact when calls do not overlap; under races:
//! (a) a thread lapped by `n` calls between taking its slot and writing its bit overwrites the newer call's
//! outcome with its older one; (b) a popcount taken while other calls are writing sees some of their bits
//! and not others; (c) a clear (closing, reset) racing a verdict of the generation being left may keep that
//! one bit. Each is off by the calls in flight, never cumulative.
//!
//! **Time window** (`SlidingWindow::time_with_buckets(span, b)`): time is cut into periods of `span / b`
//! (from `coarse_now`, or from the precise reading already taken for timing); bucket `period % b` holds
//! `{tag, calls, failures, slow}` and the window is the buckets whose period is among the last `b`. The
//! first call of a new period resets its bucket once: a CAS of the tag to a "resetting" marker, the counts
//! zeroed, the new tag published with Release; callers that see the marker spin (`spin_loop`) until it is
//! published. Under races: (a) a call that read its time before another thread moved its bucket on to a
//! later period counts in that later period; (b) a recorder that read the old tag and adds after the
//! zeroing leaks one call of an expired period into the new one; (c) a reader summing while a bucket is
//! being reset skips that bucket's in-flight calls, and counts read bucket by bucket are not one snapshot.
//!
//! # Events
//!
//! Transitions push their events ([`Event::Tripped`] with the reason, then [`Event::StateTransition`];
//! [`Event::Reset`]) onto a queue under the transition lock; after releasing it, the thread delivers the
//! queue to `tracing` (transitions at `info`, openings and trips at `warn`, with the breaker's name) and to
//! the listener, unless another thread is already delivering (it will deliver these too: the check and
//! the hand-over are under the lock). So the listener sees transitions in the order they happened, never
//! runs under the lock, and may itself call the breaker. Rejections are delivered by the rejected thread
//! directly (`tracing` at `trace`).
//!
//! # Deviations from resilience4j
//!
//! - **Verdicts from an earlier generation.** resilience4j records a call's outcome into whatever state is
//!   current when it ends, so a slow call admitted while closed can count as a half-open probe, or land in
//!   the window of a later closed period. Here a verdict for a permit issued before the breaker last changed
//!   state counts only in the lifetime metrics: probe counts belong to probes, and a new window starts with
//!   the calls admitted into it.
//! - **`call_with`'s non-failures count as successes** (like recloser's predicate), where resilience4j's
//!   `ignoreExceptions` records nothing: an error that says the service answered ends a failure streak and
//!   can close a half-open breaker.
//! - **A slow probe is a failed probe** (resilience4j evaluates the half-open calls' slow-call rate
//!   together with the failure rate; here each probe is decided on its own).
//! - **`minimum_calls` above a count window's size** is lowered to the size (as resilience4j does).
//! - **A panicking call** inside [`CircuitBreaker::call`] drops its permit and counts as ignored.
//! - **The window is kept only when a rate rule is set**, to keep the default closed path free of it.

mod permit;
mod state;
mod window;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::backoff::Backoff;
use crate::clock::{Clock, SystemClock, duration_to_nanos};
use crate::error::{BuildError, CallError, Rejected};
use crate::sync::{AtomicU32, AtomicU64, Mutex, Ordering, PerThreadCounter, lock};

use permit::{NOT_TIMED, Ticket};
pub use permit::{OwnedPermit, Permit};
use state::{Kind, MAX_PROBES, ONE_FAILURE, ONE_ISSUED, ONE_SUCCESS, Verdict, Word, probe_verdict};
use window::{CountWindow, Counts, MAX_WINDOW, TimeWindow, Window};

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
///
/// ```
/// use circuit::{CircuitBreaker, SlidingWindow};
/// use std::time::Duration;
///
/// let breaker = CircuitBreaker::builder()
///     .failure_rate(0.5)
///     .sliding_window(SlidingWindow::time(Duration::from_secs(60)))
///     .minimum_calls(20)
///     .build()?;
/// # drop(breaker);
/// # Ok::<(), circuit::BuildError>(())
/// ```
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
    /// The last `calls` calls (at most 65,536).
    pub fn count(calls: u32) -> Self {
        Self {
            kind: WindowKind::Count(calls),
        }
    }

    /// The calls of the last `span`, aged out in ten steps of `span / 10`.
    pub fn time(span: Duration) -> Self {
        Self::time_with_buckets(span, 10)
    }

    /// The calls of the last `span`, aged out in `buckets` steps of `span / buckets` (at most 65,536 buckets).
    ///
    /// Time is cut into periods of `span / buckets` (rounded down to a nanosecond); the window holds the
    /// current, partly elapsed period and the `buckets - 1` before it, so a call leaves the window between
    /// `span - span / buckets` and `span` after it was recorded, as in resilience4j's time-based window.
    pub fn time_with_buckets(span: Duration, buckets: u32) -> Self {
        Self {
            kind: WindowKind::Time { span, buckets },
        }
    }
}

/// Why a closed breaker opened, carried by [`Event::Tripped`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum TripReason {
    /// `count` calls failed in a row, reaching the `consecutive_failures` threshold.
    ConsecutiveFailures {
        /// The length of the streak.
        count: u32,
    },
    /// The failure rate in the window reached the `failure_rate` threshold.
    FailureRate {
        /// The rate, in `[0, 1]`.
        rate: f32,
    },
    /// The slow-call rate in the window reached the `slow_call_rate` threshold.
    SlowCallRate {
        /// The rate, in `[0, 1]`.
        rate: f32,
    },
}

impl fmt::Display for TripReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TripReason::ConsecutiveFailures { count } => write!(f, "{count} consecutive failures"),
            TripReason::FailureRate { rate } => write!(f, "failure rate {:.1}%", rate * 100.0),
            TripReason::SlowCallRate { rate } => write!(f, "slow-call rate {:.1}%", rate * 100.0),
        }
    }
}

/// Something that happened to a breaker, given to its listener and logged with `tracing`.
///
/// Transition events ([`StateTransition`](Event::StateTransition), [`Tripped`](Event::Tripped),
/// [`Reset`](Event::Reset)) reach the listener in the order the transitions happened, outside the breaker's
/// lock (a listener may call the breaker). [`Rejected`](Event::Rejected) is given to the listener directly
/// by the rejected thread, so it is not ordered with the transition events of other threads.
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
    /// A closed breaker is about to open, for this reason; the `Closed` → `Open` transition follows.
    Tripped {
        /// The rule that tripped it.
        reason: TripReason,
    },
    /// [`reset`](CircuitBreaker::reset) emptied the window and restarted the open wait's backoff. When the
    /// breaker was not closed, a transition to `Closed` comes just before.
    Reset {
        /// The state it was in.
        from: State,
    },
}

/// A snapshot of a breaker's counters, from [`CircuitBreaker::metrics`].
///
/// The window fields are those of the closed state's sliding window, which stays as it was while the breaker
/// is open or half-open (so the rates that tripped it can be read) and is emptied when it closes. The window
/// is only kept when a rate rule ([`failure_rate`](CircuitBreakerBuilder::failure_rate) or
/// [`slow_call_rate`](CircuitBreakerBuilder::slow_call_rate)) is set; without one its fields are zero and the
/// rates `None`. Slow calls are only timed when a slow-call rule is set.
///
/// The lifetime counters (`successes` … `times_opened`) count from the breaker's construction, through
/// [`reset`](CircuitBreaker::reset), and include verdicts that came after the breaker had moved on. Calls
/// admitted while [`Disabled`](State::Disabled) are not counted anywhere.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// The state when the snapshot was taken.
    pub state: State,
    /// Failures per call in the window, once it holds at least `minimum_calls` calls.
    pub failure_rate: Option<f32>,
    /// Slow calls per call in the window, once it holds at least `minimum_calls` calls and a slow-call rule
    /// is set.
    pub slow_call_rate: Option<f32>,
    /// Calls in the window.
    pub window_calls: u32,
    /// Failed calls in the window.
    pub window_failures: u32,
    /// Slow calls in the window (successful or not).
    pub window_slow_calls: u32,
    /// The current streak of failures (reset by a success, and by closing).
    pub consecutive_failures: u32,
    /// Calls that succeeded, over the breaker's life.
    pub successes: u64,
    /// Calls that failed, over the breaker's life.
    pub failures: u64,
    /// Calls ignored (dropped permits included), over the breaker's life.
    pub ignored: u64,
    /// Calls refused, over the breaker's life.
    pub rejected: u64,
    /// How many times the breaker opened (tripping from closed or re-opening from half-open; forcing it open
    /// does not count).
    pub times_opened: u64,
}

type Listener = Box<dyn Fn(&Event) + Send + Sync>;

const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
const DEFAULT_WINDOW: u32 = 100;
const DEFAULT_MINIMUM_CALLS: u32 = 100;
const DEFAULT_HALF_OPEN_PERMITS: u32 = 2;
const DEFAULT_SUCCESSES_TO_CLOSE: u32 = 2;
const DEFAULT_SLOW_CALL_DURATION: Duration = Duration::from_secs(60);
const DEFAULT_NAME: &str = "circuit-breaker";

fn default_open_wait() -> Backoff {
    Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60))
        .expect("1 s is below 60 s")
}

/// Builds a [`CircuitBreaker`]; every setting has a default (see each method).
///
/// ```
/// use circuit::{Backoff, CircuitBreaker, SlidingWindow};
/// use std::time::Duration;
///
/// let breaker = CircuitBreaker::builder()
///     .name("payments")
///     .consecutive_failures(10)
///     .failure_rate(0.5)
///     .slow_call_rate(0.8)
///     .slow_call_duration(Duration::from_secs(2))
///     .sliding_window(SlidingWindow::count(50))
///     .minimum_calls(20)
///     .open_wait(Backoff::exponential(Duration::from_millis(500), Duration::from_secs(30))?)
///     .half_open_permits(3)
///     .successes_to_close(2)
///     .listener(|event| println!("{event:?}"))
///     .build()?;
/// # drop(breaker);
/// # Ok::<(), circuit::BuildError>(())
/// ```
pub struct CircuitBreakerBuilder<C = SystemClock> {
    name: Option<String>,
    consecutive_failures: Option<u32>,
    failure_rate: Option<f64>,
    slow_call_rate: Option<f64>,
    slow_call_duration: Duration,
    window: SlidingWindow,
    minimum_calls: u32,
    open_wait: Backoff,
    half_open_permits: u32,
    successes_to_close: u32,
    listener: Option<Listener>,
    clock: C,
}

impl<C> fmt::Debug for CircuitBreakerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("name", &self.name)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("failure_rate", &self.failure_rate)
            .field("slow_call_rate", &self.slow_call_rate)
            .field("slow_call_duration", &self.slow_call_duration)
            .field("window", &self.window)
            .field("minimum_calls", &self.minimum_calls)
            .field("open_wait", &self.open_wait)
            .field("half_open_permits", &self.half_open_permits)
            .field("successes_to_close", &self.successes_to_close)
            .field("listener", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

impl<C: Clock> CircuitBreakerBuilder<C> {
    fn with_clock(clock: C) -> Self {
        Self {
            name: None,
            consecutive_failures: Some(DEFAULT_CONSECUTIVE_FAILURES),
            failure_rate: None,
            slow_call_rate: None,
            slow_call_duration: DEFAULT_SLOW_CALL_DURATION,
            window: SlidingWindow::count(DEFAULT_WINDOW),
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            open_wait: default_open_wait(),
            half_open_permits: DEFAULT_HALF_OPEN_PERMITS,
            successes_to_close: DEFAULT_SUCCESSES_TO_CLOSE,
            listener: None,
            clock,
        }
    }

    /// A name for events and `tracing` records (default `circuit-breaker`).
    pub fn name(self, name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..self
        }
    }

    /// Trip after this many failures in a row (default 5). A success ends the streak.
    pub fn consecutive_failures(self, failures: u32) -> Self {
        Self {
            consecutive_failures: Some(failures),
            ..self
        }
    }

    /// Do not trip on consecutive failures (only on rates, if set). The streak is still shown in
    /// [`Metrics::consecutive_failures`].
    pub fn disable_consecutive_failures(self) -> Self {
        Self {
            consecutive_failures: None,
            ..self
        }
    }

    /// Trip when the failure rate in the window reaches this (equal or greater), in (0, 1] (off by default).
    pub fn failure_rate(self, threshold: f64) -> Self {
        Self {
            failure_rate: Some(threshold),
            ..self
        }
    }

    /// Trip when the slow-call rate in the window reaches this (equal or greater), in (0, 1] (off by default).
    /// Setting it makes the breaker time every call (two precise clock reads per call).
    pub fn slow_call_rate(self, threshold: f64) -> Self {
        Self {
            slow_call_rate: Some(threshold),
            ..self
        }
    }

    /// A call taking at least this long, from its permit to its verdict, is slow (default 60 s).
    pub fn slow_call_duration(self, duration: Duration) -> Self {
        Self {
            slow_call_duration: duration,
            ..self
        }
    }

    /// The window the rates are computed over (default: the last 100 calls).
    pub fn sliding_window(self, window: SlidingWindow) -> Self {
        Self { window, ..self }
    }

    /// Rates are only acted on once the window holds this many calls (default 100). For a count window a
    /// value above the window's size is lowered to it, as resilience4j does.
    pub fn minimum_calls(self, calls: u32) -> Self {
        Self {
            minimum_calls: calls,
            ..self
        }
    }

    /// How long to stay open: the `k`-th opening in a row (`k` = 0 after closing or a reset) waits the
    /// backoff's delay for attempt `k` (default: exponential from 1 s, doubling, capped at 60 s, no jitter).
    pub fn open_wait(self, backoff: Backoff) -> Self {
        Self {
            open_wait: backoff,
            ..self
        }
    }

    /// How many probe calls half-open admits (default 2, at most 4,095).
    pub fn half_open_permits(self, permits: u32) -> Self {
        Self {
            half_open_permits: permits,
            ..self
        }
    }

    /// How many probe successes close the breaker (default 2, at most `half_open_permits`).
    pub fn successes_to_close(self, successes: u32) -> Self {
        Self {
            successes_to_close: successes,
            ..self
        }
    }

    /// Receives every [`Event`], outside the breaker's lock.
    pub fn listener(self, listener: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        Self {
            listener: Some(Box::new(listener)),
            ..self
        }
    }

    /// Uses `clock` instead of the system clock.
    ///
    /// ```
    /// use circuit::{CircuitBreaker, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder().clock(clock.clone()).build()?;
    /// # drop(breaker);
    /// # Ok::<(), circuit::BuildError>(())
    /// ```
    pub fn clock<C2: Clock>(self, clock: C2) -> CircuitBreakerBuilder<C2> {
        CircuitBreakerBuilder {
            name: self.name,
            consecutive_failures: self.consecutive_failures,
            failure_rate: self.failure_rate,
            slow_call_rate: self.slow_call_rate,
            slow_call_duration: self.slow_call_duration,
            window: self.window,
            minimum_calls: self.minimum_calls,
            open_wait: self.open_wait,
            half_open_permits: self.half_open_permits,
            successes_to_close: self.successes_to_close,
            listener: self.listener,
            clock,
        }
    }

    /// Checks the settings and builds the breaker.
    ///
    /// # Errors
    ///
    /// [`BuildError`] naming the first invalid field: [`RateOutOfRange`](BuildError::RateOutOfRange) for a
    /// threshold outside (0, 1] (`failure_rate`, `slow_call_rate`); [`Zero`](BuildError::Zero) for a zero
    /// `consecutive_failures`, `slow_call_duration`, `sliding_window` (size, span or buckets),
    /// `minimum_calls`, `half_open_permits` or `successes_to_close`; [`TooLarge`](BuildError::TooLarge) for a
    /// `sliding_window` above 65,536 calls or buckets, or with buckets shorter than a nanosecond, and for
    /// `half_open_permits` above 4,095; [`Exceeds`](BuildError::Exceeds) when `successes_to_close` is above
    /// `half_open_permits`.
    pub fn build(self) -> Result<CircuitBreaker<C>, BuildError> {
        if self.consecutive_failures == Some(0) {
            return Err(BuildError::Zero {
                field: "consecutive_failures",
            });
        }
        for (field, rate) in [
            ("failure_rate", self.failure_rate),
            ("slow_call_rate", self.slow_call_rate),
        ] {
            if let Some(value) = rate
                && !(value > 0.0 && value <= 1.0)
            {
                return Err(BuildError::RateOutOfRange { field, value });
            }
        }
        if self.slow_call_duration.is_zero() {
            return Err(BuildError::Zero {
                field: "slow_call_duration",
            });
        }
        let track_slow = self.slow_call_rate.is_some();
        let window_field = "sliding_window";
        let too_large = |value: u64, max: u64| BuildError::TooLarge {
            field: window_field,
            value,
            max,
        };
        let (window, window_size) = match self.window.kind {
            WindowKind::Count(0)
            | WindowKind::Time { buckets: 0, .. }
            | WindowKind::Time {
                span: Duration::ZERO,
                ..
            } => {
                return Err(BuildError::Zero {
                    field: window_field,
                });
            }
            WindowKind::Count(size) if size > MAX_WINDOW => {
                return Err(too_large(size.into(), MAX_WINDOW.into()));
            }
            WindowKind::Time { buckets, .. } if buckets > MAX_WINDOW => {
                return Err(too_large(buckets.into(), MAX_WINDOW.into()));
            }
            WindowKind::Count(size) => (
                Window::Count(CountWindow::new(size, track_slow)),
                Some(size),
            ),
            WindowKind::Time { span, buckets } => {
                let span_nanos = duration_to_nanos(span);
                let bucket_nanos = span_nanos / u64::from(buckets);
                if bucket_nanos == 0 {
                    return Err(too_large(buckets.into(), span_nanos));
                }
                (Window::Time(TimeWindow::new(bucket_nanos, buckets)), None)
            }
        };
        if self.minimum_calls == 0 {
            return Err(BuildError::Zero {
                field: "minimum_calls",
            });
        }
        if self.half_open_permits == 0 {
            return Err(BuildError::Zero {
                field: "half_open_permits",
            });
        }
        if self.half_open_permits > MAX_PROBES {
            return Err(BuildError::TooLarge {
                field: "half_open_permits",
                value: self.half_open_permits.into(),
                max: MAX_PROBES.into(),
            });
        }
        if self.successes_to_close == 0 {
            return Err(BuildError::Zero {
                field: "successes_to_close",
            });
        }
        if self.successes_to_close > self.half_open_permits {
            return Err(BuildError::Exceeds {
                field: "successes_to_close",
                value: self.successes_to_close.into(),
                limit_field: "half_open_permits",
                limit: self.half_open_permits.into(),
            });
        }
        let rates = self.failure_rate.is_some() || self.slow_call_rate.is_some();
        let minimum_calls =
            window_size.map_or(self.minimum_calls, |size| self.minimum_calls.min(size));
        Ok(CircuitBreaker {
            hot: CachePadded::new(Hot {
                state: AtomicU64::new(Word::INITIAL.0),
                open_until: AtomicU64::new(0),
            }),
            streak: CachePadded::new(AtomicU32::new(0)),
            window: if rates { Some(window) } else { None },
            control: Mutex::new(Control {
                attempt: 0,
                previous: self.open_wait.base(),
                rng: fastrand::Rng::new(),
                pending: VecDeque::new(),
                delivering: false,
            }),
            counters: Counters {
                successes: PerThreadCounter::new(),
                failures: PerThreadCounter::new(),
                ignored: PerThreadCounter::new(),
                rejected: PerThreadCounter::new(),
                times_opened: AtomicU64::new(0),
            },
            config: Config {
                name: self
                    .name
                    .map_or_else(|| DEFAULT_NAME.into(), String::into_boxed_str),
                consecutive_failures: self.consecutive_failures,
                failure_rate: self.failure_rate,
                slow_call_rate: self.slow_call_rate,
                slow_call_nanos: duration_to_nanos(self.slow_call_duration),
                minimum_calls,
                half_open_permits: self.half_open_permits,
                successes_to_close: self.successes_to_close,
                open_wait: self.open_wait,
            },
            listener: self.listener,
            clock: self.clock,
        })
    }
}

/// The settings, fixed at `build`.
#[derive(Debug)]
struct Config {
    name: Box<str>,
    consecutive_failures: Option<u32>,
    failure_rate: Option<f64>,
    slow_call_rate: Option<f64>,
    slow_call_nanos: u64,
    /// Already lowered to the size of a count window.
    minimum_calls: u32,
    half_open_permits: u32,
    successes_to_close: u32,
    open_wait: Backoff,
}

/// What every call reads: the state word and, when open, the deadline beside it on the same line.
#[derive(Debug)]
struct Hot {
    state: AtomicU64,
    /// When the current opening's wait ends, in the clock's nanoseconds. Written before the Release store of
    /// the `Open` word that it belongs to.
    open_until: AtomicU64,
}

/// What transitions change, under the transition lock.
struct Control {
    /// How many times the breaker has opened in a row since it last closed (the backoff attempt).
    attempt: u32,
    /// The last open wait (decorrelated jitter grows from it).
    previous: Duration,
    rng: fastrand::Rng,
    /// Transition events not yet given to the listener, oldest first.
    pending: VecDeque<Event>,
    /// Whether a thread is giving `pending` to the listener (it will deliver whatever is pushed meanwhile).
    delivering: bool,
}

/// Lifetime counters.
#[derive(Debug)]
struct Counters {
    successes: PerThreadCounter,
    failures: PerThreadCounter,
    ignored: PerThreadCounter,
    rejected: PerThreadCounter,
    times_opened: AtomicU64,
}

/// A circuit breaker: admits calls while the service behind it is healthy, rejects them for a while once it
/// is not, then lets a few probes through to find out whether it has recovered.
///
/// States: closed (admits, records, trips on consecutive failures or a failure/slow-call rate), open (rejects
/// for a backoff-grown wait), half-open (admits `half_open_permits` probes; closes after
/// `successes_to_close` successes, re-opens once that is impossible), and the forced states.
/// [`CircuitBreakerBuilder`] lists the settings; the design (one state word, the orderings, the windows, the
/// deviations from resilience4j) is in the design note `docs/circuit.md` and the module's source docs.
///
/// ```
/// use circuit::{CallError, CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder().consecutive_failures(2).build()?;
/// for _ in 0..2 {
///     let result: Result<(), _> = breaker.call(|| Err("timeout"));
///     assert_eq!(result, Err(CallError::Inner("timeout")));
/// }
/// assert_eq!(breaker.state(), State::Open);
/// assert!(breaker.call(|| Ok::<_, ()>(1)).unwrap_err().is_rejected());
/// # Ok::<(), circuit::BuildError>(())
/// ```
pub struct CircuitBreaker<C = SystemClock> {
    hot: CachePadded<Hot>,
    /// Failures in a row, on its own line: only failures write it, successes read it.
    streak: CachePadded<AtomicU32>,
    /// The closed state's window, kept only when a rate rule is set.
    window: Option<Window>,
    control: Mutex<Control>,
    counters: Counters,
    config: Config,
    listener: Option<Listener>,
    clock: C,
}

impl<C> fmt::Debug for CircuitBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.config.name)
            .field(
                "state",
                &Word(self.hot.state.load(Ordering::Relaxed)).kind().state(),
            )
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker<SystemClock> {
    /// A builder with the defaults.
    pub fn builder() -> CircuitBreakerBuilder<SystemClock> {
        CircuitBreakerBuilder::with_clock(SystemClock::new())
    }

    /// A breaker with every default: trips after 5 failures in a row, waits 1 s (doubling up to 60 s) before
    /// half-open, closes after 2 probe successes.
    pub fn new() -> Self {
        Self::builder()
            .build()
            .expect("the default settings are valid")
    }
}

impl Default for CircuitBreaker<SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

/// What needs no clock, so that a permit's `Drop` (which cannot bound `C`) can use it.
impl<C> CircuitBreaker<C> {
    /// Records that the permit issued as `tag` was ignored (or dropped): a half-open probe gives its slot back.
    /// `SETTLED` (a permit that already had its verdict) does nothing.
    fn ignore(&self, tag: u64) {
        if tag == permit::SETTLED {
            return;
        }
        let tag = Word(tag);
        match tag.kind() {
            Kind::Disabled => {}
            Kind::HalfOpen => {
                self.counters.ignored.increment();
                self.change_probes(tag, |word| word - ONE_ISSUED);
            }
            _ => self.counters.ignored.increment(),
        }
    }

    /// Changes the half-open probe counts of generation `tag` with `change`, unless the breaker has moved on.
    /// Returns the new word if it changed it.
    fn change_probes(&self, tag: Word, change: impl Fn(u64) -> u64) -> Option<Word> {
        // Relaxed: the counts are all the data; a transition they lead to re-reads the word under the lock
        // (which sees this thread's own change by coherence).
        let mut word = self.hot.state.load(Ordering::Relaxed);
        loop {
            if Word(word).tag() != tag.0 {
                return None;
            }
            let new = change(word);
            match self.hot.state.compare_exchange_weak(
                word,
                new,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Word(new)),
                Err(actual) => word = actual,
            }
        }
    }
}

/// A clock reading in nanoseconds. Cheaper than [`duration_to_nanos`] (no 128-bit arithmetic, no overflow
/// branch), for the hot paths: a monotonic clock's readings fit in 64 bits of nanoseconds for 584 years after
/// its origin (boot, for the system clock).
#[inline]
fn nanos(duration: Duration) -> u64 {
    duration
        .as_secs()
        .wrapping_mul(1_000_000_000)
        .wrapping_add(u64::from(duration.subsec_nanos()))
}

impl<C: Clock> CircuitBreaker<C> {
    /// The current state. An open breaker whose wait is over still says `Open` until a call asks for a permit.
    pub fn state(&self) -> State {
        // Relaxed: a reading for the caller, ordering nothing.
        Word(self.hot.state.load(Ordering::Relaxed)).kind().state()
    }

    /// The breaker's name, as given to [`CircuitBreakerBuilder::name`].
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// A snapshot of the counters (see [`Metrics`] for what each means).
    pub fn metrics(&self) -> Metrics {
        let state = self.state();
        let counts = match &self.window {
            Some(window) => window.counts(nanos(self.clock.coarse_now())),
            None => Counts::default(),
        };
        let full = self.window.is_some() && counts.calls >= self.config.minimum_calls;
        let rate = |count: u32| count as f32 / counts.calls as f32;
        Metrics {
            state,
            failure_rate: full.then(|| rate(counts.failures)),
            slow_call_rate: (full && self.config.slow_call_rate.is_some())
                .then(|| rate(counts.slow)),
            window_calls: counts.calls,
            window_failures: counts.failures,
            window_slow_calls: counts.slow,
            consecutive_failures: self.streak.load(Ordering::Relaxed),
            successes: self.counters.successes.sum(),
            failures: self.counters.failures.sum(),
            ignored: self.counters.ignored.sum(),
            rejected: self.counters.rejected.sum(),
            times_opened: self.counters.times_opened.load(Ordering::Relaxed),
        }
    }

    /// Asks to make one call.
    ///
    /// ```
    /// use circuit::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::new();
    /// match breaker.try_acquire() {
    ///     Ok(permit) => {
    ///         // make the call, then:
    ///         permit.success();
    ///     }
    ///     Err(rejected) => println!("not now: retry after {:?}", rejected.retry_after()),
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Rejected`] when open, forced open, or half-open with every probe permit taken.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_, C>, Rejected> {
        self.acquire().map(|ticket| Permit::new(self, ticket))
    }

    /// Like [`try_acquire`](Self::try_acquire), with a permit that owns a reference to the breaker.
    ///
    /// This takes `std::sync::Arc` even under loom (whose `Arc` cannot be a method receiver): only the
    /// breaker's own atomics and lock need to be modelled.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    #[inline]
    pub fn try_acquire_owned(self: &std::sync::Arc<Self>) -> Result<OwnedPermit<C>, Rejected> {
        self.acquire()
            .map(|ticket| OwnedPermit::new(std::sync::Arc::clone(self), ticket))
    }

    /// Runs `f` if permitted; `Err` is a failure. If `f` panics the call counts as ignored.
    ///
    /// ```
    /// use circuit::{CallError, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new();
    /// let value = breaker.call(|| "42".parse::<u32>());
    /// assert_eq!(value, Ok(42));
    /// assert!(matches!(breaker.call(|| "x".parse::<u32>()), Err(CallError::Inner(_))));
    /// ```
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] without running `f`, or [`CallError::Inner`] with `f`'s error.
    #[inline]
    pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        self.call_with(|_| true, f)
    }

    /// Runs `f` if permitted; an `Err` for which `is_failure` is false counts as a success.
    ///
    /// Such an error says the service answered (a "not found", a validation error): like recloser's
    /// predicate, and unlike resilience4j's `ignoreExceptions` (which records nothing), it counts as a
    /// success, so it ends a failure streak and can close a half-open breaker.
    ///
    /// ```
    /// use circuit::{CallError, CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().consecutive_failures(1).build()?;
    /// let not_found: Result<(), _> = breaker.call_with(|status: &u16| *status >= 500, || Err(404));
    /// assert_eq!(not_found, Err(CallError::Inner(404)));
    /// assert_eq!(breaker.state(), State::Closed);
    /// # Ok::<(), circuit::BuildError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub fn call_with<T, E>(
        &self,
        is_failure: impl FnOnce(&E) -> bool,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, CallError<E>> {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        match f() {
            Ok(value) => {
                permit.success();
                Ok(value)
            }
            Err(error) => {
                if is_failure(&error) {
                    permit.failure();
                } else {
                    permit.success();
                }
                Err(CallError::Inner(error))
            }
        }
    }

    /// Awaits `future` if permitted; `Err` is a failure; dropping the returned future counts as ignored.
    ///
    /// The permit is asked for when the returned future is first polled, and held until `future` completes.
    /// Needs no runtime.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub async fn call_async<T, E>(
        &self,
        future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        self.call_async_with(|_| true, future).await
    }

    /// Like [`call_async`](Self::call_async) with a failure predicate (see [`call_with`](Self::call_with)).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub async fn call_async_with<T, E>(
        &self,
        is_failure: impl FnOnce(&E) -> bool,
        future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CallError<E>> {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        match future.await {
            Ok(value) => {
                permit.success();
                Ok(value)
            }
            Err(error) => {
                if is_failure(&error) {
                    permit.failure();
                } else {
                    permit.success();
                }
                Err(CallError::Inner(error))
            }
        }
    }

    /// Rejects every call until [`reset`](Self::reset) (or another forced state). A no-op when already forced
    /// open.
    pub fn force_open(&self) {
        self.force(Kind::ForcedOpen);
    }

    /// Admits every call, records, never trips, until [`reset`](Self::reset) (resilience4j's `METRICS_ONLY`).
    /// Starts with an empty window and streak. A no-op when already forced closed.
    pub fn force_closed(&self) {
        self.force(Kind::ForcedClosed);
    }

    /// Admits every call and records nothing until [`reset`](Self::reset). A no-op when already disabled.
    pub fn disable(&self) {
        self.force(Kind::Disabled);
    }

    /// Back to closed with an empty window and streak and the open wait's backoff restarted. The lifetime
    /// counters of [`Metrics`] keep counting.
    pub fn reset(&self) {
        let mut control = lock(&self.control);
        let current = self.current_under_lock();
        self.clear_closed_counts();
        control.attempt = 0;
        control.previous = self.config.open_wait.base();
        self.publish(current.next(Kind::Closed));
        let from = current.kind().state();
        if from != State::Closed {
            control.pending.push_back(Event::StateTransition {
                from,
                to: State::Closed,
            });
        }
        control.pending.push_back(Event::Reset { from });
        drop(control);
        self.deliver();
    }

    // ---- acquisition ----

    /// The permit's ticket, or the rejection. The closed path is one Acquire load; the open rejection adds a
    /// Relaxed load, a coarse clock read and a per-thread count.
    #[inline]
    fn acquire(&self) -> Result<Ticket, Rejected> {
        // Acquire: pairs with the Release store in `publish` of the transition that wrote this word, so that
        // (a) seeing `Open`, the deadline read below is that opening's (or a later one's), and (b) seeing a new
        // `Closed`/`ForcedClosed` generation, this permit records into the window cleared before it.
        let word = Word(self.hot.state.load(Ordering::Acquire));
        if word.admits_freely() {
            return Ok(self.ticket(word));
        }
        if word.is(Kind::Open) {
            // Relaxed: ordered after the state word by the Acquire above.
            let deadline = self.hot.open_until.load(Ordering::Relaxed);
            let now = nanos(self.clock.coarse_now());
            if now < deadline {
                return Err(self.reject(State::Open, NonZeroU64::new(deadline - now)));
            }
        }
        self.acquire_slow(word)
    }

    /// Everything but a closed admission and an early open rejection: disabled, forced open, half-open probes
    /// and the move from open to half-open.
    #[inline(never)]
    fn acquire_slow(&self, mut word: Word) -> Result<Ticket, Rejected> {
        loop {
            match word.kind() {
                Kind::Closed | Kind::ForcedClosed => return Ok(self.ticket(word)),
                Kind::Disabled => {
                    return Ok(Ticket {
                        tag: word.tag(),
                        started: NOT_TIMED,
                    });
                }
                Kind::ForcedOpen => return Err(self.reject(State::ForcedOpen, None)),
                Kind::Open => {
                    // Relaxed: ordered after the state word by the Acquire load that produced `word`.
                    let deadline = self.hot.open_until.load(Ordering::Relaxed);
                    let now = nanos(self.clock.coarse_now());
                    if now < deadline {
                        return Err(self.reject(State::Open, NonZeroU64::new(deadline - now)));
                    }
                    self.transition(word, |_| Some(Kind::HalfOpen), None);
                    // Acquire: as in `acquire`.
                    word = Word(self.hot.state.load(Ordering::Acquire));
                }
                Kind::HalfOpen => {
                    if word.issued() >= self.config.half_open_permits {
                        return Err(self.reject(State::HalfOpen, None));
                    }
                    // Relaxed on success: the probe count is the only thing taken; Acquire on failure: the
                    // loop may find `Open` or a new `Closed` generation, and needs what `acquire` needs.
                    match self.hot.state.compare_exchange_weak(
                        word.0,
                        word.0 + ONE_ISSUED,
                        Ordering::Relaxed,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Ok(self.ticket(word)),
                        Err(actual) => word = Word(actual),
                    }
                }
            }
        }
    }

    #[inline]
    fn ticket(&self, word: Word) -> Ticket {
        Ticket {
            tag: word.tag(),
            started: if self.config.slow_call_rate.is_some() {
                nanos(self.clock.now())
            } else {
                NOT_TIMED
            },
        }
    }

    /// Counts and reports a refusal.
    #[inline]
    fn reject(&self, state: State, retry_after_nanos: Option<NonZeroU64>) -> Rejected {
        self.counters.rejected.increment();
        tracing::trace!(breaker = %self.config.name, %state, "circuit breaker rejected a call");
        if let Some(listener) = &self.listener {
            listener(&Event::Rejected { state });
        }
        Rejected {
            state,
            retry_after_nanos,
        }
    }

    // ---- verdicts ----

    /// Records the success or failure of the permit issued as `tag` (at `started`, if timed).
    #[inline]
    fn finish(&self, tag: u64, started: u64, failed: bool) {
        let tag = Word(tag);
        if tag.is(Kind::Disabled) {
            return;
        }
        if failed {
            self.counters.failures.increment();
        } else {
            self.counters.successes.increment();
            if started == NOT_TIMED && self.window.is_none() && tag.admits_freely() {
                // The healthy path, inlined: a success that only ends a streak, if there is one, and only
                // writes then, so the streak's line stays shared between cores. Relaxed: as in
                // `record_closed`.
                if Word(self.hot.state.load(Ordering::Relaxed)).tag() == tag.0
                    && self.streak.load(Ordering::Relaxed) != 0
                {
                    self.streak.store(0, Ordering::Relaxed);
                }
                return;
            }
        }
        self.record(tag, started, failed);
    }

    /// Everything [`finish`](Self::finish) does not inline: timing, the window, failures and probes.
    #[inline(never)]
    fn record(&self, tag: Word, started: u64, failed: bool) {
        let mut now = NOT_TIMED;
        let mut slow = false;
        if started != NOT_TIMED {
            now = nanos(self.clock.now());
            slow = now.saturating_sub(started) >= self.config.slow_call_nanos;
        }
        if tag.admits_freely() {
            self.record_closed(tag, failed, slow, now);
        } else {
            self.record_probe(tag, failed || slow);
        }
    }

    /// Records a half-open probe's verdict (a slow probe is a failed probe: it says the service has not
    /// recovered), and settles half-open if that decides it.
    #[inline(never)]
    fn record_probe(&self, tag: Word, failed: bool) {
        debug_assert_eq!(
            tag.kind(),
            Kind::HalfOpen,
            "a permit issued in a state that admits no call"
        );
        let counted = if failed { ONE_FAILURE } else { ONE_SUCCESS };
        if let Some(word) = self.change_probes(tag, |word| word + counted)
            && probe_verdict(
                word,
                self.config.half_open_permits,
                self.config.successes_to_close,
            ) != Verdict::Pending
        {
            self.settle_half_open(word);
        }
    }

    /// Records a verdict of a permit issued while closed or forced closed, and trips if a rule says so.
    #[inline]
    fn record_closed(&self, tag: Word, failed: bool, slow: bool, now: u64) {
        // Relaxed: only compares generations. The window this permit records into was cleared before its
        // generation was published, and the Acquire load that issued the permit ordered that before.
        let current = Word(self.hot.state.load(Ordering::Relaxed));
        if current.tag() != tag.0 {
            // The breaker moved on since the permit was issued: lifetime counters only.
            return;
        }
        let counts = match &self.window {
            None => None,
            Some(window) => {
                let now = match window {
                    Window::Time(_) if now == NOT_TIMED => nanos(self.clock.coarse_now()),
                    _ => now,
                };
                window.record(now, failed, slow)
            }
        };
        let mut reason = None;
        // Relaxed on the streak: a count; the transition it may cause is made under the lock.
        if failed {
            let streak = self.streak.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if self
                .config
                .consecutive_failures
                .is_some_and(|threshold| streak >= threshold)
            {
                reason = Some(TripReason::ConsecutiveFailures { count: streak });
            }
        } else if self.streak.load(Ordering::Relaxed) != 0 {
            // Only write when there is a streak to end, so the line stays shared on the healthy path.
            self.streak.store(0, Ordering::Relaxed);
        }
        if reason.is_none() {
            reason = counts.and_then(|counts| self.rate_trip(counts));
        }
        if let Some(reason) = reason
            && tag.is(Kind::Closed)
        {
            self.trip(current, reason);
        }
    }

    #[cold]
    #[inline(never)]
    fn trip(&self, observed: Word, reason: TripReason) {
        self.transition(
            observed,
            |_| Some(Kind::Open),
            Some(Event::Tripped { reason }),
        );
    }

    /// The rate rule that `counts` breaks, if any (failure rate first).
    fn rate_trip(&self, counts: Counts) -> Option<TripReason> {
        if counts.calls < self.config.minimum_calls {
            return None;
        }
        let calls = f64::from(counts.calls);
        let over = |count: u32, threshold: Option<f64>| {
            let rate = f64::from(count) / calls;
            threshold
                .is_some_and(|threshold| rate >= threshold)
                .then_some(rate as f32)
        };
        over(counts.failures, self.config.failure_rate)
            .map(|rate| TripReason::FailureRate { rate })
            .or_else(|| {
                over(counts.slow, self.config.slow_call_rate)
                    .map(|rate| TripReason::SlowCallRate { rate })
            })
    }

    /// Closes or re-opens a half-open breaker whose probe counts (in `decided`) say so.
    fn settle_half_open(&self, decided: Word) {
        let permits = self.config.half_open_permits;
        let successes = self.config.successes_to_close;
        self.transition(
            decided,
            |current| match probe_verdict(current, permits, successes) {
                Verdict::Close => Some(Kind::Closed),
                Verdict::Reopen => Some(Kind::Open),
                // Counts only grow within a generation, so a decided word stays decided.
                Verdict::Pending => None,
            },
            None,
        );
    }

    // ---- transitions (under the lock) ----

    /// Moves from the generation of `observed` to the state `target` picks, if the breaker is still in that
    /// generation (and state): of several threads that saw the same reason to move, one moves.
    fn transition(
        &self,
        observed: Word,
        target: impl FnOnce(Word) -> Option<Kind>,
        first_event: Option<Event>,
    ) {
        let mut control = lock(&self.control);
        let current = self.current_under_lock();
        if current.tag() != observed.tag() {
            return;
        }
        let Some(to) = target(current) else {
            return;
        };
        if let Some(event) = first_event {
            control.pending.push_back(event);
        }
        match to {
            Kind::Open => self.open(&mut control),
            Kind::Closed => {
                self.clear_closed_counts();
                control.attempt = 0;
                control.previous = self.config.open_wait.base();
            }
            _ => {}
        }
        self.publish(current.next(to));
        control.pending.push_back(Event::StateTransition {
            from: current.kind().state(),
            to: to.state(),
        });
        drop(control);
        self.deliver();
    }

    /// Enters a forced state (or stays, without an event, if already in it).
    fn force(&self, to: Kind) {
        let mut control = lock(&self.control);
        let current = self.current_under_lock();
        if current.kind() == to {
            return;
        }
        if to == Kind::ForcedClosed {
            self.clear_closed_counts();
        }
        self.publish(current.next(to));
        control.pending.push_back(Event::StateTransition {
            from: current.kind().state(),
            to: to.state(),
        });
        drop(control);
        self.deliver();
    }

    /// The state word, read under the transition lock.
    fn current_under_lock(&self) -> Word {
        // Relaxed: every change of generation is made under the lock, so the lock orders the last one before
        // this read; probe counts changed since by CAS do not matter to a transition, except this thread's
        // own, which coherence shows.
        Word(self.hot.state.load(Ordering::Relaxed))
    }

    /// Computes the next open wait and stores its deadline; the caller publishes the `Open` word after it.
    fn open(&self, control: &mut Control) {
        let wait = self
            .config
            .open_wait
            .delay(control.attempt, control.previous, &mut control.rng);
        control.attempt = control.attempt.saturating_add(1);
        control.previous = wait;
        let deadline = nanos(self.clock.now()).saturating_add(duration_to_nanos(wait));
        // Relaxed: published by the Release store of the `Open` word that follows.
        self.hot.open_until.store(deadline, Ordering::Relaxed);
        self.counters.times_opened.fetch_add(1, Ordering::Relaxed);
    }

    /// Empties what a closed generation counts: the window and the streak.
    fn clear_closed_counts(&self) {
        if let Some(window) = &self.window {
            window.clear();
        }
        // Relaxed: published by the Release store of the new word, like the window.
        self.streak.store(0, Ordering::Relaxed);
    }

    /// Publishes a new generation.
    fn publish(&self, word: Word) {
        // Release: pairs with the Acquire load in `acquire` (and `acquire_slow`): a thread that sees this word
        // sees the deadline stored for it and the window and streak cleared for it.
        self.hot.state.store(word.0, Ordering::Release);
    }

    // ---- events ----

    /// Gives the pending transition events to the listener and `tracing`, in order, unless another thread is
    /// already doing so (it will give these too: the check and the hand-over happen under the lock).
    fn deliver(&self) {
        // If the listener panics, the guard lets the next transition's thread deliver what is left.
        struct Delivering<'a>(&'a Mutex<Control>);
        impl Drop for Delivering<'_> {
            fn drop(&mut self) {
                lock(self.0).delivering = false;
            }
        }
        loop {
            {
                let mut control = lock(&self.control);
                if control.delivering || control.pending.is_empty() {
                    return;
                }
                control.delivering = true;
            }
            let delivering = Delivering(&self.control);
            loop {
                // The guard is a temporary of this statement: the lock is released before `emit`.
                let Some(event) = lock(&self.control).pending.pop_front() else {
                    break;
                };
                self.emit(&event);
            }
            // An event pushed between the last pop and this clear found `delivering` set and was left to
            // this thread: the loop looks again.
            drop(delivering);
        }
    }

    fn emit(&self, event: &Event) {
        let name = &*self.config.name;
        match event {
            Event::StateTransition { from, to } => match to {
                State::Open | State::ForcedOpen => {
                    tracing::warn!(breaker = name, %from, %to, "circuit breaker opened");
                }
                _ => tracing::info!(breaker = name, %from, %to, "circuit breaker state transition"),
            },
            Event::Tripped { reason } => {
                tracing::warn!(breaker = name, %reason, "circuit breaker tripped");
            }
            Event::Reset { from } => {
                tracing::info!(breaker = name, %from, "circuit breaker reset");
            }
            Event::Rejected { state } => {
                tracing::trace!(breaker = name, %state, "circuit breaker rejected a call");
            }
        }
        if let Some(listener) = &self.listener {
            listener(event);
        }
    }
}
