//! Snapshots: read-only views of the store at one version.

use std::borrow::Borrow;
use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::ptr;
use std::sync::Arc;

use crate::Version;
use crate::chain::{self, VersionNode};
use crate::index::{Located, Position};
use crate::pin::Pin;
use crate::store::{Core, Read};

/// A consistent, read-only view of a [`Store`](crate::Store) at one [`Version`]: it sees exactly the
/// commits up to that version, however many commits follow while it is held.
///
/// Taking one takes no lock, and reading through it never blocks and is never blocked: values are
/// returned by reference, borrowed from the snapshot, with no reference count touched. Holding a snapshot
/// keeps every version it can see from being collected, so hold it for as long as the read needs and no
/// longer ([`Stats::oldest_pinned_age`](crate::Stats::oldest_pinned_age) shows one held too long).
///
/// ```
/// use mvcc_store::Store;
///
/// let store = Store::<u32, &str>::new();
/// store.put(1, "one")?;
/// let before = store.snapshot();
/// store.put(1, "uno")?;
/// store.put(2, "dos")?;
/// assert_eq!(before.get(&1), Some(&"one"));
/// assert_eq!(before.get(&2), None);
/// assert_eq!(store.snapshot().range(1..).count(), 2);
/// # Ok::<(), mvcc_store::CommitError<u32>>(())
/// ```
pub struct Snapshot<'s, K, V> {
    pub(crate) core: &'s Core<K, V>,
    pin: Pin<'s>,
}

impl<K, V> fmt::Debug for Snapshot<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl<'s, K, V> Snapshot<'s, K, V> {
    pub(crate) fn new(core: &'s Core<K, V>, pin: Pin<'s>) -> Self {
        Snapshot { core, pin }
    }

    /// The version this snapshot sees: every commit up to and including it, none after.
    #[inline]
    pub fn version(&self) -> Version {
        Version::new(self.pin.version())
    }
}

impl<'s, K: Ord, V> Snapshot<'s, K, V> {
    /// The key's version visible to this snapshot (`None`: none; a deletion counts as a version here).
    #[inline]
    pub(crate) fn lookup<Q>(&self, key: &Q) -> Option<&VersionNode<V>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        // SAFETY: this snapshot's pin keeps every node and version it can reach allocated (index and chain
        // module docs), for as long as `self` is borrowed.
        unsafe {
            let (_, entry) = self.core.index.find(key)?;
            chain::visible_at(entry.newest(), self.pin.version())
        }
    }

    /// The value of `key` in this snapshot.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.lookup(key)
            .and_then(|version| version.value.as_deref())
    }

    /// The value of `key` in this snapshot and the version that wrote it.
    #[inline]
    pub fn get_versioned<Q>(&self, key: &Q) -> Option<(Version, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get_versioned_arc(key)
            .map(|(version, value)| (version, &**value))
    }

    /// The value of `key` in this snapshot as the store holds it (an `Arc` you may clone and keep after the
    /// snapshot is gone), and the version that wrote it.
    #[inline]
    pub fn get_versioned_arc<Q>(&self, key: &Q) -> Option<(Version, &Arc<V>)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let version = self.lookup(key)?;
        version
            .value
            .as_ref()
            .map(|value| (Version::new(version.version), value))
    }

    /// Whether `key` has a value in this snapshot.
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The keys and values in `range`, in key order.
    pub fn range<Q, R>(&self, range: R) -> Range<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        // The end is kept as the first key past the range at this moment: a key inserted later either comes
        // after it or has only versions newer than this snapshot, which the walk skips anyway.
        let (start, end) = (range.start_bound(), range.end_bound());
        let (next, end) = if bounds_are_empty(start, end) {
            (None, ptr::null())
        } else {
            // SAFETY: this snapshot's pin keeps the nodes allocated while the range borrows it.
            unsafe {
                let index = &self.core.index;
                let next = index.settle(index.seek(start));
                let past_end = match end {
                    Bound::Unbounded => None,
                    Bound::Included(end) => index.settle(index.seek(Bound::Excluded(end))),
                    Bound::Excluded(end) => index.settle(index.seek(Bound::Included(end))),
                };
                let end = past_end.map_or(ptr::null(), |at| {
                    &at.entry().expect("settled").key as *const K
                });
                (next, end)
            }
        };
        Range {
            snapshot: self,
            next,
            end,
        }
    }

    /// The key's visible version (as `lookup`), and what a serializable transaction records for the read:
    /// the key's entry, or the gap where it would be.
    pub(crate) fn locate<Q>(&self, key: &Q) -> (Read<K, V>, Option<&VersionNode<V>>)
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        // SAFETY: as in `lookup`.
        unsafe {
            match self.core.index.locate(key) {
                Located::Found(leaf, entry) => {
                    let found = chain::visible_at(entry.newest(), self.pin.version());
                    (Read::Key { leaf, entry }, found)
                }
                Located::Gap { after, before } => (Read::Gap { after, before }, None),
            }
        }
    }

    /// Every key, the version that wrote its value, and the value, in key order.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn iter_with_versions(&self) -> impl Iterator<Item = (&K, u64, &V)> {
        let mut range = self.iter();
        std::iter::from_fn(move || range.next_with_version())
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> Range<'_, K, V> {
        self.range::<K, _>(..)
    }
}

