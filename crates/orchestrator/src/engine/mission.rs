//! The mission driver: runs the stages in order (Commander, Planner, Workers with their reviews) and records
//! every step as an event of the mission's journal.
//!
//! A stop (a signal, `orchestrator stop`, every server lost, a journal that cannot be written) ends every
//! turn in flight, aborts the sessions this run started (their sub-agents' first), records which tasks were
//! interrupted, and returns a report whose status says why. `resume` replays the journal and takes the
//! interrupted tasks up again, continuing their Worker sessions.
//!
//! Traces: a `mission` span (its id; at the end its status, tokens and cost) holds a `stage` span per
//! stage; the work stage's holds a `task` span per run of a task (its id and the mission's, its slot; at the
//! end its status and what it used), which holds an `attempt` span per Worker attempt (a fresh session, or
//! a review asking for changes), which holds its `turn` spans (role, session, server; at the end the
//! finish reason, tokens, cost and time). Each turn and the mission end with an `info` line saying so.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use circuit::AdaptiveLimit;
use tokio::sync::watch;
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::domain::agent::{AgentError, AgentErrorKind, Turn, TurnEnd};
use crate::domain::mission::{
    self, Entry, Event, Hold, JOURNAL_FORMAT, MissionEvent, MissionStatus, MissionTextError,
    MissionView, PlanSource, Rejected, Stage, StopCause,
};
use crate::domain::plan;
use crate::domain::plan::Changes;
use crate::domain::plan::Priority;
use crate::domain::plan_json::{self, PlanDocument};
use crate::domain::prompts::{self, Dependency, Role, WorkerStatus, first_line};
use crate::domain::recall::{self, Notes};
use crate::domain::settings::Settings;
use crate::domain::task::{FailCause, TaskEvent, TaskSpec, TaskState, TaskStatus};
use crate::domain::usage::{Budgets, Usage, WARN_AT};
use crate::domain::workspace::{Delivery, Merge, Origin, Tree, WorkspaceError};
use crate::engine::monitor::Monitor;
use crate::engine::ports::{Agents, Gates, Journal, Memory, Records, Workspace};
use crate::engine::record::{Applied, Halt, Recorder};
use crate::engine::review::{self, ReviewInput};
use crate::engine::schedule::{Load, Queue};
use crate::engine::sessions::Sessions;
use crate::engine::turns::{Ask, Turns};

/// How long a stop waits for the aborts of the sessions in flight.
const ABORT_WAIT: Duration = Duration::from_secs(3);

/// How often the tasks held back by memory pressure are looked at again.
const PRESSURE_TICK: Duration = Duration::from_millis(500);

/// How long a stop waits for the servers to report the aborted sessions idle.
const CONFIRM_WAIT: Duration = Duration::from_secs(3);

/// Turns in a row with the same tool error (or the same failing check on an unchanged change) that make a
/// Worker stagnant.
const STAGNATION_REPEATS: u32 = 3;

/// Times an answer aborted from outside (not by a stop) is asked again before the task fails.
const ABORTS_TOLERATED: u32 = 2;

/// What a mission talks to.
#[derive(Debug, Clone)]
pub struct Ports {
    /// The agents' servers, the first preferred for the Commander and the Planner.
    pub servers: Vec<Arc<dyn Agents>>,
    /// The journal.
    pub journal: Arc<dyn Journal>,
    /// The project's checks.
    pub gates: Arc<dyn Gates>,
    /// The project's repository, for isolated work (a worktree per task, a merge queue); `None` runs every
    /// Worker in the project itself (`--no-isolation`: one slot).
    pub workspace: Option<Arc<dyn Workspace>>,
    /// The machine's memory, for holding new tasks under pressure; `None` never holds.
    pub memory: Option<Arc<dyn Memory>>,
    /// Earlier missions' records, read into the Commander's and the Planner's prompts, and where this
    /// mission's record is kept at its end; `None` neither reads nor keeps any.
    pub records: Option<Arc<dyn Records>>,
}

/// Why a mission could not be created or resumed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MissionError {
    /// The mission text cannot be a mission.
    #[error(transparent)]
    Text(#[from] MissionTextError),
    /// Its journal cannot be written.
    #[error(transparent)]
    Halt(#[from] Halt),
    /// The journal does not replay.
    #[error("the journal does not replay at event {seq}: {rejected}")]
    Replay {
        /// The first event that does not apply.
        seq: u64,
        /// Why.
        #[source]
        rejected: Rejected,
    },
    /// The mission is already completed.
    #[error("mission {id} is already completed")]
    Completed {
        /// The mission.
        id: String,
    },
    /// A server could not be asked whether an interrupted task's session still exists.
    #[error("cannot look for task {task}'s session")]
    Recovery {
        /// The task.
        task: String,
        /// The server's error.
        #[source]
        source: AgentError,
    },
}

/// The end of a mission, for the summary.
#[derive(Debug, Clone)]
pub struct MissionReport {
    /// The mission's final state.
    pub view: MissionView,
    /// How long this run took.
    pub wall: Duration,
    /// Where the slots found their tasks: own deque, injector, stolen.
    pub sources: (u64, u64, u64),
    /// Model turns that failed (and were retried or gave up).
    pub model_failures: u32,
    /// The model breaker's state at the end.
    pub model_breaker: String,
    /// Each server's URL and whether it is still up.
    pub servers: Vec<(String, bool)>,
    /// Where the plan was written for people to read, if there is one.
    pub plan_file: Option<PathBuf>,
    /// The sessions the stop aborted.
    pub aborted: Vec<String>,
    /// Aborted sessions the servers still reported busy at the end of the stop's wait.
    pub unconfirmed: Vec<String>,
}

impl MissionReport {
    /// Whether every task is done.
    pub fn completed(&self) -> bool {
        self.view.status == MissionStatus::Completed
    }

    /// Why the mission stopped early, if it did.
    pub fn stop_cause(&self) -> Option<&StopCause> {
        match &self.view.status {
            MissionStatus::Stopped { cause } => Some(cause),
            _ => None,
        }
    }

    /// Every session the mission used.
    pub fn session_count(&self) -> usize {
        self.view.sessions.len()
            + self
                .view
                .tasks
                .values()
                .map(|task| task.sessions.len())
                .sum::<usize>()
    }

    /// Every project file the tasks changed, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut files: Vec<String> = self
            .view
            .tasks
            .values()
            .flat_map(|task| task.files.iter().cloned())
            .collect();
        files.sort();
        files.dedup();
        files
    }
}

/// A mission, ready to run.
#[derive(Debug)]
pub struct Mission {
    core: Arc<Core>,
}

/// Stops a running mission from elsewhere (a signal handler): its turns end, its sessions are aborted,
/// and [`Mission::run`] returns soon with the mission stopped for `cause`. The first cause given wins.
#[derive(Debug, Clone)]
pub struct StopHandle {
    core: Arc<Core>,
}

impl StopHandle {
    /// Stops the mission.
    pub fn stop(&self, cause: StopCause) {
        self.core.stop(cause);
    }
}

#[derive(Debug)]
struct Core {
    settings: Settings,
    recorder: Recorder,
    servers: Vec<Server>,
    gates: Arc<dyn Gates>,
    workspace: Option<Arc<dyn Workspace>>,
    memory: Option<Arc<dyn Memory>>,
    records: Option<Arc<dyn Records>>,
    /// The merge queue: approved tasks integrate one at a time, in the order they ask (the lock is fair).
    merge_queue: tokio::sync::Mutex<()>,
    /// What the budgets are checked against.
    budget: Arc<Spending>,
    turns: Turns,
    /// Set once, by the first stop.
    stop: watch::Sender<Option<StopCause>>,
    /// The work stage's queue, while it runs (a stop closes it).
    queue: Mutex<Option<Arc<Queue>>>,
    /// Serializes the decisions of which tasks are ready (each released exactly once).
    release: Mutex<()>,
}

/// What the mission spent, for the budgets: its usage so far (from the journal) and its running time.
#[derive(Debug)]
struct Spending {
    spent: Mutex<Usage>,
    budgets: Mutex<Budgets>,
    /// The time earlier runs spent, in milliseconds.
    before_ms: u64,
    started: Instant,
}

impl Spending {
    fn elapsed(&self) -> Duration {
        Duration::from_millis(self.before_ms) + self.started.elapsed()
    }

    /// Whether a turn that used `partial` so far takes the mission past a budget.
    fn exceeded_with(&self, partial: &Usage) -> bool {
        let spent = *self.spent.lock().unwrap_or_else(PoisonError::into_inner) + *partial;
        let budgets = *self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        budgets
            .most_used(&spent, self.elapsed())
            .is_some_and(|(_, _, _, fraction)| fraction >= 1.0)
    }
}

/// One agents' server of the mission.
#[derive(Debug)]
struct Server {
    agents: Arc<dyn Agents>,
    monitor: Monitor,
    sessions: Sessions,
    /// Set once a call to it failed past its retries: no new work goes to it.
    down: AtomicBool,
    /// Tasks running on it now.
    in_flight: AtomicUsize,
}

impl Server {
    fn url(&self) -> &str {
        self.agents.url()
    }

    fn is_up(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }
}

