//! Subscriptions: every change in range, in commit order, once; resuming; lagging; closing; blocking.

use std::sync::Arc;
use std::time::Duration;

use mvcc_store::{Change, Lagged, Store, SubscribeError, Version};

fn change(version: u64, key: u32, value: Option<u32>) -> Change<u32, u32> {
    Change {
        version: Version::new(version),
        key,
        value: value.map(Arc::new),
    }
}

fn drain(subscription: &mut mvcc_store::Subscription<u32, u32>) -> Vec<Change<u32, u32>> {
    std::iter::from_fn(|| subscription.try_next())
        .map(|item| item.expect("no lag"))
        .collect()
}

#[test]
fn delivers_changes_in_range_in_commit_order() {
    let store = Store::<u32, u32>::new();
    let mut subscription = store.subscribe(10..20, None).unwrap();
    store.put(5, 0).unwrap();
    store.put(15, 1).unwrap();
    let mut txn = store.begin();
    txn.put(19, 2);
    txn.put(12, 3);
    txn.put(20, 4);
    txn.delete(11);
    txn.commit().unwrap();
    store.delete(15).unwrap();
    assert_eq!(
        drain(&mut subscription),
        vec![
            change(2, 15, Some(1)),
            change(3, 11, None),
            change(3, 12, Some(3)),
            change(3, 19, Some(2)),
            change(4, 15, None),
        ]
    );
    assert_eq!(subscription.delivered_through(), Version::new(4));
}

#[test]
fn resumes_after_a_version_without_gap_or_duplicate() {
    let store = Store::<u32, u32>::new();
    for version in 1..=10 {
        store.put(version, version).unwrap();
    }
    let mut resumed = store.subscribe(.., Some(Version::new(6))).unwrap();
    let versions: Vec<u64> = drain(&mut resumed)
        .iter()
        .map(|c| c.version.get())
        .collect();
    assert_eq!(versions, vec![7, 8, 9, 10]);
    let mut from_zero = store.subscribe(.., Some(Version::ZERO)).unwrap();
    assert_eq!(drain(&mut from_zero).len(), 10);
    let mut up_to_date = store.subscribe(.., Some(Version::new(10))).unwrap();
    assert!(drain(&mut up_to_date).is_empty());
}

#[test]
fn resuming_from_a_collected_version_names_the_oldest_available() {
    let store = Store::<u32, u32>::builder().history(4).build();
    for version in 1..=10 {
        store.put(version, version).unwrap();
    }
    // Versions 7..=10 are kept: a subscription may resume after 6 at the earliest.
    let error = store.subscribe(.., Some(Version::new(5))).unwrap_err();
    assert_eq!(
        error,
        SubscribeError::Compacted {
            requested: Version::new(5),
            oldest_available: Version::new(6)
        }
    );
    assert_eq!(
        error.to_string(),
        "cannot resume after v5: the changes after it are no longer kept; the oldest version a subscription \
         can resume from is v6"
    );
    assert!(store.subscribe(.., Some(Version::new(6))).is_ok());
    assert_eq!(store.stats().oldest_resumable, Version::new(6));
    let ahead = store.subscribe(.., Some(Version::new(11))).unwrap_err();
    assert_eq!(
        ahead,
        SubscribeError::AheadOfStore {
            requested: Version::new(11),
            newest: Version::new(10)
        }
    );
}

#[test]
fn a_slow_subscriber_lags_and_never_blocks_writers() {
    let store = Store::<u32, u32>::builder().history(8).build();
    let mut slow = store.subscribe(.., None).unwrap();
    for version in 1..=3 {
        store.put(version, version).unwrap();
    }
    assert_eq!(slow.try_next().unwrap().unwrap().version, Version::new(1));
    // 100 more commits go through while the subscriber reads nothing.
    for version in 4..=103 {
        store.put(version, version).unwrap();
    }
    let lagged = slow.try_next().unwrap().unwrap_err();
    assert_eq!(
        lagged,
        Lagged {
            missed_from: Version::new(2),
            resumes_at: Version::new(96)
        }
    );
    let rest: Vec<u64> = drain(&mut slow).iter().map(|c| c.version.get()).collect();
    assert_eq!(rest, (96..=103).collect::<Vec<_>>());
}

