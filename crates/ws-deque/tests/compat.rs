//! crossbeam-deque 0.8 compatibility, behaviour by behaviour: the same operations run on ws-deque and on
//! crossbeam-deque (a dev-dependency) and every result is compared.
//!
//! What is compared: the order of pops and steals; batch sizes (`steal_batch`, `_with_limit`, `_and_pop`,
//! `_with_limit_and_pop`) and the order in which a stolen batch comes out of the destination, for each pair
//! of flavours; the item `steal_batch_and_pop` returns; a batch into the stealer's own worker; `len` and
//! `is_empty` of workers and stealers as items are pushed, popped and stolen; the injector's batches at every
//! block offset; and the `Steal` combinators. Single-threaded, so crossbeam's racy slot read (see the crate's
//! guide) plays no part.
//!
//! The one difference kept on purpose, a limit of 0 (crossbeam panics, ws-deque steals nothing), is tested
//! at the end. The table of differences is in the crate's `guide` (section "crossbeam-deque 0.8 compatibility").
//!
//! Under Miri this file runs with Tree Borrows, like every test that pins crossbeam-epoch.

use crossbeam_deque as cb;
use ws_deque as ws;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    Lifo,
    Fifo,
}

const FLAVOURS: [Flavour; 2] = [Flavour::Lifo, Flavour::Fifo];

/// A steal outcome with the item, comparable across the two crates.
#[derive(Debug, PartialEq, Eq)]
enum Outcome<T> {
    Empty,
    Success(T),
    Retry,
}

fn of_ws<T>(steal: ws::Steal<T>) -> Outcome<T> {
    match steal {
        ws::Steal::Empty => Outcome::Empty,
        ws::Steal::Success(item) => Outcome::Success(item),
        ws::Steal::Retry => Outcome::Retry,
    }
}

fn of_cb<T>(steal: cb::Steal<T>) -> Outcome<T> {
    match steal {
        cb::Steal::Empty => Outcome::Empty,
        cb::Steal::Success(item) => Outcome::Success(item),
        cb::Steal::Retry => Outcome::Retry,
    }
}

/// A small deterministic generator (no dependency, same sequence everywhere).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// Two workers (a victim and a thief's own), in both crates.
struct Pair {
    ws: (ws::Worker<u32>, ws::Worker<u32>),
    ws_stealer: ws::Stealer<u32>,
    cb: (cb::Worker<u32>, cb::Worker<u32>),
    cb_stealer: cb::Stealer<u32>,
}

impl Pair {
    fn new(victim: Flavour, thief: Flavour) -> Self {
        let ws_worker = |flavour| match flavour {
            Flavour::Lifo => ws::Worker::new_lifo(),
            Flavour::Fifo => ws::Worker::new_fifo(),
        };
        let cb_worker = |flavour| match flavour {
            Flavour::Lifo => cb::Worker::new_lifo(),
            Flavour::Fifo => cb::Worker::new_fifo(),
        };
        let ws = (ws_worker(victim), ws_worker(thief));
        let cb = (cb_worker(victim), cb_worker(thief));
        let ws_stealer = ws.0.stealer();
        let cb_stealer = cb.0.stealer();
        Self {
            ws,
            ws_stealer,
            cb,
            cb_stealer,
        }
    }

    fn check_lengths(&self, context: &str) {
        assert_eq!(self.ws.0.len(), self.cb.0.len(), "{context}: victim len");
        assert_eq!(
            self.ws.0.is_empty(),
            self.cb.0.is_empty(),
            "{context}: victim is_empty"
        );
        assert_eq!(
            self.ws_stealer.len(),
            self.cb_stealer.len(),
            "{context}: stealer len"
        );
        assert_eq!(
            self.ws_stealer.is_empty(),
            self.cb_stealer.is_empty(),
            "{context}: stealer is_empty"
        );
        assert_eq!(self.ws.1.len(), self.cb.1.len(), "{context}: thief len");
    }
}

