//! A concurrent string interner whose reads take no lock: [`Interner`] and [`Symbol`].
//!
//! # Design
//!
//! Three structures, one file each:
//!
//! * **Arena** (`interner/arena.rs`): the strings' bytes, copied one after another into chunks that
//!   double from 1 KiB to 64 KiB; a string longer than 16 KiB gets a chunk of its own. Chunks never move or
//!   free while the interner is shared, which is what lets [`Interner::resolve`] hand out a `&str` that lives
//!   as long as `&self`.
//! * **Entries** (`interner/entries.rs`): symbol → string, a segmented array of `(pointer, length)` entries
//!   whose segments double in size (32, 64, 128, ... entries), so it grows without moving an entry, and a
//!   published length `len`. Symbol `n` is entry `n - 1`.
//! * **Table** (`interner/table.rs`): string → symbol, open addressing with linear probing over `AtomicU64`
//!   slots that pack the top 32 bits of the hash over the symbol's number, so a probe compares strings only
//!   when the tags match. It doubles when it would pass 3/4 full; readers find it through an `AtomicPtr`.
//!
//! **Reads take no lock and make no read-modify-write.** `resolve` is an Acquire load of `len`, a bounds
//! check, a Relaxed load of the segment pointer and a 16-byte read of the entry. `get`, and `intern` of a
//! string already there, hash the string (foldhash by default), load the table pointer (Acquire) and probe
//! slots (Acquire) until a tag matches and the bytes compare equal, or an empty slot proves it absent. Under
//! contention these are loads of cache lines nobody writes, so readers scale with threads (`lasso`'s
//! `ThreadedRodeo` takes a shard lock, a read-modify-write, on every call).
//!
//! **Writers (new strings) serialize on one `Mutex`.** Under it, `intern` looks the string up again in the
//! current table (another thread may have added it since the lock-free miss: this is why two threads
//! interning the same string get one symbol), then, in this order:
//!
//! 1. copies the bytes into the arena;
//! 2. if the table would pass 3/4 full, builds a table twice the size from the old slots (the home slot is a
//!    prefix of the stored tag, so nothing is hashed again), publishes it with a **Release** store of the
//!    table pointer, and keeps the old table in a retired list;
//! 3. writes the entry and publishes it with a **Release** store of `len = n`;
//! 4. fills the empty slot found in step 2's table with a **Release** store of `(tag, n)`.
//!
//! Everything that can fail happens before step 3 publishes anything, so a panic (an allocation failure)
//! never leaves a symbol that resolves but cannot be found.
//!
//! # Orderings: each pair
//!
//! * `len` store (Release, step 3) → `len` load in `resolve`, `try_resolve`, `iter` (Acquire): a reader that
//!   sees `len > i` sees entry `i`, its segment pointer, and the bytes written in step 1.
//! * Slot store (Release, step 4) → slot load in every probe (Acquire): a reader that finds symbol `n` in the
//!   table sees entry `n - 1` and its bytes, and (because step 3 came before step 4) any later `len` load it
//!   makes returns at least `n`, so `resolve` of a symbol just returned by `get` never fails.
//! * Table pointer store (Release, step 2) → table pointer load in `get`/`intern` (Acquire): a reader of the
//!   new table sees the slots copied into it.
//! * Segment pointers are stored and loaded Relaxed: a reader only follows one after an Acquire above that
//!   synchronized with a Release made after the pointer was stored, so happens-before already delivers it.
//! * Under the lock the writer reads the table pointer, `len` and slots Relaxed: only writers store them, and
//!   the mutex orders one writer after the previous one.
//!
//! A lookup that races with a table switch may probe the old table and miss a string added after the
//! switch; it returns `None` for a string that was being added concurrently, which is a correct answer, and
//! `intern` then takes the lock and finds it. Once `intern` has returned, every lookup that happens after it
//! finds the string.
//!
//! # Memory
//!
//! Per string: its bytes in the arena, a 16-byte entry, and 8 bytes of table slot at a load between 3/8
//! and 3/4 (11–22 bytes). Retired tables are not freed while the interner is shared (a reader may still be
//! probing one, and tracking readers would cost the read path an atomic read-modify-write or an epoch pin):
//! they are 2^k slots each for every size below the current one, so together **less than the current
//! table**. [`Interner::trim`] (`&mut self`, so no reader is left) frees them and gives back the unused
//! tail of the current arena chunk. The arena wastes less than 16 KiB per chunk (a string that does not fit
//! is at most 16 KiB, or it would have its own chunk). [`Interner::stats`] reports all of it.
//!
//! # Symbols from another interner
//!
//! A symbol is a number; an interner cannot tell its own from another's. One above [`Interner::len`] makes
//! `resolve` panic and `try_resolve` return `None`; one in range names whichever string this interner gave
//! that number. Either way nothing reads out of bounds.

