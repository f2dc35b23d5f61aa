//! `/task` inside OpenCode with the plugin `orchestrator install` writes: the command goes through the
//! server's command endpoint (what the TUI calls) and the plugin, loaded by the real OpenCode server, starts
//! the orchestrator for that server and session: no `attach`, no fixed port. Against the real OpenCode
//! server (`ORCH_SKIP_OPENCODE=1` skips it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Lines, show, wait_with_limit};
use futures_util::StreamExt;
use opencode_client::testkit::{OpencodeServer, ScriptedModel};
use opencode_client::{Client, CreateSession, EventPayload, Message, StreamItem};
use orchestrator::cli::demo::agent;
use orchestrator::cli::plugin::PLUGIN_PATH;
use orchestrator::domain::prompts::Role;

/// Runs `orchestrator install` (the binary at `binary`) in `project`.
fn install(binary: &Path, project: &Path) {
    let output = Command::new(binary)
        .args(["install", "--project", project.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", show(&output));
}

/// Makes the running server load the plugin `install` wrote: it forgets the project's instance, and the next
/// request starts it again, plugins included (the plugin says so in `.opencode/orchestrator/plugin.json`).
/// Before it loads a local plugin, OpenCode installs `@opencode-ai/plugin` with npm into each configuration
/// directory that lacks it, the project's `.opencode/` and the global one: tens of seconds the first time on
/// a busy machine, hence the long wait.
async fn load_plugin(server: &OpencodeServer, project: &Path) {
    let started = Instant::now();
    let mut builder = Client::builder(server.url()).timeout(Duration::from_secs(300));
    if let Some(password) = server.password() {
        builder = builder.password(password.to_string());
    }
    let client = builder.build().unwrap();
    let loaded = project.join(".opencode/orchestrator/plugin.json");
    let _ = std::fs::remove_file(&loaded);
    client.dispose_instance().await.unwrap();
    client.sessions().await.unwrap();
    assert!(
        loaded.is_file(),
        "OpenCode did not load the plugin (no {})",
        loaded.display()
    );
    eprintln!(
        "OpenCode loaded the plugin after {:?}: {}",
        started.elapsed(),
        std::fs::read_to_string(&loaded).unwrap().trim()
    );
}

/// Follows the toasts the server shows, from now on.
async fn toasts(client: &Client) -> Arc<Mutex<Vec<String>>> {
    let toasts = Arc::new(Mutex::new(Vec::new()));
    let mut events = client.events().await.unwrap();
    let sink = Arc::clone(&toasts);
    tokio::spawn(async move {
        while let Some(item) = events.next().await {
            if let Ok(StreamItem::Event(event)) = item
                && event.payload.kind() == "tui.toast.show"
                && let EventPayload::Other { properties, .. } = &event.payload
            {
                let message = properties["message"].as_str().unwrap_or("").to_string();
                sink.lock().unwrap().push(message);
            }
        }
    });
    toasts
}

/// The session's messages as (role, text), waiting until `done` holds for them (at most `limit`).
async fn messages_until(
    client: &Client,
    session: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let deadline = Instant::now() + limit;
    loop {
        let messages: Vec<(String, String)> = client
            .messages(session)
            .await
            .unwrap()
            .iter()
            .map(|message| {
                let role = match &message.info {
                    Message::User(_) => "user",
                    _ => "assistant",
                };
                (role.to_string(), message.text())
            })
            .collect();
        if done(&messages) {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the session so far:\n{messages:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The orchestrators running for `session` (their command lines name it).
fn orchestrators_for(session: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !zombie && cmdline.contains("--session") && cmdline.contains(session) {
            found.push((pid, cmdline.trim().to_string()));
        }
    }
    found
}

/// Waits (at most 15 s) for the orchestrators of `session` to end.
async fn wait_orchestrators_gone(session: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let running = orchestrators_for(session);
        if running.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still running for session {session}: {running:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `git status --porcelain` of `project`, one entry a line.
fn git_status(project: &Path) -> Vec<String> {
    let output = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(project)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", show(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn commander_requests(rig: &common::Rig) -> usize {
    rig.requests()
        .iter()
        .filter(|request| agent(Role::Commander).matches(request))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_runs_the_mission_through_the_plugin_with_nothing_else_started() {
    let Some(rig) = common::rig(|_| common::one_task(common::commander())).await else {
        return;
    };
    let started = Instant::now();
    let config_before = std::fs::read(rig.project.join("opencode.json")).unwrap();
    install(&common::binary(), &rig.project);
    assert!(rig.project.join(PLUGIN_PATH).is_file());
    load_plugin(&rig.demo.server, &rig.project).await;
    let client = rig.demo.server.client();

    let toasts = toasts(&client).await;
    let session = client.create_session(&CreateSession::new()).await.unwrap();
    client
        .command(&session.id, "task", "Write one file")
        .await
        .unwrap();
    let messages = messages_until(
        &client,
        &session.id,
        Duration::from_secs(180),
        "the summary in the session",
        |messages| {
            messages
                .iter()
                .any(|(_, text)| text.starts_with("Orchestrator mission"))
        },
    )
    .await;
    eprintln!(
        "mission done after {:?}; the session:\n{messages:#?}",
        started.elapsed()
    );
    rig.print_requests();

    // The user's message is their mission, then the acknowledgement, "picked up", the summary.
    assert_eq!(
        messages[0],
        ("user".to_string(), "Write one file".to_string())
    );
    let picked_up = messages
        .iter()
        .position(|(_, text)| text.starts_with("Orchestrator: picked up as mission m"))
        .unwrap_or_else(|| panic!("no 'picked up' message: {messages:#?}"));
    let summary = messages
        .iter()
        .position(|(_, text)| text.starts_with("Orchestrator mission"))
        .unwrap();
    assert!(picked_up < summary, "{messages:#?}");
    let summary = &messages[summary].1;
    assert!(summary.contains("completed"), "{summary}");
    assert!(summary.contains("T1.1 One: done"), "{summary}");
    assert!(summary.contains("one.txt"), "the files changed: {summary}");
    assert!(rig.project.join("one.txt").is_file());

    let toasts = toasts.lock().unwrap().clone();
    for expected in ["Mission m", "Stage: ", "T1.1 done", "Mission completed"] {
        assert!(
            toasts.iter().any(|toast| toast.starts_with(expected)),
            "no toast {expected:?}: {toasts:?}"
        );
    }

    // One mission, not two: one Commander turn, one journal.
    assert_eq!(commander_requests(&rig), 1, "one mission's Commander");
    let missions = std::fs::read_dir(rig.project.join(".opencode/orchestrator/missions"))
        .unwrap()
        .count();
    assert_eq!(missions, 1);
    wait_orchestrators_gone(&session.id).await;
    let log =
        std::fs::read_to_string(rig.project.join(".opencode/orchestrator/plugin.log")).unwrap();
    eprintln!("plugin.log:\n{log}");
    assert!(log.contains("COMPLETED"), "{log}");

    // Nothing of the orchestrator's state for git: only what install wrote.
    let status = git_status(&rig.project);
    assert!(
        status
            .iter()
            .all(|line| !line.contains(".opencode/orchestrator")),
        "{status:#?}"
    );
    // The mission's change came in through its integration branch: committed on the user's branch.
    assert!(
        status.iter().all(|line| !line.contains("one.txt")),
        "{status:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(rig.project.join("one.txt")).unwrap(),
        "1\n"
    );

    // Uninstall takes it all back: the config byte for byte, the command and the plugin gone.
    let output = Command::new(common::binary())
        .args(["uninstall", "--project", rig.project.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("Restart OpenCode"),
        "{}",
        show(&output)
    );
    assert!(!rig.project.join(PLUGIN_PATH).exists());
    assert!(!rig.project.join(".opencode/command/task.md").exists());
    assert_eq!(
        String::from_utf8(std::fs::read(rig.project.join("opencode.json")).unwrap()).unwrap(),
        String::from_utf8(config_before).unwrap(),
        "the project's OpenCode config is back byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_attach_watching_too_one_task_is_still_one_mission() {
    let Some(rig) = common::rig(|_| common::one_task(common::commander())).await else {
        return;
    };
    install(&common::binary(), &rig.project);
    load_plugin(&rig.demo.server, &rig.project).await;
    let client = rig.demo.server.client();

    // A user who still runs `attach` from habit: it and the plugin both see the command.
    let mut attach = Command::new(common::binary())
        .args(["attach", "--url", rig.demo.server.url(), "--project"])
        .arg(&rig.project)
        .args(["--check", "true"])
        .env(
            "OPENCODE_SERVER_PASSWORD",
            rig.demo.server.password().unwrap_or(""),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = Lines::read(attach.stdout.take().unwrap());
    let stderr = Lines::read(attach.stderr.take().unwrap());
    stdout
        .until(Duration::from_secs(30), "attach to listen", |lines| {
            lines
                .iter()
                .any(|line| line.starts_with("Attached to OpenCode"))
        })
        .await;

    let session = client.create_session(&CreateSession::new()).await.unwrap();
    client
        .command(&session.id, "task", "Write one file")
        .await
        .unwrap();
    let messages = messages_until(
        &client,
        &session.id,
        Duration::from_secs(180),
        "the summary in the session",
        |messages| {
            messages
                .iter()
                .any(|(_, text)| text.starts_with("Orchestrator mission"))
        },
    )
    .await;
    wait_orchestrators_gone(&session.id).await;
    // Whoever lost the claim has said so by now: attach on its output, the plugin's run in its log.
    let log = std::fs::read_to_string(rig.project.join(".opencode/orchestrator/plugin.log"))
        .unwrap_or_default();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(attach.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (output, _) = wait_with_limit(attach, Duration::from_secs(15));
    eprintln!(
        "attach: {:?}\nstdout:\n{}\nstderr:\n{}\nplugin.log:\n{log}",
        output.status,
        stdout.text(),
        stderr.text()
    );
    let summaries = messages
        .iter()
        .filter(|(_, text)| text.starts_with("Orchestrator mission"))
        .count();
    let picked_up = messages
        .iter()
        .filter(|(_, text)| text.starts_with("Orchestrator: picked up"))
        .count();
    assert_eq!((summaries, picked_up), (1, 1), "{messages:#?}");
    assert_eq!(commander_requests(&rig), 1, "one mission's Commander");
    assert!(
        stdout.text().contains("already picked up") || log.contains("already picked up"),
        "one of the two says it left the command to the other"
    );
}

/// `PATH` without any directory that holds an `orchestrator`.
fn path_without_orchestrator() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|dir| !dir.join("orchestrator").exists())
        .collect();
    std::env::join_paths(kept).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_without_the_binary_says_so_in_the_session_and_nothing_hangs() {
    if std::env::var("ORCH_SKIP_OPENCODE").as_deref() == Ok("1") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    orchestrator::cli::demo::prepare_project(&project).unwrap();
    opencode_client::testkit::init_git(&project).unwrap();
    let model = ScriptedModel::start(common::one_task(common::commander()))
        .await
        .unwrap();
    let server = OpencodeServer::builder()
        .model(model.base_url())
        .project(&project)
        .env("PATH", path_without_orchestrator())
        .start()
        .await
        .unwrap();
    // Installed from a copy of the binary that is then removed: the recorded path leads nowhere, and the
    // server's PATH has no orchestrator either.
    let copy = dir.path().join("bin").join("orchestrator");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(common::binary(), &copy).unwrap();
    install(&copy, &project);
    std::fs::remove_file(&copy).unwrap();
    load_plugin(&server, &project).await;
    let client = server.client();

    let toasts = toasts(&client).await;
    let session = client.create_session(&CreateSession::new()).await.unwrap();
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(60),
        client.command(&session.id, "task", "Write one file"),
    )
    .await
    .expect("the command returns")
    .unwrap();
    let messages = messages_until(
        &client,
        &session.id,
        Duration::from_secs(30),
        "the plugin's message",
        |messages| {
            messages
                .iter()
                .any(|(_, text)| text.starts_with("Orchestrator: cannot run this mission"))
        },
    )
    .await;
    eprintln!("said after {:?}: {messages:#?}", started.elapsed());
    let said = &messages
        .iter()
        .find(|(_, text)| text.starts_with("Orchestrator: cannot run this mission"))
        .unwrap()
        .1;
    assert!(
        said.contains(copy.to_str().unwrap()) && said.contains("PATH"),
        "it says where it looked: {said}"
    );
    assert!(
        said.contains("orchestrator install"),
        "and what to do: {said}"
    );
    assert!(
        toasts
            .lock()
            .unwrap()
            .iter()
            .any(|toast| toast.contains("cannot run this mission")),
        "{:?}",
        toasts.lock().unwrap()
    );
    assert!(
        !model
            .requests()
            .iter()
            .any(|request| agent(Role::Commander).matches(request)),
        "no mission started"
    );
    assert!(!project.join(".opencode/orchestrator/missions").exists());
}
