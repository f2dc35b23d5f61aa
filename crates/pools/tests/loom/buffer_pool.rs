//! Loom models: written with the buffer_pool implementation.
