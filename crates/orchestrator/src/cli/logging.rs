//! The orchestrator's log: `tracing` events written to `<project>/.opencode/orchestrator/orchestrator.log`,
//! rotated by size.
//!
//! ```no_run
//! use std::path::Path;
//!
//! let _log = orchestrator::cli::logging::init(Path::new("."), None)?;
//! tracing::info!("mission started");
//! // Dropping the guard flushes the log.
//! # Ok::<(), orchestrator::cli::logging::LoggingError>(())
//! ```
//!
//! What is logged is chosen by `ORCHESTRATOR_LOG`, a `tracing_subscriber::EnvFilter` directive such as
//! `debug` or `warn,orchestrator=trace`; without it, [`DEFAULT_FILTER`]: `info` for the workspace's crates and
//! `warn` for everything else.
//!
//! Rotation: when the log would grow past [`DEFAULT_MAX_BYTES`] (and at start when it already has),
//! `orchestrator.log` becomes `orchestrator.log.1`, `.1` becomes `.2` and so on; [`DEFAULT_KEEP`] old logs are
//! kept and the oldest is deleted. Rotation happens before a write that would pass the limit, never inside
//! one, so a log line is never split across two files. `tracing-appender` rolls files by time only, hence
//! [`RotatingFile`].
//!
//! Each line names the spans it happened in (`mission{mission.id=…}:stage{stage=work}:task{task.id=T1.1 …}`).
//! With an OTLP endpoint (`--otlp`, a build with the `otel` feature), the same spans and events, through
//! the same filter, are also exported ([`crate::cli::otlp`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};
use url::Url;

/// The log file's name, in the state directory `.opencode/orchestrator/`.
pub const LOG_FILE: &str = "orchestrator.log";

/// The size past which the log is rotated: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// How many rotated logs are kept: `orchestrator.log.1` (the newest) to `orchestrator.log.5`.
pub const DEFAULT_KEEP: usize = 5;

/// The environment variable that chooses what is logged (an `EnvFilter` directive).
pub const FILTER_VARIABLE: &str = "ORCHESTRATOR_LOG";

/// What is logged without [`FILTER_VARIABLE`]: `info` for the workspace's crates, `warn` for the others.
pub const DEFAULT_FILTER: &str = "warn,orchestrator=info,opencode_client=info,circuit=info,pools=info,mvcc_store=info,ws_deque=info";

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The state directory could not be created.
    #[error("cannot create the log directory {}: {source}", directory.display())]
    CreateDirectory {
        /// The directory.
        directory: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The log file could not be rotated or opened.
    #[error("cannot open the log {}: {source}", path.display())]
    Open {
        /// The log file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `ORCHESTRATOR_LOG` is not a valid filter.
    #[error(
        "{FILTER_VARIABLE}=`{value}` is not a valid log filter: {source} (e.g. `debug` or `warn,orchestrator=trace`)"
    )]
    Filter {
        /// The variable's value.
        value: String,
        /// What is wrong with it.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// This process already has a global `tracing` subscriber (logging was set up before).
    #[error("logging is already set up in this process")]
    AlreadyInitialized {
        /// What `tracing` said.
        #[source]
        source: tracing_subscriber::util::TryInitError,
    },
    /// An OTLP endpoint was given to a build without the `otel` feature.
    #[error(
        "cannot export traces to {endpoint}: this orchestrator was built without OTLP export (cargo feature `otel`)"
    )]
    OtlpUnavailable {
        /// The endpoint.
        endpoint: Url,
    },
    /// The OTLP export could not be set up.
    #[cfg(feature = "otel")]
    #[error(transparent)]
    Otlp(#[from] crate::cli::otlp::OtlpError),
}

/// The layer that exports spans, boxed so that the subscriber has one type with the feature or without.
type ExportLayer = Option<Box<dyn Layer<Registry> + Send + Sync>>;

/// The path of the log: `<project>/.opencode/orchestrator/orchestrator.log`.
pub fn log_path(project: &Path) -> PathBuf {
    crate::adapters::journal::state_dir(project).join(LOG_FILE)
}

