//! `Interner` and `Symbol`: behaviour on one thread, growth, foreign symbols, stats and trim, serde, a
//! multi-threaded stress test, and a proptest against a `HashMap` + `Vec` model.
//!
//! Sizes shrink under Miri (`cargo +nightly miri test -p pools --test interner`), which runs everything here
//! with its default (Stacked Borrows) aliasing model.

use std::collections::HashMap;
use std::sync::Barrier;
use std::thread;

use pools::{InternError, Interner, InternerStats, Symbol};
use proptest::prelude::*;

/// Strings for the growth and stress tests: past several table doublings, segments and arena chunks.
const MANY: usize = if cfg!(miri) { 300 } else { 50_000 };

/// `i`-th string of a varied set: different lengths (1 to 40 bytes), shared prefixes, some non-ASCII.
fn name(i: usize) -> String {
    match i % 4 {
        0 => format!("id{i}"),
        1 => format!("some_longer_identifier_{i}_x"),
        2 => format!("ä{i}ö"),
        _ => format!("{i:>width$}", width = 1 + i % 40),
    }
}

fn sym(value: u32) -> Symbol {
    Symbol::from_u32(value).expect("non-zero")
}

#[test]
fn round_trip_and_same_string_same_symbol() {
    let interner = Interner::new();
    assert!(interner.is_empty());
    let a = interner.intern("alpha");
    let b = interner.intern("beta");
    assert_ne!(a, b);
    assert_eq!(
        (a.to_u32(), b.to_u32()),
        (1, 2),
        "symbols number strings in order"
    );
    assert_eq!(interner.intern("alpha"), a);
    assert_eq!(interner.try_intern("beta"), Ok(b));
    assert_eq!(interner.resolve(a), "alpha");
    assert_eq!(interner.resolve(b), "beta");
    assert_eq!(interner.get("alpha"), Some(a));
    assert!(interner.contains("beta"));
    assert_eq!(interner.len(), 2);
    assert!(!interner.is_empty());
}

#[test]
fn get_of_an_absent_string_is_none_and_adds_nothing() {
    let interner = Interner::new();
    assert_eq!(interner.get("missing"), None);
    interner.intern("present");
    assert_eq!(interner.get("missing"), None);
    assert_eq!(interner.get("presen"), None, "a prefix is another string");
    assert_eq!(interner.get("present "), None);
    assert_eq!(interner.len(), 1);
}

#[test]
fn empty_string_is_a_string_like_any_other() {
    let interner = Interner::new();
    assert_eq!(interner.get(""), None);
    let empty = interner.intern("");
    let x = interner.intern("x");
    assert_ne!(empty, x);
    assert_eq!(interner.intern(""), empty);
    assert_eq!(interner.get(""), Some(empty));
    assert_eq!(interner.resolve(empty), "");
    assert_eq!(interner.stats().string_bytes, 1);
}

#[test]
fn long_strings_get_their_own_chunks() {
    let interner = Interner::new();
    let small_before = interner.intern("small");
    // Past the own-chunk threshold (16 KiB), past the largest chunk (64 KiB), and just below the threshold.
    let lengths = [16 * 1024 + 1, 64 * 1024 + 7, 16 * 1024, 200_000];
    let longs: Vec<(Symbol, String)> = lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let string: String = (0..len)
                .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
                .collect();
            (interner.intern(&string), string)
        })
        .collect();
    let small_after = interner.intern("small after");
    for (symbol, string) in &longs {
        assert_eq!(interner.resolve(*symbol), string);
        assert_eq!(interner.get(string), Some(*symbol));
    }
    assert_eq!(interner.resolve(small_before), "small");
    assert_eq!(interner.resolve(small_after), "small after");
    let stats = interner.stats();
    let total: usize = lengths.iter().sum::<usize>() + "small".len() + "small after".len();
    assert_eq!(stats.string_bytes, total);
    assert!(stats.arena_bytes >= total);
    // Only the 16 KiB string and the two small ones share chunks, which together stay below 16 KiB + 64 KiB.
    assert!(
        stats.arena_bytes < total + 80 * 1024,
        "long strings are sized exactly: {stats:?}"
    );
}

