//! The store: its shared core, the commit path and the public handle.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::Version;
use crate::chain::{self, VersionNode};
use crate::error::{BuildError, CommitError, Conflict, ConflictKind, SubscribeError};
use crate::feed::{CommitRecord, Feed};
use crate::index::{Entry, Index, Leaf, Node, Position, Retired};
use crate::pin::Pins;
use crate::snapshot::Snapshot;
use crate::stats::{GcReport, Stats};
use crate::subscription::Subscription;
use crate::sync::{self, AtomicU64, Mutex, Ordering};
use crate::txn::{Isolation, Txn};

/// How often (in commits) the writer recomputes the watermark that decides what may be freed. A stale
/// watermark is only conservative, and computing one reads every pin slot.
const WATERMARK_EVERY: u32 = 64;

/// How often (in commits) the writer runs a step of the background sweep, and so how many keys a step
/// visits: `gc_keys_per_commit * SWEEP_EVERY`. Batching pays for the seek to the sweep's cursor once.
const SWEEP_EVERY: u32 = 16;

/// Keys per slice of a full `gc()`: the commit lock is released between slices so commits go on.
const GC_SLICE: usize = 1024;

/// The largest ring of retained commits `StoreBuilder::history` accepts.
const MAX_HISTORY: usize = 1 << 24;

/// A durable log of commits (feature `durable`); the core calls it without knowing the encoding.
pub(crate) trait Journal<K, V>: Send + Sync {
    /// Encodes the commit `version` into the log's buffer. Called under the commit lock, in version order,
    /// before the commit changes anything; an error leaves the store unchanged.
    fn append(&self, version: u64, changes: &[(K, Option<Arc<V>>)]) -> Result<(), CommitError<K>>;
    /// Waits until `version` is durable (writing and syncing the buffer if no other thread is), publishing
    /// durable versions to `feed` in order.
    fn wait_durable(&self, version: u64, feed: &Feed<K, V>) -> Result<(), CommitError<K>>;
    /// Why the log refuses appends, if it failed.
    fn failure(&self) -> Option<String>;
    /// The number of log bytes written since the last checkpoint.
    fn bytes_since_checkpoint(&self) -> u64;
}

/// What a serializable transaction read, for its commit's validation. The nodes and keys pointed to are
/// kept allocated by the transaction's pin.
pub(crate) enum Read<K, V> {
    /// A key that was in the index when it was read: the read is still good if the key has no newer version.
    /// If its leaf has been replaced since, the key is looked up again.
    Key {
        leaf: *const Leaf<K, V>,
        entry: *const Entry<K, V>,
    },
    /// Every key strictly between two keys (null: the start, or the end, of the index): an absent key's
    /// neighbours. Still good if no key between them has a newer version. (Like a gap lock: an insert next
    /// to an absent key that was read also counts.)
    Gap { after: *const K, before: *const K },
    /// A range: still good if no key inside it has a newer version.
    Range { lower: Bound<K>, upper: Bound<K> },
}

/// Everything a commit checks and writes.
pub(crate) struct CommitRequest<K, V> {
    /// The version the transaction read at; `None` skips the write-write check (blind writes, CAS).
    pub(crate) snapshot: Option<u64>,
    /// Sorted by key, one entry per key; `None` deletes.
    pub(crate) writes: Vec<(K, Option<Arc<V>>)>,
    /// Serializable only: the keys, absent keys and ranges read.
    pub(crate) reads: Vec<Read<K, V>>,
    /// Keys whose newest version must be this one (`None`: absent) at commit.
    pub(crate) expectations: Vec<(K, Option<u64>)>,
}

/// What the commit lock guards.
pub(crate) struct Writer<K, V> {
    /// The last version given to a commit (published or, with a log, maybe not yet).
    pub(crate) last_assigned: u64,
    /// The last watermark computed: every snapshot is at or above it.
    watermark: u64,
    commits_since_watermark: u32,
    commits_since_sweep: u32,
    /// Where the incremental sweep goes on: the last key it visited.
    sweep_cursor: Option<K>,
    /// Tree nodes replaced or removed, and chains of removed keys, each with the last version assigned when
    /// it was set aside; freed once every pinned version is above that one (no snapshot that could reach it
    /// is left: see `Pins::watermark`).
    retired: VecDeque<(u64, Retired<K, V>)>,
    /// Where the index puts what it sets aside, before it joins `retired` (kept here so that a panic in a
    /// key's `Ord` or `Clone` halfway through a change loses nothing: the next commit files it).
    setting_aside: Vec<Retired<K, V>>,
    /// The entries the current commit pushed a version on, and their previous heads: to undo an install that
    /// panicked, and to cut their chains after.
    installing: Vec<(*const Entry<K, V>, *mut VersionNode<V>)>,
    garbage: Garbage<K, V>,
}

