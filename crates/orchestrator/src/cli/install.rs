//! `orchestrator install` and `orchestrator uninstall`: the `/task <mission>` command in a project's OpenCode
//! TUI.
//!
//! [`install`] writes three things into a project, and [`uninstall`] takes them out again:
//!
//! - [`COMMAND_PATH`] (`.opencode/command/task.md`), an OpenCode custom command ([`COMMAND_TEMPLATE`]). Typing
//!   `/task <mission>` sends the mission, as typed, to the [`AGENT_NAME`] agent, which only acknowledges it
//!   in one line (its instructions are its agent prompt, so the session shows the user's mission and not a
//!   template).
//! - The `orchestrator` agent in the project's OpenCode config: `opencode.jsonc` if it exists, else
//!   `opencode.json` (created if neither exists). See [`agent_config`] for the entry and why it looks so.
//! - The plugin [`plugin::PLUGIN_PATH`] (`.opencode/plugins/orchestrator.js`, see [`plugin`]): when
//!   OpenCode reports the `task` command executed, it starts the orchestrator for that server and session,
//!   so the mission runs with nothing else to start. `--no-plugin` leaves it out (and takes out one an
//!   earlier install wrote); `/task` then needs `orchestrator attach`, which follows the same
//!   `command.executed` event for [`COMMAND_NAME`].
//!
//! It also makes the state directory `.opencode/orchestrator/` with its `.gitignore`
//! ([`journal::ensure_state_dir`]), so that nothing the orchestrator keeps there is committed.
//!
//! ```no_run
//! let report = orchestrator::cli::install::install(std::path::Path::new("."))?;
//! println!("{report}");
//! # Ok::<(), orchestrator::cli::install::InstallError>(())
//! ```
//!
//! This module decides what to write and reports what happened; the files themselves are read, edited,
//! backed up, written and rolled back by the [`opencode_json`] adapter. So the guarantees are
//! those documented there: the config is edited as text and every byte of the user's other than our entry
//! stays (comments, trailing commas, key order, formatting), uninstall gives the original file back byte for
//! byte, everything is computed and every directory checked for write access before the first write, each
//! changed file is backed up to [`BACKUP_DIR`] (the newest [`BACKUPS_KEPT`] per file are kept), written
//! atomically and read back, and a failure at any step puts every file back as it was.
//!
//! A running OpenCode reads commands, agents and plugins when it starts (plugins at its first message), so
//! after either command the report says to restart it.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::adapters::journal;
use crate::adapters::opencode_json::{self, Applied, Backups, OpencodeJsonError, PlannedChange};
use crate::cli::plugin;

pub use crate::adapters::opencode_json::{ChangeKind, FileChange, Step};

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
/// replaced by what follows `/task`: the body is `$ARGUMENTS` alone, so the user's message in the session
/// is their mission; what the agent should do with it is its prompt ([`agent_config`]). `subtask: false`
/// matters: OpenCode 1.18 runs a command whose agent is a subagent as a subtask, after which the session's
/// primary agent carries on and might do the mission itself. With `subtask: false` the prompt goes straight
/// to the [`AGENT_NAME`] agent in the user's session.
///
/// ```
/// use orchestrator::cli::install::{AGENT_NAME, COMMAND_TEMPLATE};
///
/// assert!(COMMAND_TEMPLATE.starts_with("---\n"));
/// assert!(COMMAND_TEMPLATE.contains(&format!("\nagent: {AGENT_NAME}\n")));
/// assert!(COMMAND_TEMPLATE.ends_with("---\n$ARGUMENTS\n"));
/// ```
pub const COMMAND_TEMPLATE: &str = "\
---
# Written by `orchestrator install`; `orchestrator uninstall` removes it.
description: Run a mission with the orchestrator (Commander, Planner, Workers, Reviewer)
agent: orchestrator
subtask: false
---
$ARGUMENTS
";

/// The files in the project directory that may hold its OpenCode config, in order of preference.
const CONFIG_JSONC: &str = "opencode.jsonc";
const CONFIG_JSON: &str = "opencode.json";

