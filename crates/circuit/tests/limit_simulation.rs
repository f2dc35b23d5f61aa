//! The adaptive limit against a simulated server whose capacity drops from 100 to 20 concurrent requests.
//!
//! A discrete-event simulation on a [`ManualClock`]: nothing sleeps, every run is the same. The server works on
//! up to `capacity` requests at once, each for a base service time of 10 ms (± a deterministic jitter of up to
//! 1 ms); requests beyond that wait in a FIFO queue, so their latency grows with the queue; a request that
//! finds the queue full is refused at once (`Token::dropped`). Clients are unlimited and always trying: after
//! every event they take tokens with `try_acquire` until it refuses, and send a request for each. After the
//! first phase the capacity drops to 20 (requests in service finish; no new one starts until fewer than 20
//! are in service).
//!
//! Each run prints, per phase, when the limit settled (the start of the first 10 ms window from which every
//! window's time-weighted mean limit stays within ±10% of the capacity until the end of the phase), how many
//! requests had completed by then, and the mean limit over the last half of the phase. Run with
//! `cargo test -p circuit --test limit_simulation -- --nocapture` to see them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use circuit::{AdaptiveLimit, Clock, ManualClock, Token};

const BASE_LATENCY: Duration = Duration::from_millis(10);
const WINDOW: Duration = Duration::from_millis(10);

/// The simulated server's settings for one run.
#[derive(Clone, Copy, Debug)]
struct Server {
    /// Capacity in the first phase, then in the second.
    capacities: [u32; 2],
    /// The queue holds at most `capacity × queue_factor` waiting requests (at least 1).
    queue_factor: f64,
    /// Length of each phase.
    phase: Duration,
}

#[derive(Debug)]
struct PhaseReport {
    capacity: u32,
    /// Time from the start of the phase until the limit settled, and requests completed (any verdict) by then.
    settled: Option<(Duration, u64)>,
    /// Time-weighted mean limit over the second half of the phase.
    tail_mean: f64,
    /// Lowest and highest 100 ms window mean in the second half.
    tail_range: (f64, f64),
    drops: u64,
    completed: u64,
}

struct Request<'a> {
    token: Token<'a, ManualClock>,
    sent_at: Duration,
}

/// Deterministic service time: the base ± up to 1 ms, from a small LCG so runs are repeatable.
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> Duration {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let micros = (self.0 >> 33) % 2001; // 0..=2000
        BASE_LATENCY + Duration::from_micros(micros) - Duration::from_millis(1)
    }
}

