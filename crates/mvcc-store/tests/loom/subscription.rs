//! Subscription delivery: no lost wake-up, no gap, no duplicate.

use loom::thread;
use mvcc_store::{Store, Version};
use std::sync::Arc;

/// A subscriber blocks in the iterator while the writer commits twice: it wakes for each commit and gets
/// both changes, in order. A lost wake-up would leave it parked forever, which loom reports as a deadlock.
#[test]
fn blocking_subscriber_gets_every_commit_in_order() {
    loom::model(|| {
        let store = Arc::new(Store::<u8, u8>::builder().history(2).build());
        let mut subscription = store.subscribe(.., None).unwrap();
        let subscriber = thread::spawn(move || {
            let first = subscription.next().unwrap().unwrap();
            let second = subscription.next().unwrap().unwrap();
            (first.version, second.version, *second.value.unwrap())
        });
        store.put(1, 10).unwrap();
        store.put(2, 20).unwrap();
        let (first, second, value) = subscriber.join().unwrap();
        assert_eq!(
            (first, second, value),
            (Version::new(1), Version::new(2), 20)
        );
    });
}

/// A subscriber parked when the store is dropped wakes up and ends after delivering what was committed.
#[test]
fn dropping_the_store_wakes_a_parked_subscriber() {
    loom::model(|| {
        let store = Store::<u8, u8>::builder().history(2).build();
        let mut subscription = store.subscribe(.., None).unwrap();
        let subscriber = thread::spawn(move || {
            let mut versions = Vec::new();
            for change in subscription.by_ref() {
                versions.push(change.unwrap().version.get());
            }
            versions
        });
        store.put(1, 1).unwrap();
        drop(store);
        assert_eq!(subscriber.join().unwrap(), vec![1]);
    });
}

/// With a history of one commit, a subscriber that falls behind learns it lagged and resumes at the
/// newest commit; it never gets a version twice or out of order.
#[test]
fn lagging_subscriber_is_told_and_resumes_in_order() {
    loom::model(|| {
        let store = Arc::new(Store::<u8, u8>::builder().history(1).build());
        let mut subscription = store.subscribe(.., None).unwrap();
        let writer = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                store.put(1, 1).unwrap();
                store.put(1, 2).unwrap();
            })
        };
        writer.join().unwrap();
        let mut seen = Vec::new();
        while let Some(item) = subscription.try_next() {
            match item {
                Ok(change) => seen.push(change.version.get()),
                Err(lagged) => {
                    assert_eq!(lagged.missed_from, Version::new(1));
                    assert_eq!(lagged.resumes_at, Version::new(2));
                }
            }
        }
        assert_eq!(seen.last(), Some(&2));
        assert!(seen.windows(2).all(|pair| pair[0] < pair[1]));
    });
}
