//! The mission driver: runs the stages in order (Commander, Planner, Workers with their reviews) on one
//! OpenCode server and returns the mission's report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use circuit::{AdaptiveLimit, Backoff, CallError, CircuitBreaker, Jitter, Retry};
use opencode_client::{ModelRef, Prompt};

use crate::adapters::gate;
use crate::error::OrchestratorError;
use crate::monitor::{Monitor, MonitorConfig, TurnEnd};
use crate::plan;
use crate::prompts::{self, Dependency, Prompts, Role, WorkerStatus};
use crate::review::{self, ReviewInput};
use crate::schedule::{Load, Queue};
use crate::server::{CallPolicy, Opencode};
use crate::sessions::{PoolConfig, Sessions};
use crate::state::{
    MissionRecord, MissionState, MissionStatus, MissionView, Stage, TaskRecord, TaskStatus, now_ms,
};

/// The largest mission text accepted, in bytes.
pub const MAX_MISSION_BYTES: usize = 64 * 1024;

/// How a mission runs.
#[derive(Debug, Clone)]
pub struct MissionConfig {
    /// The project the agents work in.
    pub project: PathBuf,
    /// Worker slots (tasks run at once, at most).
    pub slots: usize,
    /// Session pools.
    pub pool: PoolConfig,
    /// How turns are followed.
    pub monitor: MonitorConfig,
    /// How OpenCode calls are guarded.
    pub calls: CallPolicy,
    /// The review gate's commands; `None` detects them from the project (Cargo, npm, pytest, go).
    pub gate: Option<Vec<gate::GateCommand>>,
    /// How long each gate command may run.
    pub gate_timeout: Duration,
    /// Plans asked of the Planner before the mission gives up on planning.
    pub plan_attempts: u32,
    /// Attempts per task (a failed review starts the next).
    pub review_attempts: u32,
    /// Times a Worker that answered without a status is asked to go on before it is diagnosed.
    pub nudges: u32,
    /// Turns retried after the model failed, per turn.
    pub model_retries: u32,
    /// Consecutive failed model turns that open the model's circuit breaker.
    pub model_breaker_failures: u32,
    /// How long the model's breaker stays open.
    pub model_breaker_open_for: Duration,
    /// Whether Workers may start sub-agents (OpenCode's `task` tool): the delegation depth limit, 0 or 1.
    pub delegation_depth: u32,
    /// The prompt modules.
    pub prompts: Prompts,
    /// The model every agent uses (`provider/model`); `None` uses the server's default.
    pub model: Option<ModelRef>,
    /// Per-role models, over `model`.
    pub models: BTreeMap<Role, ModelRef>,
}

impl MissionConfig {
    /// The defaults for a project.
    pub fn new(project: impl Into<PathBuf>) -> Self {
        Self {
            project: project.into(),
            slots: 4,
            pool: PoolConfig::default(),
            monitor: MonitorConfig::default(),
            calls: CallPolicy::default(),
            gate: None,
            gate_timeout: Duration::from_secs(300),
            plan_attempts: 3,
            review_attempts: 3,
            nudges: 2,
            model_retries: 3,
            model_breaker_failures: 5,
            model_breaker_open_for: Duration::from_secs(5),
            delegation_depth: 1,
            prompts: Prompts::new(),
            model: None,
            models: BTreeMap::new(),
        }
    }
}

/// The end of a mission, for the summary.
#[derive(Debug, Clone)]
pub struct MissionReport {
    /// The mission's final state.
    pub view: MissionView,
    /// How long it took.
    pub wall: Duration,
    /// Where the slots found their tasks: own deque, injector, stolen.
    pub sources: (u64, u64, u64),
    /// Model turns that failed (and were retried or gave up).
    pub model_failures: u32,
    /// The model breaker's state at the end.
    pub model_breaker: String,
    /// The OpenCode breaker's state at the end.
    pub opencode_breaker: String,
    /// Where the plan was written.
    pub todo: PathBuf,
}

impl MissionReport {
    /// Whether every task is done.
    pub fn completed(&self) -> bool {
        self.view.mission.status == MissionStatus::Completed
    }

    /// Every session the mission used.
    pub fn session_count(&self) -> usize {
        self.view.mission.sessions.len()
            + self
                .view
                .tasks
                .values()
                .map(|task| task.sessions.len())
                .sum::<usize>()
    }

    /// Every file the tasks changed, sorted.
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

