//! Pure code, no I/O and no runtime: the plan and its DAG, the task lifecycle and the mission view as
//! events, the agents' vocabulary, the gate's results, the settings, the prompt text, positions in a text,
//! and the vocabulary of isolated work in git worktrees.

pub mod agent;
pub mod gate;
pub mod mission;
pub mod plan;
pub mod plan_json;
pub mod position;
pub mod prompts;
pub mod settings;
pub mod task;
pub mod usage;
pub mod workspace;
