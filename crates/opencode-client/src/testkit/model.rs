//! `ScriptedModel`: an OpenAI-compatible chat-completions server that plays scripted turns.
//!
//! OpenCode talks to it through its `@ai-sdk/openai-compatible` provider (`options.baseURL` =
//! [`ScriptedModel::base_url`]). The wire format follows OpenAI's: `data: {json}\n\n` events of
//! `chat.completion.chunk` objects, the first delta carrying `role: "assistant"`, tool calls as indexed
//! `tool_calls` deltas whose JSON `arguments` arrive in pieces, a last chunk with `finish_reason` and `usage`,
//! then `data: [DONE]`.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use tokio::sync::watch;

/// How often an [`Reply::Endless`] stream sends an empty delta.
const ENDLESS_INTERVAL: Duration = Duration::from_millis(100);

/// How long a cut stream waits before dropping the connection. The server only flushes what it has written
/// when the body has nothing ready; dropping at once would discard the chunks the cut was meant to deliver.
const FLUSH_PAUSE: Duration = Duration::from_millis(50);

/// Text deltas are at least this long (in bytes) unless the text ends, so a sentence arrives in several.
const MIN_TEXT_PIECE: usize = 12;

/// Text deltas are at most this long (in bytes), so a long word still arrives in several.
const MAX_TEXT_PIECE: usize = 48;

/// Tool-call arguments arrive in at most about this many deltas. The AI SDK re-parses the accumulated
/// arguments after every delta, so a large `content` cut into tiny pieces would cost it quadratic time.
const ARGUMENT_DELTAS: usize = 16;

/// Requests larger than this are refused (OpenCode's long conversations are a few MB at most).
const MAX_REQUEST_BYTES: usize = 256 * 1024 * 1024;

/// The rules a [`ScriptedModel`] answers with: tried in order, the first that matches (and has uses left)
/// answers; when none does, the fallback answers.
///
/// OpenCode 1.18 asks for a session title on a session's first prompt, at the same time as the real turn:
/// a request with a title-generator system prompt, the user's text as its last user message, and no tools.
/// It matches [`Match::LastUserContains`] like the turn itself, so put a rule for it first
/// (`Rule::when(Match::HasTools(false))`) or add `Match::HasTools(true)` to the others; otherwise it may
/// take a rule's first reply or one of its uses, depending on which request arrives first.
///
/// ```
/// use opencode_client::testkit::{Match, Reply, Rule, Script};
/// use serde_json::json;
///
/// let script = Script::new()
///     // Title requests offer no tools.
///     .rule(Rule::when(Match::HasTools(false)).reply(Reply::text("A title")))
///     // The model is called back with the tool's result: finish the turn.
///     .rule(Rule::when(Match::LastIsToolResult).reply(Reply::text("Done.")))
///     // The first request of a Worker writes a file.
///     .rule(
///         Rule::when(Match::SystemContains("ROLE: Worker".into()))
///             .reply(Reply::tool("write", json!({"filePath": "/tmp/x/hello.txt", "content": "hi"}))),
///     )
///     .fallback(Reply::text("Nothing scripted for this."));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Script {
    rules: Vec<Rule>,
    fallback: Reply,
}

impl Script {
    /// A script without rules: every request gets the fallback (by default `Reply::text("OK")`).
    pub fn new() -> Script {
        Script {
            rules: Vec::new(),
            fallback: Reply::text("OK"),
        }
    }

    /// Adds a rule after the ones already there.
    pub fn rule(mut self, rule: Rule) -> Script {
        self.rules.push(rule);
        self
    }

    /// The reply when no rule matches (default `Reply::text("OK")`).
    pub fn fallback(mut self, reply: Reply) -> Script {
        self.fallback = reply;
        self
    }
}

impl Default for Script {
    fn default() -> Script {
        Script::new()
    }
}

/// One rule of a [`Script`]: when its [`Match`] holds, it answers with its reply (or the next of its
/// replies), at most [`times`](Rule::times) times.
///
/// A rule's uses are counted from the moment its script is installed ([`ScriptedModel::start`] or
/// [`ScriptedModel::set_script`]); concurrent requests are counted in the order the model takes them.
#[derive(Clone, Debug)]
#[must_use]
pub struct Rule {
    matcher: Match,
    replies: Vec<Reply>,
    limit: Option<usize>,
}

impl Rule {
    /// A rule that applies when `matcher` holds. Without a reply it answers with the script's fallback.
    pub fn when(matcher: Match) -> Rule {
        Rule {
            matcher,
            replies: Vec::new(),
            limit: None,
        }
    }

    /// Answers every match with `reply`.
    pub fn reply(mut self, reply: Reply) -> Rule {
        self.replies = vec![reply];
        self
    }

    /// Answers the first match with the first reply, the second with the second, and so on; once they run
    /// out the last one repeats (add [`times`](Rule::times) to stop matching instead).
    pub fn replies(mut self, replies: Vec<Reply>) -> Rule {
        self.replies = replies;
        self
    }

