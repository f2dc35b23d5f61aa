//! The client: one `reqwest` connection pool, Basic auth, a timeout per call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, excerpt};
use crate::stream::{EventStream, StreamConfig};
use crate::types::{
    CreateSession, FileContent, FileDiff, Health, Message, MessageWithParts, ModelRef,
    PermissionReply, Prompt, Session, SessionStatus, TextMatch, Toast,
};

/// The user name OpenCode's server expects with its password (`OPENCODE_SERVER_PASSWORD`).
pub const DEFAULT_USERNAME: &str = "opencode";

/// A typed client for an OpenCode server's HTTP API.
///
/// Cheap to clone (clones share one connection pool). Every call has a timeout ([`ClientBuilder::timeout`],
/// and a longer one for synchronous prompts, which wait for the model); every error is an [`Error`] that says
/// what happened.
///
/// ```no_run
/// use opencode_client::{Client, CreateSession, Prompt};
///
/// # async fn run() -> Result<(), opencode_client::Error> {
/// let client = Client::builder("http://127.0.0.1:4096").password("secret").build()?;
/// println!("OpenCode {}", client.health().await?.version);
/// let session = client.create_session(&CreateSession::new().title("hello")).await?;
/// let reply = client.prompt(&session.id, &Prompt::text("Say hello")).await?;
/// println!("{}", reply.text());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    /// The `Authorization` header, encoded once (marked sensitive, so it is never logged).
    auth: Option<reqwest::header::HeaderValue>,
    directory: Option<String>,
    timeout: Duration,
    prompt_timeout: Duration,
    stream: StreamConfig,
}

/// Settings for a [`Client`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    url: String,
    username: String,
    password: Option<String>,
    directory: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    prompt_timeout: Duration,
    stream: StreamConfig,
}

impl ClientBuilder {
    /// The server's URL, password, and how long to wait.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The user name for Basic auth (default [`DEFAULT_USERNAME`]).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = username.into();
        self
    }

    /// The project directory every request is about (the server's `directory` parameter); by default the
    /// server's own.
    pub fn directory(mut self, directory: impl Into<String>) -> Self {
        self.directory = Some(directory.into());
        self
    }

    /// How long a call may take, from sending to the end of the body (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a synchronous prompt may take, model included (default 10 minutes).
    pub fn prompt_timeout(mut self, timeout: Duration) -> Self {
        self.prompt_timeout = timeout;
        self
    }

    /// How long the event stream keeps trying to reconnect after it drops before it gives up (default 60 s),
    /// and how long it waits for any byte before it takes the connection for dead (default 45 s: the server
    /// sends a heartbeat every 10 s or so). [`Duration::MAX`] for `reconnect_for` reconnects for as long as
    /// the stream is read; for `idle_timeout`, never takes a silent connection for dead.
    pub fn event_stream(mut self, reconnect_for: Duration, idle_timeout: Duration) -> Self {
        self.stream = StreamConfig {
            reconnect_for,
            idle_timeout,
        };
        self
    }

    /// Builds the client. No request is made: see [`Client::health`] to check the server.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] if the URL does not parse or is not `http`/`https`; [`Error::Transport`] if the
    /// HTTP client cannot be built.
    pub fn build(self) -> Result<Client, Error> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: self.url.clone(),
            reason: reason.to_string(),
        };
        let mut base = Url::parse(&self.url).map_err(|error| invalid(&error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if base.host_str().is_none() {
            return Err(invalid("there is no host"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| Error::Transport {
                method: "BUILD",
                path: String::new(),
                source,
            })?;
        let auth = self
            .password
            .map(|password| basic_auth_header(&http, &base, &self.username, &password))
            .transpose()?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                directory: self.directory,
                timeout: self.timeout,
                prompt_timeout: self.prompt_timeout,
                stream: self.stream,
            }),
        })
    }
}

/// A request body that is not sent.
const NO_BODY: Option<&()> = None;

