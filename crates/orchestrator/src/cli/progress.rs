//! The progress view: follows the mission store's change subscription and prints each state change, as
//! a plain line or, with `--json`, as one JSON object per line.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::adapters::files;
use crate::state::{MissionState, StateEvent, TaskStatus};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Live bars on a terminal: the current stage, the mission's overall bar, one line per worker slot.
    Bars,
    /// One readable line per change.
    Lines,
    /// One JSON object per change.
    Json,
    /// Nothing.
    Quiet,
}

/// A running progress view; [`finish`](Progress::finish) prints what is left and stops it.
#[derive(Debug)]
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts following `state`, writing to `out`; with `status_file`, also keeps the whole mission's
    /// current view there as JSON (replaced atomically after each change), which `orchestrator status`
    /// reads while the mission runs and its store is locked.
    pub fn start(
        state: &MissionState,
        format: Format,
        mut out: impl Write + Send + 'static,
        status_file: Option<PathBuf>,
    ) -> Self {
        let mut subscription = state.subscribe();
        let viewer = state.clone();
        let viewer_for_bars = state.clone();
        // Rewritten at most every 250 ms (and once more when the view stops): a mission of many tasks
        // commits many changes, and each write serializes the whole mission.
        let mut written_at: Option<std::time::Instant> = None;
        let mut pending = false;
        // `catch_up`: write only if a change is still unwritten (the first call always writes).
        let mut write_status = move |catch_up: bool| {
            if catch_up {
                if !pending && written_at.is_some() {
                    return;
                }
            } else {
                pending = true;
                if written_at.is_some_and(|at| at.elapsed() < Duration::from_millis(250)) {
                    return;
                }
            }
            pending = false;
            written_at = Some(std::time::Instant::now());
            if let Some(path) = &status_file {
                let view = viewer.view();
                let json = serde_json::json!({ "pid": std::process::id(), "mission": view.mission, "tasks": view.tasks });
                // `status` reads the file while it is replaced: never a half-written one.
                if let Err(error) = files::write_atomically(path, json.to_string().as_bytes()) {
                    tracing::warn!("status file not updated: {error}");
                }
            }
        };
        write_status(true);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("progress".to_string())
                .spawn(move || {
                    let mut last_stage = None;
                    let mut bars = (format == Format::Bars).then(Bars::new);
                    loop {
                        let Some(next) = subscription.next_timeout(Duration::from_millis(100))
                        else {
                            // A quiet moment: catch the status file up.
                            write_status(true);
                            if stop.load(Ordering::Acquire) {
                                // Drain what was committed before the stop.
                                match subscription.try_next() {
                                    Some(Ok(_)) | Some(Err(_)) => {}
                                    None => return,
                                }
                            }
                            if subscription.is_closed() {
                                return;
                            }
                            continue;
                        };
                        let change = match next {
                            Ok(change) => change,
                            Err(lagged) => {
                                let _ = writeln!(out, "(progress lagged: {lagged:?})");
                                continue;
                            }
                        };
                        let Some(event) = StateEvent::from_change(&change) else {
                            continue;
                        };
                        write_status(false);
                        if let Some(bars) = &mut bars {
                            bars.update(&event, &viewer_for_bars);
                            continue;
                        }
                        let _ = match format {
                            Format::Quiet | Format::Bars => Ok(()),
                            Format::Json => serde_json::to_string(&event)
                                .map_err(std::io::Error::other)
                                .and_then(|line| writeln!(out, "{line}")),
                            Format::Lines => match &event {
                                StateEvent::Mission { mission, .. } => {
                                    if last_stage != Some(mission.stage) {
                                        last_stage = Some(mission.stage);
                                        writeln!(out, "== stage: {}", mission.stage.name())
                                    } else {
                                        Ok(())
                                    }
                                }
                                StateEvent::Task { task, .. } => {
                                    let attempt = if task.attempts > 1
                                        && matches!(task.status, TaskStatus::Running { .. })
                                    {
                                        format!(" (attempt {})", task.attempts)
                                    } else {
                                        String::new()
                                    };
                                    writeln!(
                                        out,
                                        "   {:<6} {}{attempt}  {}",
                                        task.id, task.status, task.title
                                    )
                                }
                            },
                        };
                        let _ = out.flush();
                    }
                })
                .expect("a thread can be started")
        };
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Prints the changes already committed and stops.
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

/// The terminal view: a stage line, the overall bar and one line per worker slot.
struct Bars {
    multi: indicatif::MultiProgress,
    stage: indicatif::ProgressBar,
    overall: indicatif::ProgressBar,
    slots: Vec<indicatif::ProgressBar>,
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
        }
        &self.slots[slot]
    }

    fn update(&mut self, event: &StateEvent, state: &MissionState) {
        match event {
            StateEvent::Mission { mission, .. } => {
                self.stage
                    .set_message(format!("mission {}: {}", mission.id, mission.stage.name()));
            }
            StateEvent::Task { task, .. } => {
                let view = state.view();
                let finished = view
                    .tasks
                    .values()
                    .filter(|task| task.status.is_finished())
                    .count();
                self.overall.set_length(view.tasks.len() as u64);
                self.overall.set_position(finished as u64);
                self.overall.set_message(format!(
                    "{} done, {} failed, {} blocked",
                    view.count("done"),
                    view.count("failed"),
                    view.count("blocked")
                ));
                match &task.status {
                    TaskStatus::Running { slot } | TaskStatus::Reviewing { slot } => {
                        let message = format!(
                            "{} {} (attempt {}) {}",
                            task.id,
                            task.status.name(),
                            task.attempts,
                            task.title
                        );
                        self.slot(*slot).set_message(message);
                    }
                    _ => {
                        // The slot that ran it is idle again.
                        for bar in &self.slots {
                            if bar.message().starts_with(&format!("{} ", task.id)) {
                                bar.set_message(format!(
                                    "idle (last: {} {})",
                                    task.id,
                                    task.status.name()
                                ));
                            }
                        }
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
