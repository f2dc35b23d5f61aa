//! Stage 8, `state`: the mission (its stage, tasks, statuses, attempts, session ids, results) in an
//! [`mvcc_store::Store`]. Every stage writes through serializable transactions and reads by snapshot; the
//! progress view follows the store's change subscription, so it sees every state change once, in commit
//! order.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mvcc_store::{Change, Durability, OpenError, Store, Subscription};
use serde::{Deserialize, Serialize};

use crate::plan::{self, Priority};

/// A task's life in the mission.
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
    /// Approved.
    Done,
    /// Gave up on it.
    Failed {
        /// Why.
        reason: String,
    },
    /// Never run: a task it depends on failed.
    Blocked {
        /// The failed dependency.
        by: String,
    },
}

impl TaskStatus {
    /// Whether the task will not change any more.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            Self::Done | Self::Failed { .. } | Self::Blocked { .. }
        )
    }

    /// A short name: `pending`, `queued`, `running`, `reviewing`, `done`, `failed`, `blocked`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Running { .. } => "running",
            Self::Reviewing { .. } => "reviewing",
            Self::Done => "done",
            Self::Failed { .. } => "failed",
            Self::Blocked { .. } => "blocked",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running { slot } | Self::Reviewing { slot } => {
                write!(f, "{} (slot {slot})", self.name())
            }
            Self::Failed { reason } => write!(f, "failed: {reason}"),
            Self::Blocked { by } => write!(f, "blocked by {by}"),
            _ => f.write_str(self.name()),
        }
    }
}

/// One task of the mission, as the state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// `T1.2`.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The agent the plan names (`Worker` by default).
    pub agent: String,
    /// What it waits for.
    pub depends: Vec<String>,
    /// Its priority.
    pub priority: Priority,
    /// The plan's description and sub-steps, as the Worker is told them.
    pub brief: String,
    /// Where it is.
    pub status: TaskStatus,
    /// How many times a Worker started on it (a failed review starts another attempt).
    pub attempts: u32,
    /// How many times it was taken from the queue by a worker slot (exactly once in a mission that runs
    /// to its end).
    pub runs: u32,
    /// Every OpenCode session that worked on it, oldest first.
    pub sessions: Vec<String>,
    /// The Worker's last report.
    pub result: Option<String>,
    /// The last review's findings, if it asked for changes.
    pub findings: Option<String>,
    /// Files the task's sessions changed.
    pub files: Vec<String>,
    /// The URL of the OpenCode server the task runs on.
    #[serde(default)]
    pub server: Option<String>,
    /// The Worker's session of the current attempt.
    #[serde(default)]
    pub worker_session: Option<String>,
    /// Set by `resume` for a task that was running when the orchestrator stopped and whose Worker session
    /// still exists: the next run follows that session instead of starting over.
    #[serde(default)]
    pub adopt: bool,
}

impl TaskRecord {
    /// The record of a task as the plan describes it, pending.
    pub fn from_plan(task: &plan::Task) -> Self {
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
            status: TaskStatus::Pending,
            attempts: 0,
            runs: 0,
            sessions: Vec::new(),
            result: None,
            findings: None,
            files: Vec::new(),
            server: None,
            worker_session: None,
            adopt: false,
        }
    }
}

/// The stages a mission goes through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Connecting to (or starting) OpenCode.
    Server,
    /// The Commander frames the mission.
    Command,
    /// The Planner writes the plan.
    Plan,
    /// Workers run the tasks, each reviewed as it finishes.
    Work,
    /// Done: the summary is written.
    Finish,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 5] = [
        Stage::Server,
        Stage::Command,
        Stage::Plan,
        Stage::Work,
        Stage::Finish,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Server => "server",
            Stage::Command => "command",
            Stage::Plan => "plan",
            Stage::Work => "work",
            Stage::Finish => "finish",
        }
    }
}

/// How a mission ended, or that it has not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MissionStatus {
    /// Still going.
    Running,
    /// Every task is done.
    Completed,
    /// It ended with tasks failed or blocked.
    Incomplete {
        /// What went wrong.
        reason: String,
    },
    /// It stopped before its end (an error, or a signal).
    Stopped {
        /// Why.
        reason: String,
    },
}

/// The mission as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissionRecord {
    /// Its id.
    pub id: String,
    /// What the user asked for.
    pub text: String,
    /// The project directory.
    pub project: String,
    /// The current stage.
    pub stage: Stage,
    /// How it is going.
    pub status: MissionStatus,
    /// The Commander's brief for the Planner.
    pub brief: Option<String>,
    /// Sessions of the Commander and the Planner.
    pub sessions: Vec<String>,
    /// How many plans the Planner wrote before one parsed.
    pub plan_attempts: u32,
    /// Milliseconds spent in each stage so far.
    pub stage_ms: BTreeMap<Stage, u64>,
    /// When it started (ms since the Unix epoch).
    pub started_ms: u64,
}

