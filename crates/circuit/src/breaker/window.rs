//! The sliding windows the rate thresholds look at: the last `n` calls, or the calls of the last `span`.
//!
//! Both are lock-free and are only touched when a rate rule is set. See the breaker's module docs for what
//! each may miscount under races.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU32, AtomicU64, Ordering, spin_loop};

/// The largest count window, and the largest number of time buckets: a failure in a count window counts the
/// failures with one popcount per 64 calls, so the window is kept to at most 1,024 words.
pub(crate) const MAX_WINDOW: u32 = 1 << 16;

/// What a window holds at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

/// A window of either kind.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    /// Records one call, made (for a time window) at `now_nanos`, and returns the window's counts after it when
    /// the call failed or was slow (`None` otherwise: a fast success cannot raise a rate, so no one asks).
    #[inline]
    pub(crate) fn record(&self, now_nanos: u64, failed: bool, slow: bool) -> Option<Counts> {
        match self {
            Window::Count(window) => window.record(failed, slow),
            Window::Time(window) => window.record(now_nanos, failed, slow),
        }
    }

    /// The counts at `now_nanos`.
    pub(crate) fn counts(&self, now_nanos: u64) -> Counts {
        match self {
            Window::Count(window) => window.counts(),
            Window::Time(window) => window.counts(now_nanos),
        }
    }

    /// Empties the window. Called under the transition lock, before the state word that starts the new
    /// generation is published with Release.
    pub(crate) fn clear(&self) {
        match self {
            Window::Count(window) => window.clear(),
            Window::Time(window) => window.clear(),
        }
    }
}

/// `dividend % divisor` by multiplication (Lemire, Kaser and Kurz, "Faster Remainder by Direct Computation",
/// 2019): a 64-bit division costs tens of cycles on the hot path, this costs three multiplications.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastMod {
    divisor: u64,
    /// `ceil(2^128 / divisor)`, wrapping to 0 for a divisor of 1 (whose remainder is always 0).
    multiplier: u128,
}

impl FastMod {
    pub(crate) fn new(divisor: u32) -> Self {
        assert!(divisor > 0, "FastMod divisor is zero");
        Self {
            divisor: u64::from(divisor),
            multiplier: (u128::MAX / u128::from(divisor)).wrapping_add(1),
        }
    }

    /// `dividend % divisor`. Exact for every 64-bit dividend and 32-bit divisor: the method needs
    /// 64 + 32 ≤ 128 bits of fraction.
    #[inline]
    pub(crate) fn rem(self, dividend: u64) -> u64 {
        let fraction = self.multiplier.wrapping_mul(u128::from(dividend));
        // The high 128 bits of `fraction * divisor`, of which the result is the low 64.
        let low = ((fraction as u64 as u128) * u128::from(self.divisor)) >> 64;
        let high = (fraction >> 64) * u128::from(self.divisor);
        ((high + low) >> 64) as u64
    }
}

/// The last `size` calls: slot `seq % size` of two bitmaps (failed, slow), `seq` taken from one counter.
#[derive(Debug)]
pub(crate) struct CountWindow {
    size: u32,
    slot: FastMod,
    /// Calls recorded since the window was cleared; the next call's sequence number.
    seq: CachePadded<AtomicU64>,
    failures: Box<[AtomicU64]>,
    /// Empty when no slow-call rule is set.
    slow: Box<[AtomicU64]>,
}

impl CountWindow {
    pub(crate) fn new(size: u32, track_slow: bool) -> Self {
        let words = size.div_ceil(64) as usize;
        let bitmap = |len: usize| (0..len).map(|_| AtomicU64::new(0)).collect::<Box<[_]>>();
        Self {
            size,
            slot: FastMod::new(size),
            seq: CachePadded::new(AtomicU64::new(0)),
            failures: bitmap(words),
            slow: bitmap(if track_slow { words } else { 0 }),
        }
    }

    #[inline]
    fn record(&self, failed: bool, slow: bool) -> Option<Counts> {
        // Relaxed: the sequence only hands out slots; what a slot holds is read with a popcount that needs no
        // order with the write of any one bit.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let slot = self.slot.rem(seq) as usize;
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        set_bit(&self.failures[word], bit, failed);
        if let Some(slow_word) = self.slow.get(word) {
            set_bit(slow_word, bit, slow);
        }
        if !(failed || slow) {
            return None;
        }
        // The calls are read again after this call's bits are written, not taken from this call's own
        // sequence number: of two failures racing to fill the window, the later reader then counts both
        // calls, where each counting only up to itself could leave both below `minimum_calls`.
        let calls = self.seq.load(Ordering::Relaxed).max(seq + 1);
        Some(Counts {
            calls: calls.min(u64::from(self.size)) as u32,
            failures: popcount(&self.failures),
            slow: popcount(&self.slow),
        })
    }

    fn counts(&self) -> Counts {
        Counts {
            calls: self.seq.load(Ordering::Relaxed).min(u64::from(self.size)) as u32,
            failures: popcount(&self.failures),
            slow: popcount(&self.slow),
        }
    }

    fn clear(&self) {
        // Relaxed: the Release store of the new state word publishes these to the new generation's permits.
        self.seq.store(0, Ordering::Relaxed);
        for word in self.failures.iter().chain(self.slow.iter()) {
            word.store(0, Ordering::Relaxed);
        }
    }
}

