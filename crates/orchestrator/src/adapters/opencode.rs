//! An OpenCode server, as the engine talks to it: every call through the server's circuit breaker and a
//! retry with jittered exponential backoff (retrying only what opencode-client's [`Error::is_retryable`](opencode_client::Error::is_retryable)
//! says may succeed later), the server's event stream turned into [`Update`]s, and its messages into
//! [`AgentMessage`]s. Also: connecting to a server at a URL, and starting the demo's scripted model and
//! OpenCode server.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use circuit::{Backoff, CallError, CircuitBreaker, Jitter, Retry};
use futures_util::StreamExt as _;
use opencode_client::testkit::{OpencodeServer, Script, ScriptedModel};
use opencode_client::{
    Client, CreateSession, Error as ClientError, EventPayload, Message, MessageWithParts,
    OutputFormat, PermissionReply, Prompt, SessionStatus, StreamItem,
};
use tokio::sync::broadcast;

use crate::domain::agent::{
    Activities, Activity, AgentError, AgentErrorKind, AgentMessage, FileChange, MessageFailure,
    TurnRequest, Update,
};
use crate::domain::settings::CallPolicy;
use crate::domain::usage::Usage;

/// How long the event stream keeps reconnecting after a drop before it gives up (polling covers the
/// time it is down either way).
const RECONNECT_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// How long the event stream may stay silent before it is taken as dropped (the server sends heartbeats).
const STREAM_IDLE: Duration = Duration::from_secs(45);

/// The timeout of one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a server cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL cannot be used.
    #[error("bad OpenCode URL {url:?}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// Why.
        #[source]
        source: ClientError,
    },
    /// Nothing answers as OpenCode does.
    #[error("no OpenCode server reachable at {url}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What happened.
        #[source]
        source: ClientError,
    },
    /// It answers but says it is not healthy.
    #[error("the OpenCode server at {url} says it is not healthy (version {version})")]
    Unhealthy {
        /// The URL.
        url: String,
        /// Its version.
        version: String,
    },
}

