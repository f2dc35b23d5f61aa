//! The end of a mission as the user reads it: the summary printed in the terminal, the `--json` summary
//! object, and the message posted in the OpenCode session that asked for the mission.

use std::fmt::Write as _;

use serde_json::json;

use crate::domain::mission::{MissionStatus, MissionView, Stage, StopCause};
use crate::domain::task::{TaskState, TaskStatus};
use crate::domain::usage::{Budget, Cost, Tokens};
use crate::domain::workspace::{Delivery, task_branch};
use crate::engine::MissionReport;

/// The outcome in capitals, as the summary's first line shows it.
fn headline(view: &MissionView) -> String {
    match &view.status {
        MissionStatus::Completed => "COMPLETED".to_string(),
        MissionStatus::Running => "RUNNING".to_string(),
        status @ MissionStatus::Incomplete { .. } => {
            format!(
                "INCOMPLETE: {}",
                status.to_string().trim_start_matches("incomplete: ")
            )
        }
        MissionStatus::Stopped { cause } => format!("STOPPED: {cause}{}", resume_hint(view, cause)),
    }
}

/// How to go on after a stop, when the mission can.
fn resume_hint(view: &MissionView, cause: &StopCause) -> String {
    match cause {
        StopCause::NoPlan { .. } => String::new(),
        StopCause::Journal { .. } => format!(
            "; free space or fix the directory, then continue it with `orchestrator resume {}`",
            view.id
        ),
        _ => format!("; continue it with `orchestrator resume {}`", view.id),
    }
}

/// Why a task did not finish well, if it did not.
pub fn reason(task: &TaskState) -> Option<String> {
    match &task.status {
        TaskStatus::Failed { cause } => Some(cause.to_string()),
        TaskStatus::Blocked { reason } => Some(format!("the Worker is blocked: {reason}")),
        TaskStatus::Skipped { by } => Some(format!("not run: {by} did not finish")),
        TaskStatus::Interrupted => {
            Some("interrupted by the stop; `resume` runs it again".to_string())
        }
        _ => None,
    }
}