/// Counts a task on a server while it runs.
struct InFlight<'a>(&'a Server);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a step of the mission did not go on.
#[derive(Debug)]
enum Stop {
    /// The mission stops for this cause.
    Cause(StopCause),
    /// The journal failed (or the engine misbehaved): nothing more can be recorded.
    Halt(Halt),
}

impl From<Halt> for Stop {
    fn from(halt: Halt) -> Self {
        Stop::Halt(halt)
    }
}

/// Why a task did not go on.
#[derive(Debug)]
enum TaskError {
    /// Its server failed.
    Agent(AgentError),
    /// The workspace failed.
    Workspace(WorkspaceError),
    /// The mission is stopping (a budget reached).
    Stopped,
    /// The journal failed: the mission is stopping.
    Halted,
}

impl From<WorkspaceError> for TaskError {
    fn from(error: WorkspaceError) -> Self {
        TaskError::Workspace(error)
    }
}

impl From<AgentError> for TaskError {
    fn from(error: AgentError) -> Self {
        TaskError::Agent(error)
    }
}

impl From<Halt> for TaskError {
    fn from(_: Halt) -> Self {
        // The recorder has stopped the mission already.
        TaskError::Halted
    }
}

/// How a Worker's turns on one attempt ended.
enum Work {
    /// The Worker's report, and the context its session held after its last answer, in tokens.
    Done {
        report: String,
        context: u64,
    },
    Blocked(String),
    Failed {
        cause: FailCause,
        load: Load,
    },
}

/// How a Worker's first turn of a run starts.
enum Start {
    /// A new prompt.
    Prompt(String),
    /// Follow the turn an earlier run left in the session.
    Adopt,
}

impl Mission {
    /// Starts a new mission `id` for `text`: its journal (empty, from `ports`) gets the mission's first
    /// event.
    ///
    /// # Errors
    ///
    /// [`MissionError::Text`] for an empty or too large text, [`MissionError::Halt`] when the journal cannot
    /// be written.
    ///
    /// # Panics
    ///
    /// If `ports.servers` is empty.
    pub fn create(
        ports: Ports,
        settings: Settings,
        id: &str,
        text: &str,
    ) -> Result<Self, MissionError> {
        let text = mission::check_text(text)?;
        let created = Entry {
            seq: 1,
            at_ms: crate::engine::record::now_ms(),
            event: Event::mission(MissionEvent::Created {
                format: JOURNAL_FORMAT,
                id: id.to_string(),
                text: text.to_string(),
                project: settings.project.display().to_string(),
            }),
        };
        let view = MissionView::created(&created).expect("a created event starts a view");
        ports
            .journal
            .append(&created)
            .map_err(|error| Halt::Journal(Arc::new(error)))?;
        let budgets = settings.budgets;
        let notes = Notes::of(std::slice::from_ref(&created));
        let mission = Self::assemble(ports, settings, view, notes);
        if budgets != Budgets::default() {
            mission
                .core
                .record(Event::mission(MissionEvent::BudgetsSet { budgets }))?;
        }
        Ok(mission)
    }

    /// Continues a mission from its journal's entries: stages already done are not run again, finished
    /// tasks stay finished, and each task that was running is taken up again, in its Worker session when
    /// that still exists on the server it ran on.
    ///
    /// # Errors
    ///
    /// [`MissionError::Replay`] for a journal that does not replay, [`MissionError::Completed`] for a
    /// completed mission, [`MissionError::Recovery`] when a server cannot say whether a session exists, and
    /// [`MissionError::Halt`] when the journal cannot be written.
    ///
    /// # Panics
    ///
    /// If `ports.servers` is empty.
    pub async fn resume(
        ports: Ports,
        settings: Settings,
        entries: &[Entry],
    ) -> Result<Self, MissionError> {
        let view = MissionView::replay(entries)
            .map_err(|(seq, rejected)| MissionError::Replay { seq, rejected })?;
        if view.status == MissionStatus::Completed {
            return Err(MissionError::Completed { id: view.id });
        }
        let mut exists = std::collections::BTreeMap::new();
        for task in view.tasks.values() {
            let (Some(session), Some(url)) = (&task.worker_session, &task.server) else {
                continue;
            };
            if task.status.is_finished() || task.status == TaskStatus::Pending {
                continue;
            }
            let Some(agents) = ports.servers.iter().find(|agents| agents.url() == url) else {
                continue;
            };
            let found =
                agents
                    .session_exists(session)
                    .await
                    .map_err(|source| MissionError::Recovery {
                        task: task.id().to_string(),
                        source,
                    })?;
            exists.insert(task.id().to_string(), found);
        }
        let budgets = view.budgets.over(settings.budgets);
        let raised = budgets != view.budgets;
        let mission = Self::assemble(ports, settings, view, Notes::of(entries));
        let core = &mission.core;
        core.record(Event::mission(MissionEvent::Resumed))?;
        if raised {
            core.record(Event::mission(MissionEvent::BudgetsSet { budgets }))?;
        }
        // The turns an earlier run left open (it died, or a stop cancelled them before they could be
        // counted): their finished answers are spent.
        core.count_open_turns().await?;
        let recovery = core
            .recorder
            .read(|view| view.recovery(|task| exists.get(task.id()) == Some(&true)));
        for event in recovery {
            tracing::info!(?event, "recovering an interrupted task");
            core.record(event)?;
        }
        Ok(mission)
    }

    fn assemble(ports: Ports, settings: Settings, view: MissionView, notes: Notes) -> Self {
        assert!(
            !ports.servers.is_empty(),
            "a mission needs at least one server"
        );
        let servers = ports
            .servers
            .into_iter()
            .map(|agents| Server {
                monitor: Monitor::start(Arc::clone(&agents), settings.monitor.clone()),
                sessions: Sessions::new(Arc::clone(&agents), settings.pool, &view.id),
                agents,
                down: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
            })
            .collect::<Vec<Server>>();
        let budget = Arc::new(Spending {
            spent: Mutex::new(view.usage.total),
            budgets: Mutex::new(view.budgets.over(settings.budgets)),
            before_ms: view.stage_ms.values().sum(),
            started: Instant::now(),
        });
        for server in &servers {
            let spending = Arc::clone(&budget);
            server
                .monitor
                .watch_budget(Arc::new(move |partial| spending.exceeded_with(partial)));
        }
        Self {
            core: Arc::new(Core {
                budget,
                turns: Turns::new(&settings),
                recorder: Recorder::new(ports.journal, view, notes),
                settings,
                servers,
                gates: ports.gates,
                workspace: ports.workspace,
                memory: ports.memory,
                records: ports.records,
                merge_queue: tokio::sync::Mutex::new(()),
                stop: watch::Sender::new(None),
                queue: Mutex::new(None),
                release: Mutex::new(()),
            }),
        }
    }

    /// A handle that stops this mission (for signal handlers).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            core: Arc::clone(&self.core),
        }
    }

    /// The mission now.
    pub fn view(&self) -> MissionView {
        self.core.recorder.view()
    }

    /// Every event from now on, with the mission's view after it, in order.
    pub fn subscribe(&self) -> std::sync::mpsc::Receiver<Arc<Applied>> {
        self.core.recorder.subscribe()
    }

    /// Runs the mission to its end (or its stop) and reports it, in a `mission` span that ends with its
    /// status and usage, and a line that says so.
    pub async fn run(self) -> MissionReport {
        let id = self.core.recorder.read(|view| view.id.clone());
        let span = tracing::info_span!(
            "mission",
            mission.id = %id,
            status = Empty,
            tasks = Empty,
            tasks.done = Empty,
            tokens = Empty,
            cost = Empty,
            took_ms = Empty,
        );
        let report = self.run_stages().instrument(span.clone()).await;
        let view = &report.view;
        let done = count(
            view.tasks
                .values()
                .filter(|task| task.status == TaskStatus::Done)
                .count(),
        );
        let tasks = count(view.tasks.len());
        let took_ms = millis(report.wall);
        let status = view.status.to_string();
        span.record("status", status.as_str());
        span.record("tasks", tasks);
        span.record("tasks.done", done);
        span.record("tokens", int(view.usage.total.tokens()));
        span.record("cost", view.usage.total.cost());
        span.record("took_ms", took_ms);
        span.in_scope(|| {
            tracing::info!(
                mission.id = %id,
                status,
                tasks,
                tasks.done = done,
                tokens = int(view.usage.total.tokens()),
                cost = view.usage.total.cost(),
                took_ms,
                "mission ended"
            );
        });
        report
    }

    async fn run_stages(self) -> MissionReport {
        let started = Instant::now();
        let core = &self.core;
        let mut sources = (0, 0, 0);
        let outcome: Result<(), Stop> = async {
            // The context threshold this run works with, for `status` (once, and again when it changed).
            let threshold = core.settings.context_threshold;
            if core.recorder.read(|view| view.context_threshold) != Some(threshold) {
                core.record(Event::mission(MissionEvent::ContextThreshold {
                    tokens: threshold,
                }))?;
            }
            core.isolate().await?;
            core.finish_integrations().await?;
            if core.recorder.read(|view| view.brief.is_none()) {
                core.stage(Stage::Command, core.command()).await?;
            }
            if core.recorder.read(|view| view.tasks.is_empty()) {
                core.stage(Stage::Plan, core.plan()).await?;
            }
            sources = core.stage(Stage::Work, Core::work(core)).await?;
            Ok(())
        }
        .await;
        let (mut aborted, mut unconfirmed) = (Vec::new(), Vec::new());
        match outcome {
            Ok(()) => {
                let finished = async {
                    core.deliver().await?;
                    core.record(Event::mission(MissionEvent::Finished))?;
                    Ok::<(), Stop>(())
                };
                if let Err(stop) = finished.await {
                    let cause = match stop {
                        Stop::Cause(cause) => cause,
                        Stop::Halt(halt) => StopCause::from_halt(&halt),
                    };
                    core.stop(cause);
                    (aborted, unconfirmed) = core.wind_down().await;
                }
            }
            Err(stop) => {
                let cause = match stop {
                    Stop::Cause(cause) => cause,
                    Stop::Halt(halt) => StopCause::from_halt(&halt),
                };
                core.stop(cause);
                (aborted, unconfirmed) = core.wind_down().await;
            }
        }
        let mut view = core.recorder.view();
        if let Some(halt) = core.recorder.halted() {
            // The journal could not take the stop: the report carries it.
            view.status = MissionStatus::Stopped {
                cause: StopCause::from_halt(&halt),
            };
        }
        core.keep_record(&view);
        MissionReport {
            plan_file: (!view.tasks.is_empty()).then(|| core.plan_path()),
            view,
            wall: started.elapsed(),
            sources,
            model_failures: core.turns.failures(),
            model_breaker: core.turns.breaker_state(),
            servers: core
                .servers
                .iter()
                .map(|server| (server.url().to_string(), server.is_up()))
                .collect(),
            aborted,
            unconfirmed,
        }
    }
}

