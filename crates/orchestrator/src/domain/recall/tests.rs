//! Records built from a journal, read back as written or as a user edited them, and digests that stay
//! under their cap and say where each line came from.

use proptest::prelude::*;

use super::*;
use crate::domain::mission::{JOURNAL_FORMAT, PlanSource};
use crate::domain::plan::{Changes, Priority};
use crate::domain::task::{FailCause, TaskSpec};

fn spec(id: &str, title: &str, files: &[&str]) -> TaskSpec {
    TaskSpec {
        id: id.to_string(),
        title: title.to_string(),
        agent: "Worker".to_string(),
        depends: Vec::new(),
        priority: Priority::Medium,
        brief: String::new(),
        files: files.iter().map(|file| file.to_string()).collect(),
        changes: Changes::Required,
    }
}

/// A journal: events applied in order to the view, as the engine records them.
fn journal(events: Vec<Event>) -> (Vec<Entry>, MissionView) {
    let mut entries = vec![Entry {
        seq: 1,
        at_ms: 1_765_155_600_000,
        event: Event::mission(MissionEvent::Created {
            format: JOURNAL_FORMAT,
            id: "m7".into(),
            text: "Write slugify for titles\nwith tests".into(),
            project: "/p".into(),
        }),
    }];
    let mut view = MissionView::created(&entries[0]).unwrap();
    for (index, event) in events.into_iter().enumerate() {
        let entry = Entry {
            seq: index as u64 + 2,
            at_ms: 1_765_155_600_000 + (index as u64 + 1) * 1000,
            event,
        };
        view = view
            .apply(&entry)
            .unwrap_or_else(|rejected| panic!("{rejected}"));
        entries.push(entry);
    }
    (entries, view)
}

fn task(id: &str, event: TaskEvent) -> Event {
    Event::task(id, event)
}

fn started(session: &str) -> TaskEvent {
    TaskEvent::Started {
        slot: 0,
        server: "http://s".into(),
        session: session.into(),
        continued: false,
        tree: None,
    }
}

fn finished() -> TaskEvent {
    TaskEvent::WorkerFinished {
        report: "wrote it".into(),
        files: vec!["slug.py".into()],
        head: None,
    }
}

/// T1 fails its check once, gets findings, fails to integrate, is handed off to a fresh session and done;
/// T2 fails.
fn mission_journal() -> (Vec<Entry>, MissionView) {
    journal(vec![
        Event::mission(MissionEvent::PlanAccepted {
            attempt: 1,
            source: PlanSource::Markdown,
            tasks: vec![spec("T1", "Slugify", &["slug.py"]), spec("T2", "Docs", &[])],
        }),
        task("T1", TaskEvent::Released),
        task("T1", started("s1")),
        task("T1", finished()),
        task(
            "T1",
            TaskEvent::GateChecked {
                passed: false,
                summary: "python3 -m unittest: failed (exit 1) in 0.2 s".into(),
            },
        ),
        task(
            "T1",
            TaskEvent::ChangesRequested {
                findings: "- slugify must lowercase the text\n- and strip dashes\n- third".into(),
                reviewer: Some("r1".into()),
            },
        ),
        task("T1", finished()),
        task(
            "T1",
            TaskEvent::GateChecked {
                passed: true,
                summary: "python3 -m unittest: passed in 0.3 s".into(),
            },
        ),
        task("T1", TaskEvent::Approved { reviewer: None }),
        task(
            "T1",
            TaskEvent::IntegrationFailed {
                findings: "The project's checks failed:\nfmt: failed (exit 1)\nmore".into(),
            },
        ),
        task("T1", TaskEvent::Released),
        task("T1", started("s1b")),
        task(
            "T1",
            TaskEvent::HandedOff {
                session: "s2".into(),
                context_tokens: 150_000,
            },
        ),
        task("T1", finished()),
        task(
            "T1",
            TaskEvent::GateChecked {
                passed: true,
                summary: "python3 -m unittest: passed in 0.3 s".into(),
            },
        ),
        task("T1", TaskEvent::Approved { reviewer: None }),
        task("T1", TaskEvent::Integrated { commit: None }),
        task("T2", TaskEvent::Released),
        task("T2", started("s3")),
        task(
            "T2",
            TaskEvent::Failed {
                cause: FailCause::Model {
                    message: "HTTP 500".into(),
                },
            },
        ),
        Event::mission(MissionEvent::Finished),
    ])
}

