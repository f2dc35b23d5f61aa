//! The `orchestrator` command line: `task` runs a mission, `resume` continues one after a crash or a stop,
//! `status` shows one, `stop` stops one running in another terminal, `memory` lists, shows and forgets the
//! records missions leave for the next ones, `install`/`uninstall` add and remove `/task` in the OpenCode
//! TUI (a plugin runs each one: [`plugin`]), `attach` serves `/task` for a server without the plugin,
//! `clean` removes what finished missions left in git, `doctor` checks the setup.
//!
//! The command line reads the configuration files and its options into one [`Settings`](crate::domain::settings::Settings), wires the adapters
//! into the engine's ports (starting the user's own `opencode` when no server runs), shows progress, handles
//! signals, and is the only place that maps an outcome or an error to an exit status ([`error`]).

mod args;
pub mod attach;
pub mod clean;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod install;
pub mod logging;
mod memory;
pub mod otlp;
pub mod plugin;
pub mod progress;
mod run;
pub mod session;
pub mod signals;
pub mod summary;
mod wiring;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;

use crate::adapters::gate::ProjectGate;
use crate::adapters::journal::{self, FileJournal};
use crate::cli::args::{
    Cli, Command, DoctorArgs, ResumeArgs, RunArgs, StatusArgs, StopArgs, TaskArgs,
};
use crate::cli::error::{CliError, Outcome, with_causes};
use crate::cli::run::{
    connect, demo_project, finish, isolation, journaled_isolation, mission_text, open_servers,
    parse_model, project_dir, run_mission, say, servers, settings, start_logging,
};
use crate::cli::signals::Signals;
use crate::domain::mission;
use crate::engine::{Mission, Ports};

/// Runs the command line and returns the exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let result = runtime.block_on(dispatch(cli.command));
    // Background tasks (an event stream, a gate being killed) must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(200));
    if let Err(error) = &result {
        eprintln!("orchestrator: {}", with_causes(error));
    }
    error::exit_code(&result)
}

async fn dispatch(command: Command) -> Result<Outcome, CliError> {
    match command {
        Command::Task(args) => task(args).await,
        Command::Resume(args) => resume(args).await,
        Command::Status(args) => status(&args),
        Command::Stop(args) => stop(&args).await,
        Command::Attach(args) => attach::run(args).await,
        Command::Doctor(args) => doctor(&args).await,
        Command::Install(args) => {
            let project = project_dir(args.project.as_deref())?;
            let report = if args.no_plugin {
                install::install_with(&project, &install::PluginChoice::Without)?
            } else {
                install::install(&project)?
            };
            println!("{report}");
            Ok(Outcome::Done)
        }
        Command::Uninstall(args) => {
            let project = project_dir(args.project.as_deref())?;
            let report = install::uninstall(&project)?;
            if report.is_noop() {
                print!("{report}");
            } else {
                println!("{report}");
            }
            Ok(Outcome::Done)
        }
        Command::Clean(args) => {
            let project = project_dir(args.project.as_deref())?;
            print!(
                "{}",
                clean::clean(&project, args.id.as_deref(), args.branches).await?
            );
            Ok(Outcome::Done)
        }
        Command::Memory(args) => {
            let project = project_dir(args.project.as_deref())?;
            print!("{}", memory::run(&project, &args.action)?);
            Ok(Outcome::Done)
        }
    }
}

async fn task(args: TaskArgs) -> Result<Outcome, CliError> {
    if let Some(session) = args.session.clone() {
        return task_for_session(args, session).await;
    }
    // The mission and the options are checked before anything is started for them.
    let text = mission_text(&args)?;
    parse_model(&args.run)?;
    check_otlp(&args.run)?;
    let project = if args.server.demo {
        demo_project(args.server.project.as_deref())?
    } else {
        project_dir(args.server.project.as_deref())?
    };
    let file = config::load(&project)?;
    let mut settings = settings(&project, file.as_ref(), &args.run, args.server.demo)?;
    let workspace = isolation(
        &project,
        args.run.no_isolation,
        &mut settings,
        args.run.json,
    )
    .await?;
    let servers = open_servers(
        &args.server,
        file.as_ref(),
        &project,
        &settings,
        args.run.json,
    )
    .await?;
    // Logging starts once the servers answer: a mission refused before that leaves nothing behind.
    let _log = start_logging(&project, args.run.otlp.as_ref());
    let id = format!("m{}", crate::engine::record::now_ms());
    let directory = journal::missions_dir(&project).join(&id);
    let journal = Arc::new(FileJournal::create(&directory)?);
    let ports = Ports {
        servers: servers.agents(),
        journal: journal.clone(),
        gates: Arc::new(
            ProjectGate::new(settings.gate.commands.clone(), settings.gate.timeout)
                .own_build_directories(workspace.is_some()),
        ),
        workspace,
        memory: Some(Arc::new(crate::adapters::memory::SystemMemory::default())),
        records: Some(Arc::new(crate::adapters::records::RecordShelf::new(
            &project,
        ))),
    };
    let mission = Mission::create(ports, settings, &id, &text)?;
    let mut signals = Signals::listen().map_err(CliError::io("listen for signals in", &project))?;
    let report = run_mission(mission, &journal, args.run.json, &mut signals).await?;
    finish(&report, servers, args.run.json);
    Ok(Outcome::of(&report.view.status))
}