#[test]
fn unicode_strings_round_trip() {
    let interner = Interner::new();
    let strings = [
        "日本語",
        "émoji 🦀🦀",
        "Ελληνικά",
        "\u{0}nul",
        "a\u{301}",
        "á",
        "ﬀ",
    ];
    let symbols: Vec<Symbol> = strings.iter().map(|s| interner.intern(s)).collect();
    for (symbol, string) in symbols.iter().zip(strings) {
        assert_eq!(interner.resolve(*symbol), string);
        assert_eq!(interner.get(string), Some(*symbol));
    }
    assert_ne!(
        interner.get("a\u{301}"),
        interner.get("á"),
        "strings compare by bytes, not by Unicode equivalence"
    );
    assert_eq!(interner.len(), strings.len());
}

#[test]
fn many_strings_cross_every_kind_of_growth() {
    let interner = Interner::new();
    let symbols: Vec<Symbol> = (0..MANY).map(|i| interner.intern(&name(i))).collect();
    assert_eq!(interner.len(), MANY);
    for (i, &symbol) in symbols.iter().enumerate() {
        assert_eq!(symbol.index(), i, "symbols are dense, in interning order");
        assert_eq!(interner.resolve(symbol), name(i));
        assert_eq!(interner.get(&name(i)), Some(symbol));
        assert_eq!(interner.intern(&name(i)), symbol);
    }
    assert_eq!(interner.len(), MANY);
    let stats = interner.stats();
    assert!(stats.retired_bytes > 0, "the table grew: {stats:?}");
    // Grown step by step, the index ends up the size of one made for `MANY` strings up front (the retired
    // tables are smaller than the current one: checked exactly in the crate's unit tests).
    let presized = Interner::with_capacity(MANY).stats();
    assert_eq!(stats.index_bytes, presized.index_bytes);
    assert!(stats.retired_bytes < stats.index_bytes, "{stats:?}");
}

#[test]
fn iteration_is_in_symbol_order() {
    let interner = Interner::new();
    let strings: Vec<String> = (0..100).map(name).collect();
    for s in &strings {
        interner.intern(s);
    }
    let mut iter = interner.iter();
    assert_eq!(iter.len(), 100);
    assert_eq!(iter.next_back(), Some((sym(100), strings[99].as_str())));
    let items: Vec<(Symbol, &str)> = iter.by_ref().collect();
    assert_eq!(items.len(), 99);
    for (i, (symbol, string)) in items.into_iter().enumerate() {
        assert_eq!((symbol.index(), string), (i, strings[i].as_str()));
    }
    assert_eq!(iter.next(), None);
    assert_eq!(iter.next_back(), None);
    assert_eq!((&interner).into_iter().count(), 100);

    // An iterator covers the strings present when it was made.
    let before = interner.iter();
    interner.intern("later");
    assert_eq!(before.count(), 100);
}

#[test]
fn from_iterator_and_extend_keep_first_occurrences() {
    let mut interner: Interner = ["a", "b", "a", "c"].into_iter().collect();
    assert_eq!(interner.len(), 3);
    assert_eq!(interner.get("c"), Some(sym(3)));
    interner.extend(["c", "d"]);
    assert_eq!(interner.get("d"), Some(sym(4)));
}

#[test]
fn with_capacity_does_not_grow_before_its_capacity() {
    let count = if cfg!(miri) { 100 } else { 10_000 };
    let interner = Interner::with_capacity(count);
    let index_bytes = interner.stats().index_bytes;
    for i in 0..count {
        interner.intern(&name(i));
    }
    let stats = interner.stats();
    assert_eq!((stats.index_bytes, stats.retired_bytes), (index_bytes, 0));
    interner.intern("one more");
    assert_eq!(interner.len(), count + 1);
}

