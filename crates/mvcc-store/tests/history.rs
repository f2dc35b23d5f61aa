//! An Elle-style history checker (Kingsbury and Alvaro, "Elle: Inferring Isolation Anomalies from
//! Experimental Observations", VLDB 2020) over concurrent list-append transactions.
//!
//! Four threads run transactions of one to four random micro-operations against a
//! `Store<u64, Vec<u64>>`: *read* key `k` (record the list seen) or *append* a globally unique element to
//! `k` (read the list, push, put it back). Eight keys are in use at a time and each thread yields between
//! steps, so transactions overlap and collide often; like Elle, the workload moves on to eight fresh keys
//! every so many commits so lists stay short. A transaction that fails with a conflict is retried with fresh
//! elements, and the elements of the failed attempt are recorded as aborted. Each isolation level runs
//! 10 000 committed transactions (40 under Miri): `list_append_history_is_acyclic_when_serializable` and
//! `list_append_history_has_no_g0_g1_or_g_single_under_snapshot_isolation`.
//!
//! The checker trusts nothing but what clients observed and the lists a final snapshot holds; it never looks
//! at the store's commit versions. Because every element is unique and a list only grows, the final list of
//! a key is its version order, and each observed list names the version it read:
//!
//! * ww: the writer of element `i` of a key precedes the writer of element `i + 1`;
//! * wr: the writer of the last element a read saw precedes the reader;
//! * rw: a reader that saw the list end at element `i` (or saw it empty) precedes the writer of element
//!   `i + 1`, whose write it missed.
//!
//! It also checks that each element was appended once and is in the final list exactly once, that no
//! aborted element was ever read or kept (G1a), that no read saw only part of one transaction's appends
//! (G1b), that every read is a prefix of the final list (the store never showed a state that is not part of
//! its history) and that a transaction sees its own appends.
//!
//! Serializable histories must have an acyclic dependency graph. Snapshot-isolated ones may have cycles of
//! two or more rw edges (write skew), but no cycle of ww and wr edges alone (G0, G1c) and no cycle with
//! exactly one rw edge (G-single): for each rw edge `a -> b`, `b` must not reach `a` through ww and wr
//! edges, which is answered with reachability bitsets over a topological order.
//!
//! The `checker_*` tests feed the checker small hand-built histories with known anomalies, so the checker is
//! shown able to fail.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mvcc_store::{CommitError, ConflictKind, Store, Txn};

type ListStore = Store<u64, Vec<u64>>;

/// How a run starts its transactions: [`Store::begin`] or [`Store::begin_serializable`].
type Begin = for<'s> fn(&'s ListStore) -> Txn<'s, u64, Vec<u64>>;

const THREADS: usize = 4;

/// Keys in use at a time.
const KEYS: u64 = 8;

/// The most micro-operations in one transaction.
const MAX_OPS: u64 = 4;

/// Committed transactions per thread: at least 10 000 per isolation level in all.
const COMMITS_PER_THREAD: usize = if cfg!(miri) { 10 } else { 2_500 };

/// Commits (across all threads) before the workload moves to fresh keys.
const COMMITS_PER_KEY_GENERATION: usize = if cfg!(miri) { 10 } else { 1_000 };

// ---------------------------------------------------------------------------------------------------------
// Histories

/// One micro-operation of a committed transaction, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// Read `key` and saw `observed`: the snapshot's list followed by this transaction's earlier appends.
    Read { key: u64, observed: Vec<u64> },
    /// Appended `element` to the list at `key`.
    Append { key: u64, element: u64 },
}

/// A committed transaction: who ran it and what it did, in order.
#[derive(Debug, Clone)]
struct Transaction {
    thread: usize,
    /// The transaction's number among its thread's committed ones.
    sequence: usize,
    ops: Vec<Op>,
}

/// What the clients observed, and the final state.
#[derive(Debug, Default)]
struct History {
    /// Committed transactions; a transaction's id is its index here.
    committed: Vec<Transaction>,
    /// Elements appended by attempts that failed to commit.
    aborted: Vec<u64>,
    /// Every key's list in a snapshot taken after all transactions ended.
    final_lists: BTreeMap<u64, Vec<u64>>,
}

// ---------------------------------------------------------------------------------------------------------
// The checker

/// The consistency model a history is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    SnapshotIsolation,
    Serializable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dependency {
    /// Write-write: the source wrote the version the target's write follows.
    WriteWrite,
    /// Write-read: the target read what the source wrote.
    WriteRead,
    /// Read-write (anti-dependency): the source read a version the target's write replaced.
    ReadWrite,
}

impl Dependency {
    fn name(self) -> &'static str {
        match self {
            Dependency::WriteWrite => "ww",
            Dependency::WriteRead => "wr",
            Dependency::ReadWrite => "rw",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edge {
    to: usize,
    dependency: Dependency,
    key: u64,
}

/// One edge of a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    from: usize,
    edge: Edge,
}

/// Adya's name for a dependency cycle, by the edges in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anomaly {
    /// Write cycle: ww edges only.
    G0,
    /// Circular information flow: ww and wr edges, at least one wr.
    G1c,
    /// Exactly one rw edge (read skew).
    GSingle,
    /// Two or more rw edges (write skew and its predicate forms).
    G2,
}

