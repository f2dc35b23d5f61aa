//! `mvcc_store::Store` beside the in-memory MVCC stores it competes with: concread (`bptree::BptreeMap`, a
//! copy-on-write B+tree with one writer at a time), skipdb (`serializable::SerializableDb`, SSI over a
//! skip list of per-key version lists), surrealmx (`Database`, SI/SSI over an adaptive radix tree), and
//! `RwLock<BTreeMap>` from std where the workload makes sense for a lock. Keys and values are `u64`
//! (surrealmx stores bytes: big-endian `[u8; 8]` both ways, decoded in place with `with_value`).
//!
//! - `snapshot_get/{snapshot_per_get,held_snapshot}`: a point get of a uniformly random key out of 10,000,
//!   on the bench thread, while one writer thread (started before the function, stopped after it) commits
//!   single-key updates to random keys, at most one every 20 µs (`WRITER_INTERVAL`, which says why it is
//!   paced): ours `Store::put`, concread `write()` + `insert` +
//!   `commit`, skipdb `serializable_write()` + `insert` + `commit` (and `compact()` every 4,096 commits:
//!   skipdb never collects old versions by itself), surrealmx `Database::set` (its auto-committed
//!   single-key write), std `write()` + `insert`. `snapshot_per_get` times taking a snapshot / read
//!   transaction, one get, dropping it: ours `snapshot()` + `get`, concread `read()` + `get` (its read start
//!   locks a `Mutex` to clone the current root's `Arc`), skipdb `read()` + `get` (its read start locks the
//!   oracle's mutex and sends a mark to the watermark thread, its drop sends another), surrealmx
//!   `transaction(false)` + `with_value` (a pooled transaction, a reader slot pinned and unpinned), std
//!   `read()` lock + `get`. `held_snapshot` times the same gets on one snapshot / read transaction taken for
//!   every 1,000 gets (so none holds back collection for long), the take amortised over the 1,000; std is
//!   left out of it: a read guard held for 1,000 gets would stop the writer for that long, a different
//!   workload. Every get checks that the value belongs to the key (the writer stores `key | seq << 32`).
//! - `bank_transfer/{uniform,zipf}/{1_thread,2_threads}`: 1,000 accounts of 1,000 each; a transfer reads
//!   two distinct accounts, moves `min(random 1..=100, balance)` and writes both, as one serializable
//!   transaction retried (same accounts and amount, fresh transaction) until it commits: ours
//!   `begin_serializable()`, skipdb `serializable_write()` (its `optimistic_write()` does the same checks
//!   for point reads), surrealmx `transaction(true)` in SSI (`with_serializable_snapshot_isolation`, also
//!   its default), concread `write()` (one writer at a time: transfers run one after the other and never
//!   abort), std `write()` lock. Accounts are drawn uniformly or by a Zipf law with s = 0.99 (rank 0
//!   hottest; ranks scattered over the keys by a fixed permutation). The figure is the time per committed
//!   transfer on one thread (the mean of the threads' times with 2 threads); the abort rate of each run
//!   (warm-up included) goes to stderr as `mvcc_store bench: ... abort rate`. After each run the balances
//!   must still add up to 1,000,000, read from one snapshot / read transaction.
//! - `gc`: hold a snapshot, overwrite 10,000 keys 10^6 times (random keys, the same sequence for everyone;
//!   10^5 under `--test`), release the snapshot, then time how long until the store is back to at most
//!   1.1 versions per live key. The setup is untimed and rebuilt for every iteration. Where the time is a
//!   loop "collect, then look", only the collecting is timed: the look (statistics, or counting) is not.
//!   What each function times:
//!   - `mvcc_store_gc_call`: overwrites by `Store::put`; times one `Store::gc()`, then checks that
//!     `stats().versions_retained <= 1.1 * keys`.
//!   - `mvcc_store_commits`: the same setup, then no `gc()`: times `put`s of random keys, 16 between two
//!     looks at `stats()`, until `versions_retained <= 1.2 * keys`: collection by the commits alone (each
//!     write cuts its key's chain, and a sweep visits a few other keys per commit). 1.2, not 1.1: under
//!     this write stream our store's steady state is about 1.117 versions per key (see
//!     `GC_COMMITS_LIMIT`).
//!   - `surrealmx_run_gc`: overwrites in write transactions of 100 keys (peers batch: see below), its
//!     background collector off; times `Database::run_gc()` (its full scan, the counterpart of our
//!     `gc()`; repeated if a pass skips) until `stats().live_versions <= 1.1 * live_keys`.
//!   - `surrealmx_commits`: the same setup with the background collector off too, so that commits alone
//!     collect, as in ours (with its defaults a background sweep every 10 s would also collect); times
//!     single-key `Database::set`s of random keys, 256 between two looks (its `stats()` is slow), until
//!     `live_versions <= 1.2 * live_keys`, the same bound as `mvcc_store_commits`.
//!   - `skipdb_compact`: overwrites in `serializable_write` transactions of 100 keys; times calls of
//!     `SerializableDb::compact()` (its only collection, never run by itself) until the versions it holds
//!     are at most 1.1 per key (counted through `skipdb_core`'s hidden `AsSkipCore::as_inner().__by_ref()`:
//!     it has no statistics). A `compact()` before its watermark thread has seen the released read
//!     transaction collects nothing and is timed too; the counting between two calls (about 10^4 entries)
//!     is not. skipdb never collects on commits, so there is no `skipdb_commits`.
//!   - `concread_drop`: overwrites in write transactions of 100 keys; times the `drop` of the held read
//!     transaction, which frees every generation it held (concread frees on drop: it has no collector and
//!     no version count, so the values are checked instead). Nothing is left for commits to collect, so
//!     there is no `concread_commits`.
//!
//!   The peers overwrite in batches of 100 keys per transaction because one commit per overwrite is not
//!   feasible with a reader held: skipdb keeps every commit's conflict set while a read is open and scans
//!   them all on each commit (quadratic), and concread keeps one tree generation per commit. The versions
//!   retained are the same (one per overwrite) except for concread (a copied path per generation). std has
//!   no versions: left out.
//! - `commit_to_subscriber`: ours only (no peer has change subscriptions): a subscriber thread blocks on the
//!   `Subscription` iterator and publishes the version of each change it receives; the bench thread
//!   `put`s one key and spins until the subscriber has seen that version. The figure is that round trip.
//!   The subscriber checks each change (value, and versions without gaps).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use benches::{Combine, thread_counts, time_on_threads};
use concread::bptree::BptreeMap;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, criterion_group, criterion_main};
use mvcc_store::Store;
use skipdb::serializable::SerializableDb;
use skipdb_core::AsSkipCore;
use surrealmx::{Database, DatabaseOptions};
use txn_core::error::{TransactionError, WtmError};

