//! The user's OpenCode config, `opencode.jsonc` or `opencode.json` in their project, and the other files of
//! theirs that the orchestrator changes beside it: read, edited as text, backed up, written atomically,
//! checked, and put back as they were if anything fails.
//!
//! ```
//! use std::path::Path;
//! use orchestrator::adapters::opencode_json;
//!
//! let path = Path::new("opencode.jsonc");
//! let text = "{\n  // mine\n  \"model\": \"a/b\",\n}\n";
//! let entry = serde_json::json!({ "mode": "subagent" });
//! let added = opencode_json::with_agent(path, text, "helper", &entry)?.expect("a change");
//! assert_eq!(
//!     added,
//!     "{\n  // mine\n  \"model\": \"a/b\",\n  \"agent\": {\n    \"helper\": {\n      \"mode\": \"subagent\"\n    }\n  },\n}\n"
//! );
//! let removed = opencode_json::without_agent(path, &added, "helper")?.expect("a change");
//! assert_eq!(removed, text);
//! # Ok::<(), opencode_json::OpencodeJsonError>(())
//! ```
//!
//! # Editing a JSONC file without losing anything
//!
//! The config is parsed with the `jsonc-parser` crate, whose syntax tree gives every property's key and value
//! as byte ranges of the original text, and edited as text, never re-serialized: a member is inserted after
//! the last member of its object, indented like its neighbour and with the file's line ending, and every
//! other byte stays where it was: comments, trailing commas, key order, formatting. An object on one line
//! stays on one line. [`with_agent`] leaves an existing `agent.<name>` equal to the entry alone and replaces
//! a different one's value (comments inside that value go; the backup keeps them). [`without_agent`]
//! removes exactly the span that [`with_agent`] inserted, so adding then removing gives the original file
//! back byte for byte. Two exceptions, both about empty objects, whose original form the file no longer
//! shows: an empty object holding only whitespace (`{ }`, `{\n}`) comes back as `{}`, and an `agent` object
//! that was empty before goes away with the entry, exactly as one that [`with_agent`] added itself.
//!
//! Why the edits are splices into the text and not jsonc-parser's CST editing API (its `cst` feature): that
//! API decides layout itself. Measured on 0.26: appending a property to an object written on one line
//! rewrites the whole object over several lines, and an insertion trims blank lines at the start and end
//! of the object it goes into; removing the property afterwards does not bring those bytes back. The
//! promise here is that nothing but the inserted span changes, so the crate parses, and this module cuts.
//!
//! Every edit is checked before anything is written: the result must parse, hold the same value as before
//! apart from `agent.<name>`, and hold `agent.<name>` as intended ([`OpencodeJsonError::UnsafeEdit`]
//! otherwise). Files are read as JSONC as OpenCode reads them: comments, trailing commas and a byte-order
//! mark are allowed; unquoted keys, single-quoted strings and missing commas are not (jsonc-parser 0.26
//! takes the last two, so a check over its tokens refuses them; a syntax error names file, line and column).
//!
//! # Safety of the writes
//!
//! [`apply`] takes changes computed in full before the first write. Every directory that will be written
//! is checked for write access first by creating (and removing) a probe file in it, so a read-only
//! directory stops the run with nothing written. Then each file is changed in turn:
//!
//! 1. its previous content is copied to the backup directory as `<file name>.<UTC YYYYMMDDTHHMMSS.mmmZ>.bak`;
//! 2. the new content is written with [`files::write_atomically`] (temporary file, `fsync`, rename,
//!    directory `fsync`), so a crash leaves the old or the new file, never half;
//! 3. the file is read back and checked: the bytes are those written, and they pass the change's own check.
//!
//! If any step fails, every file already changed is put back as it was (deleted if it did not exist), the
//! backups and directories made by the run are removed, and the error names the file, the step and the OS
//! error ([`OpencodeJsonError::RolledBack`]). Only after every file succeeded are old backups rotated: the
//! newest [`Backups::keep`] of each file are kept.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

use jsonc_parser::ast::{Object, ObjectProp, Value as Node};
use jsonc_parser::common::Ranged as _;
use jsonc_parser::errors::ParseError;
use jsonc_parser::tokens::{Token, TokenAndRange};
use jsonc_parser::{CollectOptions, CommentCollectionStrategy, ParseOptions};
use serde::Serialize;
use serde::ser::{SerializeMap as _, Serializer};
use serde_json::Value;

use crate::adapters::files::{self, WriteStep};
use crate::domain::position::line_column;

/// The indentation used where the file shows none to copy.
const DEFAULT_INDENT: &str = "  ";

/// Why reading, editing or changing the files did not complete. The variants up to
/// [`NotWritable`](Self::NotWritable) happen before anything is written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpencodeJsonError {
    /// A file could not be read.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The config is not UTF-8 text.
    #[error("{}:{line}:{column}: the file is not UTF-8", path.display())]
    NotUtf8 {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the first byte that is not UTF-8.
        line: usize,
        /// 1-based column of that byte.
        column: usize,
        /// Where the text stops being UTF-8.
        source: std::str::Utf8Error,
    },
    /// The config is not JSONC as OpenCode reads it.
    #[error("{}:{line}:{column}: invalid JSONC: {source}", path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What is wrong there.
        source: SyntaxError,
    },
    /// The config is JSONC but cannot be used as an OpenCode config.
    #[error("{}:{line}:{column}: {problem}", path.display())]
    Unusable {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What is wrong.
        problem: Problem,
    },
    /// The edit would have changed more than the member it is for (a bug in this module); refused.
    #[error(
        "could not change {} without touching anything but {member}: {problem}",
        path.display()
    )]
    UnsafeEdit {
        /// The config file.
        path: PathBuf,
        /// The member being edited, as `agent.<name>`.
        member: String,
        /// What the check found.
        problem: EditProblem,
    },
    /// A directory that would be written is not writable.
    #[error("cannot write to {}: the directory is not writable ({source})", dir.display())]
    NotWritable {
        /// The directory.
        dir: PathBuf,
        /// What the OS said when a probe file was created in it.
        source: io::Error,
    },
    /// A step failed and every change of this run was undone.
    #[error(
        "could not {step} {}: {source}; rolled back every file this run had changed, the project is as it was",
        path.display()
    )]
    RolledBack {
        /// The file being changed.
        path: PathBuf,
        /// The step that failed.
        step: Step,
        /// What the OS said (or what the check found, for [`Step::Verify`]).
        source: io::Error,
    },
    /// A step failed and undoing the changes failed too; the backups are kept.
    #[error(
        "could not {step} {}: {source}; rolling back failed as well ({failures}); restore from the backups in {}",
        path.display(),
        backup_dir.display()
    )]
    RollbackFailed {
        /// The file being changed.
        path: PathBuf,
        /// The step that failed.
        step: Step,
        /// What the OS said.
        source: io::Error,
        /// Each file that could not be restored, with the reason.
        failures: RestoreFailures,
        /// Where the backups are.
        backup_dir: PathBuf,
    },
}