/// Runs `steps` random operations on both crates and compares every result. Batch limits start at 1
/// (crossbeam panics on 0).
fn differential(victim: Flavour, thief: Flavour, seed: u64, steps: usize) {
    let pair = Pair::new(victim, thief);
    let mut random = Lcg(seed);
    let mut next = 0u32;
    for step in 0..steps {
        let op = random.below(16);
        let limit = 1 + random.below(70) as usize;
        let context = format!("{victim:?} -> {thief:?}, seed {seed}, step {step}, op {op}");
        match op {
            // Pushes in runs, so the victim grows past 64 and shrinks back (through crossbeam's resize).
            0..=4 => {
                for _ in 0..=random.below(40) {
                    pair.ws.0.push(next);
                    pair.cb.0.push(next);
                    next += 1;
                }
            }
            5 | 6 => assert_eq!(pair.ws.0.pop(), pair.cb.0.pop(), "{context}"),
            7 => assert_eq!(
                of_ws(pair.ws_stealer.steal()),
                of_cb(pair.cb_stealer.steal()),
                "{context}"
            ),
            8 => assert_eq!(
                of_ws(pair.ws_stealer.steal_batch(&pair.ws.1)),
                of_cb(pair.cb_stealer.steal_batch(&pair.cb.1)),
                "{context}"
            ),
            9 => assert_eq!(
                of_ws(pair.ws_stealer.steal_batch_with_limit(&pair.ws.1, limit)),
                of_cb(pair.cb_stealer.steal_batch_with_limit(&pair.cb.1, limit)),
                "{context}, limit {limit}"
            ),
            10 => assert_eq!(
                of_ws(pair.ws_stealer.steal_batch_and_pop(&pair.ws.1)),
                of_cb(pair.cb_stealer.steal_batch_and_pop(&pair.cb.1)),
                "{context}"
            ),
            11 => assert_eq!(
                of_ws(
                    pair.ws_stealer
                        .steal_batch_with_limit_and_pop(&pair.ws.1, limit)
                ),
                of_cb(
                    pair.cb_stealer
                        .steal_batch_with_limit_and_pop(&pair.cb.1, limit)
                ),
                "{context}, limit {limit}"
            ),
            12 | 13 => assert_eq!(pair.ws.1.pop(), pair.cb.1.pop(), "{context}"),
            // A batch into the victim itself.
            14 => assert_eq!(
                of_ws(pair.ws_stealer.steal_batch_with_limit(&pair.ws.0, limit)),
                of_cb(pair.cb_stealer.steal_batch_with_limit(&pair.cb.0, limit)),
                "{context}, limit {limit}"
            ),
            _ => assert_eq!(
                of_ws(
                    pair.ws_stealer
                        .steal_batch_with_limit_and_pop(&pair.ws.0, limit)
                ),
                of_cb(
                    pair.cb_stealer
                        .steal_batch_with_limit_and_pop(&pair.cb.0, limit)
                ),
                "{context}, limit {limit}"
            ),
        }
        pair.check_lengths(&context);
    }
    // Drain both ends the same way.
    let ws_rest: Vec<_> = std::iter::from_fn(|| pair.ws.0.pop()).collect();
    let cb_rest: Vec<_> = std::iter::from_fn(|| pair.cb.0.pop()).collect();
    assert_eq!(
        ws_rest, cb_rest,
        "{victim:?} -> {thief:?}, seed {seed}: the rest"
    );
}

#[test]
fn random_operations_match_crossbeam_for_every_pair_of_flavours() {
    let (seeds, steps) = if cfg!(miri) { (1, 150) } else { (20, 2000) };
    for victim in FLAVOURS {
        for thief in FLAVOURS {
            for seed in 0..seeds {
                differential(victim, thief, seed, steps);
            }
        }
    }
}