    /// Stops matching after `n` uses, so later requests fall through to the following rules.
    pub fn times(mut self, n: usize) -> Rule {
        self.limit = Some(n);
        self
    }

    fn has_uses_left(&self, used: usize) -> bool {
        self.limit.is_none_or(|limit| used < limit)
    }

    /// The reply for the match that follows `used` earlier ones.
    fn reply_after(&self, used: usize) -> Option<Reply> {
        self.replies
            .get(used.min(self.replies.len().saturating_sub(1)))
            .cloned()
    }
}

/// A condition on a [`ModelRequest`] that selects a [`Rule`].
#[derive(Clone)]
pub enum Match {
    /// Every request.
    Always,
    /// Some system message contains the text (OpenCode puts the agent's prompt, and so any agent marker, in
    /// system messages).
    SystemContains(String),
    /// The last user message's text contains it (OpenCode's title requests end with the user's text too:
    /// see [`Script`]).
    LastUserContains(String),
    /// Some user message's text contains it.
    AnyUserContains(String),
    /// The last message is a tool result: the model is being called back after a tool ran.
    LastIsToolResult,
    /// The most recent tool result (the last message with role `tool`, wherever it is) contains the text.
    ToolResultContains(String),
    /// Whether the request offers tools (OpenCode's title-generation requests offer none).
    HasTools(bool),
    /// The request asks for structured output: it offers OpenCode's [`STRUCTURED_OUTPUT_TOOL`] (what a
    /// prompt with a JSON schema format makes OpenCode send). Answer it with [`Reply::structured`].
    AsksForStructuredOutput,
    /// All of these hold (true when empty).
    All(Vec<Match>),
    /// One of these holds (false when empty).
    Any(Vec<Match>),
    /// This does not hold.
    Not(Box<Match>),
    /// A function of the request. It runs on the model's server tasks, outside its locks.
    Custom(Arc<dyn Fn(&ModelRequest) -> bool + Send + Sync>),
}

impl Match {
    /// Whether the request satisfies this condition.
    pub fn matches(&self, request: &ModelRequest) -> bool {
        match self {
            Match::Always => true,
            Match::SystemContains(text) => request.system.contains(text.as_str()),
            Match::LastUserContains(text) => request.last_user.contains(text.as_str()),
            Match::AnyUserContains(text) => request
                .messages_with_role("user")
                .any(|message| message_text(message).contains(text.as_str())),
            Match::LastIsToolResult => request.is_tool_callback(),
            Match::ToolResultContains(text) => request
                .last_tool_result()
                .is_some_and(|result| result.contains(text.as_str())),
            Match::HasTools(offered) => request.tools.is_empty() != *offered,
            Match::AsksForStructuredOutput => request.asks_for_structured_output(),
            Match::All(matchers) => matchers.iter().all(|matcher| matcher.matches(request)),
            Match::Any(matchers) => matchers.iter().any(|matcher| matcher.matches(request)),
            Match::Not(matcher) => !matcher.matches(request),
            Match::Custom(function) => function(request),
        }
    }
}

impl fmt::Debug for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Always => f.write_str("Always"),
            Match::SystemContains(text) => f.debug_tuple("SystemContains").field(text).finish(),
            Match::LastUserContains(text) => f.debug_tuple("LastUserContains").field(text).finish(),
            Match::AnyUserContains(text) => f.debug_tuple("AnyUserContains").field(text).finish(),
            Match::LastIsToolResult => f.write_str("LastIsToolResult"),
            Match::ToolResultContains(text) => {
                f.debug_tuple("ToolResultContains").field(text).finish()
            }
            Match::HasTools(offered) => f.debug_tuple("HasTools").field(offered).finish(),
            Match::AsksForStructuredOutput => f.write_str("AsksForStructuredOutput"),
            Match::All(matchers) => f.debug_tuple("All").field(matchers).finish(),
            Match::Any(matchers) => f.debug_tuple("Any").field(matchers).finish(),
            Match::Not(matcher) => f.debug_tuple("Not").field(matcher).finish(),
            Match::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// What the model answers.
