//! Server events: what `GET /event` streams, typed where this client needs the fields, kept as raw JSON
//! otherwise.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::types::{Message, MessageError, Part, PermissionRequest, Session, SessionStatus};

/// One event from the server's stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event {
    /// The event's id (`evt_…`), when the server sends one.
    pub id: Option<String>,
    /// What happened.
    pub payload: EventPayload,
}

impl Event {
    /// The event's type, as the server names it (`session.idle`, …).
    pub fn kind(&self) -> &str {
        self.payload.kind()
    }

    /// The session the event is about, if it is about one.
    pub fn session_id(&self) -> Option<&str> {
        self.payload.session_id()
    }
}

/// What an event says. Event types this client does not model, and modelled ones whose properties do not
/// decode, are kept whole in [`EventPayload::Other`]: a new server version never makes the stream fail.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventPayload {
    /// The stream is connected (the server's first event).
    ServerConnected,
    /// A keep-alive.
    ServerHeartbeat,
    /// A session was created.
    SessionCreated {
        /// The session.
        info: Session,
    },
    /// A session changed.
    SessionUpdated {
        /// The session.
        info: Session,
    },
    /// A session was deleted.
    SessionDeleted {
        /// The session.
        info: Session,
    },
    /// A session's status changed.
    SessionStatus {
        /// The session.
        session_id: String,
        /// Its status.
        status: SessionStatus,
    },
    /// A session stopped working.
    SessionIdle {
        /// The session.
        session_id: String,
    },
    /// A session's prompt failed (for instance the model answered with an HTTP error).
    SessionError {
        /// The session, if the error is about one.
        session_id: Option<String>,
        /// What went wrong.
        error: Option<MessageError>,
    },
    /// A message was created or changed.
    MessageUpdated {
        /// The session.
        session_id: String,
        /// The message.
        info: Message,
    },
    /// A part of a message was created or changed.
    MessagePartUpdated {
        /// The session.
        session_id: String,
        /// The part.
        part: Part,
    },
    /// Text was appended to a part while the model streams.
    MessagePartDelta {
        /// The session.
        session_id: String,
        /// The message.
        message_id: String,
        /// The part.
        part_id: String,
        /// The field appended to (`text`).
        field: String,
        /// What was appended.
        delta: String,
    },
    /// A tool needs permission.
    PermissionAsked(PermissionRequest),
    /// A permission request was answered.
    PermissionReplied {
        /// The session.
        session_id: String,
        /// The request.
        request_id: String,
        /// The answer (`once`, `always`, `reject`).
        reply: String,
    },
    /// A command (such as one typed as `/task …` in the TUI) was run in a session.
    CommandExecuted {
        /// The command's name.
        name: String,
        /// The session.
        session_id: String,
        /// What followed the command's name.
        arguments: String,
        /// The message it created.
        message_id: String,
    },
    /// A file was edited by a tool.
    FileEdited {
        /// The file.
        file: String,
    },
    /// Any other event, as sent (its type and its properties).
    Other {
        /// The event's type.
        kind: String,
        /// Its properties.
        properties: Value,
    },
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    properties: Value,
}

#[derive(Deserialize)]
struct InfoProperties<T> {
    info: T,
}

#[derive(Deserialize)]
struct SessionStatusProperties {
    #[serde(rename = "sessionID")]
    session_id: String,
    status: SessionStatus,
}

#[derive(Deserialize)]
struct SessionProperties {
    #[serde(rename = "sessionID")]
    session_id: String,
}

#[derive(Deserialize)]
struct SessionErrorProperties {
    #[serde(rename = "sessionID", default)]
    session_id: Option<String>,
    #[serde(default)]
    error: Option<MessageError>,
}

#[derive(Deserialize)]
struct MessageProperties {
    #[serde(rename = "sessionID")]
    session_id: String,
    info: Message,
}

#[derive(Deserialize)]
struct PartProperties {
    #[serde(rename = "sessionID")]
    session_id: String,
    part: Part,
}

#[derive(Deserialize)]
struct DeltaProperties {
    #[serde(rename = "sessionID")]
    session_id: String,
    #[serde(rename = "messageID")]
    message_id: String,
    #[serde(rename = "partID")]
    part_id: String,
    field: String,
    delta: String,
}

#[derive(Deserialize)]
struct PermissionRepliedProperties {
    #[serde(rename = "sessionID")]
    session_id: String,
    #[serde(rename = "requestID", alias = "permissionID")]
    request_id: String,
    #[serde(alias = "response")]
    reply: String,
}

