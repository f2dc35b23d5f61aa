//! In-process fakes of the engine's ports, for the mission driver's tests: an agents' server whose agents
//! follow a script, a journal in memory that can be made to fail, and a gate whose verdicts are scripted.
//! They keep the contracts the real adapters keep (a prompt returns at once and the turn runs in the
//! background; an aborted turn ends with an aborted answer; updates are broadcast), so the engine cannot
//! tell them apart from a server, except by speed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::domain::agent::{
    Activities, Activity, AgentError, AgentErrorKind, AgentMessage, FileChange, MessageFailure,
    TurnRequest, Update,
};
use crate::domain::gate::{CommandReport, GateCommand, GateReport, Outcome};
use crate::domain::mission::{Entry, JournalError};
use crate::domain::prompts::Role;
use crate::domain::workspace::{
    Checkout, CommitId, ConflictFile, ConflictHunk, Delivery, Head, Merge, MergeConflict, Origin,
    Tree, WorkingChanges, WorkspaceError, attempt_branch, integration_branch, task_branch,
};
use crate::engine::ports::{Agents, Gates, Journal, Memory, Workspace};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A prompt as the fake server received it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// The session.
    pub(crate) session: String,
    /// The agent (from the system prompt's marker line).
    pub(crate) role: Option<Role>,
    /// The message.
    pub(crate) text: String,
    /// The directory the session works in (the project's when `None`).
    pub(crate) directory: Option<PathBuf>,
    /// The whole request.
    pub(crate) request: TurnRequest,
}

/// What a scripted agent does with one prompt.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reply {
    /// Its answer.
    pub(crate) text: String,
    /// Files it changes in its session (each gets a line naming the session's turn).
    pub(crate) changes: Vec<&'static str>,
    /// Files it writes whole, with their content.
    pub(crate) writes: Vec<(&'static str, String)>,
    /// How long the turn takes.
    pub(crate) delay: Duration,
    /// How the answer fails, if it does.
    pub(crate) failure: Option<MessageFailure>,
    /// Whether it stops at the model's output limit.
    pub(crate) cut_off: bool,
    /// Whether the turn never ends by itself (only an abort ends it).
    pub(crate) hang: bool,
    /// The structured output, for a prompt with a JSON schema.
    pub(crate) structured: Option<serde_json::Value>,
    /// What the answer used.
    pub(crate) usage: crate::domain::usage::Usage,
    /// Errors its tool calls returned.
    pub(crate) tool_errors: Vec<String>,
}