///
/// The wrappers ([`Delay`](Reply::Delay), [`CutAfter`](Reply::CutAfter)) nest: `Delay(1 s, CutAfter { 3,
/// text })` waits a second, then sends three chunks of the text and drops the connection.
#[derive(Clone, Debug)]
pub enum Reply {
    /// An assistant message: streamed as several content deltas, then `finish_reason: "stop"`.
    Text(String),
    /// Tool calls: streamed as `tool_calls` deltas (ids `call_<n>`, unique for the model's lifetime, the
    /// arguments' JSON in pieces), then `finish_reason: "tool_calls"`.
    ToolCalls(Vec<ToolCall>),
    /// Text, then tool calls, in one message (`finish_reason: "tool_calls"`).
    TextThenToolCalls(String, Vec<ToolCall>),
    /// An HTTP error instead of a completion (429, 500, …). The body is sent as given, as JSON when it parses
    /// as JSON; [`Reply::http_error`] builds one in OpenAI's error format.
    Status {
        /// The HTTP status code (an invalid one becomes 500).
        status: u16,
        /// The response body.
        body: String,
    },
    /// Waits, then answers with the inner reply. The request is logged before the wait.
    Delay(Duration, Box<Reply>),
    /// Sends the first `chunks` server-sent events of the inner reply, then drops the connection without
    /// ending the stream (no `[DONE]`, no terminating chunk: the client sees a broken body). Without
    /// streaming, the JSON body is cut after `chunks × 16` bytes (and never sent whole).
    CutAfter {
        /// How many events (`data:` lines) are sent before the cut.
        chunks: usize,
        /// The reply that is cut.
        reply: Box<Reply>,
    },
    /// A stream that never finishes: after the role chunk it sends an empty delta every 100 ms until the
    /// client goes away or the model is dropped. Without streaming: a `200 OK` whose body is a space every
    /// 100 ms.
    Endless,
    /// The inner reply, reporting this token usage in its `usage` object instead of the model's estimate
    /// (about four bytes a token): what OpenCode turns into the assistant message's `tokens`, and with a
    /// price ([`OpencodeServerBuilder::model_price`](super::OpencodeServerBuilder::model_price)) its `cost`.
    /// [`Reply::with_usage`] builds one.
    WithUsage(Usage, Box<Reply>),
}

impl Reply {
    /// A text answer.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply::Text(text.into())
    }

    /// A single tool call.
    pub fn tool(name: &str, arguments: Value) -> Reply {
        Reply::ToolCalls(vec![ToolCall::new(name, arguments)])
    }

    /// An HTTP error with an OpenAI-style body: `{"error": {"message", "type", "code"}}`.
    pub fn http_error(status: u16, message: impl Into<String>) -> Reply {
        let kind = match status {
            429 => "rate_limit_exceeded",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        Reply::Status {
            status,
            body: json!({"error": {"message": message.into(), "type": kind, "code": status}})
                .to_string(),
        }
    }

    /// This reply after a wait.
    pub fn delayed(self, delay: Duration) -> Reply {
        Reply::Delay(delay, Box::new(self))
    }

    /// This reply, cut after `chunks` events.
    pub fn cut_after(self, chunks: usize) -> Reply {
        Reply::CutAfter {
            chunks,
            reply: Box::new(self),
        }
    }

    /// This reply, reporting `usage` in its last chunk.
    ///
    /// ```
    /// use opencode_client::testkit::{Reply, Usage};
    ///
    /// let reply = Reply::text("Done.").with_usage(Usage::new(1200, 80).cached(300).reasoning(20));
    /// # let _ = reply;
    /// ```
    pub fn with_usage(self, usage: Usage) -> Reply {
        Reply::WithUsage(usage, Box::new(self))
    }

    /// The structured output of a prompt that asked for one (a JSON schema [`OutputFormat`]), given the way
    /// OpenCode 1.18.33 expects it: a call of the tool it adds for the purpose
    /// ([`STRUCTURED_OUTPUT_TOOL`]) with `value` as its arguments. OpenCode ends the turn on that call and
    /// puts `value` in the assistant message's `structured`, without checking it against the schema.
    ///
    /// [`OutputFormat`]: crate::OutputFormat
    ///
    /// ```
    /// use opencode_client::testkit::{Match, Reply, Rule, Script};
    /// use serde_json::json;
    ///
    /// let script = Script::new()
    ///     .rule(Rule::when(Match::AsksForStructuredOutput).reply(Reply::structured(json!({"ok": true}))));
    /// # let _ = script;
    /// ```
    pub fn structured(value: Value) -> Reply {
        Reply::tool(STRUCTURED_OUTPUT_TOOL, value)
    }
}

/// The tool OpenCode 1.18.33 adds to a request whose prompt asked for structured output (a JSON schema
/// [`OutputFormat`](crate::OutputFormat)): its parameters are the schema, and the model gives its answer as
/// the call's arguments. OpenCode also sets `tool_choice: "required"` and tells the model in the system
/// prompt to call it.
pub const STRUCTURED_OUTPUT_TOOL: &str = "StructuredOutput";