#[derive(Deserialize)]
struct CommandProperties {
    name: String,
    #[serde(rename = "sessionID")]
    session_id: String,
    arguments: String,
    #[serde(rename = "messageID")]
    message_id: String,
}

#[derive(Deserialize)]
struct FileProperties {
    file: String,
}

/// The raw JSON of an event could not be read as `{ "type": …, "properties": … }`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event is not a JSON object with a `type` (at {path}): {message}")]
pub struct EventDecodeError {
    /// Where in the JSON it failed.
    pub path: String,
    /// What failed.
    pub message: String,
}

fn typed<T: DeserializeOwned>(properties: &Value) -> Option<T> {
    T::deserialize(properties).ok()
}

impl Event {
    /// Reads an event from the JSON of one server-sent `data:` field.
    ///
    /// # Errors
    ///
    /// [`EventDecodeError`] if the JSON is not an object with a string `type`. An event whose type this client
    /// does not know, or whose properties do not fit the modelled shape, is not an error: it becomes
    /// [`EventPayload::Other`].
    pub fn from_json(json: &str) -> Result<Event, EventDecodeError> {
        let deserializer = &mut serde_json::Deserializer::from_str(json);
        let raw: RawEvent =
            serde_path_to_error::deserialize(deserializer).map_err(|error| EventDecodeError {
                path: error.path().to_string(),
                message: error.inner().to_string(),
            })?;
        let properties = &raw.properties;
        let payload = match raw.kind.as_str() {
            "server.connected" => Some(EventPayload::ServerConnected),
            "server.heartbeat" => Some(EventPayload::ServerHeartbeat),
            "session.created" => typed::<InfoProperties<Session>>(properties)
                .map(|p| EventPayload::SessionCreated { info: p.info }),
            "session.updated" => typed::<InfoProperties<Session>>(properties)
                .map(|p| EventPayload::SessionUpdated { info: p.info }),
            "session.deleted" => typed::<InfoProperties<Session>>(properties)
                .map(|p| EventPayload::SessionDeleted { info: p.info }),
            "session.status" => {
                typed::<SessionStatusProperties>(properties).map(|p| EventPayload::SessionStatus {
                    session_id: p.session_id,
                    status: p.status,
                })
            }
            "session.idle" => {
                typed::<SessionProperties>(properties).map(|p| EventPayload::SessionIdle {
                    session_id: p.session_id,
                })
            }
            "session.error" => {
                typed::<SessionErrorProperties>(properties).map(|p| EventPayload::SessionError {
                    session_id: p.session_id,
                    error: p.error,
                })
            }
            "message.updated" => {
                typed::<MessageProperties>(properties).map(|p| EventPayload::MessageUpdated {
                    session_id: p.session_id,
                    info: p.info,
                })
            }
            "message.part.updated" => {
                typed::<PartProperties>(properties).map(|p| EventPayload::MessagePartUpdated {
                    session_id: p.session_id,
                    part: p.part,
                })
            }
            "message.part.delta" => {
                typed::<DeltaProperties>(properties).map(|p| EventPayload::MessagePartDelta {
                    session_id: p.session_id,
                    message_id: p.message_id,
                    part_id: p.part_id,
                    field: p.field,
                    delta: p.delta,
                })
            }
            "permission.asked" => {
                typed::<PermissionRequest>(properties).map(EventPayload::PermissionAsked)
            }
            "permission.replied" => typed::<PermissionRepliedProperties>(properties).map(|p| {
                EventPayload::PermissionReplied {
                    session_id: p.session_id,
                    request_id: p.request_id,
                    reply: p.reply,
                }
            }),
            "command.executed" => {
                typed::<CommandProperties>(properties).map(|p| EventPayload::CommandExecuted {
                    name: p.name,
                    session_id: p.session_id,
                    arguments: p.arguments,
                    message_id: p.message_id,
                })
            }
            "file.edited" => typed::<FileProperties>(properties)
                .map(|p| EventPayload::FileEdited { file: p.file }),
            _ => None,
        };
        Ok(Event {
            id: raw.id,
            payload: payload.unwrap_or(EventPayload::Other {
                kind: raw.kind,
                properties: raw.properties,
            }),
        })
    }