// SAFETY: the raw pointers are nodes owned by the store's index; the writer state moves between threads with
// the lock, and whoever holds it may use and free them (keys and values are `Send + Sync`).
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Writer<K, V> {}

/// Unreachable nodes and records, freed after the commit lock is released (dropping them runs the keys' and
/// values' `Drop`, which must not run under the lock).
pub(crate) struct Garbage<K, V> {
    versions: Vec<*mut VersionNode<V>>,
    retired: Vec<Retired<K, V>>,
    records: Vec<Arc<CommitRecord<K, V>>>,
}

// SAFETY: as for `Writer`: unreachable nodes handed from the writer to the thread that frees them.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Garbage<K, V> {}

impl<K, V> Garbage<K, V> {
    fn new() -> Self {
        Garbage {
            versions: Vec::new(),
            retired: Vec::new(),
            records: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.retired.is_empty() && self.records.is_empty()
    }

    /// Frees everything, returning (versions freed, keys freed).
    fn free(self) -> (u64, u64) {
        let mut versions = 0;
        let mut keys = 0;
        for tail in &self.versions {
            // SAFETY: cut off by `cut_below_watermark`, unreachable, and in no other list.
            versions += unsafe { chain::free_chain(*tail) } as u64;
        }
        for retired in self.retired {
            // SAFETY: set aside by the index and kept until every version pinned since was above its
            // retirement (`refresh_watermark`): no reader can reach it. A replaced node's chains live on in
            // its copy and are not freed with it; a removed key's chain is freed here.
            unsafe {
                match retired {
                    Retired::Node(node) => Node::free(node),
                    Retired::Chain(chain) => {
                        versions += chain::free_chain(chain) as u64;
                        keys += 1;
                    }
                }
            }
        }
        (versions, keys)
    }
}

/// Settings fixed when the store is built.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) history: usize,
    pub(crate) gc_keys_per_commit: usize,
}

/// The shared part of a store: index, pins, feed and the commit lock.
pub(crate) struct Core<K, V> {
    pub(crate) index: Index<K, V>,
    pub(crate) pins: Pins,
    pub(crate) feed: Arc<Feed<K, V>>,
    /// The commit lock, on a cache line of its own: its word changes twice per commit, and readers must not
    /// share a line with it.
    pub(crate) writer: CachePadded<Mutex<Writer<K, V>>>,
    pub(crate) config: Config,
    /// Versions held in chains (including removed keys' ones not freed yet): statistics.
    versions_retained: CachePadded<AtomicU64>,
    pub(crate) journal: Option<Arc<dyn Journal<K, V>>>,
}

impl<K, V> Core<K, V> {
    pub(crate) fn new(config: Config, version: u64) -> Self {
        Core {
            index: Index::new(),
            pins: Pins::new(),
            feed: Arc::new(Feed::new(version, config.history)),
            writer: CachePadded::new(Mutex::new(Writer {
                last_assigned: version,
                watermark: 0,
                commits_since_watermark: 0,
                commits_since_sweep: 0,
                sweep_cursor: None,
                retired: VecDeque::new(),
                setting_aside: Vec::new(),
                installing: Vec::new(),
                garbage: Garbage::new(),
            })),
            config,
            versions_retained: CachePadded::new(AtomicU64::new(0)),
            journal: None,
        }
    }

    /// Pins the visible version.
    #[inline]
    pub(crate) fn snapshot(&self) -> Snapshot<'_, K, V> {
        Snapshot::new(self, self.pins.pin(self.feed.visible()))
    }

    fn free_garbage(&self, garbage: Garbage<K, V>) {
        if garbage.is_empty() {
            return;
        }
        let (versions, _) = garbage.free();
        // Relaxed: a statistic.
        self.versions_retained
            .fetch_sub(versions, Ordering::Relaxed);
    }

    /// Files what the index set aside with the last version assigned: it waits in `retired` until no
    /// snapshot can reach it.
    fn file_set_aside(writer: &mut Writer<K, V>) {
        let retired_at = writer.last_assigned;
        let Writer {
            setting_aside,
            retired,
            ..
        } = writer;
        retired.extend(setting_aside.drain(..).map(|item| (retired_at, item)));
    }
}

/// The newest version of `entry`'s key (a missing entry or an empty chain is version 0), and whether that
/// version is a deletion. Writer only.
fn newest_of<K, V>(entry: Option<&Entry<K, V>>) -> (u64, bool) {
    let Some(entry) = entry else {
        return (0, true);
    };
    let newest = entry.newest();
    if newest.is_null() {
        return (0, true);
    }
    // SAFETY: the writer holds the commit lock, and only it frees versions.
    let newest = unsafe { &*newest };
    (newest.version, newest.is_tombstone())
}

