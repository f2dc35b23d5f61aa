//! `orchestrator install` and `orchestrator uninstall`: the `/task <mission>` command in a project's OpenCode
//! TUI.
//!
//! [`install`] writes two things into a project, and [`uninstall`] takes both out again:
//!
//! - [`COMMAND_PATH`] (`.opencode/command/task.md`), an OpenCode custom command ([`COMMAND_TEMPLATE`]). Typing
//!   `/task <mission>` sends the mission to the [`AGENT_NAME`] agent, which only acknowledges it in one line;
//!   the orchestrator's `attach` sees the `command.executed` event for [`COMMAND_NAME`] and runs the mission.
//! - The `orchestrator` agent in the project's OpenCode config: `opencode.jsonc` if it exists, else
//!   `opencode.json` (created if neither exists). See [`agent_config`] for the entry and why it looks so.
//!
//! ```no_run
//! let report = orchestrator::install::install(std::path::Path::new("."))?;
//! println!("{report}");
//! # Ok::<(), orchestrator::install::InstallError>(())
//! ```
//!
//! # Editing a JSONC file without losing anything
//!
//! The config is edited as text, never re-serialized: the `"orchestrator"` member is inserted after the last
//! member of the `agent` object (or an `"agent"` member after the last top-level member), indented like its
//! neighbour and with the file's line ending, and every other byte stays where it was: comments, trailing
//! commas, key order, formatting. An existing `agent.orchestrator` equal to ours is left alone; a different
//! one has its value replaced (comments inside that value go; the backup keeps them). [`uninstall`] removes
//! exactly the span that [`install`] inserted, so install then uninstall gives the original file back byte for
//! byte. Two exceptions, both about empty objects, whose original form the file no longer shows: an empty
//! object holding only whitespace (`{ }`, `{\n}`) comes back as `{}`, and an `agent` object that was empty
//! before the install goes away with our entry, exactly as one that [`install`] added itself.
//!
//! The scanner is this module's own and small: it blanks comments, a byte-order mark and trailing commas with
//! spaces (newlines kept, so every byte offset, line and column stays that of the original), lets
//! `serde_json` parse the result strictly, and then walks the blanked text for the byte spans of the members
//! it edits. The `jsonc-parser` crate was considered: its current releases need a newer compiler than this
//! workspace's `rust-version`, and its CST editing decides comma and whitespace placement itself, while an
//! exact uninstall needs to remove exactly what install inserted.
//!
//! # Safety of the writes
//!
//! Everything is read, parsed and computed before the first write, and every directory that will be written
//! is checked for write access by creating (and removing) a probe file in it, so a bad config or a read-only
//! directory stops the command with nothing written. Then each file is changed in turn:
//!
//! 1. its previous content is copied to [`BACKUP_DIR`]`/<file name>.<UTC YYYYMMDDTHHMMSS.mmmZ>.bak`;
//! 2. the new content goes to a temporary file in the same directory, which is flushed (`fsync`) and renamed
//!    over the file, and the directory is flushed too, so a crash leaves the old or the new file, never half;
//! 3. the file is read back and checked: the bytes are those written and parse (the config has, or no longer
//!    has, our agent; the command has our frontmatter).
//!
//! If any step fails, every file already changed is put back as it was (deleted if it did not exist), the
//! backups and directories made by the failed run are removed, and the error names the file, the step and
//! the OS error ([`InstallError::RolledBack`]). Only after every file succeeded are old backups rotated: the
//! newest [`BACKUPS_KEPT`] per file are kept.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

/// The name of the OpenCode command: the user types `/task <mission>`, and `attach` watches for
/// `command.executed` events with this name.
pub const COMMAND_NAME: &str = "task";

/// Where the command file goes, relative to the project directory.
pub const COMMAND_PATH: &str = ".opencode/command/task.md";

/// The agent the command runs with; [`install`] adds it to the project's OpenCode config.
pub const AGENT_NAME: &str = "orchestrator";

/// Where backups go, relative to the project directory.
pub const BACKUP_DIR: &str = ".opencode/orchestrator/backups";

/// How many backups of each file are kept (the newest ones).
pub const BACKUPS_KEPT: usize = 5;

/// The YAML comment that marks a command file as written by [`install`]; [`uninstall`] only removes a
/// command file that carries it.
pub const COMMAND_MARKER: &str = "# Written by `orchestrator install`";

/// The content of [`COMMAND_PATH`].
///
/// OpenCode takes the frontmatter as the command's settings and the body as the prompt, with `$ARGUMENTS`
/// replaced by what follows `/task`. `subtask: false` matters: OpenCode 1.18 runs a command whose agent is a
/// subagent as a subtask, after which the session's primary agent carries on and might do the mission itself.
/// With `subtask: false` the prompt goes straight to the [`AGENT_NAME`] agent in the user's session.
///
/// ```
/// use orchestrator::install::{AGENT_NAME, COMMAND_TEMPLATE};
///
/// assert!(COMMAND_TEMPLATE.starts_with("---\n"));
/// assert!(COMMAND_TEMPLATE.contains(&format!("\nagent: {AGENT_NAME}\n")));
/// assert!(COMMAND_TEMPLATE.contains("$ARGUMENTS"));
/// ```
pub const COMMAND_TEMPLATE: &str = "\
---
# Written by `orchestrator install`; `orchestrator uninstall` removes it.
description: Run a mission with the orchestrator (Commander, Planner, Workers, Reviewer)
agent: orchestrator
subtask: false
---

The orchestrator is running the mission below in its own sessions: its Commander, Planner, Workers and \
Reviewer do all of the work, and the user follows it in `orchestrator attach`.

Mission: $ARGUMENTS

Reply with exactly one short line that acknowledges the mission, such as \"Orchestrator started: <the mission \
in a few words>\". If the mission is empty, reply with one line asking for `/task <mission>` instead. Do not \
plan, read or edit files, run commands or start other agents: the orchestrator's agents are doing that, and \
anything done here would get in their way.
";

/// The files in the project directory that may hold its OpenCode config, in order of preference.
const CONFIG_JSONC: &str = "opencode.jsonc";
const CONFIG_JSON: &str = "opencode.json";

/// The config [`install`] writes when the project has none; [`uninstall`] deletes a config that is back to
/// exactly this.
const NEW_CONFIG: &str = "{\n  \"$schema\": \"https://opencode.ai/config.json\"\n}\n";

/// The indentation used where the file shows none to copy.
const DEFAULT_INDENT: &str = "  ";

/// The agent entry: see [`agent_config`]. A struct, not a `json!` map, so its keys keep this order in the
/// file whatever `serde_json` features the build has.
#[derive(Debug, Serialize)]
struct AgentEntry {
    description: &'static str,
    mode: &'static str,
    hidden: bool,
    prompt: &'static str,
    tools: ToolSwitches,
}

/// Every tool of OpenCode 1.18 off (plus `patch`, which some versions have).
#[derive(Debug, Serialize)]
struct ToolSwitches {
    bash: bool,
    edit: bool,
    write: bool,
    patch: bool,
    read: bool,
    glob: bool,
    grep: bool,
    task: bool,
    todowrite: bool,
    webfetch: bool,
    skill: bool,
    question: bool,
}

const AGENT: AgentEntry = AgentEntry {
    description: "Acknowledges /task missions, which the orchestrator runs (added by `orchestrator install`)",
    mode: "subagent",
    hidden: true,
    prompt: "You answer the /task command while the orchestrator runs the mission in its own sessions. Reply \
             with one short line that acknowledges the mission. Never do any of the work yourself and never \
             ask questions.",
    tools: ToolSwitches {
        bash: false,
        edit: false,
        write: false,
        patch: false,
        read: false,
        glob: false,
        grep: false,
        task: false,
        todowrite: false,
        webfetch: false,
        skill: false,
        question: false,
    },
};

/// `agent` with our entry as its only member, for a config that has no `agent` object yet.
#[derive(Debug, Serialize)]
struct AgentSection<'a> {
    orchestrator: &'a AgentEntry,
}

/// The `agent.orchestrator` entry that [`install`] puts into the project's OpenCode config.
///
/// - `mode: "subagent"` and `hidden: true` keep it out of the TUI's Tab cycle and out of `@` completion: it
///   is only reached through `/task`.
/// - Every tool is off (OpenCode turns `tools` into `deny` permissions): its only job is a one-line
///   acknowledgement, and it has to be quick, because OpenCode publishes `command.executed` only after the
///   command's reply has finished.
///
/// ```
/// let agent = orchestrator::install::agent_config();
/// assert_eq!(agent["mode"], "subagent");
/// assert_eq!(agent["tools"]["bash"], false);
/// assert_eq!(agent["tools"]["write"], false);
/// ```
#[must_use]
pub fn agent_config() -> Value {
    // A struct of strings and booleans always serializes.
    serde_json::to_value(&AGENT).unwrap_or(Value::Null)
}

/// What [`install`] or [`uninstall`] was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `orchestrator install`.
    Install,
    /// `orchestrator uninstall`.
    Uninstall,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Install => "install",
            Action::Uninstall => "uninstall",
        })
    }
}

