//! The command line's options, as clap parses them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Runs missions through OpenCode agents: Commander → Planner → parallel Workers → Reviewer.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs one mission to its end and prints its summary.
    Task(TaskArgs),
    /// Continues a mission that was stopped or whose orchestrator died (default: the latest).
    Resume(ResumeArgs),
    /// Shows a mission's tasks and where they are (default: the latest).
    Status(StatusArgs),
    /// Stops a mission running in another process: its sessions are aborted and its state kept.
    Stop(StopArgs),
    /// Serves `/task <mission>` typed in the OpenCode TUI: watches the server's events for the `task`
    /// command and runs each mission, reporting through toasts and a final message in the session.
    Attach(AttachArgs),
    /// Checks what missions need: the OpenCode servers (reachable, version, providers), ripgrep, git, the
    /// project's configuration, the state directory and the `/task` command.
    Doctor(DoctorArgs),
    /// Makes `/task <mission>` run missions from the OpenCode TUI of a project: writes
    /// `.opencode/command/task.md`, an `orchestrator` agent into its OpenCode configuration (comments kept)
    /// and the plugin `.opencode/plugins/orchestrator.js` that starts the orchestrator for each `/task`,
    /// with backups, atomic writes and rollback.
    Install(InstallArgs),
    /// Removes what `install` added, leaving the rest of the configuration as it was.
    Uninstall(ProjectArgs),
    /// Removes the git worktrees of finished, stopped or abandoned missions (default: every mission no
    /// orchestrator is running); their branches stay unless --branches is given.
    Clean(CleanArgs),
    /// The records earlier missions left in `.opencode/orchestrator/memory/`, which the next missions'
    /// Commander and Planner are reminded of: list them, show one, or forget one.
    Memory(MemoryArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct CleanArgs {
    /// The mission's id (default: every mission of the project's repository).
    pub(crate) id: Option<String>,
    /// Also delete the missions' branches whose commits are all in the current HEAD (the others are kept
    /// and named).
    #[arg(long)]
    pub(crate) branches: bool,
    /// The project (default: the current directory).
    #[arg(long)]
    pub(crate) project: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct InstallArgs {
    /// The project (default: the current directory).
    #[arg(long)]
    pub(crate) project: Option<PathBuf>,
    /// Leave the plugin out: `/task` then needs `orchestrator attach` watching the server (for a server
    /// that cannot start the orchestrator itself, e.g. on another machine).
    #[arg(long)]
    pub(crate) no_plugin: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct MemoryArgs {
    #[command(subcommand)]
    pub(crate) action: MemoryAction,
    /// The project (default: the current directory).
    #[arg(long, global = true)]
    pub(crate) project: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MemoryAction {
    /// Lists the records, newest first, and any damaged file the missions skip.
    List,
    /// Prints a mission's record as it is kept.
    Show {
        /// The mission's id.
        mission: String,
    },
    /// Deletes a mission's record: later missions no longer see it.
    Forget {
        /// The mission's id.
        mission: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ProjectArgs {
    /// The project (default: the current directory).
    #[arg(long)]
    pub(crate) project: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// An OpenCode server to check (repeatable; default: the project's configuration, else
    /// http://127.0.0.1:4096); the password from OPENCODE_SERVER_PASSWORD.
    #[arg(long = "url")]
    pub(crate) urls: Vec<String>,
    /// The project (default: the current directory).
    #[arg(long)]
    pub(crate) project: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct AttachArgs {
    /// The OpenCode server (default: the project's configuration, else http://127.0.0.1:4096); its
    /// password from the configuration's variable, else OPENCODE_SERVER_PASSWORD.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// The project (default: the current directory).
    #[arg(long)]
    pub(crate) project: Option<PathBuf>,
    /// Run one mission, then exit.
    #[arg(long)]
    pub(crate) once: bool,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// Run offline: a scripted model stands in for an LLM, a real OpenCode server (installed from npm into
    /// a cache directory if none is found) works in a scratch project.
    #[arg(long)]
    pub(crate) demo: bool,
    /// An OpenCode server to drive (repeat for several: tasks spread over them, each server with its own
    /// circuit breaker; default: the project's configuration, else http://127.0.0.1:4096); the password from
    /// OPENCODE_SERVER_PASSWORD.
    #[arg(long = "url", conflicts_with = "demo")]
    pub(crate) urls: Vec<String>,
    /// The environment variable that holds the servers' password (default: the configuration's
    /// `password_env`, else OPENCODE_SERVER_PASSWORD).
    #[arg(long, value_name = "VARIABLE", conflicts_with = "demo")]
    pub(crate) password_env: Option<String>,
    /// The project the agents work in (default: the current directory; with --demo, a new scratch
    /// directory).
    #[arg(long)]
    pub(crate) project: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunArgs {
    /// Worker slots: tasks run at once, at most (default 4, or the project's configuration).
    #[arg(long)]
    pub(crate) slots: Option<usize>,
    /// A review gate command, run with `sh -c` in the project (repeatable; default: detected from the
    /// project).
    #[arg(long = "check")]
    pub(crate) checks: Vec<String>,
    /// How long a review gate command may run, in seconds (default 300, or the project's configuration).
    #[arg(long)]
    pub(crate) check_timeout: Option<u64>,
    /// The model every agent uses, as provider/model (default: the configuration's, else the server's).
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// Print the mission's events as JSON, one object per line, then a summary object; human text goes to
    /// standard error.
    #[arg(long)]
    pub(crate) json: bool,
    /// The most the mission may cost, in the provider's currency (e.g. 2.50): at 80% a warning, at the
    /// limit the mission pauses (exit 3); `resume` with a higher one goes on.
    #[arg(long, value_parser = parse_cost)]
    pub(crate) max_cost: Option<u64>,
    /// The most tokens the mission may use (input, output, reasoning and cache), e.g. 2000000 or 2M.
    #[arg(long, value_parser = parse_tokens)]
    pub(crate) max_tokens: Option<u64>,
    /// The longest the mission may run, e.g. 45m, 2h or 1h30m (its runs only: stops and crashes not
    /// counted).
    #[arg(long, value_parser = parse_duration)]
    pub(crate) max_time: Option<u64>,
    /// The most turns one task's Workers may take; a task past it fails.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_turns_per_task: Option<u32>,
    /// Export the mission's traces (mission, stage, task, attempt and turn spans, with ids and usage) over
    /// OTLP/HTTP to this collector, e.g. http://localhost:4318 (`/v1/traces` is added to a URL without a
    /// path). Needs a build with the `otel` feature.
    #[arg(long, value_name = "ENDPOINT", value_parser = crate::cli::otlp::endpoint)]
    pub(crate) otlp: Option<url::Url>,
    /// Run without git isolation: one Worker at a time, in the project itself (for a project that is not
    /// a git repository). By default each task works in a git worktree of its own and is integrated into
    /// the branch `orchestrator/<mission>` through a merge queue, leaving the user's tree untouched.
    #[arg(long)]
    pub(crate) no_isolation: bool,
}

/// A cost, in billionths of the currency unit.
pub(crate) fn parse_cost(text: &str) -> Result<u64, String> {
    let cost: f64 = text
        .trim()
        .trim_start_matches('$')
        .parse()
        .map_err(|_| format!("`{text}` is not an amount (e.g. 2.50)"))?;
    if !cost.is_finite() || cost <= 0.0 {
        return Err(format!("`{text}` is not a positive amount"));
    }
    Ok(crate::domain::usage::Usage::nanos(cost))
}

/// A token count: digits, or digits with `k` or `M`.
pub(crate) fn parse_tokens(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, scale) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1_000.0),
        Some((at, 'm' | 'M')) => (&text[..at], 1_000_000.0),
        _ => (text, 1.0),
    };
    let count: f64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a token count (e.g. 500000 or 2M)"))?;
    if !count.is_finite() || count < 1.0 {
        return Err(format!("`{text}` is not a positive token count"));
    }
    Ok((count * scale) as u64)
}

/// A duration, in milliseconds: `90s`, `45m`, `2h`, `1h30m`, or ISO 8601 (`PT2H`).
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let duration: jiff::SignedDuration = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 45m, 2h or 1h30m)"))?;
    if duration.is_negative() || duration.is_zero() {
        return Err(format!("`{text}` is not a positive duration"));
    }
    u64::try_from(duration.as_millis()).map_err(|_| format!("`{text}` is too long"))
}

#[derive(Debug, clap::Args)]
pub(crate) struct TaskArgs {
    /// What the agents should do (or give --file).
    #[arg(required_unless_present = "file")]
    pub(crate) mission: Option<String>,
    /// Read the mission from a file (`-` for standard input).
    #[arg(long, conflicts_with = "mission")]
    pub(crate) file: Option<PathBuf>,
    /// Serve a `/task` typed in this OpenCode session (what the plugin `install` writes runs): post the
    /// mission's id there, show its stages and tasks as toasts, post the summary there. The mission is
    /// taken as OpenCode passes a command's arguments (surrounding quotes dropped).
    #[arg(
        long,
        value_name = "SESSION_ID",
        requires = "urls",
        conflicts_with = "demo"
    )]
    pub(crate) session: Option<String>,
    /// With --session: the message of the `/task` command, claimed so that one command runs one mission
    /// (a second orchestrator started for it, or an `attach`, does nothing).
    #[arg(long, value_name = "MESSAGE_ID", requires = "session")]
    pub(crate) command_message: Option<String>,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ResumeArgs {
    /// The mission's id (default: the project's latest mission).
    pub(crate) id: Option<String>,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The mission's id (default: the project's latest mission).
    pub(crate) id: Option<String>,
    /// The project (default: the current directory).
    #[arg(long)]
    pub(crate) project: Option<PathBuf>,
    /// Print the mission as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct StopArgs {
    /// The mission's id (default: the project's latest mission).
    pub(crate) id: Option<String>,
    /// The project (default: the current directory).
    #[arg(long)]
    pub(crate) project: Option<PathBuf>,
}