impl<K: Ord + Clone, V> Core<K, V> {
    /// Checks a commit's expectations and conflicts; changes nothing. Writer only (under the commit lock).
    fn validate(&self, request: &CommitRequest<K, V>) -> Result<(), Conflict<K>> {
        for (key, expected) in &request.expectations {
            // SAFETY: under the commit lock.
            let (newest, deleted) =
                newest_of(unsafe { self.index.find(key) }.map(|(_, entry)| entry));
            let actual = (!deleted).then_some(newest);
            if actual != *expected {
                return Err(Conflict {
                    key: key.clone(),
                    kind: ConflictKind::VersionMismatch {
                        expected: expected.map(Version::new),
                        actual: actual.map(Version::new),
                    },
                });
            }
        }
        let Some(snapshot) = request.snapshot else {
            return Ok(());
        };
        let conflict = |key: &K, committed: u64, kind: fn(Version, Version) -> ConflictKind| {
            Err(Conflict {
                key: key.clone(),
                kind: kind(Version::new(snapshot), Version::new(committed)),
            })
        };
        for (key, _) in &request.writes {
            // SAFETY: under the commit lock.
            let (newest, _) = newest_of(unsafe { self.index.find(key) }.map(|(_, entry)| entry));
            if newest > snapshot {
                return conflict(key, newest, |snapshot, committed| {
                    ConflictKind::WriteWrite {
                        snapshot,
                        committed,
                    }
                });
            }
        }
        for read in &request.reads {
            match *read {
                Read::Key { leaf, entry } => {
                    // SAFETY: under the commit lock; the leaf and entry are kept allocated by the
                    // transaction's pin (held until its commit returns), and the lock orders the writer's
                    // `replaced` flag. A replaced leaf's entry is frozen: the key is looked up again.
                    let (key, current) = unsafe {
                        let key = &(*entry).key;
                        if (*leaf).is_replaced() {
                            (key, self.index.find(key).map(|(_, entry)| entry))
                        } else {
                            (key, Some(&*entry))
                        }
                    };
                    let (newest, _) = newest_of(current);
                    if newest > snapshot {
                        return conflict(key, newest, |snapshot, committed| {
                            ConflictKind::ReadWrite {
                                snapshot,
                                committed,
                            }
                        });
                    }
                }
                Read::Gap { after, before } => {
                    // SAFETY: under the commit lock; `after` and `before` are keys kept allocated by the
                    // transaction's pin (in nodes replaced since or not, they still bound the gap).
                    unsafe {
                        let start = if after.is_null() {
                            self.index.seek::<K>(Bound::Unbounded)
                        } else {
                            self.index.seek(Bound::Excluded(&*after))
                        };
                        self.check_unchanged(snapshot, start, |key| {
                            before.is_null() || key < &*before
                        })?;
                    }
                }
                Read::Range {
                    ref lower,
                    ref upper,
                } => {
                    // SAFETY: under the commit lock.
                    let start = unsafe { self.index.seek(lower.as_ref()) };
                    self.check_unchanged(snapshot, start, |key| match upper {
                        Bound::Unbounded => true,
                        Bound::Included(upper) => key <= upper,
                        Bound::Excluded(upper) => key < upper,
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Checks that no key from `start` on, while `inside` holds, has a version newer than `snapshot`.
    /// Writer only.
    fn check_unchanged(
        &self,
        snapshot: u64,
        start: Position<K, V>,
        inside: impl Fn(&K) -> bool,
    ) -> Result<(), Conflict<K>> {
        // SAFETY: under the commit lock the writer reaches only nodes of the current tree.
        unsafe {
            let mut position = self.index.settle(start);
            while let Some(at) = position {
                let entry = at.entry().expect("settled");
                if !inside(&entry.key) {
                    break;
                }
                let (newest, _) = newest_of(Some(entry));
                if newest > snapshot {
                    return Err(Conflict {
                        key: entry.key.clone(),
                        kind: ConflictKind::Phantom {
                            snapshot: Version::new(snapshot),
                            committed: Version::new(newest),
                        },
                    });
                }
                position = self.index.advance(at);
            }
        }
        Ok(())
    }

    /// Loads keys of a snapshot being recovered (sorted, each once), with their versions and values.
    #[cfg(feature = "durable")]
    pub(crate) fn recover_entries(&self, entries: Vec<(K, u64, V)>) -> Result<(), String> {
        let mut writer = sync::lock(&self.writer);
        let inserted = self.index.insert_missing(
            entries.iter().map(|(key, _, _)| key),
            &mut writer.setting_aside,
        );
        if inserted != entries.len() {
            return Err("a key appears twice in the snapshot, or out of order".to_string());
        }
        Self::file_set_aside(&mut writer);
        for (key, version, value) in entries {
            // SAFETY: under the commit lock; the key was just inserted with an empty chain, and nothing is
            // published yet (the store is being opened).
            unsafe {
                let (_, entry) = self.index.find(&key).expect("just inserted");
                Index::push_version(
                    entry,
                    VersionNode::allocate(version, Some(Arc::new(value)), std::ptr::null_mut()),
                );
            }
        }
        Ok(())
    }

    /// Validates and applies a commit. Returns the new version, or the snapshot's (or the visible) version
    /// when there is nothing to write.
    pub(crate) fn commit(&self, request: CommitRequest<K, V>) -> Result<Version, CommitError<K>> {
        let mut writer = sync::lock(&self.writer);
        if let Some(reason) = self.journal.as_ref().and_then(|journal| journal.failure()) {
            return Err(CommitError::Failed { reason });
        }
        self.validate(&request)?;
        if request.writes.is_empty() {
            let version = request
                .snapshot
                .unwrap_or_else(|| self.feed.visible_version());
            return Ok(Version::new(version));
        }
        let version = writer.last_assigned + 1;
        if let Some(journal) = &self.journal {
            journal.append(version, &request.writes)?;
        }
        self.install(&mut writer, version, &request.writes);
        writer.last_assigned = version;
        let record = Arc::new(CommitRecord {
            version,
            changes: request.writes,
            committed_at: Instant::now(),
        });
        if let Some(overwritten) = self.feed.append(record) {
            writer.garbage.records.push(overwritten);
        }
        self.collect_after_commit(&mut writer);
        if self.journal.is_none() {
            self.feed.publish(version);
        }
        let garbage = std::mem::replace(&mut writer.garbage, Garbage::new());
        drop(writer);
        self.free_garbage(garbage);
        if let Some(journal) = &self.journal {
            journal.wait_durable(version, &self.feed)?;
        }
        Ok(Version::new(version))
    }

    /// Inserts the written keys that are new (one copy per leaf touched), then pushes `version` on the chain
    /// of each written key and cuts what the current watermark lets go. If a key's `Ord` or `Clone` panics,
    /// every version already pushed is taken back (none of it was published) before the panic goes on; keys
    /// already inserted stay, with empty chains, which readers take for absent and the sweep removes.
    fn install(&self, writer: &mut Writer<K, V>, version: u64, writes: &[(K, Option<Arc<V>>)]) {
        writer.installing.clear();
        let Writer {
            installing,
            setting_aside,
            ..
        } = writer;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            // Most commits write keys that exist: find them all first, and change the tree only if one is
            // missing (then find them again: inserting copies leaves). No node changes between the finds
            // and the pushes below but for that insert.
            let all_present = writes.iter().all(|(key, _)| {
                // SAFETY: under the commit lock.
                match unsafe { self.index.find(key) } {
                    Some((_, entry)) => {
                        installing.push((entry, ptr::null_mut()));
                        true
                    }
                    None => false,
                }
            });
            if !all_present {
                installing.clear();
                self.index
                    .insert_missing(writes.iter().map(|(key, _)| key), setting_aside);
                for (key, _) in writes {
                    // SAFETY: under the commit lock.
                    let (_, entry) = unsafe { self.index.find(key) }.expect("inserted above");
                    installing.push((entry, ptr::null_mut()));
                }
            }
            for ((entry, previous), (_, value)) in installing.iter_mut().zip(writes) {
                // SAFETY: under the commit lock, `entry` is in the current tree; the fresh version links to
                // the key's current newest one, so the chain stays whole.
                unsafe {
                    *previous = (**entry).newest();
                    Index::push_version(
                        &**entry,
                        VersionNode::allocate(version, value.clone(), *previous),
                    );
                }
                // Relaxed: a statistic.
                self.versions_retained.fetch_add(1, Ordering::Relaxed);
            }
        }));
        Self::file_set_aside(writer);
        if let Err(payload) = outcome {
            // Entries whose push never happened still hold a null previous head and their current head is
            // not this commit's: only take back versions this commit pushed.
            for &(entry, previous) in writer.installing.iter().rev() {
                // SAFETY: under the commit lock; `entry` is in the current tree.
                let pushed = unsafe {
                    let newest = (*entry).newest();
                    !newest.is_null() && (*newest).version == version
                };
                if !pushed {
                    continue;
                }
                // SAFETY: under the commit lock; the version being removed was pushed above, never published
                // (the visible version is older), so no reader can hold it.
                unsafe {
                    let fresh = (*entry).newest();
                    Index::pop_version(&*entry, previous);
                    // Detach the fresh version from the older chain it links to (which stays the key's), then
                    // free it alone.
                    let _older = chain::cut_below_watermark(fresh, version);
                    writer.garbage.versions.push(fresh);
                }
            }
            writer.installing.clear();
            panic::resume_unwind(payload);
        }
        let watermark = writer.watermark;
        for index in 0..writer.installing.len() {
            let (entry, _) = writer.installing[index];
            // SAFETY: under the commit lock; the entry is in the current tree; `watermark` was computed by
            // `Pins::watermark`.
            let cut = unsafe { chain::cut_below_watermark((*entry).newest(), watermark) };
            if !cut.is_null() {
                writer.garbage.versions.push(cut);
            }
        }
        writer.installing.clear();
    }

    /// The garbage collection a commit does on the way out: now and then a new watermark (freeing what it
    /// lets go), and a step of the sweep.
    fn collect_after_commit(&self, writer: &mut Writer<K, V>) {
        writer.commits_since_watermark += 1;
        if writer.commits_since_watermark >= WATERMARK_EVERY {
            self.refresh_watermark(writer);
        }
        writer.commits_since_sweep += 1;
        if writer.commits_since_sweep >= SWEEP_EVERY && self.config.gc_keys_per_commit > 0 {
            writer.commits_since_sweep = 0;
            let budget = self.config.gc_keys_per_commit * SWEEP_EVERY as usize;
            let cursor = writer.sweep_cursor.take();
            writer.sweep_cursor =
                self.sweep(writer, cursor.as_ref(), budget, &mut GcReport::default());
        }
    }

    /// Recomputes the watermark and moves to the garbage what was set aside when the last version assigned
    /// was below every version pinned now (see `Pins::watermark`).
    fn refresh_watermark(&self, writer: &mut Writer<K, V>) {
        writer.commits_since_watermark = 0;
        let watermark = self.pins.watermark(self.feed.visible());
        writer.watermark = watermark.versions;
        while let Some((retired_at, _)) = writer.retired.front() {
            if *retired_at >= watermark.min_pinned {
                break;
            }
            let (_, item) = writer.retired.pop_front().expect("just looked");
            writer.garbage.retired.push(item);
        }
    }

    /// Visits up to `budget` keys after `cursor` (from the first key if `None`), cutting their chains at the
    /// watermark, then removes the keys whose only version is a deletion no snapshot needs. Returns where to
    /// go on (`None`: the end was reached).
    fn sweep(
        &self,
        writer: &mut Writer<K, V>,
        cursor: Option<&K>,
        budget: usize,
        report: &mut GcReport,
    ) -> Option<K> {
        let watermark = writer.watermark;
        let mut dead = Vec::new();
        let mut visited = 0;
        let mut last: Option<&Entry<K, V>> = None;
        // SAFETY: under the commit lock the writer reaches only nodes of the current tree, and none changes
        // before the removal below, after the walk.
        let reached_end = unsafe {
            let start = match cursor {
                None => self.index.seek::<K>(Bound::Unbounded),
                Some(key) => self.index.seek(Bound::Excluded(key)),
            };
            let mut position = self.index.settle(start);
            while let Some(at) = position {
                if visited == budget {
                    break;
                }
                let entry = at.entry().expect("settled");
                let head = entry.newest();
                let cut = chain::cut_below_watermark(head, watermark);
                if !cut.is_null() {
                    writer.garbage.versions.push(cut);
                    report.chains_cut += 1;
                }
                // A key is gone for good when its newest version is a deletion every snapshot sees (at or below
                // the watermark): after the cut that deletion is all that is left. An empty chain (an install
                // taken back) is gone too.
                if head.is_null() || ((*head).is_tombstone() && (*head).version <= watermark) {
                    dead.push(entry.key.clone());
                }
                last = Some(entry);
                visited += 1;
                position = self.index.advance(at);
            }
            position.is_none()
        };
        let next_cursor = if reached_end {
            None
        } else {
            last.map(|entry| entry.key.clone())
        };
        report.keys_visited += visited;
        if !dead.is_empty() {
            report.keys_unlinked += self.index.remove(dead.iter(), &mut writer.setting_aside);
            Self::file_set_aside(writer);
        }
        next_cursor
    }

    /// A full collection: a fresh watermark, then every key, a slice at a time.
    pub(crate) fn gc(&self) -> GcReport {
        let mut report = GcReport::default();
        let mut cursor: Option<K> = None;
        let mut first = true;
        loop {
            let mut writer = sync::lock(&self.writer);
            if first {
                self.refresh_watermark(&mut writer);
                report.watermark = Version::new(writer.watermark);
                first = false;
            }
            cursor = self.sweep(&mut writer, cursor.as_ref(), GC_SLICE, &mut report);
            if cursor.is_none() {
                // What this pass removed can go too if no snapshot can reach it.
                self.refresh_watermark(&mut writer);
            }
            let garbage = std::mem::replace(&mut writer.garbage, Garbage::new());
            drop(writer);
            let (versions, keys) = garbage.free();
            self.versions_retained
                .fetch_sub(versions, Ordering::Relaxed);
            report.versions_freed += versions;
            report.keys_freed += keys;
            if cursor.is_none() {
                return report;
            }
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let (oldest, pinned) = self.pins.oldest();
        let version = self.feed.visible_version();
        let writer = sync::lock(&self.writer);
        let watermark = writer.watermark;
        let retired_keys = writer
            .retired
            .iter()
            .filter(|(_, item)| matches!(item, Retired::Chain(_)))
            .count();
        drop(writer);
        // How long the oldest snapshot has held versions back: since the first commit it cannot see.
        let oldest_pinned_age = oldest.map(|oldest| {
            if oldest >= version {
                return std::time::Duration::ZERO;
            }
            let superseded_at = self
                .feed
                .committed_at(oldest + 1)
                .or_else(|| self.feed.committed_at(self.feed.first_retained()));
            superseded_at.map_or(std::time::Duration::ZERO, |at| at.elapsed())
        });
        Stats {
            version: Version::new(version),
            keys: self.index.len(),
            // Relaxed: a statistic.
            versions_retained: self.versions_retained.load(Ordering::Relaxed),
            snapshots_pinned: pinned,
            oldest_pinned: oldest.map(Version::new),
            oldest_pinned_age,
            watermark: Version::new(watermark),
            retired_keys,
            oldest_resumable: Version::new(self.feed.first_retained().saturating_sub(1)),
            log_bytes_since_checkpoint: self
                .journal
                .as_ref()
                .map_or(0, |journal| journal.bytes_since_checkpoint()),
        }
    }
}

impl<K, V> Drop for Core<K, V> {
    fn drop(&mut self) {
        self.feed.close();
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut garbage = std::mem::replace(&mut writer.garbage, Garbage::new());
        garbage.retired.append(&mut writer.setting_aside);
        garbage
            .retired
            .extend(writer.retired.drain(..).map(|(_, item)| item));
        garbage.free();
        // SAFETY: `&mut self`: no snapshot (they borrow the store) or writer is left; retired nodes were
        // freed above and are not in the current tree.
        unsafe { self.index.free_all() };
    }
}

/// An ordered, in-memory multi-version key-value store.
///
/// Readers take a [`Snapshot`] — no lock, never blocked by writers — and see the store as of one commit.
/// Writers run [`Txn`]s at snapshot isolation ([`begin`](Store::begin)) or serializable
/// ([`begin_serializable`](Store::begin_serializable)); their writes are buffered until `commit`, which
/// checks for conflicts (first committer wins) and makes all of them visible at once, at the next
/// [`Version`]. [`subscribe`](Store::subscribe) follows every change to a range of keys in commit order.
/// Old versions are collected incrementally as commits go and by [`gc`](Store::gc), never while a
/// snapshot can still read them.
///
/// With the `durable` feature, `Store::open` adds a checksummed commit log and compacted snapshots on disk.
///
/// ```
/// use mvcc_store::Store;
///
/// let store = Store::<String, i64>::new();
/// let mut txn = store.begin();
/// txn.put("alice".to_string(), 100);
/// txn.put("bob".to_string(), 50);
/// let version = txn.commit()?;
///
/// let snapshot = store.snapshot();
/// assert_eq!(snapshot.version(), version);
/// assert_eq!(snapshot.get("alice"), Some(&100));
/// let total: i64 = snapshot.iter().map(|(_, balance)| balance).sum();
/// assert_eq!(total, 150);
/// # Ok::<(), mvcc_store::CommitError<String>>(())
/// ```
pub struct Store<K, V> {
    /// With a log: the checkpointer, the log and the directory lock. Declared before `core` so it is dropped
    /// first: the checkpointer thread stops before the core goes.
    #[cfg(feature = "durable")]
    pub(crate) background: Option<crate::durable::Background>,
    pub(crate) core: Arc<Core<K, V>>,
}

impl<K: Ord + Clone + Send + Sync, V: Send + Sync> Default for Store<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for Store<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("version", &Version::new(self.core.feed.visible_version()))
            .field("keys", &self.core.index.len())
            .finish_non_exhaustive()
    }
}

impl<K: Ord + Clone + Send + Sync, V: Send + Sync> Store<K, V> {
    /// An empty in-memory store with the default settings (see [`StoreBuilder`]).
    pub fn new() -> Self {
        StoreBuilder::new().build()
    }

    /// A builder for a store with other settings.
    pub fn builder() -> StoreBuilder<K, V> {
        StoreBuilder::new()
    }
}

impl<K: Ord + Clone, V> Store<K, V> {
    /// A consistent, read-only view of the store at its newest visible version.
    ///
    /// Takes no lock and never waits for a writer: it reads the visible version and pins it in a slot of
    /// its own (one CAS). While the snapshot lives, the versions it can see are kept.
    #[inline]
    pub fn snapshot(&self) -> Snapshot<'_, K, V> {
        self.core.snapshot()
    }

    /// Starts a transaction at snapshot isolation: it reads one snapshot, and its commit fails if another
    /// transaction committed a write to one of its keys after that snapshot (first committer wins).
    /// Snapshot isolation allows write skew (see the crate docs' Hermitage table).
    pub fn begin(&self) -> Txn<'_, K, V> {
        Txn::new(self.core.snapshot(), Isolation::Snapshot)
    }

