//! The mission driver: runs the stages in order (Commander, Planner, Workers with their reviews) and records
//! every step as an event of the mission's journal.
//!
//! A stop (a signal, `orchestrator stop`, every server lost, a journal that cannot be written) ends every
//! turn in flight, aborts the sessions this run started (their sub-agents' first), records which tasks were
//! interrupted, and returns a report whose status says why. `resume` replays the journal and takes the
//! interrupted tasks up again, continuing their Worker sessions.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use circuit::AdaptiveLimit;
use tokio::sync::watch;

use crate::domain::agent::{AgentError, TurnEnd};
use crate::domain::mission::{
    self, Entry, Event, JOURNAL_FORMAT, MissionEvent, MissionStatus, MissionTextError, MissionView,
    PlanSource, Rejected, Stage, StopCause,
};
use crate::domain::plan;
use crate::domain::prompts::{self, Dependency, Role, WorkerStatus, first_line};
use crate::domain::settings::Settings;
use crate::domain::task::{FailCause, TaskEvent, TaskSpec, TaskStatus};
use crate::engine::monitor::Monitor;
use crate::engine::ports::{Agents, Gates, Journal};
use crate::engine::record::{Applied, Halt, Recorder};
use crate::engine::review::{ReviewError, ReviewInput, Reviewers};
use crate::engine::schedule::{Load, Queue};
use crate::engine::sessions::Sessions;
use crate::engine::turns::{Ask, Turns};

