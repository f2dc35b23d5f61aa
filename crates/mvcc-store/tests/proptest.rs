//! State-machine property test: random interleavings of transactions (both isolation levels), held
//! snapshots, blind writes, compare-and-swap, garbage collection and subscriptions, on one thread, against a
//! model made of every key's full version list and each open transaction's snapshot, buffered writes, reads
//! and expectations.
//!
//! The model predicts every read (value and version; values are unique, so a wrong version shows), every
//! commit's outcome (its version, or the exact conflict: key, kind and versions, the first check to fail in
//! the store's order), every change and lag a subscription delivers and its `delivered_through`, the
//! errors of a subscription that starts too far back or ahead, and the statistics it determines. After
//! every step it also reads every key through the store, each held snapshot and each snapshot-isolated
//! transaction, so a collection that changed what someone can see shows at once.
//!
//! It tracks which keys have a node in the store's index, since a serializable read of a key with a node is
//! guarded by that key (read-write) and a read of a key without one by the gap between its neighbours
//! (phantom): a deleted key keeps its node until the collector unlinks it. `gc()` unlinks exactly the
//! deleted keys whose deletion every snapshot sees; the background sweep a commit runs may do the same with
//! the watermark it last computed, so after a commit the model learns from `Stats::keys` how many keys it
//! unlinked and checks that they are the oldest deletions, none newer than a pinned or the visible version.
//!
//! Settings are random too: a history of 1 to 5 commits (so subscriptions lag) or the default, and the
//! background sweep off or on. `Op::Burst` makes runs of commits long enough for a commit to compute a
//! fresh watermark (every 64 commits) and its sweep to unlink keys.
//!
//! Under Miri the case count drops to 4, sequences to 20 operations, and failures are not persisted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::{Bound, RangeBounds};

use mvcc_store::{
    CommitError, Conflict, ConflictKind, Isolation, Lagged, Snapshot, Store, Subscription, Txn,
    Version,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 256 });
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

/// The longest operation sequence.
const MAX_OPS: usize = if cfg!(miri) { 20 } else { 100 };

/// Keys are `0..KEYS`; range bounds go one past, to `KEYS`.
const KEYS: u8 = 8;

/// The most transactions, snapshots and subscriptions open at once.
const MAX_TXNS: usize = 4;
const MAX_SNAPSHOTS: usize = 4;
const MAX_SUBSCRIPTIONS: usize = 4;

type KeyRange = (Bound<u8>, Bound<u8>);

#[derive(Clone, Debug)]
struct Settings {
    history: usize,
    gc_keys_per_commit: usize,
    /// The range of the subscription opened on the empty store (a second one, from version 0, covers
    /// every key).
    subscribed: KeyRange,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        prop_oneof![1 => 1usize..=5, 1 => Just(1024)],
        prop_oneof![Just(0usize), Just(1), Just(4)],
        key_range(),
    )
        .prop_map(|(history, gc_keys_per_commit, subscribed)| Settings {
            history,
            gc_keys_per_commit,
            subscribed,
        })
}

fn bound() -> impl Strategy<Value = Bound<u8>> {
    prop_oneof![
        1 => Just(Bound::Unbounded),
        2 => (0..=KEYS).prop_map(Bound::Included),
        2 => (0..=KEYS).prop_map(Bound::Excluded),
    ]
}

fn key_range() -> impl Strategy<Value = KeyRange> {
    (bound(), bound())
}

fn key() -> impl Strategy<Value = u8> {
    0..KEYS
}

/// The version an expectation or a compare-and-swap names, chosen when the operation runs.
#[derive(Clone, Copy, Debug)]
enum Expected {
    /// Absent or deleted.
    Absent,
    /// The key's newest live version now (absent if it has none): holds unless something changes first.
    Newest,
    /// The key's live version at the transaction's snapshot (for a compare-and-swap: at the version before
    /// the newest): holds unless the key changed since.
    Visible,
    /// Any version from 0 to one past the newest, modulo.
    Number(u8),
}

fn expected() -> impl Strategy<Value = Expected> {
    prop_oneof![
        1 => Just(Expected::Absent),
        2 => Just(Expected::Newest),
        2 => Just(Expected::Visible),
        1 => any::<u8>().prop_map(Expected::Number),
    ]
}

/// Where a subscription opened mid-run starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// `None`: after the newest version.
    Now,
    /// This many versions back (saturating at 0); far enough back, the history no longer has it.
    Back(u8),
    /// One past the newest version: refused.
    Ahead,
}

