//! Adaptive concurrency limits: [`AdaptiveLimit`], a counting semaphore whose size follows the backend.
//!
//! # Algorithms
//!
//! Each completed request gives the algorithm one sample: a success with its latency, or a drop (timed out,
//! refused, failed from overload). [`Token::ignore`] (or dropping a token without a verdict) gives none.
//! Every sample also carries the in-flight count when its token was issued: a sample taken while less than
//! half the limit was in use is *app-limited* and never grows the limit, because it says nothing about
//! whether the limit is too low (both algorithms; it is Netflix's guard, and it keeps a lightly loaded limit
//! from creeping up to its maximum and being useless when load arrives).
//!
//! **AIMD** (additive increase, multiplicative decrease, as in TCP congestion control; the seed's behaviour
//! and Netflix concurrency-limits' `AIMDLimit`): after `successes_to_grow` (default 3) non-app-limited
//! successes in a row the limit grows by one, up to `max_limit`; a drop sets it to
//! `max(min_limit, floor(limit × backoff_ratio))` (default ratio 0.9) and restarts the streak. With a
//! `timeout`, a success slower than it counts as a drop (Netflix's default is 5 s; ours is none).
//! Differences from Netflix's `AIMDLimit`: growth needs a streak (Netflix grows on every success); defaults
//! are `min_limit` 1 and `max_limit` 1000 (Netflix: 20 and 200); the ratio may be anywhere in (0, 1)
//! (Netflix: [0.5, 1)).
//!
//! **Gradient2** (Netflix concurrency-limits' `Gradient2Limit`, read and re-implemented): the short-term
//! RTT is the latest sample; the long-term RTT is an exponential average over about `long_window` samples
//! (default 600; weight 2 / (window + 1) after a 10-sample arithmetic warm-up). Per sample:
//! `gradient = clamp(rtt_tolerance × long / short, 0.5, 1)`, `target = limit × gradient + queue_size`,
//! `limit = limit × (1 − smoothing) + target × smoothing`, clamped to `[min_limit, max_limit]`. So while
//! latency stays within `rtt_tolerance` (default 1.5) of the long-term RTT the limit grows by
//! `queue_size × smoothing` (4 × 0.2 = 0.8) per sample, and beyond it the limit falls, at most to half per
//! unsmoothed step. When the long RTT exceeds twice the short one (recovery after a long overload) it is
//! multiplied by 0.95 per sample so the limit can grow again sooner. Deviations: a drop, which carries no
//! usable latency here, is taken as the lowest gradient (Netflix's `Gradient2Limit` ignores the drop flag
//! and uses the dropped request's RTT); `min_limit` defaults to 1 (Netflix: 20, which would stop the limiter
//! protecting a backend that handles fewer than 20 requests at once); the queue size is a fixed number
//! (Netflix also accepts a function of the limit; its default is this same constant 4).
//!
//! **One cut per congestion episode** (both; our addition): the limiter counts its cuts, each token
//! remembers the count at issue, and a drop of a request sent before the latest cut does not cut again: the
//! overload it reports was already answered (TCP cuts once per window for the same reason). Without it, the
//! slow responses already queued behind an overload each cut again and AIMD with a timeout collapses to a
//! fraction of the capacity (measured in the simulation: a mean limit of 27 against a capacity of 100).
//!
//! What they settle at (tests/limit_simulation.rs, closed-loop clients, capacity 100 then 20, 10 ms
//! service): when overload shows as drops soon after the capacity (a queue of 10% of it), AIMD averages
//! 104.5 then 21.0 and Gradient2 105.4 then 21.7, each within ±10% within 60 ms of simulated time. Behind
//! a deep queue (as long as the capacity) a loss-only AIMD settles where drops begin (190 then 38): it
//! cannot see queueing; with a timeout just above the unqueued latency its mean is within 10%. Gradient2
//! behind a deep queue rises to its maximum (200) and then to the drop point (38.7): sustained queueing
//! raises its long-term RTT, which it cannot tell from a slower backend, so only a latency rise faster
//! than its long window cuts it.
//!
//! # Admission
//!
//! One `AtomicU64` holds the in-flight count (bits 0–31), the limit (bits 32–62) and a *waiters* flag (bit
//! 63) that is set exactly while the waiter queue is non-empty (it is set and cleared only under the queue's
//! mutex). [`try_acquire`](AdaptiveLimit::try_acquire) is lock-free: one CAS that adds one to the count if
//! the flag is clear and the count is below the limit. A release with the flag clear is a CAS that
//! subtracts one. A caller that must wait locks the queue and, in one CAS on the word, either takes a slot
//! (if the queue is empty and the limit allows) or sets the flag, then queues itself. A release that sees the
//! flag locks the queue, subtracts one, and grants free slots to the queue's head in order (adding one per
//! grant), marking each waiter granted and waking it after unlocking.
//!
//! No lost wakeup: the waiter's decision and the release's decrement are CASes on the same word, so one comes
//! first in its modification order. If the release is first, the waiter's CAS sees the free slot and takes
//! it; if the waiter's is first, the release's CAS fails on the flag and it grants under the lock, after the
//! registration. This argument needs no ordering stronger than Relaxed; the tests/loom models check it.
//!
//! Fairness: the fast path refuses while the flag is set, and a freed slot goes straight to the queue's head
//! (the count never drops below the limit in between for anyone else to see), so a caller that arrives later
//! cannot overtake one that waits; async and blocking waiters share the one queue. A waiter that gives up
//! leaves the queue, or, if it had already been handed a slot, releases it, which passes it to the next
//! waiter. A raised limit is granted to waiters by the release that follows it in the same completion.
//!
//! Orderings: the admitting CASes (`try_admit`, `register`, `grant`) are Acquire and the releasing
//! decrements Release, pairing with each other as in a semaphore, so whatever a token's holder did before
//! releasing happens before the next holder of the slot starts. The limiter itself guards no data, so this
//! is for callers that use it as a semaphore; everything else (the limit bits, clearing the flag, the cut
//! count) is Relaxed, because decisions rest on the word's modification order and on the queue mutex.
//!
//! Algorithm updates take a short mutex, once per completion with a verdict (not per admission), as
//! Netflix's `synchronized onSample` does: Gradient2's floating-point state has no single-word atomic form,
//! and a completion already costs the request's own latency. The new limit is written into the state word
//! under that mutex, so concurrent completions publish limits in the order they were computed.

