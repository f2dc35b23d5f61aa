//! The mission driver against the in-process fakes: ordering and dependencies, review loops, failures,
//! stops, resumes and journal faults, each in milliseconds.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opencode_client::ModelRef;

use crate::domain::agent::AgentErrorKind;
use crate::domain::mission::{MissionStatus, PlanSource, Signal, Stage, StopCause};
use crate::domain::prompts::Role;
use crate::domain::settings::Settings;
use crate::domain::task::{FailCause, TaskStatus};
use crate::engine::fake::{
    FakeAgents, FakeFiles, FakeGates, FakeJournal, FakeMemory, FakeWorkspace, Received, Reply,
};
use crate::engine::ports::Workspace;
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
    workspace: Option<Arc<FakeWorkspace>>,
    memory: Option<Arc<FakeMemory>>,
    settings: Settings,
}

impl Rig {
    fn new(script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self {
            agents: FakeAgents::new("http://fake-a", script),
            journal: FakeJournal::new(),
            gates: FakeGates::passing(),
            workspace: None,
            memory: None,
            settings: settings(),
        }
    }

    fn ports(&self) -> Ports {
        Ports {
            servers: vec![self.agents.clone()],
            journal: self.journal.clone(),
            gates: self.gates.clone(),
            workspace: self
                .workspace
                .clone()
                .map(|workspace| workspace as Arc<dyn Workspace>),
            memory: self
                .memory
                .clone()
                .map(|memory| memory as Arc<dyn crate::engine::ports::Memory>),
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
        // The orchestrator's own files in a session's changes are not the task's.
        "T1.1" => Reply::done(&["slug.py", ".opencode/orchestrator/missions/m1/status.json"])
            .after(Duration::from_millis(20)),
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
    assert!(
        agents.busy().is_empty(),
        "{:?} busy; aborted {aborted:?}; received {:?}",
        agents.busy(),
        agents
            .received()
            .iter()
            .map(|r| (
                r.session.clone(),
                r.text.lines().next().unwrap_or("").to_string()
            ))
            .collect::<Vec<_>>()
    );
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
async fn a_failing_reviewer_model_is_retried_like_every_other_turn() {
    // Today's main sent the Reviewer's turn outside the model's retry and breaker: one failure failed the
    // task.
    let rig = Rig::new(move |received: &Received, before| match received.role {
        Some(Role::Reviewer) if before == 0 => Reply::model_error("overloaded"),
        _ => script("### T1: One\nDo it.\n", |_, _, _| Reply::done(&["a.py"]))(received, before),
    });
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    assert_eq!(report.model_failures, 1);
    assert_eq!(rig.agents.prompts_to(Role::Reviewer, "REVIEW TASK T1:"), 2);
}

fn structured_plan() -> serde_json::Value {
    serde_json::json!({
        "title": "two",
        "tasks": [
            { "id": "T1", "title": "One", "description": "Write one.py.", "files": ["one.py"] },
            { "id": "T2", "title": "Two", "description": "Write two.py.", "depends": ["T1"] }
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_comes_as_structured_output() {
    let rig = Rig::new(move |received: &Received, before| match received.role {
        Some(Role::Planner) => {
            assert!(
                received.request.schema.is_some(),
                "asked with the plan's schema"
            );
            Reply {
                structured: Some(structured_plan()),
                ..Reply::default()
            }
        }
        _ => script("", |_, _, _| Reply::done(&["a.py"]))(received, before),
    });
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    assert_eq!(report.view.plan_source, Some(PlanSource::Structured));
    assert_eq!(report.view.tasks["T1"].spec.files, ["one.py"]);
    assert_eq!(report.view.tasks["T2"].spec.depends, ["T1"]);
    let todo = rig.journal.plan().unwrap();
    assert!(
        todo.contains("### T2: Two | agent:Worker | depends:T1"),
        "{todo}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_structured_plan_with_errors_is_sent_back_with_the_plan_it_was_read_as() {
    let rig = Rig::new(move |received: &Received, before| match received.role {
        Some(Role::Planner) if received.text.contains("REJECTED") => Reply {
            structured: Some(structured_plan()),
            ..Reply::default()
        },
        Some(Role::Planner) => Reply {
            structured: Some(serde_json::json!({ "tasks": [
                { "id": "T1", "title": "Loop", "description": "x", "depends": ["T1"] }
            ]})),
            ..Reply::default()
        },
        _ => script("", |_, _, _| Reply::done(&["a.py"]))(received, before),
    });
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    let retry = rig
        .agents
        .received()
        .into_iter()
        .filter(|r| r.role == Some(Role::Planner))
        .nth(1)
        .unwrap();
    assert!(retry.request.schema.is_some(), "still structured");
    assert!(
        retry.text.contains("T1 depends on itself"),
        "{}",
        retry.text
    );
    assert!(retry.text.contains("  1  ### T1: Loop"), "{}", retry.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_structured_output_plans_in_markdown() {
    let rig = Rig::new(script("### T1: One\nDo it.\n", |_, _, _| {
        Reply::done(&["a.py"])
    }));
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    assert_eq!(report.view.plan_source, Some(PlanSource::Markdown));
    assert_eq!(
        report.view.plan_attempts, 1,
        "the text answer was read at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_structured_output_is_asked_for_markdown() {
    let mut rig = Rig::new(|_, _| Reply::default());
    rig.agents = FakeAgents::without_structured_output(
        "http://old",
        script("### T1: One\nDo it.\n", |_, _, _| Reply::done(&["a.py"])),
    );
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    assert_eq!(report.view.plan_source, Some(PlanSource::Markdown));
    assert_eq!(report.view.plan_attempts, 2);
    let planners: Vec<_> = rig
        .agents
        .received()
        .into_iter()
        .filter(|r| r.role == Some(Role::Planner))
        .collect();
    assert_eq!(
        planners.len(),
        1,
        "the refused prompt never reached the model"
    );
    assert!(planners[0].request.schema.is_none());
}

// Isolated work: a worktree per task, the merge queue, delivery.

impl Rig {
    /// A rig in a repository whose agents' script can read the files they write.
    fn isolated_with(
        script: impl FnOnce(Arc<FakeFiles>) -> Box<dyn Fn(&Received, usize) -> Reply + Send + Sync>,
    ) -> Self {
        let files = Arc::new(FakeFiles::default());
        let script = script(Arc::clone(&files));
        let agents = FakeAgents::with_files(
            "http://fake-a",
            Arc::clone(&files),
            move |received, before| script(received, before),
        );
        Self {
            workspace: Some(FakeWorkspace::new(files, &[("README.md", "hello\n")])),
            agents,
            journal: FakeJournal::new(),
            gates: FakeGates::passing(),
            memory: None,
            settings: settings(),
        }
    }
}

/// A Worker that reads `file` in its worktree and writes it whole with `line` added, as a model that
/// rewrites a file does.
fn rewrite(files: &FakeFiles, received: &Received, file: &'static str, line: &str) -> Reply {
    let directory = received
        .directory
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from(crate::engine::fake::PROJECT));
    let before = files.read(&directory.join(file)).unwrap_or_default();
    Reply {
        writes: vec![(file, format!("{before}{line}\n"))],
        ..Reply::text(format!("Added {line}.\nSTATUS: DONE added {line}"))
    }
}

fn integrated(entry: &crate::domain::mission::Entry, id: &str) -> bool {
    matches!(
        &entry.event,
        crate::domain::mission::Event::Task {
            task,
            event: crate::domain::task::TaskEvent::Integrated { .. },
        } if task == id
    )
}

const TWO_FUNCTIONS: &str =
    "### T1: Add one\nAdd one() to lib.py.\n### T2: Add two\nAdd two() to lib.py.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_rewriting_one_file_both_land_and_the_second_is_redone_on_the_first() {
    // Today's main ran both Workers in the user's tree: the second whole-file write removed the first
    // function, and both tasks ended "done".
    let rig = Rig::isolated_with(|files| {
        Box::new(move |received: &Received, before| {
            match (received.role, task_of(&received.text).as_str()) {
                (Some(Role::Worker), "T1") => {
                    rewrite(&files, received, "lib.py", "def one(): pass")
                        .after(Duration::from_millis(30))
                }
                (Some(Role::Worker), "T2") => {
                    rewrite(&files, received, "lib.py", "def two(): pass")
                        .after(Duration::from_millis(30))
                }
                _ => script(TWO_FUNCTIONS, |_, _, _| Reply::default())(received, before),
            }
        })
    });
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    let workspace = rig.workspace.as_ref().unwrap();
    let result = workspace.branch("orchestrator/m1").unwrap();
    let lib = workspace.files_of(&result)["lib.py"].clone();
    assert!(
        lib.contains("def one()") && lib.contains("def two()"),
        "{lib}"
    );
    // One of them was redone on top of the other, told what conflicted.
    let redone: Vec<_> = report
        .view
        .tasks
        .values()
        .filter(|task| task.runs == 2)
        .collect();
    assert_eq!(redone.len(), 1, "{report:#?}");
    let retry = rig
        .agents
        .received()
        .into_iter()
        .find(|r| r.text.contains("conflicted"))
        .expect("the redo names the conflict");
    assert!(retry.text.contains("### lib.py"), "{}", retry.text);
    assert!(retry.text.contains("def one(): pass"), "{}", retry.text);
    // The user's branch got the result; the worktrees are gone, the branches kept.
    assert_eq!(workspace.branch("main"), Some(result));
    let (opened, closed) = workspace.trees();
    assert!(
        opened.iter().all(|tree| closed.contains(tree)),
        "{opened:?} {closed:?}"
    );
    assert_eq!(
        redone[0]
            .branches
            .iter()
            .map(|branch| branch.split('/').next().unwrap())
            .collect::<Vec<_>>(),
        ["orchestrator-task", "orchestrator-attempt"],
        "its branch, then its first attempt's commits kept on a branch of their own (the report names it): {:?}",
        redone[0].branches
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_changes_nothing_is_sent_back_once_then_fails() {
    let rig = Rig::isolated_with(|_| {
        Box::new(script(
            "### T1: Change | files:a.py\nChange a.py.\n### T2: Check | changes:none\nRun the checks.\n",
            |_, _, _| Reply::text("All good.\nSTATUS: DONE nothing to do"),
        ))
    });
    let report = run(rig.mission()).await;
    assert_eq!(
        status(&report, "T1"),
        TaskStatus::Failed {
            cause: FailCause::NoChange
        }
    );
    assert_eq!(rig.agents.prompts_to(Role::Reviewer, "REVIEW TASK T1:"), 0);
    let sent_back = rig
        .agents
        .received()
        .into_iter()
        .filter(|r| r.role == Some(Role::Worker) && r.text.contains("No change"))
        .count();
    assert_eq!(sent_back, 1);
    assert_eq!(
        status(&report, "T2"),
        TaskStatus::Done,
        "changes:none needs no change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_fails_the_checks_only_once_integrated_is_sent_back_and_fixed() {
    // T1 writes `one` into lib.py; T2 writes `two` into other.py. Each passes alone; the checks fail when
    // both are in (until T2's fix says `fixed`).
    let mut rig = Rig::isolated_with(|files| {
        Box::new(move |received: &Received, before| {
            match (received.role, task_of(&received.text).as_str()) {
                (Some(Role::Worker), "T1") => rewrite(&files, received, "lib.py", "one"),
                (Some(Role::Worker), "T2") if received.text.contains("fails them merged") => {
                    rewrite(&files, received, "other.py", "fixed")
                }
                (Some(Role::Worker), "T2") => {
                    rewrite(&files, received, "other.py", "two").after(Duration::from_millis(60))
                }
                _ => script("### T1: One\nx\n### T2: Two\ny\n", |_, _, _| {
                    Reply::default()
                })(received, before),
            }
        })
    });
    let files = rig.agents.files();
    rig.gates = FakeGates::new(move |_, directory| {
        let lib = files.read(&directory.join("lib.py")).unwrap_or_default();
        let other = files.read(&directory.join("other.py")).unwrap_or_default();
        !(lib.contains("one") && other.contains("two") && !other.contains("fixed"))
    });
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    assert_eq!(report.view.tasks["T2"].runs, 2, "{report:#?}");
    assert!(
        rig.agents
            .received()
            .iter()
            .any(|r| r.text.contains("fails them merged")),
        "the redo says the integrated checks failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_with_overlapping_declared_files_never_run_at_once() {
    let rig = Rig::isolated_with(|_| {
        Box::new(script(
            "### T1: A | files:src/*.py\nx\n### T2: B | files:src/b.py\ny\n### T3: C | files:docs/c.md\nz\n",
            |id, _, _| {
                let file: &'static str = match id {
                    "T1" => "src/a.py",
                    "T2" => "src/b.py",
                    _ => "docs/c.md",
                };
                Reply::done(&[file]).after(Duration::from_millis(40))
            },
        ))
    });
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    // From the journal: T1 and T2 never held a slot at the same time; T3 ran beside one of them.
    let mut running = std::collections::BTreeSet::new();
    let (mut overlapped, mut t3_beside) = (false, false);
    for entry in rig.journal.entries() {
        if let crate::domain::mission::Event::Task { task, event } = &entry.event {
            match event {
                crate::domain::task::TaskEvent::Started { .. } => {
                    running.insert(task.clone());
                }
                crate::domain::task::TaskEvent::Integrated { .. }
                | crate::domain::task::TaskEvent::Failed { .. } => {
                    running.remove(task);
                }
                _ => {}
            }
            overlapped |= running.contains("T1") && running.contains("T2");
            t3_beside |= running.contains("T3") && running.len() > 1;
        }
    }
    assert!(
        !overlapped,
        "T1 and T2 declared overlapping files and ran at once"
    );
    assert!(t3_beside, "T3 shares no file and ran in parallel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_branch_is_left_alone_when_their_tree_changed() {
    let rig = Rig::isolated_with(|_| {
        Box::new(script("### T1: One\nx\n", |_, _, _| {
            Reply::done(&["one.py"])
        }))
    });
    let workspace = Arc::clone(rig.workspace.as_ref().unwrap());
    let before = workspace.branch("main");
    workspace.dirty_user_tree();
    let report = run(rig.mission()).await;
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    assert!(report.view.origin.as_ref().unwrap().dirty());
    assert_eq!(
        workspace.branch("main"),
        before,
        "the user's branch did not move"
    );
    let Some(crate::domain::workspace::Delivery::Kept { command, .. }) = &report.view.delivery
    else {
        panic!("{:?}", report.view.delivery);
    };
    assert_eq!(command, "git merge orchestrator/m1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_cut_by_a_crash_happens_exactly_once_on_resume() {
    for rewind in [false, true] {
        let rig = Rig::isolated_with(|_| {
            Box::new(script(
                "### T1: One\nx\n### T2: Two | depends:T1\ny\n",
                |_, _, _| Reply::done(&["file.py"]),
            ))
        });
        // The orchestrator dies right after journaling T1's merge: the journal takes nothing more.
        rig.journal.fail_on(|entry| integrated(entry, "T1"));
        let stopped = run(rig.mission()).await;
        let (result, onto) = stopped.view.tasks["T1"]
            .merging
            .clone()
            .expect("the merge was journaled");
        let workspace = rig.workspace.as_ref().unwrap();
        if rewind {
            // ... and before the integration branch moved.
            workspace.set_branch("orchestrator/m1", &onto);
        } else {
            assert_eq!(workspace.branch("orchestrator/m1"), Some(result.clone()));
        }
        let journal = FakeJournal::new();
        for entry in rig.journal.entries() {
            crate::engine::ports::Journal::append(journal.as_ref(), &entry).unwrap();
        }
        let ports = Ports {
            journal: journal.clone(),
            ..rig.ports()
        };
        let mission = Mission::resume(ports, rig.settings.clone(), &journal.entries())
            .await
            .unwrap();
        let report = run(mission).await;
        assert_eq!(
            report.view.status,
            MissionStatus::Completed,
            "rewind {rewind}: {report:#?}"
        );
        assert_eq!(
            report.view.tasks["T1"].integrated.as_deref(),
            Some(result.as_str())
        );
        let times = journal
            .entries()
            .iter()
            .filter(|entry| integrated(entry, "T1"))
            .count();
        assert_eq!(times, 1, "rewind {rewind}");
        // T2 was built on T1's integrated result.
        let t2_base = report.view.tasks["T2"].branches.clone();
        assert_eq!(t2_base.len(), 1);
        assert_eq!(
            rig.agents.prompts_to(Role::Worker, "TASK T1:"),
            1,
            "T1 not redone"
        );
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pressure_holds_new_tasks_and_releases_them_when_it_clears() {
    let mut rig = Rig::new(script(
        "### T1: High | priority:high\nx\n### T2: Low | priority:low\ny\n### T3: Medium\nz\n",
        |_, _, _| Reply::done(&["a.py"]),
    ));
    let memory = FakeMemory::new(0.10);
    rig.memory = Some(Arc::clone(&memory));
    let agents = Arc::clone(&rig.agents);
    let running = tokio::spawn(run(rig.mission()));
    // Under the floor: the plan is made, but no task starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        agents
            .received()
            .iter()
            .all(|r| r.role != Some(Role::Worker))
    );
    // A little over the floor: the high-priority task only.
    memory.set(0.22);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let workers: Vec<String> = agents
        .received()
        .iter()
        .filter(|r| r.role == Some(Role::Worker))
        .map(|r| task_of(&r.text))
        .collect();
    assert_eq!(workers, ["T1"], "only the high-priority task started");
    // Clear: the rest.
    memory.set(0.60);
    let report = running.await.unwrap();
    assert_eq!(report.view.status, MissionStatus::Completed, "{report:#?}");
    let holds: Vec<_> = rig
        .journal
        .entries()
        .into_iter()
        .filter_map(|entry| match entry.event {
            crate::domain::mission::Event::Mission {
                event: crate::domain::mission::MissionEvent::Pressure { hold, .. },
            } => Some(hold),
            _ => None,
        })
        .collect();
    use crate::domain::mission::Hold;
    assert_eq!(holds, [Hold::All, Hold::LowPriority, Hold::Nothing]);
}

fn costly(reply: Reply, cost: f64) -> Reply {
    Reply {
        usage: crate::domain::usage::Usage {
            input: 1000,
            output: 200,
            cost_nanos: crate::domain::usage::Usage::nanos(cost),
            ..crate::domain::usage::Usage::default()
        },
        ..reply
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_budget_pauses_the_mission_and_a_higher_one_resumes_it() {
    let three = "### T1: One\nx\n### T2: Two | depends:T1\ny\n### T3: Three | depends:T2\nz\n";
    let mut rig = Rig::new(move |received: &Received, before| {
        let reply = script(three, |_, _, _| Reply::done(&["a.py"]))(received, before);
        costly(reply, 0.10)
    });
    // Commander, Planner, then T1's Worker and Reviewer: 0.40; T2's Worker takes it to 0.50.
    rig.settings.budgets.cost_nanos = Some(crate::domain::usage::Usage::nanos(0.45));
    let report = run(rig.mission()).await;
    let Some(StopCause::Budget {
        budget,
        limit,
        spent,
    }) = report.stop_cause()
    else {
        panic!("{:?}", report.view.status);
    };
    assert_eq!(*budget, crate::domain::usage::Budget::Cost);
    assert_eq!(*limit, crate::domain::usage::Usage::nanos(0.45));
    assert!(*spent >= *limit, "{spent}");
    assert_eq!(status(&report, "T1"), TaskStatus::Done);
    // The overshoot is bounded by the turns running when it was reached: one turn here.
    assert!(
        report.view.usage.total.cost() <= 0.45 + 0.10 + 1e-9,
        "{:?}",
        report.view.usage
    );
    assert!(
        report
            .view
            .warned
            .contains(&crate::domain::usage::Budget::Cost),
        "warned at 80%"
    );
    let prompts = rig.agents.received().len();

    // A higher budget goes on, without redoing T1.
    rig.settings.budgets.cost_nanos = Some(crate::domain::usage::Usage::nanos(5.0));
    let resumed = run(rig.resume().await).await;
    assert_eq!(
        resumed.view.status,
        MissionStatus::Completed,
        "{resumed:#?}"
    );
    assert_eq!(rig.agents.prompts_to(Role::Worker, "TASK T1:"), 1);
    assert!(rig.agents.received().len() > prompts);
    assert_eq!(
        resumed.view.budgets.cost_nanos,
        Some(crate::domain::usage::Usage::nanos(5.0))
    );
    // The usage survived the resume: the summary's total is every reported cost.
    let reported: usize = rig.agents.received().len();
    let expected = reported as f64 * 0.10;
    assert!(
        (resumed.view.usage.total.cost() - expected).abs() < 1e-6,
        "{} vs {expected}",
        resumed.view.usage.total.cost()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_past_its_turns_fails() {
    let mut rig = Rig::new(script("### T1: Chatty\nx\n", |_, received, _| {
        Reply::text(format!("still working on {}", received.text.len()))
    }));
    rig.settings.budgets.turns_per_task = Some(2);
    let report = run(rig.mission()).await;
    assert_eq!(
        status(&report, "T1"),
        TaskStatus::Failed {
            cause: FailCause::TurnBudget { turns: 2 }
        }
    );
    assert_eq!(rig.agents.prompts_to(Role::Worker, ""), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_tool_error_turn_after_turn_is_stagnation() {
    let mut rig = Rig::new(script("### T1: Edit\nx\n", |_, received, _| Reply {
        tool_errors: vec!["edit: oldString not found in lib.py".into()],
        ..Reply::text(format!("trying again ({})", received.text.len()))
    }));
    rig.settings.nudges = 5;
    let report = run(rig.mission()).await;
    let TaskStatus::Failed {
        cause: FailCause::Stagnated { signal },
    } = status(&report, "T1")
    else {
        panic!("{:?}", status(&report, "T1"));
    };
    assert!(
        signal.contains("the same tool error") && signal.contains("oldString"),
        "{signal}"
    );
    assert_eq!(
        rig.agents
            .prompts_to(Role::Worker, "DIAGNOSTIC for TASK T1"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worktree_that_does_not_change_for_turns_is_stagnation() {
    let mut rig = Rig::isolated_with(|_| {
        Box::new(script("### T1: Edit\nx\n", |_, received, _| {
            Reply::text(format!("let me look first ({})", received.text.len()))
        }))
    });
    rig.settings.nudges = 10;
    let report = run(rig.mission()).await;
    let TaskStatus::Failed {
        cause: FailCause::Stagnated { signal },
    } = status(&report, "T1")
    else {
        panic!("{:?}", status(&report, "T1"));
    };
    assert!(
        signal.contains("no change in the worktree for 4 turns"),
        "{signal}"
    );
    assert_eq!(
        rig.agents
            .prompts_to(Role::Worker, "DIAGNOSTIC for TASK T1"),
        1
    );
    assert!(
        rig.agents
            .received()
            .iter()
            .any(|r| r.text.contains("no change in the worktree for 3 turns")),
        "the diagnostic named the signal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_check_failing_on_an_unchanged_change_is_stagnation() {
    let mut rig = Rig::isolated_with(|_| {
        Box::new(script("### T1: Fix\nx\n", |_, received, _| {
            if received.text.starts_with("TASK T1:") && !received.text.contains("REVIEW FINDINGS") {
                Reply::done(&["lib.py"])
            } else {
                // Told to fix it, the Worker says done without touching anything.
                Reply::text("Looks fine to me.\nSTATUS: DONE nothing to fix")
            }
        }))
    });
    rig.gates = FakeGates::new(|_, _| false);
    rig.settings.review_attempts = 5;
    let report = run(rig.mission()).await;
    let TaskStatus::Failed {
        cause: FailCause::Stagnated { signal },
    } = status(&report, "T1")
    else {
        panic!("{:?}", status(&report, "T1"));
    };
    assert!(signal.contains("same check failed again"), "{signal}");
    assert!(
        report.view.tasks["T1"].attempts < 5,
        "stopped before its attempts ran out"
    );
}