/// Why a config is not JSONC as OpenCode reads it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyntaxError {
    /// What jsonc-parser found.
    #[error("{}", .0.kind())]
    Parser(#[source] ParseError),
    /// A string in single quotes, which jsonc-parser 0.26 takes and OpenCode does not.
    #[error("strings must be in double quotes (JSONC has no single-quoted strings)")]
    SingleQuotedString,
    /// Two members or elements with no comma between them, which jsonc-parser 0.26 takes and OpenCode does
    /// not.
    #[error("a comma is missing before this {0}")]
    MissingComma(&'static str),
}

/// What makes a config unusable although it is valid JSONC.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The file holds something other than an object (or nothing).
    TopLevelNotObject,
    /// A member that must hold an object holds something else.
    NotAnObject {
        /// The member's key.
        key: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TopLevelNotObject => f.write_str("the top level must be a JSON object"),
            Problem::NotAnObject { key } => write!(f, "`{key}` must be an object"),
        }
    }
}

/// What the check of an edit found wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum EditProblem {
    /// The entry could not be turned into JSON.
    Render(serde_json::Error),
    /// The edited text does not parse.
    ResultDoesNotParse(ParseError),
    /// Another member's value would change.
    OtherMembersWouldChange,
    /// The member would not hold what was asked (or would still be there).
    NotAsIntended,
}

impl fmt::Display for EditProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EditProblem::Render(error) => write!(f, "the entry does not serialize: {error}"),
            EditProblem::ResultDoesNotParse(error) => {
                write!(f, "the result does not parse: {error}")
            }
            EditProblem::OtherMembersWouldChange => f.write_str("other keys would change"),
            EditProblem::NotAsIntended => f.write_str("it would not be as intended"),
        }
    }
}

/// The files a failed rollback could not restore, each with its error.
#[derive(Debug, Default)]
pub struct RestoreFailures(pub Vec<(PathBuf, io::Error)>);

impl fmt::Display for RestoreFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (path, error)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {error}", path.display())?;
        }
        Ok(())
    }
}

/// One step of changing one file; errors say which one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Checking up front that a directory is writable.
    Probe,
    /// Creating a missing directory.
    CreateDir,
    /// Copying the previous content to the backup directory.
    Backup,
    /// Writing the new content to a temporary file.
    WriteTemp,
    /// Flushing the temporary file to disk.
    SyncFile,
    /// Renaming the temporary file over the file.
    Rename,
    /// Flushing the directory so the rename is on disk.
    SyncDir,
    /// Removing the file.
    Remove,
    /// Reading the file back and checking it.
    Verify,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Probe => f.write_str("check write access for"),
            Step::CreateDir => f.write_str("create the directory for"),
            Step::Backup => f.write_str("back up"),
            Step::WriteTemp => WriteStep::WriteTemp.fmt(f),
            Step::SyncFile => WriteStep::SyncFile.fmt(f),
            Step::Rename => WriteStep::Rename.fmt(f),
            Step::SyncDir => WriteStep::SyncDir.fmt(f),
            Step::Remove => f.write_str("remove"),
            Step::Verify => f.write_str("verify"),
        }
    }
}

impl From<WriteStep> for Step {
    fn from(step: WriteStep) -> Self {
        match step {
            WriteStep::WriteTemp => Step::WriteTemp,
            WriteStep::SyncFile => Step::SyncFile,
            WriteStep::Rename => Step::Rename,
            WriteStep::SyncDir => Step::SyncDir,
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The file did not exist and was written.
    Created,
    /// The file existed and was rewritten.
    Updated,
    /// The file was deleted.
    Removed,
    /// The file already had the wanted content.
    Unchanged,
}

/// One file that a run looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The file.
    pub path: PathBuf,
    /// What happened to it.
    pub kind: ChangeKind,
    /// The copy of its previous content, if it had one and was changed.
    pub backup: Option<PathBuf>,
}

/// A check of a file's new content, run after it was written and read back: the error says what is wrong.
pub type Check = fn(&Path, &str) -> Result<(), String>;

/// One file to change, computed in full before the first write.
#[derive(Debug, Clone)]
pub struct PlannedChange {
    /// The file.
    pub path: PathBuf,
    /// Its content before, if it exists.
    pub old: Option<Vec<u8>>,
    /// Its content after; `None` deletes it.
    pub new: Option<String>,
    /// What the new content must satisfy besides being exactly `new` (not run for a deletion).
    pub check: Check,
}

/// Where backups go and how many of each file are kept.
#[derive(Debug, Clone)]
pub struct Backups {
    /// The backup directory (made when the first backup is).
    pub dir: PathBuf,
    /// How many backups of each file are kept, the newest ones.
    pub keep: usize,
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Each planned file, in order, with what happened to it.
    pub changes: Vec<FileChange>,
    /// Anything the user should know although the run succeeded (a backup that could not be rotated).
    pub notes: Vec<String>,
}

/// The content of `path`, or `None` if there is no such file.
///
/// # Errors
///
/// [`OpencodeJsonError::Read`] for any other failure.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, OpencodeJsonError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(OpencodeJsonError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The file a symlink at `path` points to (so that writing replaces the target and not the link), or `path`.
///
/// # Errors
///
/// [`OpencodeJsonError::Read`] if the link cannot be resolved.
pub fn follow_symlink(path: &Path) -> Result<PathBuf, OpencodeJsonError> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(|source| OpencodeJsonError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
        _ => Ok(path.to_path_buf()),
    }
}

