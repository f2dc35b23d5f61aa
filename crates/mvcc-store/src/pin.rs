//! Pins: how a snapshot keeps the versions it can see, without a lock.
//!
//! A snapshot claims a *slot* and writes its version there; garbage collection reads every slot and never
//! frees a version that the smallest pinned version (the *watermark*) might read. Slots live in blocks of
//! cache-padded words, linked as the number of snapshots held at once grows, and are never freed while the
//! store lives. A thread starts its search at its own place in the block, so threads taking snapshots at
//! once write to different cache lines: taking a snapshot is a load of the visible version, one CAS on a slot
//! and one load of the floor; dropping it is one store.
//!
//! The race to close is a snapshot that reads the visible version `v`, then stalls before its slot shows
//! `v`, while the collector computes a watermark above `v` from slots that do not show it yet. The collector
//! first raises the *floor* to the visible version it starts from, then reads the slots; the snapshot first
//! writes its slot, then reads the floor, and starts over with a newer version if the floor is above its own.
//! Both sides are a store, a `SeqCst` fence, and a load of the other side's word (a Dekker handshake): the
//! two fences are ordered in the single total order of `SeqCst` operations, and whichever comes second makes
//! its side's load see the other side's store. So either the collector's slot read sees the snapshot's slot
//! (and the watermark is at most `v`), or the snapshot's floor read sees the collector's floor (and the
//! snapshot moves up). Every snapshot that exists or will exist is therefore at or above every watermark the
//! collector has computed. (`SeqCst` on the four accesses instead of fences would be as correct in the C++
//! model, but loom models `SeqCst` accesses as acquire/release only, and finds the race; with fences, the
//! model checks the code that runs.) This is the announce-then-validate pattern of hazard pointers
//! (Michael, "Hazard Pointers: Safe Memory Reclamation for Lock-Free Objects", IEEE TPDS 2004), applied to a
//! version number instead of a pointer.

use std::ptr;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicPtr, AtomicU64, Ordering, fence};

/// Slots per block. Loom models use 2, so that a third snapshot held at once makes the list grow.
pub(crate) const SLOTS_PER_BLOCK: usize = if cfg!(loom) { 2 } else { 32 };

/// A slot's value when no snapshot holds it.
const FREE: u64 = u64::MAX;

struct Block {
    slots: [CachePadded<AtomicU64>; SLOTS_PER_BLOCK],
    /// The next block, or null; set once, by a CAS from null.
    next: AtomicPtr<Block>,
}

impl Block {
    fn new() -> Self {
        Block {
            slots: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(FREE))),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn next(&self) -> Option<&Block> {
        // Acquire: pairs with the AcqRel CAS that linked the block, so its slots' initial values are visible.
        let next = self.next.load(Ordering::Acquire);
        // SAFETY: a linked block is never freed before the `Pins` that owns it.
        unsafe { next.as_ref() }
    }
}

/// The pinned versions of a store's snapshots.
pub(crate) struct Pins {
    first: Block,
    /// No new pin may be below this: the visible version a collector started from (see the module docs).
    /// Read by every snapshot and written rarely: on a cache line of its own, away from the writer's words.
    floor: CachePadded<AtomicU64>,
}

/// What `Pins::watermark` found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watermark {
    /// No snapshot, now or later, is below this version: versions older than the newest one at or below it
    /// may be cut.
    pub(crate) versions: u64,
    /// The smallest version pinned when the slots were read (`u64::MAX`: none).
    pub(crate) min_pinned: u64,
}

/// A claimed slot and the version it pins; dropping it releases the slot.
pub(crate) struct Pin<'a> {
    slot: &'a AtomicU64,
    version: u64,
}

impl Pin<'_> {
    /// The pinned version.
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version
    }
}

impl Drop for Pin<'_> {
    #[inline]
    fn drop(&mut self) {
        // Release: pairs with the SeqCst (so also Acquire) slot loads of `watermark`: a collector that sees
        // the slot free also sees every read this snapshot made, so it frees nothing under them.
        self.slot.store(FREE, Ordering::Release);
    }
}

