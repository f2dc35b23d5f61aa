//! The `orchestrator` command line: `task` runs a mission, `resume` continues one after a crash or a stop,
//! `status` shows one, `stop` interrupts one running in another terminal.

pub mod config;
pub mod demo;
pub mod doctor;
pub mod install;
pub mod logging;
pub mod progress;
pub mod shutdown;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::OrchestratorError;
use crate::adapters::gate::GateCommand;
use crate::mission::{Mission, MissionConfig, MissionReport};
use crate::progress::{Format, Progress};
use crate::server::{self, DemoServer, Opencode};
use crate::shutdown::Shutdown;
use crate::state::{self, MissionState, MissionStatus};
use clap::{Parser, Subcommand};

/// Runs missions through OpenCode agents: Commander → Planner → parallel Workers → Reviewer.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one mission to its end and prints its summary.
    Task(TaskArgs),
    /// Continues a mission that was stopped or whose orchestrator died (default: the latest).
    Resume(ResumeArgs),
    /// Shows a mission's tasks and where they are (default: the latest).
    Status(StatusArgs),
    /// Stops a mission running in another process: its sessions are aborted and its state kept.
    Stop(StopArgs),
    /// Serves `/task <mission>` typed in the OpenCode TUI: watches the server's events for the `task`
    /// command and runs each mission, reporting through toasts and a final message in the session.
    Attach(AttachArgs),
    /// Checks what missions need: the OpenCode servers (reachable, version, providers), ripgrep, git, the
    /// project's configuration, the state directory and the `/task` command.
    Doctor(DoctorArgs),
    /// Makes `/task <mission>` available in the OpenCode TUI of a project: writes
    /// `.opencode/command/task.md` and an `orchestrator` agent into its OpenCode configuration (comments
    /// kept), with backups, atomic writes and rollback.
    Install(ProjectArgs),
    /// Removes what `install` added, leaving the rest of the configuration as it was.
    Uninstall(ProjectArgs),
}

#[derive(Debug, clap::Args)]
struct ProjectArgs {
    /// The project (default: the current directory).
    #[arg(long)]
    project: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct DoctorArgs {
    /// An OpenCode server to check (repeatable; default: the project's configuration, else
    /// http://127.0.0.1:4096); the password from OPENCODE_SERVER_PASSWORD.
    #[arg(long = "url")]
    urls: Vec<String>,
    /// The project (default: the current directory).
    #[arg(long)]
    project: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct AttachArgs {
    /// The OpenCode server (default http://127.0.0.1:4096); its password from OPENCODE_SERVER_PASSWORD.
    #[arg(long)]
    url: Option<String>,
    /// The project (default: the current directory).
    #[arg(long)]
    project: Option<PathBuf>,
    /// Run one mission, then exit.
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// Run offline: a scripted model stands in for an LLM, a real OpenCode server (installed from npm into
    /// a cache directory if none is found) works in a scratch project.
    #[arg(long)]
    demo: bool,
    /// An OpenCode server to drive (repeat for several: tasks spread over them, each server with its own
    /// circuit breaker; default: the project's configuration, else http://127.0.0.1:4096); the password from
    /// OPENCODE_SERVER_PASSWORD.
    #[arg(long = "url", conflicts_with = "demo")]
    urls: Vec<String>,
    /// The project the agents work in (default: the current directory; with --demo, a new scratch
    /// directory).
    #[arg(long)]
    project: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Worker slots: tasks run at once, at most (default 4, or the project's configuration).
    #[arg(long)]
    slots: Option<usize>,
    /// A review gate command, run with `sh -c` in the project (repeatable; default: detected from the
    /// project).
    #[arg(long = "check")]
    checks: Vec<String>,
    /// How long a review gate command may run, in seconds (default 300, or the project's configuration).
    #[arg(long)]
    check_timeout: Option<u64>,
    /// The model every agent uses, as provider/model (default: the server's).
    #[arg(long)]
    model: Option<String>,
    /// Print one JSON object per state change instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct TaskArgs {
    /// What the agents should do (or give --file).
    #[arg(required_unless_present = "file")]
    mission: Option<String>,
    /// Read the mission from a file (`-` for standard input).
    #[arg(long, conflicts_with = "mission")]
    file: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Args)]
struct ResumeArgs {
    /// The mission's id (default: the project's latest mission).
    id: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// The mission's id (default: the project's latest mission).
    id: Option<String>,
    /// The project (default: the current directory).
    #[arg(long)]
    project: Option<PathBuf>,
    /// Print the mission as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct StopArgs {
    /// The mission's id (default: the project's latest mission).
    id: Option<String>,
    /// The project (default: the current directory).
    #[arg(long)]
    project: Option<PathBuf>,
}

/// How the process ends.
enum Exit {
    Completed,
    NotCompleted,
    Interrupted(&'static str),
}

/// Runs the command line and returns the exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Task(args) => task(args).await,
            Command::Resume(args) => resume(args).await,
            Command::Status(args) => status(&args),
            Command::Stop(args) => stop(&args).await,
            Command::Attach(args) => attach(args).await,
            Command::Doctor(args) => doctor(&args).await,
            Command::Install(args) => {
                let project = project_dir(args.project.as_deref())?;
                let report = crate::install::install(&project)?;
                print!("{report}");
                Ok(Exit::Completed)
            }
            Command::Uninstall(args) => {
                let project = project_dir(args.project.as_deref())?;
                let report = crate::install::uninstall(&project)?;
                print!("{report}");
                Ok(Exit::Completed)
            }
        }
    });
    // Background tasks (the event stream, a gate being killed) must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(Exit::Completed) => ExitCode::SUCCESS,
        Ok(Exit::NotCompleted) => ExitCode::from(1),
        Ok(Exit::Interrupted("SIGTERM")) => ExitCode::from(143),
        Ok(Exit::Interrupted(_)) => ExitCode::from(130),
        Err(error) => {
            eprintln!("orchestrator: {error}");
            ExitCode::from(2)
        }
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OrchestratorError {
    let path = path.to_path_buf();
    move |source| OrchestratorError::Io {
        action,
        path,
        source,
    }
}