impl Reply {
    /// An answer.
    pub(crate) fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// A Worker that changes `files` and reports done.
    pub(crate) fn done(files: &[&'static str]) -> Self {
        Self {
            text: format!(
                "Changed {}.\nSTATUS: DONE changed {}",
                files.join(", "),
                files.join(", ")
            ),
            changes: files.to_vec(),
            ..Self::default()
        }
    }

    /// The Reviewer's approval.
    pub(crate) fn approve() -> Self {
        Self::text("VERDICT: APPROVED\n- fine")
    }

    /// A model that fails.
    pub(crate) fn model_error(message: &str) -> Self {
        Self {
            failure: Some(MessageFailure::Model {
                message: message.to_string(),
            }),
            ..Self::default()
        }
    }

    /// A turn that never ends by itself.
    pub(crate) fn hang() -> Self {
        Self {
            hang: true,
            ..Self::default()
        }
    }

    /// The same reply after `delay`.
    pub(crate) fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Decides each reply: the prompt, and how many prompts this session had before it.
pub(crate) type Script = dyn Fn(&Received, usize) -> Reply + Send + Sync;

/// Fails calls on purpose: given the call's name and its session (if any), the error kind to fail with.
pub(crate) type Fault = dyn Fn(&str, Option<&str>) -> Option<AgentErrorKind> + Send + Sync;

#[derive(Debug, Default)]
struct Session {
    parent: Option<String>,
    directory: Option<PathBuf>,
    messages: Vec<AgentMessage>,
    busy: bool,
    prompts: usize,
    changes: Vec<FileChange>,
    /// Bumped by each prompt and abort, so a turn finishing late does not write over a newer one.
    generation: u64,
}

struct State {
    sessions: BTreeMap<String, Session>,
    received: Vec<Received>,
    aborted: Vec<String>,
    next_id: usize,
}

/// A fake agents' server.
pub(crate) struct FakeAgents {
    inner: Arc<Inner>,
}

impl std::ops::Deref for FakeAgents {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// The fake server's state, shared with its turns running in the background.
/// What [`FakeAgents::on_messages`] installs.
type MessagesHook = Box<dyn Fn(&str) + Send + Sync>;

pub(crate) struct Inner {
    url: String,
    script: Box<Script>,
    fault: Mutex<Option<Box<Fault>>>,
    state: Mutex<State>,
    updates: broadcast::Sender<Update>,
    /// Called during each `messages` call, before it answers: lets a test land an update at that moment.
    on_messages: Mutex<Option<MessagesHook>>,
    calls: AtomicUsize,
    /// Whether prompts may carry a JSON schema (a server without structured output refuses them).
    structured_output: bool,
    /// The files the agents write, shared with a [`FakeWorkspace`].
    files: Arc<FakeFiles>,
}

impl std::fmt::Debug for FakeAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAgents")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl FakeAgents {
    /// A server at `url` whose agents follow `script`.
    pub(crate) fn new(
        url: &str,
        script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static,
    ) -> Arc<Self> {
        Self::with_files(url, Arc::new(FakeFiles::default()), script)
    }

    /// A server whose agents write into `files`.
    pub(crate) fn with_files(
        url: &str,
        files: Arc<FakeFiles>,
        script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static,
    ) -> Arc<Self> {
        let (updates, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            url: url.to_string(),
            script: Box::new(script),
            fault: Mutex::new(None),
            state: Mutex::new(State {
                sessions: BTreeMap::new(),
                received: Vec::new(),
                aborted: Vec::new(),
                next_id: 0,
            }),
            updates,
            on_messages: Mutex::new(None),
            calls: AtomicUsize::new(0),
            structured_output: true,
            files,
        });
        let _ = inner.updates.send(Update::Connected);
        Arc::new(Self { inner })
    }

    /// A server that refuses prompts with a JSON schema, as a server without structured output does.
    pub(crate) fn without_structured_output(
        url: &str,
        script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static,
    ) -> Arc<Self> {
        let mut fake = Self::new(url, script);
        Arc::get_mut(&mut fake)
            .and_then(|fake| Arc::get_mut(&mut fake.inner))
            .expect("a new fake is not shared")
            .structured_output = false;
        fake
    }
}

impl Inner {
    /// Fails the calls `fault` picks, from now on.
    pub(crate) fn set_fault(
        &self,
        fault: impl Fn(&str, Option<&str>) -> Option<AgentErrorKind> + Send + Sync + 'static,
    ) {
        *lock(&self.fault) = Some(Box::new(fault));
    }

    /// Runs `hook` during each `messages` call.
    pub(crate) fn on_messages(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        *lock(&self.on_messages) = Some(Box::new(hook));
    }

    /// Sends an update, as the server's event stream would.
    pub(crate) fn send(&self, update: Update) {
        let _ = self.updates.send(update);
    }

    /// Every prompt received, in order.
    pub(crate) fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    /// Prompts received by `role` whose text starts with `prefix`.
    pub(crate) fn prompts_to(&self, role: Role, prefix: &str) -> usize {
        self.received()
            .iter()
            .filter(|received| received.role == Some(role) && received.text.starts_with(prefix))
            .count()
    }

    /// Sessions aborted, in order.
    pub(crate) fn aborted(&self) -> Vec<String> {
        lock(&self.state).aborted.clone()
    }

