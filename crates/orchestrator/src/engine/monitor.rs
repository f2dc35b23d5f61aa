//! When a turn is over: sends an agent its prompt and follows the session to the end of its turn.
//!
//! A turn is over when the session is idle (an idle update, or, without updates, no activity reported for
//! it) *and* its last message, newer than the prompt, is a finished answer. Idle alone is not enough (the
//! answer may not be written yet) and neither is absence from the server's activity list (the session may
//! not have started). The server's updates say when to look; when its event stream is down, polling takes
//! over, every `min_poll` at first, backing off to `max_poll` while nothing changes; with the stream up the
//! session is still looked at every `max_poll`, in case an update was lost.
//!
//! A turn with no progress (no update and no new message or part) for the stall time is stalled; a model
//! that keeps failing (OpenCode retries model errors by itself, forever) fails the turn once OpenCode has
//! retried it the allowed number of times. Either way the session is aborted first.

use std::collections::{BTreeSet, HashMap};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

use crate::domain::agent::{
    self, Activity, AgentError, AgentMessage, Turn, TurnEnd, TurnRequest, Update,
};
use crate::domain::settings::MonitorSettings;
use crate::domain::usage::Usage;
use crate::engine::ports::Agents;

#[derive(Debug, Default)]
struct Watch {
    /// Updates seen for the session.
    updates: u64,
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
    /// Sessions whose turn this process started and has not seen end: what a stop must abort. A turn whose
    /// future is dropped (cancelled by a stop) stays here.
    in_flight: Mutex<BTreeSet<String>>,
    /// Set by a stop: no prompt is sent any more.
    closed: AtomicBool,
    /// Sub-agent sessions whose usage was counted already.
    counted: Mutex<BTreeSet<String>>,
    /// Says whether a turn that has used this much so far must end now (a budget reached).
    budget: Mutex<Option<Budget>>,
}

/// A [`Probe`] that shows in `Debug`.
#[derive(Clone)]
struct Budget(Probe);

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Budget(..)")
    }
}

/// A budget's probe: given what a running turn used so far, whether it must end now.
pub type Probe = std::sync::Arc<dyn Fn(&Usage) -> bool + Send + Sync>;

impl Shared {
    fn watches(&self) -> MutexGuard<'_, HashMap<String, Watch>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn in_flight(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Aborts the update reader when the last monitor is gone.
#[derive(Debug)]
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows the turns of sessions on one server.
#[derive(Debug, Clone)]
pub struct Monitor {
    agents: Arc<dyn Agents>,
    settings: MonitorSettings,
    shared: Arc<Shared>,
    _reader: Arc<Reader>,
}

/// Removes a session's watch when its turn ends, however it ends (a cancelled turn included).
struct WatchGuard<'a> {
    shared: &'a Shared,
    session: &'a str,
}

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        self.shared.watches().remove(self.session);
    }
}

impl Monitor {
    /// Starts reading the server's updates (until the last clone of the monitor is dropped).
    pub fn start(agents: Arc<dyn Agents>, settings: MonitorSettings) -> Self {
        let shared = Arc::new(Shared::default());
        let reader = tokio::spawn(read_updates(
            Arc::clone(&agents),
            agents.updates(),
            Arc::downgrade(&shared),
        ));
        Self {
            agents,
            settings,
            shared,
            _reader: Arc::new(Reader(reader)),
        }
    }

    /// The server.
    pub fn agents(&self) -> &Arc<dyn Agents> {
        &self.agents
    }

    /// Whether the server's event stream is connected (polling covers the times it is not).
    pub fn stream_up(&self) -> bool {
        self.shared.stream_up.load(Ordering::Relaxed)
    }

    /// Sessions with a turn started and not seen to end, a cancelled one's included.
    pub fn in_flight(&self) -> Vec<String> {
        self.shared.in_flight().iter().cloned().collect()
    }

