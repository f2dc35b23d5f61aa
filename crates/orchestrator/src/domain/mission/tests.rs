//! The mission's event model against its invariants: any sequence of events applies or is rejected and
//! never yields an impossible state; a replayed journal gives the same view; a journal cut anywhere resumes
//! to a state that redoes no finished work and loses no task.

use proptest::prelude::*;

use super::*;
use crate::domain::plan::Priority;
use crate::domain::task::{FailCause, TaskEvent};

const SLOTS: usize = 2;

fn spec(index: usize, depends: Vec<usize>) -> TaskSpec {
    TaskSpec {
        id: format!("T{index}"),
        title: format!("task {index}"),
        agent: "Worker".to_string(),
        depends: depends.into_iter().map(|d| format!("T{d}")).collect(),
        priority: Priority::Medium,
        brief: String::new(),
        files: Vec::new(),
        changes: crate::domain::plan::Changes::Required,
    }
}

/// Plans of 1 to 5 tasks, each depending on some earlier ones.
fn plans() -> impl Strategy<Value = Vec<TaskSpec>> {
    (1usize..=5)
        .prop_flat_map(|count| {
            (0..count)
                .map(|index| prop::collection::vec(0..index.max(1), 0..=index.min(2)))
                .collect::<Vec<_>>()
        })
        .prop_map(|depends| {
            depends
                .into_iter()
                .enumerate()
                .map(|(index, mut depends)| {
                    depends.retain(|&dependency| dependency < index);
                    depends.sort_unstable();
                    depends.dedup();
                    spec(index, depends)
                })
                .collect()
        })
}

struct Journal {
    entries: Vec<Entry>,
    view: MissionView,
}

impl Journal {
    fn new(tasks: Vec<TaskSpec>) -> Self {
        let created = Entry {
            seq: 1,
            at_ms: 1,
            event: Event::mission(MissionEvent::Created {
                format: JOURNAL_FORMAT,
                id: "m1".into(),
                text: "mission".into(),
                project: "/p".into(),
            }),
        };
        let view = MissionView::created(&created).unwrap();
        let mut journal = Journal {
            entries: vec![created],
            view,
        };
        journal
            .record(Event::mission(MissionEvent::PlanAccepted {
                attempt: 1,
                source: PlanSource::Markdown,
                tasks,
            }))
            .unwrap();
        journal
    }

    fn record(&mut self, event: Event) -> Result<(), Rejected> {
        let entry = Entry {
            seq: self.entries.len() as u64 + 1,
            at_ms: self.entries.len() as u64 + 1,
            event,
        };
        let next = self.view.apply(&entry)?;
        check_invariants(&self.view, &next);
        self.view = next;
        self.entries.push(entry);
        Ok(())
    }
}

/// What no sequence of accepted events may produce.
fn check_invariants(before: &MissionView, after: &MissionView) {
    let mut slots = std::collections::BTreeMap::new();
    for task in after.tasks.values() {
        if let Some(slot) = task.status.slot() {
            assert!(
                slots.insert(slot, task.id()).is_none(),
                "two tasks on slot {slot}: {after:#?}"
            );
            assert!(task.worker_session.is_some() && task.runs >= 1 && task.attempts >= 1);
        }
        let dependency_status = |id: &String| after.tasks.get(id).map(|task| &task.status);
        if matches!(
            task.status,
            TaskStatus::Queued
                | TaskStatus::Running { .. }
                | TaskStatus::Reviewing { .. }
                | TaskStatus::Integrating { .. }
                | TaskStatus::Done
        ) {
            assert!(
                task.spec
                    .depends
                    .iter()
                    .all(|id| dependency_status(id) == Some(&TaskStatus::Done)),
                "{} is {} before its dependencies are done",
                task.id(),
                task.status
            );
        }
        if let TaskStatus::Skipped { by } = &task.status {
            assert!(
                !matches!(dependency_status(by), Some(TaskStatus::Done)),
                "{} skipped by a done task",
                task.id()
            );
        }
        let old = &before.tasks.get(task.id());
        if let Some(old) = old {
            assert!(task.attempts >= old.attempts && task.runs >= old.runs);
            if old.status.is_finished() {
                assert_eq!(task, *old, "a finished task changed");
            }
        }
    }
    if after.status == MissionStatus::Completed {
        assert!(
            after
                .tasks
                .values()
                .all(|task| task.status == TaskStatus::Done)
        );
    }
}

