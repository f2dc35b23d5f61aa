//! What the mission tests share: a scripted model and a real OpenCode server in a scratch project, and a
//! mission configured for tests (short stall times, fast retries).

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use opencode_client::testkit::{
    Match, ModelPrice, ModelRequest, OpencodeServer, Reply, Rule, Script, ScriptedModel,
};
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
    rig_configured(script, None, None).await
}

/// [`rig`], the scripted model priced at `price` in OpenCode's configuration (so its answers have a cost).
pub async fn rig_priced(script: impl FnOnce(&Path) -> Script, price: ModelPrice) -> Option<Rig> {
    rig_configured(script, Some(price), None).await
}

/// [`rig`], with the scripted model's `price` and `config` merged into the server's OpenCode configuration.
pub async fn rig_configured(
    script: impl FnOnce(&Path) -> Script,
    price: Option<ModelPrice>,
    config: Option<serde_json::Value>,
) -> Option<Rig> {
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
    let demo = match (price, config) {
        (None, None) => server::start_demo(script(&project), &project)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "the real OpenCode server is needed for this test and did not start: {error}"
                )
            }),
        (price, config) => {
            let model = ScriptedModel::start(script(&project))
                .await
                .expect("the scripted model starts");
            let mut builder = OpencodeServer::builder()
                .model(model.base_url())
                .project(&project);
            if let Some(price) = price {
                builder = builder.model_price(price);
            }
            if let Some(config) = config {
                builder = builder.config(config);
            }
            let server = builder.start().await.unwrap_or_else(|error| {
                panic!(
                    "the real OpenCode server is needed for this test and did not start: {error}"
                )
            });
            DemoServer { model, server }
        }
    };
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

    /// Runs a mission to its end, every Worker in the project itself.
    pub async fn run(&self, settings: Settings, text: &str) -> MissionReport {
        self.run_in(settings, text, None).await
    }

    /// Runs a mission to its end in isolation: a git worktree per task (below the rig's directory, not
    /// the user's cache), integrated through the merge queue.
    pub async fn run_isolated(&self, settings: Settings, text: &str) -> MissionReport {
        let git = orchestrator::adapters::git::GitWorkspace::open(&self.project)
            .await
            .expect("the rig's project is a git repository")
            .with_worktree_root(self.project.parent().expect("a parent").join("worktrees"));
        self.run_in(settings, text, Some(Arc::new(git))).await
    }

    async fn run_in(
        &self,
        settings: Settings,
        text: &str,
        workspace: Option<Arc<dyn orchestrator::engine::ports::Workspace>>,
    ) -> MissionReport {
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
            workspace,
            memory: None,
            records: None,
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
pub fn one_task(commander: Rule) -> Script {
    let mut script =
        Script::new()
            .rule(titles())
            .rule(commander)
            .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(
                "# Mission: one\n## M1: One\n### T1.1: One\nWrite one.txt.\n",
            )));
    for rule in worker_rules("T1.1", vec![write("one.txt", "1\n")], "Wrote one.txt.") {
        script = script.rule(rule);
    }
    script.rule(approve())
}

/// A Commander that answers at once.
pub fn commander() -> Rule {
    Rule::when(agent(Role::Commander)).reply(Reply::text("Brief."))
}

/// The `orchestrator` binary the black-box tests run: `ORCH_TEST_BINARY` when set (to run the same tests
/// against another build, such as the one before a fix), else this package's.
pub fn binary() -> PathBuf {
    std::env::var_os("ORCH_TEST_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_orchestrator")))
}

/// A command's exit status and output, for a failure message.
pub fn show(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Waits for `child` (its output piped) for at most `limit`; on time out, kills it and panics with what it
/// printed.
pub fn wait_with_limit(child: Child, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(limit) {
        Ok(output) => (
            output.expect("wait for the orchestrator"),
            started.elapsed(),
        ),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let output = receiver
                .recv_timeout(Duration::from_secs(10))
                .ok()
                .and_then(Result::ok);
            panic!(
                "the orchestrator did not exit within {limit:?} (killed); {}",
                output
                    .as_ref()
                    .map_or_else(|| "no output".to_string(), show)
            )
        }
    }
}

/// Marks the processes a command starts, and every process they start, with an environment variable, so a
/// test can list those left running after it exits; dropping it kills any that are left.
pub struct ProcessTag {
    value: String,
}

impl ProcessTag {
    /// The variable's name.
    pub const VARIABLE: &'static str = "ORCH_TEST_PROCESS_TAG";

