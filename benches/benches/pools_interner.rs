//! `pools::Interner` beside lasso's `ThreadedRodeo`, `ustr` and `Mutex<string_interner::StringInterner>`
//! (its default backend, `StringBackend`), on the same input: 10 000 distinct identifier-like strings of 4 to
//! 40 bytes, visited in one fixed shuffled order.
//!
//! Groups:
//!
//! * `interner_resolve/{1,2}_threads`: symbol → string for all 10 000 symbols per iteration.
//! * `interner_intern_hit/{1,2}_threads`: `intern` (`get_or_intern`, `ustr()`) of strings already there.
//! * `interner_intern_miss/1_thread`: build an interner from the 10 000 strings (a fresh one per
//!   iteration; dropping it is not timed).
//!
//! With 2 threads both hammer the *same* interner: each thread waits at a barrier, then times its own
//! `iters` rounds; the reported time is the slower thread's, so a round costs what one thread pays while
//! the other does the same. Thread counts are capped by `available_parallelism()`.
//!
//! About `ustr`: it is one process-wide table, not an interner value, and a `Ustr` *is* the string's
//! address, so its "resolve" is a pointer read, not a lookup; it cannot start empty, so it has no
//! `intern_miss` entry (after the first iteration every string would be a hit). Its numbers are shown
//! because users choose between these crates, not because the operations are the same.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use benches::{Combine, thread_counts, time_on_threads};
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
    measurement::WallTime,
};
use lasso::{Spur, ThreadedRodeo};
use pools::{Interner, Symbol};
use string_interner::{DefaultStringInterner, DefaultSymbol};
use ustr::Ustr;

/// Distinct strings in every workload.
const STRINGS: usize = 10_000;

/// A small deterministic generator, so every run and every crate gets the same strings in the same order.
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

/// `STRINGS` distinct identifiers, 4 to 40 bytes (most of them short, as in source code), shuffled.
fn identifiers() -> Vec<String> {
    const FIRST: &[u8] = b"abcdefghijklmnopqrstuvwxyz_";
    const REST: &[u8] = b"abcdefghijklmnopqrstuvwxyz_0123456789";
    let mut random = Lcg(0x5EED);
    let mut seen = std::collections::HashSet::new();
    let mut strings = Vec::with_capacity(STRINGS);
    while strings.len() < STRINGS {
        // Lengths 4..=40, skewed short: the minimum of two uniform draws.
        let len = 4 + random.below(37).min(random.below(37)) as usize;
        let mut string = String::with_capacity(len);
        string.push(char::from(FIRST[random.below(FIRST.len() as u64) as usize]));
        while string.len() < len {
            string.push(char::from(REST[random.below(REST.len() as u64) as usize]));
        }
        if seen.insert(string.clone()) {
            strings.push(string);
        }
    }
    strings
}

/// Adds one function per crate to `group`, each timing `round` on `threads` threads.
fn bench_on_threads(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    round: impl Fn() + Sync,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| time_on_threads(threads, iters, Combine::Slowest, &round))
    });
}

/// Every crate's symbols for the same strings, interned in the same order.
struct Interned {
    strings: Vec<String>,
    ours: Interner,
    our_symbols: Vec<Symbol>,
    lasso: ThreadedRodeo<Spur>,
    lasso_symbols: Vec<Spur>,
    ustrs: Vec<Ustr>,
    string_interner: Mutex<DefaultStringInterner>,
    string_interner_symbols: Vec<DefaultSymbol>,
}

impl Interned {
    fn new(strings: Vec<String>) -> Self {
        let ours = Interner::new();
        let our_symbols = strings.iter().map(|s| ours.intern(s)).collect();
        let lasso = ThreadedRodeo::new();
        let lasso_symbols = strings.iter().map(|s| lasso.get_or_intern(s)).collect();
        let ustrs = strings.iter().map(|s| ustr::ustr(s)).collect();
        let mut string_interner: DefaultStringInterner = DefaultStringInterner::new();
        let string_interner_symbols = strings
            .iter()
            .map(|s| string_interner.get_or_intern(s))
            .collect();
        Self {
            strings,
            ours,
            our_symbols,
            lasso,
            lasso_symbols,
            ustrs,
            string_interner: Mutex::new(string_interner),
            string_interner_symbols,
        }
    }
}

fn resolve(c: &mut Criterion) {
    let data = Interned::new(identifiers());
    for threads in thread_counts() {
        let mut group = c.benchmark_group(format!("interner_resolve/{threads}_threads"));
        group.throughput(Throughput::Elements(STRINGS as u64));
        bench_on_threads(&mut group, "pools", threads, || {
            for &symbol in &data.our_symbols {
                black_box(data.ours.resolve(black_box(symbol)));
            }
        });
        bench_on_threads(&mut group, "lasso", threads, || {
            for symbol in &data.lasso_symbols {
                black_box(data.lasso.resolve(black_box(symbol)));
            }
        });
        bench_on_threads(&mut group, "ustr", threads, || {
            for &ustr in &data.ustrs {
                black_box(black_box(ustr).as_str());
            }
        });
        bench_on_threads(&mut group, "string-interner", threads, || {
            for &symbol in &data.string_interner_symbols {
                let interner = data.string_interner.lock().unwrap();
                black_box(interner.resolve(black_box(symbol)));
            }
        });
        group.finish();
    }
}

fn intern_hit(c: &mut Criterion) {
    let data = Interned::new(identifiers());
    for threads in thread_counts() {
        let mut group = c.benchmark_group(format!("interner_intern_hit/{threads}_threads"));
        group.throughput(Throughput::Elements(STRINGS as u64));
        bench_on_threads(&mut group, "pools", threads, || {
            for string in &data.strings {
                black_box(data.ours.intern(black_box(string)));
            }
        });
        bench_on_threads(&mut group, "lasso", threads, || {
            for string in &data.strings {
                black_box(data.lasso.get_or_intern(black_box(string.as_str())));
            }
        });
        bench_on_threads(&mut group, "ustr", threads, || {
            for string in &data.strings {
                black_box(ustr::ustr(black_box(string)));
            }
        });
        bench_on_threads(&mut group, "string-interner", threads, || {
            for string in &data.strings {
                let mut interner = data.string_interner.lock().unwrap();
                black_box(interner.get_or_intern(black_box(string.as_str())));
            }
        });
        group.finish();
    }
}

fn intern_miss(c: &mut Criterion) {
    let strings = identifiers();
    let mut group = c.benchmark_group("interner_intern_miss/1_thread");
    group.throughput(Throughput::Elements(STRINGS as u64));
    group.bench_function("pools", |b| {
        b.iter_batched(
            || (),
            |()| {
                let interner = Interner::new();
                for string in &strings {
                    black_box(interner.intern(black_box(string)));
                }
                interner
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("lasso", |b| {
        b.iter_batched(
            || (),
            |()| {
                let interner: ThreadedRodeo<Spur> = ThreadedRodeo::new();
                for string in &strings {
                    black_box(interner.get_or_intern(black_box(string.as_str())));
                }
                interner
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("string-interner", |b| {
        b.iter_batched(
            || (),
            |()| {
                let interner: Mutex<DefaultStringInterner> =
                    Mutex::new(DefaultStringInterner::new());
                for string in &strings {
                    let mut guard = interner.lock().unwrap();
                    black_box(guard.get_or_intern(black_box(string.as_str())));
                }
                interner
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = resolve, intern_hit, intern_miss
}
criterion_main!(benches);
