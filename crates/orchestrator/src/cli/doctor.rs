//! `orchestrator doctor`: checks what a mission needs before one is started, and says what to do about each
//! problem: the OpenCode servers (reachable, really OpenCode, the password, the version we test against, a
//! configured provider), `opencode` on `PATH` (its version) and what `task` does without `--url` (use the
//! configured servers or the one at the default URL, or start the user's `opencode`), `ripgrep` and `git` on
//! `PATH`, the project being a git work tree, the project's configuration file, a writable state directory,
//! the `/task` command installed, and the plugin that runs `/task` in the OpenCode TUI
//! ([`crate::cli::plugin`]): installed as this version writes it, the binary it will start (run with
//! `--version`), and the OpenCode process that loaded it (a TUI started before the plugin was written runs
//! without it, or with an older one, until it restarts).
//!
//! ```no_run
//! use orchestrator::cli::doctor::{self, DoctorOptions, ServerSource};
//!
//! # async fn check() {
//! let options = DoctorOptions {
//!     urls: vec!["http://127.0.0.1:4096".to_string()],
//!     password: std::env::var("OPENCODE_SERVER_PASSWORD").ok(),
//!     project: ".".into(),
//!     servers: ServerSource::Default,
//!     default_url: "http://127.0.0.1:4096".to_string(),
//! };
//! let report = doctor::run(&options).await;
//! print!("{report}");
//! std::process::exit(if report.ok() { 0 } else { 1 });
//! # }
//! ```
//!
//! Every check runs even when an earlier one failed (a report that stops at the first problem makes the user
//! come back once per problem), except the checks that need an answering server: a server that cannot be
//! reached has no version or providers to check.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::future::join_all;
use opencode_client::testkit::{OPENCODE_VERSION, find_on_path};
use opencode_client::{Client, Error as ClientError};
use serde::Serialize;
use serde_json::Value;

use crate::adapters::own_server::{self, FindError};
use crate::cli::config::{self, JSON_FILE, TOML_FILE};
use crate::cli::plugin::{self, PLUGIN_PATH};

/// How long each call to a server, and each `--version` of a tool, may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    /// The OpenCode servers, as http(s) URLs.
    pub urls: Vec<String>,
    /// The servers' password (`OPENCODE_SERVER_PASSWORD`), if they have one.
    pub password: Option<String>,
    /// The project directory.
    pub project: PathBuf,
    /// Where `urls` come from.
    pub servers: ServerSource,
    /// The URL `task` tries when neither `--url` nor the configuration names a server.
    pub default_url: String,
}

/// Where the servers `doctor` checks come from, which says what `task` does without `--url`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServerSource {
    /// `--url`.
    #[default]
    Given,
    /// The configuration's `[servers] urls`.
    Configured,
    /// Neither: the default URL, where `task` uses a server if one answers and otherwise starts the
    /// user's `opencode`.
    Default,
}

/// How long `opencode --version` may take: the single large binary takes seconds to start on a busy
/// machine.
pub const OPENCODE_VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// All is well.
    Ok,
    /// A mission can run, but something will not work or may not work.
    Warn,
    /// A mission cannot run until this is fixed.
    Fail,
}

impl CheckStatus {
    /// The mark the report shows: `✓`, `!` or `✗`.
    pub fn symbol(self) -> char {
        match self {
            CheckStatus::Ok => '✓',
            CheckStatus::Warn => '!',
            CheckStatus::Fail => '✗',
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `ripgrep` or `server http://127.0.0.1:4096`.
    pub name: String,
    /// How it came out.
    pub status: CheckStatus,
    /// What was found (may span lines, e.g. several configuration errors).
    pub detail: String,
    /// What to do about a problem.
    pub hint: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: CheckStatus::Ok,
            detail: detail.into(),
            hint: None,
        }
    }

    fn warn(name: impl Into<String>, detail: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: CheckStatus::Warn,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, hint: Option<String>) -> Check {
        Check {
            name: name.into(),
            status: CheckStatus::Fail,
            detail: detail.into(),
            hint,
        }
    }
}

/// The indentation of a check's continuation lines and hint, under its name.
const INDENT: &str = "    ";

impl fmt::Display for Check {
    /// `✓ name: detail`, the detail's further lines and the hint indented below it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:", self.status.symbol(), self.name)?;
        let mut lines = self.detail.lines();
        if let Some(first) = lines.next() {
            write!(f, " {first}")?;
        }
        for line in lines {
            write!(f, "\n{INDENT}{line}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{INDENT}hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every check's outcome, in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DoctorReport {
    /// The checks.
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// Whether no check failed (warnings allowed): a mission can run.
    pub fn ok(&self) -> bool {
        self.checks
            .iter()
            .all(|check| check.status != CheckStatus::Fail)
    }

    /// The checks with `status`.
    pub fn with_status(&self, status: CheckStatus) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(move |check| check.status == status)
    }

    /// The first check called `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.name == name)
    }
}

impl fmt::Display for DoctorReport {
    /// One line per check (its hint indented below it), each line ended by a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        Ok(())
    }
}

/// Runs every check: the servers (all at once), then the tools, the project, its configuration, the state
/// directory, the `/task` command and its plugin (with this process's `PATH`).
pub async fn run(options: &DoctorOptions) -> DoctorReport {
    let mut checks = Vec::new();
    if options.urls.is_empty() {
        checks.push(Check::warn(
            "server",
            "no OpenCode server URL given: nothing to check",
            "pass --url, or list the servers in `[servers] urls` of .opencode/orchestrator.toml",
        ));
    }
    // Nothing at the default URL is no failure when `task` can start the user's `opencode` instead: the
    // "without --url" check says which.
    let nothing_at_default =
        options.servers == ServerSource::Default && nothing_answers(&options.default_url).await;
    if !nothing_at_default {
        for server_checks in
            join_all(options.urls.iter().map(|url| check_server(url, options))).await
        {
            checks.extend(server_checks);
        }
    }
    let opencode = own_server::find();
    checks.push(check_opencode(&opencode).await);
    checks.push(check_without_url(options, &opencode).await);
    checks.push(check_ripgrep().await);
    checks.extend(check_git(&options.project).await);
    checks.push(check_config(&options.project));
    checks.push(check_state_dir(&options.project));
    checks.push(check_task_command(&options.project));
    checks.extend(check_plugin(&options.project, std::env::var_os("PATH").as_deref()).await);
    DoctorReport { checks }
}

