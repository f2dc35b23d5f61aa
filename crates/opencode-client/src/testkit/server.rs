//! `OpencodeServer`: a real `opencode serve`, isolated from the user's OpenCode, for tests and demos.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Client, Error};

/// The `opencode-ai` npm package version the testkit installs and the tests are written against.
pub const OPENCODE_VERSION: &str = "1.18.33";

/// The provider and model names the testkit's configuration gives the scripted model.
pub const SCRIPTED_MODEL: &str = "scripted/scripted-model";

/// Why an OpenCode server could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// `$OPENCODE_BIN` names a file that is not there.
    #[error("OPENCODE_BIN is set to {path}, which does not exist")]
    BinaryMissing {
        /// The path in `$OPENCODE_BIN`.
        path: PathBuf,
    },
    /// No `opencode` was found and npm is not available to install it.
    #[error(
        "no opencode {version} found (checked $OPENCODE_BIN, PATH and {cache}) and npm is not available to \
         install it: install Node.js and npm, or set OPENCODE_BIN to an opencode {version} binary"
    )]
    NpmMissing {
        /// The version wanted.
        version: &'static str,
        /// The cache directory searched.
        cache: PathBuf,
    },
    /// `npm install` failed.
    #[error("npm install opencode-ai@{version} into {directory} failed ({status}): {output}")]
    InstallFailed {
        /// The version wanted.
        version: &'static str,
        /// Where it was installed.
        directory: PathBuf,
        /// npm's exit status.
        status: String,
        /// The end of npm's output.
        output: String,
    },
    /// The npm package was installed but holds no binary for this platform.
    #[error("the opencode-ai package in {directory} has no opencode binary for this platform")]
    NoBinaryForPlatform {
        /// The installed package's directory.
        directory: PathBuf,
    },
    /// A file or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The server did not say where it listens in time, or exited first.
    #[error("opencode serve did not start within {after:?}: {reason}. Its log ({log}):\n{tail}")]
    StartTimeout {
        /// How long it was given.
        after: Duration,
        /// What happened.
        reason: String,
        /// Its log file.
        log: PathBuf,
        /// The end of the log.
        tail: String,
    },
    /// The server started but its health check failed.
    #[error("opencode serve started but its health check failed: {source}")]
    Unhealthy {
        /// The client error.
        #[source]
        source: Error,
    },
}

fn io_error(action: impl Into<String>) -> impl FnOnce(io::Error) -> LaunchError {
    let action = action.into();
    move |source| LaunchError::Io { action, source }
}

/// Where the testkit caches the npm package: `$ORCHESTRA_CACHE_DIR`, else `$XDG_CACHE_HOME/orchestra`, else
/// `~/.cache/orchestra`, else the system temp directory.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ORCHESTRA_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("orchestra");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".cache").join("orchestra");
    }
    std::env::temp_dir().join("orchestra-cache")
}

/// The first executable called `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn version_of(binary: &Path) -> Option<String> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The `opencode` binary inside an installed `opencode-ai` package directory (`node_modules` holds one
/// platform package, `opencode-<os>-<arch>`, with `bin/opencode`).
fn binary_in(install: &Path) -> Option<PathBuf> {
    let modules = install.join("node_modules");
    let mut candidates: Vec<PathBuf> = fs::read_dir(&modules)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("opencode-") && name != "opencode-ai")
        })
        .map(|path| path.join("bin").join("opencode"))
        .filter(|binary| binary.is_file())
        .collect();
    // Prefer the plain build over `-baseline` (for old CPUs) when both are there.
    candidates.sort_by_key(|path| path.to_string_lossy().contains("baseline"));
    candidates.into_iter().next()
}

