//! The mission driver against the in-process fakes: ordering and dependencies, review loops, failures,
//! stops, resumes and journal faults, each in milliseconds.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opencode_client::ModelRef;

use crate::domain::agent::AgentErrorKind;
use crate::domain::mission::{MissionStatus, Signal, Stage, StopCause};
use crate::domain::prompts::Role;
use crate::domain::settings::Settings;
use crate::domain::task::{FailCause, TaskStatus};
use crate::engine::fake::{FakeAgents, FakeGates, FakeJournal, Received, Reply};
use crate::engine::{Mission, MissionReport, Ports};

const THREE_TASKS: &str = "\
# Mission: three
## M1: All
### T1.1: Slugs | priority:high
Write slug.py.
### T1.2: Words
Write words.py.
### T1.3: Report | depends:T1.1,T1.2
Write report.py.
";

fn settings() -> Settings {
    let mut settings = Settings::new("/project");
    settings.monitor.min_poll = Duration::from_millis(2);
    settings.monitor.max_poll = Duration::from_millis(20);
    settings.monitor.stall_after = Duration::from_millis(300);
    settings.monitor.turn_timeout = Duration::from_secs(3);
    settings.monitor.diff_wait = Duration::from_millis(20);
    settings.model_retry_delay = Duration::from_millis(1);
    settings.model_breaker_open_for = Duration::from_millis(5);
    settings
}

/// The task id a Worker's message is about (`TASK T1.2: …`, `RESUME TASK T1.2: …`, …).
fn task_of(text: &str) -> String {
    text.split_whitespace()
        .find(|word| word.starts_with('T') && word.ends_with(':') && word.len() > 2)
        .map(|word| word.trim_end_matches(':').to_string())
        .unwrap_or_default()
}

/// A script: the Commander briefs, the Planner answers `plan`, each Worker does what `worker` says, and
/// the Reviewer approves unless the checks failed.
fn script(
    plan: &'static str,
    worker: impl Fn(&str, &Received, usize) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Received, usize) -> Reply + Send + Sync + 'static {
    move |received, before| match received.role {
        Some(Role::Commander) => Reply::text("Brief: do it well."),
        Some(Role::Planner) => Reply::text(format!("Here:\n```markdown\n{plan}```\n")),
        Some(Role::Worker) => worker(&task_of(&received.text), received, before),
        Some(Role::Reviewer) if received.text.contains("failed (exit") => {
            Reply::text("VERDICT: CHANGES_REQUESTED\n- the checks fail")
        }
        Some(Role::Reviewer) => Reply::approve(),
        None => Reply::text("?"),
    }
}

struct Rig {
    agents: Arc<FakeAgents>,
    journal: Arc<FakeJournal>,
    gates: Arc<FakeGates>,
    settings: Settings,
}

impl Rig {
    fn new(script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self {
            agents: FakeAgents::new("http://fake-a", script),
            journal: FakeJournal::new(),
            gates: FakeGates::passing(),
            settings: settings(),
        }
    }

    fn ports(&self) -> Ports {
        Ports {
            servers: vec![self.agents.clone()],
            journal: self.journal.clone(),
            gates: self.gates.clone(),
        }
    }

    fn mission(&self) -> Mission {
        Mission::create(self.ports(), self.settings.clone(), "m1", "Build a toolkit").unwrap()
    }

    async fn resume(&self) -> Mission {
        let entries = self.journal.entries();
        Mission::resume(self.ports(), self.settings.clone(), &entries)
            .await
            .unwrap()
    }
}

async fn run(mission: Mission) -> MissionReport {
    tokio::time::timeout(Duration::from_secs(10), mission.run())
        .await
        .expect("the mission ends within 10 s")
}