    /// The summary printed at the end of a mission.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mission = &self.view.mission;
        let mut out = String::new();
        let outcome = match &mission.status {
            MissionStatus::Completed => "COMPLETED".to_string(),
            MissionStatus::Running => "RUNNING".to_string(),
            MissionStatus::Incomplete { reason } => format!("INCOMPLETE: {reason}"),
            MissionStatus::Stopped { reason } => format!("STOPPED: {reason}"),
        };
        let _ = writeln!(out, "Mission {}: {outcome}", mission.id);
        let _ = writeln!(out, "  project:  {}", mission.project);
        let _ = writeln!(
            out,
            "  plan:     {} ({} attempt(s))",
            self.todo.display(),
            mission.plan_attempts
        );
        let _ = writeln!(
            out,
            "  tasks:    {} done, {} failed, {} blocked, of {}",
            self.view.count("done"),
            self.view.count("failed"),
            self.view.count("blocked"),
            self.view.tasks.len()
        );
        let _ = writeln!(out, "  sessions: {}", self.session_count());
        let _ = writeln!(
            out,
            "  slots:    {} tasks from their own deque, {} from the queue, {} stolen",
            self.sources.0, self.sources.1, self.sources.2
        );
        let _ = writeln!(
            out,
            "  model:    {} failed turn(s); model breaker {}, OpenCode breaker {}",
            self.model_failures, self.model_breaker, self.opencode_breaker
        );
        let _ = writeln!(out, "  wall:     {:.1} s", self.wall.as_secs_f64());
        for stage in Stage::ALL {
            if let Some(ms) = mission.stage_ms.get(&stage) {
                let _ = writeln!(
                    out,
                    "    {:<8} {:>8.1} s",
                    stage.name(),
                    *ms as f64 / 1000.0
                );
            }
        }
        let _ = writeln!(
            out,
            "  {:<6} {:<10} {:>8} {:>5}  title",
            "task", "status", "attempts", "runs"
        );
        for task in self.view.tasks.values() {
            let _ = writeln!(
                out,
                "  {:<6} {:<10} {:>8} {:>5}  {}",
                task.id,
                task.status.name(),
                task.attempts,
                task.runs,
                task.title
            );
            if let TaskStatus::Failed { reason } | TaskStatus::Blocked { by: reason } = &task.status
            {
                let _ = writeln!(out, "         {reason}");
            }
        }
        let files = self.files();
        let _ = writeln!(out, "  files changed ({}):", files.len());
        for file in files {
            let _ = writeln!(out, "    {file}");
        }
        out
    }
}

/// A mission, ready to run.
#[derive(Debug)]
pub struct Mission {
    ctx: Arc<Ctx>,
}

#[derive(Debug)]
struct Ctx {
    config: MissionConfig,
    text: String,
    state: MissionState,
    /// The OpenCode servers, the first preferred for the Commander and the Planner.
    servers: Vec<Server>,
    gate: gate::Gate,
    model_breaker: CircuitBreaker,
    model_retry: Retry,
    model_failures: AtomicU32,
    /// Serializes the decisions of which tasks are ready (each pushed exactly once).
    coordination: Mutex<()>,
    /// Set once when the mission is interrupted (the signal's name).
    stop: tokio::sync::watch::Sender<Option<&'static str>>,
    /// The work stage's queue, while it runs (an interrupt closes it).
    queue: Mutex<Option<Arc<Queue>>>,
    /// Why the mission cannot go on, when a task found out (OpenCode unreachable past its retries).
    fatal: Mutex<Option<String>>,
}

