//! Stage 6, `monitor`: sends an agent its prompt and follows the session to the end of its turn.
//!
//! A turn is over when the session is idle (a `session.idle` event, or, when the event stream is down, a
//! `/session/status` without it busy) *and* its last assistant message, newer than the prompt, is final
//! (completed with a finish reason other than `tool-calls`, or failed). Idle alone is not enough (the
//! message may not be written yet) and neither is absence from `/session/status` (the session may not have
//! started). One event stream serves every session; when it drops, polling takes over, every 500 ms at
//! first, backing off to 5 s while nothing changes.
//!
//! A turn that makes no progress (no event and no new message or part) for the stall time is reported as
//! stalled; a model that keeps failing (OpenCode retries model errors by itself, forever) is reported once
//! OpenCode has retried it the allowed number of times. Either way the session is aborted first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use opencode_client::{
    EventPayload, Message, MessageWithParts, PermissionReply, Prompt, SessionStatus, StreamItem,
};
use tokio::sync::Notify;

use crate::error::OrchestratorError;
use crate::server::Opencode;

/// How turns are followed.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// The shortest polling interval (used right after a change when the event stream is down).
    pub min_poll: Duration,
    /// The longest polling interval.
    pub max_poll: Duration,
    /// A turn with no progress for this long is stalled.
    pub stall_after: Duration,
    /// A turn may take at most this long.
    pub turn_timeout: Duration,
    /// OpenCode's own retries of a failing model call allowed before the turn is given up.
    pub model_retries: u64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            min_poll: Duration::from_millis(500),
            max_poll: Duration::from_secs(5),
            stall_after: Duration::from_secs(300),
            turn_timeout: Duration::from_secs(1800),
            model_retries: 3,
        }
    }
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEnd {
    /// The agent answered.
    Answered {
        /// The text of its last message.
        text: String,
    },
    /// The model call failed (an error on the message, or more retries than allowed).
    ModelFailed {
        /// The error.
        message: String,
    },
    /// Nothing happened for the stall time.
    Stalled,
    /// The turn took longer than the turn timeout.
    TimedOut,
}

#[derive(Debug, Default)]
struct Watch {
    /// Events seen for the session.
    events: u64,
    idle: bool,
    error: Option<String>,
    /// OpenCode's retry attempt of a failing model call, with its message.
    retry: Option<(u64, String)>,
    /// Whether the session may run tools that ask for permission (a Worker's).
    allow_permissions: bool,
}

#[derive(Debug, Default)]
struct Shared {
    watches: Mutex<HashMap<String, Watch>>,
    changed: Notify,
    stream_up: AtomicBool,
    /// Set by [`Monitor::interrupt`]: every turn ends with [`OrchestratorError::Interrupted`].
    interrupted: Mutex<Option<&'static str>>,
}

/// Follows sessions on one OpenCode server.
#[derive(Debug, Clone)]
pub struct Monitor {
    opencode: Opencode,
    config: MonitorConfig,
    shared: Arc<Shared>,
}

