//! The adapters behind the engine's ports: the command line is the one layer that knows both.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::adapters::gate::ProjectGate;
use crate::adapters::git::{GitError, GitWorkspace};
use crate::adapters::journal::FileJournal;
use crate::adapters::memory::SystemMemory;
use crate::adapters::opencode::Opencode;
use crate::domain::agent::{Activities, AgentError, AgentMessage, FileChange, TurnRequest, Update};
use crate::domain::gate::GateReport;
use crate::domain::mission::{Entry, JournalError};
use crate::domain::workspace::{
    CommitId, Delivery, FinishOutcome, Merge, MergePlan, Origin, Tree, WorkspaceError,
    integration_branch,
};
use crate::engine::ports::{Agents, Gates, Journal, Memory, Workspace};

#[async_trait]
impl Agents for Opencode {
    fn url(&self) -> &str {
        Opencode::url(self)
    }

    async fn create_session(
        &self,
        title: &str,
        parent: Option<&str>,
        directory: Option<&Path>,
    ) -> Result<String, AgentError> {
        Opencode::create_session(self, title, parent, directory).await
    }

    async fn session_exists(&self, session: &str) -> Result<bool, AgentError> {
        Opencode::session_exists(self, session).await
    }

    async fn prompt(&self, session: &str, request: &TurnRequest) -> Result<(), AgentError> {
        Opencode::prompt(self, session, request).await
    }

    async fn prompt_and_wait(
        &self,
        session: &str,
        request: &TurnRequest,
    ) -> Result<AgentMessage, AgentError> {
        Opencode::prompt_and_wait(self, session, request).await
    }

    async fn messages(&self, session: &str) -> Result<Vec<AgentMessage>, AgentError> {
        Opencode::messages(self, session).await
    }

    async fn activities(&self) -> Result<Activities, AgentError> {
        Opencode::activities(self).await
    }

    async fn abort(&self, session: &str) -> Result<(), AgentError> {
        Opencode::abort(self, session).await
    }

    async fn children(&self, session: &str) -> Result<Vec<String>, AgentError> {
        Opencode::children(self, session).await
    }

    async fn changes(&self, session: &str) -> Result<Vec<FileChange>, AgentError> {
        Opencode::changes(self, session).await
    }

    async fn answer_permission(&self, request: &str, allow: bool) -> Result<(), AgentError> {
        Opencode::answer_permission(self, request, allow).await
    }

    fn updates(&self) -> broadcast::Receiver<Update> {
        Opencode::updates(self)
    }
}

impl Journal for FileJournal {
    fn location(&self) -> &Path {
        self.directory()
    }

    fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        FileJournal::append(self, entry)
    }

    fn write_plan(&self, markdown: &str) -> Result<PathBuf, JournalError> {
        FileJournal::write_plan(self, markdown)
    }
}

#[async_trait]
impl Gates for ProjectGate {
    async fn run(&self, directory: &Path) -> GateReport {
        ProjectGate::run(self, directory).await
    }
}

impl Memory for SystemMemory {
    fn available(&self) -> Option<f64> {
        SystemMemory::available(self)
    }
}

/// The most of a task's diff the Reviewer reads (the file list is always whole).
const DIFF_LIMIT: usize = 256 * 1024;

fn failed(what: impl Into<String>) -> impl FnOnce(GitError) -> WorkspaceError {
    let what = what.into();
    move |error| WorkspaceError {
        what,
        source: Box::new(error),
    }
}

fn commit_id(commit: &str, what: &str) -> Result<CommitId, WorkspaceError> {
    CommitId::parse(commit).ok_or_else(|| WorkspaceError {
        what: what.to_string(),
        source: format!("`{commit}` is not a full commit id").into(),
    })
}

#[async_trait]
impl Workspace for GitWorkspace {
    async fn begin(&self, mission: &str) -> Result<Origin, WorkspaceError> {
        let checkout = self
            .inspect()
            .await
            .map_err(failed("read the project's git checkout"))?;
        let what = format!("create the integration branch of mission {mission}");
        let integration = match self
            .create_integration_branch(mission, &checkout.commit)
            .await
        {
            Ok(branch) => branch,
            // Made by a run that stopped before it journaled the mission's start: the same branch.
            Err(GitError::BranchExists { branch, at }) if at == checkout.commit => branch,
            Err(error) => return Err(failed(what)(error)),
        };
        Ok(Origin {
            mission: mission.to_string(),
            checkout,
            integration,
        })
    }

