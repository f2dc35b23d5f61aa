//! The progress view: follows the mission store's change subscription and prints each state change, as
//! a plain line or, with `--json`, as one JSON object per line.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::state::{MissionState, StateEvent, TaskStatus};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
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
        let write_status = move || {
            if let Some(path) = &status_file {
                let view = viewer.view();
                let json = serde_json::json!({ "pid": std::process::id(), "mission": view.mission, "tasks": view.tasks });
                let temporary = path.with_extension("json.tmp");
                if std::fs::write(&temporary, json.to_string()).is_ok() {
                    let _ = std::fs::rename(&temporary, path);
                }
            }
        };
        write_status();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("progress".to_string())
                .spawn(move || {
                    let mut last_stage = None;
                    loop {
                        let Some(next) = subscription.next_timeout(Duration::from_millis(100))
                        else {
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
                        write_status();
                        let _ = match format {
                            Format::Quiet => Ok(()),
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