impl StopCause {
    fn from_halt(halt: &Halt) -> Self {
        let (path, error) = halt.describe();
        StopCause::Journal { path, error }
    }
}

impl Core {
    fn record(&self, event: Event) -> Result<(), Halt> {
        let result = self.recorder.record(event);
        if let Err(halt) = &result {
            self.stop(StopCause::from_halt(halt));
        }
        result
    }

    fn record_task(&self, id: &str, event: TaskEvent) -> Result<(), Halt> {
        self.record(Event::task(id, event))
    }

    /// Sets the stop cause (the first one wins) and closes the work queue.
    fn stop(&self, cause: StopCause) {
        self.stop.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            tracing::warn!(%cause, "the mission stops");
            *current = Some(cause);
            true
        });
        // No turn starts from now on, whatever task is still between two awaits.
        for server in &self.servers {
            server.monitor.close();
        }
        if let Some(queue) = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            queue.close();
        }
    }

    fn stop_cause(&self) -> Option<StopCause> {
        self.stop.borrow().clone()
    }

    /// Runs `work` unless the mission stops first.
    async fn until_stopped<T>(&self, work: impl Future<Output = T>) -> Result<T, Stop> {
        let mut stop = self.stop.subscribe();
        tokio::select! {
            biased;
            cause = stop.wait_for(Option::is_some) => Err(Stop::Cause(
                cause.ok().and_then(|cause| cause.clone()).expect("the stop sender lives in the core"),
            )),
            result = work => Ok(result),
        }
    }

    async fn stage<T>(
        &self,
        stage: Stage,
        work: impl Future<Output = Result<T, Stop>>,
    ) -> Result<T, Stop> {
        let span = tracing::info_span!("stage", stage = stage.name());
        self.stage_inner(stage, work).instrument(span).await
    }

    async fn stage_inner<T>(
        &self,
        stage: Stage,
        work: impl Future<Output = Result<T, Stop>>,
    ) -> Result<T, Stop> {
        self.record(Event::mission(MissionEvent::StageStarted { stage }))?;
        tracing::info!(mission = %self.recorder.read(|view| view.id.clone()), stage = stage.name(), "stage started");
        let started = Instant::now();
        // The command and plan stages end at a stop (their turns are cancelled); the work stage ends by
        // itself at a stop (each slot's task is cancelled, then the slots return), and must be let do so:
        // dropping it would leave its slots running behind the stop's back.
        let result = if stage == Stage::Work {
            work.await
        } else {
            match self.until_stopped(work).await {
                Ok(result) => result,
                Err(stop) => Err(stop),
            }
        };
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if self.recorder.halted().is_none() {
            self.record(Event::mission(MissionEvent::StageEnded { stage, ms }))?;
        }
        tracing::info!(
            stage = stage.name(),
            took_ms = ms,
            ok = result.is_ok(),
            "stage ended"
        );
        result
    }

    /// After a stop: aborts the sessions this run has turns in flight in (their sub-agents first), records
    /// the tasks that were running as interrupted, and records the stop. Returns the sessions aborted.
    async fn wind_down(&self) -> (Vec<String>, Vec<String>) {
        let cause = self.stop_cause().expect("wind_down follows a stop");
        let mut aborted = Vec::new();
        let aborts = async {
            for server in &self.servers {
                for session in server.monitor.in_flight() {
                    abort_tree(server.agents.as_ref(), &session, &mut aborted).await;
                }
            }
        };
        if tokio::time::timeout(ABORT_WAIT, aborts).await.is_err() {
            tracing::warn!(
                "the sessions were not all aborted within {ABORT_WAIT:?}: the server may still run some"
            );
        }
        let unconfirmed = self.confirm_idle(&aborted).await;
        if self.recorder.halted().is_none() {
            // The turns the stop cancelled: what their answers used is spent, and counted before the
            // mission is recorded as stopped.
            if self.count_open_turns().await.is_err() {
                return (aborted, unconfirmed);
            }
            // An integrating task keeps its place: `resume` finishes its merge.
            let running: Vec<String> = self.recorder.read(|view| {
                view.tasks
                    .values()
                    .filter(|task| {
                        matches!(
                            task.status,
                            TaskStatus::Running { .. } | TaskStatus::Reviewing { .. }
                        )
                    })
                    .map(|task| task.id().to_string())
                    .collect()
            });
            for id in running {
                if self.record_task(&id, TaskEvent::Interrupted).is_err() {
                    return (aborted, unconfirmed);
                }
            }
            let _ = self.record(Event::mission(MissionEvent::Stopped { cause }));
        }
        (aborted, unconfirmed)
    }

    /// Waits, a bounded time, until the servers report none of `sessions` busy, aborting again any that
    /// still is (a prompt that reached the server after its abort); returns those it could not confirm.
    async fn confirm_idle(&self, sessions: &[String]) -> Vec<String> {
        let deadline = Instant::now() + CONFIRM_WAIT;
        loop {
            let mut busy = Vec::new();
            for server in &self.servers {
                match server.agents.activities().await {
                    Ok(activities) => {
                        for session in sessions {
                            if activities.contains_key(session) {
                                busy.push((server, session.clone()));
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(url = server.url(), %error, "cannot confirm the aborted sessions");
                        return sessions.to_vec();
                    }
                }
            }
            if busy.is_empty() {
                return Vec::new();
            }
            if Instant::now() >= deadline {
                let unconfirmed: Vec<String> =
                    busy.into_iter().map(|(_, session)| session).collect();
                tracing::warn!(?unconfirmed, "sessions still busy after the stop's aborts");
                return unconfirmed;
            }
            for (server, session) in &busy {
                let _ = server.agents.abort(session).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first server that is up, for the Commander and the Planner.
    fn primary(&self) -> Result<&Server, Stop> {
        self.servers
            .iter()
            .find(|server| server.is_up())
            .ok_or_else(|| {
                Stop::Cause(StopCause::ServersLost {
                    error: "no OpenCode server is up".to_string(),
                })
            })
    }

    /// The least busy server that is up.
    fn pick(&self) -> Option<&Server> {
        self.servers
            .iter()
            .filter(|server| server.is_up())
            .min_by_key(|server| server.in_flight.load(Ordering::Relaxed))
    }

    /// The stop a failed call of the Commander or the Planner means.
    fn agent_stop(&self, server: &Server, role: Role, error: AgentError) -> Stop {
        if error.is_unreachable() {
            server.down.store(true, Ordering::Relaxed);
            Stop::Cause(StopCause::ServersLost {
                error: error.to_string(),
            })
        } else {
            Stop::Cause(StopCause::Agent {
                role,
                message: format!("failed: {error}"),
            })
        }
    }

    /// The stop a failed turn of the Commander or the Planner means.
    fn task_stop(&self, server: &Server, role: Role, error: TaskError) -> Stop {
        match error {
            TaskError::Agent(error) => self.agent_stop(server, role, error),
            TaskError::Workspace(error) => Stop::Cause(StopCause::Workspace {
                error: crate::engine::record::causes(&error),
            }),
            TaskError::Halted | TaskError::Stopped => Stop::Cause(
                self.stop_cause()
                    .expect("a halt or a budget stops the mission first"),
            ),
        }
    }

    /// The digest of earlier missions' records for a prompt about `text` (the mission, and the brief once
    /// there is one), weighted by the files it names; `None` without records or with a cap of 0.
    fn memory_digest(&self, text: &str) -> Option<String> {
        let records = self.records.as_ref()?;
        if self.settings.memory_digest_tokens == 0 {
            return None;
        }
        let id = self.recorder.read(|view| view.id.clone());
        let earlier = records.earlier(&id);
        let digest = recall::digest(
            &earlier,
            text,
            &recall::paths_in(text),
            self.settings.memory_digest_tokens,
        );
        tracing::info!(
            records = earlier.len(),
            tokens = digest.as_deref().map_or(0, recall::estimate_tokens),
            "the memory of earlier missions"
        );
        digest
    }

    /// Keeps the mission's record, built from its journal, once it ended (completed, incomplete or
    /// stopped); a record that cannot be written is a warning, never the mission's failure.
    fn keep_record(&self, view: &MissionView) {
        let Some(records) = &self.records else {
            return;
        };
        if view.status == MissionStatus::Running {
            return;
        }
        let mut record = self.recorder.mission_record();
        record.outcome = view.status.to_string();
        match records.keep(&record) {
            Ok(path) => tracing::info!(path = %path.display(), "mission record kept"),
            Err(error) => tracing::warn!(%error, "the mission record was not kept"),
        }
    }

    fn plan_path(&self) -> PathBuf {
        self.recorder.journal().location().join("todo.md")
    }

    /// A mission with a workspace starts its integration branch from the user's HEAD, once.
    async fn isolate(&self) -> Result<(), Stop> {
        let Some(workspace) = &self.workspace else {
            return Ok(());
        };
        if self.origin().is_some() {
            return Ok(());
        }
        let id = self.recorder.read(|view| view.id.clone());
        let origin = workspace.begin(&id).await.map_err(|error| {
            Stop::Cause(StopCause::Workspace {
                error: crate::engine::record::causes(&error),
            })
        })?;
        if origin.dirty() {
            tracing::warn!(
                "the project has uncommitted changes: the mission starts from HEAD without them"
            );
        }
        self.record(Event::mission(MissionEvent::Isolated { origin }))?;
        Ok(())
    }

    /// After a crash or a stop, the tasks caught in the merge queue: a merge that was journaled moves the
    /// integration branch exactly once (it already did, or it does now); one not journaled yet is merged
    /// again.
    async fn finish_integrations(&self) -> Result<(), Stop> {
        let waiting: Vec<TaskState> = self.recorder.read(|view| {
            view.tasks_in_order()
                .filter(|task| matches!(task.status, TaskStatus::Integrating { .. }))
                .cloned()
                .collect()
        });
        for task in waiting {
            let id = task.id().to_string();
            tracing::info!(task = %id, merging = ?task.merging, "finishing an interrupted integration");
            let outcome = match (&task.merging, &self.workspace, self.origin()) {
                (Some((result, onto)), Some(workspace), Some(origin)) => {
                    let head = workspace.head(&origin).await;
                    match head {
                        Ok(head) if head == *result => self
                            .record_task(
                                &id,
                                TaskEvent::Integrated {
                                    commit: Some(result.clone()),
                                },
                            )
                            .map(|()| Load::Ok)
                            .map_err(TaskError::from),
                        Ok(head) if head == *onto => {
                            match workspace.advance(&origin, onto, result).await {
                                Ok(true) => self
                                    .record_task(
                                        &id,
                                        TaskEvent::Integrated {
                                            commit: Some(result.clone()),
                                        },
                                    )
                                    .map(|()| Load::Ok)
                                    .map_err(TaskError::from),
                                Ok(false) => self.integrate(&id).await,
                                Err(error) => Err(error.into()),
                            }
                        }
                        Ok(_) => {
                            self.integration_failed(
                                &id,
                                &task,
                                "the integration branch moved while the orchestrator was stopped"
                                    .to_string(),
                            )
                            .await
                        }
                        Err(error) => Err(error.into()),
                    }
                }
                _ => self.integrate(&id).await,
            };
            match outcome {
                Ok(_) => {}
                Err(TaskError::Halted | TaskError::Stopped) => {
                    return Err(Stop::Cause(
                        self.stop_cause()
                            .expect("a halt or a budget stops the mission"),
                    ));
                }
                Err(TaskError::Agent(error)) => {
                    return Err(Stop::Cause(StopCause::ServersLost {
                        error: error.to_string(),
                    }));
                }
                Err(TaskError::Workspace(error)) => {
                    return Err(Stop::Cause(StopCause::Workspace {
                        error: crate::engine::record::causes(&error),
                    }));
                }
            }
        }
        Ok(())
    }

    /// At the end of the work: the result goes to the user's branch when the mission completed and their
    /// tree and HEAD did not change (else the report says how to merge it); the worktrees left are
    /// removed (their branches stay).
    async fn deliver(&self) -> Result<(), Stop> {
        let (Some(workspace), Some(origin)) = (&self.workspace, self.origin()) else {
            return Ok(());
        };
        let completed = self
            .recorder
            .read(|view| view.outcome() == MissionStatus::Completed);
        let delivery = if completed {
            workspace.deliver(&origin).await.map_err(|error| {
                Stop::Cause(StopCause::Workspace {
                    error: crate::engine::record::causes(&error),
                })
            })?
        } else {
            Delivery::Kept {
                reason: "the mission did not complete".to_string(),
                command: format!("git merge {}", origin.integration),
            }
        };
        let trees: Vec<Tree> = self.recorder.read(|view| {
            view.tasks
                .values()
                .filter_map(|task| task.tree.clone())
                .collect()
        });
        for tree in trees {
            self.close_path(&tree.root).await;
        }
        self.record(Event::mission(MissionEvent::Delivered { delivery }))?;
        Ok(())
    }

    async fn command(&self) -> Result<(), Stop> {
        let server = self.primary()?;
        let (text, project) = self
            .recorder
            .read(|view| (view.text.clone(), view.project.clone()));
        let session = server
            .sessions
            .lease(Role::Commander, "brief", None)
            .await
            .map_err(|error| self.agent_stop(server, Role::Commander, error))?;
        self.record(Event::mission(MissionEvent::SessionOpened {
            role: Role::Commander,
            session: session.clone(),
        }))?;
        let ask = Ask {
            role: Role::Commander,
            session: &session,
            text: prompts::with_memory(
                prompts::commander_message(&text, &project),
                self.memory_digest(&text).as_deref(),
            ),
            schema: None,
        };
        match self.turn(server, ask, None).await {
            Ok(TurnEnd::Answered { text, .. }) => {
                self.record(Event::mission(MissionEvent::BriefWritten { brief: text }))?;
                Ok(())
            }
            Ok(end) => Err(Stop::Cause(StopCause::Agent {
                role: Role::Commander,
                message: end.to_string(),
            })),
            Err(error) => Err(self.task_stop(server, Role::Commander, error)),
        }
    }

    async fn plan(&self) -> Result<(), Stop> {
        let server = self.primary()?;
        let (text, project, brief) = self.recorder.read(|view| {
            (
                view.text.clone(),
                view.project.clone(),
                view.brief.clone().unwrap_or_default(),
            )
        });
        let attempts = self.settings.plan_attempts.max(1);
        let first = self.recorder.read(|view| view.plan_attempts) + 1;
        let mut structured = self.settings.structured_plan;
        let mut errors = String::new();
        let digest = self.memory_digest(&format!("{text}\n{brief}"));
        for attempt in first..first + attempts {
            // Each attempt in a fresh session: a retry carries the last errors, not every earlier answer.
            let session = server
                .sessions
                .lease(Role::Planner, &format!("plan {attempt}"), None)
                .await
                .map_err(|error| self.agent_stop(server, Role::Planner, error))?;
            self.record(Event::mission(MissionEvent::SessionOpened {
                role: Role::Planner,
                session: session.clone(),
            }))?;
            let mut message = if errors.is_empty() {
                prompts::planner_message(&text, &brief, &project)
            } else {
                prompts::plan_retry_message(&text, &brief, &project, &errors)
            };
            message = prompts::with_memory(message, digest.as_deref());
            if structured {
                message.push_str(prompts::STRUCTURED_PLAN_NOTE);
            }
            let ask = Ask {
                role: Role::Planner,
                session: &session,
                text: message,
                schema: structured.then(plan_json::schema),
            };
            let (answer, output) = match self.turn(server, ask, None).await {
                Ok(TurnEnd::Answered {
                    text, structured, ..
                }) => (text, structured),
                Ok(end) => {
                    return Err(Stop::Cause(StopCause::Agent {
                        role: Role::Planner,
                        message: end.to_string(),
                    }));
                }
                Err(TaskError::Agent(error))
                    if structured && error.kind == AgentErrorKind::Refused =>
                {
                    // A server without structured output refuses the prompt's format: plan in TODO.md from
                    // now on.
                    tracing::warn!(%error, "the server refused a structured plan; asking for TODO.md");
                    structured = false;
                    errors = format!("the server refused structured output ({error})");
                    self.record(Event::mission(MissionEvent::PlanRejected {
                        attempt,
                        errors: errors.clone(),
                    }))?;
                    continue;
                }
                Err(error) => return Err(self.task_stop(server, Role::Planner, error)),
            };
            let (markdown, source) = match output {
                Some(value) => (
                    PlanDocument::from_value(value)
                        .map(|document| document.to_markdown())
                        .map_err(|error| {
                            format!(
                                "the structured plan does not follow the plan's schema: {error}"
                            )
                        }),
                    PlanSource::Structured,
                ),
                None => {
                    if structured {
                        tracing::warn!(
                            attempt,
                            "the Planner gave no structured output; reading its text as TODO.md, and \
                             asking for TODO.md from now on"
                        );
                        structured = false;
                    }
                    (
                        prompts::plan_in_answer(&answer)
                            .ok_or_else(|| prompts::NO_PLAN_IN_ANSWER.to_string()),
                        PlanSource::Markdown,
                    )
                }
            };
            let parsed = markdown.and_then(|markdown| {
                plan::parse(&markdown).map_err(|found| match source {
                    // The lines are those of the plan as TODO.md: show it.
                    PlanSource::Structured => format!(
                        "{found}\n(the line numbers are those of your plan written as TODO.md:)\n{}",
                        numbered(&markdown)
                    ),
                    PlanSource::Markdown => found.to_string(),
                })
            });
            match parsed {
                Ok(plan) => {
                    self.write_plan(&plan.render())?;
                    tracing::info!(attempt, ?source, tasks = plan.tasks.len(), "plan accepted");
                    self.record(Event::mission(MissionEvent::PlanAccepted {
                        attempt,
                        source,
                        tasks: plan.tasks.iter().map(TaskSpec::from_plan).collect(),
                    }))?;
                    return Ok(());
                }
                Err(found) => {
                    tracing::warn!(attempt, errors = %found, "the plan was rejected");
                    self.record(Event::mission(MissionEvent::PlanRejected {
                        attempt,
                        errors: found.clone(),
                    }))?;
                    errors = found;
                }
            }
        }
        Err(Stop::Cause(StopCause::NoPlan { attempts, errors }))
    }

    fn write_plan(&self, markdown: &str) -> Result<(), Halt> {
        match self.recorder.journal().write_plan(markdown) {
            Ok(path) => {
                tracing::info!(path = %path.display(), "plan written");
                Ok(())
            }
            Err(error) => {
                let halt = Halt::Journal(Arc::new(error));
                self.stop(StopCause::from_halt(&halt));
                Err(halt)
            }
        }
    }

    async fn work(core: &Arc<Self>) -> Result<(u64, u64, u64), Stop> {
        let slots = core.settings.slots.max(1);
        let queue = Queue::new(slots);
        *core.queue.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&queue));
        if core.stop_cause().is_some() {
            queue.close();
        }
        let limit = Arc::new(
            AdaptiveLimit::aimd()
                .initial_limit(u32::try_from(slots).unwrap_or(u32::MAX))
                .max_limit(u32::try_from(slots).unwrap_or(u32::MAX))
                .min_limit(1)
                .build()
                .expect("1 <= slots <= slots"),
        );
        core.release_ready(&queue);
        // Tasks held back by memory pressure start when it clears, even while nothing finishes.
        let ticker = core.memory.is_some().then(|| {
            let core = Arc::clone(core);
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                while !queue.is_closed() {
                    tokio::time::sleep(PRESSURE_TICK).await;
                    core.release_ready(&queue);
                }
            })
        });
        // The slots run on tasks of their own: each task's span is made a child of the work stage's here.
        let stage = tracing::Span::current();
        let mission = core.recorder.read(|view| view.id.clone());
        let runner = {
            let core = Arc::clone(core);
            let queue = Arc::clone(&queue);
            move |slot: usize, id: String, _source| {
                let core = Arc::clone(&core);
                let queue = Arc::clone(&queue);
                let span = tracing::info_span!(
                    parent: &stage,
                    "task",
                    task.id = %id,
                    mission.id = %mission,
                    slot = count(slot),
                    status = Empty,
                    tokens = Empty,
                    cost = Empty,
                );
                async move {
                    let load = core.run_task(slot, &id).instrument(span.clone()).await;
                    if let Some((status, usage)) = core.recorder.read(|view| {
                        view.tasks
                            .get(&id)
                            .map(|task| (task.status.to_string(), task.usage))
                    }) {
                        span.record("status", status.as_str());
                        span.record("tokens", int(usage.tokens()));
                        span.record("cost", usage.cost());
                    }
                    core.release_ready(&queue);
                    load
                }
            }
        };
        queue.run(limit, runner).await;
        if let Some(ticker) = ticker {
            ticker.abort();
        }
        *core.queue.lock().unwrap_or_else(PoisonError::into_inner) = None;
        if let Some(cause) = core.stop_cause() {
            return Err(Stop::Cause(cause));
        }
        let stats = queue.stats();
        Ok((
            stats.local.load(Ordering::Relaxed),
            stats.injected.load(Ordering::Relaxed),
            stats.stolen.load(Ordering::Relaxed),
        ))
    }

    /// Skips the pending tasks that can never run, releases those whose dependencies are done, and closes
    /// the queue once nothing is left to run.
    fn release_ready(&self, queue: &Queue) {
        let _decide = self.release.lock().unwrap_or_else(PoisonError::into_inner);
        if self.stop_cause().is_some() {
            queue.close();
            return;
        }
        let readiness = self.recorder.read(|view| view.readiness());
        for (id, by) in readiness.skipped {
            if self.record_task(&id, TaskEvent::Skipped { by }).is_err() {
                return;
            }
        }
        // Memory pressure holds new tasks back (those not of high priority first); running ones go on.
        let hold = self.hold();
        let mut ready = readiness.ready;
        let waiting = ready.len();
        ready.retain(|id| match hold {
            Hold::Nothing => true,
            Hold::LowPriority => self
                .recorder
                .read(|view| view.tasks[id].spec.priority == Priority::High),
            Hold::All => false,
        });
        let held = waiting - ready.len();
        for id in &ready {
            if self.record_task(id, TaskEvent::Released).is_err() {
                return;
            }
        }
        queue.push(ready);
        let (finished, underway) = self.recorder.read(|view| {
            let underway = view
                .tasks
                .values()
                .any(|task| !task.status.is_finished() && task.status != TaskStatus::Pending);
            (view.all_finished(), underway)
        });
        if finished || (!underway && held == 0) {
            // Everything is finished, or nothing can move any more (nothing runs, nothing is ready).
            queue.close();
        }
    }

    /// What memory pressure holds back now (recorded when it changes).
    fn hold(&self) -> Hold {
        let Some(memory) = &self.memory else {
            return Hold::Nothing;
        };
        let Some(available) = memory.available() else {
            return Hold::Nothing;
        };
        let floor = self.settings.memory_floor;
        let hold = if available < floor {
            Hold::All
        } else if available < floor * 1.25 {
            Hold::LowPriority
        } else {
            Hold::Nothing
        };
        if self.recorder.read(|view| view.hold) != hold {
            let available_percent = (available * 100.0).round().clamp(0.0, 100.0) as u32;
            tracing::warn!(
                ?hold,
                available_percent,
                "memory pressure changed what may start"
            );
            let _ = self.record(Event::mission(MissionEvent::Pressure {
                hold,
                available_percent,
            }));
        }
        hold
    }

    async fn run_task(&self, slot: usize, id: &str) -> Load {
        let mut stop = self.stop.subscribe();
        if stop.borrow().is_some() {
            return Load::Ok;
        }
        let outcome = tokio::select! {
            // The stop first: once it is set, the task's future is not polled again.
            biased;
            _ = stop.wait_for(Option::is_some) => return Load::Ok,
            outcome = self.task(slot, id) => outcome,
        };
        match outcome {
            Ok(load) => load,
            Err(TaskError::Halted | TaskError::Stopped) => Load::Ok,
            Err(TaskError::Workspace(error)) => {
                tracing::error!(task = id, error = %crate::engine::record::causes(&error), "the workspace failed");
                let _ = self.record_task(
                    id,
                    TaskEvent::Failed {
                        cause: FailCause::Workspace {
                            message: crate::engine::record::causes(&error),
                        },
                    },
                );
                Load::Ok
            }
            Err(TaskError::Agent(error)) if error.is_unreachable() => self.server_lost(id, error),
            Err(TaskError::Agent(error)) => {
                tracing::error!(task = id, %error, "OpenCode refused a call for the task");
                let _ = self.record_task(
                    id,
                    TaskEvent::Failed {
                        cause: FailCause::Agent {
                            message: error.to_string(),
                        },
                    },
                );
                Load::Overloaded
            }
        }
    }

    /// A task's server stopped answering: the server gets no more work, and the task goes back to the queue
    /// for the others (from the start: its session is on the lost server), or the mission stops when no
    /// server is left.
    fn server_lost(&self, id: &str, error: AgentError) -> Load {
        tracing::error!(task = id, %error, "an OpenCode server stopped answering");
        if let Some(server) = self
            .servers
            .iter()
            .find(|server| server.url() == error.server)
        {
            server.down.store(true, Ordering::Relaxed);
        }
        if self.pick().is_some() {
            let _ = self.record_task(id, TaskEvent::Restarted { session: None });
        } else {
            self.stop(StopCause::ServersLost {
                error: error.to_string(),
            });
        }
        Load::Overloaded
    }

    async fn task(&self, slot: usize, id: &str) -> Result<Load, TaskError> {
        let Some(task) = self.recorder.read(|view| view.tasks.get(id).cloned()) else {
            return Ok(Load::Ok);
        };
        // A task continuing its session stays on its server if that server is up.
        let resumed = task.resume_session.as_ref().and_then(|session| {
            let server = task.server.as_deref().and_then(|url| {
                self.servers
                    .iter()
                    .find(|server| server.url() == url && server.is_up())
            })?;
            Some((server, session.clone()))
        });
        let Some(server) = resumed
            .as_ref()
            .map(|(server, _)| *server)
            .or_else(|| self.pick())
        else {
            self.stop(StopCause::ServersLost {
                error: "no OpenCode server is up".to_string(),
            });
            return Ok(Load::Overloaded);
        };
        server.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(server);
        // Its worktree: the one it kept across a restart, or a fresh one from the integration head.
        let tree = match (&self.workspace, self.origin()) {
            (Some(workspace), Some(origin)) => Some(match &task.tree {
                Some(tree) => tree.clone(),
                None => {
                    let base = workspace.head(&origin).await?;
                    workspace.open_tree(&origin, id, &base).await?
                }
            }),
            _ => None,
        };
        let directory = tree
            .as_ref()
            .map_or_else(|| self.settings.project.clone(), |tree| tree.path.clone());
        let (mut session, continued) = match resumed {
            Some((_, session)) => (session, true),
            None => {
                let title = format!("{id} {}", task.spec.title);
                let session = server
                    .sessions
                    .lease(
                        Role::Worker,
                        &title,
                        tree.as_ref().map(|tree| tree.path.as_path()),
                    )
                    .await?;
                (session, false)
            }
        };
        self.record_task(
            id,
            TaskEvent::Started {
                slot,
                server: server.url().to_string(),
                session: session.clone(),
                continued,
                tree: tree.clone(),
            },
        )?;
        let mut start = if continued {
            Start::Adopt
        } else {
            Start::Prompt(self.worker_message(id, &directory, task.findings.as_deref()))
        };
        // The Worker's commits so far, and the last failing check with the head it failed on: the same
        // check failing again on the same head is a sign of stagnation.
        let mut head = task.head.clone();
        let mut last_failure: Option<(String, Option<String>)> = None;
        let mut stagnant_gate = false;
        loop {
            let attempt = tracing::info_span!(
                "attempt",
                task.id = id,
                attempt = i64::from(self.recorder.read(|view| view.tasks[id].attempts)),
                session = %session,
            );
            let worktree = tree.as_ref().map(|tree| (tree, &mut head));
            let (report, context) = match self
                .worker_turns(server, id, &session, start, worktree)
                .instrument(attempt.clone())
                .await?
            {
                Work::Done { report, context } => (report, context),
                Work::Blocked(reason) => {
                    self.record_task(id, TaskEvent::WorkerBlocked { reason })?;
                    return Ok(Load::Ok);
                }
                Work::Failed { cause, load } => {
                    self.record_task(id, TaskEvent::Failed { cause })?;
                    return Ok(load);
                }
            };
            let mut changes = match (&self.workspace, &tree) {
                (Some(workspace), Some(tree)) => {
                    if let Some(commit) = workspace
                        .commit(tree, &format!("{id}: {}", task.spec.title))
                        .await?
                    {
                        head = Some(commit);
                    }
                    workspace.changes(tree).await?
                }
                _ => self.session_changes(server, &session).await?,
            };
            // The orchestrator's own files (its journal, status and log, when git does not ignore them) are
            // not the Worker's work: neither the Reviewer nor the summary sees them.
            changes.retain(|change| !is_orchestrator_file(&change.path));
            let files = changes.iter().map(|change| change.path.clone()).collect();
            self.record_task(
                id,
                TaskEvent::WorkerFinished {
                    report: report.clone(),
                    files,
                    head: head.clone(),
                },
            )?;
            // "Done" needs a change: a Worker that changed nothing is sent back once, then the task fails.
            let (empty, empty_reports) = self.recorder.read(|view| {
                let task = &view.tasks[id];
                (
                    tree.is_some() && task.spec.changes == Changes::Required && task.head.is_none(),
                    task.empty_reports,
                )
            });
            if empty {
                if empty_reports >= 2 {
                    self.record_task(
                        id,
                        TaskEvent::Failed {
                            cause: FailCause::NoChange,
                        },
                    )?;
                    return Ok(Load::Ok);
                }
                self.record_task(
                    id,
                    TaskEvent::ChangesRequested {
                        findings: prompts::NO_CHANGE_FINDING.to_string(),
                        reviewer: None,
                    },
                )?;
                start = Start::Prompt(self.worker_message(
                    id,
                    &directory,
                    Some(prompts::NO_CHANGE_FINDING),
                ));
                continue;
            }
            let input = ReviewInput {
                id,
                title: &task.spec.title,
                brief: &task.spec.brief,
                report: &report,
                changes: &changes,
            };
            let gate = self.gates.run(&directory).instrument(attempt.clone()).await;
            let reviewer = server
                .sessions
                .lease(
                    Role::Reviewer,
                    &format!("review {id}"),
                    tree.as_ref().map(|tree| tree.path.as_path()),
                )
                .await?;
            let ask = Ask {
                role: Role::Reviewer,
                session: &reviewer,
                text: review::message(&input, &gate),
                schema: None,
            };
            let review = match self
                .turn(server, ask, Some(id))
                .instrument(attempt.clone())
                .await?
            {
                TurnEnd::Answered { text, .. } => review::judge(&text, gate, reviewer),
                end => {
                    self.record_task(
                        id,
                        TaskEvent::Failed {
                            cause: FailCause::Model {
                                message: format!("the Reviewer's turn in session {reviewer} {end}"),
                            },
                        },
                    )?;
                    return Ok(Load::Overloaded);
                }
            };
            self.record_task(
                id,
                TaskEvent::GateChecked {
                    passed: review.gate.passed(),
                    summary: review.gate.summary(),
                },
            )?;
            tracing::info!(task = id, approved = review.approved, gate = %review.gate.summary(), "reviewed");
            if review.approved {
                self.record_task(
                    id,
                    TaskEvent::Approved {
                        reviewer: Some(review.reviewer),
                    },
                )?;
                return self.integrate(id).instrument(attempt).await;
            }
            let attempts = self.recorder.read(|view| view.tasks[id].attempts);
            let mut findings = review.findings.clone();
            if !review.gate.passed() {
                let failure = (review.gate.summary(), head.clone());
                if last_failure.as_ref() == Some(&failure) {
                    let signal = "the same check failed again on an unchanged change".to_string();
                    if stagnant_gate {
                        self.record_task(
                            id,
                            TaskEvent::Failed {
                                cause: FailCause::Stagnated { signal },
                            },
                        )?;
                        return Ok(Load::Ok);
                    }
                    stagnant_gate = true;
                    findings =
                        format!("{}\n\n{findings}", prompts::diagnostic_message(id, &signal));
                }
                last_failure = Some(failure);
            }
            if attempts >= self.settings.review_attempts.max(1) {
                self.record_task(
                    id,
                    TaskEvent::Failed {
                        cause: FailCause::NotApproved {
                            attempts,
                            findings: first_line(&review.findings).to_string(),
                        },
                    },
                )?;
                return Ok(Load::Ok);
            }
            self.record_task(
                id,
                TaskEvent::ChangesRequested {
                    findings: findings.clone(),
                    reviewer: Some(review.reviewer),
                },
            )?;
            let message = self.worker_message(id, &directory, Some(&findings));
            let threshold = self.settings.context_threshold;
            if threshold > 0 && context >= threshold {
                // The session's context is past the threshold: the next round goes to a fresh session, told
                // what the long one knew that matters (the task, the report, the findings, the diff).
                let fresh = server
                    .sessions
                    .lease(
                        Role::Worker,
                        &format!("{id} {} (handoff)", task.spec.title),
                        tree.as_ref().map(|tree| tree.path.as_path()),
                    )
                    .await?;
                tracing::info!(
                    task = id,
                    from = %session,
                    to = %fresh,
                    context,
                    threshold,
                    "the Worker's context passed the threshold: a fresh session takes over"
                );
                self.record_task(
                    id,
                    TaskEvent::HandedOff {
                        session: fresh.clone(),
                        context_tokens: context,
                    },
                )?;
                let diff = review::render_changes(&changes, prompts::HANDOFF_DIFF_LIMIT);
                start = Start::Prompt(prompts::handoff_message(&message, context, &report, &diff));
                session = fresh;
            } else {
                start = Start::Prompt(message);
            }
        }
    }

    /// One agent's turn through the turn path, within the budgets: none starts once a budget is reached,
    /// and what each uses is recorded (and checked) when it ends.
    async fn turn(
        &self,
        server: &Server,
        ask: Ask<'_>,
        task: Option<&str>,
    ) -> Result<TurnEnd, TaskError> {
        Ok(self.turn_full(server, ask, task).await?.end)
    }

    /// [`turn`](Self::turn), with everything the turn reported (its tool errors included).
    async fn turn_full(
        &self,
        server: &Server,
        ask: Ask<'_>,
        task: Option<&str>,
    ) -> Result<Turn, TaskError> {
        self.check_budgets()?;
        let (role, session) = (ask.role, ask.session.to_string());
        // Journaled before the prompt, so that what the turn uses is counted even when a stop cancels it
        // or the orchestrator dies before it ends (`count_open_turns`).
        self.record(Event::mission(MissionEvent::TurnStarted {
            role,
            session: session.clone(),
            server: server.url().to_string(),
            task: task.map(str::to_string),
        }))?;
        let span = turn_span(role, &session, server.url(), task);
        let started = Instant::now();
        let turn = self
            .turns
            .run(&self.settings, &server.monitor, ask)
            .instrument(span.clone())
            .await;
        let turn = turn_ended(&span, turn, started.elapsed())?;
        self.used(server, role, &session, task, &turn)?;
        Ok(turn)
    }

    /// Records a turn and what it used (the answers the journal did not count before), then checks the
    /// budgets.
    fn used(
        &self,
        server: &Server,
        role: Role,
        session: &str,
        task: Option<&str>,
        turn: &Turn,
    ) -> Result<(), TaskError> {
        let answers: Vec<(String, Usage)> = self.recorder.read(|view| {
            turn.answers
                .iter()
                .filter(|(id, _)| !view.counted.contains(id))
                .cloned()
                .collect()
        });
        let usage = answers.iter().map(|(_, usage)| *usage).sum::<Usage>() + turn.sub_agents;
        self.record(Event::mission(MissionEvent::Used {
            role,
            session: session.to_string(),
            server: server.url().to_string(),
            task: task.map(str::to_string),
            usage,
            answers: answers.into_iter().map(|(id, _)| id).collect(),
        }))?;
        let total = self.recorder.read(|view| view.usage.total);
        *self
            .budget
            .spent
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = total;
        self.check_budgets()
    }

    /// Counts what the open turns used: those started and never counted, because a stop cancelled them or
    /// an earlier orchestrator died during them. Each session's finished answers that no `used` event
    /// counted yet are recorded as its turn's usage; an answer still being written (no usage yet) is left
    /// for the turn that follows the session to its end. A session on a server this run does not have, or
    /// that cannot be read, stays open. Bounded by [`ABORT_WAIT`]: a stop does not wait on a dead server.
    ///
    /// The sub-agents of such a turn are not counted here (their usage is not tied to answer ids, so a
    /// resumed turn following the same session could count them twice).
    async fn count_open_turns(&self) -> Result<(), Halt> {
        let open: Vec<(String, mission::OpenTurn)> = self.recorder.read(|view| {
            view.open_turns
                .iter()
                .map(|(session, turn)| (session.clone(), turn.clone()))
                .collect()
        });
        for (session, turn) in open {
            let Some(server) = self
                .servers
                .iter()
                .find(|server| server.url() == turn.server)
            else {
                continue;
            };
            let messages = tokio::time::timeout(ABORT_WAIT, server.agents.messages(&session)).await;
            let messages = match messages {
                Ok(Ok(messages)) => messages,
                Ok(Err(error)) => {
                    tracing::warn!(session, %error, "cannot count what an interrupted turn used");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(
                        session,
                        "cannot count what an interrupted turn used: no answer"
                    );
                    continue;
                }
            };
            let answers: Vec<(String, Usage)> = self.recorder.read(|view| {
                crate::domain::agent::answers_of(&messages)
                    .into_iter()
                    .filter(|(id, usage)| !usage.is_empty() && !view.counted.contains(id))
                    .collect()
            });
            if answers.is_empty() {
                continue;
            }
            let usage = answers.iter().map(|(_, usage)| *usage).sum::<Usage>();
            tracing::info!(session, %usage, "counted what an interrupted turn used");
            self.record(Event::mission(MissionEvent::Used {
                role: turn.role,
                session,
                server: turn.server,
                task: turn.task,
                usage,
                answers: answers.into_iter().map(|(id, _)| id).collect(),
            }))?;
        }
        let total = self.recorder.read(|view| view.usage.total);
        *self
            .budget
            .spent
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = total;
        Ok(())
    }

    /// Warns once at 80% of a budget; at its limit, stops the mission (a pause `resume` goes on from).
    fn check_budgets(&self) -> Result<(), TaskError> {
        let budgets = *self
            .budget
            .budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let warned = self.recorder.read(|view| view.warned.clone());
        let spent = *self
            .budget
            .spent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some((budget, limit, used, fraction)) =
            budgets.most_used(&spent, self.budget.elapsed())
        else {
            return Ok(());
        };
        if fraction >= 1.0 {
            self.stop(StopCause::Budget {
                budget,
                limit,
                spent: used,
            });
            return Err(TaskError::Stopped);
        }
        if fraction >= WARN_AT && !warned.contains(&budget) {
            tracing::warn!(%budget, limit = %budget.show(limit), spent = %budget.show(used), "80% of a budget");
            self.record(Event::mission(MissionEvent::BudgetWarning {
                budget,
                limit,
                spent: used,
            }))?;
        }
        Ok(())
    }

    /// The mission's origin, when it works in isolation.
    fn origin(&self) -> Option<Origin> {
        self.recorder.read(|view| view.origin.clone())
    }

    /// Integrates an approved task through the merge queue: one task at a time, in the order they were
    /// approved (the queue's lock is fair). The merge is computed without moving the integration branch;
    /// when the branch moved since the task's base the checks run on the merged result; then the merge is
    /// journaled and the branch moved with a compare-and-swap, so a crash in between is finished exactly
    /// once by `resume`. A conflict or a failing check sends the task back, with what went wrong, to be
    /// done again from the new integration head.
    async fn integrate(&self, id: &str) -> Result<Load, TaskError> {
        let (Some(workspace), Some(origin)) = (&self.workspace, self.origin()) else {
            self.record_task(id, TaskEvent::Integrated { commit: None })?;
            return Ok(Load::Ok);
        };
        let _turn = self.merge_queue.lock().await;
        let task = self.recorder.read(|view| view.tasks[id].clone());
        if task.head.is_none() {
            // Nothing to merge (a `changes:none` task).
            self.record_task(id, TaskEvent::Integrated { commit: None })?;
            self.close(task.tree.as_ref()).await;
            return Ok(Load::Ok);
        };
        let (onto, result, fast_forward) = match workspace.merge(&origin, id).await? {
            Merge::Conflict { files, findings } => {
                tracing::warn!(
                    task = id,
                    ?files,
                    "the task's change conflicts with the integration branch"
                );
                let findings = prompts::conflict_findings(&findings);
                return self.integration_failed(id, &task, findings).await;
            }
            Merge::AlreadyIntegrated { head } => {
                // A merge a crash cut short already moved the branch.
                self.record_task(id, TaskEvent::Integrated { commit: Some(head) })?;
                self.close(task.tree.as_ref()).await;
                return Ok(Load::Ok);
            }
            Merge::Ready {
                onto,
                result,
                fast_forward,
            } => (onto, result, fast_forward),
        };
        // The task's own checks ran in its worktree; the integrated result needs them again only when the
        // integration branch moved since the task's base (the merge is not the task's head).
        if !fast_forward {
            let path = workspace.open_detached(&origin, &result).await?;
            let gate = self.gates.run(&path).await;
            self.close_path(&path).await;
            if !gate.passed() {
                let findings = prompts::integrated_gate_findings(&gate.for_reviewer());
                return self.integration_failed(id, &task, findings).await;
            }
        }
        self.record_task(
            id,
            TaskEvent::Merging {
                result: result.clone(),
                onto: onto.clone(),
            },
        )?;
        if !workspace.advance(&origin, &onto, &result).await? {
            let findings =
                "the integration branch was moved by someone else during the merge".to_string();
            return self.integration_failed(id, &task, findings).await;
        }
        self.record_task(
            id,
            TaskEvent::Integrated {
                commit: Some(result),
            },
        )?;
        self.close(task.tree.as_ref()).await;
        Ok(Load::Ok)
    }

    /// The task goes back for another attempt from the new integration head, or fails when it has none
    /// left. Its branch is kept (the report names it).
    async fn integration_failed(
        &self,
        id: &str,
        task: &TaskState,
        findings: String,
    ) -> Result<Load, TaskError> {
        tracing::warn!(task = id, findings = %first_line(&findings), "the task did not integrate");
        if task.attempts >= self.settings.review_attempts.max(1) {
            self.record_task(
                id,
                TaskEvent::Failed {
                    cause: FailCause::NotIntegrated {
                        attempts: task.attempts,
                        reason: first_line(&findings).to_string(),
                    },
                },
            )?;
        } else {
            self.record_task(id, TaskEvent::IntegrationFailed { findings })?;
        }
        self.close(task.tree.as_ref()).await;
        Ok(Load::Ok)
    }

    async fn close(&self, tree: Option<&Tree>) {
        if let Some(tree) = tree {
            self.close_path(&tree.root).await;
        }
    }

    async fn close_path(&self, path: &Path) {
        if let Some(workspace) = &self.workspace
            && let Err(error) = workspace.close_tree(path).await
        {
            tracing::warn!(path = %path.display(), %error, "could not remove a worktree");
        }
    }

    fn worker_message(&self, id: &str, directory: &Path, findings: Option<&str>) -> String {
        self.recorder.read(|view| {
            let task = &view.tasks[id];
            let dependencies: Vec<Dependency<'_>> = task
                .spec
                .depends
                .iter()
                .filter_map(|dependency| view.tasks.get(dependency))
                .map(|dependency| Dependency {
                    id: dependency.id(),
                    title: &dependency.spec.title,
                    result: dependency.report.as_deref().unwrap_or(""),
                    files: &dependency.files,
                })
                .collect();
            prompts::worker_message(
                id,
                &task.spec.title,
                &task.spec.brief,
                &dependencies,
                view.brief.as_deref().unwrap_or(""),
                &directory.display().to_string(),
                findings,
            )
        })
    }

    /// The project files a session changed. OpenCode computes them in the background after the step that
    /// made the change, so an empty answer is asked again for a few seconds. The orchestrator's own files
    /// (its journal, status file and log, written while the turn ran) are in OpenCode's snapshot of the
    /// project unless git ignores them: they are left out, for the summary and for the Reviewer alike.
    async fn session_changes(
        &self,
        server: &Server,
        session: &str,
    ) -> Result<Vec<crate::domain::agent::FileChange>, AgentError> {
        let started = Instant::now();
        loop {
            let mut changes = server.agents.changes(session).await?;
            changes.retain(|change| !is_orchestrator_file(&change.path));
            if !changes.is_empty() || started.elapsed() >= self.settings.monitor.diff_wait {
                return Ok(changes);
            }
            tokio::time::sleep(
                self.settings
                    .monitor
                    .min_poll
                    .min(Duration::from_millis(250)),
            )
            .await;
        }
    }

    /// A Worker's turns on one attempt: the task, then reminders while it answers without a status, then
    /// a diagnostic prompt once it repeats itself or stops making progress. An answer aborted by a stop (seen
    /// when a resumed run follows the session) is asked again, never counted as a failure.
    async fn worker_turns(
        &self,
        server: &Server,
        id: &str,
        session: &str,
        start: Start,
        worktree: Option<(&Tree, &mut Option<String>)>,
    ) -> Result<Work, TaskError> {
        let mut worktree = worktree;
        let mut next = Some(start);
        let mut previous: Option<String> = None;
        let mut nudges = 0;
        let mut aborts = 0;
        let mut diagnosed = false;
        // Objective signs of stagnation: the same tool error turn after turn, no change in the worktree.
        let mut last_tool_error: Option<(String, u32)> = None;
        let mut turns_without_change = 0;
        let mut context = 0;
        loop {
            let (turns, limit) = self
                .recorder
                .read(|view| (view.tasks[id].turns, view.budgets.turns_per_task));
            if let Some(limit) = limit
                && turns >= limit
            {
                return Ok(Work::Failed {
                    cause: FailCause::TurnBudget { turns: limit },
                    load: Load::Ok,
                });
            }
            let turn = match next.take().expect("each turn sets the next") {
                Start::Adopt => {
                    let span = turn_span(Role::Worker, session, server.url(), Some(id));
                    let started = Instant::now();
                    let turn = server
                        .monitor
                        .adopt(session, true)
                        .instrument(span.clone())
                        .await;
                    let turn = turn_ended(&span, turn, started.elapsed())?;
                    self.used(server, Role::Worker, session, Some(id), &turn)?;
                    turn
                }
                Start::Prompt(text) => {
                    let ask = Ask {
                        role: Role::Worker,
                        session,
                        text,
                        schema: None,
                    };
                    self.turn_full(server, ask, Some(id)).await?
                }
            };
            if let Some((_, usage)) = turn.answers.last() {
                context = usage.context();
            }
            // What changed in the worktree during the turn is committed: progress, and the head so far.
            let changed = match &mut worktree {
                Some((tree, head)) => {
                    let workspace = self
                        .workspace
                        .as_ref()
                        .expect("a tree comes from a workspace");
                    match workspace
                        .commit(tree, &format!("{id}: work in progress"))
                        .await?
                    {
                        Some(commit) => {
                            **head = Some(commit);
                            true
                        }
                        None => false,
                    }
                }
                None => true,
            };
            turns_without_change = if changed { 0 } else { turns_without_change + 1 };
            let repeated_tool_error = turn.tool_errors.last().and_then(|error| {
                let count = match &last_tool_error {
                    Some((last, count)) if last == error => count + 1,
                    _ => 1,
                };
                last_tool_error = Some((error.clone(), count));
                (count >= STAGNATION_REPEATS).then(|| error.clone())
            });
            if turn.tool_errors.is_empty() {
                last_tool_error = None;
            }
            let signal = match turn.end {
                TurnEnd::Answered { text, .. } => match prompts::worker_status(&text) {
                    WorkerStatus::Done(summary) => {
                        return Ok(Work::Done {
                            report: if summary.is_empty() { text } else { summary },
                            context,
                        });
                    }
                    WorkerStatus::Blocked(reason) => return Ok(Work::Blocked(reason)),
                    WorkerStatus::Missing => {
                        let text = text.trim().to_string();
                        let repeated = previous.as_deref() == Some(text.as_str());
                        previous = Some(text);
                        if let Some(error) = repeated_tool_error {
                            format!(
                                "the same tool error {STAGNATION_REPEATS} turns in a row: {error}"
                            )
                        } else if turns_without_change >= self.settings.stall_turns {
                            format!("no change in the worktree for {turns_without_change} turns")
                        } else if !repeated && nudges < self.settings.nudges {
                            nudges += 1;
                            next = Some(Start::Prompt(prompts::nudge_message(id)));
                            continue;
                        } else if repeated {
                            "the model repeated the same output".to_string()
                        } else {
                            format!("no status after {nudges} reminder(s)")
                        }
                    }
                },
                TurnEnd::Aborted => {
                    if aborts < ABORTS_TOLERATED {
                        aborts += 1;
                        tracing::info!(
                            task = id,
                            session,
                            "the Worker's answer was aborted; asking it to go on"
                        );
                        next = Some(Start::Prompt(prompts::resume_message(id)));
                        continue;
                    }
                    return Ok(Work::Failed {
                        cause: FailCause::Model {
                            message: format!("the answer was aborted {aborts} times"),
                        },
                        load: Load::Ok,
                    });
                }
                TurnEnd::Stalled => "no progress for the stall time".to_string(),
                TurnEnd::TimedOut => "the turn timed out".to_string(),
                TurnEnd::ModelFailed { message } => {
                    return Ok(Work::Failed {
                        cause: FailCause::Model { message },
                        load: Load::Overloaded,
                    });
                }
            };
            if diagnosed {
                return Ok(Work::Failed {
                    cause: FailCause::Stagnated { signal },
                    load: Load::Ok,
                });
            }
            diagnosed = true;
            tracing::warn!(task = id, %signal, "the Worker is not making progress: a diagnostic prompt");
            next = Some(Start::Prompt(prompts::diagnostic_message(id, &signal)));
        }
    }
}

