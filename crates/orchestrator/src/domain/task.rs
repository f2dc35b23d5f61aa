//! A task's life as a list of events: [`TaskEvent`]s applied in order by the pure [`apply`] to a
//! [`TaskState`]. An event that makes no sense in the state it arrives in (a done task started again, a
//! finished Worker finishing again) is [`Illegal`] and changes nothing, so no sequence of events can put a
//! task in an impossible state.
//!
//! ```text
//!            Released          Started               WorkerFinished          Approved
//!  Pending ───────────▶ Queued ────────▶ Running ───────────────▶ Reviewing ─────────▶ Done
//!     │                   ▲                │  ▲                      │  │
//!     │ Skipped           │ Restarted      │  └── ChangesRequested ──┘  │ Failed
//!     ▼                   │                │ WorkerBlocked / Failed      ▼
//!  Skipped           Pending ◀─ Interrupted ◀── (a stop, Running or Reviewing)
//!                                          ▼
//!                                   Blocked / Failed
//! ```
//!
//! `Restarted` takes an interrupted task (or, after a crash, one the journal still shows running) back to
//! `Pending`, keeping its Worker session when that session still exists so the next run continues it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::plan::{Changes, Priority};
use crate::domain::workspace::Tree;

/// A task as the plan describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// `T1.2`.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The agent the plan names (`Worker` by default).
    pub agent: String,
    /// The tasks that must be done first.
    pub depends: Vec<String>,
    /// How urgent it is among the ready tasks.
    pub priority: Priority,
    /// The plan's description and sub-steps, as the Worker is told them.
    pub brief: String,
    /// The files the plan says it touches (paths or globs): tasks whose files overlap never run at once.
    #[serde(default)]
    pub files: Vec<String>,
    /// Whether it must change the project to be done.
    #[serde(default)]
    pub changes: Changes,
}

impl TaskSpec {
    /// The spec of a task of a parsed plan.
    pub fn from_plan(task: &crate::domain::plan::Task) -> Self {
        let mut brief = String::new();
        if !task.description.is_empty() {
            brief.push_str(&task.description);
            brief.push('\n');
        }
        for step in &task.steps {
            brief.push_str("- ");
            brief.push_str(&step.text);
            brief.push('\n');
        }
        Self {
            id: task.id.clone(),
            title: task.title.clone(),
            agent: task.agent.clone(),
            depends: task.depends.clone(),
            priority: task.priority,
            brief,
            files: task.files.clone(),
            changes: task.changes,
        }
    }
}

/// Where a task is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for its dependencies.
    Pending,
    /// Its dependencies are done; queued for a worker slot.
    Queued,
    /// A Worker is on it.
    Running {
        /// The worker slot running it.
        slot: usize,
    },
    /// The gate and the Reviewer are checking the Worker's result.
    Reviewing {
        /// The worker slot running it.
        slot: usize,
    },
    /// Approved, in the merge queue: being merged onto the integration branch (and gated there).
    Integrating {
        /// The worker slot running it.
        slot: usize,
    },
    /// Reviewed, gated and integrated.
    Done,
    /// Given up on.
    Failed {
        /// Why.
        cause: FailCause,
    },
    /// The Worker said it cannot do the task (`STATUS: BLOCKED`).
    Blocked {
        /// The Worker's reason.
        reason: String,
    },
    /// Never run: a task it depends on failed or was blocked.
    Skipped {
        /// That task.
        by: String,
    },
    /// The orchestrator stopped while the task ran (a signal, `orchestrator stop`): not a failure; `resume`
    /// runs it again.
    Interrupted,
}

