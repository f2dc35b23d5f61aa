//! The store's behaviour, one operation at a time: reads, transactions, conflicts, expectations,
//! compare-and-swap, ranges and garbage collection.

use std::sync::Arc;

use mvcc_store::{CommitError, ConflictKind, Store, Version};

fn conflict_kind<K>(error: CommitError<K>) -> ConflictKind {
    match error {
        CommitError::Conflict(conflict) => conflict.kind,
        other => panic!(
            "expected a conflict, got another error: {}",
            describe(&other)
        ),
    }
}

fn describe<K>(error: &CommitError<K>) -> &'static str {
    match error {
        CommitError::Conflict(_) => "conflict",
        CommitError::Log { .. } => "log",
        CommitError::Encode { .. } => "encode",
        CommitError::Failed { .. } => "failed",
        _ => "other",
    }
}

#[test]
fn empty_store_is_at_version_zero() {
    let store = Store::<u32, u32>::new();
    let snapshot = store.snapshot();
    assert_eq!(snapshot.version(), Version::ZERO);
    assert_eq!(snapshot.get(&1), None);
    assert_eq!(snapshot.iter().count(), 0);
    assert_eq!(store.get_versioned(&1), None);
}

#[test]
fn each_commit_takes_the_next_version() {
    let store = Store::<u32, u32>::new();
    assert_eq!(store.put(1, 10).unwrap(), Version::new(1));
    assert_eq!(store.put(2, 20).unwrap(), Version::new(2));
    let mut txn = store.begin();
    txn.put(3, 30);
    txn.put(4, 40);
    assert_eq!(txn.commit().unwrap(), Version::new(3));
    assert_eq!(store.version(), Version::new(3));
    assert_eq!(
        store.get_versioned(&1),
        Some((Version::new(1), Arc::new(10)))
    );
    assert_eq!(
        store.get_versioned(&4),
        Some((Version::new(3), Arc::new(40)))
    );
}

#[test]
fn snapshot_sees_only_commits_up_to_its_version() {
    let store = Store::<u32, String>::new();
    store.put(1, "a".to_string()).unwrap();
    let old = store.snapshot();
    store.put(1, "b".to_string()).unwrap();
    store.put(2, "c".to_string()).unwrap();
    store.delete(1).unwrap();
    let new = store.snapshot();
    assert_eq!(old.get(&1).map(String::as_str), Some("a"));
    assert_eq!(old.get(&2), None);
    assert_eq!(new.get(&1), None);
    assert_eq!(new.get(&2).map(String::as_str), Some("c"));
    assert_eq!(
        old.get_versioned(&1)
            .map(|(version, value)| (version, value.as_str())),
        Some((Version::new(1), "a"))
    );
}

#[test]
fn transaction_reads_its_own_writes_and_nothing_leaks_before_commit() {
    let store = Store::<u32, u32>::new();
    store.put(1, 1).unwrap();
    let mut txn = store.begin();
    txn.put(1, 100);
    txn.put(2, 200);
    txn.delete(1);
    txn.put(3, 300);
    assert_eq!(txn.get(&1), None);
    assert_eq!(txn.get(&2), Some(&200));
    assert_eq!(store.get(&2), None, "an uncommitted write is visible");
    let seen: Vec<(u32, u32)> = txn.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(seen, vec![(2, 200), (3, 300)]);
    txn.commit().unwrap();
    assert_eq!(store.get(&1), None);
    assert_eq!(store.get(&3).as_deref(), Some(&300));
}

#[test]
fn dropped_transaction_changes_nothing() {
    let store = Store::<u32, u32>::new();
    {
        let mut txn = store.begin();
        txn.put(1, 1);
    }
    let mut txn = store.begin();
    txn.put(2, 2);
    txn.abort();
    assert_eq!(store.version(), Version::ZERO);
    assert_eq!(store.snapshot().iter().count(), 0);
}

#[test]
fn first_committer_wins_on_a_shared_key() {
    let store = Store::<u32, u32>::new();
    store.put(1, 0).unwrap();
    let mut first = store.begin();
    let mut second = store.begin();
    first.put(1, 1);
    second.put(1, 2);
    assert_eq!(first.commit().unwrap(), Version::new(2));
    let error = second.commit().unwrap_err();
    assert_eq!(
        error.conflict().map(|conflict| conflict.key),
        Some(1),
        "the conflict names the key"
    );
    assert_eq!(
        conflict_kind(error),
        ConflictKind::WriteWrite {
            snapshot: Version::new(1),
            committed: Version::new(2)
        }
    );
    assert_eq!(store.get(&1).as_deref(), Some(&1));
}

