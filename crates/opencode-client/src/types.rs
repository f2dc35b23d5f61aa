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
// Most messages of a session are the assistant's, so boxing that variant would cost an allocation for most
// messages to save space on the few user ones (and would change the variant's public type).
#[allow(clippy::large_enum_variant)]
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
    /// What it cost, in the provider's currency: OpenCode computes it from the tokens and the model's price
    /// in its configuration (`cost` per million tokens), so it is 0 for a model without a price.
    #[serde(default)]
    pub cost: f64,
    /// The tokens the answer used, as the provider reported them (all zero until the model's step ends, and
    /// in bodies of servers that do not send them).
    #[serde(default)]
    pub tokens: Tokens,
    /// The structured output, when the prompt asked for one with [`OutputFormat::JsonSchema`]: the JSON the
    /// model gave, which OpenCode checked against the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured: Option<Value>,
}

impl AssistantMessage {
    /// Whether the answer is over: failed, or completed and not stopped to run tool calls (after which the
    /// agent goes on with a new message). A completed answer that holds the structured output is over too,
    /// although its finish reason is `tool-calls` (the model gave it by calling a tool; see
    /// [`OutputFormat`]). An aborted answer is completed with no finish reason.
    pub fn is_final(&self) -> bool {
        self.error.is_some()
            || (self.time.completed.is_some()
                && (self.finish.as_deref() != Some("tool-calls") || self.structured.is_some()))
    }

    /// Whether the answer was cut short by an abort: a [`MessageError::is_aborted`] error (what OpenCode
    /// 1.18.33 records when the session is aborted while the model streams or a tool runs), or completed
    /// without a finish reason or an error (an abort while OpenCode waited to retry a failed model call).
    pub fn was_aborted(&self) -> bool {
        self.error.as_ref().is_some_and(MessageError::is_aborted)
            || (self.time.completed.is_some() && self.finish.is_none() && self.error.is_none())
    }

    /// Whether the model stopped because it reached its output limit: finish reason `length`, or a
    /// [`MessageError::is_output_length`] error. The answer is incomplete; asking again for less (or with a
    /// larger `limit.output` for the model) may help.
    ///
    /// ```
    /// # use opencode_client::AssistantMessage;
    /// let answer: AssistantMessage = serde_json::from_value(serde_json::json!({
    ///     "id": "msg_1", "sessionID": "ses_1", "time": {"created": 1, "completed": 2}, "finish": "length"
    /// })).unwrap();
    /// assert!(answer.was_cut_off());
    /// ```
    pub fn was_cut_off(&self) -> bool {
        self.finish.as_deref() == Some("length")
            || self
                .error
                .as_ref()
                .is_some_and(MessageError::is_output_length)
    }
}

/// The tokens an answer used (`AssistantMessage::tokens`), as OpenCode counts them from the provider's
/// report.
///
/// Counts are whole numbers; the server sends them as JSON numbers, and `12.0` reads as 12. They add up with
/// `+=`, to sum a session's or a task's usage.
///
/// ```
/// use opencode_client::Tokens;
///
/// let turn: Tokens = serde_json::from_str(
///     r#"{"input": 1200, "output": 80.0, "reasoning": 0, "cache": {"read": 300, "write": 0}}"#,
/// ).unwrap();
/// let mut task = Tokens::default();
/// task += turn;
/// task += turn;
/// assert_eq!(task.output, 160);
/// assert_eq!(task.sum(), 2 * (1200 + 80 + 300));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tokens {
    /// Prompt tokens read without the cache.
    #[serde(default, deserialize_with = "whole_number")]
    pub input: u64,
    /// Tokens generated, reasoning excluded.
    #[serde(default, deserialize_with = "whole_number")]
    pub output: u64,
    /// Reasoning ("thinking") tokens generated.
    #[serde(default, deserialize_with = "whole_number")]
    pub reasoning: u64,
    /// Prompt tokens read from and written to the provider's cache.
    #[serde(default)]
    pub cache: CacheTokens,
    /// The total, when the server states one (not every version does; [`sum`](Tokens::sum) adds the
    /// parts).
    #[serde(
        default,
        deserialize_with = "optional_whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub total: Option<u64>,
}

impl Tokens {
    /// Every token counted: input, output, reasoning, cache read and cache write.
    pub fn sum(&self) -> u64 {
        self.input
            .saturating_add(self.output)
            .saturating_add(self.reasoning)
            .saturating_add(self.cache.read)
            .saturating_add(self.cache.write)
    }
}