/// Finds an `opencode` binary: `$OPENCODE_BIN`; else `opencode` on `PATH` if it is the pinned version; else
/// the pinned npm package in [`cache_dir`], installed there with npm first if missing (a one-time download of
/// about 350 MB; npm's progress goes to stderr).
///
/// # Errors
///
/// [`LaunchError`] saying what was tried.
pub fn find_or_install_opencode() -> Result<PathBuf, LaunchError> {
    if let Some(path) = std::env::var_os("OPENCODE_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(LaunchError::BinaryMissing { path })
        };
    }
    if let Some(binary) = find_on_path("opencode")
        && version_of(&binary).as_deref() == Some(OPENCODE_VERSION)
    {
        return Ok(binary);
    }
    let cache = cache_dir();
    let install = cache.join(format!("opencode-ai-{OPENCODE_VERSION}"));
    if let Some(binary) = binary_in(&install) {
        return Ok(binary);
    }
    let npm = find_on_path("npm").ok_or_else(|| LaunchError::NpmMissing {
        version: OPENCODE_VERSION,
        cache: cache.clone(),
    })?;
    fs::create_dir_all(&cache).map_err(io_error(format!("create {}", cache.display())))?;
    // Install beside the final place and rename: a concurrent installer (another test binary) either wins
    // the rename or finds the package there; neither sees half an install.
    let staging = cache.join(format!(
        ".installing-{}-{}",
        std::process::id(),
        random_password()
    ));
    fs::create_dir_all(&staging).map_err(io_error(format!("create {}", staging.display())))?;
    eprintln!(
        "opencode-client testkit: installing opencode-ai@{OPENCODE_VERSION} with npm into {} (one time, about 350 MB)",
        install.display()
    );
    let output = Command::new(&npm)
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&staging)
        .arg(format!("opencode-ai@{OPENCODE_VERSION}"))
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(format!("run {}", npm.display())))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let tail: String = text
            .chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let _ = fs::remove_dir_all(&staging);
        return Err(LaunchError::InstallFailed {
            version: OPENCODE_VERSION,
            directory: install,
            status: output.status.to_string(),
            output: tail,
        });
    }
    if binary_in(&staging).is_none() {
        let _ = fs::remove_dir_all(&staging);
        return Err(LaunchError::NoBinaryForPlatform { directory: staging });
    }
    if fs::rename(&staging, &install).is_err() {
        // Another installer won the race; use its copy.
        let _ = fs::remove_dir_all(&staging);
    }
    binary_in(&install).ok_or(LaunchError::NoBinaryForPlatform { directory: install })
}

/// The OpenCode configuration the testkit writes: the scripted model as the only provider and model, no
/// auto-update, no sharing, edits and commands allowed in the project and nothing outside it.
pub fn scripted_config(model_base_url: &str) -> Value {
    json!({
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "scripted": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Scripted model (opencode-client testkit)",
                "options": { "baseURL": model_base_url, "apiKey": "scripted" },
                "models": {
                    "scripted-model": {
                        "name": "Scripted model",
                        "tool_call": true,
                        "limit": { "context": 128000, "output": 4096 }
                    }
                }
            }
        },
        "enabled_providers": ["scripted"],
        "model": SCRIPTED_MODEL,
        "small_model": SCRIPTED_MODEL,
        "autoupdate": false,
        "share": "disabled",
        "permission": { "edit": "allow", "bash": "allow", "external_directory": "deny" }
    })
}

/// The price of the scripted model in OpenCode's configuration (the model's `cost`), in the provider's
/// currency per million tokens, so that OpenCode computes the `cost` of its answers
/// ([`OpencodeServerBuilder::model_price`]).
///
/// ```
/// use opencode_client::testkit::ModelPrice;
///
/// // 3 per million input tokens, 15 per million output tokens, cache reads at 0.3 and writes at 3.75.
/// let price = ModelPrice::new(3.0, 15.0).cache(0.3, 3.75);
/// # let _ = price;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ModelPrice {
    /// Per million input tokens read without the cache.
    pub input: f64,
    /// Per million output tokens (OpenCode charges reasoning tokens at this price too).
    pub output: f64,
    /// Per million input tokens read from the cache.
    pub cache_read: f64,
    /// Per million input tokens written to the cache.
    pub cache_write: f64,
}

impl ModelPrice {
    /// `input` and `output` per million tokens; the cache costs nothing.
    pub fn new(input: f64, output: f64) -> ModelPrice {
        ModelPrice {
            input,
            output,
            cache_read: 0.0,
            cache_write: 0.0,
        }
    }

    /// With `read` and `write` per million tokens read from and written to the cache.
    #[must_use]
    pub fn cache(mut self, read: f64, write: f64) -> ModelPrice {
        self.cache_read = read;
        self.cache_write = write;
        self
    }

