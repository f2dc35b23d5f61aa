//! State-machine property test: random operations on one thread against a model made of a `Vec` free list
//! (a stack: on one thread the pool is LIFO, its cache and the shard below it together forming one stack)
//! and counters. Every step compares the object handed out (by id), the objects dropped, and every
//! statistic; it runs with the thread cache on (small, so it spills and refills) and off.
//!
//! Under Miri the case count drops to 8 and failures are not persisted.

use std::sync::{Arc, Mutex};

use pools::{ObjectPool, Pooled};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 256 });
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

/// The longest operation sequence.
const MAX_OPS: usize = if cfg!(miri) { 40 } else { 200 };

#[derive(Clone, Debug)]
enum Op {
    Get,
    TryGet,
    /// Returns the held object at this index (modulo the number held); `keep: false` makes the reset hook
    /// refuse it.
    Return {
        index: usize,
        keep: bool,
    },
    /// Detaches the held object at this index and drops it outside the pool.
    Detach {
        index: usize,
    },
    Trim,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Get),
        2 => Just(Op::TryGet),
        4 => (any::<usize>(), prop::bool::weighted(0.8)).prop_map(|(index, keep)| Op::Return { index, keep }),
        1 => any::<usize>().prop_map(|index| Op::Detach { index }),
        1 => Just(Op::Trim),
    ]
}

/// An object with an id, logging its drop.
#[derive(Debug)]
struct Object {
    id: usize,
    keep: bool,
    drops: Arc<Mutex<Vec<usize>>>,
}

impl Drop for Object {
    fn drop(&mut self) {
        self.drops.lock().unwrap().push(self.id);
    }
}

/// What the pool should hold and have counted.
#[derive(Debug, Default)]
struct Model {
    /// Idle objects by id, the next one to hand out last.
    free: Vec<usize>,
    next_id: usize,
    live: usize,
    hits: u64,
    misses: u64,
    created: u64,
    discarded: u64,
    detached: u64,
    trimmed: u64,
    /// Ids the pool should have dropped so far, in order.
    dropped: Vec<usize>,
}

impl Model {
    /// A get: an idle object, or a new one if `create` allows.
    fn get(&mut self, create: bool) -> Option<usize> {
        if let Some(id) = self.free.pop() {
            self.hits += 1;
            return Some(id);
        }
        self.misses += 1;
        if !create {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.created += 1;
        self.live += 1;
        Some(id)
    }
}

fn run(
    capacity: usize,
    prewarm: usize,
    thread_cache: usize,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let drops = Arc::new(Mutex::new(Vec::new()));
    let next_id = Arc::new(Mutex::new(0usize));
    let pool = {
        let (drops, next_id) = (drops.clone(), next_id.clone());
        ObjectPool::builder(move || {
            let mut next = next_id.lock().unwrap();
            *next += 1;
            Object {
                id: *next - 1,
                keep: true,
                drops: drops.clone(),
            }
        })
        .capacity(capacity)
        .prewarm(prewarm)
        .thread_cache(thread_cache)
        .reset(|object| std::mem::replace(&mut object.keep, true))
        .build()
        .unwrap()
    };
    let mut model = Model::default();
    for _ in 0..prewarm {
        model.get(true);
    }
    // Prewarmed objects are pushed in creation order: the last one is handed out first.
    model.hits = 0;
    model.misses = 0;
    model.free = (0..prewarm).collect();

    let mut held: Vec<Pooled<'_, Object>> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Get => {
                let object = pool.get();
                prop_assert_eq!(Some(object.id), model.get(true), "step {}: {:?}", step, op);
                held.push(object);
            }
            Op::TryGet => {
                let object = pool.try_get();
                let can_create = model.live < capacity;
                let expected = model.get(can_create);
                prop_assert_eq!(
                    object.as_ref().map(|o| o.id),
                    expected,
                    "step {}: {:?}",
                    step,
                    op
                );
                held.extend(object);
            }
            Op::Return { index, keep } => {
                if held.is_empty() {
                    continue;
                }
                let mut object = held.remove(index % held.len());
                object.keep = keep;
                let id = object.id;
                drop(object);
                if !keep || model.live > capacity {
                    model.discarded += 1;
                    model.live -= 1;
                    model.dropped.push(id);
                } else {
                    model.free.push(id);
                }
            }
            Op::Detach { index } => {
                if held.is_empty() {
                    continue;
                }
                let object = held.remove(index % held.len()).detach();
                model.detached += 1;
                model.live -= 1;
                model.dropped.push(object.id);
            }
            Op::Trim => {
                let trimmed = pool.trim();
                prop_assert_eq!(trimmed, model.free.len(), "step {}", step);
                model.trimmed += trimmed as u64;
                model.live -= trimmed;
                // The pool drops its stack from the bottom (shard first, then cache, each in order).
                model.dropped.append(&mut model.free);
            }
        }
        let mut actual_drops = drops.lock().unwrap().clone();
        let mut expected_drops = model.dropped.clone();
        actual_drops.sort_unstable();
        expected_drops.sort_unstable();
        prop_assert_eq!(
            actual_drops,
            expected_drops,
            "drops after step {}: {:?}",
            step,
            op
        );
        let stats = pool.stats();
        prop_assert_eq!(stats.hits, model.hits, "hits after step {}", step);
        prop_assert_eq!(stats.misses, model.misses, "misses after step {}", step);
        prop_assert_eq!(stats.created, model.created, "created after step {}", step);
        prop_assert_eq!(
            stats.discarded,
            model.discarded,
            "discarded after step {}",
            step
        );
        prop_assert_eq!(
            stats.detached,
            model.detached,
            "detached after step {}",
            step
        );
        prop_assert_eq!(stats.trimmed, model.trimmed, "trimmed after step {}", step);
        prop_assert_eq!(stats.idle, model.free.len(), "idle after step {}", step);
        prop_assert_eq!(stats.live, model.live, "live after step {}", step);
        prop_assert!(stats.idle <= capacity);
    }
    drop(held);
    drop(pool);
    let dropped = drops.lock().unwrap().len();
    prop_assert_eq!(
        dropped,
        model.next_id,
        "every object is dropped exactly once"
    );
    Ok(())
}

fn setup() -> impl Strategy<Value = (usize, usize, usize, Vec<Op>)> {
    (1usize..12).prop_flat_map(|capacity| {
        (
            Just(capacity),
            0..=capacity,
            prop_oneof![Just(0usize), Just(1), Just(2), Just(4), Just(16)],
            prop::collection::vec(op(), 0..MAX_OPS),
        )
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matches_the_free_list_model((capacity, prewarm, cache, ops) in setup()) {
        run(capacity, prewarm, cache, &ops)?;
    }
}

#[test]
fn caches_off_and_on_on_a_fixed_sequence() {
    let ops: Vec<Op> = (0..40)
        .map(|i| match i % 5 {
            0 | 1 => Op::Get,
            2 => Op::TryGet,
            3 => Op::Return {
                index: i,
                keep: i % 7 != 0,
            },
            _ => Op::Return {
                index: 0,
                keep: true,
            },
        })
        .chain([Op::Trim, Op::Get, Op::Detach { index: 0 }])
        .collect();
    for cache in [0, 1, 2, 3, 16] {
        run(4, 2, cache, &ops).unwrap();
    }
}
