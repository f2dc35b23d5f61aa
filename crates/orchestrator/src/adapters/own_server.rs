//! The user's own `opencode serve`, started for one mission when no OpenCode server is running: their
//! `opencode` (`$OPENCODE_BIN`, else the first on `PATH`), with their configuration, providers and data
//! (nothing here sets `XDG_*` or writes a configuration), in the project, on a free loopback port; stopped
//! with its whole process group when the [`OwnServer`] is dropped.
//!
//! ```no_run
//! use std::path::Path;
//! use orchestrator::adapters::own_server::{self, OwnServer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let binary = own_server::find()?;
//! let server = OwnServer::start(&binary, Path::new("."), &own_server::new_password()).await?;
//! println!("opencode {} at {}", server.version(), server.url());
//! drop(server); // SIGTERM to its process group, SIGKILL after a grace period
//! # Ok(())
//! # }
//! ```
//!
//! Why a port is chosen here rather than `--port 0`: OpenCode 1.18.33's `--port 0` means "4096 if it is
//! free, else any", so a server started while nothing runs would take the default URL, where another
//! orchestrator (or the user's TUI) would then find it, and lose it when this mission ends. A port that
//! another process takes between the choice and OpenCode's bind makes OpenCode exit with `ServeError`; that
//! start is retried on a new port.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use opencode_client::{Client, Error as ClientError};

/// The environment variable that names the `opencode` binary to start, instead of the one on `PATH`.
pub const BINARY_VARIABLE: &str = "OPENCODE_BIN";

/// How long the server may take to say where it listens and to answer its health check: a first start
/// (database migrations, plugins) on a busy machine takes tens of seconds.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the server has to exit after SIGTERM before its process group is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// How many times a start is retried when another process took the chosen port first.
const PORT_ATTEMPTS: usize = 3;

/// How many lines of the server's output are kept for an error message.
const OUTPUT_LINES: usize = 40;

/// Why no `opencode` binary can be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FindError {
    /// No executable `opencode` in any directory of `PATH`.
    #[error("no `opencode` on PATH")]
    NotOnPath,
    /// `$OPENCODE_BIN` names something that is not an executable file.
    #[error("{BINARY_VARIABLE} names {}, which is not an executable file", path.display())]
    NotExecutable {
        /// What the variable names.
        path: PathBuf,
    },
}

/// Why the user's `opencode serve` did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The process could not be started.
    #[error("cannot start `{} serve`", binary.display())]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It exited before it said where it listens.
    #[error("`{} serve` exited ({status}) before it said where it listens; its output:\n{output}", binary.display())]
    Exited {
        /// The binary.
        binary: PathBuf,
        /// How it exited.
        status: ExitStatus,
        /// The end of what it printed.
        output: String,
    },
    /// It did not say where it listens in time.
    #[error("`{} serve` did not say where it listens within {after:?}; its output:\n{output}", binary.display())]
    Silent {
        /// The binary.
        binary: PathBuf,
        /// How long it was given.
        after: Duration,
        /// The end of what it printed.
        output: String,
    },
    /// It listens but its health check did not pass in time.
    #[error("your opencode at {url} did not pass its health check within {after:?}")]
    Unhealthy {
        /// Where it listens.
        url: String,
        /// How long it was given.
        after: Duration,
        /// The last health check's error.
        #[source]
        source: ClientError,
    },
}

/// The `opencode` to start: `$OPENCODE_BIN` when set, else the first executable `opencode` on `PATH`.
///
/// # Errors
///
/// [`FindError::NotExecutable`] when `$OPENCODE_BIN` names something else than an executable file,
/// [`FindError::NotOnPath`] when `PATH` has none.
pub fn find() -> Result<PathBuf, FindError> {
    if let Some(path) = std::env::var_os(BINARY_VARIABLE).filter(|value| !value.is_empty()) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(FindError::NotExecutable { path })
        };
    }
    let path = std::env::var_os("PATH").ok_or(FindError::NotOnPath)?;
    std::env::split_paths(&path)
        .filter(|directory| !directory.as_os_str().is_empty())
        .map(|directory| directory.join("opencode"))
        .find(|candidate| is_executable(candidate))
        .ok_or(FindError::NotOnPath)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// The first line of `binary --version`, or `None` when it does not run, fails or takes longer than
/// `limit` (OpenCode's single 150 MB binary takes seconds to start on a busy machine).
pub async fn version(binary: &Path, limit: Duration) -> Option<String> {
    let output = tokio::process::Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, output).await.ok()?.ok()?;
    if !output.status.success() {
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .next()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
}

/// A fresh password for a server only this process talks to: 128 random bits from the kernel (a clock and
/// process id hash where `/dev/urandom` cannot be read).
pub fn new_password() -> String {
    let mut bytes = [0u8; 16];
    let random =
        std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut bytes));
    if random.is_err() {
        use std::hash::{BuildHasher as _, Hasher as _};
        for chunk in bytes.chunks_mut(8) {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_nanos()),
            );
            hasher.write_u32(std::process::id());
            chunk.copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The end of a server's output, shared with the threads that read it.
