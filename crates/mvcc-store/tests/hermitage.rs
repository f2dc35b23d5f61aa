//! The Hermitage suite (Martin Kleppmann, <https://github.com/ept/hermitage>): ten isolation anomalies, each
//! as a deterministic, single-threaded interleaving of transactions, run at both isolation levels.
//!
//! Every case starts from the Hermitage table `test (id, value)` with the rows `1 => 10` and `2 => 20`
//! (keys 1 and 2 here), and takes its steps in the order of the PostgreSQL scripts (`postgres.md`). Where
//! PostgreSQL blocks a statement on a row lock, this store buffers the write and reports the conflict when
//! the transaction commits, so the failing step moves to the commit. PostgreSQL takes a transaction's
//! snapshot at its first statement, not at `begin`; a transaction here begins at its first statement, which
//! is the `begin` line in every script except OTV's third transaction.
//!
//! Each row of the Hermitage table in the crate docs (`src/lib.rs`, "Isolation, as the Hermitage suite
//! tests it") is backed by these tests:
//!
//! | anomaly | [`Isolation::Snapshot`] | [`Isolation::Serializable`] |
//! |---|---|---|
//! | G0 write cycles | prevented: `g0_write_cycles_are_prevented_under_snapshot_isolation` | prevented: `g0_write_cycles_are_prevented_when_serializable` |
//! | G1a aborted reads | prevented: `g1a_aborted_reads_are_prevented_under_snapshot_isolation` | prevented: `g1a_aborted_reads_are_prevented_when_serializable` |
//! | G1b intermediate reads | prevented: `g1b_intermediate_reads_are_prevented_under_snapshot_isolation` | prevented: `g1b_intermediate_reads_are_prevented_when_serializable` |
//! | G1c circular information flow | prevented: `g1c_circular_information_flow_is_prevented_under_snapshot_isolation` | prevented: `g1c_circular_information_flow_is_prevented_when_serializable` |
//! | OTV observed transaction vanishes | prevented: `otv_observed_transaction_vanishes_is_prevented_under_snapshot_isolation` | prevented: `otv_observed_transaction_vanishes_is_prevented_when_serializable` |
//! | PMP predicate-many-preceders | prevented: `pmp_predicate_many_preceders_is_prevented_under_snapshot_isolation` | prevented: `pmp_predicate_many_preceders_is_prevented_when_serializable` |
//! | P4 lost update | prevented: `p4_lost_update_is_prevented_under_snapshot_isolation` | prevented: `p4_lost_update_is_prevented_when_serializable` |
//! | G-single read skew | prevented: `g_single_read_skew_is_prevented_under_snapshot_isolation` | prevented: `g_single_read_skew_is_prevented_when_serializable` |
//! | G2-item write skew | **possible**: `g2_item_write_skew_is_possible_under_snapshot_isolation` | prevented: `g2_item_write_skew_is_prevented_when_serializable` |
//! | G2 anti-dependency cycles | **possible**: `g2_anti_dependency_cycles_are_possible_under_snapshot_isolation` | prevented: `g2_anti_dependency_cycles_are_prevented_when_serializable` |
//!
//! "Prevented" means the anomaly cannot be observed: a read returns the value the anomaly would hide, or a
//! commit fails with the [`Conflict`] asserted (key and kind, with its versions: the table is set up at
//! version 1, so the first commit after it is version 2). "Possible" means the test makes the anomaly
//! happen: every transaction commits and what they read fits no serial order.
//!
//! Cases that behave the same at both levels share one scenario function, run by two tests; the
//! serializable G1c, G2-item and G2 tests expect a commit to fail that snapshot isolation lets through, so
//! they fail if serializable validation is missing.
//!
//! [`Isolation::Snapshot`]: mvcc_store::Isolation::Snapshot
//! [`Isolation::Serializable`]: mvcc_store::Isolation::Serializable

use mvcc_store::{CommitError, Conflict, ConflictKind, Isolation, Store, Txn, Version};

/// The Hermitage `test` table: `id => value`.
type Table = Store<i32, i32>;

/// How a scenario starts its transactions: [`Store::begin`] or [`Store::begin_serializable`].
type Begin = for<'s> fn(&'s Table) -> Txn<'s, i32, i32>;

const SNAPSHOT_ISOLATION: Begin = Store::begin;
const SERIALIZABLE: Begin = Store::begin_serializable;