impl Pins {
    pub(crate) fn new() -> Self {
        Pins {
            first: Block::new(),
            floor: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Pins the version in `visible` (the store's published version) and returns the pin.
    #[inline]
    pub(crate) fn pin(&self, visible: &AtomicU64) -> Pin<'_> {
        // Acquire: pairs with the Release (SeqCst) store that published the version, so every version node
        // of commits up to it is visible to this snapshot's reads.
        let mut version = visible.load(Ordering::Acquire);
        let slot = self.claim(version);
        loop {
            // SeqCst fence: the snapshot's half of the handshake with `watermark` (module docs): the slot write
            // above comes before the floor read below for any collector whose fence comes later.
            fence(Ordering::SeqCst);
            // Acquire: pairs with the Release half of the collector's `fetch_max`, so the unlinks the writer
            // made before it are visible to this snapshot (see `watermark`).
            let floor = self.floor.load(Ordering::Acquire);
            if floor <= version {
                return Pin { slot, version };
            }
            // A collector started from a newer version and may not have seen this slot: move up to a version
            // at or above its floor. Acquire as above; the floor was itself read from `visible` by the
            // collector before it stored it, so this load returns at least `floor` (read-read coherence
            // through the floor's happens-before edge).
            version = visible.load(Ordering::Acquire);
            // Relaxed: the fence at the top of the loop orders it before the next floor read.
            slot.store(version, Ordering::Relaxed);
        }
    }

    /// Claims a free slot, writing `version` to it: the thread's own slot of the first block when it is free
    /// (the common case, kept small so it inlines), else the first free one found.
    #[inline]
    fn claim(&self, version: u64) -> &AtomicU64 {
        let start = crate::sync::thread_hint() % SLOTS_PER_BLOCK;
        let slot = &*self.first.slots[start];
        if Self::try_claim(slot, version) {
            return slot;
        }
        self.claim_elsewhere(version, start)
    }

    /// Claims `slot` for `version` if it is free.
    #[inline]
    fn try_claim(slot: &AtomicU64, version: u64) -> bool {
        // Relaxed peek: skip a taken slot without a locked instruction; the CAS decides. Relaxed CAS: the
        // fence in `pin` orders it before the floor read (module docs). A slot freed by an earlier snapshot
        // was freed with Release; nothing this snapshot reads depends on that one's reads.
        slot.load(Ordering::Relaxed) == FREE
            && slot
                .compare_exchange(FREE, version, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// The slow path of `claim`: every slot of every block, from the thread's place on, growing the list
    /// when all are taken. (Out of line: inlined, the compiler unrolled the scan into the fast path and
    /// made every snapshot pay for it, measured at about 170 instructions.)
    #[cold]
    #[inline(never)]
    fn claim_elsewhere(&self, version: u64, start: usize) -> &AtomicU64 {
        let mut block = &self.first;
        loop {
            for offset in 0..SLOTS_PER_BLOCK {
                let slot = &*block.slots[(start + offset) % SLOTS_PER_BLOCK];
                if Self::try_claim(slot, version) {
                    return slot;
                }
            }
            block = match block.next() {
                Some(next) => next,
                None => self.grow(block),
            };
        }
    }

    /// Links a new block after `last` (or returns the one another thread linked first).
    #[cold]
    fn grow<'a>(&'a self, last: &'a Block) -> &'a Block {
        let fresh = Box::into_raw(Box::new(Block::new()));
        // AcqRel: Release publishes the fresh block's slots to readers of `next`; Acquire on failure makes
        // the winner's block visible.
        match last.next.compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: just linked; blocks live as long as `self`.
            Ok(_) => unsafe { &*fresh },
            Err(winner) => {
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: the winner's block is linked and lives as long as `self`.
                unsafe { &*winner }
            }
        }
    }

    /// The watermark: a version at or below every snapshot that exists now or will exist, computed from the
    /// store's visible version; and the smallest version pinned during the scan (`u64::MAX` if none). Only
    /// the writer calls it (so floors rise monotonically).
    ///
    /// The second number decides when an unlinked key node may be freed. A snapshot that pins after this
    /// call's floor update reads that update (or a later one) and so sees every unlink the writer made before
    /// the call: it cannot reach an unlinked node. A snapshot pinned before it shows in the scan. So a node
    /// unlinked before this call, when the last version assigned was `R`, is unreachable if every pin seen
    /// is above `R`: a snapshot at a version above `R` pinned a version published after the unlink.
    pub(crate) fn watermark(&self, visible: &AtomicU64) -> Watermark {
        // Acquire: the watermark may let the writer cut versions up to this one; it must not run ahead of
        // what was published. (The writer published it itself, so this is belt and braces.)
        let start = visible.load(Ordering::Acquire);
        // Release: publishes the writer's earlier unlinks to every snapshot whose floor load reads this value
        // or a later one (a read-modify-write continues the release sequence, even when the value does not
        // change).
        self.floor.fetch_max(start, Ordering::Release);
        // SeqCst fence: the collector's half of the handshake (module docs): the floor write comes before the
        // slot reads for any snapshot whose fence comes later.
        fence(Ordering::SeqCst);
        let mut min_pinned = u64::MAX;
        self.for_each_pinned(|pinned| min_pinned = min_pinned.min(pinned));
        Watermark {
            versions: start.min(min_pinned),
            min_pinned,
        }
    }

    /// The smallest pinned version and how many snapshots are pinned, for statistics.
    pub(crate) fn oldest(&self) -> (Option<u64>, usize) {
        let mut oldest = None;
        let mut count = 0;
        self.for_each_pinned(|pinned| {
            count += 1;
            oldest = Some(oldest.map_or(pinned, |o: u64| o.min(pinned)));
        });
        (oldest, count)
    }

    fn for_each_pinned(&self, mut f: impl FnMut(u64)) {
        let mut block = Some(&self.first);
        while let Some(current) = block {
            for slot in &current.slots {
                // Acquire: pairs with the Release in `Drop for Pin`, so a slot seen free means that snapshot's
                // reads are over. (The fence before the loop in `watermark` does the handshake.)
                let pinned = slot.load(Ordering::Acquire);
                if pinned != FREE {
                    f(pinned);
                }
            }
            block = current.next();
        }
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        // Relaxed: `&mut self` means no other thread touches the blocks.
        let mut next = self.first.next.load(Ordering::Relaxed);
        while !next.is_null() {
            // SAFETY: blocks are allocated by `grow` with `Box`, linked once, and freed only here.
            let block = unsafe { Box::from_raw(next) };
            next = block.next.load(Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_grow_past_a_block_and_set_the_watermark() {
        let pins = Pins::new();
        let visible = AtomicU64::new(10);
        let count = SLOTS_PER_BLOCK * 3 + 1;
        let mut held = Vec::new();
        for index in 0..count {
            visible.store(10 + index as u64, Ordering::Relaxed);
            held.push(pins.pin(&visible));
        }
        assert_eq!(pins.oldest(), (Some(10), count));
        let watermark = pins.watermark(&visible);
        assert_eq!((watermark.versions, watermark.min_pinned), (10, 10));
        held.remove(0);
        held.remove(0);
        assert_eq!(pins.watermark(&visible).min_pinned, 12);
        drop(held);
        let watermark = pins.watermark(&visible);
        assert_eq!(watermark.min_pinned, u64::MAX);
        assert_eq!(watermark.versions, 10 + count as u64 - 1);
        // Slots are reused: pinning again does not grow the list further.
        let again: Vec<_> = (0..count).map(|_| pins.pin(&visible)).collect();
        assert_eq!(pins.oldest().1, count);
        drop(again);
    }
}
