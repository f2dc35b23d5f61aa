//! What the engine knows of the agents' sessions: the messages of a session, what a server reports about
//! its sessions, what a turn asks for and how it ended. The OpenCode adapter produces these from the
//! server's API; the engine's fakes produce them in tests.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;

use opencode_client::ModelRef;
use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Author {
    /// The orchestrator (a prompt).
    User,
    /// The agent.
    Assistant,
}

/// How an assistant message failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageFailure {
    /// The session was aborted while the message was being written (by the orchestrator at a stop, or by
    /// someone in the TUI): not the model's fault.
    Aborted,
    /// The model or the provider failed.
    Model {
        /// What it said.
        message: String,
    },
}

/// One message of a session, as the engine needs to see it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentMessage {
    /// Its id.
    pub id: String,
    /// Whether it is an answer of the agent.
    pub assistant: bool,
    /// For an answer: whether it is over (completed and not stopped to run tools, or failed).
    pub finished: bool,
    /// For an answer: how it failed, if it did.
    pub failure: Option<MessageFailure>,
    /// For an answer: whether the model stopped at its output limit (`finish: length`).
    pub cut_off: bool,
    /// Its text parts, joined.
    pub text: String,
    /// For an answer to a prompt with a JSON schema: the structured output.
    pub structured: Option<serde_json::Value>,
    /// How many parts it has (text, tools, steps): progress shows as parts grow.
    pub parts: usize,
    /// For an answer: the tokens and cost it used.
    #[serde(default)]
    pub usage: crate::domain::usage::Usage,
    /// For an answer: the errors of its tool calls (`tool: error`).
    #[serde(default)]
    pub tool_errors: Vec<String>,
}

/// What a server says a session is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activity {
    /// Working on a turn.
    Busy,
    /// Waiting to retry a failed model call (OpenCode retries those by itself).
    Retrying {
        /// OpenCode's attempt.
        attempt: u64,
        /// The last failure.
        message: String,
    },
    /// Done with its turn.
    Idle,
}

/// Something a server told about one of its sessions, or about its event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// A session's activity changed.
    Activity {
        /// The session.
        session: String,
        /// What it does now.
        activity: Activity,
    },
    /// A session reported an error.
    Error {
        /// The session.
        session: String,
        /// What went wrong.
        message: String,
    },
    /// A session asks to run a tool that needs permission.
    Permission {
        /// The session.
        session: String,
        /// The request to answer.
        request: String,
    },
    /// Anything else happened in a session (a part written, a message updated): progress.
    Progress {
        /// The session.
        session: String,
    },
    /// The event stream is connected (again); events may have been lost while it was not.
    Connected,
    /// The event stream dropped: nothing is reported until it is back.
    Disconnected,
}

/// What a turn asks of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnRequest {
    /// The message.
    pub text: String,
    /// The system prompt.
    pub system: String,
    /// Tools enabled or disabled for this turn.
    pub tools: Vec<(&'static str, bool)>,
    /// The model, when not the server's default.
    pub model: Option<ModelRef>,
    /// A JSON schema the answer must follow (OpenCode's structured output).
    pub schema: Option<serde_json::Value>,
}

/// A file a session changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Its path, relative to the session's directory.
    pub path: String,
    /// `added`, `modified` or `deleted`.
    pub status: String,
    /// Lines added.
    pub additions: u64,
    /// Lines removed.
    pub deletions: u64,
    /// The unified diff.
    pub patch: String,
}

/// The sessions a server reports as not idle, by id.
pub type Activities = BTreeMap<String, Activity>;

/// Whether a failed call to an agent's server is worth trying elsewhere or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentErrorKind {
    /// The server did not answer, past the retries and its circuit breaker: it is down for now.
    Unreachable,
    /// The server answered, but no: a session that is gone, an answer that does not decode. Another
    /// attempt on the same server would not change it, and the server is not down.
    Refused,
}

/// A call to an agent's server that failed.
#[derive(Debug, thiserror::Error)]
#[error("{what} on {server}: {source}")]
pub struct AgentError {
    /// Down, or refused.
    pub kind: AgentErrorKind,
    /// The server's URL.
    pub server: String,
    /// What the call was for.
    pub what: String,
    /// The error.
    #[source]
    pub source: Box<dyn StdError + Send + Sync>,
}

impl AgentError {
    /// Whether the server is down.
    pub fn is_unreachable(&self) -> bool {
        self.kind == AgentErrorKind::Unreachable
    }
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEnd {
    /// The agent answered.
    Answered {
        /// The text of its messages of the turn.
        text: String,
        /// The structured output, when the turn asked for one.
        structured: Option<serde_json::Value>,
        /// Whether the last answer stopped at the model's output limit.
        cut_off: bool,
    },
    /// The model call failed.
    ModelFailed {
        /// The error.
        message: String,
    },
    /// The answer was aborted: by the orchestrator at a stop, or from outside.
    Aborted,
    /// Nothing happened for the stall time.
    Stalled,
    /// The turn took longer than the turn timeout.
    TimedOut,
}

impl fmt::Display for TurnEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TurnEnd::Answered { .. } => f.write_str("answered"),
            TurnEnd::ModelFailed { message } => {
                write!(f, "failed: the model call failed: {message}")
            }
            TurnEnd::Aborted => f.write_str("was aborted"),
            TurnEnd::Stalled => f.write_str("stalled: no progress for the stall time, aborted"),
            TurnEnd::TimedOut => f.write_str("timed out, aborted"),
        }
    }
}