// ---------------------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------------------

/// A xorshift64* generator: deterministic for a seed, cheap enough to leave out of the comparison.
#[derive(Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    #[inline]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Whether criterion runs each benchmark once, untimed (`--test`, or `cargo test --benches`, which passes
/// no `--bench`): smaller setups.
fn smoke_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|arg| arg == "--test") || !args.iter().any(|arg| arg == "--bench")
}

fn thread_label(threads: usize) -> &'static str {
    if threads == 1 {
        "1_thread"
    } else {
        "2_threads"
    }
}

#[inline]
fn be(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

#[inline]
fn from_be(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().expect("an 8-byte value"))
}

// ---------------------------------------------------------------------------------------------------------
// snapshot_get
// ---------------------------------------------------------------------------------------------------------

/// Keys in the `snapshot_get` stores.
const GET_KEYS: u64 = 10_000;

/// Gets per snapshot in `held_snapshot`.
const HELD_GETS: u64 = 1_000;

/// skipdb's writer compacts every this many commits (it never collects by itself).
const SKIPDB_COMPACT_EVERY: u64 = 4_096;

/// The value the writer stores: the key in the low 32 bits, its own sequence number above.
#[inline]
fn tagged(key: u64, seq: u64) -> u64 {
    key | (seq << 32)
}

/// Panics unless `value` was written for `key`.
#[inline]
fn check_tag(key: u64, value: Option<u64>) -> u64 {
    match value {
        Some(value) if value & 0xFFFF_FFFF == key => value,
        other => panic!("get({key}) returned {other:?}, not a value written for it"),
    }
}

/// A store in the `snapshot_get` groups.
trait GetStore: Sync + Sized {
    const NAME: &'static str;
    /// The store with keys `0..keys`, each holding `tagged(key, 0)`.
    fn filled(keys: u64) -> Self;
    /// One commit writing `value` at `key` (the background writer's step).
    fn update(&self, key: u64, value: u64);
    /// Housekeeping the writer does after its `commits`-th commit (only skipdb needs any).
    fn after_commit(&self, _commits: u64) {}
    /// Takes a snapshot / read transaction, gets `key`, drops it.
    fn get_fresh(&self, key: u64) -> Option<u64>;
    /// Takes one snapshot / read transaction and gets `gets` random keys on it, checking each.
    fn get_held(&self, rng: &mut XorShift, gets: u64);
}

impl GetStore for Store<u64, u64> {
    const NAME: &'static str = "mvcc_store";
    fn filled(keys: u64) -> Self {
        let store = Store::new();
        let mut txn = store.begin();
        for key in 0..keys {
            txn.put(key, tagged(key, 0));
        }
        txn.commit().expect("fill");
        store
    }
    fn update(&self, key: u64, value: u64) {
        self.put(key, value).expect("put");
    }
    #[inline]
    fn get_fresh(&self, key: u64) -> Option<u64> {
        self.snapshot().get(&key).copied()
    }
    #[inline]
    fn get_held(&self, rng: &mut XorShift, gets: u64) {
        let snapshot = self.snapshot();
        for _ in 0..gets {
            let key = rng.below(GET_KEYS);
            black_box(check_tag(key, snapshot.get(&key).copied()));
        }
    }
}

impl GetStore for BptreeMap<u64, u64> {
    const NAME: &'static str = "concread";
    fn filled(keys: u64) -> Self {
        (0..keys).map(|key| (key, tagged(key, 0))).collect()
    }
    fn update(&self, key: u64, value: u64) {
        let mut write = self.write();
        write.insert(key, value);
        write.commit();
    }
    #[inline]
    fn get_fresh(&self, key: u64) -> Option<u64> {
        self.read().get(&key).copied()
    }
    #[inline]
    fn get_held(&self, rng: &mut XorShift, gets: u64) {
        let read = self.read();
        for _ in 0..gets {
            let key = rng.below(GET_KEYS);
            black_box(check_tag(key, read.get(&key).copied()));
        }
    }
}

