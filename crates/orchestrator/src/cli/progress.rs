//! The progress view: follows the mission's events as the engine records them and shows each once: a
//! plain line, live bars on a terminal, or, with `--json`, the journal's own JSON, one event per line. It
//! also keeps the mission's status file up to date for `orchestrator status` (the journal is locked while
//! the mission runs).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::adapters::files;
use crate::domain::mission::{Event, Hold, MissionEvent, MissionView};
use crate::domain::prompts::first_line;
use crate::domain::task::{TaskEvent, TaskStatus};
use crate::engine::record::Applied;

/// How often the status file is rewritten, at most.
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Live bars on a terminal: the current stage, the mission's overall bar, one line per worker slot.
    Bars,
    /// One readable line per event.
    Lines,
    /// One JSON object per event.
    Json,
    /// Nothing.
    Quiet,
}

/// A running progress view; [`finish`](Progress::finish) shows what is left and stops it.
#[derive(Debug)]
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The status file's content: the running orchestrator and the mission.
fn status_json(view: &MissionView) -> serde_json::Value {
    serde_json::json!({ "pid": std::process::id(), "mission": view })
}

impl Progress {
    /// Starts showing `events` to `out`; with `status_file`, also keeps the mission's view there as JSON
    /// (replaced atomically, at most every 250 ms and once more at the end).
    pub fn start(
        events: Receiver<Arc<Applied>>,
        first: MissionView,
        format: Format,
        out: impl Write + Send + 'static,
        status_file: Option<PathBuf>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("progress".to_string())
                .spawn(move || {
                    let mut view = View::new(format, out, status_file);
                    view.status(&first, true);
                    loop {
                        match events.recv_timeout(Duration::from_millis(100)) {
                            Ok(applied) => view.show(&applied),
                            Err(RecvTimeoutError::Timeout) => {
                                view.catch_up();
                                if stop.load(Ordering::Acquire) {
                                    // Show what was recorded before the stop, every event of it.
                                    while let Ok(applied) = events.try_recv() {
                                        view.show(&applied);
                                    }
                                    break;
                                }
                            }
                            Err(RecvTimeoutError::Disconnected) => break,
                        }
                    }
                    view.catch_up();
                })
                .expect("a thread can be started")
        };
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Shows the events already recorded and stops.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// What the progress thread keeps.
struct View<W> {
    format: Format,
    out: W,
    status_file: Option<PathBuf>,
    written_at: Option<Instant>,
    pending: Option<MissionView>,
    bars: Option<Bars>,
}

impl<W: Write> View<W> {
    fn new(format: Format, out: W, status_file: Option<PathBuf>) -> Self {
        Self {
            bars: (format == Format::Bars).then(Bars::new),
            format,
            out,
            status_file,
            written_at: None,
            pending: None,
        }
    }

    fn show(&mut self, applied: &Applied) {
        self.status(&applied.view, false);
        if let Some(bars) = &mut self.bars {
            bars.update(&applied.entry.event, &applied.view);
            return;
        }
        let line = match self.format {
            Format::Quiet | Format::Bars => None,
            Format::Json => serde_json::to_string(&applied.entry).ok(),
            Format::Lines => line(&applied.entry.event, &applied.view),
        };
        if let Some(line) = line {
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
        }
    }

    /// Writes the status file now (`force`), or when it was not written for [`STATUS_EVERY`].
    fn status(&mut self, view: &MissionView, force: bool) {
        if self.status_file.is_none() {
            return;
        }
        let due = self
            .written_at
            .is_none_or(|at| at.elapsed() >= STATUS_EVERY);
        if force || due {
            self.write_status(view);
            self.pending = None;
        } else {
            self.pending = Some(view.clone());
        }
    }

    fn catch_up(&mut self) {
        if let Some(view) = self.pending.take() {
            self.write_status(&view);
        }
    }

