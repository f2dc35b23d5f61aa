//! The mission as a list of events: every [`Event`] the engine records is one durable commit of the
//! journal, and the [`MissionView`] is what applying them in order gives. `status` renders the view,
//! `--json` streams the events, `resume` replays them; what runs next ([`MissionView::readiness`]) and what a
//! resume must redo ([`MissionView::recovery`]) are functions of the view.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::plan::{self, Progress, Readiness};
use crate::domain::prompts::Role;
use crate::domain::task::{self, Illegal, TaskEvent, TaskSpec, TaskState, TaskStatus};
use crate::domain::usage::{Budget, Budgets, Ledger, Usage};
use crate::domain::workspace::{Delivery, Origin};

/// The version of the journal's format this build writes and reads.
pub const JOURNAL_FORMAT: u32 = 2;

/// The stages a mission goes through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The Commander frames the mission.
    Command,
    /// The Planner writes the plan.
    Plan,
    /// Workers run the tasks, each reviewed as it finishes.
    Work,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 3] = [Stage::Command, Stage::Plan, Stage::Work];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Command => "command",
            Stage::Plan => "plan",
            Stage::Work => "work",
        }
    }
}

/// Which signal stopped a mission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`orchestrator stop` sends it).
    Terminate,
}

impl Signal {
    /// `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// Why a mission stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum StopCause {
    /// A signal: Ctrl-C, SIGTERM or `orchestrator stop`.
    Signal {
        /// Which one.
        signal: Signal,
    },
    /// Every OpenCode server stopped answering.
    ServersLost {
        /// The last error.
        error: String,
    },
    /// The Planner never gave a plan that parses and validates.
    NoPlan {
        /// Plans asked for.
        attempts: u32,
        /// The last plan's errors, one per line.
        errors: String,
    },
    /// The Commander's or the Planner's turn failed (the model failing past its retries, a stall).
    Agent {
        /// The role.
        role: Role,
        /// What happened.
        message: String,
    },
    /// A budget was reached: the mission is paused; `resume` with a higher budget goes on.
    Budget {
        /// Which.
        budget: Budget,
        /// Its limit (nanos of currency, tokens, or milliseconds).
        limit: u64,
        /// What was spent when it stopped.
        spent: u64,
    },
    /// The project's repository failed (the integration branch could not be made or delivered).
    Workspace {
        /// What failed.
        error: String,
    },
    /// The mission's journal could not be written: the disk is full or the directory is gone. This cause
    /// is never in the journal itself (it could not be written); the report carries it.
    Journal {
        /// The journal's directory.
        path: String,
        /// The error.
        error: String,
    },
}

impl fmt::Display for StopCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopCause::Signal { signal } => write!(f, "interrupted by {}", signal.name()),
            StopCause::ServersLost { error } => {
                write!(f, "every OpenCode server stopped answering (last: {error})")
            }
            StopCause::NoPlan { attempts, errors } => write!(
                f,
                "the Planner's plan was still invalid after {attempts} attempt(s):\n{errors}"
            ),
            StopCause::Agent { role, message } => {
                write!(f, "the {} agent's turn {message}", role.name())
            }
            StopCause::Workspace { error } => write!(f, "the git workspace failed: {error}"),
            StopCause::Budget {
                budget,
                limit,
                spent,
            } => write!(
                f,
                "paused at its {budget} budget: {} spent of {} (raise it with `{}` on `resume`)",
                budget.show(*spent),
                budget.show(*limit),
                budget.option()
            ),
            StopCause::Journal { path, error } => {
                write!(f, "cannot write the mission's state in {path}: {error}")
            }
        }
    }
}

/// How a mission ended, or that it has not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MissionStatus {
    /// Still going (or its orchestrator died: `resume` tells).
    Running,
    /// Every task is done.
    Completed,
    /// It ran to its end with tasks failed, blocked or skipped.
    Incomplete {
        /// How many of each.
        failed: usize,
        /// Tasks whose Worker said it could not do them.
        blocked: usize,
        /// Tasks never run because a dependency did not finish.
        skipped: usize,
    },
    /// It stopped before its end.
    Stopped {
        /// Why.
        cause: StopCause,
    },
}