mod aimd;
mod gradient2;
mod waiters;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub use aimd::AimdBuilder;
pub use gradient2::Gradient2Builder;

use crate::clock::{Clock, SystemClock};
use crate::error::BuildError;
use crate::sync::{self, Arc, AtomicU64, Condvar, Mutex, Ordering, PerThreadCounter};
use aimd::Aimd;
use gradient2::Gradient2;
use waiters::{Status, Waiters, Wake};

/// The largest limit: the limit lives in 31 bits of the state word.
pub(crate) const MAX_LIMIT: u32 = (1 << 31) - 1;

/// State word: bits 0–31 the number of tokens out, bits 32–62 the limit, bit 63 set while callers wait.
const IN_FLIGHT_MASK: u64 = 0xFFFF_FFFF;
const LIMIT_SHIFT: u32 = 32;
const LIMIT_MASK: u64 = (MAX_LIMIT as u64) << LIMIT_SHIFT;
const WAITERS: u64 = 1 << 63;

#[inline]
fn in_flight_of(word: u64) -> u32 {
    (word & IN_FLIGHT_MASK) as u32
}

#[inline]
fn limit_of(word: u64) -> u32 {
    ((word & LIMIT_MASK) >> LIMIT_SHIFT) as u32
}

#[inline]
fn has_waiters(word: u64) -> bool {
    word & WAITERS != 0
}

/// Validates the three limits every algorithm has.
fn check_limits(initial: u32, min: u32, max: u32) -> Result<(), BuildError> {
    for (field, value) in [
        ("initial_limit", initial),
        ("min_limit", min),
        ("max_limit", max),
    ] {
        if value == 0 {
            return Err(BuildError::Zero { field });
        }
    }
    if max > MAX_LIMIT {
        return Err(BuildError::TooLarge {
            field: "max_limit",
            value: u64::from(max),
            max: u64::from(MAX_LIMIT),
        });
    }
    if min > initial {
        return Err(BuildError::Exceeds {
            field: "min_limit",
            value: u64::from(min),
            limit_field: "initial_limit",
            limit: u64::from(initial),
        });
    }
    if initial > max {
        return Err(BuildError::Exceeds {
            field: "initial_limit",
            value: u64::from(initial),
            limit_field: "max_limit",
            limit: u64::from(max),
        });
    }
    Ok(())
}

