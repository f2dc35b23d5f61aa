//! The server's data, as the client reads and writes it.
//!
//! Field names follow the server's JSON (`camelCase`, `sessionID`, …) through serde renames; Rust names are
//! snake case. Every struct tolerates fields it does not know (OpenCode adds fields between releases), and
//! the enums of parts, messages and errors keep a variant they do not know as raw JSON instead of failing.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// What `GET /global/health` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Health {
    /// Always `true` when the server answers.
    pub healthy: bool,
    /// The server's version, e.g. `1.18.33`.
    pub version: String,
}

/// A session: one conversation with an agent, possibly the child of another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Session {
    /// `ses_…`.
    pub id: String,
    /// A short human-readable name.
    #[serde(default)]
    pub slug: String,
    /// The project the session belongs to.
    #[serde(rename = "projectID", default)]
    pub project_id: String,
    /// The directory the session works in.
    #[serde(default)]
    pub directory: String,
    /// The parent session, for a child session.
    #[serde(rename = "parentID", default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// The title.
    #[serde(default)]
    pub title: String,
    /// The agent the session was created with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The OpenCode version that created it.
    #[serde(default)]
    pub version: String,
    /// Creation and update times.
    pub time: SessionTime,
}

/// A session's times, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionTime {
    /// When it was created.
    pub created: u64,
    /// When it last changed.
    #[serde(default)]
    pub updated: u64,
}

/// Whether a session is working. Idle sessions are absent from `GET /session/status`: absence is not
/// completion, a session may not have started yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum SessionStatus {
    /// Not working.
    Idle,
    /// Working on a prompt.
    Busy,
    /// Waiting to retry a failed model call.
    Retry {
        /// The attempt number.
        #[serde(default)]
        attempt: u64,
        /// Why.
        #[serde(default)]
        message: String,
        /// When the next attempt is due (ms since the epoch).
        #[serde(default)]
        next: u64,
    },
}

/// A message with its parts, as the message endpoints return them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageWithParts {
    /// The message.
    pub info: Message,
    /// Its parts, in order.
    pub parts: Vec<Part>,
}

impl MessageWithParts {
    /// The text of the message's text parts, joined by newlines.
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|part| match part {
                Part::Text(text) => Some(text.text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A message: the user's or the assistant's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Message {
    /// What was sent to the agent.
    User(UserMessage),
    /// What the agent answered.
    Assistant(AssistantMessage),
}

impl Message {
    /// The message's id (`msg_…`).
    pub fn id(&self) -> &str {
        match self {
            Message::User(message) => &message.id,
            Message::Assistant(message) => &message.id,
        }
    }

    /// The session it belongs to.
    pub fn session_id(&self) -> &str {
        match self {
            Message::User(message) => &message.session_id,
            Message::Assistant(message) => &message.session_id,
        }
    }
}

/// A message sent to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UserMessage {
    /// `msg_…`.
    pub id: String,
    /// The session.
    #[serde(rename = "sessionID")]
    pub session_id: String,
    /// The agent it was sent to.
    #[serde(default)]
    pub agent: String,
}

/// An answer of the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AssistantMessage {
    /// `msg_…`.
    pub id: String,
    /// The session.
    #[serde(rename = "sessionID")]
    pub session_id: String,
    /// The user message it answers.
    #[serde(rename = "parentID", default)]
    pub parent_id: String,
    /// The agent that answered.
    #[serde(default)]
    pub agent: String,
    /// The model that answered.
    #[serde(rename = "modelID", default)]
    pub model_id: String,
    /// Its provider.
    #[serde(rename = "providerID", default)]
    pub provider_id: String,
    /// When it was created and, once done, completed (ms since the epoch).
    pub time: MessageTime,
    /// Why the model stopped (`stop`, `tool-calls`, `length`, …), once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish: Option<String>,
    /// What went wrong, if the answer failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<MessageError>,
    /// What it cost, in the provider's currency.
    #[serde(default)]
    pub cost: f64,
}

impl AssistantMessage {
    /// Whether the answer is over: failed, or completed and not stopped to run tool calls (after which the
    /// agent goes on with a new message). An aborted answer is completed with no finish reason.
    pub fn is_final(&self) -> bool {
        self.error.is_some()
            || (self.time.completed.is_some() && self.finish.as_deref() != Some("tool-calls"))
    }

