//! Errors: why a commit, a subscription or (with `durable`) opening a store failed.

use std::fmt;
use std::io;

use crate::Version;

/// Why a commit was refused. Nothing of a refused commit is visible or logged; the store is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError<K> {
    /// Another transaction committed first, or an expectation did not hold.
    #[error(transparent)]
    Conflict(#[from] Conflict<K>),
    /// The commit log could not be written, so the commit was not acknowledged (and will not be visible).
    /// The store accepts no commits after this; reads go on at the last durable version.
    #[error(
        "the commit log could not be written ({source}); the commit was not made and the store now refuses commits"
    )]
    Log {
        /// The I/O error from the log.
        #[source]
        source: io::Error,
    },
    /// A key or value could not be encoded for the log (its `Serialize` impl failed).
    #[error("a key or value of this commit could not be encoded for the log: {message}")]
    Encode {
        /// The encoder's message.
        message: String,
    },
    /// An earlier log failure stopped the store from accepting commits.
    #[error("the store refuses commits since its log failed: {reason}")]
    Failed {
        /// What failed earlier.
        reason: String,
    },
}

impl<K> CommitError<K> {
    /// The conflict, if this error is one (a transaction that may be retried).
    pub fn conflict(&self) -> Option<&Conflict<K>> {
        match self {
            CommitError::Conflict(conflict) => Some(conflict),
            _ => None,
        }
    }

    /// Whether retrying the transaction on a fresh snapshot may succeed (it is a conflict).
    pub fn is_conflict(&self) -> bool {
        matches!(self, CommitError::Conflict(_))
    }
}

/// A commit lost a race with another commit, or an expected version did not match.
///
/// It names the key and says what was found, so a caller can decide whether to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}, on key {key:?}")]
pub struct Conflict<K> {
    /// The key where the conflict was found (the first one, in key order, for each kind of check).
    pub key: K,
    /// What was found.
    pub kind: ConflictKind,
}

/// What kind of conflict refused a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictKind {
    /// The transaction wrote a key that another transaction committed after this one's snapshot (first
    /// committer wins).
    WriteWrite {
        /// The transaction's snapshot version.
        snapshot: Version,
        /// The newer committed version of the key.
        committed: Version,
    },
    /// A serializable transaction read a key that another transaction changed after this one's snapshot.
    ReadWrite {
        /// The transaction's snapshot version.
        snapshot: Version,
        /// The newer committed version of the key.
        committed: Version,
    },
    /// A serializable transaction read a range in which another transaction inserted, changed or deleted a
    /// key after this one's snapshot (a phantom).
    Phantom {
        /// The transaction's snapshot version.
        snapshot: Version,
        /// The version of the key's change.
        committed: Version,
    },
    /// An expectation (`expect_version`, `expect_absent`, `compare_and_swap`) did not hold.
    VersionMismatch {
        /// The version expected, `None` for "absent".
        expected: Option<Version>,
        /// The key's newest version when the commit was checked, `None` if absent.
        actual: Option<Version>,
    },
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConflictKind::WriteWrite {
                snapshot,
                committed,
            } => write!(
                f,
                "write-write conflict: {committed} was committed after this transaction's snapshot {snapshot}"
            ),
            ConflictKind::ReadWrite {
                snapshot,
                committed,
            } => write!(
                f,
                "read-write conflict: a key this transaction read was changed by {committed}, after its snapshot {snapshot}"
            ),
            ConflictKind::Phantom {
                snapshot,
                committed,
            } => write!(
                f,
                "phantom: {committed} changed a key inside a range this transaction read, after its snapshot {snapshot}"
            ),
            ConflictKind::VersionMismatch { expected, actual } => {
                let show = |version: Option<Version>| match version {
                    Some(version) => version.to_string(),
                    None => "absent".to_string(),
                };
                write!(
                    f,
                    "version mismatch: expected {}, found {}",
                    show(expected),
                    show(actual)
                )
            }
        }
    }
}

/// Why a subscription could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The changes right after `requested` are no longer kept.
    #[error(
        "cannot resume after {requested}: the changes after it are no longer kept; the oldest version a \
         subscription can resume from is {oldest_available}"
    )]
    Compacted {
        /// The version asked for.
        requested: Version,
        /// The oldest version a subscription may resume from now.
        oldest_available: Version,
    },
    /// `requested` is newer than anything the store has committed.
    #[error("cannot resume after {requested}: the store's newest version is {newest}")]
    AheadOfStore {
        /// The version asked for.
        requested: Version,
        /// The store's newest version.
        newest: Version,
    },
}

/// A builder setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A size that must be at least 1 was 0.
    #[error("`{field}` must be at least 1")]
    Zero {
        /// The builder method.
        field: &'static str,
    },
    /// A size above what the store supports.
    #[error("`{field}` is {value}, above the largest supported value {max}")]
    TooLarge {
        /// The builder method.
        field: &'static str,
        /// The value given.
        value: usize,
        /// The largest value accepted.
        max: usize,
    },
}