impl Anomaly {
    fn of(cycle: &[Step]) -> Anomaly {
        let count = |dependency| {
            cycle
                .iter()
                .filter(|step| step.edge.dependency == dependency)
                .count()
        };
        match count(Dependency::ReadWrite) {
            0 if count(Dependency::WriteRead) == 0 => Anomaly::G0,
            0 => Anomaly::G1c,
            1 => Anomaly::GSingle,
            _ => Anomaly::G2,
        }
    }
}

/// Why a history is not allowed at the level it was checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Violation {
    /// Two committed appends of one element (the workload never does that).
    DuplicateAppend {
        element: u64,
        first: usize,
        second: usize,
    },
    /// An element appears twice in the final lists.
    DuplicateElement { key: u64, element: u64 },
    /// An element of an attempt that did not commit is in a final list (G1a).
    AbortedElementKept { key: u64, element: u64 },
    /// An element nobody appended is in a final list.
    UnknownElement { key: u64, element: u64 },
    /// An element is in the final list of a key it was not appended to.
    MisplacedElement {
        key: u64,
        element: u64,
        appended_to: u64,
    },
    /// A committed append is missing from its key's final list (a lost update).
    LostAppend { txn: usize, key: u64, element: u64 },
    /// One transaction's appends to a key are not adjacent, in order, in the final list (its commit was not
    /// atomic, or others' appends landed inside it).
    SplitAppends { txn: usize, key: u64 },
    /// A read did not end with the transaction's own earlier appends to the key, or saw one of its later
    /// ones.
    OwnAppendsMisread {
        txn: usize,
        key: u64,
        observed: Vec<u64>,
    },
    /// A read saw an element of an attempt that did not commit (G1a).
    AbortedRead { txn: usize, key: u64, element: u64 },
    /// A read saw an element nobody appended.
    UnknownRead { txn: usize, key: u64, element: u64 },
    /// A read saw some but not all of another transaction's appends to a key (G1b).
    IntermediateRead {
        txn: usize,
        key: u64,
        writer: usize,
        element: u64,
    },
    /// A read saw a list that is not a prefix of the key's final list: a state that never was.
    ReadNotPrefix {
        txn: usize,
        key: u64,
        observed: Vec<u64>,
    },
    /// A dependency cycle the level forbids.
    Cycle { anomaly: Anomaly, cycle: Vec<Step> },
}

/// What the checker found in a history it accepted.
#[derive(Debug, Default)]
struct Summary {
    transactions: usize,
    write_write: usize,
    write_read: usize,
    read_write: usize,
    /// A cycle with two or more rw edges, if the history has one (allowed at snapshot isolation).
    anti_dependency_cycle: Option<Vec<Step>>,
}

/// Checks `history` against `level`; returns what it found, or the first violation.
fn check(history: &History, level: Level) -> Result<Summary, Violation> {
    let graph = dependency_graph(history)?;
    let mut summary = Summary {
        transactions: graph.len(),
        ..Summary::default()
    };
    for edge in graph.iter().flatten() {
        match edge.dependency {
            Dependency::WriteWrite => summary.write_write += 1,
            Dependency::WriteRead => summary.write_read += 1,
            Dependency::ReadWrite => summary.read_write += 1,
        }
    }
    match level {
        Level::Serializable => {
            if let Some(cycle) = find_cycle(&graph, |_| true) {
                return Err(Violation::Cycle {
                    anomaly: Anomaly::of(&cycle),
                    cycle,
                });
            }
        }
        Level::SnapshotIsolation => {
            let without_anti_dependencies =
                |dependency: Dependency| dependency != Dependency::ReadWrite;
            if let Some(cycle) = find_cycle(&graph, without_anti_dependencies) {
                return Err(Violation::Cycle {
                    anomaly: Anomaly::of(&cycle),
                    cycle,
                });
            }
            if let Some(cycle) = find_single_anti_dependency_cycle(&graph) {
                return Err(Violation::Cycle {
                    anomaly: Anomaly::GSingle,
                    cycle,
                });
            }
            summary.anti_dependency_cycle = find_cycle(&graph, |_| true);
        }
    }
    Ok(summary)
}

