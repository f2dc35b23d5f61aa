//! The read paths allocate nothing: `intern` of a string already there, `get` (present or absent),
//! `resolve`, `try_resolve` and iteration. A counting global allocator checks it, counting per thread so
//! other tests running at the same time do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pools::{Interner, Symbol};

struct CountingAllocator;

thread_local! {
    /// Allocations (including reallocations) made by this thread.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: a thread being torn down may still allocate after its locals are gone.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments, so `System`'s guarantees hold; the
// counter is a const-initialized thread-local `Cell` that never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The number of allocations `f` made on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("identifier_{i}")).collect()
}

#[test]
fn reads_and_repeated_interns_do_not_allocate() {
    let count = if cfg!(miri) { 100 } else { 5_000 };
    let strings = names(count);
    let absent = names(2 * count).split_off(count);
    let interner = Interner::new();
    let symbols: Vec<Symbol> = strings.iter().map(|s| interner.intern(s)).collect();

    let allocations = allocations_in(|| {
        for (string, &symbol) in strings.iter().zip(&symbols) {
            assert_eq!(interner.intern(string), symbol);
            assert_eq!(interner.get(string), Some(symbol));
            assert_eq!(interner.resolve(symbol), string);
            assert_eq!(interner.try_resolve(symbol), Some(string.as_str()));
        }
        for string in &absent {
            assert_eq!(interner.get(string), None);
        }
        assert_eq!(interner.iter().count(), count);
        assert_eq!(interner.len(), count);
    });
    assert_eq!(allocations, 0, "the read paths allocated");
}

#[test]
fn new_strings_share_arena_chunks() {
    let count = if cfg!(miri) { 100 } else { 5_000 };
    let strings = names(count);
    let interner = Interner::new();
    let allocations = allocations_in(|| {
        for string in &strings {
            interner.intern(string);
        }
    });
    // Arena chunks, entry segments, table doublings and the retired-table list: each grows geometrically,
    // so a few dozen allocations in all (5 000 strings: 35), not one per string.
    assert!(
        allocations <= 48 && allocations < count / 4,
        "{allocations} allocations for {count} strings"
    );
}

#[test]
fn the_allocator_counts() {
    assert_eq!(
        allocations_in(|| drop(Box::new(1u8))),
        1,
        "the counter works"
    );
}