#[test]
fn a_record_says_what_the_journal_says() {
    let (entries, view) = mission_journal();
    let record = Notes::of(&entries).record(&view);
    assert_eq!(record.mission, "m7");
    assert_eq!(record.goal, "Write slugify for titles\nwith tests");
    assert_eq!(record.ended_ms, entries.last().unwrap().at_ms);
    assert!(
        record.outcome.starts_with("incomplete"),
        "{}",
        record.outcome
    );
    assert_eq!(
        record.section("Plan").unwrap(),
        [
            "T1 Slugify: done after 3 attempts, 1 fresh Worker session(s) (files: slug.py)",
            "T2 Docs: failed",
        ]
    );
    assert_eq!(
        record.section("Checks").unwrap(),
        ["`python3 -m unittest`: passed 2, failed 1; last passed (T1)"]
    );
    assert_eq!(
        record.section("Findings").unwrap(),
        [
            "T1: slugify must lowercase the text",
            "T1 (integration): The project's checks failed: fmt: failed (exit 1)"
        ]
    );
    assert_eq!(
        record.section("Failures").unwrap(),
        ["T2: the model failed: HTTP 500"]
    );
    assert_eq!(record.files(), ["slug.py"]);
}

#[test]
fn a_rendered_record_reads_back_the_same() {
    let (entries, view) = mission_journal();
    let record = Notes::of(&entries).record(&view);
    let text = record.render();
    assert!(
        text.starts_with("# Mission m7\nended: 2025-12-08T01:00:21Z\n"),
        "{text}"
    );
    let mut expected = record.clone();
    // The end is kept to the second.
    expected.ended_ms = record.ended_ms / 1000 * 1000;
    assert_eq!(MissionRecord::parse(&text).unwrap(), expected);
}

#[test]
fn an_edited_record_still_reads_and_a_damaged_one_says_why() {
    let edited = "\n# Mission m9\noutcome: completed\n\n## Goal\nFix the parser\n\nsome note\n\
                  ## My notes\nfree text is ignored\n- keep `make check` green\n";
    let record = MissionRecord::parse(edited).unwrap();
    assert_eq!(record.ended_ms, 0);
    assert_eq!(record.goal, "Fix the parser\n\nsome note");
    assert_eq!(
        record.section("my notes").unwrap(),
        ["keep `make check` green"]
    );

    assert_eq!(MissionRecord::parse("hello\n"), Err(RecordError::NoHeading));
    assert_eq!(
        MissionRecord::parse("# Mission \n"),
        Err(RecordError::NoHeading)
    );
    assert_eq!(
        MissionRecord::parse("# Mission m1\n## Plan\n- T1\n"),
        Err(RecordError::NoGoal)
    );
    assert_eq!(
        MissionRecord::parse("# Mission m1\nended: yesterday\n## Goal\nx\n"),
        Err(RecordError::BadTime {
            value: "yesterday".into()
        })
    );
}

fn record(mission: &str, ended_ms: u64, goal: &str, checks: &[&str]) -> MissionRecord {
    MissionRecord {
        mission: mission.into(),
        ended_ms,
        outcome: "completed".into(),
        goal: goal.into(),
        sections: vec![(
            "Checks".into(),
            checks.iter().map(|check| check.to_string()).collect(),
        )],
    }
}