    /// A tag unique to this process and call.
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            value: format!("{}-{next}-{}", std::process::id(), now_nanos()),
        }
    }

    /// Tags `command` (and so what it starts: children inherit the environment).
    pub fn apply<'a>(
        &self,
        command: &'a mut std::process::Command,
    ) -> &'a mut std::process::Command {
        command.env(Self::VARIABLE, &self.value)
    }

    /// The tagged processes still running (not zombies), with their command lines.
    pub fn running(&self) -> Vec<(i32, String)> {
        let needle = format!("{}={}", Self::VARIABLE, self.value);
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if !environ
                .split(|byte| *byte == 0)
                .any(|variable| variable == needle.as_bytes())
            {
                continue;
            }
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // The state follows the command name in parentheses: `Z` is a zombie, already dead.
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            if state == Some('Z') {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, cmdline.trim().to_string()));
        }
        found
    }

    /// Waits up to `limit` for the tagged processes to be gone; returns those still running.
    pub fn wait_gone(&self, limit: Duration) -> Vec<(i32, String)> {
        let deadline = Instant::now() + limit;
        loop {
            let running = self.running();
            if running.is_empty() || Instant::now() >= deadline {
                return running;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Default for ProcessTag {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ProcessTag {
    fn drop(&mut self) {
        for (pid, _) in self.running() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

/// The plan of [`three_tasks`]: T1.3 depends on T1.1 and T1.2.
pub const THREE_TASKS: &str = "# Mission: three files\n## M1: Files\n### T1.1: One\nWrite one.txt.\n### T1.2: Two\nWrite two.txt.\n### T1.3: Three | depends:T1.1,T1.2\nWrite three.txt.\n";

/// Three tasks writing one.txt, two.txt and three.txt; `slow` makes that task's first Worker reply arrive
/// after the delay.
pub fn three_tasks(slow: Option<(&str, Duration)>) -> Script {
    let mut script = Script::new()
        .rule(titles())
        .rule(Rule::when(agent(Role::Commander)).reply(Reply::text("Three files.")))
        .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(THREE_TASKS)));
    for (id, file) in [
        ("T1.1", "one.txt"),
        ("T1.2", "two.txt"),
        ("T1.3", "three.txt"),
    ] {
        if let Some((slow_id, delay)) = slow
            && slow_id == id
        {
            let first = Match::All(vec![
                agent(Role::Worker),
                Match::AnyUserContains(format!("TASK {id}:")),
                Match::Not(Box::new(Match::LastIsToolResult)),
            ]);
            script = script.rule(
                Rule::when(first)
                    .reply(Reply::ToolCalls(vec![write(file, &format!("{id}\n"))]).delayed(delay))
                    .times(1),
            );
        }
        for rule in worker_rules(
            id,
            vec![write(file, &format!("{id}\n"))],
            &format!("Wrote {file}."),
        ) {
            script = script.rule(rule);
        }
    }
    script.rule(approve())
}

/// How many times task `id`'s Worker was given the task (first turns: not tool callbacks, reminders or
/// resumptions).
pub fn worker_first_turns(requests: &[ModelRequest], id: &str) -> usize {
    let marker = format!("TASK {id}: ");
    requests
        .iter()
        .filter(|request| {
            request.system.contains("ROLE: Worker")
                && request.last_user.starts_with(&marker)
                && !request.last_user.contains("you have not reported a status")
                && !request.is_tool_callback()
        })
        .count()
}

/// The lines a child prints, read as they come.
#[derive(Clone)]
pub struct Lines {
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Lines {
    /// Reads `from` (a child's stdout or stderr) on a thread until it ends.
    pub fn read(from: impl std::io::Read + Send + 'static) -> Self {
        use std::io::BufRead as _;
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { lines }
    }

    /// The lines so far.
    pub fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The lines so far, one text.
    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    /// Waits until `ready` holds for the lines so far; panics with them after `limit`.
    pub async fn until(&self, limit: Duration, what: &str, ready: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + limit;
        while !ready(&self.all()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the lines so far:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The `orchestrator` binary with `args`, on `server` and `project`, with the check `true` (a mission whose
/// gate always passes).
pub fn orchestrator(
    server: &opencode_client::testkit::OpencodeServer,
    project: &Path,
    args: &[&str],
) -> std::process::Command {
    let mut command = std::process::Command::new(binary());
    command
        .args(args)
        .args([
            "--url",
            server.url(),
            "--project",
            project.to_str().unwrap(),
            "--check",
            "true",
        ])
        .env("OPENCODE_SERVER_PASSWORD", server.password().unwrap_or(""))
        .stdin(std::process::Stdio::null());
    command
}

/// `orchestrator status --json` of the project's latest mission.
pub fn status(project: &Path) -> serde_json::Value {
    let output = std::process::Command::new(binary())
        .args(["status", "--json", "--project", project.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", show(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A task's status name in a `status --json` object (`?` when it has none).
pub fn task_status(status: &serde_json::Value, id: &str) -> String {
    status["tasks"][id]["status"]["status"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}