/// Why the demo's model or server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The scripted model did not start.
    #[error("could not start the scripted model")]
    Model(#[source] std::io::Error),
    /// The OpenCode server did not start.
    #[error("could not start the demo's OpenCode server")]
    Server(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Connects to the OpenCode server at `url` for `project` and checks that it is healthy.
///
/// # Errors
///
/// [`ConnectError`] for a URL that does not parse or a server that does not answer as OpenCode does.
pub async fn connect(
    url: &str,
    password: Option<&str>,
    project: &Path,
) -> Result<Client, ConnectError> {
    let mut builder = Client::builder(url)
        .timeout(CALL_TIMEOUT)
        .event_stream(RECONNECT_FOR, STREAM_IDLE)
        .directory(project.display().to_string());
    if let Some(password) = password {
        builder = builder.password(password);
    }
    let client = builder.build().map_err(|source| ConnectError::BadUrl {
        url: url.to_string(),
        source,
    })?;
    match client.health().await {
        Ok(health) if health.healthy => Ok(client),
        Ok(health) => Err(ConnectError::Unhealthy {
            url: url.to_string(),
            version: health.version,
        }),
        Err(source) => Err(ConnectError::Unreachable {
            url: url.to_string(),
            source,
        }),
    }
}

/// A scripted model and a real OpenCode server playing against it, in a project: what `--demo` and the
/// tests run on.
#[derive(Debug)]
pub struct DemoServer {
    /// The model.
    pub model: ScriptedModel,
    /// The server.
    pub server: OpencodeServer,
}

/// Starts a scripted model with `script` and an OpenCode server using it, in `project`.
///
/// # Errors
///
/// [`LaunchError`] when the model or the server does not start.
pub async fn start_demo(script: Script, project: &Path) -> Result<DemoServer, LaunchError> {
    let model = ScriptedModel::start(script)
        .await
        .map_err(LaunchError::Model)?;
    let server = OpencodeServer::builder()
        .model(model.base_url())
        .project(project)
        .start()
        .await
        .map_err(|error| LaunchError::Server(Box::new(error)))?;
    Ok(DemoServer { model, server })
}

/// Stops the event reader when the adapter is dropped.
#[derive(Debug)]
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One OpenCode server, guarded.
#[derive(Debug, Clone)]
pub struct Opencode {
    client: Client,
    url: String,
    breaker: Arc<CircuitBreaker>,
    retry: Arc<Retry>,
    updates: broadcast::Sender<Update>,
    stream_up: Arc<AtomicBool>,
    /// The directory each session was created for, when not the project's.
    directories: Arc<Mutex<BTreeMap<String, PathBuf>>>,
    _reader: Arc<Reader>,
}

impl Opencode {
    /// Guards `client` with `policy`, and starts reading the server's events.
    ///
    /// # Panics
    ///
    /// If the policy is invalid (zero attempts or a zero delay): the defaults and the configuration's
    /// validation never make one.
    pub fn new(client: Client, policy: &CallPolicy) -> Self {
        let url = client.url().to_string();
        let breaker = CircuitBreaker::builder()
            .name(url.clone())
            .consecutive_failures(policy.breaker_failures.max(1))
            .open_wait(Backoff::constant(policy.breaker_open_for))
            .build()
            .expect("a breaker with consecutive failures and a constant wait is valid");
        let retry = Retry::builder()
            .max_attempts(policy.attempts.max(1))
            .backoff(
                Backoff::exponential(policy.base_delay, policy.max_delay.max(policy.base_delay))
                    .expect("the base delay is at most the maximum")
                    .with_jitter(Jitter::Full),
            )
            .build()
            .expect("a retry with at least one attempt is valid");
        let (updates, _) = broadcast::channel(4096);
        let stream_up = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(read_events(
            client.clone(),
            updates.clone(),
            Arc::clone(&stream_up),
        ));
        Self {
            client,
            url,
            breaker: Arc::new(breaker),
            retry: Arc::new(retry),
            updates,
            stream_up,
            directories: Arc::new(Mutex::new(BTreeMap::new())),
            _reader: Arc::new(Reader(reader)),
        }
    }

    /// The client, for calls that are not the engine's (toasts, posting a summary).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The breaker's state, for the summary.
    pub fn breaker_state(&self) -> String {
        self.breaker.state().to_string()
    }

    /// The client for a session's calls: the project's, or the one for the directory the session was
    /// created for.
    fn client_for(&self, session: Option<&str>) -> Client {
        let directory = session.and_then(|session| {
            self.directories
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(session)
                .cloned()
        });
        match directory {
            Some(directory) => self.client.with_directory(directory.display().to_string()),
            None => self.client.clone(),
        }
    }

    /// Runs one call through the breaker and the retry: what may succeed later is retried with backoff,
    /// an open breaker is waited out as a retry too.
    async fn call<T, F, Fut>(
        &self,
        what: &str,
        session: Option<&str>,
        op: F,
    ) -> Result<T, AgentError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.call_on(what, self.client_for(session), op).await
    }

    /// [`call`](Self::call) with the given client (the project's, or one for another directory).
    async fn call_on<T, F, Fut>(
        &self,
        what: &str,
        client: Client,
        mut op: F,
    ) -> Result<T, AgentError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let breaker = &self.breaker;
        let client = &client;
        let result = self
            .retry
            .call_async(
                |_| {
                    let call = op(client.clone());
                    async move {
                        breaker
                            .call_async_with(ClientError::is_retryable, call)
                            .await
                    }
                },
                |error: &CallError<ClientError>| match error {
                    CallError::Rejected(_) => true,
                    CallError::Inner(error) => error.is_retryable(),
                },
            )
            .await;
        result.map_err(|error| {
            let attempts = error.attempts();
            let (kind, source): (_, Box<dyn std::error::Error + Send + Sync>) =
                match error.into_inner() {
                    CallError::Rejected(rejected) => (
                        AgentErrorKind::Unreachable,
                        format!(
                            "its circuit breaker is {} after repeated failures",
                            rejected.state()
                        )
                        .into(),
                    ),
                    CallError::Inner(error) if error.is_retryable() => {
                        (AgentErrorKind::Unreachable, Box::new(error))
                    }
                    CallError::Inner(error) => (AgentErrorKind::Refused, Box::new(error)),
                };
            AgentError {
                kind,
                server: self.url.clone(),
                what: format!("{what} ({attempts} attempt(s))"),
                source,
            }
        })
    }

    /// Creates a session titled `title`, a child of `parent` if given, working in `directory` (the
    /// project's when `None`).
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails.
    pub async fn create_session(
        &self,
        title: &str,
        parent: Option<&str>,
        directory: Option<&Path>,
    ) -> Result<String, AgentError> {
        let mut request = CreateSession::new().title(title);
        if let Some(parent) = parent {
            request = request.parent(parent);
        }
        let client = match directory {
            Some(directory) => self.client.with_directory(directory.display().to_string()),
            None => self.client.clone(),
        };
        let id = self
            .call("create a session", None, |_| {
                let request = request.clone();
                let client = client.clone();
                async move { client.create_session(&request).await }
            })
            .await?
            .id;
        if let Some(directory) = directory {
            self.directories
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.clone(), directory.to_path_buf());
        }
        Ok(id)
    }

    /// Whether the session exists.
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails (a 404 is an answer: `false`).
    pub async fn session_exists(&self, session: &str) -> Result<bool, AgentError> {
        let result = self
            .call("look for a session", Some(session), |client| async move {
                match client.session(session).await {
                    Ok(_) => Ok(true),
                    Err(error) if error.status() == Some(404) => Ok(false),
                    Err(error) => Err(error),
                }
            })
            .await;
        match result {
            Err(error) if error.kind == AgentErrorKind::Refused => Ok(false),
            other => other,
        }
    }

    /// The prompt of a turn request.
    fn prompt_of(request: &TurnRequest) -> Prompt {
        let mut prompt = Prompt::text(request.text.clone()).system(request.system.clone());
        for (tool, enabled) in &request.tools {
            prompt = prompt.tool(*tool, *enabled);
        }
        if let Some(model) = &request.model {
            prompt = prompt.model(model.clone());
        }
        if let Some(schema) = &request.schema {
            prompt = prompt.format(OutputFormat::json_schema(schema.clone()));
        }
        prompt
    }

    /// Sends a prompt and waits for its answer, in one call (no retry: the turn may have run); for a
    /// prompt with a JSON schema (OpenCode 1.18.33 cannot list such a session's messages afterwards).
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails or refuses the prompt (a server without structured output
    /// refuses its `format`).
    pub async fn prompt_and_wait(
        &self,
        session: &str,
        request: &TurnRequest,
    ) -> Result<AgentMessage, AgentError> {
        let prompt = Self::prompt_of(request);
        let client = self.client_for(Some(session));
        let result = self
            .breaker
            .call_async_with(ClientError::is_retryable, client.prompt(session, &prompt))
            .await;
        match result {
            Ok(answer) => Ok(agent_message(&answer)),
            Err(error) => {
                let (kind, source): (_, Box<dyn std::error::Error + Send + Sync>) = match error {
                    CallError::Rejected(rejected) => (
                        AgentErrorKind::Unreachable,
                        format!(
                            "its circuit breaker is {} after repeated failures",
                            rejected.state()
                        )
                        .into(),
                    ),
                    CallError::Inner(error) if error.is_retryable() => {
                        (AgentErrorKind::Unreachable, Box::new(error))
                    }
                    CallError::Inner(error) => (AgentErrorKind::Refused, Box::new(error)),
                };
                Err(AgentError {
                    kind,
                    server: self.url.clone(),
                    what: "send a prompt and wait for its answer".to_string(),
                    source,
                })
            }
        }
    }

    /// Sends a prompt without waiting for its turn.
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails.
    pub async fn prompt(&self, session: &str, request: &TurnRequest) -> Result<(), AgentError> {
        let prompt = &Self::prompt_of(request);
        self.call("send a prompt", Some(session), |client| async move {
            client.prompt_async(session, prompt).await
        })
        .await
    }

    /// The session's messages.
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails.
    pub async fn messages(&self, session: &str) -> Result<Vec<AgentMessage>, AgentError> {
        let messages = self
            .call("list messages", Some(session), |client| async move {
                client.messages(session).await
            })
            .await?;
        Ok(messages.iter().map(agent_message).collect())
    }

    /// The sessions that are not idle.
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails.
    pub async fn activities(&self) -> Result<Activities, AgentError> {
        // OpenCode keeps sessions per directory: the project's, and each worktree a session was created
        // for (a task's sub-agents live in their parent's). Every one of them is asked.
        let directories: BTreeSet<PathBuf> = self
            .directories
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|directory| directory.is_dir())
            .cloned()
            .collect();
        let clients = std::iter::once(self.client.clone()).chain(
            directories
                .iter()
                .map(|directory| self.client.with_directory(directory.display().to_string())),
        );
        let mut activities = Activities::new();
        for client in clients {
            let statuses = self
                .call_on("read session status", client, |client| async move {
                    client.session_status().await
                })
                .await?;
            activities.extend(
                statuses
                    .into_iter()
                    .filter_map(|(session, status)| Some((session, activity(&status)?))),
            );
        }
        Ok(activities)
    }

    /// Aborts the session's turn.
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails.
    pub async fn abort(&self, session: &str) -> Result<(), AgentError> {
        self.call("abort a session", Some(session), |client| async move {
            client.abort(session).await
        })
        .await
        .map(drop)
    }

    /// The sessions created under this one.
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails.
    pub async fn children(&self, session: &str) -> Result<Vec<String>, AgentError> {
        let children = self
            .call(
                "list a session's children",
                Some(session),
                |client| async move { client.children(session).await },
            )
            .await?;
        let ids: Vec<String> = children.into_iter().map(|child| child.id).collect();
        // A tool's sub-agent session works in its parent's directory: its calls (an abort, above all) go
        // to the server's instance for that directory, where its turn runs.
        let mut directories = self
            .directories
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(directory) = directories.get(session).cloned() {
            for id in &ids {
                directories
                    .entry(id.clone())
                    .or_insert_with(|| directory.clone());
            }
        }
        Ok(ids)
    }

    /// The files the session changed.
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails.
    pub async fn changes(&self, session: &str) -> Result<Vec<FileChange>, AgentError> {
        let diff = self
            .call(
                "read a session's changes",
                Some(session),
                |client| async move { client.session_changes(session).await },
            )
            .await?;
        Ok(diff
            .into_iter()
            .map(|file| FileChange {
                path: file.file,
                status: file.status.unwrap_or_else(|| "modified".to_string()),
                additions: count(file.additions),
                deletions: count(file.deletions),
                patch: file.patch,
            })
            .collect())
    }

    /// Answers a permission request.
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails.
    pub async fn answer_permission(&self, request: &str, allow: bool) -> Result<(), AgentError> {
        let reply = if allow {
            PermissionReply::Once
        } else {
            PermissionReply::Reject
        };
        self.call("answer a permission request", None, |client| async move {
            client.reply_permission(request, reply, None).await
        })
        .await
        .map(drop)
    }

    /// What the server reports from now on; the first update says whether its event stream is connected.
    pub fn updates(&self) -> broadcast::Receiver<Update> {
        let receiver = self.updates.subscribe();
        let _ = self
            .updates
            .send(if self.stream_up.load(Ordering::Relaxed) {
                Update::Connected
            } else {
                Update::Disconnected
            });
        receiver
    }
}