/// Sends this process's `tracing` events to the project's log (creating its directory), filtered by
/// `ORCHESTRATOR_LOG` or [`DEFAULT_FILTER`], and its spans to `otlp` when given (a traces URL from
/// [`otlp::endpoint`](crate::cli::otlp::endpoint)). Keep the guard until the process ends: dropping it
/// flushes the log and sends the spans not sent yet.
///
/// # Errors
///
/// [`LoggingError::CreateDirectory`] or [`LoggingError::Open`] when the log cannot be written,
/// [`LoggingError::Filter`] for an invalid `ORCHESTRATOR_LOG`, [`LoggingError::OtlpUnavailable`] for an
/// endpoint without the `otel` feature (`LoggingError::Otlp` with it, when the exporter cannot be built),
/// and [`LoggingError::AlreadyInitialized`] when called a second time in a process (nothing changes then:
/// the first log stays in use).
pub fn init(project: &Path, otlp: Option<&Url>) -> Result<LogGuard, LoggingError> {
    let path = log_path(project);
    // The state directory with its `.gitignore`: the log stays out of git.
    crate::adapters::journal::ensure_state_dir(project).map_err(|source| {
        LoggingError::CreateDirectory {
            directory: crate::adapters::journal::state_dir(project),
            source,
        }
    })?;
    let filter = filter_from(std::env::var(FILTER_VARIABLE).ok().as_deref())?;
    let file = RotatingFile::open(&path, DEFAULT_MAX_BYTES, DEFAULT_KEEP)
        .map_err(|source| LoggingError::Open { path, source })?;
    #[cfg(feature = "otel")]
    let (exporter, export): (_, ExportLayer) = match otlp {
        None => (None, None),
        Some(endpoint) => {
            let (exporter, layer) = crate::cli::otlp::Exporter::start(endpoint)?;
            (Some(exporter), Some(layer))
        }
    };
    #[cfg(not(feature = "otel"))]
    let export: ExportLayer = match otlp {
        None => None,
        Some(endpoint) => {
            return Err(LoggingError::OtlpUnavailable {
                endpoint: endpoint.clone(),
            });
        }
    };
    subscriber(file.clone(), filter, export)
        .try_init()
        .map_err(|source| LoggingError::AlreadyInitialized { source })?;
    Ok(LogGuard {
        file,
        #[cfg(feature = "otel")]
        _exporter: exporter,
    })
}

/// The filter for a value of `ORCHESTRATOR_LOG`: [`DEFAULT_FILTER`] when unset or blank.
fn filter_from(value: Option<&str>) -> Result<EnvFilter, LoggingError> {
    let value = value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .unwrap_or(DEFAULT_FILTER);
    EnvFilter::try_new(value).map_err(|source| LoggingError::Filter {
        value: value.to_string(),
        source,
    })
}

/// The subscriber `init` installs: plain text (no colours: it goes to a file) with timestamps and targets,
/// and the export's layer when there is one. `filter` is global: what it leaves out is neither logged nor
/// exported (nor are the HTTP client's own spans, which the export would otherwise send too).
fn subscriber(
    file: RotatingFile,
    filter: EnvFilter,
    export: ExportLayer,
) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry()
        .with(export)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(file)
                .with_ansi(false)
                .with_target(true),
        )
        .with(filter)
}

/// Keeps the log open; flushes it when dropped.
#[derive(Debug)]
#[must_use = "dropping the guard right away flushes the log too early"]
pub struct LogGuard {
    file: RotatingFile,
    /// Sends the spans not sent yet when dropped.
    #[cfg(feature = "otel")]
    _exporter: Option<crate::cli::otlp::Exporter>,
}

impl LogGuard {
    /// The log file.
    pub fn path(&self) -> PathBuf {
        self.file.path()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        // Nothing is left to tell about a failure here: the log is what would have said it.
        let _ = self.file.flush_file();
    }
}