impl fmt::Display for MissionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissionStatus::Running => f.write_str("running"),
            MissionStatus::Completed => f.write_str("completed"),
            MissionStatus::Incomplete {
                failed,
                blocked,
                skipped,
            } => write!(
                f,
                "incomplete: {failed} task(s) failed, {blocked} blocked, {skipped} skipped"
            ),
            MissionStatus::Stopped { cause } => write!(f, "stopped: {cause}"),
        }
    }
}

/// Which new tasks memory pressure holds back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// None: every ready task may start.
    #[default]
    Nothing,
    /// Those not of high priority.
    LowPriority,
    /// Every new task.
    All,
}

/// Where the plan came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanSource {
    /// OpenCode's structured output, checked against the plan's JSON schema.
    Structured,
    /// The TODO.md markdown of the Planner's answer.
    Markdown,
}

/// Something that happened to the mission as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MissionEvent {
    /// The first event of every journal.
    Created {
        /// The journal's format ([`JOURNAL_FORMAT`]).
        format: u32,
        /// The mission's id.
        id: String,
        /// What the user asked for.
        text: String,
        /// The project directory.
        project: String,
    },
    /// A stage began.
    StageStarted {
        /// Which.
        stage: Stage,
    },
    /// A stage ended (or was cut short by a stop), after `ms` milliseconds.
    StageEnded {
        /// Which.
        stage: Stage,
        /// How long it ran.
        ms: u64,
    },
    /// The Commander or the Planner got a session.
    SessionOpened {
        /// The role.
        role: Role,
        /// The session.
        session: String,
    },
    /// The Commander's brief.
    BriefWritten {
        /// The brief.
        brief: String,
    },
    /// A plan was rejected; the Planner is asked again.
    PlanRejected {
        /// The attempt.
        attempt: u32,
        /// Why, one error per line.
        errors: String,
    },
    /// The plan: its tasks become pending.
    PlanAccepted {
        /// The attempt that gave it.
        attempt: u32,
        /// Where it came from.
        source: PlanSource,
        /// Its tasks, in plan order.
        tasks: Vec<TaskSpec>,
    },
    /// The mission works in isolation: its integration branch is made from the user's HEAD.
    Isolated {
        /// Where it starts from.
        origin: Origin,
    },
    /// The end of the mission delivered its result (or said how to).
    Delivered {
        /// What happened to the user's branch.
        delivery: Delivery,
    },
    /// The budgets the mission runs under (set at its start, raised by a resume).
    BudgetsSet {
        /// The budgets.
        budgets: Budgets,
    },
    /// A turn used tokens and cost.
    Used {
        /// The agent.
        role: Role,
        /// Its session (sub-agents' sessions counted in).
        session: String,
        /// The server's URL.
        server: String,
        /// The task, for a Worker's or the Reviewer's turn.
        task: Option<String>,
        /// What the turn used.
        usage: Usage,
        /// The answers counted in it (each answer is counted once, even when a resumed run follows the
        /// turn again).
        #[serde(default)]
        answers: Vec<String>,
    },
    /// A budget passed 80%: a warning shown once.
    BudgetWarning {
        /// Which.
        budget: Budget,
        /// Its limit.
        limit: u64,
        /// What was spent.
        spent: u64,
    },
    /// Memory pressure changed what may start: new tasks are held (all, or those not of high priority),
    /// or released again.
    Pressure {
        /// What is held now.
        hold: Hold,
        /// The fraction of RAM available, in percent.
        available_percent: u32,
    },
    /// A resume took the mission up again.
    Resumed,
    /// The mission stopped before its end.
    Stopped {
        /// Why.
        cause: StopCause,
    },
    /// The work ran to its end.
    Finished,
}

impl MissionEvent {
    fn name(&self) -> &'static str {
        match self {
            MissionEvent::Created { .. } => "created",
            MissionEvent::StageStarted { .. } => "stage_started",
            MissionEvent::StageEnded { .. } => "stage_ended",
            MissionEvent::SessionOpened { .. } => "session_opened",
            MissionEvent::BriefWritten { .. } => "brief_written",
            MissionEvent::PlanRejected { .. } => "plan_rejected",
            MissionEvent::PlanAccepted { .. } => "plan_accepted",
            MissionEvent::Isolated { .. } => "isolated",
            MissionEvent::Delivered { .. } => "delivered",
            MissionEvent::BudgetsSet { .. } => "budgets_set",
            MissionEvent::Used { .. } => "used",
            MissionEvent::BudgetWarning { .. } => "budget_warning",
            MissionEvent::Pressure { .. } => "pressure",
            MissionEvent::Resumed => "resumed",
            MissionEvent::Stopped { .. } => "stopped",
            MissionEvent::Finished => "finished",
        }
    }
}