    /// What OpenCode 1.18.33 charges for `tokens` at this price: input, output, reasoning (at the output
    /// price), cache reads and cache writes, each times its price per million.
    ///
    /// ```
    /// use opencode_client::Tokens;
    /// use opencode_client::testkit::ModelPrice;
    ///
    /// let tokens: Tokens = serde_json::from_str(
    ///     r#"{"input": 800, "output": 250, "reasoning": 50, "cache": {"read": 200, "write": 0}}"#,
    /// ).unwrap();
    /// let cost = ModelPrice::new(3.0, 15.0).cache(0.3, 3.75).cost_of(&tokens);
    /// assert!((cost - 0.00696).abs() < 1e-12);
    /// ```
    pub fn cost_of(&self, tokens: &crate::Tokens) -> f64 {
        // Token counts stay far below 2^52, where the conversion would start to round.
        #[allow(clippy::cast_precision_loss)]
        let per_million = |count: u64, price: f64| count as f64 * price / 1_000_000.0;
        per_million(tokens.input, self.input)
            + per_million(tokens.output, self.output)
            + per_million(tokens.reasoning, self.output)
            + per_million(tokens.cache.read, self.cache_read)
            + per_million(tokens.cache.write, self.cache_write)
    }

    /// The model's `cost` object in OpenCode's configuration.
    pub fn to_config(&self) -> Value {
        json!({
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
        })
    }
}

