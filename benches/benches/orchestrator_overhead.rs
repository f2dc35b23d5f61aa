//! The orchestrator's own overhead on a whole mission: the `orchestrator` binary (built in release by this
//! bench) drives a 50-task mission on a real `opencode serve` whose model is the testkit's `ScriptedModel`
//! answering at once (no delays), and the bench measures the orchestrator *process*.
//!
//! The mission: the Commander answers a brief, the Planner a plan of 50 tasks in 5 milestones of 10, where
//! M1's tasks are independent and `Tm.n` depends on `T(m-1).n` for m > 1 (10 chains of 5: until the last
//! milestone, more tasks are ready than the 4 slots can take). Each Worker writes one small file
//! (`Tm.n.txt`) with OpenCode's `write` tool and reports `STATUS: DONE`; the gate is `true`
//! (`--check true`); the Reviewer approves. Under `--test` (what `cargo bench -- --test` passes, and what
//! `.ci/bench-compile.sh` runs) it is 3 independent tasks and one run.
//!
//! Each run gets a fresh scratch project (a git repository), a fresh scripted model and a fresh OpenCode
//! server, all started by this process before the clock starts; then the bench runs
//!
//! ```text
//! orchestrator task --url <server> --project <dir> --check true --slots 4 "<mission>"
//! ```
//!
//! with `OPENCODE_SERVER_PASSWORD` set, through a small launcher (this binary run again, see
//! [`LAUNCHER_FLAG`] for why) that reads the orchestrator's resource usage when it exits (`wait4`):
//!
//! - **wall**: from spawning the child to its exit;
//! - **orchestrator CPU**: its user + system time, all threads, plus the gate's `sh -c true` children it
//!   waited for (the kernel folds those in; a few ms per task);
//! - **waiting**: wall − CPU, the time the orchestrator was not on a CPU: waiting on OpenCode (whose model
//!   answers at once), its own timers, and any time it was runnable but the cores were busy;
//! - **peak RSS**: `ru_maxrss` of the orchestrator, in MB of 10^6 bytes (the issue's target: at most 30 MB);
//! - **model requests**: what the scripted model received during the run (titles included);
//! - **per task**: wall / tasks, and each task's time from its first `running` line to its `done` line on the
//!   child's progress output (timestamped by this bench as the lines arrive), median and max;
//! - **OpenCode CPU**: the server's CPU time over the same span (every process of its process group, from
//!   `/proc`, with the children it reaped, e.g. git for its snapshots), and **scripted model CPU**: this
//!   process's own CPU time over the span, which is the scripted model serving requests (and the bench's
//!   reader threads). They say where the waiting went.
//!
//! The bench checks that each run completed: exit status 0, every task `done`, every file written.
//!
//! Environment: `ORCH_SKIP_OPENCODE=1` skips the bench (as it skips the tests that need OpenCode);
//! `ORCHESTRATOR_BENCH_TASKS` and `ORCHESTRATOR_BENCH_RUNS` change the size (defaults 50 and 3; 3 and 1 under
//! `--test`); `ORCHESTRATOR_BENCH_RSS_TRACE=1` prints the child's resident set sampled every 100 ms, and
//! `ORCHESTRATOR_BENCH_REQUESTS=1` each model request (when, which agent, its last user line);
//! `ORCHESTRATOR_BENCH_BINARY=<path>` runs that program instead of building the orchestrator (another build
//! to compare, or a script that runs it under a heap profiler).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use opencode_client::testkit::{OpencodeServer, Reply, Rule, Script, ScriptedModel};
use orchestrator::cli::demo::{agent, approve, planner_reply, titles, worker_rules, write};
use orchestrator::domain::prompts::Role;

/// Tasks per milestone: the number of independent chains in the plan.
const CHAINS: usize = 10;

/// Worker slots the orchestrator gets (`--slots`).
const SLOTS: usize = 4;