    /// Starts a serializable transaction: as [`begin`](Self::begin), and its commit also fails if a key it
    /// read, or a key inside a range it read, was changed after its snapshot. Committed transactions are
    /// then equivalent to running one at a time in version order.
    pub fn begin_serializable(&self) -> Txn<'_, K, V> {
        Txn::new(self.core.snapshot(), Isolation::Serializable)
    }

    /// The newest visible value of `key` and the version that wrote it.
    pub fn get_versioned<Q>(&self, key: &Q) -> Option<(Version, Arc<V>)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let snapshot = self.snapshot();
        snapshot
            .get_versioned_arc(key)
            .map(|(version, value)| (version, value.clone()))
    }

    /// The newest visible value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get_versioned(key).map(|(_, value)| value)
    }

    /// Writes `value` at `key` if the key's newest version is `expected` (`None`: the key is absent or
    /// deleted), as one commit. Returns the new version.
    ///
    /// # Errors
    ///
    /// [`CommitError::Conflict`] with [`ConflictKind::VersionMismatch`] if the key's newest version is not
    /// `expected`; with a log, the log's errors.
    pub fn compare_and_swap(
        &self,
        key: K,
        expected: Option<Version>,
        value: impl Into<Arc<V>>,
    ) -> Result<Version, CommitError<K>> {
        self.core.commit(CommitRequest {
            snapshot: None,
            expectations: vec![(key.clone(), expected.map(Version::get))],
            writes: vec![(key, Some(value.into()))],
            reads: Vec::new(),
        })
    }

    /// Writes `value` at `key` as one commit, whatever the key held. Returns the new version.
    ///
    /// # Errors
    ///
    /// Only with a log: the log's errors.
    pub fn put(&self, key: K, value: impl Into<Arc<V>>) -> Result<Version, CommitError<K>> {
        self.core.commit(CommitRequest {
            snapshot: None,
            expectations: Vec::new(),
            writes: vec![(key, Some(value.into()))],
            reads: Vec::new(),
        })
    }

    /// Deletes `key` as one commit (a commit even if the key is absent). Returns the new version.
    ///
    /// # Errors
    ///
    /// Only with a log: the log's errors.
    pub fn delete(&self, key: K) -> Result<Version, CommitError<K>> {
        self.core.commit(CommitRequest {
            snapshot: None,
            expectations: Vec::new(),
            writes: vec![(key, None)],
            reads: Vec::new(),
        })
    }

    /// Follows every committed change to the keys in `range`, in commit order, each with its version.
    ///
    /// With `from: None` it starts after the newest visible version (only future changes). With
    /// `from: Some(v)` it resumes after `v`: the first change delivered is from version `v + 1`, so a
    /// consumer that stored the version of the last change it processed resumes with no gap and no
    /// duplicate. The store keeps the changes of its last [`history`](StoreBuilder::history) commits (with a
    /// log, also those replayed on open) for this.
    ///
    /// A subscriber that falls more than `history` commits behind is not waited for: it receives
    /// [`Lagged`](crate::Lagged) and goes on from the oldest change still kept.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::Compacted`] if the changes after `v` are no longer kept (it names the oldest
    /// version a subscription can resume from); [`SubscribeError::AheadOfStore`] if `v` is newer than the
    /// store.
    pub fn subscribe<R: RangeBounds<K>>(
        &self,
        range: R,
        from: Option<Version>,
    ) -> Result<Subscription<K, V>, SubscribeError> {
        let feed = &self.core.feed;
        let newest = feed.visible_version();
        let after = match from {
            None => newest,
            Some(from) => {
                let from = from.get();
                if from > newest {
                    return Err(SubscribeError::AheadOfStore {
                        requested: Version::new(from),
                        newest: Version::new(newest),
                    });
                }
                let first_retained = feed.first_retained();
                if from + 1 < first_retained {
                    return Err(SubscribeError::Compacted {
                        requested: Version::new(from),
                        oldest_available: Version::new(first_retained - 1),
                    });
                }
                from
            }
        };
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        Ok(Subscription::new(Arc::clone(feed), range, after + 1))
    }

    /// Runs a full garbage collection now: computes the watermark (the oldest pinned version) and, a slice
    /// of keys at a time so commits go on, frees every version no snapshot can read and every deleted key
    /// no snapshot can see. Commits already do this a little at a time; call `gc` after releasing an old
    /// snapshot to give memory back at once.
    pub fn gc(&self) -> GcReport {
        self.core.gc()
    }

    /// Counters: versions retained, the oldest pinned snapshot and how long it has held versions back, and
    /// more (see [`Stats`]).
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// The newest visible version.
    pub fn version(&self) -> Version {
        Version::new(self.core.feed.visible_version())
    }
}