impl std::ops::AddAssign for Tokens {
    /// Adds every count; the totals add when both are known, else the sum has none.
    fn add_assign(&mut self, other: Tokens) {
        self.input = self.input.saturating_add(other.input);
        self.output = self.output.saturating_add(other.output);
        self.reasoning = self.reasoning.saturating_add(other.reasoning);
        self.cache.read = self.cache.read.saturating_add(other.cache.read);
        self.cache.write = self.cache.write.saturating_add(other.cache.write);
        self.total = self
            .total
            .zip(other.total)
            .map(|(a, b)| a.saturating_add(b));
    }
}

/// Prompt tokens served from, and stored into, the provider's prompt cache (`Tokens::cache`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CacheTokens {
    /// Tokens read from the cache.
    #[serde(default, deserialize_with = "whole_number")]
    pub read: u64,
    /// Tokens written to the cache.
    #[serde(default, deserialize_with = "whole_number")]
    pub write: u64,
}

/// A count sent as a JSON number: an integer, or a float with no fractional part (OpenCode's schema types
/// token counts as `number`).
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct WholeNumber;

    impl serde::de::Visitor<'_> for WholeNumber {
        type Value = u64;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a whole, non-negative number")
        }

        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }

        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value).map_err(|_| E::custom(format!("a negative count: {value}")))
        }

        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<u64, E> {
            // 2^64 as a float: every whole float below it fits in a u64.
            const LIMIT: f64 = 18_446_744_073_709_551_616.0;
            if value.fract() == 0.0 && (0.0..LIMIT).contains(&value) {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(value as u64)
            } else {
                Err(E::custom(format!(
                    "not a whole, non-negative count: {value}"
                )))
            }
        }
    }

    deserializer.deserialize_any(WholeNumber)
}

