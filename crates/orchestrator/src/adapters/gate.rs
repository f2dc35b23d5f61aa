//! The deterministic review gate: the project's check commands, run with a timeout.
//!
//! Stage 7 of a mission runs these before the Reviewer agent reads the diff: [`detect`] picks the checks a
//! project's files call for, [`Gate::run`] runs each of them in the project directory and keeps its outcome and
//! output, and [`GateReport::for_reviewer`] turns the result into the text the Reviewer reads.
//!
//! ```no_run
//! # async fn review(dir: &std::path::Path) {
//! use std::time::Duration;
//!
//! use orchestrator::adapters::gate::{Gate, detect};
//!
//! let report = Gate::new(detect(dir)).timeout(Duration::from_secs(120)).run(dir).await;
//! if !report.passed() {
//!     println!("{}", report.for_reviewer());
//! }
//! # }
//! ```
//!
//! Each command runs in a process group of its own. A timeout, or dropping the [`Gate::run`] future, kills the
//! whole group, so a test runner's background processes never outlive the gate; processes a command leaves
//! behind after it exits are killed too, since they would otherwise hold its output pipes open.

use std::collections::VecDeque;
use std::fs;
use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::pin::{Pin, pin};
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::time::Instant;

pub use crate::domain::gate::{CommandReport, GateCommand, GateReport, Outcome};

/// How long a command may run when [`Gate::timeout`] is not called.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a timed-out command's process group has to exit after SIGTERM before it gets SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How often the group is checked for survivors while it has [`KILL_GRACE`] to exit.
const GROUP_POLL: Duration = Duration::from_millis(50);
/// How long output is still read once the command's process group is gone. Only a process that left the group
/// (e.g. with `setsid`) can keep the pipes open that long.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Bytes kept from the start of a command's output.
const HEAD_BYTES: usize = 8 * 1024;
/// Bytes kept from the end of a command's output: failures are usually reported last.
const TAIL_BYTES: usize = 24 * 1024;
/// How long [`detect`] waits for `python3 -c "import pytest"`.
const PYTEST_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The check commands for the project in `dir`, in this order, each only if the project calls for it:
///
/// - `Cargo.toml` → `cargo test --offline`;
/// - `package.json` with a `test` script → `npm test --silent` (the placeholder `npm init` writes, which only
///   fails with "no test specified", does not count as a test script);
/// - `pyproject.toml`, `setup.py`, `pytest.ini`, `tox.ini`, or a `test_*.py` / `*_test.py` file in `dir` or one
///   of its non-hidden subdirectories → `python3 -m pytest -q` if `python3 -c "import pytest"` succeeds in `dir`,
///   else `python3 -m unittest discover -v`;
/// - `go.mod` → `go test ./...`.
///
/// A project none of these fit gets an empty list. This reads the file system and may run `python3` for up to
/// 10 s, so async code calls it through `tokio::task::spawn_blocking`.
pub fn detect(dir: &Path) -> Vec<GateCommand> {
    let mut commands = Vec::new();
    if dir.join("Cargo.toml").is_file() {
        commands.push(GateCommand::typed("cargo", &["test", "--offline"]));
    }
    if has_npm_test_script(dir) {
        commands.push(GateCommand::typed("npm", &["test", "--silent"]));
    }
    if looks_like_python_project(dir) {
        if pytest_importable(dir) {
            commands.push(GateCommand::typed("python3", &["-m", "pytest", "-q"]));
        } else {
            commands.push(GateCommand::typed(
                "python3",
                &["-m", "unittest", "discover", "-v"],
            ));
        }
    }
    if dir.join("go.mod").is_file() {
        commands.push(GateCommand::typed("go", &["test", "./..."]));
    }
    commands
}

/// Whether `dir/package.json` has a real `scripts.test`.
fn has_npm_test_script(dir: &Path) -> bool {
    let Ok(text) = fs::read_to_string(dir.join("package.json")) else {
        return false;
    };
    let manifest: serde_json::Value = match serde_json::from_str(&text) {
        Ok(manifest) => manifest,
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "package.json is not JSON; not running npm test");
            return false;
        }
    };
    manifest
        .get("scripts")
        .and_then(|scripts| scripts.get("test"))
        .and_then(serde_json::Value::as_str)
        .is_some_and(|script| !script.trim().is_empty() && !script.contains("no test specified"))
}

/// Whether `dir` has a Python project marker or a test file in its top two levels.
fn looks_like_python_project(dir: &Path) -> bool {
    const MARKERS: [&str; 4] = ["pyproject.toml", "setup.py", "pytest.ini", "tox.ini"];
    MARKERS.iter().any(|marker| dir.join(marker).is_file()) || has_python_test_file(dir, 2)
}

