//! Mission memory: what one mission learned, kept for the next as a short, human-readable record, and the
//! bounded digest of earlier records that the next mission's Commander and Planner read.
//!
//! A [`MissionRecord`] is built from the journal ([`Notes`] folds its entries; nothing is asked of a
//! model), rendered as markdown ([`MissionRecord::render`]) and read back ([`MissionRecord::parse`]) so a
//! user may edit or delete it. [`digest`] picks the most relevant lines of earlier records — newest first,
//! weighted by overlap with the new mission's words and files — under a cap in (estimated) tokens, each
//! line naming the record and section it came from.
//!
//! ```
//! use orchestrator::domain::recall::{MissionRecord, digest};
//!
//! let text = "# Mission m1\nended: 2026-12-08T01:00:00Z\noutcome: completed\n\n## Goal\nAdd slugify\n\n## Checks\n\
//!             - `cargo test`: passed 1, failed 0; last passed\n";
//! let record = MissionRecord::parse(text).unwrap();
//! let digest = digest(&[record], "slugify titles", &[], 200).unwrap();
//! assert!(digest.contains("[m1 checks] `cargo test`: passed 1"));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::domain::mission::{Entry, Event, MissionEvent, MissionStatus, MissionView};
use crate::domain::task::{TaskEvent, TaskStatus};
use crate::domain::usage::{Budgets, Usage};

/// The first characters of every record: `# Mission <id>`.
pub const HEADING: &str = "# Mission ";

/// The sections of a record, in the order they are rendered.
pub const SECTIONS: [&str; 6] = ["Goal", "Plan", "Checks", "Findings", "Failures", "Usage"];

/// The order a digest takes a record's sections in: what helps a new plan most comes first.
const DIGEST_ORDER: [&str; 5] = ["Checks", "Findings", "Failures", "Plan", "Usage"];

/// Longest line a record keeps of a finding or a failure, in characters.
const LINE_LIMIT: usize = 240;

/// Words too common to say two missions are about the same thing.
const STOPWORDS: [&str; 24] = [
    "the", "and", "for", "with", "that", "this", "from", "into", "are", "was", "not", "but", "all",
    "add", "use", "make", "task", "mission", "file", "files", "its", "one", "new", "each",
];

/// What one mission learned, as `.opencode/orchestrator/memory/<mission>.md` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissionRecord {
    /// The mission's id.
    pub mission: String,
    /// When it ended, in milliseconds since the Unix epoch (0 when the record does not say).
    pub ended_ms: u64,
    /// How it ended, in words.
    pub outcome: String,
    /// What the user asked for.
    pub goal: String,
    /// The other sections (`Plan`, `Checks`, `Findings`, `Failures`, `Usage`, or any a user added), each
    /// with its list items (the text after `- `), in the record's order.
    pub sections: Vec<(String, Vec<String>)>,
}

/// Why a record cannot be read: the file is skipped with a warning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// It does not start with `# Mission <id>`.
    #[error("it does not start with a `{HEADING}<id>` line")]
    NoHeading,
    /// It has no `## Goal` section, or the section is empty.
    #[error("it has no `## Goal` section with the mission's text")]
    NoGoal,
    /// Its `ended:` line is not a time.
    #[error("its `ended:` line is not an RFC 3339 time: {value:?}")]
    BadTime {
        /// The value found.
        value: String,
    },
}

/// Why a record could not be written or removed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} the mission record {}", path.display())]
pub struct KeepError {
    /// What was being done: `write` or `remove`.
    pub action: &'static str,
    /// The record's file.
    pub path: std::path::PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

impl MissionRecord {
    /// The section named `name` (case-insensitive), if the record has it.
    pub fn section(&self, name: &str) -> Option<&[String]> {
        self.sections
            .iter()
            .find(|(section, _)| section.eq_ignore_ascii_case(name))
            .map(|(_, lines)| lines.as_slice())
    }

    /// The files its plan touched: the `files:` of its `Plan` lines.
    pub fn files(&self) -> Vec<String> {
        self.section("Plan")
            .unwrap_or_default()
            .iter()
            .filter_map(|line| line.split_once("files: "))
            .flat_map(|(_, files)| files.split(", "))
            .map(|file| file.trim().trim_end_matches(')').to_string())
            .filter(|file| !file.is_empty())
            .collect()
    }