/// Settings for a [`Store`].
///
/// ```
/// use mvcc_store::Store;
///
/// let store = Store::<u64, String>::builder()
///     .history(10_000)
///     .gc_keys_per_commit(8)
///     .build();
/// # drop(store);
/// ```
#[must_use]
pub struct StoreBuilder<K, V> {
    pub(crate) history: usize,
    pub(crate) gc_keys_per_commit: usize,
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) checkpoint_bytes: u64,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> fmt::Debug for StoreBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("history", &self.history)
            .field("gc_keys_per_commit", &self.gc_keys_per_commit)
            .finish()
    }
}

impl<K, V> Clone for StoreBuilder<K, V> {
    fn clone(&self) -> Self {
        StoreBuilder {
            history: self.history,
            gc_keys_per_commit: self.gc_keys_per_commit,
            checkpoint_bytes: self.checkpoint_bytes,
            _types: PhantomData,
        }
    }
}

impl<K, V> Default for StoreBuilder<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> StoreBuilder<K, V> {
    /// The default settings: a history of 1024 commits, 4 keys swept per commit.
    pub fn new() -> Self {
        StoreBuilder {
            history: 1024,
            gc_keys_per_commit: 4,
            checkpoint_bytes: 64 << 20,
            _types: PhantomData,
        }
    }