/// The mission text (the script plays its own plan whatever it says).
const MISSION: &str = "Write one small text file per task";

/// How often the child's resident set is sampled (and its deadline checked).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The issue's target for the orchestrator's peak RSS: 30 MB.
const RSS_TARGET_BYTES: u64 = 30_000_000;

/// The plan the scripted Planner writes: `tasks` tasks in milestones of [`CHAINS`].
#[derive(Debug, Clone)]
struct Plan {
    ids: Vec<String>,
    text: String,
}

impl Plan {
    fn new(tasks: usize) -> Plan {
        let mut ids = Vec::with_capacity(tasks);
        let mut text = String::from("# Mission: small files\n");
        for index in 0..tasks {
            let (milestone, number) = (index / CHAINS + 1, index % CHAINS + 1);
            if number == 1 {
                text.push_str(&format!("## M{milestone}: Files, round {milestone}\n"));
            }
            let id = format!("T{milestone}.{number}");
            let depends = if milestone > 1 {
                format!(" | depends:T{}.{number}", milestone - 1)
            } else {
                String::new()
            };
            text.push_str(&format!(
                "### {id}: File {id} | agent:Worker{depends}\n\
                 Write {id}.txt holding its id.\n\
                 - [ ] write {id}.txt\n"
            ));
            ids.push(id);
        }
        Plan { ids, text }
    }

    fn file(id: &str) -> String {
        format!("{id}.txt")
    }

    fn content(id: &str) -> String {
        format!("{id}\n")
    }

    /// The script of all four agents for a project at `project`; every reply is immediate.
    fn script(&self) -> Script {
        let mut script = Script::new()
            .rule(titles())
            .rule(Rule::when(agent(Role::Commander)).reply(Reply::text(
                "Goal: one small text file per task.\nDone means: each file exists and holds its task id.",
            )))
            .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(&self.text)));
        for id in &self.ids {
            let files = vec![write(&Plan::file(id), &Plan::content(id))];
            for rule in worker_rules(id, files, &format!("Wrote {}.", Plan::file(id))) {
                script = script.rule(rule);
            }
        }
        script
            .rule(approve())
            .fallback(Reply::text("Nothing is scripted for this request."))
    }
}

/// What a run prints besides its figures.
#[derive(Debug, Clone, Copy)]
struct Trace {
    /// The child's resident set, sampled.
    rss: bool,
    /// Each model request: when, which agent, its last user line.
    requests: bool,
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Run {
    wall: Duration,
    cpu: Duration,
    peak_rss_bytes: u64,
    tasks: usize,
    tasks_done: usize,
    model_requests: usize,
    /// The OpenCode server's CPU time during the run (its process group).
    server_cpu: Duration,
    /// This process's CPU time during the run: the scripted model, mostly.
    bench_cpu: Duration,
    task_times: Vec<Duration>,
}

impl Run {
    fn waiting(&self) -> Duration {
        self.wall.saturating_sub(self.cpu)
    }

    fn cpu_share(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }

    fn task_time(&self, quantile: f64) -> Duration {
        let mut sorted = self.task_times.clone();
        sorted.sort();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((quantile * sorted.len() as f64) as usize).min(sorted.len() - 1);
        sorted[index]
    }
}

/// Builds the orchestrator binary (in release, or, for the `--test` smoke run, in the dev profile that
/// `cargo test` has already built) and returns its path (cargo says where it put it, so `CARGO_TARGET_DIR`
/// and any configured target directory are respected).
fn build_orchestrator(release: bool) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ is inside the workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = if release {
        "--release"
    } else {
        "--profile=dev"
    };
    eprintln!(
        "building the orchestrator: cargo build {profile} -p orchestrator --bin orchestrator"
    );
    let output = Command::new(cargo)
        .args([
            "build",
            profile,
            "-p",
            "orchestrator",
            "--bin",
            "orchestrator",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo build {profile} -p orchestrator failed ({})",
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == "orchestrator"
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the orchestrator executable")
}

/// Waits until the child exits without reaping it: it stays a zombie, so its pid cannot be reused while the
/// watcher may still signal it. Returns when it exited.
fn wait_for_exit(pid: Pid) -> Instant {
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(_) => return Instant::now(),
            Err(nix::errno::Errno::EINTR) => {}
            Err(error) => panic!("waitid on the orchestrator: {error}"),
        }
    }
}

