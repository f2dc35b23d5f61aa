//! Statistics and garbage-collection reports.

use std::time::Duration;

use crate::Version;

/// A store's counters at one moment (see [`Store::stats`](crate::Store::stats)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The newest visible version.
    pub version: Version,
    /// Keys in the index: live keys plus deleted ones not collected yet.
    pub keys: usize,
    /// Versions held in memory, across all keys (current values, older versions kept for snapshots, and
    /// deletions not collected yet).
    pub versions_retained: u64,
    /// Snapshots (and transactions) alive now.
    pub snapshots_pinned: usize,
    /// The version of the oldest snapshot alive, which holds back garbage collection.
    pub oldest_pinned: Option<Version>,
    /// How long the oldest snapshot has been holding versions back: the time since the first commit it
    /// cannot see (zero if it sees the newest version). When that commit has left the history, the age of the
    /// oldest commit still in it (a lower bound).
    pub oldest_pinned_age: Option<Duration>,
    /// The watermark the collector last computed: no version a snapshot at or above it can read is freed.
    pub watermark: Version,
    /// Deleted keys unlinked from the index and waiting for the watermark to pass before they are freed.
    pub retired_keys: usize,
    /// The oldest version a subscription can resume from (`subscribe(range, Some(v))` with `v` at least
    /// this).
    pub oldest_resumable: Version,
    /// With a log: bytes appended since the last compacted snapshot.
    pub log_bytes_since_checkpoint: u64,
}

/// What a [`Store::gc`](crate::Store::gc) run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// The watermark it collected at.
    pub watermark: Version,
    /// Keys it looked at.
    pub keys_visited: usize,
    /// Version chains it shortened.
    pub chains_cut: usize,
    /// Deleted keys it unlinked from the index.
    pub keys_unlinked: usize,
    /// Versions freed (including those of keys freed).
    pub versions_freed: u64,
    /// Key nodes freed (unlinked by this run or earlier ones, once no snapshot could reach them).
    pub keys_freed: u64,
}