fn project_dir(project: Option<&Path>) -> Result<PathBuf, OrchestratorError> {
    let project = match project {
        Some(project) => project.to_path_buf(),
        None => std::env::current_dir()
            .map_err(io_error("read the current directory", Path::new(".")))?,
    };
    project
        .canonicalize()
        .map_err(io_error("find the project directory", &project))
}

/// The servers to use (the command line's, else the configuration's, else the default) and their password
/// (the configuration's `password_env`, else `OPENCODE_SERVER_PASSWORD`).
fn servers(
    given: &[String],
    file: Option<&crate::config::Config>,
) -> (Vec<String>, Option<String>) {
    let mut urls = given.to_vec();
    if urls.is_empty() {
        urls = file.map(|file| file.urls()).unwrap_or_default();
    }
    if urls.is_empty() {
        urls.push("http://127.0.0.1:4096".to_string());
    }
    let password = file
        .and_then(|file| file.password())
        .or_else(|| std::env::var("OPENCODE_SERVER_PASSWORD").ok());
    (urls, password)
}

fn parse_model(run: &RunArgs) -> Result<Option<opencode_client::ModelRef>, OrchestratorError> {
    match &run.model {
        Some(model) => Ok(Some(opencode_client::ModelRef::parse(model).ok_or_else(|| {
            OrchestratorError::Mission(format!(
                "--model {model:?} is not provider/model (for example anthropic/claude-sonnet-4)"
            ))
        })?)),
        None => Ok(None),
    }
}