/// Reaps the exited child and returns its exit status and resource usage (its own, plus that of the
/// children it waited for).
fn reap(pid: Pid) -> (ExitStatus, libc::rusage) {
    let mut status = 0;
    // SAFETY: `rusage` is a C struct of integers and timevals, for which all zero bytes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are live locals, valid for writes of their types for the whole call;
        // `pid` is our own child, which has exited and which nothing else reaps.
        let reaped = unsafe { libc::wait4(pid.as_raw(), &mut status, 0, &mut usage) };
        if reaped == pid.as_raw() {
            return (ExitStatus::from_raw(status), usage);
        }
        let error = std::io::Error::last_os_error();
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::Interrupted,
            "wait4 on the orchestrator: {error}"
        );
    }
}

fn duration_of(time: libc::timeval) -> Duration {
    let seconds = u64::try_from(time.tv_sec).expect("a CPU time is not negative");
    let micros = u64::try_from(time.tv_usec).expect("a CPU time is not negative");
    Duration::from_secs(seconds) + Duration::from_micros(micros)
}

/// The CPU time (user + system, with reaped children) of every process in process group `group`, from
/// `/proc/<pid>/stat`. A process of the group that exited and was reaped by another member counts in that
/// member's children's time.
fn group_cpu(group: Pid) -> Duration {
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks_per_second = u64::try_from(ticks_per_second).expect("_SC_CLK_TCK is positive");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    let mut ticks = 0u64;
    for entry in entries.filter_map(Result::ok) {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The fields after the command name, which is in parentheses and may hold spaces: field 3 (state) is
        // the first, so field k is at k - 3.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = fields.split_whitespace().collect();
        if fields.len() < 15 || fields[2] != group.as_raw().to_string() {
            continue;
        }
        // utime, stime, cutime, cstime: fields 14 to 17.
        ticks += fields[11..15]
            .iter()
            .filter_map(|field| field.parse::<u64>().ok())
            .sum::<u64>();
    }
    Duration::from_millis(ticks * 1000 / ticks_per_second)
}

/// This process's CPU time so far (user + system, every thread).
fn own_cpu() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let time = |time: nix::sys::time::TimeVal| {
        duration_of(libc::timeval {
            tv_sec: time.tv_sec(),
            tv_usec: time.tv_usec(),
        })
    };
    time(usage.user_time()) + time(usage.system_time())
}

/// A memory field of `/proc/<pid>/status` (`VmRSS:`, the resident set now; `VmHWM:`, its high-water mark
/// since the process's last `exec`), in KiB.
fn status_field_kib(pid: Pid, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples the child's resident set until told to stop, and kills it if it is still running at `deadline`.
/// The child is not reaped before this thread is stopped, so its pid stays its own.
fn watch(
    pid: Pid,
    deadline: Instant,
    stop: mpsc::Receiver<()>,
) -> std::thread::JoinHandle<Vec<(Instant, u64)>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        let mut killed = false;
        loop {
            if let Some(kib) = status_field_kib(pid, "VmRSS:") {
                samples.push((Instant::now(), kib));
            }
            match stop.recv_timeout(SAMPLE_EVERY) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return samples,
            }
            if !killed && Instant::now() >= deadline {
                eprintln!("the orchestrator is still running at its deadline: killing it");
                let _ = kill(pid, Signal::SIGKILL);
                killed = true;
            }
        }
    })
}