/// One event of a mission's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "about", rename_all = "snake_case")]
pub enum Event {
    /// About the mission.
    Mission {
        /// What happened.
        #[serde(flatten)]
        event: MissionEvent,
    },
    /// About one task.
    Task {
        /// The task.
        task: String,
        /// What happened.
        #[serde(flatten)]
        event: TaskEvent,
    },
}

impl Event {
    /// A task's event.
    pub fn task(id: impl Into<String>, event: TaskEvent) -> Self {
        Event::Task {
            task: id.into(),
            event,
        }
    }

    /// A mission's event.
    pub fn mission(event: MissionEvent) -> Self {
        Event::Mission { event }
    }
}

/// An event as the journal keeps it: numbered from 1, with the time it was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its place in the journal, from 1.
    pub seq: u64,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// Why an event could not be applied to a mission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    /// The task's event cannot happen in its state.
    #[error(transparent)]
    Task(#[from] Illegal),
    /// No such task.
    #[error("there is no task {task}")]
    UnknownTask {
        /// The id.
        task: String,
    },
    /// Another task holds the slot.
    #[error("{task} cannot start on slot {slot}: {holder} holds it")]
    SlotTaken {
        /// The task.
        task: String,
        /// The slot.
        slot: usize,
        /// The task on it.
        holder: String,
    },
    /// A task was released before its dependencies were done, or skipped for one that was not gone.
    #[error("task {task}: `{event}` does not agree with its dependencies")]
    Dependencies {
        /// The task.
        task: String,
        /// The event.
        event: &'static str,
    },
    /// A task's worktree is another task's.
    #[error("{task} cannot work in {path}: it is {holder}'s worktree")]
    TreeTaken {
        /// The task.
        task: String,
        /// The worktree.
        path: String,
        /// The task whose it is.
        holder: String,
    },
    /// The mission's event cannot happen now.
    #[error("`{event}` cannot happen while the mission is {status}")]
    Mission {
        /// The event.
        event: &'static str,
        /// The mission's status.
        status: String,
    },
    /// The journal does not start with `created`, or has a second one.
    #[error("a journal starts with one `created` event")]
    NotCreated,
    /// The journal was written by a newer orchestrator.
    #[error(
        "the journal's format is {found}; this orchestrator reads format {JOURNAL_FORMAT} (written by a newer version?)"
    )]
    Format {
        /// The format found.
        found: u32,
    },
}

/// Why a mission text is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissionTextError {
    /// Nothing but white space.
    #[error("the mission text is empty: say what the agents should do")]
    Empty,
    /// Longer than [`MAX_MISSION_BYTES`](crate::domain::settings::MAX_MISSION_BYTES).
    #[error(
        "the mission text is {size} bytes; the limit is {limit} bytes (put long specifications in a file of \
         the project and refer to it)"
    )]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// The mission text, trimmed, if it can be a mission.
///
/// # Errors
///
/// [`MissionTextError`] for an empty or too large text.
pub fn check_text(text: &str) -> Result<&str, MissionTextError> {
    let limit = crate::domain::settings::MAX_MISSION_BYTES;
    let text = text.trim();
    if text.is_empty() {
        Err(MissionTextError::Empty)
    } else if text.len() > limit {
        Err(MissionTextError::TooLarge {
            size: text.len(),
            limit,
        })
    } else {
        Ok(text)
    }
}

/// The mission's journal could not be written (the disk is full, the directory is gone or read-only).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the mission's state in {}: {source}", path.display())]
pub struct JournalError {
    /// What could not be written.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: Box<dyn StdError + Send + Sync>,
}