fn simulate(
    name: &str,
    limit: &AdaptiveLimit<ManualClock>,
    clock: &ManualClock,
    server: Server,
) -> [PhaseReport; 2] {
    let mut jitter = Jitter(0x5eed);
    // Requests in service, by completion time; `slots[id]` holds the request.
    let mut in_service: BinaryHeap<Reverse<(Duration, usize)>> = BinaryHeap::new();
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut slots: Vec<Option<Request<'_>>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();

    let mut reports = Vec::new();
    let start = clock.now();
    for (phase_index, &capacity) in server.capacities.iter().enumerate() {
        let phase_start = start + server.phase * phase_index as u32;
        let phase_end = phase_start + server.phase;
        let queue_bound = ((f64::from(capacity) * server.queue_factor).round() as usize).max(1);
        let mut windows: Vec<f64> = Vec::new();
        let mut completed_at_window: Vec<u64> = Vec::new();
        let mut window_area = 0.0;
        let mut window_start = phase_start;
        let mut last = phase_start;
        let mut completed = 0_u64;
        let mut drops = 0_u64;

        loop {
            // Admit: clients always have a request ready. A refused request gives its slot back at once, so
            // a limit that never falls would admit forever: bound the round.
            let mut admitted_now = 0_u32;
            while let Some(token) = limit.try_acquire() {
                admitted_now += 1;
                assert!(
                    admitted_now <= 100_000,
                    "{name}: the limit ({}) keeps admitting requests the server refuses",
                    limit.limit()
                );
                let id = free.pop().unwrap_or_else(|| {
                    slots.push(None);
                    slots.len() - 1
                });
                let now = clock.now();
                if in_service.len() < capacity as usize {
                    in_service.push(Reverse((now + jitter.next(), id)));
                    slots[id] = Some(Request {
                        token,
                        sent_at: now,
                    });
                } else if queue.len() < queue_bound {
                    queue.push_back(id);
                    slots[id] = Some(Request {
                        token,
                        sent_at: now,
                    });
                } else {
                    free.push(id);
                    token.dropped();
                    drops += 1;
                    completed += 1;
                }
            }
            let Some(&Reverse((next, _))) = in_service.peek() else {
                panic!(
                    "{name}: nothing in service and no token granted (limit {})",
                    limit.limit()
                );
            };
            let next = next.min(phase_end);
            // Account the limit held over [last, next), split at window boundaries.
            let current = f64::from(limit.limit());
            let mut from = last;
            while from < next {
                let until = next.min(window_start + WINDOW);
                window_area += current * (until - from).as_secs_f64();
                from = until;
                if until == window_start + WINDOW {
                    windows.push(window_area / WINDOW.as_secs_f64());
                    completed_at_window.push(completed);
                    window_area = 0.0;
                    window_start += WINDOW;
                }
            }
            last = next;
            clock.set(next);
            if next == phase_end {
                break;
            }
            // Complete everything due now, then start queued requests on the freed servers.
            while let Some(&Reverse((due, id))) = in_service.peek() {
                if due > next {
                    break;
                }
                in_service.pop();
                let request = slots[id].take().expect("a request in service");
                request.token.success(next - request.sent_at);
                free.push(id);
                completed += 1;
            }
            while in_service.len() < capacity as usize {
                let Some(id) = queue.pop_front() else { break };
                in_service.push(Reverse((next + jitter.next(), id)));
            }
        }

        let settled_index = (0..windows.len())
            .rev()
            .take_while(|&i| (windows[i] - f64::from(capacity)).abs() <= f64::from(capacity) * 0.1)
            .last();
        let settled = settled_index.map(|i| {
            let requests = if i == 0 {
                0
            } else {
                completed_at_window[i - 1]
            };
            (WINDOW * i as u32, requests)
        });
        let tail = &windows[windows.len() / 2..];
        let tail_mean = tail.iter().sum::<f64>() / tail.len() as f64;
        let tail_range = tail.iter().fold((f64::MAX, f64::MIN), |(low, high), &w| {
            (low.min(w), high.max(w))
        });
        let report = PhaseReport {
            capacity,
            settled,
            tail_mean,
            tail_range,
            drops,
            completed,
        };
        println!(
            "{name}: capacity {capacity}: settled {} ; mean limit over the last half {:.1} (windows {:.1}..{:.1}); \
             {} requests, {} dropped",
            match report.settled {
                Some((time, requests)) => format!("after {time:?} ({requests} requests)"),
                None => "never".to_owned(),
            },
            report.tail_mean,
            report.tail_range.0,
            report.tail_range.1,
            report.completed,
            report.drops,
        );
        reports.push(report);
    }
    reports.try_into().expect("two phases")
}

fn assert_settled(name: &str, reports: &[PhaseReport; 2]) {
    for report in reports {
        let capacity = f64::from(report.capacity);
        assert!(
            (report.tail_mean - capacity).abs() <= capacity * 0.1,
            "{name}: mean limit {:.1} over the last half of the phase is not within 10% of the capacity {capacity}",
            report.tail_mean
        );
        assert!(
            report.settled.is_some(),
            "{name}: the limit never stayed within 10% of the capacity {capacity} ({report:?})"
        );
    }
}

/// A shallow queue: the server queues at most 10% of its capacity and refuses the rest, so overload shows
/// as drops soon after the capacity is reached.
const SHALLOW: Server = Server {
    capacities: [100, 20],
    queue_factor: 0.1,
    phase: PHASE,
};

