//! Loom models: written with the object_pool implementation.
