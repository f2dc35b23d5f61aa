//! Shared helpers for the benchmark groups live in each bench file; this crate has no library code.