/// Checks the elements and reads of `history` and infers its ww, wr and rw edges (`graph[a]`: edges out of
/// transaction `a`).
fn dependency_graph(history: &History) -> Result<Vec<Vec<Edge>>, Violation> {
    let transactions = &history.committed;
    // Who appended each element, to which key.
    let mut writers: HashMap<u64, (usize, u64)> = HashMap::new();
    for (txn, transaction) in transactions.iter().enumerate() {
        for op in &transaction.ops {
            if let Op::Append { key, element } = *op {
                if let Some(&(first, _)) = writers.get(&element) {
                    return Err(Violation::DuplicateAppend {
                        element,
                        first,
                        second: txn,
                    });
                }
                writers.insert(element, (txn, key));
            }
        }
    }
    let aborted: HashSet<u64> = history.aborted.iter().copied().collect();

    // The final lists: each element once, only committed ones, each in its own key.
    let mut positions: HashMap<u64, (u64, usize)> = HashMap::new();
    for (&key, list) in &history.final_lists {
        for (position, &element) in list.iter().enumerate() {
            if positions.insert(element, (key, position)).is_some() {
                return Err(Violation::DuplicateElement { key, element });
            }
            if aborted.contains(&element) {
                return Err(Violation::AbortedElementKept { key, element });
            }
            match writers.get(&element) {
                None => return Err(Violation::UnknownElement { key, element }),
                Some(&(_, appended_to)) if appended_to != key => {
                    return Err(Violation::MisplacedElement {
                        key,
                        element,
                        appended_to,
                    });
                }
                Some(_) => {}
            }
        }
    }

    // Every committed append is kept, a transaction's appends to a key side by side and in order.
    for (txn, transaction) in transactions.iter().enumerate() {
        let mut last_position: HashMap<u64, usize> = HashMap::new();
        for op in &transaction.ops {
            if let Op::Append { key, element } = *op {
                let Some(&(_, position)) = positions.get(&element) else {
                    return Err(Violation::LostAppend { txn, key, element });
                };
                if let Some(previous) = last_position.insert(key, position)
                    && position != previous + 1
                {
                    return Err(Violation::SplitAppends { txn, key });
                }
            }
        }
    }

    let mut graph = vec![Vec::new(); transactions.len()];
    let writer = |element: &u64| writers[element].0;
    let empty = Vec::new();

    // ww: the version order of each key is the order of its final list.
    for (&key, list) in &history.final_lists {
        for pair in list.windows(2) {
            let (from, to) = (writer(&pair[0]), writer(&pair[1]));
            if from != to {
                graph[from].push(Edge {
                    to,
                    dependency: Dependency::WriteWrite,
                    key,
                });
            }
        }
    }

    // wr and rw, from each read.
    for (txn, transaction) in transactions.iter().enumerate() {
        let mut own_appends: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut first_own: HashMap<u64, usize> = HashMap::new();
        for op in &transaction.ops {
            if let Op::Append { key, element } = op {
                first_own.entry(*key).or_insert(positions[element].1);
            }
        }
        for op in &transaction.ops {
            let (key, observed) = match op {
                Op::Append { key, element } => {
                    own_appends.entry(*key).or_default().push(*element);
                    continue;
                }
                Op::Read { key, observed } => (*key, observed),
            };
            let own = own_appends.get(&key).unwrap_or(&empty);
            let misread = || Violation::OwnAppendsMisread {
                txn,
                key,
                observed: observed.clone(),
            };
            // What the transaction's snapshot held: the read minus its own appends, which must end it.
            let Some(external_len) = observed.len().checked_sub(own.len()) else {
                return Err(misread());
            };
            let (external, own_seen) = observed.split_at(external_len);
            if own_seen != own.as_slice() {
                return Err(misread());
            }
            let list = history.final_lists.get(&key).unwrap_or(&empty);
            if !list.starts_with(external) {
                // Say why, the most specific reason first.
                for &element in external {
                    if aborted.contains(&element) {
                        return Err(Violation::AbortedRead { txn, key, element });
                    }
                    if !writers.contains_key(&element) {
                        return Err(Violation::UnknownRead { txn, key, element });
                    }
                }
                return Err(Violation::ReadNotPrefix {
                    txn,
                    key,
                    observed: observed.clone(),
                });
            }
            // A prefix of a final list holds committed elements only (checked above), but none of them may
            // be this transaction's own: its appends are side by side in the list, the first one at
            // `first_own`.
            if first_own
                .get(&key)
                .is_some_and(|&first| first < external.len())
            {
                return Err(misread());
            }
            let next = list.get(external.len());
            if let Some(last) = external.last() {
                let from = writer(last);
                if let Some(next) = next
                    && writer(next) == from
                {
                    return Err(Violation::IntermediateRead {
                        txn,
                        key,
                        writer: from,
                        element: *last,
                    });
                }
                graph[from].push(Edge {
                    to: txn,
                    dependency: Dependency::WriteRead,
                    key,
                });
            }
            if let Some(next) = next {
                let to = writer(next);
                if to != txn {
                    graph[txn].push(Edge {
                        to,
                        dependency: Dependency::ReadWrite,
                        key,
                    });
                }
            }
        }
    }
    Ok(graph)
}