/// One step. Indices pick among the open transactions, snapshots or subscriptions, modulo their number; a
/// step that needs one when none is open does nothing.
#[derive(Clone, Debug)]
enum Op {
    Begin(Isolation),
    TxnGet {
        txn: usize,
        key: u8,
    },
    TxnRange {
        txn: usize,
        range: KeyRange,
    },
    TxnPut {
        txn: usize,
        key: u8,
    },
    TxnDelete {
        txn: usize,
        key: u8,
    },
    TxnExpect {
        txn: usize,
        key: u8,
        expected: Expected,
    },
    Commit {
        txn: usize,
    },
    Abort {
        txn: usize,
    },
    TakeSnapshot,
    DropSnapshot {
        snapshot: usize,
    },
    SnapshotGet {
        snapshot: usize,
        key: u8,
    },
    SnapshotRange {
        snapshot: usize,
        range: KeyRange,
    },
    Put {
        key: u8,
    },
    Delete {
        key: u8,
    },
    CompareAndSwap {
        key: u8,
        expected: Expected,
    },
    /// This many blind puts to one key: to reach the end of the history sooner, and the 64 commits after
    /// which a commit computes a fresh watermark for its background sweep.
    Burst {
        key: u8,
        commits: u8,
    },
    Gc,
    Subscribe {
        range: KeyRange,
        from: Start,
    },
    /// Takes up to this many items from a subscription with `try_next`.
    Drain {
        subscription: usize,
        items: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let txn = || 0..MAX_TXNS;
    let snapshot = || 0..MAX_SNAPSHOTS;
    prop_oneof![
        4 => prop_oneof![2 => Just(Isolation::Snapshot), 3 => Just(Isolation::Serializable)].prop_map(Op::Begin),
        8 => (txn(), key()).prop_map(|(txn, key)| Op::TxnGet { txn, key }),
        3 => (txn(), key_range()).prop_map(|(txn, range)| Op::TxnRange { txn, range }),
        6 => (txn(), key()).prop_map(|(txn, key)| Op::TxnPut { txn, key }),
        2 => (txn(), key()).prop_map(|(txn, key)| Op::TxnDelete { txn, key }),
        2 => (txn(), key(), expected()).prop_map(|(txn, key, expected)| Op::TxnExpect { txn, key, expected }),
        5 => txn().prop_map(|txn| Op::Commit { txn }),
        1 => txn().prop_map(|txn| Op::Abort { txn }),
        1 => Just(Op::TakeSnapshot),
        1 => snapshot().prop_map(|snapshot| Op::DropSnapshot { snapshot }),
        1 => (snapshot(), key()).prop_map(|(snapshot, key)| Op::SnapshotGet { snapshot, key }),
        1 => (snapshot(), key_range()).prop_map(|(snapshot, range)| Op::SnapshotRange { snapshot, range }),
        3 => key().prop_map(|key| Op::Put { key }),
        3 => key().prop_map(|key| Op::Delete { key }),
        2 => (key(), expected()).prop_map(|(key, expected)| Op::CompareAndSwap { key, expected }),
        1 => (key(), prop_oneof![3 => 1u8..=16, 1 => Just(64)])
            .prop_map(|(key, commits)| Op::Burst { key, commits }),
        2 => Just(Op::Gc),
        1 => (key_range(), prop_oneof![Just(Start::Now), (0u8..8).prop_map(Start::Back), Just(Start::Ahead)])
            .prop_map(|(range, from)| Op::Subscribe { range, from }),
        2 => (0..MAX_SUBSCRIPTIONS, 1usize..=4).prop_map(|(subscription, items)| Op::Drain { subscription, items }),
    ]
}

/// What a serializable transaction's read guards, as the model sees it.
#[derive(Clone, Debug)]
enum ModelRead {
    /// A key that had a node when read.
    Key(u8),
    /// Every key strictly between these two (`None`: the end of the key space): the neighbours, with
    /// nodes, of a key read that had none.
    Gap(Option<u8>, Option<u8>),
    Range(KeyRange),
}

/// An open transaction, as the model sees it.
#[derive(Debug)]
struct ModelTxn {
    snapshot: u64,
    isolation: Isolation,
    writes: BTreeMap<u8, Option<u32>>,
    reads: Vec<ModelRead>,
    expectations: Vec<(u8, Option<u64>)>,
}

/// A change to one key: the key and its new value (`None`: deleted).
type Change = (u8, Option<u32>);

/// A subscription, as the model sees it: a copy of the store's delivery state.
#[derive(Debug)]
struct ModelSubscription {
    range: KeyRange,
    /// The next version to look at.
    next: u64,
    /// The commit being delivered and its changes in range not delivered yet.
    current: Option<(u64, VecDeque<Change>)>,
}

/// What a subscription delivers: a change (version, key, value) or a lag.
type Delivery = Result<(u64, u8, Option<u32>), Lagged>;

/// A commit's outcome: its version, or the conflict that refused it.
type Outcome = Result<u64, Conflict<u8>>;

/// The store as it should be.
#[derive(Debug)]
struct Model {
    /// Every version of every key ever written, oldest first (`None`: a deletion). Nothing is collected.
    versions: BTreeMap<u8, Vec<(u64, Option<u32>)>>,
    /// The keys with a node in the store's index: written at least once, and not unlinked since.
    nodes: BTreeSet<u8>,
    /// The changes of each commit (version `i + 1` at `i`), sorted by key.
    commits: Vec<Vec<Change>>,
    history: u64,
    /// Values are unique, so a read returning the wrong version's value shows.
    next_value: u32,
}

impl Model {
    fn new(history: usize) -> Self {
        Model {
            versions: BTreeMap::new(),
            nodes: BTreeSet::new(),
            commits: Vec::new(),
            history: history as u64,
            next_value: 0,
        }
    }