/// One step of changing one file; errors say which one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Checking up front that a directory is writable.
    Probe,
    /// Creating a missing directory.
    CreateDir,
    /// Copying the previous content to the backup directory.
    Backup,
    /// Writing the new content to a temporary file.
    WriteTemp,
    /// Flushing the temporary file to disk.
    SyncFile,
    /// Renaming the temporary file over the file.
    Rename,
    /// Flushing the directory so the rename is on disk.
    SyncDir,
    /// Removing the file.
    Remove,
    /// Reading the file back and checking it.
    Verify,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Probe => "check write access for",
            Step::CreateDir => "create the directory for",
            Step::Backup => "back up",
            Step::WriteTemp => "write the temporary file for",
            Step::SyncFile => "flush the temporary file for",
            Step::Rename => "rename the temporary file onto",
            Step::SyncDir => "flush the directory of",
            Step::Remove => "remove",
            Step::Verify => "verify",
        })
    }
}

/// Why [`install`] or [`uninstall`] did not complete. Every variant says whether the project was left
/// unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The project directory does not exist or is not a directory.
    #[error("project directory {path} is not usable: {source}; nothing was changed")]
    Project {
        /// The project directory given.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A directory that would be written is not writable.
    #[error("cannot write to {dir}: {source}; nothing was changed")]
    NotWritable {
        /// The directory.
        dir: PathBuf,
        /// What the OS said when a probe file was created in it.
        source: io::Error,
    },
    /// A file could not be read.
    #[error("could not read {path}: {source}; nothing was changed")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The OpenCode config does not parse as JSONC or does not have the expected shape.
    #[error("{path}:{line}:{column}: {message}; nothing was changed")]
    InvalidConfig {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The config edit would have changed more than our agent (a bug in this module); refused.
    #[error(
        "could not change {path} without touching anything but agent.orchestrator: {message}; nothing was changed"
    )]
    Merge {
        /// The config file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A step failed and every change of this run was undone.
    #[error(
        "{action} failed: could not {step} {path}: {source}; rolled back every file this {action} had changed, the project is as it was"
    )]
    RolledBack {
        /// What was running.
        action: Action,
        /// The file being changed.
        path: PathBuf,
        /// The step that failed.
        step: Step,
        /// What the OS said (or what the check found, for [`Step::Verify`]).
        source: io::Error,
    },
    /// A step failed and undoing the changes failed too; the backups are kept.
    #[error(
        "{action} failed: could not {step} {path}: {source}; rolling back failed as well ({failures}); restore from the backups in {backup_dir}"
    )]
    RollbackFailed {
        /// What was running.
        action: Action,
        /// The file being changed.
        path: PathBuf,
        /// The step that failed.
        step: Step,
        /// What the OS said.
        source: io::Error,
        /// Each file that could not be restored, with the reason.
        failures: String,
        /// Where the backups are.
        backup_dir: PathBuf,
    },
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The file did not exist and was written.
    Created,
    /// The file existed and was rewritten.
    Updated,
    /// The file was deleted.
    Removed,
    /// The file already had the wanted content.
    Unchanged,
}

/// One file that [`install`] or [`uninstall`] looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The file.
    pub path: PathBuf,
    /// What happened to it.
    pub kind: ChangeKind,
    /// The copy of its previous content, if it had one and was changed.
    pub backup: Option<PathBuf>,
}

/// What [`install`] or [`uninstall`] did; its `Display` is what the CLI prints.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstallReport {
    /// What ran.
    pub action: Action,
    /// The project directory.
    pub project: PathBuf,
    /// Every file looked at, in the order they were changed.
    pub changes: Vec<FileChange>,
    /// Anything the user should know (a file left alone, a backup that could not be rotated).
    pub notes: Vec<String>,
}

impl InstallReport {
    /// Whether nothing was changed.
    #[must_use]
    pub fn is_noop(&self) -> bool {
        self.changes
            .iter()
            .all(|change| change.kind == ChangeKind::Unchanged)
    }

    /// The files created or rewritten.
    pub fn written(&self) -> impl Iterator<Item = &Path> {
        self.changes
            .iter()
            .filter(|change| matches!(change.kind, ChangeKind::Created | ChangeKind::Updated))
            .map(|change| change.path.as_path())
    }

    /// The files deleted.
    pub fn removed(&self) -> impl Iterator<Item = &Path> {
        self.changes
            .iter()
            .filter(|change| change.kind == ChangeKind::Removed)
            .map(|change| change.path.as_path())
    }

    /// The backups made.
    pub fn backups(&self) -> impl Iterator<Item = &Path> {
        self.changes
            .iter()
            .filter_map(|change| change.backup.as_deref())
    }

    fn relative<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(&self.project).unwrap_or(path)
    }
}

impl fmt::Display for InstallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let project = self.project.display();
        match (self.action, self.is_noop()) {
            (Action::Install, true) => writeln!(
                f,
                "orchestrator install in {project}: already installed, nothing changed"
            )?,
            (Action::Uninstall, true) => writeln!(
                f,
                "orchestrator uninstall in {project}: nothing to uninstall (no orchestrator install found)"
            )?,
            (action, false) => writeln!(f, "orchestrator {action} in {project}:")?,
        }
        if !self.is_noop() {
            for change in &self.changes {
                let kind = match change.kind {
                    ChangeKind::Created => "created",
                    ChangeKind::Updated => "updated",
                    ChangeKind::Removed => "removed",
                    ChangeKind::Unchanged => "unchanged",
                };
                write!(f, "  {kind:<9} {}", self.relative(&change.path).display())?;
                if let Some(backup) = &change.backup {
                    write!(f, " (backup: {})", self.relative(backup).display())?;
                }
                writeln!(f)?;
            }
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        if self.action == Action::Install {
            write!(
                f,
                "Run `orchestrator attach` and type `/{COMMAND_NAME} <mission>` in the OpenCode TUI."
            )?;
        }
        Ok(())
    }
}

/// Installs the `/task` command and the `orchestrator` agent into the OpenCode project at `project`.
///
/// Running it again changes nothing. See the [module docs](self) for what is written and how.
///
/// # Errors
///
/// [`InstallError::InvalidConfig`] for a config that does not parse (with its line), [`InstallError::NotWritable`]
/// for a read-only directory, both before anything is written; [`InstallError::RolledBack`] if a write failed
/// and everything was put back.
pub fn install(project: &Path) -> Result<InstallReport, InstallError> {
    run(project, Action::Install, None)
}

/// Removes what [`install`] added: the command file (only if it carries [`COMMAND_MARKER`]) and
/// `agent.orchestrator` from `opencode.jsonc` and `opencode.json`, leaving every other byte of them as it is.
///
/// A config that [`install`] created and that holds nothing else is deleted. On a project without an install
/// it changes nothing and says so.
///
/// # Errors
///
/// As for [`install`].
pub fn uninstall(project: &Path) -> Result<InstallReport, InstallError> {
    run(project, Action::Uninstall, None)
}

/// A failure to simulate, so tests can reach every rollback path. Only tests build one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
enum Fault {
    /// The write-access probe fails with "permission denied".
    Probe,
    /// The `step` of the `index`-th file change (0-based, in plan order) fails with "no space left".
    Write { index: usize, step: Step },
}

