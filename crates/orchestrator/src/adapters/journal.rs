//! The mission's journal on disk: an [`mvcc_store`] durable store in
//! `<project>/.opencode/orchestrator/missions/<id>/`, one commit per event (synced before the commit
//! returns, so an event the engine recorded survives `kill -9`), plus the files kept beside it: the plan for
//! people to read (`todo.md`), the running orchestrator's pid and its status snapshot.
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

/// A mission's journal on disk.
#[derive(Debug)]
pub struct FileJournal {
    directory: PathBuf,
    store: Store<String, String>,
}

/// Where the missions of a project are kept: `<project>/.opencode/orchestrator/missions/`.
pub fn missions_dir(project: &Path) -> PathBuf {
    project
        .join(".opencode")
        .join("orchestrator")
        .join("missions")
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