/// The first argument that makes this binary the launcher: `<bench> --launch-measured <report> <limit in s>
/// <program> <args>…` runs the program as its child, and writes what it measured to `<report>`.
///
/// Why a launcher: at `exec`, Linux folds the high-water mark of the memory a process had before into its
/// `ru_maxrss`, and a child started with `posix_spawn` (as `std::process::Command` does) shares its parent's
/// memory until its `exec`. Spawned from this bench, the orchestrator's `ru_maxrss` would be at least the
/// bench's own peak, which grows with the scripted model's request log (41 MiB after one 50-task run). The
/// launcher's memory is new at its own `exec` and stays small (its high-water mark, `VmHWM`, is reported
/// and checked to be below the orchestrator's figure); as the figure is a maximum, it cannot change it.
/// (The launcher's own `ru_maxrss` is the bench's peak again, for the same reason, and is not used.)
const LAUNCHER_FLAG: &str = "--launch-measured";

/// What the launcher measured.
#[derive(Debug)]
struct Measured {
    wall: Duration,
    cpu: Duration,
    peak_kib: u64,
    status: ExitStatus,
    launcher_peak_kib: u64,
    /// The child's resident set, by time since it was started.
    samples: Vec<(Duration, u64)>,
}

impl Measured {
    fn write(&self, path: &Path) {
        let mut text = format!(
            "wall_us {}\ncpu_us {}\npeak_kib {}\nstatus {}\nlauncher_peak_kib {}\n",
            self.wall.as_micros(),
            self.cpu.as_micros(),
            self.peak_kib,
            self.status.into_raw(),
            self.launcher_peak_kib
        );
        for (at, kib) in &self.samples {
            text.push_str(&format!("sample {} {kib}\n", at.as_millis()));
        }
        std::fs::write(path, text).expect("the launcher writes its report");
    }

    fn read(path: &Path) -> Measured {
        let text = std::fs::read_to_string(path).expect("the launcher wrote its report");
        let mut measured = Measured {
            wall: Duration::ZERO,
            cpu: Duration::ZERO,
            peak_kib: 0,
            status: ExitStatus::from_raw(0),
            launcher_peak_kib: 0,
            samples: Vec::new(),
        };
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            let number = |index: usize| -> u64 {
                words[index]
                    .parse()
                    .unwrap_or_else(|_| panic!("a number in the launcher's report: {line:?}"))
            };
            match words[0] {
                "wall_us" => measured.wall = Duration::from_micros(number(1)),
                "cpu_us" => measured.cpu = Duration::from_micros(number(1)),
                "peak_kib" => measured.peak_kib = number(1),
                "status" => {
                    measured.status = ExitStatus::from_raw(
                        words[1]
                            .parse()
                            .expect("a wait status in the launcher's report"),
                    );
                }
                "launcher_peak_kib" => measured.launcher_peak_kib = number(1),
                "sample" => measured
                    .samples
                    .push((Duration::from_millis(number(1)), number(2))),
                _ => panic!("an unknown line in the launcher's report: {line:?}"),
            }
        }
        measured
    }
}

/// The launcher (see [`LAUNCHER_FLAG`]): `arguments` are the report path, the time limit in seconds, and the
/// command. The child inherits the launcher's standard streams and environment.
fn launch(arguments: &[String]) {
    let [report, limit, program, program_arguments @ ..] = arguments else {
        panic!("usage: {LAUNCHER_FLAG} <report> <limit in s> <program> <args>…");
    };
    let limit = Duration::from_secs(limit.parse().expect("a limit in seconds"));
    let started = Instant::now();
    let child = Command::new(program)
        .args(program_arguments)
        .spawn()
        .unwrap_or_else(|error| panic!("start {program}: {error}"));
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    let (stop, stopped) = mpsc::channel();
    let watcher = watch(pid, started + limit, stopped);
    let exited = wait_for_exit(pid);
    let _ = stop.send(());
    let samples = watcher.join().expect("the watcher does not panic");
    let (status, usage) = reap(pid);
    drop(child);
    let kib = |max_rss: libc::c_long| u64::try_from(max_rss).expect("a size is not negative");
    Measured {
        wall: exited.saturating_duration_since(started),
        cpu: duration_of(usage.ru_utime) + duration_of(usage.ru_stime),
        // ru_maxrss is in KiB on Linux.
        peak_kib: kib(usage.ru_maxrss),
        status,
        launcher_peak_kib: status_field_kib(Pid::this(), "VmHWM:")
            .expect("the launcher reads its own /proc status"),
        samples: samples
            .into_iter()
            .map(|(at, kib)| (at.saturating_duration_since(started), kib))
            .collect(),
    }
    .write(Path::new(report));
}