/// Whether `dir`, or its non-hidden subdirectories down to `levels` levels in all, hold a Python test file.
fn has_python_test_file(dir: &Path, levels: u32) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    let mut subdirectories = Vec::new();
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if kind.is_file() && is_python_test_file(&name) {
            return true;
        }
        // Hidden directories are virtualenvs, caches and VCS data, never the project's own tests.
        if kind.is_dir() && levels > 1 && !name.starts_with('.') {
            subdirectories.push(entry.path());
        }
    }
    subdirectories
        .iter()
        .any(|subdirectory| has_python_test_file(subdirectory, levels - 1))
}

/// Whether `name` is a file pytest and unittest discovery pick up by default.
fn is_python_test_file(name: &str) -> bool {
    name.strip_suffix(".py")
        .is_some_and(|stem| stem.starts_with("test_") || stem.ends_with("_test"))
}

/// Whether `python3 -c "import pytest"` succeeds in `dir` within [`PYTEST_PROBE_TIMEOUT`].
fn pytest_importable(dir: &Path) -> bool {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import pytest"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut probe) = probe else {
        return false;
    };
    let deadline = std::time::Instant::now() + PYTEST_PROBE_TIMEOUT;
    loop {
        match probe.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                // A probe that hangs or cannot be waited for means pytest is not usable; the errors of killing
                // and reaping it change nothing about that answer.
                let _ = probe.kill();
                let _ = probe.wait();
                return false;
            }
        }
    }
}

/// The project's gate as a mission runs it: the configured commands, or, without any, the commands
/// [`detect`] finds in the directory being checked, at the time of each check (a new project has no files
/// to detect from until its first task wrote some). Detection reads files and may run `python3`, so it runs
/// on a blocking thread, off the async runtime.
#[derive(Debug, Clone)]
pub struct ProjectGate {
    configured: Option<Vec<GateCommand>>,
    timeout: Duration,
    own_targets: bool,
}

/// Build-output variables that would make the checks of parallel worktrees share one directory.
const SHARED_OUTPUT_VARIABLES: [&str; 1] = ["CARGO_TARGET_DIR"];

impl ProjectGate {
    /// The gate of `configured` commands (`None`: detect them), each given `timeout`.
    pub fn new(configured: Option<Vec<GateCommand>>, timeout: Duration) -> Self {
        Self {
            configured,
            timeout,
            own_targets: false,
        }
    }

    /// For checks that run in parallel worktrees of one repository: each builds in its own directory
    /// (`CARGO_TARGET_DIR` from the environment is not passed on, so Cargo uses the worktree's `target/`).
    /// One target directory for several worktrees gives wrong results, not only slow ones: Cargo judges a
    /// workspace crate's artifacts fresh by the mtimes of its sources, so a worktree can take another's
    /// build for its own (`docs/benchmarks.md`, "orchestrator: isolation").
    #[must_use]
    pub fn own_build_directories(mut self, own: bool) -> Self {
        self.own_targets = own;
        self
    }

    /// Runs the checks in `dir`.
    pub async fn run(&self, dir: &Path) -> GateReport {
        let commands = match &self.configured {
            Some(commands) => commands.clone(),
            None => {
                let probe = dir.to_path_buf();
                tokio::task::spawn_blocking(move || detect(&probe))
                    .await
                    .unwrap_or_default()
            }
        };
        let mut gate = Gate::new(commands).timeout(self.timeout);
        if self.own_targets {
            for variable in SHARED_OUTPUT_VARIABLES {
                gate = gate.env_remove(variable);
            }
        }
        gate.run(dir).await
    }
}

/// Runs check commands one after another and reports every result.
///
/// ```no_run
/// # async fn check(dir: &std::path::Path) {
/// use std::time::Duration;
///
/// use orchestrator::adapters::gate::{Gate, GateCommand};
///
/// let gate = Gate::new(vec![GateCommand::shell("make check")])
///     .timeout(Duration::from_secs(60))
///     .env("CI", "1");
/// let report = gate.run(dir).await;
/// println!("{}", report.summary());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Gate {
    commands: Vec<GateCommand>,
    timeout: Duration,
    env: Vec<(String, String)>,
    env_removed: Vec<String>,
}

impl Gate {
    /// A gate that runs `commands` with the default timeout of 300 s each.
    pub fn new(commands: Vec<GateCommand>) -> Self {
        Self {
            commands,
            timeout: DEFAULT_TIMEOUT,
            env: Vec::new(),
            env_removed: Vec::new(),
        }
    }

