//! `/task` from inside OpenCode without the plugin: `orchestrator install --no-plugin` adds the command,
//! `orchestrator attach` sees it executed (here through the server's command endpoint, as the TUI does) and
//! runs the mission, reporting through toasts and messages in the session; it serves one mission after
//! another, and SIGINT or SIGTERM ends it. Against the real OpenCode server (`ORCH_SKIP_OPENCODE=1` skips
//! it). `tests/plugin.rs` has `/task` with the plugin.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Lines, show, wait_with_limit};
use futures_util::StreamExt;
use opencode_client::testkit::{Match, Reply, Rule, Script};
use opencode_client::{CreateSession, EventPayload, StreamItem};
use orchestrator::cli::demo::{agent, approve, planner_reply, titles, write};
use orchestrator::domain::prompts::Role;

/// Runs `orchestrator install --no-plugin` in `project`, so that `attach` (and nothing else) serves `/task`.
/// A binary from before the plugin (run through `ORCH_TEST_BINARY`) has no such option and writes no plugin:
/// plain `install` there.
fn install_without_plugin(project: &str) -> std::process::Output {
    let help = Command::new(common::binary())
        .args(["install", "--help"])
        .output()
        .unwrap();
    let mut install = Command::new(common::binary());
    install.arg("install");
    if String::from_utf8_lossy(&help.stdout).contains("--no-plugin") {
        install.arg("--no-plugin");
    }
    install.args(["--project", project]).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_runs_the_mission_of_a_task_command() {
    let Some(rig) = common::rig(|_| common::one_task(common::commander())).await else {
        return;
    };
    let project = rig.project.to_str().unwrap().to_string();
    let config_before = std::fs::read(rig.project.join("opencode.json")).unwrap();
    let install = install_without_plugin(&project);
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    assert!(rig.project.join(".opencode/command/task.md").is_file());
    assert!(
        !rig.project
            .join(".opencode/plugins/orchestrator.js")
            .exists(),
        "no plugin: attach serves /task"
    );
    let client = rig.demo.server.client();
    // The running server reloads the project's commands and agents.
    client.dispose_instance().await.unwrap();

    let mut attach = Command::new(common::binary())
        .args([
            "attach",
            "--once",
            "--url",
            rig.demo.server.url(),
            "--project",
            &project,
            "--check",
            "true",
        ])
        .env(
            "OPENCODE_SERVER_PASSWORD",
            rig.demo.server.password().unwrap_or(""),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Wait until it listens, then keep its output for the end.
    let stdout = attach.stdout.take().unwrap();
    let (lines, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let first = receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("attach prints that it listens");
    assert!(first.starts_with("Attached to OpenCode"), "{first}");

    let mut events = client.events().await.unwrap();
    let session = client.create_session(&CreateSession::new()).await.unwrap();
    client
        .command(&session.id, "task", "Write one file")
        .await
        .unwrap();

    // Toasts report the mission; the attach process ends after it (--once).
    let mut toasts = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(item) = events.next().await {
            if let Ok(StreamItem::Event(event)) = item
                && event.payload.kind() == "tui.toast.show"
                && let EventPayload::Other { properties, .. } = &event.payload
            {
                let message = properties["message"].as_str().unwrap_or("").to_string();
                let done = message.starts_with("Mission completed");
                toasts.push(message);
                if done {
                    return;
                }
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "no completion toast; toasts: {toasts:?}");
    assert!(
        toasts.iter().any(|toast| toast.starts_with("Mission m")),
        "{toasts:?}"
    );
    assert!(
        toasts.iter().any(|toast| toast.starts_with("T1.1 done")),
        "{toasts:?}"
    );
    let status = tokio::task::spawn_blocking(move || attach.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let output: Vec<String> = receiver.try_iter().collect();
    assert!(
        output.iter().any(|line| line.contains("/task in session")),
        "{output:?}"
    );

    // The session: the user's mission as typed (not the command's template), the acknowledgement, "picked
    // up", and the summary, with the files changed, last.
    let messages = client.messages(&session.id).await.unwrap();
    let texts: Vec<String> = messages.iter().map(|message| message.text()).collect();
    assert_eq!(texts[0], "Write one file", "the user's message: {texts:#?}");
    assert!(
        texts
            .iter()
            .any(|text| text.starts_with("Orchestrator: picked up as mission m")),
        "{texts:#?}"
    );
    let last = messages.last().unwrap().text();
    assert!(
        last.contains("Orchestrator mission") && last.contains("completed"),
        "{last}"
    );
    assert!(last.contains("T1.1 One: done"), "{last}");
    assert!(
        last.contains("Files changed") && last.contains("one.txt"),
        "the files changed, as the terminal shows them: {last}"
    );
    assert!(rig.project.join("one.txt").is_file());

    // The orchestrator's state (the mission, the log, install's backups) is not for git: only the mission's
    // change and what install wrote show.
    let status = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(&rig.project)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", show(&status));
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status
            .lines()
            .all(|line| !line.contains(".opencode/orchestrator")),
        "{status}"
    );
    // The mission's change came in through its integration branch: committed, the user's branch
    // fast-forwarded to it.
    assert!(!status.contains("one.txt"), "{status}");
    let tracked = Command::new("git")
        .args(["ls-files", "--error-unmatch", "one.txt"])
        .current_dir(&rig.project)
        .output()
        .unwrap();
    assert!(tracked.status.success(), "{}", show(&tracked));

    // Uninstall takes it all back.
    let uninstall = Command::new(common::binary())
        .args(["uninstall", "--project", &project])
        .output()
        .unwrap();
    assert!(
        uninstall.status.success(),
        "{}",
        String::from_utf8_lossy(&uninstall.stderr)
    );
    assert!(!rig.project.join(".opencode/command/task.md").exists());
    assert_eq!(
        String::from_utf8(std::fs::read(rig.project.join("opencode.json")).unwrap()).unwrap(),
        String::from_utf8(config_before).unwrap(),
        "the project's OpenCode config is back byte for byte"
    );
}

/// Missions of one task each; the Worker of the first writes one.txt, of the second two.txt, and so on, so
/// that each mission has a change of its own.
fn one_file_per_mission() -> Script {
    let writes: Vec<Reply> = ["one.txt", "two.txt", "three.txt", "four.txt"]
        .iter()
        .map(|file| Reply::ToolCalls(vec![write(file, "text\n")]))
        .collect();
    Script::new()
        .rule(titles())
        .rule(common::commander())
        .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(
            "# Mission: a file\n## M1: File\n### T1.1: File\nWrite a file.\n",
        )))
        .rule(
            Rule::when(Match::All(vec![
                agent(Role::Worker),
                Match::LastIsToolResult,
            ]))
            .reply(Reply::text("Wrote it.\nSTATUS: DONE wrote a file")),
        )
        .rule(Rule::when(agent(Role::Worker)).replies(writes))
        .rule(approve())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_serves_missions_one_after_another_then_stops_on_a_signal() {
    let Some(rig) = common::rig(|_| one_file_per_mission()).await else {
        return;
    };
    let project = rig.project.to_str().unwrap().to_string();
    let install = install_without_plugin(&project);
    assert!(install.status.success(), "{}", show(&install));
    let client = rig.demo.server.client();
    client.dispose_instance().await.unwrap();

    // Three missions then SIGINT; one mission then SIGTERM: after a mission, a signal still ends attach,
    // and no mission after the first warns about the log.
    for (signal, code, missions) in [
        (nix::sys::signal::Signal::SIGINT, 130, 3),
        (nix::sys::signal::Signal::SIGTERM, 143, 1),
    ] {
        let mut attach = Command::new(common::binary())
            .args([
                "attach",
                "--url",
                rig.demo.server.url(),
                "--project",
                &project,
            ])
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
        for mission in 1..=missions {
            let session = client.create_session(&CreateSession::new()).await.unwrap();
            client
                .command(&session.id, "task", "Write a file")
                .await
                .unwrap();
            // The summary's first line ends each mission.
            stdout
                .until(
                    Duration::from_secs(180),
                    &format!("the summary of mission {mission}"),
                    |lines| {
                        lines
                            .iter()
                            .filter(|line| line.starts_with("Mission m") && line.contains(": "))
                            .count()
                            == mission
                    },
                )
                .await;
        }
        let summaries: Vec<String> = stdout
            .all()
            .into_iter()
            .filter(|line| line.starts_with("Mission m"))
            .collect();
        assert!(
            summaries.iter().all(|line| line.contains("COMPLETED")),
            "{summaries:?}"
        );
        assert!(
            !stderr.text().contains("no log file"),
            "no false warning about the log:\n{}",
            stderr.text()
        );
        assert_eq!(
            stderr.text().trim(),
            "",
            "nothing to warn about across {missions} missions"
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(attach.id() as i32), signal).unwrap();
        let (output, took) = wait_with_limit(attach, Duration::from_secs(15));
        eprintln!(
            "{signal}: stopped after {took:?}, {:?}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            stdout.text(),
            stderr.text()
        );
        assert!(
            took < Duration::from_secs(5),
            "{signal} stopped attach after {took:?}"
        );
        assert_eq!(output.status.code(), Some(code), "{signal}");
    }
}
