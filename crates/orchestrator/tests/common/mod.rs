//! What the mission tests share: a scripted model and a real OpenCode server in a scratch project, and a
//! mission configured for tests (short stall times, fast retries).

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opencode_client::testkit::{ModelRequest, Reply, Rule, Script};
use std::sync::Arc;

use orchestrator::adapters::gate::ProjectGate;
use orchestrator::adapters::journal::{self, FileJournal};
use orchestrator::adapters::opencode::{self as server, DemoServer, Opencode};
use orchestrator::cli::demo::{self, agent, approve, planner_reply, titles, worker_rules, write};
use orchestrator::cli::summary;
use orchestrator::domain::prompts::Role;
use orchestrator::domain::settings::Settings;
use orchestrator::engine::{Mission, MissionReport, Ports};

/// A scratch project, a scripted model and a real OpenCode server on it.
pub struct Rig {
    pub demo: DemoServer,
    pub project: PathBuf,
    pub started: Instant,
    _dir: tempfile::TempDir,
}

/// Starts a rig whose script is built for its project, or `None` when `ORCH_SKIP_OPENCODE=1`.
pub async fn rig(script: impl FnOnce(&Path) -> Script) -> Option<Rig> {
    if std::env::var("ORCH_SKIP_OPENCODE").as_deref() == Ok("1") {
        eprintln!(
            "ORCH_SKIP_OPENCODE=1: skipping a mission test that needs the real OpenCode server"
        );
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("orchestrator-test-")
        .tempdir()
        .expect("a temporary directory");
    let project = dir.path().join("project");
    demo::prepare_project(&project).expect("prepare the project");
    opencode_client::testkit::init_git(&project).expect("git init");
    let demo = server::start_demo(script(&project), &project)
        .await
        .unwrap_or_else(|error| {
            panic!("the real OpenCode server is needed for this test and did not start: {error}")
        });
    eprintln!(
        "real OpenCode server at {} ({}), project {}",
        demo.server.url(),
        demo.server.binary().display(),
        project.display()
    );
    Some(Rig {
        demo,
        project,
        started: Instant::now(),
        _dir: dir,
    })
}

impl Rig {
    /// A mission configuration for tests: the demo's gate, quick retries and stall detection.
    pub fn config(&self) -> Settings {
        let mut config = Settings::new(&self.project);
        config.gate.commands = Some(demo::gate());
        config.gate.timeout = Duration::from_secs(60);
        config.monitor.stall_after = Duration::from_secs(60);
        config.monitor.turn_timeout = Duration::from_secs(120);
        config.calls.base_delay = Duration::from_millis(50);
        config.model_breaker_open_for = Duration::from_millis(500);
        config
    }

    /// Runs a mission to its end.
    pub async fn run(&self, settings: Settings, text: &str) -> MissionReport {
        let opencode = Opencode::new(self.demo.server.client(), &settings.calls);
        let id = format!("m{}", std::process::id());
        let directory = journal::missions_dir(&self.project).join(&id);
        let journal = FileJournal::create(&directory).expect("a journal");
        let ports = Ports {
            servers: vec![Arc::new(opencode)],
            journal: Arc::new(journal),
            gates: Arc::new(ProjectGate::new(
                settings.gate.commands.clone(),
                settings.gate.timeout,
            )),
            workspace: None,
        };
        let mission = Mission::create(ports, settings, &id, text).expect("a valid mission");
        let report = tokio::time::timeout(Duration::from_secs(300), mission.run())
            .await
            .expect("the mission ends within 5 minutes");
        eprintln!("{}", summary::render(&report));
        self.print_requests();
        if std::env::var_os("ORCH_PRINT_SERVER_LOG").is_some() {
            eprintln!("{}", self.demo.server.log());
        }
        report
    }

    /// The model's requests.
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.demo.model.requests()
    }

    /// Prints each model request's time and first user line, for the test's output.
    pub fn print_requests(&self) {
        for request in self.requests() {
            let role = request
                .system
                .lines()
                .find_map(|line| line.strip_prefix("ROLE: "))
                .unwrap_or("(title)");
            eprintln!(
                "  {:>7.2} s  {:<9} {}",
                request
                    .at
                    .saturating_duration_since(self.started)
                    .as_secs_f64(),
                role,
                request.last_user.lines().next().unwrap_or("")
            );
        }
    }

    /// How many first turns (not tool callbacks) a Worker had for task `id`.
    pub fn worker_first_turns(&self, id: &str) -> usize {
        let marker = format!("TASK {id}:");
        self.requests()
            .iter()
            .filter(|request| {
                request.system.contains("ROLE: Worker")
                    && request.last_user.starts_with(&marker)
                    && !request.is_tool_callback()
            })
            .count()
    }
}

/// A one-task mission (T1.1 writes one.txt) whose Commander answers with `commander`.
pub fn one_task(project: &Path, commander: Rule) -> Script {
    let mut script =
        Script::new()
            .rule(titles())
            .rule(commander)
            .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(
                "# Mission: one\n## M1: One\n### T1.1: One\nWrite one.txt.\n",
            )));
    for rule in worker_rules(
        "T1.1",
        vec![write(project, "one.txt", "1\n")],
        "Wrote one.txt.",
    ) {
        script = script.rule(rule);
    }
    script.rule(approve())
}

/// A Commander that answers at once.
pub fn commander() -> Rule {
    Rule::when(agent(Role::Commander)).reply(Reply::text("Brief."))
}