/// Connects to the server (or starts the demo's), returning the client, the project and the demo's
/// gate. `scratch` makes a new scratch project for a demo without `--project`.
async fn open_server(
    args: &ServerArgs,
    scratch: bool,
) -> Result<(Vec<opencode_client::Client>, PathBuf, Option<DemoServer>), OrchestratorError> {
    if args.demo {
        let project = match &args.project {
            Some(project) => {
                std::fs::create_dir_all(project).map_err(io_error("create", project))?;
                project.canonicalize().map_err(io_error("find", project))?
            }
            None if scratch => tempfile::Builder::new()
                .prefix("orchestrator-demo-")
                .tempdir()
                .map_err(io_error(
                    "create a scratch directory in",
                    &std::env::temp_dir(),
                ))?
                .keep(),
            None => project_dir(None)?,
        };
        if scratch {
            demo::prepare_project(&project)
                .map_err(io_error("prepare the scratch project", &project))?;
            opencode_client::testkit::init_git(&project).map_err(|error| {
                OrchestratorError::Launch {
                    message: error.to_string(),
                }
            })?;
        }
        println!(
            "DEMO: a scripted model stands in for an LLM; it plays a fixed three-task mission"
        );
        println!("      whatever the mission text says.");
        println!("      scratch project: {}", project.display());
        println!("      starting a real OpenCode server (installed from npm on first use)...");
        let started = server::start_demo(demo::script(&project), &project).await?;
        println!(
            "      OpenCode {} at {}",
            started.server.binary().display(),
            started.server.url()
        );
        let client = started.server.client();
        Ok((vec![client], project, Some(started)))
    } else {
        let project = project_dir(args.project.as_deref())?;
        let file = crate::config::load(&project)?;
        let (urls, password) = servers(&args.urls, file.as_ref());
        let mut clients = Vec::new();
        for url in &urls {
            clients.push(server::connect(url, password.as_deref(), project.to_str()).await?);
        }
        Ok((clients, project, None))
    }
}

fn mission_config(
    project: &Path,
    run: &RunArgs,
    demo: bool,
) -> Result<MissionConfig, OrchestratorError> {
    let mut config = MissionConfig::new(project);
    if demo {
        config.gate = Some(demo::gate());
    }
    // The project's configuration, then the command line over it.
    if let Some(file) = crate::config::load(project)? {
        file.apply(&mut config);
    }
    if let Some(slots) = run.slots {
        config.slots = slots.max(1);
    }
    if let Some(seconds) = run.check_timeout {
        config.gate_timeout = Duration::from_secs(seconds.max(1));
    }
    if !run.checks.is_empty() {
        config.gate = Some(
            run.checks
                .iter()
                .map(|line| GateCommand::shell(line))
                .collect(),
        );
    }
    if let Some(model) = parse_model(run)? {
        config.model = Some(model);
    }
    Ok(config)
}

fn mission_text(args: &TaskArgs) -> Result<String, OrchestratorError> {
    let limit = crate::mission::MAX_MISSION_BYTES as u64;
    let too_large = |size: u64| {
        OrchestratorError::Mission(format!(
            "the mission text is {size} bytes; the limit is {limit} bytes (put long specifications in a \
             file of the project and refer to it)"
        ))
    };
    let text = match (&args.mission, &args.file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => {
            use std::io::Read as _;
            let io = |source| OrchestratorError::Io {
                action: "read the mission from",
                path: path.clone(),
                source,
            };
            let mut bytes = Vec::new();
            // Read one byte past the limit: enough to know it is too large without reading all of it.
            if path.as_os_str() == "-" {
                std::io::stdin()
                    .take(limit + 1)
                    .read_to_end(&mut bytes)
                    .map_err(io)?;
            } else {
                let file = std::fs::File::open(path).map_err(io)?;
                let size = file.metadata().map_err(io)?.len();
                if size > limit {
                    return Err(too_large(size));
                }
                file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
            }
            String::from_utf8(bytes).map_err(|error| {
                OrchestratorError::Mission(format!(
                    "the mission in {} is not UTF-8 (invalid byte at offset {})",
                    path.display(),
                    error.utf8_error().valid_up_to()
                ))
            })?
        }
        (None, None) => unreachable!("clap requires a mission or --file"),
    };
    if text.trim().is_empty() {
        return Err(OrchestratorError::Mission(
            "the mission text is empty: say what the agents should do".to_string(),
        ));
    }
    if text.len() as u64 > limit {
        return Err(too_large(text.len() as u64));
    }
    Ok(text)
}

