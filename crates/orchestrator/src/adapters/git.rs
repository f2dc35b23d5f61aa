//! Isolated parallel work in git: each task in a worktree of its own, on a branch of its own, integrated into
//! the mission's branch without ever touching the user's working tree, index or `HEAD` until the very end.
//!
//! ```no_run
//! # async fn mission(project: &std::path::Path) -> Result<(), orchestrator::adapters::git::GitError> {
//! use orchestrator::adapters::git::{GitWorkspace, MergeOutcome};
//!
//! let git = GitWorkspace::open(project).await?;
//! let start = git.inspect().await?; // the user's branch, HEAD commit, uncommitted changes
//! git.create_integration_branch("m1", &start.commit).await?;
//! let base = git.integration_head("m1").await?;
//! let task = git.create_task_worktree("m1", "T1", &base).await?;
//! // ... a Worker edits files in task.path ...
//! git.commit_all(&task.path, "T1: add the parser").await?;
//! let diff = git.diff(&task.base, &task.branch, 256 * 1024).await?; // for the Reviewer
//! match git.merge("m1", "T1").await? {
//!     MergeOutcome::Integrated { to, .. } => println!("integrated as {to}"),
//!     MergeOutcome::AlreadyIntegrated { .. } => {}
//!     MergeOutcome::Conflict(conflict) => println!("{}", conflict.for_worker()),
//! }
//! git.remove_worktree(&task.path).await?;
//! let outcome = git.finish("m1", &start).await?; // fast-forward the user's branch, or say how to merge
//! # let _ = (diff, outcome);
//! # Ok(())
//! # }
//! ```
//!
//! # Why the git command line, not `gix`
//!
//! Every operation here runs the `git` program (2.38 or newer). gix (gitoxide) was the alternative; its own
//! feature list (`crate-status.md`) decided it:
//!
//! - it creates linked worktrees, but cannot remove, move or repair them, and its checkout does not apply
//!   `.gitattributes` clean/smudge filters (Git LFS, `eol` conversions), which a user's project may rely on;
//! - it has tree and commit merges (`gix-merge`), but its authors call the tree merge's logic "too insane"
//!   to be proven correct, and it has no equivalent of `git merge-tree --write-tree`'s list of conflicted
//!   files with git's own messages;
//! - it cannot stage a working tree with `.gitignore` handling (`git add -A`), nor write a unified diff
//!   patch, both needed here;
//! - its current release (0.91) needs Rust 1.95, above the workspace's `rust-version` (1.88), and would add
//!   a large dependency tree to a crate built on 2 cores.
//!
//! The command line does each of these exactly as the user's own git would, with their configuration,
//! attributes and filters: `git worktree add/remove/prune/list`, `git merge-tree --write-tree` (a real
//! three-way merge with rename detection and a virtual merge base, entirely in the object store), `git
//! commit-tree` and `git update-ref` with an expected old value (a compare-and-swap). The price is a process
//! per operation (a few milliseconds; see `docs/benchmarks.md`), and output to parse: every command uses a
//! porcelain or `-z` format meant for scripts.
//!
//! # How each command runs
//!
//! Arguments are passed as they are (no shell), with `--no-pager`; configuration that could change the
//! output or start something is overridden (`core.quotepath=off`, no colours, no pager, no hooks
//! (`core.hooksPath=/dev/null`: the gate is the check, not the user's hooks), no fsmonitor daemon, no
//! automatic gc or maintenance in the background, no commit signing); the environment has
//! `GIT_TERMINAL_PROMPT=0`, `LC_ALL=C` (git's messages are kept and matched in English),
//! `GIT_OPTIONAL_LOCKS=0` (reading the user's checkout never writes its index) and none of the variables that
//! would point git at another repository (`GIT_DIR`, `GIT_WORK_TREE`, `GIT_INDEX_FILE`, ...). Each command has
//! a timeout ([`GitWorkspace::with_timeout`], 120 s by default): its process group gets SIGTERM (git removes
//! its lock files on SIGTERM), then SIGKILL 2 s later. Dropping a future sends SIGTERM too. Its stderr is kept
//! in the error.
//!
//! Commits the orchestrator makes have a fixed author and committer, `orchestrator <orchestrator@localhost>`,
//! so they work when the user has no git identity configured.
//!
//! Mission and task ids become parts of branch names and directories: each must be one path component
//! ([`check_id_shape`]) that `git check-ref-format` accepts in its branch name.
//!
//! # On disk
//!
//! ```text
//! ~/.cache/orchestrator/worktrees/<repo>-<hash>/     the worktree root ($XDG_CACHE_HOME if set)
//!     <mission>/tasks/<task>/                        a task's worktree, on orchestrator-task/<mission>/<task>
//!     <mission>/integration/                         the integrated result, detached, for the gate
//! ```
//!
//! `<repo>` is the name of the user's top-level directory and `<hash>` a hash of its git directory, so two
//! clones never share a root. The root is outside the user's working tree, on purpose: inside it, the
//! worktrees would show in `git status` (or need an ignore rule the user did not write), in their editor's
//! search and file watchers (a build on every Worker's save); and tools that look for configuration in parent
//! directories (`.cargo/config.toml`, `node_modules`, `rustfmt.toml`, `.editorconfig`, `pyproject.toml`)
//! would mix the user's uncommitted files into a task's build. That is also why the root is not under the
//! git directory (`.git/orchestrator/`): it would be invisible to `git status`, but still below the user's
//! top level for every tool that walks up. Git itself keeps a worktree's administrative files in
//! `<git dir>/worktrees/<name>/`; `git worktree list` in the user's checkout shows them.
//!
//! A project below the top level of its repository (`prefix` in [`Checkout`]) is at the same place below a
//! task's worktree: [`GitWorkspace::project_dir_in`].
//!
//! # Branches
//!
//! `orchestrator/<mission>` (integration), `orchestrator-task/<mission>/<task>` (one per task) and
//! `orchestrator-attempt/<mission>/<task>/<n>` (an earlier attempt's commits, kept when a task's worktree is
//! created again): see [`crate::domain::workspace`] for why tasks are not below `orchestrator/<mission>/`.
//!
//! # Merging, crash-safe
//!
//! [`GitWorkspace::prepare_merge`] reads both heads; if the task's head is already on the integration branch
//! there is nothing to do; if the integration branch has not moved since the task's base, the plan is a
//! fast-forward to the task's head; otherwise `git merge-tree --write-tree` merges the two commits in the
//! object store (no index, no working tree, no checkout of the integration branch) and `git commit-tree`
//! writes the merge commit. On a conflict, the conflicted files' hunks are read from the tree `merge-tree`
//! wrote, with the markers relabelled with the branch names. Nothing moved yet: the caller can run the gate on
//! the planned commit ([`GitWorkspace::create_integration_worktree`]) before
//! [`GitWorkspace::advance_integration`] moves the branch with `git update-ref <branch> <new> <old>`, which
//! takes the ref's lock, checks that the branch is still at `<old>` and renames the lock over the ref: one
//! atomic step, and a compare-and-swap ([`GitError::RefMoved`] when the branch moved meanwhile).
//! [`GitWorkspace::merge`] does both.
//!
//! A crash at any point leaves the branch at the old commit or the new one, never between: before the
//! `update-ref`, only unreferenced objects were written (git's gc removes them); the `update-ref` itself is
//! a rename. Running the merge again after a crash is safe: if the branch moved, the task's head is on it and
//! [`MergePlan::AlreadyIntegrated`] says so; if not, the same merge is made again.
//!
//! # What the caller journals to resume
//!
//! For each task: its worktree's path, its branch and its base commit ([`TaskWorktree`]), each head commit it
//! reviewed (from [`GitWorkspace::commit_all`]), the integration branch's head before and after its merge
//! ([`MergeOutcome::Integrated`]), and any kept attempt. With the mission's start ([`Checkout`]), that is all
//! `resume` needs: a worktree that still exists is re-attached by path, one that is gone is created again,
//! and an integration in flight is finished by merging again (see above). [`GitWorkspace::leftovers`] lists
//! what is on disk to compare with the journal, and for `orchestrator clean`.
//!
//! # The end of a mission
//!
//! [`GitWorkspace::finish`] fast-forwards the user's branch (or detached `HEAD`) to the integration branch
//! only when `HEAD` is still where the mission started and their working tree is clean (not counting
//! ignored files and the orchestrator's own `.opencode/orchestrator/`). Then it runs `git merge --ff-only
//! <commit>` in the user's checkout: with a clean tree and an unmoved `HEAD`, that does exactly what `git
//! checkout` of the new commit would do to their files, under git's index lock, and git itself refuses
//! (changing nothing) if, between the check and the merge, the user changed a file the merge would
//! overwrite. Otherwise it touches nothing and returns the command the user can run.
//!
//! # Building in worktrees: never one target directory for concurrent worktrees
//!
//! A gate that builds (`cargo test`) must not share a `CARGO_TARGET_DIR` between worktrees of the same
//! project. Cargo names a workspace crate's artifacts without its absolute path and judges them fresh by the
//! mtimes of the sources: a worktree whose files are older than another worktree's last build takes that
//! build for its own, and its gate checks the other task's code (`benches/benches/orchestrator_isolation.rs`
//! shows it, `docs/benchmarks.md` has the figures). Each worktree builds in its own target directory; a
//! target directory per parallel slot, reused by the slot's next task, keeps the compiled dependencies and
//! is safe as long as it serves one worktree at a time and each new worktree is made after the slot's last
//! build (its checkout then makes every source newer than the old artifacts). A `CARGO_TARGET_DIR` in the
//! user's environment must be overridden for the gate, for the same reason.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::domain::workspace::{ATTEMPT_PREFIX, INTEGRATION_PREFIX, TASK_PREFIX};
pub use crate::domain::workspace::{
    BranchDiff, BranchEntry, BranchRole, Checkout, CommitId, ConflictFile, ConflictHunk, FileStat,
    FileStatus, FinishOutcome, FinishRefusal, Head, KeptAttempt, Leftovers, MergeConflict,
    MergeOutcome, MergePlan, TaskWorktree, WorkingChanges, WorktreeEntry, attempt_branch,
    check_id_shape, integration_branch, task_branch,
};