    /// The record as markdown.
    pub fn render(&self) -> String {
        let mut text = format!("{HEADING}{}\n", self.mission);
        if self.ended_ms > 0 {
            let _ = writeln!(text, "ended: {}", show_time(self.ended_ms));
        }
        let _ = writeln!(text, "outcome: {}", one_line(&self.outcome));
        let _ = write!(text, "\n## Goal\n{}\n", self.goal.trim());
        for (name, lines) in &self.sections {
            if lines.is_empty() {
                continue;
            }
            let _ = write!(text, "\n## {name}\n");
            for line in lines {
                let _ = writeln!(text, "- {}", one_line(line));
            }
        }
        text
    }

    /// Reads a record back from its markdown, as written by [`render`](Self::render) or edited by a user:
    /// lines outside `- ` items are ignored in every section but the goal.
    ///
    /// # Errors
    ///
    /// [`RecordError`] when the heading or the goal is missing, or the `ended:` time does not parse.
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        let mut lines = text.lines().skip_while(|line| line.trim().is_empty());
        let mission = lines
            .next()
            .and_then(|line| line.trim().strip_prefix(HEADING.trim_end()))
            .map(str::trim)
            .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
            .ok_or(RecordError::NoHeading)?
            .to_string();
        let mut record = MissionRecord {
            mission,
            ended_ms: 0,
            outcome: String::new(),
            goal: String::new(),
            sections: Vec::new(),
        };
        let mut current: Option<String> = None;
        let mut goal: Vec<&str> = Vec::new();
        for line in lines {
            if let Some(name) = line.strip_prefix("## ") {
                let name = name.trim().to_string();
                if !name.eq_ignore_ascii_case("Goal") {
                    record.sections.push((name.clone(), Vec::new()));
                }
                current = Some(name);
                continue;
            }
            match &current {
                None => {
                    if let Some(value) = line.strip_prefix("ended:") {
                        let value = value.trim();
                        let at: jiff::Timestamp =
                            value.parse().map_err(|_| RecordError::BadTime {
                                value: value.to_string(),
                            })?;
                        record.ended_ms = u64::try_from(at.as_millisecond()).unwrap_or(0);
                    } else if let Some(value) = line.strip_prefix("outcome:") {
                        record.outcome = value.trim().to_string();
                    }
                }
                Some(name) if name.eq_ignore_ascii_case("Goal") => goal.push(line),
                Some(_) => {
                    if let Some(item) = line.trim_start().strip_prefix("- ")
                        && let Some((_, items)) = record.sections.last_mut()
                    {
                        items.push(item.trim().to_string());
                    }
                }
            }
        }
        record.goal = goal.join("\n").trim().to_string();
        if record.goal.is_empty() {
            return Err(RecordError::NoGoal);
        }
        Ok(record)
    }
}

/// A time in milliseconds since the epoch, as RFC 3339 in UTC to the second.
fn show_time(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    jiff::Timestamp::from_millisecond(ms)
        .map(|at| at.round(jiff::Unit::Second).unwrap_or(at).to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// The text on one line, at most [`LINE_LIMIT`] characters.
fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if joined.chars().count() <= LINE_LIMIT {
        return joined;
    }
    let mut cut: String = joined.chars().take(LINE_LIMIT - 1).collect();
    cut.push('…');
    cut
}

/// The gist of review findings: their first non-empty line without its list marker, and the next one too
/// when the first only introduces it (ends with `:`, as "The project's checks failed:" does).
fn gist(findings: &str) -> String {
    let mut lines = findings
        .lines()
        .map(|line| line.trim().trim_start_matches(['-', '*']).trim())
        .filter(|line| !line.is_empty());
    let first = lines.next().unwrap_or_default();
    match lines.next() {
        Some(next) if first.ends_with(':') => format!("{first} {next}"),
        _ => first.to_string(),
    }
}

/// What a check command did over a mission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CheckTally {
    passed: u32,
    failed: u32,
    last: String,
    tasks: BTreeSet<String>,
}

/// The journal folded into what a record needs: fed every entry in order ([`observe`](Self::observe)),
/// then [`record`](Self::record) with the mission's final view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes {
    checks: BTreeMap<String, CheckTally>,
    findings: Vec<String>,
    failures: Vec<String>,
    handoffs: BTreeMap<String, u32>,
    ended_ms: u64,
}

impl Notes {
    /// Notes of a whole journal.
    pub fn of(entries: &[Entry]) -> Self {
        let mut notes = Notes::default();
        for entry in entries {
            notes.observe(entry);
        }
        notes
    }