    /// Gives each command at most `timeout` before its process group is killed.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the environment variable `key` to `value` for every command, on top of the inherited environment.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Leaves the environment variable `key` out of every command's environment.
    #[must_use]
    pub fn env_remove(mut self, key: impl Into<String>) -> Self {
        self.env_removed.push(key.into());
        self
    }

    /// The commands, in the order they run.
    pub fn commands(&self) -> &[GateCommand] {
        &self.commands
    }

    /// Runs every command in `dir`, one after another, and reports each; a failure does not stop the rest.
    ///
    /// Dropping the returned future kills the running command's process group.
    pub async fn run(&self, dir: &Path) -> GateReport {
        let mut commands = Vec::with_capacity(self.commands.len());
        for command in &self.commands {
            let started = Instant::now();
            let (outcome, output) = self.execute(command, dir).await;
            let duration_ms = millis(started.elapsed());
            tracing::info!(command = %command.name, %outcome, duration_ms, "gate command finished");
            commands.push(CommandReport {
                command: command.clone(),
                outcome,
                output,
                duration_ms,
            });
        }
        GateReport { commands }
    }

    /// Runs `command` in `dir` to its end, its timeout or the end of the future.
    async fn execute(&self, command: &GateCommand, dir: &Path) -> (Outcome, String) {
        let mut process = Command::new(&command.program);
        for key in &self.env_removed {
            process.env_remove(key);
        }
        let spawned = process
            .args(&command.args)
            .current_dir(dir)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                let reason = format!(
                    "could not start `{}` in {}: {error}",
                    command.program,
                    dir.display()
                );
                return (Outcome::NotStarted { reason }, String::new());
            }
        };
        // Declared after `child`, so on drop the group is killed before tokio's kill_on_drop reaches the leader.
        let Some(mut group) = child.id().and_then(ProcessGroup::led_by) else {
            // tokio only forgets the id once the child has been reaped, which has not happened yet.
            let reason = format!(
                "`{}` started but its process id was not available",
                command.program
            );
            return (Outcome::NotStarted { reason }, String::new());
        };

        let mut output = CapturedOutput::new(HEAD_BYTES, TAIL_BYTES);
        let (outcome, drained) = {
            let mut pump = OutputPump {
                reading: pin!(capture(
                    child.stdout.take(),
                    child.stderr.take(),
                    &mut output
                )),
                finished: false,
            };
            let outcome = self.supervise(&mut child, &mut group, &mut pump).await;
            // Every process that could hold the pipes is gone, unless one left the group.
            let drained = pump.finish(DRAIN_GRACE).await;
            (outcome, drained)
        };
        if !drained {
            tracing::warn!(
                command = %command.name,
                "output pipes still open after the command's process group was gone; stopped reading"
            );
            output.push(b"\n[... stopped reading: a process outside the command's group kept its output open ...]\n");
        }
        (outcome, output.into_string())
    }

    /// Waits for `child` to exit within the timeout, or terminates its group, and then kills whatever is left of
    /// the group: a leftover would outlive the gate and hold the output pipes open.
    async fn supervise(
        &self,
        child: &mut Child,
        group: &mut ProcessGroup,
        pump: &mut OutputPump<'_, impl Future<Output = ()>>,
    ) -> Outcome {
        let exited = pump
            .while_running(tokio::time::timeout(self.timeout, child.wait()))
            .await;
        let outcome = match exited {
            Ok(Ok(status)) => Outcome::of_exit(status.code(), status.signal()),
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not wait for a gate command");
                Outcome::Failed {
                    code: None,
                    signal: None,
                }
            }
            Err(_elapsed) => {
                group.signal(Signal::SIGTERM);
                let stopped = pump
                    .while_running(tokio::time::timeout(KILL_GRACE, reap(child, group)))
                    .await;
                if stopped.is_err() {
                    tracing::debug!(group = %group.id, "a timed-out gate command outlived SIGTERM");
                }
                Outcome::TimedOut {
                    after_ms: millis(self.timeout),
                }
            }
        };
        if group.signal(Signal::SIGKILL) {
            tracing::debug!(group = %group.id, "killed what a gate command left in its process group");
            // Waiting for the group to vanish means that when the gate moves on, nothing of this command runs.
            let gone = pump
                .while_running(tokio::time::timeout(KILL_GRACE, reap(child, group)))
                .await;
            if gone.is_err() {
                tracing::warn!(group = %group.id, "a gate command's process group outlived SIGKILL");
            }
        }
        outcome
    }
}