/// Sets or clears `bit` in `word`, writing only if it changes: on the healthy path (a success over a slot
/// whose last call also succeeded) this is one load, and the line stays shared between cores.
#[inline]
fn set_bit(word: &AtomicU64, bit: u64, set: bool) {
    // Relaxed throughout: each bit is a count, read only by popcounts that order nothing.
    let current = word.load(Ordering::Relaxed);
    if (current & bit != 0) != set {
        if set {
            word.fetch_or(bit, Ordering::Relaxed);
        } else {
            word.fetch_and(!bit, Ordering::Relaxed);
        }
    }
}

fn popcount(words: &[AtomicU64]) -> u32 {
    words
        .iter()
        .map(|word| word.load(Ordering::Relaxed).count_ones())
        .sum()
}

/// A tag no bucket period has: the bucket is being emptied for a new period.
const RESETTING: u64 = u64::MAX;

/// One step of a time window: the calls of the period `tag - 1` (`tag` 0: never used).
#[derive(Debug)]
struct Bucket {
    tag: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

impl Bucket {
    #[inline]
    fn add(&self, failed: bool, slow: bool) {
        // Relaxed: counts, summed by `counts`, which orders nothing by them.
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            self.slow.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The calls of the last `buckets` periods of `bucket_nanos` (the current, partly elapsed one included).
#[derive(Debug)]
pub(crate) struct TimeWindow {
    bucket_nanos: u64,
    bucket_of_period: FastMod,
    buckets: Box<[Bucket]>,
}

impl TimeWindow {
    pub(crate) fn new(bucket_nanos: u64, buckets: u32) -> Self {
        Self {
            bucket_nanos,
            bucket_of_period: FastMod::new(buckets),
            buckets: (0..buckets)
                .map(|_| Bucket {
                    tag: AtomicU64::new(0),
                    calls: AtomicU32::new(0),
                    failures: AtomicU32::new(0),
                    slow: AtomicU32::new(0),
                })
                .collect(),
        }
    }

    #[inline]
    fn record(&self, now_nanos: u64, failed: bool, slow: bool) -> Option<Counts> {
        let period = now_nanos / self.bucket_nanos;
        let bucket = &self.buckets[self.bucket_of_period.rem(period) as usize];
        let tag = period + 1;
        loop {
            // Acquire: pairs with the Release store of the tag below, so the counts were zeroed before this
            // thread adds to them (a count added before the zeroing would be lost).
            let current = bucket.tag.load(Ordering::Acquire);
            if current == RESETTING {
                spin_loop();
                continue;
            }
            if current < tag {
                // The bucket still holds an older period: empty it once. Relaxed on success: the zeroing
                // below is published by the Release store of the tag; Relaxed on failure: the loop reloads
                // with Acquire.
                if bucket
                    .tag
                    .compare_exchange(current, RESETTING, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                bucket.calls.store(0, Ordering::Relaxed);
                bucket.failures.store(0, Ordering::Relaxed);
                bucket.slow.store(0, Ordering::Relaxed);
                // Release: pairs with the Acquire loads of the tag here and in `counts`.
                bucket.tag.store(tag, Ordering::Release);
            }
            // `current >= tag`: this period, or (when this thread read the clock before another thread that
            // already moved the bucket on) a later one, where the call is counted as a recent call.
            bucket.add(failed, slow);
            break;
        }
        if failed || slow {
            Some(self.counts(now_nanos))
        } else {
            None
        }
    }

    fn counts(&self, now_nanos: u64) -> Counts {
        let period = now_nanos / self.bucket_nanos;
        let periods = self.buckets.len() as u64;
        let mut counts = Counts::default();
        for bucket in self.buckets.iter() {
            // Acquire: pairs with the Release store of the tag in `record`, so the counts read below are the
            // new period's (zeroed, then added to), not the old one's.
            let tag = bucket.tag.load(Ordering::Acquire);
            // In the window: a period among the last `periods` (or later than `period`, recorded by a thread
            // whose clock reading is newer than this one's).
            if tag == 0 || tag == RESETTING || tag - 1 + periods <= period {
                continue;
            }
            counts.calls = counts
                .calls
                .saturating_add(bucket.calls.load(Ordering::Relaxed));
            counts.failures = counts
                .failures
                .saturating_add(bucket.failures.load(Ordering::Relaxed));
            counts.slow = counts
                .slow
                .saturating_add(bucket.slow.load(Ordering::Relaxed));
        }
        counts
    }

    fn clear(&self) {
        for bucket in self.buckets.iter() {
            // Relaxed: published by the Release store of the new state word (see `Window::clear`).
            bucket.tag.store(0, Ordering::Relaxed);
            bucket.calls.store(0, Ordering::Relaxed);
            bucket.failures.store(0, Ordering::Relaxed);
            bucket.slow.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FastMod;

    #[test]
    fn fast_mod_matches_the_remainder_operator() {
        let divisors = [
            1u32,
            2,
            3,
            7,
            10,
            64,
            100,
            1000,
            4095,
            65_536,
            u32::MAX - 1,
            u32::MAX,
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        let rounds = if cfg!(miri) { 20 } else { 20_000 };
        for divisor in divisors {
            let fast = FastMod::new(divisor);
            let edges = [
                0,
                1,
                u64::from(divisor) - 1,
                u64::from(divisor),
                u64::MAX - 1,
                u64::MAX,
            ];
            for dividend in edges.into_iter().chain((0..rounds).map(|_| rng.u64(..))) {
                assert_eq!(
                    fast.rem(dividend),
                    dividend % u64::from(divisor),
                    "{dividend} % {divisor}"
                );
            }
        }
    }
}