/// A cycle through the edges `include` admits, found by an iterative depth-first search (no recursion, so
/// long chains cannot overflow the stack).
fn find_cycle(graph: &[Vec<Edge>], include: impl Fn(Dependency) -> bool) -> Option<Vec<Step>> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mark {
        Unvisited,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::Unvisited; graph.len()];
    // The current path: each node with the index of the next edge to try. The edge taken from a node to the
    // next one on the path is the one just before its index.
    let mut path: Vec<(usize, usize)> = Vec::new();
    for root in 0..graph.len() {
        if marks[root] != Mark::Unvisited {
            continue;
        }
        marks[root] = Mark::OnPath;
        path.push((root, 0));
        while let Some((node, next)) = path.last_mut() {
            let node = *node;
            let Some(&edge) = graph[node].get(*next) else {
                marks[node] = Mark::Done;
                path.pop();
                continue;
            };
            *next += 1;
            if !include(edge.dependency) {
                continue;
            }
            match marks[edge.to] {
                Mark::Unvisited => {
                    marks[edge.to] = Mark::OnPath;
                    path.push((edge.to, 0));
                }
                Mark::OnPath => {
                    let start = path
                        .iter()
                        .position(|&(on_path, _)| on_path == edge.to)
                        .expect("a node marked on the path is on the path");
                    let mut cycle: Vec<Step> = path[start..]
                        .iter()
                        .map(|&(from, next)| Step {
                            from,
                            edge: graph[from][next - 1],
                        })
                        .collect();
                    // The last node's entry already points past the closing edge, which it took.
                    cycle.last_mut().expect("the path holds `node`").edge = edge;
                    return Some(cycle);
                }
                Mark::Done => {}
            }
        }
    }
    None
}

/// A cycle with exactly one rw edge, given that the ww and wr edges alone have no cycle: an rw edge
/// `a -> b` such that `b` reaches `a` through ww and wr edges.
///
/// Reachability is a bitset per transaction, filled in reverse topological order of the ww-wr graph (a
/// node reaches itself and whatever its successors reach): n² bits, and one pass of word-wide ORs per edge.
fn find_single_anti_dependency_cycle(graph: &[Vec<Edge>]) -> Option<Vec<Step>> {
    let is_flow = |edge: &Edge| edge.dependency != Dependency::ReadWrite;
    let count = graph.len();
    // Kahn's algorithm.
    let mut incoming = vec![0usize; count];
    for edge in graph.iter().flatten().filter(|edge| is_flow(edge)) {
        incoming[edge.to] += 1;
    }
    let mut ready: Vec<usize> = (0..count).filter(|&node| incoming[node] == 0).collect();
    let mut order = Vec::with_capacity(count);
    while let Some(node) = ready.pop() {
        order.push(node);
        for edge in graph[node].iter().filter(|edge| is_flow(edge)) {
            incoming[edge.to] -= 1;
            if incoming[edge.to] == 0 {
                ready.push(edge.to);
            }
        }
    }
    assert_eq!(
        order.len(),
        count,
        "the ww-wr graph has a cycle; `find_cycle` reports it first"
    );

    let words = count.div_ceil(64);
    let mut reach = vec![0u64; count * words];
    for &node in order.iter().rev() {
        reach[node * words + node / 64] |= 1 << (node % 64);
        for edge in graph[node].iter().filter(|edge| is_flow(edge)) {
            or_row_into(&mut reach, words, node, edge.to);
        }
    }
    let reaches = |from: usize, to: usize| reach[from * words + to / 64] & (1 << (to % 64)) != 0;

    for (from, edges) in graph.iter().enumerate() {
        for &edge in edges {
            if edge.dependency == Dependency::ReadWrite && reaches(edge.to, from) {
                let mut cycle = vec![Step { from, edge }];
                cycle.extend(flow_path(graph, edge.to, from));
                return Some(cycle);
            }
        }
    }
    None
}

/// `reach[into] |= reach[from]`, rows of `words` words.
fn or_row_into(reach: &mut [u64], words: usize, into: usize, from: usize) {
    if into == from {
        return;
    }
    let (into_row, from_row) = if into < from {
        let (low, high) = reach.split_at_mut(from * words);
        (&mut low[into * words..][..words], &high[..words])
    } else {
        let (low, high) = reach.split_at_mut(into * words);
        (&mut high[..words], &low[from * words..][..words])
    };
    for (into_word, from_word) in into_row.iter_mut().zip(from_row) {
        *into_word |= *from_word;
    }
}

/// A shortest path of ww and wr edges from `start` to `target` (which it must reach).
fn flow_path(graph: &[Vec<Edge>], start: usize, target: usize) -> Vec<Step> {
    let mut came_by: Vec<Option<Step>> = vec![None; graph.len()];
    let mut seen = vec![false; graph.len()];
    let mut queue = VecDeque::from([start]);
    seen[start] = true;
    while let Some(node) = queue.pop_front() {
        if node == target {
            break;
        }
        for &edge in &graph[node] {
            if edge.dependency != Dependency::ReadWrite && !seen[edge.to] {
                seen[edge.to] = true;
                came_by[edge.to] = Some(Step { from: node, edge });
                queue.push_back(edge.to);
            }
        }
    }
    let mut path = Vec::new();
    let mut node = target;
    while node != start {
        let step = came_by[node].expect("the bitsets said `start` reaches `target`");
        path.push(step);
        node = step.from;
    }
    path.reverse();
    path
}