impl Monitor {
    /// Starts following the server's event stream (in a task that ends when the last clone is dropped).
    pub fn start(opencode: Opencode, config: MonitorConfig) -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(follow_events(opencode.clone(), Arc::downgrade(&shared)));
        Self {
            opencode,
            config,
            shared,
        }
    }

    /// The guarded server handle.
    pub fn opencode(&self) -> &Opencode {
        &self.opencode
    }

    /// Whether the event stream is connected (polling covers the times it is not).
    pub fn stream_up(&self) -> bool {
        self.shared.stream_up.load(Ordering::Relaxed)
    }

    /// Sends `prompt` to `session` and follows it to the end of the turn. `allow_permissions` answers the
    /// session's permission requests with "once" (a Worker's), else with "reject".
    ///
    /// # Errors
    ///
    /// [`OrchestratorError::Opencode`] when OpenCode cannot be reached for the prompt or the checks;
    /// [`OrchestratorError::Interrupted`] once [`interrupt`](Self::interrupt) was called.
    pub async fn turn(
        &self,
        session: &str,
        prompt: &Prompt,
        allow_permissions: bool,
    ) -> Result<TurnEnd, OrchestratorError> {
        self.check_interrupted()?;
        let before = self
            .opencode
            .call("list messages", |client| async move {
                client.messages(session).await
            })
            .await?
            .len();
        self.watch(session, allow_permissions);
        let outcome = async {
            self.opencode
                .call("send a prompt", |client| async move {
                    client.prompt_async(session, prompt).await
                })
                .await?;
            self.follow(session, before).await
        }
        .await;
        self.unwatch(session);
        outcome
    }

    /// Follows a turn that an earlier orchestrator started in `session` (one killed mid-turn): waits until
    /// the session is idle with a final answer after its last user message.
    ///
    /// # Errors
    ///
    /// As [`turn`](Self::turn).
    pub async fn adopt(
        &self,
        session: &str,
        allow_permissions: bool,
    ) -> Result<TurnEnd, OrchestratorError> {
        self.check_interrupted()?;
        let messages = self
            .opencode
            .call("list messages", |client| async move {
                client.messages(session).await
            })
            .await?;
        let before = messages
            .iter()
            .rposition(|message| matches!(message.info, Message::User(_)))
            .map_or(0, |last_user| last_user + 1);
        self.watch(session, allow_permissions);
        let outcome = self.follow(session, before).await;
        self.unwatch(session);
        outcome
    }

    /// Ends every turn now and from now on with [`OrchestratorError::Interrupted`], aborting the sessions
    /// being followed (`signal` names why, e.g. `SIGINT`). Returns the sessions aborted.
    pub async fn interrupt(&self, signal: &'static str) -> Vec<String> {
        *self
            .shared
            .interrupted
            .lock()
            .expect("no panic holds the lock") = Some(signal);
        let sessions: Vec<String> = self
            .shared
            .watches
            .lock()
            .expect("no panic holds the lock")
            .keys()
            .cloned()
            .collect();
        self.shared.changed.notify_waiters();
        let aborts = sessions.iter().map(|session| async move {
            // One attempt each, briefly: the orchestrator is stopping.
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                self.opencode.client().abort(session),
            )
            .await;
        });
        futures_util::future::join_all(aborts).await;
        sessions
    }

    /// Whether [`interrupt`](Self::interrupt) was called.
    pub fn interrupted(&self) -> Option<&'static str> {
        *self
            .shared
            .interrupted
            .lock()
            .expect("no panic holds the lock")
    }

    fn check_interrupted(&self) -> Result<(), OrchestratorError> {
        match self.interrupted() {
            Some(signal) => Err(OrchestratorError::Interrupted { signal }),
            None => Ok(()),
        }
    }

    fn watch(&self, session: &str, allow_permissions: bool) {
        self.shared
            .watches
            .lock()
            .expect("no panic holds the lock")
            .insert(
                session.to_string(),
                Watch {
                    allow_permissions,
                    ..Watch::default()
                },
            );
    }

    fn unwatch(&self, session: &str) {
        self.shared
            .watches
            .lock()
            .expect("no panic holds the lock")
            .remove(session);
    }

    async fn follow(&self, session: &str, before: usize) -> Result<TurnEnd, OrchestratorError> {
        let started = Instant::now();
        let mut last_progress = Instant::now();
        let mut last_signature = None;
        let mut poll = self.config.min_poll;
        // A look that does not trust the event stream: the first (the turn may have ended before the watch
        // began, or the stream may still be connecting), and every one after a wait with no event (a stream
        // that is reconnecting delivers nothing, and an event may have been lost).
        let mut look = true;
        loop {
            self.check_interrupted()?;
            let (events, idle, error, retry) = {
                let watches = self.shared.watches.lock().expect("no panic holds the lock");
                let watch = watches
                    .get(session)
                    .expect("the watch lives as long as the turn");
                (
                    watch.events,
                    watch.idle,
                    watch.error.clone(),
                    watch.retry.clone(),
                )
            };
            if let Some((attempt, message)) = retry
                && attempt > self.config.model_retries
            {
                self.abort(session).await;
                return Ok(TurnEnd::ModelFailed {
                    message: format!("the model failed {attempt} times: {message}"),
                });
            }
            let stream_up = self.stream_up();
            // With the stream up, the events say when to look; without it, look at every poll.
            let idle = if stream_up && !look {
                idle || error.is_some()
            } else {
                self.is_idle(session).await? || idle
            };
            let looked = std::mem::take(&mut look);
            let messages = if idle
                || !stream_up
                || looked
                || last_progress.elapsed() >= self.config.stall_after
            {
                Some(
                    self.opencode
                        .call("list messages", |client| async move {
                            client.messages(session).await
                        })
                        .await?,
                )
            } else {
                None
            };
            if let Some(messages) = &messages {
                let answer = messages.get(before..).unwrap_or_default();
                if idle && let Some(end) = turn_end(answer) {
                    return Ok(end);
                }
                if let Some(error) = &error
                    && idle
                {
                    return Ok(TurnEnd::ModelFailed {
                        message: error.clone(),
                    });
                }
                let signature = (messages.len(), parts(messages), events);
                if last_signature != Some(signature) {
                    last_signature = Some(signature);
                    last_progress = Instant::now();
                    poll = self.config.min_poll;
                }
            }
            if last_signature.is_none_or(|(_, _, seen)| seen != events) {
                last_progress = Instant::now();
                if let Some(signature) = &mut last_signature {
                    signature.2 = events;
                }
            }
            if last_progress.elapsed() >= self.config.stall_after {
                self.abort(session).await;
                return Ok(TurnEnd::Stalled);
            }
            if started.elapsed() >= self.config.turn_timeout {
                self.abort(session).await;
                return Ok(TurnEnd::TimedOut);
            }
            let wait = if stream_up {
                self.config.max_poll
            } else {
                poll
            };
            let wait = wait.min(
                self.config
                    .stall_after
                    .saturating_sub(last_progress.elapsed()),
            );
            let changed = self.shared.changed.notified();
            look = tokio::time::timeout(wait.max(Duration::from_millis(10)), changed)
                .await
                .is_err();
            poll = (poll * 2).min(self.config.max_poll);
        }
    }

    async fn is_idle(&self, session: &str) -> Result<bool, OrchestratorError> {
        let statuses = self
            .opencode
            .call("read session status", |client| async move {
                client.session_status().await
            })
            .await?;
        if let Some(SessionStatus::Retry {
            attempt, message, ..
        }) = statuses.get(session)
            && let Some(watch) = self
                .shared
                .watches
                .lock()
                .expect("no panic holds the lock")
                .get_mut(session)
        {
            watch.retry = Some((*attempt, message.clone()));
        }
        Ok(!matches!(
            statuses.get(session),
            Some(SessionStatus::Busy | SessionStatus::Retry { .. })
        ))
    }

    async fn abort(&self, session: &str) {
        if let Err(error) = self
            .opencode
            .call("abort a session", |client| async move {
                client.abort(session).await
            })
            .await
        {
            tracing::warn!(session, %error, "could not abort the session");
        }
    }
}

