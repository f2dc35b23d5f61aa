//! Loom models: written with the interner implementation.
