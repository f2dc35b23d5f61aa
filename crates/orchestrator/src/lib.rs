//! The orchestrator: runs a mission through four OpenCode agents (Commander, Planner, parallel Workers,
//! Reviewer) on the workspace's crates.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod cli;
pub mod domain;

pub mod monitor;
pub mod review;
pub mod schedule;
pub mod server;
pub mod sessions;
pub mod state;

mod error;
pub mod mission;

pub use cli::{config, demo, doctor, install, logging, progress, shutdown};
pub use domain::{plan, prompts};
pub use error::OrchestratorError;