mod arena;
mod entries;
#[cfg(feature = "serde")]
mod serialization;
mod symbol;
mod table;

use core::fmt;
use core::hash::{BuildHasher, Hasher};
use core::iter::FusedIterator;
use core::ptr::NonNull;

use crate::error::InternError;
use crate::sync::{AtomicPtr, Mutex, Ordering, lock};

use arena::Arena;
use entries::{Entries, Entry};
pub use symbol::Symbol;
use table::Table;

/// Maps strings to [`Symbol`]s and back, from any number of threads; reads take no lock.
///
/// `intern` returns the string's symbol, adding it if it is new; `resolve` turns a symbol back into the
/// `&str`, which lives as long as the borrow of the interner. Symbols are numbered 1, 2, 3, ... in the order
/// strings were first interned. `get`, `resolve` and `intern` of a string already present take no lock and
/// make no atomic read-modify-write; adding a new string takes one lock shared by all writers. The design
/// and every memory ordering are explained in the design note `docs/pools.md` and at the top of
/// `src/interner.rs`.
///
/// `S` hashes strings: [`foldhash`]'s fast, randomly seeded hasher by default; choose another with
/// [`with_hasher`](Self::with_hasher) (a keyed hasher such as `std`'s `RandomState` if strings come from an
/// adversary and foldhash's speed matters less than DoS resistance).
///
/// ```
/// use pools::Interner;
///
/// let interner = Interner::new();
/// let a = interner.intern("alpha");
/// let b = interner.intern("beta");
/// assert_eq!(interner.intern("alpha"), a);
/// assert_eq!(interner.get("beta"), Some(b));
/// assert_eq!(interner.get("gamma"), None);
/// assert_eq!(interner.resolve(a), "alpha");
/// assert_eq!(interner.len(), 2);
///
/// // Shared between threads: every thread gets the same symbol for the same string.
/// std::thread::scope(|scope| {
///     scope.spawn(|| assert_eq!(interner.intern("alpha"), a));
///     scope.spawn(|| interner.intern("delta"));
/// });
/// assert_eq!(interner.len(), 3);
/// ```
pub struct Interner<S = foldhash::fast::RandomState> {
    /// Symbol → string (read lock-free).
    entries: Entries,
    /// String → symbol: the current table (read lock-free; replaced, never freed, by writers).
    table: AtomicPtr<Table>,
    hasher: S,
    /// The most strings this interner accepts (`u32::MAX`, lower in the crate's own tests).
    max_len: u32,
    /// Serializes writers; holds what only they touch.
    writer: Mutex<Writer>,
}

/// The writers' state, behind the interner's lock.
#[derive(Debug)]
struct Writer {
    arena: Arena,
    /// Tables replaced by larger ones; a reader may still be probing them until `trim` or drop.
    retired: RetiredTables,
    /// The sum of the interned strings' lengths.
    string_bytes: usize,
}

/// Tables a reader may still be probing, kept as raw pointers (a `Box` would assert unique access).
#[derive(Debug, Default)]
struct RetiredTables(Vec<NonNull<Table>>);

// SAFETY: the retired tables are owned allocations of atomics, with no thread affinity; moving the list to
// another thread moves that ownership.
unsafe impl Send for RetiredTables {}

