//! Pure code, no I/O and no runtime: the plan and its DAG, the prompts, positions in a text.

pub mod gate;
pub mod mission;
pub mod plan;
pub mod position;
pub mod prompts;
pub mod settings;
pub mod task;
