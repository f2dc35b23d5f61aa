//! What ends a command before or instead of a mission's own outcome, and the only place that turns an
//! outcome or an error into an exit status.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::adapters::claim::ClaimError;
use crate::adapters::git::GitError;
use crate::adapters::journal::OpenJournalError;
use crate::adapters::opencode::{ConnectError, LaunchError};
use crate::adapters::own_server::{FindError, StartError};
use crate::cli::config::ConfigError;
use crate::cli::install::InstallError;
use crate::domain::mission::{MissionStatus, MissionTextError, Signal};
use crate::engine::MissionError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// `--model` is not `provider/model`.
    #[error("--model {given:?} is not provider/model (for example anthropic/claude-sonnet-4)")]
    BadModel {
        /// What was given.
        given: String,
    },
    /// The mission text cannot be a mission.
    #[error(transparent)]
    MissionText(#[from] MissionTextError),
    /// The mission file cannot be read.
    #[error("cannot read the mission from {}", path.display())]
    MissionFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The mission file is not UTF-8.
    #[error("the mission in {} is not UTF-8 (invalid byte at offset {offset})", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// No mission has that id.
    #[error("no mission {id} in {} (known: {known})", directory.display())]
    UnknownMission {
        /// The id given.
        id: String,
        /// Where missions are kept.
        directory: PathBuf,
        /// The known ids, or `none`.
        known: String,
    },
    /// `memory show` or `memory forget` for a mission without a record.
    #[error("no record of mission {id} in {} (known: {known})", directory.display())]
    UnknownRecord {
        /// The id given.
        id: String,
        /// Where records are kept.
        directory: PathBuf,
        /// The ids of the records there, or `none`.
        known: String,
    },
    /// A mission record could not be written or removed.
    #[error(transparent)]
    Record(#[from] crate::domain::recall::KeepError),
    /// The project has no mission yet.
    #[error("no mission in {}: start one with `orchestrator task`", directory.display())]
    NoMission {
        /// Where missions are kept.
        directory: PathBuf,
    },
    /// `stop` for a mission no orchestrator runs.
    #[error("mission {id} is not running")]
    NotRunning {
        /// The mission.
        id: String,
    },
    /// `stop` could not signal the orchestrator.
    #[error("cannot signal the orchestrator running mission {id} (pid {pid})")]
    Signal {
        /// The mission.
        id: String,
        /// Its orchestrator.
        pid: i32,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// The orchestrator that `stop` signalled is still running.
    #[error("the orchestrator (pid {pid}) did not stop within {seconds} s")]
    StopTimedOut {
        /// Its pid.
        pid: i32,
        /// How long `stop` waited.
        seconds: u64,
    },
    /// The project's configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `install` or `uninstall` failed (and says what it rolled back).
    #[error(transparent)]
    Install(#[from] InstallError),
    /// An OpenCode server cannot be used (boxed: the client's error is large, and every command returns
    /// this type).
    #[error(transparent)]
    Connect(Box<ConnectError>),
    /// The demo's model or server did not start.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// Nothing answers at the default URL, no server is configured, and there is no `opencode` to start.
    #[error(
        "no OpenCode server at {url} and {source}: install it (npm i -g opencode-ai) or pass --url"
    )]
    NoServer {
        /// The default URL.
        url: String,
        /// Why no `opencode` can be started.
        #[source]
        source: FindError,
    },
    /// `--otlp` given to a build without the `otel` feature.
    #[error(
        "cannot export traces to {endpoint}: this orchestrator was built without OTLP export (rebuild it with `--features otel`)"
    )]
    OtlpUnavailable {
        /// The endpoint given.
        endpoint: url::Url,
    },
    /// The user's own `opencode serve` did not start (boxed: it carries the server's last lines).
    #[error("could not start your opencode for this mission")]
    OwnServer(#[source] Box<StartError>),
    /// The mission's journal cannot be created or opened.
    #[error(transparent)]
    Journal(#[from] OpenJournalError),
    /// The project cannot give each task a git worktree of its own (not a repository, no commit yet, git
    /// missing or too old).
    #[error(
        "{0}\n(or pass --no-isolation: the mission then runs one Worker at a time in the project itself, \
         without a worktree per task)"
    )]
    Isolation(GitError),
    /// A `/task` command cannot be claimed (a bad id, a state directory that cannot be written).
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// The mission cannot be created or resumed.
    #[error(transparent)]
    Mission(#[from] MissionError),
    /// A file or directory of the command line's own cannot be used.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A status file does not parse.
    #[error("{} does not parse", path.display())]
    Status {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl From<ConnectError> for CliError {
    fn from(error: ConnectError) -> Self {
        CliError::Connect(Box::new(error))
    }
}

impl From<StartError> for CliError {
    fn from(error: StartError) -> Self {
        CliError::OwnServer(Box::new(error))
    }
}

impl CliError {
    /// The exit status: 2 for bad input before anything ran (a mission state that cannot be used
    /// included: it is refused before anything starts), 1 for a mission or a command that could not go on.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Mission(_) | CliError::StopTimedOut { .. } => 1,
            CliError::Io { .. } | CliError::Status { .. } | CliError::Signal { .. } => 1,
            CliError::Record(_) => 1,
            CliError::Launch(_) => 1,
            CliError::Journal(_)
            | CliError::Claim(_)
            | CliError::BadModel { .. }
            | CliError::MissionText(_)
            | CliError::MissionFile { .. }
            | CliError::NotUtf8 { .. }
            | CliError::UnknownMission { .. }
            | CliError::UnknownRecord { .. }
            | CliError::NoMission { .. }
            | CliError::NotRunning { .. }
            | CliError::Config(_)
            | CliError::Install(_)
            | CliError::Isolation(_)
            | CliError::Connect(_)
            | CliError::NoServer { .. }
            | CliError::OtlpUnavailable { .. }
            | CliError::OwnServer(_) => 2,
        }
    }

    /// A closure that turns an I/O error into [`CliError::Io`] for `action` on `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> CliError {
        let path = path.into();
        move |source| CliError::Io {
            action,
            path,
            source,
        }
    }
}

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did what it was asked: a mission completed, a command succeeded.
    Done,
    /// It ran and did not complete: a mission incomplete or stopped by a failure, a check that failed.
    NotDone,
    /// A signal stopped it.
    Signalled(Signal),
    /// A mission paused at a budget (`resume` with a higher one goes on).
    Paused,
}

impl Outcome {
    /// The outcome of a mission that ended with `status`.
    pub fn of(status: &MissionStatus) -> Self {
        match status {
            MissionStatus::Completed => Outcome::Done,
            MissionStatus::Stopped {
                cause: crate::domain::mission::StopCause::Signal { signal },
            } => Outcome::Signalled(*signal),
            MissionStatus::Stopped {
                cause: crate::domain::mission::StopCause::Budget { .. },
            } => Outcome::Paused,
            _ => Outcome::NotDone,
        }
    }

    /// Its exit status: 0 done, 1 not done, 3 paused at a budget, 130 after SIGINT, 143 after SIGTERM.
    pub fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Outcome::Done => 0,
            Outcome::NotDone => 1,
            Outcome::Paused => 3,
            Outcome::Signalled(Signal::Interrupt) => 130,
            Outcome::Signalled(Signal::Terminate) => 143,
        })
    }
}

/// The exit status of a command's result.
pub fn exit_code(result: &Result<Outcome, CliError>) -> ExitCode {
    match result {
        Ok(outcome) => outcome.code(),
        Err(error) => ExitCode::from(error.code()),
    }
}

/// An error and each of its causes that says something its message does not already say.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