    /// Takes one more entry into account.
    pub fn observe(&mut self, entry: &Entry) {
        self.ended_ms = self.ended_ms.max(entry.at_ms);
        match &entry.event {
            Event::Task { task, event } => match event {
                TaskEvent::GateChecked { summary, .. } => {
                    for line in summary.lines().filter(|line| !line.trim().is_empty()) {
                        let Some((name, outcome)) = line.split_once(": ") else {
                            continue;
                        };
                        let tally = self.checks.entry(name.trim().to_string()).or_default();
                        let outcome = outcome.split(" in ").next().unwrap_or(outcome).trim();
                        if outcome == "passed" {
                            tally.passed += 1;
                        } else {
                            tally.failed += 1;
                        }
                        tally.last = outcome.to_string();
                        tally.tasks.insert(task.clone());
                    }
                }
                TaskEvent::ChangesRequested { findings, .. } => {
                    self.findings
                        .push(format!("{task}: {}", one_line(&gist(findings))));
                }
                TaskEvent::IntegrationFailed { findings } => {
                    self.findings.push(format!(
                        "{task} (integration): {}",
                        one_line(&gist(findings))
                    ));
                }
                TaskEvent::Failed { cause } => {
                    self.failures
                        .push(format!("{task}: {}", one_line(&cause.to_string())));
                }
                TaskEvent::WorkerBlocked { reason } => {
                    self.failures
                        .push(format!("{task} blocked: {}", one_line(reason)));
                }
                TaskEvent::HandedOff { .. } => {
                    *self.handoffs.entry(task.clone()).or_default() += 1;
                }
                _ => {}
            },
            Event::Mission {
                event: MissionEvent::Stopped { cause },
            } => {
                self.failures
                    .push(format!("mission stopped: {}", one_line(&cause.to_string())));
            }
            Event::Mission {
                event: MissionEvent::PlanRejected { attempt, errors },
            } => {
                self.failures.push(format!(
                    "plan attempt {attempt} rejected: {}",
                    one_line(&gist(errors))
                ));
            }
            Event::Mission { .. } => {}
        }
    }

    /// The record of the mission whose final view is `view`.
    pub fn record(&self, view: &MissionView) -> MissionRecord {
        let plan = view
            .tasks_in_order()
            .map(|task| {
                let mut line = format!(
                    "{} {}: {}",
                    task.id(),
                    task.spec.title,
                    outcome(&task.status)
                );
                if task.attempts > 1 {
                    let _ = write!(line, " after {} attempts", task.attempts);
                }
                if let Some(handoffs) = self.handoffs.get(task.id()) {
                    let _ = write!(line, ", {handoffs} fresh Worker session(s)");
                }
                let files = if task.files.is_empty() {
                    &task.spec.files
                } else {
                    &task.files
                };
                if !files.is_empty() {
                    let _ = write!(line, " (files: {})", files.join(", "));
                }
                line
            })
            .collect();
        let checks = self
            .checks
            .iter()
            .map(|(name, tally)| {
                format!(
                    "`{name}`: passed {}, failed {}; last {} ({})",
                    tally.passed,
                    tally.failed,
                    tally.last,
                    tally.tasks.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        MissionRecord {
            mission: view.id.clone(),
            ended_ms: self.ended_ms,
            outcome: view.status.to_string(),
            goal: view.text.trim().to_string(),
            sections: vec![
                ("Plan".to_string(), plan),
                ("Checks".to_string(), checks),
                ("Findings".to_string(), self.findings.clone()),
                ("Failures".to_string(), self.failures.clone()),
                (
                    "Usage".to_string(),
                    usage_lines(&view.usage.total, &view.budgets, &view.status),
                ),
            ],
        }
    }
}

/// A task's outcome in a word or a few.
fn outcome(status: &TaskStatus) -> String {
    match status {
        TaskStatus::Failed { .. } => "failed".to_string(),
        TaskStatus::Blocked { .. } => "blocked".to_string(),
        other => other.to_string(),
    }
}

fn usage_lines(total: &Usage, budgets: &Budgets, status: &MissionStatus) -> Vec<String> {
    let mut lines = vec![format!(
        "{} tokens (input {}, output {}, cache read {}), cost {:.4}",
        total.tokens(),
        total.input,
        total.output,
        total.cache_read,
        total.cost()
    )];
    if *budgets != Budgets::default() {
        lines.push(format!("budgets: {budgets:?}"));
    }
    if let MissionStatus::Stopped { cause } = status {
        lines.push(format!("stopped: {}", one_line(&cause.to_string())));
    }
    lines
}

/// The tokens a text is estimated to take: one per four characters, rounded up (the usual estimate for
/// English and code; the cap is a budget, not an exact count).
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// The words of a text that can say what it is about: lowercase, three characters or more, no stopwords.
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '_')
        .map(str::to_lowercase)
        .filter(|word| word.chars().count() >= 3 && !STOPWORDS.contains(&word.as_str()))
        .collect()
}

/// The paths a text names: words with a `/` or a file extension.
pub fn paths_in(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '`' | '"' | '\'' | ',' | '(' | ')'))
        .map(|word| word.trim_end_matches([':', ';', '.']))
        .filter(|word| {
            word.contains('/')
                || word.rsplit_once('.').is_some_and(|(stem, ext)| {
                    !stem.is_empty()
                        && (1..=5).contains(&ext.len())
                        && ext.chars().all(char::is_alphanumeric)
                })
        })
        .filter(|word| !word.starts_with("http"))
        .map(str::to_string)
        .collect()
}

