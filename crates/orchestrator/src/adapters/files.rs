//! Files written so that a crash leaves either the old content or the new one, never a mix of both.
//!
//! [`write_atomically`] is the one way this crate replaces a file that someone reads: the new bytes go to a
//! temporary file in the same directory (a rename is only atomic within one file system), which is flushed to
//! disk and renamed over the target; then the directory is flushed too, so the rename itself is on disk when
//! the call returns. A reader sees the old file or the new one; after a crash the disk holds one of them.
//!
//! ```
//! use orchestrator::adapters::files;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("status.json");
//! files::write_atomically(&path, b"{}")?;
//! files::write_atomically(&path, b"{\"done\": true}")?;
//! assert_eq!(std::fs::read(&path)?, b"{\"done\": true}");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// One step of [`write_atomically`], in order; a [`WriteError`] says which one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteStep {
    /// Creating the temporary file and writing the content into it.
    WriteTemp,
    /// Flushing the temporary file to disk.
    SyncFile,
    /// Renaming the temporary file over the target.
    Rename,
    /// Flushing the directory, so that the rename is on disk.
    SyncDir,
}

impl fmt::Display for WriteStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteStep::WriteTemp => "write the temporary file for",
            WriteStep::SyncFile => "flush the temporary file for",
            WriteStep::Rename => "rename the temporary file onto",
            WriteStep::SyncDir => "flush the directory of",
        })
    }
}

/// Why [`write_atomically_with`] failed: the file, the step and what the OS said. The target keeps its old
/// content unless the step was [`WriteStep::SyncDir`] (then the new content is in place but may not survive
/// a crash); the temporary file is gone.
#[derive(Debug, thiserror::Error)]
#[error("could not {step} {}: {source}", path.display())]
pub struct WriteError {
    /// The file being written.
    pub path: PathBuf,
    /// The step that failed.
    pub step: WriteStep,
    /// What the OS said.
    #[source]
    pub source: io::Error,
}

impl From<WriteError> for io::Error {
    /// Keeps the OS error's kind, and the path and step in the message.
    fn from(error: WriteError) -> Self {
        io::Error::new(error.source.kind(), error)
    }
}

/// Replaces the content of `path` with `bytes` atomically (see the [module docs](self)); an existing file
/// keeps its permissions, a new one gets the usual ones (`0o666` less the umask, as `fs::write` gives).
///
/// The directory must exist: [`create_dirs`] makes it.
///
/// # Errors
///
/// The failed step's I/O error, with the path and the step in its message (its inner error is the
/// [`WriteError`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with(path, bytes, None, |_| Ok(())).map_err(io::Error::from)
}