/// The span of one turn: who, where, for which task; what it used and how it ended are recorded by
/// [`turn_ended`].
fn turn_span(role: Role, session: &str, server: &str, task: Option<&str>) -> tracing::Span {
    tracing::info_span!(
        "turn",
        role = role.name(),
        session,
        server,
        task.id = task,
        finish = Empty,
        tokens = Empty,
        tokens.input = Empty,
        tokens.output = Empty,
        tokens.reasoning = Empty,
        tokens.cache_read = Empty,
        tokens.cache_write = Empty,
        cost = Empty,
        took_ms = Empty,
    )
}

/// Records how a turn ended and what it used on its span, and logs a line that says so.
fn turn_ended(
    span: &tracing::Span,
    turn: Result<Turn, AgentError>,
    took: Duration,
) -> Result<Turn, AgentError> {
    let took_ms = millis(took);
    span.record("took_ms", took_ms);
    let turn = match turn {
        Ok(turn) => turn,
        Err(error) => {
            span.record("finish", "error");
            span.in_scope(|| tracing::warn!(%error, took_ms, "turn failed"));
            return Err(error);
        }
    };
    let usage = turn.usage();
    let finish = turn.end.reason();
    span.record("finish", finish);
    span.record("tokens", int(usage.tokens()));
    span.record("tokens.input", int(usage.input));
    span.record("tokens.output", int(usage.output));
    span.record("tokens.reasoning", int(usage.reasoning));
    span.record("tokens.cache_read", int(usage.cache_read));
    span.record("tokens.cache_write", int(usage.cache_write));
    span.record("cost", usage.cost());
    span.in_scope(|| {
        tracing::info!(
            finish,
            tokens = int(usage.tokens()),
            tokens.input = int(usage.input),
            tokens.output = int(usage.output),
            cost = usage.cost(),
            took_ms,
            "turn ended"
        );
    });
    Ok(turn)
}

