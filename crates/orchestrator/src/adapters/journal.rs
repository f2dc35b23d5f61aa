//! The mission's journal on disk: an [`mvcc_store`] durable store in
//! `<project>/.opencode/orchestrator/missions/<id>/`, one commit per event (synced before the commit
//! returns, so an event the engine recorded survives `kill -9`), plus the files kept beside it: the plan for
//! people to read (`todo.md`), the running orchestrator's pid and its status snapshot.
//!
//! Everything the orchestrator writes in a project lives in its state directory,
//! `<project>/.opencode/orchestrator/` ([`state_dir`]), which holds a `.gitignore` of its own
//! ([`STATE_GITIGNORE`]: everything in it) so that `git add -A` never commits a mission's state, a backup
//! or a log. [`ensure_state_dir`] makes the directory with that file; every writer goes through it (the
//! journal of a new mission, the log, `install`'s backups, the claims of `/task` commands).
//!
//! Keys: `format` holds the journal's format version, written first; `e/<seq>` holds each event as JSON (the
//! same JSON `--json` shows).

use std::path::{Path, PathBuf};

use mvcc_store::{CommitError, Durability, OpenError, Store};

use crate::adapters::files;
use crate::domain::mission::{Entry, JOURNAL_FORMAT, JournalError};

/// The key of the format version.
const FORMAT_KEY: &str = "format";

/// The key of the mission record written by the first orchestrator (format 1), before the journal.
const FORMAT_1_KEY: &str = "mission";