#[test]
fn a_custom_hasher_works() {
    let interner = Interner::with_hasher(std::hash::RandomState::new());
    let symbols: Vec<Symbol> = (0..200).map(|i| interner.intern(&name(i))).collect();
    for (i, symbol) in symbols.into_iter().enumerate() {
        assert_eq!(interner.get(&name(i)), Some(symbol));
    }
    let _: &std::hash::RandomState = interner.hasher();
}

/// A hasher that sends every string to the same slot: the table must still work (by tags and compares).
#[derive(Default, Clone)]
struct Colliding;

impl std::hash::BuildHasher for Colliding {
    type Hasher = ConstantHasher;
    fn build_hasher(&self) -> ConstantHasher {
        ConstantHasher
    }
}

struct ConstantHasher;

impl std::hash::Hasher for ConstantHasher {
    fn finish(&self) -> u64 {
        0xDEAD_BEEF_0000_0000
    }
    fn write(&mut self, _: &[u8]) {}
}

#[test]
fn all_hashes_colliding_is_slow_but_correct() {
    let interner = Interner::with_hasher(Colliding);
    let count = if cfg!(miri) { 40 } else { 500 };
    let symbols: Vec<Symbol> = (0..count).map(|i| interner.intern(&name(i))).collect();
    for (i, &symbol) in symbols.iter().enumerate() {
        assert_eq!(interner.get(&name(i)), Some(symbol));
        assert_eq!(interner.resolve(symbol), name(i));
    }
    assert_eq!(interner.get("absent"), None);
    assert_eq!(interner.len(), count);
}

#[test]
fn a_symbol_past_the_end_is_none_for_try_resolve() {
    let interner = Interner::new();
    assert_eq!(interner.try_resolve(sym(1)), None);
    interner.intern("one");
    assert_eq!(interner.try_resolve(sym(2)), None);
    assert_eq!(interner.try_resolve(sym(u32::MAX)), None);
}

#[test]
#[should_panic(expected = "symbol 3 is not from this interner: it holds 2 strings")]
fn resolve_of_a_symbol_past_the_end_panics() {
    let other = Interner::new();
    for s in ["a", "b", "c"] {
        other.intern(s);
    }
    let interner = Interner::new();
    interner.intern("x");
    interner.intern("y");
    let _ = interner.resolve(other.get("c").unwrap());
}

#[test]
fn a_foreign_symbol_in_range_names_this_interners_string() {
    let first = Interner::new();
    let second = Interner::new();
    let from_first = first.intern("first's");
    second.intern("second's");
    assert_eq!(second.resolve(from_first), "second's");
}

#[test]
fn symbol_conversions() {
    assert_eq!(Symbol::from_u32(0), None);
    let symbol = sym(7);
    assert_eq!(symbol.to_u32(), 7);
    assert_eq!(symbol.index(), 6);
    assert_eq!(Symbol::from_index(6), Some(symbol));
    assert_eq!(
        Symbol::from_index(u32::MAX as usize - 1),
        Some(sym(u32::MAX))
    );
    assert_eq!(Symbol::from_index(u32::MAX as usize), None);
    assert_eq!(u32::from(symbol), 7);
    let non_zero = std::num::NonZeroU32::from(symbol);
    assert_eq!(Symbol::from(non_zero), symbol);
    assert!(sym(1) < sym(2));
    assert_eq!(format!("{symbol:?}"), "Symbol(7)");
    assert_eq!(size_of::<Symbol>(), 4);
    assert_eq!(size_of::<Option<Symbol>>(), 4);
}

