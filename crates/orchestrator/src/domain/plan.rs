//! The Planner's `.opencode/todo.md`: parsing, validation and the task DAG.
//!
//! The Planner agent writes its plan as Markdown in the "seed" format:
//!
//! ```text
//! # Mission: Build a small text utilities package
//! ## M1: Core functions
//! ### T1.1: Slug function | agent:Worker | depends:T1.2 | priority:high
//! Turn a title into a URL slug.
//! - [ ] write slugify in slug.py
//! - [x] add tests
//! ### [x] T1.2: Word counts | agent:Worker
//! ```
//!
//! - `# ` is the mission title (an optional `Mission:` prefix is dropped); at most one, and optional.
//! - `## M1: Title` opens a milestone; every task belongs to the last milestone seen.
//! - `### T1.2: Title | key:value | …` is a task. The id is `T` followed by numbers separated by dots. The
//!   fields are `agent` (default [`DEFAULT_AGENT`]), `depends` (ids separated by commas or spaces; empty,
//!   `none` or `-` for none) and `priority` (`high`/`medium`/`low`, `h`/`m`/`l` or `p0`/`p1`/`p2`; default
//!   medium). Keys are case-insensitive. An optional status box right after `###` (`### [x] T1.2: …`) sets the
//!   task's status; without one the status follows from its steps (see [`Status::derived_from`]).
//! - `- [ ] text` (or `* [ ] text`) is a step of the current task: `[ ]` todo, `[/]` in progress, `[x]` or
//!   `[X]` done, `[-]` skipped.
//! - Any other line after a task heading is part of that task's description; other free text and blank
//!   lines are ignored.
//!
//! # Lenient in form, strict in meaning
//!
//! The text comes from a language model, so everything that cannot change what gets scheduled is accepted
//! loosely: any indentation (tabs or spaces), CRLF line endings, a byte-order mark, key case, spaces around
//! `:` and several spellings of a priority. Everything that could change the DAG is an error instead of a
//! guess, because a wrong guess runs the wrong work: malformed headings, unknown fields, duplicate ids,
//! unknown dependencies, self-dependencies and cycles. Every error found is reported in one pass, with its
//! 1-based line number and what to write instead, so that each of the Planner's bounded attempts at fixing
//! its file can fix all of them.
//!
//! # Example
//!
//! ```
//! use orchestrator::domain::plan::{self, Priority, Progress, Status};
//!
//! let text = concat!(
//!     "## M1: Core\n",
//!     "### T1: Slugify | priority:high\n",
//!     "- [x] write slug.py\n",
//!     "### T2: Word counts | depends:T1\n",
//! );
//! let plan = plan::parse(text)?;
//! assert_eq!(plan.task("T1").map(|task| task.status), Some(Status::Done));
//! assert_eq!(plan.task("T1").map(|task| task.priority), Some(Priority::High));
//!
//! let nodes = plan.nodes(|task| if task.id == "T1" { Progress::Done } else { Progress::Waiting });
//! assert_eq!(plan::readiness(&nodes).ready, ["T2"]);
//!
//! let errors = plan::parse("### T1: Loop | depends:T1\n").unwrap_err();
//! assert_eq!(errors.to_string(), "line 1: T1 depends on itself; remove T1 from its `depends`");
//! # Ok::<(), plan::PlanErrors>(())
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The agent a task goes to when its heading has no `agent` field.
pub const DEFAULT_AGENT: &str = "Worker";

/// The field keys a task heading accepts (compared case-insensitively).
pub const KNOWN_FIELDS: [&str; 5] = ["agent", "depends", "priority", "files", "changes"];

/// Parses and validates a plan written in the seed format.
///
/// Returns every error found, sorted by line, rather than stopping at the first one.
///
/// ```
/// let plan = orchestrator::domain::plan::parse("# Mission: Tools\n### T1: Slugify\n")?;
/// assert_eq!(plan.title.as_deref(), Some("Tools"));
/// assert_eq!(plan.tasks[0].agent, "Worker");
/// # Ok::<(), orchestrator::domain::plan::PlanErrors>(())
/// ```
pub fn parse(text: &str) -> Result<Plan, PlanErrors> {
    Parser::default().run(text)
}

/// A validated plan: the mission title, its milestones and the task DAG.
///
/// A plan from [`parse`] has unique task ids, only known dependencies and no cycle. A plan built by hand or
/// deserialized has not been checked; [`readiness`] still terminates on one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The mission title from the `# ` line, without its `Mission:` prefix.
    pub title: Option<String>,
    /// The milestones (`## M1: …`) in file order.
    pub milestones: Vec<Milestone>,
    /// The tasks in file order.
    pub tasks: Vec<Task>,
}

/// A group of tasks opened by a `## M1: Title` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Milestone {
    /// The id, `M` followed by numbers separated by dots (`M1`, `M2.1`).
    pub id: String,
    /// The title after `: `.
    pub title: String,
    /// The 1-based line of the heading.
    pub line: usize,
}

/// One unit of work for one agent, opened by a `### T1.2: Title | …` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The id, `T` followed by numbers separated by dots (`T1`, `T1.2`, `T10.3.1`).
    pub id: String,
    /// The title after `: `.
    pub title: String,
    /// The agent that runs the task ([`DEFAULT_AGENT`] unless the heading names one).
    pub agent: String,
    /// The ids of the tasks that must finish first, without repeats, in the order written.
    pub depends: Vec<String>,
    /// How urgent the task is among those ready to run.
    pub priority: Priority,
    /// The files (paths or globs, relative to the project) the task will touch, if the plan declares them:
    /// tasks whose declared files overlap never run at the same time.
    #[serde(default)]
    pub files: Vec<String>,
    /// Whether the task must change the project to be done (`changes:none` for one that only checks or
    /// reports).
    #[serde(default)]
    pub changes: Changes,
    /// The heading's status box if it has one, else the status its steps add up to.
    pub status: Status,
    /// The check-box steps under the heading.
    pub steps: Vec<Step>,
    /// The id of the milestone the task belongs to; `None` before the first milestone heading.
    pub milestone: Option<String>,
    /// The free text lines under the heading, trimmed and joined with `\n`.
    pub description: String,
    /// The 1-based line of the heading.
    pub line: usize,
}

/// A check-box sub-step of a task (`- [ ] write slugify in slug.py`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The text after the box.
    pub text: String,
    /// The status the box shows.
    pub status: Status,
    /// The 1-based line of the step.
    pub line: usize,
}

/// How urgent a task is. Sorts with `High` first, so sorting ascending puts the most urgent work first.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// `high`, `h` or `p0`.
    High,
    /// `medium`, `m` or `p1`; the default.
    #[default]
    Medium,
    /// `low`, `l` or `p2`.
    Low,
}

impl Priority {
    /// The spelling [`Plan::render`] writes: `high`, `medium` or `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }

    /// Reads any accepted spelling, case-insensitively.
    fn from_field(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "high" | "h" | "p0" => Some(Self::High),
            "medium" | "m" | "p1" => Some(Self::Medium),
            "low" | "l" | "p2" => Some(Self::Low),
            _ => None,
        }
    }
}

/// Whether a task must change the project to be done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Changes {
    /// It changes files: a Worker that changed nothing is sent back, then the task fails ("no change").
    #[default]
    Required,
    /// `changes:none`: it only checks or reports; an empty diff is fine.
    None,
}

impl Changes {
    /// The spelling [`Plan::render`] writes: `required` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::None => "none",
        }
    }

    fn from_field(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "none" | "no" => Some(Self::None),
            "required" | "yes" => Some(Self::Required),
            _ => None,
        }
    }
}

/// The progress of a task or a step, as a Markdown check box shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// `[ ]`: not started.
    #[default]
    Todo,
    /// `[/]`: started.
    InProgress,
    /// `[x]` or `[X]`: finished.
    Done,
    /// `[-]`: deliberately not done; counts as finished for dependents.
    Skipped,
}

impl Status {
    /// Whether dependents may start: `Done` or `Skipped`.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Skipped)
    }

    /// The check box [`Plan::render`] writes: `[ ]`, `[/]`, `[x]` or `[-]`.
    pub fn check_box(self) -> &'static str {
        match self {
            Self::Todo => "[ ]",
            Self::InProgress => "[/]",
            Self::Done => "[x]",
            Self::Skipped => "[-]",
        }
    }

    /// The status a task without a status box gets from its steps: `Done` when there is at least one step
    /// and all are done or skipped, `InProgress` when any is in progress or done, `Todo` otherwise.
    pub fn derived_from(steps: &[Step]) -> Self {
        if !steps.is_empty() && steps.iter().all(|step| step.status.is_finished()) {
            Self::Done
        } else if steps
            .iter()
            .any(|step| matches!(step.status, Self::InProgress | Self::Done))
        {
            Self::InProgress
        } else {
            Self::Todo
        }
    }

    /// Reads the character inside a check box.
    fn from_marker(marker: char) -> Option<Self> {
        match marker {
            ' ' => Some(Self::Todo),
            '/' => Some(Self::InProgress),
            'x' | 'X' => Some(Self::Done),
            '-' => Some(Self::Skipped),
            _ => None,
        }
    }
}

