//! What isolating each task in a git worktree costs: the time and disk of a worktree on a large repository,
//! and the build cost of the gate (`cargo test`) in several worktrees at once, with one shared
//! `CARGO_TARGET_DIR` per mission or a target directory per worktree.
//!
//! A plain `main`, not criterion: each figure is one wall-clock measurement of processes (git, cargo),
//! repeated where it is cheap.
//!
//! **Worktrees.** The repository is built from real sources: the first `ISOLATION_BENCH_FILES` files
//! (default 12,000; files over 1 MiB and `.gitignore` files skipped, in path order) of the crates in
//! `$CARGO_HOME/registry/src` (`~/.cargo` by default), committed once. Then the adapter's
//! `GitWorkspace::create_task_worktree` makes `ISOLATION_BENCH_CREATES` task worktrees (default 5) one after
//! another, each timed, and `remove_worktree` removes them; plain `git worktree add --detach` and `git
//! worktree remove --force` are timed the same way, to show the adapter's own overhead (its extra git
//! calls: id checks, worktree list, prune). Disk: the blocks a worktree's files take (`st_blocks`), and its
//! administrative directory in `.git/worktrees/` (its index).
//!
//! **Gates.** A small real Cargo project: this workspace's `circuit` crate with the workspace's own
//! `Cargo.toml` (members reduced to it) and `Cargo.lock`, committed in a scratch repository; its gate is
//! `cargo test --no-run --offline` (the orchestrator's gate runs `cargo test --offline`; `--no-run` keeps
//! the build and leaves out the tests' own run time). For each count N in `ISOLATION_BENCH_WORKTREES`
//! (default `2,4`) and each strategy:
//!
//! - **separate**: each worktree builds into its own `target/`;
//! - **shared**: all worktrees build into one `CARGO_TARGET_DIR` for the mission;
//!
//! N task worktrees are made from the same commit and their gates start at the same time (as parallel
//! Workers' gates do), three times: **cold** (empty target directories), **incremental** (after each
//! worktree appends a function to `src/lib.rs`, as a task's next change would), and **new worktrees**
//! (N fresh worktrees for the next tasks, each with a change of its own: shared, on the mission's target
//! directory; separate, each on the target directory its slot's previous worktree left, i.e. a target
//! directory per parallel slot; a target directory per worktree would be a cold build again). Each row gives the wall time until every gate
//! finished, each gate's time (median and max), how many gates waited for another's lock on the target
//! directory (cargo's "Blocking waiting for file lock on build directory") and the target directories' disk. After the incremental and the new worktrees' rounds, where worktree `i` also
//! added a test of its own, `cargo test --lib -- --list` runs in each worktree in turn and the bench counts
//! the worktrees whose list is not their own: cargo names a path crate's artifacts without its absolute path
//! and judges them fresh by the sources' mtimes, so in a shared target directory one worktree can take
//! another's build for its own.
//!
//! Run: `cargo bench -p benches --bench orchestrator_isolation` (about 15 minutes on 2 cores). Under
//! `--test` (what `.ci/bench-compile.sh` passes) it makes a 300-file repository, one worktree, and gates of a
//! generated dependency-free crate in 2 worktrees: a few seconds. Environment: `ISOLATION_BENCH_FILES`,
//! `ISOLATION_BENCH_CREATES`, `ISOLATION_BENCH_WORKTREES` (e.g. `2,3,4`), `ISOLATION_BENCH_PROJECT`
//! (`circuit` or `tiny`), `ISOLATION_BENCH_SKIP_GATES=1`.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use orchestrator::adapters::git::GitWorkspace;
use orchestrator::domain::workspace::CommitId;

/// Files bigger than this are not copied into the repository.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The mission id of every worktree the bench makes.
const MISSION: &str = "bench";

struct Config {
    files: usize,
    creates: usize,
    worktree_counts: Vec<usize>,
    project: Project,
    skip_gates: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Project {
    Circuit,
    Tiny,
}

impl Config {
    fn from_env(test: bool) -> Self {
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(default)
        };
        let worktree_counts = std::env::var("ISOLATION_BENCH_WORKTREES")
            .ok()
            .map(|value| {
                value
                    .split(',')
                    .filter_map(|count| count.trim().parse().ok())
                    .collect()
            })
            .unwrap_or(if test { vec![2] } else { vec![2, 4] });
        let project = match std::env::var("ISOLATION_BENCH_PROJECT").as_deref() {
            Ok("tiny") => Project::Tiny,
            Ok("circuit") => Project::Circuit,
            _ if test => Project::Tiny,
            _ => Project::Circuit,
        };
        Self {
            files: number("ISOLATION_BENCH_FILES", if test { 300 } else { 12_000 }),
            creates: number("ISOLATION_BENCH_CREATES", if test { 1 } else { 5 }),
            worktree_counts,
            project,
            skip_gates: std::env::var("ISOLATION_BENCH_SKIP_GATES").as_deref() == Ok("1"),
        }
    }
}

