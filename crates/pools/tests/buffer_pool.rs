//! `BufferPool` and `PooledBuf`: class selection, growth, `io::Write`/`BufMut` against `Vec<u8>`, freeze,
//! zeroing, caps, trim, stats, builder errors, and a multi-threaded stress test that checks no buffer is ever
//! held twice and every count balances.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, mpsc};

use bytes::{Buf, BufMut, Bytes};
use pools::{BufferPool, BuildError, PooledBuf, SizeClassStats, Zeroing};

/// Small classes so the tests stay fast under Miri.
const SMALL: [usize; 3] = [16, 64, 256];

fn small_pool(zeroing: Zeroing, max_idle: usize) -> BufferPool {
    small_pool_with_cache(zeroing, max_idle, 4)
}

fn small_pool_with_cache(zeroing: Zeroing, max_idle: usize, thread_cache: usize) -> BufferPool {
    BufferPool::builder()
        .size_classes(&SMALL)
        .zeroing(zeroing)
        .max_idle_per_class(max_idle)
        .thread_cache(thread_cache)
        .build()
        .unwrap()
}

fn class(pool: &BufferPool, index: usize) -> SizeClassStats {
    pool.stats().classes[index].clone()
}

/// `(hits, misses, idle, live)` of every class.
fn counts(pool: &BufferPool) -> Vec<(u64, u64, usize, usize)> {
    pool.stats()
        .classes
        .iter()
        .map(|class| (class.hits, class.misses, class.idle, class.live))
        .collect()
}

/// The bytes after the contents that a fresh `chunk_mut` exposes, `count` of them.
///
/// # Safety
///
/// Those bytes were written at some point (by an earlier holder of the buffer, or zeroed by the pool).
unsafe fn read_spare(buf: &mut PooledBuf<'_>, count: usize) -> Vec<u8> {
    let chunk = buf.chunk_mut();
    assert!(chunk.len() >= count);
    // SAFETY: the caller guarantees these bytes are initialised; the chunk is valid for `chunk.len()` bytes.
    unsafe { std::slice::from_raw_parts(chunk.as_mut_ptr(), count).to_vec() }
}

#[test]
fn class_selection_at_every_boundary() {
    let pool = BufferPool::new();
    assert_eq!(pool.size_classes(), &[1024, 4096, 16384, 65536]);
    let cases = [
        (0, 1024),
        (1, 1024),
        (1024, 1024),
        (1025, 4096),
        (4096, 4096),
        (4097, 16384),
        (16384, 16384),
        (16385, 65536),
        (65536, 65536),
        (65537, 65537),
        (200_000, 200_000),
    ];
    let mut held = Vec::new();
    for (request, capacity) in cases {
        let buf = pool.acquire(request);
        assert_eq!(buf.len(), 0, "acquire({request})");
        assert!(buf.is_empty());
        assert_eq!(buf.capacity(), capacity, "acquire({request})");
        held.push(buf);
    }
    drop(held);
    let stats = pool.stats();
    let misses: Vec<u64> = stats.classes.iter().map(|class| class.misses).collect();
    assert_eq!(misses, [3, 2, 2, 2]);
    assert_eq!(stats.oversize, 2);
    assert_eq!(stats.oversize_bytes, 65537 + 200_000);
    // Unpooled buffers are freed, not kept.
    assert_eq!(stats.bytes_held, 3 * 1024 + 2 * (4096 + 16384 + 65536));
}

#[test]
fn default_builder_matches_new() {
    let pool = BufferPool::builder().build().unwrap();
    assert_eq!(pool.size_classes(), BufferPool::DEFAULT_SIZE_CLASSES);
    assert_eq!(pool.zeroing(), Zeroing::ZeroOnRelease);
    assert_eq!(
        BufferPool::default().size_classes(),
        BufferPool::new().size_classes()
    );
}