impl RetiredTables {
    fn bytes(&self) -> usize {
        self.0
            .iter()
            // SAFETY: every pointer here is a live table (freed only by `free_all`).
            .map(|table| unsafe { table.as_ref() }.bytes())
            .sum()
    }

    /// Frees every retired table.
    ///
    /// # Safety
    ///
    /// No thread may still be reading them: the caller has `&mut Interner`.
    unsafe fn free_all(&mut self) {
        for table in self.0.drain(..) {
            // SAFETY: each came from `Box::into_raw` in `Interner::insert` and is freed once (drained); the
            // caller guarantees no reader is left.
            drop(unsafe { Box::from_raw(table.as_ptr()) });
        }
    }
}

/// How many bytes an [`Interner`] holds and for what, from [`Interner::stats`].
///
/// ```
/// use pools::Interner;
///
/// let interner = Interner::new();
/// interner.intern("hello");
/// let stats = interner.stats();
/// assert_eq!((stats.strings, stats.string_bytes), (1, 5));
/// assert!(stats.arena_bytes >= 5);
/// assert_eq!(stats.bytes_held(), stats.arena_bytes + stats.index_bytes + stats.retired_bytes);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct InternerStats {
    /// The number of distinct strings ([`Interner::len`]).
    pub strings: usize,
    /// The sum of their lengths in bytes.
    pub string_bytes: usize,
    /// Bytes of arena chunks held, used or not (at least `string_bytes`).
    pub arena_bytes: usize,
    /// Bytes of the symbol → string entries and the current hash table.
    pub index_bytes: usize,
    /// Bytes of replaced hash tables kept until [`Interner::trim`] (always less than the current table).
    pub retired_bytes: usize,
}

impl InternerStats {
    /// Everything the interner holds: arena, index and retired tables.
    #[must_use]
    pub fn bytes_held(&self) -> usize {
        self.arena_bytes + self.index_bytes + self.retired_bytes
    }
}

impl Interner {
    /// An empty interner with the default hasher.
    ///
    /// It allocates its first hash table (256 bytes); the arena and the entries wait for the first string.
    #[must_use]
    pub fn new() -> Self {
        Self::with_hasher(Default::default())
    }

    /// An empty interner that holds `strings` strings before its hash table or entries grow.
    ///
    /// ```
    /// let interner = pools::Interner::with_capacity(10_000);
    /// let before = interner.stats().index_bytes;
    /// for i in 0..10_000 {
    ///     interner.intern(&i.to_string());
    /// }
    /// assert_eq!(interner.stats().index_bytes, before);
    /// assert_eq!(interner.stats().retired_bytes, 0);
    /// ```
    #[must_use]
    pub fn with_capacity(strings: usize) -> Self {
        Self::with_capacity_and_hasher(strings, Default::default())
    }
}

impl<S: Default> Default for Interner<S> {
    /// An empty interner with `S::default()` as its hasher.
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

impl<S> Interner<S> {
    /// An empty interner that hashes with `hasher`.
    ///
    /// ```
    /// let interner = pools::Interner::with_hasher(std::hash::RandomState::new());
    /// let symbol = interner.intern("keyed");
    /// assert_eq!(interner.resolve(symbol), "keyed");
    /// ```
    #[must_use]
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_capacity_and_hasher(0, hasher)
    }

    /// An empty interner that hashes with `hasher` and holds `strings` strings before it grows.
    #[must_use]
    pub fn with_capacity_and_hasher(strings: usize, hasher: S) -> Self {
        Self::with_limit(strings, hasher, u32::MAX)
    }

    /// The constructor, with a symbol limit that the crate's tests lower to reach exhaustion.
    fn with_limit(strings: usize, hasher: S, max_len: u32) -> Self {
        let entries = Entries::new();
        // SAFETY: the entries are not shared yet, so no push can run concurrently.
        unsafe { entries.reserve(strings.min(max_len as usize)) };
        let table = Box::into_raw(Box::new(Table::new(Table::bits_for(strings))));
        Self {
            entries,
            table: AtomicPtr::new(table),
            hasher,
            max_len,
            writer: Mutex::new(Writer {
                arena: Arena::new(),
                retired: RetiredTables::default(),
                string_bytes: 0,
            }),
        }
    }

