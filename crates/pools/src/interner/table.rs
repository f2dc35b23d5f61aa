//! String → symbol: an open-addressing hash table whose slots are atomics, so lookups take no lock.
//!
//! A slot is one `AtomicU64`: 0 when empty, otherwise the top 32 bits of the string's hash (the *tag*) over
//! the symbol's number. The home slot of a hash is its top `bits` bits, a prefix of the tag, so growing
//! rebuilds the table from the slots alone, without hashing a string again; with at most 2^32 slots
//! ([`MAX_BITS`]) the tag always holds the whole index. Collisions probe linearly. A probe compares the
//! tag first, so a string comparison happens only for a real match or a one-in-2^(32 - bits) false one.
//!
//! Slots go from empty to full once and never change again, and only the writer (holding the interner's
//! lock) fills them: it stores the slot with Release after it published the entry (`entries.rs`), and a
//! lookup loads slots with Acquire, so a reader that sees a symbol here can read its entry and bytes.
//! A table is never more than 3/4 full (or, at the 2^32-slot maximum, holds fewer than 2^32 symbols), so
//! every probe sequence reaches an empty slot and ends.

use crate::sync::{AtomicU64, Ordering};

/// log2 of the slot count of a new interner's table (32 slots, 256 bytes; 2 under loom so a model grows the
/// table after two strings).
#[cfg(not(loom))]
pub(super) const INITIAL_BITS: u32 = 5;
#[cfg(loom)]
pub(super) const INITIAL_BITS: u32 = 1;

/// The largest table: 2^32 slots, so the home index is a prefix of the 32-bit tag and the table still has
/// an empty slot when all `u32::MAX` symbols are taken.
pub(super) const MAX_BITS: u32 = 32;

/// One generation of the hash table.
#[derive(Debug)]
pub(super) struct Table {
    bits: u32,
    slots: Box<[AtomicU64]>,
}

/// The tag bits of a hash (its top 32 bits, in place).
const TAG_MASK: u64 = !0 << 32;

impl Table {
    /// An empty table of `2^bits` slots.
    pub(super) fn new(bits: u32) -> Self {
        debug_assert!((1..=MAX_BITS).contains(&bits));
        let slots = (0..slot_count(bits)).map(|_| AtomicU64::new(0)).collect();
        Self { bits, slots }
    }

    /// The smallest table size (as `bits`) that holds `strings` strings without growing.
    pub(super) fn bits_for(strings: usize) -> u32 {
        let mut bits = INITIAL_BITS;
        while bits < MAX_BITS && strings > max_load(bits) {
            bits += 1;
        }
        bits
    }

    /// Whether the table must grow before it takes its `count`-th string.
    #[inline]
    pub(super) fn must_grow_for(&self, count: u32) -> bool {
        self.bits < MAX_BITS && count as usize > max_load(self.bits)
    }

    /// The slot a hash probes first.
    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        (hash >> (64 - self.bits)) as usize
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Finds the symbol (its number) whose slot has `hash`'s tag and for which `is_match` holds, or returns
    /// the empty slot where that string would go.
    ///
    /// `is_match` receives candidate symbol numbers read from slots; their entries are published to this
    /// thread by the Acquire load of the slot.
    #[inline(always)]
    pub(super) fn find(
        &self,
        hash: u64,
        mut is_match: impl FnMut(u32) -> bool,
    ) -> Result<u32, usize> {
        let tag = hash & TAG_MASK;
        let mask = self.mask();
        let mut index = self.home(hash);
        loop {
            // Acquire: pairs with the Release store in `fill`, which the writer made after publishing the
            // symbol's entry and bytes, so `is_match` may read them.
            let slot = self.slots[index].load(Ordering::Acquire);
            if slot == 0 {
                return Err(index);
            }
            if slot & TAG_MASK == tag {
                let symbol = slot as u32;
                if is_match(symbol) {
                    return Ok(symbol);
                }
            }
            index = (index + 1) & mask;
        }
    }

    /// Fills the empty slot `index` (from [`find`](Self::find) on this table) with `symbol` under `hash`.
    ///
    /// Only the writer calls this, holding the interner's lock, after publishing the symbol's entry.
    #[inline]
    pub(super) fn fill(&self, index: usize, hash: u64, symbol: u32) {
        // Release: pairs with the Acquire in `find`: a reader that sees the symbol sees its entry, which
        // the writer published before this store.
        self.slots[index].store((hash & TAG_MASK) | u64::from(symbol), Ordering::Release);
    }

    /// A table twice this size with the same symbols, not yet shared with any reader.
    ///
    /// Only the writer calls this, holding the interner's lock.
    pub(super) fn grown(&self) -> Table {
        let grown = Table::new(self.bits + 1);
        let mask = grown.mask();
        for slot in self.slots.iter() {
            // Relaxed: slots are stored only by the writer, and the caller is the writer (its lock orders
            // every earlier store before this load).
            let slot = slot.load(Ordering::Relaxed);
            if slot == 0 {
                continue;
            }
            let mut index = grown.home(slot);
            // Relaxed, here and below: `grown` is private to the writer until it is published with Release
            // (see `Interner::insert`), which orders these stores before any reader's load.
            while grown.slots[index].load(Ordering::Relaxed) != 0 {
                index = (index + 1) & mask;
            }
            grown.slots[index].store(slot, Ordering::Relaxed);
        }
        grown
    }

    /// The bytes this table holds.
    pub(super) fn bytes(&self) -> usize {
        size_of::<Self>() + self.slots.len() * size_of::<AtomicU64>()
    }
}

/// `2^bits` as a slot count.
fn slot_count(bits: u32) -> usize {
    1usize
        .checked_shl(bits)
        .expect("a hash table larger than the address space")
}

/// The most strings a table of `2^bits` slots holds: 3/4 of its slots (rounded down: one of two slots), so
/// probes stay short and always end.
fn max_load(bits: u32) -> usize {
    let slots = 1u64 << bits;
    usize::try_from(slots * 3 / 4).unwrap_or(usize::MAX)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn growth_keeps_every_symbol_findable() {
        let hashes: Vec<u64> = (1..=100u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let mut table = Table::new(INITIAL_BITS);
        for (number, &hash) in (1u32..).zip(&hashes) {
            if table.must_grow_for(number) {
                table = table.grown();
            }
            let slot = table.find(hash, |_| false).unwrap_err();
            table.fill(slot, hash, number);
        }
        assert_eq!(table.bits, Table::bits_for(100));
        for (number, &hash) in (1u32..).zip(&hashes) {
            assert_eq!(table.find(hash, |found| found == number), Ok(number));
        }
    }

    #[test]
    fn load_stays_below_three_quarters() {
        assert_eq!(max_load(1), 1);
        assert_eq!(max_load(2), 3);
        assert_eq!(Table::bits_for(0), INITIAL_BITS);
        assert_eq!(Table::bits_for(24), 5);
        assert_eq!(Table::bits_for(25), 6);
    }
}