/// One OpenCode server of the mission, with its own breaker (in its [`Opencode`]), event stream and
/// session pools.
#[derive(Debug)]
struct Server {
    url: String,
    monitor: Monitor,
    sessions: Sessions,
    /// Set once a call to it failed past its retries: no new work goes to it.
    down: std::sync::atomic::AtomicBool,
    /// Tasks running on it now.
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Server {
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

/// Interrupts a running mission from elsewhere (a signal handler): running sessions are aborted, no new
/// task starts, and [`Mission::run`] returns soon with the mission `Stopped`; its state (durable or not)
/// says which tasks were running, for `resume`.
#[derive(Debug, Clone)]
pub struct Interrupter {
    ctx: Arc<Ctx>,
}

impl Interrupter {
    /// Interrupts the mission; `signal` says why (`SIGINT`, `SIGTERM`, `stop`). Returns the sessions it
    /// aborted.
    pub async fn interrupt(&self, signal: &'static str) -> Vec<String> {
        self.ctx.stop.send_replace(Some(signal));
        if let Some(queue) = self
            .ctx
            .queue
            .lock()
            .expect("no panic holds the lock")
            .as_ref()
        {
            queue.close();
        }
        let mut aborted = Vec::new();
        for server in &self.ctx.servers {
            aborted.extend(server.monitor.interrupt(signal).await);
        }
        aborted
    }
}

impl Mission {
    /// Prepares a mission kept in memory: checks its text, creates its state and starts following the
    /// server.
    ///
    /// # Errors
    ///
    /// [`OrchestratorError::Mission`] for an empty or too large mission text.
    pub fn new(
        opencode: Opencode,
        config: MissionConfig,
        text: &str,
    ) -> Result<Self, OrchestratorError> {
        let record = Self::record(&config, text)?;
        Ok(Self::with_state(
            vec![opencode],
            config,
            MissionState::new(record),
        ))
    }

    /// Prepares a mission whose state is kept on disk, in
    /// `<project>/.opencode/orchestrator/missions/<id>/`, so that `resume` can continue it after a crash.
    ///
    /// # Errors
    ///
    /// [`OrchestratorError::Mission`] for a bad mission text; [`OrchestratorError::State`] when the state
    /// cannot be created.
    /// With several servers, each task runs on the least busy server that is up; a server that stops
    /// answering gets no more work, and its running tasks go back to the queue for the others.
    ///
    /// # Panics
    ///
    /// If `servers` is empty.
    pub fn create(
        servers: Vec<Opencode>,
        config: MissionConfig,
        text: &str,
    ) -> Result<Self, OrchestratorError> {
        assert!(!servers.is_empty(), "a mission needs at least one server");
        let record = Self::record(&config, text)?;
        let directory = crate::state::missions_dir(&config.project).join(&record.id);
        let state = MissionState::create(&directory, record)?;
        Ok(Self::with_state(servers, config, state))
    }

    /// Continues a mission from its state: stages already done are not run again, finished tasks stay
    /// finished, and a task that was running is adopted (its Worker session still exists on the server: the
    /// mission follows it to its answer) or started again.
    ///
    /// # Errors
    ///
    /// [`OrchestratorError::Opencode`] when the server cannot be asked about the sessions.
    ///
    /// # Panics
    ///
    /// If `servers` is empty.
    pub async fn resume(
        servers: Vec<Opencode>,
        config: MissionConfig,
        state: MissionState,
    ) -> Result<Self, OrchestratorError> {
        assert!(!servers.is_empty(), "a mission needs at least one server");
        state.update_mission(|mission| mission.status = MissionStatus::Running);
        let mission = Self::with_state(servers, config, state);
        mission.ctx.recover().await?;
        Ok(mission)
    }

    fn record(config: &MissionConfig, text: &str) -> Result<MissionRecord, OrchestratorError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(OrchestratorError::Mission(
                "the mission text is empty: say what the agents should do".to_string(),
            ));
        }
        if text.len() > MAX_MISSION_BYTES {
            return Err(OrchestratorError::Mission(format!(
                "the mission text is {} bytes; the limit is {MAX_MISSION_BYTES} bytes (put long \
                 specifications in a file of the project and refer to it)",
                text.len()
            )));
        }
        Ok(MissionRecord {
            id: format!("m{}", now_ms()),
            text: text.to_string(),
            project: config.project.display().to_string(),
            stage: Stage::Server,
            status: MissionStatus::Running,
            brief: None,
            sessions: Vec::new(),
            plan_attempts: 0,
            stage_ms: BTreeMap::new(),
            started_ms: now_ms(),
        })
    }

    fn with_state(servers: Vec<Opencode>, config: MissionConfig, state: MissionState) -> Self {
        let text = state.mission().text;
        let id = state.mission().id;
        let servers = servers
            .into_iter()
            .map(|opencode| Server {
                url: opencode.client().url().to_string(),
                monitor: Monitor::start(opencode.clone(), config.monitor.clone()),
                sessions: Sessions::new(opencode, config.pool, &id),
                down: std::sync::atomic::AtomicBool::new(false),
                in_flight: std::sync::atomic::AtomicUsize::new(0),
            })
            .collect();
        let commands = config
            .gate
            .clone()
            .unwrap_or_else(|| gate::detect(&config.project));
        let gate = gate::Gate::new(commands).timeout(config.gate_timeout);
        let model_breaker = CircuitBreaker::builder()
            .name("model")
            .consecutive_failures(config.model_breaker_failures.max(1))
            .open_wait(Backoff::constant(config.model_breaker_open_for))
            .build()
            .expect("a breaker with consecutive failures and a constant wait is valid");
        let model_retry = Retry::builder()
            .max_attempts(config.model_retries + 1)
            .backoff(
                Backoff::exponential(Duration::from_millis(500), Duration::from_secs(10))
                    .expect("500 ms is under 10 s")
                    .with_jitter(Jitter::Full),
            )
            .build()
            .expect("a retry with at least one attempt is valid");
        Self {
            ctx: Arc::new(Ctx {
                config,
                text,
                state,
                servers,
                gate,
                model_breaker,
                model_retry,
                model_failures: AtomicU32::new(0),
                coordination: Mutex::new(()),
                stop: tokio::sync::watch::Sender::new(None),
                queue: Mutex::new(None),
                fatal: Mutex::new(None),
            }),
        }
    }