async fn task(args: TaskArgs) -> Result<Exit, OrchestratorError> {
    // Check the mission and the options before anything is started for them.
    let text = mission_text(&args)?;
    parse_model(&args.run)?;
    let (clients, project, demo_server) = open_server(&args.server, true).await?;
    let config = mission_config(&project, &args.run, demo_server.is_some())?;
    let servers = clients
        .into_iter()
        .map(|client| Opencode::new(client, &config.calls))
        .collect();
    let mission = Mission::create(servers, config, &text)?;
    Ok(run(mission, &project, &args.run, demo_server).await?.0)
}

async fn resume(args: ResumeArgs) -> Result<Exit, OrchestratorError> {
    parse_model(&args.run)?;
    let project = match (&args.server.project, args.server.demo) {
        (Some(project), _) => project_dir(Some(project))?,
        (None, _) => project_dir(None)?,
    };
    let id = mission_id(&project, args.id.as_deref())?;
    let directory = state::missions_dir(&project).join(&id);
    // Open the state first: a mission another orchestrator still runs is locked.
    let state = MissionState::open(&directory)?;
    let mission = state.mission();
    if mission.status == MissionStatus::Completed {
        println!("Mission {id} is already completed.");
        return Ok(Exit::Completed);
    }
    let server_args = ServerArgs {
        demo: args.server.demo,
        urls: args.server.urls.clone(),
        project: Some(project.clone()),
    };
    let (clients, project, demo_server) = open_server(&server_args, false).await?;
    let config = mission_config(&project, &args.run, demo_server.is_some())?;
    let servers = clients
        .into_iter()
        .map(|client| Opencode::new(client, &config.calls))
        .collect();
    println!("Resuming mission {id}: {}", first_line(&mission.text));
    let mission = Mission::resume(servers, config, state).await?;
    Ok(run(mission, &project, &args.run, demo_server).await?.0)
}

/// Runs a mission with its progress view, signal handling and pid file, then prints its summary.
async fn run(
    mission: Mission,
    project: &Path,
    args: &RunArgs,
    demo_server: Option<DemoServer>,
) -> Result<(Exit, MissionReport), OrchestratorError> {
    let directory = mission
        .state()
        .directory()
        .map(Path::to_path_buf)
        .expect("missions run by the command are durable");
    let _log = start_logging(project);
    let pid_file = directory.join("pid");
    std::fs::write(&pid_file, std::process::id().to_string())
        .map_err(io_error("write", &pid_file))?;
    let format = if args.json {
        Format::Json
    } else if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        Format::Bars
    } else {
        Format::Lines
    };
    let progress = Progress::start(
        mission.state(),
        format,
        std::io::stdout(),
        Some(directory.join("status.json")),
    );
    let signals = tokio::spawn(watch_signals(
        mission.interrupter(),
        mission.state().clone(),
    ));
    let report = mission.run().await;
    signals.abort();
    progress.finish();
    let _ = std::fs::remove_file(&pid_file);
    print_report(&report, args.json, demo_server.as_ref().map(|_| project));
    drop(demo_server);
    let exit = match &report.view.mission.status {
        MissionStatus::Completed => Exit::Completed,
        MissionStatus::Stopped { reason } if reason.starts_with("interrupted by SIGTERM") => {
            Exit::Interrupted("SIGTERM")
        }
        MissionStatus::Stopped { reason } if reason.starts_with("interrupted by") => {
            Exit::Interrupted("SIGINT")
        }
        _ => Exit::NotCompleted,
    };
    Ok((exit, report))
}