/// Token counts a scripted reply reports ([`Reply::with_usage`]), in OpenAI's terms: the prompt's tokens
/// (cached ones included), the completion's (reasoning included), and of those the cached and the reasoning
/// ones. They are sent as the last chunk's `usage`: `prompt_tokens`, `completion_tokens`, `total_tokens`,
/// `prompt_tokens_details.cached_tokens` and `completion_tokens_details.reasoning_tokens`.
///
/// OpenCode 1.18.33 records them in the assistant message's [`Tokens`](crate::Tokens) as: `input` = prompt −
/// cached, `output` = completion − reasoning, `reasoning`, `cache.read` = cached, `cache.write` = 0 (the
/// OpenAI format has no cache writes), `total` = prompt + completion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Usage {
    /// Tokens of the prompt, cached ones included.
    pub prompt_tokens: u64,
    /// Tokens generated, reasoning included.
    pub completion_tokens: u64,
    /// Of the prompt's tokens, those read from the provider's cache.
    pub cached_tokens: u64,
    /// Of the completion's tokens, those spent reasoning.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// `prompt` tokens in, `completion` tokens out, none cached or reasoning.
    pub fn new(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            ..Usage::default()
        }
    }

    /// With `tokens` of the prompt read from the cache.
    #[must_use]
    pub fn cached(mut self, tokens: u64) -> Usage {
        self.cached_tokens = tokens;
        self
    }

    /// With `tokens` of the completion spent reasoning.
    #[must_use]
    pub fn reasoning(mut self, tokens: u64) -> Usage {
        self.reasoning_tokens = tokens;
        self
    }

    /// The total: prompt and completion tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// The [`Tokens`](crate::Tokens) OpenCode 1.18.33 records in the assistant message for this usage (see
    /// [`Usage`]); with a [`ModelPrice`](super::ModelPrice), its
    /// [`cost_of`](super::ModelPrice::cost_of) is the message's `cost`.
    ///
    /// ```
    /// use opencode_client::testkit::{ModelPrice, Usage};
    ///
    /// let tokens = Usage::new(1000, 300).cached(200).reasoning(50).as_recorded();
    /// assert_eq!((tokens.input, tokens.output, tokens.reasoning, tokens.cache.read), (800, 250, 50, 200));
    /// assert_eq!(tokens.sum(), 1300);
    /// let cost = ModelPrice::new(3.0, 15.0).cache(0.3, 3.75).cost_of(&tokens);
    /// assert!((cost - 0.00696).abs() < 1e-12);
    /// ```
    pub fn as_recorded(&self) -> crate::Tokens {
        crate::Tokens {
            input: self.prompt_tokens.saturating_sub(self.cached_tokens),
            output: self.completion_tokens.saturating_sub(self.reasoning_tokens),
            reasoning: self.reasoning_tokens,
            cache: crate::CacheTokens {
                read: self.cached_tokens,
                write: 0,
            },
            total: Some(self.total_tokens()),
        }
    }

    /// The `usage` object of a chat completion.
    fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens(),
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        })
    }
}

/// One tool call in a [`Reply`].
#[derive(Clone, Debug)]
pub struct ToolCall {
    /// The tool's name as OpenCode offers it (`write`, `bash`, `read`, `task`, …).
    pub name: String,
    /// The arguments (sent as the JSON string OpenAI's format wants).
    pub arguments: Value,
}

impl ToolCall {
    /// A call of `name` with `arguments`.
    pub fn new(name: impl Into<String>, arguments: Value) -> ToolCall {
        ToolCall {
            name: name.into(),
            arguments,
        }
    }
}

/// A chat-completions request as the model received it, with the parts rules look at already extracted.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ModelRequest {
    /// The requested model (any name is accepted).
    pub model: String,
    /// Whether a stream was asked for (OpenCode always streams).
    pub stream: bool,
    /// The text of every system message, joined with `"\n"`.
    pub system: String,
    /// The last user message's text (`""` if none).
    pub last_user: String,
    /// The messages as received.
    pub messages: Vec<Value>,
    /// The offered tools' names, in the order offered.
    pub tools: Vec<String>,
    /// When the request arrived.
    pub at: Instant,
    /// The whole request body as received (tool schemas, `tool_choice`, `max_tokens`, …; its `messages` are
    /// also in [`messages`](ModelRequest::messages)).
    pub body: Value,
    /// The token usage the answer reported, once the chunk carrying it has been sent (the whole body, when
    /// not streaming): the reply's [`Usage`] ([`Reply::with_usage`]) or the model's estimate. `None` while
    /// the answer is still on its way and for answers that never report one: an HTTP error, a cut or
    /// endless stream, a client that went away first. What the client was told it used is the sum of these.
    pub usage: Option<Usage>,
}

