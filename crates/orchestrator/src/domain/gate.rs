//! The review gate's results: the check commands, how each ended and what it printed, and the text the
//! Reviewer reads. Running them is the gate adapter's job (`adapters::gate`).

use std::fmt;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// Bytes of a passing command's output shown to the Reviewer.
const PASSING_TAIL_BYTES: usize = 2 * 1024;

/// One check command: a program and its arguments, run without a shell.
///
/// ```
/// use orchestrator::domain::gate::GateCommand;
///
/// let test = GateCommand::new("cargo test", "cargo", ["test", "--offline"]);
/// let lint = GateCommand::shell("cargo clippy -- -D warnings 2>&1 | tail -n 50");
/// assert_eq!(lint.program, "sh");
/// # let _ = test;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateCommand {
    /// How reports name the command, e.g. `cargo test --offline`.
    pub name: String,
    /// The program to run, looked up on `PATH` unless it contains a `/`.
    pub program: String,
    /// The arguments, passed as they are.
    pub args: Vec<String>,
}

impl GateCommand {
    /// A command named `name` that runs `program` with `args`.
    pub fn new(
        name: impl Into<String>,
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// A command that runs `line` with `sh -c`, named after the line itself.
    pub fn shell(line: &str) -> Self {
        Self::new(line, "sh", ["-c", line])
    }

    /// A command named after the line one would type for it, e.g. `go test ./...`.
    pub fn typed(program: &str, args: &[&str]) -> Self {
        let name = std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        Self::new(name, program, args.iter().copied())
    }
}

/// How one command ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with status 0.
    Passed,
    /// It exited with a non-zero status (`code`) or was killed by a signal (`signal`).
    Failed {
        /// The exit status, if it exited.
        code: Option<i32>,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
    },
    /// It was still running after the gate's timeout, and its process group was killed.
    TimedOut {
        /// The timeout, in milliseconds.
        after_ms: u64,
    },
    /// It could not be started.
    NotStarted {
        /// The program, the directory and the OS error.
        reason: String,
    },
}

impl Outcome {
    /// Whether the command passed.
    pub fn is_passed(&self) -> bool {
        matches!(self, Self::Passed)
    }

    /// The outcome of a process that exited with `code` or was killed by `signal`.
    pub fn of_exit(code: Option<i32>, signal: Option<i32>) -> Self {
        if code == Some(0) {
            Self::Passed
        } else {
            Self::Failed { code, signal }
        }
    }
}

/// `passed`, `failed (exit 1)`, `failed (signal 9, SIGKILL)`, `timed out after 60 s`, `not started: …`.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Passed => f.write_str("passed"),
            Self::Failed {
                code: Some(code), ..
            } => write!(f, "failed (exit {code})"),
            Self::Failed {
                code: None,
                signal: Some(signal),
            } => match Signal::try_from(*signal) {
                Ok(name) => write!(f, "failed (signal {signal}, {})", name.as_str()),
                Err(_) => write!(f, "failed (signal {signal})"),
            },
            Self::Failed {
                code: None,
                signal: None,
            } => f.write_str("failed"),
            Self::TimedOut { after_ms } => write!(f, "timed out after {}", Seconds(*after_ms)),
            Self::NotStarted { reason } => write!(f, "not started: {reason}"),
        }
    }
}

/// Milliseconds shown as seconds with at most one decimal: `1.2 s`, `60 s`.
struct Seconds(u64);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.1}", self.0 as f64 / 1000.0);
        write!(f, "{} s", text.strip_suffix(".0").unwrap_or(&text))
    }
}

/// What one command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandReport {
    /// The command that ran.
    pub command: GateCommand,
    /// How it ended.
    pub outcome: Outcome,
    /// Its stdout and stderr interleaved in the order they arrived, as lossy UTF-8. Long output keeps its first
    /// 8 KiB and last 24 KiB around a `[... N bytes omitted ...]` line.
    pub output: String,
    /// Wall time from start to the end of its output, in milliseconds.
    pub duration_ms: u64,
}

impl CommandReport {
    /// One line: `cargo test: passed in 1.2 s`.
    pub fn summary_line(&self) -> String {
        let name = &self.command.name;
        let outcome = &self.outcome;
        match outcome {
            Outcome::Passed | Outcome::Failed { .. } => {
                format!("{name}: {outcome} in {}", Seconds(self.duration_ms))
            }
            Outcome::TimedOut { .. } | Outcome::NotStarted { .. } => format!("{name}: {outcome}"),
        }
    }
}

/// What the whole gate did: one report per command, in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateReport {
    /// The commands' reports, in the order they ran.
    pub commands: Vec<CommandReport>,
}

impl GateReport {
    /// Whether every command passed; a gate without commands passes.
    pub fn passed(&self) -> bool {
        self.commands
            .iter()
            .all(|report| report.outcome.is_passed())
    }

    /// One line per command, e.g. `cargo test --offline: failed (exit 101) in 4.1 s`.
    pub fn summary(&self) -> String {
        if self.commands.is_empty() {
            return "no check commands ran".to_owned();
        }
        let lines: Vec<String> = self
            .commands
            .iter()
            .map(CommandReport::summary_line)
            .collect();
        lines.join("\n")
    }

    /// The text the Reviewer reads: the summary, then each failed command's output in a fenced block and the
    /// last 2 KiB of each passing command's output.
    pub fn for_reviewer(&self) -> String {
        let mut text = self.summary();
        text.push('\n');
        for report in &self.commands {
            let name = &report.command.name;
            let output = report.output.as_str();
            text.push('\n');
            match &report.outcome {
                Outcome::NotStarted { reason } => {
                    text.push_str(&format!("### `{name}` did not start\n\n{reason}\n"));
                }
                Outcome::Passed => {
                    let tail = tail_on_char_boundary(output, PASSING_TAIL_BYTES);
                    let shown = if tail.len() < output.len() {
                        "last 2 KiB of output"
                    } else {
                        "output"
                    };
                    text.push_str(&format!("### `{name}` passed ({shown})\n\n"));
                    text.push_str(&fenced(tail));
                }
                failed => {
                    text.push_str(&format!("### `{name}` {failed}\n\n"));
                    text.push_str(&fenced(output));
                }
            }
        }
        text
    }
}

/// The last `max` bytes of `text` or a little less, so the cut falls between characters.
fn tail_on_char_boundary(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// `text` in a fenced block whose fence is longer than any backtick run inside it.
fn fenced(text: &str) -> String {
    if text.is_empty() {
        return "(no output)\n".to_owned();
    }
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    let newline = if text.ends_with('\n') { "" } else { "\n" };
    format!("{fence}text\n{text}{newline}{fence}\n")
}