    async fn head(&self, origin: &Origin) -> Result<String, WorkspaceError> {
        self.integration_head(&origin.mission)
            .await
            .map(|head| head.as_str().to_string())
            .map_err(failed(format!("read the head of {}", origin.integration)))
    }

    async fn open_tree(
        &self,
        origin: &Origin,
        task: &str,
        base: &str,
    ) -> Result<Tree, WorkspaceError> {
        let what = format!("create the worktree of task {task}");
        let base = commit_id(base, &what)?;
        let worktree = self
            .create_task_worktree(&origin.mission, task, &base)
            .await
            .map_err(failed(what))?;
        Ok(Tree {
            path: self.project_dir_in(&worktree.path),
            root: worktree.path,
            branch: worktree.branch,
            base: worktree.base.as_str().to_string(),
            kept: worktree.kept.map(|kept| kept.branch),
        })
    }

    async fn commit(&self, tree: &Tree, message: &str) -> Result<Option<String>, WorkspaceError> {
        self.commit_all(&tree.root, message)
            .await
            .map(|head| head.map(|head| head.as_str().to_string()))
            .map_err(failed(format!("commit the work on {}", tree.branch)))
    }

    async fn changes(&self, tree: &Tree) -> Result<Vec<FileChange>, WorkspaceError> {
        let what = format!("read what {} changed", tree.branch);
        let base = commit_id(&tree.base, &what)?;
        let diff = self
            .diff(&base, &tree.branch, DIFF_LIMIT)
            .await
            .map_err(failed(what))?;
        let prefix = tree.path.strip_prefix(&tree.root).unwrap_or(Path::new(""));
        Ok(diff.file_changes(prefix))
    }

    async fn merge(&self, origin: &Origin, task: &str) -> Result<Merge, WorkspaceError> {
        let plan = self
            .prepare_merge(&origin.mission, task)
            .await
            .map_err(failed(format!(
                "merge task {task} onto {}",
                origin.integration
            )))?;
        Ok(match plan {
            MergePlan::Ready {
                onto,
                to,
                fast_forward,
            } => Merge::Ready {
                onto: onto.as_str().to_string(),
                result: to.as_str().to_string(),
                fast_forward,
            },
            MergePlan::AlreadyIntegrated { head } => Merge::AlreadyIntegrated {
                head: head.as_str().to_string(),
            },
            MergePlan::Conflict(conflict) => Merge::Conflict {
                files: conflict.paths().into_iter().map(str::to_string).collect(),
                findings: conflict.for_worker(),
            },
        })
    }

    async fn advance(&self, origin: &Origin, from: &str, to: &str) -> Result<bool, WorkspaceError> {
        let what = format!("move {} to {to}", origin.integration);
        let (from, to) = (commit_id(from, &what)?, commit_id(to, &what)?);
        match self.advance_integration(&origin.mission, &from, &to).await {
            Ok(()) => Ok(true),
            Err(GitError::RefMoved { .. }) => Ok(false),
            Err(error) => Err(failed(what)(error)),
        }
    }

    async fn open_detached(
        &self,
        origin: &Origin,
        commit: &str,
    ) -> Result<PathBuf, WorkspaceError> {
        let what = format!("check out {commit} to check the integrated result");
        let commit = commit_id(commit, &what)?;
        let root = self
            .create_integration_worktree(&origin.mission, &commit)
            .await
            .map_err(failed(what))?;
        Ok(self.project_dir_in(&root))
    }

    async fn close_tree(&self, path: &Path) -> Result<(), WorkspaceError> {
        // `path` is a worktree's top level, or the project's directory inside one (`open_detached`).
        let root = path
            .ancestors()
            .find(|root| self.project_dir_in(root) == path)
            .unwrap_or(path);
        self.remove_worktree(root)
            .await
            .map_err(failed(format!("remove the worktree {}", root.display())))
    }

    async fn deliver(&self, origin: &Origin) -> Result<Delivery, WorkspaceError> {
        let outcome = self
            .finish(&origin.mission, &origin.checkout)
            .await
            .map_err(failed(format!(
                "bring {} to the project's checkout",
                integration_branch(&origin.mission)
            )))?;
        Ok(match outcome {
            FinishOutcome::FastForwarded { branch, to, .. } => Delivery::FastForwarded {
                branch,
                commit: to.as_str().to_string(),
            },
            FinishOutcome::UpToDate { .. } => Delivery::Nothing,
            FinishOutcome::Refused { reason, command } => Delivery::Kept {
                reason: reason.to_string(),
                command,
            },
        })
    }
}