#[test]
fn disjoint_writes_both_commit_under_snapshot_isolation() {
    let store = Store::<u32, u32>::new();
    let mut first = store.begin();
    let mut second = store.begin();
    first.put(1, 1);
    second.put(2, 2);
    first.commit().unwrap();
    second.commit().unwrap();
    assert_eq!(store.snapshot().iter().count(), 2);
}

#[test]
fn serializable_fails_when_a_read_key_changed() {
    let store = Store::<u32, u32>::new();
    store.put(1, 0).unwrap();
    let mut txn = store.begin_serializable();
    assert_eq!(txn.get(&1), Some(&0));
    txn.put(2, 1);
    store.put(1, 5).unwrap();
    assert!(matches!(
        conflict_kind(txn.commit().unwrap_err()),
        ConflictKind::ReadWrite { .. }
    ));
}

#[test]
fn serializable_fails_when_an_absent_read_key_appears() {
    let store = Store::<u32, u32>::new();
    store.put(5, 0).unwrap();
    store.put(10, 0).unwrap();
    let mut txn = store.begin_serializable();
    assert_eq!(txn.get(&7), None);
    txn.put(2, 1);
    store.put(7, 5).unwrap();
    let error = txn.commit().unwrap_err();
    assert_eq!(error.conflict().unwrap().key, 7);
    assert!(matches!(conflict_kind(error), ConflictKind::Phantom { .. }));
}

#[test]
fn absent_reads_are_guarded_by_the_gap_between_neighbours() {
    let store = Store::<u32, u32>::new();
    store.put(5, 0).unwrap();
    store.put(10, 0).unwrap();

    // An insert inside the gap (5, 10) around the absent key 7 conflicts, even on another key.
    let mut txn = store.begin_serializable();
    assert_eq!(txn.get(&7), None);
    txn.put(2, 1);
    store.put(8, 5).unwrap();
    assert_eq!(txn.commit().unwrap_err().conflict().unwrap().key, 8);

    // Changes at the neighbours or outside the gap do not.
    let mut txn = store.begin_serializable();
    assert_eq!(txn.get(&6), None);
    txn.put(2, 2);
    store.put(5, 1).unwrap();
    store.put(10, 1).unwrap();
    store.put(100, 1).unwrap();
    txn.commit().unwrap();

    // Gaps at the ends of the index.
    let mut txn = store.begin_serializable();
    assert_eq!(txn.get(&1000), None);
    txn.put(3, 3);
    store.put(2000, 1).unwrap();
    assert_eq!(txn.commit().unwrap_err().conflict().unwrap().key, 2000);
    let mut txn = store.begin_serializable();
    assert_eq!(txn.get(&0), None);
    txn.put(3, 4);
    store.put(1, 1).unwrap();
    assert_eq!(txn.commit().unwrap_err().conflict().unwrap().key, 1);
}

#[test]
fn serializable_read_of_a_deleted_key_conflicts_with_its_reinsertion() {
    let store = Store::<u32, u32>::builder().gc_keys_per_commit(0).build();
    store.put(1, 0).unwrap();
    store.delete(1).unwrap();
    let mut txn = store.begin_serializable();
    assert_eq!(txn.get(&1), None);
    txn.put(2, 1);
    store.put(1, 9).unwrap();
    assert!(matches!(
        conflict_kind(txn.commit().unwrap_err()),
        ConflictKind::ReadWrite { .. }
    ));
}

#[test]
fn serializable_detects_phantoms_in_a_read_range() {
    let store = Store::<u32, u32>::new();
    store.put(10, 0).unwrap();
    let mut txn = store.begin_serializable();
    assert_eq!(txn.range(5..15).count(), 1);
    txn.put(100, 1);
    store.put(12, 5).unwrap();
    let error = txn.commit().unwrap_err();
    assert_eq!(error.conflict().unwrap().key, 12);
    assert!(matches!(conflict_kind(error), ConflictKind::Phantom { .. }));

    // A change outside the range does not conflict.
    let mut txn = store.begin_serializable();
    assert_eq!(txn.range(5..15).count(), 2);
    txn.put(100, 1);
    store.put(15, 5).unwrap();
    txn.commit().unwrap();
}