/// A log file rotated by size: before a write that would make it larger than `max_bytes` (and at open when it
/// already is), `name` becomes `name.1`, `name.1` becomes `name.2` …, and `name.<keep>` is deleted.
///
/// Clones share the file; writes are serialized by a mutex, each one whole. It is a
/// [`MakeWriter`] for `tracing_subscriber::fmt`, whose formatter writes each event with one `write`.
///
/// ```
/// use std::io::Write;
///
/// let dir = tempfile::tempdir()?;
/// let log = orchestrator::cli::logging::RotatingFile::open(dir.path().join("app.log"), 16, 2)?;
/// (&log).write_all(b"first line\n")?;
/// (&log).write_all(b"second line\n")?; // 11 + 12 bytes > 16: app.log became app.log.1 first
/// assert_eq!(std::fs::read_to_string(dir.path().join("app.log"))?, "second line\n");
/// assert_eq!(std::fs::read_to_string(dir.path().join("app.log.1"))?, "first line\n");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RotatingFile {
    state: Arc<Mutex<RotatingState>>,
}

#[derive(Debug)]
struct RotatingState {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    /// The current file's size, as far as this process wrote it.
    size: u64,
}

impl RotatingFile {
    /// Opens `path` for appending (creating it), after rotating it if it is already `max_bytes` or larger.
    /// A `max_bytes` of 0 counts as 1; `keep` is how many rotated files are kept (0: none).
    ///
    /// # Errors
    ///
    /// The file cannot be rotated, created or opened.
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64, keep: usize) -> io::Result<RotatingFile> {
        let path = path.into();
        let max_bytes = max_bytes.max(1);
        match fs::metadata(&path) {
            Ok(metadata) if metadata.len() >= max_bytes => rotate(&path, keep)?,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let file = append(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            state: Arc::new(Mutex::new(RotatingState {
                path,
                max_bytes,
                keep,
                file,
                size,
            })),
        })
    }

    /// The file written to.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    fn lock(&self) -> MutexGuard<'_, RotatingState> {
        // A panic while writing leaves at worst a partial line: keep logging.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flush_file(&self) -> io::Result<()> {
        self.lock().file.flush()
    }
}

impl RotatingState {
    fn write_whole(&mut self, buf: &[u8]) -> io::Result<()> {
        let len = buf.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.max_bytes {
            // If rotating fails (a read-only directory, the project deleted), keep writing to the current
            // file rather than lose the line; the next write tries again.
            if rotate(&self.path, self.keep).is_ok()
                && let Ok(file) = append(&self.path)
            {
                self.file = file;
                self.size = 0;
            }
        }
        self.file.write_all(buf)?;
        self.size = self.size.saturating_add(len);
        Ok(())
    }
}

impl Write for &RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write_whole(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_file()
    }
}

impl<'a> MakeWriter<'a> for RotatingFile {
    type Writer = &'a RotatingFile;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Opens `path` for appending, creating it.
fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `path` with `.n` appended: `orchestrator.log.3`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Shifts `path.(keep-1)` → `path.keep` … `path.1` → `path.2`, then `path` → `path.1`; the old `path.keep`
/// is deleted. With `keep` 0, `path` is deleted.
fn rotate(path: &Path, keep: usize) -> io::Result<()> {
    if keep == 0 {
        return ignore_missing(fs::remove_file(path));
    }
    ignore_missing(fs::remove_file(numbered(path, keep)))?;
    for n in (1..keep).rev() {
        ignore_missing(fs::rename(numbered(path, n), numbered(path, n + 1)))?;
    }
    ignore_missing(fs::rename(path, numbered(path, 1)))
}

/// `result`, with "no such file" counting as done: a rotated file that is not there needs no moving.
fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    /// Line `n`, 10 bytes with its newline.
    fn line(n: usize) -> String {
        format!("line {n:04}\n")
    }

