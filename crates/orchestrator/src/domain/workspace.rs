//! The vocabulary of isolated parallel work: commits, the user's checkout, task worktrees, branch diffs,
//! merges and their conflicts, and what is left of a mission on disk. Doing it is the git adapter's job
//! (`adapters::git`); these are the values the engine keeps in its journal and reasons about.
//!
//! The branches of a mission (see [`integration_branch`], [`task_branch`] and [`attempt_branch`]):
//!
//! ```text
//! orchestrator/<mission>                      the integration branch: what the mission has integrated
//! orchestrator-task/<mission>/<task>          a task's branch, checked out in the task's worktree
//! orchestrator-attempt/<mission>/<task>/<n>   an earlier attempt's commits, kept when its worktree was re-created
//! ```
//!
//! Task branches cannot live under `orchestrator/<mission>/`: git stores a branch as a file named after it,
//! so `orchestrator/m1` and `orchestrator/m1/T1` cannot both exist (the second needs a directory where the
//! first is a file).
//!
//! ```
//! use orchestrator::domain::workspace::{integration_branch, task_branch};
//!
//! assert_eq!(integration_branch("m42"), "orchestrator/m42");
//! assert_eq!(task_branch("m42", "T1.2"), "orchestrator-task/m42/T1.2");
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::agent::FileChange;

/// The prefix of every integration branch: `orchestrator/<mission>`.
pub const INTEGRATION_PREFIX: &str = "orchestrator/";
/// The prefix of every task branch: `orchestrator-task/<mission>/<task>`.
pub const TASK_PREFIX: &str = "orchestrator-task/";
/// The prefix of every kept attempt: `orchestrator-attempt/<mission>/<task>/<n>`.
pub const ATTEMPT_PREFIX: &str = "orchestrator-attempt/";

/// The mission's integration branch (a short branch name, without `refs/heads/`).
pub fn integration_branch(mission: &str) -> String {
    format!("{INTEGRATION_PREFIX}{mission}")
}

/// The branch a task's worktree has checked out.
pub fn task_branch(mission: &str, task: &str) -> String {
    format!("{TASK_PREFIX}{mission}/{task}")
}

/// The branch that keeps the commits of a task's attempt number `attempt` (1 for the first one kept).
pub fn attempt_branch(mission: &str, task: &str, attempt: u32) -> String {
    format!("{ATTEMPT_PREFIX}{mission}/{task}/{attempt}")
}

/// What a mission or task id must look like to name a branch and a directory, before git's own check
/// (`git check-ref-format`) has its say: one path component, so the names above stay unambiguous and a
/// directory named after it stays where it belongs. `Err` says what is wrong.
///
/// ```
/// use orchestrator::domain::workspace::check_id_shape;
///
/// assert!(check_id_shape("T1.2").is_ok());
/// assert!(check_id_shape("a/b").is_err());
/// assert!(check_id_shape("..").is_err());
/// ```
pub fn check_id_shape(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("it is empty");
    }
    if id.len() > 100 {
        return Err("it is longer than 100 bytes");
    }
    if id.contains('/') || id.contains('\\') {
        return Err("it contains a slash");
    }
    if id.starts_with('.') || id.starts_with('-') {
        return Err("it starts with `.` or `-`");
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("it contains a space or a control character");
    }
    Ok(())
}

/// A commit's full object name, in lowercase hex (40 digits for SHA-1, 64 for SHA-256).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitId(String);

impl CommitId {
    /// The id in `hex`, if it is a full object name (surrounding whitespace is ignored).
    ///
    /// ```
    /// use orchestrator::domain::workspace::CommitId;
    ///
    /// let id = CommitId::parse("0123456789abcdef0123456789abcdef01234567\n").unwrap();
    /// assert_eq!(id.short(), "0123456789ab");
    /// assert!(CommitId::parse("HEAD").is_none());
    /// ```
    pub fn parse(hex: &str) -> Option<Self> {
        let hex = hex.trim();
        let shaped = matches!(hex.len(), 40 | 64)
            && hex
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        shaped.then(|| Self(hex.to_owned()))
    }

    /// The full hex name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, for people to read.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl TryFrom<String> for CommitId {
    type Error = String;

    fn try_from(hex: String) -> Result<Self, Self::Error> {
        Self::parse(&hex).ok_or_else(|| format!("`{hex}` is not a full commit id"))
    }
}

