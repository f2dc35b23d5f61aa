//! The orchestrator: runs a mission through four OpenCode agents (Commander, Planner, parallel Workers,
//! Reviewer) on the workspace's crates.
//!
//! Four layers, imports pointing down only (docs/architecture.md walks a mission through them):
//!
//! - [`cli`]: the command line: options and configuration files into one `Settings`, the progress view,
//!   signals, exit statuses; it wires the adapters into the engine.
//! - [`engine`]: the mission driver and its stages, on ports it owns (`engine::ports`).
//! - [`adapters`]: OpenCode, the journal, the gate's commands, files: what the engine talks to.
//! - [`domain`]: pure code: the plan and its DAG, the task lifecycle as events, the prompts.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod cli;
pub mod domain;
pub mod engine;