/// The config [`install`] writes when the project has none; [`uninstall`] deletes a config that is back to
/// exactly this.
const NEW_CONFIG: &str = "{\n  \"$schema\": \"https://opencode.ai/config.json\"\n}\n";

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
    prompt: "You answer the /task command. The user's message is a mission that the orchestrator runs in its \
             own sessions (Commander, Planner, Workers, Reviewer); it says here when it picks the mission \
             up and posts the summary here when it ends. Reply with exactly one short line that \
             acknowledges the mission, such as \"Handing this to the orchestrator: <the mission in a few \
             words>.\" If the message is empty, reply with one line asking for `/task <mission>` instead. \
             Never plan, read or edit files, run commands or start agents yourself, and never ask \
             questions: anything done here would get in the way of the orchestrator's agents.",
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

/// The `agent.orchestrator` entry that [`install`] puts into the project's OpenCode config.
///
/// - `mode: "subagent"` and `hidden: true` keep it out of the TUI's Tab cycle and out of `@` completion: it
///   is only reached through `/task`.
/// - Every tool is off (OpenCode turns `tools` into `deny` permissions): its only job is a one-line
///   acknowledgement, and it has to be quick, because OpenCode publishes `command.executed` only after the
///   command's reply has finished.
///
/// ```
/// let agent = orchestrator::cli::install::agent_config();
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

/// Why [`install`] or [`uninstall`] did not complete. Every variant says whether the project was left
/// unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The project directory does not exist or is not a directory.
    #[error("project directory {} is not usable: {source}; nothing was changed", path.display())]
    Project {
        /// The project directory given.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A file could not be read or does not parse, or a directory is not writable: found before anything
    /// was written.
    #[error("{source}; nothing was changed")]
    Refused {
        /// What was found.
        source: OpencodeJsonError,
    },
    /// Changing the files failed; the error says whether everything was put back.
    #[error("{action} failed: {source}")]
    Failed {
        /// What was running.
        action: Action,
        /// The step that failed, and how the rollback went.
        source: OpencodeJsonError,
    },
}

impl From<OpencodeJsonError> for InstallError {
    fn from(source: OpencodeJsonError) -> Self {
        InstallError::Refused { source }
    }
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
    /// Whether the plugin is installed (after an install; `false` after an uninstall).
    pub plugin: bool,
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
        match (self.action, self.plugin) {
            (Action::Install, true) => write!(
                f,
                "Start `opencode` in the project (restart it if it is running: OpenCode reads commands, agents \
                 and plugins when it starts) and type `/{COMMAND_NAME} <mission>`."
            )?,
            (Action::Install, false) => write!(
                f,
                "Run `orchestrator attach` next to the OpenCode server and type `/{COMMAND_NAME} <mission>` \
                 in its TUI."
            )?,
            (Action::Uninstall, _) if !self.is_noop() => write!(
                f,
                "Restart OpenCode if it is running: until then it keeps showing `/{COMMAND_NAME}` (and keeps \
                 the plugin it loaded)."
            )?,
            (Action::Uninstall, _) => {}
        }
        Ok(())
    }
}

/// Whether [`install_with`] writes the plugin, and which `orchestrator` binary the plugin records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginChoice {
    /// Write the plugin, recording this binary as the first place to look (`None`: none recorded, the
    /// plugin looks on `PATH` only).
    With {
        /// The binary to record.
        binary: Option<PathBuf>,
    },
    /// No plugin: one that an earlier install wrote is taken out.
    Without,
}

/// Installs the `/task` command, the `orchestrator` agent and the plugin (recording this process's binary)
/// into the OpenCode project at `project`: [`install_with`] with [`PluginChoice::With`].
///
/// Running it again changes nothing. See the [module docs](self) for what is written and how.
///
/// # Errors
///
/// [`InstallError::Refused`] before anything is written: a config that does not parse (with its file, line
/// and column), a directory that is not writable; [`InstallError::Failed`] if a write failed (and whether
/// everything was put back: [`OpencodeJsonError::RolledBack`] or [`OpencodeJsonError::RollbackFailed`]).
pub fn install(project: &Path) -> Result<InstallReport, InstallError> {
    let binary = std::env::current_exe().ok();
    install_with(project, &PluginChoice::With { binary })
}

