//! What the engine talks to: gate commands, the user's OpenCode config, and the files this crate writes for
//! others to read.

pub mod files;
pub mod gate;
pub mod opencode_json;
