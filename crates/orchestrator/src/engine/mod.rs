//! The mission driver and its stages: [`schedule`] (ws-deque slots), [`monitor`] (when a turn is over),
//! [`turns`] (the one path of every turn), [`review`] (gate, then Reviewer), on the ports of [`ports`]; the
//! journal of events is written through [`record`]. Nothing here does I/O of its own: the command line
//! wires the adapters in.

pub mod mission;
pub mod monitor;
pub mod ports;
pub mod record;
pub mod review;
pub mod schedule;
pub mod sessions;
pub mod turns;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use mission::{Mission, MissionError, MissionReport, Ports, StopHandle};