#[test]
fn stats_count_strings_and_bytes() {
    let interner = Interner::new();
    let empty = interner.stats();
    assert_eq!(
        (empty.strings, empty.string_bytes, empty.arena_bytes),
        (0, 0, 0)
    );
    assert!(
        empty.index_bytes > 0,
        "the first table is allocated up front"
    );
    assert_eq!(empty.retired_bytes, 0);
    for i in 0..100 {
        interner.intern(&format!("s{i:03}"));
    }
    interner.intern("s000");
    let stats = interner.stats();
    assert_eq!(stats.strings, 100);
    assert_eq!(stats.string_bytes, 400);
    assert!(stats.arena_bytes >= 400);
    assert!(stats.arena_bytes < 400 + 4096, "a few chunks: {stats:?}");
    assert_eq!(
        stats.bytes_held(),
        stats.arena_bytes + stats.index_bytes + stats.retired_bytes
    );
    assert!(
        stats.index_bytes >= 100 * (16 + 8),
        "entries and slots: {stats:?}"
    );
    assert_eq!(InternerStats::default().bytes_held(), 0);
}

#[test]
fn trim_frees_retired_tables_and_the_arena_tail_and_keeps_symbols() {
    let mut interner = Interner::new();
    let count = if cfg!(miri) { 200 } else { 5_000 };
    let symbols: Vec<Symbol> = (0..count).map(|i| interner.intern(&name(i))).collect();
    let before = interner.stats();
    assert!(before.retired_bytes > 0);
    interner.trim();
    let after = interner.stats();
    assert_eq!(after.retired_bytes, 0);
    assert!(after.arena_bytes < before.arena_bytes || before.arena_bytes == before.string_bytes);
    assert_eq!(after.index_bytes, before.index_bytes);
    assert_eq!(after.string_bytes, before.string_bytes);
    for (i, &symbol) in symbols.iter().enumerate() {
        assert_eq!(interner.resolve(symbol), name(i), "after trim");
        assert_eq!(interner.get(&name(i)), Some(symbol));
    }
    // Trimming twice is harmless, and the interner keeps working after it.
    interner.trim();
    let new = interner.intern("after trim");
    assert_eq!(new.index(), count);
    assert_eq!(interner.resolve(symbols[count - 1]), name(count - 1));
    assert_eq!(interner.resolve(new), "after trim");
    interner.trim();
    assert_eq!(interner.resolve(new), "after trim");
    assert_eq!(
        interner.stats().arena_bytes,
        after.arena_bytes + "after trim".len()
    );
}

#[test]
fn trim_of_an_empty_interner_is_a_no_op() {
    let mut interner = Interner::new();
    interner.trim();
    assert_eq!(interner.stats().arena_bytes, 0);
    assert_eq!(interner.resolve(interner.intern("x")), "x");
}

#[test]
fn the_interner_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Interner>();
    assert_send_sync::<Interner<std::hash::RandomState>>();
    assert_send_sync::<pools::InternerIter<'static>>();
    assert_send_sync::<Symbol>();
    // An interner moved to another thread keeps its strings.
    let interner = Interner::new();
    let symbol = interner.intern("moved");
    let interner = thread::spawn(move || {
        assert_eq!(interner.resolve(symbol), "moved");
        interner
    })
    .join()
    .unwrap();
    assert_eq!(interner.get("moved"), Some(symbol));
}

#[test]
fn debug_shows_the_length() {
    let interner = Interner::new();
    interner.intern("a");
    assert_eq!(format!("{interner:?}"), "Interner { len: 1, .. }");
}

#[test]
fn exhaustion_error_names_the_length() {
    let error = InternError::SymbolsExhausted { len: 7 };
    assert!(error.to_string().contains("7 strings"));
}