#[test]
fn the_digest_puts_the_relevant_record_first_and_names_each_line_s_source() {
    let records = [
        record(
            "m1",
            100,
            "Write the slugify function",
            &["`pytest`: passed 2"],
        ),
        record(
            "m2",
            200,
            "Translate the README to French",
            &["`make`: passed 1"],
        ),
    ];
    let digest = digest(&records, "Make slugify handle unicode", &[], 500).unwrap();
    let lines: Vec<&str> = digest.lines().collect();
    assert!(lines[0].starts_with(DIGEST_HEADING));
    assert_eq!(
        lines[1],
        "- [m1 goal] Write the slugify function (completed)"
    );
    assert_eq!(lines[2], "- [m1 checks] `pytest`: passed 2");
    assert_eq!(
        lines[3],
        "- [m2 goal] Translate the README to French (completed)"
    );

    // With nothing in common, the newest comes first.
    let digest = digest_of(&records, "Something else entirely", 500);
    assert!(
        digest.lines().nth(1).unwrap().starts_with("- [m2 goal]"),
        "{digest}"
    );
}

fn digest_of(records: &[MissionRecord], text: &str, cap: usize) -> String {
    digest(records, text, &[], cap).unwrap()
}

#[test]
fn the_files_a_mission_names_weigh_for_the_records_that_touched_them() {
    let mut touched = record("m1", 100, "Old work", &[]);
    touched.sections.push((
        "Plan".into(),
        vec!["T1 Parser: done (files: src/parse.rs)".into()],
    ));
    let newer = record("m2", 200, "Other work", &[]);
    let files = vec!["src/parse.rs".to_string()];
    let digest = digest(&[touched, newer], "Fix it", &files, 500).unwrap();
    assert!(
        digest.lines().nth(1).unwrap().starts_with("- [m1 goal]"),
        "{digest}"
    );
    assert_eq!(
        paths_in("Fix `src/parse.rs` and lib.rs, see http://x/y."),
        ["src/parse.rs", "lib.rs"]
    );
}

#[test]
fn no_digest_without_records_or_room() {
    let records = [record("m1", 1, "Goal", &["`make`: passed 1"])];
    assert_eq!(digest(&[], "text", &[], 500), None);
    assert_eq!(digest(&records, "text", &[], 0), None);
    // Room for the heading but not for a line.
    assert_eq!(digest(&records, "text", &[], 50), None);
}

fn line() -> impl Strategy<Value = String> {
    "[a-z`:,. ]{1,80}"
        .prop_map(|line| line.trim().to_string())
        .prop_filter("not empty", |line| !line.is_empty())
}

fn records() -> impl Strategy<Value = Vec<MissionRecord>> {
    prop::collection::vec(
        (
            0u64..2_000_000_000_000,
            line(),
            prop::collection::vec((0usize..SECTIONS.len() - 1, line()), 0..12),
        ),
        0..6,
    )
    .prop_map(|records| {
        records
            .into_iter()
            .enumerate()
            .map(|(index, (ended_ms, goal, lines))| {
                let mut sections: Vec<(String, Vec<String>)> = SECTIONS[1..]
                    .iter()
                    .map(|name| (name.to_string(), Vec::new()))
                    .collect();
                for (section, line) in lines {
                    sections[section].1.push(line);
                }
                sections.retain(|(_, lines)| !lines.is_empty());
                MissionRecord {
                    mission: format!("m{index}"),
                    ended_ms: ended_ms / 1000 * 1000,
                    outcome: "completed".into(),
                    goal,
                    sections,
                }
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn a_digest_stays_under_its_cap_and_every_line_comes_from_a_record(
        records in records(),
        text in "[a-z ]{0,60}",
        cap in 0usize..400,
    ) {
        if let Some(digest) = digest(&records, &text, &[], cap) {
            prop_assert!(estimate_tokens(&digest) <= cap);
            for line in digest.lines().skip(1) {
                let (source, rest) = line
                    .strip_prefix("- [")
                    .and_then(|line| line.split_once("] "))
                    .expect("each line names its source");
                let (mission, section) = source.split_once(' ').unwrap();
                let record = records.iter().find(|record| record.mission == mission).unwrap();
                if section == "goal" {
                    prop_assert!(rest.starts_with(crate::domain::prompts::first_line(&record.goal)));
                } else {
                    prop_assert!(record.section(section).unwrap().iter().any(|item| item == rest));
                }
            }
        }
    }

    #[test]
    fn any_record_renders_and_reads_back(records in records()) {
        for record in records {
            prop_assert_eq!(MissionRecord::parse(&record.render()).unwrap(), record);
        }
    }
}
