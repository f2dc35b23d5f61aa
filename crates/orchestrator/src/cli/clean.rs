//! `orchestrator clean`: removes the worktrees that finished, stopped or abandoned missions left, and with
//! `--branches` the branches whose work is already in the user's `HEAD`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::adapters::git::{GitError, GitWorkspace};
use crate::adapters::journal;
use crate::cli::error::CliError;
use crate::domain::workspace::{BranchEntry, BranchRole};

/// Removes the worktrees of `mission` (default: every mission of the project's repository that no
/// orchestrator is running); with `branches`, also the mission's branches whose head is on the user's
/// `HEAD`. A mission still running is left alone. Returns what it did, in words.
///
/// # Errors
///
/// [`CliError::Isolation`] when the project is not in a git repository, or a git command fails.
pub async fn clean(
    project: &Path,
    mission: Option<&str>,
    branches: bool,
) -> Result<String, CliError> {
    let git = GitWorkspace::open(project)
        .await
        .map_err(CliError::Isolation)?;
    let leftovers = git.leftovers(mission).await.map_err(CliError::Isolation)?;
    let running = |of: &str| super::running_pid(&journal::missions_dir(project).join(of)).is_some();
    let mut report = String::new();
    let mut skipped = BTreeSet::new();
    let mut removed = 0;
    for worktree in &leftovers.worktrees {
        // The mission: the first directory below the worktree root, or the branch's.
        let of = worktree
            .path
            .strip_prefix(git.worktree_root())
            .ok()
            .and_then(|rest| rest.components().next())
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .or_else(|| {
                worktree
                    .branch
                    .as_deref()
                    .and_then(BranchEntry::role_of)
                    .map(|(of, _)| of)
            });
        if let Some(of) = &of
            && running(of)
        {
            skipped.insert(of.clone());
            continue;
        }
        git.remove_worktree(&worktree.path)
            .await
            .map_err(CliError::Isolation)?;
        removed += 1;
        let _ = writeln!(report, "removed worktree {}", worktree.path.display());
    }
    let head = if branches {
        Some(git.inspect().await.map_err(CliError::Isolation)?.commit)
    } else {
        None
    };
    let mut deleted = 0;
    let mut kept = 0;
    for branch in &leftovers.branches {
        if running(&branch.mission) {
            skipped.insert(branch.mission.clone());
            continue;
        }
        let Some(head) = &head else {
            kept += 1;
            continue;
        };
        match git.delete_branch(&branch.name, Some(head.as_str())).await {
            Ok(()) => {
                deleted += 1;
                let _ = writeln!(report, "deleted branch {}", branch.name);
            }
            Err(GitError::NotMerged { .. }) => {
                kept += 1;
                let what = match &branch.role {
                    BranchRole::Integration => "the mission's result",
                    BranchRole::Task { .. } => "a task's work",
                    BranchRole::Attempt { .. } => "an earlier attempt's work",
                };
                let _ = writeln!(
                    report,
                    "kept branch {} ({what}, not in HEAD; `git branch -D {}` deletes it)",
                    branch.name, branch.name
                );
            }
            Err(error) => return Err(CliError::Isolation(error)),
        }
    }
    for of in &skipped {
        let _ = writeln!(
            report,
            "left mission {of} alone: an orchestrator is running it"
        );
    }
    let _ = write!(
        report,
        "{removed} worktree(s) removed, {deleted} branch(es) deleted, {kept} branch(es) kept"
    );
    if !branches && kept > 0 {
        report.push_str(" (--branches deletes those whose work is in HEAD)");
    }
    report.push('\n');
    Ok(report)
}
