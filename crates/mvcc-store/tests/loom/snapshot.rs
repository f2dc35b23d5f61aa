//! Snapshots against commits: a snapshot sees a commit whole or not at all.

use loom::thread;
use mvcc_store::Store;
use std::sync::Arc;

/// A two-key commit races a snapshot reading both keys: the snapshot sees both writes or neither, and its
/// version says which.
#[test]
fn snapshot_sees_a_commit_whole_or_not_at_all() {
    loom::model(|| {
        let store = Arc::new(Store::<u8, u8>::builder().gc_keys_per_commit(0).build());
        store.put(1, 0).unwrap();
        let writer = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let mut txn = store.begin();
                txn.put(1, 1);
                txn.put(2, 1);
                txn.commit().unwrap();
            })
        };
        let snapshot = store.snapshot();
        let (first, second) = (snapshot.get(&1).copied(), snapshot.get(&2).copied());
        match snapshot.version().get() {
            1 => assert_eq!((first, second), (Some(0), None)),
            2 => assert_eq!((first, second), (Some(1), Some(1))),
            other => panic!("snapshot at impossible version {other}"),
        }
        // A range read on the same snapshot agrees with the point reads.
        let range: Vec<(u8, u8)> = snapshot.iter().map(|(k, v)| (*k, *v)).collect();
        let expected: Vec<(u8, u8)> = [(1, first), (2, second)]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        assert_eq!(range, expected);
        drop(snapshot);
        writer.join().unwrap();
    });
}

/// Two transactions write the same key from two threads: exactly one commits (first committer wins), and
/// the survivor's value is the one stored.
#[test]
fn first_committer_wins_across_threads() {
    loom::model(|| {
        let store = Arc::new(Store::<u8, u8>::builder().gc_keys_per_commit(0).build());
        store.put(1, 0).unwrap();
        let other = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let mut txn = store.begin();
                let seen = *txn.get(&1).unwrap();
                txn.put(1, seen + 10);
                txn.commit().is_ok()
            })
        };
        let mut txn = store.begin();
        let seen = *txn.get(&1).unwrap();
        txn.put(1, seen + 1);
        let mine = txn.commit().is_ok();
        let theirs = other.join().unwrap();
        let stored = *store.get(&1).unwrap();
        match (mine, theirs) {
            (true, false) => assert_eq!(stored, 1),
            (false, true) => assert_eq!(stored, 10),
            // Both commit only if one ran entirely after the other: then the second saw the first.
            (true, true) => assert_eq!(stored, 11),
            (false, false) => panic!("both transactions failed"),
        }
    });
}

/// Three snapshots held at once grow the pin list past its first block while a commit goes on; each
/// snapshot still reads its own version.
#[test]
fn pin_list_grows_under_concurrent_snapshots() {
    loom::model(|| {
        let store = Arc::new(Store::<u8, u8>::builder().gc_keys_per_commit(0).build());
        store.put(1, 0).unwrap();
        let reader = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let snapshot = store.snapshot();
                let expected = snapshot.version().get() as u8 - 1;
                assert_eq!(snapshot.get(&1), Some(&expected));
            })
        };
        let a = store.snapshot();
        let b = store.snapshot();
        store.put(1, 1).unwrap();
        let c = store.snapshot();
        assert_eq!(a.get(&1), Some(&0));
        assert_eq!(b.get(&1), Some(&0));
        assert_eq!(c.get(&1), Some(&1));
        reader.join().unwrap();
    });
}

/// A commit that splits a full leaf (and grows a root) races a reader looking keys up and walking them: the
/// reader sees every key of its snapshot, through the old leaf or the new ones.
#[test]
fn a_leaf_split_under_a_reader_loses_no_key() {
    loom::model(|| {
        let store = Arc::new(Store::<u8, u8>::builder().gc_keys_per_commit(0).build());
        let mut txn = store.begin();
        txn.put(1, 1);
        txn.put(3, 3);
        txn.commit().unwrap();
        let writer = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                store.put(2, 2).unwrap();
                store.put(4, 4).unwrap();
            })
        };
        let snapshot = store.snapshot();
        assert_eq!(snapshot.get(&1), Some(&1));
        assert_eq!(snapshot.get(&3), Some(&3));
        let keys: Vec<u8> = snapshot.iter().map(|(k, _)| *k).collect();
        let expected: &[u8] = match snapshot.version().get() {
            1 => &[1, 3],
            2 => &[1, 2, 3],
            _ => &[1, 2, 3, 4],
        };
        assert_eq!(keys, expected);
        drop(snapshot);
        writer.join().unwrap();
    });
}