/// Whether the bounds describe no key at all (start above end, or equal and not both included). Such ranges
/// are empty here, where `BTreeMap::range` would panic.
pub(crate) fn bounds_are_empty<Q: Ord + ?Sized>(start: Bound<&Q>, end: Bound<&Q>) -> bool {
    match (start, end) {
        (Bound::Included(start), Bound::Included(end)) => start > end,
        (Bound::Included(start), Bound::Excluded(end))
        | (Bound::Excluded(start), Bound::Included(end))
        | (Bound::Excluded(start), Bound::Excluded(end)) => start >= end,
        _ => false,
    }
}

/// An iterator over a [`Snapshot`]'s keys and values in a range, in key order.
pub struct Range<'a, K, V> {
    snapshot: &'a Snapshot<'a, K, V>,
    next: Option<Position<K, V>>,
    /// The first key past the range when the iterator was made (null: the range runs to the end).
    end: *const K,
}

// SAFETY: the iterator only reads nodes kept alive by the snapshot it borrows, and hands out `&K` and `&V`.
unsafe impl<K: Sync, V: Sync> Send for Range<'_, K, V> {}
// SAFETY: as above; `&Range` allows nothing but reading its fields.
unsafe impl<K: Sync, V: Sync> Sync for Range<'_, K, V> {}

impl<K, V> fmt::Debug for Range<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Range")
            .field("version", &self.snapshot.version())
            .finish_non_exhaustive()
    }
}

impl<'a, K: Ord, V> Range<'a, K, V> {
    /// The next key and value, with the version that wrote the value.
    pub(crate) fn next_with_version(&mut self) -> Option<(&'a K, u64, &'a V)> {
        let version = self.snapshot.pin.version();
        let index = &self.snapshot.core.index;
        while let Some(at) = self.next {
            // SAFETY: the borrowed snapshot's pin keeps the nodes and versions reachable from them, and the
            // end key, allocated for `'a` (index and chain module docs).
            unsafe {
                let entry = at.entry().expect("settled");
                if !self.end.is_null() && entry.key >= *self.end {
                    self.next = None;
                    return None;
                }
                self.next = index.advance(at);
                if let Some(visible) = chain::visible_at(entry.newest(), version)
                    && let Some(value) = &visible.value
                {
                    return Some((&entry.key, visible.version, &**value));
                }
            }
        }
        None
    }
}

impl<'a, K: Ord, V> Iterator for Range<'a, K, V> {
    type Item = (&'a K, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.next_with_version().map(|(key, _, value)| (key, value))
    }
}

impl<K: Ord, V> std::iter::FusedIterator for Range<'_, K, V> {}