#[test]
fn growth_moves_across_classes_then_unpooled() {
    let pool = small_pool(Zeroing::Never, 4);
    let mut buf = pool.acquire(0);
    let mut model = Vec::new();
    let mut capacities = vec![buf.capacity()];
    for i in 0..600u32 {
        buf.put_u8(i as u8);
        model.push(i as u8);
        if *capacities.last().unwrap() != buf.capacity() {
            capacities.push(buf.capacity());
        }
        assert_eq!(&buf[..], &model[..]);
    }
    // 16 -> 64 -> 256 -> unpooled 512 (Vec-like doubling) -> 1024.
    assert_eq!(capacities, [16, 64, 256, 512, 1024]);
    // Each class buffer went back when the contents moved on.
    assert_eq!(counts(&pool), [(0, 1, 1, 1), (0, 1, 1, 1), (0, 1, 1, 1)]);
    let stats = pool.stats();
    assert_eq!((stats.oversize, stats.oversize_bytes), (2, 512 + 1024));
    drop(buf);
    assert_eq!(pool.stats().bytes_held, 16 + 64 + 256);
}

#[test]
fn growth_jumps_to_the_class_that_fits() {
    let pool = small_pool(Zeroing::Never, 4);
    let mut buf = pool.acquire(1);
    buf.extend_from_slice(b"abc");
    buf.extend_from_slice(&[7; 100]); // 103 bytes: skips the 64-byte class.
    assert_eq!(buf.capacity(), 256);
    assert_eq!(&buf[..3], b"abc");
    assert!(buf[3..].iter().all(|&b| b == 7));
    buf.reserve(1000);
    assert_eq!(buf.capacity(), 1103); // above the largest class: exactly what is needed or twice as much
    assert_eq!(buf.len(), 103);
    assert_eq!(counts(&pool), [(0, 1, 1, 1), (0, 0, 0, 0), (0, 1, 1, 1)]);
}

#[test]
fn reserve_within_capacity_does_nothing() {
    let pool = small_pool(Zeroing::Never, 4);
    let mut buf = pool.acquire(10);
    buf.extend_from_slice(b"0123456789");
    buf.reserve(6);
    assert_eq!(buf.capacity(), 16);
    buf.reserve(7);
    assert_eq!(buf.capacity(), 64);
    assert_eq!(&buf[..], b"0123456789");
}

/// The same writes through `io::Write` and `BufMut` on a `Vec<u8>` and a `PooledBuf` give the same bytes.
#[test]
fn io_write_and_buf_mut_behave_like_vec() {
    fn writes<W: Write + BufMut>(out: &mut W) {
        out.write_all(b"header:").unwrap();
        write!(out, "{}-{:x};", 12345, 0xbeef_u32).unwrap();
        assert_eq!(out.write(b"xyz").unwrap(), 3);
        let parts = [std::io::IoSlice::new(b"ab"), std::io::IoSlice::new(b"cde")];
        assert_eq!(out.write_vectored(&parts).unwrap(), 5);
        out.flush().unwrap();
        out.put_u8(0xff);
        out.put_u16(0x0102);
        out.put_u32(0xdead_beef);
        out.put_u32_le(0xdead_beef);
        out.put_u64(u64::MAX - 1);
        out.put_i64_le(-2);
        out.put_f64(1.5);
        out.put_slice(&[9; 40]);
        out.put_bytes(b'z', 70);
        out.put(Bytes::from_static(b"chained").chain(&b"-buf"[..]));
        out.put_slice(&[1; 300]); // past the largest small class
    }
    let mut expected = Vec::new();
    writes(&mut expected);
    let pool = small_pool(Zeroing::ZeroOnRelease, 4);
    let mut buf = pool.acquire(0);
    writes(&mut buf);
    assert_eq!(&buf[..], &expected[..]);
    assert_eq!(buf.len(), expected.len());
    assert_eq!(buf.remaining_mut(), isize::MAX as usize - buf.len());
}