    /// Sessions that are busy now.
    pub(crate) fn busy(&self) -> Vec<String> {
        lock(&self.state)
            .sessions
            .iter()
            .filter(|(_, session)| session.busy)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The parent of a session.
    pub(crate) fn parent(&self, session: &str) -> Option<String> {
        lock(&self.state)
            .sessions
            .get(session)
            .and_then(|session| session.parent.clone())
    }

    /// The directory a session was created for.
    pub(crate) fn directory(&self, session: &str) -> Option<PathBuf> {
        lock(&self.state)
            .sessions
            .get(session)
            .and_then(|session| session.directory.clone())
    }

    /// The files the agents write.
    pub(crate) fn files(&self) -> Arc<FakeFiles> {
        Arc::clone(&self.files)
    }

    /// Ends the session's turn now with `reply` (for a turn whose reply hangs).
    pub(crate) fn complete(&self, session: &str, reply: &Reply) {
        let generation = lock(&self.state)
            .sessions
            .get(session)
            .map_or(0, |entry| entry.generation);
        self.finish(session, generation, reply);
    }

    /// Creates a session as a tool would (a sub-agent under `parent`), busy until aborted.
    pub(crate) fn spawn_child(&self, parent: &str) -> String {
        let mut state = lock(&self.state);
        state.next_id += 1;
        let id = format!("ses_child{}", state.next_id);
        state.sessions.insert(
            id.clone(),
            Session {
                parent: Some(parent.to_string()),
                busy: true,
                ..Session::default()
            },
        );
        id
    }

    fn check(&self, call: &str, session: Option<&str>) -> Result<(), AgentError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let kind = lock(&self.fault)
            .as_ref()
            .and_then(|fault| fault(call, session));
        match kind {
            Some(kind) => Err(self.error(kind, call)),
            None => Ok(()),
        }
    }

    fn error(&self, kind: AgentErrorKind, call: &str) -> AgentError {
        let message = match kind {
            AgentErrorKind::Unreachable => "connection refused",
            AgentErrorKind::Refused => "HTTP 404: no such session",
        };
        AgentError {
            kind,
            server: self.url.clone(),
            what: call.to_string(),
            source: message.into(),
        }
    }

    fn activity(&self, session: &str, activity: Activity) {
        self.send(Update::Activity {
            session: session.to_string(),
            activity,
        });
    }

    /// Ends the session's current turn with `reply`'s answer, unless a newer prompt or an abort came first.
    fn finish(&self, session: &str, generation: u64, reply: &Reply) {
        {
            let mut state = lock(&self.state);
            let Some(entry) = state.sessions.get_mut(session) else {
                return;
            };
            if entry.generation != generation || !entry.busy {
                return;
            }
            entry.messages.push(AgentMessage {
                id: format!("msg_{session}_{}", entry.messages.len()),
                assistant: true,
                finished: true,
                failure: reply.failure.clone(),
                cut_off: reply.cut_off,
                text: reply.text.clone(),
                structured: reply.structured.clone(),
                parts: 1 + reply.changes.len(),
                usage: reply.usage,
                tool_errors: reply.tool_errors.clone(),
            });
            let directory = entry
                .directory
                .clone()
                .unwrap_or_else(|| PathBuf::from(PROJECT));
            let turn = entry.prompts;
            for file in &reply.changes {
                self.files
                    .append(&directory.join(file), &format!("{session} turn {turn}\n"));
            }
            for (file, content) in &reply.writes {
                self.files.write(&directory.join(file), content);
            }
            for file in &reply.changes {
                if !entry.changes.iter().any(|change| change.path == *file) {
                    entry.changes.push(FileChange {
                        path: (*file).to_string(),
                        status: "added".to_string(),
                        additions: 1,
                        deletions: 0,
                        patch: format!("+++ {file}\n+content\n"),
                    });
                }
            }
            entry.busy = false;
        }
        self.activity(session, Activity::Idle);
    }
}

/// The role a system prompt names on its first line.
fn role_of(system: &str) -> Option<Role> {
    let name = system.lines().next()?.strip_prefix("ROLE: ")?;
    Role::ALL.into_iter().find(|role| role.name() == name)
}

#[async_trait]
impl Agents for FakeAgents {
    fn url(&self) -> &str {
        &self.url
    }

    async fn create_session(
        &self,
        _title: &str,
        parent: Option<&str>,
        directory: Option<&Path>,
    ) -> Result<String, AgentError> {
        self.check("create a session", parent)?;
        let mut state = lock(&self.state);
        state.next_id += 1;
        let id = format!("ses_{}", state.next_id);
        state.sessions.insert(
            id.clone(),
            Session {
                parent: parent.map(str::to_string),
                directory: directory.map(Path::to_path_buf),
                ..Session::default()
            },
        );
        Ok(id)
    }

    async fn session_exists(&self, session: &str) -> Result<bool, AgentError> {
        self.check("look for a session", Some(session))?;
        Ok(lock(&self.state).sessions.contains_key(session))
    }

