//! What the engine talks to: gate commands, and the files this crate writes for others to read.

pub mod files;
pub mod gate;
