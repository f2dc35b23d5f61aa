//! Isolated parallel work on the real OpenCode server with a scripted model: each task in a git worktree of
//! its own, integrated through the merge queue, the user's tree untouched until the end.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opencode_client::testkit::{Match, ModelRequest, Reply, Rule, Script};
use orchestrator::cli::demo::{agent, approve, planner, titles, write};
use orchestrator::domain::gate::GateCommand;
use orchestrator::domain::prompts::Role;
use orchestrator::domain::workspace::Delivery;

const BASE: &str = "\"\"\"Shared helpers.\"\"\"\n\n\ndef base():\n    return 0\n";
const WITH_A: &str =
    "\"\"\"Shared helpers.\"\"\"\n\n\ndef base():\n    return 0\n\n\ndef a():\n    return 1\n";
const WITH_B: &str =
    "\"\"\"Shared helpers.\"\"\"\n\n\ndef base():\n    return 0\n\n\ndef b():\n    return 2\n";
const WITH_BOTH: &str = "\"\"\"Shared helpers.\"\"\"\n\n\ndef base():\n    return 0\n\n\ndef a():\n    return 1\n\n\ndef b():\n    return 2\n";

const CONFLICT: &str = "conflicts with the integration branch";

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "user")
        .env("GIT_AUTHOR_EMAIL", "user@localhost")
        .env("GIT_COMMITTER_NAME", "user")
        .env("GIT_COMMITTER_EMAIL", "user@localhost")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every file of the user's tree but git's and the orchestrator's, with its bytes.
fn snapshot(project: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![project.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the project") {
            let entry = entry.expect("an entry");
            let path = entry.path();
            let name = path
                .strip_prefix(project)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if name == ".git" || name == ".opencode" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(name, std::fs::read(&path).expect("read a file"));
            }
        }
    }
    files
}

/// A Worker rule for task `id`: writes `files` when its prompt holds every one of `needles`.
fn worker_writes(id: &str, needles: &[&str], files: Vec<(&str, &str)>) -> Rule {
    let mut conditions = vec![
        agent(Role::Worker),
        Match::AnyUserContains(format!("TASK {id}:")),
        Match::Not(Box::new(Match::LastIsToolResult)),
    ];
    conditions.extend(
        needles
            .iter()
            .map(|needle| Match::AnyUserContains((*needle).to_string())),
    );
    Rule::when(Match::All(conditions)).reply(Reply::ToolCalls(
        files
            .into_iter()
            .map(|(name, content)| write(name, content))
            .collect(),
    ))
}

fn worker_done() -> Rule {
    Rule::when(Match::All(vec![
        agent(Role::Worker),
        Match::LastIsToolResult,
    ]))
    .reply(Reply::text("Done.\nSTATUS: DONE wrote the change"))
}

fn import_gate() -> Vec<GateCommand> {
    vec![GateCommand::new(
        "python3 -c 'import lib'",
        "python3",
        ["-c", "import lib"],
    )]
}