impl Client {
    /// Settings for a client of the server at `url` (e.g. `http://127.0.0.1:4096`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            username: DEFAULT_USERNAME.to_string(),
            password: None,
            directory: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            prompt_timeout: Duration::from_secs(600),
            stream: StreamConfig::default(),
        }
    }

    /// The server's base URL.
    pub fn url(&self) -> &Url {
        &self.inner.base
    }

    /// The project directory this client's requests are about (the `directory` parameter it sends), or
    /// `None` for the server's own.
    pub fn directory(&self) -> Option<&str> {
        self.inner.directory.as_deref()
    }

    /// A client for the same server whose requests are about `directory` instead: OpenCode serves one
    /// instance per directory (its configuration, agents, file tools and sessions), chosen by the
    /// `directory` parameter of each request. The new client shares this one's connection pool, password,
    /// timeouts and event stream settings; this client is unchanged.
    ///
    /// Sessions created through it work in `directory` (their [`Session::directory`]), so their tools do
    /// too; its [`events`](Self::events) are that instance's.
    ///
    /// ```no_run
    /// use opencode_client::{Client, CreateSession};
    ///
    /// # async fn run() -> Result<(), opencode_client::Error> {
    /// let client = Client::builder("http://127.0.0.1:4096").build()?;
    /// let worktree = client.with_directory("/work/worktrees/task-7");
    /// let session = worktree.create_session(&CreateSession::new()).await?;
    /// assert_eq!(session.directory, "/work/worktrees/task-7");
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_directory(&self, directory: impl Into<String>) -> Client {
        Client {
            inner: Arc::new(Inner {
                directory: Some(directory.into()),
                ..(*self.inner).clone()
            }),
        }
    }

    /// The URL of `path` with the client's directory parameter and `query`.
    pub(crate) fn url_for(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self
            .inner
            .base
            .join(path.trim_start_matches('/'))
            .expect("API paths are relative URL paths");
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(directory) = &self.inner.directory {
                pairs.append_pair("directory", directory);
            }
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// A request for `path`, as every call and the event stream send it: the URL with the client's
    /// `directory` parameter and `query`, and the `Authorization` header when the client has a password.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let request = self.inner.http.request(method, self.url_for(path, query));
        match &self.inner.auth {
            Some(auth) => request.header(reqwest::header::AUTHORIZATION, auth.clone()),
            None => request,
        }
    }

    /// The [`Error`] for a request to `path` that failed in reqwest: nothing listening is
    /// [`Error::Connect`], an expired `timeout` (if the request had one) [`Error::Timeout`], anything else
    /// [`Error::Transport`].
    pub(crate) fn transport_error(
        &self,
        method: &'static str,
        path: &str,
        timeout: Option<Duration>,
        source: reqwest::Error,
    ) -> Error {
        match timeout {
            _ if source.is_connect() => Error::Connect {
                url: self.inner.base.to_string(),
                source,
            },
            Some(after) if source.is_timeout() => Error::Timeout {
                method,
                path: path.to_string(),
                after,
            },
            _ => Error::Transport {
                method,
                path: path.to_string(),
                source,
            },
        }
    }

    /// Sends `request` (built by [`request`](Self::request) for `method` and `path`) and returns the
    /// response if its status is a success; an error status is [`Error::Status`] with the start of the body
    /// and a hint, a failure to send is mapped by [`transport_error`](Self::transport_error).
    pub(crate) async fn execute(
        &self,
        method: &'static str,
        path: &str,
        request: reqwest::RequestBuilder,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, Error> {
        let request = match timeout {
            Some(timeout) => request.timeout(timeout),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|source| self.transport_error(method, path, timeout, source))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // The status says what went wrong; a body that cannot be read only loses the detail.
        let body = response.bytes().await.unwrap_or_default();
        Err(Error::Status {
            method,
            path: path.to_string(),
            status: status.as_u16(),
            body: excerpt(&body),
            hint: Error::hint_for(status.as_u16()),
        })
    }

    /// Sends a request and returns the body of a successful answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<Vec<u8>, Error> {
        let method_name = method_name(&method);
        let mut request = self.request(method, path, query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self
            .execute(method_name, path, request, Some(timeout))
            .await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|source| self.transport_error(method_name, path, Some(timeout), source))?;
        Ok(bytes.to_vec())
    }

    /// Sends a request and decodes a JSON answer, naming the JSON path where decoding failed.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<T, Error> {
        let method_name = method_name(&method);
        let bytes = self.send(method, path, query, body, timeout).await?;
        decode(method_name, path, &bytes)
    }

    /// Checks the server: `GET /global/health`.
    ///
    /// # Errors
    ///
    /// [`Error::NotOpenCode`] if something else answers (a 404 or a body that is not OpenCode's health), and
    /// the errors of any call.
    pub async fn health(&self) -> Result<Health, Error> {
        let not_opencode = |detail: String| Error::NotOpenCode {
            url: self.inner.base.to_string(),
            detail,
        };
        match self
            .call::<Health>(
                Method::GET,
                "/global/health",
                &[],
                NO_BODY,
                self.inner.timeout,
            )
            .await
        {
            Ok(health) if health.healthy => Ok(health),
            Ok(health) => Err(not_opencode(format!("its health check says {health:?}"))),
            Err(Error::Status {
                status: 404, body, ..
            }) => Err(not_opencode(format!(
                "GET /global/health answered 404 ({body})"
            ))),
            Err(Error::Decode { message, body, .. }) => Err(not_opencode(format!(
                "GET /global/health answered something else: {message} (body: {body})"
            ))),
            Err(other) => Err(other),
        }
    }

    /// The server's configuration as JSON (`GET /config`): providers, models, agents, permissions….
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn config(&self) -> Result<Value, Error> {
        self.call(Method::GET, "/config", &[], NO_BODY, self.inner.timeout)
            .await
    }

    /// The configured providers and the default model of each (`GET /config/providers`), as JSON.
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn providers(&self) -> Result<Value, Error> {
        self.call(
            Method::GET,
            "/config/providers",
            &[],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// Creates a session (`POST /session`).
    ///
    /// # Errors
    ///
    /// As any call; a parent that does not exist is an [`Error::Status`].
    pub async fn create_session(&self, request: &CreateSession) -> Result<Session, Error> {
        self.call(
            Method::POST,
            "/session",
            &[],
            Some(request),
            self.inner.timeout,
        )
        .await
    }

    /// A session (`GET /session/{id}`).
    ///
    /// # Errors
    ///
    /// [`Error::Status`] 404 if there is none; as any call.
    pub async fn session(&self, id: &str) -> Result<Session, Error> {
        self.call(
            Method::GET,
            &format!("/session/{id}"),
            &[],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// Every session (`GET /session`).
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn sessions(&self) -> Result<Vec<Session>, Error> {
        self.call(Method::GET, "/session", &[], NO_BODY, self.inner.timeout)
            .await
    }

    /// The child sessions of a session (`GET /session/{id}/children`).
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn children(&self, id: &str) -> Result<Vec<Session>, Error> {
        self.call(
            Method::GET,
            &format!("/session/{id}/children"),
            &[],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// Deletes a session and its children (`DELETE /session/{id}`); returns the server's answer.
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn delete_session(&self, id: &str) -> Result<bool, Error> {
        self.call(
            Method::DELETE,
            &format!("/session/{id}"),
            &[],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// Stops what a session is doing (`POST /session/{id}/abort`).
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn abort(&self, id: &str) -> Result<bool, Error> {
        self.call(
            Method::POST,
            &format!("/session/{id}/abort"),
            &[],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// The files changed while the agent answered a user message (`GET /session/{id}/diff?messageID=`).
    /// OpenCode records changes only in projects under git, per user message; without a message id it
    /// answers the session summary's diff, which is empty until the session is summarized (see
    /// [`session_changes`](Self::session_changes) for every change of a session).
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn diff(&self, id: &str, message_id: Option<&str>) -> Result<Vec<FileDiff>, Error> {
        let query: Vec<(&str, &str)> = message_id.map(|m| ("messageID", m)).into_iter().collect();
        self.call(
            Method::GET,
            &format!("/session/{id}/diff"),
            &query,
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// Every file a session changed, over all its user messages (the last diff of each file wins), in the
    /// order they were first changed: what a reviewer reads.
    ///
    /// OpenCode computes a message's summary diff in the background once the step that changed the files
    /// ends, so right after `session.idle` a busy server may not have it yet: a caller that must see every
    /// change polls briefly, or reads the project's own version control.
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn session_changes(&self, id: &str) -> Result<Vec<FileDiff>, Error> {
        let mut changes: Vec<FileDiff> = Vec::new();
        for message in self.messages(id).await? {
            if !matches!(message.info, Message::User(_)) {
                continue;
            }
            for diff in self.diff(id, Some(message.info.id())).await? {
                match changes.iter_mut().find(|known| known.file == diff.file) {
                    Some(known) => *known = diff,
                    None => changes.push(diff),
                }
            }
        }
        Ok(changes)
    }

    /// Summarizes (compacts) a session's history with `model` (`POST /session/{id}/summarize`), so that
    /// later prompts start from the summary instead of the whole conversation.
    ///
    /// # Errors
    ///
    /// As any call; it waits for the model, so it has the prompt timeout.
    pub async fn summarize(&self, id: &str, model: &ModelRef) -> Result<bool, Error> {
        let body =
            serde_json::json!({ "providerID": model.provider_id, "modelID": model.model_id });
        self.call(
            Method::POST,
            &format!("/session/{id}/summarize"),
            &[],
            Some(&body),
            self.inner.prompt_timeout,
        )
        .await
    }

    /// Sends a prompt and waits for the agent's answer (`POST /session/{id}/message`).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after the prompt timeout; as any call.
    pub async fn prompt(&self, id: &str, prompt: &Prompt) -> Result<MessageWithParts, Error> {
        self.call(
            Method::POST,
            &format!("/session/{id}/message"),
            &[],
            Some(prompt),
            self.inner.prompt_timeout,
        )
        .await
    }

    /// Sends a prompt and returns at once (`POST /session/{id}/prompt_async`); follow the session through
    /// [`events`](Self::events) until it is idle.
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn prompt_async(&self, id: &str, prompt: &Prompt) -> Result<(), Error> {
        self.send(
            Method::POST,
            &format!("/session/{id}/prompt_async"),
            &[],
            Some(prompt),
            self.inner.timeout,
        )
        .await
        .map(drop)
    }

    /// Runs a command (such as a `.opencode/command/*.md` one) in a session (`POST /session/{id}/command`).
    ///
    /// # Errors
    ///
    /// As any call; it waits for the agent, so it has the prompt timeout.
    pub async fn command(
        &self,
        id: &str,
        command: &str,
        arguments: &str,
    ) -> Result<MessageWithParts, Error> {
        let body = serde_json::json!({ "command": command, "arguments": arguments });
        self.call(
            Method::POST,
            &format!("/session/{id}/command"),
            &[],
            Some(&body),
            self.inner.prompt_timeout,
        )
        .await
    }

    /// A session's messages with their parts, oldest first (`GET /session/{id}/message`).
    ///
    /// OpenCode 1.18.33 answers this with HTTP 400 for a session that was sent a prompt with a
    /// [`format`](crate::Prompt::format): see [`OutputFormat`](crate::OutputFormat) and
    /// [`recent_messages`](Self::recent_messages).
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn messages(&self, id: &str) -> Result<Vec<MessageWithParts>, Error> {
        self.call(
            Method::GET,
            &format!("/session/{id}/message"),
            &[],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// One message of a session with its parts (`GET /session/{id}/message/{messageID}`).
    ///
    /// # Errors
    ///
    /// [`Error::Status`] 404 if there is no such message; as any call.
    pub async fn message(&self, id: &str, message_id: &str) -> Result<MessageWithParts, Error> {
        self.call(
            Method::GET,
            &format!("/session/{id}/message/{message_id}"),
            &[],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// The newest `limit` messages of a session with their parts, oldest first
    /// (`GET /session/{id}/message?limit=`): the end of a long session without reading all of it, and the
    /// answer of a structured prompt, whose session OpenCode 1.18.33 can no longer list whole (see
    /// [`OutputFormat`](crate::OutputFormat)).
    ///
    /// ```no_run
    /// # async fn run(client: opencode_client::Client, session: &str) -> Result<(), opencode_client::Error> {
    /// if let Some(last) = client.recent_messages(session, 1).await?.pop() {
    ///     println!("{}", last.text());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn recent_messages(
        &self,
        id: &str,
        limit: usize,
    ) -> Result<Vec<MessageWithParts>, Error> {
        self.call(
            Method::GET,
            &format!("/session/{id}/message"),
            &[("limit", &limit.to_string())],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// The status of the sessions that are not idle (`GET /session/status`). An idle session is absent:
    /// absence is not completion.
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn session_status(&self) -> Result<BTreeMap<String, SessionStatus>, Error> {
        self.call(
            Method::GET,
            "/session/status",
            &[],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// Answers a permission request (`POST /permission/{id}/reply`).
    ///
    /// # Errors
    ///
    /// [`Error::Status`] 404 if the request is unknown or already answered; as any call.
    pub async fn reply_permission(
        &self,
        request_id: &str,
        reply: PermissionReply,
        message: Option<&str>,
    ) -> Result<bool, Error> {
        let mut body = serde_json::json!({ "reply": reply });
        if let Some(message) = message {
            body["message"] = Value::String(message.to_string());
        }
        self.call(
            Method::POST,
            &format!("/permission/{request_id}/reply"),
            &[],
            Some(&body),
            self.inner.timeout,
        )
        .await
    }

    /// Shows a toast in the OpenCode TUI (`POST /tui/show-toast`); the server answers `true` even when no TUI
    /// is attached.
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn show_toast(&self, toast: &Toast) -> Result<bool, Error> {
        self.call(
            Method::POST,
            "/tui/show-toast",
            &[],
            Some(toast),
            self.inner.timeout,
        )
        .await
    }

    /// Lines of the project's files that match a regular expression (`GET /find`; the server runs ripgrep).
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn find_text(&self, pattern: &str) -> Result<Vec<TextMatch>, Error> {
        self.call(
            Method::GET,
            "/find",
            &[("pattern", pattern)],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// Files of the project whose path matches `query` (`GET /find/file`).
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn find_files(&self, query: &str) -> Result<Vec<String>, Error> {
        self.call(
            Method::GET,
            "/find/file",
            &[("query", query)],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// A file's content (`GET /file/content`), `path` relative to the project.
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn file_content(&self, path: &str) -> Result<FileContent, Error> {
        self.call(
            Method::GET,
            "/file/content",
            &[("path", path)],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// Makes the server drop its project instance, so that it reads `.opencode/agent/*.md`,
    /// `.opencode/command/*.md` and the project config again on the next request (`POST /instance/dispose`).
    ///
    /// # Errors
    ///
    /// As any call.
    pub async fn dispose_instance(&self) -> Result<bool, Error> {
        self.call(
            Method::POST,
            "/instance/dispose",
            &[],
            NO_BODY,
            self.inner.timeout,
        )
        .await
    }

    /// Opens the server's event stream (`GET /event`). It reconnects by itself after a dropped connection
    /// and says so, when it drops ([`StreamItem::Dropped`](crate::StreamItem::Dropped)) and when it is back
    /// ([`StreamItem::Reconnected`](crate::StreamItem::Reconnected)), since events sent while it was down
    /// are lost.
    ///
    /// # Errors
    ///
    /// The first connection's error (nothing listening, a wrong password, not OpenCode): a stream that never
    /// connected is not retried.
    pub async fn events(&self) -> Result<EventStream, Error> {
        EventStream::open(self.clone(), self.inner.stream.clone()).await
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        _ => "HTTP",
    }
}

/// Decodes a JSON body, naming the JSON path where it fails.
pub(crate) fn decode<T: DeserializeOwned>(
    method: &'static str,
    path: &str,
    bytes: &[u8],
) -> Result<T, Error> {
    // The plain decoder first: tracking the JSON path costs on every response, and is only needed to say
    // where one that does not decode went wrong (decoding it again gives the same error, with its path).
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| Error::Decode {
        method,
        path: path.to_string(),
        json_path: error.path().to_string(),
        message: error.inner().to_string(),
        body: excerpt(bytes),
    })
}

/// The Basic `Authorization` header for `username` and `password`, as reqwest encodes it, built once.
fn basic_auth_header(
    http: &reqwest::Client,
    base: &Url,
    username: &str,
    password: &str,
) -> Result<reqwest::header::HeaderValue, Error> {
    let request = http
        .get(base.clone())
        .basic_auth(username, Some(password))
        .build()
        .map_err(|source| Error::Transport {
            method: "BUILD",
            path: String::new(),
            source,
        })?;
    Ok(request
        .headers()
        .get(reqwest::header::AUTHORIZATION)
        .cloned()
        .expect("basic_auth sets the Authorization header"))
}