impl GetStore for SerializableDb<u64, u64> {
    const NAME: &'static str = "skipdb";
    fn filled(keys: u64) -> Self {
        let db = SerializableDb::new();
        let mut txn = db.serializable_write();
        for key in 0..keys {
            txn.insert(key, tagged(key, 0)).expect("insert");
        }
        txn.commit().expect("fill");
        db
    }
    fn update(&self, key: u64, value: u64) {
        let mut txn = self.serializable_write();
        txn.insert(key, value).expect("insert");
        txn.commit()
            .expect("a blind single-key write never conflicts");
    }
    fn after_commit(&self, commits: u64) {
        if commits.is_multiple_of(SKIPDB_COMPACT_EVERY) {
            self.compact();
        }
    }
    #[inline]
    fn get_fresh(&self, key: u64) -> Option<u64> {
        self.read().get(&key).map(|entry| *entry.value())
    }
    #[inline]
    fn get_held(&self, rng: &mut XorShift, gets: u64) {
        let read = self.read();
        for _ in 0..gets {
            let key = rng.below(GET_KEYS);
            black_box(check_tag(key, read.get(&key).map(|entry| *entry.value())));
        }
    }
}

impl GetStore for Database {
    const NAME: &'static str = "surrealmx";
    fn filled(keys: u64) -> Self {
        let db = Database::new();
        let mut tx = db.transaction(true);
        for key in 0..keys {
            tx.set(be(key), be(tagged(key, 0))).expect("set");
        }
        tx.commit().expect("fill");
        db
    }
    fn update(&self, key: u64, value: u64) {
        self.set(be(key), be(value)).expect("set");
    }
    #[inline]
    fn get_fresh(&self, key: u64) -> Option<u64> {
        self.transaction(false)
            .with_value(be(key), from_be)
            .expect("read")
    }
    #[inline]
    fn get_held(&self, rng: &mut XorShift, gets: u64) {
        let tx = self.transaction(false);
        for _ in 0..gets {
            let key = rng.below(GET_KEYS);
            black_box(check_tag(
                key,
                tx.with_value(be(key), from_be).expect("read"),
            ));
        }
    }
}

impl GetStore for RwLock<BTreeMap<u64, u64>> {
    const NAME: &'static str = "std_rwlock_btreemap";
    fn filled(keys: u64) -> Self {
        RwLock::new((0..keys).map(|key| (key, tagged(key, 0))).collect())
    }
    fn update(&self, key: u64, value: u64) {
        self.write().expect("lock").insert(key, value);
    }
    #[inline]
    fn get_fresh(&self, key: u64) -> Option<u64> {
        self.read().expect("lock").get(&key).copied()
    }
    fn get_held(&self, _rng: &mut XorShift, _gets: u64) {
        unreachable!("std is not in held_snapshot: its guard would stop the writer");
    }
}

/// How often the writer of the `snapshot_get` groups commits: at most one commit every 20 µs (50,000
/// commits/s), paced by spinning on the clock from the start of the previous commit (a slow commit is never
/// followed by a burst to catch up). Unpaced, or paced at 10 µs with catch-up, concread's memory grew past
/// this machine's 24 GiB within one benchmark (its reader frees the old generations, and fell behind); a pace
/// every store keeps up with compares reads, not memory reclamation under overload.
const WRITER_INTERVAL: Duration = Duration::from_micros(20);

/// Runs `body` while a writer thread commits single-key updates of random keys to `store` at
/// `WRITER_INTERVAL`; stops the writer after, then checks every key once more.
fn with_writer<S: GetStore>(store: &S, body: impl FnOnce()) {
    let stop = AtomicBool::new(false);
    let started = AtomicBool::new(false);
    let commits = thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut rng = XorShift::new(0x5EED);
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                let commit_started = Instant::now();
                seq += 1;
                let key = rng.below(GET_KEYS);
                store.update(key, tagged(key, seq));
                store.after_commit(seq);
                if seq == 1 {
                    started.store(true, Ordering::Release);
                }
                let due = commit_started + WRITER_INTERVAL;
                while Instant::now() < due && !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            }
            seq
        });
        // The reader starts once the writer is committing, even for a run as short as `--test`'s.
        while !started.load(Ordering::Acquire) {
            thread::yield_now();
        }
        body();
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer thread panicked")
    });
    assert!(commits > 0, "{}: the writer committed nothing", S::NAME);
    for key in 0..GET_KEYS {
        check_tag(key, store.get_fresh(key));
    }
}

fn bench_snapshot_per_get<S: GetStore>(group: &mut BenchmarkGroup<'_, WallTime>) {
    let store = S::filled(GET_KEYS);
    with_writer(&store, || {
        group.bench_function(S::NAME, |b| {
            let mut rng = XorShift::new(1);
            b.iter(|| {
                let key = rng.below(GET_KEYS);
                check_tag(key, black_box(store.get_fresh(black_box(key))))
            });
        });
    });
}

fn bench_held_snapshot<S: GetStore>(group: &mut BenchmarkGroup<'_, WallTime>) {
    let store = S::filled(GET_KEYS);
    with_writer(&store, || {
        group.bench_function(S::NAME, |b| {
            let mut rng = XorShift::new(1);
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut done = 0;
                while done < iters {
                    let gets = HELD_GETS.min(iters - done);
                    store.get_held(&mut rng, gets);
                    done += gets;
                }
                start.elapsed()
            });
        });
    });
}