fn count(lines: f64) -> u64 {
    if lines.is_finite() && lines > 0.0 {
        lines as u64
    } else {
        0
    }
}

/// What the engine sees of a session status; `None` for idle (the server leaves idle sessions out).
fn activity(status: &SessionStatus) -> Option<Activity> {
    match status {
        SessionStatus::Busy => Some(Activity::Busy),
        SessionStatus::Retry {
            attempt, message, ..
        } => Some(Activity::Retrying {
            attempt: *attempt,
            message: message.clone(),
        }),
        _ => None,
    }
}

/// What the engine sees of a message.
fn agent_message(message: &MessageWithParts) -> AgentMessage {
    let text = message.text();
    let parts = message.parts.len();
    match &message.info {
        Message::User(user) => AgentMessage {
            id: user.id.clone(),
            text,
            parts,
            ..AgentMessage::default()
        },
        Message::Assistant(answer) => {
            let failure = match &answer.error {
                Some(error) if error.is_aborted() => Some(MessageFailure::Aborted),
                // A cut-off answer or one without the structured output asked for is an answer: the
                // engine asks again, or reads the plan from its text.
                Some(error) if error.is_output_length() || error.is_structured_output() => None,
                Some(error) => Some(MessageFailure::Model {
                    message: error
                        .message()
                        .map_or_else(|| error.name.clone(), str::to_string),
                }),
                None if answer.was_aborted() => Some(MessageFailure::Aborted),
                None => None,
            };
            let cut_off = answer.was_cut_off();
            AgentMessage {
                id: answer.id.clone(),
                assistant: true,
                finished: answer.is_final(),
                failure,
                cut_off,
                text,
                structured: answer.structured.clone(),
                parts,
                tool_errors: message
                    .parts
                    .iter()
                    .filter_map(|part| match part {
                        opencode_client::Part::Tool(tool) => match &tool.state {
                            opencode_client::ToolState::Error { error, .. } => {
                                Some(format!("{}: {error}", tool.tool))
                            }
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect(),
                usage: Usage {
                    input: answer.tokens.input,
                    output: answer.tokens.output,
                    reasoning: answer.tokens.reasoning,
                    cache_read: answer.tokens.cache.read,
                    cache_write: answer.tokens.cache.write,
                    cost_nanos: Usage::nanos(answer.cost),
                },
            }
        }
        _ => AgentMessage {
            text,
            parts,
            ..AgentMessage::default()
        },
    }
}

/// Reads the server's events into updates for as long as the adapter lives. The client's event stream
/// reconnects by itself (the one reconnect loop); this only says when it is up.
async fn read_events(
    client: Client,
    updates: broadcast::Sender<Update>,
    stream_up: Arc<AtomicBool>,
) {
    let mut stream = match client.events().await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(url = %client.url(), %error, "the event stream did not connect; polling instead");
            return;
        }
    };
    let set = |up: bool| {
        stream_up.store(up, Ordering::Relaxed);
        let _ = updates.send(if up {
            Update::Connected
        } else {
            Update::Disconnected
        });
    };
    set(true);
    while let Some(item) = stream.next().await {
        match item {
            Ok(StreamItem::Event(event)) => {
                if let Some(update) = update(&event.payload) {
                    let _ = updates.send(update);
                }
            }
            Ok(StreamItem::Reconnected(gap)) => {
                tracing::info!(url = %client.url(), ?gap, "the event stream reconnected");
                set(true);
            }
            Ok(StreamItem::Dropped { cause }) => {
                tracing::info!(url = %client.url(), %cause, "the event stream dropped; polling until it is back");
                set(false);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(url = %client.url(), %error, "the event stream is lost; polling instead");
                break;
            }
        }
    }
    set(false);
}

/// The update an event means, if it is about a session.
fn update(payload: &EventPayload) -> Option<Update> {
    let session = payload.session_id()?.to_string();
    Some(match payload {
        EventPayload::SessionIdle { .. } => Update::Activity {
            session,
            activity: Activity::Idle,
        },
        EventPayload::SessionStatus { status, .. } => Update::Activity {
            session,
            activity: activity(status).unwrap_or(Activity::Idle),
        },
        EventPayload::SessionError { error, .. } => Update::Error {
            session,
            message: error
                .as_ref()
                .and_then(|error| error.message().map(str::to_string))
                .unwrap_or_else(|| "the session reported an error".to_string()),
        },
        EventPayload::PermissionAsked(request) => Update::Permission {
            session,
            request: request.id.clone(),
        },
        _ => Update::Progress { session },
    })
}