/// What a completed request tells the algorithm.
#[derive(Debug, Clone, Copy)]
enum Sample {
    /// It succeeded after this long.
    Success(Duration),
    /// It was dropped: timed out, refused, or failed because the backend is overloaded.
    Dropped,
}

#[derive(Debug)]
enum Algorithm {
    Aimd(Aimd),
    Gradient2(Gradient2),
}

/// The algorithm and the sample counters, under one mutex taken once per completion with a sample.
#[derive(Debug)]
struct Adaptation {
    algorithm: Algorithm,
    successes: u64,
    drops: u64,
}

impl Adaptation {
    fn limit(&self) -> u32 {
        match &self.algorithm {
            Algorithm::Aimd(aimd) => aimd.limit(),
            Algorithm::Gradient2(gradient2) => gradient2.limit(),
        }
    }

    fn name(&self) -> &'static str {
        match &self.algorithm {
            Algorithm::Aimd(_) => "aimd",
            Algorithm::Gradient2(_) => "gradient2",
        }
    }
}

/// A concurrency limiter whose limit adapts to the backend: AIMD or Gradient2 (Netflix concurrency-limits).
///
/// Take a [`Token`] before each request ([`try_acquire`](Self::try_acquire), [`acquire`](Self::acquire) or
/// [`acquire_async`](Self::acquire_async)) and give it a verdict when the request ends:
/// [`success(latency)`](Token::success), [`dropped()`](Token::dropped) (timed out, refused, overloaded) or
/// [`ignore()`](Token::ignore) (no information, e.g. a client-side error). The algorithm moves the limit from
/// those verdicts; at most `limit()` tokens are out at once. Waiting callers are served in arrival order.
///
/// ```
/// use circuit::AdaptiveLimit;
/// use std::time::Duration;
///
/// let limit = AdaptiveLimit::aimd().initial_limit(2).build()?;
/// let first = limit.try_acquire().expect("below the limit");
/// let second = limit.try_acquire().expect("below the limit");
/// assert!(limit.try_acquire().is_none(), "two tokens out, limit 2");
/// first.success(Duration::from_millis(12));
/// second.dropped(); // AIMD: limit = max(min_limit, floor(2 × 0.9)) = 1
/// assert_eq!(limit.limit(), 1);
/// # Ok::<(), circuit::BuildError>(())
/// ```
///
/// AIMD grows the limit by one after a streak of successes and multiplies it by a ratio on a drop; Gradient2
/// scales it by the ratio of long-term to short-term latency (each builder's methods give the parameters and
/// defaults). Admission is one lock-free CAS while nobody waits; a drop of a request sent before the latest
/// cut does not cut again. The algorithms' sources, every deviation from them, the admission protocol and its
/// memory orderings are in the design note (`docs/circuit.md`).
pub struct AdaptiveLimit<C = SystemClock> {
    /// In-flight count, limit and waiters flag (see the constants above). Admission is a CAS on this word.
    state: AtomicU64,
    /// Callers waiting for a slot, first come first served.
    waiters: Mutex<Waiters>,
    adaptation: Mutex<Adaptation>,
    /// How many times the limit has been cut; a token remembers it at issue so that a drop of a request sent
    /// before the latest cut does not cut again (see the module docs).
    cuts: AtomicU64,
    ignored: PerThreadCounter,
    rejected: PerThreadCounter,
    clock: C,
}

impl<C> fmt::Debug for AdaptiveLimit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.state.load(Ordering::Relaxed);
        f.debug_struct("AdaptiveLimit")
            .field("limit", &limit_of(word))
            .field("in_flight", &in_flight_of(word))
            .field("waiters", &has_waiters(word))
            .finish_non_exhaustive()
    }
}

/// A snapshot of an [`AdaptiveLimit`]'s state and counters. The fields are read one after another, not at
/// one instant.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LimitMetrics {
    /// The current limit.
    pub limit: u32,
    /// Tokens out now.
    pub in_flight: u32,
    /// Callers waiting for a token now.
    pub waiting: usize,
    /// Tokens completed with [`Token::success`] (or `success_elapsed`).
    pub successes: u64,
    /// Tokens completed with [`Token::dropped`] (a success slower than AIMD's timeout counts as a success
    /// here and as a drop for the algorithm).
    pub drops: u64,
    /// Tokens completed with [`Token::ignore`] or dropped without a verdict.
    pub ignored: u64,
    /// [`try_acquire`](AdaptiveLimit::try_acquire) calls refused.
    pub rejected: u64,
    /// Acquisitions that had to queue behind the limit.
    pub queued: u64,
    /// Gradient2's long-term round-trip time (`None` for AIMD).
    pub long_rtt: Option<Duration>,
}