/// Each task's time from its first `running` line to its `done` line on the progress output
/// (`   T1.2   running (slot 0)  title`).
fn task_times(lines: &[(Instant, String)]) -> Vec<Duration> {
    let mut started = std::collections::HashMap::new();
    let mut times = Vec::new();
    for (at, line) in lines {
        let mut words = line.split_whitespace();
        let (Some(id), Some(status)) = (words.next(), words.next()) else {
            continue;
        };
        if !line.starts_with("   T") {
            continue;
        }
        match status {
            "running" => {
                started.entry(id.to_string()).or_insert(*at);
            }
            "done" => {
                if let Some(start) = started.get(id) {
                    times.push(at.saturating_duration_since(*start));
                }
            }
            _ => {}
        }
    }
    times
}

/// One mission on a fresh project, model and server.
fn run_once(
    runtime: &tokio::runtime::Runtime,
    binary: &Path,
    plan: &Plan,
    limit: Duration,
    trace: Trace,
) -> Run {
    let dir = tempfile::Builder::new()
        .prefix("orchestrator-overhead-")
        .tempdir()
        .expect("a temporary directory");
    let project = dir.path().join("project");
    orchestrator::cli::demo::prepare_project(&project).expect("prepare the project");
    opencode_client::testkit::init_git(&project).expect("git init");
    // The orchestrator canonicalizes --project; the Workers' file paths must be the same.
    let project = project.canonicalize().expect("the project exists");
    let (model, server) = runtime.block_on(async {
        let model = ScriptedModel::start(plan.script())
            .await
            .expect("the scripted model starts");
        let server = OpencodeServer::builder()
            .model(model.base_url())
            .project(&project)
            .start()
            .await
            .unwrap_or_else(|error| panic!("the real OpenCode server did not start: {error}"));
        (model, server)
    });
    let requests_before = model.requests().len();
    let server_group = Pid::from_raw(
        i32::try_from(server.pid().expect("the server runs")).expect("a pid fits in i32"),
    );
    let server_cpu_before = group_cpu(server_group);
    let bench_cpu_before = own_cpu();

    let report = dir.path().join("launcher-report.txt");
    let mut command = Command::new(std::env::current_exe().expect("the bench's own path"));
    command
        .arg(LAUNCHER_FLAG)
        .arg(&report)
        .arg(limit.as_secs().to_string())
        .arg(binary)
        .args(["task", "--url", server.url(), "--project"])
        .arg(&project)
        .args(["--check", "true", "--slots", &SLOTS.to_string(), MISSION])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match server.password() {
        Some(password) => command.env("OPENCODE_SERVER_PASSWORD", password),
        None => command.env_remove("OPENCODE_SERVER_PASSWORD"),
    };
    let started = Instant::now();
    let mut child = command.spawn().expect("the launcher starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stdout_reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .map(|line| (Instant::now(), line))
            .collect::<Vec<_>>()
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let launcher = child.wait().expect("the launcher is waited for");
    assert!(launcher.success(), "the launcher failed ({launcher})");
    let measured = Measured::read(&report);
    let lines = stdout_reader
        .join()
        .expect("the stdout reader does not panic");
    let stderr = stderr_reader
        .join()
        .expect("the stderr reader does not panic");
    let model_requests = model.requests().len() - requests_before;
    let server_cpu = group_cpu(server_group).saturating_sub(server_cpu_before);
    let bench_cpu = own_cpu().saturating_sub(bench_cpu_before);

    let output: String = lines.iter().map(|(_, line)| format!("{line}\n")).collect();
    let failure = |what: &str| -> ! {
        panic!(
            "{what}\n--- orchestrator stdout ---\n{output}--- orchestrator stderr ---\n{stderr}\
             --- server log (end) ---\n{}",
            tail(&server.log(), 4000)
        )
    };
    if !measured.status.success() {
        failure(&format!("the orchestrator exited with {}", measured.status));
    }
    if measured.launcher_peak_kib >= measured.peak_kib {
        failure(&format!(
            "the launcher's own high-water RSS ({} KiB) is not below the orchestrator's peak ({} KiB), \
             so the orchestrator's figure may be the launcher's",
            measured.launcher_peak_kib, measured.peak_kib
        ));
    }
    for id in &plan.ids {
        let path = project.join(Plan::file(id));
        match std::fs::read_to_string(&path) {
            Ok(content) if content == Plan::content(id) => {}
            Ok(content) => failure(&format!("{} holds {content:?}", path.display())),
            Err(error) => failure(&format!("{} was not written: {error}", path.display())),
        }
    }
    let times = task_times(&lines);
    if times.len() != plan.ids.len() {
        failure(&format!(
            "{} of {} tasks reported done on the progress output",
            times.len(),
            plan.ids.len()
        ));
    }
    // The summary's head: outcome, counts and the time per stage (the task table is left out).
    for line in lines
        .iter()
        .map(|(_, line)| line.as_str())
        .skip_while(|line| !line.starts_with("Mission "))
        .take_while(|line| !line.trim_start().starts_with("task "))
    {
        eprintln!("    {line}");
    }
    if trace.requests {
        eprintln!("    model requests (time since the orchestrator started):");
        for request in model.requests().iter().skip(requests_before) {
            let role = request
                .system
                .lines()
                .find_map(|line| line.strip_prefix("ROLE: "))
                .unwrap_or("(title)");
            eprintln!(
                "      {:>7.2} s  {:<9} {}{}",
                request.at.saturating_duration_since(started).as_secs_f64(),
                role,
                if request.is_tool_callback() {
                    "(tool result) "
                } else {
                    ""
                },
                request.last_user.lines().next().unwrap_or("")
            );
        }
    }
    if trace.rss {
        eprintln!(
            "    resident set (sampled every {} ms; shown when it moved by 256 KiB):",
            SAMPLE_EVERY.as_millis()
        );
        let mut shown: Option<u64> = None;
        for (at, kib) in &measured.samples {
            if shown.is_none_or(|shown| shown.abs_diff(*kib) >= 256) {
                shown = Some(*kib);
                eprintln!(
                    "      {:>7.1} s  {:>6.1} MiB",
                    at.as_secs_f64(),
                    *kib as f64 / 1024.0
                );
            }
        }
        eprintln!(
            "    the launcher's own high-water RSS (VmHWM): {:.1} MiB",
            measured.launcher_peak_kib as f64 / 1024.0
        );
    }
    drop(server);
    drop(model);
    drop(dir);
    Run {
        wall: measured.wall,
        cpu: measured.cpu,
        peak_rss_bytes: measured.peak_kib * 1024,
        tasks: plan.ids.len(),
        tasks_done: times.len(),
        model_requests,
        server_cpu,
        bench_cpu,
        task_times: times,
    }
}

fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Bytes in MB (10^6 bytes), the unit of the issue's target.
fn megabytes(bytes: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let bytes = bytes as f64;
    bytes / 1e6
}

fn mib(bytes: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let bytes = bytes as f64;
    bytes / (1024.0 * 1024.0)
}

fn print_table(runs: &[Run]) {
    println!();
    let columns = [
        "run",
        "wall",
        "orchestrator CPU",
        "CPU share",
        "waiting (wall − CPU)",
        "peak RSS (MB = 10^6 bytes)",
        "tasks done",
        "model requests",
        "wall / task",
        "task time median",
        "task time max",
        "OpenCode CPU",
        "scripted model CPU",
    ];
    println!("| {} |", columns.join(" | "));
    println!("|{}", "---|".repeat(columns.len()));
    for (index, run) in runs.iter().enumerate() {
        #[allow(clippy::cast_possible_truncation)]
        let per_task = run.wall / run.tasks as u32;
        println!(
            "| {} | {:.2} s | {:.2} s | {:.1}% | {:.2} s | {:.1} MB | {}/{} | {} | {:.0} ms | {:.0} ms \
             | {:.0} ms | {:.1} s | {:.2} s |",
            index + 1,
            run.wall.as_secs_f64(),
            run.cpu.as_secs_f64(),
            run.cpu_share() * 100.0,
            run.waiting().as_secs_f64(),
            megabytes(run.peak_rss_bytes),
            run.tasks_done,
            run.tasks,
            run.model_requests,
            per_task.as_secs_f64() * 1000.0,
            run.task_time(0.5).as_secs_f64() * 1000.0,
            run.task_time(1.0).as_secs_f64() * 1000.0,
            run.server_cpu.as_secs_f64(),
            run.bench_cpu.as_secs_f64(),
        );
    }
    let peak = runs.iter().map(|run| run.peak_rss_bytes).max().unwrap_or(0);
    println!();
    println!(
        "peak RSS over all runs: {:.1} MB ({:.1} MiB); target at most 30 MB: {}",
        megabytes(peak),
        mib(peak),
        if peak <= RSS_TARGET_BYTES {
            "met"
        } else {
            "NOT met"
        }
    );
}

fn size_from_env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .ok()
            .filter(|&size| size > 0)
            .unwrap_or_else(|| panic!("{name}={value:?} is not a positive number")),
        Err(_) => default,
    }
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if arguments.get(1).map(String::as_str) == Some(LAUNCHER_FLAG) {
        launch(&arguments[2..]);
        return;
    }
    let flag = |name: &str| arguments.iter().any(|argument| argument == name);
    if flag("--list") {
        return;
    }
    if std::env::var("ORCH_SKIP_OPENCODE").as_deref() == Ok("1") {
        eprintln!(
            "ORCH_SKIP_OPENCODE=1: skipping the orchestrator_overhead bench, which needs the real server"
        );
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not, and then a smoke run is what is wanted.
    let test_mode = flag("--test") || !flag("--bench");
    let tasks = size_from_env("ORCHESTRATOR_BENCH_TASKS", if test_mode { 3 } else { 50 });
    let runs = size_from_env("ORCHESTRATOR_BENCH_RUNS", if test_mode { 1 } else { 3 });
    let limit = Duration::from_secs(if test_mode { 120 } else { 1200 });
    let trace = Trace {
        rss: std::env::var("ORCHESTRATOR_BENCH_RSS_TRACE").as_deref() == Ok("1"),
        requests: std::env::var("ORCHESTRATOR_BENCH_REQUESTS").as_deref() == Ok("1"),
    };

    let binary = match std::env::var_os("ORCHESTRATOR_BENCH_BINARY") {
        Some(binary) => PathBuf::from(binary),
        None => build_orchestrator(!test_mode),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let plan = Plan::new(tasks);
    eprintln!(
        "orchestrator_overhead: {tasks} tasks ({} chains), {SLOTS} slots, {runs} run(s), binary {}",
        CHAINS.min(tasks),
        binary.display()
    );
    let mut results = Vec::with_capacity(runs);
    for run in 1..=runs {
        eprintln!("run {run}/{runs}: fresh project, scripted model and OpenCode server");
        results.push(run_once(&runtime, &binary, &plan, limit, trace));
    }
    print_table(&results);
}