/// The version of the freshly set up table.
const SETUP: Version = Version::new(1);
/// The version of the first commit after the setup.
const FIRST_COMMIT: Version = Version::new(2);
/// The version of the second commit after the setup.
const SECOND_COMMIT: Version = Version::new(3);

/// The table with `1 => 10, 2 => 20`, inserted by one commit (version 1).
fn test_table() -> Table {
    let table = Table::new();
    let mut setup = table.begin();
    setup.put(1, 10);
    setup.put(2, 20);
    assert_eq!(setup.commit().unwrap(), SETUP);
    table
}

/// `select * from test`, as the transaction sees it.
fn select_all(txn: &Txn<'_, i32, i32>) -> Vec<(i32, i32)> {
    txn.iter().map(|(&id, &value)| (id, value)).collect()
}

/// `select * from test where <predicate on value>`: a predicate read, over an iteration of the whole table.
fn select_where(txn: &Txn<'_, i32, i32>, predicate: impl Fn(i32) -> bool) -> Vec<(i32, i32)> {
    txn.iter()
        .filter(|&(_, &value)| predicate(value))
        .map(|(&id, &value)| (id, value))
        .collect()
}

/// `select value from test where id = <id>`.
fn select_id(txn: &Txn<'_, i32, i32>, id: i32) -> Option<i32> {
    txn.get(&id).copied()
}

/// What a fresh snapshot sees: the committed table.
fn committed(table: &Table) -> Vec<(i32, i32)> {
    table
        .snapshot()
        .iter()
        .map(|(&id, &value)| (id, value))
        .collect()
}

/// The conflict a commit must have failed with.
fn conflict(outcome: Result<Version, CommitError<i32>>) -> Conflict<i32> {
    match outcome {
        Ok(version) => {
            panic!("the commit succeeded at {version}, but it had to fail with a conflict")
        }
        Err(CommitError::Conflict(conflict)) => conflict,
        Err(other) => panic!("the commit failed with something other than a conflict: {other}"),
    }
}

fn write_write(key: i32) -> Conflict<i32> {
    Conflict {
        key,
        kind: ConflictKind::WriteWrite {
            snapshot: SETUP,
            committed: FIRST_COMMIT,
        },
    }
}

fn read_write(key: i32) -> Conflict<i32> {
    Conflict {
        key,
        kind: ConflictKind::ReadWrite {
            snapshot: SETUP,
            committed: FIRST_COMMIT,
        },
    }
}

fn phantom(key: i32) -> Conflict<i32> {
    Conflict {
        key,
        kind: ConflictKind::Phantom {
            snapshot: SETUP,
            committed: FIRST_COMMIT,
        },
    }
}

/// Both levels' `begin` functions are the ones the test names say (so a scenario cannot silently run at the
/// wrong level).
#[test]
fn scenarios_start_transactions_at_the_level_named() {
    let table = test_table();
    assert_eq!(SNAPSHOT_ISOLATION(&table).isolation(), Isolation::Snapshot);
    assert_eq!(SERIALIZABLE(&table).isolation(), Isolation::Serializable);
}

// G0: write cycles. Two transactions write the same two rows; a mix of both (1 => 12, 2 => 21) would be a
// cycle of write-write dependencies. First committer wins, so T2 fails on the first key both wrote.

fn g0_write_cycles(begin: Begin) {
    let table = test_table();
    let mut t1 = begin(&table);
    let mut t2 = begin(&table);
    t1.put(1, 11);
    t2.put(1, 12); // PostgreSQL blocks here; this store finds the conflict at T2's commit.
    t1.put(2, 21);
    assert_eq!(t1.commit().unwrap(), FIRST_COMMIT);
    assert_eq!(committed(&table), [(1, 11), (2, 21)]);
    t2.put(2, 22);
    assert_eq!(conflict(t2.commit()), write_write(1));
    assert_eq!(committed(&table), [(1, 11), (2, 21)]);
}

#[test]
fn g0_write_cycles_are_prevented_under_snapshot_isolation() {
    g0_write_cycles(SNAPSHOT_ISOLATION);
}

#[test]
fn g0_write_cycles_are_prevented_when_serializable() {
    g0_write_cycles(SERIALIZABLE);
}

