//! Concurrent stress: transfers between accounts under serializable transactions while readers check every
//! snapshot's total, a collector runs full collections, and a churner inserts and deletes keys (so key
//! nodes are unlinked and freed under walking readers). Sizes scale down under Miri and with `STRESS_SCALE`
//! (ThreadSanitizer runs use 0.1).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mvcc_store::Store;

const ACCOUNTS: u64 = if cfg!(miri) { 16 } else { 500 };
const INITIAL: i64 = 1_000;
/// Keys from here on belong to the churner, not to accounts.
const CHURN_BASE: u64 = 1_000_000;

fn scale(count: u64) -> u64 {
    let factor: f64 = std::env::var("STRESS_SCALE")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1.0);
    ((count as f64 * factor) as u64).max(1)
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn totals_hold_in_every_snapshot_while_transfers_gc_and_churn_run() {
    let transfers_per_thread = if cfg!(miri) { 30 } else { scale(20_000) };
    let store = Store::<u64, i64>::builder().history(64).build();
    let mut txn = store.begin();
    for account in 0..ACCOUNTS {
        txn.put(account, INITIAL);
    }
    txn.commit().unwrap();
    let expected_total = INITIAL * ACCOUNTS as i64;
    let done = AtomicBool::new(false);
    let committed = AtomicU64::new(0);
    let aborted = AtomicU64::new(0);
    let snapshots_checked = AtomicU64::new(0);

    std::thread::scope(|scope| {
        let transferrers: Vec<_> = (0..2u64)
            .map(|thread| {
                let (store, committed, aborted) = (&store, &committed, &aborted);
                scope.spawn(move || {
                    let mut rng = XorShift(0x9E37_79B9 + thread);
                    let mut done_here = 0;
                    while done_here < transfers_per_thread {
                        let from = rng.next() % ACCOUNTS;
                        let to = (from + 1 + rng.next() % (ACCOUNTS - 1)) % ACCOUNTS;
                        let mut txn = store.begin_serializable();
                        let balance = *txn.get(&from).unwrap();
                        let amount = (rng.next() % 50) as i64;
                        if balance < amount {
                            continue;
                        }
                        let other = *txn.get(&to).unwrap();
                        txn.put(from, balance - amount);
                        txn.put(to, other + amount);
                        match txn.commit() {
                            Ok(_) => {
                                committed.fetch_add(1, Ordering::Relaxed);
                                done_here += 1;
                            }
                            Err(error) => {
                                assert!(error.is_conflict());
                                aborted.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();

        // Readers: every snapshot adds up, by point reads and by a range walk.
        for _ in 0..2 {
            let (store, done, snapshots_checked) = (&store, &done, &snapshots_checked);
            scope.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let snapshot = store.snapshot();
                    let walked: i64 = snapshot
                        .range(..ACCOUNTS)
                        .map(|(_, balance)| *balance)
                        .sum();
                    assert_eq!(
                        walked,
                        expected_total,
                        "range total at {:?}",
                        snapshot.version()
                    );
                    let pointwise: i64 = (0..ACCOUNTS)
                        .map(|account| *snapshot.get(&account).unwrap())
                        .sum();
                    assert_eq!(
                        pointwise,
                        expected_total,
                        "point total at {:?}",
                        snapshot.version()
                    );
                    // The churner's keys: present ones hold their own key as value.
                    for (key, value) in snapshot.range(CHURN_BASE..) {
                        assert_eq!(*value as u64, *key);
                    }
                    snapshots_checked.fetch_add(1, Ordering::Relaxed);
                }
            });
        }

        // Churner: insert and delete keys so nodes are unlinked and freed while readers walk.
        {
            let (store, done) = (&store, &done);
            scope.spawn(move || {
                let mut rng = XorShift(77);
                while !done.load(Ordering::Relaxed) {
                    let key = CHURN_BASE + rng.next() % 64;
                    if rng.next().is_multiple_of(2) {
                        store.put(key, key as i64).unwrap();
                    } else {
                        store.delete(key).unwrap();
                    }
                }
            });
        }

        // Collector.
        {
            let (store, done) = (&store, &done);
            scope.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    store.gc();
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
        }

        for transferrer in transferrers {
            transferrer.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });

    assert_eq!(committed.load(Ordering::Relaxed), 2 * transfers_per_thread);
    assert!(snapshots_checked.load(Ordering::Relaxed) > 0);
    let final_total: i64 = store
        .snapshot()
        .range(..ACCOUNTS)
        .map(|(_, balance)| *balance)
        .sum();
    assert_eq!(final_total, expected_total);
    store.gc();
    let stats = store.stats();
    assert!(
        stats.versions_retained <= stats.keys as u64 + 64,
        "after a final collection with no snapshot, about one version per key is left: {stats:?}"
    );
    eprintln!(
        "{} transfers committed, {} aborted, {} snapshots checked",
        committed.load(Ordering::Relaxed),
        aborted.load(Ordering::Relaxed),
        snapshots_checked.load(Ordering::Relaxed)
    );
}

#[test]
fn snapshots_taken_on_many_threads_at_once_each_see_one_version() {
    let threads = if cfg!(miri) { 3 } else { 8 };
    let rounds = if cfg!(miri) { 20 } else { scale(2_000) };
    let store = Store::<u64, u64>::new();
    store.put(0, 0).unwrap();
    std::thread::scope(|scope| {
        let store = &store;
        scope.spawn(move || {
            for version in 1..=rounds {
                let mut txn = store.begin();
                txn.put(0, version);
                txn.put(1, version);
                txn.commit().unwrap();
            }
        });
        for _ in 0..threads {
            scope.spawn(move || {
                for _ in 0..rounds {
                    // Several snapshots held at once per thread: more than one pin slot per thread.
                    let first = store.snapshot();
                    let second = store.snapshot();
                    for snapshot in [&first, &second] {
                        let zero = *snapshot.get(&0).unwrap();
                        assert_eq!(snapshot.get(&1).copied().unwrap_or(0), zero);
                        assert_eq!(snapshot.version().get(), zero + 1);
                    }
                    assert!(first.version() <= second.version());
                }
            });
        }
    });
}