/// Installs the `/task` command and the `orchestrator` agent, with or without the plugin.
///
/// # Errors
///
/// As for [`install`].
pub fn install_with(project: &Path, plugin: &PluginChoice) -> Result<InstallReport, InstallError> {
    run(project, Action::Install, plugin, opencode_json::apply)
}

/// Removes what [`install`] added: the command file (only if it carries [`COMMAND_MARKER`]), the plugin
/// (only if it carries [`plugin::PLUGIN_MARKER`]) and `agent.orchestrator` from `opencode.jsonc` and
/// `opencode.json`, leaving every other byte of them as it is. The state directory (missions, backups, log)
/// stays.
///
/// A config that [`install`] created and that holds nothing else is deleted. On a project without an install
/// it changes nothing and says so.
///
/// # Errors
///
/// As for [`install`].
pub fn uninstall(project: &Path) -> Result<InstallReport, InstallError> {
    run(
        project,
        Action::Uninstall,
        &PluginChoice::Without,
        opencode_json::apply,
    )
}

/// [`install`] or [`uninstall`], with the function that changes the files: [`opencode_json::apply`], or in
/// tests one that simulates a failure.
fn run(
    project: &Path,
    action: Action,
    plugin: &PluginChoice,
    apply: impl FnOnce(&[PlannedChange], &Backups) -> Result<Applied, OpencodeJsonError>,
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
        Action::Install => plan_install(project, plugin)?,
        Action::Uninstall => plan_uninstall(project)?,
    };
    let backups = Backups {
        dir: project.join(BACKUP_DIR),
        keep: BACKUPS_KEPT,
    };
    let Applied {
        mut changes,
        notes: rotation_notes,
    } = apply(&plan.files, &backups).map_err(|error| match error {
        refused @ OpencodeJsonError::NotWritable { .. } => {
            InstallError::Refused { source: refused }
        }
        failed => InstallError::Failed {
            action,
            source: failed,
        },
    })?;
    let mut notes = plan.notes;
    notes.extend(rotation_notes);
    for file in [COMMAND_PATH, plugin::PLUGIN_PATH] {
        if changes.iter().any(|change: &FileChange| {
            change.kind == ChangeKind::Removed && change.path.ends_with(file)
        }) {
            // `install` made this directory unless the project had other commands or plugins; an empty one
            // is no loss.
            let _ = fs::remove_dir(project.join(file).parent().unwrap_or(project));
        }
    }
    // The state directory's `.gitignore`, so that the backups (and later missions, logs, claims) are not
    // committed: install makes it, uninstall only where backups went.
    if (action == Action::Install || journal::state_dir(project).is_dir())
        && let Err(error) = journal::ensure_state_dir(project)
    {
        notes.push(format!(
            "could not write {}/.gitignore ({error}): git may see the orchestrator's state",
            journal::state_dir(project).display()
        ));
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
        plugin: action == Action::Install && matches!(plugin, PluginChoice::With { .. }),
    })
}

/// Everything a run will change, computed before the first write.
#[derive(Debug, Default)]
struct Plan {
    files: Vec<PlannedChange>,
    unchanged: Vec<PathBuf>,
    notes: Vec<String>,
}

