//! The git adapter against the real `git` program, in scratch repositories: the user's checkout is never
//! touched while a mission runs, task worktrees live outside it, merges never check out the integration
//! branch, a moved branch is never overwritten, and no commit is ever dropped silently.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use orchestrator::adapters::git::{
    BranchRole, FileStatus, FinishOutcome, FinishRefusal, GitError, GitWorkspace, Head, IdKind,
    MergeOutcome, MergePlan, integration_branch, task_branch,
};
use orchestrator::domain::workspace::CommitId;
use tempfile::TempDir;

/// Runs git as the user would, with an identity of their own; returns its stdout, trimmed.
fn user_git(dir: &Path, args: &[&str]) -> String {
    let output = user_git_output(dir, args);
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

fn user_git_output(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args([
            "-c",
            "user.name=User",
            "-c",
            "user.email=user@example.com",
            "-c",
            "commit.gpgSign=false",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap()
}

fn write(dir: &Path, path: &str, content: &str) {
    let path = dir.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn read(dir: &Path, path: &str) -> String {
    fs::read_to_string(dir.join(path)).unwrap()
}

fn commit_id(hex: &str) -> CommitId {
    CommitId::parse(hex).unwrap()
}

/// A scratch repository with one commit of `files`, and a worktree root of its own outside it.
struct Fixture {
    repo: TempDir,
    cache: TempDir,
    git: GitWorkspace,
}

impl Fixture {
    async fn new(files: &[(&str, &str)]) -> Self {
        let repo = tempfile::Builder::new()
            .prefix("git-adapter-repo-")
            .tempdir()
            .unwrap();
        user_git(repo.path(), &["init", "--quiet", "-b", "main"]);
        for (path, content) in files {
            write(repo.path(), path, content);
        }
        user_git(repo.path(), &["add", "-A"]);
        user_git(repo.path(), &["commit", "--quiet", "-m", "initial"]);
        Self::open(repo).await
    }

    async fn open(repo: TempDir) -> Self {
        let cache = tempfile::Builder::new()
            .prefix("git-adapter-cache-")
            .tempdir()
            .unwrap();
        let git = GitWorkspace::open(repo.path())
            .await
            .unwrap()
            .with_worktree_root(cache.path().join("worktrees"));
        Self { repo, cache, git }
    }

    fn dir(&self) -> &Path {
        self.repo.path()
    }

    fn head(&self) -> String {
        user_git(self.dir(), &["rev-parse", "HEAD"])
    }

    /// The user's `git status`, as they see it.
    fn status(&self) -> String {
        user_git(
            self.dir(),
            &["status", "--porcelain", "--untracked-files=all"],
        )
    }

    fn assert_user_untouched(&self) {
        assert_eq!(self.status(), "", "the user's git status changed");
    }
}

/// Commits `files` in a task's worktree through the adapter.
async fn work(fixture: &Fixture, path: &Path, files: &[(&str, &str)], message: &str) -> CommitId {
    for (file, content) in files {
        write(path, file, content);
    }
    fixture
        .git
        .commit_all(path, message)
        .await
        .unwrap()
        .expect("a commit")
}

const LIB: &str =
    "pub fn zero() -> u32 {\n    0\n}\n\n// ---\n\npub fn last() -> u32 {\n    9\n}\n";

#[tokio::test]
async fn inspect_reports_the_branch_head_and_uncommitted_changes_without_writing() {
    let fixture = Fixture::new(&[("src/lib.rs", LIB), (".gitignore", "target/\n")]).await;
    let checkout = fixture.git.inspect().await.unwrap();
    assert_eq!(checkout.head, Head::Branch("main".to_owned()));
    assert_eq!(checkout.commit.as_str(), fixture.head());
    assert!(checkout.changes.is_clean());
    assert_eq!(
        fs::canonicalize(&checkout.top_level).unwrap(),
        fs::canonicalize(fixture.dir()).unwrap()
    );

    write(fixture.dir(), "src/lib.rs", "changed\n");
    write(fixture.dir(), "notes/todo.txt", "mine\n");
    write(fixture.dir(), "target/debug/big", "ignored\n");
    write(
        fixture.dir(),
        ".opencode/orchestrator/missions/m1/log",
        "ours\n",
    );
    let index = fs::read(fixture.dir().join(".git/index")).unwrap();
    let checkout = fixture.git.inspect().await.unwrap();
    assert_eq!(checkout.changes.tracked, ["src/lib.rs"]);
    assert_eq!(checkout.changes.untracked, ["notes/"]);
    assert_eq!(
        fs::read(fixture.dir().join(".git/index")).unwrap(),
        index,
        "inspect wrote the index"
    );
}

#[tokio::test]
async fn a_detached_head_is_reported_and_a_mission_starts_from_its_commit() {
    let fixture = Fixture::new(&[("a.txt", "a\n")]).await;
    let first = fixture.head();
    write(fixture.dir(), "a.txt", "b\n");
    user_git(fixture.dir(), &["commit", "--quiet", "-am", "second"]);
    user_git(fixture.dir(), &["checkout", "--quiet", "--detach", &first]);

    let checkout = fixture.git.inspect().await.unwrap();
    assert_eq!(checkout.head, Head::Detached);
    assert_eq!(checkout.commit.as_str(), first);
    let branch = fixture
        .git
        .create_integration_branch("m1", &checkout.commit)
        .await
        .unwrap();
    assert_eq!(branch, "orchestrator/m1");
    assert_eq!(user_git(fixture.dir(), &["rev-parse", &branch]), first);
    assert_eq!(user_git(fixture.dir(), &["rev-parse", "HEAD"]), first);
}

#[tokio::test]
async fn a_repository_without_commits_is_a_typed_error() {
    let repo = tempfile::tempdir().unwrap();
    user_git(repo.path(), &["init", "--quiet", "-b", "trunk"]);
    let fixture = Fixture::open(repo).await;
    let error = fixture.git.inspect().await.unwrap_err();
    let GitError::NoCommits { branch, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(branch.as_deref(), Some("trunk"));
    assert!(error.to_string().contains("no commits yet"), "{error}");
}

#[tokio::test]
async fn a_directory_outside_any_repository_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = GitWorkspace::open(dir.path()).await.unwrap_err();
    let GitError::NotARepository { path } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(path, dir.path());
    assert!(error.to_string().contains("git init"), "{error}");

    let bare = tempfile::tempdir().unwrap();
    user_git(bare.path(), &["init", "--quiet", "--bare"]);
    let error = GitWorkspace::open(bare.path()).await.unwrap_err();
    assert!(matches!(error, GitError::NoWorkingTree { .. }), "{error:?}");
}

#[tokio::test]
async fn ids_that_cannot_name_a_branch_are_refused_before_anything_is_written() {
    let fixture = Fixture::new(&[("a.txt", "a\n")]).await;
    let head = commit_id(&fixture.head());
    for (mission, task, kind) in [
        ("m/1", "T1", IdKind::Mission),
        ("m1", "T1.lock", IdKind::Task),
        ("m1", "T..1", IdKind::Task),
        ("m1", "-rf", IdKind::Task),
        ("m1", "a b", IdKind::Task),
        ("m1", "x~1", IdKind::Task),
    ] {
        let error = fixture
            .git
            .create_task_worktree(mission, task, &head)
            .await
            .unwrap_err();
        let GitError::InvalidId { kind: found, .. } = &error else {
            panic!("{mission} {task}: {error:?}");
        };
        assert_eq!(*found, kind, "{mission} {task}");
    }
    assert!(
        fixture
            .git
            .leftovers(None)
            .await
            .unwrap()
            .branches
            .is_empty()
    );
}

#[tokio::test]
async fn the_integration_branch_is_made_without_touching_the_users_checkout() {
    let fixture = Fixture::new(&[("a.txt", "a\n")]).await;
    let head = commit_id(&fixture.head());
    let index = fs::read(fixture.dir().join(".git/index")).unwrap();
    let symbolic = fs::read(fixture.dir().join(".git/HEAD")).unwrap();

    let branch = fixture
        .git
        .create_integration_branch("m1", &head)
        .await
        .unwrap();
    assert_eq!(fixture.git.integration_head("m1").await.unwrap(), head);
    // Again at the same commit: a resumed mission may ask twice.
    fixture
        .git
        .create_integration_branch("m1", &head)
        .await
        .unwrap();
    assert_eq!(fs::read(fixture.dir().join(".git/index")).unwrap(), index);
    assert_eq!(fs::read(fixture.dir().join(".git/HEAD")).unwrap(), symbolic);
    fixture.assert_user_untouched();

    write(fixture.dir(), "a.txt", "b\n");
    user_git(fixture.dir(), &["commit", "--quiet", "-am", "user"]);
    let moved = commit_id(&fixture.head());
    let error = fixture
        .git
        .create_integration_branch("m1", &moved)
        .await
        .unwrap_err();
    let GitError::BranchExists { branch: named, at } = &error else {
        panic!("{error:?}");
    };
    assert_eq!((named, at), (&branch, &head));
    let missing = fixture.git.integration_head("m2").await.unwrap_err();
    assert!(
        matches!(missing, GitError::MissingBranch { .. }),
        "{missing:?}"
    );
}

/// The whole flow with a dirty user tree: two tasks add functions to the same file, the first
/// fast-forwards, the second (based before the first) merges cleanly with a merge commit; the user's
/// modified and untracked files stay byte for byte what they were, and their `git status` never shows a
/// worktree.
#[tokio::test]
async fn parallel_tasks_merge_cleanly_while_the_users_dirty_tree_stays_as_it_was() {
    let fixture = Fixture::new(&[("src/lib.rs", LIB), ("README", "readme\n")]).await;
    write(fixture.dir(), "README", "my uncommitted edit\n");
    write(fixture.dir(), "scratch.bin", "\u{0}\u{1}binary-ish\n");
    let status_before = fixture.status();
    let start = fixture.git.inspect().await.unwrap();
    assert_eq!(start.changes.tracked, ["README"]);
    assert_eq!(start.changes.untracked, ["scratch.bin"]);

    fixture
        .git
        .create_integration_branch("m1", &start.commit)
        .await
        .unwrap();
    let base = fixture.git.integration_head("m1").await.unwrap();
    let first = fixture
        .git
        .create_task_worktree("m1", "T1", &base)
        .await
        .unwrap();
    let second = fixture
        .git
        .create_task_worktree("m1", "T2", &base)
        .await
        .unwrap();
    assert_eq!(first.branch, "orchestrator-task/m1/T1");
    assert_eq!(first.base, start.commit);
    assert!(first.kept.is_none());
    for task in [&first, &second] {
        assert!(task.path.starts_with(fixture.cache.path()), "{task:?}");
        assert!(!task.path.starts_with(fixture.dir()));
        // The task sees the committed state, not the user's uncommitted edit.
        assert_eq!(read(&task.path, "README"), "readme\n");
        assert!(!task.path.join("scratch.bin").exists());
    }
    assert_eq!(fixture.status(), status_before);

    let lib_first = LIB.replace("// ---", "pub fn one() -> u32 {\n    1\n}\n\n// ---");
    let lib_second = LIB.replace(
        "pub fn last",
        "pub fn eight() -> u32 {\n    8\n}\n\npub fn last",
    );
    let head_first = work(&fixture, &first.path, &[("src/lib.rs", &lib_first)], "T1").await;
    let head_second = work(&fixture, &second.path, &[("src/lib.rs", &lib_second)], "T2").await;

    let diff = fixture
        .git
        .diff(&second.base, &second.branch, 64 * 1024)
        .await
        .unwrap();
    assert_eq!(diff.head, head_second);
    assert_eq!(diff.files.len(), 1);
    assert_eq!(diff.files[0].path, "src/lib.rs");
    assert_eq!(diff.files[0].status, FileStatus::Modified);
    assert_eq!(
        (diff.files[0].additions, diff.files[0].deletions),
        (Some(4), Some(0))
    );
    assert!(
        diff.text.contains("+pub fn eight() -> u32 {"),
        "{}",
        diff.text
    );
    assert!(!diff.is_truncated());

    let MergeOutcome::Integrated {
        from,
        to,
        fast_forward,
    } = fixture.git.merge("m1", "T1").await.unwrap()
    else {
        panic!("T1 did not integrate");
    };
    assert_eq!((&from, &to, fast_forward), (&base, &head_first, true));
    // T2 was based before T1 was integrated: a real three-way merge.
    let MergeOutcome::Integrated {
        from,
        to,
        fast_forward,
    } = fixture.git.merge("m1", "T2").await.unwrap()
    else {
        panic!("T2 did not integrate");
    };
    assert_eq!(from, head_first);
    assert!(!fast_forward);
    let parents = user_git(
        fixture.dir(),
        &["rev-list", "--parents", "-n", "1", to.as_str()],
    );
    assert_eq!(
        parents,
        format!("{to} {head_first} {head_second}"),
        "a merge of the integration head and the task"
    );
    let merged = user_git(fixture.dir(), &["show", &format!("{to}:src/lib.rs")]);
    assert!(
        merged.contains("pub fn one()") && merged.contains("pub fn eight()"),
        "{merged}"
    );
    assert_eq!(
        user_git(
            fixture.dir(),
            &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", to.as_str()]
        ),
        "orchestrator <orchestrator@localhost>|orchestrator <orchestrator@localhost>|orchestrator: integrate T2"
    );
    // Merging again changes nothing.
    assert_eq!(
        fixture.git.merge("m1", "T2").await.unwrap(),
        MergeOutcome::AlreadyIntegrated { head: to.clone() }
    );

    // The gate's view of the integrated result.
    let gate = fixture
        .git
        .create_integration_worktree("m1", &to)
        .await
        .unwrap();
    assert!(gate.starts_with(fixture.cache.path()));
    assert_eq!(read(&gate, "src/lib.rs"), format!("{merged}\n"));

    // Throughout, the user's branch, index, modified and untracked files are what they were.
    assert_eq!(fixture.head(), start.commit.as_str());
    assert_eq!(fixture.status(), status_before);
    assert_eq!(read(fixture.dir(), "README"), "my uncommitted edit\n");
    assert_eq!(
        fs::read(fixture.dir().join("scratch.bin")).unwrap(),
        b"\x00\x01binary-ish\n"
    );

    // The end: the tree is dirty, so nothing moves and the user gets the command.
    let FinishOutcome::Refused { reason, command } =
        fixture.git.finish("m1", &start).await.unwrap()
    else {
        panic!("a dirty tree was fast-forwarded");
    };
    assert!(matches!(reason, FinishRefusal::Dirty(_)), "{reason:?}");
    assert!(command.ends_with(" merge orchestrator/m1"), "{command}");
    assert_eq!(fixture.head(), start.commit.as_str());
    assert_eq!(fixture.status(), status_before);
}

#[tokio::test]
async fn a_rewrite_of_the_same_region_conflicts_and_names_the_file_and_hunk() {
    let fixture = Fixture::new(&[("src/lib.rs", LIB), ("other.txt", "x\n")]).await;
    let start = commit_id(&fixture.head());
    fixture
        .git
        .create_integration_branch("m1", &start)
        .await
        .unwrap();
    let first = fixture
        .git
        .create_task_worktree("m1", "T1", &start)
        .await
        .unwrap();
    let second = fixture
        .git
        .create_task_worktree("m1", "T2", &start)
        .await
        .unwrap();
    work(
        &fixture,
        &first.path,
        &[("src/lib.rs", "pub fn zero() -> u64 {\n    0\n}\n")],
        "T1 rewrites",
    )
    .await;
    let second_head = work(
        &fixture,
        &second.path,
        &[
            ("src/lib.rs", "pub fn zero() -> i8 {\n    -0\n}\n"),
            ("other.txt", "y\n"),
        ],
        "T2 rewrites too",
    )
    .await;
    let integrated = match fixture.git.merge("m1", "T1").await.unwrap() {
        MergeOutcome::Integrated { to, .. } => to,
        other => panic!("{other:?}"),
    };

    let MergeOutcome::Conflict(conflict) = fixture.git.merge("m1", "T2").await.unwrap() else {
        panic!("no conflict");
    };
    assert_eq!(conflict.onto, integrated);
    assert_eq!(conflict.task_head, second_head);
    assert_eq!(conflict.paths(), ["src/lib.rs"]);
    let file = &conflict.files[0];
    assert_eq!(
        file.messages,
        ["CONFLICT (content): Merge conflict in src/lib.rs"]
    );
    assert_eq!(file.hunks.len(), 1, "{:#?}", file.hunks);
    let hunk = &file.hunks[0].text;
    assert!(
        hunk.contains("<<<<<<< orchestrator/m1 (integrated)\npub fn zero() -> u64 {\n"),
        "{hunk}"
    );
    assert!(
        hunk.contains(
            "=======\npub fn zero() -> i8 {\n    -0\n>>>>>>> orchestrator-task/m1/T2 (this task)\n"
        ),
        "{hunk}"
    );
    let findings = conflict.for_worker();
    assert!(findings.contains("### src/lib.rs"), "{findings}");
    // The integration branch did not move, and the user saw nothing.
    assert_eq!(
        fixture.git.integration_head("m1").await.unwrap(),
        integrated
    );
    fixture.assert_user_untouched();
    assert_eq!(fixture.head(), start.as_str());
}

#[tokio::test]
async fn a_modify_delete_conflict_is_reported_without_hunks() {
    let fixture = Fixture::new(&[("gone.rs", "fn a() {}\n")]).await;
    let start = commit_id(&fixture.head());
    fixture
        .git
        .create_integration_branch("m1", &start)
        .await
        .unwrap();
    let first = fixture
        .git
        .create_task_worktree("m1", "T1", &start)
        .await
        .unwrap();
    let second = fixture
        .git
        .create_task_worktree("m1", "T2", &start)
        .await
        .unwrap();
    fs::remove_file(first.path.join("gone.rs")).unwrap();
    fixture.git.commit_all(&first.path, "delete").await.unwrap();
    work(
        &fixture,
        &second.path,
        &[("gone.rs", "fn b() {}\n")],
        "modify",
    )
    .await;
    fixture.git.merge("m1", "T1").await.unwrap();
    let MergeOutcome::Conflict(conflict) = fixture.git.merge("m1", "T2").await.unwrap() else {
        panic!("no conflict");
    };
    assert_eq!(conflict.paths(), ["gone.rs"]);
    assert!(
        conflict.files[0].messages[0].starts_with("CONFLICT (modify/delete)"),
        "{:?}",
        conflict.files[0].messages
    );
}

#[tokio::test]
async fn the_integration_branch_is_not_overwritten_when_it_moved_after_the_merge_was_planned() {
    let fixture = Fixture::new(&[("a.txt", "a\n")]).await;
    let start = commit_id(&fixture.head());
    fixture
        .git
        .create_integration_branch("m1", &start)
        .await
        .unwrap();
    let first = fixture
        .git
        .create_task_worktree("m1", "T1", &start)
        .await
        .unwrap();
    let second = fixture
        .git
        .create_task_worktree("m1", "T2", &start)
        .await
        .unwrap();
    work(&fixture, &first.path, &[("one.txt", "1\n")], "T1").await;
    work(&fixture, &second.path, &[("two.txt", "2\n")], "T2").await;

    let MergePlan::Ready { onto, to, .. } = fixture.git.prepare_merge("m1", "T2").await.unwrap()
    else {
        panic!("T2 not ready");
    };
    // Meanwhile T1 is integrated: the planned move from `onto` must be refused.
    let MergeOutcome::Integrated { to: moved, .. } = fixture.git.merge("m1", "T1").await.unwrap()
    else {
        panic!("T1 did not integrate");
    };
    let error = fixture
        .git
        .advance_integration("m1", &onto, &to)
        .await
        .unwrap_err();
    let GitError::RefMoved {
        branch,
        expected,
        found,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(branch, "orchestrator/m1");
    assert_eq!(expected, &onto);
    assert_eq!(found.as_ref(), Some(&moved));
    assert_eq!(fixture.git.integration_head("m1").await.unwrap(), moved);

    // Planned again on the new head, it merges, keeping both tasks' files.
    let MergeOutcome::Integrated { from, to, .. } = fixture.git.merge("m1", "T2").await.unwrap()
    else {
        panic!("T2 did not integrate");
    };
    assert_eq!(from, moved);
    let files = user_git(fixture.dir(), &["ls-tree", "--name-only", to.as_str()]);
    assert_eq!(files, "a.txt\none.txt\ntwo.txt");
    fixture.assert_user_untouched();
}

#[tokio::test]
async fn commit_all_takes_new_and_deleted_files_but_not_ignored_or_orchestrator_files() {
    let fixture = Fixture::new(&[
        ("keep.txt", "keep\n"),
        ("drop.txt", "drop\n"),
        (".gitignore", "*.log\n"),
    ])
    .await;
    // The user has no usable identity in this repository: the adapter's commits must not need one.
    user_git(fixture.dir(), &["config", "user.name", ""]);
    user_git(fixture.dir(), &["config", "user.email", ""]);
    user_git(fixture.dir(), &["config", "user.useConfigOnly", "true"]);
    let plain = Command::new("git")
        .args([
            "commit",
            "--allow-empty",
            "--no-verify",
            "-m",
            "needs an identity",
        ])
        .current_dir(fixture.dir())
        .env_remove("GIT_AUTHOR_NAME")
        .env_remove("GIT_COMMITTER_NAME")
        .output()
        .unwrap();
    assert!(
        !plain.status.success(),
        "git commits without an identity here"
    );
    let start = commit_id(&fixture.head());
    let task = fixture
        .git
        .create_task_worktree("m1", "T1", &start)
        .await
        .unwrap();
    assert_eq!(
        fixture.git.commit_all(&task.path, "nothing").await.unwrap(),
        None
    );

    write(&task.path, "new/file.rs", "fn main() {}\n");
    write(&task.path, "build.log", "ignored\n");
    write(
        &task.path,
        ".opencode/orchestrator/state",
        "the orchestrator's\n",
    );
    write(&task.path, "sub/.opencode/orchestrator/state", "also\n");
    fs::remove_file(task.path.join("drop.txt")).unwrap();
    let commit = fixture
        .git
        .commit_all(&task.path, "T1: work")
        .await
        .unwrap()
        .unwrap();
    let changed = user_git(
        fixture.dir(),
        &["diff", "--name-status", start.as_str(), commit.as_str()],
    );
    assert_eq!(changed, "D\tdrop.txt\nA\tnew/file.rs");
    assert_eq!(
        user_git(
            fixture.dir(),
            &["log", "-1", "--format=%an <%ae>|%B", commit.as_str()]
        ),
        "orchestrator <orchestrator@localhost>|T1: work"
    );
    assert_eq!(fixture.git.branch_head(&task.branch).await.unwrap(), commit);

    // A worktree that left its task branch is refused.
    user_git(&task.path, &["checkout", "--quiet", "--detach"]);
    let error = fixture.git.commit_all(&task.path, "x").await.unwrap_err();
    assert!(
        matches!(error, GitError::NotOnTaskBranch { found: None, .. }),
        "{error:?}"
    );
    fixture.assert_user_untouched();
}

#[tokio::test]
async fn a_long_diff_is_cut_at_a_line_but_every_file_is_listed() {
    let fixture =
        Fixture::new(&[("a.txt", "a\n"), ("old name.txt", "same\ncontent\nhere\n")]).await;
    let start = commit_id(&fixture.head());
    let task = fixture
        .git
        .create_task_worktree("m1", "T1", &start)
        .await
        .unwrap();
    let long: String = (0..2000).map(|line| format!("line {line}\n")).collect();
    write(&task.path, "long.txt", &long);
    write(&task.path, "image.png", "\u{0}\u{1}\u{2}");
    fs::rename(
        task.path.join("old name.txt"),
        task.path.join("new name.txt"),
    )
    .unwrap();
    fixture.git.commit_all(&task.path, "T1").await.unwrap();

    let diff = fixture.git.diff(&start, &task.branch, 1000).await.unwrap();
    assert!(diff.is_truncated());
    assert!(
        diff.text.len() <= 1000 && diff.text.ends_with('\n'),
        "{}",
        diff.text.len()
    );
    assert!(diff.total_bytes > 10_000);
    let files: Vec<_> = diff
        .files
        .iter()
        .map(|file| {
            (
                file.path.as_str(),
                file.old_path.as_deref(),
                file.status,
                file.additions,
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("image.png", None, FileStatus::Added, None),
            ("long.txt", None, FileStatus::Added, Some(2000)),
            (
                "new name.txt",
                Some("old name.txt"),
                FileStatus::Renamed,
                Some(0)
            ),
        ]
    );
    let whole = fixture
        .git
        .diff(&start, diff.head.as_str(), 1 << 20)
        .await
        .unwrap();
    assert!(!whole.is_truncated());
    assert_eq!(whole.text.len() as u64, whole.total_bytes);
}

#[tokio::test]
async fn recreating_a_task_worktree_keeps_the_earlier_attempts_commits_and_leftovers() {
    let fixture = Fixture::new(&[("a.txt", "a\n")]).await;
    let start = commit_id(&fixture.head());
    fixture
        .git
        .create_integration_branch("m1", &start)
        .await
        .unwrap();
    let attempt = fixture
        .git
        .create_task_worktree("m1", "T1", &start)
        .await
        .unwrap();
    let committed = work(
        &fixture,
        &attempt.path,
        &[("first.txt", "1\n")],
        "attempt 1",
    )
    .await;
    // Left uncommitted when the attempt was abandoned.
    write(&attempt.path, "unsaved.txt", "not committed\n");

    // The integration branch moved on meanwhile (another task).
    let other = fixture
        .git
        .create_task_worktree("m1", "T2", &start)
        .await
        .unwrap();
    work(&fixture, &other.path, &[("other.txt", "2\n")], "T2").await;
    fixture.git.merge("m1", "T2").await.unwrap();
    let new_base = fixture.git.integration_head("m1").await.unwrap();

    let again = fixture
        .git
        .create_task_worktree("m1", "T1", &new_base)
        .await
        .unwrap();
    assert_eq!(again.path, attempt.path);
    assert_eq!(again.base, new_base);
    assert_eq!(
        fixture.git.branch_head(&again.branch).await.unwrap(),
        new_base
    );
    assert!(again.path.join("other.txt").exists());
    assert!(!again.path.join("first.txt").exists());
    assert!(!again.path.join("unsaved.txt").exists());
    let kept = again.kept.clone().expect("the earlier attempt is kept");
    assert_eq!(kept.branch, "orchestrator-attempt/m1/T1/1");
    // The kept branch has the committed work and, on top, what was left uncommitted.
    assert_eq!(
        user_git(fixture.dir(), &["rev-parse", &format!("{}^", kept.head)]),
        committed.as_str()
    );
    assert_eq!(
        user_git(
            fixture.dir(),
            &["show", &format!("{}:unsaved.txt", kept.branch)]
        ),
        "not committed"
    );

    // A third attempt from the same base, after new work: attempt 2; an attempt without work is not kept.
    work(&fixture, &again.path, &[("second.txt", "2\n")], "attempt 2").await;
    let third = fixture
        .git
        .create_task_worktree("m1", "T1", &new_base)
        .await
        .unwrap();
    assert_eq!(
        third.kept.map(|kept| kept.branch).as_deref(),
        Some("orchestrator-attempt/m1/T1/2")
    );
    let fourth = fixture
        .git
        .create_task_worktree("m1", "T1", &new_base)
        .await
        .unwrap();
    assert_eq!(fourth.kept, None);
    // A worktree whose directory vanished (a cleaner, a crash) is replaced too, its commits kept.
    work(&fixture, &fourth.path, &[("third.txt", "3\n")], "attempt 4").await;
    fs::remove_dir_all(&fourth.path).unwrap();
    let fifth = fixture
        .git
        .create_task_worktree("m1", "T1", &new_base)
        .await
        .unwrap();
    assert_eq!(
        fifth.kept.map(|kept| kept.branch).as_deref(),
        Some("orchestrator-attempt/m1/T1/3")
    );
    assert!(fifth.path.join("other.txt").exists());

    let leftovers = fixture.git.leftovers(Some("m1")).await.unwrap();
    let roles: Vec<_> = leftovers
        .branches
        .iter()
        .map(|branch| (branch.name.as_str(), branch.role.clone()))
        .collect();
    assert_eq!(
        roles,
        [
            (
                "orchestrator-attempt/m1/T1/1",
                BranchRole::Attempt {
                    task: "T1".into(),
                    attempt: 1
                }
            ),
            (
                "orchestrator-attempt/m1/T1/2",
                BranchRole::Attempt {
                    task: "T1".into(),
                    attempt: 2
                }
            ),
            (
                "orchestrator-attempt/m1/T1/3",
                BranchRole::Attempt {
                    task: "T1".into(),
                    attempt: 3
                }
            ),
            (
                "orchestrator-task/m1/T1",
                BranchRole::Task { task: "T1".into() }
            ),
            (
                "orchestrator-task/m1/T2",
                BranchRole::Task { task: "T2".into() }
            ),
            ("orchestrator/m1", BranchRole::Integration),
        ]
    );
    fixture.assert_user_untouched();
}

#[tokio::test]
async fn worktrees_and_branches_are_listed_removed_and_pruned_but_never_the_users() {
    let fixture = Fixture::new(&[("a.txt", "a\n")]).await;
    let start = commit_id(&fixture.head());
    fixture
        .git
        .create_integration_branch("m1", &start)
        .await
        .unwrap();
    fixture
        .git
        .create_integration_branch("m2", &start)
        .await
        .unwrap();
    let merged = fixture
        .git
        .create_task_worktree("m1", "T1", &start)
        .await
        .unwrap();
    let unmerged = fixture
        .git
        .create_task_worktree("m1", "T2", &start)
        .await
        .unwrap();
    let elsewhere = fixture
        .git
        .create_task_worktree("m2", "T1", &start)
        .await
        .unwrap();
    work(&fixture, &merged.path, &[("one.txt", "1\n")], "T1").await;
    work(&fixture, &unmerged.path, &[("two.txt", "2\n")], "T2").await;
    fixture.git.merge("m1", "T1").await.unwrap();
    let gate = fixture
        .git
        .create_integration_worktree("m1", &fixture.git.integration_head("m1").await.unwrap())
        .await
        .unwrap();

    let leftovers = fixture.git.leftovers(Some("m1")).await.unwrap();
    let mut paths: Vec<PathBuf> = leftovers
        .worktrees
        .iter()
        .map(|worktree| worktree.path.clone())
        .collect();
    paths.sort();
    let mut expected = vec![gate.clone(), merged.path.clone(), unmerged.path.clone()];
    expected.sort();
    assert_eq!(paths, expected);
    assert_eq!(
        fixture.git.leftovers(None).await.unwrap().worktrees.len(),
        4
    );

    // The user's own checkout and branch are never removed.
    let error = fixture
        .git
        .remove_worktree(fixture.dir())
        .await
        .unwrap_err();
    assert!(
        matches!(error, GitError::NotOurWorktree { .. }),
        "{error:?}"
    );
    let error = fixture.git.delete_branch("main", None).await.unwrap_err();
    assert!(matches!(error, GitError::NotOurBranch { .. }), "{error:?}");
    // A checked-out branch waits for its worktree's removal.
    let error = fixture
        .git
        .delete_branch(&merged.branch, Some(&integration_branch("m1")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, GitError::BranchCheckedOut { .. }),
        "{error:?}"
    );

    for path in [&merged.path, &unmerged.path, &gate] {
        write(
            path,
            "target/debug/build-output",
            "untracked build output\n",
        );
        fixture.git.remove_worktree(path).await.unwrap();
        assert!(!path.exists());
    }
    fixture
        .git
        .delete_branch(&merged.branch, Some(&integration_branch("m1")))
        .await
        .unwrap();
    // Unmerged work is not deleted unless asked.
    let error = fixture
        .git
        .delete_branch(&unmerged.branch, Some(&integration_branch("m1")))
        .await
        .unwrap_err();
    assert!(matches!(error, GitError::NotMerged { .. }), "{error:?}");
    fixture
        .git
        .delete_branch(&unmerged.branch, None)
        .await
        .unwrap();
    // Deleting again is fine.
    fixture
        .git
        .delete_branch(&unmerged.branch, None)
        .await
        .unwrap();

    // A worktree whose directory vanished is pruned.
    fs::remove_dir_all(&elsewhere.path).unwrap();
    let stale = fixture.git.leftovers(Some("m2")).await.unwrap();
    assert!(stale.worktrees[0].prunable, "{stale:?}");
    fixture.git.prune().await.unwrap();
    assert!(
        fixture
            .git
            .leftovers(None)
            .await
            .unwrap()
            .worktrees
            .is_empty()
    );
    // Removing what is gone is not an error either.
    fixture.git.remove_worktree(&elsewhere.path).await.unwrap();

    let left: Vec<String> = fixture
        .git
        .leftovers(None)
        .await
        .unwrap()
        .branches
        .into_iter()
        .map(|branch| branch.name)
        .collect();
    assert_eq!(
        left,
        [
            "orchestrator-task/m2/T1",
            "orchestrator/m1",
            "orchestrator/m2"
        ]
    );
    assert_eq!(
        user_git(fixture.dir(), &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
    fixture.assert_user_untouched();
}

#[tokio::test]
async fn the_users_commits_during_a_mission_are_untouched_and_the_end_says_how_to_merge() {
    let fixture = Fixture::new(&[("a.txt", "a\n")]).await;
    let start = fixture.git.inspect().await.unwrap();
    fixture
        .git
        .create_integration_branch("m1", &start.commit)
        .await
        .unwrap();
    let task = fixture
        .git
        .create_task_worktree("m1", "T1", &start.commit)
        .await
        .unwrap();
    work(&fixture, &task.path, &[("task.txt", "task\n")], "T1").await;

    // The user keeps working on main in their own tree.
    write(fixture.dir(), "mine.txt", "mine\n");
    user_git(fixture.dir(), &["add", "mine.txt"]);
    user_git(fixture.dir(), &["commit", "--quiet", "-m", "user work"]);
    let user_head = fixture.head();

    fixture.git.merge("m1", "T1").await.unwrap();
    assert_eq!(fixture.head(), user_head);
    assert!(!fixture.dir().join("task.txt").exists());

    let FinishOutcome::Refused { reason, command } =
        fixture.git.finish("m1", &start).await.unwrap()
    else {
        panic!("a moved HEAD was fast-forwarded");
    };
    let FinishRefusal::HeadMoved {
        expected,
        found,
        found_commit,
        ..
    } = &reason
    else {
        panic!("{reason:?}");
    };
    assert_eq!((expected, found), (&start.head, &start.head));
    assert_eq!(
        found_commit.as_ref().map(CommitId::as_str),
        Some(user_head.as_str())
    );
    assert_eq!(fixture.head(), user_head);
    assert!(!fixture.dir().join("task.txt").exists());

    // The command works as printed.
    let top = fs::canonicalize(fixture.dir()).unwrap();
    assert_eq!(
        command,
        format!("git -C {} merge orchestrator/m1", top.display())
    );
    let words: Vec<&str> = command.split(' ').collect();
    assert_eq!(words[..3], ["git", "-C", top.to_str().unwrap()]);
    user_git(fixture.dir(), &[&words[3..], &["--no-edit"]].concat());
    assert_eq!(read(fixture.dir(), "task.txt"), "task\n");
    assert_eq!(read(fixture.dir(), "mine.txt"), "mine\n");
}

#[tokio::test]
async fn a_clean_unmoved_checkout_is_fast_forwarded_at_the_end() {
    let fixture = Fixture::new(&[("a.txt", "a\n")]).await;
    // The orchestrator's own files in the user's tree do not make it dirty.
    write(
        fixture.dir(),
        ".opencode/orchestrator/missions/m1/journal",
        "events\n",
    );
    let start = fixture.git.inspect().await.unwrap();
    assert!(start.changes.is_clean(), "{:?}", start.changes);
    fixture
        .git
        .create_integration_branch("m1", &start.commit)
        .await
        .unwrap();
    assert_eq!(
        fixture.git.finish("m1", &start).await.unwrap(),
        FinishOutcome::UpToDate {
            head: start.commit.clone()
        }
    );
    let task = fixture
        .git
        .create_task_worktree("m1", "T1", &start.commit)
        .await
        .unwrap();
    work(
        &fixture,
        &task.path,
        &[("a.txt", "changed by T1\n"), ("b.txt", "b\n")],
        "T1",
    )
    .await;
    let MergeOutcome::Integrated { to, .. } = fixture.git.merge("m1", "T1").await.unwrap() else {
        panic!("not integrated");
    };

    let outcome = fixture.git.finish("m1", &start).await.unwrap();
    assert_eq!(
        outcome,
        FinishOutcome::FastForwarded {
            branch: Some("main".to_owned()),
            from: start.commit.clone(),
            to: to.clone(),
        }
    );
    assert_eq!(user_git(fixture.dir(), &["rev-parse", "main"]), to.as_str());
    assert_eq!(
        user_git(fixture.dir(), &["symbolic-ref", "HEAD"]),
        "refs/heads/main"
    );
    assert_eq!(read(fixture.dir(), "a.txt"), "changed by T1\n");
    assert_eq!(read(fixture.dir(), "b.txt"), "b\n");
    assert_eq!(
        read(fixture.dir(), ".opencode/orchestrator/missions/m1/journal"),
        "events\n"
    );
    fixture.assert_user_untouched_except_own_files();
}

impl Fixture {
    /// Like [`assert_user_untouched`](Self::assert_user_untouched), with the orchestrator's own
    /// `.opencode/` the only untracked entry.
    fn assert_user_untouched_except_own_files(&self) {
        assert_eq!(
            self.status(),
            "?? .opencode/orchestrator/missions/m1/journal"
        );
    }
}

#[tokio::test]
async fn a_project_below_the_top_level_is_found_at_the_same_place_in_a_worktree() {
    let fixture = Fixture::new(&[("app/Cargo.toml", "[package]\n"), ("docs/x.md", "x\n")]).await;
    let git = GitWorkspace::open(&fixture.dir().join("app"))
        .await
        .unwrap()
        .with_worktree_root(fixture.cache.path().join("sub"));
    let checkout = git.inspect().await.unwrap();
    assert_eq!(checkout.prefix, Path::new("app"));
    let task = git
        .create_task_worktree("m1", "T1", &checkout.commit)
        .await
        .unwrap();
    let project = git.project_dir_in(&task.path);
    assert!(project.join("Cargo.toml").is_file(), "{project:?}");
}

#[tokio::test]
async fn a_worktree_root_inside_the_working_tree_is_refused() {
    let fixture = Fixture::new(&[("a.txt", "a\n")]).await;
    let git = GitWorkspace::open(fixture.dir())
        .await
        .unwrap()
        .with_worktree_root(fixture.dir().join("worktrees"));
    let start = commit_id(&fixture.head());
    let error = git
        .create_task_worktree("m1", "T1", &start)
        .await
        .unwrap_err();
    assert!(
        matches!(error, GitError::RootInsideWorkingTree { .. }),
        "{error:?}"
    );
    // The default root is outside it too.
    let default = GitWorkspace::open(fixture.dir()).await.unwrap();
    assert!(!default.worktree_root().starts_with(fixture.dir()));
    assert!(
        !default
            .worktree_root()
            .starts_with(fs::canonicalize(fixture.dir()).unwrap())
    );
}

#[tokio::test]
async fn branch_names_are_the_documented_ones() {
    assert_eq!(integration_branch("m1"), "orchestrator/m1");
    assert_eq!(task_branch("m1", "T1"), "orchestrator-task/m1/T1");
}