    /// Whether the answer was cut short: completed without a finish reason or an error (an abort).
    pub fn was_aborted(&self) -> bool {
        self.time.completed.is_some() && self.finish.is_none() && self.error.is_none()
    }
}

/// A message's times (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageTime {
    /// When it was created.
    pub created: u64,
    /// When it was completed, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}

/// Why an answer or a session failed: `{ "name": …, "data": { "message": … } }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageError {
    /// The error's kind: `APIError`, `ProviderAuthError`, `MessageAbortedError`, `UnknownError`, ….
    pub name: String,
    /// Its details (always an object; `message` is usually there).
    #[serde(default)]
    pub data: Value,
}

impl MessageError {
    /// The error's message, if it has one.
    pub fn message(&self) -> Option<&str> {
        self.data.get("message").and_then(Value::as_str)
    }

    /// The HTTP status of a failed model call (`APIError`), if known.
    pub fn status_code(&self) -> Option<u64> {
        self.data.get("statusCode").and_then(Value::as_u64)
    }
}

/// A part of a message. Kinds this client does not model are kept as raw JSON in [`Part::Other`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Part {
    /// Text.
    Text(TextPart),
    /// A tool call and its state.
    Tool(ToolPart),
    /// The end of a model step, with its reason.
    StepFinish(StepFinishPart),
    /// Any other kind of part (`reasoning`, `step-start`, `file`, `patch`, `snapshot`, …), as sent.
    Other(Value),
}

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let decoded = match value.get("type").and_then(Value::as_str) {
            Some("text") => TextPart::deserialize(&value).map(Part::Text).ok(),
            Some("tool") => ToolPart::deserialize(&value).map(Part::Tool).ok(),
            Some("step-finish") => StepFinishPart::deserialize(&value)
                .map(Part::StepFinish)
                .ok(),
            _ => None,
        };
        Ok(decoded.unwrap_or(Part::Other(value)))
    }
}

impl Part {
    /// The part's kind, as the server names it (`text`, `tool`, …).
    pub fn kind(&self) -> &str {
        match self {
            Part::Text(_) => "text",
            Part::Tool(_) => "tool",
            Part::StepFinish(_) => "step-finish",
            Part::Other(value) => value.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }
}

/// A text part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TextPart {
    /// `prt_…`.
    pub id: String,
    /// The message.
    #[serde(rename = "messageID")]
    pub message_id: String,
    /// Always `text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub text: String,
}

/// A tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolPart {
    /// `prt_…`.
    pub id: String,
    /// The message.
    #[serde(rename = "messageID")]
    pub message_id: String,
    /// Always `tool`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The model's id for the call.
    #[serde(rename = "callID")]
    pub call_id: String,
    /// The tool (`write`, `bash`, `edit`, …).
    pub tool: String,
    /// Where the call is.
    pub state: ToolState,
}

/// Where a tool call is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ToolState {
    /// Not started.
    Pending {
        /// The input as known so far.
        #[serde(default)]
        input: Value,
    },
    /// Running.
    Running {
        /// The input.
        #[serde(default)]
        input: Value,
    },
    /// Done.
    Completed {
        /// The input.
        #[serde(default)]
        input: Value,
        /// The tool's output.
        #[serde(default)]
        output: String,
        /// A short title.
        #[serde(default)]
        title: String,
    },
    /// Failed.
    Error {
        /// The input.
        #[serde(default)]
        input: Value,
        /// What went wrong.
        #[serde(default)]
        error: String,
    },
}

/// The end of a model step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepFinishPart {
    /// `prt_…`.
    pub id: String,
    /// The message.
    #[serde(rename = "messageID")]
    pub message_id: String,
    /// Always `step-finish`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Why the step ended (`stop`, `tool-calls`, …).
    #[serde(default)]
    pub reason: String,
}

/// A file changed by a session, from `GET /session/{id}/diff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FileDiff {
    /// The file, relative to the project.
    #[serde(default)]
    pub file: String,
    /// A unified diff.
    #[serde(default)]
    pub patch: String,
    /// Lines added.
    #[serde(default)]
    pub additions: f64,
    /// Lines deleted.
    #[serde(default)]
    pub deletions: f64,
    /// `added`, `deleted` or `modified`.
    #[serde(default)]
    pub status: Option<String>,
}

/// A file's content, from `GET /file/content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FileContent {
    /// `text` or `binary`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The content (base64 for binary files).
    #[serde(default)]
    pub content: String,
}