/// Two tasks, each reading lib.py and writing it whole with one function added, at the same time: the
/// first integrates, the second conflicts, goes back to its Worker with the conflict as findings on a
/// fresh worktree from the new integration head, and both functions end up in the user's branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_whole_file_writes_both_survive_through_the_merge_queue() {
    let Some(rig) = common::rig(|project| {
        std::fs::write(project.join("lib.py"), BASE).unwrap();
        git(project, &["add", "lib.py"]);
        git(project, &["commit", "-q", "-m", "lib.py"]);
        let mut script = Script::new().rule(titles()).rule(common::commander());
        for rule in planner(
            "# Mission: two functions\n## M1: Functions\n### T1: Add a\nAdd a() to lib.py.\n\
             ### T2: Add b\nAdd b() to lib.py.\n",
        ) {
            script = script.rule(rule);
        }
        script
            .rule(worker_done())
            // Whichever task integrates second redoes its change on top of the other's.
            .rule(worker_writes(
                "T1",
                &[CONFLICT],
                vec![("lib.py", WITH_BOTH)],
            ))
            .rule(worker_writes(
                "T2",
                &[CONFLICT],
                vec![("lib.py", WITH_BOTH)],
            ))
            .rule(worker_writes("T1", &[], vec![("lib.py", WITH_A)]))
            .rule(worker_writes("T2", &[], vec![("lib.py", WITH_B)]))
            .rule(approve())
    })
    .await
    else {
        return;
    };
    let before = git(&rig.project, &["rev-parse", "HEAD"]);
    let mut settings = rig.config();
    settings.slots = 2;
    settings.gate.commands = Some(import_gate());
    let report = rig
        .run_isolated(settings, "Add a() and b() to lib.py")
        .await;
    assert!(report.completed(), "{:?}", report.view.status);
    let attempts: Vec<u32> = report
        .view
        .tasks_in_order()
        .map(|task| task.attempts)
        .collect();
    assert!(
        attempts == [1, 2] || attempts == [2, 1],
        "one task integrated at once, the other was redone after the conflict: {attempts:?}"
    );
    let redone = report
        .view
        .tasks_in_order()
        .find(|task| task.attempts == 2)
        .unwrap()
        .id()
        .to_string();
    let conflict_prompts: Vec<String> = rig
        .requests()
        .iter()
        .filter(|request| request.system.contains("ROLE: Worker"))
        .flat_map(|request| {
            request
                .messages
                .iter()
                .map(ModelRequest::message_text)
                .collect::<Vec<_>>()
        })
        .filter(|text| text.contains(CONFLICT) && text.contains(&format!("TASK {redone}:")))
        .collect();
    assert!(
        conflict_prompts.iter().any(|text| text.contains("lib.py")),
        "the redone Worker was told which file conflicts"
    );
    assert_eq!(
        std::fs::read_to_string(rig.project.join("lib.py")).unwrap(),
        WITH_BOTH,
        "both functions are in the user's tree at the end"
    );
    assert!(
        matches!(
            &report.view.delivery,
            Some(Delivery::FastForwarded { branch: Some(branch), .. }) if branch == "main"
        ),
        "{:?}",
        report.view.delivery
    );
    // The user's branch moved forward from where it was, and no worktree is left.
    let log = git(&rig.project, &["log", "--format=%H", "HEAD"]);
    assert!(log.lines().any(|line| line == before.trim()));
    let worktrees = git(&rig.project, &["worktree", "list", "--porcelain"]);
    assert_eq!(worktrees.matches("worktree ").count(), 1, "{worktrees}");
}

/// Two tasks on different files: while they run, the user's files stay byte for byte as they were and
/// the user commits in their tree; at the end the mission's result is on its integration branch, and the
/// user's branch, which moved, is left alone with the command that merges the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_users_tree_is_untouched_and_usable_while_a_mission_runs() {
    let Some(rig) = common::rig(|_| {
        let mut script = Script::new()
            .rule(titles())
            .rule(common::commander());
        for rule in planner(
            "# Mission: two files\n## M1: Files\n### T1: One\nWrite one.txt.\n### T2: Two\nWrite two.txt.\n",
        ) {
            script = script.rule(rule);
        }
        script
            .rule(worker_done())
            .rule(
                worker_writes("T1", &[], vec![("one.txt", "1\n")])
                    .reply(Reply::ToolCalls(vec![write("one.txt", "1\n")]).delayed(Duration::from_secs(2))),
            )
            .rule(
                worker_writes("T2", &[], vec![("two.txt", "2\n")])
                    .reply(Reply::ToolCalls(vec![write("two.txt", "2\n")]).delayed(Duration::from_secs(2))),
            )
            .rule(approve())
    })
    .await
    else {
        return;
    };
    let project = rig.project.clone();
    let start = snapshot(&project);
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (project, done, start) = (project.clone(), done.clone(), start.clone());
        std::thread::spawn(move || {
            let mut changed = Vec::new();
            let mut committed = false;
            while !done.load(Ordering::Acquire) {
                let now = snapshot(&project);
                let mut expected = start.clone();
                if committed {
                    expected.insert("notes.txt".to_string(), b"mine\n".to_vec());
                }
                if now != expected {
                    changed.push(now.keys().cloned().collect::<Vec<_>>());
                }
                if !committed {
                    // The user goes on working: a commit of their own in the middle of the mission.
                    std::thread::sleep(Duration::from_millis(500));
                    std::fs::write(project.join("notes.txt"), "mine\n").unwrap();
                    git(&project, &["add", "notes.txt"]);
                    git(&project, &["commit", "-q", "-m", "the user's own work"]);
                    committed = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            changed
        })
    };
    let mut settings = rig.config();
    settings.slots = 2;
    settings.gate.commands = Some(vec![GateCommand::new("true", "true", Vec::<String>::new())]);
    let report = rig
        .run_isolated(settings, "Write one.txt and two.txt")
        .await;
    done.store(true, Ordering::Release);
    let changed = watcher.join().unwrap();
    assert!(report.completed(), "{:?}", report.view.status);
    assert!(
        changed.is_empty(),
        "the user's tree changed during the mission: {changed:?}"
    );
    let Some(Delivery::Kept { reason, command }) = &report.view.delivery else {
        panic!(
            "the user's HEAD moved: the result is kept, not delivered: {:?}",
            report.view.delivery
        );
    };
    assert!(reason.contains("HEAD moved"), "{reason}");
    let integration = &report.view.origin.as_ref().unwrap().integration;
    assert!(
        command.contains(&format!("merge {integration}")),
        "{command}"
    );
    // The result is on the integration branch, the user's commit on theirs, their tree as they left it.
    let files = git(&project, &["ls-tree", "--name-only", integration]);
    assert!(
        files.contains("one.txt") && files.contains("two.txt"),
        "{files}"
    );
    assert_eq!(
        git(&project, &["log", "-1", "--format=%s"]).trim(),
        "the user's own work"
    );
    assert!(!project.join("one.txt").exists());
}

