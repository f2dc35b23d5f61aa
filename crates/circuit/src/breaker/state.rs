//! The breaker's state word: one `u64` holding the generation, the state and the half-open probe counts.
//!
//! ```text
//!  63            40 39  36 35         24 23          12 11           0
//! +----------------+------+-------------+--------------+--------------+
//! |  generation    | kind | probes out  | probe succ.  | probe fail.  |
//! |   (24 bits)    | (4)  |   (12)      |    (12)      |    (12)      |
//! +----------------+------+-------------+--------------+--------------+
//! ```
//!
//! The generation changes on every transition (under the transition lock), so a permit remembers the
//! generation it was issued in and a verdict can tell whether the breaker has moved on since. The three probe
//! fields are only non-zero in half-open, where they change by compare-and-swap on the whole word; in every
//! other state the word changes only at transitions.

use super::State;

/// Bits per probe field; [`MAX_PROBES`] is the largest `half_open_permits` that fits.
const FIELD_BITS: u32 = 12;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
const FAILURES_SHIFT: u32 = 0;
const SUCCESSES_SHIFT: u32 = FIELD_BITS;
const ISSUED_SHIFT: u32 = 2 * FIELD_BITS;
const KIND_SHIFT: u32 = 3 * FIELD_BITS;
const KIND_MASK: u64 = 0xF;
const GENERATION_SHIFT: u32 = KIND_SHIFT + 4;
const GENERATION_MASK: u64 = (1 << (64 - GENERATION_SHIFT)) - 1;

/// The largest number of half-open probes the word can count.
pub(crate) const MAX_PROBES: u32 = FIELD_MASK as u32;

/// One issued probe, one probe success, one probe failure: the amounts a half-open CAS adds.
pub(crate) const ONE_ISSUED: u64 = 1 << ISSUED_SHIFT;
pub(crate) const ONE_SUCCESS: u64 = 1 << SUCCESSES_SHIFT;
pub(crate) const ONE_FAILURE: u64 = 1 << FAILURES_SHIFT;

/// The part of a word that names a generation and state, without the probe counts: what a permit keeps.
pub(crate) const TAG_MASK: u64 = !((1 << KIND_SHIFT) - 1);

/// The state as stored in the word. `Closed` and `ForcedClosed` are the only kinds with the low two bits
/// clear (see [`Word::admits_freely`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
    ForcedOpen = 3,
    ForcedClosed = 4,
    Disabled = 5,
}

impl Kind {
    pub(crate) fn state(self) -> State {
        match self {
            Kind::Closed => State::Closed,
            Kind::Open => State::Open,
            Kind::HalfOpen => State::HalfOpen,
            Kind::ForcedOpen => State::ForcedOpen,
            Kind::ForcedClosed => State::ForcedClosed,
            Kind::Disabled => State::Disabled,
        }
    }
}

/// A decoded view of a state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    /// Generation 0, closed, no probes: the word of a new breaker.
    pub(crate) const INITIAL: Word = Word(0);

    /// The word that follows `self` in a transition to `kind`: next generation, probe counts zero.
    #[inline]
    pub(crate) fn next(self, kind: Kind) -> Word {
        let generation = (self.generation() + 1) & GENERATION_MASK;
        Word((generation << GENERATION_SHIFT) | ((kind as u64) << KIND_SHIFT))
    }

    #[inline]
    pub(crate) fn generation(self) -> u64 {
        self.0 >> GENERATION_SHIFT
    }

    /// Whether the state admits every call without counting it (closed or forced closed): the test on the
    /// hot path, one mask. The kinds are numbered so that these two, and only these, have the low two bits
    /// clear.
    #[inline]
    pub(crate) fn admits_freely(self) -> bool {
        (self.0 >> KIND_SHIFT) & 0b11 == 0
    }

    /// Whether the state is `kind`, without decoding the other kinds.
    #[inline]
    pub(crate) fn is(self, kind: Kind) -> bool {
        (self.0 >> KIND_SHIFT) & KIND_MASK == kind as u64
    }

    #[inline]
    pub(crate) fn kind(self) -> Kind {
        match (self.0 >> KIND_SHIFT) & KIND_MASK {
            0 => Kind::Closed,
            1 => Kind::Open,
            2 => Kind::HalfOpen,
            3 => Kind::ForcedOpen,
            4 => Kind::ForcedClosed,
            5 => Kind::Disabled,
            other => unreachable!("state word holds kind {other}, which no transition writes"),
        }
    }

    /// Generation and kind, without the probe counts.
    #[inline]
    pub(crate) fn tag(self) -> u64 {
        self.0 & TAG_MASK
    }

    /// Probes handed out and not given back (an ignored probe gives its slot back).
    #[inline]
    pub(crate) fn issued(self) -> u32 {
        ((self.0 >> ISSUED_SHIFT) & FIELD_MASK) as u32
    }

    #[inline]
    pub(crate) fn probe_successes(self) -> u32 {
        ((self.0 >> SUCCESSES_SHIFT) & FIELD_MASK) as u32
    }

    #[inline]
    pub(crate) fn probe_failures(self) -> u32 {
        ((self.0 >> FAILURES_SHIFT) & FIELD_MASK) as u32
    }
}

/// What the half-open probe counts say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Enough probes succeeded: close.
    Close,
    /// So many probes failed that `successes_to_close` can no longer be reached: re-open.
    Reopen,
    /// Neither yet.
    Pending,
}

/// Decides half-open from its counts: close at `successes_to_close` successes, re-open once failures exceed
/// `permits - successes_to_close` (closing has become impossible, since at most `permits` probes are decided).
#[inline]
pub(crate) fn probe_verdict(word: Word, permits: u32, successes_to_close: u32) -> Verdict {
    if word.probe_successes() >= successes_to_close {
        Verdict::Close
    } else if word.probe_failures() > permits - successes_to_close {
        Verdict::Reopen
    } else {
        Verdict::Pending
    }
}