    /// The newest version.
    fn version(&self) -> u64 {
        self.commits.len() as u64
    }

    fn fresh_value(&mut self) -> u32 {
        self.next_value += 1;
        self.next_value
    }

    /// The key's version a snapshot at `at` sees, deletions included.
    fn visible(&self, key: u8, at: u64) -> Option<(u64, Option<u32>)> {
        self.versions
            .get(&key)?
            .iter()
            .rev()
            .find(|(version, _)| *version <= at)
            .copied()
    }

    /// The key's value at `at`, and the version that wrote it.
    fn value_at(&self, key: u8, at: u64) -> Option<(u64, u32)> {
        let (version, value) = self.visible(key, at)?;
        value.map(|value| (version, value))
    }

    /// Every key and value in `range` at `at`.
    fn range_at(&self, range: &KeyRange, at: u64) -> Vec<(u8, u32)> {
        (0..KEYS)
            .filter(|key| range.contains(key))
            .filter_map(|key| self.value_at(key, at).map(|(_, value)| (key, value)))
            .collect()
    }

    /// The key's newest version, a deletion included (0: never written).
    fn newest(&self, key: u8) -> u64 {
        self.versions
            .get(&key)
            .and_then(|versions| versions.last())
            .map_or(0, |(version, _)| *version)
    }

    /// The key's newest version if it is not a deletion.
    fn newest_live(&self, key: u8) -> Option<u64> {
        let (version, value) = self.versions.get(&key)?.last()?;
        value.map(|_| *version)
    }

    /// The oldest version whose changes a subscription can still read.
    fn first_retained(&self) -> u64 {
        self.version().saturating_sub(self.history) + 1
    }

    fn resolve(&self, expected: Expected, key: u8, visible_at: u64) -> Option<u64> {
        match expected {
            Expected::Absent => None,
            Expected::Newest => self.newest_live(key),
            Expected::Visible => self.value_at(key, visible_at).map(|(version, _)| version),
            Expected::Number(number) => Some(u64::from(number) % (self.version() + 2)),
        }
    }

    /// What a serializable read of `key` guards: the key if it has a node, else the gap around it.
    fn read_of(&self, key: u8) -> ModelRead {
        if self.nodes.contains(&key) {
            return ModelRead::Key(key);
        }
        ModelRead::Gap(
            self.nodes.range(..key).next_back().copied(),
            self.nodes
                .range((Bound::Excluded(key), Bound::Unbounded))
                .next()
                .copied(),
        )
    }

    /// The first key (in key order) for which `inside` holds and that changed after `snapshot`: a phantom.
    fn phantom(&self, snapshot: u64, inside: impl Fn(u8) -> bool) -> Result<(), Conflict<u8>> {
        for key in (0..KEYS).filter(|&key| inside(key)) {
            let newest = self.newest(key);
            if newest > snapshot {
                // Nothing after the oldest pinned version is collected, so the store walks this key.
                assert!(
                    self.nodes.contains(&key),
                    "model: changed key {key} has no node"
                );
                return Err(Conflict {
                    key,
                    kind: ConflictKind::Phantom {
                        snapshot: Version::new(snapshot),
                        committed: Version::new(newest),
                    },
                });
            }
        }
        Ok(())
    }

