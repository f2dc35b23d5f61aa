//! Whole missions against the real OpenCode server (`opencode-ai` 1.18.33, found or installed by
//! opencode-client's testkit), with scripted models playing the four agents. `ORCH_SKIP_OPENCODE=1` skips
//! them on a machine that cannot run OpenCode; without it a server that cannot start fails the test.

mod common;

use opencode_client::testkit::{Match, Reply, Rule, Script};
use orchestrator::cli::demo::{self, agent, approve, planner_reply, titles, worker_rules, write};
use orchestrator::cli::summary;
use orchestrator::domain::mission::{MissionStatus, PlanSource, StopCause};
use orchestrator::domain::prompts::Role;
use orchestrator::domain::task::TaskStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_mission_completes() {
    let Some(rig) = common::rig(|_| demo::script()).await else {
        return;
    };
    let report = rig.run(rig.config(), "Build a small text toolkit").await;
    assert_eq!(report.view.status, MissionStatus::Completed);
    assert_eq!(report.view.tasks.len(), 3);
    // The Planner answered through OpenCode's structured output.
    assert_eq!(report.view.plan_source, Some(PlanSource::Structured));
    for task in report.view.tasks.values() {
        assert_eq!(task.status, TaskStatus::Done, "{task:?}");
        assert_eq!(task.runs, 1, "{task:?}");
        assert_eq!(task.attempts, 1, "{task:?}");
    }
    // The dependent task ran after both of its dependencies and was told their results.
    let requests = rig.requests();
    let first = |id: &str| {
        requests
            .iter()
            .position(|request| {
                request.system.contains("ROLE: Worker")
                    && request.last_user.starts_with(&format!("TASK {id}:"))
            })
            .unwrap_or_else(|| panic!("a Worker request for {id}"))
    };
    let approvals = |id: &str| {
        requests
            .iter()
            .position(|request| request.last_user.starts_with(&format!("REVIEW TASK {id}:")))
            .unwrap_or_else(|| panic!("a review of {id}"))
    };
    assert!(first("T1.3") > approvals("T1.1") && first("T1.3") > approvals("T1.2"));
    let t13 = &requests[first("T1.3")].last_user;
    assert!(
        t13.contains("T1.1: Slugs") && t13.contains("T1.2: Word counts"),
        "{t13}"
    );
    // The Planner and the Reviewer could not write; the Workers could.
    for request in &requests {
        let role = ["Planner", "Reviewer", "Commander"]
            .iter()
            .find(|role| request.system.contains(&format!("ROLE: {role}")));
        if role.is_some() {
            assert!(
                !request
                    .tools
                    .iter()
                    .any(|tool| tool == "write" || tool == "bash"),
                "{:?}",
                request.tools
            );
        }
    }
    // The Reviewer saw the diff and the gate's results.
    let review = &requests[approvals("T1.1")].last_user;
    assert!(
        review.contains("textkit_slug.py") && review.contains("python3 -m unittest: passed"),
        "{review}"
    );
    // The files are really there and their tests pass.
    for file in [
        "textkit_slug.py",
        "textkit_words.py",
        "textkit_report.py",
        "test_report.py",
    ] {
        assert!(rig.project.join(file).is_file(), "{file}");
    }
    assert_eq!(report.files().len(), 6, "{:?}", report.files());
    let todo = std::fs::read_to_string(report.plan_file.as_ref().expect("a plan")).unwrap();
    assert!(todo.contains("### T1.3: Report"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_fails_the_gate_fixes_it_after_the_findings() {
    const BROKEN: &str = "def slugify(text):\n    return text\n";
    let Some(rig) = common::rig(|_| {
        let mut script = Script::new()
            .rule(titles())
            .rule(Rule::when(agent(Role::Commander)).reply(Reply::text(demo::DEMO_BRIEF)))
            .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(
                "# Mission: slugs\n## M1: Slugs\n### T1.1: Slugs | agent:Worker\nWrite textkit_slug.py and test_slug.py.\n",
            )));
        // The second attempt (its message carries the review's findings) writes the right code.
        let fixed = Match::All(vec![agent(Role::Worker), Match::LastUserContains("REVIEW FINDINGS".into())]);
        script = script.rule(
            Rule::when(Match::All(vec![
                agent(Role::Worker),
                Match::LastIsToolResult,
                Match::AnyUserContains("REVIEW FINDINGS".into()),
            ]))
            .reply(Reply::text("Fixed slugify.\nSTATUS: DONE fixed slugify")),
        );
        script = script.rule(Rule::when(fixed).reply(Reply::ToolCalls(vec![write("textkit_slug.py",
            demo::SLUG,
        )])));
        for rule in worker_rules(
            "T1.1",
            vec![
                write("textkit_slug.py", BROKEN),
                write("test_slug.py", "import unittest\nfrom textkit_slug import slugify\n\nclass T(unittest.TestCase):\n    def test(self):\n        self.assertEqual(slugify('A b'), 'a-b')\n"),
            ],
            "Wrote slugify.",
        ) {
            script = script.rule(rule);
        }
        script.rule(approve())
    })
    .await
    else {
        return;
    };
    let report = rig.run(rig.config(), "Slugs").await;
    assert_eq!(report.view.status, MissionStatus::Completed);
    let task = &report.view.tasks["T1.1"];
    assert_eq!(task.status, TaskStatus::Done);
    assert_eq!(task.attempts, 2, "{task:?}");
    assert_eq!(task.runs, 1);
    let requests = rig.requests();
    let second = requests
        .iter()
        .find(|request| request.last_user.contains("REVIEW FINDINGS"))
        .expect("the Worker was sent the findings");
    assert!(
        second.last_user.contains("FAIL") || second.last_user.contains("failed"),
        "the findings carry the failing check: {}",
        second.last_user
    );
    let reviews = requests
        .iter()
        .filter(|request| request.last_user.starts_with("REVIEW TASK T1.1:"))
        .count();
    assert_eq!(reviews, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cyclic_plan_is_sent_back_and_fixed() {
    const CYCLIC: &str = "# Mission: cycle\n## M1: Two\n### T1.1: One | depends:T1.2\nWrite one.txt.\n### T1.2: Two | depends:T1.1\nWrite two.txt.\n";
    const FIXED: &str = "# Mission: cycle\n## M1: Two\n### T1.1: One\nWrite one.txt.\n### T1.2: Two | depends:T1.1\nWrite two.txt.\n";
    let Some(rig) = common::rig(|_| {
        let mut script = Script::new()
            .rule(titles())
            .rule(Rule::when(agent(Role::Commander)).reply(Reply::text("Write two files.")))
            .rule(
                Rule::when(agent(Role::Planner))
                    .replies(vec![planner_reply(CYCLIC), planner_reply(FIXED)]),
            );
        for (id, file) in [("T1.1", "one.txt"), ("T1.2", "two.txt")] {
            for rule in worker_rules(id, vec![write(file, "text\n")], &format!("Wrote {file}.")) {
                script = script.rule(rule);
            }
        }
        script.rule(approve())
    })
    .await
    else {
        return;
    };
    let report = rig.run(rig.config(), "Two files").await;
    assert_eq!(report.view.status, MissionStatus::Completed);
    assert_eq!(report.view.plan_attempts, 2);
    // This Planner answers text only, even asked for structured output: the TODO.md path.
    assert_eq!(report.view.plan_source, Some(PlanSource::Markdown));
    let fix = rig
        .requests()
        .into_iter()
        .find(|request| request.last_user.contains("A PREVIOUS PLAN WAS REJECTED"))
        .expect("the Planner was sent its plan's errors");
    assert!(fix.last_user.contains("cycle"), "{}", fix.last_user);
    assert!(fix.last_user.contains("line "), "{}", fix.last_user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_never_parses_stops_the_mission() {
    let Some(rig) = common::rig(|_| {
        Script::new()
            .rule(titles())
            .rule(Rule::when(agent(Role::Commander)).reply(Reply::text("Brief.")))
            .rule(Rule::when(agent(Role::Planner)).reply(Reply::text("I would rather not plan.")))
    })
    .await
    else {
        return;
    };
    let mut config = rig.config();
    config.plan_attempts = 2;
    let report = rig.run(config, "Anything").await;
    let MissionStatus::Stopped {
        cause: cause @ StopCause::NoPlan { .. },
    } = &report.view.status
    else {
        panic!("{:?}", report.view.status)
    };
    let reason = cause.to_string();
    assert!(reason.contains("after 2 attempt"), "{reason}");
    assert!(reason.contains("the answer holds no plan"), "{reason}");
    assert_eq!(report.view.plan_attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_repeating_itself_is_diagnosed_then_failed() {
    let Some(rig) = common::rig(|_| {
        let mut script = Script::new()
            .rule(titles())
            .rule(Rule::when(agent(Role::Commander)).reply(Reply::text("Brief.")))
            .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(
                "# Mission: m\n## M1: m\n### T1.1: Stuck\nNever finishes.\n### T1.2: Fine\nWrite ok.txt.\n### T1.3: After | depends:T1.1\nNever runs.\n",
            )))
            .rule(
                Rule::when(Match::All(vec![agent(Role::Worker), Match::AnyUserContains("TASK T1.1:".into())]))
                    .reply(Reply::text("Let me think about this some more.")),
            );
        for rule in worker_rules("T1.2", vec![write("ok.txt", "ok\n")], "Wrote ok.txt.") {
            script = script.rule(rule);
        }
        script.rule(approve())
    })
    .await
    else {
        return;
    };
    let report = rig.run(rig.config(), "Stuck").await;
    assert_eq!(
        report.view.status,
        MissionStatus::Incomplete {
            failed: 1,
            blocked: 0,
            skipped: 1
        }
    );
    let TaskStatus::Failed { cause } = &report.view.tasks["T1.1"].status else {
        panic!("{:?}", report.view.tasks["T1.1"])
    };
    let reason = cause.to_string();
    assert!(
        reason.contains("stagnated") && reason.contains("repeated"),
        "{reason}"
    );
    assert_eq!(report.view.tasks["T1.2"].status, TaskStatus::Done);
    assert_eq!(
        report.view.tasks["T1.3"].status,
        TaskStatus::Skipped { by: "T1.1".into() }
    );
    assert!(
        rig.requests()
            .iter()
            .any(|request| request.last_user.starts_with("DIAGNOSTIC for TASK T1.1")),
        "the Worker got the diagnostic prompt"
    );
    assert!(summary::render(&report).contains("stagnated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_errors_are_retried_under_the_breaker_and_the_mission_completes() {
    let Some(rig) = common::rig(|_| {
        // The Commander's model fails twice with HTTP 500 before it answers.
        common::one_task(Rule::when(agent(Role::Commander)).replies(vec![
            Reply::http_error(500, "upstream overloaded"),
            Reply::http_error(500, "upstream overloaded"),
            Reply::text("Brief."),
        ]))
    })
    .await
    else {
        return;
    };
    let mut config = rig.config();
    // Give up on a turn at OpenCode's first retry of the failing model call.
    config.monitor.model_retries = 0;
    let report = rig.run(config, "One file").await;
    assert_eq!(
        report.view.status,
        MissionStatus::Completed,
        "{}",
        summary::render(&report)
    );
    assert_eq!(report.model_failures, 2);
    assert!(summary::render(&report).contains("2 failed turn(s)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_always_fails_stops_the_mission_with_a_clear_report() {
    let Some(rig) = common::rig(|_| {
        Script::new().rule(titles()).rule(
            Rule::when(agent(Role::Commander)).reply(Reply::http_error(500, "upstream is down")),
        )
    })
    .await
    else {
        return;
    };
    let mut config = rig.config();
    config.monitor.model_retries = 0;
    config.model_retries = 2;
    config.model_breaker_failures = 2;
    let report = rig.run(config, "Anything").await;
    let MissionStatus::Stopped { cause } = &report.view.status else {
        panic!("{:?}", report.view.status)
    };
    let reason = cause.to_string();
    assert!(reason.contains("Commander"), "{reason}");
    assert!(reason.contains("model"), "{reason}");
    assert!(report.model_failures >= 2, "{}", report.model_failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_independent_tasks_on_four_slots_each_run_once() {
    let ids: Vec<String> = (1..=8).map(|n| format!("T1.{n}")).collect();
    let plan = {
        let mut plan = String::from("# Mission: eight\n## M1: Files\n");
        for id in &ids {
            plan.push_str(&format!("### {id}: File {id}\nWrite {id}.txt.\n"));
        }
        plan
    };
    let Some(rig) = common::rig(|_| {
        let mut script = Script::new()
            .rule(titles())
            .rule(Rule::when(agent(Role::Commander)).reply(Reply::text("Eight files.")))
            .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(&plan)));
        for id in &ids {
            for rule in worker_rules(
                id,
                vec![write(&format!("{id}.txt"), id)],
                &format!("Wrote {id}.txt."),
            ) {
                script = script.rule(rule);
            }
        }
        script.rule(approve())
    })
    .await
    else {
        return;
    };
    let mut config = rig.config();
    config.slots = 4;
    let report = rig.run(config, "Eight files").await;
    assert_eq!(report.view.status, MissionStatus::Completed);
    for id in &ids {
        let task = &report.view.tasks[id];
        assert_eq!((task.runs, task.attempts), (1, 1), "{task:?}");
        assert_eq!(rig.worker_first_turns(id), 1, "{id} was prompted once");
        assert!(rig.project.join(format!("{id}.txt")).is_file());
    }
    let (local, injected, stolen) = report.sources;
    assert_eq!(local + injected + stolen, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_command_that_hangs_is_timed_out_and_the_task_fails() {
    let Some(rig) = common::rig(|_| common::one_task(common::commander())).await else {
        return;
    };
    let mut config = rig.config();
    config.gate.commands = Some(vec![orchestrator::domain::gate::GateCommand::shell(
        "sleep 600",
    )]);
    config.gate.timeout = std::time::Duration::from_secs(2);
    config.review_attempts = 1;
    let started = std::time::Instant::now();
    let report = rig.run(config, "One file").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
    let TaskStatus::Failed { cause } = &report.view.tasks["T1.1"].status else {
        panic!("{:?}", report.view.tasks["T1.1"])
    };
    let reason = cause.to_string();
    assert!(reason.contains("not approved after 1 attempt"), "{reason}");
    let review = rig
        .requests()
        .into_iter()
        .find(|request| request.last_user.starts_with("REVIEW TASK T1.1"))
        .expect("the Reviewer was asked");
    assert!(
        review.last_user.contains("sleep 600: timed out after 2 s"),
        "{}",
        review.last_user
    );
    assert!(matches!(
        report.view.status,
        MissionStatus::Incomplete { .. }
    ));
}