/// The order in which a batch comes out of the destination, for each pair of flavours and each batch
/// method, on deques of every length up to 70 (crossbeam's `tests/steal.rs` pins the length-4 and length-6
/// cases).
#[test]
fn batch_order_and_size_match_crossbeam() {
    for victim in FLAVOURS {
        for thief in FLAVOURS {
            for len in 0..if cfg!(miri) { 12 } else { 70 } {
                for method in 0..4 {
                    let pair = Pair::new(victim, thief);
                    for i in 0..len {
                        pair.ws.0.push(i);
                        pair.cb.0.push(i);
                    }
                    let context = format!("{victim:?} -> {thief:?}, len {len}, method {method}");
                    let (ws_outcome, cb_outcome) = match method {
                        0 => (
                            of_ws(pair.ws_stealer.steal_batch(&pair.ws.1)).map_none(),
                            of_cb(pair.cb_stealer.steal_batch(&pair.cb.1)).map_none(),
                        ),
                        1 => (
                            of_ws(pair.ws_stealer.steal_batch_with_limit(&pair.ws.1, 7)).map_none(),
                            of_cb(pair.cb_stealer.steal_batch_with_limit(&pair.cb.1, 7)).map_none(),
                        ),
                        2 => (
                            of_ws(pair.ws_stealer.steal_batch_and_pop(&pair.ws.1)).map_some(),
                            of_cb(pair.cb_stealer.steal_batch_and_pop(&pair.cb.1)).map_some(),
                        ),
                        _ => (
                            of_ws(
                                pair.ws_stealer
                                    .steal_batch_with_limit_and_pop(&pair.ws.1, 7),
                            )
                            .map_some(),
                            of_cb(
                                pair.cb_stealer
                                    .steal_batch_with_limit_and_pop(&pair.cb.1, 7),
                            )
                            .map_some(),
                        ),
                    };
                    assert_eq!(ws_outcome, cb_outcome, "{context}");
                    pair.check_lengths(&context);
                    let ws_out: Vec<_> = std::iter::from_fn(|| pair.ws.1.pop()).collect();
                    let cb_out: Vec<_> = std::iter::from_fn(|| pair.cb.1.pop()).collect();
                    assert_eq!(ws_out, cb_out, "{context}: destination order");
                }
            }
        }
    }
}

impl<T> Outcome<T> {
    fn map_some(self) -> Outcome<Option<T>> {
        match self {
            Outcome::Empty => Outcome::Empty,
            Outcome::Success(item) => Outcome::Success(Some(item)),
            Outcome::Retry => Outcome::Retry,
        }
    }
}

impl Outcome<()> {
    fn map_none<T>(self) -> Outcome<Option<T>> {
        match self {
            Outcome::Empty => Outcome::Empty,
            Outcome::Success(()) => Outcome::Success(None),
            Outcome::Retry => Outcome::Retry,
        }
    }
}

/// The injector: batch sizes at every block offset and for every fill, into both flavours of destination.
#[test]
fn injector_matches_crossbeam() {
    let (seeds, steps) = if cfg!(miri) { (1, 150) } else { (10, 3000) };
    for thief in FLAVOURS {
        for seed in 0..seeds {
            let ws_injector = ws::Injector::new();
            let cb_injector = cb::Injector::new();
            let (ws_dest, cb_dest) = match thief {
                Flavour::Lifo => (ws::Worker::new_lifo(), cb::Worker::new_lifo()),
                Flavour::Fifo => (ws::Worker::new_fifo(), cb::Worker::new_fifo()),
            };
            let mut random = Lcg(seed);
            let mut next = 0u32;
            for step in 0..steps {
                let limit = 1 + random.below(80) as usize;
                let context = format!("{thief:?}, seed {seed}, step {step}");
                match random.below(10) {
                    0..=2 => {
                        for _ in 0..=random.below(70) {
                            ws_injector.push(next);
                            cb_injector.push(next);
                            next += 1;
                        }
                    }
                    3 => assert_eq!(
                        of_ws(ws_injector.steal()),
                        of_cb(cb_injector.steal()),
                        "{context}"
                    ),
                    4 => assert_eq!(
                        of_ws(ws_injector.steal_batch(&ws_dest)),
                        of_cb(cb_injector.steal_batch(&cb_dest)),
                        "{context}"
                    ),
                    5 => assert_eq!(
                        of_ws(ws_injector.steal_batch_with_limit(&ws_dest, limit)),
                        of_cb(cb_injector.steal_batch_with_limit(&cb_dest, limit)),
                        "{context}, limit {limit}"
                    ),
                    6 => assert_eq!(
                        of_ws(ws_injector.steal_batch_and_pop(&ws_dest)),
                        of_cb(cb_injector.steal_batch_and_pop(&cb_dest)),
                        "{context}"
                    ),
                    7 => assert_eq!(
                        of_ws(ws_injector.steal_batch_with_limit_and_pop(&ws_dest, limit)),
                        of_cb(cb_injector.steal_batch_with_limit_and_pop(&cb_dest, limit)),
                        "{context}, limit {limit}"
                    ),
                    _ => assert_eq!(ws_dest.pop(), cb_dest.pop(), "{context}"),
                }
                assert_eq!(ws_injector.len(), cb_injector.len(), "{context}: len");
                assert_eq!(
                    ws_injector.is_empty(),
                    cb_injector.is_empty(),
                    "{context}: is_empty"
                );
                assert_eq!(ws_dest.len(), cb_dest.len(), "{context}: destination len");
            }
        }
    }
}