#[test]
fn chunk_mut_and_advance_mut() {
    let pool = small_pool(Zeroing::Never, 4);
    let mut buf = pool.acquire(16);
    let chunk = buf.chunk_mut();
    assert_eq!(chunk.len(), 16);
    chunk[..4].copy_from_slice(b"abcd");
    // SAFETY: the first 4 bytes of the chunk were just written.
    unsafe { buf.advance_mut(4) };
    assert_eq!(&buf[..], b"abcd");
    buf.extend_from_slice(&[0; 12]);
    // Full: `chunk_mut` grows (like `Vec`) rather than return an empty chunk.
    assert!(buf.chunk_mut().len() > 0);
    assert_eq!(buf.capacity(), 256); // 16 + 64 bytes need the 256-byte class
    assert_eq!(&buf[..4], b"abcd");
}

#[test]
#[should_panic(expected = "advance_mut")]
fn advance_mut_past_the_spare_capacity_panics() {
    let pool = small_pool(Zeroing::Never, 4);
    let mut buf = pool.acquire(16);
    // SAFETY: the call panics before `len` moves; no byte is read.
    unsafe { buf.advance_mut(17) };
}

#[test]
fn deref_mut_clear_truncate() {
    let pool = small_pool(Zeroing::Never, 4);
    let mut buf = pool.acquire(0);
    buf.extend_from_slice(b"hello world");
    buf[0] = b'H';
    buf.as_mut()[6] = b'W';
    assert_eq!(buf.as_ref(), b"Hello World");
    buf.truncate(20); // longer than the contents: nothing happens
    assert_eq!(buf.len(), 11);
    buf.truncate(5);
    assert_eq!(&buf[..], b"Hello");
    buf.clear();
    assert!(buf.is_empty());
    assert_eq!(buf.capacity(), 16);
}

#[test]
fn debug_shows_sizes_not_contents() {
    let pool = small_pool(Zeroing::Never, 4);
    let mut buf = pool.acquire(0);
    buf.extend_from_slice(b"secret-token");
    let text = format!("{buf:?}");
    assert!(
        text.contains("len: 12") && text.contains("capacity: 16"),
        "{text}"
    );
    assert!(!text.contains("secret") && !text.contains("115"), "{text}");
    let text = format!("{pool:?}");
    assert!(text.contains("[16, 64, 256]"), "{text}");
}

#[test]
fn freeze_returns_the_buffer_after_the_last_clone() {
    let pool = small_pool(Zeroing::ZeroOnRelease, 4);
    let mut buf = pool.acquire(40);
    buf.extend_from_slice(&[5; 50]);
    let bytes = buf.freeze();
    assert_eq!(bytes, vec![5u8; 50]);
    let clone = bytes.clone();
    let slice = bytes.slice(10..20);
    drop(bytes);
    drop(clone);
    assert_eq!(
        class(&pool, 1).idle,
        0,
        "a slice still refers to the buffer"
    );
    assert_eq!(slice, vec![5u8; 10]);
    drop(slice);
    assert_eq!(counts(&pool)[1], (0, 1, 1, 1));
    // The next acquire reuses it.
    drop(pool.acquire(40));
    assert_eq!(counts(&pool)[1], (1, 1, 1, 1));
}

#[test]
fn freeze_empty_returns_the_buffer_at_once() {
    let pool = small_pool(Zeroing::Never, 4);
    let bytes = pool.acquire(10).freeze();
    assert!(bytes.is_empty());
    assert_eq!(class(&pool, 0).idle, 1);
}

#[test]
fn frozen_bytes_outlive_the_pool_handle() {
    let pool = small_pool(Zeroing::ZeroOnRelease, 4);
    let mut buf = pool.acquire(300);
    buf.extend_from_slice(&[3; 300]);
    let oversize = buf.freeze();
    let mut buf = pool.acquire(1);
    buf.extend_from_slice(b"kept");
    let pooled = buf.freeze();
    drop(pool); // the `Bytes` keep the shared state alive
    assert_eq!(oversize.len(), 300);
    assert_eq!(pooled, "kept");
    drop((oversize, pooled)); // freed now; Miri's leak check sees nothing left
}

#[test]
fn released_on_another_thread() {
    for thread_cache in [0, 4] {
        released_on_another_thread_with(thread_cache);
    }
}