// G1a: aborted reads. T2 must never see the write of T1, which aborts.

fn g1a_aborted_reads(begin: Begin) {
    let table = test_table();
    let mut t1 = begin(&table);
    let t2 = begin(&table);
    t1.put(1, 101);
    assert_eq!(select_all(&t2), [(1, 10), (2, 20)]);
    assert_eq!(select_id(&t2, 1), Some(10));
    t1.abort();
    assert_eq!(select_all(&t2), [(1, 10), (2, 20)]);
    assert_eq!(select_id(&t2, 1), Some(10));
    assert_eq!(
        t2.commit().unwrap(),
        SETUP,
        "a read-only commit returns its snapshot"
    );
    assert_eq!(committed(&table), [(1, 10), (2, 20)]);
}

#[test]
fn g1a_aborted_reads_are_prevented_under_snapshot_isolation() {
    g1a_aborted_reads(SNAPSHOT_ISOLATION);
}

#[test]
fn g1a_aborted_reads_are_prevented_when_serializable() {
    g1a_aborted_reads(SERIALIZABLE);
}

// G1b: intermediate reads. T1 writes 101 and then 11 to the same row; nobody may ever see 101. (PostgreSQL
// read committed shows T2 the final 11 at its second read; at snapshot isolation T2 keeps seeing its
// snapshot's 10.)

fn g1b_intermediate_reads(begin: Begin) {
    let table = test_table();
    let mut t1 = begin(&table);
    let t2 = begin(&table);
    t1.put(1, 101);
    assert_eq!(select_all(&t2), [(1, 10), (2, 20)]);
    t1.put(1, 11);
    assert_eq!(t1.commit().unwrap(), FIRST_COMMIT);
    assert_eq!(select_all(&t2), [(1, 10), (2, 20)]);
    assert_eq!(t2.commit().unwrap(), SETUP);
    assert_eq!(committed(&table), [(1, 11), (2, 20)]);
}

#[test]
fn g1b_intermediate_reads_are_prevented_under_snapshot_isolation() {
    g1b_intermediate_reads(SNAPSHOT_ISOLATION);
}

#[test]
fn g1b_intermediate_reads_are_prevented_when_serializable() {
    g1b_intermediate_reads(SERIALIZABLE);
}

// G1c: circular information flow. Each transaction writes one row and reads the other's; seeing each
// other's uncommitted write would be a cycle of write-read dependencies. Neither does. The history that is
// left (each read the other's row before the other wrote it) is a write skew: snapshot isolation commits
// both, serializable refuses the second, which read a row the first changed.

/// Runs G1c up to T2's commit and returns its outcome.
fn g1c_circular_information_flow(begin: Begin, table: &Table) -> Result<Version, CommitError<i32>> {
    let mut t1 = begin(table);
    let mut t2 = begin(table);
    t1.put(1, 11);
    t2.put(2, 22);
    assert_eq!(select_id(&t1, 2), Some(20));
    assert_eq!(select_id(&t2, 1), Some(10));
    assert_eq!(t1.commit().unwrap(), FIRST_COMMIT);
    t2.commit()
}

#[test]
fn g1c_circular_information_flow_is_prevented_under_snapshot_isolation() {
    let table = test_table();
    let t2 = g1c_circular_information_flow(SNAPSHOT_ISOLATION, &table);
    assert_eq!(t2.unwrap(), SECOND_COMMIT);
    assert_eq!(committed(&table), [(1, 11), (2, 22)]);
}

#[test]
fn g1c_circular_information_flow_is_prevented_when_serializable() {
    let table = test_table();
    let t2 = g1c_circular_information_flow(SERIALIZABLE, &table);
    assert_eq!(conflict(t2), read_write(1));
    assert_eq!(committed(&table), [(1, 11), (2, 20)]);
}

// OTV: observed transaction vanishes. T3 sees T1's writes; it must go on seeing all of them, never T2's
// overwrite of one of them. T3 begins at its first read, after T1's commit (where PostgreSQL takes its
// snapshot), so it does see T1. T2 also loses to T1 (first committer wins on row 1).