/// The oldest git with `git merge-tree --write-tree`.
const MINIMUM_VERSION: (u32, u32) = (2, 38);
/// How long one git command may run when [`GitWorkspace::with_timeout`] is not called.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a timed-out command's process group has between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// The name of the author and committer of the orchestrator's commits.
pub const IDENTITY_NAME: &str = "orchestrator";
/// The email of the author and committer of the orchestrator's commits.
pub const IDENTITY_EMAIL: &str = "orchestrator@localhost";
/// The pathspec that leaves out the orchestrator's own files (its journal and logs), wherever the project
/// is below the top level.
const OWN_FILES: &str = ":(exclude,glob)**/.opencode/orchestrator/**";
/// Configuration every command runs with (see the module docs).
const CONFIG: [&str; 12] = [
    "core.quotepath=off",
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "color.ui=false",
    "commit.gpgSign=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "diff.noprefix=false",
    "diff.mnemonicPrefix=false",
    "diff.relative=false",
    "advice.detachedHead=false",
];
/// Variables that would make git use another repository, index or work tree than the one asked for.
const REPOSITORY_VARIABLES: [&str; 11] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_DATE",
];
/// Bytes of a command's stderr kept for its error.
const STDERR_LIMIT: usize = 64 * 1024;
/// Bytes of a command's stdout read when the caller sets no other limit.
const STDOUT_LIMIT: usize = 64 * 1024 * 1024;
/// Lines of context around a conflict's markers.
const CONFLICT_CONTEXT: usize = 3;
/// Hunks kept per conflicted file.
const MAX_HUNKS_PER_FILE: usize = 20;
/// Lines kept per hunk.
const MAX_HUNK_LINES: usize = 200;
/// Bytes of a conflicted file read for its hunks.
const MAX_CONFLICTED_FILE: usize = 4 * 1024 * 1024;

/// Which id a [`GitError::InvalidId`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// A mission's id.
    Mission,
    /// A task's id.
    Task,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::Mission => "mission",
            IdKind::Task => "task",
        })
    }
}

/// Why a git operation failed: each variant says what a user needs to act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// The `git` program could not be started.
    #[error("git is not installed or not on PATH")]
    NotInstalled {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The installed git lacks what this adapter needs.
    #[error(
        "git {found} is too old: the orchestrator needs git {required} or newer (for `git merge-tree --write-tree`)"
    )]
    TooOld {
        /// The version found.
        found: String,
        /// The oldest version that works.
        required: String,
    },
    /// The directory is not in a git repository.
    #[error(
        "{} is not in a git repository: run `git init` and commit there, or start the orchestrator in a repository",
        path.display()
    )]
    NotARepository {
        /// The directory.
        path: PathBuf,
    },
    /// The directory is in a repository without a working tree (a bare repository, or a git directory).
    #[error("{} is in a git repository without a working tree (a bare repository, or inside .git)", path.display())]
    NoWorkingTree {
        /// The directory.
        path: PathBuf,
    },
    /// Git refuses the repository because another user owns it.
    #[error(
        "git refuses the repository at {} because another user owns it; if you trust it, run \
         `git config --global --add safe.directory {}`",
        path.display(), path.display()
    )]
    DubiousOwnership {
        /// The directory.
        path: PathBuf,
        /// What git said.
        stderr: String,
    },
    /// The repository has no commit for a mission to start from.
    #[error(
        "the repository at {} has no commits yet{}: commit something first, a mission starts from HEAD",
        path.display(),
        branch.as_ref().map(|branch| format!(" (on branch {branch})")).unwrap_or_default()
    )]
    NoCommits {
        /// The top level of the working tree.
        path: PathBuf,
        /// The branch `HEAD` names, if any.
        branch: Option<String>,
    },
    /// A mission or task id cannot name a branch or a directory.
    #[error("`{id}` cannot be a {kind} id: {reason}")]
    InvalidId {
        /// Which id.
        kind: IdKind,
        /// The id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The branch to create exists already, somewhere else.
    #[error("branch {branch} already exists, at {at}")]
    BranchExists {
        /// The branch.
        branch: String,
        /// Its head.
        at: CommitId,
    },
    /// The branch does not exist.
    #[error("branch {branch} does not exist")]
    MissingBranch {
        /// The branch.
        branch: String,
    },
    /// The branch was not where the caller expected it: someone else moved it. Nothing was changed.
    #[error(
        "branch {branch} moved: it was expected at {expected}, it is at {}",
        found.as_ref().map_or("nothing (deleted)".to_owned(), ToString::to_string)
    )]
    RefMoved {
        /// The branch.
        branch: String,
        /// Where the caller expected it.
        expected: CommitId,
        /// Where it is.
        found: Option<CommitId>,
    },
    /// A task's worktree is not on a task branch (someone checked out something else in it).
    #[error(
        "the worktree {} is not on a task branch (HEAD is {}); check out its task branch there again",
        path.display(),
        found.as_deref().unwrap_or("detached")
    )]
    NotOnTaskBranch {
        /// The worktree.
        path: PathBuf,
        /// The branch it is on, if any.
        found: Option<String>,
    },
    /// A path that is neither below the worktree root nor a worktree on one of the orchestrator's branches.
    #[error("{} is not a worktree the orchestrator made; not removing it", path.display())]
    NotOurWorktree {
        /// The path.
        path: PathBuf,
    },
    /// A branch that is not one of the orchestrator's.
    #[error("{branch} is not one of the orchestrator's branches; not deleting it")]
    NotOurBranch {
        /// The branch.
        branch: String,
    },
    /// A branch to delete is checked out in a worktree.
    #[error("branch {branch} is checked out in {}: remove that worktree first", worktree.display())]
    BranchCheckedOut {
        /// The branch.
        branch: String,
        /// Where it is checked out.
        worktree: PathBuf,
    },
    /// A branch to delete has commits that the branch it should be merged into lacks.
    #[error("branch {branch} (at {head}) has commits that {into} lacks; not deleting it")]
    NotMerged {
        /// The branch.
        branch: String,
        /// Its head.
        head: CommitId,
        /// The branch or commit it was checked against.
        into: String,
    },
    /// The configured worktree root is inside the user's working tree.
    #[error(
        "the worktree directory {} is inside the working tree {}: worktrees must live outside it",
        root.display(), top_level.display()
    )]
    RootInsideWorkingTree {
        /// The worktree root.
        root: PathBuf,
        /// The user's top level.
        top_level: PathBuf,
    },
    /// A git command exited with a failure.
    #[error(
        "`git {command}` in {} failed ({}): {}",
        dir.display(),
        code.map_or("killed by a signal".to_owned(), |code| format!("exit {code}")),
        stderr.trim_end()
    )]
    Command {
        /// The command, as one would type it.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// Its exit code; `None` if a signal ended it.
        code: Option<i32>,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A git command ran longer than the timeout and was stopped.
    #[error("`git {command}` in {} did not finish within {after:?} and was stopped", dir.display())]
    Timeout {
        /// The command.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// The timeout.
        after: Duration,
        /// What it printed on stderr until then.
        stderr: String,
    },
    /// A git command could not be started.
    #[error("could not run `git {command}` in {}", dir.display())]
    Spawn {
        /// The command.
        command: String,
        /// Where.
        dir: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A file system operation around git failed.
    #[error("could not {action} {}", path.display())]
    Io {
        /// What was being done, e.g. "create the worktree directory".
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A git command printed something this adapter does not understand.
    #[error("`git {command}` printed something unexpected: {detail}")]
    UnexpectedOutput {
        /// The command.
        command: String,
        /// What was wrong.
        detail: String,
    },
}

/// What a finished git command left.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: Vec<u8>,
    /// Bytes printed on stdout, including those past the limit.
    stdout_total: u64,
}

impl Output {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn line(&self) -> String {
        self.text().trim_end_matches('\n').to_owned()
    }
}

/// How to run one command.
#[derive(Debug, Clone, Copy)]
struct Expect {
    /// Exit codes that are not failures.
    codes: &'static [i32],
    /// Bytes of stdout kept.
    stdout_limit: usize,
}

const SUCCESS: Expect = Expect {
    codes: &[0],
    stdout_limit: STDOUT_LIMIT,
};

const SUCCESS_OR_ONE: Expect = Expect {
    codes: &[0, 1],
    stdout_limit: STDOUT_LIMIT,
};

/// The arguments of a git command, each `AsRef<OsStr>` (strings, paths).
macro_rules! argv {
    ($($arg:expr),* $(,)?) => {
        vec![$(OsStr::new(&$arg).to_os_string()),*]
    };
}

/// A repository's worktrees and branches, as the orchestrator uses them: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct GitWorkspace {
    top_level: PathBuf,
    prefix: PathBuf,
    common_dir: PathBuf,
    worktree_root: PathBuf,
    timeout: Duration,
}

