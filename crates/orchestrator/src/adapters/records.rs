//! Mission records on disk: `<project>/.opencode/orchestrator/memory/<mission>.md`, plain markdown files a
//! user may read, edit or delete. A file that does not read as a record is skipped with a warning.

use std::io;
use std::path::{Path, PathBuf};

use crate::adapters::files::write_atomically;
use crate::domain::recall::{KeepError, MissionRecord, RecordError};

/// Where a project's mission records are kept: `<project>/.opencode/orchestrator/memory/`.
pub fn memory_dir(project: &Path) -> PathBuf {
    project
        .join(".opencode")
        .join("orchestrator")
        .join("memory")
}

/// A record file that could not be read as one.
#[derive(Debug)]
pub struct Damaged {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// The records of one project's missions.
#[derive(Debug, Clone)]
pub struct RecordShelf {
    directory: PathBuf,
}

impl RecordShelf {
    /// The records of the project at `project`.
    pub fn new(project: &Path) -> Self {
        Self {
            directory: memory_dir(project),
        }
    }

    /// The directory they are kept in.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The file of `mission`'s record.
    pub fn path(&self, mission: &str) -> PathBuf {
        self.directory.join(format!("{mission}.md"))
    }

    /// Every record that reads, newest first, and the files that do not. A record whose heading names
    /// another mission than its file is damaged too (a copied file would otherwise count twice).
    pub fn read_all(&self) -> (Vec<(PathBuf, MissionRecord)>, Vec<Damaged>) {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.directory)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
            .collect();
        paths.sort();
        let mut records = Vec::new();
        let mut damaged = Vec::new();
        for path in paths {
            match read_record(&path) {
                Ok(record) => records.push((path, record)),
                Err(reason) => damaged.push(Damaged { path, reason }),
            }
        }
        records.sort_by(|(_, a), (_, b)| {
            b.ended_ms
                .cmp(&a.ended_ms)
                .then_with(|| b.mission.cmp(&a.mission))
        });
        (records, damaged)
    }

    /// The text of `mission`'s record.
    ///
    /// # Errors
    ///
    /// The I/O error (`NotFound` when there is none).
    pub fn read(&self, mission: &str) -> io::Result<String> {
        std::fs::read_to_string(self.path(mission))
    }

    /// The readable records of missions other than `except`, newest first; each damaged one is skipped
    /// with a warning in the log.
    pub fn earlier(&self, except: &str) -> Vec<MissionRecord> {
        let (records, damaged) = self.read_all();
        for damaged in damaged {
            tracing::warn!(
                path = %damaged.path.display(),
                reason = %damaged.reason,
                "a mission record is damaged: skipped"
            );
        }
        records
            .into_iter()
            .map(|(_, record)| record)
            .filter(|record| record.mission != except)
            .collect()
    }

    /// Writes `mission`'s record (atomically, replacing an earlier one), returning where.
    ///
    /// # Errors
    ///
    /// [`KeepError`] when the directory or the file cannot be written.
    pub fn keep(&self, record: &MissionRecord) -> Result<PathBuf, KeepError> {
        let path = self.path(&record.mission);
        let error = |source| KeepError {
            action: "write",
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.directory).map_err(error)?;
        write_atomically(&path, record.render().as_bytes()).map_err(error)?;
        Ok(path)
    }

    /// Removes `mission`'s record, returning where it was.
    ///
    /// # Errors
    ///
    /// [`KeepError`] when it cannot be removed (its source is `NotFound` when there is none).
    pub fn forget(&self, mission: &str) -> Result<PathBuf, KeepError> {
        let path = self.path(mission);
        std::fs::remove_file(&path).map_err(|source| KeepError {
            action: "remove",
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// A file read as a record, or why it is not one.
fn read_record(path: &Path) -> Result<MissionRecord, String> {
    let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    let record = MissionRecord::parse(&text).map_err(|error: RecordError| error.to_string())?;
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_default();
    if record.mission != stem {
        return Err(format!(
            "its heading names mission {} but the file is {stem}.md",
            record.mission
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mission: &str, ended_ms: u64) -> MissionRecord {
        MissionRecord {
            mission: mission.to_string(),
            ended_ms,
            outcome: "completed".to_string(),
            goal: format!("goal of {mission}"),
            sections: vec![("Checks".to_string(), vec!["`make`: passed 1".to_string()])],
        }
    }

    #[test]
    fn kept_records_read_back_newest_first_and_damaged_ones_are_skipped() {
        let project = tempfile::tempdir().unwrap();
        let shelf = RecordShelf::new(project.path());
        assert!(shelf.earlier("m0").is_empty(), "no directory yet");
        let older = shelf.keep(&record("m1", 1_765_000_000_000)).unwrap();
        shelf.keep(&record("m2", 1_765_000_100_000)).unwrap();
        assert_eq!(older, memory_dir(project.path()).join("m1.md"));
        std::fs::write(shelf.path("m3"), "not a record\n").unwrap();
        std::fs::write(shelf.path("m4"), [0xff, 0xfe, 0x00]).unwrap();
        std::fs::write(shelf.path("m5"), record("m1", 5).render()).unwrap();
        let (records, damaged) = shelf.read_all();
        let missions: Vec<&str> = records.iter().map(|(_, r)| r.mission.as_str()).collect();
        assert_eq!(missions, ["m2", "m1"]);
        let damaged: Vec<String> = damaged
            .iter()
            .map(|d| d.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(damaged, ["m3.md", "m4.md", "m5.md"]);
        let earlier: Vec<String> = shelf
            .earlier("m2")
            .into_iter()
            .map(|record| record.mission)
            .collect();
        assert_eq!(earlier, ["m1"]);
    }

    #[test]
    fn forget_removes_the_file_and_says_so_when_there_is_none() {
        let project = tempfile::tempdir().unwrap();
        let shelf = RecordShelf::new(project.path());
        let path = shelf.keep(&record("m1", 1)).unwrap();
        assert_eq!(shelf.forget("m1").unwrap(), path);
        assert!(!path.exists());
        let error = shelf.forget("m1").unwrap_err();
        assert_eq!(error.source.kind(), io::ErrorKind::NotFound);
    }
}
