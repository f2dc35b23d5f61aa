//! Placeholder: the pools_object benchmarks are being written.
fn main() {}