/// The server at `url`: reachable and OpenCode, then its version and providers.
async fn check_server(url: &str, options: &DoctorOptions) -> Vec<Check> {
    let server = format!("server {url}");
    let mut builder = Client::builder(url)
        .timeout(CHECK_TIMEOUT)
        .connect_timeout(CHECK_TIMEOUT)
        .directory(options.project.to_string_lossy());
    if let Some(password) = &options.password {
        builder = builder.password(password.clone());
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(error) => {
            return vec![Check::fail(
                server,
                error.to_string(),
                Some("give the server's http(s) URL, e.g. http://127.0.0.1:4096".to_string()),
            )];
        }
    };
    let health = match client.health().await {
        Ok(health) => health,
        Err(error) => return vec![server_failure(server, &error, options.password.is_some())],
    };
    vec![
        Check::ok(server, "OpenCode answers and is healthy"),
        check_version(format!("version {url}"), &health.version),
        check_providers(format!("providers {url}"), &client).await,
    ]
}

/// Whether nothing listens at `url` (the connection is refused), as opposed to something answering, well
/// or not.
async fn nothing_answers(url: &str) -> bool {
    let Ok(client) = Client::builder(url)
        .timeout(CHECK_TIMEOUT)
        .connect_timeout(CHECK_TIMEOUT)
        .build()
    else {
        return false;
    };
    matches!(client.health().await, Err(ClientError::Connect { .. }))
}

/// The `opencode` that `task` would start: found, and its version.
async fn check_opencode(found: &Result<PathBuf, FindError>) -> Check {
    const NAME: &str = "opencode";
    match found {
        Ok(path) => match own_server::version(path, OPENCODE_VERSION_TIMEOUT).await {
            Some(version) => {
                let mut check = check_version(NAME.to_string(), &version);
                check.detail = format!("{} ({})", check.detail, path.display());
                check
            }
            None => Check::warn(
                NAME,
                format!(
                    "{} does not run (`opencode --version` failed or took over {OPENCODE_VERSION_TIMEOUT:?})",
                    path.display()
                ),
                "reinstall it: `npm install -g opencode-ai`",
            ),
        },
        Err(FindError::NotOnPath) => Check::warn(
            NAME,
            "`opencode` is not on PATH",
            "install it (`npm install -g opencode-ai`) so that `task` can start one when no server runs",
        ),
        Err(error) => Check::warn(
            NAME,
            error.to_string(),
            format!(
                "point {} at an opencode binary, or unset it to use the one on PATH",
                own_server::BINARY_VARIABLE
            ),
        ),
    }
}

/// What `task` does without `--url`: use the configured servers, or the one at the default URL, or start
/// the user's `opencode`; a failure when it could do none of these and no `--url` was given to `doctor`
/// either (a warning when one was: the user passes `--url`).
async fn check_without_url(
    options: &DoctorOptions,
    opencode: &Result<PathBuf, FindError>,
) -> Check {
    const NAME: &str = "without --url";
    let url = &options.default_url;
    if options.servers == ServerSource::Configured {
        return Check::ok(
            NAME,
            format!(
                "`task` uses the configured servers ({})",
                options.urls.join(", ")
            ),
        );
    }
    if !nothing_answers(url).await {
        let answers = Client::builder(url)
            .timeout(CHECK_TIMEOUT)
            .connect_timeout(CHECK_TIMEOUT)
            .build()
            .ok();
        let healthy = match &answers {
            Some(client) => client.health().await.is_ok_and(|health| health.healthy),
            None => false,
        };
        return if healthy {
            Check::ok(NAME, format!("`task` uses the OpenCode server at {url}"))
        } else {
            Check::warn(
                NAME,
                format!("`task` uses the server at {url}, which does not work as OpenCode"),
                format!("see the check of server {url}, or pass --url"),
            )
        };
    }
    match opencode {
        Ok(path) => Check::ok(
            NAME,
            format!(
                "nothing answers at {url}: `task` starts your opencode ({}) in the project for each \
                 mission and stops it at the end",
                path.display()
            ),
        ),
        Err(error) => {
            let detail = format!("no OpenCode server at {url} and {error}: `task` cannot run");
            let hint = "install opencode (`npm install -g opencode-ai`), start a server \
                        (`opencode serve --port 4096`), or pass --url";
            if options.servers == ServerSource::Default {
                Check::fail(NAME, detail, Some(hint.to_string()))
            } else {
                Check::warn(NAME, detail, hint)
            }
        }
    }
}

/// Why the health check failed, and what to do about it.
fn server_failure(name: String, error: &ClientError, password_given: bool) -> Check {
    match error {
        ClientError::Connect { url, source } => Check::fail(
            name,
            format!("could not connect to {url}: {}", root_cause(source)),
            Some(
                "start one with `opencode serve --port 4096`, or pass the URL of a running one (--url)"
                    .to_string(),
            ),
        ),
        ClientError::NotOpenCode { detail, .. } => Check::fail(
            name,
            format!("something answers, but it is not OpenCode: {detail}"),
            Some("another program listens there: check the URL and the port".to_string()),
        ),
        ClientError::Status { status: 401, .. } => {
            let given = if password_given {
                "the password given is wrong"
            } else {
                "none was given"
            };
            Check::fail(
                name,
                format!("HTTP 401: the server wants a password and {given}"),
                Some(
                    "set OPENCODE_SERVER_PASSWORD to the password the server was started with"
                        .to_string(),
                ),
            )
        }
        ClientError::Timeout { .. } => Check::fail(
            name,
            error.to_string(),
            Some("the server is busy or hung: look at it, or restart it".to_string()),
        ),
        _ => Check::fail(name, error.to_string(), None),
    }
}