    /// The checks of a commit, in the store's order: expectations, then (with a snapshot) written keys in
    /// key order, then reads in the order made.
    fn validate(
        &self,
        snapshot: Option<u64>,
        writes: &BTreeMap<u8, Option<u32>>,
        reads: &[ModelRead],
        expectations: &[(u8, Option<u64>)],
    ) -> Result<(), Conflict<u8>> {
        for &(key, expected) in expectations {
            let actual = self.newest_live(key);
            if actual != expected {
                return Err(Conflict {
                    key,
                    kind: ConflictKind::VersionMismatch {
                        expected: expected.map(Version::new),
                        actual: actual.map(Version::new),
                    },
                });
            }
        }
        let Some(snapshot) = snapshot else {
            return Ok(());
        };
        let versions = |committed: u64| (Version::new(snapshot), Version::new(committed));
        for &key in writes.keys() {
            let newest = self.newest(key);
            if newest > snapshot {
                let (snapshot, committed) = versions(newest);
                return Err(Conflict {
                    key,
                    kind: ConflictKind::WriteWrite {
                        snapshot,
                        committed,
                    },
                });
            }
        }
        for read in reads {
            match *read {
                ModelRead::Key(key) => {
                    let newest = self.newest(key);
                    if newest > snapshot {
                        let (snapshot, committed) = versions(newest);
                        return Err(Conflict {
                            key,
                            kind: ConflictKind::ReadWrite {
                                snapshot,
                                committed,
                            },
                        });
                    }
                }
                ModelRead::Gap(after, before) => self.phantom(snapshot, |key| {
                    after.is_none_or(|after| key > after)
                        && before.is_none_or(|before| key < before)
                })?,
                ModelRead::Range(ref range) => {
                    self.phantom(snapshot, |key| range.contains(&key))?
                }
            }
        }
        Ok(())
    }

    /// A commit: checks it and applies its writes at the next version. With no writes it returns the
    /// snapshot's version (or the newest, without one).
    fn commit(
        &mut self,
        snapshot: Option<u64>,
        writes: BTreeMap<u8, Option<u32>>,
        reads: &[ModelRead],
        expectations: &[(u8, Option<u64>)],
    ) -> Outcome {
        self.validate(snapshot, &writes, reads, expectations)?;
        if writes.is_empty() {
            return Ok(snapshot.unwrap_or(self.version()));
        }
        let version = self.version() + 1;
        for (&key, &value) in &writes {
            self.versions.entry(key).or_default().push((version, value));
            self.nodes.insert(key);
        }
        self.commits.push(writes.into_iter().collect());
        Ok(version)
    }

    /// A transaction's commit: one with nothing to write and nothing to check returns at once.
    fn commit_txn(&mut self, txn: ModelTxn) -> Outcome {
        if txn.writes.is_empty() && txn.expectations.is_empty() {
            return Ok(txn.snapshot);
        }
        self.commit(
            Some(txn.snapshot),
            txn.writes,
            &txn.reads,
            &txn.expectations,
        )
    }

    /// A transaction's view of `key`: its own write, else its snapshot's (with the version).
    fn txn_get(&self, txn: &ModelTxn, key: u8) -> Option<(Option<u64>, u32)> {
        match txn.writes.get(&key) {
            Some(written) => written.map(|value| (None, value)),
            None => self
                .value_at(key, txn.snapshot)
                .map(|(version, value)| (Some(version), value)),
        }
    }

    fn txn_range(&self, txn: &ModelTxn, range: &KeyRange) -> Vec<(u8, u32)> {
        (0..KEYS)
            .filter(|key| range.contains(key))
            .filter_map(|key| self.txn_get(txn, key).map(|(_, value)| (key, value)))
            .collect()
    }

    /// The next thing a subscription delivers with `try_next` (`None`: nothing yet), as the store's feed
    /// does it: a ring of the last `history` commits, and a lag past what it no longer holds.
    fn step(&self, subscription: &mut ModelSubscription) -> Option<Delivery> {
        loop {
            if let Some((version, changes)) = &mut subscription.current {
                if let Some((key, value)) = changes.pop_front() {
                    return Some(Ok((*version, key, value)));
                }
                subscription.current = None;
            }
            let next = subscription.next;
            if next > self.version() {
                return None;
            }
            let first_retained = self.first_retained();
            if next < first_retained {
                subscription.next = first_retained.max(next + 1);
                return Some(Err(Lagged {
                    missed_from: Version::new(next),
                    resumes_at: Version::new(subscription.next),
                }));
            }
            subscription.next += 1;
            let changes: VecDeque<_> = self.commits[next as usize - 1]
                .iter()
                .filter(|(key, _)| subscription.range.contains(key))
                .copied()
                .collect();
            if !changes.is_empty() {
                subscription.current = Some((next, changes));
            }
        }
    }

    /// Unlinks, as `gc()` does, every deleted key whose deletion is at or below `watermark`; returns how
    /// many.
    fn unlink_deleted(&mut self, watermark: u64) -> usize {
        let unlinked: Vec<u8> = self
            .nodes
            .iter()
            .copied()
            .filter(|&key| self.newest_live(key).is_none() && self.newest(key) <= watermark)
            .collect();
        for key in &unlinked {
            self.nodes.remove(key);
        }
        unlinked.len()
    }

