//! Pure code, no I/O and no runtime: the plan and its DAG, the prompts.

pub mod gate;
pub mod mission;
pub mod plan;
pub mod prompts;
pub mod settings;
pub mod task;
