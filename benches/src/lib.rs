//! What the benchmark files share: running one operation on several threads at once and turning the
//! threads' times into the one figure criterion records (`iter_custom`).
//!
//! Workload-specific helpers live in each bench file.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// The thread counts a multi-thread group runs: 1 and 2, capped by `available_parallelism()`.
pub fn thread_counts() -> Vec<usize> {
    let available = thread::available_parallelism().map_or(1, usize::from);
    [1, 2].into_iter().filter(|&n| n <= available).collect()
}

/// How the per-thread times of one multi-thread sample become the figure criterion records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// The mean of the threads' times: the time per operation on one thread.
    Mean,
    /// The slowest thread's time: what one thread pays while the others do the same.
    Slowest,
}

/// Runs `op` `iters` times on each of `threads` threads and returns their time, combined by `combine`.
///
/// With more than one thread, each thread runs `op` once untimed (to warm its own side of the structure,
/// such as a thread cache), then all start together behind a barrier and time their own loop. One thread
/// runs on the caller's thread with no warm-up call.
pub fn time_on_threads(
    threads: usize,
    iters: u64,
    combine: Combine,
    op: impl Fn() + Sync,
) -> Duration {
    let timed = || {
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        start.elapsed()
    };
    if threads <= 1 {
        return timed();
    }
    let barrier = Barrier::new(threads);
    let times: Vec<Duration> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    op();
                    barrier.wait();
                    timed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("benchmark thread panicked"))
            .collect()
    });
    match combine {
        Combine::Mean => times.iter().sum::<Duration>() / threads as u32,
        Combine::Slowest => times.into_iter().max().unwrap_or_default(),
    }
}
