//! Differential fuzzing of `pools::Interner` against a `HashMap<String, u32>` + `Vec<String>` model.
//!
//! One interner runs a sequence of operations on one thread; every result is compared with the model:
//! symbols returned by `intern` and `get` (a new string gets the next number, an old one its first
//! number), `try_resolve` of in-range and out-of-range numbers and `resolve` of in-range ones, `len`, iteration order, and the
//! byte counts of `stats`. `trim` runs in between, so strings must survive their chunk being moved.
//!
//! The first input byte picks the hasher: the default (foldhash), or a weak one that gives many strings the
//! same home slot and the same tag, so lookups walk long probe sequences and compare strings whose tags
//! match but whose bytes differ.

#![no_main]

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pools::{Interner, Symbol};

#[derive(Arbitrary, Debug)]
struct Input {
    weak_hasher: bool,
    operations: Vec<Operation>,
}

#[derive(Arbitrary, Debug)]
enum Operation {
    /// Interns an arbitrary string.
    Intern(String),
    /// Interns one of 32 short strings, so strings repeat often.
    InternFromPool(u8),
    /// Interns `len` copies of a character: up to 64 KiB, past the size that gets its own chunk.
    InternLong { character: char, len: u16 },
    /// Looks up an arbitrary string.
    Get(String),
    /// Looks up one of the pool's strings.
    GetFromPool(u8),
    /// Resolves a symbol number, usually near the end of the range (in range or just past it).
    Resolve(u8),
    /// Resolves an arbitrary number.
    ResolveAny(u32),
    /// Compares the whole iteration with the model.
    Iterate,
    /// Compares `stats`.
    Stats,
    /// Frees retired tables and the arena tail.
    Trim,
}

fn pool_string(index: u8) -> String {
    format!("pool{}", index % 32)
}

/// Hashes a string to one of 16 values from its length and first byte: collisions everywhere.
#[derive(Default, Clone, Copy)]
struct WeakHasher;

impl BuildHasher for WeakHasher {
    type Hasher = WeakState;
    fn build_hasher(&self) -> WeakState {
        WeakState(0)
    }
}

struct WeakState(u64);

impl Hasher for WeakState {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let first = bytes.first().copied().unwrap_or(0);
        // Top bits only: the home slot and the tag both come from them.
        self.0 = (((bytes.len() as u64) ^ u64::from(first)) & 15) << 60;
    }
}

/// The model: each string's number, and the strings by number.
#[derive(Default)]
struct Model {
    numbers: HashMap<String, u32>,
    strings: Vec<String>,
}

impl Model {
    fn intern(&mut self, string: &str) -> u32 {
        if let Some(&number) = self.numbers.get(string) {
            return number;
        }
        self.strings.push(string.to_owned());
        let number = self.strings.len() as u32;
        self.numbers.insert(string.to_owned(), number);
        number
    }

    fn resolve(&self, number: u32) -> Option<&str> {
        let index = (number as usize).checked_sub(1)?;
        self.strings.get(index).map(String::as_str)
    }
}

fn run<S: BuildHasher>(mut interner: Interner<S>, operations: &[Operation]) {
    let mut model = Model::default();
    for (step, operation) in operations.iter().enumerate() {
        match operation {
            Operation::Intern(string) => check_intern(&interner, &mut model, string, step),
            Operation::InternFromPool(index) => {
                check_intern(&interner, &mut model, &pool_string(*index), step)
            }
            Operation::InternLong { character, len } => {
                let string: String = std::iter::repeat_n(*character, usize::from(*len)).collect();
                check_intern(&interner, &mut model, &string, step);
            }
            Operation::Get(string) => check_get(&interner, &model, string, step),
            Operation::GetFromPool(index) => {
                check_get(&interner, &model, &pool_string(*index), step)
            }
            Operation::Resolve(back) => {
                let number = (model.strings.len() as u32 + 2).saturating_sub(u32::from(*back % 8));
                check_resolve(&interner, &model, number, step);
            }
            Operation::ResolveAny(number) => check_resolve(&interner, &model, *number, step),
            Operation::Iterate => {
                let listed: Vec<(u32, &str)> = interner
                    .iter()
                    .map(|(symbol, string)| (symbol.to_u32(), string))
                    .collect();
                let expected: Vec<(u32, &str)> = (1..)
                    .zip(model.strings.iter().map(String::as_str))
                    .collect();
                assert_eq!(listed, expected, "step {step}: iteration");
            }
            Operation::Stats => {
                let stats = interner.stats();
                assert_eq!(stats.strings, model.strings.len(), "step {step}");
                let bytes: usize = model.strings.iter().map(String::len).sum();
                assert_eq!(stats.string_bytes, bytes, "step {step}");
                assert!(stats.arena_bytes >= bytes, "step {step}: {stats:?}");
                assert_eq!(
                    stats.bytes_held(),
                    stats.arena_bytes + stats.index_bytes + stats.retired_bytes
                );
            }
            Operation::Trim => {
                interner.trim();
                assert_eq!(interner.stats().retired_bytes, 0, "step {step}");
            }
        }
        assert_eq!(interner.len(), model.strings.len(), "step {step}: len");
        assert_eq!(interner.is_empty(), model.strings.is_empty());
    }
    // Every string still resolves and is found at the end.
    for (number, string) in (1..).zip(&model.strings) {
        let symbol = Symbol::from_u32(number).unwrap();
        assert_eq!(interner.resolve(symbol), string);
        assert_eq!(interner.get(string), Some(symbol));
    }
}

fn check_intern<S: BuildHasher>(
    interner: &Interner<S>,
    model: &mut Model,
    string: &str,
    step: usize,
) {
    let expected = model.intern(string);
    let symbol = interner.intern(string);
    assert_eq!(symbol.to_u32(), expected, "step {step}: intern {string:?}");
    assert_eq!(interner.resolve(symbol), string, "step {step}");
}

fn check_get<S: BuildHasher>(interner: &Interner<S>, model: &Model, string: &str, step: usize) {
    let expected = model.numbers.get(string).copied();
    assert_eq!(
        interner.get(string).map(Symbol::to_u32),
        expected,
        "step {step}: get {string:?}"
    );
    assert_eq!(interner.contains(string), expected.is_some());
}

fn check_resolve<S>(interner: &Interner<S>, model: &Model, number: u32, step: usize) {
    let Some(symbol) = Symbol::from_u32(number) else {
        return;
    };
    let expected = model.resolve(number);
    assert_eq!(
        interner.try_resolve(symbol),
        expected,
        "step {step}: resolve {number}"
    );
    // (`resolve` past the end panics; libFuzzer's panic hook aborts, so that is tested in tests/interner.rs.)
    if let Some(expected) = expected {
        assert_eq!(interner.resolve(symbol), expected);
    }
}

fuzz_target!(|input: Input| {
    if input.weak_hasher {
        run(Interner::with_hasher(WeakHasher), &input.operations);
    } else {
        run(Interner::new(), &input.operations);
    }
});