#[test]
fn a_subscription_ends_when_the_store_is_dropped_after_delivering_everything() {
    let store = Store::<u32, u32>::new();
    let mut subscription = store.subscribe(.., None).unwrap();
    store.put(1, 1).unwrap();
    store.put(2, 2).unwrap();
    drop(store);
    assert!(!subscription.is_closed());
    let rest: Vec<u64> = subscription
        .by_ref()
        .map(|item| item.unwrap().version.get())
        .collect();
    assert_eq!(rest, vec![1, 2]);
    assert!(subscription.is_closed());
    assert!(subscription.next().is_none());
}

#[test]
fn blocking_iterator_wakes_for_each_commit() {
    let store = Store::<u32, u32>::new();
    let subscription = store.subscribe(.., None).unwrap();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            subscription
                .take(200)
                .map(|item| item.unwrap().version.get())
                .collect::<Vec<_>>()
        });
        for version in 1..=200 {
            store.put(version as u32 % 13, version as u32).unwrap();
            if version % 50 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert_eq!(reader.join().unwrap(), (1..=200).collect::<Vec<u64>>());
    });
}

#[test]
fn next_timeout_returns_none_when_nothing_comes() {
    let store = Store::<u32, u32>::new();
    let mut subscription = store.subscribe(.., None).unwrap();
    let started = std::time::Instant::now();
    assert!(
        subscription
            .next_timeout(Duration::from_millis(30))
            .is_none()
    );
    assert!(started.elapsed() >= Duration::from_millis(30));
    store.put(1, 1).unwrap();
    assert_eq!(
        subscription
            .next_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap(),
        change(1, 1, Some(1))
    );
}

#[test]
fn concurrent_writers_deliver_every_change_exactly_once() {
    let store = Store::<u32, u32>::builder().history(1 << 16).build();
    let threads = 4;
    let per_thread = if cfg!(miri) { 10 } else { 2000 };
    let mut subscription = store.subscribe(.., None).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let store = &store;
            scope.spawn(move || {
                for index in 0..per_thread {
                    store.put(thread * 1_000_000 + index, index).unwrap();
                }
            });
        }
    });
    let changes = drain(&mut subscription);
    assert_eq!(changes.len(), (threads * per_thread) as usize);
    for (position, change) in changes.iter().enumerate() {
        assert_eq!(
            change.version.get(),
            position as u64 + 1,
            "in commit order, no gap"
        );
    }
    // Each thread's writes arrive in that thread's order.
    for thread in 0..threads {
        let values: Vec<u32> = changes
            .iter()
            .filter(|c| c.key / 1_000_000 == thread)
            .map(|c| *c.value.as_deref().unwrap())
            .collect();
        assert_eq!(values, (0..per_thread).collect::<Vec<_>>());
    }
}

#[test]
fn delivered_through_counts_a_commit_once_its_last_change_is_out() {
    let store = Store::<u32, u32>::new();
    let mut subscription = store.subscribe(.., None).unwrap();
    let mut txn = store.begin();
    txn.put(1, 1);
    txn.put(2, 2);
    txn.commit().unwrap();
    assert_eq!(subscription.try_next().unwrap().unwrap().key, 1);
    assert_eq!(
        subscription.delivered_through(),
        Version::ZERO,
        "half of commit 1 is still to come"
    );
    assert_eq!(subscription.try_next().unwrap().unwrap().key, 2);
    assert_eq!(subscription.delivered_through(), Version::new(1));
    // Resuming from there delivers nothing twice.
    let mut resumed = store
        .subscribe(.., Some(subscription.delivered_through()))
        .unwrap();
    assert!(resumed.try_next().is_none());
}