fn main() {
    let test = std::env::args().any(|arg| arg == "--test");
    let config = Config::from_env(test);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!("# orchestrator: isolation (git worktrees)\n");
    println!(
        "{}; {}; {} cores\n",
        output(Command::new("git").arg("--version")),
        output(Command::new("cargo").arg("--version")),
        thread::available_parallelism().map_or(1, usize::from)
    );
    runtime.block_on(worktrees(&config));
    if !config.skip_gates {
        runtime.block_on(gates(&config));
    }
}

/// Part 1: a worktree of a large repository.
async fn worktrees(config: &Config) {
    let scratch = tempfile::Builder::new()
        .prefix("isolation-bench-")
        .tempdir()
        .expect("a scratch directory");
    let repo = scratch.path().join("repo");
    let started = Instant::now();
    let (files, bytes) = copy_registry_sources(&repo, config.files);
    init_and_commit(&repo);
    let tracked = output(Command::new("git").args(["ls-files"]).current_dir(&repo))
        .lines()
        .count();
    let setup = started.elapsed();
    let checkout_bytes = disk_usage(&repo, Some(".git"));
    let git_bytes = disk_usage(&repo.join(".git"), None);
    println!("## A worktree of a repository of {tracked} files\n");
    println!(
        "Sources: the first {files} files ({} of content) of {}, committed in {:.1} s. The user's checkout \
         takes {} on disk, its `.git` {}.\n",
        mebibytes(bytes),
        registry_src().display(),
        setup.as_secs_f64(),
        mebibytes(checkout_bytes),
        mebibytes(git_bytes),
    );

    let git = GitWorkspace::open(&repo)
        .await
        .expect("the scratch repository")
        .with_worktree_root(scratch.path().join("worktrees"));
    let head = CommitId::parse(&output(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&repo),
    ))
    .expect("HEAD");

    let mut create = Vec::new();
    let mut remove = Vec::new();
    let mut worktree_bytes = 0;
    let mut admin_bytes = 0;
    for index in 0..config.creates {
        let started = Instant::now();
        let task = git
            .create_task_worktree(MISSION, &format!("T{index}"), &head)
            .await
            .expect("a task worktree");
        create.push(started.elapsed());
        worktree_bytes = disk_usage(&task.path, Some(".git"));
        admin_bytes = disk_usage(&admin_dir(&task.path), None);
        let started = Instant::now();
        git.remove_worktree(&task.path).await.expect("removed");
        remove.push(started.elapsed());
    }
    let mut plain_add = Vec::new();
    let mut plain_remove = Vec::new();
    for index in 0..config.creates {
        let path = scratch.path().join(format!("plain-{index}"));
        let started = Instant::now();
        run(Command::new("git")
            .args(["worktree", "add", "--quiet", "--detach"])
            .arg(&path)
            .arg("HEAD")
            .current_dir(&repo));
        plain_add.push(started.elapsed());
        let started = Instant::now();
        run(Command::new("git")
            .args(["worktree", "remove", "--force"])
            .arg(&path)
            .current_dir(&repo));
        plain_remove.push(started.elapsed());
    }
    println!("| operation | runs | median | min | max |");
    println!("|---|---|---|---|---|");
    for (name, times) in [
        ("`create_task_worktree` (adapter)", &create),
        ("`remove_worktree` (adapter)", &remove),
        ("`git worktree add --detach` (plain)", &plain_add),
        ("`git worktree remove --force` (plain)", &plain_remove),
    ] {
        let (median, min, max) = spread(times);
        println!(
            "| {name} | {} | {} | {} | {} |",
            times.len(),
            millis(median),
            millis(min),
            millis(max)
        );
    }
    println!(
        "\nDisk per worktree: {} of files (the checkout again) + {} in `.git/worktrees/<name>/` (its index \
         and HEAD); the object store is shared.\n",
        mebibytes(worktree_bytes),
        mebibytes(admin_bytes)
    );
}