impl ModelRequest {
    /// Extracts what the rules look at from a request body; missing fields read as empty.
    pub fn from_body(body: &Value, at: Instant) -> ModelRequest {
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let system = messages
            .iter()
            .filter(|message| matches!(role_of(message), "system" | "developer"))
            .map(message_text)
            .collect::<Vec<_>>()
            .join("\n");
        let last_user = messages
            .iter()
            .rev()
            .find(|message| role_of(message) == "user")
            .map(message_text)
            .unwrap_or_default();
        let tools = body
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|tool| {
                        tool.pointer("/function/name")
                            .or_else(|| tool.get("name"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        ModelRequest {
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            system,
            last_user,
            messages,
            tools,
            at,
            body: body.clone(),
            usage: None,
        }
    }

    /// The messages' roles in order (`["system", "user", "assistant", "tool", …]`).
    pub fn roles(&self) -> Vec<&str> {
        self.messages.iter().map(role_of).collect()
    }

    /// Whether the last message is a tool result (the model is called back after a tool ran).
    pub fn is_tool_callback(&self) -> bool {
        self.messages
            .last()
            .is_some_and(|message| role_of(message) == "tool")
    }

    /// The text of the most recent tool result (the last message with role `tool`), if any.
    pub fn last_tool_result(&self) -> Option<String> {
        self.messages_with_role("tool").last().map(message_text)
    }

    /// Whether the request asks for structured output: it offers [`STRUCTURED_OUTPUT_TOOL`], as OpenCode
    /// 1.18.33 does for a prompt with a JSON schema format.
    pub fn asks_for_structured_output(&self) -> bool {
        self.tools.iter().any(|tool| tool == STRUCTURED_OUTPUT_TOOL)
    }

    /// How many assistant messages the conversation already holds (0 on a conversation's first turn).
    pub fn assistant_turns(&self) -> usize {
        self.messages_with_role("assistant").count()
    }

    /// The text of a message: its `content` string, or its content parts' texts joined with `"\n"`.
    pub fn message_text(message: &Value) -> String {
        message_text(message)
    }

    fn messages_with_role<'a>(
        &'a self,
        role: &'a str,
    ) -> impl DoubleEndedIterator<Item = &'a Value> + 'a {
        self.messages
            .iter()
            .filter(move |message| role_of(message) == role)
    }
}

fn role_of(message: &Value) -> &str {
    message
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| match part {
                Value::String(text) => Some(text.as_str()),
                part => part.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An OpenAI-compatible chat-completions server on 127.0.0.1 that answers with a [`Script`].
///
/// It serves `POST /v1/chat/completions` (streaming and not) and `GET /v1/models` (also without the `/v1`
/// prefix), logs every completion request before answering it ([`requests`](ScriptedModel::requests)),
/// accepts any model name and echoes it. Dropping it shuts the server down: streams in progress end,
/// waits are cut short, and the port is released.
///
/// ```
/// use opencode_client::testkit::{Reply, Script, ScriptedModel};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let model = ScriptedModel::start(Script::new().fallback(Reply::text("Hello"))).await?;
/// // Point OpenCode's `@ai-sdk/openai-compatible` provider at it:
/// let config = serde_json::json!({"options": {"baseURL": model.base_url(), "apiKey": "unused"}});
/// # let _ = config;
/// assert!(model.requests().is_empty());
/// # Ok(())
/// # }
/// ```
pub struct ScriptedModel {
    shared: Arc<Shared>,
    address: SocketAddr,
    /// Dropping it tells the server, its connections and their streams to stop.
    _shutdown: watch::Sender<()>,
}

impl ScriptedModel {
    /// The model name [`GET /v1/models`](ScriptedModel) lists besides the names requests have used.
    pub const DEFAULT_MODEL_ID: &'static str = "scripted-model";

    /// Starts the server on an ephemeral port of 127.0.0.1, on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// The listening socket could not be opened.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start(script: Script) -> io::Result<ScriptedModel> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (shutdown, shutdown_signal) = watch::channel(());
        let shared = Arc::new(Shared::new(script, shutdown_signal.clone()));
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/chat/completions", post(completions))
            .route("/v1/models", get(models))
            .route("/models", get(models))
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(Arc::clone(&shared));
        // Small events must leave at once, not wait for Nagle's algorithm to batch them.
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let mut signal = shutdown_signal;
        tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                // Resolves with an error when the sender is dropped, which is the only signal ever given.
                let _ = signal.changed().await;
            });
            if let Err(error) = server.await {
                tracing::warn!(%error, "scripted model server stopped");
            }
        });
        tracing::debug!(%address, "scripted model listening");
        Ok(ScriptedModel {
            shared,
            address,
            _shutdown: shutdown,
        })
    }

    /// The base URL for an OpenAI-compatible provider: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Every completion request so far, in arrival order.
    pub fn requests(&self) -> Vec<ModelRequest> {
        lock(&self.shared.log).clone()
    }

    /// Waits until at least `count` requests have arrived and returns them all, or `None` after `timeout`.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Option<Vec<ModelRequest>> {
        let mut arrived = self.shared.arrived.subscribe();
        tokio::time::timeout(timeout, arrived.wait_for(|&arrived| arrived >= count))
            .await
            .ok()?
            .ok()?;
        Some(self.requests())
    }

    /// Replaces the script; its rules' use counts start from zero. Requests already being answered keep
    /// their replies.
    pub fn set_script(&self, script: Script) {
        let mut rules = lock(&self.shared.rules);
        *rules = InstalledScript::new(Arc::new(script), rules.generation + 1);
    }
}

impl fmt::Debug for ScriptedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedModel")
            .field("base_url", &self.base_url())
            .field("requests", &lock(&self.shared.log).len())
            .finish_non_exhaustive()
    }
}

/// What the server's handlers share with the [`ScriptedModel`].
struct Shared {
    rules: Mutex<InstalledScript>,
    log: Mutex<Vec<ModelRequest>>,
    /// How many requests have been logged, for [`ScriptedModel::wait_for_requests`].
    arrived: watch::Sender<usize>,
    next_call: AtomicU64,
    next_completion: AtomicU64,
    /// Closed when the [`ScriptedModel`] is dropped.
    shutdown: watch::Receiver<()>,
}