fn plan_install(project: &Path, choice: &PluginChoice) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();

    let jsonc = project.join(CONFIG_JSONC);
    let config = if fs::symlink_metadata(&jsonc).is_ok() {
        jsonc
    } else {
        project.join(CONFIG_JSON)
    };
    let config = opencode_json::follow_symlink(&config)?;
    let old = opencode_json::read(&config)?;
    let text = match &old {
        Some(bytes) => opencode_json::config_text(&config, bytes)?,
        None => NEW_CONFIG.to_owned(),
    };
    match opencode_json::with_agent(&config, &text, AGENT_NAME, &AGENT)? {
        Some(new) => plan.files.push(PlannedChange {
            path: config,
            old,
            new: Some(new),
            check: check_config_with_agent,
        }),
        None => plan.unchanged.push(config),
    }

    let command = opencode_json::follow_symlink(&project.join(COMMAND_PATH))?;
    let old = opencode_json::read(&command)?;
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
            plan.files.push(PlannedChange {
                path: command,
                old,
                new: Some(COMMAND_TEMPLATE.to_owned()),
                check: |_, text| check_command(text),
            });
        }
    }

    let path = opencode_json::follow_symlink(&project.join(plugin::PLUGIN_PATH))?;
    let old = opencode_json::read(&path)?;
    let ours = old
        .as_deref()
        .is_some_and(|bytes| plugin::is_ours(&String::from_utf8_lossy(bytes)));
    match choice {
        PluginChoice::With { binary } => {
            let new = plugin::plugin_text(binary.as_deref());
            if old.as_deref() == Some(new.as_bytes()) {
                plan.unchanged.push(path);
            } else {
                if old.is_some() && !ours {
                    plan.notes.push(format!(
                        "{} was not written by orchestrator install; it is replaced and its backup kept",
                        path.display()
                    ));
                }
                plan.files.push(PlannedChange {
                    path,
                    old,
                    new: Some(new),
                    check: check_plugin,
                });
            }
        }
        PluginChoice::Without if ours => plan.files.push(PlannedChange {
            path,
            old,
            new: None,
            check: |_, _| Ok(()),
        }),
        PluginChoice::Without => {}
    }
    Ok(plan)
}

/// The check of a plugin read back after [`install`] wrote it.
fn check_plugin(_: &Path, text: &str) -> Result<(), String> {
    if plugin::is_ours(text) {
        Ok(())
    } else {
        Err(format!(
            "the plugin does not start with `{}`",
            plugin::PLUGIN_MARKER
        ))
    }
}

fn plan_uninstall(project: &Path) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();
    for name in [CONFIG_JSONC, CONFIG_JSON] {
        let config = opencode_json::follow_symlink(&project.join(name))?;
        let Some(old) = opencode_json::read(&config)? else {
            continue;
        };
        let text = opencode_json::config_text(&config, &old)?;
        let Some(new) = opencode_json::without_agent(&config, &text, AGENT_NAME)? else {
            continue;
        };
        // A config that `install` created and that holds nothing else goes.
        let new = (name != CONFIG_JSON || new != NEW_CONFIG).then_some(new);
        plan.files.push(PlannedChange {
            path: config,
            old: Some(old),
            new,
            check: check_config_without_agent,
        });
    }

    /// Whether a file's text is what `install` wrote there.
    type IsOurs = fn(&str) -> bool;
    let ours: [(&str, IsOurs); 2] = [
        (COMMAND_PATH, is_our_command),
        (plugin::PLUGIN_PATH, plugin::is_ours),
    ];
    for (file, is_ours) in ours {
        let path = opencode_json::follow_symlink(&project.join(file))?;
        if let Some(old) = opencode_json::read(&path)? {
            if is_ours(&String::from_utf8_lossy(&old)) {
                plan.files.push(PlannedChange {
                    path,
                    old: Some(old),
                    new: None,
                    check: |_, _| Ok(()),
                });
            } else {
                plan.notes.push(format!(
                    "left {} alone: it was not written by orchestrator install",
                    path.display()
                ));
            }
        }
    }
    Ok(plan)
}

/// The check of a config read back after [`install`] wrote it.
fn check_config_with_agent(path: &Path, text: &str) -> Result<(), String> {
    match opencode_json::agent_entry(path, text, AGENT_NAME) {
        Ok(Some(entry)) if entry == agent_config() => Ok(()),
        Ok(_) => Err(format!("agent.{AGENT_NAME} is missing")),
        Err(error) => Err(format!("the config does not parse: {error}")),
    }
}

