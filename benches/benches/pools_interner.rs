//! Placeholder: the pools_interner benchmarks are being written.
fn main() {}