impl AdaptiveLimit<SystemClock> {
    /// A builder for an AIMD limit: +1 after a streak of successes, × `backoff_ratio` on a drop.
    pub fn aimd() -> AimdBuilder<SystemClock> {
        AimdBuilder::new()
    }

    /// A builder for a Gradient2 limit: follows the ratio of long-term to short-term latency.
    pub fn gradient2() -> Gradient2Builder<SystemClock> {
        Gradient2Builder::new()
    }
}

impl<C: Clock> AdaptiveLimit<C> {
    fn from_parts(algorithm: Algorithm, clock: C) -> Self {
        let adaptation = Adaptation {
            algorithm,
            successes: 0,
            drops: 0,
        };
        let limit = adaptation.limit();
        Self {
            state: AtomicU64::new(u64::from(limit) << LIMIT_SHIFT),
            waiters: Mutex::new(Waiters::default()),
            adaptation: Mutex::new(adaptation),
            cuts: AtomicU64::new(0),
            ignored: PerThreadCounter::new(),
            rejected: PerThreadCounter::new(),
            clock,
        }
    }

    /// The current limit: at most this many tokens are out at once (fewer right after a cut, until enough
    /// complete).
    pub fn limit(&self) -> u32 {
        limit_of(self.state.load(Ordering::Relaxed))
    }

    /// How many tokens are out now. It may exceed [`limit`](Self::limit) right after a cut.
    pub fn in_flight(&self) -> u32 {
        in_flight_of(self.state.load(Ordering::Relaxed))
    }

    /// A snapshot of the limit, the in-flight count and the counters.
    pub fn metrics(&self) -> LimitMetrics {
        let (successes, drops, long_rtt) = {
            let adaptation = sync::lock(&self.adaptation);
            let long_rtt = match &adaptation.algorithm {
                Algorithm::Aimd(_) => None,
                Algorithm::Gradient2(gradient2) => Some(gradient2.long_rtt()),
            };
            (adaptation.successes, adaptation.drops, long_rtt)
        };
        let (waiting, queued) = {
            let waiters = sync::lock(&self.waiters);
            (waiters.len(), waiters.queued_total())
        };
        let word = self.state.load(Ordering::Relaxed);
        LimitMetrics {
            limit: limit_of(word),
            in_flight: in_flight_of(word),
            waiting,
            successes,
            drops,
            ignored: self.ignored.sum(),
            rejected: self.rejected.sum(),
            queued,
            long_rtt,
        }
    }

