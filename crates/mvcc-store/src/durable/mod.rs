//! Durability (feature `durable`): a checksummed append-only commit log, compacted snapshots, recovery.
//!
//! A durable store lives in a directory:
//!
//! * `log-<first version>`: log segments, one frame per commit (see [`format`]). Commits are appended to
//!   the newest segment by group commit ([`log`]).
//! * `snapshot`: the newest compacted snapshot, every live key with its version and value as of one
//!   version. It is written to `snapshot.tmp`, synced, renamed over `snapshot` and the directory synced, so
//!   `snapshot` is always a whole snapshot.
//! * `LOCK`: held with `flock` while a process has the store open.
//!
//! A checkpoint (run in the background when the log has grown by `checkpoint_bytes`, or by
//! [`Store::checkpoint`]) starts a new segment at the next version, writes a snapshot of the version before
//! it from an MVCC snapshot (so commits and reads go on meanwhile), and then deletes the older segments.
//! Opening loads the snapshot, replays the segments after it and truncates a torn tail: a last frame cut
//! short or failing its checksum with nothing valid after it, which can only be a write that was never
//! acknowledged. Damage anywhere else is reported as [`OpenError::Corrupt`], never skipped silently.

pub(crate) mod format;
pub(crate) mod log;
mod recovery;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Version;
use crate::error::BuildError;
use crate::store::{Core, Store, StoreBuilder};
use crate::sync::{self, Condvar, Mutex, Ordering};

pub use recovery::Recovery;

use self::log::Log;

/// When a commit counts as durable: when `commit` may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// The commit's log record is written and synced (`fdatasync`) before the commit returns: it survives
    /// the process being killed and the machine losing power. Concurrent commits share one sync (group
    /// commit).
    Fsync,
    /// The commit's log record is written to the operating system before the commit returns, not synced: it
    /// survives the process being killed (`kill -9`), not an operating-system crash or power loss.
    Buffered,
}

