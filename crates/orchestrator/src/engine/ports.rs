//! What the engine needs from the world, as traits it owns. The command line wires the real adapters in
//! (`adapters::opencode`, `adapters::journal`, `adapters::gate`); the engine's tests use in-process fakes.

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::domain::agent::{Activities, AgentError, AgentMessage, FileChange, TurnRequest, Update};
use crate::domain::gate::GateReport;
use crate::domain::mission::{Entry, JournalError};
use crate::domain::workspace::{Delivery, Merge, Origin, Tree, WorkspaceError};

/// One agents' server (an OpenCode server): its sessions, their messages and what it reports about them.
#[async_trait]
pub trait Agents: Send + Sync + fmt::Debug {
    /// The server's URL, as the journal and the summary name it.
    fn url(&self) -> &str;

    /// Creates a session titled `title`, a child of `parent` if given, working in `directory` (the
    /// project's, unless another is given).
    async fn create_session(
        &self,
        title: &str,
        parent: Option<&str>,
        directory: Option<&Path>,
    ) -> Result<String, AgentError>;

    /// Whether the session exists on this server.
    async fn session_exists(&self, session: &str) -> Result<bool, AgentError>;

    /// Sends a prompt and returns at once; the turn runs on the server.
    async fn prompt(&self, session: &str, request: &TurnRequest) -> Result<(), AgentError>;

    /// Sends a prompt and waits for its answer: for a prompt with a JSON schema, whose session the server
    /// cannot list the messages of afterwards (OpenCode 1.18.33 answers HTTP 400 for them).
    async fn prompt_and_wait(
        &self,
        session: &str,
        request: &TurnRequest,
    ) -> Result<AgentMessage, AgentError>;

    /// The session's messages, oldest first.
    async fn messages(&self, session: &str) -> Result<Vec<AgentMessage>, AgentError>;

    /// The sessions that are not idle.
    async fn activities(&self) -> Result<Activities, AgentError>;

    /// Aborts the session's turn.
    async fn abort(&self, session: &str) -> Result<(), AgentError>;

    /// The sessions created under this one (by the `task` tool).
    async fn children(&self, session: &str) -> Result<Vec<String>, AgentError>;

    /// The files the session changed.
    async fn changes(&self, session: &str) -> Result<Vec<FileChange>, AgentError>;

    /// Answers a permission request.
    async fn answer_permission(&self, request: &str, allow: bool) -> Result<(), AgentError>;

    /// What the server reports from now on: session activity, errors, permission requests, and whether
    /// its event stream is connected. The first update a new receiver gets says whether it is connected
    /// now.
    fn updates(&self) -> broadcast::Receiver<Update>;
}

/// The mission's journal: every event, durably, in order.
pub trait Journal: Send + Sync + fmt::Debug {
    /// Where it is kept.
    fn location(&self) -> &Path;

    /// Appends one entry; when it returns, the entry survives a crash.
    ///
    /// # Errors
    ///
    /// [`JournalError`] when it cannot be written: the mission must stop.
    fn append(&self, entry: &Entry) -> Result<(), JournalError>;

    /// Writes the plan for people to read, returning where.
    ///
    /// # Errors
    ///
    /// [`JournalError`] when it cannot be written.
    fn write_plan(&self, markdown: &str) -> Result<PathBuf, JournalError>;
}

/// The project's check commands.
#[async_trait]
pub trait Gates: Send + Sync + fmt::Debug {
    /// Runs every check in `directory` and reports each; dropping the future stops the running one.
    async fn run(&self, directory: &Path) -> GateReport;
}

/// The project's repository, for isolated work: the mission's integration branch, a worktree per task, and
/// the merge queue's merges. The user's working tree, index and branch are never touched, except by
/// [`deliver`](Workspace::deliver) at the end, and only when they did not change.
#[async_trait]
pub trait Workspace: Send + Sync + fmt::Debug {
    /// Makes the mission's integration branch at the user's HEAD.
    async fn begin(&self, mission: &str) -> Result<Origin, WorkspaceError>;

    /// The integration branch's head.
    async fn head(&self, origin: &Origin) -> Result<String, WorkspaceError>;

    /// A fresh worktree for `task` from `base`, on the task's branch; an earlier attempt's branch is kept
    /// under another name, never dropped.
    async fn open_tree(
        &self,
        origin: &Origin,
        task: &str,
        base: &str,
    ) -> Result<Tree, WorkspaceError>;

    /// Commits everything the Worker changed in the worktree; the new head, or `None` when nothing
    /// changed.
    async fn commit(&self, tree: &Tree, message: &str) -> Result<Option<String>, WorkspaceError>;

    /// The worktree's committed changes against its base, for the Reviewer.
    async fn changes(&self, tree: &Tree) -> Result<Vec<FileChange>, WorkspaceError>;

    /// Merges the task's branch onto the integration branch's head, without moving the branch.
    async fn merge(&self, origin: &Origin, task: &str) -> Result<Merge, WorkspaceError>;

    /// Moves the integration branch from `from` to `to`, if it is still at `from`; whether it moved.
    async fn advance(&self, origin: &Origin, from: &str, to: &str) -> Result<bool, WorkspaceError>;

    /// A worktree at `commit`, to run the checks on an integrated result.
    async fn open_detached(&self, origin: &Origin, commit: &str)
    -> Result<PathBuf, WorkspaceError>;

    /// Removes a worktree (its branch stays).
    async fn close_tree(&self, path: &Path) -> Result<(), WorkspaceError>;

    /// At the end: fast-forwards the user's branch to the integration branch when their tree is clean and
    /// their HEAD did not move, else says how to merge it.
    async fn deliver(&self, origin: &Origin) -> Result<Delivery, WorkspaceError>;
}

/// How much memory the machine has left, as a fraction of its RAM (0.0 to 1.0); `None` when it cannot tell.
/// Read before each task starts: under the floor, no new task starts.
pub trait Memory: Send + Sync + fmt::Debug {
    /// The fraction of RAM available now.
    fn available(&self) -> Option<f64>;
}