fn otv_observed_transaction_vanishes(begin: Begin) {
    let table = test_table();
    let mut t1 = begin(&table);
    let mut t2 = begin(&table);
    t1.put(1, 11);
    t1.put(2, 19);
    t2.put(1, 12); // PostgreSQL blocks here.
    assert_eq!(t1.commit().unwrap(), FIRST_COMMIT);
    let t3 = begin(&table);
    assert_eq!(select_id(&t3, 1), Some(11));
    t2.put(2, 18);
    assert_eq!(select_id(&t3, 2), Some(19));
    assert_eq!(conflict(t2.commit()), write_write(1));
    assert_eq!(select_id(&t3, 2), Some(19));
    assert_eq!(select_id(&t3, 1), Some(11));
    assert_eq!(t3.commit().unwrap(), FIRST_COMMIT);
    assert_eq!(committed(&table), [(1, 11), (2, 19)]);
}

#[test]
fn otv_observed_transaction_vanishes_is_prevented_under_snapshot_isolation() {
    otv_observed_transaction_vanishes(SNAPSHOT_ISOLATION);
}

#[test]
fn otv_observed_transaction_vanishes_is_prevented_when_serializable() {
    otv_observed_transaction_vanishes(SERIALIZABLE);
}

// PMP: predicate-many-preceders. A predicate read must not see a row inserted after the transaction's
// snapshot; and a write by predicate must not act on rows another committed transaction changed since.

fn pmp_predicate_many_preceders(begin: Begin) {
    // Read predicate: T1's second predicate read must not see T2's insert.
    let table = test_table();
    let t1 = begin(&table);
    let mut t2 = begin(&table);
    assert_eq!(select_where(&t1, |value| value == 30), []);
    t2.put(3, 30);
    assert_eq!(t2.commit().unwrap(), FIRST_COMMIT);
    assert_eq!(select_where(&t1, |value| value % 3 == 0), []);
    assert_eq!(t1.commit().unwrap(), SETUP);
    assert_eq!(committed(&table), [(1, 10), (2, 20), (3, 30)]);

    // Write predicate (`update test set value = value + 10` against `delete from test where value = 20`):
    // T2 deletes the row it saw at 20, which T1 has since moved to 30, so T2 fails rather than delete it.
    let table = test_table();
    let mut t1 = begin(&table);
    let mut t2 = begin(&table);
    for (id, value) in select_all(&t1) {
        t1.put(id, value + 10);
    }
    let doomed = select_where(&t2, |value| value == 20);
    assert_eq!(doomed, [(2, 20)]);
    for (id, _) in doomed {
        t2.delete(id); // PostgreSQL blocks here.
    }
    assert_eq!(t1.commit().unwrap(), FIRST_COMMIT);
    assert_eq!(conflict(t2.commit()), write_write(2));
    assert_eq!(committed(&table), [(1, 20), (2, 30)]);
}

#[test]
fn pmp_predicate_many_preceders_is_prevented_under_snapshot_isolation() {
    pmp_predicate_many_preceders(SNAPSHOT_ISOLATION);
}

#[test]
fn pmp_predicate_many_preceders_is_prevented_when_serializable() {
    pmp_predicate_many_preceders(SERIALIZABLE);
}

// P4: lost update. Both read row 1 and write it; had both committed, T1's update would be lost. First
// committer wins.

fn p4_lost_update(begin: Begin) {
    let table = test_table();
    let mut t1 = begin(&table);
    let mut t2 = begin(&table);
    assert_eq!(select_id(&t1, 1), Some(10));
    assert_eq!(select_id(&t2, 1), Some(10));
    t1.put(1, 11);
    t2.put(1, 11); // PostgreSQL blocks here.
    assert_eq!(t1.commit().unwrap(), FIRST_COMMIT);
    assert_eq!(conflict(t2.commit()), write_write(1));
    assert_eq!(
        table.get_versioned(&1).map(|(v, value)| (v, *value)),
        Some((FIRST_COMMIT, 11))
    );
}

#[test]
fn p4_lost_update_is_prevented_under_snapshot_isolation() {
    p4_lost_update(SNAPSHOT_ISOLATION);
}

#[test]
fn p4_lost_update_is_prevented_when_serializable() {
    p4_lost_update(SERIALIZABLE);
}

// G-single: read skew, a cycle with one anti-dependency. T2 moves value between the rows (the sum stays
// 30); T1 reads one row before T2's commit and one after, and must see both as of its snapshot. Three
// variants, as in the PostgreSQL script: item reads, predicate reads, and a write by predicate.