/// A config's bytes as text.
///
/// # Errors
///
/// [`OpencodeJsonError::NotUtf8`] with the position of the first byte that is not UTF-8.
pub fn config_text(path: &Path, bytes: &[u8]) -> Result<String, OpencodeJsonError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(source) => {
            // The prefix up to the error is valid UTF-8 by definition.
            let valid = std::str::from_utf8(&bytes[..source.valid_up_to()]).unwrap_or_default();
            let (line, column) = line_column(valid, valid.len());
            Err(OpencodeJsonError::NotUtf8 {
                path: path.to_path_buf(),
                line,
                column,
                source,
            })
        }
    }
}

/// The config `text` with `agent.<name>` set to `entry`, or `None` if it already holds exactly that. See
/// the [module docs](self) for how the text changes.
///
/// # Errors
///
/// [`OpencodeJsonError::Syntax`] or [`OpencodeJsonError::Unusable`] (the top level or `agent` is not an
/// object) naming the line and column; [`OpencodeJsonError::UnsafeEdit`] if the edit fails its check.
pub fn with_agent(
    path: &Path,
    text: &str,
    name: &str,
    entry: &impl Serialize,
) -> Result<Option<String>, OpencodeJsonError> {
    let (bom, body) = split_bom(text);
    let document = Document::parse(path, body)?;
    let root = document.root_object(path)?;
    let layout = Layout::of(body, root);
    let unsafe_edit = |problem| OpencodeJsonError::UnsafeEdit {
        path: path.to_path_buf(),
        member: format!("agent.{name}"),
        problem,
    };
    let wanted =
        serde_json::to_value(entry).map_err(|error| unsafe_edit(EditProblem::Render(error)))?;
    let new = match find(root, "agent") {
        None => {
            let section = OneMember { name, value: entry };
            insert_member(body, root, "agent", &section, &layout)
        }
        Some((_, agent)) => {
            let Node::Object(agent_object) = &agent.value else {
                return Err(document.unusable(
                    path,
                    agent.value.start(),
                    Problem::NotAnObject {
                        key: "agent".to_owned(),
                    },
                ));
            };
            match find(agent_object, name) {
                None => insert_member(body, agent_object, name, entry, &layout),
                Some((_, existing)) if Value::from(existing.value.clone()) == wanted => {
                    return Ok(None);
                }
                Some((_, existing)) => {
                    let indent = line_indent(body, existing.name.start());
                    render(entry, &layout.unit, indent, layout.newline)
                        .map(|value| splice(body, range(&existing.value), &value))
                }
            }
        }
    }
    .map_err(|error| unsafe_edit(EditProblem::Render(error)))?;
    check_edit(&document, &new, name, Some(&wanted)).map_err(unsafe_edit)?;
    Ok(Some(format!("{bom}{new}")))
}

/// The config `text` without `agent.<name>`, or `None` if it has none (or is not an object). An `agent`
/// object left holding nothing (no member, no comment) goes too.
///
/// # Errors
///
/// [`OpencodeJsonError::Syntax`] naming the line and column; [`OpencodeJsonError::UnsafeEdit`] if the edit
/// fails its check.
pub fn without_agent(
    path: &Path,
    text: &str,
    name: &str,
) -> Result<Option<String>, OpencodeJsonError> {
    let (bom, body) = split_bom(text);
    let document = Document::parse(path, body)?;
    let Some(Node::Object(root)) = &document.root else {
        return Ok(None);
    };
    let Some((agent_index, agent)) = find(root, "agent") else {
        return Ok(None);
    };
    let Node::Object(agent_object) = &agent.value else {
        return Ok(None);
    };
    let Some((index, ours)) = find(agent_object, name) else {
        return Ok(None);
    };
    let (open, close) = braces(agent_object);
    let only_ours = agent_object.properties.len() == 1
        && is_blank(&body[open + 1..ours.name.start()])
        && is_blank(&body[ours.value.end()..close].replacen(',', "", 1));
    let new = if only_ours {
        // Nothing of the user's is left in `agent`: take the whole member out, as if we had added it.
        splice(body, removal_range(body, root, agent_index), "")
    } else {
        splice(body, removal_range(body, agent_object, index), "")
    };
    check_edit(&document, &new, name, None).map_err(|problem| OpencodeJsonError::UnsafeEdit {
        path: path.to_path_buf(),
        member: format!("agent.{name}"),
        problem,
    })?;
    Ok(Some(format!("{bom}{new}")))
}

/// The value of `agent.<name>` in the config `text`, if it has one.
///
/// # Errors
///
/// [`OpencodeJsonError::Syntax`] naming the line and column.
pub fn agent_entry(
    path: &Path,
    text: &str,
    name: &str,
) -> Result<Option<Value>, OpencodeJsonError> {
    let document = Document::parse(path, split_bom(text).1)?;
    Ok(document
        .value()
        .get("agent")
        .and_then(|agent| agent.get(name))
        .cloned())
}

/// Makes every change of `changes`, in order, as the [module docs](self) describe: all of them, or none.
///
/// # Errors
///
/// [`OpencodeJsonError::NotWritable`] before anything is written; [`OpencodeJsonError::RolledBack`] if a step
/// failed and everything was put back, [`OpencodeJsonError::RollbackFailed`] if putting back failed too.
pub fn apply(changes: &[PlannedChange], backups: &Backups) -> Result<Applied, OpencodeJsonError> {
    Run::new(backups, None).apply(changes)
}

/// [`apply`] with a simulated failure, so tests reach every rollback path.
#[cfg(test)]
pub(crate) fn apply_with_fault(
    changes: &[PlannedChange],
    backups: &Backups,
    fault: Fault,
) -> Result<Applied, OpencodeJsonError> {
    Run::new(backups, Some(fault)).apply(changes)
}