/// A value in the mission's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// The mission (key [`MISSION_KEY`]).
    Mission(MissionRecord),
    /// A task (key `task/<id>`).
    Task(TaskRecord),
}

/// A record as the store keeps it: serialized as one JSON string, so the durable log (postcard, which
/// cannot encode internally tagged enums) stores the same JSON the `--json` output shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored(pub Record);

impl Serialize for Stored {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let json = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&json)
    }
}

impl<'de> Deserialize<'de> for Stored {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = String::deserialize(deserializer)?;
        serde_json::from_str(&json)
            .map(Stored)
            .map_err(serde::de::Error::custom)
    }
}

/// The key of the mission record.
pub const MISSION_KEY: &str = "mission";

/// The key of a task's record.
pub fn task_key(id: &str) -> String {
    format!("task/{id}")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The mission's state: a multi-version store shared by every stage.
#[derive(Debug, Clone)]
pub struct MissionState {
    store: Arc<Store<String, Stored>>,
    directory: Option<PathBuf>,
}

/// A consistent view of the whole mission at one version.
#[derive(Debug, Clone)]
pub struct MissionView {
    /// The mission.
    pub mission: MissionRecord,
    /// Its tasks, by id.
    pub tasks: BTreeMap<String, TaskRecord>,
}

impl MissionView {
    /// Tasks in a given status (by name, see [`TaskStatus::name`]).
    pub fn count(&self, status: &str) -> usize {
        self.tasks
            .values()
            .filter(|task| task.status.name() == status)
            .count()
    }

    /// Whether every task is finished.
    pub fn all_finished(&self) -> bool {
        self.tasks.values().all(|task| task.status.is_finished())
    }
}

impl MissionState {
    /// A new mission, in memory only.
    pub fn new(mission: MissionRecord) -> Self {
        Self::init(Store::new(), None, mission)
    }

    /// A new mission kept in `directory` (created): every change is in its log, synced before the commit
    /// returns, so it survives the orchestrator being killed.
    ///
    /// # Errors
    ///
    /// [`StateError`] when the directory cannot be created or already holds a store.
    pub fn create(directory: &Path, mission: MissionRecord) -> Result<Self, StateError> {
        if directory.exists() {
            return Err(StateError::Exists {
                directory: directory.to_path_buf(),
            });
        }
        std::fs::create_dir_all(directory).map_err(|source| StateError::Io {
            directory: directory.to_path_buf(),
            source,
        })?;
        let store =
            Store::open(directory, Durability::Fsync).map_err(|source| StateError::Open {
                directory: directory.to_path_buf(),
                source,
            })?;
        Ok(Self::init(store, Some(directory.to_path_buf()), mission))
    }

    /// Opens the mission kept in `directory`, recovering it from its log.
    ///
    /// # Errors
    ///
    /// [`StateError::Missing`] when there is no mission there; [`StateError::Open`] when it is locked by
    /// another orchestrator or damaged (the error names the file and byte).
    pub fn open(directory: &Path) -> Result<Self, StateError> {
        if !directory.is_dir() {
            return Err(StateError::Missing {
                directory: directory.to_path_buf(),
            });
        }
        let store: Store<String, Stored> =
            Store::open(directory, Durability::Fsync).map_err(|source| StateError::Open {
                directory: directory.to_path_buf(),
                source,
            })?;
        if !matches!(
            store.get(MISSION_KEY).as_deref(),
            Some(Stored(Record::Mission(_)))
        ) {
            return Err(StateError::Corrupt {
                directory: directory.to_path_buf(),
                message: "it holds no mission record".to_string(),
            });
        }
        Ok(Self {
            store: Arc::new(store),
            directory: Some(directory.to_path_buf()),
        })
    }

    fn init(
        store: Store<String, Stored>,
        directory: Option<PathBuf>,
        mission: MissionRecord,
    ) -> Self {
        store
            .put(MISSION_KEY.to_string(), Stored(Record::Mission(mission)))
            .expect("the first write to a new store has nothing to conflict with");
        Self {
            store: Arc::new(store),
            directory,
        }
    }

    /// Where the mission is kept, if it is durable.
    pub fn directory(&self) -> Option<&Path> {
        self.directory.as_deref()
    }

    /// The store itself (the progress view subscribes to it).
    pub fn store(&self) -> &Arc<Store<String, Stored>> {
        &self.store
    }

    /// Every change from now on, in commit order.
    pub fn subscribe(&self) -> Subscription<String, Stored> {
        self.store
            .subscribe::<std::ops::RangeFull>(.., None)
            .expect("a subscription from now on always starts")
    }

    /// The whole mission at one version.
    pub fn view(&self) -> MissionView {
        let snapshot = self.store.snapshot();
        let mut mission = None;
        let mut tasks = BTreeMap::new();
        for (_, Stored(record)) in snapshot.range::<String, _>(..) {
            match record {
                Record::Mission(record) => mission = Some(record.clone()),
                Record::Task(task) => {
                    tasks.insert(task.id.clone(), task.clone());
                }
            }
        }
        MissionView {
            mission: mission.expect("the mission record is written first and never deleted"),
            tasks,
        }
    }

    /// One task.
    pub fn task(&self, id: &str) -> Option<TaskRecord> {
        match self.store.get(&task_key(id)).as_deref() {
            Some(Stored(Record::Task(task))) => Some(task.clone()),
            _ => None,
        }
    }

    /// The mission record.
    pub fn mission(&self) -> MissionRecord {
        match self.store.get(MISSION_KEY).as_deref() {
            Some(Stored(Record::Mission(mission))) => mission.clone(),
            _ => unreachable!("the mission record is written first and never deleted"),
        }
    }

    /// Changes the mission record atomically.
    pub fn update_mission(&self, change: impl Fn(&mut MissionRecord)) {
        loop {
            let mut txn = self.store.begin_serializable();
            let Some(Stored(Record::Mission(mission))) = txn.get(MISSION_KEY) else {
                unreachable!("the mission record is written first and never deleted")
            };
            let mut mission = mission.clone();
            change(&mut mission);
            txn.put(MISSION_KEY.to_string(), Stored(Record::Mission(mission)));
            if txn.commit().is_ok() {
                return;
            }
        }
    }

    /// Adds the tasks of a plan (replacing any earlier plan's).
    pub fn set_tasks(&self, tasks: Vec<TaskRecord>) {
        loop {
            let mut txn = self.store.begin_serializable();
            let old: Vec<String> = txn
                .range::<String, _>("task/".to_string().."task0".to_string())
                .map(|(key, _)| key.clone())
                .collect();
            for key in old {
                txn.delete(key);
            }
            for task in &tasks {
                txn.put(task_key(&task.id), Stored(Record::Task(task.clone())));
            }
            if txn.commit().is_ok() {
                return;
            }
        }
    }

    /// Changes one task atomically and returns it as written; `None` if there is no such task.
    pub fn update_task(&self, id: &str, change: impl Fn(&mut TaskRecord)) -> Option<TaskRecord> {
        let key = task_key(id);
        loop {
            let mut txn = self.store.begin_serializable();
            let Some(Stored(Record::Task(task))) = txn.get(&key) else {
                return None;
            };
            let mut task = task.clone();
            change(&mut task);
            txn.put(key.clone(), Stored(Record::Task(task.clone())));
            if txn.commit().is_ok() {
                return Some(task);
            }
        }
    }

    /// Adds `elapsed` to a stage's time.
    pub fn add_stage_time(&self, stage: Stage, elapsed: Duration) {
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.update_mission(|mission| *mission.stage_ms.entry(stage).or_default() += ms);
    }
}

/// A state change as the progress view and `--json` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StateEvent {
    /// The mission record changed.
    Mission {
        /// The store version of the change.
        version: u64,
        /// The record.
        mission: MissionRecord,
    },
    /// A task changed.
    Task {
        /// The store version of the change.
        version: u64,
        /// The record.
        task: TaskRecord,
    },
}

