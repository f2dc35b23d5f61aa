//! Faults under the `orchestrator` binary (`ORCH_TEST_BINARY` runs them against another build): a disk
//! that fills up while a mission runs, at each stage; a state directory that cannot be written; a journal
//! written by a newer version; a journal damaged in the middle. Each ends within a bounded time, with a
//! non-zero exit status and a message naming the path and the cause, leaves no process it started running,
//! and changes nothing it refused to use. Missions run against real OpenCode servers with scripted models
//! (`ORCH_SKIP_OPENCODE=1` skips those); the disk-full and read-only cases mount a tmpfs (the tests run as
//! root; where `mount` is not permitted they say why and skip).

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ProcessTag, binary, show, wait_with_limit};
use opencode_client::testkit::{Match, ModelRequest, Reply, Rule, Script, ScriptedModel};
use orchestrator::cli::demo::{agent, approve, planner_reply, titles, worker_rules, write};
use orchestrator::domain::prompts::Role;

const ONE_TASK_PLAN: &str = "# Mission: one\n## M1: One\n### T1.1: One\nWrite one.txt.\n";

/// How long a mission may take to end once its disk is full.
const ENDS_WITHIN: Duration = Duration::from_secs(60);

/// A tmpfs mounted for a test, unmounted when dropped (also when the test fails).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` at `dir` (created first); the reason when it cannot.
    fn mount(dir: &Path, options: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|error| format!("create {}: {error}", dir.display()))?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|error| format!("run mount: {error}"))?;
        if output.status.success() {
            Ok(Self {
                dir: dir.to_path_buf(),
            })
        } else {
            Err(format!(
                "mount -t tmpfs -o {options} tmpfs {} failed ({}): {}",
                dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Mounts it or says why the test is skipped.
    fn mount_or_skip(dir: &Path, options: &str) -> Option<Self> {
        match Self::mount(dir, options) {
            Ok(mount) => Some(mount),
            Err(why) => {
                eprintln!("SKIPPED: this test needs a tmpfs mount, and {why}");
                None
            }
        }
    }

    fn is_mounted(dir: &Path) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = dir.display().to_string();
        mounts
            .lines()
            .any(|line| line.split(' ').nth(4) == Some(dir.as_str()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for args in [&["umount"][..], &["umount", "-l"][..]] {
            let unmounted = Command::new(args[0])
                .args(&args[1..])
                .arg(&self.dir)
                .status()
                .is_ok_and(|status| status.success());
            if unmounted {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("could not unmount {}", self.dir.display());
    }
}

/// Fills the file system of `dir` with a filler file until a write fails with "no space"; returns the
/// bytes written.
fn fill(dir: &Path) -> u64 {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("filler"))
        .expect("create the filler");
    let mut written = 0;
    for chunk in [1 << 16, 4096, 512, 1] {
        let bytes = vec![0xA5u8; chunk];
        loop {
            match file.write(&bytes) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(error) if error.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(error) => panic!("fill {}: {error}", dir.display()),
            }
        }
    }
    written
}

/// Text longer than a memory page: an event that carries it cannot fit in the unused end of the page a
/// file on a full tmpfs already has, so recording it needs space the disk no longer has.
fn long_text(first: &str) -> String {
    let mut text = first.to_string();
    while text.len() < 3 * 4096 {
        text.push_str(" Every sentence of this text is here to make it longer than a page.");
    }
    text
}

/// A one-task script whose `slow` agent answers its first request after a few seconds, so that the disk
/// can be filled while that agent's turn runs; that agent's answer is longer than a page, so the event
/// that records it needs new space (the Planner's plan does: it is written to a new file).
fn slow_script(project: &Path, slow: Role) -> Script {
    let delay = Duration::from_secs(3);
    let brief = if slow == Role::Commander {
        long_text("Brief.")
    } else {
        "Brief.".to_string()
    };
    let summary = if slow == Role::Worker {
        long_text("Wrote one.txt.")
    } else {
        "Wrote one.txt.".to_string()
    };
    let maybe_slow = |role: Role, reply: Reply| {
        if role == slow {
            reply.delayed(delay)
        } else {
            reply
        }
    };
    let mut script = Script::new()
        .rule(titles())
        .rule(
            Rule::when(agent(Role::Commander))
                .reply(maybe_slow(Role::Commander, Reply::text(brief)))
                .times(1),
        )
        .rule(Rule::when(agent(Role::Commander)).reply(Reply::text("Brief.")))
        .rule(
            Rule::when(agent(Role::Planner))
                .reply(maybe_slow(Role::Planner, planner_reply(ONE_TASK_PLAN)))
                .times(1),
        )
        .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(ONE_TASK_PLAN)));
    if slow == Role::Worker {
        script = script.rule(
            Rule::when(Match::All(vec![
                agent(Role::Worker),
                Match::Not(Box::new(Match::LastIsToolResult)),
            ]))
            .reply(Reply::ToolCalls(vec![write(project, "one.txt", "1\n")]).delayed(delay))
            .times(1),
        );
    }
    for rule in worker_rules("T1.1", vec![write(project, "one.txt", "1\n")], &summary) {
        script = script.rule(rule);
    }
    script.rule(approve())
}

/// `orchestrator task` on a rig's server, its output piped, tagged.
fn task_on(rig: &common::Rig, tag: &ProcessTag, text: &str) -> Child {
    let server = &rig.demo.server;
    let mut command = Command::new(binary());
    command
        .args(["task", "--url", server.url(), "--project"])
        .arg(&rig.project)
        .args(["--check", "true", text])
        .env("OPENCODE_SERVER_PASSWORD", server.password().unwrap_or(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tag.apply(&mut command);
    command.spawn().expect("start the orchestrator")
}

/// Waits until a request of the model satisfies `ready`, or fails the test when `child` exits first or the
/// time runs out.
async fn until_request(
    model: &ScriptedModel,
    child: &mut Child,
    what: &str,
    ready: impl Fn(&ModelRequest) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !model.requests().iter().any(&ready) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the orchestrator exited ({status}) before {what}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What every disk-full case expects of the orchestrator once the disk is full: it ends within a minute,
/// non-zero, saying on standard error which state it could not write and why, and leaves nothing running.
fn assert_stopped_for_the_full_disk(
    child: Child,
    tag: &ProcessTag,
    state: &Path,
) -> std::process::Output {
    let (output, took) = wait_with_limit(child, ENDS_WITHIN);
    eprintln!(
        "ended after {took:?} once the disk was full; {}",
        show(&output)
    );
    assert!(
        matches!(output.status.code(), Some(1 | 2)),
        "exit status 1 or 2 expected; {}",
        show(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&state.display().to_string()),
        "standard error names the state directory {}; {}",
        state.display(),
        show(&output)
    );
    assert!(
        stderr.contains("No space left on device"),
        "standard error gives the cause; {}",
        show(&output)
    );
    let left = tag.wait_gone(Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "processes the orchestrator started are still running: {left:?}"
    );
    output
}

/// Fills the disk under the mission's state while `role`'s first turn runs, then expects a clean stop.
async fn disk_full_while(role: Role) {
    let Some(rig) = common::rig(|project| slow_script(project, role)).await else {
        return;
    };
    let state = rig.project.join(".opencode/orchestrator");
    let Some(tmpfs) = Tmpfs::mount_or_skip(&state, "size=1m") else {
        return;
    };
    let tag = ProcessTag::new();
    let mut child = task_on(&rig, &tag, "One file");
    let marker = agent(role);
    until_request(
        &rig.demo.model,
        &mut child,
        &format!("the {role:?}'s request"),
        |request| marker.matches(request),
    )
    .await;
    let filled = fill(&state);
    eprintln!(
        "filled {} with {filled} bytes during the {role:?}'s turn",
        state.display()
    );
    let output = assert_stopped_for_the_full_disk(child, &tag, &state);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("STOPPED") && !stdout.contains("COMPLETED"),
        "the summary says the mission stopped; {}",
        show(&output)
    );
    drop(tmpfs);
    assert!(!Tmpfs::is_mounted(&state), "the tmpfs is unmounted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_at_the_command_stage() {
    disk_full_while(Role::Commander).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_at_the_plan_stage() {
    disk_full_while(Role::Planner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_at_the_work_stage() {
    disk_full_while(Role::Worker).await;
}

/// The stage a running mission's status file shows, if any.
fn stage_of_running_mission(state: &Path) -> Option<String> {
    let missions = std::fs::read_dir(state.join("missions")).ok()?;
    missions.flatten().find_map(|mission| {
        let text = std::fs::read_to_string(mission.path().join("status.json")).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        json["mission"]["stage"].as_str().map(str::to_string)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_in_a_demo_mission_stops_it_and_the_opencode_server_it_started() {
    if std::env::var("ORCH_SKIP_OPENCODE").as_deref() == Ok("1") {
        eprintln!("ORCH_SKIP_OPENCODE=1: skipping a test that needs the real OpenCode server");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let state = project.join(".opencode/orchestrator");
    let Some(tmpfs) = Tmpfs::mount_or_skip(&state, "size=1m") else {
        return;
    };
    let tag = ProcessTag::new();
    let mut command = Command::new(binary());
    command
        .args(["task", "--demo", "--project"])
        .arg(&project)
        .arg("A text toolkit")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tag.apply(&mut command);
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while stage_of_running_mission(&state).as_deref() != Some("work") {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the demo exited ({status}) before its work stage");
        }
        assert!(
            Instant::now() < deadline,
            "the demo never reached its work stage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let filled = fill(&state);
    eprintln!(
        "filled {} with {filled} bytes in the work stage",
        state.display()
    );
    let output = assert_stopped_for_the_full_disk(child, &tag, &state);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let url = stdout
        .lines()
        .find(|line| line.trim_start().starts_with("OpenCode ") && line.contains(" at http"))
        .and_then(|line| line.split_whitespace().last())
        .unwrap_or_else(|| panic!("the demo says where its server runs; {}", show(&output)));
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(&address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the demo's OpenCode server at {url} still answers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(tmpfs);
    assert!(!Tmpfs::is_mounted(&state), "the tmpfs is unmounted");
}