impl TurnEnd {
    /// Why the turn ended, as one word for logs and traces: `answered`, `cut_off` (an answer that stopped
    /// at the model's output limit), `model_failed`, `aborted`, `stalled` or `timed_out`.
    pub fn reason(&self) -> &'static str {
        match self {
            TurnEnd::Answered { cut_off: false, .. } => "answered",
            TurnEnd::Answered { cut_off: true, .. } => "cut_off",
            TurnEnd::ModelFailed { .. } => "model_failed",
            TurnEnd::Aborted => "aborted",
            TurnEnd::Stalled => "stalled",
            TurnEnd::TimedOut => "timed_out",
        }
    }
}

/// A turn that ended: how, and what it used (its answers' and its sub-agents').
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// How it ended.
    pub end: TurnEnd,
    /// The session's answers of the turn and what each used (a resumed run leaves out those the journal
    /// counted before).
    pub answers: Vec<(String, crate::domain::usage::Usage)>,
    /// What the sub-agent sessions the turn started used.
    pub sub_agents: crate::domain::usage::Usage,
    /// The errors its tool calls returned, in order.
    pub tool_errors: Vec<String>,
}

impl Turn {
    /// A turn with nothing used.
    pub fn ended(end: TurnEnd) -> Self {
        Self {
            end,
            answers: Vec::new(),
            sub_agents: crate::domain::usage::Usage::default(),
            tool_errors: Vec::new(),
        }
    }

    /// What it used in all.
    pub fn usage(&self) -> crate::domain::usage::Usage {
        self.answers
            .iter()
            .map(|(_, usage)| *usage)
            .sum::<crate::domain::usage::Usage>()
            + self.sub_agents
    }
}

/// The tool errors of the answers among `messages`.
pub fn tool_errors_of(messages: &[AgentMessage]) -> Vec<String> {
    messages
        .iter()
        .filter(|message| message.assistant)
        .flat_map(|message| message.tool_errors.iter().cloned())
        .collect()
}

/// The answers among `messages`, each with what it used.
pub fn answers_of(messages: &[AgentMessage]) -> Vec<(String, crate::domain::usage::Usage)> {
    messages
        .iter()
        .filter(|message| message.assistant)
        .map(|message| (message.id.clone(), message.usage))
        .collect()
}

/// What the answers among `messages` used.
pub fn usage_of(messages: &[AgentMessage]) -> crate::domain::usage::Usage {
    messages
        .iter()
        .filter(|message| message.assistant)
        .map(|message| message.usage)
        .sum()
}

/// The end of a turn, if the messages after its prompt hold a finished answer: the last message is a
/// finished assistant message. The answer's text is every assistant message of the turn (a Worker may speak
/// before its tool calls and end with only its status line).
pub fn turn_end(answer: &[AgentMessage]) -> Option<TurnEnd> {
    let last = answer.last()?;
    if !last.assistant || !last.finished {
        return None;
    }
    match &last.failure {
        Some(MessageFailure::Aborted) => return Some(TurnEnd::Aborted),
        Some(MessageFailure::Model { message }) => {
            return Some(TurnEnd::ModelFailed {
                message: message.clone(),
            });
        }
        None => {}
    }
    let text = answer
        .iter()
        .filter(|message| message.assistant && !message.text.trim().is_empty())
        .map(|message| message.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    Some(TurnEnd::Answered {
        text,
        structured: last.structured.clone(),
        cut_off: last.cut_off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str, finished: bool) -> AgentMessage {
        AgentMessage {
            assistant: true,
            finished,
            text: text.to_string(),
            ..AgentMessage::default()
        }
    }

    #[test]
    fn a_turn_ends_with_a_finished_answer() {
        assert_eq!(turn_end(&[]), None);
        assert_eq!(turn_end(&[answer("working", false)]), None);
        assert_eq!(
            turn_end(&[answer("first", true), answer("STATUS: DONE", true)]),
            Some(TurnEnd::Answered {
                text: "first\nSTATUS: DONE".into(),
                structured: None,
                cut_off: false
            })
        );
        let user = AgentMessage::default();
        assert_eq!(turn_end(&[answer("a", true), user]), None);
    }

    #[test]
    fn an_aborted_answer_is_not_a_model_failure() {
        let mut aborted = answer("half", true);
        aborted.failure = Some(MessageFailure::Aborted);
        assert_eq!(turn_end(&[aborted]), Some(TurnEnd::Aborted));
        let mut failed = answer("", true);
        failed.failure = Some(MessageFailure::Model {
            message: "rate limited".into(),
        });
        assert_eq!(
            turn_end(&[failed]),
            Some(TurnEnd::ModelFailed {
                message: "rate limited".into()
            })
        );
    }
}
