//! Opening a durable store: lock the directory, load the snapshot, replay the log, truncate a torn tail.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::format::{self, FramesEnd, HeaderCheck, SnapshotFrame};
use super::log::Log;
use super::{Durability, OpenError, Signal, sync_directory};
use crate::Version;
use crate::store::{CommitRequest, Config, Core};

/// What opening a durable store found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// The version of the snapshot loaded (`Version::ZERO`: there was none).
    pub snapshot_version: Version,
    /// Keys loaded from the snapshot.
    pub snapshot_entries: u64,
    /// Log records replayed after the snapshot.
    pub commits_replayed: u64,
    /// The store's version after recovery.
    pub version: Version,
    /// Bytes of a torn tail truncated from the last log segment (0: none). They held one unacknowledged
    /// write, cut short by a crash.
    pub torn_bytes_dropped: u64,
}

/// Snapshot entries loaded into the index at once: each leaf is copied once per batch, not once per key.
const RECOVERY_BATCH: usize = 4096;

pub(crate) struct Recovered<K, V> {
    pub(crate) core: Core<K, V>,
    pub(crate) log: Log<K, V>,
    pub(crate) recovery: Recovery,
    pub(crate) lock: File,
}

fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> OpenError {
    OpenError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.into(),
    }
}

fn header_error(path: &Path, check: HeaderCheck) -> OpenError {
    match check {
        HeaderCheck::Incompatible(found) => OpenError::IncompatibleFormat {
            path: path.to_path_buf(),
            found,
            supported: format::FORMAT_VERSION,
        },
        HeaderCheck::WrongMagic => OpenError::NotAStore {
            path: path.to_path_buf(),
        },
        HeaderCheck::Torn => corrupt(path, 0, "the file is shorter than its header"),
        HeaderCheck::Valid => unreachable!("a valid header is not an error"),
    }
}

/// Takes the directory's lock file, or says who has it.
fn lock_directory(directory: &Path) -> Result<File, OpenError> {
    let path = directory.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| OpenError::io("open", &path, error))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `flock` on a file descriptor this function owns; it reads no memory.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let error = std::io::Error::last_os_error();
            return Err(if error.kind() == std::io::ErrorKind::WouldBlock {
                OpenError::Locked { path }
            } else {
                OpenError::io("lock", &path, error)
            });
        }
    }
    Ok(file)
}