/// A failure to simulate. Only tests build one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Fault {
    /// The write-access probe fails with "permission denied".
    Probe,
    /// The `step` of the `index`-th change (0-based) fails with "no space left".
    Write {
        /// Which change.
        index: usize,
        /// Which of its steps.
        step: Step,
    },
}

// ---------------------------------------------------------------------------------------------------------
// The JSONC document and the text edits.
// ---------------------------------------------------------------------------------------------------------

/// A parsed config: its text (without a byte-order mark) and jsonc-parser's syntax tree of it.
#[derive(Debug)]
struct Document<'t> {
    text: &'t str,
    root: Option<Node<'t>>,
}

/// JSONC as OpenCode reads it: comments and trailing commas, nothing looser.
fn parse_options() -> ParseOptions {
    ParseOptions {
        allow_comments: true,
        allow_loose_object_property_names: false,
        allow_trailing_commas: true,
    }
}

/// Where `text` (parsed into `root` and `tokens`, comments left out) is looser than OpenCode's reader: a
/// single-quoted string, or a missing comma between two members or elements. jsonc-parser 0.26 takes both;
/// its strict options came with 0.28, which needs a newer Rust than this workspace's.
fn looser_than_opencode(
    text: &str,
    root: Option<&Node<'_>>,
    tokens: &[TokenAndRange<'_>],
) -> Option<(usize, SyntaxError)> {
    if let Some(token) = tokens.iter().find(|token| {
        matches!(token.token, Token::String(_))
            && text.as_bytes().get(token.range.start) == Some(&b'\'')
    }) {
        return Some((token.range.start, SyntaxError::SingleQuotedString));
    }
    // Between the end of one member (or element) and the start of the next, the first token is a comma.
    let comma_between = |end: usize, start: usize| {
        let next = tokens.partition_point(|token| token.range.start < end);
        tokens
            .get(next)
            .is_some_and(|token| token.token == Token::Comma && token.range.start < start)
    };
    let mut pending: Vec<&Node<'_>> = root.into_iter().collect();
    while let Some(node) = pending.pop() {
        let (what, spans): (&'static str, Vec<(usize, usize)>) = match node {
            Node::Object(object) => {
                pending.extend(object.properties.iter().map(|property| &property.value));
                let spans = object
                    .properties
                    .iter()
                    .map(|property| (property.name.start(), property.value.end()))
                    .collect();
                ("member", spans)
            }
            Node::Array(array) => {
                pending.extend(array.elements.iter());
                (
                    "element",
                    array
                        .elements
                        .iter()
                        .map(|element| (element.start(), element.end()))
                        .collect(),
                )
            }
            _ => continue,
        };
        for pair in spans.windows(2) {
            let ((_, previous_end), (start, _)) = (pair[0], pair[1]);
            if !comma_between(previous_end, start) {
                return Some((start, SyntaxError::MissingComma(what)));
            }
        }
    }
    None
}

impl<'t> Document<'t> {
    fn parse(path: &Path, text: &'t str) -> Result<Self, OpencodeJsonError> {
        let syntax = |offset: Option<usize>, source: SyntaxError| {
            let (line, column) = match (&source, offset) {
                (SyntaxError::Parser(error), _) => (error.line_display(), error.column_display()),
                (_, offset) => line_column(text, offset.unwrap_or(0)),
            };
            OpencodeJsonError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                source,
            }
        };
        let collect = CollectOptions {
            comments: CommentCollectionStrategy::Off,
            tokens: true,
        };
        let parsed = jsonc_parser::parse_to_ast(text, &collect, &parse_options())
            .map_err(|error| syntax(None, SyntaxError::Parser(error)))?;
        let tokens = parsed.tokens.unwrap_or_default();
        if let Some((offset, problem)) = looser_than_opencode(text, parsed.value.as_ref(), &tokens)
        {
            return Err(syntax(Some(offset), problem));
        }
        Ok(Document {
            text,
            root: parsed.value,
        })
    }

    fn root_object(&self, path: &Path) -> Result<&Object<'t>, OpencodeJsonError> {
        match &self.root {
            Some(Node::Object(object)) => Ok(object),
            other => Err(self.unusable(
                path,
                other.as_ref().map_or(0, |value| value.start()),
                Problem::TopLevelNotObject,
            )),
        }
    }

    fn value(&self) -> Value {
        self.root.clone().map_or(Value::Null, Value::from)
    }

    fn unusable(&self, path: &Path, offset: usize, problem: Problem) -> OpencodeJsonError {
        let (line, column) = line_column(self.text, offset);
        OpencodeJsonError::Unusable {
            path: path.to_path_buf(),
            line,
            column,
            problem,
        }
    }
}

/// The byte-order mark (if any) and the text after it; jsonc-parser does not take one.
fn split_bom(text: &str) -> (&str, &str) {
    match text.strip_prefix('\u{feff}') {
        Some(body) => ("\u{feff}", body),
        None => ("", text),
    }
}

/// The member called `name` with its index; the last one if the name repeats, as JSON parsers (and
/// OpenCode) read it.
fn find<'a, 't>(object: &'a Object<'t>, name: &str) -> Option<(usize, &'a ObjectProp<'t>)> {
    object
        .properties
        .iter()
        .enumerate()
        .rfind(|(_, property)| property.name.as_str() == name)
}

/// The offsets of an object's `{` and `}`.
fn braces(object: &Object<'_>) -> (usize, usize) {
    (object.range.start, object.range.end - 1)
}

fn range(node: &Node<'_>) -> Range<usize> {
    node.start()..node.end()
}

/// Refuses an edit that would change anything but `agent.<name>`, or that does not parse.
fn check_edit(
    before: &Document<'_>,
    new_text: &str,
    name: &str,
    expected: Option<&Value>,
) -> Result<(), EditProblem> {
    let after = jsonc_parser::parse_to_serde_value(new_text, &parse_options())
        .map_err(EditProblem::ResultDoesNotParse)?
        .unwrap_or(Value::Null);
    if without_member(before.value(), name) != without_member(after.clone(), name) {
        return Err(EditProblem::OtherMembersWouldChange);
    }
    if after.get("agent").and_then(|agent| agent.get(name)) != expected {
        return Err(EditProblem::NotAsIntended);
    }
    Ok(())
}

