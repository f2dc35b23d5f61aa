//! Differential fuzzing of `pools::ObjectPool` against a model: a `Vec` free list and counters.
//!
//! One pool (capacity, prewarm and thread cache chosen by the input) runs a sequence of operations on one
//! thread. On one thread the pool is a stack (its thread cache over the shard below it), so the model hands
//! out the id the free list pops. Every step compares the id handed out (or `None` from `try_get`), the ids
//! dropped so far, and every statistic; at the end, dropping the pool must drop every object exactly once.
//!
//! The semantics checked:
//! * `get` takes the newest idle object, or creates one (even beyond the capacity);
//! * `try_get` takes the newest idle object, or creates one only while `live < capacity`;
//! * a return runs the reset hook (which refuses objects marked `keep = false`), then discards the object if
//!   `live > capacity`, else makes it idle;
//! * `detach` takes the object out of the accounting; `trim` drops every idle object.

#![no_main]

use std::sync::{Arc, Mutex};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pools::{ObjectPool, Pooled};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Taken modulo 16, plus 1.
    capacity: u8,
    /// Taken modulo `capacity + 1`.
    prewarm: u8,
    /// Taken modulo 20 (0: caches off).
    thread_cache: u8,
    operations: Vec<Operation>,
}

#[derive(Arbitrary, Debug)]
enum Operation {
    Get,
    TryGet,
    /// Gets this many objects (modulo 32) with `get`.
    GetMany(u8),
    /// Returns the held object at this index (modulo the number held), refused by the reset hook if
    /// `keep` is false.
    Return {
        index: u8,
        keep: bool,
    },
    /// Returns every held object, oldest first.
    ReturnAll,
    /// Detaches the held object at this index.
    Detach(u8),
    Trim,
}

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

#[derive(Debug, Default)]
struct Model {
    free: Vec<usize>,
    next_id: usize,
    live: usize,
    hits: u64,
    misses: u64,
    created: u64,
    discarded: u64,
    detached: u64,
    trimmed: u64,
    dropped: Vec<usize>,
}

impl Model {
    fn get(&mut self, may_create: bool) -> Option<usize> {
        if let Some(id) = self.free.pop() {
            self.hits += 1;
            return Some(id);
        }
        self.misses += 1;
        if !may_create {
            return None;
        }
        self.next_id += 1;
        self.created += 1;
        self.live += 1;
        Some(self.next_id - 1)
    }

    fn give_back(&mut self, id: usize, keep: bool, capacity: usize) {
        if !keep || self.live > capacity {
            self.discarded += 1;
            self.live -= 1;
            self.dropped.push(id);
        } else {
            self.free.push(id);
        }
    }
}

fuzz_target!(|input: Input| {
    let capacity = usize::from(input.capacity % 16) + 1;
    let prewarm = usize::from(input.prewarm) % (capacity + 1);
    let thread_cache = usize::from(input.thread_cache % 20);
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
        .expect("a valid configuration")
    };
    let mut model = Model {
        free: (0..prewarm).collect(),
        next_id: prewarm,
        live: prewarm,
        created: prewarm as u64,
        ..Model::default()
    };
    let mut held: Vec<Pooled<'_, Object>> = Vec::new();

    for operation in &input.operations {
        match *operation {
            Operation::Get => {
                let object = pool.get();
                assert_eq!(Some(object.id), model.get(true), "{operation:?}");
                held.push(object);
            }
            Operation::GetMany(count) => {
                for _ in 0..count % 32 {
                    let object = pool.get();
                    assert_eq!(Some(object.id), model.get(true), "{operation:?}");
                    held.push(object);
                }
            }
            Operation::TryGet => {
                let may_create = model.live < capacity;
                let object = pool.try_get();
                assert_eq!(
                    object.as_ref().map(|o| o.id),
                    model.get(may_create),
                    "{operation:?}"
                );
                held.extend(object);
            }
            Operation::Return { index, keep } => {
                if held.is_empty() {
                    continue;
                }
                let mut object = held.remove(usize::from(index) % held.len());
                object.keep = keep;
                let id = object.id;
                drop(object);
                model.give_back(id, keep, capacity);
            }
            Operation::ReturnAll => {
                for object in held.drain(..) {
                    let id = object.id;
                    drop(object);
                    model.give_back(id, true, capacity);
                }
            }
            Operation::Detach(index) => {
                if held.is_empty() {
                    continue;
                }
                let object = held.remove(usize::from(index) % held.len()).detach();
                model.detached += 1;
                model.live -= 1;
                model.dropped.push(object.id);
            }
            Operation::Trim => {
                let trimmed = pool.trim();
                assert_eq!(trimmed, model.free.len(), "trim");
                model.trimmed += trimmed as u64;
                model.live -= trimmed;
                let mut free = std::mem::take(&mut model.free);
                model.dropped.append(&mut free);
            }
        }
        let mut actual = drops.lock().unwrap().clone();
        let mut expected = model.dropped.clone();
        actual.sort_unstable();
        expected.sort_unstable();
        assert_eq!(actual, expected, "dropped ids after {operation:?}");
        let stats = pool.stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.created),
            (model.hits, model.misses, model.created),
            "hits, misses, created after {operation:?}"
        );
        assert_eq!(
            (stats.discarded, stats.detached, stats.trimmed),
            (model.discarded, model.detached, model.trimmed),
            "discarded, detached, trimmed after {operation:?}"
        );
        assert_eq!(
            (stats.idle, stats.live),
            (model.free.len(), model.live),
            "idle, live after {operation:?}"
        );
        assert!(stats.idle <= capacity);
    }
    drop(held);
    drop(pool);
    let created = model.next_id;
    let mut dropped = drops.lock().unwrap().clone();
    dropped.sort_unstable();
    assert_eq!(
        dropped,
        (0..created).collect::<Vec<_>>(),
        "every object dropped exactly once"
    );
});
