//! Mission memory and context upkeep against the real OpenCode server, with a scripted model: what one
//! mission learned reaches the next one's Planner (and stops reaching it once forgotten), and a Worker
//! whose context grew past the threshold goes on in a fresh session with a handoff summary.
//! `ORCH_SKIP_OPENCODE=1` skips them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use opencode_client::testkit::{Match, ModelRequest, Reply, Rule, Script, Usage};
use orchestrator::adapters::gate::ProjectGate;
use orchestrator::adapters::journal::{self, FileJournal};
use orchestrator::adapters::opencode::Opencode;
use orchestrator::adapters::records::{RecordShelf, memory_dir};
use orchestrator::cli::demo::{self, agent, approve, planner_reply, titles, write};
use orchestrator::cli::summary;
use orchestrator::domain::mission::MissionStatus;
use orchestrator::domain::prompts::Role;
use orchestrator::domain::recall::{DIGEST_HEADING, estimate_tokens};
use orchestrator::domain::settings::Settings;
use orchestrator::engine::{Mission, MissionReport, Ports};

/// A slugify that fails its test (it neither lowercases nor joins with dashes).
const BROKEN: &str = "def slugify(text):\n    return text\n";

/// Still broken, differently.
const STILL_BROKEN: &str = "def slugify(text):\n    return text.lower()\n";

const SLUG_TEST: &str = "import unittest\nfrom textkit_slug import slugify\n\nclass T(unittest.TestCase):\n    def test(self):\n        self.assertEqual(slugify('A b'), 'a-b')\n";

const FINDING: &str = "slugify must lowercase the text and join the words with dashes";

/// Runs mission `id` on the rig's server, with the project's mission records wired in.
async fn run(rig: &common::Rig, settings: Settings, id: &str, text: &str) -> MissionReport {
    let opencode = Opencode::new(rig.demo.server.client(), &settings.calls);
    let directory = journal::missions_dir(&rig.project).join(id);
    let journal = FileJournal::create(&directory).expect("a journal");
    let ports = Ports {
        servers: vec![Arc::new(opencode)],
        journal: Arc::new(journal),
        gates: Arc::new(ProjectGate::new(
            settings.gate.commands.clone(),
            settings.gate.timeout,
        )),
        workspace: None,
        memory: None,
        records: Some(Arc::new(RecordShelf::new(&rig.project))),
    };
    let mission = Mission::create(ports, settings, id, text).expect("a valid mission");
    let report = tokio::time::timeout(Duration::from_secs(300), mission.run())
        .await
        .expect("the mission ends within 5 minutes");
    eprintln!("{}", summary::render(&report));
    rig.print_requests();
    report
}

/// The first request to `role` among `requests` that is not a tool callback.
fn first_prompt(requests: &[ModelRequest], role: Role) -> &ModelRequest {
    requests
        .iter()
        .find(|request| request.system.contains(&role.marker()) && !request.is_tool_callback())
        .unwrap_or_else(|| panic!("no request to the {role:?}"))
}

/// The digest in a prompt's text: from its heading to the end of its `- [` lines.
fn digest_in(text: &str) -> Option<String> {
    let start = text.find(DIGEST_HEADING)?;
    let mut lines = text[start..].lines();
    let mut digest = format!("{}\n", lines.next()?);
    for line in lines.take_while(|line| line.starts_with("- [")) {
        digest.push_str(line);
        digest.push('\n');
    }
    Some(digest)
}