/// A violation, with the transactions it involves, for a failure message.
fn explain(history: &History, violation: &Violation) -> String {
    let describe = |txn: usize| {
        let transaction = &history.committed[txn];
        let ops: Vec<String> = transaction.ops.iter().map(describe_op).collect();
        format!(
            "T{txn} (thread {}, commit {}: {})",
            transaction.thread,
            transaction.sequence,
            ops.join(", ")
        )
    };
    match violation {
        Violation::Cycle { anomaly, cycle } => {
            let mut message = format!("{anomaly:?} cycle of {} transactions:\n", cycle.len());
            for step in cycle {
                let _ = writeln!(
                    message,
                    "  {}\n    --{} on key {}-->",
                    describe(step.from),
                    step.edge.dependency.name(),
                    step.edge.key
                );
            }
            let _ = writeln!(message, "  T{} (the first again)", cycle[0].from);
            message
        }
        Violation::DuplicateAppend { first, second, .. } => {
            format!(
                "{violation:?}\n  {}\n  {}",
                describe(*first),
                describe(*second)
            )
        }
        Violation::LostAppend { txn, .. }
        | Violation::SplitAppends { txn, .. }
        | Violation::OwnAppendsMisread { txn, .. }
        | Violation::AbortedRead { txn, .. }
        | Violation::UnknownRead { txn, .. }
        | Violation::ReadNotPrefix { txn, .. } => format!("{violation:?}\n  {}", describe(*txn)),
        Violation::IntermediateRead { txn, writer, .. } => format!(
            "{violation:?}\n  reader {}\n  writer {}",
            describe(*txn),
            describe(*writer)
        ),
        Violation::DuplicateElement { .. }
        | Violation::AbortedElementKept { .. }
        | Violation::UnknownElement { .. }
        | Violation::MisplacedElement { .. } => format!("{violation:?}"),
    }
}

fn describe_op(op: &Op) -> String {
    match op {
        Op::Append { key, element } => format!("append {} to {key}", show_element(*element)),
        Op::Read { key, observed } => {
            let shown: Vec<String> = observed
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(|&element| show_element(element))
                .collect();
            let elided = if observed.len() > 3 { "..., " } else { "" };
            format!(
                "read {key} = [{elided}{}] ({} elements)",
                shown.join(", "),
                observed.len()
            )
        }
    }
}

/// Elements of the workload as `thread.number`; small hand-built ones as they are.
fn show_element(element: u64) -> String {
    match element >> ELEMENT_THREAD_SHIFT {
        0 => element.to_string(),
        thread => format!(
            "{}.{}",
            thread - 1,
            element & ((1 << ELEMENT_THREAD_SHIFT) - 1)
        ),
    }
}

// ---------------------------------------------------------------------------------------------------------
// The workload

/// An element is `(thread + 1) << ELEMENT_THREAD_SHIFT | number`: unique across threads and attempts.
const ELEMENT_THREAD_SHIFT: u32 = 48;

/// Xorshift64 (Marsaglia, 2003): a deterministic random stream per thread, no dependency needed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Any non-zero state works; mix the seed so nearby seeds give unrelated streams.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `bound` (the slight bias does not matter here).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// A planned micro-operation; an attempt and its retries run the same plan.
#[derive(Debug, Clone, Copy)]
enum Planned {
    Read(u64),
    Append(u64),
}

/// What one thread did.
#[derive(Debug, Default)]
struct ThreadLog {
    committed: Vec<Transaction>,
    aborted: Vec<u64>,
    conflicts: Conflicts,
}

/// Failed commits (each retried), by kind: shows which of the store's checks the workload exercised.
#[derive(Debug, Default, Clone, Copy)]
struct Conflicts {
    write_write: u64,
    read_write: u64,
    phantom: u64,
    other: u64,
}

impl Conflicts {
    fn count(&mut self, kind: ConflictKind) {
        match kind {
            ConflictKind::WriteWrite { .. } => self.write_write += 1,
            ConflictKind::ReadWrite { .. } => self.read_write += 1,
            ConflictKind::Phantom { .. } => self.phantom += 1,
            _ => self.other += 1,
        }
    }

    fn add(&mut self, other: Conflicts) {
        self.write_write += other.write_write;
        self.read_write += other.read_write;
        self.phantom += other.phantom;
        self.other += other.other;
    }
}

/// What a run did, beside its history.
#[derive(Debug)]
struct RunStats {
    conflicts: Conflicts,
    elapsed: Duration,
}