    /// The hasher the interner hashes strings with.
    pub fn hasher(&self) -> &S {
        &self.hasher
    }

    /// The string `symbol` names.
    ///
    /// Takes no lock: an Acquire load, a bounds check and two plain loads.
    ///
    /// ```
    /// let interner = pools::Interner::new();
    /// let symbol = interner.intern("résumé");
    /// assert_eq!(interner.resolve(symbol), "résumé");
    /// ```
    ///
    /// # Panics
    ///
    /// If `symbol` is above [`len`](Self::len): it came from another interner (or was made with
    /// [`Symbol::from_u32`]). A symbol from another interner that happens to be in range is not detected:
    /// it resolves to the string this interner numbered the same. Use [`try_resolve`](Self::try_resolve) to
    /// get `None` instead of a panic.
    #[inline]
    #[track_caller]
    pub fn resolve(&self, symbol: Symbol) -> &str {
        match self.try_resolve(symbol) {
            Some(string) => string,
            None => foreign_symbol(symbol, self.len()),
        }
    }

    /// The string `symbol` names, or `None` if it is above [`len`](Self::len) (a symbol of another interner).
    ///
    /// An in-range symbol of another interner returns this interner's string of that number.
    ///
    /// ```
    /// use pools::{Interner, Symbol};
    ///
    /// let interner = Interner::new();
    /// let symbol = interner.intern("one");
    /// assert_eq!(interner.try_resolve(symbol), Some("one"));
    /// assert_eq!(interner.try_resolve(Symbol::from_u32(2).unwrap()), None);
    /// ```
    #[inline]
    pub fn try_resolve(&self, symbol: Symbol) -> Option<&str> {
        let index = symbol.to_u32() - 1;
        if index < self.entries.len_acquire() {
            // SAFETY: `index` is below a length loaded with Acquire, so the entry is published to this thread.
            Some(unsafe { self.string(index) })
        } else {
            None
        }
    }

    /// The string of entry `index`, borrowed for as long as `self`.
    ///
    /// # Safety
    ///
    /// As for [`Entries::get`]: the entry is published to this thread.
    #[inline(always)]
    unsafe fn string(&self, index: u32) -> &str {
        // SAFETY: the caller's contract is `get`'s.
        let Entry { ptr, len } = unsafe { self.entries.get(index) };
        // SAFETY: the entry points at `len` bytes copied from a `&str` (valid UTF-8) into the arena (or is
        // the empty string's dangling, aligned pointer). Those bytes were written before the entry was
        // published and are never written again; the arena neither frees nor moves them while `&self`
        // lives (only `drop` and `trim` do, and both need `&mut self`).
        unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(ptr, len)) }
    }

    /// The number of distinct strings interned.
    ///
    /// Another thread may add strings at any time, so this is a moment's picture; it never decreases.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len_relaxed() as usize
    }

    /// Whether no string was interned yet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every symbol and its string, in symbol order (the order strings were first interned).
    ///
    /// The iterator covers the strings interned before the call; strings added meanwhile are not included.
    ///
    /// ```
    /// let interner = pools::Interner::new();
    /// interner.intern("x");
    /// interner.intern("y");
    /// let strings: Vec<&str> = interner.iter().map(|(_, string)| string).collect();
    /// assert_eq!(strings, ["x", "y"]);
    /// ```
    pub fn iter(&self) -> InternerIter<'_> {
        InternerIter {
            entries: &self.entries,
            next: 0,
            end: self.entries.len_acquire(),
        }
    }

    /// How many strings and bytes the interner holds, and where the bytes go.
    ///
    /// Takes the writers' lock for a consistent picture.
    pub fn stats(&self) -> InternerStats {
        let writer = lock(&self.writer);
        // Relaxed: under the lock the table pointer is the last one a writer stored (see the module docs).
        // SAFETY: the current table lives until `trim` or drop, both `&mut self`.
        let table = unsafe { &*self.table.load(Ordering::Relaxed) };
        InternerStats {
            strings: self.len(),
            string_bytes: writer.string_bytes,
            arena_bytes: writer.arena.bytes(),
            index_bytes: self.entries.bytes() + table.bytes(),
            retired_bytes: writer.retired.bytes(),
        }
    }

    /// Frees what the interner holds but does not need: the hash tables replaced by larger ones and the
    /// unused tail of the current arena chunk.
    ///
    /// Takes `&mut self`, so no `&str` from [`resolve`](Self::resolve) is alive and no thread is reading:
    /// the arena may move its last chunk (the allocator decides), and the entries follow it. Symbols stay
    /// the same.
    ///
    /// ```
    /// let mut interner = pools::Interner::new();
    /// for i in 0..1_000 {
    ///     interner.intern(&format!("name{i}"));
    /// }
    /// let before = interner.stats();
    /// interner.trim();
    /// let after = interner.stats();
    /// assert_eq!(after.retired_bytes, 0);
    /// assert!(after.bytes_held() < before.bytes_held());
    /// assert_eq!(interner.resolve(interner.get("name999").unwrap()), "name999");
    /// ```
    pub fn trim(&mut self) {
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: `&mut self`: no other thread is probing a table.
        unsafe { writer.retired.free_all() };
        if let Some(moved) = writer.arena.shrink_current() {
            // SAFETY: the arena copied the chunk's `moved.len` bytes to `moved.new_start`; no string before
            // `moved.first_index` points into the chunk.
            unsafe {
                self.entries.rebase(
                    moved.first_index,
                    moved.old_start,
                    moved.len,
                    moved.new_start,
                );
            }
        }
    }
}