impl Plan {
    /// The task with this id (the first one, in a hand-built plan with duplicates).
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|task| task.id == id)
    }

    /// The plan's tasks as [`readiness`] sees them, each with the progress `progress` gives it.
    pub fn nodes(&self, progress: impl Fn(&Task) -> Progress) -> Vec<Node<'_>> {
        self.tasks
            .iter()
            .map(|task| Node {
                id: &task.id,
                depends: &task.depends,
                priority: task.priority,
                progress: progress(task),
            })
            .collect()
    }

    /// Renders the plan back in the seed format (parse(render(p)) == p up to line numbers and description
    /// whitespace): used to write progress back to todo.md.
    ///
    /// Every task gets explicit `agent` and `priority` fields; a status box is written only when the task's
    /// status differs from what its steps add up to. Tasks are grouped under their milestone, so a plan whose
    /// tasks interleave milestones, or name a milestone it does not list (those go before the first
    /// milestone), comes back reordered. The round trip also assumes what [`parse`] guarantees: titles,
    /// agents and ids without `|` or line breaks, non-empty agents, and description lines that do not start
    /// with `#` or a check box.
    pub fn render(&self) -> String {
        self.to_string()
    }

    /// The index of the first task with each id.
    fn index_by_id(&self) -> HashMap<&str, usize> {
        let mut index_of = HashMap::new();
        for (index, task) in self.tasks.iter().enumerate() {
            index_of.entry(task.id.as_str()).or_insert(index);
        }
        index_of
    }
}

/// How far a task has got, as [`readiness`] needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Not started: it runs once its dependencies are done.
    Waiting,
    /// Queued or running.
    Underway,
    /// Done: its dependents may run.
    Done,
    /// Failed, blocked or skipped: its dependents never run.
    Gone,
}

/// One task of the dependency graph, for [`readiness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node<'a> {
    /// Its id.
    pub id: &'a str,
    /// The ids it depends on.
    pub depends: &'a [String],
    /// Its priority.
    pub priority: Priority,
    /// How far it has got.
    pub progress: Progress,
}

/// Whether two tasks' declared files may touch the same file. A path or glob is compared by its literal
/// part, up to its first glob character (`*`, `?`, `[`, `{`): two overlap when one's literal part, taken by
/// whole path components, starts the other's. So `src/*.rs` overlaps `src/lib.rs` and `src`, but `src/a*`
/// does not overlap `tests/x.rs`. It errs on the side of overlap (`*.rs` overlaps every path): a false overlap
/// only runs two tasks one after the other. A task that declares no files overlaps none.
///
/// ```
/// use orchestrator::domain::plan::files_overlap;
///
/// let a = ["src/*.rs".to_string()];
/// assert!(files_overlap(&a, &["src/lib.rs".to_string()]));
/// assert!(!files_overlap(&a, &["tests/x.rs".to_string()]));
/// assert!(!files_overlap(&a, &[]));
/// ```
pub fn files_overlap(a: &[String], b: &[String]) -> bool {
    a.iter()
        .any(|left| b.iter().any(|right| paths_overlap(left, right)))
}

fn paths_overlap(a: &str, b: &str) -> bool {
    let literal = |path: &str| {
        let end = path.find(['*', '?', '[', '{']).unwrap_or(path.len());
        let glob = end < path.len();
        let literal = path[..end].trim_start_matches("./").to_string();
        (literal, glob)
    };
    let ((a, a_glob), (b, b_glob)) = (literal(a), literal(b));
    // A literal part that ends inside a component (`src/a*`) matches names that start with it; a whole path
    // names itself and what is under it.
    let covers = |prefix: &str, glob: bool, path: &str| {
        if glob {
            path.starts_with(prefix)
        } else {
            path == prefix || path.starts_with(&format!("{}/", prefix.trim_end_matches('/')))
        }
    };
    covers(&a, a_glob, &b) || covers(&b, b_glob, &a)
}

/// What can happen next in a dependency graph: see [`readiness`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Waiting tasks whose dependencies are all done, most urgent first, ties in the order given.
    pub ready: Vec<String>,
    /// Waiting tasks that can never run, each with the dependency that stops it (gone, unknown, or itself
    /// skipped here), each after the one that stops it.
    pub skipped: Vec<(String, String)>,
}

/// The one place that decides which tasks may run: a waiting task is ready when every dependency is done,
/// and skipped when a dependency is gone, unknown or skipped (so a failure skips everything downstream of it
/// at once). Tasks on a cycle (only in a plan not from [`parse`]) stay waiting.
///
/// ```
/// use orchestrator::domain::plan::{Node, Priority, Progress, readiness};
///
/// let depends = [String::from("T1")];
/// let nodes = [
///     Node { id: "T1", depends: &[], priority: Priority::Medium, progress: Progress::Gone },
///     Node { id: "T2", depends: &depends, priority: Priority::High, progress: Progress::Waiting },
///     Node { id: "T3", depends: &[], priority: Priority::Low, progress: Progress::Waiting },
/// ];
/// let next = readiness(&nodes);
/// assert_eq!(next.ready, ["T3"]);
/// assert_eq!(next.skipped, [("T2".to_string(), "T1".to_string())]);
/// ```
pub fn readiness(nodes: &[Node<'_>]) -> Readiness {
    let mut progress: HashMap<&str, Progress> = HashMap::new();
    for node in nodes {
        progress.entry(node.id).or_insert(node.progress);
    }
    let mut skipped = Vec::new();
    // A skip makes its dependents skippable: go round until nothing changes (at most one round per level).
    loop {
        let mut changed = false;
        for node in nodes {
            if progress.get(node.id) != Some(&Progress::Waiting) {
                continue;
            }
            let stopped_by = node.depends.iter().find(|dependency| {
                matches!(
                    progress.get(dependency.as_str()),
                    None | Some(Progress::Gone)
                )
            });
            if let Some(dependency) = stopped_by {
                progress.insert(node.id, Progress::Gone);
                skipped.push((node.id.to_string(), dependency.clone()));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let skipped_ids: HashSet<&str> = skipped.iter().map(|(id, _)| id.as_str()).collect();
    let mut ready: Vec<(Priority, usize, &str)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, node)| node.progress == Progress::Waiting && !skipped_ids.contains(node.id))
        .filter(|(_, node)| {
            node.depends
                .iter()
                .all(|dependency| progress.get(dependency.as_str()) == Some(&Progress::Done))
        })
        .map(|(index, node)| (node.priority, index, node.id))
        .collect();
    ready.sort();
    Readiness {
        ready: ready.into_iter().map(|(_, _, id)| id.to_string()).collect(),
        skipped,
    }
}

/// Writes the seed format; see [`Plan::render`].
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut started = false;
        if let Some(title) = &self.title {
            start_block(f, &mut started)?;
            writeln!(f, "# Mission: {title}")?;
        }
        let milestone_ids: HashSet<&str> = self
            .milestones
            .iter()
            .map(|milestone| milestone.id.as_str())
            .collect();
        let outside_milestones = self.tasks.iter().filter(|task| {
            task.milestone
                .as_deref()
                .is_none_or(|id| !milestone_ids.contains(id))
        });
        for task in outside_milestones {
            start_block(f, &mut started)?;
            write_task(f, task)?;
        }
        for milestone in &self.milestones {
            start_block(f, &mut started)?;
            writeln!(f, "## {}: {}", milestone.id, milestone.title)?;
            for task in &self.tasks {
                if task.milestone.as_deref() == Some(milestone.id.as_str()) {
                    start_block(f, &mut started)?;
                    write_task(f, task)?;
                }
            }
        }
        Ok(())
    }
}

/// Separates heading blocks with a blank line, so the file reads well when the Planner opens it again.
fn start_block(f: &mut fmt::Formatter<'_>, started: &mut bool) -> fmt::Result {
    if *started {
        writeln!(f)?;
    }
    *started = true;
    Ok(())
}

fn write_task(f: &mut fmt::Formatter<'_>, task: &Task) -> fmt::Result {
    write!(f, "### ")?;
    if task.status != Status::derived_from(&task.steps) {
        write!(f, "{} ", task.status.check_box())?;
    }
    write!(f, "{}: {} | agent:{}", task.id, task.title, task.agent)?;
    if !task.depends.is_empty() {
        write!(f, " | depends:{}", task.depends.join(", "))?;
    }
    write!(f, " | priority:{}", task.priority.as_str())?;
    if !task.files.is_empty() {
        write!(f, " | files:{}", task.files.join(","))?;
    }
    if task.changes != Changes::default() {
        write!(f, " | changes:{}", task.changes.as_str())?;
    }
    writeln!(f)?;
    for line in task.description.lines().map(str::trim) {
        if !line.is_empty() {
            writeln!(f, "{line}")?;
        }
    }
    for step in &task.steps {
        if step.text.is_empty() {
            writeln!(f, "- {}", step.status.check_box())?;
        } else {
            writeln!(f, "- {} {}", step.status.check_box(), step.text)?;
        }
    }
    Ok(())
}

impl FromStr for Plan {
    type Err = PlanErrors;

    /// Same as [`parse`].
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text)
    }
}

/// One problem in a plan, at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct PlanError {
    /// The 1-based line the problem is on (for a cycle, the line of its first task).
    pub line: usize,
    /// What is wrong, and what to write instead.
    pub kind: PlanErrorKind,
}

