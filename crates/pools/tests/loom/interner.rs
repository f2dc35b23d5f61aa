//! Loom models of the interner: two threads adding the same string, lookups and `resolve` racing with an
//! `intern` that grows the hash table, a new entry segment and a new arena chunk all at once.
//!
//! Under `cfg(loom)` the interner's constants shrink: the first table has 2 slots (it holds 1 string, then
//! 3, 6, 12), the first entry segment 2 entries (then 4, 8), arena chunks 8 then 16 bytes. So the 7th string
//! grows the table from 8 to 16 slots *and* opens the third segment (indices 6..14): the models intern six
//! strings first, then race on the seventh. Strings hash with `std`'s unkeyed SipHash so every execution
//! probes the same slots (loom replays executions and rejects a model that changes between them).

use std::hash::{BuildHasherDefault, DefaultHasher};

use loom::sync::Arc;
use loom::thread;
use pools::Symbol;

/// A deterministic hasher: loom replays each execution and needs the same probes every time (the default
/// hasher is seeded randomly per interner).
type Interner = pools::Interner<BuildHasherDefault<DefaultHasher>>;

fn interner() -> Arc<Interner> {
    Arc::new(Interner::default())
}

/// The six strings interned before the race; they fill two arena chunks.
const BEFORE: [&str; 6] = ["s1", "s2", "s3", "s4", "s5", "s6"];

fn sym(value: u32) -> Symbol {
    Symbol::from_u32(value).expect("non-zero")
}

/// An interner holding [`BEFORE`] as symbols 1 to 6.
fn with_six() -> Arc<Interner> {
    let interner = interner();
    for (number, string) in (1..).zip(BEFORE) {
        assert_eq!(interner.intern(string), sym(number));
    }
    interner
}

/// Runs `check` on a thread of its own. The models keep the main thread idle: loom models `join` and the
/// interner's mutex as SeqCst operations, and a reader on the main thread that blocks in `join` would
/// thereby appear to happen before the writer's next lock, hiding the race from loom's exploration.
fn reader(
    interner: &Arc<Interner>,
    check: impl FnOnce(&Interner) + Send + 'static,
) -> thread::JoinHandle<()> {
    let interner = interner.clone();
    thread::spawn(move || check(&interner))
}

#[test]
fn same_new_string_from_two_threads_gets_one_symbol() {
    loom::model(|| {
        let interner = interner();
        interner.intern("s1");
        let other = {
            let interner = interner.clone();
            thread::spawn(move || interner.intern("new"))
        };
        let here = interner.intern("new");
        let there = other.join().unwrap();
        assert_eq!(here, there, "two symbols for one string");
        assert_eq!(here, sym(2));
        assert_eq!(interner.len(), 2);
        assert_eq!(interner.resolve(here), "new");
    });
}

#[test]
fn lookups_race_with_an_intern_that_grows_everything() {
    loom::model(|| {
        let interner = with_six();
        let writer = {
            let interner = interner.clone();
            thread::spawn(move || interner.intern("seventh"))
        };
        let reader = reader(&interner, |interner| {
            // A string interned before the race is always found, whichever table the lookup probes.
            assert_eq!(interner.get("s3"), Some(sym(3)));
            // The new one: absent, or present with its entry and bytes visible.
            if let Some(symbol) = interner.get("seventh") {
                assert_eq!(symbol, sym(7));
                assert_eq!(interner.resolve(symbol), "seventh");
            }
            // `try_resolve` of the next symbol: not yet there, or there in full.
            match interner.try_resolve(sym(7)) {
                None => {}
                Some(string) => assert_eq!(string, "seventh"),
            }
        });
        reader.join().unwrap();
        assert_eq!(writer.join().unwrap(), sym(7));
        assert_eq!(interner.get("seventh"), Some(sym(7)));
        assert_eq!(interner.len(), 7);
    });
}

#[test]
fn a_later_string_is_never_visible_before_an_earlier_one() {
    loom::model(|| {
        // Five strings: the sixth fits the 8-slot table, the seventh grows it (and opens a segment).
        let interner = interner();
        for string in &BEFORE[..5] {
            interner.intern(string);
        }
        let writer = {
            let interner = interner.clone();
            thread::spawn(move || {
                interner.intern("sixth");
                interner.intern("seventh");
            })
        };
        let reader = reader(&interner, |interner| {
            let later = interner.get("seventh");
            let earlier = interner.get("sixth");
            if later.is_some() {
                assert_eq!(
                    earlier,
                    Some(sym(6)),
                    "found the 7th string but not the 6th"
                );
            }
            if let Some(symbol) = later {
                assert_eq!(interner.resolve(symbol), "seventh");
            }
        });
        reader.join().unwrap();
        writer.join().unwrap();
    });
}

#[test]
fn resolve_races_with_the_first_intern_of_a_segment() {
    loom::model(|| {
        // Two strings fill the first segment (2 entries); the third opens the second segment and a new arena
        // chunk, and fits the 4-slot table (3 strings), so this model isolates the segment and the chunk.
        let interner = interner();
        interner.intern("ab");
        interner.intern("cdef");
        let writer = {
            let interner = interner.clone();
            thread::spawn(move || interner.intern("ghijk"))
        };
        let reader = reader(&interner, |interner| {
            if interner.len() == 3 {
                // `len` is a plain count (Relaxed): seeing 3 must still make `try_resolve` safe and right.
                assert_eq!(interner.try_resolve(sym(3)), Some("ghijk"));
            }
            let listed: Vec<&str> = interner.iter().map(|(_, s)| s).collect();
            assert!(
                listed == ["ab", "cdef"] || listed == ["ab", "cdef", "ghijk"],
                "{listed:?}"
            );
        });
        reader.join().unwrap();
        assert_eq!(writer.join().unwrap(), sym(3));
    });
}

#[test]
fn two_writers_and_a_reader() {
    loom::model(|| {
        // Three strings fill the 4-slot table (it holds 3): the first writer grows it to 8 slots, the
        // second fills the new table, while the reader may probe either table.
        let interner = interner();
        for string in &BEFORE[..3] {
            interner.intern(string);
        }
        let writers: Vec<_> = ["x", "y"]
            .into_iter()
            .map(|string| {
                let interner = interner.clone();
                thread::spawn(move || (string, interner.intern(string)))
            })
            .collect();
        let reader = reader(&interner, |interner| {
            for string in ["x", "y"] {
                if let Some(symbol) = interner.get(string) {
                    assert_eq!(interner.resolve(symbol), string);
                }
            }
            assert_eq!(interner.get("s2"), Some(sym(2)));
        });
        reader.join().unwrap();
        let mut numbers = Vec::new();
        for writer in writers {
            let (string, symbol) = writer.join().unwrap();
            assert_eq!(interner.resolve(symbol), string);
            numbers.push(symbol.to_u32());
        }
        numbers.sort_unstable();
        assert_eq!(numbers, [4, 5]);
        assert_eq!(interner.len(), 5);
    });
}