impl<S: BuildHasher> Interner<S> {
    /// The hash of a string: its bytes only (no length suffix: the table holds nothing but strings).
    #[inline(always)]
    fn hash(&self, string: &str) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(string.as_bytes());
        hasher.finish()
    }

    /// Looks `string` up without the lock.
    #[inline(always)]
    fn lookup(&self, string: &str, hash: u64) -> Option<Symbol> {
        // Acquire: pairs with the Release store of a grown table in `insert`, so the slots copied into it
        // are visible.
        let table = self.table.load(Ordering::Acquire);
        // SAFETY: tables are freed only by `trim` and drop (`&mut self`); a replaced one is retired, not
        // freed, so this one outlives the call.
        let table = unsafe { &*table };
        table
            .find(hash, |number| {
                // SAFETY: `number` was loaded with Acquire from a slot, which the writer stored after
                // publishing its entry (`Table::find`).
                unsafe { self.string(number - 1) }.as_bytes() == string.as_bytes()
            })
            .ok()
            .and_then(Symbol::from_u32)
    }

    /// The symbol of `string`, adding the string if it is new.
    ///
    /// Takes no lock if the string is already interned; otherwise takes the writers' lock once.
    ///
    /// ```
    /// let interner = pools::Interner::new();
    /// let symbol = interner.intern("same");
    /// assert_eq!(interner.intern("same"), symbol);
    /// assert_ne!(interner.intern("other"), symbol);
    /// ```
    ///
    /// # Panics
    ///
    /// If the interner already holds `u32::MAX` strings, every symbol there is (see
    /// [`try_intern`](Self::try_intern) for an error instead).
    #[inline]
    #[track_caller]
    pub fn intern(&self, string: &str) -> Symbol {
        match self.try_intern(string) {
            Ok(symbol) => symbol,
            Err(error) => panic!("{error}"),
        }
    }

    /// The symbol of `string`, adding the string if it is new, or an error if no symbol is left for it.
    ///
    /// # Errors
    ///
    /// [`InternError::SymbolsExhausted`] if the string is new and the interner already holds `u32::MAX`
    /// strings; nothing changes.
    #[inline]
    pub fn try_intern(&self, string: &str) -> Result<Symbol, InternError> {
        let hash = self.hash(string);
        match self.lookup(string, hash) {
            Some(symbol) => Ok(symbol),
            None => self.insert(string, hash),
        }
    }

    /// The symbol of `string` if it was interned; never adds it, never allocates, takes no lock.
    ///
    /// ```
    /// let interner = pools::Interner::new();
    /// assert_eq!(interner.get("absent"), None);
    /// let symbol = interner.intern("present");
    /// assert_eq!(interner.get("present"), Some(symbol));
    /// ```
    #[inline]
    pub fn get(&self, string: &str) -> Option<Symbol> {
        self.lookup(string, self.hash(string))
    }

    /// Whether `string` was interned.
    #[inline]
    pub fn contains(&self, string: &str) -> bool {
        self.get(string).is_some()
    }

    /// The slow path of `intern`: under the lock, find the string again or add it.
    #[cold]
    #[inline(never)]
    fn insert(&self, string: &str, hash: u64) -> Result<Symbol, InternError> {
        let mut writer = lock(&self.writer);
        // Relaxed: only writers store the table pointer, and the lock orders us after the last one.
        let mut table_ptr = self.table.load(Ordering::Relaxed);
        // SAFETY: as in `lookup`: tables outlive `&self`.
        let mut table = unsafe { &*table_ptr };
        let mut slot = match table.find(hash, |number| {
            // SAFETY: as in `lookup`.
            unsafe { self.string(number - 1) }.as_bytes() == string.as_bytes()
        }) {
            Ok(number) => {
                return Ok(Symbol::from_u32(number).expect("slots hold non-zero symbols"));
            }
            Err(slot) => slot,
        };
        let index = self.entries.len_relaxed();
        if index >= self.max_len {
            return Err(InternError::SymbolsExhausted {
                len: index as usize,
            });
        }
        let number = index + 1;

        // 1. The bytes.
        let ptr = writer.arena.alloc(string.as_bytes(), index);
        // 2. Room in the table, before anything is published, so nothing below can fail.
        if table.must_grow_for(number) {
            let grown = Box::into_raw(Box::new(table.grown()));
            // Release: pairs with the Acquire in `lookup`, so a reader of the new table sees its slots.
            self.table.store(grown, Ordering::Release);
            writer
                .retired
                .0
                .push(NonNull::new(table_ptr).expect("table pointers are never null"));
            table_ptr = grown;
            // SAFETY: just allocated, freed only by `trim`/drop.
            table = unsafe { &*table_ptr };
            slot = table
                .find(hash, |_| false)
                .expect_err("a string not in the old table is not in its copy");
        }
        // 3. The entry, published by `len` (Release inside `push`).
        // SAFETY: the lock serializes pushes, and `index < max_len <= u32::MAX`.
        let pushed = unsafe {
            self.entries.push(Entry {
                ptr,
                len: string.len(),
            })
        };
        debug_assert_eq!(pushed, index);
        writer.string_bytes += string.len();
        // 4. The slot (Release inside `fill`), after the entry: a reader that finds the symbol can resolve it.
        table.fill(slot, hash, number);
        Ok(Symbol::from_u32(number).expect("number = index + 1 > 0"))
    }
}