#[test]
fn snapshot_isolation_ignores_read_changes() {
    let store = Store::<u32, u32>::new();
    store.put(1, 0).unwrap();
    let mut txn = store.begin();
    assert_eq!(txn.get(&1), Some(&0));
    txn.put(2, 1);
    store.put(1, 5).unwrap();
    txn.commit().unwrap();
}

#[test]
fn read_only_transactions_never_fail() {
    let store = Store::<u32, u32>::new();
    store.put(1, 0).unwrap();
    let txn = store.begin_serializable();
    assert_eq!(txn.get(&1), Some(&0));
    store.put(1, 5).unwrap();
    assert_eq!(txn.commit().unwrap(), Version::new(1));
}

#[test]
fn expect_version_and_compare_and_swap() {
    let store = Store::<&str, u32>::new();
    let v1 = store.compare_and_swap("k", None, 1).unwrap();
    let error = store.compare_and_swap("k", None, 2).unwrap_err();
    assert_eq!(
        conflict_kind(error),
        ConflictKind::VersionMismatch {
            expected: None,
            actual: Some(v1)
        }
    );
    let v2 = store.compare_and_swap("k", Some(v1), 2).unwrap();
    assert!(store.compare_and_swap("k", Some(v1), 3).is_err());
    assert_eq!(store.get_versioned("k"), Some((v2, Arc::new(2))));

    let mut txn = store.begin();
    txn.expect_version(&"k", v2);
    txn.put("other", 9);
    store.put("k", 4).unwrap();
    assert!(matches!(
        conflict_kind(txn.commit().unwrap_err()),
        ConflictKind::VersionMismatch { .. }
    ));

    store.delete("k").unwrap();
    assert!(
        store.compare_and_swap("k", None, 5).is_ok(),
        "a deleted key is absent"
    );
}

#[test]
fn conflict_messages_say_what_happened() {
    let store = Store::<&str, u32>::new();
    store.put("k", 1).unwrap();
    let mut txn = store.begin();
    txn.put("k", 2);
    store.put("k", 3).unwrap();
    let message = txn.commit().unwrap_err().to_string();
    assert_eq!(
        message,
        "write-write conflict: v2 was committed after this transaction's snapshot v1, on key \"k\""
    );
    let message = store
        .compare_and_swap("k", None, 1)
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "version mismatch: expected absent, found v2, on key \"k\""
    );
}

#[test]
fn ranges_respect_every_kind_of_bound() {
    let store = Store::<u32, u32>::new();
    let mut txn = store.begin();
    for key in (0..20).step_by(2) {
        txn.put(key, key * 10);
    }
    txn.commit().unwrap();
    let snapshot = store.snapshot();
    let keys = |iter: mvcc_store::Range<'_, u32, u32>| iter.map(|(k, _)| *k).collect::<Vec<_>>();
    use std::ops::Bound::{Excluded, Included};
    assert_eq!(keys(snapshot.range(4..10)), vec![4, 6, 8]);
    assert_eq!(keys(snapshot.range(4..=10)), vec![4, 6, 8, 10]);
    assert_eq!(keys(snapshot.range(5..=11)), vec![6, 8, 10]);
    assert_eq!(keys(snapshot.range(..3)), vec![0, 2]);
    assert_eq!(keys(snapshot.range(17..)), vec![18]);
    assert_eq!(
        keys(snapshot.range((Included(10), Excluded(4)))),
        Vec::<u32>::new()
    );
    assert_eq!(keys(snapshot.range(4..4)), Vec::<u32>::new());
    assert_eq!(keys(snapshot.range(4..=4)), vec![4]);
    assert_eq!(keys(snapshot.range((Excluded(4), Excluded(8)))), vec![6]);
    assert_eq!(
        keys(snapshot.range((Excluded(4), Included(4)))),
        Vec::<u32>::new()
    );
    assert_eq!(snapshot.iter().count(), 10);
}

#[test]
fn range_of_an_old_snapshot_ignores_later_inserts_and_deletes() {
    let store = Store::<u32, u32>::new();
    for key in [1, 3, 5] {
        store.put(key, key).unwrap();
    }
    let old = store.snapshot();
    store.put(2, 2).unwrap();
    store.put(4, 4).unwrap();
    store.delete(3).unwrap();
    store.put(9, 9).unwrap();
    let keys: Vec<u32> = old.range(..=5).map(|(k, _)| *k).collect();
    assert_eq!(keys, vec![1, 3, 5]);
    let keys: Vec<u32> = store.snapshot().range(..=5).map(|(k, _)| *k).collect();
    assert_eq!(keys, vec![1, 2, 4, 5]);
}