    /// After a commit at `version`: the store's background sweep may have unlinked deleted keys with the
    /// watermark of an earlier collection (at most `bound`, the oldest version pinned or visible before the
    /// commit). It shows only in the number of keys; the keys it unlinked are the oldest deletions.
    fn learn_sweep(
        &mut self,
        indexed: usize,
        version: u64,
        bound: u64,
        sweeps: bool,
    ) -> TestCaseResult {
        prop_assert!(
            indexed <= self.nodes.len(),
            "the index has {} keys, more than the {} written and not unlinked",
            indexed,
            self.nodes.len()
        );
        let unlinked = self.nodes.len() - indexed;
        if unlinked == 0 {
            return Ok(());
        }
        prop_assert!(
            sweeps,
            "{} keys unlinked by a commit with the sweep off",
            unlinked
        );
        let mut deleted: Vec<(u64, u8)> = self
            .nodes
            .iter()
            .copied()
            .filter(|&key| self.newest_live(key).is_none())
            .map(|key| (self.newest(key), key))
            .collect();
        deleted.sort_unstable();
        prop_assert!(
            unlinked <= deleted.len(),
            "{} keys unlinked, only {} deleted ones: {:?}",
            unlinked,
            deleted.len(),
            deleted
        );
        let threshold = deleted[unlinked - 1].0;
        prop_assert!(
            threshold <= bound && threshold < version,
            "a deletion at {} unlinked, above the oldest pinned or visible version {}",
            threshold,
            bound
        );
        // Keys deleted by one commit go together: the sweep unlinks by version.
        prop_assert!(
            deleted
                .get(unlinked)
                .is_none_or(|(next, _)| *next > threshold),
            "{} keys unlinked is not a whole set of deletions: {:?}",
            unlinked,
            deleted
        );
        for (_, key) in &deleted[..unlinked] {
            self.nodes.remove(key);
        }
        Ok(())
    }
}

/// A commit's outcome: the version, or the conflict (any other error fails the test).
fn outcome(result: Result<Version, CommitError<u8>>) -> Result<Outcome, TestCaseError> {
    match result {
        Ok(version) => Ok(Ok(version.get())),
        Err(error) => match error.conflict() {
            Some(conflict) => Ok(Err(conflict.clone())),
            None => Err(TestCaseError::fail(format!("not a conflict: {error}"))),
        },
    }
}

fn delivery(item: Result<mvcc_store::Change<u8, u32>, Lagged>) -> Delivery {
    item.map(|change| {
        (
            change.version.get(),
            change.key,
            change.value.as_deref().copied(),
        )
    })
}

/// The version a subscription has delivered every change through, as documented ("resume with
/// `subscribe(range, Some(version))` to go on from here with no gap and no duplicate"): the version before
/// the commit being delivered while some of its changes are left, that commit once all are delivered, and
/// otherwise the version before the next one to look at.
fn delivered_through(subscription: &ModelSubscription) -> u64 {
    match &subscription.current {
        Some((version, left)) if !left.is_empty() => version - 1,
        Some((version, _)) => *version,
        None => subscription.next - 1,
    }
}

/// The versions the open snapshots and transactions pin.
fn pinned(
    snapshots: &[(Snapshot<'_, u8, u32>, u64)],
    txns: &[(Txn<'_, u8, u32>, ModelTxn)],
) -> Vec<u64> {
    snapshots
        .iter()
        .map(|(_, version)| *version)
        .chain(txns.iter().map(|(_, txn)| txn.snapshot))
        .collect()
}

fn snapshot_range(snapshot: &Snapshot<'_, u8, u32>, range: &KeyRange) -> Vec<(u8, u32)> {
    let entries = if *range == (Bound::Unbounded, Bound::Unbounded) {
        snapshot.iter()
    } else {
        snapshot.range::<u8, _>(*range)
    };
    entries.map(|(key, value)| (*key, *value)).collect()
}

fn txn_range(txn: &Txn<'_, u8, u32>, range: &KeyRange) -> Vec<(u8, u32)> {
    let entries = if *range == (Bound::Unbounded, Bound::Unbounded) {
        txn.iter()
    } else {
        txn.range::<u8, _>(*range)
    };
    entries.map(|(key, value)| (*key, *value)).collect()
}

fn txn_get(txn: &Txn<'_, u8, u32>, key: u8) -> Option<(Option<u64>, u32)> {
    txn.get_versioned(&key)
        .map(|(version, value)| (version.map(Version::get), *value))
}

/// Everything the model determines about the store's state now: the statistics, every value the store,
/// each held snapshot and each snapshot-isolated transaction sees (a serializable one would record the
/// reads), and each transaction's version and write count.
fn check_state(
    store: &Store<u8, u32>,
    model: &Model,
    snapshots: &[(Snapshot<'_, u8, u32>, u64)],
    txns: &[(Txn<'_, u8, u32>, ModelTxn)],
) -> TestCaseResult {
    let stats = store.stats();
    let pins = pinned(snapshots, txns);
    prop_assert_eq!(stats.version, Version::new(model.version()));
    prop_assert_eq!(store.version(), Version::new(model.version()));
    prop_assert_eq!(stats.keys, model.nodes.len(), "keys in the index");
    prop_assert_eq!(stats.snapshots_pinned, pins.len());
    prop_assert_eq!(
        stats.oldest_pinned,
        pins.iter().min().copied().map(Version::new)
    );
    prop_assert!(
        stats.watermark.get() <= pins.iter().copied().fold(model.version(), u64::min),
        "watermark {:?} above a pinned or the visible version",
        stats.watermark
    );
    prop_assert_eq!(
        stats.oldest_resumable,
        Version::new(model.first_retained() - 1)
    );
    for key in 0..KEYS {
        prop_assert_eq!(
            store
                .get_versioned(&key)
                .map(|(version, value)| (version.get(), *value)),
            model.value_at(key, model.version()),
            "store.get_versioned({})",
            key
        );
    }
    let everything = (Bound::Unbounded, Bound::Unbounded);
    for (snapshot, version) in snapshots {
        prop_assert_eq!(snapshot.version(), Version::new(*version));
        for key in 0..KEYS {
            prop_assert_eq!(
                snapshot
                    .get_versioned(&key)
                    .map(|(version, value)| (version.get(), *value)),
                model.value_at(key, *version),
                "snapshot at {} reads key {}",
                version,
                key
            );
        }
        prop_assert_eq!(
            snapshot_range(snapshot, &everything),
            model.range_at(&everything, *version)
        );
    }
    for (txn, model_txn) in txns {
        prop_assert_eq!(txn.version(), Version::new(model_txn.snapshot));
        prop_assert_eq!(txn.isolation(), model_txn.isolation);
        prop_assert_eq!(txn.write_count(), model_txn.writes.len());
        if model_txn.isolation == Isolation::Snapshot {
            for key in 0..KEYS {
                prop_assert_eq!(
                    txn_get(txn, key),
                    model.txn_get(model_txn, key),
                    "txn reads key {}",
                    key
                );
            }
            prop_assert_eq!(
                txn_range(txn, &everything),
                model.txn_range(model_txn, &everything)
            );
        }
    }
    Ok(())
}

fn run(settings: &Settings, ops: &[Op]) -> TestCaseResult {
    let store = Store::<u8, u32>::builder()
        .history(settings.history)
        .gc_keys_per_commit(settings.gc_keys_per_commit)
        .build();
    let sweeps = settings.gc_keys_per_commit > 0;
    let mut model = Model::new(settings.history);
    let mut subscriptions: Vec<(Subscription<u8, u32>, ModelSubscription)> = Vec::new();
    for (range, from) in [
        (settings.subscribed, None),
        ((Bound::Unbounded, Bound::Unbounded), Some(Version::ZERO)),
    ] {
        let subscription = store
            .subscribe(range, from)
            .expect("subscribe to the empty store");
        subscriptions.push((
            subscription,
            ModelSubscription {
                range,
                next: 1,
                current: None,
            },
        ));
    }
    // Both borrow the store, so they are dropped before it.
    let mut snapshots: Vec<(Snapshot<'_, u8, u32>, u64)> = Vec::new();
    let mut txns: Vec<(Txn<'_, u8, u32>, ModelTxn)> = Vec::new();

    for (step, op) in ops.iter().enumerate() {
        // Before the step: the bound on any watermark a commit's sweep may use.
        let before = model.version();
        let oldest = pinned(&snapshots, &txns).into_iter().fold(before, u64::min);
        // Set by the steps that commit: the expected outcome, and the actual one.
        let mut committed: Option<(Outcome, Outcome)> = None;
        match *op {
            Op::Begin(isolation) => {
                if txns.len() < MAX_TXNS {
                    let txn = match isolation {
                        Isolation::Serializable => store.begin_serializable(),
                        _ => store.begin(),
                    };
                    txns.push((
                        txn,
                        ModelTxn {
                            snapshot: model.version(),
                            isolation,
                            writes: BTreeMap::new(),
                            reads: Vec::new(),
                            expectations: Vec::new(),
                        },
                    ));
                }
            }
            Op::TxnGet { txn, key } => {
                if let Some((txn, model_txn)) = pick(&mut txns, txn) {
                    let expected = model.txn_get(model_txn, key);
                    if model_txn.isolation == Isolation::Serializable
                        && !model_txn.writes.contains_key(&key)
                    {
                        model_txn.reads.push(model.read_of(key));
                    }
                    prop_assert_eq!(txn_get(txn, key), expected, "step {}: {:?}", step, op);
                }
            }
            Op::TxnRange { txn, ref range } => {
                if let Some((txn, model_txn)) = pick(&mut txns, txn) {
                    if model_txn.isolation == Isolation::Serializable {
                        model_txn.reads.push(ModelRead::Range(*range));
                    }
                    prop_assert_eq!(
                        txn_range(txn, range),
                        model.txn_range(model_txn, range),
                        "step {}: {:?}",
                        step,
                        op
                    );
                }
            }
            Op::TxnPut { txn, key } => {
                let value = model.fresh_value();
                if let Some((txn, model_txn)) = pick(&mut txns, txn) {
                    txn.put(key, value);
                    model_txn.writes.insert(key, Some(value));
                }
            }
            Op::TxnDelete { txn, key } => {
                if let Some((txn, model_txn)) = pick(&mut txns, txn) {
                    txn.delete(key);
                    model_txn.writes.insert(key, None);
                }
            }
            Op::TxnExpect { txn, key, expected } => {
                if let Some((txn, model_txn)) = pick(&mut txns, txn) {
                    let expected = model.resolve(expected, key, model_txn.snapshot);
                    match expected {
                        Some(version) => txn.expect_version(&key, Version::new(version)),
                        None => txn.expect_absent(&key),
                    }
                    model_txn.expectations.push((key, expected));
                }
            }
            Op::Commit { txn } => {
                if !txns.is_empty() {
                    let (txn, model_txn) = txns.remove(txn % txns.len());
                    let actual = outcome(txn.commit())?;
                    committed = Some((model.commit_txn(model_txn), actual));
                }
            }
            Op::Abort { txn } => {
                if !txns.is_empty() {
                    let (txn, _) = txns.remove(txn % txns.len());
                    txn.abort();
                }
            }
            Op::TakeSnapshot => {
                if snapshots.len() < MAX_SNAPSHOTS {
                    snapshots.push((store.snapshot(), model.version()));
                }
            }
            Op::DropSnapshot { snapshot } => {
                if !snapshots.is_empty() {
                    snapshots.remove(snapshot % snapshots.len());
                }
            }
            Op::SnapshotGet { snapshot, key } => {
                if !snapshots.is_empty() {
                    let (snapshot, version) = &snapshots[snapshot % snapshots.len()];
                    prop_assert_eq!(
                        snapshot.get(&key).copied(),
                        model.value_at(key, *version).map(|(_, value)| value),
                        "step {}: {:?}",
                        step,
                        op
                    );
                }
            }
            Op::SnapshotRange {
                snapshot,
                ref range,
            } => {
                if !snapshots.is_empty() {
                    let (snapshot, version) = &snapshots[snapshot % snapshots.len()];
                    prop_assert_eq!(
                        snapshot_range(snapshot, range),
                        model.range_at(range, *version),
                        "step {}: {:?}",
                        step,
                        op
                    );
                }
            }
            Op::Put { key } => {
                let value = model.fresh_value();
                let actual = outcome(store.put(key, value))?;
                committed = Some((
                    model.commit(None, BTreeMap::from([(key, Some(value))]), &[], &[]),
                    actual,
                ));
            }
            Op::Delete { key } => {
                let actual = outcome(store.delete(key))?;
                committed = Some((
                    model.commit(None, BTreeMap::from([(key, None)]), &[], &[]),
                    actual,
                ));
            }
            Op::CompareAndSwap { key, expected } => {
                let value = model.fresh_value();
                let expected = model.resolve(expected, key, model.version().saturating_sub(1));
                let actual =
                    outcome(store.compare_and_swap(key, expected.map(Version::new), value))?;
                committed = Some((
                    model.commit(
                        None,
                        BTreeMap::from([(key, Some(value))]),
                        &[],
                        &[(key, expected)],
                    ),
                    actual,
                ));
            }
            Op::Burst { key, commits } => {
                for _ in 0..commits {
                    let value = model.fresh_value();
                    let oldest = pinned(&snapshots, &txns)
                        .into_iter()
                        .fold(model.version(), u64::min);
                    let actual = outcome(store.put(key, value))?;
                    let expected =
                        model.commit(None, BTreeMap::from([(key, Some(value))]), &[], &[]);
                    prop_assert_eq!(&actual, &expected, "step {}: {:?}", step, op);
                    let indexed = store.stats().keys;
                    model.learn_sweep(indexed, model.version(), oldest, sweeps)?;
                }
            }
            Op::Gc => {
                let report = store.gc();
                let watermark = oldest;
                prop_assert_eq!(
                    report.watermark,
                    Version::new(watermark),
                    "step {}: gc watermark",
                    step
                );
                let unlinked = model.unlink_deleted(watermark);
                prop_assert_eq!(
                    report.keys_unlinked,
                    unlinked,
                    "step {}: keys gc unlinked",
                    step
                );
                prop_assert_eq!(store.stats().watermark, Version::new(watermark));
            }
            Op::Subscribe { ref range, from } => {
                if subscriptions.len() < MAX_SUBSCRIPTIONS {
                    let newest = model.version();
                    let from = match from {
                        Start::Now => None,
                        Start::Back(back) => Some(newest.saturating_sub(u64::from(back))),
                        Start::Ahead => Some(newest + 1),
                    };
                    let result = store.subscribe(*range, from.map(Version::new));
                    let after = from.unwrap_or(newest);
                    if after > newest {
                        prop_assert_eq!(
                            result.err(),
                            Some(mvcc_store::SubscribeError::AheadOfStore {
                                requested: Version::new(after),
                                newest: Version::new(newest),
                            })
                        );
                    } else if after + 1 < model.first_retained() {
                        prop_assert_eq!(
                            result.err(),
                            Some(mvcc_store::SubscribeError::Compacted {
                                requested: Version::new(after),
                                oldest_available: Version::new(model.first_retained() - 1),
                            })
                        );
                    } else {
                        let subscription = result.map_err(|error| {
                            TestCaseError::fail(format!("step {step}: subscribe failed: {error}"))
                        })?;
                        subscriptions.push((
                            subscription,
                            ModelSubscription {
                                range: *range,
                                next: after + 1,
                                current: None,
                            },
                        ));
                    }
                }
            }
            Op::Drain {
                subscription,
                items,
            } => {
                let count = subscriptions.len();
                let (subscription, model_subscription) = &mut subscriptions[subscription % count];
                for _ in 0..items {
                    let expected = model.step(model_subscription);
                    let actual = subscription.try_next().map(delivery);
                    prop_assert_eq!(&actual, &expected, "step {}: {:?}", step, op);
                    prop_assert_eq!(
                        subscription.delivered_through(),
                        Version::new(delivered_through(model_subscription)),
                        "step {}: delivered_through",
                        step
                    );
                    if actual.is_none() {
                        break;
                    }
                }
            }
        }
        if let Some((expected, actual)) = committed {
            prop_assert_eq!(&actual, &expected, "step {}: {:?}", step, op);
            if model.version() > before {
                let indexed = store.stats().keys;
                model.learn_sweep(indexed, model.version(), oldest, sweeps)?;
            }
        }
        check_state(&store, &model, &snapshots, &txns)
            .map_err(|error| TestCaseError::fail(format!("after step {step} ({op:?}): {error}")))?;
    }

    // Everything let go: a collection unlinks every deleted key and the index holds the live ones.
    drop(txns);
    drop(snapshots);
    let report = store.gc();
    prop_assert_eq!(report.watermark, Version::new(model.version()));
    prop_assert_eq!(report.keys_unlinked, model.unlink_deleted(model.version()));
    check_state(&store, &model, &[], &[])?;
    let live = (0..KEYS)
        .filter(|&key| model.newest_live(key).is_some())
        .count();
    prop_assert_eq!(store.stats().keys, live);

    // Every subscription delivers the rest of the history, then nothing.
    for (subscription, model_subscription) in &mut subscriptions {
        loop {
            let expected = model.step(model_subscription);
            prop_assert_eq!(
                subscription.try_next().map(delivery),
                expected,
                "final drain"
            );
            if expected.is_none() {
                break;
            }
        }
        prop_assert_eq!(
            subscription.delivered_through(),
            Version::new(model.version())
        );
    }
    drop(store);
    for (subscription, _) in &mut subscriptions {
        prop_assert!(subscription.is_closed());
        prop_assert!(subscription.try_next().is_none());
    }
    Ok(())
}

/// The open transaction at `index` (modulo), if any.
fn pick<'v, 's>(
    txns: &'v mut [(Txn<'s, u8, u32>, ModelTxn)],
    index: usize,
) -> Option<&'v mut (Txn<'s, u8, u32>, ModelTxn)> {
    if txns.is_empty() {
        return None;
    }
    let count = txns.len();
    txns.get_mut(index % count)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matches_the_version_list_model(
        settings in settings(),
        ops in prop::collection::vec(op(), 0..MAX_OPS),
    ) {
        run(&settings, &ops)?;
    }
}