/// What is wrong with a line of a plan. Each message says what to write instead, because it is sent back to
/// the Planner agent to fix its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanErrorKind {
    /// A `###` line that is not a well-formed task heading.
    #[error(
        "malformed task heading: {problem}; expected a heading like \
         `### T1.2: Title | agent:Worker | depends:T1.1 | priority:high`"
    )]
    MalformedTaskHeading {
        /// What is wrong with it.
        problem: String,
    },
    /// A `##` line that is not a well-formed milestone heading.
    #[error("malformed milestone heading: {problem}; expected a heading like `## M1: Title`")]
    MalformedMilestoneHeading {
        /// What is wrong with it.
        problem: String,
    },
    /// A second `# ` mission line.
    #[error(
        "second mission title (the first is on line {first_line}); keep a single `# Mission: …` line"
    )]
    DuplicateMission {
        /// The line of the first mission title.
        first_line: usize,
    },
    /// A milestone id used twice.
    #[error(
        "milestone {id} is already defined on line {first_line}; give this milestone another id"
    )]
    DuplicateMilestone {
        /// The repeated id.
        id: String,
        /// The line of the first milestone with that id.
        first_line: usize,
    },
    /// A task id used twice.
    #[error(
        "task {id} is already defined on line {first_line}; give this task another id or merge the two"
    )]
    DuplicateTask {
        /// The repeated id.
        id: String,
        /// The line of the first task with that id.
        first_line: usize,
    },
    /// A heading field whose key is not one of [`KNOWN_FIELDS`].
    #[error("unknown field `{key}`; the known fields are {}", KNOWN_FIELDS.join(", "))]
    UnknownField {
        /// The key as written.
        key: String,
    },
    /// A heading field given twice.
    #[error("field `{key}` appears twice in this heading; keep one")]
    DuplicateField {
        /// The key, lower-cased.
        key: String,
    },
    /// `agent:` with no name.
    #[error(
        "field `agent` is empty; name an agent such as `agent:Worker`, or leave the field out to use Worker"
    )]
    EmptyAgent,
    /// A `priority` value that is not one of the accepted spellings.
    #[error("priority `{value}` is not one of high, medium, low (or h, m, l, or p0, p1, p2)")]
    BadPriority {
        /// The value as written.
        value: String,
    },
    /// A `changes` value other than `none` or `required`.
    #[error("changes `{value}` is not `none` (a task that changes no file) or `required`")]
    BadChanges {
        /// The value as written.
        value: String,
    },
    /// A `files` entry that is empty or leaves the project.
    #[error(
        "`files` lists `{value}`, which is not a path or glob inside the project; list relative paths such as \
         `src/a.rs,tests/*.rs` separated by commas"
    )]
    BadFile {
        /// The entry as written.
        value: String,
    },
    /// A `depends` entry that is not shaped like a task id.
    #[error(
        "`depends` lists `{value}`, which is not a task id; list ids like T1.2 separated by commas, \
         or write `depends:none`"
    )]
    BadDependencyId {
        /// The entry as written.
        value: String,
    },
    /// A dependency on an id no task has.
    #[error("{task} depends on {dependency}, which no task defines")]
    UnknownDependency {
        /// The task whose heading names the dependency.
        task: String,
        /// The id no task has.
        dependency: String,
    },
    /// A task that lists itself in `depends`.
    #[error("{task} depends on itself; remove {task} from its `depends`")]
    SelfDependency {
        /// The task.
        task: String,
    },
    /// Tasks that depend on each other in a loop, so none of them can ever start.
    #[error(
        "dependency cycle: {}; remove one of these dependencies",
        CyclePath(path)
    )]
    Cycle {
        /// The tasks around the loop: each depends on the next, and the last on the first.
        path: Vec<CycleStep>,
    },
    /// A check box before any task heading.
    #[error("the step `{text}` comes before any task; put it under a `### T…` task heading")]
    StepOutsideTask {
        /// The step's text.
        text: String,
    },
    /// A check box with a character that is not a known status.
    #[error(
        "unknown check box `[{marker}]`; use `[ ]` todo, `[/]` in progress, `[x]` done or `[-]` skipped"
    )]
    BadStepMarker {
        /// The character inside the box.
        marker: char,
    },
    /// A plan without a single task heading.
    #[error(
        "the plan has no tasks; add at least one task heading such as `### T1: Title | agent:Worker`"
    )]
    NoTasks,
}

/// One task on a dependency cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleStep {
    /// The task's id.
    pub id: String,
    /// The 1-based line of its heading.
    pub line: usize,
}

/// Displays a cycle as `T1.1 (line 4) -> T1.2 (line 9) -> T1.1`.
struct CyclePath<'a>(&'a [CycleStep]);

impl fmt::Display for CyclePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in self.0 {
            write!(f, "{} (line {}) -> ", step.id, step.line)?;
        }
        match self.0.first() {
            Some(first) => write!(f, "{}", first.id),
            None => Ok(()),
        }
    }
}

/// Every problem [`parse`] found, sorted by line; displays one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", ErrorLines(&self.0))]
pub struct PlanErrors(pub Vec<PlanError>);

/// Displays errors one per line, without a trailing newline.
struct ErrorLines<'a>(&'a [PlanError]);

impl fmt::Display for ErrorLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// What a line of the seed format is, after trimming.
enum Line<'t> {
    Blank,
    Heading { level: HeadingLevel, rest: &'t str },
    Step { marker: char, text: &'t str },
    Text(&'t str),
}

enum HeadingLevel {
    Mission,
    Milestone,
    Task,
}

fn classify(line: &str) -> Line<'_> {
    let line = line.trim();
    if line.is_empty() {
        return Line::Blank;
    }
    let hashes = line.bytes().take_while(|&byte| byte == b'#').count();
    let rest = &line[hashes..];
    // `#tag` and `#### Notes` are text: only `#`, `##` and `###` followed by a space are structure.
    if rest.is_empty() || rest.starts_with(char::is_whitespace) {
        let level = match hashes {
            1 => Some(HeadingLevel::Mission),
            2 => Some(HeadingLevel::Milestone),
            3 => Some(HeadingLevel::Task),
            _ => None,
        };
        if let Some(level) = level {
            return Line::Heading {
                level,
                rest: rest.trim(),
            };
        }
    }
    match check_box_item(line) {
        Some((marker, text)) => Line::Step { marker, text },
        None => Line::Text(line),
    }
}

/// Splits `- [x] text` or `* [x] text` into the box's character and the text.
fn check_box_item(line: &str) -> Option<(char, &str)> {
    let rest = line.strip_prefix(['-', '*'])?.trim_start();
    let rest = rest.strip_prefix('[')?;
    let mut chars = rest.chars();
    let marker = chars.next()?;
    let text = chars.as_str().strip_prefix(']')?;
    // `- [x]done` and `- [a](link)` are not check boxes.
    if !text.is_empty() && !text.starts_with(char::is_whitespace) {
        return None;
    }
    Some((marker, text.trim()))
}

/// `prefix` followed by numbers separated by single dots: `T1`, `T1.2`, `M10.3.1`.
fn is_dotted_id(text: &str, prefix: char) -> bool {
    text.strip_prefix(prefix).is_some_and(|numbers| {
        numbers
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()))
    })
}

fn is_task_id(text: &str) -> bool {
    is_dotted_id(text, 'T')
}

/// Where the lines that follow a heading go.
#[derive(Debug, Default, Clone, Copy)]
enum Current {
    /// Before any task, or after a milestone heading: steps are errors, text is ignored.
    #[default]
    Outside,
    /// Under the task at this index.
    Task(usize),
    /// Under a task heading that was rejected: its lines are dropped, the heading's error says enough.
    Rejected,
}

/// One pass over the lines, then whole-plan checks; errors are collected, never returned early.
#[derive(Default)]
struct Parser {
    plan: Plan,
    errors: Vec<PlanError>,
    mission_line: Option<usize>,
    milestone_lines: HashMap<String, usize>,
    task_lines: HashMap<String, usize>,
    current_milestone: Option<String>,
    current: Current,
    saw_task_heading: bool,
    /// The status box of each task's heading, parallel to `plan.tasks`.
    heading_status: Vec<Option<Status>>,
}