fn run_workload(begin: Begin) -> (History, RunStats) {
    let store = ListStore::new();
    let start = Instant::now();
    let barrier = Barrier::new(THREADS);
    // Shared by the threads only to pick keys (not trusted by the checker).
    let commits = AtomicUsize::new(0);
    let logs: Vec<ThreadLog> = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|worker| {
                let (store, barrier, commits) = (&store, &barrier, &commits);
                scope.spawn(move || {
                    barrier.wait();
                    run_worker(store, begin, worker, commits)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a workload thread panicked"))
            .collect()
    });

    let mut history = History::default();
    let mut conflicts = Conflicts::default();
    for log in logs {
        history.committed.extend(log.committed);
        history.aborted.extend(log.aborted);
        conflicts.add(log.conflicts);
    }
    history.final_lists = store
        .snapshot()
        .iter()
        .map(|(&key, list)| (key, list.clone()))
        .collect();
    let stats = RunStats {
        conflicts,
        elapsed: start.elapsed(),
    };
    (history, stats)
}

/// One workload thread: `COMMITS_PER_THREAD` committed transactions, retrying each until it commits.
fn run_worker(store: &ListStore, begin: Begin, worker: usize, commits: &AtomicUsize) -> ThreadLog {
    let mut rng = XorShift::new(worker as u64 + 1);
    let mut next_element = ((worker as u64) + 1) << ELEMENT_THREAD_SHIFT;
    let mut log = ThreadLog::default();
    while log.committed.len() < COMMITS_PER_THREAD {
        // Relaxed: only chooses which keys are hot; nothing is published through it.
        let generation = (commits.load(Ordering::Relaxed) / COMMITS_PER_KEY_GENERATION) as u64;
        let plan: Vec<Planned> = (0..1 + rng.below(MAX_OPS))
            .map(|_| {
                let key = generation * KEYS + rng.below(KEYS);
                if rng.below(2) == 0 {
                    Planned::Read(key)
                } else {
                    Planned::Append(key)
                }
            })
            .collect();
        loop {
            let mut txn = begin(store);
            let mut ops = Vec::with_capacity(plan.len());
            for &planned in &plan {
                // Let other threads commit between this transaction's steps, so transactions overlap
                // (with more threads than cores they would otherwise mostly run one at a time).
                thread::yield_now();
                match planned {
                    Planned::Read(key) => {
                        let observed = txn.get(&key).cloned().unwrap_or_default();
                        ops.push(Op::Read { key, observed });
                    }
                    Planned::Append(key) => {
                        let mut list = txn.get(&key).cloned().unwrap_or_default();
                        let element = next_element;
                        next_element += 1;
                        list.push(element);
                        txn.put(key, list);
                        ops.push(Op::Append { key, element });
                    }
                }
            }
            match txn.commit() {
                Ok(_) => {
                    log.committed.push(Transaction {
                        thread: worker,
                        sequence: log.committed.len(),
                        ops,
                    });
                    commits.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(CommitError::Conflict(conflict)) => {
                    log.conflicts.count(conflict.kind);
                    log.aborted.extend(ops.iter().filter_map(|op| match op {
                        Op::Append { element, .. } => Some(*element),
                        Op::Read { .. } => None,
                    }));
                }
                Err(other) => panic!(
                    "an in-memory commit failed with something else than a conflict: {other}"
                ),
            }
        }
    }
    log
}

/// Runs the workload at one level and checks its history against it.
fn run_and_check(begin: Begin, level: Level) {
    let (history, stats) = run_workload(begin);
    assert_eq!(history.committed.len(), THREADS * COMMITS_PER_THREAD);
    let checked = Instant::now();
    let summary = match check(&history, level) {
        Ok(summary) => summary,
        Err(violation) => panic!(
            "{level:?} history rejected:\n{}",
            explain(&history, &violation)
        ),
    };
    let conflicts = stats.conflicts;
    eprintln!(
        "{level:?}: {} committed; conflicts retried: {} write-write, {} read-write, {} phantom, {} other; \
         {} keys; edges: ww {} wr {} rw {}; workload {:?}, check {:?}; anti-dependency cycle (write skew): {}",
        summary.transactions,
        conflicts.write_write,
        conflicts.read_write,
        conflicts.phantom,
        conflicts.other,
        history.final_lists.len(),
        summary.write_write,
        summary.write_read,
        summary.read_write,
        stats.elapsed,
        checked.elapsed(),
        match &summary.anti_dependency_cycle {
            Some(cycle) => format!("yes, {} transactions", cycle.len()),
            None => "none".to_string(),
        }
    );
    // Transactions read and append the same few keys, so every kind of edge shows up even if the threads
    // happened to run one after another; without them the check would prove nothing.
    assert!(summary.write_write > 0 && summary.write_read > 0 && summary.read_write > 0);
}

#[test]
fn list_append_history_is_acyclic_when_serializable() {
    run_and_check(Store::begin_serializable, Level::Serializable);
}

#[test]
fn list_append_history_has_no_g0_g1_or_g_single_under_snapshot_isolation() {
    run_and_check(Store::begin, Level::SnapshotIsolation);
}

// ---------------------------------------------------------------------------------------------------------
// The checker, on hand-built histories

const X: u64 = 0;
const Y: u64 = 1;

fn read(key: u64, observed: &[u64]) -> Op {
    Op::Read {
        key,
        observed: observed.to_vec(),
    }
}

fn append(key: u64, element: u64) -> Op {
    Op::Append { key, element }
}

fn history(transactions: Vec<Vec<Op>>, aborted: &[u64], final_lists: &[(u64, &[u64])]) -> History {
    History {
        committed: transactions
            .into_iter()
            .enumerate()
            .map(|(sequence, ops)| Transaction {
                thread: 0,
                sequence,
                ops,
            })
            .collect(),
        aborted: aborted.to_vec(),
        final_lists: final_lists
            .iter()
            .map(|&(key, list)| (key, list.to_vec()))
            .collect(),
    }
}

/// The cycle a check must have found, as (from, dependency, to) triples.
fn cycle_of(
    outcome: Result<Summary, Violation>,
    anomaly: Anomaly,
) -> Vec<(usize, Dependency, usize)> {
    match outcome {
        Err(Violation::Cycle {
            anomaly: found,
            cycle,
        }) if found == anomaly => {
            for pair in cycle.windows(2) {
                assert_eq!(pair[0].edge.to, pair[1].from, "a cycle is a path");
            }
            assert_eq!(
                cycle.last().unwrap().edge.to,
                cycle[0].from,
                "a cycle closes"
            );
            cycle
                .iter()
                .map(|step| (step.from, step.edge.dependency, step.edge.to))
                .collect()
        }
        other => panic!("expected a {anomaly:?} cycle, got {other:?}"),
    }
}

/// The cycle's edges, rotated to start at its smallest transaction (a search may start anywhere on it).
fn normalized(mut cycle: Vec<(usize, Dependency, usize)>) -> Vec<(usize, Dependency, usize)> {
    let start = (0..cycle.len()).min_by_key(|&i| cycle[i].0).unwrap();
    cycle.rotate_left(start);
    cycle
}

#[test]
fn checker_accepts_a_serial_history() {
    // T0; T1; T2 one after the other, each seeing everything before it.
    let serial = history(
        vec![
            vec![read(X, &[]), append(X, 1), append(Y, 2)],
            vec![read(X, &[1]), read(Y, &[2]), append(X, 3), read(X, &[1, 3])],
            vec![read(X, &[1, 3]), read(Y, &[2]), append(Y, 4)],
        ],
        &[9],
        &[(X, &[1, 3]), (Y, &[2, 4])],
    );
    for level in [Level::Serializable, Level::SnapshotIsolation] {
        let summary = check(&serial, level).unwrap();
        assert_eq!(summary.transactions, 3);
        assert!(summary.anti_dependency_cycle.is_none());
    }
}

#[test]
fn checker_flags_write_skew_only_when_serializable() {
    // G2-item: both read x and y empty, then each appends to a different one.
    let write_skew = history(
        vec![
            vec![read(X, &[]), read(Y, &[]), append(X, 1)],
            vec![read(X, &[]), read(Y, &[]), append(Y, 2)],
        ],
        &[],
        &[(X, &[1]), (Y, &[2])],
    );
    let summary = check(&write_skew, Level::SnapshotIsolation).unwrap();
    assert_eq!(summary.read_write, 2);
    assert!(summary.anti_dependency_cycle.is_some());
    let cycle = cycle_of(check(&write_skew, Level::Serializable), Anomaly::G2);
    assert_eq!(
        normalized(cycle),
        [(0, Dependency::ReadWrite, 1), (1, Dependency::ReadWrite, 0)]
    );
}

#[test]
fn checker_flags_g_single_read_skew_at_both_levels() {
    // T2 reads x before T1's append to it but y after T3's, and T3 comes after T1 on x:
    // T2 -rw(x)-> T1 -ww(x)-> T3 -wr(y)-> T2. The ww-wr path has two edges, so the bitsets must follow it.
    let read_skew = history(
        vec![
            vec![append(X, 1), append(Y, 2)],
            vec![append(X, 3)],
            vec![read(X, &[1]), read(Y, &[2, 4])],
            vec![append(X, 5), append(Y, 4)],
        ],
        &[],
        &[(X, &[1, 3, 5]), (Y, &[2, 4])],
    );
    let expected = [
        (1, Dependency::WriteWrite, 3),
        (3, Dependency::WriteRead, 2),
        (2, Dependency::ReadWrite, 1),
    ];
    let cycle = cycle_of(
        check(&read_skew, Level::SnapshotIsolation),
        Anomaly::GSingle,
    );
    assert_eq!(normalized(cycle), expected);
    let cycle = cycle_of(check(&read_skew, Level::Serializable), Anomaly::GSingle);
    assert_eq!(normalized(cycle), expected);
    let message = explain(
        &read_skew,
        &check(&read_skew, Level::SnapshotIsolation).unwrap_err(),
    );
    assert!(message.contains("--rw on key 0-->"), "{message}");
}

#[test]
fn checker_flags_g1c_circular_information_flow_at_both_levels() {
    // Each reads the other's append.
    let circular = history(
        vec![
            vec![append(X, 1), read(Y, &[2])],
            vec![append(Y, 2), read(X, &[1])],
        ],
        &[],
        &[(X, &[1]), (Y, &[2])],
    );
    for level in [Level::SnapshotIsolation, Level::Serializable] {
        let cycle = cycle_of(check(&circular, level), Anomaly::G1c);
        assert_eq!(
            normalized(cycle),
            [(0, Dependency::WriteRead, 1), (1, Dependency::WriteRead, 0)]
        );
    }
}

#[test]
fn checker_flags_g0_write_cycles_at_both_levels() {
    // T0 before T1 on x, T1 before T0 on y.
    let write_cycle = history(
        vec![
            vec![append(X, 1), append(Y, 4)],
            vec![append(X, 2), append(Y, 3)],
        ],
        &[],
        &[(X, &[1, 2]), (Y, &[3, 4])],
    );
    for level in [Level::SnapshotIsolation, Level::Serializable] {
        let cycle = cycle_of(check(&write_cycle, level), Anomaly::G0);
        assert_eq!(
            normalized(cycle),
            [
                (0, Dependency::WriteWrite, 1),
                (1, Dependency::WriteWrite, 0)
            ]
        );
    }
}

#[test]
fn checker_flags_aborted_and_intermediate_reads() {
    // G1a: a read of an aborted append.
    let aborted_read = history(
        vec![vec![append(X, 1)], vec![read(X, &[1, 2])]],
        &[2],
        &[(X, &[1])],
    );
    assert_eq!(
        check(&aborted_read, Level::SnapshotIsolation).unwrap_err(),
        Violation::AbortedRead {
            txn: 1,
            key: X,
            element: 2
        }
    );
    // G1a in the final state: an aborted append kept.
    let aborted_kept = history(vec![vec![append(X, 1)]], &[2], &[(X, &[1, 2])]);
    assert_eq!(
        check(&aborted_kept, Level::Serializable).unwrap_err(),
        Violation::AbortedElementKept { key: X, element: 2 }
    );
    // G1b: T1 saw the first of T0's two appends to x.
    let intermediate = history(
        vec![vec![append(X, 1), append(X, 2)], vec![read(X, &[1])]],
        &[],
        &[(X, &[1, 2])],
    );
    assert_eq!(
        check(&intermediate, Level::SnapshotIsolation).unwrap_err(),
        Violation::IntermediateRead {
            txn: 1,
            key: X,
            writer: 0,
            element: 1
        }
    );
}

#[test]
fn checker_flags_lost_duplicated_and_split_appends() {
    // P4: T1's append overwrote T0's.
    let lost = history(
        vec![vec![append(X, 1)], vec![append(X, 2)]],
        &[],
        &[(X, &[2])],
    );
    assert_eq!(
        check(&lost, Level::SnapshotIsolation).unwrap_err(),
        Violation::LostAppend {
            txn: 0,
            key: X,
            element: 1
        }
    );
    let duplicated = history(vec![vec![append(X, 1)]], &[], &[(X, &[1, 1])]);
    assert_eq!(
        check(&duplicated, Level::Serializable).unwrap_err(),
        Violation::DuplicateElement { key: X, element: 1 }
    );
    let unknown = history(vec![vec![append(X, 1)]], &[], &[(X, &[1, 7])]);
    assert_eq!(
        check(&unknown, Level::Serializable).unwrap_err(),
        Violation::UnknownElement { key: X, element: 7 }
    );
    // T1's append landed between T0's two.
    let split = history(
        vec![vec![append(X, 1), append(X, 3)], vec![append(X, 2)]],
        &[],
        &[(X, &[1, 2, 3])],
    );
    assert_eq!(
        check(&split, Level::SnapshotIsolation).unwrap_err(),
        Violation::SplitAppends { txn: 0, key: X }
    );
}

#[test]
fn checker_flags_reads_of_states_that_never_were() {
    // A read that is not a prefix of the final list.
    let not_prefix = history(
        vec![
            vec![append(X, 1), append(Y, 2)],
            vec![append(X, 3)],
            vec![read(X, &[3])],
        ],
        &[],
        &[(X, &[1, 3]), (Y, &[2])],
    );
    assert_eq!(
        check(&not_prefix, Level::SnapshotIsolation).unwrap_err(),
        Violation::ReadNotPrefix {
            txn: 2,
            key: X,
            observed: vec![3]
        }
    );
    // A transaction that did not see its own append.
    let own_missed = history(vec![vec![append(X, 1), read(X, &[])]], &[], &[(X, &[1])]);
    assert!(matches!(
        check(&own_missed, Level::SnapshotIsolation),
        Err(Violation::OwnAppendsMisread { txn: 0, .. })
    ));
    // ...or saw it before making it.
    let own_early = history(vec![vec![read(X, &[1]), append(X, 1)]], &[], &[(X, &[1])]);
    assert!(matches!(
        check(&own_early, Level::Serializable),
        Err(Violation::OwnAppendsMisread { txn: 0, .. })
    ));
}