/// The log segments in `directory`, sorted by first version.
fn segments(directory: &Path) -> Result<Vec<(u64, PathBuf)>, OpenError> {
    let mut segments = Vec::new();
    let entries = fs::read_dir(directory)
        .map_err(|error| OpenError::io("read the directory", directory, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| OpenError::io("read the directory", directory, error))?;
        if let Some(first) = entry
            .file_name()
            .to_str()
            .and_then(format::parse_segment_name)
        {
            segments.push((first, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Loads `snapshot` into a new core at its version. Returns the core and the number of entries.
fn load_snapshot<K, V>(path: &Path, config: Config) -> Result<(Core<K, V>, u64), OpenError>
where
    K: Ord + Clone + DeserializeOwned,
    V: DeserializeOwned,
{
    let bytes = fs::read(path).map_err(|error| OpenError::io("read", path, error))?;
    match format::check_header(&bytes, format::SNAPSHOT_MAGIC) {
        HeaderCheck::Valid => {}
        check => return Err(header_error(path, check)),
    }
    // First pass: every frame's checksum, and the trailer at the very end.
    let mut trailer = None;
    let mut frames = 0u64;
    let end = format::for_each_frame(&bytes, format::HEADER_LEN, |offset, payload| {
        if trailer.is_some() {
            return Err(corrupt(
                path,
                offset,
                "a frame follows the snapshot's trailer",
            ));
        }
        if let Ok(SnapshotFrame::Trailer { version, entries }) =
            format::decode_snapshot_frame::<K, V>(payload)
        {
            trailer = Some((version, entries));
        } else {
            frames += 1;
        }
        Ok(())
    })?;
    match end {
        FramesEnd::Clean => {}
        FramesEnd::Torn { offset } | FramesEnd::Corrupt { offset, .. } => {
            return Err(corrupt(
                path,
                offset,
                "a snapshot frame is cut short or fails its checksum",
            ));
        }
    }
    let Some((version, entries)) = trailer else {
        return Err(corrupt(
            path,
            bytes.len(),
            "the snapshot has no trailer (it was cut short)",
        ));
    };
    if entries != frames {
        return Err(corrupt(
            path,
            bytes.len(),
            format!("the trailer counts {entries} entries but the snapshot holds {frames}"),
        ));
    }
    // Second pass: the entries, in sorted batches (one leaf copy per leaf, not per key).
    let core = Core::new(config, version);
    let mut batch: Vec<(K, u64, V)> = Vec::new();
    let flush = |batch: &mut Vec<(K, u64, V)>, offset: usize| {
        core.recover_entries(std::mem::take(batch))
            .map_err(|reason| corrupt(path, offset, reason))
    };
    let mut last_offset = format::HEADER_LEN;
    format::for_each_frame(&bytes, format::HEADER_LEN, |offset, payload| {
        last_offset = offset;
        match format::decode_snapshot_frame::<K, V>(payload) {
            Ok(SnapshotFrame::Entry(key, key_version, value)) => {
                if key_version == 0 || key_version > version {
                    return Err(corrupt(
                        path,
                        offset,
                        format!(
                            "an entry has version {key_version}, outside the snapshot's 1..={version}"
                        ),
                    ));
                }
                if batch
                    .last()
                    .is_some_and(|(previous, _, _)| previous >= &key)
                {
                    return Err(corrupt(
                        path,
                        offset,
                        "the snapshot's keys are not in increasing order",
                    ));
                }
                batch.push((key, key_version, value));
                if batch.len() == RECOVERY_BATCH {
                    // Keys out of order across batches show as duplicates (`recover_entries` counts them).
                    flush(&mut batch, offset)?;
                }
                Ok(())
            }
            Ok(SnapshotFrame::Trailer { .. }) => Ok(()),
            Err(error) => Err(corrupt(
                path,
                offset,
                format!("an entry does not decode as this store's key and value types: {error}"),
            )),
        }
    })?;
    flush(&mut batch, last_offset)?;
    Ok((core, entries))
}

pub(crate) fn recover<K, V>(
    directory: &Path,
    config: Config,
    durability: Durability,
    checkpoint_bytes: u64,
    signal: &Arc<Signal>,
) -> Result<Recovered<K, V>, OpenError>
where
    K: Ord + Clone + Send + Sync + Serialize + DeserializeOwned,
    V: Send + Sync + Serialize + DeserializeOwned,
{
    fs::create_dir_all(directory).map_err(|error| OpenError::io("create", directory, error))?;
    let lock = lock_directory(directory)?;
    let temporary = directory.join("snapshot.tmp");
    if temporary.exists() {
        // A checkpoint that never finished; the snapshot it was replacing is still whole.
        fs::remove_file(&temporary).map_err(|error| OpenError::io("remove", &temporary, error))?;
    }

    let snapshot_path = directory.join("snapshot");
    let (core, snapshot_entries) = if snapshot_path.exists() {
        load_snapshot::<K, V>(&snapshot_path, config)?
    } else {
        (Core::new(config, 0), 0)
    };
    let snapshot_version = core.feed.visible_version();

    let segments = segments(directory)?;
    let mut next = snapshot_version + 1;
    let mut commits_replayed = 0u64;
    let mut torn_bytes_dropped = 0u64;
    let mut active: Option<(u64, PathBuf)> = None;
    for (index, (first, path)) in segments.iter().enumerate() {
        let last_segment = index + 1 == segments.len();
        let bytes = fs::read(path).map_err(|error| OpenError::io("read", path, error))?;
        match format::check_header(&bytes, format::LOG_MAGIC) {
            HeaderCheck::Valid => {}
            HeaderCheck::Torn if last_segment => {
                // Creating the segment was cut short: nothing was ever appended to it.
                let mut file = OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(path)
                    .map_err(|error| OpenError::io("open", path, error))?;
                file.write_all(&format::header(format::LOG_MAGIC))
                    .and_then(|()| file.sync_all())
                    .map_err(|error| OpenError::io("write", path, error))?;
                torn_bytes_dropped += bytes.len() as u64;
                active = Some((*first, path.clone()));
                continue;
            }
            check => return Err(header_error(path, check)),
        }
        let mut expected_in_segment = *first;
        let end = format::for_each_frame(&bytes, format::HEADER_LEN, |offset, payload| {
            let (version, changes): format::Record<K, V> =
                format::decode_record(payload).map_err(|error| {
                    corrupt(
                        path,
                        offset,
                        format!(
                            "a record does not decode as this store's key and value types: {error}"
                        ),
                    )
                })?;
            if version != expected_in_segment {
                return Err(corrupt(
                    path,
                    offset,
                    format!(
                        "expected the record of version {expected_in_segment}, found version {version}"
                    ),
                ));
            }
            expected_in_segment += 1;
            if version < next {
                return Ok(()); // Covered by the snapshot.
            }
            if version != next {
                return Err(corrupt(
                    path,
                    offset,
                    format!(
                        "the commits from version {next} to {} are missing",
                        version - 1
                    ),
                ));
            }
            let writes = changes
                .into_iter()
                .map(|(key, value)| (key, value.map(Arc::new)))
                .collect();
            let replayed = core.commit(CommitRequest {
                snapshot: None,
                writes,
                reads: Vec::new(),
                expectations: Vec::new(),
            });
            debug_assert_eq!(replayed.ok().map(Version::get), Some(version));
            next += 1;
            commits_replayed += 1;
            Ok(())
        })?;
        match end {
            FramesEnd::Clean => {}
            FramesEnd::Torn { offset } if last_segment => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|error| OpenError::io("open", path, error))?;
                file.set_len(offset as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(|error| OpenError::io("truncate the torn tail of", path, error))?;
                torn_bytes_dropped += (bytes.len() - offset) as u64;
            }
            FramesEnd::Torn { offset } => {
                return Err(corrupt(
                    path,
                    offset,
                    "a record is cut short or fails its checksum in a segment that is not the last",
                ));
            }
            FramesEnd::Corrupt { offset, next_valid } => {
                return Err(corrupt(
                    path,
                    offset,
                    format!(
                        "a record is damaged (cut short or failing its checksum) but a valid record follows at \
                         byte {next_valid}: this is not a torn write"
                    ),
                ));
            }
        }
        active = Some((*first, path.clone()));
    }
    let version = next - 1;

    // Go on appending to the last segment, or start one.
    let (segment_first, file) = match active {
        Some((first, path)) => {
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|error| OpenError::io("open", &path, error))?;
            (first, file)
        }
        None => {
            let path = directory.join(format::segment_name(next));
            let mut file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(|error| OpenError::io("create", &path, error))?;
            file.write_all(&format::header(format::LOG_MAGIC))
                .and_then(|()| file.sync_all())
                .and_then(|()| sync_directory(directory))
                .map_err(|error| OpenError::io("write", &path, error))?;
            (next, file)
        }
    };
    let log = Log::new(
        directory.to_path_buf(),
        durability,
        file,
        version,
        segment_first,
        checkpoint_bytes,
        Arc::clone(signal),
    );
    Ok(Recovered {
        core,
        log,
        recovery: Recovery {
            snapshot_version: Version::new(snapshot_version),
            snapshot_entries,
            commits_replayed,
            version: Version::new(version),
            torn_bytes_dropped,
        },
        lock,
    })
}