    async fn prompt(&self, session: &str, request: &TurnRequest) -> Result<(), AgentError> {
        self.check("send a prompt", Some(session))?;
        let directory = lock(&self.state)
            .sessions
            .get(session)
            .and_then(|entry| entry.directory.clone());
        let received = Received {
            directory,
            session: session.to_string(),
            role: role_of(&request.system),
            text: request.text.clone(),
            request: request.clone(),
        };
        let (generation, before) = {
            let mut state = lock(&self.state);
            state.received.push(received.clone());
            let entry = state
                .sessions
                .get_mut(session)
                .ok_or_else(|| self.error(AgentErrorKind::Refused, "send a prompt"))?;
            entry.messages.push(AgentMessage {
                id: format!("msg_{session}_{}", entry.messages.len()),
                text: request.text.clone(),
                parts: 1,
                ..AgentMessage::default()
            });
            entry.busy = true;
            entry.generation += 1;
            entry.prompts += 1;
            (entry.generation, entry.prompts - 1)
        };
        self.activity(session, Activity::Busy);
        let reply = (self.script)(&received, before);
        if !reply.hang {
            let session = session.to_string();
            let inner = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                tokio::time::sleep(reply.delay).await;
                if let Some(inner) = inner.upgrade() {
                    inner.finish(&session, generation, &reply);
                }
            });
        }
        Ok(())
    }

    async fn prompt_and_wait(
        &self,
        session: &str,
        request: &TurnRequest,
    ) -> Result<AgentMessage, AgentError> {
        if request.schema.is_some() && !self.structured_output {
            return Err(self.error(AgentErrorKind::Refused, "send a prompt with a format"));
        }
        Agents::prompt(self, session, request).await?;
        loop {
            let last = lock(&self.state)
                .sessions
                .get(session)
                .filter(|entry| !entry.busy)
                .and_then(|entry| entry.messages.last().cloned());
            if let Some(answer) = last.filter(|message| message.assistant) {
                return Ok(answer);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn messages(&self, session: &str) -> Result<Vec<AgentMessage>, AgentError> {
        self.check("list messages", Some(session))?;
        let messages = lock(&self.state)
            .sessions
            .get(session)
            .map(|entry| entry.messages.clone())
            .ok_or_else(|| self.error(AgentErrorKind::Refused, "list messages"))?;
        if let Some(hook) = lock(&self.on_messages).as_ref() {
            hook(session);
        }
        Ok(messages)
    }

    async fn activities(&self) -> Result<Activities, AgentError> {
        self.check("read session status", None)?;
        Ok(lock(&self.state)
            .sessions
            .iter()
            .filter(|(_, session)| session.busy)
            .map(|(id, _)| (id.clone(), Activity::Busy))
            .collect())
    }

    async fn abort(&self, session: &str) -> Result<(), AgentError> {
        self.check("abort a session", Some(session))?;
        let was_busy = {
            let mut state = lock(&self.state);
            state.aborted.push(session.to_string());
            let Some(entry) = state.sessions.get_mut(session) else {
                return Err(self.error(AgentErrorKind::Refused, "abort a session"));
            };
            let was_busy = entry.busy;
            if was_busy {
                entry.generation += 1;
                entry.busy = false;
                entry.messages.push(AgentMessage {
                    id: format!("msg_{session}_{}", entry.messages.len()),
                    assistant: true,
                    finished: true,
                    failure: Some(MessageFailure::Aborted),
                    parts: 1,
                    ..AgentMessage::default()
                });
            }
            was_busy
        };
        if was_busy {
            self.activity(session, Activity::Idle);
        }
        Ok(())
    }

    async fn children(&self, session: &str) -> Result<Vec<String>, AgentError> {
        self.check("list children", Some(session))?;
        Ok(lock(&self.state)
            .sessions
            .iter()
            .filter(|(_, entry)| entry.parent.as_deref() == Some(session))
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn changes(&self, session: &str) -> Result<Vec<FileChange>, AgentError> {
        self.check("read a session's changes", Some(session))?;
        Ok(lock(&self.state)
            .sessions
            .get(session)
            .map(|entry| entry.changes.clone())
            .unwrap_or_default())
    }

    async fn answer_permission(&self, _request: &str, _allow: bool) -> Result<(), AgentError> {
        self.check("answer a permission request", None)
    }

    fn updates(&self) -> broadcast::Receiver<Update> {
        let receiver = self.updates.subscribe();
        let _ = self.updates.send(Update::Connected);
        receiver
    }
}

/// The project directory of the fakes: where sessions without a directory of their own work.
pub(crate) const PROJECT: &str = "/project";

/// A file system in memory, shared by the fake agents (who write) and the fake workspace (which commits).
#[derive(Debug, Default)]
pub(crate) struct FakeFiles {
    files: Mutex<BTreeMap<PathBuf, String>>,
}

impl FakeFiles {
    pub(crate) fn write(&self, path: &Path, content: &str) {
        lock(&self.files).insert(path.to_path_buf(), content.to_string());
    }

    pub(crate) fn append(&self, path: &Path, content: &str) {
        lock(&self.files)
            .entry(path.to_path_buf())
            .or_default()
            .push_str(content);
    }

    pub(crate) fn read(&self, path: &Path) -> Option<String> {
        lock(&self.files).get(path).cloned()
    }

    /// The files under `directory`, by path relative to it.
    pub(crate) fn under(&self, directory: &Path) -> BTreeMap<String, String> {
        lock(&self.files)
            .iter()
            .filter_map(|(path, content)| {
                let relative = path.strip_prefix(directory).ok()?;
                Some((relative.display().to_string(), content.clone()))
            })
            .collect()
    }

    /// Replaces the files under `directory` with `files`.
    pub(crate) fn replace(&self, directory: &Path, files: &BTreeMap<String, String>) {
        let mut all = lock(&self.files);
        all.retain(|path, _| !path.starts_with(directory));
        for (relative, content) in files {
            all.insert(directory.join(relative), content.clone());
        }
    }
}

/// A repository in memory: commits are snapshots of files, a merge is three-way by whole file (two sides
/// that change one file differently conflict), and worktrees live in [`FakeFiles`] under `/worktrees`.
#[derive(Debug)]
pub(crate) struct FakeWorkspace {
    files: Arc<FakeFiles>,
    state: Mutex<Repo>,
}

#[derive(Debug, Default)]
struct Repo {
    commits: BTreeMap<String, (Vec<String>, BTreeMap<String, String>)>,
    refs: BTreeMap<String, String>,
    /// The user's branch and HEAD.
    user_branch: String,
    /// Whether the user's tree is dirty, and whether their HEAD moved (set by tests).
    user_dirty: bool,
    next: usize,
    opened: Vec<PathBuf>,
    closed: Vec<PathBuf>,
}

impl Repo {
    fn commit(&mut self, parents: Vec<String>, files: BTreeMap<String, String>) -> String {
        self.next += 1;
        let id = format!("{:040x}", self.next);
        self.commits.insert(id.clone(), (parents, files));
        id
    }

    fn files(&self, commit: &str) -> BTreeMap<String, String> {
        self.commits
            .get(commit)
            .map(|(_, files)| files.clone())
            .unwrap_or_default()
    }

    fn is_ancestor(&self, ancestor: &str, of: &str) -> bool {
        let mut stack = vec![of.to_string()];
        while let Some(commit) = stack.pop() {
            if commit == ancestor {
                return true;
            }
            if let Some((parents, _)) = self.commits.get(&commit) {
                stack.extend(parents.iter().cloned());
            }
        }
        false
    }

    /// The nearest common ancestor of two commits (the first found walking back from `b`).
    fn merge_base(&self, a: &str, b: &str) -> Option<String> {
        let mut stack = vec![b.to_string()];
        while let Some(commit) = stack.pop() {
            if self.is_ancestor(&commit, a) {
                return Some(commit);
            }
            if let Some((parents, _)) = self.commits.get(&commit) {
                stack.extend(parents.iter().cloned());
            }
        }
        None
    }
}

impl FakeWorkspace {
    /// A repository whose `main` holds `files`, sharing the agents' files.
    pub(crate) fn new(files: Arc<FakeFiles>, initial: &[(&str, &str)]) -> Arc<Self> {
        let mut repo = Repo {
            user_branch: "main".to_string(),
            ..Repo::default()
        };
        let content: BTreeMap<String, String> = initial
            .iter()
            .map(|(path, text)| ((*path).to_string(), (*text).to_string()))
            .collect();
        files.replace(Path::new(PROJECT), &content);
        let root = repo.commit(Vec::new(), content);
        repo.refs.insert("main".to_string(), root);
        Arc::new(Self {
            files,
            state: Mutex::new(repo),
        })
    }

    /// A branch's commit.
    pub(crate) fn branch(&self, name: &str) -> Option<String> {
        lock(&self.state).refs.get(name).cloned()
    }

    /// The files of a commit.
    pub(crate) fn files_of(&self, commit: &str) -> BTreeMap<String, String> {
        lock(&self.state).files(commit)
    }

    /// The worktrees opened and closed so far.
    pub(crate) fn trees(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let state = lock(&self.state);
        (state.opened.clone(), state.closed.clone())
    }

    /// Points a branch at a commit (a test rewinding what a crash would have left).
    pub(crate) fn set_branch(&self, name: &str, commit: &str) {
        lock(&self.state)
            .refs
            .insert(name.to_string(), commit.to_string());
    }

    /// Makes the user's tree dirty from now on (they edit a file).
    pub(crate) fn dirty_user_tree(&self) {
        lock(&self.state).user_dirty = true;
    }
}

#[async_trait]
impl Workspace for FakeWorkspace {
    async fn begin(&self, mission: &str) -> Result<Origin, WorkspaceError> {
        let mut state = lock(&self.state);
        let head = state.refs[&state.user_branch.clone()].clone();
        let integration = integration_branch(mission);
        state.refs.insert(integration.clone(), head.clone());
        let changes = if state.user_dirty {
            WorkingChanges {
                tracked: vec!["README.md".to_string()],
                untracked: Vec::new(),
            }
        } else {
            WorkingChanges::default()
        };
        Ok(Origin {
            mission: mission.to_string(),
            checkout: Checkout {
                top_level: PathBuf::from(PROJECT),
                prefix: PathBuf::new(),
                head: Head::Branch(state.user_branch.clone()),
                commit: CommitId::parse(&head).expect("the fake's commits are 40 hex digits"),
                changes,
            },
            integration,
        })
    }

    async fn head(&self, origin: &Origin) -> Result<String, WorkspaceError> {
        Ok(lock(&self.state).refs[&origin.integration].clone())
    }

    async fn open_tree(
        &self,
        origin: &Origin,
        task: &str,
        base: &str,
    ) -> Result<Tree, WorkspaceError> {
        let mut state = lock(&self.state);
        let branch = task_branch(&origin.mission, task);
        let mut kept = None;
        if let Some(old) = state.refs.get(&branch).cloned() {
            let mut attempt = 1;
            while state
                .refs
                .contains_key(&attempt_branch(&origin.mission, task, attempt))
            {
                attempt += 1;
            }
            let name = attempt_branch(&origin.mission, task, attempt);
            state.refs.insert(name.clone(), old);
            kept = Some(name);
        }
        state.refs.insert(branch.clone(), base.to_string());
        let path = PathBuf::from(format!(
            "/worktrees/{}/{task}-{}",
            origin.mission, state.next
        ));
        state.next += 1;
        state.opened.push(path.clone());
        self.files.replace(&path, &state.files(base));
        Ok(Tree {
            root: path.clone(),
            path,
            branch,
            base: base.to_string(),
            kept,
        })
    }

    async fn commit(&self, tree: &Tree, _message: &str) -> Result<Option<String>, WorkspaceError> {
        let mut state = lock(&self.state);
        let head = state.refs[&tree.branch].clone();
        let now = self.files.under(&tree.path);
        if now == state.files(&head) {
            return Ok(None);
        }
        let commit = state.commit(vec![head], now);
        state.refs.insert(tree.branch.clone(), commit.clone());
        Ok(Some(commit))
    }

    async fn changes(&self, tree: &Tree) -> Result<Vec<FileChange>, WorkspaceError> {
        let state = lock(&self.state);
        let base = state.files(&tree.base);
        let head = state.files(&state.refs[&tree.branch]);
        Ok(head
            .iter()
            .filter(|(path, content)| base.get(*path) != Some(content))
            .map(|(path, content)| FileChange {
                path: path.clone(),
                status: if base.contains_key(path) {
                    "modified"
                } else {
                    "added"
                }
                .to_string(),
                additions: content.lines().count() as u64,
                deletions: 0,
                patch: format!("+++ {path}\n{content}"),
            })
            .collect())
    }

    async fn merge(&self, origin: &Origin, task: &str) -> Result<Merge, WorkspaceError> {
        let mut state = lock(&self.state);
        let onto = state.refs[&origin.integration].clone();
        let head = state.refs[&task_branch(&origin.mission, task)].clone();
        if state.is_ancestor(&head, &onto) {
            return Ok(Merge::AlreadyIntegrated { head: onto });
        }
        if state.is_ancestor(&onto, &head) {
            return Ok(Merge::Ready {
                onto,
                result: head,
                fast_forward: true,
            });
        }
        let base = state.merge_base(&onto, &head).unwrap_or_default();
        let (base, ours, theirs) = (state.files(&base), state.files(&onto), state.files(&head));
        let mut merged = ours.clone();
        let mut conflicts = Vec::new();
        for (path, content) in &theirs {
            match (base.get(path), ours.get(path)) {
                (b, o) if b == o => {
                    merged.insert(path.clone(), content.clone());
                }
                (b, _) if b == Some(content) => {}
                (_, Some(o)) if o == content => {}
                _ => conflicts.push(ConflictFile {
                    path: path.clone(),
                    messages: vec![format!("CONFLICT (content): Merge conflict in {path}")],
                    hunks: vec![ConflictHunk {
                        first_line: 1,
                        text: format!(
                            "<<<<<<< integration\n{}\n=======\n{content}\n>>>>>>> task\n",
                            ours.get(path).cloned().unwrap_or_default()
                        ),
                    }],
                    hunks_truncated: false,
                }),
            }
        }
        if !conflicts.is_empty() {
            let conflict = MergeConflict {
                onto: CommitId::parse(&onto).expect("the fake's commits are 40 hex digits"),
                task_head: CommitId::parse(&head).expect("the fake's commits are 40 hex digits"),
                files: conflicts,
            };
            return Ok(Merge::Conflict {
                files: conflict.paths().into_iter().map(str::to_string).collect(),
                findings: conflict.for_worker(),
            });
        }
        let result = state.commit(vec![onto.clone(), head], merged);
        Ok(Merge::Ready {
            onto,
            result,
            fast_forward: false,
        })
    }

    async fn advance(&self, origin: &Origin, from: &str, to: &str) -> Result<bool, WorkspaceError> {
        let mut state = lock(&self.state);
        if state.refs[&origin.integration] != from {
            return Ok(false);
        }
        state
            .refs
            .insert(origin.integration.clone(), to.to_string());
        Ok(true)
    }

    async fn open_detached(
        &self,
        origin: &Origin,
        commit: &str,
    ) -> Result<PathBuf, WorkspaceError> {
        let mut state = lock(&self.state);
        let path = PathBuf::from(format!(
            "/worktrees/{}/check-{}",
            origin.mission, state.next
        ));
        state.next += 1;
        state.opened.push(path.clone());
        self.files.replace(&path, &state.files(commit));
        Ok(path)
    }

    async fn close_tree(&self, path: &Path) -> Result<(), WorkspaceError> {
        lock(&self.state).closed.push(path.to_path_buf());
        Ok(())
    }

    async fn deliver(&self, origin: &Origin) -> Result<Delivery, WorkspaceError> {
        let mut state = lock(&self.state);
        let result = state.refs[&origin.integration].clone();
        if result == origin.base() {
            return Ok(Delivery::Nothing);
        }
        let branch = state.user_branch.clone();
        if state.user_dirty || state.refs[&branch] != origin.base() {
            return Ok(Delivery::Kept {
                reason: "your working tree changed during the mission".to_string(),
                command: format!("git merge {}", origin.integration),
            });
        }
        state.refs.insert(branch.clone(), result.clone());
        let files = state.files(&result);
        self.files.replace(Path::new(PROJECT), &files);
        Ok(Delivery::FastForwarded {
            branch: Some(branch),
            commit: result,
        })
    }
}

/// Picks the entry from which a [`FakeJournal`] fails.
type EntryPick = Box<dyn Fn(&Entry) -> bool + Send + Sync>;

/// A journal in memory; it can be told to fail from some entry on, as a full disk would.
pub(crate) struct FakeJournal {
    entries: Mutex<Vec<Entry>>,
    plan: Mutex<Option<String>>,
    fail_from: Mutex<Option<usize>>,
    /// Fails the first entry this picks, and every one after it.
    fail_on: Mutex<Option<EntryPick>>,
}

impl std::fmt::Debug for FakeJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeJournal").finish_non_exhaustive()
    }
}

impl FakeJournal {
    /// An empty journal.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            entries: Mutex::new(Vec::new()),
            plan: Mutex::new(None),
            fail_from: Mutex::new(None),
            fail_on: Mutex::new(None),
        })
    }

    /// Fails the first entry `pick` picks and every one after it, as a crash right then would.
    pub(crate) fn fail_on(&self, pick: impl Fn(&Entry) -> bool + Send + Sync + 'static) {
        *lock(&self.fail_on) = Some(Box::new(pick));
    }

    /// Fails every append once the journal holds `count` entries.
    pub(crate) fn fail_from(&self, count: usize) {
        *lock(&self.fail_from) = Some(count);
    }

    /// Every entry appended.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        lock(&self.entries).clone()
    }

    /// The plan written.
    pub(crate) fn plan(&self) -> Option<String> {
        lock(&self.plan).clone()
    }
}