/// The first SIGINT or SIGTERM stops the mission: shutdown handlers abort its sessions (3 s) and sync its
/// state (1 s), and the process exits within 5 s whatever happens; a second signal exits at once.
async fn watch_signals(interrupter: crate::mission::Interrupter, state: MissionState) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot listen for signals");
        return;
    };
    let name = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    let code = if name == "SIGTERM" { 143 } else { 130 };
    eprintln!(
        "orchestrator: {name}: stopping (aborting sessions, saving state); again to exit at once"
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            // Whatever the handlers do, the process is gone 5 s after the first signal.
            () = tokio::time::sleep(Duration::from_millis(4800)) => {}
        }
        std::process::exit(code);
    });
    let mut shutdown = Shutdown::new();
    shutdown.add(
        0,
        "abort sessions",
        Duration::from_secs(3),
        move || async move {
            let aborted = interrupter.interrupt(name).await;
            tracing::info!(?aborted, "sessions aborted");
        },
    );
    shutdown.add(
        1,
        "sync state",
        Duration::from_secs(1),
        move || async move {
            let _ = tokio::task::spawn_blocking(move || state.store().checkpoint()).await;
        },
    );
    shutdown.run().await;
}

fn print_report(report: &MissionReport, json: bool, demo_project: Option<&Path>) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "event": "summary",
                "mission": report.view.mission,
                "completed": report.completed(),
                "files": report.files(),
                "sessions": report.session_count(),
                "wall_ms": u64::try_from(report.wall.as_millis()).unwrap_or(u64::MAX),
            })
        );
    } else {
        println!();
        print!("{}", report.render());
        if let Some(project) = demo_project {
            println!(
                "A scripted model stood in for an LLM. The scratch project is {}",
                project.display()
            );
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The given mission id, checked, or the project's latest.
fn mission_id(project: &Path, id: Option<&str>) -> Result<String, OrchestratorError> {
    let ids = state::mission_ids(project);
    match id {
        Some(id) if ids.iter().any(|known| known == id) => Ok(id.to_string()),
        Some(id) => Err(OrchestratorError::Mission(format!(
            "no mission {id} in {} (known: {})",
            state::missions_dir(project).display(),
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        ))),
        None => ids.last().cloned().ok_or_else(|| {
            OrchestratorError::Mission(format!(
                "no mission in {}: start one with `orchestrator task`",
                state::missions_dir(project).display()
            ))
        }),
    }
}

/// The pid of the orchestrator running a mission, if it is alive.
fn running_pid(directory: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(directory.join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains("orchestrator")
        .then_some(pid)
}

fn status(args: &StatusArgs) -> Result<Exit, OrchestratorError> {
    let project = project_dir(args.project.as_deref())?;
    let id = mission_id(&project, args.id.as_deref())?;
    let directory = state::missions_dir(&project).join(&id);
    let (view_json, running) = match MissionState::open(&directory) {
        Ok(state) => {
            let view = state.view();
            (
                serde_json::json!({ "mission": view.mission, "tasks": view.tasks }),
                None,
            )
        }
        Err(state::StateError::Open {
            source: mvcc_store::OpenError::Locked { .. },
            ..
        }) => {
            // Another orchestrator runs it: read the view it keeps up to date.
            let path = directory.join("status.json");
            let text = std::fs::read_to_string(&path).map_err(io_error("read", &path))?;
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
                OrchestratorError::Mission(format!("{} does not parse: {error}", path.display()))
            })?;
            (json, running_pid(&directory))
        }
        Err(error) => return Err(error.into()),
    };
    if args.json {
        println!("{view_json}");
        return Ok(Exit::Completed);
    }
    let mission = &view_json["mission"];
    println!(
        "Mission {id}: {}{}",
        mission["status"]["outcome"].as_str().unwrap_or("?"),
        running.map_or_else(String::new, |pid| format!(" (running, pid {pid})"))
    );
    if let Some(reason) = mission["status"]["reason"].as_str() {
        println!("  {reason}");
    }
    println!(
        "  mission: {}",
        first_line(mission["text"].as_str().unwrap_or(""))
    );
    println!("  stage:   {}", mission["stage"].as_str().unwrap_or("?"));
    println!(
        "  {:<6} {:<10} {:>8} {:>5}  title",
        "task", "status", "attempts", "runs"
    );
    if let Some(tasks) = view_json["tasks"].as_object() {
        for task in tasks.values() {
            println!(
                "  {:<6} {:<10} {:>8} {:>5}  {}",
                task["id"].as_str().unwrap_or("?"),
                task["status"]["status"].as_str().unwrap_or("?"),
                task["attempts"].as_u64().unwrap_or(0),
                task["runs"].as_u64().unwrap_or(0),
                task["title"].as_str().unwrap_or("")
            );
        }
    }
    Ok(Exit::Completed)
}

async fn stop(args: &StopArgs) -> Result<Exit, OrchestratorError> {
    let project = project_dir(args.project.as_deref())?;
    let id = mission_id(&project, args.id.as_deref())?;
    let directory = state::missions_dir(&project).join(&id);
    let Some(pid) = running_pid(&directory) else {
        return Err(OrchestratorError::Mission(format!(
            "mission {id} is not running"
        )));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(|error| {
        OrchestratorError::Mission(format!(
            "cannot signal the orchestrator (pid {pid}): {error}"
        ))
    })?;
    println!(
        "Sent SIGTERM to the orchestrator running mission {id} (pid {pid}); waiting for it to stop..."
    );
    for _ in 0..100 {
        if running_pid(&directory).is_none() || !Path::new(&format!("/proc/{pid}")).exists() {
            println!("Stopped. Continue it with `orchestrator resume {id}`.");
            return Ok(Exit::Completed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(OrchestratorError::Mission(format!(
        "the orchestrator (pid {pid}) did not stop within 10 s"
    )))
}

async fn attach(args: AttachArgs) -> Result<Exit, OrchestratorError> {
    use futures_util::StreamExt as _;
    use opencode_client::{EventPayload, StreamItem, Toast, ToastVariant};

    parse_model(&args.run)?;
    let url = args.url.as_deref().unwrap_or("http://127.0.0.1:4096");
    let password = std::env::var("OPENCODE_SERVER_PASSWORD").ok();
    let project = project_dir(args.project.as_deref())?;
    let client = server::connect(url, password.as_deref(), project.to_str()).await?;
    let mut events = client
        .events()
        .await
        .map_err(|error| OrchestratorError::Unreachable {
            url: url.to_string(),
            message: error.to_string(),
        })?;
    println!(
        "Attached to OpenCode at {url}: waiting for `/task <mission>` in project {}",
        project.display()
    );
    let mut last = Exit::Completed;
    while let Some(item) = events.next().await {
        let item = item.map_err(|error| OrchestratorError::Unreachable {
            url: url.to_string(),
            message: error.to_string(),
        })?;
        let StreamItem::Event(event) = item else {
            continue;
        };
        let EventPayload::CommandExecuted {
            name,
            session_id,
            arguments,
            ..
        } = event.payload
        else {
            continue;
        };
        if name != crate::install::COMMAND_NAME {
            continue;
        }
        // OpenCode may pass the arguments quoted as typed.
        let arguments = arguments.trim();
        let arguments = arguments
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or(arguments)
            .to_string();
        println!("/task in session {session_id}: {}", first_line(&arguments));
        let toast = |message: String, variant: ToastVariant| {
            let client = client.clone();
            async move {
                let _ = client
                    .show_toast(&Toast::new(message, variant).title("Orchestrator"))
                    .await;
            }
        };
        let config = mission_config(&project, &args.run, false)?;
        let opencode = Opencode::new(client.clone(), &config.calls);
        let mission = match Mission::create(vec![opencode], config, &arguments) {
            Ok(mission) => mission,
            Err(error) => {
                toast(
                    format!("The mission was not started: {error}"),
                    ToastVariant::Error,
                )
                .await;
                post(
                    &client,
                    &session_id,
                    &format!("The orchestrator did not start this mission: {error}"),
                )
                .await;
                last = Exit::NotCompleted;
                if args.once {
                    break;
                }
                continue;
            }
        };
        toast(
            format!(
                "Mission {} started: {}",
                mission.state().mission().id,
                first_line(&arguments)
            ),
            ToastVariant::Info,
        )
        .await;
        let toasts = toast_progress(mission.state(), client.clone());
        let (exit, report) = run(mission, &project, &args.run, None).await?;
        toasts.abort();
        let summary = summary_text(&report.view);
        let (message, variant) = match exit {
            Exit::Completed => ("Mission completed", ToastVariant::Success),
            Exit::NotCompleted => ("Mission ended incomplete", ToastVariant::Warning),
            Exit::Interrupted(_) => ("Mission stopped", ToastVariant::Warning),
        };
        toast(message.to_string(), variant).await;
        post(&client, &session_id, &summary).await;
        last = exit;
        if args.once || matches!(last, Exit::Interrupted(_)) {
            break;
        }
    }
    Ok(last)
}

/// Posts `text` to a session as a message the agent does not answer.
async fn post(client: &opencode_client::Client, session: &str, text: &str) {
    let mut prompt = opencode_client::Prompt::text(text);
    prompt.no_reply = Some(true);
    if let Err(error) = client.prompt(session, &prompt).await {
        eprintln!("orchestrator: could not post the summary to session {session}: {error}");
    }
}

/// The mission's outcome and tasks, as posted to the session that asked for it.
fn summary_text(view: &crate::state::MissionView) -> String {
    use std::fmt::Write as _;
    let mut text = format!("Orchestrator mission {}: ", view.mission.id);
    let _ = match &view.mission.status {
        MissionStatus::Completed => writeln!(text, "completed."),
        MissionStatus::Running => writeln!(text, "still running."),
        MissionStatus::Incomplete { reason } => writeln!(text, "incomplete: {reason}."),
        MissionStatus::Stopped { reason } => writeln!(text, "stopped: {reason}."),
    };
    for task in view.tasks.values() {
        let _ = writeln!(text, "- {} {}: {}", task.id, task.title, task.status);
    }
    text
}

/// Toasts the mission's stage changes and finished tasks, from its state subscription.
fn toast_progress(
    state: &MissionState,
    client: opencode_client::Client,
) -> tokio::task::JoinHandle<()> {
    use crate::state::{StateEvent, TaskStatus};
    use opencode_client::{Toast, ToastVariant};

    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let mut subscription = state.subscribe();
    std::thread::spawn(move || {
        let mut stage = None;
        // Ends once the toasting task is gone (aborted at the mission's end).
        while !sender.is_closed() {
            let Some(Ok(change)) = subscription.next_timeout(Duration::from_millis(200)) else {
                continue;
            };
            let message = match StateEvent::from_change(&change) {
                Some(StateEvent::Mission { mission, .. }) if stage != Some(mission.stage) => {
                    stage = Some(mission.stage);
                    Some((
                        format!("Stage: {}", mission.stage.name()),
                        ToastVariant::Info,
                    ))
                }
                Some(StateEvent::Task { task, .. }) => match &task.status {
                    TaskStatus::Done => Some((
                        format!("{} done: {}", task.id, task.title),
                        ToastVariant::Success,
                    )),
                    TaskStatus::Failed { reason } => {
                        Some((format!("{} failed: {reason}", task.id), ToastVariant::Error))
                    }
                    _ => None,
                },
                _ => None,
            };
            if let Some(message) = message
                && sender.send(message).is_err()
            {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some((message, variant)) = receiver.recv().await {
            let _ = client
                .show_toast(&Toast::new(message, variant).title("Orchestrator"))
                .await;
        }
    })
}

async fn doctor(args: &DoctorArgs) -> Result<Exit, OrchestratorError> {
    let project = project_dir(args.project.as_deref())?;
    // An invalid configuration is one of the findings, not a reason to stop checking.
    let file = crate::config::load(&project).ok().flatten();
    let (urls, password) = servers(&args.urls, file.as_ref());
    let report = crate::doctor::run(&crate::doctor::DoctorOptions {
        urls,
        password,
        project,
    })
    .await;
    print!("{report}");
    Ok(if report.ok() {
        Exit::Completed
    } else {
        Exit::NotCompleted
    })
}

/// Starts logging to the project's `.opencode/orchestrator/orchestrator.log` (rotated); a failure to is
/// reported and the mission goes on without a log.
fn start_logging(project: &Path) -> Option<crate::logging::LogGuard> {
    match crate::logging::init(project) {
        Ok(guard) => Some(guard),
        Err(error) => {
            eprintln!("orchestrator: no log file: {error}");
            None
        }
    }
}