impl TaskStatus {
    /// Whether the task will not change any more in this mission.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            Self::Done | Self::Failed { .. } | Self::Blocked { .. } | Self::Skipped { .. }
        )
    }

    /// Whether a Worker slot holds the task.
    pub fn slot(&self) -> Option<usize> {
        match self {
            Self::Running { slot } | Self::Reviewing { slot } | Self::Integrating { slot } => {
                Some(*slot)
            }
            _ => None,
        }
    }

    /// A short name: `pending`, `queued`, `running`, `reviewing`, `integrating`, `done`, `failed`,
    /// `blocked`, `skipped`, `interrupted`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Running { .. } => "running",
            Self::Reviewing { .. } => "reviewing",
            Self::Integrating { .. } => "integrating",
            Self::Done => "done",
            Self::Failed { .. } => "failed",
            Self::Blocked { .. } => "blocked",
            Self::Skipped { .. } => "skipped",
            Self::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running { slot } | Self::Reviewing { slot } | Self::Integrating { slot } => {
                write!(f, "{} (slot {slot})", self.name())
            }
            Self::Failed { cause } => write!(f, "failed: {cause}"),
            Self::Blocked { reason } => write!(f, "blocked: {reason}"),
            Self::Skipped { by } => write!(f, "skipped: {by} did not finish"),
            _ => f.write_str(self.name()),
        }
    }
}

/// Why a task failed: a record the journal keeps (so it holds words, not the error values that led to it;
/// those are in the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailCause {
    /// The Reviewer or the gate kept asking for changes.
    NotApproved {
        /// Worker attempts made.
        attempts: u32,
        /// The first line of the last findings.
        findings: String,
    },
    /// The Worker stopped making progress, and a diagnostic prompt did not help.
    Stagnated {
        /// What showed it (the same output repeated, no status after reminders, no progress).
        signal: String,
    },
    /// The model failed past its retries.
    Model {
        /// The last failure.
        message: String,
    },
    /// The Worker said it was done twice without changing anything (and the plan expects a change).
    NoChange,
    /// Its changes could not be integrated within its attempts (conflicts, or the checks failing on the
    /// integrated result).
    NotIntegrated {
        /// Attempts made.
        attempts: u32,
        /// The first line of the last reason.
        reason: String,
    },
    /// Its Workers took the most turns a task may take (`turns_per_task`).
    TurnBudget {
        /// The limit.
        turns: u32,
    },
    /// The workspace (git) failed for this task.
    Workspace {
        /// What failed.
        message: String,
    },
    /// An OpenCode call about this task failed in a way another attempt would not fix (a session that is
    /// gone, an answer that does not decode).
    Agent {
        /// The call and its error.
        message: String,
    },
}

impl fmt::Display for FailCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailCause::NotApproved { attempts, findings } => write!(
                f,
                "not approved after {attempts} attempt(s); last findings: {findings}"
            ),
            FailCause::Stagnated { signal } => {
                write!(f, "stagnated after a diagnostic prompt: {signal}")
            }
            FailCause::Model { message } => write!(f, "the model failed: {message}"),
            FailCause::Agent { message } => write!(f, "OpenCode refused: {message}"),
            FailCause::NoChange => f.write_str(
                "no change: the Worker said it was done twice without changing a file (declare \
                 `changes:none` for a task that only checks or reports)",
            ),
            FailCause::NotIntegrated { attempts, reason } => write!(
                f,
                "not integrated after {attempts} attempt(s); last: {reason}"
            ),
            FailCause::Workspace { message } => write!(f, "the workspace failed: {message}"),
            FailCause::TurnBudget { turns } => {
                write!(f, "its Workers took the {turns} turns a task may take")
            }
        }
    }
}

