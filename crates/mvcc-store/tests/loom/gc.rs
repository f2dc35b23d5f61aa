//! Garbage collection against readers: nothing a pinned snapshot can reach is reclaimed.

use loom::thread;
use mvcc_store::Store;
use std::sync::Arc;

/// A reader pins a snapshot and reads a key while the writer overwrites it and runs a full collection: the
/// reader never reaches a reclaimed version (asserted inside the chain walk) and reads the value of its
/// version. This is the pin protocol's race: a snapshot that reads the visible version and a collector that
/// computes the watermark from slots that may not show it yet.
#[test]
fn collection_never_frees_what_a_new_snapshot_reads() {
    loom::model(|| {
        let store = Arc::new(Store::<u8, u8>::builder().gc_keys_per_commit(0).build());
        store.put(1, 1).unwrap();
        let reader = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let snapshot = store.snapshot();
                let version = snapshot.version().get();
                assert_eq!(snapshot.get(&1).copied(), Some(version as u8));
            })
        };
        store.put(1, 2).unwrap();
        store.gc();
        store.put(1, 3).unwrap();
        store.gc();
        reader.join().unwrap();
    });
}

/// A reader walks a range while the writer deletes a key in it and a collection unlinks and retires the
/// key's node: the walk never lands on a reclaimed node, and sees the keys of its snapshot.
#[test]
fn unlinking_a_deleted_key_is_safe_for_a_walking_reader() {
    loom::model(|| {
        let store = Arc::new(Store::<u8, u8>::builder().gc_keys_per_commit(0).build());
        let mut txn = store.begin();
        txn.put(1, 1);
        txn.put(2, 2);
        txn.put(3, 3);
        txn.commit().unwrap();
        let reader = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let snapshot = store.snapshot();
                let keys: Vec<u8> = snapshot.iter().map(|(k, _)| *k).collect();
                match snapshot.version().get() {
                    1 => assert_eq!(keys, vec![1, 2, 3]),
                    _ => assert_eq!(keys, vec![1, 3]),
                }
            })
        };
        store.delete(2).unwrap();
        // The first collection unlinks the deleted key; the second may free it once no snapshot can be on it.
        store.gc();
        store.gc();
        reader.join().unwrap();
    });
}