/// A directory that is not a git repository, and a repository with no commit: the command says what is
/// wrong and what to do (exit 2) before it starts anything, and leaves the directory as it was.
#[test]
fn a_project_without_git_or_without_a_commit_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("notes.txt"), "mine\n").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    git(&empty, &["init", "-q"]);
    std::fs::write(empty.join("notes.txt"), "mine\n").unwrap();
    for (project, expected) in [
        (&plain, "is not in a git repository"),
        (&empty, "has no commits yet"),
    ] {
        let before = snapshot(project);
        let output = Command::new(common::binary())
            .args([
                "task",
                "Write one.txt",
                "--url",
                "http://127.0.0.1:9",
                "--project",
            ])
            .arg(project)
            .env("GIT_CEILING_DIRECTORIES", dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}", common::show(&output));
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains("--no-isolation"), "{stderr}");
        assert_eq!(snapshot(project), before, "nothing of the user's changed");
        assert!(!project.join(".opencode").exists(), "no state was written");
    }
}

/// The demo runs its tasks in worktrees: the summary names the integration branch and says the user's
/// branch was fast-forwarded; `--no-isolation` runs the same mission in the project itself.
#[test]
fn the_demo_integrates_its_tasks_and_names_the_branch() {
    if std::env::var("ORCH_SKIP_OPENCODE").as_deref() == Ok("1") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, isolated) in [("isolated", true), ("in-place", false)] {
        let project = dir.path().join(name);
        let mut command = Command::new(common::binary());
        command
            .args(["task", "A small text toolkit", "--demo", "--project"])
            .arg(&project)
            .env("XDG_CACHE_HOME", dir.path().join("cache"));
        if !isolated {
            command.arg("--no-isolation");
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{}", common::show(&output));
        assert_eq!(
            stdout.contains("integration: orchestrator/m"),
            isolated,
            "{stdout}"
        );
        if isolated {
            assert!(
                stdout.contains("delivered:   main fast-forwarded to"),
                "{stdout}"
            );
            let branches = git(&project, &["branch", "--list", "orchestrator*"]);
            assert!(branches.contains("orchestrator/m"), "{branches}");
            assert!(git(&project, &["log", "--format=%s"]).contains("T1.3"));
        }
        for file in ["textkit_slug.py", "textkit_words.py", "textkit_report.py"] {
            assert!(project.join(file).exists(), "{name}: {file}");
        }
        assert!(git(&project, &["status", "--porcelain", "--untracked-files=no"]).is_empty());
    }
}