/// A task as the mission sees it: its spec and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    /// What the plan says.
    pub spec: TaskSpec,
    /// Where it is.
    pub status: TaskStatus,
    /// Worker attempts so far: a fresh Worker session or a review asking for changes starts one.
    pub attempts: u32,
    /// Times a worker slot took it (once in a mission that runs to its end; once more after each
    /// interruption or lost server).
    pub runs: u32,
    /// Every OpenCode session that worked on it, oldest first.
    pub sessions: Vec<String>,
    /// The Worker's session of the current run.
    pub worker_session: Option<String>,
    /// Set by `Restarted`: the next run continues this Worker session instead of starting a new one.
    pub resume_session: Option<String>,
    /// The server it runs on (its URL).
    pub server: Option<String>,
    /// The Worker's last report.
    pub report: Option<String>,
    /// The last review's findings, while they are to be fixed.
    pub findings: Option<String>,
    /// The last gate's one-line-per-command summary and whether it passed.
    pub gate: Option<(bool, String)>,
    /// Files the task's Worker changed.
    pub files: Vec<String>,
    /// Its worktree, when the mission is isolated: kept across a restart (the work in it is kept), given
    /// up when an integration fails (the next attempt starts from the new integration head).
    #[serde(default)]
    pub tree: Option<Tree>,
    /// Every branch its attempts worked on, oldest first (the report names those not integrated).
    #[serde(default)]
    pub branches: Vec<String>,
    /// The Worker's last commit in its worktree.
    #[serde(default)]
    pub head: Option<String>,
    /// A merge computed and about to move the integration branch: (the result, the head it moves from).
    /// A crash between the two is finished exactly once by `resume`.
    #[serde(default)]
    pub merging: Option<(String, String)>,
    /// The commit of the integration branch that holds its change.
    #[serde(default)]
    pub integrated: Option<String>,
    /// Times the Worker said it was done without changing anything.
    #[serde(default)]
    pub empty_reports: u32,
    /// What its turns used (its Workers', its Reviewers' and their sub-agents').
    #[serde(default)]
    pub usage: crate::domain::usage::Usage,
    /// Turns its Workers took.
    #[serde(default)]
    pub turns: u32,
}

impl TaskState {
    /// A task of a new plan: pending.
    pub fn new(spec: TaskSpec) -> Self {
        Self {
            spec,
            status: TaskStatus::Pending,
            attempts: 0,
            runs: 0,
            sessions: Vec::new(),
            worker_session: None,
            resume_session: None,
            server: None,
            report: None,
            findings: None,
            gate: None,
            files: Vec::new(),
            tree: None,
            branches: Vec::new(),
            head: None,
            merging: None,
            integrated: None,
            empty_reports: 0,
            usage: crate::domain::usage::Usage::default(),
            turns: 0,
        }
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }
}

/// Something that happened to a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TaskEvent {
    /// Its dependencies are done: queued for a slot.
    Released,
    /// A slot took it and a Worker session is on it (`continued`: the session of an earlier run, so no new
    /// attempt), in its worktree when the mission is isolated.
    Started {
        /// The worker slot.
        slot: usize,
        /// The OpenCode server's URL.
        server: String,
        /// The Worker's session.
        session: String,
        /// Whether the session is the one the task was interrupted in.
        continued: bool,
        /// Its worktree.
        #[serde(default)]
        tree: Option<Tree>,
    },
    /// The Worker reported the task done.
    WorkerFinished {
        /// Its report.
        report: String,
        /// The files it changed.
        files: Vec<String>,
        /// The commit of its changes in its worktree; `None` when nothing changed.
        #[serde(default)]
        head: Option<String>,
    },
    /// The Worker said it cannot do the task.
    WorkerBlocked {
        /// Its reason.
        reason: String,
    },
    /// The gate ran on the Worker's result.
    GateChecked {
        /// Whether every command passed.
        passed: bool,
        /// One line per command.
        summary: String,
    },
    /// The Reviewer approved (and the gate passed).
    Approved {
        /// The Reviewer's session.
        reviewer: Option<String>,
    },
    /// The review asked for changes: the Worker gets the findings in its next attempt.
    ChangesRequested {
        /// What to fix.
        findings: String,
        /// The Reviewer's session.
        reviewer: Option<String>,
    },
    /// Its merge onto the integration branch is computed (and gated): the branch moves next.
    Merging {
        /// The commit the integration branch moves to.
        result: String,
        /// The commit it moves from.
        onto: String,
    },
    /// Its change is on the integration branch (`None` for a mission that is not isolated, or a task
    /// with nothing to merge).
    Integrated {
        /// The integration branch's commit that holds it.
        commit: Option<String>,
    },
    /// Its change did not integrate (a conflict, or the checks failing on the integrated result): it goes
    /// back to pending, to be done again in a fresh worktree from the new integration head.
    IntegrationFailed {
        /// What to fix, for the next attempt's Worker.
        findings: String,
    },
    /// Given up on.
    Failed {
        /// Why.
        cause: FailCause,
    },
    /// A task it depends on failed or was blocked.
    Skipped {
        /// That task.
        by: String,
    },
    /// The orchestrator stopped while the task was running.
    Interrupted,
    /// Back to pending after an interruption, a crash or a lost server; `session` is the Worker session the
    /// next run continues, if it still exists.
    Restarted {
        /// The Worker session to continue.
        session: Option<String>,
    },
}

