//! Time sources: [`Clock`], the real [`SystemClock`] and the [`ManualClock`] that tests move by hand.
//!
//! Every type that looks at time (breaker, retry, adaptive limit) takes its clock as a type parameter, so a
//! test can drive open waits, sliding windows and latencies deterministically, and the real clock is a direct,
//! inlined call.

use std::fmt;
use std::time::Duration;

use crate::sync::{Arc, AtomicU64, Ordering};

/// A monotonic time source.
///
/// `now` is the precise reading used to time calls; `coarse_now` may lag it by up to the clock's resolution
/// (never lead it) and is what hot paths use when a few milliseconds do not matter, such as checking whether
/// an open breaker's wait is over. Both count from the same origin.
///
/// ```
/// use circuit::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now(), Duration::from_millis(250));
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Time since this clock's origin. Never goes backwards.
    fn now(&self) -> Duration;

    /// Like [`now`](Clock::now), possibly cheaper and up to the clock's resolution behind it.
    #[inline]
    fn coarse_now(&self) -> Duration {
        self.now()
    }
}

/// The operating system's monotonic clock.
///
/// On Linux `now` reads `CLOCK_MONOTONIC` (what [`std::time::Instant`] reads) and `coarse_now` reads
/// `CLOCK_MONOTONIC_COARSE`, which the kernel keeps at tick resolution (1–4 ms) and costs a few nanoseconds
/// instead of tens: it is what lets an open breaker reject a call in under 10 ns on one thread. Elsewhere both read
/// [`std::time::Instant`].
#[derive(Clone, Copy)]
pub struct SystemClock {
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    origin: std::time::Instant,
}

impl SystemClock {
    /// The system clock.
    pub fn new() -> Self {
        Self {
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SystemClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemClock").finish_non_exhaustive()
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
fn read_clock(clock: libc::clockid_t) -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable `timespec`, and both clock ids used here exist on every Linux
    // kernel Rust supports (2.6.32+), so the call cannot fail or write anywhere else.
    let result = unsafe { libc::clock_gettime(clock, &mut time) };
    debug_assert_eq!(result, 0, "clock_gettime({clock}) failed");
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Duration {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            read_clock(libc::CLOCK_MONOTONIC)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            self.origin.elapsed()
        }
    }

    #[inline]
    fn coarse_now(&self) -> Duration {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            read_clock(libc::CLOCK_MONOTONIC_COARSE)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            self.origin.elapsed()
        }
    }
}

/// A clock that only moves when told to, for deterministic tests. Clones share one time.
///
/// ```
/// use circuit::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let handle = clock.clone();
/// handle.advance(Duration::from_secs(1));
/// assert_eq!(clock.now(), Duration::from_secs(1));
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        // Relaxed: the time orders no other memory; a test thread that advances and then acts sees its own
        // write, and cross-thread tests synchronise through the structure under test.
        self.nanos
            .fetch_add(duration_to_nanos(by), Ordering::Relaxed);
    }

    /// Sets the clock to `to`.
    ///
    /// # Panics
    ///
    /// If `to` is earlier than the current time: a monotonic clock never goes backwards.
    pub fn set(&self, to: Duration) {
        let to = duration_to_nanos(to);
        let previous = self.nanos.swap(to, Ordering::Relaxed);
        assert!(
            previous <= to,
            "ManualClock::set would move time backwards ({previous} ns -> {to} ns)"
        );
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

/// `duration` in nanoseconds, saturating at `u64::MAX` (584 years).
#[inline]
pub(crate) fn duration_to_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