/// A deep queue: as many waiting requests as in service, so latency doubles before anything is refused.
const DEEP: Server = Server {
    capacities: [100, 20],
    queue_factor: 1.0,
    phase: PHASE,
};

const PHASE: Duration = Duration::from_secs(20);

fn run(
    name: &str,
    build: impl FnOnce(ManualClock) -> AdaptiveLimit<ManualClock>,
    server: Server,
) -> [PhaseReport; 2] {
    let clock = ManualClock::new();
    let limit = build(clock.clone());
    simulate(name, &limit, &clock, server)
}

#[test]
#[cfg_attr(
    miri,
    ignore = "hundreds of thousands of simulated requests; the logic is covered by tests/limit.rs"
)]
fn aimd_settles_within_ten_percent_when_overload_shows_as_drops() {
    let reports = run(
        "aimd (defaults), shallow queue",
        |clock| AdaptiveLimit::aimd().clock(clock).build().unwrap(),
        SHALLOW,
    );
    assert_settled("aimd", &reports);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "hundreds of thousands of simulated requests; the logic is covered by tests/limit.rs"
)]
fn gradient2_settles_within_ten_percent_when_overload_shows_as_drops() {
    let reports = run(
        "gradient2 (defaults), shallow queue",
        |clock| AdaptiveLimit::gradient2().clock(clock).build().unwrap(),
        SHALLOW,
    );
    assert_settled("gradient2", &reports);
}

/// Behind a deep queue overload shows first as latency, so AIMD needs its timeout: a success slower than
/// it counts as a drop. Unqueued latency is 9–11 ms; a 10.5 ms timeout trips once about 5% of the capacity
/// is queued. The mean settles within 10%, but the sawtooth is wider than with prompt drops (10 ms windows
/// swing about ±20%), because the slow responses that signal the overload arrive a full queueing delay late.
/// So only the mean is asserted here.
#[test]
#[cfg_attr(
    miri,
    ignore = "hundreds of thousands of simulated requests; the logic is covered by tests/limit.rs"
)]
fn aimd_with_a_timeout_settles_within_ten_percent_on_average_behind_a_deep_queue() {
    let reports = run(
        "aimd (timeout 10.5 ms), deep queue",
        |clock| {
            AdaptiveLimit::aimd()
                .timeout(Duration::from_micros(10_500))
                .clock(clock)
                .build()
                .unwrap()
        },
        DEEP,
    );
    for report in &reports {
        let capacity = f64::from(report.capacity);
        assert!(
            (report.tail_mean - capacity).abs() <= capacity * 0.1,
            "aimd with timeout: {report:?}"
        );
    }
}

/// What the algorithms cannot see, pinned so the documentation stays true: behind a deep queue, loss-only
/// AIMD settles where drops begin (capacity + queue, less its 10% sawtooth), and Gradient2 rides up to where
/// its long-term RTT, which absorbs the sustained queueing as the new baseline, stops it: its maximum in the
/// first phase, the drop point in the second.
#[test]
#[cfg_attr(
    miri,
    ignore = "hundreds of thousands of simulated requests; the logic is covered by tests/limit.rs"
)]
fn behind_a_deep_queue_loss_only_aimd_and_gradient2_settle_where_drops_begin() {
    let aimd = run(
        "aimd (defaults), deep queue",
        |clock| AdaptiveLimit::aimd().clock(clock).build().unwrap(),
        DEEP,
    );
    let gradient2 = run(
        "gradient2 (defaults), deep queue",
        |clock| AdaptiveLimit::gradient2().clock(clock).build().unwrap(),
        DEEP,
    );
    for (name, reports) in [("aimd", &aimd), ("gradient2", &gradient2)] {
        for report in reports {
            let drop_point = 2.0 * f64::from(report.capacity);
            assert!(
                report.tail_mean >= 0.85 * drop_point && report.tail_mean <= drop_point,
                "{name}: expected the limit near the drop point {drop_point}, got {report:?}"
            );
        }
    }
}