/// The whole mission at one point of its journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissionView {
    /// Its id.
    pub id: String,
    /// What the user asked for.
    pub text: String,
    /// The project directory.
    pub project: String,
    /// When it was created (ms since the Unix epoch).
    pub started_ms: u64,
    /// The stage it is in, or was in when it stopped.
    pub stage: Option<Stage>,
    /// How it is going.
    pub status: MissionStatus,
    /// The Commander's brief.
    pub brief: Option<String>,
    /// Sessions of the Commander and the Planner.
    pub sessions: Vec<String>,
    /// Plans asked of the Planner so far.
    pub plan_attempts: u32,
    /// Where the accepted plan came from.
    pub plan_source: Option<PlanSource>,
    /// Milliseconds spent in each stage.
    pub stage_ms: BTreeMap<Stage, u64>,
    /// The tasks, by id.
    pub tasks: BTreeMap<String, TaskState>,
    /// The tasks' ids in plan order.
    pub order: Vec<String>,
    /// Where the mission started from, when it works in isolation.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// What its end did to the user's branch.
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// The budgets it runs under.
    #[serde(default)]
    pub budgets: Budgets,
    /// What it used, in all and by role and server.
    #[serde(default)]
    pub usage: Ledger,
    /// The budgets it was warned about.
    #[serde(default)]
    pub warned: Vec<Budget>,
    /// What memory pressure holds back now.
    #[serde(default)]
    pub hold: Hold,
    /// The answers whose usage is counted.
    #[serde(default)]
    pub counted: std::collections::BTreeSet<String>,
    /// Events applied.
    pub events: u64,
}

impl MissionView {
    /// The view of a journal's events, applied in order from the first (`created`).
    ///
    /// # Errors
    ///
    /// [`Rejected`] for the first event that cannot be applied, with its place.
    pub fn replay<'a>(
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<Self, (u64, Rejected)> {
        let mut entries = entries.into_iter();
        let first = entries.next().ok_or((0, Rejected::NotCreated))?;
        let mut view = Self::created(first).map_err(|rejected| (first.seq, rejected))?;
        for entry in entries {
            view = view
                .apply(entry)
                .map_err(|rejected| (entry.seq, rejected))?;
        }
        Ok(view)
    }

    /// The view right after the `created` event.
    ///
    /// # Errors
    ///
    /// [`Rejected::NotCreated`] for another event, [`Rejected::Format`] for a newer format.
    pub fn created(entry: &Entry) -> Result<Self, Rejected> {
        let Event::Mission {
            event:
                MissionEvent::Created {
                    format,
                    id,
                    text,
                    project,
                },
        } = &entry.event
        else {
            return Err(Rejected::NotCreated);
        };
        if *format != JOURNAL_FORMAT {
            return Err(Rejected::Format { found: *format });
        }
        Ok(Self {
            id: id.clone(),
            text: text.clone(),
            project: project.clone(),
            started_ms: entry.at_ms,
            stage: None,
            status: MissionStatus::Running,
            brief: None,
            sessions: Vec::new(),
            plan_attempts: 0,
            plan_source: None,
            stage_ms: BTreeMap::new(),
            tasks: BTreeMap::new(),
            order: Vec::new(),
            origin: None,
            delivery: None,
            budgets: Budgets::default(),
            usage: Ledger::default(),
            warned: Vec::new(),
            hold: Hold::Nothing,
            counted: std::collections::BTreeSet::new(),
            events: 1,
        })
    }

