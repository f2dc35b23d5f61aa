//! Offline test support (feature `testkit`): a scripted model and a real OpenCode server launcher.
//!
//! * [`ScriptedModel`]: an OpenAI-compatible `/v1/chat/completions` server on 127.0.0.1 that streams
//!   scripted turns (text, tool calls, structured output, with the token usage they report) chosen by
//!   rules over each request, logs every request, and injects faults (HTTP errors, delays, cut streams,
//!   streams that never end).
//! * [`OpencodeServer`]: finds `opencode` (`$OPENCODE_BIN`, `PATH`, or the pinned `opencode-ai` npm package,
//!   installed into a cache directory when missing), writes an isolated configuration pointing at a scripted
//!   model (with a price, if given), starts `opencode serve` on 127.0.0.1, waits for its health check, and kills its process group when
//!   dropped (also when a test panics).

mod model;
mod server;

pub use model::*;
pub use server::*;