/// A config's value without `agent.<name>`, and without an `agent` object left empty by its removal.
fn without_member(mut value: Value, name: &str) -> Value {
    if let Some(root) = value.as_object_mut() {
        let now_empty = match root.get_mut("agent").and_then(Value::as_object_mut) {
            Some(agent) => {
                agent.remove(name);
                agent.is_empty()
            }
            None => false,
        };
        if now_empty {
            root.remove("agent");
        }
    }
    value
}

/// An object of one member, for an `agent` section holding only the new entry.
struct OneMember<'a, T> {
    name: &'a str,
    value: &'a T,
}

impl<T: Serialize> Serialize for OneMember<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.name, self.value)?;
        map.end()
    }
}

/// How the file is laid out: its line ending and one level of indentation.
#[derive(Debug)]
struct Layout {
    newline: &'static str,
    unit: String,
}

impl Layout {
    fn of(text: &str, root: &Object<'_>) -> Self {
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let unit = root
            .properties
            .first()
            .and_then(|member| indent_before(text, member.name.start()))
            .filter(|indent| !indent.is_empty())
            .unwrap_or(DEFAULT_INDENT)
            .to_owned();
        Layout { newline, unit }
    }
}

/// The spaces and tabs before `at` on its line, if nothing else precedes it there.
fn indent_before(text: &str, at: usize) -> Option<&str> {
    let start = text[..at].rfind('\n').map_or(0, |newline| newline + 1);
    let indent = &text[start..at];
    indent
        .bytes()
        .all(|byte| byte == b' ' || byte == b'\t')
        .then_some(indent)
}

/// The leading spaces and tabs of the line holding `at`.
fn line_indent(text: &str, at: usize) -> &str {
    let start = text[..at].rfind('\n').map_or(0, |newline| newline + 1);
    let line = &text[start..];
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

fn is_blank(text: &str) -> bool {
    text.bytes()
        .all(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The offset of the first byte at or after `at` that is not whitespace.
fn skip_blank(text: &str, at: usize) -> usize {
    let rest = &text[at..];
    at + rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r']).len()
}

fn splice(text: &str, range: Range<usize>, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..range.start]);
    out.push_str(with);
    out.push_str(&text[range.end..]);
    out
}

/// `value` pretty-printed with `unit` per level, its continuation lines starting with `base`.
fn render(
    value: &impl Serialize,
    unit: &str,
    base: &str,
    newline: &str,
) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(unit.as_bytes());
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, formatter,
    ))?;
    let pretty = String::from_utf8_lossy(&out).into_owned();
    Ok(pretty.replace('\n', &format!("{newline}{base}")))
}

/// The text with `"name": value` added as the last member of `object`. [`removal_range`] takes exactly this
/// insertion out again.
fn insert_member(
    text: &str,
    object: &Object<'_>,
    name: &str,
    value: &impl Serialize,
    layout: &Layout,
) -> Result<String, serde_json::Error> {
    let key = serde_json::to_string(name)?;
    let newline = layout.newline;
    match object.properties.last() {
        Some(last) => {
            let insertion = match indent_before(text, last.name.start()) {
                Some(indent) => format!(
                    ",{newline}{indent}{key}: {}",
                    render(value, &layout.unit, indent, newline)?
                ),
                // An object on one line stays on one line.
                None => format!(", {key}: {}", serde_json::to_string(value)?),
            };
            let end = last.value.end();
            Ok(splice(text, end..end, &insertion))
        }
        None => {
            let (open, close) = braces(object);
            let outer = line_indent(text, open);
            let inner = format!("{outer}{}", layout.unit);
            let member = format!(
                "{newline}{inner}{key}: {}",
                render(value, &layout.unit, &inner, newline)?
            );
            let interior = open + 1..close;
            if is_blank(&text[interior.clone()]) {
                Ok(splice(text, interior, &format!("{member}{newline}{outer}")))
            } else {
                // Comments inside: keep them, after the new member.
                Ok(splice(text, interior.start..interior.start, &member))
            }
        }
    }
}