/// Any event, legal or not, from a small vocabulary over `tasks` tasks.
fn any_event(tasks: usize) -> impl Strategy<Value = Event> {
    let task = 0..tasks.max(1);
    let slot = 0..SLOTS + 1;
    let session = prop_oneof![Just("s1"), Just("s2")];
    prop_oneof![
        task.clone()
            .prop_map(|t| Event::task(format!("T{t}"), TaskEvent::Released)),
        (task.clone(), slot, session.clone(), any::<bool>()).prop_map(|(t, slot, s, continued)| {
            Event::task(
                format!("T{t}"),
                TaskEvent::Started {
                    slot,
                    server: "http://a".into(),
                    session: s.into(),
                    continued,
                    tree: None,
                },
            )
        }),
        task.clone().prop_map(|t| Event::task(
            format!("T{t}"),
            TaskEvent::WorkerFinished {
                report: "r".into(),
                files: vec![],
                head: None,
            }
        )),
        task.clone().prop_map(|t| Event::task(
            format!("T{t}"),
            TaskEvent::WorkerBlocked { reason: "b".into() }
        )),
        (task.clone(), any::<bool>()).prop_map(|(t, passed)| Event::task(
            format!("T{t}"),
            TaskEvent::GateChecked {
                passed,
                summary: String::new()
            }
        )),
        task.clone()
            .prop_map(|t| Event::task(format!("T{t}"), TaskEvent::Approved { reviewer: None })),
        task.clone().prop_map(|t| Event::task(
            format!("T{t}"),
            TaskEvent::ChangesRequested {
                findings: "f".into(),
                reviewer: None
            }
        )),
        task.clone().prop_map(|t| Event::task(
            format!("T{t}"),
            TaskEvent::Failed {
                cause: FailCause::Model {
                    message: "m".into()
                }
            }
        )),
        (task.clone(), task.clone()).prop_map(|(t, by)| Event::task(
            format!("T{t}"),
            TaskEvent::Skipped {
                by: format!("T{by}")
            }
        )),
        task.clone()
            .prop_map(|t| Event::task(format!("T{t}"), TaskEvent::Interrupted)),
        task.clone()
            .prop_map(|t| Event::task(format!("T{t}"), TaskEvent::Integrated { commit: None })),
        task.clone().prop_map(|t| Event::task(
            format!("T{t}"),
            TaskEvent::IntegrationFailed {
                findings: "c".into()
            }
        )),
        (task, prop::option::of(session)).prop_map(|(t, s)| Event::task(
            format!("T{t}"),
            TaskEvent::Restarted {
                session: s.map(Into::into)
            }
        )),
        Just(Event::mission(MissionEvent::Resumed)),
        Just(Event::mission(MissionEvent::Finished)),
        Just(Event::mission(MissionEvent::Stopped {
            cause: StopCause::Signal {
                signal: Signal::Interrupt
            }
        })),
    ]
}