/// The check of a config read back after [`uninstall`] wrote it.
fn check_config_without_agent(path: &Path, text: &str) -> Result<(), String> {
    match opencode_json::agent_entry(path, text, AGENT_NAME) {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(format!("agent.{AGENT_NAME} is still there")),
        Err(error) => Err(format!("the config does not parse: {error}")),
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::adapters::opencode_json::Fault;

    /// [`run`] with `fault` simulated.
    fn run_with(
        project: &Path,
        action: Action,
        fault: Fault,
    ) -> Result<InstallReport, InstallError> {
        let plugin = PluginChoice::With {
            binary: Some(PathBuf::from("/usr/local/bin/orchestrator")),
        };
        run(project, action, &plugin, |files, backups| {
            opencode_json::apply_with_fault(files, backups, fault)
        })
    }

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
        jsonc_parser::parse_to_serde_value(text, &Default::default())
            .expect("parses")
            .expect("a value")
    }

    /// The config's value without our agent, and without an `agent` object left empty by its removal.
    fn without_ours(value: &Value) -> Value {
        let mut value = value.clone();
        if let Some(root) = value.as_object_mut() {
            let agent = root.get_mut("agent").and_then(Value::as_object_mut);
            if agent.is_some_and(|agent| {
                agent.remove(AGENT_NAME);
                agent.is_empty()
            }) {
                root.remove("agent");
            }
        }
        value
    }

    fn backups_of(project: &Path, name: &str) -> Vec<PathBuf> {
        let mut backups: Vec<PathBuf> = fs::read_dir(project.join(BACKUP_DIR))
            .map(|entries| {
                entries
                    .map(|entry| entry.expect("entry").path())
                    .filter(|path| {
                        opencode_json::backup_order(
                            name,
                            &path.file_name().expect("name").to_string_lossy(),
                        )
                        .is_some()
                    })
                    .collect()
            })
            .unwrap_or_default();
        backups.sort_by_key(|path| {
            opencode_json::backup_order(name, &path.file_name().expect("name").to_string_lossy())
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
        assert_eq!(report.written().count(), 3);
        assert_eq!(
            report.backups().count(),
            1,
            "the config had content to back up; task.md and the plugin did not exist"
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
        assert_eq!(report.removed().count(), 2);
        assert_eq!(report.written().count(), 1);
        assert!(!project.path().join(plugin::PLUGIN_PATH).exists());
        assert!(
            !project.path().join(".opencode/plugins").exists(),
            "the empty plugins directory goes too"
        );
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
        assert_eq!(report.changes.len(), 3);
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
            let text = opencode_json::without_agent(&config, &text, AGENT_NAME)
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
            let error = run_with(project.path(), Action::Install, fault).expect_err("fails");
            let message = error.to_string();
            match &error {
                InstallError::Failed {
                    source:
                        OpencodeJsonError::RolledBack {
                            path, step: failed, ..
                        },
                    ..
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
            let error = run_with(project.path(), Action::Install, fault).expect_err("fails");
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
        let error = run_with(project.path(), Action::Uninstall, fault).expect_err("fails");
        assert!(
            matches!(
                error,
                InstallError::Failed {
                    action: Action::Uninstall,
                    source: OpencodeJsonError::RolledBack { .. },
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
        let can_still_write = fs::File::create(project.path().join("probe")).is_ok();
        let result = install(project.path());
        let _ = fs::remove_file(project.path().join("probe"));
        fs::set_permissions(project.path(), fs::Permissions::from_mode(0o755)).expect("chmod back");
        if can_still_write {
            eprintln!("skipped: this user can write to a 0555 directory");
            return;
        }
        let error = result.expect_err("refused");
        assert!(
            matches!(
                &error,
                InstallError::Refused {
                    source: OpencodeJsonError::NotWritable { dir, .. }
                } if dir == project.path()
            ),
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
        let error = run_with(project.path(), Action::Install, Fault::Probe).expect_err("refused");
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
            InstallError::Refused {
                source: OpencodeJsonError::Syntax { path, line, .. },
            } => {
                assert!(path.ends_with("opencode.jsonc"));
                assert_eq!(*line, 4);
            }
            other => panic!("expected a syntax error, got {other}"),
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
            message.contains("opencode.jsonc:3:3: invalid JSONC: Unterminated comment block"),
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
    fn the_report_lists_files_relative_to_the_project() {
        let project = project_with(&[]);
        let text = install(project.path()).expect("install").to_string();
        assert!(text.contains("  created   opencode.json\n"), "{text}");
        assert!(
            text.contains("  created   .opencode/command/task.md\n"),
            "{text}"
        );
        assert!(
            text.contains("  created   .opencode/plugins/orchestrator.js\n"),
            "{text}"
        );
        assert!(
            text.ends_with("and type `/task <mission>`."),
            "two steps: install, then opencode: {text}"
        );
        let text = uninstall(project.path()).expect("uninstall").to_string();
        assert!(text.contains("Restart OpenCode if it is running"), "{text}");
    }

    #[test]
    fn the_plugin_records_the_binary_and_goes_with_uninstall() {
        let project = project_with(&[]);
        let binary = PathBuf::from("/opt/orchestrator/bin/orchestrator");
        let report = install_with(
            project.path(),
            &PluginChoice::With {
                binary: Some(binary.clone()),
            },
        )
        .expect("install");
        assert!(report.plugin);
        let path = project.path().join(plugin::PLUGIN_PATH);
        let text = fs::read_to_string(&path).expect("the plugin");
        assert_eq!(text, plugin::plugin_text(Some(&binary)));
        assert_eq!(plugin::recorded_binary(&text), Some(binary));
        // Installed from another binary: the plugin is rewritten (backed up), the rest stays.
        let report = install(project.path()).expect("again");
        assert_eq!(report.written().collect::<Vec<_>>(), [path.as_path()]);
        assert_eq!(report.backups().count(), 1);

        uninstall(project.path()).expect("uninstall");
        assert!(!path.exists());
    }

    #[test]
    fn without_the_plugin_attach_is_the_way_and_an_earlier_plugin_goes() {
        let project = project_with(&[]);
        install(project.path()).expect("install");
        let report = install_with(project.path(), &PluginChoice::Without).expect("no plugin");
        assert!(!report.plugin);
        assert_eq!(report.removed().count(), 1, "{report}");
        assert!(!project.path().join(plugin::PLUGIN_PATH).exists());
        assert!(
            report
                .to_string()
                .ends_with("type `/task <mission>` in its TUI."),
            "{report}"
        );
        assert!(
            report.to_string().contains("orchestrator attach"),
            "{report}"
        );
        assert!(project.path().join(COMMAND_PATH).is_file());
    }

    #[test]
    fn a_plugin_that_is_not_ours_is_left_by_uninstall_and_backed_up_by_install() {
        let theirs = "export const Mine = async () => ({})\n";
        let project = project_with(&[(plugin::PLUGIN_PATH, theirs)]);
        let report = uninstall(project.path()).expect("uninstall");
        assert!(report.is_noop());
        assert!(
            report.to_string().contains("orchestrator.js alone"),
            "{report}"
        );
        let report = install(project.path()).expect("install");
        assert!(
            report
                .notes
                .iter()
                .any(|note| note.contains("orchestrator.js")),
            "{report}"
        );
        let backup = backups_of(project.path(), "orchestrator.js");
        assert_eq!(fs::read_to_string(&backup[0]).expect("backup"), theirs);
    }

    #[test]
    fn git_sees_what_install_wrote_and_none_of_the_orchestrators_state() {
        let project = project_with(&[("opencode.json", "{\n  \"model\": \"a/b\"\n}\n")]);
        let git = |args: &[&str]| {
            let output = std::process::Command::new("git")
                .args(args)
                .current_dir(project.path())
                .output()
                .expect("git runs");
            assert!(output.status.success(), "{output:?}");
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        git(&["init", "-q"]);
        install(project.path()).expect("install");
        install(project.path()).expect("again");
        assert!(
            project.path().join(BACKUP_DIR).is_dir(),
            "the config was backed up"
        );
        let mut status: Vec<String> = git(&["status", "--porcelain", "--untracked-files=all"])
            .lines()
            .map(str::to_string)
            .collect();
        status.sort();
        assert_eq!(
            status,
            [
                "?? .opencode/command/task.md",
                "?? .opencode/plugins/orchestrator.js",
                "?? opencode.json",
            ],
            "the backups in .opencode/orchestrator are not for git"
        );
    }
}