impl From<CommitId> for String {
    fn from(id: CommitId) -> Self {
        id.0
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommitId({})", self.short())
    }
}

/// What `HEAD` of a checkout points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// A branch, by its short name (`main`).
    Branch(String),
    /// A commit, with no branch (a detached `HEAD`).
    Detached,
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Head::Branch(name) => write!(f, "branch {name}"),
            Head::Detached => f.write_str("a detached HEAD"),
        }
    }
}

/// The uncommitted changes of a checkout, as paths relative to its top level. Files that `.gitignore`
/// ignores and the orchestrator's own files (`.opencode/orchestrator/`) are not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkingChanges {
    /// Tracked files with changes, staged or not (and unmerged ones).
    pub tracked: Vec<String>,
    /// Files git does not track (a directory with nothing tracked in it counts once, as `dir/`).
    pub untracked: Vec<String>,
}

impl WorkingChanges {
    /// Whether there is nothing uncommitted.
    pub fn is_clean(&self) -> bool {
        self.tracked.is_empty() && self.untracked.is_empty()
    }
}

/// The user's checkout as a mission finds it: where it is, what `HEAD` is, and what is not committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// The top level of the working tree.
    pub top_level: PathBuf,
    /// Where the project directory is below the top level (empty when it is the top level), so that the
    /// same directory can be found in a task's worktree.
    pub prefix: PathBuf,
    /// The branch checked out, or none.
    pub head: Head,
    /// The commit `HEAD` resolves to: where a mission starts.
    pub commit: CommitId,
    /// What is not committed, and so not part of a mission started now.
    pub changes: WorkingChanges,
}

/// A task's worktree: a directory of its own, on its own branch, outside the user's working tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskWorktree {
    /// The mission.
    pub mission: String,
    /// The task.
    pub task: String,
    /// The worktree's top level.
    pub path: PathBuf,
    /// Its branch ([`task_branch`]).
    pub branch: String,
    /// The commit the branch started from.
    pub base: CommitId,
    /// The earlier attempt's branch that was kept when this worktree replaced it, if it had commits.
    pub kept: Option<KeptAttempt>,
}

/// The commits of an earlier attempt at a task, kept on a branch of their own ([`attempt_branch`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptAttempt {
    /// The branch that keeps them.
    pub branch: String,
    /// Its head.
    pub head: CommitId,
}

/// How a file changed between two commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// New.
    Added,
    /// Changed in place.
    Modified,
    /// Gone.
    Deleted,
    /// Moved, maybe with changes ([`FileStat::old_path`] says from where).
    Renamed,
    /// Its type changed (a file became a symbolic link, or the other way).
    TypeChanged,
}

/// One file of a [`BranchDiff`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// The path after the change (for a deletion: the deleted path).
    pub path: String,
    /// For a rename: the path before it.
    pub old_path: Option<String>,
    /// How it changed.
    pub status: FileStatus,
    /// Lines added; `None` for a binary file.
    pub additions: Option<u64>,
    /// Lines deleted; `None` for a binary file.
    pub deletions: Option<u64>,
}

/// What a branch changed since its base: for the Reviewer to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchDiff {
    /// The commit compared against.
    pub base: CommitId,
    /// The branch's head that was compared.
    pub head: CommitId,
    /// Every changed file, whatever the size of the text.
    pub files: Vec<FileStat>,
    /// The unified diff, cut at a line boundary when it is longer than the limit asked for.
    pub text: String,
    /// The size of the whole unified diff, in bytes; more than `text.len()` when it was cut.
    pub total_bytes: u64,
}

impl BranchDiff {
    /// Whether [`text`](Self::text) is only the start of the diff.
    pub fn is_truncated(&self) -> bool {
        (self.text.len() as u64) < self.total_bytes
    }