    /// How many of the latest commits the store keeps for subscriptions to read (and to resume from); a
    /// subscriber further behind lags. At least 1, at most 2^24. Default 1024.
    pub fn history(mut self, commits: usize) -> Self {
        self.history = commits;
        self
    }

    /// How many keys each commit visits, on average, to collect old versions of keys that are no longer
    /// written and deleted keys. 0 leaves that to [`Store::gc`] (overwritten keys are still collected when
    /// written). Default 4.
    pub fn gc_keys_per_commit(mut self, keys: usize) -> Self {
        self.gc_keys_per_commit = keys;
        self
    }

    pub(crate) fn config(&self) -> Result<Config, BuildError> {
        if self.history == 0 {
            return Err(BuildError::Zero { field: "history" });
        }
        if self.history > MAX_HISTORY {
            return Err(BuildError::TooLarge {
                field: "history",
                value: self.history,
                max: MAX_HISTORY,
            });
        }
        Ok(Config {
            history: self.history,
            gc_keys_per_commit: self.gc_keys_per_commit,
        })
    }
}

impl<K: Ord + Clone + Send + Sync, V: Send + Sync> StoreBuilder<K, V> {
    /// Builds an empty in-memory store.
    ///
    /// # Panics
    ///
    /// If a setting is out of range (see [`try_build`](Self::try_build), which returns the error instead).
    pub fn build(self) -> Store<K, V> {
        match self.try_build() {
            Ok(store) => store,
            Err(error) => panic!("invalid store settings: {error}"),
        }
    }

    /// Builds an empty in-memory store.
    ///
    /// # Errors
    ///
    /// [`BuildError`] naming the setting that is out of range.
    pub fn try_build(self) -> Result<Store<K, V>, BuildError> {
        Ok(Store {
            #[cfg(feature = "durable")]
            background: None,
            core: Arc::new(Core::new(self.config()?, 0)),
        })
    }
}