fn released_on_another_thread_with(thread_cache: usize) {
    let pool = small_pool_with_cache(Zeroing::ZeroOnRelease, 8, thread_cache);
    let mut bufs: Vec<PooledBuf<'_>> = (0..3).map(|_| pool.acquire(60)).collect();
    for (i, buf) in bufs.iter_mut().enumerate() {
        buf.extend_from_slice(&[i as u8; 60]);
    }
    let frozen = {
        let mut buf = pool.acquire(200);
        buf.extend_from_slice(b"frozen");
        buf.freeze()
    };
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for (i, buf) in bufs.into_iter().enumerate() {
                assert!(buf.iter().all(|&b| b == i as u8));
            }
            assert_eq!(frozen, "frozen");
        });
    });
    assert_eq!(counts(&pool), [(0, 0, 0, 0), (0, 3, 3, 3), (0, 1, 1, 1)]);
    let again: Vec<_> = (0..3).map(|_| pool.acquire(60)).collect();
    if thread_cache == 0 {
        // Every released buffer is reusable from this thread.
        assert_eq!(counts(&pool)[1], (3, 3, 0, 3));
    } else {
        // They sit in the finished thread's cache (until a new thread inherits its slot): this thread
        // allocates, and the class now answers for six buffers.
        assert_eq!(counts(&pool)[1], (0, 6, 3, 6));
    }
    drop(again);
}

/// Acquires, writes `written` bytes of 0xAA, drops, and shows what the next holder of that buffer finds.
fn bytes_left_behind(zeroing: Zeroing, written: usize, truncate_to: usize) -> Vec<u8> {
    let pool = small_pool(zeroing, 1);
    let mut buf = pool.acquire(256);
    buf.extend_from_slice(&vec![0xAA; written]);
    buf.truncate(truncate_to);
    buf.extend_from_slice(&[0xBB; 2]);
    drop(buf);
    assert_eq!(
        class(&pool, 2).idle,
        1,
        "the only idle buffer is the one just released"
    );
    let mut buf = pool.acquire(256);
    // SAFETY: the first `written` bytes of this buffer were written by the previous holder.
    unsafe { read_spare(&mut buf, written) }
}

#[test]
fn zero_on_release_clears_every_byte_ever_written() {
    assert_eq!(
        bytes_left_behind(Zeroing::ZeroOnRelease, 200, 200),
        vec![0; 200]
    );
    // Truncated contents were written too: the high-water mark covers them.
    assert_eq!(
        bytes_left_behind(Zeroing::ZeroOnRelease, 200, 10),
        vec![0; 200]
    );
}

#[test]
fn never_leaves_the_bytes() {
    // Proves the test above reads the same buffer: without zeroing the old contents are still there.
    let mut expected = vec![0xAA; 200];
    expected[10..12].copy_from_slice(&[0xBB; 2]);
    assert_eq!(bytes_left_behind(Zeroing::Never, 200, 10), expected);
}

#[test]
fn zero_on_release_clears_the_buffer_left_behind_by_growth() {
    let pool = small_pool(Zeroing::ZeroOnRelease, 1);
    let mut buf = pool.acquire(16);
    buf.extend_from_slice(&[0xAA; 16]);
    buf.extend_from_slice(&[0xBB; 10]); // moves to 64 bytes; the 16-byte buffer goes back
    let mut small = pool.acquire(16);
    // SAFETY: all 16 bytes were written by the previous holder.
    assert_eq!(unsafe { read_spare(&mut small, 16) }, vec![0; 16]);
    drop(small);
    drop(buf);
}

#[test]
fn zero_on_release_clears_frozen_buffers() {
    // No thread caches: the buffer released on the other thread must be the one this thread gets next.
    let pool = small_pool_with_cache(Zeroing::ZeroOnRelease, 1, 0);
    let mut buf = pool.acquire(64);
    buf.extend_from_slice(&[0xCC; 64]);
    let bytes = buf.freeze();
    let moved = std::thread::spawn(move || drop(bytes));
    moved.join().unwrap();
    let mut buf = pool.acquire(64);
    // SAFETY: all 64 bytes were written by the previous holder.
    assert_eq!(unsafe { read_spare(&mut buf, 64) }, vec![0; 64]);
}

