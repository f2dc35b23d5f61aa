//! The OpenCode plugin that `orchestrator install` writes, so that `/task <mission>` typed in the OpenCode
//! TUI runs the mission with nothing else to start (no `attach` in a second terminal, no fixed port).
//!
//! The plugin ([`PLUGIN_PATH`], the one piece not in Rust: [`plugin_text`] fills in `src/cli/plugin.js`)
//! waits for OpenCode's `command.executed` event of the `task` command and starts
//! `orchestrator task --url <its server> --project <its directory> --session <id> --command-message <id> --
//! <mission>`, a foreground run whose output goes to `.opencode/orchestrator/plugin.log`. That run claims
//! the command first ([`crate::adapters::claim`]: an `attach` watching the same server, or a second copy of
//! the plugin, loses the claim and does nothing), posts "picked up as mission m…" in the session, shows the
//! stages and tasks as toasts and posts the summary there, as `attach` does.
//!
//! # What OpenCode 1.18.33 does with plugins (read from its binary and checked against it)
//!
//! - **Where from.** In every configuration directory (the project's `.opencode/`, the global one),
//!   OpenCode scans `{plugin,plugins}/*.{ts,js}`: both directory names load, so a copy in each would load
//!   twice (the claim covers that). Files listed under `plugin` in `opencode.json` load too.
//! - **When.** Lazily, per directory instance, at its first request that needs them (in the TUI: the first
//!   message or command), and again after `POST /instance/dispose`. A TUI that has loaded its plugins does
//!   not see a plugin installed later until it restarts; nor does it forget an uninstalled one.
//! - **What it hands them.** Each export of the module is called (a function, or an object with
//!   `server()`), with `{ client, project, worktree, directory, experimental_workspace, serverUrl, $ }`:
//!   `client` is the SDK client of the V1 API (`client.session.prompt({ path: { id }, body })`,
//!   `client.tui.showToast({ body })`), `$` is Bun's shell. The hooks returned include `event` (every bus
//!   event of the plugin's directory, as `{ event: { type, properties } }`) and
//!   `"command.execute.before"` (`{ command, sessionID, arguments }`, before the command's prompt runs, with
//!   no message id yet).
//! - **The server's URL.** The plain TUI (`opencode`, no `--port`) listens on no port at all: its API runs
//!   in a worker and the TUI reaches it in-process, so `serverUrl` falls back to `http://localhost:4096`,
//!   which is not it (it may even be another OpenCode). The plugin's `client` works in-process in that case
//!   (`client._client.getConfig()` holds its `fetch`). So the plugin serves a loopback proxy
//!   (`Bun.serve` on `127.0.0.1`, a random port) that forwards through that `fetch`, event stream included,
//!   and asks for a random token that it hands the orchestrator in `ORCHESTRATOR_PLUGIN_TOKEN`
//!   (`--password-env`); the proxy adds the server's own credentials (from `OPENCODE_SERVER_PASSWORD` when
//!   the server has one). With `opencode serve --port N` the same proxy forwards over HTTP: one path for
//!   both.
//! - **Which hook.** `command.executed` is published after the command's prompt has finished (the
//!   acknowledging agent has answered), with the message id; the same event `attach` follows, so both
//!   claim the same `(session, message)`. `command.execute.before` comes earlier but has no message id to
//!   claim by.
//! - **The user's message.** OpenCode makes the command's template, with `$ARGUMENTS` replaced, the user's
//!   message: the template is `$ARGUMENTS` alone (the mission as typed) and the instructions to the
//!   acknowledging agent are its agent prompt ([`crate::cli::install::agent_config`]).
//! - **The password.** The server reads `OPENCODE_SERVER_PASSWORD` (and `OPENCODE_SERVER_USERNAME`,
//!   default `opencode`) from its environment; plugins run in the server's process and the plugin's client
//!   already carries them.
//!
//! ```
//! use orchestrator::cli::plugin;
//!
//! let text = plugin::plugin_text(Some(std::path::Path::new("/usr/local/bin/orchestrator")));
//! assert!(text.starts_with(plugin::PLUGIN_MARKER));
//! assert_eq!(
//!     plugin::recorded_binary(&text).as_deref(),
//!     Some(std::path::Path::new("/usr/local/bin/orchestrator"))
//! );
//! ```

use std::path::{Path, PathBuf};

use crate::adapters::journal::STATE_GITIGNORE;

/// Where the plugin goes, relative to the project directory (`plugins/`, one of the two directories
/// OpenCode 1.18.33 scans).
pub const PLUGIN_PATH: &str = ".opencode/plugins/orchestrator.js";

/// The first line of the plugin: [`uninstall`](crate::cli::install::uninstall) only removes a plugin that
/// starts with it.
pub const PLUGIN_MARKER: &str = "// Written by `orchestrator install`";

