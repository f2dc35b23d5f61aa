//! Placeholder: the pools_buffer benchmarks are being written.
fn main() {}
