//! `orchestrator memory list | show <mission> | forget <mission>`: the records earlier missions left for
//! the next ones, as plain files a user may also edit or delete by hand.

use std::fmt::Write as _;
use std::path::Path;

use crate::adapters::records::RecordShelf;
use crate::cli::args::MemoryAction;
use crate::cli::error::CliError;
use crate::domain::prompts::first_line;

/// Runs one `memory` action on the project's records and returns what it prints.
///
/// # Errors
///
/// [`CliError::UnknownRecord`] for a mission without a record, [`CliError::Io`] or
/// [`CliError::Record`] when a record cannot be read or removed.
pub(crate) fn run(project: &Path, action: &MemoryAction) -> Result<String, CliError> {
    let shelf = RecordShelf::new(project);
    match action {
        MemoryAction::List => Ok(list(&shelf)),
        MemoryAction::Show { mission } => {
            let path = shelf.path(mission);
            match shelf.read(mission) {
                Ok(text) => Ok(text),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    Err(unknown(&shelf, mission))
                }
                Err(error) => Err(CliError::io("read", path)(error)),
            }
        }
        MemoryAction::Forget { mission } => {
            if !shelf.path(mission).exists() {
                return Err(unknown(&shelf, mission));
            }
            let path = shelf.forget(mission)?;
            Ok(format!(
                "Forgot mission {mission}: removed {}; later missions will not be reminded of it.\n",
                path.display()
            ))
        }
    }
}

/// The records, newest first, then the damaged files.
fn list(shelf: &RecordShelf) -> String {
    let (records, damaged) = shelf.read_all();
    let mut text = String::new();
    if records.is_empty() && damaged.is_empty() {
        let _ = writeln!(
            text,
            "No mission records in {} yet: one is written when a mission ends.",
            shelf.directory().display()
        );
        return text;
    }
    let _ = writeln!(text, "Mission records in {}:", shelf.directory().display());
    for (_, record) in &records {
        let _ = writeln!(
            text,
            "  {:<16} {:<12} {}",
            record.mission,
            record.outcome.split(':').next().unwrap_or(""),
            first_line(&record.goal)
        );
    }
    for damaged in &damaged {
        let _ = writeln!(
            text,
            "  damaged, skipped by missions: {}: {}",
            damaged.path.display(),
            damaged.reason
        );
    }
    text
}

fn unknown(shelf: &RecordShelf, mission: &str) -> CliError {
    let (records, _) = shelf.read_all();
    let known: Vec<String> = records
        .into_iter()
        .map(|(_, record)| record.mission)
        .collect();
    CliError::UnknownRecord {
        id: mission.to_string(),
        directory: shelf.directory().to_path_buf(),
        known: if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        },
    }
}
