//! Transactions: a snapshot to read from, buffered writes, and the checks made at commit.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;
use std::iter::Peekable;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use crate::Version;
use crate::error::CommitError;
use crate::snapshot::{self, Range, Snapshot};
use crate::store::{CommitRequest, Read};

/// How a transaction is isolated from concurrent ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isolation {
    /// Snapshot isolation: reads see one snapshot; a commit fails if another committed a write to one of
    /// its keys after that snapshot. Allows write skew (G2-item, G2).
    Snapshot,
    /// Serializable: snapshot isolation, plus a commit fails if a key it read, or a key inside a range it
    /// read, changed after its snapshot. No anomaly of the Hermitage suite is possible.
    Serializable,
}

/// A transaction: reads from one [`Snapshot`], buffers its writes, and applies them all at once, at one new
/// [`Version`], when [`commit`](Txn::commit) succeeds.
///
/// Reads see the transaction's own writes. Nothing is visible to anyone else before the commit, and a
/// transaction dropped without a commit is aborted (there is nothing to undo). At commit, the store checks
/// under a short lock that no other transaction won a conflicting race (see [`Isolation`]); if one did, the
/// commit returns a [`Conflict`](crate::Conflict) naming the key, and the caller retries on a fresh
/// transaction.
///
/// ```
/// use mvcc_store::Store;
///
/// let store = Store::<&str, i64>::new();
/// store.put("alice", 100)?;
/// store.put("bob", 0)?;
///
/// let transfer = |amount: i64| {
///     let mut txn = store.begin_serializable();
///     let alice = *txn.get("alice").unwrap();
///     let bob = *txn.get("bob").unwrap();
///     txn.put("alice", alice - amount);
///     txn.put("bob", bob + amount);
///     txn.commit()
/// };
/// transfer(30)?;
/// assert_eq!(store.get("bob").as_deref(), Some(&30));
/// # Ok::<(), mvcc_store::CommitError<&str>>(())
/// ```
pub struct Txn<'s, K, V> {
    snapshot: Snapshot<'s, K, V>,
    isolation: Isolation,
    writes: BTreeMap<K, Option<Arc<V>>>,
    /// Serializable only: what was read (keys, and the gaps around absent keys and ranges), for validation
    /// at commit.
    reads: RefCell<Vec<Read<K, V>>>,
    expectations: Vec<(K, Option<u64>)>,
}

// SAFETY: the only non-`Send` parts are the node pointers in `reads`, which point into the store the
// transaction borrows and are dereferenced only while its snapshot's pin keeps them allocated, on whichever
// thread holds the transaction. Keys and values cross threads, so they must be `Send + Sync`.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Txn<'_, K, V> {}

impl<K, V> fmt::Debug for Txn<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Txn")
            .field("version", &self.snapshot.version())
            .field("isolation", &self.isolation)
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

impl<'s, K: Ord + Clone, V> Txn<'s, K, V> {
    pub(crate) fn new(snapshot: Snapshot<'s, K, V>, isolation: Isolation) -> Self {
        Txn {
            snapshot,
            isolation,
            writes: BTreeMap::new(),
            reads: RefCell::new(Vec::new()),
            expectations: Vec::new(),
        }
    }

    /// The version of the snapshot this transaction reads.
    pub fn version(&self) -> Version {
        self.snapshot.version()
    }

    /// This transaction's isolation level.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The number of keys this transaction writes (puts and deletes).
    pub fn write_count(&self) -> usize {
        self.writes.len()
    }

