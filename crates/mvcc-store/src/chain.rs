//! Version chains: the versions of one key, newest first.
//!
//! A chain is a singly linked list of [`VersionNode`]s hung from a key's `newest` pointer. Only the writer
//! (the holder of the store's commit lock) changes a chain: it pushes a new version at the head, and it cuts
//! off the versions that no snapshot can read any more. Readers walk it without a lock.
//!
//! Why a reader never reaches a freed version: a reader at snapshot version `s` walks from the head and stops
//! at the first version `<= s`. The writer cuts a chain only below its *base*, the newest version
//! `<= watermark`, and the pin protocol ([`crate::pin`]) guarantees `s >= watermark` for every snapshot that
//! exists or will exist. So the base is `<= s`: every reader stops at the base or before it and never loads
//! the base's `older` pointer, the only pointer the writer changes. The cut-off versions are therefore
//! unreachable the moment they are cut, and are freed at once, with no epoch and no deferral.

use std::ptr;
use std::sync::Arc;

use crate::sync::{AtomicPtr, Ordering};

/// One version of one key: its commit version and its value (`None`: deleted at that version).
pub(crate) struct VersionNode<V> {
    /// The commit that wrote this version; never changes.
    pub(crate) version: u64,
    /// The value, or `None` for a deletion (a tombstone); never changes.
    pub(crate) value: Option<Arc<V>>,
    /// The next older version, or null. Set before the node is published; afterwards only the writer
    /// changes it, and only on the base of a chain (to null, cutting off what no snapshot reads).
    older: AtomicPtr<VersionNode<V>>,
    /// Under loom the writer does not free a cut-off version but marks it here, and every reader checks the
    /// mark: a reader that could reach a reclaimed version fails the model.
    #[cfg(loom)]
    reclaimed: crate::sync::AtomicBool,
}

impl<V> VersionNode<V> {
    /// Allocates a version whose next older version is `older` (null for the first version of a key).
    pub(crate) fn allocate(version: u64, value: Option<Arc<V>>, older: *mut Self) -> *mut Self {
        Box::into_raw(Box::new(VersionNode {
            version,
            value,
            older: AtomicPtr::new(older),
            #[cfg(loom)]
            reclaimed: crate::sync::AtomicBool::new(false),
        }))
    }

    /// Whether this version is a deletion.
    #[inline]
    pub(crate) fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The next older version (null at the end of the chain).
    #[inline]
    pub(crate) fn older(&self) -> *mut Self {
        // Acquire: pairs with the Release store that published the newer version holding this pointer
        // (`Index::push_version`), so the older node's fields are visible. (The pointer itself was set before
        // that publication, so the Acquire on the head already covers it; keeping Acquire here makes each
        // hop stand on its own.)
        self.older.load(Ordering::Acquire)
    }

    #[cfg(loom)]
    #[inline]
    fn check_not_reclaimed(&self) {
        // Relaxed: loom explores every value this load may return; a protocol that lets a reader reach a
        // reclaimed version makes some execution return `true`.
        assert!(
            !self.reclaimed.load(Ordering::Relaxed),
            "a reader reached a version the writer had reclaimed"
        );
    }
}

/// The newest version of the chain starting at `head` that a snapshot at `at` sees, if any.
///
/// # Safety
///
/// `head` is null or the head of a live chain, and the caller holds a pin at `at` (or is the writer), so no
/// version this walk can reach is freed while the returned reference lives (see the module docs).
#[inline]
pub(crate) unsafe fn visible_at<'a, V>(
    mut node: *mut VersionNode<V>,
    at: u64,
) -> Option<&'a VersionNode<V>> {
    while !node.is_null() {
        // SAFETY: non-null, reachable from a live chain and protected by the caller's pin (see above).
        let current = unsafe { &*node };
        #[cfg(loom)]
        current.check_not_reclaimed();
        if current.version <= at {
            return Some(current);
        }
        node = current.older();
    }
    None
}

/// Cuts off, and returns, the versions of the chain at `head` that no snapshot at `watermark` or later can
/// read: everything older than the newest version `<= watermark`. Returns null when there is nothing to cut.
///
/// # Safety
///
/// Only the writer calls this, `head` is null or the head of a live chain, and every snapshot that exists or
/// will exist has a version `>= watermark` (the pin protocol's guarantee for a watermark it computed).
pub(crate) unsafe fn cut_below_watermark<V>(
    head: *mut VersionNode<V>,
    watermark: u64,
) -> *mut VersionNode<V> {
    // SAFETY: forwarded from the caller; the writer reaches every version it walks here.
    let Some(base) = (unsafe { visible_at(head, watermark) }) else {
        return ptr::null_mut();
    };
    if base.older.load(Ordering::Relaxed).is_null() {
        // Relaxed: the writer is the only thread that ever stores to `older`.
        return ptr::null_mut();
    }
    // Relaxed: no reader loads the base's `older` (each stops at the base or before: module docs), so this
    // store publishes nothing and needs no ordering; the cut-off nodes are the writer's alone from now on.
    base.older.swap(ptr::null_mut(), Ordering::Relaxed)
}

/// Frees a chain cut off by [`cut_below_watermark`] (or a whole chain whose key is gone), returning how many
/// versions it held. Drops the values, so call it without holding the commit lock.
///
/// # Safety
///
/// `tail` is null or the first node of a chain that no reader can reach and that nothing else frees.
pub(crate) unsafe fn free_chain<V>(mut tail: *mut VersionNode<V>) -> usize {
    let mut freed = 0;
    while !tail.is_null() {
        // SAFETY: the caller hands over the unreachable chain; each node is visited once.
        let older = unsafe { (*tail).older.load(Ordering::Relaxed) };
        #[cfg(not(loom))]
        // SAFETY: allocated by `VersionNode::allocate` (a `Box`), unreachable, freed once.
        drop(unsafe { Box::from_raw(tail) });
        #[cfg(loom)]
        // SAFETY: as above; under loom the node is marked and leaked instead of freed, so that a reader that
        // could still reach it fails its check instead of reading freed memory.
        unsafe {
            (*tail).reclaimed.store(true, Ordering::Relaxed)
        };
        tail = older;
        freed += 1;
    }
    freed
}