/// Part 2: the gate's builds in N worktrees at once, shared or separate target directories.
async fn gates(config: &Config) {
    let scratch = tempfile::Builder::new()
        .prefix("isolation-bench-gates-")
        .tempdir()
        .expect("a scratch directory");
    let repo = scratch.path().join("project");
    let (project_dir, source) = match config.project {
        Project::Circuit => (PathBuf::from("crates/circuit"), "crates/circuit/src/lib.rs"),
        Project::Tiny => (PathBuf::new(), "src/lib.rs"),
    };
    match config.project {
        Project::Circuit => copy_circuit(&repo),
        Project::Tiny => write_tiny(&repo),
    }
    init_and_commit(&repo);
    let git = GitWorkspace::open(&repo)
        .await
        .expect("the project repository")
        .with_worktree_root(scratch.path().join("worktrees"));
    let head = CommitId::parse(&output(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&repo),
    ))
    .expect("HEAD");
    let name = match config.project {
        Project::Circuit => {
            "this workspace's `circuit` crate (its workspace `Cargo.toml` and `Cargo.lock`)"
        }
        Project::Tiny => "a generated crate without dependencies",
    };
    println!("## Gates in parallel worktrees: `cargo test --no-run --offline` of {name}\n");
    println!(
        "| worktrees | target dir | build | wall (all gates) | per gate median / max | waited for the target lock | target disk |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut round = 0;
    for &count in &config.worktree_counts {
        for shared in [false, true] {
            round += 1;
            let strategy = if shared { "shared" } else { "separate" };
            let shared_dir = scratch.path().join(format!("target-{round}"));
            let make = |prefix: &'static str| {
                let git = &git;
                let head = &head;
                async move {
                    let mut paths = Vec::new();
                    for index in 0..count {
                        let task = git
                            .create_task_worktree(
                                MISSION,
                                &format!("{prefix}{round}-{index}"),
                                head,
                            )
                            .await
                            .expect("a task worktree");
                        paths.push(task.path);
                    }
                    paths
                }
            };
            let targets = |worktrees: &[PathBuf]| -> Vec<PathBuf> {
                worktrees
                    .iter()
                    .map(|worktree| {
                        if shared {
                            shared_dir.clone()
                        } else {
                            worktree.join("target")
                        }
                    })
                    .collect()
            };
            let disk = |targets: &[PathBuf]| {
                let mut unique = targets.to_vec();
                unique.dedup();
                unique.iter().map(|dir| disk_usage(dir, None)).sum::<u64>()
            };

            let first = make("T").await;
            let first_targets = targets(&first);
            let dirs: Vec<PathBuf> = first.iter().map(|path| path.join(&project_dir)).collect();
            let cold = run_gates(&dirs, &first_targets);
            print_row(count, strategy, "cold", &cold, disk(&first_targets));

            change(&first, source, "a");
            let incremental = run_gates(&dirs, &first_targets);
            print_row(
                count,
                strategy,
                "incremental",
                &incremental,
                disk(&first_targets),
            );
            print_check(count, strategy, foreign_tests(&dirs, &first_targets, "a"));

            // The next tasks: shared, on the mission's target dir; separate, each on the target dir its
            // slot's previous worktree left (a target dir per slot).
            let next = make("U").await;
            let next_dirs: Vec<PathBuf> = next.iter().map(|path| path.join(&project_dir)).collect();
            let next_targets = if shared {
                targets(&next)
            } else {
                first_targets.clone()
            };
            change(&next, source, "b");
            let fresh = run_gates(&next_dirs, &next_targets);
            let build = if shared {
                "new worktrees"
            } else {
                "new worktrees, each on its slot's previous target dir"
            };
            print_row(count, strategy, build, &fresh, disk(&next_targets));
            print_check(
                count,
                strategy,
                foreign_tests(&next_dirs, &next_targets, "b"),
            );
            for worktree in &next {
                git.remove_worktree(worktree).await.expect("removed");
            }
            for worktree in &first {
                git.remove_worktree(worktree).await.expect("removed");
            }
            let _ = fs::remove_dir_all(&shared_dir);
        }
    }
    println!();
}

/// What the gates of one round did.
struct Round {
    wall: Duration,
    each: Vec<Duration>,
    blocked: usize,
}