#[derive(Debug, Clone, Default)]
struct Output(Arc<Mutex<VecDeque<String>>>);

impl Output {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == OUTPUT_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A running `opencode serve` of the user's, in its own process group. Dropping it stops the group:
/// SIGTERM, then SIGKILL for whatever is left after [`STOP_GRACE`].
#[derive(Debug)]
pub struct OwnServer {
    child: Option<Child>,
    url: String,
    password: String,
    binary: PathBuf,
    version: String,
    output: Output,
}

impl OwnServer {
    /// Starts `binary serve --hostname 127.0.0.1 --port <free>` in `project` with `password`, reads where
    /// it listens from its output ("opencode server listening on http://127.0.0.1:PORT"), and waits for its
    /// health check, for at most [`STARTUP_TIMEOUT`] in all.
    ///
    /// # Errors
    ///
    /// [`StartError`] when it cannot be started, exits or stays silent, or does not become healthy; the
    /// process group is stopped first.
    pub async fn start(
        binary: &Path,
        project: &Path,
        password: &str,
    ) -> Result<OwnServer, StartError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut attempt = 0;
        let mut server = loop {
            attempt += 1;
            let port = free_port().map_err(|source| StartError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
            match Self::spawn(binary, project, password, port, deadline).await {
                Err(StartError::Exited { .. }) if attempt < PORT_ATTEMPTS && port_taken(port) => {
                    tracing::info!(port, "another process took the port first; starting again");
                }
                other => break other?,
            }
        };
        let client = Client::builder(&server.url)
            .password(password)
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| StartError::Unhealthy {
                url: server.url.clone(),
                after: STARTUP_TIMEOUT,
                source,
            })?;
        loop {
            match client.health().await {
                Ok(health) if health.healthy => {
                    server.version = health.version;
                    return Ok(server);
                }
                Ok(_) | Err(_) if Instant::now() < deadline => {
                    if let Some(status) = server.exited() {
                        return Err(StartError::Exited {
                            binary: server.binary.clone(),
                            status,
                            output: server.output.text(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(health) => {
                    return Err(StartError::Unhealthy {
                        url: server.url.clone(),
                        after: STARTUP_TIMEOUT,
                        source: ClientError::NotOpenCode {
                            url: server.url.clone(),
                            detail: format!(
                                "it says it is not healthy (version {})",
                                health.version
                            ),
                        },
                    });
                }
                Err(source) => {
                    return Err(StartError::Unhealthy {
                        url: server.url.clone(),
                        after: STARTUP_TIMEOUT,
                        source,
                    });
                }
            }
        }
    }

    /// Starts the process and waits until it says where it listens (or exits, or `deadline` passes).
    async fn spawn(
        binary: &Path,
        project: &Path,
        password: &str,
        port: u16,
        deadline: Instant,
    ) -> Result<OwnServer, StartError> {
        let mut child = Command::new(binary)
            .args(["serve", "--hostname", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .current_dir(project)
            .env("OPENCODE_SERVER_PASSWORD", password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches the orchestrator only (which stops the
            // mission first, then this server), and stopping the group stops what the server started.
            .process_group(0)
            .spawn()
            .map_err(|source| StartError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let output = Output::default();
        let (listening, url) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            read_lines(stdout, output.clone(), Some(listening));
        }
        if let Some(stderr) = child.stderr.take() {
            read_lines(stderr, output.clone(), None);
        }
        let mut server = OwnServer {
            child: Some(child),
            url: String::new(),
            password: password.to_string(),
            binary: binary.to_path_buf(),
            version: String::new(),
            output,
        };
        loop {
            match url.try_recv() {
                Ok(url) => {
                    server.url = url;
                    return Ok(server);
                }
                Err(mpsc::TryRecvError::Disconnected) | Err(mpsc::TryRecvError::Empty) => {}
            }
            if let Some(status) = server.exited() {
                // Its last lines may still be on their way from the reader threads.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(StartError::Exited {
                    binary: binary.to_path_buf(),
                    status,
                    output: server.output.text(),
                });
            }
            if Instant::now() >= deadline {
                return Err(StartError::Silent {
                    binary: binary.to_path_buf(),
                    after: STARTUP_TIMEOUT,
                    output: server.output.text(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The password it was started with.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The binary it runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Its version, as its health check reported it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Its process id, which is also its process group's, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines it printed.
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// How it exited, if it did.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Stops its process group: SIGTERM, up to [`STOP_GRACE`] for it to exit, then SIGKILL to whatever of
    /// the group is left. Does nothing the second time.
    pub fn stop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;

        let Some(mut child) = self.child.take() else {
            return;
        };
        let Ok(group) = i32::try_from(child.id()) else {
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        let group = Pid::from_raw(group);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        // What the server started and left behind, or the server itself past its grace period.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on now, on 127.0.0.1.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether something listens on `port` now.
fn port_taken(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_err()
}

/// Reads `from` line by line on a thread until it ends: each line is kept in `output` and logged; the
/// first URL goes to `listening`.
fn read_lines(
    from: impl std::io::Read + Send + 'static,
    output: Output,
    mut listening: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = listening.as_ref().and_then(|_| listening_url(&line))
                && let Some(sender) = listening.take()
            {
                let _ = sender.send(url);
            }
            tracing::info!(target: "orchestrator::opencode", "{line}");
            output.push(line);
        }
    });
}

/// The URL in "opencode server listening on http://127.0.0.1:4096", if the line has one.
fn listening_url(line: &str) -> Option<String> {
    line.split_whitespace()
        .find(|word| word.starts_with("http://") || word.starts_with("https://"))
        .map(|url| url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_url() {
        assert_eq!(
            listening_url("opencode server listening on http://127.0.0.1:43587").as_deref(),
            Some("http://127.0.0.1:43587")
        );
        assert_eq!(
            listening_url("Warning: OPENCODE_SERVER_PASSWORD is not set; server is unsecured."),
            None
        );
    }

    #[test]
    fn passwords_differ_and_are_long() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn the_output_keeps_its_last_lines() {
        let output = Output::default();
        for n in 0..OUTPUT_LINES + 5 {
            output.push(format!("line {n}"));
        }
        let text = output.text();
        assert!(text.starts_with("line 5\n"), "{text}");
        assert!(
            text.ends_with(&format!("line {}", OUTPUT_LINES + 4)),
            "{text}"
        );
    }

    /// A fake `opencode` that prints `script`'s output, for the start's failure paths.
    fn fake_opencode(directory: &Path, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = directory.join("opencode");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[tokio::test]
    async fn a_server_that_exits_at_once_is_reported_with_its_output() {
        let directory = tempfile::tempdir().expect("tempdir");
        let binary = fake_opencode(
            directory.path(),
            "echo 'Error: Unexpected error' >&2; echo ConfigInvalidError >&2; exit 1",
        );
        let started = Instant::now();
        let error = OwnServer::start(&binary, directory.path(), "p")
            .await
            .expect_err("it exits");
        assert!(started.elapsed() < Duration::from_secs(10));
        match &error {
            StartError::Exited { status, output, .. } => {
                assert_eq!(status.code(), Some(1));
                assert!(output.contains("ConfigInvalidError"), "{output}");
            }
            other => panic!("not Exited: {other}"),
        }
    }

    #[tokio::test]
    async fn the_server_gets_the_project_the_port_and_the_password() {
        let directory = tempfile::tempdir().expect("tempdir");
        let seen = directory.path().join("seen");
        // Records what it was given, then exits: the start reports that it exited.
        let binary = fake_opencode(
            directory.path(),
            &format!(
                "echo \"$(pwd -P)|$*|$OPENCODE_SERVER_PASSWORD\" > {}; exit 3",
                seen.display()
            ),
        );
        let project = tempfile::tempdir().expect("tempdir");
        let error = OwnServer::start(&binary, project.path(), "secret")
            .await
            .expect_err("it exits");
        assert!(matches!(error, StartError::Exited { .. }), "{error}");
        let seen = std::fs::read_to_string(seen).expect("it ran");
        let project = project.path().canonicalize().expect("canonical");
        let (directory, rest) = seen.trim().split_once('|').expect("fields");
        assert_eq!(Path::new(directory), project);
        let (args, password) = rest.split_once('|').expect("fields");
        assert!(
            args.starts_with("serve --hostname 127.0.0.1 --port "),
            "{args}"
        );
        let port: u16 = args.rsplit(' ').next().unwrap().parse().expect("a port");
        assert_ne!(port, 4096, "never the default port");
        assert_eq!(password, "secret");
    }

    #[tokio::test]
    async fn a_listening_server_that_is_not_healthy_is_stopped() {
        let directory = tempfile::tempdir().expect("tempdir");
        // Says it listens on a port nothing answers on, then sleeps: the health check cannot pass.
        let port = free_port().expect("a port");
        let binary = fake_opencode(
            directory.path(),
            &format!("echo 'opencode server listening on http://127.0.0.1:{port}'; exec sleep 600"),
        );
        let mut server = OwnServer::spawn(
            &binary,
            directory.path(),
            "p",
            port,
            Instant::now() + Duration::from_secs(10),
        )
        .await
        .expect("it says where it listens");
        assert_eq!(server.url(), format!("http://127.0.0.1:{port}"));
        let pid = server.pid().expect("running");
        let started = Instant::now();
        server.stop();
        assert!(started.elapsed() < STOP_GRACE, "sleep ends at SIGTERM");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the process is gone"
        );
    }
}