/// The span to delete to remove the `index`-th member of `object`, with the comma and line that go with it.
fn removal_range(text: &str, object: &Object<'_>, index: usize) -> Range<usize> {
    let properties = &object.properties;
    let member = &properties[index];
    let (key_start, value_end) = (member.name.start(), member.value.end());
    // The exact inverse of `insert_member` appending after the previous member: `,<whitespace>"key": value`.
    if index > 0 {
        let previous_end = properties[index - 1].value.end();
        let between = &text[previous_end..key_start];
        if between.contains(',') && is_blank(&between.replacen(',', "", 1)) {
            return previous_end..value_end;
        }
    }
    let (open, close) = braces(object);
    if properties.len() == 1 {
        let start = if is_blank(&text[open + 1..key_start]) {
            open + 1
        } else {
            key_start
        };
        let after = skip_blank(text, value_end);
        let after = if text.as_bytes().get(after) == Some(&b',') {
            after + 1
        } else {
            after
        };
        let end = if is_blank(&text[after..close]) {
            close
        } else {
            value_end
        };
        return start..end;
    }
    // Elsewhere: the member, its comma, and its line if it had the line to itself.
    let bytes = text.as_bytes();
    let mut end = value_end;
    let mut after = end;
    while bytes
        .get(after)
        .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
    {
        after += 1;
    }
    if bytes.get(after) == Some(&b',') {
        end = after + 1;
    }
    let mut line_end = end;
    while bytes
        .get(line_end)
        .is_some_and(|byte| *byte == b' ' || *byte == b'\t' || *byte == b'\r')
    {
        line_end += 1;
    }
    match (indent_before(text, key_start), bytes.get(line_end)) {
        (Some(indent), Some(b'\n')) => key_start - indent.len()..line_end + 1,
        _ => key_start..end,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Applying the changes: backups, atomic writes, verification, rollback.
// ---------------------------------------------------------------------------------------------------------

/// The changes of one run, with what is needed to undo them.
#[derive(Debug)]
struct Run<'b> {
    backups: &'b Backups,
    fault: Option<Fault>,
    /// The UTC time of the run, in backup names.
    stamp: String,
    /// Files whose content may have changed, with their content before.
    touched: Vec<Touched>,
    /// Backups made by this run, with the name of the file each one is of.
    made_backups: Vec<(PathBuf, String)>,
    /// Directories made by this run, parents first.
    created_dirs: Vec<PathBuf>,
}

#[derive(Debug)]
struct Touched {
    path: PathBuf,
    old: Option<Vec<u8>>,
    permissions: Option<fs::Permissions>,
}

impl<'b> Run<'b> {
    fn new(backups: &'b Backups, fault: Option<Fault>) -> Self {
        Run {
            backups,
            fault,
            stamp: backup_stamp(jiff::Timestamp::now()),
            touched: Vec::new(),
            made_backups: Vec::new(),
            created_dirs: Vec::new(),
        }
    }

    fn apply(mut self, changes: &[PlannedChange]) -> Result<Applied, OpencodeJsonError> {
        self.probe(changes)?;
        let mut done = Vec::new();
        for (index, change) in changes.iter().enumerate() {
            match self.change(index, change) {
                Ok(file) => done.push(file),
                Err((step, source)) => {
                    return Err(self.roll_back(change.path.clone(), step, source));
                }
            }
        }
        Ok(Applied {
            changes: done,
            notes: self.rotate_backups(),
        })
    }

    /// Fails where a test asked for a simulated failure. `index` is `None` for writes that are not a planned
    /// file's own steps (backups are reached through [`Step::Backup`], rollback is never faulted).
    fn checkpoint(&self, index: Option<usize>, step: Step) -> io::Result<()> {
        match (self.fault, index) {
            (
                Some(Fault::Write {
                    index: at,
                    step: fault_step,
                }),
                Some(index),
            ) if at == index && fault_step == step => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated failure: no space left on device",
            )),
            _ => Ok(()),
        }
    }

    /// Checks that every directory the plan writes to (or, if missing, the directory it would be created in)
    /// accepts a new file, before anything is written.
    fn probe(&self, changes: &[PlannedChange]) -> Result<(), OpencodeJsonError> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for change in changes {
            dirs.push(nearest_existing(parent_dir(&change.path)));
            if change.old.is_some() {
                dirs.push(nearest_existing(&self.backups.dir));
            }
        }
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            let probed = if self.fault == Some(Fault::Probe) {
                Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "simulated failure: permission denied",
                ))
            } else {
                tempfile::Builder::new()
                    .prefix(".orchestrator-probe-")
                    .tempfile_in(&dir)
                    .map(drop)
            };
            if let Err(source) = probed {
                return Err(OpencodeJsonError::NotWritable { dir, source });
            }
        }
        Ok(())
    }

    /// Backs up, writes (or removes) and verifies one file.
    fn change(
        &mut self,
        index: usize,
        change: &PlannedChange,
    ) -> Result<FileChange, (Step, io::Error)> {
        let at = |step: Step| move |error: io::Error| (step, error);
        let permissions = fs::metadata(&change.path)
            .ok()
            .map(|metadata| metadata.permissions());
        let backup = match &change.old {
            Some(old) => {
                self.checkpoint(Some(index), Step::Backup)
                    .map_err(at(Step::Backup))?;
                Some(self.back_up(&change.path, old).map_err(at(Step::Backup))?)
            }
            None => None,
        };
        self.touched.push(Touched {
            path: change.path.clone(),
            old: change.old.clone(),
            permissions: permissions.clone(),
        });
        let parent = parent_dir(&change.path);
        match &change.new {
            Some(new) => {
                if fs::symlink_metadata(parent).is_err() {
                    self.checkpoint(Some(index), Step::CreateDir)
                        .map_err(at(Step::CreateDir))?;
                    files::create_dirs(parent, &mut self.created_dirs)
                        .map_err(at(Step::CreateDir))?;
                }
                files::write_atomically_with(&change.path, new.as_bytes(), permissions, |step| {
                    self.checkpoint(Some(index), step.into())
                })
                .map_err(|error| (error.step.into(), error.source))?;
            }
            None => {
                self.checkpoint(Some(index), Step::Remove)
                    .map_err(at(Step::Remove))?;
                fs::remove_file(&change.path).map_err(at(Step::Remove))?;
                self.checkpoint(Some(index), Step::SyncDir)
                    .map_err(at(Step::SyncDir))?;
                files::sync_dir(parent).map_err(at(Step::SyncDir))?;
            }
        }
        self.checkpoint(Some(index), Step::Verify)
            .map_err(at(Step::Verify))?;
        verify(change).map_err(at(Step::Verify))?;
        let kind = match (&change.old, &change.new) {
            (None, _) => ChangeKind::Created,
            (Some(_), Some(_)) => ChangeKind::Updated,
            (Some(_), None) => ChangeKind::Removed,
        };
        Ok(FileChange {
            path: change.path.clone(),
            kind,
            backup,
        })
    }

    /// Copies `content` (the file's content before this run) to a new backup file and returns its path.
    fn back_up(&mut self, path: &Path, content: &[u8]) -> io::Result<PathBuf> {
        let dir = &self.backups.dir;
        files::create_dirs(dir, &mut self.created_dirs)?;
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Two runs in the same millisecond get a sequence number rather than overwriting each other.
        for sequence in 0u32.. {
            let backup = match sequence {
                0 => dir.join(format!("{name}.{}.bak", self.stamp)),
                n => dir.join(format!("{name}.{}.{n}.bak", self.stamp)),
            };
            let mut temp = tempfile::Builder::new()
                .prefix(".backup-")
                .suffix(".tmp")
                .tempfile_in(dir)?;
            temp.write_all(content)?;
            temp.as_file().sync_all()?;
            // Not `write_atomically`: a backup never replaces another one.
            match temp.persist_noclobber(&backup) {
                Ok(_) => {
                    files::sync_dir(dir)?;
                    self.made_backups.push((backup.clone(), name));
                    return Ok(backup);
                }
                Err(error) if error.error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error.error),
            }
        }
        Err(io::Error::other("no free backup name"))
    }

    /// Puts every touched file back, newest change first, then removes this run's backups and directories,
    /// and turns the failure into the error to report.
    fn roll_back(&mut self, path: PathBuf, step: Step, source: io::Error) -> OpencodeJsonError {
        let mut failures = RestoreFailures::default();
        for touched in std::mem::take(&mut self.touched).into_iter().rev() {
            if let Err(error) = restore(&touched) {
                failures.0.push((touched.path, error));
            }
        }
        if !failures.0.is_empty() {
            return OpencodeJsonError::RollbackFailed {
                path,
                step,
                source,
                failures,
                backup_dir: self.backups.dir.clone(),
            };
        }
        for (backup, _) in self.made_backups.drain(..) {
            let _ = fs::remove_file(backup);
        }
        for dir in self.created_dirs.drain(..).rev() {
            // Only empty directories go; anything else in them is not ours to delete.
            let _ = fs::remove_dir(dir);
        }
        OpencodeJsonError::RolledBack { path, step, source }
    }

    /// Keeps the newest [`Backups::keep`] backups of each file backed up by this run; returns notes for
    /// backups that could not be deleted (the run itself succeeded).
    fn rotate_backups(&self) -> Vec<String> {
        let dir = &self.backups.dir;
        let mut names: Vec<&str> = self
            .made_backups
            .iter()
            .map(|(_, name)| name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut notes = Vec::new();
        for name in names {
            let mut backups: Vec<((String, u64), PathBuf)> = match fs::read_dir(dir) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| {
                        let order = backup_order(name, &entry.file_name().to_string_lossy())?;
                        Some((order, entry.path()))
                    })
                    .collect(),
                Err(error) => {
                    notes.push(format!(
                        "could not list the backups in {}: {error}",
                        dir.display()
                    ));
                    continue;
                }
            };
            backups.sort();
            let surplus = backups.len().saturating_sub(self.backups.keep);
            for (_, old) in backups.into_iter().take(surplus) {
                if let Err(error) = fs::remove_file(&old) {
                    notes.push(format!(
                        "could not delete the old backup {}: {error}",
                        old.display()
                    ));
                }
            }
        }
        notes
    }
}

