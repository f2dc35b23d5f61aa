//! `pools::BufferPool` beside `Vec::with_capacity`, `BytesMut::with_capacity` and zeropool: each group runs
//! every contender on the same input, with the same thread count.
//!
//! Groups:
//!
//! * `buffer_write_64k/{1,2}_threads`: get a buffer for 64 KiB, write 64 KiB into it in 8 KiB pieces, read
//!   it (`black_box` of the bytes), give it back.
//! * `buffer_mixed/{1,2}_threads`: the same for a fixed pseudo-random sequence of 256 sizes from 1 B to
//!   64 KiB, log-uniform (so every class of 1, 4, 16 and 64 KiB sees traffic), written in pieces of at most
//!   8 KiB. The sequence is the same for every contender.
//!
//! Contenders, all doing the same work (no zeroing, writes appended after the buffer is taken):
//!
//! * `pools_never`: `BufferPool` with `Zeroing::Never` (the like-for-like row), writes through `io::Write`;
//! * `pools_zero_on_release`: the default `Zeroing::ZeroOnRelease` (zeroes the written bytes on release);
//! * `vec`: `Vec::with_capacity(len)` + `io::Write`, freed at the end;
//! * `bytes_mut`: `BytesMut::with_capacity(len)` + `put_slice` (what its `writer()` does), freed at the end;
//! * `zeropool_uninit`: `ZeroPool::alloc_uninit(len)` then the pieces copied into `as_uninit_mut()` and
//!   `assume_init`. zeropool's `alloc` zeroes the requested length first (a `resize`) and its `Buf` appends
//!   past that length, so `alloc_uninit` is the variant with our semantics (no zeroing, room for `len`).
//!
//! With 2 threads every thread runs the loop on one shared pool; the figure is the time per operation on
//! one thread (criterion's `iter_custom`, the mean of the threads' times).

use std::hint::black_box;
use std::io::Write;

use benches::{Combine, thread_counts, time_on_threads};
use bytes::{BufMut, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pools::{BufferPool, Zeroing};
use zeropool::ZeroPool;

/// The size of one write.
const PIECE: usize = 8 * 1024;
/// The size of the `buffer_write_64k` payload.
const LEN_64K: usize = 64 * 1024;
/// How many sizes `buffer_mixed` cycles through per iteration.
const MIXED_COUNT: usize = 256;

/// The bytes written: a fixed pattern, so every contender copies the same data.
fn payload() -> Vec<u8> {
    (0..LEN_64K).map(|i| (i * 31 % 251) as u8).collect()
}

/// The `buffer_mixed` sizes: log-uniform in 1..=64 KiB from a fixed LCG seed.
fn mixed_sizes() -> Vec<usize> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    (0..MIXED_COUNT)
        .map(|_| {
            let bits = next() % 17; // 1 B .. 64 KiB
            let base = 1usize << bits;
            (base + next() % base).min(LEN_64K)
        })
        .collect()
}

fn write_pieces(out: &mut impl Write, data: &[u8]) {
    for piece in data.chunks(PIECE) {
        out.write_all(piece).unwrap();
    }
}

fn with_pool(pool: &BufferPool, data: &[u8]) {
    let mut buf = pool.acquire(data.len());
    write_pieces(&mut buf, data);
    black_box(&buf[..]);
}

fn with_vec(data: &[u8]) {
    let mut buf = Vec::with_capacity(data.len());
    write_pieces(&mut buf, data);
    black_box(&buf[..]);
}

fn with_bytes_mut(data: &[u8]) {
    let mut buf = BytesMut::with_capacity(data.len());
    for piece in data.chunks(PIECE) {
        buf.put_slice(piece);
    }
    black_box(&buf[..]);
}

fn with_zeropool(pool: &ZeroPool, data: &[u8]) {
    let mut buf = pool.alloc_uninit(data.len());
    let spare = buf.as_uninit_mut();
    for (index, piece) in data.chunks(PIECE).enumerate() {
        let destination = &mut spare[index * PIECE..index * PIECE + piece.len()];
        // SAFETY: `destination` has exactly `piece.len()` bytes, and the two slices are distinct allocations.
        unsafe {
            std::ptr::copy_nonoverlapping(
                piece.as_ptr(),
                destination.as_mut_ptr().cast::<u8>(),
                piece.len(),
            );
        }
    }
    // SAFETY: the pieces cover `0..data.len()`, the buffer's whole length.
    let buf = unsafe { buf.assume_init() };
    black_box(&buf[..]);
}

/// One group: every contender runs `workload` (the list of lengths to get and fill per iteration).
fn group(c: &mut Criterion, name: &str, lengths: &[usize]) {
    let data = payload();
    let bytes: usize = lengths.iter().sum();
    let never = BufferPool::builder()
        .zeroing(Zeroing::Never)
        .build()
        .unwrap();
    let zeroing = BufferPool::new();
    let zeropool = ZeroPool::new();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(bytes as u64));
    for threads in thread_counts() {
        let id = |contender: &str| BenchmarkId::new(contender, format!("{threads}_threads"));
        group.bench_function(id("pools_never"), |b| {
            b.iter_custom(|iters| {
                time_on_threads(threads, iters, Combine::Mean, || {
                    for &len in lengths {
                        with_pool(&never, &data[..len]);
                    }
                })
            })
        });
        group.bench_function(id("pools_zero_on_release"), |b| {
            b.iter_custom(|iters| {
                time_on_threads(threads, iters, Combine::Mean, || {
                    for &len in lengths {
                        with_pool(&zeroing, &data[..len]);
                    }
                })
            })
        });
        group.bench_function(id("vec"), |b| {
            b.iter_custom(|iters| {
                time_on_threads(threads, iters, Combine::Mean, || {
                    for &len in lengths {
                        with_vec(&data[..len]);
                    }
                })
            })
        });
        group.bench_function(id("bytes_mut"), |b| {
            b.iter_custom(|iters| {
                time_on_threads(threads, iters, Combine::Mean, || {
                    for &len in lengths {
                        with_bytes_mut(&data[..len]);
                    }
                })
            })
        });
        group.bench_function(id("zeropool_uninit"), |b| {
            b.iter_custom(|iters| {
                time_on_threads(threads, iters, Combine::Mean, || {
                    for &len in lengths {
                        with_zeropool(&zeropool, &data[..len]);
                    }
                })
            })
        });
    }
    group.finish();
}

fn buffer_write_64k(c: &mut Criterion) {
    group(c, "buffer_write_64k", &[LEN_64K]);
}

fn buffer_mixed(c: &mut Criterion) {
    group(c, "buffer_mixed", &mixed_sizes());
}

criterion_group!(benches, buffer_write_64k, buffer_mixed);
criterion_main!(benches);
