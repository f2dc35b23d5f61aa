//! A single-threaded state machine test of `BufferPool` against a model: each held buffer is a `Vec<u8>`
//! with the capacity the pool should give it, and each class has model counters (hits, misses, idle, live)
//! that must equal `stats()` after every step, with thread caches on and off.

use std::io::Write;

use bytes::{BufMut, Bytes};
use pools::{BufferPool, PooledBuf, Zeroing};
use proptest::prelude::*;

const CLASSES: [usize; 3] = [16, 64, 256];
const MAX_IDLE: usize = 2;

#[derive(Debug, Clone)]
enum Operation {
    Acquire(usize),
    /// Appends `len` bytes to a held buffer, through one of three write paths.
    Write {
        slot: usize,
        len: usize,
        how: u8,
    },
    Truncate {
        slot: usize,
        len: usize,
    },
    Release(usize),
    Freeze(usize),
    DropFrozen(usize),
    Trim,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        3 => (0usize..600).prop_map(Operation::Acquire),
        4 => (any::<usize>(), 0usize..300, any::<u8>())
            .prop_map(|(slot, len, how)| Operation::Write { slot, len, how }),
        1 => (any::<usize>(), 0usize..300).prop_map(|(slot, len)| Operation::Truncate { slot, len }),
        3 => any::<usize>().prop_map(Operation::Release),
        1 => any::<usize>().prop_map(Operation::Freeze),
        1 => any::<usize>().prop_map(Operation::DropFrozen),
        1 => Just(Operation::Trim),
    ]
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ClassModel {
    hits: u64,
    misses: u64,
    idle: usize,
    live: usize,
}

/// A held buffer in the model: contents, capacity, class (`None`: unpooled).
struct BufModel {
    bytes: Vec<u8>,
    capacity: usize,
    class: Option<usize>,
}

#[derive(Default)]
struct Model {
    classes: [ClassModel; 3],
    oversize: u64,
    oversize_bytes: u64,
}

impl Model {
    fn class_for(len: usize) -> Option<usize> {
        CLASSES.iter().position(|&size| len <= size)
    }

    /// A buffer with room for `len`: `(capacity, class)`.
    fn take(&mut self, len: usize, unpooled_capacity: usize) -> (usize, Option<usize>) {
        match Self::class_for(len) {
            Some(index) => {
                let class = &mut self.classes[index];
                if class.idle > 0 {
                    class.idle -= 1;
                    class.hits += 1;
                } else {
                    class.misses += 1;
                    class.live += 1;
                }
                (CLASSES[index], Some(index))
            }
            None => {
                self.oversize += 1;
                self.oversize_bytes += unpooled_capacity as u64;
                (unpooled_capacity, None)
            }
        }
    }

    fn release(&mut self, class: Option<usize>) {
        if let Some(index) = class {
            let class = &mut self.classes[index];
            if class.live > MAX_IDLE {
                class.live -= 1;
            } else {
                class.idle += 1;
            }
        }
    }

    fn write(&mut self, buf: &mut BufModel, data: &[u8]) {
        let required = buf.bytes.len() + data.len();
        if required > buf.capacity {
            let unpooled = required.max(buf.capacity * 2);
            let (capacity, class) = self.take(required, unpooled);
            self.release(buf.class);
            buf.capacity = capacity;
            buf.class = class;
        }
        buf.bytes.extend_from_slice(data);
    }
}

fn check(pool: &BufferPool, model: &Model) -> Result<(), TestCaseError> {
    let stats = pool.stats();
    for (index, class) in stats.classes.iter().enumerate() {
        let expected = model.classes[index];
        prop_assert_eq!(
            (class.hits, class.misses, class.idle, class.live),
            (expected.hits, expected.misses, expected.idle, expected.live),
            "class {}",
            class.size
        );
        prop_assert_eq!(class.bytes_held, expected.idle * class.size);
    }
    prop_assert_eq!(
        (stats.oversize, stats.oversize_bytes),
        (model.oversize, model.oversize_bytes)
    );
    Ok(())
}

fn run(
    operations: &[Operation],
    thread_cache: usize,
    zeroing: Zeroing,
) -> Result<(), TestCaseError> {
    let pool = BufferPool::builder()
        .size_classes(&CLASSES)
        .max_idle_per_class(MAX_IDLE)
        .thread_cache(thread_cache)
        .zeroing(zeroing)
        .build()
        .unwrap();
    let mut model = Model::default();
    let mut held: Vec<(PooledBuf<'_>, BufModel)> = Vec::new();
    let mut frozen: Vec<(Bytes, Vec<u8>, Option<usize>)> = Vec::new();
    let mut counter = 0u8;
    for operation in operations {
        match *operation {
            Operation::Acquire(len) => {
                let buf = pool.acquire(len);
                let (capacity, class) = model.take(len, len);
                prop_assert_eq!((buf.len(), buf.capacity()), (0, capacity));
                held.push((
                    buf,
                    BufModel {
                        bytes: Vec::new(),
                        capacity,
                        class,
                    },
                ));
            }
            Operation::Write { slot, len, how } if !held.is_empty() => {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        counter
                    })
                    .collect();
                let index = slot % held.len();
                let (buf, expected) = &mut held[index];
                match how % 3 {
                    0 => buf.extend_from_slice(&data),
                    1 => buf.write_all(&data).unwrap(),
                    _ => buf.put_slice(&data),
                }
                model.write(expected, &data);
                prop_assert_eq!(&buf[..], &expected.bytes[..]);
                prop_assert_eq!(buf.capacity(), expected.capacity);
            }
            Operation::Truncate { slot, len } if !held.is_empty() => {
                let index = slot % held.len();
                let (buf, expected) = &mut held[index];
                buf.truncate(len);
                expected.bytes.truncate(len);
                prop_assert_eq!(&buf[..], &expected.bytes[..]);
            }
            Operation::Release(slot) if !held.is_empty() => {
                let (buf, expected) = held.swap_remove(slot % held.len());
                prop_assert_eq!(&buf[..], &expected.bytes[..]);
                drop(buf);
                model.release(expected.class);
            }
            Operation::Freeze(slot) if !held.is_empty() => {
                let (buf, expected) = held.swap_remove(slot % held.len());
                let bytes = buf.freeze();
                prop_assert_eq!(&bytes[..], &expected.bytes[..]);
                if expected.bytes.is_empty() {
                    model.release(expected.class); // an empty freeze gives the buffer back at once
                } else {
                    frozen.push((bytes, expected.bytes, expected.class));
                }
            }
            Operation::DropFrozen(slot) if !frozen.is_empty() => {
                let (bytes, contents, class) = frozen.swap_remove(slot % frozen.len());
                prop_assert_eq!(&bytes[..], &contents[..]);
                drop(bytes);
                model.release(class);
            }
            Operation::Trim => {
                let expected: usize = model
                    .classes
                    .iter()
                    .zip(CLASSES)
                    .map(|(class, size)| class.idle * size)
                    .sum();
                prop_assert_eq!(pool.trim(), expected);
                for class in &mut model.classes {
                    class.live -= class.idle;
                    class.idle = 0;
                }
            }
            _ => {}
        }
        check(&pool, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn matches_the_model(
        operations in proptest::collection::vec(operation(), 0..if cfg!(miri) { 20 } else { 120 }),
        thread_cache in prop_oneof![Just(0usize), Just(1), Just(4)],
        never in any::<bool>(),
    ) {
        let zeroing = if never { Zeroing::Never } else { Zeroing::ZeroOnRelease };
        run(&operations, thread_cache, zeroing)?;
    }
}