    /// The event as the server sent it (its type, and its properties as JSON): `Other` events round-trip
    /// exactly; typed ones are re-encoded from their fields.
    pub fn to_json(&self) -> Value {
        let properties = match &self.payload {
            EventPayload::ServerConnected | EventPayload::ServerHeartbeat => {
                Value::Object(Default::default())
            }
            EventPayload::SessionCreated { info }
            | EventPayload::SessionUpdated { info }
            | EventPayload::SessionDeleted { info } => serde_json::json!({ "info": info }),
            EventPayload::SessionStatus { session_id, status } => {
                serde_json::json!({ "sessionID": session_id, "status": status })
            }
            EventPayload::SessionIdle { session_id } => {
                serde_json::json!({ "sessionID": session_id })
            }
            EventPayload::SessionError { session_id, error } => {
                serde_json::json!({ "sessionID": session_id, "error": error })
            }
            EventPayload::MessageUpdated { session_id, info } => {
                serde_json::json!({ "sessionID": session_id, "info": info })
            }
            EventPayload::MessagePartUpdated { session_id, part } => {
                serde_json::json!({ "sessionID": session_id, "part": part })
            }
            EventPayload::MessagePartDelta {
                session_id,
                message_id,
                part_id,
                field,
                delta,
            } => serde_json::json!({
                "sessionID": session_id, "messageID": message_id, "partID": part_id, "field": field, "delta": delta
            }),
            EventPayload::PermissionAsked(request) => {
                serde_json::to_value(request).unwrap_or_default()
            }
            EventPayload::PermissionReplied {
                session_id,
                request_id,
                reply,
            } => {
                serde_json::json!({ "sessionID": session_id, "requestID": request_id, "reply": reply })
            }
            EventPayload::CommandExecuted {
                name,
                session_id,
                arguments,
                message_id,
            } => serde_json::json!({
                "name": name, "sessionID": session_id, "arguments": arguments, "messageID": message_id
            }),
            EventPayload::FileEdited { file } => serde_json::json!({ "file": file }),
            EventPayload::Other { properties, .. } => properties.clone(),
        };
        let mut event = serde_json::json!({ "type": self.kind(), "properties": properties });
        if let Some(id) = &self.id {
            event["id"] = Value::String(id.clone());
        }
        event
    }
}

impl EventPayload {
    /// The event's type, as the server names it.
    pub fn kind(&self) -> &str {
        match self {
            EventPayload::ServerConnected => "server.connected",
            EventPayload::ServerHeartbeat => "server.heartbeat",
            EventPayload::SessionCreated { .. } => "session.created",
            EventPayload::SessionUpdated { .. } => "session.updated",
            EventPayload::SessionDeleted { .. } => "session.deleted",
            EventPayload::SessionStatus { .. } => "session.status",
            EventPayload::SessionIdle { .. } => "session.idle",
            EventPayload::SessionError { .. } => "session.error",
            EventPayload::MessageUpdated { .. } => "message.updated",
            EventPayload::MessagePartUpdated { .. } => "message.part.updated",
            EventPayload::MessagePartDelta { .. } => "message.part.delta",
            EventPayload::PermissionAsked(_) => "permission.asked",
            EventPayload::PermissionReplied { .. } => "permission.replied",
            EventPayload::CommandExecuted { .. } => "command.executed",
            EventPayload::FileEdited { .. } => "file.edited",
            EventPayload::Other { kind, .. } => kind,
        }
    }

    /// The session the event is about, if any.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            EventPayload::SessionCreated { info }
            | EventPayload::SessionUpdated { info }
            | EventPayload::SessionDeleted { info } => Some(&info.id),
            EventPayload::SessionStatus { session_id, .. }
            | EventPayload::SessionIdle { session_id }
            | EventPayload::MessageUpdated { session_id, .. }
            | EventPayload::MessagePartUpdated { session_id, .. }
            | EventPayload::MessagePartDelta { session_id, .. }
            | EventPayload::PermissionReplied { session_id, .. }
            | EventPayload::CommandExecuted { session_id, .. } => Some(session_id),
            EventPayload::SessionError { session_id, .. } => session_id.as_deref(),
            EventPayload::PermissionAsked(request) => Some(&request.session_id),
            EventPayload::Other { properties, .. } => {
                properties.get("sessionID").and_then(Value::as_str)
            }
            EventPayload::ServerConnected
            | EventPayload::ServerHeartbeat
            | EventPayload::FileEdited { .. } => None,
        }
    }
}