/// `task --session`: a `/task` typed in OpenCode (the plugin runs this), reported in its session. The server
/// comes first, so that every later refusal is said in the session too; then the claim, so that one
/// command runs one mission.
async fn task_for_session(args: TaskArgs, session: String) -> Result<Outcome, CliError> {
    parse_model(&args.run)?;
    let project = project_dir(args.server.project.as_deref())?;
    let file = config::load(&project);
    let (urls, password) = servers(
        &args.server.urls,
        file.as_ref().ok().and_then(Option::as_ref),
        args.server.password_env.as_deref(),
    );
    let client =
        crate::adapters::opencode::connect(&urls[0], password.as_deref(), &project).await?;
    let report = session::SessionReport::new(client, &session);
    if let Some(message) = &args.command_message {
        match crate::adapters::claim::claim_command(&project, &session, message, "plugin") {
            Ok(crate::adapters::claim::Claimed::Mine { .. }) => {}
            Ok(crate::adapters::claim::Claimed::Taken { by, .. }) => {
                println!("/task in session {session}: already picked up ({by}); nothing to do");
                return Ok(Outcome::Done);
            }
            Err(error) => {
                let error = CliError::from(error);
                report.refused(&error).await;
                return Err(error);
            }
        }
    }
    let _log = start_logging(&project, args.run.otlp.as_ref());
    let result = async {
        let text = match (&args.mission, &args.file) {
            (Some(arguments), _) => {
                mission::check_text(&session::command_mission(arguments))?.to_string()
            }
            _ => mission_text(&args)?,
        };
        let file = file?;
        let mut settings = settings(&project, file.as_ref(), &args.run, false)?;
        let workspace = isolation(
            &project,
            args.run.no_isolation,
            &mut settings,
            args.run.json,
        )
        .await?;
        let servers = connect(&urls, password.as_deref(), &project, &settings).await?;
        let mut signals =
            Signals::listen().map_err(CliError::io("listen for signals in", &project))?;
        report
            .run(
                session::SessionMission {
                    project: &project,
                    settings,
                    servers: servers.agents(),
                    workspace,
                    text: &text,
                    json: args.run.json,
                },
                &mut signals,
            )
            .await
    }
    .await;
    if let Err(error) = &result {
        report.refused(error).await;
    }
    result
}