/// The innermost error of `error`'s chain (`Connection refused (os error 111)`), which says more than
/// reqwest's outer "error sending request for url (…)".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// The server's version against [`OPENCODE_VERSION`], the one the orchestrator is tested against.
fn check_version(name: String, version: &str) -> Check {
    let ordering = version_numbers(version)
        .zip(version_numbers(OPENCODE_VERSION))
        .map(|(found, tested)| compare_versions(&found, &tested));
    match ordering {
        Some(Ordering::Equal) => Check::ok(
            name,
            format!("OpenCode {version}, the version the orchestrator is tested against"),
        ),
        Some(Ordering::Greater) => Check::warn(
            name,
            format!(
                "OpenCode {version} is newer than {OPENCODE_VERSION}, the version the orchestrator is tested against"
            ),
            format!(
                "it likely works; if something does not, try `npm install -g opencode-ai@{OPENCODE_VERSION}`"
            ),
        ),
        Some(Ordering::Less) => Check::warn(
            name,
            format!(
                "OpenCode {version} is older than {OPENCODE_VERSION}, the version the orchestrator is tested against"
            ),
            format!("upgrade it: `npm install -g opencode-ai@{OPENCODE_VERSION}`"),
        ),
        None => Check::warn(
            name,
            format!(
                "OpenCode says its version is `{version}`, which is not a version number (tested against {OPENCODE_VERSION})"
            ),
            format!("use opencode-ai@{OPENCODE_VERSION} if something does not work"),
        ),
    }
}

/// `1.18.33` (or `v1.18.33-beta.1`, whose pre-release part is ignored) as numbers.
fn version_numbers(version: &str) -> Option<Vec<u64>> {
    let version = version.trim();
    let version = version.strip_prefix('v').unwrap_or(version);
    let release = version.split(['-', '+']).next()?;
    release.split('.').map(|part| part.parse().ok()).collect()
}