#[test]
fn idle_cap_per_class() {
    let pool = small_pool(Zeroing::Never, 2);
    let held: Vec<_> = (0..5).map(|_| pool.acquire(64)).collect();
    assert_eq!(counts(&pool)[1], (0, 5, 0, 5));
    drop(held);
    // Three over the cap were freed on release; two stay.
    assert_eq!(counts(&pool)[1], (0, 5, 2, 2));
    let held: Vec<_> = (0..3).map(|_| pool.acquire(64)).collect();
    assert_eq!(counts(&pool)[1], (2, 6, 0, 3));
    drop(held);
    assert_eq!(counts(&pool)[1], (2, 6, 2, 2));
    assert_eq!(pool.stats().bytes_held, 128);
}

#[test]
fn cap_of_zero_keeps_nothing() {
    let pool = small_pool(Zeroing::ZeroOnRelease, 0);
    for _ in 0..3 {
        let mut buf = pool.acquire(5);
        buf.extend_from_slice(b"12345");
    }
    assert_eq!(counts(&pool)[0], (0, 3, 0, 0));
    assert_eq!(pool.stats().bytes_held, 0);
}

#[test]
fn trim_releases_idle_buffers_only() {
    let pool = small_pool(Zeroing::Never, 8);
    let idle: Vec<_> = (0..3)
        .map(|_| pool.acquire(16))
        .chain((0..2).map(|_| pool.acquire(256)))
        .collect();
    let in_use = pool.acquire(64);
    drop(idle);
    assert_eq!(pool.stats().bytes_held, 3 * 16 + 2 * 256);
    assert_eq!(pool.trim(), 3 * 16 + 2 * 256);
    assert_eq!(pool.stats().bytes_held, 0);
    assert_eq!(counts(&pool), [(0, 3, 0, 0), (0, 1, 0, 1), (0, 2, 0, 0)]);
    assert_eq!(pool.trim(), 0);
    drop(in_use); // comes back after the trim and is kept
    assert_eq!(pool.stats().bytes_held, 64);
}

/// A trim cannot touch another thread's cache; that thread frees it on its next use, and the class's count
/// of the buffers it answers for follows.
#[test]
fn trim_reaches_other_threads_caches_on_their_next_use() {
    let pool = small_pool_with_cache(Zeroing::Never, 8, 4);
    let (to_other, from_main) = mpsc::channel::<()>();
    let (to_main, from_other) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let pool = &pool;
        scope.spawn(move || {
            drop((pool.acquire(16), pool.acquire(16))); // both stay in this thread's cache
            to_main.send(()).unwrap();
            from_main.recv().unwrap();
            drop(pool.acquire(16)); // catches up with the trim first: frees both, then allocates
        });
        from_other.recv().unwrap();
        assert_eq!(pool.trim(), 0);
        assert_eq!(counts(pool)[0], (0, 2, 2, 2));
        to_other.send(()).unwrap();
    });
    assert_eq!(counts(&pool)[0], (0, 3, 1, 1));
    assert_eq!(pool.stats().bytes_held, 16);
}

#[test]
fn stats_are_exact_on_one_thread() {
    let pool = small_pool(Zeroing::Never, 8);
    drop(pool.acquire(1)); // miss
    drop(pool.acquire(16)); // hit
    let a = pool.acquire(17); // miss (64)
    let b = pool.acquire(64); // miss (64)
    drop(a);
    let c = pool.acquire(20); // hit (64)
    drop((b, c));
    drop(pool.acquire(1000)); // oversize
    let stats = pool.stats();
    assert_eq!(counts(&pool), [(1, 1, 1, 1), (1, 2, 2, 2), (0, 0, 0, 0)]);
    assert_eq!((stats.oversize, stats.oversize_bytes), (1, 1000));
    assert_eq!(stats.bytes_held, 16 + 2 * 64);
    assert_eq!(stats.classes[1].bytes_held, 128);
    assert_eq!(stats.classes[2].size, 256);
}