    /// The value of `key`: this transaction's own write if it made one, else the snapshot's.
    ///
    /// A serializable transaction records the read. For a key it finds, a later commit that changes the key
    /// fails this one; for an absent key, a later commit that inserts or changes any key between the absent
    /// key's neighbours does (a gap, as a gap lock would cover).
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get_versioned(key).map(|(_, value)| value)
    }

    /// The value of `key` and the version that wrote it (`None` as the version: written by this transaction).
    pub fn get_versioned<Q>(&self, key: &Q) -> Option<(Option<Version>, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if let Some(written) = self.writes.get(key) {
            return written.as_deref().map(|value| (None, value));
        }
        let found = if self.isolation == Isolation::Serializable {
            let (read, found) = self.snapshot.locate(key);
            self.reads.borrow_mut().push(read);
            found
        } else {
            self.snapshot.lookup(key)
        };
        let found = found?;
        found
            .value
            .as_deref()
            .map(|value| (Some(Version::new(found.version)), value))
    }

    /// Whether `key` has a value (as [`get`](Self::get) sees it).
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The keys and values in `range`, in key order, with this transaction's own writes applied.
    ///
    /// A serializable transaction records the whole range as read (even if the iterator is not run to its
    /// end): a commit by another transaction that inserts, changes or deletes a key inside it after this
    /// transaction's snapshot makes this one's commit fail (a phantom).
    pub fn range<Q, R>(&self, range: R) -> TxnRange<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ToOwned<Owned = K> + ?Sized,
        R: RangeBounds<Q>,
    {
        let (start, end) = (range.start_bound(), range.end_bound());
        let writes = if snapshot::bounds_are_empty(start, end) {
            None
        } else {
            if self.isolation == Isolation::Serializable {
                let owned = |bound: Bound<&Q>| match bound {
                    Bound::Included(key) => Bound::Included(key.to_owned()),
                    Bound::Excluded(key) => Bound::Excluded(key.to_owned()),
                    Bound::Unbounded => Bound::Unbounded,
                };
                self.reads.borrow_mut().push(Read::Range {
                    lower: owned(start),
                    upper: owned(end),
                });
            }
            Some(self.writes.range::<Q, _>((start, end)).peekable())
        };
        TxnRange {
            snapshot: self.snapshot.range((start, end)),
            peeked: None,
            writes,
        }
    }

    /// Every key and value, as [`range`](Self::range) over all keys.
    pub fn iter(&self) -> TxnRange<'_, K, V> {
        self.range::<K, _>(..)
    }

    /// Sets `key` to `value` when the transaction commits.
    pub fn put(&mut self, key: K, value: impl Into<Arc<V>>) {
        self.writes.insert(key, Some(value.into()));
    }

    /// Deletes `key` when the transaction commits.
    pub fn delete(&mut self, key: K) {
        self.writes.insert(key, None);
    }

    /// Makes the commit fail unless the newest version of `key` is `version` when it commits (a
    /// [`ConflictKind::VersionMismatch`](crate::ConflictKind::VersionMismatch) otherwise): optimistic
    /// locking on one key, at any isolation level.
    pub fn expect_version(&mut self, key: &K, version: Version) {
        self.expectations.push((key.clone(), Some(version.get())));
    }

    /// Makes the commit fail unless `key` is absent (never written, or deleted) when it commits.
    pub fn expect_absent(&mut self, key: &K) {
        self.expectations.push((key.clone(), None));
    }

    /// Checks the transaction and, if nothing conflicts, makes all its writes visible at once at a new
    /// version, which it returns. A transaction with no writes (and no expectation) commits at once and
    /// returns its snapshot's version: a read-only transaction sees one consistent snapshot, which is
    /// serializable as it is.
    ///
    /// # Errors
    ///
    /// [`CommitError::Conflict`] naming the key and what was found: for any transaction a write-write
    /// conflict or a failed expectation; for a serializable one also a read-write conflict or a phantom. With
    /// a log, the log's errors. Nothing of a failed commit is visible.
    pub fn commit(self) -> Result<Version, CommitError<K>> {
        let Txn {
            snapshot,
            isolation: _,
            writes,
            reads,
            expectations,
        } = self;
        if writes.is_empty() && expectations.is_empty() {
            return Ok(snapshot.version());
        }
        let request = CommitRequest {
            snapshot: Some(snapshot.version().get()),
            writes: writes.into_iter().collect(),
            reads: reads.into_inner(),
            expectations,
        };
        // The snapshot stays pinned until the commit is checked: the recorded reads point into nodes it
        // keeps alive.
        let outcome = snapshot.core.commit(request);
        drop(snapshot);
        outcome
    }

    /// Drops the transaction without committing (as dropping it does).
    pub fn abort(self) {}
}

/// An iterator over a transaction's view of a range: the snapshot's keys merged with the transaction's own
/// writes, in key order.
pub struct TxnRange<'a, K, V> {
    snapshot: Range<'a, K, V>,
    /// The snapshot's next item, when it has been looked at but not returned.
    peeked: Option<(&'a K, &'a V)>,
    writes: Option<Peekable<btree_map::Range<'a, K, Option<Arc<V>>>>>,
}

impl<K, V> fmt::Debug for TxnRange<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnRange").finish_non_exhaustive()
    }
}

impl<'a, K: Ord, V> TxnRange<'a, K, V> {
    fn next_stored(&mut self) -> Option<(&'a K, &'a V)> {
        self.peeked.take().or_else(|| self.snapshot.next())
    }

    fn peek_stored(&mut self) -> Option<(&'a K, &'a V)> {
        if self.peeked.is_none() {
            self.peeked = self.snapshot.next();
        }
        self.peeked
    }
}

impl<'a, K: Ord, V> Iterator for TxnRange<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let stored = self.peek_stored();
            let Some(writes) = self.writes.as_mut() else {
                return self.next_stored();
            };
            let take_write = match (stored, writes.peek()) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((stored, _)), Some((written, _))) => {
                    if *written <= stored {
                        if *written == stored {
                            // The transaction's write replaces the stored value.
                            self.peeked = None;
                        }
                        true
                    } else {
                        false
                    }
                }
            };
            if !take_write {
                return self.next_stored();
            }
            if let Some((key, Some(value))) = writes.next() {
                return Some((key, &**value));
            }
            // A deletion by this transaction: skip the key.
        }
    }
}