fn run(
    project: &Path,
    action: Action,
    fault: Option<Fault>,
) -> Result<InstallReport, InstallError> {
    match fs::metadata(project) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(InstallError::Project {
                path: project.to_path_buf(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        Err(source) => {
            return Err(InstallError::Project {
                path: project.to_path_buf(),
                source,
            });
        }
    }
    let plan = match action {
        Action::Install => plan_install(project)?,
        Action::Uninstall => plan_uninstall(project)?,
    };
    let mut transaction = Transaction {
        project,
        action,
        fault,
        stamp: utc_timestamp(SystemTime::now()),
        touched: Vec::new(),
        backups: Vec::new(),
        created_dirs: Vec::new(),
    };
    transaction.probe(&plan.files)?;
    let mut changes = Vec::new();
    for (index, file) in plan.files.iter().enumerate() {
        match transaction.apply(index, file) {
            Ok(change) => changes.push(change),
            Err((step, source)) => {
                return Err(transaction.roll_back(file.path.clone(), step, source));
            }
        }
    }
    let mut notes = plan.notes;
    notes.extend(transaction.rotate_backups());
    if changes.iter().any(|change: &FileChange| {
        change.kind == ChangeKind::Removed && change.path.ends_with(COMMAND_PATH)
    }) {
        // `install` made this directory unless the project had other commands; an empty one is no loss.
        let _ = fs::remove_dir(project.join(COMMAND_PATH).parent().unwrap_or(project));
    }
    changes.extend(plan.unchanged.into_iter().map(|path| FileChange {
        path,
        kind: ChangeKind::Unchanged,
        backup: None,
    }));
    Ok(InstallReport {
        action,
        project: project.to_path_buf(),
        changes,
        notes,
    })
}

/// Everything a run will change, computed before the first write.
#[derive(Debug, Default)]
struct Plan {
    files: Vec<PlannedFile>,
    unchanged: Vec<PathBuf>,
    notes: Vec<String>,
}

#[derive(Debug)]
struct PlannedFile {
    path: PathBuf,
    /// The content before, if the file exists.
    old: Option<Vec<u8>>,
    /// The content after; `None` deletes the file.
    new: Option<String>,
    /// What the file must satisfy once written.
    check: Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    ConfigWithAgent,
    ConfigWithoutAgent,
    Command,
    Absent,
}

fn plan_install(project: &Path) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();

    let jsonc = project.join(CONFIG_JSONC);
    let config = if fs::symlink_metadata(&jsonc).is_ok() {
        jsonc
    } else {
        project.join(CONFIG_JSON)
    };
    let config = follow_symlink(&config)?;
    let old = read_optional(&config)?;
    let text = match &old {
        Some(bytes) => config_text(&config, bytes)?,
        None => NEW_CONFIG.to_owned(),
    };
    match add_agent(&text, &config)? {
        Some(new) => plan.files.push(PlannedFile {
            path: config,
            old,
            new: Some(new),
            check: Check::ConfigWithAgent,
        }),
        None => plan.unchanged.push(config),
    }

    let command = follow_symlink(&project.join(COMMAND_PATH))?;
    let old = read_optional(&command)?;
    match &old {
        Some(bytes) if bytes.as_slice() == COMMAND_TEMPLATE.as_bytes() => {
            plan.unchanged.push(command)
        }
        _ => {
            if old
                .as_deref()
                .is_some_and(|bytes| !is_our_command(&String::from_utf8_lossy(bytes)))
            {
                plan.notes.push(format!(
                    "{} was not written by orchestrator install; it is replaced and its backup kept",
                    command.display()
                ));
            }
            plan.files.push(PlannedFile {
                path: command,
                old,
                new: Some(COMMAND_TEMPLATE.to_owned()),
                check: Check::Command,
            });
        }
    }
    Ok(plan)
}

fn plan_uninstall(project: &Path) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();
    for name in [CONFIG_JSONC, CONFIG_JSON] {
        let config = follow_symlink(&project.join(name))?;
        let Some(old) = read_optional(&config)? else {
            continue;
        };
        let text = config_text(&config, &old)?;
        let Some(new) = remove_agent(&text, &config)? else {
            continue;
        };
        let (new, check) = if name == CONFIG_JSON && new == NEW_CONFIG {
            (None, Check::Absent)
        } else {
            (Some(new), Check::ConfigWithoutAgent)
        };
        plan.files.push(PlannedFile {
            path: config,
            old: Some(old),
            new,
            check,
        });
    }

    let command = follow_symlink(&project.join(COMMAND_PATH))?;
    if let Some(old) = read_optional(&command)? {
        if is_our_command(&String::from_utf8_lossy(&old)) {
            plan.files.push(PlannedFile {
                path: command,
                old: Some(old),
                new: None,
                check: Check::Absent,
            });
        } else {
            plan.notes.push(format!(
                "left {} alone: it was not written by orchestrator install",
                command.display()
            ));
        }
    }
    Ok(plan)
}

/// The file a symlink points to, so that the rename replaces the target and not the link.
fn follow_symlink(path: &Path) -> Result<PathBuf, InstallError> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(|source| InstallError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
        _ => Ok(path.to_path_buf()),
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, InstallError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(InstallError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn config_text(path: &Path, bytes: &[u8]) -> Result<String, InstallError> {
    String::from_utf8(bytes.to_vec()).map_err(|error| {
        let valid = &bytes[..error.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&byte| byte == b'\n').count() + 1;
        let column = valid
            .iter()
            .rev()
            .take_while(|&&byte| byte != b'\n')
            .count()
            + 1;
        InstallError::InvalidConfig {
            path: path.to_path_buf(),
            line,
            column,
            message: "the file is not UTF-8".to_owned(),
        }
    })
}

/// The config with our agent added or replaced, or `None` if it already has our agent.
fn add_agent(text: &str, path: &Path) -> Result<Option<String>, InstallError> {
    let doc = Jsonc::parse(text).map_err(|error| error.into_install_error(path))?;
    let root = doc
        .root_object()
        .ok_or_else(|| doc.shape_error(path, 0, "the top level must be a JSON object"))?;
    let layout = Layout::of(text, &root);
    let ours = agent_config();
    let new = match root.member("agent") {
        None => {
            let section = AgentSection {
                orchestrator: &AGENT,
            };
            insert_member(text, &root, "agent", &section, &layout)
        }
        Some(agent) => {
            let agent_object = doc.object_at(agent.value.start).ok_or_else(|| {
                doc.shape_error(path, agent.value.start, "`agent` must be an object")
            })?;
            match agent_object.member(AGENT_NAME) {
                None => insert_member(text, &agent_object, AGENT_NAME, &AGENT, &layout),
                Some(existing) if doc.value_at(existing) == ours => return Ok(None),
                Some(existing) => {
                    let indent = line_indent(text, existing.key.start);
                    let value = render(&AGENT, &layout.unit, indent, layout.newline);
                    value.map(|value| splice(text, existing.value.clone(), &value))
                }
            }
        }
    };
    let new = new.map_err(|error| InstallError::Merge {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    check_merge(&doc.value, &new, path, true)?;
    Ok(Some(new))
}

/// The config without our agent, or `None` if it has none.
fn remove_agent(text: &str, path: &Path) -> Result<Option<String>, InstallError> {
    let doc = Jsonc::parse(text).map_err(|error| error.into_install_error(path))?;
    let Some(root) = doc.root_object() else {
        return Ok(None);
    };
    let Some(agent) = root.member("agent") else {
        return Ok(None);
    };
    let Some(agent_object) = doc.object_at(agent.value.start) else {
        return Ok(None);
    };
    let Some(index) = agent_object.index_of(AGENT_NAME) else {
        return Ok(None);
    };
    let ours = &agent_object.members[index];
    let only_ours = agent_object.members.len() == 1
        && is_blank(&text[agent_object.open + 1..ours.key.start])
        && is_blank(
            text[ours.value.end..agent_object.close]
                .replacen(',', "", 1)
                .as_str(),
        );
    let new = if only_ours {
        // `install` added the whole `agent` member: take it all out again.
        let agent_index = root.index_of("agent").unwrap_or(0);
        splice(text, removal_range(text, &root, agent_index), "")
    } else {
        splice(text, removal_range(text, &agent_object, index), "")
    };
    check_merge(&doc.value, &new, path, false)?;
    Ok(Some(new))
}

/// Refuses an edit that would change anything but `agent.orchestrator`, or that does not parse.
fn check_merge(
    old: &Value,
    new_text: &str,
    path: &Path,
    with_agent: bool,
) -> Result<(), InstallError> {
    let merge_error = |message: String| InstallError::Merge {
        path: path.to_path_buf(),
        message,
    };
    let new = Jsonc::parse(new_text)
        .map_err(|error| merge_error(format!("the result does not parse: {error}")))?;
    if without_ours(old) != without_ours(&new.value) {
        return Err(merge_error("other keys would change".to_owned()));
    }
    let has_ours = new
        .value
        .get("agent")
        .and_then(|agent| agent.get(AGENT_NAME))
        == Some(&agent_config());
    if has_ours != with_agent {
        return Err(merge_error(format!(
            "agent.{AGENT_NAME} would not be as intended"
        )));
    }
    Ok(())
}

/// The config's value without `agent.orchestrator` and without an `agent` object left empty by its removal.
fn without_ours(value: &Value) -> Value {
    let mut value = value.clone();
    if let Some(root) = value.as_object_mut() {
        let now_empty = match root.get_mut("agent").and_then(Value::as_object_mut) {
            Some(agent) => {
                agent.remove(AGENT_NAME);
                agent.is_empty()
            }
            None => false,
        };
        if now_empty {
            root.remove("agent");
        }
    }
    value
}

fn is_our_command(text: &str) -> bool {
    command_frontmatter(text).is_some_and(|lines| {
        lines
            .iter()
            .any(|line| line.trim().starts_with(COMMAND_MARKER))
    })
}

/// The lines between the opening and closing `---` of a Markdown file's frontmatter.
fn command_frontmatter(text: &str) -> Option<Vec<&str>> {
    let mut lines = text.strip_prefix('\u{feff}').unwrap_or(text).lines();
    if lines.next()?.trim_end() != "---" {
        return None;
    }
    let mut frontmatter = Vec::new();
    for line in lines {
        if line.trim_end() == "---" {
            return Some(frontmatter);
        }
        frontmatter.push(line);
    }
    None
}

/// Checks a command file read back: our marker, our agent, not a subtask, and a body that takes the mission.
fn check_command(text: &str) -> Result<(), String> {
    let frontmatter = command_frontmatter(text).ok_or("no YAML frontmatter between `---` lines")?;
    let field = |key: &str| {
        frontmatter.iter().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == key).then(|| value.trim())
        })
    };
    if !is_our_command(text) {
        return Err(format!(
            "the frontmatter lacks the marker `{COMMAND_MARKER}`"
        ));
    }
    if field("agent") != Some(AGENT_NAME) {
        return Err(format!(
            "the frontmatter does not say `agent: {AGENT_NAME}`"
        ));
    }
    if field("subtask") != Some("false") {
        return Err("the frontmatter does not say `subtask: false`".to_owned());
    }
    if field("description").is_none_or(str::is_empty) {
        return Err("the frontmatter has no description".to_owned());
    }
    if !text.contains("$ARGUMENTS") {
        return Err("the template does not take the mission ($ARGUMENTS)".to_owned());
    }
    Ok(())
}

/// The changes of one run, with what is needed to undo them.
#[derive(Debug)]
struct Transaction<'p> {
    project: &'p Path,
    action: Action,
    fault: Option<Fault>,
    /// The UTC time of the run, in backup names.
    stamp: String,
    /// Files whose content may have changed, with their content before.
    touched: Vec<Touched>,
    /// Backups made by this run.
    backups: Vec<(PathBuf, String)>,
    /// Directories made by this run, parents first.
    created_dirs: Vec<PathBuf>,
}