/// Mission 1: the slugify task, whose first attempt fails the check and gets the Reviewer's finding.
fn slug_script() -> Script {
    let task = Match::AnyUserContains("TASK T1.1:".into());
    let findings = Match::AnyUserContains("REVIEW FINDINGS".into());
    Script::new()
        .rule(titles())
        .rule(Rule::when(agent(Role::Commander)).reply(Reply::text("Slugs, with tests.")))
        .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(
            "# Mission: slugs\n## M1: Slugs\n### T1.1: Slugs | files:textkit_slug.py,test_slug.py\nWrite textkit_slug.py and test_slug.py.\n",
        )))
        .rule(
            Rule::when(Match::All(vec![
                agent(Role::Worker),
                findings.clone(),
                Match::LastIsToolResult,
            ]))
            .reply(Reply::text("Fixed slugify.\nSTATUS: DONE fixed slugify")),
        )
        .rule(
            Rule::when(Match::All(vec![agent(Role::Worker), findings]))
                .reply(Reply::ToolCalls(vec![write("textkit_slug.py", demo::SLUG)])),
        )
        .rule(
            Rule::when(Match::All(vec![
                agent(Role::Worker),
                task.clone(),
                Match::LastIsToolResult,
            ]))
            .reply(Reply::text("Wrote slugify.\nSTATUS: DONE wrote slugify")),
        )
        .rule(
            Rule::when(Match::All(vec![agent(Role::Worker), task])).reply(Reply::ToolCalls(vec![
                write("textkit_slug.py", BROKEN),
                write("test_slug.py", SLUG_TEST),
            ])),
        )
        .rule(
            Rule::when(Match::All(vec![
                agent(Role::Reviewer),
                Match::LastUserContains("failed (exit".into()),
            ]))
            .reply(Reply::text(format!(
                "VERDICT: CHANGES_REQUESTED\n- {FINDING}"
            ))),
        )
        .rule(approve())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_mission_learned_reaches_the_next_planner_until_it_is_forgotten() {
    let Some(rig) = common::rig(|_| slug_script()).await else {
        return;
    };
    let cap = 300;
    let mut settings = rig.config();
    settings.memory_digest_tokens = cap;

    // Mission 1: fails the check once, fixed after the findings.
    let report = run(&rig, settings.clone(), "m1", "Slugify titles").await;
    assert_eq!(report.view.status, MissionStatus::Completed);
    assert_eq!(report.view.tasks["T1.1"].attempts, 2);
    let shelf = RecordShelf::new(&rig.project);
    let record = std::fs::read_to_string(memory_dir(&rig.project).join("m1.md"))
        .expect("mission 1 left its record");
    eprintln!("the record of mission 1:\n{record}");
    assert!(record.starts_with("# Mission m1\n"), "{record}");
    assert!(
        record.contains("- `python3 -m unittest`: passed 1, failed 1; last passed (T1.1)"),
        "{record}"
    );
    assert!(record.contains(&format!("- T1.1: {FINDING}")), "{record}");

    // Mission 2: its Commander and Planner are told, within the cap, where each line came from.
    let before = rig.requests().len();
    rig.demo
        .model
        .set_script(common::one_task(common::commander()));
    let report = run(
        &rig,
        settings.clone(),
        "m2",
        "Write one.txt next to the slugify module",
    )
    .await;
    assert_eq!(report.view.status, MissionStatus::Completed);
    let requests = rig.requests().split_off(before);
    for role in [Role::Commander, Role::Planner] {
        let prompt = &first_prompt(&requests, role).last_user;
        let digest = digest_in(prompt)
            .unwrap_or_else(|| panic!("the {role:?}'s prompt has no digest:\n{prompt}"));
        assert!(
            digest.contains("- [m1 checks] `python3 -m unittest`: passed 1, failed 1; last passed"),
            "{role:?}: {digest}"
        );
        assert!(
            digest.contains(&format!("- [m1 findings] T1.1: {FINDING}")),
            "{role:?}: {digest}"
        );
        assert!(
            estimate_tokens(&digest) <= cap,
            "{} tokens over a cap of {cap}: {digest}",
            estimate_tokens(&digest)
        );
    }

    // `memory forget m1`, and a damaged record beside the others: mission 3 sees m2 only, and runs.
    let forget = std::process::Command::new(common::binary())
        .args(["memory", "forget", "m1", "--project"])
        .arg(&rig.project)
        .output()
        .expect("run orchestrator memory forget");
    assert!(forget.status.success(), "{}", common::show(&forget));
    assert!(!shelf.path("m1").exists());
    std::fs::write(shelf.path("m0"), "this file lost its heading\n").unwrap();
    let list = std::process::Command::new(common::binary())
        .args(["memory", "list", "--project"])
        .arg(&rig.project)
        .output()
        .expect("run orchestrator memory list");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{}", common::show(&list));
    assert!(listed.contains("  m2 "), "{listed}");
    assert!(!listed.contains("  m1 "), "{listed}");
    assert!(listed.contains("damaged, skipped by missions:"), "{listed}");

    let before = rig.requests().len();
    rig.demo
        .model
        .set_script(common::one_task(common::commander()));
    let report = run(&rig, settings, "m3", "Write one.txt again").await;
    assert_eq!(report.view.status, MissionStatus::Completed);
    let requests = rig.requests().split_off(before);
    for role in [Role::Commander, Role::Planner] {
        let prompt = &first_prompt(&requests, role).last_user;
        assert!(!prompt.contains("[m1 "), "{role:?}: {prompt}");
        assert!(!prompt.contains(FINDING), "{role:?}: {prompt}");
        assert!(
            prompt.contains("- [m2 goal] Write one.txt next to the slugify module"),
            "{role:?}: {prompt}"
        );
    }
}