/// `is_empty`, `is_success`, `is_retry`, `success`, `or_else`, `FromIterator` and `Debug` on every input.
#[test]
fn steal_combinators_match_crossbeam() {
    let ws_all = [ws::Steal::Empty, ws::Steal::Success(1), ws::Steal::Retry];
    let cb_all = [cb::Steal::Empty, cb::Steal::Success(1), cb::Steal::Retry];
    let ws_second = [ws::Steal::Empty, ws::Steal::Success(2), ws::Steal::Retry];
    let cb_second = [cb::Steal::Empty, cb::Steal::Success(2), cb::Steal::Retry];
    for (ws_first, cb_first) in ws_all.iter().zip(&cb_all) {
        assert_eq!(ws_first.is_empty(), cb_first.is_empty());
        assert_eq!(ws_first.is_success(), cb_first.is_success());
        assert_eq!(ws_first.is_retry(), cb_first.is_retry());
        assert_eq!(ws_first.success(), cb_first.success());
        assert_eq!(format!("{ws_first:?}"), format!("{cb_first:?}"));
        for (ws_next, cb_next) in ws_second.iter().zip(&cb_second) {
            assert_eq!(
                of_ws(ws_first.or_else(|| *ws_next)),
                of_cb(cb_first.or_else(|| *cb_next)),
                "{ws_first:?}.or_else({ws_next:?})"
            );
        }
    }
    // Every sequence of up to three outcomes.
    for len in 0..=3u32 {
        for code in 0..3u32.pow(len) {
            let digits: Vec<usize> = (0..len)
                .map(|i| (code / 3u32.pow(i) % 3) as usize)
                .collect();
            let ws_collected: ws::Steal<i32> = digits.iter().map(|&d| ws_all[d]).collect();
            let cb_collected: cb::Steal<i32> = digits.iter().map(|&d| cb_all[d]).collect();
            assert_eq!(of_ws(ws_collected), of_cb(cb_collected), "{digits:?}");
        }
    }
}

/// The one difference kept: crossbeam panics on a batch limit of 0 (`assert!(limit > 0)`); ws-deque steals
/// nothing and returns `Empty`, which a loop over computed limits can treat like any empty victim.
#[test]
fn limit_zero_panics_in_crossbeam_and_steals_nothing_here() {
    let cb_worker = cb::Worker::new_lifo();
    cb_worker.push(1);
    let cb_stealer = cb_worker.stealer();
    let cb_dest = cb::Worker::new_lifo();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = cb_stealer.steal_batch_with_limit(&cb_dest, 0);
    }));
    assert!(panicked.is_err(), "crossbeam-deque 0.8 asserts limit > 0");

    let ws_worker = ws::Worker::new_lifo();
    ws_worker.push(1);
    let ws_dest = ws::Worker::new_lifo();
    assert_eq!(
        ws_worker.stealer().steal_batch_with_limit(&ws_dest, 0),
        ws::Steal::Empty
    );
    let injector = ws::Injector::new();
    injector.push(1);
    assert_eq!(
        injector.steal_batch_with_limit(&ws_dest, 0),
        ws::Steal::Empty
    );
    assert_eq!((ws_worker.len(), injector.len()), (1, 1));
}