/// A line matching a text search, from `GET /find`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TextMatch {
    /// The file.
    pub path: TextValue,
    /// The matching line(s).
    pub lines: TextValue,
    /// The line number (1-based).
    #[serde(default)]
    pub line_number: u64,
}

/// A `{ "text": … }` wrapper, as the search endpoint sends strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TextValue {
    /// The text.
    pub text: String,
}

/// A request for permission to run a tool (`permission.asked`), answered with
/// [`Client::reply_permission`](crate::Client::reply_permission).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PermissionRequest {
    /// `per_…`: what to answer.
    pub id: String,
    /// The session asking.
    #[serde(rename = "sessionID")]
    pub session_id: String,
    /// The permission (`bash`, `edit`, `external_directory`, …).
    pub permission: String,
    /// What it is asked for (e.g. the command).
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Details.
    #[serde(default)]
    pub metadata: Value,
}

/// An answer to a permission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PermissionReply {
    /// Allow this once.
    Once,
    /// Allow this and the same again in the session.
    Always,
    /// Refuse.
    Reject,
}

/// A toast to show in the OpenCode TUI (`POST /tui/show-toast`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Toast {
    /// A title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The message.
    pub message: String,
    /// Its look.
    pub variant: ToastVariant,
    /// How long to show it, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
}

impl Toast {
    /// A toast with `message` and `variant`.
    pub fn new(message: impl Into<String>, variant: ToastVariant) -> Self {
        Toast {
            title: None,
            message: message.into(),
            variant,
            duration: None,
        }
    }

    /// With a title.
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }
}

/// A toast's look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ToastVariant {
    /// Information.
    Info,
    /// Something went well.
    Success,
    /// Something to look at.
    Warning,
    /// Something failed.
    Error,
}

/// A model, as `providerID` and `modelID`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelRef {
    /// The provider, e.g. `anthropic`.
    #[serde(rename = "providerID")]
    pub provider_id: String,
    /// The model, e.g. `claude-sonnet-4`.
    #[serde(rename = "modelID")]
    pub model_id: String,
}

impl ModelRef {
    /// `provider/model`, split at the first `/`; `None` without one.
    pub fn parse(name: &str) -> Option<Self> {
        let (provider_id, model_id) = name.split_once('/')?;
        Some(ModelRef {
            provider_id: provider_id.to_string(),
            model_id: model_id.to_string(),
        })
    }
}

/// What to create a session with (`POST /session`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreateSession {
    /// Make it a child of this session.
    #[serde(rename = "parentID", skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Its title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Its agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

impl CreateSession {
    /// A session with no parent, title or agent.
    pub fn new() -> Self {
        Self::default()
    }

    /// A child of `parent`.
    #[must_use]
    pub fn parent(mut self, parent: impl Into<String>) -> Self {
        self.parent_id = Some(parent.into());
        self
    }

    /// With a title.
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// With an agent.
    #[must_use]
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }
}

/// A part of a prompt (the `parts` of `POST /session/{id}/message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum PartInput {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A file, by URL (`file://…` or `data:…`).
    File {
        /// Its MIME type.
        mime: String,
        /// Its URL.
        url: String,
        /// A name to show.
        #[serde(skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
    },
}

/// A prompt: parts and how to run them (`POST /session/{id}/message` and `/prompt_async`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Prompt {
    /// What to send.
    pub parts: Vec<PartInput>,
    /// The agent to run it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The model, instead of the agent's or the session's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
    /// A system prompt added for this message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Tools turned on (`true`) or off (`false`) for this message, by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub tools: BTreeMap<String, bool>,
    /// Store the message without asking the agent.
    #[serde(rename = "noReply", skip_serializing_if = "Option::is_none")]
    pub no_reply: Option<bool>,
}

impl Prompt {
    /// A prompt of one text part.
    pub fn text(text: impl Into<String>) -> Self {
        Prompt {
            parts: vec![PartInput::Text { text: text.into() }],
            ..Prompt::default()
        }
    }

    /// Run by `agent`.
    #[must_use]
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// With `model` instead of the agent's.
    #[must_use]
    pub fn model(mut self, model: ModelRef) -> Self {
        self.model = Some(model);
        self
    }

    /// With a system prompt.
    #[must_use]
    pub fn system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// With tool `name` turned on or off.
    #[must_use]
    pub fn tool(mut self, name: impl Into<String>, enabled: bool) -> Self {
        self.tools.insert(name.into(), enabled);
        self
    }
}