fn restore(touched: &Touched) -> io::Result<()> {
    let current = match fs::read(&touched.path) {
        Ok(bytes) => Some(bytes),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    if current == touched.old {
        return Ok(());
    }
    match &touched.old {
        Some(old) => files::write_atomically_with(
            &touched.path,
            old,
            touched.permissions.clone(),
            |_| Ok(()),
        )
        .map_err(io::Error::from),
        None => {
            fs::remove_file(&touched.path)?;
            files::sync_dir(parent_dir(&touched.path))
        }
    }
}

fn verify(change: &PlannedChange) -> io::Result<()> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
    let Some(expected) = &change.new else {
        return match fs::symlink_metadata(&change.path) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
            Ok(_) => Err(invalid(
                "the file is still there after its removal".to_owned(),
            )),
        };
    };
    let written = fs::read(&change.path)?;
    if written != expected.as_bytes() {
        return Err(invalid(
            "the content read back differs from what was written".to_owned(),
        ));
    }
    (change.check)(&change.path, expected).map_err(invalid)
}

/// The directory `path` is in.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// The directory itself if it exists, else its nearest existing parent (where it would be created).
fn nearest_existing(dir: &Path) -> PathBuf {
    let mut current = dir;
    while fs::symlink_metadata(current).is_err() {
        match current.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => current = parent,
            _ => return PathBuf::from("."),
        }
    }
    current.to_path_buf()
}

// ---------------------------------------------------------------------------------------------------------
// Backup names.
// ---------------------------------------------------------------------------------------------------------

/// The time in a backup's name: `YYYYMMDDTHHMMSS.mmmZ` in UTC, which sorts in time order.
fn backup_stamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// The sort key of a backup of the file `name` (time, sequence), or `None` if `file_name` is not one.
pub(crate) fn backup_order(name: &str, file_name: &str) -> Option<(String, u64)> {
    // `<name>.YYYYMMDDTHHMMSS.mmmZ.bak`, or `<name>.YYYYMMDDTHHMMSS.mmmZ.<n>.bak` for the n-th in one ms.
    let middle = file_name
        .strip_prefix(name)?
        .strip_prefix('.')?
        .strip_suffix(".bak")?;
    let stamp = middle.get(..20)?;
    let sequence = match &middle[20..] {
        "" => 0,
        rest => rest.strip_prefix('.')?.parse().ok()?,
    };
    is_backup_stamp(stamp).then(|| (stamp.to_owned(), sequence))
}