/// [`whole_number`], or `null`.
fn optional_whole_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Count(#[serde(deserialize_with = "whole_number")] u64);

    Ok(Option::<Count>::deserialize(deserializer)?.map(|Count(count)| count))
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

    /// Whether the answer was stopped by an abort (`MessageAbortedError`): what a message gets when its
    /// session is aborted while the model streams or a tool runs.
    ///
    /// ```
    /// # use opencode_client::MessageError;
    /// let error: MessageError = serde_json::from_str(
    ///     r#"{"name": "MessageAbortedError", "data": {"message": "The operation was aborted."}}"#,
    /// ).unwrap();
    /// assert!(error.is_aborted());
    /// assert!(!error.is_output_length());
    /// ```
    pub fn is_aborted(&self) -> bool {
        self.name == "MessageAbortedError"
    }

    /// Whether the model stopped at its output limit (`MessageOutputLengthError`).
    pub fn is_output_length(&self) -> bool {
        self.name == "MessageOutputLengthError"
    }

    /// Whether the model did not give the structured output a prompt asked for (`StructuredOutputError`,
    /// see [`OutputFormat`]).
    pub fn is_structured_output(&self) -> bool {
        self.name == "StructuredOutputError"
    }

    /// Whether the model call failed (`APIError`: an HTTP error of the provider, with
    /// [`status_code`](Self::status_code)).
    pub fn is_api(&self) -> bool {
        self.name == "APIError"
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
    /// The form of the answer: text (the default) or JSON following a schema. A text format is not sent:
    /// it is what the server does without one, and OpenCode 1.18.33 cannot list a session's messages once a
    /// user message stored a format (see [`OutputFormat`]).
    #[serde(default, skip_serializing_if = "is_text_or_absent")]
    pub format: Option<OutputFormat>,
}

/// Whether a prompt's format need not be sent: none, or text (the server's default).
fn is_text_or_absent(format: &Option<OutputFormat>) -> bool {
    matches!(format, None | Some(OutputFormat::Text))
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

    /// With the answer in `format`, such as JSON following a schema ([`OutputFormat::json_schema`]).
    ///
    /// ```
    /// use opencode_client::{OutputFormat, Prompt};
    /// use serde_json::json;
    ///
    /// let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]});
    /// let prompt = Prompt::text("Is the build green?").format(OutputFormat::json_schema(schema));
    /// assert_eq!(serde_json::to_value(&prompt).unwrap()["format"]["type"], "json_schema");
    /// ```
    #[must_use]
    pub fn format(mut self, format: OutputFormat) -> Self {
        self.format = Some(format);
        self
    }
}

/// The form a prompt's answer takes (`format` of `POST /session/{id}/message`, set with
/// [`Prompt::format`]): text, or JSON that follows a JSON schema, which OpenCode puts in
/// [`AssistantMessage::structured`].
///
/// # How OpenCode 1.18.33 does it
///
/// Measured against `opencode serve` with an `@ai-sdk/openai-compatible` provider (the testkit's scripted
/// model):
///
/// * **The request.** OpenCode adds a tool named `StructuredOutput` to the model's tools, whose
///   `parameters` are the schema; sets `tool_choice: "required"`; and ends the system prompt with an
///   instruction to give the final answer by calling that tool, not as text. There is no `response_format`.
/// * **The answer it expects.** A call of `StructuredOutput` whose arguments are the JSON. OpenCode ends the
///   turn there (no further model call): the assistant message is completed with finish reason
///   `tool-calls`, holds a completed `StructuredOutput` tool part, and its `structured` is the arguments.
///   The model may call other tools first; OpenCode runs them and calls it again as usual. OpenCode does
///   **not** check the arguments against the schema: what the model sent is what `structured` holds.
/// * **A text answer** (the model ends with `stop` without calling the tool) ends the turn at once with an
///   error on the assistant message: `StructuredOutputError` with `{"message": "Model did not produce
///   structured output", "retries": 0}` ([`MessageError::is_structured_output`]), the text in its text
///   part, and no `structured`. A synchronous [`Client::prompt`](crate::Client::prompt) still succeeds: it
///   returns that message. The model is **not** asked again: `retryCount` is stored but not used.
/// * **Listing the session breaks.** OpenCode stores the format on the user message and then fails to
///   encode it: `GET /session/{id}/message` ([`Client::messages`](crate::Client::messages)), and the user
///   message's own `GET`, answer **HTTP 400** (`BadRequest`, "Expected OutputFormatJsonSchema, got …
///   at \[0\].info.format") for that session from then on. The answer itself still reads through the
///   synchronous prompt's result, [`Client::message`](crate::Client::message), or
///   [`Client::recent_messages`](crate::Client::recent_messages) with a limit that stays below the user
///   message. So run a structured prompt in a session of its own. A `{"type": "text"}` format does the
///   same damage, which is why [`Prompt`] never sends [`OutputFormat::Text`].
///
/// ```
/// use opencode_client::{OutputFormat, Prompt};
/// use serde_json::json;
///
/// let plan = json!({
///     "type": "object",
///     "properties": {"tasks": {"type": "array", "items": {"type": "string"}}},
///     "required": ["tasks"],
/// });
/// let prompt = Prompt::text("Plan the work").format(OutputFormat::json_schema(plan));
/// assert_eq!(serde_json::to_value(&prompt).unwrap()["format"]["schema"]["required"][0], "tasks");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OutputFormat {
    /// A text answer (what a prompt without a format gets).
    Text,
    /// JSON following `schema`.
    JsonSchema {
        /// The JSON schema the answer must follow (an object schema).
        schema: Value,
        /// How many times OpenCode should ask the model again when it does not give the structured output.
        /// OpenCode 1.18.33 stores it (2 when absent) but does not use it: a text answer fails at once.
        #[serde(
            rename = "retryCount",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        retry_count: Option<u32>,
    },
}

impl OutputFormat {
    /// A text answer.
    pub fn text() -> Self {
        OutputFormat::Text
    }

    /// JSON following `schema` (an object schema), without a `retryCount`.
    pub fn json_schema(schema: Value) -> Self {
        OutputFormat::JsonSchema {
            schema,
            retry_count: None,
        }
    }