    /// The view after one more event.
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the event cannot happen now; the view is left as it was.
    pub fn apply(&self, entry: &Entry) -> Result<Self, Rejected> {
        let mut next = self.clone();
        next.events += 1;
        match &entry.event {
            Event::Task { task: id, event } => {
                let state = self
                    .tasks
                    .get(id)
                    .ok_or_else(|| Rejected::UnknownTask { task: id.clone() })?;
                if self.status != MissionStatus::Running {
                    return Err(self.not_now(event.name()));
                }
                if let TaskEvent::Started { slot, .. } = event
                    && let Some(holder) = self
                        .tasks
                        .values()
                        .find(|other| other.id() != id && other.status.slot() == Some(*slot))
                {
                    return Err(Rejected::SlotTaken {
                        task: id.clone(),
                        slot: *slot,
                        holder: holder.id().to_string(),
                    });
                }
                if let TaskEvent::Started {
                    tree: Some(tree), ..
                } = event
                    && let Some(holder) = self.tasks.values().find(|other| {
                        other.id() != id
                            && other
                                .tree
                                .as_ref()
                                .is_some_and(|theirs| theirs.path == tree.path)
                    })
                {
                    return Err(Rejected::TreeTaken {
                        task: id.clone(),
                        path: tree.path.display().to_string(),
                        holder: holder.id().to_string(),
                    });
                }
                self.check_dependencies(id, &state.spec, event)?;
                let state = task::apply(state, event)?;
                next.tasks.insert(id.clone(), state);
            }
            Event::Mission { event } => {
                let running = self.status == MissionStatus::Running;
                match event {
                    MissionEvent::Created { .. } => return Err(Rejected::NotCreated),
                    MissionEvent::Resumed => {
                        if self.status == MissionStatus::Completed {
                            return Err(self.not_now(event.name()));
                        }
                        next.status = MissionStatus::Running;
                    }
                    _ if !running => return Err(self.not_now(event.name())),
                    MissionEvent::StageStarted { stage } => next.stage = Some(*stage),
                    MissionEvent::StageEnded { stage, ms } => {
                        *next.stage_ms.entry(*stage).or_default() += ms;
                    }
                    MissionEvent::SessionOpened { session, .. } => {
                        next.sessions.push(session.clone());
                    }
                    MissionEvent::BriefWritten { brief } => next.brief = Some(brief.clone()),
                    MissionEvent::Isolated { origin } => {
                        if self.origin.is_some() {
                            return Err(self.not_now(event.name()));
                        }
                        next.origin = Some(origin.clone());
                    }
                    MissionEvent::Delivered { delivery } => next.delivery = Some(delivery.clone()),
                    MissionEvent::BudgetsSet { budgets } => next.budgets = *budgets,
                    MissionEvent::Pressure { hold, .. } => next.hold = *hold,
                    MissionEvent::BudgetWarning { budget, .. } => {
                        if !next.warned.contains(budget) {
                            next.warned.push(*budget);
                        }
                    }
                    MissionEvent::Used {
                        role,
                        server,
                        task,
                        usage,
                        answers,
                        ..
                    } => {
                        next.usage.add(role.name(), server, *usage);
                        next.counted.extend(answers.iter().cloned());
                        if let Some(id) = task {
                            let task = next
                                .tasks
                                .get_mut(id)
                                .ok_or_else(|| Rejected::UnknownTask { task: id.clone() })?;
                            task.usage += *usage;
                            if *role == Role::Worker {
                                task.turns += 1;
                            }
                        }
                    }
                    MissionEvent::PlanRejected { attempt, .. } => next.plan_attempts = *attempt,
                    MissionEvent::PlanAccepted {
                        attempt,
                        source,
                        tasks,
                    } => {
                        if !self.tasks.is_empty() {
                            return Err(self.not_now(event.name()));
                        }
                        next.plan_attempts = *attempt;
                        next.plan_source = Some(*source);
                        next.order = tasks.iter().map(|task| task.id.clone()).collect();
                        next.tasks = tasks
                            .iter()
                            .map(|task| (task.id.clone(), TaskState::new(task.clone())))
                            .collect();
                    }
                    MissionEvent::Stopped { cause } => {
                        next.status = MissionStatus::Stopped {
                            cause: cause.clone(),
                        };
                    }
                    MissionEvent::Finished => {
                        if !self.all_finished() {
                            return Err(self.not_now(event.name()));
                        }
                        next.status = self.outcome();
                    }
                }
            }
        }
        Ok(next)
    }

    /// A task is released only when its dependencies are done, and skipped only for one that will never be.
    fn check_dependencies(
        &self,
        id: &str,
        spec: &TaskSpec,
        event: &TaskEvent,
    ) -> Result<(), Rejected> {
        let status_of = |dependency: &str| self.tasks.get(dependency).map(|task| &task.status);
        let holds = match event {
            TaskEvent::Released => spec
                .depends
                .iter()
                .all(|dependency| status_of(dependency) == Some(&TaskStatus::Done)),
            TaskEvent::Skipped { by } => {
                spec.depends.contains(by)
                    && status_of(by).is_none_or(|status| {
                        matches!(
                            status,
                            TaskStatus::Failed { .. }
                                | TaskStatus::Blocked { .. }
                                | TaskStatus::Skipped { .. }
                        )
                    })
            }
            _ => true,
        };
        if holds {
            Ok(())
        } else {
            Err(Rejected::Dependencies {
                task: id.to_string(),
                event: event.name(),
            })
        }
    }