/// The file, in the state directory, where the plugin says which OpenCode process loaded it.
pub const LOADED_FILE: &str = "plugin.json";

/// The file, in the state directory, that takes the output of the runs the plugin starts.
pub const LOG_FILE: &str = "plugin.log";

/// The variable in which the plugin hands the orchestrator the token of its proxy.
pub const TOKEN_VARIABLE: &str = "ORCHESTRATOR_PLUGIN_TOKEN";

/// The plugin's source, with its two placeholders.
const TEMPLATE: &str = include_str!("plugin.js");

const RECORDED_PLACEHOLDER: &str = "__RECORDED_BINARY__";
const GITIGNORE_PLACEHOLDER: &str = "__STATE_GITIGNORE__";

/// The line of the plugin that holds the recorded binary.
const RECORDED_LINE: &str = "const RECORDED = ";

/// The plugin, recording `binary` (the orchestrator that installs it) as the first place to look for the
/// binary; `None` (a path that is not UTF-8, or unknown) leaves only `PATH`.
pub fn plugin_text(binary: Option<&Path>) -> String {
    let recorded = binary
        .and_then(Path::to_str)
        .map_or_else(|| "null".to_string(), json_string);
    TEMPLATE
        .replacen(RECORDED_PLACEHOLDER, &recorded, 1)
        .replacen(GITIGNORE_PLACEHOLDER, &json_string(STATE_GITIGNORE), 1)
}

/// A JSON string, which is a JavaScript string literal too.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// The binary a plugin's text records, if it records one.
pub fn recorded_binary(text: &str) -> Option<PathBuf> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix(RECORDED_LINE))?;
    serde_json::from_str::<Option<String>>(line.trim())
        .ok()
        .flatten()
        .map(PathBuf::from)
}

/// Whether `text` is a plugin written by `orchestrator install` (of any version).
pub fn is_ours(text: &str) -> bool {
    text.starts_with(PLUGIN_MARKER)
}

/// The binary the plugin will start, looked for as the plugin does: the recorded one if it can be run,
/// else `orchestrator` in the directories of `path` (a `PATH` value).
pub fn binary_to_start(recorded: Option<&Path>, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    recorded
        .map(Path::to_path_buf)
        .into_iter()
        .chain(
            path.map(|path| std::env::split_paths(path).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map(|dir| dir.join("orchestrator")),
        )
        .find(|candidate| runnable(candidate))
}

/// What the plugin writes into [`LOADED_FILE`] when OpenCode loads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Loaded {
    /// The OpenCode process that loaded it.
    pub pid: i32,
    /// When, as an RFC 3339 time (`2026-12-08T01:02:03.456Z`).
    pub loaded: String,
}

/// What [`LOADED_FILE`] in the project's state directory says, if the plugin was ever loaded there (and
/// the file is as the plugin writes it).
pub fn loaded(project: &Path) -> Option<Loaded> {
    let text =
        std::fs::read_to_string(crate::adapters::journal::state_dir(project).join(LOADED_FILE))
            .ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether `path` is a file this user may run.
fn runnable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_filled_in_completely() {
        let text = plugin_text(Some(Path::new("/opt/my \"tools\"/orchestrator")));
        assert!(!text.contains("__"), "a placeholder is left:\n{text}");
        assert!(is_ours(&text));
        assert_eq!(
            recorded_binary(&text).as_deref(),
            Some(Path::new("/opt/my \"tools\"/orchestrator"))
        );
        assert!(text.contains(&json_string(STATE_GITIGNORE)));
        assert!(text.contains(TOKEN_VARIABLE));
        assert!(text.contains(LOADED_FILE) && text.contains(LOG_FILE));

        let none = plugin_text(None);
        assert!(none.contains("const RECORDED = null\n"), "{none}");
        assert_eq!(recorded_binary(&none), None);
    }

    #[test]
    fn the_plugin_needs_nothing_from_npm() {
        let text = plugin_text(None);
        for line in text.lines().filter(|line| line.starts_with("import ")) {
            assert!(line.contains("from \"node:"), "{line}");
        }
    }

    #[test]
    fn the_recorded_binary_comes_first_then_path() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().expect("tempdir");
        let make = |name: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            path
        };
        let recorded = make("recorded/orchestrator", 0o755);
        let on_path = make("bin/orchestrator", 0o755);
        make("plain/orchestrator", 0o644);
        let path =
            std::env::join_paths([dir.path().join("plain"), dir.path().join("bin")]).expect("join");
        assert_eq!(
            binary_to_start(Some(&recorded), Some(&path)),
            Some(recorded.clone())
        );
        std::fs::remove_file(&recorded).expect("remove");
        assert_eq!(
            binary_to_start(Some(&recorded), Some(&path)),
            Some(on_path),
            "not executable is skipped"
        );
        assert_eq!(binary_to_start(Some(&recorded), None), None);
    }
}