fn parts(messages: &[MessageWithParts]) -> usize {
    messages.iter().map(|message| message.parts.len()).sum()
}

/// The end of a turn, if the messages after the prompt hold a final assistant message.
fn turn_end(answer: &[MessageWithParts]) -> Option<TurnEnd> {
    let last = answer.last()?;
    let Message::Assistant(info) = &last.info else {
        return None;
    };
    if !info.is_final() {
        return None;
    }
    if let Some(error) = &info.error {
        return Some(TurnEnd::ModelFailed {
            message: error
                .message()
                .map_or_else(|| format!("{error:?}"), str::to_string),
        });
    }
    // The answer is the text of every assistant message of the turn: a Worker may speak before its tool
    // calls and end with only its status line.
    let text = answer
        .iter()
        .filter(|message| matches!(message.info, Message::Assistant(_)))
        .map(MessageWithParts::text)
        .filter(|text| !text.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Some(TurnEnd::Answered { text })
}

/// Reads the server's events into the watches, reconnecting for as long as a monitor lives.
async fn follow_events(opencode: Opencode, shared: std::sync::Weak<Shared>) {
    let mut delay = Duration::from_millis(200);
    loop {
        let Some(live) = shared.upgrade() else { return };
        drop(live);
        let mut stream = match opencode.client().events().await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "the event stream did not connect; polling");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        delay = Duration::from_millis(200);
        if let Some(shared) = shared.upgrade() {
            shared.stream_up.store(true, Ordering::Relaxed);
            shared.changed.notify_waiters();
        }
        loop {
            let next = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let item = match next {
                Err(_) => continue,
                Ok(None) => break,
                Ok(Some(Err(error))) => {
                    tracing::warn!(%error, "the event stream was lost; polling");
                    break;
                }
                Ok(Some(Ok(item))) => item,
            };
            match item {
                StreamItem::Event(event) => {
                    if let Some(request) = handle(&shared, &event.payload) {
                        let (id, reply) = request;
                        let client = opencode.client().clone();
                        tokio::spawn(async move {
                            if let Err(error) = client.reply_permission(&id, reply, None).await {
                                tracing::warn!(%error, "could not answer a permission request");
                            }
                        });
                    }
                }
                StreamItem::Reconnected(gap) => {
                    // Events were lost: every waiter looks at its session again.
                    tracing::info!(?gap, "the event stream reconnected");
                    shared.changed.notify_waiters();
                }
                _ => {}
            }
        }
        if let Some(shared) = shared.upgrade() {
            shared.stream_up.store(false, Ordering::Relaxed);
            shared.changed.notify_waiters();
        }
    }
}

/// Applies one event to the watches; returns a permission request to answer.
fn handle(shared: &Shared, payload: &EventPayload) -> Option<(String, PermissionReply)> {
    let session = payload.session_id()?;
    let mut watches = shared.watches.lock().expect("no panic holds the lock");
    let watch = watches.get_mut(session)?;
    watch.events += 1;
    let mut permission = None;
    match payload {
        EventPayload::SessionIdle { .. } => watch.idle = true,
        EventPayload::SessionStatus { status, .. } => match status {
            SessionStatus::Idle => watch.idle = true,
            SessionStatus::Busy => watch.idle = false,
            SessionStatus::Retry {
                attempt, message, ..
            } => {
                watch.idle = false;
                watch.retry = Some((*attempt, message.clone()));
            }
            _ => {}
        },
        EventPayload::SessionError { error, .. } => {
            watch.error = Some(
                error
                    .as_ref()
                    .and_then(|error| error.message().map(str::to_string))
                    .unwrap_or_else(|| "the session reported an error".to_string()),
            );
        }
        EventPayload::PermissionAsked(request) => {
            let reply = if watch.allow_permissions {
                PermissionReply::Once
            } else {
                PermissionReply::Reject
            };
            permission = Some((request.id.clone(), reply));
        }
        _ => {}
    }
    drop(watches);
    shared.changed.notify_waiters();
    permission
}
