//! A typed async client for the [OpenCode](https://opencode.ai) coding agent's HTTP server.
//!
//! * [`Client`]: health, configuration, sessions (create, get, list, children, delete, abort, diff,
//!   summarize), prompts (synchronous and asynchronous, with parts, agent, model, system prompt, a tools
//!   map and an [`OutputFormat`] for structured output), messages with their usage ([`Tokens`], cost),
//!   session status, commands, permission replies, TUI toasts, find and file content. One connection pool,
//!   Basic auth, a timeout per call; [`Client::with_directory`] for the server's instance of another
//!   directory over the same connections.
//! * [`Client::events`]: the server's events as a typed [`Stream`](futures_core::Stream) that says when the
//!   connection drops, reconnects, and says how long it was down. Event types this client does not model
//!   are kept, not errors.
//! * [`Error`]: one error type that says what happened: no connection, a timeout, an HTTP status with the
//!   body, a response that does not decode (with the JSON path), a server that is not OpenCode.
//! * Feature `testkit`: a scripted OpenAI-compatible model and a launcher for a real `opencode serve`, for
//!   tests and demos that run offline.
//!
//! The API is OpenCode 1.18's (the "V1" `/session` routes); unknown fields in responses are ignored, so
//! later servers that add fields keep working.
#![forbid(unsafe_code)]

mod client;
mod error;
mod event;
mod sse;
mod stream;
#[cfg(feature = "testkit")]
pub mod testkit;
mod types;

pub use client::{Client, ClientBuilder, DEFAULT_USERNAME};
pub use error::Error;
pub use event::{Event, EventDecodeError, EventPayload};
pub use sse::{SseDecoder, SseMessage};
pub use stream::{EventStream, Gap, StreamItem};
pub use types::{
    AssistantMessage, CacheTokens, CreateSession, FileContent, FileDiff, Health, Message,
    MessageError, MessageTime, MessageWithParts, ModelRef, OutputFormat, Part, PartInput,
    PermissionReply, PermissionRequest, Prompt, Session, SessionStatus, SessionTime,
    StepFinishPart, TextMatch, TextPart, TextValue, Toast, ToastVariant, Tokens, ToolPart,
    ToolState, UserMessage,
};
