//! Differential fuzzing of `BufferPool`/`PooledBuf` against `Vec<u8>` models.
//!
//! A pool with small classes (chosen by the input: 1 to 4 classes of 1..=64 bytes each step) runs a
//! sequence of operations on up to 8 held buffers, each mirrored by a `Vec<u8>`. After every step the
//! contents of the touched buffer equal its model, the capacity is what the pool promises (the class that
//! fits, or unpooled and at least the length), and the class counters obey the cap: `idle <= live`,
//! `idle <= max_idle`, and once everything is released and every frozen `Bytes` dropped, `live == idle`.
//! Frozen buffers must keep their bytes until their last clone drops.

#![no_main]

use std::io::Write;

use arbitrary::Arbitrary;
use bytes::{BufMut, Bytes};
use libfuzzer_sys::fuzz_target;
use pools::{BufferPool, PooledBuf, Zeroing};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Class sizes are built from these steps (each 1..=64 bytes larger than the last); 1 to 4 classes.
    steps: Vec<u8>,
    max_idle: u8,
    thread_cache: u8,
    zero_on_release: bool,
    operations: Vec<Operation>,
}

#[derive(Arbitrary, Debug)]
enum Operation {
    Acquire(u16),
    ExtendFromSlice {
        slot: u8,
        len: u16,
        byte: u8,
    },
    IoWrite {
        slot: u8,
        len: u16,
        byte: u8,
    },
    PutU32 {
        slot: u8,
        value: u32,
    },
    PutBytes {
        slot: u8,
        len: u16,
        byte: u8,
    },
    /// Writes into `chunk_mut` and commits part of it with `advance_mut`.
    ChunkMut {
        slot: u8,
        len: u16,
        byte: u8,
    },
    Reserve {
        slot: u8,
        additional: u16,
    },
    Truncate {
        slot: u8,
        len: u16,
    },
    Clear(u8),
    SetByte {
        slot: u8,
        index: u16,
        byte: u8,
    },
    Release(u8),
    Freeze(u8),
    CloneFrozen(u8),
    DropFrozen(u8),
    Trim,
}