/// A script with the number of times each of its rules has answered.
struct InstalledScript {
    script: Arc<Script>,
    /// Tells a request that chose a rule from an older script to choose again.
    generation: u64,
    uses: Vec<usize>,
}

impl InstalledScript {
    fn new(script: Arc<Script>, generation: u64) -> InstalledScript {
        let uses = vec![0; script.rules.len()];
        InstalledScript {
            script,
            generation,
            uses,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking `Custom` matcher runs outside the locks, so a poisoned lock still holds consistent data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn new(script: Script, shutdown: watch::Receiver<()>) -> Shared {
        Shared {
            rules: Mutex::new(InstalledScript::new(Arc::new(script), 0)),
            log: Mutex::new(Vec::new()),
            arrived: watch::Sender::new(0),
            next_call: AtomicU64::new(1),
            next_completion: AtomicU64::new(1),
            shutdown,
        }
    }

    /// Logs a request; returns its place in the log.
    fn record(&self, request: ModelRequest) -> usize {
        let count = {
            let mut log = lock(&self.log);
            log.push(request);
            log.len()
        };
        self.arrived.send_replace(count);
        count - 1
    }

    /// Notes the usage the answer to the `index`th request reported.
    fn reported(&self, index: usize, usage: Usage) {
        if let Some(request) = lock(&self.log).get_mut(index) {
            request.usage = Some(usage);
        }
    }

    /// The reply for `request`: the first rule that matches and has uses left, else the fallback.
    ///
    /// Matchers run outside the lock (a `Custom` one may call back into the model); a rule is then claimed
    /// under the lock, and if the script changed or the rule ran out of uses meanwhile, the choice is redone.
    fn choose(&self, request: &ModelRequest) -> Reply {
        loop {
            let (script, generation, uses) = {
                let rules = lock(&self.rules);
                (
                    Arc::clone(&rules.script),
                    rules.generation,
                    rules.uses.clone(),
                )
            };
            let chosen = script.rules.iter().zip(&uses).position(|(rule, &used)| {
                rule.has_uses_left(used) && rule.matcher.matches(request)
            });
            let mut rules = lock(&self.rules);
            if rules.generation != generation {
                continue;
            }
            let Some(index) = chosen else {
                // Uses only grow, so no rule skipped above can have become available.
                return script.fallback.clone();
            };
            let rule = &script.rules[index];
            let used = rules.uses[index];
            if !rule.has_uses_left(used) {
                continue;
            }
            rules.uses[index] = used + 1;
            return rule
                .reply_after(used)
                .unwrap_or_else(|| script.fallback.clone());
        }
    }
}

/// A reply with its wrappers resolved.
struct Plan {
    delay: Duration,
    cut_after: Option<usize>,
    /// The usage to report, instead of the estimate.
    usage: Option<Usage>,
    answer: Answer,
}

enum Answer {
    Turn { text: String, calls: Vec<ToolCall> },
    Status { status: u16, body: String },
    Endless,
}

impl Plan {
    fn of(reply: Reply) -> Plan {
        match reply {
            Reply::Text(text) => Plan::answer(Answer::Turn {
                text,
                calls: Vec::new(),
            }),
            Reply::ToolCalls(calls) => Plan::answer(Answer::Turn {
                text: String::new(),
                calls,
            }),
            Reply::TextThenToolCalls(text, calls) => Plan::answer(Answer::Turn { text, calls }),
            Reply::Status { status, body } => Plan::answer(Answer::Status { status, body }),
            Reply::Endless => Plan::answer(Answer::Endless),
            Reply::WithUsage(usage, reply) => {
                let mut plan = Plan::of(*reply);
                // The outermost wrapper wins, as with the other wrappers' settings.
                plan.usage = Some(usage);
                plan
            }
            Reply::Delay(delay, reply) => {
                let mut plan = Plan::of(*reply);
                plan.delay = plan.delay.saturating_add(delay);
                plan
            }
            Reply::CutAfter { chunks, reply } => {
                let mut plan = Plan::of(*reply);
                plan.cut_after = Some(plan.cut_after.map_or(chunks, |inner| inner.min(chunks)));
                plan
            }
        }
    }

    fn answer(answer: Answer) -> Plan {
        Plan {
            delay: Duration::ZERO,
            cut_after: None,
            usage: None,
            answer,
        }
    }
}

async fn completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let at = Instant::now();
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "the request body is not a JSON object",
            );
        }
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("the request body is not JSON: {error}"),
            );
        }
    };
    let request = ModelRequest::from_body(&value, at);
    let reply = shared.choose(&request);
    tracing::debug!(
        model = %request.model,
        roles = ?request.roles(),
        last_user = %excerpt(&request.last_user),
        ?reply,
        "scripted model request"
    );
    let stream = request.stream;
    let meta = Meta {
        id: format!(
            "chatcmpl-{}",
            shared.next_completion.fetch_add(1, Ordering::Relaxed)
        ),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs()),
        model: request.model.clone(),
        prompt_tokens: estimate_tokens(body.len()),
        usage: None,
    };
    let index = shared.record(request);
    let plan = Plan::of(reply);
    let meta = Meta {
        usage: plan.usage,
        ..meta
    };
    let mut shutdown = shared.shutdown.clone();
    if !plan.delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(plan.delay) => {}
            _ = shutdown.changed() => {
                return error_response(StatusCode::SERVICE_UNAVAILABLE, "the scripted model is shutting down");
            }
        }
    }
    let events = match plan.answer {
        Answer::Status { status, body } => return status_response(status, body),
        Answer::Turn { text, calls } => {
            let calls: Vec<(String, ToolCall)> = calls
                .into_iter()
                .map(|call| {
                    (
                        format!("call_{}", shared.next_call.fetch_add(1, Ordering::Relaxed)),
                        call,
                    )
                })
                .collect();
            if !stream {
                let (response, usage) =
                    whole_response(&meta, &text, &calls, plan.cut_after, shutdown);
                if let Some(usage) = usage {
                    shared.reported(index, usage);
                }
                return response;
            }
            let (ready, usage) = turn_events(&meta, &text, &calls);
            Events {
                ready,
                heartbeat: None,
                report: Some(Report {
                    shared: Arc::clone(&shared),
                    index,
                    event: usage.0,
                    usage: usage.1,
                }),
            }
        }
        Answer::Endless if !stream => {
            return body_response(
                "application/json",
                Events {
                    ready: Vec::new(),
                    heartbeat: Some(Bytes::from_static(b" ")),
                    report: None,
                },
                plan.cut_after,
                shutdown,
            );
        }
        Answer::Endless => Events {
            ready: vec![chunk(&meta, json!({"role": "assistant"}), None, None)],
            heartbeat: Some(chunk(&meta, json!({}), None, None)),
            report: None,
        },
    };
    body_response("text/event-stream", events, plan.cut_after, shutdown)
}