/// Threads intern overlapping sets in different orders while readers resolve what they find: every thread
/// gets the same symbol for a string, no string gets two symbols, none is lost.
#[test]
fn threads_interning_overlapping_sets_agree() {
    const THREADS: usize = 4;
    // Prime, so each thread's stride is a permutation of the strings.
    let distinct = if cfg!(miri) { 61 } else { 20_011 };
    let interner = Interner::new();
    let barrier = Barrier::new(THREADS + 1);
    let results: Vec<Vec<(usize, Symbol)>> = thread::scope(|scope| {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (interner, barrier) = (&interner, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    // Each thread interns 3/4 of the strings, starting at a different point and stepping
                    // through them in a different order, so every string is raced for by several threads.
                    let mut seen = Vec::new();
                    for k in 0..distinct {
                        let i = (k * (2 * t + 1) + t * distinct / THREADS) % distinct;
                        if i % THREADS != t {
                            let symbol = interner.intern(&name(i));
                            assert_eq!(interner.resolve(symbol), name(i));
                            seen.push((i, symbol));
                        }
                    }
                    seen
                })
            })
            .collect();
        // A reader: whatever `get` finds resolves to the same string; symbols it sees in range resolve.
        let reader = scope.spawn(|| {
            barrier.wait();
            let mut found = 0usize;
            for k in 0..distinct {
                if let Some(symbol) = interner.get(&name(k)) {
                    assert_eq!(interner.resolve(symbol), name(k));
                    found += 1;
                }
                let len = interner.len();
                if len > 0 {
                    let symbol = Symbol::from_index(k % len).unwrap();
                    assert!(interner.try_resolve(symbol).is_some());
                }
            }
            found
        });
        let results = writers.into_iter().map(|w| w.join().unwrap()).collect();
        reader.join().unwrap();
        results
    });

    let mut symbol_of: HashMap<usize, Symbol> = HashMap::new();
    for (i, symbol) in results.into_iter().flatten() {
        let first = *symbol_of.entry(i).or_insert(symbol);
        assert_eq!(first, symbol, "string {i} got two symbols");
    }
    assert_eq!(
        symbol_of.len(),
        distinct,
        "every string was interned by some thread"
    );
    assert_eq!(interner.len(), distinct, "no string was added twice");
    let string_of: HashMap<Symbol, usize> = symbol_of.iter().map(|(&i, &s)| (s, i)).collect();
    let mut strings_seen = vec![false; distinct];
    for (symbol, string) in &interner {
        let i = *string_of
            .get(&symbol)
            .expect("every symbol belongs to a string some thread interned");
        assert_eq!(string, name(i));
        assert!(!strings_seen[i], "string {i} appears twice");
        strings_seen[i] = true;
    }
    assert!(strings_seen.into_iter().all(|seen| seen));
}