    /// Whether the branch changed nothing.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The diff as one [`FileChange`] per file, for the Reviewer and the summary, with paths relative to
    /// `prefix` (the project's directory below the repository's top level; empty when they are the same).
    /// Files outside the project's directory are left out. A file whose part of the diff is beyond the cut
    /// (see [`is_truncated`](Self::is_truncated)) has an empty patch; its line counts are still there.
    pub fn file_changes(&self, prefix: &Path) -> Vec<FileChange> {
        let patches = split_patches(&self.text);
        let prefix = prefix.to_string_lossy();
        let prefix = prefix.trim_end_matches('/');
        self.files
            .iter()
            .filter_map(|file| {
                let path = if prefix.is_empty() {
                    file.path.as_str()
                } else {
                    file.path.strip_prefix(prefix)?.strip_prefix('/')?
                };
                let header = format!(" b/{}", file.path);
                let patch = patches
                    .iter()
                    .find(|patch| {
                        patch
                            .lines()
                            .next()
                            .is_some_and(|line| line.ends_with(&header))
                    })
                    .map_or_else(String::new, |patch| (*patch).to_owned());
                Some(FileChange {
                    path: path.to_owned(),
                    status: match file.status {
                        FileStatus::Added => "added",
                        FileStatus::Modified | FileStatus::TypeChanged => "modified",
                        FileStatus::Deleted => "deleted",
                        FileStatus::Renamed => "renamed",
                    }
                    .to_owned(),
                    additions: file.additions.unwrap_or(0),
                    deletions: file.deletions.unwrap_or(0),
                    patch,
                })
            })
            .collect()
    }
}

/// A unified diff cut into one part per file, each starting at its `diff --git` line.
fn split_patches(text: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = text
        .match_indices("diff --git ")
        .map(|(at, _)| at)
        .filter(|&at| at == 0 || text.as_bytes()[at - 1] == b'\n')
        .collect();
    starts.push(text.len());
    starts
        .windows(2)
        .map(|pair| &text[pair[0]..pair[1]])
        .collect()
}

/// One region of a conflicted file: the conflict markers with some lines of context around them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictHunk {
    /// The line number (from 1) of the hunk's first line in the file with its markers.
    pub first_line: usize,
    /// The lines, each ending with a newline.
    pub text: String,
}

/// A file that a merge could not resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictFile {
    /// The file.
    pub path: String,
    /// What git said about it, e.g. `CONFLICT (content): Merge conflict in src/lib.rs`.
    pub messages: Vec<String>,
    /// The regions with conflict markers; none for a conflict without markers (a file deleted on one side
    /// and changed on the other, a binary file).
    pub hunks: Vec<ConflictHunk>,
    /// Whether hunks were left out to keep the report short.
    pub hunks_truncated: bool,
}

/// Why a task's branch could not be merged into the integration branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeConflict {
    /// The integration branch's head the merge was tried on (the branch was left there).
    pub onto: CommitId,
    /// The task branch's head.
    pub task_head: CommitId,
    /// The conflicted files, in path order.
    pub files: Vec<ConflictFile>,
}

impl MergeConflict {
    /// The conflicted paths.
    pub fn paths(&self) -> Vec<&str> {
        self.files.iter().map(|file| file.path.as_str()).collect()
    }

    /// The findings a Worker gets when its task goes back to it: each file, what git said, and its hunks
    /// (the integration branch's side first, the task's second).
    pub fn for_worker(&self) -> String {
        let mut text = format!(
            "Your branch (at {}) conflicts with the integration branch (at {}) in {} file(s). Redo the change \
             on top of the integrated work; these are the conflicting regions, the integration branch's side \
             first:\n",
            self.task_head.short(),
            self.onto.short(),
            self.files.len()
        );
        for file in &self.files {
            text.push_str(&format!("\n### {}\n\n", file.path));
            for message in &file.messages {
                text.push_str(message);
                text.push('\n');
            }
            for hunk in &file.hunks {
                let fence = fence_for(&hunk.text);
                text.push_str(&format!(
                    "\nFrom line {}:\n\n{fence}text\n{}{fence}\n",
                    hunk.first_line, hunk.text
                ));
            }
            if file.hunks_truncated {
                text.push_str("\n(more conflicting regions left out)\n");
            }
        }
        text
    }
}

/// A code fence longer than any run of backticks in `text`.
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat(longest.max(2) + 1)
}

/// What trying to merge a task's branch into the integration branch found, before anything moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergePlan {
    /// The integration branch can move to `to`: the task's head itself (a fast-forward) or a new merge
    /// commit of both, written but not yet on any branch.
    Ready {
        /// The integration branch's head the merge was computed on.
        onto: CommitId,
        /// The commit the integration branch should move to.
        to: CommitId,
        /// Whether `to` is the task's head (the integration branch had not moved since the task's base).
        fast_forward: bool,
    },
    /// The task's head is already on the integration branch: nothing to do.
    AlreadyIntegrated {
        /// The integration branch's head.
        head: CommitId,
    },
    /// The branches conflict; nothing was changed.
    Conflict(MergeConflict),
}