/// Why a mission's journal could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenJournalError {
    /// No mission is kept there.
    #[error("no mission state in {}", directory.display())]
    Missing {
        /// The directory.
        directory: PathBuf,
    },
    /// A mission is already kept there.
    #[error("{} already holds a mission", directory.display())]
    Exists {
        /// The directory.
        directory: PathBuf,
    },
    /// Another orchestrator has it open.
    #[error("mission state in {} is in use by another orchestrator", directory.display())]
    Locked {
        /// The directory.
        directory: PathBuf,
    },
    /// The directory cannot be created, read or written.
    #[error("cannot {action} {}", directory.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The directory.
        directory: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store is damaged (not a torn tail, which is repaired).
    #[error("cannot open the mission state in {}: it is damaged", directory.display())]
    Damaged {
        /// The directory.
        directory: PathBuf,
        /// What the store found.
        #[source]
        source: OpenError,
    },
    /// It was written by another version of the orchestrator.
    #[error(
        "the mission state in {} is in journal format {found}; this orchestrator reads format {JOURNAL_FORMAT} \
         (written by {} version)",
        directory.display(),
        if *found > JOURNAL_FORMAT { "a newer" } else { "an older" }
    )]
    Format {
        /// The directory.
        directory: PathBuf,
        /// The format found.
        found: u32,
    },
    /// An event does not decode.
    #[error("event {key} in {} does not decode", directory.display())]
    Decode {
        /// The directory.
        directory: PathBuf,
        /// The event's key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// The state directory of a project, relative to it.
pub const STATE_DIR: &str = ".opencode/orchestrator";

/// The `.gitignore` of the state directory: everything in it, itself included, stays out of git.
pub const STATE_GITIGNORE: &str = "# Written by the orchestrator: its state (missions, backups, log, claims) stays out of git.\n*\n";

/// Where the orchestrator keeps what it writes in a project: `<project>/.opencode/orchestrator/`.
pub fn state_dir(project: &Path) -> PathBuf {
    project.join(STATE_DIR)
}

/// Creates the project's state directory (and its parents) when it is missing, and its `.gitignore`
/// ([`STATE_GITIGNORE`]) when that is missing; a `.gitignore` already there is left as it is (the user may
/// have changed it). Returns the directory.
///
/// ```
/// use orchestrator::adapters::journal;
///
/// let project = tempfile::tempdir()?;
/// let state = journal::ensure_state_dir(project.path())?;
/// assert!(state.ends_with(".opencode/orchestrator"));
/// assert_eq!(std::fs::read_to_string(state.join(".gitignore"))?, journal::STATE_GITIGNORE);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// The I/O error of creating the directory or writing the file (the caller names the directory).
pub fn ensure_state_dir(project: &Path) -> std::io::Result<PathBuf> {
    let state = state_dir(project);
    ensure_ignored(&state)?;
    Ok(state)
}

/// [`ensure_state_dir`] on the state directory itself.
fn ensure_ignored(state: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(state)?;
    let ignore = state.join(".gitignore");
    if std::fs::symlink_metadata(&ignore).is_err() {
        files::write_atomically(&ignore, STATE_GITIGNORE.as_bytes())?;
    }
    Ok(())
}

/// A mission's journal on disk.
#[derive(Debug)]
pub struct FileJournal {
    directory: PathBuf,
    store: Store<String, String>,
}

/// Where the missions of a project are kept: `<project>/.opencode/orchestrator/missions/`.
pub fn missions_dir(project: &Path) -> PathBuf {
    state_dir(project).join("missions")
}

/// The missions kept for a project, oldest first (their ids sort by start time).
pub fn mission_ids(project: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(missions_dir(project))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    ids.sort_by_key(|id| (id.len(), id.clone()));
    ids
}

fn event_key(seq: u64) -> String {
    format!("e/{seq:020}")
}

impl FileJournal {
    /// Creates the journal of a new mission in `directory`.
    ///
    /// # Errors
    ///
    /// [`OpenJournalError::Exists`] when it already holds one; [`OpenJournalError::Io`] or
    /// [`OpenJournalError::Damaged`] when it cannot be written.
    pub fn create(directory: &Path) -> Result<Self, OpenJournalError> {
        if directory.exists() {
            return Err(OpenJournalError::Exists {
                directory: directory.to_path_buf(),
            });
        }
        // A mission kept where `missions_dir` puts it: its state directory gets its `.gitignore` first.
        if let Some(state) = directory
            .parent()
            .filter(|missions| missions.ends_with("missions"))
            .and_then(Path::parent)
            .filter(|state| state.ends_with(STATE_DIR))
        {
            ensure_ignored(state).map_err(|source| OpenJournalError::Io {
                action: "create",
                directory: state.to_path_buf(),
                source,
            })?;
        }
        std::fs::create_dir_all(directory).map_err(|source| OpenJournalError::Io {
            action: "create",
            directory: directory.to_path_buf(),
            source,
        })?;
        let store = open_store(directory)?;
        store
            .put(FORMAT_KEY.to_string(), JOURNAL_FORMAT.to_string())
            .map_err(|error| OpenJournalError::Io {
                action: "write the journal in",
                directory: directory.to_path_buf(),
                source: commit_io(error),
            })?;
        Ok(Self {
            directory: directory.to_path_buf(),
            store,
        })
    }

    /// Opens the journal in `directory` and reads its entries, in order.
    ///
    /// # Errors
    ///
    /// [`OpenJournalError`]: missing, locked by another orchestrator, damaged, of another format, or an
    /// event that does not decode. Nothing on disk is changed by a refusal (a torn last record, which held no
    /// acknowledged event, is the only thing the store repairs).
    pub fn open(directory: &Path) -> Result<(Self, Vec<Entry>), OpenJournalError> {
        if !directory.is_dir() {
            return Err(OpenJournalError::Missing {
                directory: directory.to_path_buf(),
            });
        }
        let store = open_store(directory)?;
        let format = store.get(FORMAT_KEY);
        let found = match format.as_deref() {
            Some(text) => text.parse().unwrap_or(u32::MAX),
            None if store.get(FORMAT_1_KEY).is_some() => 1,
            None => {
                return Err(OpenJournalError::Missing {
                    directory: directory.to_path_buf(),
                });
            }
        };
        if found != JOURNAL_FORMAT {
            return Err(OpenJournalError::Format {
                directory: directory.to_path_buf(),
                found,
            });
        }
        let snapshot = store.snapshot();
        let mut entries = Vec::new();
        for (key, json) in snapshot.range::<String, _>("e/".to_string().."e0".to_string()) {
            let entry: Entry =
                serde_json::from_str(json).map_err(|source| OpenJournalError::Decode {
                    directory: directory.to_path_buf(),
                    key: key.clone(),
                    source,
                })?;
            entries.push(entry);
        }
        drop(snapshot);
        Ok((
            Self {
                directory: directory.to_path_buf(),
                store,
            },
            entries,
        ))
    }

    /// The mission's directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Syncs the store's files (a checkpoint), for a shutdown.
    pub fn sync(&self) {
        if let Err(error) = self.store.checkpoint() {
            tracing::warn!(directory = %self.directory.display(), %error, "could not checkpoint the journal");
        }
    }

    /// Appends one entry, synced.
    ///
    /// # Errors
    ///
    /// [`JournalError`] naming the directory when it cannot be written.
    pub fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        let json = serde_json::to_string(entry).map_err(|error| JournalError {
            path: self.directory.clone(),
            source: Box::new(error),
        })?;
        self.store
            .put(event_key(entry.seq), json)
            .map(drop)
            .map_err(|error| JournalError {
                path: self.directory.clone(),
                source: Box::new(commit_io(error)),
            })
    }

    /// Writes the plan for people to read, as `todo.md` in the mission's directory.
    ///
    /// # Errors
    ///
    /// [`JournalError`] naming the file when it cannot be written.
    pub fn write_plan(&self, markdown: &str) -> Result<PathBuf, JournalError> {
        let path = plan_path(&self.directory);
        files::write_atomically(&path, markdown.as_bytes()).map_err(|source| JournalError {
            path: path.clone(),
            source: Box::new(source),
        })?;
        Ok(path)
    }
}