    /// Ends every turn, as aborted, once `probe` says what it used so far is too much (a budget).
    pub fn watch_budget(&self, probe: Probe) {
        *self
            .shared
            .budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Budget(probe));
    }

    fn over_budget(&self, usage: &Usage) -> bool {
        self.shared
            .budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|budget| (budget.0)(usage))
    }

    /// What the sub-agent sessions under `session` used, those not counted before (each is counted once,
    /// at the end of the turn that started it).
    async fn sub_agents(&self, session: &str) -> Usage {
        let mut usage = Usage::default();
        let mut stack = match self.agents.children(session).await {
            Ok(children) => children,
            Err(error) => {
                tracing::warn!(session, %error, "could not list a session's sub-agents for their usage");
                return usage;
            }
        };
        while let Some(child) = stack.pop() {
            let fresh = self
                .shared
                .counted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(child.clone());
            if !fresh {
                continue;
            }
            if let Ok(messages) = self.agents.messages(&child).await {
                usage += agent::usage_of(&messages);
            }
            if let Ok(children) = self.agents.children(&child).await {
                stack.extend(children);
            }
        }
        usage
    }

    /// Sends no prompt from now on: a turn asked after this ends at once as aborted (a stop).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
    }

    /// Whether [`close`](Self::close) was called.
    fn is_closed(&self) -> bool {
        // SeqCst: pairs with `close`, so that a turn registered in flight before this check is seen by the
        // stop's abort pass, and one that checks after the stop sends nothing.
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Sessions being followed right now.
    pub fn watched(&self) -> Vec<String> {
        self.shared.watches().keys().cloned().collect()
    }

    /// Sends `request` to `session` and follows it to the end of the turn. `allow_permissions` answers the
    /// session's permission requests with "once" (a Worker's), else with "reject".
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails a call past its retries.
    pub async fn turn(
        &self,
        session: &str,
        request: &TurnRequest,
        allow_permissions: bool,
    ) -> Result<Turn, AgentError> {
        let before = self.agents.messages(session).await?.len();
        let _watch = self.watch(session, allow_permissions);
        self.shared.in_flight().insert(session.to_string());
        if self.is_closed() {
            self.shared.in_flight().remove(session);
            return Ok(aborted());
        }
        self.agents.prompt(session, request).await?;
        let turn = self.follow(session, before).await?;
        self.shared.in_flight().remove(session);
        Ok(turn)
    }

    /// A turn whose answer the server gives at the end of one call (a prompt with a JSON schema: see
    /// [`Agents::prompt_and_wait`]); the session counts as in flight until then.
    ///
    /// # Errors
    ///
    /// As [`turn`](Self::turn).
    pub async fn turn_and_wait(
        &self,
        session: &str,
        request: &TurnRequest,
    ) -> Result<Turn, AgentError> {
        self.shared.in_flight().insert(session.to_string());
        if self.is_closed() {
            self.shared.in_flight().remove(session);
            return Ok(aborted());
        }
        let answer = self.agents.prompt_and_wait(session, request).await?;
        self.shared.in_flight().remove(session);
        Ok(Turn {
            end: agent::turn_end(std::slice::from_ref(&answer)).unwrap_or(TurnEnd::Aborted),
            answers: agent::answers_of(std::slice::from_ref(&answer)),
            sub_agents: self.sub_agents(session).await,
            tool_errors: answer.tool_errors.clone(),
        })
    }

    /// Follows the turn an earlier orchestrator left in `session` (after a crash or a stop): waits until the
    /// session is idle with a finished answer after its last prompt. [`TurnEnd::Aborted`] means that turn
    /// was aborted (by the stop) and must be asked again.
    ///
    /// # Errors
    ///
    /// As [`turn`](Self::turn).
    pub async fn adopt(&self, session: &str, allow_permissions: bool) -> Result<Turn, AgentError> {
        let messages = self.agents.messages(session).await?;
        let before = messages
            .iter()
            .rposition(|message| !message.assistant)
            .map_or(0, |last_prompt| last_prompt + 1);
        let _watch = self.watch(session, allow_permissions);
        self.shared.in_flight().insert(session.to_string());
        let turn = self.follow(session, before).await?;
        self.shared.in_flight().remove(session);
        Ok(turn)
    }

    fn watch<'a>(&'a self, session: &'a str, allow_permissions: bool) -> WatchGuard<'a> {
        self.shared.watches().insert(
            session.to_string(),
            Watch {
                allow_permissions,
                ..Watch::default()
            },
        );
        WatchGuard {
            shared: &self.shared,
            session,
        }
    }

    async fn follow(&self, session: &str, before: usize) -> Result<Turn, AgentError> {
        let end = self.follow_to_end(session, before).await?;
        // What the turn used: its answers, and the sub-agents it started.
        let messages = self.agents.messages(session).await?;
        let turn = messages.get(before..).unwrap_or_default();
        Ok(Turn {
            end,
            answers: agent::answers_of(turn),
            sub_agents: self.sub_agents(session).await,
            tool_errors: agent::tool_errors_of(turn),
        })
    }

    async fn follow_to_end(&self, session: &str, before: usize) -> Result<TurnEnd, AgentError> {
        let settings = &self.settings;
        let started = Instant::now();
        let mut last_progress = Instant::now();
        let mut last_signature: Option<(usize, usize, u64)> = None;
        let mut poll = settings.min_poll;
        // A look that does not trust the updates: the first (the turn may have ended before the watch
        // began), and every one after a wait with no update (a lost update, a stream reconnecting).
        let mut look = true;
        loop {
            // Ask to be woken before reading the watch: an update that lands between the read and the wait
            // must wake this turn at once, not `max_poll` later.
            let mut changed = pin!(self.shared.changed.notified());
            changed.as_mut().enable();
            let (updates, idle, error, retry) = {
                let watches = self.shared.watches();
                let watch = watches
                    .get(session)
                    .expect("the watch lives as long as the turn");
                (
                    watch.updates,
                    watch.idle,
                    watch.error.clone(),
                    watch.retry.clone(),
                )
            };
            if let Some((attempt, message)) = retry
                && attempt > settings.model_retries
            {
                self.abort(session).await;
                return Ok(TurnEnd::ModelFailed {
                    message: format!("the model failed {attempt} times: {message}"),
                });
            }
            let stream_up = self.stream_up();
            let idle = if stream_up && !look {
                idle || error.is_some()
            } else {
                self.is_idle(session).await? || idle
            };
            let looked = std::mem::take(&mut look);
            let stalling = last_progress.elapsed() >= settings.stall_after;
            if self.over_budget(&Usage::default()) {
                self.abort(session).await;
                return Ok(TurnEnd::Aborted);
            }
            if idle || !stream_up || looked || stalling {
                let messages = self.agents.messages(session).await?;
                let answer = messages.get(before..).unwrap_or_default();
                if self.over_budget(&agent::usage_of(answer)) {
                    self.abort(session).await;
                    return Ok(TurnEnd::Aborted);
                }
                if idle && let Some(end) = agent::turn_end(answer) {
                    return Ok(end);
                }
                if idle && let Some(error) = &error {
                    return Ok(TurnEnd::ModelFailed {
                        message: error.clone(),
                    });
                }
                let signature = (messages.len(), parts(&messages), updates);
                if last_signature != Some(signature) {
                    last_signature = Some(signature);
                    last_progress = Instant::now();
                    poll = settings.min_poll;
                }
            }
            if let Some(signature) = &mut last_signature
                && signature.2 != updates
            {
                signature.2 = updates;
                last_progress = Instant::now();
            }
            if last_progress.elapsed() >= settings.stall_after {
                self.abort(session).await;
                return Ok(TurnEnd::Stalled);
            }
            if started.elapsed() >= settings.turn_timeout {
                self.abort(session).await;
                return Ok(TurnEnd::TimedOut);
            }
            let wait = if stream_up { settings.max_poll } else { poll }
                .min(settings.stall_after.saturating_sub(last_progress.elapsed()))
                .min(settings.turn_timeout.saturating_sub(started.elapsed()))
                .max(Duration::from_millis(1));
            look = tokio::time::timeout(wait, changed).await.is_err();
            poll = (poll * 2).min(settings.max_poll);
        }
    }

    async fn is_idle(&self, session: &str) -> Result<bool, AgentError> {
        let activities = self.agents.activities().await?;
        let activity = activities.get(session);
        if let Some(Activity::Retrying { attempt, message }) = activity
            && let Some(watch) = self.shared.watches().get_mut(session)
        {
            watch.retry = Some((*attempt, message.clone()));
        }
        Ok(matches!(activity, None | Some(Activity::Idle)))
    }

    async fn abort(&self, session: &str) {
        if let Err(error) = self.agents.abort(session).await {
            tracing::warn!(session, %error, "could not abort the session");
        }
    }
}