#[derive(Debug)]
struct Touched {
    path: PathBuf,
    old: Option<Vec<u8>>,
    permissions: Option<fs::Permissions>,
}

impl Transaction<'_> {
    fn backup_dir(&self) -> PathBuf {
        self.project.join(BACKUP_DIR)
    }

    /// Fails where a test asked for a simulated failure. `index` is `None` for writes that are not a planned
    /// file's own steps (backups are reached through [`Step::Backup`], rollback is never faulted).
    fn checkpoint(&self, index: Option<usize>, step: Step) -> io::Result<()> {
        match (self.fault, index) {
            (
                Some(Fault::Write {
                    index: at,
                    step: fault_step,
                }),
                Some(index),
            ) if at == index && fault_step == step => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated failure: no space left on device",
            )),
            _ => Ok(()),
        }
    }

    /// Checks that every directory the plan writes to (or, if missing, the directory it would be created in)
    /// accepts a new file, before anything is written.
    fn probe(&self, files: &[PlannedFile]) -> Result<(), InstallError> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for file in files {
            let parent = file.path.parent().unwrap_or(self.project).to_path_buf();
            dirs.push(nearest_existing(&parent));
            if file.old.is_some() {
                dirs.push(nearest_existing(&self.backup_dir()));
            }
        }
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            let probed = if self.fault == Some(Fault::Probe) {
                Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "simulated failure: permission denied",
                ))
            } else {
                tempfile::Builder::new()
                    .prefix(".orchestrator-probe-")
                    .tempfile_in(&dir)
                    .map(drop)
            };
            if let Err(source) = probed {
                return Err(InstallError::NotWritable { dir, source });
            }
        }
        Ok(())
    }

    /// Backs up, writes (or removes) and verifies one file.
    fn apply(&mut self, index: usize, file: &PlannedFile) -> Result<FileChange, (Step, io::Error)> {
        let permissions = fs::metadata(&file.path)
            .ok()
            .map(|metadata| metadata.permissions());
        let backup = match &file.old {
            Some(old) => {
                self.checkpoint(Some(index), Step::Backup)
                    .map_err(|error| (Step::Backup, error))?;
                Some(
                    self.back_up(&file.path, old)
                        .map_err(|error| (Step::Backup, error))?,
                )
            }
            None => None,
        };
        self.touched.push(Touched {
            path: file.path.clone(),
            old: file.old.clone(),
            permissions: permissions.clone(),
        });
        let parent = file.path.parent().unwrap_or(self.project);
        match &file.new {
            Some(new) => {
                self.create_dirs(Some(index), parent)
                    .map_err(|error| (Step::CreateDir, error))?;
                self.write_atomically(Some(index), &file.path, new.as_bytes(), permissions)?;
            }
            None => {
                self.checkpoint(Some(index), Step::Remove)
                    .map_err(|error| (Step::Remove, error))?;
                fs::remove_file(&file.path).map_err(|error| (Step::Remove, error))?;
                self.checkpoint(Some(index), Step::SyncDir)
                    .map_err(|error| (Step::SyncDir, error))?;
                sync_dir(parent).map_err(|error| (Step::SyncDir, error))?;
            }
        }
        self.checkpoint(Some(index), Step::Verify)
            .map_err(|error| (Step::Verify, error))?;
        verify(file).map_err(|error| (Step::Verify, error))?;
        let kind = match (&file.old, &file.new) {
            (None, _) => ChangeKind::Created,
            (Some(_), Some(_)) => ChangeKind::Updated,
            (Some(_), None) => ChangeKind::Removed,
        };
        Ok(FileChange {
            path: file.path.clone(),
            kind,
            backup,
        })
    }

    /// Copies `content` (the file's content before this run) to a new backup file and returns its path.
    fn back_up(&mut self, path: &Path, content: &[u8]) -> io::Result<PathBuf> {
        let dir = self.backup_dir();
        self.create_dirs(None, &dir)?;
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Two runs in the same millisecond get a sequence number rather than overwriting each other.
        for sequence in 0u32.. {
            let backup = match sequence {
                0 => dir.join(format!("{name}.{}.bak", self.stamp)),
                n => dir.join(format!("{name}.{}.{n}.bak", self.stamp)),
            };
            let mut temp = tempfile::Builder::new()
                .prefix(".backup-")
                .suffix(".tmp")
                .tempfile_in(&dir)?;
            temp.write_all(content)?;
            temp.as_file().sync_all()?;
            match temp.persist_noclobber(&backup) {
                Ok(_) => {
                    sync_dir(&dir)?;
                    self.backups.push((backup.clone(), name));
                    return Ok(backup);
                }
                Err(error) if error.error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error.error),
            }
        }
        Err(io::Error::other("no free backup name"))
    }

    /// Creates `dir` and its missing parents, remembering each one made so a rollback can remove it.
    fn create_dirs(&mut self, index: Option<usize>, dir: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut current = dir;
        while fs::symlink_metadata(current).is_err() {
            missing.push(current.to_path_buf());
            match current.parent() {
                Some(parent) => current = parent,
                None => break,
            }
        }
        for dir in missing.into_iter().rev() {
            self.checkpoint(index, Step::CreateDir)?;
            match fs::create_dir(&dir) {
                Ok(()) => {
                    sync_dir(dir.parent().unwrap_or(self.project))?;
                    self.created_dirs.push(dir);
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Temporary file in the same directory, flushed, renamed over `path`, directory flushed.
    fn write_atomically(
        &self,
        index: Option<usize>,
        path: &Path,
        content: &[u8],
        permissions: Option<fs::Permissions>,
    ) -> Result<(), (Step, io::Error)> {
        let dir = path.parent().unwrap_or(self.project);
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let at = |step: Step| move |error: io::Error| (step, error);
        // Dropping `temp` on any error below deletes the temporary file.
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(at(Step::WriteTemp))?;
        self.checkpoint(index, Step::WriteTemp)
            .map_err(at(Step::WriteTemp))?;
        temp.write_all(content).map_err(at(Step::WriteTemp))?;
        // The temporary file is private (0600); the file keeps its own mode, a new one gets the usual 0644.
        match permissions {
            Some(permissions) => fs::set_permissions(temp.path(), permissions),
            None => set_new_file_permissions(temp.path()),
        }
        .map_err(at(Step::WriteTemp))?;
        self.checkpoint(index, Step::SyncFile)
            .map_err(at(Step::SyncFile))?;
        temp.as_file().sync_all().map_err(at(Step::SyncFile))?;
        self.checkpoint(index, Step::Rename)
            .map_err(at(Step::Rename))?;
        temp.persist(path)
            .map_err(|error| (Step::Rename, error.error))?;
        self.checkpoint(index, Step::SyncDir)
            .map_err(at(Step::SyncDir))?;
        sync_dir(dir).map_err(at(Step::SyncDir))
    }

    /// Puts every touched file back, newest change first, then removes this run's backups and directories,
    /// and turns the failure into the error to report.
    fn roll_back(&mut self, path: PathBuf, step: Step, source: io::Error) -> InstallError {
        let mut failures = Vec::new();
        for touched in std::mem::take(&mut self.touched).into_iter().rev() {
            if let Err(error) = self.restore(&touched) {
                failures.push(format!("{}: {error}", touched.path.display()));
            }
        }
        if !failures.is_empty() {
            return InstallError::RollbackFailed {
                action: self.action,
                path,
                step,
                source,
                failures: failures.join("; "),
                backup_dir: self.backup_dir(),
            };
        }
        for (backup, _) in self.backups.drain(..) {
            let _ = fs::remove_file(backup);
        }
        for dir in self.created_dirs.drain(..).rev() {
            // Only empty directories go; anything else in them is not ours to delete.
            let _ = fs::remove_dir(dir);
        }
        InstallError::RolledBack {
            action: self.action,
            path,
            step,
            source,
        }
    }

    fn restore(&self, touched: &Touched) -> io::Result<()> {
        let current = match fs::read(&touched.path) {
            Ok(bytes) => Some(bytes),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        if current == touched.old {
            return Ok(());
        }
        match &touched.old {
            Some(old) => self
                .write_atomically(None, &touched.path, old, touched.permissions.clone())
                .map_err(|(_, error)| error),
            None => {
                fs::remove_file(&touched.path)?;
                sync_dir(touched.path.parent().unwrap_or(self.project))
            }
        }
    }

    /// Keeps the newest [`BACKUPS_KEPT`] backups of each file backed up by this run; returns notes for
    /// backups that could not be deleted (the run itself succeeded).
    fn rotate_backups(&self) -> Vec<String> {
        let dir = self.backup_dir();
        let mut names: Vec<&str> = self.backups.iter().map(|(_, name)| name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut notes = Vec::new();
        for name in names {
            let mut backups: Vec<((String, u64), PathBuf)> = match fs::read_dir(&dir) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| {
                        let order = backup_order(name, &entry.file_name().to_string_lossy())?;
                        Some((order, entry.path()))
                    })
                    .collect(),
                Err(error) => {
                    notes.push(format!(
                        "could not list the backups in {}: {error}",
                        dir.display()
                    ));
                    continue;
                }
            };
            backups.sort();
            let surplus = backups.len().saturating_sub(BACKUPS_KEPT);
            for (_, old) in backups.into_iter().take(surplus) {
                if let Err(error) = fs::remove_file(&old) {
                    notes.push(format!(
                        "could not delete the old backup {}: {error}",
                        old.display()
                    ));
                }
            }
        }
        notes
    }
}

/// The sort key of a backup of the file `name` (timestamp, sequence), or `None` if `file_name` is not one.
fn backup_order(name: &str, file_name: &str) -> Option<(String, u64)> {
    // `<name>.YYYYMMDDTHHMMSS.mmmZ.bak`, or `<name>.YYYYMMDDTHHMMSS.mmmZ.<n>.bak` for the n-th in one ms.
    let middle = file_name
        .strip_prefix(name)?
        .strip_prefix('.')?
        .strip_suffix(".bak")?;
    let stamp = middle.get(..20)?;
    let sequence = match &middle[20..] {
        "" => 0,
        rest => rest.strip_prefix('.')?.parse().ok()?,
    };
    is_timestamp(stamp).then(|| (stamp.to_owned(), sequence))
}

fn is_timestamp(stamp: &str) -> bool {
    let bytes = stamp.as_bytes();
    bytes.len() == 20
        && bytes.iter().enumerate().all(|(at, &byte)| match at {
            8 => byte == b'T',
            15 => byte == b'.',
            19 => byte == b'Z',
            _ => byte.is_ascii_digit(),
        })
}

fn verify(file: &PlannedFile) -> io::Result<()> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
    let Some(expected) = &file.new else {
        return match fs::symlink_metadata(&file.path) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
            Ok(_) => Err(invalid(
                "the file is still there after its removal".to_owned(),
            )),
        };
    };
    let written = fs::read(&file.path)?;
    if written != expected.as_bytes() {
        return Err(invalid(
            "the content read back differs from what was written".to_owned(),
        ));
    }
    match file.check {
        Check::Command => check_command(expected).map_err(invalid),
        Check::ConfigWithAgent | Check::ConfigWithoutAgent => {
            let doc = Jsonc::parse(expected)
                .map_err(|error| invalid(format!("the config does not parse: {error}")))?;
            let has_ours = doc
                .value
                .get("agent")
                .and_then(|agent| agent.get(AGENT_NAME))
                == Some(&agent_config());
            match (file.check, has_ours) {
                (Check::ConfigWithAgent, false) => {
                    Err(invalid(format!("agent.{AGENT_NAME} is missing")))
                }
                (Check::ConfigWithoutAgent, true) => {
                    Err(invalid(format!("agent.{AGENT_NAME} is still there")))
                }
                _ => Ok(()),
            }
        }
        Check::Absent => Ok(()),
    }
}

/// The directory itself if it exists, else its nearest existing parent (where it would be created).
fn nearest_existing(dir: &Path) -> PathBuf {
    let mut current = dir;
    while fs::symlink_metadata(current).is_err() {
        match current.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => current = parent,
            _ => return PathBuf::from("."),
        }
    }
    current.to_path_buf()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Gives a new file the usual `rw-r--r--` instead of the temporary file's private `rw-------`.
#[cfg(unix)]
fn set_new_file_permissions(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
}

/// Off Unix there is only the read-only flag, which a fresh temporary file does not have.
#[cfg(not(unix))]
fn set_new_file_permissions(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// `YYYYMMDDTHHMMSS.mmmZ` in UTC, which sorts in time order.
fn utc_timestamp(now: SystemTime) -> String {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (mut days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let mut year = 1970;
    loop {
        let length = if is_leap(year) { 366 } else { 365 };
        if days < length {
            break;
        }
        days -= length;
        year += 1;
    }
    let february = if is_leap(year) { 29 } else { 28 };
    let mut month = 1;
    for length in [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] {
        if days < length {
            break;
        }
        days -= length;
        month += 1;
    }
    format!(
        "{year:04}{month:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        days + 1,
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        since_epoch.subsec_millis()
    )
}

fn is_leap(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

// ---------------------------------------------------------------------------------------------------------
// JSONC: parse for validation, and find the byte spans of object members for text edits.
// ---------------------------------------------------------------------------------------------------------

/// A syntax error with its 1-based position.
#[derive(Debug)]
struct SyntaxError {
    line: usize,
    column: usize,
    message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl SyntaxError {
    fn into_install_error(self, path: &Path) -> InstallError {
        InstallError::InvalidConfig {
            path: path.to_path_buf(),
            line: self.line,
            column: self.column,
            message: format!("invalid JSONC: {}", self.message),
        }
    }
}

/// A parsed JSONC document: the original text, the same text with comments and trailing commas blanked
/// (byte offsets unchanged), and its value.
#[derive(Debug)]
struct Jsonc<'t> {
    text: &'t str,
    blank: String,
    value: Value,
}

/// An object's `{`, `}` and members, as byte offsets into the text.
#[derive(Debug)]
struct ObjectSpan {
    open: usize,
    close: usize,
    members: Vec<Member>,
}

#[derive(Debug)]
struct Member {
    name: String,
    /// The key, quotes included.
    key: Range<usize>,
    value: Range<usize>,
}

impl ObjectSpan {
    /// The member called `name`; the last one if the name repeats, as JSON parsers (and OpenCode) read it.
    fn member(&self, name: &str) -> Option<&Member> {
        self.index_of(name).map(|index| &self.members[index])
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.members.iter().rposition(|member| member.name == name)
    }
}

impl<'t> Jsonc<'t> {
    fn parse(text: &'t str) -> Result<Self, SyntaxError> {
        let blank = blank_comments(text)?;
        let value = serde_json::from_str(&blank).map_err(|error| {
            let message = error.to_string();
            let suffix = format!(" at line {} column {}", error.line(), error.column());
            SyntaxError {
                line: error.line(),
                column: error.column(),
                message: message.strip_suffix(&suffix).unwrap_or(&message).to_owned(),
            }
        })?;
        Ok(Jsonc { text, blank, value })
    }

    fn root_object(&self) -> Option<ObjectSpan> {
        self.object_at(skip_whitespace(self.blank.as_bytes(), 0))
    }

    /// The object starting at `open`, or `None` if no object starts there. Only called on text that
    /// `serde_json` accepted, so the walk can be simple; it still never indexes out of bounds.
    fn object_at(&self, open: usize) -> Option<ObjectSpan> {
        let bytes = self.blank.as_bytes();
        if bytes.get(open) != Some(&b'{') {
            return None;
        }
        let mut members = Vec::new();
        let mut at = skip_whitespace(bytes, open + 1);
        loop {
            match bytes.get(at)? {
                b'}' => {
                    return Some(ObjectSpan {
                        open,
                        close: at,
                        members,
                    });
                }
                b'"' => {}
                _ => return None,
            }
            let key = at..string_end(bytes, at);
            let name = serde_json::from_str(self.blank.get(key.clone())?).ok()?;
            at = skip_whitespace(bytes, key.end);
            if bytes.get(at) != Some(&b':') {
                return None;
            }
            let start = skip_whitespace(bytes, at + 1);
            let value = start..value_end(bytes, start);
            at = skip_whitespace(bytes, value.end);
            if bytes.get(at) == Some(&b',') {
                at = skip_whitespace(bytes, at + 1);
            }
            members.push(Member { name, key, value });
        }
    }

    fn value_at(&self, member: &Member) -> Value {
        self.blank
            .get(member.value.clone())
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null)
    }

    fn shape_error(&self, path: &Path, offset: usize, message: &str) -> InstallError {
        let offset = if offset == 0 {
            skip_whitespace(self.blank.as_bytes(), 0)
        } else {
            offset
        };
        let (line, column) = line_and_column(self.text, offset);
        InstallError::InvalidConfig {
            path: path.to_path_buf(),
            line,
            column,
            message: message.to_owned(),
        }
    }
}

/// The text with comments, a byte-order mark and trailing commas replaced by spaces. Newlines inside block
/// comments stay, so offsets, lines and columns are those of the original.
fn blank_comments(text: &str) -> Result<String, SyntaxError> {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut at = 0;
    if text.starts_with('\u{feff}') {
        out[..3].fill(b' ');
        at = 3;
    }
    // The last comma not yet followed by anything but whitespace and comments.
    let mut pending_comma = None;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                pending_comma = None;
                at = string_end(bytes, at);
            }
            b'/' if bytes.get(at + 1) == Some(&b'/') => {
                while at < bytes.len() && bytes[at] != b'\n' && bytes[at] != b'\r' {
                    out[at] = b' ';
                    at += 1;
                }
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                let Some(length) = text[at + 2..].find("*/") else {
                    let (line, column) = line_and_column(text, at);
                    return Err(SyntaxError {
                        line,
                        column,
                        message: "unterminated /* comment".to_owned(),
                    });
                };
                let end = at + 2 + length + 2;
                for byte in &mut out[at..end] {
                    if *byte != b'\n' && *byte != b'\r' {
                        *byte = b' ';
                    }
                }
                at = end;
            }
            b',' => {
                pending_comma = Some(at);
                at += 1;
            }
            b'}' | b']' => {
                if let Some(comma) = pending_comma.take() {
                    out[comma] = b' ';
                }
                at += 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' => at += 1,
            _ => {
                pending_comma = None;
                at += 1;
            }
        }
    }
    // Only ASCII bytes were replaced, and only whole comments (whose multi-byte characters go entirely).
    String::from_utf8(out).map_err(|_| SyntaxError {
        line: 1,
        column: 1,
        message: "not UTF-8".to_owned(),
    })
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while bytes
        .get(at)
        .is_some_and(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
    {
        at += 1;
    }
    at
}

/// The offset just past the string whose opening quote is at `at` (the end of the text if unterminated).
fn string_end(bytes: &[u8], at: usize) -> usize {
    let mut at = at + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    bytes.len()
}

/// The offset just past the value starting at `at`.
fn value_end(bytes: &[u8], at: usize) -> usize {
    match bytes.get(at) {
        Some(b'"') => string_end(bytes, at),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut at = at;
            while at < bytes.len() {
                match bytes[at] {
                    b'"' => {
                        at = string_end(bytes, at);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return at + 1;
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
            bytes.len()
        }
        _ => {
            let mut at = at;
            while bytes.get(at).is_some_and(|byte| {
                !matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            }) {
                at += 1;
            }
            at
        }
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |at| at + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// How the file is laid out: its line ending and one level of indentation.
#[derive(Debug)]
struct Layout {
    newline: &'static str,
    unit: String,
}

impl Layout {
    fn of(text: &str, root: &ObjectSpan) -> Self {
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let unit = root
            .members
            .first()
            .and_then(|member| indent_before(text, member.key.start))
            .filter(|indent| !indent.is_empty())
            .unwrap_or(DEFAULT_INDENT)
            .to_owned();
        Layout { newline, unit }
    }
}

/// The spaces and tabs before `at` on its line, if nothing else precedes it there.
fn indent_before(text: &str, at: usize) -> Option<&str> {
    let start = text[..at].rfind('\n').map_or(0, |newline| newline + 1);
    let indent = &text[start..at];
    indent
        .bytes()
        .all(|byte| byte == b' ' || byte == b'\t')
        .then_some(indent)
}

/// The leading spaces and tabs of the line holding `at`.
fn line_indent(text: &str, at: usize) -> &str {
    let start = text[..at].rfind('\n').map_or(0, |newline| newline + 1);
    let line = &text[start..];
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

fn is_blank(text: &str) -> bool {
    text.bytes()
        .all(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
}

fn splice(text: &str, range: Range<usize>, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..range.start]);
    out.push_str(with);
    out.push_str(&text[range.end..]);
    out
}

/// `value` pretty-printed with `unit` per level, its continuation lines starting with `base`.
fn render(
    value: &impl Serialize,
    unit: &str,
    base: &str,
    newline: &str,
) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(unit.as_bytes());
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, formatter,
    ))?;
    let pretty = String::from_utf8_lossy(&out).into_owned();
    Ok(pretty.replace('\n', &format!("{newline}{base}")))
}

/// The text with `"name": value` added as the last member of `object`. [`removal_range`] takes exactly this
/// insertion out again.
fn insert_member(
    text: &str,
    object: &ObjectSpan,
    name: &str,
    value: &impl Serialize,
    layout: &Layout,
) -> Result<String, serde_json::Error> {
    let key = serde_json::to_string(name)?;
    let newline = layout.newline;
    match object.members.last() {
        Some(last) => {
            let insertion = match indent_before(text, last.key.start) {
                Some(indent) => format!(
                    ",{newline}{indent}{key}: {}",
                    render(value, &layout.unit, indent, newline)?
                ),
                // An object on one line stays on one line.
                None => format!(", {key}: {}", serde_json::to_string(value)?),
            };
            Ok(splice(text, last.value.end..last.value.end, &insertion))
        }
        None => {
            let outer = line_indent(text, object.open);
            let inner = format!("{outer}{}", layout.unit);
            let member = format!(
                "{newline}{inner}{key}: {}",
                render(value, &layout.unit, &inner, newline)?
            );
            let interior = object.open + 1..object.close;
            if is_blank(&text[interior.clone()]) {
                Ok(splice(text, interior, &format!("{member}{newline}{outer}")))
            } else {
                // Comments inside: keep them, after the new member.
                Ok(splice(text, interior.start..interior.start, &member))
            }
        }
    }
}

/// The span to delete to remove the `index`-th member of `object`, with the comma and line that go with it.
fn removal_range(text: &str, object: &ObjectSpan, index: usize) -> Range<usize> {
    let member = &object.members[index];
    // The exact inverse of `insert_member` appending after the previous member: `,<whitespace>"key": value`.
    if index > 0 {
        let previous_end = object.members[index - 1].value.end;
        if is_blank(
            text[previous_end..member.key.start]
                .replacen(',', "", 1)
                .as_str(),
        ) && text[previous_end..member.key.start].contains(',')
        {
            return previous_end..member.value.end;
        }
    }
    if object.members.len() == 1 {
        let start = if is_blank(&text[object.open + 1..member.key.start]) {
            object.open + 1
        } else {
            member.key.start
        };
        let after = skip_whitespace(text.as_bytes(), member.value.end);
        let after = if text.as_bytes().get(after) == Some(&b',') {
            after + 1
        } else {
            after
        };
        let end = if is_blank(&text[after..object.close]) {
            object.close
        } else {
            member.value.end
        };
        return start..end;
    }
    // Elsewhere: the member, its comma, and its line if it had the line to itself.
    let bytes = text.as_bytes();
    let mut end = member.value.end;
    let mut after = end;
    while bytes
        .get(after)
        .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
    {
        after += 1;
    }
    if bytes.get(after) == Some(&b',') {
        end = after + 1;
    }
    let mut line_end = end;
    while bytes
        .get(line_end)
        .is_some_and(|byte| *byte == b' ' || *byte == b'\t' || *byte == b'\r')
    {
        line_end += 1;
    }
    match (indent_before(text, member.key.start), bytes.get(line_end)) {
        (Some(indent), Some(b'\n')) => member.key.start - indent.len()..line_end + 1,
        _ => member.key.start..end,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const COMMENTED: &str = r#"// Project config for OpenCode.
{
  "$schema": "https://opencode.ai/config.json",
  /* The model everyone uses.
     Do not change without asking. */
  "model": "fake/fake-model", // trailing note
  "agent": {
    // Our reviewer.
    "review": {
      "mode": "subagent",
      "tools": { "write": false, }, /* inline block */
    },
  },
  "share": "disabled",
  "url": "http://example.invalid/a//b", // a // inside a string is not a comment
}
"#;

    /// Every file under `dir` with its content.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in fs::read_dir(dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                let relative = path.strip_prefix(root).expect("prefix").to_path_buf();
                if path.is_dir() {
                    into.insert(relative.join(""), Vec::new());
                    walk(root, &path, into);
                } else {
                    into.insert(relative, fs::read(&path).expect("read"));
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(dir, dir, &mut files);
        files
    }

    fn project_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, content) in files {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, content).expect("write");
        }
        dir
    }

    fn parse(text: &str) -> Value {
        Jsonc::parse(text).expect("parses").value
    }

    fn backups_of(project: &Path, name: &str) -> Vec<PathBuf> {
        let mut backups: Vec<PathBuf> = fs::read_dir(project.join(BACKUP_DIR))
            .map(|entries| {
                entries
                    .map(|entry| entry.expect("entry").path())
                    .filter(|path| {
                        backup_order(name, &path.file_name().expect("name").to_string_lossy())
                            .is_some()
                    })
                    .collect()
            })
            .unwrap_or_default();
        backups.sort_by_key(|path| {
            backup_order(name, &path.file_name().expect("name").to_string_lossy())
        });
        backups
    }

    #[test]
    fn round_trip_keeps_comments_and_gives_back_the_same_bytes() {
        let project = project_with(&[("opencode.jsonc", COMMENTED)]);
        let config = project.path().join("opencode.jsonc");

        let report = install(project.path()).expect("install");
        let installed = fs::read_to_string(&config).expect("read");
        for comment in [
            "// Project config for OpenCode.",
            "/* The model everyone uses.\n     Do not change without asking. */",
            "// trailing note",
            "// Our reviewer.",
            "/* inline block */",
            "// a // inside a string is not a comment",
        ] {
            assert!(
                installed.contains(comment),
                "lost {comment:?} in:\n{installed}"
            );
        }
        let value = parse(&installed);
        assert_eq!(value["agent"][AGENT_NAME], agent_config());
        assert_eq!(value["agent"]["review"]["mode"], "subagent");
        assert_eq!(
            without_ours(&value),
            parse(COMMENTED),
            "only our agent is new"
        );
        // Indented like its neighbour.
        assert!(
            installed.contains("    },\n    \"orchestrator\": {\n      \"description\""),
            "{installed}"
        );
        let command = project.path().join(COMMAND_PATH);
        assert_eq!(
            fs::read_to_string(&command).expect("task.md"),
            COMMAND_TEMPLATE
        );
        assert_eq!(report.written().count(), 2);
        assert_eq!(
            report.backups().count(),
            1,
            "the config had content to back up; task.md did not exist"
        );
        assert!(
            report
                .to_string()
                .contains("updated   opencode.jsonc (backup: .opencode/orchestrator/backups/")
        );

        let report = uninstall(project.path()).expect("uninstall");
        assert_eq!(
            fs::read_to_string(&config).expect("read"),
            COMMENTED,
            "byte for byte"
        );
        assert!(!command.exists());
        assert!(
            !command.parent().expect("dir").exists(),
            "the empty command directory goes too"
        );
        assert_eq!(report.removed().count(), 1);
        assert_eq!(report.written().count(), 1);
    }

    #[test]
    fn round_trip_without_an_agent_object_crlf_and_tabs() {
        let original = "{\r\n\t\"model\": \"a/b\", // note\r\n\t\"share\": \"manual\",\r\n}\r\n";
        let project = project_with(&[("opencode.jsonc", original)]);
        let config = project.path().join("opencode.jsonc");
        install(project.path()).expect("install");
        let installed = fs::read_to_string(&config).expect("read");
        assert!(
            installed
                .contains("\r\n\t\"agent\": {\r\n\t\t\"orchestrator\": {\r\n\t\t\t\"description\""),
            "{installed:?}"
        );
        assert!(
            !installed.replace("\r\n", "").contains('\n'),
            "only CRLF line endings: {installed:?}"
        );
        assert_eq!(parse(&installed)["agent"][AGENT_NAME], agent_config());
        uninstall(project.path()).expect("uninstall");
        assert_eq!(fs::read_to_string(&config).expect("read"), original);
    }

    #[test]
    fn round_trip_on_one_line_and_empty_objects() {
        for original in [
            r#"{"agent": {"build": {"model": "x/y"}}, "a": [1, 2]}"#,
            "{}",
            "{\n}\n",
        ] {
            let project = project_with(&[("opencode.json", original)]);
            let config = project.path().join("opencode.json");
            install(project.path()).expect("install");
            let installed = fs::read_to_string(&config).expect("read");
            assert_eq!(
                parse(&installed)["agent"][AGENT_NAME],
                agent_config(),
                "{installed}"
            );
            uninstall(project.path()).expect("uninstall");
            let expected = if original == "{\n}\n" {
                "{}\n"
            } else {
                original
            };
            assert_eq!(
                fs::read_to_string(&config).expect("read"),
                expected,
                "from {original:?}"
            );
        }
    }

    #[test]
    fn an_agent_object_that_was_empty_goes_with_our_entry() {
        // The documented exception: `{"agent": {}}` plus our entry cannot be told from our own insertion.
        let project = project_with(&[("opencode.json", "{\"model\": \"a/b\", \"agent\": {}}\n")]);
        install(project.path()).expect("install");
        uninstall(project.path()).expect("uninstall");
        let text = fs::read_to_string(project.path().join("opencode.json")).expect("read");
        assert_eq!(text, "{\"model\": \"a/b\"}\n");
    }

    #[test]
    fn install_creates_opencode_json_and_uninstall_deletes_it() {
        let project = project_with(&[]);
        let report = install(project.path()).expect("install");
        let config = project.path().join("opencode.json");
        let value = parse(&fs::read_to_string(&config).expect("created"));
        assert_eq!(value["$schema"], "https://opencode.ai/config.json");
        assert_eq!(value["agent"][AGENT_NAME], agent_config());
        assert_eq!(report.backups().count(), 0);
        assert!(
            report
                .changes
                .iter()
                .all(|change| change.kind == ChangeKind::Created)
        );

        uninstall(project.path()).expect("uninstall");
        assert!(!config.exists());
        assert!(!project.path().join(COMMAND_PATH).exists());
    }

    #[test]
    fn installing_twice_changes_nothing_the_second_time() {
        let project = project_with(&[("opencode.jsonc", COMMENTED)]);
        install(project.path()).expect("first");
        let before = snapshot(project.path());
        let report = install(project.path()).expect("second");
        assert!(report.is_noop(), "{report}");
        assert_eq!(report.changes.len(), 2);
        assert!(report.to_string().contains("already installed"));
        assert_eq!(snapshot(project.path()), before, "not even a backup");
    }

    #[test]
    fn a_different_orchestrator_agent_is_replaced_and_backed_up() {
        let original =
            "{\n  \"agent\": {\n    \"orchestrator\": { \"prompt\": \"mine\" }, // old\n  },\n}\n";
        let project = project_with(&[("opencode.jsonc", original)]);
        let report = install(project.path()).expect("install");
        let config = fs::read_to_string(project.path().join("opencode.jsonc")).expect("read");
        assert_eq!(parse(&config)["agent"][AGENT_NAME], agent_config());
        assert!(
            config.contains("}, // old\n"),
            "the comment after the value stays: {config}"
        );
        let backup = report.backups().next().expect("a backup");
        assert_eq!(fs::read_to_string(backup).expect("backup"), original);
    }

    #[test]
    fn backups_rotate_to_the_newest_five() {
        let project = project_with(&[("opencode.jsonc", "{}")]);
        let config = project.path().join("opencode.jsonc");
        let mut previous = Vec::new();
        for round in 0..7 {
            // Something for every install to change: our agent taken out again, plus a new key.
            let text = fs::read_to_string(&config).expect("read");
            let text = remove_agent(&text, &config)
                .expect("remove")
                .unwrap_or(text);
            let text = text.replacen('{', &format!("{{\"round{round}\": {round},"), 1);
            fs::write(&config, &text).expect("write");
            previous.push(text);
            let report = install(project.path()).expect("install");
            assert!(
                report.written().any(|path| path == config),
                "round {round} changes the config"
            );
        }
        let backups = backups_of(project.path(), "opencode.jsonc");
        assert_eq!(backups.len(), BACKUPS_KEPT, "{backups:?}");
        let kept: Vec<String> = backups
            .iter()
            .map(|path| fs::read_to_string(path).expect("read"))
            .collect();
        assert_eq!(kept, previous[2..], "the newest five, oldest first");
        assert_eq!(
            backups_of(project.path(), "task.md").len(),
            0,
            "task.md never changed after the first"
        );
    }

    #[test]
    fn backup_names_sort_by_time_then_sequence() {
        let a =
            backup_order("opencode.json", "opencode.json.20260101T000000.000Z.bak").expect("plain");
        let b = backup_order("opencode.json", "opencode.json.20260101T000000.000Z.1.bak")
            .expect("sequence");
        let c =
            backup_order("opencode.json", "opencode.json.20260101T000000.001Z.bak").expect("later");
        assert!(a < b && b < c);
        assert_eq!(
            backup_order("opencode.json", "opencode.jsonc.20260101T000000.000Z.bak"),
            None
        );
        assert_eq!(
            backup_order("opencode.json", "opencode.json.notatime.bak"),
            None
        );
    }

    #[test]
    fn a_failed_second_write_restores_the_first_file_byte_for_byte() {
        let project = project_with(&[("opencode.jsonc", COMMENTED)]);
        let before = snapshot(project.path());
        // task.md is new, so it has no Backup step; the first-write test below covers that one.
        for step in [
            Step::CreateDir,
            Step::WriteTemp,
            Step::SyncFile,
            Step::Rename,
            Step::SyncDir,
            Step::Verify,
        ] {
            let fault = Fault::Write { index: 1, step };
            let error = run(project.path(), Action::Install, Some(fault)).expect_err("fails");
            let message = error.to_string();
            match &error {
                InstallError::RolledBack {
                    path, step: failed, ..
                } => {
                    assert_eq!(*failed, step);
                    assert!(path.ends_with(COMMAND_PATH), "{message}");
                }
                other => panic!("expected a rollback, got {other}"),
            }
            assert!(
                message.contains("task.md") && message.contains("rolled back"),
                "{message}"
            );
            assert!(message.contains("no space left on device"), "{message}");
            // The config is back, and nothing else is left over: no temporary file, backup or directory.
            assert_eq!(
                snapshot(project.path()),
                before,
                "after a failure at {step:?}"
            );
        }
    }

    #[test]
    fn a_failed_first_write_leaves_nothing() {
        let project = project_with(&[("opencode.jsonc", COMMENTED)]);
        let before = snapshot(project.path());
        for step in [
            Step::Backup,
            Step::WriteTemp,
            Step::Rename,
            Step::SyncDir,
            Step::Verify,
        ] {
            let fault = Fault::Write { index: 0, step };
            let error = run(project.path(), Action::Install, Some(fault)).expect_err("fails");
            assert!(error.to_string().contains("opencode.jsonc"), "{error}");
            assert_eq!(
                snapshot(project.path()),
                before,
                "after a failure at {step:?}"
            );
        }
    }

    #[test]
    fn a_failed_uninstall_rolls_back_too() {
        let project = project_with(&[("opencode.jsonc", COMMENTED)]);
        install(project.path()).expect("install");
        let before = snapshot(project.path());
        let fault = Fault::Write {
            index: 1,
            step: Step::Remove,
        };
        let error = run(project.path(), Action::Uninstall, Some(fault)).expect_err("fails");
        assert!(
            matches!(
                error,
                InstallError::RolledBack {
                    action: Action::Uninstall,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(snapshot(project.path()), before);
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_project_is_refused_with_nothing_written() {
        use std::os::unix::fs::PermissionsExt as _;

        let project = project_with(&[("opencode.jsonc", COMMENTED)]);
        let before = snapshot(project.path());
        fs::set_permissions(project.path(), fs::Permissions::from_mode(0o555)).expect("chmod");
        // Root (and CAP_DAC_OVERRIDE) writes anyway; the simulated test below covers that case.
        let can_still_write = File::create(project.path().join("probe")).is_ok();
        let result = install(project.path());
        let _ = fs::remove_file(project.path().join("probe"));
        fs::set_permissions(project.path(), fs::Permissions::from_mode(0o755)).expect("chmod back");
        if can_still_write {
            eprintln!("skipped: this user can write to a 0555 directory");
            return;
        }
        let error = result.expect_err("refused");
        assert!(
            matches!(&error, InstallError::NotWritable { dir, .. } if dir == project.path()),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains(&project.path().display().to_string()),
            "{error}"
        );
        assert!(error.to_string().contains("nothing was changed"), "{error}");
        assert_eq!(snapshot(project.path()), before);
    }

    #[test]
    fn a_directory_without_write_access_is_refused_with_nothing_written() {
        let project = project_with(&[("opencode.jsonc", COMMENTED)]);
        let before = snapshot(project.path());
        let error = run(project.path(), Action::Install, Some(Fault::Probe)).expect_err("refused");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("cannot write to {}", project.path().display())),
            "{message}"
        );
        assert!(
            message.contains("permission denied") && message.contains("nothing was changed"),
            "{message}"
        );
        assert_eq!(snapshot(project.path()), before);
    }

    #[test]
    fn invalid_jsonc_is_refused_naming_file_and_line() {
        let broken = "{\n  // a comment\n  \"model\": \"a/b\"\n  \"share\": \"manual\"\n}\n";
        let project = project_with(&[("opencode.jsonc", broken)]);
        let before = snapshot(project.path());
        let error = install(project.path()).expect_err("refused");
        match &error {
            InstallError::InvalidConfig { path, line, .. } => {
                assert!(path.ends_with("opencode.jsonc"));
                assert_eq!(*line, 4);
            }
            other => panic!("expected InvalidConfig, got {other}"),
        }
        let message = error.to_string();
        assert!(message.contains("opencode.jsonc:4:"), "{message}");
        assert!(message.contains("nothing was changed"), "{message}");
        assert_eq!(snapshot(project.path()), before);

        let error = uninstall(project.path()).expect_err("refused too");
        assert!(error.to_string().contains("opencode.jsonc:4:"), "{error}");
    }

    #[test]
    fn an_unterminated_comment_and_a_bad_agent_are_refused_with_their_line() {
        let project = project_with(&[("opencode.jsonc", "{\n  \"a\": 1,\n  /* open\n}\n")]);
        let message = install(project.path()).expect_err("refused").to_string();
        assert!(
            message.contains("opencode.jsonc:3:3: invalid JSONC: unterminated /* comment"),
            "{message}"
        );

        let project = project_with(&[("opencode.json", "{\n  \"agent\": [1]\n}\n")]);
        let message = install(project.path()).expect_err("refused").to_string();
        assert!(
            message.contains("opencode.json:2:12: `agent` must be an object"),
            "{message}"
        );

        let project = project_with(&[("opencode.json", "[]")]);
        let message = install(project.path()).expect_err("refused").to_string();
        assert!(
            message.contains("the top level must be a JSON object"),
            "{message}"
        );
    }

    #[test]
    fn uninstall_without_an_install_changes_nothing_and_says_so() {
        let project = project_with(&[("opencode.jsonc", COMMENTED)]);
        let before = snapshot(project.path());
        let report = uninstall(project.path()).expect("uninstall");
        assert!(report.is_noop());
        assert!(
            report.to_string().contains("nothing to uninstall"),
            "{report}"
        );
        assert_eq!(snapshot(project.path()), before);
    }

    #[test]
    fn uninstall_leaves_a_task_command_that_is_not_ours() {
        let theirs = "---\ndescription: their own task command\n---\nDo $ARGUMENTS\n";
        let project = project_with(&[(COMMAND_PATH, theirs)]);
        let report = uninstall(project.path()).expect("uninstall");
        assert!(report.is_noop());
        assert!(
            report
                .to_string()
                .contains("not written by orchestrator install"),
            "{report}"
        );
        assert_eq!(
            fs::read_to_string(project.path().join(COMMAND_PATH)).expect("kept"),
            theirs
        );

        // Install replaces it, keeping a backup and saying so.
        let report = install(project.path()).expect("install");
        assert_eq!(report.notes.len(), 1, "{report}");
        let backup = backups_of(project.path(), "task.md");
        assert_eq!(fs::read_to_string(&backup[0]).expect("backup"), theirs);
    }

    #[test]
    fn the_template_passes_its_own_check() {
        assert_eq!(check_command(COMMAND_TEMPLATE), Ok(()));
        assert!(is_our_command(COMMAND_TEMPLATE));
        assert!(check_command("---\ndescription: x\nagent: build\n---\n$ARGUMENTS").is_err());
        let frontmatter = command_frontmatter(COMMAND_TEMPLATE).expect("frontmatter");
        // OpenCode's YAML parser would take a second colon in a value badly; keep values colon-free.
        for line in frontmatter.iter().filter(|line| !line.starts_with('#')) {
            assert_eq!(line.matches(':').count(), 1, "{line}");
        }
    }

    #[test]
    fn blanking_keeps_offsets_and_strings() {
        let text = "\u{feff}{\"a//b\": \"x\\\"/*y*/\", /* é\nz */ \"c\": [1, 2,], // end\n}";
        let blank = blank_comments(text).expect("blank");
        assert_eq!(blank.len(), text.len());
        assert_eq!(blank.matches('\n').count(), text.matches('\n').count());
        let value: Value = serde_json::from_str(&blank).expect("valid JSON");
        assert_eq!(value, serde_json::json!({"a//b": "x\"/*y*/", "c": [1, 2]}));
    }

    #[test]
    fn members_have_exact_spans() {
        let text = "{ \"a\" : { \"x\": \"}\" } , // c\n \"b\": [1, {\"y\": 2}], \"c\": null, }";
        let doc = Jsonc::parse(text).expect("parse");
        let root = doc.root_object().expect("object");
        let spans: Vec<(&str, &str, &str)> = root
            .members
            .iter()
            .map(|member| {
                (
                    member.name.as_str(),
                    &text[member.key.clone()],
                    &text[member.value.clone()],
                )
            })
            .collect();
        assert_eq!(
            spans,
            [
                ("a", "\"a\"", "{ \"x\": \"}\" }"),
                ("b", "\"b\"", "[1, {\"y\": 2}]"),
                ("c", "\"c\"", "null")
            ]
        );
        assert_eq!(
            doc.object_at(root.members[0].value.start)
                .expect("inner")
                .members[0]
                .name,
            "x"
        );
    }

    #[test]
    fn timestamps_are_utc_and_sortable() {
        let at = |seconds: u64, millis: u64| {
            utc_timestamp(UNIX_EPOCH + std::time::Duration::from_millis(seconds * 1000 + millis))
        };
        assert_eq!(at(0, 0), "19700101T000000.000Z");
        // 2024-02-29 12:34:56.789 UTC.
        assert_eq!(at(1_709_210_096, 789), "20240229T123456.789Z");
        // 2000-12-31 23:59:59 UTC (a leap year divisible by 400).
        assert_eq!(at(978_307_199, 5), "20001231T235959.005Z");
        assert!(is_timestamp(&at(1_709_210_096, 789)));
    }

    #[test]
    fn the_report_lists_files_relative_to_the_project() {
        let project = project_with(&[]);
        let text = install(project.path()).expect("install").to_string();
        assert!(text.contains("  created   opencode.json\n"), "{text}");
        assert!(
            text.contains("  created   .opencode/command/task.md\n"),
            "{text}"
        );
        assert!(
            text.ends_with("type `/task <mission>` in the OpenCode TUI."),
            "{text}"
        );
    }
}