    #[test]
    fn rotation_by_size_keeps_five_files_and_the_newest_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LOG_FILE);
        // 25 bytes hold two 10-byte lines: every third line rotates.
        let log = RotatingFile::open(&path, 25, DEFAULT_KEEP).expect("open");
        for n in 0..20 {
            (&log).write_all(line(n).as_bytes()).expect("write");
        }

        assert_eq!(read(&path), format!("{}{}", line(18), line(19)));
        for kept in 1..=DEFAULT_KEEP {
            let first = 18 - 2 * kept;
            assert_eq!(
                read(&numbered(&path, kept)),
                format!("{}{}", line(first), line(first + 1)),
                "{LOG_FILE}.{kept}"
            );
        }
        assert!(
            !numbered(&path, DEFAULT_KEEP + 1).exists(),
            "the 6th is deleted"
        );
        assert_eq!(
            fs::read_dir(dir.path()).expect("read_dir").count(),
            DEFAULT_KEEP + 1
        );
    }

    #[test]
    fn a_write_after_rotation_goes_to_the_new_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LOG_FILE);
        let log = RotatingFile::open(&path, 16, 2).expect("open");
        (&log).write_all(line(1).as_bytes()).expect("write");
        (&log).write_all(line(2).as_bytes()).expect("write"); // rotates first
        (&log).write_all(b"after\n").expect("write");

        assert_eq!(read(&path), format!("{}after\n", line(2)));
        assert_eq!(read(&numbered(&path, 1)), line(1));

        // A file renamed away by someone else is recreated at the next rotation.
        fs::remove_file(&path).expect("rm");
        (&log).write_all(line(3).as_bytes()).expect("write");
        assert_eq!(read(&path), line(3));
    }

    #[test]
    fn a_log_already_too_large_is_rotated_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LOG_FILE);
        fs::write(&path, "x".repeat(40)).expect("write");
        fs::write(numbered(&path, 1), "older").expect("write");

        let log = RotatingFile::open(&path, 40, 3).expect("open");
        assert_eq!(read(&path), "");
        assert_eq!(read(&numbered(&path, 1)), "x".repeat(40));
        assert_eq!(read(&numbered(&path, 2)), "older");

        // A smaller one is appended to.
        drop(log);
        fs::write(&path, "small\n").expect("write");
        let log = RotatingFile::open(&path, 40, 3).expect("open");
        (&log).write_all(b"more\n").expect("write");
        assert_eq!(read(&path), "small\nmore\n");
    }

    #[test]
    fn events_are_written_through_the_filter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LOG_FILE);
        let file = RotatingFile::open(&path, DEFAULT_MAX_BYTES, DEFAULT_KEEP).expect("open");
        let filter = filter_from(None).expect("the default filter parses");
        tracing::subscriber::with_default(subscriber(file, filter, None), || {
            tracing::info!(task = "T1.1", "task started");
            tracing::debug!("not at the default level");
        });

        let text = read(&path);
        assert!(text.contains("INFO"), "{text}");
        assert!(text.contains("task started"), "{text}");
        assert!(text.contains("task=\"T1.1\""), "{text}");
        assert!(!text.contains("not at the default level"), "{text}");
        assert!(
            !text.contains('\u{1b}'),
            "no colour codes in a file: {text}"
        );
    }

    #[test]
    fn an_invalid_filter_is_reported() {
        assert!(filter_from(Some("  ")).is_ok(), "blank is the default");
        assert!(filter_from(Some("warn,orchestrator=trace")).is_ok());
        let error = filter_from(Some("orchestrator=loud")).expect_err("invalid");
        assert!(matches!(error, LoggingError::Filter { .. }), "{error}");
        assert!(error.to_string().contains(FILTER_VARIABLE), "{error}");
    }

    /// The only test that installs the process-wide subscriber (later events of other tests go to its file,
    /// which is harmless).
    #[test]
    fn init_creates_the_directory_and_a_second_init_is_reported() {
        let project = tempfile::tempdir().expect("tempdir");
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
        let first = init(project.path(), None);
        assert!(
            project
                .path()
                .join(".opencode")
                .join("orchestrator")
                .is_dir(),
            "the directory is created"
        );
        assert!(log_path(project.path()).is_file());
        tracing::info!("a line for the log");
        assert_eq!(
            git(&["status", "--porcelain", "--untracked-files=all"]),
            "",
            "the log is not for git"
        );
        if let Ok(guard) = &first {
            assert_eq!(guard.path(), log_path(project.path()));
        }
        let second = init(project.path(), None);
        assert!(
            matches!(second, Err(LoggingError::AlreadyInitialized { .. })),
            "{second:?}"
        );
    }
}