/// The plan file of the mission kept in `directory`.
pub fn plan_path(directory: &Path) -> PathBuf {
    directory.join("todo.md")
}

/// The pid file of the orchestrator running the mission kept in `directory`.
pub fn pid_path(directory: &Path) -> PathBuf {
    directory.join("pid")
}

/// The status snapshot the running orchestrator keeps for `orchestrator status` (its store is locked).
pub fn status_path(directory: &Path) -> PathBuf {
    directory.join("status.json")
}

fn open_store(directory: &Path) -> Result<Store<String, String>, OpenJournalError> {
    Store::open(directory, Durability::Fsync).map_err(|error| match error {
        OpenError::Locked { .. } => OpenJournalError::Locked {
            directory: directory.to_path_buf(),
        },
        OpenError::Io { source, .. } => OpenJournalError::Io {
            action: "open the journal in",
            directory: directory.to_path_buf(),
            source,
        },
        other => OpenJournalError::Damaged {
            directory: directory.to_path_buf(),
            source: other,
        },
    })
}

/// The I/O error under a failed commit (a single writer never conflicts).
fn commit_io(error: CommitError<String>) -> std::io::Error {
    match error {
        CommitError::Log { source } => source,
        other => std::io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `git status --porcelain` in `project`.
    fn git_status(project: &Path) -> String {
        let output = std::process::Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=all"])
            .current_dir(project)
            .output()
            .expect("git runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn git_project() -> tempfile::TempDir {
        let project = tempfile::tempdir().expect("tempdir");
        let status = std::process::Command::new("git")
            .args(["init", "-q"])
            .current_dir(project.path())
            .status()
            .expect("git init");
        assert!(status.success());
        project
    }

    #[test]
    fn a_new_mission_leaves_nothing_for_git_to_commit() {
        let project = git_project();
        let journal =
            FileJournal::create(&missions_dir(project.path()).join("m1")).expect("create");
        journal.write_plan("# Mission: x\n").expect("plan");
        files::write_atomically(&pid_path(journal.directory()), b"1").expect("pid");
        assert_eq!(
            git_status(project.path()),
            "",
            "nothing of the mission shows"
        );
        assert_eq!(
            std::fs::read_to_string(state_dir(project.path()).join(".gitignore")).expect("read"),
            STATE_GITIGNORE
        );
    }

    #[test]
    fn the_state_dir_is_ignored_and_a_users_gitignore_kept() {
        let project = git_project();
        let state = ensure_state_dir(project.path()).expect("state dir");
        std::fs::write(state.join("orchestrator.log"), "a line\n").expect("write");
        assert_eq!(git_status(project.path()), "");

        let mine = "# mine\n*.log\n";
        std::fs::write(state.join(".gitignore"), mine).expect("write");
        ensure_state_dir(project.path()).expect("again");
        assert_eq!(
            std::fs::read_to_string(state.join(".gitignore")).expect("read"),
            mine
        );
    }

    #[test]
    fn a_journal_outside_a_state_dir_writes_no_gitignore() {
        let dir = tempfile::tempdir().expect("tempdir");
        FileJournal::create(&dir.path().join("elsewhere")).expect("create");
        assert!(!dir.path().join(".gitignore").exists());
        assert!(!dir.path().join(".opencode").exists());
    }
}