impl Parser {
    fn run(mut self, text: &str) -> Result<Plan, PlanErrors> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            match classify(line) {
                Line::Blank => {}
                Line::Heading { level, rest } => match level {
                    HeadingLevel::Mission => self.mission(line_number, rest),
                    HeadingLevel::Milestone => self.milestone(line_number, rest),
                    HeadingLevel::Task => self.task(line_number, rest),
                },
                Line::Step { marker, text } => self.step(line_number, marker, text),
                Line::Text(text) => self.text(text),
            }
        }
        self.finish()
    }

    fn error(&mut self, line: usize, kind: PlanErrorKind) {
        self.errors.push(PlanError { line, kind });
    }

    fn malformed_task(&mut self, line: usize, problem: String) {
        self.error(line, PlanErrorKind::MalformedTaskHeading { problem });
    }

    /// The paths of a `files` field: separated by commas; `none`, `-` or nothing for none. A path must be
    /// relative and stay inside the project.
    fn files(&mut self, line: usize, value: &str) -> Vec<String> {
        if matches!(value, "" | "-") || value.eq_ignore_ascii_case("none") {
            return Vec::new();
        }
        let mut files = Vec::new();
        for entry in value.split(',').map(str::trim) {
            let inside = !entry.is_empty()
                && !entry.starts_with('/')
                && !entry.split('/').any(|part| part == "..");
            if !inside {
                self.error(
                    line,
                    PlanErrorKind::BadFile {
                        value: entry.to_owned(),
                    },
                );
            } else if !files.iter().any(|file| file == entry) {
                files.push(entry.trim_start_matches("./").to_owned());
            }
        }
        files
    }

    fn malformed_milestone(&mut self, line: usize, problem: String) {
        self.error(line, PlanErrorKind::MalformedMilestoneHeading { problem });
    }

    fn mission(&mut self, line: usize, rest: &str) {
        // A bare `#` is an empty Markdown heading, not a mission.
        if rest.is_empty() {
            return;
        }
        if let Some(first_line) = self.mission_line {
            self.error(line, PlanErrorKind::DuplicateMission { first_line });
            return;
        }
        self.mission_line = Some(line);
        let title = match rest.split_once(':') {
            Some((prefix, title)) if prefix.trim().eq_ignore_ascii_case("mission") => title.trim(),
            _ => rest,
        };
        self.plan.title = (!title.is_empty()).then(|| title.to_owned());
    }

    fn milestone(&mut self, line: usize, rest: &str) {
        // Text after a milestone heading describes the milestone, not the task before it.
        self.current = Current::Outside;
        self.current_milestone = None;
        let Some((id, title)) = rest.split_once(':') else {
            self.malformed_milestone(line, format!("`{rest}` has no `:` after the milestone id"));
            return;
        };
        let (id, title) = (id.trim(), title.trim());
        if !is_dotted_id(id, 'M') {
            self.malformed_milestone(
                line,
                format!(
                    "`{id}` is not a milestone id: use M followed by numbers separated by dots, like M1"
                ),
            );
            return;
        }
        if title.is_empty() {
            self.malformed_milestone(line, format!("the title after `{id}:` is empty"));
        }
        if let Some(&first_line) = self.milestone_lines.get(id) {
            self.error(
                line,
                PlanErrorKind::DuplicateMilestone {
                    id: id.to_owned(),
                    first_line,
                },
            );
            return;
        }
        self.milestone_lines.insert(id.to_owned(), line);
        self.current_milestone = Some(id.to_owned());
        self.plan.milestones.push(Milestone {
            id: id.to_owned(),
            title: title.to_owned(),
            line,
        });
    }

    fn task(&mut self, line: usize, rest: &str) {
        self.saw_task_heading = true;
        self.current = Current::Rejected;
        let mut segments = rest.split('|');
        let head = segments.next().unwrap_or_default().trim();
        let Some((heading_status, head)) = self.status_box(line, head) else {
            return;
        };

        // A heading whose id can be read is kept even when something else is wrong with it, so that tasks
        // depending on it do not also get "no task defines" errors.
        let (id, title) = match head.split_once(':') {
            Some((id, title)) => {
                let (id, title) = (id.trim(), title.trim());
                if id.is_empty() {
                    self.malformed_task(
                        line,
                        "the task id is missing: start with an id like T1.2".to_owned(),
                    );
                } else if !is_task_id(id) {
                    self.malformed_task(
                        line,
                        format!(
                            "`{id}` is not a task id: use T followed by numbers separated by dots, \
                             like T1 or T1.2"
                        ),
                    );
                } else if title.is_empty() {
                    self.malformed_task(line, format!("the title after `{id}:` is empty"));
                }
                (id, title)
            }
            None => {
                let id = head.split_whitespace().next().unwrap_or_default();
                if is_task_id(id) {
                    self.malformed_task(
                        line,
                        format!("missing `:` between the task id {id} and the title"),
                    );
                } else {
                    self.malformed_task(
                        line,
                        format!("`{head}` does not start with a task id and `:`"),
                    );
                }
                (id, "")
            }
        };

        let mut agent = DEFAULT_AGENT.to_owned();
        let mut depends = Vec::new();
        let mut priority = Priority::default();
        let mut files = Vec::new();
        let mut changes = Changes::default();
        let mut seen_keys = HashSet::new();
        for field in segments.map(str::trim).filter(|field| !field.is_empty()) {
            let Some((key, value)) = field.split_once(':') else {
                self.malformed_task(
                    line,
                    format!("`{field}` is not a `key:value` field (a title cannot contain `|`)"),
                );
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            let lower_key = key.to_ascii_lowercase();
            if !seen_keys.insert(lower_key.clone()) {
                self.error(line, PlanErrorKind::DuplicateField { key: lower_key });
                continue;
            }
            match lower_key.as_str() {
                "agent" if value.is_empty() => self.error(line, PlanErrorKind::EmptyAgent),
                "agent" => value.clone_into(&mut agent),
                "depends" => depends = self.dependencies(line, value),
                "priority" => match Priority::from_field(value) {
                    Some(value) => priority = value,
                    None => self.error(
                        line,
                        PlanErrorKind::BadPriority {
                            value: value.to_owned(),
                        },
                    ),
                },
                "changes" => match Changes::from_field(value) {
                    Some(value) => changes = value,
                    None => self.error(
                        line,
                        PlanErrorKind::BadChanges {
                            value: value.to_owned(),
                        },
                    ),
                },
                "files" => files = self.files(line, value),
                _ => self.error(
                    line,
                    PlanErrorKind::UnknownField {
                        key: key.to_owned(),
                    },
                ),
            }
        }

        if !is_task_id(id) {
            return;
        }
        if let Some(&first_line) = self.task_lines.get(id) {
            self.error(
                line,
                PlanErrorKind::DuplicateTask {
                    id: id.to_owned(),
                    first_line,
                },
            );
            return;
        }
        self.task_lines.insert(id.to_owned(), line);
        self.current = Current::Task(self.plan.tasks.len());
        self.heading_status.push(heading_status);
        self.plan.tasks.push(Task {
            id: id.to_owned(),
            title: title.to_owned(),
            agent,
            depends,
            priority,
            files,
            changes,
            status: Status::Todo,
            steps: Vec::new(),
            milestone: self.current_milestone.clone(),
            description: String::new(),
            line,
        });
    }

    /// Splits an optional leading `[x]` off a task heading; `None` when the box is not closed, which leaves
    /// nothing reliable to read the id from.
    fn status_box<'h>(&mut self, line: usize, head: &'h str) -> Option<(Option<Status>, &'h str)> {
        let Some(after_open) = head.strip_prefix('[') else {
            return Some((None, head));
        };
        let Some((inside, rest)) = after_open.split_once(']') else {
            self.malformed_task(
                line,
                "the status box is not closed; use `[ ]`, `[/]`, `[x]` or `[-]` before the id"
                    .to_owned(),
            );
            return None;
        };
        let mut chars = inside.chars();
        let status = match (chars.next(), chars.next()) {
            (Some(marker), None) => Status::from_marker(marker),
            _ => None,
        };
        if status.is_none() {
            self.malformed_task(
                line,
                format!(
                    "`[{inside}]` is not a status box; use `[ ]` todo, `[/]` in progress, `[x]` done \
                     or `[-]` skipped"
                ),
            );
        }
        Some((status, rest.trim_start()))
    }

    /// Reads a `depends` value: ids separated by commas or spaces, or `none`, `-` or nothing.
    fn dependencies(&mut self, line: usize, value: &str) -> Vec<String> {
        let mut depends: Vec<String> = Vec::new();
        if value.eq_ignore_ascii_case("none") || value == "-" {
            return depends;
        }
        let entries = value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty());
        for entry in entries {
            if !is_task_id(entry) {
                self.error(
                    line,
                    PlanErrorKind::BadDependencyId {
                        value: entry.to_owned(),
                    },
                );
            } else if !depends.iter().any(|known| known == entry) {
                depends.push(entry.to_owned());
            }
        }
        depends
    }

    fn step(&mut self, line: usize, marker: char, text: &str) {
        let Some(status) = Status::from_marker(marker) else {
            self.error(line, PlanErrorKind::BadStepMarker { marker });
            return;
        };
        match self.current {
            Current::Task(index) => self.plan.tasks[index].steps.push(Step {
                text: text.to_owned(),
                status,
                line,
            }),
            Current::Rejected => {}
            Current::Outside => self.error(
                line,
                PlanErrorKind::StepOutsideTask {
                    text: text.to_owned(),
                },
            ),
        }
    }

    fn text(&mut self, text: &str) {
        if let Current::Task(index) = self.current {
            let description = &mut self.plan.tasks[index].description;
            if !description.is_empty() {
                description.push('\n');
            }
            description.push_str(text);
        }
    }

    fn finish(mut self) -> Result<Plan, PlanErrors> {
        for (task, heading_status) in self.plan.tasks.iter_mut().zip(&self.heading_status) {
            task.status = heading_status.unwrap_or_else(|| Status::derived_from(&task.steps));
        }
        if !self.saw_task_heading {
            self.error(1, PlanErrorKind::NoTasks);
        }
        self.check_dependencies();
        if self.errors.is_empty() {
            Ok(self.plan)
        } else {
            // Stable, so the errors of one line keep the order they were found in.
            self.errors.sort_by_key(|error| error.line);
            Err(PlanErrors(self.errors))
        }
    }

    /// Reports self-dependencies, unknown dependencies and one cycle per strongly connected component.
    fn check_dependencies(&mut self) {
        let tasks = &self.plan.tasks;
        let index_of = self.plan.index_by_id();
        let mut edges = vec![Vec::new(); tasks.len()];
        for (index, task) in tasks.iter().enumerate() {
            for dependency in &task.depends {
                let kind = if *dependency == task.id {
                    PlanErrorKind::SelfDependency {
                        task: task.id.clone(),
                    }
                } else if let Some(&dependency) = index_of.get(dependency.as_str()) {
                    edges[index].push(dependency);
                    continue;
                } else {
                    PlanErrorKind::UnknownDependency {
                        task: task.id.clone(),
                        dependency: dependency.clone(),
                    }
                };
                self.errors.push(PlanError {
                    line: task.line,
                    kind,
                });
            }
        }
        let component_of = strongly_connected_components(&edges);
        let mut reported = HashSet::new();
        // Walking in file order starts each cycle at its earliest task, so the message is stable.
        for start in 0..tasks.len() {
            let component = component_of[start];
            let on_a_cycle = edges[start]
                .iter()
                .any(|&next| component_of[next] == component);
            if !on_a_cycle || !reported.insert(component) {
                continue;
            }
            let path = shortest_cycle(&edges, start, |node| component_of[node] == component)
                .into_iter()
                .map(|index| CycleStep {
                    id: tasks[index].id.clone(),
                    line: tasks[index].line,
                })
                .collect();
            self.errors.push(PlanError {
                line: tasks[start].line,
                kind: PlanErrorKind::Cycle { path },
            });
        }
    }
}

/// Tarjan's strongly connected components, iterative so a long dependency chain cannot overflow the
/// stack. Returns the component number of each node.
fn strongly_connected_components(edges: &[Vec<usize>]) -> Vec<usize> {
    let mut search = ComponentSearch {
        visit_index: vec![None; edges.len()],
        lowest_reachable: vec![0; edges.len()],
        on_stack: vec![false; edges.len()],
        component_of: vec![0; edges.len()],
        stack: Vec::new(),
        frames: Vec::new(),
        next_visit: 0,
        next_component: 0,
    };
    for root in 0..edges.len() {
        if search.visit_index[root].is_none() {
            search.enter(root);
            search.run(edges);
        }
    }
    search.component_of
}

