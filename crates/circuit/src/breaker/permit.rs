//! [`Permit`] and [`OwnedPermit`]: permission for one call, carrying the generation it was issued in.

use std::fmt;

use super::state::Word;
use super::{CircuitBreaker, State};
use crate::clock::{Clock, SystemClock};

/// `Ticket::started` when the call is not timed (no slow-call rule).
pub(super) const NOT_TIMED: u64 = u64::MAX;

/// A tag no state word has (its kind bits are 0xF): the permit has had its verdict.
pub(super) const SETTLED: u64 = u64::MAX;

/// What a permit remembers: the generation and state it was issued in, and when (if timed).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    pub(super) tag: u64,
    pub(super) started: u64,
}

/// A verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Success,
    Failure,
    Ignore,
}

impl<C: Clock> CircuitBreaker<C> {
    #[inline]
    fn settle(&self, ticket: &mut Ticket, outcome: Outcome) {
        let tag = std::mem::replace(&mut ticket.tag, SETTLED);
        match outcome {
            Outcome::Ignore => self.ignore(tag),
            Outcome::Success => self.finish(tag, ticket.started, false),
            Outcome::Failure => self.finish(tag, ticket.started, true),
        }
    }
}

/// Permission for one call; give the verdict with [`success`](Permit::success) or
/// [`failure`](Permit::failure). Dropped without a verdict, the call counts as ignored.
///
/// A verdict for a permit issued before the breaker last changed state (say, a slow call that was admitted
/// while closed and ends after the breaker opened) counts in the lifetime [`Metrics`](super::Metrics) only:
/// not in the window of a later closed period, nor as a half-open probe. resilience4j records such a late
/// outcome into whatever state is current; here a probe verdict always belongs to a probe.
#[must_use = "a permit dropped without a verdict counts as an ignored call"]
pub struct Permit<'a, C = SystemClock> {
    breaker: &'a CircuitBreaker<C>,
    ticket: Ticket,
}

impl<C> fmt::Debug for Permit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_permit(f, "Permit", &self.ticket)
    }
}

fn ticket_state(ticket: &Ticket) -> State {
    // A permit that had its verdict is consumed, so the tag is a real one here.
    Word(ticket.tag).kind().state()
}

fn debug_permit(f: &mut fmt::Formatter<'_>, name: &str, ticket: &Ticket) -> fmt::Result {
    let mut debug = f.debug_struct(name);
    if ticket.tag != SETTLED {
        let word = Word(ticket.tag);
        debug
            .field("generation", &word.generation())
            .field("state", &word.kind().state());
    }
    debug.finish_non_exhaustive()
}

impl<C> Permit<'_, C> {
    /// The state that admitted the call: [`HalfOpen`](State::HalfOpen) for a probe, else
    /// [`Closed`](State::Closed), [`ForcedClosed`](State::ForcedClosed) or [`Disabled`](State::Disabled).
    pub fn state(&self) -> State {
        ticket_state(&self.ticket)
    }
}

impl<'a, C: Clock> Permit<'a, C> {
    pub(super) fn new(breaker: &'a CircuitBreaker<C>, ticket: Ticket) -> Self {
        Self { breaker, ticket }
    }

    /// The call succeeded.
    #[inline]
    pub fn success(mut self) {
        self.breaker.settle(&mut self.ticket, Outcome::Success);
    }

    /// The call failed.
    #[inline]
    pub fn failure(mut self) {
        self.breaker.settle(&mut self.ticket, Outcome::Failure);
    }

    /// The call's outcome says nothing about the service (e.g. cancelled): not recorded, except in the
    /// lifetime `ignored` count; a half-open probe gives its slot back.
    #[inline]
    pub fn ignore(mut self) {
        self.breaker.settle(&mut self.ticket, Outcome::Ignore);
    }
}

impl<C> Drop for Permit<'_, C> {
    #[inline]
    fn drop(&mut self) {
        if self.ticket.tag != SETTLED {
            drop_unsettled(self.breaker, &mut self.ticket);
        }
    }
}

/// A permit dropped without a verdict is ignored. (Ignoring needs no clock, which `Drop` could not ask for:
/// the permit types do not bound `C`.)
fn drop_unsettled<C>(breaker: &CircuitBreaker<C>, ticket: &mut Ticket) {
    let tag = std::mem::replace(&mut ticket.tag, SETTLED);
    breaker.ignore(tag);
}

/// A [`Permit`] that holds an `Arc` of its breaker, for futures and services that must be `'static`.
///
/// ```
/// use circuit::CircuitBreaker;
/// use std::sync::Arc;
///
/// let breaker = Arc::new(CircuitBreaker::new());
/// let permit = breaker.try_acquire_owned()?;
/// std::thread::spawn(move || permit.success()).join().unwrap();
/// assert_eq!(breaker.metrics().successes, 1);
/// # Ok::<(), circuit::Rejected>(())
/// ```
#[must_use = "a permit dropped without a verdict counts as an ignored call"]
pub struct OwnedPermit<C = SystemClock> {
    /// `std`'s `Arc`, also under loom: see [`CircuitBreaker::try_acquire_owned`].
    breaker: std::sync::Arc<CircuitBreaker<C>>,
    ticket: Ticket,
}

impl<C> fmt::Debug for OwnedPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_permit(f, "OwnedPermit", &self.ticket)
    }
}

impl<C> OwnedPermit<C> {
    /// The state that admitted the call (see [`Permit::state`]).
    pub fn state(&self) -> State {
        ticket_state(&self.ticket)
    }
}

impl<C: Clock> OwnedPermit<C> {
    pub(super) fn new(breaker: std::sync::Arc<CircuitBreaker<C>>, ticket: Ticket) -> Self {
        Self { breaker, ticket }
    }

    /// The call succeeded.
    #[inline]
    pub fn success(mut self) {
        self.breaker.settle(&mut self.ticket, Outcome::Success);
    }

    /// The call failed.
    #[inline]
    pub fn failure(mut self) {
        self.breaker.settle(&mut self.ticket, Outcome::Failure);
    }

    /// The call's outcome says nothing about the service: not recorded, except in the lifetime `ignored`
    /// count; a half-open probe gives its slot back.
    #[inline]
    pub fn ignore(mut self) {
        self.breaker.settle(&mut self.ticket, Outcome::Ignore);
    }
}

impl<C> Drop for OwnedPermit<C> {
    #[inline]
    fn drop(&mut self) {
        if self.ticket.tag != SETTLED {
            drop_unsettled(&self.breaker, &mut self.ticket);
        }
    }
}