/// `resolve`'s panic, out of line so the fast path stays small.
#[cold]
#[inline(never)]
#[track_caller]
fn foreign_symbol(symbol: Symbol, len: usize) -> ! {
    panic!(
        "symbol {} is not from this interner: it holds {len} strings (a symbol from another interner?)",
        symbol.to_u32()
    )
}

impl<S> Drop for Interner<S> {
    fn drop(&mut self) {
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: `&mut self`: no reader is left.
        unsafe { writer.retired.free_all() };
        // Relaxed: `&mut self` orders every store before this load.
        let table = self.table.load(Ordering::Relaxed);
        // SAFETY: the current table came from `Box::into_raw` (constructor or `insert`), is not in the retired
        // list, and is freed once, here. The arena and entries free themselves.
        drop(unsafe { Box::from_raw(table) });
    }
}

impl<S> fmt::Debug for Interner<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interner")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<'a, S> IntoIterator for &'a Interner<S> {
    type Item = (Symbol, &'a str);
    type IntoIter = InternerIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, S: BuildHasher + Default> FromIterator<&'a str> for Interner<S> {
    /// An interner holding each string once, numbered in the order first seen.
    ///
    /// # Panics
    ///
    /// If the iterator yields more than `u32::MAX` distinct strings.
    fn from_iter<I: IntoIterator<Item = &'a str>>(strings: I) -> Self {
        let strings = strings.into_iter();
        let interner = Self::with_capacity_and_hasher(strings.size_hint().0, S::default());
        for string in strings {
            interner.intern(string);
        }
        interner
    }
}

