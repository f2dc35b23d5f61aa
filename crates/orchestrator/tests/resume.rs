//! Missions that survive: the `orchestrator` binary killed with SIGKILL mid-mission, then `resume`; the
//! OpenCode server killed mid-task, then `resume` on a new server; SIGINT stopping a mission within 5 s with
//! its state saved; `stop` from another process. Against real OpenCode servers with scripted models
//! (`ORCH_SKIP_OPENCODE=1` skips them).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{orchestrator, show, status, task_status, wait_with_limit, worker_first_turns};
use opencode_client::testkit::{OpencodeServer, Script, ScriptedModel};

/// The three-task script; `slow` makes that task's first Worker reply arrive after the delay.
fn script(slow: Option<(&str, Duration)>) -> Script {
    common::three_tasks(slow)
}

/// Waits until `done` holds for the model's requests.
async fn until(
    model: &ScriptedModel,
    limit: Duration,
    what: &str,
    done: impl Fn(&[opencode_client::testkit::ModelRequest]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(&model.requests()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn reviewed(requests: &[opencode_client::testkit::ModelRequest], id: &str) -> bool {
    requests
        .iter()
        .any(|request| request.last_user.starts_with(&format!("REVIEW TASK {id}:")))
}

fn kill(child: &mut Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_mission_then_resume_runs_every_task_once() {
    let Some(rig) = common::rig(|_| script(Some(("T1.2", Duration::from_secs(8))))).await else {
        return;
    };
    let server = &rig.demo.server;
    // Kill it once T1.1 is under review and T1.2's Worker is waiting on its (slow) model.
    let mut child = start_until(
        &rig,
        "T1.1's review and T1.2's Worker",
        t11_reviewed_t12_running,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(&mut child, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
    let before = status(&rig.project);
    assert_eq!(before["status"]["outcome"], "running", "{before}");
    assert_ne!(task_status(&before, "T1.3"), "done");

    let output = orchestrator(server, &rig.project, &["resume"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", show(&output));
    let after = status(&rig.project);
    assert_eq!(after["status"]["outcome"], "completed", "{after}");
    let requests = rig.requests();
    for id in ["T1.1", "T1.2", "T1.3"] {
        assert_eq!(task_status(&after, id), "done", "{after}");
        // Never prompted twice: T1.1 finished before the kill, T1.2's running turn was adopted.
        assert_eq!(worker_first_turns(&requests, id), 1, "{id}");
    }
    for file in ["one.txt", "two.txt", "three.txt"] {
        assert!(rig.project.join(file).is_file(), "{file}");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Resuming mission"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opencode_server_killed_mid_task_then_resume_on_a_new_one() {
    let Some(mut rig) = common::rig(|_| script(Some(("T1.2", Duration::from_secs(30))))).await
    else {
        return;
    };
    let child = start_until(
        &rig,
        "T1.1's review and T1.2's Worker",
        t11_reviewed_t12_running,
    )
    .await;
    // Kill the server only once T1.1 is recorded done (its approval lands just after the review request).
    let deadline = Instant::now() + Duration::from_secs(30);
    while task_status(&status(&rig.project), "T1.1") != "done" {
        assert!(Instant::now() < deadline, "T1.1 was never recorded done");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.demo.server.kill();
    // The orchestrator finds OpenCode gone, past its retries, and stops with the mission saved.
    let (output, _) = wait_with_limit(child, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("STOPPED") && stdout.contains("orchestrator resume"),
        "{stdout}"
    );
    let stopped = status(&rig.project);
    assert_eq!(stopped["status"]["outcome"], "stopped");
    assert_eq!(task_status(&stopped, "T1.1"), "done");

    // A new server (new model, nothing slow) on the same project.
    let model = ScriptedModel::start(script(None)).await.unwrap();
    let server = OpencodeServer::builder()
        .model(model.base_url())
        .project(&rig.project)
        .start()
        .await
        .unwrap();
    let output = orchestrator(&server, &rig.project, &["resume"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", show(&output));
    let after = status(&rig.project);
    assert_eq!(after["status"]["outcome"], "completed", "{after}");
    let requests = model.requests();
    assert_eq!(
        worker_first_turns(&requests, "T1.1"),
        0,
        "a finished task is not redone"
    );
    assert_eq!(
        worker_first_turns(&requests, "T1.2"),
        1,
        "the interrupted task starts over once"
    );
    assert_eq!(worker_first_turns(&requests, "T1.3"), 1);
    assert!(rig.project.join("three.txt").is_file());
}

/// Starts `orchestrator task` on the rig and waits until `ready` holds for the model's requests.
async fn start_until(
    rig: &common::Rig,
    what: &str,
    ready: impl Fn(&[opencode_client::testkit::ModelRequest]) -> bool,
) -> Child {
    let child = orchestrator(&rig.demo.server, &rig.project, &["task", "Three files"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until(&rig.demo.model, Duration::from_secs(90), what, ready).await;
    child
}

/// Starts `orchestrator task` on the rig and waits until task `id`'s Worker has its first prompt.
async fn start_until_worker(rig: &common::Rig, id: &str) -> Child {
    start_until(rig, &format!("{id}'s Worker"), |requests| {
        worker_first_turns(requests, id) == 1
    })
    .await
}

/// T1.1 is under review and T1.2's Worker has its first prompt.
fn t11_reviewed_t12_running(requests: &[opencode_client::testkit::ModelRequest]) -> bool {
    reviewed(requests, "T1.1") && worker_first_turns(requests, "T1.2") == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_within_five_seconds_with_the_state_saved() {
    let Some(rig) = common::rig(|_| script(Some(("T1.1", Duration::from_secs(60))))).await else {
        return;
    };
    let child = start_until_worker(&rig, "T1.1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut child = child;
    kill(&mut child, nix::sys::signal::Signal::SIGINT);
    let (output, took) = wait_with_limit(child, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "exited after {took:?}");
    assert_eq!(output.status.code(), Some(130), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SIGINT: stopping"), "{stderr}");
    let saved = status(&rig.project);
    assert_eq!(saved["status"]["outcome"], "stopped", "{saved}");
    assert_eq!(saved["status"]["cause"]["signal"], "interrupt", "{saved}");
    // Interrupted, not failed and not left "running": `resume` takes it up again.
    assert_eq!(task_status(&saved, "T1.1"), "interrupted", "{saved}");
    // The running session was aborted.
    let client = rig.demo.server.client();
    let session = saved["tasks"]["T1.1"]["worker_session"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let statuses = client.session_status().await.unwrap();
        if !statuses.contains_key(&session) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "session {session} still {:?}",
            statuses[&session]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_from_another_process() {
    let Some(rig) = common::rig(|_| script(Some(("T1.1", Duration::from_secs(60))))).await else {
        return;
    };
    let child = start_until_worker(&rig, "T1.1").await;
    let running = status(&rig.project);
    assert!(
        running["pid"].as_u64().is_some(),
        "status reads the running mission's view: {running}"
    );
    let stop = Command::new(common::binary())
        .args(["stop", "--project", rig.project.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(stop.status.success(), "{}", show(&stop));
    let (output, _) = wait_with_limit(child, Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(143), "{}", show(&output));
    assert_eq!(status(&rig.project)["status"]["outcome"], "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_one_killed_mid_mission_still_complete() {
    let Some(mut rig) = common::rig(|_| script(Some(("T1.2", Duration::from_secs(60))))).await
    else {
        return;
    };
    // A second server on the same project and model, with the same password.
    let mut second = OpencodeServer::builder()
        .model(rig.demo.model.base_url())
        .project(&rig.project)
        .password(rig.demo.server.password().map(str::to_string))
        .start()
        .await
        .unwrap();
    let child = Command::new(common::binary())
        .args([
            "task",
            "--url",
            rig.demo.server.url(),
            "--url",
            second.url(),
        ])
        .args([
            "--project",
            rig.project.to_str().unwrap(),
            "--check",
            "true",
            "Three files",
        ])
        .env(
            "OPENCODE_SERVER_PASSWORD",
            rig.demo.server.password().unwrap_or(""),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until(
        &rig.demo.model,
        Duration::from_secs(90),
        "T1.2's Worker",
        |requests| worker_first_turns(requests, "T1.2") == 1,
    )
    .await;
    // Kill the server T1.2 runs on (its model reply is still 60 s away).
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        let running = status(&rig.project);
        if task_status(&running, "T1.2") == "running"
            && let Some(url) = running["tasks"]["T1.2"]["server"].as_str()
        {
            break url.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "T1.2 never showed its server: {running}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let survivor = if url.starts_with(rig.demo.server.url()) {
        rig.demo.server.kill();
        second.url().to_string()
    } else {
        second.kill();
        rig.demo.server.url().to_string()
    };
    let (output, _) = wait_with_limit(child, Duration::from_secs(120));
    assert!(output.status.success(), "{}", show(&output));
    let after = status(&rig.project);
    assert_eq!(after["status"]["outcome"], "completed", "{after}");
    for id in ["T1.1", "T1.2", "T1.3"] {
        assert_eq!(task_status(&after, id), "done", "{after}");
    }
    assert!(
        after["tasks"]["T1.2"]["server"]
            .as_str()
            .unwrap()
            .starts_with(&survivor),
        "{after}"
    );
    let requests = rig.requests();
    assert_eq!(
        worker_first_turns(&requests, "T1.2"),
        2,
        "T1.2 moved to the other server once"
    );
    assert_eq!(worker_first_turns(&requests, "T1.1"), 1);
    assert_eq!(worker_first_turns(&requests, "T1.3"), 1);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("(down)"),
        "the summary shows the lost server: {stdout}"
    );
}