/// Reaps the group's leader, then waits until no process is left in the group.
async fn reap(child: &mut Child, group: &mut ProcessGroup) {
    // An error means the leader was reaped elsewhere, which is as good for the wait below.
    let _ = child.wait().await;
    while group.is_alive() {
        tokio::time::sleep(GROUP_POLL).await;
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The process group a command leads. Dropping it kills the whole group unless the group is known to be gone,
/// which is what stops a command when the [`Gate::run`] future is dropped.
///
/// A group id is not reused while any process is in the group, even once the leader has been reaped; once the
/// group is seen empty it is never signalled again, since its id may then name a new group.
#[derive(Debug)]
struct ProcessGroup {
    id: Pid,
    gone: bool,
}

impl ProcessGroup {
    /// The group of the process `pid`, started with `process_group(0)`, so the group id is its pid.
    fn led_by(pid: u32) -> Option<Self> {
        let id = i32::try_from(pid).ok()?;
        Some(Self {
            id: Pid::from_raw(id),
            gone: false,
        })
    }

    /// Sends `signal` (or, for `None`, only checks) to every member; whether there was any.
    fn signal(&mut self, signal: impl Into<Option<Signal>>) -> bool {
        if self.gone {
            return false;
        }
        match killpg(self.id, signal) {
            Ok(()) => true,
            Err(Errno::ESRCH) => {
                self.gone = true;
                false
            }
            // EPERM: a member changed its credentials (a setuid program); the group still exists.
            Err(_) => true,
        }
    }

    /// Whether any process, a not yet reaped one included, is still in the group.
    fn is_alive(&mut self) -> bool {
        self.signal(None)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// The future reading a command's output, driven alongside each wait for the command and after it.
struct OutputPump<'a, F> {
    reading: Pin<&'a mut F>,
    finished: bool,
}

impl<F: Future<Output = ()>> OutputPump<'_, F> {
    /// Runs `until` to completion while reading output, so a command blocked on a full pipe can go on.
    async fn while_running<T>(&mut self, until: impl Future<Output = T>) -> T {
        let mut until = pin!(until);
        loop {
            tokio::select! {
                value = &mut until => return value,
                () = self.reading.as_mut(), if !self.finished => self.finished = true,
            }
        }
    }

    /// Reads the rest of the output, for at most `grace`; whether it reached the end.
    async fn finish(&mut self, grace: Duration) -> bool {
        self.finished
            || tokio::time::timeout(grace, self.reading.as_mut())
                .await
                .is_ok()
    }
}

/// Reads `stdout` and `stderr` to their ends into `output`, in the order the bytes arrive.
async fn capture(
    mut stdout: Option<ChildStdout>,
    mut stderr: Option<ChildStderr>,
    output: &mut CapturedOutput,
) {
    let mut stdout_buffer = vec![0; 16 * 1024];
    let mut stderr_buffer = vec![0; 16 * 1024];
    while stdout.is_some() || stderr.is_some() {
        // Both reads are cancel safe: a read that loses the race has consumed nothing.
        tokio::select! {
            read = read_open(&mut stdout, &mut stdout_buffer) => {
                match read {
                    Ok(0) => stdout = None,
                    Ok(len) => output.push(&stdout_buffer[..len]),
                    Err(error) => {
                        tracing::debug!(%error, "reading a gate command's stdout");
                        stdout = None;
                    }
                }
            }
            read = read_open(&mut stderr, &mut stderr_buffer) => {
                match read {
                    Ok(0) => stderr = None,
                    Ok(len) => output.push(&stderr_buffer[..len]),
                    Err(error) => {
                        tracing::debug!(%error, "reading a gate command's stderr");
                        stderr = None;
                    }
                }
            }
        }
    }
}

/// Reads from `pipe` while it is open; a closed pipe never becomes ready.
async fn read_open(
    pipe: &mut Option<impl AsyncRead + Unpin>,
    buffer: &mut [u8],
) -> io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read(buffer).await,
        None => std::future::pending().await,
    }
}

/// A command's output with bounded memory: the first `head_limit` bytes, the last `tail_limit` bytes, and a
/// count of everything in between.
#[derive(Debug)]
struct CapturedOutput {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_limit: usize,
    tail_limit: usize,
    total: u64,
}