fn snapshot_get(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_get/snapshot_per_get");
    bench_snapshot_per_get::<Store<u64, u64>>(&mut group);
    bench_snapshot_per_get::<BptreeMap<u64, u64>>(&mut group);
    bench_snapshot_per_get::<SerializableDb<u64, u64>>(&mut group);
    bench_snapshot_per_get::<Database>(&mut group);
    bench_snapshot_per_get::<RwLock<BTreeMap<u64, u64>>>(&mut group);
    group.finish();

    let mut group = c.benchmark_group("snapshot_get/held_snapshot");
    bench_held_snapshot::<Store<u64, u64>>(&mut group);
    bench_held_snapshot::<BptreeMap<u64, u64>>(&mut group);
    bench_held_snapshot::<SerializableDb<u64, u64>>(&mut group);
    bench_held_snapshot::<Database>(&mut group);
    group.finish();
}

// ---------------------------------------------------------------------------------------------------------
// bank_transfer
// ---------------------------------------------------------------------------------------------------------

const ACCOUNTS: u64 = 1_000;
const INITIAL_BALANCE: u64 = 1_000;
const TOTAL_BALANCE: u64 = ACCOUNTS * INITIAL_BALANCE;
/// A transfer moves `1..=MAX_TRANSFER` (or the whole balance, if smaller).
const MAX_TRANSFER: u64 = 100;
const ZIPF_S: f64 = 0.99;
/// Scatters Zipf ranks over the keys (`rank * SCATTER % ACCOUNTS`; coprime with `ACCOUNTS`), so the hot
/// accounts are not neighbours in key order.
const SCATTER: u64 = 617;

/// A Zipf law over `0..n`: rank `k` has weight `1 / (k + 1)^s`; sampled by binary search in the CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for rank in 0..n {
            sum += 1.0 / ((rank + 1) as f64).powf(s);
            cdf.push(sum);
        }
        for value in &mut cdf {
            *value /= sum;
        }
        Zipf { cdf }
    }

    #[inline]
    fn sample(&self, rng: &mut XorShift) -> u64 {
        let u = rng.unit();
        let rank = self.cdf.partition_point(|&c| c <= u);
        rank.min(self.cdf.len() - 1) as u64
    }
}

/// How transfers choose their accounts.
enum Accounts {
    Uniform,
    Zipf(Zipf),
}

impl Accounts {
    fn name(&self) -> &'static str {
        match self {
            Accounts::Uniform => "uniform",
            Accounts::Zipf(_) => "zipf",
        }
    }

    #[inline]
    fn one(&self, rng: &mut XorShift) -> u64 {
        match self {
            Accounts::Uniform => rng.below(ACCOUNTS),
            Accounts::Zipf(zipf) => zipf.sample(rng) * SCATTER % ACCOUNTS,
        }
    }

    /// Two distinct accounts.
    #[inline]
    fn pair(&self, rng: &mut XorShift) -> (u64, u64) {
        let from = self.one(rng);
        loop {
            let to = self.one(rng);
            if to != from {
                return (from, to);
            }
        }
    }
}

thread_local! {
    /// Each thread's generator for transfers, seeded by the order in which threads first use it (the bench
    /// thread's is reset for each store).
    static TRANSFER_RNG: Cell<Option<XorShift>> = const { Cell::new(None) };
}

static NEXT_RNG_SEED: AtomicU64 = AtomicU64::new(1);

/// A store in the `bank_transfer` groups.
trait Bank: Sync + Sized {
    const NAME: &'static str;
    /// `ACCOUNTS` accounts of `INITIAL_BALANCE`.
    fn open() -> Self;
    /// One serializable attempt at moving `min(amount, balance of from)` from `from` to `to`: whether it
    /// committed (`false`: a conflict, to retry).
    fn try_transfer(&self, from: u64, to: u64, amount: u64) -> bool;
    /// The sum of all balances and the number of accounts, read from one snapshot.
    fn total(&self) -> (u64, u64);
}

impl Bank for Store<u64, u64> {
    const NAME: &'static str = "mvcc_store";
    fn open() -> Self {
        let store = Store::new();
        let mut txn = store.begin();
        for account in 0..ACCOUNTS {
            txn.put(account, INITIAL_BALANCE);
        }
        txn.commit().expect("open");
        store
    }
    #[inline]
    fn try_transfer(&self, from: u64, to: u64, amount: u64) -> bool {
        let mut txn = self.begin_serializable();
        let from_balance = *txn.get(&from).expect("account");
        let to_balance = *txn.get(&to).expect("account");
        let moved = amount.min(from_balance);
        txn.put(from, from_balance - moved);
        txn.put(to, to_balance + moved);
        match txn.commit() {
            Ok(_) => true,
            Err(error) if error.is_conflict() => false,
            Err(error) => panic!("commit failed: {error}"),
        }
    }
    fn total(&self) -> (u64, u64) {
        let snapshot = self.snapshot();
        snapshot.iter().fold((0, 0), |(sum, count), (_, balance)| {
            (sum + balance, count + 1)
        })
    }
}