    fn not_now(&self, event: &'static str) -> Rejected {
        Rejected::Mission {
            event,
            status: self.status.to_string(),
        }
    }

    /// The tasks in plan order.
    pub fn tasks_in_order(&self) -> impl Iterator<Item = &TaskState> {
        self.order.iter().filter_map(|id| self.tasks.get(id))
    }

    /// Tasks whose status has this name (see [`TaskStatus::name`]).
    pub fn count(&self, status: &str) -> usize {
        self.tasks
            .values()
            .filter(|task| task.status.name() == status)
            .count()
    }

    /// Whether every task is finished (and there is a plan).
    pub fn all_finished(&self) -> bool {
        !self.tasks.is_empty() && self.tasks.values().all(|task| task.status.is_finished())
    }

    /// What the mission's status is once every task is finished.
    pub fn outcome(&self) -> MissionStatus {
        let failed = self.count("failed");
        let blocked = self.count("blocked");
        let skipped = self.count("skipped");
        if failed + blocked + skipped == 0 {
            MissionStatus::Completed
        } else {
            MissionStatus::Incomplete {
                failed,
                blocked,
                skipped,
            }
        }
    }

    /// Which pending tasks may run now and which never will (computed by the plan's DAG,
    /// [`plan::readiness`]).
    pub fn readiness(&self) -> Readiness {
        let nodes: Vec<plan::Node<'_>> = self
            .tasks_in_order()
            .map(|task| plan::Node {
                id: task.id(),
                depends: &task.spec.depends,
                priority: task.spec.priority,
                progress: match &task.status {
                    TaskStatus::Pending => Progress::Waiting,
                    TaskStatus::Done => Progress::Done,
                    TaskStatus::Failed { .. }
                    | TaskStatus::Blocked { .. }
                    | TaskStatus::Skipped { .. } => Progress::Gone,
                    TaskStatus::Queued
                    | TaskStatus::Running { .. }
                    | TaskStatus::Reviewing { .. }
                    | TaskStatus::Integrating { .. }
                    | TaskStatus::Interrupted => Progress::Underway,
                },
            })
            .collect();
        let mut readiness = plan::readiness(&nodes);
        // Tasks whose declared files overlap never run at once: a ready task waits while one that shares a
        // file is underway, or was released just before it.
        let mut busy: Vec<&[String]> = self
            .tasks
            .values()
            .filter(|task| {
                matches!(
                    task.status,
                    TaskStatus::Queued
                        | TaskStatus::Running { .. }
                        | TaskStatus::Reviewing { .. }
                        | TaskStatus::Integrating { .. }
                )
            })
            .map(|task| task.spec.files.as_slice())
            .collect();
        readiness.ready.retain(|id| {
            let files = self.tasks[id].spec.files.as_slice();
            if busy.iter().any(|other| plan::files_overlap(files, other)) {
                return false;
            }
            busy.push(files);
            true
        });
        readiness
    }

    /// What a resume must do to the tasks: every task that was queued, running, being reviewed or
    /// interrupted when the orchestrator stopped goes back to pending, with the Worker session to continue
    /// when `session_exists` says it still exists. Done and other finished tasks are left alone: no finished
    /// work is redone, and no task is lost.
    pub fn recovery(&self, session_exists: impl Fn(&TaskState) -> bool) -> Vec<Event> {
        // An integrating task is not sent back: its work is approved, and the engine finishes its merge.
        self.tasks_in_order()
            .filter(|task| {
                matches!(
                    task.status,
                    TaskStatus::Queued
                        | TaskStatus::Running { .. }
                        | TaskStatus::Reviewing { .. }
                        | TaskStatus::Interrupted
                )
            })
            .map(|task| {
                let session = task.worker_session.clone().filter(|_| session_exists(task));
                Event::task(task.id(), TaskEvent::Restarted { session })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
