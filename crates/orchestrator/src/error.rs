//! What can stop a mission.

use std::path::PathBuf;

/// Why the orchestrator stopped. Each names what it was doing and what went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrchestratorError {
    /// The `--url` does not parse.
    #[error("bad OpenCode URL {url:?}: {message}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// Nothing answers at the URL as OpenCode does.
    #[error("no OpenCode server reachable at {url}: {message}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// The demo's model or OpenCode server did not start.
    #[error("could not start the demo's OpenCode server: {message}")]
    Launch {
        /// What went wrong.
        message: String,
    },
    /// A call to OpenCode failed after its retries.
    #[error("OpenCode call failed ({what}) after {attempts} attempt(s): {message}")]
    Opencode {
        /// What the call was for.
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// The mission text is empty or too large.
    #[error("bad mission: {0}")]
    Mission(String),
    /// The Planner never wrote a plan that parses and validates.
    #[error("the Planner's plan was still invalid after {attempts} attempt(s):\n{errors}")]
    Plan {
        /// How many plans were asked for.
        attempts: u32,
        /// The last plan's errors, one per line.
        errors: String,
    },
    /// An agent's turn did not finish.
    #[error("the {role} agent's session {session} {message}")]
    Turn {
        /// The agent.
        role: &'static str,
        /// The session.
        session: String,
        /// What happened.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `install` or `uninstall` failed (and says what it rolled back).
    #[error(transparent)]
    Install(#[from] crate::install::InstallError),
    /// The project's configuration file is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The mission's state could not be created or opened.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// One OpenCode server stopped answering while it ran a task (with others left, the task moves).
    #[error("the OpenCode server at {url} stopped answering: {error}")]
    ServerDown {
        /// The server.
        url: String,
        /// The last error.
        error: String,
    },
    /// OpenCode stopped answering in the middle of the work.
    #[error("stopped: {reason}")]
    Lost {
        /// What failed, and how to continue.
        reason: String,
    },
    /// The mission was interrupted (Ctrl-C or SIGTERM).
    #[error("interrupted by {signal}")]
    Interrupted {
        /// The signal's name.
        signal: &'static str,
    },
}