/// How long a stop waits for the aborts of the sessions in flight.
const ABORT_WAIT: Duration = Duration::from_secs(3);

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
    turns: Turns,
    /// Set once, by the first stop.
    stop: watch::Sender<Option<StopCause>>,
    /// The work stage's queue, while it runs (a stop closes it).
    queue: Mutex<Option<Arc<Queue>>>,
    /// Serializes the decisions of which tasks are ready (each released exactly once).
    release: Mutex<()>,
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
    /// The journal failed: the mission is stopping.
    Halted,
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
    Done(String),
    Blocked(String),
    Failed { cause: FailCause, load: Load },
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
            .map_err(|error| Halt::journal(&error))?;
        Ok(Self::assemble(ports, settings, view))
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
        let mission = Self::assemble(ports, settings, view);
        let core = &mission.core;
        core.record(Event::mission(MissionEvent::Resumed))?;
        let recovery = core
            .recorder
            .read(|view| view.recovery(|task| exists.get(task.id()) == Some(&true)));
        for event in recovery {
            tracing::info!(?event, "recovering an interrupted task");
            core.record(event)?;
        }
        Ok(mission)
    }

    fn assemble(ports: Ports, settings: Settings, view: MissionView) -> Self {
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
            .collect();
        Self {
            core: Arc::new(Core {
                turns: Turns::new(&settings),
                recorder: Recorder::new(ports.journal, view),
                settings,
                servers,
                gates: ports.gates,
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

    /// Runs the mission to its end (or its stop) and reports it.
    pub async fn run(self) -> MissionReport {
        let started = Instant::now();
        let core = &self.core;
        let mut sources = (0, 0, 0);
        let outcome: Result<(), Stop> = async {
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
        let mut aborted = Vec::new();
        match outcome {
            Ok(()) => {
                if let Err(halt) = core.record(Event::mission(MissionEvent::Finished)) {
                    core.stop(StopCause::from_halt(&halt));
                }
            }
            Err(stop) => {
                let cause = match stop {
                    Stop::Cause(cause) => cause,
                    Stop::Halt(halt) => StopCause::from_halt(&halt),
                };
                core.stop(cause);
                aborted = core.wind_down().await;
            }
        }
        let mut view = core.recorder.view();
        if let Some(halt) = core.recorder.halted() {
            // The journal could not take the stop: the report carries it.
            view.status = MissionStatus::Stopped {
                cause: StopCause::from_halt(&halt),
            };
        }
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
        }
    }
}

impl StopCause {
    fn from_halt(halt: &Halt) -> Self {
        match halt {
            Halt::Journal { path, error } => StopCause::Journal {
                path: path.clone(),
                error: error.clone(),
            },
            Halt::Rejected(rejected) => StopCause::Journal {
                path: String::new(),
                error: rejected.to_string(),
            },
        }
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
            result = work => Ok(result),
            cause = stop.wait_for(Option::is_some) => Err(Stop::Cause(
                cause.ok().and_then(|cause| cause.clone()).expect("the stop sender lives in the core"),
            )),
        }
    }

    async fn stage<T>(
        &self,
        stage: Stage,
        work: impl Future<Output = Result<T, Stop>>,
    ) -> Result<T, Stop> {
        self.record(Event::mission(MissionEvent::StageStarted { stage }))?;
        tracing::info!(mission = %self.recorder.read(|view| view.id.clone()), stage = stage.name(), "stage started");
        let started = Instant::now();
        let result = match self.until_stopped(work).await {
            Ok(result) => result,
            Err(stop) => Err(stop),
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
    async fn wind_down(&self) -> Vec<String> {
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
        if self.recorder.halted().is_none() {
            let running: Vec<String> = self.recorder.read(|view| {
                view.tasks
                    .values()
                    .filter(|task| task.status.slot().is_some())
                    .map(|task| task.id().to_string())
                    .collect()
            });
            for id in running {
                if self.record_task(&id, TaskEvent::Interrupted).is_err() {
                    return aborted;
                }
            }
            let _ = self.record(Event::mission(MissionEvent::Stopped { cause }));
        }
        aborted
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

    fn plan_path(&self) -> PathBuf {
        self.recorder.journal().location().join("todo.md")
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
            text: prompts::commander_message(&text, &project),
            schema: None,
        };
        match self.turns.run(&self.settings, &server.monitor, ask).await {
            Ok(TurnEnd::Answered { text, .. }) => {
                self.record(Event::mission(MissionEvent::BriefWritten { brief: text }))?;
                Ok(())
            }
            Ok(end) => Err(Stop::Cause(StopCause::Agent {
                role: Role::Commander,
                message: end.to_string(),
            })),
            Err(error) => Err(self.agent_stop(server, Role::Commander, error)),
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
        let mut errors = String::new();
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
            let message = if errors.is_empty() {
                prompts::planner_message(&text, &brief, &project)
            } else {
                prompts::plan_retry_message(&text, &brief, &project, &errors)
            };
            let ask = Ask {
                role: Role::Planner,
                session: &session,
                text: message,
                schema: None,
            };
            let answer = match self.turns.run(&self.settings, &server.monitor, ask).await {
                Ok(TurnEnd::Answered { text, .. }) => text,
                Ok(end) => {
                    return Err(Stop::Cause(StopCause::Agent {
                        role: Role::Planner,
                        message: end.to_string(),
                    }));
                }
                Err(error) => return Err(self.agent_stop(server, Role::Planner, error)),
            };
            let parsed = match prompts::plan_in_answer(&answer) {
                None => Err(prompts::NO_PLAN_IN_ANSWER.to_string()),
                Some(markdown) => plan::parse(&markdown).map_err(|found| found.to_string()),
            };
            match parsed {
                Ok(plan) => {
                    self.write_plan(&plan.render())?;
                    self.record(Event::mission(MissionEvent::PlanAccepted {
                        attempt,
                        source: PlanSource::Markdown,
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
                let halt = Halt::journal(&error);
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
        let runner = {
            let core = Arc::clone(core);
            let queue = Arc::clone(&queue);
            move |slot: usize, id: String, _source| {
                let core = Arc::clone(&core);
                let queue = Arc::clone(&queue);
                async move {
                    let load = core.run_task(slot, &id).await;
                    core.release_ready(&queue);
                    load
                }
            }
        };
        queue.run(limit, runner).await;
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
        for id in &readiness.ready {
            if self.record_task(id, TaskEvent::Released).is_err() {
                return;
            }
        }
        queue.push(readiness.ready);
        let (finished, underway) = self.recorder.read(|view| {
            let underway = view
                .tasks
                .values()
                .any(|task| !task.status.is_finished() && task.status != TaskStatus::Pending);
            (view.all_finished(), underway)
        });
        if finished || !underway {
            // Everything is finished, or nothing can move any more (nothing runs and nothing is ready).
            queue.close();
        }
    }

    async fn run_task(&self, slot: usize, id: &str) -> Load {
        let mut stop = self.stop.subscribe();
        if stop.borrow().is_some() {
            return Load::Ok;
        }
        let outcome = tokio::select! {
            outcome = self.task(slot, id) => outcome,
            // Dropping the task's future cancels its calls and kills a running gate's process group; the
            // stop records the task as interrupted.
            _ = stop.wait_for(Option::is_some) => return Load::Ok,
        };
        match outcome {
            Ok(load) => load,
            Err(TaskError::Halted) => Load::Ok,
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
        let (session, continued) = match resumed {
            Some((_, session)) => (session, true),
            None => {
                let title = format!("{id} {}", task.spec.title);
                let session = server.sessions.lease(Role::Worker, &title, None).await?;
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
            },
        )?;
        let mut start = if continued {
            Start::Adopt
        } else {
            Start::Prompt(self.worker_message(id, task.findings.as_deref()))
        };
        loop {
            let report = match self.worker_turns(server, id, &session, start).await? {
                Work::Done(report) => report,
                Work::Blocked(reason) => {
                    self.record_task(id, TaskEvent::WorkerBlocked { reason })?;
                    return Ok(Load::Ok);
                }
                Work::Failed { cause, load } => {
                    self.record_task(id, TaskEvent::Failed { cause })?;
                    return Ok(load);
                }
            };
            let changes = self.session_changes(server, &session).await?;
            let files = changes.iter().map(|change| change.path.clone()).collect();
            self.record_task(
                id,
                TaskEvent::WorkerFinished {
                    report: report.clone(),
                    files,
                },
            )?;
            let reviewers = Reviewers {
                settings: &self.settings,
                turns: &self.turns,
                gates: self.gates.as_ref(),
            };
            let input = ReviewInput {
                id,
                title: &task.spec.title,
                brief: &task.spec.brief,
                report: &report,
                changes: &changes,
            };
            let review = match reviewers
                .review(
                    &input,
                    &self.settings.project,
                    &server.sessions,
                    &server.monitor,
                )
                .await
            {
                Ok(review) => review,
                Err(ReviewError::Agent(error)) => return Err(TaskError::Agent(error)),
                Err(ReviewError::Turn { session, end }) => {
                    self.record_task(
                        id,
                        TaskEvent::Failed {
                            cause: FailCause::Model {
                                message: format!("the Reviewer's turn in session {session} {end}"),
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
                return Ok(Load::Ok);
            }
            let attempts = self.recorder.read(|view| view.tasks[id].attempts);
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
                    findings: review.findings.clone(),
                    reviewer: Some(review.reviewer),
                },
            )?;
            start = Start::Prompt(self.worker_message(id, Some(&review.findings)));
        }
    }

    fn worker_message(&self, id: &str, findings: Option<&str>) -> String {
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
                &view.project,
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
    ) -> Result<Work, AgentError> {
        let mut next = Some(start);
        let mut previous: Option<String> = None;
        let mut nudges = 0;
        let mut aborts = 0;
        let mut diagnosed = false;
        loop {
            let end = match next.take().expect("each turn sets the next") {
                Start::Adopt => server.monitor.adopt(session, true).await?,
                Start::Prompt(text) => {
                    let ask = Ask {
                        role: Role::Worker,
                        session,
                        text,
                        schema: None,
                    };
                    self.turns.run(&self.settings, &server.monitor, ask).await?
                }
            };
            let signal = match end {
                TurnEnd::Answered { text, .. } => match prompts::worker_status(&text) {
                    WorkerStatus::Done(summary) => {
                        return Ok(Work::Done(if summary.is_empty() { text } else { summary }));
                    }
                    WorkerStatus::Blocked(reason) => return Ok(Work::Blocked(reason)),
                    WorkerStatus::Missing => {
                        let text = text.trim().to_string();
                        let repeated = previous.as_deref() == Some(text.as_str());
                        previous = Some(text);
                        if !repeated && nudges < self.settings.nudges {
                            nudges += 1;
                            next = Some(Start::Prompt(prompts::nudge_message(id)));
                            continue;
                        }
                        if repeated {
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
            next = Some(Start::Prompt(prompts::diagnostic_message(id, &signal)));
        }
    }
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
