//! The defects issue 14 fixed, each seen from outside: the `orchestrator` binary (`ORCH_TEST_BINARY` runs
//! these against another build, such as the one before the fixes) against real OpenCode servers with
//! scripted models (`ORCH_SKIP_OPENCODE=1` skips those).
//!
//! - `attach` uses the configured servers and their password variable (it tried 127.0.0.1:4096);
//! - `task --demo --json` prints only JSON on standard output (the demo's lines were mixed in);
//! - `resume` logs its recovery (logging started after it);
//! - a mission stopped while a Worker's turn runs resumes that turn and completes (the task failed with
//!   "the model failed: Aborted");
//! - the gate is detected when a task is reviewed (it was detected at mission start, before any file);
//! - the summary's "files changed" leaves out the orchestrator's own files.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Lines, ProcessTag, binary, show, wait_with_limit, worker_first_turns};
use opencode_client::testkit::{ModelRequest, Reply, Rule, Script, ScriptedModel};
use orchestrator::cli::demo::{agent, approve, planner_reply, titles, worker_rules, write};
use orchestrator::domain::prompts::Role;

/// A local URL with nothing listening.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// `orchestrator <command> --url <rig's server> --project <rig's project> --check true <args>`, output
/// piped.
fn on_rig(rig: &common::Rig, command: &str, args: &[&str]) -> Command {
    let server = &rig.demo.server;
    let mut process = Command::new(binary());
    process
        .args([command, "--url", server.url(), "--project"])
        .arg(&rig.project)
        .args(args)
        .env("OPENCODE_SERVER_PASSWORD", server.password().unwrap_or(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    process
}

fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// Waits until a request of the model satisfies `ready`; fails when `child` exits first or after 90 s.
async fn until_request(
    model: &ScriptedModel,
    child: &mut Child,
    what: &str,
    ready: impl Fn(&[ModelRequest]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !ready(&model.requests()) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the orchestrator exited ({status}) before {what}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write_config(project: &Path, toml: &str) {
    std::fs::create_dir_all(project.join(".opencode")).unwrap();
    std::fs::write(project.join(".opencode/orchestrator.toml"), toml).unwrap();
}

#[test]
fn attach_without_url_uses_the_configured_servers() {
    let project = tempfile::tempdir().unwrap();
    let url = closed_url();
    write_config(project.path(), &format!("[servers]\nurls = [\"{url}\"]\n"));
    let child = Command::new(binary())
        .args(["attach", "--project"])
        .arg(project.path())
        .env_remove("OPENCODE_SERVER_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (output, took) = wait_with_limit(child, Duration::from_secs(60));
    eprintln!("{}", show(&output));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&url),
        "the message names the configured server {url}; {}",
        show(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_reads_the_password_from_the_configured_variable() {
    let Some(rig) = common::rig(|_| common::one_task(common::commander())).await else {
        return;
    };
    let server = &rig.demo.server;
    let password = server.password().expect("the rig's server has a password");
    write_config(
        &rig.project,
        &format!(
            "[servers]\nurls = [\"{}\"]\npassword_env = \"ORCH_TEST_ATTACH_PASSWORD\"\n",
            server.url()
        ),
    );
    let attach = |password: &str| {
        Command::new(binary())
            .args(["attach", "--project"])
            .arg(&rig.project)
            .env_remove("OPENCODE_SERVER_PASSWORD")
            .env("ORCH_TEST_ATTACH_PASSWORD", password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // The wrong password in the variable: the server refuses it.
    let (output, took) = wait_with_limit(attach("not-the-password"), Duration::from_secs(60));
    eprintln!("wrong password: {}", show(&output));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(server.url()),
        "{}",
        show(&output)
    );

    // The right one: attached.
    let mut child = attach(password);
    let stdout = Lines::read(child.stdout.take().unwrap());
    let attached = format!("Attached to OpenCode at {}", server.url());
    stdout
        .until(Duration::from_secs(30), "attach to connect", |lines| {
            lines.iter().any(|line| line.starts_with(&attached))
        })
        .await;
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let (output, took) = wait_with_limit(child, Duration::from_secs(10));
    eprintln!("{}\n{}", stdout.text(), show(&output));
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    assert_eq!(output.status.code(), Some(130), "{}", show(&output));
}

#[test]
fn json_output_of_the_demo_is_only_json_ending_with_the_summary() {
    if std::env::var("ORCH_SKIP_OPENCODE").as_deref() == Ok("1") {
        eprintln!("ORCH_SKIP_OPENCODE=1: skipping a test that needs the real OpenCode server");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let tag = ProcessTag::new();
    let mut command = Command::new(binary());
    command
        .args(["task", "--demo", "--json", "--project"])
        .arg(&project)
        .arg("A text toolkit")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tag.apply(&mut command);
    let (output, _) = wait_with_limit(command.spawn().unwrap(), Duration::from_secs(300));
    eprintln!("{}", show(&output));
    assert!(output.status.success(), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .enumerate()
        .map(|(number, line)| {
            serde_json::from_str(line).unwrap_or_else(|error| {
                panic!(
                    "line {} of standard output is not JSON ({error}): {line:?}",
                    number + 1
                )
            })
        })
        .collect();
    let (summary, events) = lines.split_last().expect("some output");
    assert!(
        events.len() > 10 && events.iter().all(|event| event["event"].is_string()),
        "the mission's events come first, each with its kind"
    );
    assert_eq!(summary["event"], "summary", "{summary}");
    let tasks = summary["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 3, "{summary}");
    for task in tasks {
        assert_eq!(task["status"], "done", "{task}");
        assert!(
            task.get("reason").is_some(),
            "each task has a reason: {task}"
        );
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DEMO:"),
        "the demo's own lines are on standard error; {}",
        show(&output)
    );
    let left = tag.wait_gone(Duration::from_secs(5));
    assert!(left.is_empty(), "still running: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_logs_its_recovery() {
    let Some(rig) =
        common::rig(|_| common::three_tasks(Some(("T1.1", Duration::from_secs(5))))).await
    else {
        return;
    };
    let mut child = on_rig(&rig, "task", &["--check", "true", "Three files"])
        .spawn()
        .unwrap();
    until_request(&rig.demo.model, &mut child, "T1.1's Worker", |requests| {
        worker_first_turns(requests, "T1.1") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let resume = on_rig(&rig, "resume", &["--check", "true"])
        .spawn()
        .unwrap();
    let (output, _) = wait_with_limit(resume, Duration::from_secs(180));
    eprintln!("{}", show(&output));
    let log = std::fs::read_to_string(rig.project.join(".opencode/orchestrator/orchestrator.log"))
        .unwrap_or_default();
    assert!(
        log.contains("recovering an interrupted task"),
        "the log has the recovery; the log:\n{log}"
    );
    assert!(output.status.success(), "{}", show(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mission_stopped_during_a_worker_turn_resumes_that_turn_and_completes() {
    let Some(rig) =
        common::rig(|_| common::three_tasks(Some(("T1.2", Duration::from_secs(60))))).await
    else {
        return;
    };
    let mut child = on_rig(&rig, "task", &["--check", "true", "Three files"])
        .spawn()
        .unwrap();
    let stdout = Lines::read(child.stdout.take().unwrap());
    // Stop it once T1.1 is done and T1.2's Worker waits on its (slow) model.
    until_request(&rig.demo.model, &mut child, "T1.2's Worker", |requests| {
        worker_first_turns(requests, "T1.2") == 1
    })
    .await;
    stdout
        .until(Duration::from_secs(60), "T1.1 done", |lines| {
            lines
                .iter()
                .any(|line| line.contains("T1.1") && line.contains(" done "))
        })
        .await;
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let (output, took) = wait_with_limit(child, Duration::from_secs(10));
    eprintln!(
        "stopped after {took:?}:\n{}\n{}",
        stdout.text(),
        show(&output)
    );
    assert_eq!(output.status.code(), Some(130), "{}", show(&output));

    let resume = on_rig(&rig, "resume", &["--check", "true"])
        .spawn()
        .unwrap();
    let (output, _) = wait_with_limit(resume, Duration::from_secs(180));
    eprintln!("{}", show(&output));
    assert!(output.status.success(), "{}", show(&output));
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary.contains("COMPLETED") && summary.contains("0 failed"),
        "{summary}"
    );
    let requests = rig.requests();
    // T1.2's session was continued: its conversation goes on with the resumption message.
    assert!(
        requests.iter().any(|request| {
            request.last_user.starts_with("RESUME TASK T1.2")
                && request.messages.iter().any(|message| {
                    message["role"] == "user"
                        && ModelRequest::message_text(message).starts_with("TASK T1.2: ")
                })
        }),
        "T1.2's Worker session got a RESUME TASK message"
    );
    for id in ["T1.1", "T1.2", "T1.3"] {
        assert_eq!(
            worker_first_turns(&requests, id),
            1,
            "{id} was given to a Worker once"
        );
    }
    for file in ["one.txt", "two.txt", "three.txt"] {
        assert!(rig.project.join(file).is_file(), "{file}");
    }
}

/// A one-task mission whose Worker writes a Python module and its passing unittest test.
fn python_task() -> Script {
    let mut script = Script::new()
        .rule(titles())
        .rule(Rule::when(agent(Role::Commander)).reply(Reply::text("Brief.")))
        .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(
            "# Mission: thing\n## M1: Thing\n### T1.1: Thing\nWrite thing.py and test_thing.py.\n",
        )));
    let files = vec![
        write("thing.py", "def thing():\n    return 42\n"),
        write(
            "test_thing.py",
            "import unittest\n\nfrom thing import thing\n\n\nclass ThingTest(unittest.TestCase):\n    def test_thing(self):\n        self.assertEqual(thing(), 42)\n",
        ),
    ];
    for rule in worker_rules("T1.1", files, "Wrote thing.py and test_thing.py.") {
        script = script.rule(rule);
    }
    script.rule(approve())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_is_detected_when_the_task_is_reviewed() {
    let Some(rig) = common::rig(|_| python_task()).await else {
        return;
    };
    let python_files = |project: &Path| {
        std::fs::read_dir(project)
            .unwrap()
            .filter(|entry| {
                entry
                    .as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|ext| ext == "py")
            })
            .count()
    };
    assert_eq!(python_files(&rig.project), 0, "no Python file at the start");
    assert!(
        !rig.project.join(".opencode/orchestrator.toml").exists(),
        "no configured checks"
    );
    // No --check: the gate is the project's own, detected.
    let child = on_rig(&rig, "task", &["Thing"]).spawn().unwrap();
    let (output, _) = wait_with_limit(child, Duration::from_secs(180));
    eprintln!("{}", show(&output));
    assert!(output.status.success(), "{}", show(&output));
    let review = rig
        .requests()
        .into_iter()
        .find(|request| request.last_user.starts_with("REVIEW TASK T1.1"))
        .expect("the Reviewer was asked");
    let text = &review.last_user;
    assert!(
        !text.contains("no check commands ran"),
        "a check ran at review time:\n{text}"
    );
    assert!(
        text.contains("python3 -m unittest") || text.contains("python3 -m pytest"),
        "the Python tests ran:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_changed_leaves_out_the_orchestrators_own_files() {
    // T1.1's Worker takes a few seconds, while T1.2 runs and is recorded beside it: the orchestrator writes
    // its journal, status file and log during T1.1's turn, and OpenCode's snapshot of that turn sees them.
    let Some(rig) =
        common::rig(|_| common::three_tasks(Some(("T1.1", Duration::from_secs(4))))).await
    else {
        return;
    };
    // A git repository that does not ignore the orchestrator's state.
    assert!(rig.project.join(".git").is_dir());
    assert!(!rig.project.join(".gitignore").exists());
    let child = on_rig(&rig, "task", &["--check", "true", "Three files"])
        .spawn()
        .unwrap();
    let (output, _) = wait_with_limit(child, Duration::from_secs(180));
    eprintln!("{}", show(&output));
    assert!(output.status.success(), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let files: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("files changed ("))
        .skip(1)
        .take_while(|line| line.starts_with("    "))
        .map(str::trim)
        .collect();
    for file in ["one.txt", "two.txt", "three.txt"] {
        assert!(files.contains(&file), "{file} in {files:?}");
    }
    assert!(
        files.iter().all(|file| !file.starts_with(".opencode/")),
        "the orchestrator's files are not the mission's changes: {files:?}"
    );
    // Nor are they the Reviewer's to review.
    for review in rig
        .requests()
        .iter()
        .filter(|request| request.last_user.starts_with("REVIEW TASK"))
    {
        assert!(
            !review.last_user.contains(".opencode/orchestrator"),
            "the Reviewer was shown the orchestrator's files:\n{}",
            review.last_user
        );
    }
}