/// One legal step of a mission chosen by `choice`, or `None` when the mission is over.
fn legal_step(view: &MissionView, choice: u8) -> Option<Event> {
    let mut moves = Vec::new();
    // Now and then the orchestrator is stopped: its running tasks are interrupted, then the mission stops.
    if choice.is_multiple_of(13) {
        // A stop interrupts what runs or is reviewed; an integrating task keeps its place.
        let running = view.tasks_in_order().find(|task| {
            matches!(
                task.status,
                TaskStatus::Running { .. } | TaskStatus::Reviewing { .. }
            )
        });
        return Some(match running {
            Some(task) => Event::task(task.id(), TaskEvent::Interrupted),
            None => Event::mission(MissionEvent::Stopped {
                cause: StopCause::Signal {
                    signal: Signal::Interrupt,
                },
            }),
        });
    }
    let readiness = view.readiness();
    for (id, by) in readiness.skipped.iter().take(1) {
        moves.push(Event::task(id, TaskEvent::Skipped { by: by.clone() }));
    }
    for id in &readiness.ready {
        moves.push(Event::task(id, TaskEvent::Released));
    }
    let busy: Vec<usize> = view
        .tasks
        .values()
        .filter_map(|task| task.status.slot())
        .collect();
    let free = (0..SLOTS).find(|slot| !busy.contains(slot));
    for task in view.tasks_in_order() {
        let id = task.id();
        match &task.status {
            TaskStatus::Queued => {
                if let Some(slot) = free {
                    let (session, continued) = match &task.resume_session {
                        Some(session) => (session.clone(), true),
                        None => (format!("{id}-s{}", task.runs + 1), false),
                    };
                    moves.push(Event::task(
                        id,
                        TaskEvent::Started {
                            slot,
                            server: "http://a".into(),
                            session,
                            continued,
                            tree: None,
                        },
                    ));
                }
            }
            TaskStatus::Running { .. } => {
                moves.push(Event::task(
                    id,
                    TaskEvent::WorkerFinished {
                        report: "done".into(),
                        files: vec![format!("{id}.txt")],
                        head: Some("c1".into()),
                    },
                ));
                if choice.is_multiple_of(7) {
                    moves.push(Event::task(
                        id,
                        TaskEvent::WorkerBlocked {
                            reason: "cannot".into(),
                        },
                    ));
                }
            }
            TaskStatus::Integrating { .. } => {
                moves.push(Event::task(
                    id,
                    if choice.is_multiple_of(5) && task.attempts < 3 {
                        TaskEvent::IntegrationFailed {
                            findings: "conflict".into(),
                        }
                    } else {
                        TaskEvent::Integrated { commit: None }
                    },
                ));
            }
            TaskStatus::Reviewing { .. } => {
                let passed = task.gate.as_ref().is_some_and(|(passed, _)| *passed);
                if task.gate.is_none() {
                    moves.push(Event::task(
                        id,
                        TaskEvent::GateChecked {
                            passed: !choice.is_multiple_of(3),
                            summary: String::new(),
                        },
                    ));
                } else if passed {
                    moves.push(Event::task(id, TaskEvent::Approved { reviewer: None }));
                } else if task.attempts < 3 {
                    moves.push(Event::task(
                        id,
                        TaskEvent::ChangesRequested {
                            findings: "fix".into(),
                            reviewer: None,
                        },
                    ));
                } else {
                    moves.push(Event::task(
                        id,
                        TaskEvent::Failed {
                            cause: FailCause::NotApproved {
                                attempts: task.attempts,
                                findings: "fix".into(),
                            },
                        },
                    ));
                }
            }
            _ => {}
        }
    }
    if moves.is_empty() {
        return view
            .all_finished()
            .then(|| Event::mission(MissionEvent::Finished));
    }
    Some(moves.swap_remove(usize::from(choice) % moves.len()))
}

