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

/// A one-task script whose `slow` agent answers its first request after `delay`, so that the disk
/// can be filled while that agent's turn runs; that agent's answer is longer than a page, so the event
/// that records it needs new space (the Planner's plan does: it is written to a new file).
fn slow_script(slow: Role, delay: Duration) -> Script {
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
            .reply(Reply::ToolCalls(vec![write("one.txt", "1\n")]).delayed(delay))
            .times(1),
        );
    }
    for rule in worker_rules("T1.1", vec![write("one.txt", "1\n")], &summary) {
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
    let Some(rig) = common::rig(|_| slow_script(role, Duration::from_secs(3))).await else {
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

/// `orchestrator task --demo --project <project>`, tagged, its output piped.
fn start_demo(project: &Path, tag: &ProcessTag) -> Child {
    let mut command = Command::new(binary());
    command
        .args(["task", "--demo", "--project"])
        .arg(project)
        .arg("A text toolkit")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tag.apply(&mut command);
    command.spawn().expect("start the demo")
}

/// Waits until the demo's mission is in its work stage.
async fn until_work_stage(state: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while stage_of_running_mission(state).as_deref() != Some("work") {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the demo exited ({status}) before its work stage");
        }
        assert!(
            Instant::now() < deadline,
            "the demo never reached its work stage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The demo's OpenCode server (its URL is in the demo's output) no longer answers.
fn assert_demo_server_gone(output: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let url = stdout
        .lines()
        .chain(stderr.lines())
        .find(|line| line.trim_start().starts_with("OpenCode ") && line.contains(" at http"))
        .and_then(|line| line.split_whitespace().last())
        .unwrap_or_else(|| panic!("the demo says where its server runs; {}", show(output)));
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
}

fn skip_without_opencode() -> bool {
    let skip = std::env::var("ORCH_SKIP_OPENCODE").as_deref() == Ok("1");
    if skip {
        eprintln!("ORCH_SKIP_OPENCODE=1: skipping a test that needs the real OpenCode server");
    }
    skip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_in_a_demo_mission_stops_it_and_the_opencode_server_it_started() {
    if skip_without_opencode() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let state = project.join(".opencode/orchestrator");
    let Some(tmpfs) = Tmpfs::mount_or_skip(&state, "size=1m") else {
        return;
    };
    let tag = ProcessTag::new();
    let mut child = start_demo(&project, &tag);
    until_work_stage(&state, &mut child).await;
    let filled = fill(&state);
    eprintln!(
        "filled {} with {filled} bytes in the work stage",
        state.display()
    );
    let output = assert_stopped_for_the_full_disk(child, &tag, &state);
    assert_demo_server_gone(&output);
    drop(tmpfs);
    assert!(!Tmpfs::is_mounted(&state), "the tmpfs is unmounted");
}

/// Interrupts a demo mission in its work stage with `signals` SIGINTs (a second one means "exit at once");
/// it must end within a few seconds with 130 and leave nothing it started running: its OpenCode server is
/// stopped the usual way after one signal and killed on the hard exit after two.
async fn interrupt_a_demo(signals: usize) {
    if skip_without_opencode() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let state = project.join(".opencode/orchestrator");
    let tag = ProcessTag::new();
    let mut child = start_demo(&project, &tag);
    until_work_stage(&state, &mut child).await;
    for _ in 0..signals {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let (output, took) = wait_with_limit(child, Duration::from_secs(30));
    eprintln!("stopped after {took:?}; {}", show(&output));
    assert!(took < Duration::from_secs(6), "stopped after {took:?}");
    assert_eq!(output.status.code(), Some(130), "{}", show(&output));
    let left = tag.wait_gone(Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "processes the demo started are still running: {left:?}"
    );
    assert_demo_server_gone(&output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_a_demo_mission_and_the_opencode_server_it_started() {
    interrupt_a_demo(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigint_exits_at_once_and_kills_the_opencode_server_it_started() {
    interrupt_a_demo(2).await;
}

/// Every file under `dir` with its bytes.
fn files_under(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    files
}

/// Every file of the project but git's, with its bytes.
fn project_files(project: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = files_under(project);
    files.retain(|path, _| !path.starts_with(project.join(".git")));
    files
}

/// Runs the binary with `args` for at most `limit`.
fn run(args: &[&str], limit: Duration) -> (std::process::Output, Duration) {
    let child = Command::new(binary())
        .args(args)
        .env_remove("OPENCODE_SERVER_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the orchestrator");
    wait_with_limit(child, limit)
}

/// A local URL with nothing listening.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_state_directory_is_refused_before_anything_runs() {
    let Some(rig) = common::rig(|_| common::one_task(common::commander())).await else {
        return;
    };
    let state = rig.project.join(".opencode/orchestrator");
    // Root ignores file modes: a read-only mount is what a root process cannot write.
    let Some(tmpfs) = Tmpfs::mount_or_skip(&state, "ro,size=64k") else {
        return;
    };
    let before = project_files(&rig.project);
    let server = &rig.demo.server;
    let project = rig.project.to_str().unwrap();
    let started = Instant::now();
    let child = Command::new(binary())
        .args(["task", "--url", server.url(), "--project", project])
        .args(["--check", "true", "One file"])
        .env("OPENCODE_SERVER_PASSWORD", server.password().unwrap_or(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (output, _) = wait_with_limit(child, Duration::from_secs(60));
    let took = started.elapsed();
    eprintln!("{}", show(&output));
    assert!(took < Duration::from_secs(10), "refused after {took:?}");
    assert!(
        matches!(output.status.code(), Some(1 | 2)),
        "exit status 1 or 2 expected; {}",
        show(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&state.display().to_string()) && stderr.contains("Read-only file system"),
        "standard error names the state directory and the cause; {}",
        show(&output)
    );
    assert!(
        !rig.requests()
            .iter()
            .any(|request| agent(Role::Commander).matches(request)),
        "no agent was asked anything"
    );
    assert_eq!(
        project_files(&rig.project).keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "no file of the project was added or removed"
    );
    assert!(
        project_files(&rig.project) == before,
        "no file of the project changed"
    );
    drop(tmpfs);
}

#[test]
fn a_journal_from_a_newer_version_is_refused_by_status_and_resume() {
    use orchestrator::adapters::journal::{self, FileJournal};
    use orchestrator::domain::mission::{Entry, Event, JOURNAL_FORMAT, MissionEvent};

    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().canonicalize().unwrap();
    let directory = journal::missions_dir(&project).join("m1");
    let journal = FileJournal::create(&directory).unwrap();
    journal
        .append(&Entry {
            seq: 1,
            at_ms: 1,
            event: Event::mission(MissionEvent::Created {
                format: JOURNAL_FORMAT,
                id: "m1".to_string(),
                text: "A mission".to_string(),
                project: project.display().to_string(),
            }),
        })
        .unwrap();
    drop(journal);
    // What a newer orchestrator would have written: its format number.
    let store: mvcc_store::Store<String, String> =
        mvcc_store::Store::open(&directory, mvcc_store::Durability::Fsync).unwrap();
    store.put("format".to_string(), "99".to_string()).unwrap();
    drop(store);
    let before = files_under(&directory);

    let project = project.to_str().unwrap();
    let url = closed_url();
    for args in [
        &["status", "--project", project][..],
        &["status", "--json", "--project", project][..],
        &["resume", "--project", project, "--url", &url][..],
    ] {
        let (output, took) = run(args, Duration::from_secs(30));
        eprintln!("{args:?}: {}", show(&output));
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("format 99") && stderr.contains("newer"),
            "{args:?}: the message says the format and that a newer version wrote it; {}",
            show(&output)
        );
        assert!(
            stderr.contains(&directory.display().to_string()),
            "{args:?}: the message names the directory; {}",
            show(&output)
        );
        assert!(
            files_under(&directory) == before,
            "{args:?} changed the mission's files"
        );
    }
}

/// Flips `count` bytes in the middle of `file`; returns where.
fn damage_the_middle(file: &Path, count: usize) -> usize {
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes.len() / 2;
    for byte in &mut bytes[at..at + count] {
        *byte ^= 0xFF;
    }
    std::fs::write(file, bytes).unwrap();
    at
}

/// `status` and `resume` of a project whose journal file `damaged` is damaged: both refuse quickly, naming
/// the file and the byte where the damage is, and change nothing.
fn assert_damage_refused(project: &Path, server_url: &str, password: &str, damaged: &Path) {
    let directory = damaged.parent().unwrap();
    let before = files_under(directory);
    let project = project.to_str().unwrap();
    let commands: [&[&str]; 2] = [
        &["status", "--project", project],
        &[
            "resume",
            "--project",
            project,
            "--url",
            server_url,
            "--check",
            "true",
        ],
    ];
    for args in commands {
        let child = Command::new(binary())
            .args(args)
            .env("OPENCODE_SERVER_PASSWORD", password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (output, took) = wait_with_limit(child, Duration::from_secs(60));
        eprintln!("{args:?}: {}", show(&output));
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
        assert!(
            matches!(output.status.code(), Some(1 | 2)),
            "{args:?}: exit status 1 or 2 expected; {}",
            show(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&damaged.display().to_string()) && stderr.contains("at byte"),
            "{args:?}: the message names the damaged file and where; {}",
            show(&output)
        );
        assert!(
            files_under(directory) == before,
            "{args:?} changed the mission's files"
        );
    }
}

/// The mission directories of a project.
fn missions(project: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(orchestrator::adapters::journal::missions_dir(project))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_damaged_in_the_middle_is_refused_not_truncated() {
    // T1.1's Worker answers after a minute: the orchestrator is killed while it waits.
    let Some(rig) = common::rig(|_| slow_script(Role::Worker, Duration::from_secs(60))).await
    else {
        return;
    };
    let tag = ProcessTag::new();
    let mut child = task_on(&rig, &tag, "One file");
    until_request(&rig.demo.model, &mut child, "T1.1's Worker", |request| {
        agent(Role::Worker).matches(request)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Killed as a crash kills it: every event is in the log, none in a snapshot.
    child.kill().unwrap();
    child.wait().unwrap();
    let [mission] = &missions(&rig.project)[..] else {
        panic!("one mission")
    };
    let log = std::fs::read_dir(mission)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("log-")
        })
        .max_by_key(|path| std::fs::metadata(path).unwrap().len())
        .expect("a log segment");
    let at = damage_the_middle(&log, 4);
    eprintln!("damaged {} at byte {at}", log.display());
    let server = &rig.demo.server;
    assert_damage_refused(
        &rig.project,
        server.url(),
        server.password().unwrap_or(""),
        &log,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_damaged_in_the_middle_is_refused() {
    let Some(rig) = common::rig(|_| common::one_task(common::commander())).await else {
        return;
    };
    let tag = ProcessTag::new();
    let child = task_on(&rig, &tag, "One file");
    let (output, _) = wait_with_limit(child, Duration::from_secs(180));
    assert!(output.status.success(), "{}", show(&output));
    // A finished mission's journal is checkpointed: its events are in the snapshot.
    let [mission] = &missions(&rig.project)[..] else {
        panic!("one mission")
    };
    let snapshot = mission.join("snapshot");
    assert!(snapshot.is_file(), "a finished mission has a snapshot");
    let at = damage_the_middle(&snapshot, 4);
    eprintln!("damaged {} at byte {at}", snapshot.display());
    let server = &rig.demo.server;
    assert_damage_refused(
        &rig.project,
        server.url(),
        server.password().unwrap_or(""),
        &snapshot,
    );
}