    fn write_status(&mut self, view: &MissionView) {
        self.written_at = Some(Instant::now());
        if let Some(path) = &self.status_file {
            // `status` reads the file while it is replaced: never a half-written one.
            if let Err(error) =
                files::write_atomically(path, status_json(view).to_string().as_bytes())
            {
                tracing::warn!("status file not updated: {error}");
            }
        }
    }
}

/// The line an event shows as, if any.
pub fn line(event: &Event, view: &MissionView) -> Option<String> {
    match event {
        Event::Mission { event } => match event {
            MissionEvent::StageStarted { stage } => Some(format!("== stage: {}", stage.name())),
            MissionEvent::PlanRejected { attempt, errors } => Some(format!(
                "   plan {attempt} rejected: {}",
                first_line(errors)
            )),
            MissionEvent::PlanAccepted { tasks, .. } => {
                Some(format!("   plan: {} task(s)", tasks.len()))
            }
            MissionEvent::Resumed => Some("== resumed".to_string()),
            MissionEvent::Pressure {
                hold,
                available_percent,
            } => Some(match hold {
                Hold::Nothing => format!(
                    "== memory: {available_percent}% of RAM available: new tasks start again"
                ),
                Hold::LowPriority => format!(
                    "== memory: {available_percent}% of RAM available: only high-priority tasks start"
                ),
                Hold::All => format!(
                    "== memory: {available_percent}% of RAM available: no new task starts until it frees"
                ),
            }),
            MissionEvent::BudgetWarning {
                budget,
                limit,
                spent,
            } => Some(format!(
                "== warning: 80% of the {budget} budget used ({} of {})",
                budget.show(*spent),
                budget.show(*limit)
            )),
            MissionEvent::Stopped { cause } => {
                Some(format!("== stopped: {}", first_line(&cause.to_string())))
            }
            MissionEvent::Finished => Some(format!("== {}", view.status)),
            _ => None,
        },
        Event::Task { task: id, event } => {
            let task = view.tasks.get(id)?;
            let title = &task.spec.title;
            match event {
                TaskEvent::GateChecked { passed, summary } => Some(format!(
                    "   {id:<6} gate {}: {}",
                    if *passed { "passed" } else { "failed" },
                    first_line(summary)
                )),
                // The merge journaled before the branch moves: the task was already shown integrating.
                TaskEvent::Merging { .. } => None,
                TaskEvent::HandedOff {
                    session,
                    context_tokens,
                } => Some(format!(
                    "   {id:<6} context at {context_tokens} tokens: a fresh Worker session {session} \
                     takes over with a handoff summary"
                )),
                _ => {
                    let attempt = match (&task.status, task.attempts) {
                        (TaskStatus::Running { .. }, attempts) if attempts > 1 => {
                            format!(" (attempt {attempts})")
                        }
                        _ => String::new(),
                    };
                    let usage = if task.status.is_finished() && !task.usage.is_empty() {
                        format!("  [{}; mission {}]", task.usage, view.usage.total)
                    } else {
                        String::new()
                    };
                    Some(format!(
                        "   {id:<6} {}{attempt}  {title}{usage}",
                        task.status
                    ))
                }
            }
        }
    }
}

/// The terminal view: a stage line, the overall bar and one line per worker slot.
struct Bars {
    multi: indicatif::MultiProgress,
    stage: indicatif::ProgressBar,
    overall: indicatif::ProgressBar,
    slots: Vec<indicatif::ProgressBar>,
    /// The task each slot shows, to set it idle when the task leaves it.
    shown: Mutex<Vec<Option<String>>>,
}

impl Bars {
    fn new() -> Self {
        let multi = indicatif::MultiProgress::new();
        let stage = multi.add(indicatif::ProgressBar::new_spinner());
        stage.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .expect("the template is valid"),
        );
        stage.enable_steady_tick(Duration::from_millis(120));
        let overall = multi.add(indicatif::ProgressBar::new(0));
        overall.set_style(
            indicatif::ProgressStyle::with_template("  tasks {bar:30} {pos}/{len} {msg}")
                .expect("the template is valid"),
        );
        Self {
            multi,
            stage,
            overall,
            slots: Vec::new(),
            shown: Mutex::new(Vec::new()),
        }
    }

    fn slot(&mut self, slot: usize) -> &indicatif::ProgressBar {
        while self.slots.len() <= slot {
            let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
            bar.set_style(
                indicatif::ProgressStyle::with_template("  slot {prefix}: {msg}")
                    .expect("the template is valid"),
            );
            bar.set_prefix(self.slots.len().to_string());
            bar.set_message("idle");
            self.slots.push(bar);
            self.shown
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(None);
        }
        &self.slots[slot]
    }

    fn update(&mut self, event: &Event, view: &MissionView) {
        if let Some(stage) = view.stage {
            self.stage
                .set_message(format!("mission {}: {}", view.id, stage.name()));
        }
        let Event::Task { task: id, .. } = event else {
            return;
        };
        let finished = view
            .tasks
            .values()
            .filter(|task| task.status.is_finished())
            .count();
        self.overall.set_length(view.tasks.len() as u64);
        self.overall.set_position(finished as u64);
        self.overall.set_message(format!(
            "{} done, {} failed, {} blocked, {} skipped; {}",
            view.count("done"),
            view.count("failed"),
            view.count("blocked"),
            view.count("skipped"),
            view.usage.total
        ));
        let Some(task) = view.tasks.get(id) else {
            return;
        };
        match task.status.slot() {
            Some(slot) => {
                let message = format!(
                    "{id} {} (attempt {}) {}",
                    task.status.name(),
                    task.attempts,
                    task.spec.title
                );
                self.slot(slot).set_message(message);
                self.shown
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)[slot] = Some(id.clone());
            }
            None => {
                let mut shown = self
                    .shown
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for (slot, held) in shown.iter_mut().enumerate() {
                    if held.as_deref() == Some(id.as_str()) {
                        *held = None;
                        self.slots[slot]
                            .set_message(format!("idle (last: {id} {})", task.status.name()));
                    }
                }
            }
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.stage.finish();
        self.overall.finish();
        for bar in &self.slots {
            bar.finish();
        }
    }
}