/// What a merge into the integration branch did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeOutcome {
    /// The integration branch moved from `from` to `to`.
    Integrated {
        /// Its head before.
        from: CommitId,
        /// Its head now.
        to: CommitId,
        /// Whether it was a fast-forward to the task's head (no merge commit).
        fast_forward: bool,
    },
    /// The task's head was already on the integration branch, which stayed at `head`.
    AlreadyIntegrated {
        /// The integration branch's head.
        head: CommitId,
    },
    /// The branches conflict; the integration branch did not move.
    Conflict(MergeConflict),
}

/// Why the user's branch was not fast-forwarded at the end of a mission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishRefusal {
    /// The user's working tree has uncommitted changes.
    Dirty(WorkingChanges),
    /// The user's `HEAD` is no longer where the mission started.
    HeadMoved {
        /// What it was at the start.
        expected: Head,
        /// The commit it was at.
        expected_commit: CommitId,
        /// What it is now.
        found: Head,
        /// The commit it is at now (`None`: it resolves to none).
        found_commit: Option<CommitId>,
    },
    /// The integration branch does not descend from the mission's start (someone rewrote it).
    Diverged {
        /// The integration branch's head.
        integration: CommitId,
    },
}

impl fmt::Display for FinishRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinishRefusal::Dirty(changes) => write!(
                f,
                "the working tree has uncommitted changes ({} changed, {} untracked)",
                changes.tracked.len(),
                changes.untracked.len()
            ),
            FinishRefusal::HeadMoved {
                expected,
                expected_commit,
                found,
                found_commit,
            } => write!(
                f,
                "HEAD moved since the mission started: it was {expected} at {}, it is {found} at {}",
                expected_commit.short(),
                found_commit.as_ref().map_or("no commit", CommitId::short)
            ),
            FinishRefusal::Diverged { integration } => write!(
                f,
                "the integration branch (at {}) no longer descends from the mission's start",
                integration.short()
            ),
        }
    }
}

/// What became of the user's branch at the end of a mission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishOutcome {
    /// `HEAD` (the branch, or the detached `HEAD`) and the working tree moved to the integration branch.
    FastForwarded {
        /// The branch that moved, or `None` for a detached `HEAD`.
        branch: Option<String>,
        /// Where it was.
        from: CommitId,
        /// Where it is.
        to: CommitId,
    },
    /// The integration branch has nothing that `HEAD` lacks (the mission integrated nothing).
    UpToDate {
        /// `HEAD`'s commit.
        head: CommitId,
    },
    /// Nothing was touched; the user can merge with `command`.
    Refused {
        /// Why.
        reason: FinishRefusal,
        /// The command that merges the mission's result into the user's branch, ready to paste in a shell.
        command: String,
    },
}

/// What a worktree of the repository has checked out, from `git worktree list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeEntry {
    /// Its top level.
    pub path: PathBuf,
    /// Its `HEAD` commit (`None` before the first commit).
    pub head: Option<CommitId>,
    /// Its branch, by short name; `None` when detached.
    pub branch: Option<String>,
    /// Whether git says its directory is gone (`git worktree prune` would remove its record).
    pub prunable: bool,
}

/// What an orchestrator branch is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchRole {
    /// A mission's integration branch.
    Integration,
    /// A task's branch.
    Task {
        /// The task.
        task: String,
    },
    /// A kept earlier attempt at a task.
    Attempt {
        /// The task.
        task: String,
        /// Which attempt.
        attempt: u32,
    },
}

/// One of the branches the orchestrator made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchEntry {
    /// Its short name.
    pub name: String,
    /// Its head.
    pub head: CommitId,
    /// The mission.
    pub mission: String,
    /// What it is for.
    pub role: BranchRole,
}