/// [`write_atomically`] with the permissions to give the file (`None`: as [`write_atomically`] does) and a
/// checkpoint called before each step, whose error fails that step: callers that must undo their other
/// changes on any failure use it to simulate a full disk at every step in their tests.
///
/// # Errors
///
/// A [`WriteError`] naming the file and the step that failed.
pub fn write_atomically_with(
    path: &Path,
    bytes: &[u8],
    permissions: Option<fs::Permissions>,
    mut checkpoint: impl FnMut(WriteStep) -> io::Result<()>,
) -> Result<(), WriteError> {
    let at = |step: WriteStep| {
        move |source: io::Error| WriteError {
            path: path.to_path_buf(),
            step,
            source,
        }
    };
    let dir = parent_dir(path);
    let permissions = permissions.or_else(|| fs::metadata(path).ok().map(|m| m.permissions()));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    checkpoint(WriteStep::WriteTemp).map_err(at(WriteStep::WriteTemp))?;
    // Dropping `temp` on any error below deletes the temporary file.
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    if permissions.is_none() {
        use std::os::unix::fs::PermissionsExt as _;
        // Not tempfile's private 0o600: a new file gets what any other new file gets.
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    let mut temp = builder.tempfile_in(dir).map_err(at(WriteStep::WriteTemp))?;
    temp.write_all(bytes).map_err(at(WriteStep::WriteTemp))?;
    if let Some(permissions) = permissions {
        fs::set_permissions(temp.path(), permissions).map_err(at(WriteStep::WriteTemp))?;
    }
    checkpoint(WriteStep::SyncFile).map_err(at(WriteStep::SyncFile))?;
    temp.as_file().sync_all().map_err(at(WriteStep::SyncFile))?;
    checkpoint(WriteStep::Rename).map_err(at(WriteStep::Rename))?;
    temp.persist(path)
        .map_err(|error| at(WriteStep::Rename)(error.error))?;
    checkpoint(WriteStep::SyncDir).map_err(at(WriteStep::SyncDir))?;
    sync_dir(dir).map_err(at(WriteStep::SyncDir))
}

/// Creates `dir` and its missing parents, each one flushed into its own parent, and appends every directory
/// it made to `made`, parents first, as soon as it is made (so that after an error, `made` still lists what
/// to remove to undo the call).
///
/// # Errors
///
/// The first I/O error, with `made` holding the directories made before it.
pub fn create_dirs(dir: &Path, made: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut current = dir;
    while fs::symlink_metadata(current).is_err() {
        missing.push(current.to_path_buf());
        match current.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => current = parent,
            _ => break,
        }
    }
    for dir in missing.into_iter().rev() {
        match fs::create_dir(&dir) {
            Ok(()) => {
                made.push(dir.clone());
                sync_dir(parent_dir(&dir))?;
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Flushes a directory's entries to disk: after a rename, a create or a remove in `dir`, this makes the
/// change survive a crash.
///
/// # Errors
///
/// The I/O error of opening or flushing the directory.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        write_atomically(&path, b"one").expect("first");
        write_atomically(&path, b"two").expect("second");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["a.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn keeps_the_mode_of_an_existing_file_and_gives_a_new_one_the_usual_mode() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().expect("tempdir");
        let existing = dir.path().join("script.sh");
        fs::write(&existing, "old").expect("write");
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o751)).expect("chmod");
        write_atomically(&existing, b"new").expect("write");
        let mode = fs::metadata(&existing)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o751);

        let plain = dir.path().join("plain");
        fs::write(&plain, "").expect("write");
        let usual = fs::metadata(&plain).expect("metadata").permissions().mode() & 0o777;
        let new = dir.path().join("new");
        write_atomically(&new, b"x").expect("write");
        let mode = fs::metadata(&new).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, usual, "as fs::write would have made it");
    }

    #[test]
    fn a_failure_names_the_file_and_the_step_and_keeps_the_old_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        write_atomically(&path, b"old").expect("write");
        for failing in [WriteStep::WriteTemp, WriteStep::SyncFile, WriteStep::Rename] {
            let error = write_atomically_with(&path, b"new", None, |step| {
                if step == failing {
                    Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
                } else {
                    Ok(())
                }
            })
            .expect_err("fails");
            assert_eq!(error.step, failing);
            assert_eq!(fs::read(&path).expect("read"), b"old", "at {failing:?}");
            let error = io::Error::from(error);
            assert_eq!(error.kind(), io::ErrorKind::StorageFull);
            let message = error.to_string();
            assert!(
                message.contains("status.json") && message.contains("disk full"),
                "{message}"
            );
        }
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);

        let missing = dir.path().join("no/such/dir/file");
        let message = write_atomically(&missing, b"x")
            .expect_err("no directory")
            .to_string();
        assert!(message.contains("no/such/dir/file"), "{message}");
    }

    #[test]
    fn create_dirs_lists_what_it_made_parents_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("a/b/c");
        let mut made = Vec::new();
        create_dirs(&deep, &mut made).expect("create");
        assert!(deep.is_dir());
        assert_eq!(
            made,
            [dir.path().join("a"), dir.path().join("a/b"), deep.clone()]
        );
        let mut again = Vec::new();
        create_dirs(&deep, &mut again).expect("exists");
        assert!(again.is_empty());
    }
}