/// Compares two versions part by part, a missing part counting as 0 (`1.18` is `1.18.0`).
fn compare_versions(a: &[u64], b: &[u64]) -> Ordering {
    let parts = a.len().max(b.len());
    let part = |version: &[u64], index: usize| version.get(index).copied().unwrap_or(0);
    (0..parts)
        .map(|index| part(a, index).cmp(&part(b, index)))
        .find(|ordering| ordering.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// The providers the server has configured (`GET /config/providers`: `{"providers": [{"id": …}, …],
/// "default": {provider: model}}`) and its default model (`model` of `GET /config`).
async fn check_providers(name: String, client: &Client) -> Check {
    let answer = match client.providers().await {
        Ok(answer) => answer,
        Err(error) => return Check::fail(name, format!("cannot list them: {error}"), None),
    };
    let Some(providers) = answer.get("providers").and_then(Value::as_array) else {
        return Check::warn(
            name,
            "the answer of GET /config/providers has no `providers` list",
            format!("the server may not be OpenCode {OPENCODE_VERSION}'s API"),
        );
    };
    let ids: Vec<&str> = providers
        .iter()
        .filter_map(|provider| provider.get("id").and_then(Value::as_str))
        .collect();
    if ids.is_empty() {
        return Check::fail(
            name,
            "no provider configured: the agents have no model to call",
            Some(
                "configure one in the project's opencode.json (`provider`), or log in to one with `opencode auth login`"
                    .to_string(),
            ),
        );
    }
    let plural = if ids.len() == 1 { "" } else { "s" };
    let mut detail = format!(
        "{} provider{plural} configured ({})",
        ids.len(),
        ids.join(", ")
    );
    // The server's default model is its configuration's `model`; without one, each provider's default.
    let default_model = client.config().await.ok().and_then(|config| {
        config
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let provider_defaults: Vec<String> = answer
        .get("default")
        .and_then(Value::as_object)
        .map(|defaults| {
            defaults
                .iter()
                .filter_map(|(provider, model)| Some(format!("{provider}/{}", model.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    match default_model {
        Some(model) => {
            detail.push_str(&format!("; default model {model}"));
            let provider = model
                .split_once('/')
                .map_or(model.as_str(), |(provider, _)| provider);
            if !ids.contains(&provider) {
                return Check::warn(
                    name,
                    format!("{detail}, whose provider `{provider}` is not configured"),
                    "configure that provider, or set another `model` in opencode.json or the orchestrator's `agents.model`",
                );
            }
        }
        None if !provider_defaults.is_empty() => {
            detail.push_str(&format!(
                "; default models: {}",
                provider_defaults.join(", ")
            ));
        }
        None => {}
    }
    Check::ok(name, detail)
}

/// The first line of `binary --version`, or `None` if it does not run, fails or takes too long.
async fn tool_version(binary: &Path) -> Option<String> {
    let output = tokio::process::Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CHECK_TIMEOUT, output)
        .await
        .ok()?
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Some(stdout.lines().next().unwrap_or_default().trim().to_string())
}

/// `rg` on `PATH`: OpenCode's find, grep and glob tools need it, and without it try to download one.
async fn check_ripgrep() -> Check {
    const HINT: &str = "install ripgrep (`apt install ripgrep`) or put `rg` on PATH: OpenCode's find, grep and glob tools need it";
    let Some(rg) = find_on_path("rg") else {
        return Check::warn("ripgrep", "`rg` is not on PATH", HINT);
    };
    match tool_version(&rg).await {
        Some(version) => Check::ok("ripgrep", format!("{version} ({})", rg.display())),
        None => Check::warn(
            "ripgrep",
            format!("{} does not run (`rg --version` failed)", rg.display()),
            HINT,
        ),
    }
}

/// `git` on `PATH`, and the project a git work tree: session diffs and the review need one.
async fn check_git(project: &Path) -> Vec<Check> {
    let Some(git) = find_on_path("git") else {
        return vec![Check::warn(
            "git",
            "`git` is not on PATH",
            "install git (`apt install git`): session diffs and the review need a git project",
        )];
    };
    let Some(version) = tool_version(&git).await else {
        return vec![Check::warn(
            "git",
            format!("{} does not run (`git --version` failed)", git.display()),
            "reinstall git: session diffs and the review need a git project",
        )];
    };
    let inside = tokio::process::Command::new(&git)
        .arg("-C")
        .arg(project)
        .args(["rev-parse", "--is-inside-work-tree"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let inside = tokio::time::timeout(CHECK_TIMEOUT, inside)
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|output| {
            output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "true"
        });
    let work_tree = if inside {
        Check::ok(
            "git work tree",
            format!("{} is in a git work tree", project.display()),
        )
    } else {
        Check::warn(
            "git work tree",
            format!("{} is not in a git work tree", project.display()),
            "run `git init` (and commit) in the project: session diffs and the review need a git project",
        )
    };
    vec![Check::ok("git", version), work_tree]
}

/// The project's `.opencode/orchestrator.toml` (or `.json`): absent, valid, or its errors with their lines.
fn check_config(project: &Path) -> Check {
    match config::load(project) {
        Ok(None) => Check::ok("config", format!("no .opencode/{TOML_FILE} (defaults)")),
        Ok(Some(_)) => {
            let file = if project.join(".opencode").join(TOML_FILE).exists() {
                TOML_FILE
            } else {
                JSON_FILE
            };
            Check::ok("config", format!(".opencode/{file} is valid"))
        }
        Err(error) => Check::fail(
            "config",
            error.to_string(),
            Some("fix the settings named above; a key left out keeps its default".to_string()),
        ),
    }
}

/// The mission state directory `.opencode/orchestrator/`: writable, or creatable where it is missing.
fn check_state_dir(project: &Path) -> Check {
    const NAME: &str = "state dir";
    let directory = project.join(".opencode").join("orchestrator");
    if !project.is_dir() {
        return Check::fail(
            NAME,
            format!("the project {} is not a directory", project.display()),
            Some("run the orchestrator in (or pass) an existing project directory".to_string()),
        );
    }
    // The doctor does not create the directory: it probes the nearest part of the path that exists.
    let mut existing = directory.as_path();
    while !existing.exists() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => break,
        }
    }
    if !existing.is_dir() {
        return Check::fail(
            NAME,
            format!(
                "{} is in the way of {}: it is not a directory",
                existing.display(),
                directory.display()
            ),
            Some(format!("move {} away", existing.display())),
        );
    }
    match tempfile::Builder::new()
        .prefix(".doctor-")
        .tempfile_in(existing)
    {
        Ok(_probe) if existing == directory => {
            Check::ok(NAME, format!("{} is writable", directory.display()))
        }
        Ok(_probe) => Check::ok(
            NAME,
            format!(
                "{} will be created ({} is writable)",
                directory.display(),
                existing.display()
            ),
        ),
        Err(error) => Check::fail(
            NAME,
            format!("cannot write in {}: {error}", existing.display()),
            Some(format!(
                "make {} writable by this user: missions are saved there",
                existing.display()
            )),
        ),
    }
}

/// `.opencode/command/task.md`, which gives OpenCode's TUI the `/task` command.
fn check_task_command(project: &Path) -> Check {
    const NAME: &str = "/task command";
    if project
        .join(".opencode")
        .join("command")
        .join("task.md")
        .is_file()
    {
        Check::ok(NAME, "installed (.opencode/command/task.md)")
    } else {
        Check::warn(
            NAME,
            "not installed: .opencode/command/task.md is missing",
            "run `orchestrator install` to type /task in OpenCode's TUI",
        )
    }
}

/// The plugin that runs `/task` ([`PLUGIN_PATH`]): installed, ours and as this version writes it; then
/// the binary it will start (looked for as it does, with `path` as `PATH`) and the OpenCode that loaded it.
async fn check_plugin(project: &Path, path: Option<&std::ffi::OsStr>) -> Vec<Check> {
    const NAME: &str = "plugin";
    const INSTALL: &str = "run `orchestrator install` again, then restart OpenCode";
    let file = project.join(PLUGIN_PATH);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return vec![Check::warn(
                NAME,
                format!(
                    "not installed ({PLUGIN_PATH} is missing): /task runs a mission only while \
                     `orchestrator attach` watches the server"
                ),
                "run `orchestrator install` (without --no-plugin) so that /task needs nothing else running",
            )];
        }
        Err(error) => {
            return vec![Check::fail(
                NAME,
                format!("cannot read {}: {error}", file.display()),
                Some("make it readable: OpenCode cannot load it either".to_string()),
            )];
        }
    };
    if !plugin::is_ours(&text) {
        return vec![Check::warn(
            NAME,
            format!("{PLUGIN_PATH} was not written by `orchestrator install`"),
            "run `orchestrator install` to replace it (the old one is backed up)",
        )];
    }
    let recorded = plugin::recorded_binary(&text);
    let installed = if text == plugin::plugin_text(recorded.as_deref()) {
        Check::ok(NAME, format!("installed ({PLUGIN_PATH})"))
    } else {
        Check::warn(
            NAME,
            format!("{PLUGIN_PATH} was written by another version of the orchestrator"),
            INSTALL,
        )
    };
    vec![
        installed,
        check_plugin_binary(recorded.as_deref(), path).await,
        check_plugin_loaded(project, &file),
    ]
}

/// The `orchestrator` the plugin will start: the binary `install` recorded, else the one on `path`; it
/// must answer `--version`.
async fn check_plugin_binary(recorded: Option<&Path>, path: Option<&std::ffi::OsStr>) -> Check {
    const NAME: &str = "plugin binary";
    const HINT: &str = "put `orchestrator` on the PATH OpenCode starts with, or run `orchestrator install` again \
                        from the binary to use, then restart OpenCode";
    let Some(binary) = plugin::binary_to_start(recorded, path) else {
        let recorded = recorded.map_or_else(
            || "no binary recorded".to_string(),
            |binary| format!("{} (recorded by install) is missing", binary.display()),
        );
        return Check::fail(
            NAME,
            format!("/task cannot start the orchestrator: {recorded} and none is on PATH"),
            Some(HINT.to_string()),
        );
    };
    match tool_version(&binary).await {
        Some(version) => Check::ok(NAME, format!("{version} ({})", binary.display())),
        None => Check::fail(
            NAME,
            format!("{} does not answer `--version`", binary.display()),
            Some(HINT.to_string()),
        ),
    }
}

/// The OpenCode that loaded the plugin (it says so in [`plugin::LOADED_FILE`]): still running, and loaded
/// after the plugin was last written (a TUI keeps the plugin it loaded until it restarts).
fn check_plugin_loaded(project: &Path, plugin_file: &Path) -> Check {
    const NAME: &str = "OpenCode TUI";
    const START: &str = "start `opencode` in the project (restart it if it runs): it loads the plugin at its first \
                         message or command";
    let Some(loaded) = plugin::loaded(project) else {
        return Check::warn(NAME, "no OpenCode has loaded the plugin yet", START);
    };
    // Signal 0 only asks whether the process exists; EPERM says it does, as another user's.
    let running = loaded.pid > 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(loaded.pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
    if !running {
        return Check::warn(
            NAME,
            format!(
                "the OpenCode that loaded the plugin (pid {}, at {}) has ended",
                loaded.pid, loaded.loaded
            ),
            START,
        );
    }
    let modified = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|metadata| metadata.modified())
            .ok()
    };
    let loaded_file = crate::adapters::journal::state_dir(project).join(plugin::LOADED_FILE);
    if let (Some(written), Some(load)) = (modified(plugin_file), modified(&loaded_file))
        && written > load
    {
        return Check::warn(
            NAME,
            format!(
                "OpenCode (pid {}) loaded the plugin at {}, before it was last written",
                loaded.pid, loaded.loaded
            ),
            "restart OpenCode so that it runs the plugin as installed now",
        );
    }
    Check::ok(
        NAME,
        format!(
            "OpenCode (pid {}) loaded the plugin at {}: /task runs missions there",
            loaded.pid, loaded.loaded
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::fs;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use serde_json::json;

    use super::*;

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
        format!("http://{address}")
    }

    fn options(url: &str, project: &Path) -> DoctorOptions {
        DoctorOptions {
            urls: vec![url.to_string()],
            password: None,
            project: project.to_path_buf(),
            servers: ServerSource::Given,
            default_url: url.to_string(),
        }
    }

    fn healthy(version: &'static str) -> Router {
        Router::new().route(
            "/global/health",
            get(move || async move { axum::Json(json!({"healthy": true, "version": version})) }),
        )
    }

    /// A local URL nothing listens on.
    fn closed_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("address"))
    }

    fn default_options(default_url: &str, project: &Path) -> DoctorOptions {
        DoctorOptions {
            urls: vec![default_url.to_string()],
            password: None,
            project: project.to_path_buf(),
            servers: ServerSource::Default,
            default_url: default_url.to_string(),
        }
    }

    /// An executable `opencode` script in `directory` that prints `version`.
    fn fake_opencode(directory: &Path, version: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = directory.join("opencode");
        fs::write(&path, format!("#!/bin/sh\necho {version}\n")).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[tokio::test]
    async fn nothing_at_the_default_url_and_no_opencode_fails_with_what_to_do() {
        let project = tempfile::tempdir().expect("tempdir");
        let url = closed_url();
        let options = default_options(&url, project.path());
        let check = check_without_url(&options, &Err(FindError::NotOnPath)).await;
        assert_eq!(check.status, CheckStatus::Fail, "{check}");
        assert!(
            check.detail.contains(&format!(
                "no OpenCode server at {url} and no `opencode` on PATH"
            )),
            "{check}"
        );
        assert!(
            check
                .hint
                .as_deref()
                .is_some_and(|hint| hint.contains("npm install -g opencode-ai")),
            "{check}"
        );
        // With --url given to doctor, the user runs `task --url`: only a warning.
        let given = DoctorOptions {
            servers: ServerSource::Given,
            ..options
        };
        let check = check_without_url(&given, &Err(FindError::NotOnPath)).await;
        assert_eq!(check.status, CheckStatus::Warn, "{check}");
    }

    #[tokio::test]
    async fn nothing_at_the_default_url_with_opencode_says_task_starts_it() {
        let project = tempfile::tempdir().expect("tempdir");
        let bin = tempfile::tempdir().expect("tempdir");
        let opencode = fake_opencode(bin.path(), OPENCODE_VERSION);
        let url = closed_url();
        let options = default_options(&url, project.path());

        let check = check_without_url(&options, &Ok(opencode.clone())).await;
        assert_eq!(check.status, CheckStatus::Ok, "{check}");
        assert!(
            check
                .detail
                .contains(&format!("starts your opencode ({})", opencode.display())),
            "{check}"
        );

        // The whole report: no failing server check for the default URL nothing answers at.
        let report = run(&options).await;
        assert!(
            report.check(&format!("server {url}")).is_none(),
            "nothing at the default URL is not a server failure:\n{report}"
        );
        assert!(report.check("without --url").is_some(), "{report}");
    }

    #[tokio::test]
    async fn a_server_at_the_default_url_or_configured_servers_are_used() {
        let project = tempfile::tempdir().expect("tempdir");
        let url = serve(healthy(OPENCODE_VERSION)).await;
        let check = check_without_url(
            &default_options(&url, project.path()),
            &Err(FindError::NotOnPath),
        )
        .await;
        assert_eq!(check.status, CheckStatus::Ok, "{check}");
        assert!(
            check
                .detail
                .contains(&format!("uses the OpenCode server at {url}")),
            "{check}"
        );

        let configured = DoctorOptions {
            urls: vec!["http://127.0.0.1:1".to_string()],
            servers: ServerSource::Configured,
            default_url: closed_url(),
            ..default_options(&url, project.path())
        };
        let check = check_without_url(&configured, &Err(FindError::NotOnPath)).await;
        assert_eq!(check.status, CheckStatus::Ok, "{check}");
        assert!(
            check
                .detail
                .contains("configured servers (http://127.0.0.1:1)"),
            "{check}"
        );
    }

    #[tokio::test]
    async fn the_opencode_check_shows_its_version_and_path() {
        let bin = tempfile::tempdir().expect("tempdir");
        let opencode = fake_opencode(bin.path(), OPENCODE_VERSION);
        let check = check_opencode(&Ok(opencode.clone())).await;
        assert_eq!(check.status, CheckStatus::Ok, "{check}");
        assert!(check.detail.contains(OPENCODE_VERSION), "{check}");
        assert!(
            check.detail.contains(&opencode.display().to_string()),
            "{check}"
        );

        let older = tempfile::tempdir().expect("tempdir");
        let check = check_opencode(&Ok(fake_opencode(older.path(), "1.0.0"))).await;
        assert_eq!(check.status, CheckStatus::Warn, "{check}");

        let check = check_opencode(&Err(FindError::NotOnPath)).await;
        assert_eq!(check.status, CheckStatus::Warn, "{check}");
        assert!(check.detail.contains("not on PATH"), "{check}");
    }

    fn server_check<'a>(report: &'a DoctorReport, url: &str) -> &'a Check {
        report
            .check(&format!("server {url}"))
            .unwrap_or_else(|| panic!("no server check in\n{report}"))
    }

    #[tokio::test]
    async fn nothing_listening_fails_with_the_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        drop(listener);
        let project = tempfile::tempdir().expect("tempdir");

        let report = run(&options(&url, project.path())).await;

        let check = server_check(&report, &url);
        assert_eq!(check.status, CheckStatus::Fail, "{report}");
        assert!(check.detail.contains("could not connect"), "{report}");
        assert!(
            check
                .hint
                .as_deref()
                .is_some_and(|hint| hint.contains("opencode serve"))
        );
        assert!(
            report.check(&format!("version {url}")).is_none(),
            "no version without a server"
        );
        assert!(!report.ok());
    }

    #[tokio::test]
    async fn a_server_that_is_not_opencode_fails_so() {
        let url = serve(Router::new().fallback(|| async { "hello, I am a web page" })).await;
        let project = tempfile::tempdir().expect("tempdir");

        let report = run(&options(&url, project.path())).await;

        let check = server_check(&report, &url);
        assert_eq!(check.status, CheckStatus::Fail, "{report}");
        assert!(check.detail.contains("not OpenCode"), "{report}");
        assert!(!report.ok());
    }

    #[tokio::test]
    async fn a_server_that_wants_a_password_hints_at_the_variable() {
        let url =
            serve(Router::new().fallback(|| async { (StatusCode::UNAUTHORIZED, "Unauthorized") }))
                .await;
        let project = tempfile::tempdir().expect("tempdir");

        let report = run(&options(&url, project.path())).await;
        let check = server_check(&report, &url);
        assert_eq!(check.status, CheckStatus::Fail, "{report}");
        assert!(check.detail.contains("401"), "{report}");
        assert!(check.detail.contains("none was given"), "{report}");
        assert!(
            check
                .hint
                .as_deref()
                .is_some_and(|hint| hint.contains("OPENCODE_SERVER_PASSWORD")),
            "{report}"
        );

        let mut with_password = options(&url, project.path());
        with_password.password = Some("wrong".to_string());
        let report = run(&with_password).await;
        assert!(
            server_check(&report, &url)
                .detail
                .contains("the password given is wrong"),
            "{report}"
        );
    }

    #[tokio::test]
    async fn an_opencode_server_reports_its_version_and_providers() {
        let url = serve(
            healthy(OPENCODE_VERSION)
                .route(
                    "/config/providers",
                    get(|| async {
                        axum::Json(json!({
                            "providers": [{"id": "scripted", "name": "Scripted", "source": "config",
                                           "env": [], "options": {}, "models": {}}],
                            "default": {"scripted": "scripted-model"}
                        }))
                    }),
                )
                .route(
                    "/config",
                    get(|| async { axum::Json(json!({"model": "scripted/scripted-model"})) }),
                ),
        )
        .await;
        let project = tempfile::tempdir().expect("tempdir");

        let report = run(&options(&url, project.path())).await;

        assert_eq!(
            server_check(&report, &url).status,
            CheckStatus::Ok,
            "{report}"
        );
        let version = report.check(&format!("version {url}")).expect("version");
        assert_eq!(version.status, CheckStatus::Ok, "{report}");
        assert!(version.detail.contains(OPENCODE_VERSION));
        let providers = report
            .check(&format!("providers {url}"))
            .expect("providers");
        assert_eq!(providers.status, CheckStatus::Ok, "{report}");
        assert_eq!(
            providers.detail,
            "1 provider configured (scripted); default model scripted/scripted-model"
        );
    }

    #[tokio::test]
    async fn no_provider_fails_and_another_version_warns() {
        let url = serve(healthy("99.0.1").route(
            "/config/providers",
            get(|| async { axum::Json(json!({"providers": [], "default": {}})) }),
        ))
        .await;
        let project = tempfile::tempdir().expect("tempdir");

        let report = run(&options(&url, project.path())).await;

        let version = report.check(&format!("version {url}")).expect("version");
        assert_eq!(version.status, CheckStatus::Warn, "{report}");
        assert!(
            version.detail.contains("99.0.1") && version.detail.contains(OPENCODE_VERSION),
            "{report}"
        );
        assert!(version.detail.contains("newer"), "{report}");
        let providers = report
            .check(&format!("providers {url}"))
            .expect("providers");
        assert_eq!(providers.status, CheckStatus::Fail, "{report}");
        assert!(providers.hint.is_some());
        assert!(!report.ok());
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        let older = check_version("version".into(), "1.9.100");
        assert_eq!(older.status, CheckStatus::Warn);
        assert!(older.detail.contains("older than"), "{older}");
        assert_eq!(
            check_version("version".into(), &format!("v{OPENCODE_VERSION}")).status,
            CheckStatus::Ok
        );
        assert_eq!(
            check_version("version".into(), "local").status,
            CheckStatus::Warn
        );
        assert_eq!(
            compare_versions(&[1, 18], &[1, 18, 0]),
            Ordering::Equal,
            "a missing part is 0"
        );
        assert_eq!(version_numbers("1.2.3-beta.4"), Some(vec![1, 2, 3]));
    }

    #[test]
    fn an_invalid_config_fails_with_its_line() {
        let project = tempfile::tempdir().expect("tempdir");
        fs::create_dir(project.path().join(".opencode")).expect("mkdir");
        fs::write(
            project.path().join(".opencode").join(TOML_FILE),
            "[limits]\nslots = 0\n",
        )
        .expect("write");

        let check = check_config(project.path());

        assert_eq!(check.status, CheckStatus::Fail, "{check}");
        assert!(check.detail.contains("orchestrator.toml:2"), "{check}");
        assert!(check.detail.contains("limits.slots"), "{check}");
    }

    #[test]
    fn a_missing_or_valid_config_is_ok() {
        let project = tempfile::tempdir().expect("tempdir");
        let check = check_config(project.path());
        assert_eq!(check.status, CheckStatus::Ok);
        assert_eq!(check.detail, "no .opencode/orchestrator.toml (defaults)");

        fs::create_dir(project.path().join(".opencode")).expect("mkdir");
        fs::write(
            project.path().join(".opencode").join(JSON_FILE),
            r#"{"limits": {"slots": 2}}"#,
        )
        .expect("write");
        let check = check_config(project.path());
        assert_eq!(check.status, CheckStatus::Ok, "{check}");
        assert_eq!(check.detail, ".opencode/orchestrator.json is valid");
    }

    #[test]
    fn the_state_dir_is_probed_without_being_created() {
        let project = tempfile::tempdir().expect("tempdir");
        let check = check_state_dir(project.path());
        assert_eq!(check.status, CheckStatus::Ok, "{check}");
        assert!(check.detail.contains("will be created"), "{check}");
        assert!(!project.path().join(".opencode").exists());

        let directory = project.path().join(".opencode").join("orchestrator");
        fs::create_dir_all(&directory).expect("mkdir");
        let check = check_state_dir(project.path());
        assert_eq!(check.status, CheckStatus::Ok, "{check}");
        assert!(check.detail.ends_with("is writable"), "{check}");
        assert_eq!(
            fs::read_dir(&directory).expect("read_dir").count(),
            0,
            "the probe is removed"
        );

        // A file where the directory should be: nothing can be saved.
        fs::remove_dir(&directory).expect("rmdir");
        fs::write(&directory, "").expect("write");
        let check = check_state_dir(project.path());
        assert_eq!(check.status, CheckStatus::Fail, "{check}");
        assert!(check.detail.contains("not a directory"), "{check}");
    }

    #[test]
    fn the_task_command_is_found_or_hinted() {
        let project = tempfile::tempdir().expect("tempdir");
        let check = check_task_command(project.path());
        assert_eq!(check.status, CheckStatus::Warn);
        assert!(
            check
                .hint
                .as_deref()
                .is_some_and(|hint| hint.contains("orchestrator install"))
        );

        let commands = project.path().join(".opencode").join("command");
        fs::create_dir_all(&commands).expect("mkdir");
        fs::write(commands.join("task.md"), "---\n---\n$ARGUMENTS\n").expect("write");
        assert_eq!(check_task_command(project.path()).status, CheckStatus::Ok);
    }

    /// The statuses of `checks`.
    fn statuses(checks: &[Check]) -> Vec<CheckStatus> {
        checks.iter().map(|check| check.status).collect()
    }

    #[tokio::test]
    async fn the_plugin_its_binary_and_the_opencode_that_loaded_it() {
        use crate::cli::install::{PluginChoice, install_with};
        use CheckStatus::{Fail, Ok, Warn};

        let project = tempfile::tempdir().expect("tempdir");
        let checks = check_plugin(project.path(), None).await;
        assert_eq!(statuses(&checks), [Warn], "{checks:?}");
        assert!(checks[0].detail.contains("attach"), "{}", checks[0]);

        // Installed from a binary that answers `--version` (git stands in: a link, not a script written
        // now, which a concurrent fork could keep open for writing); no OpenCode has loaded it yet.
        let bin = tempfile::tempdir().expect("tempdir");
        let git = find_on_path("git").expect("git is on PATH");
        let binary = bin.path().join("recorded").join("orchestrator");
        fs::create_dir_all(binary.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(&git, &binary).expect("link");
        install_with(
            project.path(),
            &PluginChoice::With {
                binary: Some(binary.clone()),
            },
        )
        .expect("install");
        let checks = check_plugin(project.path(), None).await;
        assert_eq!(statuses(&checks), [Ok, Ok, Warn], "{checks:?}");
        assert!(checks[1].detail.contains("git version"), "{}", checks[1]);
        assert!(
            checks[1].detail.contains(binary.to_str().expect("utf-8")),
            "{}",
            checks[1]
        );
        assert!(checks[2].detail.contains("no OpenCode"), "{}", checks[2]);

        // Loaded by a running process (this one stands in for OpenCode), after the plugin was written.
        let loaded = project
            .path()
            .join(".opencode/orchestrator")
            .join(plugin::LOADED_FILE);
        let pid = std::process::id();
        fs::write(
            &loaded,
            format!("{{\"pid\":{pid},\"loaded\":\"2026-12-08T01:00:00.000Z\"}}\n"),
        )
        .expect("write");
        let plugin_file = project.path().join(PLUGIN_PATH);
        let set_modified = |path: &Path, time: std::time::SystemTime| {
            fs::File::options()
                .write(true)
                .open(path)
                .and_then(|file| file.set_modified(time))
                .expect("set the time");
        };
        let now = std::time::SystemTime::now();
        set_modified(&plugin_file, now - Duration::from_secs(60));
        let checks = check_plugin(project.path(), None).await;
        assert_eq!(statuses(&checks), [Ok, Ok, Ok], "{checks:?}");
        assert!(
            checks[2].detail.contains(&format!("pid {pid}")),
            "{}",
            checks[2]
        );

        // The plugin written again after OpenCode loaded it: that OpenCode runs the old one.
        set_modified(&plugin_file, now + Duration::from_secs(60));
        let check = &check_plugin(project.path(), None).await[2];
        assert_eq!(check.status, Warn, "{check}");
        assert!(
            check
                .hint
                .as_deref()
                .is_some_and(|hint| hint.contains("restart"))
        );

        // Loaded by an OpenCode that has ended.
        let mut ended = std::process::Command::new(&git)
            .arg("--version")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        let ended_pid = ended.id();
        ended.wait().expect("wait");
        fs::write(
            &loaded,
            format!("{{\"pid\":{ended_pid},\"loaded\":\"2026-12-08T01:00:00.000Z\"}}\n"),
        )
        .expect("write");
        let check = &check_plugin(project.path(), None).await[2];
        assert_eq!(check.status, Warn, "{check}");
        assert!(check.detail.contains("has ended"), "{check}");

        // The recorded binary gone: `orchestrator` on PATH, else nothing to start.
        fs::remove_file(&binary).expect("remove");
        let empty = std::env::join_paths([bin.path().join("empty")]).expect("path");
        let check = &check_plugin(project.path(), Some(&empty)).await[1];
        assert_eq!(check.status, Fail, "{check}");
        assert!(
            check.detail.contains(binary.to_str().expect("utf-8")),
            "it says where it looked: {check}"
        );
        let on_path = bin.path().join("on-path");
        fs::create_dir_all(&on_path).expect("mkdir");
        std::os::unix::fs::symlink(&git, on_path.join("orchestrator")).expect("link");
        let path = std::env::join_paths([bin.path().join("empty"), on_path]).expect("path");
        assert_eq!(
            check_plugin(project.path(), Some(&path)).await[1].status,
            Ok
        );

        // Another version's plugin, then one that is not ours.
        fs::write(
            &plugin_file,
            plugin::plugin_text(Some(&binary)) + "// older\n",
        )
        .expect("write");
        let check = &check_plugin(project.path(), Some(&path)).await[0];
        assert_eq!(check.status, Warn, "{check}");
        assert!(check.detail.contains("another version"), "{check}");
        fs::write(&plugin_file, "export const Mine = async () => ({})\n").expect("write");
        let checks = check_plugin(project.path(), Some(&path)).await;
        assert_eq!(statuses(&checks), [Warn], "{checks:?}");
        assert!(checks[0].detail.contains("not written by"), "{}", checks[0]);
    }

    #[tokio::test]
    async fn the_local_checks_always_run() {
        let project = tempfile::tempdir().expect("tempdir");
        let report = run(&DoctorOptions {
            urls: Vec::new(),
            password: None,
            project: project.path().to_path_buf(),
            servers: ServerSource::Given,
            default_url: closed_url(),
        })
        .await;
        for name in [
            "server",
            "opencode",
            "without --url",
            "ripgrep",
            "git",
            "config",
            "state dir",
            "/task command",
            "plugin",
        ] {
            assert!(report.check(name).is_some(), "no {name} check in\n{report}");
        }
        assert_eq!(
            report.check("server").expect("server").status,
            CheckStatus::Warn
        );
    }

    #[test]
    fn the_report_shows_one_line_per_check_and_hints_below() {
        let report = DoctorReport {
            checks: vec![
                Check::ok("ripgrep", "ripgrep 14.1.1 (/usr/bin/rg)"),
                Check::warn(
                    "/task command",
                    "not installed",
                    "run `orchestrator install`",
                ),
                Check::fail(
                    "config",
                    "2 invalid settings:\na.toml:2: limits.slots: too big\na.toml:3: limits.nudges: too big",
                    Some("fix them".to_string()),
                ),
            ],
        };
        assert_eq!(
            report.to_string(),
            "✓ ripgrep: ripgrep 14.1.1 (/usr/bin/rg)\n\
             ! /task command: not installed\n    hint: run `orchestrator install`\n\
             ✗ config: 2 invalid settings:\n    a.toml:2: limits.slots: too big\n    \
             a.toml:3: limits.nudges: too big\n    hint: fix them\n"
        );
        assert!(!report.ok());
        assert_eq!(report.with_status(CheckStatus::Warn).count(), 1);
        let without_failure = DoctorReport {
            checks: report.checks[..2].to_vec(),
        };
        assert!(without_failure.ok());
    }
}