impl BranchEntry {
    /// The mission and role a branch name stands for, if it is one of the orchestrator's.
    ///
    /// ```
    /// use orchestrator::domain::workspace::{BranchEntry, BranchRole};
    ///
    /// assert_eq!(
    ///     BranchEntry::role_of("orchestrator-attempt/m1/T2/3"),
    ///     Some(("m1".to_owned(), BranchRole::Attempt { task: "T2".to_owned(), attempt: 3 }))
    /// );
    /// assert_eq!(BranchEntry::role_of("main"), None);
    /// ```
    pub fn role_of(name: &str) -> Option<(String, BranchRole)> {
        if let Some(rest) = name.strip_prefix(TASK_PREFIX) {
            let (mission, task) = rest.split_once('/')?;
            return (!task.contains('/')).then(|| {
                (
                    mission.to_owned(),
                    BranchRole::Task {
                        task: task.to_owned(),
                    },
                )
            });
        }
        if let Some(rest) = name.strip_prefix(ATTEMPT_PREFIX) {
            let mut parts = rest.split('/');
            let (Some(mission), Some(task), Some(attempt), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            let attempt = attempt.parse().ok()?;
            return Some((
                mission.to_owned(),
                BranchRole::Attempt {
                    task: task.to_owned(),
                    attempt,
                },
            ));
        }
        let mission = name.strip_prefix(INTEGRATION_PREFIX)?;
        (!mission.contains('/')).then(|| (mission.to_owned(), BranchRole::Integration))
    }
}

/// What the orchestrator left in a repository: for `orchestrator clean` and for `resume` to re-attach.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leftovers {
    /// Worktrees under the orchestrator's worktree directory or on one of its branches.
    pub worktrees: Vec<WorktreeEntry>,
    /// The orchestrator's branches.
    pub branches: Vec<BranchEntry>,
}

// What the engine journals of isolated work.

/// Where a mission starts from (journaled when it starts): the user's checkout then, and its integration
/// branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The mission.
    pub mission: String,
    /// The user's checkout when the mission started (its `HEAD` is where the mission starts from).
    pub checkout: Checkout,
    /// The mission's integration branch.
    pub integration: String,
}

impl Origin {
    /// The commit the mission started from.
    pub fn base(&self) -> &str {
        self.checkout.commit.as_str()
    }

    /// Whether the user's tree had changes the mission does not see (it starts from `HEAD`).
    pub fn dirty(&self) -> bool {
        !self.checkout.changes.is_clean()
    }
}

/// A task's worktree, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// The directory the task's agents work in (the project's directory inside the worktree).
    pub path: PathBuf,
    /// The worktree's top level (what is removed at the end).
    pub root: PathBuf,
    /// Its branch.
    pub branch: String,
    /// The integration branch's commit it was made from.
    pub base: String,
    /// An earlier attempt's branch kept when this worktree replaced it.
    pub kept: Option<String>,
}

/// A task's branch merged onto the integration branch, computed before the branch moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Merge {
    /// The integration branch can move from `onto` to `result`.
    Ready {
        /// The integration branch's head the merge was computed on.
        onto: String,
        /// The commit it moves to.
        result: String,
        /// Whether `result` is the task's own head (the branch had not moved since the task's base).
        fast_forward: bool,
    },
    /// The task's head is on the integration branch already (a merge a crash cut short was done).
    AlreadyIntegrated {
        /// The integration branch's head.
        head: String,
    },
    /// The task's changes conflict with what was integrated since its base; nothing moved.
    Conflict {
        /// The conflicting files.
        files: Vec<String>,
        /// What the Worker is told: the files, git's messages and the conflicting hunks.
        findings: String,
    },
}