fuzz_target!(|input: Input| {
    let mut sizes = Vec::new();
    let mut size = 0usize;
    for step in input.steps.iter().take(4) {
        size += usize::from(step % 64) + 1;
        sizes.push(size);
    }
    if sizes.is_empty() {
        sizes.push(16);
    }
    let largest = *sizes.last().unwrap();
    let max_idle = usize::from(input.max_idle % 4);
    let pool = BufferPool::builder()
        .size_classes(&sizes)
        .max_idle_per_class(max_idle)
        .thread_cache(usize::from(input.thread_cache % 4))
        .zeroing(if input.zero_on_release {
            Zeroing::ZeroOnRelease
        } else {
            Zeroing::Never
        })
        .build()
        .expect("ascending, distinct, non-zero sizes");
    let class_for = |len: usize| sizes.iter().copied().find(|&size| len <= size);

    let mut held: Vec<(PooledBuf<'_>, Vec<u8>)> = Vec::new();
    let mut frozen: Vec<(Bytes, Vec<u8>)> = Vec::new();
    for operation in input.operations.iter().take(256) {
        let pick = |slot: u8, len: usize| usize::from(slot) % len.max(1);
        match *operation {
            Operation::Acquire(len) if held.len() < 8 => {
                let len = usize::from(len % 512);
                let buf = pool.acquire(len);
                assert_eq!(buf.len(), 0);
                assert_eq!(buf.capacity(), class_for(len).unwrap_or(len));
                held.push((buf, Vec::new()));
            }
            Operation::ExtendFromSlice { slot, len, byte } if !held.is_empty() => {
                let index = pick(slot, held.len());
                let (buf, model) = &mut held[index];
                let data = vec![byte; usize::from(len % 300)];
                buf.extend_from_slice(&data);
                model.extend_from_slice(&data);
            }
            Operation::IoWrite { slot, len, byte } if !held.is_empty() => {
                let index = pick(slot, held.len());
                let (buf, model) = &mut held[index];
                let data = vec![byte; usize::from(len % 300)];
                assert_eq!(buf.write(&data).unwrap(), data.len());
                model.write_all(&data).unwrap();
            }
            Operation::PutU32 { slot, value } if !held.is_empty() => {
                let index = pick(slot, held.len());
                let (buf, model) = &mut held[index];
                buf.put_u32(value);
                model.put_u32(value);
            }
            Operation::PutBytes { slot, len, byte } if !held.is_empty() => {
                let index = pick(slot, held.len());
                let (buf, model) = &mut held[index];
                buf.put_bytes(byte, usize::from(len % 300));
                model.put_bytes(byte, usize::from(len % 300));
            }
            Operation::ChunkMut { slot, len, byte } if !held.is_empty() => {
                let index = pick(slot, held.len());
                let (buf, model) = &mut held[index];
                let chunk = buf.chunk_mut();
                assert!(chunk.len() > 0);
                let count = usize::from(len) % (chunk.len() + 1);
                for index in 0..count {
                    chunk.write_byte(index, byte);
                }
                // SAFETY: the first `count` bytes of the chunk were just written.
                unsafe { buf.advance_mut(count) };
                model.extend(std::iter::repeat_n(byte, count));
            }
            Operation::Reserve { slot, additional } if !held.is_empty() => {
                let index = pick(slot, held.len());
                let (buf, model) = &mut held[index];
                let additional = usize::from(additional % 600);
                buf.reserve(additional);
                assert!(buf.capacity() - buf.len() >= additional);
                model.reserve(additional);
            }
            Operation::Truncate { slot, len } if !held.is_empty() => {
                let index = pick(slot, held.len());
                let (buf, model) = &mut held[index];
                buf.truncate(usize::from(len));
                model.truncate(usize::from(len));
            }
            Operation::Clear(slot) if !held.is_empty() => {
                let index = pick(slot, held.len());
                let (buf, model) = &mut held[index];
                buf.clear();
                model.clear();
            }
            Operation::SetByte {
                slot,
                index: position,
                byte,
            } if !held.is_empty() => {
                let index = pick(slot, held.len());
                let (buf, model) = &mut held[index];
                if !model.is_empty() {
                    let position = usize::from(position) % model.len();
                    buf[position] = byte;
                    model[position] = byte;
                }
            }
            Operation::Release(slot) if !held.is_empty() => {
                let (buf, model) = held.swap_remove(pick(slot, held.len()));
                assert_eq!(&buf[..], &model[..]);
            }
            Operation::Freeze(slot) if !held.is_empty() => {
                let (buf, model) = held.swap_remove(pick(slot, held.len()));
                let bytes = buf.freeze();
                assert_eq!(&bytes[..], &model[..]);
                frozen.push((bytes, model));
            }
            Operation::CloneFrozen(slot) if !frozen.is_empty() && frozen.len() < 16 => {
                let (bytes, model) = &frozen[pick(slot, frozen.len())];
                let copy = (bytes.clone(), model.clone());
                frozen.push(copy);
            }
            Operation::DropFrozen(slot) if !frozen.is_empty() => {
                let (bytes, model) = frozen.swap_remove(pick(slot, frozen.len()));
                assert_eq!(&bytes[..], &model[..]);
            }
            Operation::Trim => {
                let held_before = pool.stats().bytes_held;
                assert_eq!(pool.trim(), held_before);
                assert_eq!(pool.stats().bytes_held, 0);
            }
            _ => {}
        }
        for (buf, model) in &held {
            assert_eq!(&buf[..], &model[..]);
            assert!(buf.capacity() >= buf.len());
            if buf.capacity() > largest {
                assert!(class_for(buf.capacity()).is_none());
            } else {
                assert!(sizes.contains(&buf.capacity()));
            }
        }
        for (bytes, model) in &frozen {
            assert_eq!(&bytes[..], &model[..]);
        }
        for class in pool.stats().classes {
            assert!(
                class.idle <= class.live && class.idle <= max_idle,
                "{class:?}"
            );
            assert_eq!(class.bytes_held, class.idle * class.size);
        }
    }
    drop(held);
    drop(frozen);
    for class in pool.stats().classes {
        assert_eq!(class.live, class.idle, "{class:?}");
    }
});