impl TaskEvent {
    /// Its name, as the journal and errors show it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Released => "released",
            Self::Started { .. } => "started",
            Self::WorkerFinished { .. } => "worker_finished",
            Self::WorkerBlocked { .. } => "worker_blocked",
            Self::GateChecked { .. } => "gate_checked",
            Self::Approved { .. } => "approved",
            Self::ChangesRequested { .. } => "changes_requested",
            Self::Merging { .. } => "merging",
            Self::Integrated { .. } => "integrated",
            Self::IntegrationFailed { .. } => "integration_failed",
            Self::Failed { .. } => "failed",
            Self::Skipped { .. } => "skipped",
            Self::Interrupted => "interrupted",
            Self::Restarted { .. } => "restarted",
        }
    }
}

/// An event that cannot happen in the state it was applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {task}: `{event}` cannot happen while it is {status}")]
pub struct Illegal {
    /// The task.
    pub task: String,
    /// The event's name.
    pub event: &'static str,
    /// The state's name.
    pub status: &'static str,
}

/// The state after `event`, or [`Illegal`] when the event cannot happen in `state`.
///
/// # Errors
///
/// [`Illegal`], naming the task, the event and the status it arrived in.
pub fn apply(state: &TaskState, event: &TaskEvent) -> Result<TaskState, Illegal> {
    use TaskStatus as S;
    let illegal = || Illegal {
        task: state.spec.id.clone(),
        event: event.name(),
        status: state.status.name(),
    };
    let mut next = state.clone();
    match (event, &state.status) {
        (TaskEvent::Released, S::Pending) => next.status = S::Queued,
        (
            TaskEvent::Started {
                slot,
                server,
                session,
                continued,
                tree,
            },
            S::Queued,
        ) => {
            if *continued && state.resume_session.as_ref() != Some(session) {
                return Err(illegal());
            }
            // A task keeps its worktree until an integration fails; it never takes another's.
            if state.tree.is_some() && tree != &state.tree {
                return Err(illegal());
            }
            // The branches its attempts worked on: this one's, and an earlier attempt's, kept under another
            // name when this worktree replaced it.
            if let Some(tree) = tree {
                for branch in tree.kept.iter().chain([&tree.branch]) {
                    if !next.branches.contains(branch) {
                        next.branches.push(branch.clone());
                    }
                }
            }
            next.tree = tree.clone();
            next.status = S::Running { slot: *slot };
            next.runs += 1;
            if !*continued {
                next.attempts += 1;
            }
            next.server = Some(server.clone());
            next.worker_session = Some(session.clone());
            next.resume_session = None;
            if !next.sessions.contains(session) {
                next.sessions.push(session.clone());
            }
        }
        (
            TaskEvent::WorkerFinished {
                report,
                files,
                head,
            },
            S::Running { slot },
        ) => {
            next.status = S::Reviewing { slot: *slot };
            next.report = Some(report.clone());
            if head.is_some() {
                next.head = head.clone();
            } else if state.spec.changes == Changes::Required && next.head.is_none() {
                next.empty_reports += 1;
            }
            for file in files {
                if !next.files.contains(file) {
                    next.files.push(file.clone());
                }
            }
        }
        (TaskEvent::WorkerBlocked { reason }, S::Running { .. }) => {
            next.status = S::Blocked {
                reason: reason.clone(),
            };
        }
        (TaskEvent::GateChecked { passed, summary }, S::Reviewing { .. }) => {
            next.gate = Some((*passed, summary.clone()));
        }
        (TaskEvent::Approved { reviewer }, S::Reviewing { slot }) => {
            if next.gate.as_ref().is_some_and(|(passed, _)| !passed) {
                // The gate is deterministic: a failed check is never approved.
                return Err(illegal());
            }
            next.status = S::Integrating { slot: *slot };
            next.findings = None;
            push_session(&mut next, reviewer.as_ref());
        }
        (TaskEvent::Merging { result, onto }, S::Integrating { .. }) => {
            next.merging = Some((result.clone(), onto.clone()));
        }
        (TaskEvent::Integrated { commit }, S::Integrating { .. }) => {
            if let Some((result, _)) = &state.merging
                && commit.as_ref() != Some(result)
            {
                // The branch moves to the merge that was journaled, and to no other commit.
                return Err(illegal());
            }
            next.status = S::Done;
            next.integrated = commit.clone();
            next.merging = None;
        }
        (TaskEvent::IntegrationFailed { findings }, S::Integrating { .. }) => {
            // The next attempt is counted when it starts (a fresh session, so not a continued one).
            next.status = S::Pending;
            next.findings = Some(findings.clone());
            next.merging = None;
            // The next attempt starts over: a fresh worktree from the new integration head, and a session
            // there.
            next.tree = None;
            next.head = None;
            next.worker_session = None;
            next.resume_session = None;
        }
        (TaskEvent::ChangesRequested { findings, reviewer }, S::Reviewing { slot }) => {
            next.status = S::Running { slot: *slot };
            next.attempts += 1;
            next.findings = Some(findings.clone());
            push_session(&mut next, reviewer.as_ref());
        }
        (
            TaskEvent::Failed { cause },
            S::Queued | S::Running { .. } | S::Reviewing { .. } | S::Integrating { .. },
        ) => {
            next.status = S::Failed {
                cause: cause.clone(),
            };
        }
        (TaskEvent::Skipped { by }, S::Pending) => next.status = S::Skipped { by: by.clone() },
        // An integrating task keeps its place at a stop: its work is approved, and `resume` finishes the
        // merge.
        (TaskEvent::Interrupted, S::Running { .. } | S::Reviewing { .. }) => {
            next.status = S::Interrupted;
        }
        (
            TaskEvent::Restarted { session },
            S::Queued | S::Running { .. } | S::Reviewing { .. } | S::Interrupted,
        ) => {
            if session.is_some() && session != &state.worker_session {
                // Only the task's own Worker session can be continued: never another task's.
                return Err(illegal());
            }
            next.status = S::Pending;
            next.resume_session = session.clone();
            if session.is_none() {
                next.worker_session = None;
            }
        }
        _ => return Err(illegal()),
    }
    Ok(next)
}