impl StateEvent {
    /// The event for a change of the store, `None` for a deletion.
    pub fn from_change(change: &Change<String, Stored>) -> Option<Self> {
        let version = change.version.get();
        match &change.value.as_deref()?.0 {
            Record::Mission(mission) => Some(Self::Mission {
                version,
                mission: mission.clone(),
            }),
            Record::Task(task) => Some(Self::Task {
                version,
                task: task.clone(),
            }),
        }
    }
}

/// Why a mission's state could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// No mission is kept there.
    #[error("no mission state in {}", directory.display())]
    Missing {
        /// The directory.
        directory: PathBuf,
    },
    /// A mission is already kept there.
    #[error("{} already holds a mission", directory.display())]
    Exists {
        /// The directory.
        directory: PathBuf,
    },
    /// The store could not be opened: locked by another orchestrator, or damaged.
    #[error("cannot open the mission state in {}: {source}", directory.display())]
    Open {
        /// The directory.
        directory: PathBuf,
        /// Why.
        source: OpenError,
    },
    /// The store opened but does not hold a mission.
    #[error("the mission state in {} is not usable: {message}", directory.display())]
    Corrupt {
        /// The directory.
        directory: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A directory could not be created.
    #[error("cannot create {}: {source}", directory.display())]
    Io {
        /// The directory.
        directory: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Where the missions of a project are kept: `<project>/.opencode/orchestrator/missions/`.
pub fn missions_dir(project: &Path) -> PathBuf {
    project
        .join(".opencode")
        .join("orchestrator")
        .join("missions")
}

/// The missions kept for a project, oldest first (their ids sort by start time).
pub fn mission_ids(project: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(missions_dir(project))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    ids.sort_by_key(|id| (id.len(), id.clone()));
    ids
}