fn g_single_read_skew(begin: Begin) {
    // Item reads: T1 must not see T2's 18 next to the 10 it read before.
    let table = test_table();
    let t1 = begin(&table);
    let mut t2 = begin(&table);
    assert_eq!(select_id(&t1, 1), Some(10));
    assert_eq!(select_id(&t2, 1), Some(10));
    assert_eq!(select_id(&t2, 2), Some(20));
    t2.put(1, 12);
    t2.put(2, 18);
    assert_eq!(t2.commit().unwrap(), FIRST_COMMIT);
    assert_eq!(select_id(&t1, 2), Some(20));
    assert_eq!(t1.commit().unwrap(), SETUP);
    assert_eq!(committed(&table), [(1, 12), (2, 18)]);

    // Predicate reads: T1's second predicate must not match T2's 12.
    let table = test_table();
    let t1 = begin(&table);
    let mut t2 = begin(&table);
    assert_eq!(
        select_where(&t1, |value| value % 5 == 0),
        [(1, 10), (2, 20)]
    );
    for (id, _) in select_where(&t2, |value| value == 10) {
        t2.put(id, 12);
    }
    assert_eq!(t2.commit().unwrap(), FIRST_COMMIT);
    assert_eq!(select_where(&t1, |value| value % 3 == 0), []);
    assert_eq!(t1.commit().unwrap(), SETUP);
    assert_eq!(committed(&table), [(1, 12), (2, 20)]);

    // Write predicate: T1 deletes the row it sees at 20, which T2 has since changed to 18; T1 must fail
    // rather than delete a row whose value no longer matches.
    let table = test_table();
    let mut t1 = begin(&table);
    let mut t2 = begin(&table);
    assert_eq!(select_id(&t1, 1), Some(10));
    assert_eq!(select_all(&t2), [(1, 10), (2, 20)]);
    t2.put(1, 12);
    t2.put(2, 18);
    assert_eq!(t2.commit().unwrap(), FIRST_COMMIT);
    let doomed = select_where(&t1, |value| value == 20);
    assert_eq!(doomed, [(2, 20)], "T1 reads its snapshot");
    for (id, _) in doomed {
        t1.delete(id);
    }
    assert_eq!(conflict(t1.commit()), write_write(2));
    assert_eq!(committed(&table), [(1, 12), (2, 18)]);
}

#[test]
fn g_single_read_skew_is_prevented_under_snapshot_isolation() {
    g_single_read_skew(SNAPSHOT_ISOLATION);
}

#[test]
fn g_single_read_skew_is_prevented_when_serializable() {
    g_single_read_skew(SERIALIZABLE);
}

// G2-item: write skew. Both read rows 1 and 2, then each writes a different one. In any serial order the
// second would read the first's write; here both read (10, 20), so if both commit no serial order explains
// the history.

/// Runs G2-item up to T2's commit; returns what T1 and T2 read and T2's commit outcome.
fn g2_item_write_skew(begin: Begin, table: &Table) -> G2ItemOutcome {
    let mut t1 = begin(table);
    let mut t2 = begin(table);
    let t1_read = (select_id(&t1, 1), select_id(&t1, 2));
    let t2_read = (select_id(&t2, 1), select_id(&t2, 2));
    t1.put(1, 11);
    t2.put(2, 21);
    assert_eq!(t1.commit().unwrap(), FIRST_COMMIT);
    G2ItemOutcome {
        t1_read,
        t2_read,
        t2_commit: t2.commit(),
    }
}

struct G2ItemOutcome {
    t1_read: (Option<i32>, Option<i32>),
    t2_read: (Option<i32>, Option<i32>),
    t2_commit: Result<Version, CommitError<i32>>,
}

#[test]
fn g2_item_write_skew_is_possible_under_snapshot_isolation() {
    let table = test_table();
    let outcome = g2_item_write_skew(SNAPSHOT_ISOLATION, &table);
    assert_eq!(outcome.t2_commit.unwrap(), SECOND_COMMIT);
    assert_eq!(committed(&table), [(1, 11), (2, 21)]);
    // The invariant of any serial order: the transaction that ran second saw the first one's write
    // (T1 then T2: T2 reads 1 => 11; T2 then T1: T1 reads 2 => 21). Neither did.
    let t2_saw_t1 = outcome.t2_read.0 == Some(11);
    let t1_saw_t2 = outcome.t1_read.1 == Some(21);
    assert!(!t2_saw_t1 && !t1_saw_t2, "expected a write skew");
    assert_eq!(outcome.t1_read, (Some(10), Some(20)));
    assert_eq!(outcome.t2_read, (Some(10), Some(20)));
}

