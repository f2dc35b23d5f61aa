//! The command line's own logic, in-process: settings precedence, the progress view, status and
//! summaries.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opencode_client::ModelRef;

use crate::cli::args::RunArgs;
use crate::cli::config;
use crate::cli::progress::{Format, Progress};
use crate::domain::mission::{
    Entry, Event, JOURNAL_FORMAT, MissionEvent, MissionStatus, MissionView, PlanSource, Signal,
    Stage, StopCause,
};
use crate::domain::plan::Priority;
use crate::domain::prompts::Role;
use crate::domain::task::{TaskEvent, TaskSpec};
use crate::engine::record::Applied;

fn run_args() -> RunArgs {
    RunArgs {
        slots: None,
        checks: Vec::new(),
        check_timeout: None,
        model: None,
        json: false,
        max_cost: None,
        max_tokens: None,
        max_time: None,
        max_turns_per_task: None,
        otlp: None,
        no_isolation: false,
    }
}

#[test]
fn the_command_line_model_wins_over_the_configured_role_model() {
    // Today's main let `agents.<role>.model` of the configuration override `--model`.
    let file = config::parse_toml(
        "[agents]\nmodel = \"local/default\"\n[agents.reviewer]\nmodel = \"local/reviewer\"\n",
        std::path::Path::new("orchestrator.toml"),
    )
    .unwrap();
    let mut args = run_args();
    let settings =
        crate::cli::run::settings(std::path::Path::new("/p"), Some(&file), &args, false).unwrap();
    assert_eq!(
        settings.models.for_role(Role::Reviewer),
        ModelRef::parse("local/reviewer").as_ref()
    );
    args.model = Some("cli/model".to_string());
    let settings =
        crate::cli::run::settings(std::path::Path::new("/p"), Some(&file), &args, false).unwrap();
    for role in Role::ALL {
        assert_eq!(
            settings.models.for_role(role),
            ModelRef::parse("cli/model").as_ref()
        );
    }
    args.model = Some("no-slash".to_string());
    assert!(
        crate::cli::run::settings(std::path::Path::new("/p"), Some(&file), &args, false).is_err()
    );
}

/// A journal of `events` mission events, applied in order.
fn applied(events: Vec<Event>) -> (MissionView, Vec<Arc<Applied>>) {
    let created = Entry {
        seq: 1,
        at_ms: 0,
        event: Event::mission(MissionEvent::Created {
            format: JOURNAL_FORMAT,
            id: "m1".into(),
            text: "mission".into(),
            project: "/p".into(),
        }),
    };
    let first = MissionView::created(&created).unwrap();
    let mut view = first.clone();
    let mut out = Vec::new();
    for (index, event) in events.into_iter().enumerate() {
        let entry = Entry {
            seq: index as u64 + 2,
            at_ms: 0,
            event,
        };
        view = view.apply(&entry).unwrap();
        out.push(Arc::new(Applied {
            entry,
            view: view.clone(),
        }));
    }
    (first, out)
}

fn plan(count: usize) -> Event {
    Event::mission(MissionEvent::PlanAccepted {
        attempt: 1,
        source: PlanSource::Markdown,
        tasks: (0..count)
            .map(|index| TaskSpec {
                id: format!("T{index}"),
                title: format!("task {index}"),
                agent: "Worker".into(),
                depends: Vec::new(),
                priority: Priority::Medium,
                brief: String::new(),
                files: Vec::new(),
                changes: crate::domain::plan::Changes::Required,
            })
            .collect(),
    })
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_progress_view_shows_every_event_recorded_before_it_finishes() {
    let mut events = vec![plan(40)];
    events.extend((0..40).map(|index| Event::task(format!("T{index}"), TaskEvent::Released)));
    let (first, applied) = applied(events);
    for format in [Format::Lines, Format::Json] {
        let (sender, receiver) = std::sync::mpsc::channel();
        let out = Shared::default();
        let progress = Progress::start(receiver, first.clone(), format, out.clone(), None);
        // Half now; the rest after the view has waited for a while, right before it is finished.
        for event in &applied[..20] {
            sender.send(Arc::clone(event)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(150));
        for event in &applied[20..] {
            sender.send(Arc::clone(event)).unwrap();
        }
        progress.finish();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines = text.lines().count();
        assert_eq!(lines, 41, "{format:?}:\n{text}");
        assert!(text.contains("T39"), "{text}");
    }
}

#[test]
fn progress_lines_say_each_change_once() {
    let (first, applied) = applied(vec![
        Event::mission(MissionEvent::StageStarted { stage: Stage::Work }),
        plan(1),
        Event::task("T0", TaskEvent::Released),
        Event::task(
            "T0",
            TaskEvent::Started {
                slot: 0,
                server: "http://a".into(),
                session: "s".into(),
                continued: false,
                tree: None,
            },
        ),
    ]);
    let lines: Vec<String> = applied
        .iter()
        .filter_map(|applied| crate::cli::progress::line(&applied.entry.event, &applied.view))
        .collect();
    assert_eq!(
        lines,
        [
            "== stage: work",
            "   plan: 1 task(s)",
            "   T0     queued  task 0",
            "   T0     running (slot 0)  task 0",
        ]
    );
    let _ = first;
}

#[test]
fn a_stopped_mission_shows_where_it_stopped_and_its_interrupted_tasks() {
    let (_, applied) = applied(vec![
        Event::mission(MissionEvent::StageStarted { stage: Stage::Work }),
        plan(1),
        Event::task("T0", TaskEvent::Released),
        Event::task(
            "T0",
            TaskEvent::Started {
                slot: 0,
                server: "http://a".into(),
                session: "s".into(),
                continued: false,
                tree: None,
            },
        ),
        Event::task("T0", TaskEvent::Interrupted),
        Event::mission(MissionEvent::Stopped {
            cause: StopCause::Signal {
                signal: Signal::Interrupt,
            },
        }),
    ]);
    let view = &applied.last().unwrap().view;
    assert!(matches!(view.status, MissionStatus::Stopped { .. }));
    let text = crate::cli::status_text(view, None);
    assert!(text.contains("stage:   work (where it stopped)"), "{text}");
    assert!(text.contains("T0     interrupted"), "{text}");
    assert!(text.contains("interrupted by the stop"), "{text}");
}