/// Whether `stamp` is a [`backup_stamp`]: its exact shape, of a real date and time.
fn is_backup_stamp(stamp: &str) -> bool {
    let shape = stamp.len() == 20
        && stamp.bytes().enumerate().all(|(at, byte)| match at {
            8 => byte == b'T',
            15 => byte == b'.',
            19 => byte == b'Z',
            _ => byte.is_ascii_digit(),
        });
    shape && jiff::civil::DateTime::strptime("%Y%m%dT%H%M%S%.fZ", stamp).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("opencode.jsonc")
    }

    fn parse(text: &str) -> Value {
        Document::parse(path(), split_bom(text).1)
            .expect("parses")
            .value()
    }

    #[test]
    fn members_have_exact_spans() {
        let text = "{ \"a\" : { \"x\": \"}\" } , // c\n \"b\": [1, {\"y\": 2}], \"c\": null, }";
        let document = Document::parse(path(), text).expect("parse");
        let root = document.root_object(path()).expect("object");
        let spans: Vec<(&str, &str, &str)> = root
            .properties
            .iter()
            .map(|member| {
                (
                    member.name.as_str(),
                    member.name.text(text),
                    &text[range(&member.value)],
                )
            })
            .collect();
        assert_eq!(
            spans,
            [
                ("a", "\"a\"", "{ \"x\": \"}\" }"),
                ("b", "\"b\"", "[1, {\"y\": 2}]"),
                ("c", "\"c\"", "null")
            ]
        );
        assert_eq!(braces(root), (0, text.len() - 1));
    }

    #[test]
    fn a_byte_order_mark_comments_and_trailing_commas_are_taken() {
        let text = "\u{feff}{\"a//b\": \"x\\\"/*y*/\", /* é\nz */ \"c\": [1, 2,], // end\n}";
        assert_eq!(
            parse(text),
            serde_json::json!({"a//b": "x\"/*y*/", "c": [1, 2]})
        );
        let entry = serde_json::json!(true);
        let added = with_agent(path(), text, "x", &entry)
            .expect("edit")
            .expect("a change");
        assert!(added.starts_with('\u{feff}'), "the mark stays");
        assert_eq!(
            without_agent(path(), &added, "x").expect("edit"),
            Some(text.to_owned())
        );
    }

    #[test]
    fn what_opencode_rejects_is_refused_with_its_position() {
        for (text, expected) in [
            (
                "{\n  'a': 1\n}",
                "opencode.jsonc:2:3: invalid JSONC: strings must be in double quotes",
            ),
            (
                "{\n  \"a\": 1 // one\n  \"b\": 2\n}",
                "opencode.jsonc:3:3: invalid JSONC: a comma is missing before this member",
            ),
            (
                "{\"a\": [1, [2 3]]}",
                "opencode.jsonc:1:14: invalid JSONC: a comma is missing before this element",
            ),
            ("{\n  a: 1\n}", "opencode.jsonc:2:3: invalid JSONC: "),
            (
                "",
                "opencode.jsonc:1:1: the top level must be a JSON object",
            ),
            (
                "  [1]",
                "opencode.jsonc:1:3: the top level must be a JSON object",
            ),
        ] {
            let error = with_agent(path(), text, "x", &1).expect_err(text);
            assert!(error.to_string().starts_with(expected), "{error}");
        }
        let error = config_text(path(), b"{\n  \"a\": \"\xff\"\n}").expect_err("not UTF-8");
        assert_eq!(
            error.to_string(),
            "opencode.jsonc:2:9: the file is not UTF-8"
        );
    }

    #[test]
    fn a_comment_alone_in_agent_stays_with_it() {
        let text = "{\n  \"agent\": {\n    // mine\n  }\n}\n";
        let added = with_agent(path(), text, "x", &1)
            .expect("edit")
            .expect("a change");
        assert_eq!(
            added,
            "{\n  \"agent\": {\n    \"x\": 1\n    // mine\n  }\n}\n"
        );
        let removed = without_agent(path(), &added, "x")
            .expect("edit")
            .expect("a change");
        assert_eq!(parse(&removed), serde_json::json!({"agent": {}}));
        assert!(removed.contains("// mine"), "{removed}");
    }

    #[test]
    fn blank_lines_at_the_edges_of_an_object_stay() {
        // jsonc-parser's CST editing would trim these; a splice leaves them.
        let text = "{\n\n  \"share\": \"x\"\n\n}\n";
        let added = with_agent(path(), text, "x", &1)
            .expect("edit")
            .expect("a change");
        assert!(added.starts_with("{\n\n  \"share\": \"x\","), "{added}");
        assert!(added.ends_with("}\n\n}\n"), "{added}");
        assert_eq!(
            without_agent(path(), &added, "x").expect("edit"),
            Some(text.to_owned())
        );
    }

    #[test]
    fn an_edit_that_changes_other_members_is_refused() {
        let document = Document::parse(path(), "{\"a\": 1}").expect("parse");
        assert!(matches!(
            check_edit(
                &document,
                "{\"a\": 2, \"agent\": {\"x\": 1}}",
                "x",
                Some(&1.into())
            ),
            Err(EditProblem::OtherMembersWouldChange)
        ));
        assert!(matches!(
            check_edit(
                &document,
                "{\"a\": 1, \"agent\": {\"x\": 2}}",
                "x",
                Some(&1.into())
            ),
            Err(EditProblem::NotAsIntended)
        ));
        assert!(matches!(
            check_edit(&document, "{\"a\": 1,,}", "x", None),
            Err(EditProblem::ResultDoesNotParse(_))
        ));
        assert!(
            check_edit(
                &document,
                "{\"a\": 1, \"agent\": {\"x\": 1}}",
                "x",
                Some(&1.into())
            )
            .is_ok()
        );
    }

    #[test]
    fn timestamps_are_utc_and_sortable() {
        let at = |seconds: i64, millis: i64| {
            backup_stamp(
                jiff::Timestamp::from_millisecond(seconds * 1000 + millis).expect("in range"),
            )
        };
        assert_eq!(at(0, 0), "19700101T000000.000Z");
        // 2024-02-29 12:34:56.789 UTC.
        assert_eq!(at(1_709_210_096, 789), "20240229T123456.789Z");
        // 2000-12-31 23:59:59 UTC (a leap year divisible by 400).
        assert_eq!(at(978_307_199, 5), "20001231T235959.005Z");
        assert!(at(978_307_199, 5) < at(1_709_210_096, 789));
        assert!(is_backup_stamp(&at(1_709_210_096, 789)));
        assert!(!is_backup_stamp("20240230T123456.789Z"), "no February 30th");
        assert!(!is_backup_stamp("20240229T123456.789"));
    }

    #[test]
    fn backup_names_sort_by_time_then_sequence() {
        let a =
            backup_order("opencode.json", "opencode.json.20260101T000000.000Z.bak").expect("plain");
        let b = backup_order("opencode.json", "opencode.json.20260101T000000.000Z.1.bak")
            .expect("sequence");
        let c =
            backup_order("opencode.json", "opencode.json.20260101T000000.001Z.bak").expect("later");
        assert!(a < b && b < c);
        assert_eq!(
            backup_order("opencode.json", "opencode.jsonc.20260101T000000.000Z.bak"),
            None
        );
        assert_eq!(
            backup_order("opencode.json", "opencode.json.notatime.bak"),
            None
        );
    }
}