impl<'a, S: BuildHasher> Extend<&'a str> for Interner<S> {
    /// Interns each string.
    ///
    /// # Panics
    ///
    /// If the interner runs out of symbols.
    fn extend<I: IntoIterator<Item = &'a str>>(&mut self, strings: I) {
        for string in strings {
            self.intern(string);
        }
    }
}

/// The symbols and strings of an [`Interner`] in symbol order, from [`Interner::iter`].
#[derive(Debug, Clone)]
pub struct InternerIter<'a> {
    entries: &'a Entries,
    /// The next index to yield.
    next: u32,
    /// One past the last index to yield: a `len` loaded with Acquire when the iterator was made.
    end: u32,
}

impl<'a> InternerIter<'a> {
    /// The string at `index`, borrowed for `'a`.
    fn item(&self, index: u32) -> (Symbol, &'a str) {
        debug_assert!(index < self.end);
        // SAFETY: `index < end`, a length loaded with Acquire, so the entry is published to this thread.
        let Entry { ptr, len } = unsafe { self.entries.get(index) };
        // SAFETY: as in `Interner::string`: valid UTF-8 that lives and stays put while the interner is
        // borrowed for `'a`.
        let string =
            unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(ptr, len)) };
        (Symbol::from_u32(index + 1).expect("index + 1 > 0"), string)
    }
}

impl<'a> Iterator for InternerIter<'a> {
    type Item = (Symbol, &'a str);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.next == self.end {
            return None;
        }
        let item = self.item(self.next);
        self.next += 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = (self.end - self.next) as usize;
        (remaining, Some(remaining))
    }
}

impl DoubleEndedIterator for InternerIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.next == self.end {
            return None;
        }
        let item = self.item(self.end - 1);
        self.end -= 1;
        Some(item)
    }
}

impl ExactSizeIterator for InternerIter<'_> {}

impl FusedIterator for InternerIter<'_> {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn exhausted_symbols_are_an_error_and_change_nothing() {
        let interner: Interner = Interner::with_limit(0, Default::default(), 3);
        let symbols: Vec<Symbol> = ["a", "b", "c"]
            .into_iter()
            .map(|s| interner.intern(s))
            .collect();
        assert_eq!(
            interner.try_intern("d"),
            Err(InternError::SymbolsExhausted { len: 3 })
        );
        assert_eq!(
            interner.try_intern("b"),
            Ok(symbols[1]),
            "existing strings still intern"
        );
        assert_eq!(interner.len(), 3);
        assert_eq!(interner.get("d"), None);
        assert_eq!(interner.stats().string_bytes, 3);
    }

    #[test]
    fn retired_tables_hold_fewer_slots_than_the_current_one() {
        let interner = Interner::new();
        for i in 0..if cfg!(miri) { 500 } else { 20_000 } {
            interner.intern(&i.to_string());
        }
        let writer = lock(&interner.writer);
        // SAFETY: the current table lives as long as the interner.
        let current = unsafe { &*interner.table.load(Ordering::Relaxed) };
        let header = size_of::<Table>();
        let retired = writer.retired.0.len();
        assert!(
            retired >= if cfg!(miri) { 5 } else { 10 },
            "{retired} growths"
        );
        let retired_slot_bytes = writer.retired.bytes() - retired * header;
        assert!(retired_slot_bytes < current.bytes() - header);
    }

    #[test]
    #[should_panic(expected = "the interner is full")]
    fn intern_panics_when_exhausted() {
        let interner: Interner = Interner::with_limit(0, Default::default(), 1);
        interner.intern("a");
        interner.intern("b");
    }
}