#[test]
fn g2_item_write_skew_is_prevented_when_serializable() {
    let table = test_table();
    let outcome = g2_item_write_skew(SERIALIZABLE, &table);
    assert_eq!(conflict(outcome.t2_commit), read_write(1));
    assert_eq!(committed(&table), [(1, 11), (2, 20)]);
}

// G2: anti-dependency cycles over predicates. Both read `value % 3 = 0` (nothing), then each inserts a row
// that matches it. In any serial order the second would see the first's row. Then Fekete et al.'s
// read-only anomaly: a cycle with two anti-dependencies and a read-only transaction in it.

/// Runs the two-transaction G2 case up to T2's commit; returns T2's commit outcome.
fn g2_predicate_cycle(begin: Begin, table: &Table) -> Result<Version, CommitError<i32>> {
    let mut t1 = begin(table);
    let mut t2 = begin(table);
    assert_eq!(select_where(&t1, |value| value % 3 == 0), []);
    assert_eq!(select_where(&t2, |value| value % 3 == 0), []);
    t1.put(3, 30);
    t2.put(4, 42);
    assert_eq!(t1.commit().unwrap(), FIRST_COMMIT);
    t2.commit()
}

/// Runs Fekete et al.'s case: T1 reads everything, T2 adds 5 to row 2 and commits, T3 (read-only) reads
/// everything and commits, then T1 writes row 1. Returns T1's commit outcome.
///
/// T1 must precede T2 (T1 read row 2 before T2 changed it), T2 precedes T3 (T3 saw T2's write), and T3
/// precedes T1 (T3 read row 1 before T1 changed it): if T1 commits, there is no serial order.
fn g2_fekete_read_only_cycle(begin: Begin, table: &Table) -> Result<Version, CommitError<i32>> {
    let mut t1 = begin(table);
    assert_eq!(select_all(&t1), [(1, 10), (2, 20)]);
    let mut t2 = begin(table);
    let value = select_id(&t2, 2).unwrap();
    t2.put(2, value + 5);
    assert_eq!(t2.commit().unwrap(), FIRST_COMMIT);
    let t3 = begin(table);
    assert_eq!(select_all(&t3), [(1, 10), (2, 25)]);
    assert_eq!(
        t3.commit().unwrap(),
        FIRST_COMMIT,
        "read-only transactions never fail"
    );
    t1.put(1, 0);
    t1.commit()
}

#[test]
fn g2_anti_dependency_cycles_are_possible_under_snapshot_isolation() {
    let table = test_table();
    assert_eq!(
        g2_predicate_cycle(SNAPSHOT_ISOLATION, &table).unwrap(),
        SECOND_COMMIT
    );
    // Each transaction's predicate read missed a row the other inserted: both rows now match it.
    assert_eq!(
        select_where(&table.begin(), |value| value % 3 == 0),
        [(3, 30), (4, 42)]
    );

    let table = test_table();
    assert_eq!(
        g2_fekete_read_only_cycle(SNAPSHOT_ISOLATION, &table).unwrap(),
        SECOND_COMMIT
    );
    // T3 saw (10, 25): T2's write without T1's, yet T1 read row 2 as it was before T2.
    assert_eq!(committed(&table), [(1, 0), (2, 25)]);
}

#[test]
fn g2_anti_dependency_cycles_are_prevented_when_serializable() {
    let table = test_table();
    // T2's predicate read covered the whole table, into which T1 inserted row 3.
    assert_eq!(
        conflict(g2_predicate_cycle(SERIALIZABLE, &table)),
        phantom(3)
    );
    assert_eq!(
        select_where(&table.begin(), |value| value % 3 == 0),
        [(3, 30)]
    );

    let table = test_table();
    // T1's `select *` covered row 2, which T2 changed.
    assert_eq!(
        conflict(g2_fekete_read_only_cycle(SERIALIZABLE, &table)),
        phantom(2)
    );
    assert_eq!(committed(&table), [(1, 10), (2, 25)]);
}