/// The state of [`strongly_connected_components`].
struct ComponentSearch {
    visit_index: Vec<Option<usize>>,
    lowest_reachable: Vec<usize>,
    on_stack: Vec<bool>,
    component_of: Vec<usize>,
    stack: Vec<usize>,
    /// The explicit call stack: each node being explored and the position of its next edge.
    frames: Vec<(usize, usize)>,
    next_visit: usize,
    next_component: usize,
}

impl ComponentSearch {
    fn enter(&mut self, node: usize) {
        self.visit_index[node] = Some(self.next_visit);
        self.lowest_reachable[node] = self.next_visit;
        self.next_visit += 1;
        self.stack.push(node);
        self.on_stack[node] = true;
        self.frames.push((node, 0));
    }

    fn run(&mut self, edges: &[Vec<usize>]) {
        while let Some(frame) = self.frames.last_mut() {
            let (node, edge) = *frame;
            if let Some(&next) = edges[node].get(edge) {
                frame.1 += 1;
                match self.visit_index[next] {
                    None => self.enter(next),
                    Some(index) if self.on_stack[next] => {
                        self.lowest_reachable[node] = self.lowest_reachable[node].min(index);
                    }
                    Some(_) => {}
                }
                continue;
            }
            self.frames.pop();
            if let Some(&(parent, _)) = self.frames.last() {
                self.lowest_reachable[parent] =
                    self.lowest_reachable[parent].min(self.lowest_reachable[node]);
            }
            if Some(self.lowest_reachable[node]) == self.visit_index[node] {
                while let Some(member) = self.stack.pop() {
                    self.on_stack[member] = false;
                    self.component_of[member] = self.next_component;
                    if member == node {
                        break;
                    }
                }
                self.next_component += 1;
            }
        }
    }
}

/// The shortest loop from `start` back to itself through nodes `inside` accepts (breadth-first), as the
/// list of nodes from `start` to the last one before returning.
fn shortest_cycle(
    edges: &[Vec<usize>],
    start: usize,
    inside: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut came_from: Vec<Option<usize>> = vec![None; edges.len()];
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in &edges[node] {
            if next == start {
                let mut path = vec![node];
                let mut at = node;
                while let Some(previous) = came_from[at] {
                    path.push(previous);
                    at = previous;
                }
                path.reverse();
                return path;
            }
            if inside(next) && came_from[next].is_none() {
                came_from[next] = Some(node);
                queue.push_back(next);
            }
        }
    }
    // Only reached when `start` is on no loop, which the caller rules out.
    vec![start]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use std::collections::BTreeSet;

    /// The parse errors as `(line, kind)` pairs, or a failure showing the plan that parsed.
    fn errors_of(text: &str) -> Vec<(usize, PlanErrorKind)> {
        match parse(text) {
            Ok(plan) => panic!("expected errors, parsed {plan:#?}"),
            Err(PlanErrors(errors)) => errors
                .into_iter()
                .map(|error| (error.line, error.kind))
                .collect(),
        }
    }

    fn parsed(text: &str) -> Plan {
        parse(text).unwrap_or_else(|errors| panic!("{errors}\nin:\n{text}"))
    }

    fn task<'p>(plan: &'p Plan, id: &str) -> &'p Task {
        plan.task(id)
            .unwrap_or_else(|| panic!("no task {id} in {plan:#?}"))
    }

    fn ids<'p>(tasks: &[&'p Task]) -> Vec<&'p str> {
        tasks.iter().map(|task| task.id.as_str()).collect()
    }

    const SEED: &str = "\
# Mission: Build a small text utilities package

The Planner may write free text here.

## M1: Core functions
### T1.1: Slug function | agent:Worker | depends:T1.2 | priority:high
Turn a title into a URL slug.
   Keep it ASCII.