impl Journal for FakeJournal {
    fn location(&self) -> &Path {
        Path::new("/fake/journal")
    }

    fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        let mut entries = lock(&self.entries);
        let picked = lock(&self.fail_on).as_ref().is_some_and(|pick| pick(entry));
        if picked {
            *lock(&self.fail_from) = Some(entries.len());
        }
        if lock(&self.fail_from).is_some_and(|count| entries.len() >= count) {
            return Err(JournalError {
                path: self.location().join("log"),
                source: Box::new(std::io::Error::from_raw_os_error(28)),
            });
        }
        entries.push(entry.clone());
        Ok(())
    }

    fn write_plan(&self, markdown: &str) -> Result<PathBuf, JournalError> {
        *lock(&self.plan) = Some(markdown.to_string());
        Ok(self.location().join("todo.md"))
    }
}

/// A gate whose verdicts a script gives, by run.
/// A gate's verdict on its `n`th run, in a directory.
type Verdict = Box<dyn Fn(usize, &Path) -> bool + Send + Sync>;

pub(crate) struct FakeGates {
    verdict: Verdict,
    runs: AtomicUsize,
}

impl std::fmt::Debug for FakeGates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGates")
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

impl FakeGates {
    /// A gate that passes when `verdict(run, directory)` says so (runs count from 0).
    pub(crate) fn new(verdict: impl Fn(usize, &Path) -> bool + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            verdict: Box::new(verdict),
            runs: AtomicUsize::new(0),
        })
    }

    /// A gate that always passes.
    pub(crate) fn passing() -> Arc<Self> {
        Self::new(|_, _| true)
    }

    /// How many times it ran.
    pub(crate) fn runs(&self) -> usize {
        self.runs.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Gates for FakeGates {
    async fn run(&self, directory: &Path) -> GateReport {
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        let passed = (self.verdict)(run, directory);
        GateReport {
            commands: vec![CommandReport {
                command: GateCommand::shell("fake check"),
                outcome: if passed {
                    Outcome::Passed
                } else {
                    Outcome::Failed {
                        code: Some(1),
                        signal: None,
                    }
                },
                output: if passed { "ok" } else { "assertion failed" }.to_string(),
                duration_ms: 1,
            }],
        }
    }
}

/// Memory whose pressure a test sets.
#[derive(Debug)]
pub(crate) struct FakeMemory {
    available: Mutex<f64>,
}

impl FakeMemory {
    pub(crate) fn new(available: f64) -> Arc<Self> {
        Arc::new(Self {
            available: Mutex::new(available),
        })
    }

    pub(crate) fn set(&self, available: f64) {
        *lock(&self.available) = available;
    }
}

impl Memory for FakeMemory {
    fn available(&self) -> Option<f64> {
        Some(*lock(&self.available))
    }
}
