//! Placeholder: the object_pool fuzz target is being written.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { let _ = data; });