- [ ] write slugify in slug.py
- [x] add tests
More notes after the steps.
### [x] T1.2: Word counts | agent:Worker
## M2: Packaging
Milestone notes are not a task description.
### T2.1: Package it | agent:Packager | depends: T1.1 T1.2 | priority:low
* [/] write pyproject.toml
";

    #[test]
    fn parses_the_seed_example() {
        let plan = parsed(SEED);
        assert_eq!(
            plan.title.as_deref(),
            Some("Build a small text utilities package")
        );
        assert_eq!(
            plan.milestones,
            [
                Milestone {
                    id: "M1".into(),
                    title: "Core functions".into(),
                    line: 5
                },
                Milestone {
                    id: "M2".into(),
                    title: "Packaging".into(),
                    line: 13
                },
            ]
        );
        assert_eq!(
            plan.tasks[0],
            Task {
                id: "T1.1".into(),
                title: "Slug function".into(),
                agent: "Worker".into(),
                depends: vec!["T1.2".into()],
                priority: Priority::High,
                files: Vec::new(),
                changes: Changes::Required,
                status: Status::InProgress,
                steps: vec![
                    Step {
                        text: "write slugify in slug.py".into(),
                        status: Status::Todo,
                        line: 9
                    },
                    Step {
                        text: "add tests".into(),
                        status: Status::Done,
                        line: 10
                    },
                ],
                milestone: Some("M1".into()),
                description:
                    "Turn a title into a URL slug.\nKeep it ASCII.\nMore notes after the steps."
                        .into(),
                line: 6,
            }
        );
        let word_counts = task(&plan, "T1.2");
        assert_eq!(word_counts.status, Status::Done);
        assert_eq!(word_counts.line, 12);
        assert_eq!(word_counts.priority, Priority::Medium);
        assert!(word_counts.steps.is_empty());
        let package = task(&plan, "T2.1");
        assert_eq!(package.agent, "Packager");
        assert_eq!(package.depends, ["T1.1", "T1.2"]);
        assert_eq!(package.priority, Priority::Low);
        assert_eq!(package.milestone.as_deref(), Some("M2"));
        assert_eq!(package.description, "");
        assert_eq!(package.status, Status::InProgress);
        assert_eq!(package.steps[0].line, 16);
        assert_eq!(
            ids(&plan.tasks.iter().collect::<Vec<_>>()),
            ["T1.1", "T1.2", "T2.1"]
        );
    }

    #[test]
    fn from_str_is_parse() {
        let plan: Plan = SEED.parse().unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(plan, parsed(SEED));
        let error = "no tasks here".parse::<Plan>().err();
        assert_eq!(
            error.map(|errors| errors.0),
            Some(vec![PlanError {
                line: 1,
                kind: PlanErrorKind::NoTasks
            }])
        );
    }

    #[test]
    fn mission_prefix_is_optional_and_the_mission_too() {
        assert_eq!(
            parsed("# Text tools\n### T1: A").title.as_deref(),
            Some("Text tools")
        );
        assert_eq!(
            parsed("#   mission :  Text tools\n### T1: A")
                .title
                .as_deref(),
            Some("Text tools")
        );
        assert_eq!(
            parsed("# Mission: Tools: the sequel\n### T1: A")
                .title
                .as_deref(),
            Some("Tools: the sequel")
        );
        assert_eq!(parsed("### T1: A").title, None);
        assert_eq!(parsed("#\n### T1: A").title, None);
    }

    #[test]
    fn a_second_mission_names_the_first() {
        assert_eq!(
            errors_of("# Mission: A\n### T1: A\n\n# Mission: B"),
            [(4, PlanErrorKind::DuplicateMission { first_line: 1 })]
        );
    }

    #[test]
    fn indentation_never_matters() {
        let indented = "\
\t# Mission: Tabs
        ## M1: Deep
\t\t\t### T1: First | agent : Worker
  \t  Described.
\t- [x] done
                    * [ ] todo
    ### [-] T2: Second | depends:T1
";
        let flat: String = indented
            .lines()
            .map(|line| format!("{}\n", line.trim()))
            .collect();
        let plan = parsed(indented);
        assert_eq!(plan, parsed(&flat));
        assert_eq!(plan.title.as_deref(), Some("Tabs"));
        assert_eq!(plan.milestones[0].id, "M1");
        let first = task(&plan, "T1");
        assert_eq!(first.description, "Described.");
        assert_eq!(first.steps.len(), 2);
        assert_eq!(first.milestone.as_deref(), Some("M1"));
        assert_eq!(task(&plan, "T2").status, Status::Skipped);
        assert_eq!(task(&plan, "T2").line, 7);
    }

    #[test]
    fn crlf_line_endings_and_a_byte_order_mark_are_accepted() {
        let unix = "# Mission: X\n## M1: Y\n### T1: A | priority:h\nText\n- [x] s\n### T2: B | depends:T1\n";
        let windows = format!("\u{feff}{}", unix.replace('\n', "\r\n"));
        let plan = parsed(&windows);
        assert_eq!(plan, parsed(unix));
        assert_eq!(task(&plan, "T1").description, "Text");
        assert_eq!(task(&plan, "T1").steps[0].text, "s");
        assert_eq!(task(&plan, "T2").line, 6);
        assert_eq!(
            errors_of("### T1: A\r\n\r\n### T1: B\r\n"),
            [(
                3,
                PlanErrorKind::DuplicateTask {
                    id: "T1".into(),
                    first_line: 1
                }
            )]
        );
    }

    #[test]
    fn heading_status_box_overrides_the_steps() {
        for (heading, status) in [
            ("### [ ] T1: A", Status::Todo),
            ("### [/] T1: A", Status::InProgress),
            ("### [x] T1: A", Status::Done),
            ("### [X] T1: A", Status::Done),
            ("### [-] T1: A", Status::Skipped),
            ("###   [x]   T1: A", Status::Done),
        ] {
            let text = format!("{heading}\n- [x] one\n- [/] two");
            assert_eq!(task(&parsed(&text), "T1").status, status, "{heading}");
        }
    }

    #[test]
    fn status_derives_from_steps_without_a_box() {
        use Status::{Done, InProgress, Skipped, Todo};
        for (steps, expected) in [
            (&[][..], Todo),
            (&[Todo][..], Todo),
            (&[Todo, Skipped][..], Todo),
            (&[Todo, Done][..], InProgress),
            (&[Todo, InProgress][..], InProgress),
            (&[Done, InProgress][..], InProgress),
            (&[Done][..], Done),
            (&[Done, Skipped][..], Done),
            (&[Skipped][..], Done),
        ] {
            let mut text = String::from("### T1: A\n");
            for status in steps {
                text.push_str(&format!("- {} step\n", status.check_box()));
            }
            assert_eq!(task(&parsed(&text), "T1").status, expected, "{steps:?}");
        }
    }

    #[test]
    fn step_markers_and_bullets() {
        let plan = parsed(
            "### T1: A\n- [ ] a\n- [/] b\n- [x] c\n- [X] d\n- [-] e\n* [x] f\n-[ ]  g  \n- [ ]\n",
        );
        let steps: Vec<(&str, Status)> = task(&plan, "T1")
            .steps
            .iter()
            .map(|step| (step.text.as_str(), step.status))
            .collect();
        assert_eq!(
            steps,
            [
                ("a", Status::Todo),
                ("b", Status::InProgress),
                ("c", Status::Done),
                ("d", Status::Done),
                ("e", Status::Skipped),
                ("f", Status::Done),
                ("g", Status::Todo),
                ("", Status::Todo),
            ]
        );
    }

    #[test]
    fn lines_that_only_look_like_structure_are_description() {
        let plan = parsed(
            "### T1: A\n- a plain bullet\n#### Notes\n#hashtag\n- [link](http://x)\n- [x]glued\n",
        );
        assert!(task(&plan, "T1").steps.is_empty());
        assert_eq!(
            task(&plan, "T1").description,
            "- a plain bullet\n#### Notes\n#hashtag\n- [link](http://x)\n- [x]glued"
        );
    }

    #[test]
    fn fields_are_forgiving_in_form() {
        let plan = parsed(
            "### T1: A\n### T2: B\n### T3: C\n\
             ### T4: Fields | AGENT : Reviewer |Depends:T1,T2 T3| PRIORITY:Low\n\
             ### T5: Defaults\n\
             ### T6: Empty fields | depends: | |\n\
             ### T7: None | depends: none\n\
             ### T8: Dash | depends:-\n\
             ### T9: Repeats | depends:T1, T1 ,T2\n\
             ### T10: Title: with a colon | agent:Planner\n",
        );
        let fields = task(&plan, "T4");
        assert_eq!(fields.agent, "Reviewer");
        assert_eq!(fields.depends, ["T1", "T2", "T3"]);
        assert_eq!(fields.priority, Priority::Low);
        let defaults = task(&plan, "T5");
        assert_eq!(defaults.agent, DEFAULT_AGENT);
        assert_eq!(defaults.priority, Priority::Medium);
        assert!(defaults.depends.is_empty());
        for id in ["T6", "T7", "T8"] {
            assert!(task(&plan, id).depends.is_empty(), "{id}");
        }
        assert_eq!(task(&plan, "T9").depends, ["T1", "T2"]);
        assert_eq!(task(&plan, "T10").title, "Title: with a colon");
        assert_eq!(task(&plan, "T10").agent, "Planner");
    }

    #[test]
    fn every_priority_spelling() {
        for (value, priority) in [
            ("high", Priority::High),
            ("HIGH", Priority::High),
            ("h", Priority::High),
            ("P0", Priority::High),
            ("medium", Priority::Medium),
            ("M", Priority::Medium),
            ("p1", Priority::Medium),
            ("low", Priority::Low),
            ("l", Priority::Low),
            ("p2", Priority::Low),
        ] {
            let plan = parsed(&format!("### T1: A | priority:{value}"));
            assert_eq!(task(&plan, "T1").priority, priority, "{value}");
        }
    }

    #[test]
    fn bad_priority_is_an_error() {
        assert_eq!(
            errors_of("### T1: A\n### T2: B | priority:urgent\n### T3: C | priority:"),
            [
                (
                    2,
                    PlanErrorKind::BadPriority {
                        value: "urgent".into()
                    }
                ),
                (3, PlanErrorKind::BadPriority { value: "".into() }),
            ]
        );
    }

    #[test]
    fn unknown_field_names_the_key_and_the_known_ones() {
        let errors = parse("### T1: A | owner:bob")
            .err()
            .map(|errors| errors.to_string());
        assert_eq!(
            errors.as_deref(),
            Some(
                "line 1: unknown field `owner`; the known fields are agent, depends, priority, files, changes"
            )
        );
    }

    #[test]
    fn other_field_errors() {
        assert_eq!(
            errors_of(
                "### T1: A | agent:\n### T2: B | agent:X | Agent:Y\n### T3: C | depends:T1, step-2\n### T4: D | urgent"
            ),
            [
                (1, PlanErrorKind::EmptyAgent),
                (
                    2,
                    PlanErrorKind::DuplicateField {
                        key: "agent".into()
                    }
                ),
                (
                    3,
                    PlanErrorKind::BadDependencyId {
                        value: "step-2".into()
                    }
                ),
                (
                    4,
                    PlanErrorKind::MalformedTaskHeading {
                        problem: "`urgent` is not a `key:value` field (a title cannot contain `|`)"
                            .into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn malformed_task_headings_say_what_was_expected() {
        let cases = [
            (
                "### Slug function",
                "`Slug function` does not start with a task id and `:`",
            ),
            (
                "### T1.1 Slug function",
                "missing `:` between the task id T1.1 and the title",
            ),
            (
                "### Task 1: Slug",
                "`Task 1` is not a task id: use T followed by numbers separated by dots, like T1 or T1.2",
            ),
            (
                "### T1..2: Slug",
                "`T1..2` is not a task id: use T followed by numbers separated by dots, like T1 or T1.2",
            ),
            (
                "### t1: Slug",
                "`t1` is not a task id: use T followed by numbers separated by dots, like T1 or T1.2",
            ),
            (
                "### T1.: Slug",
                "`T1.` is not a task id: use T followed by numbers separated by dots, like T1 or T1.2",
            ),
            (
                "### : Slug",
                "the task id is missing: start with an id like T1.2",
            ),
            ("### T1:", "the title after `T1:` is empty"),
            ("###", "`` does not start with a task id and `:`"),
            (
                "### [?] T1: Slug",
                "`[?]` is not a status box; use `[ ]` todo, `[/]` in progress, `[x]` done or `[-]` skipped",
            ),
            (
                "### [] T1: Slug",
                "`[]` is not a status box; use `[ ]` todo, `[/]` in progress, `[x]` done or `[-]` skipped",
            ),
            (
                "### [x T1: Slug",
                "the status box is not closed; use `[ ]`, `[/]`, `[x]` or `[-]` before the id",
            ),
        ];
        for (heading, problem) in cases {
            let text = format!("## M1: Core\n{heading}\n- [ ] a step of the rejected task\n");
            let errors = parse(&text).err().map(|errors| errors.to_string());
            let expected = format!(
                "line 2: malformed task heading: {problem}; expected a heading like \
                 `### T1.2: Title | agent:Worker | depends:T1.1 | priority:high`"
            );
            assert_eq!(errors, Some(expected), "{heading}");
        }
    }

    #[test]
    fn malformed_and_duplicate_milestones() {
        assert_eq!(
            errors_of("## Milestone one\n## Core: things\n## M1:\n## M2: A\n## M2: B\n### T1: A"),
            [
                (
                    1,
                    PlanErrorKind::MalformedMilestoneHeading {
                        problem: "`Milestone one` has no `:` after the milestone id".into()
                    }
                ),
                (
                    2,
                    PlanErrorKind::MalformedMilestoneHeading {
                        problem: "`Core` is not a milestone id: use M followed by numbers separated by dots, like M1".into()
                    }
                ),
                (
                    3,
                    PlanErrorKind::MalformedMilestoneHeading {
                        problem: "the title after `M1:` is empty".into()
                    }
                ),
                (
                    5,
                    PlanErrorKind::DuplicateMilestone {
                        id: "M2".into(),
                        first_line: 4
                    }
                ),
            ]
        );
    }

    #[test]
    fn duplicate_task_names_the_first_line() {
        let errors = parse("### T1: A\n### T2: B\n\n### T1: C\n- [ ] dropped")
            .err()
            .map(|errors| errors.to_string());
        assert_eq!(
            errors.as_deref(),
            Some(
                "line 4: task T1 is already defined on line 1; give this task another id or merge the two"
            )
        );
    }

    #[test]
    fn unknown_dependency_message() {
        let text = "## M1: A\n### T1.1: A\n### T1.2: B\n\n\n\n### T1.3: C | depends:T1.1, T9.9\n";
        let errors = parse(text).err().map(|errors| errors.to_string());
        assert_eq!(
            errors.as_deref(),
            Some("line 7: T1.3 depends on T9.9, which no task defines")
        );
    }

    #[test]
    fn self_dependency_is_an_error() {
        assert_eq!(
            errors_of("### T1: A\n### T2: B | depends:T1,T2"),
            [(2, PlanErrorKind::SelfDependency { task: "T2".into() })]
        );
    }

    #[test]
    fn two_task_cycle_names_the_path_with_lines() {
        let text = "# Mission: M\n\n## M1: Loop\n### T1.1: First | depends:T1.2\nText\n- [ ] s\n\n\n### T1.2: Second | depends:T1.1\n";
        let errors = parse(text).err().map(|errors| errors.to_string());
        assert_eq!(
            errors.as_deref(),
            Some(
                "line 4: dependency cycle: T1.1 (line 4) -> T1.2 (line 9) -> T1.1; \
                 remove one of these dependencies"
            )
        );
    }

    #[test]
    fn each_separate_cycle_is_reported_from_its_earliest_task() {
        let text = "\
### T1: Outside
### T2: A | depends:T4
### T3: B | depends:T2
### T4: C | depends:T3, T1
### T5: D | depends:T6
### T6: E | depends:T5
### T7: Behind a cycle | depends:T5
";
        let step = |id: &str, line| CycleStep {
            id: id.into(),
            line,
        };
        assert_eq!(
            errors_of(text),
            [
                (
                    2,
                    PlanErrorKind::Cycle {
                        path: vec![step("T2", 2), step("T4", 4), step("T3", 3)]
                    }
                ),
                (
                    5,
                    PlanErrorKind::Cycle {
                        path: vec![step("T5", 5), step("T6", 6)]
                    }
                ),
            ]
        );
    }

    #[test]
    fn the_shortest_loop_through_the_first_task_is_named() {
        // T1 -> T2 -> T3 -> T1 and T1 -> T3 -> T1 share a component; the shorter one is the clearer fix.
        let text = "### T1: A | depends:T2, T3\n### T2: B | depends:T3\n### T3: C | depends:T1\n";
        let errors = parse(text).err().map(|errors| errors.to_string());
        assert_eq!(
            errors.as_deref(),
            Some(
                "line 1: dependency cycle: T1 (line 1) -> T3 (line 3) -> T1; \
                 remove one of these dependencies"
            )
        );
    }

    #[test]
    fn a_step_before_any_task_is_an_error() {
        assert_eq!(
            errors_of(
                "# Mission: X\n- [ ] orphan\n## M1: Y\n* [x] also orphan\n### T1: A\n- [ ] fine"
            ),
            [
                (
                    2,
                    PlanErrorKind::StepOutsideTask {
                        text: "orphan".into()
                    }
                ),
                (
                    4,
                    PlanErrorKind::StepOutsideTask {
                        text: "also orphan".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn an_unknown_check_box_is_an_error() {
        assert_eq!(
            errors_of("### T1: A\n- [?] what"),
            [(2, PlanErrorKind::BadStepMarker { marker: '?' })]
        );
    }

    #[test]
    fn a_plan_without_tasks_is_an_error() {
        for text in [
            "",
            "\n\n",
            "# Mission: Empty\n## M1: Nothing yet\nJust prose.\n",
        ] {
            assert_eq!(errors_of(text), [(1, PlanErrorKind::NoTasks)], "{text:?}");
        }
        // A rejected task heading is reported as what it is, not as a missing task.
        assert_eq!(
            errors_of("### Slug"),
            [(
                1,
                PlanErrorKind::MalformedTaskHeading {
                    problem: "`Slug` does not start with a task id and `:`".into()
                }
            )]
        );
    }

    #[test]
    fn all_errors_are_reported_at_once_in_line_order() {
        let text = "\
# Mission: X
- [ ] stray step
## M1: Core
### T1.1: A | agent:Worker | priority:urgent
### T1.1: Again
### T1.2: B | depends:T9.9 | owner:bob
### T1.3 C
### T1.4: D | depends:T1.4
### T1.5: E | depends:T1.6
### T1.6: F | depends:T1.5
# Mission: Y
";
        let errors = parse(text).err().map(|errors| errors.to_string());
        let expected = "\
line 2: the step `stray step` comes before any task; put it under a `### T…` task heading
line 4: priority `urgent` is not one of high, medium, low (or h, m, l, or p0, p1, p2)
line 5: task T1.1 is already defined on line 4; give this task another id or merge the two
line 6: unknown field `owner`; the known fields are agent, depends, priority, files, changes
line 6: T1.2 depends on T9.9, which no task defines
line 7: malformed task heading: missing `:` between the task id T1.3 and the title; expected a heading like `### T1.2: Title | agent:Worker | depends:T1.1 | priority:high`
line 8: T1.4 depends on itself; remove T1.4 from its `depends`
line 9: dependency cycle: T1.5 (line 9) -> T1.6 (line 10) -> T1.5; remove one of these dependencies
line 11: second mission title (the first is on line 1); keep a single `# Mission: …` line";
        assert_eq!(errors.as_deref(), Some(expected));
    }

    #[test]
    fn tasks_join_the_last_milestone_seen() {
        let plan = parsed("### T0: Loose\n## M1: A\n### T1: X\n### T2: Y\n## M1.1: B\n### T3: Z\n");
        let milestones: Vec<Option<&str>> = plan
            .tasks
            .iter()
            .map(|task| task.milestone.as_deref())
            .collect();
        assert_eq!(milestones, [None, Some("M1"), Some("M1"), Some("M1.1")]);
    }

    #[test]
    fn text_outside_tasks_is_ignored() {
        let plan =
            parsed("Intro\n### T1: A\n  first  \n\n\t second\n## M1: B\nAbout M1.\n### T2: C\n");
        assert_eq!(task(&plan, "T1").description, "first\nsecond");
        assert_eq!(task(&plan, "T2").description, "");
    }

    #[test]
    fn ready_tasks_by_priority_then_file_order() {
        let plan = parsed(
            "\
### T1: Root
### T2: Low | depends:T1 | priority:low
### T3: High | depends:T1 | priority:high
### T4: Done already | priority:high
### T5: Needs T4 | depends:T4
### T6: Needs T2 and T3 | depends:T2,T3
",
        );
        let ready = |done: &[&str]| {
            let nodes = plan.nodes(|task| {
                if done.contains(&task.id.as_str()) {
                    Progress::Done
                } else {
                    Progress::Waiting
                }
            });
            readiness(&nodes).ready
        };
        assert_eq!(ready(&["T4"]), ["T1", "T5"]);
        assert_eq!(ready(&["T1", "T4"]), ["T3", "T5", "T2"]);
        assert_eq!(ready(&["T1", "T2", "T3", "T4", "T5"]), ["T6"]);
        assert!(ready(&["T1", "T2", "T3", "T4", "T5", "T6"]).is_empty());
    }

    #[test]
    fn files_and_changes_fields() {
        let plan = parsed(
            "### T1: Lib | files:src/lib.rs, tests/*.rs\n### T2: Check | changes:none | files:none\n",
        );
        assert_eq!(task(&plan, "T1").files, ["src/lib.rs", "tests/*.rs"]);
        assert_eq!(task(&plan, "T1").changes, Changes::Required);
        assert!(task(&plan, "T2").files.is_empty());
        assert_eq!(task(&plan, "T2").changes, Changes::None);
        assert!(plan.render().contains(
            "### T1: Lib | agent:Worker | priority:medium | files:src/lib.rs,tests/*.rs"
        ));
        assert_eq!(
            errors_of("### T1: A | files:/etc/passwd,../up,ok.rs | changes:maybe\n"),
            [
                (
                    1,
                    PlanErrorKind::BadFile {
                        value: "/etc/passwd".into()
                    }
                ),
                (
                    1,
                    PlanErrorKind::BadFile {
                        value: "../up".into()
                    }
                ),
                (
                    1,
                    PlanErrorKind::BadChanges {
                        value: "maybe".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_gone_task_skips_everything_downstream_and_nothing_else() {
        let plan = parsed(
            "\
### T1: Root
### T2: After T1 | depends:T1
### T3: After T2 | depends:T2
### T4: Independent
### T5: After T4 and T3 | depends:T4,T3
",
        );
        let nodes = plan.nodes(|task| match task.id.as_str() {
            "T1" => Progress::Gone,
            "T4" => Progress::Underway,
            _ => Progress::Waiting,
        });
        let next = readiness(&nodes);
        assert!(next.ready.is_empty());
        let skipped: Vec<(&str, &str)> = next
            .skipped
            .iter()
            .map(|(id, by)| (id.as_str(), by.as_str()))
            .collect();
        assert_eq!(skipped, [("T2", "T1"), ("T3", "T2"), ("T5", "T3")]);
    }

    #[test]
    fn render_writes_the_seed_format() {
        let mut plan = parsed(SEED);
        plan.tasks[2].status = Status::Done;
        let expected = "\
# Mission: Build a small text utilities package

## M1: Core functions

### T1.1: Slug function | agent:Worker | depends:T1.2 | priority:high
Turn a title into a URL slug.
Keep it ASCII.
More notes after the steps.
- [ ] write slugify in slug.py
- [x] add tests

### [x] T1.2: Word counts | agent:Worker | priority:medium

## M2: Packaging

### [x] T2.1: Package it | agent:Packager | depends:T1.1, T1.2 | priority:low
- [/] write pyproject.toml
";
        assert_eq!(plan.render(), expected);
        assert_eq!(without_lines(parsed(expected)), without_lines(plan));
    }

    #[test]
    fn render_puts_tasks_of_unlisted_milestones_first() {
        let mut plan = parsed("## M1: A\n### T1: X\n### T2: Y\n");
        plan.tasks[1].milestone = Some("M9".into());
        assert_eq!(
            plan.render(),
            "### T2: Y | agent:Worker | priority:medium\n\n## M1: A\n\n### T1: X | agent:Worker | priority:medium\n"
        );
    }

    #[test]
    fn priority_sorts_high_first_and_finished_statuses() {
        let mut priorities = vec![Priority::Low, Priority::High, Priority::Medium];
        priorities.sort();
        assert_eq!(
            priorities,
            [Priority::High, Priority::Medium, Priority::Low]
        );
        assert_eq!(Priority::default(), Priority::Medium);
        let finished: Vec<bool> = [
            Status::Todo,
            Status::InProgress,
            Status::Done,
            Status::Skipped,
        ]
        .into_iter()
        .map(Status::is_finished)
        .collect();
        assert_eq!(finished, [false, false, true, true]);
    }

    #[test]
    fn serde_uses_snake_case_and_round_trips() -> Result<(), serde_json::Error> {
        assert_eq!(
            serde_json::to_string(&Status::InProgress)?,
            "\"in_progress\""
        );
        assert_eq!(serde_json::to_string(&Priority::High)?, "\"high\"");
        let plan = parsed(SEED);
        let json = serde_json::to_string(&plan)?;
        assert_eq!(serde_json::from_str::<Plan>(&json)?, plan);
        Ok(())
    }

    fn without_lines(mut plan: Plan) -> Plan {
        for milestone in &mut plan.milestones {
            milestone.line = 0;
        }
        for task in &mut plan.tasks {
            task.line = 0;
            for step in &mut task.steps {
                step.line = 0;
            }
        }
        plan
    }

    fn any_status() -> impl Strategy<Value = Status> {
        prop_oneof![
            Just(Status::Todo),
            Just(Status::InProgress),
            Just(Status::Done),
            Just(Status::Skipped),
        ]
    }

    fn any_priority() -> impl Strategy<Value = Priority> {
        prop_oneof![
            Just(Priority::High),
            Just(Priority::Medium),
            Just(Priority::Low)
        ]
    }

    fn task_id() -> impl Strategy<Value = String> {
        prop::collection::vec(0_u16..40, 1..4).prop_map(|numbers| {
            let numbers: Vec<String> = numbers.iter().map(u16::to_string).collect();
            format!("T{}", numbers.join("."))
        })
    }

    /// One-line text that parses back as itself: trimmed, no `|`, not starting like structure.
    fn words() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9 ,.:()'/-]{0,24}".prop_map(|text| text.trim().to_owned())
    }

    #[derive(Debug, Clone)]
    struct TaskShape {
        title: String,
        agent: String,
        dependencies: Vec<Index>,
        priority: Priority,
        status: Status,
        steps: Vec<(String, Status)>,
        description: Vec<String>,
        milestone: Index,
        files: Vec<String>,
        changes: Changes,
    }

    fn task_shape() -> impl Strategy<Value = TaskShape> {
        (
            (
                words(),
                "[A-Z][a-z]{0,8}",
                prop::collection::vec(any::<Index>(), 0..4),
                any_priority(),
                any_status(),
            ),
            prop::collection::vec((words(), any_status()), 0..4),
            prop::collection::vec(words(), 0..3),
            any::<Index>(),
            prop::collection::btree_set("[a-z]{1,6}(/[a-z*]{1,6}){0,2}(\\.rs)?", 0..3),
            prop_oneof![Just(Changes::Required), Just(Changes::None)],
        )
            .prop_map(
                |(
                    (title, agent, dependencies, priority, status),
                    steps,
                    description,
                    milestone,
                    files,
                    changes,
                )| {
                    TaskShape {
                        title,
                        agent,
                        dependencies,
                        priority,
                        status,
                        steps,
                        description,
                        milestone,
                        files: files.into_iter().collect(),
                        changes,
                    }
                },
            )
    }

    /// A valid plan (no line numbers) whose tasks only depend on earlier ones.
    fn dag_plan(min_tasks: usize) -> impl Strategy<Value = Plan> {
        let ids = prop::collection::btree_set(task_id(), min_tasks..12)
            .prop_map(|ids: BTreeSet<String>| ids.into_iter().collect::<Vec<_>>())
            .prop_shuffle();
        (
            ids,
            prop::option::of(words()),
            prop::collection::vec(words(), 0..4),
        )
            .prop_flat_map(|(ids, title, milestone_titles)| {
                let shapes = prop::collection::vec(task_shape(), ids.len());
                (Just(ids), Just(title), Just(milestone_titles), shapes)
            })
            .prop_map(|(ids, title, milestone_titles, shapes)| {
                let milestones: Vec<Milestone> = milestone_titles
                    .into_iter()
                    .enumerate()
                    .map(|(index, title)| Milestone {
                        id: format!("M{}", index + 1),
                        title,
                        line: 0,
                    })
                    .collect();
                // Milestone slots must not decrease along the file: 0 is "before any milestone".
                let mut slots: Vec<usize> = shapes
                    .iter()
                    .map(|shape| shape.milestone.index(milestones.len() + 1))
                    .collect();
                slots.sort_unstable();
                let tasks = shapes
                    .into_iter()
                    .zip(slots)
                    .enumerate()
                    .map(|(index, (shape, slot))| {
                        let mut depends: Vec<String> = Vec::new();
                        if index > 0 {
                            for dependency in &shape.dependencies {
                                let id = &ids[dependency.index(index)];
                                if !depends.contains(id) {
                                    depends.push(id.clone());
                                }
                            }
                        }
                        Task {
                            id: ids[index].clone(),
                            title: shape.title,
                            agent: shape.agent,
                            depends,
                            priority: shape.priority,
                            files: shape.files,
                            changes: shape.changes,
                            status: shape.status,
                            steps: shape
                                .steps
                                .into_iter()
                                .map(|(text, status)| Step {
                                    text,
                                    status,
                                    line: 0,
                                })
                                .collect(),
                            milestone: slot.checked_sub(1).map(|slot| milestones[slot].id.clone()),
                            description: shape.description.join("\n"),
                            line: 0,
                        }
                    })
                    .collect();
                Plan {
                    title,
                    milestones,
                    tasks,
                }
            })
    }

    fn parse_for_proptest(text: &str) -> Result<Plan, TestCaseError> {
        parse(text).map_err(|errors| TestCaseError::fail(format!("{errors}\nin:\n{text}")))
    }

    proptest! {
        #[test]
        fn render_then_parse_round_trips(plan in dag_plan(1)) {
            let text = plan.render();
            let reparsed = parse_for_proptest(&text)?;
            prop_assert_eq!(reparsed.render(), text);
            prop_assert_eq!(without_lines(reparsed), plan);
        }

        #[test]
        fn indentation_and_crlf_do_not_change_the_parse(
            plan in dag_plan(1),
            indents in prop::collection::vec(
                prop_oneof![Just(""), Just("  "), Just("\t"), Just("            "), Just(" \t\t ")],
                1..50,
            ),
            crlf in any::<bool>(),
        ) {
            let text = plan.render();
            let newline = if crlf { "\r\n" } else { "\n" };
            let reformatted: String = text
                .lines()
                .enumerate()
                .map(|(index, line)| format!("{}{line}{newline}", indents[index % indents.len()]))
                .collect();
            prop_assert_eq!(parse_for_proptest(&reformatted)?, parse_for_proptest(&text)?);
        }

        #[test]
        fn finishing_ready_tasks_finishes_the_plan(plan in dag_plan(1)) {
            let plan = parse_for_proptest(&plan.render())?;
            let mut finished: HashSet<String> = HashSet::new();
            let is_finished = |finished: &HashSet<String>, id: &str| finished.contains(id);
            loop {
                let nodes = plan.nodes(|task| {
                    if finished.contains(&task.id) { Progress::Done } else { Progress::Waiting }
                });
                let next = readiness(&nodes);
                prop_assert!(next.skipped.is_empty());
                let ready: Vec<&Task> = next
                    .ready
                    .iter()
                    .map(|id| plan.task(id).ok_or_else(|| TestCaseError::fail(format!("unknown {id}"))))
                    .collect::<Result<_, _>>()?;
                let Some(first) = ready.first() else { break };
                for task in &ready {
                    prop_assert!(!is_finished(&finished, &task.id));
                    for dependency in &task.depends {
                        prop_assert!(
                            is_finished(&finished, dependency),
                            "{} ready before {}", task.id, dependency
                        );
                    }
                }
                let keys: Vec<(Priority, usize)> = ready
                    .iter()
                    .map(|task| {
                        let index = plan.tasks.iter().position(|other| other.id == task.id);
                        (task.priority, index.unwrap_or(usize::MAX))
                    })
                    .collect();
                prop_assert!(
                    keys.windows(2).all(|pair| pair[0] < pair[1]),
                    "not sorted: {:?}", keys
                );
                let first = first.id.clone();
                finished.insert(first);
            }
            for task in &plan.tasks {
                prop_assert!(is_finished(&finished, &task.id), "{} never became ready", task.id);
            }
        }

        #[test]
        fn an_injected_back_edge_is_reported_as_a_cycle(
            plan in dag_plan(2),
            earlier in any::<Index>(),
            later in any::<Index>(),
        ) {
            let valid = parse_for_proptest(&plan.render())?;
            let later = 1 + later.index(plan.tasks.len() - 1);
            let earlier = earlier.index(later);
            let mut cyclic = plan;
            let earlier_id = cyclic.tasks[earlier].id.clone();
            let later_id = cyclic.tasks[later].id.clone();
            if !cyclic.tasks[later].depends.contains(&earlier_id) {
                cyclic.tasks[later].depends.push(earlier_id.clone());
            }
            cyclic.tasks[earlier].depends.push(later_id.clone());
            let text = cyclic.render();
            let errors = match parse(&text) {
                Ok(_) => return Err(TestCaseError::fail(format!("no cycle found in:\n{text}"))),
                Err(PlanErrors(errors)) => errors,
            };
            prop_assert_eq!(errors.len(), 1, "{:?}", errors);
            let PlanErrorKind::Cycle { path } = &errors[0].kind else {
                return Err(TestCaseError::fail(format!("not a cycle: {}", errors[0])));
            };
            // Every task on the loop lies between `earlier` and `later` in the file, so the loop starts at
            // `earlier`, whose only dependency on the loop is the injected one on `later`.
            prop_assert_eq!(&path[0].id, &earlier_id);
            prop_assert_eq!(&path[1].id, &later_id);
            prop_assert_eq!(errors[0].line, path[0].line);
            let mut seen = HashSet::new();
            for (position, step) in path.iter().enumerate() {
                prop_assert!(seen.insert(step.id.as_str()), "{} twice in the cycle", step.id);
                let next = &path[(position + 1) % path.len()].id;
                let task = cyclic
                    .task(&step.id)
                    .ok_or_else(|| TestCaseError::fail(format!("unknown {}", step.id)))?;
                prop_assert!(
                    task.depends.contains(next),
                    "{} does not depend on {}", step.id, next
                );
                // Only the heading text changed, so the lines are those of the valid plan.
                prop_assert_eq!(Some(step.line), valid.task(&step.id).map(|task| task.line));
            }
        }
    }
}