/// What the end of a mission did to the user's branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// The user's branch (or detached `HEAD`) and working tree moved to the mission's result.
    FastForwarded {
        /// The branch, or `None` for a detached `HEAD`.
        branch: Option<String>,
        /// The commit it points at now.
        commit: String,
    },
    /// The result stays on the integration branch: the user's tree or branch changed meanwhile, or the
    /// mission did not complete.
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
#[error("{what}")]
pub struct WorkspaceError {
    /// What was being done.
    pub what: String,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(digit: char) -> CommitId {
        CommitId::parse(&digit.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn a_branch_diff_splits_into_file_changes_below_the_project() {
        let text = "diff --git a/app/src/a.rs b/app/src/a.rs\nindex 1..2 100644\n--- a/app/src/a.rs\n+++ b/app/src/a.rs\n@@ -1 +1 @@\n-x\n+diff --git y\n\
                    diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1,2 @@\n a\n+b\n\
                    diff --git a/app/new.txt b/app/new.txt\nnew file mode 100644\n";
        let stat = |path: &str, status, additions| FileStat {
            path: path.to_owned(),
            old_path: None,
            status,
            additions,
            deletions: Some(1),
        };
        let diff = BranchDiff {
            base: id('a'),
            head: id('b'),
            files: vec![
                stat("README.md", FileStatus::Modified, Some(1)),
                stat("app/new.txt", FileStatus::Added, None),
                stat("app/src/a.rs", FileStatus::Modified, Some(1)),
            ],
            text: text.to_owned(),
            total_bytes: text.len() as u64,
        };
        let changes = diff.file_changes(Path::new("app"));
        let paths: Vec<&str> = changes.iter().map(|change| change.path.as_str()).collect();
        assert_eq!(paths, ["new.txt", "src/a.rs"]);
        assert_eq!(changes[0].status, "added");
        assert_eq!(changes[0].additions, 0, "a binary file has no line counts");
        assert!(changes[1].patch.starts_with("diff --git a/app/src/a.rs"));
        assert!(
            changes[1].patch.ends_with("+diff --git y\n"),
            "a line inside a hunk does not start a file: {:?}",
            changes[1].patch
        );
        let all = diff.file_changes(Path::new(""));
        assert_eq!(all.len(), 3);
        assert!(all[0].patch.contains("+b\n") && !all[0].patch.contains("a.rs"));
    }

    #[test]
    fn commit_ids_are_full_lowercase_hex() {
        assert!(CommitId::parse(&"a".repeat(64)).is_some());
        assert!(CommitId::parse(&"A".repeat(40)).is_none());
        assert!(CommitId::parse(&"a".repeat(39)).is_none());
        assert!(CommitId::parse(&"g".repeat(40)).is_none());
        let json = serde_json::to_string(&id('1')).unwrap();
        assert_eq!(json, format!("\"{}\"", "1".repeat(40)));
        assert_eq!(serde_json::from_str::<CommitId>(&json).unwrap(), id('1'));
        assert!(serde_json::from_str::<CommitId>("\"HEAD\"").is_err());
    }

    #[test]
    fn branch_names_round_trip_through_their_roles() {
        assert_eq!(
            BranchEntry::role_of(&integration_branch("m1")),
            Some(("m1".to_owned(), BranchRole::Integration))
        );
        assert_eq!(
            BranchEntry::role_of(&task_branch("m1", "T1.2")),
            Some((
                "m1".to_owned(),
                BranchRole::Task {
                    task: "T1.2".to_owned()
                }
            ))
        );
        assert_eq!(
            BranchEntry::role_of(&attempt_branch("m1", "T1", 2)),
            Some((
                "m1".to_owned(),
                BranchRole::Attempt {
                    task: "T1".to_owned(),
                    attempt: 2
                }
            ))
        );
        assert_eq!(BranchEntry::role_of("orchestrator/m1/extra"), None);
        assert_eq!(BranchEntry::role_of("orchestrator-attempt/m1/T1/x"), None);
    }

    #[test]
    fn ids_are_one_path_component() {
        for bad in ["", "a/b", "a\\b", ".hidden", "-flag", "with space", "tab\t"] {
            assert!(check_id_shape(bad).is_err(), "{bad:?}");
        }
        for good in ["m1712345678901", "T1.2", "task_3-b"] {
            assert!(check_id_shape(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn a_conflict_reads_as_findings_with_fenced_hunks() {
        let conflict = MergeConflict {
            onto: id('a'),
            task_head: id('b'),
            files: vec![ConflictFile {
                path: "src/lib.rs".to_owned(),
                messages: vec!["CONFLICT (content): Merge conflict in src/lib.rs".to_owned()],
                hunks: vec![ConflictHunk {
                    first_line: 3,
                    text: "<<<<<<< ours\n```\n=======\nb\n>>>>>>> theirs\n".to_owned(),
                }],
                hunks_truncated: true,
            }],
        };
        let text = conflict.for_worker();
        assert!(
            text.contains("### src/lib.rs\n\nCONFLICT (content)"),
            "{text}"
        );
        assert!(
            text.contains("From line 3:\n\n````text\n<<<<<<< ours\n```\n"),
            "{text}"
        );
        assert!(
            text.contains("(more conflicting regions left out)"),
            "{text}"
        );
        assert_eq!(conflict.paths(), ["src/lib.rs"]);
    }
}
