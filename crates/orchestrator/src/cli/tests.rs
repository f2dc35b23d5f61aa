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

#[test]
fn budgets_come_from_the_file_and_the_command_line_wins() {
    let file = config::parse_toml(
        "[budgets]\nmax_cost = 1.25\nmax_tokens = \"3k\"\nmax_turns_per_task = 7\n",
        std::path::Path::new("orchestrator.toml"),
    )
    .unwrap();
    let mut args = run_args();
    let project = std::path::Path::new("/p");
    let settings = crate::cli::run::settings(project, Some(&file), &args, false).unwrap();
    assert_eq!(settings.budgets.cost_nanos, Some(1_250_000_000));
    assert_eq!(settings.budgets.tokens, Some(3000));
    assert_eq!(settings.budgets.time_ms, None);
    assert_eq!(settings.budgets.turns_per_task, Some(7));
    args.max_cost = Some(5_000_000_000);
    args.max_time = Some(60_000);
    let settings = crate::cli::run::settings(project, Some(&file), &args, false).unwrap();
    assert_eq!(settings.budgets.cost_nanos, Some(5_000_000_000));
    assert_eq!(settings.budgets.tokens, Some(3000));
    assert_eq!(settings.budgets.time_ms, Some(60_000));
    assert_eq!(settings.budgets.turns_per_task, Some(7));
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

#[test]
fn the_session_message_lists_the_files_changed_and_the_integration_branch() {
    let (_, applied) = applied(vec![plan(2)]);
    let mut view = applied.last().unwrap().view.clone();
    view.tasks.get_mut("T0").unwrap().files = vec!["src/b.rs".into(), "a.txt".into()];
    view.tasks.get_mut("T1").unwrap().files = vec!["a.txt".into()];
    let mut report = crate::engine::MissionReport {
        view,
        wall: Duration::from_secs(1),
        sources: (0, 0, 0),
        model_failures: 0,
        model_breaker: "closed".into(),
        servers: Vec::new(),
        plan_file: None,
        aborted: Vec::new(),
        unconfirmed: Vec::new(),
    };
    let text = crate::cli::summary::session_message(&report);
    assert!(
        text.contains("\nFiles changed (2): a.txt, src/b.rs\n"),
        "as the terminal lists them: {text}"
    );
    assert!(
        crate::cli::summary::render(&report)
            .contains("  files changed (2):\n    a.txt\n    src/b.rs\n")
    );
    assert!(!text.contains("Integration branch"), "{text}");

    report.view.origin = Some(crate::domain::workspace::Origin {
        mission: "m1".into(),
        checkout: crate::domain::workspace::Checkout {
            top_level: "/project".into(),
            prefix: std::path::PathBuf::new(),
            head: crate::domain::workspace::Head::Branch("main".into()),
            commit: crate::domain::workspace::CommitId::parse(
                "0123456789abcdef0123456789abcdef01234567",
            )
            .unwrap(),
            changes: crate::domain::workspace::WorkingChanges::default(),
        },
        integration: "orchestrator/m1".into(),
    });
    report.view.delivery = Some(crate::domain::workspace::Delivery::Kept {
        reason: "your branch moved".into(),
        command: "git merge orchestrator/m1".into(),
    });
    let text = crate::cli::summary::session_message(&report);
    assert!(
        text.contains("Integration branch: orchestrator/m1\n"),
        "{text}"
    );
    assert!(
        text.contains("merge it with `git merge orchestrator/m1`"),
        "{text}"
    );
}

#[test]
fn a_task_for_a_session_needs_its_server_and_a_command_message_needs_the_session() {
    use clap::Parser as _;

    use crate::cli::args::{Cli, Command};

    let parse = |args: &[&str]| {
        Cli::try_parse_from(std::iter::once("orchestrator").chain(args.iter().copied()))
    };
    assert!(
        parse(&["task", "--session", "ses_1", "x"]).is_err(),
        "the plugin always names the server"
    );
    assert!(
        parse(&[
            "task",
            "--url",
            "http://127.0.0.1:1",
            "--command-message",
            "msg_1",
            "x"
        ])
        .is_err()
    );
    assert!(parse(&["task", "--demo", "--session", "ses_1", "x"]).is_err());
    // As the plugin starts it: the arguments after `--`, quotes as typed.
    let cli = parse(&[
        "task",
        "--url",
        "http://127.0.0.1:1",
        "--password-env",
        "ORCHESTRATOR_PLUGIN_TOKEN",
        "--session",
        "ses_1",
        "--command-message",
        "msg_1",
        "--",
        "\"--verbose flag\"",
    ])
    .expect("parses");
    let Command::Task(task) = cli.command else {
        panic!("a task");
    };
    assert_eq!(task.session.as_deref(), Some("ses_1"));
    assert_eq!(task.command_message.as_deref(), Some("msg_1"));
    assert_eq!(
        task.server.password_env.as_deref(),
        Some("ORCHESTRATOR_PLUGIN_TOKEN")
    );
    assert_eq!(
        crate::cli::session::command_mission(task.mission.as_deref().expect("the mission")),
        "--verbose flag"
    );
}

#[test]
fn status_shows_the_context_threshold_and_the_handoffs() {
    let (_, applied) = applied(vec![
        Event::mission(MissionEvent::ContextThreshold { tokens: 90_000 }),
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
        Event::task(
            "T0",
            TaskEvent::HandedOff {
                session: "s2".into(),
                context_tokens: 95_000,
            },
        ),
    ]);
    let last = applied.last().unwrap();
    let text = crate::cli::status_text(&last.view, None);
    assert!(
        text.contains(
            "context: a Worker session past 90000 tokens continues in a fresh one \
             (limits.worker_context_tokens); 1 handoff(s) so far"
        ),
        "{text}"
    );
    assert_eq!(
        crate::cli::progress::line(&last.entry.event, &last.view).as_deref(),
        Some(
            "   T0     context at 95000 tokens: a fresh Worker session s2 takes over with a handoff summary"
        )
    );
}

#[test]
fn memory_lists_shows_and_forgets_records_and_names_the_damaged_ones() {
    use crate::cli::args::MemoryAction;
    use crate::domain::recall::MissionRecord;

    let project = tempfile::tempdir().unwrap();
    let shelf = crate::adapters::records::RecordShelf::new(project.path());
    let empty = crate::cli::memory::run(project.path(), &MemoryAction::List).unwrap();
    assert!(empty.starts_with("No mission records in"), "{empty}");
    let record = MissionRecord::parse(
        "# Mission m5\nended: 2026-12-08T01:00:00Z\noutcome: completed\n\n## Goal\nAdd slugify\n",
    )
    .unwrap();
    let path = shelf.keep(&record).unwrap();
    std::fs::write(shelf.path("m6"), "garbage\n").unwrap();
    let list = crate::cli::memory::run(project.path(), &MemoryAction::List).unwrap();
    assert!(
        list.contains("  m5               completed    Add slugify"),
        "{list}"
    );
    assert!(list.contains("damaged, skipped by missions:"), "{list}");
    assert!(
        list.contains("m6.md: it does not start with a `# Mission <id>` line"),
        "{list}"
    );
    let shown = crate::cli::memory::run(
        project.path(),
        &MemoryAction::Show {
            mission: "m5".into(),
        },
    )
    .unwrap();
    assert_eq!(shown, std::fs::read_to_string(&path).unwrap());
    let forgot = crate::cli::memory::run(
        project.path(),
        &MemoryAction::Forget {
            mission: "m5".into(),
        },
    )
    .unwrap();
    assert!(forgot.starts_with("Forgot mission m5"), "{forgot}");
    assert!(!path.exists());
    let error = crate::cli::memory::run(
        project.path(),
        &MemoryAction::Show {
            mission: "m5".into(),
        },
    )
    .unwrap_err();
    assert!(
        matches!(error, crate::cli::error::CliError::UnknownRecord { .. }),
        "{error}"
    );
    assert_eq!(error.code(), 2);
}

#[test]
fn a_merge_being_journaled_prints_no_second_integrating_line() {
    let (_, applied) = applied(vec![plan(1)]);
    let view = &applied.last().unwrap().view;
    let merging = Event::task(
        "T0",
        crate::domain::task::TaskEvent::Merging {
            result: "b".repeat(40),
            onto: "a".repeat(40),
        },
    );
    assert_eq!(crate::cli::progress::line(&merging, view), None);
}
