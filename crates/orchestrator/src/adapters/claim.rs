//! Claims on `/task` commands, so that one command typed in OpenCode runs one mission, whoever serves it.
//!
//! Two things may see the same `/task`: the plugin that `orchestrator install` puts into the project (it
//! starts `orchestrator task --session … --command-message …` when OpenCode reports the command executed)
//! and an `orchestrator attach` watching the same server, or the plugin loaded twice (from
//! `.opencode/plugin/` and `.opencode/plugins/`). Each of them claims the command before it starts a mission:
//! the claim is a file named after the session and the message of the command, created with `O_EXCL` in
//! `<project>/.opencode/orchestrator/claims/`, so exactly one creator succeeds, across processes, and a
//! crash cannot leave a half-made claim that blocks nobody. The others see [`Claimed::Taken`] and stop.
//!
//! ```
//! use orchestrator::adapters::claim::{self, Claimed};
//!
//! let project = tempfile::tempdir()?;
//! let first = claim::claim_command(project.path(), "ses_1", "msg_1", "attach")?;
//! assert!(matches!(first, Claimed::Mine { .. }));
//! let second = claim::claim_command(project.path(), "ses_1", "msg_1", "plugin")?;
//! assert!(matches!(second, Claimed::Taken { ref by, .. } if by.contains("attach")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Claims are kept (a few bytes each): a claim removed after its mission would let a late second server
//! start the same command again.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::adapters::journal;

/// Why a command could not be claimed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// A session or message id that cannot name a file (OpenCode's look like `ses_…` and `msg_…`).
    #[error(
        "`{id}` is not an OpenCode {what} id (letters, digits, `_` and `-` only, at most 128 characters)"
    )]
    BadId {
        /// Which id.
        what: &'static str,
        /// The id given.
        id: String,
    },
    /// The claim file could not be written.
    #[error("cannot claim the /task command in {}", path.display())]
    Io {
        /// The claim file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The outcome of [`claim_command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// This process claimed the command: it runs the mission.
    Mine {
        /// The claim file.
        path: PathBuf,
    },
    /// Another process claimed it first.
    Taken {
        /// The claim file.
        path: PathBuf,
        /// What the claim says about who made it.
        by: String,
    },
}

/// Where the claims of a project are kept.
pub fn claims_dir(project: &Path) -> PathBuf {
    journal::state_dir(project).join("claims")
}

/// Claims the command whose message is `message` in session `session` for this process; `owner` says who
/// claims it (`attach`, `plugin`), written into the claim with the pid.
///
/// # Errors
///
/// [`ClaimError::BadId`] for an id that cannot name a file; [`ClaimError::Io`] when the state directory
/// or the claim cannot be written.
pub fn claim_command(
    project: &Path,
    session: &str,
    message: &str,
    owner: &str,
) -> Result<Claimed, ClaimError> {
    check_id("session", session)?;
    check_id("message", message)?;
    let directory = claims_dir(project);
    let path = directory.join(format!("{session}.{message}"));
    let io = |source| ClaimError::Io {
        path: path.clone(),
        source,
    };
    journal::ensure_state_dir(project).map_err(io)?;
    std::fs::create_dir_all(&directory).map_err(io)?;
    match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(mut file) => {
            let text = format!("{owner} pid {}\n", std::process::id());
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io)?;
            Ok(Claimed::Mine { path })
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let by = std::fs::read_to_string(&path)
                .map(|text| text.trim().to_string())
                .unwrap_or_default();
            Ok(Claimed::Taken {
                path,
                by: if by.is_empty() {
                    "another orchestrator".to_string()
                } else {
                    by
                },
            })
        }
        Err(error) => Err(io(error)),
    }
}

fn check_id(what: &'static str, id: &str) -> Result<(), ClaimError> {
    let fine = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if fine {
        Ok(())
    } else {
        Err(ClaimError::BadId {
            what,
            id: id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_command_across_threads() {
        let project = tempfile::tempdir().expect("tempdir");
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|index| {
                    let project = project.path();
                    scope.spawn(move || {
                        claim_command(project, "ses_a", "msg_b", &format!("thread {index}"))
                            .expect("claim")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("join"))
                .filter(|claimed| matches!(claimed, Claimed::Mine { .. }))
                .count()
        });
        assert_eq!(winners, 1);
        // Another command of the same session is another claim.
        assert!(matches!(
            claim_command(project.path(), "ses_a", "msg_c", "attach").expect("claim"),
            Claimed::Mine { .. }
        ));
    }

    #[test]
    fn ids_that_could_escape_the_directory_are_refused() {
        let project = tempfile::tempdir().expect("tempdir");
        for (session, message) in [("../x", "msg"), ("ses", "a/b"), ("", "msg"), ("ses", "m.n")] {
            let error =
                claim_command(project.path(), session, message, "attach").expect_err("refused");
            assert!(matches!(error, ClaimError::BadId { .. }), "{error}");
        }
        assert!(!claims_dir(project.path()).exists());
    }

    #[test]
    fn a_claim_says_who_made_it_and_is_ignored_by_git() {
        let project = tempfile::tempdir().expect("tempdir");
        let Claimed::Mine { path } =
            claim_command(project.path(), "ses_1", "msg_1", "plugin").expect("claim")
        else {
            panic!("the first claim is ours");
        };
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("plugin pid {}\n", std::process::id())
        );
        assert!(
            journal::state_dir(project.path())
                .join(".gitignore")
                .is_file()
        );
    }
}
