//! The orchestrator: runs a mission through four OpenCode agents (Commander, Planner, parallel Workers,
//! Reviewer) on the workspace's crates. A mission flows through the stage modules in the order they are
//! declared here: [`server`], [`prompts`], [`plan`], [`schedule`], [`sessions`], [`monitor`], [`review`],
//! [`state`]; [`mission`] drives them.
#![forbid(unsafe_code)]

pub mod monitor;
pub mod plan;
pub mod prompts;
pub mod review;
pub mod schedule;
pub mod server;
pub mod sessions;
pub mod state;

pub mod config;
pub mod demo;
pub mod doctor;
mod error;
pub mod install;
pub mod logging;
pub mod mission;
pub mod progress;
pub mod shutdown;

pub use error::OrchestratorError;
