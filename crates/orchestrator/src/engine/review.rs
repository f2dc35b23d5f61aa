//! Review: the deterministic gate first (the project's check commands), then the Reviewer on the Worker's
//! changes and the gate's results ([`message`]); [`judge`] turns the two into a verdict. A failed check is
//! never approved, whatever the Reviewer says. The mission driver runs the gate and the Reviewer's turn.

use crate::domain::agent::{AgentError, FileChange, TurnEnd};
use crate::domain::gate::GateReport;
use crate::domain::prompts::{self, Verdict};

/// How much of a diff the Reviewer reads.
const DIFF_LIMIT: usize = 48 * 1024;

/// What the review of one attempt found.
#[derive(Debug, Clone)]
pub struct Review {
    /// The gate's report.
    pub gate: GateReport,
    /// Whether the task is done.
    pub approved: bool,
    /// The findings to send back, when it is not.
    pub findings: String,
    /// The Reviewer's session.
    pub reviewer: String,
}

/// Everything a review needs to know of the task.
#[derive(Debug)]
pub struct ReviewInput<'a> {
    /// The task's id.
    pub id: &'a str,
    /// Its title.
    pub title: &'a str,
    /// Its brief.
    pub brief: &'a str,
    /// The Worker's report.
    pub report: &'a str,
    /// The Worker's changes.
    pub changes: &'a [FileChange],
}

/// Why a review did not give a verdict.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The server failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The Reviewer's turn did not end with an answer.
    #[error("the Reviewer's turn in session {session} {end}")]
    Turn {
        /// The session.
        session: String,
        /// How it ended.
        end: TurnEnd,
    },
}

/// The Reviewer's message: the task, the Worker's report, its changes and the gate's results.
pub fn message(input: &ReviewInput<'_>, gate: &GateReport) -> String {
    prompts::reviewer_message(
        input.id,
        input.title,
        input.brief,
        input.report,
        &render_changes(input.changes, DIFF_LIMIT),
        &gate.for_reviewer(),
    )
}

/// The verdict of the Reviewer's `answer` and the `gate`: a failed check is never approved, and its
/// output joins the findings.
pub fn judge(answer: &str, gate: GateReport, reviewer: String) -> Review {
    let (approved, mut findings) = match prompts::verdict(answer) {
        Verdict::Approved => (true, String::new()),
        Verdict::ChangesRequested(findings) => (false, findings),
    };
    if !gate.passed() {
        findings = format!(
            "{}\nThe project's checks failed:\n{}",
            findings.trim(),
            gate.for_reviewer()
        )
        .trim()
        .to_string();
    }
    Review {
        approved: approved && gate.passed(),
        findings,
        gate,
        reviewer,
    }
}

/// Renders changes for the Reviewer, cut at `limit` bytes.
pub fn render_changes(changes: &[FileChange], limit: usize) -> String {
    if changes.is_empty() {
        return "(no file changed)".to_string();
    }
    let mut text = String::new();
    for change in changes {
        text.push_str(&format!(
            "=== {} ({}, +{} -{})\n{}\n",
            change.path,
            change.status,
            change.additions,
            change.deletions,
            change.patch.trim_end()
        ));
    }
    if text.len() > limit {
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let omitted = text.len() - cut;
        text.truncate(cut);
        text.push_str(&format!("\n[... {omitted} bytes of diff omitted ...]\n"));
    }
    text
}