async fn resume(args: ResumeArgs) -> Result<Outcome, CliError> {
    parse_model(&args.run)?;
    check_otlp(&args.run)?;
    let project = project_dir(args.server.project.as_deref())?;
    let id = mission_id(&project, args.id.as_deref())?;
    let directory = journal::missions_dir(&project).join(&id);
    let file = config::load(&project)?;
    let mut settings = settings(&project, file.as_ref(), &args.run, args.server.demo)?;
    // Logging first, so that the recovery below is in the log.
    let _log = start_logging(&project, args.run.otlp.as_ref());
    // The journal first: a mission another orchestrator runs is locked, a damaged one is refused, before
    // anything is started for it.
    let (journal, entries) = FileJournal::open(&directory)?;
    let journal = Arc::new(journal);
    // A mission keeps the isolation it started with.
    let no_isolation = match journaled_isolation(&entries) {
        Some(isolated) => {
            if isolated == args.run.no_isolation {
                say(
                    args.run.json,
                    &format!(
                        "Mission {id} started {}: it goes on so (--no-isolation {}).",
                        if isolated {
                            "with a git worktree per task"
                        } else {
                            "without isolation"
                        },
                        if isolated { "ignored" } else { "implied" }
                    ),
                );
            }
            !isolated
        }
        None => args.run.no_isolation,
    };
    let workspace = isolation(&project, no_isolation, &mut settings, args.run.json).await?;
    let servers = open_servers(
        &args.server,
        file.as_ref(),
        &project,
        &settings,
        args.run.json,
    )
    .await?;
    let ports = Ports {
        servers: servers.agents(),
        journal: journal.clone(),
        gates: Arc::new(
            ProjectGate::new(settings.gate.commands.clone(), settings.gate.timeout)
                .own_build_directories(workspace.is_some()),
        ),
        workspace,
        memory: Some(Arc::new(crate::adapters::memory::SystemMemory::default())),
        records: Some(Arc::new(crate::adapters::records::RecordShelf::new(
            &project,
        ))),
    };
    let mission = match Mission::resume(ports, settings, &entries).await {
        Ok(mission) => mission,
        Err(crate::engine::MissionError::Completed { id }) => {
            say(
                args.run.json,
                &format!("Mission {id} is already completed."),
            );
            return Ok(Outcome::Done);
        }
        Err(error) => return Err(error.into()),
    };
    say(
        args.run.json,
        &format!(
            "Resuming mission {id}: {}",
            crate::domain::prompts::first_line(&mission.view().text)
        ),
    );
    let mut signals = Signals::listen().map_err(CliError::io("listen for signals in", &project))?;
    let report = run_mission(mission, &journal, args.run.json, &mut signals).await?;
    finish(&report, servers, args.run.json);
    Ok(Outcome::of(&report.view.status))
}

/// `--otlp` in a build that cannot export: refused before anything runs.
pub(crate) fn check_otlp(run: &RunArgs) -> Result<(), CliError> {
    match &run.otlp {
        Some(endpoint) if !otlp::ENABLED => Err(CliError::OtlpUnavailable {
            endpoint: endpoint.clone(),
        }),
        _ => Ok(()),
    }
}

/// The given mission id, checked, or the project's latest.
fn mission_id(project: &Path, id: Option<&str>) -> Result<String, CliError> {
    let ids = journal::mission_ids(project);
    let directory = journal::missions_dir(project);
    match id {
        Some(id) if ids.iter().any(|known| known == id) => Ok(id.to_string()),
        Some(id) => Err(CliError::UnknownMission {
            id: id.to_string(),
            directory,
            known: if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            },
        }),
        None => ids.last().cloned().ok_or(CliError::NoMission { directory }),
    }
}

/// The pid of the orchestrator running a mission, if it is alive.
fn running_pid(directory: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(journal::pid_path(directory))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains("orchestrator")
        .then_some(pid)
}

fn status(args: &StatusArgs) -> Result<Outcome, CliError> {
    let project = project_dir(args.project.as_deref())?;
    let id = mission_id(&project, args.id.as_deref())?;
    let directory = journal::missions_dir(&project).join(&id);
    let (view, running) = match FileJournal::open(&directory) {
        Ok((_, entries)) => {
            let view = mission::MissionView::replay(&entries).map_err(|(seq, rejected)| {
                CliError::Mission(crate::engine::MissionError::Replay { seq, rejected })
            })?;
            (serde_json::to_value(&view).unwrap_or_default(), None)
        }
        Err(journal::OpenJournalError::Locked { .. }) => {
            // Another orchestrator runs it: read the status it keeps up to date.
            let path = journal::status_path(&directory);
            let text = std::fs::read_to_string(&path).map_err(CliError::io("read", &path))?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|source| CliError::Status {
                    path: path.clone(),
                    source,
                })?;
            let pid = running_pid(&directory);
            let mut view = json["mission"].clone();
            if let (Some(pid), Some(object)) = (pid, view.as_object_mut()) {
                object.insert("pid".to_string(), pid.into());
            }
            (view, pid)
        }
        Err(error) => return Err(error.into()),
    };
    if args.json {
        println!("{view}");
        return Ok(Outcome::Done);
    }
    let view: mission::MissionView = match serde_json::from_value(view.clone()) {
        Ok(view) => view,
        Err(_) => {
            println!("{view}");
            return Ok(Outcome::Done);
        }
    };
    print!("{}", status_text(&view, running));
    Ok(Outcome::Done)
}