/// A Worker whose first session reports a context of 30,000 tokens after its first round and 70,000
/// after its second (both failing the check); only a prompt with a handoff fixes the code.
fn growing_script() -> Script {
    let worker = |more: Vec<Match>| {
        let mut all = vec![agent(Role::Worker)];
        all.extend(more);
        Match::All(all)
    };
    let handoff = Match::AnyUserContains("HANDOFF:".into());
    let findings = Match::AnyUserContains("REVIEW FINDINGS".into());
    let task = Match::AnyUserContains("TASK T1.1:".into());
    Script::new()
        .rule(titles())
        .rule(Rule::when(agent(Role::Commander)).reply(Reply::text("Slugs.")))
        .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(
            "# Mission: slugs\n## M1: Slugs\n### T1.1: Slugs\nWrite textkit_slug.py and test_slug.py.\n",
        )))
        .rule(
            Rule::when(worker(vec![handoff.clone(), Match::LastIsToolResult]))
                .reply(Reply::text("Fixed slugify.\nSTATUS: DONE fixed slugify").with_usage(Usage::new(9_000, 50))),
        )
        .rule(
            Rule::when(worker(vec![handoff]))
                .reply(Reply::ToolCalls(vec![write("textkit_slug.py", demo::SLUG)])),
        )
        .rule(
            Rule::when(worker(vec![findings.clone(), Match::LastIsToolResult]))
                .reply(Reply::text("Lowercased.\nSTATUS: DONE lowercased").with_usage(Usage::new(70_000, 50))),
        )
        .rule(
            Rule::when(worker(vec![findings]))
                .reply(Reply::ToolCalls(vec![write("textkit_slug.py", STILL_BROKEN)])),
        )
        .rule(
            Rule::when(worker(vec![task.clone(), Match::LastIsToolResult]))
                .reply(Reply::text("Wrote slugify.\nSTATUS: DONE wrote slugify").with_usage(Usage::new(30_000, 50))),
        )
        .rule(Rule::when(worker(vec![task])).reply(Reply::ToolCalls(vec![
            write("textkit_slug.py", BROKEN),
            write("test_slug.py", SLUG_TEST),
        ])))
        .rule(
            Rule::when(Match::All(vec![
                agent(Role::Reviewer),
                Match::LastUserContains("failed (exit".into()),
            ]))
            .reply(Reply::text(format!("VERDICT: CHANGES_REQUESTED\n- {FINDING}"))),
        )
        .rule(approve())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_past_the_context_threshold_goes_on_in_a_fresh_session_and_completes() {
    let Some(rig) = common::rig(|_| growing_script()).await else {
        return;
    };
    let mut settings = rig.config();
    settings.context_threshold = 50_000;
    let report = run(&rig, settings, "m1", "Slugify titles").await;
    assert_eq!(report.view.status, MissionStatus::Completed);
    let task = &report.view.tasks["T1.1"];
    assert_eq!(task.attempts, 3, "{task:?}");
    assert_eq!(task.handoffs, 1, "{task:?}");

    let requests = rig.requests();
    let workers: Vec<&ModelRequest> = requests
        .iter()
        .filter(|request| {
            request.system.contains(&Role::Worker.marker()) && !request.is_tool_callback()
        })
        .collect();
    assert_eq!(workers.len(), 3, "three rounds");
    // Round 2 (context 30,050, under the threshold) went on in the first session: it carries round 1.
    assert!(workers[1].last_user.contains("REVIEW FINDINGS"));
    assert!(!workers[1].last_user.contains("HANDOFF:"));
    assert!(
        workers[1].assistant_turns() > 0,
        "round 2 continued the session"
    );
    // Round 3 (context 70,050, past it) started a fresh session with the handoff summary.
    let handoff = &workers[2].last_user;
    assert_eq!(
        workers[2].assistant_turns(),
        0,
        "a fresh session: {handoff}"
    );
    assert!(handoff.starts_with("TASK T1.1: Slugs"), "{handoff}");
    assert!(handoff.contains(FINDING), "the latest findings: {handoff}");
    assert!(
        handoff.contains("context reached 70050 tokens"),
        "{handoff}"
    );
    assert!(
        handoff.contains("WHAT WAS DONE SO FAR (the last Worker's report):\nlowercased\n"),
        "the last report: {handoff}"
    );
    assert!(
        handoff.contains("=== textkit_slug.py"),
        "the diff so far: {handoff}"
    );

    // `status` shows the threshold and the handoff.
    let status = std::process::Command::new(common::binary())
        .args(["status", "m1", "--project"])
        .arg(&rig.project)
        .output()
        .expect("run orchestrator status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{}", common::show(&status));
    assert!(
        text.contains("context: a Worker session past 50000 tokens continues in a fresh one"),
        "{text}"
    );
    assert!(text.contains("1 handoff(s) so far"), "{text}");
}