impl CapturedOutput {
    fn new(head_limit: usize, tail_limit: usize) -> Self {
        Self {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_limit,
            tail_limit,
            total: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let head_room = self.head_limit - self.head.len();
        let (to_head, rest) = bytes.split_at(head_room.min(bytes.len()));
        self.head.extend_from_slice(to_head);
        let rest = &rest[rest.len().saturating_sub(self.tail_limit)..];
        let overflow = (self.tail.len() + rest.len()).saturating_sub(self.tail_limit);
        self.tail.drain(..overflow);
        self.tail.extend(rest);
    }

    fn into_string(self) -> String {
        let omitted = self.total - (self.head.len() + self.tail.len()) as u64;
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if omitted > 0 {
            let newline = if text.ends_with('\n') { "" } else { "\n" };
            text.push_str(&format!("{newline}[... {omitted} bytes omitted ...]\n"));
        }
        text.push_str(&String::from_utf8_lossy(&Vec::from(self.tail)));
        text
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use nix::sys::signal::kill;

    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, contents) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }
        dir
    }

    fn names(commands: &[GateCommand]) -> Vec<&str> {
        commands
            .iter()
            .map(|command| command.name.as_str())
            .collect()
    }

    /// The Python command `detect` must choose on this machine.
    fn expected_python() -> &'static str {
        let pytest = std::process::Command::new("python3")
            .args(["-c", "import pytest"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if pytest {
            "python3 -m pytest -q"
        } else {
            "python3 -m unittest discover -v"
        }
    }

    /// Whether `pid` is a live process. A zombie is dead: it waits only for a parent (here, possibly an init
    /// that never reaps) to collect its status.
    fn alive(pid: i32) -> bool {
        if kill(Pid::from_raw(pid), None).is_err() {
            return false;
        }
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The state follows the parenthesised command name, which may itself contain ") ".
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        state != Some(Some('Z'))
    }

    fn read_pid(path: &Path) -> i32 {
        let text =
            fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        text.trim().parse().unwrap()
    }

    async fn wait_until_dead(pid: i32, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while alive(pid) {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    async fn wait_for_file(path: &Path, within: Duration) {
        let deadline = Instant::now() + within;
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                path.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn detect_finds_nothing_in_a_project_without_markers() {
        let dir = project(&[
            ("README.md", "# nothing to test\n"),
            ("src/main.c", "int main() {}\n"),
        ]);
        assert_eq!(detect(dir.path()), Vec::new());
        assert_eq!(detect(&dir.path().join("does-not-exist")), Vec::new());
    }

    #[test]
    fn detect_runs_cargo_test_offline_for_a_cargo_project() {
        let dir = project(&[("Cargo.toml", "[package]\nname = \"x\"\n")]);
        assert_eq!(
            detect(dir.path()),
            vec![GateCommand::new(
                "cargo test --offline",
                "cargo",
                ["test", "--offline"]
            )]
        );
    }

    #[test]
    fn detect_runs_npm_test_only_for_a_real_test_script() {
        let with_script = project(&[("package.json", r#"{"scripts": {"test": "node --test"}}"#)]);
        assert_eq!(
            detect(with_script.path()),
            vec![GateCommand::new(
                "npm test --silent",
                "npm",
                ["test", "--silent"]
            )]
        );

        let placeholder = r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#;
        for manifest in [
            r#"{"name": "x"}"#,
            r#"{"scripts": {"build": "tsc"}}"#,
            placeholder,
            "not json",
        ] {
            let dir = project(&[("package.json", manifest)]);
            assert_eq!(detect(dir.path()), Vec::new(), "{manifest}");
        }
    }

    #[test]
    fn detect_recognises_each_python_marker_and_test_files_two_levels_down() {
        let expected = expected_python();
        for path in [
            "pyproject.toml",
            "setup.py",
            "pytest.ini",
            "tox.ini",
            "test_app.py",
            "app_test.py",
            "tests/test_app.py",
            "pkg/app_test.py",
        ] {
            let dir = project(&[(path, "")]);
            assert_eq!(names(&detect(dir.path())), [expected], "{path}");
        }
        for path in [
            "a/b/test_deep.py",
            ".venv/test_hidden.py",
            "testing.py",
            "test_data.txt",
            "contest.py",
        ] {
            let dir = project(&[(path, "")]);
            assert_eq!(detect(dir.path()), Vec::new(), "{path}");
        }
    }

    #[test]
    fn detect_python_command_is_runnable_as_detected() {
        let dir = project(&[("setup.py", "")]);
        let detected = detect(dir.path());
        assert_eq!(detected.len(), 1);
        assert_eq!(detected[0].program, "python3");
        assert_eq!(
            detected[0].name,
            format!("python3 {}", detected[0].args.join(" "))
        );
    }

    #[test]
    fn detect_runs_go_test_for_a_go_module() {
        let dir = project(&[("go.mod", "module example.com/x\n")]);
        assert_eq!(
            detect(dir.path()),
            vec![GateCommand::new("go test ./...", "go", ["test", "./..."])]
        );
    }

    #[test]
    fn detect_returns_every_ecosystem_that_applies_in_order() {
        let dir = project(&[
            ("go.mod", "module example.com/x\n"),
            ("tests/test_x.py", ""),
            ("package.json", r#"{"scripts": {"test": "jest"}}"#),
            ("Cargo.toml", "[workspace]\n"),
        ]);
        assert_eq!(
            names(&detect(dir.path())),
            [
                "cargo test --offline",
                "npm test --silent",
                expected_python(),
                "go test ./..."
            ]
        );
    }

    #[test]
    fn shell_commands_are_named_after_their_line() {
        let command = GateCommand::shell("echo hi && exit 2");
        assert_eq!(
            command,
            GateCommand::new("echo hi && exit 2", "sh", ["-c", "echo hi && exit 2"])
        );
    }

    #[tokio::test]
    async fn every_command_runs_and_reports_its_exit() {
        let dir = tempfile::tempdir().unwrap();
        let report = Gate::new(vec![
            GateCommand::shell("echo hello; echo warning >&2"),
            GateCommand::shell("echo oops >&2; exit 3"),
            GateCommand::shell("kill -9 $$"),
            GateCommand::shell("pwd"),
        ])
        .timeout(Duration::from_secs(30))
        .run(dir.path())
        .await;

        let outcomes: Vec<&Outcome> = report
            .commands
            .iter()
            .map(|report| &report.outcome)
            .collect();
        assert_eq!(
            outcomes,
            [
                &Outcome::Passed,
                &Outcome::Failed {
                    code: Some(3),
                    signal: None
                },
                &Outcome::Failed {
                    code: None,
                    signal: Some(9)
                },
                &Outcome::Passed,
            ]
        );
        assert!(!report.passed());
        // Bytes that are waiting on both pipes at once may be read in either order.
        let first = &report.commands[0].output;
        assert!(
            first == "hello\nwarning\n" || first == "warning\nhello\n",
            "{first:?}"
        );
        assert_eq!(report.commands[1].output, "oops\n");
        let printed = PathBuf::from(report.commands[3].output.trim_end());
        assert_eq!(
            printed.canonicalize().unwrap(),
            dir.path().canonicalize().unwrap()
        );
    }

    #[tokio::test]
    async fn stdout_and_stderr_are_interleaved_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let report = Gate::new(vec![GateCommand::shell(
            "echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three; sleep 0.3; echo four >&2",
        )])
        .run(dir.path())
        .await;
        assert_eq!(report.commands[0].outcome, Outcome::Passed);
        assert_eq!(report.commands[0].output, "one\ntwo\nthree\nfour\n");
    }

    #[tokio::test]
    async fn a_gate_of_passing_commands_passes_and_an_empty_gate_passes() {
        let dir = tempfile::tempdir().unwrap();
        // `cat` reads stdin, which is null, so it ends at once instead of waiting for input.
        let report = Gate::new(vec![
            GateCommand::shell("true"),
            GateCommand::new("cat", "cat", ["-"]),
        ])
        .timeout(Duration::from_secs(30))
        .run(dir.path())
        .await;
        assert_eq!(report.commands.len(), 2);
        assert!(report.passed(), "{}", report.summary());

        let empty = Gate::new(Vec::new()).run(dir.path()).await;
        assert!(empty.commands.is_empty());
        assert!(empty.passed());
    }

    #[tokio::test]
    async fn a_hanging_command_times_out_and_its_whole_group_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let started = Instant::now();
        let report = Gate::new(vec![
            GateCommand::shell("sleep 1000 & echo $! > grandchild.pid; echo started; wait"),
            GateCommand::shell("echo next"),
        ])
        .timeout(Duration::from_secs(1))
        .run(dir.path())
        .await;

        assert!(
            started.elapsed() < Duration::from_secs(8),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(
            report.commands[0].outcome,
            Outcome::TimedOut { after_ms: 1000 }
        );
        assert_eq!(report.commands[0].output, "started\n");
        assert_eq!(report.commands[1].outcome, Outcome::Passed);
        let grandchild = read_pid(&pid_file);
        assert!(
            !alive(grandchild),
            "background process {grandchild} outlived the gate"
        );
    }

    #[tokio::test]
    async fn a_timed_out_group_gets_sigterm_before_sigkill() {
        let dir = tempfile::tempdir().unwrap();
        let report = Gate::new(vec![GateCommand::shell(
            "(trap 'echo graceful > term.txt; exit 0' TERM; while :; do sleep 0.1; done) & wait",
        )])
        .timeout(Duration::from_secs(1))
        .run(dir.path())
        .await;

        assert_eq!(
            report.commands[0].outcome,
            Outcome::TimedOut { after_ms: 1000 }
        );
        let term = fs::read_to_string(dir.path().join("term.txt"));
        assert_eq!(
            term.ok().as_deref(),
            Some("graceful\n"),
            "the background process never saw SIGTERM"
        );
    }

    #[tokio::test]
    async fn a_group_that_ignores_sigterm_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let started = Instant::now();
        let report = Gate::new(vec![GateCommand::shell(
            "trap '' TERM; sleep 1000 & echo $! > grandchild.pid; wait",
        )])
        .timeout(Duration::from_secs(1))
        .run(dir.path())
        .await;

        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(
            report.commands[0].outcome,
            Outcome::TimedOut { after_ms: 1000 }
        );
        let grandchild = read_pid(&pid_file);
        assert!(
            !alive(grandchild),
            "background process {grandchild} outlived the gate"
        );
    }

    #[tokio::test]
    async fn processes_left_behind_by_a_finished_command_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        // The background sleep keeps stdout open; the gate must not wait for it until the timeout.
        let report = Gate::new(vec![GateCommand::shell(
            "sleep 1000 & echo $! > leftover.pid; echo done",
        )])
        .timeout(Duration::from_secs(120))
        .run(dir.path())
        .await;

        assert!(
            started.elapsed() < Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(report.commands[0].outcome, Outcome::Passed);
        assert_eq!(report.commands[0].output, "done\n");
        let leftover = read_pid(&dir.path().join("leftover.pid"));
        assert!(
            !alive(leftover),
            "background process {leftover} outlived the gate"
        );
    }

    #[tokio::test]
    async fn dropping_the_run_future_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let gate = Gate::new(vec![GateCommand::shell(
            "sleep 1000 & echo $! > grandchild.pid; wait",
        )]);
        let run = gate.run(dir.path());
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::select! {
                report = run => panic!("the gate finished: {}", report.summary()),
                () = wait_for_file(&pid_file, Duration::from_secs(20)) => {}
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "the command never started its background process"
        );
        // `run` was dropped when the select above finished.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let grandchild = read_pid(&pid_file);
        assert!(
            wait_until_dead(grandchild, Duration::from_secs(5)).await,
            "{grandchild} survived the drop"
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_reported_as_not_started() {
        let dir = tempfile::tempdir().unwrap();
        let report = Gate::new(vec![
            GateCommand::new("missing", "gate-test-no-such-program", ["--version"]),
            GateCommand::shell("echo still runs"),
        ])
        .run(dir.path())
        .await;

        let Outcome::NotStarted { reason } = &report.commands[0].outcome else {
            panic!("{:?}", report.commands[0].outcome);
        };
        assert!(reason.contains("gate-test-no-such-program"), "{reason}");
        assert!(reason.contains("No such file or directory"), "{reason}");
        assert_eq!(report.commands[0].output, "");
        assert_eq!(report.commands[1].outcome, Outcome::Passed);
        assert_eq!(report.commands[1].output, "still runs\n");
        assert!(!report.passed());
    }

    #[tokio::test]
    async fn megabytes_on_both_pipes_are_read_without_deadlock_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        // stderr first: a reader that waited for the end of stdout would leave the command blocked on a full
        // stderr pipe until the timeout.
        let line = "head -c 2097152 /dev/zero | tr '\\0' e >&2; \
                    head -c 2097152 /dev/zero | tr '\\0' o; \
                    echo; echo END-OF-OUTPUT";
        let report = Gate::new(vec![GateCommand::shell(line)])
            .timeout(Duration::from_secs(120))
            .run(dir.path())
            .await;

        let command = &report.commands[0];
        assert_eq!(command.outcome, Outcome::Passed);
        let total = 2 * 2_097_152 + "\nEND-OF-OUTPUT\n".len();
        let omitted = total - HEAD_BYTES - TAIL_BYTES;
        let marker = format!("\n[... {omitted} bytes omitted ...]\n");
        let (head, tail) = command
            .output
            .split_once(&marker)
            .expect("the omission marker");
        assert_eq!(head, "e".repeat(HEAD_BYTES));
        assert_eq!(tail.len(), TAIL_BYTES);
        assert!(
            tail.ends_with(&format!("{}\nEND-OF-OUTPUT\n", "o".repeat(1000))),
            "{tail:?}"
        );
    }

    #[tokio::test]
    async fn environment_variables_reach_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let report = Gate::new(vec![GateCommand::shell(
            "test \"$GATE_FIRST\" = one && test \"$GATE_SECOND\" = 'two words' && echo \"$GATE_FIRST\"",
        )])
        .env("GATE_FIRST", "one")
        .env("GATE_SECOND", "two words")
        .run(dir.path())
        .await;
        assert_eq!(
            report.commands[0].outcome,
            Outcome::Passed,
            "{}",
            report.commands[0].output
        );
        assert_eq!(report.commands[0].output, "one\n");
    }

    #[tokio::test]
    async fn a_removed_variable_does_not_reach_the_command() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            std::env::var_os("HOME").is_some(),
            "the test needs HOME set"
        );
        let report = Gate::new(vec![GateCommand::shell("test -z \"${HOME+set}\"")])
            .env_remove("HOME")
            .run(dir.path())
            .await;
        assert_eq!(report.commands[0].outcome, Outcome::Passed);
        let kept = Gate::new(vec![GateCommand::shell("test -z \"${HOME+set}\"")])
            .run(dir.path())
            .await;
        assert_ne!(
            kept.commands[0].outcome,
            Outcome::Passed,
            "HOME is inherited otherwise"
        );
    }

    fn report(name: &str, outcome: Outcome, output: &str, duration_ms: u64) -> CommandReport {
        CommandReport {
            command: GateCommand::shell(name),
            outcome,
            output: output.to_owned(),
            duration_ms,
        }
    }

    fn sample_report() -> GateReport {
        let long_passing = format!("{}LAST-LINE\n", "early passing output\n".repeat(200));
        GateReport {
            commands: vec![
                report("cargo test", Outcome::Passed, &long_passing, 1234),
                report(
                    "npm test",
                    Outcome::Failed {
                        code: Some(1),
                        signal: None,
                    },
                    "1 failing\n```js\nx\n```\n",
                    300,
                ),
                report(
                    "crash",
                    Outcome::Failed {
                        code: None,
                        signal: Some(11),
                    },
                    "",
                    5,
                ),
                report(
                    "go test",
                    Outcome::TimedOut { after_ms: 60_000 },
                    "hung here\n",
                    62_010,
                ),
                report(
                    "ruff",
                    Outcome::NotStarted {
                        reason: "could not start `ruff`: gone".to_owned(),
                    },
                    "",
                    0,
                ),
            ],
        }
    }

    #[test]
    fn summary_has_one_line_per_command_with_its_outcome() {
        assert_eq!(
            sample_report().summary(),
            "cargo test: passed in 1.2 s\n\
             npm test: failed (exit 1) in 0.3 s\n\
             crash: failed (signal 11, SIGSEGV) in 0 s\n\
             go test: timed out after 60 s\n\
             ruff: not started: could not start `ruff`: gone"
        );
        assert_eq!(GateReport::default().summary(), "no check commands ran");
    }

    #[test]
    fn for_reviewer_shows_failed_output_whole_and_passing_output_tail() {
        let text = sample_report().for_reviewer();
        assert!(text.starts_with(&sample_report().summary()), "{text}");
        // The failing output contains a fence, so its block uses a longer one.
        assert!(
            text.contains(
                "### `npm test` failed (exit 1)\n\n````text\n1 failing\n```js\nx\n```\n````\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("### `crash` failed (signal 11, SIGSEGV)\n\n(no output)\n"),
            "{text}"
        );
        assert!(
            text.contains("### `go test` timed out after 60 s\n\n```text\nhung here\n```\n"),
            "{text}"
        );
        assert!(
            text.contains("### `ruff` did not start\n\ncould not start `ruff`: gone\n"),
            "{text}"
        );
        assert!(
            text.contains("### `cargo test` passed (last 2 KiB of output)\n\n```text\n"),
            "{text}"
        );
        assert!(
            text.contains("early passing output\nLAST-LINE\n```\n"),
            "{text}"
        );
        assert!(
            !text.contains(&"early passing output\n".repeat(100)),
            "the passing output is not cut"
        );
    }

    #[test]
    fn reports_round_trip_through_json() {
        let report = sample_report();
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<GateReport>(&json).unwrap(), report);
    }

    #[test]
    fn captured_output_keeps_head_and_tail_and_counts_the_rest() {
        let mut short = CapturedOutput::new(4, 6);
        short.push(b"abc");
        short.push(b"defgh");
        assert_eq!(short.into_string(), "abcdefgh");

        let mut long = CapturedOutput::new(4, 6);
        for chunk in [&b"ab"[..], b"cdefg", b"hijklmnopq", b"r", b"stuvwxyz"] {
            long.push(chunk);
        }
        assert_eq!(
            long.into_string(),
            "abcd\n[... 16 bytes omitted ...]\nuvwxyz"
        );
    }

    #[test]
    fn captured_output_is_lossy_utf8() {
        let mut output = CapturedOutput::new(64, 64);
        output.push(b"ok \xff\xfe done");
        assert_eq!(output.into_string(), "ok \u{fffd}\u{fffd} done");
    }
}
