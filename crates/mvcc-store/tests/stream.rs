//! Subscriptions as an async `Stream` (feature `stream`), on tokio.

use std::time::Duration;

use futures_util::StreamExt;
use mvcc_store::{Store, Version};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_yields_each_change_as_it_is_committed() {
    let store = std::sync::Arc::new(Store::<u32, String>::new());
    let mut changes = store.subscribe(.., None).unwrap().into_stream();
    let writer = {
        let store = std::sync::Arc::clone(&store);
        tokio::task::spawn_blocking(move || {
            for version in 1..=100u32 {
                store.put(version % 5, format!("v{version}")).unwrap();
                if version % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    for expected in 1..=100u64 {
        let change = tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("a change within 10 s")
            .expect("the stream goes on")
            .expect("no lag");
        assert_eq!(change.version, Version::new(expected));
        assert_eq!(
            change.value.as_deref().map(String::as_str),
            Some(format!("v{expected}").as_str())
        );
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn stream_ends_when_the_store_is_dropped() {
    let store = Store::<u32, u32>::new();
    let mut changes = store.subscribe(.., None).unwrap().into_stream();
    store.put(1, 1).unwrap();
    let waiter = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(change) = changes.next().await {
            seen.push(change.unwrap().version.get());
        }
        seen
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(store);
    let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the stream ends")
        .unwrap();
    assert_eq!(seen, vec![1]);
}

#[tokio::test]
async fn a_dropped_pending_stream_leaves_no_waker_behind() {
    let store = Store::<u32, u32>::new();
    for _ in 0..10 {
        let mut changes = store.subscribe(.., None).unwrap().into_stream();
        let pending = tokio::time::timeout(Duration::from_millis(1), changes.next()).await;
        assert!(pending.is_err(), "nothing was committed");
    }
    store.put(1, 1).unwrap();
    assert_eq!(store.get(&1).as_deref(), Some(&1));
}