/// Starts `cargo test --no-run --offline` in every `dirs[i]` with `CARGO_TARGET_DIR=targets[i]` at once
/// and waits for all.
fn run_gates(dirs: &[PathBuf], targets: &[PathBuf]) -> Round {
    let started = Instant::now();
    let results: Vec<(Duration, bool)> = thread::scope(|scope| {
        let handles: Vec<_> = dirs
            .iter()
            .zip(targets)
            .map(|(dir, target)| {
                scope.spawn(move || {
                    let started = Instant::now();
                    let gate = Command::new("cargo")
                        .args(["test", "--no-run", "--offline"])
                        .current_dir(dir)
                        .env("CARGO_TARGET_DIR", target)
                        .env("CARGO_TERM_COLOR", "never")
                        .env_remove("CARGO_BUILD_TARGET_DIR")
                        .stdin(Stdio::null())
                        .output()
                        .expect("cargo runs");
                    let stderr = String::from_utf8_lossy(&gate.stderr);
                    assert!(
                        gate.status.success(),
                        "cargo test --no-run in {}: {stderr}",
                        dir.display()
                    );
                    // Not the package cache's lock, which every cargo takes a moment for.
                    let blocked = ["build directory", "artifact directory"]
                        .iter()
                        .any(|lock| stderr.contains(&format!("waiting for file lock on {lock}")));
                    (started.elapsed(), blocked)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a gate thread"))
            .collect()
    });
    Round {
        wall: started.elapsed(),
        each: results.iter().map(|(time, _)| *time).collect(),
        blocked: results.iter().filter(|(_, blocked)| *blocked).count(),
    }
}

/// Appends to `source` in worktree `i` a function and a test `change_{round}_{i}_test`: a task's change.
fn change(worktrees: &[PathBuf], source: &str, round: &str) {
    for (index, worktree) in worktrees.iter().enumerate() {
        let file = worktree.join(source);
        let mut text = fs::read_to_string(&file).expect("the crate's lib.rs");
        text.push_str(&format!(
            "\n/// A task's change.\npub fn change_{round}_{index}() -> usize {{\n    {index}\n}}\n\n\
             #[test]\nfn change_{round}_{index}_test() {{\n    assert_eq!(change_{round}_{index}(), {index});\n}}\n"
        ));
        fs::write(&file, text).expect("a change");
    }
}

fn print_check(count: usize, strategy: &str, wrong: usize) {
    println!(
        "| {count} | {strategy} | then `cargo test --lib -- --list` in each, one after another | \
         {wrong}/{count} listed another worktree's tests | | | |"
    );
}

/// After every worktree `i` added its own test `change_{round}_{i}_test`, runs `cargo test --offline --lib
/// -- --list` in each worktree in turn (building first if cargo finds its build stale) and counts those
/// whose list of `change_` tests is not exactly their own: gates that would have checked someone else's
/// code.
fn foreign_tests(dirs: &[PathBuf], targets: &[PathBuf], round: &str) -> usize {
    let mut wrong = 0;
    for (index, (dir, target)) in dirs.iter().zip(targets).enumerate() {
        let listed = Command::new("cargo")
            .args(["test", "--offline", "--lib", "--", "--list"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", target)
            .env("CARGO_TERM_COLOR", "never")
            .stdin(Stdio::null())
            .output()
            .expect("cargo runs");
        assert!(
            listed.status.success(),
            "cargo test --list in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&listed.stderr)
        );
        let list = String::from_utf8_lossy(&listed.stdout);
        let changes: Vec<&str> = list
            .lines()
            .filter_map(|line| line.strip_suffix(": test"))
            .filter(|name| name.starts_with("change_"))
            .collect();
        if changes != [format!("change_{round}_{index}_test")] {
            wrong += 1;
        }
    }
    wrong
}

fn print_row(count: usize, strategy: &str, build: &str, round: &Round, disk: u64) {
    let (median, _, max) = spread(&round.each);
    println!(
        "| {count} | {strategy} | {build} | {} | {} / {} | {}/{count} | {} |",
        seconds(round.wall),
        seconds(median),
        seconds(max),
        round.blocked,
        mebibytes(disk)
    );
}

/// `$CARGO_HOME/registry/src`.
fn registry_src() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    cargo_home.join("registry").join("src")
}

/// Copies the first `limit` files of the registry's sources into `repo`; returns the count and bytes.
fn copy_registry_sources(repo: &Path, limit: usize) -> (usize, u64) {
    let mut files = Vec::new();
    collect_files(&registry_src(), &mut files);
    files.sort();
    let source = registry_src();
    let (mut count, mut bytes) = (0, 0);
    for (path, size) in files {
        if count == limit {
            break;
        }
        if size > MAX_FILE_BYTES || path.file_name().is_some_and(|name| name == ".gitignore") {
            continue;
        }
        let target = repo.join(path.strip_prefix(&source).expect("below the source"));
        fs::create_dir_all(target.parent().expect("a parent")).expect("a directory");
        fs::copy(&path, &target).expect("a copy");
        count += 1;
        bytes += size;
    }
    assert!(
        count == limit,
        "only {count} files under {}: set ISOLATION_BENCH_FILES lower",
        source.display()
    );
    (count, bytes)
}

/// Every regular file below `dir` (symbolic links and `.git` directories left out), with its size.
fn collect_files(dir: &Path, files: &mut Vec<(PathBuf, u64)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() && entry.file_name() != ".git" {
            collect_files(&path, files);
        } else if kind.is_file() {
            let size = entry.metadata().map_or(0, |metadata| metadata.len());
            files.push((path, size));
        }
    }
}

/// The `circuit` crate with the workspace's manifest (members reduced to it) and lock file.
fn copy_circuit(repo: &Path) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let manifest =
        fs::read_to_string(workspace.join("Cargo.toml")).expect("the workspace manifest");
    let members = "members = [\"crates/*\", \"benches\"]";
    assert!(
        manifest.contains(members),
        "the workspace's members changed"
    );
    let manifest = manifest.replace(members, "members = [\"crates/circuit\"]");
    fs::create_dir_all(repo).expect("the project directory");
    fs::write(repo.join("Cargo.toml"), manifest).expect("the manifest");
    fs::copy(workspace.join("Cargo.lock"), repo.join("Cargo.lock")).expect("the lock file");
    fs::write(repo.join(".gitignore"), "target/\n").expect("a .gitignore");
    let listed = output(
        Command::new("git")
            .args(["ls-files", "crates/circuit"])
            .current_dir(workspace),
    );
    for file in listed.lines() {
        let target = repo.join(file);
        fs::create_dir_all(target.parent().expect("a parent")).expect("a directory");
        fs::copy(workspace.join(file), target).expect("a copy");
    }
}

/// A crate without dependencies, with one test.
fn write_tiny(repo: &Path) {
    fs::create_dir_all(repo.join("src")).expect("the project directory");
    fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .expect("the manifest");
    fs::write(
        repo.join("src/lib.rs"),
        "/// Adds.\npub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n\n#[test]\nfn adds() {\n    assert_eq!(add(1, 2), 3);\n}\n",
    )
    .expect("the source");
    fs::write(repo.join(".gitignore"), "target/\n").expect("a .gitignore");
}

fn init_and_commit(repo: &Path) {
    run(Command::new("git")
        .args(["init", "--quiet", "-b", "main"])
        .current_dir(repo));
    run(Command::new("git").args(["add", "-A"]).current_dir(repo));
    run(Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "-c",
            "commit.gpgSign=false",
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            "sources",
        ])
        .current_dir(repo));
}

/// The administrative directory of the worktree at `path` (its `.git` file says where).
fn admin_dir(path: &Path) -> PathBuf {
    let pointer = fs::read_to_string(path.join(".git")).expect("a worktree's .git file");
    PathBuf::from(pointer.trim().strip_prefix("gitdir: ").expect("gitdir: "))
}

/// The disk blocks of everything below `dir`, leaving out the entry named `skip` at its top.
fn disk_usage(dir: &Path, skip: Option<&str>) -> u64 {
    fn walk(path: &Path) -> io::Result<u64> {
        let metadata = fs::symlink_metadata(path)?;
        let mut total = metadata.blocks() * 512;
        if metadata.is_dir() {
            for entry in fs::read_dir(path)? {
                total += walk(&entry?.path()).unwrap_or(0);
            }
        }
        Ok(total)
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| skip.is_none_or(|skip| entry.file_name() != skip))
        .map(|entry| walk(&entry.path()).unwrap_or(0))
        .sum()
}

fn run(command: &mut Command) {
    let result = command.output().expect("the command runs");
    assert!(
        result.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
}

fn output(command: &mut Command) -> String {
    let result = command.output().expect("the command runs");
    assert!(
        result.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    String::from_utf8_lossy(&result.stdout).trim().to_owned()
}

/// Median, min and max.
fn spread(times: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    match (sorted.first(), sorted.last()) {
        (Some(&min), Some(&max)) => (sorted[sorted.len() / 2], min, max),
        _ => Default::default(),
    }
}

fn millis(time: Duration) -> String {
    format!("{:.0} ms", time.as_secs_f64() * 1000.0)
}

fn seconds(time: Duration) -> String {
    format!("{:.1} s", time.as_secs_f64())
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