/// Why a durable store could not be opened. Nothing on disk is changed by a failed open, except that a
/// torn tail found before the failure may have been truncated already (it held no acknowledged commit).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Reading or writing a file failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another `Store` in this one) has the store open.
    #[error("{path} is locked: another process has this store open")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A file was written by a different format version of this crate.
    #[error(
        "{path} is in store format version {found}; this build reads format version {supported} only"
    )]
    IncompatibleFormat {
        /// The file.
        path: PathBuf,
        /// The format version the file says it has.
        found: u32,
        /// The only format version this build reads.
        supported: u32,
    },
    /// A file in the directory does not start like a store file.
    #[error("{path} is not a store file (its first bytes are not a log or snapshot header)")]
    NotAStore {
        /// The file.
        path: PathBuf,
    },
    /// A file is damaged somewhere other than a torn tail, or its records do not fit together.
    #[error("{path} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A builder setting is out of range.
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl OpenError {
    pub(crate) fn io(operation: &'static str, path: &Path, source: io::Error) -> Self {
        OpenError::Io {
            operation,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A flag the log raises when a checkpoint is due, and the background checkpointer waits on.
pub(crate) struct Signal {
    state: Mutex<(bool, bool)>,
    condvar: Condvar,
}

impl Signal {
    fn new() -> Self {
        Signal {
            state: Mutex::new((false, false)),
            condvar: Condvar::new(),
        }
    }

    /// Asks for a checkpoint.
    pub(crate) fn raise(&self) {
        let mut state = sync::lock(&self.state);
        if !state.0 {
            state.0 = true;
            self.condvar.notify_all();
        }
    }

    fn stop(&self) {
        sync::lock(&self.state).1 = true;
        self.condvar.notify_all();
    }

    /// Waits until raised or stopped; returns `false` when stopped.
    fn wait(&self) -> bool {
        let mut state = sync::lock(&self.state);
        while !state.0 && !state.1 {
            state = sync::wait(&self.condvar, state);
        }
        state.0 = false;
        !state.1
    }
}

/// What a durable store owns besides its core: the log, the directory lock and the checkpointer thread.
pub(crate) struct Background {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
    pub(crate) checkpoint: Arc<dyn Fn() -> io::Result<Version> + Send + Sync>,
    pub(crate) recovery: Recovery,
    pub(crate) last_checkpoint_error: Arc<Mutex<Option<String>>>,
    /// Held (with `flock`) while the store is open; closing it releases the lock.
    _lock: File,
}

impl Drop for Background {
    fn drop(&mut self) {
        self.signal.stop();
        if let Some(thread) = self.thread.take() {
            // A checkpointer that panicked has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl<K, V> StoreBuilder<K, V> {
    /// After how many bytes of log a checkpoint runs in the background (a compacted snapshot, after which
    /// the older log segments are deleted). At least 1. Default 64 MiB.
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }
}

impl<K, V> StoreBuilder<K, V>
where
    K: Ord + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// Opens (or creates) the durable store in directory `path`, recovering it from its snapshot and log.
    ///
    /// # Errors
    ///
    /// [`OpenError`] naming the file and what was wrong with it; see [`Store::open`].
    pub fn open(
        self,
        path: impl AsRef<Path>,
        durability: Durability,
    ) -> Result<Store<K, V>, OpenError> {
        let config = self.config()?;
        if self.checkpoint_bytes == 0 {
            return Err(BuildError::Zero {
                field: "checkpoint_bytes",
            }
            .into());
        }
        let directory = path.as_ref().to_path_buf();
        let signal = Arc::new(Signal::new());
        let recovered = recovery::recover::<K, V>(
            &directory,
            config,
            durability,
            self.checkpoint_bytes,
            &signal,
        )?;
        let mut core = recovered.core;
        let log = Arc::new(recovered.log);
        core.journal = Some(Arc::clone(&log) as Arc<dyn crate::store::Journal<K, V>>);
        let core = Arc::new(core);
        let last_checkpoint_error = Arc::new(Mutex::new(None));
        let checkpoint: Arc<dyn Fn() -> io::Result<Version> + Send + Sync> = {
            let core = Arc::clone(&core);
            let log = Arc::clone(&log);
            Arc::new(move || checkpoint(&core, &log))
        };
        let thread = {
            let checkpoint = Arc::clone(&checkpoint);
            let signal = Arc::clone(&signal);
            let errors = Arc::clone(&last_checkpoint_error);
            std::thread::Builder::new()
                .name("mvcc-store-checkpoint".to_string())
                .spawn(move || {
                    while signal.wait() {
                        let outcome = checkpoint();
                        *sync::lock(&errors) = outcome.err().map(|error| error.to_string());
                    }
                })
                .map_err(|error| {
                    OpenError::io("start the checkpoint thread for", &directory, error)
                })?
        };
        Ok(Store {
            core,
            background: Some(Background {
                signal,
                thread: Some(thread),
                checkpoint,
                recovery: recovered.recovery,
                last_checkpoint_error,
                _lock: recovered.lock,
            }),
        })
    }
}

impl<K, V> Store<K, V>
where
    K: Ord + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// Opens (or creates) the durable store in directory `path` with the default settings, recovering it:
    /// the newest snapshot is loaded, the log segments after it are replayed, and a torn tail (a last
    /// record cut short or failing its checksum, with nothing valid after it: a write no commit was
    /// acknowledged for) is truncated. [`recovery`](Store::recovery) says what was found.
    ///
    /// ```
    /// use mvcc_store::{Durability, Store};
    ///
    /// let directory = tempfile::tempdir()?;
    /// {
    ///     let store = Store::<String, u64>::open(directory.path(), Durability::Fsync)?;
    ///     store.put("answer".to_string(), 42)?;
    /// }
    /// let store = Store::<String, u64>::open(directory.path(), Durability::Fsync)?;
    /// assert_eq!(store.get("answer").as_deref(), Some(&42));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`OpenError`]: the directory cannot be created or read, another process holds it
    /// ([`OpenError::Locked`]), a file is from another format version ([`OpenError::IncompatibleFormat`],
    /// naming both versions), or damaged other than at a torn tail ([`OpenError::Corrupt`], naming the file
    /// and the byte offset).
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self, OpenError> {
        StoreBuilder::new().open(path, durability)
    }
}

impl<K, V> Store<K, V> {
    /// Writes a compacted snapshot now and deletes the log segments it covers; returns its version. Commits
    /// and reads go on meanwhile (commits wait only while the log is switched to a new segment). Does
    /// nothing and returns `None` for an in-memory store.
    ///
    /// # Errors
    ///
    /// The I/O error that stopped it; the store and its files stay as they were (a snapshot is only ever
    /// renamed into place whole).
    pub fn checkpoint(&self) -> io::Result<Option<Version>> {
        match &self.background {
            Some(background) => (background.checkpoint)().map(Some),
            None => Ok(None),
        }
    }

    /// What opening a durable store found: the snapshot's version, the commits replayed, and the bytes of a
    /// torn tail dropped. `None` for an in-memory store.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.background
            .as_ref()
            .map(|background| &background.recovery)
    }

    /// The error of the last background checkpoint, if it failed (it is retried when the log grows again).
    pub fn last_checkpoint_error(&self) -> Option<String> {
        self.background
            .as_ref()
            .and_then(|background| sync::lock(&background.last_checkpoint_error).clone())
    }
}

/// Syncs a directory, so that files created, renamed or deleted in it stay so after a crash.
pub(crate) fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

/// A checkpoint: a new segment at the next version, a snapshot of everything before it, then the older
/// segments go.
fn checkpoint<K, V>(core: &Core<K, V>, log: &Log<K, V>) -> io::Result<Version>
where
    K: Ord + Clone + Send + Sync + Serialize,
    V: Send + Sync + Serialize,
{
    let _one_at_a_time = sync::lock(&log.checkpointing);
    let writer = sync::lock(&core.writer);
    let through = writer.last_assigned;
    // Everything appended is made durable (and so published) while no commit can append more.
    crate::store::Journal::wait_durable(log, through, &core.feed).map_err(|error| match error {
        crate::CommitError::Log { source } => source,
        crate::CommitError::Failed { reason } => io::Error::other(reason),
        _ => io::Error::other("the log could not be made durable"),
    })?;
    {
        let mut state = log.idle_state();
        if state.segment_first != through + 1 {
            let name = format::segment_name(through + 1);
            let path = log.directory.join(&name);
            let mut file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            file.write_all(&format::header(format::LOG_MAGIC))?;
            file.sync_all()?;
            sync_directory(&log.directory)?;
            state.file = Some(file);
            state.segment_first = through + 1;
        }
        // Relaxed: a counter; the locks held order it with the flushes.
        log.bytes_since_checkpoint.store(0, Ordering::Relaxed);
    }
    let snapshot = core.snapshot();
    drop(writer);
    debug_assert_eq!(snapshot.version().get(), through);

    let temporary = log.directory.join("snapshot.tmp");
    let file = File::create(&temporary)?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    out.write_all(&format::header(format::SNAPSHOT_MAGIC))?;
    let mut frame = Vec::new();
    let mut entries = 0u64;
    for (key, version, value) in snapshot.iter_with_versions() {
        frame.clear();
        format::append_snapshot_entry(&mut frame, key, version, value)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
        out.write_all(&frame)?;
        entries += 1;
    }
    frame.clear();
    format::append_snapshot_trailer(&mut frame, through, entries);
    out.write_all(&frame)?;
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    drop(file);
    drop(snapshot);
    fs::rename(&temporary, log.directory.join("snapshot"))?;
    sync_directory(&log.directory)?;

    for entry in fs::read_dir(&log.directory)? {
        let entry = entry?;
        if let Some(first) = entry
            .file_name()
            .to_str()
            .and_then(format::parse_segment_name)
            && first <= through
        {
            fs::remove_file(entry.path())?;
        }
    }
    sync_directory(&log.directory)?;
    Ok(Version::new(through))
}

/// Decodes a store file held in memory the way recovery does (a log segment or a snapshot, by its header),
/// for the fuzz target: it must never panic, whatever the bytes. Returns how many changes or entries
/// decoded.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_decode_file(bytes: &[u8]) -> usize {
    let mut decoded = 0;
    if format::check_header(bytes, format::LOG_MAGIC) == format::HeaderCheck::Valid {
        let _ =
            format::for_each_frame::<postcard::Error>(bytes, format::HEADER_LEN, |_, payload| {
                let (_version, changes): format::Record<String, Vec<u8>> =
                    format::decode_record(payload)?;
                decoded += changes.len();
                Ok(())
            });
    } else if format::check_header(bytes, format::SNAPSHOT_MAGIC) == format::HeaderCheck::Valid {
        let _ =
            format::for_each_frame::<postcard::Error>(bytes, format::HEADER_LEN, |_, payload| {
                if let format::SnapshotFrame::Entry(..) =
                    format::decode_snapshot_frame::<String, Vec<u8>>(payload)?
                {
                    decoded += 1;
                }
                Ok(())
            });
    }
    decoded
}

/// Encodes one log record of `changes` at `version` as recovery expects it, for the fuzz target.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_encode_record(
    out: &mut Vec<u8>,
    version: u64,
    changes: &[(String, Option<Arc<Vec<u8>>>)],
) {
    format::append_frame(out, |out| {
        format::encode_into(out, &format::RecordRef { version, changes })
    })
    .expect("strings and byte vectors always encode");
}

/// The header of a log segment, for the fuzz target.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_log_header() -> [u8; 16] {
    format::header(format::LOG_MAGIC)
}