    /// A handle that interrupts this mission (for signal handlers and `orchestrator stop`).
    pub fn interrupter(&self) -> Interrupter {
        Interrupter {
            ctx: Arc::clone(&self.ctx),
        }
    }

    /// The mission's state (the progress view subscribes to it before [`run`](Self::run)).
    pub fn state(&self) -> &MissionState {
        &self.ctx.state
    }

    /// Runs the mission to its end and reports it. A mission that cannot go on (OpenCode unreachable, no
    /// valid plan, the model failing every retry) ends `Stopped` with the reason; tasks that failed end it
    /// `Incomplete`.
    pub async fn run(self) -> MissionReport {
        let started = Instant::now();
        let ctx = &self.ctx;
        let todo = ctx.config.project.join(".opencode").join("todo.md");
        let mut sources = (0, 0, 0);
        let outcome = async {
            let known = ctx.state.mission();
            let brief = match known.brief {
                Some(brief) => brief,
                None => ctx.stage(Stage::Command, ctx.command()).await?,
            };
            if ctx.state.view().tasks.is_empty() {
                ctx.stage(Stage::Plan, ctx.plan(&brief, &todo)).await?;
            }
            sources = ctx.stage(Stage::Work, Self::work(&self.ctx)).await;
            if let Some(reason) = ctx.fatal.lock().expect("no panic holds the lock").take() {
                return Err(OrchestratorError::Lost { reason });
            }
            match *ctx.stop.borrow() {
                Some(signal) => Err(OrchestratorError::Interrupted { signal }),
                None => Ok(()),
            }
        }
        .await;
        let status = match outcome {
            Err(OrchestratorError::Interrupted { signal }) => MissionStatus::Stopped {
                reason: format!(
                    "interrupted by {signal}; continue it with `orchestrator resume {}`",
                    ctx.state.mission().id
                ),
            },
            Err(error) => MissionStatus::Stopped {
                reason: error.to_string(),
            },
            Ok(()) => {
                let view = ctx.state.view();
                let failed = view.count("failed");
                let blocked = view.count("blocked");
                if failed + blocked == 0 {
                    MissionStatus::Completed
                } else {
                    MissionStatus::Incomplete {
                        reason: format!("{failed} task(s) failed, {blocked} blocked"),
                    }
                }
            }
        };
        ctx.state.update_mission(|mission| {
            mission.stage = Stage::Finish;
            mission.status = status.clone();
        });
        MissionReport {
            view: ctx.state.view(),
            wall: started.elapsed(),
            sources,
            model_failures: ctx.model_failures.load(Ordering::Relaxed),
            model_breaker: ctx.model_breaker.state().to_string(),
            opencode_breaker: ctx
                .servers
                .iter()
                .map(|server| {
                    format!(
                        "{}{}",
                        server.monitor.opencode().breaker().state(),
                        if server.is_up() { "" } else { " (down)" }
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            todo,
        }
    }

    async fn work(ctx: &Arc<Ctx>) -> (u64, u64, u64) {
        let slots = ctx.config.slots.max(1);
        let queue = Queue::new(slots);
        *ctx.queue.lock().expect("no panic holds the lock") = Some(Arc::clone(&queue));
        if ctx.stop.borrow().is_some() {
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
        ctx.release_ready(&queue);
        let runner = {
            let ctx = Arc::clone(ctx);
            let queue = Arc::clone(&queue);
            move |slot: usize, id: String, _source| {
                let ctx = Arc::clone(&ctx);
                let queue = Arc::clone(&queue);
                async move {
                    let load = ctx.run_task(slot, &id).await;
                    ctx.release_ready(&queue);
                    load
                }
            }
        };
        queue.run(limit, runner).await;
        *ctx.queue.lock().expect("no panic holds the lock") = None;
        let stats = queue.stats();
        (
            stats.local.load(Ordering::Relaxed),
            stats.injected.load(Ordering::Relaxed),
            stats.stolen.load(Ordering::Relaxed),
        )
    }
}

impl Ctx {
    async fn stage<T>(&self, stage: Stage, work: impl Future<Output = T>) -> T {
        self.state.update_mission(|mission| mission.stage = stage);
        tracing::info!(mission = %self.state.mission().id, stage = stage.name(), "stage started");
        let started = Instant::now();
        let result = work.await;
        self.state.add_stage_time(stage, started.elapsed());
        tracing::info!(stage = stage.name(), took = ?started.elapsed(), "stage ended");
        result
    }

    fn prompt(&self, role: Role, text: String) -> Prompt {
        let mut prompt = Prompt::text(text).system(self.config.prompts.system(role));
        for (tool, enabled) in role.tools(self.config.delegation_depth > 0) {
            prompt = prompt.tool(tool, enabled);
        }
        if let Some(model) = self.config.models.get(&role).or(self.config.model.as_ref()) {
            prompt = prompt.model(model.clone());
        }
        prompt
    }

    /// One agent turn, retried while the model fails, under the model's circuit breaker.
    async fn turn(
        &self,
        server: &Server,
        session: &str,
        prompt: &Prompt,
        allow_permissions: bool,
    ) -> Result<TurnEnd, OrchestratorError> {
        let monitor = &server.monitor;
        let breaker = &self.model_breaker;
        let failures = &self.model_failures;
        let result = self
            .model_retry
            .call_async(
                |_| async move {
                    breaker
                        .call_async(async move {
                            match monitor.turn(session, prompt, allow_permissions).await {
                                Ok(TurnEnd::ModelFailed { message }) => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                    Err(Ok(message))
                                }
                                Ok(end) => Ok(end),
                                Err(error) => Err(Err(error)),
                            }
                        })
                        .await
                },
                |error: &CallError<Result<String, OrchestratorError>>| {
                    matches!(error, CallError::Rejected(_) | CallError::Inner(Ok(_)))
                },
            )
            .await;
        match result {
            Ok(end) => Ok(end),
            Err(error) => {
                let attempts = error.attempts();
                match error.into_inner() {
                    CallError::Inner(Ok(message)) => Ok(TurnEnd::ModelFailed {
                        message: format!("{message} ({attempts} attempt(s))"),
                    }),
                    // OpenCode unreachable past its retries, or the mission interrupted: as it is.
                    CallError::Inner(Err(error)) => Err(error),
                    CallError::Rejected(_) => Ok(TurnEnd::ModelFailed {
                        message: format!(
                            "the model's circuit breaker is open after {} consecutive failed turns",
                            self.config.model_breaker_failures
                        ),
                    }),
                }
            }
        }
    }

    /// A turn of a non-Worker agent that must answer.
    async fn answer(
        &self,
        server: &Server,
        role: Role,
        session: &str,
        text: String,
    ) -> Result<String, OrchestratorError> {
        match self
            .turn(server, session, &self.prompt(role, text), false)
            .await?
        {
            TurnEnd::Answered { text } => Ok(text),
            other => Err(OrchestratorError::Turn {
                role: role.name(),
                session: session.to_string(),
                message: review::describe(&other),
            }),
        }
    }

    /// The first server that is up, for the Commander and the Planner.
    fn primary(&self) -> Result<&Server, OrchestratorError> {
        self.servers
            .iter()
            .find(|server| server.is_up())
            .ok_or_else(|| OrchestratorError::Lost {
                reason: "every OpenCode server stopped answering".to_string(),
            })
    }

    /// The least busy server that is up.
    fn pick(&self) -> Option<&Server> {
        self.servers
            .iter()
            .filter(|server| server.is_up())
            .min_by_key(|server| server.in_flight.load(Ordering::Relaxed))
    }

    async fn command(&self) -> Result<String, OrchestratorError> {
        let server = self.primary()?;
        let lease = server.sessions.lease(Role::Commander, "brief").await?;
        self.state
            .update_mission(|mission| mission.sessions.push(lease.id.clone()));
        let project = self.config.project.display().to_string();
        let brief = self
            .answer(
                server,
                Role::Commander,
                &lease.id,
                prompts::commander_message(&self.text, &project),
            )
            .await?;
        self.state
            .update_mission(|mission| mission.brief = Some(brief.clone()));
        Ok(brief)
    }

    async fn plan(&self, brief: &str, todo: &Path) -> Result<(), OrchestratorError> {
        let server = self.primary()?;
        let lease = server.sessions.lease(Role::Planner, "plan").await?;
        self.state
            .update_mission(|mission| mission.sessions.push(lease.id.clone()));
        let project = self.config.project.display().to_string();
        let mut message = prompts::planner_message(&self.text, brief, &project);
        let attempts = self.config.plan_attempts.max(1);
        let mut errors = String::new();
        for attempt in 1..=attempts {
            self.state
                .update_mission(|mission| mission.plan_attempts = attempt);
            let answer = self
                .answer(server, Role::Planner, &lease.id, message)
                .await?;
            let text = prompts::plan_text(&answer);
            write_atomically(todo, &text)?;
            match plan::parse(&text) {
                Ok(plan) => {
                    self.state
                        .set_tasks(plan.tasks.iter().map(TaskRecord::from_plan).collect());
                    return Ok(());
                }
                Err(found) => {
                    errors = found.to_string();
                    tracing::warn!(attempt, %errors, "the plan does not parse");
                    message = prompts::plan_fix_message(&errors);
                }
            }
        }
        Err(OrchestratorError::Plan { attempts, errors })
    }

    /// After a crash or a stop: tasks that were queued are pending again; a task that was running or
    /// being reviewed is adopted if its Worker session still exists on the server (the next run follows it),
    /// else it starts over in a new session.
    async fn recover(&self) -> Result<(), OrchestratorError> {
        for task in self.state.view().tasks.into_values() {
            match &task.status {
                TaskStatus::Queued => {
                    self.state
                        .update_task(&task.id, |task| task.status = TaskStatus::Pending);
                }
                TaskStatus::Running { .. } | TaskStatus::Reviewing { .. } => {
                    let server = task
                        .server
                        .as_deref()
                        .and_then(|url| self.servers.iter().find(|server| server.url == url));
                    let exists = match (&task.worker_session, server) {
                        (Some(session), Some(server)) => {
                            let client = server.monitor.opencode().client();
                            match client.session(session).await {
                                Ok(_) => true,
                                Err(error) if crate::server::is_transient(&error) => {
                                    return Err(OrchestratorError::Opencode {
                                        what: format!("look for session {session}"),
                                        attempts: 1,
                                        message: error.to_string(),
                                    });
                                }
                                Err(_) => false,
                            }
                        }
                        _ => false,
                    };
                    tracing::info!(task = %task.id, adopt = exists, "recovering an interrupted task");
                    self.state.update_task(&task.id, |task| {
                        task.status = TaskStatus::Pending;
                        task.adopt = exists;
                        if !exists {
                            task.worker_session = None;
                        }
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Queues every pending task whose dependencies are done, blocks those with a failed dependency, and
    /// closes the queue once every task is finished.
    fn release_ready(&self, queue: &Queue) {
        let _decide = self.coordination.lock().expect("no panic holds the lock");
        loop {
            let view = self.state.view();
            let mut changed = false;
            let mut ready: Vec<&TaskRecord> = Vec::new();
            for task in view.tasks.values() {
                if task.status != TaskStatus::Pending {
                    continue;
                }
                let mut all_done = true;
                let mut failed = None;
                for dependency in &task.depends {
                    match view.tasks.get(dependency).map(|task| &task.status) {
                        Some(TaskStatus::Done) => {}
                        Some(TaskStatus::Failed { .. } | TaskStatus::Blocked { .. }) | None => {
                            failed = Some(dependency.clone());
                        }
                        Some(_) => all_done = false,
                    }
                }
                if let Some(by) = failed {
                    self.state.update_task(&task.id, |task| {
                        task.status = TaskStatus::Blocked { by: by.clone() };
                    });
                    changed = true;
                } else if all_done {
                    ready.push(task);
                }
            }
            if changed {
                // A block can block others: decide again on the new state.
                continue;
            }
            if self.stop.borrow().is_some() {
                queue.close();
                return;
            }
            ready.sort_by_key(|task| task.priority);
            let ids: Vec<String> = ready.iter().map(|task| task.id.clone()).collect();
            for id in &ids {
                self.state
                    .update_task(id, |task| task.status = TaskStatus::Queued);
            }
            queue.push(ids);
            if self.state.view().all_finished() {
                queue.close();
            }
            return;
        }
    }

    async fn run_task(&self, slot: usize, id: &str) -> Load {
        let mut stop = self.stop.subscribe();
        if stop.borrow().is_some() {
            return Load::Ok;
        }
        let outcome = tokio::select! {
            outcome = self.try_task(slot, id) => outcome,
            // Dropping the task's future cancels its calls and kills a running gate command's process group.
            _ = stop.wait_for(Option::is_some) => Err(OrchestratorError::Interrupted { signal: "stop" }),
        };
        match outcome {
            Ok(load) => load,
            // Left as it was (running or reviewing): `resume` looks at its session.
            Err(OrchestratorError::Interrupted { .. }) => Load::Ok,
            // OpenCode is gone (past the retries and the breaker): no task can go on. The mission stops with
            // this task left running, for `resume` to restart on a server that answers.
            Err(OrchestratorError::ServerDown { url, error }) => {
                // Its server stopped answering: the task goes back to the queue for the others, from the
                // start (its session is on the lost server).
                tracing::error!(task = id, url, %error, "an OpenCode server stopped answering");
                if let Some(server) = self.servers.iter().find(|server| server.url == url) {
                    server.down.store(true, Ordering::Relaxed);
                }
                if self.pick().is_some() {
                    self.state.update_task(id, |task| {
                        task.status = TaskStatus::Pending;
                        task.worker_session = None;
                        task.adopt = false;
                    });
                    return Load::Overloaded;
                }
                let error = OrchestratorError::Opencode {
                    what: format!("run {id} on {url}"),
                    attempts: 0,
                    message: format!("every OpenCode server stopped answering (last: {error})"),
                };
                tracing::error!(task = id, %error, "no OpenCode server left; stopping the mission");
                self.fatal
                    .lock()
                    .expect("no panic holds the lock")
                    .get_or_insert_with(|| {
                        format!(
                            "{error}; continue it with `orchestrator resume {}`",
                            self.state.mission().id
                        )
                    });
                self.stop.send_replace(Some("OpenCode failure"));
                if let Some(queue) = self.queue.lock().expect("no panic holds the lock").as_ref() {
                    queue.close();
                }
                Load::Overloaded
            }
            Err(error) => {
                self.state.update_task(id, |task| {
                    task.status = TaskStatus::Failed {
                        reason: error.to_string(),
                    };
                });
                Load::Overloaded
            }
        }
    }

    async fn try_task(&self, slot: usize, id: &str) -> Result<Load, OrchestratorError> {
        let Some(known) = self.state.task(id) else {
            return Ok(Load::Ok);
        };
        // An adopted task stays on its server if that server is up; anything else goes to the least busy.
        let adopted = known
            .server
            .as_deref()
            .filter(|_| known.adopt)
            .and_then(|url| {
                self.servers
                    .iter()
                    .find(|server| server.url == url && server.is_up())
            });
        let Some(server) = adopted.or_else(|| self.pick()) else {
            return Err(OrchestratorError::ServerDown {
                url: known.server.unwrap_or_default(),
                error: "no OpenCode server is up".to_string(),
            });
        };
        if adopted.is_none() && known.adopt {
            self.state.update_task(id, |task| {
                task.adopt = false;
                task.worker_session = None;
            });
        }
        server.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(server);
        match self.task_on(server, slot, id).await {
            Err(OrchestratorError::Opencode { what, message, .. }) => {
                Err(OrchestratorError::ServerDown {
                    url: server.url.clone(),
                    error: format!("{what}: {message}"),
                })
            }
            other => other,
        }
    }

    async fn task_on(
        &self,
        server: &Server,
        slot: usize,
        id: &str,
    ) -> Result<Load, OrchestratorError> {
        let Some(task) = self.state.update_task(id, |task| {
            task.status = TaskStatus::Running { slot };
            task.runs += 1;
            task.server = Some(server.url.clone());
        }) else {
            return Ok(Load::Ok);
        };
        let done: Vec<TaskRecord> = task
            .depends
            .iter()
            .filter_map(|dependency| self.state.task(dependency))
            .collect();
        let dependencies: Vec<Dependency<'_>> = done
            .iter()
            .map(|dependency| Dependency {
                id: &dependency.id,
                title: &dependency.title,
                result: dependency.result.as_deref().unwrap_or(""),
                files: &dependency.files,
            })
            .collect();
        let conventions = self.state.mission().brief.unwrap_or_default();
        let project = self.config.project.display().to_string();
        let (session, mut adopt, first_attempt) = match (&task.worker_session, task.adopt) {
            (Some(session), true) => (session.clone(), true, task.attempts.max(1)),
            _ => {
                let lease = server
                    .sessions
                    .lease(Role::Worker, &format!("{id} {}", task.title))
                    .await?;
                self.state.update_task(id, |task| {
                    task.sessions.push(lease.id.clone());
                    task.worker_session = Some(lease.id.clone());
                });
                (lease.id, false, task.attempts + 1)
            }
        };
        self.state.update_task(id, |task| task.adopt = false);
        let mut findings: Option<String> = task.findings.clone();
        let attempts = self.config.review_attempts.max(1);
        for attempt in first_attempt..=attempts.max(first_attempt) {
            self.state.update_task(id, |task| {
                task.attempts = attempt;
                task.status = TaskStatus::Running { slot };
            });
            let message = prompts::worker_message(
                id,
                &task.title,
                &task.brief,
                &dependencies,
                &conventions,
                &project,
                findings.as_deref(),
            );
            let report = match self
                .work_turns(server, id, &session, message, adopt)
                .await?
            {
                Work::Done(report) => report,
                Work::Failed { reason, load } => {
                    self.state.update_task(id, |task| {
                        task.status = TaskStatus::Failed {
                            reason: reason.clone(),
                        };
                    });
                    return Ok(load);
                }
            };
            self.state.update_task(id, |task| {
                task.status = TaskStatus::Reviewing { slot };
                task.result = Some(report.clone());
            });
            adopt = false;
            let diff = review::session_diff(server.monitor.opencode(), &session, true).await?;
            let files: Vec<String> = diff.iter().map(|file| file.file.clone()).collect();
            let verdict = review::review(
                &ReviewInput {
                    id,
                    title: &task.title,
                    brief: &task.brief,
                    report: &report,
                    diff: &diff,
                },
                &self.gate,
                &self.config.project,
                &server.sessions,
                &server.monitor,
                &self.config.prompts,
            )
            .await?;
            self.state.update_task(id, |task| {
                for file in &files {
                    if !task.files.contains(file) {
                        task.files.push(file.clone());
                    }
                }
                if let Some(session) = &verdict.session {
                    task.sessions.push(session.clone());
                }
            });
            tracing::info!(task = id, attempt, approved = verdict.approved, gate = %verdict.gate_summary, "reviewed");
            if verdict.approved {
                self.state.update_task(id, |task| {
                    task.status = TaskStatus::Done;
                    task.findings = None;
                });
                return Ok(Load::Ok);
            }
            self.state
                .update_task(id, |task| task.findings = Some(verdict.findings.clone()));
            findings = Some(verdict.findings);
        }
        let last = findings.unwrap_or_default();
        self.state.update_task(id, |task| {
            task.status = TaskStatus::Failed {
                reason: format!(
                    "not approved after {attempts} attempt(s); last findings: {}",
                    first_line(&last)
                ),
            };
        });
        Ok(Load::Ok)
    }

    /// A Worker's turns on one attempt: the task, then nudges while it answers without a status, then a
    /// diagnostic prompt once it repeats itself or stops making progress.
    async fn work_turns(
        &self,
        server: &Server,
        id: &str,
        session: &str,
        message: String,
        adopt: bool,
    ) -> Result<Work, OrchestratorError> {
        let mut message = message;
        let mut previous: Option<String> = None;
        let mut nudges = 0;
        let mut diagnosed = false;
        let mut adopt = adopt;
        loop {
            let end = if std::mem::take(&mut adopt) {
                // The turn an earlier orchestrator started: follow it instead of prompting again.
                server.monitor.adopt(session, true).await?
            } else {
                self.turn(server, session, &self.prompt(Role::Worker, message), true)
                    .await?
            };
            let reason = match end {
                TurnEnd::Answered { text } => match prompts::worker_status(&text) {
                    WorkerStatus::Done(summary) => {
                        return Ok(Work::Done(if summary.is_empty() { text } else { summary }));
                    }
                    WorkerStatus::Blocked(reason) => {
                        return Ok(Work::Failed {
                            reason: format!("the Worker is blocked: {reason}"),
                            load: Load::Ok,
                        });
                    }
                    WorkerStatus::Missing => {
                        let text = text.trim().to_string();
                        let repeated = previous.as_deref() == Some(text.as_str());
                        previous = Some(text);
                        if !repeated && nudges < self.config.nudges {
                            nudges += 1;
                            message = prompts::nudge_message(id);
                            continue;
                        }
                        if repeated {
                            "the model repeated the same output".to_string()
                        } else {
                            format!("no status after {nudges} reminder(s)")
                        }
                    }
                },
                TurnEnd::Stalled => "no progress for the stall time".to_string(),
                TurnEnd::TimedOut => "the turn timed out".to_string(),
                TurnEnd::ModelFailed { message } => {
                    return Ok(Work::Failed {
                        reason: format!("the model failed: {message}"),
                        load: Load::Overloaded,
                    });
                }
            };
            if diagnosed {
                return Ok(Work::Failed {
                    reason: format!("stagnated after a diagnostic prompt: {reason}"),
                    load: Load::Ok,
                });
            }
            diagnosed = true;
            message = prompts::diagnostic_message(id, &reason);
        }
    }
}

enum Work {
    Done(String),
    Failed { reason: String, load: Load },
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// Writes `text` to `path` through a temporary file in the same directory, synced, then renamed over it:
/// a reader sees the old file or the new one, never a part.
///
/// # Errors
///
/// [`OrchestratorError::Io`] naming the file.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), OrchestratorError> {
    use std::io::Write as _;
    let directory = path.parent().unwrap_or(Path::new("."));
    let io = |action, source| OrchestratorError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(directory).map_err(|error| io("create the directory of", error))?;
    let mut file = tempfile::NamedTempFile::new_in(directory)
        .map_err(|error| io("create a temporary file for", error))?;
    file.write_all(text.as_bytes())
        .map_err(|error| io("write", error))?;
    file.as_file()
        .sync_all()
        .map_err(|error| io("sync", error))?;
    file.persist(path)
        .map_err(|error| io("replace", error.error))?;
    Ok(())
}