async fn models(State(shared): State<Arc<Shared>>) -> Response {
    let mut names = vec![ScriptedModel::DEFAULT_MODEL_ID.to_string()];
    for request in lock(&shared.log).iter() {
        if !request.model.is_empty() && !names.contains(&request.model) {
            names.push(request.model.clone());
        }
    }
    let data: Vec<Value> = names
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "scripted"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// What every chunk of one completion repeats.
struct Meta {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u64,
    /// The usage the reply reports, instead of the estimate.
    usage: Option<Usage>,
}

impl Meta {
    /// The usage the answer reports, and its `usage` object: the reply's, else the estimate (whose object
    /// has no token details, as an OpenAI-compatible server that does not know them sends it).
    fn usage(&self, completion_bytes: usize) -> (Usage, Value) {
        match self.usage {
            Some(usage) => (usage, usage.to_json()),
            None => {
                let usage = Usage::new(self.prompt_tokens, estimate_tokens(completion_bytes));
                let object = json!({
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens(),
                });
                (usage, object)
            }
        }
    }
}

/// A stable stand-in for a tokenizer: about four bytes a token, at least one.
fn estimate_tokens(bytes: usize) -> u64 {
    u64::try_from(bytes.div_ceil(4).max(1)).unwrap_or(u64::MAX)
}

/// One server-sent event holding a `chat.completion.chunk`.
fn chunk(meta: &Meta, delta: Value, finish_reason: Option<&str>, usage: Option<Value>) -> Bytes {
    let mut object = json!({
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    });
    if let Some(usage) = usage {
        object["usage"] = usage;
    }
    Bytes::from(format!("data: {object}\n\n"))
}

/// The events of a streamed turn: text deltas, tool-call deltas, the finishing chunk with usage, `[DONE]`;
/// with the finishing chunk's place among them and the usage it reports.
fn turn_events(
    meta: &Meta,
    text: &str,
    calls: &[(String, ToolCall)],
) -> (Vec<Bytes>, (usize, Usage)) {
    let mut deltas: Vec<Value> = text_pieces(text)
        .into_iter()
        .map(|piece| json!({"content": piece}))
        .collect();
    let mut completion_bytes = text.len();
    for (index, (id, call)) in calls.iter().enumerate() {
        let arguments = call.arguments.to_string();
        completion_bytes += call.name.len() + arguments.len();
        // Like OpenAI: the first delta names the call, the following ones carry the arguments.
        deltas.push(json!({"tool_calls": [{
            "index": index,
            "id": id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }]}));
        let piece_length = (arguments.len().div_ceil(ARGUMENT_DELTAS)).max(32);
        for piece in split_at_char_boundaries(&arguments, piece_length) {
            deltas
                .push(json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}));
        }
    }
    match deltas.first_mut() {
        Some(first) => first["role"] = json!("assistant"),
        None => deltas.push(json!({"role": "assistant"})),
    }
    let finish_reason = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let mut events: Vec<Bytes> = deltas
        .into_iter()
        .map(|delta| chunk(meta, delta, None, None))
        .collect();
    let (usage, object) = meta.usage(completion_bytes);
    let finishing = events.len();
    events.push(chunk(meta, json!({}), Some(finish_reason), Some(object)));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    (events, (finishing, usage))
}