#[test]
fn str_keys_can_be_looked_up_by_borrowed_form() {
    let store = Store::<String, u32>::new();
    store.put("alpha".to_string(), 1).unwrap();
    let snapshot = store.snapshot();
    assert_eq!(snapshot.get("alpha"), Some(&1));
    let mut txn = store.begin_serializable();
    assert_eq!(txn.get("alpha"), Some(&1));
    use std::ops::Bound::{Excluded, Included};
    assert_eq!(
        txn.range::<str, _>((Included("a"), Excluded("b"))).count(),
        1
    );
    txn.put("beta".to_string(), 2);
    txn.commit().unwrap();
}

#[test]
fn gc_frees_versions_no_snapshot_can_read() {
    let store = Store::<u32, u32>::builder().gc_keys_per_commit(0).build();
    let rounds = if cfg!(miri) { 20 } else { 100 };
    for round in 0..rounds {
        for key in 0..10 {
            store.put(key, round).unwrap();
        }
    }
    let report = store.gc();
    assert_eq!(report.watermark, Version::new(rounds as u64 * 10));
    let stats = store.stats();
    assert_eq!(stats.versions_retained, 10, "{stats:?} after {report:?}");
    assert_eq!(stats.keys, 10);
}

#[test]
fn gc_keeps_what_a_pinned_snapshot_reads() {
    let store = Store::<u32, u32>::builder().gc_keys_per_commit(0).build();
    for key in 0..10 {
        store.put(key, 0).unwrap();
    }
    let pinned = store.snapshot();
    let rounds = if cfg!(miri) { 10 } else { 50 };
    for round in 1..rounds {
        for key in 0..10 {
            store.put(key, round).unwrap();
        }
    }
    for key in 0..5 {
        store.delete(key).unwrap();
    }
    store.gc();
    let stats = store.stats();
    assert_eq!(stats.oldest_pinned, Some(pinned.version()));
    assert_eq!(stats.snapshots_pinned, 1);
    for key in 0..10 {
        assert_eq!(pinned.get(&key), Some(&0), "key {key}");
    }
    drop(pinned);
    let report = store.gc();
    let stats = store.stats();
    assert_eq!(
        stats.keys, 5,
        "deleted keys are unlinked: {stats:?} {report:?}"
    );
    assert_eq!(stats.versions_retained, 5, "{stats:?} {report:?}");
    assert_eq!(stats.oldest_pinned, None);
    for key in 0..5 {
        assert_eq!(store.get(&key), None);
    }
    for key in 5..10 {
        assert_eq!(store.get(&key).as_deref(), Some(&(rounds - 1)));
    }
}

#[test]
fn automatic_collection_bounds_retained_versions() {
    let store = Store::<u32, u32>::new();
    for round in 0..if cfg!(miri) { 300 } else { 2000 } {
        store.put(round % 16, round).unwrap();
    }
    let stats = store.stats();
    assert!(
        stats.versions_retained < 16 * 80,
        "overwrites are collected as commits go: {stats:?}"
    );
}

#[test]
fn deleted_keys_are_collected_by_the_sweep() {
    let store = Store::<u32, u32>::new();
    let keys = if cfg!(miri) { 60 } else { 1000 };
    for key in 0..keys {
        store.put(key, key).unwrap();
    }
    for key in 0..keys {
        store.delete(key).unwrap();
    }
    // A sweep step visits 64 keys every 16 commits; the watermark is refreshed every 64.
    for round in 0..keys * 2 + 200 {
        store.put(5000, round).unwrap();
    }
    let stats = store.stats();
    assert!(stats.keys < 50, "{stats:?}");
}

#[test]
fn handles_cross_threads_as_documented() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Store<String, Vec<u8>>>();
    send_sync::<mvcc_store::Snapshot<'static, String, Vec<u8>>>();
    send_sync::<mvcc_store::Range<'static, String, Vec<u8>>>();
    send::<mvcc_store::Txn<'static, String, Vec<u8>>>();
    send::<mvcc_store::Subscription<String, Vec<u8>>>();
}
