//! `task` without `--url`, with nothing answering at the default URL and no server configured: the user's
//! own `opencode` is started for the mission and stopped when it ends, after a SIGINT too. Here "the
//! user's" is the testkit's installed OpenCode, first on `PATH` as `opencode`, with the user's configuration
//! made for the test: their global `opencode.json` names a scripted model, and the XDG directories are the
//! test's own, set in the orchestrator's environment, which it passes through to OpenCode unchanged.
//! (`ORCH_SKIP_OPENCODE=1` skips these; the case without any `opencode` is in `tests/cli.rs`.)

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ProcessTag, binary, commander, one_task, show, wait_with_limit};
use opencode_client::testkit::{
    Match, ModelRequest, Reply, Rule, Script, ScriptedModel, find_or_install_opencode,
    scripted_config,
};
use orchestrator::cli::demo::{self, agent, approve, planner_reply, titles, worker_rules, write};
use orchestrator::domain::prompts::Role;

/// The address `task` tries first.
const DEFAULT_ADDRESS: &str = "127.0.0.1:4096";

/// A project whose user has `opencode` on `PATH`, configured for a scripted model, and no server running.
struct UserSetup {
    project: PathBuf,
    /// The directory holding the `opencode` link, first on `PATH`.
    bin: PathBuf,
    /// The root of the user's XDG directories.
    xdg: PathBuf,
    model: ScriptedModel,
    _dir: tempfile::TempDir,
}