/// Runs the mission with `choices` until they run out or it is over.
fn legal_run(tasks: Vec<TaskSpec>, choices: &[u8]) -> Journal {
    let mut journal = Journal::new(tasks);
    for &choice in choices {
        if journal.view.status != MissionStatus::Running {
            break;
        }
        let Some(event) = legal_step(&journal.view, choice) else {
            break;
        };
        journal.record(event).expect("a legal step applies");
    }
    journal
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 512 }))]

    #[test]
    fn any_sequence_applies_or_is_rejected_and_never_breaks_an_invariant(
        tasks in plans(),
        events in prop::collection::vec(any_event(5), 0..80),
        prefix in prop::collection::vec(any::<u8>(), 0..30),
    ) {
        // Start from a legal prefix, so the random events meet every state.
        let mut journal = legal_run(tasks, &prefix);
        for event in events {
            let before = journal.view.clone();
            if journal.record(event).is_err() {
                prop_assert_eq!(&journal.view, &before);
            }
        }
        let replayed = MissionView::replay(&journal.entries).expect("the journal replays");
        prop_assert_eq!(replayed, journal.view);
    }

    #[test]
    fn a_journal_cut_anywhere_resumes_without_redoing_or_losing_work(
        tasks in plans(),
        choices in prop::collection::vec(any::<u8>(), 0..60),
        exists in any::<u64>(),
    ) {
        let full = legal_run(tasks, &choices);
        for cut in 2..=full.entries.len() {
            let prefix = &full.entries[..cut];
            let view = MissionView::replay(prefix).expect("every prefix replays");
            if view.status == MissionStatus::Completed {
                continue;
            }
            let mut journal = Journal { entries: prefix.to_vec(), view: view.clone() };
            journal.record(Event::mission(MissionEvent::Resumed)).expect("a resume applies");
            let recovery = journal
                .view
                .recovery(|task| exists >> (task.runs % 64) & 1 == 1);
            for event in recovery {
                journal.record(event).expect("recovery applies");
            }
            for task in journal.view.tasks.values() {
                // Pending to be run again, or integrating (its work approved: the engine finishes the merge).
                prop_assert!(
                    task.status.is_finished()
                        || task.status == TaskStatus::Pending
                        || matches!(task.status, TaskStatus::Integrating { .. }),
                    "{} is {} after recovery", task.id(), task.status
                );
            }
            // Run what is left to its end with every step succeeding.
            while let Some(event) = legal_step(&journal.view, 2) {
                journal.record(event).expect("a legal step applies");
                if journal.view.status != MissionStatus::Running {
                    break;
                }
            }
            prop_assert!(journal.view.status != MissionStatus::Running);
            for (id, before) in &view.tasks {
                let after = &journal.view.tasks[id];
                if before.status.is_finished() {
                    prop_assert_eq!(after, before, "finished work was redone");
                } else {
                    prop_assert!(after.status.is_finished(), "{} was lost", id);
                }
            }
        }
    }
}

#[test]
fn a_newer_journal_format_is_refused() {
    let entry = Entry {
        seq: 1,
        at_ms: 0,
        event: Event::mission(MissionEvent::Created {
            format: JOURNAL_FORMAT + 1,
            id: "m".into(),
            text: "t".into(),
            project: "/p".into(),
        }),
    };
    assert_eq!(
        MissionView::replay([&entry]).unwrap_err(),
        (
            1,
            Rejected::Format {
                found: JOURNAL_FORMAT + 1
            }
        )
    );
}

#[test]
fn the_stage_a_mission_stopped_in_stays_in_its_view() {
    let mut journal = Journal::new(vec![spec(0, vec![])]);
    journal
        .record(Event::mission(MissionEvent::StageStarted {
            stage: Stage::Work,
        }))
        .unwrap();
    journal
        .record(Event::mission(MissionEvent::Stopped {
            cause: StopCause::Signal {
                signal: Signal::Terminate,
            },
        }))
        .unwrap();
    assert_eq!(journal.view.stage, Some(Stage::Work));
    assert_eq!(
        journal.view.status.to_string(),
        "stopped: interrupted by SIGTERM"
    );
}

#[test]
fn events_serialize_as_flat_json() {
    let event = Event::task(
        "T1",
        TaskEvent::Started {
            slot: 1,
            server: "http://a".into(),
            session: "ses_1".into(),
            continued: false,
            tree: None,
        },
    );
    let entry = Entry {
        seq: 3,
        at_ms: 9,
        event,
    };
    let json = serde_json::to_value(&entry).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "seq": 3, "at_ms": 9, "about": "task", "task": "T1", "event": "started",
            "slot": 1, "server": "http://a", "session": "ses_1", "continued": false, "tree": null
        })
    );
    let back: Entry = serde_json::from_value(json).unwrap();
    assert_eq!(back, entry);
}
