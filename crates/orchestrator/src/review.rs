//! Stage 7, `review`: deterministic gates first ([`gate`]: the project's check commands, exit status and
//! output kept), then the Reviewer agent on the diff of the Worker's session and the gate's results. A
//! failed review sends the task back to its Worker with the findings, a bounded number of times.

use crate::adapters::gate;

use std::time::Duration;

use opencode_client::{FileDiff, Prompt};

use crate::error::OrchestratorError;
use crate::monitor::{Monitor, TurnEnd};
use crate::prompts::{self, Prompts, Role, Verdict};
use crate::server::Opencode;
use crate::sessions::Sessions;

/// What the review of one attempt found.
#[derive(Debug, Clone)]
pub struct Review {
    /// Whether the task is done.
    pub approved: bool,
    /// The findings to send back, when it is not.
    pub findings: String,
    /// The gate's one-line-per-command summary.
    pub gate_summary: String,
    /// The Reviewer's session, if the Reviewer ran.
    pub session: Option<String>,
}

/// The files a session changed, as `/session/{id}/diff` reports them. OpenCode computes that diff in the
/// background after the step that made the change, so an empty answer is asked again for a few seconds.
///
/// # Errors
///
/// [`OrchestratorError::Opencode`] when OpenCode cannot be reached.
pub async fn session_diff(
    opencode: &Opencode,
    session: &str,
    expect_changes: bool,
) -> Result<Vec<FileDiff>, OrchestratorError> {
    let mut waited = Duration::ZERO;
    loop {
        let diff = opencode
            .call("read a session's diff", |client| async move {
                client.session_changes(session).await
            })
            .await?;
        if !diff.is_empty() || !expect_changes || waited >= Duration::from_secs(5) {
            return Ok(diff);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        waited += Duration::from_millis(250);
    }
}

/// Renders a diff for the Reviewer, cut at `limit` bytes.
pub fn render_diff(diff: &[FileDiff], limit: usize) -> String {
    if diff.is_empty() {
        return "(no file changed)".to_string();
    }
    let mut text = String::new();
    for file in diff {
        text.push_str(&format!(
            "=== {} ({}, +{} -{})\n{}\n",
            file.file,
            file.status.as_deref().unwrap_or("modified"),
            file.additions,
            file.deletions,
            file.patch.trim_end()
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

/// Everything a review needs.
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
    pub diff: &'a [FileDiff],
}

/// Reviews one attempt: runs the gate, then (whatever the gate said) asks the Reviewer.
///
/// # Errors
///
/// [`OrchestratorError::Opencode`] when OpenCode cannot be reached; [`OrchestratorError::Turn`] when the
/// Reviewer's model fails or stalls.
pub async fn review(
    input: &ReviewInput<'_>,
    gate: &gate::Gate,
    project: &std::path::Path,
    sessions: &Sessions,
    monitor: &Monitor,
    prompts: &Prompts,
) -> Result<Review, OrchestratorError> {
    let report = gate.run(project).await;
    let gate_summary = report.summary();
    let lease = sessions
        .lease(Role::Reviewer, &format!("review {}", input.id))
        .await?;
    let mut prompt = Prompt::text(prompts::reviewer_message(
        input.id,
        input.title,
        input.brief,
        input.report,
        &render_diff(input.diff, 48 * 1024),
        &report.for_reviewer(),
    ))
    .system(prompts.system(Role::Reviewer));
    for (tool, enabled) in Role::Reviewer.tools(false) {
        prompt = prompt.tool(tool, enabled);
    }
    let answer = match monitor.turn(&lease.id, &prompt, false).await? {
        TurnEnd::Answered { text } => text,
        other => {
            return Err(OrchestratorError::Turn {
                role: Role::Reviewer.name(),
                session: lease.id,
                message: describe(&other),
            });
        }
    };
    let (approved, mut findings) = match prompts::verdict(&answer) {
        Verdict::Approved => (true, String::new()),
        Verdict::ChangesRequested(findings) => (false, findings),
    };
    // The gate is deterministic: a failed check is never approved, whatever the Reviewer says.
    let approved = approved && report.passed();
    if !report.passed() {
        findings = format!(
            "{}\nThe project's checks failed:\n{}",
            findings.trim(),
            report.for_reviewer()
        )
        .trim()
        .to_string();
    }
    Ok(Review {
        approved,
        findings,
        gate_summary,
        session: Some(lease.id),
    })
}

/// A turn that did not end with an answer, in words.
pub fn describe(end: &TurnEnd) -> String {
    match end {
        TurnEnd::Answered { .. } => "answered".to_string(),
        TurnEnd::ModelFailed { message } => format!("failed: the model call failed: {message}"),
        TurnEnd::Stalled => "stalled: no progress for the stall time, aborted".to_string(),
        TurnEnd::TimedOut => "timed out, aborted".to_string(),
    }
}
