//! Loom models, run by `.ci/loom.sh` with `--cfg loom`.
#![cfg(loom)]

#[path = "loom/breaker.rs"]
mod breaker;
#[path = "loom/limit.rs"]
mod limit;