/// Merges `patch` into `base`: objects key by key, anything else replaced.
pub fn merge_json(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge_json(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// Settings for an [`OpencodeServer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct OpencodeServerBuilder {
    project: Option<PathBuf>,
    model_base_url: Option<String>,
    config: Option<Value>,
    password: Option<String>,
    startup_timeout: Duration,
    price: Option<ModelPrice>,
}

impl OpencodeServerBuilder {
    /// Serve this project directory (default: a fresh temporary directory, removed when the server is
    /// dropped). Its `opencode.json` is overwritten with the testkit's configuration.
    pub fn project(mut self, directory: impl Into<PathBuf>) -> Self {
        self.project = Some(directory.into());
        self
    }

    /// Point the configuration at this model (the `/v1` URL of a [`ScriptedModel`](super::ScriptedModel)).
    pub fn model(mut self, base_url: impl Into<String>) -> Self {
        self.model_base_url = Some(base_url.into());
        self
    }

    /// Merge this JSON into the configuration (e.g. `{"permission": {"bash": "ask"}}`).
    pub fn config(mut self, patch: Value) -> Self {
        self.config = Some(patch);
        self
    }

    /// Give the scripted model this price, so that OpenCode computes the `cost` of its answers from the
    /// tokens it reports (see [`Reply::with_usage`](super::Reply::with_usage)). Without a price the cost is 0.
    /// A [`config`](Self::config) patch that sets the model's `cost` wins.
    pub fn model_price(mut self, price: ModelPrice) -> Self {
        self.price = Some(price);
        self
    }

    /// The server's password (default: a fresh random one, so every test exercises Basic auth); `None` runs
    /// an unsecured server.
    pub fn password(mut self, password: Option<String>) -> Self {
        self.password = password;
        self
    }

    /// How long the server may take to start and answer its health check (default 90 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Finds (or installs) `opencode` and starts the server.
    ///
    /// # Errors
    ///
    /// [`LaunchError`]: no binary and no npm, a failed install, a server that does not start or is not
    /// healthy in time (the error holds the end of its log).
    pub async fn start(self) -> Result<OpencodeServer, LaunchError> {
        let binary = tokio::task::spawn_blocking(find_or_install_opencode)
            .await
            .map_err(|error| LaunchError::Io {
                action: "find opencode".to_string(),
                source: io::Error::other(error.to_string()),
            })??;
        let home = tempfile::Builder::new()
            .prefix("opencode-testkit-")
            .tempdir()
            .map_err(io_error("create a temporary directory"))?;
        let (project, owned_project) = match self.project {
            Some(project) => {
                fs::create_dir_all(&project)
                    .map_err(io_error(format!("create {}", project.display())))?;
                (project, false)
            }
            None => {
                let project = home.path().join("project");
                fs::create_dir_all(&project)
                    .map_err(io_error(format!("create {}", project.display())))?;
                // A git repository: OpenCode keeps its per-session snapshots (and so
                // `/session/{id}/diff`) only for projects under git.
                init_git(&project)?;
                (project, true)
            }
        };
        let mut config = scripted_config(
            self.model_base_url
                .as_deref()
                .unwrap_or("http://127.0.0.1:9/v1"),
        );
        if let Some(price) = &self.price {
            let (provider, model) = SCRIPTED_MODEL
                .split_once('/')
                .expect("the scripted model's name is provider/model");
            config["provider"][provider]["models"][model]["cost"] = price.to_config();
        }
        if let Some(patch) = &self.config {
            merge_json(&mut config, patch);
        }
        // The project's configuration, and the same as the server's global one: OpenCode serves each
        // directory a client names (`Client::with_directory`) with the configuration found there and the
        // global one, so a directory outside the project (a git worktree, say) uses the scripted model too.
        let global_config = home.path().join("config").join("opencode");
        fs::create_dir_all(&global_config)
            .map_err(io_error(format!("create {}", global_config.display())))?;
        for config_path in [
            project.join("opencode.json"),
            global_config.join("opencode.json"),
        ] {
            fs::write(
                &config_path,
                serde_json::to_vec_pretty(&config).expect("JSON values serialize"),
            )
            .map_err(io_error(format!("write {}", config_path.display())))?;
        }
        let password = self.password;
        let log_path = home.path().join("opencode.log");
        let server = spawn(
            &binary,
            &project,
            home.path(),
            password.as_deref(),
            &log_path,
            self.startup_timeout,
        )?;
        let (child, url) = server;
        let mut server = OpencodeServer {
            child: Some(child),
            url,
            password,
            project,
            owned_project,
            log: log_path,
            binary,
            _home: home,
        };
        let deadline = Instant::now() + self.startup_timeout;
        let client = server.client();
        loop {
            match client.health().await {
                Ok(_) => return Ok(server),
                Err(error) if Instant::now() >= deadline => {
                    server.kill();
                    return Err(LaunchError::Unhealthy { source: error });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// Makes `directory` a git repository with one commit of what is in it (OpenCode's snapshots, and so
/// session diffs, need one; the orchestrator's worktrees start from it), the testkit's `opencode.json`
/// excluded. Does nothing if git is not installed.
pub fn init_git(directory: &Path) -> Result<(), LaunchError> {
    if find_on_path("git").is_none() {
        return Ok(());
    }
    let git = |args: &[&str]| -> Result<(), LaunchError> {
        let output = Command::new("git")
            .args(args)
            .current_dir(directory)
            .env("GIT_AUTHOR_NAME", "testkit")
            .env("GIT_AUTHOR_EMAIL", "testkit@localhost")
            .env("GIT_COMMITTER_NAME", "testkit")
            .env("GIT_COMMITTER_EMAIL", "testkit@localhost")
            .stdin(Stdio::null())
            .output()
            .map_err(io_error(format!("run git {}", args.join(" "))))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(LaunchError::Io {
                action: format!("git {} in {}", args.join(" "), directory.display()),
                source: io::Error::other(String::from_utf8_lossy(&output.stderr).into_owned()),
            })
        }
    };
    git(&["init", "--quiet", "--initial-branch=main"])?;
    // The testkit's own `opencode.json` (written when a server starts) is not the project's: excluded,
    // so it neither makes the working tree dirty nor ends up in a commit. The exclude file is shared by
    // every worktree of the repository.
    let exclude = directory.join(".git").join("info").join("exclude");
    let mut rules = fs::read_to_string(&exclude).unwrap_or_default();
    if !rules.is_empty() && !rules.ends_with('\n') {
        rules.push('\n');
    }
    rules.push_str("/opencode.json\n");
    fs::create_dir_all(exclude.parent().expect("a file in .git/info"))
        .and_then(|()| fs::write(&exclude, rules))
        .map_err(io_error(format!("write {}", exclude.display())))?;
    git(&["add", "--all"])?;
    git(&[
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        "scratch project",
    ])
}

/// Starts `opencode serve` in its own process group and waits for the line that says where it listens.
fn spawn(
    binary: &Path,
    project: &Path,
    home: &Path,
    password: Option<&str>,
    log_path: &Path,
    timeout: Duration,
) -> Result<(Child, String), LaunchError> {
    use std::os::unix::process::CommandExt;

    let mut command = Command::new(binary);
    // OpenCode's find and grep tools run ripgrep from PATH, and without one it tries to download it (which
    // fails offline): put `$RIPGREP_BIN`'s directory first on the server's PATH, or warn that there is none.
    match std::env::var_os("RIPGREP_BIN")
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .or_else(|| find_on_path("rg"))
    {
        Some(rg) => {
            if let Some(directory) = rg.parent() {
                let mut paths = vec![directory.to_path_buf()];
                paths.extend(std::env::split_paths(
                    &std::env::var_os("PATH").unwrap_or_default(),
                ));
                if let Ok(joined) = std::env::join_paths(paths) {
                    command.env("PATH", joined);
                }
            }
        }
        None => eprintln!(
            "opencode-client testkit: ripgrep (rg) is not on PATH and RIPGREP_BIN is not set; OpenCode's \
             find and grep tools will fail (install Debian's or Homebrew's `ripgrep`)"
        ),
    }
    command
        .args(["serve", "--hostname", "127.0.0.1", "--port", "0"])
        .current_dir(project)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("OPENCODE_DISABLE_AUTOUPDATE", "1")
        // Offline: without these the first prompt waits on a models.dev fetch that cannot succeed, and a
        // language server download.
        .env("OPENCODE_DISABLE_MODELS_FETCH", "1")
        .env("OPENCODE_DISABLE_LSP_DOWNLOAD", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Its own process group, so that dropping the server kills everything it started.
        .process_group(0);
    match password {
        Some(password) => command.env("OPENCODE_SERVER_PASSWORD", password),
        None => command.env_remove("OPENCODE_SERVER_PASSWORD"),
    };
    let log = File::create(log_path).map_err(io_error(format!("create {}", log_path.display())))?;
    command.stderr(log.try_clone().map_err(io_error("open the log"))?);
    let mut child = command
        .spawn()
        .map_err(io_error(format!("start {} serve", binary.display())))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (sender, receiver) = mpsc::channel();
    // The reader forwards the listening URL, then copies the rest of stdout to the log until the server exits.
    std::thread::spawn(move || {
        let mut log = log;
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(log, "{line}");
            if !sent
                && let Some(url) = line
                    .split_whitespace()
                    .find(|word| word.starts_with("http://"))
            {
                let _ = sender.send(url.trim_end_matches('/').to_string());
                sent = true;
            }
        }
    });
    let tail = |log_path: &Path| {
        let text = fs::read_to_string(log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    match receiver.recv_timeout(timeout) {
        Ok(url) => Ok((child, url)),
        Err(error) => {
            let reason = match child.try_wait() {
                Ok(Some(status)) => format!("it exited with {status}"),
                _ => format!("it printed no listening URL ({error})"),
            };
            kill_group(&mut child);
            Err(LaunchError::StartTimeout {
                after: timeout,
                reason,
                log: log_path.to_path_buf(),
                tail: tail(log_path),
            })
        }
    }
}

fn kill_group(child: &mut Child) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;

    if let Ok(pid) = i32::try_from(child.id()) {
        // The group's id is the child's pid (`process_group(0)`).
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A running `opencode serve`, isolated from the user's OpenCode (its own XDG directories in a temporary
/// directory), listening on 127.0.0.1. Dropping it kills its whole process group, also when a test panics.
///
/// ```no_run
/// use opencode_client::testkit::{OpencodeServer, Reply, Rule, Match, Script, ScriptedModel};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let model = ScriptedModel::start(Script::new().fallback(Reply::text("Hello from the script"))).await?;
/// let server = OpencodeServer::builder().model(model.base_url()).start().await?;
/// let client = server.client();
/// let session = client.create_session(&Default::default()).await?;
/// let reply = client.prompt(&session.id, &opencode_client::Prompt::text("hi")).await?;
/// assert_eq!(reply.text(), "Hello from the script");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct OpencodeServer {
    child: Option<Child>,
    url: String,
    password: Option<String>,
    project: PathBuf,
    owned_project: bool,
    log: PathBuf,
    binary: PathBuf,
    _home: tempfile::TempDir,
}

impl OpencodeServer {
    /// Settings for a server.
    pub fn builder() -> OpencodeServerBuilder {
        OpencodeServerBuilder {
            project: None,
            model_base_url: None,
            config: None,
            password: Some(random_password()),
            startup_timeout: Duration::from_secs(90),
            price: None,
        }
    }

    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its password, if it has one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// A client for it, with its password.
    pub fn client(&self) -> Client {
        let mut builder = Client::builder(&self.url);
        if let Some(password) = &self.password {
            builder = builder.password(password.clone());
        }
        builder.build().expect("the server's own URL is valid")
    }

    /// The project directory it serves.
    pub fn project_dir(&self) -> &Path {
        &self.project
    }

    /// Whether the project directory is the server's own temporary one.
    pub fn owns_project(&self) -> bool {
        self.owned_project
    }

    /// The `opencode` binary it runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// What the server printed (stdout and stderr), for a failing test's message.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's process id, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server's process group now (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

impl Drop for OpencodeServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A password nobody guesses, from the clock and the process id (tests need unguessable, not
/// cryptographic: the server listens on 127.0.0.1 only).
fn random_password() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("testkit-{:016x}", hasher.finish())
}