fn status(report: &MissionReport, id: &str) -> TaskStatus {
    report.view.tasks[id].status.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_once_each_after_their_dependencies() {
    let rig = Rig::new(script(THREE_TASKS, |id, _, _| match id {
        "T1.1" => Reply::done(&["slug.py"]).after(Duration::from_millis(20)),
        "T1.2" => Reply::done(&["words.py"]),
        _ => Reply::done(&["report.py"]),
    }));
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    for task in report.view.tasks.values() {
        assert_eq!(task.status, TaskStatus::Done);
        assert_eq!((task.runs, task.attempts), (1, 1), "{}", task.id());
    }
    assert_eq!(
        report.files(),
        ["report.py", "slug.py", "words.py"],
        "each task's files, the orchestrator's own left out"
    );
    // T1.3 started after both of its dependencies were approved, and was told their results.
    let received = rig.agents.received();
    let position = |role: Role, prefix: &str| {
        received
            .iter()
            .position(|r| r.role == Some(role) && r.text.starts_with(prefix))
            .unwrap()
    };
    let t13 = position(Role::Worker, "TASK T1.3:");
    assert!(t13 > position(Role::Reviewer, "REVIEW TASK T1.1:"));
    assert!(t13 > position(Role::Reviewer, "REVIEW TASK T1.2:"));
    assert!(received[t13].text.contains("T1.1: Slugs"));
    assert_eq!(rig.gates.runs(), 3);
    assert!(rig.journal.plan().unwrap().contains("### T1.3: Report"));
    // The journal replays to the same view.
    let replayed = crate::domain::mission::MissionView::replay(&rig.journal.entries()).unwrap();
    assert_eq!(replayed, report.view);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_failure_goes_back_to_the_worker_with_the_findings() {
    let mut rig = Rig::new(script(THREE_TASKS, |_, received, _| {
        assert!(
            !received.text.contains("REVIEW FINDINGS")
                || received.text.contains("assertion failed"),
            "the findings carry the gate's output"
        );
        Reply::done(&["a.py"])
    }));
    // The first gate run fails; the others pass.
    rig.gates = FakeGates::new(|run, _| run > 0);
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed);
    let retried: Vec<_> = report
        .view
        .tasks
        .values()
        .filter(|task| task.attempts == 2)
        .collect();
    assert_eq!(retried.len(), 1, "{report:#?}");
    assert_eq!(retried[0].runs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_never_approved_fails_and_its_dependent_is_skipped() {
    let mut rig = Rig::new(script(THREE_TASKS, |_, _, _| Reply::done(&["a.py"])));
    rig.gates = FakeGates::new(|_, _| false);
    rig.settings.review_attempts = 2;
    let report = run(rig.mission()).await;
    assert_eq!(
        report.view.status,
        MissionStatus::Incomplete {
            failed: 2,
            blocked: 0,
            skipped: 1
        }
    );
    let TaskStatus::Failed {
        cause: FailCause::NotApproved { attempts, .. },
    } = status(&report, "T1.1")
    else {
        panic!("{:?}", status(&report, "T1.1"));
    };
    assert_eq!(attempts, 2);
    assert!(matches!(
        status(&report, "T1.3"),
        TaskStatus::Skipped { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_worker_is_blocked_not_failed_and_says_why() {
    let rig = Rig::new(script(THREE_TASKS, |id, _, _| {
        if id == "T1.2" {
            Reply::text("I looked.\nSTATUS: BLOCKED the project has no words module to extend")
        } else {
            Reply::done(&["a.py"])
        }
    }));
    let report = run(rig.mission()).await;
    assert_eq!(
        report.view.status,
        MissionStatus::Incomplete {
            failed: 0,
            blocked: 1,
            skipped: 1
        }
    );
    assert_eq!(
        status(&report, "T1.2"),
        TaskStatus::Blocked {
            reason: "the project has no words module to extend".into()
        }
    );
    assert_eq!(rig.agents.prompts_to(Role::Worker, "TASK T1.2:"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_repeating_itself_is_diagnosed_then_fails() {
    let rig = Rig::new(script(THREE_TASKS, |id, _, _| {
        if id == "T1.1" {
            Reply::text("thinking about it")
        } else {
            Reply::done(&["b.py"])
        }
    }));
    let report = run(rig.mission()).await;
    let TaskStatus::Failed {
        cause: FailCause::Stagnated { signal },
    } = status(&report, "T1.1")
    else {
        panic!("{:?}", status(&report, "T1.1"));
    };
    assert!(signal.contains("repeated"), "{signal}");
    assert_eq!(
        rig.agents
            .prompts_to(Role::Worker, "DIAGNOSTIC for TASK T1.1"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_fails_the_task_after_its_retries() {
    let mut rig = Rig::new(script(THREE_TASKS, |id, _, _| {
        if id == "T1.2" {
            Reply::model_error("rate limited")
        } else {
            Reply::done(&["a.py"])
        }
    }));
    rig.settings.model_retries = 2;
    let report = run(rig.mission()).await;
    let TaskStatus::Failed {
        cause: FailCause::Model { message },
    } = status(&report, "T1.2")
    else {
        panic!("{:?}", status(&report, "T1.2"));
    };
    assert!(message.contains("rate limited"), "{message}");
    assert_eq!(rig.agents.prompts_to(Role::Worker, "TASK T1.2:"), 3);
    assert!(report.model_failures >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_fails_its_task_and_leaves_the_server_up() {
    // Today's main turned every OpenCode error of a task (a 404 included) into "server down".
    let rig = Rig::new(script(THREE_TASKS, |_, _, _| Reply::done(&["a.py"])));
    let agents = Arc::clone(&rig.agents);
    let mission = rig.mission();
    rig.agents.set_fault(move |call, session| {
        let t11 = agents
            .received()
            .into_iter()
            .find(|r| r.text.starts_with("TASK T1.1:"))?;
        (call == "read a session's changes" && session == Some(t11.session.as_str()))
            .then_some(AgentErrorKind::Refused)
    });
    let report = run(mission).await;
    assert!(matches!(
        status(&report, "T1.1"),
        TaskStatus::Failed {
            cause: FailCause::Agent { .. }
        }
    ));
    assert_eq!(status(&report, "T1.2"), TaskStatus::Done);
    assert_eq!(report.servers, [("http://fake-a".to_string(), true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_server_is_lost_moves_to_the_other_server() {
    let rig = Rig::new(script(THREE_TASKS, |_, _, _| Reply::done(&["a.py"])));
    let other = FakeAgents::new(
        "http://fake-b",
        script(THREE_TASKS, |_, _, _| Reply::done(&["a.py"])),
    );
    let agents = Arc::clone(&rig.agents);
    rig.agents.set_fault(move |call, _| {
        (call == "send a prompt"
            && agents
                .received()
                .iter()
                .any(|r| r.role == Some(Role::Planner)))
        .then_some(AgentErrorKind::Unreachable)
    });
    let ports = Ports {
        servers: vec![rig.agents.clone(), other.clone()],
        ..rig.ports()
    };
    let mission = Mission::create(ports, rig.settings.clone(), "m1", "Build").unwrap();
    let report = run(mission).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    assert_eq!(
        report.servers,
        [
            ("http://fake-a".to_string(), false),
            ("http://fake-b".to_string(), true)
        ]
    );
    assert!(
        report
            .view
            .tasks
            .values()
            .all(|task| task.server.as_deref() == Some("http://fake-b"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_aborts_the_running_sessions_and_their_sub_agents() {
    let rig = Rig::new(script(THREE_TASKS, |id, _, _| {
        if id == "T1.1" {
            Reply::hang()
        } else {
            Reply::done(&["a.py"])
        }
    }));
    let mission = rig.mission();
    let stop = mission.stop_handle();
    let agents = Arc::clone(&rig.agents);
    let running = tokio::spawn(run(mission));
    // Wait for T1.1's Worker, then give it a sub-agent of its own, as its `task` tool would.
    let worker = loop {
        if let Some(received) = agents
            .received()
            .into_iter()
            .find(|r| r.text.starts_with("TASK T1.1:"))
        {
            break received.session;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let child = agents.spawn_child(&worker);
    stop.stop(StopCause::Signal {
        signal: Signal::Interrupt,
    });
    let report = running.await.unwrap();
    assert_eq!(
        report.view.status,
        MissionStatus::Stopped {
            cause: StopCause::Signal {
                signal: Signal::Interrupt
            }
        }
    );
    assert_eq!(status(&report, "T1.1"), TaskStatus::Interrupted);
    assert_eq!(report.view.stage, Some(Stage::Work), "where it stopped");
    let aborted = agents.aborted();
    let at = |session: &str| aborted.iter().position(|s| s == session).unwrap();
    assert!(at(&child) < at(&worker), "leaves first: {aborted:?}");
    assert!(agents.busy().is_empty(), "{:?}", agents.busy());
    let prompts = agents.received().len();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(agents.received().len(), prompts, "no prompt after the stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_stop_continues_the_interrupted_session_and_redoes_nothing() {
    // Today's main: the resumed task saw the orchestrator's own abort and failed "the model failed: Aborted".
    let rig = Rig::new(script(THREE_TASKS, |id, received, _| {
        if id == "T1.2" && received.text.starts_with("TASK T1.2:") {
            Reply::hang()
        } else {
            Reply::done(&["a.py"])
        }
    }));
    let mission = rig.mission();
    let stop = mission.stop_handle();
    let agents = Arc::clone(&rig.agents);
    let running = tokio::spawn(run(mission));
    while agents.prompts_to(Role::Worker, "TASK T1.2:") == 0
        || agents.prompts_to(Role::Reviewer, "REVIEW TASK T1.1:") == 0
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    stop.stop(StopCause::Signal {
        signal: Signal::Terminate,
    });
    let stopped = running.await.unwrap();
    assert_eq!(status(&stopped, "T1.2"), TaskStatus::Interrupted);
    let session = stopped.view.tasks["T1.2"].worker_session.clone().unwrap();

    let report = run(rig.resume().await).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    assert_eq!(report.model_failures, 0);
    let t12 = &report.view.tasks["T1.2"];
    assert_eq!(t12.worker_session.as_deref(), Some(session.as_str()));
    assert_eq!((t12.attempts, t12.runs), (1, 2));
    assert_eq!(rig.agents.prompts_to(Role::Worker, "TASK T1.2:"), 1);
    assert_eq!(rig.agents.prompts_to(Role::Worker, "RESUME TASK T1.2:"), 1);
    // T1.1 was done before the stop: not redone.
    assert_eq!(rig.agents.prompts_to(Role::Worker, "TASK T1.1:"), 1);
    assert_eq!(report.view.tasks["T1.1"].runs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_crash_follows_the_turn_still_running() {
    let rig = Rig::new(script(THREE_TASKS, |id, _, _| {
        let reply = Reply::done(&["a.py"]);
        if id == "T1.1" {
            reply.after(Duration::from_millis(150))
        } else {
            reply
        }
    }));
    let mission = rig.mission();
    let agents = Arc::clone(&rig.agents);
    let running = tokio::spawn(run(mission));
    while agents.prompts_to(Role::Worker, "TASK T1.1:") == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The orchestrator dies: nothing more is recorded, and nothing is aborted.
    running.abort();
    let _ = running.await;
    let report = run(rig.resume().await).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    assert_eq!(
        agents.prompts_to(Role::Worker, "TASK T1.1:"),
        1,
        "followed, not prompted again"
    );
    assert_eq!(report.view.tasks["T1.1"].attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_be_written_stops_the_mission_at_every_step() {
    let reference = {
        let rig = Rig::new(script(THREE_TASKS, |_, _, _| Reply::done(&["a.py"])));
        run(rig.mission()).await;
        rig.journal.entries().len()
    };
    for fail_from in 1..reference {
        let rig = Rig::new(script(THREE_TASKS, |_, _, _| Reply::done(&["a.py"])));
        rig.journal.fail_from(fail_from);
        let report = tokio::time::timeout(Duration::from_secs(5), rig.mission().run())
            .await
            .unwrap_or_else(|_| panic!("a journal failing at {fail_from} hangs the mission"));
        let Some(StopCause::Journal { path, error }) = report.stop_cause() else {
            panic!("failing at {fail_from}: {:?}", report.view.status);
        };
        assert!(
            path.contains("/fake/journal") && error.contains("No space left"),
            "{error}"
        );
        assert_eq!(
            rig.journal.entries().len(),
            fail_from,
            "nothing written after the failure"
        );
        assert!(
            rig.agents.busy().is_empty(),
            "failing at {fail_from}: a session was left running"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reviewer_uses_the_command_line_model() {
    // Today's main sent the Reviewer's turn without a model and outside the retry and breaker.
    let mut rig = Rig::new(script(THREE_TASKS, |_, _, _| Reply::done(&["a.py"])));
    let cli = ModelRef::parse("cli/model").unwrap();
    rig.settings.models.command_line = Some(cli.clone());
    rig.settings
        .models
        .roles
        .insert(Role::Reviewer, ModelRef::parse("config/reviewer").unwrap());
    run(rig.mission()).await;
    for received in rig.agents.received() {
        assert_eq!(
            received.request.model.as_ref(),
            Some(&cli),
            "{:?}",
            received.role
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_brief_is_asked_again_and_a_cut_off_worker_is_asked_for_the_rest() {
    let rig = Rig::new(move |received: &Received, before| match received.role {
        Some(Role::Commander) if before == 0 => Reply {
            cut_off: true,
            ..Reply::text("An endless brief ".repeat(50))
        },
        Some(Role::Commander) => Reply::text("Short brief."),
        Some(Role::Worker) if received.text.starts_with("TASK") => Reply {
            cut_off: true,
            changes: vec!["a.py"],
            ..Reply::text("Wrote a.py and then")
        },
        Some(Role::Worker) => Reply::text(" tested it.\nSTATUS: DONE wrote a.py"),
        _ => script("### T1: One\nDo it.\n", |_, _, _| Reply::default())(received, before),
    });
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    assert_eq!(report.view.brief.as_deref(), Some("Short brief."));
    assert_eq!(rig.agents.prompts_to(Role::Commander, "ANSWER AGAIN"), 1);
    assert_eq!(rig.agents.prompts_to(Role::Worker, "CONTINUE"), 1);
    assert_eq!(
        report.view.tasks["T1"].report.as_deref(),
        Some("wrote a.py")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_plan_attempt_gets_a_fresh_session_and_says_what_was_wrong() {
    // Today's main reused the Planner's session (each retry carried every earlier bad answer) and said
    // "line 1: the plan has no tasks" of an answer that held no plan at all.
    let rig = Rig::new(move |received: &Received, before| match received.role {
        Some(Role::Planner) if received.text.contains("REJECTED") => {
            Reply::text("```markdown\n### T1: One\nDo it.\n```")
        }
        Some(Role::Planner) => Reply::text("I would start by reading the code."),
        _ => script("", |_, _, _| Reply::done(&["a.py"]))(received, before),
    });
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    let planners: Vec<Received> = rig
        .agents
        .received()
        .into_iter()
        .filter(|r| r.role == Some(Role::Planner))
        .collect();
    assert_eq!(planners.len(), 2);
    assert_ne!(planners[0].session, planners[1].session);
    assert!(
        planners[1].text.contains("the answer holds no plan"),
        "{}",
        planners[1].text
    );
    assert!(
        !planners[1].text.contains("I would start"),
        "no earlier answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_never_parses_stops_the_mission() {
    let mut rig = Rig::new(script("### T1: Loop | depends:T1\n", |_, _, _| {
        Reply::default()
    }));
    rig.settings.plan_attempts = 2;
    let report = run(rig.mission()).await;
    let Some(StopCause::NoPlan { attempts, errors }) = report.stop_cause() else {
        panic!("{:?}", report.view.status);
    };
    assert_eq!(*attempts, 2);
    assert!(errors.contains("depends on itself"), "{errors}");
    assert_eq!(report.plan_file, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_turn_is_noticed_when_its_update_lands_mid_look() {
    // Today's main created the wake-up future after reading the session's state: an update landing in
    // between was missed, and the end of the turn noticed up to `max_poll` late.
    let mut rig = Rig::new(script("### T1: One\nDo it.\n", |_, _, _| Reply::hang()));
    rig.settings.monitor.max_poll = Duration::from_secs(5);
    rig.settings.monitor.stall_after = Duration::from_secs(30);
    let inner = Arc::clone(&rig.agents);
    // The Worker's turn ends while the monitor is looking at its messages: the answer is not in the list
    // it gets, and the idle update arrives before it waits.
    rig.agents.on_messages(move |session| {
        let working = inner
            .received()
            .iter()
            .rev()
            .find(|r| r.session == session)
            .is_some_and(|r| r.text.starts_with("TASK"));
        if working && inner.busy().iter().any(|busy| busy == session) {
            inner.complete(session, &Reply::done(&["a.py"]));
            // Let the monitor's update reader (on the other runtime thread) take the idle update before
            // this look returns.
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(50)));
        }
    });
    let started = std::time::Instant::now();
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_turn_leaves_no_watch_behind() {
    let agents = FakeAgents::new("http://fake", |_, _| Reply::hang());
    let monitor =
        crate::engine::monitor::Monitor::start(agents.clone(), settings().monitor.clone());
    let session = crate::engine::ports::Agents::create_session(agents.as_ref(), "t", None, None)
        .await
        .unwrap();
    let request = crate::engine::turns::Turns::request(
        &settings(),
        &crate::engine::turns::Ask {
            role: Role::Worker,
            session: &session,
            text: "TASK T1: x".into(),
            schema: None,
        },
    );
    let turn = monitor.turn(&session, &request, true);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), turn)
            .await
            .is_err()
    );
    assert!(monitor.watched().is_empty(), "{:?}", monitor.watched());
    assert_eq!(monitor.in_flight(), [session], "a stop must still abort it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_sessions_work_in_the_project() {
    let rig = Rig::new(script("### T1: One\nDo it.\n", |_, _, _| {
        Reply::done(&["a.py"])
    }));
    let report = run(rig.mission()).await;
    let session = report.view.tasks["T1"].worker_session.clone().unwrap();
    assert!(
        rig.agents.parent(&session).is_some(),
        "a child of a pooled parent"
    );
    let _: Option<&Path> = rig.agents.directory(&session).as_deref();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orchestrators_own_files_are_neither_changes_nor_reviewed() {
    // OpenCode's snapshot of a Worker's turn sees the journal, status file and log the orchestrator wrote
    // meanwhile, unless git ignores them.
    let rig = Rig::new(script(THREE_TASKS, |id, _, _| match id {
        "T1.1" => Reply::done(&[
            "slug.py",
            ".opencode/orchestrator/missions/m1/log-00000000000000000001",
            ".opencode/orchestrator/orchestrator.log",
        ]),
        "T1.2" => Reply::done(&["words.py", ".opencode/todo.md"]),
        _ => Reply::done(&["report.py"]),
    }));
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    assert_eq!(report.files(), ["report.py", "slug.py", "words.py"]);
    for review in rig
        .agents
        .received()
        .iter()
        .filter(|received| received.role == Some(Role::Reviewer))
    {
        // The diff shows each file under a `=== path` line.
        assert!(
            !review
                .text
                .lines()
                .any(|line| line.starts_with("=== .opencode/")),
            "the Reviewer was shown the orchestrator's files: {}",
            review.text
        );
    }
}