impl Bank for SerializableDb<u64, u64> {
    const NAME: &'static str = "skipdb";
    fn open() -> Self {
        let db = SerializableDb::new();
        let mut txn = db.serializable_write();
        for account in 0..ACCOUNTS {
            txn.insert(account, INITIAL_BALANCE).expect("insert");
        }
        txn.commit().expect("open");
        db
    }
    #[inline]
    fn try_transfer(&self, from: u64, to: u64, amount: u64) -> bool {
        let mut txn = self.serializable_write();
        let from_balance = *txn.get(&from).expect("get").expect("account").value();
        let to_balance = *txn.get(&to).expect("get").expect("account").value();
        let moved = amount.min(from_balance);
        txn.insert(from, from_balance - moved).expect("insert");
        txn.insert(to, to_balance + moved).expect("insert");
        match txn.commit() {
            Ok(()) => true,
            Err(WtmError::Transaction(TransactionError::Conflict)) => false,
            Err(error) => panic!("commit failed: {error}"),
        }
    }
    fn total(&self) -> (u64, u64) {
        let read = self.read();
        (0..ACCOUNTS).fold((0, 0), |(sum, count), account| match read.get(&account) {
            Some(entry) => (sum + *entry.value(), count + 1),
            None => (sum, count),
        })
    }
}

impl Bank for Database {
    const NAME: &'static str = "surrealmx";
    fn open() -> Self {
        let db = Database::new();
        let mut tx = db.transaction(true);
        for account in 0..ACCOUNTS {
            tx.set(be(account), be(INITIAL_BALANCE)).expect("set");
        }
        tx.commit().expect("open");
        db
    }
    #[inline]
    fn try_transfer(&self, from: u64, to: u64, amount: u64) -> bool {
        let mut tx = self
            .transaction(true)
            .with_serializable_snapshot_isolation();
        let from_balance = tx
            .with_value(be(from), from_be)
            .expect("read")
            .expect("account");
        let to_balance = tx
            .with_value(be(to), from_be)
            .expect("read")
            .expect("account");
        let moved = amount.min(from_balance);
        tx.set(be(from), be(from_balance - moved)).expect("set");
        tx.set(be(to), be(to_balance + moved)).expect("set");
        match tx.commit() {
            Ok(()) => true,
            Err(surrealmx::Error::KeyReadConflict | surrealmx::Error::KeyWriteConflict) => false,
            Err(error) => panic!("commit failed: {error}"),
        }
    }
    fn total(&self) -> (u64, u64) {
        let tx = self.transaction(false);
        (0..ACCOUNTS).fold((0, 0), |(sum, count), account| {
            match tx.with_value(be(account), from_be).expect("read") {
                Some(balance) => (sum + balance, count + 1),
                None => (sum, count),
            }
        })
    }
}

impl Bank for BptreeMap<u64, u64> {
    const NAME: &'static str = "concread";
    fn open() -> Self {
        (0..ACCOUNTS)
            .map(|account| (account, INITIAL_BALANCE))
            .collect()
    }
    #[inline]
    fn try_transfer(&self, from: u64, to: u64, amount: u64) -> bool {
        let mut write = self.write();
        let from_balance = *write.get(&from).expect("account");
        let to_balance = *write.get(&to).expect("account");
        let moved = amount.min(from_balance);
        write.insert(from, from_balance - moved);
        write.insert(to, to_balance + moved);
        write.commit();
        true
    }
    fn total(&self) -> (u64, u64) {
        let read = self.read();
        read.iter().fold((0, 0), |(sum, count), (_, balance)| {
            (sum + balance, count + 1)
        })
    }
}

impl Bank for RwLock<BTreeMap<u64, u64>> {
    const NAME: &'static str = "std_rwlock_btreemap";
    fn open() -> Self {
        RwLock::new(
            (0..ACCOUNTS)
                .map(|account| (account, INITIAL_BALANCE))
                .collect(),
        )
    }
    #[inline]
    fn try_transfer(&self, from: u64, to: u64, amount: u64) -> bool {
        let mut map = self.write().expect("lock");
        let from_balance = map[&from];
        let moved = amount.min(from_balance);
        *map.get_mut(&from).expect("account") -= moved;
        *map.get_mut(&to).expect("account") += moved;
        true
    }
    fn total(&self) -> (u64, u64) {
        let map = self.read().expect("lock");
        (map.values().sum(), map.len() as u64)
    }
}

/// One committed transfer: draws accounts and an amount from the thread's generator, retries on conflict
/// (counting each abort in `aborts`).
#[inline]
fn transfer<B: Bank>(bank: &B, accounts: &Accounts, aborts: &AtomicU64) {
    let mut rng = TRANSFER_RNG.with(|cell| {
        cell.take()
            .unwrap_or_else(|| XorShift::new(NEXT_RNG_SEED.fetch_add(1, Ordering::Relaxed)))
    });
    let (from, to) = accounts.pair(&mut rng);
    let amount = rng.below(MAX_TRANSFER) + 1;
    TRANSFER_RNG.with(|cell| cell.set(Some(rng)));
    while !bank.try_transfer(from, to, amount) {
        aborts.fetch_add(1, Ordering::Relaxed);
    }
}

fn check_total<B: Bank>(bank: &B, label: &str) {
    let (sum, count) = bank.total();
    assert_eq!(
        (sum, count),
        (TOTAL_BALANCE, ACCOUNTS),
        "{label}/{}: balances (sum, accounts) broke the invariant",
        B::NAME
    );
}