impl GitWorkspace {
    /// The repository `project` is in: checks that git is recent enough and that `project` is in a working
    /// tree. Reads nothing else and writes nothing.
    ///
    /// # Errors
    ///
    /// [`GitError::NotInstalled`], [`GitError::TooOld`], [`GitError::NotARepository`],
    /// [`GitError::NoWorkingTree`], [`GitError::DubiousOwnership`], or the command's failure.
    pub async fn open(project: &Path) -> Result<Self, GitError> {
        let version = run(project, argv!["version"], SUCCESS, DEFAULT_TIMEOUT)
            .await
            .map_err(|error| match error {
                GitError::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                    GitError::NotInstalled { source }
                }
                other => other,
            })?
            .line();
        check_version(&version)?;
        let located = run(
            project,
            argv![
                "rev-parse",
                "--path-format=absolute",
                "--show-toplevel",
                "--git-common-dir",
                "--show-prefix"
            ],
            SUCCESS,
            DEFAULT_TIMEOUT,
        )
        .await
        .map_err(|error| locate_error(project, error))?;
        let text = located.text();
        let mut lines = text.split('\n');
        let (Some(top_level), Some(common_dir), Some(prefix)) =
            (lines.next(), lines.next(), lines.next())
        else {
            return Err(GitError::UnexpectedOutput {
                command: "rev-parse --show-toplevel --git-common-dir --show-prefix".to_owned(),
                detail: format!("three lines expected, got {text:?}"),
            });
        };
        let top_level = PathBuf::from(top_level);
        let common_dir = PathBuf::from(common_dir);
        let worktree_root = default_worktree_root(&top_level, &common_dir);
        Ok(Self {
            prefix: PathBuf::from(prefix.trim_end_matches('/')),
            top_level,
            common_dir,
            worktree_root,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Keeps the worktrees in `root` (made on first use; it must be outside the user's working tree)
    /// instead of the default under the user's cache directory.
    #[must_use]
    pub fn with_worktree_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.worktree_root = root.into();
        self
    }

    /// Gives each git command at most `timeout` (120 s when not called).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The top level of the user's working tree.
    pub fn top_level(&self) -> &Path {
        &self.top_level
    }

    /// The repository's git directory shared by all its worktrees (`.git` of the main worktree).
    pub fn common_dir(&self) -> &Path {
        &self.common_dir
    }

    /// Where the worktrees are made.
    pub fn worktree_root(&self) -> &Path {
        &self.worktree_root
    }

    /// The project directory in `worktree`: the same place below its top level as the project is below the
    /// user's.
    pub fn project_dir_in(&self, worktree: &Path) -> PathBuf {
        worktree.join(&self.prefix)
    }

    /// Where a task's worktree is made.
    pub fn task_worktree_path(&self, mission: &str, task: &str) -> PathBuf {
        self.worktree_root.join(mission).join("tasks").join(task)
    }

    /// Where the worktree of the integrated result is made.
    pub fn integration_worktree_path(&self, mission: &str) -> PathBuf {
        self.worktree_root.join(mission).join("integration")
    }

    /// The user's checkout: its branch, its `HEAD` commit and its uncommitted changes. Reads only (the index
    /// is not even refreshed).
    ///
    /// # Errors
    ///
    /// [`GitError::NoCommits`] when `HEAD` has no commit; a command's failure.
    pub async fn inspect(&self) -> Result<Checkout, GitError> {
        let head = self.head_of(&self.top_level).await?;
        let Some(commit) = self.resolve(&self.top_level, "HEAD").await? else {
            return Err(GitError::NoCommits {
                path: self.top_level.clone(),
                branch: match head {
                    Head::Branch(name) => Some(name),
                    Head::Detached => None,
                },
            });
        };
        let changes = self.changes(&self.top_level).await?;
        Ok(Checkout {
            top_level: self.top_level.clone(),
            prefix: self.prefix.clone(),
            head,
            commit,
            changes,
        })
    }

    /// Creates the mission's integration branch at `at` (normally the user's `HEAD` at the start), without
    /// touching the user's working tree, index or `HEAD`. Returns its name. Creating it again at the same
    /// commit is a no-op, so a resumed mission can call this again.
    ///
    /// # Errors
    ///
    /// [`GitError::InvalidId`]; [`GitError::BranchExists`] when it exists at another commit; a command's
    /// failure (`at` is not a commit).
    pub async fn create_integration_branch(
        &self,
        mission: &str,
        at: &CommitId,
    ) -> Result<String, GitError> {
        self.check_ids(mission, None).await?;
        let branch = integration_branch(mission);
        self.create_branch(&branch, at, "orchestrator: start the mission")
            .await?;
        Ok(branch)
    }

    /// The integration branch's head.
    ///
    /// # Errors
    ///
    /// [`GitError::MissingBranch`] when the mission has none; a command's failure.
    pub async fn integration_head(&self, mission: &str) -> Result<CommitId, GitError> {
        self.branch_head(&integration_branch(mission)).await
    }

    /// The head of `branch` (a short name).
    ///
    /// # Errors
    ///
    /// [`GitError::MissingBranch`]; a command's failure.
    pub async fn branch_head(&self, branch: &str) -> Result<CommitId, GitError> {
        self.resolve(&self.top_level, &format!("refs/heads/{branch}"))
            .await?
            .ok_or_else(|| GitError::MissingBranch {
                branch: branch.to_owned(),
            })
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    ///
    /// # Errors
    ///
    /// A command's failure (an unknown commit).
    pub async fn is_ancestor(
        &self,
        ancestor: &CommitId,
        descendant: &CommitId,
    ) -> Result<bool, GitError> {
        let output = self
            .git(
                &self.top_level,
                argv![
                    "merge-base",
                    "--is-ancestor",
                    ancestor.as_str(),
                    descendant.as_str()
                ],
                SUCCESS_OR_ONE,
            )
            .await?;
        Ok(output.code == 0)
    }

    /// Creates a task's worktree on a new branch `orchestrator-task/<mission>/<task>` at `base` (normally
    /// the integration branch's head), in [`task_worktree_path`](Self::task_worktree_path).
    ///
    /// Creating it again (a new attempt, from a newer base) replaces the earlier worktree without losing its
    /// work: uncommitted changes there are committed first, and if the earlier branch has commits that `base`
    /// lacks, they are kept on `orchestrator-attempt/<mission>/<task>/<n>` ([`TaskWorktree::kept`]).
    ///
    /// # Errors
    ///
    /// [`GitError::InvalidId`], [`GitError::RootInsideWorkingTree`], [`GitError::Io`], a command's failure
    /// (`base` is not a commit).
    pub async fn create_task_worktree(
        &self,
        mission: &str,
        task: &str,
        base: &CommitId,
    ) -> Result<TaskWorktree, GitError> {
        self.check_ids(mission, Some(task)).await?;
        let root = self.ensure_root()?;
        let branch = task_branch(mission, task);
        let path = root.join(mission).join("tasks").join(task);

        // An earlier attempt: commit what it left, then take its worktree away. Records of worktrees whose
        // directory is gone are pruned first: there is nothing there to commit or remove.
        self.prune().await?;
        for worktree in self.worktrees().await? {
            let on_branch = worktree.branch.as_deref() == Some(branch.as_str());
            if on_branch {
                let message =
                    format!("orchestrator: uncommitted work of an earlier attempt at {task}");
                self.commit_all(&worktree.path, &message).await?;
            }
            if on_branch || same_path(&worktree.path, &path) {
                self.force_remove(&worktree.path).await?;
            }
        }
        let kept = match self.resolve_branch(&branch).await? {
            Some(head) => {
                self.retire_branch(mission, task, &branch, &head, base)
                    .await?
            }
            None => None,
        };
        // A directory git does not know (a crash between creating it and registering it) is in the way.
        remove_dir_if_present(&path, "remove the stale worktree directory")?;
        create_parent(&path)?;
        self.git(
            &self.top_level,
            argv![
                "worktree",
                "add",
                "--no-track",
                "-b",
                branch,
                path,
                base.as_str()
            ],
            SUCCESS,
        )
        .await?;
        Ok(TaskWorktree {
            mission: mission.to_owned(),
            task: task.to_owned(),
            path,
            branch,
            base: base.clone(),
            kept,
        })
    }

    /// Commits everything in a task's worktree (changes, deletions and new files; not what `.gitignore`
    /// ignores, nor the orchestrator's own `.opencode/orchestrator/`) with `message`, as
    /// `orchestrator <orchestrator@localhost>`. Returns the new commit, or `None` when nothing changed.
    ///
    /// # Errors
    ///
    /// [`GitError::NotOnTaskBranch`] when the worktree is not on a task branch; a command's failure.
    pub async fn commit_all(
        &self,
        worktree: &Path,
        message: &str,
    ) -> Result<Option<CommitId>, GitError> {
        let head = self.head_of(worktree).await?;
        let on_task_branch = matches!(&head, Head::Branch(name)
            if matches!(BranchEntry::role_of(name), Some((_, BranchRole::Task { .. }))));
        if !on_task_branch {
            return Err(GitError::NotOnTaskBranch {
                path: worktree.to_path_buf(),
                found: match head {
                    Head::Branch(name) => Some(name),
                    Head::Detached => None,
                },
            });
        }
        self.git(worktree, argv!["add", "-A", "--", ".", OWN_FILES], SUCCESS)
            .await?;
        let staged = self
            .git(
                worktree,
                argv!["diff", "--cached", "--quiet", "--no-ext-diff"],
                SUCCESS_OR_ONE,
            )
            .await?;
        if staged.code == 0 {
            return Ok(None);
        }
        self.git(
            worktree,
            argv![
                "commit",
                "--quiet",
                "--no-verify",
                "--no-gpg-sign",
                "--cleanup=verbatim",
                "-m",
                message
            ],
            SUCCESS,
        )
        .await?;
        self.resolve(worktree, "HEAD").await
    }

    /// What `head` (a branch or a commit) changed since `base`: every file with its status and line counts,
    /// and the unified diff, cut at a line boundary after at most `limit` bytes.
    ///
    /// # Errors
    ///
    /// [`GitError::MissingBranch`] when `head` names nothing; a command's failure.
    pub async fn diff(
        &self,
        base: &CommitId,
        head: &str,
        limit: usize,
    ) -> Result<BranchDiff, GitError> {
        let head = match CommitId::parse(head) {
            Some(id) => id,
            None => self.branch_head(head).await?,
        };
        let range = [base.as_str(), head.as_str()];
        let common = ["--no-ext-diff", "--no-textconv", "--find-renames"];
        let mut status_args = argv!["diff", "--name-status", "-z"];
        let mut numstat_args = argv!["diff", "--numstat", "-z"];
        let mut text_args = argv!["diff", "--no-color", "--patch"];
        for args in [&mut status_args, &mut numstat_args, &mut text_args] {
            args.extend(common.iter().chain(&range).map(OsString::from));
        }
        let statuses = self.git(&self.top_level, status_args, SUCCESS).await?;
        let numstats = self.git(&self.top_level, numstat_args, SUCCESS).await?;
        let files = file_stats(&statuses.stdout, &numstats.stdout)?;
        let text = self
            .git(
                &self.top_level,
                text_args,
                Expect {
                    codes: &[0],
                    stdout_limit: limit,
                },
            )
            .await?;
        Ok(BranchDiff {
            base: base.clone(),
            head,
            files,
            text: cut_at_line(&text.stdout, limit, text.stdout_total),
            total_bytes: text.stdout_total,
        })
    }

    /// Works out how the task's branch merges into the mission's integration branch, writing the merge
    /// commit if one is needed, but moving no branch: see the [module docs](self#merging-crash-safe).
    ///
    /// # Errors
    ///
    /// [`GitError::MissingBranch`] when either branch is missing; a command's failure.
    pub async fn prepare_merge(&self, mission: &str, task: &str) -> Result<MergePlan, GitError> {
        let integration = integration_branch(mission);
        let branch = task_branch(mission, task);
        let onto = self.branch_head(&integration).await?;
        let task_head = self.branch_head(&branch).await?;
        if self.is_ancestor(&task_head, &onto).await? {
            return Ok(MergePlan::AlreadyIntegrated { head: onto });
        }
        if self.is_ancestor(&onto, &task_head).await? {
            return Ok(MergePlan::Ready {
                onto,
                to: task_head,
                fast_forward: true,
            });
        }
        let merged = self
            .git(
                &self.top_level,
                argv![
                    "merge-tree",
                    "--write-tree",
                    "-z",
                    "--messages",
                    onto.as_str(),
                    task_head.as_str()
                ],
                SUCCESS_OR_ONE,
            )
            .await?;
        let result = parse_merge_tree(&merged.stdout)?;
        if merged.code == 0 {
            let message =
                format!("orchestrator: integrate {task}\n\nMerge {branch} into {integration}.\n");
            let commit = self
                .git(
                    &self.top_level,
                    argv![
                        "commit-tree",
                        "--no-gpg-sign",
                        result.tree,
                        "-p",
                        onto.as_str(),
                        "-p",
                        task_head.as_str(),
                        "-m",
                        message
                    ],
                    SUCCESS,
                )
                .await?;
            let to = parse_commit("commit-tree", &commit.line())?;
            return Ok(MergePlan::Ready {
                onto,
                to,
                fast_forward: false,
            });
        }
        let labels = Labels {
            ours: (onto.as_str(), format!("{integration} (integrated)")),
            theirs: (task_head.as_str(), format!("{branch} (this task)")),
        };
        let mut files = Vec::new();
        for (path, messages) in result.conflicts {
            let hunks = match self.conflicted_text(&result.tree, &path).await? {
                Some(text) => conflict_hunks(&labels.apply(&text)),
                None => (Vec::new(), false),
            };
            files.push(ConflictFile {
                path,
                messages,
                hunks: hunks.0,
                hunks_truncated: hunks.1,
            });
        }
        Ok(MergePlan::Conflict(MergeConflict {
            onto,
            task_head,
            files,
        }))
    }

    /// Moves the integration branch from `from` to `to` if it is still at `from` (a compare-and-swap; the
    /// one step of a merge that changes a branch).
    ///
    /// # Errors
    ///
    /// [`GitError::RefMoved`] when the branch is not at `from` (nothing changed); a command's failure.
    pub async fn advance_integration(
        &self,
        mission: &str,
        from: &CommitId,
        to: &CommitId,
    ) -> Result<(), GitError> {
        let branch = integration_branch(mission);
        self.swap_branch(&branch, from, to, "orchestrator: integrate")
            .await
    }

    /// Merges the task's branch into the integration branch: [`prepare_merge`](Self::prepare_merge), then
    /// [`advance_integration`](Self::advance_integration). On a conflict the integration branch stays where
    /// it was.
    ///
    /// # Errors
    ///
    /// As those two.
    pub async fn merge(&self, mission: &str, task: &str) -> Result<MergeOutcome, GitError> {
        Ok(match self.prepare_merge(mission, task).await? {
            MergePlan::Ready {
                onto,
                to,
                fast_forward,
            } => {
                self.advance_integration(mission, &onto, &to).await?;
                MergeOutcome::Integrated {
                    from: onto,
                    to,
                    fast_forward,
                }
            }
            MergePlan::AlreadyIntegrated { head } => MergeOutcome::AlreadyIntegrated { head },
            MergePlan::Conflict(conflict) => MergeOutcome::Conflict(conflict),
        })
    }

    /// A worktree with `commit` checked out, detached (no branch), at
    /// [`integration_worktree_path`](Self::integration_worktree_path): where the gate checks the integrated
    /// result (the integration branch's head, or a planned merge before it is applied). An earlier one is
    /// replaced.
    ///
    /// # Errors
    ///
    /// [`GitError::InvalidId`], [`GitError::RootInsideWorkingTree`], [`GitError::Io`], a command's failure.
    pub async fn create_integration_worktree(
        &self,
        mission: &str,
        commit: &CommitId,
    ) -> Result<PathBuf, GitError> {
        self.check_ids(mission, None).await?;
        let root = self.ensure_root()?;
        let path = root.join(mission).join("integration");
        self.prune().await?;
        for worktree in self.worktrees().await? {
            if same_path(&worktree.path, &path) {
                self.force_remove(&worktree.path).await?;
            }
        }
        remove_dir_if_present(&path, "remove the stale worktree directory")?;
        create_parent(&path)?;
        self.git(
            &self.top_level,
            argv!["worktree", "add", "--detach", path, commit.as_str()],
            SUCCESS,
        )
        .await?;
        Ok(path)
    }

    /// Removes a worktree the orchestrator made, with whatever is in it (build outputs included), and its
    /// record in the repository. Its branch stays: [`delete_branch`](Self::delete_branch) removes it.
    /// Removing one that is gone is not an error.
    ///
    /// # Errors
    ///
    /// [`GitError::NotOurWorktree`] for any other path (the user's own worktrees are never removed);
    /// [`GitError::Io`]; a command's failure.
    pub async fn remove_worktree(&self, path: &Path) -> Result<(), GitError> {
        let ours_by_place = self.is_below_root(path);
        let registered = self
            .worktrees()
            .await?
            .into_iter()
            .find(|worktree| same_path(&worktree.path, path));
        if let Some(worktree) = &registered {
            let ours_by_branch = worktree
                .branch
                .as_deref()
                .and_then(BranchEntry::role_of)
                .is_some_and(|(_, role)| role != BranchRole::Integration);
            if !(ours_by_place || ours_by_branch) || same_path(&worktree.path, &self.top_level) {
                return Err(GitError::NotOurWorktree {
                    path: path.to_path_buf(),
                });
            }
            if worktree.path.exists() {
                self.force_remove(&worktree.path).await?;
            }
        } else if !ours_by_place {
            return Err(GitError::NotOurWorktree {
                path: path.to_path_buf(),
            });
        }
        remove_dir_if_present(path, "remove the worktree directory")?;
        self.prune().await
    }

    /// Deletes one of the orchestrator's branches if its head is on `into` (a branch or a commit, e.g. the
    /// integration branch for a task's branch), or whatever it holds when `into` is `None`. Deleting a
    /// branch that is gone is not an error.
    ///
    /// # Errors
    ///
    /// [`GitError::NotOurBranch`], [`GitError::BranchCheckedOut`], [`GitError::NotMerged`], a command's
    /// failure.
    pub async fn delete_branch(&self, branch: &str, into: Option<&str>) -> Result<(), GitError> {
        if BranchEntry::role_of(branch).is_none() {
            return Err(GitError::NotOurBranch {
                branch: branch.to_owned(),
            });
        }
        let Some(head) = self.resolve_branch(branch).await? else {
            return Ok(());
        };
        if let Some(worktree) = self
            .worktrees()
            .await?
            .into_iter()
            .find(|worktree| worktree.branch.as_deref() == Some(branch))
        {
            return Err(GitError::BranchCheckedOut {
                branch: branch.to_owned(),
                worktree: worktree.path,
            });
        }
        if let Some(into) = into {
            let target = match CommitId::parse(into) {
                Some(id) => id,
                None => self.branch_head(into).await?,
            };
            if !self.is_ancestor(&head, &target).await? {
                return Err(GitError::NotMerged {
                    branch: branch.to_owned(),
                    head,
                    into: into.to_owned(),
                });
            }
        }
        self.swap_delete(branch, &head).await
    }

    /// The worktrees and branches the orchestrator left, for one mission or all of them: what
    /// `orchestrator clean` removes and what `resume` compares with its journal.
    ///
    /// # Errors
    ///
    /// A command's failure.
    pub async fn leftovers(&self, mission: Option<&str>) -> Result<Leftovers, GitError> {
        let mission_root = mission.map(|mission| self.worktree_root.join(mission));
        let worktrees = self
            .worktrees()
            .await?
            .into_iter()
            .filter(|worktree| {
                let branch_mission = worktree
                    .branch
                    .as_deref()
                    .and_then(BranchEntry::role_of)
                    .map(|(of, _)| of);
                let by_branch = match mission {
                    Some(mission) => branch_mission.as_deref() == Some(mission),
                    None => branch_mission.is_some(),
                };
                let by_place = match &mission_root {
                    Some(root) => is_below(&worktree.path, root),
                    None => self.is_below_root(&worktree.path),
                };
                !same_path(&worktree.path, &self.top_level) && (by_branch || by_place)
            })
            .collect();
        let listed = self
            .git(
                &self.top_level,
                argv![
                    "for-each-ref",
                    "--format=%(refname)%00%(objectname)",
                    format!("refs/heads/{}", INTEGRATION_PREFIX.trim_end_matches('/')),
                    format!("refs/heads/{}", TASK_PREFIX.trim_end_matches('/')),
                    format!("refs/heads/{}", ATTEMPT_PREFIX.trim_end_matches('/')),
                ],
                SUCCESS,
            )
            .await?;
        let mut branches = Vec::new();
        for line in listed.text().lines() {
            let Some((reference, object)) = line.split_once('\0') else {
                continue;
            };
            let Some(name) = reference.strip_prefix("refs/heads/") else {
                continue;
            };
            let (Some((of, role)), Some(head)) =
                (BranchEntry::role_of(name), CommitId::parse(object))
            else {
                continue;
            };
            if mission.is_none_or(|mission| mission == of) {
                branches.push(BranchEntry {
                    name: name.to_owned(),
                    head,
                    mission: of,
                    role,
                });
            }
        }
        Ok(Leftovers {
            worktrees,
            branches,
        })
    }

    /// Forgets the records of worktrees whose directories are gone (`git worktree prune`).
    ///
    /// # Errors
    ///
    /// A command's failure.
    pub async fn prune(&self) -> Result<(), GitError> {
        self.git(&self.top_level, argv!["worktree", "prune"], SUCCESS)
            .await
            .map(drop)
    }

    /// At the end of a mission: fast-forwards the user's `HEAD` (their branch, or a detached `HEAD`) and
    /// working tree to the integration branch, if `HEAD` is still where the mission started (`start`, from
    /// [`inspect`](Self::inspect)) and nothing is uncommitted; otherwise touches nothing and returns the
    /// command that merges. See the [module docs](self#the-end-of-a-mission).
    ///
    /// # Errors
    ///
    /// [`GitError::MissingBranch`]; a command's failure.
    pub async fn finish(&self, mission: &str, start: &Checkout) -> Result<FinishOutcome, GitError> {
        let branch = integration_branch(mission);
        let integration = self.branch_head(&branch).await?;
        let command = format!(
            "git -C {} merge {}",
            shell_quote(&self.top_level.to_string_lossy()),
            shell_quote(&branch)
        );
        let refused = |reason| FinishOutcome::Refused {
            reason,
            command: command.clone(),
        };
        let head = self.head_of(&self.top_level).await?;
        let commit = self.resolve(&self.top_level, "HEAD").await?;
        if head != start.head || commit.as_ref() != Some(&start.commit) {
            return Ok(refused(FinishRefusal::HeadMoved {
                expected: start.head.clone(),
                expected_commit: start.commit.clone(),
                found: head,
                found_commit: commit,
            }));
        }
        if integration == start.commit {
            return Ok(FinishOutcome::UpToDate { head: integration });
        }
        if !self.is_ancestor(&start.commit, &integration).await? {
            return Ok(refused(FinishRefusal::Diverged { integration }));
        }
        let changes = self.changes(&self.top_level).await?;
        if !changes.is_clean() {
            return Ok(refused(FinishRefusal::Dirty(changes)));
        }
        self.git(
            &self.top_level,
            argv!["merge", "--ff-only", "--quiet", integration.as_str()],
            SUCCESS,
        )
        .await?;
        Ok(FinishOutcome::FastForwarded {
            branch: match head {
                Head::Branch(name) => Some(name),
                Head::Detached => None,
            },
            from: start.commit.clone(),
            to: integration,
        })
    }

    /// Runs git in `dir` with this workspace's timeout.
    async fn git(
        &self,
        dir: &Path,
        args: Vec<OsString>,
        expect: Expect,
    ) -> Result<Output, GitError> {
        run(dir, args, expect, self.timeout).await
    }

    /// `git worktree remove` with whatever is in the worktree (untracked build outputs, changes).
    async fn force_remove(&self, path: &Path) -> Result<(), GitError> {
        self.git(
            &self.top_level,
            argv!["worktree", "remove", "--force", "--force", path],
            SUCCESS,
        )
        .await
        .map(drop)
    }

    /// What `HEAD` of the checkout in `dir` points at.
    async fn head_of(&self, dir: &Path) -> Result<Head, GitError> {
        let output = self
            .git(
                dir,
                argv!["symbolic-ref", "--quiet", "HEAD"],
                SUCCESS_OR_ONE,
            )
            .await?;
        if output.code == 1 {
            return Ok(Head::Detached);
        }
        let reference = output.line();
        Ok(match reference.strip_prefix("refs/heads/") {
            Some(name) => Head::Branch(name.to_owned()),
            None => Head::Detached,
        })
    }

    /// The commit `revision` names in `dir`, or `None` if it names none.
    async fn resolve(&self, dir: &Path, revision: &str) -> Result<Option<CommitId>, GitError> {
        let output = self
            .git(
                dir,
                argv![
                    "rev-parse",
                    "--quiet",
                    "--verify",
                    "--end-of-options",
                    format!("{revision}^{{commit}}")
                ],
                SUCCESS_OR_ONE,
            )
            .await?;
        if output.code == 1 {
            return Ok(None);
        }
        parse_commit("rev-parse", &output.line()).map(Some)
    }

    /// The head of `branch`, or `None` if it does not exist.
    async fn resolve_branch(&self, branch: &str) -> Result<Option<CommitId>, GitError> {
        self.resolve(&self.top_level, &format!("refs/heads/{branch}"))
            .await
    }

    /// The uncommitted changes of the checkout in `dir`.
    async fn changes(&self, dir: &Path) -> Result<WorkingChanges, GitError> {
        let output = self
            .git(
                dir,
                argv![
                    "status",
                    "--porcelain=v2",
                    "-z",
                    "--untracked-files=normal",
                    "--no-renames",
                    "--",
                    ".",
                    OWN_FILES
                ],
                SUCCESS,
            )
            .await?;
        parse_status(&output.stdout)
    }

    /// The worktrees of the repository, the user's own included.
    async fn worktrees(&self) -> Result<Vec<WorktreeEntry>, GitError> {
        let output = self
            .git(
                &self.top_level,
                argv!["worktree", "list", "--porcelain", "-z"],
                SUCCESS,
            )
            .await?;
        Ok(parse_worktrees(&output.stdout))
    }

    /// Checks the ids with [`check_id_shape`] and `git check-ref-format` on the branch names they make.
    async fn check_ids(&self, mission: &str, task: Option<&str>) -> Result<(), GitError> {
        let mut checks = vec![(IdKind::Mission, mission, integration_branch(mission))];
        if let Some(task) = task {
            checks.push((IdKind::Task, task, task_branch(mission, task)));
        }
        for (kind, id, branch) in checks {
            let invalid = |reason: String| GitError::InvalidId {
                kind,
                id: id.to_owned(),
                reason,
            };
            check_id_shape(id).map_err(|reason| invalid(reason.to_owned()))?;
            let checked = self
                .git(
                    &self.top_level,
                    argv!["check-ref-format", format!("refs/heads/{branch}")],
                    SUCCESS_OR_ONE,
                )
                .await?;
            if checked.code != 0 {
                return Err(invalid(format!(
                    "git does not accept the branch name {branch} (see `git help check-ref-format`)"
                )));
            }
        }
        Ok(())
    }

    /// Creates `branch` at `at` if it does not exist; fine if it already is at `at`.
    async fn create_branch(&self, branch: &str, at: &CommitId, why: &str) -> Result<(), GitError> {
        let created = self
            .git(
                &self.top_level,
                argv![
                    "update-ref",
                    "--create-reflog",
                    "-m",
                    why,
                    format!("refs/heads/{branch}"),
                    at.as_str(),
                    ""
                ],
                SUCCESS,
            )
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(error) => match self.resolve_branch(branch).await? {
                Some(existing) if &existing == at => Ok(()),
                Some(existing) => Err(GitError::BranchExists {
                    branch: branch.to_owned(),
                    at: existing,
                }),
                None => Err(error),
            },
        }
    }

    /// Moves `branch` from `from` to `to`, only if it is at `from`.
    async fn swap_branch(
        &self,
        branch: &str,
        from: &CommitId,
        to: &CommitId,
        why: &str,
    ) -> Result<(), GitError> {
        let swapped = self
            .git(
                &self.top_level,
                argv![
                    "update-ref",
                    "-m",
                    why,
                    format!("refs/heads/{branch}"),
                    to.as_str(),
                    from.as_str()
                ],
                SUCCESS,
            )
            .await;
        self.moved_or(branch, from, swapped).await
    }

    /// Deletes `branch`, only if it is at `head`.
    async fn swap_delete(&self, branch: &str, head: &CommitId) -> Result<(), GitError> {
        let deleted = self
            .git(
                &self.top_level,
                argv![
                    "update-ref",
                    "-d",
                    format!("refs/heads/{branch}"),
                    head.as_str()
                ],
                SUCCESS,
            )
            .await;
        self.moved_or(branch, head, deleted).await
    }

    /// A failed compare-and-swap on `branch` as [`GitError::RefMoved`] when the branch is not at `expected`.
    async fn moved_or(
        &self,
        branch: &str,
        expected: &CommitId,
        result: Result<Output, GitError>,
    ) -> Result<(), GitError> {
        let Err(error) = result else {
            return Ok(());
        };
        let found = self.resolve_branch(branch).await?;
        if found.as_ref() == Some(expected) {
            return Err(error);
        }
        Err(GitError::RefMoved {
            branch: branch.to_owned(),
            expected: expected.clone(),
            found,
        })
    }

    /// Takes an earlier attempt's branch out of the way: kept as an attempt branch if it has commits that
    /// `base` lacks, deleted otherwise.
    async fn retire_branch(
        &self,
        mission: &str,
        task: &str,
        branch: &str,
        head: &CommitId,
        base: &CommitId,
    ) -> Result<Option<KeptAttempt>, GitError> {
        if self.is_ancestor(head, base).await? {
            self.swap_delete(branch, head).await?;
            return Ok(None);
        }
        let attempts: Vec<BranchEntry> = self
            .leftovers(Some(mission))
            .await?
            .branches
            .into_iter()
            .filter(
                |entry| matches!(&entry.role, BranchRole::Attempt { task: of, .. } if of == task),
            )
            .collect();
        // A crash after keeping the attempt and before deleting the branch left it kept already.
        let kept = match attempts.iter().find(|entry| &entry.head == head) {
            Some(entry) => entry.name.clone(),
            None => {
                let next = attempts
                    .iter()
                    .filter_map(|entry| match entry.role {
                        BranchRole::Attempt { attempt, .. } => Some(attempt),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0)
                    + 1;
                let name = attempt_branch(mission, task, next);
                self.create_branch(&name, head, "orchestrator: keep an earlier attempt")
                    .await?;
                name
            }
        };
        self.swap_delete(branch, head).await?;
        Ok(Some(KeptAttempt {
            branch: kept,
            head: head.clone(),
        }))
    }

    /// The text of a conflicted file as `merge-tree` left it in `tree` (with conflict markers), if it is
    /// there, text, and not too big.
    async fn conflicted_text(&self, tree: &str, path: &str) -> Result<Option<String>, GitError> {
        let blob = self
            .git(
                &self.top_level,
                argv!["cat-file", "-p", format!("{tree}:{path}")],
                Expect {
                    codes: &[0, 128],
                    stdout_limit: MAX_CONFLICTED_FILE,
                },
            )
            .await?;
        if blob.code != 0 || blob.stdout_total > MAX_CONFLICTED_FILE as u64 {
            return Ok(None);
        }
        if blob.stdout.contains(&0) {
            return Ok(None);
        }
        Ok(String::from_utf8(blob.stdout).ok())
    }

    /// Makes the worktree root and checks that it is outside the user's working tree; returns it.
    fn ensure_root(&self) -> Result<PathBuf, GitError> {
        fs::create_dir_all(&self.worktree_root).map_err(|source| GitError::Io {
            action: "create the worktree directory",
            path: self.worktree_root.clone(),
            source,
        })?;
        let root = fs::canonicalize(&self.worktree_root).map_err(|source| GitError::Io {
            action: "resolve the worktree directory",
            path: self.worktree_root.clone(),
            source,
        })?;
        let top_level = fs::canonicalize(&self.top_level).unwrap_or(self.top_level.clone());
        if root.starts_with(&top_level) {
            return Err(GitError::RootInsideWorkingTree {
                root,
                top_level: self.top_level.clone(),
            });
        }
        Ok(root)
    }

    fn is_below_root(&self, path: &Path) -> bool {
        is_below(path, &self.worktree_root)
    }
}

/// The default worktree root for a repository: `$XDG_CACHE_HOME/orchestrator/worktrees/<name>-<hash>`, or
/// `~/.cache/...`; under the git directory when neither is known.
pub fn default_worktree_root(top_level: &Path, common_dir: &Path) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|home| home.is_absolute())
                .map(|home| home.join(".cache"))
        });
    let Some(cache) = cache else {
        return common_dir.join("orchestrator").join("worktrees");
    };
    let name = top_level
        .file_name()
        .map_or_else(|| "repository".into(), |name| name.to_string_lossy());
    let key = fnv1a(common_dir.as_os_str().as_encoded_bytes());
    cache
        .join("orchestrator")
        .join("worktrees")
        .join(format!("{name}-{key:016x}"))
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust releases, so a repository keeps its root.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs `git <args>` in `dir`, see the module docs for the environment.
async fn run(
    dir: &Path,
    args: Vec<OsString>,
    expect: Expect,
    timeout: Duration,
) -> Result<Output, GitError> {
    let command_line = || {
        args.iter()
            .map(|arg| shell_quote(&arg.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut command = Command::new("git");
    command.arg("--no-pager");
    for setting in CONFIG {
        command.args(["-c", setting]);
    }
    command
        .args(&args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PAGER", "cat")
        .env("PAGER", "cat")
        .env("GIT_EDITOR", "true")
        .env("GIT_MERGE_AUTOEDIT", "no")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("LC_ALL", "C")
        .env("LANGUAGE", "C")
        .env("GIT_AUTHOR_NAME", IDENTITY_NAME)
        .env("GIT_AUTHOR_EMAIL", IDENTITY_EMAIL)
        .env("GIT_COMMITTER_NAME", IDENTITY_NAME)
        .env("GIT_COMMITTER_EMAIL", IDENTITY_EMAIL)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for variable in REPOSITORY_VARIABLES {
        command.env_remove(variable);
    }
    let mut child = command.spawn().map_err(|source| GitError::Spawn {
        command: command_line(),
        dir: dir.to_path_buf(),
        source,
    })?;
    let Some(pid) = child.id() else {
        return Err(GitError::Spawn {
            command: command_line(),
            dir: dir.to_path_buf(),
            source: io::Error::other("the process id was not available"),
        });
    };
    let mut group = GroupGuard {
        group: Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)),
        armed: true,
    };
    let mut stdout = Capture::new(expect.stdout_limit);
    let mut stderr = Capture::new(STDERR_LIMIT);
    let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
    let finished = tokio::time::timeout(timeout, async {
        let (status, (), ()) = tokio::join!(
            child.wait(),
            stdout.read_all(out_pipe),
            stderr.read_all(err_pipe)
        );
        status
    })
    .await;
    let status = match finished {
        Ok(status) => status,
        Err(_elapsed) => {
            group.signal(Signal::SIGTERM);
            if tokio::time::timeout(KILL_GRACE, child.wait())
                .await
                .is_err()
            {
                group.signal(Signal::SIGKILL);
                // Reaped by tokio once it is gone; nothing to wait for here.
            }
            group.armed = false;
            return Err(GitError::Timeout {
                command: command_line(),
                dir: dir.to_path_buf(),
                after: timeout,
                stderr: stderr.into_string(),
            });
        }
    };
    group.armed = false;
    let status = status.map_err(|source| GitError::Spawn {
        command: command_line(),
        dir: dir.to_path_buf(),
        source,
    })?;
    match status.code() {
        Some(code) if expect.codes.contains(&code) => Ok(Output {
            code,
            stdout_total: stdout.total,
            stdout: stdout.bytes,
        }),
        code => Err(GitError::Command {
            command: command_line(),
            dir: dir.to_path_buf(),
            code,
            stderr: stderr.into_string(),
        }),
    }
}

/// A running command's process group: SIGTERM to it if the future running it is dropped.
#[derive(Debug)]
struct GroupGuard {
    group: Pid,
    armed: bool,
}

impl GroupGuard {
    fn signal(&self, signal: Signal) {
        // ESRCH: the group is gone already, which is what the signal was for.
        let _ = killpg(self.group, signal);
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            self.signal(Signal::SIGTERM);
        }
    }
}

/// The first `limit` bytes of a pipe, and how many there were in all.
#[derive(Debug)]
struct Capture {
    bytes: Vec<u8>,
    limit: usize,
    total: u64,
}

impl Capture {
    fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
            total: 0,
        }
    }

    async fn read_all(&mut self, pipe: Option<impl AsyncRead + Unpin>) {
        let Some(mut pipe) = pipe else {
            return;
        };
        let mut buffer = vec![0; 64 * 1024];
        loop {
            match pipe.read(&mut buffer).await {
                Ok(0) => return,
                Ok(read) => {
                    self.total += read as u64;
                    let room = self.limit.saturating_sub(self.bytes.len());
                    self.bytes.extend_from_slice(&buffer[..read.min(room)]);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // A read error on a pipe means the other end is gone: the output ends here.
                Err(_) => return,
            }
        }
    }

    fn into_string(self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// `version` (`git version 2.47.3`) checked against [`MINIMUM_VERSION`].
fn check_version(version: &str) -> Result<(), GitError> {
    let number = version
        .strip_prefix("git version ")
        .unwrap_or(version)
        .trim();
    let mut parts = number.split('.').map(|part| {
        part.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    let found = (parts.next().flatten(), parts.next().flatten());
    match found {
        (Some(major), Some(minor)) if (major, minor) >= MINIMUM_VERSION => Ok(()),
        _ => Err(GitError::TooOld {
            found: number.to_owned(),
            required: format!("{}.{}", MINIMUM_VERSION.0, MINIMUM_VERSION.1),
        }),
    }
}

/// The typed error for a failure to locate the repository of `project`.
fn locate_error(project: &Path, error: GitError) -> GitError {
    let GitError::Command { stderr, .. } = &error else {
        return error;
    };
    let path = project.to_path_buf();
    if stderr.contains("not a git repository") {
        GitError::NotARepository { path }
    } else if stderr.contains("must be run in a work tree") {
        GitError::NoWorkingTree { path }
    } else if stderr.contains("dubious ownership") {
        GitError::DubiousOwnership {
            path,
            stderr: stderr.clone(),
        }
    } else {
        error
    }
}

fn parse_commit(command: &str, text: &str) -> Result<CommitId, GitError> {
    CommitId::parse(text).ok_or_else(|| GitError::UnexpectedOutput {
        command: command.to_owned(),
        detail: format!("a commit id expected, got {text:?}"),
    })
}

/// The fields of a `-z` output, without the empty one after the last terminator.
fn nul_fields(bytes: &[u8]) -> Vec<String> {
    let mut fields: Vec<String> = bytes
        .split(|&byte| byte == 0)
        .map(|field| String::from_utf8_lossy(field).into_owned())
        .collect();
    if fields.last().is_some_and(String::is_empty) {
        fields.pop();
    }
    fields
}

/// `git status --porcelain=v2 -z --no-renames` as changed and untracked paths.
fn parse_status(bytes: &[u8]) -> Result<WorkingChanges, GitError> {
    let mut changes = WorkingChanges::default();
    let mut fields = nul_fields(bytes).into_iter();
    while let Some(entry) = fields.next() {
        // The path follows a fixed number of space-separated fields, and may itself contain spaces.
        let (kind, path_at) = match entry.as_bytes().first() {
            Some(b'1') => ("tracked", 8),
            Some(b'2') => ("renamed", 9),
            Some(b'u') => ("tracked", 10),
            Some(b'?') => ("untracked", 1),
            Some(b'!' | b'#') => continue,
            _ => {
                return Err(GitError::UnexpectedOutput {
                    command: "status --porcelain=v2".to_owned(),
                    detail: format!("unknown entry {entry:?}"),
                });
            }
        };
        let Some(path) = entry.splitn(path_at + 1, ' ').nth(path_at) else {
            return Err(GitError::UnexpectedOutput {
                command: "status --porcelain=v2".to_owned(),
                detail: format!("no path in {entry:?}"),
            });
        };
        match kind {
            "untracked" => changes.untracked.push(path.to_owned()),
            "renamed" => {
                changes.tracked.push(path.to_owned());
                fields.next(); // the original path
            }
            _ => changes.tracked.push(path.to_owned()),
        }
    }
    Ok(changes)
}

/// `git worktree list --porcelain -z`.
fn parse_worktrees(bytes: &[u8]) -> Vec<WorktreeEntry> {
    let mut worktrees = Vec::new();
    let mut current: Option<WorktreeEntry> = None;
    for field in nul_fields(bytes) {
        if field.is_empty() {
            worktrees.extend(current.take());
            continue;
        }
        let (key, value) = field.split_once(' ').unwrap_or((field.as_str(), ""));
        match (key, current.as_mut()) {
            ("worktree", _) => {
                worktrees.extend(current.take());
                current = Some(WorktreeEntry {
                    path: PathBuf::from(value),
                    head: None,
                    branch: None,
                    prunable: false,
                });
            }
            ("HEAD", Some(worktree)) => worktree.head = CommitId::parse(value),
            ("branch", Some(worktree)) => {
                worktree.branch = Some(
                    value
                        .strip_prefix("refs/heads/")
                        .unwrap_or(value)
                        .to_owned(),
                );
            }
            ("prunable", Some(worktree)) => worktree.prunable = true,
            _ => {}
        }
    }
    worktrees.extend(current);
    worktrees
}

/// `git merge-tree --write-tree -z --messages`: the tree, and each conflicted path with git's messages about it.
#[derive(Debug, PartialEq)]
struct MergeTree {
    tree: String,
    conflicts: Vec<(String, Vec<String>)>,
}

fn parse_merge_tree(bytes: &[u8]) -> Result<MergeTree, GitError> {
    let unexpected = |detail: String| GitError::UnexpectedOutput {
        command: "merge-tree --write-tree -z".to_owned(),
        detail,
    };
    let fields = nul_fields(bytes);
    let mut fields = fields.into_iter();
    let tree = fields
        .next()
        .filter(|tree| tree.len() >= 40 && tree.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| unexpected("no tree id".to_owned()))?;
    // Conflicted file info: `<mode> <object> <stage>\t<path>`, up to an empty field.
    let mut conflicts: Vec<(String, Vec<String>)> = Vec::new();
    for field in fields.by_ref() {
        if field.is_empty() {
            break;
        }
        let Some((_, path)) = field.split_once('\t') else {
            return Err(unexpected(format!("bad conflicted file entry {field:?}")));
        };
        if conflicts.last().is_none_or(|(last, _)| last != path) {
            conflicts.push((path.to_owned(), Vec::new()));
        }
    }
    // Informational messages: `<number of paths>`, the paths, `<type>`, `<message>`.
    while let Some(count) = fields.next() {
        let count: usize = count
            .parse()
            .map_err(|_| unexpected(format!("bad path count {count:?}")))?;
        let paths: Vec<String> = fields.by_ref().take(count).collect();
        let (Some(_kind), Some(message)) = (fields.next(), fields.next()) else {
            return Err(unexpected("a message ends early".to_owned()));
        };
        let message = message.trim_end().to_owned();
        if !message.starts_with("CONFLICT") {
            continue; // "Auto-merging <path>" says nothing the Worker needs.
        }
        for path in paths {
            match conflicts.iter_mut().find(|(of, _)| *of == path) {
                Some((_, messages)) => {
                    if !messages.contains(&message) {
                        messages.push(message.clone());
                    }
                }
                None => conflicts.push((path, vec![message.clone()])),
            }
        }
    }
    conflicts.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(MergeTree { tree, conflicts })
}

/// The names a conflict's markers should show instead of the commit ids `merge-tree` was given.
#[derive(Debug)]
struct Labels<'a> {
    ours: (&'a str, String),
    theirs: (&'a str, String),
}

impl Labels<'_> {
    fn apply(&self, text: &str) -> String {
        text.split_inclusive('\n')
            .map(|line| {
                for (marker, (id, label)) in [('<', &self.ours), ('>', &self.theirs)] {
                    let run = line.chars().take_while(|&c| c == marker).count();
                    if run >= 7 && line[run..].starts_with(' ') {
                        let rest = &line[run + 1..];
                        if let Some(after) = rest.strip_prefix(*id) {
                            return format!("{} {label}{after}", &line[..run]);
                        }
                    }
                }
                line.to_owned()
            })
            .collect()
    }
}

/// The regions of `text` between conflict markers, with [`CONFLICT_CONTEXT`] lines around each (regions
/// that touch are joined), at most [`MAX_HUNKS_PER_FILE`] of at most [`MAX_HUNK_LINES`] lines; and whether
/// some were left out.
fn conflict_hunks(text: &str) -> (Vec<ConflictHunk>, bool) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut regions: Vec<(usize, usize)> = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    for (index, line) in lines.iter().enumerate() {
        let opening = line.chars().take_while(|&c| c == '<').count();
        let closing = line.chars().take_while(|&c| c == '>').count();
        match start {
            None if opening >= 7 => start = Some((index, opening)),
            Some((from, size)) if closing == size => {
                regions.push((from, index));
                start = None;
            }
            _ => {}
        }
    }
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for (from, to) in regions {
        let from = from.saturating_sub(CONFLICT_CONTEXT);
        let to = (to + CONFLICT_CONTEXT).min(lines.len() - 1);
        match hunks.last_mut() {
            Some(last) if from <= last.1 + 1 => last.1 = to,
            _ => hunks.push((from, to)),
        }
    }
    let truncated = hunks.len() > MAX_HUNKS_PER_FILE
        || hunks
            .iter()
            .any(|(from, to)| to - from + 1 > MAX_HUNK_LINES);
    let hunks = hunks
        .into_iter()
        .take(MAX_HUNKS_PER_FILE)
        .map(|(from, to)| {
            let to = to.min(from + MAX_HUNK_LINES - 1);
            let mut text: String = lines[from..=to].concat();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            ConflictHunk {
                first_line: from + 1,
                text,
            }
        })
        .collect();
    (hunks, truncated)
}

/// `git diff --name-status -z` and `git diff --numstat -z` of the same range, joined.
fn file_stats(statuses: &[u8], numstats: &[u8]) -> Result<Vec<FileStat>, GitError> {
    let unexpected = |detail: String| GitError::UnexpectedOutput {
        command: "diff --name-status/--numstat -z".to_owned(),
        detail,
    };
    let mut files = Vec::new();
    let mut fields = nul_fields(statuses).into_iter();
    while let Some(code) = fields.next() {
        let mut path = || {
            fields
                .next()
                .ok_or_else(|| unexpected(format!("no path after {code:?}")))
        };
        let (status, old_path, path) = match code.as_bytes().first() {
            Some(b'A') => (FileStatus::Added, None, path()?),
            Some(b'M') => (FileStatus::Modified, None, path()?),
            Some(b'D') => (FileStatus::Deleted, None, path()?),
            Some(b'T') => (FileStatus::TypeChanged, None, path()?),
            Some(b'R') => {
                let old = path()?;
                (FileStatus::Renamed, Some(old), path()?)
            }
            // A copy shows only with copy detection, which is not asked for; read it as an addition.
            Some(b'C') => {
                let _source = path()?;
                (FileStatus::Added, None, path()?)
            }
            _ => return Err(unexpected(format!("unknown status {code:?}"))),
        };
        files.push(FileStat {
            path,
            old_path,
            status,
            additions: None,
            deletions: None,
        });
    }
    // numstat: `<added>\t<deleted>\t<path>` or, for a rename, `<added>\t<deleted>\t` then old and new path.
    let mut fields = nul_fields(numstats).into_iter();
    let mut index = 0;
    while let Some(field) = fields.next() {
        let mut parts = field.splitn(3, '\t');
        let (Some(added), Some(deleted), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(unexpected(format!("bad numstat entry {field:?}")));
        };
        let path = if path.is_empty() {
            let _old = fields.next();
            fields.next().unwrap_or_default()
        } else {
            path.to_owned()
        };
        let Some(file) = files.get_mut(index) else {
            return Err(unexpected(format!(
                "numstat lists {path:?} beyond name-status"
            )));
        };
        if file.path != path {
            return Err(unexpected(format!(
                "numstat lists {path:?} where name-status lists {:?}",
                file.path
            )));
        }
        file.additions = added.parse().ok();
        file.deletions = deleted.parse().ok();
        index += 1;
    }
    Ok(files)
}

/// The first `limit` bytes of `bytes` (which are the start of `total`), cut after the last whole line.
fn cut_at_line(bytes: &[u8], limit: usize, total: u64) -> String {
    if total <= limit as u64 && bytes.len() as u64 == total {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let kept = &bytes[..bytes.len().min(limit)];
    let end = kept
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |at| at + 1);
    String::from_utf8_lossy(&kept[..end]).into_owned()
}

/// `value` as one word for a POSIX shell: as it is if that is safe, else in single quotes.
fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if safe {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// Whether two paths name the same place (compared resolved when both exist).
fn same_path(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => normalize(a) == normalize(b),
    }
}

/// Whether `path` is `dir` or below it.
fn is_below(path: &Path, dir: &Path) -> bool {
    let resolve = |path: &Path| fs::canonicalize(path).unwrap_or_else(|_| normalize(path));
    resolve(path).starts_with(resolve(dir))
}

/// `path` without `.` components and with `..` applied.
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

fn remove_dir_if_present(path: &Path, action: &'static str) -> Result<(), GitError> {
    match fs::remove_dir_all(path) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => Err(GitError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

fn create_parent(path: &Path) -> Result<(), GitError> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    fs::create_dir_all(parent).map_err(|source| GitError::Io {
        action: "create the worktree's parent directory",
        path: parent.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_2_38_are_accepted() {
        assert!(check_version("git version 2.47.3").is_ok());
        assert!(check_version("git version 2.38.0.windows.1").is_ok());
        assert!(check_version("git version 3.0.0").is_ok());
        let Err(GitError::TooOld { found, required }) = check_version("git version 2.37.9") else {
            panic!("2.37 accepted");
        };
        assert_eq!((found.as_str(), required.as_str()), ("2.37.9", "2.38"));
        assert!(check_version("nonsense").is_err());
    }

    #[test]
    fn status_entries_become_tracked_and_untracked_paths() {
        let output = b"1 .M N... 100644 100644 100644 aaaa bbbb src/a file.rs\0\
                       u UU N... 100644 100644 100644 100644 a b c both.rs\0\
                       2 R. N... 100644 100644 100644 a b R100 new.rs\0old.rs\0\
                       ? notes dir/\0! ignored.log\0";
        let changes = parse_status(output).unwrap();
        assert_eq!(changes.tracked, ["src/a file.rs", "both.rs", "new.rs"]);
        assert_eq!(changes.untracked, ["notes dir/"]);
        assert!(parse_status(b"").unwrap().is_clean());
        assert!(parse_status(b"x what\0").is_err());
    }

    #[test]
    fn worktree_list_records_are_read() {
        let output = b"worktree /repo\0HEAD 1111111111111111111111111111111111111111\0branch refs/heads/main\0\0\
                       worktree /cache/m1/tasks/T1\0HEAD 2222222222222222222222222222222222222222\0detached\0prunable gitdir file points to non-existent location\0\0";
        let worktrees = parse_worktrees(output);
        assert_eq!(worktrees.len(), 2);
        assert_eq!(worktrees[0].branch.as_deref(), Some("main"));
        assert!(!worktrees[0].prunable);
        assert_eq!(worktrees[1].path, Path::new("/cache/m1/tasks/T1"));
        assert_eq!(worktrees[1].branch, None);
        assert!(worktrees[1].prunable);
        assert_eq!(
            worktrees[1].head.as_ref().map(CommitId::as_str),
            Some("2222222222222222222222222222222222222222")
        );
    }

    #[test]
    fn merge_tree_output_gives_the_tree_and_each_conflicted_path_with_its_messages() {
        let tree = "df1e8258981905d0b4ba713204dc4f855d99d311";
        let output = format!(
            "{tree}\0100644 422c 1\tf\0100644 ed7a 2\tf\0100644 55dc 3\tf\0100644 9999 2\tgone.rs\0\0\
             1\0f\0Auto-merging\0Auto-merging f\n\0\
             1\0f\0CONFLICT (contents)\0CONFLICT (content): Merge conflict in f\n\0\
             2\0gone.rs\0x\0CONFLICT (modify/delete)\0CONFLICT (modify/delete): gone.rs deleted in a and modified in b.\n\0"
        );
        let parsed = parse_merge_tree(output.as_bytes()).unwrap();
        assert_eq!(parsed.tree, tree);
        assert_eq!(
            parsed.conflicts,
            [
                (
                    "f".to_owned(),
                    vec!["CONFLICT (content): Merge conflict in f".to_owned()]
                ),
                (
                    "gone.rs".to_owned(),
                    vec![
                        "CONFLICT (modify/delete): gone.rs deleted in a and modified in b."
                            .to_owned()
                    ]
                ),
                (
                    "x".to_owned(),
                    vec![
                        "CONFLICT (modify/delete): gone.rs deleted in a and modified in b."
                            .to_owned()
                    ]
                ),
            ]
        );
        let clean = parse_merge_tree(format!("{tree}\0").as_bytes()).unwrap();
        assert!(clean.conflicts.is_empty());
        assert!(parse_merge_tree(b"not a tree\0").is_err());
    }

    #[test]
    fn hunks_keep_context_join_neighbours_and_show_branch_names() {
        let ours = "1".repeat(40);
        let theirs = "2".repeat(40);
        let mut text = String::new();
        for line in 1..=20 {
            text.push_str(&format!("line {line}\n"));
            if line == 5 || line == 8 {
                text.push_str(&format!(
                    "<<<<<<< {ours}\nA\n=======\nB\n>>>>>>> {theirs}\n"
                ));
            }
            if line == 18 {
                text.push_str(&format!(
                    "<<<<<<< {ours}:a.rs\nX\n=======\n>>>>>>> {theirs}:a.rs\n"
                ));
            }
        }
        let labels = Labels {
            ours: (&ours, "orchestrator/m1 (integrated)".to_owned()),
            theirs: (&theirs, "orchestrator-task/m1/T1 (this task)".to_owned()),
        };
        let (hunks, truncated) = conflict_hunks(&labels.apply(&text));
        assert!(!truncated);
        assert_eq!(hunks.len(), 2, "{hunks:#?}");
        // Lines 3..=5 of context, both conflicts (the second 3 lines after the first), then 3 lines.
        assert_eq!(hunks[0].first_line, 3);
        assert!(
            hunks[0]
                .text
                .starts_with("line 3\nline 4\nline 5\n<<<<<<< orchestrator/m1 (integrated)\n")
        );
        assert!(
            hunks[0].text.ends_with(
                ">>>>>>> orchestrator-task/m1/T1 (this task)\nline 9\nline 10\nline 11\n"
            )
        );
        assert_eq!(hunks[0].text.matches("<<<<<<<").count(), 2);
        assert!(
            hunks[1]
                .text
                .contains("<<<<<<< orchestrator/m1 (integrated):a.rs\n"),
            "{}",
            hunks[1].text
        );
        assert!(hunks[1].text.ends_with("line 19\nline 20\n"));
        assert_eq!(conflict_hunks("no markers\n"), (Vec::new(), false));
    }

    #[test]
    fn many_conflicts_are_cut_and_say_so() {
        let mut text = String::new();
        for _ in 0..(MAX_HUNKS_PER_FILE + 5) {
            text.push_str("a\nb\nc\nd\ne\nf\ng\n<<<<<<< x\n1\n=======\n2\n>>>>>>> y\n");
        }
        let (hunks, truncated) = conflict_hunks(&text);
        assert_eq!(hunks.len(), MAX_HUNKS_PER_FILE);
        assert!(truncated);
    }

    #[test]
    fn name_status_and_numstat_are_joined() {
        let statuses = b"M\0src/lib.rs\0R087\0old name.rs\0new name.rs\0A\0logo.png\0D\0gone.rs\0";
        let numstats = b"3\t1\tsrc/lib.rs\x002\t2\t\0old name.rs\0new name.rs\0-\t-\tlogo.png\x000\t7\tgone.rs\0";
        let files = file_stats(statuses, numstats).unwrap();
        assert_eq!(
            files,
            [
                FileStat {
                    path: "src/lib.rs".to_owned(),
                    old_path: None,
                    status: FileStatus::Modified,
                    additions: Some(3),
                    deletions: Some(1),
                },
                FileStat {
                    path: "new name.rs".to_owned(),
                    old_path: Some("old name.rs".to_owned()),
                    status: FileStatus::Renamed,
                    additions: Some(2),
                    deletions: Some(2),
                },
                FileStat {
                    path: "logo.png".to_owned(),
                    old_path: None,
                    status: FileStatus::Added,
                    additions: None,
                    deletions: None,
                },
                FileStat {
                    path: "gone.rs".to_owned(),
                    old_path: None,
                    status: FileStatus::Deleted,
                    additions: Some(0),
                    deletions: Some(7),
                },
            ]
        );
    }

    #[test]
    fn long_text_is_cut_after_a_whole_line() {
        assert_eq!(cut_at_line(b"ab\ncd\n", 100, 6), "ab\ncd\n");
        assert_eq!(cut_at_line(b"ab\ncd", 4, 6), "ab\n");
        assert_eq!(cut_at_line(b"abcd", 4, 10), "");
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("orchestrator/m1"), "orchestrator/m1");
        assert_eq!(shell_quote("/home/me/my project"), "'/home/me/my project'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn the_default_root_is_per_repository_and_stable() {
        let a = default_worktree_root(Path::new("/src/app"), Path::new("/src/app/.git"));
        let b = default_worktree_root(Path::new("/other/app"), Path::new("/other/app/.git"));
        assert_ne!(a, b);
        assert!(
            a.to_string_lossy().contains("orchestrator/worktrees/app-"),
            "{a:?}"
        );
        assert!(!a.starts_with("/src/app"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_stopped_with_its_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("sleeper.pid");
        // A shell alias: git starts `sh`, which starts a `sleep` in the same process group.
        let alias = format!(
            "alias.hang=!sleep 600 & echo $! > '{}'; echo started >&2; wait",
            pid_file.display()
        );
        let started = std::time::Instant::now();
        let error = run(
            dir.path(),
            argv!["-c", alias, "hang"],
            SUCCESS,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let GitError::Timeout { stderr, after, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(*after, Duration::from_secs(1));
        assert_eq!(stderr, "started\n");
        let pid: i32 = fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "sleep {pid} outlived the timeout"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_failed_command_keeps_its_stderr_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let error = run(
            dir.path(),
            argv!["no-such-subcommand"],
            SUCCESS,
            DEFAULT_TIMEOUT,
        )
        .await
        .unwrap_err();
        let GitError::Command {
            command,
            code,
            stderr,
            ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(command, "no-such-subcommand");
        assert_eq!(*code, Some(1));
        assert!(stderr.contains("is not a git command"), "{stderr}");
        assert!(
            error.to_string().contains("`git no-such-subcommand`"),
            "{error}"
        );
    }
}