/// Splits text into deltas at whitespace, at least [`MIN_TEXT_PIECE`] and at most [`MAX_TEXT_PIECE`] bytes.
fn text_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for word in text.split_inclusive(char::is_whitespace) {
        end += word.len();
        if end - start >= MIN_TEXT_PIECE {
            pieces.extend(split_at_char_boundaries(&text[start..end], MAX_TEXT_PIECE));
            start = end;
        }
    }
    pieces.extend(split_at_char_boundaries(&text[start..], MAX_TEXT_PIECE));
    pieces
}

/// Splits `text` into pieces of at most `max` bytes (more for a single wider character), whole characters
/// each.
fn split_at_char_boundaries(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// A non-streaming `chat.completion`, with the usage it reports when it is sent whole.
fn whole_response(
    meta: &Meta,
    text: &str,
    calls: &[(String, ToolCall)],
    cut_after: Option<usize>,
    shutdown: watch::Receiver<()>,
) -> (Response, Option<Usage>) {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|(id, call)| {
            json!({
                "id": id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments.to_string()},
            })
        })
        .collect();
    let completion_bytes = text.len()
        + calls
            .iter()
            .map(|(_, call)| call.name.len() + call.arguments.to_string().len())
            .sum::<usize>();
    let (usage, object) = meta.usage(completion_bytes);
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        json!(text)
    }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = json!(tool_calls);
    }
    let body = json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" },
        }],
        "usage": object,
    })
    .to_string();
    let Some(chunks) = cut_after else {
        return (
            ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Some(usage),
        );
    };
    let cut = chunks.saturating_mul(16).min(body.len().saturating_sub(1));
    let events = Events {
        ready: vec![Bytes::from(body).slice(..cut)],
        heartbeat: None,
        report: None,
    };
    (
        body_response("application/json", events, Some(1), shutdown),
        None,
    )
}

/// The body of a response: what is ready, then (for an endless reply) a heartbeat at every interval.
struct Events {
    ready: Vec<Bytes>,
    heartbeat: Option<Bytes>,
    /// Which event reports the answer's usage, to log it once that event goes out.
    report: Option<Report>,
}

/// The usage the `event`th event of the answer to the `index`th request reports.
struct Report {
    shared: Arc<Shared>,
    index: usize,
    event: usize,
    usage: Usage,
}

/// Plays `events` as a streamed body, dropping the connection after `cut_after` of them.
struct Player {
    ready: std::vec::IntoIter<Bytes>,
    heartbeat: Option<Bytes>,
    report: Option<Report>,
    cut_after: Option<usize>,
    sent: usize,
    finished: bool,
    shutdown: watch::Receiver<()>,
}

impl Player {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        if self.finished {
            return None;
        }
        if self.cut_after == Some(self.sent) {
            tokio::time::sleep(FLUSH_PAUSE).await;
            return self.fail("scripted cut");
        }
        if let Some(event) = self.ready.next() {
            if let Some(report) = self.report.take_if(|report| report.event == self.sent) {
                report.shared.reported(report.index, report.usage);
            }
            self.sent += 1;
            return Some(Ok(event));
        }
        let Some(heartbeat) = self.heartbeat.clone() else {
            if self.cut_after.is_some() {
                // A cut reply never ends cleanly, even when the cut comes after its last event.
                tokio::time::sleep(FLUSH_PAUSE).await;
                return self.fail("scripted cut");
            }
            return None;
        };
        tokio::select! {
            () = tokio::time::sleep(ENDLESS_INTERVAL) => {
                self.sent += 1;
                Some(Ok(heartbeat))
            }
            _ = self.shutdown.changed() => self.fail("the scripted model is shutting down"),
        }
    }

    /// An error makes the server drop the connection without ending the body, as a crashed provider would.
    fn fail(&mut self, why: &'static str) -> Option<io::Result<Bytes>> {
        self.finished = true;
        Some(Err(io::Error::new(io::ErrorKind::ConnectionAborted, why)))
    }
}

fn body_response(
    content_type: &'static str,
    events: Events,
    cut_after: Option<usize>,
    shutdown: watch::Receiver<()>,
) -> Response {
    let player = Player {
        ready: events.ready.into_iter(),
        heartbeat: events.heartbeat,
        report: events.report,
        cut_after,
        sent: 0,
        finished: false,
        shutdown,
    };
    let body = Body::from_stream(futures_util::stream::unfold(
        player,
        |mut player| async move {
            let item = player.next().await?;
            Some((item, player))
        },
    ));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn status_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if serde_json::from_str::<Value>(&body).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn error_response(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "code": status.as_u16()}});
    (status, axum::Json(body)).into_response()
}

/// The start of a text, for logs.
fn excerpt(text: &str) -> &str {
    let mut end = text.len().min(80);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