fn bench_transfer<B: Bank>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    label: &str,
    accounts: &Accounts,
    threads: usize,
) {
    let bank = B::open();
    // Every store sees the same draws on the bench thread, and the same seeds on the threads of a sample.
    TRANSFER_RNG.with(|cell| cell.set(Some(XorShift::new(0))));
    NEXT_RNG_SEED.store(1, Ordering::Relaxed);
    let aborts = AtomicU64::new(0);
    let op = || transfer(&bank, accounts, &aborts);
    op();
    let mut commits = 1;
    group.bench_function(B::NAME, |b| {
        b.iter_custom(|iters| {
            // `time_on_threads` runs `op` once untimed on each thread when there are several.
            commits += iters * threads as u64 + if threads > 1 { threads as u64 } else { 0 };
            time_on_threads(threads, iters, Combine::Mean, op)
        });
    });
    check_total(&bank, label);
    if commits == 1 {
        // Filtered out: only the untimed transfer ran.
        return;
    }
    let aborts = aborts.into_inner();
    eprintln!(
        "mvcc_store bench: {label}/{}: abort rate {:.3}% ({aborts} aborts, {commits} commits)",
        B::NAME,
        100.0 * aborts as f64 / (aborts + commits) as f64,
    );
}

fn bank_transfer(c: &mut Criterion) {
    for accounts in [
        Accounts::Uniform,
        Accounts::Zipf(Zipf::new(ACCOUNTS, ZIPF_S)),
    ] {
        for threads in thread_counts() {
            let label = format!(
                "bank_transfer/{}/{}",
                accounts.name(),
                thread_label(threads)
            );
            let mut group = c.benchmark_group(&label);
            if threads > 1 {
                // Each sample spawns threads: fewer, longer samples keep that cost out of the figure.
                group.sample_size(30);
            }
            bench_transfer::<Store<u64, u64>>(&mut group, &label, &accounts, threads);
            bench_transfer::<SerializableDb<u64, u64>>(&mut group, &label, &accounts, threads);
            bench_transfer::<Database>(&mut group, &label, &accounts, threads);
            bench_transfer::<BptreeMap<u64, u64>>(&mut group, &label, &accounts, threads);
            bench_transfer::<RwLock<BTreeMap<u64, u64>>>(&mut group, &label, &accounts, threads);
            group.finish();
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// gc
// ---------------------------------------------------------------------------------------------------------

/// Keys overwritten in the `gc` group.
const GC_KEYS: u64 = 10_000;
/// Overwrites made while the snapshot is held (`--test`: `GC_OVERWRITES_SMOKE`).
const GC_OVERWRITES: u64 = 1_000_000;
const GC_OVERWRITES_SMOKE: u64 = 100_000;
/// Overwrites per write transaction for the peers (see the module docs).
const PEER_BATCH: u64 = 100;
/// Collected enough: at most this many versions retained (1.1 per live key).
const GC_LIMIT: u64 = GC_KEYS + GC_KEYS / 10;
/// The same for the `*_commits` functions: 1.2 per live key. Under a steady stream of single-key puts to
/// random keys our store holds about 1.117 versions per key with its default settings (a written key keeps
/// the version the last computed watermark sees until the sweep, 4 keys per commit, comes back to it:
/// about `keys / (2 * gc_keys_per_commit)` extra versions), so 1.1 is never reached by commits alone; 1.2
/// still means the released snapshot's backlog is gone.
const GC_COMMITS_LIMIT: u64 = GC_KEYS + GC_KEYS / 5;
/// Commits between two looks at the statistics in `mvcc_store_commits` (its `stats()` is cheap; about 2,500
/// commits are needed, so the overshoot is under 1%).
const MVCC_CHECK_EVERY: u64 = 16;
/// The same for `surrealmx_commits`: its `stats()` clones and sorts the set of GC candidate keys (about
/// 15 ms at 10^4 keys, left out of the time but not of the group's duration); tens of thousands of commits
/// are needed, so the overshoot stays under 1%.
const SURREALMX_CHECK_EVERY: u64 = 256;
/// A store still above the limit after this long is broken: panic rather than spin.
const GC_TIMEOUT: Duration = Duration::from_secs(120);

/// The overwrites made while the snapshot is held, as `(key, value)`: random keys, values `1, 2, ...`, the
/// same sequence for every store; and the value each key holds after them (0 if never written).
struct Overwrites {
    writes: Vec<(u64, u64)>,
    expected: Vec<u64>,
}

impl Overwrites {
    fn new(count: u64) -> Self {
        let mut rng = XorShift::new(0x6C);
        let mut expected = vec![0; GC_KEYS as usize];
        let writes = (1..=count)
            .map(|value| {
                let key = rng.below(GC_KEYS);
                expected[key as usize] = value;
                (key, value)
            })
            .collect();
        Overwrites { writes, expected }
    }

    /// The writes in transactions of `PEER_BATCH`.
    fn batches(&self) -> impl Iterator<Item = &[(u64, u64)]> {
        self.writes.chunks(PEER_BATCH as usize)
    }

    /// Panics unless `get` returns the expected value of every key.
    fn check(&self, name: &str, get: impl Fn(u64) -> Option<u64>) {
        for key in 0..GC_KEYS {
            assert_eq!(
                get(key),
                Some(self.expected[key as usize]),
                "gc/{name}: key {key} lost its value"
            );
        }
    }
}

/// The writes after the release in the `*_commits` functions: random keys, values above every overwrite's.
/// Returns the key and value of the next one.
#[inline]
fn next_after_release(rng: &mut XorShift, value: &mut u64) -> (u64, u64) {
    *value += 1;
    (rng.below(GC_KEYS), *value)
}

fn gc_group<'a>(c: &'a mut Criterion) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group("gc");
    // Every iteration rebuilds a store with 10^6 versions (seconds, untimed) to time milliseconds: one
    // iteration per sample, and a warm-up of one iteration. Criterion warns that 10 samples do not fit in the
    // (tiny) target time; that is expected.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    group
}

/// Our store after the overwrites (by `put`), with the snapshot still to release: built by the caller so the
/// snapshot can borrow it.
fn mvcc_gc_store() -> Store<u64, u64> {
    let store = Store::new();
    let mut txn = store.begin();
    for key in 0..GC_KEYS {
        txn.put(key, 0);
    }
    txn.commit().expect("fill");
    store
}

fn mvcc_overwrite(store: &Store<u64, u64>, overwrites: &Overwrites) {
    for &(key, value) in &overwrites.writes {
        store.put(key, value).expect("put");
    }
    let retained = store.stats().versions_retained;
    assert!(
        retained > GC_LIMIT,
        "gc/mvcc_store: only {retained} versions retained under a held snapshot"
    );
}

fn surrealmx_gc_db(options: DatabaseOptions) -> Database {
    let db = Database::new_with_options(options);
    let mut tx = db.transaction(true);
    for key in 0..GC_KEYS {
        tx.set(be(key), be(0)).expect("set");
    }
    tx.commit().expect("fill");
    db
}

fn surrealmx_overwrite(db: &Database, overwrites: &Overwrites) {
    for batch in overwrites.batches() {
        let mut tx = db.transaction(true).with_snapshot_isolation();
        for &(key, value) in batch {
            tx.set(be(key), be(value)).expect("set");
        }
        tx.commit().expect("a single writer never conflicts");
    }
    let retained = db.stats().live_versions as u64;
    assert!(
        retained > GC_LIMIT,
        "gc/surrealmx: only {retained} versions retained under a held reader"
    );
}

fn surrealmx_check(db: &Database, overwrites: &Overwrites, name: &str) {
    let tx = db.transaction(false);
    overwrites.check(name, |key| tx.with_value(be(key), from_be).expect("read"));
}

/// The versions skipdb holds, through its hidden accessor (no public statistic exists).
fn skipdb_versions(db: &SerializableDb<u64, u64>) -> u64 {
    db.as_inner()
        .__by_ref()
        .iter()
        .map(|entry| entry.value().len() as u64)
        .sum()
}

/// Runs `step` until `done` holds (checked after each step) and returns the time spent in `step` alone: the
/// checks read statistics or count versions, which is not the store's collection (surrealmx's `stats()`
/// takes milliseconds). Panics after `GC_TIMEOUT`.
fn time_until(name: &str, mut step: impl FnMut(), mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    let mut stepping = Duration::ZERO;
    loop {
        let step_start = Instant::now();
        step();
        stepping += step_start.elapsed();
        if done() {
            return stepping;
        }
        assert!(
            start.elapsed() < GC_TIMEOUT,
            "gc/{name}: the versions never came down"
        );
    }
}

fn gc(c: &mut Criterion) {
    let count = if smoke_mode() {
        GC_OVERWRITES_SMOKE
    } else {
        GC_OVERWRITES
    };
    let overwrites = Overwrites::new(count);
    let mut group = gc_group(c);

    group.bench_function("mvcc_store_gc_call", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let store = mvcc_gc_store();
                let held = store.snapshot();
                mvcc_overwrite(&store, &overwrites);
                drop(held);
                let start = Instant::now();
                black_box(store.gc());
                total += start.elapsed();
                let stats = store.stats();
                assert!(
                    stats.versions_retained <= GC_LIMIT,
                    "gc/mvcc_store_gc_call: {} versions retained after gc() ({stats:?})",
                    stats.versions_retained
                );
                let snapshot = store.snapshot();
                overwrites.check("mvcc_store_gc_call", |key| snapshot.get(&key).copied());
            }
            total
        });
    });

    group.bench_function("mvcc_store_commits", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let store = mvcc_gc_store();
                let held = store.snapshot();
                mvcc_overwrite(&store, &overwrites);
                drop(held);
                let mut rng = XorShift::new(0xAF7E);
                let mut value = count;
                let mut expected = overwrites.expected.clone();
                total += time_until(
                    "mvcc_store_commits",
                    || {
                        for _ in 0..MVCC_CHECK_EVERY {
                            let (key, value) = next_after_release(&mut rng, &mut value);
                            store.put(key, value).expect("put");
                            expected[key as usize] = value;
                        }
                    },
                    || store.stats().versions_retained <= GC_COMMITS_LIMIT,
                );
                let snapshot = store.snapshot();
                for key in 0..GC_KEYS {
                    assert_eq!(snapshot.get(&key), Some(&expected[key as usize]));
                }
            }
            total
        });
    });

    group.bench_function("surrealmx_run_gc", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let options = DatabaseOptions::default().with_enable_gc(false);
                let db = surrealmx_gc_db(options);
                let held = db.transaction(false);
                surrealmx_overwrite(&db, &overwrites);
                drop(held);
                total += time_until(
                    "surrealmx_run_gc",
                    || db.run_gc(),
                    || db.stats().live_versions as u64 <= GC_LIMIT,
                );
                surrealmx_check(&db, &overwrites, "surrealmx_run_gc");
            }
            total
        });
    });

    group.bench_function("surrealmx_commits", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Its background collector off, so the commits alone collect (as in ours).
                let db = surrealmx_gc_db(DatabaseOptions::default().with_enable_gc(false));
                let held = db.transaction(false);
                surrealmx_overwrite(&db, &overwrites);
                drop(held);
                let mut rng = XorShift::new(0xAF7E);
                let mut value = count;
                let mut expected = overwrites.expected.clone();
                total += time_until(
                    "surrealmx_commits",
                    || {
                        for _ in 0..SURREALMX_CHECK_EVERY {
                            let (key, value) = next_after_release(&mut rng, &mut value);
                            db.set(be(key), be(value)).expect("set");
                            expected[key as usize] = value;
                        }
                    },
                    || db.stats().live_versions as u64 <= GC_COMMITS_LIMIT,
                );
                let tx = db.transaction(false);
                for key in 0..GC_KEYS {
                    assert_eq!(
                        tx.with_value(be(key), from_be).expect("read"),
                        Some(expected[key as usize])
                    );
                }
            }
            total
        });
    });

    group.bench_function("skipdb_compact", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let db = SerializableDb::<u64, u64>::new();
                let mut txn = db.serializable_write();
                for key in 0..GC_KEYS {
                    txn.insert(key, 0).expect("insert");
                }
                txn.commit().expect("fill");
                let held = db.read();
                for batch in overwrites.batches() {
                    let mut txn = db.serializable_write();
                    for &(key, value) in batch {
                        txn.insert(key, value).expect("insert");
                    }
                    txn.commit().expect("a single writer never conflicts");
                }
                let retained = skipdb_versions(&db);
                assert!(
                    retained > GC_LIMIT,
                    "gc/skipdb: only {retained} versions under a held read"
                );
                drop(held);
                total += time_until(
                    "skipdb_compact",
                    || db.compact(),
                    || skipdb_versions(&db) <= GC_LIMIT,
                );
                let read = db.read();
                overwrites.check("skipdb_compact", |key| {
                    read.get(&key).map(|entry| *entry.value())
                });
            }
            total
        });
    });

    group.bench_function("concread_drop", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let map: BptreeMap<u64, u64> = (0..GC_KEYS).map(|key| (key, 0)).collect();
                let held = map.read();
                for batch in overwrites.batches() {
                    let mut write = map.write();
                    for &(key, value) in batch {
                        write.insert(key, value);
                    }
                    write.commit();
                }
                assert_eq!(held.get(&0), Some(&0), "gc/concread: the held read changed");
                let start = Instant::now();
                drop(held);
                total += start.elapsed();
                let read = map.read();
                overwrites.check("concread_drop", |key| read.get(&key).copied());
            }
            total
        });
    });

    group.finish();
}