fn push_session(task: &mut TaskState, session: Option<&String>) {
    if let Some(session) = session
        && !task.sessions.contains(session)
    {
        task.sessions.push(session.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(id: &str, depends: &[&str]) -> TaskSpec {
        TaskSpec {
            id: id.to_string(),
            title: format!("title of {id}"),
            agent: "Worker".to_string(),
            depends: depends.iter().map(|id| id.to_string()).collect(),
            priority: Priority::Medium,
            brief: String::new(),
            files: Vec::new(),
            changes: Changes::Required,
        }
    }

    fn started(session: &str, continued: bool) -> TaskEvent {
        TaskEvent::Started {
            slot: 0,
            server: "http://a".into(),
            session: session.into(),
            continued,
            tree: None,
        }
    }

    fn run(events: &[TaskEvent]) -> Result<TaskState, Illegal> {
        events
            .iter()
            .try_fold(TaskState::new(spec("T1", &[])), |state, event| {
                apply(&state, event)
            })
    }

    #[test]
    fn a_task_runs_is_reviewed_and_is_done() {
        let done = run(&[
            TaskEvent::Released,
            started("s1", false),
            TaskEvent::WorkerFinished {
                report: "did it".into(),
                files: vec!["a.py".into()],
                head: Some("c1".into()),
            },
            TaskEvent::GateChecked {
                passed: false,
                summary: "tests: failed".into(),
            },
            TaskEvent::ChangesRequested {
                findings: "- fix it".into(),
                reviewer: Some("r1".into()),
            },
            TaskEvent::WorkerFinished {
                report: "fixed".into(),
                files: vec!["a.py".into()],
                head: Some("c1".into()),
            },
            TaskEvent::GateChecked {
                passed: true,
                summary: "tests: passed".into(),
            },
            TaskEvent::Approved {
                reviewer: Some("r2".into()),
            },
            TaskEvent::Integrated { commit: None },
        ])
        .unwrap();
        assert_eq!(done.status, TaskStatus::Done);
        assert_eq!((done.attempts, done.runs), (2, 1));
        assert_eq!(done.sessions, ["s1", "r1", "r2"]);
        assert_eq!(done.files, ["a.py"]);
        assert_eq!(done.findings, None);
    }

    #[test]
    fn a_failed_gate_is_never_approved() {
        let error = run(&[
            TaskEvent::Released,
            started("s1", false),
            TaskEvent::WorkerFinished {
                report: String::new(),
                files: Vec::new(),
                head: Some("c1".into()),
            },
            TaskEvent::GateChecked {
                passed: false,
                summary: "x".into(),
            },
            TaskEvent::Approved { reviewer: None },
        ])
        .unwrap_err();
        assert_eq!(error.event, "approved");
    }

    #[test]
    fn a_done_task_never_runs_again() {
        let done = run(&[
            TaskEvent::Released,
            started("s1", false),
            TaskEvent::WorkerFinished {
                report: String::new(),
                files: Vec::new(),
                head: Some("c1".into()),
            },
            TaskEvent::Approved { reviewer: None },
            TaskEvent::Integrated { commit: None },
        ])
        .unwrap();
        for event in [
            TaskEvent::Released,
            started("s2", false),
            TaskEvent::Interrupted,
            TaskEvent::Restarted { session: None },
            TaskEvent::Failed {
                cause: FailCause::Model {
                    message: "x".into(),
                },
            },
        ] {
            let error = apply(&done, &event).unwrap_err();
            assert_eq!(error.status, "done", "{event:?}");
        }
    }

    #[test]
    fn an_interrupted_task_continues_its_own_session_and_no_other() {
        let interrupted = run(&[
            TaskEvent::Released,
            started("s1", false),
            TaskEvent::Interrupted,
        ])
        .unwrap();
        assert_eq!(interrupted.status, TaskStatus::Interrupted);
        assert!(
            apply(
                &interrupted,
                &TaskEvent::Restarted {
                    session: Some("other".into())
                }
            )
            .is_err()
        );
        let restarted = apply(
            &interrupted,
            &TaskEvent::Restarted {
                session: Some("s1".into()),
            },
        )
        .unwrap();
        let queued = apply(&restarted, &TaskEvent::Released).unwrap();
        assert!(apply(&queued, &started("s9", true)).is_err());
        let running = apply(&queued, &started("s1", true)).unwrap();
        // Continuing the session is not a new attempt, but it is a new run.
        assert_eq!((running.attempts, running.runs), (1, 2));
        assert_eq!(running.resume_session, None);
    }
}