/// A number for a span or a log line, as an `i64`: OpenTelemetry's integers are signed, and
/// `tracing-opentelemetry` records unsigned values as text.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A count, for a span (see [`int`]).
fn count(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A duration in milliseconds, for a span (see [`int`]).
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// `text` with 1-based line numbers.
fn numbered(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(index, line)| format!("{:>3}  {line}\n", index + 1))
        .collect()
}

/// Aborts `session` and the sessions under it (leaves first), adding each to `aborted`.
async fn abort_tree(agents: &dyn Agents, session: &str, aborted: &mut Vec<String>) {
    let mut stack = vec![(session.to_string(), false)];
    while let Some((session, expanded)) = stack.pop() {
        if expanded {
            match agents.abort(&session).await {
                Ok(()) => aborted.push(session),
                Err(error) => tracing::warn!(session, %error, "could not abort a session"),
            }
            continue;
        }
        stack.push((session.clone(), true));
        match agents.children(&session).await {
            Ok(children) => stack.extend(children.into_iter().map(|child| (child, false))),
            Err(error) => tracing::warn!(session, %error, "could not list a session's children"),
        }
    }
}

/// Whether a path is the orchestrator's own (its state, its plan), not the project's.
fn is_orchestrator_file(path: &str) -> bool {
    let path = path.trim_start_matches("./");
    path.starts_with(".opencode/orchestrator/") || path == ".opencode/todo.md"
}