/// How relevant `record` is to a mission with `text` touching `files`, being the `rank`-th newest record
/// (0 the newest): recency, plus the share of the mission's words the record shares, plus the share of its
/// files the record's plan touched.
pub fn relevance(record: &MissionRecord, rank: usize, text: &str, files: &[String]) -> f64 {
    let recency = 1.0 / (1.0 + rank as f64);
    let wanted = words(text);
    let mut known = words(&record.goal);
    for (_, lines) in &record.sections {
        for line in lines {
            known.extend(words(line));
        }
    }
    let word_overlap = if wanted.is_empty() {
        0.0
    } else {
        wanted.intersection(&known).count() as f64 / wanted.len() as f64
    };
    let touched = record.files();
    let file_overlap = if files.is_empty() {
        0.0
    } else {
        files
            .iter()
            .filter(|file| {
                touched.iter().any(|other| {
                    other == *file
                        || other.ends_with(file.as_str())
                        || file.ends_with(other.as_str())
                })
            })
            .count() as f64
            / files.len() as f64
    };
    recency + 2.0 * word_overlap + 2.0 * file_overlap
}

/// The first line of a digest.
pub const DIGEST_HEADING: &str = "MEMORY OF EARLIER MISSIONS";

/// A digest of `records` for a mission with `text` touching `files`, at most `cap_tokens` tokens (as
/// [`estimate_tokens`] counts them): the records ordered by [`relevance`] (newest first among equals),
/// each line led by `[<mission> <section>]`, the record and section it came from. `None` when there is no
/// record, the cap is 0, or no line fits.
pub fn digest(
    records: &[MissionRecord],
    text: &str,
    files: &[String],
    cap_tokens: usize,
) -> Option<String> {
    if records.is_empty() || cap_tokens == 0 {
        return None;
    }
    let mut newest: Vec<&MissionRecord> = records.iter().collect();
    newest.sort_by(|a, b| {
        b.ended_ms
            .cmp(&a.ended_ms)
            .then_with(|| b.mission.cmp(&a.mission))
    });
    let mut scored: Vec<(f64, usize, &MissionRecord)> = newest
        .iter()
        .enumerate()
        .map(|(rank, record)| (relevance(record, rank, text, files), rank, *record))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut digest = format!(
        "{DIGEST_HEADING} (from .opencode/orchestrator/memory/, most relevant first; each line says \
         [mission section] where it came from; records may be out of date, so check before relying on them):\n"
    );
    let mut budget = cap_tokens.saturating_sub(estimate_tokens(&digest));
    let mut lines = 0;
    let mut take = |line: String, digest: &mut String| {
        let line = format!("{line}\n");
        let cost = estimate_tokens(&line);
        if cost <= budget {
            budget -= cost;
            digest.push_str(&line);
            lines += 1;
        }
    };
    for (_, _, record) in &scored {
        let goal = format!(
            "- [{} goal] {} ({})",
            record.mission,
            crate::domain::prompts::first_line(&record.goal),
            if record.outcome.is_empty() {
                "outcome unknown"
            } else {
                &record.outcome
            }
        );
        take(goal, &mut digest);
        for section in DIGEST_ORDER {
            for line in record.section(section).unwrap_or_default() {
                take(
                    format!(
                        "- [{} {}] {line}",
                        record.mission,
                        section.to_ascii_lowercase()
                    ),
                    &mut digest,
                );
            }
        }
    }
    if lines == 0 || estimate_tokens(&digest) > cap_tokens {
        return None;
    }
    Some(digest)
}

#[cfg(test)]
mod tests;