    /// With `retries` as the JSON schema format's `retryCount` (a text format is returned as it is). OpenCode
    /// 1.18.33 does not use it yet (see above).
    #[must_use]
    pub fn retries(self, retries: u32) -> Self {
        match self {
            OutputFormat::JsonSchema { schema, .. } => OutputFormat::JsonSchema {
                schema,
                retry_count: Some(retries),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(extra: Value) -> AssistantMessage {
        let mut body =
            json!({"id": "msg_1", "sessionID": "ses_1", "time": {"created": 1, "completed": 2}});
        merge_fields(&mut body, extra);
        serde_json::from_value(body).unwrap()
    }

    fn merge_fields(base: &mut Value, extra: Value) {
        if let (Value::Object(base), Value::Object(extra)) = (base, extra) {
            base.extend(extra);
        }
    }

    #[test]
    fn tokens_read_integers_and_integral_floats_and_default_when_absent() {
        let tokens = answer(json!({"tokens": {
            "input": 1200, "output": 80.0, "reasoning": 3, "cache": {"read": 1e3, "write": 0}, "total": 2283.0
        }}))
        .tokens;
        assert_eq!(
            (tokens.input, tokens.output, tokens.reasoning),
            (1200, 80, 3)
        );
        assert_eq!((tokens.cache.read, tokens.cache.write), (1000, 0));
        assert_eq!(tokens.total, Some(2283));
        assert_eq!(tokens.sum(), 2283);

        let old = answer(json!({}));
        assert_eq!(old.tokens, Tokens::default());
        assert_eq!(old.structured, None);
        let partial = answer(json!({"tokens": {"input": 5, "total": null}})).tokens;
        assert_eq!((partial.input, partial.output, partial.total), (5, 0, None));
    }

    #[test]
    fn tokens_refuse_fractions_and_negative_counts() {
        for bad in [json!(1.5), json!(-1), json!(-2.0), json!("12"), json!(1e30)] {
            let body = json!({"input": bad, "output": 0, "reasoning": 0, "cache": {"read": 0, "write": 0}});
            assert!(
                serde_json::from_value::<Tokens>(body).is_err(),
                "{bad} is not a count"
            );
        }
    }

    #[test]
    fn tokens_add_up_and_round_trip() {
        let turn: Tokens = serde_json::from_value(json!({
            "input": 10, "output": 2, "reasoning": 1, "cache": {"read": 4, "write": 3}, "total": 20
        }))
        .unwrap();
        let mut sum = turn;
        sum += turn;
        assert_eq!(
            (
                sum.input,
                sum.output,
                sum.reasoning,
                sum.cache.read,
                sum.cache.write,
                sum.total
            ),
            (20, 4, 2, 8, 6, Some(40))
        );
        sum += Tokens::default();
        assert_eq!(sum.total, None, "an unknown total makes the sum's unknown");
        let json = serde_json::to_value(turn).unwrap();
        assert_eq!(serde_json::from_value::<Tokens>(json).unwrap(), turn);
    }

    #[test]
    fn errors_and_endings_are_told_apart() {
        let aborted = answer(
            json!({"error": {"name": "MessageAbortedError", "data": {"message": "Aborted"}}}),
        );
        assert!(aborted.was_aborted() && aborted.is_final() && !aborted.was_cut_off());
        let length = answer(json!({"error": {"name": "MessageOutputLengthError", "data": {}}}));
        assert!(length.was_cut_off() && !length.was_aborted());
        assert!(length.error.as_ref().unwrap().is_output_length());
        let stopped_at_length = answer(json!({"finish": "length"}));
        assert!(stopped_at_length.was_cut_off() && stopped_at_length.is_final());
        let stopped = answer(json!({"finish": "stop"}));
        assert!(!stopped.was_cut_off() && !stopped.was_aborted() && stopped.is_final());
        let api = answer(
            json!({"error": {"name": "APIError", "data": {"message": "no", "statusCode": 400}}}),
        );
        let error = api.error.as_ref().unwrap();
        assert!(error.is_api() && !error.is_aborted() && !error.is_structured_output());
        assert_eq!(error.status_code(), Some(400));
    }

    #[test]
    fn a_structured_answer_is_final_although_it_stopped_for_a_tool_call() {
        let structured = answer(json!({"finish": "tool-calls", "structured": {"ok": true}}));
        assert!(structured.is_final());
        assert_eq!(structured.structured, Some(json!({"ok": true})));
        let tool_step = answer(json!({"finish": "tool-calls"}));
        assert!(!tool_step.is_final(), "a tool step is followed by another");
    }

    #[test]
    fn a_prompt_sends_a_json_schema_format_and_never_a_text_one() {
        let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});
        let prompt =
            Prompt::text("go").format(OutputFormat::json_schema(schema.clone()).retries(4));
        assert_eq!(
            serde_json::to_value(&prompt).unwrap()["format"],
            json!({"type": "json_schema", "schema": schema, "retryCount": 4})
        );
        let without_retries = Prompt::text("go").format(OutputFormat::json_schema(schema.clone()));
        assert_eq!(
            serde_json::to_value(&without_retries).unwrap()["format"],
            json!({"type": "json_schema", "schema": schema})
        );
        for prompt in [
            Prompt::text("go"),
            Prompt::text("go").format(OutputFormat::text()),
        ] {
            assert!(
                serde_json::to_value(&prompt)
                    .unwrap()
                    .get("format")
                    .is_none()
            );
        }
        assert_eq!(OutputFormat::text().retries(3), OutputFormat::Text);
        assert_eq!(
            serde_json::to_value(OutputFormat::text()).unwrap(),
            json!({"type": "text"})
        );
    }
}