/// A turn ended before it began (a stop).
fn aborted() -> Turn {
    Turn::ended(TurnEnd::Aborted)
}

fn parts(messages: &[AgentMessage]) -> usize {
    messages.iter().map(|message| message.parts).sum()
}

/// Reads the server's updates into the watches, for as long as a monitor lives.
async fn read_updates(
    agents: Arc<dyn Agents>,
    mut updates: broadcast::Receiver<Update>,
    shared: std::sync::Weak<Shared>,
) {
    loop {
        let update = updates.recv().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match update {
            Ok(update) => {
                if let Some((request, allow)) = apply(&shared, &update) {
                    let agents = Arc::clone(&agents);
                    tokio::spawn(async move {
                        if let Err(error) = agents.answer_permission(&request, allow).await {
                            tracing::warn!(%error, "could not answer a permission request");
                        }
                    });
                }
            }
            // Updates were lost: every turn looks at its session again.
            Err(broadcast::error::RecvError::Lagged(_)) => shared.changed.notify_waiters(),
            Err(broadcast::error::RecvError::Closed) => {
                shared.stream_up.store(false, Ordering::Relaxed);
                shared.changed.notify_waiters();
                return;
            }
        }
    }
}

/// Applies one update to the watches; returns a permission request to answer.
fn apply(shared: &Shared, update: &Update) -> Option<(String, bool)> {
    let session = match update {
        Update::Connected | Update::Disconnected => {
            shared
                .stream_up
                .store(matches!(update, Update::Connected), Ordering::Relaxed);
            // Connected again: events may have been lost, so every turn looks again.
            shared.changed.notify_waiters();
            return None;
        }
        Update::Activity { session, .. }
        | Update::Error { session, .. }
        | Update::Permission { session, .. }
        | Update::Progress { session } => session,
    };
    let mut watches = shared.watches();
    let watch = watches.get_mut(session)?;
    watch.updates += 1;
    let mut permission = None;
    match update {
        Update::Activity { activity, .. } => match activity {
            Activity::Idle => watch.idle = true,
            Activity::Busy => watch.idle = false,
            Activity::Retrying { attempt, message } => {
                watch.idle = false;
                watch.retry = Some((*attempt, message.clone()));
            }
        },
        Update::Error { message, .. } => watch.error = Some(message.clone()),
        Update::Permission { request, .. } => {
            permission = Some((request.clone(), watch.allow_permissions));
        }
        _ => {}
    }
    drop(watches);
    shared.changed.notify_waiters();
    permission
}