#[test]
fn clones_share_one_pool() {
    let pool = small_pool(Zeroing::Never, 8);
    let other = pool.clone();
    drop(other.acquire(10));
    drop(pool.acquire(10));
    assert_eq!(counts(&pool)[0], (1, 1, 1, 1));
    assert_eq!(counts(&other), counts(&pool));
}

#[test]
fn builder_errors() {
    let build = |sizes: &[usize]| {
        BufferPool::builder()
            .size_classes(sizes)
            .build()
            .unwrap_err()
    };
    assert_eq!(build(&[]), BuildError::NoSizeClasses);
    assert_eq!(build(&[0]), BuildError::ZeroSizeClass { index: 0 });
    assert_eq!(build(&[8, 0, 16]), BuildError::ZeroSizeClass { index: 1 });
    assert_eq!(
        build(&[8, 16, 16, 32]),
        BuildError::DuplicateSizeClass {
            size: 16,
            first: 1,
            second: 2
        }
    );
    assert_eq!(
        build(&[8, 32, 16]),
        BuildError::UnsortedSizeClasses {
            index: 2,
            size: 16,
            previous: 32
        }
    );
    // Messages name what was wrong.
    assert!(build(&[8, 32, 16]).to_string().contains("32"));
    assert!(BufferPool::builder().size_classes(&[7]).build().is_ok());
}

#[test]
fn send_sync_clone() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send_sync<T: Send + Sync>() {}
    send_sync_clone::<BufferPool>();
    send_sync::<PooledBuf<'static>>();
    send_sync::<pools::BufferPoolStats>();
}

/// Threads acquire buffers of assorted sizes, fill them with their own tag, pass some to another thread
/// (plain and frozen), and check the tag before each release: a buffer handed to two holders at once would
/// show another thread's tag. At the end every count balances.
#[test]
fn stress_tagged_buffers() {
    const THREADS: usize = 4;
    let rounds: u64 = if cfg!(miri) { 60 } else { 20_000 };
    let pool = small_pool(Zeroing::ZeroOnRelease, 3);
    let acquires: [AtomicU64; 3] = Default::default();
    let start = Barrier::new(THREADS);
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<(u8, Bytes)>()).unzip();
    std::thread::scope(|scope| {
        for (id, receiver) in receivers.into_iter().enumerate() {
            let next = senders[(id + 1) % THREADS].clone();
            let (pool, acquires, start) = (&pool, &acquires, &start);
            scope.spawn(move || {
                let tag = id as u8 + 1;
                let mut seed = id as u64 * 7919 + 1;
                let mut held: Vec<PooledBuf<'_>> = Vec::new();
                start.wait();
                for round in 0..rounds {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let len = (seed >> 33) as usize % 300;
                    let mut buf = pool.acquire(len);
                    if let Some(index) = SMALL.iter().position(|&size| len <= size) {
                        acquires[index].fetch_add(1, Ordering::Relaxed);
                    }
                    buf.put_bytes(tag, len);
                    held.push(buf);
                    if held.len() > 3 || round % 5 == 0 {
                        let buf = held.remove((seed >> 40) as usize % held.len());
                        assert!(buf.iter().all(|&b| b == tag), "a buffer was shared");
                        if round % 3 == 0 {
                            // The receiver may have finished: then the `Bytes` come back in the error and
                            // drop here, which releases the buffer all the same.
                            let _ = next.send((tag, buf.freeze()));
                        }
                    }
                    while let Ok((from, bytes)) = receiver.try_recv() {
                        assert!(
                            bytes.iter().all(|&b| b == from),
                            "a frozen buffer was shared"
                        );
                    }
                }
                for buf in held {
                    assert!(buf.iter().all(|&b| b == tag), "a buffer was shared");
                }
            });
        }
        drop(senders);
    });
    let stats = pool.stats();
    for (index, class) in stats.classes.iter().enumerate() {
        assert_eq!(
            class.hits + class.misses,
            acquires[index].load(Ordering::Relaxed),
            "{class:?}"
        );
        assert!(class.idle <= 3, "over the cap: {class:?}");
        assert_eq!(class.live, class.idle, "all returned: {class:?}");
    }
}
