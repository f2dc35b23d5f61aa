//! Commit versions.

use std::fmt;

/// The position of a commit in the store's history.
///
/// Each commit that changes something gets the next version, so versions count commits: the first commit is
/// version 1 and an empty store is at version 0 ([`Version::ZERO`]). A [`Snapshot`](crate::Snapshot) at
/// version `v` sees exactly the commits `1..=v`. Versions are plain numbers you may store and compare; one
/// from another store means nothing to this one.
///
/// ```
/// use mvcc_store::{Store, Version};
///
/// let store = Store::<String, u32>::new();
/// assert_eq!(store.snapshot().version(), Version::ZERO);
/// let v1 = store.compare_and_swap("a".to_string(), None, 1).unwrap();
/// assert_eq!(v1, Version::new(1));
/// assert_eq!(v1.get(), 1);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "durable", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "durable", serde(transparent))]
pub struct Version(u64);

impl Version {
    /// The version of an empty store, before any commit.
    pub const ZERO: Version = Version(0);

    /// The version with the number `number`.
    #[inline]
    #[must_use]
    pub const fn new(number: u64) -> Self {
        Version(number)
    }

    /// This version's number.
    #[inline]
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for Version {
    #[inline]
    fn from(number: u64) -> Self {
        Version(number)
    }
}

impl From<Version> for u64 {
    #[inline]
    fn from(version: Version) -> Self {
        version.0
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}
