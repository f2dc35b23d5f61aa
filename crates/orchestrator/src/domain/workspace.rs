//! Isolated work, as the engine and the journal see it: where a mission starts from in the user's
//! repository, each task's worktree and branch, a merge onto the integration branch and how it came out,
//! and what happened to the user's branch at the end. The git adapter produces these.

use std::error::Error as StdError;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a mission starts from: the user's HEAD when it began, and its integration branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The commit the mission started from (the user's HEAD).
    pub base: String,
    /// The user's branch, or `None` for a detached HEAD.
    pub user_branch: Option<String>,
    /// The mission's integration branch, `orchestrator/<mission>`.
    pub integration: String,
    /// Whether the user's tree had changes the mission does not see (it starts from HEAD).
    pub dirty: bool,
}

/// A task's own worktree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// The worktree's directory (outside the user's working tree).
    pub path: PathBuf,
    /// Its branch, `orchestrator/<mission>/<task>`.
    pub branch: String,
    /// The integration branch's commit it was made from.
    pub base: String,
}

/// One conflicting file of a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The file, relative to the repository.
    pub path: String,
    /// The conflicting hunks, with markers and some context.
    pub hunks: String,
}

/// How a merge onto the integration branch came out (the branch itself is not moved yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Merge {
    /// The integration branch had not moved since the task's base: the task's head is the result.
    FastForward {
        /// The task's head.
        commit: String,
    },
    /// A merge commit of the task's head onto the integration branch's head.
    Merged {
        /// The merge commit.
        commit: String,
    },
    /// The task's changes conflict with what was integrated since its base.
    Conflict {
        /// The conflicting files.
        files: Vec<Conflict>,
    },
}

/// What the end of a mission did to the user's branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// The user's branch was fast-forwarded to the mission's result.
    FastForwarded {
        /// The branch.
        branch: String,
        /// The commit it points at now.
        commit: String,
    },
    /// The user's tree or branch changed meanwhile (or HEAD is detached): the result stays on the
    /// integration branch.
    Kept {
        /// Why.
        reason: String,
        /// The command that merges it.
        command: String,
    },
    /// Nothing was integrated: nothing to deliver.
    Nothing,
}

/// A workspace operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct WorkspaceError {
    /// What was being done.
    pub what: String,
    /// Why.
    #[source]
    pub source: Box<dyn StdError + Send + Sync>,
}