// ---------------------------------------------------------------------------------------------------------
// commit_to_subscriber
// ---------------------------------------------------------------------------------------------------------

/// Keys the bench thread cycles through.
const SUBSCRIBED_KEYS: u64 = 1_024;
/// The key whose change tells the subscriber to stop.
const STOP_KEY: u64 = u64::MAX;

/// The value committed at `key`, which the subscriber checks.
#[inline]
fn subscribed_value(key: u64) -> u64 {
    key ^ 0x5A5A_5A5A
}

fn commit_to_subscriber(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_to_subscriber");
    let store = Store::<u64, u64>::new();
    // The version the subscriber has received; `u64::MAX` once it found something wrong.
    let seen = AtomicU64::new(0);
    thread::scope(|scope| {
        let subscription = store.subscribe(.., None).expect("subscribe");
        let seen = &seen;
        let subscriber = scope.spawn(move || {
            let mut last = 0;
            for change in subscription {
                let outcome = match change {
                    Ok(change) if change.key == STOP_KEY => return Ok(()),
                    Ok(change) if change.version.get() != last + 1 => {
                        Err(format!("version {} after {last}", change.version))
                    }
                    Ok(change)
                        if change.value.as_deref() != Some(&subscribed_value(change.key)) =>
                    {
                        Err(format!("wrong value in {change:?}"))
                    }
                    Ok(change) => {
                        last = change.version.get();
                        Ok(())
                    }
                    Err(lagged) => Err(lagged.to_string()),
                };
                if let Err(error) = outcome {
                    seen.store(u64::MAX, Ordering::Release);
                    return Err(error);
                }
                seen.store(last, Ordering::Release);
            }
            Err("the subscription ended before the stop key".to_string())
        });

        group.bench_function("mvcc_store", |b| {
            let mut key = 0;
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    key = (key + 1) % SUBSCRIBED_KEYS;
                    let version = store.put(key, subscribed_value(key)).expect("put").get();
                    loop {
                        let seen = seen.load(Ordering::Acquire);
                        if seen >= version {
                            assert_ne!(seen, u64::MAX, "the subscriber found a wrong change");
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
                start.elapsed()
            });
        });

        store.put(STOP_KEY, 0).expect("put");
        if let Err(error) = subscriber.join().expect("subscriber thread panicked") {
            panic!("commit_to_subscriber: {error}");
        }
    });
    group.finish();
}

criterion_group!(
    benches,
    snapshot_get,
    bank_transfer,
    gc,
    commit_to_subscriber
);
criterion_main!(benches);