/// Fails when something listens at the default URL: these tests are about the case where nothing does,
/// and would otherwise run their mission on whatever answers there.
fn assert_nothing_at_the_default_url() {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(DEFAULT_ADDRESS).is_ok() {
        assert!(
            Instant::now() < deadline,
            "something listens at {DEFAULT_ADDRESS} (another OpenCode server?): this test needs the \
             default URL free"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

async fn user_setup(script: impl FnOnce(&Path) -> Script) -> Option<UserSetup> {
    if std::env::var("ORCH_SKIP_OPENCODE").as_deref() == Ok("1") {
        eprintln!("ORCH_SKIP_OPENCODE=1: skipping a test that needs the real OpenCode");
        return None;
    }
    let opencode = tokio::task::spawn_blocking(find_or_install_opencode)
        .await
        .unwrap()
        .unwrap_or_else(|error| panic!("OpenCode is needed for this test: {error}"));
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    demo::prepare_project(&project).unwrap();
    opencode_client::testkit::init_git(&project).unwrap();
    let model = ScriptedModel::start(script(&project)).await.unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&opencode, bin.join("opencode")).unwrap();
    let xdg = dir.path().join("xdg");
    // The user's configuration, in their global OpenCode directory (nothing in the orchestrator writes it):
    // it applies in the project and in the mission's worktrees alike.
    let config = xdg.join("config").join("opencode");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("opencode.json"),
        serde_json::to_vec_pretty(&scripted_config(&model.base_url())).unwrap(),
    )
    .unwrap();
    Some(UserSetup {
        project,
        bin,
        xdg,
        model,
        _dir: dir,
    })
}

impl UserSetup {
    /// `orchestrator task --project <project> --check true <args>` in the user's environment (their PATH
    /// with `opencode` first, their XDG directories), tagged, its output piped.
    fn task(&self, tag: &ProcessTag, args: &[&str]) -> Command {
        let path = std::env::join_paths(std::iter::once(self.bin.clone()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        let mut command = Command::new(binary());
        command
            .args(["task", "--project"])
            .arg(&self.project)
            .args(["--check", "true"])
            .args(args)
            .env("PATH", path)
            .env_remove("OPENCODE_BIN")
            .env_remove("OPENCODE_SERVER_PASSWORD")
            .env("XDG_CONFIG_HOME", self.xdg.join("config"))
            .env("XDG_DATA_HOME", self.xdg.join("data"))
            .env("XDG_CACHE_HOME", self.xdg.join("cache"))
            .env("XDG_STATE_HOME", self.xdg.join("state"))
            // What a user without network would set; OpenCode waits on a models.dev fetch otherwise.
            .env("OPENCODE_DISABLE_AUTOUPDATE", "1")
            .env("OPENCODE_DISABLE_MODELS_FETCH", "1")
            .env("OPENCODE_DISABLE_LSP_DOWNLOAD", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tag.apply(&mut command);
        command
    }
}

/// The URL of the server the orchestrator says it started, checked against the `opencode` it found.
fn started_url(output: &Output, bin: &Path) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|line| line.contains("started your opencode ("))
        .unwrap_or_else(|| panic!("no word of a started opencode; {}", show(output)));
    let expected = format!(
        "orchestrator: started your opencode ({}, version 1.18.33) at http://127.0.0.1:",
        bin.join("opencode").display()
    );
    assert!(line.starts_with(&expected), "{line}\nnot: {expected}");
    assert!(line.ends_with(" for this mission"), "{line}");
    let url = line
        .split(" at ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(" for this mission"))
        .unwrap()
        .to_string();
    assert_ne!(
        url,
        format!("http://{DEFAULT_ADDRESS}"),
        "not the default URL"
    );
    url
}

/// Nothing answers at `url` any more (within 5 s), and no process the command started is left.
fn assert_server_gone(url: &str, tag: &ProcessTag) {
    let address = url.trim_start_matches("http://");
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the opencode the orchestrator started still answers at {url}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = tag.wait_gone(Duration::from_secs(5));
    assert!(left.is_empty(), "processes left running: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mission_without_url_starts_the_users_opencode_and_stops_it_at_the_end() {
    let Some(user) = user_setup(|_| one_task(commander())).await else {
        return;
    };
    assert_nothing_at_the_default_url();
    let tag = ProcessTag::new();
    let started = Instant::now();
    let child = user.task(&tag, &["Write one file"]).spawn().unwrap();
    let (output, took) = wait_with_limit(child, Duration::from_secs(300));
    eprintln!(
        "took {took:?} ({:?} in all); {}",
        started.elapsed(),
        show(&output)
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let url = started_url(&output, &user.bin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("orchestrator: stopped your opencode at {url}")),
        "{stderr}"
    );
    // The mission ran on it, with the user's configuration: the scripted model was asked, and the task's
    // file is in the project.
    let requests = user.model.requests();
    assert!(
        requests
            .iter()
            .any(|request| request.system.contains("ROLE: Worker")),
        "the Worker never reached the user's model: {} requests",
        requests.len()
    );
    assert_eq!(
        std::fs::read_to_string(user.project.join("one.txt")).unwrap(),
        "1\n"
    );
    assert_server_gone(&url, &tag);
}

/// One task whose Worker's first answer comes only after a minute: the mission sits in its work stage.
fn slow_worker(_project: &Path) -> Script {
    let first = Match::All(vec![
        agent(Role::Worker),
        Match::AnyUserContains("TASK T1.1:".to_string()),
        Match::Not(Box::new(Match::LastIsToolResult)),
    ]);
    let mut script = Script::new()
        .rule(titles())
        .rule(commander())
        .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(
            "# Mission: one\n## M1: One\n### T1.1: One\nWrite one.txt.\n",
        )))
        .rule(
            Rule::when(first)
                .reply(Reply::text("Thinking.").delayed(Duration::from_secs(60)))
                .times(1),
        );
    for rule in worker_rules("T1.1", vec![write("one.txt", "1\n")], "Wrote one.txt.") {
        script = script.rule(rule);
    }
    script.rule(approve())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_the_mission_and_the_users_opencode_it_started() {
    let Some(user) = user_setup(slow_worker).await else {
        return;
    };
    assert_nothing_at_the_default_url();
    let tag = ProcessTag::new();
    let mut child = user.task(&tag, &["Write one file"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let worker_asked = |requests: &[ModelRequest]| {
        requests
            .iter()
            .any(|request| request.system.contains("ROLE: Worker"))
    };
    while !worker_asked(&user.model.requests()) {
        if let Ok(Some(status)) = child.try_wait() {
            let output = child.wait_with_output().unwrap();
            panic!(
                "the orchestrator exited ({status}) before its Worker turn; {}",
                show(&output)
            );
        }
        assert!(Instant::now() < deadline, "the Worker was never asked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let (output, took) = wait_with_limit(child, Duration::from_secs(30));
    eprintln!("stopped after {took:?}; {}", show(&output));
    assert_eq!(output.status.code(), Some(130), "{}", show(&output));
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    let url = started_url(&output, &user.bin);
    assert_server_gone(&url, &tag);
}