/// The summary printed at the end of a mission.
pub fn render(report: &MissionReport) -> String {
    let view = &report.view;
    let mut out = String::new();
    let _ = writeln!(out, "Mission {}: {}", view.id, headline(view));
    let _ = writeln!(out, "  project:  {}", view.project);
    if let Some(plan) = &report.plan_file {
        let _ = writeln!(
            out,
            "  plan:     {} ({} attempt(s))",
            plan.display(),
            view.plan_attempts
        );
    }
    let _ = writeln!(
        out,
        "  tasks:    {} done, {} failed, {} blocked, {} skipped{}, of {}",
        view.count("done"),
        view.count("failed"),
        view.count("blocked"),
        view.count("skipped"),
        match view.count("interrupted") {
            0 => String::new(),
            interrupted => format!(", {interrupted} interrupted"),
        },
        view.tasks.len()
    );
    let _ = writeln!(out, "  sessions: {}", report.session_count());
    let _ = writeln!(
        out,
        "  slots:    {} tasks from their own deque, {} from the queue, {} stolen",
        report.sources.0, report.sources.1, report.sources.2
    );
    let servers: Vec<String> = report
        .servers
        .iter()
        .map(|(url, up)| format!("{url} ({})", if *up { "up" } else { "down" }))
        .collect();
    let _ = writeln!(
        out,
        "  model:    {} failed turn(s); model breaker {}; OpenCode {}",
        report.model_failures,
        report.model_breaker,
        servers.join(", ")
    );
    if !report.aborted.is_empty() {
        let _ = writeln!(out, "  aborted:  {} session(s)", report.aborted.len());
    }
    if !report.unconfirmed.is_empty() {
        let _ = writeln!(
            out,
            "  still busy after the stop (abort them in OpenCode): {}",
            report.unconfirmed.join(", ")
        );
    }
    let usage = &view.usage;
    let _ = writeln!(out, "  usage:    {}", usage.total);
    if !usage.by_role.is_empty() {
        let roles: Vec<String> = usage
            .by_role
            .iter()
            .map(|(role, used)| format!("{role} {used}"))
            .collect();
        let _ = writeln!(out, "            by role: {}", roles.join("; "));
    }
    if usage.by_server.len() > 1 {
        let servers: Vec<String> = usage
            .by_server
            .iter()
            .map(|(server, used)| format!("{server} {used}"))
            .collect();
        let _ = writeln!(out, "            by server: {}", servers.join("; "));
    }
    let budgets = view.budgets;
    let limits: Vec<String> = [
        (Budget::Cost, budgets.cost_nanos),
        (Budget::Tokens, budgets.tokens),
        (Budget::Time, budgets.time_ms),
    ]
    .into_iter()
    .filter_map(|(budget, limit)| limit.map(|limit| format!("{budget} {}", budget.show(limit))))
    .chain(
        budgets
            .turns_per_task
            .map(|turns| format!("{turns} turns per task")),
    )
    .collect();
    if !limits.is_empty() {
        let _ = writeln!(out, "  budgets:  {}", limits.join(", "));
    }
    let _ = writeln!(out, "  wall:     {:.1} s", report.wall.as_secs_f64());
    for stage in Stage::ALL {
        if let Some(ms) = view.stage_ms.get(&stage) {
            let _ = writeln!(
                out,
                "    {:<8} {:>8.1} s",
                stage.name(),
                *ms as f64 / 1000.0
            );
        }
    }
    if !view.tasks.is_empty() {
        let _ = writeln!(
            out,
            "  {:<6} {:<11} {:>8} {:>5} {:>8} {:>9}  title",
            "task", "status", "attempts", "runs", "tokens", "cost"
        );
        for task in view.tasks_in_order() {
            let _ = writeln!(
                out,
                "  {:<6} {:<11} {:>8} {:>5} {:>8} {:>9}  {}",
                task.id(),
                task.status.name(),
                task.attempts,
                task.runs,
                Tokens(task.usage.tokens()).to_string(),
                Cost(task.usage.cost_nanos).to_string(),
                task.spec.title
            );
            if let Some(reason) = reason(task) {
                let _ = writeln!(out, "         {reason}");
            }
        }
    }
    let files = report.files();
    let _ = writeln!(out, "  files changed ({}):", files.len());
    for file in files {
        let _ = writeln!(out, "    {file}");
    }
    for line in isolation(view) {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// What isolated work left in git: the integration branch, what became of the user's branch, and every
/// branch with a Worker's commits that is not integrated (nothing committed is dropped unsaid).
pub fn isolation(view: &MissionView) -> Vec<String> {
    let Some(origin) = &view.origin else {
        return Vec::new();
    };
    let mut lines = vec![format!(
        "integration: {} (from {} at {})",
        origin.integration,
        origin.checkout.head,
        origin.checkout.commit.short()
    )];
    lines.push(match &view.delivery {
        Some(Delivery::FastForwarded { branch, commit }) => format!(
            "delivered:   {} fast-forwarded to {}",
            branch.as_deref().unwrap_or("the detached HEAD"),
            short(commit)
        ),
        Some(Delivery::Kept { reason, command }) => {
            format!("delivered:   not yet ({reason}); to take the result: {command}")
        }
        Some(Delivery::Nothing) => "delivered:   nothing (no task changed the project)".to_string(),
        None => format!(
            "delivered:   not yet (the mission did not finish); its work so far is on {}",
            origin.integration
        ),
    });
    for task in view.tasks_in_order() {
        // The task's own branch is the one integrated; earlier attempts' are kept beside it.
        let integrated = task
            .integrated
            .as_ref()
            .map(|_| task_branch(&view.id, task.id()));
        let kept: Vec<&str> = task
            .branches
            .iter()
            .filter(|branch| Some(*branch) != integrated.as_ref())
            .map(String::as_str)
            .collect();
        if !kept.is_empty() {
            lines.push(format!(
                "not integrated: {} has commits on {}",
                task.id(),
                kept.join(", ")
            ));
        }
    }
    lines
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The `--json` summary: one object with the outcome and each task's.
pub fn json(report: &MissionReport) -> serde_json::Value {
    let view = &report.view;
    json!({
        "event": "summary",
        "mission": view.id,
        "status": view.status,
        "completed": report.completed(),
        "tasks": view.tasks_in_order().map(|task| json!({
            "id": task.id(),
            "title": task.spec.title,
            "status": task.status.name(),
            "reason": reason(task),
            "attempts": task.attempts,
            "runs": task.runs,
            "files": task.files,
            "usage": task.usage,
            "cost": task.usage.cost(),
            "tokens": task.usage.tokens(),
        })).collect::<Vec<_>>(),
        "usage": view.usage,
        "cost": view.usage.total.cost(),
        "tokens": view.usage.total.tokens(),
        "budgets": view.budgets,
        "files": report.files(),
        "integration": view.origin.as_ref().map(|origin| &origin.integration),
        "delivery": view.delivery,
        "sessions": report.session_count(),
        "plan": report.plan_file,
        "wall_ms": u64::try_from(report.wall.as_millis()).unwrap_or(u64::MAX),
    })
}

/// The message posted in the session that asked for the mission: the outcome, each task, and the files
/// changed.
pub fn session_message(report: &MissionReport) -> String {
    let view = &report.view;
    let mut text = format!("Orchestrator mission {}: {}\n", view.id, view.status);
    for task in view.tasks_in_order() {
        let _ = write!(
            text,
            "- {} {}: {}",
            task.id(),
            task.spec.title,
            task.status.name()
        );
        if let Some(reason) = reason(task) {
            let _ = write!(text, " ({reason})");
        }
        text.push('\n');
    }
    let files = report.files();
    if !files.is_empty() {
        let _ = writeln!(text, "Files changed: {}", files.join(", "));
    }
    for line in isolation(view) {
        let _ = writeln!(text, "{line}");
    }
    text
}
