//! `pools::ObjectPool` beside `Box::new` and the object pools it competes with: object-pool
//! (`object_pool::Pool`), opool (`opool::Pool`) and lockfree-object-pool (`LinearObjectPool`, the fastest of
//! its four pools in its own benchmarks).
//!
//! Group `object_get_return/{64B,4KiB}/{1_thread,2_threads}`: each thread repeats get, use (write one byte,
//! read it back through `black_box`), return, on one pool shared by the threads. Every pool is made once
//! per benchmark with one object per thread already in it, has no reset hook (lockfree-object-pool always
//! calls one: it gets a no-op), and a capacity of 64. `Box::new` allocates, fills and frees the array each
//! time. With 2 threads both run the same loop behind a barrier and the time is the mean of the threads' own
//! times (criterion's `iter_custom`), so the figure stays "time per get-use-return on one thread".

use std::hint::black_box;

use benches::{Combine, thread_counts, time_on_threads};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// Capacity given to every pool.
const CAPACITY: usize = 64;

/// One pool behind a get-use-return step.
trait Pool<const N: usize>: Sync {
    const NAME: &'static str;
    fn new() -> Self;
    /// Gets an object, writes and reads one byte, returns it.
    fn get_use_return(&self);
}

/// Writes and reads one byte of an object, so the compiler cannot skip the get.
#[inline(always)]
fn touch<const N: usize>(object: &mut [u8; N]) {
    let object = black_box(object);
    object[0] = object[0].wrapping_add(1);
    black_box(object[N - 1]);
}

struct Ours<const N: usize>(pools::ObjectPool<[u8; N]>);

impl<const N: usize> Pool<N> for Ours<N> {
    const NAME: &'static str = "pools";
    fn new() -> Self {
        Self(
            pools::ObjectPool::builder(|| [1u8; N])
                .capacity(CAPACITY)
                .build()
                .expect("valid configuration"),
        )
    }
    #[inline]
    fn get_use_return(&self) {
        let mut object = self.0.get();
        touch(&mut object);
    }
}

struct Boxed;

impl<const N: usize> Pool<N> for Boxed {
    const NAME: &'static str = "Box::new";
    fn new() -> Self {
        Self
    }
    #[inline]
    fn get_use_return(&self) {
        let mut object = Box::new([1u8; N]);
        touch(&mut object);
    }
}

struct ObjectPoolCrate<const N: usize>(object_pool::Pool<[u8; N]>);

impl<const N: usize> Pool<N> for ObjectPoolCrate<N> {
    const NAME: &'static str = "object-pool";
    fn new() -> Self {
        Self(object_pool::Pool::new(CAPACITY, || [1u8; N]))
    }
    #[inline]
    fn get_use_return(&self) {
        let mut object = self.0.pull(|| [1u8; N]);
        touch(&mut object);
    }
}

struct Allocator<const N: usize>;

impl<const N: usize> opool::PoolAllocator<[u8; N]> for Allocator<N> {
    #[inline]
    fn allocate(&self) -> [u8; N] {
        [1u8; N]
    }
}

struct Opool<const N: usize>(opool::Pool<Allocator<N>, [u8; N]>);

impl<const N: usize> Pool<N> for Opool<N> {
    const NAME: &'static str = "opool";
    fn new() -> Self {
        Self(opool::Pool::new(CAPACITY, Allocator))
    }
    #[inline]
    fn get_use_return(&self) {
        let mut object = self.0.get();
        touch(&mut object);
    }
}

struct Linear<const N: usize>(lockfree_object_pool::LinearObjectPool<[u8; N]>);

impl<const N: usize> Pool<N> for Linear<N> {
    const NAME: &'static str = "lockfree-object-pool";
    fn new() -> Self {
        Self(lockfree_object_pool::LinearObjectPool::new(
            || [1u8; N],
            |_| {},
        ))
    }
    #[inline]
    fn get_use_return(&self) {
        let mut object = self.0.pull();
        touch(&mut object);
    }
}

fn bench_one<const N: usize, P: Pool<N>>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    threads: usize,
) {
    let pool = P::new();
    pool.get_use_return();
    group.bench_function(BenchmarkId::from_parameter(P::NAME), |b| {
        b.iter_custom(|iters| {
            time_on_threads(threads, iters, Combine::Mean, || pool.get_use_return())
        });
    });
}

fn bench_size<const N: usize>(c: &mut Criterion, size: &str) {
    for threads in thread_counts() {
        let label = if threads == 1 {
            "1_thread"
        } else {
            "2_threads"
        };
        let mut group = c.benchmark_group(format!("object_get_return/{size}/{label}"));
        if threads > 1 {
            // Each sample spawns threads: fewer, longer samples keep that cost out of the figure.
            group.sample_size(30);
        }
        bench_one::<N, Ours<N>>(&mut group, threads);
        bench_one::<N, Boxed>(&mut group, threads);
        bench_one::<N, ObjectPoolCrate<N>>(&mut group, threads);
        bench_one::<N, Opool<N>>(&mut group, threads);
        bench_one::<N, Linear<N>>(&mut group, threads);
        group.finish();
    }
}

fn object_get_return(c: &mut Criterion) {
    bench_size::<64>(c, "64B");
    bench_size::<4096>(c, "4KiB");
}

criterion_group!(benches, object_get_return);
criterion_main!(benches);