/// Many threads racing for the *same* few new strings: each gets exactly one symbol.
#[test]
fn threads_racing_for_the_same_new_strings_get_one_symbol_each() {
    const THREADS: usize = 4;
    let rounds = if cfg!(miri) { 10 } else { 2_000 };
    let interner = Interner::new();
    let barrier = Barrier::new(THREADS);
    let per_thread: Vec<Vec<Symbol>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    (0..rounds)
                        .map(|round| {
                            if round % 64 == 0 {
                                barrier.wait();
                            }
                            interner.intern(&format!("race{round}"))
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for symbols in &per_thread[1..] {
        assert_eq!(symbols, &per_thread[0]);
    }
    assert_eq!(interner.len(), rounds);
}

#[cfg(feature = "serde")]
mod serde_support {
    use super::*;

    #[test]
    fn an_interner_round_trips_with_the_same_symbols() {
        let interner = Interner::new();
        let strings: Vec<String> = (0..300).map(name).chain([String::new()]).collect();
        let symbols: Vec<Symbol> = strings.iter().map(|s| interner.intern(s)).collect();
        let json = serde_json::to_string(&interner).unwrap();
        assert!(
            json.starts_with(r#"["id0","some_longer_identifier_1_x","ä2ö""#),
            "{json}"
        );
        let back: Interner = serde_json::from_str(&json).unwrap();
        assert_eq!(back.len(), interner.len());
        for (symbol, string) in symbols.iter().zip(&strings) {
            assert_eq!(back.resolve(*symbol), string);
            assert_eq!(back.get(string), Some(*symbol));
        }
    }

    #[test]
    fn escaped_strings_deserialize() {
        let back: Interner = serde_json::from_str(r#"["tab\there", "quote\"", "\u00e9"]"#).unwrap();
        assert_eq!(back.resolve(sym(1)), "tab\there");
        assert_eq!(back.resolve(sym(2)), "quote\"");
        assert_eq!(back.resolve(sym(3)), "é");
    }

    #[test]
    fn duplicates_are_an_error() {
        let error = serde_json::from_str::<Interner>(r#"["a", "b", "a"]"#).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(r#"duplicate string "a" at position 2 (first at position 0)"#),
            "{message}"
        );
    }

    #[test]
    fn not_a_sequence_of_strings_is_an_error() {
        assert!(serde_json::from_str::<Interner>(r#"["a", 1]"#).is_err());
        assert!(serde_json::from_str::<Interner>(r#"{"a": 1}"#).is_err());
    }

    #[test]
    fn symbols_are_their_numbers() {
        assert_eq!(serde_json::to_string(&sym(42)).unwrap(), "42");
        assert_eq!(serde_json::from_str::<Symbol>("42").unwrap(), sym(42));
        let zero = serde_json::from_str::<Symbol>("0").unwrap_err();
        assert!(zero.to_string().contains("a symbol (1 or more)"), "{zero}");
        let table: Vec<Option<Symbol>> = serde_json::from_str("[1, null, 3]").unwrap();
        assert_eq!(table, [Some(sym(1)), None, Some(sym(3))]);
    }
}

/// One operation of the state-machine test.
#[derive(Clone, Debug)]
enum Op {
    /// Interns a string from a small pool (so strings repeat) or a fresh long one.
    Intern(String),
    Get(String),
    /// Resolves the symbol with this number (often out of range).
    Resolve(u32),
    Trim,
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-e]{0,3}",
        2 => "\\PC{0,12}",
        1 => (0usize..3, 1usize..3).prop_map(|(c, k)| ["x", "é", "🦀"][c].repeat(k * 7_000)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => string().prop_map(Op::Intern),
        3 => string().prop_map(Op::Get),
        3 => (0u32..40).prop_map(Op::Resolve),
        1 => Just(Op::Trim),
    ]
}

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 });
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn behaves_like_a_hash_map_and_a_vec(ops in proptest::collection::vec(op(), 0..if cfg!(miri) { 24 } else { 200 })) {
        let mut interner = Interner::new();
        let mut symbols: HashMap<String, u32> = HashMap::new();
        let mut strings: Vec<String> = Vec::new();
        for op in ops {
            match op {
                Op::Intern(s) => {
                    let expected = *symbols.entry(s.clone()).or_insert_with(|| {
                        strings.push(s.clone());
                        strings.len() as u32
                    });
                    prop_assert_eq!(interner.intern(&s).to_u32(), expected);
                }
                Op::Get(s) => {
                    prop_assert_eq!(interner.get(&s).map(Symbol::to_u32), symbols.get(&s).copied());
                }
                Op::Resolve(n) => {
                    let expected = (n as usize).checked_sub(1).and_then(|i| strings.get(i));
                    let got = Symbol::from_u32(n).and_then(|symbol| interner.try_resolve(symbol));
                    prop_assert_eq!(got, expected.map(String::as_str));
                }
                Op::Trim => interner.trim(),
            }
            prop_assert_eq!(interner.len(), strings.len());
        }
        let listed: Vec<&str> = interner.iter().map(|(_, s)| s).collect();
        prop_assert_eq!(listed, strings.iter().map(String::as_str).collect::<Vec<_>>());
        let stats = interner.stats();
        prop_assert_eq!(stats.string_bytes, strings.iter().map(String::len).sum::<usize>());
        prop_assert!(stats.arena_bytes >= stats.string_bytes);
    }
}
