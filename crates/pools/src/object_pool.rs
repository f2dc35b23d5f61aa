//! Stub: replaced by the object pool implementation.
#![allow(missing_docs, missing_debug_implementations, dead_code, unreachable_pub)]
use std::marker::PhantomData;
pub struct ObjectPool<T>(PhantomData<T>);
pub struct ObjectPoolBuilder<T>(PhantomData<T>);
pub struct ObjectPoolStats;
pub struct Pooled<'a, T>(PhantomData<&'a T>);