/// `status` in words: the outcome, where the mission is or stopped, and each task.
fn status_text(view: &mission::MissionView, running: Option<i32>) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Mission {}: {}{}",
        view.id,
        view.status,
        running.map_or_else(String::new, |pid| format!(" (running, pid {pid})"))
    );
    let _ = writeln!(
        text,
        "  mission: {}",
        crate::domain::prompts::first_line(&view.text)
    );
    if let Some(tokens) = view.context_threshold {
        let handoffs: u32 = view.tasks.values().map(|task| task.handoffs).sum();
        let _ = writeln!(
            text,
            "  context: {}; {handoffs} handoff(s) so far",
            if tokens == 0 {
                "Worker sessions are never handed off (limits.worker_context_tokens = 0)"
                    .to_string()
            } else {
                format!(
                    "a Worker session past {tokens} tokens continues in a fresh one \
                     (limits.worker_context_tokens)"
                )
            }
        );
    }
    let stage = view.stage.map_or("not started", |stage| stage.name());
    let _ = writeln!(
        text,
        "  stage:   {stage}{}",
        if matches!(view.status, mission::MissionStatus::Stopped { .. }) {
            " (where it stopped)"
        } else {
            ""
        }
    );
    if view.tasks.is_empty() {
        let _ = writeln!(text, "  no plan yet");
    } else {
        let _ = writeln!(
            text,
            "  {:<6} {:<11} {:>8} {:>5}  title",
            "task", "status", "attempts", "runs"
        );
        for task in view.tasks_in_order() {
            let _ = writeln!(
                text,
                "  {:<6} {:<11} {:>8} {:>5}  {}",
                task.id(),
                task.status.name(),
                task.attempts,
                task.runs,
                task.spec.title
            );
            if let Some(reason) = summary::reason(task) {
                let _ = writeln!(text, "         {reason}");
            }
            if let Some(branch) = task
                .branches
                .iter()
                .find(|branch| branch.starts_with(crate::domain::workspace::TASK_PREFIX))
            {
                let _ = writeln!(
                    text,
                    "         branch {branch}{}",
                    task.integrated
                        .as_ref()
                        .map_or_else(String::new, |commit| format!(
                            ", integrated as {}",
                            commit.get(..12).unwrap_or(commit)
                        ))
                );
            }
        }
    }
    for line in summary::isolation(view) {
        let _ = writeln!(text, "  {line}");
    }
    text
}

async fn stop(args: &StopArgs) -> Result<Outcome, CliError> {
    const WAIT: Duration = Duration::from_secs(10);
    let project = project_dir(args.project.as_deref())?;
    let id = mission_id(&project, args.id.as_deref())?;
    let directory = journal::missions_dir(&project).join(&id);
    let Some(pid) = running_pid(&directory) else {
        return Err(CliError::NotRunning { id });
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(|source| CliError::Signal {
        id: id.clone(),
        pid,
        source,
    })?;
    println!(
        "Sent SIGTERM to the orchestrator running mission {id} (pid {pid}); waiting for it to stop..."
    );
    let started = std::time::Instant::now();
    while started.elapsed() < WAIT {
        if running_pid(&directory).is_none() || !Path::new(&format!("/proc/{pid}")).exists() {
            println!("Stopped. Continue it with `orchestrator resume {id}`.");
            return Ok(Outcome::Done);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(CliError::StopTimedOut {
        pid,
        seconds: WAIT.as_secs(),
    })
}

async fn doctor(args: &DoctorArgs) -> Result<Outcome, CliError> {
    let project = project_dir(args.project.as_deref())?;
    // An invalid configuration is one of the findings, not a reason to stop checking.
    let file = config::load(&project).ok().flatten();
    let (urls, password) = servers(&args.urls, file.as_ref(), None);
    let source = if !args.urls.is_empty() {
        doctor::ServerSource::Given
    } else if file.as_ref().is_some_and(|file| !file.urls().is_empty()) {
        doctor::ServerSource::Configured
    } else {
        doctor::ServerSource::Default
    };
    let report = doctor::run(&doctor::DoctorOptions {
        urls,
        password,
        project,
        servers: source,
        default_url: run::DEFAULT_URL.to_string(),
    })
    .await;
    print!("{report}");
    Ok(if report.ok() {
        Outcome::Done
    } else {
        Outcome::NotDone
    })
}

#[cfg(test)]
mod tests;
