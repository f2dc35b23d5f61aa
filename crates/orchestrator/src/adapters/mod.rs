//! What the engine talks to: gate commands.

pub mod gate;
