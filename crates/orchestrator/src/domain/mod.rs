//! Pure code, no I/O and no runtime: the plan and its DAG, the prompts.

pub mod plan;
pub mod prompts;