    /// A token if one is free now and nobody is waiting for one; never blocks.
    ///
    /// ```
    /// use circuit::AdaptiveLimit;
    ///
    /// let limit = AdaptiveLimit::aimd().initial_limit(1).build()?;
    /// let token = limit.try_acquire().unwrap();
    /// assert!(limit.try_acquire().is_none());
    /// token.ignore();
    /// assert!(limit.try_acquire().is_some());
    /// # Ok::<(), circuit::BuildError>(())
    /// ```
    pub fn try_acquire(&self) -> Option<Token<'_, C>> {
        match self.try_admit() {
            Some(in_flight) => Some(Token::new(self, self.issue(in_flight))),
            None => {
                self.rejected.increment();
                None
            }
        }
    }

    /// Like [`try_acquire`](Self::try_acquire), with a token that owns a handle on the limiter (for
    /// `'static` tasks).
    pub fn try_acquire_owned(self: &std::sync::Arc<Self>) -> Option<OwnedToken<C>> {
        match self.try_admit() {
            Some(in_flight) => Some(OwnedToken::new(
                std::sync::Arc::clone(self),
                self.issue(in_flight),
            )),
            None => {
                self.rejected.increment();
                None
            }
        }
    }

    /// A token, blocking the thread until one is free; waiting threads and tasks are served in arrival order.
    ///
    /// ```
    /// use circuit::AdaptiveLimit;
    /// use std::time::Duration;
    ///
    /// let limit = AdaptiveLimit::aimd().build()?;
    /// let token = limit.acquire();
    /// token.success(Duration::from_millis(3));
    /// # Ok::<(), circuit::BuildError>(())
    /// ```
    pub fn acquire(&self) -> Token<'_, C> {
        let in_flight = self.admit_blocking();
        Token::new(self, self.issue(in_flight))
    }

    /// Like [`acquire`](Self::acquire), with a token that owns a handle on the limiter.
    pub fn acquire_owned(self: &std::sync::Arc<Self>) -> OwnedToken<C> {
        let in_flight = self.admit_blocking();
        OwnedToken::new(std::sync::Arc::clone(self), self.issue(in_flight))
    }

    /// A future that resolves to a token once one is free; waiters are served in arrival order (the order of
    /// their first poll). Dropping the future gives up its place, and passes on a token it had already been
    /// handed. Needs no particular runtime.
    ///
    /// ```
    /// # async fn example() -> Result<(), circuit::BuildError> {
    /// use circuit::AdaptiveLimit;
    /// use std::time::Duration;
    ///
    /// let limit = AdaptiveLimit::gradient2().build()?;
    /// let token = limit.acquire_async().await;
    /// token.success(Duration::from_millis(8));
    /// # Ok(())
    /// # }
    /// ```
    pub fn acquire_async(&self) -> Acquire<'_, C> {
        Acquire {
            limit: self,
            wait: WaitState::Start,
        }
    }

    /// Like [`acquire_async`](Self::acquire_async), with a future and token that own a handle on the limiter
    /// (for spawned tasks).
    pub fn acquire_owned_async(self: &std::sync::Arc<Self>) -> AcquireOwned<C> {
        AcquireOwned {
            limit: std::sync::Arc::clone(self),
            wait: WaitState::Start,
        }
    }

    /// The lock-free fast path: take a slot if one is free and nobody waits. Returns the in-flight count
    /// including the new token.
    #[inline]
    fn try_admit(&self) -> Option<u32> {
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            // A set waiters flag means earlier callers queue for the next free slot: do not barge past them.
            if has_waiters(current) || in_flight_of(current) >= limit_of(current) {
                return None;
            }
            // Acquire: pairs with the Release decrement in `release`, so whatever the previous holder of a
            // slot did before giving it back happens before this holder's request (semaphore semantics; the
            // protocol itself rests only on this word's modification order).
            match self.state.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(in_flight_of(current) + 1),
                Err(actual) => current = actual,
            }
        }
    }

    fn admit_blocking(&self) -> u32 {
        if let Some(in_flight) = self.try_admit() {
            return in_flight;
        }
        // Allocated only on this slow path, before the lock.
        let condvar = Arc::new(Condvar::new());
        let mut waiters = sync::lock(&self.waiters);
        let key = match self.register(&mut waiters, || Wake::Thread(Arc::clone(&condvar))) {
            Registered::Admitted(in_flight) => return in_flight,
            Registered::Queued(key) => key,
        };
        loop {
            // Checked under the lock before every wait: a grant made between two waits is never missed.
            if let Status::Granted(in_flight) = waiters.poll(key, None) {
                return in_flight;
            }
            waiters = sync::wait(&condvar, waiters);
        }
    }

    /// Under the waiters lock: takes a slot if none is free to others first (the queue is empty and the
    /// limit allows), or else sets the waiters flag and queues a new waiter woken by `make_wake()`.
    ///
    /// The lost-wakeup argument: the decision is a CAS on the state word, the same word a releasing token
    /// decrements with a CAS that requires the flag clear. The two are ordered in that word's modification
    /// order: if the release comes first this CAS sees the free slot and takes it; if this CAS comes first the
    /// release sees the flag, takes the lock (after this registration) and grants the slot to the queue.
    fn register(&self, waiters: &mut Waiters, make_wake: impl FnOnce() -> Wake) -> Registered {
        if waiters.is_empty() {
            let mut current = self.state.load(Ordering::Relaxed);
            loop {
                // The flag is set and cleared only under the waiters lock, and is set exactly while the queue
                // is non-empty.
                debug_assert!(
                    !has_waiters(current),
                    "waiters flag set with an empty queue"
                );
                let admit = in_flight_of(current) < limit_of(current);
                let new = if admit {
                    current + 1
                } else {
                    current | WAITERS
                };
                // Acquire: when it admits, as in `try_admit`. When it only sets the flag nothing is read
                // through it; the flag's effect comes from the modification order (see above).
                match self.state.compare_exchange_weak(
                    current,
                    new,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) if admit => return Registered::Admitted(in_flight_of(current) + 1),
                    Ok(_) => break,
                    Err(actual) => current = actual,
                }
            }
        }
        Registered::Queued(waiters.push(make_wake()))
    }

    /// Async admission, shared by [`Acquire`] and [`AcquireOwned`]. Returns the in-flight count at admission.
    fn poll_admit(&self, wait: &mut WaitState, cx: &mut Context<'_>) -> Poll<u32> {
        match *wait {
            WaitState::Start => {
                if let Some(in_flight) = self.try_admit() {
                    *wait = WaitState::Done;
                    return Poll::Ready(in_flight);
                }
                let mut waiters = sync::lock(&self.waiters);
                match self.register(&mut waiters, || Wake::Task(cx.waker().clone())) {
                    Registered::Admitted(in_flight) => {
                        *wait = WaitState::Done;
                        Poll::Ready(in_flight)
                    }
                    Registered::Queued(key) => {
                        *wait = WaitState::Waiting(key);
                        Poll::Pending
                    }
                }
            }
            WaitState::Waiting(key) => {
                let status = sync::lock(&self.waiters).poll(key, Some(cx.waker()));
                match status {
                    Status::Granted(in_flight) => {
                        *wait = WaitState::Done;
                        Poll::Ready(in_flight)
                    }
                    Status::Waiting => Poll::Pending,
                }
            }
            WaitState::Done => panic!("an acquire future was polled after it completed"),
        }
    }

    /// A waiting future was dropped: leave the queue, or pass on the slot it had been handed.
    fn cancel_wait(&self, key: usize) {
        let mut waiters = sync::lock(&self.waiters);
        match waiters.cancel(key) {
            Status::Granted(_) => {
                drop(waiters);
                self.release();
            }
            Status::Waiting => {
                if waiters.is_empty() {
                    self.state.fetch_and(!WAITERS, Ordering::Relaxed);
                }
            }
        }
    }

    /// What a token remembers of its admission.
    fn issue(&self, in_flight: u32) -> Issue {
        Issue {
            in_flight,
            // Relaxed: a heuristic; a stale count only makes one drop count more or less.
            cuts: self.cuts.load(Ordering::Relaxed),
            acquired_at: self.clock.now(),
        }
    }

    /// Ends a token: feeds its sample (if any) to the algorithm, then gives its slot back.
    fn complete(&self, sample: Option<Sample>, issue: &Issue) {
        match sample {
            Some(sample) => self.record(sample, issue),
            None => self.ignored.increment(),
        }
        self.release();
    }

    fn record(&self, sample: Sample, issue: &Issue) {
        let in_flight = issue.in_flight;
        let mut adaptation = sync::lock(&self.adaptation);
        match sample {
            Sample::Success(_) => adaptation.successes += 1,
            Sample::Dropped => adaptation.drops += 1,
        }
        let previous = adaptation.limit();
        let sent_before_cut = issue.cuts != self.cuts.load(Ordering::Relaxed);
        let limit = match &mut adaptation.algorithm {
            Algorithm::Aimd(aimd) => aimd.on_sample(sample, in_flight, sent_before_cut),
            Algorithm::Gradient2(gradient2) => {
                gradient2.on_sample(sample, in_flight, sent_before_cut)
            }
        };
        if limit == previous {
            return;
        }
        if limit < previous {
            // Written only here, under the adaptation lock.
            self.cuts
                .store(self.cuts.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        // Stored under the adaptation lock, so concurrent completions publish their limits in the order the
        // algorithm computed them.
        self.store_limit(limit);
        let algorithm = adaptation.name();
        drop(adaptation);
        tracing::debug!(algorithm, previous, limit, "adaptive limit changed");
    }

    /// Replaces the limit bits of the state word. Relaxed: the limit orders no other memory. A raised limit
    /// is handed to waiters by the `release` that follows in the same completion (same thread, same word, so
    /// that release sees it).
    fn store_limit(&self, limit: u32) {
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let new = (current & !LIMIT_MASK) | (u64::from(limit) << LIMIT_SHIFT);
            match self.state.compare_exchange_weak(
                current,
                new,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives one slot back: a lock-free decrement when nobody waits, else hand it to the waiters in order.
    fn release(&self) {
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            if has_waiters(current) {
                break;
            }
            debug_assert!(
                in_flight_of(current) > 0,
                "released more tokens than were acquired"
            );
            // Release: pairs with the Acquire of the next admission (`try_admit`, `register`, `grant`).
            match self.state.compare_exchange_weak(
                current,
                current - 1,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
        let mut waiters = sync::lock(&self.waiters);
        // Release: as above. Under the lock, so no waiter is granted between this and `grant` by anyone
        // else's decision that could skip the queue: the flag stops the fast path.
        self.state.fetch_sub(1, Ordering::Release);
        loop {
            let mut woken = WakeList::new();
            let finished = self.grant(&mut waiters, &mut woken);
            drop(waiters);
            // Woken outside the lock: a waker may run code that comes back to this limiter.
            woken.wake_all();
            if finished {
                return;
            }
            waiters = sync::lock(&self.waiters);
        }
    }

    /// Under the waiters lock: hands free slots to waiters in arrival order, collecting their wakers into
    /// `woken`. Returns `false` if it stopped only because `woken` is full. Clears the waiters flag when the
    /// queue empties.
    fn grant(&self, waiters: &mut Waiters, woken: &mut WakeList) -> bool {
        loop {
            if waiters.is_empty() {
                self.state.fetch_and(!WAITERS, Ordering::Relaxed);
                return true;
            }
            if woken.is_full() {
                return false;
            }
            let mut current = self.state.load(Ordering::Relaxed);
            let in_flight = loop {
                if in_flight_of(current) >= limit_of(current) {
                    return true;
                }
                // Acquire: as in `try_admit`; the waiter learns of the grant through the waiters lock.
                match self.state.compare_exchange_weak(
                    current,
                    current + 1,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break in_flight_of(current) + 1,
                    Err(actual) => current = actual,
                }
            };
            let wake = waiters
                .grant_first(in_flight)
                .expect("the queue is not empty");
            woken.push(wake);
        }
    }
}

/// The outcome of [`AdaptiveLimit::register`].
enum Registered {
    /// A slot was free and nobody waited: taken, with this in-flight count.
    Admitted(u32),
    /// Queued under this key.
    Queued(usize),
}

/// Wakers collected under the lock and woken after it, in batches of a fixed size so granting allocates
/// nothing.
struct WakeList {
    wakes: [Option<Wake>; WakeList::CAPACITY],
    len: usize,
}

impl WakeList {
    const CAPACITY: usize = 8;

    fn new() -> Self {
        Self {
            wakes: std::array::from_fn(|_| None),
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == Self::CAPACITY
    }

    fn push(&mut self, wake: Wake) {
        self.wakes[self.len] = Some(wake);
        self.len += 1;
    }

    fn wake_all(self) {
        for wake in self.wakes.into_iter().flatten() {
            wake.wake();
        }
    }
}

/// What a token remembers of its admission.
#[derive(Debug, Clone, Copy)]
struct Issue {
    /// Tokens out right after this one was issued, itself included.
    in_flight: u32,
    /// The limiter's cut count at issue.
    cuts: u64,
    /// The clock's reading at issue.
    acquired_at: Duration,
}

/// Where an acquire future is.
#[derive(Debug, Clone, Copy)]
enum WaitState {
    Start,
    Waiting(usize),
    Done,
}

/// Permission to send one request, from an [`AdaptiveLimit`]; give it a verdict when the request ends.
///
/// Dropping a token without a verdict is [`ignore`](Token::ignore).
#[must_use = "a token holds a slot until it is given a verdict or dropped"]
pub struct Token<'a, C: Clock = SystemClock> {
    limit: &'a AdaptiveLimit<C>,
    issue: Issue,
    done: bool,
}

impl<C: Clock> fmt::Debug for Token<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("in_flight", &self.issue.in_flight)
            .field("acquired_at", &self.issue.acquired_at)
            .finish_non_exhaustive()
    }
}

impl<'a, C: Clock> Token<'a, C> {
    fn new(limit: &'a AdaptiveLimit<C>, issue: Issue) -> Self {
        Self {
            limit,
            issue,
            done: false,
        }
    }

    /// The request succeeded after `latency`: a sample for the algorithm (AIMD counts it towards growth, or
    /// as a drop if slower than its timeout; Gradient2 uses it as the short-term RTT).
    pub fn success(mut self, latency: Duration) {
        self.finish(Some(Sample::Success(latency)));
    }

    /// [`success`](Self::success) with the latency measured by the limiter's clock since the token was
    /// issued.
    pub fn success_elapsed(self) {
        let latency = self.elapsed();
        self.success(latency);
    }

    /// The request was dropped: it timed out, was refused, or failed because the backend is overloaded.
    /// AIMD cuts the limit by its ratio; Gradient2 takes its lowest gradient.
    pub fn dropped(mut self) {
        self.finish(Some(Sample::Dropped));
    }

    /// The request says nothing about the backend's capacity (e.g. it failed validation): frees the slot
    /// without a sample.
    pub fn ignore(mut self) {
        self.finish(None);
    }

    /// Time since the token was issued, by the limiter's clock.
    pub fn elapsed(&self) -> Duration {
        self.limit
            .clock
            .now()
            .saturating_sub(self.issue.acquired_at)
    }

    fn finish(&mut self, sample: Option<Sample>) {
        self.done = true;
        self.limit.complete(sample, &self.issue);
    }
}

impl<C: Clock> Drop for Token<'_, C> {
    fn drop(&mut self) {
        if !self.done {
            self.finish(None);
        }
    }
}

/// A [`Token`] that owns a handle on its limiter, for `'static` tasks.
#[must_use = "a token holds a slot until it is given a verdict or dropped"]
pub struct OwnedToken<C: Clock = SystemClock> {
    limit: std::sync::Arc<AdaptiveLimit<C>>,
    issue: Issue,
    done: bool,
}

impl<C: Clock> fmt::Debug for OwnedToken<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedToken")
            .field("in_flight", &self.issue.in_flight)
            .field("acquired_at", &self.issue.acquired_at)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> OwnedToken<C> {
    fn new(limit: std::sync::Arc<AdaptiveLimit<C>>, issue: Issue) -> Self {
        Self {
            limit,
            issue,
            done: false,
        }
    }

    /// See [`Token::success`].
    pub fn success(mut self, latency: Duration) {
        self.finish(Some(Sample::Success(latency)));
    }

    /// See [`Token::success_elapsed`].
    pub fn success_elapsed(self) {
        let latency = self.elapsed();
        self.success(latency);
    }

    /// See [`Token::dropped`].
    pub fn dropped(mut self) {
        self.finish(Some(Sample::Dropped));
    }

    /// See [`Token::ignore`].
    pub fn ignore(mut self) {
        self.finish(None);
    }

    /// See [`Token::elapsed`].
    pub fn elapsed(&self) -> Duration {
        self.limit
            .clock
            .now()
            .saturating_sub(self.issue.acquired_at)
    }

    fn finish(&mut self, sample: Option<Sample>) {
        self.done = true;
        self.limit.complete(sample, &self.issue);
    }
}

impl<C: Clock> Drop for OwnedToken<C> {
    fn drop(&mut self) {
        if !self.done {
            self.finish(None);
        }
    }
}

/// The future returned by [`AdaptiveLimit::acquire_async`].
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a, C: Clock = SystemClock> {
    limit: &'a AdaptiveLimit<C>,
    wait: WaitState,
}

impl<C: Clock> fmt::Debug for Acquire<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl<'a, C: Clock> Future for Acquire<'a, C> {
    type Output = Token<'a, C>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let limit = this.limit;
        limit
            .poll_admit(&mut this.wait, cx)
            .map(|in_flight| Token::new(limit, limit.issue(in_flight)))
    }
}

impl<C: Clock> Drop for Acquire<'_, C> {
    fn drop(&mut self) {
        if let WaitState::Waiting(key) = self.wait {
            self.limit.cancel_wait(key);
        }
    }
}

/// The future returned by [`AdaptiveLimit::acquire_owned_async`].
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned<C: Clock = SystemClock> {
    limit: std::sync::Arc<AdaptiveLimit<C>>,
    wait: WaitState,
}

impl<C: Clock> fmt::Debug for AcquireOwned<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> Future for AcquireOwned<C> {
    type Output = OwnedToken<C>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.limit.poll_admit(&mut this.wait, cx).map(|in_flight| {
            let issue = this.limit.issue(in_flight);
            OwnedToken::new(std::sync::Arc::clone(&this.limit), issue)
        })
    }
}

impl<C: Clock> Drop for AcquireOwned<C> {
    fn drop(&mut self) {
        if let WaitState::Waiting(key) = self.wait {
            self.limit.cancel_wait(key);
        }
    }
}
